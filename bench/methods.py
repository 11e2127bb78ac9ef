"""The dimensionality-reduction methods under test, as run inside the measuring child.

Each runner takes the data and the run's parameters and returns a :class:`MethodOutput`. The
wall time covers ``fit_transform`` only: imports (TensorFlow alone costs seconds) are timed
separately and reported apart.
"""

import inspect
import time
from dataclasses import dataclass, field

import numpy as np

import procstat

NAMES = ("ivis", "umap", "pca", "ivis_prev")


@dataclass
class MethodOutput:
    """What a runner measured.

    Attributes
    ----------
    embedding : ndarray, shape (n, d)
    wall : float
        Seconds spent in ``fit_transform``.
    import_seconds : float
        Seconds spent importing the method's package (not part of ``wall``).
    neighbours : ndarray of int, shape (n, k), optional
        The k-nearest-neighbour matrix the method used, where it exposes one.
    neighbours_metric : str, optional
        Metric that neighbour matrix was built with.
    timings : dict
        Method-reported stage timings: ``neighbours``, ``training`` (seconds), ``epochs``,
        ``seconds_per_epoch``; plus ``timing_source`` saying where they came from.
    loss_history : list of float
    info : dict
        Effective parameters and anything else worth keeping.
    memory_before_fit : dict
        ``/proc/self/status`` memory fields just before ``fit_transform`` (after imports and
        data loading): the baseline the peaks grow from.
    """

    embedding: np.ndarray
    wall: float
    import_seconds: float
    neighbours: np.ndarray = None
    neighbours_metric: str = None
    timings: dict = field(default_factory=dict)
    loss_history: list = field(default_factory=list)
    info: dict = field(default_factory=dict)
    memory_before_fit: dict = field(default_factory=dict)


def _timed(fit):
    """Call ``fit()``; return its result, the seconds it took and the memory just before."""
    before = procstat.read_status()
    start = time.perf_counter()
    result = fit()
    return result, time.perf_counter() - start, before


def run(method, X, params, fit_params=None):
    """Run ``method`` on ``X``.

    Parameters
    ----------
    method : str
        One of :data:`NAMES`.
    X : array, sparse matrix or h5py.Dataset
    params : dict
        Constructor arguments.
    fit_params : dict, optional
        Extra ``fit_transform`` arguments; those the method does not accept are dropped (and
        listed in ``info['dropped_fit_params']``).

    Returns
    -------
    MethodOutput
    """
    runners = {"ivis": _run_ivis, "ivis_prev": _run_ivis_prev, "umap": _run_umap, "pca": _run_pca}
    if method not in runners:
        raise ValueError(f"unknown method {method!r}")
    return runners[method](X, dict(params), dict(fit_params or {}))


def _accepted(func, kwargs):
    """Split ``kwargs`` into those ``func`` accepts and those it does not."""
    sig = inspect.signature(func)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return kwargs, {}
    ok = {k: v for k, v in kwargs.items() if k in sig.parameters}
    return ok, {k: v for k, v in kwargs.items() if k not in ok}


def _neighbour_array(matrix, n_rows):
    """The (n, k) integer array behind a neighbour matrix, or None when none is materialised."""
    if matrix is None:
        return None
    # The previous release wraps its precomputed array in an AnnoyKnnMatrix.
    matrix = getattr(matrix, "precomputed_neighbours", matrix)
    if matrix is None or not hasattr(matrix, "shape") or not hasattr(matrix, "dtype"):
        return None
    arr = np.asarray(matrix)
    if arr.ndim != 2 or arr.shape[0] != n_rows:
        return None
    return arr


def _fit_ivis(Ivis, X, params, fit_params):
    """Shared ivis driver; returns the fitted model, embedding, wall time and dropped params."""
    params.setdefault("verbose", 0)
    params, dropped = _accepted(Ivis.__init__, params)
    model = Ivis(**params)
    fit_params, dropped_fit = _accepted(model.fit_transform, fit_params)
    embedding, wall, before = _timed(lambda: model.fit_transform(X, **fit_params))
    info = {"effective_params": params, "dropped_params": dropped, "dropped_fit_params": dropped_fit}
    return model, np.asarray(embedding), wall, before, info


def _run_ivis(X, params, fit_params):
    start = time.perf_counter()
    import ivis

    # ivis loads Keras lazily; load it (and its backend) here so that, as for the previous
    # release, the seconds of importing TensorFlow stay out of the fit_transform time.
    import keras  # noqa: F401
    from ivis import Ivis

    import_seconds = time.perf_counter() - start
    # Early stopping on the embedding is a callback, built here from its JSON-able patience.
    patience = params.pop("embedding_plateau", None)
    if patience is not None:
        from ivis.nn.callbacks import EmbeddingPlateau

        params["callbacks"] = [EmbeddingPlateau(X, patience=patience)]
    model, embedding, wall, before, info = _fit_ivis(Ivis, X, params, fit_params)
    if patience is not None:
        info["effective_params"].pop("callbacks")
        info["embedding_plateau"] = {"patience": patience, "scores": params["callbacks"][0].scores}
    info["ivis_version"] = getattr(ivis, "__version__", None)
    info["ivis_file"] = getattr(ivis, "__file__", None)

    timings = {"timing_source": "model.timings_"}
    reported = getattr(model, "timings_", None)
    if isinstance(reported, dict):
        for key in ("neighbours", "training", "epochs", "seconds_per_epoch"):
            if reported.get(key) is not None:
                timings[key] = reported[key]
        timings["reported"] = {k: _plain(v) for k, v in reported.items()}
    else:
        timings["timing_source"] = "none (model has no timings_)"
    losses = [float(v) for v in (getattr(model, "loss_history_", None) or [])]
    if "epochs" not in timings and losses:
        timings["epochs"] = len(losses)
    return MethodOutput(
        embedding,
        wall,
        import_seconds,
        _neighbour_array(getattr(model, "neighbour_matrix_", None), embedding.shape[0]),
        _metric_of(model),
        timings,
        losses,
        info,
        before,
    )


