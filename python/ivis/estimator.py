"""The :class:`Ivis` estimator."""

import contextlib
import os
import random
import shutil
import tempfile
import time

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ivis import _params
from ivis._version import __version__
from ivis.data.inputs import ArraySource, as_row_source
from ivis.persistence import (
    FILESYSTEM_PARAMS,
    MANIFEST_FILE,
    ModelFolderError,
    bytes_to_folder,
    folder_to_bytes,
    random_states,
    read_model_folder,
    read_network,
    read_optimizer_variables,
    restore_random_states,
    write_model_folder,
)

# Rows embedded per network call in transform and score_samples.
TRANSFORM_CHUNK_ROWS = 8192
# In-memory training sets up to this size (as float32) are copied into the compiled training
# step, which then looks rows up itself; larger ones, sparse and out-of-core data are fed
# batch by batch from Python.
IN_GRAPH_ROWS_MAX_BYTES = 2 * 1024**3
# Held-out rows (validation_fraction) of data not held as an array are read once and kept in
# memory up to this size (as float32); larger sets are read again every epoch.
HELD_OUT_CACHE_BYTES = 256 * 1024**2
# Training steps run per call into the compiled step when rows are looked up in-graph.
STEPS_PER_EXECUTION = 16

# scikit-learn estimator checks that cannot apply to ivis, with the reason.
EXPECTED_FAILED_CHECKS = {
    "check_fit_idempotent": "fit on a fitted model continues training it (resumable training); clone() gives a fresh fit",
    "check_transformer_general": "it fits the same estimator twice, and a second fit continues training",
    "check_transformer_general(readonly_memmap=True)": "it fits the same estimator twice, and a second fit continues training",
    "check_pipeline_consistency": "it fits the same estimator twice, and a second fit continues training",
    "check_transformer_data_not_an_array": "it fits the same estimator twice, and a second fit continues training",
    "check_methods_sample_order_invariance": "float32 network outputs differ by ~1e-6 with the row order of a batch (BLAS blocking), above the check's 1e-7 tolerance",
}

# Parameters that hold objects rather than settings, so they are not written to a model folder.
_UNSAVED_PARAMS = ("callbacks", "neighbour_matrix")


