/* System V IPC, differentially: shared memory, semaphores and message queues between a parent and its
 * children, their control commands and errors, and blocking calls interrupted by a signal.
 * Usage: sysv_ipc SECTION (shm, sem, msg, intr; perm, run without CAP_IPC_OWNER) or sysv_ipc writer|reader KEY
 * (two separate runs sharing a segment and a semaphore) or sysv_ipc nattch SHMID (after an exec).
 * Prints only what is the same on every run (no ids, keys, pids or times). */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sys/msg.h>
#include <sys/sem.h>
#include <sys/shm.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef MSG_COPY
#define MSG_COPY 040000
#endif
#ifndef SEM_STAT_ANY
#define SEM_STAT_ANY 20
#endif
#ifndef SHM_STAT_ANY
#define SHM_STAT_ANY 15
#endif
#ifndef MSG_STAT_ANY
#define MSG_STAT_ANY 13
#endif

/* The index (0..highest, as *_INFO returns it) at which STAT (by index) answers with ``id``: -1 when none does. */
static int index_of(int id, int highest, int (*stat_at)(int index, int cmd), int cmd)
{
    for (int i = 0; i <= highest; i++)
        if (stat_at(i, cmd) == id)
            return i;
    return -1;
}

union semun { int val; struct semid_ds *buf; unsigned short *array; struct seminfo *info; };

static const char *err(long r)
{
    static const struct { int e; const char *name; } names[] = {
        {EINVAL, "EINVAL"}, {EIDRM, "EIDRM"}, {EACCES, "EACCES"}, {EEXIST, "EEXIST"}, {ENOENT, "ENOENT"},
        {EFAULT, "EFAULT"}, {EAGAIN, "EAGAIN"}, {E2BIG, "E2BIG"}, {ENOMSG, "ENOMSG"}, {EINTR, "EINTR"},
        {ERANGE, "ERANGE"}, {EFBIG, "EFBIG"}, {EPERM, "EPERM"}, {ENOSYS, "ENOSYS"}, {ENOMEM, "ENOMEM"},
        {ENOSPC, "ENOSPC"},
    };
    static char buf[32];
    if (r >= 0)
        return "ok";
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].e == errno)
            return names[i].name[0] ? (snprintf(buf, sizeof buf, "-1 %s", names[i].name), buf) : buf;
    snprintf(buf, sizeof buf, "-1 errno %d", errno);
    return buf;
}

static void show(const char *what, long r) { printf("%s: %s\n", what, err(r)); fflush(stdout); }

static int child_status(pid_t pid)
{
    int status;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* -- shared memory ------------------------------------------------------------------------------------- */
static int shm_stat_at(int index, int cmd)
{
    struct shmid_ds ds;
    return shmctl(index, cmd, &ds);
}

static void maps_line(void *addr)
{
    char line[512], want[32];
    snprintf(want, sizeof want, "%lx-", (unsigned long)addr);
    FILE *f = fopen("/proc/self/maps", "r");
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, want, strlen(want))) {
            char perms[8], name[256] = "";
            sscanf(line, "%*s %7s %*s %*s %*s %255[^\n]", perms, name);
            printf("maps: %s %.5s... %s\n", perms, name, strstr(name, "(deleted)") ? "(deleted)" : "");
        }
    if (f)
        fclose(f);
}

