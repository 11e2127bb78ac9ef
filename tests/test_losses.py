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


CONTRASTIVE = ["infonce", "neg", "infonce_pn", "infonce_global"]


def test_every_documented_name_is_registered():
    assert set(BUILT_IN + CONTRASTIVE) <= set(losses.available_losses())


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


# Contrastive losses: every anchor against every other anchor and positive of its batch.


def _cauchy(a, b):
    return 1.0 / (1.0 + ((a - b) ** 2).sum())


def _batch_negatives(y_pred, i):
    """The negatives of anchor i: every positive but its own and every anchor but itself."""
    a, p, _ = y_pred
    return [p[j] for j in range(len(p)) if j != i] + [a[j] for j in range(len(a)) if j != i]


def infonce_reference(y_pred, exaggeration=1.0):
    a, p, _ = y_pred
    per_anchor = []
    for i in range(len(a)):
        positive = _cauchy(a[i], p[i])
        total = positive + sum(_cauchy(a[i], c) for c in _batch_negatives(y_pred, i))
        per_anchor.append(np.log(total) - exaggeration * np.log(positive))
    return np.mean(per_anchor)


def neg_reference(y_pred, n_negatives=5.0, normalizer=1.0):
    a, p, _ = y_pred
    per_anchor = []
    for i in range(len(a)):
        prob = lambda q: q / (q + normalizer)  # noqa: E731
        attraction = -np.log(prob(_cauchy(a[i], p[i])))
        repulsion = np.mean([-np.log(1 - prob(_cauchy(a[i], c))) for c in _batch_negatives(y_pred, i)])
        per_anchor.append(attraction + n_negatives * repulsion)
    return np.mean(per_anchor)


@pytest.mark.parametrize("name, reference_fn", [("infonce", infonce_reference), ("neg", neg_reference)])
def test_contrastive_loss_matches_numpy_reference(name, reference_fn):
    rng = np.random.default_rng(7)
    y_pred = rng.normal(scale=2.0, size=(3, 24, 2)).astype(np.float64)
    value = float(np.asarray(losses.triplet_loss(name)(None, y_pred.astype(np.float32))))
    assert value == pytest.approx(reference_fn(y_pred), rel=1e-4)


def test_negative_sampling_weight_and_normalizer_are_configurable():
    rng = np.random.default_rng(3)
    y_pred = rng.normal(size=(3, 16, 3))
    loss = losses.CauchyNegativeSamplingLoss(n_negatives=2, normalizer=0.1)
    value = float(np.asarray(loss(None, y_pred.astype(np.float32))))
    assert value == pytest.approx(neg_reference(y_pred, n_negatives=2, normalizer=0.1), rel=1e-4)


@pytest.mark.parametrize("name", ["infonce", "neg"])
def test_contrastive_loss_falls_when_positives_close_in_and_negatives_move_away(name):
    rng = np.random.default_rng(1)
    anchors = rng.normal(scale=5.0, size=(32, 2))
    loose = np.stack([anchors, anchors + rng.normal(size=(32, 2)), anchors])
    tight = np.stack([anchors, anchors + 0.01 * rng.normal(size=(32, 2)), anchors])
    spread = 10.0 * tight
    fn = losses.triplet_loss(name)
    value = lambda y: float(np.asarray(fn(None, y.astype(np.float32))))  # noqa: E731
    assert value(tight) < value(loose)
    assert value(spread) < value(tight)


@pytest.mark.parametrize("name", ["infonce", "neg"])
def test_contrastive_loss_ignores_the_sampled_negatives(name):
    # The batch supplies the negatives; the third triplet member only fits the triplet layout.
    rng = np.random.default_rng(2)
    y_pred = rng.normal(size=(3, 16, 2)).astype(np.float32)
    other = y_pred.copy()
    other[2] = rng.normal(size=(16, 2))
    fn = losses.triplet_loss(name)
    assert float(np.asarray(fn(None, y_pred))) == pytest.approx(float(np.asarray(fn(None, other))), rel=1e-6)


