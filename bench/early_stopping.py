"""When should training stop on small data? Quality along whole training runs, and stopping rules.

Trains ivis with library defaults (``k=15``, 2-D) for 1,000 epochs without early stopping on four
small scikit-learn datasets (iris, wine, breast cancer, digits), three seeds each, recording the
loss of every epoch and the 15-NN accuracy (5-fold) of the embedding every 10 epochs. It then
replays stopping rules on the recorded losses and reports the accuracy at the epoch each rule
stops:

- ``per-epoch loss``: stop after 20 epochs without a new lowest epoch loss (the library's rule),
  or after 50 or 100 such epochs;
- ``smoothed over S steps``: the same on an exponential moving average of the epoch loss with
  weight ``min(1, steps_per_epoch / S)``, optionally with at least ``1 / W`` (a window of at most
  ``W`` epochs).

Run from the repository root (about 8 minutes on 2 cores):

    .venv/bin/python bench/early_stopping.py [--out bench/results/early_stopping.json] [--replay]
"""

import argparse
import json
import os

import numpy as np

DATASETS = ("iris", "wine", "breast_cancer", "digits")
EVERY = 10
RULES = {
    "per-epoch loss": {"smoothing_steps": 1},
    "per-epoch loss, patience 50": {"smoothing_steps": 1, "patience": 50},
    "per-epoch loss, patience 100": {"smoothing_steps": 1, "patience": 100},
    "smoothed over 600 steps": {"smoothing_steps": 600},
    "smoothed over 600 steps, window <= 10 epochs": {"smoothing_steps": 600, "max_window": 10},
    "smoothed over 600 steps, window <= 20 epochs": {"smoothing_steps": 600, "max_window": 20},
}


def record(name, seed, epochs):
    import keras
    from sklearn import datasets
    from sklearn.model_selection import StratifiedKFold, cross_val_score
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.preprocessing import MinMaxScaler

    from ivis import Ivis

    data = getattr(datasets, f"load_{name}")()
    X, y = MinMaxScaler().fit_transform(data.data), data.target
    accuracy = {}

    class Evaluate(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if (epoch + 1) % EVERY == 0:  # keyed by str(epoch), as in the saved JSON
                embedding = model.encoder_.predict(X, verbose=0)
                folds = StratifiedKFold(5, shuffle=True, random_state=0)
                accuracy[str(epoch + 1)] = float(cross_val_score(KNeighborsClassifier(15), embedding, y, cv=folds).mean())

    model = Ivis(k=15, epochs=epochs, n_epochs_without_progress=epochs + 1, verbose=0, random_state=seed,
                 callbacks=[Evaluate()])
    model.fit(X)
    return {"steps_per_epoch": int(np.ceil(len(X) / model.batch_size)), "loss": model.loss_history_,
            "accuracy": accuracy}


def stopping_epoch(losses, steps_per_epoch, patience=20, smoothing_steps=1, max_window=None):
    weight = min(1.0, steps_per_epoch / smoothing_steps)
    if max_window:
        weight = min(1.0, max(weight, 1.0 / max_window))
    best, wait, smoothed = np.inf, 0, None
    for epoch, loss in enumerate(losses):
        smoothed = loss if smoothed is None else (1 - weight) * smoothed + weight * loss
        if smoothed < best:
            best, wait = smoothed, 0
            continue
        wait += 1
        if wait >= patience:
            return epoch + 1
    return len(losses)


def accuracy_at(accuracy, epoch):
    recorded = sorted(int(e) for e in accuracy)
    return accuracy[str(max([e for e in recorded if e <= epoch] or recorded[:1]))]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=1000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default="bench/results/early_stopping.json")
    parser.add_argument("--replay", action="store_true", help="only replay the rules on the runs saved in --out")
    args = parser.parse_args()
    if args.replay:
        with open(args.out) as handle:
            runs = json.load(handle)["runs"]
    else:
        runs = {}
        for name in DATASETS:
            for seed in range(args.seeds):
                runs[f"{name}/{seed}"] = record(name, seed, args.epochs)
                print(name, seed, flush=True)
    by_dataset = {name: [r for key, r in runs.items() if key.split("/")[0] == name] for name in DATASETS}
    table = {}
    for rule, params in RULES.items():
        for name, chosen in by_dataset.items():
            epochs = [stopping_epoch(r["loss"], r["steps_per_epoch"], **params) for r in chosen]
            table.setdefault(rule, {})[name] = {
                "accuracy": float(np.mean([accuracy_at(r["accuracy"], e) for r, e in zip(chosen, epochs)])),
                "epochs": float(np.mean(epochs)),
            }
    curve = {
        name: {str(e): float(np.mean([r["accuracy"][str(e)] for r in chosen]))
               for e in (10, 50, 100, 200, 500, 1000) if str(e) in chosen[0]["accuracy"]}
        for name, chosen in by_dataset.items()
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as handle:
        json.dump({"rules": table, "accuracy_by_epoch": curve, "runs": runs}, handle)
    print("| rule | " + " | ".join(DATASETS) + " |\n|---|" + "---|" * len(DATASETS))
    for rule, row in table.items():
        print(f"| {rule} | " + " | ".join(f"{row[n]['accuracy']:.3f} ({row[n]['epochs']:.0f} ep.)" for n in DATASETS) + " |")
    print("\n| epochs | " + " | ".join(DATASETS) + " |\n|---|" + "---|" * len(DATASETS))
    for e in next(iter(curve.values())):
        print(f"| {e} | " + " | ".join(f"{curve[n][e]:.3f}" for n in DATASETS) + " |")


if __name__ == "__main__":
    main()
