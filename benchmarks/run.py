#!/usr/bin/env python3
"""Benchmark suite for bncli: whole processes, timed against an I/O floor.

    python benchmarks/run.py --rows 200000            # quick (a few minutes)
    python benchmarks/run.py --rows 2000000 --repeat 3
    python benchmarks/run.py --memory-check           # peak RSS at 2M and 6M rows

Generates the input data if missing (benchmarks/gen_data.py), then runs every
case as a separate process, round-robin within each repeat (the order rotates
by one each repeat) so that machine noise hits all cases alike. Per case it
reports the median wall time, the median CPU time (user+sys of the child and
its children, from os.wait4), the peak RSS (ru_maxrss, max over repeats) and
the wall- and CPU-time ratios to the floor of the same format
(benchmarks/floor.py: a pyarrow streaming read + write of the same table, no
math). Before each run it waits (--wait-idle) for other processes to leave
the CPUs idle and notes the runs that started on a busy machine.

Cases: bncli fit/transform (CSV -> CSV, CSV -> /dev/null, Parquet -> Parquet),
the floors (also read-only), the peers of benchmarks/peers.py (pandas,
chunked scikit-learn, polars, DuckDB; each skipped when not installed) and the
start-up time of `bncli --help`.

Results are printed as markdown, saved as JSON under benchmarks/results/ and
rendered into docs/benchmarks.md between the markers
<!-- bench:results:start --> and <!-- bench:results:end --> (the rest of that
file is left alone).

The harness itself imports only the stdlib and generates data in a child
process: on Linux a child's ru_maxrss starts at the RSS high-water mark of
the parent that forked it, so a big harness would inflate every peak RSS.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import json
import os
import platform
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DATA_DIR = HERE / "data"
RESULTS_DIR = HERE / "results"
DOCS_FILE = REPO / "docs" / "benchmarks.md"
START, END = "<!-- bench:results:start -->", "<!-- bench:results:end -->"
MEMORY_ROWS = (2_000_000, 6_000_000)
DEVNULL = "/dev/null"


# --------------------------------------------------------------------------
# cases

@dataclass
class Case:
    """One command line to time. `fmt` selects the floor it is compared to."""
    name: str
    group: str                  # bncli | floor | peer
    fmt: str                    # csv | parquet
    argv: list[str]
    output: str | None = None   # file written (deleted before each run)
    needs: str | None = None    # module that must be importable (peers)


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mb: float
    rc: int


@dataclass
class Result:
    name: str
    group: str
    fmt: str
    runs: list[Run] = field(default_factory=list)
    out_mb: float | None = None
    error: str | None = None
    busy_starts: int = 0        # runs started while other processes kept the CPUs busy

    @property
    def wall(self) -> float:
        return statistics.median(r.wall for r in self.runs)

    @property
    def cpu(self) -> float:
        return statistics.median(r.cpu for r in self.runs)

    @property
    def rss_mb(self) -> float:
        return max(r.rss_mb for r in self.runs)


def bncli_cases(bn: list[str], data: dict[str, Path], scratch: Path) -> list[Case]:
    csv, pq = str(data["csv"]), str(data["parquet"])
    s_csv, s_pq = str(scratch / "stats_csv.json"), str(scratch / "stats_parquet.json")
    out = {k: str(scratch / f"bncli_{k}") for k in ("fit.csv", "transform.csv",
                                                   "fit.parquet", "transform.parquet")}
    return [
        Case("bncli fit csv→csv", "bncli", "csv",
             bn + ["fit", csv, "-s", s_csv, "-o", out["fit.csv"]], out["fit.csv"]),
        Case("bncli fit csv→/dev/null", "bncli", "csv",
             bn + ["fit", csv, "-s", str(scratch / "stats_only.json"), "-o", DEVNULL]),
        Case("bncli transform csv→csv", "bncli", "csv",
             bn + ["transform", csv, "-s", s_csv, "-o", out["transform.csv"]],
             out["transform.csv"]),
        Case("bncli fit parquet→parquet", "bncli", "parquet",
             bn + ["fit", pq, "-s", s_pq, "-o", out["fit.parquet"]], out["fit.parquet"]),
        Case("bncli transform parquet→parquet", "bncli", "parquet",
             bn + ["transform", pq, "-s", s_pq, "-o", out["transform.parquet"]],
             out["transform.parquet"]),
    ]


def floor_cases(data: dict[str, Path], scratch: Path) -> list[Case]:
    script = [sys.executable, str(HERE / "floor.py")]
    cases = []
    for fmt in ("csv", "parquet"):
        out = str(scratch / f"floor.{fmt}")
        cases.append(Case(f"floor {fmt} read+write", "floor", fmt,
                          script + [fmt, str(data[fmt]), out], out))
        cases.append(Case(f"floor {fmt} read only", "floor", fmt,
                          script + [fmt, str(data[fmt])]))
    return cases


PEER_NAMES = ["pandas-csv", "sklearn-csv", "polars-csv", "duckdb-csv",
              "pandas-parquet", "polars-parquet", "duckdb-parquet"]
PEER_NEEDS = {"pandas": "pandas", "sklearn": "sklearn", "polars": "polars",
              "duckdb": "duckdb"}


def peer_cases(data: dict[str, Path], scratch: Path) -> list[Case]:
    script = [sys.executable, str(HERE / "peers.py")]
    cases = []
    for peer in PEER_NAMES:
        lib, fmt = peer.split("-")
        out = str(scratch / f"peer_{peer}.{fmt}")
        cases.append(Case(f"{lib} {fmt}→{fmt}", "peer", fmt,
                          script + [peer, str(data[fmt]), out], out, PEER_NEEDS[lib]))
    return cases


def floor_name(fmt: str) -> str:
    return f"floor {fmt} read+write"


# --------------------------------------------------------------------------
# measuring

def measure(argv: list[str], log: Path) -> Run:
    """Run one process to completion; wall from perf_counter, CPU/RSS from wait4."""
    with open(log, "wb") as fh:
        t0 = time.perf_counter()
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=fh,
                                stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped
    cpu = usage.ru_utime + usage.ru_stime
    return Run(wall, cpu, usage.ru_maxrss / 1024.0, proc.returncode)  # KiB -> MiB


def tail(path: Path, lines: int = 8) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    with open("/proc/stat") as fh:
        values = [int(v) for v in fh.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def cpu_busy(interval: float = 0.3) -> float:
    """Fraction of all CPUs busy (with other processes) during `interval` seconds."""
    try:
        b0, t0 = _cpu_times()
        time.sleep(interval)
        b1, t1 = _cpu_times()
    except OSError:
        return 0.0
    return (b1 - b0) / max(t1 - t0, 1)


GIVE_UP_AFTER = 3        # waits in a row that time out before waiting stops
_timeouts_in_row = 0


def wait_idle(max_wait: float, threshold: float = 0.25) -> bool:
    """Wait up to max_wait s for other load to drop below threshold; True if it did.

    On a persistently busy machine (GIVE_UP_AFTER timeouts in a row) it only
    samples once, so the suite still finishes in reasonable time; waiting
    resumes as soon as one sample finds the CPUs idle.
    """
    global _timeouts_in_row
    if max_wait <= 0:
        return True
    if _timeouts_in_row >= GIVE_UP_AFTER:
        max_wait = 0.0
    deadline = time.monotonic() + max_wait
    while cpu_busy() >= threshold:
        if time.monotonic() >= deadline:
            _timeouts_in_row += 1
            return False
    _timeouts_in_row = 0
    return True


def run_once(case: Case, result: Result, scratch: Path, max_wait: float = 0.0) -> bool:
    """Time one run of a case into result; on failure record the error."""
    if case.output:
        Path(case.output).unlink(missing_ok=True)
    if not wait_idle(max_wait):
        result.busy_starts += 1
    log = scratch / "last.log"
    run = measure(case.argv, log)
    if run.rc != 0:
        result.error = f"exit {run.rc}: {tail(log)}"
        print(f"  FAILED {case.name}: {shlex.join(case.argv)}\n{tail(log)}", file=sys.stderr)
        return False
    result.runs.append(run)
    if case.output and os.path.exists(case.output):
        result.out_mb = os.path.getsize(case.output) / 1e6
    print(f"  {case.name:34s} {run.wall:7.2f} s wall {run.cpu:7.2f} s cpu "
          f"{run.rss_mb:7.0f} MiB", file=sys.stderr)
    return True


def run_round_robin(cases: list[Case], repeat: int, scratch: Path,
                    max_wait: float = 0.0) -> list[Result]:
    """Every case once per repeat; the order rotates so no case is always first."""
    results = {c.name: Result(c.name, c.group, c.fmt) for c in cases}
    for r in range(repeat):
        print(f"repeat {r + 1}/{repeat}", file=sys.stderr)
        shift = r % len(cases)
        for case in cases[shift:] + cases[:shift]:
            if results[case.name].error is None:
                run_once(case, results[case.name], scratch, max_wait)
    return list(results.values())


def load_notes(before: tuple, results: list[Result], max_wait: float) -> list[str]:
    """Say how loaded the machine was; wall times are unreliable on a busy machine."""
    after = os.getloadavg()
    notes = [f"load average (1 min) {before[0]:.2f} before, {after[0]:.2f} after the runs"]
    busy = sum(r.busy_starts for r in results)
    total = sum(len(r.runs) for r in results)
    if max_wait > 0 and busy:
        notes.append(f"{busy} of {total} runs started while other processes kept the CPUs "
                     f"busy (waited up to {max_wait:.0f} s): compare CPU times rather than wall")
    return notes


def generate_data(rows: int, data_dir: Path) -> dict[str, Path]:
    """Run gen_data.py (a no-op for existing files) in a child; return its paths."""
    proc = subprocess.run([sys.executable, str(HERE / "gen_data.py"), "--rows", str(rows),
                           "--out-dir", str(data_dir), "--formats", "csv,parquet"],
                          stdout=subprocess.PIPE, text=True, check=True)
    csv, parquet = proc.stdout.split()
    return {"csv": Path(csv), "parquet": Path(parquet)}


def harness_rss_note() -> str:
    """The floor under every child's ru_maxrss (see the module docstring)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return f"harness peak RSS {peak:.0f} MiB (a lower bound of every child's peak RSS)"


