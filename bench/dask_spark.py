"""Benchmarks of ivis on Dask and Spark: transform throughput, the neighbour stage, model shipping.

    PYTHONPATH=python .venv/bin/python bench/dask_spark.py [--rows 10000000] [--spark-rows N]
        [--workers 1 2 4] [--neighbour-rows 100000] [--out bench/results/distributed.json]

Transform: a default model (three dense layers of 128 units, 2-D embedding) trained on 2,000
rows of 12 features embeds ``--rows`` rows generated on the workers (Dask: a random array in
blocks of 250,000 rows; Spark: ``spark.range`` with twelve ``rand`` columns assembled into an
array column), summed there so that only a few numbers come back. Each configuration is
timed once after a warm-up pass that makes every worker load the model. The neighbour stage:
the clustered search of ``--neighbour-rows`` rows of 256 features (Gaussian blobs) in this
process, and with its blocks on 2 Dask worker processes. Model shipping: the packed folder's
size, the time to send it to every worker, and each worker's time to load it. Devices: 20
epochs on the digits (1,797 rows) on one and on two logical CPU devices
(``IVIS_TRAINING_DEVICES``), each in a fresh process.
"""

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import numpy as np

CHUNK_ROWS = 250_000
FEATURES = 12


def _model(folder):
    from sklearn.datasets import make_blobs

    from ivis import Ivis

    X, _ = make_blobs(n_samples=2000, n_features=FEATURES, centers=5, random_state=0)
    model = Ivis(k=15, epochs=2, verbose=0, random_state=0).fit(X.astype(np.float32))
    model.save_model(folder)
    return model


def _cluster(n_workers):
    from dask.distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None, memory_limit=None)
    return cluster, Client(cluster)


def dask_transform(folder, rows, workers):
    import dask.array as da

    from ivis.distributed import transform_dask

    results = []
    for n in workers:
        cluster, client = _cluster(n)
        try:
            X = da.random.default_rng(0).standard_normal((rows, FEATURES), chunks=(CHUNK_ROWS, FEATURES), dtype=np.float32)
            # Warm-up: every worker imports TensorFlow and loads the model on its first block.
            start = time.perf_counter()
            transform_dask(folder, X[: CHUNK_ROWS * n]).sum(axis=0).compute()
            warm_up = time.perf_counter() - start
            start = time.perf_counter()
            transform_dask(folder, X).sum(axis=0).compute()
            seconds = time.perf_counter() - start
        finally:
            client.close()
            cluster.close()
        results.append({"engine": "dask", "workers": n, "rows": rows, "seconds": seconds, "rows_per_second": rows / seconds,
                        "warm_up_seconds": warm_up})
        print(results[-1], flush=True)
    return results


