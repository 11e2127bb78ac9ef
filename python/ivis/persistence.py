"""The ivis model folder: a versioned, code-free format, written atomically.

A model folder holds exactly these files, and ivis writes nothing else into it:

- ``ivis.json``: the manifest (format name and version, ivis and Keras versions, the
  estimator's parameters, fitted attributes, loss history, training state, the networks'
  random-generator states, e.g. of dropout, and the size and SHA-256 of every other file);
- ``encoder.keras``: the encoder network (architecture and weights, Keras's own archive);
- ``supervised_head.keras``: the supervised head, for supervised models;
- ``optimizer.npz``: the optimizer's variables, so that training resumes where it stopped.

Saving writes a new folder next to the destination and renames it into place only when it
is complete. Without ``overwrite`` the rename fails if anything took the path meanwhile, so
of two processes saving to one new path exactly one succeeds. With ``overwrite`` the
previous model is swapped out in one step (Linux) and only its ivis files are then deleted;
a folder that is not an ivis model, or that holds files ivis did not write, is never
replaced. What a killed save leaves behind (``.NAME.saving-*``) is removed by the next save
to the same path once its owner process is provably gone.

Loading treats the folder as untrusted: see :func:`read_model_folder` and
``docs/model-folders.md``. Nothing in the folder is pickled, and loading never runs code from
it, follows a symlink in it, or lets a setting from it direct a write elsewhere.
"""

import contextlib
import ctypes
import errno
import hashlib
import io
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import warnings
import zipfile

import numpy as np

from ivis._manifest_schema import (
    FORMAT_NAME,
    FORMAT_VERSION,
    ROLE_FILES,
    ManifestFieldError,
    NewerFormatError,
    check_format_version,
    validate_manifest,
)

MANIFEST_FILE = "ivis.json"
ENCODER_FILE = ROLE_FILES["encoder"]
HEAD_FILE = ROLE_FILES["supervised_head"]
OPTIMIZER_FILE = ROLE_FILES["optimizer"]
# Every name ivis writes into a model folder; overwrite deletes these and nothing else.
IVIS_FILES = (MANIFEST_FILE, *ROLE_FILES.values())
# Parameters naming places on disk: they describe one machine's run, never travel in a
# folder, and are never read from one.
FILESYSTEM_PARAMS = ("annoy_index_path",)

# Bounds checked before anything from a folder is read into memory or inflated.
MAX_MANIFEST_BYTES = 64 * 1024**2
MAX_FILE_BYTES = 64 * 1024**3
MAX_ARCHIVE_CONFIG_BYTES = 16 * 1024**2
# A member of an archive may declare at most this much more than it occupies in the file:
# ivis stores members uncompressed, so a larger claim is an archive built to inflate.
ARCHIVE_SLACK_BYTES = 64 * 1024
# Parameters a network may declare beyond what its weights file can hold (at 2 bytes each):
# the estimate from the configuration is an upper bound, so honest networks stay far below.
DECLARED_PARAMS_FACTOR = 16
DECLARED_PARAMS_FLOOR = 2**25
LOAD_ATTEMPTS = 5


class ModelFolderError(ValueError):
    """A folder that is not a readable ivis model (missing, corrupt, unsafe, or too new)."""


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


# ------------------------------------------------------------------ reading raw files


