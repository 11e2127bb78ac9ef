"""Peak memory of ivis.scanpy.ivis on a backed .h5ad file against the file loaded into memory.

The file is opened with ``anndata.read_h5ad(path, backed='r')`` or loaded whole, for a sparse
(CSR) and a dense ``X``. Results: bench/SINGLE_CELL.md, raw in bench/results/single_cell.json.

    .venv/bin/python bench/single_cell.py all                       # data (first time), then every run
    .venv/bin/python bench/single_cell.py fit --storage csr --backed

Every fit runs in a fresh child process that samples its own anonymous resident memory
(RssAnon, /proc/self/status) every 0.05 s, as bench/out_of_core.py does. The data: synthetic
counts of 100,000 cells and 1,000 genes in 10 cell types (about 10 % non-zero, log1p), written
with anndata to bench/data/ once.
"""

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from out_of_core import Sampler, _child, _mib  # noqa: E402

DATA = os.path.join(HERE, "data")
RESULTS = os.path.join(HERE, "results", "single_cell.json")
CELLS, GENES, TYPES = 100_000, 1_000, 10
# Ten Annoy trees instead of 50: the neighbour stage takes a fifth of the time, and its index is
# a memory-mapped file either way, so the memory compared here does not depend on it.
SETTINGS = dict(k=15, epochs=1, batch_size=128, n_trees=10, verbose=0)


def data_path(storage):
    return os.path.join(DATA, f"cells_{CELLS}_{storage}.h5ad")


def make_counts(seed=0, chunk=10_000):
    """Log-normalised counts: each type has its own gene means, most of them near zero."""
    import numpy as np
    from scipy import sparse

    rng = np.random.default_rng(seed)
    base = rng.lognormal(-2.6, 1.2, GENES)
    means = base * rng.lognormal(0, 1.0, (TYPES, GENES))
    types = rng.integers(0, TYPES, CELLS)
    blocks = []
    for start in range(0, CELLS, chunk):
        counts = rng.poisson(means[types[start:start + chunk]]).astype(np.float32)
        blocks.append(sparse.csr_matrix(np.log1p(counts)))
    return sparse.vstack(blocks, format="csr"), types


def cmd_data(args):
    import anndata
    import pandas as pd

    anndata.settings.allow_write_nullable_strings = True
    os.makedirs(DATA, exist_ok=True)
    X, types = make_counts()
    obs = pd.DataFrame({"cell_type": pd.Categorical([f"type{t}" for t in types])})
    obs.index = obs.index.astype(str)
    anndata.AnnData(X, obs=obs).write_h5ad(data_path("csr"))
    anndata.AnnData(X.toarray(), obs=obs).write_h5ad(data_path("dense"))
    print(json.dumps({"what": "data", "cells": CELLS, "genes": GENES, "nnz": int(X.nnz),
                      "csr_file_mib": _mib(os.path.getsize(data_path("csr"))),
                      "dense_file_mib": _mib(os.path.getsize(data_path("dense")))}))


def cmd_fit(args):
    sampler = Sampler()
    import anndata
    import keras  # noqa: F401  (its ~300 MiB belong to the baseline, not to either way of reading X)

    import ivis.scanpy

    baseline = sampler.read()
    start = sampler.now()
    adata = anndata.read_h5ad(data_path(args.storage), backed="r" if args.backed else None)
    loaded = sampler.now()
    model = ivis.scanpy.ivis(adata, random_state=0, **SETTINGS)
    end = sampler.now()
    split = loaded + model.timings_["neighbours"]
    sampler.stop()
    print(json.dumps({
        "what": "fit", "storage": args.storage, "backed": bool(args.backed), "cells": adata.n_obs,
        "genes": adata.n_vars, "shuffle_mode": adata.uns["ivis"]["params"]["shuffle_mode"],
        "load_s": round(loaded - start, 1), "neighbours_s": round(model.timings_["neighbours"], 1),
        "training_s": round(model.timings_["training"], 1), "total_s": round(end - start, 1),
        "rss_anon_baseline_mib": _mib(baseline), "rss_anon_after_load_mib": _mib(sampler.peak(start, loaded)),
        "peak_rss_anon_neighbours_mib": _mib(sampler.peak(loaded, split)),
        "peak_rss_anon_training_mib": _mib(sampler.peak(split, end)),
        "peak_rss_anon_mib": _mib(sampler.peak()),
    }))


def cmd_all(args):
    runs = []
    if not all(os.path.exists(data_path(s)) for s in ("csr", "dense")):
        runs.append(_child(["data"], __file__))
    for storage in ("csr", "dense"):
        for backed in (True, False):
            runs.append(_child(["fit", "--storage", storage] + (["--backed"] if backed else []), __file__))
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        json.dump({"command": "bench/single_cell.py all", "settings": SETTINGS, "runs": runs}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("data")
    fit = sub.add_parser("fit")
    fit.add_argument("--storage", choices=("csr", "dense"), required=True)
    fit.add_argument("--backed", action="store_true", help="open the file with backed='r' instead of loading it")
    sub.add_parser("all")
    args = parser.parse_args()
    {"data": cmd_data, "fit": cmd_fit, "all": cmd_all}[args.cmd](args)


if __name__ == "__main__":
    main()
