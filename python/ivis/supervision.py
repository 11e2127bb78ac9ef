"""Targets for supervised and semi-supervised training.

:func:`prepare_targets` turns the ``Y`` a user passes to ``fit`` into what the supervised
head trains on, according to ``supervision_metric``:

- ``sparse``: class labels of any type (integers, strings, pandas Categorical), encoded as
  positions in ``classes_``; missing labels (``-1``, ``None``, ``NaN``) become ``-1``.
- ``onehot``: one-hot rows (``categorical_crossentropy``, ``categorical_hinge``).
- ``multilabel``: rows of 0/1 indicators (``binary_crossentropy``).
- ``regression``: real values, one or several targets per row.

For the last three kinds a row is missing when it holds a NaN (or, for one-hot and
multi-label rows, when every entry is -1). Missing rows train only the triplet loss. Missing
is NaN only: an infinite target is an error, as are class labels that are non-integer
numbers (numeric targets need a regression metric such as ``'mae'``) and labels of a single
class (a classifier of one class learns nothing).
"""

import numbers
from dataclasses import dataclass

import numpy as np

from ivis.data.inputs import as_array

SPARSE_METRICS = ("sparse_categorical_crossentropy",)
ONEHOT_METRICS = ("categorical_crossentropy", "categorical_hinge", "categorical_focal_crossentropy")
MULTILABEL_METRICS = ("binary_crossentropy", "binary_focal_crossentropy")
LINEAR_HEAD_METRICS = ("categorical_hinge", "hinge", "squared_hinge")
MISSING = -1


@dataclass
class TargetSpec:
    """What the supervised head predicts and how its loss treats missing rows."""

    kind: str
    n_outputs: int
    metric_name: str
    classes: np.ndarray = None

    @property
    def activation(self):
        if self.metric_name in LINEAR_HEAD_METRICS or self.kind == "regression":
            return "linear"
        return "sigmoid" if self.kind == "multilabel" else "softmax"


# Names from earlier Keras releases that users (and the ivis documentation) still write.
METRIC_ALIASES = {"logcosh": "log_cosh"}


def resolve_metric(metric):
    """Return ``(loss_function, keras_name)`` for ``supervision_metric``.

    Names are resolved by Keras (``'mae'`` gives ``mean_absolute_error``); callables pass
    through under their own name.

    Raises
    ------
    ValueError
        For a name Keras does not know (the message lists common valid names).
    """
    if not isinstance(metric, str):
        return metric, getattr(metric, "__name__", type(metric).__name__)
    from ivis._keras_import import import_keras  # deferred: only supervised fits need Keras

    keras = import_keras()

    try:
        fn = keras.losses.get(METRIC_ALIASES.get(metric, metric))
    except (ValueError, TypeError):
        raise ValueError(
            f"Unknown supervision_metric {metric!r}. Use the name of a Keras loss, e.g. "
            "'sparse_categorical_crossentropy', 'categorical_crossentropy', 'categorical_hinge', "
            "'binary_crossentropy', 'mae', 'mse', 'logcosh' or 'huber'; or pass a loss function."
        ) from None
    return fn, getattr(fn, "__name__", getattr(fn, "name", metric))


def metric_kind(name):
    if name in SPARSE_METRICS:
        return "sparse"
    if name in ONEHOT_METRICS:
        return "onehot"
    if name in MULTILABEL_METRICS:
        return "multilabel"
    return "regression"


def _missing_label_mask(labels):
    """True where a 1-D label array marks a missing label (-1, None, NaN, pandas NA)."""
    if labels.dtype.kind in "iu":
        return labels == MISSING
    if labels.dtype.kind == "f":
        return np.isnan(labels) | (labels == MISSING)
    missing = np.zeros(len(labels), dtype=bool)
    for i, value in enumerate(labels):
        if value is None or (isinstance(value, float) and np.isnan(value)) or value is getattr(_pandas_na(), "NA", object()):
            missing[i] = True
        elif isinstance(value, (int, np.integer)) and value == MISSING:
            missing[i] = True
    return missing


def _pandas_na():
    try:
        import pandas

        return pandas
    except ImportError:
        return None


REGRESSION_HINT = "Ivis(supervision_metric='mae') (or 'mse', 'logcosh', 'huber')"


def _check_target_container(Y):
    """Refuse ``Y`` that is not one target per row (a string, a mapping, a single value)."""
    if isinstance(Y, (str, bytes)):
        raise TypeError(
            f"Y must hold one target per row (a list, NumPy array or pandas Series); got a string, "
            f"{Y!r:.40}. To use a column of a DataFrame as targets, pass the column: Y=df[{Y!r:.40}]."
        )
    if isinstance(Y, (dict, set, frozenset)):
        raise TypeError(
            f"Y must hold one target per row, in the order of X's rows (a list, NumPy array or "
            f"pandas Series); got a {type(Y).__name__}. Pass the targets in row order, e.g. a pandas "
            "Series aligned with X, or list(Y.values()) for a dict in row order."
        )


