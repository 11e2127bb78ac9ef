"""One loaded model per worker process: models are looked up by folder, loaded on first use.

Tasks of a Dask graph or batches of a Spark job carry only a model reference (a folder path,
or the packed bytes of a folder that a scheduler ships to each worker once); the first task in
a process loads the model and later tasks reuse it.
"""

import hashlib
import os
import shutil
import tempfile
import threading

_models = {}
_load_counts = {}
_lock = threading.Lock()


def _load(key, folder, loader):
    model = loader(folder)
    _load_counts[key] = _load_counts.get(key, 0) + 1
    return model


def cached_model(folder, loader):
    """The model saved in ``folder``, loaded once per process.

    Parameters
    ----------
    folder : str or PathLike
        A model folder written by :meth:`ivis.Ivis.save_model`.
    loader : callable
        Loads a folder, e.g. :func:`ivis.load_model`; given by the caller, so that this
        module, which the estimator reaches, does not import the estimator.

    Returns
    -------
    Ivis
        Shared by every caller in this process: use it to embed, not to fit.
    """
    key = os.path.realpath(os.fspath(folder))
    with _lock:  # threads of one worker wait for the first load instead of repeating it
        if key not in _models:
            _models[key] = _load(key, key, loader)
        return _models[key]


def pack_folder(folder):
    """``(key, data)``: the bytes of a model folder and their SHA-256, to ship to workers."""
    from ivis.persistence import folder_to_bytes

    data = folder_to_bytes(folder)
    return "sha256:" + hashlib.sha256(data).hexdigest(), data


def cached_packed_model(key, data, loader):
    """The model packed by :func:`pack_folder`, unpacked and loaded once per process by ``loader``."""
    from ivis.persistence import bytes_to_folder

    with _lock:
        if key not in _models:
            folder = tempfile.mkdtemp(prefix="ivis-worker-model-")
            try:
                bytes_to_folder(data, folder)
                _models[key] = _load(key, folder, loader)
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return _models[key]


def load_counts():
    """How many times this process loaded each model: ``{folder or digest: count}``."""
    with _lock:
        return dict(_load_counts)


def clear():
    """Forget the models loaded in this process (the next use loads them again)."""
    with _lock:
        _models.clear()
        _load_counts.clear()
