/* The hermipy command in C: `hermipy run --server SOCKET` without starting Python (hermipy/client.py's served
 * path, which costs the interpreter's own start, 5-7 ms, and ~3.4 MiB a running client).
 *
 * A `run` whose options are all known here (RUN_OPTIONS_WITH_VALUE, RUN_FLAGS: tests/test_serve.py keeps
 * them equal to hermipy.client's), with --server or $HERMIPY_SERVER, stdin not a terminal and fds 0-2 open,
 * is served from this process: the request of hermipy/serve.py's protocol, the guest's pidfd, every signal
 * this process receives forwarded to the guest (a terminal's, si_code SI_KERNEL: to its process group), its
 * stops, and the guest's exit status as this process's (128+N and a death by N for a killing signal).
 * Everything else is exec'd, unchanged, to Python's hermipy.client.entry, as is a run the server says a direct
 * run must make. setup.py builds this as the installed `hermipy` where a C compiler is found (bin/hermipy,
 * the same in Python, otherwise), with HERMIPY_PYTHON the interpreter hermipy was installed for. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>

#ifndef HERMIPY_PYTHON
#define HERMIPY_PYTHON "python3"
#endif

static const char *const RUN_OPTIONS_WITH_VALUE[] = {"--strace-file", "--root", "-E", "--backend", "--memory",
                                                     "--stats", "--server", "--image", "--persist", "--record",
                                                     NULL};
static const char *const RUN_FLAGS[] = {"--strace", "--clear-env", "--strict", "--no-rewrite", "--exitless",
                                        "--debug", NULL};
enum { SI_KERNEL_CODE = 0x80, RLIMITS = 16, MAX_ATTACHED = 8 };

extern char **environ;

static int known(const char *const *names, const char *word, size_t length)
{
    for (; *names; names++)
        if (strlen(*names) == length && memcmp(*names, word, length) == 0)
            return 1;
    return 0;
}

/* The server socket of `hermipy ARGV` when it is a run through a server whose options are all known here
 * (hermipy.client.served_run); NULL: Python decides. */
static const char *served_run(int argc, char **argv)
{
    const char *server = NULL;
    if (argc < 2 || strcmp(argv[1], "run") != 0)
        return NULL;
    for (int i = 2; i < argc;) {
        const char *word = argv[i], *equals = strchr(word, '=');
        size_t length = equals ? (size_t)(equals - word) : strlen(word);
        if (word[0] != '-' || strcmp(word, "-") == 0)
            break;                                  /* the binary: what follows is the guest's */
        if (known(RUN_FLAGS, word, length) && !equals) {
            i++;
        } else if (known(RUN_OPTIONS_WITH_VALUE, word, length)) {
            const char *value = equals ? equals + 1 : (i + 1 < argc ? argv[i + 1] : NULL);
            if (!value)
                return NULL;
            if (length == 8 && memcmp(word, "--server", 8) == 0)
                server = value;
            i += equals ? 1 : 2;
        } else {
            return NULL;                            /* --help, --, -Evalue, abbreviations: argparse's */
        }
    }
    if (!server || !*server)
        server = getenv("HERMIPY_SERVER");
    return server && *server ? server : NULL;
}

/* The interpreter hermipy was installed for; else python3 beside this program (a venv's bin/). */
static const char *python_path(void)
{
    static char beside[PATH_MAX];
    if (access(HERMIPY_PYTHON, X_OK) == 0)
        return HERMIPY_PYTHON;
    ssize_t n = readlink("/proc/self/exe", beside, sizeof beside - 16);
    if (n > 0) {
        beside[n] = 0;
        char *slash = strrchr(beside, '/');
        if (slash) {
            strcpy(slash + 1, "python3");
            if (access(beside, X_OK) == 0)
                return beside;
        }
    }
    return HERMIPY_PYTHON;
}

/* hermipy.client.entry (or direct_entry: a run the server said must be direct) with this command line. */
static void exec_python(int argc, char **argv, int direct)
{
    const char *python = python_path();
    char **args = calloc((size_t)argc + 4, sizeof *args);
    if (!args)
        abort();
    args[0] = (char *)python;
    args[1] = "-P";                                 /* the cwd is not searched for a `hermipy` package */
    args[2] = "-c";
    args[3] = direct ? "from hermipy.client import direct_entry; direct_entry()"
                     : "from hermipy.client import entry; entry()";
    memcpy(args + 4, argv + 1, (size_t)(argc - 1) * sizeof *args);
    execvp(python, args);
    fprintf(stderr, "hermipy: cannot start Python (%s): %s\n", python, strerror(errno));
    _exit(127);
}

