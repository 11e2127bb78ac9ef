"""Parity of the R package with the Python core.

The R package (installed in ``.r-lib`` by ``scripts/setup-r.sh``) is driven in this very
process through rpy2: R's reticulate attaches to the running interpreter, so R and Python
share one ``ivis`` module and the tests can compare what each side builds, trains, saves
and reports. Without rpy2 or the R library the module is skipped, unless the environment
variable ``IVIS_REQUIRE_R`` is 1 (as in CI): then it fails.
"""

import inspect
import os
import sys
import types
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
R_LIB = Path(os.environ.get("IVIS_R_LIB", REPO / ".r-lib"))
REQUIRE_R = os.environ.get("IVIS_REQUIRE_R") == "1"
SETUP_HINT = "run scripts/setup-r.sh (it installs R, reticulate, rpy2 and the ivis R package)"


def _unavailable(reason):
    if REQUIRE_R:
        pytest.fail(f"IVIS_REQUIRE_R=1 but {reason}; {SETUP_HINT}", pytrace=False)
    pytest.skip(f"{reason}; {SETUP_HINT}", allow_module_level=True)


for _package in ("reticulate", "ivis"):
    if not (R_LIB / _package / "DESCRIPTION").is_file():
        _unavailable(f"the R package '{_package}' is not installed in {R_LIB}")

# Must be set before R starts (that is, before rpy2.robjects is imported).
os.environ["R_LIBS"] = os.pathsep.join(filter(None, [str(R_LIB), os.environ.get("R_LIBS", "")]))
os.environ["RETICULATE_PYTHON"] = sys.executable
os.environ.pop("IVIS_PYTHON", None)

try:
    import rpy2.robjects as ro
except Exception as exc:  # ImportError, or R itself failing to start
    _unavailable(f"rpy2 cannot start R ({type(exc).__name__}: {exc})")

from ivis import Ivis, load_model  # noqa: E402

# Objects passed between the two languages: R reads and writes this module's attributes.
bridge = types.ModuleType("_ivis_r_bridge")
sys.modules[bridge.__name__] = bridge

ro.r(f'.libPaths(c("{R_LIB}", .libPaths()))')
# reticulate's onLoad hook makes rpy2 print a harmless warning: silence it.
ro.r('setHook(packageEvent("reticulate", "onLoad"), NULL, "replace")')
ro.r("suppressPackageStartupMessages(library(ivis))")
ro.r('b <- reticulate::import("_ivis_r_bridge")')

# Small, fast settings shared by both sides.
FAST = dict(k=10, epochs=2, batch_size=32, n_trees=10, verbose=0, random_state=5)
FAST_R = "k = 10, epochs = 2, batch_size = 32, n_trees = 10, verbose = 0, random_state = 5"


def r(code):
    """Evaluates R code; R errors surface as rpy2 errors."""
    return ro.r(code)


def r_error(code):
    """The message of the R error that `code` raises ('' if it raises none)."""
    out = ro.r(f"tryCatch({{ {code}; '' }}, error = function(e) conditionMessage(e))")
    return str(out[0])


def same_value(a, b):
    """Equal values of the same type; arrays equal in dtype, shape and content."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return (
            isinstance(a, np.ndarray)
            and isinstance(b, np.ndarray)
            and a.dtype == b.dtype
            and a.shape == b.shape
            and np.array_equal(a, b)
        )
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(x is y for x, y in zip(a, b))
    return type(a) is type(b) and a == b


@pytest.fixture(scope="module")
def iris():
    from sklearn.datasets import load_iris

    data = load_iris()
    X = (data.data - data.data.mean(axis=0)) / data.data.std(axis=0)
    X = np.ascontiguousarray(X, dtype=np.float64)
    labels = np.array(data.target_names, dtype=object)[data.target]
    bridge.X = X
    bridge.labels = [str(v) for v in labels]
    r("X <- b$X")
    r("species <- factor(b$labels)")
    return X, labels


def exact_neighbours(X, k):
    """0-based indices of each row's k nearest other rows (Euclidean)."""
    d = ((X[:, None, :] - X[None, :, :]) ** 2).sum(axis=-1)
    np.fill_diagonal(d, np.inf)
    return np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.int64)


def test_r_runs_in_this_python():
    assert str(r("reticulate::py_config()$python")[0]) == sys.executable
    assert int(r('reticulate::import("os")$getpid()')[0]) == os.getpid()
    r('b$ivis_module <- reticulate::import("ivis", convert = FALSE)')
    assert bridge.ivis_module is sys.modules["ivis"]


