"""The :class:`Ivis` estimator: parameters, checks and the public methods of a fitted model.

The estimator stores its parameters and fitted attributes and orchestrates a fit; the work
happens in modules that know nothing of it: neighbour search
(:mod:`ivis.data.neighbour_retrieval.search`), the training engine (:mod:`ivis.engine`),
parameter checks (:mod:`ivis._params`), seeds (:mod:`ivis._seeds`) and model folders
(:mod:`ivis.persistence`).
"""

import os
import shutil
import tempfile
import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ivis import _params, engine, persistence
from ivis._seeds import draw_seed, stage_seed
from ivis.data.inputs import ArraySource, as_row_source
from ivis.data.neighbour_retrieval.search import NeighbourSettings, open_search
from ivis.engine import TRANSFORM_CHUNK_ROWS, TrainingData, TrainingState

# scikit-learn estimator checks that cannot apply to ivis, with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_fit_idempotent": "fit on a fitted model continues training it (resumable training); clone() gives a fresh fit",
    "check_transformer_general": "it fits the same estimator twice, and a second fit continues training",
    "check_transformer_general(readonly_memmap=True)": "it fits the same estimator twice, and a second fit continues training",
    "check_pipeline_consistency": "it fits the same estimator twice, and a second fit continues training",
    "check_transformer_data_not_an_array": "it fits the same estimator twice, and a second fit continues training",
    "check_methods_sample_order_invariance": "float32 network outputs differ by ~1e-6 with the row order of a batch (BLAS blocking), above the check's 1e-7 tolerance",
}


def _targets(Y, y):
    if Y is not None and y is not None:
        raise ValueError("Pass the targets once, as Y (y is an alias of Y).")
    return Y if Y is not None else y


def _import_keras():
    from ivis._keras_import import import_keras

    return import_keras()


