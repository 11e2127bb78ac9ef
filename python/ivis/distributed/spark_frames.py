"""Spark DataFrames in ivis: an embedding column computed by a pandas UDF on the executors.

The model folder is shipped with :meth:`pyspark.SparkContext.addFile` (once per application;
Spark copies it to each executor once), and each Python worker loads it once through
:mod:`ivis.distributed.model_cache`. Rows travel to the workers in Arrow batches.
"""

import os

import numpy as np

from ivis.distributed.dask_arrays import check_row_shape, model_facts


def ship_folder(spark_context, folder):
    """Add the model ``folder`` to the files Spark sends to executors; returns its name there.

    Adding the same folder again does nothing. Spark names shipped files by their base name,
    so two different folders with one name cannot be shipped together.

    Raises
    ------
    ValueError
        If another folder of the same name was shipped already.
    """
    path = os.path.abspath(os.fspath(folder))
    name = os.path.basename(path)
    for uri in spark_context.listFiles:
        if os.path.basename(uri.rstrip("/")) == name:
            if uri.rstrip("/").endswith(path):
                return name
            raise ValueError(
                f"A model folder named {name!r} was already shipped from {uri}; Spark names shipped "
                "files by their base name. Save this model under another folder name."
            )
    spark_context.addFile(path, recursive=True)
    return name


def _input_as_array(df, input_col):
    """The column ``input_col`` as an array expression, or a clear error for other types."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if input_col not in df.columns:
        raise ValueError(f"The DataFrame has no column {input_col!r}; its columns are {df.columns}.")
    kind = df.schema[input_col].dataType
    if isinstance(kind, T.ArrayType) and isinstance(kind.elementType, T.NumericType):
        return F.col(input_col)
    if type(kind).__name__ == "VectorUDT":
        from pyspark.ml.functions import vector_to_array

        return vector_to_array(F.col(input_col), dtype="float32")
    raise TypeError(
        f"Column {input_col!r} has type {kind.simpleString()}; ivis embeds an array of numbers or an "
        "ML vector column. Assemble numeric columns into one first, e.g. with "
        "pyspark.ml.feature.VectorAssembler or pyspark.sql.functions.array."
    )


def _rows(values, input_col, width):
    """The Series of arrays ``values`` as a 2-D float32 array, checked row by row."""
    if values.isna().any():
        raise ValueError(
            f"Column {input_col!r} has null rows; drop them first: df.dropna(subset=[{input_col!r}])."
        )
    lengths = values.map(len).to_numpy()
    if len(lengths) and (lengths != width).any():
        bad = int(lengths[lengths != width][0])
        check_row_shape((bad,), (width,), name=f"Column {input_col!r}")
    return np.stack(values.to_numpy()).astype(np.float32)


def transform_spark(model_folder, df, input_col, output_col="embedding"):
    """Add the embedding of a vector or array column to a Spark DataFrame.

    Parameters
    ----------
    model_folder : str or PathLike
        A folder written by :meth:`ivis.Ivis.save_model`, on the driver's file system; it is
        shipped to the executors with ``SparkContext.addFile``.
    df : pyspark.sql.DataFrame
        The rows to embed.
    input_col : str
        A column of arrays of numbers or of ``pyspark.ml.linalg`` vectors, each as long as
        the model's rows.
    output_col : str, default='embedding'
        The new column: arrays of ``embedding_dims`` floats.

    Returns
    -------
    pyspark.sql.DataFrame
        ``df`` with ``output_col`` added; lazy, as Spark DataFrames are.

    Raises
    ------
    ValueError, TypeError
        For a missing column, a column of another type, or (when the job runs) rows of
        another length than the model's input or null rows.
    """
    import pandas as pd
    from pyspark import SparkFiles
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if not isinstance(model_folder, (str, os.PathLike)):
        raise TypeError(
            f"model_folder must be the path of a saved model folder; got {type(model_folder).__name__}. "
            "Save a fitted model first: model.save_model(path)."
        )
    _, input_shape, _ = model_facts(model_folder)
    if len(input_shape) != 1:
        raise ValueError(f"The model embeds rows of shape {input_shape}; Spark columns hold flat rows only.")
    width = int(input_shape[0])
    column = _input_as_array(df, input_col)
    name = ship_folder(df.sparkSession.sparkContext, model_folder)

    @F.pandas_udf(T.ArrayType(T.FloatType()))
    def embed(values: pd.Series) -> pd.Series:
        from ivis.distributed.model_cache import cached_model
        from ivis.estimator import load_model

        if not len(values):
            return pd.Series([], dtype=object)
        embedding = cached_model(SparkFiles.get(name), load_model).transform(_rows(values, input_col, width))
        return pd.Series(list(embedding))

    return df.withColumn(output_col, embed(column))