def warm_cache(paths) -> None:
    """Read inputs once so every case starts with them in the page cache."""
    for path in paths:
        with open(path, "rb") as fh:
            while fh.read(1 << 24):
                pass


def startup_times(bn: list[str] | None, runs: int, max_wait: float = 0.0) -> dict[str, float]:
    """Median wall time of `bncli --help` and two interpreter references."""
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "python -c 'import pyarrow.csv, pyarrow.parquet'":
                [sys.executable, "-c", "import pyarrow.csv, pyarrow.parquet"]}
    if bn:
        label = [Path(bn[0]).name if bn[0] != sys.executable else "python"] + bn[1:]
        cmds[shlex.join(label + ["--help"])] = bn + ["--help"]
    out = {}
    for label, argv in cmds.items():
        walls = []
        wait_idle(max_wait)
        for _ in range(runs):
            t0 = time.perf_counter()
            subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            walls.append(time.perf_counter() - t0)
        out[label] = statistics.median(walls)
    return out


# --------------------------------------------------------------------------
# environment

def resolve_bncli(spec: str | None) -> tuple[list[str] | None, str]:
    """The bncli command line, or None with the reason it cannot run."""
    beside = Path(sys.executable).with_name("bncli")  # avoids e.g. pyenv shims
    if spec:
        bn = shlex.split(spec)
    elif beside.exists():
        bn = [str(beside)]
    elif shutil.which("bncli"):
        bn = [shutil.which("bncli")]
    else:
        bn = [sys.executable, "-m", "bncli"]
    try:
        proc = subprocess.run(bn + ["--help"], capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"`{shlex.join(bn)} --help` failed: {exc}"
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [""])[-1]
        return None, f"`{shlex.join(bn)} --help` exited {proc.returncode}: {last}"
    return bn, ""


