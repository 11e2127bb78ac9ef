"""Neighbour search on a seeded random projection of very wide sparse data.

An Annoy index stores every row densely: a sparse matrix of 1,000,000 rows and 78,498
columns would take 78,498 x 10^6 x 4 bytes (about 292 GiB) of index, however few non-zeros it
has. When a sparse input is wider than :data:`PROJECTION_MIN_FEATURES` and the metric is one
that random projections preserve (angular, Euclidean, dot product), the index is built on
the rows multiplied by a fixed random sign matrix of :data:`PROJECTION_DIMS` columns instead.
By the Johnson-Lindenstrauss lemma inner products, norms and hence angles and Euclidean
distances are kept up to a small random error (about ``1 / sqrt(PROJECTION_DIMS)`` in
cosine), so neighbours found in the projection are, up to near-ties, those of the original
rows. Projecting costs ``O(nnz x PROJECTION_DIMS)`` time, and the sign matrix
``n_features x PROJECTION_DIMS`` float32 memory (20 MB for 78,498 columns), independent of the
number of rows. The index has at most :data:`PROJECTED_MAX_TREES` trees.

An approximate index searched for only ``k`` neighbours loses many true neighbours of such
data (near-ties are common, and small projection errors reorder them), so the index is asked
for :func:`candidate_count` candidates per row instead, and these are re-ranked by their
exact distance on the original sparse rows; the ``k`` best are kept. Re-ranking costs
``O(candidates x nnz per row)`` per row: linear in the number of rows, with no structure
growing with them beyond the neighbour matrix itself. A precomputed neighbour matrix is then
completed with the rows that share a rare column (:func:`add_shared_rare_columns`: an
inverted index over the columns few rows have, which a projection blurs most) and refined
in passes through neighbours of neighbours (:func:`refine_neighbours`).

Only neighbour retrieval sees the projection; the network is trained on the original rows.
This module holds the arithmetic; the neighbour matrix that queries a projected index is
:class:`~ivis.data.neighbour_retrieval.knn.ProjectedKnnMatrix`.
"""

import numpy as np
import scipy.sparse

from ivis.data.inputs import DEFAULT_CHUNK_ROWS, RowSource, SparseSource

# Sparse inputs with more columns than this are indexed on a projection. Below it a dense
# index row costs at most 16 KiB, and exact rows keep every near-tie in order.
PROJECTION_MIN_FEATURES = 4096
# Columns of the projection: cosine error about 1/8, index rows of 256 bytes. The projected
# index only proposes candidates; exact re-ranking, rows sharing rare columns and passes
# through neighbours of neighbours make up for its coarser distances, at a fraction of the
# cost of 256 columns on millions of rows (bench/OUT_OF_CORE.md, "Millions of rows").
PROJECTION_DIMS = 64
# Trees of a projected index, at most (whatever n_trees asks for).
PROJECTED_MAX_TREES = 10
# Metrics whose neighbours a random (Johnson-Lindenstrauss) projection keeps.
PROJECTABLE_METRICS = ("angular", "euclidean", "dot")
# Candidates re-ranked per row: max(CANDIDATES_PER_NEIGHBOUR * k, MIN_CANDIDATES).
CANDIDATES_PER_NEIGHBOUR = 4
MIN_CANDIDATES = 60
# Non-zeros gathered per re-ranking step, which bounds its temporary memory (~50 MB).
RERANK_NNZ = 2_000_000
# Precomputed neighbours are refined through the lists of each row's nearest REFINE_THROUGH
# neighbours and its reverse neighbours (k + REFINE_THROUGH * k + k candidates, re-ranked
# exactly), in up to REFINE_PASSES passes; a pass that changes fewer than REFINE_MIN_CHANGE of
# the entries is the last. On 1,000,000 prime-factor rows the first two passes (without
# reverse neighbours) raised the tie-aware recall by 0.11 and 0.03 (bench/OUT_OF_CORE.md).
REFINE_THROUGH = 8
REFINE_PASSES = 3
REFINE_MIN_CHANGE = 0.01
# Columns with at most this many non-zero rows are rare: rows sharing one are offered to each
# other as candidates (at most MAX_SHARED_CANDIDATES per row) before the refinement.
RARE_COLUMN_ROWS = 64
MAX_SHARED_CANDIDATES = 512


