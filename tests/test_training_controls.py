"""Held-out early stopping (validation_fraction), learning rate and weight decay."""

import keras
import numpy as np
import pytest

from conftest import FAST
from ivis import Ivis


def _held_out_crossentropy(model, X, y):
    """Mean sparse cross-entropy of the model's predictions on its held-out rows."""
    rows = model.validation_indices_
    probabilities = model.score_samples(X[rows])
    return float(np.mean(-np.log(probabilities[np.arange(len(rows)), y[rows]])))


@pytest.fixture(scope="module")
def noisy_labels(blobs):
    """Labels unrelated to X: held-out loss worsens as soon as the head starts memorising."""
    X, _ = blobs
    return X, np.random.default_rng(0).integers(0, 3, len(X))


def test_held_out_labels_are_never_trained_on(blobs):
    X, y = blobs
    params = dict(validation_fraction=0.25, **{**FAST, "epochs": 4})
    first = Ivis(**params).fit(X, y)
    changed = y.copy()
    changed[first.validation_indices_] = (changed[first.validation_indices_] + 1) % 3
    second = Ivis(**params).fit(X, changed)
    np.testing.assert_array_equal(second.validation_indices_, first.validation_indices_)
    # Training, epoch by epoch, is the same; only the loss measured on the held-out rows
    # sees their (changed) labels.
    assert second.loss_history_ == first.loss_history_
    assert second.validation_loss_history_ != first.validation_loss_history_


def test_held_out_rows_are_a_fraction_of_the_labelled_rows(blobs):
    X, y = blobs
    labels = y.copy()
    labels[::2] = -1  # semi-supervised: 150 labelled rows
    model = Ivis(validation_fraction=0.2, **FAST).fit(X, labels)
    rows = model.validation_indices_
    assert len(rows) == 30 and len(np.unique(rows)) == 30
    assert np.all(labels[rows] != -1)
    assert len(model.validation_loss_history_) == len(model.loss_history_) == 3
    assert Ivis(**FAST).fit(X, y).validation_indices_ is None


def test_early_stopping_watches_the_held_out_loss_and_keeps_the_best_weights(noisy_labels):
    X, labels = noisy_labels
    patience = 4
    model = Ivis(
        validation_fraction=0.3, supervision_weight=1.0, n_epochs_without_progress=patience,
        **{**FAST, "epochs": 60},
    ).fit(X, labels)
    history = model.validation_loss_history_
    best = int(np.argmin(history))
    # Training stopped `patience` epochs after the held-out loss last improved, although
    # the training loss was still falling.
    assert len(history) == best + 1 + patience < 60
    assert model.loss_history_[-1] < model.loss_history_[best]
    # The weights kept are those of the best epoch, not the last.
    assert history[-1] > history[best]
    assert _held_out_crossentropy(model, X, labels) == pytest.approx(history[best], rel=1e-4)


def test_validation_fraction_with_regression_targets():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5)).astype(np.float32)
    target = X[:, 0] - X[:, 1]
    target[:20] = np.nan  # missing rows are never held out
    model = Ivis(supervision_metric="mae", validation_fraction=0.25, **{**FAST, "epochs": 5}).fit(X, target)
    rows = model.validation_indices_
    assert len(rows) == 45 and np.all(rows >= 20)
    held_out_mae = np.mean(np.abs(model.score_samples(X[rows])[:, 0] - target[rows]))
    assert held_out_mae == pytest.approx(min(model.validation_loss_history_), rel=1e-4)


def test_validation_errors(blobs):
    X, y = blobs
    with pytest.raises(ValueError, match="validation_fraction holds out labelled rows.*needs Y"):
        Ivis(validation_fraction=0.2, **FAST).fit(X)
    for bad in (0, 1, 1.5, -0.1, "0.2"):
        with pytest.raises(ValueError, match="validation_fraction must be None or a number strictly between 0 and 1"):
            Ivis(validation_fraction=bad, **FAST).fit(X, y)
    few = np.full(len(y), -1)
    few[:3] = y[:3]
    with pytest.raises(ValueError, match=r"validation_fraction=0.1 of the 3 labelled rows holds out 0"):
        Ivis(validation_fraction=0.1, **FAST).fit(X, few)
    with pytest.raises(ValueError, match="custom supervision_metric function cannot"):
        Ivis(validation_fraction=0.2, supervision_metric=keras.losses.sparse_categorical_crossentropy, **FAST).fit(X, y)
    for bad in (-1, float("nan"), "10", True):
        with pytest.raises(ValueError, match="weight_decay must be a number >= 0"):
            Ivis(weight_decay=bad, **FAST).fit(X)


