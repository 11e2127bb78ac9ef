"""Validation of :class:`~ivis.Ivis` constructor parameters, run at the start of ``fit``.

Each check raises an error that names the parameter, the value received and what is valid,
so that a user (in Python or through the R package) can fix the call without reading code.
"""

import numbers
import os
import warnings

import numpy as np

# The valid values of the name parameters. Only names live here, so that checking parameters
# imports neither Annoy nor Keras; the modules that implement them take their names from here.
NETWORK_NAMES = ("szubert", "hinton", "maaten")
NEGATIVE_SAMPLING = ("in_batch", "all_rows")
NEIGHBOUR_SEARCHES = ("annoy", "clustered")
ANNOY_METRICS = ("angular", "euclidean", "manhattan", "hamming", "dot")
CLUSTERED_METRICS = ("angular", "euclidean")
SHUFFLE_MODES = (True, False, "batch")
STOPPING_RULES = ("loss", "embedding")


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def check_int(name, value, minimum=None, allow=()):
    """Raise unless ``value`` is an integer >= ``minimum`` (or one of ``allow``)."""
    if value in allow and (value is None or _is_int(value)):
        return
    if not _is_int(value):
        raise TypeError(f"{name} must be an integer; got {value!r} ({type(value).__name__}).")
    if minimum is not None and value < minimum:
        extra = f" (or {', '.join(map(str, allow))})" if allow else ""
        raise ValueError(f"{name} must be >= {minimum}{extra}; got {value}.")


def check_bool(name, value):
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False; got {value!r}.")


def check_weight(name, value):
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"{name} must be a number between 0 and 1; got {value!r}.")


def check_fraction(name, value):
    """Raise unless ``value`` is None or a number strictly between 0 and 1."""
    if value is None:
        return
    if not isinstance(value, numbers.Real) or isinstance(value, bool) or not 0 < value < 1:
        raise ValueError(f"{name} must be None or a number strictly between 0 and 1; got {value!r}.")


def check_non_negative(name, value, strictly=False):
    """Raise unless ``value`` is a finite number >= 0 (> 0 with ``strictly``)."""
    if (
        not isinstance(value, numbers.Real) or isinstance(value, bool) or not np.isfinite(value)
        or value < 0 or (strictly and value == 0)
    ):
        raise ValueError(f"{name} must be a number {'>' if strictly else '>='} 0; got {value!r}.")


def resolve_n_jobs(n_jobs):
    """Threads for ``n_jobs``: None or 1 is serial; -1 uses every core, -2 all but one (joblib's convention)."""
    if n_jobs is None:
        return 1
    if not _is_int(n_jobs) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None; got {n_jobs!r}")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)


def check_shuffle_mode(shuffle_mode):
    if not any(shuffle_mode is mode or (isinstance(mode, str) and shuffle_mode == mode) for mode in SHUFFLE_MODES):
        raise ValueError(
            f"shuffle_mode must be True (shuffle all rows every epoch), 'batch' (shuffle the order "
            f"of contiguous batches, for data on disk) or False; got {shuffle_mode!r}."
        )


def resolve_n_trees(n_trees, ntrees):
    """Return the number of Annoy trees, honouring the deprecated ``ntrees`` alias."""
    if ntrees is None:
        return n_trees
    warnings.warn(
        "ntrees is deprecated and will be removed in a future release; use n_trees instead.",
        FutureWarning,
        stacklevel=3,
    )
    return ntrees


def check_core_params(estimator):
    """Check every parameter that does not depend on the data, except ``distance`` (its registry needs Keras)."""
    check_int("embedding_dims", estimator.embedding_dims, 1)
    check_int("batch_size", estimator.batch_size, 1)
    check_int("epochs", estimator.epochs, 1)
    check_int("n_epochs_without_progress", estimator.n_epochs_without_progress, 1)
    check_int("n_trees", resolve_n_trees(estimator.n_trees, estimator.ntrees), 1)
    check_int("search_k", estimator.search_k, 1, allow=(-1,))
    check_int("verbose", int(estimator.verbose) if isinstance(estimator.verbose, bool) else estimator.verbose, 0)
    check_bool("precompute", estimator.precompute)
    check_bool("build_index_on_disk", estimator.build_index_on_disk)
    check_weight("supervision_weight", estimator.supervision_weight)
    check_fraction("validation_fraction", estimator.validation_fraction)
    check_non_negative("learning_rate", estimator.learning_rate, strictly=True)
    check_non_negative("weight_decay", estimator.weight_decay)
    if estimator.negative_sampling not in NEGATIVE_SAMPLING:
        raise ValueError(
            f"Unknown negative_sampling {estimator.negative_sampling!r}. Valid values are: "
            f"{', '.join(map(repr, NEGATIVE_SAMPLING))}."
        )
    check_stopping_rule(estimator.early_stopping, estimator.validation_fraction)
    if estimator.neighbour_search not in NEIGHBOUR_SEARCHES:
        raise ValueError(
            f"Unknown neighbour_search {estimator.neighbour_search!r}. Valid values are: "
            f"{', '.join(map(repr, NEIGHBOUR_SEARCHES))}."
        )
    check_metric(estimator.knn_distance_metric)
    if estimator.neighbour_search == "clustered":
        check_clustered_settings(estimator)
    model = estimator.model
    if isinstance(model, str):
        check_model_name(model)
    elif not (hasattr(model, "layers") and callable(model)):
        raise TypeError(f"model must be one of {', '.join(NETWORK_NAMES)} or a keras.Model; got {type(model).__name__}.")
    check_random_state(estimator.random_state)
    if estimator.annoy_index_path is not None and not isinstance(estimator.annoy_index_path, (str, os.PathLike)):
        raise TypeError(f"annoy_index_path must be a file path or None; got {type(estimator.annoy_index_path).__name__}.")
    if estimator.callbacks is not None and not isinstance(estimator.callbacks, (list, tuple)):
        raise TypeError("callbacks must be a list of keras.callbacks.Callback objects or None.")


