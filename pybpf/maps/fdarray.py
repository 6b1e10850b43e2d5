"""Maps whose values are file descriptors on the way in and ids on the way out: program
arrays, perf event arrays, cgroup arrays and maps of maps share this."""

from __future__ import annotations

import ctypes
import struct
from typing import Any, List, NoReturn

from .base import Map
from .spec import MapSpec

__all__ = ["FdValueCodec", "FdArrayMap", "WriteOnlyFdArray", "fd_of"]

_U32 = struct.Struct("=I")


def fd_of(obj: Any) -> int:
    """The descriptor number of ``obj``: an object with ``fileno()`` (a
    :class:`~pybpf.maps.base.Map`, an :class:`~pybpf.syscall.fd.FD`, a program, a
    file) or an ``int``. ``TypeError`` otherwise."""
    if isinstance(obj, int) and not isinstance(obj, bool):
        return obj
    fileno = getattr(obj, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a file descriptor (an int or an object with fileno()), "
                        f"got {type(obj).__name__}")
    return int(fileno())


class FdValueCodec:
    """Values written as descriptors of ``what`` (``"program"``, ``"map"``), read back as
    the kernel reports them: the object's id (or whatever the map type returns)."""

    size = 4

    def __init__(self, owner: str, what: str) -> None:
        self.owner = owner
        self.role = "value"
        self.what = what

    def describe(self) -> str:
        """The expected value, for messages."""
        return f"a {self.what} (an object with fileno(), or an fd number)"

    def pack_into(self, buf: Any, offset: int, obj: Any) -> None:
        """Write the descriptor number of ``obj``."""
        try:
            fd = fd_of(obj)
        except TypeError:
            raise TypeError(f"{self.owner}: value must be {self.describe()}, got "
                            f"{type(obj).__name__}") from None
        except ValueError as exc:           # a closed FD or map
            raise ValueError(f"{self.owner}: value: {exc}") from None
        if not 0 <= fd < (1 << 31):
            raise ValueError(f"{self.owner}: value: {fd} is not a file descriptor")
        _U32.pack_into(buf, offset, fd)

    def unpack(self, buf: Any, offset: int = 0) -> int:
        """The id the kernel wrote."""
        return int(_U32.unpack_from(buf, offset)[0])

    def decode(self, raw: Any) -> int:
        """The id in ``raw``."""
        return self.unpack(raw, 0)

    def decode_many(self, raw: Any, count: int, stride: int = 0) -> List[int]:
        """``count`` ids."""
        return memoryview(raw).cast("B")[:count * 4].cast("I").tolist()

    def encode(self, obj: Any) -> bytes:
        """The descriptor of ``obj`` as 4 bytes."""
        buf = (ctypes.c_char * 4)()
        self.pack_into(buf, 0, obj)
        return buf.raw


class FdArrayMap(Map):
    """Common ground of the descriptor arrays: 4-byte index keys, 4-byte values holding
    descriptors of :attr:`holds`. Unlike plain arrays, slots can be emptied with
    ``del``; an empty slot is absent (``KeyError``)."""

    spec_defaults = {"key": ctypes.c_uint32, "value": 4}
    #: what the values are descriptors of, for messages
    holds = "file"

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if isinstance(spec.key, int) and spec.key == 4:
            spec = spec.copy(key=ctypes.c_uint32)
        if spec.key_size != 4 or spec.value_size != 4:
            raise ValueError(f"{spec.label}: keys are 4-byte indices and values 4-byte "
                             f"descriptors (got key {spec.key_size}, value "
                             f"{spec.value_size} bytes)")
        return spec

    def _value_codec(self, spec: MapSpec) -> Any:
        return FdValueCodec(spec.label, self.holds)


class WriteOnlyFdArray(FdArrayMap):
    """A descriptor array whose slots the kernel does not let user space read (perf event
    and cgroup arrays): lookups raise ``TypeError`` up front instead of the kernel's
    ``ENOTSUPP``. Storing, ``del`` and iterating over the indices work."""

    def _unreadable(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Not available: the kernel does not let user space read these slots."""
        raise TypeError(f"{self.spec.label}: the kernel does not let user space read the "
                        "slots of this map type (store with m[i] = fd, empty with del m[i])")

    __getitem__ = __contains__ = get = lookup = items = values = _unreadable
    lookup_batch = lookup_and_delete_batch = pop = _unreadable

    def keys(self) -> Any:
        """The indices ``0 .. max_entries-1`` (filled or not)."""
        self.fd                     # noqa: B018 - raises once closed
        return iter(range(self.max_entries))

    def __len__(self) -> int:
        self.fd                     # noqa: B018
        return self.max_entries

    def clear(self) -> None:
        """Empty every slot."""
        for i in range(self.max_entries):
            try:
                del self[i]
            except KeyError:
                pass
