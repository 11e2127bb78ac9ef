"""Triplet losses for training the siamese network.

Every loss takes ``(y_true, y_pred)`` where ``y_pred`` stacks the embeddings of a batch of
triplets with shape ``(3, batch_size, embedding_dims)``: anchors, positives, negatives. The
label argument ``y_true`` is ignored by triplet losses; it exists so that the losses fit
Keras's loss signature.

Losses are registered by name; :func:`triplet_loss` resolves a name (or passes a callable
through) and :func:`register_loss` adds a user's own. The ``*_pn`` variants compare the
positive distance with the *smaller* of the anchor-negative and positive-negative distances,
so that the negative is pushed away from both other points.

The contrastive losses (``infonce``, ``neg``; ``infonce_pn`` blends ``infonce`` and ``pn``;
``infonce_global`` adds a term on the correlation of input and embedding distances) compare each anchor with every
other point of its batch through a Cauchy similarity ``1 / (1 + d^2)`` of embedded points, as
in contrastive neighbour embedding (Damrich, Böhm, Hamprecht and Kobak, ICLR 2023): the
anchor's positive (one of its nearest neighbours) is attracted and the other anchors and
positives of the batch, whose embeddings are computed already, are its negatives.
"""

import keras
from keras import ops

_EPSILON = 1e-9

_LOSS_REGISTRY = {}


def register_loss(loss_fn=None, *, name=None):
    """Register a loss class or callable under a name usable as ``Ivis(distance=name)``.

    Can be used as a plain call, ``register_loss(fn, name='mine')``, or as a decorator, with
    or without arguments. A class is instantiated with ``name=name``; a callable is stored as
    it is. Without ``name``, the callable's ``__name__`` is used.

    Parameters
    ----------
    loss_fn : callable or type, optional
        A function ``(y_true, y_pred) -> loss`` taking triplets of shape
        ``(3, batch_size, embedding_dims)``, or a loss class.
    name : str, optional
        The registered name.

    Returns
    -------
    callable or type
        ``loss_fn`` unchanged, so that the function stays usable under its own name.
    """

    def decorator(fn):
        key = name or fn.__name__
        _LOSS_REGISTRY[key] = fn(name=key) if isinstance(fn, type) else fn
        return fn

    if loss_fn is None:
        return decorator
    return decorator(loss_fn)


def available_losses():
    """Return the sorted names of every registered triplet loss."""
    return sorted(_LOSS_REGISTRY)


def triplet_loss(distance="pn"):
    """Return the registered loss called ``distance``, or ``distance`` itself if callable.

    Raises
    ------
    ValueError
        If no loss is registered under that name; the message lists the valid names.
    """
    if callable(distance):
        return distance
    try:
        return _LOSS_REGISTRY[distance]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown distance {distance!r}. Valid names are: {', '.join(available_losses())}; "
            "or pass a callable (y_true, y_pred) -> loss, or register one with "
            "ivis.nn.losses.register_loss."
        ) from None


def loss_name(distance):
    """Return the name under which ``distance`` is (or would be) registered."""
    if isinstance(distance, str):
        return distance
    for key, fn in _LOSS_REGISTRY.items():
        if fn is distance:
            return key
    return getattr(distance, "name", None) or getattr(distance, "__name__", None)


# Distances between matching rows of two (batch, dims) tensors, each returning (batch,).


def euclidean_distance(x, y):
    # The epsilon keeps the gradient of sqrt finite when two embeddings coincide.
    return ops.sqrt(ops.maximum(ops.sum(ops.square(x - y), axis=-1), _EPSILON))


def manhattan_distance(x, y):
    return ops.sum(ops.abs(x - y), axis=-1)


def chebyshev_distance(x, y):
    return ops.max(ops.abs(x - y), axis=-1)


