"""ivis for scanpy users: embed an AnnData in place, as ``scanpy.tl.umap`` does.

>>> import ivis.scanpy
>>> model = ivis.scanpy.ivis(adata, use_rep="X_pca")        # doctest: +SKIP
>>> scanpy.pl.embedding(adata, basis="X_ivis", color="cell_type")   # doctest: +SKIP

:func:`ivis` writes the embedding to ``adata.obsm['X_ivis']`` and its settings to
``adata.uns['ivis']``, and returns the fitted :class:`~ivis.Ivis` model, which embeds new
cells with ``model.transform``. :func:`write_embedding` stores both in the ``.h5ad`` file of
an AnnData opened with ``backed='r+'``. Neither scanpy nor anndata is imported by ivis
itself; this module works on the AnnData it is given.
"""

import numbers

from ivis._version import __version__
from ivis.data.anndata import anndata_rows, graph_neighbours, is_anndata

__all__ = ["ivis", "write_embedding", "anndata_rows", "graph_neighbours"]

# Estimator parameters that are objects, not settings: not recorded in ``uns``.
_NOT_RECORDED = ("callbacks", "neighbour_matrix")


def _keys(key_added):
    """``(obsm key, uns key)``, scanpy's convention: ``X_ivis`` and ``ivis`` by default."""
    return ("X_ivis", "ivis") if key_added is None else (key_added, key_added)


def _labels(adata, labels):
    if labels is None or not isinstance(labels, str):
        return labels
    if labels not in adata.obs:
        columns = ", ".join(repr(str(c)) for c in adata.obs.columns) or "none"
        raise ValueError(f"adata.obs has no column {labels!r}; its columns are: {columns}.")
    return adata.obs[labels]


def _graph(adata, neighbors_key):
    key = "neighbors" if neighbors_key is None else neighbors_key
    if key not in adata.uns:
        raise ValueError(
            f"use_graph=True reads the neighbour graph that scanpy.pp.neighbors records in "
            f"adata.uns[{key!r}], and there is none. Run scanpy.pp.neighbors(adata"
            f"{'' if neighbors_key is None else f', key_added={neighbors_key!r}'}) first, or "
            "leave use_graph=False to let ivis find the neighbours."
        )
    distances_key = adata.uns[key].get("distances_key", "distances")
    if distances_key not in adata.obsp:
        raise ValueError(
            f"adata.uns[{key!r}] names the graph adata.obsp[{distances_key!r}], which is missing. "
            "Run scanpy.pp.neighbors again."
        )
    return adata.obsp[distances_key]


def _recordable(value):
    # What an .h5ad file stores in uns as a plain value.
    return isinstance(value, (str, bool, numbers.Real)) and not isinstance(value, complex)


def _record(model, **options):
    params = {k: v for k, v in model.get_params().items() if k not in _NOT_RECORDED and _recordable(v)}
    params.update({k: v for k, v in options.items() if _recordable(v)})
    return {"params": params, "version": __version__}


