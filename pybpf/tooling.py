"""Shared pieces of the tools in ``programs/``: argument parsing conventions, the run
loop with clean Ctrl-C handling, loss reports, and output helpers.

A tool is one file: its BPF programs (decorated functions of :mod:`pybpf.dsl`) and a
``main(argv)`` that parses BCC's flags, loads the module with load-time constants, prints
the header once everything is attached (tests wait for it), prints events as they come,
and prints summaries at the end. The layer is the top one: it may use everything.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import errno
import os
import sys
import threading
import time
from typing import (
    Any, Callable, Iterable, Iterator, List, Mapping, NoReturn, Optional, Sequence,
)

try:                    # the C module: signal.py turns its constants into enums, ~1 ms of
    import _signal as signal        # a tool's start; the handlers are the same
except ImportError:     # pragma: no cover - other interpreters
    import signal                   # type: ignore[no-redef]

__all__ = ["disk_name", "ip_address", "add_interval_args", "summary_heading", "take_log2", "take_keyed_log2",
           "ToolParser", "load_tool", "run_tool", "errno_name", "Clock", "positive_int",
           "comm_of", "line_buffered", "pid_number", "tid_number", "uid_number",
           "whole_seconds", "positive_seconds", "frequency_hz", "cpu_number",
           "port_number", "signal_number", "pid_max", "max_sample_rate", "possible_cpus",
           "int_range", "MAX_SECONDS", "PID_MAX_LIMIT", "UID_MAX", "tool_main", "running",
           "write_lines", "Memo", "text_of", "LossReporter", "LOSS_INTERVAL"]


#: the longest interval or duration a tool takes, in seconds: one wait of the event
#: poller is at most 2**31 - 1 milliseconds (about 24.8 days)
MAX_SECONDS = (2**31 - 1) // 1000
#: the kernel's ceiling for ``/proc/sys/kernel/pid_max`` (used when the file is unreadable)
PID_MAX_LIMIT = 4194304
#: the largest valid uid or gid (``(uid_t)-1`` means "no id" to the kernel)
UID_MAX = 2**32 - 2


def _read_int(path: str, default: int) -> int:
    """The integer in the one-line file ``path``; ``default`` if unreadable."""
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return default


def pid_max() -> int:
    """The largest pid (or tid) the kernel can hand out now: one less than
    ``/proc/sys/kernel/pid_max``, where pid allocation wraps."""
    return _read_int("/proc/sys/kernel/pid_max", PID_MAX_LIMIT) - 1


def max_sample_rate() -> int:
    """The highest perf sampling frequency the kernel accepts now, in Hz
    (``/proc/sys/kernel/perf_event_max_sample_rate``)."""
    return _read_int("/proc/sys/kernel/perf_event_max_sample_rate", 100000)


def possible_cpus() -> int:
    """How many CPU numbers the kernel may use (``/sys/devices/system/cpu/possible``)."""
    try:
        with open("/sys/devices/system/cpu/possible") as f:
            text = f.read().strip()
        return max(int(part.split("-")[-1]) for part in text.split(",")) + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def _integer(text: str, what: str) -> int:
    """``text`` as an integer (decimal, or 0x/0o/0b prefixed), else an argparse error."""
    try:
        return int(text, 0)
    except ValueError:
        try:
            return int(text, 10)         # "010" is ten, as BCC's tools read it
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer ({what})") from None


def _bounded(text: str, low: int, high: int, what: str, where: str = "") -> int:
    """``text`` as an integer in ``low..high``, else an argparse error naming the range."""
    value = _integer(text, f"{what} {low}..{high}")
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: {what} must be {low}..{high}"
            + (f" ({where})" if where else ""))
    return value


def int_range(low: int, high: int, what: str, where: str = "") -> Callable[[str], int]:
    """An argparse type for an integer ``low..high``; the error names ``what`` (``"a
    port"``), the range and, if given, ``where`` the bound comes from."""
    def parse(text: str) -> int:
        return _bounded(text, low, high, what, where)
    parse.__name__ = what.replace(" ", "_")
    parse.__doc__ = f"argparse type: {what}, {low}..{high}."
    return parse


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1 (a count)."""
    value = _integer(text, "a count, 1 or more")
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text} is out of range: must be 1 or more")
    return value


def pid_number(text: str) -> int:
    """argparse type: a process id, 1..:func:`pid_max`. :class:`ToolParser` warns when no
    such process exists yet."""
    top = pid_max()
    return _bounded(text, 1, top, "a pid", f"/proc/sys/kernel/pid_max is {top + 1}")


def tid_number(text: str) -> int:
    """argparse type: a thread id, 1..:func:`pid_max` (threads share the pid space).
    :class:`ToolParser` warns when no such thread exists yet."""
    top = pid_max()
    return _bounded(text, 1, top, "a thread id", f"/proc/sys/kernel/pid_max is {top + 1}")


def uid_number(text: str) -> int:
    """argparse type: a user id, 0..2**32-2 (``-1`` as a 32-bit value means no id)."""
    return _bounded(text, 0, UID_MAX, "a uid")


def whole_seconds(text: str) -> int:
    """argparse type: a whole number of seconds, 1..:data:`MAX_SECONDS`."""
    return _bounded(text, 1, MAX_SECONDS, "seconds")


def positive_seconds(text: str) -> float:
    """argparse type: a number of seconds (fractions allowed), more than 0 and at most
    :data:`MAX_SECONDS`."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 < value <= MAX_SECONDS:            # also refuses nan
        raise argparse.ArgumentTypeError(
            f"{text} is out of range: seconds must be more than 0 and at most {MAX_SECONDS}")
    return value


def frequency_hz(text: str) -> int:
    """argparse type: a sampling frequency in Hz, 1..the kernel's limit
    (``/proc/sys/kernel/perf_event_max_sample_rate``)."""
    return _bounded(text, 1, max_sample_rate(), "the frequency (Hz)",
                    "/proc/sys/kernel/perf_event_max_sample_rate")


def cpu_number(text: str) -> int:
    """argparse type: a CPU number, 0..possible CPUs - 1
    (``/sys/devices/system/cpu/possible``)."""
    return _bounded(text, 0, possible_cpus() - 1, "a cpu number",
                    "/sys/devices/system/cpu/possible")


def port_number(text: str) -> int:
    """argparse type: a TCP/UDP port, 1..65535."""
    return _bounded(text, 1, 65535, "a port")


def signal_number(text: str) -> int:
    """argparse type: a signal, as a number 1..SIGRTMAX (64 on Linux) or a name
    (``KILL``, ``SIGKILL``, ``kill``)."""
    top = int(getattr(signal, "SIGRTMAX", 64))
    if text.lstrip("+-").isdigit():
        value = int(text, 10)
        if not 1 <= value <= top:
            raise argparse.ArgumentTypeError(
                f"{text} is out of range: a signal must be 1..{top} or a name such as KILL")
        return value
    name = text.upper() if text.upper().startswith("SIG") else "SIG" + text.upper()
    import signal as signals                # its names (the C module has none)
    try:
        return int(signals.Signals[name])
    except KeyError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a signal: give 1..{top} or a name such as KILL or SIGTERM"
        ) from None


