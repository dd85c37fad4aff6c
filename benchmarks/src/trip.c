/* trip: the guest side of benchmarks/trip.py, the syscall trip profiler (issue 16). Under hermipy only: the
 * profiler answers syscall TRIP_NR itself (natively it is ENOSYS).
 * usage: trip N
 *   syscall(TRIP_NR, MEASURE, buf, rfd, wfd)   the profiler times its parts (fd lookup, host call, copy ...)
 *                                               on this live kernel, between two trips
 *   then for each phase (what the profiler does with the loop's calls is in trip.py):
 *   syscall(TRIP_NR, START, phase); N calls; syscall(TRIP_NR, STOP)
 *     phase 0: syscall(TRIP_NR, NOTHING): the trip floor (the profiler returns at once)
 *     phases 1-3: read(rfd, buf, 1) of /dev/zero;  phases 4-6: write(wfd, buf, 1) to /dev/null */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#define TRIP_NR 511
enum { NOTHING, MEASURE, START, STOP };
#define PHASES 7

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trip N\n");
        return 2;
    }
    long n = atol(argv[1]), bad = 0;
    static char buf[64];
    int rfd = open("/dev/zero", O_RDONLY), wfd = open("/dev/null", O_WRONLY);
    if (rfd < 0 || wfd < 0) {
        perror("open");
        return 1;
    }
    if (syscall(TRIP_NR, MEASURE, buf, rfd, wfd) != 0) {
        fprintf(stderr, "trip: not under the profiler\n");
        return 1;
    }
    for (int phase = 0; phase < PHASES; phase++) {
        syscall(TRIP_NR, START, phase);
        if (phase == 0)
            for (long i = 0; i < n; i++) bad += syscall(TRIP_NR, NOTHING) != 0;
        else if (phase <= 3)
            for (long i = 0; i < n; i++) bad += read(rfd, buf, 1) != 1;
        else
            for (long i = 0; i < n; i++) bad += write(wfd, buf, 1) != 1;
        syscall(TRIP_NR, STOP);
    }
    printf("trip: %ld calls per phase, %ld unexpected results\n", n, bad);
    return bad != 0;
}
