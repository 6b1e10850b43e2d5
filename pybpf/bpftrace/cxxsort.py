"""C++ ``std::sort`` as GNU libstdc++ implements it, for bpftrace's output order.

bpftrace 0.17 orders count/sum/min/max maps by value, and hist/stats maps by their
total, with ``std::sort``, which is not stable: entries that compare equal come out in
an order that depends on the algorithm. Reproducing that order means running the same
algorithm: libstdc++'s introsort (median-of-three pivot moved to the front, unguarded
Hoare partition, heap sort past ``2*floor(log2 n)`` levels, insertion sort of runs of
16 at the end). For up to 16 elements it is a plain insertion sort, hence stable.
"""

from __future__ import annotations

from typing import Callable, List, TypeVar

__all__ = ["cxx_sort"]

T = TypeVar("T")
_THRESHOLD = 16


def cxx_sort(items: List[T], less: Callable[[T, T], bool]) -> None:
    """Sort ``items`` in place exactly as libstdc++'s ``std::sort(first, last, less)``."""
    n = len(items)
    if n < 2:
        return
    _introsort(items, 0, n, 2 * (n.bit_length() - 1), less)
    _final_insertion_sort(items, 0, n, less)


def _introsort(a: list, first: int, last: int, depth: int, less) -> None:
    while last - first > _THRESHOLD:
        if depth == 0:
            _heap_sort(a, first, last, less)
            return
        depth -= 1
        cut = _partition_pivot(a, first, last, less)
        _introsort(a, cut, last, depth, less)
        last = cut


def _median_to_first(a: list, result: int, x: int, y: int, z: int, less) -> None:
    if less(a[x], a[y]):
        if less(a[y], a[z]):
            a[result], a[y] = a[y], a[result]
        elif less(a[x], a[z]):
            a[result], a[z] = a[z], a[result]
        else:
            a[result], a[x] = a[x], a[result]
    elif less(a[x], a[z]):
        a[result], a[x] = a[x], a[result]
    elif less(a[y], a[z]):
        a[result], a[z] = a[z], a[result]
    else:
        a[result], a[y] = a[y], a[result]


def _partition_pivot(a: list, first: int, last: int, less) -> int:
    mid = first + (last - first) // 2
    _median_to_first(a, first, first + 1, mid, last - 1, less)
    lo, hi = first + 1, last
    pivot = first
    while True:
        while less(a[lo], a[pivot]):
            lo += 1
        hi -= 1
        while less(a[pivot], a[hi]):
            hi -= 1
        if not lo < hi:
            return lo
        a[lo], a[hi] = a[hi], a[lo]
        lo += 1


def _insertion_sort(a: list, first: int, last: int, less) -> None:
    for i in range(first + 1, last):
        val = a[i]
        if less(val, a[first]):
            a[first + 1:i + 1] = a[first:i]
            a[first] = val
        else:
            _linear_insert(a, i, less)


def _linear_insert(a: list, last: int, less) -> None:
    val = a[last]
    nxt = last - 1
    while less(val, a[nxt]):
        a[last] = a[nxt]
        last = nxt
        nxt -= 1
    a[last] = val


def _final_insertion_sort(a: list, first: int, last: int, less) -> None:
    if last - first > _THRESHOLD:
        _insertion_sort(a, first, first + _THRESHOLD, less)
        for i in range(first + _THRESHOLD, last):
            _linear_insert(a, i, less)
    else:
        _insertion_sort(a, first, last, less)


# heap sort (std::partial_sort(first, last, last) = make_heap + sort_heap)

def _adjust_heap(a: list, first: int, hole: int, length: int, value, less) -> None:
    top = hole
    child = hole
    while child < (length - 1) // 2:
        child = 2 * (child + 1)
        if less(a[first + child], a[first + child - 1]):
            child -= 1
        a[first + hole] = a[first + child]
        hole = child
    if length & 1 == 0 and child == (length - 2) // 2:
        child = 2 * (child + 1)
        a[first + hole] = a[first + child - 1]
        hole = child - 1
    # push_heap
    parent = (hole - 1) // 2
    while hole > top and less(a[first + parent], value):
        a[first + hole] = a[first + parent]
        hole = parent
        parent = (hole - 1) // 2
    a[first + hole] = value


def _heap_sort(a: list, first: int, last: int, less) -> None:
    length = last - first
    if length >= 2:
        parent = (length - 2) // 2
        while True:
            _adjust_heap(a, first, parent, length, a[first + parent], less)
            if parent == 0:
                break
            parent -= 1
    while last - first > 1:
        last -= 1
        value = a[last]
        a[last] = a[first]
        _adjust_heap(a, first, 0, last - first, value, less)
