"""bpftrace 0.17's rules for function calls: argument counts and types, where a call may
stand (``@x = count()`` only as a whole map assignment, ``printf`` only as a
statement), ``--unsafe`` gating (``system``, ``signal``, ``override``), which probe
types allow ``reg``/``uaddr``/``signal``/``path``/``override``, literal arguments
(``lhist`` bounds, stack limits, ``strncmp`` sizes), ``str``/``buf`` sizes with
``BPFTRACE_STRLEN``, and printf-style format strings against their arguments
(:func:`validate_format`). Every message is 0.17's, at the call's location.

Call kinds (for the lowering stage): *map aggregations* ``count sum avg min max stats
hist lhist``; *async* (done in user space) ``printf system cat print clear zero exit
time join`` and the values ``ksym usym strftime cgroup_path`` formatted at print
time; *compile-time* ``kaddr uaddr cgroupid sizeof pton``; the rest run in the kernel.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Dict, List, Optional

from . import ast as A
from .types import (MAX_STACK_SIZE, SizedType, create_aggregation, create_array,
                    create_buffer, create_int, create_none, create_pointer,
                    create_simple, create_stack, create_string, create_uint,
                    create_uint64, node_type as _ty, typestr)

__all__ = ["call", "offsetof", "validate_format", "UNSAFE", "ASYNC", "COMPILE_TIME", "AGGREGATION",
           "PRINTF_TYPES", "PRINTK_TYPES", "SIGNALS", "REGISTERS"]

UNSAFE = ("system", "signal", "override")
ASYNC = ("printf", "system", "cat", "print", "clear", "zero", "exit", "time", "join")
COMPILE_TIME = ("kaddr", "uaddr", "cgroupid", "sizeof", "pton")
AGGREGATION = ("count", "sum", "avg", "min", "max", "stats", "hist", "lhist")

#: printf conversions -> the kind of value they take
PRINTF_TYPES: Dict[str, str] = {"s": "string", "r": "buffer", "rx": "buffer",
                                "rh": "buffer", "c": "integer"}
for _len in ("", "hh", "h", "l", "ll", "j", "z", "t"):
    for _spec in "duoxXp":
        PRINTF_TYPES[_len + _spec] = "integer"
#: what ``debugf`` (bpf_trace_printk) takes
PRINTK_TYPES = {k: PRINTF_TYPES[k] for k in ("d", "u", "x", "ld", "lu", "lx", "lld",
                                              "llu", "llx", "p", "s")}
_SPEC_RE = re.compile(r"%-?[0-9]*(\.[0-9]+)?(" + "|".join(
    sorted(PRINTF_TYPES, key=len, reverse=True)) + ")")
_AS_STRING = ("ksym", "usym", "probe", "username", "kstack", "ustack", "inet",
              "timestamp", "mac_address", "cgroup_path", "strerror")
#: the signals ``signal()`` knows by name
SIGNALS = {"SIGABRT": 6, "SIGALRM": 14, "SIGBUS": 7, "SIGCHLD": 17, "SIGCONT": 18,
           "SIGFPE": 8, "SIGHUP": 1, "SIGILL": 4, "SIGINT": 2, "SIGKILL": 9, "SIGPIPE": 13,
           "SIGPOLL": 29, "SIGQUIT": 3, "SIGSEGV": 11, "SIGSTOP": 19, "SIGSYS": 31,
           "SIGTERM": 15, "SIGTRAP": 5, "SIGTSTP": 20, "SIGTTIN": 21, "SIGTTOU": 22,
           "SIGURG": 23, "SIGUSR1": 10, "SIGUSR2": 12, "SIGVTALRM": 26, "SIGWINCH": 28,
           "SIGXCPU": 24, "SIGXFSZ": 25}
#: ``reg()`` names on x86-64 (pt_regs order); 0.17's table also accepts ""
REGISTERS = ("r15", "r14", "r13", "r12", "bp", "bx", "r11", "r10", "r9", "r8", "ax", "cx",
             "dx", "si", "di", "orig_ax", "ip", "cs", "flags", "sp", "ss", "")
_AVAILABLE = {
    "reg": ("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "profile", "interval",
            "software", "hardware", "watchpoint", "asyncwatchpoint"),
    "uaddr": ("usdt", "uretprobe", "uprobe"),
    "signal": ("kprobe", "kretprobe", "uprobe", "uretprobe", "usdt", "tracepoint",
               "profile", "kfunc", "kretfunc"),
}


def validate_format(fmt: str, args: List[SizedType], func: str) -> str:
    """0.17's ``validate_format_string``: "" when ``args`` fit ``fmt``, else the message
    (``printf: Not enough arguments for format string (0 supplied, 1 expected)``)."""
    tokens = list(_SPEC_RE.finditer(fmt))
    if len(args) < len(tokens):
        return (f"{func}: Not enough arguments for format string ({len(args)} supplied, "
                f"{len(tokens)} expected)")
    if len(args) > len(tokens):
        return (f"{func}: Too many arguments for format string ({len(args)} supplied, "
                f"{len(tokens)} expected)")
    if func == "debugf" and len(args) > 3:
        return f"{func}: Cannot use more than 3 conversion specifiers"
    table = PRINTK_TYPES if func == "debugf" else PRINTF_TYPES
    for t, m in zip(args, tokens):
        kind = t.kind
        if kind in _AS_STRING:
            kind = "string"
        elif kind == "pointer":
            kind = "integer"
        token = m.group(0)[1:].lstrip("-").lstrip("0123456789.")
        want = table.get(token)
        if want is None:
            return f"{func}: Unknown format string token: %{token}"
        if kind != want:
            return (f"{func}: %{token} specifier expects a value of type {want} "
                    f"({typestr(kind)} supplied)")
    return ""


class _Call:
    """Checks of one call (bpftrace's check_* helpers)."""

    def __init__(self, a: Any, e: A.Call) -> None:
        self.a, self.e, self.f = a, e, e.name
        self.args = e.args

    def err(self, msg: str) -> None:
        self.a.err(self.e.loc, msg)

    def assignment(self, want_map: bool, want_var: bool, want_key: bool) -> bool:
        where = self.a.parent(self.e)
        f = self.f
        if want_map and want_var and want_key:
            ok, msg = where is not None, "should be assigned to a map or a variable, or " \
                "be used as a map key"
        elif want_map and want_var:
            ok, msg = where in ("map", "var"), "should be assigned to a map or a variable"
        elif want_map and want_key:
            ok, msg = where in ("map", "key"), "should be assigned to a map or be used " \
                "as a map key"
        elif want_var and want_key:
            ok, msg = where in ("var", "key"), "should be assigned to a variable or be " \
                "used as a map key"
        elif want_map:
            ok, msg = where == "map", "should be directly assigned to a map"
        elif want_var:
            ok, msg = where == "var", "should be assigned to a variable"
        elif want_key:
            ok, msg = where == "key", "should be used as a map key"
        else:
            ok, msg = where is None, "should not be used in an assignment or as a map key"
        if not ok:
            self.err(f"{f}() {msg}")
        return ok

    def nargs(self, n: int) -> bool:
        have = len(self.args)
        if have == n:
            return True
        what = ("requires no arguments" if n == 0 else "requires one argument" if n == 1
                else f"requires {n} arguments")
        self.err(f"{self.f}() {what} ({have} provided)")
        return False

    def varargs(self, lo: int, hi: int) -> bool:
        have = len(self.args)
        if have < lo:
            what = ("requires at least one argument" if lo == 1
                    else f"requires at least {lo} arguments")
        elif have > hi:
            what = ("requires no arguments" if hi == 0 else "takes up to one argument"
                    if hi == 1 else f"takes up to {hi} arguments")
        else:
            return True
        self.err(f"{self.f}() {what} ({have} provided)")
        return False

    def arg(self, kind: str, i: int, literal: bool = False, fail: bool = True) -> bool:
        if not self.args or i >= len(self.args):
            return False
        node = self.args[i]
        t = _ty(node)
        if literal and (not self.a.is_literal(node) or t.kind != kind):
            if fail:
                self.err(f"{self.f}() expects a {typestr(kind)} literal "
                         f"({typestr(t.kind)} provided)")
                if kind == "string" and isinstance(node, A.PositionalParameter):
                    self.a.say(f"Use str(${node.n}) to treat ${node.n} as a string")
            return False
        if self.a.final and t.kind != kind:
            if fail:
                self.err(f"{self.f}() only supports {typestr(kind)} arguments "
                         f"({typestr(t.kind)} provided)")
            return False
        return True

    def set(self, t: SizedType) -> None:
        self.e.ty = t                                   # type: ignore[attr-defined]


def call(a: Any, e: A.Call) -> None:
    """``visit(Call)``: visit the arguments (with the function as context), then apply
    the function's rules and give the call its type."""
    f = e.name
    if not a.opts.unsafe and f in UNSAFE:
        a.err(e.loc, f"{f}() is an unsafe function being used in safe mode")
    old = a.func_
    a.func_ = f
    try:
        for i, x in enumerate(e.args):
            a.func_arg_idx = i
            a.expr(x)
        for ap in a.aps:
            allowed = _AVAILABLE.get(f)
            if ap.kind == "invalid" or (allowed is not None and ap.kind not in allowed):
                a.err(e.loc, f'{f} can not be used with "{ap.provider}" probes')
        handler = _HANDLERS.get(f)
        c = _Call(a, e)
        if handler is None:
            c.err(f"Unknown function: '{f}'")
            c.set(create_none())
        else:
            handler(c)
    finally:
        a.func_ = old
        a.func_arg_idx = -1


# -- map aggregations -------------------------------------------------------------------

def _hist(c: _Call) -> None:
    c.assignment(True, False, False)
    c.nargs(1)
    c.arg("integer", 0)
    c.set(create_aggregation("hist"))


def _lhist(c: _Call) -> None:
    c.assignment(True, False, False)
    if c.nargs(4):
        c.arg("integer", 0)
        for i in (1, 2, 3):
            c.arg("integer", i, True)
    if c.a.final:
        lo, hi, step = (c.a.int_literal(x) for x in c.args[1:4])
        for v, what in ((lo, "min"), (hi, "max"), (step, "step")):
            if v is None:
                c.err(f"lhist: invalid {what} value")
                return
        assert lo is not None and hi is not None and step is not None
        if step <= 0:
            c.err(f"lhist() step must be >= 1 ({step} provided)")
        else:
            buckets = int((hi - lo) / step)
            if buckets > 1000:
                c.err(f"lhist() too many buckets, must be <= 1000 (would need {buckets})")
        if lo < 0:
            c.err(f"lhist() min must be non-negative (provided min {lo})")
        if lo > hi:
            c.err(f"lhist() min must be less than max (provided min {lo} and max {hi})")
        if hi - lo < step:
            c.err(f"lhist() step is too large for the given range (provided step {step} "
                  f"for range {hi - lo})")
    c.set(create_aggregation("lhist"))


def _count(c: _Call) -> None:
    c.assignment(True, False, False)
    c.nargs(0)
    c.set(create_aggregation("count", True))


def _signed_agg(c: _Call) -> None:
    sign = False
    c.assignment(True, False, False)
    if c.nargs(1):
        c.arg("integer", 0)
        sign = _ty(c.args[0]).signed
    c.set(create_aggregation(c.f, sign))


def _avg(c: _Call) -> None:
    c.assignment(True, False, False)
    c.nargs(1)
    c.arg("integer", 0)
    c.set(create_aggregation(c.f, True))


def _map_arg(c: _Call) -> None:
    """clear(@m), zero(@m)."""
    c.assignment(False, False, False)
    if c.nargs(1):
        arg = c.args[0]
        if not isinstance(arg, A.Map):
            c.err(f"{c.f}() expects a map to be provided")
        else:
            arg.skip_key_validation = True              # type: ignore[attr-defined]
            if arg.keys:
                c.err(f"The map passed to {c.f}() should not be indexed by a key")


def _delete(c: _Call) -> None:
    c.assignment(False, False, False)
    if c.nargs(1) and not isinstance(c.args[0], A.Map):
        c.err("delete() expects a map to be provided")
    c.set(create_none())


# -- strings, buffers, symbols, addresses -----------------------------------------------

def _str(c: _Call) -> None:
    a = c.a
    if c.varargs(1, 2):
        arg = c.args[0]
        t = _ty(arg)
        if not t.is_int() and not t.is_ptr():
            c.err(f"str() expects an integer or a pointer type as first argument ({t} "
                  "provided)")
        r = create_string(a.opts.strlen)
        if a.has_pos_param:
            if isinstance(arg, A.PositionalParameter):
                c.e.is_literal = True                   # type: ignore[attr-defined]
            elif not (isinstance(arg, A.Binop) and (
                    isinstance(arg.left, A.PositionalParameter)
                    or isinstance(arg.right, A.PositionalParameter))):
                c.err("str() only accepts positional parameters directly or with a single "
                      "constant offset added")
        if a.final and len(c.args) == 2 and c.arg("integer", 1):
            size = c.args[1]
            if a.is_literal(size):
                v = a.int_literal(size)
                if v is not None and v < 0:
                    c.err(f"strcannot use negative length ({v})")
        r.addrspace = t.addrspace
        c.set(r)
    a.has_pos_param = False


def _buf(c: _Call) -> None:
    a = c.a
    if not c.varargs(1, 2):
        return
    arg = c.args[0]
    t = _ty(arg)
    if a.final and t.kind not in ("integer", "string", "pointer", "array"):
        c.err(f"buf() expects an integer, string, or array argument but saw "
              f"{typestr(t.kind)}")
    limit = a.opts.strlen
    size = limit
    if len(c.args) == 1:
        if t.kind == "array":
            size = t.num_elements * (t.elem.size if t.elem is not None else 0)
        elif a.final:
            c.err(f"buf() expects a length argument for non-array type {typestr(t.kind)}")
    else:
        if a.final:
            c.arg("integer", 1)
        n = c.args[1]
        if _ty(n).is_int() and a.is_literal(n):
            v = a.int_literal(n)
            if v is not None:
                if v < 0:
                    c.err(f"buf cannot use negative length ({v})")
                size = v % (1 << 64)
            else:
                c.err("buf: invalid length value")
    if size > limit:
        if a.final:
            a.warn(c.e.loc, f"buf() length is too long and will be shortened to {limit} "
                            "bytes (see BPFTRACE_STRLEN)")
        size = limit
    r = create_buffer(size + 1)
    r.addrspace = "kernel"
    c.set(r)


def _sym(c: _Call) -> None:
    if c.nargs(1):
        t = _ty(c.args[0])
        if not t.is_int() and not t.is_ptr():
            c.err(f"{c.f}() expects an integer or pointer argument")
    c.set(create_simple(c.f))


def _ntop(c: _Call) -> None:
    if not c.varargs(1, 2):
        return
    arg = c.args[0]
    if len(c.args) == 2:
        arg = c.args[1]
        c.arg("integer", 0)
    t = _ty(arg)
    if t.kind not in ("integer", "string", "array"):
        c.err(f"ntop() expects an integer or array argument, got {typestr(t.kind)}")
    if t.kind in ("array", "string") and t.size not in (4, 16):
        c.err("ntop() argument must be 4 or 16 bytes in size")
    c.set(create_simple("inet", 24))


def _pton(c: _Call) -> None:
    import socket                   # only here: not imported on every start-up
    if not c.nargs(1):
        return
    addr = c.a.string_literal(c.args[0])
    if "." in addr:
        family, n = socket.AF_INET, 4
    elif ":" in addr:
        family, n = socket.AF_INET6, 16
    else:
        c.err(f"pton() expects an string argument of an IPv4/IPv6 address, got {addr}")
        return
    try:
        socket.inet_pton(family, addr)
    except (OSError, ValueError):
        c.err(f"pton() expects a valid IPv4/IPv6 address, got {addr}")
        return
    t = create_array(n, create_uint(8))
    t.addrspace, t.is_internal = "kernel", True
    c.set(t)


def _join(c: _Call) -> None:
    c.assignment(False, False, False)
    c.set(create_none())
    if not c.varargs(1, 2) or not c.a.final:
        return
    t = _ty(c.args[0])
    if not t.is_int() and not t.is_ptr():
        c.err(f"() only supports int or pointer arguments ({typestr(t.kind)} provided)")
    if len(c.args) > 1:
        c.arg("string", 1, True)


def _reg(c: _Call) -> None:
    from .semantic import find_addrspace
    if c.nargs(1) and c.arg("string", 0, True):
        name = c.a.string_literal(c.args[0])
        if name not in REGISTERS:
            c.err(f"'{name}' is not a valid register on this architecture (x86_64)")
    t = create_uint64()
    t.addrspace = find_addrspace(c.a.single_provider_type())
    c.set(t)


def _kaddr(c: _Call) -> None:
    if c.nargs(1):
        c.arg("string", 0, True)
    t = create_uint64()
    t.addrspace = "kernel"
    c.set(t)


def _uaddr(c: _Call) -> None:
    if not c.nargs(1):
        return
    if not c.arg("string", 0, True):
        return
    name = c.a.string_literal(c.args[0])
    if not re.fullmatch(r"[a-zA-Z0-9./_-]+", name):
        c.err(f'uaddr() expects a string that is a valid symbol (^[a-zA-Z0-9./_-]+$) as '
              f'input ("{name}" provided)')
        return
    sizes: List[int] = []
    for ap in c.a.aps:
        size = _symbol_size(ap.target, name)
        if size is None:
            c.err(f"Could not resolve symbol: {ap.target}:{name}")
            size = 0
        sizes.append(size)
    for i in range(1, len(sizes)):
        if sizes[0] != sizes[i]:
            c.err(f'Symbol size mismatch between probes. Symbol "{name}" has size '
                  f'{sizes[0]} for probe "{c.a.aps[0].name("")}" but size {sizes[i]} for '
                  f'probe "{c.a.aps[i].name("")}"')
    bits = sizes[0] * 8 if sizes and sizes[0] in (1, 2, 4) else 64
    c.set(create_pointer(create_int(bits), "user"))


def _symbol_size(path: str, name: str) -> Optional[int]:
    """The size of data symbol (``STT_OBJECT``) ``name`` in ELF file ``path`` (None if
    absent or at address 0), as bcc's symbol walk finds it for 0.17."""
    from pybpf.elf.symbols import ElfFile
    try:
        with ElfFile(path) as elf:
            for s in elf.find_symbols(name):
                if s.type == 1 and s.value:
                    return int(s.size)
    except (OSError, ValueError, LookupError):
        return None
    return None


def _cgroupid(c: _Call) -> None:
    if c.nargs(1):
        c.arg("string", 0, True)
    c.set(create_uint64())


def _printf(c: _Call) -> None:
    a = c.a
    c.assignment(False, False, False)
    if c.varargs(1, 128):
        c.arg("string", 0, True)
        if a.final:
            types = []
            for x in c.args[1:]:
                t = _ty(x).copy()
                if not t.is_aggregate() and t.kind != "timestamp":
                    t.set_size(8)
                types.append(t)
            fmt = c.args[0]
            text = fmt.value.decode("latin-1") if isinstance(fmt, A.String) else \
                a.string_literal(fmt)
            msg = validate_format(text, types, c.f)
            if msg:
                c.err(msg)
    if c.f == "debugf" and a.final:
        a.warn(c.e.loc, "The debugf() builtin is not recommended for production use. For "
                        "more information see bpf_trace_printk in bpf-helpers(7).")
    c.set(create_none())


def _exit(c: _Call) -> None:
    c.assignment(False, False, False)
    c.nargs(0)


def _print(c: _Call) -> None:
    a = c.a
    c.assignment(False, False, False)
    if a.loop_depth > 0 and a.final:
        a.warn(c.e.loc, "Due to it's asynchronous nature using 'print()' in a loop can "
                        "lead to unexpected behavior. The map will likely be updated "
                        "before the runtime can 'print' it.")
    if not c.varargs(1, 3):
        return
    arg = c.args[0]
    t = _ty(arg)
    if isinstance(arg, A.Map):
        arg.skip_key_validation = True                  # type: ignore[attr-defined]
        if arg.keys:
            c.err("The map passed to print() should not be indexed by a key")
        if a.final:
            if len(c.args) > 1:
                c.arg("integer", 1, True)
            if len(c.args) > 2:
                c.arg("integer", 2, True)
            if t.kind == "stats" and len(c.args) > 1:
                a.warn(c.e.loc, "print()'s top and div arguments are ignored when used on "
                                "stats() maps.")
    elif t.is_printable():
        if len(c.args) != 1:
            c.err(f"Non-map print() only takes 1 argument, {len(c.args)} found")
    elif a.final:
        c.err(f"{t} type passed to print() is not printable")


def _cgroup_path(c: _Call) -> None:
    c.set(create_simple("cgroup_path"))
    if c.varargs(1, 2):
        c.arg("integer", 0)
        if len(c.args) > 1:
            c.arg("string", 1)


def _time(c: _Call) -> None:
    c.assignment(False, False, False)
    if c.varargs(0, 1) and c.a.final and c.args:
        c.arg("string", 0, True)


def _strftime(c: _Call) -> None:
    c.set(create_simple("timestamp"))
    if c.varargs(2, 2) and c.a.final and c.arg("string", 0, True):
        c.arg("integer", 1)


def _stack(c: _Call) -> None:
    kernel = c.f == "kstack"
    c.set(create_stack(kernel))
    if not c.varargs(0, 2):
        return
    limit, mode = 127, "bpftrace"

    def take_limit(i: int) -> None:
        nonlocal limit
        if c.arg("integer", i, True):
            v = c.a.int_literal(c.args[i])
            if v is not None:
                limit = v % (1 << 64)
            else:
                c.err(f"{c.f}: invalid limit value")
    if len(c.args) == 1:
        if _ty(c.args[0]).kind == "stack_mode":
            if c.arg("stack_mode", 0, True):
                mode = _ty(c.args[0]).stack_mode
        else:
            take_limit(0)
    elif len(c.args) == 2:
        if c.arg("stack_mode", 0, True):
            mode = _ty(c.args[0]).stack_mode
        take_limit(1)
    if limit > MAX_STACK_SIZE:
        c.err(f"{c.f}([int limit]): limit shouldn't exceed {MAX_STACK_SIZE}, {limit} given")
    c.set(create_stack(kernel, limit, mode))


def _signal(c: _Call) -> None:
    a = c.a
    if not a.opts.has("send_signal"):
        c.err("BPF_FUNC_send_signal not available for your kernel version")
    c.assignment(False, False, False)
    if not c.varargs(1, 1):
        return
    arg = c.args[0]
    t = _ty(arg)
    if t.kind == "string" and a.is_literal(arg):
        sig = a.string_literal(arg)
        name = sig.upper()
        if name and not name.startswith("S"):
            name = "SIG" + name
        if not sig or SIGNALS.get(name, -1) < 1:
            c.err(f"{sig} is not a valid signal")
    elif t.is_int() and a.is_literal(arg):
        v = a.int_literal(arg)
        if v is None or v < 1 or v > 64:
            c.err(f"{v if v is not None else 0} is not a valid signal, allowed range: [1,64]")
    elif t.kind != "integer":
        c.err("signal only accepts string literals or integers")


def offsetof(a: Any, e: A.Call) -> None:
    """``offsetof(struct x, field)`` / ``offsetof(expr, field)`` (bpftrace 0.18, behind
    extensions): a uint64 constant, the field's byte offset in ``e.offset``; 0.18's
    messages for a wrong first argument, an unknown record or field."""
    e.ty = create_uint64()                              # type: ignore[attr-defined]
    e.offset = 0                                        # type: ignore[attr-defined]
    if len(e.args) != 2:
        a.err(e.loc, "offsetof() requires 2 arguments")
        return
    rec, fld = e.args
    fld.ty = create_none()                              # type: ignore[attr-defined]
    name = " ".join(getattr(rec, "name", "").split())
    if isinstance(rec, A.Identifier) and name.split(" ")[0] in ("struct", "union") \
            and not a.structs.has(name):
        rec.ty = create_none()                          # type: ignore[attr-defined]
        a.err(e.loc, f"'{name}' does not exist.")
        return
    a.expr(rec)
    t = rec.ty                                          # type: ignore[attr-defined]
    field_name = getattr(fld, "name", None)
    if t.kind != "record" or not isinstance(fld, (A.Identifier, A.Builtin)):
        a.err(e.loc, "offsetof() 1st argument is not of a record type.")
    elif t.struct is None:
        a.err(e.loc, f"'{t}' does not exist.")
    elif not t.struct.has_field(field_name):
        a.err(e.loc, f"'{t}' has no field named '{field_name}'")
    else:
        e.offset = t.struct.field(field_name).offset    # type: ignore[attr-defined]


def _sizeof(c: _Call) -> None:
    c.nargs(1)
    c.set(create_uint64())


def _path(c: _Call) -> None:
    a = c.a
    if not a.opts.has("d_path"):
        c.err("BPF_FUNC_d_path not available for your kernel version")
    if c.varargs(1, 1):
        if not c.arg("record", 0, False, False) and not c.arg("pointer", 0, False, False):
            c.err(f"path() only supports pointer or record argument "
                  f"({typestr(_ty(c.args[0]).kind)} provided)")
        c.set(create_string(a.opts.strlen))
    for ap in a.aps:
        if ap.kind not in ("kfunc", "kretfunc", "iter"):
            c.err("The path function can only be used with 'kfunc', 'kretfunc', 'iter' "
                  "probes")


def _strerror(c: _Call) -> None:
    c.set(create_simple("strerror"))
    if c.nargs(1):
        c.arg("integer", 0)


def _strncmp(c: _Call) -> None:
    if c.nargs(3):
        c.arg("string", 0)
        c.arg("string", 1)
        if c.arg("integer", 2, True):
            v = c.a.int_literal(c.args[2])
            if v is None:
                c.err("strncmp: invalid size value")
            elif v < 0:
                c.err("Builtin strncmp requires a non-negative size")
    c.set(create_uint64())


def _strcontains(c: _Call) -> None:
    if c.nargs(2):
        c.arg("string", 0)
        c.arg("string", 1)
    c.set(create_uint64())


def _override(c: _Call) -> None:
    a = c.a
    if not a.opts.has("override_return"):
        c.err("BPF_FUNC_override_return not available for your kernel version")
    c.assignment(False, False, False)
    if c.varargs(1, 1):
        c.arg("integer", 0)
    for ap in a.aps:
        if ap.kind != "kprobe":
            c.err("override can only be used with kprobes.")


def _ptr(c: _Call) -> None:
    if not c.nargs(1):
        return
    t = _ty(c.args[0])
    if t.kind not in ("integer", "pointer"):
        c.err(f"{c.f}() only supports integer or pointer arguments ({typestr(t.kind)} "
              "provided)")
        return
    r = t.copy()
    r.addrspace = "kernel" if c.f == "kptr" else "user"
    c.set(r)


def _macaddr(c: _Call) -> None:
    if not c.nargs(1):
        return
    arg = c.args[0]
    t = _ty(arg)
    if not t.is_int() and t.kind != "array" and not t.is_byte_array() and not t.is_ptr():
        c.err(f"macaddr() only supports array or pointer arguments ({typestr(t.kind)} "
              "provided)")
    if (t.kind == "array" or t.is_byte_array()) and t.size != 6:
        c.err("macaddr() argument must be 6 bytes in size")
    if t.kind == "string" and c.a.is_literal(arg):
        c.err("macaddr() does not support literal string arguments")
    c.set(create_simple("mac_address"))


def _unwatch(c: _Call) -> None:
    if c.nargs(1):
        c.arg("integer", 0)
    c.set(create_none())


def _bswap(c: _Call) -> None:
    if not c.nargs(1):
        return
    t = _ty(c.args[0])
    if t.kind != "integer":
        c.err(f"bswap() only supports integer arguments ({typestr(t.kind)} provided)")
        return
    c.set(create_uint(t.bits))


def _skboutput(c: _Call) -> None:
    if not c.a.opts.has("skb_output"):
        c.err("BPF_FUNC_skb_output is not available for your kernel version")
    c.assignment(False, True, False)
    if c.nargs(4) and c.a.final:
        c.arg("string", 0, True)
        c.arg("pointer", 1)
        c.arg("integer", 2)
        c.arg("integer", 3)
    c.set(create_uint(32))


_HANDLERS: Dict[str, Callable[[_Call], None]] = {
    "hist": _hist, "lhist": _lhist, "count": _count, "sum": _signed_agg,
    "min": _signed_agg, "max": _signed_agg, "avg": _avg, "stats": _avg,
    "delete": _delete, "str": _str, "buf": _buf, "ksym": _sym, "usym": _sym,
    "ntop": _ntop, "pton": _pton, "join": _join, "reg": _reg, "kaddr": _kaddr,
    "uaddr": _uaddr, "cgroupid": _cgroupid, "printf": _printf, "system": _printf,
    "cat": _printf, "debugf": _printf, "exit": _exit, "print": _print,
    "cgroup_path": _cgroup_path, "clear": _map_arg, "zero": _map_arg, "time": _time,
    "strftime": _strftime, "kstack": _stack, "ustack": _stack, "signal": _signal,
    "sizeof": _sizeof, "path": _path, "strerror": _strerror, "strncmp": _strncmp,
    "strcontains": _strcontains, "override": _override, "kptr": _ptr, "uptr": _ptr,
    "macaddr": _macaddr, "unwatch": _unwatch, "bswap": _bswap, "skboutput": _skboutput,
}
