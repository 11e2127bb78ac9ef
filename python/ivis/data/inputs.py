"""Uniform, validated access to every kind of input ivis accepts.

:func:`as_row_source` wraps NumPy arrays, pandas DataFrames, SciPy sparse matrices, h5py
datasets and :class:`~ivis.data.sequence.IndexableDataset` objects (or anything with
``shape`` and ``__getitem__``) in a :class:`RowSource`: rows come out as float32 NumPy
arrays, a batch or a contiguous chunk at a time, so that no caller needs to know where the
data lives or densify it whole.
"""

import numbers

import numpy as np

# Rows per chunk when data is streamed (finiteness checks, index builds, transform).
DEFAULT_CHUNK_ROWS = 8192


def _non_finite_message(name, start, chunk):
    bad = np.argwhere(~np.isfinite(chunk.reshape(len(chunk), -1)))
    row, col = bad[0]
    return (
        f"{name} contains NaN or infinite values (first at row {start + row}, column {col}). "
        "Remove or impute them before fitting, e.g. with sklearn.impute.SimpleImputer."
    )


class RowSource:
    """Rows of a dataset as float32 arrays; subclasses define how rows are read.

    Parameters
    ----------
    data : object
        The wrapped data.
    shape : tuple of int
        Rows first, then the shape of one row.
    name : str
        The name used for this input in error messages.
    """

    in_memory = False

    def __init__(self, data, shape, name="X"):
        self.data = data
        self.shape = tuple(int(s) for s in shape)
        self.name = name

    @property
    def n_rows(self):
        return self.shape[0]

    @property
    def row_shape(self):
        return self.shape[1:]

    @property
    def n_features(self):
        return int(np.prod(self.row_shape))

    def get_batch(self, indices):
        """Return the rows at ``indices`` (in that order) as a float32 array."""
        raise NotImplementedError

    def read_range(self, start, stop):
        """Return rows ``start:stop`` as a float32 array."""
        return self.get_batch(np.arange(start, stop))

    def iter_chunks(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        """Yield ``(start, rows)`` for consecutive chunks covering every row."""
        for start in range(0, self.n_rows, chunk_rows):
            yield start, self.read_range(start, min(start + chunk_rows, self.n_rows))

    def check_finite(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        """Raise ``ValueError`` naming the first NaN or infinite value, chunk by chunk."""
        for start, chunk in self.iter_chunks(chunk_rows):
            if not np.isfinite(chunk).all():
                raise ValueError(_non_finite_message(self.name, start, chunk))


class ArraySource(RowSource):
    """A dense in-memory NumPy array, held as C-ordered float32 (copied only if needed)."""

    in_memory = True

    def __init__(self, array, name="X"):
        array = np.ascontiguousarray(array, dtype=np.float32)
        super().__init__(array, array.shape, name)

    def get_batch(self, indices):
        return np.take(self.data, indices, axis=0)

    def read_range(self, start, stop):
        return self.data[start:stop]

    def check_finite(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        # Whole-array check first: one fast pass in the common, clean case.
        if not np.isfinite(self.data).all():
            super().check_finite(chunk_rows)


class SparseSource(RowSource):
    """A SciPy sparse matrix, kept sparse (CSR); only requested rows are densified."""

    in_memory = True

    def __init__(self, matrix, name="X"):
        matrix = matrix.tocsr()
        if not np.issubdtype(matrix.dtype, np.number) or np.issubdtype(matrix.dtype, np.complexfloating):
            raise TypeError(f"{name} must hold real numbers; the sparse matrix has dtype {matrix.dtype}.")
        super().__init__(matrix, matrix.shape, name)

    def get_batch(self, indices):
        return self.data[np.asarray(indices)].toarray().astype(np.float32, copy=False)

    def read_range(self, start, stop):
        return self.data[start:stop].toarray().astype(np.float32, copy=False)

    def check_finite(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        values = self.data.data
        if not np.isfinite(values).all():
            row = int(np.searchsorted(self.data.indptr, np.flatnonzero(~np.isfinite(values))[0], "right") - 1)
            raise ValueError(
                f"{self.name} contains NaN or infinite values (first in row {row}). "
                "Remove or impute them before fitting."
            )


class IndexedSource(RowSource):
    """Out-of-core data: h5py datasets, IndexableDatasets and other indexable objects.

    Batches are read with one sorted, de-duplicated request (HDF5 and most stores read
    increasing indices far faster than random ones) and put back in the requested order.
    """

    def __init__(self, data, name="X"):
        super().__init__(data, data.shape, name)
        self._has_get_batch = callable(getattr(data, "get_batch", None))

    def _read_sorted(self, unique_indices):
        if self._has_get_batch:
            rows = self.data.get_batch(unique_indices)
        else:
            rows = self.data[unique_indices]
        rows = np.asarray(rows)
        expected = (len(unique_indices),) + self.row_shape
        if rows.shape != expected:
            raise ValueError(
                f"Reading {len(unique_indices)} rows of {self.name} ({type(self.data).__name__}) "
                f"returned shape {rows.shape}; expected {expected}. Check its get_batch/"
                "__getitem__ and shape."
            )
        return rows.astype(np.float32, copy=False)

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64)
        unique, inverse = np.unique(indices, return_inverse=True)
        return self._read_sorted(unique)[inverse]

    def read_range(self, start, stop):
        if self._has_get_batch:
            return self._read_sorted(np.arange(start, stop))
        rows = np.asarray(self.data[start:stop])
        return rows.astype(np.float32, copy=False)


def _is_h5py_dataset(X):
    # Type checks only: touching attributes of a dataset whose file is closed raises.
    return type(X).__module__.startswith("h5py") and type(X).__name__ == "Dataset"


def _check_h5py_dataset(X, name):
    if not X.id.valid:
        raise ValueError(
            f"The HDF5 dataset given as {name} belongs to a closed file. Keep the h5py.File open "
            "(e.g. inside its `with` block) while fitting or transforming."
        )
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"The HDF5 dataset given as {name} has non-numeric dtype {X.dtype}.")


def _is_numeric_column(dtype):
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    return is_numeric_dtype(dtype) and not is_bool_dtype(dtype)


def _dataframe_to_array(X, name):
    non_numeric = [str(c) for c, dtype in X.dtypes.items() if not _is_numeric_column(dtype)]
    if non_numeric:
        raise TypeError(
            f"{name} has non-numeric columns: {', '.join(non_numeric)}. Encode them as numbers "
            "(e.g. one-hot) or drop them before fitting."
        )
    return X.to_numpy(dtype=np.float32)


def as_row_source(X, name="X", min_rows=1):
    """Validate ``X`` and wrap it in the matching :class:`RowSource`.

    Parameters
    ----------
    X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
        The data.
    name : str, default='X'
        Name used in error messages.
    min_rows : int, default=1
        The smallest number of rows accepted.

    Raises
    ------
    TypeError
        For non-numeric data or objects without ``shape`` and ``__getitem__``.
    ValueError
        For empty data, too few rows, data with no feature axis, or a closed HDF5 file.
    """
    if isinstance(X, RowSource):
        source = X
    elif hasattr(X, "tocsr") and hasattr(X, "nnz"):
        source = SparseSource(X, name)
    elif type(X).__name__ == "DataFrame" and hasattr(X, "dtypes"):
        source = ArraySource(_dataframe_to_array(X, name), name)
    elif _is_h5py_dataset(X):
        _check_h5py_dataset(X, name)
        source = IndexedSource(X, name)
    elif isinstance(X, np.ndarray) or isinstance(X, (list, tuple)) or hasattr(X, "__array__") and not hasattr(X, "get_batch"):
        source = ArraySource(_numeric_array(X, name), name)
    elif hasattr(X, "shape") and hasattr(X, "__getitem__"):
        source = IndexedSource(X, name)
    else:
        raise TypeError(
            f"{name} must be an array, DataFrame, sparse matrix, h5py dataset or IndexableDataset "
            f"(anything with .shape and __getitem__); got {type(X).__name__}."
        )
    if len(source.shape) < 2:
        raise ValueError(
            f"{name} must be at least 2-dimensional (rows x features); got shape {source.shape}. "
            "Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single row."
        )
    if source.n_features == 0:
        raise ValueError(f"0 feature(s) (shape={source.shape}) while a minimum of 1 is required.")
    if source.n_rows < min_rows:
        raise ValueError(
            f"Found {name} with {source.n_rows} sample(s) (shape={source.shape}) while a minimum of "
            f"{min_rows} is required: ivis learns from neighbouring samples."
        )
    return source


def _numeric_array(X, name):
    """``X`` as a real-valued NumPy array, or a clear error."""
    array = np.asarray(X)
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}.")
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype == object:
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} has values that are not numbers ({error}); each argument must be a string or a "
                "number convertible to float. Encode categorical columns (e.g. one-hot) before fitting."
            ) from None
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"{name} must be numeric; got an array of dtype {array.dtype}. Convert or encode "
            "non-numeric columns before fitting."
        )
    return array


def is_integer(value):
    """True for Python and NumPy integers (not bools)."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
