"""pybpf.maps and pybpf.syscall.maps/objects against the running kernel.

Every map family: creation, element operations, iteration (also while deleting), batches
and their fallback, per-CPU values, pinning, freezing, memory-mapped arrays, layout errors
raised before any system call, and closed maps. Needs root and a usable bpf().
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import struct
import threading
import uuid
from ctypes import c_uint8, c_uint32, c_uint64

import pytest

from pybpf.maps import (
    ArrayMap, ArrayOfMaps, BloomFilter, CgroupArray, ElemFlags, HashMap, HashOfMaps,
    LPMKey, LPMTrieMap, LRUHashMap, LRUPerCPUHashMap, Map, MapClosedError, MapFlags,
    MapSpec, MapType, PerCPUArrayMap, PerCPUHashMap, PerfEventArray, Pinning, ProgArray,
    QueueMap, RingBuf, StackMap, StackTraceMap, possible_cpus,
)
from pybpf.maps.percpu import parse_cpu_list
from pybpf.syscall import maps as sysmaps
from pybpf.syscall import objects
from pybpf.syscall.bpf import ProgType
from pybpf.syscall.errors import BPFError, NotSupportedError, OutOfRangeError


from bpfenv import BPF_UNAVAILABLE as _WHY_NOT, needs_bpf
from pybpf.syscall.perf import bpf_output_attr, perf_event_open

pytestmark = needs_bpf

NCPU = possible_cpus() if not _WHY_NOT else 1


class Pair(ctypes.Structure):
    _fields_ = [("a", c_uint32), ("b", c_uint32)]


class Spy:
    """Stands in for the syscall function of a map's ElemOps and counts calls."""

    def __init__(self, real):
        self.real = real
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        return self.real(*args)


def _spy(m: Map) -> Spy:
    spy = Spy(m._ops._fn)
    m._ops._fn = spy
    return spy


def _fail_with(err: int):
    def fake(*args, **kwargs):
        raise BPFError(err, command="BPF_MAP_LOOKUP_BATCH")
    return fake


def _load(code, prog_type=ProgType.SOCKET_FILTER):
    from pybpf.asm.encoding import encode
    from pybpf.syscall.progs import prog_load
    return prog_load(prog_type, encode(code))


# -- specs and construction ----------------------------------------------------------

def test_spec_validation_and_dispatch():
    with pytest.raises(ValueError, match="name"):
        MapSpec(MapType.HASH, 4, 4, 1, name="has space")
    with pytest.raises(ValueError, match="name"):
        MapSpec(MapType.HASH, 4, 4, 1, name="x" * 16)
    with pytest.raises(TypeError):
        MapSpec(MapType.HASH, key="four", value=4, max_entries=1)
    spec = MapSpec(MapType.HASH, key=c_uint32, value=Pair, max_entries=4, name="disp")
    assert spec.key_size == 4 and spec.value_size == 8
    assert "struct Pair" in spec.describe()
    with spec.create() as m:
        assert type(m) is HashMap and m.name == "disp"
    with Map(MapSpec(MapType.ARRAY, 4, 8, 2)) as m:
        assert type(m) is ArrayMap
    with pytest.raises(TypeError, match="HashMap handles hash"):
        HashMap(MapSpec(MapType.ARRAY, 4, 8, 2))
    with pytest.raises(TypeError):
        HashMap(spec, key=c_uint32)
    with pytest.raises(TypeError):
        Map(key=c_uint32)


def test_unsupported_map_type_names_version(monkeypatch):
    # pretend the kernel predates ring buffers: the kernel's EINVAL (here for a size that
    # is no power-of-two number of pages) becomes NotSupportedError naming the release.
    # Not arenas: machines that refuse them by policy answer EPERM before any EINVAL.
    monkeypatch.setattr(sysmaps, "kernel_at_least", lambda major, minor: False)
    with pytest.raises(NotSupportedError) as info:
        sysmaps.map_create(MapType.RINGBUF, 0, 0, 4096 * 3)
    assert "ringbuf" in str(info.value) and info.value.min_version == (5, 8)
    assert info.value.errno == errno.EINVAL
    monkeypatch.undo()
    with pytest.raises(BPFError) as info:       # the same call on the real kernel version
        sysmaps.map_create(MapType.RINGBUF, 0, 0, 4096 * 3)
    assert info.value.errno == errno.EINVAL and not isinstance(info.value, NotSupportedError)
    with pytest.raises(BPFError) as info:
        sysmaps.map_create(250, 4, 4, 1)
    assert info.value.errno == errno.EINVAL


