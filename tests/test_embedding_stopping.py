"""Early stopping on the embedding: neighbour preservation of a fixed sample of rows."""

import types

import numpy as np
import pytest

from ivis import Ivis
from ivis.nn.callbacks import EmbeddingPlateau, neighbour_preservation, sample_neighbours


def _run_rule(rule, embeddings, steps_per_epoch=100):
    """Feed ``embeddings`` to ``rule`` one epoch each; return the epoch it stopped at, or None."""
    model = types.SimpleNamespace(stop_training=False)
    rule.set_model(model)
    rule.set_params({"steps": steps_per_epoch})
    rule._reference = sample_neighbours(rule.data, rule.n_neighbors)
    iterator = iter(embeddings)
    rule.embed = lambda rows: next(iterator)
    for epoch in range(len(embeddings)):
        rule.on_epoch_end(epoch, {})
        if model.stop_training:
            return epoch
    return None


@pytest.fixture
def rows():
    return np.random.default_rng(0).normal(size=(300, 2)).astype(np.float32)


def test_preservation_is_one_for_the_rows_themselves_and_low_for_noise(rows):
    reference = sample_neighbours(rows, 10)
    noise = np.random.default_rng(1).normal(size=rows.shape)
    assert neighbour_preservation(reference, rows * 3.0 + 1.0, 10) == 1.0
    assert neighbour_preservation(reference, noise, 10) < 0.1


def test_stops_patience_epochs_into_a_plateau_and_not_before(rows):
    noise = np.random.default_rng(1).normal(size=rows.shape)
    improving = [noise, 0.5 * noise + rows, 0.2 * noise + rows]
    plateau = [rows + 1e-6 * i for i in range(6)]
    rule = EmbeddingPlateau(rows, patience=3, min_steps=200)
    stopped = _run_rule(rule, improving + plateau)
    # The plateau's first epoch still improves on the last noisy one; three more without progress.
    assert stopped == len(improving) + 3
    assert rule.stopped_early
    assert rule.scores[-1] == pytest.approx(1.0)


def test_short_epochs_wait_for_min_steps(rows):
    noise = np.random.default_rng(1).normal(size=rows.shape)
    improving = [noise, 0.5 * noise + rows, 0.2 * noise + rows]
    plateau = [rows + 1e-6 * i for i in range(12)]
    rule = EmbeddingPlateau(rows, patience=3, min_steps=200)
    # Epochs of 25 steps: three of them are too little training to call a plateau; eight are 200 steps.
    assert _run_rule(rule, improving + plateau, steps_per_epoch=25) == len(improving) + 8


def test_keeps_training_while_the_embedding_still_gains_neighbours(rows):
    noise = np.random.default_rng(1).normal(size=rows.shape)
    steadily = [rows + noise * scale for scale in np.geomspace(1.0, 0.01, 12)]
    rule = EmbeddingPlateau(rows, patience=2)
    assert _run_rule(rule, steadily) is None
    assert rule.scores[-1] > rule.scores[0] + 0.5


def test_watches_a_fixed_sample_of_the_rows(rows):
    first, second = EmbeddingPlateau(rows, n_rows=50), EmbeddingPlateau(rows, n_rows=50)
    assert first.data.shape == (50, 2)
    np.testing.assert_array_equal(first.data, second.data)
    assert EmbeddingPlateau(rows[:20], n_rows=50).data.shape == (20, 2)


def test_estimator_stops_when_the_embedding_settles(blobs):
    X, _ = blobs
    rule = EmbeddingPlateau(X, patience=2, min_steps=10, check_steps=1)
    model = Ivis(k=10, distance="infonce", n_epochs_without_progress=1000, epochs=200, batch_size=64,
                 callbacks=[rule], verbose=0, random_state=0)
    model.fit(X)
    assert rule.stopped_early
    assert model.timings_["epochs"] == len(rule.scores) < 200
    # Far above chance (10 of 300 rows, 0.03), and the last two epochs added nothing.
    assert rule.best > 0.15
    assert max(rule.scores[-2:]) <= rule.best + rule.tolerance


def test_needs_the_estimator(rows):
    rule = EmbeddingPlateau(rows)
    with pytest.raises(RuntimeError, match="Ivis\\(callbacks"):
        rule.on_train_begin()


