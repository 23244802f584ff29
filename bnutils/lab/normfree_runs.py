"""Experiments of notebook 09's normalizer-free section: WS + GroupNorm, and AGC.

``AGCModel`` wraps a model so that every ``backward`` leaves adaptively clipped
gradients behind (``bnutils.normfree.adaptive_grad_clip``), which lets the course's
ordinary ``bnutils.training.train`` run NFNet-style training unchanged.
``ws_gn_mlp`` builds notebook 09's MLP with Weight Standardization + GroupNorm;
``small_batch_runs`` and ``agc_runs`` are the two experiments, several random seeds each.

Introduced in notebook 09.
"""

from __future__ import annotations

import numpy as np

from ..layers import Layer, Linear, iter_layers
from ..models import make_mlp
from ..normfree import WSLinear, adaptive_grad_clip, unitwise_norm
from ..residual import make_resnet
from ..training import evaluate, train

__all__ = ["AGCModel", "agc_runs", "small_batch_runs", "ws_gn_mlp"]


def _check_data(data):
    if not isinstance(data, (tuple, list)) or len(data) != 4:
        raise TypeError("data must be the tuple (X_train, X_test, y_train, y_test) of "
                        f"bnutils.data.load_digits_split, got {type(data).__name__}")
    X_train, X_test, y_train, y_test = (np.asarray(a) for a in data)
    if X_train.ndim != 2 or X_test.ndim != 2 or X_train.shape[1] != X_test.shape[1]:
        raise ValueError(f"data's X_train and X_test must be (N, D) arrays with the same D; got "
                         f"shapes {X_train.shape} and {X_test.shape}")
    for name, y, X in (("y_train", y_train, X_train), ("y_test", y_test, X_test)):
        if y.ndim != 1 or len(y) != len(X) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(f"data's {name} must hold one class index >= 0 per sample of its X")
    return X_train, X_test, y_train, y_test


