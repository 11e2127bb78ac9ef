"""Out-of-core measurements: memory and speed of fitting on HDF5 files, streaming transform,
and the neighbour stage and network cost on wide sparse data. Results: bench/OUT_OF_CORE.md.

    .venv/bin/python bench/out_of_core.py all              # every measurement below, in order
    .venv/bin/python bench/out_of_core.py fit --rows 2m --precompute 1 --epochs 1
    .venv/bin/python bench/out_of_core.py transform --rows 2m --model DIR
    .venv/bin/python bench/out_of_core.py primes-neighbours --rows 1000000
    .venv/bin/python bench/out_of_core.py primes-network --rows 20000
    .venv/bin/python bench/out_of_core.py primes-fit --rows 1000000 --epochs 2
    .venv/bin/python bench/out_of_core.py gmm-epoch --rows 1000000     # 10M x 32 file, one epoch
    .venv/bin/python bench/out_of_core.py gmm-transform                # streaming transform, 10M rows

Every measurement runs in a fresh child process, which samples its own anonymous resident
memory (RssAnon, /proc/self/status) every 0.05 s and prints one JSON line. ``all`` collects
them into bench/results/out_of_core.json. The HDF5 files are the ``hdf5`` workload's
(bench/gmm_hdf5.py; generated on first use).
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

RESULTS = os.path.join(HERE, "results", "out_of_core.json")
SCRATCH = os.path.join(HERE, "data", "scratch")
MIB = 2**20


class Sampler(threading.Thread):
    """RssAnon of this process every ``interval`` seconds: overall peak and a trace."""

    def __init__(self, interval=0.05):
        super().__init__(daemon=True)
        from procstat import read_status

        self.read = lambda: read_status("self").get("RssAnon", 0)
        self.interval = interval
        self.trace = []
        self.start_time = time.perf_counter()
        self._halt = threading.Event()
        self.start()

    def run(self):
        while not self._halt.is_set():
            self.trace.append((time.perf_counter() - self.start_time, self.read()))
            self._halt.wait(self.interval)

    def now(self):
        return time.perf_counter() - self.start_time

    def peak(self, since=0.0, until=float("inf")):
        values = [rss for t, rss in self.trace if since <= t <= until]
        return max(values) if values else self.read()

    def stop(self):
        self._halt.set()
        self.join()


def _mib(value):
    return round(value / MIB, 1)


def _hdf5(rows):
    from workloads import ensure_hdf5

    return ensure_hdf5({"250k": "hdf5_250k", "2m": "hdf5_2m"}[rows])


def cmd_fit(args):
    sampler = Sampler()
    import h5py
    import numpy as np

    from ivis import Ivis

    handle = h5py.File(_hdf5(args.rows), "r")
    X = handle["data"]
    if args.in_memory:
        X = X[:]
    neighbours = np.load(args.neighbours, mmap_mode="r") if args.neighbours else None
    if neighbours is not None:
        neighbours = np.ascontiguousarray(neighbours)
    baseline = sampler.read()
    model = Ivis(
        k=15, epochs=args.epochs, batch_size=128, n_epochs_without_progress=3, precompute=bool(args.precompute),
        neighbour_matrix=neighbours, verbose=0, random_state=0,
    )
    start = sampler.now()
    model.fit(X, shuffle_mode=args.shuffle_mode)
    end = sampler.now()
    split = start + model.timings_["neighbours"]
    result = {
        "what": "fit", "rows": int(X.shape[0]), "in_memory": bool(args.in_memory), "precompute": bool(args.precompute),
        "shuffle_mode": args.shuffle_mode, "epochs": model.timings_["epochs"],
        "neighbours_s": round(model.timings_["neighbours"], 1), "training_s": round(model.timings_["training"], 1),
        "seconds_per_epoch": round(model.timings_["seconds_per_epoch"], 1),
        "rss_anon_baseline_mib": _mib(baseline),
        "peak_rss_anon_mib": _mib(sampler.peak()),
        "peak_rss_anon_neighbours_mib": _mib(sampler.peak(start, split)),
        "peak_rss_anon_training_mib": _mib(sampler.peak(split, end)),
        "neighbour_matrix_mib": None if model.neighbour_matrix_ is None else _mib(model.neighbour_matrix_.nbytes),
    }
    if args.save_neighbours and model.neighbour_matrix_ is not None:
        np.save(args.save_neighbours, model.neighbour_matrix_)
    if args.save_model:
        model.save_model(args.save_model, overwrite=True)
    sampler.stop()
    handle.close()
    print(json.dumps(result))


def _stream(model, X, out_path, sampler):
    """``(transform_to s, its peak, rows, transform_generator s, its peak)`` over all rows of ``X``."""
    n = X.shape[0]
    start = sampler.now()
    model.transform_to(X, (out_path, "embedding"), chunk_rows=8192)
    to_h5 = sampler.now() - start
    peak_to = sampler.peak(start)
    start = sampler.now()
    total = 0
    for part in model.transform_generator(X[i:i + 8192] for i in range(0, n, 8192)):
        total += len(part)
    return to_h5, peak_to, total, sampler.now() - start, sampler.peak(start)


def cmd_transform(args):
    sampler = Sampler()
    import h5py
    import numpy as np

    from ivis import load_model

    model = load_model(args.model)
    os.makedirs(SCRATCH, exist_ok=True)
    out_path = os.path.join(SCRATCH, "embedding.h5")
    if os.path.exists(out_path):
        os.remove(out_path)
    with h5py.File(_hdf5(args.rows), "r") as handle:
        X = handle["data"]
        n = X.shape[0]
        baseline = sampler.read()
        to_h5, peak_to, total, generator, _ = _stream(model, X, out_path, sampler)
        head = X[:250_000]
    start = sampler.now()
    model.transform(head)
    in_memory = sampler.now() - start
    sampler.stop()
    print(json.dumps({
        "what": "transform", "rows": n, "transform_to_hdf5_s": round(to_h5, 1),
        "transform_to_rows_per_s": int(n / to_h5), "transform_generator_rows_per_s": int(total / generator),
        "in_memory_transform_rows_per_s_250k": int(len(head) / in_memory),
        "rss_anon_baseline_mib": _mib(baseline), "peak_rss_anon_transform_to_mib": _mib(peak_to),
    }))


GMM_10M = os.path.join(HERE, "data", "gmm_10mx32.h5")


class HeadRows:
    """The first ``n`` rows of an h5py dataset, read on demand (an indexable row source)."""

    def __init__(self, dataset, n):
        self.dataset = dataset
        self.shape = (int(n),) + tuple(dataset.shape[1:])
        self.dtype = dataset.dtype
        self.ndim = dataset.ndim

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, index):
        return self.dataset[index]


def _gmm_10m():
    from gmm_hdf5 import write_mixture

    return write_mixture(GMM_10M, 10_000_000, n_features=32)


def cmd_gmm_epoch(args):
    """One training epoch on the first ``--rows`` rows of the 10M x 32 file, shuffle_mode='batch'.

    Random neighbours (training cost only); the HDF5 rows stay on disk.
    """
    sampler = Sampler()
    import h5py
    import numpy as np

    from ivis import Ivis

    neighbours = np.random.default_rng(1).integers(0, args.rows, (args.rows, 15), dtype=np.int32)
    with h5py.File(_gmm_10m(), "r") as handle:
        X = HeadRows(handle["data"], args.rows)
        baseline = sampler.read()
        model = Ivis(k=15, epochs=1, batch_size=128, neighbour_matrix=neighbours, verbose=0, random_state=0)
        start = sampler.now()
        model.fit(X, shuffle_mode="batch")
        peak = sampler.peak(start)
    sampler.stop()
    print(json.dumps({
        "what": "gmm-epoch", "rows": args.rows, "seconds_per_epoch": round(model.timings_["seconds_per_epoch"], 1),
        "training_s": round(model.timings_["training"], 1), "rss_anon_before_fit_mib": _mib(baseline),
        "peak_rss_anon_mib": _mib(peak), "neighbour_matrix_mib": _mib(neighbours.nbytes),
    }))


def cmd_gmm_transform(args):
    """Streaming transform of all 10M rows: transform_to an HDF5 file and transform_generator."""
    sampler = Sampler()
    import h5py

    from ivis import Ivis

    os.makedirs(SCRATCH, exist_ok=True)
    out_path = os.path.join(SCRATCH, "embedding_10m.h5")
    if os.path.exists(out_path):
        os.remove(out_path)
    with h5py.File(_gmm_10m(), "r") as handle:
        X = handle["data"]
        model = Ivis(k=15, epochs=1, batch_size=128, verbose=0, random_state=0).fit(X[:20_000])
        n = X.shape[0]
        baseline = sampler.read()
        to_h5, peak_to, total, generator, peak_generator = _stream(model, X, out_path, sampler)
    os.remove(out_path)
    sampler.stop()
    print(json.dumps({
        "what": "gmm-transform", "rows": n, "transform_to_s": round(to_h5, 1),
        "transform_to_rows_per_s": int(n / to_h5), "transform_generator_rows_per_s": int(total / generator),
        "rss_anon_before_mib": _mib(baseline), "peak_rss_anon_transform_to_mib": _mib(peak_to),
        "peak_rss_anon_generator_mib": _mib(peak_generator),
    }))


def cmd_primes_neighbours(args):
    """Neighbour stage on the primes matrix and its recall: Annoy (projection + re-ranking)
    or ``--search clustered`` (exact distances within nearby clusters, on the sparse rows)."""
    sampler = Sampler()
    import tempfile

    import numpy as np

    from ivis.data.inputs import as_row_source
    from ivis.data.neighbour_retrieval import AnnoyKnnMatrix
    from ivis.data.projection import PROJECTED_MAX_TREES, PROJECTION_DIMS, candidate_count, uses_projection
    from metrics import InputSpace
    from primes import prime_factor_matrix, smallest_prime_factor_labels

    X, _ = prime_factor_matrix(args.rows)
    baseline = sampler.read()
    if args.search == "clustered":
        from ivis.data.neighbour_retrieval.clustered import clustered_neighbours

        start, cpu = time.perf_counter(), time.process_time()
        neighbours = clustered_neighbours(X, 15, "angular", random_state=0)
        built, extracted = 0.0, time.perf_counter() - start
        built_cpu, extracted_cpu = 0.0, time.process_time() - cpu
    else:
        folder = tempfile.mkdtemp(prefix="ivis-primes-", dir=SCRATCH if os.path.isdir(SCRATCH) else None)
        start, cpu = time.perf_counter(), time.process_time()
        matrix = AnnoyKnnMatrix.build(X, os.path.join(folder, "p.ann"), k=15, verbose=0, random_state=0)
        built, built_cpu = time.perf_counter() - start, time.process_time() - cpu
        start, cpu = time.perf_counter(), time.process_time()
        neighbours = matrix.get_neighbour_indices()
        extracted, extracted_cpu = time.perf_counter() - start, time.process_time() - cpu
        matrix.delete_index(parent=True)
    peak = sampler.peak()
    if args.save_neighbours:
        np.save(args.save_neighbours, neighbours)
    recall = InputSpace(X, smallest_prime_factor_labels(args.rows)).graph_recall(neighbours, "angular")
    sampler.stop()
    print(json.dumps({
        "what": "primes-neighbours", "search": args.search, "rows": X.shape[0], "columns": X.shape[1], "nnz": int(X.nnz),
        "projected": uses_projection(as_row_source(X), "angular"), "candidates": candidate_count(15, X.shape[0]),
        "projection_columns": PROJECTION_DIMS, "trees": PROJECTED_MAX_TREES,
        "build_s": round(built, 1), "extract_s": round(extracted, 1),
        "build_cpu_s": round(built_cpu, 1), "extract_cpu_s": round(extracted_cpu, 1), "graph_recall_1000_queries": recall["graph_recall"],
        "rss_anon_after_data_mib": _mib(baseline), "peak_rss_anon_mib": _mib(peak),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }))


def cmd_primes_fit(args):
    """``Ivis(...).fit_transform`` on the primes rows end to end: time per stage, peak memory,
    recall of the neighbour matrix on 1,000 rows and the embedding's 15-NN accuracy of the
    smallest prime factor (bucketed)."""
    sampler = Sampler()
    import resource

    from ivis import Ivis
    from metrics import InputSpace, knn_accuracy
    from primes import prime_factor_matrix, smallest_prime_factor_labels

    X, _ = prime_factor_matrix(args.rows)
    y = smallest_prime_factor_labels(args.rows)
    baseline = sampler.read()
    model = Ivis(k=15, model="szubert", epochs=args.epochs, verbose=0, random_state=0)
    start = time.perf_counter()
    embedding = model.fit_transform(X)
    total = time.perf_counter() - start
    peak = sampler.peak()
    maxrss_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    recall = InputSpace(X, y).graph_recall(model.neighbour_matrix_, "angular")
    sampler.stop()
    timings = model.timings_
    print(json.dumps({
        "what": "primes-fit", "rows": X.shape[0], "columns": X.shape[1], "epochs": timings["epochs"],
        "fit_transform_s": round(total, 1), "neighbours_s": round(timings["neighbours"], 1),
        "training_s": round(timings["training"], 1), "seconds_per_epoch": round(timings["seconds_per_epoch"], 1),
        "model_build_and_transform_s": round(total - timings["neighbours"] - timings["training"], 1),
        "graph_recall_1000_queries": recall["graph_recall"], "knn_accuracy_spf": round(knn_accuracy(embedding, y), 4),
        "ru_maxrss_mib": round(maxrss_mib, 1), "peak_rss_anon_mib": _mib(peak), "rss_anon_after_data_mib": _mib(baseline),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }))


def cmd_primes_network(args):
    """Seconds per batch and per epoch of training on primes rows of all 78,498 columns.

    Wide sparse rows train through the sparse first layer (ivis.nn.sparse_input); the
    neighbour stage is skipped (random neighbours), so only the network's cost is measured.
    """
    sampler = Sampler()
    import numpy as np

    from ivis import Ivis
    from primes import prime_factor_matrix

    X, _ = prime_factor_matrix(1_000_000)
    if args.rows < X.shape[0]:
        X = X[np.random.default_rng(0).choice(X.shape[0], args.rows, replace=False)]
    neighbours = np.random.default_rng(1).integers(0, args.rows, (args.rows, 15))  # training cost only
    model = Ivis(k=15, epochs=1, batch_size=128, neighbour_matrix=neighbours, verbose=0, random_state=0)
    start = sampler.now()
    model.fit(X)
    batches = -(-args.rows // 128)
    per_batch = model.timings_["training"] / batches
    t = time.perf_counter()
    model.transform(X[:4096])
    transform_rows_per_s = 4096 / (time.perf_counter() - t)
    sampler.stop()
    print(json.dumps({
        "what": "primes-network", "rows": args.rows, "columns": X.shape[1], "batches": batches,
        "seconds_per_batch": round(per_batch, 3), "estimated_epoch_s_1m_rows": round(per_batch * 1_000_000 / 128),
        "dense_batch_mib": _mib(3 * 128 * X.shape[1] * 4), "first_layer_params": X.shape[1] * 500,
        "seconds_per_epoch": round(model.timings_["seconds_per_epoch"], 1),
        "transform_rows_per_s": int(transform_rows_per_s), "peak_rss_anon_mib": _mib(sampler.peak(start)),
    }))


def _child(argv, script=__file__):
    """Run ``script argv`` in a fresh process; its last JSON line, or the error it ended with."""
    started = time.time()
    proc = subprocess.run([sys.executable, os.path.abspath(script), *argv], capture_output=True, text=True)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode or not lines:
        result = {"what": argv[0], "argv": argv, "error": proc.stderr[-3000:]}
    else:
        result = json.loads(lines[-1])
    result["argv"] = argv
    result["wall_s"] = round(time.time() - started, 1)
    print(json.dumps(result), flush=True)
    return result


def cmd_all(args):
    os.makedirs(SCRATCH, exist_ok=True)
    neighbours = os.path.join(SCRATCH, "neighbours_2m.npy")
    model_dir = os.path.join(SCRATCH, "model_2m")
    plan = [
        ["fit", "--rows", "250k", "--precompute", "1"],
        ["fit", "--rows", "250k", "--precompute", "0"],
        ["fit", "--rows", "2m", "--precompute", "1", "--save-neighbours", neighbours, "--save-model", model_dir],
        ["fit", "--rows", "2m", "--precompute", "0"],
        ["fit", "--rows", "2m", "--in-memory", "--neighbours", neighbours],
        ["fit", "--rows", "2m", "--neighbours", neighbours],
        ["transform", "--rows", "2m", "--model", model_dir],
        ["primes-network", "--rows", "20000"],
        ["primes-neighbours", "--rows", "1000000"],
    ]
    only = set(args.only.split(",")) if args.only else None
    results = []
    if os.path.exists(RESULTS):
        with open(RESULTS) as f:
            results = json.load(f)["runs"]
    for i, argv in enumerate(plan):
        if only is not None and str(i) not in only:
            continue
        result = _child(argv)
        results = [r for r in results if r.get("argv") != argv] + [result]
        os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
        with open(RESULTS, "w") as f:
            json.dump({"command": "bench/out_of_core.py all", "runs": results}, f, indent=1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    fit = sub.add_parser("fit")
    fit.add_argument("--rows", choices=("250k", "2m"), required=True)
    fit.add_argument("--precompute", type=int, default=1)
    fit.add_argument("--epochs", type=int, default=1)
    fit.add_argument("--shuffle-mode", default="batch", type=lambda s: {"true": True, "false": False}.get(s, s))
    fit.add_argument("--in-memory", action="store_true", help="read the whole file into memory first")
    fit.add_argument("--neighbours", help="a saved neighbour matrix (.npy) to skip the neighbour stage")
    fit.add_argument("--save-neighbours")
    fit.add_argument("--save-model")
    transform = sub.add_parser("transform")
    transform.add_argument("--rows", choices=("250k", "2m"), required=True)
    transform.add_argument("--model", required=True)
    primes_nb = sub.add_parser("primes-neighbours")
    primes_nb.add_argument("--rows", type=int, default=1_000_000)
    primes_nb.add_argument("--search", choices=("annoy", "clustered"), default="annoy")
    primes_nb.add_argument("--save-neighbours")
    primes_fit = sub.add_parser("primes-fit")
    primes_fit.add_argument("--rows", type=int, default=1_000_000)
    primes_fit.add_argument("--epochs", type=int, default=2)
    primes_net = sub.add_parser("primes-network")
    primes_net.add_argument("--rows", type=int, default=20_000)
    gmm_epoch = sub.add_parser("gmm-epoch")
    gmm_epoch.add_argument("--rows", type=int, default=1_000_000)
    sub.add_parser("gmm-transform")
    everything = sub.add_parser("all")
    everything.add_argument("--only", help="comma-separated positions in the plan (0-based)")
    args = parser.parse_args()
    {
        "fit": cmd_fit, "transform": cmd_transform, "primes-neighbours": cmd_primes_neighbours,
        "primes-fit": cmd_primes_fit, "primes-network": cmd_primes_network, "gmm-epoch": cmd_gmm_epoch, "gmm-transform": cmd_gmm_transform,
        "all": cmd_all,
    }[args.cmd](args)


if __name__ == "__main__":
    main()
