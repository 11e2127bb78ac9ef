"""Vectorised triplet sampling: which rows are anchors, positives and negatives.

For each anchor the positive is drawn uniformly from the anchor's own neighbours (never the
anchor itself) and the negative uniformly from the rows outside its neighbour list, with a
bounded number of redraws: either from all rows (:func:`sample_negatives`) or from the other
anchors of the same batch (:func:`sample_batch_negatives`), whose embeddings the network has
computed already. Every function works on a whole batch of anchors at once.
"""

import numpy as np

from ivis._params import SHUFFLE_MODES  # noqa: F401 - re-exported

# Redraw rounds for negatives that hit the anchor or one of its neighbours. Each round draws
# afresh for the remaining collisions only; with k << n almost none remain after one round.
NEGATIVE_RETRIES = 10


def _index_dtype(n_rows):
    # Row indices as int32 whenever they fit: half the memory of NumPy's default int64.
    return np.int32 if n_rows <= np.iinfo(np.int32).max else np.int64


class EpochAnchors:
    """The order in which rows are anchors during one epoch, without storing it when possible.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    batch_size : int
        Rows per batch.
    shuffle_mode : {True, False, 'batch'}
        ``True``: every epoch a fresh random permutation of all rows; a batch of anchors is
        any ``batch_size`` rows. Held as one int32 array (``4 * n_rows`` bytes).
        ``'batch'``: the rows are cut into consecutive blocks of ``batch_size`` rows (block
        ``j`` holds rows ``j * batch_size`` to ``(j + 1) * batch_size - 1``) and the order of
        the full blocks is shuffled every epoch; a last, shorter block stays last. Batch ``i``
        of an epoch is therefore exactly one block: one contiguous slice of the data, read
        from disk in one request. Only the block order is held (``8 * n_rows / batch_size``
        bytes). Rows within a block are always seen together, in stored order.
        ``False``: rows in their stored order every epoch; batches are consecutive slices.
        Nothing is held.
    rng : numpy.random.Generator
        Source of randomness (drawn from only for ``True`` and ``'batch'``).

    Notes
    -----
    Positives and negatives are drawn independently of the mode: they are scattered rows.
    """

    def __init__(self, n_rows, batch_size, shuffle_mode, rng):
        self.n_rows = int(n_rows)
        self.batch_size = int(batch_size)
        self.shuffle_mode = shuffle_mode
        self._permutation = None
        self._block_starts = None
        if shuffle_mode is True:
            # In-place shuffle of an int32 range: the same permutation as rng.permutation(n)
            # (same draws), without its int64 copy.
            self._permutation = np.arange(self.n_rows, dtype=_index_dtype(self.n_rows))
            rng.shuffle(self._permutation)
        elif shuffle_mode == "batch":
            n_full = self.n_rows // self.batch_size
            self._block_starts = rng.permutation(n_full) * self.batch_size

    def __len__(self):
        return self.n_rows

    def __getitem__(self, key):
        """Anchors at the positions of a slice (step 1) of the epoch's order."""
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("EpochAnchors supports only slices with step 1, e.g. order[a:b].")
        start, stop, _ = key.indices(self.n_rows)
        if self._permutation is not None:
            return self._permutation[start:stop]
        positions = np.arange(start, max(start, stop), dtype=np.int64)
        if self._block_starts is None:
            return positions
        blocks = positions // self.batch_size
        in_full_block = blocks < len(self._block_starts)
        if not in_full_block.any():
            return positions
        starts = self._block_starts[np.minimum(blocks, len(self._block_starts) - 1)]
        return np.where(in_full_block, starts + positions % self.batch_size, positions)

    def __array__(self, dtype=None, copy=None):
        order = self[0:self.n_rows]
        return order if dtype is None else order.astype(dtype)


def epoch_anchor_order(n_rows, batch_size, shuffle_mode, rng):
    """Return the order in which rows are anchors during one epoch.

    Parameters
    ----------
    n_rows : int
        Number of rows.
    batch_size : int
        Rows per batch.
    shuffle_mode : {True, False, 'batch'}
        ``True``: a fresh random permutation of all rows each epoch. ``'batch'``: rows are
        cut into contiguous blocks of ``batch_size`` and the order of the blocks is shuffled,
        so that every batch of anchors is one contiguous slice (fast reads from disk).
        ``False``: rows in their stored order. See :class:`EpochAnchors`.
    rng : numpy.random.Generator
        Source of randomness.

    Returns
    -------
    ndarray of shape (n_rows,)
        Row indices (int32 for ``True``); :class:`EpochAnchors` gives the same order without
        materialising it.
    """
    return np.asarray(EpochAnchors(n_rows, batch_size, shuffle_mode, rng))