#: the argument types whose value names a process (pid) or a thread (tid)
_TASK_TYPES = {pid_number: "process", tid_number: "thread"}


class ToolParser(argparse.ArgumentParser):
    """An argparse parser for a tool: ``examples`` go in the epilog, as BCC prints them.

    Bad values end the tool as argparse does: the usage, then one line
    ``TOOL: error: argument -p/--pid: ...`` naming the allowed range, exit status 2.
    A pid or tid in range whose task does not exist (yet) gets one warning line on
    stderr and is traced anyway (the task may appear later)."""

    def __init__(self, prog: str, description: str, examples: Sequence[str] = ()) -> None:
        epilog = "examples:\n" + "\n".join(f"    {e}" for e in examples) if examples else None
        super().__init__(prog=prog, description=description, epilog=epilog,
                         formatter_class=argparse.RawDescriptionHelpFormatter)

    def parse_known_args(self, args: Optional[Sequence[str]] = None,
                         namespace: Optional[argparse.Namespace] = None) -> Any:
        """argparse's parse, then a warning for each pid/tid with no such task now."""
        ns, extras = super().parse_known_args(args, namespace)
        for action in self._actions:
            kind = _TASK_TYPES.get(action.type)          # type: ignore[call-overload]
            value = getattr(ns, action.dest, None)
            if kind and isinstance(value, int) and value > 0 \
                    and not os.path.exists(f"/proc/{value}"):
                print(f"{self.prog}: warning: no {kind} {value} (yet): tracing it if it "
                      f"appears", file=sys.stderr)
        return ns, extras


