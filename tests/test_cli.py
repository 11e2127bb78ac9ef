"""The ivis command line, run as a user runs it."""

import json
import subprocess
import sys

import numpy as np
import pytest

IVIS = [sys.executable, "-m", "ivis.cli"]
FAST = ["--epochs", "2", "--batch-size", "32", "--random-state", "0", "-q"]


def run(args, cwd, check=True):
    result = subprocess.run(IVIS + args, cwd=cwd, capture_output=True, text=True, timeout=300)
    if check and result.returncode != 0:
        raise AssertionError(f"ivis {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def test_help_does_not_import_tensorflow():
    code = "import sys; from ivis.cli import build_parser; build_parser().format_help(); print('tensorflow' in sys.modules or 'keras' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    assert "usage: ivis" in subprocess.run(IVIS + ["--help"], capture_output=True, text=True, check=True).stdout


def test_default_dataset_writes_embedding_and_plot(tmp_path):
    result = run(FAST + ["-k", "10"], tmp_path)
    embedding = np.loadtxt(tmp_path / "ivis-output" / "embedding.csv", delimiter=",", skiprows=1)
    assert embedding.shape == (1797, 2)
    assert (tmp_path / "ivis-output" / "embedding.png").stat().st_size > 10_000
    assert "ivis-output/embedding.csv" in result.stdout and "embedding.png" in result.stdout
    again = run(FAST, tmp_path, check=False)
    assert again.returncode == 2 and "--overwrite" in again.stderr


def test_csv_with_labels_save_and_reuse_model(tmp_path, blobs):
    X, y = blobs
    with open(tmp_path / "data.csv", "w") as handle:
        handle.write(",".join([f"f{i}" for i in range(10)] + ["kind"]) + "\n")
        for row, label in zip(X, y):
            handle.write(",".join(f"{v:.5f}" for v in row) + f",type{label}\n")
    run(["data.csv", "--label-column", "kind", "-k", "5", "--save-model", "m.ivis", "--format", "npy",
         "--negative-sampling", "all_rows"] + FAST, tmp_path)
    first = np.load(tmp_path / "ivis-output" / "embedding.npy")
    assert first.shape == (300, 2)
    with open(tmp_path / "m.ivis" / "ivis.json") as handle:
        assert json.load(handle)["params"]["negative_sampling"] == "all_rows"
    run(["data.csv", "--label-column", "kind", "--load-model", "m.ivis", "-o", "again", "--format", "npy", "-q"], tmp_path)
    np.testing.assert_allclose(np.load(tmp_path / "again" / "embedding.npy"), first, atol=1e-4)


def test_supervised_and_npy_input(tmp_path, blobs):
    X, y = blobs
    np.save(tmp_path / "X.npy", X)
    run(["X.npy", "-k", "5", "--no-plot"] + FAST, tmp_path)
    assert np.loadtxt(tmp_path / "ivis-output" / "embedding.csv", delimiter=",", skiprows=1).shape == (300, 2)
    assert not (tmp_path / "ivis-output" / "embedding.png").exists()


@pytest.mark.parametrize("args, message", [
    (["missing.csv"], "input file not found"),
    (["data.txt", "--label-column", "nope"], "no column 'nope'"),
    (["data.txt", "-k", "500"], "largest valid k is"),
    (["data.json"], "unsupported input"),
])
def test_errors_are_one_clear_line(tmp_path, args, message):
    (tmp_path / "data.txt").write_text("a,b\n" + "\n".join(f"{i},{i * 2}" for i in range(40)))
    (tmp_path / "data.json").write_text("{}")
    result = run(args + FAST, tmp_path, check=False)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_training_options_reach_the_model(tmp_path):
    run(FAST + ["-k", "10", "--supervised", "--validation-fraction", "0.2", "--learning-rate", "0.002",
                "--weight-decay", "3", "--neighbour-search", "clustered", "--save-model", "m.ivis", "--no-plot"],
        tmp_path)
    with open(tmp_path / "m.ivis" / "ivis.json") as handle:
        manifest = json.load(handle)
    params = manifest["params"]
    assert (params["validation_fraction"], params["learning_rate"], params["weight_decay"]) == (0.2, 0.002, 3.0)
    assert params["neighbour_search"] == "clustered"
    assert len(manifest["fitted"]["validation_loss_history"]) == len(manifest["fitted"]["loss_history"])
