/* threads: POSIX threads — creation and join, mutexes, atomics, condition variables, barriers, rwlocks, TLS and
 * thread-specific data, detached threads, cancellation, per-thread signals and masks, fork and exec from a thread,
 * robust, process-shared and named synchronisation objects.
 *
 * One argument names a section; with none, every section of ALL runs in order and "done" ends the output. Each
 * section prints only facts computed after its threads were joined (never per-thread progress), so the output is
 * the same however the threads are scheduled; nothing depends on timing to be correct. The sections not in ALL
 * end the process (main_exit, exit_group, exec_thread) or need shared memory across fork (pshared, sem_open).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <sys/prctl.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <sched.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#define CHECK(call) do { int rc_ = (call); if (rc_) { printf("%s failed: %s\n", #call, strerror(rc_)); exit(1); } } while (0)

static pid_t tid(void) { return (pid_t)syscall(SYS_gettid); }

static const char *err_name(int e)
{
    switch (e) {
    case 0: return "0";
    case EOWNERDEAD: return "EOWNERDEAD";
    case ENOTRECOVERABLE: return "ENOTRECOVERABLE";
    case EBUSY: return "EBUSY";
    case EINVAL: return "EINVAL";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EDEADLK: return "EDEADLK";
    case EPERM: return "EPERM";
    case EAGAIN: return "EAGAIN";
    default: return "E?";
    }
}

static void describe_status(const char *what, int status)
{
    if (WIFEXITED(status))
        printf("%s: exited %d\n", what, WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        printf("%s: killed by signal %d\n", what, WTERMSIG(status));
    else
        printf("%s: status %#x\n", what, status);
}

/* ---------------------------------------------------------------- create64 */

static void *times3(void *arg) { return (void *)((intptr_t)arg * 3); }

static char own_stack[256 * 1024] __attribute__((aligned(64)));

static void *on_own_stack(void *arg)
{
    char local;
    (void)arg;
    return (void *)(intptr_t)(&local > own_stack && &local < own_stack + sizeof own_stack);
}

static void sec_create64(void)
{
    pthread_t t[64];
    long sum = 0;
    for (intptr_t i = 0; i < 64; i++)
        CHECK(pthread_create(&t[i], NULL, times3, (void *)i));
    for (int i = 0; i < 64; i++) {
        void *ret;
        CHECK(pthread_join(t[i], &ret));
        sum += (intptr_t)ret;
    }
    printf("create64: sum %ld\n", sum);

    pthread_attr_t attr;
    pthread_t s;
    void *ret;
    CHECK(pthread_attr_init(&attr));
    CHECK(pthread_attr_setstack(&attr, own_stack, sizeof own_stack));
    CHECK(pthread_create(&s, &attr, on_own_stack, NULL));
    CHECK(pthread_join(s, &ret));
    pthread_attr_destroy(&attr);
    printf("create64: thread ran on the stack it was given: %ld\n", (long)(intptr_t)ret);

    CHECK(pthread_attr_init(&attr));
    CHECK(pthread_attr_setstacksize(&attr, 64 * 1024));
    for (intptr_t i = 0; i < 8; i++)
        CHECK(pthread_create(&t[i], &attr, times3, (void *)(i + 100)));
    sum = 0;
    for (int i = 0; i < 8; i++) {
        CHECK(pthread_join(t[i], &ret));
        sum += (intptr_t)ret;
    }
    pthread_attr_destroy(&attr);
    printf("create64: 64 KiB stacks, sum %ld\n", sum);
}

/* ---------------------------------------------------------------- mutex, atomic */

#define WORKERS 4
#define INCREMENTS 100000

static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;
static long counter;

static void *mutex_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < INCREMENTS; i++) {
        pthread_mutex_lock(&counter_lock);
        counter++;
        pthread_mutex_unlock(&counter_lock);
    }
    return NULL;
}

static void sec_mutex(void)
{
    pthread_t t[WORKERS];
    counter = 0;
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&t[i], NULL, mutex_worker, NULL));
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(t[i], NULL));
    printf("mutex: total %ld\n", counter);

    pthread_mutexattr_t attr;
    pthread_mutex_t m;
    CHECK(pthread_mutexattr_init(&attr));
    CHECK(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK));
    CHECK(pthread_mutex_init(&m, &attr));
    CHECK(pthread_mutex_lock(&m));
    printf("mutex: errorcheck relock %s, trylock %s\n", err_name(pthread_mutex_lock(&m)),
           err_name(pthread_mutex_trylock(&m)));
    CHECK(pthread_mutex_unlock(&m));
    printf("mutex: errorcheck unlock when unlocked %s\n", err_name(pthread_mutex_unlock(&m)));
    pthread_mutex_destroy(&m);
    CHECK(pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE));
    CHECK(pthread_mutex_init(&m, &attr));
    int a = pthread_mutex_lock(&m), b = pthread_mutex_lock(&m), c = pthread_mutex_trylock(&m);
    printf("mutex: recursive lock x3 %s %s %s\n", err_name(a), err_name(b), err_name(c));
    for (int i = 0; i < 3; i++)
        CHECK(pthread_mutex_unlock(&m));
    pthread_mutex_destroy(&m);
    pthread_mutexattr_destroy(&attr);
}

static long atomic_counter;
static unsigned atomic_cas_counter;

static void *atomic_worker(void *arg)
{
    (void)arg;
    for (int i = 0; i < INCREMENTS; i++) {
        __atomic_fetch_add(&atomic_counter, 1, __ATOMIC_SEQ_CST);
        unsigned old = __atomic_load_n(&atomic_cas_counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&atomic_cas_counter, &old, old + 2, 1, __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED))
            ;
    }
    return NULL;
}

static void sec_atomic(void)
{
    pthread_t t[WORKERS];
    atomic_counter = 0;
    atomic_cas_counter = 0;
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&t[i], NULL, atomic_worker, NULL));
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(t[i], NULL));
    printf("atomic: fetch_add total %ld, compare_exchange total %u\n", atomic_counter, atomic_cas_counter);
}

/* ---------------------------------------------------------------- condvar */

#define QSIZE 16
#define ITEMS 10000

static struct {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    int items[QSIZE];
    int head, count;
} queue = { PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER };

static void put(int v)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.count == QSIZE)
        pthread_cond_wait(&queue.not_full, &queue.lock);
    queue.items[(queue.head + queue.count++) % QSIZE] = v;
    pthread_cond_signal(&queue.not_empty);
    pthread_mutex_unlock(&queue.lock);
}

static int get(void)
{
    pthread_mutex_lock(&queue.lock);
    while (queue.count == 0)
        pthread_cond_wait(&queue.not_empty, &queue.lock);
    int v = queue.items[queue.head];
    queue.head = (queue.head + 1) % QSIZE;
    queue.count--;
    pthread_cond_signal(&queue.not_full);
    pthread_mutex_unlock(&queue.lock);
    return v;
}

