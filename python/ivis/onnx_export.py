"""Export a fitted :class:`~ivis.Ivis` to ONNX, for inference without Python or TensorFlow.

The export is one ONNX file and a JSON manifest beside it (``PATH.json``). The ONNX graph
takes one input, ``input`` (float32 rows of the shape seen in fit, any number of rows), and
gives the output ``embedding`` (what :meth:`~ivis.Ivis.transform` returns) and, for supervised
models, ``scores`` (what :meth:`~ivis.Ivis.score_samples` returns). The manifest records the
input width, the embedding size, the class order, the versions and what the caller must do to
the data first; the same manifest is stored in the ONNX file's metadata under the key ``ivis``.

The conversion is Keras's own ONNX export (``keras.Model.export(format='onnx')``), which on
the TensorFlow backend runs tf2onnx: nothing here translates a network by hand. Networks
with operations the converter does not know are refused with an error that names them,
rather than written as a file no runtime can load. ``onnx`` and ``tf2onnx`` are optional
dependencies (``pip install 'ivis[onnx]'``), imported only when a model is exported.

Files are written under hidden names next to their destination and renamed into place when
complete; an existing file is replaced only with ``overwrite=True``. See ``docs/deployment.md``.
"""

import contextlib
import hashlib
import json
import logging
import os
import warnings

FORMAT_NAME = "ivis-onnx"
FORMAT_VERSION = 1
INPUT_NAME = "input"
EMBEDDING_OUTPUT = "embedding"
SCORES_OUTPUT = "scores"
MANIFEST_SUFFIX = ".json"
METADATA_KEY = "ivis"
INSTALL_HINT = "pip install 'ivis[onnx]'"
# What the ``scores`` output holds, by kind of supervised target (ivis.supervision).
SCORE_MEANINGS = {
    "sparse": "class probabilities, one column per class in the order of 'classes'",
    "onehot": "class scores, one column per one-hot column (probabilities unless the metric is a hinge loss)",
    "multilabel": "label probabilities, one column per label",
    "regression": "predicted values, one column per target",
}
# What tf2onnx logs for each TensorFlow operation it cannot convert (arguments: node, op).
_UNSUPPORTED_OP_MESSAGE = "Tensorflow op [%s: %s] is not supported"


class OnnxExportError(ValueError):
    """A model that cannot be exported to ONNX (the message says why and what to do)."""


def manifest_path(path):
    """The manifest written beside the ONNX file ``path``: ``PATH.json``."""
    return os.fspath(path) + MANIFEST_SUFFIX


def export_onnx(estimator, path, overwrite=False):
    """Write the fitted ``estimator``'s networks to the ONNX file ``path`` and its manifest.

    Parameters
    ----------
    estimator : ivis.Ivis
        A fitted (or loaded) model.
    path : str or PathLike
        The ONNX file to write; the manifest goes to ``PATH.json``.
    overwrite : bool, default=False
        Replace existing files at ``path`` and ``PATH.json``. Without it, either existing is
        an error and nothing is written.

    Returns
    -------
    dict
        The manifest, as written to ``PATH.json``.

    Raises
    ------
    sklearn.exceptions.NotFittedError
        If the model is not fitted.
    FileExistsError
        If ``path`` or ``PATH.json`` exists and ``overwrite`` is False, or either is a folder.
    ImportError
        If ``onnx`` or ``tf2onnx`` is not installed.
    OnnxExportError
        If Keras does not run on TensorFlow, or the network holds operations the converter
        cannot translate (they are named).
    """
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "encoder_")
    destinations = check_destinations(path, overwrite)
    keras = _import_exporter()
    exported = _export_network(keras, _inference_network(keras, estimator), destinations[0])
    return _write_files(exported, _manifest(keras, estimator, exported), destinations, overwrite)


