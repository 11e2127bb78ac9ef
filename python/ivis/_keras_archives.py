"""Building the networks and optimizer state of a model folder from checked bytes.

Keras archives are checked for declared sizes before anything is inflated, their configured
layer sizes are bounded by what their weights file can hold, and they are loaded in Keras's
safe mode, so no code from a folder runs. The networks' random-generator states (dropout
seeds), which Keras archives leave out, are saved and restored here too.
"""

import io
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np

from ivis._folder_reading import OPTIMIZER_FILE, ModelFolderError
from ivis._manifest_schema import ROLE_FILES

MAX_ARCHIVE_CONFIG_BYTES = 16 * 1024**2
# A member of an archive may declare at most this much more than it occupies in the file:
# ivis stores members uncompressed, so a larger claim is an archive built to inflate.
ARCHIVE_SLACK_BYTES = 64 * 1024
# Parameters a network may declare beyond what its weights file can hold (at 2 bytes each):
# the estimate from the configuration is an upper bound, so honest networks stay far below.
DECLARED_PARAMS_FACTOR = 16
DECLARED_PARAMS_FLOOR = 2**25


def _check_archive(data, label, allowed_large=()):
    """Open a zip archive from ``data`` after checking every member's declared size.

    ``label`` starts every error message, e.g. "Cannot load the network 'PATH'".
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError) as error:
        raise ModelFolderError(f"{label}: it is not a valid archive ({error}).") from None
    total = 0
    for info in archive.infolist():
        if info.file_size > info.compress_size + ARCHIVE_SLACK_BYTES:
            raise ModelFolderError(
                f"{label}: member {info.filename!r} declares {info.file_size} bytes but occupies "
                f"{info.compress_size}; ivis archives are stored uncompressed, so it is refused before inflating."
            )
        if info.filename not in allowed_large and info.file_size > MAX_ARCHIVE_CONFIG_BYTES:
            raise ModelFolderError(
                f"{label}: member {info.filename!r} declares {info.file_size} bytes, more than the "
                f"{MAX_ARCHIVE_CONFIG_BYTES} allowed for it."
            )
        total += info.file_size
    if total > len(data) + ARCHIVE_SLACK_BYTES:
        raise ModelFolderError(f"{label}: its members declare {total} bytes, more than the archive holds ({len(data)}).")
    return archive


_SIZE_KEYS = ("units", "filters", "output_dim", "input_dim")


def _declared_dims(node, found):
    """Collect every size a Keras configuration declares (layer sizes and shapes)."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _SIZE_KEYS and isinstance(value, int) and not isinstance(value, bool):
                found.append(value)
            elif key in ("batch_shape", "input_shape", "shape", "batch_input_shape", "target_shape") and isinstance(value, list):
                dims = [d for d in value if isinstance(d, int) and not isinstance(d, bool) and d > 0]
                found.extend(dims)
                if dims:
                    found.append(int(np.prod(dims, dtype=object)))
            _declared_dims(value, found)
    elif isinstance(node, list):
        for item in node:
            _declared_dims(item, found)
    return found


def _declared_params(node, widest):
    """An upper estimate of the parameters the layers of a configuration would allocate."""
    total = 0
    if isinstance(node, dict):
        config = node.get("config")
        if isinstance(config, dict) and isinstance(node.get("class_name"), str):
            sizes = [config.get(k) for k in _SIZE_KEYS]
            sizes = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)]
            if "input_dim" in config and "output_dim" in config and len(sizes) == 2:
                total += sizes[0] * sizes[1]
            elif sizes:
                kernel = config.get("kernel_size")
                kernel = kernel if isinstance(kernel, list) else [kernel] if isinstance(kernel, int) else []
                total += max(sizes) * (widest + 1) * int(np.prod([k for k in kernel if isinstance(k, int)] or [1], dtype=object))
        for value in node.values():
            total += _declared_params(value, widest)
    elif isinstance(node, list):
        for item in node:
            total += _declared_params(item, widest)
    return total


