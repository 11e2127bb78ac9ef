"""Golden embeddings: reorganising the engine must not change what a fit computes.

``tests/data/golden/`` holds embeddings and a model folder written by
``tests/data/golden/make_golden.py`` before the estimator was split into an engine. Each case
here fits the same data with the same parameters (all given explicitly, see
``tests/golden_cases.py``) and must give the very same numbers: on one machine and CPU, a
seeded fit is bit-identical from run to run (checked across fresh processes), so any
difference means that the computation changed, not noise. A change meant to alter the
embeddings regenerates the fixtures with that script.
"""

import os

import numpy as np
import pytest

from golden_cases import CASES, MODEL_FOLDER_CASE, fitted_case, golden_data

GOLDEN = os.path.join(os.path.dirname(__file__), "data", "golden")


@pytest.fixture(scope="module")
def golden():
    with np.load(os.path.join(GOLDEN, "embeddings.npz")) as saved:
        return {name: saved[name] for name in saved.files}


@pytest.mark.parametrize("name", sorted(CASES))
def test_embedding_matches_golden(name, golden):
    _, embedding = fitted_case(name)
    assert np.array_equal(embedding, golden[name]), (
        f"case {name!r}: largest difference {np.abs(embedding - golden[name]).max()}"
    )


def test_saved_model_folder_loads_with_the_same_transform(golden, tmp_path):
    from ivis import load_model

    X, y = golden_data()
    model = load_model(os.path.join(GOLDEN, "model"))
    assert np.array_equal(model.transform(X), golden["model_folder_transform"])
    assert model.loss_history_ and model.supervised_head_ is not None
    # A loaded model is whole: it saves again and the copy embeds alike.
    model.save_model(tmp_path / "again")
    assert np.array_equal(load_model(tmp_path / "again").transform(X), golden["model_folder_transform"])
    assert golden[MODEL_FOLDER_CASE].shape == (len(y), 2)
