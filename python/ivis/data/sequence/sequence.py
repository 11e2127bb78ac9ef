"""The base class of every custom data connector."""

from abc import abstractmethod
from collections.abc import Sequence

import numpy as np


class IndexableDataset(Sequence):
    """A sequence of rows that also has a ``shape``; ivis can fit and transform it directly.

    Subclass it to let ivis read data that does not fit in memory, or that lives in other
    storage (image files, a database), one batch at a time.

    Subclasses implement :attr:`shape` and :meth:`__getitem__` (one row). Overriding
    :meth:`get_batch` with a vectorised read (one query, one slice) makes training faster,
    since ivis asks for rows a batch at a time. Every row must have the shape
    ``shape[1:]``, and ``get_batch`` must return one array of shape
    ``(len(idx_seq), *shape[1:])``.

    See Also
    --------
    ivis.data.sequence.ImageDataset : Images read from disk.
    ivis.data.sequence.sqlite.SQLiteDataset : Rows of a SQLite table.
    """

    @property
    @abstractmethod
    def shape(self):
        """The shape of the dataset: rows first, then the shape of one row.

        Returns
        -------
        tuple of int
            ``(n_rows, *row_shape)``, for example ``(n_rows, n_features)``.
        """

    @abstractmethod
    def __getitem__(self, idx):
        """Return the row at integer position ``idx``.

        Parameters
        ----------
        idx : int
            Row position, from 0 to ``len(self) - 1``.

        Returns
        -------
        numpy.ndarray
            The row, of shape ``shape[1:]``.
        """

    def __len__(self):
        return int(self.shape[0])

    def get_batch(self, idx_seq):
        """Return the rows at the positions in ``idx_seq`` as one array, in that order.

        This default reads row by row; subclasses should override it with a batched read.

        Parameters
        ----------
        idx_seq : sequence of int
            Row positions; they need not be sorted and may repeat.

        Returns
        -------
        numpy.ndarray
            Array of shape ``(len(idx_seq), *shape[1:])``.
        """
        return np.stack([np.asarray(self[int(i)]) for i in idx_seq])


def row_positions(idx_seq, n_rows):
    """``idx_seq`` as int64 positions in ``range(n_rows)``; negative indices count from the end.

    Raises
    ------
    TypeError
        If ``idx_seq`` is not a flat sequence of integers.
    IndexError
        If an index is outside ``-n_rows .. n_rows - 1``.
    """
    if not hasattr(idx_seq, "__len__"):
        idx_seq = list(idx_seq)
    idx = np.asarray(idx_seq)
    if idx.size == 0:
        return np.empty(0, dtype=np.int64)
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        raise TypeError(f"Indices must be a flat sequence of integers; got {idx_seq!r:.80}")
    if idx.min() < -n_rows or idx.max() >= n_rows:
        raise IndexError(f"Indices out of range for a dataset of {n_rows} rows (valid: {-n_rows} to {n_rows - 1})")
    return idx.astype(np.int64) % n_rows


def item_or_batch(dataset, idx):
    """``dataset[idx]`` through ``get_batch``: one row for an integer, a batch for a slice or an index list."""
    if isinstance(idx, slice):
        return dataset.get_batch(range(*idx.indices(len(dataset))))
    if np.ndim(idx) == 0:
        if isinstance(idx, bool) or not isinstance(idx, (int, np.integer)):
            raise TypeError(f"Indices must be integers, slices or integer sequences; got {idx!r}")
        return dataset.get_batch([idx])[0]
    return dataset.get_batch(idx)
