"""Pure-NumPy reference implementation of every fastloss loss (SPEC section 5).

This module is the test oracle, the benchmark baseline and the written-down
math of the library.  It depends on NumPy and the standard library only and
imports nothing from the rest of ``fastloss``: the loss objects are made from
the declarations (``fastloss/losses``) by ``fastloss._registry``, which
shares with it the parameter domains and data checks, never the math.

Structure
---------
* One small pure function per loss computes the math on arrays that are
  already converted, broadcast and validated.  It returns a ``_Parts`` of
  functions of no arguments, each computing one output when called, so that
  every method computes only what it returns (``__call__`` the value,
  ``grad`` the gradient, ``value_and_grad`` both, sharing what they have in
  common, ``hessian`` the Hessian):

  - elementwise losses: ``_mse(p, t) -> _Parts(value=l, grad=g, hess=h)``
    with ``l`` the loss per element, ``g`` its derivative with respect to
    ``p`` and ``h`` the second derivative; loss parameters come as keyword
    arguments (``_huber(p, t, delta)``).
  - class losses: ``_cross_entropy(z, y, *, soft, valid, cw, **params) ->
    _Parts(value=n, grad=g, hess=h, weight=dw)`` with the logits ``z`` of
    shape ``S + (C,)`` (class axis last), ``y`` the integer labels of shape
    ``S`` (ignored samples already replaced by 0, ``valid`` the mask of
    samples that are not ignored) or the class probabilities of shape
    ``S + (C,)`` (``soft=True``), ``cw`` the class weights of shape ``(C,)``.
    ``n`` is the per-sample numerator of the loss, ``dw`` its per-sample
    weight in the denominator of ``"mean"``, ``g`` and ``h`` the derivative
    and the diagonal second derivative of ``n`` with respect to ``z``.

  Inside such a function, what all of value, gradient and Hessian need is
  computed at once; what only some of them share is a ``functools.cache``-d
  function of no arguments (computed at most once); the rest is computed in
  the one output that needs it.

* One generic wrapper, :class:`ReferenceLoss`, turns such a function into a
  loss object with the public signature of ``fastloss`` (``__call__``,
  ``grad``, ``value_and_grad``, ``hessian``): argument checks, dtype rules,
  broadcasting, sample weights, reductions over ``axis`` and the scaling of the
  gradient and Hessian are written once, there.

* ``LOSSES`` maps each name to its :class:`ReferenceLoss`; every loss is also a
  module-level name (``reference.huber``).

Reductions, with per-sample numerator ``n``, denominator weight ``dw`` (1 for
elementwise losses) and sample weights ``s``::

    "none": s*n     "sum": sum(s*n, axis)     "mean": sum(s*n, axis) / sum(s*dw, axis)

and the gradient/Hessian are those of the SUM of the returned values:
``s*g/W`` with ``W`` the mean's denominator broadcast back (1 for ``"sum"`` and
``"none"``).
"""

from __future__ import annotations

import math
import numbers
import operator
import warnings
from collections import namedtuple
from functools import cache

import numpy as np

__all__ = ["ReferenceLoss", "LOSSES"]

_LOG2 = math.log(2.0)
_REDUCTIONS = ("mean", "sum", "none")


# ---------------------------------------------------------------------------
# Numerically stable building blocks (inputs and outputs in the same dtype).
# ---------------------------------------------------------------------------


def _softplus(x):
    """log(1 + exp(x)) without overflow, accurate in both tails."""
    return np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))


def _sigmoid(x):
    """1 / (1 + exp(-x)) without overflow; exact limits at +-inf."""
    e = np.exp(-np.abs(x))  # in (0, 1]
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _sigmoid_prime(x):
    """sigmoid(x) * sigmoid(-x) = e / (1 + e)**2 with e = exp(-|x|)."""
    e = np.exp(-np.abs(x))
    return e / ((1 + e) * (1 + e))


def _times(a, b):
    """a * b, with 0 wherever a == 0 (so that 0 * inf is 0: the limit of a
    vanishing coefficient in front of a diverging logarithm)."""
    return np.where(a == 0, 0, a * b)


# ---------------------------------------------------------------------------
# Lazily evaluated outputs
# ---------------------------------------------------------------------------


class _Parts(namedtuple("_Parts", "value grad hess weight", defaults=(None,))):
    """What a per-loss function returns (see the module docstring): each
    output is a function of no arguments that computes its array when called.
    ``weight`` (class losses only) is the per-sample weight in the denominator
    of ``"mean"``."""

    __slots__ = ()

    def map(self, f):
        """The parts with ``f`` applied to each output, still on demand."""
        return _Parts(*(None if x is None else _then(x, f) for x in self))


def _then(x, f):
    return lambda: f(x())


# ---------------------------------------------------------------------------
# Elementwise losses: (p, t, **params) -> _Parts(loss, dloss/dp, d2loss/dp2)
# p and t are broadcast to the same shape and in the compute dtype.
# ---------------------------------------------------------------------------


def _mse(p, t):
    d = cache(lambda: p - t)
    return _Parts(
        value=lambda: d() * d(),
        grad=lambda: 2 * d(),
        hess=lambda: np.full_like(p, 2),
    )


def _mae(p, t):
    d = cache(lambda: p - t)
    return _Parts(
        value=lambda: np.abs(d()),
        grad=lambda: np.sign(d()),  # sign(0) == 0
        hess=lambda: np.zeros_like(p),
    )


