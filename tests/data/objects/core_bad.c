#include "pybpf_test.h"

struct task_struct {
    int pybpf_no_such_field;
} __attribute__((preserve_access_index));

static u64 (*get_current_task)(void) = (void *)35;
static long (*probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;

SEC("raw_tp/sys_enter")
int read_missing(void *ctx)
{
    struct task_struct *task = (struct task_struct *)get_current_task();
    int v = 0;
    probe_read_kernel(&v, sizeof(v), &task->pybpf_no_such_field);
    return v;
}

char LICENSE[] SEC("license") = "GPL";
