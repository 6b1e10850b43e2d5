"""Task iterators: the program writes each task's tgid with bpf_seq_write; reading the
iterator returns them, and this process is among them. Iterator programs are
BPF_PROG_TYPE_TRACING, which cannot be loaded on the development machines (EPERM), so
the test runs in the second-kernel stage."""

from __future__ import annotations

import os
import struct

import pytest

from pybpf.asm import R0, R1, R2, R3, R6, R7, R10
from pybpf.asm.builder import DW, W, Label, add, build, call, exit_, jeq, ldx, mov, stx
from pybpf.link.iter import attach_iter
from pybpf.link.tracing import load_tracing
from pybpf.syscall.bpf import ProgType

from bpfenv import refused_here
from linkutil import NoLeaks

NO_ITER = refused_here(ProgType.TRACING, "task iterators")


def _task_tgids_program():
    from pybpf.btf import offsetof, vmlinux
    tgid_at = offsetof(vmlinux(), "task_struct", "tgid")
    return build([
        ldx(DW, R6, R1, 0),              # ctx->meta
        ldx(DW, R7, R1, 8),              # ctx->task
        jeq(R7, 0, "out"),
        ldx(W, R2, R7, tgid_at),
        stx(W, R10, -4, R2),
        ldx(DW, R1, R6, 0),              # meta->seq
        mov(R2, R10), add(R2, -4), mov(R3, 4),
        call("seq_write"),
        Label("out"), mov(R0, 0), exit_(),
    ])


@pytest.mark.vmtest
@pytest.mark.skipif(bool(NO_ITER), reason=NO_ITER)
def test_task_iterator_lists_this_process():
    with load_tracing("iter", "task", _task_tgids_program(), name="tasks") as prog:
        with NoLeaks():
            with attach_iter(prog) as link:
                first = link.read()
                second = link.read()             # each read is a fresh walk
        tgids = [v for (v,) in struct.iter_unpack("<I", first)]
        assert os.getpid() in tgids and 1 in tgids
        assert len(second) > 0 and len(second) % 4 == 0