def _refuse_infinite(values):
    """Raise ``ValueError`` naming the first infinite target; missing targets are NaN only."""
    infinite = np.isinf(values)
    if infinite.any():
        row = int(np.argwhere(infinite.reshape(len(infinite), -1))[0][0])
        raise ValueError(
            f"Y holds an infinite value at row {row} ({values.reshape(len(values), -1)[row].tolist()}). "
            "Targets must be finite; mark a missing target with NaN (np.nan), or drop the row."
        )


def _label_numbers(labels, missing):
    """Class labels as float64 (missing ones NaN) when they are all real numbers, else None."""
    if labels.dtype.kind == "f":
        return labels.astype(np.float64, copy=False)
    present = labels[~missing]
    if labels.dtype.kind != "O" or not all(
        isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) for v in present
    ):
        return None
    values = np.full(len(labels), np.nan)
    values[~missing] = present.astype(np.float64)
    return values


def _check_class_labels(labels, missing, metric_name):
    """Refuse infinite labels, and numeric targets given to a classification metric."""
    values = _label_numbers(labels, missing)
    if values is None:
        return
    _refuse_infinite(values)
    fractional = ~missing & (values != np.round(values))
    if fractional.any():
        raise ValueError(
            f"Y holds non-integer numbers (e.g. {values[fractional][0]:g}), but "
            f"supervision_metric={metric_name!r} is a classification loss that would make every "
            f"distinct value a class. For numeric targets use a regression metric: {REGRESSION_HINT}. "
            "For classes, pass integer, string or categorical labels."
        )


def _check_several_classes(classes):
    if len(classes) == 1:
        raise ValueError(
            f"Y has a single class ({np.asarray(classes)[:1].tolist()[0]!r}) among its labelled rows. A classifier needs at "
            "least two classes: with one, the supervised loss is zero whatever the embedding. Pass "
            "labels of two or more classes, fit without Y for an unsupervised embedding, or, for "
            f"numeric targets, use a regression metric: {REGRESSION_HINT}."
        )


def _encode_sparse(Y, classes):
    if hasattr(Y, "cat") or type(Y).__name__ == "Categorical":
        categorical = getattr(Y, "cat", None) or Y
        codes = np.asarray(getattr(Y, "cat", Y).codes if hasattr(Y, "cat") else Y.codes, dtype=np.int64)
        categories = np.asarray(categorical.categories)
        if classes is not None and not np.array_equal(np.asarray(classes), categories):
            return _encode_sparse(np.asarray(Y, dtype=object), classes)
        if classes is None:
            _check_several_classes(categories[np.unique(codes[codes != MISSING])])
        return codes, categories
    labels = np.asarray(Y)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise ValueError(
            f"supervision_metric='sparse_categorical_crossentropy' needs one class label per row "
            f"(shape (n_samples,)); got Y of shape {labels.shape}. For one-hot Y use "
            "'categorical_crossentropy'; for several labels per row use 'binary_crossentropy'."
        )
    missing = _missing_label_mask(labels)
    present = labels[~missing]
    _check_class_labels(labels, missing, SPARSE_METRICS[0])
    if labels.dtype.kind == "f" and len(present):
        present = present.astype(np.int64)
    if classes is None:
        try:
            classes = np.unique(present)
        except TypeError:
            raise TypeError("Class labels in Y must be all numbers or all strings, not a mix.") from None
        _check_several_classes(classes)
    encoded = np.full(len(labels), MISSING, dtype=np.int64)
    positions = np.searchsorted(classes, present)
    positions = np.clip(positions, 0, len(classes) - 1)
    unknown = classes[positions] != present
    if np.any(unknown):
        raise ValueError(
            f"Y holds labels the model was not trained on: {sorted(set(present[unknown].tolist()))[:10]}. "
            f"Known classes: {list(classes)[:20]}."
        )
    encoded[~missing] = positions
    return encoded, classes


def _encode_values(Y, kind, name, classes):
    """``(targets, spec, missing)`` for one-hot, multi-label and regression targets."""
    values = np.asarray(Y, dtype=np.float64) if not hasattr(Y, "toarray") else Y.toarray().astype(np.float64)
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"Y for supervision_metric={name!r} must be 1- or 2-dimensional; got shape {values.shape}.")
    _refuse_infinite(values)
    missing = np.isnan(values).any(axis=1)
    if kind in ("onehot", "multilabel"):
        missing |= (values == MISSING).all(axis=1)
        _check_indicator_rows(values[~missing], values.shape[1], kind, name)
    spec = TargetSpec(kind, values.shape[1], name)
    if classes is not None and len(classes) != spec.n_outputs:
        raise ValueError(f"Y has {spec.n_outputs} columns; the model was trained with {len(classes)}.")
    return np.where(missing[:, None], np.nan, values).astype(np.float32), spec, missing


