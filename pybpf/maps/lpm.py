"""Longest-prefix-match tries (``BPF_MAP_TYPE_LPM_TRIE``): routing-table style maps."""

from __future__ import annotations

import ipaddress
import struct
from typing import Any, List, NamedTuple, Optional

from ..syscall.bpf import MapFlags, MapType
from .base import Map
from .spec import MapSpec

__all__ = ["LPMKey", "LPMCodec", "LPMTrieMap"]

_U32 = struct.Struct("=I")
_BYTES_LIKE = (bytes, bytearray, memoryview)
_NETWORKS = (ipaddress.IPv4Network, ipaddress.IPv6Network, ipaddress.IPv4Interface,
             ipaddress.IPv6Interface)
_ADDRESSES = (ipaddress.IPv4Address, ipaddress.IPv6Address)


class LPMKey(NamedTuple):
    """A trie key: ``prefixlen`` leading bits of ``data`` count. ``str()`` shows IPv4 and
    IPv6 prefixes as ``"10.0.0.0/8"``."""

    prefixlen: int
    data: bytes

    def __str__(self) -> str:
        if len(self.data) in (4, 16):
            return f"{ipaddress.ip_address(self.data)}/{self.prefixlen}"
        return f"{self.data.hex()}/{self.prefixlen}"


class LPMCodec:
    """Keys of a trie whose data has ``data_size`` bytes: ``struct { u32 prefixlen;
    u8 data[data_size]; }`` in the kernel. Accepts an :class:`LPMKey` or a
    ``(prefixlen, data)`` tuple (``data``: bytes, or an IP address as text or
    ``ipaddress`` object), an IP network (``"10.0.0.0/8"``, ``ip_network(...)``), a
    bare address (full prefix), or the raw key bytes. Reads back :class:`LPMKey`."""

    def __init__(self, data_size: int, owner: str) -> None:
        self.data_size = data_size
        self.size = 4 + data_size
        self.owner = owner
        self.role = "key"

    def describe(self) -> str:
        """The expected key, for messages."""
        text = (f"an LPM key: (prefixlen, {self.data_size} data bytes)")
        if self.data_size in (4, 16):
            text += " or an IPv%d prefix such as %r" % (
                4 if self.data_size == 4 else 6,
                "10.0.0.0/8" if self.data_size == 4 else "2001:db8::/32")
        return text

    def _fail(self, obj: Any, why: str = "") -> Exception:
        head = f"{self.owner}: key must be {self.describe()}"
        if why:
            return ValueError(f"{head}: {why}")
        return TypeError(f"{head}, got {type(obj).__name__} {obj!r:.60}")

    def _data(self, obj: Any) -> bytes:
        if isinstance(obj, _BYTES_LIKE):
            data = bytes(obj)
        elif isinstance(obj, _ADDRESSES):
            data = obj.packed
        elif isinstance(obj, str):
            try:
                data = ipaddress.ip_address(obj).packed
            except ValueError:
                raise self._fail(obj, f"{obj!r} is not an IP address") from None
        else:
            raise self._fail(obj)
        if len(data) != self.data_size:
            raise self._fail(obj, f"the data has {len(data)} bytes, not {self.data_size}")
        return data

    def split(self, obj: Any) -> LPMKey:
        """``obj`` as an :class:`LPMKey` (checked)."""
        if isinstance(obj, _BYTES_LIKE) and len(obj) == self.size:
            raw = bytes(obj)
            return LPMKey(_U32.unpack_from(raw)[0], raw[4:])
        if isinstance(obj, tuple) and len(obj) == 2:
            prefixlen, data = obj
            if not isinstance(prefixlen, int) or isinstance(prefixlen, bool):
                raise self._fail(obj)
            key = LPMKey(prefixlen, self._data(data))
        elif isinstance(obj, str) and "/" in obj or isinstance(obj, _NETWORKS):
            try:
                net = ipaddress.ip_interface(obj).network if isinstance(obj, str) else obj
            except ValueError:
                raise self._fail(obj, f"{obj!r} is not an IP prefix") from None
            if isinstance(net, (ipaddress.IPv4Interface, ipaddress.IPv6Interface)):
                net = net.network
            key = LPMKey(net.prefixlen, self._data(net.network_address))
        elif isinstance(obj, (str,) + _ADDRESSES):
            data = self._data(obj)
            key = LPMKey(8 * self.data_size, data)
        else:
            raise self._fail(obj)
        if not 0 <= key.prefixlen <= 8 * self.data_size:
            raise self._fail(obj, f"prefixlen {key.prefixlen} is not in 0..{8 * self.data_size}")
        return key

    def pack_into(self, buf: Any, offset: int, obj: Any) -> None:
        """Write the key ``obj``."""
        key = self.split(obj)
        _U32.pack_into(buf, offset, key.prefixlen)
        memoryview(buf).cast("B")[offset + 4:offset + self.size] = key.data

    def encode(self, obj: Any) -> bytes:
        """The key as bytes."""
        key = self.split(obj)
        return _U32.pack(key.prefixlen) + key.data

    def unpack(self, buf: Any, offset: int = 0) -> LPMKey:
        """The key at ``offset``."""
        raw = bytes(memoryview(buf).cast("B")[offset:offset + self.size])
        return LPMKey(_U32.unpack_from(raw)[0], raw[4:])

    def decode(self, raw: Any) -> LPMKey:
        """The key in ``raw``."""
        return self.unpack(raw, 0)

    def decode_many(self, raw: Any, count: int, stride: int = 0) -> List[LPMKey]:
        """``count`` keys."""
        stride = stride or self.size
        return [self.unpack(raw, i * stride) for i in range(count)]


