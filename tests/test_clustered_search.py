"""neighbour_search='clustered': exact on small data, high recall on many clusters, checked input."""

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.neighbors import NearestNeighbors
from conftest import FAST, array_dataset

from ivis import Ivis
from ivis.data.neighbour_retrieval import clustered as clustered_module
from ivis.data.neighbour_retrieval.clustered import clustered_neighbours


def exact(X, k, metric, rows=None):
    """The k nearest other rows of each of ``rows`` (default: all), nearest first, by brute force."""
    rows = np.arange(len(X)) if rows is None else np.asarray(rows)
    search = NearestNeighbors(n_neighbors=k + 1, metric="cosine" if metric == "angular" else "euclidean", algorithm="brute")
    found = search.fit(np.asarray(X, dtype=np.float64)).kneighbors(np.asarray(X, dtype=np.float64)[rows], return_distance=False)
    return np.array([listed[listed != row][:k] for listed, row in zip(found, rows)])


def distances(X, rows, neighbours, metric):
    """Distances from ``X[rows]`` to their listed ``neighbours`` (angular: 1 - cosine)."""
    X = np.asarray(X, dtype=np.float64)
    if metric == "angular":
        X = X / np.linalg.norm(X, axis=1, keepdims=True)
    return np.linalg.norm(X[neighbours] - X[rows][:, None, :], axis=-1)


def recall(found, truth):
    return np.mean([len(set(a) & set(b)) / len(b) for a, b in zip(found, truth)])


@pytest.fixture(scope="module")
def mixture():
    """6,000 rows from 30 Gaussian blobs in 24 dimensions: 22 clusters of rows are searched."""
    rng = np.random.default_rng(3)
    centres = rng.normal(scale=4.0, size=(30, 24))
    X = centres[rng.integers(0, 30, 6000)] + rng.normal(size=(6000, 24))
    return X.astype(np.float32)


@pytest.mark.parametrize("metric", ["angular", "euclidean"])
def test_small_data_is_searched_exhaustively_and_exactly(metric):
    n_rows = clustered_module.EXHAUSTIVE_MAX_ROWS
    X = np.random.default_rng(0).normal(size=(n_rows, 12)).astype(np.float32)
    found = clustered_neighbours(X, 10, metric, random_state=0)
    assert found.shape == (n_rows, 10) and found.dtype == np.int32
    # The same neighbours, up to the order of rows at equal distance in float32.
    rows = np.arange(0, n_rows, 7)
    np.testing.assert_allclose(
        distances(X, rows, found[rows], metric), distances(X, rows, exact(X, 10, metric, rows), metric), rtol=1e-5, atol=1e-6
    )


@pytest.mark.parametrize("metric", ["angular", "euclidean"])
@pytest.mark.parametrize("k", [15, 150])
def test_many_clusters_keep_most_exact_neighbours(mixture, metric, k):
    found = clustered_neighbours(mixture, k, metric, random_state=0)
    assert found.shape == (len(mixture), k)
    rows = np.arange(len(mixture))
    assert not (found == rows[:, None]).any(), "a row is listed as its own neighbour"
    assert all(len(np.unique(row)) == k for row in found[::97]), "a neighbour is listed twice"
    assert recall(found, exact(mixture, k, metric)) >= 0.9


def test_rows_spread_over_many_dimensions_make_it_probe_more_clusters(monkeypatch):
    # One isotropic Gaussian: a row's nearest neighbours lie in clusters all around its own.
    X = np.random.default_rng(4).normal(size=(12_000, 16)).astype(np.float32)
    probed = []
    count = clustered_module._probe_count
    monkeypatch.setattr(clustered_module, "_probe_count", lambda *a: probed.append(count(*a)) or probed[-1])
    found = clustered_neighbours(X, 15, "euclidean", random_state=0)
    assert probed[0] > 20  # of 44 clusters; Fashion-MNIST needs 10 or 11
    rows = np.arange(0, 12_000, 40)
    assert recall(found[rows], exact(X, 15, "euclidean", rows)) >= 0.9


def test_neighbours_are_listed_nearest_first(mixture):
    found = clustered_neighbours(mixture, 15, "euclidean", random_state=0)
    distances = np.linalg.norm(mixture[found] - mixture[:, None, :], axis=-1)
    assert (np.diff(distances, axis=1) >= -1e-4).all()


def test_same_seed_same_neighbours_and_another_seed_other_clusters(mixture):
    first = clustered_neighbours(mixture, 15, "angular", random_state=1)
    np.testing.assert_array_equal(first, clustered_neighbours(mixture, 15, "angular", random_state=1))
    assert recall(first, clustered_neighbours(mixture, 15, "angular", random_state=2)) > 0.9


def test_clusters_too_small_for_k_are_widened_until_each_row_has_k_candidates():
    # 6,000 rows make 22 clusters of ~275 rows; 10 of them hold fewer than 4k + 1 = 4,001 rows.
    X = np.random.default_rng(1).normal(size=(6000, 8)).astype(np.float32)
    found = clustered_neighbours(X, 1000, "euclidean", random_state=0)
    assert not (found == np.arange(6000)[:, None]).any()
    assert all(len(np.unique(row)) == 1000 for row in found[::601])
    # Structureless data with a k of a sixth of the rows is the hard case: each row's 1,000
    # nearest reach across many clusters around it, not only those nearest its cluster's mean.
    assert recall(found[::601], exact(X, 1000, "euclidean", np.arange(0, 6000, 601))) >= 0.85


