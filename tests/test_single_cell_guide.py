"""docs/single-cell.md runs as written: its Python blocks, in order, in one namespace."""

import re
from pathlib import Path

import numpy as np

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "single-cell.md"


def python_blocks(text):
    """The code of every fenced ``python`` block of a Markdown text, in order."""
    return re.findall(r"^```python\n(.*?)^```$", text, flags=re.DOTALL | re.MULTILINE)


def test_guide_runs_and_does_what_it_says(tmp_path, monkeypatch):
    import anndata
    import pandas as pd

    monkeypatch.chdir(tmp_path)
    blocks = python_blocks(GUIDE.read_text(encoding="utf-8"))
    assert len(blocks) >= 6
    namespace = {}
    # The guide sets pandas' string storage and an anndata setting: both are put back afterwards.
    allowed = anndata.settings.allow_write_nullable_strings
    try:
        with pd.option_context("mode.string_storage", pd.get_option("mode.string_storage")):
            for number, code in enumerate(blocks, 1):
                exec(compile(code, f"{GUIDE.name}, Python block {number}", "exec"), namespace)
    finally:
        anndata.settings.allow_write_nullable_strings = allowed

    adata, new = namespace["adata"], namespace["new"]
    assert (tmp_path / "pbmc_ivis.png").stat().st_size > 0
    for key in ("X_ivis", "X_ivis_graph", "X_ivis_supervised", "X_ivis_semi"):
        assert adata.obsm[key].shape == (700, 2)
    assert adata.uns["X_ivis_semi"]["params"]["labels"] == "known_type"
    assert new.obsm["X_ivis"].shape == (175, 2)
    assert set(new.obs["predicted_type"]) <= set(adata.obs["bulk_labels"])
    assert 0 <= namespace["accuracy"] <= 1
    stored = anndata.read_h5ad(tmp_path / "pbmc.h5ad")
    assert stored.obsm["X_ivis_genes"].shape == (700, 2)
    assert np.isfinite(stored.obsm["X_ivis_genes"]).all()


def test_python_blocks_are_found():
    text = "a\n```python\nx = 1\n```\n```r\ny <- 2\n```\n```python\nz = 3\n```\n"
    assert python_blocks(text) == ["x = 1\n", "z = 3\n"]
