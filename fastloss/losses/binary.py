"""Binary losses (SPEC section 5): targets in [0, 1] (soft labels allowed)
or, for the hinge losses, labels in {-1, +1} (0 means -1)."""
import numpy as np

from .. import reference as R
from .._spec import ArrayParam, DataCheck, LossSpec, Param
from ._common import (FINITE_NONNEGATIVE, HINGE_LABELS, NONNEGATIVE, UNIT, labels01, normal,
                      signs, torch_reduce, uniform)

_F32_MAX = float(np.finfo(np.float32).max)
_TARGETS01 = DataCheck("y_true", UNIT, "targets in [0, 1]")
_HINGE = DataCheck("y_true", HINGE_LABELS, "labels -1 or +1 (0 means -1)")


def _derive_focal(v, cdt):
    """alpha (-1: none) and gamma, capped at the largest float32: for any
    gamma beyond it m**gamma is 0 for every m < 1 representable in float32 or
    float64 and 1 at m = 1, so the cap changes no result, while gamma rounded
    to inf in float32 would make inf * log(1) = NaN."""
    return v["alpha"], min(v["gamma"], _F32_MAX), 0.0, 0.0


def _torch_focal(F, x, t, k, r="mean"):
    """torchvision.ops.sigmoid_focal_loss."""
    p = x.sigmoid()
    ce = F.binary_cross_entropy_with_logits(x, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** k["gamma"]
    if k["alpha"] is not None:
        loss = (k["alpha"] * t + (1 - k["alpha"]) * (1 - t)) * loss
    return torch_reduce(loss, r)


def _jax_bce(J, p, t, k):
    lp = J.np.maximum(J.np.log(p), -100.0)
    l1p = J.np.maximum(J.np.log1p(-p), -100.0)
    return J.np.mean(-(t * lp + (1 - t) * l1p))


def _jax_bce_logits(J, x, t, k):
    return J.np.mean(-t * J.nn.log_sigmoid(x) - (1 - t) * J.nn.log_sigmoid(-x))


def _jax_focal(J, x, t, k):
    p = J.nn.sigmoid(x)
    ce = -t * J.nn.log_sigmoid(x) - (1 - t) * J.nn.log_sigmoid(-x)
    p_t = p * t + (1 - p) * (1 - t)
    loss = ce * (1 - p_t) ** k["gamma"]
    if k["alpha"] is not None:
        loss = (k["alpha"] * t + (1 - k["alpha"]) * (1 - t)) * loss
    return J.np.mean(loss)


# ------------------------------------------------- idiomatic NumPy (bench "numpy")
# What a user writes in a few lines (value = the mean, gradient with respect
# to each differentiable input; _spec.LossSpec.peers["numpy"]).  N is numpy.

def _np_bce(N, p, t, k, grad=True):
    v = -N.mean(t * N.log(p) + (1 - t) * N.log(1 - p))
    return (v, (p - t) / (p * (1 - p)) / p.size) if grad else v


def _np_bce_logits(N, x, t, k, grad=True):
    v = N.mean(N.logaddexp(0, x) - t * x)
    return (v, (1 / (1 + N.exp(-x)) - t) / x.size) if grad else v


def _np_focal(N, x, t, k, grad=True):
    p = 1 / (1 + N.exp(-x))
    ce = N.logaddexp(0, x) - t * x
    m = 1 - (p * t + (1 - p) * (1 - t))               # 1 - p_t
    a, g = k["alpha"], k["gamma"]
    w = 1.0 if a is None else a * t + (1 - a) * (1 - t)
    v = N.mean(w * ce * m ** g)
    if not grad:
        return v
    dm = -(2 * t - 1) * p * (1 - p)                   # d(1 - p_t)/dx
    return v, w * ((p - t) * m ** g + ce * g * m ** (g - 1) * dm) / x.size


def _np_hinge(N, x, s, k, grad=True):                 # labels -1/+1
    m = 1 - s * x
    v = N.mean(N.maximum(0, m))
    return (v, N.where(m > 0, -s, 0) / x.size) if grad else v


def _np_squared_hinge(N, x, s, k, grad=True):
    m = N.maximum(0, 1 - s * x)
    v = N.mean(m ** 2)
    return (v, -2 * s * m / x.size) if grad else v


def _binary(name, kernel, summary, formula, params=(), **kw):
    return LossSpec(name=name, family="elementwise", kernel=kernel, summary=summary,
                    formula=formula, params=tuple(params), **kw)


DECLARATIONS = [
    _binary(
        "binary_cross_entropy", "bce", "Binary cross-entropy on probabilities",
        "-(t*log(p) + (1-t)*log(1-p)), each log clamped at -100",
        checks=(DataCheck("y_pred", UNIT, "probabilities in [0, 1]"), _TARGETS01),
        reference=R._binary_cross_entropy,
        sampler=dict(y_pred=uniform(0.001, 0.999), y_true=labels01),
        peers=dict(numpy=_np_bce,
                   torch=lambda F, p, t, k, r="mean": F.binary_cross_entropy(p, t, reduction=r),
                   jax=_jax_bce)),
    _binary(
        "binary_cross_entropy_with_logits", "bce_logits", "Binary cross-entropy on logits",
        "-(pos_weight*t*log(sigmoid(x)) + (1-t)*log(1-sigmoid(x))), stable for any x",
        array_params=(ArrayParam("pos_weight", NONNEGATIVE,
                                 "weight of the positive term, broadcast to y_pred"),),
        kernel_with_array="bce_logits_pw",
        checks=(_TARGETS01,),
        reference=R._binary_cross_entropy_with_logits,
        sampler=dict(y_pred=normal(3.0), y_true=labels01),
        peers=dict(
            numpy=_np_bce_logits,
            torch=lambda F, p, t, k, r="mean": F.binary_cross_entropy_with_logits(
                p, t, pos_weight=k.get("pos_weight"), reduction=r),
            jax=_jax_bce_logits,
            sklearn=lambda S, k: (S.HalfBinomialLoss(), 1.0))),
    _binary(
        "sigmoid_focal", "sigmoid_focal", "Sigmoid focal loss (Lin et al.)",
        "alpha_t * bce_with_logits(x, t) * (1 - p_t)**gamma",
        [Param("alpha", 0.25, UNIT, "a", allow_none=True, none_value=-1.0,
               doc="positive-class weight in [0, 1]; None: no weighting"),
         Param("gamma", 2.0, FINITE_NONNEGATIVE, "b", doc="focusing exponent, finite, >= 0")],
        derive=_derive_focal, variants=("sigmoid_focal_g2",),
        checks=(_TARGETS01,),
        reference=R._sigmoid_focal,
        sampler=dict(y_pred=normal(3.0), y_true=labels01),
        peers=dict(numpy=_np_focal, torch=_torch_focal, jax=_jax_focal)),
    _binary(
        "hinge", "hinge", "Hinge loss",
        "max(0, 1 - s*x), labels s in {-1, +1} (0 means -1)",
        checks=(_HINGE,),
        reference=R._hinge, sampler=dict(y_pred=normal(), y_true=signs),
        peers=dict(  # the sampled labels are already -1/+1
            numpy=_np_hinge,
            torch=lambda F, x, s, k, r="mean": torch_reduce((1 - s * x).clamp(min=0), r),
            jax=lambda J, x, s, k: J.np.mean(J.np.maximum(0, 1 - s * x)))),
    _binary(
        "squared_hinge", "squared_hinge", "Squared hinge loss",
        "max(0, 1 - s*x)**2, labels s in {-1, +1} (0 means -1)",
        checks=(_HINGE,),
        reference=R._squared_hinge, sampler=dict(y_pred=normal(), y_true=signs),
        peers=dict(
            numpy=_np_squared_hinge,
            torch=lambda F, x, s, k, r="mean": torch_reduce((1 - s * x).clamp(min=0).square(), r),
            jax=lambda J, x, s, k: J.np.mean(J.np.square(J.np.maximum(0, 1 - s * x))))),
]
