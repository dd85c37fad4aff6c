/* Shared memory between processes (issue 12):
 *        shm pingpong N     parent and fork child hand a token back and forth N times through futex wait/wake
 *                           on a word of a MAP_SHARED|MAP_ANONYMOUS page (a process-shared futex)
 *        shm fork MIB N     with MIB MiB of touched MAP_SHARED memory, N times fork + child _exit + waitpid
 * Each times its loop with clock_gettime(CLOCK_MONOTONIC) and reports on stderr as syscall_cost does:
 *        shm: MODE N calls in NS ns   (stdout holds only deterministic results) */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void futex_wait(int *addr, int value) { syscall(SYS_futex, addr, FUTEX_WAIT, value, NULL, NULL, 0); }
static void futex_wake(int *addr) { syscall(SYS_futex, addr, FUTEX_WAKE, 1, NULL, NULL, 0); }

static int pingpong(long n)
{
    int *token = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (token == MAP_FAILED)
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        for (long i = 0; i < n; i++) {
            while (__atomic_load_n(token, __ATOMIC_ACQUIRE) != 1)
                futex_wait(token, 0);
            __atomic_store_n(token, 0, __ATOMIC_RELEASE);
            futex_wake(token);
        }
        _exit(0);
    }
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        __atomic_store_n(token, 1, __ATOMIC_RELEASE);
        futex_wake(token);
        while (__atomic_load_n(token, __ATOMIC_ACQUIRE) != 0)
            futex_wait(token, 1);
    }
    long long ns = now_ns() - start;
    int status;
    waitpid(pid, &status, 0);
    printf("pingpong: %ld round trips, child exited %d\n", n, WEXITSTATUS(status));
    fprintf(stderr, "shm: pingpong %ld calls in %lld ns\n", n, ns);
    return 0;
}

static int fork_shared(long mib, long n)
{
    size_t size = (size_t)mib << 20;
    char *m = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return 1;
    for (size_t off = 0; off < size; off += 4096)
        m[off] = 1;
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(m[i * 4096 % size]);
        int status;
        waitpid(pid, &status, 0);
    }
    long long ns = now_ns() - start;
    printf("fork: %ld MiB shared, %ld forks\n", mib, n);
    fprintf(stderr, "shm: fork %ld calls in %lld ns\n", n, ns);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "pingpong"))
        return pingpong(atol(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "fork"))
        return fork_shared(atol(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: shm pingpong N | fork MIB N\n");
    return 2;
}
