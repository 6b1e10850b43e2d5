"""bpftrace 0.17's command line and environment, read as bpftrace reads them.

:func:`parse_command_line` turns ``argv`` (without the program name) and an environment
into a :class:`Command`: what to do (``help``, ``version``, ``info``, ``list`` or
``run``) and the :class:`~pybpf.bpftrace.session.TraceOptions` to do it with. Anything
bpftrace refuses raises :class:`CommandLineError` carrying bpftrace's message, its exit
status and whether bpftrace prints its usage text after it.

The options are scanned the way bpftrace scans them: with glibc's ``getopt_long``
(:func:`getopt_long`), short options ``dbB:f:e:hlp:vqc:Vo:I:k`` and the long options of
:data:`LONG_OPTIONS`. That means clustered short options (``-lv``, ``-kk``), arguments
glued or separate (``-Bnone``, ``-B none``, ``--include=F``, ``--include F``), unique
prefixes of long options (``--unsafe`` as ``--uns``), operands anywhere (glibc moves them
after the options, so ``bpftrace FILE -q`` is quiet) unless ``POSIXLY_CORRECT`` is set,
and ``--`` ending the options. Options act in order, as bpftrace's loop acts on them:
``-h``, ``-V`` and ``--info`` stop the scan where they stand, so an invalid option after
them is never seen.

After the scan, bpftrace's checks run in its order: no arguments at all (usage), ``-v``
with ``-d``, ``-c`` with ``-p``, the ``-o`` file, the ``-f`` format, the environment
(:func:`parse_environment`), the ``-p`` pid, the ``-c`` command, then ``-l`` (its one
optional search) or the program (``-e``, FILE or ``-``) and its positional parameters.

Standard library only; the session module is imported for :class:`TraceOptions`, which
imports nothing else.
"""

from __future__ import annotations

import os
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

from .._records import field, record
from .session import TraceOptions

__all__ = ["Command", "CommandLineError", "GetoptError", "getopt_long", "parse_u64",
           "parse_command_line", "parse_environment", "usage_text", "SHORT_OPTIONS",
           "LONG_OPTIONS", "STRLEN_MAX", "PID_MAX", "BPFTRACE_VERSION"]

#: the release whose command line this module reproduces
BPFTRACE_VERSION = "v0.17.0"

#: bpftrace 0.17's ``getopt`` string (``-d``, ``-k`` repeat; ``-b`` is a hidden no-op)
SHORT_OPTIONS = "dbB:f:e:hlp:vqc:Vo:I:k"

#: bpftrace 0.17's long options, in its table's order (glibc lists ambiguous matches in
#: this order): name -> takes an argument. ``--btf``, ``--test`` and ``--aot`` are
#: hidden (not in ``--help``).
LONG_OPTIONS: Tuple[Tuple[str, bool], ...] = (
    ("help", False), ("version", False), ("usdt-file-activation", False),
    ("unsafe", False), ("btf", False), ("include", True), ("info", False),
    ("emit-llvm", True), ("emit-elf", True), ("no-warnings", False), ("test", True),
    ("aot", True),
)

#: the largest ``BPFTRACE_STRLEN`` bpftrace 0.17 accepts (strings live on the BPF stack)
STRLEN_MAX = 200
#: the pid range bpftrace checks ``-p`` against (the kernel's ``PID_MAX_LIMIT``)
PID_MAX = 4194304

_U64 = 1 << 64


class CommandLineError(Exception):
    """bpftrace refuses the command line: ``text`` is what it prints on stderr (may be
    several lines, or empty), ``status`` its exit status, ``usage`` whether the usage
    text follows the message."""

    def __init__(self, text: str, status: int = 1, usage: bool = False) -> None:
        super().__init__(text)
        self.text, self.status, self.usage = text, status, usage


class GetoptError(CommandLineError):
    """An option glibc's ``getopt_long`` refuses, with glibc's message (``bpftrace:
    invalid option -- 'x'``); bpftrace then prints its usage and exits with 1."""

    def __init__(self, text: str) -> None:
        super().__init__(text, 1, usage=True)


