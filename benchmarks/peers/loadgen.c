/* The throughput workload of benchmarks/peers.py: prints "ready", then reads commands
 * from stdin: 'p' = one openat("/dev/zero") (a ping, so the caller can see that a
 * tracer is live; another path, so that tools printing every event can leave it out), 'g' = N x openat("/dev/null") + close, then prints the seconds it
 * took and exits. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    long n = argc > 1 ? atol(argv[1]) : 1000000;
    char c;
    struct timespec t0, t1;

    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) == 1) {
        if (c == 'p') {
            int fd = openat(AT_FDCWD, "/dev/zero", O_RDONLY);
            if (fd >= 0)
                close(fd);
            continue;
        }
        if (c != 'g')
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        for (long i = 0; i < n; i++) {
            int fd = openat(AT_FDCWD, "/dev/null", O_RDONLY);
            if (fd >= 0)
                close(fd);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%.9f\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
        return 0;
    }
    return 1;
}
