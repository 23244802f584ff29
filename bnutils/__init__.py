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
    weight, bias = fold_batchnorm(weight, bias, gamma, beta, running_mean, running_var)
    numerical_gradient(f, x, h=1e-5);  rel_error(a, b)

Where to find the rest:

========================  ==========================================================
``batchnorm``             BN forward/backward/inference, running statistics, ``BatchNorm``
``normalization``         LayerNorm, GroupNorm, InstanceNorm, RMSNorm and their layers
``bn_variants``           Batch Renorm, synchronized BN, noisy BN, weight normalization
``layers``                ``Layer``, ``Linear``, activations, ``Sequential``, losses
``conv``, ``residual``    convolution, pooling; residual blocks and SkipInit
``training``              ``train``, ``evaluate``, ``sgd_step``
``inference``             running averages, frozen/precise statistics, folding a network
``data``                  every data set of the course
``lab``                   the course layer: runs, sweeps, diagnostics, figures, timing
========================  ==========================================================

Conventions are stated in ``bnutils.batchnorm``'s module docstring.
"""

from .batchnorm import (
    BatchNorm,
    BatchNormCache,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    update_running_stats,
)
from .folding import fold_batchnorm
from .gradcheck import numerical_gradient, rel_error
from .layers import (
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
    LayerNorm,
    LayerNormCache,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)

__version__ = "0.2.0"

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "GroupNorm",
    "GroupNormCache",
    "LayerNorm",
    "LayerNormCache",
    "Linear",
    "ReLU",
    "Sequential",
    "Sigmoid",
    "Tanh",
    "accuracy",
    "batchnorm_backward",
    "batchnorm_backward_staged",
    "batchnorm_forward",
    "batchnorm_inference",
    "fold_batchnorm",
    "groupnorm_backward",
    "groupnorm_forward",
    "layernorm_backward",
    "layernorm_forward",
    "mse_loss",
    "numerical_gradient",
    "rel_error",
    "softmax_cross_entropy",
    "update_running_stats",
]