static void shm(void)
{
    int id = shmget(IPC_PRIVATE, 10000, IPC_CREAT | 0600);
    show("shmget private", id);
    struct shmid_ds ds;
    show("IPC_STAT", shmctl(id, IPC_STAT, &ds));
    printf("segsz %zu nattch %lu mode %o cpid is me %d\n", ds.shm_segsz, (unsigned long)ds.shm_nattch,
           ds.shm_perm.mode & 0777, ds.shm_cpid == getpid());
    char *p = shmat(id, NULL, 0);
    show("shmat", p == (void *)-1 ? -1 : 0);
    maps_line(p);
    shmctl(id, IPC_STAT, &ds);
    printf("nattch after attach %lu\n", (unsigned long)ds.shm_nattch);
    strcpy(p, "parent");
    p[9999] = 'z';
    pid_t pid = fork();
    if (pid == 0) {
        struct shmid_ds cds;
        shmctl(id, IPC_STAT, &cds);
        printf("child sees '%s' and %c, nattch %lu\n", p, p[9999], (unsigned long)cds.shm_nattch);
        strcpy(p, "child wrote");
        char *q = shmat(id, NULL, SHM_RDONLY);
        printf("child's second attach sees '%s'\n", q);
        shmdt(q);
        _exit(0);
    }
    printf("child exit %d\n", child_status(pid));
    printf("parent sees '%s'\n", p);
    shmctl(id, IPC_STAT, &ds);
    printf("nattch after the child %lu, lpid is child %d\n", (unsigned long)ds.shm_nattch, ds.shm_lpid == pid);

    /* A read-only attach: writing is SIGSEGV. */
    pid = fork();
    if (pid == 0) {
        char *r = shmat(id, NULL, SHM_RDONLY);
        printf("read-only attach reads '%s'\n", r);
        fflush(stdout);
        r[0] = 'x';
        _exit(0);
    }
    printf("writing a read-only attach: status %d\n", child_status(pid));

    /* A fixed address, SHM_RND, errors. */
    char *fixed = (char *)0x7e0000000000UL;
    char *f = shmat(id, fixed + 100, SHM_RND);
    printf("SHM_RND attach at the rounded address %d, sees '%s'\n", f == fixed, f == (void *)-1 ? "" : f);
    show("attach over it without SHM_REMAP", (long)shmat(id, fixed, 0) == -1 ? -1 : 0);
    show("attach over it with SHM_REMAP", (long)shmat(id, fixed, SHM_REMAP) == -1 ? -1 : 0);
    show("unaligned without SHM_RND", (long)shmat(id, fixed + 100, 0) == -1 ? -1 : 0);
    show("shmdt inside an attach", shmdt(fixed + 4096));
    show("shmdt fixed", shmdt(fixed));
    show("shmdt again", shmdt(fixed));
    show("shmat bad id", (long)shmat(0x7ffffff0, NULL, 0) == -1 ? -1 : 0);
    show("IPC_STAT to a bad pointer", shmctl(id, IPC_STAT, (struct shmid_ds *)8));
    show("IPC_STAT bad id", shmctl(0x7ffffff0, IPC_STAT, &ds));
    ds.shm_perm.mode = 0640;
    show("IPC_SET", shmctl(id, IPC_SET, &ds));
    shmctl(id, IPC_STAT, &ds);
    printf("mode now %o\n", ds.shm_perm.mode & 0777);
    struct shminfo info;
    show("IPC_INFO", shmctl(0, IPC_INFO, (struct shmid_ds *)&info) < 0 ? -1 : 0);
    printf("shmmni > 0 %d\n", info.shmmni > 0);
    struct shm_info sinfo;
    show("SHM_INFO", shmctl(0, SHM_INFO, (struct shmid_ds *)&sinfo) < 0 ? -1 : 0);
    printf("used_ids > 0 %d\n", sinfo.used_ids > 0);
    int highest = shmctl(0, SHM_INFO, (struct shmid_ds *)&sinfo);
    printf("SHM_STAT finds it by index %d, SHM_STAT_ANY %d\n", index_of(id, highest, shm_stat_at, SHM_STAT) >= 0,
           index_of(id, highest, shm_stat_at, SHM_STAT_ANY) >= 0);
    show("SHM_STAT past the highest index", shmctl(highest + 1, SHM_STAT, &ds));

    /* exec detaches: a child's attach (inherited) is gone once it runs a new program. */
    pid = fork();
    if (pid == 0) {
        char arg[16];
        snprintf(arg, sizeof arg, "%d", id);
        execl("/proc/self/exe", "sysv_ipc", "nattch", arg, (char *)NULL);
        _exit(127);
    }
    printf("exec'd child exit %d\n", child_status(pid));

    /* Removed while attached: it lives until the last detach. */
    show("IPC_RMID while attached", shmctl(id, IPC_RMID, NULL));
    printf("still readable '%s'\n", p);
    show("IPC_STAT after RMID (attached)", shmctl(id, IPC_STAT, &ds));
    printf("mode has SHM_DEST %d\n", !!(ds.shm_perm.mode & SHM_DEST));
    show("shmdt", shmdt(p));
    show("IPC_STAT after the last detach", shmctl(id, IPC_STAT, &ds));

    /* Keys: a second get finds it; IPC_EXCL; a segment outlives its creator. */
    key_t key = ftok("/", getpid() & 0xff) ^ (getpid() << 8);
    int k1 = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
    show("shmget key", k1);
    show("shmget key again", shmget(key, 4096, 0) == k1 ? 0 : -1);
    show("shmget key IPC_EXCL", shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600));
    show("shmget key bigger", shmget(key, 8192, 0));
    show("shmget missing key", shmget(key + 1, 4096, 0));
    pid = fork();
    if (pid == 0) {
        char *c = shmat(shmget(key, 0, 0), NULL, 0);
        strcpy(c, "left by a child that is gone");
        _exit(0);
    }
    child_status(pid);
    char *c = shmat(k1, NULL, 0);
    printf("after the child: '%s'\n", c);
    shmdt(c);
    shmctl(k1, IPC_RMID, NULL);
    show("shmget size 0 new", shmget(IPC_PRIVATE, 0, IPC_CREAT | 0600));
}

