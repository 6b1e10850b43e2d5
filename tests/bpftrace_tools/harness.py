"""The harness of tests/test_bpftrace_tools.py and tests/test_bpftrace_oneliners.py: run
a bpftrace program (a file) under the installed bpftrace and under pybpf's
``session.run`` (tests/bpftrace_run/run_helper.py), with bpftrace's attach handshake,
a workload once attached and SIGINT after it; then reduce the output to what must agree:
the header lines, exactly, and the column structure of the data lines (every number
becomes ``N``, map keys ``KEY``, histogram bars ``BAR``)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from typing import Callable, List, Optional, Sequence, Set, Tuple

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.dirname(HERE)
ROOT = os.path.dirname(TESTS)
RUN_HELPER = os.path.join(TESTS, "bpftrace_run", "run_helper.py")
NOTIFY = b"__BPFTRACE_NOTIFY_PROBES_ATTACHED"
#: seconds to wait for a tracer to end after a SIGINT before sending another
RESEND = 15.0


def start_attached(cmd: List[str], env: dict
                   ) -> Tuple["subprocess.Popen[bytes]", bytes, bool]:
    """Start ``cmd`` (stdout and stderr piped) with bpftrace's handshake and wait until
    it says its probes are attached (or closes stderr): the process, what it wrote to
    stderr before the handshake line (all of it if it never came), and whether it came."""
    env = dict(env, __BPFTRACE_NOTIFY_PROBES_ATTACHED="1")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                         stdin=subprocess.DEVNULL)
    err = b""
    while True:
        line = p.stderr.readline()      # type: ignore[union-attr]
        if not line or NOTIFY in line:
            return p, err, bool(line)
        err += line


def run_one(cmd: List[str], workload: Optional[Callable[[], None]], settle: float,
            env: dict, limit: float = 60.0) -> Tuple[str, str, int]:
    """Start ``cmd``; once it reports its probes attached, run ``workload``, wait
    ``settle`` seconds and send SIGINT (repeated after :data:`RESEND` seconds without an
    exit: bpftrace 0.17 may miss an early one; not sooner, since a tracer that is still
    detaching and printing, slow under the guest's emulation, would take the second
    SIGINT as "stop now"). Its stdout, stderr and exit status (it is killed after
    ``limit`` seconds)."""
    p, err, attached = start_attached(cmd, env)
    deadline = time.monotonic() + limit
    out = e2 = None
    if attached:                        # (else it failed: collect what it said)
        if workload is not None:
            workload()
        time.sleep(settle)
        while time.monotonic() < deadline:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
            try:
                out, e2 = p.communicate(timeout=RESEND)
                break
            except subprocess.TimeoutExpired:
                continue
    if out is None:
        try:
            out, e2 = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            out, e2 = p.communicate()
    return out.decode("latin-1"), (err + e2).decode("latin-1"), p.returncode


def run_both(path: str, workload: Optional[Callable[[], None]], settle: float = 1.0,
             args: Sequence[str] = ()) -> Tuple[Tuple[str, str, int], Tuple[str, str, int]]:
    """(bpftrace's (stdout, stderr, status), session.run's) for the program in ``path``."""
    theirs = run_one(["bpftrace", path, *args], workload, settle, dict(os.environ))
    ours = run_one([sys.executable, RUN_HELPER, path, *args], workload, settle,
                   dict(os.environ, PYTHONPATH=ROOT))
    return theirs, ours


_NUM = re.compile(r"\d+(\.\d+)?[KMGTP]?")
_BAR = re.compile(r"\|[@ ]*\|")
_KEY = re.compile(r"^(@\w*)\[.*\]:")


_FRAME = re.compile(r"\s*(0x[0-9a-f]+|\S+\+\d+)( \(\S+\))?")


def shape(line: str) -> str:
    """A data line's column structure: numbers -> N (so a hist's ``[4K, 8K)`` and
    ``[0]`` both read ``[N, N)``), bars -> BAR, map keys -> KEY, a stack frame line
    (``func+off`` or an address) -> FRAME, whitespace -> one space."""
    if _FRAME.fullmatch(line.rstrip("\n")):
        return "FRAME"
    line = _BAR.sub("|BAR|", line.rstrip("\n"))
    line = _KEY.sub(r"\1[KEY]:", line)
    line = _NUM.sub("N", line)
    line = re.sub(r"\[N\]", "[N, N)", line)
    return " ".join(line.split())


def split(out: str, header: int) -> Tuple[List[str], List[str]]:
    """The first ``header`` lines and the non-empty lines after them."""
    lines = out.split("\n")
    return lines[:header], [l for l in lines[header:] if l.strip()]


def shapes(lines: List[str], keep: Optional[str]) -> Set[str]:
    rx = re.compile(keep) if keep else None
    return {shape(l) for l in lines if rx is None or rx.search(l)}


def build_toolwork(directory: str) -> Callable[[], None]:
    """gcc-builds tests/bpftrace_tools/toolwork.c into ``directory``; runs it there."""
    binary = os.path.join(directory, "toolwork")
    subprocess.run(["gcc", "-O1", "-o", binary, os.path.join(HERE, "toolwork.c"),
                    "-lpthread"], check=True)
    return lambda: subprocess.run([binary, directory], check=True, timeout=30) and None


#: a diagnostic of the clang parse bpftrace 0.17 makes of a program's C preamble and the
#: headers it includes (``FILE:LINE:COL: error: ...``; bpftrace's own are ``LINE:COL-COL``)
_CLANG_DIAGNOSTIC = re.compile(r"^\S+:\d+:\d+: (?:fatal )?error: .*$", re.M)


def clang_header_refusal(stderr: str) -> Optional[str]:
    """The first clang diagnostic when bpftrace refused a program in its clang parse of
    the included headers, else None. Two things there are not modelled by pybpf, which
    reads headers only for their macros and enumerators: clang's typing of every
    declaration in the headers (with BTF, bpftrace hides ``<linux/types.h>``, so a
    header using a type the kernel's BTF lacks, such as ``__aligned_u64`` on some
    kernels, is an "unknown type name"), and bpftrace's retry without BTF when the types
    it takes from BTF clash with a header's (after which ``#ifndef BPFTRACE_HAVE_BTF``
    branches are taken, and their kernel headers may be missing). Which of these
    happens depends on the machine's kernel BTF and headers."""
    m = _CLANG_DIAGNOSTIC.search(stderr)
    return m.group(0) if m else None
