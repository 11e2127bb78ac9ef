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
