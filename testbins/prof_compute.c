/* prof_compute: computation under a fast ITIMER_PROF (SIGPROF every 200 us, a handler counting the ticks) whose
 * results are exact counts and checksums, so that an instruction run twice, or skipped, around an asynchronous signal
 * shows up in the output: memory-destination read-modify-write instructions (add, xadd, lock cmpxchg, xchg; each is
 * wrong if run twice after its store), and mixed C work (xorshift PRNG, qsort, FNV-1a of snprintf output).
 * usage: prof_compute [ROUNDS]   (default 4; each round does the same work again, the results accumulate) */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/time.h>

#define RMW_STEPS 4000000L

static volatile sig_atomic_t ticks;
static uint64_t rng_state = 88172645463325252ULL;

static void on_prof(int sig)
{
    (void)sig;
    ticks++;
}

static uint64_t next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* add $1, mem: a second run after the store adds one more. */
static uint64_t add_to_memory(long steps)
{
    uint64_t counter = 0;
    for (long i = 0; i < steps; i++)
        __asm__ volatile("addq $1, %0" : "+m"(counter));
    return counter;
}

/* xadd: the register gets the old value, memory the sum; run twice, memory gets the addend twice. */
static uint64_t xadd_to_memory(long steps)
{
    uint64_t counter = 0, sum = 0;
    for (long i = 0; i < steps; i++) {
        uint64_t old = 3;
        __asm__ volatile("lock xaddq %0, %1" : "+r"(old), "+m"(counter));
        sum += old;
    }
    return sum ^ counter;
}

/* A compare-and-swap loop with no other thread: run twice after its store, cmpxchg fails on its own value. */
static uint64_t cas_increments(long steps, long *failures)
{
    uint64_t counter = 0;
    *failures = 0;
    for (long i = 0; i < steps; i++) {
        uint64_t old = counter;
        while (!__atomic_compare_exchange_n(&counter, &old, old + 1, 0, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
            ++*failures;
    }
    return counter;
}

/* xchg of a register with memory, rotating three cells: run twice, a value is lost and another doubled. */
static uint64_t xchg_rotation(long steps)
{
    uint64_t cells[3] = { 1, 20, 300 };
    uint64_t carried = 4000;
    for (long i = 0; i < steps; i++)
        __asm__ volatile("xchgq %0, %1" : "+r"(carried), "+m"(cells[i % 3]));
    return cells[0] * 1000003 ^ cells[1] * 1009 ^ cells[2] * 31 ^ carried;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint64_t mixed_work(long n)
{
    uint32_t *v = malloc(n * sizeof *v);
    uint64_t h = 14695981039346656037ULL;
    char buf[96];
    for (long i = 0; i < n; i++) v[i] = (uint32_t)next();
    qsort(v, n, sizeof *v, cmp_u32);
    for (long i = 0; i < n; i++) {
        int len = snprintf(buf, sizeof buf, "%u|%.3f", v[i], (double)v[i] / 7.0);
        for (int j = 0; j < len; j++) h = (h ^ (unsigned char)buf[j]) * 1099511628211ULL;
    }
    free(v);
    return h;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 4;
    struct sigaction sa = { .sa_handler = on_prof, .sa_flags = SA_RESTART };
    sigaction(SIGPROF, &sa, 0);
    struct itimerval every = { { 0, 200 }, { 0, 200 } };
    setitimer(ITIMER_PROF, &every, 0);

    uint64_t added = 0, xadded = 0, cased = 0, rotated = 0, mixed = 0;
    long failures = 0;
    for (long r = 0; r < rounds; r++) {
        long failed;
        added += add_to_memory(RMW_STEPS);
        xadded = xadded * 31 + xadd_to_memory(RMW_STEPS);
        cased += cas_increments(RMW_STEPS, &failed);
        failures += failed;
        rotated = rotated * 31 + xchg_rotation(RMW_STEPS);
        mixed = mixed * 31 + mixed_work(20000);
    }
    struct itimerval off = { { 0, 0 }, { 0, 0 } };
    setitimer(ITIMER_PROF, &off, 0);

    printf("add $1, mem: %llu (expected %llu)\n", (unsigned long long)added, (unsigned long long)(rounds * RMW_STEPS));
    printf("lock xadd: %016llx\n", (unsigned long long)xadded);
    printf("lock cmpxchg: %llu increments (expected %llu), %ld failed\n", (unsigned long long)cased,
           (unsigned long long)(rounds * RMW_STEPS), failures);
    printf("xchg rotation: %016llx\n", (unsigned long long)rotated);
    printf("prng, qsort, snprintf: %016llx\n", (unsigned long long)mixed);
    printf("SIGPROF handled: %s\n", ticks > 0 ? "yes" : "no");
    return 0;
}
