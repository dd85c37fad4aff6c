/* sockets: socketpair, AF_UNIX (path, relative, abstract), TCP and UDP over loopback, SCM_RIGHTS and
 * SCM_CREDENTIALS, socket options, sendmmsg/recvmmsg, SIGPIPE, netlink, and errno cases. One process, no
 * threads, no fork; only 127.0.0.1 / ::1 and the current directory. Prints deterministic facts only
 * (no ports, pids or inode numbers). An argument runs one section; none runs them all. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

static const char *ename(int e)
{
    switch (e) {
    case 0: return "OK";
    case EAGAIN: return "EAGAIN";
    case EBADF: return "EBADF";
    case ENOTSOCK: return "ENOTSOCK";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EINVAL: return "EINVAL";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EINPROGRESS: return "EINPROGRESS";
    case EADDRINUSE: return "EADDRINUSE";
    case EPIPE: return "EPIPE";
    case EOPNOTSUPP: return "EOPNOTSUPP";
    case ENOTCONN: return "ENOTCONN";
    case EFAULT: return "EFAULT";
    case EISCONN: return "EISCONN";
    case ENOENT: return "ENOENT";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EDESTADDRREQ: return "EDESTADDRREQ";
    case EMSGSIZE: return "EMSGSIZE";
    case EPERM: return "EPERM";
    case ESOCKTNOSUPPORT: return "ESOCKTNOSUPPORT";
    case EALREADY: return "EALREADY";
    default: return "E?";
    }
}

#define CHECK(expr) do { errno = 0; long r_ = (long)(expr); \
    printf("%s = %s\n", #expr, r_ < 0 ? ename(errno) : "ok"); } while (0)
#define MUST(expr) do { if ((long)(expr) < 0) { printf("FAILED %s: %s (line %d)\n", #expr, ename(errno), __LINE__); \
    exit(1); } } while (0)

static void socketpair_echo(void)
{
    int sv[2];
    char buf[64];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    MUST(write(sv[0], "ping", 4));
    ssize_t n = read(sv[1], buf, sizeof buf);
    printf("socketpair read %zd: %.*s\n", n, (int)n, buf);
    MUST(send(sv[1], "pong!", 5, 0));
    n = recv(sv[0], buf, sizeof buf, 0);
    printf("socketpair recv %zd: %.*s\n", n, (int)n, buf);
    /* readv/writev and sendmsg with several iovecs */
    struct iovec out[3] = {{"ab", 2}, {"", 0}, {"cdef", 4}};
    struct msghdr m = {.msg_iov = out, .msg_iovlen = 3};
    printf("sendmsg %zd\n", sendmsg(sv[0], &m, 0));
    char a[3], b[10];
    struct iovec in[2] = {{a, 3}, {b, 10}};
    struct msghdr r = {.msg_iov = in, .msg_iovlen = 2};
    n = recvmsg(sv[1], &r, 0);
    printf("recvmsg %zd: %.3s|%.*s flags=%d\n", n, a, (int)(n - 3), b, r.msg_flags);
    /* peek, then shutdown gives EOF on the other side */
    MUST(send(sv[0], "xyz", 3, 0));
    n = recv(sv[1], buf, 2, MSG_PEEK);
    printf("peek %zd: %.2s\n", n, buf);
    n = recv(sv[1], buf, sizeof buf, MSG_DONTWAIT);
    printf("after peek %zd: %.*s\n", n, (int)n, buf);
    CHECK(recv(sv[1], buf, sizeof buf, MSG_DONTWAIT));
    MUST(shutdown(sv[0], SHUT_WR));
    printf("after shutdown read %zd\n", read(sv[1], buf, sizeof buf));
    /* dgram pair keeps message boundaries; MSG_TRUNC reports the real length */
    int dv[2];
    MUST(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, dv));
    MUST(send(dv[0], "hello world", 11, 0));
    MUST(send(dv[0], "x", 1, 0));
    n = recv(dv[1], buf, 5, MSG_TRUNC);
    printf("dgram truncated %zd: %.5s\n", n, buf);
    n = recv(dv[1], buf, sizeof buf, 0);
    printf("dgram next %zd\n", n);
    struct iovec small = {buf, 3};
    struct msghdr tm = {.msg_iov = &small, .msg_iovlen = 1};
    MUST(send(dv[0], "abcdef", 6, 0));
    n = recvmsg(dv[1], &tm, 0);
    printf("recvmsg truncated %zd flags MSG_TRUNC=%d\n", n, !!(tm.msg_flags & MSG_TRUNC));
    close(sv[0]); close(sv[1]); close(dv[0]); close(dv[1]);
}

