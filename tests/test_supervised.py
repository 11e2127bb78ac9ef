"""Supervised, semi-supervised, multi-label and regression training, and score_samples."""

import numpy as np
import pytest

from conftest import FAST
from ivis import Ivis


@pytest.fixture(scope="module")
def labelled(blobs):
    X, y = blobs
    return X, y


def _accuracy(model, X, y):
    return np.mean(model.classes_[model.score_samples(X).argmax(axis=1)] == y)


def test_integer_labels_train_a_classifier(labelled):
    X, y = labelled
    model = Ivis(supervision_weight=0.8, **{**FAST, "epochs": 5}).fit(X, y)
    np.testing.assert_array_equal(model.classes_, [0, 1, 2])
    scores = model.score_samples(X)
    assert scores.shape == (300, 3)
    np.testing.assert_allclose(scores.sum(axis=1), 1, rtol=1e-5)
    assert _accuracy(model, X, y) > 0.95


@pytest.mark.parametrize("convert", [
    lambda y: np.array(["setosa", "versicolor", "virginica"])[y],
    lambda y: np.array([3, 10, 42])[y],
])
def test_any_label_values_are_encoded(labelled, convert):
    X, y = labelled
    labels = convert(y)
    model = Ivis(**FAST).fit(X, labels)
    np.testing.assert_array_equal(model.classes_, np.unique(labels))
    assert model.score_samples(X).shape == (300, 3)


def test_pandas_categorical_keeps_category_order(labelled):
    pd = pytest.importorskip("pandas")
    X, y = labelled
    labels = pd.Categorical(np.array(["c", "a", "b"])[y], categories=["c", "b", "a"])
    model = Ivis(supervision_weight=0.9, **{**FAST, "epochs": 5}).fit(X, labels)
    assert list(model.classes_) == ["c", "b", "a"]
    predicted = model.classes_[model.score_samples(X).argmax(axis=1)]
    assert np.mean(predicted == np.asarray(labels)) > 0.9


def test_one_hot_metrics(labelled):
    X, y = labelled
    one_hot = np.eye(3)[y]
    model = Ivis(supervision_metric="categorical_crossentropy", **FAST).fit(X, one_hot)
    np.testing.assert_allclose(model.score_samples(X).sum(axis=1), 1, rtol=1e-5)
    svm = Ivis(supervision_metric="categorical_hinge", **FAST).fit(X, one_hot)
    assert svm.score_samples(X).shape == (300, 3)
    assert svm.supervised_head_.layers[-1].activation.__name__ == "linear"
    with pytest.raises(ValueError, match="one-hot"):
        Ivis(supervision_metric="categorical_crossentropy", **FAST).fit(X, y)


def test_multi_label(labelled):
    X, y = labelled
    multi = np.column_stack([y == 0, y > 0, y == 2]).astype(np.float32)
    # Three embedding dimensions: in two, a middle cluster cannot be separated by a linear head.
    model = Ivis(embedding_dims=3, supervision_metric="binary_crossentropy", supervision_weight=0.9, **{**FAST, "epochs": 20})
    model.fit(X, multi)
    scores = model.score_samples(X)
    assert scores.shape == (300, 3) and (scores >= 0).all() and (scores <= 1).all()
    assert np.mean((scores > 0.5) == multi.astype(bool)) > 0.9
    with pytest.raises(ValueError, match="0/1"):
        Ivis(supervision_metric="binary_crossentropy", **FAST).fit(X, multi * 3)


@pytest.mark.parametrize("metric", ["mae", "mse", "logcosh"])
def test_regression(metric):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    target = X @ rng.normal(size=6)
    model = Ivis(supervision_metric=metric, supervision_weight=0.9, k=5, epochs=20, batch_size=32, verbose=0, random_state=0)
    model.fit(X, target)
    predicted = model.score_samples(X)
    assert predicted.shape == (400, 1)
    assert np.corrcoef(predicted[:, 0], target)[0, 1] > 0.8
    two = Ivis(supervision_metric=metric, **FAST).fit(X, np.column_stack([target, -target]))
    assert two.score_samples(X).shape == (400, 2)


@pytest.mark.parametrize("mark", ["minus_one", "none", "nan"])
def test_semi_supervised_labels(labelled, mark):
    X, y = labelled
    rng = np.random.default_rng(0)
    hidden = rng.random(300) < 0.5
    if mark == "minus_one":
        labels = y.copy()
        labels[hidden] = -1
    elif mark == "none":
        labels = np.array(["a", "b", "c"], dtype=object)[y]
        labels[hidden] = None
    else:
        labels = y.astype(float)
        labels[hidden] = np.nan
    model = Ivis(supervision_weight=0.8, **{**FAST, "epochs": 5}).fit(X, labels)
    assert len(model.classes_) == 3
    truth = np.asarray(model.classes_)[y] if mark == "none" else y
    assert np.mean(model.classes_[model.score_samples(X).argmax(axis=1)] == truth) > 0.9


def test_regression_targets_with_missing_rows():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 4)).astype(np.float32)
    target = X[:, 0] * 3.0
    target[::3] = np.nan
    model = Ivis(supervision_metric="mae", **FAST).fit(X, target)
    assert np.isfinite(model.score_samples(X)).all()


def test_errors(labelled):
    X, y = labelled
    with pytest.raises(ValueError, match="Y has 10 labels but X has 300 rows"):
        Ivis(**FAST).fit(X, y[:10])
    with pytest.raises(ValueError, match="Every label in Y is missing"):
        Ivis(**FAST).fit(X, np.full(300, -1))
    with pytest.raises(ValueError, match="between 0 and 1"):
        Ivis(supervision_weight=-0.1, **FAST).fit(X, y)
    with pytest.raises(ValueError, match="Unknown supervision_metric 'accuracy_loss'"):
        Ivis(supervision_metric="accuracy_loss", **FAST).fit(X, y)

    import keras

    masked = y.copy()
    masked[:5] = -1
    with pytest.raises(ValueError, match="cannot be masked"):
        Ivis(supervision_metric=keras.losses.sparse_categorical_crossentropy, **FAST).fit(X, masked)


def test_save_load_and_resume_both_losses(labelled, tmp_path):
    X, y = labelled
    labels = np.array(["x", "y", "z"])[y]
    model = Ivis(**FAST).fit(X, labels)
    model.save_model(tmp_path / "m")
    loaded = Ivis().load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    np.testing.assert_allclose(loaded.score_samples(X), model.score_samples(X), atol=1e-6)
    head_before = [w.copy() for w in loaded.supervised_head_.get_weights()]
    loaded.fit(X, labels)
    assert len(loaded.loss_history_) == 6
    assert any(not np.allclose(a, b) for a, b in zip(head_before, loaded.supervised_head_.get_weights())), \
        "the supervised head keeps training after load"
    with pytest.raises(ValueError, match="Y must be given exactly when"):
        loaded.fit(X)


def test_unlabelled_batches_add_no_supervised_gradient(labelled):
    """With every anchor unlabelled except in one class, the head learns only that class."""
    X, y = labelled
    labels = np.where(y == 0, 0, -1)
    labels[y == 1] = 1
    labels[np.flatnonzero(y == 1)[5:]] = -1  # keep a few labelled rows of class 1
    model = Ivis(supervision_weight=1.0, **FAST).fit(X, labels)
    assert list(model.classes_) == [0, 1]
    assert np.isfinite(model.loss_history_).all()
