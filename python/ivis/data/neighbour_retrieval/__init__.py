"""Nearest-neighbour retrieval: Annoy-based matrices and label-based neighbour maps."""

from ivis.data.neighbour_retrieval.knn import AnnoyKnnMatrix, NeighbourMatrix, build_annoy_index
from ivis.data.neighbour_retrieval.labeled import LabeledNeighbourMap

__all__ = ["AnnoyKnnMatrix", "NeighbourMatrix", "LabeledNeighbourMap", "build_annoy_index"]
