"""Destinations that embeddings can be streamed into, chunk by chunk.

:func:`open_output` turns what a user passes as ``out`` to
:meth:`ivis.Ivis.transform_to` into something that takes ``target[start:stop] = rows``
assignments, checking its shape first, and a function that completes the writing.
"""

import os

import numpy as np

from ivis.data.inputs import is_h5py_dataset

_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")


def _check_shape(out, shape, what):
    got = tuple(int(s) for s in out.shape)
    if got != tuple(shape):
        raise ValueError(
            f"The output {what} has shape {got}; the embedding needs shape {tuple(shape)} "
            "(rows of X x embedding dimensions)."
        )


def _check_float(dtype, what):
    if not np.issubdtype(np.dtype(dtype), np.floating):
        raise TypeError(f"The output {what} has dtype {dtype}; embeddings need a floating-point dtype.")


def _h5py_dataset_output(out, shape):
    if not out.id.valid:
        raise ValueError(
            "The output HDF5 dataset belongs to a closed file; keep its h5py.File open while writing."
        )
    if out.file.mode != "r+":
        raise ValueError(
            f"The output HDF5 dataset {out.name!r} is in a file opened read-only; open it with mode 'r+' or 'a'."
        )
    _check_shape(out, shape, f"HDF5 dataset {out.name!r}")
    _check_float(out.dtype, f"HDF5 dataset {out.name!r}")
    return out, out.file.flush


def _new_h5py_dataset(path, name, shape, chunk_rows):
    import h5py

    handle = h5py.File(path, "a")
    try:
        if name in handle:
            raise ValueError(
                f"{os.fspath(path)!r} already holds {name!r}. Choose another name, delete it, or pass the "
                "dataset itself (opened with mode 'r+') to overwrite it in place."
            )
        # Chunks of whole embedding rows, as many as one write covers: cheap appends and cheap
        # reads of row ranges later.
        chunks = (max(1, min(int(shape[0]), int(chunk_rows))), int(shape[1]))
        dataset = handle.create_dataset(name, shape=shape, dtype="float32", chunks=chunks)
    except BaseException:
        handle.close()
        raise
    return dataset, handle.close


def _array_output(out, shape):
    _check_shape(out, shape, "array")
    _check_float(out.dtype, "array")
    if not out.flags.writeable:
        raise ValueError("The output array is read-only (e.g. a memmap opened with mode 'r'); open it with 'r+' or 'w+'.")
    flush = getattr(out, "flush", None)
    return out, (flush if callable(flush) else (lambda: None))


def _npy_output(path, shape):
    array = np.lib.format.open_memmap(os.fspath(path), mode="w+", dtype=np.float32, shape=tuple(shape))
    return array, array.flush


def open_output(out, shape, chunk_rows):
    """Prepare ``out`` to receive an embedding of ``shape``, written row range by row range.

    Parameters
    ----------
    out : h5py.Dataset, (path, name), numpy.ndarray, numpy.memmap, str or os.PathLike
        An existing HDF5 dataset (in a file open for writing) of exactly ``shape``; a
        ``(file path, dataset name)`` pair, for a new float32 dataset of ``shape`` in that
        file (created if missing); an array or memmap of exactly ``shape``; or the path of a
        ``.npy`` file, created (or replaced) as a float32 memmap of ``shape``. Any other
        object with ``shape`` and ``__setitem__`` (a zarr array, say) of ``shape`` works too.
    shape : tuple of int
        ``(n_rows, embedding_dims)``.
    chunk_rows : int
        Rows per write (sets the chunk shape of a new HDF5 dataset).

    Returns
    -------
    target : object
        Supports ``target[start:stop] = rows``.
    finish : callable
        Flushes the writes, and closes a file opened here; call it once, even after an error.

    Raises
    ------
    ValueError
        For a shape other than ``shape``, a read-only or closed destination, an existing
        dataset of that name, or a path that is neither ``.npy`` nor paired with a dataset name.
    TypeError
        For a destination of non-floating dtype or of an unsupported type.
    """
    shape = tuple(int(s) for s in shape)
    if is_h5py_dataset(out):
        return _h5py_dataset_output(out, shape)
    if isinstance(out, tuple):
        if len(out) != 2 or not isinstance(out[0], (str, os.PathLike)) or not isinstance(out[1], str):
            raise TypeError("An HDF5 output given as a tuple must be (file path, dataset name).")
        return _new_h5py_dataset(out[0], out[1], shape, chunk_rows)
    if isinstance(out, np.ndarray):
        return _array_output(out, shape)
    if isinstance(out, (str, os.PathLike)):
        path = os.fspath(out)
        if path.lower().endswith(".npy"):
            return _npy_output(path, shape)
        if path.lower().endswith(_HDF5_SUFFIXES):
            raise ValueError(
                f"Name the dataset to create in {path!r}: pass out=({path!r}, 'embedding'), for example."
            )
        raise ValueError(f"Cannot tell how to write to {path!r}: give a .npy path or a (file.h5, dataset name) pair.")
    if hasattr(out, "shape") and hasattr(out, "__setitem__"):
        _check_shape(out, shape, type(out).__name__)
        return out, (lambda: None)
    raise TypeError(
        "out must be an h5py.Dataset, a (file path, dataset name) pair, a NumPy array or memmap, or a .npy "
        f"path; got {type(out).__name__}."
    )
