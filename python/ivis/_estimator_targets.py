"""Labels of a supervised fit: their encoding and the rows held out to validate on."""

from ivis import _params
from ivis._seeds import stage_seed


class SupervisionMixin:
    """Targets of :class:`~ivis.Ivis`: ``Y`` checked and encoded, and the held-out rows."""

    def _prepare_targets(self, Y, n_rows, warm):
        if Y is None:
            return None, None
        from ivis.supervision import prepare_targets

        classes = getattr(self, "classes_", None) if warm else None
        targets, spec = prepare_targets(Y, self.supervision_metric, n_rows, classes)
        if spec.classes is not None:
            self.classes_ = spec.classes
        self._target_spec_ = spec
        return targets, spec

    def _hold_out(self, targets, spec):
        """Return ``(training_targets, held_out)``: the rows ``validation_fraction`` sets aside."""
        self.validation_indices_ = None
        if self.validation_fraction is None:
            return targets, None
        _params.check_hold_out(supervised=spec is not None, supervision_metric=self.supervision_metric)
        from ivis.supervision import hold_out_labelled_rows

        training_targets, held_out = hold_out_labelled_rows(
            targets, spec, self.validation_fraction, stage_seed(self._seed_, "validation")
        )
        self.validation_indices_ = held_out
        return training_targets, (held_out, targets[held_out])
