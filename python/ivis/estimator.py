"""The :class:`Ivis` estimator: parameters, checks and the public methods of a fitted model.

The estimator stores its parameters and fitted attributes and orchestrates a fit; the work
happens in modules that know nothing of it: neighbour search
(:mod:`ivis.data.neighbour_retrieval.search`), the training engine (:mod:`ivis.engine`),
parameter checks (:mod:`ivis._params`), seeds (:mod:`ivis._seeds`) and model folders
(:mod:`ivis.persistence`).
"""

import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ivis import _params, engine
from ivis._estimator_folders import ModelFolderMixin
from ivis._estimator_streaming import StreamingTransformMixin
from ivis._estimator_targets import SupervisionMixin
from ivis._seeds import draw_seed, stage_seed
from ivis._sklearn_checks import EXPECTED_FAILED_CHECKS  # noqa: F401 - re-exported
from ivis.data.inputs import as_row_source
from ivis.data.neighbour_retrieval.search import NeighbourSettings, open_search
from ivis.engine import TrainingData, TrainingState

def _targets(Y, y):
    if Y is not None and y is not None:
        raise ValueError("Pass the targets once, as Y (y is an alias of Y).")
    return Y if Y is not None else y


def _import_keras():
    from ivis._keras_import import import_keras

    return import_keras()


