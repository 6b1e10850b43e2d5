"""bpftrace's language (0.17) without LLVM: the front end of ``pybpf trace``.

This package is a second front end beside :mod:`pybpf.dsl` (it never imports it):
:mod:`~pybpf.bpftrace.lexer` (tokens with bpftrace's locations),
:mod:`~pybpf.bpftrace.parser` (the grammar of bpftrace 0.17 into the typed tree of
:mod:`~pybpf.bpftrace.ast`), :mod:`~pybpf.bpftrace.preamble` (the ``#include``/``#define``/
``struct`` lines before the probes), :mod:`~pybpf.bpftrace.printer` (the tree back to
source), :mod:`~pybpf.bpftrace.errors` (errors printed as bpftrace prints them), and
the probe layer: :mod:`~pybpf.bpftrace.probes` (attach points parsed and checked),
:mod:`~pybpf.bpftrace.probe_match` (wildcards and probe sources) and
:mod:`~pybpf.bpftrace.listing` (``-l``/``-lv``).
Semantic analysis: :mod:`~pybpf.bpftrace.semantic` (``analyse()``: bpftrace 0.17's
typing rules and messages, with :mod:`~pybpf.bpftrace.types`,
:mod:`~pybpf.bpftrace.structs` and the ``sema_*`` helpers), :mod:`~pybpf.bpftrace.headers`
(macros of included headers) and :mod:`~pybpf.bpftrace.typed_dump` (``-d``'s typed tree).
The runtime's output layer: :mod:`~pybpf.bpftrace.values` (decoded values),
:mod:`~pybpf.bpftrace.printf`, :mod:`~pybpf.bpftrace.output` (text) and
:mod:`~pybpf.bpftrace.json_output` (``-f json``). Lowering and the rest of the runtime
come later. Importing this package loads nothing but itself.
"""
