"""pybpf.elf: reading ELF files for attaching: fast symbol tables
(:mod:`pybpf.elf.symbols`), library resolution through ``ld.so.cache`` and
``/proc/PID/maps`` (:mod:`pybpf.elf.libs`), USDT notes (:mod:`pybpf.elf.usdt`), the function
symbols uprobe listers see (:mod:`pybpf.elf.functions`) and the
check that a file holds what its headers point at (:mod:`pybpf.elf.layout`).
Nothing is imported until a submodule is used."""