def test_r_arguments_and_defaults_are_the_python_ones():
    signature = inspect.signature(Ivis)
    assert list(r("names(formals(ivis))")) == list(signature.parameters)
    # every R default, evaluated and converted by the R package, is the Python default
    r("b$r_default <- ivis()$py")
    assert bridge.r_default.get_params() == Ivis().get_params()
    r("b$r_formal_defaults <- lapply(formals(ivis), eval)")
    for name, parameter in signature.parameters.items():
        assert same_value(bridge.r_formal_defaults[name], parameter.default), name


class _Callback:
    """Stands for a Keras callback: only its identity matters here."""


NEIGHBOURS_0 = np.array([[1, 2], [0, 2], [0, 1], [2, 1]], dtype=np.int64)

# A non-default value of every constructor argument, in Python and as R code.
PARAMETER_VALUES = {
    "embedding_dims": (3, "3"),
    "k": (7, "7"),
    "distance": ("cosine_pn", '"cosine_pn"'),
    "batch_size": (64, "64"),
    "epochs": (9, "9"),
    "n_epochs_without_progress": (4, "4"),
    "early_stopping": ("embedding", '"embedding"'),
    "n_trees": (11, "11"),
    "ntrees": (12, "12"),
    "knn_distance_metric": ("euclidean", '"euclidean"'),
    "search_k": (100, "100"),
    "neighbour_search": ("clustered", '"clustered"'),
    "precompute": (False, "FALSE"),
    "negative_sampling": ("all_rows", "\"all_rows\""),
    "model": ("hinton", '"hinton"'),
    "supervision_metric": ("mae", '"mae"'),
    "supervision_weight": (0.25, "0.25"),
    "validation_fraction": (0.2, "0.2"),
    "learning_rate": (0.003, "0.003"),
    "weight_decay": (10.0, "10"),
    "annoy_index_path": ("/tmp/ivis-parity/index.ann", '"/tmp/ivis-parity/index.ann"'),
    "callbacks": ("callbacks", "list(b$callback)"),
    "build_index_on_disk": (False, "FALSE"),
    "neighbour_matrix": (NEIGHBOURS_0, "b$neighbours_1"),
    "verbose": (0, "0"),
    "random_state": (123, "123"),
}


def test_every_constructor_argument_is_covered():
    assert set(PARAMETER_VALUES) == set(inspect.signature(Ivis).parameters)


@pytest.mark.parametrize("name", sorted(PARAMETER_VALUES))
def test_parameter_flow(name):
    """`ivis(name = value)` in R builds the Python object `Ivis(name=value)` builds."""
    value, r_code = PARAMETER_VALUES[name]
    bridge.callback = _Callback()
    bridge.neighbours_1 = NEIGHBOURS_0 + 1  # what an R user gives: 1-based
    if name == "callbacks":
        value = [bridge.callback]
    r(f"b$r_model <- ivis({name} = {r_code})$py")
    from_r = bridge.r_model.get_params()
    from_python = Ivis(**{name: value}).get_params()
    assert set(from_r) == set(from_python)
    for key in from_python:
        assert same_value(from_r[key], from_python[key]), (key, from_r[key], from_python[key])


@pytest.fixture(scope="module")
def unsupervised(iris):
    X, _ = iris
    r(f"r_model <- ivis({FAST_R})$fit(X)")
    r("b$r_embedding <- r_model$transform(X)")
    python_model = Ivis(**FAST).fit(X)
    return python_model, python_model.transform(X), np.asarray(bridge.r_embedding)


def test_unsupervised_embedding_matches(unsupervised):
    _, python_embedding, r_embedding = unsupervised
    assert r_embedding.shape == python_embedding.shape == (150, 2)
    np.testing.assert_allclose(r_embedding, python_embedding, rtol=1e-5, atol=1e-5)


def test_supervised_embedding_and_scores_match(iris):
    X, labels = iris
    r(f"sup <- ivis({FAST_R})$fit(X, species)")
    r("b$r_embedding <- sup$transform(X); b$r_scores <- sup$score_samples(X)")
    model = Ivis(**FAST).fit(X, labels)
    np.testing.assert_allclose(np.asarray(bridge.r_embedding), model.transform(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bridge.r_scores), model.score_samples(X), rtol=1e-5, atol=1e-5)
    assert list(r("colnames(sup$score_samples(X[1:3, ]))")) == [str(c) for c in model.classes_]


