"""``pybpf prog list|show|dump`` against ``bpftool prog``.

Other processes may load and unload programs while the test runs, so the lists are
compared as sets, and a difference is accepted only when it is explained by time: an id
bpftool saw that pybpf did not must be newer than every id pybpf listed (created in
between), and an id pybpf saw that bpftool did not must be gone.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
from typing import Dict, List, Tuple

import pytest

from pybpf.asm import R0, R1, R2, R10
from pybpf.asm.builder import Builder, add, call, exit_, ld_map_fd, mov, st
from pybpf.program import ProgramSpec
from pybpf.syscall.bpf import MapType, ProgType


from bpfenv import needs_bpf, needs_bpftool

pytestmark = [needs_bpf, needs_bpftool]


def _pybpf(*args: str) -> str:
    run = subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                         text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


def _bpftool(*args: str) -> str:
    run = subprocess.run(["bpftool", *args], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    return run.stdout


@pytest.fixture
def loaded():
    """An XDP program using a map and a socket filter, loaded for the test."""
    from pybpf.syscall.maps import map_create
    m = map_create(MapType.HASH, 4, 8, 4, name="progcmd_map")
    b = Builder()
    b.emit(st(4, R10, -4, 0), mov(R2, R10), add(R2, -4), ld_map_fd(R1, m),
           call("map_lookup_elem"), call("ktime_get_ns"), mov(R0, 2), exit_())
    xdp = ProgramSpec(ProgType.XDP, b.link(), name="progcmd_xdp").load()
    sock = ProgramSpec(ProgType.SOCKET_FILTER, [mov(R0, 0), exit_()],
                       name="progcmd_sock").load()
    try:
        yield [xdp, sock]
    finally:
        xdp.close()
        sock.close()
        m.close()


def _key(rec: Dict) -> Tuple[int, str, str]:
    return rec["id"], rec["type"], rec.get("name", "")


def test_prog_list_agrees_with_bpftool(loaded: List) -> None:
    ours = json.loads(_pybpf("prog", "list", "--json"))
    theirs = json.loads(_bpftool("prog", "list", "--json"))
    our_ids = {r["id"] for r in ours}
    their_ids = {r["id"] for r in theirs}
    for prog in loaded:
        assert prog.id in our_ids and prog.id in their_ids
    # same type and name wherever both saw the program
    mine = {r["id"]: _key(r) for r in ours}
    wrong = [f"{mine[r['id']]} != {_key(r)}" for r in theirs
             if r["id"] in mine and mine[r["id"]] != _key(r)]
    assert not wrong, "\n".join(wrong)
    # differences must be programs created or removed between the two listings
    from pybpf.syscall.objects import get_fd_by_id
    for missed in their_ids - our_ids:
        assert missed > max(our_ids), f"pybpf did not list program {missed}"
    for extra in our_ids - their_ids:
        try:
            get_fd_by_id("prog", extra).close()
        except OSError as exc:
            assert exc.errno == errno.ENOENT
        else:
            raise AssertionError(f"bpftool did not list program {extra}, which exists")


def test_prog_show_agrees_with_bpftool(loaded: List) -> None:
    for prog in loaded:
        ours = json.loads(_pybpf("prog", "show", str(prog.id), "--json"))
        theirs = json.loads(_bpftool("prog", "show", "id", str(prog.id), "--json"))
        for key in ("id", "type", "name", "tag", "gpl_compatible", "uid", "bytes_xlated",
                    "jited", "bytes_jited", "bytes_memlock", "map_ids"):
            assert ours.get(key) == theirs.get(key), key
        assert abs(ours["loaded_at"] - theirs["loaded_at"]) <= 1
        text = _pybpf("prog", "show", str(prog.id))
        assert text.startswith(f"{prog.id}: {ours['type']}  name {ours['name']}  "
                               f"tag {ours['tag']}")


def test_prog_dump(loaded: List) -> None:
    xdp = loaded[0]
    ours = json.loads(_pybpf("prog", "dump", str(xdp.id), "--json"))
    theirs = json.loads(_bpftool("prog", "dump", "xlated", "id", str(xdp.id), "--json"))
    assert len(ours) == len(theirs)
    assert [o["opcode"] for o in ours] == [int(t["disasm"][1:3], 16) for t in theirs]
    text = _pybpf("prog", "dump", str(xdp.id))
    assert "(85) call 0x5  # bpf_ktime_get_ns" in text
    assert "map id" in text and text.rstrip().endswith("(95) exit")


def test_prog_show_unknown_id_is_a_user_error() -> None:
    run = subprocess.run([sys.executable, "-m", "pybpf", "prog", "show", "2147483647"],
                         capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert "no program with id 2147483647" in run.stderr
