"""Quality of an embedding and of a k-nearest-neighbour graph.

All scores compare an embedding with the input space it came from:

- ``knn_accuracy``: 15-NN classifier accuracy, 5-fold stratified cross-validation on the
  embedding (on a random subsample of at most 250,000 rows for the largest workloads).
- ``trustworthiness``: :func:`sklearn.manifold.trustworthiness`, k = 15, 5,000-row subsample.
- ``neighbour_recall``: on the same subsample, the share of each point's 15 nearest embedding
  neighbours that are among its 15 nearest input-space neighbours.
- ``distance_correlation``: Pearson correlation of all pairwise Euclidean distances of a
  2,000-row subsample, input space against embedding.
- ``centroid_correlation``: Pearson correlation of the Euclidean distance matrices of the class
  centroids (the Mantel statistic), with a permutation p-value.
- ``cluster_strength``: how clustered the embedding looks, whatever the labels: the highest
  silhouette score of k-means with 2 to 8 clusters on the 2,000-row pair subsample. Uniform
  noise embedded without invented clusters scores about as its PCA projection does (0.3-0.4
  for a filled square or disc); separated groups score near 1.
- ``graph_recall``: of a method's own k-NN matrix, against exact neighbours of 1,000 random
  query rows in the full input space, with the method's metric.

Recalls are tie-aware: a returned neighbour counts as correct when its exact distance is no
larger than the k-th smallest exact distance. Binary data (the primes workloads) has many
exactly tied distances, where "the" 15 nearest neighbours are not unique.

The random subsamples depend only on the workload's row count and a seed, so every method of a
workload is scored on the same rows.
"""

import numpy as np
import scipy.sparse as sp

K = 15
N_TRUST = 5000
N_PAIRS = 2000
N_QUERIES = 1000
MAX_KNN_ROWS = 250_000
FOLDS = 5
PERMUTATIONS = 9999
# Tolerance for "no larger than the k-th distance" on squared distances.
RTOL = 1e-4
ATOL = 1e-9


def _rows(n, size, seed):
    """Sorted random subset of ``range(n)`` of ``min(n, size)`` rows."""
    rng = np.random.default_rng(seed)
    if size >= n:
        return np.arange(n)
    return np.sort(rng.choice(n, size=size, replace=False))


def pearson(a, b):
    """Pearson correlation of two 1-d arrays (nan when one is constant)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a = a - a.mean()
    b = b - b.mean()
    denom = np.sqrt((a * a).sum() * (b * b).sum())
    return float((a * b).sum() / denom) if denom > 0 else float("nan")


def squared_norms(X):
    """Squared L2 norm of every row, float64."""
    if sp.issparse(X):
        return np.asarray(X.multiply(X).sum(axis=1), dtype=np.float64).ravel()
    X = np.asarray(X)
    return np.einsum("ij,ij->i", X, X, dtype=np.float64)


def squared_distances(Q, X, q_norms, x_norms):
    """Squared Euclidean distances between the rows of ``Q`` and of ``X`` (dense or CSR).

    Uses ``|q|^2 + |x|^2 - 2 q.x`` so that exact and approximate neighbours are measured by the
    same arithmetic; clipped at 0.
    """
    if sp.issparse(Q) or sp.issparse(X):
        dots = Q @ X.T
        dots = dots.toarray() if sp.issparse(dots) else np.asarray(dots)
    else:
        dots = np.asarray(Q) @ np.asarray(X).T
    d = q_norms[:, None] + x_norms[None, :] - 2.0 * dots.astype(np.float64)
    return np.maximum(d, 0.0)


def normalise_rows(X):
    """Rows scaled to unit L2 norm (zero rows stay zero): angular distance becomes Euclidean."""
    from sklearn.preprocessing import normalize

    return normalize(X, norm="l2", copy=True)


def tie_aware_recall(sq_dist_to_candidates, kth_sq_dist):
    """Share of candidates no farther than the k-th exact neighbour.

    Parameters
    ----------
    sq_dist_to_candidates : ndarray, shape (m, kk)
        Exact squared distances from each query to its returned neighbours.
    kth_sq_dist : ndarray, shape (m,)
        Each query's ``kk``-th smallest exact squared distance (itself excluded).

    Returns
    -------
    float
    """
    thr = kth_sq_dist * (1 + RTOL) + ATOL
    return float(np.mean(sq_dist_to_candidates <= thr[:, None]))


def knn_accuracy(E, y, k=K, folds=FOLDS, max_rows=MAX_KNN_ROWS, seed=0):
    """Mean k-NN classification accuracy over stratified folds, on the embedding.

    Parameters
    ----------
    E : ndarray, shape (n, d)
    y : ndarray, shape (n,)
    k, folds, max_rows, seed : int

    Returns
    -------
    float
    """
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier

    rows = _rows(len(y), max_rows, seed)
    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    scores = cross_val_score(KNeighborsClassifier(n_neighbors=k), E[rows], y[rows], cv=cv)
    return float(np.mean(scores))


def cluster_strength(E, max_clusters=8, seed=0):
    """Highest silhouette score of k-means with 2..``max_clusters`` clusters on the rows of ``E``."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score

    best = -1.0
    for n_clusters in range(2, max_clusters + 1):
        labels = KMeans(n_clusters, n_init=3, random_state=seed).fit_predict(E)
        best = max(best, float(silhouette_score(E, labels)))
    return best


