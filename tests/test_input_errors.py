"""Bad input gets an error (or a warning) that names the problem and the fix.

Also: an unseeded fit leaves the global random streams alone, and TensorFlow's start-up lines
stay hidden while real errors still reach the user.
"""

import os
import random
import sqlite3
import subprocess
import sys
import warnings

import numpy as np
import pytest
import scipy.sparse as sp

from conftest import FAST
from ivis import Ivis
from ivis.data.sequence.sqlite import SQLiteDataset

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def data():
    return np.random.default_rng(0).random((60, 4))


# --- X ---------------------------------------------------------------------------------------


def test_finite_value_beyond_float32_is_named_as_too_large(data):
    X = data.copy()
    X[7, 2] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow RuntimeWarning before the error
        with pytest.raises(ValueError, match=r"X holds 1e\+300 at row 7, column 2, beyond the float32 range") as error:
            Ivis(**FAST).fit(X)
    assert "NaN" not in str(error.value) and "Rescale" in str(error.value)


@pytest.mark.parametrize("kind", ["dataframe", "sparse", "memmap"])
def test_too_large_values_are_named_for_every_input_kind(data, kind, tmp_path):
    X = data.copy()
    X[11, 1] = -1e200
    if kind == "dataframe":
        X = pd.DataFrame(X)
    elif kind == "sparse":
        X = sp.csr_matrix(X)
    else:
        path = tmp_path / "x.npy"
        np.save(path, X)
        X = np.load(path, mmap_mode="r")
    with pytest.raises(ValueError, match=r"-1e\+200 at row 11, column 1, beyond the float32 range"):
        Ivis(**FAST).fit(X)


def test_nan_is_still_reported_as_nan(data):
    X = data.copy()
    X[3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite values .first at row 3, column 0"):
        Ivis(**FAST).fit(X)


def test_pandas_bool_columns_are_numbers_as_numpy_bools_are(data):
    frame = pd.DataFrame({"a": data[:, 0], "b": data[:, 1] > 0.5, "c": data[:, 2], "d": data[:, 3] > 0.2})
    as_numpy = frame.to_numpy(dtype=np.float32)
    from_frame = Ivis(**FAST).fit_transform(frame)
    np.testing.assert_allclose(from_frame, Ivis(**FAST).fit_transform(as_numpy), atol=1e-5)
    only_bools = frame[["b", "d"]]
    assert Ivis(**FAST).fit_transform(only_bools).shape == (60, 2)
    assert Ivis(**FAST).fit_transform(only_bools.to_numpy()).shape == (60, 2)


def test_sparse_bool_matrix_is_accepted(data):
    X = sp.csr_matrix(data > 0.5)
    assert Ivis(**FAST).fit_transform(X).shape == (60, 2)


def test_ragged_list_names_the_rows():
    X = [[0.0, 1.0, 2.0]] * 10 + [[1.0, 2.0]] + [[0.5, 0.5, 0.5]] * 10
    with pytest.raises(ValueError, match=r"X is a ragged list: row 0 has shape \(3,\) but row 10 has shape \(2,\)") as error:
        Ivis(**FAST).fit(X)
    assert "same number of values" in str(error.value)


# --- parameters ------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [-1, -2**40])
def test_negative_random_state_names_the_parameter(data, seed):
    with pytest.raises(ValueError, match=rf"random_state must be a seed >= 0.*got {seed}.*random_state=0"):
        Ivis(**{**FAST, "random_state": seed}).fit(data)


# --- Y ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "Y, message",
    [
        ("labels", r"Y must hold one target per row.*got a string, 'labels'.*Y=df\['labels'\]"),
        ({i: i % 2 for i in range(60)}, r"Y must hold one target per row.*got a dict.*list\(Y.values\(\)\)"),
        (3, r"Y must hold one target per row.*got a single value, 3"),
    ],
)
def test_y_that_is_not_one_target_per_row(data, Y, message):
    with pytest.raises(TypeError, match=message):
        Ivis(**FAST).fit(data, Y)


def test_ragged_y_names_the_rows(data):
    Y = [[0.0, 1.0]] * 30 + [[1.0]] + [[1.0, 0.0]] * 29
    with pytest.raises(ValueError, match=r"Y is a ragged list: row 0 has shape \(2,\) but row 30 has shape \(1,\)"):
        Ivis(**FAST, supervision_metric="mse").fit(data, Y)


@pytest.mark.parametrize("Y", [np.zeros(60), ["a"] * 30 + [None] * 30, pd.Categorical(["x"] * 60, categories=["x", "y"])])
def test_single_class_is_refused(data, Y):
    with pytest.raises(ValueError, match=r"Y has a single class .* at least two classes.*fit without Y.*'mae'"):
        Ivis(**FAST).fit(data, Y)


def test_two_classes_train(data):
    model = Ivis(**FAST).fit(data, np.arange(60) % 2)
    assert list(model.classes_) == [0, 1]


@pytest.mark.parametrize("Y", [np.linspace(0.1, 2.5, 60), list(np.linspace(0.1, 2.5, 60)[:-1]) + [None]])
def test_non_integer_targets_with_a_classification_metric(data, Y):
    # iris$Petal.Width in R: each distinct width would become a class.
    with pytest.raises(ValueError, match=r"non-integer numbers .*supervision_metric='mae'"):
        Ivis(**FAST).fit(data, Y)
    Ivis(**FAST, supervision_metric="mae").fit(data, np.linspace(0.1, 2.5, 60))


def test_integer_valued_floats_are_class_labels(data):
    model = Ivis(**FAST).fit(data, (np.arange(60) % 3).astype(float))
    assert model.classes_.tolist() == [0, 1, 2]


