"""printf's batch path (pybpf.bpftrace.printf_batch) against bpftrace 0.17: a program
whose printf sites use most conversions bpftrace accepts (``%d %u %x %X %o`` with every
length modifier, widths, ``-`` and ``0``; ``%s`` with widths and precision; ``%c`` and
``%p`` including their zero values; literal ``%%`` before and after the last token; a
format without arguments), interleaved with records of the general path (``print()``
and a ``%r %rx %rh`` site), run by both tracers on a gcc-built workload
(tests/bpftrace_run/btprintf.c, a few thousand calls with arguments from a fixed
sequence): the outputs must be byte for byte the same.

A second test feeds every compiled site records with boundary values and checks the
batch formatter against the general one (:mod:`pybpf.bpftrace.printf`), which the
other differential tests compare with bpftrace.
"""

from __future__ import annotations

import os
import random
import shutil
import struct
import subprocess
import sys

import pytest

from test_bpftrace_run import ROOT, SRC

PROGRAM = r'''
uprobe:{BIN}:printf_ev
{
  printf("%d %u %x %X %o|%5d|%-8d|%08x|%ld %lu %lld %llu %lx %llX|%hd %hu %hhd %hhu %hx|%zu %jd %td\n",
         arg0, arg0, arg1, arg1, arg2, arg2, arg2, arg1, arg0, arg0, arg1, arg1, arg1, arg0,
         arg0, arg0, arg2, arg2, arg1, arg1, arg0, arg2);
}
uprobe:{BIN}:printf_ev
{
  printf("%d %u %ld %lu %x %lx %hd %hhu | %d %u %ld %lu %lx | %d %lu %x %p\n",
         (int8)arg0, (int8)arg0, (int8)arg0, (int8)arg0, (int8)arg0, (int8)arg0, (int8)arg0,
         (int8)arg0, (int16)arg2, (int16)arg2, (int16)arg2, (int16)arg2, (int16)arg2,
         (uint8)arg1, (uint32)arg1, (int32)arg1, (int32)arg1);
  printf("%s=%d\n", "tail % kept", (uint16)arg2);
  printf("no args 50%% %\n");
}
uprobe:{BIN}:printf_ev
{
  printf("[%s] [%-10s]\n", str(arg3), str(arg3));
}
uprobe:{BIN}:printf_ev
{
  printf("[%10s] [%.3s] [%-5.2s] %c|%3c|%-3c| %p %20p %-20p| 100%%\n",
         str(arg3), str(arg3, 8), str(arg3, 8), arg4, arg4, arg4, arg0, arg1, arg2);
}
uprobe:{BIN}:printf_mark
{
  print(arg0);
  printf("%r|%rx|%rh\n", buf(arg1, 3), buf(arg1, 2), buf(arg1, 2));
}
'''
CALLS = 3000


@pytest.fixture(scope="module")
def work(tmp_path_factory) -> dict:
    """The workload binary and the program file naming it."""
    if shutil.which("gcc") is None:
        pytest.skip("needs gcc")
    d = tmp_path_factory.mktemp("btprintf")
    binary = str(d / "btprintf")
    subprocess.run(["gcc", "-O1", "-g", "-o", binary, os.path.join(SRC, "btprintf.c")],
                   check=True)
    path = str(d / "printf.bt")
    with open(path, "w") as fh:
        fh.write(PROGRAM.replace("{BIN}", binary))
    return {"BIN": binary, "PROG": path}


def _lowered(source: str):
    from pybpf.bpftrace.lower import lower_program
    from pybpf.bpftrace.session import TraceOptions, front
    opts = TraceOptions()
    return lower_program(front(source, "stdin", opts), opts)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17")
def test_printf_batch_matches_bpftrace(work):
    cmd = f"{work['BIN']} {CALLS}"
    # big buffers for both: a tracer descheduled for a while on a busy machine must
    # not lose records (what is compared here is the formatting)
    env = dict(os.environ, BPFTRACE_PERF_RB_PAGES="1024")
    theirs = subprocess.run(["bpftrace", "-c", cmd, work["PROG"]], capture_output=True,
                            timeout=120, env=env)
    ours = subprocess.run([sys.executable, os.path.join(SRC, "run_helper.py"), "-c", cmd,
                           work["PROG"]], capture_output=True, timeout=120,
                          env=dict(env, PYTHONPATH=ROOT))
    assert theirs.returncode == 0, theirs.stderr.decode()[-2000:]
    assert ours.returncode == 0, ours.stderr.decode()[-2000:]
    assert b"Lost " not in theirs.stdout, "bpftrace lost events: the workload is too fast"
    assert b"Lost " not in ours.stdout, "pybpf lost events: the workload is too fast"
    lines = theirs.stdout.count(b"\n")
    # Attaching, 6 printf lines per call, print() + %r line every 250 calls, END's maps
    assert lines >= 6 * CALLS
    assert b"(nil)" in ours.stdout and b"tail % kept=" in ours.stdout
    assert ours.stdout == theirs.stdout