def line_buffered() -> None:
    """Make stdout line-buffered (events reach a pipe as soon as they are printed)."""
    try:
        sys.stdout.reconfigure(line_buffering=True)        # type: ignore[attr-defined]
    except (AttributeError, ValueError):                   # pragma: no cover
        pass


def write_lines(lines: Sequence[Any]) -> None:
    """Write a batch of event lines (``bytes`` or ``str``, without their newlines) to
    standard output in one block, and flush it, so a reader of a pipe sees them at
    once. ``bytes`` lines are UTF-8 text: an invalid sequence becomes U+FFFD, as
    printing the decoded text would make it. This is the fast path of the tools that
    print every event (one write per batch instead of one ``print()`` per line); a
    closed pipe raises :class:`BrokenPipeError`, which :func:`run_tool` handles."""
    if not lines:
        return
    if isinstance(lines[0], str):
        block = ("\n".join(lines) + "\n").encode("utf-8")
    else:
        block = b"\n".join(lines) + b"\n"
    if not block.isascii():
        block = block.decode("utf-8", "replace").encode("utf-8")
    out = sys.stdout
    raw = getattr(out, "buffer", None)
    encoding = (getattr(out, "encoding", None) or "").lower().replace("-", "").replace("_", "")
    if raw is None or encoding != "utf8":
        out.write(block.decode("utf-8"))     # a text stream of its own (tests, a locale)
        out.flush()
        return
    out.flush()                              # text printed before (the header) goes first
    raw.write(block)
    raw.flush()


class Memo(dict):
    """A dictionary that fills itself: ``memo[key]`` is ``fn(key)``, computed on the first
    use of ``key`` and kept (up to ``limit`` entries; then it starts over). Tools use it
    to format the part of a line that repeats (pid, comm, result) once per distinct
    value instead of once per event."""

    def __init__(self, fn: Callable[[Any], Any], limit: int = 65536) -> None:
        super().__init__()
        self.fn = fn
        self.limit = limit

    def __missing__(self, key: Any) -> Any:
        if len(self) >= self.limit:
            self.clear()
        value = self[key] = self.fn(key)
        return value


def text_of(raw: bytes) -> str:
    """A ``char[N]`` field as text: cut at the first NUL, decoded as UTF-8 (invalid
    sequences replaced), as :meth:`pybpf.dsl.Struct.from_bytes` decodes it."""
    return raw.partition(b"\0")[0].decode("utf-8", "replace")


#: seconds a stop request (SIGINT, SIGTERM) leaves a running tool to end on its own:
#: hand over the records still buffered, print its summary, detach. Output that has not
#: drained by then (a pipe nobody reads) is thrown away so the tool can end.
STOP_GRACE = 0.5


class StdoutClosedError(OSError):
    """Standard output is closed or not writable, so a tool could not print its
    events (``pybpf run opensnoop >&-``)."""

    def __init__(self, message: str) -> None:
        super().__init__(errno.EBADF, message)

    def __str__(self) -> str:
        return str(self.strerror)


class _ForcedStop(BaseException):
    """Raised by the stop handler inside a run that did not end in time: it interrupts
    a callback wherever it blocks (a write to a full pipe)."""


