"""Probe listing and privilege messages, run as a user would run them (``cliharness``).

* ``pybpf list`` with a word before the first ``:`` that is no probe type is an error
  naming the valid types; kprobe patterns on a kernel without kprobes are an error
  naming CONFIG_KPROBES and kprobe_events unless ``--all-symbols`` asks for the
  kernel's functions;
* as uid 65534, a tracefs this user may not read is reported as such (permission
  denied, run as root), never as "not supported by this kernel";
* with capabilities dropped, the one-line error names the missing capability;
* ``pybpf info`` as uid 65534 answers "unknown" with the capability wherever root's
  answer differs, and says at the top that the run lacks capabilities.

Each error case asserts the exit status, the one line on stderr and no traceback.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from typing import Callable, Dict, List, Tuple

import pytest

from cliharness import NOBODY, Outcome, assert_one_line_error, can_run_unprivileged, run

TRACEFS = "/sys/kernel/tracing"


def _kprobes_missing() -> str:
    from pybpf.link.kprobe import kprobes_available
    return kprobes_available()


def _tracefs_closed_to_others() -> bool:
    """Whether uid 65534 may not enter the tracefs mount (mode without o+rx)."""
    try:
        mode = os.stat(TRACEFS).st_mode
    except OSError:
        return False
    return os.path.isdir(os.path.join(TRACEFS, "events")) and \
        (mode & (stat.S_IROTH | stat.S_IXOTH)) != (stat.S_IROTH | stat.S_IXOTH)


def _no_kprobes() -> str:
    """Skip reason when this kernel has kprobes (the error cases need a kernel
    without), else ""."""
    return "" if _kprobes_missing() else "this kernel has kprobes (CONFIG_KPROBES set)"


def _unprivileged_closed_tracefs() -> str:
    """Skip reason for the uid-65534 tracefs cases, else ""."""
    why = can_run_unprivileged()
    if why:
        return why
    if not _tracefs_closed_to_others():
        return f"tracefs at {TRACEFS} is readable by every user here"
    return ""


def _needs_root() -> str:
    return "" if os.geteuid() == 0 else "needs root (to drop capabilities with setpriv)"


def _needs_tracefs_group() -> str:
    return "" if os.path.isdir(os.path.join(TRACEFS, "events", "syscalls")) else \
        "no syscalls tracepoint group in tracefs"


def _always() -> str:
    return ""


TRACEFS_WORDS = ("tracefs", TRACEFS, "not readable by this user", "permission denied",
                 "run as root")

#: (id, args, user, dropped capabilities, precondition (skip reason or ""), words)
ERROR_CASES: List[Tuple[str, List[str], str, Tuple[str, ...], Callable[[], str],
                        Tuple[str, ...]]] = [
    ("unknown-type", ["list", "nosuchtype:foo:*"], "root", (), _always,
     ("pybpf list:", "unknown probe type 'nosuchtype'", "valid types", "tracepoint (t)",
      "kprobe (k)", "uprobe (u)", "usdt (U)", "hardware (h)")),
    ("colons-only", ["list", ":::::"], "root", (), _always,
     ("no probe type before ':'", "':::::'", "valid types", "tracepoint (t)")),
    ("empty-rest", ["list", "foo:"], "root", (), _always,
     ("unknown probe type 'foo'", "valid types")),
    ("wildcard-type-matching-nothing", ["list", "x*:vfs_read"], "root", (), _always,
     ("unknown probe type 'x*'", "matches no kernel probe type", "valid types")),
    ("tracepoint-group-as-type", ["list", "syscalls:sys_enter_openat"], "root", (),
     _needs_tracefs_group,
     ("unknown probe type 'syscalls'",
      "did you mean 'tracepoint:syscalls:sys_enter_openat'")),
    ("kprobe-without-kprobes", ["list", "kprobe:*open*"], "root", (), _no_kprobes,
     ("kprobes", "CONFIG_KPROBES", "kprobe_events", "--all-symbols")),
    ("kretprobe-without-kprobes", ["list", "kr:vfs_read"], "root", (), _no_kprobes,
     ("kprobes", "CONFIG_KPROBES", "kprobe_events", "--all-symbols")),
    ("bare-unreadable-tracefs", ["list", "sys_enter_openat"], "nobody", (),
     _unprivileged_closed_tracefs, TRACEFS_WORDS),
    ("tracepoint-unreadable-tracefs", ["list", "tracepoint:syscalls:sys_enter_openat"],
     "nobody", (), _unprivileged_closed_tracefs, TRACEFS_WORDS),
    # a tool names itself in its errors, under pybpf run as when started directly
    ("run-unreadable-tracefs", ["run", "opensnoop", "-d", "1"], "nobody", (),
     _unprivileged_closed_tracefs, ("opensnoop:",) + TRACEFS_WORDS),
    ("compile-unreadable-tracefs", ["compile", "programs/tutorial/04_opensnoop.py"],
     "nobody", (), _unprivileged_closed_tracefs, ("pybpf compile:",) + TRACEFS_WORDS),
    ("cleanup-unreadable-tracefs", ["probes", "cleanup"], "nobody", (),
     _unprivileged_closed_tracefs, ("pybpf probes:",) + TRACEFS_WORDS),
    ("run-without-capabilities", ["run", "opensnoop", "-d", "1"], "root",
     ("bpf", "perfmon", "sys_admin"), _needs_root,
     ("opensnoop:", "EPERM", "lacks CAP_BPF, CAP_PERFMON")),
]


@pytest.mark.parametrize("args,user,caps,precondition,words",
                         [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_error_is_one_clear_line(args: List[str], user: str, caps: Tuple[str, ...],
                                 precondition: Callable[[], str],
                                 words: Tuple[str, ...]) -> None:
    why = precondition()
    if why:
        pytest.skip(why)
    if user == "nobody" or caps:
        if can_run_unprivileged():
            pytest.skip(can_run_unprivileged())
    out = run(args, user=user, drop_caps=caps)
    assert_one_line_error(out, *words)
    assert "not supported by this kernel" not in out.stderr


# ---------------------------------------------------------------------------------------
# what works stays working
# ---------------------------------------------------------------------------------------

def _tracepoints_matching(predicate: Callable[[str], bool]) -> List[str]:
    with open(os.path.join(TRACEFS, "available_events"), encoding="utf-8") as fh:
        return sorted("tracepoint:" + ev for ev in fh.read().split() if predicate(ev))


def _kallsyms_has(name: str) -> bool:
    with open("/proc/kallsyms", encoding="ascii", errors="replace") as fh:
        return any(line.split()[2:3] == [name] and line.split()[1] in "tT" for line in fh)


def _expect_one_openat(out: Outcome) -> None:
    assert out.stdout.splitlines() == ["tracepoint:syscalls:sys_enter_openat"]


def _expect_bare_tracepoints(out: Outcome) -> None:
    lines = out.stdout.splitlines()
    expected = _tracepoints_matching(lambda ev: ev.split(":", 1)[1].startswith(
        "sys_enter_openat"))
    assert expected and [ln for ln in lines if ln.startswith("tracepoint:")] == expected
    if _kprobes_missing():
        assert not [ln for ln in lines if ln.startswith("kprobe:")], lines


def _expect_no_kprobes_in_bare(out: Outcome) -> None:
    lines = out.stdout.splitlines()
    if _kprobes_missing():
        assert not [ln for ln in lines if ln.startswith("kprobe:")], lines
    else:
        assert ("kprobe:vfs_read" in lines) == _kallsyms_has("vfs_read")


def _expect_vfs_read_symbol(out: Outcome) -> None:
    assert _kallsyms_has("vfs_read"), "/proc/kallsyms has no vfs_read"
    assert "kprobe:vfs_read" in out.stdout.splitlines()


def _expect_wildcard_type(out: Outcome) -> None:
    assert out.stdout.splitlines() == _tracepoints_matching(
        lambda ev: ev.split(":", 1)[1] == "sys_enter_openat")


#: (id, args, check of the outcome) for root runs that succeed
OK_CASES: List[Tuple[str, List[str], Callable[[Outcome], None]]] = [
    ("one-tracepoint", ["list", "tracepoint:syscalls:sys_enter_openat"],
     _expect_one_openat),
    ("short-type", ["list", "t:syscalls:sys_enter_openat"], _expect_one_openat),
    ("bare-pattern", ["list", "sys_enter_openat*"], _expect_bare_tracepoints),
    ("bare-skips-missing-kprobes", ["list", "vfs_rea?"], _expect_no_kprobes_in_bare),
    ("all-symbols-kprobe", ["list", "--all-symbols", "kprobe:vfs_read"],
     _expect_vfs_read_symbol),
    ("all-symbols-bare", ["list", "--all-symbols", "vfs_rea?"], _expect_vfs_read_symbol),
    ("wildcard-type", ["list", "*:sys_enter_openat"], _expect_wildcard_type),
]


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.isdir(os.path.join(TRACEFS, "events")),
                    reason="needs root and tracefs at /sys/kernel/tracing")
@pytest.mark.parametrize("args,check", [c[1:] for c in OK_CASES],
                         ids=[c[0] for c in OK_CASES])
def test_listing_still_works(args: List[str], check: Callable[[Outcome], None]) -> None:
    out = run(args)
    assert out.returncode == 0, out.stderr
    assert out.stderr == ""
    check(out)


# ---------------------------------------------------------------------------------------
# pybpf info without privileges
# ---------------------------------------------------------------------------------------

_CAPS = {39: "CAP_BPF", 38: "CAP_PERFMON", 12: "CAP_NET_ADMIN"}


def _capabilities_nobody_lacks() -> List[str]:
    """The BPF capabilities uid 65534 lacks, from its own CapEff read by grep (the
    oracle), in pybpf's order."""
    proc = subprocess.run(["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}",
                           "--clear-groups", "grep", "^CapEff:", "/proc/self/status"],
                          capture_output=True, text=True, timeout=30, check=True)
    caps = int(proc.stdout.split()[1], 16)
    return [name for bit, name in _CAPS.items() if not (caps >> bit) & 1]


