"""The machine and the software a benchmark ran on."""

import json
import os
import platform
import subprocess

# Distributions whose versions the report lists, for either environment.
DISTRIBUTIONS = (
    "numpy",
    "scipy",
    "scikit-learn",
    "tensorflow",
    "tensorflow-cpu",
    "keras",
    "umap-learn",
    "pynndescent",
    "numba",
    "annoy",
    "h5py",
    "ivis",
)

_VERSIONS_SNIPPET = r"""
import json, platform, sys
from importlib import metadata
out = {"python": platform.python_version(), "executable": sys.executable}
for name in %r:
    try:
        out[name] = metadata.version(name)
    except metadata.PackageNotFoundError:
        pass
try:
    import ivis  # cheap: this project's package loads its heavy parts lazily
    out["ivis_module_version"] = getattr(ivis, "__version__", None)
    out["ivis_module_file"] = getattr(ivis, "__file__", None)
except Exception as exc:
    out["ivis_import_error"] = repr(exc)
print(json.dumps(out))
"""


def machine():
    """CPU model, core count, memory and OS of this machine.

    Returns
    -------
    dict
    """
    info = {
        "cpu_model": _cpu_model(),
        "logical_cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "memory_bytes": _meminfo("MemTotal"),
        "os": _os_release(),
        "kernel": platform.release(),
        "machine": platform.machine(),
    }
    return info


def _cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _meminfo(key):
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def _os_release():
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    return line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    return platform.platform()


def versions(python, env=None, timeout=120):
    """Package versions as seen by interpreter ``python``.

    Parameters
    ----------
    python : str
        Interpreter path.
    env : dict, optional
        Environment for it (e.g. with ``PYTHONPATH``).
    timeout : float

    Returns
    -------
    dict
        With ``error`` instead when the interpreter cannot report.
    """
    try:
        proc = subprocess.run(
            [python, "-c", _VERSIONS_SNIPPET % (DISTRIBUTIONS,)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return {"error": repr(exc)}
    if proc.returncode != 0:
        return {"error": proc.stderr.strip().splitlines()[-1:] or ["unknown"]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def git_state(repo):
    """Commit and whether the working tree has changes (read-only git calls)."""

    def git(*args):
        proc = subprocess.run(
            ["git", "--no-optional-locks", "-C", repo, *args], capture_output=True, text=True
        )
        return proc.stdout.strip() if proc.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {
        "commit": git("rev-parse", "HEAD"),
        "modified_tracked_files": None if status is None else bool(status),
    }