def spark_transform(folder, rows, threads):
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from ivis.distributed import transform_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    results = []
    for n in threads:
        spark = (
            SparkSession.builder.master(f"local[{n}]").appName("ivis-bench").config("spark.ui.enabled", "false")
            .config("spark.driver.memory", "2g").getOrCreate()
        )
        spark.sparkContext.setLogLevel("ERROR")
        try:
            def frame(count):
                df = spark.range(count, numPartitions=max(n, count // CHUNK_ROWS))
                return df.select(F.array(*[F.rand(seed=i).cast("float") for i in range(FEATURES)]).alias("features"))

            def run(count):
                embedded = transform_spark(folder, frame(count), "features")
                return embedded.select(F.sum(F.col("embedding")[0])).collect()

            start = time.perf_counter()
            run(CHUNK_ROWS * n)
            warm_up = time.perf_counter() - start
            start = time.perf_counter()
            run(rows)
            seconds = time.perf_counter() - start
        finally:
            spark.stop()
        results.append({"engine": "spark", "workers": n, "rows": rows, "seconds": seconds, "rows_per_second": rows / seconds,
                        "warm_up_seconds": warm_up})
        print(results[-1], flush=True)
    return results


def _time_load(folder):
    from ivis import load_model

    start = time.perf_counter()
    load_model(folder)
    return time.perf_counter() - start


def _time_unpack_and_load(packed):
    from ivis.persistence import bytes_to_folder

    folder = tempfile.mkdtemp(prefix="ivis-bench-")
    try:
        start = time.perf_counter()
        bytes_to_folder(packed, folder)
        return time.perf_counter() - start + _time_load(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def model_shipping(folder, n_workers=2):
    from ivis.distributed.model_cache import pack_folder

    start = time.perf_counter()
    _, packed = pack_folder(folder)
    pack_seconds = time.perf_counter() - start
    cluster, client = _cluster(n_workers)
    try:
        client.run(lambda: __import__("ivis.nn"))  # TensorFlow's import is not the model's cost
        start = time.perf_counter()
        shipped = client.scatter(packed, broadcast=True)
        client.replicate(shipped)
        ship_seconds = time.perf_counter() - start
        loads = client.gather(client.map(_time_unpack_and_load, [shipped] * n_workers, pure=False,
                                         workers=list(client.scheduler_info()["workers"])[:n_workers], allow_other_workers=False))
        folder_loads = list(client.run(_time_load, folder).values())
    finally:
        client.close()
        cluster.close()
    result = {"packed_bytes": len(packed), "pack_seconds": pack_seconds, "ship_seconds_all_workers": ship_seconds,
              "unpack_and_load_seconds": loads, "load_from_folder_seconds": folder_loads, "workers": n_workers}
    print(result, flush=True)
    return result


def neighbour_stage(rows, n_workers=2, k=15):
    from sklearn.datasets import make_blobs

    from ivis.data.neighbour_retrieval.clustered import clustered_neighbours
    from ivis.distributed.dask_neighbours import dask_block_runner

    X, _ = make_blobs(n_samples=rows, n_features=256, centers=50, cluster_std=4.0, random_state=0)
    X = X.astype(np.float32)
    start = time.perf_counter()
    here = clustered_neighbours(X, k, random_state=0)
    here_seconds = time.perf_counter() - start
    cluster, client = _cluster(n_workers)
    try:
        client.run(lambda: __import__("ivis.data.neighbour_retrieval.clustered"))
        start = time.perf_counter()
        on_dask = clustered_neighbours(X, k, random_state=0, run_blocks=dask_block_runner(client))
        dask_seconds = time.perf_counter() - start
    finally:
        client.close()
        cluster.close()
    result = {"rows": rows, "features": 256, "k": k, "one_process_seconds": here_seconds, "dask_seconds": dask_seconds,
              "dask_workers": n_workers, "identical": bool(np.array_equal(here, on_dask))}
    print(result, flush=True)
    return result


# One fit in a fresh process on IVIS_TRAINING_DEVICES devices (two logical CPU devices made first).
DEVICE_FIT = r"""
import json, os, sys, time
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import numpy as np
from sklearn.datasets import load_digits
from sklearn.manifold import trustworthiness
from sklearn.model_selection import cross_val_score
from sklearn.neighbors import KNeighborsClassifier
from sklearn.preprocessing import MinMaxScaler
from ivis import Ivis
X, y = load_digits(return_X_y=True)
X = MinMaxScaler().fit_transform(X).astype(np.float32)
start = time.perf_counter()
model = Ivis(k=15, epochs=20, n_epochs_without_progress=100, batch_size=128, verbose=0, random_state=0).fit(X)
seconds = time.perf_counter() - start
embedding = model.transform(X)
print(json.dumps({"devices": int(os.environ["IVIS_TRAINING_DEVICES"]), "epochs": len(model.loss_history_),
                  "fit_seconds": seconds, "trustworthiness": float(trustworthiness(X, embedding, n_neighbors=10)),
                  "knn_accuracy": float(cross_val_score(KNeighborsClassifier(10), embedding, y, cv=3).mean())}))
"""


def training_devices():
    import subprocess

    results = []
    for n in (1, 2):
        env = dict(os.environ, IVIS_TRAINING_DEVICES=str(n), TF_CPP_MIN_LOG_LEVEL="2")
        out = subprocess.run([sys.executable, "-c", DEVICE_FIT], env=env, capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--spark-rows", type=int, default=None, help="rows for Spark (default: --rows)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--neighbour-rows", type=int, default=100_000)
    parser.add_argument("--parts", nargs="+", default=["shipping", "neighbours", "dask", "spark", "devices"])
    parser.add_argument("--out", default="bench/results/distributed.json")
    args = parser.parse_args()
    report = {"machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()}}
    if os.path.exists(args.out):
        with open(args.out) as f:
            report.update(json.load(f))
    folder = os.path.join(tempfile.mkdtemp(prefix="ivis-bench-"), "bench-model")
    try:
        _model(folder)
        if "shipping" in args.parts:
            report["shipping"] = model_shipping(folder)
        if "neighbours" in args.parts:
            report["neighbours"] = neighbour_stage(args.neighbour_rows)
        if "dask" in args.parts:
            report["dask"] = dask_transform(folder, args.rows, args.workers)
        if "spark" in args.parts:
            report["spark"] = spark_transform(folder, args.spark_rows or args.rows, args.workers)
        if "devices" in args.parts:
            report["devices"] = training_devices()
    finally:
        shutil.rmtree(os.path.dirname(folder), ignore_errors=True)
    with open(args.out, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
