/* A sleeping hello (the density workload): says hello, then waits for the end of its stdin. */
#include <stdio.h>
#include <unistd.h>

int main(void)
{
    char byte;
    printf("hello, sleeping\n");
    fflush(stdout);
    while (read(0, &byte, 1) > 0)
        ;
    return 0;
}