def check_stopping_rule(early_stopping, validation_fraction):
    """Raise unless ``early_stopping`` names a rule of :data:`STOPPING_RULES` that can serve the fit."""
    if not isinstance(early_stopping, str) or early_stopping not in STOPPING_RULES:
        raise ValueError(
            f"Unknown early_stopping {early_stopping!r}. Valid values are: 'loss' (stop when the loss "
            "has not improved for n_epochs_without_progress epochs, as published) and 'embedding' "
            "(stop when the embedding of a fixed sample of rows stops gaining neighbours)."
        )
    if early_stopping == "embedding" and validation_fraction is not None:
        raise ValueError(
            "validation_fraction stops training on the supervised loss of held-out rows, a rule on "
            "the loss: use early_stopping='loss' with it, or leave validation_fraction=None."
        )


def check_metric(metric):
    """Raise unless ``metric`` is one of :data:`ANNOY_METRICS`."""
    if metric not in ANNOY_METRICS:
        raise ValueError(f"Unknown knn_distance_metric {metric!r}. Valid metrics are: {', '.join(ANNOY_METRICS)}.")


def check_clustered_metric(metric):
    """Raise a ValueError naming the valid metrics unless ``metric`` is one of :data:`CLUSTERED_METRICS`."""
    if metric not in CLUSTERED_METRICS:
        raise ValueError(
            f"neighbour_search='clustered' supports knn_distance_metric {' or '.join(map(repr, CLUSTERED_METRICS))}; "
            f"got {metric!r}. Use neighbour_search='annoy' for this metric."
        )


def check_model_name(model):
    """Raise unless ``model`` names one of the base networks (:data:`NETWORK_NAMES`)."""
    if model not in NETWORK_NAMES:
        raise ValueError(
            f"Unknown model {model!r}. Valid names are: {', '.join(NETWORK_NAMES)}; or pass a "
            "keras.Model to use as the base network."
        )


def check_random_state(random_state):
    """Raise unless ``random_state`` is None, a seed (an integer >= 0) or a numpy RandomState."""
    if random_state is None or isinstance(random_state, np.random.RandomState):
        return
    if not _is_int(random_state):
        raise TypeError(f"random_state must be None, an integer or a numpy RandomState; got {random_state!r}.")
    if random_state < 0:
        raise ValueError(
            f"random_state must be a seed >= 0, None or a numpy RandomState; got {random_state}. "
            "Pass a seed such as random_state=0 for repeatable results, or None for new ones every fit."
        )


def check_clustered_settings(estimator):
    """Refuse settings that ``neighbour_search='clustered'`` cannot honour."""
    check_clustered_metric(estimator.knn_distance_metric)
    if not estimator.precompute:
        raise ValueError(
            "neighbour_search='clustered' finds every row's neighbours at once, so it needs "
            "precompute=True; precompute=False applies to neighbour_search='annoy'."
        )
    if estimator.annoy_index_path is not None:
        raise ValueError(
            "annoy_index_path is the file of an Annoy index, which neighbour_search='clustered' "
            "does not build. Leave annoy_index_path=None, or use neighbour_search='annoy'."
        )


def check_hold_out(supervised, supervision_metric):
    """Refuse ``validation_fraction`` where there are no labels to hold out, or they cannot be hidden."""
    if not supervised:
        raise ValueError(
            "validation_fraction holds out labelled rows to watch the supervised loss on, so it "
            "needs Y. Fit with labels, or leave validation_fraction=None."
        )
    if not isinstance(supervision_metric, str):
        raise ValueError(
            "validation_fraction hides the held-out rows' labels from training, which a custom "
            "supervision_metric function cannot do. Use a Keras loss name or validation_fraction=None."
        )