@record
class Command:
    """What a bpftrace command line asks for.

    ``action`` is ``help``, ``version``, ``info``, ``list`` or ``run``; ``options`` the
    :class:`TraceOptions` (``params`` are the positional parameters ``$1``...);
    ``search`` the ``-l`` search (None: every probe); ``program`` the ``-e`` text or
    None; ``path`` the program file (``-`` for standard input) when there is no
    ``-e``; ``command_argv`` the ``-c`` command split into words, its program resolved
    on ``PATH``; ``emit_llvm`` the ``--emit-llvm`` file (pybpf has no LLVM IR to write).
    """

    action: str
    options: TraceOptions = field(default_factory=TraceOptions)
    search: Optional[str] = None
    program: Optional[str] = None
    path: Optional[str] = None
    command_argv: List[str] = field(default_factory=list)
    emit_llvm: Optional[str] = None


# ---------------------------------------------------------------------------------------
# glibc getopt_long
# ---------------------------------------------------------------------------------------

def getopt_long(args: Sequence[str], shortopts: str,
                longopts: Sequence[Tuple[str, bool]], *, prog: str = "bpftrace",
                permute: bool = True, operands: Optional[List[str]] = None
                ) -> Iterator[Tuple[str, Optional[str]]]:
    """Yield ``(option, argument)`` pairs as glibc's ``getopt_long`` returns them: a
    short option as its letter (``"e"``), a long one as ``"--name"``; operands are
    appended to ``operands`` (in order; with ``permute`` False the first operand ends
    the options, as under ``POSIXLY_CORRECT``). Raises :class:`GetoptError` with
    glibc's message at the first bad option; options after it are not read."""
    takes: Dict[str, bool] = {}
    for i, ch in enumerate(shortopts):
        if ch != ":":
            takes[ch] = shortopts[i + 1:i + 2] == ":"
    rest = operands if operands is not None else []
    i = 0
    while i < len(args):
        word = args[i]
        i += 1
        if word == "--":
            rest.extend(args[i:])
            return
        if not word.startswith("-") or word == "-":
            rest.append(word)
            if not permute:
                rest.extend(args[i:])
                return
            continue
        if word.startswith("--"):
            name, eq, value = word[2:].partition("=")
            exact = [(n, a) for n, a in longopts if n == name]
            found = exact or [(n, a) for n, a in longopts if n.startswith(name)]
            if not found:
                raise GetoptError(f"{prog}: unrecognized option '{word}'")
            if len(found) > 1:
                names = " ".join(f"'--{n}'" for n, _ in found)
                raise GetoptError(f"{prog}: option '{word}' is ambiguous; "
                                  f"possibilities: {names}")
            full, has_arg = found[0]
            if not has_arg:
                if eq:
                    raise GetoptError(f"{prog}: option '--{full}' doesn't allow an "
                                      "argument")
                yield "--" + full, None
            elif eq:
                yield "--" + full, value
            elif i < len(args):
                i += 1
                yield "--" + full, args[i - 1]
            else:
                raise GetoptError(f"{prog}: option '--{full}' requires an argument")
            continue
        j = 1
        while j < len(word):
            ch = word[j]
            j += 1
            if ch not in takes:
                raise GetoptError(f"{prog}: invalid option -- '{ch}'")
            if not takes[ch]:
                yield ch, None
                continue
            if j < len(word):
                yield ch, word[j:]
            elif i < len(args):
                i += 1
                yield ch, args[i - 1]
            else:
                raise GetoptError(f"{prog}: option requires an argument -- '{ch}'")
            break


# ---------------------------------------------------------------------------------------
# numbers as bpftrace's C++ reads them
# ---------------------------------------------------------------------------------------

_C_SPACE = " \t\n\v\f\r"


