#include "pybpf_test.h"

struct {
    __uint(type, MAP_HASH);
    __uint(max_entries, 16);
    __type(key, u32);
    __type(value, u64);
} counts SEC(".maps");

SEC("tracepoint/syscalls/sys_enter_getppid")
int count_getppid(void *ctx)
{
    u32 key = pid_tgid() >> 32;
    u64 one = 1, *val = map_lookup(&counts, &key);
    if (val)
        __sync_fetch_and_add(val, 1);
    else
        map_update(&counts, &key, &one, ANY);
    return 0;
}

SEC("raw_tp/sys_enter")
int raw_enter(void *ctx)
{
    u32 key = 0xffffffff;
    u64 one = 1, *val = map_lookup(&counts, &key);
    if (val)
        __sync_fetch_and_add(val, 1);
    else
        map_update(&counts, &key, &one, ANY);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
