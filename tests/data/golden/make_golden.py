"""Write the golden embeddings and model folder: ``python tests/data/golden/make_golden.py``.

Run it only when a change of the embeddings is intended; the golden test exists to show that
reorganising the code changes nothing.
"""

import os
import shutil
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))

from golden_cases import CASES, MODEL_FOLDER_CASE, fitted_case, golden_data  # noqa: E402


def main():
    embeddings = {}
    for name in CASES:
        model, embeddings[name] = fitted_case(name)
        if name == MODEL_FOLDER_CASE:
            folder = os.path.join(HERE, "model")
            shutil.rmtree(folder, ignore_errors=True)
            model.save_model(folder)
            embeddings["model_folder_transform"] = model.transform(golden_data()[0])
    np.savez(os.path.join(HERE, "embeddings.npz"), **embeddings)


if __name__ == "__main__":
    main()
