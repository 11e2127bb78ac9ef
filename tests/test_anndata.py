"""AnnData and scanpy: inputs, the scanpy-style entry point, scanpy's neighbour graph, backed files."""

import subprocess
import sys

import anndata
import h5py
import numpy as np
import pytest
import scanpy as sc
from scipy import sparse

import ivis.scanpy
from ivis import Ivis
from ivis.data.anndata import BackedCSRRows, anndata_rows, graph_neighbours

from conftest import FAST



@pytest.fixture(autouse=True, scope="module")
def writable_strings():
    """anndata 0.12 writes pandas 3's strings to .h5ad only when Python (not pyarrow) keeps
    them and it is allowed to; both settings are put back after this module."""
    import pandas as pd

    allowed = anndata.settings.allow_write_nullable_strings
    anndata.settings.allow_write_nullable_strings = True
    with pd.option_context("mode.string_storage", "python"):
        yield
    anndata.settings.allow_write_nullable_strings = allowed


@pytest.fixture(scope="module")
def pbmc():
    """scanpy's bundled 700 PBMCs: X (765 genes), X_pca and the graph of sc.pp.neighbors (n_neighbors=10)."""
    return sc.datasets.pbmc68k_reduced()


def _blobs(sparse_x=False, n=300):
    from sklearn.datasets import make_blobs

    X, y = make_blobs(n_samples=n, n_features=20, centers=3, random_state=0)
    X = (X - X.min()).astype(np.float32)
    X[X < np.median(X)] = 0  # half zeros, as counts are
    adata = anndata.AnnData(sparse.csr_matrix(X) if sparse_x else X)
    adata.obs["group"] = [f"g{label}" for label in y]
    return adata


def _write(adata, path):
    adata.write_h5ad(path)
    return path


# ------------------------------------------------------------------ estimator inputs


@pytest.mark.parametrize("sparse_x", [False, True], ids=["dense", "sparse"])
def test_estimator_reads_an_anndatas_x(sparse_x):
    adata = _blobs(sparse_x)
    model = Ivis(**FAST)
    embedding = model.fit_transform(adata)
    np.testing.assert_array_equal(embedding, Ivis(**FAST).fit_transform(adata.X))
    np.testing.assert_array_equal(model.transform(adata), embedding)
    assert model.n_features_in_ == adata.n_vars


def test_score_samples_reads_an_anndata():
    adata = _blobs()
    model = Ivis(**FAST).fit(adata, adata.obs["group"])
    scores = model.score_samples(adata)
    assert scores.shape == (adata.n_obs, 3)
    np.testing.assert_array_equal(scores, model.score_samples(adata.X))


def test_anndata_rows_picks_obsm_and_layers(pbmc):
    assert anndata_rows(pbmc) is pbmc.X
    assert anndata_rows(pbmc, use_rep="X") is pbmc.X
    np.testing.assert_array_equal(anndata_rows(pbmc, use_rep="X_pca"), pbmc.obsm["X_pca"])
    adata = _blobs()
    adata.layers["counts"] = adata.X * 2
    np.testing.assert_array_equal(anndata_rows(adata, layer="counts"), adata.X * 2)


def test_transform_of_new_cells_with_other_genes_is_refused(pbmc):
    model = Ivis(**FAST).fit(pbmc)
    with pytest.raises(ValueError, match="765 features"):
        model.transform(pbmc[:, :100].copy())