/* -- semaphores ---------------------------------------------------------------------------------------- */
static int sem_stat_at(int index, int cmd)
{
    struct semid_ds ds;
    return semctl(index, 0, cmd, (union semun){.buf = &ds});
}

static void sem(void)
{
    int id = semget(IPC_PRIVATE, 3, IPC_CREAT | 0600);
    show("semget", id);
    unsigned short all[3] = {1, 2, 3}, got[3];
    show("SETALL", semctl(id, 0, SETALL, (union semun){.array = all}));
    semctl(id, 0, GETALL, (union semun){.array = got});
    printf("GETALL %d %d %d\n", got[0], got[1], got[2]);
    show("SETVAL", semctl(id, 1, SETVAL, (union semun){.val = 5}));
    printf("GETVAL %d\n", semctl(id, 1, GETVAL));
    show("SETVAL out of range", semctl(id, 1, SETVAL, (union semun){.val = 40000}));
    show("GETVAL bad semnum", semctl(id, 7, GETVAL));
    struct sembuf op = {0, -1, 0};
    show("semop -1", semop(id, &op, 1));
    op.sem_flg = IPC_NOWAIT;
    show("semop -1 IPC_NOWAIT at 0", semop(id, &op, 1));
    struct timespec ts = {0, 50 * 1000 * 1000};
    op.sem_flg = 0;
    show("semtimedop -1 timeout 50 ms", semtimedop(id, &op, 1, &ts));
    show("semop nsops 0", semop(id, &op, 0));
    show("semop bad pointer", semop(id, (struct sembuf *)8, 1));
    struct sembuf big = {9, 1, 0};
    show("semop bad sem_num", semop(id, &big, 1));
    printf("GETPID is me %d\n", semctl(id, 0, GETPID) == getpid());

    /* SEM_UNDO: a child's operations are undone when it exits. */
    pid_t pid = fork();
    if (pid == 0) {
        struct sembuf u = {2, -3, SEM_UNDO};
        semop(id, &u, 1);
        printf("child took 3: %d\n", semctl(id, 2, GETVAL));
        fflush(stdout);
        _exit(0);
    }
    child_status(pid);
    printf("after the child's exit: %d\n", semctl(id, 2, GETVAL));

    /* A waiter counted in GETNCNT and woken by another process. */
    pid = fork();
    if (pid == 0) {
        struct sembuf w = {0, -1, 0};
        int r = semop(id, &w, 1);
        printf("child woken: %s\n", err(r));
        _exit(0);
    }
    for (int i = 0; i < 500 && semctl(id, 0, GETNCNT) < 1; i++)
        usleep(2000);
    printf("GETNCNT %d GETZCNT %d\n", semctl(id, 0, GETNCNT), semctl(id, 0, GETZCNT));
    struct sembuf post = {0, 1, 0};
    semop(id, &post, 1);
    child_status(pid);

    struct semid_ds ds;
    show("IPC_STAT", semctl(id, 0, IPC_STAT, (union semun){.buf = &ds}));
    printf("nsems %lu mode %o\n", (unsigned long)ds.sem_nsems, ds.sem_perm.mode & 0777);
    ds.sem_perm.mode = 0604;
    show("IPC_SET", semctl(id, 0, IPC_SET, (union semun){.buf = &ds}));
    semctl(id, 0, IPC_STAT, (union semun){.buf = &ds});
    printf("mode now %o\n", ds.sem_perm.mode & 0777);
    struct seminfo info;
    show("IPC_INFO", semctl(id, 0, IPC_INFO, (union semun){.info = &info}) < 0 ? -1 : 0);
    printf("semmsl > 0 %d semopm %d\n", info.semmsl > 0, info.semopm);
    show("SEM_INFO", semctl(id, 0, SEM_INFO, (union semun){.info = &info}) < 0 ? -1 : 0);
    show("IPC_STAT bad pointer", semctl(id, 0, IPC_STAT, (union semun){.buf = (void *)8}));
    int highest = semctl(0, 0, SEM_INFO, (union semun){.info = &info});
    printf("SEM_STAT finds it by index %d, SEM_STAT_ANY %d\n", index_of(id, highest, sem_stat_at, SEM_STAT) >= 0,
           index_of(id, highest, sem_stat_at, SEM_STAT_ANY) >= 0);
    show("GETALL bad pointer", semctl(id, 0, GETALL, (union semun){.array = (void *)8}));
    show("SETALL bad pointer", semctl(id, 0, SETALL, (union semun){.array = (void *)8}));
    unsigned short high[3] = {1, 40000, 1};
    show("SETALL out of range", semctl(id, 0, SETALL, (union semun){.array = high}));
    struct sembuf many[501];
    memset(many, 0, sizeof many);
    show("semop 501 operations", semop(id, many, 501));
    show("semop bad id and pointer", semop(-1, (struct sembuf *)8, 1));
    show("semop nsops 0 bad pointer", semop(id, (struct sembuf *)8, 0));
    show("semtimedop bad timeout pointer", semtimedop(id, &op, 1, (struct timespec *)8));
    show("semtimedop bad timeout pointer, nsops 0", semtimedop(id, &op, 0, (struct timespec *)8));
    struct timespec bad_ts = {0, 2000000000};
    op.sem_flg = 0;
    op.sem_op = -1;
    semctl(id, 0, SETVAL, (union semun){.val = 0});
    show("semtimedop tv_nsec 2e9 (would block)", semtimedop(id, &op, 1, &bad_ts));
    op.sem_op = 0;
    show("semtimedop tv_nsec 2e9 (can go on)", semtimedop(id, &op, 1, &bad_ts));

    /* A waiter for zero counted in GETZCNT. */
    semctl(id, 1, SETVAL, (union semun){.val = 1});
    pid = fork();
    if (pid == 0) {
        struct sembuf z = {1, 0, 0};
        int r = semop(id, &z, 1);
        printf("zero-waiter woken: %s\n", err(r));
        _exit(0);
    }
    for (int i = 0; i < 500 && semctl(id, 1, GETZCNT) < 1; i++)
        usleep(2000);
    printf("GETZCNT %d GETNCNT %d\n", semctl(id, 1, GETZCNT), semctl(id, 1, GETNCNT));
    semctl(id, 1, SETVAL, (union semun){.val = 0});
    child_status(pid);
    show("IPC_RMID", semctl(id, 0, IPC_RMID));
    show("GETVAL removed", semctl(id, 0, GETVAL));
    show("semget nsems -1", semget(IPC_PRIVATE, -1, IPC_CREAT | 0600));
}

