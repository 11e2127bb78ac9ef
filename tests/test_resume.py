"""Resuming training from checkpoints: in process, after a killed process, and with the wrong model."""

import os
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest

from conftest import FAST
from ivis import Ivis
from ivis.nn.callbacks import ModelCheckpoint
from ivis.nn.network import base_network, build_encoder
from ivis.persistence import ModelFolderError, random_states, read_manifest


def optimizer_steps(model):
    return int(np.asarray(model.model_.optimizer.iterations))


def check_identical(resumed, full, X):
    assert resumed.loss_history_ == full.loss_history_
    np.testing.assert_array_equal(resumed.transform(X), full.transform(X))
    assert optimizer_steps(resumed) == optimizer_steps(full)
    # The dropout generators continued from where the checkpoint left them.
    assert random_states(resumed.encoder_) == random_states(full.encoder_)
    assert resumed._training_state_["epochs_trained"] == len(full.loss_history_)
    assert resumed._training_state_["complete"]


def test_resumed_run_is_identical_to_an_uninterrupted_one(blobs, tmp_path):
    X, _ = blobs
    checkpoints = ModelCheckpoint(tmp_path, "at-{}.ivis", epoch_interval=3)
    full = Ivis(**{**FAST, "epochs": 6}, callbacks=[checkpoints]).fit(X)

    resumed = Ivis().load_model(tmp_path / "at-3.ivis")
    assert resumed._training_state_["epochs_trained"] == 3 and resumed.loss_history_ == full.loss_history_[:3]
    resumed.fit(X)
    check_identical(resumed, full, X)

    # The saved dropout state is what makes it so: reset the generators' counters (as a
    # checkpoint of the weights alone would) and the resumed epochs differ.
    reset = Ivis().load_model(tmp_path / "at-3.ivis")
    seed_variables = [v for v in reset.encoder_.variables if v.name == "seed_generator_state"]
    assert len(seed_variables) == 2  # the two AlphaDropout layers of the default network
    for variable in seed_variables:
        variable.assign(np.asarray(variable) * np.array([1, 0]))
    reset.fit(X)
    assert reset.loss_history_[:3] == full.loss_history_[:3]
    assert reset.loss_history_[3:] != full.loss_history_[3:]


def test_resumed_supervised_run_is_identical(blobs, tmp_path):
    X, y = blobs
    full = Ivis(**{**FAST, "epochs": 4}, callbacks=[ModelCheckpoint(tmp_path, "at-{}.ivis", epoch_interval=2)]).fit(X, y)
    with pytest.raises(ValueError, match="Y must be given exactly when the model was trained with labels"):
        Ivis().load_model(tmp_path / "at-2.ivis").fit(X)
    resumed = Ivis().load_model(tmp_path / "at-2.ivis").fit(X, y)
    check_identical(resumed, full, X)
    np.testing.assert_array_equal(resumed.score_samples(X), full.score_samples(X))


def test_checkpoint_of_the_epoch_early_stopping_ended_resumes_as_finished(blobs, tmp_path):
    X, _ = blobs
    params = {**FAST, "epochs": 40, "n_epochs_without_progress": 1}
    stopped = Ivis(**params, callbacks=[ModelCheckpoint(tmp_path, "latest.ivis")]).fit(X)
    n_epochs = len(stopped.loss_history_)
    assert n_epochs < 40, "the loss rose at least once in 40 epochs, so early stopping ended the run"
    resumed = Ivis().load_model(tmp_path / "latest.ivis")
    assert resumed._training_state_["epochs_trained"] == n_epochs
    resumed.fit(X)
    assert resumed.loss_history_ == stopped.loss_history_, "no epoch is trained after the stopping epoch"
    assert resumed._training_state_["complete"]


# ------------------------------------------------------- a killed training process

TRAIN = """
import sys
import numpy as np
from ivis import Ivis
from ivis.nn.callbacks import ModelCheckpoint

X_path, folder, epochs, resume, out = sys.argv[1:]
model = Ivis(k=5, batch_size=32, epochs=int(epochs), verbose=0, random_state=0,
             callbacks=[ModelCheckpoint(folder, "latest.ivis")])
if resume == "yes":
    model.load_model(folder + "/latest.ivis")
model.fit(np.load(X_path))
model.save_model(out)
"""
TOTAL_EPOCHS = 12


def wait_for(condition, timeout, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.01)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def checkpointed_epochs(path):
    try:
        return read_manifest(path)["training"]["epochs_trained"]
    except ModelFolderError:
        return 0


