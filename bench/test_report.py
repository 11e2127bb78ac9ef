"""Self checks of the target verdicts and the report: ``python -m pytest bench -q``."""

import report
import targets


def _rec(workload, label, wall, neighbours=None, spe=None, quality=None, status="ok", base=None, rss=None):
    return {
        "workload": workload,
        "base_workload": base or workload,
        "label": label,
        "method": label,
        "status": status,
        "invocation": "inv1",
        "started": "2026-01-01T00:00:00",
        "peak_rss_anon": rss,
        "child": {
            "wall": wall,
            "ru_maxrss": rss,
            "timings": {"neighbours": neighbours, "training": wall, "epochs": 10, "seconds_per_epoch": spe},
        },
        "quality": quality or {},
    }


def _doc(*recs):
    return {
        "schema": 1,
        "name": "test",
        "invocations": [
            {
                "id": "inv1",
                "started": "2026-01-01T00:00:00",
                "command": "bash bench/run.sh",
                "machine": {
                    "cpu_model": "cpu",
                    "logical_cores": 2,
                    "usable_cores": 2,
                    "memory_bytes": 2**34,
                    "os": "os",
                    "kernel": "k",
                },
                "versions": {"main": {"python": "3.11"}, "prev": None},
            }
        ],
        "workloads": {},
        "runs": {f"{r['workload']}/{r['label']}": r for r in recs},
    }


def _verdicts(*recs):
    """Target verdicts, by target name, for a results document holding ``recs``."""
    return {x.target: x for x in targets.evaluate(_doc(*recs))}


Q_GOOD = {"knn_accuracy": 0.8, "distance_correlation": 0.6, "centroid_correlation": 0.9, "graph_recall": 0.95}
Q_PREV = {"knn_accuracy": 0.7, "distance_correlation": 0.65, "centroid_correlation": 0.8}


def test_fmnist_targets_pass_and_fail():
    v = _verdicts(
        _rec("fmnist", "ivis", 30.0, neighbours=2.0, spe=1.0, quality=Q_GOOD),
        _rec("fmnist", "ivis_prev", 120.0, neighbours=10.0, spe=3.0, quality=Q_PREV),
        _rec("fmnist", "umap", 40.0),
    )
    assert v["fit_transform time, ivis / ivis_prev"].result == "PASS"
    assert v["fit_transform time, ivis / umap"].result == "PASS"
    assert v["15-NN accuracy"].result == "PASS"
    assert v["pairwise-distance correlation"].result == "FAIL"
    assert v["neighbour stage time, ivis / ivis_prev"].result == "PASS"
    assert v["neighbour-stage recall of ivis vs exact neighbours"].result == "PASS"
    assert v["seconds per epoch (within 2x of 0.9 s)"].result == "PASS"
    assert v["fit_transform time"].result == "n/a"  # primes1m not run


def test_a_run_stopped_beyond_a_limit_fails_it():
    stopped = _rec("primes1m", "ivis", None, status="timeout", rss=None)
    stopped.update(stopped_because="timeout after 1200 s", peak_vm_rss=5e9)
    v = _verdicts(stopped)
    assert v["fit_transform time"].result == "FAIL"
    assert v["fit_transform time"].measured == "> 1200 s (stopped at the time limit)"
    assert v["peak RSS (ru_maxrss)"].result == "FAIL"
    stopped.update(stopped_because="timeout after 300 s", peak_vm_rss=1e9)
    v = _verdicts(stopped)
    assert v["fit_transform time"].result == "n/a"
    assert v["peak RSS (ru_maxrss)"].result == "n/a"


def test_clustered_search_row_gets_its_own_speed_verdicts():
    v = _verdicts(
        _rec("fmnist", "ivis", 90.0, neighbours=10.0, quality=Q_GOOD),
        _rec("fmnist", "ivis_clustered", 30.0, neighbours=2.0, quality={**Q_GOOD, "graph_recall": 0.85}),
        _rec("fmnist", "ivis_prev", 120.0, neighbours=10.0, quality=Q_PREV),
    )
    assert v["fit_transform time, ivis / ivis_prev"].result == "FAIL"
    assert v["neighbour stage time, ivis / ivis_prev"].result == "FAIL"
    assert v["fit_transform time, ivis_clustered / ivis_prev"].result == "PASS"
    assert v["neighbour stage time, ivis_clustered / ivis_prev"].measured == "0.20 (2.0 s / 10.0 s)"
    assert v["neighbour-stage recall of ivis_clustered vs exact neighbours"].result == "FAIL"


