"""Benchmark driver: run every planned (workload, method) pair in its own child process, score the
embeddings, and write the raw JSON and the markdown report.

Usage: ``bash bench/run.sh [options]`` (see ``--help`` and bench/README.md).
"""

import argparse
import datetime as dt
import json
import os
import shlex
import signal
import sys
import time
from dataclasses import dataclass, field

import envinfo
import evaluate
import implementations
import methods
import plan
import report
import runner
import workloads

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
RESULTS_DIR = os.path.join(BENCH_DIR, "results")
SCHEMA = 1


def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="bench/run.sh",
        description="Time, memory and embedding quality of ivis, UMAP, PCA and the previous ivis release.",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="smoke run: digits and a 10,000-row stratified subsample of Fashion-MNIST",
    )
    p.add_argument(
        "--workloads",
        type=_csv,
        help="comma-separated, from: "
        + ", ".join(workloads.ALL + tuple(workloads.GROUPS))
        + f" (default: {','.join(workloads.DEFAULT)}; hdf5 is opt-in)",
    )
    p.add_argument(
        "--methods",
        type=_csv,
        default=list(methods.NAMES),
        help="comma-separated, from: " + ", ".join(methods.NAMES) + " (default: all)",
    )
    p.add_argument(
        "--labels",
        type=_csv,
        default=[],
        help="only the runs whose label matches one of these comma-separated patterns, e.g. 'ivis,ivis_infonce*,umap'",
    )
    p.add_argument("--name", help="results name: bench/results/NAME.json (default: full, or quick)")
    p.add_argument(
        "--max-rows",
        type=int,
        help="cap every workload at this many rows (stratified subsample; first N integers for primes)",
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=None,
        help="seconds before a run is killed (default 3600, 600 with --quick)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="discard earlier runs stored under the same name instead of replacing them run by run",
    )
    p.add_argument(
        "--report",
        help="markdown report path (default: bench/REPORT.md for 'full', else bench/results/NAME.md)",
    )
    p.add_argument(
        "--report-only", action="store_true", help="rewrite the report from the stored JSON and exit"
    )
    p.add_argument(
        "--include",
        type=_csv,
        default=[],
        help="also report the runs stored under these names (e.g. primes100k,primes1m) on workloads this one lacks",
    )
    p.add_argument("--list", action="store_true", help="print the planned runs and exit")
    p.add_argument("--python", default=sys.executable, help="interpreter for ivis, umap and pca runs")
    p.add_argument(
        "--no-prev-setup",
        action="store_true",
        help="do not create bench/.venv-prev; ivis_prev is unavailable if it is missing",
    )
    p.add_argument(
        "--prev-max-index-gib",
        type=float,
        default=16.0,
        help="skip ivis_prev where its dense Annoy index (rows x features x 4 bytes) would exceed this",
    )
    p.add_argument(
        "--min-mem-gib",
        type=float,
        default=1.0,
        help="kill a run when the machine's available memory drops below this",
    )
    p.add_argument(
        "--min-disk-gib", type=float, default=5.0, help="kill a run when free disk space drops below this"
    )
    args = p.parse_args(argv)

    args.workloads = workloads.expand(
        args.workloads or (["digits", "fmnist"] if args.quick else list(workloads.DEFAULT))
    )
    unknown = [m for m in args.methods if m not in methods.NAMES]
    if unknown:
        p.error(f"unknown method(s): {', '.join(unknown)}")
    if args.quick and args.max_rows is None:
        args.max_rows = 10_000
    args.name = args.name or ("quick" if args.quick else "full")
    if args.timeout is None:
        args.timeout = 600.0 if args.quick else 3600.0
    if args.report is None:
        args.report = (
            os.path.join(BENCH_DIR, "REPORT.md")
            if args.name == "full"
            else os.path.join(RESULTS_DIR, f"{args.name}.md")
        )
    return args


def _csv(text):
    return [part.strip() for part in text.split(",") if part.strip()]


def _now():
    return dt.datetime.now(dt.timezone.utc).astimezone().isoformat(timespec="seconds")


def _log(msg):
    print(msg, flush=True)


def results_path(name):
    return os.path.join(RESULTS_DIR, f"{name}.json")


def load_results(path, fresh):
    """Earlier results under the same name (runs are replaced one by one), or a new document."""
    if not fresh and os.path.exists(path):
        with open(path) as f:
            data = json.load(f)
        if data.get("schema") == SCHEMA:
            return data
    return {"schema": SCHEMA, "invocations": [], "workloads": {}, "runs": {}}


