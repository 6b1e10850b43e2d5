"""``pybpf explain`` and the parser of level 2 verifier logs (pybpf.verifier_states).

The parser is checked on log text of both kernels: Linux 6.18 snippets captured on
this machine, and Linux 6.1 snippets written from 6.1's printing code
(print_verifier_state / print_insn_state in kernel/bpf/verifier.c of v6.1: liveness
suffixes ``_w``/``_rw``, ``ctx(off=0,imm=0)``, ``s32_min=`` bounds, spilled registers by
type name only), since no 6.1 kernel runs here. The kernel tests load real programs
(pybpf's Python language, assembly, a clang-built object) and compare what was parsed
with independent statements of the kernel: the raw log's own tokens, the
``processed N insns`` count (every visit and every pruned visit is one processed
instruction), and the level 1 log of the same refused program, which holds exactly the
path that failed (the kernel rewinds that log when it takes up another branch).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from bpfenv import needs_bpf
from pybpf.verifier_states import parse_state, parse_states, parse_value

ROOT = Path(__file__).resolve().parent.parent

# -- Linux 6.18, captured here (a pybpf Python program, log level 2; lines left out,
# and the processed count set to the visits kept) --------------------------------------
LOG_618 = """\
func#0 @0
Live regs before insn:
      0: .1........ (bf) r6 = r1
      1: ......6... (61) r1 = *(u32 *)(r6 +0)
0: R1=ctx() R10=fp0
; def count_proto(ctx): @ good.py:11
0: (bf) r6 = r1                       ; R1=ctx() R6=ctx()
; h = ctx.load(Byte, 12) @ good.py:12
1: (61) r1 = *(u32 *)(r6 +0)          ; R1=pkt(r=0) R6=ctx()
2: (61) r2 = *(u32 *)(r6 +4)          ; R2=pkt_end() R6=ctx()
3: (bf) r3 = r1                       ; R1=pkt(r=0) R3=pkt(r=0)
4: (07) r3 += 12                      ; R3=pkt(off=12,r=0)
5: (bf) r1 = r3                       ; R1=pkt(off=12,r=0) R3=pkt(off=12,r=0)
6: (07) r1 += 1                       ; R1=pkt(off=13,r=0)
7: (bd) if r1 <= r2 goto pc+1         ; R1=pkt(off=13,r=0xfffffffffffffffe) R2=pkt_end()
8: (b7) r3 = 0                        ; R3=0
9: (bf) r1 = r3                       ; R1=0 R3=0
; if h: @ good.py:13
10: (15) if r1 == 0x0 goto pc+34
mark_precise: frame0: last_idx 10 first_idx 0 subseq_idx -1 
mark_precise: frame0: regs=r1 stack= before 9: (bf) r1 = r3
10: R1=0
; return 2 @ good.py:20
45: (b7) r0 = 2                       ; R0=2
46: (95) exit

from 7 to 9: R1=pkt(off=13,r=13) R2=pkt_end() R3=pkt(off=12,r=13) R6=ctx() R10=fp0
9: R1=pkt(off=13,r=13) R2=pkt_end() R3=pkt(off=12,r=13) R6=ctx() R10=fp0
9: (bf) r1 = r3                       ; R1=pkt(off=12,r=13) R3=pkt(off=12,r=13)
10: (15) if r1 == 0x0 goto pc+34      ; R1=pkt(off=12,r=13)
11: (71) r2 = *(u8 *)(r1 +0)          ; R1=pkt(off=12,r=13) R2=scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))
12: (57) r2 &= 255                    ; R2=scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))
13: (bc) w6 = w2                      ; R2=scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff)) R6=scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))
14: (63) *(u32 *)(r10 -8) = r6        ; R6=scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff)) R10=fp0 fp-8=????scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))
15: (18) r1 = 0xffff8881030eb800      ; R1=map_ptr(map=counts,ks=4,vs=8)
17: (bf) r2 = r10                     ; R2=fp0 R10=fp0
18: (07) r2 += -8                     ; R2=fp-8
19: (85) call bpf_map_lookup_elem#1   ; R0=map_value_or_null(id=2,map=counts,ks=4,vs=8)
20: (bf) r7 = r0                      ; R0=map_value_or_null(id=2,map=counts,ks=4,vs=8) R7=map_value_or_null(id=2,map=counts,ks=4,vs=8)
21: (55) if r7 != 0x0 goto pc+11      ; R7=0
22: (05) goto pc+22
45: safe
(0) frame 0 insn 21 +live -8 
(0) live stack update done in 2 iterations

