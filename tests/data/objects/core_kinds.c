#include "pybpf_test.h"

/* Every CO-RE relocation kind, against local views of kernel types. */

struct sk_buff {
    u32 len;
    u8 pkt_type:3;
} __attribute__((preserve_access_index));

struct task_struct {
    int pid;
} __attribute__((preserve_access_index));

struct task_struct___wrong {
    long long pid;                      /* the kernel's is an int: does not match */
} __attribute__((preserve_access_index));

struct pybpf_no_such_type {
    int x;
};

enum bpf_map_type {
    BPF_MAP_TYPE_RINGBUF = 1,           /* 27 in the kernel */
    PYBPF_NO_SUCH_ENUMERATOR = 2,
};

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;
static long (*probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;

#define FIELD(s, f, kind) __builtin_preserve_field_info((s)->f, kind)
#define TYPE_INFO(type, kind) __builtin_preserve_type_info(*(typeof(type) *)0, kind)
#define TYPE_ID(type, kind) __builtin_btf_type_id(*(typeof(type) *)0, kind)
#define ENUM_INFO(type, value, kind) __builtin_preserve_enum_value(*(typeof(type) *)value, kind)

u64 out[16];

SEC("tc")
int kinds(void *ctx)
{
    struct sk_buff *skb = bpf_cast_to_kern_ctx(ctx);
    u64 val = 0;

    /* a bitfield read as libbpf's BPF_CORE_READ_BITFIELD_PROBED does */
    probe_read_kernel(&val, FIELD(skb, pkt_type, 1), (void *)skb + FIELD(skb, pkt_type, 0));
    val <<= FIELD(skb, pkt_type, 4);
    if (FIELD(skb, pkt_type, 3))
        val = ((long long)val) >> FIELD(skb, pkt_type, 5);
    else
        val = val >> FIELD(skb, pkt_type, 5);
    out[0] = val;
    out[1] = FIELD(skb, pkt_type, 0);
    out[2] = FIELD(skb, pkt_type, 1);
    out[3] = FIELD(skb, pkt_type, 4);
    out[4] = FIELD(skb, pkt_type, 5);
    out[5] = FIELD(skb, pkt_type, 3);
    out[6] = TYPE_ID(struct task_struct, 1);
    out[7] = TYPE_ID(struct task_struct, 0);
    out[8] = TYPE_INFO(struct task_struct, 0);
    out[9] = TYPE_INFO(struct pybpf_no_such_type, 0);
    out[10] = TYPE_INFO(struct task_struct, 1);
    out[11] = TYPE_INFO(struct task_struct, 2);
    out[12] = TYPE_INFO(struct task_struct___wrong, 2);
    out[13] = ENUM_INFO(enum bpf_map_type, BPF_MAP_TYPE_RINGBUF, 1);
    out[14] = ENUM_INFO(enum bpf_map_type, PYBPF_NO_SUCH_ENUMERATOR, 0);
    out[15] = FIELD(skb, len, 1) * 100 + FIELD(skb, len, 2) * 10 + FIELD(skb, len, 3);
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
