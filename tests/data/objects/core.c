#include "pybpf_test.h"

/* A local view of task_struct: only the fields used, in any order, at any offset;
 * CO-RE relocations move the accesses to the running kernel's layout. */
struct task_struct {
    int tgid;
    int pid;
    int pybpf_no_such_field;
    struct task_struct *real_parent;
} __attribute__((preserve_access_index));

static long (*probe_read_kernel)(void *dst, u32 size, const void *src) = (void *)113;
static u64 (*get_current_task)(void) = (void *)35;

const volatile u32 target_tgid;

int seen_pid;
int seen_tgid;
int parent_tgid;
int has_missing = -1;
int calls;

SEC("raw_tp/sys_enter")
int read_task(void *ctx)
{
    struct task_struct *task, *parent;
    int pid = 0, tgid = 0, ptgid = 0;

    if (pid_tgid() >> 32 != target_tgid)
        return 0;
    task = (struct task_struct *)get_current_task();
    probe_read_kernel(&pid, sizeof(pid), &task->pid);
    probe_read_kernel(&tgid, sizeof(tgid), &task->tgid);
    probe_read_kernel(&parent, sizeof(parent), &task->real_parent);
    probe_read_kernel(&ptgid, sizeof(ptgid), &parent->tgid);
    seen_pid = pid;
    seen_tgid = tgid;
    parent_tgid = ptgid;
    has_missing = __builtin_preserve_field_info(task->pybpf_no_such_field, 2);
    calls++;
    return 0;
}

char LICENSE[] SEC("license") = "GPL";
