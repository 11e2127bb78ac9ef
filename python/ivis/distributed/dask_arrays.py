"""Dask arrays in ivis: a lazy, block-by-block ``transform`` and a row source for ``fit``.

:func:`transform_dask` maps each block of rows through the model with
:func:`dask.array.map_blocks`. A task carries only a reference to the model (the folder path,
or for an estimator in memory the packed folder, one key of the graph that Dask sends to each
worker once) and :mod:`ivis.distributed.model_cache` loads it once per worker process.

:class:`DaskArraySource` lets ``fit`` read a Dask array like any out-of-core input: only the
blocks holding requested rows are computed.
"""

import os

import numpy as np

from ivis.data.inputs import IndexedSource


def is_dask_array(X):
    """True for a :class:`dask.array.Array` (checked without importing Dask)."""
    return type(X).__module__.startswith("dask.array") and hasattr(X, "chunks") and hasattr(X, "map_blocks")


def whole_rows(X, name="X"):
    """``X`` rechunked, if needed, so that every block holds whole rows.

    Raises
    ------
    ValueError
        If ``X`` has fewer than two dimensions or a row count Dask does not know yet.
    """
    if X.ndim < 2:
        raise ValueError(
            f"{name} must be at least 2-dimensional (rows x features); got a Dask array of shape "
            f"{X.shape}. Reshape it: X.reshape(-1, 1) for a single feature."
        )
    if any(np.isnan(size) for size in X.shape):
        raise ValueError(
            f"{name} is a Dask array of unknown shape {X.shape}. Compute its chunk sizes first: "
            "X = X.compute_chunk_sizes()."
        )
    if any(len(chunks) > 1 for chunks in X.chunks[1:]):
        # A block must hold whole rows for the network to embed it: join the column blocks.
        X = X.rechunk({axis: -1 for axis in range(1, X.ndim)})
    return X


class DaskArraySource(IndexedSource):
    """A Dask array read on demand: a batch computes only the blocks holding its rows."""

    def __init__(self, data, name="X"):
        super().__init__(whole_rows(data, name), name)

    def _read_unique(self, unique):
        # One graph per batch: Dask's fancy indexing touches only the blocks of these rows.
        return self._check_rows(self.data[unique].compute(), unique)

    def read_range(self, start, stop):
        return self._check_rows(self.data[start:stop].compute(), np.arange(start, stop))


def model_facts(model):
    """``(reference, input_shape, embedding_dims)`` of a model folder or a fitted estimator."""
    from ivis.estimator import Ivis

    if isinstance(model, Ivis):
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(model, "encoder_")
        return None, tuple(model.input_shape_), int(model.embedding_dims)
    if isinstance(model, (str, os.PathLike)):
        from ivis.persistence import read_manifest

        manifest = read_manifest(model)
        return os.path.abspath(os.fspath(model)), tuple(manifest["fitted"]["input_shape"]), int(
            manifest["params"]["embedding_dims"]
        )
    raise TypeError(
        f"model must be the path of a saved model folder or a fitted ivis.Ivis; got {type(model).__name__}."
    )


def _packed(model):
    """The estimator's folder packed as ``(key, bytes)``, written to a temporary folder first."""
    import shutil
    import tempfile

    from ivis.distributed.model_cache import pack_folder

    folder = tempfile.mkdtemp(prefix="ivis-pack-")
    try:
        model.save_model(os.path.join(folder, "model"))
        return pack_folder(os.path.join(folder, "model"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _embed_folder_block(block, folder):
    from ivis.distributed.model_cache import cached_model

    return cached_model(folder).transform(block)


def _embed_packed_block(block, packed):
    from ivis.distributed.model_cache import cached_packed_model

    return cached_packed_model(*packed).transform(block)


def check_row_shape(row_shape, expected, name="X"):
    """Raise ``ValueError`` naming both widths if rows of ``row_shape`` do not fit the model."""
    if tuple(row_shape) != tuple(expected):
        raise ValueError(
            f"{name} has rows of shape {tuple(row_shape)} ({int(np.prod(row_shape))} features), but the "
            f"model expects rows of shape {tuple(expected)} ({int(np.prod(expected))} features), as in fit. "
            "Pass data with the same columns, in the same order."
        )


def transform_dask(model, X):
    """Embed a Dask array lazily, one block of rows per task.

    Parameters
    ----------
    model : str, PathLike or Ivis
        The path of a saved model folder (read by every worker: a path all workers see, such
        as shared storage), or a fitted estimator (then its folder is packed into the graph
        once, and Dask sends it to each worker once).
    X : dask.array.Array
        Rows of the shape the model was fitted on. Blocks that split a row's columns are
        joined (``X.rechunk({1: -1})``) first.

    Returns
    -------
    dask.array.Array of shape (n_samples, embedding_dims), float32
        Lazy: nothing is computed until ``.compute()`` (or ``.persist()``, ``.to_zarr()``...).
        Each worker process loads the model once, on its first block.

    Raises
    ------
    ValueError
        If the rows of ``X`` have another shape than the model's input.
    """
    import dask

    reference, input_shape, embedding_dims = model_facts(model)
    X = whole_rows(X)
    check_row_shape(X.shape[1:], input_shape)
    if reference is None:
        embed, reference = _embed_packed_block, dask.delayed(_packed(model), pure=True)
    else:
        embed = _embed_folder_block
    return X.map_blocks(
        embed, reference, chunks=(X.chunks[0], (embedding_dims,)), drop_axis=list(range(2, X.ndim)),
        dtype=np.float32, meta=np.empty((0, embedding_dims), dtype=np.float32),
    )
