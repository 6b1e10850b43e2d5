"""The page of ``pybpf explain --html`` in a real browser, and ``--trace`` on pybpf.vm.

The oracle of the page is Debian's chromium (installed by .ci/run), driven headless over
the DevTools protocol on a pipe (tests/cdp.py, standard library only): the test clicks
an instruction with real mouse events and reads the state panel, whose registers must
be those the ``--json`` document (the parsed verifier log) holds for that instruction;
the failing path of a refused program must be the one the kernel reported. The
``--trace`` run on pybpf.vm is checked against the kernel's own run of the same program
(``BPF_PROG_TEST_RUN``) on the same packet. Every program is loaded by the command in
a child process and closed again there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from bpfenv import needs_bpf
from cdp import CHROMIUM, Browser

ROOT = Path(__file__).resolve().parent.parent
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed "
                                    "(apt-get install chromium; .ci/run installs it)")

GOOD_S = """\
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 14
    if r4 > r3 goto out
    r5 = *(u8 *)(r2 + 12)
    r5 &= 0xff
    r0 = r5
    exit
out:
    r0 = 2
    exit
"""

# the comment on the failing line tries to end the page's data element
BAD_S = """\
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 14
    if r4 > r3 goto out
    r5 = *(u8 *)(r2 + 12)
    if r5 == 1 goto out
    r5 = *(u8 *)(r2 + 20)  # </script><script>document.title='broken'</script>
out:
    r0 = 2
    exit
