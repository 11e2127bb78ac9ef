"""Neighbour search by clusters: exact distances among the rows of nearby clusters.

An Annoy query on wide dense rows pays a full-width distance for every candidate it visits,
one row at a time. This search instead groups the rows into clusters of about
:data:`ROWS_PER_CLUSTER` (k-means on a :data:`PCA_COMPONENTS`-component PCA projection) and,
for all rows of a cluster at once, computes the exact distances to every row of the clusters
whose mean rows are nearest, itself included, as one matrix product. The ``k`` best
candidates of each row are kept. Data of up to :data:`EXHAUSTIVE_MAX_ROWS` rows (5,500) is
searched exhaustively: the neighbours are exact.

A true neighbour is missed when it lies in a cluster that is not probed: near the border of a
cluster whose nearest clusters are on its other side, or, in data whose rows spread evenly over
many dimensions, almost anywhere. How many clusters to probe is therefore measured on the data:
the exact neighbours of a random sample of rows are found by brute force, and the fewest
nearest clusters that hold :data:`TARGET_RECALL` (0.95) of them are probed for every cluster.
On Fashion-MNIST (70,000 x 784, angular, k=15) that is 10 or 11 clusters, about 3,000
candidates per row, and the search takes a fifth of the time of an Annoy index with 50 trees
(see ``bench/ANALYSIS.md``). With a number of probed clusters that does not grow with the
data, the search is linear in the number of rows (apart from assigning rows to clusters, whose
cost grows with the number of clusters times the rows but is small next to the search up to
millions of rows).

The metrics are those a ranking by inner products computes exactly: 'angular' (rows ranked
by their inner product divided by the candidate's norm) and 'euclidean' (inner product minus
half the candidate's squared norm). The data must be in memory: a dense array, or a SciPy
sparse matrix, whose distances are computed from its non-zeros (sparse products) and whose
clusters are ordered by their mean rows in the PCA projection, since mean rows of very wide
sparse data would be dense and as wide as the data.
"""

import numpy as np
import scipy.sparse
from tqdm.auto import tqdm

from ivis._params import CLUSTERED_METRICS, check_clustered_metric  # noqa: F401 - re-exported

# Rows per cluster. Each cluster's rows are compared with the rows of the clusters nearest to it,
# as many as keep TARGET_RECALL of the exact neighbours of RECALL_SAMPLE_ROWS rows drawn at
# random (their exact neighbours cost RECALL_SAMPLE_ROWS rows' distances to all rows), and at
# least MIN_PROBED_CLUSTERS. On Fashion-MNIST that is about 10 clusters (2,750 candidates per
# row; 8 gave a recall of 0.93, 12 gave 0.96); on data whose rows spread evenly over many
# dimensions it is many more.
ROWS_PER_CLUSTER = 275
TARGET_RECALL = 0.95
RECALL_SAMPLE_ROWS = 500
MIN_PROBED_CLUSTERS = 4
# Scores this close (relative) to a row's k-th best count as ties with it: float32 sums of
# the same products can differ in their last bits.
TIE_TOLERANCE = 1e-5
# Up to this many rows every row is compared with all others: about the candidates of 20
# clusters, none of the set-up, and the neighbours are exact.
EXHAUSTIVE_MAX_ROWS = 20 * ROWS_PER_CLUSTER
# Clusters are fitted on a PCA projection of PCA_COMPONENTS components (computed from at most
# PCA_ROWS rows): KMEANS_ITERATIONS Lloyd steps on at most FIT_ROWS rows (or 8 per cluster).
PCA_COMPONENTS = 32
PCA_ROWS = 20_000
FIT_ROWS = 100_000
KMEANS_ITERATIONS = 8
# Rows projected or assigned to clusters per step, and the most distances held at once
# (float32; four times as many for the sample of exact neighbours): these keep the temporary
# memory of the search below about 100 MB.
ASSIGN_CHUNK_ROWS = 16_384
MAX_BLOCK_DISTANCES = 4_000_000


