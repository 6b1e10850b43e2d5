#include "pybpf_test.h"

/* Refused by the verifier: the packet is read without a bounds check. */

SEC("xdp")
int unchecked(struct xdp_md *ctx)
{
    unsigned char *data = (unsigned char *)(long)ctx->data;
    return data[0] == 0xff ? 1 : 2;     /* PYBPF_BAD_LINE */
}

char LICENSE[] SEC("license") = "GPL";
