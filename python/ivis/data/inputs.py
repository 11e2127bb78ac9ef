"""Uniform, validated access to every kind of input ivis accepts.

:func:`as_row_source` wraps NumPy arrays, pandas DataFrames, SciPy sparse matrices, h5py
datasets and :class:`~ivis.data.sequence.IndexableDataset` objects (or anything with
``shape`` and ``__getitem__``) in a :class:`RowSource`: rows come out as float32 NumPy
arrays, a batch or a contiguous chunk at a time, so that no caller needs to know where the
data lives or densify it whole.
"""

import numpy as np

from ivis.data import read_plan
from ivis.data.read_plan import plan_reads  # noqa: F401 - re-exported
from ivis.data.float32 import (  # noqa: F401 - FLOAT32_MAX and check_float32_range re-exported
    FLOAT32_MAX,
    check_float32_range,
    non_finite_message,
    overflow_mask,
    to_float32,
    too_large_message,
)

# Rows per chunk when data is streamed (finiteness checks, index builds, transform).
DEFAULT_CHUNK_ROWS = 8192
# Cap on the dense bytes of one streamed chunk: very wide rows (a sparse matrix of 78,498
# columns, say) are streamed in fewer rows per chunk, so that no chunk needs gigabytes.
MAX_CHUNK_BYTES = 64 * 2**20