from 21 to 33: R0=map_value(map=counts,ks=4,vs=8) R6=scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff)) R7=map_value(map=counts,ks=4,vs=8) R10=fp0 fp-8=????scalar(id=1,smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))
33: (79) r1 = *(u64 *)(r7 +0)         ; R1=scalar() R7=map_value(map=counts,ks=4,vs=8)
34: (07) r1 += 1                      ; R1=scalar()
35: (7b) *(u64 *)(r10 -16) = r1       ; R1=scalar(id=3) R10=fp0 fp-16=scalar(id=3)
36: (05) goto pc+8
45: safe

from 10 to 45: safe
processed 33 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 0
"""

# -- Linux 6.18, captured here: a BPF-to-BPF call (an assembly file; the liveness table
# and source lines left out) -----------------------------------------------------------
LOG_618_CALL = """\
func#0 @0
func#1 @8
0: R1=ctx() R10=fp0
0: (b7) r6 = 7                        ; R6=7
1: (b7) r1 = 5                        ; R1=5
2: (85) call pc+5
R2 is not a scalar
caller:
 R6=7 R10=fp0
callee:
 frame1: R1=5 R10=fp0
8: frame1: R1=5 R10=fp0
8: (bf) r0 = r1                       ; frame1: R0=5 R1=5
9: (57) r0 &= 15                      ; frame1: R0=5
10: (95) exit
returning from callee:
 frame1: R0=5 R1=5 R10=fp0
to caller at 3:
 R0=5 R6=7 R10=fp0

from 10 to 3: R0=5 R6=7 R10=fp0
3: (25) if r0 > 0xa goto pc+2
mark_precise: frame0: last_idx 3 first_idx 0 subseq_idx -1 
mark_precise: frame0: regs=r0 stack= before 10: (95) exit
3: R0=5
4: (0f) r0 += r6                      ; R0=12 R6=7
5: (95) exit
processed 9 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""

# the end of a second walk through a call (runqlat's sched_wakeup): the return is pruned
LOG_618_RETURN_SAFE = """\
60: (95) exit
returning from callee:
 frame1: R0=0 R6=scalar(id=7,smin=0xffffffff80000000,smax=0x7fffffff) R10=fp0 fp-8=scalar(id=9) fp-16=????scalar(id=10,smin=0,smax=umax=0xffffffff,var_off=(0x0; 0xffffffff))
to caller at 29:
 R0=0 R6=ctx() R7=scalar(id=7,smin=0xffffffff80000000,smax=0x7fffffff) R10=fp0 fp-8=????mmmm

from 60 to 29: safe
processed 2 insns (limit 1000000) max_states_per_insn 0 total_states 3 peak_states 3 mark_read 0
"""

# -- Linux 6.1, written from v6.1's printing code (no 6.1 kernel here: see above) -------
LOG_61 = """\
func#0 @0
0: R1=ctx(off=0,imm=0) R10=fp0
0: (b7) r6 = 0                        ; R6_w=0
1: (63) *(u32 *)(r10 -4) = r6         ; R6_w=0 R10=fp0 fp-8=0000????
2: (bf) r2 = r10                      ; R2_w=fp0 R10=fp0
3: (07) r2 += -4                      ; R2_w=fp-4
4: (18) r1 = 0xffff8881022e3c00       ; R1_w=map_ptr(off=0,ks=4,vs=8,imm=0)
6: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)
7: (15) if r0 == 0x0 goto pc+4        ; R0_w=map_value(off=0,ks=4,vs=8,imm=0)
8: (71) r1 = *(u8 *)(r0 +0)           ; R0_w=map_value(off=0,ks=4,vs=8,imm=0) R1_w=scalar(umax=255,var_off=(0x0; 0xff))
9: (57) r1 &= 15                      ; R1_w=scalar(umax=15,var_off=(0x0; 0xf))
10: (7b) *(u64 *)(r10 -16) = r1       ; R1_w=scalar(umax=15,var_off=(0x0; 0xf)) R10=fp0 fp-16_w=
11: (7b) *(u64 *)(r10 -24) = r0       ; R0_w=map_value(off=0,ks=4,vs=8,imm=0) R10=fp0 fp-24_w=map_value
12: (b7) r0 = 0                       ; R0_rw=P0
13: (95) exit

from 7 to 12: R0_w=P0 R6_w=0 R10=fp0 fp-8=0000????
12: safe
processed 14 insns (limit 1000000) max_states_per_insn 0 total_states 1 peak_states 1 mark_read 1
"""