def test_training_resumes_after_the_process_is_killed(blobs, tmp_path):
    X, _ = blobs
    np.save(tmp_path / "X.npy", X)
    folder, checkpoint = tmp_path / "ckpt", tmp_path / "ckpt" / "latest.ivis"
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}

    def train(resume, out):
        args = [str(tmp_path / "X.npy"), str(folder), str(TOTAL_EPOCHS), resume, str(tmp_path / out)]
        return subprocess.Popen([sys.executable, "-c", TRAIN, *args], env=env, stderr=subprocess.PIPE, text=True)

    run = train("no", "never-written")
    try:
        def two_checkpoints():
            if run.poll() is not None:
                raise AssertionError(f"training ended before it was killed:\n{run.stderr.read()}")
            return checkpointed_epochs(checkpoint) >= 2

        wait_for(two_checkpoints, 120, "two checkpoints")
        run.send_signal(signal.SIGKILL)
        assert run.wait(timeout=30) == -signal.SIGKILL
    finally:
        if run.poll() is None:
            run.kill()
        run.stderr.close()
    assert not (tmp_path / "never-written").exists(), "the run was killed before it finished"

    # Right after the kill, the latest checkpoint is whole: a checkpoint of an unfinished run.
    manifest = read_manifest(checkpoint)
    killed_at = manifest["training"]["epochs_trained"]
    assert 2 <= killed_at < TOTAL_EPOCHS and not manifest["training"]["complete"]
    assert len(Ivis().load_model(checkpoint).loss_history_) == killed_at

    resumed_run = train("yes", "final")
    _, errors = resumed_run.communicate(timeout=300)
    assert resumed_run.returncode == 0, errors
    final = Ivis().load_model(tmp_path / "final")
    history = final.loss_history_
    assert history[:killed_at] == manifest["fitted"]["loss_history"]
    assert len(history) == final._training_state_["epochs_trained"] == TOTAL_EPOCHS  # patience 20: no early stop
    assert final._training_state_["complete"]
    assert read_manifest(checkpoint)["training"]["epochs_trained"] == TOTAL_EPOCHS

    # And the crash left no trace: the same model as a run that was never interrupted.
    uninterrupted = Ivis(k=5, batch_size=32, epochs=TOTAL_EPOCHS, verbose=0, random_state=0).fit(X)
    assert history == uninterrupted.loss_history_
    np.testing.assert_array_equal(final.transform(X), uninterrupted.transform(X))


# ------------------------------------------------- checkpoints of another model


def test_checkpoint_needs_data_of_the_same_width(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    with pytest.raises(ValueError, match=r"fitted on rows of shape \(10,\); X has rows of shape \(7,\)"):
        Ivis().load_model(tmp_path / "m").fit(X[:, :7])


@pytest.mark.parametrize("change, message", [
    ({"embedding_dims": 3}, "embedding_dims is 3 but the trained encoder outputs 2 dimensions"),
    ({"model": "hinton"}, "model is 'hinton' but the trained base network is 'szubert'"),
])
def test_checkpoint_refuses_another_architecture(fitted_blobs, blobs, tmp_path, change, message):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    loaded = Ivis().load_model(tmp_path / "m").set_params(**change)
    with pytest.raises(ValueError, match=message + ".*sklearn.base.clone"):
        loaded.fit(X)
    assert loaded.loss_history_ == fitted_blobs.loss_history_, "nothing was trained"


@pytest.mark.parametrize("encoder, message", [
    (lambda: build_encoder(base_network("szubert", (10,)), (10,), 3), "the encoder outputs 3 dimensions, the manifest says 2"),
    (lambda: build_encoder(base_network("szubert", (12,)), (12,), 2), r"the encoder takes rows of shape \(12,\), the manifest says \(10,\)"),
    # Same rows in and dimensions out, another network: the saved state cannot belong to it.
    (lambda: build_encoder(keras.Sequential([keras.Input((10,)), keras.layers.Dense(8)]), (10,), 2), "state in .* does not match"),
])
def test_folder_assembled_from_two_models_is_refused(fitted_blobs, tmp_path, encoder, message):
    fitted_blobs.save_model(tmp_path / "m")
    encoder().save(tmp_path / "m" / "encoder.keras")
    with pytest.raises(ModelFolderError, match=message):
        Ivis().load_model(tmp_path / "m")
