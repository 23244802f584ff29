"""Fine-tuning a BN network: frozen weights are not frozen statistics; FrozenBN; AdaBN.

* ``train_layers`` fine-tunes only some layers, the others' parameters untouched — what
  ``requires_grad=False`` (PyTorch) or an optimizer over the head's parameters does.
  It runs the model in whatever mode it is in, so a frozen backbone left in training
  mode still normalizes with batch statistics and still updates its running ones:
  the common fine-tuning bug, reproduced.
* ``FrozenBatchNorm`` is BN with fixed statistics and fixed γ, β, whatever the mode
  (like torchvision's / detectron2's ``FrozenBatchNorm2d``): ``model.train()`` cannot
  switch it back. ``freeze_batchnorm`` puts one in place of every ``BatchNorm``.
* ``adapt_batchnorm`` is AdaBN (Li et al. 2017): re-estimate every BN layer's statistics
  on the *target* domain, layer by layer, weights unchanged.

Introduced in notebook 09.
"""

from __future__ import annotations

import copy

import numpy as np

from .._validation import (
    as_data_matrix,
    as_float_array,
    check_finite,
    check_int,
    check_no_overflow,
    check_positive,
)
from ..batchnorm import BatchNorm, batchnorm_inference, batchnorm_inference_backward
from ..layers import Layer, Sequential, softmax_cross_entropy
from ..training import minibatches, one_blas_thread, sgd_step

__all__ = ["FrozenBatchNorm", "adapt_batchnorm", "freeze_batchnorm", "train_layers"]


class FrozenBatchNorm(Layer):
    """BN with fixed statistics and fixed γ, β: eval-mode BN in every mode.

    It has no parameters (``params()`` is empty, so SGD leaves γ and β alone) and no
    running statistics to update; ``train()`` only sets the flag. Its backward is that
    of eval-mode BN (an affine map), so layers *below* it can still be trained.

    Parameters
    ----------
    running_mean, running_var, gamma, beta : array_like, shape (C,)
    eps : float, optional

    Examples
    --------
    >>> bn = BatchNorm(2)
    >>> frozen = FrozenBatchNorm.from_batchnorm(bn).train()
    >>> frozen.forward(np.array([[1.0, 2.0]])).round(3).tolist()   # (x - 0) / sqrt(1 + eps)
    [[1.0, 2.0]]

    Introduced in notebook 09.
    """

    cache_names = ("_x",)

    def __init__(self, running_mean, running_var, gamma, beta, eps: float = 1e-5):
        arrays = [as_float_array(a, name).copy() for a, name in (
            (running_mean, "running_mean"), (running_var, "running_var"),
            (gamma, "gamma"), (beta, "beta"))]
        shapes = {a.shape for a in arrays}
        if len(shapes) != 1 or arrays[0].ndim != 1:
            raise ValueError(f"running_mean, running_var, gamma and beta must all have shape (C,); "
                             f"got {[a.shape for a in arrays]}")
        for a, name in zip(arrays, ("running_mean", "running_var", "gamma", "beta")):
            check_finite(a, name)
        self.running_mean, self.running_var, self.gamma, self.beta = arrays
        if np.any(self.running_var < 0):
            raise ValueError("running_var must be ≥ 0 (it is a variance)")
        self.num_features = arrays[0].shape[0]
        self.eps = check_positive(eps, "eps")
        self.training = True
        self._x = None

    @classmethod
    def from_batchnorm(cls, bn: BatchNorm) -> FrozenBatchNorm:
        """A frozen copy of ``bn``'s current statistics and γ, β."""
        if not isinstance(bn, BatchNorm):
            raise TypeError(f"bn must be a BatchNorm layer, got {type(bn).__name__}")
        return cls(bn.running_mean, bn.running_var, bn.gamma, bn.beta, bn.eps)

    def forward(self, x):
        self._x = None
        x = as_float_array(x, "x")
        out = batchnorm_inference(x, self.gamma, self.beta, self.running_mean, self.running_var,
                                  self.eps)
        self._x = x
        return out

    def backward(self, dout):
        self._need_forward("_x")
        dx, _, _ = batchnorm_inference_backward(dout, self._x, self.gamma, self.running_mean,
                                                self.running_var, self.eps)
        return dx

    def __repr__(self):
        return f"FrozenBatchNorm({self.num_features}, eps={self.eps:g})"