def _discard_stdout() -> None:
    """Point standard output at /dev/null: a write blocked on a reader that does not
    read is retried there and returns, and nothing printed later can block."""
    try:
        fileno = sys.stdout.fileno() if sys.stdout is not None else 1
    except (AttributeError, OSError, ValueError):
        fileno = 1
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:                                         # pragma: no cover
        return
    try:
        os.dup2(devnull, fileno)
    except OSError:                                         # pragma: no cover
        pass
    finally:
        os.close(devnull)


def _check_stdout() -> None:
    """Raise :class:`StdoutClosedError` when standard output cannot take the events."""
    if sys.stdout is None:
        raise StdoutClosedError("standard output is closed, so there is nowhere to print "
                                "the events (redirect it, e.g. >/dev/null, instead of >&-)")
    try:
        import fcntl
        flags = fcntl.fcntl(sys.stdout.fileno(), fcntl.F_GETFL)
    except (AttributeError, ValueError, OSError):
        return                            # not a real descriptor (tests' StringIO)
    if flags & os.O_ACCMODE == os.O_RDONLY:
        raise StdoutClosedError("standard output is open for reading only, so the events "
                                "cannot be printed (redirect it to a file or a pipe)")


class _StopRequests:
    """What SIGINT and SIGTERM do to a tool, from :func:`load_tool` to its exit.

    * Before the run (compiling, loading, attaching): the first request raises
      ``SystemExit(128 + signal)`` (130 for SIGINT, 143 for SIGTERM); the ``with`` block
      of the tool and the link layer's own handler detach what was attached.
    * In a tool's own loop (:func:`running`): the first request ends the loop at once
      (whatever it blocks in) and the tool exits 0.
    * During the run (:func:`run_tool`, from the header on) and after it: the first
      request only sets a flag; the run ends after the batch being handed over, the
      remaining records and the summary are printed, and the tool exits 0.
    * A second request, or the first one still not done after :data:`STOP_GRACE`
      seconds: standard output is thrown away (``/dev/null``), so a write blocked on a
      reader that does not read returns, and a run still going is cut short.

    A signal that was ignored when the tool started stays ignored (a background job of
    a non-interactive shell ignores SIGINT)."""

    def __init__(self) -> None:
        self.installed = False
        self.phase = "load"                   # "load", "run", "loop" or "after"
        self.signum: Optional[int] = None     # the first request
        self.timer: Optional[threading.Timer] = None
        self.main_ident = threading.main_thread().ident

    def install(self) -> None:
        """Handle SIGINT and SIGTERM (from the main thread, once; ignored ones stay so)."""
        if self.installed or threading.current_thread() is not threading.main_thread():
            return
        self.installed = True
        for signum in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(signum) in (signal.SIG_IGN, None):
                continue
            signal.signal(signum, self.handle)
        atexit.register(self.cancel)

    def requested(self) -> bool:
        """Whether a stop was requested (the run loop's ``until``)."""
        return self.signum is not None

    def handle(self, signum: int, frame: Any) -> None:
        """The SIGINT/SIGTERM handler."""
        first = self.signum is None
        if first:
            self.signum = signum
        if self.phase == "load":
            if first:
                raise SystemExit(128 + signum)
            _discard_stdout()                 # cleanup goes on; nothing it prints blocks
            return
        if self.phase == "loop" and first:
            raise _ForcedStop                 # the tool's own loop: end it now
        if first:
            self.timer = threading.Timer(STOP_GRACE, self.expire, args=(signum,))
            self.timer.daemon = True
            self.timer.start()
            return
        _discard_stdout()
        if self.phase == "run":
            raise _ForcedStop

    def expire(self, signum: int) -> None:
        """The grace period is over: the main thread gets the signal again (a second
        request), which interrupts a write blocked in it."""
        if self.main_ident is not None:
            try:
                signal.pthread_kill(self.main_ident, signum)
            except (OSError, ValueError):                   # pragma: no cover
                pass

    def cancel(self) -> None:
        """Stop the grace timer (the tool is exiting)."""
        if self.timer is not None:
            self.timer.cancel()


