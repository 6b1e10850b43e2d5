"""A tool as a user would write one, for tests/test_tool_losses.py: it prints one line
per open() of process ARGV[1], from a ring buffer of one page, and its consumer is slow
on purpose (``--sleep`` seconds per event), so a storm of opens overflows the ring.

    python3 tests/_lossy_tool.py PID [--sleep S] [--json] [--loss-interval S]
"""

import argparse
import sys
import time

from pybpf.dsl import RingBuf, Struct, const, pid, tracepoint, u32, u64
import pybpf.tooling as tooling


class Open(Struct):
    seq: u64
    pid: u32
    pad: u32


opens = RingBuf(Open, size=4096)
TARGET = const(u32, 0)


@tracepoint("syscalls:sys_enter_openat")
def lossy_open(args):
    if pid() != TARGET:
        return 0
    e = Open()
    e.pid = pid()
    opens.output(e)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("pid", type=int)
    parser.add_argument("--sleep", type=float, default=0.001)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--loss-interval", type=float, default=None)
    args = parser.parse_args()
    if args.loss_interval is not None:
        tooling.LOSS_INTERVAL = args.loss_interval

    def show(e: Open) -> None:
        time.sleep(args.sleep)
        print('{"pid": %d}' % e.pid if args.json else f"open {e.pid}")

    with tooling.load_tool(__name__, consts={"TARGET": args.pid}) as mod:
        mod.on("opens", show)
        tooling.run_tool(mod, header='{"attached": true}' if args.json else "OPENS",
                         json_lost=args.json)
    return 0


if __name__ == "__main__":
    tooling.tool_main(main)
