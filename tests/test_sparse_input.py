"""The sparse first layer: same outputs and gradients as the dense layer, lazy optimizer
updates of the touched kernel rows only, and models trained on wide sparse rows that save,
load and embed sparse input."""

import keras
import numpy as np
import pytest
import scipy.sparse as sp
from keras import ops

import ivis.nn.sparse_input as sparse_input
from ivis import Ivis
from ivis.nn.network import takes_sparse_rows
from ivis.nn.sparse_input import LazyAdam, SparseRowsDense, sparse_tensor

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="sparse batches are fed on TensorFlow")


def _rows(n=12, width=40, seed=0):
    matrix = sp.random(n, width, density=0.1, format="csr", random_state=seed, dtype=np.float32)
    matrix.data[matrix.indptr[3]:matrix.indptr[4]] = 0  # an empty row
    matrix.eliminate_zeros()
    return matrix


def _layers(width, units=6):
    sparse_layer = SparseRowsDense(units, activation="selu", kernel_initializer=keras.initializers.LecunNormal(seed=1))
    dense_layer = keras.layers.Dense(units, activation="selu")
    sparse_layer.build((None, width))
    dense_layer.build((None, width))
    sparse_layer.bias.assign(np.linspace(-1, 1, units).astype(np.float32))
    dense_layer.set_weights(sparse_layer.get_weights())
    return sparse_layer, dense_layer


def test_sparse_layer_outputs_and_gradients_equal_the_dense_layer():
    rows = _rows()
    sparse_layer, dense_layer = _layers(rows.shape[1])
    weights = tf.constant(np.random.default_rng(0).standard_normal((rows.shape[0], 6)).astype(np.float32))
    results = []
    for layer, x in ((sparse_layer, sparse_tensor(rows)), (dense_layer, tf.constant(rows.toarray()))):
        with tf.GradientTape() as tape:
            out = layer(x)
            loss = tf.reduce_sum(out * weights)
        kernel_grad, bias_grad = tape.gradient(loss, [layer.kernel.value, layer.bias.value])
        results.append((out.numpy(), tf.convert_to_tensor(kernel_grad).numpy(), bias_grad.numpy(), kernel_grad))
    (sparse_out, sparse_kg, sparse_bg, raw), (dense_out, dense_kg, dense_bg, _) = results
    np.testing.assert_allclose(sparse_out, dense_out, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse_kg, dense_kg, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse_bg, dense_bg, rtol=1e-5, atol=1e-6)
    # The kernel gradient holds only the rows of columns that have non-zeros.
    assert isinstance(raw, tf.IndexedSlices)
    assert set(np.unique(raw.indices.numpy())) == set(np.unique(rows.indices))


def test_lazy_adam_updates_touched_rows_as_adam_and_leaves_the_others():
    rows = _rows()
    touched = np.unique(rows.indices)
    untouched = np.setdiff1d(np.arange(rows.shape[1]), touched)
    assert untouched.size
    sparse_layer, dense_layer = _layers(rows.shape[1])
    before = sparse_layer.kernel.numpy().copy()
    lazy, adam = LazyAdam(learning_rate=0.01), keras.optimizers.Adam(learning_rate=0.01)
    for layer, optimizer, x in ((sparse_layer, lazy, sparse_tensor(rows)), (dense_layer, adam, tf.constant(rows.toarray()))):
        for _ in range(2):  # the second step checks the moments carried over
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(ops.square(layer(x)))
            grads = tape.gradient(loss, layer.trainable_variables)
            optimizer.apply(grads, layer.trainable_variables)
    np.testing.assert_array_equal(sparse_layer.kernel.numpy()[untouched], before[untouched])
    np.testing.assert_allclose(sparse_layer.kernel.numpy()[touched], dense_layer.kernel.numpy()[touched], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(sparse_layer.bias.numpy(), dense_layer.bias.numpy(), rtol=1e-5, atol=1e-6)
    assert not np.allclose(sparse_layer.kernel.numpy()[touched], before[touched])


@pytest.fixture
def wide_sparse(monkeypatch):
    """Four groups of 240 sparse rows, each group using its own block of 100 columns."""
    monkeypatch.setattr(sparse_input, "SPARSE_INPUT_MIN_FEATURES", 200)
    rng = np.random.default_rng(0)
    n_groups, per_group, block = 4, 240, 100
    blocks = []
    for group in range(n_groups):
        part = sp.random(per_group, block, density=0.08, format="csr", random_state=group, dtype=np.float32)
        part.data[:] = 1.0
        left = sp.csr_matrix((per_group, group * block), dtype=np.float32)
        right = sp.csr_matrix((per_group, (n_groups - group - 1) * block), dtype=np.float32)
        blocks.append(sp.hstack([left, part, right]))
    X = sp.vstack(blocks).tocsr()
    order = rng.permutation(X.shape[0])
    return X[order], np.repeat(np.arange(n_groups), per_group)[order]


def test_wide_sparse_fit_uses_the_sparse_layer_and_saves_loads_and_embeds(wide_sparse, tmp_path):
    from sklearn.model_selection import cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    X, y = wide_sparse
    model = Ivis(k=10, epochs=10, batch_size=64, verbose=0, random_state=0)
    embedding = model.fit_transform(X)
    assert takes_sparse_rows(model.encoder_)
    assert any(isinstance(layer, SparseRowsDense) for layer in model.encoder_.layers[1].layers)
    assert cross_val_score(KNeighborsClassifier(15), embedding, y, cv=3).mean() > 0.9
    # The same rows embed the same way densified (the layer's dense path) and sparse.
    np.testing.assert_allclose(model.transform(X.toarray()), model.transform(X), rtol=1e-4, atol=1e-5)
    model.save_model(str(tmp_path / "model"))
    loaded = Ivis().load_model(str(tmp_path / "model"))
    assert takes_sparse_rows(loaded.encoder_)
    np.testing.assert_allclose(loaded.transform(X[:50]), model.transform(X[:50]), rtol=1e-5, atol=1e-6)


def test_wide_sparse_fit_is_reproducible(wide_sparse):
    X, _ = wide_sparse
    first = Ivis(k=10, epochs=1, batch_size=64, verbose=0, random_state=3).fit_transform(X)
    second = Ivis(k=10, epochs=1, batch_size=64, verbose=0, random_state=3).fit_transform(X)
    np.testing.assert_allclose(first, second, rtol=1e-5, atol=1e-6)