def _huber(p, t, delta):
    d = p - t
    a = np.abs(d)
    quad = a <= delta  # quadratic side includes |d| == delta
    return _Parts(
        value=lambda: np.where(quad, 0.5 * d * d, delta * (a - 0.5 * delta)),
        grad=lambda: np.where(quad, d, delta * np.sign(d)),
        hess=lambda: np.where(quad, 1, 0),
    )


def _smooth_l1(p, t, beta):
    if beta == 0:  # smooth_l1 with beta=0 is mae
        return _mae(p, t)
    d = p - t
    a = np.abs(d)
    quad = a < beta  # linear side includes |d| == beta
    return _Parts(
        value=lambda: np.where(quad, 0.5 * d * d / beta, a - 0.5 * beta),
        grad=lambda: np.where(quad, d / beta, np.sign(d)),
        hess=lambda: np.where(quad, 1 / beta, 0),
    )


def _log_cosh(p, t):
    d = p - t
    a = cache(lambda: np.abs(d))

    def value():
        # small |d|: log(cosh d) = log1p(cosh d - 1) = log1p(2 sinh(d/2)**2)
        s = np.sinh(np.minimum(a(), 10) / 2)
        small = np.log1p(2 * s * s)
        # large |d|: log(cosh d) = |d| - log 2 + log1p(exp(-2|d|)), never overflows
        large = a() - _LOG2 + np.log1p(np.exp(-2 * a()))
        return np.where(a() <= 10, small, large)

    def hess():
        # sech(d)**2 = 4 e / (1 + e)**2 with e = exp(-2|d|) in (0, 1]
        e = np.exp(-2 * a())
        return 4 * e / ((1 + e) * (1 + e))

    return _Parts(value, grad=lambda: np.tanh(d), hess=hess)


def _quantile(p, t, q):
    r = cache(lambda: t - p)
    return _Parts(
        value=lambda: np.where(r() >= 0, q * r(), (q - 1) * r()),
        grad=lambda: np.where(r() < 0, 1 - q, -q),  # at t == p: -q (scikit-learn)
        hess=lambda: np.zeros_like(p),
    )


def _poisson(p, t):
    ep = np.exp(p)

    def value():
        l = ep - _times(t, p)  # 0 * (-inf) -> 0: exp(p) - t*p -> 0 for t = 0
        # p = +inf: exp(p) dominates t*p for every finite t
        return np.where((p == np.inf) & np.isfinite(t), np.inf, l)

    return _Parts(value, grad=lambda: ep - t, hess=lambda: ep)


def _tweedie(p, t, power):
    # scikit-learn's HalfTweedieLoss with log link, without the constant term:
    #   exp((2-rho) p)/(2-rho) - t exp((1-rho) p)/(1-rho); both terms >= 0 for t >= 0.
    a = 2 - power
    b = power - 1  # 1 - rho = -b
    e2 = np.exp(a * p)
    e1 = np.exp(-b * p)
    te1 = _times(t, e1)  # t = 0 with p = -inf: 0
    return _Parts(
        value=lambda: e2 / a + te1 / b,
        grad=lambda: e2 - te1,
        hess=lambda: a * e2 + b * te1,
    )


def _binary_cross_entropy(p, t):
    # -(t*max(log p, -100) + (1-t)*max(log(1-p), -100)), PyTorch's clamp;
    # derivatives are those of this expression (0 where a log is clamped).
    logp = np.log(p)
    log1mp = np.log1p(-p)
    okp = logp >= -100
    ok1mp = log1mp >= -100
    u = 1 - t
    one_m_p = cache(lambda: 1 - p)

    def value():
        lp = np.where(okp, logp, -100)
        l1p = np.where(ok1mp, log1mp, -100)
        return -(t * lp + u * l1p)

    def grad():
        return np.where(okp, -t / p, 0) + np.where(ok1mp, u / one_m_p(), 0)

    def hess():
        q = one_m_p()
        return np.where(okp, t / (p * p), 0) + np.where(ok1mp, u / (q * q), 0)

    return _Parts(value, grad, hess)


def _binary_cross_entropy_with_logits(x, t, pos_weight=None):
    # -(pw t log sigmoid(x) + (1-t) log(1 - sigmoid(x)))
    #   = pw t softplus(-x) + (1-t) softplus(x)
    pt = t if pos_weight is None else pos_weight * t
    u = 1 - t
    return _Parts(
        value=lambda: _times(pt, _softplus(-x)) + _times(u, _softplus(x)),
        # sigmoids are in [0, 1]: no 0*inf
        grad=lambda: u * _sigmoid(x) - pt * _sigmoid(-x),
        hess=lambda: (u + pt) * _sigmoid_prime(x),
    )


