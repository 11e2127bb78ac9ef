"""Reading a model folder safely: raw files, the checked manifest, one consistent snapshot.

Every file is opened without following symlinks, within size bounds, and compared with the
size and SHA-256 the manifest records; a folder another process replaces while it is read is
read again. The manifest's fields are checked by :mod:`ivis._manifest_schema`. Building
networks from the bytes read here is :mod:`ivis._keras_archives`'s job.
"""

import errno
import hashlib
import json
import os
import time

from ivis._manifest_schema import (
    FORMAT_NAME,
    ROLE_FILES,
    ManifestFieldError,
    NewerFormatError,
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
LOAD_ATTEMPTS = 5


class ModelFolderError(ValueError):
    """A folder that is not a readable ivis model (missing, corrupt, unsafe, or too new)."""



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

