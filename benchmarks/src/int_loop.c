/* A CPU-bound integer loop (xorshift), no syscalls. */
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>

int main(int argc, char **argv) {
    long n = argc > 1 ? atol(argv[1]) : 50000000;
    uint64_t x = 88172645463325252ull, acc = 0;
    for (long i = 0; i < n; i++) { x ^= x << 13; x ^= x >> 7; x ^= x << 17; acc += x & 0xff; }
    printf("%llu\n", (unsigned long long)acc);
    return 0;
}