class LPMTrieMap(Map):
    """A longest-prefix-match trie (``BPF_MAP_TYPE_LPM_TRIE``, Linux 4.11).

    ``LPMTrieMap(data_size=4, value=c_uint32, max_entries=1024)`` holds IPv4 prefixes.
    Keys are prefixes (see :class:`LPMCodec`). Assignment, ``del`` and iteration work
    on exact prefixes; ``m[k]``, ``get`` and ``in`` find the longest stored prefix that
    contains ``k`` (so ``m["10.1.2.3"]`` is the value of the best route to that
    address). The kernel requires ``BPF_F_NO_PREALLOC``, which the keyword form sets.
    """

    map_types = (MapType.LPM_TRIE,)
    spec_defaults = {"flags": MapFlags.NO_PREALLOC}

    @classmethod
    def _spec_from_kwargs(cls, kwargs: dict) -> MapSpec:
        data_size = kwargs.pop("data_size", None)
        if data_size is not None:
            if "key" in kwargs:
                raise TypeError("LPMTrieMap(): give key= or data_size=, not both")
            kwargs["key"] = 4 + int(data_size)
        kwargs.setdefault("key", 8)
        return super()._spec_from_kwargs(kwargs)

    def _prepare_spec(self, spec: MapSpec) -> MapSpec:
        spec = super()._prepare_spec(spec)
        if not 5 <= spec.key_size <= 4 + 256:
            raise ValueError(f"{spec.label}: the key is a 4-byte prefix length and 1 to 256 "
                             f"data bytes, not {spec.key_size} bytes in all")
        if not spec.flags & MapFlags.NO_PREALLOC:
            raise ValueError(f"{spec.label}: LPM tries must be created with "
                             "MapFlags.NO_PREALLOC")
        return spec

    def _key_codec(self, spec: MapSpec) -> Any:
        if isinstance(spec.key, int):
            return LPMCodec(spec.key - 4, spec.label)
        return super()._key_codec(spec)

    @property
    def data_size(self) -> int:
        """Bytes of data in a key (4 for IPv4, 16 for IPv6)."""
        return self.key_size - 4

    def match(self, address: Any, default: Optional[Any] = None) -> Any:
        """The value of the longest stored prefix containing ``address`` (bytes or an
        IP address with the full prefix length), or ``default``."""
        if isinstance(address, (bytes, bytearray)) and len(address) == self.data_size:
            address = (8 * self.data_size, bytes(address))
        return self.get(address, default)
