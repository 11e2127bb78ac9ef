"""The training engine: build, compile, fit, embed and score the networks of an ivis model.

These functions know networks, row sources and settings, never the estimator: :class:`ivis.Ivis`
keeps its parameters and fitted attributes, and passes what each step needs. Data flows one
way: rows and their neighbours become triplet batches (:mod:`ivis.nn.training`), which train
the siamese network (:mod:`ivis.nn.network`), whose encoder embeds rows.
"""

import contextlib
import random
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ivis._seeds import layer_seed
from ivis.data.inputs import ArraySource, as_row_source

# Rows embedded per network call in transform and score_samples.
TRANSFORM_CHUNK_ROWS = 8192
# In-memory training sets up to this size (as float32) are copied into the compiled training
# step, which then looks rows up itself; larger ones, sparse and out-of-core data are fed
# batch by batch from Python.
IN_GRAPH_ROWS_MAX_BYTES = 2 * 1024**3
# Held-out rows (validation_fraction) of data not held as an array are read once and kept in
# memory up to this size (as float32); larger sets are read again every epoch.
HELD_OUT_CACHE_BYTES = 256 * 1024**2
# Training steps run per call into the compiled step: a call costs about as much as a small
# step, whether the rows are looked up in-graph or fed batch by batch (measured in
# bench/OUT_OF_CORE.md).
STEPS_PER_EXECUTION = 16


@dataclass
class TrainingState:
    """Where training stands, saved in a model folder's ``training`` entry to resume from.

    ``complete`` is False while a run is under way (a checkpoint taken mid-run resumes it);
    ``early_stopping`` holds the stopping rule's ``best`` loss and epochs ``wait``-ed.
    """

    epochs_trained: int = 0
    complete: bool = True
    early_stopping: Optional[dict] = None

    def as_manifest(self):
        """The manifest's ``training`` object."""
        return {"epochs_trained": self.epochs_trained, "complete": self.complete, "early_stopping": self.early_stopping}

    @classmethod
    def from_manifest(cls, training, epochs_trained):
        """The state a manifest records; a folder without one holds a finished model."""
        if not training:
            return cls(epochs_trained=epochs_trained, complete=True)
        return cls(training["epochs_trained"], training["complete"], training.get("early_stopping"))


@dataclass
class TrainingHistory:
    """Per-epoch losses across every fit of a model, appended to as epochs finish."""

    loss: list = field(default_factory=list)
    validation_loss: list = field(default_factory=list)


@dataclass
class Networks:
    """The networks of a model: the encoder, the optional supervised head and the compiled siamese network."""

    encoder: object
    head: object = None
    model: object = None


@dataclass(frozen=True)
class LossSettings:
    """What the training losses are made of: the estimator's loss parameters and the target kind."""

    distance: object
    supervision_metric: object
    supervision_weight: float
    target_spec: object = None


@contextlib.contextmanager
def python_random_seeded(seed):
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


def build_networks(model, row_shape, embedding_dims, spec, seed, sparse=False):
    """The encoder (base network ``model`` plus an embedding layer) and, for ``spec``, the supervised head.

    ``sparse`` gives a named base network a sparse input and first layer (see
    :mod:`ivis.nn.sparse_input`).
    """
    from ivis.nn import network

    if isinstance(model, str):
        base = network.base_network(model, row_shape, seed=seed, sparse=sparse)
    else:
        with python_random_seeded(seed):
            base = network.copy_user_model(model)
    encoder = network.build_encoder(base, row_shape, embedding_dims, seed=seed)
    head = None if spec is None else build_head(embedding_dims, spec, seed)
    return encoder, head


def build_head(embedding_dims, spec, seed):
    """The supervised head: one dense layer from the embedding to the targets of ``spec``."""
    import keras

    regularizer = keras.regularizers.L2(0.01) if spec.metric_name == "categorical_hinge" else None
    return keras.Sequential(
        [
            keras.Input(shape=(embedding_dims,)),
            keras.layers.Dense(
                spec.n_outputs, activation=spec.activation, kernel_regularizer=regularizer,
                kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, "supervised_head")),
                name="supervised_output",
            ),
        ],
        name="supervised_head",
    )


