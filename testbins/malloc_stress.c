/* malloc_stress: many malloc/free/realloc of varied sizes driven by a deterministic PRNG, including
 * allocations above the mmap threshold and calloc zeroing. Prints checksums only. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SLOTS 1024

static uint64_t rng = 0x9E3779B97F4A7C15ULL;

static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static size_t pick_size(void)
{
    uint64_t r = next() % 1000;
    if (r < 600) return 1 + next() % 128;                 /* small: tcache/fastbins */
    if (r < 900) return 128 + next() % 4096;              /* medium */
    if (r < 990) return 4096 + next() % (120 * 1024);     /* large, below the mmap threshold */
    return (256 * 1024) + next() % (2 * 1024 * 1024);     /* above M_MMAP_THRESHOLD: mmap'd chunks */
}

struct slot { unsigned char *p; size_t n; unsigned char tag; };

static void fill(struct slot *s)
{
    for (size_t i = 0; i < s->n; i += (s->n > 4096 ? 61 : 1)) s->p[i] = (unsigned char)(s->tag + i);
    s->p[s->n - 1] = s->tag;
}

static int check(const struct slot *s, size_t upto)
{
    size_t n = upto < s->n ? upto : s->n;
    for (size_t i = 0; i < n - (n == s->n); i += (s->n > 4096 ? 61 : 1))
        if (s->p[i] != (unsigned char)(s->tag + i)) return 0;
    return 1;
}

int main(int argc, char **argv)
{
    long rounds = argc > 1 ? atol(argv[1]) : 60000;
    static struct slot slots[SLOTS];
    unsigned long allocs = 0, frees = 0, reallocs = 0, callocs = 0, bad = 0;
    uint64_t checksum = 1469598103934665603ULL;
    for (long r = 0; r < rounds; r++) {
        struct slot *s = &slots[next() % SLOTS];
        uint64_t op = next() % 10;
        if (s->p == NULL) {
            s->n = pick_size();
            s->tag = (unsigned char)next();
            if (op < 2) {
                s->p = calloc(1, s->n);
                callocs++;
                if (!s->p) { puts("calloc failed"); return 1; }
                for (size_t i = 0; i < s->n; i++) if (s->p[i]) { bad++; break; }
            } else {
                s->p = malloc(s->n);
                allocs++;
                if (!s->p) { puts("malloc failed"); return 1; }
            }
            if (((uintptr_t)s->p & 15) != 0) bad++;
            fill(s);
        } else if (op < 3) {
            size_t old = s->n, n = pick_size();
            unsigned char *q = realloc(s->p, n);
            reallocs++;
            if (!q) { puts("realloc failed"); return 1; }
            s->p = q;
            if (!check(s, n < old ? n - 1 : old - 1)) bad++;
            s->n = n;
            fill(s);
        } else {
            if (!check(s, s->n)) bad++;
            for (size_t i = 0; i < s->n; i += (s->n > 4096 ? 61 : 1))    /* only bytes fill() wrote */
                checksum = (checksum ^ s->p[i]) * 1099511628211ULL;
            free(s->p);
            s->p = NULL;
            frees++;
        }
    }
    for (int i = 0; i < SLOTS; i++) {
        if (slots[i].p) {
            if (!check(&slots[i], slots[i].n)) bad++;
            free(slots[i].p);
            frees++;
        }
    }
    /* calloc of big blocks after frees must still read as zero (reused memory gets cleared) */
    for (int i = 0; i < 8; i++) {
        size_t n = (size_t)(i + 1) * 300 * 1024;
        unsigned char *p = malloc(n);
        memset(p, 0xEE, n);
        free(p);
        p = calloc(n, 1);
        for (size_t j = 0; j < n; j += 511) if (p[j]) { bad++; break; }
        free(p);
    }
    unsigned char *small = calloc(1000, 16);
    int nz = 0;
    for (int j = 0; j < 16000; j++) nz |= small[j];
    free(small);
    printf("allocs %lu callocs %lu reallocs %lu frees %lu\n", allocs, callocs, reallocs, frees);
    printf("checksum %016llx\n", (unsigned long long)checksum);
    printf("bad %lu zero %d\n", bad, !nz);
    /* an impossible request fails cleanly */
    void *huge = malloc((size_t)1 << 62);
    printf("huge malloc: %s\n", huge ? "succeeded" : "NULL");
    return bad != 0;
}
