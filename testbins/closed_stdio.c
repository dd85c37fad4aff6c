/* For tests/test_cli.py: run with one of fds 0-2 closed (`prog >&-`), it reports on the other open ones what a
 * write to each standard fd, a read of fd 0 and fcntl(F_GETFD) of each give. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int report = -1;

static void say(const char *what, long result) {
    char line[128];
    int n = snprintf(line, sizeof line, "%s: %s\n", what, result < 0 ? strerror(errno) : "ok");
    if (report >= 0)
        write(report, line, n);
}

int main(void) {
    for (int fd = 2; fd >= 1; fd--)             /* report on stderr, or stdout when stderr is the closed one */
        if (fcntl(fd, F_GETFD) >= 0 && report < 0)
            report = fd;
    for (int fd = 0; fd <= 2; fd++) {
        char what[32];
        snprintf(what, sizeof what, "fcntl(%d, F_GETFD)", fd);
        say(what, fcntl(fd, F_GETFD));
    }
    char c;
    say("read(0)", fcntl(0, F_GETFD) < 0 ? read(0, &c, 1) : 0);
    say("write(1)", fcntl(1, F_GETFD) < 0 ? write(1, "x", 1) : 0);
    say("write(2)", fcntl(2, F_GETFD) < 0 ? write(2, "x", 1) : 0);
    int fd = open("/dev/null", O_RDONLY);
    char what[32];
    snprintf(what, sizeof what, "open gets fd %d", fd);
    say(what, fd);
    return 3;
}
