"""The per-process model cache that Dask and Spark workers embed with."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ivis.distributed import model_cache
from ivis.estimator import load_model


@pytest.fixture
def clean_cache():
    model_cache.clear()
    yield
    model_cache.clear()


def test_concurrent_first_uses_load_the_folder_once(fitted_blobs, blobs, tmp_path, clean_cache):
    folder = tmp_path / "m"
    fitted_blobs.save_model(str(folder))
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: model_cache.cached_model(folder, load_model), range(8)))
    assert all(m is models[0] for m in models)
    assert model_cache.load_counts() == {str(folder.resolve()): 1}
    np.testing.assert_allclose(models[0].transform(blobs[0]), fitted_blobs.transform(blobs[0]), atol=1e-5)


def test_a_packed_folder_is_unpacked_and_loaded_once(fitted_blobs, blobs, tmp_path, clean_cache):
    fitted_blobs.save_model(str(tmp_path / "m"))
    key, data = model_cache.pack_folder(tmp_path / "m")
    first = model_cache.cached_packed_model(key, data, load_model)
    assert model_cache.cached_packed_model(key, data, load_model) is first
    assert model_cache.load_counts() == {key: 1}
    np.testing.assert_allclose(first.transform(blobs[0]), fitted_blobs.transform(blobs[0]), atol=1e-5)
