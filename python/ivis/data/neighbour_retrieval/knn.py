"""Nearest-neighbour retrieval with an Annoy index.

The index is built from chunks of the data (so data that does not fit in memory can be
indexed, directly on disk), and neighbours of every row are extracted in parallel threads:
Annoy releases the GIL while it searches. Rows of a neighbour matrix never contain the row
itself: Annoy is asked for ``k + 1`` neighbours and the query point is dropped.
"""

import os
import shutil
from abc import abstractmethod
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from annoy import AnnoyIndex
from tqdm.auto import tqdm

from ivis._params import ANNOY_METRICS, check_metric, resolve_n_jobs  # noqa: F401 - ANNOY_METRICS re-exported
from ivis.data.inputs import as_row_source
from ivis.data.projection import (
    PROJECTED_MAX_TREES,
    REFINE_MIN_CHANGE,
    REFINE_PASSES,
    REFINE_THROUGH,
    RERANK_NNZ,
    ProjectedSource,
    add_shared_rare_columns,
    candidate_count,
    index_rows,
    index_width,
    refine_neighbours,
    rerank,
    uses_projection,
)


# Rows per task in parallel neighbour extraction: large enough to amortise scheduling.
_QUERY_CHUNK_ROWS = 2048


class NeighbourMatrix(Sequence):
    """A matrix whose row ``i`` lists the indices of the neighbours of data point ``i``."""

    @property
    @abstractmethod
    def k(self):
        """The width of the matrix (number of neighbours per row)."""

    def get_batch(self, idx_seq):
        """Return the neighbour rows for ``idx_seq`` as an ``(len(idx_seq), k)`` array.

        This default indexes row by row; subclasses override it with a vectorised version.
        """
        return np.asarray([self[int(i)] for i in idx_seq])


def build_annoy_index(
    X,
    path,
    metric="angular",
    ntrees=50,
    build_index_on_disk=True,
    verbose=1,
    n_jobs=-1,
    random_state=None,
):
    """Build an Annoy index of the rows of ``X`` and save it at ``path``.

    Parameters
    ----------
    X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
        The data, read in chunks; rows with several axes are flattened.
    path : str
        The file the index is written to.
    metric : str, default='angular'
        One of "angular", "euclidean", "manhattan", "hamming", "dot".
    ntrees : int, default=50
        Random-projection trees; more trees give better neighbours and a larger index. An
        index of projected rows has at most :data:`~ivis.data.projection.PROJECTED_MAX_TREES`.
    build_index_on_disk : bool, default=True
        Build the index in the file at ``path`` instead of in memory, for indexes larger
        than memory.
    verbose : int, default=1
        Above 0, show a progress bar while rows are added.
    n_jobs : int, default=-1
        Threads used to build the trees (-1: all cores); an index of projected rows is built
        by one.
    random_state : int, optional
        Seed of Annoy's random projections.

    Returns
    -------
    annoy.AnnoyIndex
        The built index, already saved at ``path``.
    """
    check_metric(metric)
    # Very wide sparse rows are indexed on a seeded random projection (ivis.data.projection).
    source = index_rows(as_row_source(X), metric, random_state)
    if isinstance(source, ProjectedSource):
        # Candidates from a projected index are re-ranked and refined exactly, so a few trees
        # suffice; one thread builds them in a fixed order, which keeps a seeded search
        # repeatable (trees built by several threads join the index in varying order).
        ntrees, n_jobs = min(int(ntrees), PROJECTED_MAX_TREES), 1
    index = AnnoyIndex(source.n_features, metric)
    if random_state is not None:
        index.set_seed(int(random_state))
    try:
        if build_index_on_disk:
            index.on_disk_build(path)
        _add_rows(index, source, verbose)
        index.build(int(ntrees), n_jobs=resolve_n_jobs(n_jobs))
        if not build_index_on_disk:
            index.save(path)
    except BaseException:
        # A half-built index must not stay behind: a later fit would take it for a finished one.
        index.unload()
        if os.path.exists(path):
            os.remove(path)
        raise
    return index


def _add_rows(index, source, verbose):
    """Add every row of ``source`` to ``index``, a chunk at a time, refusing non-finite values."""
    with tqdm(total=source.n_rows, desc="Building neighbour index", unit="rows", disable=verbose < 1, mininterval=1.0) as bar:
        for start, chunk in source.iter_chunks():
            chunk = chunk.reshape(len(chunk), -1)
            if not np.isfinite(chunk).all():
                source.check_finite()
            for offset, row in enumerate(chunk):
                index.add_item(start + offset, row)
            bar.update(len(chunk))