static void print_un(const char *what, struct sockaddr_un *a, socklen_t len)
{
    if (len <= sizeof(sa_family_t))
        printf("%s: family=%d len=%u unnamed\n", what, a->sun_family, (unsigned)len);
    else if (a->sun_path[0] == 0)
        printf("%s: family=%d abstract len-ok=%d\n", what, a->sun_family, len > 3);
    else
        printf("%s: family=%d len=%u path=%s\n", what, a->sun_family, (unsigned)len, a->sun_path);
}

static void unix_epoll(void)
{
    /* server and client in one process, nonblocking, driven by epoll */
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    strcpy(addr.sun_path, "srv.sock");
    int srv = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    MUST(srv);
    MUST(bind(srv, (struct sockaddr *)&addr, sizeof addr));
    CHECK(bind(socket(AF_UNIX, SOCK_STREAM, 0), (struct sockaddr *)&addr, sizeof addr));
    MUST(listen(srv, 4));
    struct sockaddr_un got;
    socklen_t len = sizeof got;
    MUST(getsockname(srv, (struct sockaddr *)&got, &len));
    print_un("server name", &got, len);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    MUST(ep);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0x5e5e5e5e00000001ULL};
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, srv, &ev));
    int cli = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
    MUST(cli);
    len = sizeof got;
    MUST(getsockname(cli, (struct sockaddr *)&got, &len));
    print_un("client name before connect", &got, len);
    CHECK(connect(cli, (struct sockaddr *)&addr, sizeof addr));
    struct epoll_event out[4];
    int n = epoll_wait(ep, out, 4, 1000);
    printf("epoll: %d event(s), data=%llx, in=%d\n", n, (unsigned long long)out[0].data.u64,
           !!(out[0].events & EPOLLIN));
    len = sizeof got;
    int conn = accept4(srv, (struct sockaddr *)&got, &len, SOCK_NONBLOCK);
    MUST(conn);
    print_un("accepted peer", &got, len);
    len = sizeof got;
    MUST(getpeername(cli, (struct sockaddr *)&got, &len));
    print_un("client peer", &got, len);
    CHECK(accept(srv, NULL, NULL));
    ev.events = EPOLLIN | EPOLLRDHUP;
    ev.data.u64 = 2;
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, conn, &ev));
    ev.events = EPOLLIN;
    ev.data.u64 = 3;
    MUST(epoll_ctl(ep, EPOLL_CTL_ADD, cli, &ev));
    CHECK(read(conn, &n, sizeof n));
    MUST(write(cli, "request", 7));
    n = epoll_wait(ep, out, 4, 1000);
    printf("epoll: %d event(s), data=%llu\n", n, (unsigned long long)out[0].data.u64);
    char buf[32];
    n = read(conn, buf, sizeof buf);
    printf("server got %d: %.*s\n", n, n, buf);
    MUST(write(conn, "reply", 5));
    n = epoll_wait(ep, out, 4, 1000);
    printf("epoll: %d event(s), data=%llu\n", n, (unsigned long long)out[0].data.u64);
    n = read(cli, buf, sizeof buf);
    printf("client got %d: %.*s\n", n, n, buf);
    close(cli);
    n = epoll_wait(ep, out, 4, 1000);
    printf("epoll after close: %d event(s), data=%llu rdhup=%d\n", n, (unsigned long long)out[0].data.u64,
           !!(out[0].events & EPOLLRDHUP));
    printf("read at eof %zd\n", read(conn, buf, sizeof buf));
    close(conn); close(srv); close(ep);
    /* an unbound client connecting to a missing path; unlink and rebind */
    cli = socket(AF_UNIX, SOCK_STREAM, 0);
    strcpy(addr.sun_path, "missing.sock");
    CHECK(connect(cli, (struct sockaddr *)&addr, sizeof addr));
    strcpy(addr.sun_path, "srv.sock");
    CHECK(connect(cli, (struct sockaddr *)&addr, sizeof addr));
    MUST(unlink("srv.sock"));
    close(cli);
    /* absolute path and a datagram socket addressed by name */
    char cwd[512];
    MUST(getcwd(cwd, sizeof cwd) ? 0 : -1);
    struct sockaddr_un d = {.sun_family = AF_UNIX};
    snprintf(d.sun_path, sizeof d.sun_path, "%s/dgram.sock", cwd);
    if (strlen(cwd) + 12 < sizeof d.sun_path) {
        int rx = socket(AF_UNIX, SOCK_DGRAM, 0), tx = socket(AF_UNIX, SOCK_DGRAM, 0);
        MUST(bind(rx, (struct sockaddr *)&d, offsetof(struct sockaddr_un, sun_path) + strlen(d.sun_path) + 1));
        struct sockaddr_un txa = {.sun_family = AF_UNIX};
        strcpy(txa.sun_path, "tx.sock");
        MUST(bind(tx, (struct sockaddr *)&txa, sizeof txa));
        MUST(sendto(tx, "dg", 2, 0, (struct sockaddr *)&d, sizeof d));
        len = sizeof got;
        n = recvfrom(rx, buf, sizeof buf, 0, (struct sockaddr *)&got, &len);
        printf("dgram %d from ", n);
        print_un("sender", &got, len);
        len = sizeof got;
        MUST(getsockname(rx, (struct sockaddr *)&got, &len));
        printf("absolute name matches: %d (len ok %d)\n", strcmp(got.sun_path, d.sun_path) == 0,
               len == offsetof(struct sockaddr_un, sun_path) + strlen(d.sun_path) + 1);
        /* a too-short address buffer: truncated copy, full length reported */
        char tiny[4];
        len = sizeof tiny;
        MUST(getsockname(tx, (struct sockaddr *)tiny, &len));
        printf("short buffer: len=%u first=%c%c\n", (unsigned)len, tiny[2], tiny[3]);
        close(rx); close(tx);
    }
    /* abstract names pass unchanged */
    struct sockaddr_un ab = {.sun_family = AF_UNIX};
    int alen = snprintf(ab.sun_path + 1, sizeof ab.sun_path - 1, "hermipy-test-%d", getpid()) + 1 +
               offsetof(struct sockaddr_un, sun_path);
    int as = socket(AF_UNIX, SOCK_STREAM, 0), ac = socket(AF_UNIX, SOCK_STREAM, 0);
    MUST(bind(as, (struct sockaddr *)&ab, alen));
    MUST(listen(as, 1));
    MUST(connect(ac, (struct sockaddr *)&ab, alen));
    len = sizeof got;
    MUST(getpeername(ac, (struct sockaddr *)&got, &len));
    printf("abstract peer len matches %d, name matches %d\n", (int)len == alen, memcmp(&got, &ab, alen) == 0);
    close(as); close(ac);
}

