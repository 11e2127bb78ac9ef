"""Saving and loading models: round trips, safety, atomicity and clear errors."""

import json
import os
import pickle
import subprocess
import sys

import joblib
import numpy as np
import pytest

from conftest import FAST
from ivis import Ivis, load_model
from ivis.persistence import MANIFEST_FILE, ModelFolderError


def test_round_trip_gives_same_transform(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    loaded = Ivis().load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.transform(X), fitted_blobs.transform(X), rtol=1e-6, atol=1e-6)
    assert loaded.get_params() == {**fitted_blobs.get_params()}
    assert loaded.loss_history_ == fitted_blobs.loss_history_
    assert load_model(tmp_path / "m").n_features_in_ == 10


def test_loads_in_a_new_process(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    np.save(tmp_path / "X.npy", X)
    script = (
        "import sys, numpy as np; from ivis import load_model; "
        "m = load_model(sys.argv[1]); np.save(sys.argv[2], m.transform(np.load(sys.argv[3])))"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "m"), str(tmp_path / "out.npy"), str(tmp_path / "X.npy")],
        check=True, capture_output=True,
    )
    np.testing.assert_allclose(np.load(tmp_path / "out.npy"), fitted_blobs.transform(X), rtol=1e-6, atol=1e-6)


def test_folder_holds_no_pickle(fitted_blobs, tmp_path):
    fitted_blobs.save_model(tmp_path / "m")
    names = sorted(os.listdir(tmp_path / "m"))
    assert names == ["encoder.keras", "ivis.json", "optimizer.npz"]
    manifest = json.loads((tmp_path / "m" / MANIFEST_FILE).read_text())
    assert manifest["format"] == "ivis-model" and manifest["format_version"] == 1
    assert manifest["params"]["k"] == 5
    # The optimizer state is plain arrays: loading with allow_pickle=False succeeds.
    with np.load(tmp_path / "m" / "optimizer.npz", allow_pickle=False) as arrays:
        assert len(arrays.files) > 2
    for name in names:
        assert b"\x80\x04\x95" not in (tmp_path / "m" / name).read_bytes()[:4096], f"{name} looks pickled"


def test_overwrite_rules(fitted_blobs, tmp_path):
    target = tmp_path / "m"
    fitted_blobs.save_model(target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        fitted_blobs.save_model(target)
    fitted_blobs.save_model(target, overwrite=True)
    other = tmp_path / "precious"
    other.mkdir()
    (other / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not an ivis model folder"):
        fitted_blobs.save_model(other, overwrite=True)
    assert (other / "notes.txt").read_text() == "keep me"


def test_interrupted_save_keeps_previous_model(fitted_blobs, blobs, tmp_path, monkeypatch):
    X, _ = blobs
    target = tmp_path / "m"
    fitted_blobs.save_model(target)
    before = Ivis().load_model(target).transform(X)

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("interrupted while writing")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(KeyboardInterrupt):
        fitted_blobs.save_model(target, overwrite=True)
    monkeypatch.undo()
    np.testing.assert_allclose(Ivis().load_model(target).transform(X), before)
    assert sorted(os.listdir(tmp_path)) == ["m"], "no staging folder is left behind"


def test_resume_training_after_load(blobs, tmp_path):
    X, _ = blobs
    model = Ivis(**FAST).fit(X)
    iterations = int(np.asarray(model.model_.optimizer.iterations))
    model.save_model(tmp_path / "m")
    loaded = Ivis().load_model(tmp_path / "m")
    assert int(np.asarray(loaded.model_.optimizer.iterations)) == iterations
    loaded.fit(X)
    assert len(loaded.loss_history_) == 6
    assert loaded.loss_history_[:3] == model.loss_history_
    assert int(np.asarray(loaded.model_.optimizer.iterations)) == 2 * iterations


@pytest.mark.parametrize("damage, message", [
    (lambda p: (p / MANIFEST_FILE).unlink(), "not an ivis model folder"),
    (lambda p: (p / MANIFEST_FILE).write_text("{not json"), "corrupt"),
    (lambda p: (p / "encoder.keras").unlink(), "incomplete"),
    (lambda p: (p / "encoder.keras").write_bytes(b"garbage"), "Cannot load the network"),
    (lambda p: (p / "optimizer.npz").write_bytes(b"garbage"), "optimizer state .* is corrupt"),
])
def test_damaged_folders_give_clear_errors(fitted_blobs, tmp_path, damage, message):
    fitted_blobs.save_model(tmp_path / "m")
    damage(tmp_path / "m")
    with pytest.raises(ModelFolderError, match=message):
        Ivis().load_model(tmp_path / "m")


def test_newer_format_and_missing_folder(fitted_blobs, tmp_path):
    fitted_blobs.save_model(tmp_path / "m")
    manifest_path = tmp_path / "m" / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest["format_version"] = 99
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(ModelFolderError, match="format version 99.*Upgrade ivis"):
        Ivis().load_model(tmp_path / "m")
    with pytest.raises(ModelFolderError, match="No model folder"):
        Ivis().load_model(tmp_path / "nowhere")


def test_custom_loss_must_be_given_before_loading(blobs, tmp_path):
    X, _ = blobs

    def my_loss(y_true, y_pred):
        return (y_pred[0] - y_pred[1]) ** 2

    model = Ivis(distance=my_loss, **FAST).fit(X)
    model.save_model(tmp_path / "m")
    with pytest.raises(ModelFolderError, match="custom loss 'my_loss'"):
        Ivis().load_model(tmp_path / "m")
    loaded = Ivis(distance=my_loss).load_model(tmp_path / "m")
    assert loaded.distance is my_loss
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), atol=1e-6)


def test_custom_model_round_trip(blobs, tmp_path):
    import keras

    X, _ = blobs
    base = keras.Sequential([keras.Input((10,)), keras.layers.Dense(6, activation="tanh")])
    model = Ivis(model=base, **FAST).fit(X)
    model.save_model(tmp_path / "m")
    loaded = Ivis().load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.transform(X), model.transform(X), atol=1e-6)


def test_pickle_and_joblib(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    restored = pickle.loads(pickle.dumps(fitted_blobs))
    np.testing.assert_allclose(restored.transform(X), fitted_blobs.transform(X), atol=1e-6)
    joblib.dump(fitted_blobs, tmp_path / "m.joblib")
    np.testing.assert_allclose(joblib.load(tmp_path / "m.joblib").transform(X), fitted_blobs.transform(X), atol=1e-6)
    assert pickle.loads(pickle.dumps(Ivis(k=7))).k == 7


def test_invalid_save_format(fitted_blobs, tmp_path):
    with pytest.raises(ValueError, match="save_format"):
        fitted_blobs.save_model(tmp_path / "m", save_format="pickle")
    fitted_blobs.save_model(tmp_path / "tf", save_format="tf")
    assert (tmp_path / "tf" / MANIFEST_FILE).exists()
