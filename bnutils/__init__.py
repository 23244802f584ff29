"""bnutils: the shared NumPy package of the Batch Normalization course.

The core (``from bnutils import ...``)::

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
    GroupNormCache,
    LayerNormCache,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
)

__version__ = "0.1.0"

__all__ = [
    "BatchNorm",
    "BatchNormCache",
    "GroupNormCache",
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
