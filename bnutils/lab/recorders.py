"""Recording one unit's distribution while a network trains: ``PercentileRecorder``.

``PercentileRecorder`` is the one training-time recorder of the course, passed to
``bnutils.training.train`` as its ``callback``::

    rec = PercentileRecorder(layer=idx[-1] - 1, unit=0, mode="eval", x=x_probe)
    train(model, X, y, ..., callback=rec)      # rec.steps, rec.values: (T, 3)

Notebook 02 records a fixed batch in eval mode, notebook 05
(``bnutils.lab.figure1.figure1_run``) a fixed batch with its own batch statistics,
notebook 07 each step's training batch (``RECORD_MODES``).

Introduced in notebook 02 (and reused in notebooks 05 and 07).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .. import NonFiniteError
from .._validation import as_float_array, check_finite, check_int
from ..inference import batch_stats_forward
from .layer_stats import check_sequential

__all__ = [
    "RECORD_MODES",
    "PercentileRecorder",
]


#: What a ``PercentileRecorder`` records, by its ``mode``.
RECORD_MODES = {
    "step": "the layer's output in the training forward of the step (its mini-batch, training mode)",
    "eval": "a fixed batch x through the model in eval mode (BN uses its running statistics)",
    "batch_stats": "a fixed batch x in training mode, normalized with its own statistics "
                   "(running statistics untouched)",
}


class PercentileRecorder:
    """A ``train`` callback recording percentiles of one unit of one layer's output.

    Pass it as ``callback=`` to ``bnutils.training.train``, which calls ``rec(step, model)``
    after every update; call ``rec(0, model)`` yourself before training to record the
    starting point (that needs a fixed batch ``x``: modes "eval" and "batch_stats").

    Parameters
    ----------
    layer : int ≥ 0
        Position in the Sequential of the layer whose *output* is recorded. For the
        input of an activation at position ``i`` (see ``activation_indices``), use
        ``i - 1``: the Linear layer before it, or the BatchNorm layer in a BN network.
    unit : int ≥ 0
        Which unit (column) of that output.
    mode : {"step", "eval", "batch_stats"}, optional
        Which values the percentiles are taken over (see ``RECORD_MODES``):

        * ``"step"`` (default) — the layer's output computed by the training forward of
          the step just taken, on that step's mini-batch, in training mode (just before
          the step's update). What the layer sees *during training*; no ``x``.
        * ``"eval"`` — the fixed batch ``x`` run through the model in eval mode at each
          record, so the records differ only because the model changed. In a BN network
          eval mode normalizes with the running statistics, which lag behind early in
          training.
        * ``"batch_stats"`` — the fixed batch ``x`` run in training mode: BN normalizes it
          with its own statistics, and the running statistics are left untouched
          (``bnutils.inference.batch_stats_forward``). What the layer would see during
          training, on the same batch every time. ``x`` needs at least two rows.

        Each mode restores the model's mode (training or eval) after a record.
    x : ndarray, shape (N, D_in), optional
        The fixed batch of modes "eval" and "batch_stats" (refused by mode "step").
    q : sequence of float, optional
        Percentiles (0-100), by default the 15th, 50th and 85th (as in Ioffe & Szegedy's
        Figure 1).
    every : int ≥ 1, optional
        Record at the steps that are multiples of ``every``.

    Attributes
    ----------
    steps : list of int
        Steps at which a record was taken.
    values : ndarray, shape (len(steps), len(q))
        The percentiles at those steps (a new array at each access). A row is NaN where
        the recorded values were not all finite, or where the fixed batch ``x`` overflowed
        inside the network so that a layer refused it (a diverging run: the weights are
        still finite but huge); the record is honest about it instead of stopping the run,
        and ``train`` decides whether the run diverged.

    Raises
    ------
    TypeError
        ``layer``, ``unit`` or ``every`` is not an integer; ``x`` is not numeric.
    ValueError
        ``layer`` or ``unit`` < 0, ``every`` < 1, an unknown ``mode``, ``x`` given to mode
        "step" or missing for the others, ``x`` of the wrong shape or with NaN/inf,
        percentiles outside 0-100. When recording: ``layer`` or ``unit`` out of range for
        the model.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 3], "sigmoid", rng=0)
    >>> rec = PercentileRecorder(layer=0, unit=2, mode="eval", x=np.ones((10, 4)))
    >>> rec(0, model)
    >>> rec.steps, rec.values.shape
    ([0], (1, 3))

    Introduced in notebook 02 (reused in notebooks 05 and 07).
    """

    def __init__(self, layer: int, unit: int, *, mode: str = "step", x=None,
                 q: Sequence[float] = (15, 50, 85), every: int = 1):
        self.layer = check_int(layer, "layer", minimum=0)
        self.unit = check_int(unit, "unit", minimum=0)
        self.every = check_int(every, "every", minimum=1)
        if mode not in RECORD_MODES:
            raise ValueError(f"mode must be one of {sorted(RECORD_MODES)}, got {mode!r}")
        self.mode = mode
        if mode == "step":
            if x is not None:
                raise ValueError("mode 'step' records the training batch of each step and takes "
                                 "no x; to record a fixed batch x choose mode='eval' or "
                                 "mode='batch_stats'")
            self.x = None
        else:
            if x is None:
                raise ValueError(f"mode {mode!r} runs a fixed batch through the model: pass x")
            self.x = as_float_array(x, "x")
            minimum = 2 if mode == "batch_stats" else 1    # batch statistics need two rows
            if self.x.ndim != 2 or len(self.x) < minimum:
                raise ValueError(f"x must have shape (N, D_in) with N ≥ {minimum} for mode "
                                 f"{mode!r}; got {self.x.shape}")
            check_finite(self.x, "x")    # so that NaN/inf in a record comes from the network
        q = tuple(float(v) for v in q)
        if not q or any(not 0 <= v <= 100 for v in q):
            raise ValueError(f"q must hold percentiles between 0 and 100, got {q}")
        self.q = q
        self.steps: list[int] = []
        self._rows: list[np.ndarray] = []

    @property
    def values(self) -> np.ndarray:
        return np.array(self._rows).reshape(len(self._rows), len(self.q))

    def _output(self, model) -> np.ndarray:
        """The recorded layer's output for this record, by ``mode``."""
        if self.mode == "step":
            if not model.outputs:
                raise RuntimeError("no forward pass recorded yet: mode 'step' reads the training "
                                   "forward of each step; to record before training, use "
                                   "mode='eval' or mode='batch_stats' with a fixed batch x")
            return np.asarray(model.outputs[self.layer])
        if self.mode == "batch_stats":
            batch_stats_forward(model, self.x)
            return np.asarray(model.outputs[self.layer])
        was_training = model.training
        model.eval()
        try:
            model.forward(self.x)
            return np.asarray(model.outputs[self.layer])
        finally:
            if was_training:
                model.train()

    def __call__(self, step: int, model) -> None:
        if step % self.every:
            return
        check_sequential(model)
        if self.layer >= len(model):
            raise ValueError(f"layer {self.layer} is out of range for a model of {len(model)} layers")
        try:
            # A diverging run may overflow on the fixed batch: recorded as NaN below, so
            # no overflow warning either.
            with np.errstate(over="ignore", invalid="ignore"):
                out = self._output(model)
        except NonFiniteError:       # a layer refused an overflowed activation
            out = None
        if out is not None and self.unit >= out.shape[1]:
            raise ValueError(f"unit {self.unit} is out of range: layer {self.layer} has "
                             f"{out.shape[1]} units")
        self.steps.append(int(step))
        if out is None or not np.isfinite(out[:, self.unit]).all():
            self._rows.append(np.full(len(self.q), np.nan))
        else:
            self._rows.append(np.percentile(out[:, self.unit], self.q))

    def __repr__(self):
        return (f"PercentileRecorder(layer={self.layer}, unit={self.unit}, mode={self.mode!r}, "
                f"q={self.q}, every={self.every}, records={len(self.steps)})")
