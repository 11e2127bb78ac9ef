"""Triplet sampling: positives are neighbours, negatives are not, and nothing loops forever."""

import numpy as np

from ivis.data.triplets import epoch_anchor_order, sample_negatives, sample_positives, sample_triplets


def test_positives_come_from_neighbours_and_never_the_anchor():
    rng = np.random.default_rng(0)
    n, k = 500, 6
    anchors = np.arange(n)
    # Rows that include the anchor itself first, as kneighbors(X) returns them.
    rows = np.column_stack([anchors, (anchors[:, None] + 1 + np.arange(k - 1)) % n])
    for _ in range(20):
        positives = sample_positives(anchors, rows, rng)
        assert (positives != anchors).all()
        assert all(p in row for p, row in zip(positives, rows))


def test_negatives_avoid_anchor_and_its_neighbours():
    rng = np.random.default_rng(1)
    n, k = 100, 10
    anchors = rng.integers(0, n, 64)
    rows = rng.integers(0, n, (64, k))
    negatives = sample_negatives(anchors, rows, n, rng)
    assert (negatives != anchors).all()
    assert not (rows == negatives[:, None]).any(axis=1).any()


def test_negative_sampling_is_bounded_when_neighbours_cover_everything():
    rng = np.random.default_rng(2)
    rows = np.tile(np.arange(5), (5, 1))
    negatives = sample_negatives(np.arange(5), rows, 5, rng)
    assert negatives.shape == (5,)


def test_ragged_neighbour_lists_are_supported():
    rng = np.random.default_rng(3)
    neighbours = [np.array([1, 2]), np.array([0]), np.array([0, 1, 3]), np.array([2])]
    positives, negatives = sample_triplets(np.array([0, 1, 2, 3]), neighbours, 4, rng)
    assert all(p in neighbours[i] for i, p in enumerate(positives))


def test_shuffle_modes():
    rng = np.random.default_rng(4)
    full = epoch_anchor_order(10, 3, True, rng)
    assert sorted(full) == list(range(10))
    batched = epoch_anchor_order(10, 3, "batch", rng)
    assert sorted(batched) == list(range(10))
    # Each batch of anchors (as TripletBatches slices them) is one contiguous block of rows.
    batches = [tuple(batched[i:i + 3]) for i in range(0, 10, 3)]
    assert set(batches) == {(0, 1, 2), (3, 4, 5), (6, 7, 8), (9,)}
    assert batches[-1] == (9,)
    assert list(epoch_anchor_order(10, 3, False, rng)) == list(range(10))
