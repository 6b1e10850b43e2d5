// SPDX-License-Identifier: GPL-2.0
/* libbpf loader of open.bpf.o (through the skeleton bpftool generates) for
 * benchmarks/peers.py.
 *
 *   libbpf_open [-p TGID] [-w adaptive|event|perf] [-c] [-b] [-r RING_KB]
 *
 * Prints "comm filename" per openat call until SIGINT; with -c prints only the first
 * event, counts the rest and, on SIGINT, drains and prints "received N lost M". With
 * -b (benchmarks/storm.py) every event is printed through stdio's buffer, without a
 * flush per line (a file gets large writes, as a C tool writing to a file does), and
 * "received N lost M" goes to stderr at the end. The ring buffer is 256 KiB (8 MiB
 * with -c) unless -r says otherwise. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include <bpf/bpf.h>
#include "open.skel.h"

struct event {
    unsigned int pid;
    unsigned int pad;
    char comm[16];
    char filename[64];
};

static volatile sig_atomic_t stop;
static int count_only, buffered;
static unsigned long long received, perf_lost;

static void on_sigint(int sig) { (void)sig; stop = 1; }

static void handle(const void *data)
{
    const struct event *e = data;
    if (!count_only || received == 0) {
        printf("%s %.64s\n", e->comm, e->filename);
        if (!buffered)
            fflush(stdout);
    }
    received++;
}

static int on_ring(void *ctx, void *data, size_t size)
{
    (void)ctx; (void)size;
    handle(data);
    return 0;
}

static void on_perf(void *ctx, int cpu, void *data, __u32 size)
{
    (void)ctx; (void)cpu; (void)size;
    handle(data);
}

static void on_perf_lost(void *ctx, int cpu, __u64 n)
{
    (void)ctx; (void)cpu;
    perf_lost += n;
}

int main(int argc, char **argv)
{
    unsigned int tgid = 0, mode = 0, ring_kb = 0;
    struct open_bpf *skel;
    struct ring_buffer *rb = NULL;
    struct perf_buffer *pb = NULL;
    int opt, err;

    while ((opt = getopt(argc, argv, "p:w:cbr:")) != -1) {
        switch (opt) {
        case 'p': tgid = strtoul(optarg, NULL, 10); break;
        case 'w': mode = !strcmp(optarg, "event") ? 1 : !strcmp(optarg, "perf") ? 2 : 0;
                  break;
        case 'c': count_only = 1; break;
        case 'b': buffered = 1; break;
        case 'r': ring_kb = strtoul(optarg, NULL, 10); break;
        default: return 2;
        }
    }
    signal(SIGINT, on_sigint);
    signal(SIGTERM, on_sigint);
    skel = open_bpf__open();
    if (!skel)
        return 1;
    skel->rodata->targ_tgid = tgid;
    skel->rodata->wake_mode = mode;
    if (!ring_kb)
        ring_kb = count_only ? 8192 : 256;
    bpf_map__set_max_entries(skel->maps.ring, ring_kb * 1024);
    skel->rodata->wake_threshold = ring_kb * 1024 / 4;
    if ((err = open_bpf__load(skel))) {
        fprintf(stderr, "load: %s\n", strerror(-err));
        return 1;
    }
    if (mode == 2)
        pb = perf_buffer__new(bpf_map__fd(skel->maps.perf), 512, on_perf, on_perf_lost,
                              NULL, NULL);
    else
        rb = ring_buffer__new(bpf_map__fd(skel->maps.ring), on_ring, NULL, NULL);
    if (!pb && !rb)
        return 1;
    if ((err = open_bpf__attach(skel))) {       /* after the buffers: nothing is lost */
        fprintf(stderr, "attach: %s\n", strerror(-err));
        return 1;
    }
    /* adaptive wake-ups need a timed poll (5 ms, as pybpf's reader), and a consume
     * after it: ring_buffer__poll reads only the rings epoll reported, and records
     * posted with BPF_RB_NO_WAKEUP are never reported */
    while (!stop) {
        err = pb ? perf_buffer__poll(pb, 5) : ring_buffer__poll(rb, mode == 0 ? 5 : 100);
        if (err < 0 && err != -EINTR)
            break;
        if (rb && mode == 0)
            ring_buffer__consume(rb);
    }
    open_bpf__detach(skel);
    if (pb)
        perf_buffer__consume(pb);
    else
        ring_buffer__consume(rb);
    if (count_only) {
        __u32 zero = 0;
        __u64 d = 0;
        bpf_map_lookup_elem(bpf_map__fd(skel->maps.drops), &zero, &d);
        printf("received %llu lost %llu\n", received, (unsigned long long)(d + perf_lost));
        fflush(stdout);
    }
    perf_buffer__free(pb);
    ring_buffer__free(rb);
    open_bpf__destroy(skel);
    return 0;
}
