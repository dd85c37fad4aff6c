#define _GNU_SOURCE
/* For tests/test_threads.py: getpid() and syscall(SYS_getpid) in two threads while the main thread creates and
 * joins threads. Each clone makes hermipy write its in-guest answer page again; a reader must never see it half
 * written, and a TLB shootdown must reach vCPUs that loop on answered calls. Prints the number of wrong answers
 * (natively 0). */
#include <pthread.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define READERS 2
#define CLONES 30

static volatile int done;
static pid_t pid;

static void *reader(void *arg) {
    long wrong = 0;
    (void)arg;
    while (!done)
        wrong += (getpid() != pid) + (syscall(SYS_getpid) != pid);
    return (void *)wrong;
}

static void *nothing(void *arg) {
    return arg;
}

int main(void) {
    pthread_t readers[READERS], t;
    long wrong = 0;
    pid = getpid();
    for (int i = 0; i < READERS; i++)
        pthread_create(&readers[i], NULL, reader, NULL);
    for (int i = 0; i < CLONES; i++) {
        pthread_create(&t, NULL, nothing, NULL);
        pthread_join(t, NULL);
    }
    done = 1;
    for (int i = 0; i < READERS; i++) {
        void *r;
        pthread_join(readers[i], &r);
        wrong += (long)r;
    }
    printf("wrong answers: %ld\n", wrong);
    return 0;
}
