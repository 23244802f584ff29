"""Bad input raises ValueError or TypeError with a message that names the problem and
the offending value or shape, for every public function where the case applies.

Each case is (id, call, exception, fragments): the message must contain every fragment,
in order (the fragments are literal text, escaped here).
"""

import re

import numpy as np
import pytest

from bnutils import (
    BatchNorm,
    Linear,
    ReLU,
    Sequential,
    Sigmoid,
    Tanh,
    accuracy,
    batchnorm_backward,
    batchnorm_backward_staged,
    batchnorm_forward,
    batchnorm_inference,
    fold_batchnorm,
    groupnorm_backward,
    groupnorm_forward,
    layernorm_backward,
    layernorm_forward,
    mse_loss,
    numerical_gradient,
    rel_error,
    softmax_cross_entropy,
    update_running_stats,
)
from bnutils._validation import NonFiniteError
from bnutils.training import evaluate, minibatches, train

RNG = np.random.default_rng(0)
X = RNG.standard_normal((4, 3))
X4 = RNG.standard_normal((2, 3, 2, 2))
ONES, ZEROS = np.ones(3), np.zeros(3)
NEG_VAR = np.array([1.0, -0.5, 1.0])
STRINGS = np.array([["a", "b", "c"]] * 4)
_, CACHE = batchnorm_forward(X, ONES, ZEROS)
_, CACHE4 = batchnorm_forward(X4, ONES, ZEROS)
_, LN_CACHE = layernorm_forward(X, ONES, ZEROS)
_, GN_CACHE = groupnorm_forward(X4, ONES, ZEROS, 3)


def with_nan(a, index, value=np.nan):
    a = np.array(a, dtype=float)
    a[index] = value
    return a


def bn_train():
    return BatchNorm(3)


def bn_eval():
    bn = BatchNorm(3)
    bn.forward(X)
    return bn.eval()


def after_forward(layer, x):
    layer.forward(x)
    return layer


def bn_with_negative_running_var():
    bn = BatchNorm(3).eval()
    bn.running_var = NEG_VAR.copy()
    return bn


NDIM_BN = "x must have shape (N, D) or (N, C, H, W)"
NONFINITE = "non-finite value(s) (NaN or inf)"
NUMERIC = "must be a numeric array"

