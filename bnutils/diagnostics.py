"""Looking inside a network: per-layer statistics, saturation, perturbations, percentiles.

Everything here works on a ``bnutils.layers.Sequential`` (e.g. from
``bnutils.models.make_mlp``) and never changes its parameters::

    idx = activation_indices(model)            # where the ReLU/Sigmoid/Tanh layers sit
    stats = layer_statistics(model, x, y)      # one LayerStats per activation layer
    print(format_layer_table(stats))
    change = perturbation_propagation(model, x, rel_size=0.01)   # (len(model),)
    rec = PercentileRecorder(layer=idx[-1] - 1, unit=0, mode="eval", x=x_probe)
    train(model, X, y, ..., callback=rec)      # rec.steps, rec.values: (T, 3)

``PercentileRecorder`` is the one training-time recorder of the course: notebook 02
records a fixed batch in eval mode, notebook 05 (``experiments.figure1_run``) a fixed
batch with its own batch statistics, notebook 07 each step's training batch.

Introduced in notebook 02 (and reused in notebooks 05 and 07).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._validation import (
    NonFiniteError,
    as_float_array,
    as_generator,
    check_finite,
    check_int,
    check_positive,
)
from .inference import batch_stats_forward
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh, softmax_cross_entropy
from .plots import COLORS

__all__ = [
    "RECORD_MODES",
    "SATURATION",
    "LayerStats",
    "PercentileRecorder",
    "activation_indices",
    "format_layer_table",
    "layer_statistics",
    "perturbation_propagation",
    "plot_activation_histograms",
    "saturation_fraction",
]

_ACTIVATIONS = {Tanh: "tanh", Sigmoid: "sigmoid", ReLU: "relu"}
_DIRECTION_STREAM = 20150211  # keeps perturbation directions apart from weight-init streams

#: When a unit counts as saturated, per activation: where its derivative is (almost) 0.
#: tanh: |a| > 0.99 (tanh' = 1 - a² < 0.02, 2 % of its maximum 1);
#: sigmoid: a < 0.01 or a > 0.99 (σ' = a(1 - a) < 0.0099, 4 % of its maximum 0.25);
#: relu: a = 0 (an inactive unit passes no gradient).
SATURATION = {
    "tanh": "|a| > 0.99",
    "sigmoid": "a < 0.01 or a > 0.99",
    "relu": "a = 0",
}
#: The values each activation can output (``saturation_fraction`` refuses anything else).
_OUTPUT_RANGE = {"tanh": (-1.0, 1.0), "sigmoid": (0.0, 1.0), "relu": (0.0, np.inf)}


def _check_sequential(model):
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils.layers.Sequential (e.g. from make_mlp), "
                        f"got {type(model).__name__}")


def _activation_name(layer) -> str | None:
    for cls, name in _ACTIVATIONS.items():
        if isinstance(layer, cls):
            return name
    return None


def activation_indices(model) -> list[int]:
    """Positions in ``model`` (a Sequential) of its ReLU, Sigmoid and Tanh layers.

    The input of the activation at position ``i`` is ``model.outputs[i - 1]``.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> activation_indices(make_mlp([4, 8, 8, 3], "tanh"))
    [1, 3]

    Introduced in notebook 02.
    """
    _check_sequential(model)
    return [i for i, layer in enumerate(model.layers) if _activation_name(layer) is not None]


def saturation_fraction(out, activation: str = "tanh") -> float:
    """Fraction of the entries of an activation's output that sit where it is flat.

    Parameters
    ----------
    out : array_like, any shape
        Output of the activation (not its input).
    activation : {"tanh", "sigmoid", "relu"}, optional
        Decides the rule, see ``SATURATION``: tanh ``|a| > 0.99``; sigmoid
        ``a < 0.01 or a > 0.99``; relu ``a = 0``.

    Returns
    -------
    float in [0, 1]

    Raises
    ------
    TypeError
        ``out`` is not numeric.
    ValueError
        ``activation`` is unknown; ``out`` is empty; ``out`` holds NaN (a NaN entry is
        neither saturated nor unsaturated, and counting it as either would be a silent
        wrong answer); or ``out`` holds values that ``activation`` cannot output (outside
        [-1, 1] for tanh, outside [0, 1] for sigmoid, below 0 for relu; so ±inf is refused
        for tanh and sigmoid, while +inf is a possible relu output, not saturated). The
        last catches the activation's *input* passed by mistake.

    Notes
    -----
    Within the course the NaN case does not arise from a diverged network:
    ``layer_statistics`` computes the loss first, and ``softmax_cross_entropy`` refuses
    non-finite logits; ``bnutils.training.train`` stops at the first non-finite loss,
    before any callback sees the model.

    Examples
    --------
    >>> saturation_fraction(np.tanh([0.0, 1.0, 3.0, -4.0]))
    0.5
    >>> saturation_fraction([0.5, 1.5], "sigmoid")
    Traceback (most recent call last):
    ...
    ValueError: out is not a sigmoid output: sigmoid's values lie in [0, 1], got values from 0.5 to 1.5

    Introduced in notebook 02.
    """
    if activation not in SATURATION:
        raise ValueError(f"activation must be one of {sorted(SATURATION)}, got {activation!r}")
    a = as_float_array(out, "out")
    if a.size == 0:
        raise ValueError("out is empty")
    nan = np.isnan(a)
    if nan.any():
        raise NonFiniteError(f"out contains {int(nan.sum())} NaN value(s): a NaN is neither "
                             f"saturated nor unsaturated")
    low, high = _OUTPUT_RANGE[activation]
    if a.min() < low or a.max() > high:
        raise ValueError(f"out is not a {activation} output: {activation}'s values lie in "
                         f"[{low:g}, {high:g}], got values from {a.min():g} to {a.max():g}")
    if activation == "tanh":
        flat = np.abs(a) > 0.99
    elif activation == "sigmoid":
        flat = (a < 0.01) | (a > 0.99)
    else:
        flat = a == 0
    return float(np.mean(flat))


@dataclass(frozen=True)
class LayerStats:
    """Statistics of one activation layer for one batch (see ``layer_statistics``).

    Attributes
    ----------
    index : int
        Position of the activation layer in the Sequential.
    depth : int
        1 for the first hidden layer, 2 for the second, ...
    activation : str
        "tanh", "sigmoid" or "relu".
    mean, std : float
        Of the activation's output over the batch and the units.
    saturation : float
        ``saturation_fraction`` of the output.
    grad_std : float
        Standard deviation of ∂loss/∂(output of this layer): the gradient flowing back
        into this layer.
    weight_grad_norm, weight_norm : float
        Frobenius norms of ∂loss/∂W and of W for the Linear layer that feeds this
        activation.
    out : ndarray, shape (N, width)
        The output itself (for histograms).
    """

    index: int
    depth: int
    activation: str
    mean: float
    std: float
    saturation: float
    grad_std: float
    weight_grad_norm: float
    weight_norm: float
    out: np.ndarray = field(repr=False, compare=False)


def layer_statistics(model, x, y, loss_fn=softmax_cross_entropy) -> list[LayerStats]:
    """Forward and backward one batch; describe every activation layer.

    The model runs in its current mode (in training mode a BatchNorm layer also updates
    its running statistics, as one training forward would). Parameters are not changed;
    the layers' stored gradients (``dW`` …) are overwritten.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D)
    y : ndarray
        Targets for ``loss_fn`` (class labels for the default softmax cross-entropy).
    loss_fn : callable, optional
        ``loss, dlogits = loss_fn(logits, y)``.

    Returns
    -------
    list of LayerStats
        One per activation layer, in order.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 8, 3], "tanh", init="lecun", rng=0)
    >>> x = np.random.default_rng(0).standard_normal((16, 4))
    >>> stats = layer_statistics(model, x, np.zeros(16, dtype=int))
    >>> [s.depth for s in stats]
    [1, 2]

    Introduced in notebook 02.
    """
    _check_sequential(model)
    logits = model.forward(x)
    _, dout = loss_fn(logits, y)
    douts = [None] * len(model)
    for i in range(len(model) - 1, -1, -1):
        douts[i] = dout                    # ∂loss/∂(output of layer i)
        dout = model.layers[i].backward(dout)
    stats = []
    last_linear = None
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear):
            last_linear = layer
            continue
        name = _activation_name(layer)
        if name is None:
            continue
        out = np.asarray(model.outputs[i])
        stats.append(LayerStats(
            index=i, depth=len(stats) + 1, activation=name,
            mean=float(out.mean()), std=float(out.std()),
            saturation=saturation_fraction(out, name),
            grad_std=float(np.std(douts[i])),
            weight_grad_norm=float("nan") if last_linear is None else float(np.linalg.norm(last_linear.dW)),
            weight_norm=float("nan") if last_linear is None else float(np.linalg.norm(last_linear.W)),
            out=out,
        ))
    return stats


def format_layer_table(stats: Sequence[LayerStats]) -> str:
    """A fixed-width table of ``layer_statistics`` results, deterministic to print.

    Raises
    ------
    TypeError
        ``stats`` is not a sequence of ``LayerStats``.

    Examples
    --------
    >>> print(format_layer_table([]).splitlines()[0])
    layer    mean    std  saturated  grad std (∂L/∂a)  |∂L/∂W|

    Introduced in notebook 02.
    """
    if isinstance(stats, (str, bytes)) or not hasattr(stats, "__iter__"):
        raise TypeError(f"stats must be the list of LayerStats returned by layer_statistics, "
                        f"got {type(stats).__name__}")
    stats = list(stats)
    for i, s in enumerate(stats):
        if not isinstance(s, LayerStats):
            raise TypeError(f"stats[{i}] must be a LayerStats (from layer_statistics), got "
                            f"{type(s).__name__}")
    lines = ["layer    mean    std  saturated  grad std (∂L/∂a)  |∂L/∂W|"]
    for s in stats:
        lines.append(f"{s.depth:5d}  {round(s.mean, 3) + 0.0:6.3f}  {s.std:5.3f}  "
                     f"{100 * s.saturation:7.1f} %  {s.grad_std:16.2e}  {s.weight_grad_norm:7.2e}")
    return "\n".join(lines)


def perturbation_propagation(model, x, rel_size: float = 0.01, layers=None,
                             rng=0) -> np.ndarray:
    """Relative change of every layer's output when some weights change by ``rel_size``.

    Each chosen Linear layer's ``W`` is replaced by ``W + ΔW``, with ``ΔW`` a random
    direction of Frobenius norm ``rel_size · ‖W‖`` (a 1 % change for 0.01); the batch
    ``x`` goes through the network before and after, and the function returns, for each
    layer ``j``, ``‖out'_j - out_j‖ / ‖out_j‖`` (Frobenius norms over the batch).
    The weights are restored afterwards.

    Parameters
    ----------
    model : Sequential
    x : ndarray, shape (N, D)
    rel_size : float, optional
    layers : sequence of int, optional
        Positions (in ``model``) of the Linear layers to perturb; by default the first
        Linear layer only.
    rng : int or numpy.random.Generator, optional
        Seeds the directions. An integer seed gives a stream different from
        ``default_rng(seed)``, so the direction is never the model's own initial weights
        even when the model was built with the same seed.

    Returns
    -------
    ndarray, shape (len(model),)
        Select the activations with ``activation_indices(model)``.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> model = make_mlp([4, 8, 3], "tanh", rng=0)
    >>> change = perturbation_propagation(model, np.ones((5, 4)), rel_size=0.01)
    >>> change.shape
    (3,)

    Introduced in notebook 02.
    """
    _check_sequential(model)
    rel_size = check_positive(rel_size, "rel_size")
    if layers is None:
        linear = [i for i, layer in enumerate(model.layers) if isinstance(layer, Linear)]
        if not linear:
            raise ValueError("model has no Linear layer to perturb")
        layers = linear[:1]
    for i in layers:
        if not (isinstance(i, (int, np.integer)) and 0 <= i < len(model)
                and isinstance(model.layers[i], Linear)):
            raise ValueError(f"layers must hold positions of Linear layers in the model; "
                             f"{i!r} is not one")
    as_generator(rng)       # only to reject a bad rng with a message naming it
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        # Not default_rng(rng): a model built with make_mlp(..., rng=rng) drew its weights
        # from that very stream, and the "random" direction would then be W itself.
        rng = np.random.default_rng([int(rng), _DIRECTION_STREAM])
    rng = np.random.default_rng(rng)
    model.forward(x)
    before = [np.array(o, copy=True) for o in model.outputs]
    saved = {i: model.layers[i].W for i in layers}
    try:
        for i in layers:
            W = saved[i]
            direction = rng.standard_normal(W.shape)
            model.layers[i].W = W + rel_size * np.linalg.norm(W) * direction / np.linalg.norm(direction)
        model.forward(x)
        after = model.outputs
        change = np.array([np.linalg.norm(a - b) / max(np.linalg.norm(b), 1e-300)
                           for a, b in zip(after, before)])
    finally:
        for i, W in saved.items():
            model.layers[i].W = W
    return change


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
        _check_sequential(model)
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


def plot_activation_histograms(rows: dict, bins: int = 40, value_range=None, color=None):
    """One row of histograms per network, one panel per activation layer, with saturation.

    Parameters
    ----------
    rows : dict of str -> list of LayerStats
        Row label (e.g. the initialization) -> ``layer_statistics`` of that network.
    bins : int, optional
    value_range : (float, float), optional
        Histogram range; (-1, 1) for tanh and (0, 1) for sigmoid by default.
    color : colour, optional

    Returns
    -------
    matplotlib Figure

    Introduced in notebook 02.
    """
    import matplotlib.pyplot as plt

    if not rows:
        raise ValueError("rows is empty")
    n_rows = len(rows)
    n_cols = max(len(s) for s in rows.values())
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(1.7 * n_cols + 0.8, 1.6 * n_rows + 0.6),
                             sharex=True, squeeze=False)
    for r, (label, stats) in enumerate(rows.items()):
        for c in range(n_cols):
            ax = axes[r, c]
            if c >= len(stats):
                ax.set_visible(False)
                continue
            s = stats[c]
            lo_hi = value_range or {"tanh": (-1, 1), "sigmoid": (0, 1)}.get(s.activation)
            ax.hist(s.out.ravel(), bins=bins, range=lo_hi, color=color or COLORS["bn"],
                    density=True)
            ax.set_yticks([])
            ax.grid(False)
            ax.set_title(f"layer {s.depth}: {100 * s.saturation:.0f} % sat.", fontsize=8)
            if c == 0:
                ax.set_ylabel(label, fontsize=9)
            if r == n_rows - 1:
                ax.set_xlabel("activation", fontsize=8)
            ax.tick_params(labelsize=7)
    return fig