@pytest.mark.parametrize("metric", ["mae", "sparse_categorical_crossentropy"])
@pytest.mark.parametrize("bad", [np.inf, -np.inf])
def test_infinite_targets_are_refused_not_treated_as_missing(data, metric, bad):
    Y = (np.arange(60) % 2).astype(float)
    Y[5] = np.nan  # missing: allowed
    Y[9] = bad
    with pytest.raises(ValueError, match=r"Y holds an infinite value at row 9.*missing target with NaN"):
        Ivis(**FAST, supervision_metric=metric).fit(data, Y)


# --- neighbour_matrix ------------------------------------------------------------------------


def test_rows_listed_as_their_own_neighbours_warn(data):
    from sklearn.neighbors import NearestNeighbors

    search = NearestNeighbors(n_neighbors=5).fit(data)
    with_self = search.kneighbors(data, return_distance=False)
    with pytest.warns(UserWarning, match=r"lists 60 of 60 rows among their own neighbours \(rows 0, 1, 2, 3, 4 and 55 more\).*kneighbors\(\) without X"):
        Ivis(**FAST, neighbour_matrix=with_self).fit(data)
    with pytest.warns(UserWarning, match=r"lists 1 of 60 rows among their own neighbours \(rows 59\)"):
        Ivis(**FAST, neighbour_matrix=[list(row) for row in search.kneighbors(return_distance=False)[:-1]] + [[59, 1, 2]]).fit(data)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ivis(**FAST, neighbour_matrix=search.kneighbors(return_distance=False)).fit(data)


# --- SQLiteDataset ---------------------------------------------------------------------------


def test_sqlite_dataset_on_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not a database\n" * 100)
    with pytest.raises(ValueError, match=r"Cannot read '.*notes.txt' as a SQLite database .*file is not a database"):
        SQLiteDataset(path, "points")
    database = tmp_path / "points.db"
    with sqlite3.connect(database) as conn:
        conn.execute("CREATE TABLE points (a REAL)")
        conn.execute("INSERT INTO points VALUES (1.0)")
    assert SQLiteDataset(database, "points").shape == (1, 1)


# --- global random state ---------------------------------------------------------------------


def _numpy_state_equal(a, b):
    return all(np.array_equal(x, y) if isinstance(x, np.ndarray) else x == y for x, y in zip(a, b))


def test_unseeded_fit_leaves_global_random_streams_alone(data):
    import keras

    user_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8), keras.layers.Dropout(0.1)])
    settings = {**FAST, "random_state": None}
    embeddings = []
    for extra, Y in [({}, None), ({}, np.arange(60) % 3), ({"model": user_model}, None)]:
        random.seed(123)
        np.random.seed(123)
        python_state, numpy_state = random.getstate(), np.random.get_state()
        model = Ivis(**settings, **extra).fit(data, Y)
        embeddings.append(model.transform(data))
        assert random.getstate() == python_state
        assert _numpy_state_equal(np.random.get_state(), numpy_state)
    # Still unseeded: a second fit differs.
    assert not np.allclose(embeddings[0], Ivis(**settings).fit_transform(data))


# --- TensorFlow's start-up lines -------------------------------------------------------------

STARTUP_LINES = ("All log messages before absl::InitializeLog()", "oneDNN custom operations are on")


def _run(args, env_changes, cwd):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    env.update(env_changes)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env_changes.get("PYTHONPATH"), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=300, cwd=cwd, env=env)


def test_tensorflow_startup_lines_are_hidden(tmp_path):
    fit = "import numpy as np, ivis; ivis.Ivis(k=5, epochs=1, batch_size=16, verbose=0).fit(np.random.rand(40, 4))"
    result = _run(["-c", fit], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(line in result.stderr for line in STARTUP_LINES), result.stderr
    np.save(tmp_path / "x.npy", np.random.default_rng(0).random((40, 4)))
    result = _run(["-m", "ivis.cli", "x.npy", "-k", "5", "--epochs", "1", "--batch-size", "16", "-q"], {}, tmp_path)
    assert result.returncode == 0, result.stderr
    assert not any(line in result.stderr for line in STARTUP_LINES), result.stderr
    # A user who asks for TensorFlow's messages gets them (and this test can see them).
    shown = _run(["-c", "import ivis.nn"], {"TF_CPP_MIN_LOG_LEVEL": "0"}, tmp_path)
    assert shown.returncode == 0 and "oneDNN custom operations are on" in shown.stderr, shown.stderr


def test_messages_and_errors_of_a_failing_keras_import_reach_the_user(tmp_path):
    fake = tmp_path / "fake" / "keras"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text(
        "import os\n"
        "os.write(2, b'I0000 port.cc] oneDNN custom operations are on. noise\\n')\n"
        "os.write(2, b'genuine: a library is missing\\n')\n"
        "raise ImportError('keras cannot start')\n"
    )
    code = "import numpy as np, ivis; ivis.Ivis(k=5, epochs=1, batch_size=16, verbose=0).fit(np.random.rand(40, 4))"
    result = _run(["-c", code], {"PYTHONPATH": str(fake.parent)}, tmp_path)
    assert result.returncode != 0
    assert "genuine: a library is missing" in result.stderr
    assert "ImportError: keras cannot start" in result.stderr
    assert "oneDNN" not in result.stderr
    # stderr works again after the failed import.
    code += "\n"
    result = _run(["-c", "import sys\ntry:\n " + code + "except ImportError:\n print('after', file=sys.stderr)"], {"PYTHONPATH": str(fake.parent)}, tmp_path)
    assert result.stderr.strip().endswith("after"), result.stderr
