"""The Ivis estimator: inputs, outputs, errors, reproducibility and scikit-learn integration."""

import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from conftest import FAST
from ivis import Ivis


def test_documented_defaults():
    params = Ivis().get_params()
    # Every documented parameter with its documented default, plus neighbour_search,
    # negative_sampling, validation_fraction, learning_rate, weight_decay and early_stopping (ours).
    assert params == dict(
        embedding_dims=2, k=150, distance="pn", batch_size=128, epochs=1000, n_epochs_without_progress=20,
        early_stopping="loss",
        n_trees=50, ntrees=None, knn_distance_metric="angular", search_k=-1, neighbour_search="annoy",
        precompute=True, negative_sampling="in_batch", model="szubert",
        supervision_metric="sparse_categorical_crossentropy", supervision_weight=0.5, validation_fraction=None,
        learning_rate=0.001, weight_decay=0.0, annoy_index_path=None, callbacks=None, build_index_on_disk=True, neighbour_matrix=None, verbose=1, random_state=None,
    )


def test_fit_transform_shapes_and_attributes(blobs):
    X, _ = blobs
    model = Ivis(embedding_dims=3, **FAST)
    embedding = model.fit_transform(X)
    assert embedding.shape == (300, 3) and embedding.dtype == np.float32
    assert np.isfinite(embedding).all()
    assert model.n_features_in_ == 10 and model.input_shape_ == (10,)
    assert len(model.loss_history_) == 3
    assert model.model_.layers[3] is model.encoder_
    assert model.neighbour_matrix_.shape == (300, 5)
    assert set(model.timings_) == {"neighbours", "training", "epochs", "seconds_per_epoch"}
    np.testing.assert_allclose(model.transform(X), embedding, rtol=1e-5, atol=1e-5)


def test_embedding_separates_clusters(blobs):
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.model_selection import cross_val_score

    X, y = blobs
    embedding = Ivis(k=10, epochs=10, batch_size=32, verbose=0, random_state=0).fit_transform(X)
    assert cross_val_score(KNeighborsClassifier(5), embedding, y, cv=3).mean() > 0.95


def test_same_random_state_gives_identical_embeddings(blobs):
    X, _ = blobs
    first = Ivis(**FAST).fit_transform(X)
    second = Ivis(**FAST).fit_transform(X)
    np.testing.assert_array_equal(first, second)
    other = Ivis(**{**FAST, "random_state": 1}).fit_transform(X)
    assert not np.allclose(first, other)


def test_fit_again_continues_training_and_clone_starts_fresh(blobs):
    X, _ = blobs
    model = Ivis(**FAST).fit(X)
    model.fit(X)
    assert len(model.loss_history_) == 6
    fresh = clone(model)
    assert not hasattr(fresh, "encoder_")
    assert fresh.get_params() == model.get_params()


@pytest.mark.parametrize("convert", [
    lambda X: X.astype(np.float64),
    lambda X: np.asfortranarray(X),
    lambda X: (X * 10).astype(np.int32),
    lambda X: X.astype(np.float16),
])
def test_numeric_dtypes_and_memory_orders(blobs, convert):
    X, _ = blobs
    embedding = Ivis(**FAST).fit_transform(convert(X))
    assert embedding.shape == (300, 2) and np.isfinite(embedding).all()


def test_pandas_dataframe(blobs):
    pd = pytest.importorskip("pandas")
    X, _ = blobs
    frame = pd.DataFrame(X, columns=[f"gene{i}" for i in range(10)])
    model = Ivis(**FAST)
    np.testing.assert_allclose(model.fit_transform(frame), Ivis(**FAST).fit_transform(X), atol=1e-5)
    frame["kind"] = "a"
    with pytest.raises(TypeError, match="non-numeric columns: kind"):
        Ivis(**FAST).fit(frame)


class NoDensify(sp.csr_matrix):
    """A CSR matrix that refuses to be densified whole."""

    def toarray(self, *args, **kwargs):
        if self.shape[0] > 8192:
            raise AssertionError("the whole sparse matrix was densified")
        return super().toarray(*args, **kwargs)

    def tocsr(self, copy=False):
        return self