def uses_projection(source, metric):
    """Whether neighbours of ``source`` are searched on a random projection.

    Parameters
    ----------
    source : RowSource
        The data, as :func:`~ivis.data.inputs.as_row_source` wraps it.
    metric : str
        The Annoy metric.

    Returns
    -------
    bool
        True for sparse data wider than :data:`PROJECTION_MIN_FEATURES` searched with a
        metric in :data:`PROJECTABLE_METRICS`.
    """
    return (
        isinstance(source, SparseSource)
        and source.n_features > PROJECTION_MIN_FEATURES
        and metric in PROJECTABLE_METRICS
    )


def index_width(source, metric):
    """Number of values per row in the neighbour index of ``source``.

    Parameters
    ----------
    source : RowSource
        The data.
    metric : str
        The Annoy metric.

    Returns
    -------
    int
    """
    return PROJECTION_DIMS if uses_projection(source, metric) else source.n_features


def random_signs(n_features, n_components, seed):
    """The projection matrix: independent random signs scaled by ``1 / sqrt(n_components)``.

    Parameters
    ----------
    n_features, n_components : int
        Shape of the matrix.
    seed : int or None
        Seed; the same seed gives the same matrix.

    Returns
    -------
    ndarray of float32, shape (n_features, n_components)
    """
    rng = np.random.default_rng(seed)
    out = np.empty((n_features, n_components), dtype=np.float32)
    scale = np.float32(1.0 / np.sqrt(n_components))
    # Filled in blocks so that the integer draws never need a second full-size buffer.
    for start in range(0, n_features, 8192):
        stop = min(start + 8192, n_features)
        signs = rng.integers(0, 2, size=(stop - start, n_components), dtype=np.int8)
        out[start:stop] = (2 * signs - 1) * scale
    return out


class ProjectedSource(RowSource):
    """The rows of a sparse source multiplied by a seeded random sign matrix.

    Parameters
    ----------
    source : SparseSource
        The sparse rows.
    n_components : int, default=PROJECTION_DIMS
        Width of the projected rows.
    seed : int, optional
        Seed of the sign matrix.
    """

    in_memory = True

    def __init__(self, source, n_components=PROJECTION_DIMS, seed=None):
        super().__init__(source.data, (source.n_rows, int(n_components)), source.name)
        self.source = source
        self.components = random_signs(source.n_features, int(n_components), seed)

    def _project(self, rows):
        return np.asarray(rows @ self.components, dtype=np.float32)

    def get_batch(self, indices):
        return self._project(self.source.data[np.asarray(indices)])

    def read_range(self, start, stop):
        return self._project(self.source.data[start:stop])

    def check_finite(self, chunk_rows=DEFAULT_CHUNK_ROWS):
        self.source.check_finite(chunk_rows)


def index_rows(source, metric, seed=None):
    """The rows to build the neighbour index of ``source`` on.

    Parameters
    ----------
    source : RowSource
        The data.
    metric : str
        The Annoy metric.
    seed : int, optional
        Seed of the projection, when one is used.

    Returns
    -------
    RowSource
        ``source`` itself, or a :class:`ProjectedSource` of it (see :func:`uses_projection`).
    """
    if uses_projection(source, metric):
        return ProjectedSource(source, PROJECTION_DIMS, seed)
    return source


def candidate_count(k, n_rows):
    """Candidates fetched from the projected index and re-ranked, per row.

    Parameters
    ----------
    k : int
        Neighbours wanted per row.
    n_rows : int
        Rows in the data (a row is never its own candidate).

    Returns
    -------
    int
        ``min(n_rows - 1, max(CANDIDATES_PER_NEIGHBOUR * k, MIN_CANDIDATES))``, at least ``k``.
    """
    return max(int(k), min(int(n_rows) - 1, max(CANDIDATES_PER_NEIGHBOUR * int(k), MIN_CANDIDATES)))