def test_missing_and_failed_sides_are_not_applicable():
    v = _verdicts(
        _rec("fmnist", "ivis", 30.0, quality=Q_GOOD), _rec("fmnist", "ivis_prev", None, status="unavailable")
    )
    assert v["fit_transform time, ivis / ivis_prev"].result == "n/a"
    assert "ivis_prev unavailable" in v["fit_transform time, ivis / ivis_prev"].measured
    assert v["fit_transform time, ivis / umap"].measured == "umap not run"


def test_capped_workload_is_indicative():
    v = _verdicts(
        _rec("fmnist10k", "ivis", 5.0, base="fmnist", quality=Q_GOOD),
        _rec("fmnist10k", "umap", 10.0, base="fmnist"),
    )
    assert v["fit_transform time, ivis / umap"].result == "PASS (indicative)"
    assert v["fit_transform time, ivis / umap"].workload == "fmnist10k"


def test_primes_scaling_and_memory():
    v = _verdicts(
        _rec("primes1m", "ivis", 500.0, spe=20.0, rss=3.5e9),
        _rec("primes100k", "ivis", 50.0, spe=1.5),
    )
    assert v["fit_transform time"].result == "PASS"
    assert v["peak RSS (ru_maxrss)"].result == "PASS"
    assert v["seconds per epoch, primes 1M / 100k"].result == "FAIL"  # 13.3 > 11


def test_render_has_every_section():
    doc = _doc(
        _rec("fmnist", "ivis", 30.0, neighbours=2.0, spe=1.0, quality=Q_GOOD),
        _rec("fmnist", "ivis_prev", 120.0, neighbours=10.0, spe=3.0, quality=Q_PREV),
    )
    doc["runs"]["fmnist/ivis_prev"]["invocation"] = "older"
    text = report.render(doc)
    for heading in ("## Machine and software", "## Targets", "## Ratios", "### fmnist", "## How the numbers"):
        assert heading in text
    assert "†" in text  # the two sides of the ratios come from different invocations


def test_full_report_keeps_the_hand_written_analysis(tmp_path, monkeypatch):
    analysis = tmp_path / "ANALYSIS.md"
    analysis.write_text("## Gaps and their causes\n\nwhy\n")
    monkeypatch.setattr(report, "ANALYSIS", str(analysis))
    doc = _doc(_rec("fmnist", "ivis", 30.0, neighbours=2.0, spe=1.0, quality=Q_GOOD))
    for name, kept in (("full", True), ("quick", False)):
        doc["name"] = name
        report.write(doc, str(tmp_path / f"{name}.md"))
        text = (tmp_path / f"{name}.md").read_text()
        assert ("## Gaps and their causes" in text) == kept
        assert text.index("## Targets") < text.index("## How the numbers")


def test_included_results_add_missing_workloads_only(tmp_path, monkeypatch):
    import json

    import suite

    other = _doc(_rec("primes1m", "ivis", 500.0, spe=20.0, rss=3.5e9), _rec("fmnist", "ivis", 1.0))
    other["invocations"][0].update(id="inv0", started="2025-12-31T00:00:00", command="bash bench/run.sh --name other")
    for rec in other["runs"].values():
        rec["invocation"] = "inv0"
    (tmp_path / "other.json").write_text(json.dumps(other))
    monkeypatch.setattr(suite, "results_path", lambda name: str(tmp_path / f"{name}.json"))
    main = _doc(_rec("fmnist", "ivis", 30.0, neighbours=2.0, quality=Q_GOOD))
    merged = suite.include_results(main, ["other"])
    assert merged["runs"]["fmnist/ivis"]["child"]["wall"] == 30.0  # the main document's run stays
    assert merged["runs"]["primes1m/ivis"]["child"]["wall"] == 500.0
    assert [i["id"] for i in merged["invocations"]] == ["inv0", "inv1"]
    assert "primes1m/ivis" not in main["runs"]  # the stored document is not changed
    text = report.render(merged, None)
    assert "`bash bench/run.sh --name other`" in text
    assert "--report-only --name test --include other`" in text
    v = {x.target: x for x in targets.evaluate(merged)}
    assert v["fit_transform time"].result == "PASS"


def test_seed_means_pool_runs_that_differ_only_in_seed():
    def run(label, knn, wall):
        return {"label": label, "status": "ok", "child": {"wall": wall, "timings": {"epochs": 10}},
                "quality": {"knn_accuracy": knn}}

    lines = report.seed_means({"digits": [run("ivis", 0.6, 1.0), run("ivis_seed1", 0.8, 3.0), run("umap", 0.9, 5.0)]})
    ivis_row = next(line for line in lines if "| ivis |" in line)
    assert "| 2 |" in ivis_row and "0.700 (0.600-0.800)" in ivis_row and "2.0 (1.0-3.0)" in ivis_row
    assert any("| umap | 1 |" in line and "0.900 |" in line for line in lines)