static void *producer(void *arg)
{
    int first = (int)(intptr_t)arg;
    for (int v = first; v < first + ITEMS / 2; v++)
        put(v);
    return NULL;
}

struct consumed { long sum; long count; };

static void *consumer(void *arg)
{
    struct consumed *c = arg;
    for (;;) {
        int v = get();
        if (v < 0)
            return NULL;
        c->sum += v;
        c->count++;
    }
}

static void sec_condvar(void)
{
    pthread_t p[2], c[2];
    struct consumed got[2] = { { 0, 0 }, { 0, 0 } };
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&c[i], NULL, consumer, &got[i]));
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&p[i], NULL, producer, (void *)(intptr_t)(1 + i * ITEMS / 2)));
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(p[i], NULL));
    put(-1);
    put(-1);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(c[i], NULL));
    printf("condvar: consumed %ld items, sum %ld\n", got[0].count + got[1].count, got[0].sum + got[1].sum);

    static pthread_mutex_t m = PTHREAD_MUTEX_INITIALIZER;
    static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_nsec += 1000000;                     /* 1 ms from now, nobody signals: must time out */
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&m);
    int r;
    do
        r = pthread_cond_timedwait(&cv, &m, &deadline);
    while (r == 0);
    pthread_mutex_unlock(&m);
    printf("condvar: timedwait with nobody signalling: %s\n", r == ETIMEDOUT ? "ETIMEDOUT" : err_name(r));
}

static pthread_mutex_t bcast_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t bcast_cv = PTHREAD_COND_INITIALIZER, bcast_arrived = PTHREAD_COND_INITIALIZER;
static int bcast_go, bcast_waiting, bcast_woken;

static void *bcast_waiter(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&bcast_lock);
    bcast_waiting++;
    pthread_cond_signal(&bcast_arrived);             /* tell main one more is waiting */
    while (!bcast_go)
        pthread_cond_wait(&bcast_cv, &bcast_lock);
    bcast_woken++;
    pthread_mutex_unlock(&bcast_lock);
    return NULL;
}

static void sec_condvar_broadcast(void)
{
    pthread_t t[5];
    for (int i = 0; i < 5; i++)
        CHECK(pthread_create(&t[i], NULL, bcast_waiter, NULL));
    pthread_mutex_lock(&bcast_lock);
    while (bcast_waiting < 5)
        pthread_cond_wait(&bcast_arrived, &bcast_lock);
    bcast_go = 1;
    pthread_cond_broadcast(&bcast_cv);
    pthread_mutex_unlock(&bcast_lock);
    for (int i = 0; i < 5; i++)
        CHECK(pthread_join(t[i], NULL));
    printf("condvar: broadcast woke %d of 5\n", bcast_woken);
}

/* ---------------------------------------------------------------- barrier */

#define ROUNDS 100

static pthread_barrier_t barrier;
static int serial_per_round[ROUNDS];
static int arrived_per_round[ROUNDS];
static int barrier_mismatch;

static void *barrier_worker(void *arg)
{
    (void)arg;
    for (int r = 0; r < ROUNDS; r++) {
        __atomic_fetch_add(&arrived_per_round[r], 1, __ATOMIC_SEQ_CST);
        int rc = pthread_barrier_wait(&barrier);
        if (rc == PTHREAD_BARRIER_SERIAL_THREAD)
            __atomic_fetch_add(&serial_per_round[r], 1, __ATOMIC_SEQ_CST);
        else if (rc != 0)
            __atomic_fetch_add(&barrier_mismatch, 1000, __ATOMIC_SEQ_CST);
        /* everyone has arrived at round r once anyone is past the barrier */
        if (__atomic_load_n(&arrived_per_round[r], __ATOMIC_SEQ_CST) != WORKERS)
            __atomic_fetch_add(&barrier_mismatch, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void sec_barrier(void)
{
    pthread_t t[WORKERS];
    CHECK(pthread_barrier_init(&barrier, NULL, WORKERS));
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_create(&t[i], NULL, barrier_worker, NULL));
    for (int i = 0; i < WORKERS; i++)
        CHECK(pthread_join(t[i], NULL));
    pthread_barrier_destroy(&barrier);
    int bad_rounds = 0, serial = 0;
    for (int r = 0; r < ROUNDS; r++) {
        bad_rounds += serial_per_round[r] != 1;
        serial += serial_per_round[r];
    }
    printf("barrier: %d rounds, %d serial threads, bad rounds %d, early passes %d\n", ROUNDS, serial, bad_rounds,
           barrier_mismatch);
    printf("barrier: %s\n", bad_rounds == 0 && barrier_mismatch == 0 ? "ok" : "FAILED");
}

/* ---------------------------------------------------------------- rwlock */

static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static long rw_value;
static long rw_odd_seen;

static void *rw_writer(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        pthread_rwlock_wrlock(&rwlock);
        rw_value++;
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        rw_value++;                                  /* never odd outside the write lock */
        pthread_rwlock_unlock(&rwlock);
    }
    return NULL;
}

static void *rw_reader(void *arg)
{
    (void)arg;
    for (int i = 0; i < 10000; i++) {
        pthread_rwlock_rdlock(&rwlock);
        if (*(volatile long *)&rw_value & 1)
            __atomic_fetch_add(&rw_odd_seen, 1, __ATOMIC_SEQ_CST);
        pthread_rwlock_unlock(&rwlock);
    }
    return NULL;
}

static void sec_rwlock(void)
{
    pthread_t w[2], r[4];
    for (int i = 0; i < 4; i++)
        CHECK(pthread_create(&r[i], NULL, rw_reader, NULL));
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&w[i], NULL, rw_writer, NULL));
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(w[i], NULL));
    for (int i = 0; i < 4; i++)
        CHECK(pthread_join(r[i], NULL));
    printf("rwlock: final value %ld, readers saw a half-written value %ld times\n", rw_value, rw_odd_seen);
    CHECK(pthread_rwlock_rdlock(&rwlock));
    int a = pthread_rwlock_tryrdlock(&rwlock);
    int b = pthread_rwlock_trywrlock(&rwlock);
    printf("rwlock: read-locked: tryrdlock %s, trywrlock %s\n", err_name(a), err_name(b));
    pthread_rwlock_unlock(&rwlock);
    if (a == 0)
        pthread_rwlock_unlock(&rwlock);
}

/* ---------------------------------------------------------------- tls */

static __thread int tls_value;
static __thread int tls_initialised = 42;
static __thread char tls_buffer[4096];
static pthread_key_t key;
static int destructor_calls;
static int destructor_values_sum;