def test_sizes_beyond_32_bits_are_refused_before_the_kernel_sees_them():
    """The kernel's fields are u32: 2**32+5 entries used to create a 5-entry map."""
    before = set(os.listdir("/proc/self/fd"))
    for kwargs, field in ((dict(max_entries=2**32 + 5), "max_entries=4294967301"),
                          (dict(max_entries=-1), "max_entries=-1")):
        with pytest.raises(OutOfRangeError, match=rf"hash map: {field} is out of range: "
                                                  r"u32 0\.\.4294967295"):
            HashMap(key=c_uint32, value=c_uint64, **kwargs)
    for args, field in (((MapType.HASH, 4, 2**32, 1), "value_size"),
                        ((MapType.HASH, 2**32 + 4, 8, 1), "key_size"),
                        ((MapType.ARRAY, 4, 8, 2**32 + 5), "max_entries")):
        with pytest.raises(OutOfRangeError, match=rf"^{field}=\d+ is out of range"):
            sysmaps.map_create(*args)
    with pytest.raises(TypeError, match="max_entries must be an integer, not float"):
        HashMap(key=c_uint32, value=c_uint64, max_entries=2.0)
    assert set(os.listdir("/proc/self/fd")) == before
    with HashMap(key=c_uint32, value=c_uint64, max_entries=5) as m:   # the kernel agrees
        assert m.info().max_entries == 5


# -- hash maps -----------------------------------------------------------------------

def test_hash_crud_and_flags():
    with HashMap(key=c_uint32, value=c_uint64, max_entries=4, name="crud") as m:
        m[1] = 10
        m[2] = 20
        assert m[1] == 10 and m.get(2) == 20 and m.get(3) is None and m.get(3, -1) == -1
        assert 1 in m and 3 not in m and len(m) == 2 and bool(m)
        with pytest.raises(KeyError):
            m[3]
        with pytest.raises(KeyError):
            del m[3]
        m.update(3, 30, ElemFlags.NOEXIST)
        with pytest.raises(BPFError) as info:
            m.update(3, 31, ElemFlags.NOEXIST)
        assert info.value.errno == errno.EEXIST
        m.update(3, 32, ElemFlags.EXIST)
        assert m[3] == 32
        with pytest.raises(KeyError):
            m.update(9, 1, ElemFlags.EXIST)
        with pytest.raises(BPFError) as info:      # no bpf_spin_lock in this value
            m.update(1, 1, ElemFlags.LOCK)
        assert info.value.errno == errno.EINVAL
        m[4] = 40
        with pytest.raises(BPFError) as info:
            m[5] = 50
        assert info.value.errno == errno.E2BIG and "full" in str(info.value)
        assert m.pop(4) == 40 and m.pop(4, "gone") == "gone"
        with pytest.raises(KeyError):
            m.pop(4)
        del m[1]
        assert sorted(m.items()) == [(2, 20), (3, 32)]
        assert sorted(m.values()) == [20, 32]
        m.clear()
        assert len(m) == 0 and not m and list(m) == []
        assert m.info().name == "crud" and m.id == m.info().id


def test_lru_hash_evicts():
    with LRUHashMap(key=c_uint32, value=c_uint32, max_entries=64) as m:
        for i in range(500):
            m[i] = i
        assert 0 < len(m) <= 64 and m[499] == 499


def test_structures_arrays_and_bytes():
    key_t = c_uint8 * 6
    with HashMap(key=key_t, value=Pair, max_entries=8) as m:
        m[b"abcdef"] = (1, 2)
        m[key_t(*b"ghijkl")] = {"a": 3, "b": 4}
        m[list(b"mnopqr")] = Pair(5, 6)
        got = m[b"abcdef"]
        assert isinstance(got, Pair) and (got.a, got.b) == (1, 2)
        assert m[bytearray(b"ghijkl")].b == 4
        assert sorted(bytes(k) for k in m.keys()) == [b"abcdef", b"ghijkl", b"mnopqr"]
    with HashMap(key=3, value=5, max_entries=2) as m:
        m[b"key"] = b"value"
        assert m[b"key"] == b"value" and list(m.items()) == [(b"key", b"value")]


