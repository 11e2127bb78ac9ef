"""Shared fixtures: small datasets and fast estimator settings."""

import os

import numpy as np
import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# Settings that train a usable model in a second or two on a few hundred rows.
FAST = dict(k=5, epochs=3, batch_size=32, verbose=0, random_state=0)


def array_dataset(data, requests=None):
    """``data`` behind the IndexableDataset interface: data ivis must treat as not in memory.

    With a list as ``requests``, every ``get_batch`` call appends the indices it was asked for.
    """
    from ivis.data.sequence import IndexableDataset

    class ArrayDataset(IndexableDataset):
        @property
        def shape(self):
            return data.shape

        def __getitem__(self, i):
            return data[i]

        def get_batch(self, idx):
            if requests is not None:
                requests.append(np.array(idx))
            return data[np.asarray(idx)]

    return ArrayDataset()


@pytest.fixture(scope="session")
def iris():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import MinMaxScaler

    data = load_iris()
    return MinMaxScaler().fit_transform(data.data).astype(np.float32), data.target


@pytest.fixture(scope="session")
def digits():
    from sklearn.datasets import load_digits
    from sklearn.preprocessing import MinMaxScaler

    data = load_digits()
    return MinMaxScaler().fit_transform(data.data).astype(np.float32), data.target


@pytest.fixture(scope="session")
def blobs():
    """Three well separated clusters: any working embedding keeps them apart."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=300, n_features=10, centers=3, cluster_std=1.0, random_state=0)
    return X.astype(np.float32), y


@pytest.fixture(scope="session")
def fitted_blobs(blobs):
    from ivis import Ivis

    X, _ = blobs
    return Ivis(**FAST).fit(X)


def saved_blobs_fixtures(folder_name, n_samples, n_features, centers):
    """Module fixtures ``rows`` (tight float32 blobs) and ``saved`` (``(model, folder)``: a
    one-epoch model of them saved to a folder named ``folder_name``)."""

    @pytest.fixture(scope="module", name="saved_blobs")
    def saved_blobs(tmp_path_factory):
        from sklearn.datasets import make_blobs

        from ivis import Ivis

        rows, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=0.5, random_state=0)
        rows = rows.astype(np.float32)
        folder = tmp_path_factory.mktemp(folder_name) / folder_name
        model = Ivis(**{**FAST, "epochs": 1}).fit(rows)
        model.save_model(str(folder))
        return rows, model, str(folder)

    @pytest.fixture(scope="module", name="rows")
    def rows(saved_blobs):
        return saved_blobs[0]

    @pytest.fixture(scope="module", name="saved")
    def saved(saved_blobs):
        return saved_blobs[1:]

    return saved_blobs, rows, saved


@pytest.fixture(scope="session")
def spark():
    """One local[2] Spark session for every test that needs one (Spark starts slowly)."""
    import sys

    pytest.importorskip("pyspark")
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master("local[2]").appName("ivis-tests")
        .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2")
        .config("spark.driver.memory", "1g").getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()
