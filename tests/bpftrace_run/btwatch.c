/* The workload of tests/test_bpftrace_watchpoints_run.py (function-form watchpoints):
 * functions that take the address of a variable, then writes to those variables.
 * argv: [N [DELAY_MS]] -- N (0..8, default 1) distinct addresses passed to watch_two;
 * DELAY_MS (default 0) sleep before anything happens (for -p runs).
 * Each phase sleeps 200 ms after its calls, so that an asyncwatchpoint (which does not
 * stop the process) is set before the writes. */
#include <stdlib.h>
#include <unistd.h>

volatile long slot[2];
volatile long many[8];

__attribute__((noinline)) void watch_one(volatile long *p)
{
    __asm__ volatile("" ::"r"(p) : "memory");
}

__attribute__((noinline)) void watch_two(int i, volatile long *p)
{
    __asm__ volatile("" ::"r"(p), "r"(i) : "memory");
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 1;
    int delay = argc > 2 ? atoi(argv[2]) : 0;
    if (n < 0 || n > 8)
        return 2;
    if (delay)
        usleep(delay * 1000);
    /* one address twice (set once), then a second address (set too) */
    watch_one(&slot[0]);
    usleep(200000);
    slot[0] = 1;
    slot[0] = 2;
    watch_one(&slot[0]);
    usleep(200000);
    slot[0] = 3;
    watch_one(&slot[1]);
    usleep(200000);
    slot[1] = 4;
    slot[0] = 5;
    /* N addresses through the second argument */
    for (int i = 0; i < n; i++)
        watch_two(i, &many[i]);
    usleep(200000);
    for (int i = 0; i < n; i++)
        many[i] = i;
    return 0;
}
