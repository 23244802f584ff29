"""Comparing normalizations in one network: swap a variant in for BN, train models alike.

``swap_norm`` puts a BN variant (or another normalization) where ``make_mlp`` put
BatchNorm; ``train_models`` trains several models on the same batches in the same order,
so that they differ only in their layers (notebook 07).

Introduced in notebook 07.
"""

from __future__ import annotations

from collections.abc import Callable

from ..batchnorm import BatchNorm
from ..layers import Layer, Sequential
from ..training import one_blas_thread, train
from .layer_stats import check_sequential

__all__ = [
    "swap_norm",
    "train_models",
]


# ----------------------------------------------------------------------------- BN variants in place of BN


def swap_norm(model: Sequential, factory: Callable[[int], Layer]) -> Sequential:
    """Replace every ``BatchNorm`` layer of ``model`` by ``factory(num_features)``, in place.

    Build the network with ``make_mlp(..., norm="bn")`` and swap in a variant
    (``NoisyBatchNorm``, ``ShardedBatchNorm``, ``BatchRenorm``, …): the weights stay
    exactly those of the BN network with the same seed.

    Parameters
    ----------
    model : Sequential
    factory : callable
        ``factory(num_features) -> Layer``.

    Returns
    -------
    Sequential
        The same ``model`` (for chaining).

    Examples
    --------
    >>> from bnutils.sharded_bn import ShardedBatchNorm
    >>> from bnutils.models import make_mlp
    >>> net = swap_norm(make_mlp([4, 8, 2], norm="bn"), lambda d: ShardedBatchNorm(d, 2))
    >>> net[1]
    ShardedBatchNorm(8, num_devices=2, sync=False)

    Introduced in notebook 07.
    """
    check_sequential(model)
    if not callable(factory):
        raise TypeError(f"factory must be callable as factory(num_features), got {factory!r}")
    found = False
    for i, layer in enumerate(model.layers):
        if isinstance(layer, BatchNorm):
            model.layers[i] = factory(layer.num_features)
            found = True
    if not found:
        raise ValueError("model has no BatchNorm layer to replace; build it with norm='bn'")
    return model


@one_blas_thread
def train_models(models: dict, X, y, X_test=None, y_test=None, *, callbacks: dict | None = None,
                 **train_kwargs) -> dict:
    """Train each model of ``models`` with ``bnutils.training.train`` and the same settings.

    Parameters
    ----------
    models : dict of str -> Layer
        Label -> freshly built model (trained in place).
    X, y : training data
    X_test, y_test : ndarray, optional
        Evaluated every ``eval_every`` steps (see ``train``).
    callbacks : dict of str -> callable, optional
        A ``train`` callback for some of the labels.
    **train_kwargs
        ``lr``, ``steps``, ``batch_size``, ``eval_every``, ``seed``, … passed to ``train``.

    Returns
    -------
    dict of str -> TrainingHistory
        By the same labels, in the same order.

    Examples
    --------
    >>> from bnutils.models import make_mlp
    >>> X, y = np.random.default_rng(0).normal(size=(40, 3)), np.arange(40) % 2
    >>> runs = train_models({"plain": make_mlp([3, 8, 2]), "BN": make_mlp([3, 8, 2], norm="bn")},
    ...                     X, y, X, y, lr=0.1, steps=10, batch_size=10, eval_every=5)
    >>> list(runs), runs["BN"].eval_steps
    (['plain', 'BN'], [5, 10])

    Introduced in notebook 07.
    """
    if not isinstance(models, dict) or not models:
        raise TypeError("models must be a non-empty dict mapping a label to a model")
    callbacks = callbacks or {}
    unknown = set(callbacks) - set(models)
    if unknown:
        raise ValueError(f"callbacks for labels that are not in models: {sorted(unknown)}")
    return {label: train(model, X, y, X_test=X_test, y_test=y_test,
                         callback=callbacks.get(label), **train_kwargs)
            for label, model in models.items()}
