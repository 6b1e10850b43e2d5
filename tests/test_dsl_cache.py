"""The cache of compiled modules (pybpf.dsl.cache): a second load takes the programs
from the cache (the compiler is not even imported), the same instructions are loaded
and the kernel sees the same behaviour; a change of source, of a compile-relevant
global, of the kernel's identity or of pybpf's invalidates the entry; load-time
constants do not (they live in .rodata) and still take effect; a damaged, foreign or
unsafe entry is never used, and is rebuilt."""

import os
import subprocess
import sys
import textwrap

import pytest

from bpfenv import needs_bpf
from pybpf.dsl import cache
from pybpf.dsl.loader import compile_module, load
from pybpf.dsl.userfile import import_user_file
from progrun import ROOT, Tool

MODULE = '''
from pybpf.dsl import ArrayMap, const, tgid, tracepoint, u32, u64

counts = ArrayMap(u64, 1)
TARGET = const(u32, 0)
STEP = {step}


@tracepoint("syscalls:sys_enter_getppid")
def count_getppid(args):
    if tgid() == TARGET:
        counts[0] += STEP
'''


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    d = tmp_path / "cache"
    monkeypatch.setenv("PYBPF_CACHE_DIR", str(d))
    monkeypatch.delenv("PYBPF_NO_CACHE", raising=False)
    return d


def write_module(tmp_path, step=1, name="cached_mod"):
    path = tmp_path / f"{name}.py"
    path.write_text(MODULE.format(step=step))
    return import_user_file(str(path), "_test_cache_")


def run_counted(module, target, calls=5, **kw):
    """Load ``module`` with TARGET=target, call getppid() ``calls`` times; returns
    (counter value, the loaded module's spec)."""
    with load(module, consts={"TARGET": target}, **kw) as mod:
        for _ in range(calls):
            os.getppid()
        return mod["counts"][0], mod.spec


def entries(d):
    return sorted(p for p in os.listdir(d) if p.endswith(".pbc")) if d.exists() else []


def stats():
    return dict(cache.STATS)


def delta(before):
    return {k: v - before[k] for k, v in cache.STATS.items() if v != before[k]}


@needs_bpf
def test_second_load_comes_from_the_cache_and_behaves_the_same(tmp_path, cache_dir):
    module = write_module(tmp_path)
    before = stats()
    value, spec = run_counted(module, os.getpid())
    assert value == 5 and not spec.cached
    assert delta(before) == {"misses": 1, "stores": 1}
    assert len(entries(cache_dir)) == 1
    before = stats()
    value, again = run_counted(module, os.getpid())
    assert value == 5 and again.cached
    assert delta(before) == {"hits": 1}
    # the same instructions (encoding and map references), maps and constants layout
    fresh = compile_module(module)
    assert list(again.programs) == list(fresh.programs)
    for name, prog in fresh.programs.items():
        got = again.programs[name].instructions
        assert got == prog.instructions
        assert [i.reference for i in got] == [i.reference for i in prog.instructions]
        assert [i.source for i in got] == [i.source for i in prog.instructions]
        assert repr(again.programs[name].kind) == repr(prog.kind)
    assert list(again.unit.maps) == list(fresh.unit.maps)
    assert again.unit.consts == fresh.unit.consts
    assert again.rodata({"TARGET": 7}) == fresh.rodata({"TARGET": 7})


@needs_bpf
def test_a_cached_program_loads_the_source_line_btf_it_was_stored_with(tmp_path, cache_dir):
    """The entry keeps each program's source-line BTF (a hit builds none): it is the
    BTF the loader would build, and the kernel takes its line records."""
    from pybpf.btf.builder import program_btf
    module = write_module(tmp_path)
    run_counted(module, os.getpid())
    with load(module, consts={"TARGET": os.getpid()}) as mod:
        assert mod.spec.cached
        for name, prog in mod.spec.programs.items():
            built = program_btf(prog.instructions, name[:15])
            assert prog.btf == (built.blob, built.func_info, built.line_info)
            info = mod.programs[name].info()
            assert info.raw.nr_line_info == built.line_count > 0


