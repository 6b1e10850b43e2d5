/* counts[pid] += 1 on every getpid(): the pybpf program in compile.py, in C. */
#include "bench.h"
struct { __uint(type, 1); __type(key, u32); __type(value, u64); __uint(max_entries, 10240); } counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getpid")
int count(void *ctx)
{
    u32 pid = pid_tgid() >> 32;
    u64 *v = map_lookup(&counts, &pid);
    if (v) {
        __sync_fetch_and_add(v, 1);
    } else {
        u64 one = 1;
        map_update(&counts, &pid, &one, 1);
    }
    return 0;
}