def _run_ivis_prev(X, params, fit_params):
    start = time.perf_counter()
    import ivis
    import tensorflow as tf
    from ivis import Ivis

    import_seconds = time.perf_counter() - start
    # The previous release takes no random_state; fix the global seeds it draws from instead.
    seed = params.pop("global_seed", 0)
    np.random.seed(seed)
    tf.random.set_seed(seed)

    store = {"epoch_seconds": []}
    params["callbacks"] = list(params.get("callbacks") or []) + [_timing_callback(tf.keras, store)]
    start_fit = time.perf_counter()
    model, embedding, wall, before, info = _fit_ivis(Ivis, X, params, fit_params)
    info["effective_params"].pop("callbacks", None)
    info["ivis_version"] = getattr(ivis, "__version__", None)
    info["ivis_file"] = getattr(ivis, "__file__", None)
    info["global_seed"] = seed

    losses = [float(v) for v in (getattr(model, "loss_history_", None) or [])]
    timings = {
        "timing_source": "Keras callback: training = on_train_begin..on_train_end; "
        "neighbours = fit_transform start..on_train_begin (index build, neighbour "
        "extraction and model construction)"
    }
    if "train_begin" in store and "train_end" in store:
        timings["neighbours"] = store["train_begin"] - start_fit
        timings["training"] = store["train_end"] - store["train_begin"]
        timings["epochs"] = len(store["epoch_seconds"]) or len(losses)
        if timings["epochs"]:
            timings["seconds_per_epoch"] = timings["training"] / timings["epochs"]
            timings["median_epoch_seconds"] = float(np.median(store["epoch_seconds"]))
    return MethodOutput(
        embedding,
        wall,
        import_seconds,
        _neighbour_array(getattr(model, "neighbour_matrix_", None), embedding.shape[0]),
        _metric_of(model),
        timings,
        losses,
        info,
        before,
    )


def _timing_callback(keras, store):
    """A Keras callback writing training timestamps into ``store``.

    ivis 2.0.11 shallow-copies its callbacks, so the timestamps go to a shared dict rather than
    to attributes of the callback itself.
    """

    class TrainingTimer(keras.callbacks.Callback):
        def __init__(self, store):
            super().__init__()
            self.store = store

        def on_train_begin(self, logs=None):
            self.store.setdefault("train_begin", time.perf_counter())

        def on_epoch_begin(self, epoch, logs=None):
            self.store["epoch_begin"] = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.store["epoch_seconds"].append(time.perf_counter() - self.store["epoch_begin"])

        def on_train_end(self, logs=None):
            self.store["train_end"] = time.perf_counter()

    return TrainingTimer(store)


def _metric_of(model):
    metric = getattr(model, "knn_distance_metric", None)
    return metric if isinstance(metric, str) else None


def _run_umap(X, params, fit_params):
    start = time.perf_counter()
    import umap

    import_seconds = time.perf_counter() - start
    model = umap.UMAP(**params)
    embedding, wall, before = _timed(lambda: np.asarray(model.fit_transform(X, **fit_params)))
    knn = getattr(model, "_knn_indices", None)
    info = {"effective_params": params, "umap_version": getattr(umap, "__version__", None)}
    return MethodOutput(
        embedding,
        wall,
        import_seconds,
        _neighbour_array(knn, embedding.shape[0]),
        model.metric if isinstance(model.metric, str) else None,
        {"timing_source": "none (UMAP reports no stage timings)"},
        [],
        info,
        before,
    )


def _run_pca(X, params, fit_params):
    import scipy.sparse as sp

    start = time.perf_counter()
    from sklearn.decomposition import PCA, TruncatedSVD

    import_seconds = time.perf_counter() - start
    # PCA would densify a sparse matrix (and centre it); TruncatedSVD works on it as is.
    cls = TruncatedSVD if sp.issparse(X) else PCA
    params.setdefault("n_components", 2)
    params.setdefault("random_state", 0)
    model = cls(**params)
    embedding, wall, before = _timed(lambda: np.asarray(model.fit_transform(X, **fit_params)))
    info = {"estimator": cls.__name__, "effective_params": params}
    return MethodOutput(
        embedding,
        wall,
        import_seconds,
        timings={"timing_source": "none"},
        info=info,
        memory_before_fit=before,
    )


def _plain(value):
    """JSON-friendly version of a scalar or small container."""
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    return value