def test_import_ivis_does_not_load_anndata():
    code = (
        "import sys, numpy as np, ivis, ivis.scanpy\n"
        "from ivis.data.inputs import as_row_source\n"
        "as_row_source(np.ones((4, 2)))\n"
        "assert 'anndata' not in sys.modules and 'scanpy' not in sys.modules, 'loaded'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ------------------------------------------------------------------ ivis.scanpy.ivis


def test_scanpy_entry_point_writes_the_estimators_embedding(pbmc):
    adata = pbmc.copy()
    model = ivis.scanpy.ivis(adata, use_rep="X_pca", **FAST)
    expected = Ivis(**FAST).fit_transform(pbmc.obsm["X_pca"])
    np.testing.assert_array_equal(adata.obsm["X_ivis"], expected)
    record = adata.uns["ivis"]
    assert record["version"] == ivis.__version__
    assert record["params"]["use_rep"] == "X_pca"
    assert record["params"]["k"] == FAST["k"] and record["params"]["random_state"] == 0
    # The returned model embeds new cells where the written embedding put them.
    np.testing.assert_allclose(model.transform(anndata_rows(adata[:50], use_rep="X_pca")), expected[:50], atol=1e-5)


def test_scanpy_entry_point_key_added_copy_and_labels(pbmc, tmp_path):
    original = pbmc.copy()
    labels = original.obs["bulk_labels"].astype(object)
    labels[::2] = None  # every other cell unlabelled: semi-supervised
    original.obs["some_labels"] = labels
    copied, model = ivis.scanpy.ivis(original, use_rep="X_pca", labels="some_labels", key_added="ivis_sup", copy=True, **FAST)
    assert "ivis_sup" not in original.obsm and "ivis_sup" in copied.obsm
    assert copied.uns["ivis_sup"]["params"]["labels"] == "some_labels"
    supervised = Ivis(**FAST).fit_transform(original.obsm["X_pca"], labels)
    np.testing.assert_array_equal(copied.obsm["ivis_sup"], supervised)
    assert list(model.classes_) == sorted(set(labels.dropna()))
    # What was recorded survives an .h5ad round trip.
    back = anndata.read_h5ad(_write(copied, tmp_path / "sup.h5ad"))
    np.testing.assert_array_equal(back.obsm["ivis_sup"], supervised)
    assert back.uns["ivis_sup"]["params"]["use_rep"] == "X_pca"


# ------------------------------------------------------------------ scanpy's neighbour graph


def test_graph_of_scanpy_neighbors_becomes_the_neighbour_matrix(pbmc):
    adata = pbmc.copy()
    sc.pp.neighbors(adata, n_neighbors=6, use_rep="X_pca", method="gauss", key_added="six")
    model = ivis.scanpy.ivis(adata, use_rep="X_pca", use_graph=True, neighbors_key="six", **{**FAST, "k": None})
    distances = adata.obsp["six_distances"].tocsr()
    neighbours = model.neighbour_matrix_
    assert neighbours.shape == (adata.n_obs, 5) and adata.uns["ivis"]["params"]["k"] == 5
    for row in range(adata.n_obs):
        stored = distances[row]
        assert set(neighbours[row]) == set(stored.indices)
        assert row not in neighbours[row]
        # nearest first
        assert np.all(np.diff(distances[row, neighbours[row]].toarray().ravel()) >= 0)
    # The neighbour stage was skipped: the same embedding as given this matrix directly.
    direct = Ivis(**{**FAST, "k": 5}, neighbour_matrix=neighbours).fit_transform(adata.obsm["X_pca"])
    np.testing.assert_array_equal(adata.obsm["X_ivis"], direct)


def test_graph_neighbours_k_takes_the_nearest_and_refuses_more_than_stored(pbmc):
    distances = pbmc.obsp["distances"]  # sc.pp.neighbors(n_neighbors=10): 9 per cell
    nine = graph_neighbours(distances)
    assert nine.shape == (pbmc.n_obs, 9)
    np.testing.assert_array_equal(graph_neighbours(distances, k=4), nine[:, :4])
    with pytest.raises(ValueError, match=r"has 9 neighbour\(s\).*n_neighbors=11"):
        graph_neighbours(distances, k=10)


def test_graph_neighbours_leaves_the_cell_out_and_keeps_duplicates():
    # Row 0 lists itself (distance 0) and a duplicate cell stored as an explicit zero.
    rows = [0, 0, 0, 1, 1, 2, 2]
    cols = [0, 2, 1, 0, 2, 1, 0]
    vals = [0.0, 0.0, 3.0, 3.0, 1.0, 1.0, 0.0]
    graph = sparse.csr_matrix((vals, (rows, cols)), shape=(3, 3))
    assert graph.nnz == 7  # the zeros are stored entries
    np.testing.assert_array_equal(graph_neighbours(graph), [[2, 1], [2, 0], [0, 1]])


def test_use_graph_without_neighbors_says_what_to_run():
    with pytest.raises(ValueError, match=r"scanpy.pp.neighbors\(adata\) first"):
        ivis.scanpy.ivis(_blobs(), use_graph=True, **FAST)


def test_graph_with_a_cell_without_neighbours_is_refused():
    graph = sparse.csr_matrix(np.array([[0, 1.0, 0], [1.0, 0, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"Cell 2 \(0-based\) has 0 neighbour"):
        graph_neighbours(graph)
    with pytest.raises(ValueError, match="square sparse matrix"):
        graph_neighbours(np.zeros((3, 3)))


# ------------------------------------------------------------------ backed AnnData


def test_backed_dense_x_trains_from_the_file(tmp_path):
    adata = _blobs()
    path = _write(adata, tmp_path / "dense.h5ad")
    backed = anndata.read_h5ad(path, backed="r")
    assert isinstance(anndata_rows(backed), h5py.Dataset)  # read from the file, batch by batch
    model = ivis.scanpy.ivis(backed, **FAST)
    assert backed.isbacked and backed.uns["ivis"]["params"]["shuffle_mode"] == "batch"
    in_memory = Ivis(**FAST).fit_transform(adata.X, shuffle_mode="batch")
    np.testing.assert_array_equal(backed.obsm["X_ivis"], in_memory)
    np.testing.assert_array_equal(model.transform(backed), in_memory)
    backed.file.close()


def test_backed_sparse_x_trains_from_the_file(tmp_path):
    adata = _blobs(sparse_x=True)
    backed = anndata.read_h5ad(_write(adata, tmp_path / "sparse.h5ad"), backed="r")
    rows = anndata_rows(backed)
    assert isinstance(rows, BackedCSRRows) and rows.shape == adata.shape
    wanted = np.array([5, 3, 4, 299, 3, 0, 150, 151, 153])  # unsorted, repeated, runs and gaps
    np.testing.assert_array_equal(rows.get_batch(wanted), adata.X[wanted].toarray())
    embedding = Ivis(**FAST).fit_transform(backed, shuffle_mode="batch")
    np.testing.assert_array_equal(embedding, Ivis(**FAST).fit_transform(adata.X, shuffle_mode="batch"))
    backed.file.close()


def test_backed_csc_x_is_refused_with_the_fix(tmp_path):
    adata = anndata.AnnData(sparse.csc_matrix(_blobs().X))
    backed = anndata.read_h5ad(_write(adata, tmp_path / "csc.h5ad"), backed="r")
    with pytest.raises(ValueError, match=r"CSC matrix on disk.*tocsr"):
        Ivis(**FAST).fit(backed)
    backed.file.close()


def test_write_embedding_stores_it_in_the_file_and_never_overwrites_silently(tmp_path):
    path = _write(_blobs(), tmp_path / "cells.h5ad")
    backed = anndata.read_h5ad(path, backed="r+")
    ivis.scanpy.ivis(backed, **FAST)
    ivis.scanpy.write_embedding(backed)
    first = backed.obsm["X_ivis"].copy()
    with pytest.raises(ValueError, match="already holds obsm/X_ivis.*overwrite=True"):
        ivis.scanpy.write_embedding(backed)
    backed.file.close()
    back = anndata.read_h5ad(path)
    np.testing.assert_array_equal(back.obsm["X_ivis"], first)
    assert back.uns["ivis"]["version"] == ivis.__version__
    np.testing.assert_array_equal(back.X, _blobs().X)

    again = anndata.read_h5ad(path, backed="r+")
    ivis.scanpy.ivis(again, **{**FAST, "random_state": 1})
    ivis.scanpy.write_embedding(again, overwrite=True)
    again.file.close()
    assert not np.array_equal(anndata.read_h5ad(path).obsm["X_ivis"], first)


def test_write_embedding_refuses_read_only_and_in_memory_data(tmp_path):
    path = _write(_blobs(), tmp_path / "cells.h5ad")
    backed = anndata.read_h5ad(path, backed="r")
    ivis.scanpy.ivis(backed, **FAST)
    with pytest.raises(ValueError, match=r"open read-only.*backed='r\+'"):
        ivis.scanpy.write_embedding(backed)
    backed.file.close()
    assert "X_ivis" not in h5py.File(path, "r")["obsm"]
    with pytest.raises(ValueError, match="write_h5ad"):
        ivis.scanpy.write_embedding(_blobs())
    with pytest.raises(ValueError, match="copy=True would load"):
        ivis.scanpy.ivis(anndata.read_h5ad(path, backed="r"), copy=True, **FAST)


# ------------------------------------------------------------------ errors


def test_missing_use_rep_names_the_keys_there_are(pbmc):
    with pytest.raises(ValueError, match=r"no 'X_tsne'; its keys are: 'X_pca', 'X_umap'"):
        ivis.scanpy.ivis(pbmc, use_rep="X_tsne", **FAST)


def test_missing_obs_column_names_the_columns(pbmc):
    with pytest.raises(ValueError, match=r"no column 'cell_type'; its columns are: 'bulk_labels'"):
        ivis.scanpy.ivis(pbmc, use_rep="X_pca", labels="cell_type", **FAST)


def test_missing_layer_and_both_choices_are_refused(pbmc):
    with pytest.raises(ValueError, match="adata.layers has no 'counts'; its layers are: none"):
        anndata_rows(pbmc, layer="counts")
    with pytest.raises(ValueError, match="not both"):
        anndata_rows(pbmc, use_rep="X_pca", layer="counts")
    with pytest.raises(TypeError, match="must be an anndata.AnnData"):
        ivis.scanpy.ivis(np.ones((10, 2)))


def test_labels_of_the_wrong_length_are_refused(pbmc):
    with pytest.raises(ValueError, match="700"):
        ivis.scanpy.ivis(pbmc, use_rep="X_pca", labels=np.arange(10), **FAST)
