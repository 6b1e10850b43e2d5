/* The workload of tests/test_bpftrace_funcs.py (built with frame pointers, so user
 * stacks unwind): known opens and reads, uprobe targets with register and stack
 * arguments, a global for uaddr(), an exec with known arguments, a signal to itself,
 * and a pause at the end so user symbols still resolve when the tracer reads them. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

long bt_global = 0x1122334455667788L;
static volatile int got_signal;

__attribute__((noinline)) int work_fn(long n, const char *name)
{
    __asm__ volatile("" ::: "memory");
    return (int)(n * 2 + strlen(name));
}

__attribute__((noinline)) long many_args(long a, long b, long c, long d, long e, long f,
                                         long g, long h)
{
    __asm__ volatile("" ::: "memory");
    return a + b + c + d + e + f + g + h;
}

__attribute__((noinline)) void take_buf(const unsigned char *p, long n)
{
    __asm__ volatile("" : : "r"(p), "r"(n) : "memory");
}

static void on_usr1(int sig)
{
    got_signal = sig;
}

int main(int argc, char **argv)
{
    const char *path = argc > 1 ? argv[1] : "/etc/hostname";
    const char *mode = argc > 2 ? argv[2] : "";
    static char buf[4096];
    static const char *names[] = {"alpha", "beta", "gamma", "delta"};
    static const unsigned char bytes[] = {'A', 'b', 0, 1, 0x7f, 0xff, '~', ' ', '\\', 'z'};
    long total = 0;
    int sizes[] = {1, 10, 100, 1000, 3000};
    signal(SIGUSR1, on_usr1);
    for (int i = 0; i < 5; i++) {
        int fd = open(path, O_RDONLY);
        if (fd < 0)
            return 1;
        total += read(fd, buf, sizes[i]);
        close(fd);
    }
    for (long i = 0; i < 8; i++)
        total += work_fn(i, names[i % 4]);
    total += many_args(1, 2, 3, 4, 5, 6, 7, 8);
    take_buf(bytes, sizeof(bytes));
    if (strchr(mode, 'x')) {
        pid_t pid = fork();
        if (pid == 0) {
            /* on the stack: pages the kernel can read at execve (no fault needed) */
            char a0[] = "true", a1[] = "one", a2[] = "two words", a3[] = "3";
            char *args[] = {a0, a1, a2, a3, NULL};
            execv("/bin/true", args);
            _exit(127);
        }
        waitpid(pid, NULL, 0);
    }
    if (strchr(mode, 's'))
        kill(getpid(), SIGUSR1);
    if (strchr(mode, 'l'))
        usleep(700 * 1000);
    return total == 0;
}
