/* signal_storm: signals from another process land at any point of a loop of blocking reads and busy waits.
 *
 * A child kill()s the parent 300 times, each time right before writing an 8-byte token the parent is blocked
 * reading; the parent's SA_RESTART handler only sets a flag the parent then spins on. Every read must return
 * its 8 bytes and every token arrive in order: a signal taken at a stale instruction pointer (a register state
 * ahead of rip) or a lost syscall result shows as a short read or a wrong token. Prints deterministic facts. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

enum { ROUNDS = 300 };

static volatile sig_atomic_t arrived;
static void on_usr1(int sig) { (void)sig; arrived = 1; }

int main(void)
{
    int go[2], sent[2];
    struct sigaction sa = { .sa_handler = on_usr1, .sa_flags = SA_RESTART };
    sigaction(SIGUSR1, &sa, NULL);
    alarm(60);                                   /* nothing here may hang */
    if (pipe(go) || pipe(sent))
        return 1;
    pid_t child = fork();
    if (child == 0) {
        close(go[1]);
        close(sent[0]);
        char c;
        for (long token = 0; read(go[0], &c, 1) == 1; token++) {
            kill(getppid(), SIGUSR1);
            if (write(sent[1], &token, sizeof token) != sizeof token)
                _exit(1);
        }
        _exit(0);
    }
    close(go[0]);
    close(sent[1]);
    int short_reads = 0, wrong_tokens = 0, writes_failed = 0;
    for (long i = 0; i < ROUNDS; i++) {
        long token = -1;
        arrived = 0;
        if (write(go[1], "g", 1) != 1)
            writes_failed++;
        if (read(sent[0], &token, sizeof token) != sizeof token)
            short_reads++;
        if (token != i)
            wrong_tokens++;
        while (!arrived)
            ;                                    /* computing: no syscall until the handler has run */
    }
    close(go[1]);
    int status;
    waitpid(child, &status, 0);
    printf("rounds %d: failed writes %d, short reads %d, wrong tokens %d, child exit %d\n", ROUNDS, writes_failed,
           short_reads, wrong_tokens, WEXITSTATUS(status));
    return 0;
}
