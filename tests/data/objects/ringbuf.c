#include "pybpf_test.h"

struct {
    __uint(type, MAP_RINGBUF);
    __uint(max_entries, 4096);
} events SEC(".maps");

struct event {
    u32 pid;
    u32 magic;
};

SEC("xdp")
int emit(struct xdp_md *ctx)
{
    struct event e = {.pid = pid_tgid() >> 32, .magic = 0xfeedbeef};
    ringbuf_output(&events, &e, sizeof(e), 0);
    return 2;
}

char LICENSE[] SEC("license") = "GPL";