def cosine_distance(x, y):
    x = x / ops.sqrt(ops.maximum(ops.sum(ops.square(x), axis=-1, keepdims=True), _EPSILON))
    y = y / ops.sqrt(ops.maximum(ops.sum(ops.square(y), axis=-1, keepdims=True), _EPSILON))
    return 1.0 - ops.sum(x * y, axis=-1)


class TripletLoss:
    """Hinge triplet loss ``max(d(a, p) - d(a, n) + margin, 0)`` averaged over the batch.

    Parameters
    ----------
    margin : float, default=1
        The distance by which negatives should be further than positives.
    name : str, optional
        The registered name of this loss.
    """

    distance = staticmethod(euclidean_distance)
    use_pn = False

    def __init__(self, margin=1, name=None):
        self.margin = margin
        self.name = name or type(self).__name__
        self.__name__ = self.name

    def negative_distance(self, anchor, positive, negative):
        anchor_negative = self.distance(anchor, negative)
        if not self.use_pn:
            return anchor_negative
        return ops.minimum(anchor_negative, self.distance(positive, negative))

    def __call__(self, y_true, y_pred):
        anchor, positive, negative = y_pred[0], y_pred[1], y_pred[2]
        positive_distance = self.distance(anchor, positive)
        negative_distance = self.negative_distance(anchor, positive, negative)
        return ops.mean(ops.maximum(positive_distance - negative_distance + self.margin, 0.0))


class EuclideanTripletLoss(TripletLoss):
    """Standard triplet loss on euclidean distances."""


class EuclideanPnLoss(TripletLoss):
    """pn loss on euclidean distances: ``max(d(a,p) - min(d(a,n), d(p,n)) + margin, 0)``."""

    use_pn = True


class ManhattanTripletLoss(TripletLoss):
    """Standard triplet loss on manhattan (L1) distances."""

    distance = staticmethod(manhattan_distance)


class ManhattanPnLoss(ManhattanTripletLoss):
    """pn loss on manhattan (L1) distances."""

    use_pn = True


class ChebyshevTripletLoss(TripletLoss):
    """Standard triplet loss on chebyshev (L-infinity) distances."""

    distance = staticmethod(chebyshev_distance)


class ChebyshevPnLoss(ChebyshevTripletLoss):
    """pn loss on chebyshev (L-infinity) distances."""

    use_pn = True


class CosineTripletLoss(TripletLoss):
    """Standard triplet loss on cosine distances (one minus cosine similarity)."""

    distance = staticmethod(cosine_distance)


class CosinePnLoss(CosineTripletLoss):
    """pn loss on cosine distances."""

    use_pn = True


class EuclideanSoftmaxRatioLoss(TripletLoss):
    """Softmax ratio loss on euclidean distances.

    With ``s+, s- = softmax(d(a, p), d_neg)`` over each triplet, the loss is the mean of
    ``s+^2 + (1 - s-)^2``: zero when the negative is infinitely further than the positive.
    """

    def __init__(self, name=None):
        super().__init__(margin=0, name=name)

    def __call__(self, y_true, y_pred):
        anchor, positive, negative = y_pred[0], y_pred[1], y_pred[2]
        positive_distance = self.distance(anchor, positive)
        negative_distance = self.negative_distance(anchor, positive, negative)
        # softmax of two values, written with a shared maximum for numerical stability
        top = ops.maximum(positive_distance, negative_distance)
        exp_positive = ops.exp(positive_distance - top)
        exp_negative = ops.exp(negative_distance - top)
        total = exp_positive + exp_negative
        soft_positive = exp_positive / total
        soft_negative = exp_negative / total
        return ops.mean(ops.square(soft_positive) + ops.square(1.0 - soft_negative))


class EuclideanSoftmaxRatioPnLoss(EuclideanSoftmaxRatioLoss):
    """Softmax ratio loss using the pn negative distance ``min(d(a,n), d(p,n))``."""

    use_pn = True


