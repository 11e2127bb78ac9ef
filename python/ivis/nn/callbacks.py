"""Callbacks that log embeddings, plots and checkpoints while an ivis model trains.

Pass them to the estimator, ``Ivis(callbacks=[...])``. Before training, the estimator hands
itself to every callback that has a ``register_ivis_model`` method, so these callbacks embed
data with :meth:`ivis.Ivis.transform` and save with :meth:`ivis.Ivis.save_model`. Any other
:class:`keras.callbacks.Callback` (``keras.callbacks.TensorBoard``, say, or one that sets
``self.model.stop_training = True``) is run as it is.

Epoch numbers are 1-based: epoch ``n`` is the state after ``n`` epochs of training, counted
across resumed runs. A callback with ``epoch_interval=m`` writes after epochs ``m``, ``2m``,
``3m``, ... A ``{}`` in a file name is replaced by that number; a name without ``{}`` is
overwritten each time, so only the latest file is kept. Every file appears complete or not at
all: it is written under a temporary name and then renamed.

Matplotlib is needed for the plotting callbacks (``pip install 'ivis[plot]'``), and TensorFlow
with TensorBoard for :class:`TensorBoardEmbeddingsImage`; both are imported only when such a
callback is created.
"""

import contextlib
import os
import secrets
import warnings

import keras
import numpy as np

from ivis.plotting import scatter_figure
from ivis.nn.plateau import EmbeddingPlateau, check_data_rows, neighbour_preservation, sample_neighbours  # noqa: F401

__all__ = ["EmbeddingPlateau", "EmbeddingsImage", "EmbeddingsLogging", "ModelCheckpoint", "TensorBoardEmbeddingsImage"]

PLACEHOLDER = "{}"


def _check_filename(filename, parameter):
    if not isinstance(filename, (str, os.PathLike)):
        raise TypeError(f"{parameter} must be a string; got {type(filename).__name__}.")
    filename = os.fspath(filename)
    if filename.count(PLACEHOLDER) > 1:
        raise ValueError(
            f"{parameter} {filename!r} has {filename.count(PLACEHOLDER)} '{{}}' placeholders; use at most "
            "one, for the epoch number (none keeps only the latest file)."
        )
    if not filename.replace(PLACEHOLDER, "").strip() or filename.endswith(("/", os.sep)):
        raise ValueError(f"{parameter} {filename!r} does not name a file.")
    return filename


def _check_epoch_interval(epoch_interval):
    if isinstance(epoch_interval, bool) or not isinstance(epoch_interval, (int, np.integer)) or epoch_interval < 1:
        raise ValueError(f"epoch_interval must be a positive integer; got {epoch_interval!r}.")
    return int(epoch_interval)


def _n_rows(data):
    shape = getattr(data, "shape", None)
    return int(shape[0]) if shape is not None else len(data)


def _check_labels(labels, data):
    if labels is None:
        return None
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ValueError(
            f"labels must be one label per row (1-D); got shape {labels.shape}. For one-hot rows pass "
            "labels.argmax(axis=1)."
        )
    if len(labels) != _n_rows(data):
        raise ValueError(f"labels has {len(labels)} entries but data has {_n_rows(data)} rows.")
    return labels


def _import_matplotlib(owner):
    try:
        import matplotlib.backend_bases  # noqa: F401
        import matplotlib.figure  # noqa: F401
    except ImportError as error:
        raise ImportError(
            f"{owner} plots with matplotlib, which is not installed ({error}). Install it with: "
            "pip install 'ivis[plot]'"
        ) from None
    return matplotlib


def _import_tf_summary(owner):
    try:
        import tensorboard  # noqa: F401 - tf.summary.image is implemented there
        import tensorflow as tf
    except ImportError as error:
        raise ImportError(
            f"{owner} writes TensorBoard summaries, which needs TensorFlow and TensorBoard "
            f"({error}). Install them with: pip install tensorflow tensorboard"
        ) from None
    return tf


def _prepare_log_dir(log_dir, owner):
    """Create ``log_dir`` and prove it writable now, rather than fail after an epoch of training."""
    try:
        os.makedirs(log_dir, exist_ok=True)
        probe = os.path.join(log_dir, f".ivis-write-test-{secrets.token_hex(4)}")
        with open(probe, "xb"):
            pass
        os.remove(probe)
    except OSError as error:
        raise type(error)(
            f"{owner} cannot write to its log_dir {log_dir!r}: {error.strerror or error}. "
            "Choose a folder that can be created and written to."
        ) from None