@needs_bpf
def test_constants_are_not_in_the_key_and_still_take_effect(tmp_path, cache_dir):
    module = write_module(tmp_path)
    run_counted(module, os.getpid())                       # fills the cache
    before = stats()
    value, spec = run_counted(module, 1)                   # init never calls getppid here
    assert spec.cached and value == 0
    value, spec = run_counted(module, os.getpid(), calls=3)
    assert spec.cached and value == 3
    assert delta(before) == {"hits": 2}


@needs_bpf
def test_a_source_change_or_a_global_change_is_a_new_entry(tmp_path, cache_dir):
    module = write_module(tmp_path, step=1)
    assert run_counted(module, os.getpid())[0] == 5
    key1 = cache.entry_key(cache.ModuleInputs([module.count_getppid]))
    module = write_module(tmp_path, step=2)                # the file's text changed
    before = stats()
    value, spec = run_counted(module, os.getpid())
    assert value == 10 and not spec.cached
    assert delta(before) == {"misses": 1, "stores": 1}
    # a global the program reads, changed at run time (the file is the same)
    module.STEP = 3
    key3 = cache.entry_key(cache.ModuleInputs([module.count_getppid]))
    assert key3 != key1
    value, spec = run_counted(module, os.getpid())
    assert value == 15 and not spec.cached
    assert len(entries(cache_dir)) == 3
    # globals the compiler cannot read (a str, a float) do not change the key
    module.NOTE, module.RATE = "x", 1.5
    assert cache.entry_key(cache.ModuleInputs([module.count_getppid])) == key3


def test_the_kernel_and_pybpf_are_in_the_key(tmp_path, cache_dir):
    module = write_module(tmp_path)
    inputs = cache.ModuleInputs([module.count_getppid])
    base = cache.entry_key(inputs)
    kernel = cache.kernel_identity()
    assert kernel["release"] == os.uname().release
    assert cache.entry_key(inputs, kernel=kernel) == base
    for field, value in (("release", "6.1.0-other"), ("version", "#2 SMP"),
                         ("btf", "123:abc"), ("machine", "aarch64")):
        assert cache.entry_key(inputs, kernel=dict(kernel, **{field: value})) != base
    assert cache.entry_key(inputs, pybpf="0.0.1:" + "0" * 32) != base
    assert cache.pybpf_identity().startswith(__import__("pybpf").__version__ + ":")


@needs_bpf
def test_other_kernel_or_pybpf_misses_and_compiles(tmp_path, cache_dir, monkeypatch):
    module = write_module(tmp_path)
    run_counted(module, os.getpid())
    # the running kernel seen as another one (an upgrade, a reboot into another build)
    monkeypatch.setitem(cache._memo, "kernel", dict(cache.kernel_identity(),
                                                    release="9.9.9-other"))
    before = stats()
    value, spec = run_counted(module, os.getpid())
    assert value == 5 and not spec.cached and delta(before) == {"misses": 1, "stores": 1}
    # another pybpf (version or compiler sources)
    monkeypatch.setitem(cache._memo, "pybpf", "0.0.0:" + "1" * 32)
    before = stats()
    value, spec = run_counted(module, os.getpid())
    assert value == 5 and not spec.cached and delta(before) == {"misses": 1, "stores": 1}
    assert len(entries(cache_dir)) == 3


@pytest.mark.parametrize("part", [("compiler", "peephole.py"),       # the shared back end
                                  ("compiler", "blocks.py"),
                                  ("dsl", "compiler", "frontend.py")])  # the Python front end
def test_compiler_sources_are_in_pybpf_identity(monkeypatch, tmp_path, part):
    """A development checkout: editing a compiler file (shared or the DSL's front end)
    changes the identity (size or mtime), without reading the files."""
    import pybpf.dsl.cache as c
    monkeypatch.delitem(c._memo, "pybpf", raising=False)
    first = c.pybpf_identity()
    target = os.path.join(ROOT, "pybpf", *part)
    st = os.stat(target)
    try:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
        monkeypatch.delitem(c._memo, "pybpf")
        assert c.pybpf_identity() != first
    finally:
        os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))
    monkeypatch.delitem(c._memo, "pybpf")
    assert c.pybpf_identity() == first


