"""Supervised benchmarks: classification, semi-supervised classification and regression.

Run from the repository root:

    .venv/bin/python bench/supervised.py [--epochs 30] [--epochs-without-progress 5] [--with-prev] [--out bench/results/supervised.json]

Workloads (all offline):

- Fashion-MNIST (Debian package ``dataset-fashion-mnist``; train 60,000 / test 10,000):
  supervised ivis with ``supervision_weight=0.9`` for 30 epochs, ``learning_rate=0.003``
  decayed to zero along a cosine by a ``keras.callbacks.LearningRateScheduler``; test accuracy
  of ``score_samples`` and of a 15-NN classifier trained on the train embeddings and scored on
  the test embeddings. Repeated with two more seeds.
- The same with the default constant learning rate (0.001), with negatives drawn from all rows
  (``negative_sampling='all_rows'``), and with 50% of the training labels masked (``-1``,
  semi-supervised).
- scikit-learn's diabetes data (75/25 splits, standardised features and target) with
  ``supervision_metric='mae'``: test R^2 of ``score_samples`` over several splits, with the
  settings for small data (a base network of one dense layer of 32 units, 20% of the rows
  held out for early stopping, ``weight_decay=10``) and with the default network; a linear
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


def cosine_schedule(peak, epochs):
    """A Keras callback that lowers the learning rate from ``peak`` to zero along a cosine."""
    import keras

    return keras.callbacks.LearningRateScheduler(lambda epoch, rate: peak * 0.5 * (1 + np.cos(np.pi * epoch / epochs)))


def classification(X_train, y_train, X_test, y_test, labels, weight, patience, epochs, seed,
                   negative_sampling="in_batch", cosine_peak=None):
    from ivis import Ivis

    schedule = {} if cosine_peak is None else {
        "learning_rate": cosine_peak, "callbacks": [cosine_schedule(cosine_peak, epochs)]
    }
    model = Ivis(k=15, supervision_weight=weight, n_epochs_without_progress=patience, epochs=epochs,
                 negative_sampling=negative_sampling, verbose=0, random_state=seed, **schedule)
    start = time.perf_counter()
    train_embedding = model.fit_transform(X_train, labels)
    seconds = time.perf_counter() - start
    predicted = model.classes_[model.score_samples(X_test).argmax(axis=1)]
    scores = classification_scores(train_embedding, model.transform(X_test), y_train, y_test, predicted)
    return {**scores, "seconds": seconds, "epochs": model.timings_["epochs"]}


def small_network(n_features, seed):
    """One dense SELU layer of 32 units: a base network sized for a few hundred rows."""
    import keras

    inputs = keras.Input((n_features,))
    hidden = keras.layers.Dense(32, activation="selu", kernel_initializer=keras.initializers.LecunNormal(seed=seed))(inputs)
    return keras.Model(inputs, hidden)


def regression(patience, seeds, small_data_settings=True):
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
        settings = dict(model=small_network(X.shape[1], seed), validation_fraction=0.2, weight_decay=10.0) if small_data_settings else {}
        model = Ivis(k=15, batch_size=32, supervision_metric="mae", supervision_weight=0.9,
                     n_epochs_without_progress=patience, verbose=0, random_state=seed, **settings)
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


def masked_labels(labels, seed):
    """``labels`` with a random half replaced by -1 (missing)."""
    masked = labels.astype(np.int64).copy()
    masked[np.random.default_rng(seed).permutation(len(masked))[: len(masked) // 2]] = -1
    return masked


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
    parser.add_argument("--learning-rate", type=float, default=0.003, help="peak of the cosine learning-rate schedule")
    parser.add_argument("--extra-seeds", type=int, nargs="*", default=[1, 2], help="more seeds for the main Fashion-MNIST run")
    parser.add_argument("--diabetes-splits", type=int, default=10, help="75/25 splits of the diabetes data (seeds 0..N-1)")
    parser.add_argument("--diabetes-patience", type=int, default=20, help="n_epochs_without_progress on the diabetes data")
    parser.add_argument("--with-prev", action="store_true", help="also run the previous release (bench/.venv-prev)")
    parser.add_argument("--out", default="bench/results/supervised.json")
    args = parser.parse_args()

    results = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "python": platform.python_version()}
    X, y = fashion_mnist()
    X_train, y_train, X_test, y_test = X[:60000], y[:60000], X[60000:], y[60000:]
    runs = {
        "fmnist_supervised": dict(labels=y_train),
        **{f"fmnist_supervised_seed{seed}": dict(labels=y_train, seed=seed) for seed in args.extra_seeds},
        "fmnist_supervised_constant_lr": dict(labels=y_train, cosine_peak=None),
        "fmnist_supervised_all_rows": dict(labels=y_train, negative_sampling="all_rows"),
        "fmnist_semi_supervised_50pct": dict(labels=masked_labels(y_train, args.seed)),
    }
    for name, run in runs.items():
        settings = {"seed": args.seed, "cosine_peak": args.learning_rate, **run}
        results[name] = classification(
            X_train, y_train, X_test, y_test, settings.pop("labels"), 0.9, args.epochs_without_progress, args.epochs,
            **settings,
        )
        print(name, results[name], flush=True)
    results["diabetes_mae"] = regression(args.diabetes_patience, range(args.diabetes_splits))
    results["diabetes_mae_default_network"] = regression(args.diabetes_patience, range(args.diabetes_splits), False)
    for name in ("diabetes_mae", "diabetes_mae_default_network"):
        print(name, {k: v for k, v in results[name].items() if k != "splits"}, flush=True)
    if args.with_prev:
        results["previous_release"] = previous_release(
            X_train, y_train, X_test, y_test, args.epochs, args.epochs_without_progress, args.seed
        )
        print("previous_release", results["previous_release"], flush=True)

    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump(results, handle, indent=2)
    print("| workload | metric | value | seconds | epochs |\n| --- | --- | --- | --- | --- |")
    for name in runs:
        r = results[name]
        print(f"| {name} | score_samples acc / 15-NN acc | {r['score_samples_accuracy']:.3f} / {r['knn15_test_accuracy']:.3f} | {r['seconds']:.0f} | {r['epochs']} |")
    for name in ("diabetes_mae", "diabetes_mae_default_network"):
        r = results[name]
        print(f"| {name}, mean of {len(r['splits'])} splits | test R^2 (linear regression) | {r['r2']:.3f} ({r['linear_regression_r2']:.3f}) | {r['seconds']:.0f} | {r['epochs']:.0f} |")
    for name, r in results.get("previous_release", {}).items():
        if isinstance(r, dict):
            print(f"| previous release, {name} | score_samples acc / 15-NN acc | {r['score_samples_accuracy']:.3f} / {r['knn15_test_accuracy']:.3f} | {r['seconds']:.0f} | {r['epochs']} |")


if __name__ == "__main__":
    main()