def ivis(
    adata,
    *,
    use_rep=None,
    layer=None,
    labels=None,
    use_graph=False,
    neighbors_key=None,
    key_added=None,
    copy=False,
    random_state=0,
    shuffle_mode=None,
    **params,
):
    """Embed the cells of ``adata`` with ivis, in the manner of ``scanpy.tl.umap``.

    Parameters
    ----------
    adata : anndata.AnnData
        Cells as rows. A backed AnnData (``anndata.read_h5ad(path, backed='r')``) is trained
        on out of core: ``.X`` is read from the file a batch at a time.
    use_rep : str, optional
        The representation to embed: a key of ``adata.obsm`` such as ``'X_pca'``; ``None``
        (or ``'X'``) means ``adata.X``, dense or sparse.
    layer : str, optional
        A key of ``adata.layers`` to embed instead of ``.X``.
    labels : str or array-like, optional
        Supervised training: a column of ``adata.obs`` (or one value per cell). Missing
        values (NaN, None) leave a cell unlabelled: semi-supervised training.
    use_graph : bool, default=False
        Use the kNN graph of ``scanpy.pp.neighbors`` as the neighbours and skip ivis's own
        neighbour search; see :func:`graph_neighbours` for the conversion. The graph should
        come from the same representation as ``use_rep``.
    neighbors_key : str, optional
        Where ``scanpy.pp.neighbors`` recorded the graph: ``adata.uns[neighbors_key]``
        (``'neighbors'`` by default, its ``key_added`` otherwise).
    key_added : str, optional
        The embedding goes to ``adata.obsm[key_added]`` and the settings to
        ``adata.uns[key_added]``; by default ``obsm['X_ivis']`` and ``uns['ivis']``.
    copy : bool, default=False
        Embed a copy of ``adata`` and return it with the model, leaving ``adata`` untouched.
    random_state : int, default=0
        Seed of the whole fit, as in scanpy: the same seed and data give the same embedding.
    shuffle_mode : {True, 'batch', False}, optional
        Passed to :meth:`ivis.Ivis.fit`; by default ``'batch'`` for a backed AnnData (one read
        per batch of anchors) and ``True`` otherwise.
    **params
        Any other :class:`ivis.Ivis` parameter (``k``, ``epochs``, ``embedding_dims``, ...).
        With ``use_graph=True``, ``k`` takes the ``k`` nearest of each cell's graph
        neighbours; without it, all of them.

    Returns
    -------
    model : ivis.Ivis
        The fitted model: ``model.transform(new_cells)`` embeds cells it was not trained on
        (``anndata_rows(new, use_rep=...)`` picks the same representation).
    adata : anndata.AnnData
        Only with ``copy=True``, first: ``(adata, model)``.

    Raises
    ------
    ValueError
        For a missing ``obsm`` key, layer, ``obs`` column or neighbour graph (the message lists
        what there is), or ``copy=True`` on a backed AnnData.
    """
    from ivis.estimator import Ivis

    if not is_anndata(adata):
        raise TypeError(f"adata must be an anndata.AnnData; got {type(adata).__name__}.")
    if copy:
        if adata.isbacked:
            raise ValueError(
                "copy=True would load a backed AnnData into memory. Embed it in place (copy=False) "
                "and store the embedding in its file with ivis.scanpy.write_embedding."
            )
        adata = adata.copy()
    rows = anndata_rows(adata, use_rep=use_rep, layer=layer)
    targets = _labels(adata, labels)
    if use_graph:
        if params.get("neighbour_matrix") is not None:
            raise ValueError("Give use_graph=True or a neighbour_matrix, not both.")
        params["neighbour_matrix"] = graph_neighbours(_graph(adata, neighbors_key), params.get("k"))
        params["k"] = params["neighbour_matrix"].shape[1]
    if shuffle_mode is None:
        shuffle_mode = "batch" if adata.isbacked else True
    model = Ivis(random_state=random_state, **params)
    embedding = model.fit_transform(rows, targets, shuffle_mode=shuffle_mode)

    obsm_key, uns_key = _keys(key_added)
    adata.obsm[obsm_key] = embedding
    adata.uns[uns_key] = _record(
        model, use_rep=use_rep, layer=layer, labels=labels, use_graph=use_graph,
        neighbors_key=neighbors_key, shuffle_mode=shuffle_mode,
    )
    return (adata, model) if copy else model


def write_embedding(adata, key_added=None, *, overwrite=False):
    """Store an embedding of a backed AnnData in its ``.h5ad`` file.

    Writes ``adata.obsm[key]`` and ``adata.uns[key]`` (as :func:`ivis` named them) into the
    file and nothing else: ``.X`` and every other entry stay as they are.

    Parameters
    ----------
    adata : anndata.AnnData
        Opened with ``anndata.read_h5ad(path, backed='r+')``. An AnnData in memory is written
        with ``adata.write_h5ad(path)`` instead.
    key_added : str, optional
        The ``key_added`` given to :func:`ivis`.
    overwrite : bool, default=False
        Replace an embedding or settings of the same name already in the file.

    Raises
    ------
    ValueError
        If ``adata`` is not backed, its file is open read-only, the embedding is missing, or
        the file already holds it and ``overwrite`` is False. Nothing is written then.
    """
    if not is_anndata(adata):
        raise TypeError(f"adata must be an anndata.AnnData; got {type(adata).__name__}.")
    if not adata.isbacked:
        raise ValueError("adata is in memory, not backed by a file: write it with adata.write_h5ad(path).")
    obsm_key, uns_key = _keys(key_added)
    if obsm_key not in adata.obsm or uns_key not in adata.uns:
        raise ValueError(f"adata has no obsm[{obsm_key!r}] and uns[{uns_key!r}] to write: run ivis.scanpy.ivis first.")
    root = adata.file["/"]  # the file's h5py root group
    if root.file.mode != "r+":
        raise ValueError(
            f"{adata.filename} is open read-only. Open it for writing to store the embedding: "
            "adata = anndata.read_h5ad(path, backed='r+')."
        )
    groups = {"obsm": (obsm_key, adata.obsm[obsm_key]), "uns": (uns_key, dict(adata.uns[uns_key]))}
    present = [f"{group}/{key}" for group, (key, _) in groups.items() if f"{group}/{key}" in root]
    if present and not overwrite:
        raise ValueError(
            f"{adata.filename} already holds {' and '.join(present)}. Pass overwrite=True to replace "
            "them, or choose another key_added."
        )
    try:
        from anndata.io import write_elem
    except ImportError:  # anndata < 0.11
        from anndata.experimental import write_elem

    for group, (key, value) in groups.items():
        if f"{group}/{key}" in root:
            del root[group][key]
        write_elem(root.require_group(group), key, value)
    root.file.flush()