def check_destinations(path, overwrite=False, how_to_overwrite="Pass overwrite=True"):
    """The absolute paths of the ONNX file and its manifest, once both are known to be writable.

    ``how_to_overwrite`` starts the advice in the error (the command line names its option).

    Raises
    ------
    FileExistsError
        If either exists and ``overwrite`` is False, or either is a folder.
    """
    path = os.path.abspath(os.fspath(path))
    destinations = (path, manifest_path(path))
    for destination in destinations:
        if os.path.isdir(destination):
            raise FileExistsError(f"{destination} is a folder; choose a file name for the export, e.g. model.onnx.")
        if os.path.lexists(destination) and not overwrite:
            raise FileExistsError(f"{destination} already exists. {how_to_overwrite} to replace it, or choose another path.")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    return destinations


def _import_exporter():
    """Keras, once the converter's packages are known to be there and Keras runs on TensorFlow."""
    from ivis._keras_import import import_keras

    keras = import_keras()
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise OnnxExportError(
            f"ONNX export converts the network with tf2onnx, which needs Keras's TensorFlow backend; "
            f"this process runs Keras on {backend!r}. Save the model (save_model) and export it in a "
            "process started with KERAS_BACKEND=tensorflow."
        )
    missing = [name for name in ("onnx", "tf2onnx") if not _importable(name)]
    if missing:
        raise ImportError(f"ONNX export needs the optional package(s) {', '.join(missing)}: {INSTALL_HINT}")
    return keras