_stop = _StopRequests()


def load_tool(module_name: str, consts: Optional[Mapping[str, int]] = None,
              programs: Optional[Iterable[str]] = None) -> Any:
    """Compile and load the BPF programs of the tool module ``module_name`` (pass
    ``__name__``); returns the :class:`pybpf.dsl.loader.LoadedModule`. Raises
    :class:`StdoutClosedError` when standard output is closed. From here on SIGINT and
    SIGTERM stop the tool as :class:`_StopRequests` describes."""
    from .dsl import load
    _check_stdout()
    line_buffered()
    _stop.install()
    return load(sys.modules[module_name], consts=consts, programs=programs)


@contextlib.contextmanager
def running() -> Iterator[None]:
    """The block is a tool's own event loop (one that does not use :func:`run_tool`, such
    as reading the trace pipe): the first SIGINT or SIGTERM ends it wherever it blocks,
    quietly, and the tool goes on after the block (its ``with`` detaches everything)."""
    if not _stop.installed:
        try:
            yield
        except KeyboardInterrupt:
            pass
        return
    _stop.phase = "loop"
    try:
        yield
    except (KeyboardInterrupt, _ForcedStop):
        pass
    finally:
        _stop.phase = "after"


#: how often, in seconds, a running tool looks at its loss counters (and reports new
#: losses)
LOSS_INTERVAL = 1.0


class LossReporter:
    """Reports the records of a module's event maps that never reached the tool, the
    way BCC does: ``Possibly lost N samples`` on stderr, N being the records lost since
    the previous report.

    The maps are those with a reader (``mod.readers``: every ring buffer and perf event
    array the tool consumes, the ``print()`` ring included); the counts come from
    ``mod.lost(name)``: records a full ring refused (counted per CPU by the programs)
    and records the kernel reported lost from a perf buffer. :meth:`tick` is cheap
    (a clock read; one map look-up per ring every :data:`LOSS_INTERVAL` seconds);
    :meth:`report` reports whatever is new now (at exit). The N of all reports add up
    to the total lost.

    ``json``: write ``{"lost": N}`` as one JSON line on stdout instead (for tools'
    ``--json`` output); ``emit``: call ``emit(N)`` instead of either."""

    def __init__(self, mod: Any, *, json: bool = False,
                 emit: Optional[Callable[[int], Any]] = None,
                 interval: Optional[float] = None) -> None:
        self.mod = mod
        self.json = json
        self.emit = emit
        #: seconds between checks (None: :data:`LOSS_INTERVAL` as it is now)
        self.interval = LOSS_INTERVAL if interval is None else interval
        #: the records reported lost so far
        self.reported = 0
        self.next_check = time.monotonic() + self.interval

    def _names(self) -> List[str]:
        readers = getattr(self.mod, "readers", None)
        return list(readers) if readers and hasattr(self.mod, "lost") else []

    def total(self) -> int:
        """Records lost so far, over every event map the tool reads."""
        return sum(int(self.mod.lost(name)) for name in self._names())

    def report(self) -> int:
        """Report the records lost since the previous report, if any; returns them."""
        new = self.total() - self.reported
        if new <= 0:
            return 0
        self.reported += new
        if self.emit is not None:
            self.emit(new)
        elif self.json:
            sys.stdout.write(f'{{"lost": {new}}}\n')
            sys.stdout.flush()
        else:
            sys.stderr.write(f"Possibly lost {new} samples\n")
            sys.stderr.flush()
        return new

    def tick(self) -> None:
        """Report new losses if :data:`LOSS_INTERVAL` seconds passed since the last
        check (call it often: it only reads the clock otherwise)."""
        now = time.monotonic()
        if now >= self.next_check:
            self.next_check = now + self.interval
            self.report()


