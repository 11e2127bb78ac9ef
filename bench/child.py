"""Measuring child: run one method on one workload and write what it measured.

Usage: ``python bench/child.py SPEC.json``

The spec names the workload, the method, its parameters and an output folder. The child
writes there ``result.json`` (timings, memory, versions), ``embedding.npy`` and, where the
method exposes one, ``neighbours.npy``. A missing ``result.json`` tells the parent that the
child died (crash, out of memory, timeout).
"""

import json
import os
import platform
import resource
import sys
import time
import traceback


def _versions(method):
    """Versions of the packages a method run depends on."""
    from importlib import metadata

    names = ["numpy", "scipy", "scikit-learn", "h5py", "annoy"]
    if method in ("ivis", "ivis_prev"):
        names += ["tensorflow", "tensorflow-cpu", "keras"]
    if method == "umap":
        names += ["umap-learn", "pynndescent", "numba"]
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return out


def main(spec_path):
    with open(spec_path) as f:
        spec = json.load(f)
    out_dir = spec["out_dir"]
    result = {"pid": os.getpid(), "python_executable": sys.executable}

    import numpy as np

    import methods
    import procstat
    import workloads

    start = time.perf_counter()
    wl = workloads.load(spec["workload"], spec.get("max_rows"))
    result["load_seconds"] = time.perf_counter() - start
    result["shape"] = list(wl.shape)
    result["memory_after_load"] = procstat.read_status()

    fit_params = dict(spec.get("fit_params") or {})
    out = methods.run(spec["method"], wl.X, spec.get("params") or {}, fit_params)

    result["ru_maxrss"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    result["memory_before_fit"] = out.memory_before_fit
    result["memory_after_fit"] = procstat.read_status()
    result["wall"] = out.wall
    result["import_seconds"] = out.import_seconds
    result["timings"] = out.timings
    result["loss_history"] = out.loss_history
    result["info"] = out.info
    result["versions"] = _versions(spec["method"])
    result["embedding_shape"] = list(out.embedding.shape)
    result["embedding_finite"] = bool(np.isfinite(out.embedding).all())
    np.save(os.path.join(out_dir, "embedding.npy"), out.embedding.astype(np.float32))
    if out.neighbours is not None:
        np.save(os.path.join(out_dir, "neighbours.npy"), out.neighbours)
        result["neighbours_shape"] = list(out.neighbours.shape)
        result["neighbours_metric"] = out.neighbours_metric
    wl.close()

    # Written last and atomically: its presence means the run completed.
    tmp = os.path.join(out_dir, "result.json.partial")
    with open(tmp, "w") as f:
        json.dump(result, f, indent=1, default=str)
    os.replace(tmp, os.path.join(out_dir, "result.json"))


def _write_error(spec_path, exc):
    """Leave the exception where the parent looks for it."""
    try:
        with open(spec_path) as f:
            out_dir = json.load(f)["out_dir"]
        with open(os.path.join(out_dir, "error.json"), "w") as f:
            json.dump(
                {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()}, f, indent=1
            )
    except Exception:
        pass


if __name__ == "__main__":
    try:
        main(sys.argv[1])
    except Exception as exc:
        traceback.print_exc()
        _write_error(sys.argv[1], exc)
        sys.exit(1)
