"""Performance and quality targets, checked against the runs of one results document.

A target names a base workload (``fmnist``); when only a capped version of it ran (``fmnist10k``
in ``--quick`` mode) the verdict is computed on that one and marked *indicative*.
"""

import re
from dataclasses import dataclass

GB = 1e9


@dataclass
class Verdict:
    """Outcome of one target."""

    target: str
    workload: str
    measured: str
    required: str
    result: str  # PASS, FAIL, n/a; with " (indicative)" on a capped workload


def find(data, base, label):
    """The record of run ``label`` on workload ``base`` (full size preferred) and whether capped."""
    runs = [
        r for r in data.get("runs", {}).values() if r.get("base_workload") == base and r.get("label") == label
    ]
    if not runs:
        return None, False
    full = [r for r in runs if r.get("workload") == base]
    if full:
        return full[0], False
    return max(runs, key=lambda r: r.get("started", "")), True


def wall(rec):
    return (rec.get("child") or {}).get("wall") if _ok(rec) else None


def timing(rec, key):
    return ((rec.get("child") or {}).get("timings") or {}).get(key) if _ok(rec) else None


def quality(rec, key):
    return (rec.get("quality") or {}).get(key) if _ok(rec) else None


def peak_rss(rec):
    """ru_maxrss of the child (VmHWM), the stricter of the two peaks."""
    return (rec.get("child") or {}).get("ru_maxrss") if _ok(rec) else None


def _anon_note(data, base):
    rec, _ = find(data, base, "ivis")
    anon = rec.get("peak_rss_anon") if rec else None
    return f" (peak RssAnon {anon / GB:.2f} GB)" if anon else ""


def _ok(rec):
    return rec is not None and rec.get("status") == "ok"


def _why_missing(recs):
    for label, rec in recs:
        if rec is None:
            return f"{label} not run"
        if rec.get("status") != "ok":
            return f"{label} {rec.get('status')}"
    return "not reported"


def _verdict(name, base, required, recs, value, passed, fmt):
    capped = any(c for _, (_, c) in recs.items())
    records = [(label, rec) for label, (rec, _) in recs.items()]
    workload = next((rec["workload"] for _, rec in records if rec), base)
    if value is None or passed is None:
        return Verdict(name, workload, _why_missing(records), required, "n/a")
    result = "PASS" if passed else "FAIL"
    if capped:
        result += " (indicative)"
    return Verdict(name, workload, fmt(value), required, result)


def _ratio_target(data, name, base, a, b, getter, limit, required, strict=False):
    recs = {a: find(data, base, a), b: find(data, base, b)}
    va, vb = getter(recs[a][0]) if recs[a][0] else None, getter(recs[b][0]) if recs[b][0] else None
    value = va / vb if va is not None and vb else None
    passed = None if value is None else (value < limit if strict else value <= limit)
    return _verdict(name, base, required, recs, value, passed, lambda v: f"{v:.2f} ({va:.1f} s / {vb:.1f} s)")


def _better_target(data, name, base, key):
    recs = {"ivis": find(data, base, "ivis"), "ivis_prev": find(data, base, "ivis_prev")}
    va, vb = quality(recs["ivis"][0], key), quality(recs["ivis_prev"][0], key)
    value = None if va is None or vb is None else (va, vb)
    passed = None if value is None else va > vb
    return _verdict(
        name, base, "ivis > ivis_prev", recs, value, passed, lambda v: f"{v[0]:.3f} vs {v[1]:.3f}"
    )


def _threshold_target(data, name, base, label, getter, limit, required, at_least, fmt):
    recs = {label: find(data, base, label)}
    value = getter(recs[label][0]) if recs[label][0] else None
    passed = None if value is None else (value >= limit if at_least else value <= limit)
    return _verdict(name, base, required, recs, value, passed, fmt)


def _lower_bound_target(data, name, base, label, limit, required, bound, fmt):
    """An upper-limit target of a run that did not finish: FAIL when ``bound`` already exceeds it.

    ``bound(rec)`` is what the stopped run shows at least (its time limit, its sampled memory
    peak); otherwise the verdict is the usual one of :func:`_threshold_target`.
    """
    rec, capped = find(data, base, label)
    lower = bound(rec) if rec is not None and rec.get("status") in ("timeout", "stopped") else None
    if lower is None or lower <= limit:
        return None
    return Verdict(name, rec["workload"], fmt(lower), required, "FAIL" + (" (indicative)" if capped else ""))


