"""Benchmark data sets, loaded the same way in the measuring child and in the evaluating parent.

Every loader returns a :class:`Workload`. The module imports only numpy, scipy, scikit-learn and
h5py, which are present in both the current environment and the previous release's one.
"""

import gzip
import os
from dataclasses import dataclass, field

import numpy as np

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
DATA_DIR = os.path.join(BENCH_DIR, "data")
FMNIST_DIR = "/usr/share/datasets/fashion-mnist"
SUBSAMPLE_SEED = 0

# name -> rows for the generated workloads
PRIMES_ROWS = {"primes100k": 100_000, "primes1m": 1_000_000}
HDF5_ROWS = {"hdf5_250k": 250_000, "hdf5_2m": 2_000_000}
# Continuous data and noise, lifted to LIFTED_DIMS features by a fixed random polynomial map.
CONTINUOUS_ROWS = 5000
LIFTED_DIMS = 300
LIFT_SEED = 12345
CONTINUOUS = ("swissroll", "moons", "noise")
# what a name given on the command line expands to
GROUPS = {"hdf5": ("hdf5_250k", "hdf5_2m"), "continuous": CONTINUOUS}
ALL = ("digits", "fmnist", "primes100k", "primes1m", "hdf5_250k", "hdf5_2m") + CONTINUOUS
DEFAULT = ("digits", "fmnist", "primes100k", "primes1m") + CONTINUOUS


@dataclass
class Workload:
    """One data set.

    Attributes
    ----------
    name : str
        Name including any row cap, e.g. ``fmnist10k``.
    X : ndarray, scipy.sparse.csr_matrix or h5py.Dataset
    y : ndarray of int
        Class labels used by the quality metrics.
    description : str
    label_description : str
    extra : dict
        Anything worth recording (source files, feature count, ...).
    """

    name: str
    X: object
    y: np.ndarray
    description: str
    label_description: str
    extra: dict = field(default_factory=dict)
    _keepalive: object = None

    @property
    def shape(self):
        return tuple(int(s) for s in self.X.shape)

    @property
    def is_sparse(self):
        import scipy.sparse as sp

        return sp.issparse(self.X)

    @property
    def is_hdf5(self):
        return type(self.X).__module__.startswith("h5py")

    def close(self):
        """Close the HDF5 file behind ``X``, if any."""
        if self._keepalive is not None:
            self._keepalive.close()
            self._keepalive = None


def expand(names):
    """Expand group names (``hdf5``) and check that every name is known.

    Parameters
    ----------
    names : iterable of str

    Returns
    -------
    list of str
    """
    out = []
    for name in names:
        for member in GROUPS.get(name, (name,)):
            if member not in ALL:
                raise ValueError(f"unknown workload {member!r}; known: {', '.join(ALL + tuple(GROUPS))}")
            if member not in out:
                out.append(member)
    return out


def capped_name(name, max_rows):
    """Name of ``name`` once capped to ``max_rows`` rows (``fmnist`` -> ``fmnist10k``)."""
    if not max_rows:
        return name
    n = full_rows(name)
    if n is not None and n <= max_rows:
        return name
    # "fmnist10k" reads naturally; elsewhere a dash keeps the size apart from the name.
    sep = "" if name == "fmnist" else "-"
    return f"{name}{sep}{_short(max_rows)}"


def full_rows(name):
    """Row count of the uncapped workload, or None when it is cheap to find out by loading."""
    known = {"digits": 1797, "fmnist": 70_000, **PRIMES_ROWS, **HDF5_ROWS, **{c: CONTINUOUS_ROWS for c in CONTINUOUS}}
    return known.get(name)


def _short(n):
    if n % 1_000_000 == 0:
        return f"{n // 1_000_000}m"
    if n % 1000 == 0:
        return f"{n // 1000}k"
    return str(n)


