"""ONNX export: the exported graph run by onnxruntime gives what transform and score_samples give."""

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort  # the 'onnx' extra, which the test setup installs
import pytest

from ivis import Ivis
from ivis.onnx_export import OnnxExportError, manifest_path

ONE_EPOCH = dict(k=5, epochs=1, batch_size=32, verbose=0, random_state=0)
DOCS = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"
# Parity bound of the exported graph against Keras, on float32 outputs.
TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def rows():
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=120, n_features=10, centers=3, random_state=0)
    X = (X - X.min(0)) / (X.max(0) - X.min(0))
    return X.astype(np.float32), y


@pytest.fixture(scope="module")
def new_rows():
    """Rows the model never saw, in a count other than any batch used in fit or export."""
    return np.random.default_rng(1).random((37, 10)).astype(np.float32)


def run_onnx(path, X, outputs=None):
    session = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    return dict(zip(outputs or [o.name for o in session.get_outputs()], session.run(outputs, {"input": X})))


def assert_close(actual, expected):
    np.testing.assert_allclose(actual, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize("network", ["szubert", "hinton", "maaten"])
def test_named_networks_match_transform(tmp_path, rows, new_rows, network):
    X, _ = rows
    model = Ivis(model=network, embedding_dims=3, **ONE_EPOCH).fit(X)
    model.export_onnx(tmp_path / "model.onnx")
    out = run_onnx(tmp_path / "model.onnx", new_rows)
    assert set(out) == {"embedding"}
    assert_close(out["embedding"], model.transform(new_rows))
    # One row, as a service embeds it: the batch dimension is free.
    assert_close(run_onnx(tmp_path / "model.onnx", new_rows[:1])["embedding"], model.transform(new_rows[:1]))


def test_custom_keras_model_on_image_rows_matches_transform(tmp_path):
    import keras

    rng = np.random.default_rng(0)
    images = rng.random((96, 8, 8, 1)).astype(np.float32)
    base = keras.Sequential([
        keras.Input((8, 8, 1)),
        keras.layers.Conv2D(4, 3, activation="relu"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="tanh"),
        keras.layers.Dropout(0.2),
    ])
    model = Ivis(model=base, **ONE_EPOCH).fit(images)
    manifest = model.export_onnx(tmp_path / "images.onnx")
    assert manifest["input"]["shape"] == [None, 8, 8, 1] and manifest["input"]["n_features"] == 64
    assert manifest["network"] == "custom"
    new = rng.random((13, 8, 8, 1)).astype(np.float32)
    assert_close(run_onnx(tmp_path / "images.onnx", new)["embedding"], model.transform(new))


def test_classifier_scores_match_score_samples(tmp_path, rows, new_rows):
    X, y = rows
    labels = np.array(["b", "a", "c"])[y]
    model = Ivis(**ONE_EPOCH).fit(X, labels)
    manifest = model.export_onnx(tmp_path / "classifier.onnx")
    out = run_onnx(tmp_path / "classifier.onnx", new_rows)
    assert_close(out["embedding"], model.transform(new_rows))
    assert_close(out["scores"], model.score_samples(new_rows))
    assert manifest["outputs"]["scores"]["classes"] == model.classes_.tolist() == ["a", "b", "c"]
    assert manifest["outputs"]["scores"]["shape"] == [None, 3]
    # Asked for the scores alone, the runtime gives the same.
    assert_close(run_onnx(tmp_path / "classifier.onnx", new_rows, ["scores"])["scores"], out["scores"])


def test_regression_scores_match_score_samples(tmp_path, rows, new_rows):
    X, _ = rows
    targets = np.stack([X[:, 0] * 3.0, X[:, 1] - X[:, 2]], axis=1)
    model = Ivis(supervision_metric="mae", **ONE_EPOCH).fit(X, targets)
    manifest = model.export_onnx(tmp_path / "regressor.onnx")
    assert manifest["outputs"]["scores"]["kind"] == "regression" and manifest["outputs"]["scores"]["classes"] is None
    assert_close(run_onnx(tmp_path / "regressor.onnx", new_rows)["scores"], model.score_samples(new_rows))


@pytest.fixture(scope="module")
def szubert_model(rows):
    return Ivis(**ONE_EPOCH).fit(rows[0])


def test_manifest_describes_the_graph(tmp_path, szubert_model):
    import ivis

    returned = szubert_model.export_onnx(tmp_path / "m.onnx")
    written = json.loads(Path(manifest_path(tmp_path / "m.onnx")).read_text())
    assert written == json.loads(json.dumps(returned))
    assert written["format"] == "ivis-onnx" and written["ivis_version"] == ivis.__version__
    assert written["input"] == {"name": "input", "dtype": "float32", "shape": [None, 10], "n_features": 10}
    assert written["embedding_dims"] == 2 and list(written["outputs"]) == ["embedding"]
    assert "scaling" in written["preprocessing"]
    data = (tmp_path / "m.onnx").read_bytes()
    assert written["bytes"] == len(data) and written["sha256"] == hashlib.sha256(data).hexdigest()

    session = ort.InferenceSession(os.fspath(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.type == "tensor(float)" and graph_input.shape[1:] == [10]
    assert not isinstance(graph_input.shape[0], int)  # a dynamic batch dimension
    embedded = json.loads(session.get_modelmeta().custom_metadata_map["ivis"])
    assert embedded["input"] == written["input"] and embedded["outputs"] == written["outputs"]


def test_a_loaded_model_exports_the_same_graph(tmp_path, szubert_model, new_rows):
    szubert_model.save_model(tmp_path / "folder")
    from ivis import load_model

    load_model(tmp_path / "folder").export_onnx(tmp_path / "loaded.onnx")
    assert_close(run_onnx(tmp_path / "loaded.onnx", new_rows)["embedding"], szubert_model.transform(new_rows))


def test_unfitted_model_is_refused(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        Ivis().export_onnx(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("existing", ["m.onnx", "m.onnx.json"])
def test_existing_files_are_never_replaced_silently(tmp_path, szubert_model, new_rows, existing):
    (tmp_path / existing).write_text("precious")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        szubert_model.export_onnx(tmp_path / "m.onnx")
    assert sorted(os.listdir(tmp_path)) == [existing] and (tmp_path / existing).read_text() == "precious"

    szubert_model.export_onnx(tmp_path / "m.onnx", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["m.onnx", "m.onnx.json"]
    assert_close(run_onnx(tmp_path / "m.onnx", new_rows)["embedding"], szubert_model.transform(new_rows))


def test_a_folder_is_not_an_export_destination(tmp_path, szubert_model):
    (tmp_path / "m.onnx").mkdir()
    with pytest.raises(FileExistsError, match="is a folder"):
        szubert_model.export_onnx(tmp_path / "m.onnx", overwrite=True)


def test_unsupported_layer_is_named_and_nothing_is_written(tmp_path, rows):
    import keras
    import tensorflow as tf

    @keras.saving.register_keras_serializable(package="ivis_tests")
    class LogGamma(keras.layers.Layer):
        # tf2onnx has no conversion for TensorFlow's Lgamma operation.
        def call(self, x):
            return tf.math.lgamma(x + 1.0)

    inputs = keras.Input((10,))
    base = keras.Model(inputs, keras.layers.Dense(8)(LogGamma()(inputs)))
    model = Ivis(model=base, **ONE_EPOCH).fit(rows[0])
    with pytest.raises(OnnxExportError, match=r"cannot convert: Lgamma .*log_gamma"):
        model.export_onnx(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []  # no partial file, no hidden work file


def test_converter_failure_is_reported_and_nothing_is_written(tmp_path, szubert_model, monkeypatch):
    import keras

    def failing_export(self, filepath, **kwargs):
        with open(filepath, "wb") as handle:  # a converter that dies half-way through its file
            handle.write(b"partial")
        raise RuntimeError("op conversion failed")

    monkeypatch.setattr(keras.Model, "export", failing_export)
    with pytest.raises(OnnxExportError, match="cannot be converted to ONNX: RuntimeError: op conversion failed"):
        szubert_model.export_onnx(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_missing_converter_names_the_extra(tmp_path, szubert_model, monkeypatch):
    monkeypatch.setitem(sys.modules, "tf2onnx", None)  # as if the package were not installed
    with pytest.raises(ImportError, match=re.escape("pip install 'ivis[onnx]'")):
        szubert_model.export_onnx(tmp_path / "m.onnx")
    assert os.listdir(tmp_path) == []


def test_import_stays_light():
    code = (
        "import sys, ivis, ivis.onnx_export; "
        "print(sorted(m for m in ('onnx', 'tf2onnx', 'onnxruntime', 'tensorflow', 'keras') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_command_line_export(tmp_path, szubert_model, new_rows, capsys, monkeypatch):
    from ivis.cli import main

    monkeypatch.chdir(tmp_path)
    szubert_model.save_model("model.ivis")
    assert main(["export", "model.ivis", "model.onnx"]) == 0
    assert "model.onnx.json" in capsys.readouterr().out
    assert_close(run_onnx(tmp_path / "model.onnx", new_rows)["embedding"], szubert_model.transform(new_rows))

    assert main(["export", "model.ivis", "model.onnx"]) == 2
    assert "already exists. Pass --overwrite" in capsys.readouterr().err
    assert main(["export", "model.ivis", "model.onnx", "--overwrite"]) == 0
    assert main(["export", "nowhere", "x.onnx"]) == 2
    assert "No model folder" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()


def test_documented_example_runs(tmp_path, monkeypatch):
    """The Python code blocks of docs/deployment.md, run in order as one script."""
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), flags=re.DOTALL)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile("\n".join(blocks), str(DOCS), "exec"), namespace)  # noqa: S102 - the project's own docs
    assert_close(namespace["embedding"], namespace["model"].transform(namespace["X_new"]))
