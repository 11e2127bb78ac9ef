"""Loading an untrusted model folder stays contained: schema, symlinks, size bombs, no writes elsewhere, consistency."""

import hashlib
import io
import json
import os
import subprocess
import sys
import textwrap
import time
import zipfile

import numpy as np
import pytest

from ivis import Ivis, load_model
from ivis.persistence import MANIFEST_FILE, ModelFolderError

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def edit_manifest(folder, change):
    path = folder / MANIFEST_FILE
    manifest = json.loads(path.read_text())
    change(manifest)
    path.write_text(json.dumps(manifest))


def reseal(folder):
    """Record the current files' sizes and digests in the manifest, as a crafted folder would."""
    def change(manifest):
        manifest["checksums"] = {
            name: {"bytes": (folder / name).stat().st_size, "sha256": hashlib.sha256((folder / name).read_bytes()).hexdigest()}
            for name in manifest["files"].values()
        }
    edit_manifest(folder, change)


@pytest.fixture
def saved(fitted_blobs, tmp_path):
    fitted_blobs.save_model(tmp_path / "m")
    return tmp_path / "m"


@pytest.fixture(scope="module")
def other_blobs(blobs):
    X, _ = blobs
    return Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=7).fit(X)


# ------------------------------------------------------------------ the schema


def _set(path, value):
    def change(manifest):
        *parents, last = path.split(".")
        node = manifest
        for key in parents:
            node = node[key]
        if value is _DELETE:
            del node[last]
        else:
            node[last] = value
    return change


_DELETE = object()


@pytest.mark.parametrize("change, field", [
    (_set("format_version", "1"), "'format_version' must be a positive integer; got '1'"),
    (_set("format_version", 0), "'format_version' must be a positive integer; got 0"),
    (_set("format_version", -7), "'format_version' must be a positive integer; got -7"),
    (_set("format_version", True), "'format_version' must be a positive integer; got True"),
    (_set("fitted", _DELETE), "'fitted' must be an object"),
    (_set("fitted.input_shape", "10"), "'fitted.input_shape' must be a non-empty list of positive integers"),
    (_set("fitted.n_features_in", 11), "'fitted.n_features_in' must equal the product of fitted.input_shape"),
    (_set("fitted.loss_history", None), "'fitted.loss_history' must be a list of numbers"),
    (_set("fitted.seed", "x"), "'fitted.seed' must be an integer"),
    (_set("params", []), "'params' must be an object"),
    (_set("params.epochs", "many"), "field 'params': epochs must be"),
    (_set("params.bogus", 1), "'params.bogus' is not an ivis parameter"),
    (_set("files.encoder", "../other/encoder.keras"), "'files.encoder' must be 'encoder.keras'"),
    (_set("files", {"optimizer": "optimizer.npz"}), "'files.encoder' is missing"),
    (lambda m: m["checksums"].update({"encoder.keras": {"bytes": 1, "sha256": "zz"}}),
     "'checksums.encoder.keras.sha256' must be 64"),
    # An unfinished run claiming a million epochs: fit would silently train none.
    (_set("training", {"epochs_trained": 10**6, "complete": False, "early_stopping": None}),
     "'training.epochs_trained' is 1000000, but fitted.loss_history records 3 epochs"),
    (lambda m: (m["training"].update(complete=False), m["params"].update(epochs=2)),
     "'training.epochs_trained' is 3, beyond the 2 epochs of the unfinished run"),
    (_set("training.early_stopping", {"best": 0.1, "wait": 10**6}), "'training.early_stopping.wait' is 1000000"),
])
def test_malformed_manifests_name_the_file_and_the_field(saved, change, field):
    edit_manifest(saved, change)
    with pytest.raises(ModelFolderError) as caught:
        Ivis().load_model(saved)
    message = str(caught.value)
    assert field in message and str(saved / MANIFEST_FILE) in message
    assert "Upgrade ivis" not in message


def test_a_newer_format_asks_for_an_upgrade(saved):
    edit_manifest(saved, _set("format_version", 99))
    with pytest.raises(ModelFolderError, match="format version 99 .* Upgrade ivis"):
        Ivis().load_model(saved)


