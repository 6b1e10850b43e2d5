"""pybpf.dsl programs with maps, structs, strings, events, contexts and the module loader,
loaded into the real kernel. Most programs are XDP programs run with BPF_PROG_TEST_RUN
(deterministic); tracing ones attach to tracepoints and see a workload the test makes.
Kprobe/fentry programs run in the second-kernel stage (``vmtest``)."""

import io
import os
import subprocess
import sys

import pytest

from bpfenv import needs_bpf, refused_here
from pybpf.dsl import (
    ArrayMap, CompileError, HashMap, Histogram, PerCPUArrayMap, PerfEventArray, RingBuf,
    TC_ACT_OK, TC_ACT_SHOT, XDP_DROP, XDP_PASS, StackTraceMap, tc, Struct, char, ntohs, socket_filter, comm, compile_module, const, current_task, fentry, i32,
    kernel_ptr, kprobe, ktime_ns, log2, pid, pid_tgid, probe_read_kernel_str,
    probe_read_user, probe_read_user_str, raw_tracepoint, startswith, strlen, tid, tp_btf,
    tracepoint, u8, u16, u32, u64, uretprobe, xdp,
)
from pybpf.dsl import i16, i64
from pybpf.dsl.loader import format_print
from pybpf.events.histogram import log2_slot_of
from pybpf.link.kprobe import kprobes_available
from pybpf.syscall.bpf import ProgType
from pybpf.syscall.errors import OutOfRangeError

PACKET = bytes(64)
HERE = os.path.abspath(__file__)


class Pair(Struct):
    a: u8
    b: u64
    c: u16
    name: char[6]


class Key(Struct):
    pid: u32
    slot: u32


class Event(Struct):
    pid: u32
    ret: i32
    comm: char[16]
    path: char[160]


# -- structs in Python ---------------------------------------------------------------------
def test_struct_layout_follows_c() -> None:
    layout = Pair.__pybpf_layout__
    assert [(f.name, f.offset) for f in layout.fields] == [("a", 0), ("b", 8), ("c", 16),
                                                           ("name", 18)]
    assert Pair.size() == 24 and Pair.size() == __import__("ctypes").sizeof(Pair.ctype())
    p = Pair(a=1, b=2**40, c=7, name="abc")
    raw = p.to_bytes()
    assert len(raw) == 24 and Pair.from_bytes(raw) == p
    assert Pair.from_bytes(raw).name == "abc"


def test_struct_rejects_non_types() -> None:
    with pytest.raises(TypeError, match="not a pybpf.dsl type"):
        class Bad(Struct):
            x: int


# -- maps through XDP test runs ----------------------------------------------------------
inp = ArrayMap(u64, 8)
out = ArrayMap(u64, 8)
counts = HashMap(u32, u64, max_entries=64)


@xdp()
def map_semantics(ctx):
    out[0] = counts[7]                  # absent: 0
    out[1] = counts.get(7, 99)          # absent: the default
    counts[7] += 5                      # inserted as 0 + 5
    counts[7] += 2                      # atomic add in place
    out[2] = counts[7]
    out[3] = u64(1 if 7 in counts else 0)
    del counts[7]
    out[4] = u64(0 if 7 in counts else 1)
    counts[u32(inp[0])] = inp[1]
    return 2


@needs_bpf
def test_map_operations() -> None:
    with compile_module([map_semantics]).load(attach=False) as mod:
        mod["inp"][0] = 11
        mod["inp"][1] = 12345
        assert mod.programs["map_semantics"].test_run(PACKET).retval == 2
        got = [mod["out"][i] for i in range(5)]
        assert got == [0, 99, 7, 1, 1]
        assert dict(mod["counts"].items()) == {11: 12345}


pairs = HashMap(u32, Pair, max_entries=16)
percpu = PerCPUArrayMap(u64, 1)


@xdp()
def struct_values(ctx):
    p = Pair(a=3, c=500)
    p.b = inp[0] * 2
    p.name = "xy"
    pairs[1] = p
    q = pairs.get(1)
    if q is None:
        return 1
    q.c = u16(q.c + 1)                     # a u16: no atomic form, so written out
    out[0] = q.b + q.c
    if startswith(q.name, "x") and q.name == "xy" and q.name != "x":
        out[1] = 1
    out[2] = strlen(q.name)
    out[3] = strlen(p.name)
    p.name = "abcde"                    # 5 characters and the NUL fill char[6]
    out[4] = strlen(p.name)
    percpu[0] += 3
    return 2


@needs_bpf
def test_struct_values_in_maps() -> None:
    with compile_module([struct_values]).load(attach=False) as mod:
        mod["inp"][0] = 21
        assert mod.programs["struct_values"].test_run(PACKET).retval == 2
        assert mod["out"][0] == 42 + 501 and mod["out"][1] == 1
        assert [mod["out"][i] for i in (2, 3, 4)] == [2, 2, 5]
        stored = mod["pairs"][1]
        assert (stored.a, stored.b, stored.c, stored.name) == (3, 42, 501, b"xy")
        assert sum(mod["percpu"][0]) == 3


LIMIT = const(u32, 10)


@xdp()
def rodata_const(ctx):
    if inp[0] > LIMIT:
        return 1
    return 2


@needs_bpf
def test_load_time_constants() -> None:
    spec = compile_module([rodata_const])
    assert spec.consts == {"LIMIT": 10}
    for limit, value, want in ((10, 11, 1), (20, 11, 2)):
        with spec.load(attach=False, consts={"LIMIT": limit}) as mod:
            mod["inp"][0] = value
            assert mod.programs["rodata_const"].test_run(PACKET).retval == want
    with pytest.raises(KeyError, match="NOPE"):
        spec.load(attach=False, consts={"NOPE": 1})
    # never cut to the constant's width (4294990579 used to become 23283), never a float
    for bad in (4294990579, 2**70, -1):
        with pytest.raises(OutOfRangeError, match=rf"^load-time constant LIMIT={bad} is "
                                                  r"out of range: u32 0\.\.4294967295$"):
            spec.load(attach=False, consts={"LIMIT": bad})
    with pytest.raises(TypeError, match="LIMIT must be an integer, not float"):
        spec.load(attach=False, consts={"LIMIT": 2.5})
    with spec.load(attach=False, consts={"LIMIT": 2**32 - 1}) as mod:   # the largest fits
        mod["inp"][0] = 2**32 - 1
        assert mod.programs["rodata_const"].test_run(PACKET).retval == 2   # not above it
    with spec.load(attach=False, consts={"LIMIT": 2**32 - 2}) as mod:
        mod["inp"][0] = 2**32 - 1
        assert mod.programs["rodata_const"].test_run(PACKET).retval == 1