def _sequence(values, name: str, check) -> list:
    """``values`` as a non-empty list, each entry passed through ``check`` (naming ``name``)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"{name} must be a sequence (e.g. a list), got {values!r}")
    values = list(values)
    if not values:
        raise ValueError(f"{name} must not be empty")
    for v in values:
        if not check(v):
            raise ValueError(f"every entry of {name} must be {check.__doc__}; got {v!r}")
    return values


def _count(v):
    """an integer >= 1"""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1


def _seed(v):
    """an integer >= 0"""
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 0


def _rate(v):
    """a positive finite number"""
    return (isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)
            and np.isfinite(v) and v > 0)


def _rate_or_none(v):
    """None (no clipping) or a positive finite number"""
    return v is None or _rate(v)


class AGCModel(Layer):
    """``model`` with adaptive gradient clipping applied after every ``backward``.

    Forward is the model's; backward runs the model's backward, then replaces each
    parameter gradient ``d<name>`` of every layer (except those in ``exclude``) by its
    clipped version. Counts how many units were clipped, over all backward passes.

    Parameters
    ----------
    model : Layer
    clipping : float
        λ of ``adaptive_grad_clip``.
    eps : float, optional
    exclude : sequence of Layer, optional
        Layers left unclipped; Brock et al. (2021) leave the final classifier out.

    Attributes
    ----------
    clipped_units, total_units : int
        Units whose gradient was scaled down, and all units seen, summed over steps.

    Examples
    --------
    >>> net = make_resnet(1, "skipinit", width=4, in_features=3, num_classes=2, rng=0)
    >>> agc = AGCModel(net, clipping=0.01)
    >>> _ = agc.forward(np.ones((2, 3))); _ = agc.backward(np.ones((2, 2)))
    >>> agc.total_units > 0
    True
    """

    def __init__(self, model, clipping: float, eps: float = 1e-3, exclude=()):
        if not isinstance(model, Layer):
            raise TypeError(f"model must be a bnutils Layer, got {type(model).__name__}")
        self.model = model
        self.clipping = clipping
        self.eps = eps
        adaptive_grad_clip(np.ones(1), np.ones(1), clipping, eps)     # refuses a bad λ or eps now
        self.exclude = tuple(exclude)
        self.clipped_units = 0
        self.total_units = 0

    def children(self):
        return [self.model]

    def forward(self, x):
        return self.model.forward(x)

    def backward(self, dout):
        dx = self.model.backward(dout)
        for layer in iter_layers(self.model):
            if any(layer is skipped for skipped in self.exclude):
                continue
            for name in layer.param_names:
                param = getattr(layer, name)
                if param is None:
                    continue
                grad = getattr(layer, "d" + name)
                clipped = adaptive_grad_clip(grad, param, self.clipping, self.eps)
                changed = unitwise_norm(clipped) < unitwise_norm(grad)
                self.clipped_units += int(np.count_nonzero(changed))
                self.total_units += changed.size
                setattr(layer, "d" + name, clipped)
        return dx

    def __repr__(self):
        return f"AGCModel({self.model!r}, clipping={self.clipping:g})"


def ws_gn_mlp(sizes, num_groups: int = 8, rng=0):
    """``make_mlp(sizes, norm="gn")`` with every hidden ``Linear`` made a ``WSLinear``.

    The raw weights are those of ``make_mlp`` with the same ``rng``, so the network starts
    from the same weights as its GroupNorm-only twin (standardized in the forward). The
    output layer stays a plain ``Linear``.

    Introduced in notebook 09.
    """
    model = make_mlp(sizes, norm="gn", num_groups=num_groups, rng=rng)
    last = len(model.layers) - 1
    for i, layer in enumerate(model.layers):
        if isinstance(layer, Linear) and i != last:
            ws = WSLinear(layer.in_features, layer.out_features, bias=layer.b is not None, rng=0)
            ws.W[...] = layer.W
            if layer.b is not None:
                ws.b[...] = layer.b
            model.layers[i] = ws
    return model


def small_batch_runs(data, kinds, batch_sizes, seeds, *, hidden=(64, 64), lr=0.05, steps=200,
                     num_groups=8) -> dict:
    """Test accuracy of an MLP per normalization kind, batch size and seed.

    ``kinds``: among ``"bn"``, ``"gn"`` and ``"ws+gn"``. Within one seed every kind starts
    from the same raw weights and sees the same batches (as ``bnutils.experiments.sweep``
    with ``norm=...``, whose runs these reproduce for ``"bn"`` and ``"gn"``).

    Returns
    -------
    dict of str -> ndarray, shape (len(batch_sizes), len(seeds))

    Introduced in notebook 09.
    """
    X_train, X_test, y_train, y_test = _check_data(data)
    kinds = _sequence(kinds, "kinds", lambda k: True)
    batch_sizes = _sequence(batch_sizes, "batch_sizes", _count)
    seeds = _sequence(seeds, "seeds", _seed)
    sizes = [X_train.shape[1], *hidden, int(max(y_train.max(), y_test.max())) + 1]
    out = {}
    for kind in kinds:
        acc = np.zeros((len(batch_sizes), len(seeds)))
        for i, b in enumerate(batch_sizes):
            for j, s in enumerate(seeds):
                if kind == "ws+gn":
                    model = ws_gn_mlp(sizes, num_groups, rng=s)
                elif kind in ("bn", "gn"):
                    model = make_mlp(sizes, norm=kind, num_groups=num_groups, rng=s)
                else:
                    raise ValueError(f"kinds must be among 'bn', 'gn', 'ws+gn'; got {kind!r}")
                history = train(model, X_train, y_train, lr=lr, steps=steps, batch_size=b,
                                X_test=X_test, y_test=y_test, eval_every=steps, seed=s)
                acc[i, j] = 0.0 if history.diverged else history.final_accuracy
        out[kind] = acc
    return out


def agc_runs(data, lrs, seeds, clippings=(None,), *, depth=8, width=32, steps=150,
             batch_size=64, sgd_momentum=0.9) -> dict:
    """A normalizer-free residual network (SkipInit branches) trained per lr, λ and seed.

    ``clippings``: λ values, ``None`` for no clipping. The classifier (last layer) is
    never clipped. Within one seed every run starts from the same weights.

    Returns
    -------
    dict of (lr, clipping) -> dict with ``accuracy``, ``diverged`` and ``steps_run`` (the
    number of steps before training stopped; arrays over seeds) and ``clipped`` (the
    fraction of units clipped, over all steps and seeds)

    Introduced in notebook 09.
    """
    X_train, X_test, y_train, y_test = _check_data(data)
    lrs = _sequence(lrs, "lrs", _rate)
    seeds = _sequence(seeds, "seeds", _seed)
    clippings = _sequence(clippings, "clippings", _rate_or_none)
    num_classes = int(max(y_train.max(), y_test.max())) + 1
    out = {}
    for lr in lrs:
        for lam in clippings:
            acc, div = np.zeros(len(seeds)), np.zeros(len(seeds), dtype=bool)
            steps_run = np.zeros(len(seeds), dtype=int)
            clipped = total = 0
            for j, s in enumerate(seeds):
                net = make_resnet(depth, "skipinit", width=width, in_features=X_train.shape[1],
                                  num_classes=num_classes, rng=s)
                model = net if lam is None else AGCModel(net, lam, exclude=(net.layers[-1],))
                history = train(model, X_train, y_train, lr=lr, steps=steps, batch_size=batch_size,
                                sgd_momentum=sgd_momentum, seed=s)
                div[j] = history.diverged
                steps_run[j] = len(history.loss)
                acc[j] = 0.0 if history.diverged else evaluate(model, X_test, y_test)[0]
                if lam is not None:
                    clipped, total = clipped + model.clipped_units, total + model.total_units
            out[(lr, lam)] = {"accuracy": acc, "diverged": div, "steps_run": steps_run,
                              "clipped": clipped / total if total else 0.0}
    return out