def _read_file(folder, name, limit, expected_size=None):
    """Bytes of ``folder/name``, refusing symlinks, non-files and files over ``limit`` bytes.

    Returns None, without reading, if the file's size is not ``expected_size``.
    """
    path = os.path.join(folder, name)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    if os.path.islink(path):
        raise ModelFolderError(f"{path!r} is a symbolic link; a model folder holds its own files only.")
    try:
        descriptor = os.open(path, flags)
    except FileNotFoundError:
        raise ModelFolderError(f"The model folder {folder!r} is incomplete: {name} is missing.") from None
    except OSError as error:
        if error.errno == errno.ELOOP:
            raise ModelFolderError(f"{path!r} is a symbolic link; a model folder holds its own files only.") from None
        raise ModelFolderError(f"Cannot read {path!r}: {error.strerror or error}.") from None
    with os.fdopen(descriptor, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not os.path.stat.S_ISREG(info.st_mode):
            raise ModelFolderError(f"{path!r} is not a regular file.")
        if info.st_size > limit:
            raise ModelFolderError(f"{path!r} has {info.st_size} bytes, more than the {limit} a model folder allows.")
        if expected_size is not None and info.st_size != expected_size:
            return None
        data = handle.read(info.st_size + 1)
    if len(data) != info.st_size:
        raise ModelFolderError(f"{path!r} changed size while it was read.")
    return data


def _parse_manifest(raw, path):
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as error:
        raise ModelFolderError(f"The manifest {path!r} is corrupt: {error}.") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise ModelFolderError(f"{path!r} is not an ivis model manifest (its 'format' is not {FORMAT_NAME!r}).")
    return manifest


def _read_raw_manifest(folder):
    folder = os.fspath(folder)
    if not os.path.isdir(folder):
        raise ModelFolderError(f"No model folder at {folder!r}.")
    path = os.path.join(folder, MANIFEST_FILE)
    if not os.path.lexists(path):
        legacy = [f for f in os.listdir(folder) if f.endswith((".pkl", ".pickle"))]
        hint = (
            " It looks like a model from ivis 2.x, whose pickle format cannot be loaded safely; "
            "fit the model again with this version."
            if legacy else ""
        )
        raise ModelFolderError(f"{folder!r} is not an ivis model folder (no {MANIFEST_FILE}).{hint}")
    return _read_file(folder, MANIFEST_FILE, MAX_MANIFEST_BYTES)


def _validated(raw, folder):
    path = os.path.join(os.fspath(folder), MANIFEST_FILE)
    manifest = _parse_manifest(raw, path)
    try:
        validate_manifest(manifest)
    except NewerFormatError as error:
        raise ModelFolderError(f"The model at {os.fspath(folder)!r} {error}") from None
    except ManifestFieldError as error:
        raise ModelFolderError(f"The manifest {path!r} is invalid: {error}.") from None
    return manifest


def read_manifest(folder):
    """Read the manifest of a model folder and check it against the schema.

    Raises
    ------
    ModelFolderError
        If the folder is missing, is not an ivis model, is corrupt (naming the file and the
        field), holds a symlink where a file belongs, or was written by a newer format version.
    """
    manifest = _validated(_read_raw_manifest(folder), folder)
    for name in manifest["files"].values():
        path = os.path.join(os.fspath(folder), name)
        if os.path.islink(path):
            raise ModelFolderError(f"{path!r} is a symbolic link; a model folder holds its own files only.")
        if not os.path.isfile(path):
            raise ModelFolderError(f"The model folder {os.fspath(folder)!r} is incomplete: {name} is missing.")
    return manifest


def is_model_folder(folder):
    """True if ``folder`` is a directory with a readable ivis manifest (its format marker included)."""
    folder = os.fspath(folder)
    if os.path.islink(folder) or not os.path.isdir(folder):
        return False
    try:
        _parse_manifest(_read_raw_manifest(folder), folder)
    except ModelFolderError:
        return False
    return True


# ---------------------------------------------------------------------- reading a model


class ModelFolderContents:
    """One consistent snapshot of a model folder: its manifest and the bytes of its files."""

    def __init__(self, folder, manifest, files, damaged=()):
        self.folder = folder
        self.manifest = manifest
        self.files = files  # name -> bytes
        self.damaged = tuple(damaged)  # names whose bytes differ from the manifest's record

    def path(self, name):
        return os.path.join(self.folder, name)

    def verify(self):
        """Raise for the first file whose size and SHA-256 differ from the manifest's record.

        Called once the more specific checks (does the network load, does it fit the
        manifest) have had their say, so that their messages come first.
        """
        for name in self.damaged:
            what = "The optimizer state" if name == OPTIMIZER_FILE else "Cannot load the network"
            raise ModelFolderError(
                f"{what} {self.path(name)!r} is corrupt: its size and SHA-256 differ from those "
                f"{MANIFEST_FILE} records; the folder was damaged or assembled from different models."
            )


class _ChangedWhileReading(Exception):
    pass


def read_model_folder(folder):
    """Read a whole model folder into memory, checked, as one consistent snapshot.

    The manifest is validated against its schema; every file is read without following
    symlinks, within size bounds, and compared with the size and SHA-256 the manifest records
    (folders saved before checksums were recorded are compared with a second reading of
    the manifest instead). A folder replaced by another process while it is read is read
    again, so the result is one model, never the manifest of one and the weights of another.

    Raises
    ------
    ModelFolderError
        If the folder is unreadable, unsafe or corrupt, or keeps changing while it is read.
    """
    folder = os.fspath(folder)
    for attempt in range(LOAD_ATTEMPTS):
        raw = _read_raw_manifest(folder)
        manifest = _validated(raw, folder)
        try:
            files, damaged = _read_listed_files(folder, manifest, raw)
        except _ChangedWhileReading:
            time.sleep(0.05 * (attempt + 1))
            continue
        return ModelFolderContents(folder, manifest, files, damaged)
    raise ModelFolderError(
        f"The model folder {folder!r} kept changing while it was read: another process is saving "
        "to it. Load it once that save has finished."
    )


def _read_listed_files(folder, manifest, raw):
    checksums = manifest.get("checksums") or {}
    files, damaged = {}, []
    for name in manifest["files"].values():
        expected = checksums.get(name)
        data = _read_file(folder, name, MAX_FILE_BYTES, expected["bytes"] if expected else None)
        if expected and (data is None or hashlib.sha256(data).hexdigest() != expected["sha256"]):
            # Another save swapped the folder between the manifest and this file, or it is damaged.
            if _manifest_changed(folder, raw):
                raise _ChangedWhileReading
            damaged.append(name)
            if data is None:
                data = _read_file(folder, name, MAX_FILE_BYTES)
        files[name] = data
    if _manifest_changed(folder, raw):
        raise _ChangedWhileReading
    return files, damaged


def _manifest_changed(folder, raw):
    try:
        return _read_raw_manifest(folder) != raw
    except ModelFolderError:
        return True


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


# ------------------------------------------------------------------------------ writing


def _host_tag():
    return hashlib.sha256(socket.gethostname().encode("utf-8", "replace")).hexdigest()[:8]


def _work_name(name, kind):
    """A hidden sibling name that records which process on which host owns it."""
    return f".{name}.{kind}-{_host_tag()}-{os.getpid()}-{os.urandom(4).hex()}"


def _owner_is_gone(pid):
    if os.name != "posix":
        return False  # without a harmless liveness probe nothing is provably stale
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        return False
    return False


def _discard_ivis_files(folder):
    """Delete the files ivis writes from ``folder``, then the folder if that emptied it.

    Returns True if the folder is gone; anything else in it is left untouched.
    """
    for name in IVIS_FILES:
        path = os.path.join(folder, name)
        if os.path.lexists(path) and not os.path.isdir(path) or os.path.islink(path):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
    try:
        os.rmdir(folder)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def remove_stale_saves(folder):
    """Remove what saves to ``folder`` killed before they finished left next to it.

    Only work folders whose owner process, on this host, no longer runs are touched, and only
    the files ivis writes are deleted from them.
    """
    parent, name = os.path.split(os.path.abspath(os.fspath(folder)))
    pattern = re.compile(rf"^\.{re.escape(name)}\.(saving|replaced)-([0-9a-f]{{8}})-(\d+)-[0-9a-f]{{8}}$")
    try:
        entries = os.listdir(parent)
    except OSError:
        return
    host = _host_tag()
    for entry in entries:
        match = pattern.match(entry)
        path = os.path.join(parent, entry)
        if match and match.group(2) == host and not os.path.islink(path) and _owner_is_gone(int(match.group(3))):
            _discard_ivis_files(path)


def check_replaceable(folder):
    """Raise FileExistsError unless ``overwrite`` may replace ``folder``.

    Only an empty directory, or an ivis model folder (readable manifest with the ivis format
    marker) holding nothing but the files ivis writes, may be replaced.
    """
    folder = os.fspath(folder)
    if os.path.islink(folder):
        folder = os.path.realpath(folder)
    if not os.path.isdir(folder):
        raise FileExistsError(f"{folder} exists and is not an ivis model folder; refusing to replace it. Choose another path.")
    entries = os.listdir(folder)
    if not entries:
        return
    if not is_model_folder(folder):
        raise FileExistsError(
            f"{folder} is not an ivis model folder (it has no readable {MANIFEST_FILE} with format "
            f"{FORMAT_NAME!r}); refusing to replace it. Choose another path."
        )
    foreign = sorted(
        e for e in entries
        if e not in IVIS_FILES or os.path.islink(os.path.join(folder, e)) or os.path.isdir(os.path.join(folder, e))
    )
    if foreign:
        raise FileExistsError(
            f"The model folder {folder} also holds files ivis did not write ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); overwrite replaces only ivis's own files and never deletes "
            "others. Move them out of the folder, or save to another path."
        )


def _save_target(folder):
    """The real destination: a symlink to a folder saves into the folder it points to."""
    folder = os.path.abspath(os.fspath(folder))
    if os.path.islink(folder):
        target = os.path.realpath(folder)
        if not os.path.exists(target):
            raise FileExistsError(f"{folder} is a symbolic link to {target}, which does not exist. Choose another path.")
        return target
    return folder


def _file_record(path):
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
        size = handle.tell()
    return {"bytes": size, "sha256": digest.hexdigest()}


def write_model_folder(folder, manifest, encoder, head=None, optimizer_variables=None, overwrite=False):
    """Write a model folder atomically.

    Parameters
    ----------
    folder : str or PathLike
        Destination folder. A symlink to a model folder saves into the folder it points to
        (the link stays).
    manifest : dict
        JSON-serialisable metadata; format name and version, file list and checksums are
        added here, and file-system parameters (``annoy_index_path``) are left out.
    encoder, head : keras.Model
        The networks; ``head`` may be None.
    optimizer_variables : list of ndarray, optional
        Optimizer state, in ``optimizer.variables`` order.
    overwrite : bool, default=False
        Replace an existing model folder. Only an empty directory or an ivis model folder
        holding nothing but ivis's own files is ever replaced.

    Raises
    ------
    FileExistsError
        If ``folder`` exists (or another process creates it during the save) and ``overwrite``
        is False; or it exists and may not be replaced (see :func:`check_replaceable`).
    """
    folder = _save_target(folder)
    parent, name = os.path.split(folder)
    os.makedirs(parent, exist_ok=True)
    remove_stale_saves(folder)
    if os.path.lexists(folder):
        if not overwrite:
            raise FileExistsError(f"{folder} already exists. Pass overwrite=True to replace it, or choose another path.")
        check_replaceable(folder)
    staging = os.path.join(parent, _work_name(name, "saving"))
    os.mkdir(staging)  # mode 0o777 less the umask, like any folder the user creates
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
        params = dict(manifest.get("params") or {})
        for key in FILESYSTEM_PARAMS:
            params.pop(key, None)
        full_manifest = {
            "format": FORMAT_NAME, "format_version": FORMAT_VERSION, **manifest, "params": params, "files": files,
            "checksums": {f: _file_record(os.path.join(staging, f)) for f in files.values()},
        }
        with open(os.path.join(staging, MANIFEST_FILE), "w", encoding="utf-8") as handle:
            json.dump(full_manifest, handle, indent=2, default=_json_default)
            handle.flush()
            os.fsync(handle.fileno())
        _move_into_place(staging, folder, overwrite)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _renameat2(first, second, flags):
    """Linux ``renameat2``: 0 on success, else the errno (ENOSYS where unavailable)."""
    if not sys.platform.startswith("linux"):
        return errno.ENOSYS
    try:
        function = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return errno.ENOSYS
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    at_fdcwd = -100
    if function(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), flags) == 0:
        return 0
    return ctypes.get_errno()