@contextlib.contextmanager
def _python_random_seeded(seed):
    """Seed Python's global ``random`` inside the block and give its state back afterwards.

    Keras seeds each unseeded layer it creates (the layers of a user's model, when copied)
    from the global ``random`` module; seeding it from the model's seed makes those layers
    follow ``random_state`` and leaves the caller's random stream as it was.
    """
    state = random.getstate()
    random.seed(seed)
    try:
        yield
    finally:
        random.setstate(state)


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
        return self._embed(source)

    def _fit(self, X, Y, shuffle_mode):
        _params.check_core_params(self)
        _params.check_shuffle_mode(shuffle_mode)
        source = as_row_source(X, min_rows=2)
        if source.in_memory:
            source.check_finite()
        n_rows = source.n_rows
        _params.check_batch_size(self.batch_size, n_rows)
        warm = self._is_fitted()
        if warm and tuple(source.row_shape) != tuple(self.input_shape_):
            raise ValueError(
                f"This model was fitted on rows of shape {tuple(self.input_shape_)}; X has rows of "
                f"shape {source.row_shape}. Fitting again continues training, so the shape must "
                "match; use sklearn.base.clone(model) to fit a new model on other data."
            )
        if warm:
            self._check_same_architecture()
        keras = _import_keras()
        targets, spec = self._prepare_targets(Y, n_rows, warm)
        if not warm:
            self._seed_ = self._draw_seed()
        targets, held_out = self._hold_out(targets, spec)

        start = time.perf_counter()
        neighbours, cleanup = self._neighbours(source)
        neighbour_seconds = time.perf_counter() - start
        try:
            if not warm:
                self._build(keras, source.row_shape, spec)
            elif (spec is None) != (self.supervised_head_ is None):
                raise ValueError(
                    "Fitting again continues training, so Y must be given exactly when the model was "
                    "trained with labels. Use sklearn.base.clone(model) to train a new model."
                )
            start = time.perf_counter()
            self._train(keras, source, neighbours, targets, shuffle_mode, held_out)
            training_seconds = time.perf_counter() - start
        finally:
            cleanup()
        epochs_run = len(self._last_epoch_seconds)
        self.timings_ = {
            "neighbours": neighbour_seconds,
            "training": training_seconds,
            "epochs": epochs_run,
            "seconds_per_epoch": float(np.mean(self._last_epoch_seconds)) if epochs_run else float("nan"),
        }
        return source

    def _check_same_architecture(self):
        """Refuse parameters that describe another network than the one a new fit would continue."""
        fitted_dims = int(self.encoder_.outputs[0].shape[-1])
        base_name = self.encoder_.layers[1].name
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

    def _draw_seed(self):
        if self.random_state is None:
            return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
        if isinstance(self.random_state, np.random.RandomState):
            return int(self.random_state.randint(0, 2**31 - 1))
        return int(self.random_state)

    def _sub_seed(self, purpose):
        """A seed for one purpose, derived from the model's seed."""
        offsets = {"annoy": 1, "weights": 2, "sampling": 3, "validation": 4, "clusters": 5}
        return int(np.random.SeedSequence([self._seed_, offsets[purpose]]).generate_state(1)[0] >> 1)

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
            targets, spec, self.validation_fraction, self._sub_seed("validation")
        )
        self.validation_indices_ = held_out
        return training_targets, (held_out, targets[held_out])

    # ------------------------------------------------------------- neighbours

    def _neighbours(self, source):
        """Return ``(neighbours, cleanup)`` for training on ``source``."""
        n_rows = source.n_rows
        if self.neighbour_matrix is not None:
            neighbours = _params.check_neighbour_matrix(self.neighbour_matrix, n_rows)
            self.neighbour_matrix_ = neighbours if isinstance(neighbours, np.ndarray) else None
            return neighbours, lambda: None
        _params.check_k(self.k, n_rows)
        if self.neighbour_search == "clustered":
            return self._clustered_neighbours(source), lambda: None
        from ivis.data.neighbour_retrieval.knn import AnnoyKnnMatrix

        n_trees = _params.resolve_n_trees(self.n_trees, self.ntrees)
        temporary_dir = None
        if self.annoy_index_path is not None and os.path.isfile(self.annoy_index_path):
            matrix = AnnoyKnnMatrix.load(
                os.fspath(self.annoy_index_path), source.shape, k=self.k, metric=self.knn_distance_metric,
                search_k=self.search_k, verbose=self.verbose > 0, data=source,
            )
        else:
            if self.annoy_index_path is not None:
                path = os.fspath(self.annoy_index_path)
            else:
                temporary_dir = tempfile.mkdtemp(prefix="ivis-annoy-")
                path = os.path.join(temporary_dir, "annoy.index")
            # Without precompute, memory is what the user is saving: Annoy's tree building holds
            # about 32 bytes per row per thread, so the index is built with one thread.
            try:
                matrix = AnnoyKnnMatrix.build(
                    source, path, k=self.k, metric=self.knn_distance_metric, search_k=self.search_k,
                    ntrees=n_trees, build_index_on_disk=self.build_index_on_disk, verbose=self.verbose,
                    random_state=self._sub_seed("annoy"), n_jobs=-1 if self.precompute else 1,
                )
            except BaseException:
                if temporary_dir is not None:
                    shutil.rmtree(temporary_dir, ignore_errors=True)
                raise

        def cleanup():
            if temporary_dir is not None:
                matrix.delete_index(parent=True)
            else:
                matrix.unload()

        if self.precompute:
            try:
                neighbours = matrix.get_neighbour_indices()
            finally:
                cleanup()
            self.neighbour_matrix_ = neighbours
            return neighbours, lambda: None
        self.neighbour_matrix_ = None
        return matrix, cleanup

    def _clustered_neighbours(self, source):
        """The neighbour matrix of ``source`` found by ``neighbour_search='clustered'``."""
        from ivis.data.neighbour_retrieval.clustered import clustered_neighbours

        if not isinstance(source, ArraySource):
            kind = type(source.data)
            raise ValueError(
                f"neighbour_search='clustered' needs X as a dense array in memory; X is a "
                f"{kind.__module__}.{kind.__name__}. "
                "Load it as one if it fits in memory (np.asarray(X, dtype=np.float32)), or use "
                "neighbour_search='annoy' (the default), which reads data in chunks."
            )
        rows = source.data.reshape(source.n_rows, -1)
        neighbours = clustered_neighbours(
            rows, self.k, self.knn_distance_metric, random_state=self._sub_seed("clusters"), verbose=self.verbose > 0
        )
        self.neighbour_matrix_ = neighbours
        return neighbours

    # --------------------------------------------------------------- networks

    def _build(self, keras, row_shape, spec):
        from ivis.nn import network

        # Seeded even without random_state (then from fresh entropy): an unseeded Keras layer
        # would draw its seed from Python's global random module.
        seed = self._sub_seed("weights")
        if isinstance(self.model, str):
            base = network.base_network(self.model, row_shape, seed=seed)
        else:
            with _python_random_seeded(seed):
                base = network.copy_user_model(self.model)
        self.encoder_ = network.build_encoder(base, row_shape, self.embedding_dims, seed=seed)
        self.supervised_head_ = None if spec is None else self._build_head(keras, spec, seed)
        self.input_shape_ = tuple(int(s) for s in row_shape)
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.loss_history_ = []
        self.validation_loss_history_ = []
        self._training_state_ = {"epochs_trained": 0, "complete": True, "early_stopping": None}
        self._compile(keras)

    def _build_head(self, keras, spec, seed):
        regularizer = keras.regularizers.L2(0.01) if spec.metric_name == "categorical_hinge" else None
        head = keras.Sequential(
            [
                keras.Input(shape=(self.embedding_dims,)),
                keras.layers.Dense(
                    spec.n_outputs, activation=spec.activation, kernel_regularizer=regularizer,
                    kernel_initializer=keras.initializers.GlorotUniform(seed=None if seed is None else seed + 2000),
                    name="supervised_output",
                ),
            ],
            name="supervised_head",
        )
        return head

    def _losses(self, keras):
        from ivis.nn.losses import KerasTripletLoss, MaskedSupervisedLoss, triplet_loss

        triplet = KerasTripletLoss(triplet_loss(self.distance))
        if self.supervised_head_ is None:
            return triplet, None
        spec = self._target_spec_
        from ivis.supervision import resolve_metric

        fn, _ = resolve_metric(self.supervision_metric)
        supervised = MaskedSupervisedLoss(fn, sparse=spec.kind == "sparse")
        return [triplet, supervised], [1.0 - self.supervision_weight, self.supervision_weight]

    def _compile(self, keras):
        from ivis.nn.network import triplet_network

        self.model_ = triplet_network(self.encoder_, self.supervised_head_)
        loss, weights = self._losses(keras)
        self.model_.compile(optimizer=self._optimizer(keras), loss=loss, loss_weights=weights)

    def _optimizer(self, keras):
        optimizer = keras.optimizers.Adam()
        # Weight decay applies to the base network's kernels only: shrinking the embedding
        # layer or the head would shrink every prediction towards zero.
        outputs = [self.encoder_.get_layer("embedding")] + ([self.supervised_head_] if self.supervised_head_ else [])
        optimizer.exclude_from_weight_decay(
            var_list=[v for layer in outputs for v in layer.trainable_variables], var_names=["bias"]
        )
        self._apply_optimizer_params(optimizer)
        return optimizer

    def _apply_optimizer_params(self, optimizer):
        """Give ``optimizer`` this estimator's learning rate and weight decay."""
        optimizer.learning_rate = self.learning_rate
        optimizer.weight_decay = float(self.weight_decay) if self.weight_decay else None

    # --------------------------------------------------------------- training

    def _train(self, keras, source, neighbours, targets, shuffle_mode, held_out=None):
        from ivis.nn.training import (
            EarlyStoppingOnLoss, EpochProgress, EpochSync, StopOnNonFiniteLoss, TrainingRecorder, TripletBatches,
            fit_triplets,
        )

        state = self._training_state_
        resuming = not state["complete"]
        initial_epoch = state["epochs_trained"]
        total_epochs = self.epochs if resuming else initial_epoch + self.epochs
        stopping_state = (state.get("early_stopping") or {}) if resuming else {}
        best = stopping_state.get("best")
        early_stopping = EarlyStoppingOnLoss(
            self.n_epochs_without_progress, best=np.inf if best is None else best, wait=stopping_state.get("wait", 0),
            monitor="loss" if held_out is None else "val_loss", restore_best_weights=held_out is not None,
        )
        validation = [] if held_out is None else [self._held_out_loss(keras, source, *held_out)]
        progress = EpochProgress(total_epochs, initial_epoch, show=self.verbose > 0)
        user_callbacks = list(self.callbacks or [])
        for callback in user_callbacks:
            if callable(getattr(callback, "register_ivis_model", None)):
                callback.register_ivis_model(self)
        rows_in_graph = isinstance(source, ArraySource) and source.data.nbytes <= IN_GRAPH_ROWS_MAX_BYTES
        # Other anchors are uniformly drawn rows only when the anchors are shuffled.
        in_batch = self.negative_sampling == "in_batch" and shuffle_mode is True
        batches = TripletBatches(
            source, neighbours, self.batch_size, self._sub_seed("sampling"), shuffle_mode, targets, initial_epoch,
            indices_only=rows_in_graph, in_batch_negatives=in_batch,
        )
        self.loss_history_ = list(self.loss_history_)
        self.validation_loss_history_ = list(getattr(self, "validation_loss_history_", []))
        callbacks = [
            EpochSync(batches), StopOnNonFiniteLoss(), *validation, early_stopping, TrainingRecorder(self, early_stopping),
            progress, *user_callbacks,
        ]
        # A checkpoint taken at the epoch early stopping ended the run resumes as finished.
        stopped = resuming and early_stopping.wait >= early_stopping.patience
        if initial_epoch < total_epochs and not stopped:
            self._apply_optimizer_params(self.model_.optimizer)  # set_params may have changed them
            trainer = self._trainer(keras, source.data if rows_in_graph else None, in_batch)
            fit_triplets(trainer, self.model_, batches, callbacks, total_epochs, initial_epoch)
        self._training_state_ = {**self._training_state_, "complete": True}
        self._last_epoch_seconds = progress.epoch_seconds

    def _held_out_loss(self, keras, source, rows, targets):
        """The callback that measures the supervised loss on the held-out ``rows`` of ``source``."""
        from ivis.nn.training import HeldOutLoss

        if not isinstance(source, ArraySource) and len(rows) * source.n_features * 4 <= HELD_OUT_CACHE_BYTES:
            # Read held-out rows from disk (or densify them) once, not every epoch.
            source, rows = ArraySource(source.get_batch(rows)), np.arange(len(rows))
        supervised_loss = self._losses(keras)[0][1]
        return HeldOutLoss(lambda: self._score_rows(source, rows), targets, supervised_loss)

    def _trainer(self, keras, rows, in_batch):
        """The model to fit: ``model_`` itself, or one sharing its weights and optimizer.

        ``rows`` (the training set, for data held in the graph) makes the trainer take row
        indices; ``in_batch`` makes it reuse anchors' embeddings as negatives.
        """
        from ivis.nn.network import in_batch_trainer, row_index_trainer

        if in_batch:
            trainer = in_batch_trainer(self.encoder_, self.supervised_head_, rows)
        elif rows is not None:
            trainer = row_index_trainer(self.model_, rows)
        else:
            return self.model_
        loss, weights = self._losses(keras)
        trainer.compile(
            optimizer=self.model_.optimizer, loss=loss, loss_weights=weights,
            steps_per_execution=STEPS_PER_EXECUTION if rows is not None else 1,
        )
        return trainer

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

    def _embed(self, source, network=None):
        from keras import ops

        network = network or self.encoder_
        out = None
        for start, chunk in source.iter_chunks(TRANSFORM_CHUNK_ROWS):
            # A direct call, not predict_on_batch: no function is traced per chunk shape.
            values = ops.convert_to_numpy(network(chunk, training=False))
            if out is None:
                out = np.empty((source.n_rows,) + values.shape[1:], dtype=np.float32)
            out[start:start + len(values)] = values
        return out

    def _score_rows(self, source, rows):
        """The supervised head's predictions for ``rows`` of ``source``."""
        from keras import ops

        out = []
        for start in range(0, len(rows), TRANSFORM_CHUNK_ROWS):
            chunk = source.get_batch(rows[start:start + TRANSFORM_CHUNK_ROWS])
            embedding = self.encoder_(chunk, training=False)
            out.append(ops.convert_to_numpy(self.supervised_head_(embedding, training=False)))
        return np.concatenate(out)

    def transform(self, X):
        """Embed ``X`` with the trained network.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset, dask.array.Array or IndexableDataset
            Rows of the same shape as in fit.

        Returns
        -------
        ndarray of shape (n_samples, embedding_dims)
            A lazy ``dask.array.Array`` for a Dask array ``X``, embedded block by block
            (:func:`ivis.distributed.transform_dask`).
        """
        if type(X).__module__.startswith("dask.array"):  # a lazy result: see ivis.distributed
            from ivis.distributed.dask_arrays import transform_dask

            return transform_dask(self, X)
        return self._embed(self._check_transform_input(X))

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
        from ivis._params import check_int
        from ivis.data.inputs import ArraySource
        from ivis.data.outputs import open_output

        source = self._check_transform_input(X)
        check_int("chunk_rows", chunk_rows, 1)
        dims = int(self.encoder_.outputs[0].shape[-1])
        target, finish = open_output(out, (source.n_rows, dims), chunk_rows)
        try:
            for start, chunk in source.iter_chunks(chunk_rows):
                target[start:start + len(chunk)] = self._embed(ArraySource(chunk))
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
            yield self._embed(self._check_transform_input(chunk))

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
        embeddings = self._embed(source)
        return self._embed(as_row_source(embeddings), self.supervised_head_)

    # ------------------------------------------------------------ persistence

    def _manifest(self):
        import keras

        params = {key: value for key, value in self.get_params(deep=False).items() if key not in _UNSAVED_PARAMS}
        if not isinstance(params["model"], str):
            params["model"] = None
        if not isinstance(params["distance"], str):
            from ivis.nn.losses import loss_name

            params["distance"] = loss_name(params["distance"])
        if not isinstance(params["supervision_metric"], str):
            params["supervision_metric"] = getattr(params["supervision_metric"], "__name__", None)
        if isinstance(params["random_state"], np.random.RandomState):
            params["random_state"] = None
        spec = getattr(self, "_target_spec_", None) if self.supervised_head_ is not None else None
        return {
            "ivis_version": __version__,
            "keras_version": keras.__version__,
            "backend": keras.backend.backend(),
            "params": params,
            "fitted": {
                "input_shape": list(self.input_shape_),
                "n_features_in": self.n_features_in_,
                "loss_history": self.loss_history_,
                "validation_loss_history": self.validation_loss_history_,
                "seed": self._seed_,
                "classes": None if getattr(self, "classes_", None) is None else self.classes_.tolist(),
                "target": None if spec is None else {"kind": spec.kind, "n_outputs": spec.n_outputs, "metric_name": spec.metric_name},
                "random_states": {
                    "encoder": random_states(self.encoder_),
                    "supervised_head": None if self.supervised_head_ is None else random_states(self.supervised_head_),
                },
            },
            "training": self._training_state_,
        }

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
        write_model_folder(
            folder_path, self._manifest(), self.encoder_, self.supervised_head_, optimizer_variables, overwrite
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
        keras = _import_keras()
        contents = read_model_folder(folder_path)
        manifest = contents.manifest
        manifest_path = os.path.join(os.fspath(folder_path), MANIFEST_FILE)
        params = {k: v for k, v in manifest["params"].items() if k not in FILESYSTEM_PARAMS and k not in _UNSAVED_PARAMS}
        fitted = manifest["fitted"]
        custom_loss = self.distance if callable(self.distance) else None
        from ivis.nn.losses import available_losses

        saved_distance = params.get("distance")
        if custom_loss is None and saved_distance not in available_losses():
            raise ModelFolderError(
                f"The model was trained with the custom loss {saved_distance!r}. Create the estimator "
                f"with it before loading: Ivis(distance=<your loss function>).load_model(path), or "
                "register it with ivis.nn.losses.register_loss."
            )
        self._check_saved_params(params, custom_loss, manifest_path)
        encoder = read_network(contents, "encoder")
        head = read_network(contents, "supervised_head") if "supervised_head" in manifest["files"] else None
        self._check_saved_networks(folder_path, encoder, head, fitted, params)
        saved_random = fitted.get("random_states") or {}
        restore_random_states(encoder, saved_random.get("encoder"), folder_path)
        if head is not None:
            restore_random_states(head, saved_random.get("supervised_head"), folder_path)
        contents.verify()
        for key, value in params.items():
            setattr(self, key, value)
        if custom_loss is not None:
            self.distance = custom_loss
        if params.get("model") is None:
            self.model = encoder.layers[1]
        self.encoder_ = encoder
        self.supervised_head_ = head
        self.input_shape_ = tuple(fitted["input_shape"])
        self.n_features_in_ = int(fitted["n_features_in"])
        self.loss_history_ = [float(v) for v in fitted["loss_history"]]
        self.validation_loss_history_ = [float(v) for v in fitted.get("validation_loss_history", [])]
        self.validation_indices_ = None
        self._seed_ = int(fitted["seed"])
        if fitted.get("classes") is not None:
            self.classes_ = np.asarray(fitted["classes"])
        target = fitted.get("target")
        if head is not None and target:
            from ivis.supervision import TargetSpec

            self._target_spec_ = TargetSpec(target["kind"], target["n_outputs"], target["metric_name"], getattr(self, "classes_", None))
        self._training_state_ = dict(manifest.get("training") or {"epochs_trained": len(self.loss_history_), "complete": True})
        self.neighbour_matrix_ = None
        self._compile(keras)
        optimizer = self.model_.optimizer
        optimizer.build(self.model_.trainable_variables)
        shapes = [tuple(v.shape) for v in optimizer.variables]
        self._restore_optimizer(read_optimizer_variables(contents, shapes), folder_path)
        return self

    def _check_saved_params(self, params, custom_loss, manifest_path):
        """Check the saved parameters as ``fit`` would, naming the manifest field, before any is set."""
        valid = self.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise ModelFolderError(f"The manifest {manifest_path!r} is invalid: field 'params.{unknown[0]}' is not an ivis parameter.")
        merged = {**valid, **params, "callbacks": None}
        if custom_loss is not None:
            merged["distance"] = custom_loss
        if merged.get("model") is None:
            merged["model"] = _params.NETWORK_NAMES[0]  # a custom network comes from the archive
        try:
            _params.check_core_params(type(self)(**merged))
        except (ValueError, TypeError) as error:
            raise ModelFolderError(f"The manifest {manifest_path!r} is invalid: in its field 'params': {error}") from None

    @staticmethod
    def _check_saved_networks(folder_path, encoder, head, fitted, params):
        """Check that the saved networks are the ones the manifest describes."""
        encoder_in = tuple(encoder.inputs[0].shape[1:])
        encoder_out = encoder.outputs[0].shape[-1]
        problems = []
        if encoder_in != tuple(fitted["input_shape"]):
            problems.append(f"the encoder takes rows of shape {encoder_in}, the manifest says {tuple(fitted['input_shape'])}")
        if params.get("embedding_dims") is not None and encoder_out != params["embedding_dims"]:
            problems.append(f"the encoder outputs {encoder_out} dimensions, the manifest says {params['embedding_dims']}")
        if head is not None and head.inputs[0].shape[-1] != encoder_out:
            problems.append(f"the supervised head takes {head.inputs[0].shape[-1]} dimensions, the encoder outputs {encoder_out}")
        target = fitted.get("target")
        if head is not None and target and head.outputs[0].shape[-1] != target["n_outputs"]:
            problems.append(
                f"the supervised head predicts {head.outputs[0].shape[-1]} outputs, the manifest's fitted.target "
                f"and fitted.classes say {target['n_outputs']}"
            )
        if head is None and target:
            problems.append("the manifest's fitted.target describes a supervised head, but the folder has none")
        if problems:
            raise ModelFolderError(
                f"The model folder {os.fspath(folder_path)!r} is inconsistent: {'; '.join(problems)}. "
                "It is corrupt or was assembled from different models."
            )

    def _restore_optimizer(self, values, folder_path):
        if values is None:
            return
        variables = self.model_.optimizer.variables
        if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
            raise ModelFolderError(
                f"The optimizer state in {os.fspath(folder_path)!r} does not match the saved networks; "
                "the folder is corrupt or was assembled from different models."
            )
        for variable, value in zip(variables, values):
            variable.assign(value)

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("model_", "encoder_", "supervised_head_", "_early_stopping")}
        if self._is_fitted():
            folder = tempfile.mkdtemp(prefix="ivis-pickle-")
            try:
                self.save_model(os.path.join(folder, "model"))
                state["_packed_model"] = folder_to_bytes(os.path.join(folder, "model"))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return state

    def __setstate__(self, state):
        packed = state.pop("_packed_model", None)
        self.__dict__.update(state)
        if packed is not None:
            folder = tempfile.mkdtemp(prefix="ivis-unpickle-")
            try:
                bytes_to_folder(packed, folder)
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
