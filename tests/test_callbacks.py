"""Training callbacks: the files they write, at which epochs, and their errors."""

import io
import json
import os
import pickle
import sys

import keras
import numpy as np
import pytest
from sklearn.base import clone

from conftest import FAST
from ivis import Ivis
from ivis.nn.callbacks import EmbeddingsImage, EmbeddingsLogging, ModelCheckpoint, TensorBoardEmbeddingsImage
from ivis.persistence import read_manifest

N_LOGGED = 40  # rows embedded by the logging callbacks


def read_events(folder):
    """``[(tag, step, value)]`` of every summary in the event files of ``folder``."""
    import tensorflow as tf

    found = []
    for name in sorted(os.listdir(folder)):
        if ".tfevents." in name:
            for event in tf.compat.v1.train.summary_iterator(os.path.join(folder, name)):
                found.extend((value.tag, event.step, value) for value in event.summary.value)
    return found


def listing(folder):
    return sorted(os.listdir(folder))


@pytest.fixture(scope="module")
def logged_run(blobs, tmp_path_factory):
    """One 6-epoch fit with every kind of callback, each writing into its own folder."""
    X, y = blobs
    root = tmp_path_factory.mktemp("logs")
    data, labels = X[:N_LOGGED], y[:N_LOGGED]
    callbacks = [
        EmbeddingsLogging(data, log_dir=root / "npy", epoch_interval=2),
        EmbeddingsLogging(data, log_dir=root / "npy4", epoch_interval=4),
        EmbeddingsLogging(data, log_dir=root / "latest", filename="latest.npy"),
        EmbeddingsImage(data, labels, log_dir=root / "png", epoch_interval=3),
        EmbeddingsImage(data, log_dir=root / "svg", file_name="plot-{}.svg", epoch_interval=6),
        TensorBoardEmbeddingsImage(data, labels, log_dir=root / "tb", epoch_interval=2),
        keras.callbacks.TensorBoard(log_dir=str(root / "tb")),
        ModelCheckpoint(root / "ckpt", epoch_interval=3),
        ModelCheckpoint(root / "ckpt_latest", filename="latest.ivis", epoch_interval=2),
    ]
    model = Ivis(**{**FAST, "epochs": 6, "embedding_dims": 3}, callbacks=callbacks).fit(X)
    return model, root, data


def test_embeddings_logging_writes_at_exact_epochs(logged_run):
    model, root, data = logged_run
    assert listing(root / "npy") == ["2_embeddings.npy", "4_embeddings.npy", "6_embeddings.npy"]
    # Only epoch 4 of 6: an interval is not restarted after the first write.
    assert listing(root / "npy4") == ["4_embeddings.npy"]
    embeddings = [np.load(root / "npy" / f"{e}_embeddings.npy") for e in (2, 4, 6)]
    assert all(e.shape == (N_LOGGED, 3) and e.dtype == np.float32 for e in embeddings)
    assert not np.allclose(embeddings[0], embeddings[2]), "each file holds the embedding of its epoch"
    np.testing.assert_allclose(embeddings[2], model.transform(data), rtol=1e-6, atol=1e-6)


def test_filename_without_placeholder_keeps_only_the_latest(logged_run):
    model, root, data = logged_run
    assert listing(root / "latest") == ["latest.npy"]  # nor any temporary file left behind
    np.testing.assert_allclose(np.load(root / "latest" / "latest.npy"), model.transform(data), rtol=1e-6, atol=1e-6)
    assert listing(root / "ckpt_latest") == ["latest.ivis"]
    assert read_manifest(root / "ckpt_latest" / "latest.ivis")["training"]["epochs_trained"] == 6