def test_layout_errors_come_before_the_syscall():
    with HashMap(key=c_uint32, value=c_uint64, max_entries=4, name="layout") as m:
        spy = _spy(m)
        cases = [
            (lambda: m["x"], TypeError, "key must be c_uint32"),
            (lambda: m[1.5], TypeError, "key must be c_uint32"),
            (lambda: m[-1], ValueError, "out of range"),
            (lambda: m[2 ** 32], ValueError, "out of range"),
            (lambda: m[b"abc"], ValueError, "got 3 bytes"),
            (lambda: m.__setitem__(1, b"\0" * 7), ValueError, "value must be c_uint64"),
            (lambda: m.__setitem__(1, "v"), TypeError, "value must be"),
            (lambda: m.update(1, [1]), TypeError, "value must be"),
            (lambda: 1.0 in m, TypeError, "key"),
            (lambda: m.update_batch([(1, 1), (2, "bad")]), TypeError, "value"),
            (lambda: m.delete_batch([1, "bad"]), TypeError, "key"),
        ]
        for action, exc_type, text in cases:
            with pytest.raises(exc_type, match=text) as info:
                action()
            assert "map 'layout' (hash)" in str(info.value)
        assert spy.calls == 0
        assert len(m) == 0          # nothing partial was stored
    with HashMap(key=Pair, value=c_uint32, max_entries=2) as m:
        with pytest.raises(ValueError, match="struct Pair"):
            m[(1, 2, 3)] = 1
        with pytest.raises(TypeError, match="struct Pair"):
            m[object()] = 1


# -- iteration -----------------------------------------------------------------------

@pytest.mark.parametrize("batch", [True, False])
def test_iteration_while_deleting(batch):
    with HashMap(key=c_uint32, value=c_uint32, max_entries=512) as m:
        m.update_batch((i, i * 3) for i in range(300))
        if not batch:
            m._batch_ok = False
        # delete every key as it is seen: the kernel restarts its walk each time
        seen = [k for k in m if not m.__delitem__(k)]
        assert sorted(seen) == list(range(300)) and len(m) == 0

        m.update_batch((i, i) for i in range(300))
        seen = []
        for k in m.keys():          # delete odd keys as we pass them
            seen.append(k)
            if k % 2:
                del m[k]
        assert sorted(seen) == list(range(300))
        assert sorted(m.keys()) == list(range(0, 300, 2))

        seen = []
        for k, v in m.items():      # delete keys ahead of and behind the walk
            seen.append(k)
            assert v == k
            for other in (k + 2, k - 2):
                if other >= 0:
                    m.pop(other, None)
        assert len(seen) == len(set(seen)) and set(m.keys()) <= set(seen)


