"""Generating the pybpf.dsl module of the probe tools (trace, argdist): the attach
decorator of a parsed probe, the string reader its memory needs, the check of
tracepoint field names, and compiling the generated text (kept in linecache, so a
compile error quotes the generated line; ``-v`` prints the whole text)."""

from __future__ import annotations

import linecache
import types
from typing import Any

from pybpf.dsl import compile_module
from pybpf.link.kprobe import kprobes_available

if __package__:     # python3 -m programs.NAME: the helpers are its siblings
    from ._probespec import KprobesNeededError, ProbeSpecError, _resolve
    from ._tracespec import TraceProbe, _walk
else:               # programs/NAME.py, pybpf run NAME (programs/ on the path)
    from _probespec import KprobesNeededError, ProbeSpecError, _resolve
    from _tracespec import TraceProbe, _walk

__all__ = ["string_reader", "decorator", "check_fields", "compile_probes"]


def string_reader(probe: TraceProbe, node) -> str:
    """The helper reading a string at the value of ``node`` in ``probe``'s memory."""
    if probe.kind in ("u",) or probe.library:
        return "probe_read_user_str"
    if probe.kind == "t":
        from pybpf.tracefs import event_format
        field = event_format(probe.name).args.__dict__.get(str(node.value))
        user = field is not None and ("__user" in field.c_type or
                                      probe.name.startswith("syscalls:"))
        return "probe_read_user_str" if user else "probe_read_kernel_str"
    return "probe_read_user_str" if node.user else "probe_read_kernel_str"


def decorator(probe: TraceProbe, pid: int) -> str:
    """The attach decorator text of ``probe``."""
    if probe.kind == "t":
        return f"@tracepoint({probe.name!r})"
    if not probe.library:
        why = kprobes_available()
        if why:
            raise KprobesNeededError(probe.text, why.partition(": ")[2] or why)
        return f"@{'kretprobe' if probe.kind == 'r' else 'kprobe'}({probe.name!r})"
    path = _resolve(probe.library, pid or None)
    upid = pid or -1
    if probe.kind == "u":
        name = probe.name if ":" in probe.name else _usdt_provider(path, probe) + ":" + \
            probe.name
        return f"@usdt({path + ':' + name!r}, pid={upid})"
    deco = "uretprobe" if probe.kind == "r" else "uprobe"
    return f"@{deco}({path + ':' + probe.name!r}, pid={upid})"


def _usdt_provider(path: str, probe: TraceProbe) -> str:
    from pybpf.elf.usdt import usdt_probes
    for p in usdt_probes(path):
        if p.name == probe.name:
            return p.provider
    raise ProbeSpecError(probe.text, len(probe.text.split(":")[0]) + len(probe.library) + 3,
                         f"no USDT probe {probe.name!r} in {path}")


def check_fields(probe: TraceProbe) -> None:
    """args->FIELD names a field of the tracepoint (a located error if not)."""
    if probe.kind != "t":
        return
    from pybpf.tracefs import event_format
    fields = [f.name for f in event_format(probe.name).fields]
    for root in [probe.filter, *probe.values]:
        for node in _walk(root) if root is not None else ():
            if node.kind == "field" and node.value not in fields:
                raise ProbeSpecError(probe.text, node.column, f"{probe.name} has no field "
                                     f"{node.value!r}", "fields: " + ", ".join(fields))


def compile_probes(source: str) -> Any:
    """Compile the generated text (registered with linecache, so errors quote it)."""
    name = "<trace-probes>"
    linecache.cache[name] = (len(source), None, source.splitlines(True), name)
    module = types.ModuleType("_pybpf_trace_probes")
    module.__file__ = name
    # dont_inherit: this file's "from __future__ import annotations" would make the
    # generated Struct annotations strings
    exec(compile(source, name, "exec", dont_inherit=True), module.__dict__)
    return compile_module(module)
