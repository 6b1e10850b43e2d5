"""pybpf: a pure-Python eBPF toolkit.

Layers, bottom up (nothing imports upward):

* :mod:`pybpf.asm`: the instruction set, encoder/decoder, assemblers, disassembler (no kernel);
* :mod:`pybpf.syscall`: thin ctypes calls into the kernel (``bpf()`` and friends);
* objects on top of those (maps, programs, links, readers, BTF), then the DSL, the tools in
  ``programs/`` and the ``pybpf`` command line.

Importing :mod:`pybpf` is cheap: nothing parses BTF or ELF, and no submodule beyond this
one is loaded until it is used.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