def test_short_epochs_are_scored_every_few_epochs_and_count_as_waited(rows):
    noise = np.random.default_rng(1).normal(size=rows.shape)
    improving = [noise, 0.5 * noise + rows, 0.2 * noise + rows, 0.1 * noise + rows]
    plateau = [rows + 1e-6 * i for i in range(40)]
    rule = EmbeddingPlateau(rows, patience=3, min_steps=40, check_steps=16)
    # Epochs of 4 steps: a score (the next embedding) every 4th epoch; the plateau's first
    # score still improves, then 40 steps (10 epochs: 3 scores of 4 epochs) without progress.
    stopped = _run_rule(rule, improving + plateau, steps_per_epoch=4)
    n_scores = len(improving) + 1 + 3
    assert len(rule.scores) == n_scores
    assert stopped == 4 * n_scores - 1
    assert rule.wait == 12 and rule.steps_waited == 48


# ------------------------------------------------ Ivis(early_stopping='embedding')


def test_embedding_rule_stops_training_on_a_plateau(blobs):
    X, _ = blobs
    # 19 steps an epoch: a score every epoch, and 200 steps without progress are 11 epochs.
    model = Ivis(k=10, distance="infonce", early_stopping="embedding", n_epochs_without_progress=3, epochs=400,
                 batch_size=16, verbose=0, random_state=0).fit(X)
    state = model._training_state_["early_stopping"]
    assert model.timings_["epochs"] < 400
    assert state["wait"] >= 3 and state["steps_waited"] >= 200
    assert state["best"] > 0.15  # far above chance (10 of 300 rows)


def test_embedding_rule_does_not_stop_before_its_patience(blobs):
    X, _ = blobs
    # The loss rule with this patience would stop pn on these blobs long before 60 epochs.
    loss_rule = Ivis(k=10, n_epochs_without_progress=2, epochs=60, batch_size=64, verbose=0, random_state=0).fit(X)
    assert loss_rule.timings_["epochs"] < 60
    assert "steps_waited" not in loss_rule._training_state_["early_stopping"]
    embedding_rule = Ivis(k=10, early_stopping="embedding", n_epochs_without_progress=2, epochs=60, batch_size=64,
                          verbose=0, random_state=0).fit(X)
    # 60 epochs are 300 steps; 200 of them without progress would have to follow the best score.
    state = embedding_rule._training_state_["early_stopping"]
    assert embedding_rule.timings_["epochs"] == 60 or state["steps_waited"] >= 200


def test_embedding_rule_is_saved_with_the_model_and_resumes(blobs, tmp_path):
    from ivis.nn.callbacks import ModelCheckpoint

    X, _ = blobs
    params = dict(k=10, early_stopping="embedding", n_epochs_without_progress=1, epochs=30, batch_size=64, verbose=0,
                  random_state=0)
    full = Ivis(**params, callbacks=[ModelCheckpoint(tmp_path, "at-{}.ivis", epoch_interval=20)]).fit(X)
    # Its state may wait past the patience (steps are counted too) and still load.
    resumed = Ivis().load_model(tmp_path / "at-20.ivis")
    assert resumed.early_stopping == "embedding"
    saved = resumed._training_state_["early_stopping"]
    assert set(saved) == {"best", "wait", "steps_waited"}
    resumed.fit(X)
    assert resumed.loss_history_ == full.loss_history_
    assert resumed._training_state_["early_stopping"] == full._training_state_["early_stopping"]


@pytest.mark.parametrize("params, message", [
    ({"early_stopping": "plateau"}, "Unknown early_stopping 'plateau'. Valid values are: 'loss'"),
    ({"early_stopping": "embedding", "validation_fraction": 0.2}, "use early_stopping='loss' with it"),
])
def test_bad_stopping_rules_are_refused(blobs, params, message):
    X, y = blobs
    with pytest.raises(ValueError, match=message):
        Ivis(k=10, epochs=1, verbose=0, **params).fit(X, y)


def test_the_command_line_takes_the_stopping_rule():
    from ivis.cli import _estimator, build_parser

    args = build_parser().parse_args(["data.csv", "--early-stopping", "embedding"])
    assert _estimator(args).early_stopping == "embedding"
    with pytest.raises(SystemExit):
        build_parser().parse_args(["data.csv", "--early-stopping", "plateau"])