static void key_destructor(void *value)
{
    __atomic_fetch_add(&destructor_calls, 1, __ATOMIC_SEQ_CST);
    __atomic_fetch_add(&destructor_values_sum, (int)(intptr_t)value, __ATOMIC_SEQ_CST);
}

struct tls_report { int index, initial, own_value, own_key, buffer_ok, distinct_address; };
static int *tls_addresses[8];

static void *tls_worker(void *arg)
{
    struct tls_report *rep = arg;
    rep->initial = tls_initialised;
    tls_value = rep->index * 10;
    tls_initialised = rep->index;
    memset(tls_buffer, rep->index, sizeof tls_buffer);
    tls_addresses[rep->index] = &tls_value;
    CHECK(pthread_setspecific(key, (void *)(intptr_t)(rep->index + 1)));
    for (int i = 0; i < 1000; i++)
        sched_yield();
    rep->own_value = tls_value == rep->index * 10 && tls_initialised == rep->index;
    rep->own_key = pthread_getspecific(key) == (void *)(intptr_t)(rep->index + 1);
    rep->buffer_ok = 1;
    for (size_t i = 0; i < sizeof tls_buffer; i++)
        if (tls_buffer[i] != (char)rep->index)
            rep->buffer_ok = 0;
    return NULL;
}

static void sec_tls(void)
{
    pthread_t t[8];
    struct tls_report rep[8];
    destructor_calls = destructor_values_sum = 0;
    CHECK(pthread_key_create(&key, key_destructor));
    tls_value = -1;
    CHECK(pthread_setspecific(key, (void *)(intptr_t)1000));
    for (int i = 0; i < 8; i++) {
        memset(&rep[i], 0, sizeof rep[i]);
        rep[i].index = i;
        CHECK(pthread_create(&t[i], NULL, tls_worker, &rep[i]));
    }
    for (int i = 0; i < 8; i++)
        CHECK(pthread_join(t[i], NULL));
    int own = 0, keys = 0, initial = 0, buffers = 0, distinct = 1;
    for (int i = 0; i < 8; i++) {
        own += rep[i].own_value;
        keys += rep[i].own_key;
        initial += rep[i].initial == 42;
        buffers += rep[i].buffer_ok;
        for (int j = 0; j < i; j++)
            distinct &= tls_addresses[i] != tls_addresses[j];
        distinct &= tls_addresses[i] != &tls_value;
    }
    printf("tls: %d of 8 threads started with the initial value, %d kept their own __thread values, "
           "%d their 4 KiB buffers, addresses distinct %d\n", initial, own, buffers, distinct);
    printf("tls: %d of 8 threads saw their own key value\n", keys);
    printf("tls: main kept %d and key %ld\n", tls_value, (long)(intptr_t)pthread_getspecific(key));
    printf("tls: destructor calls %d, values sum %d\n", destructor_calls, destructor_values_sum);
    pthread_key_delete(key);
}

/* ---------------------------------------------------------------- detached */

static sem_t detached_done;
static int detached_ran;

static void *detached_worker(void *arg)
{
    (void)arg;
    __atomic_fetch_add(&detached_ran, 1, __ATOMIC_SEQ_CST);
    sem_post(&detached_done);
    return NULL;
}

static void sec_detached(void)
{
    pthread_attr_t attr;
    CHECK(sem_init(&detached_done, 0, 0));
    CHECK(pthread_attr_init(&attr));
    CHECK(pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED));
    for (int i = 0; i < 10; i++) {
        pthread_t t;
        CHECK(pthread_create(&t, &attr, detached_worker, NULL));
    }
    for (int i = 0; i < 6; i++) {                    /* and some detached after creation */
        pthread_t t;
        CHECK(pthread_create(&t, NULL, detached_worker, NULL));
        CHECK(pthread_detach(t));
    }
    pthread_attr_destroy(&attr);
    int waited = 0;
    for (int i = 0; i < 16; i++)
        if (sem_wait(&detached_done) == 0)
            waited++;
    int value;
    sem_getvalue(&detached_done, &value);
    printf("detached: %d completions, %d ran, semaphore now %d, trywait %s\n", waited,
           __atomic_load_n(&detached_ran, __ATOMIC_SEQ_CST), value,
           sem_trywait(&detached_done) == -1 && errno == EAGAIN ? "EAGAIN" : "?");
    sem_destroy(&detached_done);
}

/* ---------------------------------------------------------------- cancel */

static sem_t cancel_ready, cancel_go;
static int cleanup_ran;
static int cancel_pipe[2];
static pthread_mutex_t cancel_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cancel_cv = PTHREAD_COND_INITIALIZER;

static void cleanup(void *arg)
{
    __atomic_fetch_add(&cleanup_ran, (int)(intptr_t)arg, __ATOMIC_SEQ_CST);
}

static void *blocked_in_read(void *arg)
{
    char c;
    (void)arg;
    pthread_cleanup_push(cleanup, (void *)1);
    sem_post(&cancel_ready);
    for (;;)
        read(cancel_pipe[0], &c, 1);                 /* nobody writes: blocks until cancelled */
    pthread_cleanup_pop(0);
    return NULL;
}

static void unlock_cancel_lock(void *arg)
{
    cleanup(arg);
    pthread_mutex_unlock(&cancel_lock);
}

static void *blocked_in_cond_wait(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&cancel_lock);
    pthread_cleanup_push(unlock_cancel_lock, (void *)10);
    sem_post(&cancel_ready);
    for (;;)
        pthread_cond_wait(&cancel_cv, &cancel_lock);
    pthread_cleanup_pop(0);
    return NULL;
}

static void *cancel_disabled(void *arg)
{
    (void)arg;
    int old;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, &old);
    sem_post(&cancel_ready);
    sem_wait(&cancel_go);                            /* main cancels, then posts */
    pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, &old);
    pthread_testcancel();                            /* the pending cancel acts here */
    return (void *)1;
}

static void sec_cancel(void)
{
    pthread_t t;
    void *ret;
    CHECK(sem_init(&cancel_ready, 0, 0));
    CHECK(sem_init(&cancel_go, 0, 0));
    if (pipe(cancel_pipe))
        exit(1);

    cleanup_ran = 0;
    CHECK(pthread_create(&t, NULL, blocked_in_read, NULL));
    sem_wait(&cancel_ready);
    CHECK(pthread_cancel(t));
    CHECK(pthread_join(t, &ret));
    printf("cancel: read: cleanup ran %d, joined %s\n", cleanup_ran,
           ret == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "something else");

    cleanup_ran = 0;
    CHECK(pthread_create(&t, NULL, blocked_in_cond_wait, NULL));
    sem_wait(&cancel_ready);
    CHECK(pthread_cancel(t));
    CHECK(pthread_join(t, &ret));
    int trylock = pthread_mutex_trylock(&cancel_lock);
    printf("cancel: cond_wait: cleanup ran %d, joined %s, mutex released %s\n", cleanup_ran,
           ret == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "something else", trylock == 0 ? "yes" : "no");
    if (trylock == 0)
        pthread_mutex_unlock(&cancel_lock);

    CHECK(pthread_create(&t, NULL, cancel_disabled, NULL));
    sem_wait(&cancel_ready);
    CHECK(pthread_cancel(t));
    sem_post(&cancel_go);
    CHECK(pthread_join(t, &ret));
    printf("cancel: disabled then enabled: joined %s\n", ret == PTHREAD_CANCELED ? "PTHREAD_CANCELED" : "a value");

    close(cancel_pipe[0]);
    close(cancel_pipe[1]);
    sem_destroy(&cancel_ready);
    sem_destroy(&cancel_go);
}

