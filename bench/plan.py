"""Which runs make up the benchmark: one row per (workload, run label).

ivis is run with the settings of the published large-data runtime benchmark (``k=15``,
``model='szubert'``, ``n_epochs_without_progress=3``) unless a row says otherwise; UMAP with its
defaults (no ``random_state``, so that it uses every core); PCA (TruncatedSVD on sparse input)
with two components.
"""

from dataclasses import dataclass, field

import workloads

BENCH_IVIS = {"k": 15, "model": "szubert", "n_epochs_without_progress": 3}
# The contrastive settings of docs/quality.md: InfoNCE on Euclidean neighbours (found by the
# clustered search), large batches, stopped by the embedding (EmbeddingPlateau, 5 epochs of
# patience) rather than the loss.
CONTRASTIVE_IVIS = {
    "k": 15, "model": "szubert", "distance": "infonce", "batch_size": 512, "learning_rate": 0.003,
    "knn_distance_metric": "euclidean", "neighbour_search": "clustered", "epochs": 100,
    "n_epochs_without_progress": 100, "embedding_plateau": 5,
}
# The same with the global correlation term (loss 'infonce_global') and room for 300 epochs:
# small data sets such as digits keep gaining neighbours well past 100.
GLOBAL_IVIS = {**CONTRASTIVE_IVIS, "distance": "infonce_global", "epochs": 300}
# infonce_global made fast on small data: the stopping rule on the embedding as a constructor
# parameter (its score taken every 16 steps, not every epoch), a learning rate of 0.01 (which
# the contrastive losses reach through a warm-up, see ivis.nn.warmup) and at most 150 epochs,
# which is where digits reaches what 300 epochs at 0.003 gave.
FAST_IVIS = {
    "k": 15, "model": "szubert", "distance": "infonce_global", "batch_size": 512, "learning_rate": 0.01,
    "knn_distance_metric": "euclidean", "neighbour_search": "clustered", "epochs": 150,
    "n_epochs_without_progress": 5, "early_stopping": "embedding",
}
QUALITY_SEEDS = (0, 1, 2)
# The previous release has no random_state; its child fixes the global seeds instead.
SEED = {"random_state": 0}


@dataclass(frozen=True)
class Run:
    """One measured run.

    Attributes
    ----------
    workload : str
        Workload name (before any row cap).
    label : str
        Unique within the workload; names the row in the report.
    method : str
        One of ``ivis``, ``umap``, ``pca``, ``ivis_prev``.
    params : dict
        Constructor arguments.
    fit_params : dict
        Extra ``fit_transform`` arguments (dropped where the method does not take them).
    note : str
    """

    workload: str
    label: str
    method: str
    params: dict = field(default_factory=dict)
    fit_params: dict = field(default_factory=dict)
    note: str = ""


def _standard(workload):
    return [
        Run(workload, "ivis", "ivis", {**BENCH_IVIS, **SEED}, note="benchmark settings"),
        Run(workload, "umap", "umap", {}, note="defaults"),
        Run(workload, "pca", "pca", {}, note="2 components"),
        Run(workload, "ivis_prev", "ivis_prev", dict(BENCH_IVIS), note="ivis 2.0.11, benchmark settings"),
    ]


ALL_ROWS = {"negative_sampling": "all_rows"}


def _digits():
    return _standard("digits") + [
        Run("digits", "ivis_defaults", "ivis", {"k": 15, **SEED}, note="library defaults, k=15"),
        Run("digits", "ivis_defaults_all_rows", "ivis", {"k": 15, **SEED, **ALL_ROWS},
            note="library defaults, k=15, negatives from all rows"),
        Run("digits", "ivis_prev_defaults", "ivis_prev", {"k": 15}, note="ivis 2.0.11 defaults, k=15"),
    ]


REPEAT_SEEDS = (1, 2)


def _digit_seeds():
    return [Run("digits", f"ivis_seed{seed}", "ivis", {**BENCH_IVIS, "random_state": seed},
                note=f"benchmark settings, random_state={seed}") for seed in REPEAT_SEEDS]
CLUSTERED = {"neighbour_search": "clustered"}


def _seed_repeats(workload):
    """ivis and the previous release again with other seeds: quality differs between seeds.

    Each seed also runs ivis with negatives drawn from all rows (as the previous release
    draws them), the comparison behind the default ``negative_sampling='in_batch'``, and
    with the clustered neighbour search.
    """
    runs = [Run(workload, "ivis_all_rows", "ivis", {**BENCH_IVIS, **SEED, **ALL_ROWS},
                note="benchmark settings, negatives from all rows")]
    runs += _clustered(workload)
    for seed in REPEAT_SEEDS:
        runs.append(Run(workload, f"ivis_all_rows_seed{seed}", "ivis", {**BENCH_IVIS, "random_state": seed, **ALL_ROWS},
                        note=f"benchmark settings, negatives from all rows, random_state={seed}"))
        runs.append(Run(workload, f"ivis_seed{seed}", "ivis", {**BENCH_IVIS, "random_state": seed},
                        note=f"benchmark settings, random_state={seed}"))
        runs.append(Run(workload, f"ivis_prev_seed{seed}", "ivis_prev", {**BENCH_IVIS, "global_seed": seed},
                        note=f"ivis 2.0.11, benchmark settings, global seed {seed}"))
    return runs