LOG_61_REFUSED = """\
0: R1=ctx(off=0,imm=0) R10=fp0
0: (62) *(u32 *)(r10 -4) = 0          ; R10=fp0 fp-8=0000????
1: (bf) r2 = r10                      ; R2_w=fp0 R10=fp0
2: (07) r2 += -4                      ; R2_w=fp-4
3: (18) r1 = 0xffff8881022e3c00       ; R1_w=map_ptr(off=0,ks=4,vs=8,imm=0)
5: (85) call bpf_map_lookup_elem#1    ; R0_w=map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)
6: (79) r1 = *(u64 *)(r0 +0)
R0 invalid mem access 'map_value_or_null'
processed 6 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0
"""


def _visit(trace, index, path=None):
    found = [v for v in trace.visits if v.index == index and path in (None, v.path)]
    assert found, f"no visit of {index}"
    return found[0]


def test_values_of_both_printers() -> None:
    v = parse_value("scalar(smin=smin32=0,smax=umax=smax32=umax32=255,var_off=(0x0; 0xff))")
    assert v.type == "scalar" and v.umax == 255 and v.bounds["smin32"] == 0
    assert (v.var_off.value, v.var_off.mask) == (0, 0xFF)
    old = parse_value("scalar(umax=255,var_off=(0x0; 0xff),s32_min=-3,u32_max=7)", "w")
    assert old.umax == 255 and old.bounds["smin32"] == -3 and old.bounds["umax32"] == 7
    assert old.live == "w"
    assert parse_value("map_value_or_null(id=1,off=0,ks=4,vs=8,imm=0)").fields == \
        {"id": 1, "off": 0, "ks": 4, "vs": 8, "imm": 0}
    assert parse_value("P7").const == 7 and parse_value("P7").precise
    assert (parse_value("fp-8").type, parse_value("fp-8").const) == ("fp", -8)
    assert parse_value("pkt(off=13,r=0xfffffffffffffffe)").fields["r"] == -2
    assert parse_value("scalar(smin=0,smax=umax=0xffffffff)").umax == 0xFFFFFFFF
    wide = parse_value("scalar(smin=0xffffffff80000000,smax=0x7fffffff,smin32=0x80000000)")
    assert wide.bounds == {"smin": -(1 << 31), "smax": (1 << 31) - 1, "smin32": -(1 << 31)}
    state = parse_state(" frame1: R1_w=ctx(off=0,imm=0) fp-8_rw=mmmmmmmm fp-16=???"
                        "?scalar(id=1) fp-24_w=map_value fp-32_w=P refs=2,3 cb")
    assert state.frame == 1 and state.regs[1].type == "ctx" and state.regs[1].live == "w"
    assert state.stack[-8].kind == "bytes" and state.stack[-8].live == "rw"
    assert state.stack[-16].value.fields["id"] == 1 and state.stack[-16].bytes == "????"
    assert state.stack[-24].value.type == "map_value"
    assert state.stack[-32].value.precise and state.refs == [2, 3]
    assert state.marks == ["cb"]


