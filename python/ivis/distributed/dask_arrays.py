"""Dask arrays in ivis: a lazy, block-by-block ``transform`` and a row source for ``fit``.

:func:`transform_dask` maps each block of rows through the model with
:func:`dask.array.map_blocks`. A task carries only a reference to the model (the folder path,
or for an estimator in memory the packed folder, one key of the graph that Dask sends to each
worker once) and :mod:`ivis.distributed.model_cache` loads it once per worker process.

:class:`ivis.data.dask_source.DaskArraySource` lets ``fit`` read a Dask array like any
out-of-core input.
"""

import os

import numpy as np

from ivis.data.dask_source import whole_rows


def model_facts(model):
    """``(reference, input_shape, embedding_dims)`` of a model folder or a fitted estimator."""
    # An estimator is recognised by what is used of it: this module does not import ivis.estimator.
    if hasattr(model, "save_model") and hasattr(model, "embedding_dims"):
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


def _embed_folder_block(block, folder, loader):
    from ivis.distributed.model_cache import cached_model

    return cached_model(folder, loader).transform(block)


def _embed_packed_block(block, packed, loader):
    from ivis.distributed.model_cache import cached_packed_model

    return cached_packed_model(*packed, loader).transform(block)


def check_row_shape(row_shape, expected, name="X"):
    """Raise ``ValueError`` naming both widths if rows of ``row_shape`` do not fit the model."""
    if tuple(row_shape) != tuple(expected):
        raise ValueError(
            f"{name} has rows of shape {tuple(row_shape)} ({int(np.prod(row_shape))} features), but the "
            f"model expects rows of shape {tuple(expected)} ({int(np.prod(expected))} features), as in fit. "
            "Pass data with the same columns, in the same order."
        )


def transform_dask(model, X, loader):
    """Embed a Dask array lazily, one block of rows per task; see :func:`ivis.distributed.transform_dask`.

    ``loader`` loads a model folder on the workers (:func:`ivis.load_model`): it travels in
    the graph by reference, so that this module does not import the estimator that calls it.
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
        embed, reference, loader, chunks=(X.chunks[0], (embedding_dims,)), drop_axis=list(range(2, X.ndim)),
        dtype=np.float32, meta=np.empty((0, embedding_dims), dtype=np.float32),
    )