def clustered_neighbours(X, k, metric="angular", random_state=None, verbose=False, run_blocks=None):
    """Return the ``(n_rows, k)`` int32 neighbour matrix of the rows of ``X``.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix of shape (n_rows, n_features)
        Float32 rows, in memory (a sparse matrix is used as CSR).
    k : int
        Neighbours per row, the row itself excluded; below ``n_rows``.
    metric : {'angular', 'euclidean'}, default='angular'
        The distance the neighbours are nearest in.
    random_state : int, optional
        Seed of the row samples and the initial cluster centres.
    verbose : bool, default=False
        Show a progress bar over the clusters.
    run_blocks : callable, optional
        Runs the per-cluster blocks (a :class:`ClusterBlocks`) and yields their results, as
        :func:`run_blocks_here` (the default) does; the neighbours do not depend on it.

    Returns
    -------
    ndarray of shape (n_rows, k), dtype int32
        Row ``i`` lists the neighbours of row ``i``, nearest first.
    """
    check_clustered_metric(metric)
    if scipy.sparse.issparse(X):
        X = scipy.sparse.csr_matrix(X, dtype=np.float32)
    n_rows = X.shape[0]
    rng = np.random.default_rng(random_state)
    # Candidates are ranked by a score to maximise: x . y / |y| (angular) or x . y - |y|^2 / 2
    # (Euclidean); the query's own norm does not change its ranking.
    squared_norms = _squared_norms(X)
    if metric == "angular":
        # A zero row has no direction: it scores 0 against every row (cosine 0), as it would
        # in an exact search; the floor only avoids dividing by zero.
        candidate_weight = 1.0 / np.sqrt(np.maximum(squared_norms, np.finfo(np.float32).tiny))
        candidate_offset = None
    else:
        candidate_weight = None
        candidate_offset = -0.5 * squared_norms
    labels, n_clusters, projected = _cluster(X, candidate_weight, rng)
    members = _members(labels, n_clusters)
    # Wide sparse rows have wide dense means: their clusters are ordered in the projection.
    if scipy.sparse.issparse(X):
        means = _cluster_means(members, projected, None)  # projected rows are directions already
    else:
        means = _cluster_means(members, X, candidate_weight)
    score = _Scorer(X, candidate_weight, candidate_offset)
    n_probed = _probe_count(score, labels, means, k, rng) if n_clusters > 1 else 1
    blocks = ClusterBlocks(score, members, _probed_clusters(members, means, k, n_probed), k)
    neighbours = np.empty((n_rows, k), dtype=np.int32)
    description = "Searching neighbours" + (f" ({n_probed} clusters per cluster)" if n_clusters > 1 else "")
    with tqdm(total=n_clusters, desc=description, unit="clusters", disable=not verbose, mininterval=1.0) as bar:
        for queries, found, done in (run_blocks or run_blocks_here)(blocks):
            neighbours[queries] = found
            bar.update(done)
    return neighbours


class ClusterBlocks:
    """The per-cluster blocks of a search: each cluster's rows against its candidates.

    Blocks are independent of each other and of where they run: :meth:`search` of a group of
    clusters gives the same neighbours in this process or in another one (a Dask worker), so
    a block runner may send this object, with the data, to other processes once.

    Parameters
    ----------
    score : _Scorer
        Holds the rows and the metric's weights.
    members : list of ndarray
        Row indices of each cluster.
    probes : list of ndarray
        For each cluster, the clusters whose rows are its candidates (itself first).
    k : int
        Neighbours per row.
    """

    def __init__(self, score, members, probes, k):
        self.score = score
        self.members = members
        self.probes = probes
        self.k = k

    def __len__(self):
        return len(self.members)

    def search(self, clusters):
        """``(rows, neighbours)`` of every row of ``clusters``: int64 row indices and an int32 ``(n, k)`` matrix."""
        rows, found = [], []
        for cluster in clusters:
            queries = self.members[cluster]
            if len(queries) == 0:
                continue
            rows.append(queries)
            found.append(self._search_cluster(queries, self.probes[cluster]))
        if not rows:
            return np.empty(0, dtype=np.int64), np.empty((0, self.k), dtype=np.int32)
        return np.concatenate(rows), np.concatenate(found)

    def _search_cluster(self, queries, probed):
        # The cluster itself comes first, so row j of the block is candidate j.
        candidates = np.concatenate([self.members[c] for c in probed])
        candidate_rows = self.score.X[candidates]
        neighbours = np.empty((len(queries), self.k), dtype=np.int32)
        block_rows = max(1, MAX_BLOCK_DISTANCES // len(candidates))
        for start in range(0, len(queries), block_rows):
            stop = min(start + block_rows, len(queries))
            scores = self.score(queries[start:stop], candidates, candidate_rows)
            scores[np.arange(stop - start), np.arange(start, stop)] = -np.inf
            neighbours[start:stop] = candidates[_top_k(scores, self.k)]
        return neighbours


def run_blocks_here(blocks):
    """Search the clusters of ``blocks`` one by one in this process.

    A block runner yields ``(rows, neighbours, n_clusters_done)`` until every cluster is
    searched; :func:`ivis.distributed.dask_neighbours.dask_block_runner` is the other one.
    """
    for cluster in range(len(blocks)):
        rows, found = blocks.search([cluster])
        yield rows, found, 1


def _squared_norms(X):
    """Squared norm of every row of a dense array or sparse matrix, as float32."""
    if scipy.sparse.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float32).ravel()
    return np.einsum("ij,ij->i", X, X)


