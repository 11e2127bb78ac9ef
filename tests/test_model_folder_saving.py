"""Saving never destroys what a user keeps: overwrite rules, concurrent and killed saves, symlinks, umask."""

import os
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ivis import Ivis
from ivis.persistence import MANIFEST_FILE, read_manifest

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def siblings(path):
    return sorted(p.name for p in path.parent.iterdir())


def wait_for(condition, timeout, what, process=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the process ended before {what}:\n{process.stderr.read()}")
        time.sleep(0.02)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


# ------------------------------------------------------------------ overwrite


def test_overwrite_refuses_a_directory_that_only_has_a_file_named_like_the_manifest(fitted_blobs, tmp_path):
    project = tmp_path / "project"
    project.mkdir()
    (project / MANIFEST_FILE).write_text('{"name": "my project settings"}')
    (project / "main.py").write_text("print('precious')")
    with pytest.raises(FileExistsError, match="not an ivis model folder"):
        fitted_blobs.save_model(project, overwrite=True)
    assert sorted(p.name for p in project.iterdir()) == ["ivis.json", "main.py"]
    assert (project / "main.py").read_text() == "print('precious')"


def test_overwrite_never_deletes_files_ivis_did_not_write(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    (tmp_path / "m" / "README.md").write_text("notes")
    (tmp_path / "m" / "plots").mkdir()
    other = Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=7).fit(X)
    with pytest.raises(FileExistsError, match=r"files ivis did not write \(README.md, plots\)"):
        other.save_model(tmp_path / "m", overwrite=True)
    assert (tmp_path / "m" / "README.md").read_text() == "notes" and (tmp_path / "m" / "plots").is_dir()
    assert read_manifest(tmp_path / "m")["fitted"]["seed"] == fitted_blobs._seed_, "the previous model is intact"


def test_overwrite_replaces_an_ivis_model_folder_without_debris(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    fitted_blobs.save_model(tmp_path / "m")
    other = Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=7).fit(X)
    other.save_model(tmp_path / "m", overwrite=True)
    assert read_manifest(tmp_path / "m")["fitted"]["seed"] == other._seed_
    assert siblings(tmp_path / "m") == ["m"]


def test_saving_onto_a_symlink_saves_into_the_folder_it_points_to(fitted_blobs, blobs, tmp_path):
    X, _ = blobs
    (tmp_path / "real").mkdir()
    fitted_blobs.save_model(tmp_path / "real" / "m")
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "real" / "m", target_is_directory=True)
    other = Ivis(k=5, epochs=1, batch_size=32, verbose=0, random_state=7).fit(X)
    other.save_model(link, overwrite=True)
    assert link.is_symlink() and os.readlink(link) == str(tmp_path / "real" / "m")
    assert read_manifest(tmp_path / "real" / "m")["fitted"]["seed"] == other._seed_
    assert siblings(link) == ["link", "real"] and siblings(tmp_path / "real" / "m") == ["m"]

    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError, match="symbolic link to .*nowhere, which does not exist"):
        other.save_model(dangling, overwrite=True)
    assert dangling.is_symlink() and not (tmp_path / "nowhere").exists()


def test_permissions_follow_the_umask(fitted_blobs, tmp_path):
    previous = os.umask(0o022)
    try:
        fitted_blobs.save_model(tmp_path / "m")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "m").stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()} == {0o644}


# ------------------------------------------------------- concurrent and killed saves

SAVER = textwrap.dedent("""
    import os, sys, time
    from ivis import load_model
    source, target, tag, go = sys.argv[1:]
    model = load_model(source)
    model.epochs = int(tag)
    open(go + "." + tag, "w").close()
    while not os.path.exists(go):
        time.sleep(0.001)
    try:
        model.save_model(target)
    except FileExistsError as error:
        print(error, file=sys.stderr)
        sys.exit(3)
""")


def test_concurrent_saves_to_a_new_path_exactly_one_succeeds(fitted_blobs, tmp_path):
    fitted_blobs.save_model(tmp_path / "source")
    go = tmp_path / "go"
    tags = ["101", "102", "103"]
    savers = [
        subprocess.Popen([sys.executable, "-c", SAVER, str(tmp_path / "source"), str(tmp_path / "target"), tag, str(go)],
                         env=ENV, stderr=subprocess.PIPE, text=True)
        for tag in tags
    ]
    try:
        wait_for(lambda: all((tmp_path / f"go.{tag}").exists() for tag in tags), 120, "all savers to be ready")
        go.touch()  # all start saving at once: every existence check runs before any rename
        codes = [saver.wait(timeout=120) for saver in savers]
        errors = [saver.stderr.read() for saver in savers]
    finally:
        for saver in savers:
            if saver.poll() is None:
                saver.kill()
            saver.stderr.close()
    assert sorted(codes) == [0, 3, 3], errors
    winner = tags[codes.index(0)]
    assert read_manifest(tmp_path / "target")["params"]["epochs"] == int(winner)
    for code, error in zip(codes, errors):
        if code == 3:
            assert "target" in error and ("created by another process" in error or "already exists" in error)
    assert not [name for name in os.listdir(tmp_path) if name.startswith(".target.")], "no staging folder left"