def test_sparse_input_is_never_densified_whole():
    rng = np.random.default_rng(0)
    dense = (rng.random((20000, 40)) < 0.1) * rng.random((20000, 40))
    X = NoDensify(dense.astype(np.float32))
    model = Ivis(**{**FAST, "batch_size": 1024, "epochs": 1})
    embedding = model.fit_transform(X)
    assert embedding.shape == (20000, 2)
    np.testing.assert_allclose(model.transform(sp.csc_matrix(dense)), embedding, atol=1e-5)


def test_hdf5_dataset(tmp_path, blobs):
    h5py = pytest.importorskip("h5py")
    X, _ = blobs
    with h5py.File(tmp_path / "data.h5", "w") as f:
        f["X"] = X
    with h5py.File(tmp_path / "data.h5", "r") as f:
        model = Ivis(**FAST).fit(f["X"], shuffle_mode="batch")
        from_disk = model.transform(f["X"])
        closed = f["X"]
    np.testing.assert_allclose(from_disk, model.transform(X), atol=1e-5)
    with pytest.raises(ValueError, match="closed file"):
        model.transform(closed)


def test_custom_keras_model_on_images_is_not_mutated():
    import keras

    rng = np.random.default_rng(0)
    images = rng.random((200, 8, 8, 1)).astype(np.float32)
    base = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
    ])
    before = [w.copy() for w in base.get_weights()]
    model = Ivis(model=base, **FAST)
    embedding = model.fit_transform(images)
    assert embedding.shape == (200, 2)
    assert model.input_shape_ == (8, 8, 1)
    for old, new in zip(before, base.get_weights()):
        np.testing.assert_array_equal(old, new)


def test_unbuilt_custom_model_gets_embedding_layer(blobs):
    import keras

    X, _ = blobs
    base = keras.Sequential([keras.layers.Dense(8, activation="relu")])
    model = Ivis(model=base, embedding_dims=4, **FAST).fit(X)
    assert model.transform(X).shape == (300, 4)


def test_precomputed_neighbour_matrix_skips_annoy(blobs):
    from sklearn.neighbors import NearestNeighbors

    X, _ = blobs
    neighbours = NearestNeighbors(n_neighbors=5).fit(X).kneighbors(return_distance=False)  # each row left out
    model = Ivis(neighbour_matrix=neighbours, **FAST).fit(X)
    np.testing.assert_array_equal(model.neighbour_matrix_, neighbours)


def test_int32_neighbour_matrix_is_used_without_a_copy(blobs):
    from sklearn.neighbors import NearestNeighbors

    X, _ = blobs
    neighbours = NearestNeighbors(n_neighbors=5).fit(X).kneighbors(return_distance=False).astype(np.int32)
    model = Ivis(neighbour_matrix=neighbours, **FAST).fit(X)
    assert model.neighbour_matrix_.dtype == np.int32
    assert np.shares_memory(model.neighbour_matrix_, neighbours), "a large matrix must not be held twice"


def test_precompute_false_and_annoy_index_reuse(blobs, tmp_path):
    X, _ = blobs
    path = tmp_path / "index.ann"
    Ivis(precompute=False, annoy_index_path=str(path), **FAST).fit(X)
    assert path.exists(), "a named index is kept for reuse"
    stamp = path.stat().st_mtime_ns
    reused = Ivis(annoy_index_path=str(path), **FAST).fit(X)
    assert path.stat().st_mtime_ns == stamp
    assert reused.neighbour_matrix_.shape == (300, 5)


def test_temporary_index_is_removed_and_never_in_working_dir(blobs, tmp_path, monkeypatch):
    import glob
    import tempfile

    X, _ = blobs
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    for precompute in (True, False):
        Ivis(precompute=precompute, **FAST).fit(X)
    assert list(tmp_path.iterdir()) == [tmp_path / "tmp"]
    assert glob.glob(str(tmp_path / "tmp" / "*")) == []


