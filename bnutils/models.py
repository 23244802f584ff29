"""Model builders: ``make_mlp``, the ``Linear → [norm] → activation`` networks of the course.

The layers themselves live beside their functions (``Linear`` and the activations in
``bnutils.layers``, ``BatchNorm`` in ``bnutils.batchnorm``, ``LayerNorm`` and ``GroupNorm``
in ``bnutils.normalization``); this module only assembles them.

Introduced in notebook 05.
"""

from __future__ import annotations

import numpy as np

from ._validation import as_generator, check_int
from .batchnorm import BatchNorm
from .layers import Linear, ReLU, Sequential, Sigmoid, Tanh
from .normalization import GroupNorm, LayerNorm

__all__ = ["ACTIVATIONS", "make_mlp"]

#: Activation name -> layer class, for ``make_mlp``.
ACTIVATIONS = {"relu": ReLU, "sigmoid": Sigmoid, "tanh": Tanh}


def make_mlp(sizes, activation: str = "relu", norm: str | None = None,
             norm_position: str = "before", bias: bool = True, init="he", num_groups: int = 4,
             momentum: float = 0.1, eps: float = 1e-5, rng=0, dtype=np.float64) -> Sequential:
    """Build ``Linear → [norm] → activation`` blocks, then a final ``Linear``.

    Parameters
    ----------
    sizes : sequence of int
        ``[D_in, hidden_1, …, hidden_k, K]``; at least two entries.
    activation : {"relu", "sigmoid", "tanh"}, optional
    norm : {None, "bn", "ln", "gn"}, optional
        Normalization after each hidden Linear layer (not after the output layer).
    norm_position : {"before", "after"}, optional
        Normalize the pre-activation (``Linear → norm → act``, as in the BN paper) or the
        activation (``Linear → act → norm``).
    bias : bool, optional
        Bias in the hidden Linear layers (redundant right before BN: β absorbs it).
        The output layer always has a bias.
    init : {"he", "lecun", "glorot"} or float, optional
        Weight initialization of every Linear layer (see ``Linear``).
    num_groups : int, optional
        For ``norm="gn"``.
    momentum, eps : float, optional
        For ``norm="bn"`` (and ``eps`` for every norm). ``momentum`` is BN's weight of
        each new batch in its running statistics, not the heavy-ball momentum of SGD.
    rng : int or numpy.random.Generator, optional
        Seeds the weights; the same seed gives the same weights with or without norm.

    Returns
    -------
    Sequential

    Examples
    --------
    >>> make_mlp([2, 8, 3], norm="bn")
    Sequential(
      Linear(2, 8, bias=True),
      BatchNorm(8, eps=1e-05, momentum=0.1),
      ReLU(),
      Linear(8, 3, bias=True)
    )

    Introduced in notebook 02.
    """
    sizes = [check_int(s, "every entry of sizes") for s in sizes]
    if len(sizes) < 2:
        raise ValueError(f"sizes needs at least [D_in, K], got {sizes}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}, got {activation!r}")
    norms = {None: None, "bn": BatchNorm, "ln": LayerNorm, "gn": GroupNorm}
    if norm not in norms:
        raise ValueError(f"norm must be None, 'bn', 'ln' or 'gn', got {norm!r}")
    if norm_position not in ("before", "after"):
        raise ValueError(f"norm_position must be 'before' or 'after', got {norm_position!r}")
    rng = as_generator(rng)

    def make_norm(width):
        if norm == "bn":
            return BatchNorm(width, eps=eps, momentum=momentum, dtype=dtype)
        if norm == "ln":
            return LayerNorm(width, eps=eps, dtype=dtype)
        return GroupNorm(width, num_groups=num_groups, eps=eps, dtype=dtype)

    layers = []
    for d_in, d_out in zip(sizes[:-2], sizes[1:-1]):
        layers.append(Linear(d_in, d_out, bias=bias, init=init, rng=rng, dtype=dtype))
        act = ACTIVATIONS[activation]()
        if norm is None:
            layers.append(act)
        elif norm_position == "before":
            layers += [make_norm(d_out), act]
        else:
            layers += [act, make_norm(d_out)]
    layers.append(Linear(sizes[-2], sizes[-1], bias=True, init=init, rng=rng, dtype=dtype))
    return Sequential(*layers)
