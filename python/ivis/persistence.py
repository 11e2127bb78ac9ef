"""The ivis model folder: a versioned, code-free format, written atomically.

A model folder holds exactly these files, and ivis writes nothing else into it:

- ``ivis.json``: the manifest (format name and version, ivis and Keras versions, the
  estimator's parameters, fitted attributes, loss history, training state, the networks'
  random-generator states, e.g. of dropout, and the size and SHA-256 of every other file);
- ``encoder.keras``: the encoder network (architecture and weights, Keras's own archive);
- ``supervised_head.keras``: the supervised head, for supervised models;
- ``optimizer.npz``: the optimizer's variables, so that training resumes where it stopped.

Saving writes a new folder next to the destination and renames it into place only when it
is complete. Without ``overwrite`` the rename fails if anything took the path meanwhile, so
of two processes saving to one new path exactly one succeeds. With ``overwrite`` the
previous model is swapped out in one step (Linux) and only its ivis files are then deleted;
a folder that is not an ivis model, or that holds files ivis did not write, is never
replaced. What a killed save leaves behind (``.NAME.saving-*``) is removed by the next save
to the same path once its owner process is provably gone.

Loading treats the folder as untrusted: see :func:`read_model_folder` and
``docs/model-folders.md``. Nothing in the folder is pickled, and loading never runs code from
it, follows a symlink in it, or lets a setting from it direct a write elsewhere.

This module builds a manifest from a fitted model and restores a model from a folder; the
work is shared with :mod:`ivis._manifest_schema` (the manifest's fields),
:mod:`ivis._folder_reading` (reading files safely), :mod:`ivis._folder_writing` (writing
atomically) and :mod:`ivis._keras_archives` (networks and optimizer state), whose public
names are importable from here.
"""

import os
from dataclasses import dataclass

import numpy as np

from ivis._folder_reading import (  # noqa: F401 - the public names of model folders
    ENCODER_FILE,
    FILESYSTEM_PARAMS,
    HEAD_FILE,
    IVIS_FILES,
    LOAD_ATTEMPTS,
    MANIFEST_FILE,
    MAX_FILE_BYTES,
    MAX_MANIFEST_BYTES,
    OPTIMIZER_FILE,
    ModelFolderContents,
    ModelFolderError,
    is_model_folder,
    read_manifest,
    read_model_folder,
)
from ivis._folder_writing import (  # noqa: F401
    _work_name,
    bytes_to_folder,
    check_replaceable,
    folder_to_bytes,
    remove_stale_saves,
    write_model_folder,
)
from ivis._keras_archives import (  # noqa: F401
    read_network,
    read_optimizer_variables,
    random_states,
    restore_random_states,
)
from ivis._version import __version__

# Parameters that hold objects rather than settings, so they are not written to a model folder.
UNSAVED_PARAMS = ("callbacks", "neighbour_matrix")


def saved_params(params):
    """The estimator parameters as a manifest stores them: settings only, objects by name or None."""
    params = {key: value for key, value in params.items() if key not in UNSAVED_PARAMS}
    if not isinstance(params["model"], str):
        params["model"] = None
    if not isinstance(params["distance"], str):
        from ivis.nn.losses import loss_name

        params["distance"] = loss_name(params["distance"])
    if not isinstance(params["supervision_metric"], str):
        params["supervision_metric"] = getattr(params["supervision_metric"], "__name__", None)
    if isinstance(params["random_state"], np.random.RandomState):
        params["random_state"] = None
    return params


@dataclass
class FittedRecord:
    """The fitted attributes a model folder keeps beside its networks."""

    input_shape: tuple
    n_features_in: int
    loss_history: list
    validation_loss_history: list
    seed: int
    classes: object = None
    target_spec: object = None


def build_manifest(params, networks, fitted, training):
    """The manifest of a fitted model (:func:`write_model_folder` adds the file records).

    Parameters
    ----------
    params : dict
        The estimator's parameters (``get_params(deep=False)``).
    networks : ivis.engine.Networks
    fitted : FittedRecord
    training : ivis.engine.TrainingState
    """
    import keras

    spec = fitted.target_spec if networks.head is not None else None
    return {
        "ivis_version": __version__,
        "keras_version": keras.__version__,
        "backend": keras.backend.backend(),
        "params": saved_params(params),
        "fitted": {
            "input_shape": list(fitted.input_shape),
            "n_features_in": fitted.n_features_in,
            "loss_history": fitted.loss_history,
            "validation_loss_history": fitted.validation_loss_history,
            "seed": fitted.seed,
            "classes": None if fitted.classes is None else fitted.classes.tolist(),
            "target": None if spec is None else {"kind": spec.kind, "n_outputs": spec.n_outputs, "metric_name": spec.metric_name},
            "random_states": {
                "encoder": random_states(networks.encoder),
                "supervised_head": None if networks.head is None else random_states(networks.head),
            },
        },
        "training": training.as_manifest(),
    }