/* ---------------------------------------------------------------- kill */

static sem_t kill_ready;
static volatile sig_atomic_t usr1_count;
static pthread_t usr1_thread;
static pid_t usr1_tid;
static pid_t target_tid;

static void on_usr1(int sig)
{
    (void)sig;
    usr1_thread = pthread_self();
    usr1_tid = tid();
    usr1_count++;
}

static void *kill_target(void *arg)
{
    sigset_t usr1, none;
    (void)arg;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    sigemptyset(&none);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);        /* pending until sigsuspend: no race with the check */
    target_tid = tid();
    sem_post(&kill_ready);
    while (!usr1_count)
        sigsuspend(&none);
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    return NULL;
}

static void sec_kill(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    CHECK(sem_init(&kill_ready, 0, 0));
    usr1_count = 0;

    pthread_t t;
    CHECK(pthread_create(&t, NULL, kill_target, NULL));
    sem_wait(&kill_ready);
    int probe = pthread_kill(t, 0);
    CHECK(pthread_kill(t, SIGUSR1));
    CHECK(pthread_join(t, NULL));
    printf("kill: signal 0 to a live thread %s\n", err_name(probe));
    printf("kill: handler ran %d times, in the target thread %d, with its tid %d, not main's %d\n",
           (int)usr1_count, pthread_equal(usr1_thread, t) != 0, usr1_tid == target_tid, usr1_tid != getpid());
    printf("kill: %s\n", usr1_count == 1 && pthread_equal(usr1_thread, t) && usr1_tid == target_tid ? "ok" : "FAILED");

    /* tgkill straight to the main thread */
    usr1_count = 0;
    syscall(SYS_tgkill, getpid(), tid(), SIGUSR1);
    printf("kill: tgkill to main: handler ran %d times in main %d\n", (int)usr1_count,
           pthread_equal(usr1_thread, pthread_self()) != 0);
    signal(SIGUSR1, SIG_DFL);
    sem_destroy(&kill_ready);
}

/* ---------------------------------------------------------------- tid */

#define TID_THREADS 16
static pid_t tids[TID_THREADS];
static pthread_barrier_t tid_barrier;     /* all alive at once, so the kernel cannot reuse a tid */

static void *record_tid(void *arg)
{
    int i = (int)(intptr_t)arg;
    tids[i] = tid();
    pthread_barrier_wait(&tid_barrier);
    return (void *)(intptr_t)(getpid() == (pid_t)syscall(SYS_getpid));
}

static void sec_tid(void)
{
    pthread_t t[TID_THREADS];
    int same_pid = 0;
    CHECK(pthread_barrier_init(&tid_barrier, NULL, TID_THREADS));
    for (int i = 0; i < TID_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, record_tid, (void *)(intptr_t)i));
    for (int i = 0; i < TID_THREADS; i++) {
        void *ret;
        CHECK(pthread_join(t[i], &ret));
        same_pid += (int)(intptr_t)ret;
    }
    pthread_barrier_destroy(&tid_barrier);
    int differ = 0, unique = 1;
    for (int i = 0; i < TID_THREADS; i++) {
        differ += tids[i] != getpid() && tids[i] > 0;
        for (int j = 0; j < i; j++)
            unique &= tids[i] != tids[j];
    }
    printf("tid: main's tid is the pid %d\n", tid() == getpid());
    printf("tid: %d of %d threads have a tid other than the pid, unique %d, same pid %d\n", differ, TID_THREADS,
           unique, same_pid);
    printf("tid: %s\n", tid() == getpid() && differ == TID_THREADS && unique && same_pid == TID_THREADS ? "ok" : "FAILED");
}

/* ---------------------------------------------------------------- sigmask */

static volatile sig_atomic_t usr2_count;
static pid_t usr2_tid;

static void on_usr2(int sig)
{
    (void)sig;
    usr2_count++;
    usr2_tid = tid();
}

struct mask_report { int inherited_usr1, pending_before, handled_while_blocked, handled_after_unblock, pending_after; };
static sem_t mask_step, mask_go;

static void *mask_worker(void *arg)
{
    struct mask_report *rep = arg;
    sigset_t set, cur;
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    rep->inherited_usr1 = sigismember(&cur, SIGUSR1);
    sigemptyset(&set);
    sigaddset(&set, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_kill(pthread_self(), SIGUSR2);
    sigpending(&cur);
    rep->pending_before = sigismember(&cur, SIGUSR2);
    rep->handled_while_blocked = usr2_count;
    sem_post(&mask_step);                            /* main looks at its own mask and pending set */
    sem_wait(&mask_go);
    pthread_sigmask(SIG_UNBLOCK, &set, NULL);        /* delivered before this returns */
    rep->handled_after_unblock = usr2_count;
    sigpending(&cur);
    rep->pending_after = sigismember(&cur, SIGUSR2);
    return NULL;
}

static sem_t process_signal_ready;
static pid_t waiter_tid;

static void *process_signal_waiter(void *arg)
{
    sigset_t none;
    (void)arg;
    sigemptyset(&none);
    waiter_tid = tid();
    sem_post(&process_signal_ready);
    while (!usr2_count)
        sigsuspend(&none);                           /* the only thread that does not block SIGUSR2 */
    return NULL;
}

static void sec_sigmask(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr2;
    sigaction(SIGUSR2, &sa, NULL);
    CHECK(sem_init(&mask_step, 0, 0));
    CHECK(sem_init(&mask_go, 0, 0));
    usr2_count = 0;

    sigset_t usr1, cur;
    sigemptyset(&usr1);
    sigaddset(&usr1, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &usr1, NULL);         /* the new thread inherits this */
    struct mask_report rep;
    memset(&rep, 0, sizeof rep);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, mask_worker, &rep));
    pthread_sigmask(SIG_UNBLOCK, &usr1, NULL);
    sem_wait(&mask_step);
    pthread_sigmask(SIG_BLOCK, NULL, &cur);
    int main_blocks_usr2 = sigismember(&cur, SIGUSR2);
    sigpending(&cur);
    int main_sees_pending = sigismember(&cur, SIGUSR2);
    sem_post(&mask_go);
    CHECK(pthread_join(t, NULL));
    printf("sigmask: new thread inherited the creator's mask %d\n", rep.inherited_usr1);
    printf("sigmask: thread-directed SIGUSR2 while blocked: pending %d, handled %d\n", rep.pending_before,
           rep.handled_while_blocked);
    printf("sigmask: main blocks SIGUSR2 %d, sees it pending %d\n", main_blocks_usr2, main_sees_pending);
    printf("sigmask: after unblocking: handled %d, pending %d\n", rep.handled_after_unblock, rep.pending_after);

    /* a process-directed signal goes to the one thread that does not block it */
    sigset_t usr2;
    sigemptyset(&usr2);
    sigaddset(&usr2, SIGUSR2);
    pthread_sigmask(SIG_BLOCK, &usr2, NULL);
    usr2_count = 0;
    CHECK(sem_init(&process_signal_ready, 0, 0));
    CHECK(pthread_create(&t, NULL, process_signal_waiter, NULL));
    sem_wait(&process_signal_ready);
    kill(getpid(), SIGUSR2);
    CHECK(pthread_join(t, NULL));
    sigpending(&cur);
    printf("sigmask: kill(getpid()) with main blocking it: handled %d, by the waiting thread %d, still pending %d\n",
           (int)usr2_count, usr2_tid == waiter_tid, sigismember(&cur, SIGUSR2));
    pthread_sigmask(SIG_UNBLOCK, &usr2, NULL);
    signal(SIGUSR2, SIG_DFL);
    sem_destroy(&mask_step);
    sem_destroy(&mask_go);
    sem_destroy(&process_signal_ready);
}