def test_log_of_linux_6_18() -> None:
    trace = parse_states(LOG_618, refused=False)
    assert trace.failure is None
    # every visit and every prune is one processed instruction
    assert len(trace.visits) + len(trace.prunes) == trace.stats["processed"] == 33
    assert trace.stats["peak_states"] == 3 and trace.live[1] == "6"
    assert [(b.source, b.target, b.pruned) for b in trace.branches] == \
        [(7, 9, False), (21, 33, False), (10, 45, True)]
    assert [p.index for p in trace.prunes] == [45, 45, 45]
    first = _visit(trace, 10, 0)
    assert first.before.regs[1].const == 0 and first.notes[0].startswith("mark_precise")
    assert _visit(trace, 13).before.regs[2].umax == 255          # after r2 &= 255
    assert _visit(trace, 20).before.regs[0].type == "map_value_or_null"
    assert 1 not in _visit(trace, 20).before.regs                  # the call clobbers R1
    taken = _visit(trace, 33)                                      # the non-null branch
    assert taken.before.regs[7].type == "map_value"
    assert trace.paths[taken.path] == _visit(trace, 21).seq
    assert _visit(trace, 22).before.regs[7].const == 0             # fall-through: NULL
    assert trace.path_to(_visit(trace, 35).seq)[-3:] == \
        [_visit(trace, 33).seq, _visit(trace, 34).seq, _visit(trace, 35).seq]
    json.dumps(trace.to_dict())


def test_log_of_linux_6_18_call() -> None:
    trace = parse_states(LOG_618_CALL)
    assert trace.failure is None and not trace.branches     # the return is no branch
    assert [(v.index, v.before.frame) for v in trace.visits] == \
        [(0, 0), (1, 0), (2, 0), (8, 1), (9, 1), (10, 1), (3, 0), (4, 0), (5, 0)]
    assert len(trace.visits) == trace.stats["processed"]
    callee = _visit(trace, 8).before
    assert callee.regs[1].const == 5 and 6 not in callee.regs    # the callee's own frame
    back = _visit(trace, 3).before
    assert back.regs[0].const == 5 and back.regs[6].const == 7
    assert trace.path_to(_visit(trace, 5).seq) == list(range(9))


def test_log_of_linux_6_18_return_pruned() -> None:
    trace = parse_states(LOG_618_RETURN_SAFE)
    assert trace.failure is None and not trace.branches
    assert [(p.index, p.source) for p in trace.prunes] == [(29, 60)]
    assert len(trace.visits) + len(trace.prunes) == trace.stats["processed"]


def test_log_of_linux_6_1() -> None:
    trace = parse_states(LOG_61)
    assert trace.failure is None
    assert len(trace.visits) + len(trace.prunes) == trace.stats["processed"]
    assert _visit(trace, 0).before.regs[1].fields == {"off": 0, "imm": 0}
    assert _visit(trace, 7).before.regs[0].type == "map_value_or_null"
    assert _visit(trace, 8).before.regs[0].type == "map_value"
    assert _visit(trace, 10).before.regs[1].umax == 15
    assert _visit(trace, 12).before.stack[-24].value.type == "map_value"
    assert _visit(trace, 13).before.regs[0].precise
    assert trace.branches[0].source == 7 and trace.branches[0].parent == _visit(trace, 7).seq
    assert trace.prunes[0].index == 12
    refused = parse_states(LOG_61_REFUSED)
    assert refused.failure.index == 6 and refused.failure.path == [0, 1, 2, 3, 5, 6]
    assert "map_value_or_null" in refused.failure.complaint


# -- real programs ------------------------------------------------------------------------
PY_PROGRAMS = '''\
from pybpf.dsl import HashMap, Struct, u8, u32, u64, xdp

counts = HashMap(u32, u64, max_entries=16)


class Byte(Struct):
    b: u8


class Len32(Struct):
    n: u32


@xdp()
def count_proto(ctx):
    h = ctx.load(Byte, 12)
    if h:
        k = u32(h.b & 0xFF)
        v = counts.get(k)
        if v is None:
            counts[k] = 1
        else:
            counts[k] = v[0] + 1
    return 2


@xdp()
def unbounded(ctx):
    h = ctx.load(Len32, 0)
    if h:
        n = h.n
        b = ctx.load(Byte, n)
        if b:
            return b.b
    return 2
'''

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

BAD_S = """\
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 14
    if r4 > r3 goto out
    r5 = *(u8 *)(r2 + 12)
    if r5 == 1 goto out
    r5 = *(u8 *)(r2 + 20)
out:
    r0 = 2
    exit
"""

