"""Every seed of a fit, derived from one model seed through one table.

A fit draws one seed (:func:`draw_seed`) and derives a seed per purpose from it, so that the
stages of training use independent random streams and adding a stage never shifts another.
Layer initialisers and dropout get the weights seed plus a fixed offset per layer: a seeded
Keras initializer draws the same values on every call, so each layer needs its own.
"""

import numpy as np

# Purpose -> entropy mixed with the model seed (numpy.random.SeedSequence) for that stage.
STAGE_OFFSETS = {"annoy": 1, "weights": 2, "sampling": 3, "validation": 4, "clusters": 5}
# Layer -> offset added to the weights seed (dense layer i gets ``dense + i``).
LAYER_OFFSETS = {"dense": 0, "dropout": 100, "embedding": 1000, "supervised_head": 2000}


def draw_seed(random_state):
    """The model seed: ``random_state`` itself, one draw from a RandomState, or fresh entropy."""
    if random_state is None:
        return int(np.random.SeedSequence().generate_state(1)[0] >> 1)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, 2**31 - 1))
    return int(random_state)


def stage_seed(seed, purpose):
    """The seed of one stage (a key of :data:`STAGE_OFFSETS`), derived from the model seed."""
    return int(np.random.SeedSequence([seed, STAGE_OFFSETS[purpose]]).generate_state(1)[0] >> 1)


def layer_seed(seed, layer, index=0):
    """The seed of one layer's initializer or dropout; None stays None (unseeded)."""
    return None if seed is None else int(seed) + LAYER_OFFSETS[layer] + index