class AnnoyKnnMatrix(NeighbourMatrix):
    """Neighbours of every row, found with an Annoy index.

    Parameters
    ----------
    index : annoy.AnnoyIndex
        The index to query.
    nrows : int
        Number of rows the index was built on.
    index_path : str, default='annoy.index'
        Where the index file lives.
    metric : str, default='angular'
        The metric the index was built with.
    k : int, default=150
        Neighbours per row (the row itself excluded).
    search_k : int, default=-1
        Nodes inspected per query; -1 lets Annoy use ``n_trees * (k + 1)``.
    precompute : bool, default=False
        Extract every row's neighbours now and keep them in memory (``n_rows * k`` int32).
    include_distances : bool, default=False
        Make ``self[i]`` return ``(neighbours, distances)`` for an integer ``i``.
    verbose : bool, default=False
        Show progress while neighbours are extracted.
    n_jobs : int, default=-1
        Threads used for extraction (-1: all cores).
    """

    def __init__(
        self,
        index,
        nrows,
        index_path="annoy.index",
        metric="angular",
        k=150,
        search_k=-1,
        precompute=False,
        include_distances=False,
        verbose=False,
        n_jobs=-1,
    ):
        self.index = index
        self.n_features = int(index.f)
        self.nrows = int(nrows[0] if isinstance(nrows, tuple) else nrows)
        self.index_path = index_path
        self.metric = metric
        self._k = int(k)
        self.search_k = int(search_k)
        self.include_distances = include_distances
        self.verbose = verbose
        self.n_jobs = n_jobs
        self.precomputed_neighbours = None
        if precompute:
            self.precomputed_neighbours = self.get_neighbour_indices(n_jobs)

    @property
    def k(self):
        return self._k

    @classmethod
    def build(
        cls,
        X,
        path,
        k=150,
        metric="angular",
        search_k=-1,
        include_distances=False,
        ntrees=50,
        build_index_on_disk=True,
        precompute=False,
        verbose=1,
        n_jobs=-1,
        random_state=None,
    ):
        """Build an index on ``X`` at ``path`` and return the matrix that queries it.

        For very wide sparse ``X`` the index holds a random projection of the rows and the
        matrix is a :class:`ProjectedKnnMatrix`, which re-ranks
        candidates on the original rows (see :mod:`ivis.data.projection`).
        """
        index = build_annoy_index(
            X, path, metric=metric, ntrees=ntrees, build_index_on_disk=build_index_on_disk,
            verbose=verbose, n_jobs=n_jobs, random_state=random_state,
        )
        matrix_class, extra = projected_matrix_class(cls, X, metric)
        return matrix_class(
            index, X.shape[0], index_path=path, metric=metric, k=k, search_k=search_k, precompute=precompute,
            include_distances=include_distances, verbose=verbose, n_jobs=n_jobs, **extra,
        )

    @classmethod
    def load(
        cls,
        index_path,
        data_shape,
        k=150,
        metric="angular",
        search_k=-1,
        include_distances=False,
        precompute=False,
        verbose=1,
        n_jobs=-1,
        data=None,
    ):
        """Open the index saved at ``index_path`` for data of shape ``data_shape``.

        Pass the data itself as ``data`` when it may be very wide and sparse: its index then
        holds a random projection of the rows (see :mod:`ivis.data.projection`).

        Raises
        ------
        FileNotFoundError
            If there is no file at ``index_path``.
        ValueError
            If the index does not hold one item per row of the data.
        """
        check_metric(metric)
        if not os.path.isfile(index_path):
            raise FileNotFoundError(f"No Annoy index file at {index_path!r}.")
        n_features = int(np.prod(data_shape[1:]))
        matrix_class, extra = cls, {}
        if data is not None:
            n_features = index_width(as_row_source(data), metric)
            matrix_class, extra = projected_matrix_class(cls, data, metric)
        index = AnnoyIndex(n_features, metric)
        try:
            index.load(index_path)
        except OSError as error:
            raise ValueError(f"Cannot load the Annoy index at {index_path!r}: {error}.") from None
        n_items = index.get_n_items()
        if n_items != data_shape[0]:
            index.unload()
            raise ValueError(
                f"The Annoy index at {index_path!r} holds {n_items} items, but the data "
                f"has {data_shape[0]} rows. Build a new index for this data (annoy_index_path=None)."
            )
        return matrix_class(
            index, data_shape[0], index_path=index_path, metric=metric, k=k, search_k=search_k, precompute=precompute,
            include_distances=include_distances, verbose=verbose, n_jobs=n_jobs, **extra,
        )

    def __len__(self):
        return self.nrows

    def _query(self, row):
        """Neighbours of ``row`` without the row itself, padded to exactly ``k`` entries."""
        found = self.index.get_nns_by_item(int(row), self._k + 1, search_k=self.search_k)
        found = [n for n in found if n != row][: self._k]
        if len(found) < self._k:
            # A low search_k can return too few neighbours; repeat the ones found.
            found = (found or [int(row)]) * (self._k // max(len(found), 1) + 1)
        return found[: self._k]

    def _query_range(self, start, stop):
        return np.array([self._query(row) for row in range(start, stop)], dtype=np.int32).reshape(-1, self._k)

    def __getitem__(self, idx):
        if isinstance(idx, slice):
            return self.get_batch(range(*idx.indices(self.nrows)))
        if self.include_distances:
            return self.index.get_nns_by_item(int(idx), self._k + 1, search_k=self.search_k, include_distances=True)
        if self.precomputed_neighbours is not None:
            return self.precomputed_neighbours[idx]
        return np.asarray(self._query(int(idx)), dtype=np.int32)

    def get_batch(self, idx_seq):
        """Return the neighbours of the rows in ``idx_seq`` as a ``(len, k)`` int array."""
        idx_seq = np.asarray(idx_seq, dtype=np.int64)
        if self.precomputed_neighbours is not None:
            return self.precomputed_neighbours[idx_seq]
        return np.array([self._query(row) for row in idx_seq], dtype=np.int32).reshape(-1, self._k)

    def get_neighbour_indices(self, n_jobs=-1):
        """Return the ``(nrows, k)`` neighbour matrix, extracted in parallel threads.

        Annoy item ids are 32-bit, so the matrix is int32: ``4 * nrows * k`` bytes, the only
        structure of training whose size grows with the number of rows.
        """
        out = np.empty((self.nrows, self._k), dtype=np.int32)
        starts = range(0, self.nrows, _QUERY_CHUNK_ROWS)

        def fill(start):
            stop = min(start + _QUERY_CHUNK_ROWS, self.nrows)
            out[start:stop] = self._query_range(start, stop)
            return stop - start

        with tqdm(total=self.nrows, desc="Extracting neighbours", unit="rows", disable=not self.verbose, mininterval=1.0) as bar:
            with ThreadPoolExecutor(resolve_n_jobs(n_jobs)) as pool:
                for done in pool.map(fill, starts):
                    bar.update(done)
        return out

    def save(self, path):
        """Save the index to ``path``."""
        if os.path.isfile(self.index_path):
            # Annoy cannot re-save an index built on disk; its file is already complete.
            if os.path.abspath(path) != os.path.abspath(self.index_path):
                shutil.copyfile(self.index_path, path)
            return
        self.index.save(path)

    def unload(self):
        """Release the index file; this matrix can no longer query it afterwards."""
        self.index.unload()

    def delete_index(self, parent=False):
        """Unload the index and delete its file (and its folder when ``parent`` is True)."""
        self.unload()
        if parent:
            shutil.rmtree(os.path.dirname(os.path.abspath(self.index_path)), ignore_errors=True)
        elif os.path.exists(self.index_path):
            os.remove(self.index_path)

    def __getstate__(self):
        # An AnnoyIndex cannot be pickled; keep the path so that the index can be reloaded.
        state = self.__dict__.copy()
        state.pop("index", None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.index = None
        if os.path.isfile(self.index_path):
            self.index = AnnoyIndex(self.n_features, self.metric)
            self.index.load(self.index_path)


class ProjectedKnnMatrix(AnnoyKnnMatrix):
    """Neighbours of very wide sparse rows: Annoy on a projection, re-ranked exactly.

    The Annoy index holds the rows projected by :class:`~ivis.data.projection.ProjectedSource`. Each query asks it
    for :func:`~ivis.data.projection.candidate_count` candidates, which
    :func:`~ivis.data.projection.rerank` orders by their exact
    distance on the original rows; the ``k`` nearest are the neighbours. ``search_k`` applies
    to the candidate search (-1: Annoy's ``n_trees * (candidates + 1)``).

    Parameters
    ----------
    index, nrows, index_path, metric, k, search_k, precompute, include_distances, verbose, n_jobs
        As for :class:`AnnoyKnnMatrix`.
        ``include_distances`` gives the distances in the projection.
    source : SparseSource
        The original rows.
    """

    def __init__(self, index, nrows, *args, source=None, **kwargs):
        if source is None:
            raise ValueError("ProjectedKnnMatrix needs the original rows as source=.")
        self.source = as_row_source(source)
        super().__init__(index, nrows, *args, **kwargs)

    @property
    def n_candidates(self):
        """Candidates the index is asked for per row."""
        return candidate_count(self._k, self.nrows)

    @property
    def _rerank_rows(self):
        # Rows re-ranked per step, so that one step gathers about RERANK_NNZ non-zeros.
        nnz_per_row = max(1.0, self.source.data.nnz / max(1, self.nrows))
        return max(1, int(RERANK_NNZ // (self.n_candidates * nnz_per_row)))

    def _candidates(self, rows):
        out = np.full((len(rows), self.n_candidates), -1, dtype=np.int64)
        for i, row in enumerate(rows):
            found = self.index.get_nns_by_item(int(row), self.n_candidates + 1, search_k=self.search_k)
            found = [n for n in found if n != row][: self.n_candidates]
            out[i, : len(found)] = found
        return out

    def _neighbours_of(self, rows):
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self._k), dtype=np.int32)
        for start in range(0, len(rows), self._rerank_rows):
            part = rows[start:start + self._rerank_rows]
            out[start:start + len(part)] = rerank(
                self.source.data, part, self._candidates(part), self._k, self.metric
            )
        return out

    def _query(self, row):
        return self._neighbours_of([row])[0].tolist()

    def _query_range(self, start, stop):
        return self._neighbours_of(np.arange(start, stop))

    def get_batch(self, idx_seq):
        """Return the neighbours of the rows in ``idx_seq`` as a ``(len, k)`` int32 array."""
        idx_seq = np.asarray(idx_seq, dtype=np.int64)
        if self.precomputed_neighbours is not None:
            return self.precomputed_neighbours[idx_seq]
        return self._neighbours_of(idx_seq)

    def get_neighbour_indices(self, n_jobs=-1):
        """Return the ``(nrows, k)`` int32 neighbour matrix, completed and refined.

        After the parallel search, :func:`~ivis.data.projection.add_shared_rare_columns`
        offers each row the rows that share a rare column with it, and
        :func:`~ivis.data.projection.refine_neighbours` re-ranks each row's neighbours of
        neighbours, up to :data:`~ivis.data.projection.REFINE_PASSES` times (fewer once a
        pass changes under :data:`~ivis.data.projection.REFINE_MIN_CHANGE` of the entries),
        in single-threaded passes whose cost and gain in recall are measured in
        ``bench/OUT_OF_CORE.md``.
        """
        neighbours = super().get_neighbour_indices(n_jobs)
        nnz_per_row = max(1.0, self.source.data.nnz / max(1, self.nrows))
        width = self._k * (2 + min(REFINE_THROUGH, self._k))
        rows_per_step = max(1, int(RERANK_NNZ // (width * nnz_per_row)))
        add_shared_rare_columns(self.source.data, neighbours, self._k, self.metric, rows_per_step)
        for _ in range(REFINE_PASSES):
            before = neighbours.copy()
            refine_neighbours(self.source.data, neighbours, self._k, self.metric, rows_per_step)
            if np.mean(before != neighbours) < REFINE_MIN_CHANGE:
                break
        return neighbours


def projected_matrix_class(cls, data, metric):
    """The neighbour-matrix class for ``data`` and the extra arguments it takes.

    Parameters
    ----------
    cls : type
        The class asked for (an :class:`AnnoyKnnMatrix` subclass).
    data : object
        The data, anything :func:`~ivis.data.inputs.as_row_source` accepts.
    metric : str
        The Annoy metric.

    Returns
    -------
    (type, dict)
        ``(cls, {})``, or :class:`ProjectedKnnMatrix` and ``{'source': source}`` when the
        data is indexed on a projection.
    """
    source = as_row_source(data)
    if not uses_projection(source, metric):
        return cls, {}
    matrix_class = cls if issubclass(cls, ProjectedKnnMatrix) else ProjectedKnnMatrix
    return matrix_class, {"source": source}
