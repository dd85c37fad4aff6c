/* cpu_mixed: a CPU-bound mixed workload (also the benchmark): a sieve of Eratosthenes, qsort of a
 * PRNG array, and FNV-1a hashing of snprintf-formatted integers and doubles.
 * usage: cpu_mixed [SCALE]   (default 1; work grows linearly with SCALE) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t rng_state = 88172645463325252ULL;

static uint64_t next(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static long sieve(long n)
{
    char *composite = calloc(n + 1, 1);
    long count = 0;
    for (long i = 2; i <= n; i++) {
        if (composite[i]) continue;
        count++;
        for (long j = i * i; j <= n; j += i) composite[j] = 1;
    }
    free(composite);
    return count;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static uint64_t sort_check(long n)
{
    uint32_t *v = malloc(n * sizeof *v);
    for (long i = 0; i < n; i++) v[i] = (uint32_t)next();
    qsort(v, n, sizeof *v, cmp_u32);
    uint64_t h = 0;
    int ordered = 1;
    for (long i = 0; i < n; i++) {
        if (i && v[i - 1] > v[i]) ordered = 0;
        h = h * 1000003 + v[i];
    }
    free(v);
    return ordered ? h : 0;
}

static uint64_t fnv_format(long n)
{
    uint64_t h = 14695981039346656037ULL;
    char buf[128];
    for (long i = 0; i < n; i++) {
        int64_t x = (int64_t)next();
        double d = (double)(x % 1000000007) / 1234.5678;
        int len = snprintf(buf, sizeof buf, "%ld|%lx|%.6f|%g|%e", (long)(x >> 20), (unsigned long)x, d, d, d * 1e-3);
        for (int j = 0; j < len; j++) h = (h ^ (unsigned char)buf[j]) * 1099511628211ULL;
    }
    return h;
}

int main(int argc, char **argv)
{
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale < 1) {
        fprintf(stderr, "usage: cpu_mixed [SCALE>=1]\n");
        return 2;
    }
    long primes = 0;
    uint64_t sorted = 0, formatted = 0;
    for (long s = 0; s < scale; s++) {
        primes += sieve(3000000);
        sorted ^= sort_check(150000);
        formatted ^= fnv_format(15000);
    }
    printf("primes %ld\n", primes);
    printf("sort %016llx\n", (unsigned long long)sorted);
    printf("format %016llx\n", (unsigned long long)formatted);
    return 0;
}
