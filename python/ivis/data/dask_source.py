"""Dask arrays as a row source for ``fit``: only the blocks holding requested rows are computed."""

import numpy as np

from ivis.data.row_sources import IndexedSource


def is_dask_array(X):
    """True for a :class:`dask.array.Array` (checked without importing Dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks") and hasattr(X, "map_blocks")


def whole_rows(X, name="X"):
    """``X`` rechunked, if needed, so that every block holds whole rows.

    Raises
    ------
    ValueError
        If ``X`` has fewer than two dimensions or a row count Dask does not know yet.
    """
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be at least 2-dimensional (rows x features); got a Dask array of shape "
            f"{X.shape}. Reshape it: X.reshape(-1, 1) for a single feature."
        )
    if any(np.isnan(size) for size in X.shape):
        raise ValueError(
            f"{name} is a Dask array of unknown shape {X.shape}. Compute its chunk sizes first: "
            "X = X.compute_chunk_sizes()."
        )
    if any(len(chunks) > 1 for chunks in X.chunks[1:]):
        # A block must hold whole rows for the network to embed it: join the column blocks.
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X


class DaskArraySource(IndexedSource):
    """A Dask array read on demand: a batch computes only the blocks holding its rows."""

    def __init__(self, data, name="X"):
        super().__init__(whole_rows(data, name), name)

    def _read_unique(self, unique):
        # One graph per batch: Dask's fancy indexing touches only the blocks of these rows.
        return self._check_rows(self.data[unique].compute(), unique)

    def read_range(self, start, stop):
        return self._check_rows(self.data[start:stop].compute(), np.arange(start, stop))
