"""Supervised benchmarks: classification, semi-supervised classification and regression.

Run from the repository root:

    .venv/bin/python bench/supervised.py [--epochs 30] [--epochs-without-progress 5] [--with-prev] [--out bench/results/supervised.json]

Workloads (all offline):

- Fashion-MNIST (Debian package ``dataset-fashion-mnist``; train 60,000 / test 10,000):
  supervised ivis with ``supervision_weight=0.9``; test accuracy of ``score_samples`` and of a
  15-NN classifier trained on the train embeddings and scored on the test embeddings.
- The same with negatives drawn from all rows (``negative_sampling='all_rows'``), for the
  comparison with the default (negatives from the other anchors of a batch).
- The same with 50% of the training labels masked (``-1``): semi-supervised accuracy.
- scikit-learn's diabetes data (75/25 splits, standardised features and target) with
  ``supervision_metric='mae'``: test R^2 of ``score_samples`` over several splits; a linear
  regression for scale.
- With ``--with-prev``: the Fashion-MNIST runs with the previous release (``bench/.venv-prev``,
  ``supervision_weight`` 0.5 and 0.9), in the same invocation, for the time comparison.

Results are printed as a markdown table and written as JSON.
"""

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def fashion_mnist():
    from workloads import load  # the benchmark suite's loader (Debian package files)

    workload = load("fmnist")  # train rows first, then the 10,000 test rows
    return workload.X, workload.y


def classification_scores(train_embedding, test_embedding, y_train, y_test, predicted):
    """Test accuracy of the predicted classes and of a 15-NN classifier on the embeddings."""
    from sklearn.neighbors import KNeighborsClassifier

    knn = KNeighborsClassifier(15).fit(train_embedding, y_train)
    return {
        "score_samples_accuracy": float(np.mean(predicted == y_test)),
        "knn15_test_accuracy": float(knn.score(test_embedding, y_test)),
    }


def classification(X_train, y_train, X_test, y_test, labels, weight, patience, epochs, seed, negative_sampling="in_batch"):
    from ivis import Ivis

    model = Ivis(k=15, supervision_weight=weight, n_epochs_without_progress=patience, epochs=epochs,
                 negative_sampling=negative_sampling, verbose=0, random_state=seed)
    start = time.perf_counter()
    train_embedding = model.fit_transform(X_train, labels)
    seconds = time.perf_counter() - start
    predicted = model.classes_[model.score_samples(X_test).argmax(axis=1)]
    scores = classification_scores(train_embedding, model.transform(X_test), y_train, y_test, predicted)
    return {**scores, "seconds": seconds, "epochs": model.timings_["epochs"]}


def regression(patience, seeds):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import LinearRegression
    from sklearn.metrics import r2_score
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    from ivis import Ivis

    X, y = load_diabetes(return_X_y=True)
    splits = []
    for seed in seeds:
        X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=seed)
        scaler = StandardScaler().fit(X_train)
        y_mean, y_std = y_train.mean(), y_train.std()
        model = Ivis(k=15, batch_size=32, supervision_metric="mae", supervision_weight=0.9,
                     n_epochs_without_progress=patience * 4, verbose=0, random_state=seed)
        start = time.perf_counter()
        model.fit(scaler.transform(X_train), (y_train - y_mean) / y_std)
        seconds = time.perf_counter() - start
        predicted = model.score_samples(scaler.transform(X_test))[:, 0] * y_std + y_mean
        fitted = model.score_samples(scaler.transform(X_train))[:, 0] * y_std + y_mean
        linear = LinearRegression().fit(X_train, y_train).predict(X_test)
        splits.append({
            "split_seed": seed,
            "r2": float(r2_score(y_test, predicted)),
            "train_r2": float(r2_score(y_train, fitted)),
            "test_correlation": float(np.corrcoef(y_test, predicted)[0, 1]),
            "linear_regression_r2": float(r2_score(y_test, linear)),
            "seconds": seconds,
            "epochs": model.timings_["epochs"],
        })
    mean = {key: float(np.mean([split[key] for split in splits]))
            for key in ("r2", "train_r2", "test_correlation", "linear_regression_r2", "seconds", "epochs")}
    return {**mean, "splits": splits}


