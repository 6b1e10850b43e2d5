/* openat enter/exit paired through a hash map, sent on a ring buffer with adaptive
 * wake-ups and a drop counter, filtered by a load-time pid: the pybpf program in
 * compile.py, in C. */
#include "bench.h"
struct event { u32 pid; s32 ret; char comm[16]; char path[160]; };
struct { __uint(type, 27); __uint(max_entries, 256 * 1024); } events SEC(".maps");
struct { __uint(type, 1); __type(key, u64); __type(value, struct event); __uint(max_entries, 10240); } start SEC(".maps");
/* records the full ring refused, per CPU (pybpf's RingBuf.output counts them too) */
struct { __uint(type, 6); __type(key, u32); __type(value, u64); __uint(max_entries, 64); } drops SEC(".maps");
const volatile u32 target_pid = 0;

struct enter_args { u64 pad; s32 nr; s32 dfd; const char *filename; s64 flags; s64 mode; };
struct exit_args { u64 pad; s32 nr; s64 ret; };

SEC("tracepoint/syscalls/sys_enter_openat")
int enter(struct enter_args *args)
{
    u64 id = pid_tgid();
    if (target_pid && (id >> 32) != target_pid)
        return 0;
    struct event e = {};
    e.pid = id >> 32;
    get_comm(e.comm, sizeof(e.comm));
    read_user_str(e.path, sizeof(e.path), args->filename);
    map_update(&start, &id, &e, 0);
    return 0;
}

SEC("tracepoint/syscalls/sys_exit_openat")
int leave(struct exit_args *args)
{
    u64 id = pid_tgid();
    struct event *p = map_lookup(&start, &id);
    if (!p)
        return 0;
    p->ret = args->ret;
    u64 flags = ringbuf_query(&events, 0) < 256 * 1024 / 4 ? 1 : 2;
    if (ringbuf_output(&events, p, sizeof(*p), flags) < 0) {
        u32 slot = 0;
        u64 *n = map_lookup(&drops, &slot);
        if (n)
            *n += 1;
    }
    map_delete(&start, &id);
    return 0;
}
