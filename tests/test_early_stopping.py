"""Early stopping on the smoothed training loss, and its resumable state."""

import types

import numpy as np
import pytest

from ivis.nn.training import SMOOTHING_STEPS, EarlyStoppingOnLoss


def run(callback, losses):
    """Feed epoch losses to ``callback``; return the number of epochs trained."""
    model = types.SimpleNamespace(stop_training=False)
    callback.set_model(model)
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"loss": loss})
        if model.stop_training:
            return epoch + 1
    return len(losses)


def falling_with_noise(n_epochs, seed=0):
    """A loss that keeps falling slowly, with epoch-to-epoch noise much larger than each step."""
    rng = np.random.default_rng(seed)
    return 1.0 - 0.002 * np.arange(n_epochs) + rng.normal(0.0, 0.03, n_epochs)


def test_noise_between_short_epochs_does_not_end_training():
    losses = falling_with_noise(300)
    raw = run(EarlyStoppingOnLoss(20, steps_per_epoch=SMOOTHING_STEPS), losses)
    smoothed = run(EarlyStoppingOnLoss(20, steps_per_epoch=15), losses)
    assert raw < 150, "on each epoch's own loss, one lucky epoch ends training early"
    assert smoothed == 300, "the smoothed loss still falls, so training goes on"


def test_a_plateau_still_stops_training():
    losses = np.concatenate([falling_with_noise(100), np.full(300, 0.8) + np.random.default_rng(1).normal(0, 0.03, 300)])
    epochs = run(EarlyStoppingOnLoss(20, steps_per_epoch=15), losses)
    assert 120 <= epochs < 400


def test_long_epochs_use_their_own_loss():
    callback = EarlyStoppingOnLoss(2, steps_per_epoch=2 * SMOOTHING_STEPS)
    assert run(callback, [1.0, 0.5, 0.6, 0.55, 0.4]) == 4
    assert callback.state() == {"best": 0.5, "wait": 2, "smoothed": 0.55}


@pytest.mark.parametrize("interrupted_at", [1, 40, 105])
def test_restored_state_stops_where_an_uninterrupted_run_does(interrupted_at):
    losses = np.concatenate([falling_with_noise(100), np.full(200, 0.85) + np.random.default_rng(2).normal(0, 0.03, 200)])
    full = run(EarlyStoppingOnLoss(5, steps_per_epoch=15), losses)
    first = EarlyStoppingOnLoss(5, steps_per_epoch=15)
    assert run(first, losses[:interrupted_at]) == interrupted_at
    state = first.state()
    resumed = EarlyStoppingOnLoss(5, steps_per_epoch=15, best=state["best"], wait=state["wait"],
                                  smoothed=state["smoothed"])
    assert interrupted_at + run(resumed, losses[interrupted_at:]) == full < 300
