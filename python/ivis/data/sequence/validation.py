"""Checks that a custom dataset returns what its ``shape`` promises."""

import numpy as np


def checked_batch(dataset, idx_seq):
    """Read a batch with ``dataset.get_batch`` and check its shape against ``dataset.shape``.

    A custom :class:`~ivis.data.sequence.IndexableDataset` whose rows do not match its
    ``shape`` would otherwise fail deep inside the network with an obscure message; this
    names the dataset class and both shapes instead.

    Parameters
    ----------
    dataset : IndexableDataset
        Any object with ``shape`` and ``get_batch``. A ``None`` entry in ``shape[1:]``
        accepts any size along that axis.
    idx_seq : sequence of int
        Row positions to read.

    Returns
    -------
    numpy.ndarray
        The batch, of shape ``(len(idx_seq), *dataset.shape[1:])``.

    Raises
    ------
    ValueError
        If the batch cannot be made into one array, or its shape is not the promised one.
    """
    if not hasattr(idx_seq, "__len__"):
        idx_seq = list(idx_seq)
    n = len(idx_seq)
    name = type(dataset).__name__
    batch = dataset.get_batch(idx_seq)
    try:
        batch = np.asarray(batch)
    except ValueError as err:  # ragged rows
        raise ValueError(
            f"get_batch of {name} returned rows of different shapes for {n} indices"
        ) from err
    expected = (n, *(None if d is None else int(d) for d in dataset.shape[1:]))
    matches = batch.ndim == len(expected) and all(
        want is None or got == want for got, want in zip(batch.shape, expected)
    )
    if not matches:
        shown = "(" + ", ".join("..." if d is None else str(d) for d in expected)
        shown += ",)" if len(expected) == 1 else ")"
        raise ValueError(
            f"get_batch of {name} returned shape {batch.shape} for {n} indices; "
            f"expected {shown}"
        )
    return batch
