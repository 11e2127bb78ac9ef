"""Markdown report from the suite's results JSON.

Usage: ``python bench/report.py bench/results/full.json [bench/REPORT.md]``
"""

import json
import os
import re
import sys

import targets

MiB = 2**20
VERSION_ROWS = (
    ("Python", "python"),
    ("numpy", "numpy"),
    ("scipy", "scipy"),
    ("scikit-learn", "scikit-learn"),
    ("TensorFlow", "tensorflow-cpu", "tensorflow"),
    ("Keras", "keras"),
    ("umap-learn", "umap-learn"),
    ("pynndescent", "pynndescent"),
    ("numba", "numba"),
    ("annoy", "annoy"),
    ("h5py", "h5py"),
    ("ivis", "ivis_module_version", "ivis"),
)
# (numerator label, denominator label, what is compared)
RATIOS = (
    ("ivis", "ivis_prev", "wall"),
    ("ivis", "ivis_prev", "neighbours"),
    ("ivis", "ivis_prev", "training"),
    ("ivis", "ivis_prev", "seconds_per_epoch"),
    ("ivis", "umap", "wall"),
    ("ivis", "pca", "wall"),
    ("ivis_defaults", "ivis_prev_defaults", "wall"),
    ("ivis_precompute", "ivis_prev_precompute", "wall"),
    ("ivis_streamed", "ivis_prev_streamed", "wall"),
    ("ivis_streamed", "ivis_precompute", "peak_rss_anon"),
    ("ivis_prev_streamed", "ivis_prev_precompute", "peak_rss_anon"),
)
RATIO_NAMES = {
    "wall": "fit_transform time",
    "neighbours": "neighbour stage",
    "training": "training",
    "seconds_per_epoch": "seconds per epoch",
    "peak_rss_anon": "peak RssAnon",
}


ANALYSIS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ANALYSIS.md")


def _f(value, digits=2):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _mib(value):
    return "–" if not value else f"{value / MiB:,.0f}"


def _value(rec, what):
    if rec is None or rec.get("status") != "ok":
        return None
    child = rec.get("child") or {}
    if what == "wall":
        return child.get("wall")
    if what == "peak_rss_anon":
        return rec.get("peak_rss_anon")
    return (child.get("timings") or {}).get(what)


def _header(data):
    inv = data["invocations"][-1]
    lines = ["# ivis benchmark report", ""]
    lines.append(
        f"Results `{data.get('name')}`, last run started {inv['started']}"
        + (f", finished {inv['finished']}" if inv.get("finished") else " (not finished)")
        + "."
    )
    lines += ["", "Command:", "", "```", inv["command"], "```", ""]
    if data.get("included"):
        names = ",".join(data["included"])
        lines += [
            f"With the runs stored under {', '.join(f'`{n}`' for n in data['included'])}, on the workloads these "
            f"results lack: `bash bench/run.sh --report-only --name {data.get('name')} --include {names}`.",
            "",
        ]
    ids = {r.get("invocation") for r in data["runs"].values()}
    # An invocation that wrote to two result names is listed by both once they are included.
    unique = {i["id"]: i for i in data["invocations"][:-1] if i["id"] in ids}
    earlier = sorted(unique.values(), key=lambda i: i["started"])
    if earlier:
        lines.append(
            "Some runs below come from other invocations, stored under the same name or included with `--include`:"
        )
        lines.append("")
        for i in earlier:
            lines.append(f"- `{i['id']}` ({i['started']}): `{i['command']}`")
        lines.append("")
    m = inv.get("machine") or {}
    lines += ["## Machine and software", "", "| | |", "|---|---|"]
    lines.append(f"| CPU | {m.get('cpu_model')} |")
    lines.append(
        f"| cores | {m.get('logical_cores')} logical, {m.get('usable_cores')} usable by this process |"
    )
    lines.append(f"| memory | {(m.get('memory_bytes') or 0) / 2**30:.1f} GiB |")
    lines.append(f"| OS | {m.get('os')}, kernel {m.get('kernel')} |")
    git = inv.get("git") or {}
    if git.get("commit"):
        lines.append(
            f"| commit | `{git['commit'][:12]}`"
            + (" with local changes |" if git.get("modified_tracked_files") else " |")
        )
    main_versions = (inv.get("versions") or {}).get("main") or {}
    where = main_versions.get("ivis_module_file")
    lines.append(
        f"| ivis under test | {inv.get('ivis_source')}"
        + (f" (`{os.path.dirname(where)}`)" if where else "")
        + " |"
    )
    lines.append(f"| UMAP numba cache | {inv.get('umap_numba_cache', 'empty per run')} |")
    lines.append("")
    versions = inv.get("versions") or {}
    main, prev = versions.get("main") or {}, versions.get("prev") or {}
    lines += [
        "| package | current environment | previous-release environment (`bench/.venv-prev`) |",
        "|---|---|---|",
    ]
    for label, *keys in VERSION_ROWS:
        a = next((main.get(k) for k in keys if main.get(k)), None)
        b = next((prev.get(k) for k in keys if prev.get(k)), None)
        if a or b:
            lines.append(f"| {label} | {a or '–'} | {b or '–'} |")
    avail = inv.get("availability") or {}
    for name, state in avail.items():
        if state not in ("available", "not needed"):
            lines.append(f"\n**{name} unavailable**: {state}")
    lines.append("")
    return lines


