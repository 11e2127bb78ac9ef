"""Vectorised triplet sampling: which rows are anchors, positives and negatives.

For each anchor the positive is drawn uniformly from the anchor's own neighbours (never the
anchor itself) and the negative uniformly from the rows outside its neighbour list, with a
bounded number of redraws. Every function works on a whole batch of anchors at once.
"""

import numpy as np

# Redraw rounds for negatives that hit the anchor or one of its neighbours. Each round draws
# afresh for the remaining collisions only; with k << n almost none remain after one round.
NEGATIVE_RETRIES = 10

SHUFFLE_MODES = (True, False, "batch")


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
        ``False``: rows in their stored order.
    rng : numpy.random.Generator
        Source of randomness.
    """
    if shuffle_mode is True:
        return rng.permutation(n_rows)
    if shuffle_mode == "batch":
        # Only full blocks are shuffled; a short last block stays last, so that batch i of the
        # epoch is exactly block i and never straddles two blocks.
        n_full = n_rows // batch_size
        starts = rng.permutation(n_full) * batch_size
        order = (starts[:, None] + np.arange(batch_size)).ravel()
        return np.concatenate([order, np.arange(n_full * batch_size, n_rows)])
    return np.arange(n_rows)


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


def sample_triplets(anchors, neighbours, n_rows, rng):
    """Return ``(positives, negatives)`` for a batch of ``anchors``."""
    rows = neighbour_rows(neighbours, anchors)
    return sample_positives(anchors, rows, rng), sample_negatives(anchors, rows, n_rows, rng)
