"""bnutils: the shared NumPy package of the Batch Normalization course.

Every name lives in a module named after its concept, and the notebooks import it from
there (``from bnutils.layers import Linear``). The core is also importable from
``bnutils`` itself::

    out, cache = batchnorm_forward(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = batchnorm_backward(dout, cache)
    dx, dgamma, dbeta = batchnorm_backward_staged(dout, cache)
    out = batchnorm_inference(x, gamma, beta, running_mean, running_var, eps=1e-5)
    running_mean, running_var = update_running_stats(running_mean, running_var, cache, momentum=0.1)
    bn = BatchNorm(num_features, eps=1e-5, momentum=0.1)
    out, cache = layernorm_forward(x, gamma, beta);   layernorm_backward(dout, cache)
    out, cache = groupnorm_forward(x, gamma, beta, num_groups);   groupnorm_backward(dout, cache)
    out, cache = rmsnorm_forward(x, gamma);   rmsnorm_backward(dout, cache)
    weight, bias = fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var)
    numerical_gradient(f, x, h=1e-5);  rel_error(a, b)

Where to find the rest. The core, the code a learner reads:

========================  ==========================================================
``batchnorm``             BN forward/backward/inference, running statistics, ``BatchNorm``
``normalization``         LayerNorm, GroupNorm, InstanceNorm, RMSNorm and their layers
``batch_renorm``          Batch Renormalization (Ioffe 2017), its layer
``sharded_bn``            BN on a batch split across devices, per-device or synchronized
``noisy_bn``              noisy BN (Santurkar et al. 2018)
``weight_norm``           weight normalization (Salimans & Kingma 2016), its layer
``layers``                ``Layer``, the normalization layers' base ``NormLayer``,
                          ``Linear``, activations, ``Sequential``, losses
``conv``, ``residual``    convolution, pooling; residual blocks and SkipInit
``dropout``               inverted dropout and its variance shift
``gradcheck``             ``numerical_gradient``, ``rel_error``
``reference``             BN as loops and as the paper's literal equations (the tests' yardstick)
``training``              ``train``, ``evaluate``, ``sgd_step``
``inference``, ``folding``  running averages, frozen/precise statistics, folding BN away
``data``                  every data set of the course
``_moments`` (private)    the numerics of every normalization: float64 sums, the float32
                          correction, inputs too large to square (``normalize``)
``_validation`` (private) the input checks and their messages; their ``NonFiniteError``
                          (NaN or inf where finite numbers are required) is public here
``lab``                   the course layer: runs, sweeps, diagnostics, figures, timing
========================  ==========================================================

Above the core, the course layer: experiments, sweeps, diagnostics and plotting helpers
(``bnutils.lab``), and one module per notebook in ``bnutils.checks`` (self-checks) and
``bnutils.widgets``.

Conventions are stated in ``bnutils.batchnorm``'s module docstring.
"""

from ._validation import NonFiniteError
from .batchnorm import (
    BatchNorm,
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    batchnorm_inference_backward,
    update_running_stats,
)
from .folding import fold_batchnorm
from .gradcheck import numerical_gradient, rel_error
from .layers import (
    Layer,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    accuracy,
    mse_loss,
    softmax_cross_entropy,
)
from .normalization import (
    GroupNorm,
    GroupNormCache,
    InstanceNorm,
    LayerNorm,
    LayerNormCache,
    RMSNorm,
    RMSNormCache,
    groupnorm_backward,
    groupnorm_forward,
    instancenorm_backward,
    instancenorm_forward,
    layernorm_backward,
    layernorm_forward,
    rmsnorm_backward,
    rmsnorm_forward,
)

__version__ = "0.2.0"

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "GroupNorm",
    "GroupNormCache",
    "InstanceNorm",
    "Layer",
    "LayerNorm",
    "LayerNormCache",
    "Linear",
    "NonFiniteError",
    "RMSNorm",
    "RMSNormCache",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "accuracy",
    "batchnorm_backward",
    "batchnorm_backward_staged",
    "batchnorm_forward",
    "batchnorm_inference",
    "batchnorm_inference_backward",
    "fold_batchnorm",
    "groupnorm_backward",
    "groupnorm_forward",
    "instancenorm_backward",
    "instancenorm_forward",
    "layernorm_backward",
    "layernorm_forward",
    "mse_loss",
    "numerical_gradient",
    "rel_error",
    "rmsnorm_backward",
    "rmsnorm_forward",
    "softmax_cross_entropy",
    "update_running_stats",
]
