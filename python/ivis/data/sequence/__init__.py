"""Indexable datasets: data connectors that ivis reads a batch at a time.

:class:`IndexableDataset` is the base class of every connector. :class:`ImageDataset` and
:class:`FlattenedImageDataset` read image files from disk; ``ivis.data.sequence.sqlite``
holds :class:`~ivis.data.sequence.sqlite.SQLiteDataset`, the worked example of a connector
to a database.
"""

from ivis.data.sequence.image import FlattenedImageDataset, ImageDataset
from ivis.data.sequence.sequence import IndexableDataset

__all__ = ["IndexableDataset", "ImageDataset", "FlattenedImageDataset"]