# a loop whose fourth round reads past the checked bytes, behind two branches
LOOP_S = """\
    r2 = *(u32 *)(r1 + 0)
    r3 = *(u32 *)(r1 + 4)
    r4 = r2
    r4 += 16
    if r4 > r3 goto out
    r5 = *(u8 *)(r2 + 12)
    if r5 == 1 goto one
    if r5 == 2 goto two
    r0 = *(u8 *)(r2 + 13)
    goto done
one:
    r0 = *(u8 *)(r2 + 14)
    goto done
two:
    r6 = 0
loop:
    r6 += 4
    r0 = r2
    r0 += r6
    r0 = *(u8 *)(r0 + 0)
    if r6 < 24 goto loop
done:
    exit
out:
    r0 = 2
    exit
"""

C_PROGRAMS = r"""
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 16);
    __type(key, __u32);
    __type(value, __u64);
} counts SEC(".maps");

SEC("xdp")
int count_first(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    unsigned char *p = data;
    if (data + 14 > end)
        return XDP_PASS;
    __u32 key = p[12] & 0xff;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    if (v)
        __sync_fetch_and_add(v, 1);
    return XDP_PASS;
}

SEC("xdp")
int no_null_check(struct xdp_md *ctx)
{
    __u32 key = 1;
    __u64 *v = bpf_map_lookup_elem(&counts, &key);
    return *v ? XDP_PASS : XDP_DROP;
}

char LICENSE[] SEC("license") = "GPL";
"""


def _logged(report, visit, reg):
    """The value of the token ``R<reg>=...`` (6.1: ``R<reg>_w=...``) the log printed
    after visit's instruction."""
    line = report.log.split("\n")[visit.line]
    found = re.search(rf"  ; .*\bR{reg}(?:_[rwD]+)?=((?:[^\s;]|; ?)+)", line)
    assert found, line
    return found.group(1)


def _consistent(report) -> None:
    trace = report.trace
    assert len(trace.visits) + len(trace.prunes) == trace.stats["processed"]
    json.dumps(report.to_dict())


def _level1_path(spec, maps=None):
    """The failing path as the kernel's level 1 log shows it (and its failing index)."""
    from pybpf.program import VerifierError
    with pytest.raises(VerifierError) as info:
        spec.load(maps=maps)
    return [e.index for e in info.value.entries], info.value.failing_index


@pytest.fixture(scope="module")
def py_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("explain") / "progs.py"
    path.write_text(PY_PROGRAMS)
    return path


@needs_bpf
@pytest.mark.vmtest            # the 6.1 printer too (scripts/vmtest.sh)
def test_python_program_accepted(py_file) -> None:
    from pybpf.explain import explain_file
    [report] = explain_file(str(py_file), function="count_proto")
    assert report.accepted and report.jited_len > 0 and report.trace.failure is None
    _consistent(report)
    trace = report.trace
    masked = next(v for v in trace.visits if v.text == "r2 &= 255")
    assert masked.after.regs[2].umax == 255
    assert masked.after.regs[2].text == _logged(report, masked, 2)
    call = next(v for v in trace.visits if v.text.startswith("call bpf_map_lookup_elem"))
    assert call.after.regs[0].type == "map_value_or_null"
    assert call.after.regs[0].text == _logged(report, call, 0)
    check = next(v for v in trace.visits if v.text.startswith("if r7 != 0x0"))
    [branch] = [b for b in trace.branches if b.parent == check.seq]
    first = next(v for v in trace.visits if v.path == branch.path)
    assert first.index == branch.target and first.before.regs[7].type == "map_value"
    after = next(v for v in trace.visits if v.seq == check.seq + 1)
    assert after.before.regs[7].const == 0          # the fall-through path: NULL
    src = report.source_of(masked.index)
    assert src is not None and "h.b & 0xFF" in src.text


@needs_bpf
@pytest.mark.vmtest            # the 6.1 printer too (scripts/vmtest.sh)
def test_python_program_refused(py_file) -> None:
    from pybpf.dsl.loader import compile_module
    from pybpf.dsl.userfile import import_user_file
    from pybpf.explain import explain_file
    [report] = explain_file(str(py_file), function="unbounded")
    assert not report.accepted and report.jited_len is None
    _consistent(report)
    fail = report.trace.failure
    module = import_user_file(str(py_file), "_explain_test_")
    spec = compile_module([module.unbounded]).programs["unbounded"].spec()
    path, failing = _level1_path(spec)
    assert fail.path == path and fail.path[-1] == fail.index == failing
    assert "outside of the packet" in fail.complaint
    assert report.source_of(fail.index).text.strip() == "return b.b"


