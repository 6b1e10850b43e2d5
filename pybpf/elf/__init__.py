"""pybpf.elf: reading ELF files for attaching: fast symbol tables
(:mod:`pybpf.elf.symbols`), library resolution through ``ld.so.cache`` and
``/proc/PID/maps`` (:mod:`pybpf.elf.libs`) and USDT notes (:mod:`pybpf.elf.usdt`).
Nothing is imported until a submodule is used."""
