/* abort: abort() raises SIGABRT through the C library's own path (exit 134, "Aborted"). */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    printf("calling abort\n");
    fflush(stdout);
    abort();
}
