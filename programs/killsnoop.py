#!/usr/bin/env python3
"""killsnoop: trace signals sent by the kill() family of syscalls, like BCC's killsnoop.

The entry of kill(), tkill() or tgkill() knows the sender, the target and the signal;
only the exit knows the result. The entry stores what it knows in a hash map keyed by
thread id; the exit takes it back out, adds the result and sends the event. Each
function is attached to the three syscalls at once (stacked decorators: one program
per tracepoint, each compiled against its own record layout).
"""

import json
import signal
import struct
import time

from pybpf.dsl import (
    HashMap, RingBuf, Struct, char, comm, const, i32, pid, tid, tracepoint, u8, u32,
)
from pybpf.tooling import (
    Memo, ToolParser, int_range, load_tool, pid_number, run_tool, signal_number,
    text_of, tool_main, write_lines,
)


class Kill(Struct):
    pid: u32
    tpid: i32
    sig: i32
    ret: i32
    comm: char[16]


pending = HashMap(u32, Kill, max_entries=10240)
events = RingBuf(Kill, size=256 * 1024)

TARGET_PID = const(u32, 0)
TARGET_TPID = const(u32, 0)
TARGET_SIG = const(u32, 0)
FAILED_ONLY = const(u8, 0)


@tracepoint("syscalls:sys_enter_kill")
@tracepoint("syscalls:sys_enter_tkill")
@tracepoint("syscalls:sys_enter_tgkill")
def killsnoop_entry(args):
    tpid = i32(args.pid)
    sig = i32(args.sig)
    if TARGET_PID and pid() != TARGET_PID:
        return 0
    if TARGET_TPID and tpid != TARGET_TPID:
        return 0
    if TARGET_SIG and sig != TARGET_SIG:
        return 0
    pending[tid()] = Kill(pid=pid(), tpid=tpid, sig=sig, comm=comm())
    return 0


@tracepoint("syscalls:sys_exit_kill")
@tracepoint("syscalls:sys_exit_tkill")
@tracepoint("syscalls:sys_exit_tgkill")
def killsnoop_exit(args):
    ret = i32(args.ret)
    k = pending.get(tid())
    if k is None:
        return 0                    # the entry was filtered out, or came before us
    if not FAILED_ONLY or ret < 0:
        k.ret = ret
        events.output(k)
    del pending[tid()]
    return 0


def signal_name(sig: int) -> str:
    """``SIGKILL`` for 9; ``0`` for 0; the number when unnamed."""
    try:
        return signal.Signals(sig).name if sig else "0"
    except ValueError:
        return str(sig)


#: the rows the printer takes: each record's fields as one ``bytes`` value, the key of
#: the memo of formatted text (a storm of kill() repeats the same record)
ROW_ITEMS = [("pid", "tpid", "sig", "ret", "comm")]


def batch_printer(args):
    """The callback of ``mod.on("events", ..., rows=ROW_ITEMS)``: one line (or JSON
    object) per signal, a batch written in one block. The clock is read once per batch;
    the rest of a line is formatted once per distinct record and kept in a memo."""
    fields = struct.Struct(Kill.span_format(ROW_ITEMS[0])).unpack

    def text_tail(key: bytes) -> str:
        pid, tpid, sig, ret, comm = fields(key)
        sig_text = f"{signal_name(sig):<9}" if args.name else f"{sig:<4}"
        return f" {pid:<7} {text_of(comm):<16} {sig_text} {tpid:<8} {ret}"

    def json_tail(key: bytes) -> str:
        pid, tpid, sig, ret, comm = fields(key)
        obj = {"pid": pid, "comm": text_of(comm),
               "sig": signal_name(sig) if args.name else sig, "tpid": tpid,
               "result": ret}
        return ", " + json.dumps(obj)[1:]

    tail = Memo(json_tail if args.json else text_tail)

    def show(rows) -> None:
        now = time.strftime("%H:%M:%S")
        head = json.dumps({"time": now})[:-1] if args.json else f"{now:<9}"
        write_lines([head + tail[key] for (key,) in rows])

    return show


def main(argv=None) -> int:
    parser = ToolParser("killsnoop", "Trace signals issued by the kill() family of syscalls",
                        examples=[
                            "./killsnoop           # trace all kill() signals",
                            "./killsnoop -x        # only show failed kills",
                            "./killsnoop -p 181    # only trace PID 181",
                            "./killsnoop -T 189    # only trace target PID 189",
                            "./killsnoop -s 9      # only trace signal 9",
                        ])
    parser.add_argument("-x", "--failed", action="store_true", help="only show failed kill syscalls")
    parser.add_argument("-p", "--pid", type=pid_number, default=0, help="trace this PID only")
    # kill()'s target may be any positive pid_t, even one no process could have
    parser.add_argument("-T", "--tpid", type=int_range(1, 2**31 - 1, "a target pid"), default=0,
                        help="trace this target PID only")
    parser.add_argument("-s", "--signal", type=signal_number, default=0,
                        help="trace this signal only")
    parser.add_argument("-n", "--name", action="store_true",
                        help="output signal name instead of signal number")
    parser.add_argument("--json", action="store_true",
                        help="one JSON object per signal (NDJSON), keys: the columns")
    args = parser.parse_args(argv)

    consts = {"TARGET_PID": args.pid, "TARGET_TPID": args.tpid, "TARGET_SIG": args.signal,
              "FAILED_ONLY": args.failed}
    with load_tool(__name__, consts=consts) as mod:
        mod.on("events", batch_printer(args), rows=ROW_ITEMS)
        header = (f"{'TIME':<9} {'PID':<7} {'COMM':<16} {'SIG':<{9 if args.name else 4}} "
                  f"{'TPID':<8} RESULT")
        run_tool(mod, header=None if args.json else header, json_lost=args.json)
    return 0


if __name__ == "__main__":
    tool_main(main)
