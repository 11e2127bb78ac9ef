"""Base networks, the encoder, and the siamese triplet network that trains it.

The three named base networks are stacks of dense SELU layers (LeCun-normal initialisation,
AlphaDropout between layers) that keep activations self-normalising. The encoder appends a
linear embedding layer to a base network; the triplet network applies that one encoder to the
anchor, positive and negative inputs and stacks the three embeddings for the triplet loss.
"""

import keras
from keras import ops

from ivis._params import NETWORK_NAMES, check_model_name
from ivis._seeds import layer_seed

BASE_NETWORK_SIZES = dict(zip(NETWORK_NAMES, [(128, 128, 128), (2000, 1000, 500), (500, 500, 2000)]))
DROPOUT_RATE = 0.1


def dense_selu_network(input_shape, units, name, seed=None, sparse=False):
    """Build a base network of dense SELU layers with AlphaDropout between them.

    Inputs with more than one axis per row are flattened first. With ``sparse`` the network
    takes sparse rows and its first layer is a :class:`~ivis.nn.sparse_input.SparseRowsDense`,
    initialised exactly as the dense layer would be.
    """
    from ivis.nn.sparse_input import SparseRowsDense

    inputs = keras.Input(shape=tuple(input_shape), sparse=sparse)
    x = inputs if len(input_shape) == 1 else keras.layers.Flatten()(inputs)
    for i, width in enumerate(units):
        if i > 0:
            x = keras.layers.AlphaDropout(DROPOUT_RATE, seed=layer_seed(seed, "dropout", i))(x)
        layer = SparseRowsDense if sparse and i == 0 else keras.layers.Dense
        x = layer(
            width,
            activation="selu",
            kernel_initializer=keras.initializers.LecunNormal(seed=layer_seed(seed, "dense", i)),
        )(x)
    return keras.Model(inputs, x, name=name)


def szubert(input_shape, seed=None):
    """The default base network: three dense SELU layers of 128 units."""
    return dense_selu_network(input_shape, BASE_NETWORK_SIZES["szubert"], "szubert", seed)


def hinton(input_shape, seed=None):
    """A wide base network: dense SELU layers of 2000, 1000 and 500 units."""
    return dense_selu_network(input_shape, BASE_NETWORK_SIZES["hinton"], "hinton", seed)


def maaten(input_shape, seed=None):
    """A base network of dense SELU layers of 500, 500 and 2000 units."""
    return dense_selu_network(input_shape, BASE_NETWORK_SIZES["maaten"], "maaten", seed)


def base_network(model_name, input_shape, seed=None, sparse=False):
    """Return the named base network for rows of ``input_shape`` (sparse rows with ``sparse``).

    Raises
    ------
    ValueError
        If ``model_name`` is not one of the named networks (the message lists them).
    """
    check_model_name(model_name)
    units = BASE_NETWORK_SIZES[model_name]
    return dense_selu_network(input_shape, units, model_name, seed, sparse)


def copy_user_model(model):
    """Return a copy of a user's Keras model with the same weights, leaving theirs untouched.

    Models that Keras cannot clone (some subclassed models) are used as they are.
    """
    try:
        clone = keras.models.clone_model(model)
    except Exception:  # noqa: BLE001 - any cloning failure means: train the original
        return model
    if model.built and clone.built:
        clone.set_weights(model.get_weights())
    return clone


def takes_sparse_rows(network):
    """Whether ``network``'s (first) input is sparse; False for a model whose inputs are not defined yet."""
    try:
        first = network.inputs[0]
    except (AttributeError, IndexError, TypeError):
        return False
    return bool(getattr(first, "sparse", False))


def build_encoder(base, input_shape, embedding_dims, seed=None):
    """Append a linear, Glorot-uniform embedding layer of ``embedding_dims`` to ``base``."""
    inputs = keras.Input(shape=tuple(input_shape), sparse=takes_sparse_rows(base))
    features = base(inputs)
    if len(features.shape) > 2:
        features = keras.layers.Flatten()(features)
    embedding = keras.layers.Dense(
        embedding_dims,
        kernel_initializer=keras.initializers.GlorotUniform(seed=layer_seed(seed, "embedding")),
        name="embedding",
    )(features)
    return keras.Model(inputs, embedding, name="encoder")


