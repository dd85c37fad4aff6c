/* The --root path race (issue 13 item 1): one process swaps the directory /d with the symlink /l
 * (renameat2 RENAME_EXCHANGE, in a loop) while this one runs a path call on /d/NAME. /l points to
 * "../outside", which the host resolves to a directory beside the root and the guest to the missing
 * /outside: a call that the host walks by path string lands outside the root whenever the swap falls
 * between hermipy's walk and the host's.
 *
 * Usage: root_race OP ITERATIONS   (in a root holding d/{secret,victim,emptydir/} and l -> ../outside)
 * Each OP runs ITERATIONS times, and on until both outcomes were seen (the call succeeding on the inside
 * file, and failing because /d was the link), for at most 20 s. It prints one line of counts; anything seen
 * from the outside (its bytes, its size, its attribute, a connection to its socket) is an "ESCAPE" line and
 * exit status 1. The caller checks the outside directory itself for what was written or changed. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)    /* linux/fs.h; glibc's stdio.h has it, musl's not */
#endif
#define INSIDE "inside\n"           /* d/secret's content; the outside secret's is longer */

static int escapes;

static void escape(const char *what)
{
    printf("ESCAPE: %s\n", what);
    escapes++;
}

static void swap_forever(void)
{
    for (;;)
        syscall(SYS_renameat2, AT_FDCWD, "/d", AT_FDCWD, "/l", RENAME_EXCHANGE);
}

static int unix_socket_call(const char *path, int bind_it)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    int s = socket(AF_UNIX, SOCK_STREAM, 0), r;
    strcpy(addr.sun_path, path);
    r = bind_it ? bind(s, (struct sockaddr *)&addr, sizeof addr) : connect(s, (struct sockaddr *)&addr, sizeof addr);
    close(s);
    return r;
}

/* One try of OP: 0 when its main call succeeded, -1 (errno set) when it failed. */
static int try_op(const char *op, int i)
{
    char buf[64];
    struct stat st;
    int fd, r;

    if (!strcmp(op, "read")) {
        if ((fd = open("/d/secret", O_RDONLY)) < 0)
            return -1;
        r = read(fd, buf, sizeof buf);
        close(fd);
        if (r != (int)strlen(INSIDE) || memcmp(buf, INSIDE, r))
            escape("read bytes that are not the inside file's");
        return 0;
    }
    if (!strcmp(op, "creat")) {
        if ((fd = open("/d/secret", O_CREAT | O_WRONLY | O_TRUNC, 0644)) < 0)
            return -1;
        r = write(fd, INSIDE, strlen(INSIDE));
        close(fd);
        if ((fd = open("/d/made", O_CREAT | O_WRONLY, 0644)) >= 0)
            close(fd);
        return r < 0 ? -1 : 0;
    }
    if (!strcmp(op, "chmod"))
        return chmod("/d/secret", i & 1 ? 0600 : 0644);
    if (!strcmp(op, "stat")) {
        if (stat("/d/secret", &st) < 0)
            return -1;
        if (st.st_size != (off_t)strlen(INSIDE))
            escape("stat saw a file that is not the inside one");
        if (lstat("/d/secret", &st) == 0 && st.st_size != (off_t)strlen(INSIDE))
            escape("lstat saw a file that is not the inside one");
        return 0;
    }
    if (!strcmp(op, "truncate"))
        return truncate("/d/secret", strlen(INSIDE));
    if (!strcmp(op, "utime"))
        return utimensat(AT_FDCWD, "/d/secret", NULL, 0);
    if (!strcmp(op, "unlink")) {
        if ((fd = open("/d/victim", O_CREAT | O_WRONLY, 0644)) >= 0)
            close(fd);
        return unlink("/d/victim");
    }
    if (!strcmp(op, "rename"))          /* whichever name the last try left */
        return rename("/d/victim", "/d/victim2") == 0 ? 0 : rename("/d/victim2", "/d/victim");
    if (!strcmp(op, "mkdir")) {
        rmdir("/d/emptydir");
        mkdir("/d/emptydir", 0755);
        rmdir("/d/newdir");
        return mkdir("/d/newdir", 0755);
    }
    if (!strcmp(op, "link")) {
        unlink("/d/hard");
        return link("/d/secret", "/d/hard");
    }
    if (!strcmp(op, "xattr")) {
        if (getxattr("/d/secret", "user.outside", buf, sizeof buf) >= 0)
            escape("getxattr read the outside file's attribute");
        if (setxattr("/d/secret", "user.race", "1", 1, 0) < 0)
            return -1;
        removexattr("/d/secret", "user.race");
        return 0;
    }
    if (!strcmp(op, "bind")) {
        if (unix_socket_call("/d/outsock", 0) == 0)
            escape("connected to the outside socket");
        unlink("/d/sock");
        return unix_socket_call("/d/sock", 1);
    }
    fprintf(stderr, "unknown op %s\n", op);
    exit(2);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s OP ITERATIONS\n", argv[0]);
        return 2;
    }
    int iterations = atoi(argv[2]), ok = 0, failed = 0, other = 0, i, status;
    double start = now();
    pid_t racer = fork();
    if (racer == 0)
        swap_forever();
    for (i = 0; i < iterations || ((!ok || !failed) && now() - start < 20); i++) {
        if (try_op(argv[1], i) == 0)
            ok++;
        else if (errno == ENOENT)
            failed++;
        else if (other++ < 3)
            printf("%s: errno %d\n", argv[1], errno);
    }
    kill(racer, SIGKILL);
    waitpid(racer, &status, 0);
    printf("%s: %d tries, %d ok, %d ENOENT, %d other errors, %d escapes\n", argv[1], i, ok, failed, other, escapes);
    return escapes != 0;
}
