#!/usr/bin/python3
"""BCC's openat tracer for benchmarks/peers.py: a minimal TRACEPOINT_PROBE in Python
(Debian's python3-bpfcc runs under /usr/bin/python3; needs kernel headers).

usage: /usr/bin/python3 benchmarks/peers/bcc_open.py [--pid TGID] [--out perf|ring]
                                                     [--count]

The program sends the same 88-byte record as pybpf's and clang's (tgid, comm, the first
64 bytes of the path) through BPF_PERF_OUTPUT (perf_submit) or BPF_RINGBUF_OUTPUT
(ringbuf_output, flags 0, BCC's usual call). Prints ``comm filename`` per event until
SIGINT; with ``--count`` only the first, then on SIGINT drains and prints
``received N lost M``. Buffers with ``--count``: 512 pages per CPU (perf), 8 MiB (ring),
as the others; without: BCC's default 8 pages (perf), 256 KiB (ring).
"""

import argparse
import signal
import sys

from bcc import BPF

TEXT = r"""
struct event {
    u32 pid;
    u32 pad;
    char comm[16];
    char filename[64];
};
OUTPUT_DECL
BPF_ARRAY(drops, u64, 1);

TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    struct event e;
    u32 tgid = bpf_get_current_pid_tgid() >> 32;
    long err;
    if (TGID && tgid != TGID)
        return 0;
    e.pid = tgid;
    e.pad = 0;
    bpf_get_current_comm(e.comm, sizeof(e.comm));
    bpf_probe_read_user_str(e.filename, sizeof(e.filename), args->filename);
    err = OUTPUT_CALL;
    if (err) {
        u32 zero = 0;
        u64 *d = drops.lookup(&zero);
        if (d)
            __sync_fetch_and_add(d, 1);
    }
    return 0;
}
"""


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--pid", type=int, default=0)
    ap.add_argument("--out", choices=("perf", "ring"), default="perf")
    ap.add_argument("--count", action="store_true")
    args = ap.parse_args()
    signal.signal(signal.SIGINT, signal.default_int_handler)   # even if started ignored
    text = TEXT.replace("TGID", str(args.pid))
    if args.out == "ring":
        pages = 2048 if args.count else 64        # 8 MiB / 256 KiB, as pybpf's
        text = text.replace("OUTPUT_DECL", "BPF_RINGBUF_OUTPUT(events, %d);" % pages)
        text = text.replace("OUTPUT_CALL", "events.ringbuf_output(&e, sizeof(e), 0)")
    else:
        text = text.replace("OUTPUT_DECL", "BPF_PERF_OUTPUT(events);")
        text = text.replace("OUTPUT_CALL", "events.perf_submit(args, &e, sizeof(e))")
    state = {"n": 0, "lost": 0}
    b = BPF(text=text)
    table = b["events"]

    def on_event(*a):
        data = a[-2]
        e = table.event(data)
        if not args.count or state["n"] == 0:
            print("%s %s" % (e.comm.decode("utf-8", "replace"),
                             e.filename.decode("utf-8", "replace")), flush=True)
        state["n"] += 1

    def on_lost(n):
        state["lost"] += n

    if args.out == "ring":
        table.open_ring_buffer(lambda ctx, data, size: on_event(ctx, data, size))
        poll = b.ring_buffer_poll
        drain = b.ring_buffer_consume
    else:
        table.open_perf_buffer(on_event, page_cnt=512 if args.count else 8,   # 8: BCC's
                               lost_cb=on_lost)
        poll = b.perf_buffer_poll
        drain = lambda: b.perf_buffer_poll(0)
    try:
        while True:
            poll(100)
    except KeyboardInterrupt:
        pass
    b.detach_tracepoint("syscalls:sys_enter_openat")
    drain()
    if args.count:
        lost = state["lost"] + int(b["drops"][0].value)
        print("received %d lost %d" % (state["n"], lost), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
