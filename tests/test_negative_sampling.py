"""Negatives taken from the other anchors of a batch: sampling, training network and fallbacks."""

import numpy as np
import pytest

from conftest import FAST, array_dataset
from ivis import Ivis
from ivis.data.triplets import sample_batch_negatives, sample_triplets


def test_batch_negatives_are_other_anchors_outside_the_neighbour_list():
    rng = np.random.default_rng(0)
    anchors = rng.permutation(1000)[:64]
    rows = rng.integers(0, 1000, (64, 10))
    rows[:, 0] = np.roll(anchors, -1)  # the next anchor is a neighbour: it must be avoided
    for _ in range(20):
        positions = sample_batch_negatives(anchors, rows, rng)
        assert positions.dtype == np.int32
        assert ((positions >= 0) & (positions < 64)).all()
        assert (positions != np.arange(64)).all()
        assert not (rows == anchors[positions][:, None]).any()


def test_batch_negatives_are_uniform_over_the_other_anchors():
    rng = np.random.default_rng(1)
    anchors = np.arange(8)
    rows = np.full((8, 1), 100)  # no neighbour among the anchors
    picks = np.array([sample_batch_negatives(anchors, rows, rng)[0] for _ in range(7000)])
    counts = np.bincount(picks, minlength=8)
    assert counts[0] == 0
    # 1,000 expected per other anchor; the standard deviation of a count is about 30.
    assert counts[1:].min() > 880 and counts[1:].max() < 1120


def test_batch_negatives_stop_redrawing_when_every_anchor_is_a_neighbour():
    rng = np.random.default_rng(2)
    anchors = np.arange(5)
    positions = sample_batch_negatives(anchors, np.tile(anchors, (5, 1)), rng)
    assert positions.shape == (5,) and (positions != np.arange(5)).all()


def test_a_batch_of_one_anchor_is_its_own_negative():
    positions = sample_batch_negatives(np.array([7]), np.array([[1, 2]]), np.random.default_rng(3))
    assert positions.tolist() == [0]


def test_sample_triplets_in_batch_returns_positions():
    rng = np.random.default_rng(4)
    neighbours = np.array([[1, 2], [0, 2], [0, 1], [4, 5], [3, 5], [3, 4]])
    anchors = np.array([0, 3, 1, 4])
    positives, positions = sample_triplets(anchors, neighbours, 6, rng, in_batch=True)
    assert all(p in neighbours[a] for a, p in zip(anchors, positives))
    # 0 and 1 are neighbours, as are 3 and 4: each anchor's negative is from the other pair.
    assert [anchors[q] // 3 for q in positions] == [1, 0, 1, 0]


@pytest.mark.parametrize("rows_in_graph", [True, False])
@pytest.mark.parametrize("supervised", [False, True])
def test_in_batch_trainer_computes_the_triplet_network_on_those_triplets(blobs, rows_in_graph, supervised):
    """The two-pass trainer gives exactly the outputs of the three-pass network."""
    from ivis.nn.network import in_batch_trainer

    X, y = blobs
    model = Ivis(**FAST).fit(X, y if supervised else None)
    anchors = np.array([5, 17, 200, 42, 99], dtype=np.int32)
    positives = np.array([6, 3, 201, 40, 98], dtype=np.int32)
    positions = np.array([2, 4, 0, 1, 3], dtype=np.int32)
    expected = model.model_.predict([X[anchors], X[positives], X[anchors[positions]]], verbose=0)
    if rows_in_graph:
        trainer = in_batch_trainer(model.encoder_, model.supervised_head_, X)
        got = trainer.predict(np.stack([anchors, positives, positions], axis=1), verbose=0)
    else:
        trainer = in_batch_trainer(model.encoder_, model.supervised_head_)
        got = trainer.predict([X[anchors], X[positives], positions], verbose=0)
    if not supervised:
        expected, got = [expected], [got]
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=1e-5, atol=1e-6)


def test_negative_sampling_changes_training_and_each_is_repeatable(blobs):
    X, _ = blobs
    in_batch = Ivis(**FAST).fit_transform(X)
    all_rows = Ivis(**FAST, negative_sampling="all_rows").fit_transform(X)
    assert not np.allclose(in_batch, all_rows)
    np.testing.assert_array_equal(Ivis(**FAST).fit_transform(X), in_batch)
    np.testing.assert_array_equal(Ivis(**FAST, negative_sampling="all_rows").fit_transform(X), all_rows)


@pytest.mark.parametrize("shuffle_mode", ["batch", False])
def test_unshuffled_anchors_draw_negatives_from_all_rows(blobs, shuffle_mode):
    # Anchors of one batch are neighbours in storage order then, not random rows.
    X, _ = blobs
    in_batch = Ivis(**FAST).fit_transform(X, shuffle_mode=shuffle_mode)
    all_rows = Ivis(**FAST, negative_sampling="all_rows").fit_transform(X, shuffle_mode=shuffle_mode)
    np.testing.assert_array_equal(in_batch, all_rows)


def test_rows_fed_from_python_train_as_rows_held_in_the_graph(blobs):
    """Data that is not an in-memory array gets the same triplets and the same training."""
    X, _ = blobs
    params = dict(FAST, epochs=1)
    in_graph = Ivis(**params).fit_transform(X)
    fed = Ivis(**params).fit_transform(array_dataset(X))
    np.testing.assert_allclose(fed, in_graph, atol=1e-4)


def test_unknown_negative_sampling_names_the_valid_values(blobs):
    X, _ = blobs
    with pytest.raises(ValueError, match="Unknown negative_sampling 'random'.*'in_batch', 'all_rows'"):
        Ivis(**FAST, negative_sampling="random").fit(X)
