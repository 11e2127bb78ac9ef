"""A first layer for very wide sparse rows, and the optimizer that updates it lazily.

A dense first layer multiplies every row as ``n_features`` values, so a batch of sparse rows
is densified first and the whole ``n_features x units`` kernel takes part in every step.
:class:`SparseRowsDense` computes the same product from the non-zeros only: it gathers the
kernel rows of the non-zero columns, scales them by the values and sums them per row. Its
kernel gradient is then a sparse set of rows (``tf.IndexedSlices`` on TensorFlow), which
:class:`LazyAdam` applies to those rows only, leaving the others and their moments as they
are. Networks get this layer when the training data is a wide sparse matrix
(:func:`uses_sparse_input`) on the TensorFlow backend, which can feed sparse batches.
"""

import keras
import numpy as np
from keras import ops

# Sparse inputs with more columns than this get a sparse first layer: below it a densified
# batch is small and a dense product is as fast.
SPARSE_INPUT_MIN_FEATURES = 4096


def uses_sparse_input(source):
    """Whether networks for ``source`` take sparse rows (a wide SciPy matrix, TensorFlow backend)."""
    from ivis.data.inputs import SparseSource

    return (
        isinstance(source, SparseSource)
        and len(source.row_shape) == 1
        and source.n_features > SPARSE_INPUT_MIN_FEATURES
        and keras.backend.backend() == "tensorflow"
    )


def sparse_tensor(matrix):
    """A SciPy sparse matrix as a float32 ``tf.SparseTensor`` in canonical (row-major) order."""
    import tensorflow as tf

    coo = matrix.tocoo()
    order = np.lexsort((coo.col, coo.row))
    indices = np.stack([coo.row[order], coo.col[order]], axis=1).astype(np.int64)
    return tf.SparseTensor(indices, coo.data[order].astype(np.float32), [int(s) for s in matrix.shape])


@keras.saving.register_keras_serializable(package="ivis")
class SparseRowsDense(keras.layers.Dense):
    """A dense layer whose product with sparse rows reads only their non-zeros.

    On sparse input (a ``tf.SparseTensor``) the output of row ``i`` is
    ``sum_j x[i, j] * kernel[j]`` over the non-zero columns ``j``, plus the bias, then the
    activation: exactly what :class:`keras.layers.Dense` computes, but in
    ``O(nnz x units)`` and with a kernel gradient that holds only the gathered rows. Dense
    input goes through :class:`keras.layers.Dense` unchanged, so weights, configuration and
    saved models are those of a dense layer.
    """

    def call(self, inputs, training=None):
        indices = getattr(inputs, "indices", None)
        values = getattr(inputs, "values", None)
        if indices is None or values is None:
            return super().call(inputs, training=training)
        rows, columns = indices[:, 0], indices[:, 1]
        gathered = _gather_rows(self.kernel, columns) * ops.expand_dims(ops.cast(values, self.compute_dtype), 1)
        outputs = ops.segment_sum(gathered, rows, num_segments=ops.shape(inputs)[0])
        if self.use_bias:
            outputs = ops.add(outputs, self.bias)
        return outputs if self.activation is None else self.activation(outputs)


def _gather_rows(variable, rows):
    """Rows of ``variable``; on TensorFlow read from the variable itself, not a copy of all of it.

    A full read would keep the whole kernel alive through the step, and the optimizer's
    scatter into the variable would then copy it entire.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return tf.gather(variable.value, rows)
    return ops.take(variable, rows, axis=0)


def _indexed_slices(gradient):
    """``(values, indices)`` of a row-sparse gradient (``tf.IndexedSlices``), else None."""
    values, indices = getattr(gradient, "values", None), getattr(gradient, "indices", None)
    if values is None or indices is None or getattr(gradient, "dense_shape", None) is None:
        return None
    return values, indices


@keras.saving.register_keras_serializable(package="ivis")
class LazyAdam(keras.optimizers.Adam):
    """Adam that applies a row-sparse gradient to the touched rows only.

    Dense gradients get Keras's Adam update. For a row-sparse gradient (the kernel of
    :class:`SparseRowsDense`) the moments and weights of the rows it holds are updated as
    Adam would, and all other rows are left untouched, so a step costs what the batch's
    non-zero columns cost, not the size of the kernel. This is the lazy Adam of sparse
    embedding training: rows not seen in a step keep their moments instead of decaying them.
    """

    def update_step(self, gradient, variable, learning_rate):
        sparse = _indexed_slices(gradient)
        if sparse is None:
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        values, indices = sparse
        rows, positions = tf.unique(indices)
        grad = tf.math.unsorted_segment_sum(ops.cast(values, variable.dtype), positions, tf.shape(rows)[0])
        lr = ops.cast(learning_rate, variable.dtype)
        step = ops.cast(self.iterations + 1, variable.dtype)
        alpha = lr * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, variable.dtype), step)) / (
            1 - ops.power(ops.cast(self.beta_1, variable.dtype), step)
        )
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        m_rows = tf.gather(m.value, rows) * self.beta_1 + grad * (1 - self.beta_1)
        v_rows = tf.gather(v.value, rows) * self.beta_2 + ops.square(grad) * (1 - self.beta_2)
        m.value.scatter_update(tf.IndexedSlices(m_rows, rows))
        v.value.scatter_update(tf.IndexedSlices(v_rows, rows))
        self.assign_sub(variable, tf.IndexedSlices(m_rows * alpha / (ops.sqrt(v_rows) + self.epsilon), rows))


def sparse_rows(source, rows):
    """Rows ``rows`` of a row source as a ``tf.SparseTensor``, without densifying sparse data."""
    from ivis.data.inputs import SparseSource

    if isinstance(source, SparseSource):
        return sparse_tensor(source.data[np.asarray(rows)])
    import scipy.sparse

    return sparse_tensor(scipy.sparse.csr_matrix(source.get_batch(rows).reshape(len(rows), -1)))


def iter_sparse_chunks(source, chunk_rows):
    """``(start, tf.SparseTensor)`` for consecutive chunks of ``chunk_rows`` rows of ``source``."""
    for start in range(0, source.n_rows, chunk_rows):
        yield start, sparse_rows(source, np.arange(start, min(start + chunk_rows, source.n_rows)))