def freeze_batchnorm(model: Sequential) -> Sequential:
    """A deep copy of ``model`` with every ``BatchNorm`` replaced by a ``FrozenBatchNorm``.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> freeze_batchnorm(make_mlp([3, 4, 2], norm="bn"))[1]
    FrozenBatchNorm(4, eps=1e-05)

    Introduced in notebook 09.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils Sequential, got {type(model).__name__}")
    new = copy.deepcopy(model)
    new.layers = [FrozenBatchNorm.from_batchnorm(layer) if isinstance(layer, BatchNorm) else layer
                  for layer in new.layers]
    return new


@one_blas_thread
def train_layers(model: Sequential, trainable, X, y, *, lr: float, steps: int,
                 batch_size: int = 32, seed: int = 0) -> list:
    """SGD on the parameters of the layers at positions ``trainable`` only; the rest stay fixed.

    The whole model runs forward and backward (in the mode it is in: call
    ``model.train()`` or ``model.eval()`` first); only the listed layers are updated. Like
    fine-tuning with the backbone's weights frozen (``requires_grad=False``), this does
    **not** freeze running statistics: a BN layer in training mode keeps normalizing with
    batch statistics and updating its running ones.

    Parameters
    ----------
    model : Sequential
    trainable : sequence of int
        Positions of the layers to update (e.g. ``[len(model) - 1]``, the head).
    X : ndarray, shape (N, D)
    y : ndarray of int, shape (N,)
    lr : float
    steps : int
    batch_size : int, optional
    seed : int, optional
        Seeds the shuffling.

    Returns
    -------
    list of float
        The training loss of each step.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> net = make_mlp([3, 4, 2], norm="bn")
    >>> W0 = net[0].W.copy()
    >>> X, y = np.random.default_rng(0).normal(size=(16, 3)), np.arange(16) % 2
    >>> losses = train_layers(net, [3], X, y, lr=0.1, steps=4, batch_size=8)
    >>> bool(np.array_equal(net[0].W, W0)), bool(np.any(net[1].running_mean != 0))
    (True, True)

    Introduced in notebook 09.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils Sequential, got {type(model).__name__}")
    trainable = [check_int(i, "trainable layer", minimum=0) for i in trainable]
    if not trainable or max(trainable) >= len(model):
        raise ValueError(f"trainable must list layer positions in 0..{len(model) - 1}, got "
                         f"{trainable}")
    steps = check_int(steps, "steps")
    X = as_float_array(X, "X")
    if X.ndim != 2 or len(X) == 0:
        raise ValueError(f"X must have shape (N, D) with N ≥ 1; got {X.shape}")
    check_finite(X, "X")
    y = np.asarray(y)
    if y.shape != (len(X),):
        raise ValueError(f"y must have shape ({len(X)},), one label per row of X; got {y.shape}")
    rng = np.random.default_rng(seed)
    losses: list = []
    while len(losses) < steps:
        for idx in minibatches(len(X), batch_size, rng):
            loss, dlogits = softmax_cross_entropy(model.forward(X[idx]), y[idx])
            model.backward(dlogits)
            for i in trainable:
                sgd_step(model[i], lr)
            losses.append(float(loss))
            if len(losses) == steps:
                break
    return losses


def adapt_batchnorm(model: Sequential, X_target) -> Sequential:
    """AdaBN: a copy of ``model`` whose BN statistics are those of ``X_target``, layer by layer.

    ``X_target`` runs through the copy in eval mode; on reaching a ``BatchNorm`` layer,
    its running mean and (unbiased) running variance are replaced by the mean and
    variance of the activations arriving there — which already come from the *adapted*
    layers before it — and only then does the pass continue. Weights, γ and β are
    unchanged. (Li et al. 2017 use all target data at once, as here.)

    Parameters
    ----------
    model : Sequential
        Not modified.
    X_target : ndarray, shape (N, D_in), N ≥ 2
        Unlabelled inputs from the target domain.

    Returns
    -------
    Sequential
        The adapted copy, in eval mode.

    Raises
    ------
    TypeError
        ``model`` is not a Sequential, or ``X_target`` is not numeric.
    ValueError
        ``X_target`` is not an (N, D_in) array with N ≥ 2 and D_in ≥ 1, holds NaN/inf, or
        the model has no BatchNorm layer.

    Examples
    --------
    >>> net = Sequential(BatchNorm(1))
    >>> adapted = adapt_batchnorm(net, np.array([[1.0], [3.0]]))
    >>> adapted[0].running_mean.tolist(), adapted[0].running_var.tolist()
    ([2.0], [2.0])

    Introduced in notebook 09.
    """
    if not isinstance(model, Sequential):
        raise TypeError(f"model must be a bnutils Sequential, got {type(model).__name__}")
    x = as_data_matrix(X_target, "X_target", min_rows=2)
    new = copy.deepcopy(model).eval()
    found = False
    for i, layer in enumerate(new.layers):
        if isinstance(layer, BatchNorm):
            with np.errstate(over="ignore", invalid="ignore"):    # checked just below
                mean, var = x.mean(axis=0), x.var(axis=0, ddof=1)
            # A variance beyond the dtype would be stored as inf and make the layer's
            # output silently beta.
            check_no_overflow(var, f"the variance of the activations arriving at layer {i} "
                                   f"({type(layer).__name__}) overflows {var.dtype.name}; "
                                   f"divide X_target by a constant first", X_target=X_target)
            layer.running_mean, layer.running_var = mean, var
            found = True
        with np.errstate(over="ignore", invalid="ignore"):        # checked just below
            x = layer.forward(x)
        check_no_overflow(x, f"the output of layer {i} ({type(layer).__name__}) overflows "
                             f"{x.dtype.name}; divide X_target by a constant first",
                          X_target=X_target)
    if not found:
        raise ValueError("model has no BatchNorm layer to adapt")
    return new
