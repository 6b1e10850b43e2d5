"""``pybpf map list|show|dump`` against bpftool's answers for the same maps."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from ctypes import c_uint32, c_uint64

import pytest

from pybpf.cli import main
from pybpf.maps import ArrayMap, HashMap, PerCPUHashMap, QueueMap, possible_cpus


from bpfenv import needs_bpf, needs_bpftool

pytestmark = needs_bpf
BPFTOOL = shutil.which("bpftool") or ("/usr/sbin/bpftool" if os.path.exists(
    "/usr/sbin/bpftool") else None)


def _bpftool(*args: str):
    out = subprocess.run([BPFTOOL, *args], capture_output=True, text=True, timeout=60)
    return out


def _pybpf(capsys, *args: str):
    capsys.readouterr()
    code = main(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


@pytest.fixture
def maps():
    made = [HashMap(key=c_uint32, value=c_uint64, max_entries=16, name="cli_hash"),
            ArrayMap(value=c_uint32, max_entries=3, name="cli_array"),
            PerCPUHashMap(key=c_uint32, value=c_uint32, max_entries=4, name="cli_pcpu"),
            HashMap(key=20, value=9, max_entries=4, name="cli_wide"),
            QueueMap(value=c_uint32, max_entries=2, name="cli_queue")]
    h, a, p, w, _ = made
    h.update_batch({i: i * 1000 for i in range(5)})
    a[1] = 0xAABBCCDD
    p[7] = list(range(1, possible_cpus() + 1))
    w[bytes(range(20))] = bytes(range(100, 109))
    yield made
    for m in made:
        m.close()


@needs_bpftool
def test_list_json_agrees_with_bpftool(capsys, maps):
    code, before, _ = _pybpf(capsys, "map", "list", "--json")
    theirs = json.loads(_bpftool("map", "list", "--json").stdout or "[]")
    code2, after, _ = _pybpf(capsys, "map", "list", "--json")
    assert code == code2 == 0
    ours1 = {r["id"]: r for r in json.loads(before)}
    ours2 = {r["id"]: r for r in json.loads(after)}
    theirs_by_id = {r["id"]: r for r in theirs}
    # other processes may create or free maps meanwhile: ids seen in both of our runs
    # must be in bpftool's, and bpftool's must be in one of ours
    assert set(ours1) & set(ours2) <= set(theirs_by_id) <= set(ours1) | set(ours2)
    for m in maps:
        assert m.id in ours1 and m.id in theirs_by_id
    for map_id in set(ours1) & set(theirs_by_id):
        ours, them = ours1[map_id], theirs_by_id[map_id]
        if isinstance(them["type"], str):         # bpftool may not know newer types
            assert ours["type"] == them["type"], map_id
        for field in ("name", "flags", "bytes_key", "bytes_value", "max_entries",
                      "frozen"):
            assert ours.get(field) == them.get(field), (map_id, field)


@needs_bpftool
def test_show_and_text_list(capsys, maps):
    h = maps[0]
    with HashMap(key=4, value=4, max_entries=1) as unnamed:
        code, out, _ = _pybpf(capsys, "map", "show", str(unnamed.id), "--json")
        assert "name" not in json.loads(out)
        code, out, _ = _pybpf(capsys, "map", "show", str(unnamed.id))
        assert out == _bpftool("map", "show", "id", str(unnamed.id)).stdout
    code, out, _ = _pybpf(capsys, "map", "show", str(h.id), "--json")
    assert code == 0
    ours = json.loads(out)
    theirs = json.loads(_bpftool("map", "show", "id", str(h.id), "--json").stdout)
    assert ours == {k: v for k, v in theirs.items() if k in ours}
    code, out, _ = _pybpf(capsys, "map", "show", str(h.id))
    first_line = _bpftool("map", "show", "id", str(h.id)).stdout.splitlines()[0]
    assert out.splitlines()[0] == first_line
    assert "key 4B  value 8B  max_entries 16" in out
    code, out, _ = _pybpf(capsys, "map", "list")
    assert f"{h.id}: hash  name cli_hash  flags 0x0" in out


@needs_bpftool
def test_dump_matches_bpftool(capsys, maps):
    for m in maps[:4]:
        code, out, _ = _pybpf(capsys, "map", "dump", str(m.id))
        assert code == 0
        assert out == _bpftool("map", "dump", "id", str(m.id)).stdout, m.name
        code, out, _ = _pybpf(capsys, "map", "dump", str(m.id), "--json")
        assert json.loads(out) == json.loads(_bpftool("map", "dump", "id", str(m.id),
                                                      "--json").stdout), m.name


def test_dump_text_shape(capsys, maps):
    h, a = maps[0], maps[1]
    code, out, _ = _pybpf(capsys, "map", "dump", str(a.id))
    assert out.splitlines() == ["key: 00 00 00 00  value: 00 00 00 00",
                                "key: 01 00 00 00  value: dd cc bb aa",
                                "key: 02 00 00 00  value: 00 00 00 00",
                                "Found 3 elements"]
    code, out, _ = _pybpf(capsys, "map", "dump", str(h.id), "--json")
    entries = json.loads(out)
    assert len(entries) == 5 and all(len(e["key"]) == 4 and len(e["value"]) == 8
                                     for e in entries)


def test_errors_and_exit_codes(capsys, maps, tmp_path):
    code, _, err = _pybpf(capsys, "map", "show", "2147483000")
    assert code == 1 and "no map with id" in err
    code, _, err = _pybpf(capsys, "map", "dump", str(maps[4].id))
    assert code == 1 and "no keys" in err
    code, _, err = _pybpf(capsys, "map", "dump", "nonsense")
    assert code == 1 and "neither a map id nor a pin path" in err
    with pytest.raises(SystemExit) as info:
        main(["map", "frobnicate"])
    assert info.value.code == 2
    done = subprocess.run([sys.executable, "-m", "pybpf", "map", "show", str(maps[0].id)],
                          capture_output=True, text=True, timeout=60,
                          cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert done.returncode == 0 and "cli_hash" in done.stdout


def test_dump_pinned_path(capsys, maps):
    path = f"/sys/fs/bpf/pybpf-cli-{os.getpid()}"
    maps[1].pin(path)
    try:
        code, out, _ = _pybpf(capsys, "map", "dump", path)
        assert code == 0 and "Found 3 elements" in out
    finally:
        os.unlink(path)
