"""pybpf.object: clang-built, libbpf-style BPF ELF objects.

:func:`read_object` turns an object file into an :class:`ObjectSpec` (programs by
function name, typed by their ``SEC()`` names; BTF-defined and legacy maps; global data
as one-entry array maps; license; version); :meth:`ObjectSpec.load` creates everything
and returns a :class:`Collection` (``maps[name]``, ``programs[name]``,
:meth:`~Collection.attach_all`). A malformed object raises :class:`ObjectError`. :func:`write_object` writes programs and
maps as an object that bpftool and llvm-objdump accept::

    spec = read_object("counter.bpf.o")
    spec.set_global("target_pid", 1234)        # a const volatile in .rodata
    with spec.load() as coll:
        coll.attach_all()
        print(dict(coll.maps["counts"]))
"""

from __future__ import annotations

from .collection import AUTO_ATTACH_KINDS, Collection, load_collection
from .disasm import disasm_object
from .errors import ObjectError
from .reader import read_object
from .sections import SectionKind, classify_section
from .spec import GlobalData, ObjectSpec, ProgramInfo, Variable
from .writer import ObjectProgram, write_object

__all__ = ["read_object", "ObjectSpec", "ObjectError", "Collection", "load_collection",
           "GlobalData", "Variable", "ProgramInfo", "SectionKind", "classify_section",
           "AUTO_ATTACH_KINDS", "write_object", "ObjectProgram",
           "disasm_object"]