@pytest.fixture(scope="module")
def info_runs() -> Dict[str, Outcome]:
    why = can_run_unprivileged()
    if why:
        pytest.skip(why)
    return {"root-json": run(["info", "--json"], timeout=300),
            "root-text": run(["info"], timeout=300),
            "nobody-json": run(["info", "--json"], user="nobody", timeout=300),
            "nobody-text": run(["info"], user="nobody", timeout=300)}


def test_unprivileged_info_never_says_no_where_root_differs(
        info_runs: Dict[str, Outcome]) -> None:
    root, nobody = info_runs["root-json"], info_runs["nobody-json"]
    assert root.returncode == 0 and nobody.returncode == 0, nobody.stderr
    ours = json.loads(nobody.stdout)
    theirs = json.loads(root.stdout)
    wrong = []
    for key, detail in ours["details"].items():
        answer = theirs["details"][key]["support"]
        if detail["support"] == answer:
            continue
        if detail["support"] != "unknown" or "EPERM" not in detail["reason"] or \
                "CAP_" not in detail["reason"]:
            wrong.append((key, detail["support"], detail["reason"], answer))
    assert not wrong, wrong
    for key, names in ours["helpers"].items():
        kind = key[:-len("_available_helpers")]
        if ours["details"][f"prog_type.{kind}"]["support"] == "unknown":
            assert names is None, key           # unknown, not "no helpers"


