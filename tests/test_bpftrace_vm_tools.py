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

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root"),
    pytest.mark.skipif(shutil.which("bpftrace") is None, reason="needs bpftrace 0.17"),
]

XF_ENUM = ("enum constants of #include-d kernel headers as identifiers "
           "(TCP_FIN_WAIT1 of net/tcp_states.h): 'Identifier expressions are not "
           "supported yet'")
XF_STACK = "stack use: the lowered program needs more than 512 bytes of stack"

KPROBE_TOOLS = {
    "biolatency": None, "biosnoop": None, "biostacks": None, "capable": None,
    "dcsnoop": None, "mdflush": None, "oomkill": None, "swapin": None,
    "tcpaccept": None, "tcpconnect": None, "tcplife": XF_ENUM, "tcpretrans": XF_STACK,
    "tcpsynbl": None, "undump": None, "vfscount": None, "vfsstat": None, "xfsdist": None,
}


def header_lines(path: str) -> int:
    """``Attaching...`` and the lines BEGIN's printf calls end."""
    with open(path) as fh:
        text = fh.read()
    m = re.search(r"^BEGIN\s*\{(.*?)^\}", text, re.M | re.S)
    return 1 + (len(re.findall(r'\\n"', m.group(1))) if m else 0)


def params():
    for name, reason in KPROBE_TOOLS.items():
        marks = [pytest.mark.vmtest]
        if reason:
            marks.append(pytest.mark.xfail(strict=True, reason=reason))
        yield pytest.param(name, id=name, marks=marks)


@pytest.mark.parametrize("name", list(params()))
def test_kprobe_tool(name):
    path = f"/usr/sbin/{name}.bt"
    if not os.path.exists(path):
        pytest.skip(f"{path} not installed")
    (tout, terr, trc), (oout, oerr, orc) = run_both(path, None, 1.0)
    assert orc == trc, (orc, trc, oerr[-1500:], terr[-1500:])
    assert "ERROR" not in oerr, oerr[-1500:]
    n = header_lines(path)
    assert oout.split("\n")[:n] == tout.split("\n")[:n], (oout[-800:], tout[-800:])