static void fail(int status, const char *format, ...)
{
    va_list ap;
    va_start(ap, format);
    fputs("hermipy: ", stderr);
    vfprintf(stderr, format, ap);
    fputc('\n', stderr);
    va_end(ap);
    _exit(status);
}

/* -- the request: JSON --------------------------------------------------------------------------------- */

struct text {
    char *data;
    size_t length, size;
};

static void add(struct text *t, const char *data, size_t length)
{
    if (t->length + length + 1 > t->size) {
        t->size = (t->length + length + 1) * 2;
        t->data = realloc(t->data, t->size);
        if (!t->data)
            abort();
    }
    memcpy(t->data + t->length, data, length);
    t->length += length;
    t->data[t->length] = 0;
}

static void addf(struct text *t, const char *format, ...)
{
    char line[64];
    va_list ap;
    va_start(ap, format);
    int n = vsnprintf(line, sizeof line, format, ap);
    va_end(ap);
    add(t, line, (size_t)n);
}

/* The length of the well-formed UTF-8 sequence at s (its code point in *code), 0 if it is not one. */
static size_t utf8_sequence(const unsigned char *s, unsigned *code)
{
    unsigned c = s[0], low = 0x80, high = 0xBF, value;
    int more;
    if (c < 0x80) {
        *code = c;
        return 1;
    }
    if (c >= 0xC2 && c <= 0xDF) {
        more = 1, value = c & 0x1F;
    } else if (c >= 0xE0 && c <= 0xEF) {
        more = 2, value = c & 0x0F;
        low = c == 0xE0 ? 0xA0 : 0x80, high = c == 0xED ? 0x9F : 0xBF;        /* no overlongs, no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        more = 3, value = c & 0x07;
        low = c == 0xF0 ? 0x90 : 0x80, high = c == 0xF4 ? 0x8F : 0xBF;        /* no overlongs, ≤ U+10FFFF */
    } else {
        return 0;
    }
    for (int i = 1; i <= more; i++) {
        unsigned d = s[i];
        if (i == 1 ? d < low || d > high : d < 0x80 || d > 0xBF)
            return 0;
        value = value << 6 | (d & 0x3F);
    }
    *code = value;
    return (size_t)more + 1;
}

/* A file-system string as a JSON string of what os.fsdecode makes of it: UTF-8, each byte that is not part of
 * well-formed UTF-8 as the lone surrogate U+DC80+byte (surrogateescape), non-ASCII escaped. */
static void add_string(struct text *t, const char *string)
{
    const unsigned char *s = (const unsigned char *)string;
    add(t, "\"", 1);
    while (*s) {
        unsigned code;
        size_t n = utf8_sequence(s, &code);
        if (n == 0) {
            code = 0xDC00 | *s;
            n = 1;
        }
        s += n;
        if (code == '"' || code == '\\') {
            char escaped[2] = {'\\', (char)code};
            add(t, escaped, 2);
        } else if (code >= 0x20 && code < 0x7F) {
            char plain = (char)code;
            add(t, &plain, 1);
        } else if (code >= 0x10000) {
            addf(t, "\\u%04x\\u%04x", 0xD800 + ((code - 0x10000) >> 10), 0xDC00 + ((code - 0x10000) & 0x3FF));
        } else {
            addf(t, "\\u%04x", code);
        }
    }
    add(t, "\"", 1);
}