def test_zero_rows_with_angular_metric_get_neighbours():
    X = np.random.default_rng(2).normal(size=(300, 5)).astype(np.float32)
    X[:4] = 0.0
    found = clustered_neighbours(X, 5, "angular", random_state=0)
    assert ((found >= 0) & (found < 300)).all()
    assert not (found == np.arange(300)[:, None]).any()
    # A zero row is at cosine 0 from every row, as in the exact search.
    np.testing.assert_array_equal(found[4:], exact(X, 5, "angular")[4:])


def test_temporary_blocks_stay_bounded(mixture, monkeypatch):
    """Blocks of rows are cut to MAX_BLOCK_DISTANCES distances and give the same neighbours.

    (Not bit for bit: products of other shapes round differently, which can move a row that is
    as near to two cluster centres to the other cluster.)
    """
    expected = clustered_neighbours(mixture, 15, "angular", random_state=0)
    monkeypatch.setattr(clustered_module, "MAX_BLOCK_DISTANCES", 5_000)
    found = clustered_neighbours(mixture, 15, "angular", random_state=0)
    assert recall(found, expected) >= 0.97
    assert recall(found, exact(mixture, 15, "angular")) >= 0.9


def test_estimator_uses_it_for_arrays_of_any_row_shape(mixture):
    images = mixture.reshape(-1, 4, 6)
    settings = {**FAST, "k": 15, "epochs": 1, "batch_size": 256, "neighbour_search": "clustered"}
    model = Ivis(**settings).fit(images)
    assert model.neighbour_matrix_.shape == (6000, 15)
    assert recall(model.neighbour_matrix_, exact(mixture, 15, "angular")) >= 0.9
    again = Ivis(**settings).fit(images)
    np.testing.assert_array_equal(again.neighbour_matrix_, model.neighbour_matrix_)
    np.testing.assert_allclose(again.transform(images), model.transform(images), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "params, message",
    [
        ({"neighbour_search": "faiss"}, "Unknown neighbour_search 'faiss'. Valid values are: 'annoy', 'clustered'"),
        ({"neighbour_search": "clustered", "knn_distance_metric": "manhattan"}, "supports knn_distance_metric 'angular' or 'euclidean'"),
        ({"neighbour_search": "clustered", "precompute": False}, "needs precompute=True"),
        ({"neighbour_search": "clustered", "annoy_index_path": "index.ann"}, "Leave annoy_index_path=None"),
    ],
)
def test_bad_settings_are_named(iris, params, message):
    X, _ = iris
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Ivis(**FAST, **params).fit(X)


def test_data_not_in_memory_is_refused_with_the_alternative(iris):
    X, _ = iris
    with pytest.raises(ValueError, match="needs X in memory, as a dense array or a SciPy sparse matrix.*neighbour_search='annoy'"):
        Ivis(**FAST, neighbour_search="clustered").fit(array_dataset(X))


def sparse_binary_rows(n_rows, n_features, seed):
    """Binary sparse rows with many ties in distance: a few ones per row, columns of skewed frequency."""
    rng = np.random.default_rng(seed)
    weights = 1.0 / np.arange(1, n_features + 1)
    columns = [rng.choice(n_features, rng.integers(1, 5), replace=False, p=weights / weights.sum()) for _ in range(n_rows)]
    indptr = np.concatenate([[0], np.cumsum([len(c) for c in columns])])
    indices = np.concatenate(columns)
    return sp.csr_matrix((np.ones(len(indices), dtype=np.float32), indices, indptr), shape=(n_rows, n_features))


def tie_aware_recall(X, found, metric, rows, k):
    """Share of found neighbours no farther than the k-th exact neighbour (ties count as found)."""
    dense = X.toarray()
    kth = distances(dense, rows, exact(dense, k, metric, rows), metric)[:, -1]
    return np.mean(distances(dense, rows, found[rows], metric) <= kth[:, None] + 1e-6)


@pytest.mark.parametrize("metric", ["angular", "euclidean"])
def test_small_sparse_data_is_searched_exactly(metric):
    X = sparse_binary_rows(clustered_module.EXHAUSTIVE_MAX_ROWS // 2, 300, seed=1)
    found = clustered_neighbours(X, 10, metric, random_state=0)
    assert found.shape == (X.shape[0], 10) and found.dtype == np.int32
    rows = np.arange(0, X.shape[0], 5)
    assert tie_aware_recall(X, found, metric, rows, 10) == 1.0


def test_many_clusters_keep_most_sparse_neighbours():
    X = sparse_binary_rows(8000, 400, seed=2)
    found = clustered_neighbours(X, 15, "angular", random_state=0)
    rows = np.random.default_rng(0).choice(X.shape[0], 300, replace=False)
    assert tie_aware_recall(X, found, "angular", rows, 15) >= 0.9


def test_ties_count_as_found_when_the_probed_clusters_are_chosen(monkeypatch):
    # Rows of a few ones have many neighbours at exactly the k-th distance; any k of them are
    # exact. Requiring the k that a sort happens to list made the search probe 18 of 29 clusters.
    X = sparse_binary_rows(8000, 400, seed=2)
    probed = []
    count = clustered_module._probe_count
    monkeypatch.setattr(clustered_module, "_probe_count", lambda *a: probed.append(count(*a)) or probed[-1])
    found = clustered_neighbours(X, 15, "angular", random_state=0)
    assert probed[0] <= 8
    rows = np.random.default_rng(0).choice(X.shape[0], 300, replace=False)
    assert tie_aware_recall(X, found, "angular", rows, 15) >= 0.9


def test_sparse_data_fits_with_clustered_search(iris):
    X, y = iris
    model = Ivis(**FAST, neighbour_search="clustered").fit(sp.csr_matrix(X))
    dense = Ivis(**FAST, neighbour_search="clustered").fit(X)
    np.testing.assert_array_equal(model.neighbour_matrix_, dense.neighbour_matrix_)