def load(name, max_rows=None):
    """Load a workload by name.

    Parameters
    ----------
    name : str
        One of :data:`ALL`.
    max_rows : int, optional
        Cap on rows. Fashion-MNIST and digits are subsampled (stratified, fixed seed); the
        primes workloads take the first ``max_rows`` integers; HDF5 workloads use a smaller
        file drawn from the same mixture.

    Returns
    -------
    Workload
    """
    if name == "digits":
        wl = _digits()
    elif name == "fmnist":
        wl = _fmnist()
    elif name in CONTINUOUS:
        wl = _continuous(name)
    elif name in PRIMES_ROWS:
        n = PRIMES_ROWS[name] if not max_rows else min(max_rows, PRIMES_ROWS[name])
        return _primes(name, n, capped=n < PRIMES_ROWS[name], max_rows=max_rows)
    elif name in HDF5_ROWS:
        n = HDF5_ROWS[name] if not max_rows else min(max_rows, HDF5_ROWS[name])
        return _hdf5(name, n, capped_name(name, max_rows) if n < HDF5_ROWS[name] else name)
    else:
        raise ValueError(f"unknown workload {name!r}")
    if max_rows and wl.X.shape[0] > max_rows:
        rows = stratified_subsample(wl.y, max_rows, SUBSAMPLE_SEED)
        wl = Workload(
            capped_name(name, max_rows),
            wl.X[rows],
            wl.y[rows],
            f"{wl.description}; stratified subsample of {max_rows} rows (seed {SUBSAMPLE_SEED})",
            wl.label_description,
            dict(wl.extra, subsample_of=wl.X.shape[0]),
        )
    return wl


def stratified_subsample(y, n, seed):
    """Sorted row indices of a class-stratified random subsample of size ``n``."""
    from sklearn.model_selection import train_test_split

    rows = np.arange(len(y))
    keep, _ = train_test_split(rows, train_size=n, stratify=y, random_state=seed)
    return np.sort(keep)


def _digits():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import MinMaxScaler

    X, y = load_digits(return_X_y=True)
    X = MinMaxScaler().fit_transform(X).astype(np.float32)
    return Workload(
        "digits",
        X,
        y.astype(np.int64),
        "scikit-learn digits, 1,797 x 64, MinMax-scaled per feature",
        "digit 0-9",
    )


def polynomial_lift(Z, dims=LIFTED_DIMS, seed=LIFT_SEED):
    """Map low-dimensional points to ``dims`` features by a fixed random polynomial of degree 2.

    The standardised coordinates and all their degree-2 products are mixed by one Gaussian
    matrix drawn from ``seed``: a smooth, curved embedding of the same manifold, in which the
    input-space distances are still those of the generating coordinates at small scales.
    """
    Z = (Z - Z.mean(axis=0)) / Z.std(axis=0)
    i, j = np.triu_indices(Z.shape[1])
    terms = np.hstack([Z, Z[:, i] * Z[:, j] / np.sqrt(2.0)])
    mixing = np.random.default_rng(seed).normal(size=(terms.shape[1], dims)) / np.sqrt(terms.shape[1])
    return (terms @ mixing).astype(np.float32)


def _continuous(name, n=CONTINUOUS_ROWS, seed=SUBSAMPLE_SEED):
    """A swiss roll, two half-moons or uniform noise in a square, lifted to LIFTED_DIMS features."""
    from sklearn.datasets import make_moons, make_swiss_roll

    rng = np.random.default_rng(seed)
    if name == "swissroll":
        Z, t = make_swiss_roll(n, noise=0.05, random_state=seed)
        # Six equal stretches along the roll: neighbours along it share a label.
        y = np.digitize(t, np.quantile(t, np.linspace(0, 1, 7)[1:-1]))
        what, labels = "swiss roll (3-D, noise 0.05)", "stretch along the roll, 6 equal bins"
    elif name == "moons":
        Z, y = make_moons(n, noise=0.05, random_state=seed)
        what, labels = "two half-moons (2-D, noise 0.05)", "moon"
    else:
        Z = rng.uniform(size=(n, 2))
        # A 3 x 3 grid of cells: centroid distances then measure the layout of the square.
        y = np.minimum((Z * 3).astype(int), 2) @ np.array([3, 1])
        what, labels = "uniform noise in the unit square", "cell of a 3 x 3 grid"
    return Workload(
        name,
        polynomial_lift(Z),
        np.asarray(y, dtype=np.int64),
        f"{what}, {n:,} rows, lifted to {LIFTED_DIMS} features by a fixed random degree-2 polynomial map "
        f"(seed {LIFT_SEED})",
        labels,
        {"generator_dims": int(Z.shape[1])},
    )


