"""Running a lowered bpftrace program (:mod:`.lower`) as bpftrace 0.17 runs it.

Order of a run: the ``-c`` child is forked first (stopped until the probes are
attached, so ``cpid`` is known when compiling), maps are created and programs loaded,
``Attaching N probes...`` is printed (N: every expanded attach point, BEGIN and END
included), the probes are attached, ``BEGIN`` runs (a raw tracepoint program run once
with ``BPF_PROG_TEST_RUN`` in this process), then events are read from the ring until
``exit()``, SIGINT/SIGTERM, the child's or ``-p`` process's end. Then the probes are
detached, ``END`` runs, the last events are printed, then every map (two newlines,
then the maps by name), and everything is released (also on errors).
"""

from __future__ import annotations

import os
import struct
import sys
import time
from typing import Any, Dict, List, Optional, Sequence, TextIO, Union

try:                    # the C module: signal.py turns its constants into enums (~1 ms
    import _signal as signal        # of a start); the handlers are the same
except ImportError:     # pragma: no cover - other interpreters
    import signal                   # type: ignore[no-redef]

from .module import ELAPSED_MAP, EVENTS_MAP, LoweredModule

__all__ = ["Runtime", "Output", "FIRST_WAITS"]

#: the timeouts (seconds) of the reader's first waits after the probes are attached,
#: before the ring's own interval (5 ms) takes over: 3 wake-ups more per run
FIRST_WAITS = (0.001, 0.002, 0.004)


class Output:
    """Where bpftrace's stdout goes, buffered as bpftrace 0.17 buffers it (its own
    buffer, whatever Python's is), with glibc's rules for each message written:
    ``-B line`` (the default) writes out up to the message's last newline (the text
    after it stays buffered), ``-B full`` when 8 KiB (glibc's ``BUFSIZ``) are pending,
    ``-B none`` at once; and whatever the mode, a message bpftrace ends with
    ``std::endl`` flushes everything (``write(..., endl=True)``: the ``Attaching``
    line, maps, ``print()`` values, lost events, ``join()``, every ``-f json`` line),
    while printf, ``time()``, ``cat()`` and ``system()`` output do not. Text is written
    as latin-1 bytes when the stream has a binary buffer (bpftrace passes bytes
    through). ``-o FILE`` is buffered fully (a C++ file stream).

    :meth:`write_lines` takes a batch of printf messages as bytes and leaves the
    stream as writing them one by one would (so a ``system("cat OUT")`` after them
    sees the same bytes), with one write for the batch: in ``line`` mode everything up
    to the batch's last newline goes out at once, so an interactive user sees each
    batch as soon as it is formatted."""

    BUFSIZ = 8192

    def __init__(self, stream: TextIO, buffering: Optional[str]) -> None:
        self.stream = stream
        self.binary = getattr(stream, "buffer", None)
        self.mode = buffering or "line"
        self.pending = bytearray()

    @property
    def size(self) -> int:
        """Bytes waiting to be written."""
        return len(self.pending)

    @property
    def flush_each(self) -> bool:
        """Does every write reach the stream at once (``-B none``)?"""
        return self.mode == "none"

    def write(self, text: str, endl: bool = False) -> None:
        """Write one message; ``endl``: bpftrace ends it with a flush."""
        self.write_lines([text.encode("latin-1", "replace")], endl)

    def write_lines(self, messages: List[bytes], endl: bool = False) -> None:
        """Write messages (latin-1 bytes each, as bpftrace writes them one by one)."""
        pending = self.pending
        if endl or self.mode == "none":
            pending += b"".join(messages)
            self.flush()
        elif self.mode == "line":
            pending += b"".join(messages)
            cut = pending.rfind(b"\n") + 1
            if cut:
                self.flush(cut)
        else:
            size = self.BUFSIZ
            for m in messages:
                pending += m
                if len(pending) >= size:
                    self.flush()
                    pending = self.pending

    def write_json_lines(self, messages: List[bytes]) -> None:
        """Write ``-f json`` lines (each ends with a flush in bpftrace, so the batch
        goes out at once)."""
        self.write_lines(messages, endl=True)

    def flush(self, upto: Optional[int] = None) -> None:
        """Write out what is pending (its first ``upto`` bytes) and flush the stream."""
        if upto is None or upto >= len(self.pending):
            data = bytes(self.pending)
            self.pending = bytearray()
        else:
            data = bytes(self.pending[:upto])
            del self.pending[:upto]
        try:
            if data:
                if self.binary is not None:
                    self.binary.write(data)
                else:
                    self.stream.write(data.decode("latin-1"))
            (self.binary or self.stream).flush()
        except (OSError, ValueError):
            pass


