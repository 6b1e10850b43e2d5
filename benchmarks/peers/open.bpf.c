// SPDX-License-Identifier: GPL-2.0
/* The openat tracer of benchmarks/peers.py in C, for clang -target bpf and libbpf: the
 * same program as pybpf_prog.build_program (one 88-byte record per sys_enter_openat,
 * optionally only for one tgid, through a ring buffer with the adaptive wake-up or
 * flags 0, or a perf buffer). No vmlinux.h: the tracepoint record is declared from its
 * tracefs format, as BCC and bpftrace read it. */
#include <linux/types.h>
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct sys_enter_openat_args {
    __u64 common;                /* common_type, flags, preempt_count, pid */
    __s64 syscall_nr;
    __u64 dfd;
    const char *filename;
    __u64 flags;
    __u64 mode;
};

struct event {
    __u32 pid;
    __u32 pad;
    char comm[16];
    char filename[64];
};

const volatile __u32 targ_tgid = 0;     /* 0: every process */
const volatile __u32 wake_mode = 0;     /* 0 adaptive, 1 flags 0 (per event), 2 perf */

#define RING_BYTES (8 << 20)     /* the loader may resize it, and sets the threshold */
const volatile __u64 wake_threshold = RING_BYTES / 4;   /* adaptive: a quarter */

struct {
    __uint(type, BPF_MAP_TYPE_RINGBUF);
    __uint(max_entries, RING_BYTES);
} ring SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERF_EVENT_ARRAY);
    __uint(key_size, sizeof(__u32));
    __uint(value_size, sizeof(__u32));
} perf SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, __u64);
} drops SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_openat")
int peers_open(struct sys_enter_openat_args *ctx)
{
    struct event e;
    __u32 tgid = bpf_get_current_pid_tgid() >> 32;
    long err;

    if (targ_tgid && tgid != targ_tgid)
        return 0;
    e.pid = tgid;
    e.pad = 0;
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    bpf_probe_read_user_str(e.filename, sizeof(e.filename), ctx->filename);
    if (wake_mode == 2) {
        err = bpf_perf_event_output(ctx, &perf, BPF_F_CURRENT_CPU, &e, sizeof(e));
    } else {
        __u64 flags = 0;
        if (wake_mode == 0)
            flags = bpf_ringbuf_query(&ring, BPF_RB_AVAIL_DATA) < wake_threshold
                    ? BPF_RB_NO_WAKEUP : BPF_RB_FORCE_WAKEUP;
        err = bpf_ringbuf_output(&ring, &e, sizeof(e), flags);
    }
    if (err) {
        __u32 zero = 0;
        __u64 *d = bpf_map_lookup_elem(&drops, &zero);
        if (d)
            __sync_fetch_and_add(d, 1);
    }
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
