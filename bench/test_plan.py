"""Self checks of the run plan: ``python -m pytest bench -q``."""

import plan
import workloads


def test_label_patterns_select_runs():
    runs = plan.build(["fmnist"], {"ivis", "umap"}, labels=["ivis_infonce*", "umap"])
    labels = {run.label for run in runs}
    assert labels == {"umap"} | {
        f"ivis_infonce{loss}{seed}" for loss in ("", "_pn", "_global") for seed in ("", "_seed1", "_seed2")
    }


def test_every_quality_workload_has_three_seeds_of_each_setting():
    for name in ("digits", "fmnist") + workloads.CONTINUOUS:
        labels = {run.label for run in plan.runs_for(name)}
        for base in ("ivis", "ivis_infonce", "ivis_infonce_pn", "ivis_infonce_global", "ivis_contrastive"):
            assert {base, f"{base}_seed1", f"{base}_seed2"} <= labels, (name, base)
        assert {"umap", "pca"} <= labels


def test_contrastive_runs_stop_on_the_embedding():
    run = next(r for r in plan.runs_for("moons") if r.label == "ivis_infonce_seed2")
    assert run.params["embedding_plateau"] == 5 and run.params["random_state"] == 2


def test_the_fast_contrastive_runs_use_the_stopping_parameter():
    run = next(r for r in plan.runs_for("digits") if r.label == "ivis_contrastive_seed1")
    assert run.params["early_stopping"] == "embedding" and "embedding_plateau" not in run.params
    assert run.params["random_state"] == 1