def _sigmoid_focal(x, t, alpha, gamma):
    # torchvision.ops.sigmoid_focal_loss:
    #   ce = bce_with_logits(x, t), p_t = p t + (1-p)(1-t),
    #   f  = alpha_t * ce * m**gamma   with m = 1 - p_t = (1-t) sig(x) + t sig(-x)
    # With v = sig(x) sig(-x), c1 = dce/dx = (1-t) sig(x) - t sig(-x),
    # dm/dx = (1-2t) v and r = v/m (finite where m -> 0):
    #   f'  = alpha_t m**g [c1 + g ce (1-2t) r]
    #   f'' = alpha_t m**g [v + 2 g c1 (1-2t) r + g(g-1) ce (1-2t)**2 r**2
    #                       + g ce (1-2t) r (1 - 2 sig(x))]
    u = 1 - t
    sx = _sigmoid(x)
    snx = _sigmoid(-x)
    ce = _times(t, _softplus(-x)) + _times(u, _softplus(x))
    m = u * sx + t * snx
    mg = m**gamma
    at = 1 if alpha is None else alpha * t + (1 - alpha) * u

    @cache
    def slope():
        """(c1, r, k, ce r): what the gradient and the Hessian share."""
        c1 = u * sx - t * snx
        # r = v/m = 1 / ((1+e) (a_s + a_l/e)), e = exp(-|x|), a_s (a_l) the weight of
        # the small (large) sigmoid in m: no 0/0 even when both v and m underflow.
        e = np.exp(-np.abs(x))
        a_s = np.where(x >= 0, t, u)
        a_l = np.where(x >= 0, u, t)
        r = 1 / ((1 + e) * (a_s + np.where(a_l == 0, 0, a_l / e)))
        k = 1 - 2 * t
        cer = _times(r, ce)  # r -> 0 faster than ce -> inf
        return c1, r, k, cer

    def grad():
        c1, r, k, cer = slope()
        return at * mg * (c1 + gamma * k * cer)

    def hess():
        c1, r, k, cer = slope()
        v = _sigmoid_prime(x)
        return at * mg * (
            v
            + 2 * gamma * k * c1 * r
            + gamma * (gamma - 1) * k * k * cer * r
            + gamma * k * cer * (snx - sx)
        )

    return _Parts(value=lambda: at * ce * mg, grad=grad, hess=hess)


def _hinge_sign(t):
    return np.where(t == 0, -1, t)  # labels {0, 1} -> {-1, +1}


def _hinge(x, t):
    s = cache(lambda: _hinge_sign(t))
    z = cache(lambda: 1 - s() * x)
    return _Parts(
        value=lambda: np.maximum(z(), 0),
        grad=lambda: np.where(z() > 0, -s(), 0),  # margin s*x exactly 1: 0
        hess=lambda: np.zeros_like(x),
    )


def _squared_hinge(x, t):
    s = _hinge_sign(t)
    z = 1 - s * x
    zp = cache(lambda: np.maximum(z, 0))
    return _Parts(
        value=lambda: zp() * zp(),
        grad=lambda: -2 * s * zp(),
        hess=lambda: np.where(z > 0, 2, 0),
    )


# ---------------------------------------------------------------------------
# Elementwise losses of several inputs: (*inputs, **params) -> _Parts whose
# grad and hess give a tuple, one array per differentiable input.
# ---------------------------------------------------------------------------


def _gaussian_nll(p, t, var, full, eps):
    # 0.5 (log v + d^2/v) [+ 0.5 log(2 pi)], v = max(var, eps), straight-through:
    # the derivatives with respect to var are those of the formula at v
    v = np.where(var < eps, eps, var)          # NaN var stays NaN
    d = p - t
    q = cache(lambda: d * d / v)
    const = 0.5 * math.log(2 * math.pi) if full else 0.0
    return _Parts(
        value=lambda: 0.5 * (np.log(v) + q()) + const,
        grad=lambda: (d / v, 0.5 * (1 - q()) / v),
        hess=lambda: (1 / v, 0.5 * (2 * q() - 1) / (v * v)),
    )


def _kl_div(p, t, log_target):
    if log_target:
        et = np.exp(t)
        return _Parts(
            value=lambda: np.where(et == 0, 0, et * (t - p)),   # t == -inf: the limit 0
            grad=lambda: -et,
            hess=lambda: np.zeros_like(p),
        )
    return _Parts(
        value=lambda: np.where(t == 0, 0, t * (np.log(np.where(t == 0, 1, t)) - p)),
        grad=lambda: -t,
        hess=lambda: np.zeros_like(p),
    )


def _margin_ranking(x1, x2, y, margin):
    m = margin - y * (x1 - x2)
    off = m <= 0                                 # a NaN y propagates
    return _Parts(
        value=lambda: np.where(off, 0, m),
        grad=lambda: (np.where(off, 0, -y), np.where(off, 0, y)),
        hess=lambda: (np.zeros_like(x1), np.zeros_like(x1)),
    )


# ---------------------------------------------------------------------------
# Class losses: (z, y, *, soft, valid, cw, **params) -> _Parts(n, g, h, dw)
# z has the class axis last: shape S + (C,), C >= 1.
# ---------------------------------------------------------------------------


def _acc_dtype(dt):
    return np.promote_types(dt, np.float64)


def _log_softmax_parts(z):
    """Stable pieces of log_softmax along the last axis.

    Returns (nlogp, p, q), functions of no arguments that compute (once, when
    first called) -log_softmax(z), softmax(z) and 1 - softmax(z), each
    accurate to a few ulp.  With sh = z - max(z) and rest = sum of exp(sh) over
    every class but (the first) argmax, logsumexp(z) - max(z) = log1p(rest), and
    the argmax's 1 - p is rest / (1 + rest): no cancellation.  A +inf logit
    takes all the mass (shared among several +inf logits); -inf logits have
    probability 0; NaN propagates.  Class-axis sums accumulate in float64.
    """
    dt = z.dtype
    acc = _acc_dtype(dt)
    m = np.max(z, axis=-1, keepdims=True)
    sh = np.where(np.isposinf(m) & (z == m), 0, z - m)
    ez = np.exp(sh)
    C = z.shape[-1]
    is_am = np.arange(C) == np.argmax(z, axis=-1)[..., None]
    rest = np.sum(np.where(is_am, 0, ez), axis=-1, keepdims=True, dtype=acc)
    nlogp = cache(lambda: (np.log1p(rest) - sh).astype(dt))
    p = cache(lambda: (ez / (1 + rest)).astype(dt))
    q = cache(lambda: np.where(is_am, rest / (1 + rest), 1 - p()).astype(dt))
    return nlogp, p, q