CASES = [
    # ---- wrong number of dimensions
    ("bn-forward-1d", lambda: batchnorm_forward(np.ones(5), ONES, ZEROS), ValueError,
     [NDIM_BN, "got 1-D array of shape (5,)"]),
    ("bn-forward-3d", lambda: batchnorm_forward(np.ones((2, 3, 4)), ONES, ZEROS), ValueError,
     [NDIM_BN, "got 3-D array of shape (2, 3, 4)"]),
    ("bn-forward-0d", lambda: batchnorm_forward(3.0, ONES, ZEROS), ValueError,
     [NDIM_BN, "got 0-D array of shape ()"]),
    ("bn-forward-5d", lambda: batchnorm_forward(np.ones((2, 3, 2, 2, 2)), ONES, ZEROS), ValueError,
     [NDIM_BN, "got 5-D array of shape (2, 3, 2, 2, 2)"]),
    ("bn-inference-3d", lambda: batchnorm_inference(np.ones((2, 3, 4)), ONES, ZEROS, ZEROS, ONES),
     ValueError, [NDIM_BN, "got 3-D array of shape (2, 3, 4)"]),
    ("BatchNorm-3d", lambda: bn_train().forward(np.ones((2, 3, 4))), ValueError,
     ["BatchNorm(num_features=3) expects x of shape (N, 3) or (N, 3, H, W)", "got (2, 3, 4)"]),
    ("Linear-1d", lambda: Linear(3, 2, rng=0).forward(np.ones(3)), ValueError,
     ["Linear(3, 2) expects x of shape (N, 3)", "got (3,)"]),
    ("ln-forward-4d", lambda: layernorm_forward(X4, ONES, ZEROS), ValueError,
     ["x must have shape (N, D)", "got 4-D array of shape (2, 3, 2, 2)"]),
    ("gn-forward-3d", lambda: groupnorm_forward(np.ones((2, 3, 4)), ONES, ZEROS, 1), ValueError,
     ["x must have shape (N, C) or (N, C, H, W)", "got 3-D array of shape (2, 3, 4)"]),
    ("fold-weight-1d", lambda: fold_batchnorm(np.ones(3), ZEROS, ONES, ZEROS, ZEROS, ONES),
     ValueError, ["weight must have shape (D_in, D)", "got shape (3,)"]),
    ("ce-logits-1d", lambda: softmax_cross_entropy(np.ones(3), np.array([0, 1, 2])), ValueError,
     ["logits must have shape (N, K)", "got (3,)"]),
    ("accuracy-logits-1d", lambda: accuracy(np.ones(3), np.array([0, 1, 2])), ValueError,
     ["logits of shape (N, K)", "got logits (3,)"]),
    # ---- no features / empty batch
    ("bn-forward-no-features", lambda: batchnorm_forward(np.ones((4, 0)), np.ones(0), np.ones(0)),
     ValueError, ["at least one feature", "(4, 0)"]),
    ("ln-forward-no-features", lambda: layernorm_forward(np.ones((4, 0)), np.ones(0), np.ones(0)),
     ValueError, ["at least one feature", "(4, 0)"]),
    ("gn-forward-empty-H", lambda: groupnorm_forward(np.ones((2, 3, 0, 2)), ONES, ZEROS, 1),
     ValueError, ["at least one value per sample", "(2, 3, 0, 2)"]),
    ("ce-no-samples", lambda: softmax_cross_entropy(np.ones((0, 3)), np.zeros(0, int)), ValueError,
     ["N ≥ 1 samples", "got (0, 3)"]),
    # ---- gamma / beta / running statistics of the wrong shape
    ("bn-forward-gamma", lambda: batchnorm_forward(X, np.ones(4), ZEROS), ValueError,
     ["gamma must have shape (3,), one value per feature", "got shape (4,)"]),
    ("bn-forward-beta-2d", lambda: batchnorm_forward(X, ONES, np.zeros((1, 3))), ValueError,
     ["beta must have shape (3,), one value per feature", "got shape (1, 3)"]),
    ("bn-forward-gamma-scalar", lambda: batchnorm_forward(X, 1.0, ZEROS), ValueError,
     ["gamma must have shape (3,)", "got shape ()"]),
    ("bn-forward-4d-gamma", lambda: batchnorm_forward(X4, np.ones(2), ZEROS), ValueError,
     ["gamma must have shape (3,), one value per channel", "got shape (2,)"]),
    ("bn-forward-4d-gamma-per-pixel", lambda: batchnorm_forward(X4, np.ones((3, 2, 2)), ZEROS),
     ValueError, ["gamma must have shape (3,), one value per channel", "got shape (3, 2, 2)"]),
    ("bn-inference-beta", lambda: batchnorm_inference(X, ONES, np.zeros(2), ZEROS, ONES), ValueError,
     ["beta must have shape (3,)", "got shape (2,)"]),
    ("bn-inference-running-mean", lambda: batchnorm_inference(X, ONES, ZEROS, np.zeros(4), ONES),
     ValueError, ["running_mean must have shape (3,)", "got shape (4,)"]),
    ("bn-inference-running-var", lambda: batchnorm_inference(X, ONES, ZEROS, ZEROS, np.ones(2)),
     ValueError, ["running_var must have shape (3,)", "got shape (2,)"]),
    ("update-running-mean", lambda: update_running_stats(np.zeros(4), ONES, CACHE), ValueError,
     ["running_mean must have shape (3,)", "got shape (4,)"]),
    ("update-running-var-4d", lambda: update_running_stats(ZEROS, np.ones(2), CACHE4), ValueError,
     ["running_var must have shape (3,), one value per channel", "got shape (2,)"]),
    ("ln-forward-gamma", lambda: layernorm_forward(X, np.ones(2), ZEROS), ValueError,
     ["gamma must have shape (3,)", "got shape (2,)"]),
    ("ln-forward-beta", lambda: layernorm_forward(X, ONES, np.zeros(4)), ValueError,
     ["beta must have shape (3,)", "got shape (4,)"]),
    ("gn-forward-gamma", lambda: groupnorm_forward(X4, np.ones(6), ZEROS, 3), ValueError,
     ["gamma must have shape (3,), one value per channel", "got shape (6,)"]),
    ("gn-forward-beta", lambda: groupnorm_forward(X, ONES, np.zeros(1), 1), ValueError,
     ["beta must have shape (3,)", "got shape (1,)"]),
    ("fold-bias", lambda: fold_batchnorm(np.ones((2, 3)), np.zeros(2), ONES, ZEROS, ZEROS, ONES),
     ValueError, ["bias must have shape (3,)", "got shape (2,)"]),
    ("fold-gamma", lambda: fold_batchnorm(np.ones((2, 3)), ZEROS, np.ones(2), ZEROS, ZEROS, ONES),
     ValueError, ["gamma must have shape (3,)", "got shape (2,)"]),
    ("fold-running-mean", lambda: fold_batchnorm(np.ones((2, 3)), ZEROS, ONES, ZEROS, np.zeros(4), ONES),
     ValueError, ["running_mean must have shape (3,)", "got shape (4,)"]),
    ("fold-weight-transposed", lambda: fold_batchnorm(np.ones((3, 2)), ZEROS, ONES, ZEROS, ZEROS, ONES),
     ValueError, ["bias must have shape (2,)", "got shape (3,)"]),
    # ---- fewer than 2 values per feature/channel in training mode
    ("bn-forward-one-sample", lambda: batchnorm_forward(X[:1], ONES, ZEROS), ValueError,
     ["at least 2 values per feature", "shape (1, 3)", "1 value per feature"]),
    ("bn-forward-one-pixel", lambda: batchnorm_forward(X4[:1, :, :1, :1], ONES, ZEROS), ValueError,
     ["at least 2 values per channel", "shape (1, 3, 1, 1)"]),
    ("bn-forward-empty-batch", lambda: batchnorm_forward(np.ones((0, 3)), ONES, ZEROS), ValueError,
     ["at least 2 values per feature", "shape (0, 3)"]),
    ("BatchNorm-train-one-sample", lambda: bn_train().forward(X[:1]), ValueError,
     ["at least 2 values per feature", "shape (1, 3)", "batchnorm_inference"]),
    # ---- NaN or inf
    ("bn-forward-nan", lambda: batchnorm_forward(with_nan(X, (1, 2)), ONES, ZEROS), ValueError,
     ["x contains 1 " + NONFINITE, "nan at index (1, 2)"]),
    ("bn-forward-inf-4d", lambda: batchnorm_forward(with_nan(X4, (1, 0, 1, 1), -np.inf), ONES, ZEROS),
     ValueError, ["x contains 1 " + NONFINITE, "-inf at index (1, 0, 1, 1)"]),
    ("bn-forward-gamma-nan", lambda: batchnorm_forward(X, with_nan(ONES, 0), ZEROS), ValueError,
     ["gamma contains 1 " + NONFINITE, "nan at index (0,)"]),
    ("bn-backward-dout-nan", lambda: batchnorm_backward(with_nan(X, (0, 0)), CACHE), ValueError,
     ["dout contains 1 " + NONFINITE, "nan at index (0, 0)"]),
    ("bn-staged-dout-inf", lambda: batchnorm_backward_staged(with_nan(X, (3, 1), np.inf), CACHE),
     ValueError, ["dout contains 1 " + NONFINITE, "inf at index (3, 1)"]),
    ("bn-inference-nan", lambda: batchnorm_inference(with_nan(X, (2, 0)), ONES, ZEROS, ZEROS, ONES),
     ValueError, ["x contains 1 " + NONFINITE, "nan at index (2, 0)"]),
    ("bn-inference-running-mean-nan",
     lambda: batchnorm_inference(X, ONES, ZEROS, with_nan(ZEROS, 1), ONES), ValueError,
     ["running_mean contains 1 " + NONFINITE, "nan at index (1,)"]),
    ("update-running-var-inf", lambda: update_running_stats(ZEROS, with_nan(ONES, 2, np.inf), CACHE),
     ValueError, ["running_var contains 1 " + NONFINITE, "inf at index (2,)"]),
    ("BatchNorm-train-nan", lambda: bn_train().forward(with_nan(X, (0, 1))), ValueError,
     ["x contains 1 " + NONFINITE, "nan at index (0, 1)"]),
    ("BatchNorm-eval-nan", lambda: bn_eval().forward(with_nan(X, (0, 1))), ValueError,
     ["x contains 1 " + NONFINITE, "nan at index (0, 1)"]),
    ("Linear-nan", lambda: Linear(3, 2, rng=0).forward(with_nan(X, (3, 2))), ValueError,
     ["x contains 1 " + NONFINITE, "nan at index (3, 2)"]),
    ("ln-forward-nan", lambda: layernorm_forward(with_nan(X, (0, 0), np.inf), ONES, ZEROS), ValueError,
     ["x contains 1 " + NONFINITE, "inf at index (0, 0)"]),
    ("ln-backward-dout-nan", lambda: layernorm_backward(with_nan(X, (1, 1)), LN_CACHE), ValueError,
     ["dout contains 1 " + NONFINITE, "nan at index (1, 1)"]),
    ("gn-forward-nan", lambda: groupnorm_forward(with_nan(X4, (0, 2, 1, 0)), ONES, ZEROS, 3),
     ValueError, ["x contains 1 " + NONFINITE, "nan at index (0, 2, 1, 0)"]),
    ("gn-backward-dout-nan", lambda: groupnorm_backward(with_nan(X4, (1, 1, 1, 1)), GN_CACHE),
     ValueError, ["dout contains 1 " + NONFINITE, "nan at index (1, 1, 1, 1)"]),
    ("fold-weight-nan", lambda: fold_batchnorm(with_nan(np.ones((2, 3)), (1, 1)), ZEROS, ONES, ZEROS,
                                               ZEROS, ONES),
     ValueError, ["weight contains 1 " + NONFINITE, "nan at index (1, 1)"]),
    ("fold-running-var-nan", lambda: fold_batchnorm(np.ones((2, 3)), ZEROS, ONES, ZEROS, ZEROS,
                                                    with_nan(ONES, 0)),
     ValueError, ["running_var contains 1 " + NONFINITE, "nan at index (0,)"]),
    ("ce-logits-nan", lambda: softmax_cross_entropy(with_nan(X, (2, 2)), np.array([0, 1, 2, 0])),
     ValueError, ["logits contains 1 " + NONFINITE, "nan at index (2, 2)"]),
    ("train-X-nan", lambda: train(Linear(3, 2, rng=0), with_nan(X, (1, 1)), np.array([0, 1, 0, 1]),
                                  lr=0.1, steps=1, batch_size=2),
     ValueError, ["X contains 1 " + NONFINITE, "nan at index (1, 1)"]),
    ("evaluate-X-inf", lambda: evaluate(Linear(3, 2, rng=0), with_nan(X, (0, 2), np.inf),
                                        np.array([0, 1, 0, 1])),
     ValueError, ["X contains 1 " + NONFINITE, "inf at index (0, 2)"]),
    # ---- eps <= 0 (and eps that is not a finite number)
    ("bn-forward-eps-0", lambda: batchnorm_forward(X, ONES, ZEROS, eps=0), ValueError,
     ["eps must be > 0", "got 0.0"]),
    ("bn-forward-eps-negative", lambda: batchnorm_forward(X, ONES, ZEROS, eps=-1e-5), ValueError,
     ["eps must be > 0", "got -1e-05"]),
    ("bn-forward-eps-nan", lambda: batchnorm_forward(X, ONES, ZEROS, eps=float("nan")), ValueError,
     ["eps must be finite", "got nan"]),
    ("bn-forward-eps-str", lambda: batchnorm_forward(X, ONES, ZEROS, eps="1e-5"), TypeError,
     ["eps must be a real number", "got '1e-5' of type str"]),
    ("bn-forward-eps-array", lambda: batchnorm_forward(X, ONES, ZEROS, eps=np.array([1e-5])), TypeError,
     ["eps must be a real number", "array([1.e-05])"]),
    ("bn-inference-eps-0", lambda: batchnorm_inference(X, ONES, ZEROS, ZEROS, ONES, eps=0.0), ValueError,
     ["eps must be > 0", "got 0.0"]),
    ("BatchNorm-eps-negative", lambda: BatchNorm(3, eps=-0.1), ValueError,
     ["eps must be > 0", "got -0.1"]),
    ("ln-forward-eps-0", lambda: layernorm_forward(X, ONES, ZEROS, eps=0), ValueError,
     ["eps must be > 0", "got 0.0"]),
    ("gn-forward-eps-negative", lambda: groupnorm_forward(X, ONES, ZEROS, 1, eps=-2), ValueError,
     ["eps must be > 0", "got -2.0"]),
    ("fold-eps-0", lambda: fold_batchnorm(np.ones((2, 3)), ZEROS, ONES, ZEROS, ZEROS, ONES, eps=0),
     ValueError, ["eps must be > 0", "got 0.0"]),
    # ---- momentum outside [0, 1]
    ("update-momentum-negative", lambda: update_running_stats(ZEROS, ONES, CACHE, momentum=-0.1),
     ValueError, ["momentum must lie in [0, 1]", "got -0.1"]),
    ("update-momentum-above-1", lambda: update_running_stats(ZEROS, ONES, CACHE, momentum=1.5),
     ValueError, ["momentum must lie in [0, 1]", "got 1.5"]),
    ("update-momentum-str", lambda: update_running_stats(ZEROS, ONES, CACHE, momentum="0.1"),
     TypeError, ["momentum must be a real number", "got '0.1' of type str"]),
    ("BatchNorm-momentum-above-1", lambda: BatchNorm(3, momentum=1.01), ValueError,
     ["momentum must lie in [0, 1]", "got 1.01"]),
    ("BatchNorm-momentum-negative", lambda: BatchNorm(3, momentum=-1), ValueError,
     ["momentum must lie in [0, 1]", "got -1.0"]),
    # ---- num_features < 1 (and layer sizes that are not integers)
    ("BatchNorm-0-features", lambda: BatchNorm(0), ValueError, ["num_features must be ≥ 1", "got 0"]),
    ("BatchNorm-negative-features", lambda: BatchNorm(-2), ValueError,
     ["num_features must be ≥ 1", "got -2"]),
    ("BatchNorm-float-features", lambda: BatchNorm(2.0), TypeError,
     ["num_features must be an integer", "got 2.0"]),
    ("BatchNorm-bool-features", lambda: BatchNorm(True), TypeError,
     ["num_features must be an integer", "got True"]),
    ("Linear-0-in", lambda: Linear(0, 2), ValueError, ["in_features must be ≥ 1", "got 0"]),
    ("Linear-negative-out", lambda: Linear(3, -1), ValueError,
     ["out_features must be ≥ 1", "got -1"]),
    ("Linear-float-out", lambda: Linear(3, 2.5), TypeError,
     ["out_features must be an integer", "got 2.5"]),
    ("Linear-bad-init", lambda: Linear(3, 2, init="kaiming"), ValueError,
     ["init must be 'he', 'lecun', 'glorot' or a positive float", "got 'kaiming'"]),
    ("Linear-negative-init", lambda: Linear(3, 2, init=-0.1), ValueError,
     ["must be > 0", "got -0.1"]),
    # ---- a layer fed the wrong width
    ("BatchNorm-wrong-width", lambda: bn_train().forward(np.ones((4, 5))), ValueError,
     ["BatchNorm(num_features=3) expects x of shape (N, 3) or (N, 3, H, W)", "got (4, 5)"]),
    ("BatchNorm-wrong-channels", lambda: bn_train().forward(np.ones((2, 4, 2, 2))), ValueError,
     ["BatchNorm(num_features=3)", "got (2, 4, 2, 2)"]),
    ("BatchNorm-eval-wrong-width", lambda: bn_eval().forward(np.ones((1, 2))), ValueError,
     ["BatchNorm(num_features=3)", "got (1, 2)"]),
    ("Linear-wrong-width", lambda: Linear(3, 2, rng=0).forward(np.ones((4, 5))), ValueError,
     ["Linear(3, 2) expects x of shape (N, 3)", "got (4, 5)"]),
    ("Sequential-wrong-width", lambda: Sequential(Linear(3, 4, rng=0), BatchNorm(4)).forward(
        np.ones((4, 2))), ValueError, ["Linear(3, 4) expects x of shape (N, 3)", "got (4, 2)"]),
    ("Sequential-mismatched-layers", lambda: Sequential(Linear(3, 4, rng=0), BatchNorm(5)).forward(X),
     ValueError, ["BatchNorm(num_features=5)", "got (4, 4)"]),
    # ---- dout whose shape differs from the forward input (or output)
    ("bn-backward-dout", lambda: batchnorm_backward(np.ones((4, 2)), CACHE), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (4, 2)"]),
    ("bn-backward-dout-transposed", lambda: batchnorm_backward(np.ones((3, 4)), CACHE), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (3, 4)"]),
    ("bn-backward-dout-broadcastable", lambda: batchnorm_backward(np.ones(3), CACHE), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (3,)"]),
    ("bn-staged-dout", lambda: batchnorm_backward_staged(np.ones((4, 3, 1)), CACHE), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (4, 3, 1)"]),
    ("bn-backward-dout-4d", lambda: batchnorm_backward(np.ones((2, 3, 2, 1)), CACHE4), ValueError,
     ["dout must have the shape of the forward input x, (2, 3, 2, 2)", "got (2, 3, 2, 1)"]),
    ("BatchNorm-train-dout", lambda: after_forward(bn_train(), X).backward(np.ones((4, 2))), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (4, 2)"]),
    ("BatchNorm-eval-dout", lambda: after_forward(bn_eval(), X).backward(np.ones((4, 1))), ValueError,
     ["dout must have the shape", "(4, 3)", "got (4, 1)"]),
    ("Linear-dout", lambda: after_forward(Linear(3, 2, rng=0), X).backward(np.ones((4, 3))), ValueError,
     ["dout must have the shape", "(4, 2)", "got (4, 3)"]),
    ("ReLU-dout", lambda: after_forward(ReLU(), X).backward(np.ones(3)), ValueError,
     ["dout must have the shape", "(4, 3)", "got (3,)"]),
    ("Sigmoid-dout", lambda: after_forward(Sigmoid(), X).backward(np.ones((1, 3))), ValueError,
     ["dout must have the shape", "(4, 3)", "got (1, 3)"]),
    ("Tanh-dout", lambda: after_forward(Tanh(), X).backward(np.ones((4, 1))), ValueError,
     ["dout must have the shape", "(4, 3)", "got (4, 1)"]),
    ("ln-backward-dout", lambda: layernorm_backward(np.ones((4, 1)), LN_CACHE), ValueError,
     ["dout must have the shape of the forward input x, (4, 3)", "got (4, 1)"]),
    ("gn-backward-dout", lambda: groupnorm_backward(np.ones((2, 3, 4)), GN_CACHE), ValueError,
     ["dout must have the shape of the forward input x, (2, 3, 2, 2)", "got (2, 3, 4)"]),
    ("bn-backward-wrong-cache", lambda: batchnorm_backward(X, (1, 2, 3)), TypeError,
     ["cache must be the BatchNormCache returned by batchnorm_forward", "got tuple"]),
    ("bn-staged-ln-cache", lambda: batchnorm_backward_staged(X, LN_CACHE), TypeError,
     ["cache must be the BatchNormCache", "got LayerNormCache"]),
    ("update-wrong-cache", lambda: update_running_stats(ZEROS, ONES, {"mean": 0}), TypeError,
     ["cache must be the BatchNormCache", "got dict"]),
    ("ln-backward-bn-cache", lambda: layernorm_backward(X, CACHE), TypeError,
     ["cache must be the LayerNormCache returned by layernorm_forward", "got BatchNormCache"]),
    ("gn-backward-ln-cache", lambda: groupnorm_backward(X, LN_CACHE), TypeError,
     ["cache must be the GroupNormCache returned by groupnorm_forward", "got LayerNormCache"]),
    # ---- a negative running variance
    ("bn-inference-negative-var", lambda: batchnorm_inference(X, ONES, ZEROS, ZEROS, NEG_VAR),
     ValueError, ["running_var must be ≥ 0 (it is a variance)", "-0.5"]),
    ("update-negative-var", lambda: update_running_stats(ZEROS, NEG_VAR, CACHE), ValueError,
     ["running_var must be ≥ 0 (it is a variance)", "-0.5"]),
    ("fold-negative-var", lambda: fold_batchnorm(np.ones((2, 3)), ZEROS, ONES, ZEROS, ZEROS, NEG_VAR),
     ValueError, ["running_var must be ≥ 0 (it is a variance)", "-0.5"]),
    ("BatchNorm-eval-negative-var", lambda: bn_with_negative_running_var().forward(X), ValueError,
     ["running_var must be ≥ 0 (it is a variance)", "-0.5"]),
    # ---- num_groups not dividing C
    ("gn-groups-not-divisor", lambda: groupnorm_forward(np.ones((2, 6)), np.ones(6), np.zeros(6), 4),
     ValueError, ["num_groups must be a positive divisor of the number of channels C=6",
                  "got num_groups=4"]),
    ("gn-groups-too-many", lambda: groupnorm_forward(X4, ONES, ZEROS, 6), ValueError,
     ["positive divisor of the number of channels C=3", "got num_groups=6"]),
    ("gn-groups-0", lambda: groupnorm_forward(X4, ONES, ZEROS, 0), ValueError,
     ["num_groups must be ≥ 1", "got 0"]),
    ("gn-groups-negative", lambda: groupnorm_forward(X4, ONES, ZEROS, -3), ValueError,
     ["num_groups must be ≥ 1", "got -3"]),
    ("gn-groups-float", lambda: groupnorm_forward(X4, ONES, ZEROS, 3.0), TypeError,
     ["num_groups must be an integer", "got 3.0"]),
    # ---- non-numeric arrays
    ("bn-forward-strings", lambda: batchnorm_forward(STRINGS, ONES, ZEROS), TypeError,
     ["x " + NUMERIC, "got dtype <U1"]),
    ("bn-forward-complex", lambda: batchnorm_forward(X + 1j, ONES, ZEROS), TypeError,
     ["x " + NUMERIC, "got dtype complex128"]),
    ("bn-forward-object", lambda: batchnorm_forward(np.array([[None] * 3] * 4), ONES, ZEROS),
     TypeError, ["x " + NUMERIC, "got dtype object"]),
    ("bn-forward-ragged", lambda: batchnorm_forward([[1.0, 2.0, 3.0], [1.0, 2.0]], ONES, ZEROS),
     TypeError, ["x " + NUMERIC, "could not convert it", "inhomogeneous"]),
    ("bn-forward-gamma-strings", lambda: batchnorm_forward(X, np.array(["1", "1", "1"]), ZEROS),
     TypeError, ["gamma " + NUMERIC, "got dtype <U1"]),
    ("bn-forward-beta-none", lambda: batchnorm_forward(X, ONES, None), TypeError,
     ["beta " + NUMERIC, "got dtype object"]),
    ("bn-backward-dout-strings", lambda: batchnorm_backward(STRINGS, CACHE), TypeError,
     ["dout " + NUMERIC, "got dtype <U1"]),
    ("bn-staged-dout-complex", lambda: batchnorm_backward_staged(X * 1j, CACHE), TypeError,
     ["dout " + NUMERIC, "got dtype complex128"]),
    ("bn-inference-strings", lambda: batchnorm_inference(STRINGS, ONES, ZEROS, ZEROS, ONES), TypeError,
     ["x " + NUMERIC, "got dtype <U1"]),
    ("bn-inference-running-mean-strings",
     lambda: batchnorm_inference(X, ONES, ZEROS, np.array(["0", "0", "0"]), ONES), TypeError,
     ["running_mean " + NUMERIC, "got dtype <U1"]),
    ("update-running-var-strings", lambda: update_running_stats(ZEROS, np.array(list("111")), CACHE),
     TypeError, ["running_var " + NUMERIC, "got dtype <U1"]),
    ("BatchNorm-strings", lambda: bn_train().forward(STRINGS), TypeError, ["x " + NUMERIC, "<U1"]),
    ("BatchNorm-ragged", lambda: bn_train().forward([[1.0, 2.0, 3.0], [1.0]]), TypeError,
     ["x " + NUMERIC, "could not convert it"]),
    ("Linear-strings", lambda: Linear(3, 2, rng=0).forward(STRINGS), TypeError, ["x " + NUMERIC, "<U1"]),
    ("Linear-dout-strings", lambda: after_forward(Linear(3, 2, rng=0), X).backward(STRINGS[:, :2]),
     TypeError, ["dout " + NUMERIC, "<U1"]),
    ("ReLU-strings", lambda: ReLU().forward(STRINGS), TypeError, ["x " + NUMERIC, "<U1"]),
    ("Sigmoid-complex", lambda: Sigmoid().forward(X * 1j), TypeError, ["x " + NUMERIC, "complex128"]),
    ("Tanh-object", lambda: Tanh().forward(np.array([[None]])), TypeError, ["x " + NUMERIC, "object"]),
    ("ln-forward-strings", lambda: layernorm_forward(STRINGS, ONES, ZEROS), TypeError,
     ["x " + NUMERIC, "<U1"]),
    ("gn-forward-complex", lambda: groupnorm_forward(X4 * 1j, ONES, ZEROS, 1), TypeError,
     ["x " + NUMERIC, "complex128"]),
    ("fold-weight-strings", lambda: fold_batchnorm(STRINGS, ZEROS, ONES, ZEROS, ZEROS, ONES), TypeError,
     ["weight " + NUMERIC, "<U1"]),
    ("ce-logits-strings", lambda: softmax_cross_entropy(STRINGS, np.array([0, 1, 2, 0])), TypeError,
     ["logits " + NUMERIC, "<U1"]),
    ("mse-strings", lambda: mse_loss(STRINGS, X), TypeError, ["pred " + NUMERIC, "<U1"]),
    # ---- the loss functions' own checks
    ("ce-float-labels", lambda: softmax_cross_entropy(X, np.array([0.0, 1.0, 2.0, 0.0])), ValueError,
     ["y must hold 4 integer labels, shape (4,)", "dtype float64"]),
    ("ce-labels-wrong-length", lambda: softmax_cross_entropy(X, np.array([0, 1])), ValueError,
     ["y must hold 4 integer labels", "got shape (2,)"]),
    ("ce-label-too-large", lambda: softmax_cross_entropy(X, np.array([0, 1, 3, 0])), ValueError,
     ["y (the labels) must lie in 0..2", "got values from 0 to 3"]),
    ("ce-label-negative", lambda: softmax_cross_entropy(X, np.array([0, -1, 2, 0])), ValueError,
     ["y (the labels) must lie in 0..2", "got values from -1 to 2"]),
    ("accuracy-labels-wrong-length", lambda: accuracy(X, np.array([0, 1])), ValueError,
     ["N labels y", "got logits (4, 3) and y (2,)"]),
    ("mse-shapes", lambda: mse_loss(np.ones(3), np.ones(4)), ValueError,
     ["pred and target must have the same shape", "got (3,) and (4,)"]),
    # ---- gradcheck and training helpers
    ("numgrad-h-0", lambda: numerical_gradient(lambda v: float(np.sum(v)), np.ones(2), h=0), ValueError,
     ["h must be > 0", "got 0"]),
    ("numgrad-vector-f", lambda: numerical_gradient(lambda v: v * 2, np.ones(2)), ValueError,
     ["f must return a scalar"]),
    ("rel-error-shapes", lambda: rel_error(np.ones(3), np.ones((3, 1))), ValueError,
     ["a and b must have the same shape", "got (3,) and (3, 1)"]),
    ("minibatches-too-large", lambda: list(minibatches(5, 6, 0)), ValueError,
     ["batch_size must lie in 1..5", "got 6"]),
    ("minibatches-0", lambda: list(minibatches(5, 0, 0)), ValueError,
     ["batch_size must lie in 1..5", "got 0"]),
    ("minibatches-float", lambda: list(minibatches(5, 2.5, 0)), TypeError,
     ["batch_size must be an integer", "got 2.5"]),
    ("train-steps-0", lambda: train(Linear(3, 2, rng=0), X, np.array([0, 1, 0, 1]), lr=0.1, steps=0),
     ValueError, ["steps must be ≥ 1", "got 0"]),
    ("train-length-mismatch", lambda: train(Linear(3, 2, rng=0), X, np.array([0, 1]), lr=0.1, steps=1,
                                            batch_size=2),
     ValueError, ["X and y must have the same length", "got 4 and 2"]),
    ("train-eval-every-0", lambda: train(Linear(3, 2, rng=0), X, np.array([0, 1, 0, 1]), lr=0.1,
                                         steps=1, batch_size=2, X_test=X, y_test=np.array([0, 1, 0, 1]),
                                         eval_every=0),
     ValueError, ["eval_every must be ≥ 1", "got 0"]),
]


def _pattern(fragments):
    return ".*".join(re.escape(f) for f in fragments)


@pytest.mark.parametrize("call, exc, fragments", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_raises_a_clear_error(call, exc, fragments):
    assert exc in (ValueError, TypeError)
    with pytest.raises(exc, match=_pattern(fragments)):
        call()


def test_case_ids_are_unique():
    ids = [c[0] for c in CASES]
    assert len(ids) == len(set(ids))


def test_nonfinite_error_is_a_value_error():
    assert issubclass(NonFiniteError, ValueError)
    with pytest.raises(NonFiniteError):
        batchnorm_forward(with_nan(X, (0, 0)), ONES, ZEROS)


# ---- the valid edge cases next to the invalid ones


def test_valid_edge_cases_are_accepted():
    # one sample with several pixels is fine in training mode
    out, cache = batchnorm_forward(X4[:1], ONES, ZEROS)
    assert cache.count == 4 and out.shape == (1, 3, 2, 2)
    # a batch of one is fine in eval mode, for the function and for the layer
    assert batchnorm_inference(X[:1], ONES, ZEROS, ZEROS, ONES).shape == (1, 3)
    assert bn_eval().forward(X[:1]).shape == (1, 3)
    # momentum 0 and 1 are allowed; so is a zero running variance; Keras's 0.99 is in range
    for momentum in (0, 1, 0.99):
        update_running_stats(ZEROS, np.zeros(3), CACHE, momentum=momentum)
        BatchNorm(3, momentum=momentum)
    # numbers of every real kind are accepted for eps and momentum
    for eps in (1, np.float32(1e-3), np.int64(1), np.array(1e-5)):
        batchnorm_forward(X, ONES, ZEROS, eps=eps)
    update_running_stats(ZEROS, ONES, CACHE, momentum=np.float64(0.5))
    BatchNorm(np.int64(3))
    # LayerNorm and GroupNorm work on a batch of one
    layernorm_forward(X[:1], ONES, ZEROS)
    groupnorm_forward(X4[:1], ONES, ZEROS, 3)
    # lists and integer arrays are numeric
    batchnorm_forward([[1, 2], [3, 5]], [1, 1], [0, 0])
    fold_batchnorm([[1, 2], [3, 4]], None, [1, 1], [0, 0], [0, 0], [1, 1])


def test_layers_refuse_backward_before_forward_and_grads_before_backward():
    for layer in (Linear(3, 2, rng=0), BatchNorm(3), ReLU(), Sigmoid(), Tanh()):
        with pytest.raises(RuntimeError, match="backward called before forward"):
            layer.backward(np.ones((4, 3)))
    for layer in (Linear(3, 2, rng=0), BatchNorm(3)):
        layer.forward(X)
        with pytest.raises(RuntimeError, match=r"grads\(\) called before backward"):
            layer.grads()


def test_errors_leave_the_layer_state_unchanged():
    bn = BatchNorm(3)
    bn.forward(X)
    state = [a.copy() for a in (bn.gamma, bn.beta, bn.running_mean, bn.running_var)]
    for bad in (with_nan(X, (0, 0)), np.ones((4, 5)), X[:1]):
        with pytest.raises(ValueError):
            bn.forward(bad)
    for a, s in zip((bn.gamma, bn.beta, bn.running_mean, bn.running_var), state):
        np.testing.assert_array_equal(a, s)


# ----------------------------------------------------------------------------- stale caches (issue 17)
# After a forward that raised, backward must raise, never return the previous batch's
# gradients. Every Layer subclass in bnutils is discovered; each needs an entry here.
def _layer_factories():
    from bnutils.batch_renorm import BatchRenorm
    from bnutils.conv import Conv2d, Flatten, GlobalAvgPool
    from bnutils.dropout import Dropout
    from bnutils.lab.finetuning import FrozenBatchNorm
    from bnutils.noisy_bn import NoisyBatchNorm
    from bnutils.normalization import GroupNorm, InstanceNorm, LayerNorm, RMSNorm
    from bnutils.residual import Residual, SkipInit
    from bnutils.sharded_bn import ShardedBatchNorm
    from bnutils.weight_norm import WeightNormLinear

    x2, x4 = RNG.standard_normal((4, 3)), RNG.standard_normal((2, 3, 4, 4))
    return {      # class name: (make the layer, a good input, an input its forward refuses)
        "BatchNorm": (lambda: BatchNorm(3), x2, with_nan(x2, (1, 1))),
        "BatchRenorm": (lambda: BatchRenorm(3), x2, with_nan(x2, (1, 1))),
        "NoisyBatchNorm": (lambda: NoisyBatchNorm(3, rng=0), x2, with_nan(x2, (1, 1))),
        "ShardedBatchNorm": (lambda: ShardedBatchNorm(3, 2), x2, with_nan(x2, (1, 1))),
        "WeightNormLinear": (lambda: WeightNormLinear(3, 2, rng=0), x2, with_nan(x2, (0, 2))),
        "Linear": (lambda: Linear(3, 2, rng=0), x2, with_nan(x2, (0, 0))),
        "ReLU": (ReLU, x2, np.ones((4, 3), dtype=object)),
        "Sigmoid": (Sigmoid, x2, np.ones((4, 3), dtype=complex)),
        "Tanh": (Tanh, x2, STRINGS),
        "Sequential": (lambda: Sequential(Linear(3, 3, rng=0), BatchNorm(3)), x2,
                       with_nan(x2, (2, 0))),
        "LayerNorm": (lambda: LayerNorm(3), x2, with_nan(x2, (0, 1))),
        "GroupNorm": (lambda: GroupNorm(3, 3), x4, with_nan(x4, (0, 1, 1, 1))),
        "InstanceNorm": (lambda: InstanceNorm(3), x4, with_nan(x4, (1, 0, 0, 0))),
        "RMSNorm": (lambda: RMSNorm(3), x2, with_nan(x2, (3, 2))),
        "Conv2d": (lambda: Conv2d(3, 2, rng=0), x4, with_nan(x4, (0, 0, 0, 0))),
        "Flatten": (Flatten, x4, np.ones(3)),
        "GlobalAvgPool": (GlobalAvgPool, x4, np.ones((2, 3))),
        # (eval-mode Dropout passes NaN through unchecked: reported to its owner)
        "Dropout": (lambda: Dropout(0.5, rng=0), x2, STRINGS),
        "FrozenBatchNorm": (lambda: FrozenBatchNorm(ZEROS, ONES, ONES, ZEROS), x2,
                            with_nan(x2, (0, 0))),
        "Residual": (lambda: Residual(Sequential(Linear(3, 3, rng=0), BatchNorm(3))), x2,
                     with_nan(x2, (1, 2))),
        "SkipInit": (lambda: SkipInit(0.5), x2, with_nan(x2, (0, 0))),
    }


def _all_layer_classes():
    import importlib
    import pkgutil

    import bnutils
    from bnutils.layers import Layer, NormLayer

    found = {}
    for info in pkgutil.walk_packages(bnutils.__path__, prefix="bnutils."):
        if info.name.startswith(("bnutils.widgets", "bnutils.checks")):
            continue
        module = importlib.import_module(info.name)
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Layer) and obj not in (Layer, NormLayer) \
                    and obj.__module__ == module.__name__:
                found[obj.__name__] = obj
    return found


LAYER_FACTORIES = _layer_factories()
# notebook 09's normalizer-free layers (bnutils.normfree, bnutils.lab.normfree_runs)
_x2, _x4 = RNG.standard_normal((4, 3)), RNG.standard_normal((2, 3, 4, 4))
LAYER_FACTORIES.update({
    "WSLinear": (lambda: __import__("bnutils.normfree").normfree.WSLinear(3, 2, rng=0), _x2,
                 with_nan(_x2, (0, 2))),
    "WSConv2d": (lambda: __import__("bnutils.normfree").normfree.WSConv2d(3, 2, rng=0), _x4,
                 with_nan(_x4, (0, 0, 0, 0))),
    "AGCModel": (lambda: __import__("bnutils.lab.normfree_runs").lab.normfree_runs.AGCModel(
        Linear(3, 2, rng=0), clipping=0.01), _x2, with_nan(_x2, (1, 1))),
})


def test_every_layer_class_has_a_stale_cache_case():
    missing = sorted(set(_all_layer_classes()) - set(LAYER_FACTORIES))
    assert not missing, f"add a stale-cache case for {missing} to LAYER_FACTORIES"


@pytest.mark.parametrize("mode", ["train", "eval"])
@pytest.mark.parametrize("name", sorted(LAYER_FACTORIES))
def test_backward_after_a_forward_that_raised_raises(name, mode):
    make, x, bad = LAYER_FACTORIES[name]
    layer = make()
    if mode == "eval":
        layer.eval()
    out = layer.forward(x)
    layer.backward(np.ones_like(out))                      # a complete step works
    before = {k: np.copy(v) for k, v in layer.grads().items()}
    with pytest.raises((ValueError, TypeError)):
        layer.forward(bad)
    with pytest.raises(RuntimeError, match="backward called before forward"):
        layer.backward(np.ones_like(out))
    for k, v in layer.grads().items():                     # and no gradient was overwritten
        np.testing.assert_array_equal(v, before[k], err_msg=f"{name}.d{k} changed")


def test_sequential_does_not_mix_a_new_linear_input_with_bn_s_old_cache():
    """Issue 17: Linear(new x) then BN raising on the overflowing activations; backward used to
    combine the new Linear input with BN's cache of the previous batch."""
    net = Sequential(Linear(3, 3, rng=0), BatchNorm(3))
    net.forward(X)
    net.backward(np.ones((4, 3)))
    with pytest.raises(ValueError):
        net.forward(X * 1e307)                             # Linear accepts it; BN sees inf
    with pytest.raises(RuntimeError, match="Sequential.backward called before forward"):
        net.backward(np.ones((4, 3)))
    net.forward(X)                                         # and it recovers
    assert net.backward(np.ones((4, 3))).shape == X.shape


def test_batchnorm_checks_momentum_and_eps_on_assignment():
    bn = BatchNorm(3)
    with pytest.raises(ValueError, match=r"momentum must lie in \[0, 1\], got 5.0"):
        bn.momentum = 5
    with pytest.raises(TypeError, match="momentum must be a real number"):
        bn.momentum = "0.1"
    with pytest.raises(ValueError, match="eps must be > 0"):
        bn.eps = 0.0
    assert bn.momentum == 0.1 and bn.eps == 1e-5           # unchanged
    bn.momentum = 1
    bn.forward(X)
    np.testing.assert_allclose(bn.running_var, X.var(axis=0, ddof=1))


def test_train_seeds_a_noisy_bn_built_without_rng():
    """Issue 17: train(seed=...) did not seed NoisyBatchNorm(rng=None): two runs differed."""
    from bnutils.layers import iter_layers, seed_random_layers
    from bnutils.noisy_bn import NoisyBatchNorm

    X_, y_ = RNG.standard_normal((32, 3)), np.arange(32) % 2

    def run(seed, rng=None):
        net = Sequential(Linear(3, 4, rng=0), NoisyBatchNorm(4, rng=rng), ReLU(),
                         NoisyBatchNorm(4, rng=rng), Linear(4, 2, rng=1))
        history = train(net, X_, y_, lr=0.1, steps=6, batch_size=8, seed=seed)
        return history.loss, net

    (loss_a, net_a), (loss_b, _), (loss_c, _) = run(3), run(3), run(4)
    assert loss_a == loss_b                                  # the same seed: identical runs
    assert loss_a != loss_c
    noisy = [layer for layer in iter_layers(net_a) if isinstance(layer, NoisyBatchNorm)]
    assert not np.array_equal(noisy[0].last_scale, noisy[1].last_scale)   # two streams
    # a layer given its own rng keeps it
    explicit = NoisyBatchNorm(2, rng=5)
    assert seed_random_layers(explicit, 0) == 0 and not explicit.seed_from_train
    with pytest.raises(TypeError, match="seed must be an integer"):
        train(Linear(3, 2, rng=0), X_, y_, lr=0.1, steps=1, batch_size=8, seed=1.5)