def parse_u64(text: str) -> Optional[int]:
    """``text`` read as ``std::istream >> uint64_t`` reads it (bpftrace's environment
    variables): leading white space skipped, an optional sign, decimal digits, the rest
    ignored; a minus sign wraps modulo 2**64 (``-1`` is 2**64-1). None when there are
    no digits or the magnitude does not fit in 64 bits."""
    s = text.lstrip(_C_SPACE)
    negative = s[:1] == "-"
    if s[:1] in "+-" and s:
        s = s[1:]
    digits = ""
    for ch in s:
        if not "0" <= ch <= "9":
            break
        digits += ch
    if not digits:
        return None
    value = int(digits)
    if value >= _U64:
        return None
    return (_U64 - value) % _U64 if negative else value


def _parse_pid(text: str) -> int:
    """``-p``'s argument as bpftrace 0.17 checks it (a decimal ``long``, then the pid
    range, then a live process), or :class:`CommandLineError` with its message."""
    s = text.lstrip(_C_SPACE)
    body = s[1:] if s[:1] in "+-" else s
    if not body or not body.isdigit() or not body.isascii():
        raise CommandLineError(f"ERROR: pid '{text}' is not a valid decimal number")
    value = int(s)
    if not -(1 << 63) <= value < (1 << 63):
        raise CommandLineError(f"ERROR: pid '{text}' outside of integer range")
    if not 1 <= value <= PID_MAX:
        raise CommandLineError(f"ERROR: pid '{text}' out of valid pid range "
                               f"[1,{PID_MAX}]")
    if not os.path.exists(f"/proc/{value}"):
        # bpftrace 0.17 prints "ERROR: : No such process" here; name the pid
        raise CommandLineError(f"ERROR: pid {value}: No such process (-p needs a "
                               "running process)")
    return value


def _resolve_command(cmd: str, environ: Mapping[str, str]) -> List[str]:
    """The ``-c`` command split into words (shell quoting), its program found on
    ``PATH`` (a word with ``/`` as a path), or bpftrace's "Failed to fork child" error
    (status 255)."""
    try:
        import shlex
        words = shlex.split(cmd)
    except ValueError as exc:
        raise CommandLineError(f"ERROR: Failed to fork child: cannot split command "
                               f"'{cmd}': {exc}", 255) from None
    if not words:
        raise CommandLineError("ERROR: Failed to fork child: empty command", 255)
    prog = words[0]
    if "/" in prog:
        found = prog if os.path.isfile(prog) and os.access(prog, os.X_OK) else None
    else:
        import shutil
        found = shutil.which(prog, path=environ.get("PATH", os.defpath))
    if found is None:
        raise CommandLineError(f"ERROR: Failed to fork child: path '{prog}' does not "
                               "exist or is not executable", 255)
    return [found] + words[1:]


# ---------------------------------------------------------------------------------------
# environment
# ---------------------------------------------------------------------------------------

def _u64_env(environ: Mapping[str, str], name: str) -> Optional[int]:
    if name not in environ:
        return None
    value = parse_u64(environ[name])
    if value is None:
        raise CommandLineError(f"ERROR: Env var '{name}' did not contain a valid "
                               "uint64_t, or was zero-valued.")
    return value


def _flag_env(environ: Mapping[str, str], name: str) -> Optional[bool]:
    if name not in environ:
        return None
    value = environ[name]
    if value not in ("0", "1"):
        raise CommandLineError(f"ERROR: Env var '{name}' did not contain a valid value "
                               "(0 or 1).")
    return value == "1"


def _aslr_enabled() -> bool:
    try:
        with open("/proc/sys/kernel/randomize_va_space") as fh:
            return fh.read().strip() != "0"
    except OSError:
        return True


def _check_btf_file(path: str) -> None:
    """``BPFTRACE_BTF`` must name a readable BTF file (bpftrace 0.17 crashes on one
    that is not)."""
    try:
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except OSError as exc:
        raise CommandLineError(f"ERROR: BPFTRACE_BTF: cannot read '{path}': "
                               f"{exc.strerror or exc}") from None
    if magic not in (b"\x9f\xeb", b"\xeb\x9f"):
        raise CommandLineError(f"ERROR: BPFTRACE_BTF: '{path}' is not a BTF file (no "
                               "BTF magic 0xeb9f); give a raw BTF file such as "
                               "/sys/kernel/btf/vmlinux")