@dataclass
class SavedModel:
    """A model read from a folder: its parameters, networks, fitted record and training state."""

    contents: ModelFolderContents
    params: dict
    encoder: object
    head: object
    fitted: FittedRecord
    training: object


def read_model(folder, known_losses, custom_loss, check_params):
    """Read and check the model in ``folder``; nothing is set anywhere until all checks pass.

    Parameters
    ----------
    folder : str or PathLike
    known_losses : collection of str
        Registered loss names; a folder trained with another one needs ``custom_loss``.
    custom_loss : callable or None
        The custom loss given to the estimator.
    check_params : callable
        Called with the saved parameters; raises ModelFolderError if they are invalid.
    """
    from ivis.engine import TrainingState

    contents = read_model_folder(folder)
    manifest = contents.manifest
    params = {k: v for k, v in manifest["params"].items() if k not in FILESYSTEM_PARAMS and k not in UNSAVED_PARAMS}
    saved_distance = params.get("distance")
    if custom_loss is None and saved_distance not in known_losses:
        raise ModelFolderError(
            f"The model was trained with the custom loss {saved_distance!r}. Create the estimator "
            f"with it before loading: Ivis(distance=<your loss function>).load_model(path), or "
            "register it with ivis.nn.losses.register_loss."
        )
    check_params(params, os.path.join(os.fspath(folder), MANIFEST_FILE))
    encoder = read_network(contents, "encoder")
    head = read_network(contents, "supervised_head") if "supervised_head" in manifest["files"] else None
    fitted = manifest["fitted"]
    check_saved_networks(folder, encoder, head, fitted, params)
    saved_random = fitted.get("random_states") or {}
    restore_random_states(encoder, saved_random.get("encoder"), folder)
    if head is not None:
        restore_random_states(head, saved_random.get("supervised_head"), folder)
    contents.verify()
    record = _fitted_record(fitted, head)
    training = TrainingState.from_manifest(manifest.get("training"), len(record.loss_history))
    return SavedModel(contents, params, encoder, head, record, training)


def _fitted_record(fitted, head):
    from ivis.supervision import TargetSpec

    classes = None if fitted.get("classes") is None else np.asarray(fitted["classes"])
    target = fitted.get("target")
    spec = TargetSpec(target["kind"], target["n_outputs"], target["metric_name"], classes) if head is not None and target else None
    return FittedRecord(
        input_shape=tuple(fitted["input_shape"]),
        n_features_in=int(fitted["n_features_in"]),
        loss_history=[float(v) for v in fitted["loss_history"]],
        validation_loss_history=[float(v) for v in fitted.get("validation_loss_history", [])],
        seed=int(fitted["seed"]),
        classes=classes,
        target_spec=spec,
    )


def check_saved_networks(folder, encoder, head, fitted, params):
    """Check that the saved networks are the ones the manifest describes."""
    encoder_in = tuple(encoder.inputs[0].shape[1:])
    encoder_out = encoder.outputs[0].shape[-1]
    problems = []
    if encoder_in != tuple(fitted["input_shape"]):
        problems.append(f"the encoder takes rows of shape {encoder_in}, the manifest says {tuple(fitted['input_shape'])}")
    if params.get("embedding_dims") is not None and encoder_out != params["embedding_dims"]:
        problems.append(f"the encoder outputs {encoder_out} dimensions, the manifest says {params['embedding_dims']}")
    if head is not None and head.inputs[0].shape[-1] != encoder_out:
        problems.append(f"the supervised head takes {head.inputs[0].shape[-1]} dimensions, the encoder outputs {encoder_out}")
    target = fitted.get("target")
    if head is not None and target and head.outputs[0].shape[-1] != target["n_outputs"]:
        problems.append(
            f"the supervised head predicts {head.outputs[0].shape[-1]} outputs, the manifest's fitted.target "
            f"and fitted.classes say {target['n_outputs']}"
        )
    if head is None and target:
        problems.append("the manifest's fitted.target describes a supervised head, but the folder has none")
    if problems:
        raise ModelFolderError(
            f"The model folder {os.fspath(folder)!r} is inconsistent: {'; '.join(problems)}. "
            "It is corrupt or was assembled from different models."
        )


def restore_optimizer(model, saved):
    """Build ``model``'s optimizer and give it the state saved in ``saved`` (a :class:`SavedModel`), if any."""
    optimizer = model.optimizer
    optimizer.build(model.trainable_variables)
    variables = optimizer.variables
    values = read_optimizer_variables(saved.contents, [tuple(v.shape) for v in variables])
    if values is None:
        return
    if len(variables) != len(values) or any(tuple(v.shape) != a.shape for v, a in zip(variables, values)):
        raise ModelFolderError(
            f"The optimizer state in {saved.contents.folder!r} does not match the saved networks; "
            "the folder is corrupt or was assembled from different models."
        )
    for variable, value in zip(variables, values):
        variable.assign(value)
