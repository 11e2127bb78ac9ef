"""Bad values are reported once, by ivis, with their position: no numpy warning before."""

import warnings

import numpy as np
import pytest

from ivis import Ivis
from ivis.data.inputs import ArraySource


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_values_a_float32_cannot_hold_give_one_error_and_no_numpy_warning(bad):
    X = np.ones((6, 3))
    X[4, 2] = bad
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail here
        source = ArraySource(X)
        with pytest.raises(ValueError, match=r"NaN or infinite values \(first at row 4, column 2\)"):
            source.check_finite()


def test_a_value_beyond_float32_gives_one_error_and_no_numpy_warning():
    X = np.ones((6, 3))
    X[4, 2] = 1e300
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a numpy RuntimeWarning would fail here
        with pytest.raises(ValueError, match=r"float32"):
            ArraySource(X)


def test_random_state_beyond_32_bits_is_a_valid_seed():
    X = np.random.default_rng(0).normal(size=(40, 3))
    a = Ivis(k=5, epochs=1, batch_size=8, verbose=0, random_state=2**40).fit_transform(X)
    b = Ivis(k=5, epochs=1, batch_size=8, verbose=0, random_state=2**40).fit_transform(X)
    np.testing.assert_allclose(a, b)