def neighbour_rows(neighbours, anchors):
    """Neighbour lists of ``anchors``: a 2-D array, or a list of arrays when ragged."""
    if isinstance(neighbours, np.ndarray):
        return neighbours[anchors]
    if callable(getattr(neighbours, "get_batch", None)):
        return np.asarray(neighbours.get_batch(anchors))
    rows = [np.asarray(neighbours[int(a)]).ravel() for a in anchors]
    lengths = {len(r) for r in rows}
    return np.stack(rows) if len(lengths) == 1 else rows


def sample_positives(anchors, rows, rng):
    """Draw one neighbour of each anchor, never the anchor itself.

    Parameters
    ----------
    anchors : ndarray of shape (batch,)
        Anchor row indices.
    rows : ndarray of shape (batch, k) or list of arrays
        Each anchor's neighbours (they may include the anchor itself).
    rng : numpy.random.Generator
        Source of randomness.
    """
    if isinstance(rows, np.ndarray):
        batch, k = rows.shape
        cols = rng.integers(0, k, size=batch)
        positives = rows[np.arange(batch), cols]
        is_anchor = positives == anchors
        if is_anchor.any():
            # Rows that list the anchor itself (e.g. from kneighbors) use the next column.
            fallback = rows[np.arange(batch), (cols + 1) % k]
            positives = np.where(is_anchor, fallback, positives)
        return positives
    positives = np.empty(len(anchors), dtype=np.int64)
    for i, (anchor, row) in enumerate(zip(anchors, rows)):
        candidates = row[row != anchor]
        positives[i] = rng.choice(candidates) if len(candidates) else anchor
    return positives


def _collides(anchors, rows, negatives):
    if isinstance(rows, np.ndarray):
        return (negatives == anchors) | (rows == negatives[:, None]).any(axis=1)
    return np.array([n == a or n in row for a, row, n in zip(anchors, rows, negatives)], dtype=bool)


def sample_negatives(anchors, rows, n_rows, rng, retries=NEGATIVE_RETRIES):
    """Draw one row per anchor uniformly from the rows outside its neighbour list.

    Collisions with the anchor or its neighbours are redrawn up to ``retries`` times; a
    collision left after that (possible only when the neighbour lists cover most rows) is
    kept rather than looping without bound.
    """
    negatives = rng.integers(0, n_rows, size=len(anchors))
    for _ in range(retries):
        bad = _collides(anchors, rows, negatives)
        if not bad.any():
            break
        negatives[bad] = rng.integers(0, n_rows, size=int(bad.sum()))
    return negatives


def sample_batch_negatives(anchors, rows, rng, retries=NEGATIVE_RETRIES):
    """Pick each anchor's negative among the other anchors of its batch.

    When the batch's anchors are a uniform random sample of the rows (anchors shuffled every
    epoch), another anchor of the batch is a uniform random row, as a negative drawn from all
    rows is; reusing its embedding saves one network pass per triplet.

    Parameters
    ----------
    anchors : ndarray of shape (batch,)
        Anchor row indices.
    rows : ndarray of shape (batch, k) or list of arrays
        Each anchor's neighbours.
    rng : numpy.random.Generator
        Source of randomness.
    retries : int, optional
        Redraw rounds for picks that are a neighbour of the anchor (or the anchor itself, for
        repeated rows); a collision left after that is kept, as in :func:`sample_negatives`.

    Returns
    -------
    ndarray of int32, shape (batch,)
        Positions in ``anchors`` (not row indices): anchor ``i``'s negative is
        ``anchors[positions[i]]``, never position ``i`` itself unless the batch has one row.
    """
    n = len(anchors)
    if n < 2:
        return np.zeros(n, dtype=np.int32)
    own = np.arange(n)

    def draw(where):
        # Uniform over the other n - 1 positions: draw from n - 1 and skip one's own.
        picks = rng.integers(0, n - 1, size=len(where))
        return picks + (picks >= own[where])

    positions = draw(own)
    for _ in range(retries):
        bad = np.flatnonzero(_collides(anchors, rows, anchors[positions]))
        if not len(bad):
            break
        positions[bad] = draw(bad)
    return positions.astype(np.int32)


def sample_triplets(anchors, neighbours, n_rows, rng, in_batch=False, shards=1):
    """Return ``(positives, negatives)`` for a batch of ``anchors``.

    With ``in_batch``, negatives are positions in ``anchors`` (see
    :func:`sample_batch_negatives`); otherwise they are row indices. With ``shards`` above 1
    (a batch split among devices that each see only their part: the first ``ceil(n / shards)``
    anchors, the next as many, ...), in-batch negatives are drawn within each part and are
    positions in that part.
    """
    rows = neighbour_rows(neighbours, anchors)
    positives = sample_positives(anchors, rows, rng)
    if not in_batch:
        return positives, sample_negatives(anchors, rows, n_rows, rng)
    if shards <= 1:
        return positives, sample_batch_negatives(anchors, rows, rng)
    size = -(-len(anchors) // shards)
    parts = [
        sample_batch_negatives(anchors[start:start + size], rows[start:start + size], rng)
        for start in range(0, len(anchors), size)
    ]
    return positives, np.concatenate(parts).astype(np.int32, copy=False)