def test_ntrees_is_a_deprecated_alias(blobs):
    X, _ = blobs
    with pytest.warns(FutureWarning, match="n_trees"):
        Ivis(ntrees=5, **FAST).fit(X)


def test_pipeline_and_silence(blobs, capsys):
    X, _ = blobs
    pipeline = make_pipeline(StandardScaler(), Ivis(**FAST))
    assert pipeline.fit_transform(X).shape == (300, 2)
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""


def test_verbose_shows_progress(blobs, capsys):
    X, _ = blobs
    Ivis(**{**FAST, "verbose": 1}).fit(X)
    err = capsys.readouterr().err
    assert "Building neighbour index" in err and "Extracting neighbours" in err and "Training" in err


# ----------------------------------------------------------------- bad input


@pytest.mark.parametrize("params, message", [
    (dict(k=300), "largest valid k is 299"),
    (dict(batch_size=301), "batch_size=301 is larger than the number of samples"),
    (dict(model="resnet"), "Valid names are: szubert, hinton, maaten"),
    (dict(distance="nope"), "Valid names are: .*cosine"),
    (dict(knn_distance_metric="cosine"), "Valid metrics are: angular"),
    (dict(embedding_dims=0), "embedding_dims must be >= 1"),
    (dict(supervision_weight=1.5), "supervision_weight must be a number between 0 and 1"),
    (dict(epochs=2.5), "epochs must be an integer"),
    (dict(search_k=0), "search_k must be >= 1"),
])
def test_invalid_parameters_name_the_problem(blobs, params, message):
    X, _ = blobs
    with pytest.raises((ValueError, TypeError), match=message):
        Ivis(**{**FAST, **params}).fit(X)


def test_invalid_parameters_are_stored_until_fit():
    model = Ivis(k=-3, model="nope")
    assert model.k == -3 and model.model == "nope"


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_non_finite_values_are_reported(blobs, value):
    X, _ = blobs
    X = X.copy()
    X[7, 3] = value
    with pytest.raises(ValueError, match="row 7, column 3"):
        Ivis(**FAST).fit(X)


def test_empty_single_row_and_one_dimensional_input():
    with pytest.raises(ValueError, match="0 sample"):
        Ivis(**FAST).fit(np.empty((0, 4)))
    with pytest.raises(ValueError, match="1 sample.*minimum of 2"):
        Ivis(**FAST).fit(np.ones((1, 4)))
    with pytest.raises(ValueError, match="0 feature"):
        Ivis(**FAST).fit(np.empty((5, 0)))
    with pytest.raises(ValueError, match="2-dimensional"):
        Ivis(**FAST).fit(np.ones(10))


def test_non_numeric_input():
    with pytest.raises(TypeError, match="must be numeric"):
        Ivis(**FAST).fit(np.array([["a", "b"]] * 10))


def test_transform_errors(fitted_blobs):
    with pytest.raises(NotFittedError):
        Ivis().transform(np.ones((3, 10)))
    with pytest.raises(ValueError, match="X has 4 features, but Ivis is expecting 10 features"):
        fitted_blobs.transform(np.ones((3, 4)))
    with pytest.raises(ValueError, match="score_samples needs a supervised model"):
        fitted_blobs.score_samples(np.ones((3, 10)))


def test_neighbour_matrix_validation(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match=r"shape \(n_samples, k\) = \(300, k\)"):
        Ivis(neighbour_matrix=np.zeros((10, 3), dtype=int), **FAST).fit(X)
    with pytest.raises(ValueError, match="outside 0..299"):
        Ivis(neighbour_matrix=np.full((300, 3), 300), **FAST).fit(X)


def test_transform_handles_any_length(fitted_blobs, blobs):
    X, _ = blobs
    big = np.tile(X, (40, 1))  # 12,000 rows: more than one transform chunk
    out = fitted_blobs.transform(big)
    assert out.shape == (12000, 2)
    np.testing.assert_allclose(out[:300], out[-300:], atol=1e-5)
    assert fitted_blobs.transform(X[:1]).shape == (1, 2)


def test_no_warnings_on_a_clean_fit(blobs):
    X, _ = blobs
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        Ivis(**FAST).fit(X)
