"""scikit-learn's own estimator checks, on a configuration sized for their tiny datasets."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from ivis import Ivis
from ivis.estimator import EXPECTED_FAILED_CHECKS

SMALL = Ivis(k=3, epochs=1, batch_size=4, n_trees=2, verbose=0, random_state=0)


@parametrize_with_checks([SMALL], expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)
