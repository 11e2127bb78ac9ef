"""AnnData objects as ivis inputs.

:func:`anndata_rows` picks the matrix ivis reads from an :class:`anndata.AnnData`: ``.X``, a
layer or ``obsm[use_rep]``, dense, sparse, or on disk for an AnnData opened with ``backed``.
:func:`graph_neighbours` turns the kNN distance graph of ``scanpy.pp.neighbors``
(``obsp['distances']``) into the ``neighbour_matrix`` the estimator takes.

Nothing here imports :mod:`anndata`: AnnData objects are recognised by the names of their
types, so ``import ivis`` and inputs of other kinds never load it.
"""

import numpy as np

from ivis.data.sequence import IndexableDataset


def _is_anndata_type(cls, name):
    return cls.__name__ == name and cls.__module__.split(".")[0] == "anndata"


def is_anndata(obj):
    """True if ``obj`` is an :class:`anndata.AnnData` (or a subclass), without importing anndata."""
    return any(_is_anndata_type(cls, "AnnData") for cls in type(obj).__mro__)


def _backed_sparse_format(matrix):
    """'csr' or 'csc' for a sparse matrix that AnnData keeps on disk (``backed``), else None."""
    if any(cls.__module__.split(".")[0] == "anndata" and cls.__name__.endswith("Dataset") for cls in type(matrix).__mro__):
        return getattr(matrix, "format", None)
    return None


def _available(keys):
    keys = [str(key) for key in keys]
    return ", ".join(repr(key) for key in keys) if keys else "none"


def anndata_rows(adata, use_rep=None, layer=None):
    """The rows of ``adata`` that ivis reads: ``.X``, a layer, or ``obsm[use_rep]``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells (observations) as rows. For an AnnData opened with ``backed='r'`` or ``'r+'``,
        ``.X`` stays on disk: a dense ``X`` is returned as its ``h5py.Dataset`` and a CSR ``X``
        as a :class:`BackedCSRRows`; both are read a batch of rows at a time.
    use_rep : str, optional
        A key of ``adata.obsm``, such as ``'X_pca'``; ``None`` or ``'X'`` means ``.X``.
    layer : str, optional
        A key of ``adata.layers``, instead of ``.X``.

    Returns
    -------
    ndarray, sparse matrix, DataFrame, h5py.Dataset or BackedCSRRows
        Any input :meth:`ivis.Ivis.fit` accepts, one row per cell.

    Raises
    ------
    TypeError
        If ``adata`` is not an AnnData.
    ValueError
        If both ``use_rep`` and ``layer`` are given, or the key does not exist (the message
        lists the keys there are), or ``.X`` is empty or stored column by column on disk.
    """
    if not is_anndata(adata):
        raise TypeError(f"adata must be an anndata.AnnData; got {type(adata).__name__}.")
    if use_rep is not None and layer is not None:
        raise ValueError("Give use_rep (a key of adata.obsm) or layer (a key of adata.layers), not both.")
    if layer is not None:
        if layer not in adata.layers:
            raise ValueError(f"adata.layers has no {layer!r}; its layers are: {_available(adata.layers.keys())}.")
        return adata.layers[layer]
    if use_rep is not None and use_rep != "X":
        if use_rep not in adata.obsm:
            raise ValueError(
                f"adata.obsm has no {use_rep!r}; its keys are: {_available(adata.obsm.keys())}. "
                "Compute it first (for 'X_pca': scanpy.pp.pca(adata)), or use_rep=None for adata.X."
            )
        return adata.obsm[use_rep]
    if adata.X is None:
        raise ValueError(
            f"adata.X is empty. Choose a representation with use_rep (adata.obsm keys: "
            f"{_available(adata.obsm.keys())}) or a layer ({_available(adata.layers.keys())})."
        )
    form = _backed_sparse_format(adata.X)
    if form == "csr":
        return BackedCSRRows(adata.X.group, adata.n_vars)
    if form is not None:
        raise ValueError(
            f"adata.X is a {form.upper()} matrix on disk: it is stored column by column, so reading "
            "rows means reading all of it. Store it as CSR (in memory: adata.X = adata.X.tocsr(), "
            "then adata.write_h5ad(path)), or load it with adata.to_memory()."
        )
    return adata.X