def _take(a, y):
    return np.take_along_axis(a, y[..., None], axis=-1)[..., 0]


def _cross_entropy(z, y, *, soft, valid, cw, label_smoothing):
    dt = z.dtype
    acc = _acc_dtype(dt)
    C = z.shape[-1]
    e = label_smoothing
    nlogp, p, q = _log_softmax_parts(z)
    if soft:
        # t' = (1-e) t + e/C;  n = sum_c cw_c t'_c (-logp_c)
        w = cw * ((1 - e) * y + e / C) if e else cw * y
        A = cache(lambda: np.sum(w, axis=-1, keepdims=True, dtype=acc).astype(dt))
        return _Parts(
            value=lambda: np.sum(_times(w, nlogp()), axis=-1, dtype=acc).astype(dt),
            # dn/dz_k = A p_k - w_k = p_k (A - w_k) - w_k (1 - p_k)
            grad=lambda: p() * (A() - w) - w * q(),
            hess=lambda: A() * p() * q(),
            weight=lambda: np.ones(z.shape[:-1], dt),
        )
    cwy = cw[y]
    vm = valid[..., None]
    scw = cache(lambda: np.sum(cw, dtype=acc).astype(dt))

    def value():
        n = cwy * _take(nlogp(), y)
        if e:
            smooth = np.sum(_times(cw, nlogp()), axis=-1, dtype=acc).astype(dt)
            n = (1 - e) * n + (e / C) * smooth
        return np.where(valid, n, 0)

    def grad():
        # dn/dz_k = cw_y (p_k - [k == y]); 1 - p_y taken from q for accuracy
        onehot = np.arange(C) == y[..., None]
        g = cwy[..., None] * np.where(onehot, -q(), p())
        if e:
            g = (1 - e) * g + (e / C) * (scw() * p() - cw)
        return np.where(vm, g, 0)

    def hess():
        A = (1 - e) * cwy + (e / C) * scw() if e else cwy
        return np.where(vm, A[..., None] * p() * q(), 0)

    return _Parts(value, grad, hess, weight=lambda: np.where(valid, cwy, 0))


def _nll(z, y, *, soft, valid, cw):
    # z holds log-probabilities; the loss is linear in z (Hessian 0).
    dt = z.dtype

    def hess():
        return np.zeros_like(z)

    if soft:
        w = cache(lambda: cw * y)
        return _Parts(
            value=lambda: -np.sum(_times(w(), z), axis=-1, dtype=_acc_dtype(dt)).astype(dt),
            grad=lambda: -w(),
            hess=hess,
            weight=lambda: np.ones(z.shape[:-1], dt),
        )
    C = z.shape[-1]
    cwy = cache(lambda: cw[y])

    def grad():
        onehot = (np.arange(C) == y[..., None]) & valid[..., None]
        return np.where(onehot, -cwy()[..., None], 0)

    return _Parts(
        value=lambda: np.where(valid, -cwy() * _take(z, y), 0),
        grad=grad,
        hess=hess,
        weight=lambda: np.where(valid, cwy(), 0),
    )


def _multi_margin(z, y, *, soft, valid, cw, margin, power):
    # per sample: sum_{j != y} cw_y * max(0, margin - z_y + z_j)**power / C
    dt = z.dtype
    acc = _acc_dtype(dt)
    C = z.shape[-1]
    onehot = np.arange(C) == y[..., None]
    zy = _take(z, y)
    pos = np.where(onehot, 0, np.maximum(margin - zy[..., None] + z, 0))
    coef = (cw[y] / C)[..., None]

    # the summand pos**power and its first and second derivatives
    def value():
        term = pos if power == 1 else pos * pos
        return (coef[..., 0] * np.sum(term, axis=-1, dtype=acc)).astype(dt)

    def grad():
        d = np.sign(pos) if power == 1 else 2 * pos
        dsum = np.sum(d, axis=-1, keepdims=True, dtype=acc).astype(dt)
        return coef * np.where(onehot, -dsum, d)

    def hess():
        d2 = np.zeros_like(pos) if power == 1 else 2 * np.sign(pos)
        d2sum = np.sum(d2, axis=-1, keepdims=True, dtype=acc).astype(dt)
        return coef * np.where(onehot, d2sum, d2)

    return _Parts(value, grad, hess, weight=lambda: np.ones(z.shape[:-1], dt))


# ---------------------------------------------------------------------------
# Data checks
# ---------------------------------------------------------------------------


def _first_bad(name, what, arr, bad, expect):
    if np.any(bad):
        flat = int(np.argmax(bad.ravel()))
        idx = np.unravel_index(flat, bad.shape) if bad.ndim else ()
        idx = tuple(int(i) for i in idx)
        val = arr[idx].item()
        raise ValueError(
            f"{name}: {what} must hold {expect}; got {val!r} at index {idx}"
        )


def _outside(domain, a):
    """Elements of a outside domain (a fastloss._spec.Domain); NaN is inside."""
    return ~domain.contains(a)


# ---------------------------------------------------------------------------
# Array conversion helpers
# ---------------------------------------------------------------------------