/* ---------------------------------------------------------------- join_exit_value */

static void deep_exit(int depth)
{
    if (depth == 0)
        pthread_exit((void *)(intptr_t)1234);
    deep_exit(depth - 1);
}

static void *exits_deep(void *arg) { (void)arg; deep_exit(5); return NULL; }
static void *returns_value(void *arg) { (void)arg; return (void *)(intptr_t)5678; }

static void sec_join_exit_value(void)
{
    pthread_t a, b;
    void *ra, *rb;
    CHECK(pthread_create(&a, NULL, exits_deep, NULL));
    CHECK(pthread_create(&b, NULL, returns_value, NULL));
    CHECK(pthread_join(b, &rb));
    CHECK(pthread_join(a, &ra));
    printf("join_exit_value: pthread_exit %ld, return %ld\n", (long)(intptr_t)ra, (long)(intptr_t)rb);
}

/* ---------------------------------------------------------------- fork_thread */

static void *forking_thread(void *arg)
{
    int *status = arg;
    pid_t child = fork();
    if (child == 0) {
        char line[128];
        int n = snprintf(line, sizeof line, "fork_thread: child is single-threaded, tid is pid %d\n",
                         tid() == getpid());
        write(1, line, n);
        _exit(7);
    }
    if (child < 0 || waitpid(child, status, 0) != child)
        *status = -1;
    return NULL;
}

static volatile int churning;

static void touch_fresh_memory(void)
{
    size_t size = 1 << 18;
    char *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        _exit(1);
    for (size_t i = 0; i < size; i += 4096)
        p[i] = 1;
    munmap(p, size);
}

static void *churn(void *arg)
{
    while (churning)
        touch_fresh_memory();
    return arg;
}

/* Forks while another thread runs application code and changes the address space (mmap, page faults, munmap):
 * each child, which has only the forking thread, touches fresh memory and exits at once. */
static void fork_while_running(void)
{
    enum { FORKS = 10 };
    pthread_t t;
    int exited = 0;
    struct timespec t0, t1;
    churning = 1;
    CHECK(pthread_create(&t, NULL, churn, NULL));
    usleep(20000);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int i = 0; i < FORKS; i++) {
        int status = 0;
        pid_t child = fork();
        if (child == 0) {
            touch_fresh_memory();
            _exit(5);
        }
        if (child > 0 && waitpid(child, &status, 0) == child && WIFEXITED(status) && WEXITSTATUS(status) == 5)
            exited++;
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    churning = 0;
    CHECK(pthread_join(t, NULL));
    printf("fork_thread: %d forks while another thread maps memory: %d children exited 5, within 10 s: %s\n",
           FORKS, exited, t1.tv_sec - t0.tv_sec < 10 ? "yes" : "no");
}

static void sec_fork_thread(void)
{
    pthread_t t;
    int status = 0;
    fflush(stdout);                                  /* the child must not inherit buffered output */
    CHECK(pthread_create(&t, NULL, forking_thread, &status));
    CHECK(pthread_join(t, NULL));
    describe_status("fork_thread: child", status);
    fork_while_running();
}

/* ---------------------------------------------------------------- robust */

static pthread_mutex_t robust_mutex;
static void *lock_and_die(void *arg)
{
    pthread_mutex_lock(arg);
    return NULL;                                     /* exits holding it */
}

static void sec_robust(void)
{
    pthread_mutexattr_t attr;
    pthread_t t;
    CHECK(pthread_mutexattr_init(&attr));
    CHECK(pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST));
    CHECK(pthread_mutex_init(&robust_mutex, &attr));

    CHECK(pthread_create(&t, NULL, lock_and_die, &robust_mutex));
    CHECK(pthread_join(t, NULL));
    int first = pthread_mutex_lock(&robust_mutex);
    int consistent = pthread_mutex_consistent(&robust_mutex);
    int unlock = pthread_mutex_unlock(&robust_mutex);
    int again = pthread_mutex_lock(&robust_mutex);
    pthread_mutex_unlock(&robust_mutex);
    printf("robust: lock after the owner died %s, consistent %s, unlock %s, lock again %s\n", err_name(first),
           err_name(consistent), err_name(unlock), err_name(again));

    CHECK(pthread_create(&t, NULL, lock_and_die, &robust_mutex));
    CHECK(pthread_join(t, NULL));
    first = pthread_mutex_trylock(&robust_mutex);
    unlock = pthread_mutex_unlock(&robust_mutex);      /* without making it consistent */
    again = pthread_mutex_lock(&robust_mutex);
    printf("robust: trylock after the owner died %s, unlock %s, then lock %s\n", err_name(first), err_name(unlock),
           err_name(again));
    pthread_mutexattr_destroy(&attr);
}

/* ---------------------------------------------------------------- main_exit (not in ALL) */

static sem_t main_gone;
static pthread_t worker_b;
static long b_result;

static void *main_exit_b(void *arg)
{
    (void)arg;
    sem_wait(&main_gone);
    struct timespec ms = { 0, 20 * 1000000 };
    nanosleep(&ms, NULL);                            /* most likely after main's exit; correct either way */
    for (long i = 1; i <= 1000; i++)
        b_result += i;
    return NULL;
}