def _importable(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def _inference_network(keras, estimator):
    """One Keras model from rows to named outputs: the embedding, and the head's scores if any."""
    rows = keras.Input(shape=tuple(estimator.input_shape_), dtype="float32", name=INPUT_NAME)
    embedding = estimator.encoder_(rows, training=False)
    outputs = {EMBEDDING_OUTPUT: embedding}
    if estimator.supervised_head_ is not None:
        outputs[SCORES_OUTPUT] = estimator.supervised_head_(embedding, training=False)
    return keras.Model(rows, outputs, name="ivis_inference")


class _UnsupportedOps(logging.Handler):
    """Collects the operations tf2onnx reports it cannot convert, and keeps its log quiet."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.found = []

    def emit(self, record):
        if record.msg == _UNSUPPORTED_OP_MESSAGE and isinstance(record.args, tuple) and len(record.args) == 2:
            self.found.append(tuple(str(a) for a in record.args))


@contextlib.contextmanager
def _converter_log_captured():
    # tf2onnx reports unsupported operations only through its log, and still writes a file.
    logger = logging.getLogger("tf2onnx")
    handler = _UnsupportedOps()
    saved = logger.handlers[:], logger.propagate, logger.level
    logger.handlers, logger.propagate = [handler], False
    logger.setLevel(logging.INFO)
    try:
        with warnings.catch_warnings():
            # Keras's compatibility patch of tf2onnx for NumPy 2 warns about np.object.
            warnings.simplefilter("ignore", FutureWarning)
            yield handler
    finally:
        logger.handlers, logger.propagate = saved[0], saved[1]
        logger.setLevel(saved[2])


def _export_network(keras, network, path):
    """The converted, checked ONNX model (an ``onnx.ModelProto``), not yet written anywhere final."""
    import onnx

    spec = keras.InputSpec(shape=(None, *network.inputs[0].shape[1:]), dtype="float32", name=INPUT_NAME)
    scratch = _work_path(path, "converting")
    try:
        with _converter_log_captured() as unsupported:
            try:
                network.export(scratch, format="onnx", verbose=False, input_signature=[spec])
            except Exception as error:  # noqa: BLE001 - the converter raises many types
                raise OnnxExportError(
                    f"The network cannot be converted to ONNX: {type(error).__name__}: {error}. "
                    "Its layers must use operations that tf2onnx supports."
                ) from None
        if unsupported.found:
            ops = sorted({op for _, op in unsupported.found})
            nodes = ", ".join(f"{node} ({op})" for node, op in unsupported.found[:5])
            raise OnnxExportError(
                f"The network uses operations ONNX export cannot convert: {', '.join(ops)} (at {nodes}). "
                "Replace the layers that use them with standard Keras layers or keras.ops, or use the "
                "model from Python with transform."
            )
        model = onnx.load(scratch)
    finally:
        _remove(scratch)
    try:
        onnx.checker.check_model(model, full_check=True)
    except onnx.checker.ValidationError as error:
        raise OnnxExportError(f"The converted network is not a valid ONNX model: {error}") from None
    return model


def _manifest(keras, estimator, model):
    import onnx
    import tf2onnx

    from ivis._version import __version__

    spec = getattr(estimator, "_target_spec_", None) if estimator.supervised_head_ is not None else None
    classes = getattr(estimator, "classes_", None) if spec is not None else None
    outputs = {EMBEDDING_OUTPUT: {"shape": [None, int(estimator.encoder_.outputs[0].shape[-1])]}}
    if estimator.supervised_head_ is not None:
        outputs[SCORES_OUTPUT] = {
            "shape": [None, int(estimator.supervised_head_.outputs[0].shape[-1])],
            "kind": None if spec is None else spec.kind,
            "meaning": None if spec is None else SCORE_MEANINGS.get(spec.kind),
            "metric": None if spec is None else spec.metric_name,
            "classes": None if classes is None else classes.tolist(),
        }
    model_param = estimator.model if isinstance(estimator.model, str) else "custom"
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "ivis_version": __version__,
        "keras_version": keras.__version__,
        "exporter": f"tf2onnx {tf2onnx.__version__}",
        "onnx_version": onnx.__version__,
        "opset": max((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), default=None),
        "network": model_param,
        "input": {
            "name": INPUT_NAME,
            "dtype": "float32",
            "shape": [None, *(int(s) for s in estimator.input_shape_)],
            "n_features": int(estimator.n_features_in_),
        },
        "embedding_dims": outputs[EMBEDDING_OUTPUT]["shape"][1],
        "outputs": {name: {"name": name, **info} for name, info in outputs.items()},
        "preprocessing": {
            "dtype": "float32: cast the rows (float64 input is refused by ONNX runtimes)",
            "columns": "the columns of fit, in the same order; sparse rows densified",
            "scaling": "none inside the model: apply the scaling used before fit (e.g. the same fitted MinMaxScaler)",
            "missing_values": "not allowed: every value finite, as in transform",
        },
    }


def _write_files(model, manifest, destinations, overwrite):
    """Write the ONNX file and its manifest under hidden names, rename both into place; return the manifest."""
    import onnx

    onnx_path, json_path = destinations
    onnx.helper.set_model_props(model, {METADATA_KEY: json.dumps(manifest)})
    staged = [_work_path(onnx_path, "exporting"), _work_path(json_path, "exporting")]
    placed = []
    try:
        data = model.SerializeToString()
        _write_bytes(staged[0], data)
        checksum = {"file": os.path.basename(onnx_path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        record = {**manifest, **checksum}
        _write_bytes(staged[1], (json.dumps(record, indent=2) + "\n").encode("utf-8"))
        for work, final in zip(staged, destinations):
            _place(work, final, overwrite)
            placed.append(final)
    except BaseException:
        if not overwrite:
            for final in placed:  # a new export is all or nothing
                _remove(final)
        raise
    finally:
        for work in staged:
            _remove(work)
    return record


def _work_path(final, kind):
    folder, name = os.path.split(final)
    return os.path.join(folder, f".{name}.{kind}-{os.getpid()}-{os.urandom(4).hex()}")


def _write_bytes(path, data):
    with open(path, "xb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())


def _place(work, final, overwrite):
    """Rename ``work`` to ``final``; without ``overwrite``, fail if ``final`` exists by then."""
    if overwrite:
        os.replace(work, final)
        return
    try:
        os.link(work, final)  # atomic, and fails if another process took the name meanwhile
    except FileExistsError:
        raise FileExistsError(
            f"{final} was created by another process during the export; nothing was replaced. "
            "Pass overwrite=True to replace it, or choose another path."
        ) from None
    except OSError:
        # File systems without hard links: the check above this call is the guard.
        if os.path.lexists(final):
            raise FileExistsError(f"{final} already exists. Pass overwrite=True to replace it, or choose another path.") from None
        os.rename(work, final)


def _remove(path):
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