static void tcp_loopback(int family)
{
    struct sockaddr_storage ss = {0};
    socklen_t slen;
    if (family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        a->sin_family = AF_INET;
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        slen = sizeof *a;
    } else {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        a->sin6_family = AF_INET6;
        a->sin6_addr = in6addr_loopback;
        slen = sizeof *a;
    }
    int srv = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv < 0 && family == AF_INET6) {
        printf("no ipv6\n");
        return;
    }
    MUST(srv);
    int one = 1;
    MUST(setsockopt(srv, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one));
    MUST(bind(srv, (struct sockaddr *)&ss, slen));
    MUST(listen(srv, 8));
    socklen_t len = sizeof ss;
    MUST(getsockname(srv, (struct sockaddr *)&ss, &len));
    int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    printf("tcp%d bound: len=%u port nonzero=%d\n", family == AF_INET ? 4 : 6, (unsigned)len, port != 0);
    int cli = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    MUST(cli);
    errno = 0;
    int r = connect(cli, (struct sockaddr *)&ss, len);
    printf("nonblocking connect: %s\n", r == 0 || errno == EINPROGRESS ? "ok-or-inprogress" : ename(errno));
    struct pollfd p = {cli, POLLOUT, 0};
    printf("poll writable: %d\n", poll(&p, 1, 2000));
    int err = -1;
    socklen_t elen = sizeof err;
    MUST(getsockopt(cli, SOL_SOCKET, SO_ERROR, &err, &elen));
    printf("SO_ERROR after connect: %s\n", ename(err));
    struct sockaddr_storage peer;
    len = sizeof peer;
    int conn = accept(srv, (struct sockaddr *)&peer, &len);
    MUST(conn);
    struct sockaddr_storage cname;
    socklen_t clen = sizeof cname;
    MUST(getsockname(cli, (struct sockaddr *)&cname, &clen));
    printf("accepted: peer len=%u matches client name=%d\n", (unsigned)len,
           len == clen && memcmp(&peer, &cname, len) == 0);
    MUST(setsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one));
    int nd = 0;
    socklen_t ndl = sizeof nd;
    MUST(getsockopt(conn, IPPROTO_TCP, TCP_NODELAY, &nd, &ndl));
    printf("TCP_NODELAY=%d\n", nd);
    MUST(send(cli, "over tcp", 8, 0));
    char buf[64];
    ssize_t n = recv(conn, buf, 8, MSG_WAITALL);
    printf("server recv %zd: %.*s\n", n, (int)n, buf);
    MUST(send(conn, "back", 4, MSG_NOSIGNAL));
    p.events = POLLIN;
    poll(&p, 1, 2000);
    n = recv(cli, buf, sizeof buf, 0);
    printf("client recv %zd: %.*s\n", n, (int)n, buf);
    CHECK(connect(cli, (struct sockaddr *)&ss, len));
    close(conn);
    close(cli);
    /* connection refused on a port nobody listens on any more */
    close(srv);
    int c2 = socket(family, SOCK_STREAM, 0);
    CHECK(connect(c2, (struct sockaddr *)&ss, slen));
    close(c2);
    int c3 = socket(family, SOCK_STREAM | SOCK_NONBLOCK, 0);
    errno = 0;
    r = connect(c3, (struct sockaddr *)&ss, slen);
    if (r < 0 && errno == EINPROGRESS) {
        p.fd = c3;
        p.events = POLLOUT;
        poll(&p, 1, 2000);
    }
    elen = sizeof err;
    MUST(getsockopt(c3, SOL_SOCKET, SO_ERROR, &err, &elen));
    printf("nonblocking refused: SO_ERROR=%s\n", r < 0 && errno != EINPROGRESS ? ename(errno) : ename(err));
    close(c3);
}

