"""The neighbour stage of a fit: one interface over every way ivis finds neighbours.

:data:`SEARCHES` maps each ``neighbour_search`` name to its class, and
:class:`GivenNeighbours` serves a neighbour matrix the user passed; :func:`open_search` picks
one. A search returns the neighbours of a row source from :meth:`NeighbourSearch.find`, and
owns whatever it creates on disk (the Annoy index in a temporary folder): :meth:`close`
removes it, so a caller only has to close the search, whatever it was.

:data:`cluster_block_runner` says where the clustered search runs its per-cluster blocks:
unset, in this process; :func:`ivis.distributed.neighbours_on_dask` sets it for the fits in
its ``with`` block.
"""

import contextvars
import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ivis import _params
from ivis._seeds import stage_seed
from ivis.data.inputs import ArraySource, SparseSource

# The block runner of the clustered search (see clustered_neighbours' run_blocks); None: here.
cluster_block_runner = contextvars.ContextVar("ivis_cluster_block_runner", default=None)


@dataclass(frozen=True)
class NeighbourSettings:
    """The estimator's settings that neighbour search reads, resolved and checked."""

    k: int
    metric: str
    n_trees: int
    search_k: int
    precompute: bool
    index_path: Optional[str]
    build_index_on_disk: bool
    verbose: int
    seed: int


class NeighbourSearch:
    """Finds the neighbours of every row of a source; use it as a context manager.

    Attributes
    ----------
    precomputed : ndarray or None
        The neighbour matrix, when it was held in memory (the estimator's ``neighbour_matrix_``).
    """

    def __init__(self, settings):
        self.settings = settings
        self.precomputed = None

    def find(self, source):
        """The neighbours of the rows of ``source``: an ``(n_rows, k)`` array or a NeighbourMatrix."""
        raise NotImplementedError

    def close(self):
        """Release and delete what the search created; the neighbours may not be read afterwards."""

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


class GivenNeighbours(NeighbourSearch):
    """The neighbour matrix passed as ``neighbour_matrix``, checked against the data."""

    def __init__(self, settings, matrix):
        super().__init__(settings)
        self.matrix = matrix

    def find(self, source):
        neighbours = _params.check_neighbour_matrix(self.matrix, source.n_rows)
        self.precomputed = neighbours if isinstance(neighbours, np.ndarray) else None
        return neighbours


class AnnoySearch(NeighbourSearch):
    """Neighbours from an Annoy index: a given index file, or one built for this fit."""

    def __init__(self, settings):
        super().__init__(settings)
        self._matrix = None
        self._temporary_dir = None

    def find(self, source):
        settings = self.settings
        _params.check_k(settings.k, source.n_rows)
        self._matrix = self._open_index(source)
        if not settings.precompute:
            return self._matrix
        try:
            self.precomputed = self._matrix.get_neighbour_indices()
        finally:
            self.close()
        return self.precomputed

    def _open_index(self, source):
        from ivis.data.neighbour_retrieval.knn import AnnoyKnnMatrix

        settings = self.settings
        query = dict(k=settings.k, metric=settings.metric, search_k=settings.search_k)
        if settings.index_path is not None and os.path.isfile(settings.index_path):
            return AnnoyKnnMatrix.load(
                os.fspath(settings.index_path), source.shape, **query, verbose=settings.verbose > 0, data=source
            )
        if settings.index_path is not None:
            path = os.fspath(settings.index_path)
        else:
            self._temporary_dir = tempfile.mkdtemp(prefix="ivis-annoy-")
            path = os.path.join(self._temporary_dir, "annoy.index")
        # Without precompute, memory is what the user is saving: Annoy's tree building holds
        # about 32 bytes per row per thread, so the index is built with one thread.
        try:
            return AnnoyKnnMatrix.build(
                source, path, **query, ntrees=settings.n_trees, build_index_on_disk=settings.build_index_on_disk,
                verbose=settings.verbose, random_state=stage_seed(settings.seed, "annoy"),
                n_jobs=-1 if settings.precompute else 1,
            )
        except BaseException:
            self.close()
            raise

    def close(self):
        if self._matrix is not None:
            if self._temporary_dir is not None:
                self._matrix.delete_index(parent=True)
            else:
                self._matrix.unload()
            self._matrix = None
        if self._temporary_dir is not None:
            shutil.rmtree(self._temporary_dir, ignore_errors=True)
            self._temporary_dir = None


class ClusteredSearch(NeighbourSearch):
    """Exact neighbours within nearby clusters (:mod:`ivis.data.neighbour_retrieval.clustered`)."""

    def find(self, source):
        from ivis.data.neighbour_retrieval.clustered import clustered_neighbours

        settings = self.settings
        _params.check_k(settings.k, source.n_rows)
        if not isinstance(source, (ArraySource, SparseSource)):
            kind = type(source.data)
            raise ValueError(
                f"neighbour_search='clustered' needs X in memory, as a dense array or a SciPy sparse "
                f"matrix; X is a {kind.__module__}.{kind.__name__}. "
                "Load it as one if it fits in memory (np.asarray(X, dtype=np.float32)), or use "
                "neighbour_search='annoy' (the default), which reads data in chunks."
            )
        rows = source.data if isinstance(source, SparseSource) else source.data.reshape(source.n_rows, -1)
        self.precomputed = clustered_neighbours(
            rows, settings.k, settings.metric, random_state=stage_seed(settings.seed, "clusters"),
            verbose=settings.verbose > 0, run_blocks=cluster_block_runner.get(),
        )
        return self.precomputed


# neighbour_search name -> the class that implements it.
SEARCHES = {"annoy": AnnoySearch, "clustered": ClusteredSearch}


def open_search(name, settings, given=None):
    """The search for ``neighbour_search=name``, or for the ``given`` neighbour matrix if there is one."""
    if given is not None:
        return GivenNeighbours(settings, given)
    if name != "clustered" and cluster_block_runner.get() is not None:
        raise ValueError(
            f"Neighbours are to be found on a Dask cluster (ivis.distributed.neighbours_on_dask), "
            f"which runs neighbour_search='clustered' only; this fit has neighbour_search={name!r}. "
            "Set neighbour_search='clustered', or fit outside the with block."
        )
    return SEARCHES[name](settings)
