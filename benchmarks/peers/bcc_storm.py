#!/usr/bin/python3
"""BCC's opensnoop and execsnoop for benchmarks/storm.py, on tracepoints only (BCC's own
opensnoop-bpfcc and execsnoop-bpfcc attach kprobes/fentry, which this machine refuses).
Debian's python3-bpfcc runs under /usr/bin/python3 and needs kernel headers.

usage: /usr/bin/python3 benchmarks/peers/bcc_storm.py open --pid TGID
       /usr/bin/python3 benchmarks/peers/bcc_storm.py exec --comm PARENT_COMM

open: BCC opensnoop's design: sys_enter_openat saves the path pointer per thread (only
for TGID), sys_exit_openat sends pid, comm, the result and the path (255 bytes) through
a perf buffer of 64 pages per CPU (opensnoop-bpfcc's size); prints
``PID COMM FD ERR PATH`` per event, like opensnoop-bpfcc.
exec: one event per sys_enter_execve of a task whose command name is PARENT_COMM
(the task has not exec'd yet: it is a child of that program; BCC builds against this
machine's older kernel headers, so reading the parent through task_struct would use
the wrong offsets), with the file name and argv[1]; prints ``PCOMM PID ARGS``.
Lost records are reported by BCC's default lost callback on stderr ("Possibly lost N
samples"). Runs until SIGINT, then drains the buffers.
"""

import argparse
import signal
import sys

from bcc import BPF

OPEN = r"""
#include <linux/sched.h>
struct val_t { const char *fname; };
struct data_t {
    u32 pid;
    int ret;
    char comm[TASK_COMM_LEN];
    char fname[255];
};
BPF_HASH(infotmp, u64, struct val_t);
BPF_PERF_OUTPUT(events);

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u64 id = bpf_get_current_pid_tgid();
    struct val_t val = {};
    if ((id >> 32) != TGID)
        return 0;
    val.fname = args->filename;
    infotmp.update(&id, &val);
    return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat) {
    u64 id = bpf_get_current_pid_tgid();
    struct val_t *valp = infotmp.lookup(&id);
    struct data_t data = {};
    if (valp == 0)
        return 0;
    data.pid = id >> 32;
    data.ret = args->ret;
    bpf_get_current_comm(&data.comm, sizeof(data.comm));
    bpf_probe_read_user_str(&data.fname, sizeof(data.fname), valp->fname);
    events.perf_submit(args, &data, sizeof(data));
    infotmp.delete(&id);
    return 0;
}
"""

EXEC = r"""
#include <linux/sched.h>
struct data_t {
    u32 pid;
    char comm[TASK_COMM_LEN];
    char fname[128];
    char arg1[128];
};
BPF_PERF_OUTPUT(events);

TRACEPOINT_PROBE(syscalls, sys_enter_execve) {
    struct data_t data = {};
    const char *arg = 0;
    char want[] = "WANTED_COMM";
    bpf_get_current_comm(&data.comm, sizeof(data.comm));
    for (int i = 0; i < sizeof(want); i++)
        if (data.comm[i] != want[i])
            return 0;
    data.pid = bpf_get_current_pid_tgid() >> 32;
    bpf_probe_read_user_str(&data.fname, sizeof(data.fname), args->filename);
    bpf_probe_read_user(&arg, sizeof(arg), (void *)((u64)args->argv + sizeof(arg)));
    if (arg)
        bpf_probe_read_user_str(&data.arg1, sizeof(data.arg1), arg);
    events.perf_submit(args, &data, sizeof(data));
    return 0;
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=("open", "exec"))
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--comm", default="stormgen")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignored
    if args.mode == "open":
        b = BPF(text=OPEN.replace("TGID", str(args.pid)))
        print("%-6s %-16s %4s %3s %s" % ("PID", "COMM", "FD", "ERR", "PATH"))
    else:
        b = BPF(text=EXEC.replace("WANTED_COMM", args.comm[:15]))
        print("%-16s %-7s %s" % ("PCOMM", "PID", "ARGS"))
    table = b["events"]
    out = sys.stdout.write

    def on_open(cpu, data, size):
        e = table.event(data)
        fd, err = (e.ret, 0) if e.ret >= 0 else (-1, -e.ret)
        out("%-6d %-16s %4d %3d %s\n" % (e.pid, e.comm.decode("utf-8", "replace"), fd, err,
                                         e.fname.decode("utf-8", "replace")))

    def on_exec(cpu, data, size):
        e = table.event(data)
        out("%-16s %-7d %s %s\n" % (e.comm.decode("utf-8", "replace"), e.pid,
                                    e.fname.decode("utf-8", "replace"),
                                    e.arg1.decode("utf-8", "replace")))

    table.open_perf_buffer(on_open if args.mode == "open" else on_exec, page_cnt=64)
    try:
        while True:
            b.perf_buffer_poll(100)
    except KeyboardInterrupt:
        pass
    for tp in (("syscalls:sys_enter_openat", "syscalls:sys_exit_openat")
               if args.mode == "open" else ("syscalls:sys_enter_execve",)):
        b.detach_tracepoint(tp)
    b.perf_buffer_poll(0)
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