def _as_array(x, name, what):
    if isinstance(x, np.ndarray):
        a = x
    else:
        if getattr(x, "requires_grad", False) is True:
            raise TypeError(
                f"{name}: {what} is a tensor that requires grad; pass "
                f"tensor.detach() (fastloss computes the gradient itself)"
            )
        if type(x).__module__.split(".")[0] == "dask":
            raise TypeError(
                f"{name}: {what} is a Dask array; compute it first "
                f"(np.asarray would silently compute the whole array)"
            )
        a = None
        if hasattr(x, "__dlpack__") and not isinstance(x, np.generic):
            try:
                a = np.from_dlpack(x)
            except (TypeError, ValueError, BufferError, RuntimeError):
                a = None
        if a is None:
            try:
                a = np.asarray(x)
            except (RuntimeError, ValueError) as exc:
                raise TypeError(f"{name}: {what} cannot be converted to an array: {exc}") from None
    if a.dtype.kind not in "biuf":
        raise TypeError(
            f"{name}: {what} must be a real (bool, integer or floating) array, "
            f"got dtype {a.dtype}"
        )
    return a


def _check_broadcast(name, what, shape, target):
    try:
        b = np.broadcast_shapes(shape, target)
    except ValueError:
        raise ValueError(
            f"{name}: {what} of shape {shape} does not broadcast to {target}"
        ) from None
    if b != tuple(target):
        raise ValueError(
            f"{name}: {what} of shape {shape} would enlarge the shape {target} "
            f"to {b} (for example an (N, 1) target against (N,) predictions)"
        )


def _compute_dtypes(dtype):
    """(compute dtype, output dtype) for a y_pred dtype."""
    if dtype.kind == "f":
        if dtype == np.float16:
            return np.dtype(np.float32), np.dtype(np.float16)
        return dtype, dtype
    return np.dtype(np.float64), np.dtype(np.float64)


# ---------------------------------------------------------------------------
# The generic wrapper
# ---------------------------------------------------------------------------

_COMMON = ("reduction", "sample_weight", "axis", "out", "n_threads")


