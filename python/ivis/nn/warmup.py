"""A learning-rate warm-up for the contrastive losses.

A contrastive loss compares every anchor with the whole batch. At the start of training the
embedding is a collapsed cloud, and at the learning rates that make these losses converge
in few epochs, the first large steps can pull groups of points together before their
neighbourhoods have separated: on Fashion-MNIST with Euclidean neighbours, a learning rate
of 0.01 then ends in an embedding with about half the 15-NN accuracy the same run reaches
with a warm-up (measured in ``bench/REPORT.md``). Raising the rate linearly from a tenth of
its value over the first steps avoids that, as in the training of large networks.
"""

import math

import keras

# The warm-up lasts WARMUP_STEPS training steps, WARMUP_EPOCHS epochs or WARMUP_SHARE of the
# run, whichever is shortest: enough steps on large data, no more than a few epochs on small
# data (where an epoch is a handful of steps), and little of a short run.
WARMUP_STEPS = 500
WARMUP_EPOCHS = 5
WARMUP_SHARE = 0.1
# The rate the warm-up starts from, as a share of the full rate.
WARMUP_START = 0.1


def warms_up(loss):
    """Whether training with ``loss`` starts with a learning-rate warm-up.

    True for the contrastive losses and for losses built on one (a blend, or one with the
    global correlation term); False for the triplet losses, which train as published.
    """
    if getattr(loss, "contrastive", False):
        return True
    parts = [getattr(loss, name, None) for name in ("base", "first", "second")]
    return any(part is not None and warms_up(part) for part in parts)


def warmup_factor(step, warmup_steps):
    """Share of the full learning rate at training step ``step`` (0-based) of a warm-up of ``warmup_steps``."""
    if warmup_steps <= 0 or step >= warmup_steps:
        return 1.0
    return WARMUP_START + (1.0 - WARMUP_START) * (step + 1) / warmup_steps


class LearningRateWarmup(keras.callbacks.Callback):
    """Raise the optimizer's learning rate linearly to ``learning_rate`` over the first steps.

    The rate is set before every epoch and every call into the compiled training step (which
    runs several steps), from the number of steps trained so far, so a resumed run continues
    the warm-up where it stopped.

    Parameters
    ----------
    learning_rate : float
        The full learning rate.
    steps_per_epoch : int
        Training steps in one epoch.
    epochs : int
        Epochs of the whole run (the most it may train).
    initial_epoch : int, default=0
        The epoch training starts (or resumes) at.
    """

    def __init__(self, learning_rate, steps_per_epoch, epochs, initial_epoch=0):
        super().__init__()
        self.learning_rate = float(learning_rate)
        self.steps_per_epoch = max(1, int(steps_per_epoch))
        # Rounded first: a tenth of 30 steps is 3, not the 3.0000000000000004 of floats.
        share = math.ceil(round(WARMUP_SHARE * epochs * self.steps_per_epoch, 9))
        self.warmup_steps = min(WARMUP_STEPS, WARMUP_EPOCHS * self.steps_per_epoch, share)
        self._epoch = int(initial_epoch)

    def _set(self, step):
        factor = warmup_factor(step, self.warmup_steps)
        self.model.optimizer.learning_rate.assign(self.learning_rate * factor)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = int(epoch)
        self._set(epoch * self.steps_per_epoch)

    def on_train_batch_begin(self, batch, logs=None):
        step = self._epoch * self.steps_per_epoch + int(batch)
        if step <= self.warmup_steps:
            self._set(step)

    def on_train_end(self, logs=None):
        # A run stopped inside the warm-up leaves the optimizer at its full rate.
        self.model.optimizer.learning_rate.assign(self.learning_rate)