def parse_environment(environ: Mapping[str, str], opts: TraceOptions) -> None:
    """Read bpftrace's environment variables into ``opts``, in bpftrace 0.17's order and
    with its messages (:class:`CommandLineError`, status 1) for bad values:
    ``BPFTRACE_STRLEN`` (at most :data:`STRLEN_MAX`), ``BPFTRACE_NO_CPP_DEMANGLE``,
    ``BPFTRACE_MAP_KEYS_MAX``, ``BPFTRACE_MAX_PROBES``, ``BPFTRACE_MAX_BPF_PROGS``,
    ``BPFTRACE_LOG_SIZE``, ``BPFTRACE_PERF_RB_PAGES``, ``BPFTRACE_CAT_BYTES_MAX``,
    ``BPFTRACE_NO_USER_SYMBOLS``, ``BPFTRACE_CACHE_USER_SYMBOLS`` (default: on when
    ``-c`` is given or ASLR is off), ``BPFTRACE_NODE_MAX``, then ``BPFTRACE_VMLINUX``,
    ``BPFTRACE_BTF`` (checked to be a BTF file) and the test handshake
    ``__BPFTRACE_NOTIFY_PROBES_ATTACHED`` (set: print that word once attached).
    Numbers are read like C++'s ``>> uint64_t`` (:func:`parse_u64`). Variables without
    a :class:`TraceOptions` field land in ``opts.extras`` (``no_cpp_demangle``,
    ``max_bpf_progs``, ``log_size``, ``node_max``)."""
    strlen = _u64_env(environ, "BPFTRACE_STRLEN")
    if strlen is not None:
        if strlen > STRLEN_MAX:
            raise CommandLineError(
                f"ERROR: 'BPFTRACE_STRLEN' {strlen} exceeds the current maximum of "
                f"{STRLEN_MAX} bytes.\nThis limitation is because strings are currently "
                "stored on the 512 byte BPF stack.\nLong strings will be pursued in: "
                "https://github.com/iovisor/bpftrace/issues/305")
        opts.strlen = strlen
    demangle = _flag_env(environ, "BPFTRACE_NO_CPP_DEMANGLE")
    if demangle is not None:
        opts.extras["no_cpp_demangle"] = demangle
    for name, attr in (("BPFTRACE_MAP_KEYS_MAX", "map_keys_max"),
                       ("BPFTRACE_MAX_PROBES", "max_probes"),
                       ("BPFTRACE_MAX_BPF_PROGS", "extras:max_bpf_progs"),
                       ("BPFTRACE_LOG_SIZE", "extras:log_size"),
                       ("BPFTRACE_PERF_RB_PAGES", "perf_rb_pages"),
                       ("BPFTRACE_CAT_BYTES_MAX", "cat_bytes_max")):
        value = _u64_env(environ, name)
        if value is None:
            continue
        if attr.startswith("extras:"):
            opts.extras[attr[7:]] = value
        else:
            setattr(opts, attr, value)
    no_user = _flag_env(environ, "BPFTRACE_NO_USER_SYMBOLS")
    if no_user is not None:
        opts.no_user_symbols = no_user
    cache = _flag_env(environ, "BPFTRACE_CACHE_USER_SYMBOLS")
    opts.cache_user_symbols = (cache if cache is not None
                               else opts.command is not None or not _aslr_enabled())
    node_max = _u64_env(environ, "BPFTRACE_NODE_MAX")
    if node_max is not None:
        opts.extras["node_max"] = node_max
    if "BPFTRACE_VMLINUX" in environ:
        opts.vmlinux = environ["BPFTRACE_VMLINUX"]
    if "BPFTRACE_BTF" in environ:
        _check_btf_file(environ["BPFTRACE_BTF"])
        opts.btf = environ["BPFTRACE_BTF"]
    opts.notify_attached = "__BPFTRACE_NOTIFY_PROBES_ATTACHED" in environ
    # pybpf's own: what later bpftrace releases accept (rawtracepoint, offsetof...)
    opts.extensions = environ.get("PYBPF_TRACE_EXTENSIONS", "") == "1"


