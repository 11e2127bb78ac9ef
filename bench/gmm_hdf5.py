"""Gaussian-mixture HDF5 files for the out-of-core workload.

The file holds ``data`` (float32, n x 128 by default, contiguous) and ``labels`` (int16, the mixture
component). It is generated once, in chunks so that generation itself stays small in memory,
and written under a temporary name first so that an interrupted run never leaves a truncated
file behind.
"""

import os

import numpy as np

N_FEATURES = 128
N_COMPONENTS = 20
CHUNK_ROWS = 100_000
SEED = 0


def mixture_parameters(n_features=N_FEATURES, n_components=N_COMPONENTS, seed=SEED):
    """Means, scales and weights of the mixture.

    Parameters
    ----------
    n_features, n_components, seed : int

    Returns
    -------
    means : ndarray, shape (n_components, n_features)
    scales : ndarray, shape (n_components,)
        Isotropic standard deviation of each component.
    weights : ndarray, shape (n_components,)
        Unequal mixing proportions, summing to 1.
    """
    rng = np.random.default_rng(seed)
    means = rng.normal(0.0, 1.0, size=(n_components, n_features))
    scales = rng.uniform(0.3, 0.8, size=n_components)
    weights = rng.dirichlet(np.full(n_components, 5.0))
    return means, scales, weights


def write_mixture(path, n_rows, seed=SEED, n_features=N_FEATURES):
    """Write ``n_rows`` samples of the mixture to ``path`` unless it already exists.

    Parameters
    ----------
    path : str
        Target ``.h5`` file.
    n_rows : int
    seed : int
    n_features : int, default=N_FEATURES

    Returns
    -------
    path : str
    """
    import h5py

    if os.path.exists(path):
        return path
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    means, scales, weights = mixture_parameters(n_features=n_features, seed=seed)
    rng = np.random.default_rng(seed + 1)
    partial = path + ".partial"
    with h5py.File(partial, "w") as f:
        data = f.create_dataset("data", shape=(n_rows, n_features), dtype="float32")
        labels = f.create_dataset("labels", shape=(n_rows,), dtype="int16")
        for start in range(0, n_rows, CHUNK_ROWS):
            stop = min(n_rows, start + CHUNK_ROWS)
            comp = rng.choice(N_COMPONENTS, size=stop - start, p=weights)
            noise = rng.standard_normal((stop - start, n_features), dtype=np.float32)
            block = means[comp].astype(np.float32) + noise * scales[comp, None].astype(np.float32)
            data[start:stop] = block
            labels[start:stop] = comp
        f.attrs["description"] = (
            f"{N_COMPONENTS}-component isotropic Gaussian mixture in {n_features} dimensions, seed {seed}"
        )
    os.replace(partial, path)
    return path


if __name__ == "__main__":
    # python bench/gmm_hdf5.py bench/data/gmm_10mx32.h5 10000000 --features 32
    import argparse

    parser = argparse.ArgumentParser(description="Write a Gaussian-mixture HDF5 file.")
    parser.add_argument("path")
    parser.add_argument("rows", type=int)
    parser.add_argument("--features", type=int, default=N_FEATURES)
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    print(write_mixture(args.path, args.rows, seed=args.seed, n_features=args.features))