def training_losses(settings, supervised):
    """``(loss, loss_weights)`` for compiling: the triplet loss, plus the masked supervised loss."""
    from ivis.nn.losses import KerasTripletLoss, MaskedSupervisedLoss, triplet_loss

    triplet = KerasTripletLoss(triplet_loss(settings.distance))
    if not supervised:
        return triplet, None
    from ivis.supervision import resolve_metric

    fn, _ = resolve_metric(settings.supervision_metric)
    supervised_loss = MaskedSupervisedLoss(fn, sparse=settings.target_spec.kind == "sparse")
    return [triplet, supervised_loss], [1.0 - settings.supervision_weight, settings.supervision_weight]


def compile_networks(networks, losses, learning_rate, weight_decay):
    """Build and compile the siamese network of ``networks`` (sets ``networks.model``)."""
    from ivis.nn.network import triplet_network

    networks.model = triplet_network(networks.encoder, networks.head)
    loss, weights = training_losses(losses, networks.head is not None)
    networks.model.compile(
        optimizer=make_optimizer(networks, learning_rate, weight_decay), loss=loss, loss_weights=weights,
        steps_per_execution=STEPS_PER_EXECUTION,
    )
    return networks.model


def make_optimizer(networks, learning_rate, weight_decay):
    """Adam, with decoupled weight decay on the base network's kernels only."""
    from ivis.nn.sparse_input import LazyAdam, SparseRowsDense

    optimizer = LazyAdam()
    # Shrinking the embedding layer or the head would shrink every prediction towards zero;
    # decaying a sparse first layer would touch its whole kernel every step.
    outputs = [networks.encoder.get_layer("embedding")] + ([networks.head] if networks.head else [])
    outputs += [layer for layer in _all_layers(networks.encoder) if isinstance(layer, SparseRowsDense)]
    optimizer.exclude_from_weight_decay(
        var_list=[v for layer in outputs for v in layer.trainable_variables], var_names=["bias"]
    )
    set_optimizer_params(optimizer, learning_rate, weight_decay)
    return optimizer


def _all_layers(model):
    """Every layer of ``model``, nested models' layers included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from _all_layers(layer)


def set_optimizer_params(optimizer, learning_rate, weight_decay):
    """Give ``optimizer`` the learning rate and weight decay (0 or None: none)."""
    optimizer.learning_rate = learning_rate
    optimizer.weight_decay = float(weight_decay) if weight_decay else None


def embed(network, source):
    """``network`` applied to every row of ``source``, chunk by chunk, as float32."""
    from keras import ops

    from ivis.nn.network import takes_sparse_rows
    from ivis.nn.sparse_input import iter_sparse_chunks

    sparse = takes_sparse_rows(network)
    chunks = iter_sparse_chunks(source, TRANSFORM_CHUNK_ROWS) if sparse else source.iter_chunks(TRANSFORM_CHUNK_ROWS)
    out = None
    for start, chunk in chunks:
        # A direct call, not predict_on_batch: no function is traced per chunk shape.
        values = ops.convert_to_numpy(network(chunk, training=False))
        if out is None:
            out = np.empty((source.n_rows,) + values.shape[1:], dtype=np.float32)
        out[start:start + len(values)] = values
    return out


def score(networks, source):
    """The supervised head's predictions for every row of ``source``."""
    return embed(networks.head, as_row_source(embed(networks.encoder, source)))


def network_rows(network, source, rows):
    """``rows`` of ``source`` as ``network`` takes them: dense, or sparse for a sparse input."""
    from ivis.nn.network import takes_sparse_rows
    from ivis.nn.sparse_input import sparse_rows

    return sparse_rows(source, rows) if takes_sparse_rows(network) else source.get_batch(rows)


