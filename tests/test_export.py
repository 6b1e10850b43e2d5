"""``pybpf export``: the built-in exporters scraped by a real Prometheus (values checked
through its HTTP API against workloads with known counts), ``promtool check metrics``
on both exposition formats, the series limit, SIGTERM and the one-line errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import uuid

import pytest

from tests.progrun import ROOT, env, programs_loaded
from tests.promharness import Exporter, Prometheus, serving

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to load BPF programs"),
]
prometheus_client = pytest.importorskip("prometheus_client")

PROGRAMS = ["export_sys_exit", "export_open", "export_openat", "export_openat2"]
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def sample_value(text: str, name: str, **labels: str) -> float:
    """The value of one sample in text-format ``text`` (0 when absent)."""
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    head = f"{name}{{{want}}} " if labels else f"{name} "
    for line in text.splitlines():
        if line.startswith(head):
            return float(line.split()[-1])
    return 0.0


@pytest.fixture(scope="module")
def served():
    """syscalls and opens served by one exporter and scraped by Prometheus."""
    with serving("syscalls", "opens") as both:
        yield both


WORKLOAD = textwrap.dedent("""
    import ctypes, os, sys
    comm, failing, ok, tees, getppids = sys.argv[1], *map(int, sys.argv[2:])
    libc = ctypes.CDLL(None, use_errno=True)
    missing = b"/nonexistent-pybpf-export-test"
    libc.prctl(15, comm.encode(), 0, 0, 0)          # PR_SET_NAME
    for _ in range(failing):
        try:
            os.open(missing, os.O_RDONLY)
        except FileNotFoundError:
            pass
    for _ in range(ok):
        os.close(os.open("/dev/null", os.O_RDONLY))
    for _ in range(tees):
        libc.syscall(276, -1, -1, 1, 0)              # tee(-1, -1, 1): EBADF
    for _ in range(getppids):
        os.getppid()
""")


def test_counts_reach_prometheus_exactly(served) -> None:
    """A process with a unique comm makes 37 failing and 23 successful openat() calls,
    41 tee() calls that fail with EBADF and 50 getppid() calls. Opens are checked
    exactly by the comm label. Syscalls are system-wide: tee(-1, -1, ...) is a call no
    other process makes, so its counters must grow by exactly 41; getppid() is common,
    so its counter must grow by at least 50."""
    exporter, prom = served
    comm = "pbx" + uuid.uuid4().hex[:10]
    before = {q: prom.value(q) or 0.0 for q in (
        'pybpf_syscalls_total{syscall="tee"}',
        'pybpf_syscall_errors_total{syscall="tee",errno="EBADF"}',
        'pybpf_syscalls_total{syscall="getppid"}')}
    subprocess.run([sys.executable, "-c", WORKLOAD, comm, "37", "23", "41", "50"],
                   check=True, timeout=60)
    failed = f'pybpf_opens_total{{comm="{comm}",result="ENOENT"}}'
    ok = f'pybpf_opens_total{{comm="{comm}",result="ok"}}'
    prom.wait_for(failed, lambda v: v is not None and v >= 37)
    prom.wait_for(ok, lambda v: v is not None and v >= 23)
    prom.wait_scrapes(2)                   # later scrapes must not count more
    assert prom.value(failed) == 37
    assert prom.value(ok) == 23
    assert len(prom.query(f'pybpf_opens_total{{comm="{comm}"}}')) == 2
    tee = 'pybpf_syscalls_total{syscall="tee"}'
    tee_err = 'pybpf_syscall_errors_total{syscall="tee",errno="EBADF"}'
    assert prom.value(tee) - before[tee] == 41
    assert prom.value(tee_err) - before[tee_err] == 41
    getppid = 'pybpf_syscalls_total{syscall="getppid"}'
    assert prom.value(getppid) - before[getppid] >= 50
    # the health metrics, through the same server
    assert prom.value("pybpf_exporter_programs_loaded") == 4
    assert prom.value('sum(pybpf_exporter_map_read_errors_total)') == 0
    build = prom.query("pybpf_exporter_build_info")
    assert build[0]["metric"]["kernel"] == os.uname().release
    assert prom.value("pybpf_exporter_scrape_duration_seconds") > 0


def test_prometheus_scrapes_openmetrics(served) -> None:
    """Prometheus asks for OpenMetrics first; its scrape of the exporter succeeds."""
    exporter, prom = served
    targets = prom.api("targets")["activeTargets"]
    assert [t["health"] for t in targets] == ["up"]
    assert targets[0]["lastError"] == ""
    assert prom.value('scrape_samples_scraped{job="pybpf"}') > 10


def test_promtool_accepts_both_formats(served) -> None:
    exporter, _ = served
    status, ctype, text = exporter.fetch()
    assert status == 200 and ctype.startswith("text/plain; version=0.0.4")
    res = subprocess.run(["promtool", "check", "metrics"], input=text,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "pybpf_syscalls_total{" in text and "pybpf_opens_total{" in text
    status, ctype, om = exporter.fetch(accept=OPENMETRICS)
    assert status == 200 and ctype.startswith("application/openmetrics-text")
    assert om.endswith("# EOF\n")
    res = subprocess.run(["promtool", "check", "metrics"], input=om,
                         capture_output=True, text=True, timeout=60)
    # promtool 2.42 lints with the text-format parser: OpenMetrics parses (no error),
    # but a counter's HELP is on its family name without _total, which that linter
    # reports as "no help text"; nothing else may be reported
    problems = [ln for ln in (res.stdout + res.stderr).splitlines() if ln.strip()]
    assert res.returncode in (0, 3), problems
    assert all(ln.endswith("_total no help text") for ln in problems), problems


def test_only_the_metrics_path_answers(served) -> None:
    exporter, _ = served
    assert exporter.fetch("/")[0] == 404
    assert exporter.fetch("/metrics/x")[0] == 404


FORKS = textwrap.dedent("""
    import ctypes, os, sys
    prefix, count = sys.argv[1], int(sys.argv[2])
    libc = ctypes.CDLL(None)
    for i in range(count):
        pid = os.fork()
        if pid == 0:
            libc.prctl(15, f"{prefix}{i:05d}".encode(), 0, 0, 0)
            try:
                os.open("/nonexistent-pybpf-export-test", os.O_RDONLY)
            except OSError:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
