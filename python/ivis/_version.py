"""The version of the ivis Python core.

The R package's ``DESCRIPTION`` carries the same number; ``tests/test_versions.py`` checks
that the two agree.
"""

__version__ = "3.0.0"