def _version(module: str) -> str | None:
    if importlib.util.find_spec(module) is None:
        return None
    from importlib import metadata
    dist = {"sklearn": "scikit-learn"}.get(module, module)
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _git_rev() -> str:
    try:
        return subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"],
                              capture_output=True, text=True, timeout=10).stdout.strip() or "no commit"
    except OSError:
        return "?"


def machine_info() -> dict:
    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    versions = {m: _version(m) for m in ("bncli", "pyarrow", "numpy", "pandas",
                                         "polars", "duckdb", "sklearn")}
    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OMP_NUM_THREADS")
           if k in os.environ}
    return {"cpu": cpu, "cores": os.cpu_count(), "ram_gib": round(ram, 1),
            "python": platform.python_version(), "versions": versions, "env": env,
            "git": _git_rev(), "date": dt.datetime.now().astimezone().isoformat(timespec="seconds")}


# --------------------------------------------------------------------------
# reporting

def suite_table(results: list[Result]) -> str:
    floors = {r.fmt: r for r in results if r.name == floor_name(r.fmt) and r.runs}
    lines = ["| case | wall s (median) | wall min–max | CPU s (median) | peak RSS MiB "
             "| × floor wall | × floor CPU | output MB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        if not r.runs:
            error = (r.error or "skipped").splitlines()[0].replace("|", "/")
            lines.append(f"| {r.name} | {error} | | | | | | |")
            continue
        walls = [x.wall for x in r.runs]
        floor = floors.get(r.fmt)
        ratio_wall = f"{r.wall / floor.wall:.2f}" if floor else "–"
        ratio_cpu = f"{r.cpu / floor.cpu:.2f}" if floor else "–"
        out = f"{r.out_mb:.0f}" if r.out_mb is not None else "–"
        lines.append(f"| {r.name} | {r.wall:.2f} | {min(walls):.2f}–{max(walls):.2f} "
                     f"| {r.cpu:.2f} | {r.rss_mb:.0f} | {ratio_wall} | {ratio_cpu} | {out} |")
    return "\n".join(lines)


def env_line(info: dict) -> str:
    v = info["versions"]
    libs = ", ".join(f"{k} {val}" for k, val in v.items() if val)
    env = "; env " + ", ".join(f"{k}={val}" for k, val in info["env"].items()) if info["env"] else ""
    return (f"{info['date']} · {info['cpu']}, {info['cores']} cores, {info['ram_gib']} GiB RAM · "
            f"Python {info['python']}, {libs} · repo {info['git']}{env}")


def render_suite(doc: dict) -> str:
    results = [Result(r["name"], r["group"], r["fmt"], [Run(**x) for x in r["runs"]],
                      r["out_mb"], r["error"], r.get("busy_starts", 0)) for r in doc["results"]]
    parts = [f"### {doc['rows']:,} rows, {doc['repeat']} repeats",
             "", env_line(doc["info"]), "",
             f"Command: `{doc['command']}` · inputs: CSV {doc['input_mb']['csv']:.0f} MB, "
             f"Parquet {doc['input_mb']['parquet']:.0f} MB", "",
             suite_table(results)]
    if doc.get("notes"):
        parts += [""] + [f"- {n}" for n in doc["notes"]]
    if doc.get("startup"):
        parts += ["", "Start-up (median wall of "
                  f"{doc['startup_runs']} runs):", "", "| command | wall s |", "|---|---:|"]
        parts += [f"| `{k}` | {v:.3f} |" for k, v in doc["startup"].items()]
    return "\n".join(parts)


def render_memory(doc: dict) -> str:
    small, big = (str(r) for r in doc["rows"])
    lines = [f"### Memory check: peak RSS at {int(small):,} and {int(big):,} rows",
             "", env_line(doc["info"]), "", f"Command: `{doc['command']}`", "",
             f"| case | RSS MiB @ {int(small):,} | RSS MiB @ {int(big):,} | ratio "
             f"| wall s @ {int(small):,} | wall s @ {int(big):,} |",
             "|---|---:|---:|---:|---:|---:|"]
    for name, per in doc["cases"].items():
        a, b = per.get(small), per.get(big)
        if not a or not b:
            cells = [f"{x['rss_mb']:.0f}" if x else "failed" for x in (a, b)]
            lines.append(f"| {name} | {cells[0]} | {cells[1]} | | | |")
            continue
        lines.append(f"| {name} | {a['rss_mb']:.0f} | {b['rss_mb']:.0f} | "
                     f"{b['rss_mb'] / a['rss_mb']:.2f} | {a['wall']:.2f} | {b['wall']:.2f} |")
    if doc.get("notes"):
        lines += [""] + [f"- {n}" for n in doc["notes"]]
    return "\n".join(lines)


def render_section() -> str:
    """All saved results: suites by size (largest first), then the memory check."""
    blocks = []
    suites = [json.loads(p.read_text()) for p in RESULTS_DIR.glob("suite-*.json")]
    for doc in sorted(suites, key=lambda d: -d["rows"]):
        blocks.append(render_suite(doc))
    mem = RESULTS_DIR / "memory.json"
    if mem.exists():
        blocks.append(render_memory(json.loads(mem.read_text())))
    header = ("<!-- generated by `python benchmarks/run.py`; edit outside the markers -->\n"
              "Wall and CPU times are medians over repeats of whole processes "
              "(CPU = user+sys, all threads); peak RSS is ru_maxrss; × floor = wall time "
              "divided by the pyarrow read+write floor of the same format (CPU likewise; "
              "on a busy machine the CPU ratio is the steadier one).")
    return "\n\n".join([header] + blocks)


def update_docs(section: str, path: Path = DOCS_FILE) -> None:
    """Replace only the marked section of docs/benchmarks.md (create if absent)."""
    block = f"{START}\n{section}\n{END}"
    text = path.read_text() if path.exists() else ""
    if START in text and END in text.split(START, 1)[1]:
        before, rest = text.split(START, 1)
        after = rest.split(END, 1)[1]
        text = before + block + after
    elif text:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    else:
        text = "# Benchmarks\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def save(name: str, doc: dict) -> None:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (RESULTS_DIR / name).write_text(json.dumps(doc, indent=1, ensure_ascii=False))


# --------------------------------------------------------------------------
# modes

def prepare_bncli(bn: list[str], cases: list[Case], scratch: Path, notes: list[str]) -> list[Case]:
    """Run each bncli fit once (untimed) so transform finds its stats; drop bncli if it fails."""
    fits = [c for c in cases if c.group == "bncli" and " fit " in f" {c.name} " and c.output]
    for case in fits:
        log = scratch / "prepare.log"
        if measure(case.argv, log).rc != 0:
            notes.append(f"bncli skipped: `{shlex.join(case.argv)}` failed: "
                         + tail(log, 1).replace("|", "/"))
            print(f"bncli prepare failed:\n{tail(log)}", file=sys.stderr)
            return [c for c in cases if c.group != "bncli"]
    return cases


def select_cases(args, bn, data, scratch, notes) -> list[Case]:
    cases = floor_cases(data, scratch)
    if bn:
        cases = bncli_cases(bn, data, scratch) + cases
    if not args.no_peers:
        for case in peer_cases(data, scratch):
            if importlib.util.find_spec(case.needs) is None:
                notes.append(f"{case.name} skipped: `{case.needs}` not installed")
            else:
                cases.append(case)
    if args.only:
        cases = [c for c in cases if any(s in c.name for s in args.only)]
    return cases


def suite(args, bn, bn_note, info) -> str:
    data = generate_data(args.rows, args.data_dir)
    scratch = RESULTS_DIR / f"scratch-{args.rows}"
    scratch.mkdir(parents=True, exist_ok=True)
    notes = [bn_note] if bn_note else []
    cases = select_cases(args, bn, data, scratch, notes)
    warm_cache(data.values())
    if bn:
        cases = prepare_bncli(bn, cases, scratch, notes)
    repeat = args.repeat or 3
    load_before = os.getloadavg()
    results = run_round_robin(cases, repeat, scratch, args.wait_idle)
    notes.extend(load_notes(load_before, results, args.wait_idle))
    notes.append(harness_rss_note())
    bn_ok = bn and any(c.group == "bncli" for c in cases)
    startup = startup_times(bn if bn_ok else None, args.startup_runs, args.wait_idle)
    doc = {"rows": args.rows, "repeat": repeat, "command": _command(), "info": info,
           "input_mb": {k: p.stat().st_size / 1e6 for k, p in data.items()},
           "results": [dict(asdict(r)) for r in results], "notes": notes,
           "startup": startup, "startup_runs": args.startup_runs}
    if not args.keep_outputs:
        shutil.rmtree(scratch, ignore_errors=True)
    if args.only:  # partial runs are printed, never saved over a full result
        return render_suite(doc)
    save(f"suite-{args.rows}.json", doc)
    return render_suite(doc)


def memory_check(args, bn, bn_note, info) -> str:
    if not bn:
        sys.exit(f"memory check needs bncli: {bn_note}")
    repeat = args.repeat or 1
    per_case: dict[str, dict] = {}
    notes = []
    for rows in args.memory_rows:
        data = generate_data(rows, args.data_dir)
        scratch = RESULTS_DIR / f"scratch-mem-{rows}"
        scratch.mkdir(parents=True, exist_ok=True)
        cases = [c for c in bncli_cases(bn, data, scratch) if c.output]
        cases += [c for c in floor_cases(data, scratch) if c.output]
        warm_cache(data.values())
        cases = prepare_bncli(bn, cases, scratch, notes)
        print(f"== {rows:,} rows", file=sys.stderr)
        load_before = os.getloadavg()
        results = run_round_robin(cases, repeat, scratch, args.wait_idle)
        notes.extend(f"{rows:,} rows: {n}" for n in load_notes(load_before, results, args.wait_idle))
        for r in results:
            if r.runs:
                per_case.setdefault(r.name, {})[str(rows)] = {"rss_mb": r.rss_mb, "wall": r.wall}
        if not args.keep_outputs:
            shutil.rmtree(scratch, ignore_errors=True)
    notes.append(harness_rss_note())
    doc = {"rows": list(args.memory_rows), "command": _command(), "info": info,
           "cases": per_case, "notes": notes}
    save("memory.json", doc)
    return render_memory(doc)


def _command() -> str:
    return shlex.join(["python", "benchmarks/run.py"] + sys.argv[1:])


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    p.add_argument("--rows", type=int, default=200_000, help="table size (default 200000)")
    p.add_argument("--repeat", type=int, help="runs per case (default 3; memory check 1)")
    p.add_argument("--memory-check", action="store_true",
                   help="peak RSS of bncli fit/transform at --memory-rows instead of the suite")
    p.add_argument("--memory-rows", type=int, nargs=2, default=MEMORY_ROWS,
                   metavar=("SMALL", "BIG"), help="sizes for --memory-check (default 2M 6M)")
    p.add_argument("--bncli", help="bncli command line (default: `bncli` beside this "
                                   "Python, else on PATH, else `python -m bncli`)")
    p.add_argument("--only", nargs="+", metavar="TEXT",
                   help="run only cases whose name contains one of TEXT (not saved)")
    p.add_argument("--no-peers", action="store_true", help="skip pandas/sklearn/polars/duckdb")
    p.add_argument("--wait-idle", type=float, default=10.0, metavar="SECONDS",
                   help="before each run wait up to SECONDS for other processes to leave "
                        "the CPUs idle (default 10; 0 disables)")
    p.add_argument("--startup-runs", type=int, default=10, help="runs of `bncli --help`")
    p.add_argument("--data-dir", type=Path, default=DATA_DIR,
                   help="where input data is generated/reused")
    p.add_argument("--keep-outputs", action="store_true", help="keep outputs in benchmarks/results/")
    p.add_argument("--no-docs", action="store_true", help="do not update docs/benchmarks.md")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    bn, bn_note = resolve_bncli(args.bncli)
    if bn_note:
        print(f"note: {bn_note}", file=sys.stderr)
    info = machine_info()
    table = (memory_check if args.memory_check else suite)(args, bn, bn_note, info)
    print(table)
    if not args.no_docs and not args.only:
        update_docs(render_section())
        print(f"\nupdated {DOCS_FILE.relative_to(REPO)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