def _kernel_norms(model):
    base = model.encoder_.layers[1]
    return (
        [float(np.linalg.norm(layer.kernel.numpy())) for layer in base.layers if hasattr(layer, "kernel")],
        float(np.linalg.norm(model.encoder_.get_layer("embedding").kernel.numpy())),
    )


def test_weight_decay_shrinks_the_base_network_only(blobs):
    X, y = blobs
    params = dict(**{**FAST, "epochs": 5})
    plain_base, plain_embedding = _kernel_norms(Ivis(**params).fit(X, y))
    decayed_base, decayed_embedding = _kernel_norms(Ivis(weight_decay=20.0, **params).fit(X, y))
    for plain, decayed in zip(plain_base, decayed_base):
        assert decayed < 0.8 * plain
    # The embedding layer is not decayed (it would shrink every prediction towards zero).
    assert decayed_embedding > 0.8 * plain_embedding


def test_validation_and_weight_decay_survive_save_and_load(blobs, tmp_path):
    X, y = blobs
    model = Ivis(validation_fraction=0.2, weight_decay=5.0, **FAST).fit(X, y)
    model.save_model(tmp_path / "model")
    loaded = Ivis().load_model(tmp_path / "model")
    assert loaded.validation_fraction == 0.2 and loaded.weight_decay == 5.0
    assert loaded.model_.optimizer.weight_decay == 5.0
    assert loaded.validation_loss_history_ == model.validation_loss_history_
    loaded.fit(X, y)  # continues with the same held-out rows
    np.testing.assert_array_equal(loaded.validation_indices_, model.validation_indices_)
    assert len(loaded.validation_loss_history_) == 6


def test_learning_rate_reaches_the_optimizer_and_applies_to_the_next_fit(blobs):
    X, y = blobs
    model = Ivis(learning_rate=0.003, **FAST).fit(X)
    assert float(model.model_.optimizer.learning_rate) == pytest.approx(0.003)
    model.set_params(learning_rate=0.0005, weight_decay=2.0).fit(X)
    assert float(model.model_.optimizer.learning_rate) == pytest.approx(0.0005)
    assert model.model_.optimizer.weight_decay == 2.0
    for bad in (0, -0.1, float("inf"), None):
        with pytest.raises(ValueError, match="learning_rate must be a number > 0"):
            Ivis(learning_rate=bad, **FAST).fit(X)


def test_a_learning_rate_scheduler_callback_steers_training(blobs):
    X, _ = blobs
    model = Ivis(**FAST).fit(X)
    before = model.transform(X)
    frozen = keras.callbacks.LearningRateScheduler(lambda epoch, rate: 0.0)
    model.set_params(callbacks=[frozen]).fit(X)
    np.testing.assert_array_equal(model.transform(X), before)
    assert len(model.loss_history_) == 6


@pytest.mark.parametrize("container", ["sparse", "dataset"])
def test_validation_fraction_with_data_not_held_as_an_array(noisy_labels, container):
    import scipy.sparse as sp

    from conftest import array_dataset

    X, y = noisy_labels
    data = sp.csr_matrix(np.where(X > 0, X, 0)) if container == "sparse" else array_dataset(X)
    dense = data.toarray() if container == "sparse" else X
    model = Ivis(validation_fraction=0.2, **FAST).fit(data, y)
    assert _held_out_crossentropy(model, dense, y) == pytest.approx(min(model.validation_loss_history_), rel=1e-4)


def test_held_out_rows_on_disk_are_read_once(noisy_labels):
    from conftest import array_dataset

    X, y = noisy_labels
    requests = []
    model = Ivis(validation_fraction=0.2, **{**FAST, "epochs": 4}).fit(array_dataset(X, requests), y)
    held_out = model.validation_indices_
    reads = [r for r in requests if len(r) == len(held_out) and np.array_equal(np.sort(r), held_out)]
    assert len(reads) == 1 and len(model.validation_loss_history_) == 4


def test_each_epoch_shows_rows_per_second_and_time_left(capsys):
    from sklearn.datasets import make_blobs

    X, _ = make_blobs(n_samples=2000, n_features=6, centers=3, random_state=0)
    Ivis(k=5, epochs=2, batch_size=32, random_state=0, verbose=1).fit(X.astype(np.float32))
    err = capsys.readouterr().err
    for epoch in (1, 2):
        assert f"Epoch {epoch}: " in err
    assert "rows/s" in err and "/2.00k [" in err
    # An epoch that Keras runs in one call (here 10 steps) would show a bar that never moves.
    Ivis(k=5, epochs=2, batch_size=32, random_state=0, verbose=1).fit(X[:300].astype(np.float32))
    err = capsys.readouterr().err
    assert "Training" in err and "Epoch 1: " not in err
