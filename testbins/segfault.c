/* segfault: a NULL write with no handler installed: killed by SIGSEGV (exit 139, "Segmentation fault"). */
#include <stdio.h>

int main(void)
{
    printf("before the fault\n");
    fflush(stdout);
    *(volatile int *)0 = 42;
    printf("not reached\n");
    return 0;
}
