"""pybpf.object: clang-built, libbpf-style BPF ELF objects.

:func:`read_object` turns an object file into an :class:`ObjectSpec` (programs by
function name, typed by their ``SEC()`` names; BTF-defined and legacy maps; global data
as one-entry array maps; license; version); :meth:`ObjectSpec.load` creates everything
and returns a :class:`Collection` (``maps[name]``, ``programs[name]``,
:meth:`~Collection.attach_all`). The object's BTF, func_info and line_info go to the
kernel with the programs (C lines in ``bpftool prog dump xlated`` and in verifier
errors); ``__kconfig``/``__ksym`` externs, every CO-RE relocation kind and initialised
``.values`` are supported. A malformed object raises :class:`ObjectError`.

:func:`build_object` writes programs (with subprograms), maps and global data, plus
``.BTF.ext`` line information from the instructions' sources, as an object that
bpftool, llvm-objdump and :func:`read_object` accept (:func:`write_object` is its older,
maps-only form)::

    spec = read_object("counter.bpf.o")
    spec.set_global("target_pid", 1234)        # a const volatile in .rodata
    with spec.load() as coll:
        coll.attach_all()
        print(dict(coll.maps["counts"]))

    build_object([ObjectProgram("xdp", "pass_all", instructions)],
                 data={".rodata": b"..."}, path="out.o")
"""

from __future__ import annotations

from .collection import AUTO_ATTACH_KINDS, Collection, load_collection
from .disasm import disasm_object
from .errors import ObjectError
from .reader import read_object
from .sections import SectionKind, classify_section
from .spec import GlobalData, ObjectSpec, ProgramInfo, Variable
from .externs import Extern, ExternError
from .writer import ObjectProgram, ObjectWriteError, build_object, section_for, write_object

__all__ = ["read_object", "ObjectSpec", "ObjectError", "Collection", "load_collection",
           "GlobalData", "Variable", "ProgramInfo", "SectionKind", "classify_section",
           "AUTO_ATTACH_KINDS", "write_object", "build_object", "ObjectProgram",
           "ObjectWriteError", "section_for", "Extern", "ExternError", "disasm_object"]