@xdp()
def log2_prog(ctx):
    for i in range(8):
        out[u32(i)] = log2(inp[u32(i)])
    return 2


@needs_bpf
def test_log2_matches_the_histogram_slots() -> None:
    values = [0, 1, 2, 3, 1023, 1024, 2**40 + 5, 2**64 - 1]
    with compile_module([log2_prog]).load(attach=False) as mod:
        for i, v in enumerate(values):
            mod["inp"][i] = v
        mod.programs["log2_prog"].test_run(PACKET)
        assert [mod["out"][i] for i in range(8)] == [log2_slot_of(v) for v in values]


@xdp()
def printer(ctx):
    p = Pair(name="hey")
    x: i32 = -5
    print(f"x={x} y={inp[0]:#x} s={p.name!r}", "tail", sep="|")
    return 2


@needs_bpf
def test_print_is_formatted_in_user_space() -> None:
    buf = io.StringIO()
    with compile_module([printer]).load(attach=False, print_to=buf) as mod:
        mod["inp"][0] = 255
        mod.programs["printer"].test_run(PACKET)
        mod.poll(1.0)
    assert buf.getvalue() == "x=-5 y=0xff s='hey'|tail\n"
    site = compile_module([printer]).unit.prints[0]
    assert site.loc is not None and site.loc.file == HERE


# -- tracing: tracepoints, BTF, ring and perf buffers ------------------------------------------
events = RingBuf(Event, size=64 * 1024)
start = HashMap(u64, Event, max_entries=1024)
TARGET = const(u32, 0)


@tracepoint("syscalls:sys_enter_openat")
def open_enter(args):
    if pid() != TARGET:
        return 0
    e = Event()
    e.pid = pid()
    e.comm = comm()
    e.path = probe_read_user_str(args.filename)
    start[pid_tgid()] = e
    return 0


@tracepoint("syscalls:sys_exit_openat")
def open_exit(args):
    p = start.get(pid_tgid())
    if not p:
        return 0
    p.ret = i32(args.ret)
    events.output(p)
    del start[pid_tgid()]
    return 0


@needs_bpf
def test_tracepoint_pairs_enter_and_exit(tmp_path) -> None:
    target = tmp_path / "dsl-open-target"
    target.write_text("x")
    got = []
    with compile_module([open_enter, open_exit]).load(consts={"TARGET": os.getpid()}) as mod:
        mod.on("events", got.append)
        fd = os.open(str(target), os.O_RDONLY)
        os.close(fd)
        try:
            os.open(str(tmp_path / "missing"), os.O_RDONLY)
        except FileNotFoundError:
            pass
        mod.run(duration=0.3, until=lambda: len(got) >= 2)
    mine = [e for e in got if e.path.startswith(str(tmp_path))]
    assert [(e.path, e.ret >= 0) for e in mine] == [(str(target), True),
                                                    (str(tmp_path / "missing"), False)]
    assert mine[1].ret == -2
    assert all(e.pid == os.getpid() and e.comm == open("/proc/self/comm").read().strip()
               for e in mine)


class Exec(Struct):
    pid: u32
    ppid: u32
    parent_comm: char[16]
    arg: char[32]
    index: u32


execs = PerfEventArray(Exec)


@tracepoint("syscalls:sys_enter_execve")
def exec_args(args):
    if current_task().real_parent.tgid != TARGET:
        return 0
    e = Exec()
    e.pid = pid()
    task = current_task()
    e.ppid = u32(task.real_parent.tgid)
    e.parent_comm = task.real_parent.comm
    for i in range(4):
        ptr = probe_read_user(args.argv + i * 8, u64)
        if ptr == 0:
            break
        e.arg = probe_read_user_str(ptr)
        e.index = u32(i)
        execs.output(e)
    return 0


@needs_bpf
def test_btf_struct_reads_and_perf_buffer() -> None:
    got = []
    with compile_module([exec_args]).load(consts={"TARGET": os.getpid()}) as mod:
        mod.on("execs", got.append)
        child = subprocess.run(["/bin/true", "one", "two"], check=True)
        assert child.returncode == 0
        mod.run(duration=0.5, until=lambda: len(got) >= 3)
    assert [(e.index, e.arg) for e in got] == [(0, "/bin/true"), (1, "one"), (2, "two")]
    me = open("/proc/self/comm").read().strip()
    assert all(e.ppid == os.getpid() and e.parent_comm == me and e.pid != os.getpid()
               for e in got)


wakeups = HashMap(u32, u64, max_entries=10240)
lat = Histogram()
switches = ArrayMap(u64, 1)


@raw_tracepoint("sched_wakeup")
def on_wakeup(ctx):
    wakeups[u32(ctx.p.pid)] = ktime_ns()
    return 0