/* What the server's child needs to be this process's direct run (hermipy.client._request). */
static struct text request(int argc, char **argv, const sigset_t *forwarded)
{
    struct text t = {0};
    add(&t, "{\"argv\": [", 10);
    for (int i = 1; i < argc; i++) {
        if (i > 1)
            add(&t, ", ", 2);
        add_string(&t, argv[i]);
    }
    add(&t, "], \"environ\": [", 15);
    int first = 1;
    for (char **e = environ; *e; e++) {
        if (!strchr(*e, '='))
            continue;
        if (!first)
            add(&t, ", ", 2);
        first = 0;
        add_string(&t, *e);
    }
    mode_t mask = umask(0);
    umask(mask);
    addf(&t, "], \"fds\": [0, 1, 2], \"umask\": %u, \"rlimits\": {", (unsigned)mask);
    for (int r = 0; r < RLIMITS; r++) {
        struct rlimit limit;
        if (r == 10 || getrlimit(r, &limit) != 0)   /* RLIMIT_LOCKS: not in Python's resource module */
            continue;
        addf(&t, "%s\"%d\": [%lld, %lld]", r ? ", " : "", r, (long long)limit.rlim_cur, (long long)limit.rlim_max);
    }
    add(&t, "}, \"ignored\": [", 15);
    first = 1;
    for (int s = 1; s <= 31; s++) {                 /* Python ignores SIGPIPE and SIGXFSZ itself: never sent */
        struct sigaction action;
        if (!sigismember(forwarded, s) || s == SIGPIPE || s == SIGXFSZ || sigaction(s, NULL, &action) != 0 ||
            action.sa_handler != SIG_IGN)
            continue;
        addf(&t, first ? "%d" : ", %d", s);
        first = 0;
    }
    add(&t, "], \"blocked\": [", 15);
    sigset_t blocked;
    sigprocmask(SIG_BLOCK, NULL, &blocked);
    first = 1;
    for (int s = 1; s < 64; s++) {
        if (sigismember(forwarded, s) && sigismember(&blocked, s)) {
            addf(&t, first ? "%d" : ", %d", s);
            first = 0;
        }
    }
    addf(&t, "], \"gid\": %u, \"groups\": [", (unsigned)getgid());
    gid_t groups[NGROUPS_MAX];
    int count = getgroups(NGROUPS_MAX, groups);
    for (int i = 0; i < count; i++)
        addf(&t, i ? ", %u" : "%u", (unsigned)groups[i]);
    add(&t, "]}", 2);
    return t;
}

/* The request, with fds 0-2 and the cwd attached to its first bytes. */
static void send_request(int sock, const char *path, const struct text *body)
{
    int cwd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (cwd < 0)
        fail(2, "the current directory: %s", strerror(errno));
    int fds[4] = {0, 1, 2, cwd};
    unsigned char head[4] = {body->length & 0xFF, body->length >> 8 & 0xFF, body->length >> 16 & 0xFF,
                             body->length >> 24 & 0xFF};
    union {
        char buffer[CMSG_SPACE(sizeof fds)];
        struct cmsghdr align;
    } control;
    struct iovec iov = {head, sizeof head};
    struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                             .msg_controllen = sizeof control.buffer};
    struct cmsghdr *cmsg = CMSG_FIRSTHDR(&message);
    cmsg->cmsg_level = SOL_SOCKET;
    cmsg->cmsg_type = SCM_RIGHTS;
    cmsg->cmsg_len = CMSG_LEN(sizeof fds);
    memcpy(CMSG_DATA(cmsg), fds, sizeof fds);
    ssize_t sent = sendmsg(sock, &message, MSG_NOSIGNAL);
    close(cwd);
    size_t done = 0;
    if (sent == (ssize_t)sizeof head) {
        while (done < body->length) {
            sent = send(sock, body->data + done, body->length - done, MSG_NOSIGNAL);
            if (sent < 0 && errno == EINTR)
                continue;
            if (sent <= 0)
                break;
            done += (size_t)sent;
        }
    }
    if (done < body->length)
        fail(2, "--server %s: %s", path, sent < 0 ? strerror(errno) : "short write");
}

/* -- the answers: one flat JSON object a line ----------------------------------------------------------- */

struct answer {
    int has_started, has_stopped, has_exit, has_killed, has_error, direct;
    long started, exit, killed;
    char error[4096];
};