class Ivis(SupervisionMixin, ModelFolderMixin, StreamingTransformMixin, TransformerMixin, BaseEstimator):
    """Dimensionality reduction with a siamese neural network trained on triplets.

    For each data point (the anchor) ivis draws a positive among its ``k`` nearest
    neighbours and a negative among the other points, and trains a network to map anchors
    closer to positives than to negatives. The trained network embeds new data directly.

    Parameters
    ----------
    embedding_dims : int, default=2
        Dimensions of the embedding.
    k : int, default=150
        Nearest neighbours retrieved per point; must be below the number of rows.
    distance : str or callable, default='pn'
        The triplet loss: a registered name (see :func:`ivis.nn.losses.available_losses`) or a
        callable ``(y_true, y_pred)`` with ``y_pred`` of shape ``(3, batch_size, embedding_dims)``.
        The triplet losses ('pn' and the other published ones) compare each anchor with one
        negative; the contrastive losses 'infonce' and 'neg' compare it with every other point
        of its batch through a Cauchy similarity, which separates clusters more sharply (see
        ``docs/quality.md``). To load a model trained with a custom callable, pass the same
        callable here first.
    batch_size : int, default=128
        Triplets per gradient step; at most the number of rows.
    epochs : int, default=1000
        The most epochs to train for; each epoch uses every row once as an anchor.
    n_epochs_without_progress : int, default=20
        Patience of the stopping rule (``early_stopping``), in epochs.
    early_stopping : {'loss', 'embedding'}, default='loss'
        ``'loss'``: stop when the training loss (held-out loss with ``validation_fraction``)
        has not fallen for ``n_epochs_without_progress`` epochs, as published. ``'embedding'``:
        when a sample of training rows has not gained embedded neighbours for that many epochs
        and 200 steps (:class:`ivis.nn.callbacks.EmbeddingPlateau`; for contrastive losses).
    n_trees : int, default=50
        Annoy random-projection trees: more trees, better neighbours, larger index.
    ntrees : int, optional
        Deprecated alias of ``n_trees``.
    knn_distance_metric : str, default='angular'
        Metric of neighbour retrieval: 'angular', 'euclidean', 'manhattan', 'hamming' or 'dot'.
    search_k : int, default=-1
        Nodes Annoy inspects per query; -1 means ``n_trees * (k + 1)``.
    neighbour_search : {'annoy', 'clustered'}, default='annoy'
        How neighbours are found. ``'annoy'``: an Annoy index (``n_trees``, ``search_k``,
        ``annoy_index_path``, ``build_index_on_disk``); any data and metric, and the index
        can be kept in a file and reused. ``'clustered'``: rows are grouped into clusters of
        about 275 and each row is compared exactly with the rows of the clusters nearest to
        its own, as many as hold 0.95 of the exact neighbours of a sample of rows
        (:mod:`ivis.data.neighbour_retrieval.clustered`); for dense arrays in memory with the
        'angular' or 'euclidean' metric, faster than Annoy on wide rows and exact on small
        data (measured in ``docs/neighbours.md``).
    precompute : bool, default=True
        Extract every row's neighbours before training (``n_samples * k`` int32 in memory);
        False queries the index per batch instead.
    negative_sampling : {'in_batch', 'all_rows'}, default='in_batch'
        Where each anchor's negative comes from; either way it is a uniformly drawn row outside
        the anchor's neighbour list. ``'in_batch'``: one of the other anchors of the batch,
        whose embedding the network has computed already, so a triplet costs two network
        passes instead of three, and epochs are shorter (measured in ``bench/REPORT.md``); on
        small data the loss levels off sooner, so early stopping ends training earlier (raise
        ``n_epochs_without_progress`` to train longer). It applies when anchors
        are shuffled (``fit(..., shuffle_mode=True)``, the default);
        with ``shuffle_mode='batch'`` or ``False`` a batch's anchors are neighbours in storage
        order, and negatives are drawn from all rows instead. ``'all_rows'``: always draw
        from all rows, as the published algorithm does.
    model : str or keras.Model, default='szubert'
        Base network: 'szubert', 'hinton', 'maaten', or a Keras model of any input rank to which
        an embedding layer is appended. A given model is copied, so the caller's stays untouched.
    supervision_metric : str or callable, default='sparse_categorical_crossentropy'
        Keras loss trained on ``Y`` in supervised mode.
    supervision_weight : float, default=0.5
        Share of the supervised loss in [0, 1]; the triplet loss gets the rest.
    validation_fraction : float, optional
        Supervised training only: hold out this share of the labelled rows (drawn with
        ``random_state``). Their labels are not trained on; early stopping watches the
        supervised loss on them instead of the training loss, and the weights of the epoch
        where it was lowest are kept. Worth it on small labelled data (hundreds of rows),
        where the training loss keeps falling long after predictions stop improving.
    learning_rate : float, default=0.001
        Step size of the Adam optimizer. With a contrastive loss (``'infonce'``, ``'neg'``
        and the losses built on them) it is reached through a warm-up: it rises linearly from
        a tenth of its value over the first steps (:mod:`ivis.nn.warmup`). To vary it during
        training, pass a :class:`keras.callbacks.LearningRateScheduler` in ``callbacks``.
    weight_decay : float, default=0.0
        Decoupled weight decay (as in AdamW) of the base network's kernels: every step
        shrinks each by ``learning_rate * weight_decay`` times itself. Values around 10
        regularise small supervised problems; 0 disables it.
    annoy_index_path : str, optional
        An Annoy index file to reuse; it is built there if missing. Without it, the index lives
        in a temporary folder that is removed after fitting.
    callbacks : list of keras.callbacks.Callback, optional
        Callbacks run during training (see :mod:`ivis.nn.callbacks`).
    build_index_on_disk : bool, default=True
        Build the Annoy index in its file rather than in memory.
    neighbour_matrix : array of shape (n_samples, k) or Sequence, optional
        Precomputed 0-based neighbour indices; no neighbour search is run.
    verbose : int, default=1
        0 is silent; above 0 shows progress bars.
    random_state : int >= 0 or numpy.random.RandomState, optional
        Seed for the Annoy index, triplet sampling, weight initialisation and dropout; with it
        set, two fits on the same data and machine give identical embeddings. No global random
        state (Python's ``random``, NumPy's) is read or advanced either way.

    Attributes
    ----------
    model_ : keras.Model
        The siamese training network; ``model_.layers[3]`` is the encoder.
    encoder_ : keras.Model
        The trained network that maps rows to embeddings.
    supervised_head_ : keras.Model or None
        The supervised head applied to embeddings (supervised models only).
    classes_ : ndarray
        Class labels, in the order of ``score_samples`` columns (classification only).
    loss_history_ : list of float
        Training loss per epoch, across every fit of this model.
    validation_loss_history_ : list of float
        Supervised loss on the held-out rows per epoch, for the epochs trained with
        ``validation_fraction``.
    validation_indices_ : ndarray of int or None
        The rows held out in the last fit (``validation_fraction``), else None.
    n_features_in_ : int
        Features per row seen in fit (product of the row shape for n-dimensional rows).
    input_shape_ : tuple of int
        Shape of one row.
    neighbour_matrix_ : ndarray of shape (n_samples, k) or None
        Neighbours used in the last fit, when they were precomputed.
    timings_ : dict
        Seconds spent on ``'neighbours'`` and ``'training'``, ``'epochs'`` run and
        ``'seconds_per_epoch'`` in the last fit.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.preprocessing import MinMaxScaler
    >>> from ivis import Ivis
    >>> X = MinMaxScaler().fit_transform(load_iris().data)
    >>> embedding = Ivis(k=15, epochs=5, verbose=0, random_state=0).fit_transform(X)
    >>> embedding.shape
    (150, 2)
    """

    def __init__(
        self,
        embedding_dims=2,
        *,
        k=150,
        distance="pn",
        batch_size=128,
        epochs=1000,
        n_epochs_without_progress=20,
        early_stopping="loss",
        n_trees=50,
        ntrees=None,
        knn_distance_metric="angular",
        search_k=-1,
        neighbour_search="annoy",
        precompute=True,
        negative_sampling="in_batch",
        model="szubert",
        supervision_metric="sparse_categorical_crossentropy",
        supervision_weight=0.5,
        validation_fraction=None,
        learning_rate=0.001,
        weight_decay=0.0,
        annoy_index_path=None,
        callbacks=None,
        build_index_on_disk=True,
        neighbour_matrix=None,
        verbose=1,
        random_state=None,
    ):
        self.embedding_dims = embedding_dims
        self.k = k
        self.distance = distance
        self.batch_size = batch_size
        self.epochs = epochs
        self.n_epochs_without_progress = n_epochs_without_progress
        self.early_stopping = early_stopping
        self.n_trees = n_trees
        self.ntrees = ntrees
        self.knn_distance_metric = knn_distance_metric
        self.search_k = search_k
        self.neighbour_search = neighbour_search
        self.precompute = precompute
        self.negative_sampling = negative_sampling
        self.model = model
        self.supervision_metric = supervision_metric
        self.supervision_weight = supervision_weight
        self.validation_fraction = validation_fraction
        self.learning_rate = learning_rate
        self.weight_decay = weight_decay
        self.annoy_index_path = annoy_index_path
        self.callbacks = callbacks
        self.build_index_on_disk = build_index_on_disk
        self.neighbour_matrix = neighbour_matrix
        self.verbose = verbose
        self.random_state = random_state

    # Streaming transforms (transform_to, transform_generator) come from
    # StreamingTransformMixin; save_model, load_model and pickling from ModelFolderMixin.

    # ------------------------------------------------------------------ fitting

    def fit(self, X, Y=None, shuffle_mode=True, *, y=None):
        """Fit an ivis model on ``X`` (and ``Y`` for supervised training).

        Fitting a model that is already fitted (or loaded with :meth:`load_model`) continues
        training it; use :func:`sklearn.base.clone` for a fresh model.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset, dask.array.Array, IndexableDataset or AnnData
            Data of shape (n_samples, ...) to embed; an AnnData's ``.X`` (``obsm`` or a layer
            through :func:`ivis.scanpy.anndata_rows`).
        Y : array-like, optional
            Targets for supervised training, one per row of ``X`` (a list, NumPy array, pandas
            Series or Categorical; not a string or a dict). What they mean depends on
            ``supervision_metric``:

            - ``'sparse_categorical_crossentropy'`` (the default): class labels. Integers,
              strings, booleans and Categorical values are classes, in sorted order (the
              order of the categories for a Categorical); floats count as classes only when
              they are whole numbers. At least two classes are needed. Non-integer numbers
              are an error: numeric targets need a regression metric, such as ``'mae'``.
            - ``'categorical_crossentropy'``, ``'categorical_hinge'``: one-hot rows.
            - ``'binary_crossentropy'``: rows of 0/1 indicators, one column per label.
            - Any other Keras loss (``'mae'``, ``'mse'``, ``'logcosh'``, ``'huber'``, ...):
              real values, shape ``(n_samples,)`` or ``(n_samples, n_targets)``.

            A missing target (semi-supervised training) is ``-1``, ``None`` or ``NaN`` for a
            class label, and ``NaN`` in a row of values (``-1`` in every entry of a one-hot
            or multi-label row). Infinite targets are an error: missing is NaN only.
        shuffle_mode : {True, 'batch', False}, default=True
            The order in which rows are anchors within each epoch (every row is an anchor
            once per epoch; positives and negatives are always drawn at random):

            - ``True``: a new random permutation of all rows every epoch, so a batch's
              anchors are scattered rows. Best for data in memory.
            - ``'batch'``: the rows are cut into consecutive blocks of ``batch_size`` rows
              (rows ``0`` to ``batch_size - 1``, the next ``batch_size`` rows, ...); the
              order of the full blocks is shuffled every epoch and a shorter last block stays
              last. Each batch's anchors are exactly one block, a contiguous slice that data
              on disk (an h5py dataset) returns in one read. Recommended for such data.
            - ``False``: the rows in their stored order, every epoch.
        y : array-like, optional
            Alias of ``Y``, for scikit-learn utilities that pass targets as ``y=``.

        Returns
        -------
        self : Ivis
        """
        self._fit(X, _targets(Y, y), shuffle_mode)
        return self

    def fit_transform(self, X, Y=None, shuffle_mode=True, *, y=None):
        """Fit on ``X`` (and ``Y``) and return the embedding of ``X``.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dims)
        """
        source = self._fit(X, _targets(Y, y), shuffle_mode)
        return engine.embed(self.encoder_, source)

    def _check_params(self):
        """Check every parameter that does not depend on the data; ``distance`` against the loss registry."""
        _params.check_core_params(self)
        from ivis.nn.losses import triplet_loss

        triplet_loss(self.distance)

    def _fit(self, X, Y, shuffle_mode):
        self._check_params()
        _params.check_shuffle_mode(shuffle_mode)
        source = as_row_source(X, min_rows=2)
        if source.in_memory:
            source.check_finite()
        _params.check_batch_size(self.batch_size, source.n_rows)
        warm = self._is_fitted()
        if warm:
            _params.check_continuable(self, source.row_shape)
        _import_keras()
        targets, spec = self._prepare_targets(Y, source.n_rows, warm)
        if not warm:
            self._seed_ = draw_seed(self.random_state)
        targets, held_out = self._hold_out(targets, spec)
        from ivis.nn import devices

        distribution = devices.for_fit(self.encoder_ if warm else None, source.n_rows, self.batch_size)
        start = time.perf_counter()
        with open_search(self.neighbour_search, self._neighbour_settings(), self.neighbour_matrix) as search, \
                devices.training_scope(distribution):
            neighbours = search.find(source)
            self.neighbour_matrix_ = search.precomputed
            neighbour_seconds = time.perf_counter() - start
            if not warm:
                self._build(source, spec)
                devices.remember(self.encoder_, distribution)
            elif (spec is None) != (self.supervised_head_ is None):
                raise ValueError(
                    "Fitting again continues training, so Y must be given exactly when the model was "
                    "trained with labels. Use sklearn.base.clone(model) to train a new model."
                )
            start = time.perf_counter()
            epoch_seconds = self._train(TrainingData(source, neighbours, targets, shuffle_mode, held_out), distribution)
            training_seconds = time.perf_counter() - start
        self.timings_ = {
            "neighbours": neighbour_seconds,
            "training": training_seconds,
            "epochs": len(epoch_seconds),
            "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        }
        return source

    def _is_fitted(self):
        return getattr(self, "encoder_", None) is not None

    def _neighbour_settings(self):
        return NeighbourSettings(
            k=self.k, metric=self.knn_distance_metric, n_trees=_params.resolve_n_trees(self.n_trees, self.ntrees),
            search_k=self.search_k, precompute=self.precompute, index_path=self.annoy_index_path,
            build_index_on_disk=self.build_index_on_disk, verbose=self.verbose, seed=self._seed_,
        )

    # --------------------------------------------------------------- networks

    def _build(self, source, spec):
        from ivis.nn.sparse_input import uses_sparse_input

        # Seeded even without random_state (then from fresh entropy): an unseeded Keras layer
        # would draw its seed from Python's global random module.
        seed = stage_seed(self._seed_, "weights")
        row_shape = source.row_shape
        self.encoder_, self.supervised_head_ = engine.build_networks(
            self.model, row_shape, self.embedding_dims, spec, seed, sparse=uses_sparse_input(source)
        )
        self.input_shape_ = tuple(int(s) for s in row_shape)
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.loss_history_ = []
        self.validation_loss_history_ = []
        self._training = TrainingState()
        self._compile()

    def _networks(self):
        return engine.Networks(self.encoder_, self.supervised_head_, getattr(self, "model_", None))

    def _loss_settings(self):
        spec = getattr(self, "_target_spec_", None) if self.supervised_head_ is not None else None
        return engine.LossSettings(self.distance, self.supervision_metric, self.supervision_weight, spec)

    def _compile(self):
        self.model_ = engine.compile_networks(self._networks(), self._loss_settings(), self.learning_rate, self.weight_decay)

    def _train(self, data, devices=None):
        user_callbacks = list(self.callbacks or [])
        for callback in user_callbacks:
            if callable(getattr(callback, "register_ivis_model", None)):
                callback.register_ivis_model(self)
        self.loss_history_ = list(self.loss_history_)
        self.validation_loss_history_ = list(getattr(self, "validation_loss_history_", []))
        run = engine.RunSettings(
            batch_size=self.batch_size, epochs=self.epochs, patience=self.n_epochs_without_progress,
            negative_sampling=self.negative_sampling, learning_rate=self.learning_rate,
            weight_decay=self.weight_decay, verbose=self.verbose, sampling_seed=stage_seed(self._seed_, "sampling"),
            early_stopping=self.early_stopping, neighbour_metric=self.knn_distance_metric,
            devices=devices,
        )
        history = engine.TrainingHistory(self.loss_history_, self.validation_loss_history_)
        return engine.train(self._networks(), self._loss_settings(), run, data, self._training, history, user_callbacks)

    @property
    def _training_state_(self):
        """The training state as the manifest's ``training`` object (read-only)."""
        if getattr(self, "_training", None) is None:
            raise AttributeError("_training_state_")
        return self._training.as_manifest()

    # ------------------------------------------------------------- embedding

    def _check_transform_input(self, X):
        check_is_fitted(self, "encoder_")
        source = as_row_source(X)
        if tuple(source.row_shape) != tuple(self.input_shape_):
            raise ValueError(
                f"X has {source.n_features} features, but Ivis is expecting {self.n_features_in_} features "
                f"as input (rows of shape {tuple(self.input_shape_)}, as in fit; got {source.row_shape}). "
                "Pass data with the same columns, in the same order, as in fit."
            )
        if source.in_memory:
            source.check_finite()
        return source

    def transform(self, X):
        """Embed ``X`` with the trained network.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset, dask.array.Array, IndexableDataset or AnnData
            Rows of the same shape as in fit.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dims)
            A lazy ``dask.array.Array`` for a Dask array ``X``, embedded block by block
            (:func:`ivis.distributed.transform_dask`).
        """
        if type(X).__module__.startswith("dask.array"):  # a lazy result: see ivis.distributed
            from ivis.distributed.dask_arrays import transform_dask

            return transform_dask(self, X, load_model)
        source = self._check_transform_input(X)
        return engine.embed(self.encoder_, source)

    def score_samples(self, X):
        """Predictions of the supervised head for ``X``.

        Returns
        -------
        ndarray of shape (n_samples, n_outputs)
            Class probabilities (columns in ``classes_`` order) for classification, predicted
            values for regression.

        Raises
        ------
        ValueError
            If the model was trained without labels.
        """
        source = self._check_transform_input(X)
        if self.supervised_head_ is None:
            raise ValueError(
                "score_samples needs a supervised model, but this one was fitted without Y. "
                "Fit with labels, e.g. model.fit(X, Y)."
            )
        return engine.score(self._networks(), source)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = True
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags


def load_model(folder_path, **params):
    """Load a saved ivis model folder and return the fitted :class:`Ivis`.

    Parameters
    ----------
    folder_path : str or PathLike
        A folder written by :meth:`Ivis.save_model`.
    **params
        Constructor arguments applied before loading, e.g. ``distance=my_custom_loss``.
    """
    return Ivis(**params).load_model(folder_path)