class BackedCSRRows(IndexableDataset):
    """Rows of a CSR matrix stored in an HDF5 group (``data``, ``indices``, ``indptr``).

    This is how a sparse ``.X`` of an ``.h5ad`` file opened with ``backed`` is laid out. Only
    the row pointers (8 bytes per row) are held in memory; a batch of rows is read with one
    slice per run of nearby rows and densified, so ivis trains on it out of core.

    Parameters
    ----------
    group : h5py.Group
        The group holding the matrix (``adata.X.group`` of a backed AnnData).
    n_columns : int
        Columns of the matrix.
    """

    def __init__(self, group, n_columns):
        self._data = group["data"]
        self._indices = group["indices"]
        self._indptr = np.asarray(group["indptr"][:], dtype=np.int64)
        self._shape = (len(self._indptr) - 1, int(n_columns))
        row_bytes = max(1.0, self._data.dtype.itemsize * self._indptr[-1] / max(1, self._shape[0]))
        # Nearby rows are read with one slice, as the dense reader does (MAX_GAP_BYTES).
        from ivis.data.read_plan import MAX_GAP_BYTES

        self._max_gap = int(MAX_GAP_BYTES // row_bytes)

    @property
    def shape(self):
        return self._shape

    @property
    def dtype(self):
        return self._data.dtype

    def __len__(self):
        return self._shape[0]

    def __getitem__(self, idx):
        return self.get_batch([idx])[0]

    def _read_block(self, lo, hi):
        """Rows ``lo:hi`` as a dense array."""
        from scipy.sparse import csr_matrix

        start, stop = self._indptr[lo], self._indptr[hi]
        block = csr_matrix(
            (self._data[start:stop], self._indices[start:stop], self._indptr[lo:hi + 1] - start),
            shape=(hi - lo, self._shape[1]),
        )
        return block.toarray()

    def get_batch(self, idx_seq):
        from ivis.data.read_plan import plan_reads

        indices = np.asarray(idx_seq, dtype=np.int64).ravel()
        unique, inverse = np.unique(indices, return_inverse=True)
        out = np.empty((len(unique), self._shape[1]), dtype=self._data.dtype)
        slices, scattered = plan_reads(unique, self._max_gap)
        for first, last, lo, hi in slices:
            out[first:last] = self._read_block(lo, hi)[unique[first:last] - lo]
        for position in scattered:
            row = int(unique[position])
            out[position] = self._read_block(row, row + 1)[0]
        return out[inverse.ravel()]


def graph_neighbours(distances, k=None):
    """The neighbour matrix of a sparse kNN distance graph, such as ``obsp['distances']``.

    Row ``i`` of the result lists the columns of the entries stored in row ``i`` of
    ``distances`` (explicit zeros included: scanpy stores duplicate cells so), without ``i``
    itself, nearest first (ties by column). With ``sc.pp.neighbors(n_neighbors=n)`` every
    row has ``n - 1`` neighbours.

    Parameters
    ----------
    distances : sparse matrix of shape (n_cells, n_cells)
        Distances to each cell's nearest other cells.
    k : int, optional
        Neighbours per row: the ``k`` nearest of each row's stored ones. By default, as many
        as the row with the fewest has (every row's, for a graph of ``sc.pp.neighbors``).

    Returns
    -------
    ndarray of shape (n_cells, k), int64
        0-based cell positions, for :class:`ivis.Ivis`'s ``neighbour_matrix``.

    Raises
    ------
    ValueError
        If ``distances`` is not a square sparse matrix, a row has no neighbours, or a row has
        fewer than ``k``; the message names the first such row.
    """
    from scipy import sparse

    if not sparse.issparse(distances) or distances.shape[0] != distances.shape[1]:
        raise ValueError(
            "The neighbour graph must be a square sparse matrix of distances, cells by cells "
            f"(adata.obsp['distances'] after scanpy.pp.neighbors); got {type(distances).__name__} "
            f"of shape {getattr(distances, 'shape', None)}."
        )
    graph = sparse.csr_matrix(distances)
    n_rows = graph.shape[0]
    rows = np.repeat(np.arange(n_rows), np.diff(graph.indptr))
    others = graph.indices != rows
    rows, columns, values = rows[others], graph.indices[others], graph.data[others]
    counts = np.bincount(rows, minlength=n_rows)
    fewest = int(counts.min()) if n_rows else 0
    wanted = fewest if k is None else int(k)
    if wanted < 1 or fewest < wanted:
        row = int(np.argmin(counts))
        need = "at least one neighbour" if k is None else f"k={wanted} neighbours"
        raise ValueError(
            f"Cell {row} (0-based) has {fewest} neighbour(s) in the graph, but ivis needs {need} "
            "for every cell. Compute the graph with more neighbours (scanpy.pp.neighbors(adata, "
            f"n_neighbors={max(wanted, 1) + 1}) gives each cell {max(wanted, 1)}), or ask for fewer "
            "with k."
        )
    order = np.lexsort((columns, values, rows))
    rows, columns = rows[order], columns[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.arange(len(rows)) - starts[rows]
    keep = rank < wanted
    return columns[keep].astype(np.int64).reshape(n_rows, wanted)
