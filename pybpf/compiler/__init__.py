"""The shared BPF compiler: typed IR -> instructions on virtual registers -> register
allocation -> peephole -> linked :mod:`pybpf.asm` instructions, and the lowering
building blocks both front ends use (memory, maps, ring buffer output with the wake-up
rule and drop counting, log2 slots, string tests).

Two front ends lower to it: :mod:`pybpf.dsl` (Python functions) and
:mod:`pybpf.bpftrace` (bpftrace's language). Nothing here imports a front end, and the
front ends never import each other. Importing this package imports nothing else: each
module is imported where it is used (the DSL's cache of compiled programs loads
modules without the compiler's pipeline).
"""