def _first_occurrences(candidates):
    """``candidates`` with repeated entries of a row (after the first) set to -1."""
    order = np.argsort(candidates, axis=1, kind="stable")
    ordered = np.take_along_axis(candidates, order, axis=1)
    repeated = np.zeros(candidates.shape, dtype=bool)
    repeated[:, 1:] = ordered[:, 1:] == ordered[:, :-1]
    out = candidates.copy()
    rows = np.broadcast_to(np.arange(len(candidates))[:, None], candidates.shape)
    out[rows[repeated], order[repeated]] = -1
    return out


def _reverse_neighbours(neighbours, width):
    """For each row, the first ``width`` rows (in row order) that list it as a neighbour; -1 pads."""
    n_rows, k = neighbours.shape
    listed = neighbours.ravel()
    order = np.argsort(listed, kind="stable")
    targets = listed[order].astype(np.int64)
    position = np.arange(len(listed)) - np.searchsorted(targets, targets)
    keep = position < width
    out = np.full((n_rows, width), -1, dtype=np.int32)
    out[targets[keep], position[keep]] = order[keep] // k
    return out


def refine_neighbours(data, neighbours, k, metric, rows_per_step=2048):
    """Improve a neighbour matrix in place with one pass over neighbours of neighbours.

    A neighbour of a neighbour is likely a neighbour, and so is a row that lists this one
    (a reverse neighbour): each row's candidates are its own neighbours, those of its
    :data:`REFINE_THROUGH` nearest ones and up to ``k`` reverse neighbours, re-ranked exactly
    on the original rows. Rows are refined in order, in place, so that later rows already use
    improved lists; the result is deterministic. Time is linear in the number of rows; the
    reverse lists take ``n_rows x k`` int32 more.

    Parameters
    ----------
    data : scipy.sparse.csr_matrix
        The original rows.
    neighbours : ndarray of int, shape (n_rows, k)
        Neighbours of every row, nearest first; updated in place.
    k : int
        Neighbours per row.
    metric : {'angular', 'euclidean', 'dot'}
        Distance to rank by.
    rows_per_step : int, default=2048
        Rows re-ranked together (bounds the temporary memory).

    Returns
    -------
    ndarray
        ``neighbours``.
    """
    through = min(REFINE_THROUGH, neighbours.shape[1])
    reverse = _reverse_neighbours(neighbours, k)
    for start in range(0, len(neighbours), rows_per_step):
        rows = np.arange(start, min(start + rows_per_step, len(neighbours)))
        own = neighbours[rows].astype(np.int64)
        candidates = np.concatenate(
            [own, neighbours[own[:, :through]].reshape(len(rows), -1), reverse[rows]], axis=1
        ).astype(np.int64)
        candidates[candidates == rows[:, None]] = -1
        neighbours[rows] = rerank(data, rows, _first_occurrences(candidates), k, metric)
    return neighbours


def _shared_rare_columns(pattern, rows):
    """For each of ``rows``, the other rows that share a non-zero column of ``pattern`` with it.

    ``pattern`` holds ones at the non-zeros of the rare columns. Returns an int64 matrix padded
    with -1, at most :data:`MAX_SHARED_CANDIDATES` per row (those sharing the most columns).
    """
    shared = (pattern[rows] @ pattern.T).tocoo()
    keep = rows[shared.row] != shared.col
    owner, other, count = shared.row[keep], shared.col[keep], shared.data[keep]
    order = np.lexsort((-count, owner))
    owner, other = owner[order], other[order]
    position = np.arange(len(owner)) - np.searchsorted(owner, owner)
    within = position < MAX_SHARED_CANDIDATES
    width = int(position[within].max()) + 1 if within.any() else 1
    out = np.full((len(rows), width), -1, dtype=np.int64)
    out[owner[within], position[within]] = other[within]
    return out


