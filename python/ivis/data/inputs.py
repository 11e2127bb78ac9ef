"""Uniform, validated access to every kind of input ivis accepts.

:func:`as_row_source` wraps NumPy arrays, pandas DataFrames, SciPy sparse matrices, h5py
datasets and :class:`~ivis.data.sequence.IndexableDataset` objects (or anything with
``shape`` and ``__getitem__``) in a :class:`RowSource`: rows come out as float32 NumPy
arrays, a batch or a contiguous chunk at a time, so that no caller needs to know where the
data lives or densify it whole.
"""

import numpy as np

from ivis.data.dask_source import DaskArraySource, is_dask_array
from ivis.data.read_plan import plan_reads  # noqa: F401 - re-exported
from ivis.data.row_sources import (  # noqa: F401 - the row sources, re-exported
    DEFAULT_CHUNK_ROWS,
    MAX_CHUNK_BYTES,
    ArraySource,
    IndexedSource,
    RowSource,
    SparseSource,
    _is_real_dtype,
    bounded_chunk_rows,
)
from ivis.data.float32 import FLOAT32_MAX, check_float32_range  # noqa: F401 - re-exported

def is_h5py_dataset(X):
    """True for an ``h5py.Dataset``, found without importing h5py.

    Type checks only: touching attributes of a dataset whose file is closed raises.
    """
    return type(X).__module__.startswith("h5py") and type(X).__name__ == "Dataset"


def _check_h5py_dataset(X, name):
    if not X.id.valid:
        raise ValueError(
            f"The HDF5 dataset given as {name} belongs to a closed file. Keep the h5py.File open "
            "(e.g. inside its `with` block) while fitting or transforming."
        )
    if not np.issubdtype(X.dtype, np.number):
        raise TypeError(f"The HDF5 dataset given as {name} has non-numeric dtype {X.dtype}.")


def _is_float32_c_array(X):
    return X.dtype == np.float32 and X.flags.c_contiguous


def _is_numeric_column(dtype):
    # Booleans count as numbers (0 and 1), as they do in a NumPy array.
    from pandas.api.types import is_bool_dtype, is_complex_dtype, is_numeric_dtype

    return (is_numeric_dtype(dtype) or is_bool_dtype(dtype)) and not is_complex_dtype(dtype)


def _dataframe_to_array(X, name):
    non_numeric = [str(c) for c, dtype in X.dtypes.items() if not _is_numeric_column(dtype)]
    if non_numeric:
        raise TypeError(
            f"{name} has non-numeric columns: {', '.join(non_numeric)}. Encode them as numbers "
            "(e.g. one-hot) or drop them before fitting."
        )
    # Wide float columns stay float64 until ArraySource checks them against float32's range.
    wide = any(getattr(dtype, "kind", "") == "f" and dtype.itemsize > 4 for dtype in X.dtypes)
    return X.to_numpy(dtype=np.float64 if wide else np.float32, na_value=np.nan)


