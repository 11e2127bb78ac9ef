"""A smoke test of the whole engine on whichever Keras backend is active.

The main suite runs it under TensorFlow; scripts/test-backend.sh runs it again under JAX in an
environment without TensorFlow, which proves the engine code is backend-neutral.
"""

import os

import numpy as np
import pytest


def test_fit_transform_save_load_on_the_active_backend(tmp_path):
    import keras

    from ivis import Ivis, load_model

    expected = os.environ.get("IVIS_EXPECT_BACKEND")
    if expected:
        assert keras.backend.backend() == expected
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.normal(0, 1, (150, 8)), rng.normal(6, 1, (150, 8))]).astype(np.float32)
    labels = np.repeat(["a", "b"], 150)
    model = Ivis(k=5, epochs=3, batch_size=32, verbose=0, random_state=0)
    embedding = model.fit_transform(X, labels)
    assert embedding.shape == (300, 2) and np.isfinite(embedding).all()
    probabilities = model.score_samples(X)
    np.testing.assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    model.save_model(tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.transform(X), embedding, rtol=1e-5, atol=1e-5)
    loaded.fit(X, labels)
    assert len(loaded.loss_history_) == 6


def test_onnx_export_works_on_tensorflow_and_names_it_elsewhere(tmp_path):
    import keras

    from ivis import Ivis
    from ivis.onnx_export import OnnxExportError

    X = np.random.default_rng(0).random((60, 4)).astype(np.float32)
    model = Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=0).fit(X)
    if keras.backend.backend() == "tensorflow":
        assert model.export_onnx(tmp_path / "m.onnx")["input"]["n_features"] == 4
        assert (tmp_path / "m.onnx").stat().st_size > 0
    else:  # the converter works on TensorFlow graphs: the error says how to export
        with pytest.raises(OnnxExportError, match="KERAS_BACKEND=tensorflow"):
            model.export_onnx(tmp_path / "m.onnx")
        assert not (tmp_path / "m.onnx").exists()