def class_centroids(X, y, classes):
    """Mean row per class, as a dense (n_classes, n_features) float64 array."""
    index = np.searchsorted(classes, y)
    onehot = sp.csr_matrix((np.ones(len(y)), (index, np.arange(len(y)))), shape=(len(classes), len(y)))
    sums = onehot @ X
    sums = sums.toarray() if sp.issparse(sums) else np.asarray(sums, dtype=np.float64)
    counts = np.asarray(onehot.sum(axis=1)).ravel()
    return sums / counts[:, None]


def mantel(d_a, d_b, n_items, permutations=PERMUTATIONS, seed=0):
    """Mantel statistic (Pearson r of condensed distance matrices) and its permutation p-value.

    Parameters
    ----------
    d_a, d_b : ndarray
        Condensed distance matrices (as from :func:`scipy.spatial.distance.pdist`).
    n_items : int
        Number of items behind them.
    permutations : int
    seed : int

    Returns
    -------
    r : float
    p : float
        One-sided: share of item relabellings with a correlation at least as large.
    """
    from scipy.spatial.distance import squareform

    r = pearson(d_a, d_b)
    if n_items < 4 or not np.isfinite(r):
        return r, float("nan")
    rng = np.random.default_rng(seed)
    square_b = squareform(d_b)
    iu = np.triu_indices(n_items, k=1)
    hits = 0
    for _ in range(permutations):
        perm = rng.permutation(n_items)
        if pearson(d_a, square_b[perm][:, perm][iu]) >= r - 1e-12:
            hits += 1
    return r, (hits + 1) / (permutations + 1)