class _Scorer:
    """Scores of candidates for query rows: larger is nearer, in the order of the metric."""

    def __init__(self, X, candidate_weight, candidate_offset):
        self.X = X
        self.candidate_weight = candidate_weight
        self.candidate_offset = candidate_offset

    def __call__(self, queries, candidates, candidate_rows):
        rows = self.X[queries]
        if scipy.sparse.issparse(rows):
            # Only the columns where a query has non-zeros contribute: the queries are made
            # dense on those columns alone, and the product is sparse rows times a small dense
            # matrix, whose cost is the candidates' non-zeros there times the queries.
            columns = np.unique(rows.indices)
            scores = (candidate_rows[:, columns] @ rows[:, columns].toarray().T).T
        else:
            scores = rows @ candidate_rows.T
        scores = np.ascontiguousarray(scores, dtype=np.float32)
        if self.candidate_weight is not None:
            scores *= self.candidate_weight[candidates]
        else:
            scores += self.candidate_offset[candidates]
        return scores


def _top_k(scores, k):
    """Column positions of the ``k`` largest scores of each row, largest first."""
    best = np.argpartition(scores, -k, axis=1)[:, -k:]
    order = np.argsort(-np.take_along_axis(scores, best, axis=1), axis=1, kind="stable")
    return np.take_along_axis(best, order, axis=1)


def _cluster(X, candidate_weight, rng):
    """``(labels, n_clusters, projected)``: every row in one of about ``n_rows / ROWS_PER_CLUSTER``
    clusters, found by k-means on the rows' PCA projection ``projected`` (None when there is one cluster).
    """
    from sklearn.utils.extmath import randomized_svd  # deferred: keeps `import ivis._params` light

    n_rows = X.shape[0]
    if n_rows <= EXHAUSTIVE_MAX_ROWS:
        return np.zeros(n_rows, dtype=np.int64), 1, None
    n_clusters = int(round(n_rows / ROWS_PER_CLUSTER))
    pca_rows = np.sort(rng.choice(n_rows, min(n_rows, PCA_ROWS), replace=False))
    sample = _directions(X[pca_rows], candidate_weight, pca_rows)
    mean = np.asarray(sample.mean(axis=0), dtype=np.float32).ravel()
    n_components = min(PCA_COMPONENTS, *sample.shape)
    # Sparse rows are not centred: that would make them dense. Their leading singular
    # directions then include the mean's, which clusters as well.
    centred = sample if scipy.sparse.issparse(sample) else sample - mean
    _, _, components = randomized_svd(centred, n_components, random_state=int(rng.integers(2**31 - 1)))
    components = np.ascontiguousarray(components.T, dtype=np.float32)
    # Rows are projected as (w x - mean) C = w (x C) - mean C, with w the metric's row weight,
    # so no rescaled copy of the data is made.
    projected = np.empty((n_rows, n_components), dtype=np.float32)
    mean_projected = mean @ components
    for start in range(0, n_rows, ASSIGN_CHUNK_ROWS):
        stop = min(start + ASSIGN_CHUNK_ROWS, n_rows)
        chunk = np.asarray(X[start:stop] @ components)
        if candidate_weight is not None:
            chunk *= candidate_weight[start:stop, None]
        projected[start:stop] = chunk - mean_projected
    fit_rows = rng.choice(n_rows, min(n_rows, max(FIT_ROWS, 8 * n_clusters)), replace=False)
    fitted = projected[fit_rows]
    centres = fitted[rng.choice(len(fitted), n_clusters, replace=False)].copy()
    for _ in range(KMEANS_ITERATIONS):
        fit_labels = _nearest_centre(fitted, centres)
        counts = np.bincount(fit_labels, minlength=n_clusters)
        sums = np.zeros_like(centres)
        np.add.at(sums, fit_labels, fitted)
        filled = counts > 0
        centres[filled] = sums[filled] / counts[filled, None]
    return _nearest_centre(projected, centres), n_clusters, projected


def _directions(rows, candidate_weight, indices):
    """The rows as the metric sees them: unit length for 'angular', unchanged otherwise."""
    if not scipy.sparse.issparse(rows):
        rows = np.asarray(rows, dtype=np.float32)
    if candidate_weight is None:
        return rows
    if scipy.sparse.issparse(rows):
        return scipy.sparse.csr_matrix(rows.multiply(candidate_weight[indices, None]), dtype=np.float32)
    return rows * candidate_weight[indices, None]