# ---------------------------------------------------------------------------------------
# the command line
# ---------------------------------------------------------------------------------------

def parse_command_line(argv: Sequence[str], environ: Optional[Mapping[str, str]] = None
                       ) -> Command:
    """bpftrace 0.17's reading of ``argv`` (the arguments after the program name) and
    ``environ`` (default ``os.environ``): a :class:`Command`, or
    :class:`CommandLineError` with bpftrace's message and status. Files are not read
    here except to create the ``-o`` file (bpftrace opens it before anything else can
    fail) and to check ``BPFTRACE_BTF``."""
    env = os.environ if environ is None else environ
    opts = TraceOptions()
    listing = False
    script = ""
    pid_text = cmd_text = ""
    output_format = ""
    emit_llvm: Optional[str] = None
    operands: List[str] = []
    for opt, arg in getopt_long(list(argv), SHORT_OPTIONS, LONG_OPTIONS,
                                permute="POSIXLY_CORRECT" not in env, operands=operands):
        if opt in ("h", "--help"):
            return Command("help", opts)
        if opt in ("V", "--version"):
            return Command("version", opts)
        if opt == "--info":
            return Command("info", opts)
        if opt == "d":
            opts.debug += 1
            if opts.debug > 2:
                raise CommandLineError("", 1, usage=True)
        elif opt == "k":
            opts.helper_check_level += 1
            if opts.helper_check_level > 2:
                raise CommandLineError("", 1, usage=True)
        elif opt == "B":
            if arg not in ("line", "full", "none"):
                raise CommandLineError("ERROR: USAGE: -B must be either 'line', 'full', "
                                       "or 'none'.")
            opts.buffering = arg
        elif opt == "--test":
            if arg not in ("semantic", "codegen"):
                raise CommandLineError("ERROR: USAGE: --test must be either 'semantic' "
                                       "or 'codegen'.")
            opts.extras["test_mode"] = arg
        elif opt == "--aot":
            opts.extras["aot"] = arg
        elif opt == "o":
            opts.output_path = arg
        elif opt == "f":
            output_format = arg or ""
        elif opt == "e":
            script = arg or ""
        elif opt == "p":
            pid_text = arg or ""
        elif opt == "c":
            cmd_text = arg or ""
        elif opt == "I":
            opts.include_dirs.append(arg or "")
        elif opt == "--include":
            opts.includes.append(arg or "")
        elif opt == "l":
            listing = True
        elif opt == "q":
            opts.quiet = True
        elif opt == "v":
            opts.verbose = True
        elif opt == "--usdt-file-activation":
            opts.usdt_file_activation = True
        elif opt == "--unsafe":
            opts.unsafe = True
        elif opt == "--no-warnings":
            opts.no_warnings = True
        elif opt == "--emit-elf":
            opts.emit_elf = arg
        elif opt == "--emit-llvm":
            emit_llvm = arg
        # "b" and "--btf": accepted and ignored, as by bpftrace
    if not argv:
        raise CommandLineError("", 1, usage=True)
    if opts.verbose and opts.debug:
        raise CommandLineError("ERROR: USAGE: Use either -v or -d.")
    if cmd_text and pid_text:
        raise CommandLineError("ERROR: USAGE: Cannot use both -c and -p.", 1, usage=True)
    if opts.output_path:
        try:
            with open(opts.output_path, "w"):
                pass
        except OSError as exc:
            raise CommandLineError(f"ERROR: Failed to open output file: "
                                   f"\"{opts.output_path}\": {exc.strerror}") from None
    else:
        opts.output_path = None
    if output_format not in ("", "text", "json"):
        raise CommandLineError(f"ERROR: Invalid output format \"{output_format}\"\n"
                               "Valid formats: 'text', 'json'")
    opts.output_format = output_format or "text"
    if cmd_text:
        opts.command = cmd_text
    parse_environment(env, opts)
    if pid_text:
        opts.pid = _parse_pid(pid_text)
    command = Command("run", opts, emit_llvm=emit_llvm)
    if cmd_text:
        command.command_argv = _resolve_command(cmd_text, env)
        opts.extras["command_argv"] = list(command.command_argv)
    if listing:
        command.action = "list"
        if len(operands) > 1:                       # one search at most
            raise CommandLineError("", 1, usage=True)
        command.search = operands[0] if operands and operands[0] != "*" else None
        return command
    if script:
        command.program = script
    else:
        if not operands:
            raise CommandLineError("ERROR: USAGE: filename or -e 'program' required.")
        command.path = operands.pop(0)
    opts.params = list(operands)
    return command