class InputSpace:
    """The input side of every comparison for one workload, computed once and reused.

    Parameters
    ----------
    X : ndarray or scipy.sparse matrix, shape (n, p)
        The full input data, in memory.
    y : ndarray, shape (n,)
    seed : int
        Seed of all subsamples.
    """

    def __init__(self, X, y, seed=0):
        from sklearn.metrics.pairwise import euclidean_distances

        self.X = X.tocsr() if sp.issparse(X) else np.asarray(X)
        self.y = np.asarray(y)
        self.n = self.X.shape[0]
        self.seed = seed
        self.classes = np.unique(self.y)

        self.sub = _rows(self.n, N_TRUST, seed)
        X_sub = self.X[self.sub]
        X_sub = X_sub.astype(np.float64) if sp.issparse(X_sub) else np.asarray(X_sub, dtype=np.float64)
        self.dist_sub = euclidean_distances(X_sub)
        np.fill_diagonal(self.dist_sub, 0.0)
        # The pairwise-distance subsample is nested in the trustworthiness one.
        self.pairs = np.sort(
            np.random.default_rng(seed + 1).choice(len(self.sub), min(N_PAIRS, len(self.sub)), replace=False)
        )
        self.centroid_dist = self._centroid_distances(self.X)
        self.queries = _rows(self.n, N_QUERIES, seed + 2)
        self._exact = {}

    def _centroid_distances(self, Z):
        from scipy.spatial.distance import pdist

        return pdist(class_centroids(Z, self.y, self.classes))

    def _space(self, metric):
        """Data and squared norms for ``metric`` ('euclidean' or 'angular'/'cosine')."""
        if metric in (None, "euclidean", "l2"):
            key = "euclidean"
            X = self.X
        elif metric in ("angular", "cosine"):
            key = "angular"
            X = self._exact.setdefault("angular_X", normalise_rows(self.X))
        else:
            raise ValueError(f"no exact neighbours for metric {metric!r}")
        norms = self._exact.get(key + "_norms")
        if norms is None:
            norms = self._exact[key + "_norms"] = squared_norms(X)
        return key, X, norms

    def exact_sorted_sq_distances(self, metric, k_max=32):
        """For every query row, its ``k_max`` smallest exact squared distances (self excluded)."""
        key, X, norms = self._space(metric)
        cached = self._exact.get(key + "_sorted")
        if cached is not None and cached.shape[1] >= k_max:
            return cached
        # Query blocks sized so each distance block stays near 20 million entries.
        block = max(1, int(2e7 // max(self.n, 1)))
        out = np.empty((len(self.queries), k_max))
        for start in range(0, len(self.queries), block):
            q = self.queries[start : start + block]
            d = squared_distances(X[q], X, norms[q], norms)
            d[np.arange(len(q)), q] = np.inf
            kk = min(k_max, self.n - 1)
            part = np.partition(d, kk - 1, axis=1)[:, :kk]
            out[start : start + len(q), :kk] = np.sort(part, axis=1)
            out[start : start + len(q), kk:] = np.inf
        self._exact[key + "_sorted"] = out
        return out

    def graph_recall(self, neighbours, metric=None):
        """Tie-aware recall of a method's k-NN matrix on the query rows.

        Parameters
        ----------
        neighbours : ndarray of int, shape (n, k)
            Row ``i`` lists the neighbours of row ``i``; an entry equal to ``i`` (the point
            itself) and invalid entries are ignored.
        metric : str, optional
            Metric the method searched with; Euclidean when None.

        Returns
        -------
        dict
            ``graph_recall``, ``graph_k`` (mean number of non-self neighbours scored) and
            ``graph_metric``.
        """
        key, X, norms = self._space(metric)
        neighbours = np.asarray(neighbours)
        sorted_sq = self.exact_sorted_sq_distances(metric, k_max=max(32, neighbours.shape[1]))
        hits, total, kks = 0.0, 0, []
        for qi, q in enumerate(self.queries):
            ids = neighbours[q].astype(np.int64)
            ids = ids[(ids >= 0) & (ids < self.n) & (ids != q)]
            if ids.size == 0:
                continue
            d = squared_distances(X[[q]], X[ids], norms[[q]], norms[ids])
            kth = sorted_sq[qi, ids.size - 1]
            hits += tie_aware_recall(d, np.array([kth])) * ids.size
            total += ids.size
            kks.append(ids.size)
        return {
            "graph_recall": hits / total if total else None,
            "graph_k": float(np.mean(kks)) if kks else None,
            "graph_metric": key,
        }

    def embedding_scores(self, E):
        """All embedding-quality scores for embedding ``E`` (n x d).

        Returns
        -------
        dict
            Keys ``knn_accuracy``, ``trustworthiness``, ``neighbour_recall``,
            ``distance_correlation``, ``cluster_strength``, ``centroid_correlation``,
            ``centroid_mantel_p``.
        """
        from scipy.spatial.distance import pdist, squareform
        from sklearn.manifold import trustworthiness
        from sklearn.neighbors import NearestNeighbors

        E = np.asarray(E, dtype=np.float64)
        if E.shape[0] != self.n:
            raise ValueError(f"embedding has {E.shape[0]} rows, data has {self.n}")
        if not np.isfinite(E).all():
            raise ValueError("embedding has non-finite values")
        scores = {"knn_accuracy": knn_accuracy(E, self.y)}

        E_sub = E[self.sub]
        k = min(K, len(self.sub) - 2)
        scores["trustworthiness"] = float(
            trustworthiness(self.dist_sub, E_sub, n_neighbors=k, metric="precomputed")
        )

        nn = NearestNeighbors(n_neighbors=k + 1).fit(E_sub)
        ids = nn.kneighbors(E_sub, return_distance=False)
        ids = np.array([_drop_self(row, i, k) for i, row in enumerate(ids)])
        dist_in = self.dist_sub.copy()
        np.fill_diagonal(dist_in, np.inf)
        kth = np.partition(dist_in, k - 1, axis=1)[:, k - 1]
        cand = np.take_along_axis(dist_in, ids, axis=1)
        scores["neighbour_recall"] = tie_aware_recall(cand**2, kth**2)

        pair_in = squareform(self.dist_sub[np.ix_(self.pairs, self.pairs)], checks=False)
        scores["distance_correlation"] = pearson(pair_in, pdist(E_sub[self.pairs]))
        scores["cluster_strength"] = cluster_strength(E_sub[self.pairs])

        r, p = mantel(self.centroid_dist, self._centroid_distances(E), len(self.classes))
        scores["centroid_correlation"] = r
        scores["centroid_mantel_p"] = p
        return scores


def _drop_self(row, i, k):
    """The first ``k`` entries of a neighbour row without ``i`` itself."""
    rest = row[row != i]
    return rest[:k]
