"""Writing a model folder atomically, and replacing one without losing anything a user saved.

Saving writes a new folder next to the destination and renames it into place only when it
is complete (see :mod:`ivis.persistence` for the guarantees). Also here: packing a folder
into bytes and back, for pickling an estimator in memory.
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
import warnings
import zipfile

import numpy as np

from ivis._folder_reading import (
    ENCODER_FILE,
    FILESYSTEM_PARAMS,
    HEAD_FILE,
    IVIS_FILES,
    MANIFEST_FILE,
    OPTIMIZER_FILE,
    ModelFolderError,
    is_model_folder,
)
from ivis._manifest_schema import FORMAT_NAME, FORMAT_VERSION

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