def _targets(data):
    lines = [
        "## Targets",
        "",
        "| target | workload | measured | required | result |",
        "|---|---|---|---|---|",
    ]
    for v in targets.evaluate(data):
        lines.append(f"| {v.target} | {v.workload} | {v.measured} | {v.required} | **{v.result}** |")
    lines += [
        "",
        "*Indicative*: measured on a capped workload (e.g. `--quick`), not the one the target is set for.",
        "",
    ]
    return lines


def _ratios(data, by_workload):
    rows = []
    for wname, recs in by_workload.items():
        by_label = {r["label"]: r for r in recs}
        for num, den, what in RATIOS:
            a, b = _value(by_label.get(num), what), _value(by_label.get(den), what)
            if a is None or not b:
                continue
            same = by_label[num].get("invocation") == by_label[den].get("invocation")
            unit = " MiB" if what == "peak_rss_anon" else " s"
            scale = MiB if what == "peak_rss_anon" else 1
            rows.append(
                f"| {wname} | {RATIO_NAMES[what]} | {num} / {den} | **{a / b:.2f}** | "
                f"{a / scale:,.2f}{unit} / {b / scale:,.2f}{unit}{'' if same else ' †'} |"
            )
    if not rows:
        return []
    lines = [
        "## Ratios",
        "",
        "Both sides of every ratio are measured by this suite on this machine"
        " († marks the two sides coming from different invocations).",
        "",
        "| workload | quantity | runs | ratio | values |",
        "|---|---|---|---|---|",
        *rows,
        "",
    ]
    return lines