static void *main_exit_a(void *arg)
{
    (void)arg;
    CHECK(pthread_join(worker_b, NULL));
    printf("main_exit: the last thread joined the other, which computed %ld\n", b_result);
    fflush(stdout);
    return NULL;                                     /* the last thread's exit ends the process with 0 */
}

static void sec_main_exit(void)
{
    pthread_t a;
    CHECK(sem_init(&main_gone, 0, 0));
    CHECK(pthread_create(&worker_b, NULL, main_exit_b, NULL));
    CHECK(pthread_create(&a, NULL, main_exit_a, NULL));
    fflush(stdout);
    sem_post(&main_gone);
    pthread_exit(NULL);
}

/* ---------------------------------------------------------------- exit_group (not in ALL) */

static sem_t sleeper_ready;

static void *sleeper(void *arg)
{
    (void)arg;
    sem_post(&sleeper_ready);
    for (;;)
        sleep(1);
}

static void *exiter(void *arg)
{
    (void)arg;
    sem_wait(&sleeper_ready);
    printf("exit_group: a thread calls exit(3)\n");
    exit(3);
}

static void say_atexit(void) { printf("exit_group: atexit handler ran\n"); }

static void sec_exit_group(void)
{
    pthread_t s, e;
    atexit(say_atexit);
    CHECK(sem_init(&sleeper_ready, 0, 0));
    CHECK(pthread_create(&s, NULL, sleeper, NULL));
    CHECK(pthread_create(&e, NULL, exiter, NULL));
    pthread_join(s, NULL);                           /* never returns: the exiter ends the process */
    printf("exit_group: FAILED, main went on\n");
}

/* ---------------------------------------------------------------- exec_thread (not in ALL) */

static void *execing_thread(void *arg)
{
    (void)arg;
    char *argv[] = { "echo", "exec-ok", NULL };
    execv("/bin/echo", argv);
    printf("exec_thread: execv failed: %s\n", strerror(errno));
    exit(1);
}

static void sec_exec_thread(void)
{
    pthread_t t;
    fflush(stdout);
    CHECK(pthread_create(&t, NULL, execing_thread, NULL));
    pthread_join(t, NULL);                           /* the exec replaces the whole process meanwhile */
    printf("exec_thread: FAILED, main went on\n");
}

/* ---------------------------------------------------------------- pshared (not in ALL: shared memory across fork) */

struct shared {
    pthread_mutex_t lock;
    sem_t start;
    long counter;
};

static void add_shared(struct shared *sh)
{
    for (int i = 0; i < 10000; i++) {
        pthread_mutex_lock(&sh->lock);
        sh->counter++;
        pthread_mutex_unlock(&sh->lock);
    }
}

static void sec_pshared(void)
{
    struct shared *sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sh == MAP_FAILED) {
        printf("pshared: mmap failed\n");
        exit(1);
    }
    pthread_mutexattr_t attr;
    CHECK(pthread_mutexattr_init(&attr));
    CHECK(pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED));
    CHECK(pthread_mutex_init(&sh->lock, &attr));
    pthread_mutexattr_destroy(&attr);
    if (sem_init(&sh->start, 1, 0))
        exit(1);
    sh->counter = 0;
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        sem_wait(&sh->start);
        add_shared(sh);
        _exit(0);
    }
    sem_post(&sh->start);
    add_shared(sh);
    int status;
    waitpid(child, &status, 0);
    describe_status("pshared: child", status);
    printf("pshared: total %ld\n", sh->counter);
    munmap(sh, sizeof *sh);
}

/* ---------------------------------------------------------------- sem_open (not in ALL) */

static void sec_sem_open(void)
{
    char name[64];
    snprintf(name, sizeof name, "/hermipy-threads-%d", (int)getpid());
    sem_t *s = sem_open(name, O_CREAT | O_EXCL, 0600, 0);
    if (s == SEM_FAILED) {
        printf("sem_open: create failed: %s\n", strerror(errno));
        exit(1);
    }
    fflush(stdout);
    pid_t child = fork();
    if (child == 0) {
        sem_t *c = sem_open(name, 0);
        if (c == SEM_FAILED)
            _exit(2);
        for (int i = 0; i < 3; i++)
            sem_post(c);
        _exit(0);
    }
    int got = 0;
    for (int i = 0; i < 3; i++)
        got += sem_wait(s) == 0;
    int status, value = -1;
    waitpid(child, &status, 0);
    describe_status("sem_open: child", status);
    sem_getvalue(s, &value);
    printf("sem_open: waited %d posts from the child, value now %d\n", got, value);
    int excl = sem_open(name, O_CREAT | O_EXCL, 0600, 0) == SEM_FAILED ? errno : 0;
    int unlinked = sem_unlink(name);
    int reopen = sem_open(name, 0) == SEM_FAILED ? errno : 0;
    printf("sem_open: O_EXCL again %s, unlink %d, open after unlink %s\n", excl == EEXIST ? "EEXIST" : err_name(excl),
           unlinked, err_name(reopen));
    sem_close(s);
}

/* ---------------------------------------------------------------- proc: /proc/self/task, names, Threads: */
/* (only while the threads are alive: a joined thread may still be listed for a moment, natively too) */

#define PROC_THREADS 3
static pthread_barrier_t proc_started, proc_checked;
static pid_t proc_tids[PROC_THREADS];
static int proc_thread_self_ok[PROC_THREADS];

static int read_text(const char *path, char *buf, size_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, size - 1, f);
    buf[n] = 0;
    fclose(f);
    return (int)n;
}

static void *proc_worker(void *arg)
{
    int i = (int)(intptr_t)arg;
    char name[16], buf[64];
    snprintf(name, sizeof name, "worker-%d", i);
    prctl(PR_SET_NAME, name);
    proc_tids[i] = tid();
    snprintf(name + strlen(name), sizeof name - strlen(name), "\n");
    proc_thread_self_ok[i] = read_text("/proc/thread-self/comm", buf, sizeof buf) > 0 && !strcmp(buf, name);
    pthread_barrier_wait(&proc_started);
    pthread_barrier_wait(&proc_checked);
    return NULL;
}

static int status_threads(void)
{
    char buf[4096];
    if (read_text("/proc/self/status", buf, sizeof buf) < 0)
        return -1;
    char *line = strstr(buf, "\nThreads:");
    return line ? atoi(line + 9) : -1;
}

