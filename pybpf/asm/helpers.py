"""The kernel's helper functions: ids, names and prototypes (from linux/bpf.h)."""

from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Tuple, Union

from .helpers_table import HELPER_ROWS

__all__ = ["Helper", "helper", "helper_name", "all_helpers"]


class Helper(NamedTuple):
    """One kernel helper: ``bpf_<name>``, called with ``call <id>``."""

    id: int
    name: str
    returns: str
    params: Tuple[str, ...]

    @property
    def argc(self) -> int:
        """How many argument registers (r1..r5) the helper reads; 5 for variadic ones."""
        if self.params and self.params[-1] == "...":
            return 5
        return len(self.params)

    @property
    def prototype(self) -> str:
        """The C prototype, e.g. ``void *bpf_map_lookup_elem(struct bpf_map *map, ...)``."""
        sep = "" if self.returns.endswith("*") else " "
        return f"{self.returns}{sep}bpf_{self.name}({', '.join(self.params) or 'void'})"


_by_id: Dict[int, Helper] = {}
_by_name: Dict[str, Helper] = {}


def _tables() -> Tuple[Dict[int, Helper], Dict[str, Helper]]:
    if not _by_id:
        for row in HELPER_ROWS:
            h = Helper(*row)
            _by_id[h.id] = h
            _by_name[h.name] = h
    return _by_id, _by_name


def helper(key: Union[int, str]) -> Helper:
    """Look a helper up by id or by name (``"map_lookup_elem"`` or ``"bpf_map_lookup_elem"``).

    Raises ``KeyError`` with close matches for an unknown name.
    """
    by_id, by_name = _tables()
    if isinstance(key, int):
        try:
            return by_id[key]
        except KeyError:
            raise KeyError(f"no helper with id {key} (known ids: 1-{max(by_id)})") from None
    name = key[4:] if key.startswith("bpf_") else key
    try:
        return by_name[name]
    except KeyError:
        import difflib
        close = difflib.get_close_matches(name, by_name, n=3)
        hint = f"; did you mean {', '.join('bpf_' + c for c in close)}?" if close else ""
        raise KeyError(f"unknown helper {key!r}{hint}") from None


def helper_name(helper_id: int) -> Optional[str]:
    """``bpf_<name>`` for a helper id, or None if the id is unknown."""
    h = _tables()[0].get(helper_id)
    return f"bpf_{h.name}" if h else None


def all_helpers() -> Tuple[Helper, ...]:
    """Every known helper, by id."""
    return tuple(sorted(_tables()[0].values()))
