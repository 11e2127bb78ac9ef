"""The documented unsupervised examples, as users wrote them (local data instead of downloads)."""

import numpy as np
import pytest

from ivis import Ivis


def test_quickstart(tmp_path, monkeypatch):
    from sklearn import datasets
    from sklearn.preprocessing import MinMaxScaler

    monkeypatch.chdir(tmp_path)
    iris = datasets.load_iris()
    X_scaled = MinMaxScaler().fit_transform(iris.data)
    model = Ivis(embedding_dims=2, k=15, epochs=5, verbose=0)
    embeddings = model.fit_transform(X_scaled)
    model.save_model("iris.ivis")
    assert embeddings.shape == (150, 2)
    assert (tmp_path / "iris.ivis" / "ivis.json").exists()


def test_iris_fit_then_transform():
    from sklearn.datasets import load_iris
    from sklearn.preprocessing import StandardScaler

    X = StandardScaler().fit_transform(load_iris().data)
    ivis = Ivis(k=15, epochs=5, verbose=0)
    ivis.fit(X)
    assert ivis.transform(X).shape == (150, 2)


def test_custom_base_network_on_image_arrays():
    import keras

    rng = np.random.default_rng(0)
    x_train = rng.random((256, 28, 28, 1)).astype("float32")

    def get_base_network(in_shape):
        inputs = keras.layers.Input(in_shape)
        x = keras.layers.Convolution2D(8, (3, 3), activation="relu", kernel_initializer="he_uniform")(inputs)
        x = keras.layers.MaxPool2D((2, 2))(x)
        x = keras.layers.Flatten()(x)
        x = keras.layers.Dense(32, activation="relu", kernel_initializer="he_uniform")(x)
        x = keras.layers.Dropout(0.5)(x)
        return keras.models.Model(inputs, x)

    base_model = get_base_network(x_train.shape[1:])
    ivis = Ivis(model=base_model, k=10, epochs=2, batch_size=64, verbose=0)
    ivis.fit(x_train)
    embeddings = ivis.transform(x_train)
    assert embeddings.shape == (256, 2)
    finetuned = ivis.model_.layers[3]
    np.testing.assert_allclose(finetuned.predict(x_train[:8], verbose=0), embeddings[:8], atol=1e-5)


def test_custom_knn_retrieval():
    from sklearn.datasets import load_iris
    from sklearn.neighbors import NearestNeighbors

    X = load_iris().data
    nn = NearestNeighbors(n_neighbors=15).fit(X)
    neighbours = nn.kneighbors(X, return_distance=False)
    ivis = Ivis(neighbour_matrix=neighbours, epochs=5, verbose=0)
    # The documented example lists each row among its own neighbours: it still trains, and
    # the user is told how to leave the row out.
    with pytest.warns(UserWarning, match=r"kneighbors\(\) without X"):
        ivis.fit(X)
    assert ivis.transform(X).shape == (150, 2)