KILLED_SAVER = textwrap.dedent("""
    import sys, time
    import numpy as np
    from ivis import load_model
    source, target, marker = sys.argv[1:]
    model = load_model(source)
    model.epochs = 999
    def stall(*args, **kwargs):
        open(marker, "w").close()
        time.sleep(600)
    np.savez = stall  # the save stops halfway, its networks written, until it is killed
    model.save_model(target, overwrite=True)
""")


def test_a_killed_save_keeps_the_model_and_the_next_save_removes_its_debris(fitted_blobs, tmp_path):
    fitted_blobs.save_model(tmp_path / "source")
    fitted_blobs.save_model(tmp_path / "target")
    marker = tmp_path / "stalled"
    saver = subprocess.Popen(
        [sys.executable, "-c", KILLED_SAVER, str(tmp_path / "source"), str(tmp_path / "target"), str(marker)],
        env=ENV, stderr=subprocess.PIPE, text=True,
    )
    try:
        wait_for(marker.exists, 120, "the save to start", saver)
        saver.send_signal(signal.SIGKILL)
        assert saver.wait(timeout=30) == -signal.SIGKILL
    finally:
        if saver.poll() is None:
            saver.kill()
        saver.stderr.close()
    debris = [name for name in os.listdir(tmp_path) if name.startswith(".target.saving-")]
    assert len(debris) == 1, "the save was killed halfway"
    assert read_manifest(tmp_path / "target")["params"]["epochs"] == fitted_blobs.epochs, "the previous model is whole"

    # The next save removes what the killed one left.
    fitted_blobs.save_model(tmp_path / "target", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["source", "stalled", "target"]

    # A save in progress in a live process (this one) is not touched by the cleanup.
    from ivis.persistence import _work_name

    live = tmp_path / _work_name("target", "saving")
    live.mkdir()
    (live / "encoder.keras").write_bytes(b"in progress")
    fitted_blobs.save_model(tmp_path / "target", overwrite=True)
    assert sorted(os.listdir(tmp_path)) == sorted([live.name, "source", "stalled", "target"])
    assert (live / "encoder.keras").read_bytes() == b"in progress"


# -------------------------------------------------------------- command line

IVIS = [sys.executable, "-m", "ivis.cli"]
FAST_CLI = ["-k", "5", "--batch-size", "32", "--random-state", "0", "-q", "--no-plot", "--epochs", "1"]


def cli(args, cwd):
    return subprocess.run(IVIS + args, cwd=cwd, capture_output=True, text=True, timeout=300, env=ENV)


@pytest.fixture
def blobs_csv(blobs, tmp_path):
    import numpy as np

    X, _ = blobs
    np.save(tmp_path / "X.npy", X)
    return "X.npy"


@pytest.mark.parametrize("make, args, message", [
    (lambda p: (p / "out").write_text("a file"), ["-o", "out"], "out is a file, not a folder"),
    (lambda p: None, ["-o", "/proc/ivis-output"], "cannot write to /proc"),
    (lambda p: ((p / MANIFEST_FILE).write_text("{}"), (p / "notes.txt").write_text("mine")),
     ["--save-model", ".", "--overwrite"], "not an ivis model folder"),
    (lambda p: (p / "model").write_text("a file"), ["--save-model", "model", "--overwrite"], "not an ivis model folder"),
])
def test_cli_checks_output_paths_before_any_work(blobs_csv, tmp_path, make, args, message):
    make(tmp_path)
    before = sorted(os.listdir(tmp_path))
    result = cli([blobs_csv, *FAST_CLI, *args], tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert result.stderr.startswith("ivis: error:") and "Traceback" not in result.stderr
    assert "ivis: embedding" not in result.stderr, "the error came before any work"
    assert sorted(os.listdir(tmp_path)) == before


def test_cli_keeps_an_earlier_runs_checkpoint_without_overwrite(blobs_csv, tmp_path):
    first = cli([blobs_csv, *FAST_CLI, "--checkpoint-dir", "ckpt", "-o", "first"], tmp_path)
    assert first.returncode == 0, first.stderr
    checkpoint = tmp_path / "ckpt" / "checkpoint.ivis"
    saved = (checkpoint / MANIFEST_FILE).read_bytes()
    second = cli([blobs_csv, *FAST_CLI, "--random-state", "1", "--checkpoint-dir", "ckpt", "-o", "second"], tmp_path)
    assert second.returncode == 2 and "--checkpoint-dir" in second.stderr and "--overwrite" in second.stderr
    assert "ivis: embedding" not in second.stderr
    assert (checkpoint / MANIFEST_FILE).read_bytes() == saved
    third = cli([blobs_csv, *FAST_CLI, "--random-state", "1", "--checkpoint-dir", "ckpt", "-o", "third", "--overwrite"], tmp_path)
    assert third.returncode == 0, third.stderr
    assert read_manifest(checkpoint)["params"]["random_state"] == 1