def score_rows(networks, source, rows):
    """The supervised head's predictions for ``rows`` of ``source``."""
    from keras import ops

    out = []
    for start in range(0, len(rows), TRANSFORM_CHUNK_ROWS):
        chunk = network_rows(networks.encoder, source, rows[start:start + TRANSFORM_CHUNK_ROWS])
        embedding = networks.encoder(chunk, training=False)
        out.append(ops.convert_to_numpy(networks.head(embedding, training=False)))
    return np.concatenate(out)


@dataclass(frozen=True)
class RunSettings:
    """The estimator's settings that a training run reads."""

    batch_size: int
    epochs: int
    patience: int
    negative_sampling: str
    learning_rate: float
    weight_decay: float
    verbose: int
    sampling_seed: int
    # The stopping rule ('loss' or 'embedding') and, for 'embedding', the metric of input neighbours.
    early_stopping: str = "loss"
    neighbour_metric: str = "angular"
    # The devices training is spread over (an ivis.nn.devices.DataParallel); None: one device.
    devices: object = None


def train(networks, losses, run, data, state, history, callbacks=()):
    """Train ``networks`` for ``run.epochs`` epochs, or resume the unfinished run ``state`` records.

    Parameters
    ----------
    networks : Networks
        Compiled networks (see :func:`compile_networks`).
    losses : LossSettings
    run : RunSettings
    data : TrainingData
        Rows, neighbours, targets, anchor order and held-out rows.
    state : TrainingState
        Updated in place after every epoch, so a checkpoint callback saves a resumable state.
    history : TrainingHistory
        Appended to after every epoch.
    callbacks : sequence of keras.callbacks.Callback
        The user's callbacks, run after ivis's own.

    Returns
    -------
    list of float
        Seconds per epoch of this run.
    """
    from ivis.nn.training import EpochProgress, EpochSync, StopOnNonFiniteLoss, TrainingRecorder, fit_triplets

    resuming = not state.complete
    initial_epoch = state.epochs_trained
    total_epochs = run.epochs if resuming else initial_epoch + run.epochs
    early_stopping = _stopping_rule(run, state.early_stopping if resuming else None, data, networks.encoder)
    validation = [] if data.held_out is None else [held_out_loss(networks, losses, data.source, *data.held_out)]
    progress = EpochProgress(
        total_epochs, initial_epoch, show=run.verbose > 0, rows=data.source.n_rows, batch_size=run.batch_size,
        steps_per_report=STEPS_PER_EXECUTION,
    )
    batches, rows_in_graph, in_batch = _triplet_batches(run, data, initial_epoch, losses.distance, networks.encoder)
    warmup = _warmup(run, losses, len(batches), total_epochs, initial_epoch)
    callbacks = [
        EpochSync(batches), *warmup, StopOnNonFiniteLoss(), *validation, early_stopping,
        TrainingRecorder(history, state, early_stopping), progress, *callbacks,
    ]
    # A checkpoint taken at the epoch early stopping ended the run resumes as finished.
    stopped = resuming and _has_stopped(early_stopping)
    if initial_epoch < total_epochs and not stopped:
        set_optimizer_params(networks.model.optimizer, run.learning_rate, run.weight_decay)  # set_params may change them
        trainer = trainer_for(
            networks, losses, data.source.data if rows_in_graph else None, in_batch,
            multi_step=run.devices.multi_step if run.devices else True,
        )
        fit_triplets(trainer, networks.model, batches, callbacks, total_epochs, initial_epoch)
    state.complete = True
    return progress.epoch_seconds


@dataclass
class TrainingData:
    """What one fit trains on: rows, their neighbours, encoded targets and held-out ``(rows, targets)``."""

    source: object
    neighbours: object
    targets: object = None
    shuffle_mode: object = True
    held_out: Optional[tuple] = None


def _warmup(run, losses, steps_per_epoch, total_epochs, initial_epoch):
    """The learning-rate warm-up of the contrastive losses (see :mod:`ivis.nn.warmup`), as a list of callbacks."""
    from ivis.nn.losses import triplet_loss
    from ivis.nn.warmup import LearningRateWarmup, warms_up

    if not warms_up(triplet_loss(losses.distance)):
        return []
    return [LearningRateWarmup(run.learning_rate, steps_per_epoch, total_epochs, initial_epoch)]


