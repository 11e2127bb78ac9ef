"""Neighbours defined by class labels instead of distances."""

from collections.abc import Sequence

import numpy as np


class LabeledNeighbourMap(Sequence):
    """Rows that share a label are each other's neighbours.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        One label per data point.
    """

    def __init__(self, labels):
        self.labels = np.asarray(labels)
        order = np.argsort(self.labels, kind="stable")
        values, starts = np.unique(self.labels[order], return_index=True)
        bounds = np.append(starts, len(order))
        self._members = {v: order[bounds[i]:bounds[i + 1]] for i, v in enumerate(values)}

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, idx):
        """Return the indices of every row with the same label as row ``idx``."""
        return self._members[self.labels[idx]]
