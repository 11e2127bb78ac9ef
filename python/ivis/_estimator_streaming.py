"""Embedding data larger than memory: the streaming methods of :class:`ivis.Ivis`.

:meth:`~StreamingTransformMixin.transform_to` writes embeddings chunk by chunk to disk, and
:meth:`~StreamingTransformMixin.transform_generator` yields one embedding per chunk; only
one chunk of rows and its embedding are in memory at a time.
"""

from sklearn.utils.validation import check_is_fitted

from ivis import _params, engine
from ivis.data.inputs import ArraySource
from ivis.engine import TRANSFORM_CHUNK_ROWS


class StreamingTransformMixin:
    """``transform_to`` and ``transform_generator`` for an estimator with ``encoder_`` and ``_check_transform_input``."""

    def transform_to(self, X, out, chunk_rows=TRANSFORM_CHUNK_ROWS):
        """Embed ``X`` chunk by chunk, writing the embedding into ``out`` as it goes.

        Parameters
        ----------
        X : array-like, sparse matrix, h5py.Dataset or IndexableDataset
            Rows of the same shape as in fit; read ``chunk_rows`` rows at a time.
        out : h5py.Dataset, (str, str), numpy.memmap, numpy.ndarray or str
            Where the embedding goes:

            - an ``h5py.Dataset`` of shape ``(n_samples, embedding_dims)`` in a file open for
              writing;
            - a ``(file path, dataset name)`` pair: a new float32 dataset of that shape is
              created in the file (the file is created if missing, and closed at the end);
            - a NumPy array or ``numpy.memmap`` of that shape (a memmap is flushed at the end);
            - the path of a ``.npy`` file, created (or replaced) with
              ``numpy.lib.format.open_memmap``; read it back with
              ``numpy.load(path, mmap_mode='r')``.
        chunk_rows : int, default=8192
            Rows read, embedded and written per step (fewer for very wide rows).

        Returns
        -------
        out
            The ``out`` given, now holding the embedding.

        Raises
        ------
        ValueError
            If ``out`` has the wrong shape, is read-only or closed, or names an existing dataset.

        Examples
        --------
        >>> import h5py
        >>> with h5py.File("data.h5", "r") as f:                      # doctest: +SKIP
        ...     model.transform_to(f["X"], ("embedding.h5", "ivis"))
        >>> model.transform_to(X, "embedding.npy")                    # doctest: +SKIP
        """
        from ivis.data.outputs import open_output

        source = self._check_transform_input(X)
        _params.check_int("chunk_rows", chunk_rows, 1)
        dims = int(self.encoder_.outputs[0].shape[-1])
        target, finish = open_output(out, (source.n_rows, dims), chunk_rows)
        try:
            for start, chunk in source.iter_chunks(chunk_rows):
                target[start:start + len(chunk)] = engine.embed(self.encoder_, ArraySource(chunk))
        finally:
            finish()
        return out

    def transform_generator(self, chunks):
        """Embed an iterable of chunks of rows lazily, yielding one embedding per chunk.

        Nothing is read before the first embedding is asked for, and only one chunk is held
        at a time, so data of any size can be embedded from a generator::

            for embedding in model.transform_generator(reader):
                sink.write(embedding)

        Parameters
        ----------
        chunks : iterable
            Chunks of rows: arrays, DataFrames, sparse matrices or h5py datasets of shape
            ``(n_i, ...)`` with rows as in fit (a single row is a chunk of shape ``(1, ...)``).

        Yields
        ------
        ndarray of shape (n_i, embedding_dims)
            The embedding of each chunk, in order.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            At once, if the model is not fitted.
        TypeError
            At once, if ``chunks`` is not iterable.
        """
        check_is_fitted(self, "encoder_")
        return self._embed_chunks(iter(chunks))

    def _embed_chunks(self, chunks):
        for chunk in chunks:
            source = self._check_transform_input(chunk)
            yield engine.embed(self.encoder_, source)