@needs_bpf
@pytest.mark.vmtest            # the 6.1 printer too (scripts/vmtest.sh)
def test_assembly_programs(tmp_path) -> None:
    from pybpf.asm.assembler import assemble
    from pybpf.explain import explain_file
    from pybpf.program import ProgramSpec
    from pybpf.syscall.bpf import ProgType
    good, bad = tmp_path / "good.s", tmp_path / "bad.s"
    good.write_text(GOOD_S)
    bad.write_text(BAD_S)
    [ok] = explain_file(str(good))
    assert ok.accepted and ok.jited_len > 0
    _consistent(ok)
    read = _visit(ok.trace, 5)               # fall-through of the bounds check
    assert read.before.regs[4].fields["r"] == 14
    assert read.before.regs[4].text == _logged(ok, _visit(ok.trace, 4), 4)
    assert _visit(ok.trace, 7).before.regs[5].umax == 255
    [refused] = explain_file(str(bad))
    _consistent(refused)
    path, failing = _level1_path(ProgramSpec(ProgType.XDP, assemble(BAD_S)))
    assert refused.trace.failure.path == path and path[-1] == failing == 7
    assert refused.source_of(7).line == 8
    loop = tmp_path / "loop.s"
    loop.write_text(LOOP_S)
    [looped] = explain_file(str(loop))
    _consistent(looped)
    path, failing = _level1_path(ProgramSpec(ProgType.XDP, assemble(LOOP_S)))
    assert looped.trace.failure.path == path and path.count(16) == 4
    rounds = [v.before.regs[6].const for v in looped.trace.visits if v.index == 14]
    assert rounds == [4, 8, 12, 16]             # r6 before each r0 = r2 of the loop


def _clang() -> str:
    return shutil.which("clang-19") or ""


@needs_bpf
@pytest.mark.vmtest            # the 6.1 printer too (scripts/vmtest.sh)
@pytest.mark.skipif(not _clang(), reason="clang-19 is not installed")
def test_clang_object(tmp_path) -> None:
    from pybpf.explain import explain_file
    from pybpf.object import load_collection, read_object
    src, obj = tmp_path / "progs.c", tmp_path / "progs.o"
    src.write_text(C_PROGRAMS)
    arch = f"/usr/include/{os.uname().machine}-linux-gnu"
    subprocess.run([_clang(), "-target", "bpf", "-O2", "-g", "-c", str(src), "-o",
                    str(obj), f"-I{arch}"], check=True)
    ok, refused = explain_file(str(obj))
    assert ok.name == "count_first" and ok.accepted and ok.jited_len > 0
    _consistent(ok)
    call = next(v for v in ok.trace.visits if v.text.startswith("call bpf_map_lookup"))
    assert call.after.regs[0].type == "map_value_or_null"
    check = next(v for v in ok.trace.visits if v.seq == call.seq + 1)
    assert check.text.startswith("if r0 == 0x0")
    inside = next(v for v in ok.trace.visits if v.seq == check.seq + 1)
    assert inside.before.regs[0].type == "map_value"        # fall-through: not NULL
    assert inside.before.regs[0].text == _logged(ok, check, 0)
    assert ok.source_of(check.index).file.endswith("progs.c")
    _consistent(refused)
    spec = read_object(str(obj))
    with load_collection(spec, programs=[]) as coll:
        path, failing = _level1_path(spec.programs["no_null_check"], coll.maps)
    assert refused.trace.failure.path == path and path[-1] == failing
    assert "map_value_or_null" in refused.trace.failure.complaint
    assert "*v" in refused.source_of(failing).text


# -- the command ---------------------------------------------------------------------------
def _cli(*args: str, env_extra=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), **(env_extra or {}))
    return subprocess.run([sys.executable, "-m", "pybpf", *args], capture_output=True,
                          text=True, env=env, timeout=120)


