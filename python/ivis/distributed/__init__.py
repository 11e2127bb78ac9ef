"""Embedding data held by cluster engines users already run: Dask arrays and Spark DataFrames.

:func:`transform_dask` returns a lazy Dask array embedded block by block;
:func:`transform_spark` adds an embedding column to a Spark DataFrame. In both, each worker
process loads the saved model folder once (:mod:`ivis.distributed.model_cache`), so the
networks never travel inside the task graph. Dask and PySpark are optional dependencies
(``pip install ivis[dask]``, ``ivis[spark]``), imported only when these functions are called.
See ``docs/distributed.md``.
"""

__all__ = ["transform_dask", "transform_spark"]


def __getattr__(name):
    # Lazy: importing ivis.distributed loads neither Dask nor PySpark.
    if name == "transform_dask":
        from ivis.distributed.dask_arrays import transform_dask

        return transform_dask
    if name == "transform_spark":
        from ivis.distributed.spark_frames import transform_spark

        return transform_spark
    raise AttributeError(f"module 'ivis.distributed' has no attribute {name!r}")
