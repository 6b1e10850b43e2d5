/* The load generator of benchmarks/storm.py.
 *
 *   stormgen open N PATH [RATE]   N x openat(PATH) + close; RATE opens per second
 *                                 (0 or absent: as fast as possible)
 *   stormgen exec N PROG          N x fork + execve(PROG, {PROG, "storm-go"}) + wait
 *
 * Prints "ready", then reads one-byte commands from stdin:
 *   'p'  one openat("/dev/zero") (a ping: shows a tracer is live, on another path
 *        than the workload's, so that it is not counted)
 *   'P'  256 pings (enough to push a block-buffered tracer's output to its file)
 *   'e'  one fork + execve(PROG, {PROG, "storm-ping"}) + wait (exec mode's ping)
 *   'g'  the workload; then prints the seconds it took (CLOCK_MONOTONIC around the
 *        loop only) and exits.
 * A rate-limited run spreads its opens over 1 ms ticks (RATE / 1000 per tick, at
 * absolute deadlines, so a late tick is caught up at once rather than drifting). */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static void open_close(const char *path)
{
    int fd = openat(AT_FDCWD, path, O_RDONLY);
    if (fd >= 0)
        close(fd);
}

static int run_exec(const char *prog, const char *tag)
{
    int status;
    pid_t pid = fork();

    if (pid < 0)
        return -1;
    if (pid == 0) {
        /* the argument is copied to the child's stack: a string in .rodata is in a
         * file-backed page that fork does not map into the child (it would be faulted
         * in on first touch), and a tracer cannot fault it in, so every tracer would
         * see an empty argv[1] */
        char arg[32];
        char *argv[] = {(char *)prog, arg, NULL};
        strncpy(arg, tag, sizeof(arg) - 1);
        arg[sizeof(arg) - 1] = 0;
        execve(prog, argv, environ);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    return 0;
}

static void open_storm(long n, const char *path, long rate)
{
    struct timespec next;
    long per_tick, done = 0;

    if (rate <= 0) {
        for (long i = 0; i < n; i++)
            open_close(path);
        return;
    }
    per_tick = rate / 1000 > 0 ? rate / 1000 : 1;
    clock_gettime(CLOCK_MONOTONIC, &next);
    while (done < n) {
        for (long i = 0; i < per_tick && done < n; i++, done++)
            open_close(path);
        next.tv_nsec += 1000000;
        if (next.tv_nsec >= 1000000000) {
            next.tv_nsec -= 1000000000;
            next.tv_sec++;
        }
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &next, NULL);
    }
}

int main(int argc, char **argv)
{
    struct timespec t0, t1;
    const char *mode, *target;
    long n, rate, failed = 0;
    char c;

    if (argc < 4 || (strcmp(argv[1], "open") && strcmp(argv[1], "exec"))) {
        fprintf(stderr, "usage: stormgen open N PATH [RATE] | stormgen exec N PROG\n");
        return 2;
    }
    mode = argv[1];
    n = atol(argv[2]);
    target = argv[3];
    rate = argc > 4 ? atol(argv[4]) : 0;
    printf("ready\n");
    fflush(stdout);
    while (read(0, &c, 1) == 1) {
        if (c == 'p' || c == 'P') {
            for (int i = 0; i < (c == 'P' ? 256 : 1); i++)
                open_close("/dev/zero");
            continue;
        }
        if (c == 'e') {
            run_exec(target, "storm-ping");
            continue;
        }
        if (c != 'g')
            continue;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (mode[0] == 'o') {
            open_storm(n, target, rate);
        } else {
            for (long i = 0; i < n; i++)
                failed += run_exec(target, "storm-go") != 0;
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        printf("%.9f %ld\n", (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
               failed);
        return 0;
    }
    return 1;
}