def test_class_lists_must_match_the_supervised_head(blobs, tmp_path):
    X, y = blobs
    Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=0).fit(X, y).save_model(tmp_path / "s")
    edit_manifest(tmp_path / "s", lambda m: m["fitted"].update(classes=[0, 1, 2, 3]))
    with pytest.raises(ModelFolderError, match="'fitted.classes' must list the 3 classes"):
        Ivis().load_model(tmp_path / "s")
    edit_manifest(tmp_path / "s", lambda m: m["fitted"]["target"].update(n_outputs=4))
    with pytest.raises(ModelFolderError, match="the supervised head predicts 3 outputs, the manifest's fitted.target"):
        Ivis().load_model(tmp_path / "s")


def test_the_command_line_reports_a_malformed_folder_in_one_line(saved, blobs, tmp_path):
    X, _ = blobs
    np.save(tmp_path / "X.npy", X)
    edit_manifest(saved, _set("fitted", _DELETE))
    result = subprocess.run([sys.executable, "-m", "ivis.cli", "X.npy", "--load-model", str(saved), "-o", "out"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "ivis: error: The manifest" in result.stderr and "'fitted'" in result.stderr


# ----------------------------------------------------------- containment


def test_file_system_parameters_never_travel_in_a_folder(blobs, tmp_path):
    X, _ = blobs
    index = tmp_path / "index.ann"
    Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=0, annoy_index_path=str(index)).fit(X).save_model(tmp_path / "m")
    assert index.exists() and "annoy_index_path" not in json.loads((tmp_path / "m" / MANIFEST_FILE).read_text())["params"]

    elsewhere = tmp_path / "elsewhere" / "planted.ann"
    elsewhere.parent.mkdir()
    edit_manifest(tmp_path / "m", lambda m: m["params"].update(annoy_index_path=str(elsewhere)))
    model = load_model(tmp_path / "m")
    assert model.annoy_index_path is None
    model.fit(X)
    assert not elsewhere.exists(), "a setting read from the folder directed a write"


@pytest.mark.parametrize("name", ["encoder.keras", MANIFEST_FILE])
def test_symlinks_inside_a_folder_are_refused(saved, other_blobs, tmp_path, name):
    other_blobs.save_model(tmp_path / "other")
    (saved / name).unlink()
    (saved / name).symlink_to(tmp_path / "other" / name)
    with pytest.raises(ModelFolderError, match=f"{name}' is a symbolic link"):
        Ivis().load_model(saved)


def test_a_manifest_linked_to_a_system_file_is_not_read(saved):
    (saved / MANIFEST_FILE).unlink()
    (saved / MANIFEST_FILE).symlink_to("/etc/passwd")
    with pytest.raises(ModelFolderError, match="symbolic link"):
        Ivis().load_model(saved)


def _rewrite_archive(path, replace, compression=zipfile.ZIP_STORED):
    with zipfile.ZipFile(path) as archive:
        members = {info.filename: archive.read(info) for info in archive.infolist()}
    members.update(replace(members))
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def _huge_embedding_layer(members):
    config = json.loads(members["config.json"])
    for layer in config["config"]["layers"]:
        if layer["config"]["name"] == "embedding":
            layer["config"]["units"] = 2_000_000  # a 128 x 2e6 float32 kernel: 1 GiB once built
    return {"config.json": json.dumps(config)}


def make_bombs(saved, tmp_path):
    """Three small folders that, read naively, inflate to hundreds of MiB or more."""
    bombs = {}
    for kind in ("optimizer", "layer", "config"):
        folder = tmp_path / f"bomb-{kind}"
        folder.mkdir()
        for entry in saved.iterdir():
            (folder / entry.name).write_bytes(entry.read_bytes())
        if kind == "optimizer":
            with zipfile.ZipFile(folder / "optimizer.npz", "w", zipfile.ZIP_DEFLATED) as archive:
                buffer = io.BytesIO()
                np.save(buffer, np.zeros(2**26, dtype=np.float32))  # 256 MiB of zeros, ~250 kB compressed
                archive.writestr("v0000.npy", buffer.getvalue())
        elif kind == "layer":
            _rewrite_archive(folder / "encoder.keras", _huge_embedding_layer)
        else:
            _rewrite_archive(folder / "encoder.keras",
                             lambda m: {"config.json": m["config.json"] + b" " * (256 * 1024**2)}, zipfile.ZIP_DEFLATED)
        reseal(folder)
        assert sum(p.stat().st_size for p in folder.iterdir()) < 2 * 1024**2
        bombs[kind] = folder
    return bombs


BOMB_LOADER = textwrap.dedent("""
    import json, resource, sys
    from ivis import load_model
    from ivis.persistence import ModelFolderError

    def peak_mib():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024

    load_model(sys.argv[1])  # a sound folder first: Keras and TensorFlow are warm
    report = {}
    for folder in sys.argv[2:]:
        before = peak_mib()
        try:
            load_model(folder)
            outcome = "loaded"
        except ModelFolderError as error:
            outcome = str(error)
        report[folder] = [outcome, peak_mib() - before]
    print(json.dumps(report))
""")


def test_size_bombs_are_refused_before_they_inflate(saved, tmp_path):
    bombs = make_bombs(saved, tmp_path)
    result = subprocess.run([sys.executable, "-c", BOMB_LOADER, str(saved), *map(str, bombs.values())],
                            capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {
        "optimizer": "declares 268435584 bytes but occupies",
        "layer": "its config.json declares layers of up to",
        "config": "member 'config.json' declares",
    }
    for kind, folder in bombs.items():
        outcome, growth_mib = report[str(folder)]
        assert growth_mib < 64, f"loading the {kind} bomb raised the peak memory by {growth_mib} MiB"
        assert expected[kind] in outcome, (kind, outcome)


# ------------------------------------------------------------- consistency


def _consistent(loaded, models, X):
    """The loaded model is one of ``models`` as a whole: its manifest and its weights agree."""
    match = [m for m in models if m._seed_ == loaded._seed_]
    assert len(match) == 1
    np.testing.assert_allclose(loaded.transform(X[:20]), match[0].transform(X[:20]), rtol=1e-5, atol=1e-5)
    return match[0]


def test_a_load_never_mixes_two_saves(saved, fitted_blobs, other_blobs, blobs, monkeypatch):
    import keras

    X, _ = blobs
    build = keras.saving.load_model
    calls = []

    def resave_first(*args, **kwargs):
        # Another save replaces the folder after the manifest was read, before the networks are.
        if not calls:
            other_blobs.save_model(saved, overwrite=True)
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(keras.saving, "load_model", resave_first)
    _consistent(Ivis().load_model(saved), [fitted_blobs, other_blobs], X)


def test_a_folder_replaced_while_its_files_are_read_is_read_again(saved, fitted_blobs, other_blobs, blobs, monkeypatch):
    from ivis import _folder_reading

    X, _ = blobs
    read = _folder_reading._read_file
    swapped = []

    def swap_after_manifest(folder, name, *args, **kwargs):
        data = read(folder, name, *args, **kwargs)
        if name == MANIFEST_FILE and not swapped:
            swapped.append(1)
            other_blobs.save_model(saved, overwrite=True)
        return data

    monkeypatch.setattr(_folder_reading, "_read_file", swap_after_manifest)
    assert _consistent(Ivis().load_model(saved), [fitted_blobs, other_blobs], X) is other_blobs


RESAVER = textwrap.dedent("""
    import os, sys
    from ivis import load_model
    first, second, target, ready, stop = sys.argv[1:]
    models = [load_model(first), load_model(second)]
    open(ready, "w").close()
    i = 0
    while not os.path.exists(stop):
        models[i % 2].save_model(target, overwrite=True)
        i += 1
""")


def test_loads_stay_consistent_while_another_process_keeps_saving(saved, fitted_blobs, other_blobs, blobs, tmp_path):
    X, _ = blobs
    other_blobs.save_model(tmp_path / "other")
    ready, stop = tmp_path / "ready", tmp_path / "stop"
    saver = subprocess.Popen(
        [sys.executable, "-c", RESAVER, str(saved), str(tmp_path / "other"), str(saved), str(ready), str(stop)],
        env=ENV, stderr=subprocess.PIPE, text=True,
    )
    loaded = []
    try:
        deadline = time.monotonic() + 120
        while not ready.exists():
            assert saver.poll() is None and time.monotonic() < deadline, "the saving process did not start"
            time.sleep(0.05)
        for _ in range(8):
            try:
                loaded.append(_consistent(Ivis().load_model(saved), [fitted_blobs, other_blobs], X))
            except ModelFolderError as error:
                assert "kept changing while it was read" in str(error)
        stop.touch()
        assert saver.wait(timeout=60) == 0, saver.stderr.read()
    finally:
        if saver.poll() is None:
            saver.kill()
        saver.stderr.close()
    assert loaded, "no load succeeded"
