"""ivis on cluster engines users already run: Dask arrays, Spark DataFrames, Dask neighbour search.

:func:`transform_dask` returns a lazy Dask array embedded block by block;
:func:`transform_spark` adds an embedding column to a Spark DataFrame. In both, each worker
process loads the saved model folder once (:mod:`ivis.distributed.model_cache`), so the
networks never travel inside the task graph. :func:`neighbours_on_dask` runs the clustered
neighbour search of fits as Dask tasks. Dask and PySpark are optional dependencies
(``pip install ivis[dask]``, ``ivis[spark]``), imported only when these functions are called.
See ``docs/distributed.md``.
"""

__all__ = ["neighbours_on_dask", "transform_dask", "transform_spark"]


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
    from ivis.distributed.dask_arrays import transform_dask as embed_lazily
    from ivis.estimator import load_model

    return embed_lazily(model, X, load_model)


def neighbours_on_dask(client):
    """Find the neighbours of the fits in the ``with`` block on a Dask cluster.

    Inside the block, ``Ivis(neighbour_search='clustered').fit(X)`` runs the clustered
    search's per-cluster blocks as tasks on ``client``'s workers; the clustering itself and
    training run in this process. The neighbours, and so the model, are identical to a fit
    outside the block with the same ``random_state``.

    Parameters
    ----------
    client : dask.distributed.Client
        The cluster's client. The data (``X``, a dense array in memory) is sent to it once.

    Returns
    -------
    context manager
        Yields ``client``.

    Raises
    ------
    TypeError
        If ``client`` is not a Dask client.
    ValueError
        From a fit in the block whose ``neighbour_search`` is not ``'clustered'`` (and that
        has no ``neighbour_matrix``): only the clustered search runs on Dask.

    Examples
    --------
    >>> with neighbours_on_dask(client):  # doctest: +SKIP
    ...     model = Ivis(neighbour_search="clustered", random_state=0).fit(X)
    """
    from ivis.distributed.dask_neighbours import neighbours_on_dask as on_dask

    return on_dask(client)


def __getattr__(name):
    # Lazy: importing ivis.distributed loads neither Dask nor PySpark.
    if name == "transform_spark":
        from ivis.distributed.spark_frames import transform_spark

        return transform_spark
    raise AttributeError(f"module 'ivis.distributed' has no attribute {name!r}")
