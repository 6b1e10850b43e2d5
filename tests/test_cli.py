"""The ``pybpf`` command as a whole: every subcommand's help and exit codes, ``list``
against tracefs and ELF files, JSON shapes, ``run``, ``info`` and bash completion."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import List

import pytest

from pybpf.cli import COMMAND_MODULES, COMMANDS, build_parser, main
from pybpf.cli.completion_cmd import walk

ROOT = Path(__file__).resolve().parent.parent
TRACEFS = next((p for p in ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")
                if os.path.exists(os.path.join(p, "available_events"))), None)
needs_tracefs = pytest.mark.skipif(TRACEFS is None or os.geteuid() != 0,
                                   reason="needs root and a mounted tracefs")


def pybpf(*args: str, env: dict = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pybpf", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, **(env or {})))


def lines(text: str) -> List[str]:
    return [ln for ln in text.splitlines() if ln]


# ---------------------------------------------------------------------------------------
# the tree, help, exit codes
# ---------------------------------------------------------------------------------------

def test_command_table_matches_the_parser() -> None:
    nodes = walk(build_parser())
    assert set(nodes["pybpf"]["subs"]) == set(COMMANDS)          # type: ignore[arg-type]
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)


@pytest.mark.parametrize("command", sorted(set(COMMANDS) - {"trace"}))
def test_every_command_has_help_with_examples(command: str,
                                              capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main([command, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: pybpf ")
    assert "examples:" in out


def test_trace_help_is_bpftraces(capsys: pytest.CaptureFixture) -> None:
    """``pybpf trace --help`` is bpftrace's usage text (stderr, status 0): everything
    after ``trace`` is bpftrace's command line (tests/test_cli_trace.py)."""
    assert main(["trace", "--help"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith("USAGE:\n    pybpf trace [options] filename\n")
    assert "\nENVIRONMENT:\n" in captured.err and "\nEXAMPLES:\n" in captured.err


def test_top_level_help_lists_every_command(capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for name in ("list", "info", "run", "completion", "prog", "map", "btf", "asm"):
        assert re.search(rf"^\s+(\w+ \()?{name}\b", out, re.M), name
    assert "Exit status" in out


def test_help_is_light() -> None:
    """``--help`` imports no heavy module (BTF, ELF, syscalls, ctypes)."""
    code = ("import sys; from pybpf.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
            "heavy = [m for m in sys.modules if m.startswith(('pybpf.btf', 'pybpf.elf',"
            " 'pybpf.syscall', 'pybpf.tracefs', 'ctypes', 'pybpf.asm'))]\n"
            "print(heavy, file=sys.stderr)")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 0
    assert res.stderr.strip() == "[]"


@pytest.mark.parametrize("argv", [["nosuchcommand"], ["list", "--nosuchflag"],
                                  ["prog"], ["completion", "fish"], ["run"], []])
def test_usage_errors_exit_2(argv: List[str], capsys: pytest.CaptureFixture) -> None:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert "usage:" in capsys.readouterr().err


def test_user_error_is_one_line_without_traceback() -> None:
    res = pybpf("list", "uprobe:/nonexistent/binary:*")
    assert res.returncode == 1
    assert res.stdout == ""
    assert lines(res.stderr) == [lines(res.stderr)[0]]
    assert res.stderr.startswith("pybpf list: ") and "/nonexistent/binary" in res.stderr
    assert "Traceback" not in res.stderr


def test_debug_shows_the_traceback() -> None:
    res = pybpf("--debug", "list", "uprobe:/nonexistent/binary:*")
    assert res.returncode == 1
    assert "Traceback" in res.stderr


@pytest.mark.parametrize("argv", [["list", "usdt:"], ["list", "uprobe:*"],
                                  ["btf", "find", "no_such_type_xyz_123"],
                                  ["disasm", "--hex", "zz"],
                                  ["map", "show", "not-a-map"]])
def test_user_errors_exit_1(argv: List[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 1
    err = capsys.readouterr().err
    assert len(lines(err)) == 1 and err.startswith(f"pybpf {argv[0]}: ")


# ---------------------------------------------------------------------------------------
# list
# ---------------------------------------------------------------------------------------

def _available_events() -> List[str]:
    assert TRACEFS is not None
    with open(os.path.join(TRACEFS, "available_events")) as fh:
        return fh.read().split()


@needs_tracefs
def test_list_syscall_tracepoints_match_tracefs(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "tracepoint:syscalls:*"]) == 0
    out = lines(capsys.readouterr().out)
    expected = sorted("tracepoint:" + e for e in _available_events()
                      if e.startswith("syscalls:"))
    assert out == expected
    assert "tracepoint:syscalls:sys_enter_openat" in out


@needs_tracefs
def test_list_every_tracepoint_and_the_short_prefix(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "t:sched:*"]) == 0
    short = lines(capsys.readouterr().out)
    assert main(["--debug", "list", "tracepoint:sched:*"]) == 0     # argparse path
    assert lines(capsys.readouterr().out) == short
    assert short == sorted("tracepoint:" + e for e in _available_events()
                           if e.startswith("sched:"))


@needs_tracefs
def test_bare_pattern_matches_across_types(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "sys_enter_openat*"]) == 0
    out = lines(capsys.readouterr().out)
    assert "tracepoint:syscalls:sys_enter_openat" in out
    assert all(not ln.startswith("uprobe:") for ln in out)


def _format_fields(group: str, name: str) -> List[str]:
    """The event's own fields from its format file, as declared (independent parse)."""
    assert TRACEFS is not None
    with open(os.path.join(TRACEFS, "events", group, name, "format")) as fh:
        text = fh.read()
    decls = re.findall(r"^\s*field:(.*?);", text, re.M)
    return [" ".join(d.split()) for d in decls if "common_" not in d]


@needs_tracefs
@pytest.mark.parametrize("event", ["syscalls:sys_enter_openat", "sched:sched_switch",
                                   "sched:sched_process_exec", "syscalls:sys_exit_read"])
def test_list_verbose_fields_match_the_format_file(event: str,
                                                   capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "-v", f"tracepoint:{event}"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == f"tracepoint:{event}"
    shown = [" ".join(ln.split()) for ln in out[1:]]
    assert all(ln.startswith("    ") for ln in out[1:])
    assert shown == _format_fields(*event.split(":"))


@needs_tracefs
def test_list_json_shapes(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "--json", "tracepoint:syscalls:sys_enter_openat"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data == [{"probe": "tracepoint:syscalls:sys_enter_openat",
                     "type": "tracepoint"}]
    assert main(["list", "--json", "-v", "tracepoint:syscalls:sys_enter_openat"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data[0]["fields"][1] == {"type": "int", "name": "dfd"}
    assert {"type": "const char *", "name": "filename"} in data[0]["fields"]


def test_list_software_and_hardware_events(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "software:*fault*"]) == 0
    out = lines(capsys.readouterr().out)
    assert "software:page-faults:" in out and "software:cpu-clock:" not in out
    assert main(["list", "h:cpu-cycles"]) == 0
    assert lines(capsys.readouterr().out) == ["hardware:cpu-cycles:"]


def _elf_functions(path: str) -> List[str]:
    """Defined function symbols by pyelftools (the oracle), with those of the separate
    debug file (by build id) when the file has no .symtab."""
    from elftools.elf.elffile import ELFFile
    names = set()
    with open(path, "rb") as fh:
        elf = ELFFile(fh)
        note = elf.get_section_by_name(".note.gnu.build-id")
        if elf.get_section_by_name(".symtab") is None and note is not None:
            build_id = next(n for n in note.iter_notes())["n_desc"]
            debug = f"/usr/lib/debug/.build-id/{build_id[:2]}/{build_id[2:]}.debug"
            if os.path.exists(debug):
                names.update(_elf_functions(debug))
        for secname in (".symtab", ".dynsym"):
            sec = elf.get_section_by_name(secname)
            if sec is None or not hasattr(sec, "iter_symbols"):     # NOBITS in .debug
                continue
            for sym in sec.iter_symbols():
                if sym["st_info"]["type"] in ("STT_FUNC", "STT_LOOS") and \
                        sym["st_shndx"] != "SHN_UNDEF" and sym.name:
                    names.add(sym.name.split("@")[0])
    return sorted(names)


@pytest.mark.skipif(not os.path.exists("/bin/bash"), reason="no /bin/bash")
def test_list_uprobes_of_bash(capsys: pytest.CaptureFixture) -> None:
    assert main(["list", "uprobe:/bin/bash:*readline*"]) == 0
    out = lines(capsys.readouterr().out)
    assert "uprobe:/bin/bash:readline" in out
    expected = [f"uprobe:/bin/bash:{n}" for n in _elf_functions("/bin/bash")
                if "readline" in n]
    assert out == expected


def test_list_uprobes_of_libc_by_short_name(capsys: pytest.CaptureFixture) -> None:
    from pybpf.elf.libs import resolve_library
    libc = resolve_library("libc")
    assert main(["list", "uprobe:libc:mal*"]) == 0
    out = lines(capsys.readouterr().out)
    assert f"uprobe:{libc}:malloc" in out
    assert out == [f"uprobe:{libc}:{n}" for n in _elf_functions(libc)
                   if n.startswith("mal")]
    assert main(["list", "uretprobe:libc:malloc"]) == 0
    assert lines(capsys.readouterr().out) == [f"uretprobe:{libc}:malloc"]


def test_list_usdt_probes_of_a_test_binary(tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    if shutil.which("gcc") is None or not any(
            os.path.exists(f"/usr/include/{d}sys/sdt.h") for d in ("", "x86_64-linux-gnu/")):
        pytest.skip("needs gcc and systemtap-sdt-dev (sys/sdt.h)")
    src = tmp_path / "u.c"
    src.write_text("#include <sys/sdt.h>\nint main(int c, char **v) {\n"
                   "  DTRACE_PROBE1(demo, start, c);\n  DTRACE_PROBE(demo, stop);\n"
                   "  DTRACE_PROBE(other, tick);\n  return 0;\n}\n")
    binary = tmp_path / "u"
    subprocess.run(["gcc", "-O1", "-o", str(binary), str(src)], check=True)
    assert main(["list", f"usdt:{binary}:demo:*"]) == 0
    assert lines(capsys.readouterr().out) == [f"usdt:{binary}:demo:start",
                                              f"usdt:{binary}:demo:stop"]
    assert main(["list", f"usdt:{binary}:*"]) == 0
    assert len(lines(capsys.readouterr().out)) == 3


def test_list_fentry_arguments_from_btf(capsys: pytest.CaptureFixture) -> None:
    if not os.path.exists("/sys/kernel/btf/vmlinux"):
        pytest.skip("no kernel BTF")
    assert main(["list", "-v", "fexit:vmlinux:vfs_read"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "fexit:vmlinux:vfs_read"
    assert [ln.split()[-1] for ln in out[1:]] == ["file", "buf", "count", "pos", "retval"]
    assert out[1] == "    struct file * file"
    assert main(["list", "kfunc:vmlinux:vfs_rea?"]) == 0          # bpftrace's old name
    assert "fentry:vmlinux:vfs_read" in lines(capsys.readouterr().out)


# ---------------------------------------------------------------------------------------
# info, prog, map, probes: data as JSON
# ---------------------------------------------------------------------------------------

@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_info_is_features(capsys: pytest.CaptureFixture) -> None:
    assert main(["info", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {"system", "details"} <= set(data)
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    for section in ("System", "Kernel helpers", "Kernel features", "Map types",
                    "Probe types"):
        assert re.search(rf"^{section}", out, re.M), section


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
@pytest.mark.parametrize("argv", [["prog", "list", "--json"], ["map", "list", "--json"],
                                  ["probes", "list", "--json"]])
def test_lists_print_json_lists(argv: List[str], capsys: pytest.CaptureFixture) -> None:
    assert main(argv) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


# ---------------------------------------------------------------------------------------
# run
# ---------------------------------------------------------------------------------------

def test_run_a_file_as_main(tmp_path: Path) -> None:
    script = tmp_path / "tool.py"
    script.write_text("import sys\nprint(__name__, sys.argv[1:])\n"
                      "if '--fail' in sys.argv: raise ValueError('bad value given')\n"
                      "if '--exit' in sys.argv: sys.exit(3)\n")
    ok = pybpf("run", str(script), "-p", "42")
    assert ok.returncode == 0 and ok.stdout == "__main__ ['-p', '42']\n"
    failed = pybpf("run", str(script), "--fail")
    assert failed.returncode == 1
    # raised by the file's top level: one line at the file's line and column
    assert lines(failed.stderr) == [f"pybpf run: {script}:3:26: error: ValueError: bad value "
                                    "given (hint: pybpf --debug shows the traceback)"]
    assert pybpf("run", str(script), "--exit").returncode == 3


def test_run_a_tool_by_name(tmp_path: Path) -> None:
    (tmp_path / "hello.py").write_text("import sys\nprint('hello', *sys.argv[1:])\n")
    res = pybpf("run", "hello", "world", env={"PYBPF_PROGRAMS": str(tmp_path)})
    assert res.returncode == 0 and res.stdout == "hello world\n"
    missing = pybpf("run", "nosuchtool", env={"PYBPF_PROGRAMS": str(tmp_path)})
    assert missing.returncode == 1
    [message] = lines(missing.stderr)
    head = "pybpf run: no tool named 'nosuchtool' (available: "
    assert message.startswith(head) and message.endswith(")")
    # the tools of $PYBPF_PROGRAMS and of programs/, sorted
    from pybpf.cli.run_cmd import available_programs
    names = message[len(head):-1].split(", ")
    assert names == sorted(set(available_programs()) | {"hello"})


@pytest.mark.parametrize("argv", [
    ["run", "opensnoop", "-p", "1"], ["--debug", "run", "tool.py"],
    ["run", "--no-cache", "x", "--debug", "--", "-y"], ["run", "x"],
    ["run", "--verifier-log", "v.txt", "--no-cache", "t.py", "a", "--no-cache"],
])
def test_run_is_parsed_without_the_parser_as_the_parser_would(argv: List[str]) -> None:
    """``pybpf run`` spelled in full skips building the parser (a tool's start-up);
    the namespace is the parser's."""
    from pybpf.cli import _plain_run, build_parser
    assert vars(_plain_run(argv)) == vars(build_parser(only="run").parse_args(argv))


@pytest.mark.parametrize("argv", [
    ["run"], ["run", "-h"], ["run", "--help"], ["run", "--verifier-log=v", "x"],
    ["run", "--no-c", "x"], ["run", "--verifier-log", "-x", "y"], ["run", "--", "x"],
    ["run", ""], ["--deb", "run", "x"], ["--debug", "--debug", "run", "x"], ["list"],
    ["run", "--no-cache"],
])
def test_other_run_command_lines_go_through_the_parser(argv: List[str]) -> None:
    from pybpf.cli import _plain_run
    assert _plain_run(argv) is None


def test_run_a_missing_file() -> None:
    res = pybpf("run", "/nonexistent/tool.py")
    assert res.returncode == 1 and "no such file" in res.stderr


# ---------------------------------------------------------------------------------------
# completion
# ---------------------------------------------------------------------------------------

def _complete(script: str, words: List[str]) -> List[str]:
    """COMPREPLY of the generated function for the command line ``words`` (the last
    word is being completed)."""
    array = " ".join("'" + w.replace("'", "'\\''") + "'" for w in words)
    code = (f"{script}\nCOMP_WORDS=({array}); COMP_CWORD={len(words) - 1}\n"
            "_pybpf; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    res = subprocess.run(["bash", "-c", code], capture_output=True, text=True,
                         timeout=30)
    assert res.returncode == 0, res.stderr
    return sorted(lines(res.stdout))


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion(capsys: pytest.CaptureFixture) -> None:
    assert main(["completion", "bash"]) == 0
    script = capsys.readouterr().out
    assert "complete -o filenames -F _pybpf pybpf" in script
    assert "info" in _complete(script, ["pybpf", "i"])
    assert _complete(script, ["pybpf", "pr"]) == ["probes", "prog"]
    assert _complete(script, ["pybpf", "prog", ""]) == ["dump", "list", "ls", "show"]
    assert _complete(script, ["pybpf", "--debug", "prog", "l"]) == ["list", "ls"]
    assert "--json" in _complete(script, ["pybpf", "list", "--j"])
    assert _complete(script, ["pybpf", "asm", "--dialect", ""]) == ["llvm", "ubpf"]
    assert _complete(script, ["pybpf", "completion", ""]) == ["bash"]
    assert _complete(script, ["pybpf", "btf", "dump", "--format", "t"]) == ["text"]


@pytest.mark.skipif(not os.path.exists("/sys/kernel/btf/vmlinux"), reason="no kernel BTF")
def test_btf_find_and_field_json(capsys: pytest.CaptureFixture) -> None:
    assert main(["btf", "find", "--json", "--kind", "struct", "task_struct"]) == 0
    found = json.loads(capsys.readouterr().out)
    assert found[0]["source"] == "vmlinux" and found[0]["kind"] == "STRUCT"
    assert main(["btf", "field", "--json", "task_struct.real_parent.tgid"]) == 0
    steps = json.loads(capsys.readouterr().out)
    assert [s["deref"] for s in steps] == [True, False]
    assert steps[-1]["type"] == "pid_t" and steps[-1]["size"] == 4


def test_run_prefers_the_checkouts_tools_to_an_installed_copy() -> None:
    """The tools beside the running pybpf come before an installed pybpf_programs, which
    may be an older version (a checkout's `pybpf run` must run the checkout's tools)."""
    from pybpf.cli.run_cmd import program_dirs, resolve_program
    dirs = program_dirs()
    assert dirs[0] == str(ROOT / "programs"), dirs
    assert resolve_program("opensnoop") == str(ROOT / "programs" / "opensnoop.py")