def bounded_chunk_rows(chunk_rows, n_features, itemsize=4):
    """``chunk_rows`` lowered so that a dense chunk stays within :data:`MAX_CHUNK_BYTES`.

    Parameters
    ----------
    chunk_rows : int
        Rows per chunk wanted.
    n_features : int
        Values per row.
    itemsize : int, default=4
        Bytes per value (float32).

    Returns
    -------
    int
        At least 1.
    """
    return max(1, min(int(chunk_rows), MAX_CHUNK_BYTES // max(1, int(n_features) * itemsize)))


def _add_note(error, note):
    # Context for errors raised inside user code, without changing their type (Python 3.11+).
    if hasattr(error, "add_note"):
        error.add_note(note)


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
        """Yield ``(start, rows)`` for consecutive chunks covering every row.

        Chunks hold at most ``chunk_rows`` rows, fewer for rows so wide that a chunk would
        exceed :data:`MAX_CHUNK_BYTES`.
        """
        chunk_rows = bounded_chunk_rows(chunk_rows, self.n_features)
        for start in range(0, self.n_rows, chunk_rows):
            yield start, self.read_range(start, min(start + chunk_rows, self.n_rows))

    def check_finite(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        """Raise ``ValueError`` naming the first NaN or infinite value, chunk by chunk."""
        for start, chunk in self.iter_chunks(chunk_rows):
            if not np.isfinite(chunk).all():
                raise ValueError(non_finite_message(self.name, start, chunk))


class ArraySource(RowSource):
    """A dense in-memory NumPy array, held as C-ordered float32 (copied only if needed)."""

    in_memory = True

    def __init__(self, array, name="X"):
        original = np.asarray(array)
        array = to_float32(original)
        check_float32_range(original, array, name)
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
        if not _is_real_dtype(matrix.dtype):
            raise TypeError(f"{name} must hold real numbers; the sparse matrix has dtype {matrix.dtype}.")
        overflowed = overflow_mask(matrix.data, to_float32(matrix.data))
        if overflowed is not None and overflowed.any():
            position = np.flatnonzero(overflowed)[0]
            row = int(np.searchsorted(matrix.indptr, position, "right") - 1)
            where = f"at row {row}, column {int(matrix.indices[position])}"
            raise ValueError(too_large_message(name, float(matrix.data[position]), where))
        super().__init__(matrix, matrix.shape, name)

    def get_batch(self, indices):
        return to_float32(self.data[np.asarray(indices)].toarray())

    def read_range(self, start, stop):
        return to_float32(self.data[start:stop].toarray())

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

    A batch is read in as few requests as possible, each over increasing indices (HDF5 and
    most stores read those far faster than random ones), and put back in the requested
    order. Objects with a ``get_batch`` method (:class:`~ivis.data.sequence.IndexableDataset`)
    get one ``get_batch`` call with the sorted, distinct indices, checked with
    :func:`~ivis.data.sequence.validation.checked_batch`. Other objects (h5py datasets) are
    sliced: each run of nearby indices is read with one slice (a contiguous batch of anchors
    is one slice) and the remaining scattered rows with one index-list request; see
    :func:`plan_reads`. No row is ever read on its own.
    """

    def __init__(self, data, name="X"):
        super().__init__(data, data.shape, name)
        self._has_get_batch = callable(getattr(data, "get_batch", None))
        itemsize = getattr(getattr(data, "dtype", None), "itemsize", 4) or 4
        self._max_gap = read_plan.MAX_GAP_BYTES // max(1, self.n_features * int(itemsize))

    def _check_rows(self, rows, row_numbers):
        """``rows`` read at ``row_numbers``, checked and converted to float32."""
        rows = np.asarray(rows)
        n = len(row_numbers)
        expected = (n,) + self.row_shape
        if rows.shape != expected:
            raise ValueError(
                f"Reading {n} rows of {self.name} ({type(self.data).__name__}) returned shape "
                f"{rows.shape}; expected {expected}. Check its get_batch/__getitem__ and shape."
            )
        if not (np.issubdtype(rows.dtype, np.number) or rows.dtype == bool):
            raise TypeError(
                f"Reading rows of {self.name} ({type(self.data).__name__}) returned values of "
                f"non-numeric dtype {rows.dtype}."
            )
        converted = to_float32(rows)
        check_float32_range(rows, converted, self.name, row_numbers)
        return converted

    def _dataset_batch(self, indices):
        from ivis.data.sequence.validation import checked_batch

        try:
            rows = checked_batch(self.data, indices)
        except Exception as error:
            _add_note(
                error,
                f"(while reading {len(indices)} rows of {self.name}, a {type(self.data).__name__}, "
                f"with get_batch; every row must have shape {self.row_shape})",
            )
            raise
        return self._check_rows(rows, indices)

    def _read_unique(self, unique):
        """Rows at the increasing, distinct ``unique`` indices."""
        if self._has_get_batch:
            return self._dataset_batch(unique)
        slices, scattered = plan_reads(unique, self._max_gap)
        if not scattered.size and len(slices) == 1:
            first, last, lo, hi = slices[0]
            if hi - lo == len(unique):
                return self.read_range(lo, hi)
        out = np.empty((len(unique),) + self.row_shape, dtype=np.float32)
        for first, last, lo, hi in slices:
            block = self._check_rows(self.data[lo:hi], np.arange(lo, hi))
            out[first:last] = block[unique[first:last] - lo]
        if scattered.size:
            out[scattered] = self._check_rows(self.data[unique[scattered]], unique[scattered])
        return out

    def get_batch(self, indices):
        indices = np.asarray(indices, dtype=np.int64).ravel()
        if indices.size and indices[-1] - indices[0] == indices.size - 1 and (np.diff(indices) == 1).all():
            # Already one contiguous, increasing run (a batch of anchors in 'batch' mode).
            return self.read_range(int(indices[0]), int(indices[-1]) + 1)
        unique, inverse = np.unique(indices, return_inverse=True)
        return self._read_unique(unique)[inverse.ravel()]

    def read_range(self, start, stop):
        if self._has_get_batch:
            return self._dataset_batch(np.arange(start, stop))
        return self._check_rows(self.data[start:stop], np.arange(start, stop))


def is_h5py_dataset(X):
    """True for an ``h5py.Dataset``, found without importing h5py.

    Type checks only: touching attributes of a dataset whose file is closed raises.
    """
    return type(X).__module__.startswith("h5py") and type(X).__name__ == "Dataset"


def _check_h5py_dataset(X, name):
    if not X.id.valid:
        raise ValueError(
            f"The HDF5 dataset given as {name} belongs to a closed file. Keep the h5py.File open "
            "(e.g. inside its `with` block) while fitting or transforming."
        )
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"The HDF5 dataset given as {name} has non-numeric dtype {X.dtype}.")


def _is_real_dtype(dtype):
    return dtype == bool or np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)


def _is_float32_c_array(X):
    return X.dtype == np.float32 and X.flags.c_contiguous


def _is_numeric_column(dtype):
    # Booleans count as numbers (0 and 1), as they do in a NumPy array.
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    return (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not is_complex_dtype(dtype)


def _dataframe_to_array(X, name):
    non_numeric = [str(c) for c, dtype in X.dtypes.items() if not _is_numeric_column(dtype)]
    if non_numeric:
        raise TypeError(
            f"{name} has non-numeric columns: {', '.join(non_numeric)}. Encode them as numbers "
            "(e.g. one-hot) or drop them before fitting."
        )
    # Wide float columns stay float64 until ArraySource checks them against float32's range.
    wide = any(getattr(dtype, "kind", "") == "f" and dtype.itemsize > 4 for dtype in X.dtypes)
    return X.to_numpy(dtype=np.float64 if wide else np.float32, na_value=np.nan)


def as_row_source(X, name="X", min_rows=1):
    """Validate ``X`` and wrap it in the matching :class:`RowSource`.

    Parameters
    ----------
    X : array-like, sparse matrix, h5py.Dataset, dask.array.Array, IndexableDataset or anndata.AnnData
        The data (an AnnData's ``.X``, in memory or backed).
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
    from ivis.data.anndata import anndata_rows, is_anndata  # does not import anndata

    if is_anndata(X):  # its .X; anndata_rows picks obsm[use_rep] or a layer
        X = anndata_rows(X)
    if isinstance(X, RowSource):
        source = X
    elif hasattr(X, "tocsr") and hasattr(X, "nnz"):
        source = SparseSource(X, name)
    elif type(X).__name__ == "DataFrame" and hasattr(X, "dtypes"):
        source = ArraySource(_dataframe_to_array(X, name), name)
    elif is_h5py_dataset(X):
        _check_h5py_dataset(X, name)
        source = IndexedSource(X, name)
    elif type(X).__module__.startswith("dask.array") and hasattr(X, "chunks"):
        # Out of core: only the blocks holding requested rows are computed.
        from ivis.distributed.dask_arrays import DaskArraySource

        source = DaskArraySource(X, name)
    elif isinstance(X, np.memmap) and _is_real_dtype(X.dtype) and not _is_float32_c_array(X):
        # Converting a memory-mapped file to float32 would load all of it: stream it instead.
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


def _ragged_message(rows, name):
    """Why the nested sequence ``rows`` is not an array: the first row shaped unlike row 0."""
    first = None
    for i, row in enumerate(rows):
        try:
            shape = np.shape(row)
        except ValueError:
            return f"{name} is a ragged list: row {i} itself holds sequences of different lengths."
        if first is None:
            first = shape
        elif shape != first:
            return f"{name} is a ragged list: row 0 has shape {first} but row {i} has shape {shape}."
    return f"{name} is a ragged list: its rows have different shapes."


def as_array(values, name):
    """``np.asarray(values)``, with a clear error for ragged nested lists.

    Raises
    ------
    ValueError
        If ``values`` is a nested sequence whose rows differ in length; the message names the
        first such row.
    """
    try:
        return np.asarray(values)
    except ValueError as error:
        if not isinstance(values, (list, tuple)):
            raise
        raise ValueError(
            f"{_ragged_message(values, name)} Every row needs the same number of values: pad or "
            f"drop the short rows, or pass {name} as a 2-D NumPy array or DataFrame."
        ) from error


def _numeric_array(X, name):
    """``X`` as a real-valued NumPy array, or a clear error."""
    array = as_array(X, name)
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