def test_embeddings_image_files(logged_run):
    from PIL import Image

    _, root, _ = logged_run
    assert listing(root / "png") == ["3_embeddings.png", "6_embeddings.png"]
    for name in listing(root / "png"):
        with Image.open(root / "png" / name) as image:
            assert image.format == "PNG" and image.size == (600, 600)
            # A plot, not a blank canvas: several colours (points of three classes, axes).
            assert len(image.convert("RGB").getcolors(maxcolors=100_000)) > 10
    assert listing(root / "svg") == ["plot-6.svg"]
    assert b"<svg" in (root / "svg" / "plot-6.svg").read_bytes()[:2000]


def test_tensorboard_event_files_hold_images_and_loss(logged_run):
    from PIL import Image

    model, root, _ = logged_run
    images = [(tag, step, value) for tag, step, value in read_events(root / "tb" / "embeddings")]
    assert [(tag, step) for tag, step, _ in images] == [("embeddings", 2), ("embeddings", 4), ("embeddings", 6)]
    for _, _, value in images:
        assert value.metadata.plugin_data.plugin_name == "images"
        width, height, png = value.tensor.string_val
        with Image.open(io.BytesIO(png)) as image:
            assert image.size == (int(width), int(height)) == (600, 600)
    import tensorflow as tf

    losses = {step: float(tf.make_ndarray(value.tensor)) for tag, step, value in read_events(root / "tb" / "train") if tag == "epoch_loss"}
    assert sorted(losses) == list(range(6))  # Keras logs epoch n at step n - 1
    np.testing.assert_allclose([losses[s] for s in range(6)], model.loss_history_, rtol=1e-6)


def test_model_checkpoints(logged_run, blobs):
    model, root, _ = logged_run
    X, _ = blobs
    assert listing(root / "ckpt") == ["model-checkpoint_3.ivis", "model-checkpoint_6.ivis"]
    for epoch in (3, 6):
        manifest = read_manifest(root / "ckpt" / f"model-checkpoint_{epoch}.ivis")
        assert manifest["training"]["epochs_trained"] == epoch and not manifest["training"]["complete"]
        assert manifest["fitted"]["loss_history"] == model.loss_history_[:epoch]
    final = Ivis().load_model(root / "ckpt" / "model-checkpoint_6.ivis")
    np.testing.assert_allclose(final.transform(X), model.transform(X), rtol=1e-6, atol=1e-6)


def test_callbacks_work_again_in_later_fits(blobs, tmp_path):
    X, _ = blobs
    callbacks = [
        EmbeddingsLogging(X[:N_LOGGED], log_dir=tmp_path / "npy"),
        TensorBoardEmbeddingsImage(X[:N_LOGGED], log_dir=tmp_path / "tb", epoch_interval=2),
    ]
    model = Ivis(**{**FAST, "epochs": 2}, callbacks=callbacks)
    model.fit(X)
    model.fit(X)  # continues training: epochs 3 and 4
    assert listing(tmp_path / "npy") == [f"{e}_embeddings.npy" for e in (1, 2, 3, 4)]
    assert [step for _, step, _ in read_events(tmp_path / "tb" / "embeddings")] == [2, 4]

    # The same callbacks on a new estimator, and a clone of one, start again from epoch 1.
    fresh = clone(model)
    assert fresh.callbacks[0].ivis_model is None, "a clone does not carry the trained networks along"
    fresh.fit(X)
    assert len(read_events(tmp_path / "tb" / "embeddings")) == 2 + 1
    np.testing.assert_allclose(np.load(tmp_path / "npy" / "2_embeddings.npy"), fresh.transform(X[:N_LOGGED]), atol=1e-6)
    assert pickle.loads(pickle.dumps(callbacks[1])).ivis_model is None