def _check_indicator_rows(observed, n_columns, kind, name):
    """Refuse one-hot or multi-label rows that hold anything but 0/1 (exactly one 1, for one-hot)."""
    if not np.isin(observed, (0, 1)).all():
        need = "one-hot rows (e.g. keras.utils.to_categorical(labels))" if kind == "onehot" else "rows of 0/1 indicators, one column per label"
        raise ValueError(
            f"supervision_metric={name!r} needs Y as {need}; got values other than 0 and 1. "
            "For integer class labels use 'sparse_categorical_crossentropy'."
        )
    if kind == "onehot" and n_columns < 2:
        raise ValueError(
            f"supervision_metric={name!r} needs one-hot Y with one column per class; got a "
            "single column. For integer class labels use 'sparse_categorical_crossentropy'."
        )
    if kind == "onehot" and np.any(observed.sum(axis=1) != 1):
        raise ValueError(f"supervision_metric={name!r} needs exactly one 1 per row of one-hot Y.")


def prepare_targets(Y, metric, n_rows, classes=None):
    """Check ``Y`` against ``metric`` and return ``(encoded_targets, TargetSpec)``.

    Parameters
    ----------
    Y : array-like
        The targets passed to ``fit``.
    metric : str or callable
        ``supervision_metric``.
    n_rows : int
        Number of rows of X.
    classes : ndarray, optional
        Classes of an already fitted model (continuing training keeps the encoding).

    Raises
    ------
    ValueError
        If Y's length differs from X's, every label is missing, or Y's format does not suit
        the metric (the message says which format it needs).
    """
    _, name = resolve_metric(metric)
    kind = metric_kind(name)
    _check_target_container(Y)
    if not (hasattr(Y, "cat") or type(Y).__name__ == "Categorical" or hasattr(Y, "toarray")):
        Y = as_array(Y, "Y")
        if Y.ndim == 0:
            raise TypeError(
                f"Y must hold one target per row (a list, NumPy array or pandas Series); got a single "
                f"value, {Y.item()!r:.40}."
            )
    if len(Y) != n_rows:
        raise ValueError(f"Y has {len(Y)} labels but X has {n_rows} rows; pass one label per row.")
    if kind == "sparse":
        encoded, classes = _encode_sparse(Y, classes)
        missing = encoded == MISSING
        spec = TargetSpec(kind, len(classes), name, np.asarray(classes))
        targets = encoded.astype(np.int32)
    else:
        targets, spec, missing = _encode_values(Y, kind, name, classes)
    if missing.all():
        raise ValueError(
            "Every label in Y is missing; supervised training needs at least one labelled row. "
            "Fit without Y for an unsupervised embedding."
        )
    if missing.any() and not isinstance(metric, str):
        raise ValueError(
            "Y has missing labels, but a custom supervision_metric function cannot be masked. Use a "
            "Keras loss name (e.g. 'sparse_categorical_crossentropy' or 'mae') or remove the missing rows."
        )
    return targets, spec


def missing_rows(targets, spec):
    """True for each row of encoded ``targets`` (from :func:`prepare_targets`) without a label."""
    if spec.kind == "sparse":
        return targets == MISSING
    return np.isnan(targets).any(axis=1)


def hold_out_labelled_rows(targets, spec, fraction, seed):
    """Set aside a random ``fraction`` of the labelled rows to measure the supervised loss on.

    Parameters
    ----------
    targets : ndarray
        Encoded targets from :func:`prepare_targets`.
    spec : TargetSpec
        Their description.
    fraction : float
        Share of the labelled rows to hold out, in (0, 1).
    seed : int
        Seed of the draw: the same seed holds out the same rows.

    Returns
    -------
    training_targets : ndarray
        ``targets`` with the held-out rows' labels marked missing, so that training never
        sees them (the rows still serve as inputs to the triplet loss).
    held_out : ndarray of int
        Sorted indices of the held-out rows.

    Raises
    ------
    ValueError
        If the fraction leaves no labelled row on either side.
    """
    labelled = np.flatnonzero(~missing_rows(targets, spec))
    n_held_out = int(round(fraction * len(labelled)))
    if n_held_out < 1 or n_held_out >= len(labelled):
        raise ValueError(
            f"validation_fraction={fraction} of the {len(labelled)} labelled rows holds out {n_held_out}; "
            "at least one labelled row must be held out and one left for training. Choose a fraction "
            "that does so, or validation_fraction=None."
        )
    held_out = np.sort(np.random.default_rng(seed).choice(labelled, n_held_out, replace=False))
    training_targets = targets.copy()
    training_targets[held_out] = MISSING if spec.kind == "sparse" else np.nan
    return training_targets, held_out