def test_unprivileged_info_names_what_the_run_lacks(info_runs: Dict[str, Outcome]) -> None:
    text, data = info_runs["nobody-text"], json.loads(info_runs["nobody-json"].stdout)
    assert text.returncode == 0 and "Traceback" not in text.stderr
    lacks = _capabilities_nobody_lacks()
    assert lacks and data["privileges"]["missing_capabilities"] == lacks
    first = text.stdout.splitlines()[0]
    assert first == f"note: this run lacks {', '.join(lacks)}: answers marked unknown " \
                    f"need them; run as root"
    assert data["privileges"]["note"] == first[len("note: "):]
    # a "no" without privileges is root's "no" too, word for word
    root_lines = set(info_runs["root-text"].stdout.splitlines())
    says_no = [ln for ln in text.stdout.splitlines() if ": no" in ln]
    assert all(ln in root_lines for ln in says_no), says_no
    assert not [ln for ln in says_no if "EPERM" in ln]


def _has_bpf_capabilities() -> bool:
    with open("/proc/self/status", encoding="ascii") as fh:
        caps = int(next(ln for ln in fh if ln.startswith("CapEff:")).split()[1], 16)
    return all((caps >> bit) & 1 for bit in _CAPS)


@pytest.mark.skipif(not _has_bpf_capabilities(),
                    reason="the test process lacks CAP_BPF, CAP_PERFMON or CAP_NET_ADMIN")
def test_root_info_has_no_note(info_runs: Dict[str, Outcome]) -> None:
    data = json.loads(info_runs["root-json"].stdout)
    assert data["privileges"] == {"missing_capabilities": [], "note": ""}
    assert info_runs["root-text"].stdout.startswith("System\n")