def _batch_candidates(y_pred):
    """Squared distances from every anchor to every anchor and positive of the batch.

    Returns ``(sq_dist, not_self, eye)``: ``sq_dist`` of shape ``(batch, 2 * batch)``, columns
    ``0..batch-1`` the positives and ``batch..2*batch-1`` the anchors; ``not_self`` is 1.0
    except at each anchor's own column among the anchors, which is no negative of itself.
    ``eye`` is the ``(batch, batch)`` identity, marking each anchor's own positive.
    """
    anchor, positive = y_pred[0], y_pred[1]
    candidates = ops.concatenate([positive, anchor], axis=0)
    sq_anchor = ops.sum(ops.square(anchor), axis=-1, keepdims=True)
    sq_candidates = ops.sum(ops.square(candidates), axis=-1)
    cross = ops.matmul(anchor, ops.transpose(candidates))
    sq_dist = ops.maximum(sq_anchor + sq_candidates[None, :] - 2.0 * cross, 0.0)
    n = ops.shape(anchor)[0]
    eye = ops.eye(n, dtype=sq_dist.dtype)
    not_self = ops.concatenate([ops.ones_like(eye), 1.0 - eye], axis=1)
    return sq_dist, not_self, eye


class CauchyInfoNceLoss:
    """InfoNCE with a Cauchy similarity: each anchor picks its positive among the batch.

    With ``q(d) = 1 / (1 + d^2)`` and the batch's other anchors and positives as negatives,
    the loss of anchor ``i`` is ``-log(q(a_i, p_i) / sum_j q(a_i, c_j))``, the sum running over
    its positive and its ``2 * batch - 2`` negatives; the batch mean is returned. The third
    triplet member (the sampled negative) is not used: the batch supplies many more.

    With ``exaggeration`` ``rho > 1`` the attraction term ``-log q(a_i, p_i)`` is weighted by
    ``rho``: stronger attraction moves the embedding along the attraction-repulsion spectrum
    of Damrich et al. towards more continuous, globally faithful layouts, as early
    exaggeration does in t-SNE.

    Parameters
    ----------
    exaggeration : float, default=1
        Weight of the attraction term.
    name : str, optional
        The registered name of this loss.
    """

    contrastive = True

    def __init__(self, exaggeration=1.0, name=None):
        self.exaggeration = float(exaggeration)
        self.name = name or type(self).__name__
        self.__name__ = self.name

    def __call__(self, y_true, y_pred):
        sq_dist, not_self, _ = _batch_candidates(y_pred)
        # q <= 1 and the sum includes the positive's q > 0, so log(sum q) needs no
        # log-sum-exp guard; the positive's distance is taken from the pair itself.
        log_sum_q = ops.log(ops.sum(not_self / (1.0 + sq_dist), axis=1))
        positive_sq = ops.sum(ops.square(y_pred[0] - y_pred[1]), axis=-1)
        return ops.mean(log_sum_q + self.exaggeration * ops.log1p(positive_sq))


class CauchyNegativeSamplingLoss:
    """Negative sampling (NEG) with a Cauchy similarity, negatives taken from the batch.

    A pair is classified as a neighbour pair with probability ``q / (q + normalizer)``,
    ``q = 1 / (1 + d^2)``. The loss of anchor ``i`` is ``-log P(a_i, p_i)`` plus
    ``n_negatives`` times the mean of ``-log(1 - P(a_i, c_j))`` over its negatives (the other
    anchors and positives of the batch): the expected loss of ``n_negatives`` sampled
    negatives, with the variance of a whole batch's average. With ``normalizer=1`` this is the
    negative sampling of UMAP-like embeddings; larger values repel less (towards more compact
    clusters), smaller values more (towards t-SNE).

    Parameters
    ----------
    n_negatives : float, default=5
        Weight of the repulsion: the number of negatives one positive pair is set against.
    normalizer : float, default=1
        The fixed normalising constant of the noise-contrastive classifier.
    name : str, optional
        The registered name of this loss.
    """

    contrastive = True

    def __init__(self, n_negatives=5, normalizer=1.0, name=None):
        self.n_negatives = float(n_negatives)
        self.normalizer = float(normalizer)
        self.name = name or type(self).__name__
        self.__name__ = self.name

    def __call__(self, y_true, y_pred):
        sq_dist, not_self, eye = _batch_candidates(y_pred)
        n = ops.shape(eye)[0]
        z = self.normalizer
        # -log(q / (q + z)) = log(1 + z (1 + d^2)); -log(1 - q / (q + z)) = log(1 + q / z).
        attraction = ops.log1p(z * (1.0 + ops.sum(sq_dist[:, :n] * eye, axis=1)))
        negative = not_self - ops.concatenate([eye, ops.zeros_like(eye)], axis=1)
        repulsion = ops.log1p(1.0 / (z * (1.0 + sq_dist)))
        mean_repulsion = ops.sum(repulsion * negative, axis=1) / ops.maximum(ops.sum(negative, axis=1), 1.0)
        return ops.mean(attraction + self.n_negatives * mean_repulsion)