_RENAME_NOREPLACE, _RENAME_EXCHANGE = 1, 2
_UNSUPPORTED = (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP)


def _place_new(staging, folder):
    """Rename ``staging`` to ``folder``, failing if anything holds that path by then."""
    taken = FileExistsError(
        f"{folder} was created by another process while this model was being saved; nothing was "
        "replaced. Pass overwrite=True to replace it, or choose another path."
    )
    result = _renameat2(staging, folder, _RENAME_NOREPLACE)
    if result == 0:
        return
    if result in (errno.EEXIST, errno.ENOTEMPTY):
        raise taken
    if result not in _UNSUPPORTED:
        raise OSError(result, os.strerror(result), folder)
    if os.name == "nt":
        try:
            os.rename(staging, folder)  # fails if the path exists
        except FileExistsError:
            raise taken from None
        return
    # POSIX rename replaces an empty directory: claim the path first, atomically.
    try:
        os.mkdir(folder)
    except FileExistsError:
        raise taken from None
    os.rename(staging, folder)


def _move_into_place(staging, folder, overwrite):
    if not overwrite or not os.path.lexists(folder):
        _place_new(staging, folder)
        return
    # An atomic swap means a process killed mid-save (a checkpoint, say) never leaves the
    # path without a complete model; elsewhere there is a short gap between two renames.
    result = _renameat2(staging, folder, _RENAME_EXCHANGE)
    if result == 0:
        retired = staging
    elif result == errno.ENOENT:
        _place_new(staging, folder)
        return
    else:
        if result not in _UNSUPPORTED:
            raise OSError(result, os.strerror(result), folder)
        retired = os.path.join(os.path.dirname(folder), _work_name(os.path.basename(folder), "replaced"))
        os.rename(folder, retired)
        try:
            os.rename(staging, folder)
        except BaseException:
            os.rename(retired, folder)
            raise
    if not _discard_ivis_files(retired):
        # Someone added a file to the old folder after it was checked: keep it, in plain sight.
        kept = f"{folder}.previous-{os.urandom(4).hex()}"
        os.rename(retired, kept)
        warnings.warn(f"Files added to {folder} while it was being replaced were kept in {kept}.", stacklevel=3)


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