static void sec_proc(void)
{
    pthread_t t[PROC_THREADS];
    char path[64], buf[1024];
    CHECK(pthread_barrier_init(&proc_started, NULL, PROC_THREADS + 1));
    CHECK(pthread_barrier_init(&proc_checked, NULL, PROC_THREADS + 1));
    for (int i = 0; i < PROC_THREADS; i++)
        CHECK(pthread_create(&t[i], NULL, proc_worker, (void *)(intptr_t)i));
    pthread_barrier_wait(&proc_started);
    printf("proc: Threads: %d with %d started\n", status_threads(), PROC_THREADS);
    int listed = 0, known = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        listed++;
        pid_t id = atoi(e->d_name);
        known += id == getpid();
        for (int i = 0; i < PROC_THREADS; i++)
            known += id == proc_tids[i];
    }
    if (d)
        closedir(d);
    printf("proc: /proc/self/task lists %d tasks, %d of them ours\n", listed, known);
    int names = 0, stats = 0;
    for (int i = 0; i < PROC_THREADS; i++) {
        char want[32];
        snprintf(want, sizeof want, "worker-%d\n", i);
        snprintf(path, sizeof path, "/proc/self/task/%d/comm", proc_tids[i]);
        names += read_text(path, buf, sizeof buf) > 0 && !strcmp(buf, want);
        snprintf(path, sizeof path, "/proc/self/task/%d/stat", proc_tids[i]);
        int id = 0, threads = 0;
        char comm[32];
        if (read_text(path, buf, sizeof buf) > 0) {
            char *after = strrchr(buf, ')');
            sscanf(buf, "%d (%31[^)])", &id, comm);
            /* fields 3..20 after the name: state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt
               utime stime cutime cstime priority nice num_threads */
            long f[18];
            if (after && sscanf(after + 2, "%*c %ld %ld %ld %ld %ld %lu %lu %lu %lu %lu %lu %lu %ld %ld %ld %ld %ld",
                                &f[0], &f[1], &f[2], &f[3], &f[4], (unsigned long *)&f[5], (unsigned long *)&f[6],
                                (unsigned long *)&f[7], (unsigned long *)&f[8], (unsigned long *)&f[9],
                                (unsigned long *)&f[10], (unsigned long *)&f[11], &f[12], &f[13], &f[14], &f[15],
                                &f[16]) == 17)
                threads = (int)f[16];
        }
        stats += id == proc_tids[i] && threads == PROC_THREADS + 1;
    }
    printf("proc: task comm right for %d, task stat pid and num_threads right for %d\n", names, stats);
    int self_ok = 0;
    for (int i = 0; i < PROC_THREADS; i++)
        self_ok += proc_thread_self_ok[i];
    read_text("/proc/self/comm", buf, sizeof buf);
    printf("proc: /proc/thread-self/comm right in %d threads, the process comm is still main's %d\n", self_ok,
           strncmp(buf, "worker-", 7) != 0);
    pthread_barrier_wait(&proc_checked);
    for (int i = 0; i < PROC_THREADS; i++)
        CHECK(pthread_join(t[i], NULL));
    pthread_barrier_destroy(&proc_started);
    pthread_barrier_destroy(&proc_checked);
}

/* ---------------------------------------------------------------- affinity: per-thread CPU masks, getcpu, membarrier */

enum { MEMBARRIER_CMD_QUERY = 0, MEMBARRIER_CMD_PRIVATE_EXPEDITED = 8,            /* uapi/linux/membarrier.h */
       MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED = 16 };

static pthread_barrier_t aff_set, aff_seen;
static int aff_cpu_after = -1;
static pid_t aff_tid;

static void *affinity_worker(void *arg)
{
    int cpu = (int)(intptr_t)arg;
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpu, &one);
    aff_tid = tid();
    if (sched_setaffinity(0, sizeof one, &one) == 0) {
        sched_yield();
        unsigned c = 99, node = 99;
        if (syscall(SYS_getcpu, &c, &node, NULL) == 0)
            aff_cpu_after = (int)c;
    }
    pthread_barrier_wait(&aff_set);
    pthread_barrier_wait(&aff_seen);
    return NULL;
}

static void sec_affinity(void)
{
    cpu_set_t before, after, theirs;
    CHECK(sched_getaffinity(0, sizeof before, &before) ? errno : 0);
    int first = -1;
    for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
        if (CPU_ISSET(c, &before))
            first = c;
    pthread_t t;
    CHECK(pthread_barrier_init(&aff_set, NULL, 2));
    CHECK(pthread_barrier_init(&aff_seen, NULL, 2));
    CHECK(pthread_create(&t, NULL, affinity_worker, (void *)(intptr_t)first));
    pthread_barrier_wait(&aff_set);
    CHECK(sched_getaffinity(0, sizeof after, &after) ? errno : 0);
    int got = sched_getaffinity(aff_tid, sizeof theirs, &theirs);
    printf("affinity: thread pinned itself to one CPU: getaffinity(its tid) %d, %d CPU(s), its getcpu is it %d\n",
           got, CPU_COUNT(&theirs), aff_cpu_after == first);
    printf("affinity: main's mask unchanged %d\n", CPU_EQUAL(&before, &after));
    pthread_barrier_wait(&aff_seen);
    CHECK(pthread_join(t, NULL));
    pthread_barrier_destroy(&aff_set);
    pthread_barrier_destroy(&aff_seen);
    long query = syscall(SYS_membarrier, MEMBARRIER_CMD_QUERY, 0, 0);
    if (query > 0 && (query & MEMBARRIER_CMD_PRIVATE_EXPEDITED)) {
        long unregistered = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        int e = errno;
        long reg = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED, 0, 0);
        long barrier = syscall(SYS_membarrier, MEMBARRIER_CMD_PRIVATE_EXPEDITED, 0, 0);
        printf("affinity: membarrier unregistered %ld %s, register %ld, barrier %ld\n", unregistered, err_name(e),
               reg, barrier);
    }
}

/* ---------------------------------------------------------------- server: worker threads answering on loopback */

#define SERVER_WORKERS 2
#define SERVER_CLIENTS 3
#define SERVER_REQUESTS 4
static int server_fd;
static struct sockaddr_in server_addr;
static int served[SERVER_WORKERS];

static void *server_worker(void *arg)
{
    int w = (int)(intptr_t)arg;
    for (;;) {
        int c = accept(server_fd, NULL, NULL);
        if (c < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        char req[32];
        ssize_t n = read(c, req, sizeof req - 1);
        if (n <= 0 || req[0] == 'q') {
            close(c);
            return NULL;
        }
        req[n] = 0;
        long v = atol(req);
        char reply[32];
        int len = snprintf(reply, sizeof reply, "%ld\n", v * v);
        if (write(c, reply, len) == len)
            served[w]++;
        close(c);
    }
}

static long ask(const char *what)
{
    int c = socket(AF_INET, SOCK_STREAM, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&server_addr, sizeof server_addr) < 0)
        return -1;
    if (write(c, what, strlen(what)) < 0) {
        close(c);
        return -1;
    }
    char reply[32] = {0};
    ssize_t n = read(c, reply, sizeof reply - 1);
    close(c);
    return n > 0 ? atol(reply) : 0;
}