static const char *skip_space(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static unsigned hex4(const char *p)
{
    char digits[5] = {0};
    memcpy(digits, p, 4);
    return (unsigned)strtoul(digits, NULL, 16);
}

/* A JSON string at p (after its quote) decoded into out as UTF-8 (a lone U+DC80-U+DCFF as the byte it
 * escapes, as os.fsencode makes it); returns what follows the closing quote, NULL if malformed. */
static const char *json_string(const char *p, char *out, size_t size)
{
    size_t n = 0;
    while (*p && *p != '"') {
        unsigned code = (unsigned char)*p++;
        if (code == '\\') {
            char c = *p++;
            switch (c) {
            case 'n': code = '\n'; break;
            case 'r': code = '\r'; break;
            case 't': code = '\t'; break;
            case 'b': code = '\b'; break;
            case 'f': code = '\f'; break;
            case 'u':
                if (strnlen(p, 4) < 4)
                    return NULL;
                code = hex4(p);
                p += 4;
                if (code >= 0xD800 && code < 0xDC00 && p[0] == '\\' && p[1] == 'u' && strnlen(p + 2, 4) == 4) {
                    unsigned low = hex4(p + 2);
                    if (low >= 0xDC00 && low < 0xE000) {
                        code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00);
                        p += 6;
                    }
                }
                break;
            case 0: return NULL;
            default: code = (unsigned char)c;
            }
        }
        char bytes[4];
        size_t length = 1;
        if (code < 0x80 || (code >= 0xDC80 && code <= 0xDCFF)) {
            bytes[0] = (char)(code & 0xFF);
        } else if (code < 0x800) {
            bytes[0] = (char)(0xC0 | code >> 6), bytes[1] = (char)(0x80 | (code & 0x3F)), length = 2;
        } else if (code < 0x10000) {
            bytes[0] = (char)(0xE0 | code >> 12), bytes[1] = (char)(0x80 | (code >> 6 & 0x3F));
            bytes[2] = (char)(0x80 | (code & 0x3F)), length = 3;
        } else {
            bytes[0] = (char)(0xF0 | code >> 18), bytes[1] = (char)(0x80 | (code >> 12 & 0x3F));
            bytes[2] = (char)(0x80 | (code >> 6 & 0x3F)), bytes[3] = (char)(0x80 | (code & 0x3F)), length = 4;
        }
        if (n + length < size) {
            memcpy(out + n, bytes, length);
            n += length;
        }
    }
    out[n] = 0;
    return *p == '"' ? p + 1 : NULL;
}

/* One answer line; 0 if it is not a flat JSON object of strings, integers and literals. */
static int parse_answer(const char *p, struct answer *a)
{
    memset(a, 0, sizeof *a);
    p = skip_space(p);
    if (*p++ != '{')
        return 0;
    for (p = skip_space(p); *p != '}';) {
        char key[32], scratch[8];
        if (*p != '"' || !(p = json_string(p + 1, key, sizeof key)))
            return 0;
        p = skip_space(p);
        if (*p++ != ':')
            return 0;
        p = skip_space(p);
        if (*p == '"') {
            int is_error = strcmp(key, "error") == 0;
            if (!(p = json_string(p + 1, is_error ? a->error : scratch, is_error ? sizeof a->error : sizeof scratch)))
                return 0;
            a->has_error |= is_error;
        } else if (*p == '-' || (*p >= '0' && *p <= '9')) {
            char *end;
            long value = strtol(p, &end, 10);
            p = end;
            if (strcmp(key, "started") == 0)
                a->has_started = 1, a->started = value;
            else if (strcmp(key, "stopped") == 0)
                a->has_stopped = 1;
            else if (strcmp(key, "exit") == 0)
                a->has_exit = 1, a->exit = value;
            else if (strcmp(key, "killed") == 0)
                a->has_killed = 1, a->killed = value;
        } else if (strncmp(p, "true", 4) == 0 || strncmp(p, "false", 5) == 0 || strncmp(p, "null", 4) == 0) {
            if (strcmp(key, "direct") == 0)
                a->direct = *p == 't';
            p += *p == 'f' ? 5 : 4;
        } else {
            return 0;
        }
        p = skip_space(p);
        if (*p == ',')
            p = skip_space(p + 1);
        else if (*p != '}')
            return 0;
    }
    return 1;
}

/* End this process by signo, as the guest's process ended (no core file of the client's). */
static void die_by(int signo)
{
    struct rlimit core;
    if (getrlimit(RLIMIT_CORE, &core) == 0) {
        core.rlim_cur = 0;
        setrlimit(RLIMIT_CORE, &core);
    }
    signal(signo, SIG_DFL);
    sigset_t only;
    sigemptyset(&only);
    sigaddset(&only, signo);
    sigprocmask(SIG_UNBLOCK, &only, NULL);
    raise(signo);
    _exit(128 + signo);
}

static void forward(int pid, int pidfd, const struct signalfd_siginfo *info)
{
    if (info->ssi_code == SI_KERNEL_CODE)          /* a terminal's: to the whole foreground job */
        killpg(pid, (int)info->ssi_signo);
    else
        syscall(SYS_pidfd_send_signal, pidfd, (int)info->ssi_signo, NULL, 0);
    /* failures: the guest has ended, its status is on its way */
}