def _check_keras_archive(data, path):
    """Refuse a Keras archive whose declared sizes could exhaust memory, before building it."""
    label = f"Cannot load the network {path!r}"
    archive = _check_archive(data, label, allowed_large=("model.weights.h5",))
    with archive:
        names = archive.namelist()
        if "config.json" not in names:
            raise ModelFolderError(f"{label}: it is not a Keras archive (no config.json).")
        weights = archive.getinfo("model.weights.h5").file_size if "model.weights.h5" in names else 0
        try:
            config = json.loads(archive.read("config.json").decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError, zipfile.BadZipFile) as error:
            raise ModelFolderError(f"{label}: its config.json is corrupt ({error}).") from None
    dims = _declared_dims(config, [])
    widest = max(dims, default=1)
    declared = _declared_params(config, widest)
    capacity = weights // 2
    if declared > max(DECLARED_PARAMS_FACTOR * capacity, DECLARED_PARAMS_FLOOR):
        raise ModelFolderError(
            f"{label}: its config.json declares layers of up to {declared} parameters (sizes up to "
            f"{widest}), far beyond what its {weights}-byte weights file holds; refused before building it."
        )


def read_network(contents, role, custom_objects=None):
    """Build the network ``role`` of a checked snapshot in safe mode (no code from the file runs)."""
    import keras

    name = ROLE_FILES[role]
    path = contents.path(name)
    data = contents.files[name]
    _check_keras_archive(data, path)
    private = tempfile.mkdtemp(prefix="ivis-load-")
    try:
        # Keras opens archives by name: a private copy keeps the checked bytes the ones it reads.
        copy = os.path.join(private, name)
        with open(copy, "wb") as handle:
            handle.write(data)
        return keras.saving.load_model(copy, custom_objects=custom_objects, compile=False, safe_mode=True)
    except Exception as error:  # noqa: BLE001 - Keras raises many types for bad archives
        raise ModelFolderError(
            f"Cannot load the network {path!r}: {error}. If the model uses custom layers, register "
            "them with keras.saving.register_keras_serializable before loading."
        ) from None
    finally:
        shutil.rmtree(private, ignore_errors=True)


def read_optimizer_variables(contents, expected_shapes):
    """The saved optimizer variables, in order, or None if the folder has none.

    Every array's shape and dtype is read from its header and compared with
    ``expected_shapes`` (the optimizer's variables) before its data is read.
    """
    if OPTIMIZER_FILE not in contents.files:
        return None
    path = contents.path(OPTIMIZER_FILE)
    archive = _check_archive(contents.files[OPTIMIZER_FILE], f"The optimizer state {path!r} is corrupt", allowed_large=tuple(
        f"v{i:04d}.npy" for i in range(len(expected_shapes))
    ))
    names = sorted(archive.namelist())
    if names != [f"v{i:04d}.npy" for i in range(len(expected_shapes))]:
        raise ModelFolderError(
            f"The optimizer state in {path!r} does not match the saved networks: it holds {len(names)} arrays, "
            f"the optimizer has {len(expected_shapes)} variables; the folder is corrupt or was assembled from different models."
        )
    values = []
    try:
        with archive:
            for name, shape in zip(names, expected_shapes):
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    header = (np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0)(member)
                    if tuple(header[0]) != tuple(shape) or header[2].hasobject or header[2].kind not in "biuf":
                        raise ModelFolderError(
                            f"The optimizer state in {path!r} does not match the saved networks: {name} declares "
                            f"shape {tuple(header[0])} of {header[2]}, the optimizer variable has shape {tuple(shape)}."
                        )
                values.append(np.load(io.BytesIO(archive.read(name)), allow_pickle=False))
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        if isinstance(error, ModelFolderError):
            raise
        raise ModelFolderError(f"The optimizer state {path!r} is corrupt: {error}.") from None
    return values


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
