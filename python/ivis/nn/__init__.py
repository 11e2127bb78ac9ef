"""Neural network parts of ivis: base networks, triplet losses, training and callbacks."""

from ivis._keras_import import import_keras

# Every module here imports Keras: the first import goes through import_keras, which hides
# TensorFlow's start-up lines.
import_keras()
