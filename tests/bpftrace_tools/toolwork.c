/* The workload of tests/test_bpftrace_tools.py: one of each thing bpftrace's own tools
 * trace, from a process named "toolwork" (comm), so that every tool has lines of its own
 * to print.
 *
 *   toolwork DIR    opens (one found, one missing, one by the old open syscall + a read), stat/lstat/statx/statfs, kill(self, 0), sync,
 *                   setuid/setresuid to the same uid, nanosleep, fork + exec of
 *                   /bin/true with the argument "toolwork-exec", a thread, getaddrinfo,
 *                   gethostbyname, and 1 MiB of O_DIRECT writes + fsync in DIR. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void *thread_fn(void *arg)
{
    return arg;
}

int main(int argc, char **argv)
{
    const char *dir = argc > 1 ? argv[1] : "/tmp";
    char path[4096];
    struct stat st;
    struct statx stx;
    struct statfs sfs;
    struct timespec nap = {0, 20 * 1000 * 1000};
    struct addrinfo *res = NULL;
    pthread_t th;
    void *buf;
    int fd;

    snprintf(path, sizeof(path), "%s/toolwork.data", dir);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_DIRECT, 0644);
    if (fd >= 0) {
        if (posix_memalign(&buf, 4096, 65536) == 0) {
            memset(buf, 'x', 65536);
            for (int i = 0; i < 16; i++)
                if (write(fd, buf, 65536) < 0)
                    break;
            free(buf);
        }
        fsync(fd);
        close(fd);
    }
    fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0)
        close(fd);
    open("/nonexistent/toolwork", O_RDONLY);
    fd = syscall(SYS_open, "/etc/hostname", O_RDONLY);    /* the old open syscall */
    if (fd >= 0) {
        char small[16];
        if (read(fd, small, sizeof(small)) < 0)
            small[0] = 0;
        close(fd);
    }
    /* the old stat syscalls (statsnoop traces those and statx, not newfstatat) */
    syscall(SYS_stat, "/etc/hostname", &st);
    syscall(SYS_lstat, "/nonexistent/toolwork", &st);
    statx(AT_FDCWD, "/etc/hostname", 0, STATX_SIZE, &stx);
    statfs("/", &sfs);
    kill(getpid(), 0);
    sync();
    setuid(getuid());
    setresuid(getuid(), getuid(), getuid());
    syscall(SYS_nanosleep, &nap, NULL);
    if (pthread_create(&th, NULL, thread_fn, NULL) == 0)
        pthread_join(th, NULL);
    if (getaddrinfo("localhost", NULL, NULL, &res) == 0)
        freeaddrinfo(res);
    gethostbyname("localhost");
    pid_t pid = fork();
    if (pid == 0) {
        char arg[32] = "toolwork-exec";
        char *args[] = {"/bin/true", arg, NULL};
        execv("/bin/true", args);
        _exit(127);
    }
    if (pid > 0)
        waitpid(pid, NULL, 0);
    unlink(path);
    return 0;
}
