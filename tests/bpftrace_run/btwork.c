/* The deterministic workload of tests/test_bpftrace_run.py: known opens, reads of
 * known sizes, calls of a uprobe target with known arguments, USDT probes. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/sdt.h>

__attribute__((noinline)) int work_fn(long n, const char *name)
{
    __asm__ volatile("" ::: "memory");
    return (int)(n * 2 + strlen(name));
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    static char buf[4096];
    static const char *names[] = {"alpha", "beta", "gamma", "delta"};
    long total = 0;
    int sizes[] = {1, 10, 100, 1000, 3000};
    for (int i = 0; i < 5; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return 1;
        total += read(fd, buf, sizes[i]);
        close(fd);
    }
    for (long i = 0; i < 8; i++) {
        total += work_fn(i, names[i % 4]);
        DTRACE_PROBE2(btwork, tick, i, i * 10);
    }
    return total == 0;
}
