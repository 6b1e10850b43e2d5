"""programs/_probespec.py: the pattern language of funccount and stackcount, good and
bad patterns (errors name the column), and expansion against this machine's
tracepoints and a gcc-built binary's symbols."""

import pytest

import tracerwork  # noqa: F401  (puts programs/ on the import path)
from _probespec import (
    KprobesNeededError, ProbeSpecError, expand, parse_pattern,
)
from pybpf.link.kprobe import kprobes_available


@pytest.mark.parametrize("text,kind,library,name", [
    ("vfs_*", "p", "", "vfs_*"),
    ("p::vfs_read", "p", "", "vfs_read"),
    ("c:malloc", "p", "c", "malloc"),
    ("p:c:malloc", "p", "c", "malloc"),
    ("/usr/bin/bash:readline", "p", "/usr/bin/bash", "readline"),
    ("t:sched:sched_*", "t", "", "sched:sched_*"),
    ("u:/usr/bin/python3:function__entry", "u", "/usr/bin/python3", "function__entry"),
])
def test_good_patterns(text, kind, library, name):
    p = parse_pattern(text)
    assert (p.kind, p.library, p.name, p.text) == (kind, library, name, text)


def test_glob_is_anchored_and_only_star_is_special():
    r = parse_pattern("c:mal*c").regex
    assert r.match("malloc") and r.match("malc") and not r.match("xmalloc")
    assert not parse_pattern("c:a.c").regex.match("abc")     # '.' is literal
    assert parse_pattern("c:a.c", regexp=True).regex.match("abc")
    assert parse_pattern("c:^mall", regexp=True).regex.match("malloc")


@pytest.mark.parametrize("text,column,words", [
    ("", 1, "empty pattern"),
    ("x:y:z", 1, "probe type must be 'p', 't' or 'u', not 'x'"),
    ("a:b:c:d", 6, "too many ':'-separated parts"),
    (":malloc", 1, "empty library"),
    ("t::sched_switch", 3, "empty tracepoint group"),
    ("u::probe", 3, "USDT probes need a binary"),
    ("c:", 3, "the name to match is empty"),
])
def test_bad_patterns_name_the_column(text, column, words):
    with pytest.raises(ProbeSpecError) as info:
        parse_pattern(text)
    e = info.value
    assert e.column == column and words in str(e)
    assert str(e).startswith(f"probe {text!r}: column {column}: ")
    assert "\n" not in str(e)


def test_bad_regexp_points_into_the_name():
    with pytest.raises(ProbeSpecError) as info:
        parse_pattern("c:mal(oc", regexp=True)
    assert info.value.column == 6 and "bad regular expression" in str(info.value)


def test_expand_tracepoints():
    targets = expand(parse_pattern("t:sched:sched_process_*"))
    names = [t.name for t in targets]
    assert "sched:sched_process_fork" in names and "sched:sched_process_exit" in names
    assert all(t.kind == "tracepoint" and t.name.startswith("sched:sched_process_")
               for t in targets)


def test_expand_binary_functions_one_per_address():
    exe = tracerwork.binary()
    targets = expand(parse_pattern(f"{exe}:fc_*"))
    assert sorted(t.name for t in targets) == ["fc_leaf", "fc_mid", "fc_other"]
    assert all(t.kind == "uprobe" and t.path == exe and t.offset > 0 for t in targets)
    assert len({t.offset for t in targets}) == 3


def test_nothing_matches_is_an_error_at_the_name():
    exe = tracerwork.binary()
    with pytest.raises(ProbeSpecError) as info:
        expand(parse_pattern(f"{exe}:nosuch*"))
    assert info.value.column == len(exe) + 2 and "nothing matches" in str(info.value)


def test_unknown_library_is_a_lookup_error():
    with pytest.raises(LookupError):
        expand(parse_pattern("nosuchlibrary_xyz:f"))


@pytest.mark.skipif(not kprobes_available(), reason="this kernel has kprobes")
def test_kernel_functions_without_kprobes():
    with pytest.raises(KprobesNeededError) as info:
        expand(parse_pattern("vfs_*"))
    text = str(info.value)
    assert text.startswith("probe 'vfs_*' needs kprobes") and "\n" not in text
    assert isinstance(info.value, OSError)          # tool_main: one line, status 1
