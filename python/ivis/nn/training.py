"""Feeding triplets to Keras and the callbacks that steer a training run.

:class:`TripletBatches` yields batches of (anchor, positive, negative) rows. Each batch is
sampled from its own random stream, seeded by (seed, epoch, batch number), so a run is
repeatable and a resumed run samples exactly what an uninterrupted one would have.
"""

import math
import time

import keras
import numpy as np
from tqdm.auto import tqdm

from ivis.data.triplets import EpochAnchors, sample_triplets

# Batches prepared ahead of the training step (TensorFlow backend; see input_pipeline).
PREFETCH_BATCHES = 4


class TripletBatches(keras.utils.PyDataset):
    """A Keras dataset of triplet batches over a :class:`~ivis.data.inputs.RowSource`.

    Parameters
    ----------
    source : RowSource
        The training rows.
    neighbours : ndarray, NeighbourMatrix or Sequence
        Neighbour lists of every row.
    batch_size : int
        Anchors per batch.
    seed : int
        Seed of every random draw.
    shuffle_mode : {True, False, 'batch'}
        How anchors are ordered each epoch; see :func:`~ivis.data.triplets.epoch_anchor_order`.
    labels : ndarray, optional
        Targets of every row for supervised training.
    initial_epoch : int, default=0
        The epoch the first batch belongs to (non-zero when training resumes).
    indices_only : bool, default=False
        Yield the ``(batch, 3)`` int32 row indices of each triplet instead of the rows, for a
        trainer that looks the rows up itself (:func:`~ivis.nn.network.row_index_trainer`).
        The triplets are the same either way.
    coordinates : ndarray, optional
        Per-row values the loss reads as its first argument, one row per anchor (see
        :func:`input_coordinates`); without them the loss gets a placeholder.
    in_batch_negatives : bool, default=False
        Take each anchor's negative from the other anchors of its batch
        (:func:`~ivis.data.triplets.sample_batch_negatives`), for a trainer that reuses their
        embeddings (:func:`~ivis.nn.network.in_batch_trainer`). Negatives are then positions
        in the batch: the third index column, or a third input next to the anchor and
        positive rows.
    batch_shards : int, default=1
        Parts of a batch that devices train on separately (see :mod:`ivis.nn.devices`):
        in-batch negatives are drawn within each part.
    sparse_rows : bool, default=False
        Yield the rows of a sparse source as SciPy CSR matrices, not densified, for a network
        with a sparse input (:mod:`ivis.nn.sparse_input`).
    """

    def __init__(
        self, source, neighbours, batch_size, seed, shuffle_mode=True, labels=None, initial_epoch=0,
        indices_only=False, in_batch_negatives=False, coordinates=None, batch_shards=1, sparse_rows=False,
    ):
        super().__init__()
        self.source = source
        self.neighbours = neighbours
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.shuffle_mode = shuffle_mode
        self.labels = labels
        self.epoch = int(initial_epoch)
        self.indices_only = bool(indices_only)
        self.in_batch_negatives = bool(in_batch_negatives)
        self.coordinates = coordinates
        self.batch_shards = int(batch_shards)
        self._read = (lambda rows: source.data[rows]) if sparse_rows else source.get_batch
        self._order = self._anchor_order()

    def _anchor_order(self):
        rng = np.random.default_rng([self.seed, self.epoch, 0xA11C])
        # Lazy order: O(n / batch_size) memory for 'batch' and False, int32 for True.
        return EpochAnchors(self.source.n_rows, self.batch_size, self.shuffle_mode, rng)

    def __len__(self):
        return math.ceil(self.source.n_rows / self.batch_size)

    def __getitem__(self, i):
        anchors = self._order[i * self.batch_size:(i + 1) * self.batch_size]
        rng = np.random.default_rng([self.seed, self.epoch, i])
        positives, negatives = sample_triplets(
            anchors, self.neighbours, self.source.n_rows, rng, in_batch=self.in_batch_negatives,
            shards=self.batch_shards,
        )
        n = len(anchors)
        if self.indices_only:
            x = np.stack([anchors, positives, negatives], axis=1).astype(np.int32, copy=False)
            return x, self._targets(anchors)
        # One read for every role that needs rows: out-of-core sources read it in increasing
        # order, a contiguous run (the anchors in 'batch' mode) as one slice, scattered rows
        # together. Negatives taken from the batch are positions, not rows.
        if self.in_batch_negatives:
            rows = self._read(np.concatenate([anchors, positives]))
            return (rows[:n], rows[n:], negatives), self._targets(anchors)
        rows = self._read(np.concatenate([anchors, positives, negatives]))
        return (rows[:n], rows[n:2 * n], rows[2 * n:]), self._targets(anchors)

    def _targets(self, anchors):
        # The triplet loss ignores its target; a placeholder of the right length keeps Keras happy.
        if self.coordinates is not None:
            placeholder = self.coordinates[anchors]
        else:
            placeholder = np.zeros((len(anchors),), dtype=np.float32)
        if self.labels is None:
            return placeholder
        return placeholder, self.labels[anchors]

    def set_epoch(self, epoch):
        """Prepare the anchor order of ``epoch``; batches then sample from that epoch's streams."""
        if epoch != self.epoch:
            self.epoch = int(epoch)
            self._order = self._anchor_order()

    def on_epoch_end(self):
        # Keras also calls this outside epoch boundaries (after peeking at batches), so the
        # epoch is set explicitly by EpochSync instead of counted here.
        pass


