"""Owned file descriptors: every fd the kernel hands out belongs to exactly one
:class:`FD`, which closes it once (explicitly, with ``with``, or when collected)."""

from __future__ import annotations

import os
import warnings
from typing import Any, Optional, Union

__all__ = ["FD", "FdLike", "fd_number"]


class FD:
    """A file descriptor owned by this object.

    ``close()`` is idempotent; the object is a context manager; an FD that is garbage
    collected while open is closed too, with a :class:`ResourceWarning` (shown only when
    warnings are enabled, as for files). ``kind`` is a short description for messages
    (``"map"``, ``"prog"``).
    """

    __slots__ = ("_fd", "kind", "__weakref__")

    def __init__(self, fd: int, kind: str = "fd") -> None:
        if fd < 0:
            raise ValueError(f"invalid file descriptor {fd}")
        self._fd: Optional[int] = fd
        self.kind = kind

    def fileno(self) -> int:
        """The descriptor number; raises ``ValueError`` once closed."""
        if self._fd is None:
            raise ValueError(f"operation on a closed {self.kind} fd")
        return self._fd

    @property
    def closed(self) -> bool:
        """True once :meth:`close` or :meth:`detach` was called."""
        return self._fd is None

    def close(self) -> None:
        """Close the descriptor (a no-op if already closed)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def detach(self) -> int:
        """Give up ownership: return the number without closing it."""
        fd = self.fileno()
        self._fd = None
        return fd

    def __enter__(self) -> "FD":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_fd", None) is not None:
            warnings.warn(f"unclosed {self!r}", ResourceWarning, stacklevel=2)
            try:
                self.close()
            except OSError:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._fd is None else f"fd={self._fd}"
        return f"<FD {self.kind} {state}>"


FdLike = Union[FD, int, Any]
"""An :class:`FD`, a plain ``int`` descriptor, or any object with ``fileno()`` (a
program, a map)."""


def fd_number(fd: FdLike) -> int:
    """The number of an :class:`FD`, a plain ``int`` descriptor or any object with a
    ``fileno()`` method."""
    if isinstance(fd, int) and not isinstance(fd, bool):
        return fd
    fileno = getattr(fd, "fileno", None)
    if fileno is None:
        raise TypeError(f"expected a file descriptor or an object with fileno(), not "
                        f"{type(fd).__name__}")
    return int(fileno())
