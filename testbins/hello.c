/* hello: the smallest differential test: stdout, stderr, exit status 0. */
#include <stdio.h>

int main(void)
{
    printf("Hello, world!\n");
    fprintf(stderr, "a line on stderr\n");
    return 0;
}