static void udp_loopback(void)
{
    int a = socket(AF_INET, SOCK_DGRAM, 0), b = socket(AF_INET, SOCK_DGRAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    MUST(bind(a, (struct sockaddr *)&sa, sizeof sa));
    MUST(bind(b, (struct sockaddr *)&sa, sizeof sa));
    struct sockaddr_in an, bn, from;
    socklen_t len = sizeof an;
    MUST(getsockname(a, (struct sockaddr *)&an, &len));
    len = sizeof bn;
    MUST(getsockname(b, (struct sockaddr *)&bn, &len));
    MUST(sendto(a, "datagram", 8, 0, (struct sockaddr *)&bn, sizeof bn));
    char buf[64];
    len = sizeof from;
    ssize_t n = recvfrom(b, buf, sizeof buf, 0, (struct sockaddr *)&from, &len);
    printf("udp recvfrom %zd: %.*s from-len=%u from matches=%d\n", n, (int)n, buf, (unsigned)len,
           from.sin_port == an.sin_port && from.sin_addr.s_addr == an.sin_addr.s_addr);
    CHECK(send(a, "x", 1, 0));
    MUST(connect(a, (struct sockaddr *)&bn, sizeof bn));
    MUST(send(a, "connected", 9, 0));
    n = recv(b, buf, sizeof buf, 0);
    printf("udp connected send: %zd\n", n);
    /* sendmmsg / recvmmsg */
    struct iovec iov[3] = {{"one", 3}, {"two!", 4}, {"three", 5}};
    struct mmsghdr mm[3];
    memset(mm, 0, sizeof mm);
    for (int i = 0; i < 3; i++) {
        mm[i].msg_hdr.msg_iov = &iov[i];
        mm[i].msg_hdr.msg_iovlen = 1;
    }
    printf("sendmmsg %d: lens %u %u %u\n", sendmmsg(a, mm, 3, 0), mm[0].msg_len, mm[1].msg_len, mm[2].msg_len);
    char bufs[4][16];
    struct iovec riov[4];
    struct sockaddr_in names[4];
    struct mmsghdr rm[4];
    memset(rm, 0, sizeof rm);
    for (int i = 0; i < 4; i++) {
        riov[i].iov_base = bufs[i];
        riov[i].iov_len = sizeof bufs[i];
        rm[i].msg_hdr.msg_iov = &riov[i];
        rm[i].msg_hdr.msg_iovlen = 1;
        rm[i].msg_hdr.msg_name = &names[i];
        rm[i].msg_hdr.msg_namelen = sizeof names[i];
    }
    int got = recvmmsg(b, rm, 4, MSG_WAITFORONE, NULL);
    printf("recvmmsg %d:", got);
    for (int i = 0; i < got; i++)
        printf(" %.*s(namelen %u)", rm[i].msg_len, bufs[i], rm[i].msg_hdr.msg_namelen);
    printf("\n");
    CHECK(recvmmsg(b, rm, 4, MSG_DONTWAIT, NULL));
    close(a);
    close(b);
}

static void pass_fds(void)
{
    int sv[2], pipefd[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    MUST(pipe(pipefd));
    union { struct cmsghdr h; char buf[CMSG_SPACE(2 * sizeof(int))]; } u;
    memset(&u, 0, sizeof u);
    struct iovec iov = {"F", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf, .msg_controllen = CMSG_SPACE(2 * sizeof(int))};
    struct cmsghdr *c = CMSG_FIRSTHDR(&m);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(2 * sizeof(int));
    int fds[2] = {pipefd[0], pipefd[1]};
    memcpy(CMSG_DATA(c), fds, sizeof fds);
    printf("sendmsg with 2 fds: %zd\n", sendmsg(sv[0], &m, 0));
    close(pipefd[0]);
    close(pipefd[1]);
    union { struct cmsghdr h; char buf[CMSG_SPACE(2 * sizeof(int))]; } r;
    char ch;
    struct iovec riov = {&ch, 1};
    struct msghdr rm = {.msg_iov = &riov, .msg_iovlen = 1, .msg_control = r.buf, .msg_controllen = sizeof r.buf};
    ssize_t n = recvmsg(sv[1], &rm, MSG_CMSG_CLOEXEC);
    struct cmsghdr *rc = CMSG_FIRSTHDR(&rm);
    printf("recvmsg %zd '%c' controllen=%zu level=%d type=%d len=%zu\n", n, ch, (size_t)rm.msg_controllen,
           rc->cmsg_level, rc->cmsg_type, (size_t)rc->cmsg_len);
    int got[2];
    memcpy(got, CMSG_DATA(rc), sizeof got);
    printf("received fds are the lowest free: %d %d\n", got[0] == pipefd[0], got[1] == pipefd[1]);
    MUST(write(got[1], "through", 7));
    char buf[16];
    n = read(got[0], buf, sizeof buf);
    printf("pipe via passed fds: %zd %.*s\n", n, (int)n, buf);
    close(got[0]);
    close(got[1]);
    /* a bad fd in SCM_RIGHTS; a control buffer too small for the fds (MSG_CTRUNC) */
    int bad = 999;
    memcpy(CMSG_DATA(c), &bad, sizeof bad);
    c->cmsg_len = CMSG_LEN(sizeof(int));
    m.msg_controllen = CMSG_SPACE(sizeof(int));
    CHECK(sendmsg(sv[0], &m, 0));
    int sock = socket(AF_INET, SOCK_DGRAM, 0);
    memcpy(CMSG_DATA(c), &sock, sizeof sock);
    MUST(sendmsg(sv[0], &m, 0));
    close(sock);
    char tiny[CMSG_LEN(0)];
    rm.msg_control = tiny;
    rm.msg_controllen = sizeof tiny;
    n = recvmsg(sv[1], &rm, 0);
    printf("small control: %zd ctrunc=%d controllen=%zu\n", n, !!(rm.msg_flags & MSG_CTRUNC), (size_t)rm.msg_controllen);
    /* the passed socket is closed now: sending it again is EBADF and nothing is queued */
    CHECK(sendmsg(sv[0], &m, 0));
    rm.msg_control = r.buf;
    rm.msg_controllen = sizeof r.buf;
    CHECK(recvmsg(sv[1], &rm, MSG_DONTWAIT));
    /* SCM_CREDENTIALS */
    int one = 1;
    MUST(setsockopt(sv[1], SOL_SOCKET, SO_PASSCRED, &one, sizeof one));
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(struct ucred))]; } cu;
    memset(&cu, 0, sizeof cu);
    struct msghdr cm = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cu.buf, .msg_controllen = sizeof cu.buf};
    c = CMSG_FIRSTHDR(&cm);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_CREDENTIALS;
    c->cmsg_len = CMSG_LEN(sizeof(struct ucred));
    struct ucred cred = {getpid(), getuid(), getgid()};
    memcpy(CMSG_DATA(c), &cred, sizeof cred);
    printf("sendmsg with creds: %zd\n", sendmsg(sv[0], &cm, 0));
    union { struct cmsghdr h; char buf[CMSG_SPACE(sizeof(struct ucred))]; } cr;
    rm.msg_control = cr.buf;
    rm.msg_controllen = sizeof cr.buf;
    n = recvmsg(sv[1], &rm, 0);
    rc = CMSG_FIRSTHDR(&rm);
    struct ucred back;
    memcpy(&back, CMSG_DATA(rc), sizeof back);
    printf("creds: type=%d pid ok=%d uid ok=%d gid ok=%d\n", rc->cmsg_type, back.pid == getpid(),
           back.uid == getuid(), back.gid == getgid());
    struct ucred peer;
    socklen_t plen = sizeof peer;
    MUST(getsockopt(sv[0], SOL_SOCKET, SO_PEERCRED, &peer, &plen));
    printf("SO_PEERCRED: len=%u pid ok=%d\n", (unsigned)plen, peer.pid == getpid());
    close(sv[0]);
    close(sv[1]);
}

