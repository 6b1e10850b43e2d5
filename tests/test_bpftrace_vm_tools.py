"""bpftrace's kprobe-based tools under pybpf's ``session.run`` in the second-kernel stage
(``scripts/vmtest.sh -- -m vmtest tests/test_bpftrace_vm_tools.py``: Debian's 6.1 kernel
under QEMU, which has kprobes; the guest sees the host's files, bpftrace 0.17 included).

Each tool runs under bpftrace and under ``session.run`` for about a second (no workload:
the guest is idle) and is stopped with SIGINT: both must end with the same status and
print the same header lines (``Attaching N probes...`` and what BEGIN prints), and
``session.run`` must not report an error. The host-side tests are in
tests/test_bpftrace_tools.py (the tracepoint, uprobe and profile tools).
"""

from __future__ import annotations

import os
import re
import shutil

import pytest

from bpftrace_tools.harness import run_both

def _no_kprobes() -> str:
    from pybpf.link.kprobe import kprobes_available
    why = kprobes_available()
    return f"needs kprobes (run in the second-kernel stage, scripts/vmtest.sh): {why}" \
        if why else ""


pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(bool(_no_kprobes()), reason=_no_kprobes() or "kprobes"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]

#: bpftrace's own kprobe tools (all of them run in the guest under both tracers)
KPROBE_TOOLS = ("biolatency", "biosnoop", "biostacks", "capable", "dcsnoop", "mdflush",
                "oomkill", "swapin", "tcpaccept", "tcpconnect", "tcplife", "tcpretrans",
                "tcpsynbl", "undump", "vfscount", "vfsstat", "xfsdist")


def header_lines(path: str) -> int:
    """``Attaching...`` and the lines BEGIN's printf calls end."""
    with open(path) as fh:
        text = fh.read()
    m = re.search(r"^BEGIN\s*\{(.*?)^\}", text, re.M | re.S)
    return 1 + (len(re.findall(r'\\n"', m.group(1))) if m else 0)


@pytest.mark.vmtest
@pytest.mark.parametrize("name", KPROBE_TOOLS)
def test_kprobe_tool(name):
    path = f"/usr/sbin/{name}.bt"
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    (tout, terr, trc), (oout, oerr, orc) = run_both(path, None, 1.0)
    assert orc == trc, (orc, trc, oerr[-1500:], terr[-1500:])
    if trc == 0:
        assert "ERROR" not in oerr, oerr[-1500:]
    else:                   # a probe bpftrace cannot attach either (mdflush without md)
        errors = [[ln for ln in e.splitlines()        # not bpftrace's RLIMIT complaint
                   if ln.startswith("ERROR") and "RLIMIT_MEMLOCK" not in ln]
                  for e in (oerr, terr)]
        assert errors[0] == errors[1] != [], (oerr[-1500:], terr[-1500:])
    n = header_lines(path)
    assert oout.split("\n")[:n] == tout.split("\n")[:n], (oout[-800:], tout[-800:])


#: the kprobe one-liners of bpftrace 0.17's docs/tutorial_one_liners.md (lessons 6, 7, 12)
KPROBE_ONE_LINERS = [
    ("tut-vfs-read-lhist", "kretprobe:vfs_read { @bytes = lhist(retval, 0, 2000, 200); }"),
    ("tut-vfs-read-time", "kprobe:vfs_read { @start[tid] = nsecs; } kretprobe:vfs_read "
     "/@start[tid]/ { @ns[comm] = hist(nsecs - @start[tid]); delete(@start[tid]); }"),
    ("tut-vfs-open-path", "#ifndef BPFTRACE_HAVE_BTF\n#include <linux/path.h>\n"
     "#include <linux/dcache.h>\n#endif\n\nkprobe:vfs_open\n{\n\tprintf(\"open path: "
     "%s\\n\", str(((struct path *)arg0)->dentry->d_name.name));\n}\n"),
]


@pytest.mark.vmtest
@pytest.mark.parametrize("program", [p for _, p in KPROBE_ONE_LINERS],
                         ids=[i for i, _ in KPROBE_ONE_LINERS])
def test_kprobe_one_liner(program, tmp_path):
    from bpftrace_tools.harness import shapes, split
    path = str(tmp_path / "one.bt")
    with open(path, "w") as fh:
        fh.write(program)

    def reads() -> None:
        for _ in range(20):
            with open("/etc/passwd", "rb") as fh:
                fh.read()

    (tout, terr, trc), (oout, oerr, orc) = run_both(path, reads, 0.5)
    assert orc == trc == 0, (orc, trc, oerr[-1500:], terr[-1500:])
    # the names vfs_open sees differ from run to run: the column structure is the point
    tout, oout = (re.sub(r"(?m)^open path: .*$", "open path: NAME", x) for x in (tout, oout))
    # reads still in flight at the SIGINT leave @start entries in either tracer, or not
    tout, oout = (re.sub(r"(?m)^@start\[.*\n", "", x) for x in (tout, oout))
    th, td = split(tout, 1)
    oh, od = split(oout, 1)
    assert oh == th
    ts, os_ = shapes(td, None), shapes(od, None)
    assert ts and os_, (tout[-800:], oout[-800:])
    assert os_ == ts
