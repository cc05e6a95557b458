"""Typical valid inputs for every loss: used by the benchmarks, the tests and
the examples, so that each loss needs one row here and nowhere else.

``make_inputs(name, shape, dtype, rng)`` returns ``(y_pred, y_true, kwargs)``.
For class losses, ``shape`` is the logits' shape with the classes LAST
(``(N, C)``) and labels are int64.
"""
import numpy as np


def _normal(scale=1.0):
    return lambda rng, shape: rng.standard_normal(shape) * scale


def _labels01(rng, shape):
    return (rng.random(shape) < 0.5).astype(np.float64)


def _signs(rng, shape):
    return np.where(rng.random(shape) < 0.5, -1.0, 1.0)


def _log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


# name: (y_pred sampler, y_true sampler or "labels", family)
SAMPLERS = {
    "mse": (_normal(), _normal()),
    "mae": (_normal(), _normal()),
    "huber": (_normal(), _normal()),
    "smooth_l1": (_normal(), _normal()),
    "log_cosh": (_normal(2.0), _normal()),
    "quantile": (_normal(), _normal()),
    "poisson": (_normal(), lambda rng, shape: rng.poisson(1.0, shape).astype(np.float64)),
    "tweedie": (_normal(), lambda rng, shape: np.where(rng.random(shape) < 0.3, 0.0,
                                                      rng.gamma(2.0, 1.0, shape))),
    "binary_cross_entropy": (lambda rng, shape: rng.uniform(0.001, 0.999, shape), _labels01),
    "binary_cross_entropy_with_logits": (_normal(3.0), _labels01),
    "sigmoid_focal": (_normal(3.0), _labels01),
    "hinge": (_normal(), _signs),
    "squared_hinge": (_normal(), _signs),
    "cross_entropy": (_normal(3.0), "labels"),
    "nll": (lambda rng, shape: _log_softmax(rng.standard_normal(shape) * 3.0), "labels"),
    "multi_margin": (_normal(), "labels"),
}


def make_inputs(name, shape, dtype=np.float32, rng=None):
    """(y_pred, y_true, kwargs) of a typical call of loss `name`."""
    rng = np.random.default_rng(0) if rng is None else rng
    pred, true = SAMPLERS[name]
    shape = tuple(shape) if np.ndim(shape) else (int(shape),)
    y_pred = np.asarray(pred(rng, shape), dtype=dtype)
    if isinstance(true, str):           # class labels over the last axis
        y_true = rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64)
    else:
        y_true = np.asarray(true(rng, shape), dtype=dtype)
    return y_pred, y_true, {}