def previous_release(X_train, y_train, X_test, y_test, epochs, patience, seed):
    """Run ``supervised_prev.py`` under the previous release's venv; its results, or why not."""
    import subprocess
    import tempfile

    from implementations import PREV_VENV

    python = os.path.join(PREV_VENV, "bin", "python")
    if not os.path.exists(python):
        return {"unavailable": f"{PREV_VENV} does not exist (bash bench/run.sh creates it)"}
    with tempfile.TemporaryDirectory() as scratch:
        for name, values in (("X_train", X_train), ("y_train", y_train), ("X_test", X_test), ("y_test", y_test)):
            np.save(os.path.join(scratch, name + ".npy"), values)
        script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "supervised_prev.py")
        done = subprocess.run(
            [python, script, scratch, str(epochs), str(patience), str(seed)], cwd=scratch, capture_output=True,
            text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""},
        )
    if done.returncode != 0:
        return {"unavailable": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs-without-progress", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=30, help="most epochs per Fashion-MNIST fit (as the reference runs)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--diabetes-splits", type=int, default=5, help="75/25 splits of the diabetes data (seeds 0..N-1)")
    parser.add_argument("--with-prev", action="store_true", help="also run the previous release (bench/.venv-prev)")
    parser.add_argument("--out", default="bench/results/supervised.json")
    args = parser.parse_args()

    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    X, y = fashion_mnist()
    X_train, y_train, X_test, y_test = X[:60000], y[:60000], X[60000:], y[60000:]
    results["fmnist_supervised"] = classification(
        X_train, y_train, X_test, y_test, y_train, 0.9, args.epochs_without_progress, args.epochs, args.seed
    )
    print("fmnist_supervised", results["fmnist_supervised"], flush=True)
    results["fmnist_supervised_all_rows"] = classification(
        X_train, y_train, X_test, y_test, y_train, 0.9, args.epochs_without_progress, args.epochs, args.seed, "all_rows"
    )
    print("fmnist_supervised_all_rows", results["fmnist_supervised_all_rows"], flush=True)
    masked = y_train.astype(np.int64).copy()
    masked[np.random.default_rng(args.seed).permutation(len(masked))[: len(masked) // 2]] = -1
    results["fmnist_semi_supervised_50pct"] = classification(
        X_train, y_train, X_test, y_test, masked, 0.9, args.epochs_without_progress, args.epochs, args.seed
    )
    print("fmnist_semi_supervised_50pct", results["fmnist_semi_supervised_50pct"], flush=True)
    results["diabetes_mae"] = regression(args.epochs_without_progress, range(args.diabetes_splits))
    print("diabetes_mae", {k: v for k, v in results["diabetes_mae"].items() if k != "splits"}, flush=True)
    if args.with_prev:
        results["previous_release"] = previous_release(
            X_train, y_train, X_test, y_test, args.epochs, args.epochs_without_progress, args.seed
        )
        print("previous_release", results["previous_release"], flush=True)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print("| workload | metric | value | seconds | epochs |\n| --- | --- | --- | --- | --- |")
    for name in ("fmnist_supervised", "fmnist_supervised_all_rows", "fmnist_semi_supervised_50pct"):
        r = results[name]
        print(f"| {name} | score_samples acc / 15-NN acc | {r['score_samples_accuracy']:.3f} / {r['knn15_test_accuracy']:.3f} | {r['seconds']:.0f} | {r['epochs']} |")
    r = results["diabetes_mae"]
    print(f"| diabetes_mae, mean of {len(r['splits'])} splits | test R^2 (linear regression) | {r['r2']:.3f} ({r['linear_regression_r2']:.3f}) | {r['seconds']:.0f} | {r['epochs']:.0f} |")
    for name, r in results.get("previous_release", {}).items():
        if isinstance(r, dict):
            print(f"| previous release, {name} | score_samples acc / 15-NN acc | {r['score_samples_accuracy']:.3f} / {r['knn15_test_accuracy']:.3f} | {r['seconds']:.0f} | {r['epochs']} |")


if __name__ == "__main__":
    main()
