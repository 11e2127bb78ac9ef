"""Availability of the two ivis implementations under test.

The previous release (2.0.11) lives in ``bench/.venv-prev``, made on demand by
``setup_prev.sh``; this project's ivis comes from the suite's own interpreter, or from the source
tree when it is not installed there.
"""

import os
import subprocess

import envinfo

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
REPO_DIR = os.path.dirname(BENCH_DIR)
PREV_VENV = os.environ.get("IVIS_PREV_VENV") or os.path.join(BENCH_DIR, ".venv-prev")
PREV_PYTHON = os.path.join(PREV_VENV, "bin", "python")
PREV_VERSION = "2.0.11"


def ensure_prev(log_path, allow_setup=True, timeout=1800):
    """Make sure the previous release can run; create its venv when needed.

    Parameters
    ----------
    log_path : str
        Where the installation log goes.
    allow_setup : bool
        When False, an absent venv is reported unavailable instead of being created.
    timeout : float

    Returns
    -------
    dict
        ``available`` (bool), ``python``, ``versions`` and, when unavailable, ``reason``.
    """
    state = {"available": False, "python": PREV_PYTHON}
    ready = os.path.exists(os.path.join(PREV_VENV, ".ready"))
    if not ready:
        if not allow_setup:
            state["reason"] = f"{PREV_VENV} does not exist and setup was disabled (--no-prev-setup)"
            return state
        try:
            proc = subprocess.run(
                ["bash", os.path.join(BENCH_DIR, "setup_prev.sh"), log_path],
                timeout=timeout,
                capture_output=True,
                text=True,
                env=dict(os.environ, IVIS_PREV_VENV=PREV_VENV),
            )
            ok = proc.returncode == 0
        except subprocess.TimeoutExpired:
            ok = False
        if not ok:
            state["reason"] = "installing 'tensorflow-cpu<2.16' ivis==2.0.11 failed: " + _last_lines(log_path)
            return state
    versions = envinfo.versions(PREV_PYTHON, env=_clean_env())
    state["versions"] = versions
    if "error" in versions:
        state["reason"] = f"bench/.venv-prev does not start: {versions['error']}"
    elif versions.get("ivis") != PREV_VERSION:
        state["reason"] = f"bench/.venv-prev holds ivis {versions.get('ivis')}, expected {PREV_VERSION}"
    else:
        state["available"] = True
    return state


def ensure_current(python):
    """Find out whether ``python`` can import this project's ``Ivis``.

    Parameters
    ----------
    python : str

    Returns
    -------
    dict
        ``available``, ``pythonpath`` (the source tree's ``python/`` folder when the package
        is only importable from there, else None), ``versions`` and ``reason`` when unavailable.
    """
    src = os.path.join(REPO_DIR, "python")
    errors = []
    for pythonpath in (None, src):
        env = dict(os.environ)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
        proc = subprocess.run(
            [python, "-c", "from ivis import Ivis"], capture_output=True, text=True, env=env, timeout=300
        )
        if proc.returncode == 0:
            return {
                "available": True,
                "pythonpath": pythonpath,
                "versions": envinfo.versions(python, env=env),
            }
        errors.append((proc.stderr.strip().splitlines() or ["?"])[-1])
    return {
        "available": False,
        "pythonpath": None,
        "reason": "`from ivis import Ivis` fails: " + errors[-1],
        "versions": envinfo.versions(python),
    }


def _clean_env():
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    return env


def _last_lines(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [line.strip() for line in f if line.strip()]
        return " | ".join(lines[-n:]) or "no output"
    except OSError:
        return "no log"
