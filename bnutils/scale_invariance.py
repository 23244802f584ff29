"""Scale invariance under BN, the effective learning rate, and what weight decay does to it.

A ``Linear`` layer followed by BN computes the same function for ``W`` and ``a·W``
(``a > 0``, per output unit even; notebook 04). Two consequences, both measured in
notebook 07:

* the gradient scales inversely, ``∇L(aW) = ∇L(W) / a``, and is orthogonal to ``W``;
  so an SGD step of learning rate ``η`` turns the *direction* of ``W`` as a step of
  ``η / ‖W‖²`` would turn a unit-length ``W`` — the **effective learning rate**;
* without weight decay ``‖W‖`` only grows (each step adds an orthogonal vector), so the
  effective rate falls during training; L2 weight decay shrinks ``W`` and so keeps the
  effective rate up: under BN it controls the learning rate, not the function
  (van Laarhoven 2017; Zhang et al. 2019).

Introduced in notebook 07.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    NonFiniteError,
    as_float_array,
    check_finite,
    check_int,
    check_positive,
)
from .batchnorm import BatchNorm
from .layers import Linear, Sequential

__all__ = ["WeightNormRecorder", "WeightDecay", "effective_learning_rates",
           "scale_invariant_layers"]


def _check_sequential(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils Sequential, got {type(model).__name__}")


def scale_invariant_layers(model) -> list[int]:
    """Positions of the ``Linear`` layers whose output goes straight into a normalization layer.

    Those layers' outputs ignore the scale of their weights (any layer with running
    statistics counts: BatchNorm and its variants, and Ghost BN). The output layer, with
    no BN after it, is not among them.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> scale_invariant_layers(make_mlp([4, 8, 8, 3], norm="bn"))
    [0, 3]

    Introduced in notebook 07.
    """
    _check_sequential(model)
    return [i for i in range(len(model) - 1)
            if isinstance(model[i], Linear) and isinstance(model[i + 1], BatchNorm)]


def effective_learning_rates(W, lr: float) -> np.ndarray:
    """Per-unit effective learning rate ``lr / ‖w_j‖²`` of a scale-invariant layer.

    Parameters
    ----------
    W : array_like, shape (D_in, D_out)
        The weights of a ``Linear`` layer followed by BN; column ``j`` feeds unit ``j``,
        whose BN output ignores the length of that column.
    lr : float > 0

    Returns
    -------
    ndarray, shape (D_out,)

    Examples
    --------
    >>> effective_learning_rates(np.array([[3.0, 0.5], [4.0, 0.0]]), lr=0.1)
    array([0.004, 0.4  ])

    Introduced in notebook 07.
    """
    W = as_float_array(W, "W")
    if W.ndim != 2 or W.size == 0:
        raise ValueError(f"W must have shape (D_in, D_out) with D_in, D_out ≥ 1, got {W.shape}")
    check_finite(W, "W")
    lr = check_positive(lr, "lr")
    zeros = np.flatnonzero(~np.any(W, axis=0))
    if zeros.size:
        raise ValueError(f"every column of W needs a non-zero norm (lr / ‖w‖² would be "
                         f"infinite); columns {zeros.tolist()} are all zeros")
    with np.errstate(over="ignore", under="ignore"):          # checked just below
        sumsq = np.sum(W**2, axis=0)
    if np.isfinite(sumsq).all() and sumsq.min() >= np.finfo(sumsq.dtype).tiny:
        return lr / sumsq
    # The squares overflowed (|w| above ~1e154 in float64) or lost digits below the smallest
    # normal number: compute on each column divided by a power of two 2**k (exact), then
    # lr / ‖w‖² = lr / ‖w / 2**k‖² · 2**(-2k).
    _, k = np.frexp(np.max(np.abs(W), axis=0))
    scaled = np.ldexp(W, -k)
    with np.errstate(over="ignore", under="ignore"):          # checked just below
        rates = np.ldexp(lr / np.sum(scaled**2, axis=0), -2 * k)
    if not np.isfinite(rates).all():
        raise NonFiniteError(
            f"W is too small (smallest column norm about "
            f"{float(np.min(np.ldexp(np.sqrt(np.sum(scaled**2, axis=0)), k))):.3g}): "
            f"lr / ‖w‖² overflows {rates.dtype.name}; multiply W by a constant c first "
            f"(the rates scale with 1/c²)")
    return rates


class WeightNormRecorder:
    """A ``train`` callback recording the Frobenius norm ‖W‖ of chosen Linear layers.

    Parameters
    ----------
    layers : sequence of int
        Positions in the Sequential (e.g. ``scale_invariant_layers(model)``).
    every : int ≥ 1, optional
        Record at steps that are multiples of ``every``; call ``rec(0, model)`` before
        training for the starting point.

    Attributes
    ----------
    steps : list of int
    norms : ndarray, shape (len(steps), len(layers))

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 3], norm="bn", init=1.0)
    >>> rec = WeightNormRecorder([0])
    >>> rec(0, model)
    >>> rec.norms.shape
    (1, 1)

    Introduced in notebook 07.
    """

    def __init__(self, layers, every: int = 1):
        if isinstance(layers, (str, bytes)) or not hasattr(layers, "__iter__"):
            raise TypeError(f"layers must be a sequence of layer positions, e.g. [0, 3]; got "
                            f"{layers!r}")
        self.layers = [check_int(i, "layer", minimum=0) for i in layers]
        if not self.layers:
            raise ValueError("layers must name at least one Linear layer")
        self.every = check_int(every, "every")
        self.steps: list[int] = []
        self._rows: list[list[float]] = []

    @property
    def norms(self) -> np.ndarray:
        return np.array(self._rows).reshape(len(self._rows), len(self.layers))

    def __call__(self, step: int, model) -> None:
        if step % self.every:
            return
        _check_sequential(model)
        row = []
        for i in self.layers:
            if not isinstance(model[i], Linear):
                raise TypeError(f"layer {i} is a {type(model[i]).__name__}, not a Linear layer")
            row.append(float(np.linalg.norm(model[i].W)))
        self.steps.append(int(step))
        self._rows.append(row)


class WeightDecay:
    """A ``train`` callback shrinking weight matrices after each SGD step: ``W ← (1 − ηλ) W``.

    This is "decoupled" weight decay in SGD form: L2 regularization ``λ/2 ‖W‖²`` adds
    ``λW`` to the gradient, i.e. ``W ← W − η(g + λW)``; shrinking after the step gives
    ``(1 − ηλ)(W − ηg)``, which differs only by ``η²λ g``, a fraction ``ηλ`` of the step.
    Only the ``W`` of ``Linear`` layers decays (not biases, γ or β, as is common).

    Parameters
    ----------
    lr : float > 0
        The learning rate of the training run.
    weight_decay : float ≥ 0
        λ.
    layers : sequence of int, optional
        Positions of the Linear layers to decay; default: every Linear layer.

    Examples
    --------
    >>> from bnutils.layers import Linear
    >>> net = Sequential(Linear(2, 2, init=1.0, rng=0))
    >>> W0 = net[0].W.copy()
    >>> WeightDecay(lr=0.1, weight_decay=0.5)(1, net)
    >>> bool(np.allclose(net[0].W, 0.95 * W0))
    True

    Introduced in notebook 07.
    """

    def __init__(self, lr: float, weight_decay: float, layers=None):
        self.lr = check_positive(lr, "lr")
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, (int, float, np.floating)) \
                or not np.isfinite(weight_decay) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a finite number ≥ 0, got {weight_decay!r}")
        if self.lr * weight_decay >= 1:
            raise ValueError(f"lr * weight_decay must be < 1 (else W flips sign), got "
                             f"{self.lr * weight_decay:g}")
        self.weight_decay = float(weight_decay)
        self.layers = None if layers is None else [check_int(i, "layer", minimum=0) for i in layers]

    def __call__(self, step: int, model) -> None:
        _check_sequential(model)
        positions = self.layers if self.layers is not None else [
            i for i in range(len(model)) if isinstance(model[i], Linear)]
        factor = 1.0 - self.lr * self.weight_decay
        for i in positions:
            model[i].W *= factor
