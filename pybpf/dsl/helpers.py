"""The helpers a pybpf program calls by readable names.

Each name here is a stub that raises when called from Python; inside a compiled program
it becomes a kernel helper call (or a few instructions). Minimum kernel versions: the
probe-read helpers split into ``_kernel``/``_user`` in Linux 5.5; ``ringbuf_output`` 5.8;
the rest are older than 4.18.
"""

from __future__ import annotations

from typing import Any, Callable, Dict

__all__ = [
    "ktime_ns", "boot_ns", "pid", "tgid", "tid", "uid", "gid", "cpu", "pid_tgid",
    "uid_gid", "random", "cgroup_id", "current_task", "comm", "probe_read_user_str",
    "probe_read_kernel_str", "probe_read_user", "probe_read_kernel", "kernel_ptr", "log2",
    "startswith", "strlen", "trace_printk", "ntohs", "ntohl", "htons", "htonl", "syscall_arg",
    "syscall_nr",
    "HELPER_NAMES",
    "XDP_ABORTED", "XDP_DROP", "XDP_PASS", "XDP_TX", "XDP_REDIRECT", "TC_ACT_OK",
    "TC_ACT_SHOT",
]

#: XDP program results
XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX, XDP_REDIRECT = 0, 1, 2, 3, 4
#: tc program results (the common ones)
TC_ACT_OK, TC_ACT_SHOT = 0, 2

HELPER_NAMES: Dict[str, str] = {}


def _helper(name: str, doc: str) -> Callable[..., Any]:
    def fn(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError(f"{name}() only works inside a compiled BPF program")
    fn.__name__ = fn.__qualname__ = name
    fn.__doc__ = doc
    fn.__pybpf_helper__ = name            # type: ignore[attr-defined]
    HELPER_NAMES[name] = doc
    return fn


ktime_ns = _helper("ktime_ns", "Nanoseconds since boot, without suspend (u64).")
boot_ns = _helper("boot_ns", "Nanoseconds since boot, suspend included (u64, Linux 5.8).")
pid = _helper("pid", "The current process id, the kernel's tgid (u32).")
tgid = _helper("tgid", "The current thread group id: the same as pid() (u32).")
tid = _helper("tid", "The current thread id, the kernel's pid (u32).")
uid = _helper("uid", "The current user id (u32).")
gid = _helper("gid", "The current group id (u32).")
cpu = _helper("cpu", "The current CPU number (u32).")
pid_tgid = _helper("pid_tgid", "tgid << 32 | pid of the current task (u64).")
uid_gid = _helper("uid_gid", "gid << 32 | uid of the current task (u64).")
random = _helper("random", "A pseudo-random u32.")
cgroup_id = _helper("cgroup_id", "The current task's cgroup v2 id (u64, Linux 4.18).")
current_task = _helper(
    "current_task", "The current task_struct, a kernel pointer: ``current_task().real_parent"
    ".tgid`` reads through BTF with probe reads (Linux 4.8).")
comm = _helper("comm", "The current task's command name, a char[16]: assign it to a "
               "char[16] field or local.")
probe_read_user_str = _helper(
    "probe_read_user_str", "``dst = probe_read_user_str(ptr)``: copy the NUL-terminated "
    "string at user address ``ptr`` into the char[N] ``dst`` (a struct field or a new "
    "local: then give the size, ``probe_read_user_str(ptr, 64)``).")
probe_read_kernel_str = _helper(
    "probe_read_kernel_str", "Like probe_read_user_str, from kernel memory.")
probe_read_user = _helper(
    "probe_read_user", "``probe_read_user(ptr, u64)``: a value of the given type read at "
    "user address ``ptr`` (integers, or a struct/array assigned to a place).")
probe_read_kernel = _helper(
    "probe_read_kernel", "``probe_read_kernel(ptr, u32)``: the same, from kernel memory.")
kernel_ptr = _helper(
    "kernel_ptr", "``kernel_ptr(value, 'sock')``: treat the number ``value`` as a pointer "
    "to the kernel type named (struct, union or typedef), so its members can be read.")
log2 = _helper("log2", "The log2 histogram slot of a value: 0 for 0, else its bit length "
               "(``hist[log2(delta)] += 1``).")
startswith = _helper("startswith", "``startswith(s, 'prefix')``: 1 if the char array ``s`` "
                     "starts with the literal prefix, else 0.")
trace_printk = _helper(
    "trace_printk", "``trace_printk('fmt %d', x)``: the kernel's debug print to "
    "trace_pipe (at most 3 arguments; prefer print()).")
ntohs = _helper("ntohs", "A 16-bit value from network (big-endian) to host order.")
htons = _helper("htons", "A 16-bit value from host to network order.")
ntohl = _helper("ntohl", "A 32-bit value from network to host order.")
htonl = _helper("htonl", "A 32-bit value from host to network order.")
syscall_arg = _helper(
    "syscall_arg", "``syscall_arg(n)``: argument ``n`` (0..5, a constant) of the system call "
    "the current task is in, as a u64, from the user registers the kernel saved at the "
    "call's entry (``bpf_task_pt_regs``, Linux 5.15; x86-64). A syscall's exit tracepoint "
    "can read the call's arguments with it, so one program at the exit replaces an entry "
    "program and a map. Tracing programs only (tracepoints, raw tracepoints, kprobes, "
    "perf events).")
syscall_nr = _helper(
    "syscall_nr", "``syscall_nr()``: the number of the system call the current task is in "
    "(u64), from the registers saved at its entry, like ``syscall_arg()`` (Linux 5.15; "
    "x86-64): the raw ``sys_exit`` tracepoint, cheaper than ``raw_syscalls:sys_exit``, "
    "has the result but not the number.")
strlen = _helper("strlen", "``strlen(s)``: the length of the text in the char array ``s`` "
                 "(a bounded loop, Linux 5.3).")
