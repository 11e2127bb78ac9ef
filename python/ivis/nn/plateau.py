"""Stopping on the embedding itself: :class:`EmbeddingPlateau` and its neighbour-preservation score.

Importable from :mod:`ivis.nn.callbacks` like the other callbacks.
"""

import keras
import numpy as np


def check_data_rows(callback):
    """Fail at train begin, not after an epoch, if a callback's ``data`` does not fit its model."""
    shape = getattr(callback.data, "shape", None)
    if shape is None:
        shape = np.shape(callback.data)
    expected = tuple(callback.ivis_model.input_shape_)
    if tuple(shape[1:]) != expected:
        raise ValueError(
            f"{type(callback).__name__}: data has rows of shape {tuple(shape[1:])}, but the model "
            f"takes rows of shape {expected}. Pass rows like the training data."
        )


_SAMPLE_METRICS = {"angular": "euclidean", "euclidean": "euclidean", "manhattan": "manhattan",
                   "hamming": "hamming", "dot": "cosine"}


def sample_neighbours(rows, n_neighbors, metric="euclidean"):
    """Each row's ``n_neighbors`` nearest other rows, found exactly: ints of shape ``(n, n_neighbors)``."""
    from sklearn.neighbors import NearestNeighbors

    rows = np.asarray(rows, dtype=np.float64).reshape(len(rows), -1)
    if metric == "angular":
        rows = rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-12)
    search = NearestNeighbors(n_neighbors=n_neighbors + 1, metric=_SAMPLE_METRICS.get(metric, metric)).fit(rows)
    ids = search.kneighbors(rows, return_distance=False)
    # A row is its own nearest neighbour except among duplicates: drop it wherever it is.
    own = ids == np.arange(len(rows))[:, None]
    drop = np.where(own.any(axis=1), own.argmax(axis=1), n_neighbors)
    keep = np.ones_like(ids, dtype=bool)
    keep[np.arange(len(rows)), drop] = False
    return ids[keep].reshape(len(rows), n_neighbors)


def neighbour_preservation(reference, embedding, n_neighbors):
    """Mean share of the ``reference`` neighbours of each row that are among its nearest in ``embedding``."""
    found = sample_neighbours(embedding, n_neighbors)
    hits = (reference[:, :, None] == found[:, None, :]).any(axis=2)
    return float(hits.mean())