@raw_tracepoint("sched_switch")
def on_switch(ctx):
    switches[0] += 1
    t = wakeups.get(u32(ctx.next.pid))
    if t:
        lat[log2((ktime_ns() - t[0]) // 1000)] += 1
        del wakeups[u32(ctx.next.pid)]
    return 0


@needs_bpf
def test_raw_tracepoints_with_btf_argument_names() -> None:
    import time
    with compile_module([on_wakeup, on_switch]).load() as mod:
        for _ in range(20):
            time.sleep(0.002)           # each sleep ends with a wake-up of this thread
        total = sum(mod["lat"].values())
        assert mod["switches"][0] > 0 and total > 0


# -- compile errors ----------------------------------------------------------------------
def _error_of(fn) -> CompileError:
    with pytest.raises(CompileError) as info:
        compile_module([fn])
    return info.value


@xdp()
def unchecked(ctx):
    p = pairs.get(1)
    return p.b


@xdp()
def wrong_event(ctx):
    p = Pair()
    events.output(p)
    return 2


@xdp()
def bad_field(ctx):
    return ctx.no_such_field


@xdp()
def struct_as_number(ctx):
    p = Pair()
    return p + 1


@xdp()
def dest_in_expression(ctx):
    return comm() + 1


@xdp()
def too_much_stack(ctx):
    a = Event()
    b = Event()
    c = Event()
    d = Event()
    e = Event()
    f = Event()
    return a.pid + b.pid + c.pid + d.pid + e.pid + f.pid


@pytest.mark.parametrize("fn, message", [
    (unchecked, "'p' may be None here"),
    (wrong_event, "carries Event records, not Pair"),
    (bad_field, "xdp has no field 'no_such_field'"),
    (struct_as_number, "not a number"),
    (dest_in_expression, "writes into a destination"),
    (too_much_stack, "bytes of stack"),
])
def test_compile_errors_name_the_line(fn, message) -> None:
    err = _error_of(fn)
    assert message in str(err)
    assert err.loc is not None and err.loc.file == HERE
    first = fn.__code__.co_firstlineno
    assert first <= err.loc.line <= first + 12


@xdp()
def stackid_in_xdp(ctx):
    return stacks.stackid()


stacks = StackTraceMap(64)


@needs_bpf
def test_verifier_error_points_at_the_python_line() -> None:
    from pybpf.program import VerifierError
    spec = compile_module([stackid_in_xdp])
    with pytest.raises(VerifierError) as info:
        spec.load(attach=False)
    assert info.value.source is not None
    assert info.value.source.line == stackid_in_xdp.__code__.co_firstlineno + 2
    assert "stacks.stackid()" in str(info.value)


# -- second kernel: kprobes and fentry ---------------------------------------------------
unlinks = HashMap(u32, u64, max_entries=64)


@kprobe("do_unlinkat")
def kprobe_unlink(ctx):
    if pid() == TARGET:
        unlinks[u32(ctx.dfd + 1000)] += 1
    return 0


@fentry("do_unlinkat")
def fentry_unlink(ctx):
    if pid() == TARGET:
        unlinks[1] += 1
    return 0


switched = ArrayMap(u64, 1)


@tp_btf("sched_switch")
def btf_switch(ctx):
    if ctx.next.tgid == TARGET or ctx.prev.tgid == TARGET:
        switched[0] += 1
    return 0


@pytest.mark.vmtest
def test_tp_btf_typed_arguments() -> None:
    if refused_here(ProgType.TRACING, "tp_btf"):
        pytest.skip(refused_here(ProgType.TRACING, "tp_btf"))
    import time
    with compile_module([btf_switch]).load(consts={"TARGET": os.getpid()}) as mod:
        for _ in range(5):
            time.sleep(0.01)
        assert mod["switched"][0] >= 5


def _unlink_some(tmp_path, n: int) -> None:
    for i in range(n):
        p = tmp_path / f"u{i}"
        p.write_text("x")
        os.unlink(p)


@pytest.mark.vmtest
@pytest.mark.parametrize("fn, key", [(kprobe_unlink, 1000 - 100), (fentry_unlink, 1)])
def test_kprobe_and_fentry_arguments_by_name(tmp_path, fn, key) -> None:
    why = kprobes_available() if fn is kprobe_unlink else refused_here(ProgType.TRACING,
                                                                        "fentry")
    if why:
        pytest.skip(why)
    with compile_module([fn]).load(consts={"TARGET": os.getpid()}) as mod:
        _unlink_some(tmp_path, 3)
        got = dict(mod["unlinks"].items())
    assert got == {key: 3}          # unlink(2) passes AT_FDCWD (-100) as dfd


# -- uretprobe ---------------------------------------------------------------------------
rets = ArrayMap(u64, 2)


@uretprobe("c:getpid")
def getpid_ret(ctx):
    if pid() == TARGET:
        rets[0] = ctx.retval
        rets[1] += 1
    return 0


@needs_bpf
def test_uretprobe_sees_the_return_value() -> None:
    with compile_module([getpid_ret]).load(consts={"TARGET": os.getpid()}) as mod:
        import ctypes
        libc = ctypes.CDLL(None)
        for _ in range(3):
            libc.getpid()
        assert mod["rets"][0] == os.getpid() and mod["rets"][1] >= 3


def test_kernel_ptr_and_str_helpers_compile() -> None:
    @tracepoint("sock:inet_sock_set_state")
    def state(args):
        sk = kernel_ptr(args.skaddr, "sock")
        e = Event()
        e.ret = sk.__sk_common.skc_family
        e.path = probe_read_kernel_str(args.skaddr)
        e.pid = tid()
        events.output(e)
        return 0
    spec = compile_module([state])
    assert len(spec.programs["state"].instructions) > 10


def test_format_print_conversions() -> None:
    from pybpf.compiler.unit import PrintSite
    import struct
    site = PrintSite(0, ("a=", ("int", 8, 8, True, ">4", None), " b=",
                         ("str", 16, 8, False, "", ord("r"))), 24, None)
    raw = struct.pack("<Qq8s", 0, -3, b"hi\0")
    assert format_print(site, raw) == "a=  -3 b='hi'"


def test_disasm_and_cli(tmp_path) -> None:
    path = tmp_path / "prog.py"
    path.write_text("from pybpf.dsl import *\n\ncounts = HashMap(u32, u64)\n\n"
                    "@tracepoint('syscalls:sys_enter_getpid')\ndef count(args):\n"
                    "    counts[pid()] += 1\n    return 0\n")
    out = subprocess.run([sys.executable, "-c", "from pybpf.cli import main; main()",
                          "compile", str(path), "--disasm"], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "counts[pid()] += 1" in out.stdout and "lock *(u64 *)" in out.stdout


@needs_bpf
def test_module_written_as_elf_object(tmp_path) -> None:
    import shutil
    from pybpf.object import read_object
    spec = compile_module([open_enter, open_exit])
    obj = tmp_path / "opens.o"
    spec.write_object(str(obj), consts={"TARGET": 7})
    back = read_object(str(obj))
    assert {n: len(p.instructions) for n, p in back.programs.items()} == \
        {n: len(p.instructions) for n, p in spec.programs.items()}
    assert back.program_info["open_enter"].section == "tracepoint/syscalls/sys_enter_openat"
    bpftool = shutil.which("bpftool")
    if bpftool is None:
        pytest.skip("bpftool is not installed (the oracle for loading written objects)")
    pin = f"/sys/fs/bpf/pybpf_test_dsl_{os.getpid()}"
    try:
        subprocess.run([bpftool, "prog", "loadall", str(obj), pin], check=True,
                       capture_output=True)
        assert sorted(os.listdir(pin)) == ["open_enter", "open_exit"]
    finally:
        subprocess.run(["rm", "-rf", pin])


# -- packets -------------------------------------------------------------------------------
class EthHdr(Struct):
    dst: u8[6]
    src: u8[6]
    proto: u16


class IPv4Hdr(Struct):
    ver_ihl: u8
    tos: u8
    tot_len: u16
    id: u16
    frag: u16
    ttl: u8
    protocol: u8
    check: u16
    saddr: u32
    daddr: u32


class UDPHdr(Struct):
    sport: u16
    dport: u16
    len: u16
    check: u16


ports = HashMap(u16, u64, max_entries=64)


@xdp()
def xdp_udp(ctx):
    eth = ctx.load(EthHdr, 0)
    if eth is None or ntohs(eth.proto) != 0x0800:
        return XDP_PASS
    ip = ctx.load(IPv4Hdr, 14)
    if not ip or ip.protocol != 17:
        return XDP_PASS
    udp = ctx.load(UDPHdr, 14 + (ip.ver_ihl & 0xF) * 4)
    if udp is None:
        return XDP_PASS
    ports[ntohs(udp.dport)] += 1
    udp.check = 0                       # XDP may write the packet
    return XDP_DROP if ntohs(udp.dport) == 53 else XDP_PASS


@socket_filter
def sock_udp(ctx):
    # a socket filter sees the packet from the network header on (BPF_PROG_TEST_RUN
    # strips the Ethernet header, as an AF_INET raw socket would not have one)
    ip = ctx.load(IPv4Hdr, 0)
    if not ip or ip.protocol != 17:
        return 0
    udp = ctx.load(UDPHdr, (ip.ver_ihl & 0xF) * 4)
    if udp is None:
        return 0
    ports[ntohs(udp.dport)] += 1
    return ctx.len


@tc()
def tc_udp(ctx):
    eth = ctx.load(EthHdr, 0)
    if eth is None or ntohs(eth.proto) != 0x0800:
        return TC_ACT_OK
    ip = ctx.load(IPv4Hdr, 14)
    if ip is None or ip.protocol != 17:
        return TC_ACT_OK
    udp = ctx.load(UDPHdr, 14 + (ip.ver_ihl & 0xF) * 4)
    if udp is None:
        return TC_ACT_OK
    ports[ntohs(udp.dport)] += 1
    return TC_ACT_SHOT if ntohs(udp.dport) == 53 else TC_ACT_OK


def _udp_packet(dport: int, ihl: int = 5) -> bytes:
    import struct
    eth = bytes(6) + bytes(6) + struct.pack("!H", 0x0800)
    ip = struct.pack("!BBHHHBBHII", 0x40 | ihl, 0, 20 + 8, 0, 0, 64, 17, 0, 0x7F000001,
                     0x7F000001) + bytes(4 * (ihl - 5))
    return eth + ip + struct.pack("!HHHH", 1234, dport, 8, 0xABCD)


@needs_bpf
@pytest.mark.parametrize("fn", [xdp_udp, tc_udp, sock_udp])
def test_packet_headers_with_bounds_checks(fn) -> None:
    with compile_module([fn]).load(attach=False) as mod:
        prog = mod.programs[fn.__name__]
        r53 = prog.test_run(_udp_packet(53))
        r80 = prog.test_run(_udp_packet(80, ihl=6))
        short = prog.test_run(_udp_packet(80)[:40 if fn is sock_udp else 38])   # no UDP header
        tcp = bytearray(_udp_packet(80))
        tcp[23] = 6
        prog.test_run(bytes(tcp))
        assert dict(mod["ports"].items()) == {53: 1, 80: 1}
    if fn is tc_udp:
        assert (r53.retval, r80.retval, short.retval) == (2, 0, 0)
    elif fn is xdp_udp:
        assert (r53.retval, r80.retval, short.retval) == (1, 2, 2)
        assert r80.data[14 + 24 + 6:14 + 24 + 8] == b"\0\0"     # checksum cleared
    else:
        assert (r53.retval, r80.retval, short.retval) == (28, 32, 0)   # bytes from L3


@xdp()
def unchecked_packet(ctx):
    eth = ctx.load(EthHdr, 0)
    return eth.proto


def test_packet_pointers_must_be_checked() -> None:
    assert "'eth' may be None here" in str(_error_of(unchecked_packet))


def _send_exec(tag: u32) -> int:
    e = Exec()
    e.pid = pid()
    e.index = tag
    e.arg = "helper"
    execs.output(e)                     # perf output needs the context: passed along
    return 0


@tracepoint("syscalls:sys_enter_execve")
def exec_helper(args):
    if current_task().real_parent.tgid == TARGET:
        return _send_exec(7)
    return 0


@needs_bpf
def test_called_functions_get_the_context() -> None:
    got = []
    with compile_module([exec_helper]).load(consts={"TARGET": os.getpid()}) as mod:
        mod.on("execs", got.append)
        subprocess.run(["/bin/true"], check=True)
        mod.run(duration=0.5, until=lambda: len(got) >= 1)
    assert [(e.index, e.arg) for e in got] == [(7, "helper")]


tiny = RingBuf(Pair, size=4096)


@xdp()
def flood(ctx):
    p = Pair(a=1)
    for i in range(300):
        p.b = u64(i)
        tiny.output(p)
    return 2


@needs_bpf
def test_full_ring_buffer_drops_are_counted() -> None:
    batches = []
    with compile_module([flood]).load(attach=False) as mod:
        mod.on("tiny", batches.append, batch=True)
        mod.programs["flood"].test_run(PACKET)
        mod.poll(0.5)
        got = [e.b for batch in batches for e in batch]
        lost = mod.lost("tiny")
    assert got == list(range(len(got))) and 0 < len(got) < 300
    assert lost == 300 - len(got)


# -- USDT arguments ----------------------------------------------------------------------
USDT_C = r"""
#include <sys/sdt.h>
int main(int argc, char **argv) {
    volatile long x = 40 + argc;
    volatile int y = -7;
    long xv = x;
    int yv = y;
    STAP_PROBE3(pybpf, args, xv, yv, 5);
    return 0;
}
"""
usdt_out = ArrayMap(u64, 4)


def usdt_args(ctx):
    usdt_out[0] = u64(ctx.arg0)
    usdt_out[1] = u64(ctx.arg1)          # an int: sign-extended, then as u64
    usdt_out[2] = u64(ctx.arg2)
    usdt_out[3] += 1
    return 0


@needs_bpf
@pytest.mark.parametrize("opt", ["-O0", "-O2"])
def test_usdt_arguments(tmp_path, opt) -> None:
    import shutil
    if shutil.which("gcc") is None or subprocess.run(
            ["gcc", "-E", "-x", "c", "-"], input="#include <sys/sdt.h>\n",
            capture_output=True, text=True).returncode:
        pytest.skip("gcc and sys/sdt.h (systemtap-sdt-dev) build the USDT test binary")
    src = tmp_path / "u.c"
    src.write_text(USDT_C)
    binary = tmp_path / "u"
    subprocess.run(["gcc", opt, "-o", str(binary), str(src)], check=True)
    from pybpf.dsl import retarget, usdt
    from pybpf.elf.usdt import find_usdt
    kinds = {a.kind for a in find_usdt(str(binary), "pybpf", "args")[0].args}
    fn = retarget(usdt_args, usdt(f"{binary}:pybpf:args"))
    with compile_module([fn]).load() as mod:
        subprocess.run([str(binary), "a"], check=True)
        got = [mod["usdt_out"][i] for i in range(4)]
    assert got == [42, 2**64 - 7, 5, 1], (kinds, got)


# -- more map kinds, nested structs, fexit ---------------------------------------------------
from pybpf.dsl import LRUHashMap, QueueMap, StackMap, fexit  # noqa: E402

fifo = QueueMap(u32, 8)
lifo = StackMap(u32, 8)
recent = LRUHashMap(u32, u64, max_entries=4)


class Outer(Struct):
    tag: u8
    inner: Pair
    tail: u32


@xdp()
def more_maps(ctx):
    for i in range(3):
        fifo.push(u32(10 + i))
        lifo.push(u32(10 + i))
    out[0] = fifo.pop(99)
    out[1] = lifo.pop(99)
    out[2] = fifo.peek(99)
    for i in range(8):
        recent[u32(i)] = u64(i)           # an LRU map of 4 keeps the newest
    o = Outer(tag=1, tail=3)
    o.inner.c = 7
    o.inner.name = "in"
    out[3] = o.tag + o.inner.c + o.tail + strlen(o.inner.name)
    return 2


@needs_bpf
def test_queues_lru_and_nested_structs() -> None:
    with compile_module([more_maps]).load(attach=False) as mod:
        mod.programs["more_maps"].test_run(PACKET)
        assert [mod["out"][i] for i in range(4)] == [10, 12, 11, 13]
        assert len(list(mod["recent"].keys())) <= 4 and 7 in mod["recent"]
        assert mod["fifo"].pop() == 11 and mod["lifo"].pop() == 11


fexit_rets = HashMap(i32, u64, max_entries=8)


@fexit("do_unlinkat")
def fexit_unlink(ctx):
    if pid() == TARGET:
        fexit_rets[ctx.retval] += 1
    return 0


@pytest.mark.vmtest
def test_fexit_return_value(tmp_path) -> None:
    if refused_here(ProgType.TRACING, "fexit"):
        pytest.skip(refused_here(ProgType.TRACING, "fexit"))
    with compile_module([fexit_unlink]).load(consts={"TARGET": os.getpid()}) as mod:
        _unlink_some(tmp_path, 2)
        try:
            os.unlink(tmp_path / "missing")
        except FileNotFoundError:
            pass
        assert dict(mod["fexit_rets"].items()) == {0: 2, -2: 1}


# -- one function, several attach points -----------------------------------------------------
kill_calls = HashMap(u32, u64, max_entries=8)


@tracepoint("syscalls:sys_enter_kill")
@tracepoint("syscalls:sys_enter_tgkill")
def signal_sent(args):
    if pid() == TARGET:
        kill_calls[u32(args.sig)] += 1        # args.sig sits at a different offset in each
    return 0


@needs_bpf
def test_stacked_decorators_make_one_program_per_point() -> None:
    import signal as _signal
    spec = compile_module([signal_sent])
    assert list(spec.programs) == ["signal_sent__sys_enter_kill",
                                   "signal_sent__sys_enter_tgkill"]
    with spec.load(consts={"TARGET": os.getpid()}) as mod:
        # signals whose default action is to ignore them
        os.kill(os.getpid(), _signal.SIGWINCH)                                   # kill
        _signal.pthread_kill(__import__("threading").get_ident(), _signal.SIGURG)  # tgkill
        assert dict(mod["kill_calls"].items()) == {int(_signal.SIGWINCH): 1,
                                                   int(_signal.SIGURG): 1}


# -- records reserved in the ring buffer ---------------------------------------------------
class Big(Struct):
    n: u32
    text: char[2000]                   # far more than the 512-byte stack
    tail: u64


bigring = RingBuf(Big, size=8192)


@xdp()
def reserve_big(ctx):
    for i in range(6):
        with bigring.reserve() as e:
            e.n = u32(i)
            e.text = "hello from the ring"
            e.tail = e.n * 10
    return 2


@needs_bpf
def test_records_reserved_in_the_ring() -> None:
    got = []
    with compile_module([reserve_big]).load(attach=False) as mod:
        mod.on("bigring", got.append)
        mod.programs["reserve_big"].test_run(PACKET)
        mod.poll(0.5)
        lost = mod.lost("bigring")
    # 8 KiB hold three 2 KiB records (plus headers): the rest are counted as lost
    assert [(e.n, e.text, e.tail) for e in got] == [(i, "hello from the ring", 10 * i)
                                                    for i in range(len(got))]
    assert 1 <= len(got) < 6 and lost == 6 - len(got)


@xdp()
def return_in_reserve(ctx):
    with bigring.reserve() as e:
        e.n = 1
        return 1
    return 2


def test_leaving_a_reserve_block_early_is_refused() -> None:
    assert "neither sent nor discarded" in str(_error_of(return_in_reserve))


# -- run-time array indexes ------------------------------------------------------------------
class Slots(Struct):
    counts: u32[8]


slot_map = HashMap(u32, Slots, max_entries=4)


@xdp()
def variable_index(ctx):
    s = Slots()
    for i in range(8):
        s.counts[i] = u32(i * 10)
    j = u32(inp[0])                      # known only at run time
    out[0] = s.counts[j]                 # 0 when j is out of range
    s.counts[j] = 7                      # skipped when out of range
    s.counts[j] += 1
    out[1] = s.counts[j]
    slot_map[0] = s
    p = slot_map.get(0)
    if p:
        p.counts[j] += 100
        out[2] = p.counts[j]
    return 2


@needs_bpf
@pytest.mark.parametrize("j, want", [(3, [30, 8, 108]), (7, [70, 8, 108]), (8, [0, 0, 0]),
                                     (2**32 - 1, [0, 0, 0])])
def test_run_time_array_indexes_are_bounds_checked(j, want) -> None:
    with compile_module([variable_index]).load(attach=False) as mod:
        mod["inp"][0] = j
        mod.programs["variable_index"].test_run(PACKET)
        assert [mod["out"][i] for i in range(3)] == want


# -- kernel struct bitfields -----------------------------------------------------------------
execve_flag = ArrayMap(u64, 2)


@tracepoint("syscalls:sys_enter_execve")
def before_exec(args):
    if current_task().real_parent.tgid == TARGET:
        execve_flag[0] = current_task().in_execve + 10      # a 1-bit field: 0 here


@tracepoint("sched:sched_process_exec")
def during_exec(args):
    if current_task().real_parent.tgid == TARGET:
        execve_flag[1] = current_task().in_execve + 10      # 1 while exec runs


@needs_bpf
def test_kernel_bitfields() -> None:
    with compile_module([before_exec, during_exec]).load(consts={"TARGET": os.getpid()}) as mod:
        subprocess.run(["/bin/true"], check=True)
        assert [mod["execve_flag"][0], mod["execve_flag"][1]] == [10, 11]


# -- types of locals and explicit copies (docs/language.md, "Types") ------------------------
class Tagged(Struct):
    tag: char[4]
    after: char[4]
    name: char[8]


tagged = ArrayMap(Tagged, 2)
widened = ArrayMap(u64, 4)


@xdp()
def widening(ctx):
    x = 0
    x = ktime_ns()                      # x becomes a u64 from its first assignment on
    widened[0] = x
    y = 0
    y = u32(inp[0])                     # y becomes a u32: 0xFFFFFFFF stays positive
    widened[1] = y // 2
    e = Tagged(after="xyz", name="abcdefg")
    e.tag = e.name[:4]                  # exactly 4 bytes, no NUL: e.after is kept
    tagged[0] = e
    e.tag = e.name[3:7]
    tagged[1] = e
    return 2


@needs_bpf
def test_locals_widen_and_slices_copy_exactly() -> None:
    import time
    with compile_module([widening]).load(attach=False) as mod:
        mod["inp"][0] = 0xFFFFFFFF
        before = time.monotonic_ns()
        assert mod.programs["widening"].test_run(PACKET).retval == 2
        after = time.monotonic_ns()
        assert before <= mod["widened"][0] <= after     # all 64 bits of ktime_get_ns
        assert mod["widened"][1] == 0x7FFFFFFF          # unsigned: not -1 // 2
        first, second = mod["tagged"][0], mod["tagged"][1]
        assert (first.tag, first.after, first.name) == (b"abcd", b"xyz", b"abcdefg")
        assert (second.tag, second.after) == (b"defg", b"xyz")


# -- limits: the verifier's refusals at their cause, bounded logs ------------------------
class Len32(Struct):
    n: u32


class OneByte(Struct):
    b: u8


@xdp()
def unbounded_offset(ctx):
    h = ctx.load(Len32, 0)
    if h:
        n = h.n
        b = ctx.load(OneByte, n)
        if b:
            return b.b
    return 2


@needs_bpf
def test_unbounded_packet_offset_names_both_lines() -> None:
    """The kernel refuses the read (``return b.b``) of a packet pointer advanced by a
    32-bit length from the packet (``ctx.load(OneByte, n)``): the error names both
    lines."""
    from pybpf.program import VerifierError
    with pytest.raises(VerifierError) as info:
        compile_module([unbounded_offset]).load(attach=False)
    exc = info.value
    first = unbounded_offset.__code__.co_firstlineno
    assert (exc.source.file, exc.source.line) == (HERE, first + 7)
    assert (exc.cause.file, exc.cause.line) == (HERE, first + 5)
    text = str(exc)
    assert f"{HERE}:{first + 7}: return b.b" in text
    assert "the pointer got a variable offset at instruction" in text
    assert f"{HERE}:{first + 5}: b = ctx.load(OneByte, n)" in text
    assert "outside of the packet" in exc.complaint


class Frame160(Struct):
    a: u64
    pad: u8[152]


class Frame168(Struct):
    a: u64
    pad: u8[160]


def depth3_small(x: u64) -> u64:
    b = Frame160()
    b.a = x
    return b.a + 1


def depth2_small(x: u64) -> u64:
    b = Frame160()
    b.a = depth3_small(x)
    return b.a


@xdp()
def chain_under(ctx):
    b = Frame160()
    b.a = depth2_small(1)
    return b.a


def depth3_big(x: u64) -> u64:
    b = Frame168()
    b.a = x
    return b.a + 1


def depth2_big(x: u64) -> u64:
    b = Frame168()
    b.a = depth3_big(x)
    return b.a


@xdp()
def chain_over(ctx):
    b = Frame168()
    b.a = depth2_big(1)
    return b.a


@needs_bpf
def test_call_chain_stack_limit_matches_the_kernel(monkeypatch) -> None:
    """Three frames of 160 bytes (480) load and run; three of 168 are refused by the
    compiler at the call that goes over, and the kernel refuses them too when the
    compiler's check is switched off."""
    from pybpf.program import VerifierError
    import pybpf.compiler.backend as backend
    with compile_module([chain_under]).load(attach=False) as mod:
        assert mod.programs["chain_under"].test_run(PACKET).retval == 2
    with pytest.raises(CompileError) as info:
        compile_module([chain_over])
    err = info.value
    assert (err.loc.file, err.loc.line) == (HERE, depth2_big.__code__.co_firstlineno + 2)
    assert "the call chain chain_over -> depth2_big -> depth3_big needs 576 bytes" in \
        err.message
    monkeypatch.setattr(backend, "check_stack", lambda functions, hint: None)
    with pytest.raises(VerifierError) as refused:
        compile_module([chain_over]).load(attach=False)
    assert "combined stack size of 3 calls" in refused.value.complaint


LONG_LOOP = 20000


@xdp()
def long_log(ctx):
    t: u64 = 0
    for i in range(LONG_LOOP):
        t += ktime_ns()
    h = ctx.load(Len32, 0)
    if h:
        b = ctx.load(OneByte, h.n)
        if b:
            return b.b + t
    return 2


@needs_bpf
def test_huge_verifier_log_is_bounded(tmp_path) -> None:
    """A refused program whose log has over 100,000 lines: the exception keeps 400 of
    them; the whole log goes to the file asked for (load(verifier_log=...) and
    pybpf run --verifier-log)."""
    from pybpf.cli import main
    from pybpf.program import LOG_FILE_ENV, VerifierError
    spec = compile_module([long_log])
    path = tmp_path / "verifier.log"
    with pytest.raises(VerifierError) as info:
        spec.load(attach=False, verifier_log=str(path))
    exc = info.value
    whole = path.read_text()
    assert exc.log_lines == whole.count("\n") > 100_000
    assert exc.log.count("\n") == 401 and exc.log_dropped == exc.log_lines - 400
    assert len(exc.log) < 401 * 2100 and len(str(exc)) < 20 * 2100 + 2000
    assert f"the whole log ({exc.log_lines} lines) is in {path}" in str(exc)
    first = long_log.__code__.co_firstlineno
    assert (exc.source.line, exc.cause.line) == (first + 9, first + 7)
    # without a file: bounded too, and it says how to get the rest
    with pytest.raises(VerifierError) as info:
        spec.load(attach=False)
    assert info.value.log_dropped == exc.log_dropped and not info.value.log_file
    assert "lines are left out of .log" in str(info.value)
    # pybpf run --verifier-log FILE
    script = tmp_path / "tool.py"
    script.write_text(f"import sys\nsys.path.insert(0, {os.path.dirname(HERE)!r})\n"
                      "from test_dsl_programs import long_log\n"
                      "from pybpf.dsl import compile_module\n"
                      "compile_module([long_log]).load(attach=False)\n")
    cli_log = tmp_path / "cli.log"
    assert main(["run", "--verifier-log", str(cli_log), str(script)]) == 1
    assert cli_log.read_text() == whole
    assert LOG_FILE_ENV not in os.environ


# -- maps: setdefault, re-checks, struct inserts, atomic updates -----------------------------
class Tally(Struct):
    count: u64
    total: u64
    hits: u32
    flags: u32
    tag: u16


class TallySlots(Struct):
    arr: u64[4]


tallies = HashMap(u32, Tally, max_entries=64)
tally_slots = HashMap(u32, TallySlots, max_entries=4)
tiny_tallies = HashMap(u32, Tally, max_entries=2)
scalars = HashMap(u32, u64, max_entries=64)
tally_out = ArrayMap(u64, 8)


@xdp()
def tally_setdefault(ctx):
    k = inp[0]
    c = tallies.setdefault(u32(k))              # never None: no check needed
    c.count += 1
    c.total += inp[1]
    c.hits -= 1                            # atomic add of -1
    c.flags |= 1 << (k & 7)
    c.flags ^= 256
    c.flags &= 0xFFFF
    scalars.setdefault(u32(k), 1000)[0] += 1    # a scalar map: the default is stored first
    s = tally_slots.setdefault(0)
    s.arr[k & 3] += k                      # a run-time index: atomic too
    return 2


@needs_bpf
def test_setdefault_counts_every_event() -> None:
    with compile_module([tally_setdefault]).load(attach=False) as mod:
        prog = mod.programs["tally_setdefault"]
        events = 0
        for key in range(8):
            for i in range(key + 1):        # key k sees k + 1 events
                mod["inp"][0] = key
                mod["inp"][1] = 10 * key + i
                assert prog.test_run(PACKET).retval == 2
                events += 1
        got = dict(mod["tallies"].items())
        assert sorted(got) == list(range(8))
        for key, t in got.items():
            n = key + 1
            assert t.count == n and t.total == sum(10 * key + i for i in range(n))
            assert t.hits == (-n) & 0xFFFFFFFF
            assert t.flags == (1 << key) | (256 if n % 2 else 0)
            assert t.tag == 0
        assert dict(mod["scalars"].items()) == {k: 1000 + k + 1 for k in range(8)}
        assert sum(t.count for t in got.values()) == events
        assert list(mod["tally_slots"][0].arr) == [sum(k * (k + 1) for k in range(8) if k & 3 == j)
                                             for j in range(4)]


@xdp()
def setdefault_full(ctx):
    c = tiny_tallies.setdefault(u32(inp[0]), Tally(count=40, tag=7))
    c.count += 2
    tally_out[0] = c.count
    tally_out[1] = c.tag
    return 2


@needs_bpf
def test_setdefault_on_a_full_map_goes_on_with_the_default() -> None:
    with compile_module([setdefault_full]).load(attach=False) as mod:
        prog = mod.programs["setdefault_full"]
        for key, want in ((1, 42), (1, 44), (2, 42), (3, 42), (3, 42), (2, 44)):
            mod["inp"][0] = key
            assert prog.test_run(PACKET).retval == 2
            assert (mod["tally_out"][0], mod["tally_out"][1]) == (want, 7), key
        # key 3 found the map full: its updates went to the private default, not stored
        assert {k: v.count for k, v in mod["tiny_tallies"].items()} == {1: 44, 2: 44}


# -- pointers into maps after an update (docs/language.md, "Pointers after an update") -----
after_arr = ArrayMap(u64, 4)
after_hash = HashMap(u32, u64, max_entries=8)


@xdp()
def pointers_after_update(ctx):
    after_arr[1] = inp[0]
    a = after_arr.get(1)
    if a is None:
        return 1
    after_arr[1] = inp[1]               # an array updates in place: a reads the new value
    out[0] = a[0]
    after_hash[1] = inp[0]
    h = after_hash.get(1)
    if h is None:
        return 1
    after_hash[1] += 3                  # an atomic add in place: h stays valid
    c = after_hash.setdefault(2)        # an insert of a new key frees nothing
    c[0] = 4
    out[1] = h[0]
    after_hash[1] = inp[1]              # replaces h's element: look it up again
    after_hash[3] = 6
    h = after_hash.get(1)
    if h is None:
        return 1
    out[2] = h[0]
    return 2


@needs_bpf
def test_pointers_after_an_update_read_the_new_value() -> None:
    with compile_module([pointers_after_update]).load(attach=False) as mod:
        mod["inp"][0], mod["inp"][1] = 70, 55
        assert mod.programs["pointers_after_update"].test_run(PACKET).retval == 2
        assert [mod["out"][i] for i in range(3)] == [55, 73, 55]
        assert dict(mod["after_hash"].items()) == {1: 55, 2: 4, 3: 6}
        assert mod["after_arr"][1] == 55


class TallyStart(Struct):
    ts: u64
    count: u64


tally_starts = HashMap(u32, TallyStart, max_entries=16)


@xdp()
def recheck(ctx):
    k = u32(inp[0])
    c = tally_starts.get(k)
    if c is None:
        tally_starts[k] = TallyStart()                # an insert of zeros
        c = tally_starts.get(k)
        if c is None:
            return 1
    c.count += 1                           # c is checked on both paths
    d = tally_starts.get(k + 100)
    if not d:
        tally_starts[k + 100] = TallyStart(ts=5, count=inp[1])
        d = tally_starts.get(k + 100)
        if not d:
            return 1
    else:
        d.count += 10
    tally_out[2] = d.ts + d.count
    tally_out[3] = d.count if d else 0
    return 2


@needs_bpf
def test_recheck_inside_if_none_counts() -> None:
    with compile_module([recheck]).load(attach=False) as mod:
        prog = mod.programs["recheck"]
        mod["inp"][1] = 7
        for key in (1, 2, 1, 1):
            mod["inp"][0] = key
            assert prog.test_run(PACKET).retval == 2
        got = {k: (v.ts, v.count) for k, v in mod["tally_starts"].items()}
        assert got == {1: (0, 3), 2: (0, 1), 101: (5, 27), 102: (5, 7)}
        assert (mod["tally_out"][2], mod["tally_out"][3]) == (32, 27)


@xdp()
def struct_inserts(ctx):
    tallies[1] = Tally()                   # zeros, replacing what was there
    tallies[2] = Tally(count=inp[0], tag=9)
    scalars[3] = 0
    return 2


@needs_bpf
def test_struct_call_stored_in_a_map_inserts_zeros() -> None:
    with compile_module([struct_inserts]).load(attach=False) as mod:
        mod["tallies"][1] = (5, 6, 7, 8, 9)
        mod["scalars"][3] = 77
        mod["inp"][0] = 123
        assert mod.programs["struct_inserts"].test_run(PACKET).retval == 2
        one, two = mod["tallies"][1], mod["tallies"][2]
        assert (one.count, one.total, one.hits, one.flags, one.tag) == (0, 0, 0, 0, 0)
        assert (two.count, two.total, two.tag) == (123, 0, 9)
        assert mod["scalars"][3] == 0


MARK = 987654                          # no such descriptor: fchdir fails with EBADF
shared_tally = HashMap(u32, Tally, max_entries=4)
shared_counts = HashMap(u32, u64, max_entries=4)
shared_array = ArrayMap(Tally, 1)


@tracepoint("syscalls:sys_enter_fchdir")
def count_everywhere(args):
    if args.fd != MARK:
        return 0
    c = shared_tally.setdefault(0)
    c.count += 1
    c.hits += 1
    shared_counts[0] += 1
    a = shared_array.get(0)
    if a:
        a.total += 2
    return 0


def _hammer(cpu_index: int, calls: int) -> None:
    os.sched_setaffinity(0, {cpu_index})
    for _ in range(calls):
        try:
            os.fchdir(MARK)
        except OSError:
            pass


@needs_bpf
def test_counters_from_every_cpu_count_exactly() -> None:
    import multiprocessing
    cpus = sorted(os.sched_getaffinity(0))
    calls = 20000
    with compile_module([count_everywhere]).load() as mod:
        ctx = multiprocessing.get_context("fork")
        workers = [ctx.Process(target=_hammer, args=(c, calls)) for c in cpus for _ in (0, 1)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
            assert w.exitcode == 0
        n = len(workers) * calls
        t = mod["shared_tally"][0]
        assert (t.count, t.hits) == (n, n)
        assert mod["shared_counts"][0] == n
        assert mod["shared_array"][0].total == 2 * n


# -- stores follow the type rule: explicit cuts, widening stores ----------------------------
class Mixed(Struct):
    a: u8
    s: i16
    c: u32
    d: u64
    e: i64


mixed = ArrayMap(Mixed, 2)
narrow = HashMap(u32, u32)


def half(v: u32) -> u32:
    return v // 2


@xdp()
def typed_stores(ctx):
    big: u64 = inp[0]                   # 0x1234_5678_9ABC_DEF1
    neg: i32 = i32(inp[1])              # -5
    w: u32 = u32(inp[2])                # 0xFFFFFFF0
    r = Mixed()
    r.a = u8(big)                       # explicit cut: the low 8 bits
    r.s = i16(big)                      # the low 16 bits, read as signed
    r.c = u32(big)                      # the low 32 bits
    r.d = w                             # u32 into u64: kept, no sign
    r.e = neg                           # i32 into i64: sign-extended
    mixed[0] = r
    narrow[u32(big)] = u32(big >> 32)   # key and value cut explicitly
    narrow[1] = half(u32(big))
    with events.reserve() as e:
        e.pid = w                       # u32 into u32
        e.ret = i32(big)                # the low 32 bits, read as signed
    return 2


@needs_bpf
def test_stores_cut_only_explicitly_and_widen_exactly() -> None:
    """An explicit cut stores exactly the low bits; a u32 into a u64 field keeps its
    value and an i32 into an i64 field is sign-extended (read back from the kernel)."""
    big = 0x1234_5678_9ABC_DEF1
    got = []
    with compile_module([typed_stores]).load(attach=False) as mod:
        mod["inp"][0] = big
        mod["inp"][1] = (-5) & (2**64 - 1)
        mod["inp"][2] = 0xFFFFFFF0
        mod.on("events", got.append)
        assert mod.programs["typed_stores"].test_run(PACKET).retval == 2
        mod.poll(0.5)
        r = mod["mixed"][0]
        assert (r.a, r.s, r.c, r.d, r.e) == (0xF1, 0xDEF1 - 2**16, 0x9ABCDEF1, 0xFFFFFFF0, -5)
        assert mod["narrow"][0x9ABCDEF1] == 0x12345678
        assert mod["narrow"][1] == 0x9ABCDEF1 // 2
    assert [(e.pid, e.ret) for e in got] == [(0xFFFFFFF0, 0x9ABCDEF1 - 2**32)]


@pytest.mark.parametrize("body, message", [
    ("    v: u32 = 300\n    r = Mixed()\n    r.a = v\n",
     "a u32 does not fit in field 'a' of Mixed, a u8"),
    ("    v: u64 = 300\n    narrow[1] = v\n", "a u64 does not fit in a value of map 'narrow', a u32"),
    ("    v: i64 = -1\n    narrow[v] = 1\n", "an i64 does not fit in a key of map 'narrow'"),
    ("    v: i32 = -1\n    with events.reserve() as e:\n        e.pid = v\n",
     "an i32 does not fit in field 'pid' of Event, a u32"),
    ("    return half(ktime_ns())\n", "a u64 does not fit in parameter 'v' of half(), a u32"),
])
def test_unfitting_stores_are_refused_before_loading(body: str, message: str) -> None:
    """The same stores without the explicit conversion are refused at compile time."""
    from pybpf.dsl import compile_source
    ns = {"Mixed": Mixed, "narrow": narrow, "events": events, "half": half,
          "Event": Event}
    with pytest.raises(CompileError) as info:
        compile_source("def f(ctx):\n" + body + "    return 2\n", "f", namespace=ns)
    assert message in info.value.message
