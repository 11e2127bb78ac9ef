"""The learning-rate warm-up of the contrastive losses."""

import keras
import numpy as np
import pytest

from ivis import Ivis
from ivis.nn.losses import triplet_loss
from ivis.nn.warmup import WARMUP_START, LearningRateWarmup, warms_up, warmup_factor


@pytest.mark.parametrize("name", ["infonce", "neg", "infonce_pn", "infonce_global"])
def test_contrastive_losses_and_losses_built_on_them_warm_up(name):
    assert warms_up(triplet_loss(name))


@pytest.mark.parametrize("name", ["pn", "euclidean", "softmax_ratio_pn", "cosine"])
def test_triplet_losses_train_as_published(name):
    assert not warms_up(triplet_loss(name))


def test_a_callable_loss_does_not_warm_up():
    assert not warms_up(lambda y_true, y_pred: 0.0)


def test_the_factor_rises_linearly_to_one():
    factors = [warmup_factor(step, 10) for step in range(12)]
    assert factors[0] == pytest.approx(WARMUP_START + (1 - WARMUP_START) / 10)
    assert np.all(np.diff(factors[:10]) > 0)
    assert factors[9:] == [1.0, 1.0, 1.0]
    assert warmup_factor(0, 0) == 1.0


class RecordRate(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.rates = []

    def on_epoch_begin(self, epoch, logs=None):
        self.rates.append(float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate)))

    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = epoch == 6


def _rates(distance):
    X = np.random.default_rng(0).normal(size=(160, 6)).astype("float32")
    record = RecordRate()
    Ivis(k=5, distance=distance, batch_size=16, epochs=100, n_epochs_without_progress=50, learning_rate=0.01,
         random_state=0, verbose=0, callbacks=[record]).fit(X)
    return record.rates


def test_training_with_a_contrastive_loss_starts_below_the_learning_rate_and_reaches_it():
    rates = _rates("infonce")
    # 10 steps an epoch: the warm-up spans 5 epochs (50 steps).
    assert rates[0] < 0.002
    assert np.all(np.diff(rates[:6]) > 0)
    assert rates[5:] == pytest.approx([0.01, 0.01])


def test_training_with_the_triplet_loss_keeps_the_learning_rate():
    assert _rates("pn") == pytest.approx([0.01] * 7)


def test_a_short_run_warms_up_for_a_tenth_of_it():
    assert LearningRateWarmup(0.01, steps_per_epoch=10, epochs=3).warmup_steps == 3
    assert LearningRateWarmup(0.01, steps_per_epoch=10, epochs=100).warmup_steps == 50
    assert LearningRateWarmup(0.01, steps_per_epoch=1000, epochs=100).warmup_steps == 500


def test_a_resumed_run_continues_the_warm_up_where_it_stopped():
    class Optimizer:
        learning_rate = keras.Variable(0.0)

    class Model:
        optimizer = Optimizer()

    warmup = LearningRateWarmup(0.01, steps_per_epoch=10, epochs=100, initial_epoch=2)
    warmup.set_model(Model())
    warmup.on_epoch_begin(2)
    assert float(Model.optimizer.learning_rate.numpy()) == pytest.approx(0.01 * warmup_factor(20, 50))
    warmup.on_train_batch_begin(4)
    assert float(Model.optimizer.learning_rate.numpy()) == pytest.approx(0.01 * warmup_factor(24, 50))
