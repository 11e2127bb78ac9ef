"""The first N positive integers as sparse binary vectors of their prime factors.

Row ``i`` stands for the integer ``i + 1``; column ``j`` for the ``j``-th prime (2, 3, 5, ...).
Entry ``(i, j)`` is 1 when that prime divides ``i + 1``. The integer 1 has no prime factor, so
its row is empty. Features are all primes up to N, so 1,000,000 rows have 78,498 columns and
about 2.9 million non-zeros.
"""

import numpy as np
import scipy.sparse as sp

# Labels used for the quality metrics: the smallest prime factor, bucketed.
SPF_BUCKETS = (2, 3, 5, 7)
SPF_LABEL_NAMES = ("spf=2", "spf=3", "spf=5", "spf=7", "spf>=11 or 1")


def smallest_prime_factors(n):
    """Smallest prime factor of every integer up to ``n`` (linear-time-ish sieve).

    Parameters
    ----------
    n : int
        Largest integer to factor; must be >= 1.

    Returns
    -------
    spf : ndarray of int32, shape (n + 1,)
        ``spf[m]`` is the smallest prime dividing ``m`` for ``m >= 2``; ``spf[0] = 0``,
        ``spf[1] = 1``.
    """
    spf = np.zeros(n + 1, dtype=np.int32)
    spf[1:] = np.arange(1, n + 1, dtype=np.int32)
    # Even numbers first: it is half of all the work.
    spf[4::2] = 2
    for p in range(3, int(n**0.5) + 1, 2):
        if spf[p] != p:
            continue
        # Only multiples not yet claimed by a smaller prime, starting at p*p.
        block = spf[p * p :: 2 * p]
        block[block == np.arange(p * p, n + 1, 2 * p)[: block.size]] = p
    return spf


def prime_factor_matrix(n):
    """Binary prime-factor matrix of the integers ``1..n``.

    Parameters
    ----------
    n : int
        Number of rows (integers), >= 1.

    Returns
    -------
    X : scipy.sparse.csr_matrix of float32, shape (n, number of primes <= n)
        ``X[i, j] = 1`` when the ``j``-th prime divides ``i + 1``.
    primes : ndarray of int64
        The prime behind each column, ascending.
    """
    spf = smallest_prime_factors(n)
    ints = np.arange(1, n + 1, dtype=np.int64)
    primes = ints[(ints >= 2) & (spf[1:] == ints)]
    column_of = np.zeros(n + 1, dtype=np.int64)
    column_of[primes] = np.arange(primes.size)

    rows, cols = [], []
    remaining = ints.copy()
    active = np.nonzero(remaining > 1)[0]
    # Each pass peels the smallest distinct prime off every unfinished integer; at most
    # omega(n) <= 8 passes for n below 10**7. Emitted in ascending prime order per row.
    while active.size:
        p = spf[remaining[active]].astype(np.int64)
        rows.append(active)
        cols.append(column_of[p])
        m = remaining[active] // p
        divisible = m % p == 0
        while divisible.any():
            m[divisible] //= p[divisible]
            divisible = m % p == 0
        remaining[active] = m
        active = active[m > 1]

    row_idx = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    col_idx = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data = np.ones(row_idx.size, dtype=np.float32)
    X = sp.csr_matrix((data, (row_idx, col_idx)), shape=(n, primes.size))
    X.sort_indices()
    return X, primes


def smallest_prime_factor_labels(n):
    """Class label per integer ``1..n``: its smallest prime factor, bucketed.

    Labels are 0..3 for a smallest prime factor of 2, 3, 5, 7 and 4 for everything else
    (smallest prime factor >= 11, and the integer 1). Nested divisibility by small primes is
    what dominates Euclidean distances between these binary vectors, so these classes are a
    meaningful, coarse structure for neighbour-based quality scores.

    Parameters
    ----------
    n : int
        Number of integers.

    Returns
    -------
    y : ndarray of int64, shape (n,)
    """
    spf = smallest_prime_factors(n)[1:]
    y = np.full(n, len(SPF_BUCKETS), dtype=np.int64)
    for label, p in enumerate(SPF_BUCKETS):
        y[spf == p] = label
    y[0] = len(SPF_BUCKETS)
    return y
