#!/usr/bin/env python3
"""sigsnoop: trace standard and real-time signals, like BCC's libbpf-tools sigsnoop.

By default the ``signal:signal_generate`` tracepoint shows every signal the kernel
generates, whoever causes it (kill(), a child's exit sending SIGCHLD, a fault sending
SIGSEGV, ...): the current task is the sender, the tracepoint names the target. With
-k only the kill(), tkill() and tgkill() syscalls are traced, their entry and exit
paired through a hash map keyed by thread id, so the result is the syscall's. Which
programs load is chosen at load time (``load_tool(..., programs=...)``).
"""

import json
import signal
import struct
import time

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, pid, tid, tracepoint, u8, u32,
)
from pybpf.tooling import (
    Memo, ToolParser, errno_name, load_tool, pid_number, run_tool, signal_number,
    text_of, tool_main, write_lines,
)


class Signal(Struct):
    pid: u32
    tpid: i32
    sig: i32
    ret: i32
    comm: char[16]


pending = HashMap(u32, Signal, max_entries=10240)
events = RingBuf(Signal, size=256 * 1024)

TARGET_PID = const(u32, 0)
TARGET_SIG = const(u32, 0)
FAILED_ONLY = const(u8, 0)


@tracepoint("signal:signal_generate")
def sigsnoop_generate(args):
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_SIG and args.sig != TARGET_SIG:
        return 0
    if FAILED_ONLY and args.errno == 0:
        return 0
    s = Signal()
    s.pid = pid()
    s.tpid = args.pid
    s.sig = args.sig
    s.ret = args.errno
    s.comm = comm()
    events.output(s)
    return 0


@tracepoint("syscalls:sys_enter_kill")
@tracepoint("syscalls:sys_enter_tkill")
@tracepoint("syscalls:sys_enter_tgkill")
def sigsnoop_kill(args):
    tpid = i32(args.pid)
    sig = i32(args.sig)
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_SIG and sig != TARGET_SIG:
        return 0
    pending[tid()] = Signal(pid=pid(), tpid=tpid, sig=sig, comm=comm())
    return 0


@tracepoint("syscalls:sys_exit_kill")
@tracepoint("syscalls:sys_exit_tkill")
@tracepoint("syscalls:sys_exit_tgkill")
def sigsnoop_kill_ret(args):
    ret = i32(args.ret)
    s = pending.get(tid())
    if s is None:
        return 0
    if not FAILED_ONLY or ret < 0:
        s.ret = ret
        events.output(s)
    del pending[tid()]
    return 0


KILL_PROGRAMS = [f"sigsnoop_kill{ret}__sys_{side}_{call}"
                 for ret, side in (("", "enter"), ("_ret", "exit"))
                 for call in ("kill", "tkill", "tgkill")]


def signal_name(sig: int) -> str:
    """``SIGKILL`` for 9, ``N/A`` for 0, the number when unnamed."""
    if sig == 0:
        return "N/A"
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)


#: the rows the printer takes: each record's fields as one ``bytes`` value, the key of
#: the memo of formatted text (a storm of kill() repeats the same record)
ROW_ITEMS = [("pid", "tpid", "sig", "ret", "comm")]


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=ROW_ITEMS)``: one line (or JSON
    object) per signal, a batch written in one block. The clock is read once per batch;
    the rest of a line is formatted once per distinct record and kept in a memo. In
    JSON, ``result`` is 0 or the negative errno (the text shows its name)."""
    fields = struct.Struct(Signal.span_format(ROW_ITEMS[0])).unpack

    def text_tail(key: bytes) -> str:
        pid, tpid, sig, ret, comm = fields(key)
        sig_text = signal_name(sig) if args.name else str(sig)
        result = "0" if ret == 0 else errno_name(ret)
        return f" {pid:<7} {text_of(comm):<16} {sig_text:<9} {tpid:<7} {result:>6}"

    def json_tail(key: bytes) -> str:
        pid, tpid, sig, ret, comm = fields(key)
        obj = {"pid": pid, "comm": text_of(comm),
               "sig": signal_name(sig) if args.name else sig, "tpid": tpid,
               "result": -abs(ret)}
        return ", " + json.dumps(obj)[1:]

    tail = Memo(json_tail if args.json else text_tail)

    def show(rows) -> None:
        now = time.strftime("%H:%M:%S")
        head = json.dumps({"time": now})[:-1] if args.json else f"{now:<8}"
        write_lines([head + tail[key] for (key,) in rows])

    return show


def main(argv=None) -> int:
    parser = ToolParser("sigsnoop", "Trace standard and real-time signals.", examples=[
        "sigsnoop             # trace signals system-wide",
        "sigsnoop -k          # trace signals issued by kill syscall only",
        "sigsnoop -x          # trace failed signals only",
        "sigsnoop -p 1216     # only trace PID 1216",
        "sigsnoop -s 9        # only trace signal 9",
    ])
    parser.add_argument("-x", "--failed", action="store_true", help="Trace failed signals only.")
    parser.add_argument("-k", "--kill", action="store_true",
                        help="Trace signals issued by kill syscall only.")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="Process ID to trace")
    parser.add_argument("-s", "--signal", type=signal_number, default=0, help="Signal to trace.")
    parser.add_argument("-n", "--name", action="store_true",
                        help="Output signal name instead of signal number.")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per signal (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    consts = {"TARGET_PID": args.pid, "TARGET_SIG": args.signal, "FAILED_ONLY": args.failed}
    programs = KILL_PROGRAMS if args.kill else ["sigsnoop_generate"]
    with load_tool(__name__, consts=consts, programs=programs) as mod:
        mod.on("events", batch_printer(args), rows=ROW_ITEMS)
        header = f"{'TIME':<8} {'PID':<7} {'COMM':<16} {'SIG':<9} {'TPID':<7} {'RESULT':>6}"
        run_tool(mod, header=None if args.json else header, json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