class Ivis(TransformerMixin, BaseEstimator):
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
        Stop when the loss has not improved for this many epochs.
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
        (:mod:`ivis.data.neighbour_retrieval.clustered`); for dense arrays in
        memory with the 'angular' or 'euclidean' metric, about five times faster than Annoy on
        wide rows (Fashion-MNIST: 5 s against 20 s, with 0.96 of the exact neighbours against
        0.92), and exact on data of up to 5,500 rows.
    precompute : bool, default=True
        Extract every row's neighbours before training (``n_samples * k`` int32 in memory);
        False queries the index per batch instead.
    negative_sampling : {'in_batch', 'all_rows'}, default='in_batch'
        Where each anchor's negative comes from; either way it is a uniformly drawn row outside
        the anchor's neighbour list. ``'in_batch'``: one of the other anchors of the batch,
        whose embedding the network has computed already, so a triplet costs two network
        passes instead of three: epochs about a fifth faster, with embeddings as good on large
        data; on small data the loss levels off sooner, so early stopping ends training
        earlier (raise ``n_epochs_without_progress`` to train longer). It applies when anchors
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
        Step size of the Adam optimizer. To vary it during training, pass a
        :class:`keras.callbacks.LearningRateScheduler` in ``callbacks``.
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

    # ------------------------------------------------------------------ fitting

    def fit(self, X, Y=None, shuffle_mode=True, *, y=None):
        """Fit an ivis model on ``X`` (and ``Y`` for supervised training).

        Fitting a model that is already fitted (or loaded with :meth:`load_model`) continues
        training it; use :func:`sklearn.base.clone` for a fresh model.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
            Data of shape (n_samples, ...) to embed.
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

    def _fit(self, X, Y, shuffle_mode):
        _params.check_core_params(self)
        _params.check_shuffle_mode(shuffle_mode)
        source = as_row_source(X, min_rows=2)
        if source.in_memory:
            source.check_finite()
        _params.check_batch_size(self.batch_size, source.n_rows)
        warm = self._is_fitted()
        if warm:
            self._check_continuable(source)
        _import_keras()
        targets, spec = self._prepare_targets(Y, source.n_rows, warm)
        if not warm:
            self._seed_ = draw_seed(self.random_state)
        targets, held_out = self._hold_out(targets, spec)
        start = time.perf_counter()
        with open_search(self.neighbour_search, self._neighbour_settings(), self.neighbour_matrix) as search:
            neighbours = search.find(source)
            self.neighbour_matrix_ = search.precomputed
            neighbour_seconds = time.perf_counter() - start
            if not warm:
                self._build(source.row_shape, spec)
            elif (spec is None) != (self.supervised_head_ is None):
                raise ValueError(
                    "Fitting again continues training, so Y must be given exactly when the model was "
                    "trained with labels. Use sklearn.base.clone(model) to train a new model."
                )
            start = time.perf_counter()
            epoch_seconds = self._train(TrainingData(source, neighbours, targets, shuffle_mode, held_out))
            training_seconds = time.perf_counter() - start
        self.timings_ = {
            "neighbours": neighbour_seconds,
            "training": training_seconds,
            "epochs": len(epoch_seconds),
            "seconds_per_epoch": float(np.mean(epoch_seconds)) if epoch_seconds else float("nan"),
        }
        return source

    def _check_continuable(self, source):
        """Refuse data or parameters that describe another network than the one a new fit would continue."""
        fitted_dims = int(self.encoder_.outputs[0].shape[-1])
        base_name = self.encoder_.layers[1].name
        if tuple(source.row_shape) != tuple(self.input_shape_):
            raise ValueError(
                f"This model was fitted on rows of shape {tuple(self.input_shape_)}; X has rows of "
                f"shape {source.row_shape}. Fitting again continues training, so the shape must "
                "match; use sklearn.base.clone(model) to fit a new model on other data."
            )
        if self.embedding_dims != fitted_dims:
            changed = f"embedding_dims is {self.embedding_dims} but the trained encoder outputs {fitted_dims} dimensions"
        elif isinstance(self.model, str) and self.model != base_name:
            changed = f"model is {self.model!r} but the trained base network is {base_name!r}"
        else:
            return
        raise ValueError(
            f"Fitting again continues training the existing network, and {changed}. Keep the "
            "parameters the model was trained (or loaded) with, or use sklearn.base.clone(model) "
            "to train a new network."
        )

    def _is_fitted(self):
        return getattr(self, "encoder_", None) is not None

    def _prepare_targets(self, Y, n_rows, warm):
        if Y is None:
            return None, None
        from ivis.supervision import prepare_targets

        classes = getattr(self, "classes_", None) if warm else None
        targets, spec = prepare_targets(Y, self.supervision_metric, n_rows, classes)
        if spec.classes is not None:
            self.classes_ = spec.classes
        self._target_spec_ = spec
        return targets, spec

    def _hold_out(self, targets, spec):
        """Return ``(training_targets, held_out)``: the rows ``validation_fraction`` sets aside."""
        self.validation_indices_ = None
        if self.validation_fraction is None:
            return targets, None
        if spec is None:
            raise ValueError(
                "validation_fraction holds out labelled rows to watch the supervised loss on, so it "
                "needs Y. Fit with labels, or leave validation_fraction=None."
            )
        if not isinstance(self.supervision_metric, str):
            raise ValueError(
                "validation_fraction hides the held-out rows' labels from training, which a custom "
                "supervision_metric function cannot do. Use a Keras loss name or validation_fraction=None."
            )
        from ivis.supervision import hold_out_labelled_rows

        training_targets, held_out = hold_out_labelled_rows(
            targets, spec, self.validation_fraction, stage_seed(self._seed_, "validation")
        )
        self.validation_indices_ = held_out
        return training_targets, (held_out, targets[held_out])

    def _neighbour_settings(self):
        return NeighbourSettings(
            k=self.k, metric=self.knn_distance_metric, n_trees=_params.resolve_n_trees(self.n_trees, self.ntrees),
            search_k=self.search_k, precompute=self.precompute, index_path=self.annoy_index_path,
            build_index_on_disk=self.build_index_on_disk, verbose=self.verbose, seed=self._seed_,
        )

    # --------------------------------------------------------------- networks

    def _build(self, row_shape, spec):
        # Seeded even without random_state (then from fresh entropy): an unseeded Keras layer
        # would draw its seed from Python's global random module.
        seed = stage_seed(self._seed_, "weights")
        self.encoder_, self.supervised_head_ = engine.build_networks(self.model, row_shape, self.embedding_dims, spec, seed)
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

    def _train(self, data):
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
        X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
            Rows of the same shape as in fit.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dims)
        """
        return engine.embed(self.encoder_, self._check_transform_input(X))

    # ------------------------------------------------- streaming transform
    # Embeddings of data larger than memory: written chunk by chunk to disk, or yielded per
    # chunk. Only one chunk of rows and its embedding are in memory at a time.

    def transform_to(self, X, out, chunk_rows=TRANSFORM_CHUNK_ROWS):
        """Embed ``X`` chunk by chunk, writing the embedding into ``out`` as it goes.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
            Rows of the same shape as in fit; read ``chunk_rows`` rows at a time.
        out : h5py.Dataset, (str, str), numpy.memmap, numpy.ndarray or str
            Where the embedding goes:

            - an ``h5py.Dataset`` of shape ``(n_samples, embedding_dims)`` in a file open for
              writing;
            - a ``(file path, dataset name)`` pair: a new float32 dataset of that shape is
              created in the file (the file is created if missing, and closed at the end);
            - a NumPy array or ``numpy.memmap`` of that shape (a memmap is flushed at the end);
            - the path of a ``.npy`` file, created (or replaced) with
              ``numpy.lib.format.open_memmap``; read it back with
              ``numpy.load(path, mmap_mode='r')``.
        chunk_rows : int, default=8192
            Rows read, embedded and written per step (fewer for very wide rows).

        Returns
        -------
        out
            The ``out`` given, now holding the embedding.

        Raises
        ------
        ValueError
            If ``out`` has the wrong shape, is read-only or closed, or names an existing dataset.

        Examples
        --------
        >>> import h5py
        >>> with h5py.File("data.h5", "r") as f:                      # doctest: +SKIP
        ...     model.transform_to(f["X"], ("embedding.h5", "ivis"))
        >>> model.transform_to(X, "embedding.npy")                    # doctest: +SKIP
        """
        from ivis.data.outputs import open_output

        source = self._check_transform_input(X)
        _params.check_int("chunk_rows", chunk_rows, 1)
        dims = int(self.encoder_.outputs[0].shape[-1])
        target, finish = open_output(out, (source.n_rows, dims), chunk_rows)
        try:
            for start, chunk in source.iter_chunks(chunk_rows):
                target[start:start + len(chunk)] = engine.embed(self.encoder_, ArraySource(chunk))
        finally:
            finish()
        return out

    def transform_generator(self, chunks):
        """Embed an iterable of chunks of rows lazily, yielding one embedding per chunk.

        Nothing is read before the first embedding is asked for, and only one chunk is held
        at a time, so data of any size can be embedded from a generator::

            for embedding in model.transform_generator(reader):
                sink.write(embedding)

        Parameters
        ----------
        chunks : iterable
            Chunks of rows: arrays, DataFrames, sparse matrices or h5py datasets of shape
            ``(n_i, ...)`` with rows as in fit (a single row is a chunk of shape ``(1, ...)``).

        Yields
        ------
        ndarray of shape (n_i, embedding_dims)
            The embedding of each chunk, in order.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            At once, if the model is not fitted.
        TypeError
            At once, if ``chunks`` is not iterable.
        """
        check_is_fitted(self, "encoder_")
        return self._embed_chunks(iter(chunks))

    def _embed_chunks(self, chunks):
        for chunk in chunks:
            yield engine.embed(self.encoder_, self._check_transform_input(chunk))

    # --------------------------------------------- end of streaming transform

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

    # ------------------------------------------------------------ persistence

    def save_model(self, folder_path, save_format="h5", overwrite=False):
        """Save the fitted model to a folder (see :mod:`ivis.persistence` for its layout).

        Parameters
        ----------
        folder_path : str or PathLike
            Destination folder.
        save_format : {'h5', 'tf', 'keras'}, default='h5'
            Kept for compatibility: every model is saved in the same versioned ivis format
            (Keras archives for the networks, no pickle), whatever this says.
        overwrite : bool, default=False
            Replace an existing model folder. Without it, an existing path is an error, and so
            is a path another process creates while this save runs: of concurrent saves to one
            new path exactly one succeeds. With it, only an empty directory or an ivis model
            folder (a readable ``ivis.json`` with the ivis format marker) holding nothing but
            the files ivis writes is replaced; a folder holding anything else (a README, a
            plot) is refused, never emptied.

        Notes
        -----
        The folder is written next to its destination and renamed into place when complete,
        so an interrupted save leaves the previous model whole, and a concurrent
        :meth:`load_model` sees either model, never a mix. A symlink to a model folder saves
        into the folder it points to. New folders and files get the permissions of the
        umask. File-system parameters (``annoy_index_path``) are not saved. See
        ``docs/model-folders.md``.

        Raises
        ------
        FileExistsError
            If the path exists and may not be replaced (see ``overwrite``).
        """
        check_is_fitted(self, "encoder_")
        if save_format not in ("h5", "tf", "keras"):
            raise ValueError(f"save_format must be 'h5', 'tf' or 'keras'; got {save_format!r}.")
        optimizer_variables = [np.asarray(v) for v in self.model_.optimizer.variables]
        fitted = persistence.FittedRecord(
            self.input_shape_, self.n_features_in_, self.loss_history_, self.validation_loss_history_, self._seed_,
            getattr(self, "classes_", None), getattr(self, "_target_spec_", None),
        )
        manifest = persistence.build_manifest(self.get_params(deep=False), self._networks(), fitted, self._training)
        persistence.write_model_folder(
            folder_path, manifest, self.encoder_, self.supervised_head_, optimizer_variables, overwrite
        )

    def load_model(self, folder_path):
        """Load a model saved with :meth:`save_model` into this estimator.

        The saved parameters replace this estimator's, except ``callbacks``, ``neighbour_matrix``,
        the file-system parameter ``annoy_index_path`` (never read from a folder) and a
        callable ``distance`` (a custom loss must be given to the constructor before
        loading). A following ``fit`` resumes training with the saved optimizer and dropout state.

        The folder is treated as untrusted: its manifest is checked against a schema, its
        files are read without following symlinks and checked against the sizes and SHA-256
        digests the manifest records, archives are checked for declared sizes before anything
        is inflated or built, and networks are loaded in Keras's safe mode. The load sees one
        consistent model even while another process saves over the folder. See
        ``docs/model-folders.md``.

        Returns
        -------
        self : Ivis

        Raises
        ------
        ModelFolderError
            If the folder is not an ivis model, is corrupt or unsafe (the message names the
            file and the field), or needs a newer ivis.
        """
        _import_keras()
        from ivis.nn.losses import available_losses

        custom_loss = self.distance if callable(self.distance) else None
        saved = persistence.read_model(folder_path, available_losses(), custom_loss, self._check_saved_params)
        for key, value in saved.params.items():
            setattr(self, key, value)
        if custom_loss is not None:
            self.distance = custom_loss
        if saved.params.get("model") is None:
            self.model = saved.encoder.layers[1]
        self._set_fitted(saved)
        self._compile()
        persistence.restore_optimizer(self.model_, saved)
        return self

    def _set_fitted(self, saved):
        """Take the fitted attributes of a model read from a folder."""
        fitted = saved.fitted
        self.encoder_ = saved.encoder
        self.supervised_head_ = saved.head
        self.input_shape_ = fitted.input_shape
        self.n_features_in_ = fitted.n_features_in
        self.loss_history_ = fitted.loss_history
        self.validation_loss_history_ = fitted.validation_loss_history
        self.validation_indices_ = None
        self._seed_ = fitted.seed
        if fitted.classes is not None:
            self.classes_ = fitted.classes
        if fitted.target_spec is not None:
            self._target_spec_ = fitted.target_spec
        self._training = saved.training
        self.neighbour_matrix_ = None

    def _check_saved_params(self, params, manifest_path):
        """Check the saved parameters as ``fit`` would, naming the manifest field, before any is set."""
        valid = self.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise persistence.ModelFolderError(f"The manifest {manifest_path!r} is invalid: field 'params.{unknown[0]}' is not an ivis parameter.")
        merged = {**valid, **params, "callbacks": None}
        if callable(self.distance):
            merged["distance"] = self.distance
        if merged.get("model") is None:
            merged["model"] = _params.NETWORK_NAMES[0]  # a custom network comes from the archive
        try:
            _params.check_core_params(type(self)(**merged))
        except (ValueError, TypeError) as error:
            raise persistence.ModelFolderError(f"The manifest {manifest_path!r} is invalid: in its field 'params': {error}") from None

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("model_", "encoder_", "supervised_head_")}
        if self._is_fitted():
            folder = tempfile.mkdtemp(prefix="ivis-pickle-")
            try:
                self.save_model(os.path.join(folder, "model"))
                state["_packed_model"] = persistence.folder_to_bytes(os.path.join(folder, "model"))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return state

    def __setstate__(self, state):
        packed = state.pop("_packed_model", None)
        self.__dict__.update(state)
        if packed is not None:
            folder = tempfile.mkdtemp(prefix="ivis-unpickle-")
            try:
                persistence.bytes_to_folder(packed, folder)
                distance = self.distance
                self.load_model(folder)
                self.distance = distance
            finally:
                shutil.rmtree(folder, ignore_errors=True)

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