def test_semi_supervised_embedding_matches(iris):
    X, labels = iris
    missing = np.zeros(len(labels), dtype=bool)
    missing[::3] = True
    bridge.missing = missing
    r("partial <- species; partial[b$missing] <- NA")
    assert int(r("sum(is.na(partial))")[0]) == missing.sum()
    r(f"semi <- ivis({FAST_R})$fit(X, partial)")
    r("b$r_embedding <- semi$transform(X); b$r_scores <- semi$score_samples(X)")
    Y = labels.copy()
    Y[missing] = None
    model = Ivis(**FAST).fit(X, Y)
    np.testing.assert_allclose(np.asarray(bridge.r_embedding), model.transform(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(np.asarray(bridge.r_scores), model.score_samples(X), rtol=1e-5, atol=1e-5)


def test_clustered_neighbour_search_matches(iris):
    X, _ = iris
    r(f'cl <- ivis({FAST_R}, neighbour_search = "clustered"); b$r_embedding <- cl$fit_transform(X)')
    r("b$r_model <- cl$py")
    model = Ivis(**FAST, neighbour_search="clustered")
    np.testing.assert_allclose(np.asarray(bridge.r_embedding), model.fit_transform(X), rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(bridge.r_model.neighbour_matrix_, model.neighbour_matrix_)


def test_model_saved_in_r_loads_in_python(unsupervised, iris, tmp_path):
    X, _ = iris
    _, _, r_embedding = unsupervised
    path = tmp_path / "from-r"
    bridge.path = str(path)
    r("r_model$save_model(b$path)")
    loaded = load_model(str(path))
    np.testing.assert_allclose(loaded.transform(X), r_embedding, rtol=1e-5, atol=1e-5)
    again = Ivis().load_model(str(path))
    np.testing.assert_allclose(again.transform(X), r_embedding, rtol=1e-5, atol=1e-5)


def test_model_saved_in_python_loads_in_r(unsupervised, iris, tmp_path):
    X, _ = iris
    python_model, python_embedding, _ = unsupervised
    path = tmp_path / "from-python"
    python_model.save_model(str(path))
    bridge.path = str(path)
    r("b$r_embedding <- load_ivis(b$path)$transform(X)")
    np.testing.assert_allclose(np.asarray(bridge.r_embedding), python_embedding, rtol=1e-5, atol=1e-5)


def test_one_based_neighbour_matrix_from_r_is_the_python_one(iris):
    X, _ = iris
    neighbours = exact_neighbours(X, 10)
    bridge.neighbours_1 = neighbours + 1
    r("nm <- b$neighbours_1")
    assert list(r("range(nm)")) == [1, 150]
    r(f"nm_model <- ivis({FAST_R}, neighbour_matrix = nm)")
    r("b$r_model <- nm_model$py")
    from_r = bridge.r_model.get_params()["neighbour_matrix"]
    assert from_r.dtype == np.int64
    np.testing.assert_array_equal(from_r, neighbours)
    # and it trains the same model
    r("b$r_embedding <- nm_model$fit_transform(X)")
    python_embedding = Ivis(**FAST, neighbour_matrix=neighbours).fit_transform(X)
    np.testing.assert_allclose(np.asarray(bridge.r_embedding), python_embedding, rtol=1e-5, atol=1e-5)


def test_zero_based_neighbour_matrix_is_refused_in_r():
    bridge.neighbours_0 = NEIGHBOURS_0
    message = r_error("ivis(neighbour_matrix = b$neighbours_0)")
    assert "1-based" in message and "add 1" in message


INVALID = [
    ("k", -3, "-3"),
    ("k", 2.5, "2.5"),
    ("embedding_dims", 0, "0"),
    ("batch_size", 0, "0"),
    ("distance", "no-such-loss", '"no-such-loss"'),
    ("knn_distance_metric", "no-such-metric", '"no-such-metric"'),
    ("supervision_weight", 2.0, "2"),
]


@pytest.mark.parametrize(("name", "value", "r_code"), INVALID, ids=[f"{n}={v}" for n, v, _ in INVALID])
def test_invalid_argument_gives_the_python_message_in_r(iris, name, value, r_code):
    X, _ = iris
    with pytest.raises(Exception) as python_error:
        Ivis(**{name: value}).fit(X)
    message = r_error(f"ivis({name} = {r_code})$fit(X)")
    assert message == str(python_error.value)
    assert name in message


def test_factor_levels_are_the_classes_in_their_order(iris):
    import pandas as pd

    X, labels = iris
    order = ["virginica", "setosa", "versicolor"]
    r(f'lev <- factor(as.character(species), levels = c("{order[0]}", "{order[1]}", "{order[2]}"))')
    r(f"lev_model <- ivis({FAST_R})$fit(X, lev)")
    r("b$r_scores <- lev_model$score_samples(X)")
    assert list(r("colnames(lev_model$score_samples(X[1:2, ]))")) == order
    model = Ivis(**FAST).fit(X, pd.Categorical(labels, categories=order))
    assert list(model.classes_) == order
    np.testing.assert_allclose(np.asarray(bridge.r_scores), model.score_samples(X), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", [2**31, 3 * 10**9, 2**40])
def test_random_state_beyond_r_integers_reaches_python_unchanged(seed):
    r(f"b$r_model <- ivis(random_state = {float(seed)!r})$py")
    assert bridge.r_model.get_params()["random_state"] == seed
    assert type(bridge.r_model.get_params()["random_state"]) is int