class StackTriplets(keras.layers.Layer):
    """Stack anchor, positive and negative embeddings into shape ``(3, batch, dims)``."""

    def call(self, anchor, positive, negative):
        return ops.stack([anchor, positive, negative], axis=0)

    def compute_output_shape(self, anchor_shape, positive_shape, negative_shape):
        return (3,) + tuple(anchor_shape)


def triplet_network(encoder, supervised_head=None):
    """Build the training network around a shared ``encoder``.

    The network takes the anchor, positive and negative batches as three inputs (so that
    ``network.layers[3]`` is the encoder) and outputs the stacked triplet embeddings, plus,
    in supervised mode, the head's predictions for the anchors.
    """
    input_shape = encoder.inputs[0].shape[1:]
    sparse = takes_sparse_rows(encoder)
    inputs = [keras.Input(shape=input_shape, sparse=sparse, name=name) for name in ("anchor", "positive", "negative")]
    embeddings = [encoder(x) for x in inputs]
    stacked = StackTriplets(name="triplets")(*embeddings)
    if supervised_head is None:
        return keras.Model(inputs, stacked, name="ivis")
    return keras.Model(inputs, [stacked, supervised_head(embeddings[0])], name="ivis")


class BatchNegatives(keras.layers.Layer):
    """Stack anchor, positive and negative embeddings, each negative being another anchor's.

    ``positions`` (int32, one per anchor) says which anchor of the batch serves as the
    negative: the anchors' embeddings are reused, so negatives cost no network pass.
    """

    def call(self, anchor, positive, positions):
        return ops.stack([anchor, positive, ops.take(anchor, positions, axis=0)], axis=0)

    def compute_output_shape(self, anchor_shape, positive_shape, positions_shape):
        return (3,) + tuple(anchor_shape)


class GatherRows(keras.layers.Layer):
    """Look up the rows of a triplet batch in a training set held as a non-trainable variable.

    Input: integer indices of shape ``(batch, 3)`` (anchor, positive, negative). Output: the
    row batches of the first ``roles`` columns (all three by default), ready for the triplet
    network. Only indices travel from Python to the compiled training step, which is what
    makes in-memory training fast.
    """

    def __init__(self, rows, roles=3, **kwargs):
        super().__init__(**kwargs)
        self.rows = keras.Variable(rows, trainable=False, name="training_rows")
        self.roles = int(roles)

    def call(self, indices):
        return [ops.take(self.rows, indices[:, role], axis=0) for role in range(self.roles)]

    def compute_output_shape(self, indices_shape):
        return [(indices_shape[0],) + tuple(self.rows.shape[1:])] * self.roles


def row_index_trainer(network, rows):
    """Wrap ``network`` in a model that takes ``(batch, 3)`` row indices into ``rows``.

    The wrapper shares every weight with ``network``; it exists only while training.
    """
    indices = keras.Input(shape=(3,), dtype="int32", name="triplet_indices")
    return keras.Model(indices, network(GatherRows(rows)(indices)), name="ivis_trainer")


def in_batch_trainer(encoder, supervised_head=None, rows=None):
    """A training model whose negatives are other anchors of the batch (two passes per triplet).

    It shares every weight with ``encoder`` and ``supervised_head`` and computes the same
    losses as :func:`triplet_network` would for the triplets (anchor, positive,
    ``anchor[position]``). Inputs are the anchor rows, the positive rows and the negatives'
    positions in the batch; with ``rows`` (the training set, held in the graph as in
    :func:`row_index_trainer`) a single ``(batch, 3)`` int32 input instead: anchor row,
    positive row, negative position.
    """
    if rows is None:
        input_shape = encoder.inputs[0].shape[1:]
        anchor = keras.Input(shape=input_shape, sparse=takes_sparse_rows(encoder), name="anchor")
        positive = keras.Input(shape=input_shape, sparse=takes_sparse_rows(encoder), name="positive")
        positions = keras.Input(shape=(), dtype="int32", name="negative_positions")
        inputs = [anchor, positive, positions]
    else:
        inputs = keras.Input(shape=(3,), dtype="int32", name="triplet_indices")
        anchor, positive = GatherRows(rows, roles=2)(inputs)
        positions = inputs[:, 2]
    anchor_embedding = encoder(anchor)
    stacked = BatchNegatives(name="triplets")(anchor_embedding, encoder(positive), positions)
    outputs = stacked if supervised_head is None else [stacked, supervised_head(anchor_embedding)]
    return keras.Model(inputs, outputs, name="ivis_in_batch_trainer")
