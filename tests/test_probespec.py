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


# -- trace's probes (programs/_tracespec.py) ----------------------------------------------
from _tracespec import parse_probe, python_expr  # noqa: E402


@pytest.mark.parametrize("text,kind,library,name,display", [
    ('t:syscalls:sys_enter_openat "%s", args->filename', "t", "", "syscalls:sys_enter_openat",
     "sys_enter_openat"),
    ('u:c:malloc "%d", arg1', "u", "c", "malloc", "malloc"),
    ("r:c:malloc (retval == 0)", "r", "c", "malloc", "malloc"),
    ('p::do_sys_open "%s", arg2', "p", "", "do_sys_open", "do_sys_open"),
    ("do_sys_open", "p", "", "do_sys_open", "do_sys_open"),
    ('c:malloc "%d", arg1', "p", "c", "malloc", "malloc"),
    ("u:/usr/lib/x.so:prov:probe", "u", "/usr/lib/x.so", "prov:probe", "prov:probe"),
])
def test_trace_probe_kinds(text, kind, library, name, display):
    p = parse_probe(text)
    assert (p.kind, p.library, p.name, p.display) == (kind, library, name, display)


def test_trace_format_and_values():
    p = parse_probe('p:c:write (arg3 > 10 && $tgid != 1) "fd=%d n=%lu %x%%", arg1, arg3, '
                    'arg2 & 0xff')
    assert [(c.kind, c.bits) for c in p.conversions] == [("d", 32), ("u", 64), ("x", 32)]
    assert p.format == "fd=%d n=%lu %x%%"
    assert python_expr(p.filter, p) == \
        "((i64(ctx.arg2) > i64(10)) and (i64(pid()) != i64(1)))"
    assert python_expr(p.values[2], p) == "(i64(ctx.arg1) & i64(255))"


def test_trace_signature_names_arguments():
    p = parse_probe('p:c:malloc(size_t size) (size > 4096) "%d", size')
    assert p.params == {"size": 1}
    assert python_expr(p.filter, p) == "(i64(ctx.arg0) > i64(4096))"


def test_trace_precedence_and_unary():
    p = parse_probe("r:c:f (!(retval + 1 * 2 == 3) || -arg1 < ~0)")
    assert python_expr(p.filter, p) == ("((not ((i64(ctx.retval) + (i64(1) * i64(2))) == "
                                        "i64(3))) or ((-i64(ctx.arg0)) < (~i64(0))))")


@pytest.mark.parametrize("text,column,words", [
    ("x:c:malloc", 1, "probe type must be 'p', 'r', 't' or 'u', not 'x'"),
    ("t:sched:", 1, "a tracepoint is t:GROUP:EVENT"),
    ("p:c:malloc+4", 11, "offsets into functions are not supported"),
    ('p:c:malloc "%d"', 12, "the format has 1 conversions but 0 values follow"),
    ('p:c:malloc "%q", arg1', 13, "unsupported conversion '%q'"),
    ('p:c:malloc "%ls", arg1', 13, "unsupported conversion '%ls'"),
    ('p:c:malloc "x', 12, "no closing"),
    ("p:c:malloc (arg1 >", 12, "unbalanced '(' in the filter"),
    ("p:c:malloc (arg1 > )", 20, "the expression ends too early"),
    ("p:c:malloc (arg1 # 2)", 18, "unexpected '#'"),
    ("p:c:malloc (arg7 > 1)", 13, "unsupported 'arg7'"),
    ("p:c:malloc ($task > 1)", 13, "unknown variable '$task'"),
    ("p:c:malloc (retval > 1)", 13, "retval is only known in a return probe"),
    ("t:a:b (arg1 > 1)", 8, "tracepoints have no argN"),
    ("p:c:malloc (args->x > 1)", 13, "args->FIELD is for tracepoints"),
    ("t:a:b(int x)", 6, "take no signature"),
    ('p:c:malloc "%d" arg1', 17, "expected ','"),
    ("p:c:malloc oops", 12, "expected a \"format string\""),
    ("p:c:malloc (arg1 > 1) 2)", 23, "expected a \"format string\""),
    ('p:c:malloc "%d", arg1 arg2', 23, "unexpected 'arg2' after the expression"),
])
def test_trace_bad_probes_name_the_column(text, column, words):
    with pytest.raises(ProbeSpecError) as info:
        parse_probe(text)
    assert info.value.column == column, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"probe {text!r}: column {column}: ")


# -- argdist's specifiers ---------------------------------------------------------------
from _tracespec import parse_argdist  # noqa: E402


def test_argdist_specifier_parts():
    a = parse_argdist("p:c:write(int fd, const void *buf, size_t n):int,size_t:fd,n:"
                      "n > 10#writes", histogram=False)
    assert (a.probe.kind, a.probe.library, a.probe.name) == ("p", "c", "write")
    assert a.probe.params == {"fd": 1, "buf": 2, "n": 3}
    assert a.types == [(32, True), (64, False)] and a.exprs == ["fd", "n"]
    assert a.label == "writes" and not a.default
    assert python_expr(a.probe.filter, a.probe) == "(i64(ctx.arg2) > i64(10))"


def test_argdist_defaults():
    r = parse_argdist("r:c:malloc()", histogram=True)
    assert r.default and r.exprs == ["retval"] and r.types == [(32, True)]
    t = parse_argdist("t:sched:sched_switch()", histogram=False)
    assert t.default and t.exprs == ["1"] and t.probe.name == "sched:sched_switch"
    d = parse_argdist("r:c:read():ssize_t:$retval", histogram=True)
    assert d.probe.values[0].kind == "retval"


@pytest.mark.parametrize("spec,hist,column,words", [
    ("p:c", False, 1, "at least the probe type, library and function signature"),
    ("x:c:f()", False, 1, "probe type must be 'p', 'r', 't' or 'u', not 'x'"),
    ("p:c:f", False, 5, "function signature 'f' has an invalid format"),
    ("p:c:f():int:1:2:3:4", False, 16, "too many ':'-separated parts"),
    ("p:c:f(int x):float:x", False, 14, "unsupported type 'float'"),
    ("p:c:f(int x):int,int:x", False, 22, "2 types but 1 expressions"),
    ("p:c:f(int x,int y):int,int:x,y", True, 28, "a histogram takes one expression"),
    ("p:c:f()", True, 8, "histograms need an expression"),
    ("p:c:f(int x):int", False, 14, "types need expressions after them"),
    ("p:c:f(int x):int:x:y > 1", False, 20, "unsupported 'y'"),
    ("p:c:f(int x):int:retval", False, 18, "retval is only known in a return probe"),
    ("t:a:b():int:arg1", False, 13, "tracepoints have no argN"),
])
def test_argdist_bad_specifiers_name_the_column(spec, hist, column, words):
    with pytest.raises(ProbeSpecError) as info:
        parse_argdist(spec, hist)
    assert info.value.column == column, str(info.value)
    assert words in str(info.value)
    assert str(info.value).startswith(f"probe {spec!r}: column {column}: ")