def _nearest_centre(points, centres):
    """Index of the nearest centre of each point (squared Euclidean distance)."""
    centre_norms = np.einsum("ij,ij->i", centres, centres)
    nearest = np.empty(len(points), dtype=np.int64)
    block = max(1, MAX_BLOCK_DISTANCES // len(centres))
    for start in range(0, len(points), block):
        stop = min(start + block, len(points))
        nearest[start:stop] = np.argmin(centre_norms[None, :] - 2.0 * (points[start:stop] @ centres.T), axis=1)
    return nearest


def _members(labels, n_clusters):
    """Row indices of each cluster, in increasing order."""
    order = np.argsort(labels, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=n_clusters))])
    return [order[bounds[c] : bounds[c + 1]] for c in range(n_clusters)]


def _cluster_means(members, X, candidate_weight):
    """The mean row of each cluster, in the metric's space (zeros for an empty cluster).

    ``candidate_weight`` None takes the rows as they are (rows already projected as
    directions, for instance).
    """
    if X is None:
        return np.zeros((len(members), 1), dtype=np.float32)
    means = np.zeros((len(members), X.shape[1]), dtype=np.float32)
    for cluster, rows in enumerate(members):
        if len(rows):
            means[cluster] = _directions(X[rows], candidate_weight, rows).mean(axis=0)
    return means


def _cluster_orders(means, clusters):
    """For each of ``clusters``, all clusters from the nearest mean to the farthest: itself first."""
    squared = np.einsum("ij,ij->i", means, means)
    distances = squared[clusters, None] + squared[None, :] - 2.0 * (means[clusters] @ means.T)
    distances[np.arange(len(clusters)), clusters] = -np.inf
    return np.argsort(distances, axis=1, kind="stable")


def _probe_count(score, labels, means, k, rng):
    """The fewest nearest clusters to probe for ``TARGET_RECALL`` of a sample's exact neighbours.

    Every row of a random sample is compared with every row. Its exact neighbours are all the
    rows that score at least its ``k``-th best score: with ties (rows at equal distances,
    common in sparse binary data) they can be many more than ``k``, and any ``k`` of them are
    exact neighbours. The search finds ``j`` of them when the first ``p`` clusters in the
    order of the sample row's cluster hold ``j``; the smallest ``p`` that finds
    ``TARGET_RECALL`` of the ``k`` wanted neighbours of all sample rows is returned (at least
    ``MIN_PROBED_CLUSTERS``).
    """
    n_rows, n_clusters = len(labels), len(means)
    sample = np.sort(rng.choice(n_rows, min(n_rows, RECALL_SAMPLE_ROWS), replace=False))
    everything = np.arange(n_rows)
    unique, inverse = np.unique(labels[sample], return_inverse=True)
    ranks = np.empty((len(unique), n_clusters), dtype=np.int64)
    ranks[np.arange(len(unique))[:, None], _cluster_orders(means, unique)] = np.arange(n_clusters)
    # needed[i, j]: clusters to probe, in row i's order, to hold j + 1 of its exact neighbours.
    needed = np.empty((len(sample), k), dtype=np.int64)
    block = max(1, 4 * MAX_BLOCK_DISTANCES // n_rows)
    for start in range(0, len(sample), block):
        rows = sample[start : start + block]
        scores = score(rows, everything, score.X)
        scores[np.arange(len(rows)), rows] = -np.inf
        kth = np.partition(scores, -k, axis=1)[:, -k]
        for i, row_scores in enumerate(scores):
            exact = np.flatnonzero(row_scores >= kth[i] - TIE_TOLERANCE * max(1.0, abs(kth[i])))
            per_cluster = np.bincount(ranks[inverse[start + i], labels[exact]], minlength=n_clusters)
            needed[start + i] = np.searchsorted(np.cumsum(per_cluster), np.arange(1, k + 1))
    needed = np.sort(needed, axis=None)
    found = int(np.ceil(TARGET_RECALL * needed.size)) - 1
    return int(min(n_clusters, max(MIN_PROBED_CLUSTERS, needed[found] + 1)))


def _probed_clusters(members, means, k, n_probed):
    """For each cluster, the clusters whose rows are its candidates: itself first.

    The ``n_probed`` clusters with the nearest means are taken, and more if they hold no more
    than ``4 k`` rows (a large ``k`` reaches further than a few clusters).
    """
    n_clusters = len(members)
    if n_clusters == 1:
        return [np.zeros(1, dtype=np.int64)]
    sizes = np.array([len(rows) for rows in members])
    probes = []
    # Blocks of clusters keep the distance matrix between means small for many clusters.
    block = max(1, MAX_BLOCK_DISTANCES // n_clusters)
    for start in range(0, n_clusters, block):
        for order in _cluster_orders(means, np.arange(start, min(start + block, n_clusters))):
            enough = int(np.searchsorted(np.cumsum(sizes[order]), 4 * k + 1)) + 1
            probes.append(order[: max(n_probed, enough)])
    return probes
