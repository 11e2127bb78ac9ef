"""Neighbours of very wide sparse rows: projected index, rows sharing rare columns, refinement."""

import numpy as np
import pytest
import scipy.sparse as sp
from test_clustered_search import distances, exact, sparse_binary_rows

from ivis.data import projection
from ivis.data.neighbour_retrieval import AnnoyKnnMatrix


def prime_factor_rows(n):
    """Integers 1..n as binary rows over the primes up to n (1 where the prime divides)."""
    primes = [p for p in range(2, n + 1) if all(p % q for q in range(2, int(p**0.5) + 1))]
    rows, cols = [], []
    for column, p in enumerate(primes):
        multiples = np.arange(p, n + 1, p) - 1
        rows.append(multiples)
        cols.append(np.full(len(multiples), column))
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    return sp.csr_matrix((np.ones(len(rows), dtype=np.float32), (rows, cols)), shape=(n, len(primes)))


def tie_aware_recall(X, found, rows, k):
    """Share of found neighbours no farther (angular) than the k-th exact one: ties count as found."""
    dense = X.toarray()
    kth = distances(dense, rows, exact(dense, k, "angular", rows), "angular")[:, -1]
    return np.mean(distances(dense, rows, found[rows], "angular") <= kth[:, None] + 1e-6)


@pytest.fixture
def projected_primes(monkeypatch):
    """3,000 prime-factor rows (430 columns), searched on a projection as wider data would be."""
    monkeypatch.setattr(projection, "PROJECTION_MIN_FEATURES", 100)
    X = prime_factor_rows(3000)
    # The integer 1 has no prime factor: an empty row has no direction to be near to.
    return X[1:]


def test_projected_search_finds_tie_aware_exact_neighbours_repeatably(projected_primes, tmp_path):
    X, k = projected_primes, 15
    found = []
    for name in ("a", "b"):
        matrix = AnnoyKnnMatrix.build(X, str(tmp_path / f"{name}.ann"), k=k, verbose=0, random_state=3)
        assert matrix.index.f == projection.PROJECTION_DIMS
        found.append(matrix.get_neighbour_indices())
        matrix.delete_index()
    np.testing.assert_array_equal(found[0], found[1])
    assert not (found[0] == np.arange(X.shape[0])[:, None]).any()
    rows = np.random.default_rng(0).choice(X.shape[0], 300, replace=False)
    assert tie_aware_recall(X, found[0], rows, k) >= 0.95


def test_rows_sharing_a_rare_column_are_offered_to_each_other():
    X = sparse_binary_rows(3000, 2000, seed=3)
    k = 10
    rng = np.random.default_rng(0)
    start = np.stack([rng.choice(np.delete(np.arange(3000), i), k, replace=False) for i in range(3000)])
    start = projection.rerank(X, np.arange(3000), start, k, "angular")
    rows = np.arange(0, 3000, 7)
    shared = projection.add_shared_rare_columns(X, start.copy(), k, "angular", rows_per_step=500)
    assert shared.dtype == np.int32
    assert not (shared == np.arange(3000)[:, None]).any()
    assert all(len(set(row)) == k for row in shared)
    assert tie_aware_recall(X, shared, rows, k) > tie_aware_recall(X, start, rows, k) + 0.25
    np.testing.assert_array_equal(shared, projection.add_shared_rare_columns(X, start.copy(), k, "angular", 64))