@needs_bpf
def test_cli_text_and_json(tmp_path, py_file) -> None:
    bad = tmp_path / "bad.s"
    bad.write_text(BAD_S)
    out = _cli("explain", str(bad))
    assert out.returncode == 0, out.stderr
    assert "\033[" not in out.stdout                # not a terminal: no colour
    assert "program bad (xdp): refused" in out.stdout
    assert "refused at instruction 7" in out.stdout
    assert "bad.s:8: r5 = *(u8 *)(r2 + 20)" in out.stdout
    assert "path: 0-7" in out.stdout and "outside of the packet" in out.stdout
    dest = tmp_path / "out.json"
    out = _cli("explain", str(py_file), "--json", str(dest))
    assert out.returncode == 0, out.stderr
    assert "program count_proto" in out.stdout and "program unbounded" in out.stdout
    assert re.search(r"JIT-ed \d+ bytes", out.stdout)
    data = json.loads(dest.read_text())
    good, refused = data["programs"]
    assert good["accepted"] and good["jited_len"] > 0 and good["failure"] is None
    trace = good["trace"]
    masked = next(v for v in trace["visits"] if v["text"] == "r2 &= 255")
    assert trace["values"][masked["after"]["regs"]["R2"]]["bounds"]["umax"] == 255
    assert any(line["text"] == "k = u32(h.b & 0xFF)" for line in good["lines"])
    fail = refused["failure"]
    assert fail["path"][-1] == fail["index"] and fail["source"]["text"] == "return b.b"


def test_cli_colour_and_errors(tmp_path) -> None:
    import io

    from pybpf.cli.explain_cmd import _colour_wanted

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True
    old = os.environ.pop("NO_COLOR", None)
    try:
        assert _colour_wanted(Tty()) and not _colour_wanted(io.StringIO())
        os.environ["NO_COLOR"] = "1"
        assert not _colour_wanted(Tty())
    finally:
        os.environ.pop("NO_COLOR", None)
        if old is not None:
            os.environ["NO_COLOR"] = old
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    for args, words in (((str(tmp_path / "missing.py"),), "no such file"),
                        ((str(text),), "not a Python file"),
                        ((str(text), "--type", "nonsense"), "not a program type")):
        out = _cli("explain", *args)
        lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
        assert out.returncode == 1 and len(lines) == 1 and words in lines[0], out.stderr
        assert "Traceback" not in out.stderr


@needs_bpf
def test_cli_compile_error_is_one_line(tmp_path) -> None:
    bad = tmp_path / "oops.py"
    bad.write_text("from pybpf.dsl import xdp\n\n\n@xdp()\ndef f(ctx):\n    return nope\n")
    out = _cli("explain", str(bad))
    lines = [ln for ln in out.stderr.splitlines() if ln.strip()]
    assert out.returncode == 1 and len(lines) == 1 and "oops.py:6" in lines[0], out.stderr


@needs_bpf
def test_largest_tool() -> None:
    """execsnoop: the longest walk of the tools (its bounded argument loop)."""
    from pybpf.explain import explain_file
    reports = explain_file(str(ROOT / "programs" / "execsnoop.py"))
    assert reports and all(r.accepted and r.jited_len > 0 for r in reports)
    for r in reports:
        _consistent(r)
        assert len({v.index for v in r.trace.visits}) <= len(r.instructions)


def test_layers() -> None:
    """pybpf.explain is a top layer: only the command imports it; the log parser
    imports nothing but the verifier module beside it."""
    from test_compiler_layers import imports_of, modules_under, offending
    users = [p for p in modules_under() if not p.endswith(
        (os.sep + "explain.py", os.sep + "explain_cmd.py"))]
    assert offending(users, ("pybpf.explain", "pybpf.explain_html",
                             "pybpf.explain_trace")) == []
    parser = str(ROOT / "pybpf" / "verifier_states.py")
    assert {m for _, m in imports_of(parser) if m.startswith("pybpf")} <= \
        {"pybpf.verifier", "pybpf.verifier.parse_verifier_log"}


def test_import_stays_light() -> None:
    code = ("import sys, pybpf, pybpf.program, pybpf.cli; "
            "from pybpf.cli import build_parser; build_parser(only='list'); "
            "bad = [m for m in ('pybpf.verifier_states', 'pybpf.explain', "
            "'pybpf.explain_html', 'pybpf.explain_trace', "
            "'pybpf.cli.explain_cmd') if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))
    assert out.stdout.strip() == "[]", out.stderr
