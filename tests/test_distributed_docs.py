"""The Python examples of docs/distributed.md run as written, in order."""

import pathlib
import re

import pytest

pytest.importorskip("dask.array")

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "distributed.md"


def test_distributed_examples_run(spark, tmp_path, monkeypatch):
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) == 4  # Dask transform, Dask fit, Spark transform, neighbours on Dask
    monkeypatch.chdir(tmp_path)
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), namespace)
    assert namespace["embedded"].columns == ["id", "features", "embedding"]
    assert namespace["on_dask"].neighbour_matrix_.shape == (6000, 10)