def _stopping_rule(run, saved, data, encoder):
    """The rule that ends training: on the loss, or with ``run.early_stopping='embedding'`` on the embedding."""
    if run.early_stopping != "embedding":
        return _early_stopping(run.patience, saved, data.held_out)
    from ivis.nn.plateau import embedding_rule

    def embed_rows(rows):
        return embed(encoder, as_row_source(rows))

    return embedding_rule(data.source, embed_rows, run.patience, run.neighbour_metric, run.sampling_seed, saved)


def _has_stopped(rule):
    has_stopped = getattr(rule, "has_stopped", None)
    return has_stopped() if has_stopped else rule.wait >= rule.patience


def _early_stopping(patience, saved, held_out):
    from ivis.nn.training import EarlyStoppingOnLoss

    saved = saved or {}
    best = saved.get("best")
    return EarlyStoppingOnLoss(
        patience, best=np.inf if best is None else best, wait=saved.get("wait", 0),
        monitor="loss" if held_out is None else "val_loss", restore_best_weights=held_out is not None,
    )


def _triplet_batches(run, data, initial_epoch, distance, encoder):
    """``(batches, rows_in_graph, in_batch)``: the epoch's batches and how the trainer takes them."""
    from ivis.nn.losses import triplet_loss
    from ivis.nn.network import takes_sparse_rows
    from ivis.nn.training import TripletBatches, input_coordinates

    source = data.source
    rows_in_graph = isinstance(source, ArraySource) and source.data.nbytes <= IN_GRAPH_ROWS_MAX_BYTES
    # Other anchors are uniformly drawn rows only when the anchors are shuffled.
    in_batch = run.negative_sampling == "in_batch" and data.shuffle_mode is True
    batches = TripletBatches(
        source, data.neighbours, run.batch_size, run.sampling_seed, data.shuffle_mode, data.targets, initial_epoch,
        indices_only=rows_in_graph, in_batch_negatives=in_batch, sparse_rows=takes_sparse_rows(encoder),
        # Losses with a global term compare embedding distances with input coordinates.
        coordinates=input_coordinates(triplet_loss(distance), source, run.sampling_seed),
        batch_shards=run.devices.batch_shards if run.devices else 1,
    )
    return batches, rows_in_graph, in_batch


def held_out_loss(networks, losses, source, rows, targets):
    """The callback that measures the supervised loss on the held-out ``rows`` of ``source``."""
    from ivis.nn.training import HeldOutLoss

    if not isinstance(source, ArraySource) and len(rows) * source.n_features * 4 <= HELD_OUT_CACHE_BYTES:
        # Read held-out rows from disk (or densify them) once, not every epoch.
        source, rows = ArraySource(source.get_batch(rows)), np.arange(len(rows))
    supervised_loss = training_losses(losses, True)[0][1]
    return HeldOutLoss(lambda: score_rows(networks, source, rows), targets, supervised_loss)


def trainer_for(networks, losses, rows, in_batch, multi_step=True):
    """The model to fit: ``networks.model`` itself, or one sharing its weights and optimizer.

    ``rows`` (the training set, for data held in the graph) makes the trainer take row
    indices; ``in_batch`` makes it reuse anchors' embeddings as negatives. Without
    ``multi_step``, every call into the compiled step runs one step.
    """
    from ivis.nn.network import in_batch_trainer, row_index_trainer

    if in_batch:
        trainer = in_batch_trainer(networks.encoder, networks.head, rows)
    elif rows is not None:
        trainer = row_index_trainer(networks.model, rows)
    else:
        return networks.model
    loss, weights = training_losses(losses, networks.head is not None)
    trainer.compile(
        optimizer=networks.model.optimizer, loss=loss, loss_weights=weights,
        steps_per_execution=STEPS_PER_EXECUTION if multi_step else 1,
    )
    return trainer
