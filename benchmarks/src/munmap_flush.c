/* 3000 x (mmap 64 KiB, touch its 16 pages, munmap): the cost of the page-table flushes munmap makes on KVM
 * (benchmarks/RESULTS.md, "Isolation"). Build: gcc -O2 -static -o munmap_flush munmap_flush.c */
#include <stdio.h>
#include <sys/mman.h>
#include <time.h>
int main(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 3000; i++) {
        char *p = mmap(0, 65536, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        for (int j = 0; j < 65536; j += 4096) p[j] = 1;
        munmap(p, 65536);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    printf("%.1f us per mmap+touch16+munmap\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 3000 / 1e3);
}
