#include "pybpf_test.h"

/* Maps initialised in .maps: a prog array and an array of maps. */

struct inner {
    __uint(type, MAP_ARRAY);
    __uint(max_entries, 1);
    __type(key, u32);
    __type(value, u64);
} inner_a SEC(".maps"), inner_b SEC(".maps");

struct {
    __uint(type, MAP_ARRAY_OF_MAPS);
    __uint(max_entries, 2);
    __type(key, u32);
    __array(values, struct inner);
} outer SEC(".maps") = {
    .values = { [1] = &inner_b },
};

SEC("xdp")
int tail_tx(struct xdp_md *ctx)
{
    return 3;                           /* XDP_TX */
}

struct {
    __uint(type, MAP_PROG_ARRAY);
    __uint(max_entries, 4);
    __type(key, u32);
    __array(values, int (void *));
} jumps SEC(".maps") = {
    .values = { [2] = (void *)&tail_tx },
};

SEC("xdp")
int entry(struct xdp_md *ctx)
{
    u32 one = 1, zero = 0;
    void *inner = map_lookup(&outer, &one);
    if (inner) {
        u64 *v = map_lookup(inner, &zero);
        if (v)
            *v += 7;
    }
    tail_call(ctx, &jumps, 2);
    return 1;                           /* XDP_DROP: the tail call failed */
}

char LICENSE[] SEC("license") = "GPL";