class ReferenceLoss:
    """A loss with the public fastloss signature, computed in plain NumPy.

    Parameters
    ----------
    name : str
    fn : callable
        The per-loss math (see the module docstring for the families).
    params : dict
        Loss parameter names and their defaults.
    family : "elementwise", "class" or "rows"
    param_check : callable(name, params) -> params, optional
        Validates the scalar parameters and returns them normalized.
    checks : tuple of (input name, domain, what)
        Data checks: the values of that input must lie in the domain (an
        object with ``contains``; NaN passes).
    array_params : tuple of (name, domain)
        Per-element array parameters (pos_weight), broadcast to the first
        input, values in the domain.
    inputs, differentiable : tuples of input names (default y_pred, y_true
        and y_pred).
    sample_operands : the inputs of the per-sample shape (row family).
    """

    def __init__(self, name, fn, params=None, family="elementwise", param_check=None,
                 checks=(), array_params=(), accepts_probabilities=True,
                 inputs=("y_pred", "y_true"), differentiable=("y_pred",),
                 sample_operands=(), reductions=_REDUCTIONS, has_hessian=True):
        if family not in ("elementwise", "class", "rows"):
            raise ValueError(f"unknown family {family!r}")
        self.name = name
        self.fn = fn
        self.params = dict(params or {})
        self.family = family
        self.param_check = param_check
        self.checks = tuple(checks)
        self.array_params = tuple(array_params)
        self.accepts_probabilities = accepts_probabilities
        self.inputs = tuple(inputs)
        self.differentiable = tuple(differentiable)
        self.sample_operands = tuple(sample_operands)
        self.reductions = tuple(reductions)
        self.has_hessian = has_hessian
        self.__doc__ = f"Reference (pure NumPy) {name} loss; parameters {self.params}."

    def __repr__(self):
        return f"<ReferenceLoss {self.name} ({self.family}) params={self.params}>"

    # -- public methods ------------------------------------------------------

    def __call__(self, *args, **kwargs):
        """The loss value."""
        return self._run(args, kwargs, "value")

    def grad(self, *args, **kwargs):
        """d(sum(cotangent * value))/d(input) for each wrt input."""
        return self._run(args, kwargs, "grad")

    def value_and_grad(self, *args, **kwargs):
        """(value, grad) as a pair."""
        return self._run(args, kwargs, "value_and_grad")

    def hessian(self, *args, **kwargs):
        """Diagonal of the Hessian, scaled like the gradient."""
        return self._run(args, kwargs, "hessian")

    def grad_and_hessian(self, *args, **kwargs):
        """(grad, hessian) as a pair."""
        return self._run(args, kwargs, "grad_and_hessian")

    @property
    def reference(self):
        return self

    # -- argument handling -----------------------------------------------------

    def _parse(self, args, kwargs, method):
        name = self.name
        if len(args) > len(self.inputs):
            raise TypeError(f"{name}() takes {len(self.inputs)} positional arguments, "
                            f"got {len(args)}")
        kwargs = dict(kwargs)
        inputs = list(args)
        for nm in self.inputs[len(args):]:
            if nm not in kwargs:
                raise TypeError(f"{name}() missing the input {nm!r}")
            inputs.append(kwargs.pop(nm))
        allowed = set(_COMMON) | set(self.params)
        if method != "value":
            allowed |= {"wrt", "cotangent"}
        unknown = [k for k in kwargs if k not in allowed]
        if unknown:
            raise TypeError(
                f"{name}() got an unexpected keyword argument {unknown[0]!r}"
                f" (loss parameters: {sorted(self.params) or 'none'})"
            )
        reduction = kwargs.pop("reduction", "mean")
        if not isinstance(reduction, str) or reduction not in self.reductions:
            raise ValueError(
                f"{name}: reduction must be one of {self.reductions}, got {reduction!r}"
            )
        axis = kwargs.pop("axis", None)
        if reduction == "none" and axis is not None:
            raise ValueError(f"{name}: reduction='none' cannot be combined with axis={axis!r}")
        if reduction == "batchmean" and axis is not None:
            raise ValueError(f"{name}: reduction='batchmean' cannot be combined with axis")
        n_threads = kwargs.pop("n_threads", None)
        if n_threads is not None:
            if isinstance(n_threads, (bool, np.bool_)) or not isinstance(n_threads, numbers.Integral):
                raise TypeError(f"{name}: n_threads must be an integer or None, got {n_threads!r}")
            if n_threads < 1:
                raise ValueError(f"{name}: n_threads must be >= 1, got {n_threads!r}")
        if method in ("hessian", "grad_and_hessian") and not self.has_hessian:
            raise NotImplementedError(f"{name}: has no Hessian")
        wrt = kwargs.pop("wrt", None)
        single = True
        if wrt is None:
            wrt = self.differentiable
            single = len(wrt) == 1
        elif isinstance(wrt, str):
            wrt = (wrt,)
        else:
            wrt, single = tuple(wrt), False
        for w in wrt:
            if w not in self.differentiable:
                raise ValueError(f"{name}: cannot differentiate with respect to {w!r}")
        if not wrt or len(set(wrt)) != len(wrt):
            raise ValueError(f"{name}: wrt={wrt!r} must name distinct inputs")
        cot = kwargs.pop("cotangent", None)
        out = kwargs.pop("out", None)
        sample_weight = kwargs.pop("sample_weight", None)
        params = {**self.params, **kwargs}
        if self.param_check is not None:
            params = self.param_check(self.name, params)
        return inputs, reduction, axis, wrt, single, cot, out, sample_weight, params

    @staticmethod
    def _check_out(name, out, shape, dtype):
        if out is None:
            return None
        if not isinstance(out, np.ndarray):
            raise TypeError(f"{name}: out must be a numpy.ndarray, got {type(out).__name__}")
        if out.dtype != dtype:
            raise TypeError(f"{name}: out must have dtype {dtype}, got {out.dtype}")
        if out.shape != tuple(shape):
            raise ValueError(f"{name}: out must have shape {tuple(shape)}, got {out.shape}")
        if not out.flags.c_contiguous:
            raise ValueError(f"{name}: out must be C-contiguous")
        if not out.flags.writeable:
            raise ValueError(f"{name}: out is read-only")
        return out

    def _outs(self, out, wrt, single, shapes, odt, method):
        """out= per wrt input (None or a tuple), checked."""
        if out is None:
            return None, None
        def split(o):
            if o is None:
                return None
            os_ = (o,) if single else tuple(o)
            if len(os_) != len(wrt):
                raise TypeError(f"{self.name}: out must hold one array per wrt input")
            return tuple(self._check_out(self.name, a, shapes[w], odt) for a, w in zip(os_, wrt))
        if method == "grad_and_hessian":
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError(f"{self.name}: out must be a pair")
            return split(out[0]), split(out[1])
        if method == "hessian":
            return None, split(out)
        if method == "value":
            raise TypeError(f"{self.name}() takes no out=")
        return split(out), None

    def _run(self, args, kwargs, method):
        want_value = method in ("value", "value_and_grad")
        want_grad = method in ("grad", "value_and_grad", "grad_and_hessian")
        want_hess = method in ("hessian", "grad_and_hessian")
        (inputs, reduction, axis, wrt, single, cot, out, sample_weight,
         params) = self._parse(args, kwargs, method)
        if method == "value":
            if out is not None:
                raise TypeError(f"{self.name}() takes no out=")
            wrt = ()
        p = _as_array(inputs[0], self.name, self.inputs[0])
        dt, odt = _compute_dtypes(p.dtype)
        p = p.astype(dt, copy=False)
        arrays = [p] + [_as_array(x, self.name, nm) for x, nm in zip(inputs[1:], self.inputs[1:])]
        shapes = {nm: a.shape for nm, a in zip(self.inputs, arrays)}
        if self.family == "class":
            shapes = {self.inputs[0]: p.shape}
        out_g, out_h = self._outs(out, wrt, single, shapes, odt, method)
        with np.errstate(all="ignore"):
            if self.family == "elementwise":
                parts, s, S = self._elementwise(arrays, sample_weight, params, dt)
                bshape, cax, valid = (), None, None
            elif self.family == "rows":
                parts, s, S = self._rows(arrays, sample_weight, params, dt)
                bshape, cax, valid = (1,), None, None
            else:
                parts, s, cax, valid = self._class(p, arrays[1], sample_weight, params, dt)
                S = s.shape
                bshape = (1,)
            if reduction == "batchmean":
                num = np.sum(s * parts.value(), dtype=_acc_dtype(dt)) if want_value else None
                den = np.asarray(float(p.shape[0]) if p.ndim else 1.0)
                if den == 0:
                    warnings.warn(f"{self.name}: batchmean over an empty first axis is nan",
                                  RuntimeWarning, stacklevel=4)
                value = None if not want_value else odt.type(np.nan if den == 0 else num / den)
                den = den.reshape((1,) * len(S))
            else:
                value, den = self._reduce(parts, s, reduction, axis, dt, odt, want_value)
            # the cotangent, broadcast to the value's shape, brought back to S
            c = np.ones((1,) * len(S), _acc_dtype(dt))
            if cot is not None and (want_grad or want_hess):
                ca = _as_array(cot, self.name, "cotangent").astype(_acc_dtype(dt))
                if reduction == "none":
                    vshape = S
                elif axis is None:
                    vshape = ()
                else:
                    axes = tuple(sorted(_norm_axis(a, len(S)) for a in
                                        ((axis,) if np.ndim(axis) == 0 else axis)))
                    vshape = tuple(n for i, n in enumerate(S) if i not in axes)
                _check_broadcast(self.name, "cotangent", ca.shape, vshape)
                ca = np.broadcast_to(ca, vshape)
                if reduction == "none":
                    c = ca
                elif axis is None:
                    c = ca.reshape((1,) * len(S))
                else:
                    c = np.expand_dims(ca, axes)
            res = {}
            for key, want in (("grad", want_grad), ("hess", want_hess)):
                if not want:
                    continue
                raw = getattr(parts, key)()
                raw = raw if isinstance(raw, tuple) else (raw,)
                ds = []
                for w_ in wrt:
                    d = raw[self.differentiable.index(w_)]
                    sc = np.broadcast_to(s * c, s.shape).reshape(s.shape + bshape)
                    d = self._scale(d, sc, den.reshape(den.shape + bshape), dt)
                    if self.family == "class":
                        if valid is not None:
                            # ignored samples: exactly 0 whatever the denominator
                            # (PyTorch: they never reach the scaling)
                            d = np.where(valid[..., None], d, 0).astype(dt, copy=False)
                        d = np.moveaxis(d, -1, cax)
                    else:
                        d = _sum_to(np.asarray(d), shapes[w_])
                    ds.append(np.array(d, dtype=odt, order="C"))  # 0-d stays 0-d
                res[key] = ds
        outs = {"grad": out_g, "hess": out_h}
        for key, ds in res.items():
            o = outs[key]
            if o is not None:
                for a, d in zip(o, ds):
                    a[...] = d
                res[key] = list(o)

        def pick(key):
            return res[key][0] if single else tuple(res[key])
        if method == "value":
            return value
        if method == "grad":
            return pick("grad")
        if method == "value_and_grad":
            return value, pick("grad")
        if method == "hessian":
            return pick("hess")
        return pick("grad"), pick("hess")

    def _weights(self, sample_weight, shape, dt):
        if sample_weight is None:
            return np.ones(shape, dt)
        s = _as_array(sample_weight, self.name, "sample_weight")
        _check_broadcast(self.name, "sample_weight", s.shape, shape)
        return np.broadcast_to(s.astype(dt, copy=False), shape)

    def _data_checks(self, named):
        for arg, domain, what in self.checks:
            a = named[arg]
            _first_bad(self.name, arg, a, _outside(domain, a), what)

    def _elementwise(self, arrays, sample_weight, params, dt):
        p = arrays[0]
        full = [p]
        for a, nm in zip(arrays[1:], self.inputs[1:]):
            _check_broadcast(self.name, nm, a.shape, p.shape)
            full.append(np.broadcast_to(a.astype(dt, copy=False), p.shape))
        s = self._weights(sample_weight, p.shape, dt)
        self._data_checks(dict(zip(self.inputs, arrays)))
        for nm, domain in self.array_params:
            if params.get(nm) is None:
                continue
            x = _as_array(params[nm], self.name, nm).astype(dt)
            _check_broadcast(self.name, nm, x.shape, p.shape)
            _first_bad(self.name, nm, x, _outside(domain, x), f"in {domain}")
            params = {**params, nm: np.broadcast_to(x, p.shape)}
        parts = self.fn(*full, **params)
        # NaN in the first two inputs gives NaN in every output, and so do
        # the two the same infinity (d = inf - inf is NaN: "NaN propagates";
        # no loss has a limit there); further inputs propagate through the math
        t = full[1]
        nan = np.isnan(p) | np.isnan(t) | (np.isinf(p) & (p == t))

        def fix(x):
            if isinstance(x, tuple):
                return tuple(fix(y) for y in x)
            return np.where(nan, np.nan, np.broadcast_to(x, p.shape)).astype(dt, copy=False)
        parts = _Parts(*(None if f is None else _then(f, fix) for f in parts))
        return parts._replace(weight=lambda: np.ones(p.shape, dt)), s, p.shape

    def _rows(self, arrays, sample_weight, params, dt):
        first = arrays[0]
        if first.ndim == 0:
            raise ValueError(f"{self.name}: {self.inputs[0]} must have a vector axis")
        S = first.shape[:-1]
        full = []
        for a, nm in zip(arrays, self.inputs):
            target = S if nm in self.sample_operands else first.shape
            _check_broadcast(self.name, nm, a.shape, target)
            full.append(np.broadcast_to(a.astype(dt, copy=False), target))
        self._data_checks(dict(zip(self.inputs, arrays)))
        s = self._weights(sample_weight, S, dt)
        raw = cache(lambda: self.fn(*full, **params))
        rows = tuple(nm for nm in self.inputs if nm not in self.sample_operands)
        parts = _Parts(
            value=lambda: np.asarray(raw()[0], dtype=dt),
            grad=lambda: tuple(np.asarray(raw()[1][nm], dtype=dt) for nm in rows
                               if nm in self.differentiable),
            hess=None,
            weight=lambda: np.ones(S, dt))
        return parts, s, S

    def _class(self, z, y, sample_weight, params, dt):
        name = self.name
        if z.ndim == 0:
            raise ValueError(f"{name}: y_pred must have a class axis, got a 0-d array")
        cax = params.pop("class_axis")
        try:
            cax = _norm_axis(cax, z.ndim)
        except ValueError:
            raise ValueError(
                f"{name}: class_axis {cax} is out of bounds for y_pred of shape {z.shape}"
            ) from None
        C = z.shape[cax]
        zl = np.moveaxis(z, cax, -1)
        S = zl.shape[:-1]
        ignore = params.pop("ignore_index", None)
        cw = params.pop("class_weight", None)
        if cw is None:
            cw = np.ones(C, dt)
        else:
            cw = _as_array(cw, name, "class_weight")
            if cw.shape != (C,):
                raise ValueError(
                    f"{name}: class_weight must have shape ({C},) for {C} classes, got {cw.shape}"
                )
            cw = cw.astype(dt)
        soft = y.shape == z.shape
        if soft:
            if not self.accepts_probabilities:
                raise ValueError(
                    f"{name}: y_true of y_pred's shape {z.shape} would be class "
                    f"probabilities; {name} needs integer labels of shape {S}"
                )
            if ignore is not None:
                raise ValueError(f"{name}: ignore_index cannot be used with probability targets")
            y = np.moveaxis(y.astype(dt, copy=False), cax, -1)
            valid = None
        else:
            _check_broadcast(name, "y_true (class labels)", y.shape, S)
            y = np.broadcast_to(y, S)
            y, valid = _labels(name, y, C, ignore)
        s = self._weights(sample_weight, S, dt)
        if valid is not None and not valid.all():
            # an ignored sample's weight is never used (PyTorch): a NaN or inf
            # weight there does not reach the value, the mean or the gradient
            s = np.where(valid, s, 0).astype(s.dtype, copy=False)
        if C == 0:
            def zeros():
                return np.zeros(zl.shape, dt)

            parts = _Parts(
                value=lambda: np.zeros(S, dt),
                grad=zeros,
                hess=zeros,
                weight=lambda: np.ones(S, dt) if soft else np.zeros(S, dt),
            )
            return parts, s, cax, valid
        parts = self.fn(zl, y, soft=soft, valid=valid, cw=cw, **params)
        return parts.map(lambda x: x.astype(dt, copy=False)), s, cax, valid

    # -- reductions --------------------------------------------------------------

    def _reduce(self, parts, s, reduction, axis, dt, odt, want_value):
        """Returns (value, W): the value (None, and not computed, unless
        want_value) and W, broadcastable to the per-sample values, what s*g is
        divided by (the mean's denominator over each reduced slice, 1
        otherwise)."""
        acc = _acc_dtype(dt)
        one = np.ones((1,) * s.ndim, acc)  # s has the per-sample shape
        if reduction == "none":
            return (np.asarray(s * parts.value(), dtype=odt) if want_value else None), one
        if reduction == "sum":
            den_k = one
        else:
            den_k = np.sum(s * parts.weight(), axis=axis, dtype=acc, keepdims=True)
            if np.any(den_k == 0):
                warnings.warn(
                    f"{self.name}: mean over zero total weight (empty input, all samples "
                    f"ignored or weights summing to 0) is nan",
                    RuntimeWarning,
                    stacklevel=4,
                )
        if not want_value:
            return None, den_k
        num = np.sum(s * parts.value(), axis=axis, dtype=acc)
        if reduction == "sum":
            value = num
        else:
            den = den_k.reshape(np.shape(num))
            zero = den == 0
            value = np.where(zero, np.nan, num / np.where(zero, 1, den))
        if np.ndim(value) == 0:
            return odt.type(value), den_k
        return np.asarray(value, dtype=odt), den_k

    @staticmethod
    def _scale(g, s, den, dt):
        sg = s * g
        r = sg.astype(den.dtype) / den
        # over a zero denominator: 0 wherever the weighted derivative is 0
        r = np.where((den == 0) & (sg == 0), 0, r)
        return r.astype(dt, copy=False)