/* -- message queues ------------------------------------------------------------------------------------ */
struct message { long mtype; char mtext[64]; };

static int msg_stat_at(int index, int cmd)
{
    struct msqid_ds ds;
    return msgctl(index, cmd, &ds);
}

/* A message whose mtype (1) is readable and whose text is not: the last 8 bytes of a page before a hole. */
static void *bad_text(void)
{
    static char *page;
    if (!page) {
        long pg = sysconf(_SC_PAGESIZE);
        page = mmap(NULL, 2 * pg, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        munmap(page + pg, pg);
        *(long *)(page + pg - 8) = 1;
        page += pg - 8;
    }
    return page;
}

static void msg(void)
{
    int id = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    show("msgget", id);
    struct message m;
    for (int t = 1; t <= 3; t++) {
        m.mtype = t;
        snprintf(m.mtext, sizeof m.mtext, "message of type %d", t);
        show("msgsnd", msgsnd(id, &m, strlen(m.mtext) + 1, 0));
    }
    struct msqid_ds ds;
    msgctl(id, IPC_STAT, &ds);
    printf("qnum %lu cbytes %lu\n", (unsigned long)ds.msg_qnum, (unsigned long)ds.__msg_cbytes);
    long n = msgrcv(id, &m, sizeof m.mtext, 2, 0);
    printf("type 2: %ld '%s'\n", n, m.mtext);
    n = msgrcv(id, &m, sizeof m.mtext, 1, MSG_EXCEPT);
    printf("except 1: %ld type %ld '%s'\n", n, m.mtype, m.mtext);
    n = msgrcv(id, &m, 4, 0, 0);
    printf("too small: %s\n", err(n));
    n = msgrcv(id, &m, 4, 0, MSG_NOERROR);
    printf("MSG_NOERROR: %ld '%.4s'\n", n, m.mtext);
    show("empty IPC_NOWAIT", msgrcv(id, &m, sizeof m.mtext, 0, IPC_NOWAIT));
    m.mtype = 7;
    strcpy(m.mtext, "copied");
    msgsnd(id, &m, 7, 0);
    n = msgrcv(id, &m, sizeof m.mtext, 0, MSG_COPY | IPC_NOWAIT);
    printf("MSG_COPY: %s\n", n < 0 ? err(n) : m.mtext);
    msgctl(id, IPC_STAT, &ds);
    printf("qnum after copy %lu\n", (unsigned long)ds.msg_qnum);
    show("MSG_COPY without IPC_NOWAIT", msgrcv(id, &m, sizeof m.mtext, 0, MSG_COPY));
    m.mtype = 0;
    show("msgsnd mtype 0", msgsnd(id, &m, 1, 0));
    show("msgsnd bad pointer", msgsnd(id, (void *)8, 1, 0));
    show("msgsnd negative size", msgsnd(id, &m, -1, 0));
    m.mtype = 1;
    show("msgsnd text unreadable", msgsnd(id, bad_text(), 16, 0));
    show("msgsnd past MSGMAX, text unreadable", msgsnd(id, bad_text(), 1 << 20, 0));
    show("msgsnd past MSGMAX", msgsnd(id, &m, 1 << 20, IPC_NOWAIT));
    show("MSG_COPY with MSG_EXCEPT", msgrcv(id, &m, sizeof m.mtext, 0, MSG_COPY | MSG_EXCEPT | IPC_NOWAIT));
    show("MSG_COPY past the last", msgrcv(id, &m, sizeof m.mtext, 5, MSG_COPY | IPC_NOWAIT));
    msgctl(id, IPC_STAT, &ds);
    unsigned long before = ds.msg_qnum;
    show("msgrcv to a bad pointer", msgrcv(id, (void *)8, sizeof m.mtext, 0, IPC_NOWAIT));
    msgctl(id, IPC_STAT, &ds);
    printf("the message is gone: %d\n", ds.msg_qnum + 1 == before);

    /* Between processes: the child waits for a type, the parent sends it. */
    pid_t pid = fork();
    if (pid == 0) {
        struct message r;
        long got = msgrcv(id, &r, sizeof r.mtext, 42, 0);
        printf("child got %ld '%s'\n", got, r.mtext);
        _exit(0);
    }
    usleep(50000);
    m.mtype = 42;
    strcpy(m.mtext, "to the child");
    msgsnd(id, &m, strlen(m.mtext) + 1, 0);
    child_status(pid);
    ds.msg_perm.mode = 0620;
    show("IPC_SET", msgctl(id, IPC_SET, &ds));
    msgctl(id, IPC_STAT, &ds);
    printf("mode now %o\n", ds.msg_perm.mode & 0777);
    struct msginfo info;
    show("IPC_INFO", msgctl(id, IPC_INFO, (struct msqid_ds *)&info) < 0 ? -1 : 0);
    printf("msgmax > 0 %d\n", info.msgmax > 0);
    int highest = msgctl(0, MSG_INFO, (struct msqid_ds *)&info);
    printf("MSG_STAT finds it by index %d, MSG_STAT_ANY %d\n", index_of(id, highest, msg_stat_at, MSG_STAT) >= 0,
           index_of(id, highest, msg_stat_at, MSG_STAT_ANY) >= 0);
    show("IPC_RMID", msgctl(id, IPC_RMID, NULL));
    show("msgsnd removed", msgsnd(id, &m, 1, IPC_NOWAIT));
    show("IPC_STAT removed", msgctl(id, IPC_STAT, &ds));
}

/* -- interrupted by a signal ---------------------------------------------------------------------------- */
static volatile int handled;
static void on_alarm(int sig) { (void)sig; handled++; }

static void intr(void)
{
    struct sigaction sa = {0};
    sa.sa_handler = on_alarm;
    sa.sa_flags = SA_RESTART;                    /* System V IPC calls are never restarted (signal(7)) */
    sigaction(SIGALRM, &sa, NULL);
    int sid = semget(IPC_PRIVATE, 1, IPC_CREAT | 0600);
    struct sembuf op = {0, -1, 0};
    alarm(1);
    long r = semop(sid, &op, 1);
    printf("semop with SA_RESTART: %s, handler ran %d\n", err(r), handled);
    int mid = msgget(IPC_PRIVATE, IPC_CREAT | 0600);
    struct message m;
    alarm(1);
    r = msgrcv(mid, &m, sizeof m.mtext, 0, 0);
    printf("msgrcv with SA_RESTART: %s, handler ran %d\n", err(r), handled);
    struct timespec ts = {5, 0};
    alarm(1);
    r = semtimedop(sid, &op, 1, &ts);
    printf("semtimedop with SA_RESTART: %s, handler ran %d\n", err(r), handled);
    semctl(sid, 0, IPC_RMID);
    msgctl(mid, IPC_RMID, NULL);
}

/* -- permissions, as Linux checks them without CAP_IPC_OWNER: the owner's mode bits. ------------------ */
static void perm(void)
{
    int none = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0000), ro = shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0400);
    struct shmid_ds ds;
    show("shm mode 0: shmat", (long)shmat(none, NULL, SHM_RDONLY) == -1 ? -1 : 0);
    show("shm mode 0: IPC_STAT", shmctl(none, IPC_STAT, &ds));
    show("shm mode 0: IPC_STAT bad pointer", shmctl(none, IPC_STAT, (struct shmid_ds *)8));
    show("shm mode 0: IPC_RMID by the owner", shmctl(none, IPC_RMID, NULL));
    char *p = shmat(ro, NULL, SHM_RDONLY);
    show("shm mode 0400: shmat SHM_RDONLY", p == (void *)-1 ? -1 : 0);
    show("shm mode 0400: shmat read-write", (long)shmat(ro, NULL, 0) == -1 ? -1 : 0);
    show("shm mode 0400: shmat SHM_EXEC", (long)shmat(ro, NULL, SHM_RDONLY | SHM_EXEC) == -1 ? -1 : 0);
    shmdt(p);
    key_t key = ftok("/", 'p') ^ (getpid() << 8);
    int keyed = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0400);
    show("shmget by key asking for write", shmget(key, 0, 0600));
    show("shmget by key asking for read", shmget(key, 0, 0400) == keyed ? 0 : -1);
    shmctl(keyed, IPC_RMID, NULL);
    shmctl(ro, IPC_RMID, NULL);

    int sem = semget(IPC_PRIVATE, 2, IPC_CREAT | 0200);          /* alter, no read */
    unsigned short vals[2] = {3, 4}, got[2];
    show("sem mode 0200: SETALL", semctl(sem, 0, SETALL, (union semun){.array = vals}));
    show("sem mode 0200: SETALL bad pointer", semctl(sem, 0, SETALL, (union semun){.array = (void *)8}));
    show("sem mode 0200: GETALL", semctl(sem, 0, GETALL, (union semun){.array = got}));
    show("sem mode 0200: GETVAL", semctl(sem, 0, GETVAL));
    struct sembuf op = {0, -1, IPC_NOWAIT};
    show("sem mode 0200: semop -1", semop(sem, &op, 1));
    struct semid_ds sds;
    show("sem mode 0200: IPC_STAT", semctl(sem, 0, IPC_STAT, (union semun){.buf = &sds}));
    sds.sem_perm.mode = 0400;
    sds.sem_perm.uid = getuid();
    sds.sem_perm.gid = getgid();
    show("sem: IPC_SET by the owner", semctl(sem, 0, IPC_SET, (union semun){.buf = &sds}));
    show("sem mode 0400: GETALL", semctl(sem, 0, GETALL, (union semun){.array = got}));
    printf("values %d %d\n", got[0], got[1]);
    show("sem mode 0400: SETALL", semctl(sem, 0, SETALL, (union semun){.array = vals}));
    show("sem mode 0400: SETALL bad pointer", semctl(sem, 0, SETALL, (union semun){.array = (void *)8}));
    show("sem mode 0400: semop -1", semop(sem, &op, 1));
    op.sem_op = 0;
    show("sem mode 0400: semop wait-for-zero", semop(sem, &op, 1));
    semctl(sem, 0, IPC_RMID);

    int q = msgget(IPC_PRIVATE, IPC_CREAT | 0400);
    struct message m = {1, "x"};
    show("msg mode 0400: msgsnd", msgsnd(q, &m, 2, IPC_NOWAIT));
    show("msg mode 0400: msgsnd bad pointer", msgsnd(q, (void *)8, 2, IPC_NOWAIT));
    show("msg mode 0400: msgrcv", msgrcv(q, &m, sizeof m.mtext, 0, IPC_NOWAIT));
    int w = msgget(IPC_PRIVATE, IPC_CREAT | 0200);
    show("msg mode 0200: msgsnd", msgsnd(w, &m, 2, IPC_NOWAIT));
    show("msg mode 0200: msgrcv", msgrcv(w, &m, sizeof m.mtext, 0, IPC_NOWAIT));
    struct msqid_ds mds;
    show("msg mode 0200: IPC_STAT", msgctl(w, IPC_STAT, &mds));
    msgctl(q, IPC_RMID, NULL);
    msgctl(w, IPC_RMID, NULL);
}

