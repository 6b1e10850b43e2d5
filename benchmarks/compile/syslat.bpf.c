/* A log2 histogram of syscall latency (usecs): raw_syscalls enter/exit paired per
 * thread; the pybpf program in compile.py, in C. */
#include "bench.h"
struct { __uint(type, 1); __type(key, u32); __type(value, u64); __uint(max_entries, 10240); } start SEC(".maps");
struct { __uint(type, 2); __type(key, u32); __type(value, u64); __uint(max_entries, 65); } hist SEC(".maps");

static __attribute__((always_inline)) u32 log2_slot(u64 v)
{
    u32 r = 0, s;
    s = (v >> 32 != 0) * 32; v >>= s; r += s;
    s = (v >> 16 != 0) * 16; v >>= s; r += s;
    s = (v >> 8 != 0) * 8; v >>= s; r += s;
    s = (v >> 4 != 0) * 4; v >>= s; r += s;
    s = (v >> 2 != 0) * 2; v >>= s; r += s;
    s = (v >> 1 != 0); v >>= s; r += s;
    return r + (u32)v;
}

SEC("tracepoint/raw_syscalls/sys_enter")
int sys_enter(void *ctx)
{
    u32 tid = pid_tgid();
    u64 ts = ktime_ns();
    map_update(&start, &tid, &ts, 0);
    return 0;
}

SEC("tracepoint/raw_syscalls/sys_exit")
int sys_exit(void *ctx)
{
    u32 tid = pid_tgid();
    u64 *ts = map_lookup(&start, &tid);
    if (!ts)
        return 0;
    u32 slot = log2_slot((ktime_ns() - *ts) / 1000);
    u64 *c = map_lookup(&hist, &slot);
    if (c)
        __sync_fetch_and_add(c, 1);
    map_delete(&start, &tid);
    return 0;
}
