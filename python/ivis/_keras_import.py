"""The first import of Keras, without TensorFlow's start-up lines.

When TensorFlow loads, its C++ code writes ``WARNING: All log messages before
absl::InitializeLog() is called are written to STDERR`` and ``... oneDNN custom operations
are on ...`` straight to the process's standard error, before ``TF_CPP_MIN_LOG_LEVEL``
applies, so neither that setting nor Python's logging hides them. :func:`import_keras`
points file descriptor 2 at a temporary file during that one import and then writes what was
captured back to standard error, less those lines: genuine messages, and the traceback of a
failed import, still reach the user.

The lines are hidden only while ``TF_CPP_MIN_LOG_LEVEL`` hides TensorFlow's INFO and WARNING
messages (2 or more: ivis's default, see :mod:`ivis`). A user who sets it to 0 or 1 sees
TensorFlow's start-up output unchanged.
"""

import contextlib
import os
import sys
import tempfile

# Substrings of the start-up lines that are hidden.
STARTUP_LINES = (
    "All log messages before absl::InitializeLog() is called",
    "oneDNN custom operations are on",
)


def _hides_startup_lines():
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0")) >= 2
    except ValueError:
        return False


def import_keras():
    """Import and return :mod:`keras`, hiding TensorFlow's start-up lines on the first import."""
    if "keras" not in sys.modules and _hides_startup_lines():
        with startup_lines_hidden():
            import keras
    import keras

    return keras


@contextlib.contextmanager
def startup_lines_hidden():
    """Capture file descriptor 2 inside the block; write it back afterwards less :data:`STARTUP_LINES`."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, AttributeError, ValueError):  # no usable standard error: nothing to hide
        yield
        return
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            with contextlib.suppress(AttributeError, ValueError, OSError):
                sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            kept = [line for line in captured.read().splitlines(keepends=True) if not _is_startup_line(line)]
            remaining = memoryview(b"".join(kept))
            while remaining:
                remaining = remaining[os.write(2, remaining):]


def _is_startup_line(line):
    text = line.decode("utf-8", "replace")
    return any(marker in text for marker in STARTUP_LINES)
