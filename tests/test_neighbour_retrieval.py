"""Annoy neighbour matrices: build, load, save, queries, cleanup, and recall."""

import os

import numpy as np
import pytest
from sklearn.neighbors import NearestNeighbors

from conftest import array_dataset
from ivis.data.neighbour_retrieval import AnnoyKnnMatrix, LabeledNeighbourMap, NeighbourMatrix, build_annoy_index
from ivis.data.neighbour_retrieval.knn import ANNOY_METRICS


@pytest.fixture(scope="module")
def clustered():
    rng = np.random.default_rng(0)
    centres = rng.normal(scale=10, size=(5, 16))
    return (centres[rng.integers(0, 5, 1000)] + rng.normal(size=(1000, 16))).astype(np.float32)


def test_rows_exclude_self_and_recall_exact_neighbours(clustered, tmp_path):
    k = 10
    matrix = AnnoyKnnMatrix.build(clustered, str(tmp_path / "i.ann"), k=k, metric="euclidean", verbose=0, random_state=0)
    neighbours = matrix.get_neighbour_indices()
    assert neighbours.shape == (1000, k)
    assert not (neighbours == np.arange(1000)[:, None]).any()
    exact = NearestNeighbors(n_neighbors=k + 1).fit(clustered).kneighbors(return_distance=False)[:, :k]
    recall = np.mean([len(set(a) & set(b)) / k for a, b in zip(neighbours, exact)])
    assert recall >= 0.9


@pytest.mark.parametrize("metric", ANNOY_METRICS)
def test_every_metric_builds_and_queries(metric, tmp_path):
    X = (np.random.default_rng(1).random((200, 8)) > 0.5).astype(np.float32)
    matrix = AnnoyKnnMatrix.build(X, str(tmp_path / "m.ann"), k=5, metric=metric, verbose=0, random_state=0)
    batch = matrix.get_batch([0, 5, 7])
    assert batch.shape == (3, 5)
    assert ((batch >= 0) & (batch < 200)).all()


def test_get_batch_getitem_and_precompute_agree(clustered, tmp_path):
    path = str(tmp_path / "i.ann")
    lazy = AnnoyKnnMatrix.build(clustered, path, k=7, verbose=0, random_state=3)
    eager = AnnoyKnnMatrix.load(path, clustered.shape, k=7, precompute=True, verbose=0)
    idx = [3, 999, 0, 3]
    np.testing.assert_array_equal(lazy.get_batch(idx), eager.get_batch(idx))
    np.testing.assert_array_equal(lazy[10], eager[10])
    assert lazy[2:5].shape == (3, 7)
    assert len(lazy) == 1000 and lazy.k == 7
    assert isinstance(lazy, NeighbourMatrix)


def test_parallel_and_serial_extraction_agree(clustered, tmp_path):
    matrix = AnnoyKnnMatrix.build(clustered, str(tmp_path / "i.ann"), k=5, verbose=0, random_state=0)
    np.testing.assert_array_equal(matrix.get_neighbour_indices(n_jobs=1), matrix.get_neighbour_indices(n_jobs=2))


def test_save_load_unload_and_delete(clustered, tmp_path):
    matrix = AnnoyKnnMatrix.build(clustered, str(tmp_path / "i.ann"), k=5, verbose=0, random_state=0)
    copy_path = str(tmp_path / "copy.ann")
    matrix.save(copy_path)
    reloaded = AnnoyKnnMatrix.load(copy_path, clustered.shape, k=5, verbose=0)
    np.testing.assert_array_equal(reloaded.get_batch([1, 2]), matrix.get_batch([1, 2]))
    reloaded.delete_index()
    assert not os.path.exists(copy_path)
    folder = tmp_path / "owned"
    folder.mkdir()
    owned = AnnoyKnnMatrix.build(clustered, str(folder / "i.ann"), k=5, verbose=0)
    owned.delete_index(parent=True)
    assert not folder.exists()


def test_load_rejects_index_of_other_data(clustered, tmp_path):
    path = str(tmp_path / "i.ann")
    build_annoy_index(clustered, path, verbose=0)
    with pytest.raises(ValueError, match="holds 1000 items, but the data has 10 rows"):
        AnnoyKnnMatrix.load(path, (10, 16))
    with pytest.raises(FileNotFoundError):
        AnnoyKnnMatrix.load(str(tmp_path / "missing.ann"), clustered.shape)


def test_unknown_metric_lists_valid_ones(clustered, tmp_path):
    with pytest.raises(ValueError, match="angular, euclidean, manhattan, hamming, dot"):
        build_annoy_index(clustered, str(tmp_path / "i.ann"), metric="cosine")


@pytest.mark.parametrize("on_disk", [True, False])
def test_nan_in_data_is_reported_while_indexing_and_leaves_no_file(tmp_path, on_disk):
    X = np.ones((50, 3), dtype=np.float32)
    X[17, 2] = np.nan
    with pytest.raises(ValueError, match="row 17, column 2"):
        build_annoy_index(X, str(tmp_path / "i.ann"), build_index_on_disk=on_disk, verbose=0)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("given_path", [True, False])
def test_failed_index_build_in_fit_leaves_no_index_behind(tmp_path, monkeypatch, given_path):
    import tempfile

    from ivis import Ivis

    X = np.random.default_rng(0).random((60, 4)).astype(np.float32)
    X[40, 1] = np.nan
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    index_path = tmp_path / "index.ann"
    model = Ivis(k=5, epochs=1, batch_size=16, verbose=0, annoy_index_path=str(index_path) if given_path else None)
    with pytest.raises(ValueError, match="row 40, column 1"):
        model.fit(array_dataset(X))  # not in memory: the NaN is found while indexing
    # Neither a half-built index at the given path (a later fit would load it) nor a temporary folder.
    assert not index_path.exists()
    assert os.listdir(scratch) == []


def test_labeled_neighbour_map():
    labels = ["a", "b", "a", "c", "b", "a"]
    neighbours = LabeledNeighbourMap(labels)
    assert len(neighbours) == 6
    assert sorted(neighbours[0]) == [0, 2, 5]
    assert sorted(neighbours[4]) == [1, 4]
