"""Self checks of the data generators and loaders: ``python -m pytest bench -q``."""

import os

import numpy as np
import pytest

import gmm_hdf5
import primes
import workloads


def _trial_division(m):
    out, d = [], 2
    while d * d <= m:
        if m % d == 0:
            out.append(d)
            while m % d == 0:
                m //= d
        d += 1
    if m > 1:
        out.append(m)
    return out


def test_prime_factor_matrix_matches_trial_division():
    X, cols = primes.prime_factor_matrix(3000)
    assert X.shape == (3000, 430)  # pi(3000) = 430
    assert X[0].nnz == 0  # the integer 1
    for i in range(3000):
        assert list(cols[X[i].indices]) == _trial_division(i + 1)
    assert set(np.unique(X.data)) == {1.0}


def test_smallest_prime_factors():
    spf = primes.smallest_prime_factors(100)
    assert [spf[m] for m in (2, 9, 15, 49, 77, 97, 100)] == [2, 3, 3, 7, 7, 97, 2]


def test_labels_bucket_smallest_prime_factor():
    y = primes.smallest_prime_factor_labels(30)
    # integers 1..12: 1 -> other, 2 -> spf 2, 3 -> spf 3, 4 -> 2, 5 -> 5, ..., 11 -> other
    assert list(y[:12]) == [4, 0, 1, 0, 2, 0, 3, 0, 1, 0, 4, 0]
    assert y[24] == 2  # 25 = 5 * 5
    assert y[28] == 4  # 29 is prime


def test_primes_workload_caps_to_first_integers():
    wl = workloads.load("primes100k", max_rows=1000)
    assert wl.shape == (1000, 168) and wl.is_sparse
    assert wl.name == "primes100k-1k"


def test_digits_is_scaled():
    wl = workloads.load("digits")
    assert wl.shape == (1797, 64)
    assert wl.X.min() == 0.0 and wl.X.max() == 1.0


@pytest.mark.skipif(not os.path.isdir(workloads.FMNIST_DIR), reason="dataset-fashion-mnist not installed")
def test_fmnist_subsample_is_stratified():
    wl = workloads.load("fmnist", max_rows=1000)
    assert wl.name == "fmnist1k" and wl.shape == (1000, 784)
    assert np.bincount(wl.y).tolist() == [100] * 10
    assert 0.0 <= wl.X.min() and wl.X.max() <= 1.0


def test_expand_groups_and_reject_unknown():
    assert workloads.expand(["digits", "hdf5"]) == ["digits", "hdf5_250k", "hdf5_2m"]
    with pytest.raises(ValueError):
        workloads.expand(["mnist"])


def test_mixture_file(tmp_path):
    h5py = pytest.importorskip("h5py")
    path = str(tmp_path / "gmm.h5")
    gmm_hdf5.write_mixture(path, 1234)
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (1234, gmm_hdf5.N_FEATURES)
        assert f["data"].dtype == np.float32
        labels = f["labels"][:]
    assert labels.min() >= 0 and labels.max() < gmm_hdf5.N_COMPONENTS
    assert not os.path.exists(path + ".partial")
    # A second call leaves an existing file alone.
    mtime = os.path.getmtime(path)
    gmm_hdf5.write_mixture(path, 1234)
    assert os.path.getmtime(path) == mtime


@pytest.mark.parametrize("name", workloads.CONTINUOUS)
def test_continuous_workloads_are_lifted_and_repeatable(name):
    first, again = workloads.load(name), workloads.load(name)
    assert first.shape == (workloads.CONTINUOUS_ROWS, workloads.LIFTED_DIMS)
    np.testing.assert_array_equal(first.X, again.X)
    assert len(np.unique(first.y)) == {"swissroll": 6, "moons": 2, "noise": 9}[name]


def test_polynomial_lift_keeps_small_distances_in_order():
    # A smooth map: the nearest neighbour of most points is the same before and after the lift.
    from sklearn.neighbors import NearestNeighbors

    Z = np.random.default_rng(0).uniform(size=(500, 2))
    lifted = workloads.polynomial_lift(Z)
    nearest = [NearestNeighbors(n_neighbors=2).fit(A).kneighbors(A, return_distance=False)[:, 1] for A in (Z, lifted)]
    assert lifted.shape == (500, workloads.LIFTED_DIMS)
    assert np.mean(nearest[0] == nearest[1]) > 0.8