static void options(void)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0), t = socket(AF_UNIX, SOCK_SEQPACKET, 0);
    int v = 0;
    socklen_t len = sizeof v;
    MUST(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
    printf("SO_TYPE udp=%d len=%u\n", v, (unsigned)len);
    len = sizeof v;
    MUST(getsockopt(t, SOL_SOCKET, SO_TYPE, &v, &len));
    printf("SO_TYPE seqpacket=%d\n", v);
    len = sizeof v;
    MUST(getsockopt(t, SOL_SOCKET, SO_DOMAIN, &v, &len));
    printf("SO_DOMAIN=%d\n", v);
    len = sizeof v;
    MUST(getsockopt(s, SOL_SOCKET, SO_ERROR, &v, &len));
    printf("SO_ERROR=%d\n", v);
    len = sizeof v;
    MUST(getsockopt(t, SOL_SOCKET, SO_ACCEPTCONN, &v, &len));
    printf("SO_ACCEPTCONN=%d\n", v);
    v = 65536;
    MUST(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, sizeof v));
    len = sizeof v;
    MUST(getsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, &len));
    printf("SO_RCVBUF doubled=%d\n", v == 131072);
    char small[2];
    len = sizeof small;
    MUST(getsockopt(s, SOL_SOCKET, SO_TYPE, small, &len));
    printf("SO_TYPE into 2 bytes: len=%u\n", (unsigned)len);
    struct timeval tv = {1, 500000};
    MUST(setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv));
    struct timeval tv2;
    len = sizeof tv2;
    MUST(getsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv2, &len));
    printf("SO_RCVTIMEO %ld.%06ld\n", (long)tv2.tv_sec, (long)tv2.tv_usec);
    struct linger lg = {1, 5};
    MUST(setsockopt(t, SOL_SOCKET, SO_LINGER, &lg, sizeof lg));
    len = sizeof lg;
    MUST(getsockopt(t, SOL_SOCKET, SO_LINGER, &lg, &len));
    printf("SO_LINGER %d %d\n", lg.l_onoff, lg.l_linger);
    CHECK(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, -1));
    CHECK(setsockopt(s, SOL_SOCKET, SO_RCVBUF, &v, 2));
    len = -1;
    CHECK(getsockopt(s, SOL_SOCKET, SO_TYPE, &v, &len));
    CHECK(getsockopt(s, 12345, 1, &v, &len));
    close(s);
    close(t);
}

