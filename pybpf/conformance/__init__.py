"""pybpf.conformance: run the BPF ISA conformance suite (bpf_conformance's ``.data``
files) with pybpf's uBPF assembler and a backend that executes programs.

* :mod:`~pybpf.conformance.corpus`: the ``.data`` format;
* :mod:`~pybpf.conformance.kernel`: the Linux backend (XDP + ``BPF_PROG_TEST_RUN``);
* :mod:`~pybpf.conformance.runner`: judging outcomes, running a directory;
* ``python3 -m pybpf.conformance``: a bpf_conformance plugin, or ``--corpus DIR``.
"""

from __future__ import annotations

from .corpus import ConformanceCase, CorpusError, iter_corpus, load_case, parse_case
from .kernel import KERNEL_SKIPS, KernelRunner, build_harness, kernel_unavailable
from .runner import (
    FAIL, PASS, SKIP, SPECIAL_FEATURES, Backend, Outcome, program_features, run_case,
    run_corpus, run_file, skip_reason,
)

__all__ = [
    "ConformanceCase", "CorpusError", "parse_case", "load_case", "iter_corpus",
    "KERNEL_SKIPS", "KernelRunner", "build_harness", "kernel_unavailable", "Backend",
    "Outcome", "run_case", "run_file", "run_corpus", "skip_reason", "program_features",
    "SPECIAL_FEATURES", "PASS", "FAIL", "SKIP",
]