def run_tool(mod: Any, *, duration: Optional[float] = None, interval: Optional[float] = None,
             count: Optional[int] = None, on_interval: Optional[Callable[[], Any]] = None,
             until: Optional[Callable[[], bool]] = None,
             header: Optional[str] = None,
             summary: Optional[Callable[[], Any]] = None,
             json_lost: bool = False,
             on_lost: Optional[Callable[[int], Any]] = None) -> None:
    """Poll ``mod``'s events until Ctrl-C/SIGTERM, ``duration`` seconds, or ``count``
    intervals; ``on_interval`` runs every ``interval`` seconds. ``summary`` is BCC's
    interval summary: printed every ``interval`` seconds and once more at the end,
    unless the run ended right after the ``count``-th. ``header`` is printed first,
    inside the Ctrl-C handling: a Ctrl-C that arrives just after the header (a test
    reacting to it) ends the run quietly instead of raising. A stop request ends the
    run within :data:`STOP_GRACE` seconds even when nobody reads the output.

    Lost records are reported as BCC's tools do (:class:`LossReporter`): ``Possibly
    lost N samples`` on stderr within :data:`LOSS_INTERVAL` seconds of a loss, and once
    more at the end for the rest (not when the run ended because the reader of stdout
    went away). ``json_lost``: as a JSON line ``{"lost": N}`` on stdout instead (tools'
    ``--json`` mode); ``on_lost(N)``: the tool reports it itself."""
    if interval is not None and count is not None and duration is None:
        duration = interval * count
    printed = [0]
    if summary is not None:
        def tick() -> None:
            printed[0] += 1
            summary()
        on_interval = tick
    losses = LossReporter(mod, json=json_lost, emit=on_lost)
    try:
        _run(mod, duration, interval, on_interval, until, header, losses)
    finally:
        if summary is not None and (not count or printed[0] < count):
            try:
                summary()                     # Ctrl-C (or no interval): the last one
            except BrokenPipeError:
                _discard_stdout()


def _run(mod: Any, duration: Optional[float], interval: Optional[float],
         on_interval: Optional[Callable[[], Any]], until: Optional[Callable[[], bool]],
         header: Optional[str], losses: Optional[LossReporter] = None) -> None:
    handled = _stop.installed
    if handled:
        user_until = until
        until = (lambda: _stop.requested() or user_until()) if user_until is not None \
            else _stop.requested
    if losses is not None:
        inner_until = until

        def until() -> bool:
            if inner_until is not None and inner_until():
                return True               # the report at the end covers the rest
            losses.tick()                 # the run loop asks at least every 0.1 s
            return False
    try:
        if handled:
            _stop.phase = "run"
        abandoned = False
        try:
            if header is not None:
                print(header)
            mod.run(duration, interval=interval, on_interval=on_interval, until=until,
                    signals=not handled)
        except (KeyboardInterrupt, _ForcedStop):
            pass
        except BrokenPipeError:
            # the reader went away (``pybpf run opensnoop | head``): stop quietly; the
            # caller's ``with`` still detaches everything
            abandoned = True
            _discard_stdout()
        if losses is not None and not abandoned:
            # still in the "run" phase: a stop request interrupts a blocked write
            try:
                losses.report()           # the records lost since the last report
            except (KeyboardInterrupt, _ForcedStop):
                pass
            except BrokenPipeError:
                _discard_stdout()
    finally:
        if handled:
            _stop.phase = "after"


def _one_line(exc: BaseException) -> str:
    """The first line of an error's message (a ``headline`` where the error has one: the
    rest quotes source lines), or its type's name."""
    headline = getattr(exc, "headline", None)
    message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
    text = headline if isinstance(headline, str) else str(message)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def tool_main(main: Callable[[], Optional[int]]) -> NoReturn:
    """Run a tool's ``main()`` as a command (``python3 programs/NAME.py``) and exit with
    its status. A user error (bad input, a missing file or permission, a name that does
    not exist, a program the compiler or the kernel refuses) is one line on stderr,
    ``NAME: message``, with status 1, as under ``pybpf run``; ``PYBPF_DEBUG=1`` shows the
    traceback instead. Ctrl-C before the run began exits 130."""
    from .compiler.errors import CompileError
    prog = os.path.splitext(os.path.basename(sys.argv[0]))[0] or "tool"
    try:
        status = main()
    except KeyboardInterrupt:
        status = 130
    except (OSError, ValueError, LookupError, CompileError) as exc:
        if os.environ.get("PYBPF_DEBUG"):
            raise
        print(f"{prog}: {_one_line(exc)}", file=sys.stderr)
        status = 1
    sys.exit(status or 0)


