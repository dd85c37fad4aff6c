/* Calls that wait for another process: a blocking read, recv and accept, and epoll_wait with a timeout, each
 * on something a forked child makes ready ~200 ms later; then an epoll_wait that times out. Prints what each
 * returned (issue 16: under --exitless such a wait sleeps in an exit, not in the server while the guest spins). */
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void later(void) {
    struct timespec t = {0, 200 * 1000 * 1000};
    nanosleep(&t, NULL);
}

int main(void) {
    int p[2], sv[2], ev[2];
    char buf[16];
    if (pipe(p) || socketpair(AF_UNIX, SOCK_STREAM, 0, sv) || socketpair(AF_UNIX, SOCK_STREAM, 0, ev))
        return 1;
    int srv = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(srv, (struct sockaddr *)&a, sizeof a) || listen(srv, 1) || getsockname(srv, (struct sockaddr *)&a, &len))
        return 2;
    pid_t child = fork();
    if (child == 0) {
        later();
        if (write(p[1], "pipe", 4) != 4) return 3;
        later();
        if (send(sv[1], "socket", 6, 0) != 6) return 4;
        later();
        int c = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(c, (struct sockaddr *)&a, sizeof a)) return 5;
        later();
        if (write(ev[1], "event", 5) != 5) return 6;
        later();
        return 0;
    }
    ssize_t n = read(p[0], buf, sizeof buf);
    printf("read: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    n = recv(sv[0], buf, sizeof buf, 0);
    printf("recv: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    int conn = accept(srv, NULL, NULL);
    printf("accept: %s\n", conn >= 0 ? "a connection" : "failed");
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.u32 = 7}, out[2];
    epoll_ctl(ep, EPOLL_CTL_ADD, ev[0], &e);
    int ready = epoll_wait(ep, out, 2, 5000);
    printf("epoll_wait: %d, data %u\n", ready, ready > 0 ? out[0].data.u32 : 0);
    n = read(ev[0], buf, sizeof buf);
    printf("read: %zd %.*s\n", n, (int)(n > 0 ? n : 0), buf);
    printf("epoll_wait, nothing ready: %d\n", epoll_wait(ep, out, 2, 100));
    int status;
    waitpid(child, &status, 0);
    printf("child: %d\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 0;
}