class BlendedLoss:
    """A weighted sum of two losses over the same triplets.

    Parameters
    ----------
    first, second : callable
        Losses ``(y_true, y_pred) -> scalar``.
    second_weight : float
        Weight of ``second``; ``first`` gets ``1 - second_weight``.
    name : str, optional
        The registered name of this loss.
    """

    def __init__(self, first, second, second_weight, name=None):
        self.first = first
        self.second = second
        self.second_weight = float(second_weight)
        self.name = name or type(self).__name__
        self.__name__ = self.name

    def __call__(self, y_true, y_pred):
        return (1.0 - self.second_weight) * self.first(y_true, y_pred) + self.second_weight * self.second(
            y_true, y_pred
        )


def _pairwise_distances(x):
    """Euclidean distances between all rows of ``x``, flattened to ``(batch * batch,)``."""
    sq = ops.sum(ops.square(x), axis=-1, keepdims=True)
    sq_dist = ops.maximum(sq + ops.transpose(sq) - 2.0 * ops.matmul(x, ops.transpose(x)), 0.0)
    return ops.reshape(ops.sqrt(sq_dist + _EPSILON), (-1,))


class GlobalCorrelationLoss:
    """A loss plus a term that keeps the batch's distances correlated with the input's.

    The term is ``weight * (1 - r)``, ``r`` the Pearson correlation between the pairwise
    Euclidean distances of the batch's anchors in the input and in the embedding, as in the
    global loss of Parametric UMAP (Sainburg, McInnes and Gentner, 2021). Input distances are
    taken in a fixed PCA projection of the training rows to ``input_components`` dimensions,
    which training passes as the loss's first argument, one row of coordinates per anchor
    (see :func:`ivis.nn.training.input_coordinates`). A contrastive loss alone lets separated
    groups drift apart and tears continuous data; the term holds the layout of the whole to
    the input's.

    Parameters
    ----------
    base : callable
        The loss ``(y_true, y_pred) -> scalar`` the term is added to; it does not read ``y_true``.
    weight : float, default=1
        Weight of the correlation term.
    input_components : int, default=10
        Dimensions of the PCA projection the input distances are measured in.
    max_rows : int, default=256
        The correlation is taken over the batch's first ``max_rows`` anchors: its cost grows
        with the square of the rows, and a few hundred rows (tens of thousands of pairs)
        estimate it closely.
    name : str, optional
        The registered name of this loss.
    """

    def __init__(self, base, weight=1.0, input_components=10, max_rows=256, name=None):
        self.base = base
        self.weight = float(weight)
        self.input_components = int(input_components)
        self.max_rows = int(max_rows)
        self.name = name or type(self).__name__
        self.__name__ = self.name

    def __call__(self, y_true, y_pred):
        anchor = y_pred[0]
        coordinates = ops.cast(ops.reshape(y_true, (ops.shape(anchor)[0], -1)), anchor.dtype)
        d_input = _pairwise_distances(coordinates[:self.max_rows])
        d_embedding = _pairwise_distances(anchor[:self.max_rows])
        d_input = d_input - ops.mean(d_input)
        d_embedding = d_embedding - ops.mean(d_embedding)
        r = ops.sum(d_input * d_embedding) / ops.sqrt(
            ops.sum(ops.square(d_input)) * ops.sum(ops.square(d_embedding)) + _EPSILON
        )
        return self.base(y_true, y_pred) + self.weight * (1.0 - r)


