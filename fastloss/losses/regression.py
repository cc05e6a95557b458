"""Elementwise regression losses (SPEC section 5).  d = y_pred - y_true."""
import numpy as np

from .. import reference as R
from .._spec import DataCheck, Domain, LossSpec, Param
from ._common import LOG2, NONNEGATIVE, POSITIVE, UNIT_OPEN, normal, torch_reduce

_F32_TRUE_MIN = float(np.finfo(np.float32).smallest_subnormal)


def _derive_quantile(v, cdt):
    """q and q - 1 (exact in double; q - 1 stays below 0 in float32 when q
    rounds to 1).  q > 0 stays > 0 in float32 (q * inf is inf, not NaN): a
    q below the smallest float32 subnormal is taken as that subnormal (an
    absolute change below 1.5e-45)."""
    q = v["q"]
    if cdt == np.float32:
        q = max(q, _F32_TRUE_MIN)
    return q, v["q"] - 1.0, 0.0, 0.0


def _derive_tweedie(v, cdt):
    """2 - power and 1 - power, exact in double for power in (1, 2); in
    float32 power itself would round to 1 or 2 near the edges."""
    rho = v["power"]
    return 2.0 - rho, 1.0 - rho, 0.0, 0.0


def _jax_huber(J, p, t, k):
    d = J.np.abs(p - t)
    delta = k["delta"]
    return J.np.mean(J.np.where(d <= delta, 0.5 * d * d, delta * (d - 0.5 * delta)))


def _jax_smooth_l1(J, p, t, k):
    d = J.np.abs(p - t)
    beta = k["beta"]
    return J.np.mean(J.np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta))


def _torch_log_cosh(F, p, t, k, r="mean"):
    d = p - t
    return torch_reduce(d + F.softplus(-2.0 * d) - LOG2, r)


def _torch_tweedie(F, p, t, k, r="mean"):
    a = 2 - k["power"]
    b = 1 - k["power"]
    return torch_reduce((a * p).exp() / a - t * (b * p).exp() / b, r)


def _jax_tweedie(J, p, t, k):
    a = 2 - k["power"]
    b = 1 - k["power"]
    return J.np.mean(J.np.exp(a * p) / a - t * J.np.exp(b * p) / b)


# ------------------------------------------------- idiomatic NumPy (bench "numpy")
# What a user writes in a few lines: value = the mean, gradient = its
# derivative with respect to each differentiable input (SPEC section 6,
# _spec.LossSpec.peers["numpy"]).  N is numpy.

def _np_mse(N, p, t, k, grad=True):
    d = p - t
    v = N.mean(d ** 2)
    return (v, 2 * d / d.size) if grad else v


def _np_mae(N, p, t, k, grad=True):
    d = p - t
    v = N.mean(N.abs(d))
    return (v, N.sign(d) / d.size) if grad else v


def _np_huber(N, p, t, k, grad=True):
    d, delta = p - t, k["delta"]
    a = N.abs(d)
    v = N.mean(N.where(a <= delta, 0.5 * d ** 2, delta * (a - 0.5 * delta)))
    return (v, N.clip(d, -delta, delta) / d.size) if grad else v


def _np_smooth_l1(N, p, t, k, grad=True):
    d, beta = p - t, k["beta"]
    if beta == 0:
        return _np_mae(N, p, t, k, grad)
    a = N.abs(d)
    v = N.mean(N.where(a < beta, 0.5 * d ** 2 / beta, a - 0.5 * beta))
    return (v, N.clip(d / beta, -1, 1) / d.size) if grad else v


def _np_log_cosh(N, p, t, k, grad=True):
    d = p - t          # the textbook form: cosh overflows for |d| > ~89 (float32)
    v = N.mean(N.log(N.cosh(d)))
    return (v, N.tanh(d) / d.size) if grad else v


def _np_quantile(N, p, t, k, grad=True):
    r, q = t - p, k["q"]
    v = N.mean(N.maximum(q * r, (q - 1) * r))
    return (v, N.where(r < 0, 1 - q, -q) / r.size) if grad else v


def _np_poisson(N, p, t, k, grad=True):
    e = N.exp(p)
    v = N.mean(e - t * p)
    return (v, (e - t) / p.size) if grad else v


def _np_tweedie(N, p, t, k, grad=True):
    a, b = 2 - k["power"], 1 - k["power"]
    ea, eb = N.exp(a * p), N.exp(b * p)
    v = N.mean(ea / a - t * eb / b)
    return (v, (ea - t * eb) / p.size) if grad else v


def _elementwise(name, kernel, summary, formula, params=(), **kw):
    return LossSpec(name=name, family="elementwise", kernel=kernel, summary=summary,
                    formula=formula, params=tuple(params), **kw)


