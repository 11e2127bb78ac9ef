"""Import paths that users and the API reference name keep working when modules move.

Each name is imported from the path documented for it (or that earlier versions of this
package exposed), so a module split that forgets a re-export fails here.
"""

import importlib

import pytest

DOCUMENTED = {
    "ivis": ["Ivis", "load_model", "__version__"],
    "ivis.estimator": ["Ivis", "load_model", "EXPECTED_FAILED_CHECKS"],
    "ivis.data.neighbour_retrieval": ["AnnoyKnnMatrix", "NeighbourMatrix", "LabeledNeighbourMap", "build_annoy_index"],
    "ivis.data.neighbour_retrieval.knn": [
        "AnnoyKnnMatrix", "NeighbourMatrix", "build_annoy_index", "ANNOY_METRICS", "ProjectedKnnMatrix",
        "resolve_n_jobs", "check_metric",
    ],
    "ivis.data.neighbour_retrieval.clustered": ["clustered_neighbours", "check_clustered_metric", "CLUSTERED_METRICS"],
    "ivis.data.projection": ["refine_neighbours", "rerank", "PROJECTION_DIMS", "PROJECTION_MIN_FEATURES"],
    "ivis.data.sequence": ["IndexableDataset", "ImageDataset", "FlattenedImageDataset"],
    "ivis.data.sequence.sequence": ["IndexableDataset"],
    "ivis.data.sequence.image": ["ImageDataset", "FlattenedImageDataset"],
    "ivis.data.sequence.sqlite": ["SQLiteDataset"],
    "ivis.data.triplets": ["SHUFFLE_MODES", "sample_triplets"],
    "ivis.nn.callbacks": [
        "EmbeddingsImage", "EmbeddingsLogging", "ModelCheckpoint", "TensorBoardEmbeddingsImage", "EmbeddingPlateau",
        "sample_neighbours", "neighbour_preservation",
    ],
    "ivis.nn.losses": [
        "triplet_loss", "register_loss", "semi_supervised_loss", "ChebyshevPnLoss", "ChebyshevTripletLoss",
        "CosinePnLoss", "CosineTripletLoss", "EuclideanPnLoss", "EuclideanSoftmaxRatioLoss",
        "EuclideanSoftmaxRatioPnLoss", "EuclideanTripletLoss", "ManhattanPnLoss", "ManhattanTripletLoss",
    ],
    "ivis.persistence": [
        "ModelFolderError", "MANIFEST_FILE", "FILESYSTEM_PARAMS", "read_manifest", "read_model_folder",
        "is_model_folder", "write_model_folder", "check_replaceable", "remove_stale_saves", "random_states",
        "restore_random_states", "read_network", "read_optimizer_variables", "folder_to_bytes", "bytes_to_folder",
    ],
}


@pytest.mark.parametrize("module", sorted(DOCUMENTED))
def test_documented_names_import_from_their_documented_module(module):
    loaded = importlib.import_module(module)
    missing = [name for name in DOCUMENTED[module] if not hasattr(loaded, name)]
    assert not missing, f"{module} lacks {missing}"


def test_re_exported_names_are_the_very_objects_of_their_new_home():
    from ivis.data.neighbour_retrieval import knn
    from ivis.data.neighbour_retrieval.search import SEARCHES
    from ivis.nn import callbacks, plateau

    assert callbacks.EmbeddingPlateau is plateau.EmbeddingPlateau
    assert set(SEARCHES) == {"annoy", "clustered"}
    assert issubclass(knn.ProjectedKnnMatrix, knn.AnnoyKnnMatrix)