def include_results(data, names):
    """``data`` with the runs stored under ``names`` added, for the report only.

    Runs on workloads that ``data`` has itself are left out: within a workload, every run of a
    report comes from the same document. The invocations of added runs are listed before
    those of ``data``, whose last invocation stays the one the report is headed with.
    """
    if not names:
        return data
    merged = {**data, "runs": dict(data["runs"]), "workloads": dict(data.get("workloads", {}))}
    own = {rec.get("base_workload") for rec in data["runs"].values()}
    added_invocations = []
    for name in names:
        path = results_path(name)
        if not os.path.exists(path):
            raise SystemExit(f"--include {name}: no stored results at {os.path.relpath(path)}")
        other = load_results(path, fresh=False)
        runs = {key: rec for key, rec in other["runs"].items() if rec.get("base_workload") not in own}
        merged["runs"].update(runs)
        for workload, info in other.get("workloads", {}).items():
            merged["workloads"].setdefault(workload, info)
        used = {rec.get("invocation") for rec in runs.values()}
        added_invocations += [inv for inv in other["invocations"] if inv["id"] in used]
    merged["invocations"] = sorted(added_invocations, key=lambda inv: inv["started"]) + list(data["invocations"])
    merged["included"] = list(names)
    return merged


def save_results(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".partial"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1, default=_json_default)
    os.replace(tmp, path)


