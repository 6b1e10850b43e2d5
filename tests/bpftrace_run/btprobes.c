/* The deterministic workload of tests/test_bpftrace_probes_run.py and
 * tests/test_bpftrace_vm.py: uprobe targets with known arguments, USDT probes whose
 * arguments live in registers, in memory and in constants, a probe with two sites,
 * a probe behind a semaphore (it fires only while a tracer holds the semaphore), a
 * known number of nanosleeps, a variable to watch.
 * argv: [wait] -- "wait": block until a byte arrives on stdin (for -p runs). */
#define _SDT_HAS_SEMAPHORES 1
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/sdt.h>

/* with _SDT_HAS_SEMAPHORES every probe names a semaphore; only "gated" tests it */
unsigned short btprobes_gated_semaphore __attribute__((section(".probes")));
unsigned short btprobes_args_semaphore __attribute__((section(".probes")));
unsigned short btprobes_twice_semaphore __attribute__((section(".probes")));
volatile long watched;

__attribute__((noinline)) long add3(long a, long b, long c)
{
    __asm__ volatile("" ::: "memory");
    return a + b + c;
}

__attribute__((noinline)) int leaf_one(int v)
{
    __asm__ volatile("" ::: "memory");
    return v + 1;
}

__attribute__((noinline)) int leaf_two(int v)
{
    __asm__ volatile("" ::: "memory");
    return v * 2;
}

int main(int argc, char **argv)
{
    long total = 0;
    int gated = 0;
    if (argc > 1 && strcmp(argv[1], "wait") == 0) {
        char c;
        if (read(0, &c, 1) != 1)
            return 2;
    }
    for (long i = 0; i < 5; i++) {
        volatile long mem = i * 100;
        short neg = (short)-i;
        total += add3(i, i * 2, i * 3);
        total += leaf_one((int)i) + leaf_two((int)i);
        DTRACE_PROBE4(btprobes, args, i, mem, neg, 42);
        if (i % 2)
            DTRACE_PROBE1(btprobes, twice, i);
        else
            DTRACE_PROBE1(btprobes, twice, i + 1000);
        if (btprobes_gated_semaphore) {
            gated++;
            DTRACE_PROBE2(btprobes, gated, i, gated);
        }
        watched = i;
    }
    for (int i = 0; i < 3; i++) {
        struct timespec ts = {0, 1000};
        nanosleep(&ts, NULL);
    }
    return total == 0;
}