def test_printf_batch_sites_agree_with_general_path(work):
    """Every printf site of the program but the %r one has a batch formatter, and it
    prints what the general formatter prints, for records of boundary values."""
    from pybpf.bpftrace.decode import Decoder
    from pybpf.bpftrace.printf import format_printf
    from pybpf.bpftrace.printf_batch import site_formatter
    with open(work["PROG"]) as fh:
        mod = _lowered(fh.read())
    dec = Decoder(mod, {}, None)

    def general(site, rec):
        args = [dec.value(t, rec, off) for t, off in site.args]
        return format_printf(site.fmt or "", args).encode("latin-1")

    sites = [s for s in mod.sites if s.kind == "printf"]
    compiled = {s.id: site_formatter(s.fmt or "", s.args, lambda r, s=s: general(s, r))
                for s in sites}
    assert [s.id for s in sites if compiled[s.id] is None] == \
        [s.id for s in sites if "%r" in (s.fmt or "")]
    rng = random.Random(19)
    edges = [0, 1, 0x7F, 0x80, 0xFF, 0x100, 0x7FFF, 0x8000, 0xFFFF, 0x7FFFFFFF, 0x80000000,
             0xFFFFFFFF, 1 << 32, (1 << 63) - 1, 1 << 63, (1 << 64) - 1, (1 << 64) - 0x81]
    texts = [b"", b"a", b"caf\xe9 \xff", b"x" * 70, b"100% %d", b"ab\0cd"]
    for site in sites:
        f = compiled[site.id]
        if f is None:
            continue
        for _ in range(300):
            rec = bytearray(site.size)
            struct.pack_into("<Q", rec, 0, site.id)
            for t, off in site.args:
                if t.kind == "string":
                    s = rng.choice(texts)[:t.size]
                    rec[off:off + len(s)] = s
                else:
                    v = rng.choice(edges) if rng.random() < 0.7 else rng.getrandbits(64)
                    struct.pack_into("<Q", rec, off, v)
            rec = bytes(rec)
            assert f(rec) == general(site, rec), (site.fmt, rec.hex())


def test_batch_keeps_order_and_the_rest_after_an_error():
    """Runtime.on_batch: printf lines and general-path records come out in the ring's
    order; when a record's handler raises, the lines before it are written and the
    records after it come first in the next batch (nothing lost, nothing repeated)."""
    import io
    from pybpf.bpftrace.runtime import Output, Runtime
    from pybpf.bpftrace.session import TraceOptions
    src = ('BEGIN { printf("a %d\\n", 1); print(7); printf("%s|%5d\\n", "s", 2); '
           'printf("%r\\n", buf("xy", 2)); }')
    mod = _lowered(src)
    stream = io.StringIO()
    rt = Runtime(None, mod, TraceOptions(), Output(stream, "full"))
    rt.prepare_sites()
    by_kind = {}
    for s in mod.sites:
        by_kind.setdefault(s.kind, []).append(s)
    pf = by_kind["printf"]
    assert rt.fast[pf[0].id] and rt.fast[pf[1].id] and rt.fast[pf[2].id] is None

    def rec(site, *fields):
        data = bytearray(site.size)
        struct.pack_into("<Q", data, 0, site.id)
        for (t, off), v in zip(site.args, fields):
            if isinstance(v, bytes):
                data[off:off + len(v)] = v
            else:
                struct.pack_into("<q", data, off, v)
        return bytes(data)

    pv = by_kind["print_value"][0]
    records = [rec(pf[0], 1), rec(pv, 7), rec(pf[1], b"s", 2), rec(pf[2], b"\x02xy"),
               rec(pf[0], 3)]
    real = rt.on_event
    calls = []

    def flaky(raw):
        calls.append(raw)
        if len(calls) == 1:
            raise KeyboardInterrupt
        real(raw)

    rt.on_event = flaky
    with pytest.raises(KeyboardInterrupt):
        rt.on_batch(records)
    rt.out.flush()
    assert stream.getvalue() == "a 1\n"
    rt.poll(0)                        # the kept records first (no reader here)
    rt.out.flush()
    assert stream.getvalue() == "a 1\ns|    2\nxy\na 3\n"
    # the failing record itself is not retried (as the reader does for a callback)
    assert calls == [records[1], records[3]]
