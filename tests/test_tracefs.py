"""tracefs: finding or mounting it, listing events by glob, parsing format files into
typed layouts (__data_loc strings, fixed arrays, pointers), decoding records, and the
validation of every name that is written to tracefs."""

from __future__ import annotations

import os
import struct
import subprocess
import sys

import pytest

from pybpf import tracefs

from linkutil import root_reason

SAMPLE = """name: sample
ID: 4242
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:__data_loc char[] filename;\toffset:8;\tsize:4;\tsigned:0;
\tfield:char comm[16];\toffset:12;\tsize:16;\tsigned:0;
\tfield:u32 addrs[4];\toffset:28;\tsize:16;\tsigned:0;
\tfield:const char * name;\toffset:48;\tsize:8;\tsigned:0;
\tfield:long delta;\toffset:56;\tsize:8;\tsigned:1;
\tfield:__rel_loc u8[] blob;\toffset:64;\tsize:4;\tsigned:0;

print fmt: "filename=%s", __get_str(filename)
"""


def test_parse_format_types():
    fmt = tracefs.parse_format(SAMPLE, "test")
    assert (fmt.name, fmt.id) == ("sample", 4242)
    assert [f.name for f in fmt.common_fields] == ["common_type", "common_flags",
                                                   "common_preempt_count", "common_pid"]
    a = fmt.args
    assert (a.filename.kind, a.filename.is_string, a.filename.offset) == ("data_loc", True, 8)
    assert (a.comm.kind, a.comm.count, a.comm.elem_size, a.comm.is_string) == \
        ("array", 16, 1, True)
    assert (a.addrs.kind, a.addrs.count, a.addrs.elem_size, a.addrs.elem_type) == \
        ("array", 4, 4, "u32")
    assert a.name.kind == "pointer" and a.delta.signed and a.delta.kind == "scalar"
    assert (a.blob.kind, a.blob.elem_type) == ("rel_loc", "u8")
    assert fmt.offset_of("delta") == 56 and fmt.size == 68
    with pytest.raises(KeyError, match="delta"):
        fmt["deltaa"]


def test_decode_record():
    fmt = tracefs.parse_format(SAMPLE, "test")
    rec = bytearray(96)
    struct.pack_into("<HBBi", rec, 0, 4242, 0, 0, 77)
    struct.pack_into("<I", rec, 8, (6 << 16) | 72)            # "/etc\0" + pad at 72
    rec[72:78] = b"/etc\0\0"
    rec[12:17] = b"bash\0"
    struct.pack_into("<4I", rec, 28, 1, 2, 3, 4)
    struct.pack_into("<Q", rec, 48, 0xFFFF0000)
    struct.pack_into("<q", rec, 56, -5)
    struct.pack_into("<I", rec, 64, (3 << 16) | 12)           # 12 after the locator: 80
    rec[80:83] = b"\x01\x02\x03"
    out = fmt.decode(bytes(rec))
    assert out["common_pid"] == 77 and out["filename"] == "/etc" and out["comm"] == "bash"
    assert out["addrs"] == [1, 2, 3, 4] and out["delta"] == -5
    assert out["blob"] == b"\x01\x02\x03"


def test_field_load_instruction():
    fmt = tracefs.parse_format(SAMPLE, "test")
    ins = fmt.args.delta.load(2, 1)
    assert (ins.dst, ins.src, ins.off) == (2, 1, 56)
    with pytest.raises(ValueError):
        fmt.args.comm.load(2, 1)


@pytest.mark.skipif(bool(root_reason()), reason=root_reason())
def test_real_events():
    events = tracefs.list_events("syscalls:sys_enter_open*")
    assert "syscalls:sys_enter_openat" in events
    assert all(e.startswith("syscalls:sys_enter_open") for e in events)
    assert "sched:sched_switch" in tracefs.list_events("sched_sw*")
    fmt = tracefs.event_format("sched", "sched_switch")
    assert fmt.args.prev_comm.is_string and fmt.args.prev_comm.count == 16
    assert tracefs.event_format("sched:sched_process_exec").args.filename.kind == "data_loc"
    assert tracefs.event_id("sched:sched_switch") == fmt.id
    with pytest.raises(LookupError, match="sched:sched_switch"):
        tracefs.event_id("sched:sched_swich")


@pytest.mark.skipif(bool(root_reason()), reason=root_reason())
def test_mounts_tracefs_when_missing():
    """In a private mount namespace with tracefs unmounted, it is mounted again."""
    code = ("import subprocess, sys; "
            "subprocess.run(['umount', '-l', '/sys/kernel/tracing'], capture_output=True);"
            "subprocess.run(['umount', '-l', '/sys/kernel/debug'], capture_output=True);"
            "from pybpf import tracefs; print(tracefs.tracefs_root()); "
            "print(len(tracefs.list_events('sched:*')) > 0)")
    out = subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable, "-c",
                          code], capture_output=True, text=True,
                         cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["/sys/kernel/tracing", "True"]


@pytest.mark.parametrize("bad", ["", "a b", "a\nb", "p:x", "1abc", "x/y", "a" * 64, "-:x",
                                 "x+1", "\x00"])
def test_names_are_validated(bad):
    with pytest.raises(ValueError):
        tracefs.validate_name(bad)


@pytest.mark.parametrize("bad", ["do_sys open", "f\n-:kprobes/x", "f:g", "f%x", "f$(x)",
                                 "f;g", ""])
def test_symbols_are_validated(bad):
    with pytest.raises(ValueError):
        tracefs.validate_probe_target(bad)
    tracefs.validate_probe_target("foo.isra.0")


@pytest.mark.parametrize("bad", ["relative/path", "/with space", "/a:b", "/new\nline"])
def test_paths_are_validated(bad):
    with pytest.raises(ValueError):
        tracefs.validate_probe_target(bad, "path")


def test_event_names_carry_the_pid():
    name = tracefs.unique_event_name("do unlinkat!" + "x" * 80)
    assert tracefs.validate_name(name) and len(name) <= 63
    assert tracefs.pid_of_event(name) == os.getpid()
    assert tracefs.pid_of_event("other_tool_1") is None


@pytest.mark.skipif(bool(root_reason()), reason=root_reason())
def test_probe_event_lines_are_appended_not_truncated(tmp_path):
    """A foreign uprobe definition survives pybpf adding and removing its own."""
    foreign = "pybpftest_foreign_%d" % os.getpid()
    target = os.path.realpath("/bin/true")
    path = os.path.join(tracefs.tracefs_root(), "uprobe_events")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    os.write(fd, f"p:{foreign} {target}:0x0\n".encode())
    os.close(fd)
    try:
        name = tracefs.unique_event_name("t")
        ev_id = tracefs.add_probe_event("uprobe", "p", name, f"{target}:0x0")
        assert ev_id > 0
        names = [e.name for e in tracefs.list_probe_events("uprobe")]
        assert foreign in names and name in names
        tracefs.remove_probe_event("uprobe", name)
        tracefs.remove_probe_event("uprobe", name)                 # gone: no error
        assert foreign in [e.name for e in tracefs.list_probe_events("uprobe")]
    finally:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.write(fd, f"-:{foreign}\n".encode())
        os.close(fd)