"""

PACKET = bytes(range(100, 164))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _explain(tmp_path: Path, name: str, source: str, *extra: str) -> tuple:
    src = tmp_path / f"{name}.s"
    src.write_text(source)
    page, data = tmp_path / f"{name}.html", tmp_path / f"{name}.json"
    out = _cli("explain", str(src), "--html", str(page), "--json", str(data), *extra)
    assert out.returncode == 0, out.stderr
    return page, json.loads(data.read_text())["programs"][0], out.stdout


def _expected_regs(prog: dict, index: int) -> list:
    """Per visit of ``index`` (in order): {register: the log's text of its value}."""
    trace = prog["trace"]
    return [{r: trace["values"][n]["text"] for r, n in v["before"]["regs"].items()}
            for v in trace["visits"] if v["index"] == index]


# -- without a browser ------------------------------------------------------------------
def test_embedded_data_cannot_end_its_element() -> None:
    from pybpf.explain_html import embed_json, render_page
    nasty = "</script><!-- \u2028 & <b>"
    assert json.loads(embed_json({"t": nasty})) == {"t": nasty}
    assert "<" not in embed_json({"t": nasty}) and "\u2028" not in embed_json(nasty)
    doc = {"file": "x.s", "kernel": "k", "programs": [{
        "name": "x", "kind": "xdp", "type": "xdp", "accepted": False, "jited_len": None,
        "xlated_len": None, "error": "e", "trace": None, "failure": None,
        "instructions": [{"index": 0, "text": "exit", "source": None}],
        "lines": [{"file": "x.s", "line": 1, "text": nasty, "instructions": [0]}]}]}
    page = render_page(doc)
    assert page.count("</script>") == 2                     # the two elements' own ends
    assert "&lt;/script&gt;" in page                        # the listing's escaped copy
    start = page.index('id="explain-data">') + len('id="explain-data">')
    data = json.loads(page[start:page.index("</script>", start)])
    assert data["programs"][0]["name"] == "x"
    assert "http" not in re.sub(r"<meta[^>]*>", "", page).lower().replace(
        "explain-data", "")                                  # nothing fetched


def test_vm_low_window() -> None:
    from pybpf.vm import MemoryFault
    from pybpf.vm.memory import Memory
    mem = Memory()
    region = mem.map("pkt", "mem", b"abc", low=True)
    assert region.end < 1 << 32 and mem.read(region.base + 1, 2) == b"bc"
    with pytest.raises(ValueError):
        mem.map("again", "mem", b"x", low=True)
    with pytest.raises(MemoryFault, match="NULL pointer"):
        mem.read(0, 1)


# -- in chromium ------------------------------------------------------------------------
@needs_bpf
@needs_chromium
def test_page_click_shows_the_state(tmp_path) -> None:
    pkt = tmp_path / "pkt.bin"
    pkt.write_bytes(PACKET)
    good_page, good, _ = _explain(tmp_path, "good", GOOD_S, "--trace", str(pkt))
    bad_page, bad, _ = _explain(tmp_path, "bad", BAD_S)
    assert good["accepted"] and not bad["accepted"]
    with Browser() as b:
        # accepted: click the read of byte 12 (after the bounds check)
        b.open(good_page.as_uri())
        assert b.evaluate("document.querySelectorAll('.insn.on-path').length") == 0
        assert b.evaluate("+document.querySelector('[data-jited]')"
                          ".getAttribute('data-jited')") == good["jited_len"] > 0
        for index in (5, 7):
            b.click(f'.insn[data-insn="{index}"]')
            assert b.evaluate("document.getElementById('state-panel')"
                              ".getAttribute('data-insn')") == str(index)
            shown = b.panel_rows()
            assert [v["regs"] for v in shown] == _expected_regs(good, index)
            assert shown and not any(v["failed"] for v in shown)
        assert b.evaluate("location.hash") == "#insn=7"
        # the vm's run beside the verifier: the read of byte 12 got the packet's byte
        b.click('.insn[data-insn="5"]')
        row = b.evaluate("document.querySelector('#run-steps tr[data-step]').textContent")
        assert f"r5 0x0 -> {PACKET[12]:#x}" in row and "R5=scalar(umax=255)" in row
        assert "pkt(off=14,r=14)" in _expected_regs(good, 5)[0].values()

        # refused: the failing path highlighted, the complaint shown, the state at 5
        b.open(bad_page.as_uri())
        assert b.evaluate("document.title") == "pybpf explain " + str(tmp_path / "bad.s")
        fail = bad["failure"]
        assert fail["index"] == 7 and fail["path"] == list(range(8))
        on_path = b.evaluate("Array.from(document.querySelectorAll('.insn.on-path'))"
                             ".map(function(e){return +e.getAttribute('data-insn')})")
        assert on_path == fail["path"]
        assert b.evaluate("document.querySelector('.insn.failed')"
                          ".getAttribute('data-insn')") == "7"
        complaint = b.evaluate("document.getElementById('complaint-0').textContent")
        assert "outside of the packet" in complaint and "</script>" in complaint
        b.click('.insn[data-insn="5"]')
        assert [v["regs"] for v in b.panel_rows()] == _expected_regs(bad, 5)
        b.click('.insn.failed')
        [visit] = b.panel_rows()
        assert visit["failed"] and "refused here" in visit["text"]
        assert visit["regs"] == _expected_regs(bad, 7)[0]
        assert "outside of the packet" in visit["text"]

        # a link to an instruction opens with its state shown
        b.open(bad_page.as_uri() + "#insn=4")
        assert b.evaluate("document.getElementById('state-panel')"
                          ".getAttribute('data-insn')") == "4"
        assert [v["regs"] for v in b.panel_rows()] == _expected_regs(bad, 4)


@needs_bpf
def test_trace_matches_the_kernel_run(tmp_path) -> None:
    from pybpf.asm.assembler import assemble
    from pybpf.program import ProgramSpec
    from pybpf.syscall.bpf import ProgType
    pkt = tmp_path / "pkt.bin"
    pkt.write_bytes(PACKET)
    _, prog, text = _explain(tmp_path, "good", GOOD_S, "--trace", str(pkt))
    run = prog["run"]
    with ProgramSpec(ProgType.XDP, assemble(GOOD_S), name="tpage").load() as kernel:
        retval = kernel.test_run(PACKET).retval
    assert int(run["result"], 16) == retval == PACKET[12]
    assert run["error"] is None and [s["pc"] for s in run["steps"]] == list(range(9))
    read = run["steps"][5]
    assert f"r5 0x0 -> {PACKET[12]:#x}" in read["changes"]
    assert f"run of good on pybpf.vm ({len(PACKET)} bytes of input): 9 steps, " \
           f"returned {retval:#x}" in text
    assert re.search(r"5: w5 = \*\(u8 \*\)\(r2 \+ 0xc\)\s+r5=0x70\s+verifier: R5=scalar",
                     text)
    # a packet shorter than the bound checked takes the other branch, as in the kernel
    longer = GOOD_S.replace("r4 += 14", "r4 += 40")
    pkt.write_bytes(PACKET[:20])
    _, prog, _ = _explain(tmp_path, "longer", longer, "--trace", str(pkt))
    with ProgramSpec(ProgType.XDP, assemble(longer), name="tpage").load() as kernel:
        short = kernel.test_run(PACKET[:20]).retval
    assert int(prog["run"]["result"], 16) == short == 2


@needs_bpf
def test_trace_refuses_unknown_helpers_and_bad_input(tmp_path) -> None:
    src = tmp_path / "adjust.s"
    src.write_text("    r6 = r1\n    r2 = 0\n    call 44\n    r0 = 2\n    exit\n")
    pkt = tmp_path / "pkt.bin"
    pkt.write_bytes(PACKET)
    out = _cli("explain", str(src), "--trace", str(pkt))
    assert out.returncode == 1
    [line] = out.stderr.strip().splitlines()
    assert "bpf_xdp_adjust_head (id 44)" in line and "pybpf.vm does not implement" in line
    out = _cli("explain", str(src), "--trace", str(tmp_path / "missing.bin"))
    assert out.returncode == 1 and "missing.bin" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1