def _time_limit(rec):
    """The time limit a run was stopped at, in seconds (None if it was not stopped for time)."""
    match = re.match(r"timeout after (\d+)", rec.get("stopped_because") or "")
    return float(match.group(1)) if match else None


def _primes_targets(data):
    """End-to-end time and peak memory of ivis on primes1m (failed when a stopped run exceeded them)."""
    time_name, rss_name = "fit_transform time", "peak RSS (ru_maxrss)"
    return [
        _lower_bound_target(data, time_name, "primes1m", "ivis", 600.0, "<= 600 s", _time_limit,
                            lambda v: f"> {v:.0f} s (stopped at the time limit)")
        or _threshold_target(data, time_name, "primes1m", "ivis", wall, 600.0, "<= 600 s", False, lambda v: f"{v:.0f} s"),
        _lower_bound_target(data, rss_name, "primes1m", "ivis", 4 * GB, "<= 4 GB", lambda r: r.get("peak_vm_rss"),
                            lambda v: f">= {v / GB:.2f} GB (sampled VmRSS before it was stopped)")
        or _threshold_target(
            data, rss_name, "primes1m", "ivis", peak_rss, 4 * GB, "<= 4 GB", False,
            lambda v: f"{v / GB:.2f} GB" + _anon_note(data, "primes1m"),
        ),
    ]


def _fmnist_speed_targets(data, label):
    """End-to-end and neighbour-stage time against the previous release, and recall, of ``label``."""
    neighbours = lambda r: timing(r, "neighbours")  # noqa: E731
    recall = lambda r: quality(r, "graph_recall")  # noqa: E731
    return [
        _ratio_target(data, f"fit_transform time, {label} / ivis_prev", "fmnist", label, "ivis_prev", wall, 1 / 3, "<= 0.33"),
        _ratio_target(
            data, f"neighbour stage time, {label} / ivis_prev", "fmnist", label, "ivis_prev", neighbours, 1 / 3, "<= 0.33"
        ),
        _threshold_target(
            data, f"neighbour-stage recall of {label} vs exact neighbours", "fmnist", label, recall, 0.9, ">= 0.90",
            True, lambda v: f"{v:.3f}",
        ),
    ]


def evaluate(data):
    """All target verdicts for a results document.

    Parameters
    ----------
    data : dict
        The suite's results JSON.

    Returns
    -------
    list of Verdict
    """
    spe = lambda rec: timing(rec, "seconds_per_epoch")  # noqa: E731
    out = [
        *_fmnist_speed_targets(data, "ivis"),
        _ratio_target(
            data,
            "fit_transform time, ivis / umap",
            "fmnist",
            "ivis",
            "umap",
            wall,
            1.0,
            "< 1 (faster than UMAP)",
            strict=True,
        ),
        _better_target(data, "15-NN accuracy", "fmnist", "knn_accuracy"),
        _better_target(data, "pairwise-distance correlation", "fmnist", "distance_correlation"),
        _better_target(data, "class-centroid distance correlation", "fmnist", "centroid_correlation"),
        *_fmnist_speed_targets(data, "ivis_clustered"),
        _threshold_target(
            data,
            "seconds per epoch (within 2x of 0.9 s)",
            "fmnist",
            "ivis",
            spe,
            1.8,
            "<= 1.8 s",
            False,
            lambda v: f"{v:.2f} s",
        ),
        _threshold_target(
            data,
            "15-NN accuracy, library defaults with k=15",
            "digits",
            "ivis_defaults",
            lambda r: quality(r, "knn_accuracy"),
            0.85,
            ">= 0.85",
            True,
            lambda v: f"{v:.3f}",
        ),
        *_primes_targets(data),
    ]
    # Epoch-time scaling compares two workloads, so it is assembled by hand.
    big, big_capped = find(data, "primes1m", "ivis")
    small, small_capped = find(data, "primes100k", "ivis")
    a, b = (spe(big) if big else None), (spe(small) if small else None)
    required = "<= 11"
    name = "seconds per epoch, primes 1M / 100k"
    if a is None or not b:
        missing = _why_missing([("primes1m ivis", big), ("primes100k ivis", small)])
        out.append(Verdict(name, "primes1m, primes100k", missing, required, "n/a"))
    else:
        result = "PASS" if a / b <= 11 else "FAIL"
        if big_capped or small_capped:
            result += " (indicative)"
        out.append(
            Verdict(
                name,
                f"{big['workload']}, {small['workload']}",
                f"{a / b:.1f} ({a:.2f} s / {b:.2f} s)",
                required,
                result,
            )
        )
    return out
