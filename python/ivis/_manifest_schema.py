"""The schema of a model folder's manifest (``ivis.json``), checked field by field.

A manifest is read from a folder that may come from anyone, so every field the loader uses
is checked here for type, range and consistency before anything is built from it. Each
problem is reported as the file and the dotted field name, e.g. ``training.epochs_trained``.
"""

import math
import re

FORMAT_NAME = "ivis-model"
FORMAT_VERSION = 1
# Role of each file in a model folder -> its fixed name.
ROLE_FILES = {"encoder": "encoder.keras", "supervised_head": "supervised_head.keras", "optimizer": "optimizer.npz"}
TARGET_KINDS = ("sparse", "onehot", "multilabel", "regression")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ManifestFieldError(ValueError):
    """A manifest field that breaks the schema; ``field`` is its dotted name."""

    def __init__(self, field, problem):
        super().__init__(f"field {field!r} {problem}")
        self.field = field


class NewerFormatError(ValueError):
    """A manifest of a format version newer than this ivis reads."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value):
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _require(condition, field, problem):
    if not condition:
        raise ManifestFieldError(field, problem)


def _dict(manifest, field, required=True):
    value = manifest.get(field.rsplit(".", 1)[-1])
    if value is None and not required:
        return None
    _require(isinstance(value, dict), field, f"must be an object; got {value!r:.60}")
    return value


def _int(value, field, minimum):
    _require(_is_int(value) and value >= minimum, field, f"must be an integer >= {minimum}; got {value!r:.60}")
    return value


def _numbers(value, field):
    _require(isinstance(value, list) and all(_is_number(v) for v in value), field,
             "must be a list of numbers")
    return value


def check_format_version(manifest):
    """Check ``format_version``: a positive integer this ivis reads (a newer one asks for an upgrade)."""
    version = manifest.get("format_version")
    _require(_is_int(version) and version >= 1, "format_version", f"must be a positive integer; got {version!r:.60}")
    if version > FORMAT_VERSION:
        raise NewerFormatError(
            f"uses model format version {version} (written by ivis {manifest.get('ivis_version', '?')}); "
            f"this ivis reads versions up to {FORMAT_VERSION}. Upgrade ivis to load it."
        )


def validate_manifest(manifest):
    """Check a parsed manifest against the schema.

    Raises
    ------
    ManifestFieldError
        Naming the first field that is missing, of the wrong type, out of range, or
        inconsistent with another field.
    NewerFormatError
        If the manifest needs a newer ivis.
    """
    _require(isinstance(manifest, dict), "(top level)", "must be a JSON object")
    _require(manifest.get("format") == FORMAT_NAME, "format", f"must be {FORMAT_NAME!r}")
    check_format_version(manifest)
    for name in ("ivis_version", "keras_version", "backend"):
        _require(manifest.get(name) is None or isinstance(manifest[name], str), name, "must be a string")
    _check_files(manifest)
    params = _dict(manifest, "params")
    for key, value in params.items():
        _require(value is None or isinstance(value, (bool, int, float, str, list)), f"params.{key}",
                 "must be a JSON scalar or list")
    fitted = _check_fitted(manifest)
    _check_training(manifest, params, fitted)


def _check_files(manifest):
    files = _dict(manifest, "files")
    for role, name in files.items():
        _require(role in ROLE_FILES, f"files.{role}", f"is not a file role of a model folder ({', '.join(ROLE_FILES)})")
        _require(name == ROLE_FILES[role], f"files.{role}", f"must be {ROLE_FILES[role]!r}; got {name!r:.60}")
    _require("encoder" in files, "files.encoder", "is missing: a model folder has an encoder")
    checksums = _dict(manifest, "checksums", required=False)
    for name, entry in (checksums or {}).items():
        field = f"checksums.{name}"
        _require(name in files.values(), field, "names a file that is not in 'files'")
        _require(isinstance(entry, dict), field, "must be an object")
        _int(entry.get("bytes"), f"{field}.bytes", 0)
        _require(isinstance(entry.get("sha256"), str) and _SHA256.match(entry["sha256"]), f"{field}.sha256",
                 "must be 64 lowercase hexadecimal digits")


def _check_fitted(manifest):
    fitted = _dict(manifest, "fitted")
    shape = fitted.get("input_shape")
    _require(isinstance(shape, list) and shape and all(_is_int(d) and d >= 1 for d in shape), "fitted.input_shape",
             f"must be a non-empty list of positive integers; got {shape!r:.60}")
    n_features = _int(fitted.get("n_features_in"), "fitted.n_features_in", 1)
    _require(n_features == math.prod(shape), "fitted.n_features_in", f"must equal the product of fitted.input_shape {shape}")
    _numbers(fitted.get("loss_history"), "fitted.loss_history")
    _numbers(fitted.get("validation_loss_history", []), "fitted.validation_loss_history")
    _require(_is_int(fitted.get("seed")), "fitted.seed", f"must be an integer; got {fitted.get('seed')!r:.60}")
    classes = fitted.get("classes")
    if classes is not None:
        _require(isinstance(classes, list) and classes and all(isinstance(c, (str, int, float, bool)) for c in classes),
                 "fitted.classes", "must be null or a non-empty list of labels")
    target = fitted.get("target")
    if target is not None:
        _require(isinstance(target, dict), "fitted.target", "must be null or an object")
        _require(target.get("kind") in TARGET_KINDS, "fitted.target.kind",
                 f"must be one of {', '.join(map(repr, TARGET_KINDS))}")
        _int(target.get("n_outputs"), "fitted.target.n_outputs", 1)
        _require(target.get("metric_name") is None or isinstance(target["metric_name"], str),
                 "fitted.target.metric_name", "must be a string")
        _require("supervised_head" in manifest["files"], "fitted.target", "describes a supervised head the folder lacks")
        if target["kind"] == "sparse":
            _require(classes is not None and len(classes) == target["n_outputs"], "fitted.classes",
                     f"must list the {target['n_outputs']} classes the supervised head predicts")
    random = fitted.get("random_states")
    if random is not None:
        _require(isinstance(random, dict), "fitted.random_states", "must be null or an object")
        for role in ("encoder", "supervised_head"):
            _require(random.get(role) is None or isinstance(random[role], list), f"fitted.random_states.{role}",
                     "must be null or a list")
    return fitted


def _check_training(manifest, params, fitted):
    training = _dict(manifest, "training", required=False)
    if training is None:
        return
    history = len(fitted["loss_history"])
    trained = _int(training.get("epochs_trained"), "training.epochs_trained", 0)
    _require(trained == history, "training.epochs_trained",
             f"is {trained}, but fitted.loss_history records {history} epochs")
    _require(isinstance(training.get("complete"), bool), "training.complete", "must be true or false")
    epochs = params.get("epochs")
    if not training["complete"]:
        _require(_is_int(epochs) and trained <= epochs, "training.epochs_trained",
                 f"is {trained}, beyond the {epochs!r} epochs of the unfinished run it belongs to")
    stopping = training.get("early_stopping")
    if stopping is not None:
        _require(isinstance(stopping, dict), "training.early_stopping", "must be null or an object")
        _require(stopping.get("best") is None or _is_number(stopping["best"]), "training.early_stopping.best",
                 "must be null or a number")
        wait = _int(stopping.get("wait", 0), "training.early_stopping.wait", 0)
        # The embedding rule waits for steps as well as epochs, so it may wait past its patience.
        patience = params.get("n_epochs_without_progress") if params.get("early_stopping", "loss") == "loss" else None
        _require(wait <= trained and (not _is_int(patience) or wait <= patience), "training.early_stopping.wait",
                 f"is {wait}, more than the epochs trained ({trained}) or the patience ({patience!r})")