/* hermipy ARGV run by the server at path; returns the guest's exit status. */
static int run_through_server(const char *path, int argc, char **argv)
{
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (sock < 0)
        fail(2, "--server %s: %s", path, strerror(errno));
    if (strlen(path) >= sizeof address.sun_path)
        fail(2, "--server %s: AF_UNIX path too long", path);
    strcpy(address.sun_path, path);
    if (connect(sock, (struct sockaddr *)&address, sizeof address) != 0)
        fail(2, "--server %s: %s", path, strerror(errno));
    struct ucred peer;
    socklen_t size = sizeof peer;
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &peer, &size) != 0)
        fail(2, "--server %s: %s", path, strerror(errno));
    if (peer.uid != getuid())
        fail(2, "--server %s: the server runs as uid %d, not as this user", path, (int)peer.uid);
    sigset_t forwarded;                             /* hermipy.client.FORWARDED: 1-63 but SIGKILL, SIGSTOP */
    sigfillset(&forwarded);                         /* (glibc leaves out 32 and 33, as Python's does) */
    sigdelset(&forwarded, SIGKILL);
    sigdelset(&forwarded, SIGSTOP);
    sigdelset(&forwarded, 64);
    struct text body = request(argc, argv, &forwarded);
    sigprocmask(SIG_BLOCK, &forwarded, NULL);       /* from here on, the signalfd takes them */
    int signals = signalfd(-1, &forwarded, SFD_CLOEXEC);
    if (signals < 0)
        fail(2, "signalfd: %s", strerror(errno));
    send_request(sock, path, &body);
    free(body.data);

    static char lines[1 << 16];
    size_t have = 0;
    int pid = 0, pidfd = -1, attached[MAX_ATTACHED], attached_count = 0;
    for (;;) {
        char *newline;
        while ((newline = memchr(lines, '\n', have))) {
            struct answer a;
            *newline = 0;
            int ok = parse_answer(lines, &a);
            have -= (size_t)(newline + 1 - lines);
            memmove(lines, newline + 1, have);
            if (!ok)
                fail(70, "--server %s: an answer that is not JSON", path);
            if (a.has_started && attached_count) {
                pid = (int)a.started, pidfd = attached[0];
                memmove(attached, attached + 1, (size_t)--attached_count * sizeof *attached);
            } else if (a.has_stopped) {
                kill(getpid(), SIGSTOP);            /* as the guest did; the shell sees this job stop */
            } else if (a.has_exit) {
                return (int)a.exit;
            } else if (a.has_killed) {
                die_by((int)a.killed);
            } else if (a.has_error) {
                if (a.direct) {
                    close(sock);
                    close(signals);
                    sigprocmask(SIG_UNBLOCK, &forwarded, NULL);
                    exec_python(argc, argv, 1);
                }
                fail(2, "%s", a.error);
            }
        }
        struct pollfd ready[2] = {{.fd = sock, .events = POLLIN}, {.fd = signals, .events = POLLIN}};
        if (poll(ready, pidfd >= 0 ? 2 : 1, -1) < 0) {
            if (errno == EINTR)
                continue;
            fail(70, "poll: %s", strerror(errno));
        }
        if (ready[1].revents & POLLIN) {
            struct signalfd_siginfo info;
            if (read(signals, &info, sizeof info) == (ssize_t)sizeof info)
                forward(pid, pidfd, &info);
        }
        if (ready[0].revents) {
            if (have == sizeof lines)
                fail(70, "--server %s: an answer longer than %zu bytes", path, sizeof lines);
            union {
                char buffer[CMSG_SPACE(MAX_ATTACHED * sizeof(int))];
                struct cmsghdr align;
            } control;
            struct iovec iov = {lines + have, sizeof lines - have};
            struct msghdr message = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.buffer,
                                     .msg_controllen = sizeof control.buffer};
            ssize_t n = recvmsg(sock, &message, MSG_CMSG_CLOEXEC);
            if (n < 0 && errno == EINTR)
                continue;
            for (struct cmsghdr *c = CMSG_FIRSTHDR(&message); c; c = CMSG_NXTHDR(&message, c)) {
                if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
                    continue;
                for (size_t i = 0; i + sizeof(int) <= c->cmsg_len - CMSG_LEN(0); i += sizeof(int)) {
                    int fd;
                    memcpy(&fd, CMSG_DATA(c) + i, sizeof fd);
                    if (attached_count < MAX_ATTACHED)
                        attached[attached_count++] = fd;
                    else
                        close(fd);
                }
            }
            if (n <= 0)
                fail(70, "--server %s: the server ended the connection", path);
            have += (size_t)n;
        }
    }
}

static int is_open(int fd)
{
    return fcntl(fd, F_GETFD) != -1;
}

int main(int argc, char **argv)
{
    const char *server = served_run(argc, argv);
    if (!server || isatty(0) || !is_open(0) || !is_open(1) || !is_open(2))
        exec_python(argc, argv, 0);
    _exit(run_through_server(server, argc, argv));
}
