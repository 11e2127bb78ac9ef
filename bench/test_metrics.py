"""Self checks of the quality metrics: run with ``python -m pytest bench -q`` (seconds)."""

import numpy as np
import pytest
import scipy.sparse as sp

import metrics


def _blobs(n=600, p=5, centers=4, seed=0):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, n_features=p, centers=centers, random_state=seed)
    return X.astype(np.float32), y


def _exact_knn(X, k, metric="euclidean"):
    from sklearn.neighbors import NearestNeighbors

    nn = NearestNeighbors(n_neighbors=k + 1, metric=metric, algorithm="brute").fit(X)
    return nn.kneighbors(X, return_distance=False)


def test_tie_aware_recall_counts_ties_as_hits():
    d = np.array([[0.0, 1.0, 1.0, 4.0]])
    assert metrics.tie_aware_recall(d, np.array([1.0])) == 0.75
    assert metrics.tie_aware_recall(d, np.array([4.0])) == 1.0


def test_pearson_and_constant_input():
    assert metrics.pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert metrics.pearson([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1.0)
    assert np.isnan(metrics.pearson([1, 1, 1], [1, 2, 3]))


def test_identity_embedding_is_perfect():
    X, y = _blobs(p=2)
    space = metrics.InputSpace(X, y)
    s = space.embedding_scores(X)
    assert s["trustworthiness"] == pytest.approx(1.0)
    assert s["neighbour_recall"] == pytest.approx(1.0)
    assert s["distance_correlation"] == pytest.approx(1.0)
    assert s["centroid_correlation"] == pytest.approx(1.0)
    assert s["centroid_mantel_p"] > 0  # 4 classes: only 24 distinct relabellings
    assert s["knn_accuracy"] > 0.9  # 2-d blobs overlap a little


def test_random_embedding_scores_low():
    X, y = _blobs()
    space = metrics.InputSpace(X, y)
    E = np.random.default_rng(1).normal(size=(X.shape[0], 2))
    s = space.embedding_scores(E)
    assert s["neighbour_recall"] < 0.1
    assert abs(s["distance_correlation"]) < 0.1
    assert s["knn_accuracy"] < 0.5


def test_scaled_embedding_keeps_distance_scores():
    X, y = _blobs(p=2)
    space = metrics.InputSpace(X, y)
    s = space.embedding_scores(3.0 * X + 7.0)
    assert s["distance_correlation"] == pytest.approx(1.0)
    assert s["centroid_correlation"] == pytest.approx(1.0)


def test_graph_recall_exact_and_random():
    X, y = _blobs(n=1500)
    space = metrics.InputSpace(X, y)
    exact = _exact_knn(X, 15)
    r = space.graph_recall(exact)
    assert r["graph_recall"] == pytest.approx(1.0)
    assert r["graph_k"] == pytest.approx(15.0, abs=0.1)
    # Without the self column, 14 neighbours are scored against the 14th exact distance.
    assert space.graph_recall(exact[:, :15])["graph_recall"] == pytest.approx(1.0)
    rand = np.random.default_rng(0).integers(0, len(X), size=(len(X), 15))
    assert space.graph_recall(rand)["graph_recall"] < 0.2


def test_graph_recall_angular():
    X, y = _blobs(n=800)
    space = metrics.InputSpace(X, y)
    exact_cos = _exact_knn(X, 10, metric="cosine")
    assert space.graph_recall(exact_cos, "angular")["graph_recall"] == pytest.approx(1.0)


def test_sparse_and_dense_inputs_agree():
    X, y = _blobs(n=400)
    X[X < 0] = 0
    dense = metrics.InputSpace(X, y)
    sparse = metrics.InputSpace(sp.csr_matrix(X), y)
    E = X[:, :2] + np.random.default_rng(2).normal(scale=0.5, size=(len(X), 2))
    a, b = dense.embedding_scores(E), sparse.embedding_scores(E)
    for key in a:
        assert a[key] == pytest.approx(b[key], rel=1e-6)
    nbrs = _exact_knn(X, 15)
    assert dense.graph_recall(nbrs)["graph_recall"] == pytest.approx(
        sparse.graph_recall(nbrs)["graph_recall"]
    )


def test_duplicate_rows_are_ties_not_misses():
    # Eight copies of each of 50 points: any 7 copies are a perfect 7-NN answer.
    base = np.random.default_rng(3).normal(size=(50, 3))
    X = np.repeat(base, 8, axis=0)
    y = np.repeat(np.arange(50) % 5, 8)
    space = metrics.InputSpace(X, y)
    groups = np.arange(len(X)) // 8
    nbrs = np.array([np.flatnonzero(groups == g)[::-1] for g in groups])  # self included, reversed
    assert space.graph_recall(nbrs)["graph_recall"] == pytest.approx(1.0)


def test_mantel_detects_relabelling():
    from scipy.spatial.distance import pdist

    pts = np.random.default_rng(4).normal(size=(10, 3))
    d = pdist(pts)
    r, p = metrics.mantel(d, d, 10, permutations=199)
    assert r == pytest.approx(1.0) and p <= 0.01
    shuffled = pdist(pts[np.random.default_rng(5).permutation(10)])
    assert metrics.mantel(d, shuffled, 10, permutations=199)[0] < 0.9


def test_class_centroids_sparse_dense():
    X, y = _blobs(n=200)
    classes = np.unique(y)
    dense = metrics.class_centroids(X, y, classes)
    sparse = metrics.class_centroids(sp.csr_matrix(X), y, classes)
    np.testing.assert_allclose(dense, sparse, rtol=1e-6)
    np.testing.assert_allclose(dense[0], X[y == classes[0]].mean(axis=0), rtol=1e-5)


def test_cluster_strength_tells_separated_groups_from_uniform_noise():
    rng = np.random.default_rng(0)
    noise = rng.uniform(size=(600, 2))
    groups = np.concatenate([rng.normal(scale=0.05, size=(200, 2)) + c for c in ([0, 0], [3, 0], [0, 3])])
    assert metrics.cluster_strength(groups) > 0.8
    assert metrics.cluster_strength(noise) < 0.5