# Rows and bytes of the sample the PCA of input_coordinates is fitted on.
COORDINATE_SAMPLE_ROWS = 5000
COORDINATE_SAMPLE_BYTES = 200 * 2**20


def input_coordinates(loss, source, seed):
    """The per-row input coordinates ``loss`` asks for, or None when it asks for none.

    A loss with an ``input_components`` attribute (e.g.
    :class:`~ivis.nn.losses.GlobalCorrelationLoss`) compares embedding distances with input
    distances; it gets every row projected on the first ``input_components`` principal
    components of a fixed random sample of the rows (float32, shape ``(n_rows, components)``).
    Rows are read chunk by chunk, so data on disk stays there.
    """
    components = getattr(loss, "input_components", None)
    if not components:
        return None
    from sklearn.decomposition import PCA

    n_sample = min(source.n_rows, COORDINATE_SAMPLE_ROWS, max(2, COORDINATE_SAMPLE_BYTES // (4 * source.n_features)))
    rng = np.random.default_rng(seed)
    sample = np.sort(rng.choice(source.n_rows, n_sample, replace=False))
    flat = source.get_batch(sample).reshape(n_sample, -1)
    pca = PCA(min(int(components), n_sample, flat.shape[1]), random_state=seed).fit(flat)
    out = np.empty((source.n_rows, pca.n_components_), dtype=np.float32)
    for start, chunk in source.iter_chunks():
        out[start:start + len(chunk)] = pca.transform(chunk.reshape(len(chunk), -1))
    return out


class EpochSync(keras.callbacks.Callback):
    """Tell a :class:`TripletBatches` which epoch is starting."""

    def __init__(self, batches):
        super().__init__()
        self.batches = batches

    def on_epoch_begin(self, epoch, logs=None):
        self.batches.set_epoch(epoch)


class ForwardStopTraining(keras.callbacks.Callback):
    """Pass a stop request made on the ivis network on to the model that is actually fitting.

    Callbacks see the ivis network (``self.model``) even when training runs through a
    wrapper; this callback, placed last, forwards their ``stop_training`` to the wrapper.
    """

    def __init__(self, trainer):
        super().__init__()
        self.trainer = trainer

    def _forward(self):
        if self.model.stop_training:
            self.trainer.stop_training = True

    def on_train_batch_end(self, batch, logs=None):
        self._forward()

    def on_epoch_end(self, epoch, logs=None):
        self._forward()


def fit_triplets(trainer, network, batches, callbacks, epochs, initial_epoch, verbose=0):
    """Fit ``trainer`` on ``batches`` while ``callbacks`` see ``network`` as their model.

    ``trainer`` is either ``network`` itself or a wrapper that shares its weights (see
    :func:`~ivis.nn.network.row_index_trainer`); user callbacks that save or inspect
    ``self.model`` therefore always get the ivis network, never the wrapper.
    """
    network.stop_training = False
    callback_list = keras.callbacks.CallbackList(
        [*callbacks, ForwardStopTraining(trainer)], add_history=True, add_progbar=False, model=network,
        verbose=verbose, epochs=epochs, steps=len(batches),
    )
    trainer.history = network.history  # what Keras's fit returns
    # Batches are already shuffled, reproducibly, by TripletBatches: no Keras shuffling.
    trainer.fit(
        input_pipeline(batches), epochs=epochs, initial_epoch=initial_epoch, callbacks=callback_list,
        shuffle=False, verbose=0,
    )


def input_pipeline(batches, prefetch=PREFETCH_BATCHES):
    """What ``fit`` iterates: ``batches`` itself, or on TensorFlow a tf.data pipeline over it.

    Keras runs a dataset like ``batches`` through tf.data with autotuned prefetching, and the
    autotuning made some epochs markedly longer (measured in ``docs/out_of_core.md``). A fixed
    prefetch of a few batches keeps the compiled step fed without it. Batches are produced in the same order from the same generator either way.
    """
    if keras.backend.backend() != "tensorflow":
        return batches
    import scipy.sparse
    import tensorflow as tf

    from ivis.nn.sparse_input import sparse_tensor

    def spec(array):
        if scipy.sparse.issparse(array):
            return tf.SparseTensorSpec((None,) + array.shape[1:], tf.float32)
        array = np.asarray(array)
        return tf.TensorSpec((None,) + array.shape[1:], tf.as_dtype(array.dtype))

    def as_tensor(array):
        return sparse_tensor(array) if scipy.sparse.issparse(array) else array

    def generate():
        for i in range(len(batches)):
            yield tf.nest.map_structure(as_tensor, batches[i])

    signature = tf.nest.map_structure(spec, batches[0])
    options = tf.data.Options()
    options.autotune.enabled = False
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(len(batches)))
    return dataset.prefetch(prefetch).with_options(options)


class EarlyStoppingOnLoss(keras.callbacks.Callback):
    """Stop when the monitored loss has not improved for ``patience`` epochs.

    Unlike :class:`keras.callbacks.EarlyStopping`, its state (best loss, epochs waited)
    can be saved and restored, so that a resumed run stops exactly where an uninterrupted
    one would have.

    Parameters
    ----------
    patience : int
        Epochs without improvement before training stops.
    best, wait : float, int
        Saved state of an interrupted run.
    monitor : str, default='loss'
        The entry of the epoch logs to watch: ``'loss'`` (training) or ``'val_loss'``
        (held out, see :class:`HeldOutLoss`).
    restore_best_weights : bool, default=False
        At the end of training, put back the weights of the best epoch of this run.
    """

    def __init__(self, patience, best=np.inf, wait=0, monitor="loss", restore_best_weights=False):
        super().__init__()
        self.patience = int(patience)
        self.best = float(best)
        self.wait = int(wait)
        self.monitor = monitor
        self.restore_best_weights = restore_best_weights
        self.stopped_early = False
        self._best_weights = None

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get(self.monitor)
        if loss is None or not np.isfinite(loss):
            return
        if loss < self.best:
            self.best = float(loss)
            self.wait = 0
            if self.restore_best_weights:
                self._best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_early = True
            self.model.stop_training = True

    def on_train_end(self, logs=None):
        # Only weights seen in this run can be restored; a run resumed after its best epoch
        # keeps its last weights.
        if self._best_weights is not None and self.wait > 0:
            self.model.set_weights(self._best_weights)

    def state(self):
        return {"best": self.best if np.isfinite(self.best) else None, "wait": self.wait}


class HeldOutLoss(keras.callbacks.Callback):
    """Add the supervised loss on held-out rows to every epoch's logs, as ``'val_loss'``.

    Parameters
    ----------
    predict : callable
        Returns the supervised head's predictions for the held-out rows.
    targets : ndarray
        Their encoded targets.
    loss : keras.losses.Loss
        The supervised loss (averaged over labelled rows).
    """

    def __init__(self, predict, targets, loss):
        super().__init__()
        self.predict = predict
        self.targets = targets
        self.loss = loss

    def on_epoch_end(self, epoch, logs=None):
        value = self.loss.call(keras.ops.convert_to_tensor(self.targets), keras.ops.convert_to_tensor(self.predict()))
        if logs is not None:
            logs["val_loss"] = float(keras.ops.convert_to_numpy(value))


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Stop training with a clear error when the loss becomes NaN or infinite."""

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(loss):
            self.model.stop_training = True
            raise FloatingPointError(
                f"The training loss became {loss} at epoch {epoch + 1}. Scale the data (e.g. "
                "StandardScaler or MinMaxScaler) or use a smaller learning rate / batch size."
            )


class TrainingRecorder(keras.callbacks.Callback):
    """Record each finished epoch in the training history and state as it happens.

    The loss history and the resumable training state are therefore current whenever a
    later callback (a checkpoint, say) saves the model, and survive an interrupted run.

    Parameters
    ----------
    history : ivis.engine.TrainingHistory
        Its ``loss`` and ``validation_loss`` lists are appended to.
    state : ivis.engine.TrainingState
        Updated in place.
    early_stopping : EarlyStoppingOnLoss
        The stopping rule whose state is recorded.
    """

    def __init__(self, history, state, early_stopping):
        super().__init__()
        self.history = history
        self.state = state
        self.early_stopping = early_stopping

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.history.loss.append(float(logs.get("loss", float("nan"))))
        if "val_loss" in logs:
            self.history.validation_loss.append(float(logs["val_loss"]))
        self.state.epochs_trained = int(epoch) + 1
        self.state.complete = False
        self.state.early_stopping = self.early_stopping.state()


class EpochProgress(keras.callbacks.Callback):
    """A tqdm bar over epochs showing the loss, timing of every epoch and, with ``rows``, a
    bar within each epoch showing rows per second and the time left.

    Parameters
    ----------
    total_epochs, initial_epoch : int
        The run's last epoch and the one it starts at.
    show : bool, default=True
        Display the bars (timing is kept either way).
    rows : int, optional
        Anchor rows per epoch; ``batch_size`` anchors are trained per step.
    batch_size : int, optional
    steps_per_report : int, default=1
        Steps Keras runs between two batch reports. An epoch of no more steps than this would
        show a bar that never moves, so it gets none.
    """

    def __init__(self, total_epochs, initial_epoch=0, show=True, rows=None, batch_size=None, steps_per_report=1):
        super().__init__()
        self.total_epochs = total_epochs
        self.initial_epoch = initial_epoch
        self.show = show
        self.rows = rows
        self.batch_size = batch_size
        self.steps_per_report = steps_per_report
        self.epoch_seconds = []
        self._bar = None
        self._rows_bar = None
        self._start = None

    def on_train_begin(self, logs=None):
        self._bar = tqdm(
            total=self.total_epochs, initial=self.initial_epoch, desc="Training", unit="epoch",
            disable=not self.show, mininterval=1.0,
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        if self.rows and self.batch_size and math.ceil(self.rows / self.batch_size) > self.steps_per_report:
            self._rows_bar = tqdm(
                total=self.rows, desc=f"Epoch {epoch + 1}", unit="rows", unit_scale=True, leave=False,
                disable=not self.show, mininterval=1.0,
            )

    def on_train_batch_end(self, batch, logs=None):
        # Keras reports every few steps (steps_per_execution): move to the rows done so far.
        if self._rows_bar is not None:
            self._rows_bar.update(min(self.rows, (batch + 1) * self.batch_size) - self._rows_bar.n)

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        if self._rows_bar is not None:
            self._rows_bar.close()
            self._rows_bar = None
        logs = logs or {}
        shown = {name: f"{logs[name]:.4f}" for name in ("loss", "val_loss") if name in logs}
        self._bar.set_postfix(**shown)
        self._bar.update(1)

    def on_train_end(self, logs=None):
        if self._rows_bar is not None:
            self._rows_bar.close()
        self._bar.close()