class EmbeddingPlateau(keras.callbacks.Callback):
    """Stop training when the embedding of a fixed sample of rows stops gaining neighbours.

    After every epoch the sample is embedded and scored by its neighbour preservation: the
    share of each sampled row's ``n_neighbors`` nearest input-space neighbours (within the
    sample) that are also its nearest in the embedding. Training stops once the score has not
    risen more than ``tolerance`` above its best for ``patience`` epochs and ``min_steps``
    training steps (on small data an epoch is a few steps, too few to tell a plateau from slow
    progress). Unlike the loss, the
    score is the same whatever the loss, batch or sampling noise, and it measures what a user
    sees: which points end up together. The score of each epoch is added to the epoch's logs
    as ``'neighbour_preservation'`` and kept in ``scores``.

    Scoring costs an embedding of the sample and a neighbour search in it, more than an epoch
    of a few steps takes, so on small data the score is taken only at the end of the first
    epoch after at least ``check_steps`` steps since the last score; the epochs and steps in
    between count as waited when that score shows no progress.

    ``Ivis(early_stopping='embedding')`` builds this rule itself, on the training rows, with
    ``n_epochs_without_progress`` as its patience, instead of the rule on the loss; its state
    is then saved with checkpoints like the loss rule's. Passed in ``callbacks``, it stops
    training alongside the estimator's own rule (on the loss by default; with the contrastive
    losses, whose loss keeps falling slowly, this callback is usually the one that stops),
    and its state is not saved with checkpoints: a resumed run starts waiting afresh.

    Parameters
    ----------
    data : array-like, sparse matrix, h5py.Dataset or IndexableDataset
        Rows like the training data (the training data itself, typically); a fixed random
        sample of them is watched.
    patience : int, default=5
        Epochs without progress before training stops.
    min_steps : int, default=200
        Training steps (batches) without progress before training stops, however many epochs
        that takes.
    n_rows : int, default=2000
        Rows watched; fewer when ``data`` has fewer.
    n_neighbors : int, default=10
        Neighbours compared per watched row.
    tolerance : float, default=0.005
        The least rise of the score that counts as progress.
    metric : str, optional
        Input-space metric, a ``knn_distance_metric`` name; by default the estimator's.
    random_state : int, default=0
        Seed of the sample.
    check_steps : int, default=16
        The least training steps between two scores.

    Examples
    --------
    >>> from ivis import Ivis
    >>> from ivis.nn.callbacks import EmbeddingPlateau
    >>> model = Ivis(distance='infonce', callbacks=[EmbeddingPlateau(X)])  # doctest: +SKIP
    """

    def __init__(self, data, patience=5, min_steps=200, n_rows=2000, n_neighbors=10, tolerance=0.005, metric=None,
                 random_state=0, check_steps=16):
        from ivis.data.inputs import as_row_source

        super().__init__()
        source = as_row_source(data, min_rows=2)
        rng = np.random.default_rng(random_state)
        picked = np.sort(rng.choice(source.n_rows, min(int(n_rows), source.n_rows), replace=False))
        self.data = source.get_batch(picked)
        self.patience = int(patience)
        self.min_steps = int(min_steps)
        self.n_neighbors = min(int(n_neighbors), len(self.data) - 1)
        self.tolerance = float(tolerance)
        self.metric = metric
        self.check_steps = int(check_steps)
        self.ivis_model = None
        self.embed_rows = None
        self.scores = []
        self.best = -np.inf
        self.wait = 0
        self.steps_waited = 0
        self.stopped_early = False
        self._reference = None
        self._saved = None
        self._unscored = (0, 0)  # epochs and steps trained since the last score

    def register_ivis_model(self, ivis_model):
        """Receive the :class:`ivis.Ivis` being trained (the estimator calls this before training)."""
        self.ivis_model = ivis_model

    def watch(self, embed, metric, saved=None):
        """Score the embedding ``embed(rows)`` returns, with neighbours under ``metric``; resume from ``saved`` (see :meth:`state`)."""
        self.embed_rows = embed
        self.metric = self.metric or metric
        self._saved = saved

    def embed(self, rows):
        if self.embed_rows is not None:
            return self.embed_rows(rows)
        return self.ivis_model.transform(rows)

    def on_train_begin(self, logs=None):
        if self.ivis_model is None and self.embed_rows is None:
            raise RuntimeError(
                "EmbeddingPlateau needs the ivis estimator: pass it as Ivis(callbacks=[...]), not to a "
                "Keras model's fit."
            )
        if self.ivis_model is not None:
            check_data_rows(self)
        metric = self.metric or self.ivis_model.knn_distance_metric
        self._reference = sample_neighbours(self.data, self.n_neighbors, metric)
        saved = self._saved or {}
        best = saved.get("best")
        self.best = -np.inf if best is None else float(best)
        self.wait, self.steps_waited = int(saved.get("wait", 0)), int(saved.get("steps_waited", 0))
        self.stopped_early, self._unscored = False, (0, 0)

    def on_epoch_end(self, epoch, logs=None):
        epochs, steps = self._unscored
        epochs, steps = epochs + 1, steps + int((self.params or {}).get("steps") or 1)
        if steps < self.check_steps:
            self._unscored = (epochs, steps)
            return
        self._unscored = (0, 0)
        score = neighbour_preservation(self._reference, self.embed(self.data), self.n_neighbors)
        self.scores.append(score)
        if logs is not None:
            logs["neighbour_preservation"] = score
        if score > self.best + self.tolerance:
            self.best, self.wait, self.steps_waited = score, 0, 0
            return
        self.wait += epochs
        self.steps_waited += steps
        if self.has_stopped():
            self.stopped_early = True
            self.model.stop_training = True

    def has_stopped(self):
        """Whether the epochs and steps waited without progress are enough to stop."""
        return self.wait >= self.patience and self.steps_waited >= self.min_steps

    def state(self):
        """The best score and what was waited since, to resume a run from (see :meth:`watch`)."""
        best = self.best if np.isfinite(self.best) else None
        return {"best": best, "wait": self.wait, "steps_waited": self.steps_waited}

    def __getstate__(self):
        state = dict(self.__dict__)
        state["ivis_model"] = None
        state["embed_rows"] = None
        state["_model"] = None
        return state


def embedding_rule(source, embed, patience, metric, seed, saved=None):
    """The rule of ``Ivis(early_stopping='embedding')``: an :class:`EmbeddingPlateau` on the training rows."""
    rule = EmbeddingPlateau(source, patience=patience, random_state=seed)
    rule.watch(embed, metric, saved)
    return rule