def check_k(k, n_rows):
    """Check ``k`` against the number of rows: each row needs k neighbours besides itself."""
    check_int("k", k, 1)
    if k >= n_rows:
        raise ValueError(
            f"k={k} is too large for {n_rows} samples: each sample needs k neighbours other than "
            f"itself, so the largest valid k is {n_rows - 1}. Pass a smaller k, e.g. Ivis(k={min(15, n_rows - 1)})."
        )


def check_batch_size(batch_size, n_rows):
    if batch_size > n_rows:
        raise ValueError(
            f"batch_size={batch_size} is larger than the number of samples ({n_rows}). Pass "
            f"batch_size <= {n_rows}, e.g. Ivis(batch_size={max(1, min(128, n_rows // 2))})."
        )


def warn_self_neighbours(lists_itself):
    """Warn when rows list themselves among their neighbours (``lists_itself``: one bool per row)."""
    rows = np.flatnonzero(lists_itself)
    if not len(rows):
        return
    shown = ", ".join(map(str, rows[:5])) + (f" and {len(rows) - 5} more" if len(rows) > 5 else "")
    warnings.warn(
        f"neighbour_matrix lists {len(rows)} of {len(lists_itself)} rows among their own neighbours "
        f"(rows {shown}). A row is never its own positive, so those rows train on one neighbour fewer. "
        "Pass each row's neighbours without the row itself: from scikit-learn's NearestNeighbors, "
        "call kneighbors() without X, which leaves each row out.",
        UserWarning,
        stacklevel=6,  # the caller of Ivis.fit
    )


def check_neighbour_matrix(neighbours, n_rows):
    """Validate a user-supplied neighbour matrix and return it (integer arrays as given, others as int64)."""
    if isinstance(neighbours, np.ndarray) or isinstance(neighbours, list) and neighbours and not hasattr(neighbours[0], "__len__"):
        neighbours = np.asarray(neighbours)
    if isinstance(neighbours, np.ndarray):
        if neighbours.ndim != 2 or neighbours.shape[0] != n_rows or neighbours.shape[1] < 1:
            raise ValueError(
                f"neighbour_matrix must have shape (n_samples, k) = ({n_rows}, k); got {neighbours.shape}."
            )
        if not np.issubdtype(neighbours.dtype, np.integer):
            if not np.issubdtype(neighbours.dtype, np.floating) or not np.all(np.isfinite(neighbours)) or np.any(neighbours % 1):
                raise ValueError("neighbour_matrix must hold integer row indices (0-based).")
            # Only whole floats are converted: an int64 copy of a large int32 matrix would double it.
            neighbours = neighbours.astype(np.int64)
        if neighbours.min() < 0 or neighbours.max() >= n_rows:
            raise ValueError(
                f"neighbour_matrix holds indices outside 0..{n_rows - 1} (found {neighbours.min()}..{neighbours.max()}). "
                "Indices are 0-based row positions."
            )
        warn_self_neighbours((neighbours == np.arange(n_rows)[:, None]).any(axis=1))
        return neighbours
    if hasattr(neighbours, "__getitem__") and hasattr(neighbours, "__len__"):
        if len(neighbours) != n_rows:
            raise ValueError(f"neighbour_matrix has {len(neighbours)} rows but X has {n_rows}.")
        if isinstance(neighbours, (list, tuple)):
            # Lists in memory are cheap to scan; other Sequences may read from disk per row.
            warn_self_neighbours(np.array([i in np.ravel(row) for i, row in enumerate(neighbours)], dtype=bool))
        return neighbours
    raise TypeError("neighbour_matrix must be an (n_samples, k) integer array or a Sequence of neighbour lists.")


def check_continuable(estimator, row_shape):
    """Refuse data or parameters that describe another network than the one a new fit of ``estimator`` would continue."""
    fitted_dims = int(estimator.encoder_.outputs[0].shape[-1])
    base_name = estimator.encoder_.layers[1].name
    if tuple(row_shape) != tuple(estimator.input_shape_):
        raise ValueError(
            f"This model was fitted on rows of shape {tuple(estimator.input_shape_)}; X has rows of "
            f"shape {row_shape}. Fitting again continues training, so the shape must "
            "match; use sklearn.base.clone(model) to fit a new model on other data."
        )
    if estimator.embedding_dims != fitted_dims:
        changed = f"embedding_dims is {estimator.embedding_dims} but the trained encoder outputs {fitted_dims} dimensions"
    elif isinstance(estimator.model, str) and estimator.model != base_name:
        changed = f"model is {estimator.model!r} but the trained base network is {base_name!r}"
    else:
        return
    raise ValueError(
        f"Fitting again continues training the existing network, and {changed}. Keep the "
        "parameters the model was trained (or loaded) with, or use sklearn.base.clone(model) "
        "to train a new network."
    )
