"""Row sources: float32 rows of any input, read a batch or a contiguous chunk at a time.

:class:`RowSource` is the interface the engine reads through; :class:`ArraySource`,
:class:`SparseSource` and :class:`IndexedSource` serve NumPy arrays, SciPy sparse matrices and
anything indexable (h5py datasets, :class:`~ivis.data.sequence.IndexableDataset`). Adapters
for other containers (AnnData, Dask arrays) build on these; :func:`ivis.data.inputs.as_row_source`
picks the source for an input.
"""

import numpy as np

from ivis.data import read_plan
from ivis.data.read_plan import plan_reads
from ivis.data.float32 import check_float32_range, non_finite_message, overflow_mask, to_float32, too_large_message

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


def _is_real_dtype(dtype):
    return dtype == bool or np.issubdtype(dtype, np.number) and not np.issubdtype(dtype, np.complexfloating)
