"""Every triplet loss against a NumPy reference, plus the loss registry."""

import numpy as np
import pytest

from ivis.nn import losses


def _distances(a, b, kind):
    diff = a - b
    if kind == "euclidean":
        return np.sqrt(np.maximum((diff**2).sum(-1), 1e-9))
    if kind == "manhattan":
        return np.abs(diff).sum(-1)
    if kind == "chebyshev":
        return np.abs(diff).max(-1)
    unit = lambda x: x / np.sqrt(np.maximum((x**2).sum(-1, keepdims=True), 1e-9))  # noqa: E731
    return 1 - (unit(a) * unit(b)).sum(-1)


def reference(name, y_pred, margin=1.0):
    a, p, n = y_pred
    kind = {"pn": "euclidean", "softmax_ratio": "euclidean", "softmax_ratio_pn": "euclidean"}.get(
        name, name.replace("_pn", "")
    )
    d_ap = _distances(a, p, kind)
    d_neg = _distances(a, n, kind)
    if name.endswith("pn"):
        d_neg = np.minimum(d_neg, _distances(p, n, kind))
    if name.startswith("softmax_ratio"):
        e_p, e_n = np.exp(d_ap), np.exp(d_neg)
        s_p, s_n = e_p / (e_p + e_n), e_n / (e_p + e_n)
        return np.mean(s_p**2 + (1 - s_n) ** 2)
    return np.mean(np.maximum(d_ap - d_neg + margin, 0))


BUILT_IN = [
    "pn", "euclidean", "manhattan_pn", "manhattan", "chebyshev", "chebyshev_pn",
    "softmax_ratio_pn", "softmax_ratio", "cosine", "cosine_pn",
]


@pytest.mark.parametrize("name", BUILT_IN)
def test_loss_matches_numpy_reference(name):
    rng = np.random.default_rng(42)
    y_pred = rng.normal(size=(3, 64, 4)).astype(np.float32)
    value = float(np.asarray(losses.triplet_loss(name)(None, y_pred)))
    assert value == pytest.approx(reference(name, y_pred), rel=1e-4, abs=1e-5)


def test_every_documented_name_is_registered():
    assert set(BUILT_IN) <= set(losses.available_losses())


def test_margin_is_one_by_default_and_configurable():
    rng = np.random.default_rng(0)
    y_pred = rng.normal(size=(3, 32, 2)).astype(np.float32)
    assert losses.EuclideanPnLoss().margin == 1
    wide = float(np.asarray(losses.EuclideanPnLoss(margin=5)(None, y_pred)))
    assert wide == pytest.approx(reference("pn", y_pred, margin=5), rel=1e-4)


def test_pn_uses_the_closer_of_both_negative_distances():
    # positive-negative distance (0.5) is smaller than anchor-negative (3): pn must use it.
    a, p, n = np.array([[0.0]]), np.array([[2.5]]), np.array([[3.0]])
    y_pred = np.stack([a, p, n]).astype(np.float32)
    pn = float(np.asarray(losses.triplet_loss("pn")(None, y_pred)))
    standard = float(np.asarray(losses.triplet_loss("euclidean")(None, y_pred)))
    assert pn == pytest.approx(2.5 - 0.5 + 1, rel=1e-4)
    assert standard == pytest.approx(2.5 - 3.0 + 1, rel=1e-4)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Valid names are: .*pn"):
        losses.triplet_loss("no_such_loss")


def test_callable_passes_through_and_registration_works():
    def mine(y_true, y_pred):
        return y_pred[0].sum() * 0

    assert losses.triplet_loss(mine) is mine
    losses.register_loss(mine, name="test_registered_mine")
    assert losses.triplet_loss("test_registered_mine") is mine

    @losses.register_loss
    def decorated_loss(y_true, y_pred):
        return y_pred[0].sum() * 0

    assert losses.triplet_loss("decorated_loss") is decorated_loss


def test_masked_supervised_loss_ignores_unlabelled_rows():
    import keras

    fn = keras.losses.sparse_categorical_crossentropy
    masked = losses.MaskedSupervisedLoss(fn, sparse=True)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=8).astype(np.float32)
    labels = np.array([0, 1, 2, 1, -1, -1, -1, -1], dtype=np.int32)
    full = float(np.asarray(masked(labels, probs)))
    only_labelled = float(np.asarray(masked(labels[:4], probs[:4])))
    assert full == pytest.approx(only_labelled, rel=1e-5)
    # A batch with no labelled row contributes nothing.
    assert float(np.asarray(masked(np.full(4, -1, dtype=np.int32), probs[:4]))) == 0.0
