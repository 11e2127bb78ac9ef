"""Launch one measuring child, watch its memory, and collect what it left behind."""

import json
import os
import shutil
import signal
import subprocess
import time

import procstat

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
CHILD = os.path.join(BENCH_DIR, "child.py")
GiB = 2**30


def child_env(method, ivis_pythonpath=None, scratch=None, numba_cache=None):
    """Environment of a child process.

    Parameters
    ----------
    method : str
    ivis_pythonpath : str, optional
        Prepended to ``PYTHONPATH`` for this project's ivis when it is not installed.
    scratch : str, optional
        Private temporary folder: temporary index files land there and go away with it.
    numba_cache : str, optional
        Shared numba cache for UMAP; by default each UMAP child compiles from scratch.
    """
    env = dict(os.environ)
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    env["PYTHONHASHSEED"] = "0"
    env["PYTHONUNBUFFERED"] = "1"
    if method == "ivis_prev":
        # The previous release lives in its own venv and must not see this project's sources.
        env.pop("PYTHONPATH", None)
    elif method == "ivis" and ivis_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in (ivis_pythonpath, env.get("PYTHONPATH")) if p)
    if scratch:
        env["TMPDIR"] = scratch
        if method == "umap":
            # A fresh cache by default, so that no UMAP run profits from an earlier one.
            env["NUMBA_CACHE_DIR"] = numba_cache or os.path.join(scratch, "numba")
    return env


def _tail(path, lines=25):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def execute(python, spec, run_dir, env, timeout, min_mem_available_gib=1.0, min_disk_free_gib=5.0):
    """Run the child for ``spec`` and return a record of the run.

    Parameters
    ----------
    python : str
        Interpreter of the child.
    spec : dict
        Passed to :mod:`child`; ``out_dir`` is set to ``run_dir``.
    run_dir : str
        Emptied first; receives ``spec.json``, ``child.log`` and the child's outputs.
    env : dict
    timeout : float
        Seconds before the child is killed.
    min_mem_available_gib, min_disk_free_gib : float
        Guards: the child is killed when the machine falls below these.

    Returns
    -------
    dict
        ``status`` ('ok', 'failed', 'timeout', 'stopped'), ``returncode``, memory peaks from the
        sampler, the child's own ``result.json`` under ``child``, and ``error``/``log_tail``
        when it did not finish.
    """
    shutil.rmtree(run_dir, ignore_errors=True)
    os.makedirs(run_dir)
    scratch = env.get("TMPDIR")
    if scratch:
        os.makedirs(scratch, exist_ok=True)
    spec = dict(spec, out_dir=run_dir)
    spec_path = os.path.join(run_dir, "spec.json")
    with open(spec_path, "w") as f:
        json.dump(spec, f, indent=1)
    log_path = os.path.join(run_dir, "child.log")

    record = {"status": None, "log": os.path.relpath(log_path, BENCH_DIR)}
    started = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [python, CHILD, spec_path],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=run_dir,
            start_new_session=True,
        )

        def stop(reason):
            record["stopped_because"] = reason
            _kill(proc)

        sampler = procstat.RssSampler(
            proc.pid,
            min_mem_available=int(min_mem_available_gib * GiB),
            min_disk_free=int(min_disk_free_gib * GiB),
            disk_path=scratch or run_dir,
            on_exhausted=stop,
        )
        sampler.start()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            record["stopped_because"] = f"timeout after {timeout:.0f} s"
            _kill(proc)
            proc.wait()
        except BaseException:
            # The suite itself is being stopped: the child lives in its own session and would
            # otherwise outlive it.
            _kill(proc)
            raise
        sampler.stop()
        sampler.join(timeout=5)

    record["returncode"] = proc.returncode
    record["elapsed_process"] = time.time() - started
    record["peak_rss_anon"] = sampler.peak.get("RssAnon")
    record["peak_vm_rss"] = sampler.peak.get("VmRSS")
    record["rss_trace"] = _thin(sampler.trace, 600)
    result_path = os.path.join(run_dir, "result.json")
    if os.path.exists(result_path):
        with open(result_path) as f:
            record["child"] = json.load(f)
        record["status"] = "ok"
    else:
        if "stopped_because" in record:
            record["status"] = "timeout" if record["stopped_because"].startswith("timeout") else "stopped"
            record["error"] = record["stopped_because"]
        else:
            record["status"] = "failed"
            record["error"] = _error_of(run_dir, proc.returncode)
        record["log_tail"] = _tail(log_path)
    if scratch:
        shutil.rmtree(scratch, ignore_errors=True)
    return record


def _error_of(run_dir, returncode):
    path = os.path.join(run_dir, "error.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f).get("error")
    if returncode is not None and returncode < 0:
        name = signal.Signals(-returncode).name
        hint = " (likely the kernel's out-of-memory killer)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit status {returncode}"


def _kill(proc):
    """Kill the child's process group (the child was started in a session of its own)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _thin(trace, max_points):
    """Keep at most ``max_points`` evenly spaced samples of a trace."""
    if len(trace) <= max_points:
        return trace
    step = len(trace) / max_points
    return [trace[int(i * step)] for i in range(max_points)] + [trace[-1]]
