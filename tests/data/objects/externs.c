#include "pybpf_test.h"

/* __kconfig and __ksym externs, resolved against the running kernel. */

extern unsigned int LINUX_KERNEL_VERSION __kconfig;
extern int CONFIG_HZ __kconfig;
extern _Bool CONFIG_BPF_SYSCALL __kconfig;
extern int CONFIG_PYBPF_NO_SUCH_OPTION __kconfig __weak;
extern char CONFIG_DEFAULT_HOSTNAME[16] __kconfig;
extern const void _text __ksym;                        /* typeless: an address */
extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;   /* a kfunc */

u64 out[7];

SEC("xdp")
int externs(struct xdp_md *ctx)
{
    out[0] = LINUX_KERNEL_VERSION;
    out[1] = CONFIG_HZ;
    out[2] = CONFIG_BPF_SYSCALL;
    out[3] = CONFIG_PYBPF_NO_SUCH_OPTION;
    out[4] = CONFIG_DEFAULT_HOSTNAME[0] | CONFIG_DEFAULT_HOSTNAME[1] << 8;
    out[5] = (u64)&_text;
    out[6] = (u64)bpf_cast_to_kern_ctx(ctx) != 0;
    return 2;
}

char LICENSE[] SEC("license") = "GPL";
