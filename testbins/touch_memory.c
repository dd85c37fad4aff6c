/* Map and touch MIB MiB of anonymous memory (touch_memory MIB): run with hermipy's --memory below it, the guest
 * must die as Linux's OOM killer ends a process (SIGKILL), after "mapped" and before "touched". */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int main(int argc, char **argv)
{
    size_t size = (size_t)(argc > 1 ? atol(argv[1]) : 128) << 20;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        perror("mmap");
        return 1;
    }
    printf("mapped\n");
    fflush(stdout);
    memset(p, 1, size);
    printf("touched\n");
    return 0;
}
