"""Nearest-neighbour retrieval: Annoy-based matrices, label-based neighbour maps, the clustered search.

:mod:`~ivis.data.neighbour_retrieval.search` is the registry a fit goes through: it picks the
search for ``neighbour_search`` (or a given matrix) and owns the files the search creates.
"""

from ivis.data.neighbour_retrieval.knn import AnnoyKnnMatrix, NeighbourMatrix, build_annoy_index
from ivis.data.neighbour_retrieval.labeled import LabeledNeighbourMap

__all__ = ["AnnoyKnnMatrix", "NeighbourMatrix", "LabeledNeighbourMap", "build_annoy_index"]
