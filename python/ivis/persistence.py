"""The ivis model folder: a versioned, code-free format, written atomically.

A model folder holds:

- ``ivis.json``: the manifest (format name and version, ivis and Keras versions, the
  estimator's parameters, fitted attributes, loss history, training state and the networks'
  random-generator states, e.g. of dropout);
- ``encoder.keras``: the encoder network (architecture and weights, Keras's own archive);
- ``supervised_head.keras``: the supervised head, for supervised models;
- ``optimizer.npz``: the optimizer's variables, so that training resumes where it stopped.

Nothing in the folder is pickled, and loading never runs code from it: Keras archives are
read in safe mode and arrays with ``allow_pickle=False``. A folder is written into a
temporary sibling first and moved into place only when complete, so an interrupted save
leaves the previous model intact.
"""

import ctypes
import io
import json
import os
import shutil
import sys
import tempfile
import zipfile

import numpy as np

FORMAT_NAME = "ivis-model"
FORMAT_VERSION = 1
MANIFEST_FILE = "ivis.json"
ENCODER_FILE = "encoder.keras"
HEAD_FILE = "supervised_head.keras"
OPTIMIZER_FILE = "optimizer.npz"


class ModelFolderError(ValueError):
    """A folder that is not a readable ivis model (missing, corrupt, or too new)."""


def _json_default(value):
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def is_model_folder(folder):
    """True if ``folder`` holds an ivis manifest."""
    return os.path.isfile(os.path.join(folder, MANIFEST_FILE))