class Runtime:
    """One run (see the module docstring)."""

    def __init__(self, front: Any, mod: LoweredModule, opts: Any, out: Output) -> None:
        self.front, self.mod, self.opts, self.out = front, mod, opts, out
        self.json = opts.output_format == "json"
        self.maps: Dict[str, Any] = {}
        self.progs: Dict[str, Any] = {}
        self.links: List[Any] = []
        self.reader: Any = None
        self.stop = False
        self.exit_code = 0
        self.child: Optional[int] = None
        self._decoder: Any = None
        #: the real stdout when ``-o`` sends the output to a file
        self.console: Optional[Output] = None
        #: where warnings and runtime errors go (the run's stderr)
        self.err: TextIO = sys.stderr

    @property
    def decoder(self) -> Any:
        """The module's :class:`.decode.Decoder`, made (and :mod:`.values` imported) at
        the first value decoded: the printf fast path and a run's start need neither."""
        if self._decoder is None:
            from .decode import Decoder
            self._decoder = Decoder(self.mod, self.maps, self.opts)
        return self._decoder

    # -- setup ------------------------------------------------------------------------
    def load(self) -> None:
        """Create the maps and load every program (:func:`.attach.load_program`)."""
        from .attach import load_program
        for name, decl in self.mod.unit.maps.items():
            self.maps[name] = decl.spec(name).create()
        if ELAPSED_MAP in self.maps:
            self.maps[ELAPSED_MAP][0] = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
        for p in self.mod.programs:
            self.progs[p.name] = load_program(p, self.maps, p.name[:15])

    def probe_count(self) -> int:
        """bpftrace's count for ``Attaching N probes...``."""
        return sum(len(p.attach) for p in self.mod.programs
                   if not getattr(p, "deferred", False))

    def target_pid(self) -> int:
        """The ``-p`` or ``-c`` process (0: none): usdt and watchpoints follow it."""
        if self.opts.pid:
            return int(self.opts.pid)
        return int(self.opts.extras.get("cpid", 0) or 0)

    def attach(self) -> None:
        """Attach every program but BEGIN/END, in bpftrace's order
        (:func:`.attach.attach_order`); raises :class:`.attach.AttachFailure`."""
        from .attach import attach_order, attach_point
        pid = self.target_pid()
        for p, ap in attach_order(self.mod.programs):
            links = attach_point(self.progs[p.name], ap, self.opts, pid, self.warn,
                                 self.note)
            self.links.extend(links)
            if ap.kind in ("watchpoint", "asyncwatchpoint"):    # unwatch() finds them
                self.watchpoints().add(ap.address, links)

    def note(self, line: str) -> None:
        """A bare line on stderr (what libbcc prints when an attach fails)."""
        self.err.write(line + "\n")

    def warn(self, text: str) -> None:
        """A bpftrace ``WARNING:`` line on stderr."""
        self.err.write(f"WARNING: {text}\n")

    def run_iter(self) -> None:
        """An iter program: run the iterator once, its text to the output (bpftrace
        writes what the program printed with seq_printf)."""
        for ln in self.links:
            if hasattr(ln, "read"):
                data = ln.read()
                self.out.write(data.decode("latin-1"))

    @property
    def has_iter(self) -> bool:
        """Is this an iter program (which runs once instead of polling events)?"""
        return any(p.attach and p.attach[0].kind == "iter" for p in self.mod.programs)

    def run_special(self, which: str) -> None:
        """Run the BEGIN or END program once, here."""
        for p in self.mod.programs:
            if p.provider == which:
                self.progs[p.name].test_run()

    # -- events -----------------------------------------------------------------------
    def open_reader(self) -> None:
        """Open the ring's reader; records reach :meth:`on_batch` a batch at a time."""
        from ..events import RingBufReader
        self.prepare_sites()
        self.reader = RingBufReader(self.maps[EVENTS_MAP], batch_callback=self.on_batch,
                                    wakeup="adaptive")

    def prepare_sites(self) -> None:
        """Compile the batch formatter of every printf site that has one
        (:func:`.printf_batch.site_formatter`; with ``-f json`` wrapped into the
        ``printf`` message line; every other kind of record takes :meth:`on_event`)."""
        from .printf_batch import site_formatter
        n = len(self.mod.sites)
        # up to 256 sites, a site's id is the record's first byte: index a full table
        self.fast: List[Any] = [None] * (256 if n <= 256 else n)
        for site in self.mod.sites:
            if site.kind == "printf":
                f = site_formatter(
                    site.fmt or "", site.args,
                    lambda rec, s=site: self.printf_text(s, rec).encode("latin-1",
                                                                          "replace"))
                if f is not None and self.json:
                    f = _json_message(f)
                self.fast[site.id] = f

    def printf_text(self, site: Any, data: bytes) -> str:
        """A printf/system/cat record's text, through the general formatter."""
        from .printf import format_printf
        args = [self.decoder.value(t, data, off) for t, off in site.args]
        return format_printf(site.fmt or "", args)

    def poll(self, timeout: float) -> None:
        """Hand the records that arrive within ``timeout`` seconds to :meth:`on_batch`
        (records kept after an error first)."""
        if self._rest:
            self.on_batch([])
        if self.reader is not None:
            self.reader.poll(timeout)

    def on_batch(self, records: List[bytes]) -> None:
        """A batch of records, in the ring's order: runs of printf records with a batch
        formatter become one block of output; any other record goes through
        :meth:`on_event` in its place (after the block before it is written). If a
        record raises (a KeyboardInterrupt in a thread without the signal handlers),
        the lines before it are written and the records after it are kept for the next
        call, as the reader keeps them for a per-record callback."""
        if self._rest:
            records, self._rest = self._rest + records, []
        if self.dropping():
            return
        fast = getattr(self, "fast", None)
        if fast is None:
            self.prepare_sites()
            fast = self.fast
        n = len(self.mod.sites)
        small = len(fast) == 256          # the id fits the first byte, the rest are 0
        lines: List[bytes] = []
        append = lines.append
        # bpftrace ends every -f json line with std::endl (a flush)
        write = self.out.write_json_lines if self.json else self.out.write_lines
        i = 0
        try:
            for i, rec in enumerate(records):
                if small:
                    f = fast[rec[0]]
                else:
                    sid = int.from_bytes(rec[:8], "little")
                    f = fast[sid] if sid < n else None
                if f is not None:
                    try:
                        append(f(rec))
                        continue
                    except struct.error:  # a short record: the general path decides
                        pass
                if lines:
                    write(lines)
                    lines = []
                    append = lines.append
                self.on_event(rec)
                if self.dropping():
                    return                # what follows exit() or a signal is dropped
        except BaseException:
            self._rest = records[i + 1:]
            raise
        finally:
            if lines:
                write(lines)

    _rest: List[bytes] = []

    def dropping(self) -> bool:
        """Are records dropped from here on? After ``exit()``, and after a SIGINT or
        SIGTERM (once the handlers are installed) until :meth:`finish` starts ending
        the run: bpftrace 0.17 stops handling records at a signal, and a signal that
        comes while END's records are handled drops the rest of them (the maps still
        print)."""
        if self.stop and self.exit_seen:
            return True
        if getattr(self, "signals", None):
            self.stop = self.exit_seen = True
            return True
        return False

    def on_event(self, raw: Any) -> None:
        if self.dropping():
            return
        data = bytes(raw)
        site = self.mod.sites[struct.unpack_from("<Q", data, 0)[0]]
        k = site.kind
        if k == "exit":
            self.stop = True
            self.exit_seen = True
            return
        if k in ("printf", "system", "cat"):
            text = self.printf_text(site, data)
            if k == "printf":
                self.out.write(_json().message_json("printf", text) if self.json else text,
                               endl=self.json)
            elif k == "system":
                import subprocess
                res = subprocess.run(text, shell=True, stdout=subprocess.PIPE)
                body = res.stdout.decode("latin-1")
                self.out.write(_json().message_json("syscall", body) if self.json else body,
                               endl=self.json)
            else:
                try:
                    with open(text, "rb") as fh:
                        body = fh.read(self.opts.cat_bytes_max).decode("latin-1")
                except OSError as exc:
                    self.err.write(f"ERROR: failed to open file '{text}': "
                                     f"{os.strerror(exc.errno or 0)}\n")
                    return
                self.out.write(_json().message_json("cat", body) if self.json else body,
                               endl=self.json)
            return
        if k == "helper_error":
            code = struct.unpack_from("<q", data, site.args[0][1])[0]
            self.out.write(helper_error_text(site.fmt or "", code, site.extra,
                                             self.front, self.json), endl=True)
            return
        if k == "join":
            from .module import JOIN_ARG_SIZE, JOIN_ARGS
            parts = []
            for i in range(JOIN_ARGS):
                a = data[8 + i * JOIN_ARG_SIZE:8 + (i + 1) * JOIN_ARG_SIZE]
                parts.append(a.split(b"\0", 1)[0].decode("latin-1"))
            text = _text().join_text(parts, site.fmt if site.fmt is not None else " ")
            self.out.write(_json().message_json("join", text) if self.json else text + "\n",
                           endl=True)
            return
        if k == "time":
            text = _text().time_text(site.fmt or "%H:%M:%S\n")
            if text is not None:
                self.out.write(_json().message_json("time", text) if self.json else text,
                               endl=self.json)
            return
        if k == "watchpoint":
            self.watchpoints().on_record(site, data)
            return
        if k == "unwatch":
            self.watchpoints().unwatch(struct.unpack_from("<Q", data, site.args[0][1])[0])
            return
        if k in ("clear", "zero"):
            self.decoder.clear(site.fmt, zero=k == "zero")
            return
        if k == "print":
            top, div = site.extra
            m = self.decoder.map_data(site.fmt)
            if self.json:
                self.out.write(_json().map_json(m, top, div), endl=True)
            else:
                self.out.write(_text().map_text(m, top, div), endl=True)
            return
        if k == "print_value":
            t, off = site.args[0]
            v = self.decoder.value(t, data, off)
            self.out.write(_json().value_json(v) if self.json else _text().value_text(v) + "\n",
                           endl=True)
            return

    exit_seen = False
    #: the watchpoints' breakpoints (:mod:`.watchpoints`), made when first needed
    watch: Any = None

    def watchpoints(self) -> Any:
        """The run's :class:`.watchpoints.Watchpoints`."""
        if self.watch is None:
            from .watchpoints import Watchpoints
            self.watch = Watchpoints(self)
        return self.watch

    # -- the run ----------------------------------------------------------------------
    def install_signals(self) -> None:
        """SIGINT/SIGTERM only set a flag from here to :meth:`restore_signals` (the run
        ends, END runs and the maps print, as bpftrace does on Ctrl-C)."""
        self.signals: List[int] = []
        self._saved: Dict[int, Any] = {}

        def on_signal(signum: int, frame: Any) -> None:
            self.signals.append(signum)

        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                self._saved[sig] = signal.signal(sig, on_signal)
            except (ValueError, OSError):
                pass

    def restore_signals(self) -> None:
        """Put back the handlers :meth:`install_signals` replaced."""
        for sig, h in getattr(self, "_saved", {}).items():
            try:
                signal.signal(sig, h)
            except (ValueError, OSError):
                pass
        self._saved = {}

    def wait(self) -> None:
        """Poll until exit(), a signal, the child's end or the -p process's end. The
        first waits after attaching are short (:data:`FIRST_WAITS`): the run's first
        records print about a millisecond after they are made, as bpftrace's (whose
        perf buffer wakes its reader for every record); then the ring's wake-up policy
        bounds the wait (records posted without a wake-up wait up to its interval)."""
        if not hasattr(self, "signals"):
            self.signals = []
        first = list(FIRST_WAITS)
        while not self.stop and not self.signals:
            self.poll(first.pop(0) if first else 0.1)
            self.lost_notice()
            if self.child is not None:
                done, _ = os.waitpid(self.child, os.WNOHANG)
                if done:
                    self.child = None
                    self.poll(0)
                    break
            if self.opts.pid is not None and not _alive(self.opts.pid):
                break

    def finish(self) -> None:
        """Detach, run END, print the last events and the maps."""
        if getattr(self.mod, "watchpoints", None):
            self.watchpoints().detached = True    # a late setup record sets nothing
        for ln in self.links:
            _close(ln)
        self.links = []
        if getattr(self, "signals", None):
            # the signal that ended the run: what is left in the ring is printed, as
            # 0.17 resets its flags before END and drains; another one drops the rest
            self.signals.clear()
            self.stop = self.exit_seen = False
        # what the probes sent before they were detached; after exit() it is dropped
        # (as 0.17 drops it), so this drain comes after the detach: a record made
        # between a drain and the detach would otherwise be printed after END's reset
        self.poll(0)
        self.stop = False
        self.exit_seen = False
        self.run_special("END")
        self.poll(0)
        self.lost_notice()
        maps = [self.decoder.map_data(n) for n in sorted(self.mod.layouts)]
        text = _json().exit_maps_json(maps) if self.json else _text().exit_maps_text(maps)
        if self.console is not None:
            # bpftrace writes the two newlines before the maps to stdout, even with -o
            self.console.write(text[:2])
            self.console.flush()
            text = text[2:]
        self.out.write(text, endl=True)

    lost_reported = 0

    def lost_notice(self) -> None:
        """``Lost N events`` for the records the ring dropped since the last notice
        (checked after each batch of events, as bpftrace reports a perf buffer's lost
        records where they occur in the stream)."""
        from ..compiler.unit import DROPS_MAP
        if DROPS_MAP not in self.maps:
            return
        slot = self.mod.unit.drop_slots.get(EVENTS_MAP)
        if slot is None:
            return
        lost = sum(self.maps[DROPS_MAP][slot]) - self.lost_reported
        if lost > 0:
            self.lost_reported += lost
            self.out.write(_json().lost_events_json(lost) if self.json
                           else _text().lost_events_text(lost), endl=True)

    def close(self) -> None:
        """Release everything (idempotent), the ``-c`` child too: one still running when
        the run ends is killed and reaped, as bpftrace 0.17 ends it."""
        if self.child is not None:
            import signal
            try:
                os.kill(self.child, signal.SIGKILL)
                os.waitpid(self.child, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.child = None
        for ln in self.links:
            _close(ln)
        self.links = []
        if getattr(self.mod, "watchpoints", None):
            self.watchpoints().release()
        if self.reader is not None:
            _close(self.reader)
            self.reader = None
        for group in (self.progs, self.maps):
            for obj in group.values():
                _close(obj)
            group.clear()


def _text():
    """:mod:`.output`, imported at the first value, map or notice printed as text."""
    from . import output
    return output


def _json():
    """:mod:`.json_output`, imported at the first ``-f json`` message (text output never
    needs it)."""
    from . import json_output
    return json_output


def _json_message(text: Any) -> Any:
    """A printf site's batch formatter for ``-f json``: ``text``'s line as the
    ``{"type": "printf", "data": ...}`` message (:func:`.json_output.message_json`)."""
    from .values import json_escape
    head, tail = b'{"type": "printf", "data": "', b'"}\n'

    def line(rec: bytes) -> bytes:
        return head + json_escape(text(rec).decode("latin-1")).encode("latin-1") + tail
    return line


def helper_error_text(helper: str, code: int, loc: Any, front: Any, json: bool) -> str:
    """A ``-k`` helper error as bpftrace 0.17 prints it: a located ``WARNING: Failed to
    HELPER: strerror (-N)`` (``: N`` for a non-negative code) with the source line, or
    the ``helper_error`` JSON line."""
    if json:
        line, col = (loc.line, loc.col) if loc is not None else (0, 0)
        return (f'{{"type": "helper_error", "helper": "{helper}", "retcode": {code}, '
                f'"line": {line}, "col": {col}}}\n')
    from .errors import Diagnostic, render_diagnostic
    why = f"{os.strerror(-code)} ({code})" if code < 0 else str(code)
    diag = Diagnostic(loc, f"Failed to {helper}: {why}", "WARNING")
    return render_diagnostic(diag, front.source, front.filename) + "\n"


def _close(obj: Any) -> None:
    try:
        obj.close()
    except Exception:                                          # pragma: no cover
        pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def fork_child(command: Union[str, Sequence[str]]) -> tuple:
    """Fork ``-c``'s command (its text, split as a shell would split words, or its
    words), held until :func:`release_child`: (pid, write end)."""
    import shlex
    argv = shlex.split(command) if isinstance(command, str) else list(command)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:                                               # pragma: no cover
        try:
            os.close(w)
            os.read(r, 8)           # one 8-byte read, as bpftrace's child reads its eventfd
            os.execvp(argv[0], argv)
        finally:
            os._exit(127)
    os.close(r)
    return pid, w


def release_child(w: int) -> None:
    """Let the ``-c`` child exec its command."""
    os.write(w, (1).to_bytes(8, "little"))
    os.close(w)
