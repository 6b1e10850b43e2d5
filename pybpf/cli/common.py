"""What every ``pybpf`` subcommand repeats: JSON output, record listings, the examples
epilog of ``--help``, and the mapping from exceptions to exit codes.

Standard library only and cheap to import: subcommand modules import it while the
parser is built.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:                  # typing and argparse cost start-up time: annotations only
    import argparse
    from typing import Any, Callable, Dict, Iterable, Optional, TextIO, Tuple

__all__ = ["read_input", "read_input_text", "emit_json", "print_records", "print_record", "examples", "add_json_flag", "add_parser",
           "USER_ERRORS", "error_line", "EXIT_OK", "EXIT_USER_ERROR", "EXIT_USAGE"]

#: exit status of a successful command
EXIT_OK = 0
#: exit status of a user error (bad input, unknown name, missing permission)
EXIT_USER_ERROR = 1
#: exit status of a usage error (argparse's own)
EXIT_USAGE = 2

#: the exceptions reported as one line with exit status 1 (``LookupError`` covers
#: ``KeyError`` and pybpf's ``UnknownNameError`` family)
USER_ERRORS = (OSError, ValueError, LookupError)


def read_input(path: str) -> bytes:
    """The bytes of file ``path``, or of standard input for ``"-"``. A closed or
    unreadable standard input raises ``OSError`` saying so (one line, no errno)."""
    if path != "-":
        with open(path, "rb") as fh:
            return fh.read()
    stream = sys.stdin
    if stream is None:
        raise OSError("standard input is closed: give a FILE, or pipe the input into "
                      "'-'")
    try:
        return stream.buffer.read()
    except (OSError, ValueError) as exc:
        raise OSError(f"cannot read standard input ({exc}): give a FILE instead of "
                      "'-'") from None


def read_input_text(path: str) -> str:
    """:func:`read_input` decoded as UTF-8 with universal newlines; bytes that are not
    UTF-8 raise ``ValueError`` naming the file, line, column and byte offset."""
    data = read_input(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        name = "<stdin>" if path == "-" else path
        line = data.count(b"\n", 0, exc.start) + 1
        column = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(f"{name}:{line}:{column}: not UTF-8 text: byte "
                         f"0x{data[exc.start]:02x} at offset {exc.start} ({exc.reason}); "
                         "save the file as UTF-8") from None
    return text.replace("\r\n", "\n").replace("\r", "\n")


def emit_json(data: Any, out: Optional[TextIO] = None, *, indent: Optional[int] = None
              ) -> None:
    """Write ``data`` as one JSON document and a newline to ``out`` (stdout)."""
    import json
    out = out if out is not None else sys.stdout
    json.dump(data, out, indent=indent)
    out.write("\n")


def print_records(records: Iterable[Dict[str, Any]], fmt: Callable[[Dict[str, Any]], str],
                  *, as_json: bool, out: Optional[TextIO] = None) -> int:
    """Print ``records`` as one JSON list, or each as ``fmt(record)`` on its own
    line(s); returns the exit status (0)."""
    out = out if out is not None else sys.stdout
    if as_json:
        emit_json(list(records), out)
    else:
        for rec in records:
            out.write(fmt(rec) + "\n")
    return EXIT_OK


def print_record(record: Dict[str, Any], fmt: Callable[[Dict[str, Any]], str], *,
                 as_json: bool, out: Optional[TextIO] = None) -> int:
    """Print one record as a JSON object, or as ``fmt(record)``; returns 0."""
    out = out if out is not None else sys.stdout
    if as_json:
        emit_json(record, out)
    else:
        out.write(fmt(record) + "\n")
    return EXIT_OK


def examples(*lines: Tuple[str, str], note: str = "") -> str:
    """An ``examples:`` epilog: each ``(command, what it does)`` pair on one line, the
    descriptions aligned (a long command puts its description on the next line), then
    an optional note paragraph."""
    width = max((len(cmd) for cmd, _ in lines if len(cmd) <= 40), default=0) + 2
    out = ["examples:"]
    for cmd, what in lines:
        if not what:
            out.append(f"  {cmd}")
        elif len(cmd) <= 40:
            out.append(f"  {cmd.ljust(width)}{what}")
        else:
            out.append(f"  {cmd}")
            out.append(f"  {'':{width}}{what}")
    text = "\n".join(out) + "\n"
    if note:
        text += "\n" + note.strip("\n") + "\n"
    return text


def add_parser(sub: "argparse._SubParsersAction", name: str, *, help: str,
               description: str = "", epilog: str = "", **kwargs: Any
               ) -> argparse.ArgumentParser:
    """``sub.add_parser`` with the formatter that keeps the examples epilog as written."""
    import argparse
    return sub.add_parser(name, help=help, description=description or help,
                          epilog=epilog or None,
                          formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)


def add_json_flag(parser: argparse.ArgumentParser, what: str = "print JSON") -> None:
    """The ``--json`` flag every data-printing command has."""
    parser.add_argument("--json", action="store_true", help=what)


def error_line(command: str, exc: BaseException) -> str:
    """The one line printed on stderr for a user error in ``command``."""
    if isinstance(exc, KeyError) and exc.args:
        message: Any = exc.args[0]
    else:
        message = exc
    headline = getattr(exc, "headline", None)    # errors that quote source lines below
    text = (headline if isinstance(headline, str) else str(message)).strip() \
        or type(exc).__name__
    return f"pybpf {command}: {text}"