def test_blended_loss_is_the_weighted_sum():
    rng = np.random.default_rng(4)
    y_pred = rng.normal(size=(3, 16, 2)).astype(np.float32)
    blend = losses.BlendedLoss(losses.triplet_loss("infonce"), losses.triplet_loss("pn"), 0.25)
    expected = 0.75 * infonce_reference(y_pred.astype(np.float64)) + 0.25 * reference("pn", y_pred)
    assert float(np.asarray(blend(None, y_pred))) == pytest.approx(expected, rel=1e-4)


def test_infonce_pn_is_half_of_each():
    rng = np.random.default_rng(5)
    y_pred = rng.normal(size=(3, 16, 2)).astype(np.float32)
    expected = 0.5 * infonce_reference(y_pred.astype(np.float64)) + 0.5 * reference("pn", y_pred)
    assert float(np.asarray(losses.triplet_loss("infonce_pn")(None, y_pred))) == pytest.approx(expected, rel=1e-4)


def test_infonce_exaggeration_weights_the_attraction():
    rng = np.random.default_rng(6)
    y_pred = rng.normal(size=(3, 16, 2))
    loss = losses.CauchyInfoNceLoss(exaggeration=4)
    value = float(np.asarray(loss(None, y_pred.astype(np.float32))))
    assert value == pytest.approx(infonce_reference(y_pred, exaggeration=4), rel=1e-4)


def global_correlation_reference(coordinates, y_pred, weight):
    from scipy.spatial.distance import pdist

    # Every ordered pair, as the loss sees the full distance matrix (zeros on the diagonal).
    d_input = np.concatenate([pdist(coordinates), pdist(coordinates), np.zeros(len(coordinates))])
    d_embedding = np.concatenate([pdist(y_pred[0]), pdist(y_pred[0]), np.zeros(len(coordinates))])
    r = np.corrcoef(d_input, d_embedding)[0, 1]
    return infonce_reference(y_pred) + weight * (1.0 - r)


def test_global_correlation_loss_matches_numpy_reference():
    rng = np.random.default_rng(8)
    y_pred = rng.normal(scale=2.0, size=(3, 24, 2))
    coordinates = rng.normal(size=(24, 10))
    y_true, y_pred32 = coordinates.astype(np.float32), y_pred.astype(np.float32)
    value = float(np.asarray(losses.triplet_loss("infonce_global")(y_true, y_pred32)))
    assert value == pytest.approx(global_correlation_reference(coordinates, y_pred, 1.0), rel=1e-4)
    weighted = losses.GlobalCorrelationLoss(losses.triplet_loss("infonce"), weight=3.0)
    value = float(np.asarray(weighted(y_true, y_pred32)))
    assert value == pytest.approx(global_correlation_reference(coordinates, y_pred, 3.0), rel=1e-4)


def test_global_correlation_uses_the_first_max_rows_anchors():
    rng = np.random.default_rng(10)
    y_pred = rng.normal(scale=2.0, size=(3, 24, 2))
    coordinates = rng.normal(size=(24, 10))
    loss = losses.GlobalCorrelationLoss(lambda y_true, y_pred: 0.0, weight=1.0, max_rows=10)
    value = float(np.asarray(loss(coordinates.astype(np.float32), y_pred.astype(np.float32))))
    expected = global_correlation_reference(coordinates[:10], y_pred[:, :10], 1.0) - infonce_reference(y_pred[:, :10])
    assert value == pytest.approx(expected, rel=1e-4)
    # The whole batch gives a different value: the cap is what is applied.
    assert value != pytest.approx(global_correlation_reference(coordinates, y_pred, 1.0) - infonce_reference(y_pred), rel=1e-3)


def test_global_correlation_term_is_zero_when_the_anchors_are_the_input_scaled():
    rng = np.random.default_rng(9)
    coordinates = rng.normal(size=(20, 2))
    y_pred = np.stack([3.0 * coordinates, rng.normal(size=(20, 2)), rng.normal(size=(20, 2))])
    loss = losses.GlobalCorrelationLoss(lambda y_true, y_pred: 0.0, weight=1.0)
    value = lambda embedded: float(np.asarray(loss(coordinates.astype(np.float32), embedded.astype(np.float32))))  # noqa: E731
    assert value(y_pred) == pytest.approx(0.0, abs=1e-4)
    shuffled = y_pred.copy()
    shuffled[0] = y_pred[0][rng.permutation(20)]
    assert value(shuffled) > 0.5