static void *server_client(void *arg)
{
    long base = (long)(intptr_t)arg, sum = 0;
    for (int r = 0; r < SERVER_REQUESTS; r++) {
        char req[32];
        snprintf(req, sizeof req, "%ld\n", base * 10 + r);
        sum += ask(req);
    }
    return (void *)(intptr_t)sum;
}

static void sec_server(void)
{
    server_fd = socket(AF_INET, SOCK_STREAM, 0);
    server_addr.sin_family = AF_INET;
    server_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server_addr.sin_port = 0;
    socklen_t len = sizeof server_addr;
    if (server_fd < 0 || bind(server_fd, (struct sockaddr *)&server_addr, sizeof server_addr) ||
        listen(server_fd, 16) || getsockname(server_fd, (struct sockaddr *)&server_addr, &len)) {
        printf("server: setup failed: %s\n", strerror(errno));
        return;
    }
    pthread_t workers[SERVER_WORKERS], clients[SERVER_CLIENTS];
    for (int i = 0; i < SERVER_WORKERS; i++)
        CHECK(pthread_create(&workers[i], NULL, server_worker, (void *)(intptr_t)i));
    for (int i = 0; i < SERVER_CLIENTS; i++)
        CHECK(pthread_create(&clients[i], NULL, server_client, (void *)(intptr_t)(i + 1)));
    long total = 0;
    for (int i = 0; i < SERVER_CLIENTS; i++) {
        void *sum;
        CHECK(pthread_join(clients[i], &sum));
        total += (long)(intptr_t)sum;
    }
    for (int i = 0; i < SERVER_WORKERS; i++)
        ask("q");
    for (int i = 0; i < SERVER_WORKERS; i++)
        CHECK(pthread_join(workers[i], NULL));
    close(server_fd);
    printf("server: %d clients x %d requests answered by %d worker threads: sum of squares %ld, served %d\n",
           SERVER_CLIENTS, SERVER_REQUESTS, SERVER_WORKERS, total, served[0] + served[1]);
}

/* ---------------------------------------------------------------- futex_waitv */

#ifndef SYS_futex_waitv
#define SYS_futex_waitv 449
#endif
#define WAKE_PRIVATE 129                            /* FUTEX_WAKE | FUTEX_PRIVATE_FLAG (linux/futex.h) */

struct waitv_entry { uint64_t val, uaddr; uint32_t flags, reserved; };   /* struct futex_waitv */

static uint32_t waitv_words[3];

static long waitv(struct waitv_entry *w, unsigned n, const struct timespec *deadline)
{
    long r = syscall(SYS_futex_waitv, w, n, 0, deadline, CLOCK_MONOTONIC);
    return r < 0 ? -errno : r;
}

static void *waitv_waker(void *arg)
{
    (void)arg;
    struct timespec pause = {0, 20 * 1000 * 1000};
    nanosleep(&pause, NULL);
    __atomic_store_n(&waitv_words[2], 1, __ATOMIC_SEQ_CST);
    syscall(SYS_futex, &waitv_words[2], WAKE_PRIVATE, 1, NULL, NULL, 0);
    return NULL;
}

static void sec_waitv(void)
{
    struct waitv_entry w[3];
    for (int i = 0; i < 3; i++)
        w[i] = (struct waitv_entry){0, (uint64_t)(uintptr_t)&waitv_words[i], 2 | 128, 0};  /* U32, PRIVATE */
    pthread_t t;
    CHECK(pthread_create(&t, NULL, waitv_waker, NULL));
    long woken = waitv(w, 3, NULL);
    CHECK(pthread_join(t, NULL));
    waitv_words[1] = 5;
    long changed = waitv(w, 3, NULL);
    w[1].val = 5;
    w[2].val = 1;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_nsec += 10 * 1000 * 1000;
    if (deadline.tv_nsec >= 1000000000) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000;
    }
    long timed_out = waitv(w, 3, &deadline);
    long none = waitv(w, 0, NULL);
    w[0].flags = 3 | 128;                                   /* FUTEX2_SIZE_U64: not supported */
    long size64 = waitv(w, 3, NULL);
    long null_vector = waitv(NULL, 1, NULL);
    printf("waitv: woken index %ld, changed value %s, deadline %s, no waiters %s, u64 %s, NULL vector %s\n", woken,
           changed == -EAGAIN ? "EAGAIN" : "?", timed_out == -ETIMEDOUT ? "ETIMEDOUT" : "?",
           none == -EINVAL ? "EINVAL" : "?", size64 == -EINVAL ? "EINVAL" : "?",
           null_vector == -EINVAL ? "EINVAL" : "?");
}

/* ---------------------------------------------------------------- main */

struct section { const char *name; void (*run)(void); int in_all; };

static const struct section sections[] = {
    { "create64", sec_create64, 1 },
    { "mutex", sec_mutex, 1 },
    { "atomic", sec_atomic, 1 },
    { "condvar", sec_condvar, 1 },
    { "condvar_broadcast", sec_condvar_broadcast, 1 },
    { "barrier", sec_barrier, 1 },
    { "rwlock", sec_rwlock, 1 },
    { "tls", sec_tls, 1 },
    { "detached", sec_detached, 1 },
    { "cancel", sec_cancel, 1 },
    { "kill", sec_kill, 1 },
    { "tid", sec_tid, 1 },
    { "sigmask", sec_sigmask, 1 },
    { "join_exit_value", sec_join_exit_value, 1 },
    { "fork_thread", sec_fork_thread, 1 },
    { "robust", sec_robust, 1 },
    { "proc", sec_proc, 1 },
    { "affinity", sec_affinity, 1 },
    { "server", sec_server, 1 },
    { "waitv", sec_waitv, 1 },
    { "main_exit", sec_main_exit, 0 },
    { "exit_group", sec_exit_group, 0 },
    { "exec_thread", sec_exec_thread, 0 },
    { "pshared", sec_pshared, 0 },
    { "sem_open", sec_sem_open, 0 },
};

int main(int argc, char **argv)
{
    size_t n = sizeof sections / sizeof sections[0];
    setvbuf(stdout, NULL, _IOLBF, 0);                /* a run that hangs has shown every finished section */
    if (argc > 1) {
        for (size_t i = 0; i < n; i++)
            if (!strcmp(argv[1], sections[i].name)) {
                sections[i].run();
                return 0;
            }
        fprintf(stderr, "threads: no section %s\n", argv[1]);
        return 2;
    }
    for (size_t i = 0; i < n; i++)
        if (sections[i].in_all)
            sections[i].run();
    printf("done\n");
    return 0;
}
