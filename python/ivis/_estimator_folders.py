"""Saving, loading and pickling :class:`ivis.Ivis` through its model folder.

The folder format, its safety checks and the manifest live in :mod:`ivis.persistence`; this
mixin moves an estimator's parameters and fitted attributes into and out of it.
"""

import os
import shutil
import tempfile

import numpy as np
from sklearn.utils.validation import check_is_fitted

from ivis import _params, persistence


def _import_keras():
    from ivis._keras_import import import_keras

    return import_keras()


class ModelFolderMixin:
    """``save_model``, ``load_model`` and pickling for :class:`ivis.Ivis`."""

    def save_model(self, folder_path, save_format="h5", overwrite=False):
        """Save the fitted model to a folder (see :mod:`ivis.persistence` for its layout).

        Parameters
        ----------
        folder_path : str or PathLike
            Destination folder.
        save_format : {'h5', 'tf', 'keras'}, default='h5'
            Kept for compatibility: every model is saved in the same versioned ivis format
            (Keras archives for the networks, no pickle), whatever this says.
        overwrite : bool, default=False
            Replace an existing model folder. Without it, an existing path is an error, and so
            is a path another process creates while this save runs: of concurrent saves to one
            new path exactly one succeeds. With it, only an empty directory or an ivis model
            folder (a readable ``ivis.json`` with the ivis format marker) holding nothing but
            the files ivis writes is replaced; a folder holding anything else (a README, a
            plot) is refused, never emptied.

        Notes
        -----
        The folder is written next to its destination and renamed into place when complete,
        so an interrupted save leaves the previous model whole, and a concurrent
        :meth:`load_model` sees either model, never a mix. A symlink to a model folder saves
        into the folder it points to. New folders and files get the permissions of the
        umask. File-system parameters (``annoy_index_path``) are not saved. See
        ``docs/model-folders.md``.

        Raises
        ------
        FileExistsError
            If the path exists and may not be replaced (see ``overwrite``).
        """
        check_is_fitted(self, "encoder_")
        if save_format not in ("h5", "tf", "keras"):
            raise ValueError(f"save_format must be 'h5', 'tf' or 'keras'; got {save_format!r}.")
        optimizer_variables = [np.asarray(v) for v in self.model_.optimizer.variables]
        fitted = persistence.FittedRecord(
            self.input_shape_, self.n_features_in_, self.loss_history_, self.validation_loss_history_, self._seed_,
            getattr(self, "classes_", None), getattr(self, "_target_spec_", None),
        )
        manifest = persistence.build_manifest(self.get_params(deep=False), self._networks(), fitted, self._training)
        persistence.write_model_folder(
            folder_path, manifest, self.encoder_, self.supervised_head_, optimizer_variables, overwrite
        )

    def export_onnx(self, path, overwrite=False):
        """Export the fitted networks to the ONNX file ``path``, with a manifest at ``PATH.json``.

        The graph maps float32 rows (input ``input``) to ``embedding`` (as :meth:`transform`)
        and, for supervised models, ``scores`` (as :meth:`score_samples`). Needs
        ``pip install 'ivis[onnx]'``; see :func:`ivis.onnx_export.export_onnx` for the errors
        and ``docs/deployment.md`` for running the file.

        Parameters
        ----------
        path : str or PathLike
            The ONNX file to write.
        overwrite : bool, default=False
            Replace existing files at ``path`` and ``PATH.json``; without it they are an error.

        Returns
        -------
        dict
            The manifest written to ``PATH.json``.
        """
        from ivis.onnx_export import export_onnx

        return export_onnx(self, path, overwrite=overwrite)

    def load_model(self, folder_path):
        """Load a model saved with :meth:`save_model` into this estimator.

        The saved parameters replace this estimator's, except ``callbacks``, ``neighbour_matrix``,
        the file-system parameter ``annoy_index_path`` (never read from a folder) and a
        callable ``distance`` (a custom loss must be given to the constructor before
        loading). A following ``fit`` resumes training with the saved optimizer and dropout state.

        The folder is treated as untrusted: its manifest is checked against a schema, its
        files are read without following symlinks and checked against the sizes and SHA-256
        digests the manifest records, archives are checked for declared sizes before anything
        is inflated or built, and networks are loaded in Keras's safe mode. The load sees one
        consistent model even while another process saves over the folder. See
        ``docs/model-folders.md``.

        Returns
        -------
        self : Ivis

        Raises
        ------
        ModelFolderError
            If the folder is not an ivis model, is corrupt or unsafe (the message names the
            file and the field), or needs a newer ivis.
        """
        _import_keras()
        from ivis.nn.losses import available_losses

        custom_loss = self.distance if callable(self.distance) else None
        saved = persistence.read_model(folder_path, available_losses(), custom_loss, self._check_saved_params)
        for key, value in saved.params.items():
            setattr(self, key, value)
        if custom_loss is not None:
            self.distance = custom_loss
        if saved.params.get("model") is None:
            self.model = saved.encoder.layers[1]
        self._set_fitted(saved)
        self._compile()
        persistence.restore_optimizer(self.model_, saved)
        return self

    def _set_fitted(self, saved):
        """Take the fitted attributes of a model read from a folder."""
        fitted = saved.fitted
        self.encoder_ = saved.encoder
        self.supervised_head_ = saved.head
        self.input_shape_ = fitted.input_shape
        self.n_features_in_ = fitted.n_features_in
        self.loss_history_ = fitted.loss_history
        self.validation_loss_history_ = fitted.validation_loss_history
        self.validation_indices_ = None
        self._seed_ = fitted.seed
        if fitted.classes is not None:
            self.classes_ = fitted.classes
        if fitted.target_spec is not None:
            self._target_spec_ = fitted.target_spec
        self._training = saved.training
        self.neighbour_matrix_ = None

    def _check_saved_params(self, params, manifest_path):
        """Check the saved parameters as ``fit`` would, naming the manifest field, before any is set."""
        valid = self.get_params(deep=False)
        unknown = sorted(set(params) - set(valid))
        if unknown:
            raise persistence.ModelFolderError(f"The manifest {manifest_path!r} is invalid: field 'params.{unknown[0]}' is not an ivis parameter.")
        merged = {**valid, **params, "callbacks": None}
        if callable(self.distance):
            merged["distance"] = self.distance
        if merged.get("model") is None:
            merged["model"] = _params.NETWORK_NAMES[0]  # a custom network comes from the archive
        try:
            type(self)(**merged)._check_params()
        except (ValueError, TypeError) as error:
            raise persistence.ModelFolderError(f"The manifest {manifest_path!r} is invalid: in its field 'params': {error}") from None

    # ------------------------------------------------------------ pickling

    def __getstate__(self):
        state = {k: v for k, v in self.__dict__.items() if k not in ("model_", "encoder_", "supervised_head_")}
        if self._is_fitted():
            folder = tempfile.mkdtemp(prefix="ivis-pickle-")
            try:
                self.save_model(os.path.join(folder, "model"))
                state["_packed_model"] = persistence.folder_to_bytes(os.path.join(folder, "model"))
            finally:
                shutil.rmtree(folder, ignore_errors=True)
        return state

    def __setstate__(self, state):
        packed = state.pop("_packed_model", None)
        self.__dict__.update(state)
        if packed is not None:
            folder = tempfile.mkdtemp(prefix="ivis-unpickle-")
            try:
                persistence.bytes_to_folder(packed, folder)
                distance = self.distance
                self.load_model(folder)
                self.distance = distance
            finally:
                shutil.rmtree(folder, ignore_errors=True)