/* -- two separate runs ---------------------------------------------------------------------------------- */
static int separate(const char *role, key_t key)
{
    if (!strcmp(role, "nattch")) {
        struct shmid_ds ds;
        shmctl(key, IPC_STAT, &ds);
        printf("after exec: nattch %lu\n", (unsigned long)ds.shm_nattch);
        return 0;
    }
    if (!strcmp(role, "writer")) {
        int shm_id = shmget(key, 4096, IPC_CREAT | IPC_EXCL | 0600);
        int sem_id = semget(key, 1, IPC_CREAT | IPC_EXCL | 0600);
        if (shm_id < 0 || sem_id < 0) {
            printf("writer: %s\n", err(-1));
            return 1;
        }
        char *p = shmat(shm_id, NULL, 0);
        strcpy(p, "written by the other run");
        struct sembuf wait_reader = {0, -1, 0};
        struct timespec ts = {20, 0};
        long r = semtimedop(sem_id, &wait_reader, 1, &ts);
        printf("writer: the reader answered %s, it wrote '%s'\n", err(r), p + 100);
        shmdt(p);
        shmctl(shm_id, IPC_RMID, NULL);
        semctl(sem_id, 0, IPC_RMID);
        return 0;
    }
    int shm_id = -1, sem_id = -1;
    for (int i = 0; i < 2000 && (shm_id < 0 || sem_id < 0); i++) {
        shm_id = shmget(key, 0, 0);
        sem_id = semget(key, 0, 0);
        if (shm_id < 0 || sem_id < 0)
            usleep(5000);
    }
    char *p = shmat(shm_id, NULL, 0);
    for (int i = 0; i < 2000 && !p[0]; i++)
        usleep(5000);
    printf("reader: '%s'\n", p);
    strcpy(p + 100, "the reader's answer");
    struct sembuf post = {0, 1, 0};
    semop(sem_id, &post, 1);
    shmdt(p);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3)
        return separate(argv[1], (key_t)strtol(argv[2], NULL, 0));
    if (argc != 2)
        return 2;
    if (!strcmp(argv[1], "shm"))
        shm();
    else if (!strcmp(argv[1], "sem"))
        sem();
    else if (!strcmp(argv[1], "msg"))
        msg();
    else if (!strcmp(argv[1], "intr"))
        intr();
    else if (!strcmp(argv[1], "perm"))
        perm();
    else
        return 2;
    return 0;
}
