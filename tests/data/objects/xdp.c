#include "pybpf_test.h"

SEC("xdp")
int xdp_len(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    u8 *p = data;
    if (data + 1 > end)
        return 1;           /* XDP_DROP */
    return p[0] == 0xff ? 1 : 2;
}

char LICENSE[] SEC("license") = "GPL";