/* an unmapped address the compiler cannot see through */
static void *volatile bad_ptr = (void *)8;

static void errors(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char buf[8];
    socklen_t len = sizeof sa;
    int fd = open("/dev/null", O_RDONLY);
    CHECK(socket(12345, SOCK_STREAM, 0));
    CHECK(socket(AF_INET, 12345, 0));
    CHECK(socket(AF_INET, SOCK_STREAM, 12345));
    CHECK(socket(AF_UNIX, SOCK_STREAM | 0x100000, 0));
    CHECK(bind(99, (struct sockaddr *)&sa, sizeof sa));
    CHECK(bind(fd, (struct sockaddr *)&sa, sizeof sa));
    CHECK(connect(99, (struct sockaddr *)&sa, sizeof sa));
    CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa));
    CHECK(listen(fd, 1));
    CHECK(accept(fd, NULL, NULL));
    CHECK(getsockname(fd, (struct sockaddr *)&sa, &len));
    CHECK(send(fd, "x", 1, 0));
    CHECK(recv(99, buf, 1, 0));
    CHECK(shutdown(fd, SHUT_RD));
    CHECK(setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &len, sizeof len));
    int s = socket(AF_INET, SOCK_STREAM, 0);
    CHECK(bind(s, (struct sockaddr *)&sa, -1));
    CHECK(bind(s, (struct sockaddr *)&sa, 200));
    CHECK(bind(s, (struct sockaddr *)&sa, 4));
    CHECK(bind(s, (struct sockaddr *)bad_ptr, sizeof sa));
    CHECK(accept(s, NULL, NULL));
    CHECK(getpeername(s, (struct sockaddr *)&sa, &len));
    CHECK(send(s, "x", 1, MSG_NOSIGNAL));
    CHECK(shutdown(s, 7));
    CHECK(shutdown(s, SHUT_RDWR));
    struct sockaddr_un un = {.sun_family = AF_UNIX};
    CHECK(connect(s, (struct sockaddr *)&un, sizeof un));
    int u = socket(AF_UNIX, SOCK_STREAM, 0);
    CHECK(connect(u, (struct sockaddr *)&sa, sizeof sa));
    CHECK(listen(socket(AF_INET, SOCK_DGRAM, 0), 1));
    CHECK(socketpair(AF_INET, SOCK_STREAM, 0, (int *)buf));
    CHECK(socketpair(AF_UNIX, SOCK_STREAM, 0, (int *)bad_ptr));
    CHECK(getsockname(s, (struct sockaddr *)&sa, (socklen_t *)bad_ptr));
    int d = socket(AF_INET, SOCK_DGRAM, 0);
    CHECK(send(d, "x", 1, 0));
    struct iovec iov = {buf, 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 2000};
    CHECK(sendmsg(d, &m, 0));
    m.msg_iovlen = 1;
    m.msg_name = &sa;
    m.msg_namelen = -1;
    CHECK(sendmsg(d, &m, 0));
    close(fd);
    close(s);
    close(u);
    close(d);
}

