"""Elementwise losses of several inputs (SPEC section 8)."""
import math

import numpy as np

from .. import reference as R
from .._spec import DataCheck, LossSpec, Operand, Param, pred, target
from ._common import NONNEGATIVE, POSITIVE, REAL, SIGNS, normal, signs

_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


def _derive_gaussian_nll(v, cdt):
    """eps, and the constant 0.5 log(2 pi) of full=True (else 0)."""
    return v["eps"], (_HALF_LOG_2PI if v["full"] else 0.0), 0.0, 0.0


def _jax_gaussian_nll(J, p, t, var, k):
    v = J.np.maximum(var, k["eps"])
    return J.np.mean(0.5 * (J.np.log(v) + (p - t) ** 2 / v))


def _jax_kl_div(J, p, t, k):
    if k["log_target"]:
        return J.np.mean(J.np.exp(t) * (t - p))
    return J.np.mean(J.np.where(t == 0, 0.0, t * (J.np.log(J.np.where(t == 0, 1.0, t)) - p)))


def _torch_kl_div(F, p, t, k, r="mean"):
    import warnings
    with warnings.catch_warnings():     # torch's notice that "mean" is not batchmean
        warnings.simplefilter("ignore", UserWarning)
        return F.kl_div(p, t, reduction=r, log_target=k["log_target"])


# ------------------------------------------------- idiomatic NumPy (bench "numpy")
# What a user writes in a few lines (value = the mean, gradient with respect
# to each differentiable input; _spec.LossSpec.peers["numpy"]).  N is numpy.

def _np_gaussian_nll(N, p, t, var, k, grad=True):
    v = N.maximum(var, k["eps"])                      # gradient straight through the clamp
    d = p - t
    val = N.mean(0.5 * (N.log(v) + d ** 2 / v)) + (_HALF_LOG_2PI if k["full"] else 0.0)
    if not grad:
        return val
    return val, (d / v / p.size, 0.5 * (1 / v - d ** 2 / v ** 2) / p.size)


def _np_kl_div(N, p, t, k, grad=True):                # targets > 0 (log(0) is not handled)
    if k["log_target"]:
        e = N.exp(t)
        v = N.mean(e * (t - p))
        return (v, -e / p.size) if grad else v
    v = N.mean(t * (N.log(t) - p))
    return (v, -t / p.size) if grad else v


def _np_margin_ranking(N, x1, x2, y, k, grad=True):
    m = -y * (x1 - x2) + k["margin"]
    v = N.mean(N.maximum(0, m))
    if not grad:
        return v
    g = N.where(m > 0, -y, 0) / x1.size
    return v, (g, -g)


def _softmax_rows(rng, shape):
    z = rng.standard_normal(shape)
    if z.size == 0 or z.ndim == 0:
        return np.full(shape, 1.0)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


DECLARATIONS = [
    LossSpec(
        name="gaussian_nll", family="elementwise", kernel="gaussian_nll",
        summary="Gaussian negative log-likelihood (heteroscedastic regression)",
        formula="0.5*(log(v) + (y_pred - y_true)**2 / v) [+ 0.5*log(2*pi) if full],  "
                "v = max(var, eps), straight-through clamp",
        operands=(pred(doc="predicted means"), target(doc="observations"),
                  Operand("var", "input", True, "broadcast", "predicted variances (>= 0)")),
        params=(Param("full", False, REAL, boolean=True, doc="add the constant 0.5*log(2*pi)"),
                Param("eps", 1e-6, POSITIVE, doc="the clamp of var (straight-through)")),
        derive=_derive_gaussian_nll,
        checks=(DataCheck("var", NONNEGATIVE, "variances >= 0"),),
        reference=R._gaussian_nll,
        sampler=dict(y_pred=normal(), y_true=normal(),
                     var=lambda rng, shape: rng.uniform(0.2, 2.0, shape)),
        peers=dict(
            numpy=_np_gaussian_nll,
            torch=lambda F, p, t, var, k, r="mean": F.gaussian_nll_loss(
                p, t, var, full=k["full"], eps=k["eps"], reduction=r),
            jax=_jax_gaussian_nll)),
    LossSpec(
        name="kl_div", family="elementwise", kernel="kl_div",
        summary="Kullback-Leibler divergence (log-probability predictions)",
        formula="t*(log(t) - y_pred), 0 where t == 0; log_target: exp(t)*(t - y_pred)",
        operands=(pred(doc="log-probabilities"), target(doc="probabilities (log_target: "
                                                          "log-probabilities)")),
        params=(Param("log_target", False, REAL, boolean=True,
                      doc="y_true holds log-probabilities"),),
        kernel_with_flag=("log_target", "kl_div_log"),
        extra_reductions=("batchmean",),
        reference=R._kl_div,
        sampler=dict(y_pred=lambda rng, shape: np.log(_softmax_rows(rng, shape)),
                     y_true=_softmax_rows),
        peers=dict(
            numpy=_np_kl_div,
            torch=_torch_kl_div,
            jax=_jax_kl_div)),
    LossSpec(
        name="margin_ranking", family="elementwise", kernel="margin_ranking",
        summary="Margin ranking loss",
        formula="max(0, -y*(x1 - x2) + margin),  y in {-1, 1}",
        operands=(pred("x1", "first scores"),
                  Operand("x2", "input", True, "broadcast", "second scores"),
                  target("y", "which should rank higher: 1 (x1) or -1 (x2)")),
        params=(Param("margin", 0.0, REAL, "a", doc="the margin"),),
        checks=(DataCheck("y", SIGNS, "labels -1 or 1"),),
        reference=R._margin_ranking,
        sampler=dict(x1=normal(), x2=normal(), y=signs),
        peers=dict(
            numpy=_np_margin_ranking,
            torch=lambda F, x1, x2, y, k, r="mean": F.margin_ranking_loss(
                x1, x2, y, margin=k["margin"], reduction=r),
            jax=lambda J, x1, x2, y, k: J.np.mean(J.np.maximum(0, -y * (x1 - x2) + k["margin"])))),
]

