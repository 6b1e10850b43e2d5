"""Function-form watchpoints at run time (``watchpoint:FUNC+argN:LEN:MODE`` and
``asyncwatchpoint:...``), as bpftrace 0.17 runs them.

The setup uprobe on FUNC (:func:`.lower_probes._watch_setup`) sends a ``watchpoint``
record with argument N; :meth:`Watchpoints.on_record` then puts a hardware breakpoint
(``PERF_TYPE_BREAKPOINT``) on that address in the traced process, running the
watchpoint's program. What 0.17 does, kept here:

* a watchpoint is set again only when its address changes: a repeated call with the
  same argument is ignored, a new address adds a breakpoint (the old ones stay). Like
  0.17, the first "previous address" is the argument number, so ``+arg0`` ignores a
  NULL argument;
* when the CPU's debug registers are used up (x86-64 has 4 per thread) the line
  ``Failed to attach watchpoint probe. You are out of watchpoint registers.`` goes to
  the output (a ``lost_events`` message in JSON) and the run goes on;
* any other refusal prints ``ERROR: Error attaching probe: NAME: strerror`` and
  ``Unable to attach real watchpoint probe`` on stderr; a sync watchpoint then ends
  the run with status 1 (0.17 aborts), an async one goes on;
* ``watchpoint`` (not async) stopped the process with ``SIGSTOP`` in the uprobe; it
  gets ``SIGCONT`` once the breakpoint is set (or refused). ``Failed to SIGCONT
  tracee: ...`` ends the run as 0.17 ends it (0.17 aborts; here status 1).

The breakpoints are links of the run (:attr:`Runtime.links`): they are detached with
the other probes and closed with the run. ``unwatch(addr)`` detaches watchpoints as
0.17 does (:meth:`Watchpoints.unwatch`); 0.17 also detaches any other probe whose
address is ``addr`` (uprobes given by address; with 0 every probe named by function),
pybpf only watchpoints. At the end of the run the process of a sync watchpoint gets a
last ``SIGCONT`` (a setup probe may have stopped it after the tracer stopped reading;
0.17 would leave it stopped); a ``-c`` child still running is then ended with the run,
as 0.17 ends it.
"""

from __future__ import annotations

import os
import signal
import struct
from typing import Any, Dict, List

from .errors import WatchpointAbort

__all__ = ["Watchpoints", "WatchpointAbort", "OUT_OF_REGISTERS"]

#: 0.17's message when no debug register is left
OUT_OF_REGISTERS = "Failed to attach watchpoint probe. You are out of watchpoint registers."


class Watchpoints:
    """The breakpoints of one run's function-form watchpoints (see the module
    docstring). ``rt`` is the :class:`~.runtime.Runtime`."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt
        #: watchpoint id -> the address it was last set on (0.17's ``Probe::address``)
        self.last: Dict[int, int] = {i: ap.address
                                     for i, (_name, ap) in enumerate(rt.mod.watchpoints)}
        #: watchpoint id -> its breakpoints (one per address it was set on)
        self.links: Dict[int, List[Any]] = {}
        #: absolute watchpoints: address -> their breakpoints
        self.absolute: Dict[int, List[Any]] = {}

    #: the run's probes are detached: records still coming set nothing
    detached = False

    def release(self) -> None:
        """At the run's end: a sync watchpoint's process may have been stopped by a
        setup probe whose record was never handled (the run ended first, or the
        record came after ``exit()``): continue it rather than leave it stopped."""
        pid = self.rt.target_pid()
        if pid > 0 and any(not ap.is_async for _n, ap in self.rt.mod.watchpoints):
            try:
                os.kill(pid, signal.SIGCONT)
            except OSError:
                pass

    def add(self, address: int, links: List[Any]) -> None:
        """Note the breakpoints of an absolute watchpoint on ``address`` (they are
        links of the run too)."""
        self.absolute.setdefault(address, []).extend(links)

    def unwatch(self, address: int) -> None:
        """``unwatch(addr)``, silently when nothing matches: detach the absolute
        watchpoints on ``address`` and every breakpoint of each function-form
        watchpoint whose last address is ``address`` (in 0.17 a watchpoint's
        breakpoints all share its one address, the last it was set on: its earlier
        addresses go too, and an earlier address alone matches nothing). The
        watchpoint keeps that address as its last, so a call with it again sets
        nothing."""
        gone = self.absolute.pop(address, [])
        for wp_id, last in self.last.items():
            if last == address:
                gone += self.links.pop(wp_id, [])
        for ln in gone:
            if ln in self.rt.links:
                self.rt.links.remove(ln)
            try:
                ln.close()
            except OSError:                                    # pragma: no cover
                pass

    def on_record(self, site: Any, data: bytes) -> None:
        """A setup probe's record: set watchpoint ``site.extra`` on the address it
        carries, then let a stopped process go on."""
        from .attach import AttachFailure, WatchRegistersFull, attach_watchpoint_at
        rt = self.rt
        wp_id = site.extra
        addr = struct.unpack_from("<Q", data, site.args[0][1])[0]
        name, ap = rt.mod.watchpoints[wp_id]
        pid = rt.target_pid()
        failed = False
        if self.last[wp_id] != addr and not self.detached:
            self.last[wp_id] = addr
            try:
                link = attach_watchpoint_at(rt.progs[name], ap, pid, addr)
                rt.links.append(link)
                self.links.setdefault(wp_id, []).append(link)
            except WatchRegistersFull:
                if rt.json:
                    from .json_output import message_json
                    rt.out.write(message_json("lost_events", OUT_OF_REGISTERS), endl=True)
                else:
                    rt.out.write(OUT_OF_REGISTERS + "\n", endl=True)
            except AttachFailure as exc:
                rt.err.write(f"ERROR: {exc}\nUnable to attach real watchpoint probe\n")
                failed = True
        if ap.is_async:
            return
        try:
            if pid <= 0:
                raise ProcessLookupError(3, os.strerror(3))
            os.kill(pid, signal.SIGCONT)
        except OSError as exc:
            rt.err.write(f"Failed to SIGCONT tracee: {os.strerror(exc.errno or 0)}\n")
            failed = True
        if failed:
            rt.err.flush()
            raise WatchpointAbort(f"watchpoint {ap.name()} could not be set")