static int pipes_seen;
static void on_pipe(int sig) { (void)sig; pipes_seen++; }

static void sigpipe(void)
{
    int sv[2];
    MUST(socketpair(AF_UNIX, SOCK_STREAM, 0, sv));
    close(sv[1]);
    CHECK(send(sv[0], "x", 1, MSG_NOSIGNAL));
    signal(SIGPIPE, on_pipe);
    CHECK(send(sv[0], "x", 1, 0));
    printf("SIGPIPE handled %d time(s)\n", pipes_seen);
    struct iovec iov = {"y", 1};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1};
    CHECK(sendmsg(sv[0], &m, 0));
    printf("SIGPIPE handled %d time(s)\n", pipes_seen);
    signal(SIGPIPE, SIG_DFL);
    fflush(stdout);
    send(sv[0], "z", 1, 0);
    printf("not reached\n");
}

/* uapi/linux/netlink.h and rtnetlink.h, spelled out (musl ships no kernel headers) */
struct nl_addr { sa_family_t nl_family; unsigned short nl_pad; uint32_t nl_pid, nl_groups; };
struct nl_hdr { uint32_t len; uint16_t type, flags; uint32_t seq, pid; };
struct nl_ifinfo { unsigned char family, pad; unsigned short type; int index; unsigned flags, change; };
enum { NL_ROUTE = 0, NL_DONE = 3, RTM_NEWLINK_ = 16, RTM_GETLINK_ = 18, NLF_REQUEST = 1, NLF_DUMP = 0x300 };