def add_shared_rare_columns(data, neighbours, k, metric, rows_per_step=2048):
    """Offer every row the rows that share one of its rare columns, in place.

    A column that few rows have (at most :data:`RARE_COLUMN_ROWS`) says much about them: under
    angular and Euclidean distances, rows sharing it are often among each other's nearest, yet
    a random projection spreads its weight over every component, so a projected index tends to
    miss them. An inverted index over the rare columns lists them all at a cost of at most
    ``RARE_COLUMN_ROWS`` pairs per non-zero; they are re-ranked exactly with each row's
    current neighbours and the ``k`` nearest kept.

    Takes and returns what :func:`refine_neighbours` does (``neighbours`` updated in place).
    """
    counts = np.bincount(data.indices, minlength=data.shape[1])
    rare = (counts <= RARE_COLUMN_ROWS)[data.indices] & (data.data != 0)
    if not rare.any():
        return neighbours
    indptr = np.concatenate([[0], np.cumsum(rare)])[data.indptr]
    pattern = scipy.sparse.csr_matrix(
        (np.ones(int(rare.sum()), dtype=np.float32), data.indices[rare], indptr), shape=data.shape
    )
    nnz_per_row = max(1.0, data.nnz / max(1, data.shape[0]))
    for start in range(0, len(neighbours), rows_per_step):
        rows = np.arange(start, min(start + rows_per_step, len(neighbours)))
        candidates = np.concatenate([neighbours[rows].astype(np.int64), _shared_rare_columns(pattern, rows)], axis=1)
        candidates = _first_occurrences(candidates)
        # Re-ranked in parts of at most RERANK_NNZ gathered non-zeros, however many are shared.
        part = max(1, int(RERANK_NNZ // (candidates.shape[1] * nnz_per_row)))
        for first in range(0, len(rows), part):
            some = slice(first, first + part)
            neighbours[rows[some]] = rerank(data, rows[some], candidates[some], k, metric)
    return neighbours


def _row_sums(matrix, shape):
    return np.asarray(matrix.sum(axis=1), dtype=np.float64).reshape(shape)


def rerank(data, rows, candidates, k, metric):
    """Keep the ``k`` candidates of each row nearest to it on the original sparse rows.

    Parameters
    ----------
    data : scipy.sparse.csr_matrix
        The original rows.
    rows : ndarray of int, shape (b,)
        The rows whose neighbours are sought.
    candidates : ndarray of int, shape (b, m)
        Candidate neighbours of each row, best first by the index; -1 marks no candidate.
    k : int
        Neighbours to keep.
    metric : {'angular', 'euclidean', 'dot'}
        Distance to rank by (``'dot'``: largest inner product first).

    Returns
    -------
    ndarray of int32, shape (b, k)
        The nearest candidates, nearest first; ties keep the index's order. A row with fewer
        than ``k`` candidates repeats the ones it has (itself if it has none).
    """
    b, m = candidates.shape
    valid = candidates >= 0
    filled = np.where(valid, candidates, np.repeat(rows, m).reshape(b, m))
    anchors = data[np.repeat(rows, m)]
    others = data[filled.ravel()]
    dots = _row_sums(anchors.multiply(others), (b, m))
    if metric == "dot":
        score = dots
    else:
        own = data[rows]
        sq_rows = _row_sums(own.multiply(own), (b, 1))
        sq_others = _row_sums(others.multiply(others), (b, m))
        if metric == "angular":
            norms = np.sqrt(sq_rows * sq_others)
            # A row of zeros has no direction: rank it behind every other candidate.
            score = np.divide(dots, norms, out=np.full_like(dots, -2.0), where=norms > 0)
        else:
            score = -(sq_rows + sq_others - 2.0 * dots)
    score[~valid] = -np.inf
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    out = np.take_along_axis(filled, order, axis=1)
    n_valid = valid.sum(axis=1)
    for i in np.flatnonzero(n_valid < k):
        found = out[i, : n_valid[i]] if n_valid[i] else np.array([rows[i]])
        out[i] = np.resize(found, k)
    return out.astype(np.int32, copy=False)