def _workload_section(name, info, recs):
    lines = [
        f"### {name}",
        "",
        f"{info.get('description', '')}. Labels for the quality scores: {info.get('labels', '')}.",
        "",
    ]
    lines += [
        "| run | status | fit_transform s | neighbours s | training s | epochs | s / epoch "
        "| ru_maxrss MiB | peak RssAnon MiB | RssAnon before fit MiB | import s | note |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        c = r.get("child") or {}
        t = c.get("timings") or {}
        lines.append(
            f"| {r['label']} | {r['status']} | {_f(c.get('wall'), 1)} | {_f(t.get('neighbours'), 1)} "
            f"| {_f(t.get('training'), 1)} | {_f(t.get('epochs'))} | {_f(t.get('seconds_per_epoch'), 3)} "
            f"| {_mib(c.get('ru_maxrss'))} | {_mib(r.get('peak_rss_anon'))} "
            f"| {_mib((c.get('memory_before_fit') or {}).get('RssAnon'))} | {_f(c.get('import_seconds'), 1)} "
            f"| {r.get('note', '')} |"
        )
    lines += [
        "",
        "| run | 15-NN accuracy | trustworthiness | neighbour recall | distance corr. "
        "| centroid corr. (Mantel p) | cluster strength | neighbour-stage recall (k, metric) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in recs:
        q = r.get("quality") or {}
        if not q:
            continue
        graph = "–"
        if q.get("graph_recall") is not None:
            graph = f"{q['graph_recall']:.3f} ({q.get('graph_k', 0):.0f}, {q.get('graph_metric')})"
        centroid = (
            "–"
            if q.get("centroid_correlation") is None
            else (f"{q['centroid_correlation']:.3f} ({_f(q.get('centroid_mantel_p'), 4)})")
        )
        lines.append(
            f"| {r['label']} | {_f(q.get('knn_accuracy'), 3)} | {_f(q.get('trustworthiness'), 3)} "
            f"| {_f(q.get('neighbour_recall'), 3)} | {_f(q.get('distance_correlation'), 3)} "
            f"| {centroid} | {_f(q.get('cluster_strength'), 3)} | {graph} |"
        )
    problems = [r for r in recs if r["status"] != "ok" or (r.get("quality") or {}).get("error")]
    if problems:
        lines.append("")
        for r in problems:
            why = r.get("error") or r["quality"].get("error")
            lines.append(
                f"- **{r['label']}** {r['status']}: {why}"
                + (f" (log: `bench/{r['log']}`)" if r.get("log") and r["status"] != "ok" else "")
            )
    dropped = [(r["label"], (r.get("child") or {}).get("info", {}).get("dropped_params")) for r in recs]
    for label, params in dropped:
        if params:
            lines.append(f"- {label}: parameters not accepted by the method and dropped: `{params}`")
    lines.append("")
    return lines


SEED_SUFFIX = re.compile(r"_seed\d+$")
SEED_COLUMNS = (("knn_accuracy", "15-NN"), ("trustworthiness", "trustworthiness"),
                ("distance_correlation", "distance corr."), ("centroid_correlation", "centroid corr."),
                ("cluster_strength", "cluster strength"))


def _spread(values, digits=3):
    if not values:
        return "–"
    text = f"{sum(values) / len(values):.{digits}f}"
    return text if len(values) == 1 else f"{text} ({min(values):.{digits}f}-{max(values):.{digits}f})"


def seed_means(by_workload):
    """Rows ``run`` and ``run_seedN`` pooled: mean (min-max) of every score and of the times."""
    lines = [
        "## Mean over seeds",
        "",
        "Runs that differ only in `random_state` (`NAME`, `NAME_seed1`, ...) pooled: mean, and in "
        "brackets the lowest and highest seed. UMAP runs once per workload (no seed: it uses every core).",
        "",
        "| workload | run | seeds | fit_transform s | epochs | " + " | ".join(c for _, c in SEED_COLUMNS) + " |",
        "|---|---|---|---|---|" + "---|" * len(SEED_COLUMNS),
    ]
    for workload, recs in by_workload.items():
        groups = {}
        for r in recs:
            if r["status"] == "ok" and r.get("quality") and not r["quality"].get("error"):
                groups.setdefault(SEED_SUFFIX.sub("", r["label"]), []).append(r)
        for base, members in groups.items():
            walls = [m["child"]["wall"] for m in members]
            epochs = [m["child"].get("timings", {}).get("epochs") for m in members]
            epochs = [e for e in epochs if e is not None]
            # Centroid correlation is undefined (nan) with two classes: one centroid distance.
            scores = [_spread([m["quality"][key] for m in members
                               if m["quality"].get(key) is not None and m["quality"][key] == m["quality"][key]])
                      for key, _ in SEED_COLUMNS]
            lines.append(
                f"| {workload} | {base} | {len(members)} | {_spread(walls, 1)} | {_spread(epochs, 0) if epochs else '–'} | "
                + " | ".join(scores) + " |"
            )
    lines.append("")
    return lines


NOTES = """## How the numbers are taken

- Every run is a separate child process. *fit_transform s* is the wall time of `fit_transform`
  alone; *import s* (TensorFlow, umap, ...) is measured apart and not included. UMAP times include
  the numba JIT compilation of its fitting code (about 20 s on 2 cores).
- *neighbours s*, *training s*, *epochs*, *s / epoch* for ivis are what the model reports in
  `timings_`. The previous release reports none; its child measures them with a Keras callback:
  training runs from `on_train_begin` to `on_train_end`, and its neighbour stage is everything
  from the start of `fit_transform` to `on_train_begin` (Annoy index build, neighbour
  extraction, model construction: an upper bound of the neighbour stage).
- *ru_maxrss* is the child's own `getrusage(RUSAGE_SELF).ru_maxrss` (peak resident set, file-backed
  pages such as memory-mapped indexes included). *peak RssAnon* is the highest anonymous resident
  memory seen by sampling `/proc/<pid>/status` every 0.1 s from the parent; *RssAnon before fit*
  is the child's own reading after imports and data loading, just before `fit_transform`.
- Quality scores are computed by the parent on the saved embedding: 15-NN accuracy (5-fold
  stratified CV; at most 250,000 rows), trustworthiness and neighbour recall (k = 15, the same
  5,000-row subsample for every method), Pearson correlation of pairwise distances (2,000 rows),
  Pearson correlation of class-centroid distance matrices (Mantel statistic; permutation p-value,
  9,999 relabellings). *Neighbour-stage recall* scores the k-NN matrix a method exposes (ivis:
  `neighbour_matrix_`; ivis 2.0.11: its precomputed Annoy neighbours; UMAP: its k-NN graph)
  on 1,000 random rows against exact neighbours under the metric the method searched with, the
  point itself excluded. Recalls count ties as hits. See `bench/README.md`.
"""


def render(data, appendix=None):
    """The report as a string; ``appendix`` (markdown) is added at the end."""
    by_workload = {}
    for rec in data["runs"].values():
        by_workload.setdefault(rec["workload"], []).append(rec)
    lines = _header(data) + _targets(data) + _ratios(data, by_workload) + seed_means(by_workload)
    lines += ["## Results per workload", ""]
    for name, recs in by_workload.items():
        lines += _workload_section(name, data["workloads"].get(name, {}), recs)
    lines.append(NOTES)
    if appendix:
        lines.append(appendix)
    return "\n".join(lines)


def write(data, path):
    """Write the report for ``data`` to ``path``.

    The report of the ``full`` results ends with the hand-written analysis in
    ``bench/ANALYSIS.md`` (gaps and their causes), so that regenerating it keeps that text.
    """
    appendix = None
    if data.get("name") == "full" and os.path.isfile(ANALYSIS):
        with open(ANALYSIS) as f:
            appendix = f.read()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        f.write(render(data, appendix))


if __name__ == "__main__":
    with open(sys.argv[1]) as f:
        doc = json.load(f)
    write(doc, sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "REPORT.md"))