def _json_default(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _command(argv):
    # run.sh names itself; a direct call shows the interpreter's script.
    entry = os.environ.get("IVIS_BENCH_ENTRY") or "python bench/suite.py"
    return " ".join([entry, shlex.join(argv)]).strip()


def _skip_reason(run, wl, current, prev, args):
    """Why ``run`` cannot run here, or None."""
    if run.method == "ivis" and not current["available"]:
        return "unavailable", current["reason"]
    if run.method == "ivis_prev":
        if not prev["available"]:
            return "unavailable", prev["reason"]
        rows, cols = wl.shape
        index_gib = rows * cols * 4 / 2**30
        if index_gib > args.prev_max_index_gib:
            return "skipped", (
                f"ivis 2.0.11 stores every row densely in its Annoy index: {rows:,} x {cols:,} x 4 bytes "
                f"= {index_gib:,.1f} GiB (limit --prev-max-index-gib {args.prev_max_index_gib:g})"
            )
    return None


def _summary(rec):
    child = rec.get("child") or {}
    if rec["status"] != "ok":
        return f"{rec['status']}: {rec.get('error')}"
    t = child.get("timings") or {}
    parts = [f"wall {child.get('wall', float('nan')):.1f} s"]
    if t.get("neighbours") is not None:
        parts.append(f"neighbours {t['neighbours']:.1f} s")
    if t.get("epochs"):
        parts.append(f"{t['epochs']} epochs")
    if rec.get("peak_rss_anon"):
        parts.append(f"peak RssAnon {rec['peak_rss_anon'] / 2**20:.0f} MiB")
    return ", ".join(parts)


@dataclass
class Session:
    """What every run of one invocation shares."""

    args: argparse.Namespace
    path: str
    data: dict
    invocation: dict
    raw_dir: str
    numba_cache: str = None
    current: dict = field(default_factory=lambda: {"available": False, "reason": "not needed"})
    prev: dict = field(default_factory=lambda: {"available": False, "reason": "not needed"})


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    # A plain `kill` of the suite unwinds like Ctrl-C, so the running child is stopped too.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    args = parse_args(argv)
    path = results_path(args.name)

    if args.report_only:
        with open(path) as f:
            report.write(include_results(json.load(f), args.include), args.report)
        _log(f"wrote {args.report}")
        return 0

    runs = plan.build(args.workloads, args.methods, quick=args.quick, labels=args.labels)
    if args.list:
        for run in runs:
            _log(f"{run.workload:12s} {run.label:22s} {run.method:10s} {run.params} {run.fit_params or ''}")
        return 0
    if not runs:
        _log("nothing to run")
        return 1

    session = _start(args, argv, path)
    _check_implementations(session, {run.method for run in runs})
    for wname in args.workloads:
        wl_runs = [r for r in runs if r.workload == wname]
        if wl_runs:
            _run_workload(session, wname, wl_runs)

    session.invocation["finished"] = _now()
    save_results(path, session.data)
    report.write(include_results(session.data, args.include), args.report)
    _log(f"wrote {os.path.relpath(path)} and {os.path.relpath(args.report)}")
    return 0


def _start(args, argv, path):
    """Open the results document and record this invocation in it."""
    data = load_results(path, args.fresh)
    invocation = {
        "id": dt.datetime.now().strftime("%Y%m%dT%H%M%S"),
        "started": _now(),
        "command": _command(argv),
        "quick": args.quick,
        "max_rows": args.max_rows,
        "timeout": args.timeout,
        "machine": envinfo.machine(),
        "git": envinfo.git_state(os.path.dirname(BENCH_DIR)),
    }
    data["invocations"].append(invocation)
    data["name"] = args.name
    raw_dir = os.path.join(RESULTS_DIR, f"raw-{args.name}")
    os.makedirs(raw_dir, exist_ok=True)

    # UMAP: an empty numba cache per run, so that runs do not depend on their order, unless the
    # caller chose a cache, or in --quick mode, where a shared one shortens the (untimed) imports.
    numba_cache = os.environ.get("NUMBA_CACHE_DIR") or (
        os.path.join(raw_dir, "numba-cache") if args.quick else None
    )
    invocation["umap_numba_cache"] = (
        os.path.relpath(numba_cache, os.path.dirname(BENCH_DIR)) if numba_cache else "empty per run"
    )
    return Session(args, path, data, invocation, raw_dir, numba_cache)


def _check_implementations(session, methods_used):
    """Find this project's ivis and (creating it if needed) the previous release's venv."""
    args, invocation = session.args, session.invocation
    if "ivis" in methods_used:
        _log("checking this project's ivis ...")
        session.current = implementations.ensure_current(args.python)
        where = session.current.get("pythonpath")
        _log(f"  {_avail(session.current)}" + (f" (from {where})" if where else ""))
    if "ivis_prev" in methods_used:
        _log("checking the previous release in bench/.venv-prev (created on first use, a few minutes) ...")
        log_path = os.path.join(session.raw_dir, "prev-setup.log")
        session.prev = implementations.ensure_prev(log_path, not args.no_prev_setup)
        _log(f"  {_avail(session.prev)}")
    invocation["versions"] = {
        "main": session.current.get("versions") or envinfo.versions(args.python),
        "prev": session.prev.get("versions"),
    }
    invocation["ivis_source"] = session.current.get("pythonpath") or "installed package"
    invocation["availability"] = {"ivis": _avail(session.current), "ivis_prev": _avail(session.prev)}
    save_results(session.path, session.data)


def _run_workload(session, wname, wl_runs):
    """Run, then score, every planned run of one workload; save and report after each."""
    args, data = session.args, session.data
    if wname in workloads.HDF5_ROWS:
        start = time.perf_counter()
        _log(f"preparing {workloads.hdf5_path(wname, args.max_rows)} ...")
        workloads.ensure_hdf5(wname, args.max_rows)
        _log(f"  ready in {time.perf_counter() - start:.0f} s")
    wl = workloads.load(wname, args.max_rows)
    data["workloads"][wl.name] = {
        "base": wname,
        "description": wl.description,
        "labels": wl.label_description,
        "shape": list(wl.shape),
        "sparse": wl.is_sparse,
        "hdf5": wl.is_hdf5,
        "extra": wl.extra,
    }
    _log(f"== {wl.name}: {wl.description}")
    records = []
    for run in wl_runs:
        rec = _run_one(session, wl, run)
        _log(f"   {run.label}: {_summary(rec)}")
        data["runs"][f"{wl.name}/{run.label}"] = rec
        records.append(rec)
        save_results(session.path, data)
    _log(f"scoring {wl.name} ...")
    evaluate.score_runs(wl, records, BENCH_DIR, log=_log)
    wl.close()
    save_results(session.path, data)
    report.write(data, args.report)


def _run_one(session, wl, run):
    """Measure one run in a child process (or record why it cannot run); return its record."""
    args = session.args
    rec = {
        "workload": wl.name,
        "base_workload": run.workload,
        "label": run.label,
        "method": run.method,
        "params": run.params,
        "fit_params": run.fit_params,
        "note": run.note,
        "invocation": session.invocation["id"],
        "started": _now(),
    }
    skip = _skip_reason(run, wl, session.current, session.prev, args)
    if skip:
        rec["status"], rec["error"] = skip
        return rec
    _log(f"-- {wl.name} / {run.label} ...")
    run_dir = os.path.join(session.raw_dir, wl.name, run.label)
    rec["run_dir"] = os.path.relpath(run_dir, BENCH_DIR)
    python = session.prev["python"] if run.method == "ivis_prev" else args.python
    scratch = os.path.join(run_dir, "tmp")
    env = runner.child_env(run.method, session.current.get("pythonpath"), scratch, session.numba_cache)
    spec = {
        "workload": run.workload,
        "max_rows": args.max_rows,
        "method": run.method,
        "params": run.params,
        "fit_params": run.fit_params,
    }
    rec.update(runner.execute(python, spec, run_dir, env, args.timeout, args.min_mem_gib, args.min_disk_gib))
    return rec


def _avail(state):
    return "available" if state.get("available") else state.get("reason")


if __name__ == "__main__":
    sys.exit(main())
