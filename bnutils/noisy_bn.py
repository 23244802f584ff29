"""Noisy Batch Normalization (Santurkar et al. 2018): BN followed by random shifts and
scales that change at every step, the experiment that separates BN's benefit from the
stability of its output distribution. ``NoisyBatchNorm`` (a ``BatchNorm`` subclass; its
running statistics follow ``bnutils.batchnorm.update_running_stats``).

Introduced in notebook 07.
"""

from __future__ import annotations

import numpy as np

from ._validation import (
    as_generator,
    check_dout,
    check_positive,
    per_channel,
)
from .batchnorm import (
    BatchNorm,
)

__all__ = [
    "NoisyBatchNorm",
]


class NoisyBatchNorm(BatchNorm):
    """BN followed by random shifts and scales that change at every training step.

    In training mode, after ``y = BatchNorm(x)`` it draws, *for each step and each
    feature*, a scale ``s ~ exp(U(−log scale, log scale))`` and a shift
    ``m ~ U(−shift, shift)``, and returns ``s · y + m``. So the next layer's input never
    has a stable distribution: its mean and spread jump at every step (deliberately
    large internal covariate shift). This is a simplified version of the "noisy BN" of
    Santurkar et al. (2018), who also drew the noise independently for every sample.
    In eval mode it is plain BN (the noise is a training-time perturbation, and its scale
    has geometric mean 1 and its shift mean 0).

    Parameters
    ----------
    num_features : int
    shift : float ≥ 0, optional
        Half-width of the uniform shift.
    scale : float ≥ 1, optional
        The scale lies in [1/scale, scale].
    rng : numpy.random.Generator or int, optional
        Source of the noise. Without it, ``bnutils.training.train`` seeds the layer from
        its own ``seed``.
    eps, momentum : float, optional
        As in ``BatchNorm``.

    Attributes
    ----------
    last_scale, last_shift : ndarray, shape (num_features,)
        The noise of the last training-mode forward.

    Examples
    --------
    >>> layer = NoisyBatchNorm(3, shift=1.0, scale=2.0, rng=0)
    >>> out = layer.forward(np.random.default_rng(1).normal(size=(8, 3)))
    >>> bool(np.all((layer.last_scale >= 0.5) & (layer.last_scale <= 2.0)))
    True

    Introduced in notebook 07.
    """

    def __init__(self, num_features: int, shift: float = 1.0, scale: float = 2.0, rng=None,
                 eps: float = 1e-5, momentum: float = 0.1, dtype=np.float64):
        super().__init__(num_features, eps=eps, momentum=momentum, dtype=dtype)
        if isinstance(shift, bool) or not isinstance(shift, (int, float, np.floating)) \
                or not np.isfinite(shift) or shift < 0:
            raise ValueError(f"shift must be a finite number ≥ 0, got {shift!r}")
        scale = check_positive(scale, "scale")
        if scale < 1:
            raise ValueError(f"scale must be ≥ 1 (the scale is drawn from [1/scale, scale]), "
                             f"got {scale}")
        self.shift, self.scale = float(shift), scale
        self.rng = as_generator(rng)
        self.seed_from_train = rng is None     # train(seed=...) seeds it (see Layer)
        self.last_scale = np.ones(self.num_features)
        self.last_shift = np.zeros(self.num_features)

    def forward(self, x):
        out = super().forward(x)
        if not self.training:
            return out
        log_s = np.log(self.scale)
        self.last_scale = np.exp(self.rng.uniform(-log_s, log_s, self.num_features))
        self.last_shift = self.rng.uniform(-self.shift, self.shift, self.num_features)
        return out * per_channel(self.last_scale, out.ndim) + per_channel(self.last_shift, out.ndim)

    def backward(self, dout):
        if self._cache is not None:                        # training mode: undo the scale first
            dout = check_dout(dout, self._cache.x_hat.shape, self._cache.x_hat.dtype)
            dout = dout * per_channel(self.last_scale, dout.ndim)
        return super().backward(dout)

    def __repr__(self):
        return f"NoisyBatchNorm({self.num_features}, shift={self.shift:g}, scale={self.scale:g})"
