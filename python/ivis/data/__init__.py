"""Data access for ivis: input connectors, neighbour retrieval and triplet sampling."""