DECLARATIONS = [
    _elementwise(
        "mse", "mse", "Mean squared error", "d**2,  d = y_pred - y_true",
        reference=R._mse, sampler=dict(y_pred=normal(), y_true=normal()),
        peers=dict(numpy=_np_mse,
                   torch=lambda F, p, t, k, r="mean": F.mse_loss(p, t, reduction=r),
                   jax=lambda J, p, t, k: J.np.mean(J.np.square(p - t)),
                   sklearn=lambda S, k: (S.HalfSquaredError(), 2.0))),
    _elementwise(
        "mae", "mae", "Mean absolute error", "abs(d)  (gradient 0 at d == 0)",
        reference=R._mae, sampler=dict(y_pred=normal(), y_true=normal()),
        peers=dict(numpy=_np_mae,
                   torch=lambda F, p, t, k, r="mean": F.l1_loss(p, t, reduction=r),
                   jax=lambda J, p, t, k: J.np.mean(J.np.abs(p - t)),
                   sklearn=lambda S, k: (S.AbsoluteError(), 1.0))),
    _elementwise(
        "huber", "huber", "Huber loss",
        "0.5*d**2 if abs(d) <= delta else delta*(abs(d) - 0.5*delta)",
        [Param("delta", 1.0, POSITIVE, "a", doc="threshold between the quadratic and linear parts")],
        reference=R._huber, sampler=dict(y_pred=normal(), y_true=normal()),
        peers=dict(numpy=_np_huber,
                   torch=lambda F, p, t, k, r="mean": F.huber_loss(p, t, delta=k["delta"],
                                                                  reduction=r),
                   jax=_jax_huber,
                   sklearn=lambda S, k: (S.HuberLoss(delta=k["delta"]), 1.0))),
    _elementwise(
        "smooth_l1", "smooth_l1", "Smooth L1 loss",
        "0.5*d**2/beta if abs(d) < beta else abs(d) - 0.5*beta  (beta == 0: mae)",
        [Param("beta", 1.0, NONNEGATIVE, "a", doc="threshold; 0 gives mae")],
        reference=R._smooth_l1, sampler=dict(y_pred=normal(), y_true=normal()),
        peers=dict(numpy=_np_smooth_l1,
                   torch=lambda F, p, t, k, r="mean": F.smooth_l1_loss(p, t, beta=k["beta"],
                                                                      reduction=r),
                   jax=_jax_smooth_l1)),
    _elementwise(
        "log_cosh", "log_cosh", "Log-cosh loss", "log(cosh(d)), without overflow",
        reference=R._log_cosh, sampler=dict(y_pred=normal(2.0), y_true=normal()),
        peers=dict(numpy=_np_log_cosh,
                   torch=_torch_log_cosh,
                   jax=lambda J, p, t, k: J.np.mean(J.np.logaddexp(p - t, t - p) - LOG2))),
    _elementwise(
        "quantile", "quantile", "Quantile (pinball) loss",
        "max(q*(y_true - y_pred), (q - 1)*(y_true - y_pred))",
        [Param("q", 0.5, UNIT_OPEN, "a", doc="the quantile, in (0, 1)")],
        derive=_derive_quantile,
        reference=R._quantile, sampler=dict(y_pred=normal(), y_true=normal()),
        peers=dict(
            numpy=_np_quantile,
            torch=lambda F, p, t, k, r="mean": torch_reduce(
                (t - p).mul(k["q"]).maximum((t - p).mul(k["q"] - 1)), r),
            jax=lambda J, p, t, k: J.np.mean(J.np.maximum(k["q"] * (t - p),
                                                          (k["q"] - 1) * (t - p))),
            sklearn=lambda S, k: (S.PinballLoss(quantile=k["q"]), 1.0))),
    _elementwise(
        "poisson", "poisson", "Poisson deviance on a log-rate",
        "exp(y_pred) - y_true*y_pred  (y_pred is a log-rate)",
        checks=(DataCheck("y_true", NONNEGATIVE, "non-negative targets"),),
        reference=R._poisson,
        sampler=dict(y_pred=normal(),
                     y_true=lambda rng, shape: rng.poisson(1.0, shape).astype(np.float64)),
        peers=dict(
            numpy=_np_poisson,
            torch=lambda F, p, t, k, r="mean": F.poisson_nll_loss(
                p, t, log_input=True, full=False, reduction=r),
            jax=lambda J, p, t, k: J.np.mean(J.np.exp(p) - t * p),
            sklearn=lambda S, k: (S.HalfPoissonLoss(), 1.0))),
    _elementwise(
        "tweedie", "tweedie", "Tweedie deviance with log link (HalfTweedieLoss)",
        "exp((2-power)*y_pred)/(2-power) - y_true*exp((1-power)*y_pred)/(1-power)",
        [Param("power", 1.5, Domain(1.0, 2.0, True, True), "a", doc="Tweedie power, in (1, 2)")],
        checks=(DataCheck("y_true", NONNEGATIVE, "non-negative targets"),),
        derive=_derive_tweedie,
        reference=R._tweedie,
        sampler=dict(y_pred=normal(),
                     y_true=lambda rng, shape: np.where(rng.random(shape) < 0.3, 0.0,
                                                       rng.gamma(2.0, 1.0, shape))),
        peers=dict(numpy=_np_tweedie,
                   torch=_torch_tweedie, jax=_jax_tweedie,
                   sklearn=lambda S, k: (S.HalfTweedieLoss(power=k["power"]), 1.0))),
]
