/* prof_1khz: linked into a workload, ITIMER_PROF at 1 kHz with a handler counting the ticks (issue 11's "cost of
 * ITIMER_PROF at 1 kHz"); the program's own output is unchanged. */
#include <signal.h>
#include <sys/time.h>

static volatile sig_atomic_t ticks;

static void on_prof(int sig)
{
    (void)sig;
    ticks++;
}

__attribute__((constructor)) static void start_profiling(void)
{
    struct sigaction sa = { .sa_handler = on_prof, .sa_flags = SA_RESTART };
    sigaction(SIGPROF, &sa, 0);
    struct itimerval every_ms = { { 0, 1000 }, { 0, 1000 } };
    setitimer(ITIMER_PROF, &every_ms, 0);
}
