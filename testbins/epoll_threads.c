/* Threads adding to one epoll instance while another waits on it (Go's netpoller does this): every fd added
 * must be reported, with its own data, exactly once. Two threads each add N ready eventfds (EPOLLIN |
 * EPOLLET, data = the fd) while the main thread collects events; prints whether each fd came once. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define PER_THREAD 400
#define THREADS 2

static int ep;
static int fds[THREADS][PER_THREAD];

static void *adder(void *arg)
{
    int *mine = arg;
    for (int i = 0; i < PER_THREAD; i++) {
        struct epoll_event ev = {EPOLLIN | EPOLLET, {.u64 = (unsigned)mine[i]}};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, mine[i], &ev))
            perror("epoll_ctl");
    }
    return NULL;
}

int main(void)
{
    ep = epoll_create1(EPOLL_CLOEXEC);
    static int seen[65536];
    int max = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            fds[t][i] = eventfd(1, EFD_CLOEXEC | EFD_NONBLOCK);    /* readable from the start */
            if (fds[t][i] > max)
                max = fds[t][i];
        }
    pthread_t threads[THREADS];
    for (int t = 0; t < THREADS; t++)
        pthread_create(&threads[t], NULL, adder, fds[t]);
    int got = 0, quiet = 0;
    struct epoll_event evs[64];
    while (got < THREADS * PER_THREAD && quiet < 20) {
        int n = epoll_wait(ep, evs, 64, 100);
        quiet = n > 0 ? 0 : quiet + 1;
        for (int i = 0; i < n; i++) {
            unsigned fd = (unsigned)evs[i].data.u64;
            if (fd < 65536)
                seen[fd]++;
            got++;
        }
    }
    for (int t = 0; t < THREADS; t++)
        pthread_join(threads[t], NULL);
    int once = 0, missing = 0, twice = 0;
    for (int t = 0; t < THREADS; t++)
        for (int i = 0; i < PER_THREAD; i++) {
            int c = seen[fds[t][i]];
            once += c == 1;
            missing += c == 0;
            twice += c > 1;
        }
    printf("%d fds added by %d threads: reported once %d, missing %d, more than once %d\n", THREADS * PER_THREAD,
           THREADS, once, missing, twice);
    return 0;
}
