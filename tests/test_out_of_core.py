"""Out-of-core data: HDF5 reads per shuffle mode, bounded memory, streaming transform,
wide sparse neighbours, a database connector end to end, and the errors users meet."""

import os
import sqlite3

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

import ivis.data.read_plan as read_plan
import ivis.data.row_sources as row_sources
from ivis import Ivis
from ivis.data.inputs import IndexedSource, as_row_source, plan_reads
from ivis.data.sequence import FlattenedImageDataset, IndexableDataset
from ivis.data.sequence.sqlite import SQLiteDataset
from ivis.data.triplets import EpochAnchors, epoch_anchor_order

h5py = pytest.importorskip("h5py")

BATCH = 32
FAST = dict(k=5, epochs=2, batch_size=BATCH, verbose=0, random_state=0)


@pytest.fixture(scope="module")
def clusters():
    """400 rows in four separated clusters (a multiple of the batch size plus a remainder)."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=400, n_features=12, centers=4, cluster_std=0.5, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def h5_file(clusters, tmp_path_factory):
    path = tmp_path_factory.mktemp("h5") / "data.h5"
    with h5py.File(path, "w") as f:
        f["X"] = clusters[0]
        f["chunked"] = f["X"][:]
        f.create_dataset("gzip", data=clusters[0], chunks=(16, 12), compression="gzip")
        f["vector"] = np.arange(10.0)
    return path


@pytest.fixture(scope="module")
def fitted(clusters):
    return Ivis(**FAST).fit(clusters[0])


class ReadSpy:
    """Records every key an h5py dataset is indexed with."""

    def __init__(self, monkeypatch):
        self.keys = []
        original = h5py.Dataset.__getitem__

        def spy(dataset, key):
            self.keys.append(key)
            return original(dataset, key)

        monkeypatch.setattr(h5py.Dataset, "__getitem__", spy)

    def slices(self):
        return [k for k in self.keys if isinstance(k, slice)]

    def index_lists(self):
        return [k for k in self.keys if not isinstance(k, slice)]


# ----------------------------------------------------------------------- HDF5 reads


@pytest.mark.parametrize("shuffle_mode", [True, "batch", False])
def test_hdf5_fit_and_transform_read_slices_and_index_lists_only(h5_file, clusters, monkeypatch, shuffle_mode):
    # No covering slices across gaps: every scattered row goes to the index-list request.
    monkeypatch.setattr(read_plan, "MAX_GAP_BYTES", 0)
    n = len(clusters[0])
    n_batches = -(-n // BATCH)
    with h5py.File(h5_file, "r") as f:
        spy = ReadSpy(monkeypatch)
        model = Ivis(**FAST).fit(f["X"], shuffle_mode=shuffle_mode)
        fit_keys = list(spy.keys)
        spy.keys.clear()
        embedding = model.transform(f["X"])

    # Never row by row: every read is a slice or one increasing list of distinct rows.
    assert not any(isinstance(k, (int, np.integer)) for k in fit_keys)
    lists = [np.asarray(k) for k in fit_keys if not isinstance(k, slice)]
    assert all(k.ndim == 1 and (np.diff(k) > 0).all() for k in lists)
    # Two epochs, plus up to two batches Keras reads ahead to learn the input signature.
    batches_read = 2 * n_batches
    assert len(lists) <= batches_read + 2, "at most one index-list request per batch"
    blocks = [(start, min(start + BATCH, n)) for start in range(0, n, BATCH)]
    slices = [(k.start, k.stop) for k in fit_keys if isinstance(k, slice)]
    if shuffle_mode in ("batch", False):
        # Each batch of anchors is one contiguous block, read with one slice covering it.
        for lo, hi in blocks:
            covering = [s for s in slices if s[0] <= lo and s[1] >= hi]
            assert len(covering) >= 2, f"anchor block {lo}:{hi} not read as a slice in each epoch"
        # ... and no anchor of the block is in an index list of the same batch.
        block_reads = [s for s in slices if (s[1] - s[0]) >= BATCH - 1]
        assert len(block_reads) >= batches_read
    # Transform streams slices only.
    assert spy.keys and all(isinstance(k, slice) for k in spy.keys)
    assert embedding.shape == (n, 2) and np.isfinite(embedding).all()


def test_batch_mode_reads_anchors_with_one_slice_per_batch(h5_file, monkeypatch):
    from ivis.nn.training import TripletBatches

    monkeypatch.setattr(read_plan, "MAX_GAP_BYTES", 0)
    with h5py.File(h5_file, "r") as f:
        source = as_row_source(f["X"])
        neighbours = np.random.default_rng(0).integers(0, source.n_rows, (source.n_rows, 5))
        batches = TripletBatches(source, neighbours, BATCH, seed=1, shuffle_mode="batch")
        spy = ReadSpy(monkeypatch)
        for i in range(len(batches)):
            spy.keys.clear()
            (anchors, positives, negatives), _ = batches[i]
            anchor_ids = np.asarray(batches._order[i * BATCH:(i + 1) * BATCH])
            np.testing.assert_array_equal(anchors, f["X"][anchor_ids.min():anchor_ids.max() + 1])
            # One slice holds the anchors; the scattered rows come in at most one list.
            assert any(
                k.start <= anchor_ids.min() and k.stop > anchor_ids.max() for k in spy.slices()
            )
            assert len(spy.index_lists()) <= 1


def test_plan_reads_uses_slices_for_runs_and_one_list_for_the_rest():
    idx = np.array([3, 10, 11, 12, 13, 40, 41, 90, 200])
    slices, scattered = plan_reads(idx, max_gap=0)
    assert [(lo, hi) for _, _, lo, hi in slices] == [(10, 14), (40, 42)]
    np.testing.assert_array_equal(idx[scattered], [3, 90, 200])
    slices, scattered = plan_reads(idx, max_gap=30)
    assert [(lo, hi) for _, _, lo, hi in slices] == [(3, 42)] and list(idx[scattered]) == [90, 200]
    many = np.arange(0, 200, 2)
    slices, scattered = plan_reads(many, max_gap=0)
    assert slices == [] and len(scattered) == 100
    runs = np.concatenate([np.arange(s, s + 2) for s in range(0, 1000, 10)])
    slices, scattered = plan_reads(runs, max_gap=0)
    assert len(slices) == read_plan.MAX_SLICES_PER_READ and len(scattered) == len(runs) - 2 * len(slices)


@pytest.mark.parametrize("name", ["X", "gzip"])
@pytest.mark.parametrize("max_gap_bytes", [0, 32 * 2**10])
def test_hdf5_batches_come_back_in_requested_order(h5_file, clusters, monkeypatch, name, max_gap_bytes):
    monkeypatch.setattr(read_plan, "MAX_GAP_BYTES", max_gap_bytes)
    X = clusters[0]
    idx = np.array([7, 3, 3, 399, 0, 1, 2, 250, 251, 7, 120])
    with h5py.File(h5_file, "r") as f:
        source = as_row_source(f[name])
        np.testing.assert_array_equal(source.get_batch(idx), X[idx])
        np.testing.assert_array_equal(source.get_batch(np.arange(32, 64)), X[32:64])
        assert source.get_batch([]).shape == (0, 12)


class CountingDataset(IndexableDataset):
    """An in-memory connector that records its batched reads and forbids row reads."""

    def __init__(self, X):
        self.X = X
        self.calls = []

    @property
    def shape(self):
        return self.X.shape

    def __getitem__(self, idx):
        raise AssertionError("rows must never be read one at a time")

    def get_batch(self, idx_seq):
        self.calls.append(np.asarray(idx_seq))
        return self.X[np.asarray(idx_seq)]


def test_indexable_dataset_gets_one_sorted_request_per_batch(clusters):
    X = clusters[0]
    dataset = CountingDataset(X)
    model = Ivis(**FAST).fit(dataset, shuffle_mode=True)
    n_batches = -(-len(X) // BATCH)
    training_calls = [c for c in dataset.calls if len(c) <= 3 * BATCH]
    # One call per batch over two epochs (and up to two batches Keras reads ahead).
    assert 2 * n_batches <= len(training_calls) <= 2 * n_batches + 2
    assert all((np.diff(c) > 0).all() for c in dataset.calls)
    np.testing.assert_allclose(model.transform(dataset), model.transform(X), atol=1e-5)


def test_memmap_of_another_dtype_is_streamed_not_loaded(tmp_path, clusters):
    X = np.lib.format.open_memmap(tmp_path / "x.npy", mode="w+", dtype=np.float64, shape=clusters[0].shape)
    X[:] = clusters[0]
    assert isinstance(as_row_source(X), IndexedSource)
    assert not isinstance(as_row_source(clusters[0]), IndexedSource)
    np.testing.assert_array_equal(as_row_source(X).get_batch([5, 1]), clusters[0][[5, 1]])


# ---------------------------------------------------------------- bounded memory


def test_epoch_anchor_order_is_lazy_or_int32():
    rng = np.random.default_rng
    for mode in ("batch", False):
        anchors = EpochAnchors(10_000, 128, mode, rng(0))
        assert anchors._permutation is None
        assert anchors._block_starts is None or len(anchors._block_starts) == 10_000 // 128
    shuffled = EpochAnchors(10_000, 128, True, rng(0))
    assert shuffled._permutation.dtype == np.int32
    np.testing.assert_array_equal(shuffled._permutation, rng(0).permutation(10_000))
    for mode in (True, "batch", False):
        order = epoch_anchor_order(1000, 64, mode, rng(3))
        lazy = EpochAnchors(1000, 64, mode, rng(3))
        np.testing.assert_array_equal(np.concatenate([lazy[i:i + 64] for i in range(0, 1000, 64)]), order)
        assert sorted(order) == list(range(1000))


def test_precomputed_neighbours_are_int32(fitted, clusters):
    assert fitted.neighbour_matrix_.dtype == np.int32
    assert fitted.neighbour_matrix_.shape == (len(clusters[0]), FAST["k"])


# ------------------------------------------------------------- streaming transform


def test_transform_to_hdf5_dataset_and_new_dataset(fitted, clusters, h5_file, tmp_path):
    X = clusters[0]
    expected = fitted.transform(X)
    out_path = tmp_path / "out.h5"
    with h5py.File(h5_file, "r") as f:
        result = fitted.transform_to(f["X"], (str(out_path), "embedding"), chunk_rows=64)
    assert result == (str(out_path), "embedding")
    with h5py.File(out_path, "r") as g:
        assert g["embedding"].dtype == np.float32
        np.testing.assert_allclose(g["embedding"][:], expected, atol=1e-5)
    with h5py.File(out_path, "r+") as g:
        target = g.create_dataset("again", shape=expected.shape, dtype="float64")
        assert fitted.transform_to(X, target, chunk_rows=50) is target
        np.testing.assert_allclose(target[:], expected, atol=1e-5)
    with pytest.raises(ValueError, match="already holds 'embedding'"):
        fitted.transform_to(X, (str(out_path), "embedding"))


def test_transform_to_memmap_and_npy_path(fitted, clusters, tmp_path):
    X = clusters[0]
    expected = fitted.transform(X)
    memmap = np.memmap(tmp_path / "e.dat", dtype=np.float32, mode="w+", shape=expected.shape)
    assert fitted.transform_to(X, memmap, chunk_rows=33) is memmap
    np.testing.assert_allclose(np.asarray(memmap), expected, atol=1e-5)
    path = str(tmp_path / "e.npy")
    assert fitted.transform_to(sp.csr_matrix(X), path, chunk_rows=100) == path
    np.testing.assert_allclose(np.load(path, mmap_mode="r"), expected, atol=1e-5)


def test_transform_to_rejects_bad_outputs(fitted, clusters, tmp_path):
    X = clusters[0]
    with pytest.raises(ValueError, match=r"shape \(10, 2\).*needs shape \(400, 2\)"):
        fitted.transform_to(X, np.zeros((10, 2), dtype=np.float32))
    with pytest.raises(ValueError, match="read-only"):
        fitted.transform_to(X, _readonly())
    with pytest.raises(ValueError, match="Name the dataset"):
        fitted.transform_to(X, str(tmp_path / "e.h5"))
    with pytest.raises(TypeError, match="floating-point"):
        fitted.transform_to(X, np.zeros((400, 2), dtype=np.int64))
    with pytest.raises(ValueError, match="chunk_rows must be >= 1"):
        fitted.transform_to(X, np.zeros((400, 2), dtype=np.float32), chunk_rows=0)
    path = tmp_path / "ro.h5"
    with h5py.File(path, "w") as f:
        f.create_dataset("e", shape=(400, 2), dtype="float32")
    with h5py.File(path, "r") as f:
        with pytest.raises(ValueError, match="read-only"):
            fitted.transform_to(X, f["e"])
        closed = f["e"]
    with pytest.raises(ValueError, match="closed file"):
        fitted.transform_to(X, closed)


def _readonly():
    array = np.zeros((400, 2), dtype=np.float32)
    array.setflags(write=False)
    return array


def test_transform_generator_matches_transform_and_is_lazy(fitted, clusters):
    X = clusters[0]
    read = []

    def chunks():
        for start in range(0, len(X), 77):
            read.append(start)
            yield X[start:start + 77]

    generator = fitted.transform_generator(chunks())
    assert read == []  # nothing read before the first embedding is asked for
    first = next(generator)
    assert read == [0] and first.shape == (77, 2)
    rest = list(generator)
    np.testing.assert_allclose(np.concatenate([first, *rest]), fitted.transform(X), atol=1e-5)
    with pytest.raises(NotFittedError):
        Ivis().transform_generator([X])
    with pytest.raises(TypeError):
        fitted.transform_generator(5)
    with pytest.raises(ValueError, match="2-dimensional"):
        next(fitted.transform_generator([X[0]]))


# ------------------------------------------------------------------ sparse data


def _wide_sparse(n_rows=1200, n_features=6000, seed=0):
    """Sparse non-negative rows in six groups, each group using its own columns mostly."""
    rng = np.random.default_rng(seed)
    groups = rng.integers(0, 6, n_rows)
    profiles = (rng.random((6, n_features)) < 0.01) * rng.gamma(1.0, 1.0, (6, n_features))
    rate = profiles[groups] * 2.0 + (rng.random((n_rows, n_features)) < 0.002)
    return sp.csr_matrix(rng.poisson(rate).astype(np.float32)), groups


def test_wide_sparse_neighbours_use_a_projection_with_high_recall(tmp_path):
    from sklearn.neighbors import NearestNeighbors

    from ivis.data.neighbour_retrieval import AnnoyKnnMatrix
    from ivis.data.neighbour_retrieval.knn import ProjectedKnnMatrix
    from ivis.data.projection import PROJECTION_DIMS, PROJECTION_MIN_FEATURES

    X, _ = _wide_sparse()
    assert X.shape[1] > PROJECTION_MIN_FEATURES
    k = 10
    matrix = AnnoyKnnMatrix.build(X, str(tmp_path / "p.ann"), k=k, verbose=0, random_state=0)
    assert isinstance(matrix, ProjectedKnnMatrix) and matrix.index.f == PROJECTION_DIMS
    neighbours = matrix.get_neighbour_indices()
    assert neighbours.dtype == np.int32 and neighbours.shape == (X.shape[0], k)
    assert not (neighbours == np.arange(X.shape[0])[:, None]).any()
    exact = NearestNeighbors(n_neighbors=k + 1, metric="cosine").fit(X).kneighbors(return_distance=False)
    exact = [row[row != i][:k] for i, row in enumerate(exact)]
    assert np.mean([len(set(a) & set(b)) / k for a, b in zip(neighbours, exact)]) >= 0.95
    # Rows queried one batch at a time (precompute=False) are re-ranked but not refined.
    on_demand = matrix.get_batch(np.arange(X.shape[0]))
    assert np.mean([len(set(a) & set(b)) / k for a, b in zip(on_demand, exact)]) >= 0.85
    # Reloading the saved index needs the data, to know it holds a projection.
    loaded = AnnoyKnnMatrix.load(str(tmp_path / "p.ann"), X.shape, k=k, data=X, verbose=0)
    assert isinstance(loaded, ProjectedKnnMatrix)
    np.testing.assert_array_equal(loaded.get_batch([3]), matrix.get_batch([3]))


def test_sparse_fit_and_transform_densify_only_small_chunks(monkeypatch):
    X, _ = _wide_sparse(n_rows=300)
    monkeypatch.setattr(row_sources, "MAX_CHUNK_BYTES", 2**20)  # 43 rows of 6,000 float32 values
    shapes = []
    original = sp.csr_matrix.toarray

    def spy(matrix, *args, **kwargs):
        shapes.append(matrix.shape)
        return original(matrix, *args, **kwargs)

    monkeypatch.setattr(sp.csr_matrix, "toarray", spy)
    model = Ivis(k=5, epochs=1, batch_size=BATCH, verbose=0, random_state=0)
    embedding = model.fit(sp.csc_matrix(X)).transform(X)
    assert embedding.shape == (300, 2) and np.isfinite(embedding).all()
    # Wide rows train and embed through the sparse first layer: nothing larger is densified.
    assert all(rows <= 3 * BATCH for rows, _ in shapes)


# ---------------------------------------------------------- database connector


def test_sqlite_dataset_end_to_end(tmp_path, clusters):
    X = clusters[0]
    path = tmp_path / "cells.db"
    columns = [f"gene_{i}" for i in range(X.shape[1])]
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE expression ({', '.join(c + ' REAL' for c in columns)})")
        conn.executemany(f"INSERT INTO expression VALUES ({', '.join('?' * len(columns))})", X.tolist())
    conn.close()
    with SQLiteDataset(path, "expression") as dataset:
        assert dataset.shape == X.shape
        model = Ivis(**FAST).fit(dataset, shuffle_mode="batch")
        from_db = model.transform(dataset)
        streamed = np.concatenate(list(model.transform_generator(dataset[i:i + 100] for i in range(0, 400, 100))))
    np.testing.assert_allclose(from_db, model.transform(X), atol=1e-5)
    np.testing.assert_allclose(streamed, from_db, atol=1e-5)
    # Training on the table learnt the clusters: nearest embedded neighbours share labels.
    from sklearn.neighbors import KNeighborsClassifier

    accuracy = KNeighborsClassifier(5).fit(from_db[::2], clusters[1][::2]).score(from_db[1::2], clusters[1][1::2])
    assert accuracy > 0.9


# ------------------------------------------------------------------------ errors


def test_closed_hdf5_file_is_reported_in_fit_and_transform(h5_file, fitted):
    with h5py.File(h5_file, "r") as f:
        closed = f["X"]
    with pytest.raises(ValueError, match="closed file"):
        Ivis(**FAST).fit(closed)
    with pytest.raises(ValueError, match="closed file"):
        fitted.transform(closed)
    with pytest.raises(ValueError, match="closed file"):
        fitted.transform_to(closed, np.zeros((400, 2), dtype=np.float32))


def test_data_with_fewer_than_two_dimensions_is_rejected(h5_file):
    with h5py.File(h5_file, "r") as f:
        with pytest.raises(ValueError, match="at least 2-dimensional"):
            Ivis(**FAST).fit(f["vector"])

    class Flat(CountingDataset):
        pass

    with pytest.raises(ValueError, match="at least 2-dimensional"):
        Ivis(**FAST).fit(Flat(np.arange(50.0)))


def test_wrong_batch_shape_from_a_connector_is_reported(clusters):
    class Truncating(CountingDataset):
        def get_batch(self, idx_seq):
            return self.X[np.asarray(idx_seq)][:, :-1]

    with pytest.raises(ValueError, match=r"get_batch of Truncating returned shape \(\d+, 11\).*expected \(\d+, 12\)"):
        Ivis(**FAST).fit(Truncating(clusters[0]))


def _images(tmp_path, sizes):
    Image = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, size=(*size, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_images_of_different_sizes_are_resized(tmp_path):
    paths = _images(tmp_path, [(8, 8), (12, 5), (30, 17)] * 12)
    dataset = FlattenedImageDataset(paths, (8, 8), n_jobs=1)
    embedding = Ivis(k=3, epochs=1, batch_size=8, verbose=0, random_state=0).fit_transform(dataset)
    assert embedding.shape == (36, 2)


def test_unreadable_image_is_named(tmp_path):
    paths = _images(tmp_path, [(8, 8)] * 20)
    with open(paths[7], "wb") as handle:
        handle.write(b"not an image")
    with pytest.raises(OSError, match="img7.png"):
        Ivis(k=3, epochs=1, batch_size=8, verbose=0).fit(FlattenedImageDataset(paths, (8, 8), n_jobs=1))


def test_preprocessing_that_changes_the_shape_is_reported(tmp_path):
    paths = _images(tmp_path, [(8, 8)] * 20)
    dataset = FlattenedImageDataset(paths, (8, 8), n_jobs=1, preprocessing_function=lambda img: img[:4])
    with pytest.raises(ValueError, match=r"returned shape \(\d+, 96\).*expected \(\d+, 192\)"):
        Ivis(k=3, epochs=1, batch_size=8, verbose=0).fit(dataset)


# ------------------------------------------------------------------ command line


@pytest.mark.parametrize("fmt", ["npy", "csv"])
def test_command_line_streams_an_hdf5_dataset(h5_file, clusters, tmp_path, monkeypatch, fmt):
    from ivis import cli

    def in_memory(*args, **kwargs):
        raise AssertionError("HDF5 input must be embedded chunk by chunk, not in memory")

    monkeypatch.setattr(Ivis, "transform", in_memory)
    monkeypatch.setattr(Ivis, "fit_transform", in_memory)
    out = tmp_path / "out"
    where = [f"{h5_file}:X"] if fmt == "npy" else [str(h5_file), "--dataset", "X"]
    code = cli.main([
        *where, "-o", str(out), "--format", fmt, "-k", "5", "--epochs", "1", "--batch-size", "32",
        "--shuffle-mode", "batch", "--random-state", "0", "--no-plot", "-q", "--save-model", str(tmp_path / "m"),
    ])
    assert code == 0
    path = out / f"embedding.{fmt}"
    written = np.load(path) if fmt == "npy" else np.loadtxt(path, delimiter=",", skiprows=1)
    assert written.shape == (len(clusters[0]), 2)
    assert not list(out.glob("*partial*"))
    monkeypatch.undo()
    from ivis import load_model

    np.testing.assert_allclose(written, load_model(str(tmp_path / "m")).transform(clusters[0]), atol=1e-4)


def test_refining_through_neighbours_of_neighbours_improves_them():
    from ivis.data.projection import refine_neighbours, rerank

    X, _ = _wide_sparse(n_rows=400)
    rng = np.random.default_rng(0)
    k = 8
    noisy = np.stack([rng.choice(np.delete(np.arange(400), i), k, replace=False) for i in range(400)])
    noisy = rerank(X, np.arange(400), noisy, k, "euclidean")
    sq = np.asarray(X.multiply(X).sum(axis=1)).ravel()
    dist = sq[:, None] + sq[None, :] - 2 * (X @ X.T).toarray()

    def total(nb):
        return np.take_along_axis(dist, nb.astype(np.int64), axis=1).sum()

    refined = refine_neighbours(X, noisy.copy(), k, "euclidean", rows_per_step=64)
    assert refined.dtype == np.int32
    assert not (refined == np.arange(400)[:, None]).any()
    assert all(len(set(row)) == k for row in refined)
    assert total(refined) < total(noisy)
    np.testing.assert_array_equal(refined, refine_neighbours(X, noisy.copy(), k, "euclidean", rows_per_step=64))
