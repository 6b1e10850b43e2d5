"""Map declarations of the pybpf language.

Declared at module level with language types, a map is both what a program uses
(``counts[pid()] += 1``, ``start.get(tid())``, ``events.output(e)``) and, once the module
is loaded (:func:`pybpf.dsl.load`), a live :class:`pybpf.maps.Map` under the same name
whose keys and values are the same types::

    counts = HashMap(u32, u64, max_entries=10240)
    events = RingBuf(Event, size=256 * 1024)

The classes are the shared compiler's (:mod:`pybpf.compiler.maps`: a declaration is a
spec, it holds no file descriptor); this module is where the language names them. A
map's name is the global's name (cut to 15 characters) unless ``name=`` says otherwise.

In a program:

* ``m[k]`` reads an integer value (0 when the key is absent, as in bpftrace);
* ``m[k] = v`` stores; ``m[k] += v`` adds (atomically for shared maps; lookup-or-insert
  for hash maps); ``del m[k]`` deletes; ``k in m`` tests;
* ``m.get(k)`` returns a pointer to the value or ``None``: the compiler refuses to use it
  before an ``if p:`` / ``if p is None: return`` check (the verifier would refuse it
  later, with a worse message); ``m.get(k, default)`` returns an integer value;
* ring buffers and perf event arrays: ``events.output(e)`` sends a struct; ring
  buffers also take ``with events.reserve() as e: ...`` (the record is built in the
  ring itself, so it may be larger than the 512-byte stack);
* stack trace maps: ``stacks.stackid()`` / ``stacks.stackid(user=True)``;
* queues and stacks: ``q.push(v)``, ``q.pop(default)``, ``q.peek(default)``.
"""


from __future__ import annotations

from ..compiler.maps import (
    ArrayMap, HashMap, Histogram, LRUHashMap, MapDecl, PerCPUArrayMap, PerCPUHashMap,
    PerfEventArray, QueueMap, RingBuf, StackMap, StackTraceMap,
)

__all__ = [
    "MapDecl", "HashMap", "LRUHashMap", "PerCPUHashMap", "ArrayMap", "PerCPUArrayMap",
    "RingBuf", "PerfEventArray", "StackTraceMap", "Histogram", "QueueMap", "StackMap",
]
