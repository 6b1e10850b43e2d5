#include "pybpf_test.h"

NOINLINE int triple(int x)
{
    return x * 3;
}

NOINLINE int add_triple(int a, int b)
{
    return triple(a) + b;
}

NOINLINE int unused_helper(int x)
{
    return x - 1;
}

SEC("xdp")
int calls(struct xdp_md *ctx)
{
    int len = ctx->data_end - ctx->data;
    return add_triple(len, 1) == 3 * 14 + 1 ? 2 : 1;  /* XDP_PASS when len == 14 */
}

SEC("xdp")
int calls_again(struct xdp_md *ctx)
{
    return triple(1) == 3 ? 3 : 1;                    /* XDP_TX */
}

char LICENSE[] SEC("license") = "GPL";