def test_walk_restart_never_repeats_or_loops():
    with HashMap(key=c_uint32, value=c_uint32, max_entries=256) as m:
        for i in range(200):
            m[i] = i
        seen = []
        for k in m.keys():
            seen.append(k)
            if len(seen) % 3 == 0:
                del m[seen[len(seen) // 2]]      # an earlier key
                del m[k]                         # and the current one
        assert len(seen) == len(set(seen)) == 200


# -- batches -------------------------------------------------------------------------

def _batch_roundtrip(m: Map) -> None:
    pairs = {i: i * 7 for i in range(1000)}
    assert m.update_batch(pairs, chunk_size=128) == 1000
    assert dict(m.lookup_batch(chunk_size=100)) == pairs
    assert m.delete_batch(range(0, 1000, 2), chunk_size=64) == 500
    with pytest.raises(KeyError):
        m.delete_batch([1, 0])
    assert 1 not in m
    rest = dict(m.lookup_and_delete_batch(chunk_size=50))
    assert rest == {i: i * 7 for i in range(3, 1000, 2)}
    assert len(m) == 0


def test_batch_operations():
    with HashMap(key=c_uint32, value=c_uint64, max_entries=2048) as m:
        _batch_roundtrip(m)
        assert m._batch_ok is True


@pytest.mark.parametrize("err", [sysmaps.ENOTSUPP, errno.EINVAL])
def test_batch_fallback(monkeypatch, err):
    for name in ("map_lookup_batch", "map_update_batch", "map_delete_batch"):
        monkeypatch.setattr(sysmaps, name, _fail_with(err))
    with HashMap(key=c_uint32, value=c_uint64, max_entries=2048) as m:
        _batch_roundtrip(m)
        assert m._batch_ok is False
        m.update_batch({1: 1, 2: 2})
        assert sorted(m.items()) == [(1, 1), (2, 2)]
        m.clear()
        assert len(m) == 0


def test_batch_fallback_on_map_type_without_batches():
    from pybpf.asm import R0
    from pybpf.asm.builder import exit_, mov
    with ProgArray(max_entries=8) as pa, _load([mov(R0, 0), exit_()]) as prog:
        assert pa.update_batch({1: prog, 5: prog}) == 2
        assert pa._batch_ok is False          # the kernel answered ENOTSUPP
        prog_id = objects.prog_info(prog).id
        assert pa.lookup_batch() == [(1, prog_id), (5, prog_id)]
        assert pa.delete_batch([5]) == 1 and list(pa.keys()) == list(range(8))


def test_syscall_level_batches():
    with sysmaps.map_create(MapType.HASH, 4, 4, 64) as fd:
        keys = b"".join(struct.pack("=I", i) for i in range(10))
        assert sysmaps.map_update_batch(fd, keys, keys, 10) == 10
        first = sysmaps.map_lookup_batch(fd, 4, 4, 4)
        assert first.next_batch is not None and first.count >= 1
        rest = sysmaps.map_lookup_batch(fd, 4, 4, 64, in_batch=first.next_batch)
        assert rest.next_batch is None and first.count + rest.count == 10
        assert sysmaps.map_get_next_key(fd, None, 4) is not None
        assert sysmaps.map_lookup_and_delete_elem(fd, struct.pack("=I", 3), 4) == keys[12:16]
        assert sysmaps.map_delete_elem(fd, struct.pack("=I", 3)) is False
        assert sysmaps.map_lookup_elem(fd, struct.pack("=I", 3), 4) is None


# -- per-CPU -------------------------------------------------------------------------

def test_possible_cpus():
    assert parse_cpu_list("0-3,5,7-8\n") == [0, 1, 2, 3, 5, 7, 8]
    assert parse_cpu_list("0") == [0]
    assert NCPU >= 1


@pytest.mark.parametrize("cls", [PerCPUHashMap, LRUPerCPUHashMap, PerCPUArrayMap])
def test_percpu_values(cls):
    with cls(key=c_uint32, value=c_uint32, max_entries=8) as m:
        assert m.ncpus == NCPU
        values = list(range(1, NCPU + 1))
        m[1] = values
        assert m[1] == values and m.sum(1) == sum(values)
        with pytest.raises(ValueError, match="one per possible CPU"):
            m[2] = values + [0]
        with pytest.raises(TypeError, match="one per possible CPU"):
            m[2] = 5
        m.update_batch({3: [7] * NCPU, 4: [8] * NCPU})
        got = dict(m.lookup_batch())
        assert got[3] == [7] * NCPU and got[1] == values
    # values smaller than 8 bytes are padded per CPU: a 3-byte value round-trips
    with PerCPUHashMap(key=c_uint32, value=3, max_entries=2) as m:
        m[0] = [bytes([i, i, i]) for i in range(NCPU)]
        assert m[0] == [bytes([i, i, i]) for i in range(NCPU)]


# -- arrays --------------------------------------------------------------------------

def test_array_semantics():
    with ArrayMap(value=c_uint64, max_entries=16) as m:
        assert len(m) == 16 and list(m.keys()) == list(range(16))
        assert m[5] == 0 and 15 in m and 16 not in m and -1 not in m
        m[5] = 55
        with pytest.raises(KeyError):
            m[16]
        with pytest.raises(BPFError) as info:
            m[16] = 1
        assert info.value.errno == errno.E2BIG
        with pytest.raises(TypeError, match="cannot be deleted"):
            del m[5]
        m.update_batch({1: 11, 2: 22})
        assert [v for _, v in m.items()][:6] == [0, 11, 22, 0, 0, 55]
        m.zero()
        assert set(m.values()) == {0}
        m[3] = 3
        m.clear()
        assert m[3] == 0
    with pytest.raises(ValueError, match="4-byte indices"):
        ArrayMap(key=c_uint64, value=4, max_entries=1)


def test_mmapable_array_memory():
    with ArrayMap(value=c_uint32, max_entries=10, flags=MapFlags.MMAPABLE) as m:
        mem = m.memory
        assert m.stride == 8 and len(mem) == 80 and not mem.readonly
        struct.pack_into("=I", mem, 3 * m.stride, 0xDEADBEEF)   # write through memory
        assert m[3] == 0xDEADBEEF
        m[4] = 77                                                # syscall write
        assert struct.unpack_from("=I", mem, 4 * m.stride)[0] == 77
        m.zero()
        assert m[3] == 0 and bytes(mem) == bytes(80)
        piece = mem[0:8]
    assert piece.tobytes() == bytes(8)        # a slice keeps the mapping alive
    with pytest.raises(ValueError):
        mem[0]                                 # the map's own view is released
    piece.release()
    with ArrayMap(value=c_uint32, max_entries=2) as m:
        with pytest.raises(TypeError, match="MMAPABLE"):
            m.memory


def test_frozen_maps():
    with ArrayMap(value=c_uint32, max_entries=4, flags=MapFlags.MMAPABLE) as m:
        m[1] = 1
        m.freeze()
        assert m.frozen and m[1] == 1
        with pytest.raises(BPFError, match="frozen"):
            m[1] = 2
        assert m.memory.readonly and struct.unpack_from("=I", m.memory, 8)[0] == 1
    with HashMap(key=c_uint32, value=c_uint32, max_entries=4) as m:
        m[1] = 1
        assert not m.frozen
        m.freeze()
        with pytest.raises(BPFError, match="frozen"):
            m.update(2, 2)
        assert dict(m.items()) == {1: 1}


# -- LPM trie ------------------------------------------------------------------------

def test_lpm_trie_ipv4_and_ipv6():
    with LPMTrieMap(data_size=4, value=c_uint32, max_entries=16) as m:
        m["10.0.0.0/8"] = 8
        m[(16, "10.1.0.0")] = 16
        m[ipaddress.ip_network("192.168.1.0/24")] = 24
        m[LPMKey(32, bytes([10, 1, 2, 3]))] = 32
        assert m["10.1.2.3"] == 32 and m["10.1.2.4"] == 16 and m["10.9.9.9"] == 8
        assert m.match(bytes([192, 168, 1, 7])) == 24 and m.match("11.0.0.1") is None
        assert "10.200.0.1" in m and "11.0.0.1" not in m
        keys = sorted(m.keys())
        assert LPMKey(8, bytes([10, 0, 0, 0])) in keys and len(keys) == 4
        assert str(LPMKey(16, bytes([10, 1, 0, 0]))) == "10.1.0.0/16"
        del m[(32, "10.1.2.3")]
        assert m["10.1.2.3"] == 16
        with pytest.raises(ValueError, match="prefixlen 33"):
            m[(33, "10.0.0.0")] = 1
        with pytest.raises(ValueError, match="4"):
            m["2001:db8::/32"] = 1
        with pytest.raises(TypeError, match="LPM key"):
            m[3.5] = 1
    with LPMTrieMap(data_size=16, value=c_uint32, max_entries=4) as m:
        m["2001:db8::/32"] = 6
        assert m["2001:db8::1"] == 6
    with pytest.raises(ValueError, match="NO_PREALLOC"):
        LPMTrieMap(MapSpec(MapType.LPM_TRIE, key=8, value=4, max_entries=1))


# -- queue, stack, bloom, ring buffer ----------------------------------------------------

def test_queue_and_stack():
    with QueueMap(value=c_uint32, max_entries=3) as q:
        for v in (1, 2, 3):
            q.push(v)
        with pytest.raises(BPFError) as info:
            q.push(4)
        assert info.value.errno == errno.E2BIG
        q.push(4, overwrite=True)            # drops the oldest
        assert q.peek() == 2 and q.pop() == 2 and q.drain() == [3, 4]
        with pytest.raises(IndexError):
            q.pop()
        assert q.pop(None) is None and q.peek("none") == "none" and not q
        with pytest.raises(TypeError, match="has no keys"):
            q[0]
        with pytest.raises(TypeError):
            len(q)
        with pytest.raises(TypeError):
            list(q)
    with StackMap(value=c_uint64, max_entries=4) as s:
        s.push(1)
        s.push(2)
        assert s.peek() == 2 and s.pop() == 2 and s.pop() == 1 and s.pop(0) == 0
        s.push(5)
        s.clear()
        assert s.pop(None) is None
    with pytest.raises(ValueError, match="no keys"):
        QueueMap(key=4, value=4, max_entries=1)


def test_bloom_filter():
    with BloomFilter(value=c_uint32, max_entries=100, hashes=3) as b:
        for v in range(0, 100, 2):
            b.push(v)
        assert all(v in b for v in range(0, 100, 2))
        assert sum(v in b for v in range(1001, 2001, 2)) < 100   # mostly absent
        assert b.hashes == 3 and b.info().map_extra == 3
        with pytest.raises(TypeError):
            b[1]
        with pytest.raises(TypeError):
            b.pop()
    with pytest.raises(ValueError, match="hashes"):
        BloomFilter(value=4, max_entries=1, hashes=16)


def test_ringbuf_creation():
    with RingBuf(size=16 * 4096, name="rb") as r:
        assert r.size == 16 * 4096 and r.info().type == MapType.RINGBUF
        with pytest.raises(TypeError, match="reader"):
            r[0]
    for size in (3 * 4096, 1000, 0):
        with pytest.raises(ValueError, match="power of two"):
            RingBuf(size=size)


# -- descriptor-holding maps ---------------------------------------------------------

def test_prog_array():
    from pybpf.asm import R0
    from pybpf.asm.builder import exit_, mov
    with ProgArray(max_entries=4) as pa, _load([mov(R0, 0), exit_()]) as prog:
        pa[2] = prog
        prog_id = objects.prog_info(prog).id
        assert pa[2] == prog_id and 2 in pa and 1 not in pa
        assert list(pa.items()) == [(2, prog_id)]
        with pytest.raises(TypeError, match="program"):
            pa[1] = "prog"
        del pa[2]
        with pytest.raises(KeyError):
            pa[2]


def test_perf_event_array():
    with PerfEventArray(name="perfarr") as pe:
        assert pe.max_entries == NCPU and len(pe) == NCPU
        with perf_event_open(bpf_output_attr(), cpu=0) as event:
            pe[0] = event
            with pytest.raises(TypeError, match="does not let user space read"):
                pe[0]
            assert list(pe.keys()) == list(range(NCPU))
            del pe[0]
            with pytest.raises(KeyError):
                del pe[0]


def _cgroup2_root():
    with open("/proc/self/mounts", encoding="ascii") as fh:
        for line in fh:
            fields = line.split()
            if fields[2] == "cgroup2":
                return fields[1]
    return None


def test_cgroup_array():
    root = _cgroup2_root()
    if root is None:
        pytest.skip("no cgroup2 mount")
    with CgroupArray(max_entries=2) as cg:
        cg[0] = root                        # a path is opened and closed again
        fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        try:
            cg[1] = fd
        finally:
            os.close(fd)
        with pytest.raises(TypeError):
            cg[0]
        del cg[0]
        del cg[1]


@pytest.mark.parametrize("cls, key", [(ArrayOfMaps, 1), (HashOfMaps, 77)])
def test_maps_of_maps(cls, key):
    inner = MapSpec(MapType.HASH, key=c_uint32, value=c_uint64, max_entries=8)
    with cls(key=c_uint32, max_entries=4, inner=inner) as outer, Map(inner) as a:
        a[5] = 50
        outer[key] = a
        assert outer[key] == a.id
        with outer.get_map(key) as again:
            assert again[5] == 50 and type(again) is HashMap
        with Map(inner.copy(value=c_uint32)) as wrong:
            with pytest.raises(BPFError) as info:
                outer[key] = wrong              # not the inner map's shape
            assert info.value.errno == errno.EINVAL
        del outer[key]
        with pytest.raises(KeyError):
            outer.get_map(key)
    with pytest.raises(ValueError, match="inner"):
        cls(key=c_uint32, max_entries=1)


def test_stack_trace_map_filled_by_a_program():
    from pybpf.asm import R0, R2, R3
    from pybpf.asm.builder import call, exit_, ld_map_fd, mov
    from pybpf.syscall.progs import raw_tracepoint_open
    with StackTraceMap(max_entries=64, depth=32) as st:
        assert st.depth == 32 and list(st.keys()) == []
        code = [ld_map_fd(R2, "stacks", fd=st.fileno()), mov(R3, 0),
                call("get_stackid"), mov(R0, 0), exit_()]
        try:
            prog = _load(code, ProgType.RAW_TRACEPOINT)
            link = raw_tracepoint_open(prog, "sys_enter")
        except OSError as exc:
            pytest.skip(f"raw tracepoint program: {exc}")
        with prog, link:
            info = objects.link_info(link)
            assert info.type == objects.LinkType.RAW_TRACEPOINT
            assert info.details["tp_name"] == "sys_enter" and info.prog_id
            os.stat("/")
        stacks = dict(st.items())
        assert stacks
        frames = next(iter(stacks.values()))
        assert 0 < len(frames) <= 32 and all(a >= 0xFFFF800000000000 for a in frames)
        stack_id = next(iter(stacks))
        del st[stack_id]
        assert stack_id not in st


# -- pinning, opening, closing -------------------------------------------------------

@pytest.fixture
def pin_dir():
    path = f"/sys/fs/bpf/pybpf-test-{uuid.uuid4().hex[:8]}"
    yield path
    if os.path.isdir(path):
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)


def test_pin_and_open_pinned(pin_dir):
    path = f"{pin_dir}/counts"
    with HashMap(key=c_uint32, value=c_uint64, max_entries=8, name="pinned") as m:
        m[1] = 100
        m.pin(path)
        assert m.pinned_path == path and os.path.exists(path)
    with Map.open_pinned(path, key=c_uint32, value=c_uint64) as again:
        assert type(again) is HashMap and again[1] == 100 and again.name == "pinned"
        again[2] = 200
    with Map.open_pinned(path) as raw:
        assert raw[struct.pack("=I", 2)] == struct.pack("=Q", 200)
    with HashMap.open_pinned(path, key=c_uint32, value=c_uint64, readonly=True) as ro:
        assert ro[2] == 200
        with pytest.raises(BPFError) as info:
            ro[3] = 1
        assert info.value.errno == errno.EPERM
    with pytest.raises(ValueError, match="value size"):
        Map.open_pinned(path, value=c_uint32)
    with pytest.raises(TypeError, match="ArrayMap handles"):
        ArrayMap.open_pinned(path)
    with Map.open_pinned(path) as m:
        m.unpin()
    assert not os.path.exists(path)
    with pytest.raises(OSError):
        Map.open_pinned(path)


def test_pinning_by_name_reuses(pin_dir):
    spec = MapSpec(MapType.ARRAY, key=c_uint32, value=c_uint32, max_entries=4,
                   name="shared", pinning=Pinning.BY_NAME)
    with spec.create(pin_dir=pin_dir) as first:
        first[1] = 11
        first_id = first.id
    with spec.create(pin_dir=pin_dir) as second:
        assert second.id == first_id and second[1] == 11
    with pytest.raises(ValueError, match="max_entries"):
        spec.copy(max_entries=5).create(pin_dir=pin_dir)
    os.unlink(f"{pin_dir}/shared")


def test_pin_outside_bpffs(tmp_path):
    with HashMap(key=4, value=4, max_entries=1) as m:
        with pytest.raises(ValueError, match="not on a BPF file system"):
            m.pin(str(tmp_path / "x"))


def test_from_fd_and_from_id():
    with HashMap(key=c_uint32, value=c_uint32, max_entries=4) as m:
        m[1] = 2
        with Map.from_fd(m.fileno(), key=c_uint32, value=c_uint32) as dup:
            assert dup.fileno() != m.fileno() and dup[1] == 2
        assert m[1] == 2                     # the original fd is still ours
        with Map.from_id(m.id, key=c_uint32, value=c_uint32) as byid:
            assert byid[1] == 2 and type(byid) is HashMap


def test_closed_map_never_touches_the_fd():
    m = HashMap(key=c_uint32, value=c_uint32, max_entries=4, name="closing")
    m[1] = 1
    number = m.fileno()
    m.close()
    m.close()                               # idempotent
    with HashMap(key=c_uint32, value=c_uint32, max_entries=4) as other:
        other[1] = 99
        assert other.fileno() == number      # the number was reused
        actions = [lambda: m[1], lambda: m.__setitem__(1, 2), lambda: m.__delitem__(1),
                   lambda: 1 in m, lambda: list(m), lambda: list(m.items()), lambda: len(m),
                   lambda: m.get(1), lambda: m.pop(1), lambda: m.update_batch({1: 1}),
                   lambda: m.lookup_batch(), lambda: m.clear(), lambda: m.info(),
                   lambda: m.freeze(), lambda: m.fileno(), lambda: m.pin("/sys/fs/bpf/x")]
        for action in actions:
            with pytest.raises(MapClosedError, match="'closing'"):
                action()
        assert other[1] == 99 and len(other) == 1
    assert m.closed and "closed" in repr(m)


def test_threads_share_a_map():
    with HashMap(key=c_uint32, value=c_uint64, max_entries=4096) as m:
        def work(base):
            for i in range(500):
                m[base + i] = base + i
                assert m[base + i] == base + i
        threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert len(m) == 2000


# -- objects.py ----------------------------------------------------------------------

def test_object_commands():
    from pybpf.asm import R0, R1, R2, R10
    from pybpf.asm.builder import W, add, call, exit_, ld_map_fd, mov, stx
    with ArrayMap(value=c_uint64, max_entries=1, name="objm") as m:
        code = [mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
                ld_map_fd(R1, "objm", fd=m.fileno()), call("map_lookup_elem"),
                mov(R0, 0), exit_()]
        with _load(code) as prog:
            info = objects.prog_info(prog, xlated=True)
            assert info.map_ids == [m.id] and info.type == ProgType.SOCKET_FILTER
            assert len(info.xlated_prog_insns) == info.xlated_prog_len > 0
            assert len(info.tag_hex) == 16
            assert info.id in list(objects.iter_ids("prog"))
            with objects.prog_get_fd_by_id(info.id) as again:
                assert objects.object_kind(again) == "prog"
        assert m.id in list(objects.iter_ids("map"))
        mi = objects.map_info(m)
        assert (mi.type, mi.key_size, mi.value_size, mi.name) == (MapType.ARRAY, 4, 8, "objm")
        with objects.map_get_fd_by_id(m.id, open_flags=objects.FileFlags.RDONLY) as ro:
            assert objects.object_kind(ro) == "map"
    btf_id = objects.btf_get_next_id(0)
    if btf_id is not None:
        with objects.btf_get_fd_by_id(btf_id) as fd:
            binfo = objects.btf_info(fd, data=True)
            assert binfo.id == btf_id and len(binfo.data) == binfo.btf_size
    assert objects.get_next_id("map", 2 ** 31 - 1) is None
    with pytest.raises(ValueError):
        objects.get_next_id("widget")


def test_program_writes_what_python_reads():
    """A map object as the reference of ``ld_map_fd``: the program's atomic adds to an
    array value are seen by ``m[0]`` (a lookup) and through the memory mapping."""
    from pybpf.asm import R0, R1, R2, R10
    from pybpf.asm.builder import DW, W, add, atomic_add, call, exit_, jeq, ld_map_fd, mov, stx
    from pybpf.asm.builder import Label, build
    from pybpf.program import resolve_maps
    from pybpf.syscall.progs import prog_test_run
    with ArrayMap(value=c_uint64, max_entries=1, flags=MapFlags.MMAPABLE) as m:
        code = build([mov(R1, 0), stx(W, R10, -4, R1), mov(R2, R10), add(R2, -4),
                      ld_map_fd(R1, m), call("map_lookup_elem"), jeq(R0, 0, "out"),
                      mov(R1, 5), atomic_add(DW, R0, 0, R1), Label("out"), mov(R0, 0),
                      exit_()])
        with _load(resolve_maps(code)) as prog:
            prog_test_run(prog, bytes(64), repeat=3)
        assert m[0] == 15 and struct.unpack_from("=Q", m.memory)[0] == 15