def test_plain_keras_callback_runs_and_can_stop_training(blobs, tmp_path):
    X, _ = blobs

    class StopAfterTwo(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_end(self, epoch, logs=None):
            self.seen.append((epoch, logs["loss"]))
            if epoch == 1:
                self.model.stop_training = True

    stopper = StopAfterTwo()
    logger = EmbeddingsLogging(X[:N_LOGGED], log_dir=tmp_path)
    model = Ivis(**{**FAST, "epochs": 10}, callbacks=[logger, stopper]).fit(X)
    assert [epoch for epoch, _ in stopper.seen] == [0, 1]
    assert [loss for _, loss in stopper.seen] == pytest.approx(model.loss_history_)
    assert len(model.loss_history_) == 2 and model.timings_["epochs"] == 2
    assert listing(tmp_path) == ["1_embeddings.npy", "2_embeddings.npy"]


@pytest.mark.parametrize("make, error, message", [
    (lambda X: EmbeddingsLogging(X, filename="{}_{}.npy"), ValueError, "filename '{}_{}.npy' has 2 '{}'"),
    (lambda X: ModelCheckpoint(filename="ckpt-{}-{}"), ValueError, "filename 'ckpt-{}-{}'"),
    (lambda X: EmbeddingsImage(X, file_name="{}{}.png"), ValueError, "file_name '{}{}.png'"),
    (lambda X: EmbeddingsImage(X, filename="a.png", file_name="b.png"), TypeError, "once"),
    (lambda X: EmbeddingsImage(X, filename="{}_embeddings.npy"), ValueError, "cannot write"),
    (lambda X: EmbeddingsImage(X, labels=[0, 1]), ValueError, "labels has 2 entries but data has 300 rows"),
    (lambda X: TensorBoardEmbeddingsImage(X, labels=np.eye(300)), ValueError, "one-hot"),
    (lambda X: EmbeddingsLogging(X, epoch_interval=0), ValueError, "epoch_interval"),
    (lambda X: ModelCheckpoint(epoch_interval=1.5), ValueError, "epoch_interval"),
    (lambda X: EmbeddingsLogging(X, filename=""), ValueError, "does not name a file"),
])
def test_invalid_arguments(blobs, make, error, message):
    X, _ = blobs
    with pytest.raises(error, match=message.replace("{", r"\{").replace("}", r"\}")):
        make(X)


def test_filename_patterns(tmp_path):
    assert ModelCheckpoint(tmp_path).path_for(7) == os.path.join(tmp_path, "model-checkpoint_7.ivis")
    assert ModelCheckpoint(tmp_path, "run-{}/model").path_for(12) == os.path.join(tmp_path, "run-12/model")
    assert ModelCheckpoint(tmp_path, "latest.ivis").path_for(3) == os.path.join(tmp_path, "latest.ivis")
    assert EmbeddingsLogging([[0.0]], tmp_path, "e-{}-{epoch}.npy").path_for(5) == os.path.join(tmp_path, "e-5-{epoch}.npy")
    assert EmbeddingsImage([[0.0]], filename="plot_{}").format == "png"
    assert EmbeddingsImage([[0.0]], filename="plot_{}.PDF").format == "pdf"


def test_unwritable_log_dir_fails_before_training(blobs, tmp_path):
    X, _ = blobs
    (tmp_path / "a-file").write_text("not a folder")
    log_dir = tmp_path / "a-file" / "logs"
    model = Ivis(**FAST, callbacks=[EmbeddingsLogging(X, log_dir=log_dir)])
    with pytest.raises(OSError, match=r"EmbeddingsLogging cannot write to its log_dir .*a-file/logs") as caught:
        model.fit(X)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert model.loss_history_ == [], "no epoch was trained"


def test_checkpoint_never_replaces_what_is_not_a_model(blobs, tmp_path):
    X, _ = blobs
    (tmp_path / "latest.ivis").write_text("precious")
    model = Ivis(**FAST, callbacks=[ModelCheckpoint(tmp_path, "latest.ivis")])
    with pytest.raises(FileExistsError, match="not an ivis model folder"):
        model.fit(X)
    assert (tmp_path / "latest.ivis").read_text() == "precious" and model.loss_history_ == []


def test_data_of_another_width_fails_before_training(blobs, tmp_path):
    X, _ = blobs
    model = Ivis(**FAST, callbacks=[EmbeddingsImage(X[:, :4], log_dir=tmp_path)])
    with pytest.raises(ValueError, match=r"EmbeddingsImage: data has rows of shape \(4,\), but the model takes rows of shape \(10,\)"):
        model.fit(X)
    assert model.loss_history_ == []


def test_ivis_callbacks_need_the_estimator(tmp_path):
    net = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    net.compile(loss="mse")
    with pytest.raises(RuntimeError, match=r"Ivis\(callbacks=\[\.\.\.\]\)"):
        net.fit(np.zeros((4, 3)), np.zeros(4), callbacks=[ModelCheckpoint(tmp_path)], verbose=0)


@pytest.mark.parametrize("module, make", [
    ("matplotlib", lambda: EmbeddingsImage([[0.0]])),
    ("matplotlib", lambda: TensorBoardEmbeddingsImage([[0.0]])),
    ("tensorboard", lambda: TensorBoardEmbeddingsImage([[0.0]])),
])
def test_missing_optional_libraries_give_install_hints(monkeypatch, module, make):
    for name in [m for m in sys.modules if m == module or m.startswith(module + ".")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, module, None)
    hint = "pip install 'ivis[plot]'" if module == "matplotlib" else "pip install tensorflow tensorboard"
    with pytest.raises(ImportError, match=hint.replace("[", r"\[").replace("]", r"\]")):
        make()
    # Logging embeddings and checkpoints need neither library.
    EmbeddingsLogging([[0.0]])
    ModelCheckpoint()


# ---------------------------------------------------------------- command line


def test_cli_checkpoints_and_resumes(blobs, tmp_path, monkeypatch, capsys):
    from ivis.cli import main

    X, _ = blobs
    np.save(tmp_path / "X.npy", X)
    monkeypatch.chdir(tmp_path)
    common = ["X.npy", "-k", "5", "--batch-size", "32", "--random-state", "0", "-q", "--no-plot", "--format", "npy"]

    def cli(*args):
        code = main(common + list(args))
        err = capsys.readouterr().err
        assert code == 0, err
        return err

    # Three epochs with a checkpoint every second one: the checkpoint holds epoch 2 of 3.
    cli("--epochs", "3", "--checkpoint-dir", "ckpt", "--checkpoint-every", "2", "-o", "first")
    checkpoint = tmp_path / "ckpt" / "checkpoint.ivis"
    assert listing(tmp_path / "ckpt") == ["checkpoint.ivis"]
    state = read_manifest(checkpoint)["training"]
    assert state["epochs_trained"] == 2 and not state["complete"]

    # Resuming trains the missing third epoch and ends where the uninterrupted run ended.
    assert "after epoch 2 of 3" in cli("--resume", str(checkpoint), "--save-model", "resumed.ivis", "-o", "second")
    np.testing.assert_array_equal(np.load(tmp_path / "second" / "embedding.npy"), np.load(tmp_path / "first" / "embedding.npy"))
    manifest = json.loads((tmp_path / "resumed.ivis" / "ivis.json").read_text())
    assert manifest["training"]["epochs_trained"] == 3 and manifest["training"]["complete"]
    assert manifest["fitted"]["loss_history"][:2] == read_manifest(checkpoint)["fitted"]["loss_history"]

    for args, message in [
        (["--resume", str(checkpoint), "--embedding-dims", "3"], "--embedding-dims 3 differs from the checkpoint's 2"),
        (["--resume", str(checkpoint), "--load-model", str(checkpoint)], "pass one of them"),
        (["--checkpoint-every", "0", "--checkpoint-dir", "ckpt"], "positive number of epochs"),
        (["--resume", "nowhere.ivis"], "No model folder"),
    ]:
        assert main(common + args + ["-o", "third"]) == 2
        assert message in capsys.readouterr().err


def test_tensorboard_image_accepts_the_documented_filename_argument(tmp_path):
    with pytest.warns(UserWarning, match="filename argument is ignored"):
        TensorBoardEmbeddingsImage(np.zeros((4, 2)), log_dir=tmp_path, filename="{}_test_embeddings.npy")
