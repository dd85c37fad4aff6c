/* threads: the thread workloads of the benchmarks (issue 10).
 * usage: threads split T N     N xorshift rounds cut in 64 slices dealt to T threads; prints the checksum
 *                              (threads created, run and joined: the timed part)
 *        threads pingpong N    two threads hand a token back and forth N times through futex wait/wake
 *        threads mutex T N     T threads increment one counter under a pthread mutex, N increments in all
 * pingpong and mutex time their loop with clock_gettime(CLOCK_MONOTONIC) and report on stderr, as syscall_cost
 * does:  threads: MODE N calls in NS ns   (stdout, compared with native's, holds only deterministic results) */
#define _GNU_SOURCE
#include <linux/futex.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

enum { SLICES = 64, MAX_THREADS = 64 };

static long long now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static uint64_t slice_sums[SLICES];
static uint64_t slice_rounds;
static int split_threads;

static void *split_worker(void *arg)
{
    for (int s = (int)(intptr_t)arg; s < SLICES; s += split_threads) {
        uint64_t x = 0x9E3779B97F4A7C15ULL * (uint64_t)(s + 1), sum = 0;
        for (uint64_t i = 0; i < slice_rounds; i++) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            sum += x >> 60;
        }
        slice_sums[s] = sum;
    }
    return NULL;
}

static int split(int threads, long rounds)
{
    pthread_t t[MAX_THREADS];
    split_threads = threads;
    slice_rounds = (uint64_t)rounds / SLICES;
    long long start = now_ns();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, split_worker, (void *)(intptr_t)i))
            return 1;
    uint64_t total = 0;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    long long ns = now_ns() - start;
    for (int s = 0; s < SLICES; s++)
        total += slice_sums[s];
    printf("split: %ld rounds, checksum %llu\n", rounds, (unsigned long long)total);
    fprintf(stderr, "threads: split %ld calls in %lld ns\n", rounds, ns);
    return 0;
}

static int token;          /* whose turn: 0 the main thread's, 1 the partner's */
static long rounds_left;

static void futex_wait(int *addr, int value)
{
    syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, value, NULL, NULL, 0);
}

static void futex_wake(int *addr)
{
    syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

static void *partner(void *arg)
{
    (void)arg;
    for (long i = 0; i < rounds_left; i++) {
        while (__atomic_load_n(&token, __ATOMIC_ACQUIRE) != 1)
            futex_wait(&token, 0);
        __atomic_store_n(&token, 0, __ATOMIC_RELEASE);
        futex_wake(&token);
    }
    return NULL;
}

static int pingpong(long n)
{
    pthread_t t;
    rounds_left = n;
    if (pthread_create(&t, NULL, partner, NULL))
        return 1;
    long long start = now_ns();
    for (long i = 0; i < n; i++) {
        __atomic_store_n(&token, 1, __ATOMIC_RELEASE);
        futex_wake(&token);
        while (__atomic_load_n(&token, __ATOMIC_ACQUIRE) != 0)
            futex_wait(&token, 1);
    }
    long long ns = now_ns() - start;
    pthread_join(t, NULL);
    printf("pingpong: %ld round trips\n", n);
    fprintf(stderr, "threads: pingpong %ld calls in %lld ns\n", n, ns);
    return 0;
}

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static long counter, per_thread;

static void *incrementer(void *arg)
{
    (void)arg;
    for (long i = 0; i < per_thread; i++) {
        pthread_mutex_lock(&lock);
        counter++;
        pthread_mutex_unlock(&lock);
    }
    return NULL;
}

static int mutex(int threads, long n)
{
    pthread_t t[MAX_THREADS];
    per_thread = n / threads;
    long long start = now_ns();
    for (int i = 0; i < threads; i++)
        if (pthread_create(&t[i], NULL, incrementer, NULL))
            return 1;
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    long long ns = now_ns() - start;
    printf("mutex: %d threads, counter %ld\n", threads, counter);
    fprintf(stderr, "threads: mutex %ld calls in %lld ns\n", per_thread * threads, ns);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 4 && !strcmp(argv[1], "split"))
        return split(atoi(argv[2]) < 1 ? 1 : atoi(argv[2]) > MAX_THREADS ? MAX_THREADS : atoi(argv[2]), atol(argv[3]));
    if (argc == 3 && !strcmp(argv[1], "pingpong"))
        return pingpong(atol(argv[2]));
    if (argc == 4 && !strcmp(argv[1], "mutex"))
        return mutex(atoi(argv[2]) < 1 ? 1 : atoi(argv[2]) > MAX_THREADS ? MAX_THREADS : atoi(argv[2]), atol(argv[3]));
    fprintf(stderr, "usage: threads split T N | pingpong N | mutex T N\n");
    return 2;
}
