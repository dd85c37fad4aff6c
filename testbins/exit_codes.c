/* exit_codes: exit with the status given as argv[1], the way argv[2] says:
 *   exit     printf (unflushed) then exit(): stdio is flushed, the text appears
 *   _exit    printf (unflushed) then _exit(): the buffer is lost when stdout is not a terminal
 *   return   return from main
 *   group    the raw exit_group syscall
 *   thread   the raw exit syscall (one thread: the process ends)
 *   atexit   an atexit handler prints, then exit() */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static void at_exit_handler(void) { printf("atexit handler ran\n"); }

int main(int argc, char **argv)
{
    int code = argc > 1 ? atoi(argv[1]) : 0;
    const char *how = argc > 2 ? argv[2] : "exit";
    fprintf(stderr, "stderr is unbuffered (%s %d)\n", how, code);
    printf("buffered text before %s(%d)", how, code);
    if (!strcmp(how, "_exit"))
        _exit(code);
    if (!strcmp(how, "return"))
        return code;
    if (!strcmp(how, "group"))
        syscall(SYS_exit_group, code);
    if (!strcmp(how, "thread"))
        syscall(SYS_exit, code);
    if (!strcmp(how, "atexit"))
        atexit(at_exit_handler);
    exit(code);
}
