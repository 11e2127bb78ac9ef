"""ivis: structure-preserving dimensionality reduction with siamese networks.

Importing :mod:`ivis` is cheap: scikit-learn is loaded when :class:`Ivis` is first named, and
Keras (with its backend) only when a model is built, fitted or loaded.
"""

import os

from ivis._version import __version__

# TensorFlow's C++ start-up messages are noise to users; an explicit setting is kept. The
# lines TensorFlow writes before this level applies are hidden by ivis._keras_import.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__all__ = ["Ivis", "load_model", "__version__"]


def __getattr__(name):
    # Lazy attributes keep ``import ivis`` (and ``ivis --help``) free of heavy imports.
    if name == "Ivis":
        from ivis.estimator import Ivis

        return Ivis
    if name == "load_model":
        from ivis.estimator import load_model

        return load_model
    raise AttributeError(f"module 'ivis' has no attribute {name!r}")
