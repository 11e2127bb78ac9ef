"""Dask arrays: lazy transform on a two-process LocalCluster, and fitting from a Dask array."""

import subprocess
import sys

import numpy as np
import pytest

from conftest import FAST, saved_blobs_fixtures

da = pytest.importorskip("dask.array")
distributed = pytest.importorskip("dask.distributed")

from ivis import Ivis  # noqa: E402
from ivis.distributed import transform_dask  # noqa: E402
from ivis.distributed import model_cache  # noqa: E402


saved_blobs, rows, saved = saved_blobs_fixtures("dask-model", n_samples=3000, n_features=12, centers=4)


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, memory_limit=None
    ) as cluster, distributed.Client(cluster) as client:
        yield client


def test_transform_is_lazy_and_loads_the_model_once_per_worker(client, saved, rows):
    model, folder = saved
    X = da.from_array(rows, chunks=(250, 12))
    lazy = transform_dask(folder, X)
    assert isinstance(lazy, da.Array) and lazy.shape == (3000, 2) and lazy.chunks[0] == X.chunks[0]
    # The graph carries the folder's path, not the networks.
    assert all(not isinstance(v, Ivis) for v in dict(lazy.__dask_graph__()).values())
    np.testing.assert_allclose(lazy.compute(), model.transform(rows), atol=1e-5)
    counts = client.run(model_cache.load_counts)
    assert len(counts) == 2
    loads = [c.get(folder, 0) for c in counts.values()]
    assert max(loads) == 1 and sum(loads) >= 1
    np.testing.assert_allclose(lazy.compute(), model.transform(rows), atol=1e-5)
    assert client.run(model_cache.load_counts) == counts  # a second pass loads nothing again


def test_estimator_transform_of_a_dask_array_ships_the_model_once(client, saved, rows):
    model, _ = saved
    X = da.from_array(rows, chunks=(500, 6))  # columns split: joined before embedding
    lazy = model.transform(X)
    assert isinstance(lazy, da.Array) and lazy.chunks == (X.chunks[0], (2,))
    np.testing.assert_allclose(lazy.compute(), model.transform(rows), atol=1e-5)
    packed = [key for c in client.run(model_cache.load_counts).values() for key in c if key.startswith("sha256:")]
    assert len(packed) >= 1 and all(
        c.get(packed[0], 0) <= 1 for c in client.run(model_cache.load_counts).values()
    )


def test_fitting_a_dask_array_equals_fitting_the_numpy_array(rows):
    X = rows[:400]
    expected = Ivis(**FAST).fit_transform(X)
    dask_model = Ivis(**FAST).fit(da.from_array(X, chunks=(64, 5)))
    np.testing.assert_allclose(dask_model.transform(X), expected, atol=1e-5)


def test_fit_reads_dask_blocks_on_demand(rows, monkeypatch):
    from ivis.data.inputs import as_row_source

    source = as_row_source(da.from_array(rows, chunks=(100, 12)))
    assert not source.in_memory
    np.testing.assert_array_equal(source.get_batch([2999, 5, 5, 1200]), rows[[2999, 5, 5, 1200]])
    np.testing.assert_array_equal(source.read_range(90, 110), rows[90:110])


def test_wrong_width_names_both_widths(saved, rows):
    _, folder = saved
    with pytest.raises(ValueError, match=r"rows of shape \(11,\) \(11 features\).*expects rows of shape \(12,\)"):
        transform_dask(folder, da.from_array(rows[:, :11], chunks=(500, 11)))


def test_bad_inputs_are_named(saved, rows):
    _, folder = saved
    with pytest.raises(TypeError, match="saved model folder or a fitted ivis.Ivis"):
        transform_dask(object(), da.from_array(rows))
    with pytest.raises(ValueError, match="at least 2-dimensional"):
        transform_dask(folder, da.from_array(rows[:, 0]))
    unknown = da.from_array(rows, chunks=(500, 12))
    unknown = unknown[unknown[:, 0] > 0]
    with pytest.raises(ValueError, match="compute_chunk_sizes"):
        transform_dask(folder, unknown)


def test_importing_ivis_distributed_loads_neither_dask_nor_spark():
    code = (
        "import sys, ivis, ivis.distributed; "
        "print(sorted(m for m in ('dask', 'pyspark', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


@pytest.fixture(scope="module")
def wide_blobs():
    """More rows than the clustered search compares exhaustively: it forms about 30 clusters."""
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=8000, n_features=16, centers=12, cluster_std=2.0, random_state=1)
    return X.astype(np.float32)


def test_clustered_blocks_on_two_workers_equal_the_search_in_one_process(client, wide_blobs):
    from ivis.data.neighbour_retrieval.clustered import clustered_neighbours
    from ivis.distributed.dask_neighbours import dask_block_runner

    for metric in ("angular", "euclidean"):
        here = clustered_neighbours(wide_blobs, 10, metric, random_state=3)
        with distributed.get_task_stream(client) as stream:
            on_dask = clustered_neighbours(wide_blobs, 10, metric, random_state=3, run_blocks=dask_block_runner(client, 4))
        np.testing.assert_array_equal(on_dask, here)
        workers = {task["worker"] for task in stream.data if task["key"].startswith("_search_group")}
        assert len(workers) == 2  # both worker processes searched clusters


def test_a_fit_inside_neighbours_on_dask_finds_the_same_neighbours(client, wide_blobs):
    from ivis.distributed import neighbours_on_dask

    settings = dict(k=8, epochs=1, batch_size=512, verbose=0, random_state=0, neighbour_search="clustered")
    expected = Ivis(**settings).fit(wide_blobs).neighbour_matrix_
    with distributed.get_task_stream(client) as stream, neighbours_on_dask(client):
        model = Ivis(**settings).fit(wide_blobs)
    assert any(task["key"].startswith("_search_group") for task in stream.data)
    np.testing.assert_array_equal(model.neighbour_matrix_, expected)


def test_neighbours_on_dask_names_what_it_cannot_run(client, wide_blobs):
    from ivis.distributed import neighbours_on_dask

    with pytest.raises(TypeError, match="dask.distributed.Client"):
        with neighbours_on_dask("tcp://127.0.0.1:8786"):
            pass
    with neighbours_on_dask(client), pytest.raises(ValueError, match="neighbour_search='clustered'"):
        Ivis(**FAST).fit(wide_blobs[:200])
    # Outside the block the default search runs as before.
    assert Ivis(**FAST).fit(wide_blobs[:200]).neighbour_matrix_.shape == (200, 5)