def as_row_source(X, name="X", min_rows=1):
    """Validate ``X`` and wrap it in the matching :class:`RowSource`.

    Parameters
    ----------
    X : array-like, sparse matrix, h5py.Dataset, dask.array.Array, IndexableDataset or anndata.AnnData
        The data (an AnnData's ``.X``, in memory or backed).
    name : str, default='X'
        Name used in error messages.
    min_rows : int, default=1
        The smallest number of rows accepted.

    Raises
    ------
    TypeError
        For non-numeric data or objects without ``shape`` and ``__getitem__``.
    ValueError
        For empty data, too few rows, data with no feature axis, or a closed HDF5 file.
    """
    from ivis.data.anndata import anndata_rows, is_anndata  # does not import anndata

    if is_anndata(X):  # its .X; anndata_rows picks obsm[use_rep] or a layer
        X = anndata_rows(X)
    if isinstance(X, RowSource):
        source = X
    elif hasattr(X, "tocsr") and hasattr(X, "nnz"):
        source = SparseSource(X, name)
    elif type(X).__name__ == "DataFrame" and hasattr(X, "dtypes"):
        source = ArraySource(_dataframe_to_array(X, name), name)
    elif is_h5py_dataset(X):
        _check_h5py_dataset(X, name)
        source = IndexedSource(X, name)
    elif is_dask_array(X):
        # Out of core: only the blocks holding requested rows are computed.
        source = DaskArraySource(X, name)
    elif isinstance(X, np.memmap) and _is_real_dtype(X.dtype) and not _is_float32_c_array(X):
        # Converting a memory-mapped file to float32 would load all of it: stream it instead.
        source = IndexedSource(X, name)
    elif isinstance(X, np.ndarray) or isinstance(X, (list, tuple)) or hasattr(X, "__array__") and not hasattr(X, "get_batch"):
        source = ArraySource(_numeric_array(X, name), name)
    elif hasattr(X, "shape") and hasattr(X, "__getitem__"):
        source = IndexedSource(X, name)
    else:
        raise TypeError(
            f"{name} must be an array, DataFrame, sparse matrix, h5py dataset or IndexableDataset "
            f"(anything with .shape and __getitem__); got {type(X).__name__}."
        )
    if len(source.shape) < 2:
        raise ValueError(
            f"{name} must be at least 2-dimensional (rows x features); got shape {source.shape}. "
            "Reshape your data: X.reshape(-1, 1) for a single feature, X.reshape(1, -1) for a single row."
        )
    if source.n_features == 0:
        raise ValueError(f"0 feature(s) (shape={source.shape}) while a minimum of 1 is required.")
    if source.n_rows < min_rows:
        raise ValueError(
            f"Found {name} with {source.n_rows} sample(s) (shape={source.shape}) while a minimum of "
            f"{min_rows} is required: ivis learns from neighbouring samples."
        )
    return source


def _ragged_message(rows, name):
    """Why the nested sequence ``rows`` is not an array: the first row shaped unlike row 0."""
    first = None
    for i, row in enumerate(rows):
        try:
            shape = np.shape(row)
        except ValueError:
            return f"{name} is a ragged list: row {i} itself holds sequences of different lengths."
        if first is None:
            first = shape
        elif shape != first:
            return f"{name} is a ragged list: row 0 has shape {first} but row {i} has shape {shape}."
    return f"{name} is a ragged list: its rows have different shapes."


def as_array(values, name):
    """``np.asarray(values)``, with a clear error for ragged nested lists.

    Raises
    ------
    ValueError
        If ``values`` is a nested sequence whose rows differ in length; the message names the
        first such row.
    """
    try:
        return np.asarray(values)
    except ValueError as error:
        if not isinstance(values, (list, tuple)):
            raise
        raise ValueError(
            f"{_ragged_message(values, name)} Every row needs the same number of values: pad or "
            f"drop the short rows, or pass {name} as a 2-D NumPy array or DataFrame."
        ) from error


def _numeric_array(X, name):
    """``X`` as a real-valued NumPy array, or a clear error."""
    array = as_array(X, name)
    if np.issubdtype(array.dtype, np.complexfloating):
        raise ValueError(f"Complex data not supported: {name} has dtype {array.dtype}.")
    if array.dtype == bool:
        return array.astype(np.float32)
    if array.dtype == object:
        try:
            return array.astype(np.float64)
        except (TypeError, ValueError) as error:
            raise TypeError(
                f"{name} has values that are not numbers ({error}); each argument must be a string or a "
                "number convertible to float. Encode categorical columns (e.g. one-hot) before fitting."
            ) from None
    if not np.issubdtype(array.dtype, np.number):
        raise TypeError(
            f"{name} must be numeric; got an array of dtype {array.dtype}. Convert or encode "
            "non-numeric columns before fitting."
        )
    return array
