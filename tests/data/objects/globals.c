#include "pybpf_test.h"

const volatile u32 multiplier = 2;      /* .rodata, set before load */
const volatile u64 fixed = 0x1122334455667788ULL;
u64 data_counter = 40;                  /* .data */
u64 bss_counter;                        /* .bss */
u32 custom SEC(".data.custom") = 7;     /* custom data section */

SEC("xdp")
int globals_prog(struct xdp_md *ctx)
{
    data_counter += multiplier;
    bss_counter += 1;
    custom += fixed == 0x1122334455667788ULL ? 1 : 100;
    return 2;
}

char LICENSE[] SEC("license") = "GPL";