def write_model_folder(folder, manifest, encoder, head=None, optimizer_variables=None, overwrite=False):
    """Write a model folder atomically.

    Parameters
    ----------
    folder : str or PathLike
        Destination folder.
    manifest : dict
        JSON-serialisable metadata; format name and version are added here.
    encoder, head : keras.Model
        The networks; ``head`` may be None.
    optimizer_variables : list of ndarray, optional
        Optimizer state, in ``optimizer.variables`` order.
    overwrite : bool, default=False
        Replace an existing model folder. A folder that is not an ivis model is never replaced.

    Raises
    ------
    FileExistsError
        If ``folder`` exists and ``overwrite`` is False, or it exists and is not a model folder.
    """
    folder = os.path.abspath(os.fspath(folder))
    if os.path.exists(folder):
        if not overwrite:
            raise FileExistsError(
                f"{folder} already exists. Pass overwrite=True to replace it, or choose another path."
            )
        if not (os.path.isdir(folder) and (is_model_folder(folder) or not os.listdir(folder))):
            raise FileExistsError(
                f"{folder} exists and is not an ivis model folder; refusing to replace it. Choose another path."
            )
    parent = os.path.dirname(folder)
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.saving-", dir=parent)
    try:
        encoder.save(os.path.join(staging, ENCODER_FILE))
        files = {"encoder": ENCODER_FILE}
        if head is not None:
            head.save(os.path.join(staging, HEAD_FILE))
            files["supervised_head"] = HEAD_FILE
        if optimizer_variables is not None:
            arrays = {f"v{i:04d}": np.asarray(v) for i, v in enumerate(optimizer_variables)}
            np.savez(os.path.join(staging, OPTIMIZER_FILE), **arrays)
            files["optimizer"] = OPTIMIZER_FILE
        full_manifest = {"format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest, "files": files}
        with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as handle:
            json.dump(full_manifest, handle, indent=2, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        _replace_folder(staging, folder)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _exchange(first, second):
    """Swap two paths in one atomic step (Linux ``renameat2``); False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        renameat2 = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange) == 0


def _replace_folder(staging, folder):
    """Move ``staging`` to ``folder``; an existing folder is swapped out, then removed."""
    if not os.path.exists(folder):
        os.rename(staging, folder)
        return
    # An atomic swap means a process killed mid-save (a checkpoint, say) never leaves the
    # path without a complete model; elsewhere there is a short gap between two renames.
    if _exchange(staging, folder):
        shutil.rmtree(staging, ignore_errors=True)
        return
    retired = tempfile.mkdtemp(prefix=f".{os.path.basename(folder)}.replaced-", dir=os.path.dirname(folder))
    os.rmdir(retired)
    os.rename(folder, retired)
    try:
        os.rename(staging, folder)
    except BaseException:
        os.rename(retired, folder)
        raise
    shutil.rmtree(retired, ignore_errors=True)


def read_manifest(folder):
    """Read and check the manifest of a model folder.

    Raises
    ------
    ModelFolderError
        If the folder is missing, is not an ivis model, is corrupt, or was written by a newer
        format version.
    """
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ModelFolderError(f"No model folder at {folder!r}.")
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.isfile(path):
        legacy = [f for f in os.listdir(folder) if f.endswith((".pkl", ".pickle"))]
        hint = (
            " It looks like a model from ivis 2.x, whose pickle format cannot be loaded safely; "
            "fit the model again with this version."
            if legacy else ""
        )
        raise ModelFolderError(f"{folder!r} is not an ivis model folder (no {MANIFEST_FILE}).{hint}")
    try:
        with open(path, encoding="utf-8") as handle:
            manifest = json.load(handle)
    except (OSError, ValueError) as error:
        raise ModelFolderError(f"The manifest {path!r} is corrupt: {error}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFolderError(f"{path!r} is not an ivis model manifest.")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ModelFolderError(
            f"The model at {folder!r} uses model format version {version} (written by ivis "
            f"{manifest.get('ivis_version', '?')}); this ivis reads versions up to {FORMAT_VERSION}. "
            "Upgrade ivis to load it."
        )
    for role, name in manifest.get("files", {}).items():
        if not isinstance(name, str) or os.path.basename(name) != name or not os.path.isfile(os.path.join(folder, name)):
            raise ModelFolderError(f"The model folder {folder!r} is incomplete: its {role} file {name!r} is missing.")
    if "encoder" not in manifest.get("files", {}):
        raise ModelFolderError(f"The model folder {folder!r} is incomplete: it has no encoder.")
    return manifest


def read_network(folder, name, custom_objects=None):
    """Load a Keras archive from the folder in safe mode (no code from the file is run)."""
    import keras

    path = os.path.join(os.fspath(folder), name)
    try:
        return keras.saving.load_model(path, custom_objects=custom_objects, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for bad archives
        raise ModelFolderError(
            f"Cannot load the network {path!r}: {error}. If the model uses custom layers, register "
            "them with keras.saving.register_keras_serializable before loading."
        ) from None


def read_optimizer_variables(folder):
    """Return the saved optimizer variables, in order, or None if the folder has none."""
    path = os.path.join(os.fspath(folder), OPTIMIZER_FILE)
    if not os.path.isfile(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as arrays:
            return [arrays[key] for key in sorted(arrays.files)]
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise ModelFolderError(f"The optimizer state {path!r} is corrupt: {error}.") from None


def random_states(network):
    """The random-generator states of ``network`` (e.g. its dropout seeds), as nested lists.

    Keras archives keep weights only; without these states a resumed run would draw other
    dropout masks than an uninterrupted one.
    """
    weights = {id(v) for v in network.weights}
    return [np.asarray(v).tolist() for v in network.variables if id(v) not in weights]


def restore_random_states(network, states, folder):
    """Assign states saved by :func:`random_states` to ``network``; None leaves it as built."""
    if states is None:
        return
    weights = {id(v) for v in network.weights}
    variables = [v for v in network.variables if id(v) not in weights]
    if len(variables) != len(states) or any(np.shape(s) != tuple(v.shape) for v, s in zip(variables, states)):
        raise ModelFolderError(
            f"The random-generator state in {os.fspath(folder)!r} does not match its network; "
            "the folder is corrupt or was assembled from different models."
        )
    for variable, state in zip(variables, states):
        variable.assign(np.asarray(state, dtype=variable.dtype))


def folder_to_bytes(folder):
    """Pack a model folder into zip bytes (for pickling an estimator in memory)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for name in sorted(os.listdir(folder)):
            archive.write(os.path.join(folder, name), arcname=name)
    return buffer.getvalue()


def bytes_to_folder(data, folder):
    """Unpack zip bytes made by :func:`folder_to_bytes` into ``folder``."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        for name in archive.namelist():
            if os.path.basename(name) != name:
                raise ModelFolderError(f"Unexpected path {name!r} in a packed ivis model.")
        archive.extractall(folder)