@needs_bpf
@pytest.mark.parametrize("damage", ["garbage", "truncated", "flipped", "foreign",
                                    "old-format", "empty"])
def test_a_damaged_entry_is_rebuilt(tmp_path, cache_dir, damage):
    module = write_module(tmp_path)
    run_counted(module, os.getpid())
    [name] = entries(cache_dir)
    path = cache_dir / name
    raw = path.read_bytes()
    if damage == "garbage":
        bad = b"not an entry at all"
    elif damage == "truncated":
        bad = raw[:len(raw) // 2]
    elif damage == "flipped":
        bad = raw[:-3] + bytes([raw[-3] ^ 0x40]) + raw[-2:]
    elif damage == "empty":
        bad = b""
    elif damage == "old-format":
        bad = raw[:8] + (cache.FORMAT + 1).to_bytes(2, "little") + raw[10:]
    else:                       # a valid entry of another module under this name
        other = write_module(tmp_path, step=7, name="other_mod")
        run_counted(other, os.getpid())
        [bad_name] = [n for n in entries(cache_dir) if n.startswith("other_mod.")]
        bad = (cache_dir / bad_name).read_bytes()
    path.write_bytes(bad)
    before = stats()
    value, spec = run_counted(module, os.getpid())
    assert value == 5 and not spec.cached
    assert delta(before) == {"misses": 1, "rejected": 1, "stores": 1}
    assert path.read_bytes() == raw                      # rewritten whole
    value, spec = run_counted(module, os.getpid())
    assert spec.cached and value == 5


@needs_bpf
def test_unsafe_directory_or_entry_is_not_used(tmp_path, cache_dir):
    module = write_module(tmp_path)
    run_counted(module, os.getpid())
    [name] = entries(cache_dir)
    os.chmod(cache_dir / name, 0o666)                    # anyone may write the entry
    before = stats()
    assert not run_counted(module, os.getpid())[1].cached
    assert delta(before)["rejected"] == 1
    os.chmod(cache_dir / name, 0o600)                    # rewritten by the miss anyway
    assert run_counted(module, os.getpid())[1].cached
    os.chmod(cache_dir, 0o777)                           # anyone may plant entries
    try:
        before = stats()
        value, spec = run_counted(module, os.getpid())
        assert value == 5 and not spec.cached and "stores" not in delta(before)
    finally:
        os.chmod(cache_dir, 0o700)


@needs_bpf
def test_no_cache_bypasses_it(tmp_path, cache_dir, monkeypatch):
    module = write_module(tmp_path)
    before = stats()
    run_counted(module, os.getpid(), cache=False)
    monkeypatch.setenv("PYBPF_NO_CACHE", "1")
    run_counted(module, os.getpid())
    assert delta(before) == {} and entries(cache_dir) == []


HIT_SCRIPT = textwrap.dedent('''
    import os, sys
    from pybpf.dsl import load
    from pybpf.dsl.cache import STATS
    from pybpf.dsl.userfile import import_user_file
    module = import_user_file(sys.argv[1], "_hit_")
    before = set(sys.modules)
    with load(module, consts={"TARGET": os.getpid()}) as mod:
        os.getppid()
        value = mod["counts"][0]
    # the cheap modules a hit needs: errors, declarations, the unit's layout
    cheap = ("pybpf.compiler.errors", "pybpf.compiler.unit", "pybpf.compiler.types",
             "pybpf.compiler.maps", "pybpf.compiler.context")
    compiler = sorted(m for m in sys.modules
                      if m.startswith(("pybpf.dsl.compiler.", "pybpf.compiler."))
                      and m not in cheap)
    # nor what only compiling needs: BTF building and parsing, dataclasses (and
    # inspect), the map classes the module does not use; nor, from the load itself, the
    # assembler (the stored code is loaded as it is) or a reader it does not use
    heavy = sorted(m for m in ("pybpf.btf.builder", "pybpf.btf.parser", "dataclasses",
                               "inspect", "pybpf.maps.hash", "pybpf.maps.lpm",
                               "pybpf.maps.of_maps") if m in sys.modules)
    heavy += sorted(m for m in ("pybpf.asm", "pybpf.asm.opcodes", "pybpf.events.perfbuf")
                    if m in sys.modules and m not in before)
    print(value, STATS["hits"], STATS["misses"], ",".join(compiler) or "-",
          ",".join(heavy) or "-")
''')


@needs_bpf
def test_a_hit_does_not_import_the_compiler(tmp_path, cache_dir):
    path = tmp_path / "cached_mod.py"
    path.write_text(MODULE.format(step=1))
    env = dict(os.environ, PYTHONPATH=ROOT)

    def run():
        out = subprocess.run([sys.executable, "-c", HIT_SCRIPT, str(path)], env=env,
                             capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return out.stdout.split()

    value, hits, misses, compiler, heavy = run()
    assert (value, hits, misses) == ("1", "0", "1") and "pybpf.dsl.compiler.frontend" in compiler
    assert "pybpf.btf.builder" in heavy               # a miss builds the BTF
    value, hits, misses, compiler, heavy = run()
    assert (value, hits, misses, compiler, heavy) == ("1", "1", "0", "-", "-")


@needs_bpf
def test_a_tool_prints_the_same_events_from_the_cache(cache_dir):
    """programs/opensnoop.py twice: the second run's programs come from the entry the
    first one stored (the entry file is not rewritten), and both print the child's
    opens with the same fds and errors."""
    import shutil
    import tempfile

    from test_prog_opensnoop import HEADER, Opener, _rows
    d = tempfile.mkdtemp(prefix="opensnoop-")
    try:
        os.chmod(d, 0o777)
        for name in ("exists", "exists2"):
            with open(os.path.join(d, name), "w") as f:
                f.write("x")
        results, inodes = [], []
        for _ in range(2):
            child = Opener(d)
            tool = Tool("opensnoop", "-p", child.pid, header=HEADER)
            fds = child.go()
            rc, out, err = tool.stop()
            assert rc == 0, err
            results.append(({r[4]: (r[2], r[3]) for r in _rows(out, d)}, fds))
            [name] = entries(cache_dir)
            inodes.append(os.stat(cache_dir / name).st_ino)
            for name in ("written",):
                os.unlink(os.path.join(d, name))
        for got, fds in results:
            assert got == {d + "/exists": (fds["exists"], 0), d + "/missing": (-1, 2),
                           d + "/written": (fds["written"], 0),
                           d + "/exists2": (fds["exists2"], 0)}
        assert inodes[0] == inodes[1]                     # a hit writes nothing
    finally:
        shutil.rmtree(d)


def test_cli_spells_the_environment_names_of_the_lower_layers():
    from pybpf.cli import run_cmd
    from pybpf.program import LOG_FILE_ENV
    assert run_cmd.LOG_FILE_ENV == LOG_FILE_ENV
    assert run_cmd.NO_CACHE_ENV == cache.NO_CACHE_ENV


#: what a tool must not import on its way to the first event once its programs are
#: cached (issue 20's start-up): the compiler (contexts too), the assembler (the cached
#: code is loaded as it was stored), BTF building and parsing, dataclasses (inspect,
#: ast, dis), the verifier-log analysis, map classes and readers it does not use, runpy
STARTUP_HEAVY = ("pybpf.dsl.compiler.frontend", "pybpf.compiler.ir", "pybpf.btf.builder",
                 "pybpf.compiler.context",
                 "pybpf.btf.parser", "dataclasses", "inspect", "pybpf.verifier",
                 "pybpf.maps.hash", "pybpf.maps.lpm", "pybpf.maps.of_maps", "runpy",
                 "pybpf.asm", "pybpf.asm.opcodes", "pybpf.asm.encoding",
                 "pybpf.events.perfbuf")


def _imported_by_tool(extra_env, args):
    """The modules ``pybpf run opensnoop ARGS`` imported up to its header line (read
    from ``-X importtime``; started as the ``pybpf`` command starts, not by ``-m``, which
    imports runpy itself), and its exit status after a SIGINT there."""
    import signal
    main = "import sys; from pybpf.cli import main; sys.exit(main())"
    proc = subprocess.Popen([sys.executable, "-X", "importtime", "-c", main, "run",
                             "opensnoop", *args], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=ROOT, **extra_env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline()
        assert line.startswith("PID"), line
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    mods = {ln.rsplit("|", 1)[1].strip() for ln in err.splitlines()
            if ln.startswith("import time:") and "|" in ln}
    return mods, proc.returncode


@needs_bpf
def test_a_cached_tool_starts_without_the_compiler_btf_or_dataclasses(cache_dir):
    env = {"PYBPF_CACHE_DIR": str(cache_dir)}
    args = ["-p", str(os.getpid())]
    first, rc = _imported_by_tool(env, args)          # compiles and stores
    assert rc == 0 and "pybpf.dsl.compiler.frontend" in first and "pybpf.btf.builder" in first
    second, rc = _imported_by_tool(env, args)
    assert rc == 0 and "pybpf.dsl.cache" in second and "pybpf.tracefs" in second
    assert sorted(m for m in STARTUP_HEAVY if m in second) == []


def _stored_program():
    """A program with a map load, a map value load, a 64-bit constant, a label and
    source locations, as put_program stores it: (instructions, entry, code, rows)."""
    from pybpf import _cache
    from pybpf.asm import R0, R1, R2, SourceLocation
    from pybpf.asm.builder import call, exit_, ld_map_fd, ld_map_value, lddw, mov
    here = SourceLocation("prog.py", 3, 5, "x = 1")
    insns = [ld_map_fd(R1, "events"), lddw(R2, 0x1122334455667788),
             ld_map_value(R1, "values", 16), call("ktime_get_ns"), mov(R0, 0), exit_()]
    insns[0] = insns[0].replace(label="entry", source=here)
    insns[3] = insns[3].replace(source=here._replace(line=4))
    code, sources = bytearray(), _cache.SourceTable()
    entry = _cache.put_program(insns, "prog", code, sources)
    return insns, entry, bytes(code), sources.rows


def test_a_cached_program_loads_its_stored_bytes_with_the_map_fds_patched_in():
    """What ProgramSpec.load takes from a cached program (resolved_code) is what
    resolving and encoding the decoded instructions gives; the instructions decode
    (once, on first use) with their labels, references and source lines."""
    from pybpf import _cache
    from pybpf.asm.encoding import encode
    from pybpf.program import _encoded, resolve_maps
    insns, entry, code, rows = _stored_program()
    got, _btf = _cache.get_program(entry, code, rows)
    assert isinstance(got, _cache.EncodedInstructions) and len(got) == len(insns)
    assert got._list is None                                 # nothing decoded yet
    fds = {"events": 7, "values": 0x7fffffff}
    assert _encoded(got, fds) == encode(resolve_maps(insns, fds))
    assert _encoded(got, fds) != encode(insns)               # the fds are in
    assert list(got) == insns and got == insns
    assert [(i.label, i.reference, i.source) for i in got] == \
        [(i.label, i.reference, i.source) for i in insns]
    assert _encoded(got, {"events": 7}) is None              # "values" unknown: the
    with pytest.raises(KeyError, match="values"):            # general path says so
        resolve_maps(got, {"events": 7})


@pytest.mark.parametrize("damage", ["count", "meta", "truncated", "lddw", "source"])
def test_a_cached_program_that_does_not_decode_is_refused(damage):
    from pybpf import _cache
    _insns, entry, code, rows = _stored_program()
    entry = dict(entry)
    if damage == "count":
        entry["count"] += 1
    elif damage == "meta":
        entry["meta"] = entry["meta"] + [[entry["count"], "x", None, None]]
    elif damage == "truncated":                  # the program ends inside its last lddw
        entry["code"] = [0, 8 * 3]
    elif damage == "lddw":                       # a second lddw slot that is not empty
        code = code[:8] + b"\x07" + code[9:]
    else:
        entry["meta"] = [[0, None, None, len(rows)]]
    assert _cache.get_program(entry, code, rows) is None