# ---------------------------------------------------------------------------------------
# --help
# ---------------------------------------------------------------------------------------

def usage_text(prog: str = "bpftrace") -> str:
    """The ``--help`` text: bpftrace 0.17's sections (USAGE, OPTIONS, TROUBLESHOOTING
    OPTIONS, ENVIRONMENT, EXAMPLES) and its option and variable names, in pybpf's words,
    with what pybpf does differently marked."""
    return f"""USAGE:
    {prog} [options] filename
    {prog} [options] - <stdin input>
    {prog} [options] -e 'program'

OPTIONS:
    -B MODE        buffering of the output: 'line', 'full' or 'none'
    -f FORMAT      how events and maps are printed: 'text' or 'json'
    -o file        write the program's output to file
    -e 'program'   run this program text
    -h, --help     print this text
    -I DIR         look for #include files in DIR too
    --include FILE include FILE before the program's own preamble
    -l [search]    list the probes the search matches (all without one)
    -p PID         attach USDT probes in process PID; stop when it exits
    -c 'CMD'       start CMD, attach USDT probes in it; stop when it exits
    --usdt-file-activation
                   enable USDT semaphores of every process running the file
    --unsafe       allow the functions that change the system (system, signal, ...)
    -q             do not print the "Attaching N probes..." line
    --info         report what this kernel supports for bpftrace programs
    -k             warn when a helper call fails (except reads)
    -kk            warn when any helper call fails
    -V, --version  print the version (bpftrace's, then pybpf's)
    --no-warnings  print no warnings

TROUBLESHOOTING OPTIONS:
    -v                      more messages while running
    -d                      (dry run) print the program's tree after each pass
    -dd                     (dry run) the same, with more detail
    --emit-elf FILE         (dry run) write the compiled programs as an ELF file
    --emit-llvm FILE        not available: pybpf compiles without LLVM

ENVIRONMENT:
    BPFTRACE_STRLEN             [default: 64] bytes a str() keeps (at most 200)
    BPFTRACE_NO_CPP_DEMANGLE    [default: 0] 1: print C++ symbols as they are
    BPFTRACE_MAP_KEYS_MAX       [default: 4096] most keys a map holds
    BPFTRACE_CAT_BYTES_MAX      [default: 10k] most bytes cat() prints
    BPFTRACE_MAX_PROBES         [default: 512] most probes a program attaches
    BPFTRACE_MAX_BPF_PROGS      [default: 512] most BPF programs a run loads
    BPFTRACE_LOG_SIZE           [default: 1000000] verifier log size in bytes
    BPFTRACE_PERF_RB_PAGES      [default: 64, a 2 MiB ring at least] pages per CPU of the event buffer
    BPFTRACE_NO_USER_SYMBOLS    [default: 0] 1: print user addresses, not names
    BPFTRACE_CACHE_USER_SYMBOLS [default: auto] 1: cache user symbol tables
    BPFTRACE_VMLINUX            [default: none] vmlinux file for kernel symbols
    BPFTRACE_BTF                [default: none] BTF file instead of the kernel's

EXAMPLES:
{prog} -l '*sleep*'
    the probes whose names contain "sleep"
{prog} -e 'tracepoint:syscalls:sys_enter_nanosleep {{ printf("%d sleeps\\n", pid); }}'
    print the pid of each process that starts to sleep
{prog} -e 'tracepoint:raw_syscalls:sys_enter {{ @[comm] = count(); }}'
    count system calls per process name
"""
