"""Score the embeddings (and neighbour matrices) that the children of one workload left behind."""

import os
import time

import numpy as np

import metrics
import workloads


def score_runs(wl, records, bench_dir, log=print):
    """Add ``quality`` to every completed record of one workload, in place.

    Parameters
    ----------
    wl : workloads.Workload
        The workload the records were measured on.
    records : list of dict
        Run records with ``status`` and ``run_dir`` (relative to ``bench_dir``).
    bench_dir : str
    log : callable
    """
    todo = [r for r in records if r.get("status") == "ok"]
    if not todo:
        return
    start = time.perf_counter()
    X = workloads.materialise(wl.X)
    space = metrics.InputSpace(X, wl.y)
    log(f"  input-space references for {wl.name}: {time.perf_counter() - start:.1f} s")
    for rec in todo:
        run_dir = os.path.join(bench_dir, rec["run_dir"])
        start = time.perf_counter()
        quality = {}
        try:
            E = np.load(os.path.join(run_dir, "embedding.npy"))
            quality.update(space.embedding_scores(E))
        except Exception as exc:  # one bad embedding must not stop the others
            quality["error"] = f"{type(exc).__name__}: {exc}"
        nbr_path = os.path.join(run_dir, "neighbours.npy")
        if os.path.exists(nbr_path):
            metric = (rec.get("child") or {}).get("neighbours_metric")
            try:
                quality.update(space.graph_recall(np.load(nbr_path), metric))
            except Exception as exc:
                quality["graph_error"] = f"{type(exc).__name__}: {exc}"
        quality["seconds"] = time.perf_counter() - start
        rec["quality"] = quality
        log(f"  scored {rec['label']}: {_brief(quality)}")


def _brief(q):
    keys = (
        "knn_accuracy",
        "trustworthiness",
        "neighbour_recall",
        "distance_correlation",
        "centroid_correlation",
        "graph_recall",
    )
    parts = [f"{k}={q[k]:.3f}" for k in keys if isinstance(q.get(k), float)]
    if "error" in q:
        parts.append(f"error={q['error']}")
    return ", ".join(parts)