""")


def test_series_limit_drops_and_counts() -> None:
    """2,000 processes with distinct comms open one file each; with --max-series 100
    the exporter exports exactly 100 opens series and counts the rest as dropped."""
    exporter = Exporter("opens", "--max-series", "100")
    prom = Prometheus([exporter.address])
    try:
        prefix = "c" + uuid.uuid4().hex[:4]
        subprocess.run([sys.executable, "-c", FORKS, prefix, "2000"], check=True,
                       timeout=300)
        dropped = 'pybpf_exporter_series_dropped_total{metric="pybpf_opens_total"}'
        assert prom.wait_for(dropped, lambda v: v is not None and v >= 1900) >= 1900
        prom.wait_scrapes(1)
        assert prom.value("count(pybpf_opens_total)") == 100
        _, _, first = exporter.fetch()
        _, _, second = exporter.fetch()
        exported = [ln for ln in second.splitlines() if ln.startswith("pybpf_opens_total{")]
        assert len(exported) == 100
        # each scrape leaves out every series past 100: at least our 2,000 - 100
        grew = sample_value(second, "pybpf_exporter_series_dropped_total",
                            metric="pybpf_opens_total") - \
            sample_value(first, "pybpf_exporter_series_dropped_total",
                         metric="pybpf_opens_total")
        assert grew >= 1900
    finally:
        prom.stop()
        exporter.stop()


def test_sigterm_detaches_everything_and_exits_0() -> None:
    exporter = Exporter("syscalls", "opens")
    assert exporter.fetch()[0] == 200
    rc, out, err = exporter.stop(signal.SIGTERM)
    assert rc == 0, err
    assert err == ""
    assert programs_loaded(PROGRAMS) == set()


def test_sigint_exits_0() -> None:
    exporter = Exporter("opens")
    rc, _, err = exporter.stop(signal.SIGINT)
    assert (rc, err) == (0, "")
    assert programs_loaded(PROGRAMS) == set()


def run_export(*args: str, code: str = "") -> subprocess.CompletedProcess:
    argv = [sys.executable, "-c", code, *args] if code else \
        [sys.executable, "-m", "pybpf", "export", *args]
    return subprocess.run(argv, cwd=ROOT, env=env(), capture_output=True, text=True,
                          timeout=120)


def test_port_in_use_is_one_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        address = f"127.0.0.1:{s.getsockname()[1]}"
        res = run_export("syscalls", "--listen", address)
    assert res.returncode == 1
    assert res.stderr.splitlines() == [
        f"pybpf export: {address} is in use: stop what listens there or give another "
        "address with --listen"]


@pytest.mark.parametrize("args, expected", [
    (["nosuch"], "pybpf export: no exporter named 'nosuch' (built-in: biolatency, irq, oom, "
                 "opens, pagefaults, process, runqlat, syscalls, tcp; or give a FILE)"),
    (["syscalls", "--listen", "example.org:80"], "pybpf export: bad --listen address "
     "'example.org:80': expected HOST:PORT, e.g. 127.0.0.1:9435, 0.0.0.0:9435 or "
     "[::1]:9435"),
    ([], "pybpf export: name an exporter or a FILE (pybpf export --list shows the "
         "built-in ones)"),
])
def test_errors_are_one_line(args, expected) -> None:
    res = run_export(*args)
    assert (res.returncode, res.stderr.splitlines()) == (1, [expected])


def test_module_without_metrics(tmp_path) -> None:
    path = tmp_path / "nometrics.py"
    path.write_text("from pybpf.dsl import HashMap, tracepoint, u32, u64\n"
                    "c = HashMap(u32, u64, max_entries=4)\n"
                    "@tracepoint('raw_syscalls:sys_exit')\n"
                    "def export_x(args):\n    c[u32(0)] += 1\n    return 0\n")
    res = run_export(str(path))
    assert res.returncode == 1
    assert res.stderr.splitlines() == [f"pybpf export: {path}: no METRICS list: an "
                                       "exporter module declares METRICS = [Counter(...),"
                                       " ...] next to its programs (pybpf export --help "
                                       "shows the pattern)"]


def test_missing_prometheus_client_is_one_line() -> None:
    code = ("import sys; sys.modules['prometheus_client'] = None\n"
            "from pybpf.cli import main; sys.exit(main(['export', 'syscalls']))")
    res = run_export(code=code)
    assert (res.returncode, res.stderr.splitlines()) == (1, [
        "pybpf export: pybpf export needs prometheus_client: pip install "
        "'pybpf[export]'"])


def test_list_shows_the_builtin_exporters() -> None:
    res = run_export("--list")
    assert res.returncode == 0
    names = [ln.split()[0] for ln in res.stdout.splitlines()]
    assert names == ["biolatency", "irq", "oom", "opens", "pagefaults", "process",
                     "runqlat", "syscalls", "tcp"]
    assert all(len(ln.split(None, 1)) == 2 for ln in res.stdout.splitlines())


HIST_EXPORTER = textwrap.dedent('''
    """histtest: lseek() offsets of fd 987654 in a log2 and a linear histogram."""
    from pybpf.dsl import ArrayMap, Histogram, log2, tracepoint, u32, u64
    from pybpf.export import Histogram as PromHistogram, Linear

    log_slots = Histogram()
    lin_slots = ArrayMap(u64, 11)        # 10 buckets of 100, then the overflow slot
    sums = ArrayMap(u64, 1)

    @tracepoint("syscalls:sys_enter_lseek")
    def export_lseek(args):
        if args.fd != 987654:
            return 0
        v = u64(args.offset)
        log_slots[log2(v)] += 1
        s = v // 100
        if s > 10:
            s = 10
        lin_slots[u32(s)] += 1
        sums[u32(0)] += v
        return 0

    METRICS = [
        PromHistogram("pybpf_test_offset_kilo", "Offsets / 1000, log2 buckets.",
                      log_slots, unit_scale=1e-3, slots=20),
        PromHistogram("pybpf_test_offset", "Offsets, linear buckets, exact sum.",
                      lin_slots, buckets=Linear(100, 10), sum_map=sums),
    ]
''')

OFFSETS = [0, 1, 3, 5, 64, 100, 150, 999, 1000, 4096, 70000]


def test_histograms_reach_prometheus(tmp_path) -> None:
    """Known lseek() offsets (on a descriptor no process has, so only ours count) land
    in the buckets Prometheus reports: a bucket ``le`` counts the values below it."""
    path = tmp_path / "histtest.py"
    path.write_text(HIST_EXPORTER)
    exporter = Exporter(str(path))
    prom = Prometheus([exporter.address])
    try:
        code = ("import os, sys\nfor v in map(int, sys.argv[1:]):\n    try:\n"
                "        os.lseek(987654, v, 0)\n    except OSError:\n        pass\n")
        subprocess.run([sys.executable, "-c", code, *map(str, OFFSETS)], check=True,
                       timeout=60)
        assert prom.wait_for("pybpf_test_offset_count", lambda v: v == len(OFFSETS)) \
            == len(OFFSETS)
        assert prom.value("pybpf_test_offset_kilo_count") == len(OFFSETS)
        assert prom.value("pybpf_test_offset_sum") == sum(OFFSETS)
        linear = {float(r["metric"]["le"]): float(r["value"][1])
                  for r in prom.query("pybpf_test_offset_bucket")}
        assert sorted(linear) == [100.0 * (i + 1) for i in range(10)] + [float("inf")]
        for le, count in linear.items():
            assert count == sum(1 for v in OFFSETS if v < le or le == float("inf")), le
        log2 = {float(r["metric"]["le"]): float(r["value"][1])
                for r in prom.query("pybpf_test_offset_kilo_bucket")}
        assert len(log2) == 21
        for le, count in log2.items():
            bound = float("inf") if le == float("inf") else round(le * 1e3)
            assert count == sum(1 for v in OFFSETS if v < bound), le
        estimate = prom.value("pybpf_test_offset_kilo_sum")
        assert 0.5 * sum(OFFSETS) * 1e-3 <= estimate <= 1.5 * sum(OFFSETS) * 1e-3
    finally:
        prom.stop()
        exporter.stop()