def _write_atomically(path, write):
    """Write a file through ``write(handle)`` under a temporary name, then rename it into place."""
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    partial = os.path.join(directory, f".{os.path.basename(path)}.{secrets.token_hex(4)}.partial")
    try:
        with open(partial, "xb") as handle:
            write(handle)
        os.replace(partial, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(partial)
        raise


class _PeriodicCallback(keras.callbacks.Callback):
    """Run ``_log(epoch_number)`` after every ``epoch_interval``-th epoch of an ivis fit."""

    def __init__(self, log_dir, epoch_interval):
        super().__init__()
        self.log_dir = os.fspath(log_dir)
        self.epoch_interval = _check_epoch_interval(epoch_interval)
        self.ivis_model = None

    def register_ivis_model(self, ivis_model):
        """Receive the :class:`ivis.Ivis` being trained (the estimator calls this before training)."""
        self.ivis_model = ivis_model

    def on_train_begin(self, logs=None):
        if self.ivis_model is None:
            raise RuntimeError(
                f"{type(self).__name__} needs the ivis estimator: pass it as Ivis(callbacks=[...]), "
                "not to a Keras model's fit."
            )
        _prepare_log_dir(self.log_dir, type(self).__name__)
        if hasattr(self, "data"):
            check_data_rows(self)

    def on_epoch_end(self, epoch, logs=None):
        # Keras counts epochs from 0, so epoch + 1 epochs are complete; a resumed run keeps
        # counting from the checkpoint, which keeps the schedule of the uninterrupted run.
        number = int(epoch) + 1
        if number % self.epoch_interval == 0:
            self._log(number)

    def _log(self, epoch):
        raise NotImplementedError

    def __getstate__(self):
        # Copies (sklearn.base.clone, pickling the estimator) must not drag along the trained
        # networks this callback last saw; they are set again by the next fit.
        state = dict(self.__dict__)
        state["ivis_model"] = None
        state["_model"] = None
        return state


class _FileCallback(_PeriodicCallback):
    """A periodic callback that writes one file (or folder) per logged epoch."""

    def __init__(self, log_dir, filename, epoch_interval, parameter="filename"):
        super().__init__(log_dir, epoch_interval)
        self.filename = _check_filename(filename, parameter)

    def path_for(self, epoch):
        """The path written for ``epoch`` (1-based)."""
        return os.path.join(self.log_dir, self.filename.replace(PLACEHOLDER, str(int(epoch))))


class EmbeddingsLogging(_FileCallback):
    """Save the embedding of ``data`` every ``epoch_interval`` epochs as a ``.npy`` file.

    Parameters
    ----------
    data : array-like of shape (n_samples, ...)
        Rows to embed with the model as it trains (the same row shape as the training data).
    log_dir : str or PathLike, default='./embeddings_logs'
        Folder for the files; created when training begins.
    filename : str, default='{}_embeddings.npy'
        Name of each file, written exactly as given (no extension is added). ``{}`` is replaced
        by the epoch number (1-based); without it each save replaces the previous file.
    epoch_interval : int, default=1
        Save after epochs ``epoch_interval``, ``2 * epoch_interval``, ...

    Raises
    ------
    ValueError
        If ``filename`` has more than one ``{}`` or ``epoch_interval`` is not a positive integer.

    Examples
    --------
    >>> from ivis import Ivis
    >>> from ivis.nn.callbacks import EmbeddingsLogging
    >>> logger = EmbeddingsLogging(X_test, log_dir='test-embeddings', epoch_interval=5)
    >>> Ivis(callbacks=[logger]).fit(X_train)  # doctest: +SKIP

    Each file holds an array of shape ``(len(X_test), embedding_dims)``, read with ``numpy.load``.
    """

    def __init__(self, data, log_dir="./embeddings_logs", filename="{}_embeddings.npy", epoch_interval=1):
        super().__init__(log_dir, filename, epoch_interval)
        self.data = data

    def _log(self, epoch):
        embeddings = self.ivis_model.transform(self.data)
        _write_atomically(self.path_for(epoch), lambda handle: np.save(handle, embeddings))


class EmbeddingsImage(_FileCallback):
    """Plot the embedding of ``data`` every ``epoch_interval`` epochs to an image file.

    The first two embedding dimensions are plotted (a 1-dimensional embedding along the x axis),
    coloured by ``labels`` when given.

    Parameters
    ----------
    data : array-like of shape (n_samples, ...)
        Rows to embed and plot with the model as it trains.
    labels : array-like of shape (n_samples,), optional
        A label per row to colour the points by; without labels all points share one colour.
    log_dir : str or PathLike, default='./logs'
        Folder for the images; created when training begins.
    filename : str, default='{}_embeddings.png'
        Name of each image. ``{}`` is replaced by the epoch number (1-based); without it each plot
        replaces the previous one. The extension picks the format (any that matplotlib writes,
        e.g. ``.png``, ``.pdf``, ``.svg``); no extension means PNG.
    epoch_interval : int, default=1
        Plot after epochs ``epoch_interval``, ``2 * epoch_interval``, ...
    file_name : str, optional
        Alias of ``filename``.

    Raises
    ------
    ImportError
        If matplotlib is not installed.
    ValueError
        If ``filename`` has more than one ``{}`` or an extension matplotlib cannot write, or
        ``labels`` does not have one entry per row.

    Examples
    --------
    >>> from ivis import Ivis
    >>> from ivis.nn.callbacks import EmbeddingsImage
    >>> plots = EmbeddingsImage(X_test, Y_test, log_dir='test-plots', epoch_interval=10)
    >>> Ivis(callbacks=[plots]).fit(X_train)  # doctest: +SKIP
    """

    _DEFAULT_FILENAME = "{}_embeddings.png"

    def __init__(self, data, labels=None, log_dir="./logs", filename=_DEFAULT_FILENAME, epoch_interval=1, *, file_name=None):
        parameter = "filename"
        if file_name is not None:
            if filename != self._DEFAULT_FILENAME:
                raise TypeError("Pass the image name once, as filename (file_name is an alias of filename).")
            filename, parameter = file_name, "file_name"
        super().__init__(log_dir, filename, epoch_interval, parameter)
        _import_matplotlib(type(self).__name__)
        self.format = self._image_format(self.filename, parameter)
        self.data = data
        self.labels = _check_labels(labels, data)

    @staticmethod
    def _image_format(filename, parameter):
        from matplotlib.backend_bases import FigureCanvasBase

        extension = os.path.splitext(filename.replace(PLACEHOLDER, "0"))[1].lstrip(".").lower()
        if not extension:
            return "png"
        supported = FigureCanvasBase.get_supported_filetypes()
        if extension not in supported:
            raise ValueError(
                f"{parameter} {filename!r} asks for a .{extension} image, which matplotlib cannot write; "
                f"use one of: {', '.join('.' + e for e in sorted(supported))}."
            )
        return extension

    def _log(self, epoch):
        embeddings = self.ivis_model.transform(self.data)
        figure = scatter_figure(embeddings, self.labels, f"Epoch {epoch}")
        _write_atomically(self.path_for(epoch), lambda handle: figure.savefig(handle, format=self.format))


class TensorBoardEmbeddingsImage(_PeriodicCallback):
    """Plot the embedding of ``data`` every ``epoch_interval`` epochs into TensorBoard.

    Each plot is an image summary tagged ``embeddings`` at step = the epoch number (1-based),
    written to ``log_dir/embeddings``, so TensorBoard's Images tab shows how the embedding
    develops (its slider moves through the epochs). ``keras.callbacks.TensorBoard`` with the
    same ``log_dir`` puts the loss curve beside it; note that Keras logs the loss of epoch ``n``
    at step ``n - 1``.

    Parameters
    ----------
    data : array-like of shape (n_samples, ...)
        Rows to embed and plot with the model as it trains.
    labels : array-like of shape (n_samples,), optional
        A label per row to colour the points by.
    log_dir : str or PathLike, default='./logs'
        TensorBoard log folder (``tensorboard --logdir LOG_DIR``).
    epoch_interval : int, default=1
        Plot after epochs ``epoch_interval``, ``2 * epoch_interval``, ...

    Raises
    ------
    ImportError
        If matplotlib, TensorFlow or TensorBoard is not installed (with any Keras backend,
        TensorFlow writes the summaries).

    Examples
    --------
    >>> import keras
    >>> from ivis import Ivis
    >>> from ivis.nn.callbacks import TensorBoardEmbeddingsImage
    >>> callbacks = [TensorBoardEmbeddingsImage(X_test, Y_test, log_dir='logs'),
    ...              keras.callbacks.TensorBoard(log_dir='logs')]
    >>> Ivis(callbacks=callbacks).fit(X_train)  # doctest: +SKIP
    """

    TAG = "embeddings"

    def __init__(self, data, labels=None, log_dir="./logs", epoch_interval=1, filename=None):
        super().__init__(log_dir, epoch_interval)
        if filename is not None:
            # Accepted because earlier documentation passed it; images go to TensorBoard's
            # event files, so there is no file name to use.
            warnings.warn(
                "TensorBoardEmbeddingsImage writes into TensorBoard event files in log_dir; "
                "the filename argument is ignored.",
                UserWarning,
                stacklevel=2,
            )
        _import_matplotlib(type(self).__name__)
        _import_tf_summary(type(self).__name__)
        self.data = data
        self.labels = _check_labels(labels, data)
        self._writer = None

    @property
    def summary_dir(self):
        """The folder the event files are written to."""
        return os.path.join(self.log_dir, "embeddings")

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        _prepare_log_dir(self.summary_dir, type(self).__name__)
        tf = _import_tf_summary(type(self).__name__)
        self._close()
        self._writer = tf.summary.create_file_writer(self.summary_dir)

    def _log(self, epoch):
        from matplotlib.backends.backend_agg import FigureCanvasAgg

        tf = _import_tf_summary(type(self).__name__)
        embeddings = self.ivis_model.transform(self.data)
        canvas = FigureCanvasAgg(scatter_figure(embeddings, self.labels, f"Epoch {epoch}"))
        canvas.draw()
        image = np.asarray(canvas.buffer_rgba(), dtype=np.uint8)[np.newaxis]
        with self._writer.as_default():
            tf.summary.image(self.TAG, image, step=epoch)
        # Flushed at once, so TensorBoard shows the plot while training goes on.
        self._writer.flush()

    def on_train_end(self, logs=None):
        self._close()

    def _close(self):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __getstate__(self):
        state = super().__getstate__()
        state["_writer"] = None
        return state


class ModelCheckpoint(_FileCallback):
    """Save the model every ``epoch_interval`` epochs, so that training can resume after a crash.

    Each checkpoint is an ivis model folder (see :meth:`ivis.Ivis.save_model`) holding the
    networks, the optimizer state, the loss history and the training state. Saving is atomic:
    a process killed while saving leaves the previous checkpoint whole. To resume::

        Ivis().load_model(checkpoint_folder).fit(X)

    continues the interrupted run where the checkpoint left it, toward the same ``epochs``;
    with ``random_state`` set it ends with the same model as an uninterrupted run.

    Parameters
    ----------
    log_dir : str or PathLike, default='./model_checkpoints'
        Folder for the checkpoints; created when training begins.
    filename : str, default='model-checkpoint_{}.ivis'
        Name of each checkpoint folder. ``{}`` is replaced by the epoch number (1-based), keeping
        every checkpoint; without it (``'latest.ivis'``, say) each save replaces the previous one.
        A checkpoint is replaced under the rules of ``save_model(overwrite=True)``: only an ivis
        model folder holding nothing but ivis's files; anything else stops the fit before it trains.
    epoch_interval : int, default=1
        Save after epochs ``epoch_interval``, ``2 * epoch_interval``, ...

    Examples
    --------
    >>> from ivis import Ivis
    >>> from ivis.nn.callbacks import ModelCheckpoint
    >>> checkpoint = ModelCheckpoint(log_dir='.', filename='latest.ivis', epoch_interval=10)
    >>> Ivis(callbacks=[checkpoint]).fit(X)  # doctest: +SKIP
    >>> # after a crash, in a new process:
    >>> Ivis(callbacks=[checkpoint]).load_model('latest.ivis').fit(X)  # doctest: +SKIP
    """

    def __init__(self, log_dir="./model_checkpoints", filename="model-checkpoint_{}.ivis", epoch_interval=1):
        super().__init__(log_dir, filename, epoch_interval)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        from ivis.persistence import check_replaceable

        # A fixed name is replaced at every save: refuse, before training, to replace anything
        # save_model would refuse (what is not an ivis model folder, or holds other files).
        target = self.path_for(0)
        if PLACEHOLDER not in self.filename and os.path.lexists(target):
            try:
                check_replaceable(target)
            except FileExistsError as error:
                raise FileExistsError(f"ModelCheckpoint would replace {target!r}: {error}") from None

    def _log(self, epoch):
        self.ivis_model.save_model(self.path_for(epoch), overwrite=True)


# Metric of the input-space neighbours of the watched rows, for each knn_distance_metric;
# 'angular' rows are compared after scaling to unit length (the order of angular distances).
