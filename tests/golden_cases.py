"""The fits whose embeddings the golden test pins, shared by the test and the script that writes them.

Every parameter is given explicitly, so that a later change of a library default does not
change what these cases compute.
"""

import numpy as np

PARAMS = dict(
    embedding_dims=2, k=8, distance="pn", batch_size=32, epochs=2, n_epochs_without_progress=20,
    n_trees=10, ntrees=None, knn_distance_metric="angular", search_k=-1, neighbour_search="annoy",
    precompute=True, negative_sampling="in_batch", model="szubert",
    supervision_metric="sparse_categorical_crossentropy", supervision_weight=0.5, validation_fraction=None,
    learning_rate=0.001, weight_decay=0.0, annoy_index_path=None, callbacks=None, build_index_on_disk=True,
    neighbour_matrix=None, verbose=0, random_state=7,
)

# name -> (parameters that differ from PARAMS, supervised)
CASES = {
    "annoy_in_batch": ({}, False),
    "annoy_all_rows": ({"negative_sampling": "all_rows"}, False),
    "annoy_not_precomputed": ({"precompute": False}, False),
    "clustered": ({"neighbour_search": "clustered"}, False),
    "given_matrix": ({"neighbour_matrix": "exact"}, False),
    "supervised_in_batch": ({}, True),
    "supervised_all_rows": ({"negative_sampling": "all_rows", "knn_distance_metric": "euclidean"}, True),
    "supervised_held_out": ({"validation_fraction": 0.2, "model": "maaten"}, True),
}
MODEL_FOLDER_CASE = "supervised_in_batch"


def golden_data():
    """300 rows in 3 clusters of 10 features, and their labels."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=300, n_features=10, centers=3, cluster_std=2.0, random_state=3)
    X = (X - X.min(axis=0)) / (X.max(axis=0) - X.min(axis=0))
    return X.astype(np.float32), y


def exact_neighbours(X, k):
    """Each row's ``k`` nearest other rows (Euclidean), as a matrix of indices."""
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k + 1).fit(X).kneighbors(X, return_distance=False)[:, 1:]


def fitted_case(name):
    """The :class:`ivis.Ivis` of case ``name``, fitted on :func:`golden_data`, and its embedding."""
    from ivis import Ivis

    overrides, supervised = CASES[name]
    X, y = golden_data()
    params = {**PARAMS, **overrides}
    if params["neighbour_matrix"] == "exact":
        params["neighbour_matrix"] = exact_neighbours(X, params["k"])
    model = Ivis(**params)
    embedding = model.fit_transform(X, y if supervised else None)
    return model, embedding
