"""The input pipeline that feeds triplet batches to the training step."""

import keras
import numpy as np

from ivis.data.inputs import as_row_source
from ivis.nn.training import TripletBatches, input_pipeline


def _batches(X, **kwargs):
    neighbours = np.stack([(np.arange(len(X)) + j) % len(X) for j in (1, 2, 3)], axis=1)
    return TripletBatches(as_row_source(X), neighbours, 32, seed=0, **kwargs)


def test_pipeline_yields_every_batch_once_in_order(blobs):
    X, y = blobs
    for kwargs in ({"indices_only": True}, {"in_batch_negatives": True, "labels": y}, {}):
        batches = _batches(X, **kwargs)
        pipeline = input_pipeline(batches)
        if keras.backend.backend() != "tensorflow":
            assert pipeline is batches
            continue
        assert int(pipeline.cardinality()) == len(batches)
        got = list(pipeline.as_numpy_iterator())
        assert len(got) == len(batches)
        for i, batch in enumerate(got):
            expected = batches[i]
            flat_got, flat_expected = keras.tree.flatten(batch), keras.tree.flatten(expected)
            assert len(flat_got) == len(flat_expected)
            for g, e in zip(flat_got, flat_expected):
                np.testing.assert_array_equal(g, e)
