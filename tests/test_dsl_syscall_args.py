"""``syscall_arg(n)`` and ``syscall_nr()``: a system call's arguments and number read
back from the registers the kernel saved at its entry, checked against the kernel's own
records of the same calls (the ``sys_enter_openat`` tracepoint's fields, the
``raw_syscalls:sys_exit`` tracepoint's ``id``) and against what this test passed."""

import ctypes
import os

import pytest

from bpfenv import needs_bpf
from pybpf.dsl import (
    ArrayMap, CompileError, HashMap, RingBuf, Struct, char, compile_module, const, i64,
    pid, probe_read_user_str, raw_tracepoint, syscall_arg, syscall_nr, tracepoint, u32,
    u64, xdp,
)

HERE = os.path.abspath(__file__)
SYS_OPENAT = 257            # x86-64
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class Call(Struct):
    at_exit: u64            # 0: the entry tracepoint's fields, 1: syscall_arg() at the exit
    ret: i64
    a0: u64
    a1: u64
    a2: u64
    a3: u64
    path: char[64]


calls = RingBuf(Call, size=16 * 4096)
TARGET = const(u32, 0)


@tracepoint("syscalls:sys_enter_openat")
def openat_entry(args):
    if pid() != TARGET:
        return 0
    c = Call()
    c.a0 = u64(args.dfd)
    c.a1 = args.filename
    c.a2 = u64(args.flags)
    c.a3 = u64(args.mode)
    c.path = probe_read_user_str(args.filename)
    calls.output(c)
    return 0


@tracepoint("syscalls:sys_exit_openat")
def openat_exit(args):
    if pid() != TARGET:
        return 0
    c = Call()
    c.at_exit = 1
    c.ret = args.ret
    c.a0 = syscall_arg(0)
    c.a1 = syscall_arg(1)
    c.a2 = syscall_arg(2)
    c.a3 = syscall_arg(3)
    c.path = probe_read_user_str(syscall_arg(1))
    calls.output(c)
    return 0


@needs_bpf
def test_syscall_arg_reads_the_arguments_at_the_exit(tmp_path) -> None:
    """Each openat's arguments at its exit equal the entry tracepoint's record of them
    and what we passed: the directory fd, the path's address and text, the flags and
    the mode (the fourth argument, which the syscall ABI passes in r10)."""
    dirfd = os.open(str(tmp_path), os.O_RDONLY | os.O_DIRECTORY)
    names = [b"first-file", b"second-file"]
    flags = [os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, os.O_CREAT | os.O_RDWR | os.O_EXCL]
    modes = [0o640, 0o600]
    got = []
    try:
        with compile_module([openat_entry, openat_exit]).load(
                consts={"TARGET": os.getpid()}) as mod:
            mod.on("calls", got.append)
            bufs, fds = [], []
            for name, flag, mode in zip(names, flags, modes):
                buf = ctypes.create_string_buffer(name)
                bufs.append(buf)
                fd = libc.syscall(SYS_OPENAT, dirfd, buf, flag, mode)
                assert fd >= 0, os.strerror(ctypes.get_errno())
                fds.append(fd)
            mod.run(duration=2, until=lambda: len([c for c in got if c.path in
                                                   ("first-file", "second-file")]) >= 4)
        for fd in fds:
            os.close(fd)
    finally:
        os.close(dirfd)
    mine = [c for c in got if c.path in ("first-file", "second-file")]
    entries = [c for c in mine if c.at_exit == 0]
    exits = [c for c in mine if c.at_exit == 1]
    assert len(entries) == len(exits) == 2
    for entry, exit_, name, buf, flag, mode, fd in zip(entries, exits, names, bufs, flags,
                                                        modes, fds):
        want = (dirfd, ctypes.addressof(buf), flag, mode, name.decode())
        assert (entry.a0, entry.a1, entry.a2, entry.a3, entry.path) == want
        assert (exit_.a0, exit_.a1, exit_.a2, exit_.a3, exit_.path) == want
        assert exit_.ret == fd


by_number = HashMap(u32, u64, max_entries=1024)     # syscall_nr() at the raw sys_exit
by_id = HashMap(u32, u64, max_entries=1024)         # raw_syscalls:sys_exit's id
counting = ArrayMap(u32, 1)                         # 1 while the test's calls run


@raw_tracepoint("sys_exit")
def count_by_number(args):
    if pid() != TARGET or counting[0] != 1:
        return 0
    n = by_number.setdefault(u32(syscall_nr()))
    n[0] += 1
    return 0


@tracepoint("raw_syscalls:sys_exit")
def count_by_id(args):
    if pid() != TARGET or counting[0] != 1:
        return 0
    n = by_id.setdefault(u32(args.id))
    n[0] += 1
    return 0


@needs_bpf
def test_syscall_nr_is_the_number_the_kernel_reports() -> None:
    """Counted by syscall_nr() at the raw exit hook and by the tracefs tracepoint's id,
    this process's calls give the same table, with the calls the test made in it. The
    flag that gates counting is set and cleared by system calls, so both programs see
    the same calls."""
    with compile_module([count_by_number, count_by_id]).load(
            consts={"TARGET": os.getpid()}) as mod:
        mod["counting"][0] = 1
        for _ in range(7):
            os.getppid()
        os.close(os.open("/dev/null", os.O_RDONLY))
        mod["counting"][0] = 0
        numbers = {int(k): int(v) for k, v in mod["by_number"].items()}
        ids = {int(k): int(v) for k, v in mod["by_id"].items()}
    assert numbers == ids
    assert numbers.get(110, 0) >= 7                 # getppid on x86-64
    assert numbers.get(SYS_OPENAT, 0) >= 1


def test_syscall_arg_needs_a_constant_argument_number() -> None:
    def bad_number(args):
        return syscall_arg(6)

    def not_constant(args):
        n = pid()
        return syscall_arg(n)

    def nr_with_argument(args):
        return syscall_nr(1)

    for fn, message in ((bad_number, "syscall_arg(n) takes one constant argument number, "
                         "0 to 5"),
                        (not_constant, "syscall_arg(n) takes one constant argument number"),
                        (nr_with_argument, "syscall_nr() takes no arguments")):
        fn = tracepoint("syscalls:sys_exit_openat")(fn)
        with pytest.raises(CompileError) as info:
            compile_module([fn])
        assert message in str(info.value)
        assert info.value.loc.file == HERE
        assert info.value.loc.line == fn.__code__.co_firstlineno + (2 if fn is not_constant
                                                                      else 1)


@xdp()
def in_xdp(ctx):
    return u32(syscall_arg(0))


def test_syscall_arg_is_refused_where_there_is_no_system_call() -> None:
    with pytest.raises(CompileError) as info:
        compile_module([in_xdp])
    assert "syscall_arg() cannot be used in a xdp program" in str(info.value)
    assert info.value.loc.line == in_xdp.__code__.co_firstlineno + 2