def _sum_to(a, shape):
    """a summed over the axes broadcasting added or stretched (autograd's
    gradient of a broadcast input)."""
    shape = tuple(shape)
    if a.shape == shape:
        return a
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and a.shape[lead + i] != 1)
    return np.sum(a, axis=axes, keepdims=True, dtype=_acc_dtype(a.dtype)).reshape(shape)


def _norm_axis(ax, ndim):
    if not -ndim <= ax < ndim:
        raise ValueError("axis out of bounds")
    return ax % ndim


def _labels(name, y, C, ignore):
    """Validate class labels (already broadcast to the per-sample shape).

    Returns (labels as int64 with ignored samples set to 0, mask of samples
    that are not ignored)."""
    if y.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            bad_num = ~np.isfinite(y) | (y != np.floor(y))
        _first_bad(name, "y_true", y, bad_num,
                   "whole-number class labels (not NaN, inf or fractional)")
    # (bool labels compared as 0/1: NumPy cannot compare a bool array with an
    # int beyond int64, such as ignore_index=2**63)
    ign = ((y.astype(np.uint8) if y.dtype.kind == "b" else y) == ignore) \
        if ignore is not None else np.zeros(y.shape, bool)
    bad = ~ign & ((y < 0) | (y >= C))
    expect = f"a class label in [0, {C})" + (
        f" or ignore_index={ignore}" if ignore is not None else ""
    )
    _first_bad(name, "y_true", y, bad, expect)
    valid = ~ign
    yi = np.where(valid, y, 0).astype(np.int64)
    return yi, valid


# ---------------------------------------------------------------------------
# The loss objects: made from the declarations (fastloss/losses) by
# fastloss._registry, which fills LOSSES and the module-level names.
# ---------------------------------------------------------------------------

LOSSES = {}