for _name, _cls in [
    ("pn", EuclideanPnLoss),
    ("euclidean", EuclideanTripletLoss),
    ("manhattan_pn", ManhattanPnLoss),
    ("manhattan", ManhattanTripletLoss),
    ("chebyshev", ChebyshevTripletLoss),
    ("chebyshev_pn", ChebyshevPnLoss),
    ("softmax_ratio_pn", EuclideanSoftmaxRatioPnLoss),
    ("softmax_ratio", EuclideanSoftmaxRatioLoss),
    ("cosine", CosineTripletLoss),
    ("cosine_pn", CosinePnLoss),
    ("infonce", CauchyInfoNceLoss),
    ("neg", CauchyNegativeSamplingLoss),
]:
    register_loss(_cls, name=_name)

# Half InfoNCE, half pn: the contrastive loss's separated clusters with the triplet loss's
# faithfulness to distances between them and on continuous data.
register_loss(BlendedLoss(_LOSS_REGISTRY["infonce"], _LOSS_REGISTRY["pn"], 0.5, name="infonce_pn"), name="infonce_pn")
# InfoNCE held to the input's global layout: separated groups, distances kept honest.
register_loss(GlobalCorrelationLoss(_LOSS_REGISTRY["infonce"], 1.0, name="infonce_global"), name="infonce_global")


class KerasTripletLoss(keras.losses.Loss):
    """Adapts a triplet loss callable to :class:`keras.losses.Loss` for ``compile``."""

    def __init__(self, fn, name="triplet_loss"):
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


class MaskedSupervisedLoss(keras.losses.Loss):
    """A supervised loss averaged over the labelled rows of a batch only.

    Rows whose target is missing (``-1`` class labels, NaN values) add nothing, and a batch
    with no labelled row contributes zero loss and so no gradient: unlabelled rows never
    dilute the supervised signal.

    Parameters
    ----------
    fn : callable
        A per-sample Keras loss function ``(y_true, y_pred) -> (batch,)``.
    sparse : bool
        True for integer class labels (missing = -1), False for real-valued rows
        (missing = NaN anywhere in the row).
    """

    def __init__(self, fn, sparse, name="supervised_loss"):
        super().__init__(name=name, reduction="sum_over_batch_size")
        self.fn = fn
        self.sparse = sparse

    def call(self, y_true, y_pred):
        if self.sparse:
            y_true = ops.reshape(y_true, (-1,))
            labelled = y_true >= 0
            y_true = ops.where(labelled, y_true, ops.zeros_like(y_true))
        else:
            finite = ops.isfinite(y_true)
            labelled = ops.all(finite, axis=-1)
            y_true = ops.where(finite, y_true, ops.zeros_like(y_true))
        per_row = self.fn(y_true, y_pred)
        weights = ops.cast(labelled, per_row.dtype)
        return ops.sum(per_row * weights) / ops.maximum(ops.sum(weights), 1.0)


def semi_supervised_loss(loss_function):
    """Wrap a per-sample supervised loss so that rows labelled ``-1`` are ignored.

    The returned function averages ``loss_function`` over the labelled rows of a batch
    only; a batch without labels gives zero.
    """
    masked = MaskedSupervisedLoss(loss_function, sparse=True)

    def loss(y_true, y_pred):
        return masked.call(y_true, y_pred)

    loss.__name__ = f"semi_supervised_{getattr(loss_function, '__name__', 'loss')}"
    return loss