static void netlink(void)
{
    int s = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NL_ROUTE);
    MUST(s);
    struct nl_addr nl = {.nl_family = AF_NETLINK};
    MUST(bind(s, (struct sockaddr *)&nl, sizeof nl));
    socklen_t len = sizeof nl;
    MUST(getsockname(s, (struct sockaddr *)&nl, &len));
    printf("netlink bound: family=%d len=%u\n", nl.nl_family, (unsigned)len);
    struct { struct nl_hdr h; struct nl_ifinfo i; } req = {
        .h = {.len = sizeof req, .type = RTM_GETLINK_, .flags = NLF_REQUEST | NLF_DUMP, .seq = 1},
        .i = {.family = AF_UNSPEC}};
    MUST(send(s, &req, sizeof req, 0));
    static char buf[65536];
    int found_lo = 0, done = 0;
    while (!done) {
        ssize_t n = recv(s, buf, sizeof buf, 0);
        MUST(n);
        for (size_t off = 0; off + sizeof(struct nl_hdr) <= (size_t)n;) {
            struct nl_hdr *h = (struct nl_hdr *)(buf + off);
            if (h->len < sizeof *h || off + h->len > (size_t)n) break;
            if (h->type == NL_DONE) { done = 1; break; }
            if (h->type == RTM_NEWLINK_ && (((struct nl_ifinfo *)(h + 1))->flags & 0x8 /* IFF_LOOPBACK */))
                found_lo = 1;
            off += (h->len + 3) & ~3u;
        }
    }
    printf("netlink dump: loopback found=%d\n", found_lo);
    close(s);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IONBF, 0);
    const char *only = argc > 1 ? argv[1] : NULL;
#define SECTION(name, call) if (!only || !strcmp(only, name)) { printf("== %s\n", name); call; }
    SECTION("socketpair", socketpair_echo());
    SECTION("unix", unix_epoll());
    SECTION("tcp4", tcp_loopback(AF_INET));
    SECTION("tcp6", tcp_loopback(AF_INET6));
    SECTION("udp", udp_loopback());
    SECTION("fds", pass_fds());
    SECTION("options", options());
    SECTION("errors", errors());
    SECTION("netlink", netlink());
    if (only && !strcmp(only, "sigpipe"))
        sigpipe();
    printf("done\n");
    return 0;
}
