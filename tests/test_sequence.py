"""Tests of the indexable datasets: image files, SQLite tables and the batch shape check."""

import os
import pickle
import sqlite3
import subprocess
import sys
import threading

import numpy as np
import pytest

from ivis.data.sequence import FlattenedImageDataset, ImageDataset, IndexableDataset
from ivis.data.sequence.sqlite import SQLiteDataset
from ivis.data.sequence.validation import checked_batch

Image = pytest.importorskip("PIL.Image")

RESIZE_METHODS = ["bilinear", "nearest", "bicubic", "lanczos", "area"]


def _write(path, array):
    Image.fromarray(array).save(path)
    return str(path)


@pytest.fixture
def image_files(tmp_path):
    """Six images of different sizes, modes and formats, each with distinct content."""
    rng = np.random.default_rng(0)
    specs = [
        ("a.png", (12, 20, 3)),
        ("b.png", (30, 18)),  # grayscale
        ("c.jpg", (16, 16, 3)),
        ("d.png", (9, 31, 4)),  # RGBA
        ("e.jpg", (40, 25)),  # grayscale JPEG
        ("f.png", (16, 16, 3)),  # already the target size
    ]
    return [
        _write(tmp_path / name, rng.integers(0, 256, size=shape, dtype=np.uint8))
        for name, shape in specs
    ]


