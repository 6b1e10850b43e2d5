"""programs/biosnoop.py: O_DIRECT reads at known offsets through a loop device give one
line each with this process's pid and comm, the disk, R, the sector and the size;
compared with bpftrace on block_rq_complete for the same device."""

import os
import re
import time

from bpfenv import needs_bpf
from btrun import Bpftrace, agree, assert_unloaded, loaded_ids, needs_bpftrace
from loopdev import LoopDevice, needs_loop
from progrun import Tool

pytestmark = [needs_bpf, needs_loop]

HEADER = "TIME(s)     COMM           PID     DISK      T SECTOR     BYTES   LAT(ms)"
OFFSETS = [i * 131072 for i in range(1, 17)]
# let the tool print the last events before SIGINT: a Ctrl-C that lands while the
# reader hands a ring buffer batch to the callback can drop that batch
SETTLE = 0.3
PROGS = ["block_io_start", "block_rq_insert", "block_rq_issue", "block_rq_complete"]
LINE = re.compile(r"^(\d+\.\d{6}) +(.{1,14}?) +(\d+) +(\S+) +([RW]) +(\d+) +(\d+) +"
                  r"(?:(\d+\.\d\d) +)?(\d+\.\d\d)$")


def _mine(out, disk):
    rows = [LINE.match(line) for line in out.splitlines()]
    return [m.groups() for m in rows if m and m.group(4) == disk]


def test_biosnoop_direct_reads():
    comm = open("/proc/self/comm").read().strip()[:14]
    with LoopDevice() as loop:
        tool = Tool("biosnoop", header=HEADER)
        ids = loaded_ids(tool, PROGS)
        sectors = loop.read_direct(OFFSETS)
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [r for r in _mine(out, loop.name) if r[2] == str(os.getpid())]
    assert sorted(int(r[5]) for r in rows) == sectors, out
    for r in rows:
        assert r[1] == comm and r[4] == "R" and r[6] == "65536" and float(r[8]) >= 0
    times = [float(r[0]) for r in rows]
    assert times == sorted(times)
    assert_unloaded(ids)


def test_biosnoop_disk_filter_and_queue():
    with LoopDevice() as loop:
        tool = Tool("biosnoop", "-Q", "-d", loop.name, header="QUE(ms) LAT(ms)")
        sectors = loop.read_direct(OFFSETS[:4])
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
    assert rc == 0, err
    rows = [LINE.match(line) for line in out.splitlines()[1:] if line.strip()]
    assert all(m and m.group(4) == loop.name and m.group(8) for m in rows), out
    assert {int(m.group(6)) for m in rows} >= set(sectors)


@needs_bpftrace
def test_biosnoop_matches_bpftrace():
    with LoopDevice() as loop:
        bt = Bpftrace(f"tracepoint:block:block_rq_complete /args->dev == {loop.dev}/ "
                      f"{{ printf(\"EV %d %d\\n\", args->sector, args->nr_sector * 512); }}")
        tool = Tool("biosnoop", "-d", loop.name, header=HEADER)
        loop.read_direct(OFFSETS)
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
        bt_out = bt.stop()
    assert rc == 0, err
    theirs = {(int(s), int(n)) for s, n in re.findall(r"^EV (\d+) (\d+)$", bt_out, re.M)}
    ours = {(int(r[5]), int(r[6])) for r in _mine(out, loop.name)}
    assert len(ours) >= len(OFFSETS), out
    agree(bt, ours <= theirs, (ours, theirs))


def test_biosnoop_batch_printer_formats_like_one_line_per_event(monkeypatch):
    """Odd requests (non-UTF-8 and 16-byte names, a W after the NUL of rwbs, huge
    sectors and latencies, a request completing before the first one shown) through
    the batch printer, with and without -Q, give the bytes the tool's former per-event
    printer gives."""
    import random
    import types
    from rowsharness import ODD_COMMS, after_nul, batch_output, program, reference_output
    biosnoop = program("biosnoop")
    Done = biosnoop.Done
    names = {7 << 20: "loop0", 7 << 20 | 1: "loop1", 259 << 20: "nvme0n1",
             8 << 20 | 17: "a-long-disk-name"}
    monkeypatch.setattr(biosnoop, "disk_name", lambda dev: names.get(dev, f"{dev >> 20}:x"))
    rnd = random.Random(20)
    raws = []
    for i in range(600):
        raw = Done(ts_ns=10**12 + rnd.randint(-10**6, 10**10), lat_ns=rnd.choice(
                   [0, 1234, 10**9, 2**64 - 1]), queue_ns=rnd.choice([0, 55555, 2**63]),
                   sector=rnd.choice([0, 256, 2**64 - 1]), pid=rnd.choice([0, 1, 2**32 - 1]),
                   bytes=rnd.choice([512, 65536, 2**32 - 1]),
                   dev=rnd.choice(list(names) + [254 << 20]), comm=rnd.choice(ODD_COMMS),
                   rwbs=rnd.choice(["R", "W", "WS", "RA", "FWS", "", "N", "RRRRRRRRR"])
                   ).to_bytes()
        raws.append(after_nul(after_nul(raw, Done, "comm"), Done, "rwbs", b"W"))
    for queue in (False, True):
        args = types.SimpleNamespace(queue=queue, json=False)
        first = []

        def show_one(e):                                    # the former printer
            if not first:
                first.append(e.ts_ns)
            rw = "W" if "W" in e.rwbs else "R"
            line = (f"{(e.ts_ns - first[0]) / 1e9:<11.6f} {e.comm:<14.14} {e.pid:<7} "
                    f"{biosnoop.disk_name(e.dev):<9} {rw:<1} {e.sector:<10} {e.bytes:<7} ")
            if args.queue:
                line += f"{e.queue_ns / 1e6:7.2f} "
            return line + f"{e.lat_ns / 1e6:7.2f}"

        got = batch_output(monkeypatch, biosnoop, biosnoop.batch_printer(args), raws)
        assert got == reference_output(show_one, Done, raws), vars(args)


def test_biosnoop_json():
    import json
    import threading
    comm = open("/proc/self/comm").read().strip()
    with LoopDevice() as loop:
        stop = threading.Event()

        def ping():                 # requests until the tool (no header in JSON) is live
            while not stop.wait(0.05):
                loop.read_direct([0], size=4096)

        pinger = threading.Thread(target=ping, daemon=True)
        pinger.start()
        try:
            tool = Tool("biosnoop", "--json", "-Q", "-d", loop.name, header='"comm": ')
        finally:
            stop.set()
            pinger.join()
        sectors = loop.read_direct(OFFSETS)
        time.sleep(SETTLE)
        rc, out, err = tool.stop()
    assert rc == 0, err
    objs = [json.loads(line) for line in out.splitlines()]
    assert all(list(o) == ["time(s)", "comm", "pid", "disk", "t", "sector", "bytes",
                           "que(ms)", "lat(ms)"] for o in objs), out
    mine = [o for o in objs if o["sector"] != 0]
    assert [(o["comm"], o["pid"], o["disk"], o["t"], o["sector"], o["bytes"]) for o in mine] \
        == [(comm, os.getpid(), loop.name, "R", s, 65536) for s in sectors], out
    assert all(isinstance(o[k], float) and o[k] >= 0 for o in mine
               for k in ("time(s)", "que(ms)", "lat(ms)")), out
    assert [o["time(s)"] for o in objs] == sorted(o["time(s)"] for o in objs)