def _read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def _fmnist():
    parts = []
    for prefix in ("train", "t10k"):
        images = _read_idx(os.path.join(FMNIST_DIR, f"{prefix}-images-idx3-ubyte.gz"))
        labels = _read_idx(os.path.join(FMNIST_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
        parts.append((images.reshape(len(images), -1), labels))
    X = np.concatenate([p[0] for p in parts]).astype(np.float32) / np.float32(255.0)
    y = np.concatenate([p[1] for p in parts]).astype(np.int64)
    return Workload(
        "fmnist",
        X,
        y,
        "Fashion-MNIST train + test, 70,000 x 784, pixels scaled to [0, 1]",
        "clothing class 0-9",
        {"source": FMNIST_DIR},
    )


def _primes(name, n, capped, max_rows):
    from primes import SPF_LABEL_NAMES, prime_factor_matrix, smallest_prime_factor_labels

    X, primes = prime_factor_matrix(n)
    return Workload(
        capped_name(name, max_rows) if capped else name,
        X,
        smallest_prime_factor_labels(n),
        f"integers 1..{n:,} as binary vectors of their distinct prime factors "
        f"(CSR, {X.shape[1]:,} features = primes <= {n:,}, {X.nnz:,} non-zeros)",
        "smallest prime factor bucket: " + ", ".join(SPF_LABEL_NAMES),
        {"n_features": int(X.shape[1]), "nnz": int(X.nnz)},
    )


def _hdf5_rows(name, max_rows=None):
    return HDF5_ROWS[name] if not max_rows else min(max_rows, HDF5_ROWS[name])


def hdf5_path(name, max_rows=None):
    """Path of the HDF5 file behind an ``hdf5_*`` workload."""
    return os.path.join(DATA_DIR, f"gmm_{_short(_hdf5_rows(name, max_rows))}x128.h5")


def ensure_hdf5(name, max_rows=None):
    """Generate the HDF5 file for ``name`` if it is not there yet; return its path."""
    from gmm_hdf5 import write_mixture

    return write_mixture(hdf5_path(name, max_rows), _hdf5_rows(name, max_rows))


def _hdf5(name, n, shown_name):
    import h5py

    path = ensure_hdf5(name, n)
    f = h5py.File(path, "r")
    X = f["data"]
    if X.shape[0] != n:
        raise ValueError(f"{path} has {X.shape[0]} rows, expected {n}")
    return Workload(
        shown_name,
        X,
        f["labels"][:].astype(np.int64),
        f"Gaussian mixture in HDF5 (bench/data/{os.path.basename(path)}), {n:,} x 128 float32, "
        "passed to fit as an h5py Dataset",
        "mixture component 0-19",
        {"path": path},
        _keepalive=f,
    )


def read_rows(X, rows):
    """Rows ``rows`` (sorted indices) of any supported ``X`` as an in-memory array/CSR."""
    if type(X).__module__.startswith("h5py"):
        return X[np.asarray(rows)]
    return X[rows]


def materialise(X, chunk=250_000):
    """All of ``X`` in memory (reads an h5py Dataset chunk by chunk)."""
    if not type(X).__module__.startswith("h5py"):
        return X
    out = np.empty(X.shape, dtype=X.dtype)
    for start in range(0, X.shape[0], chunk):
        out[start : start + chunk] = X[start : start + chunk]
    return out
