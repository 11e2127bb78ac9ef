"""The supervised benchmarks of ``supervised.py`` run with the previous release (ivis 2.0.11).

Runs under ``bench/.venv-prev`` (TensorFlow 2.15), in a scratch working directory, since that
release may write index files to the current directory. ``supervised.py
--with-prev`` starts it; the data come as ``.npy`` files from the parent, so that both sides see
the same arrays:

    bench/.venv-prev/bin/python bench/supervised_prev.py DATA_DIR EPOCHS PATIENCE SEED

Prints one JSON object.
"""

import json
import os
import sys
import time

import numpy as np


def classification(data, labels, weight, epochs, patience):
    from ivis import Ivis

    from supervised import classification_scores  # this folder: the same scores as for ivis

    model = Ivis(k=15, supervision_weight=weight, epochs=epochs, n_epochs_without_progress=patience, verbose=0)
    start = time.perf_counter()
    model.fit(data["X_train"], labels)
    train_embedding = model.transform(data["X_train"])
    seconds = time.perf_counter() - start
    predicted = model.score_samples(data["X_test"]).argmax(axis=1)
    scores = classification_scores(
        train_embedding, model.transform(data["X_test"]), data["y_train"], data["y_test"], predicted
    )
    return {"supervision_weight": weight, **scores, "seconds": seconds, "epochs": len(model.loss_history_)}


def main():
    data_dir, epochs, patience, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    data = {name: np.load(os.path.join(data_dir, name + ".npy")) for name in ("X_train", "y_train", "X_test", "y_test")}
    import tensorflow as tf

    tf.keras.utils.set_random_seed(seed)
    results = {"fmnist_supervised_w05": classification(data, data["y_train"], 0.5, epochs, patience),
               "fmnist_supervised": classification(data, data["y_train"], 0.9, epochs, patience)}
    print(json.dumps(results))


if __name__ == "__main__":
    main()