def errno_name(value: int) -> str:
    """``ENOENT`` for -2 or 2; the number if unknown."""
    return errno.errorcode.get(abs(value), str(abs(value)))


class Clock:
    """Timestamps for event lines: seconds since the tool started (``-T`` style
    ``TIME(s)``), wall-clock ``%H:%M:%S``, and kernel monotonic ns converted."""

    def __init__(self) -> None:
        self.start_ns = time.monotonic_ns()
        self.start_wall = time.time()

    def elapsed(self, ktime_ns: Optional[int] = None) -> float:
        """Seconds since start (of the kernel timestamp ``ktime_ns`` when given)."""
        now = ktime_ns if ktime_ns is not None else time.monotonic_ns()
        return (now - self.start_ns) / 1e9

    @staticmethod
    def wall() -> str:
        """The current local time as ``HH:MM:SS``."""
        return time.strftime("%H:%M:%S")


def comm_of(pid: int) -> str:
    """The command name of process ``pid`` ("" if it is gone)."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def pids_of(name: str) -> List[int]:
    """The pids whose command name is ``name``."""
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and comm_of(int(entry)) == name:
            out.append(int(entry))
    return out


def add_interval_args(parser: argparse.ArgumentParser, count_name: str = "count") -> None:
    """BCC's trailing ``[interval [count]]`` arguments (``count_name`` where a tool's
    own flag already uses ``count``)."""
    parser.add_argument("interval", nargs="?", type=whole_seconds, default=None,
                        help="output interval, in seconds")
    parser.add_argument(count_name, nargs="?", type=positive_int, default=None,
                        help="number of outputs")


def summary_heading(timestamp: bool) -> None:
    """What precedes each BCC interval summary: an empty line, then ``HH:MM:SS`` with
    ``-T``."""
    print()
    if timestamp:
        print(f"{time.strftime('%H:%M:%S'):<8}")


def take_log2(hist: Any, slots: int = 64) -> List[int]:
    """The counts of a log2 histogram array map, which is then zeroed (interval mode)."""
    counts = [0] * slots
    for i, v in hist.items():
        index = int(getattr(i, "value", i))
        if 0 <= index < slots:
            counts[index] = int(v)
    for i in range(slots):
        if counts[i]:
            hist[i] = 0
    return counts


def take_keyed_log2(hists: Any, key_of: Callable[[Any], Any], slots: int = 64) -> dict:
    """Per-key log2 counts from a hash map keyed by a struct with a ``slot`` field
    (``key_of(key)`` names the histogram); the map is then cleared."""
    from collections import defaultdict
    per: dict = defaultdict(lambda: [0] * slots)
    for k, v in hists.items():
        if k.slot < slots:
            per[key_of(k)][k.slot] += int(v)
    hists.clear()
    return dict(per)


def ip_address(family: int, raw: Any) -> str:
    """The text of an address a program sent as bytes: the first 4 for ``AF_INET`` (2),
    all 16 otherwise (IPv6)."""
    import ipaddress
    if family == 2:
        return str(ipaddress.IPv4Address(bytes(raw[:4])))
    return str(ipaddress.IPv6Address(bytes(raw[:16])))


def disk_name(dev: int) -> str:
    """The name of the block device with kernel dev_t ``dev`` (major << 20 | minor), from
    sysfs; ``major:minor`` when it is gone."""
    major, minor = dev >> 20, dev & 0xFFFFF
    try:
        with open(f"/sys/dev/block/{major}:{minor}/uevent") as f:
            for line in f:
                if line.startswith("DEVNAME="):
                    return line.strip().split("=", 1)[1]
    except OSError:
        pass
    return f"{major}:{minor}"