def _clustered(workload):
    """ivis with ``neighbour_search='clustered'`` instead of the Annoy index, for every seed."""
    return [
        Run(workload, "ivis_clustered" + (f"_seed{seed}" if seed else ""), "ivis",
            {**BENCH_IVIS, "random_state": seed, **CLUSTERED},
            note="benchmark settings, neighbour_search='clustered'" + (f", random_state={seed}" if seed else ""))
        for seed in (0, *REPEAT_SEEDS)
    ]


def _hdf5(workload, with_prev):
    batch = {"shuffle_mode": "batch"}
    runs = [
        Run(
            workload,
            "ivis_precompute",
            "ivis",
            {**BENCH_IVIS, **SEED, "precompute": True},
            batch,
            "neighbours precomputed in memory",
        ),
        Run(
            workload,
            "ivis_streamed",
            "ivis",
            {**BENCH_IVIS, **SEED, "precompute": False},
            batch,
            "neighbours queried from the index during training",
        ),
    ]
    if with_prev:
        runs += [
            Run(
                workload,
                "ivis_prev_precompute",
                "ivis_prev",
                {**BENCH_IVIS, "precompute": True},
                batch,
                "ivis 2.0.11",
            ),
            Run(
                workload,
                "ivis_prev_streamed",
                "ivis_prev",
                {**BENCH_IVIS, "precompute": False},
                batch,
                "ivis 2.0.11",
            ),
        ]
    return runs


def _quality(workload):
    """ivis with the triplet loss and with the contrastive settings, three seeds each.

    ``ivis_infonce`` uses :data:`CONTRASTIVE_IVIS`; ``ivis_infonce_pn`` the same with the loss
    ``infonce_pn`` (half InfoNCE, half pn); ``ivis_infonce_global`` :data:`GLOBAL_IVIS`;
    ``ivis_contrastive`` :data:`FAST_IVIS`.
    The seed-0 triplet run is the workload's ``ivis``
    row (made by :func:`_standard` or :func:`_seed_repeats` where those apply).
    """
    runs = []
    for seed in QUALITY_SEEDS:
        tail = f"_seed{seed}" if seed else ""
        if workload in ("digits", "fmnist"):
            pass  # their triplet rows with every seed are made elsewhere
        elif seed:
            runs.append(Run(workload, f"ivis{tail}", "ivis", {**BENCH_IVIS, "random_state": seed},
                            note=f"benchmark settings, random_state={seed}"))
        for label, loss in (("ivis_infonce", "infonce"), ("ivis_infonce_pn", "infonce_pn")):
            runs.append(Run(workload, label + tail, "ivis", {**CONTRASTIVE_IVIS, "distance": loss, "random_state": seed},
                            note=f"contrastive settings, distance='{loss}', random_state={seed}"))
        runs.append(Run(workload, f"ivis_infonce_global{tail}", "ivis", {**GLOBAL_IVIS, "random_state": seed},
                        note=f"contrastive settings, distance='infonce_global', epochs=300, random_state={seed}"))
        runs.append(Run(workload, f"ivis_contrastive{tail}", "ivis", {**FAST_IVIS, "random_state": seed},
                        note=f"infonce_global, learning_rate=0.01 after the warm-up, early_stopping='embedding', random_state={seed}"))
    return runs


def runs_for(workload):
    """All runs defined for ``workload``.

    Parameters
    ----------
    workload : str

    Returns
    -------
    list of Run
    """
    if workload == "digits":
        return _digits() + _digit_seeds() + _quality(workload)
    if workload == "fmnist":
        return _standard(workload) + _seed_repeats(workload) + _quality(workload)
    if workload in workloads.CONTINUOUS:
        return _standard(workload) + _quality(workload)
    if workload in ("primes100k", "primes1m"):
        return _standard(workload)
    if workload == "hdf5_250k":
        return _hdf5(workload, with_prev=True)
    if workload == "hdf5_2m":
        # The previous release would take hours here on a small machine; 250k shows its memory.
        return _hdf5(workload, with_prev=False)
    raise ValueError(f"no runs defined for workload {workload!r}")


# Left out of --quick runs to keep the smoke run short.
NOT_IN_QUICK = {("digits", "ivis_prev_defaults"), ("digits", "ivis_defaults_all_rows"), ("fmnist", "ivis_all_rows")} | {
    ("fmnist", f"{method}_seed{seed}") for method in ("ivis", "ivis_prev", "ivis_all_rows", "ivis_clustered")
    for seed in REPEAT_SEEDS
}


def build(workload_names, methods, quick=False, labels=None):
    """Runs of ``workloads`` whose method is in ``methods``, in execution order.

    Parameters
    ----------
    workload_names : list of str
    methods : collection of str
    quick : bool
        Leave out the runs in :data:`NOT_IN_QUICK`.
    labels : list of str, optional
        Keep only runs whose label matches one of these shell-style patterns (``ivis_seed*``).

    Returns
    -------
    list of Run
    """
    from fnmatch import fnmatchcase

    return [
        run
        for w in workload_names
        for run in runs_for(w)
        if run.method in methods and not (quick and (run.workload, run.label) in NOT_IN_QUICK)
        and (not labels or any(fnmatchcase(run.label, pattern) for pattern in labels))
    ]
