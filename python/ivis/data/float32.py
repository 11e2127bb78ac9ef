"""Rows as float32: conversion, and errors that name the value that does not fit and where it is.

ivis computes in float32. Values beyond its range, NaN and infinities are refused with a
message that gives the row and column of the first one, so that the user can find it.
"""

import numpy as np

# The largest magnitude ivis can compute with: rows are float32 from here on.
FLOAT32_MAX = float(np.finfo(np.float32).max)


def non_finite_message(name, start, chunk):
    bad = np.argwhere(~np.isfinite(chunk.reshape(len(chunk), -1)))
    row, col = bad[0]
    return (
        f"{name} contains NaN or infinite values (first at row {start + row}, column {col}). "
        "Remove or impute them before fitting, e.g. with sklearn.impute.SimpleImputer."
    )


def too_large_message(name, value, where):
    return (
        f"{name} holds {value:.4g} {where}, beyond the float32 range (about +-{FLOAT32_MAX:.3g}) "
        f"that ivis computes in. Rescale {name} before fitting, e.g. with "
        "sklearn.preprocessing.StandardScaler, or np.log1p for heavy-tailed counts."
    )


def to_float32(values):
    """``values`` as a C-ordered float32 array (copied only if needed)."""
    # Overflow is reported by check_float32_range, with its position, not as a RuntimeWarning.
    with np.errstate(over="ignore", invalid="ignore"):
        return np.asarray(values).astype(np.float32, order="C", copy=False)


def overflow_mask(original, converted):
    """Where a finite value of ``original`` became infinite in float32 ``converted``, or None."""
    if original.dtype.kind != "f" or original.dtype.itemsize <= 4 or np.isfinite(converted).all():
        return None
    return np.isfinite(original) & ~np.isfinite(converted)


def check_float32_range(original, converted, name, row_numbers=None):
    """Raise ``ValueError`` if a finite value of ``original`` overflowed in ``converted``.

    Parameters
    ----------
    original : ndarray
        Rows as given (float64, say).
    converted : ndarray
        The same rows as float32.
    name : str
        The input's name in the message.
    row_numbers : ndarray of int, optional
        The row number of each row of ``original``; by default its positions.
    """
    overflowed = overflow_mask(original, converted)
    if overflowed is None or not overflowed.any():
        return
    row, col = np.argwhere(overflowed.reshape(len(overflowed), -1))[0]
    value = float(original.reshape(len(original), -1)[row, col])
    row_number = row if row_numbers is None else row_numbers[row]
    raise ValueError(too_large_message(name, value, f"at row {row_number}, column {col}"))
