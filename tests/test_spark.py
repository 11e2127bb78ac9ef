"""Spark DataFrames: an embedding column from a saved model, in local[2] mode."""

import numpy as np
import pytest

from conftest import saved_blobs_fixtures

pyspark = pytest.importorskip("pyspark")

from ivis.distributed import transform_spark  # noqa: E402


saved_blobs, rows, saved = saved_blobs_fixtures("spark-model", n_samples=600, n_features=6, centers=3)


def frame(spark, rows):
    return spark.createDataFrame([(i, row.tolist()) for i, row in enumerate(rows)], ["id", "features"])


def collected(df, column="embedding"):
    out = df.orderBy("id").select(column).toPandas()[column]
    return np.stack(out.to_numpy())


def test_array_column_embedding_equals_transform(spark, saved, rows):
    model, folder = saved
    df = frame(spark, rows).repartition(4)
    embedded = transform_spark(folder, df, "features")
    assert embedded.columns == ["id", "features", "embedding"]
    np.testing.assert_allclose(collected(embedded), model.transform(rows), atol=1e-5)
    # The folder is shipped once, however often it is used.
    again = transform_spark(folder, df, "features", output_col="e2")
    assert sum(uri.rstrip("/").endswith("spark-model") for uri in spark.sparkContext.listFiles) == 1
    np.testing.assert_allclose(collected(again, "e2"), model.transform(rows), atol=1e-5)


def test_vector_column_embedding_equals_transform(spark, saved, rows):
    from pyspark.ml.linalg import Vectors

    model, folder = saved
    df = spark.createDataFrame([(i, Vectors.dense(row.tolist())) for i, row in enumerate(rows[:50])], ["id", "v"])
    np.testing.assert_allclose(collected(transform_spark(folder, df, "v")), model.transform(rows[:50]), atol=1e-5)


def test_wrong_width_is_named_when_the_job_runs(spark, saved, rows):
    _, folder = saved
    df = frame(spark, rows[:20, :5])
    with pytest.raises(Exception, match=r"5 features.*expects rows of shape \(6,\)"):
        transform_spark(folder, df, "features").collect()


def test_bad_columns_and_models_are_named(spark, saved, rows):
    _, folder = saved
    df = frame(spark, rows[:5])
    with pytest.raises(ValueError, match="no column 'x'"):
        transform_spark(folder, df, "x")
    with pytest.raises(TypeError, match="VectorAssembler"):
        transform_spark(folder, df, "id")
    with pytest.raises(TypeError, match="save_model"):
        transform_spark(saved[0], df, "features")


def test_each_python_worker_loads_the_model_at_most_once(spark, saved, rows):
    _, folder = saved
    df = frame(spark, rows).repartition(6)
    transform_spark(folder, df, "features").collect()
    assert transform_spark(folder, df.limit(0), "features").collect() == []

    def report(batches):
        import os

        import pandas as pd

        from ivis.distributed import model_cache

        for _ in batches:
            counts = model_cache.load_counts()
            loads = sum(n for key, n in counts.items() if os.path.basename(key) == "spark-model")
            yield pd.DataFrame({"pid": [os.getpid()], "loads": [loads]})

    reports = spark.range(0, 8, numPartitions=4).mapInPandas(report, "pid long, loads long").toPandas()
    per_worker = reports.groupby("pid")["loads"].max()
    assert per_worker.max() == 1, per_worker.to_dict()
