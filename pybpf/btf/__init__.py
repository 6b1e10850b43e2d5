"""pybpf.btf: the BPF Type Format, read, resolved, rendered and written.

* :func:`vmlinux` / :func:`load_module`: the kernel's BTF (``/sys/kernel/btf``, Linux
  5.4 / 5.11), parsed lazily and cached per process; :class:`BTF` for any blob;
* :mod:`pybpf.btf.resolve`: field paths (``task_struct.real_parent.tgid``), ``sizeof``,
  ``offsetof``, enum values, bitfields, function prototypes;
* :mod:`pybpf.btf.render`: C text, one type or a whole ``vmlinux.h``;
* :mod:`pybpf.btf.builder`: BTF blobs for pybpf's maps and programs (``BPF_BTF_LOAD``,
  Linux 4.18; func_info/line_info 5.0);
* :mod:`pybpf.btf.targets`: attach target ids for fentry/fexit/tp_btf/LSM/iter.

Importing this package reads nothing and imports only the error classes and
:class:`Kind`; the other submodules (the parser too) are imported when one of their
names is first used.
"""

from __future__ import annotations

from .._lazy import lazy_exports
from .errors import AmbiguousTypeError, BTFError, BTFFormatError, FieldError, TypeNotFoundError
from .format import Kind
from typing import TYPE_CHECKING

if TYPE_CHECKING:                  # pragma: no cover - for type checkers only
    from .parser import BTF, load_module, module_names, vmlinux

__all__ = [
    "BTF", "vmlinux", "load_module", "module_names", "Kind", "BTFError", "BTFFormatError",
    "TypeNotFoundError", "AmbiguousTypeError", "FieldError",
    # lazily imported
    "sizeof", "offsetof", "field_path", "enum_value", "prototype", "FieldPath",
    "render_type", "render_header", "BTFBuilder", "find_target", "Target",
]

_LAZY = {
    "BTF": "parser", "vmlinux": "parser", "load_module": "parser", "module_names": "parser",
    "sizeof": "resolve", "offsetof": "resolve", "field_path": "resolve",
    "enum_value": "resolve", "prototype": "resolve", "FieldPath": "resolve",
    "render_type": "render", "render_header": "render",
    "BTFBuilder": "builder",
    "find_target": "targets", "Target": "targets",
}


__getattr__ = lazy_exports(__name__, _LAZY, globals())
