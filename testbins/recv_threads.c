/* Threads receiving at the same time, each on sockets of its own: every message must arrive intact, with its
 * own sender's address. Each thread sends numbered datagrams between two UDP sockets on 127.0.0.1 and reads
 * them back with recvfrom (payload and source address), recvmsg (payload and msg_name) and recv; a kernel that
 * received through one buffer or one address buffer for all threads hands one thread another's bytes. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#define THREADS 3
#define ROUNDS 3000

struct job {
    int id, bad_data, bad_addr, failed;
};

static int udp_socket(struct sockaddr_in *addr)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    socklen_t len = sizeof *addr;
    memset(addr, 0, sizeof *addr);
    addr->sin_family = AF_INET;
    addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (s < 0 || bind(s, (struct sockaddr *)addr, sizeof *addr) || getsockname(s, (struct sockaddr *)addr, &len))
        return -1;
    return s;
}

static void *receiver(void *arg)
{
    struct job *job = arg;
    struct sockaddr_in a_addr, b_addr;
    int a = udp_socket(&a_addr), b = udp_socket(&b_addr);
    if (a < 0 || b < 0) {
        job->failed = 1;
        return NULL;
    }
    for (int i = 0; i < ROUNDS; i++) {
        char out[200], in[256];
        int len = snprintf(out, sizeof out, "thread %d message %d %0*d", job->id, i, 100 + job->id * 40 + i % 7, i);
        if (sendto(a, out, len, 0, (struct sockaddr *)&b_addr, sizeof b_addr) != len) {
            job->failed = 1;
            return NULL;
        }
        struct sockaddr_in from;
        socklen_t from_len = sizeof from;
        ssize_t n;
        switch (i % 3) {
        case 0:
            n = recvfrom(b, in, sizeof in, 0, (struct sockaddr *)&from, &from_len);
            break;
        case 1: {
            struct iovec iov = {in, sizeof in};
            struct msghdr msg = {.msg_name = &from, .msg_namelen = sizeof from, .msg_iov = &iov, .msg_iovlen = 1};
            n = recvmsg(b, &msg, 0);
            from_len = msg.msg_namelen;
            break;
        }
        default:
            n = recv(b, in, sizeof in, 0);
            from = a_addr;
            from_len = sizeof from;
        }
        if (n != len || memcmp(in, out, len))
            job->bad_data++;
        if (from_len != sizeof from || from.sin_port != a_addr.sin_port || from.sin_addr.s_addr != a_addr.sin_addr.s_addr)
            job->bad_addr++;
    }
    close(a);
    close(b);
    return NULL;
}

int main(void)
{
    pthread_t threads[THREADS];
    struct job jobs[THREADS];
    for (int t = 0; t < THREADS; t++) {
        jobs[t] = (struct job){.id = t};
        pthread_create(&threads[t], NULL, receiver, &jobs[t]);
    }
    for (int t = 0; t < THREADS; t++) {
        pthread_join(threads[t], NULL);
        printf("thread %d: %d datagrams, %s; payloads wrong %d, sender addresses wrong %d\n", t, ROUNDS,
               jobs[t].failed ? "failed" : "all sent", jobs[t].bad_data, jobs[t].bad_addr);
    }
    return 0;
}