def test_importing_the_connectors_is_light():
    # A fresh interpreter: other test modules may already have loaded TensorFlow here.
    code = (
        "import sys, ivis.data.sequence, ivis.data.sequence.sqlite, ivis.data.sequence.validation;"
        "heavy = [m for m in ('tensorflow', 'keras', 'PIL') if m in sys.modules];"
        "assert not heavy, heavy"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    subprocess.run([sys.executable, "-c", code], check=True, env=env)


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_image_shapes_and_color_modes(image_files, color_mode, channels):
    dataset = ImageDataset(image_files, (16, 24), color_mode=color_mode, n_jobs=1)
    assert isinstance(dataset, IndexableDataset)
    assert dataset.shape == (6, 16, 24, channels)
    assert len(dataset) == 6
    assert dataset[1].shape == (16, 24, channels)
    batch = dataset.get_batch([0, 1, 2, 3, 4, 5])
    assert batch.shape == (6, 16, 24, channels)
    assert batch.dtype == np.float32
    assert batch.min() >= 0 and batch.max() <= 255


def test_grayscale_and_rgb_agree_on_a_gray_image(tmp_path):
    path = _write(tmp_path / "gray.png", np.full((8, 8), 77, dtype=np.uint8))
    gray = ImageDataset([path], (8, 8), color_mode="grayscale")[0]
    rgb = ImageDataset([path], (8, 8), color_mode="rgb")[0]
    rgba = ImageDataset([path], (8, 8), color_mode="rgba")[0]
    assert np.all(gray == 77) and np.all(rgb == 77)
    assert np.all(rgba[..., :3] == 77) and np.all(rgba[..., 3] == 255)


def test_image_read_without_resize_is_exact(tmp_path):
    pixels = np.random.default_rng(1).integers(0, 256, size=(10, 14, 3), dtype=np.uint8)
    path = _write(tmp_path / "exact.png", pixels)
    dataset = ImageDataset([path], (10, 14), dtype=np.uint8)
    np.testing.assert_array_equal(dataset[0], pixels)
    assert dataset[0].dtype == np.uint8


def test_16_bit_images_are_scaled_not_clipped(tmp_path):
    pixels = np.array([[0, 257 * 100, 65535]], dtype=np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(pixels).save(path)
    img = ImageDataset([str(path)], (1, 3), color_mode="grayscale")[0]
    np.testing.assert_array_equal(img[0, :, 0], [0, 100, 255])


@pytest.mark.parametrize("method", RESIZE_METHODS)
def test_each_resize_method(image_files, method):
    dataset = ImageDataset(image_files, (11, 13), resize_method=method, n_jobs=1)
    batch = dataset.get_batch(range(len(image_files)))
    assert batch.shape == (6, 11, 13, 3)
    assert np.isfinite(batch).all()


def test_resize_methods_differ_and_keep_constant_images(tmp_path):
    pixels = np.zeros((8, 8), dtype=np.uint8)
    pixels[::2, ::2] = 255  # a checkerboard-like pattern that filters treat differently
    textured = _write(tmp_path / "textured.png", pixels)
    flat = _write(tmp_path / "flat.png", np.full((8, 8), 200, dtype=np.uint8))
    results = {}
    for method in RESIZE_METHODS:
        dataset = ImageDataset(
            [textured, flat], (5, 5), color_mode="grayscale", resize_method=method
        )
        results[method] = dataset[0]
        np.testing.assert_allclose(dataset[1], 200)
    assert not np.array_equal(results["nearest"], results["area"])
    # Nearest neighbour only copies source values.
    assert set(np.unique(results["nearest"])) <= {0.0, 255.0}


def test_unknown_resize_method_lists_valid_ones(image_files):
    with pytest.raises(ValueError, match="bilinear, nearest, bicubic, lanczos, area"):
        ImageDataset(image_files, (8, 8), resize_method="cubic-ish")


def test_unknown_color_mode_lists_valid_ones(image_files):
    with pytest.raises(ValueError, match="grayscale, rgb, rgba"):
        ImageDataset(image_files, (8, 8), color_mode="cmyk")


def test_aspect_ratio_is_kept_by_padding(tmp_path):
    # 10 rows x 20 columns into 16 x 16: scaled to 8 x 16, then 4 zero rows above and below.
    path = _write(tmp_path / "wide.png", np.full((10, 20, 3), 200, dtype=np.uint8))
    img = ImageDataset([path], (16, 16), preserve_aspect_ratio=True)[0]
    assert img.shape == (16, 16, 3)
    assert np.all(img[:4] == 0) and np.all(img[12:] == 0)
    np.testing.assert_allclose(img[4:12], 200)


def test_aspect_ratio_pads_columns_of_a_tall_image(tmp_path):
    path = _write(tmp_path / "tall.png", np.full((20, 10), 90, dtype=np.uint8))
    img = ImageDataset([path], (16, 16), color_mode="grayscale", preserve_aspect_ratio=True)[0]
    assert np.all(img[:, :4] == 0) and np.all(img[:, 12:] == 0)
    np.testing.assert_allclose(img[:, 4:12], 90)


def test_without_aspect_ratio_the_image_is_stretched(tmp_path):
    path = _write(tmp_path / "wide.png", np.full((10, 20, 3), 200, dtype=np.uint8))
    img = ImageDataset([path], (16, 16))[0]
    np.testing.assert_allclose(img, 200)


def test_preprocessing_function_is_applied_after_resize(image_files):
    seen = []

    def scale(img):
        seen.append(img.shape)
        return img / 255.0

    plain = ImageDataset(image_files, (8, 8), n_jobs=1).get_batch([0, 3])
    scaled = ImageDataset(image_files, (8, 8), preprocessing_function=scale, n_jobs=1)
    np.testing.assert_allclose(scaled.get_batch([0, 3]), plain / 255.0, rtol=1e-6)
    assert seen == [(8, 8, 3), (8, 8, 3)]


def test_dtype_is_applied(image_files):
    batch = ImageDataset(image_files, (8, 8), dtype=np.uint8).get_batch([0, 1])
    assert batch.dtype == np.uint8
    assert ImageDataset(image_files, (8, 8), dtype="float64")[0].dtype == np.float64


def test_parallel_and_serial_reads_are_identical(image_files):
    order = [5, 0, 3, 3, 1, 4, 2, 0, -1]
    serial = ImageDataset(image_files, (14, 9), n_jobs=1).get_batch(order)
    for n_jobs in (-1, 2, 4):
        parallel = ImageDataset(image_files, (14, 9), n_jobs=n_jobs).get_batch(order)
        np.testing.assert_array_equal(parallel, serial)
    # Rows follow the requested order, repeats included.
    np.testing.assert_array_equal(serial[2], serial[3])
    np.testing.assert_array_equal(serial[0], serial[8])


def test_indexing_by_slice_and_list(image_files):
    dataset = ImageDataset(image_files, (8, 8))
    np.testing.assert_array_equal(dataset[1:4], dataset.get_batch([1, 2, 3]))
    np.testing.assert_array_equal(dataset[[4, 0]], dataset.get_batch([4, 0]))
    np.testing.assert_array_equal(dataset[np.array([2])], dataset.get_batch([2]))
    np.testing.assert_array_equal(dataset[-1], dataset[5])
    with pytest.raises(IndexError):
        dataset[6]
    with pytest.raises(IndexError):
        dataset.get_batch([0, 99])


def test_flattened_dataset(image_files):
    images = ImageDataset(image_files, (6, 7), n_jobs=1)
    flat = FlattenedImageDataset(image_files, (6, 7))
    assert flat.n_jobs is None
    assert flat.shape == (6, 6 * 7 * 3)
    assert flat[2].shape == (6 * 7 * 3,)
    batch = flat.get_batch([3, 1])
    assert batch.shape == (2, 6 * 7 * 3)
    np.testing.assert_array_equal(batch, images.get_batch([3, 1]).reshape(2, -1))
    assert flat[0:2].shape == (2, 6 * 7 * 3)
    assert checked_batch(flat, [0, 5]).shape == (2, 126)
    gray = FlattenedImageDataset(image_files, (6, 7), color_mode="grayscale", n_jobs=2)
    assert gray.get_batch([0, 1, 2]).shape == (3, 42)


def test_missing_file_is_named(tmp_path, image_files):
    missing = str(tmp_path / "nowhere.png")
    dataset = ImageDataset([*image_files, missing], (8, 8))
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        dataset[6]
    with pytest.raises(FileNotFoundError, match="nowhere.png"):
        dataset.get_batch([0, 6, 1])


def test_unreadable_file_is_named(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(OSError, match="broken.png"):
        ImageDataset([str(bad)], (8, 8))[0]


def test_empty_file_list_is_rejected():
    with pytest.raises(ValueError, match="empty"):
        ImageDataset([], (8, 8))


@pytest.mark.parametrize(
    "img_shape", [(8,), (8, 8, 3), (0, 8), (8, -1), (8.0, 8), "88", None, (True, 8)]
)
def test_invalid_img_shape_is_rejected(image_files, img_shape):
    with pytest.raises(ValueError, match="img_shape"):
        ImageDataset(image_files, img_shape)


def test_invalid_n_jobs_is_rejected(image_files):
    with pytest.raises(ValueError, match="n_jobs"):
        ImageDataset(image_files, (8, 8), n_jobs=0)


def test_pathlib_paths_are_accepted(tmp_path):
    from pathlib import Path

    path = Path(_write(tmp_path / "p.png", np.zeros((4, 4, 3), dtype=np.uint8)))
    assert ImageDataset([path], (4, 4))[0].shape == (4, 4, 3)


# --- SQLite -------------------------------------------------------------------------------

N_ROWS, N_COLS = 500, 8
COLUMNS = [f"f{j}" for j in range(N_COLS)]


@pytest.fixture
def database(tmp_path):
    """A 500 x 8 table of floats, with its NumPy copy."""
    data = np.random.default_rng(2).normal(size=(N_ROWS, N_COLS)).astype(np.float32)
    path = tmp_path / "data.db"
    with sqlite3.connect(path) as conn:
        conn.execute(f"CREATE TABLE points ({', '.join(c + ' REAL' for c in COLUMNS)})")
        conn.executemany(
            f"INSERT INTO points VALUES ({', '.join('?' * N_COLS)})", data.astype(float).tolist()
        )
    conn.close()
    return str(path), data


def test_sqlite_shape_and_rows_in_requested_order(database):
    path, data = database
    dataset = SQLiteDataset(path, "points")
    assert isinstance(dataset, IndexableDataset)
    assert dataset.shape == (N_ROWS, N_COLS)
    assert len(dataset) == N_ROWS
    assert dataset.columns == COLUMNS
    order = [499, 0, 17, 17, 250, 3, -1, 42]
    batch = dataset.get_batch(order)
    assert batch.dtype == np.float32
    np.testing.assert_array_equal(batch, data[order])
    np.testing.assert_array_equal(dataset[10], data[10])
    np.testing.assert_array_equal(dataset[5:9], data[5:9])
    np.testing.assert_array_equal(dataset.get_batch(np.arange(N_ROWS)[::-1]), data[::-1])
    assert dataset.get_batch([]).shape == (0, N_COLS)


def test_sqlite_reads_a_batch_with_one_query(database):
    path, data = database
    dataset = SQLiteDataset(path, "points")
    statements = []
    dataset._connect().set_trace_callback(statements.append)
    dataset.get_batch([5, 1, 400, 1])
    assert len([s for s in statements if s.lstrip().upper().startswith("SELECT")]) == 1


def test_sqlite_column_subset(database):
    path, data = database
    dataset = SQLiteDataset(path, "points", columns=["f3", "f0"])
    assert dataset.shape == (N_ROWS, 2)
    np.testing.assert_array_equal(dataset.get_batch([7, 2]), data[[7, 2]][:, [3, 0]])


def test_sqlite_rows_follow_rowid_order_with_gaps(database):
    path, data = database
    with sqlite3.connect(path) as conn:
        conn.execute("DELETE FROM points WHERE rowid % 7 = 0")
    conn.close()
    kept = data[[i for i in range(N_ROWS) if (i + 1) % 7 != 0]]
    dataset = SQLiteDataset(path, "points")
    assert dataset.shape == (len(kept), N_COLS)
    order = [len(kept) - 1, 0, 6, 6, 100]
    np.testing.assert_array_equal(dataset.get_batch(order), kept[order])


def test_sqlite_key_column(tmp_path):
    path = str(tmp_path / "keyed.db")
    ids = [30, 10, 20, 50]  # not consecutive: positions follow ascending key order
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, x REAL, y REAL) WITHOUT ROWID")
        conn.executemany("INSERT INTO t VALUES (?, ?, ?)", [(i, i + 0.5, -i) for i in ids])
    conn.close()
    dataset = SQLiteDataset(path, "t", key="id")
    assert dataset.columns == ["x", "y"]
    expected = [[50.5, -50], [10.5, -10], [10.5, -10]]
    np.testing.assert_array_equal(dataset.get_batch([3, 0, 0]), expected)
    with pytest.raises(ValueError, match="rowid"):
        SQLiteDataset(path, "t")


def test_sqlite_view_needs_a_key(database):
    path, data = database
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE VIEW first_two AS SELECT f0, f1 FROM points")
    conn.close()
    with pytest.raises(ValueError, match="key="):
        SQLiteDataset(path, "first_two")
    dataset = SQLiteDataset(path, "first_two", key="f0")
    # Rows follow ascending key order.
    order = np.argsort(data[:, 0], kind="stable")
    np.testing.assert_array_equal(dataset.get_batch([0, 1]), data[order[:2]][:, 1:2])


def test_sqlite_duplicate_keys_are_rejected(tmp_path):
    path = str(tmp_path / "dups.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (id INTEGER, x REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1, 0.0), (1, 1.0), (2, 2.0)])
    conn.close()
    with pytest.raises(ValueError, match="unique"):
        SQLiteDataset(path, "t", key="id")


def test_sqlite_null_becomes_nan(tmp_path):
    path = str(tmp_path / "nulls.db")
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (a REAL, b REAL)")
        conn.executemany("INSERT INTO t VALUES (?, ?)", [(1.0, None), (2.0, 3.0)])
    conn.close()
    batch = SQLiteDataset(path, "t").get_batch([0, 1])
    assert np.isnan(batch[0, 1]) and batch[1, 1] == 3.0


def test_sqlite_bad_table_lists_valid_names(database):
    path, _ = database
    with pytest.raises(ValueError, match="points"):
        SQLiteDataset(path, "points; DROP TABLE points")


def test_sqlite_bad_column_lists_valid_names(database):
    path, _ = database
    with pytest.raises(ValueError, match="f0, f1, f2"):
        SQLiteDataset(path, "points", columns=["f0", 'f1" FROM points; --'])
    with pytest.raises(ValueError, match="key column"):
        SQLiteDataset(path, "points", key="nope")


def test_sqlite_missing_file_is_not_created(tmp_path):
    path = tmp_path / "absent.db"
    with pytest.raises(FileNotFoundError, match="absent.db"):
        SQLiteDataset(str(path), "points")
    assert not path.exists()


def test_sqlite_index_errors(database):
    path, _ = database
    dataset = SQLiteDataset(path, "points")
    with pytest.raises(IndexError):
        dataset.get_batch([0, N_ROWS])
    with pytest.raises(TypeError):
        dataset.get_batch([0.5])


def test_sqlite_is_usable_from_threads_and_after_pickling(database):
    path, data = database
    dataset = SQLiteDataset(path, "points")
    results, errors = {}, []

    def read(i):
        try:
            for _ in range(20):
                results[i] = dataset.get_batch([i, i + 100, i + 200])
        except Exception as err:  # collected so the test fails in the main thread
            errors.append(err)

    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    for i, batch in results.items():
        np.testing.assert_array_equal(batch, data[[i, i + 100, i + 200]])

    copy = pickle.loads(pickle.dumps(dataset))
    np.testing.assert_array_equal(copy.get_batch([1, 2]), data[[1, 2]])
    dataset.close()
    np.testing.assert_array_equal(dataset[3], data[3])  # reconnects after close


# --- checked_batch ------------------------------------------------------------------------


class _WrongRows(IndexableDataset):
    """Promises rows of 4 values but returns 3."""

    shape = (10, 4)

    def __getitem__(self, idx):
        return np.zeros(3)


class _WrongCount(IndexableDataset):
    """Drops the last requested row."""

    shape = (10, 4)

    def __getitem__(self, idx):
        return np.zeros(4)

    def get_batch(self, idx_seq):
        return super().get_batch(list(idx_seq)[:-1])


def test_checked_batch_passes_valid_batches(database):
    path, data = database
    batch = checked_batch(SQLiteDataset(path, "points"), [3, 1])
    np.testing.assert_array_equal(batch, data[[3, 1]])


def test_checked_batch_rejects_wrong_row_shape():
    message = r"get_batch of _WrongRows returned shape \(2, 3\) for 2 indices; expected \(2, 4\)"
    with pytest.raises(ValueError, match=message):
        checked_batch(_WrongRows(), [0, 1])


def test_checked_batch_rejects_wrong_row_count():
    message = r"_WrongCount returned shape \(2, 4\) for 3 indices; expected \(3, 4\)"
    with pytest.raises(ValueError, match=message):
        checked_batch(_WrongCount(), [0, 1, 2])


def test_checked_batch_rejects_ragged_rows():
    class Ragged(IndexableDataset):
        shape = (3, 2)

        def __getitem__(self, idx):
            return np.zeros(idx + 1)

        def get_batch(self, idx_seq):
            return [self[i] for i in idx_seq]

    with pytest.raises(ValueError, match="Ragged"):
        checked_batch(Ragged(), [0, 1])
