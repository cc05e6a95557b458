"""Multiclass losses (SPEC section 5): logits with a class axis; integer
labels of the per-sample shape, or class probabilities of the logits' shape."""
from .. import reference as R
from .._spec import ArrayParam, Domain, LossSpec, Param, REAL, UNIT
from ._common import log_softmax, normal


def _torch_ignore(k):
    """torch's ignore_index: None (no label ignored) is torch's default -100,
    which no valid label is."""
    ii = k.get("ignore_index")
    return -100 if ii is None else ii


def _jax_take(J, z, y):
    return J.np.take_along_axis(z, y[..., None], axis=-1)[..., 0]


def _jax_cross_entropy(J, z, y, k):
    logp = J.nn.log_softmax(z, axis=-1)
    e = k["label_smoothing"]
    per = -(1 - e) * _jax_take(J, logp, y)
    if e:
        per = per - e * J.np.mean(logp, axis=-1)
    return J.np.mean(per)


def _jax_multi_margin(J, z, y, k):
    m = J.np.maximum(0, k["margin"] - _jax_take(J, z, y)[..., None] + z)
    if k["power"] == 2:
        m = m * m
    m = J.np.where(J.np.arange(z.shape[-1]) == y[..., None], 0, m)
    return J.np.mean(J.np.sum(m, axis=-1) / z.shape[-1])


# ------------------------------------------------- idiomatic NumPy (bench "numpy")
# What a user writes in a few lines (value = the mean, gradient with respect
# to the logits; integer labels, classes on the last axis; _spec.LossSpec.peers["numpy"]).  N is numpy.

def _np_cross_entropy(N, z, y, k, grad=True):
    m = z.max(axis=-1, keepdims=True)
    e = N.exp(z - m)
    s = e.sum(axis=-1, keepdims=True)
    lse = (m + N.log(s))[..., 0]
    zy = N.take_along_axis(z, y[..., None], axis=-1)[..., 0]
    eps = k["label_smoothing"]
    v = N.mean(lse - (1 - eps) * zy - eps * z.mean(axis=-1))
    if not grad:
        return v
    g = e / s - eps / z.shape[-1]
    N.put_along_axis(g, y[..., None], N.take_along_axis(g, y[..., None], -1) - (1 - eps), -1)
    return v, g / y.size


def _np_nll(N, z, y, k, grad=True):
    v = -N.mean(N.take_along_axis(z, y[..., None], axis=-1))
    if not grad:
        return v
    g = N.zeros_like(z)
    N.put_along_axis(g, y[..., None], -1 / y.size, axis=-1)
    return v, g


def _np_multi_margin(N, z, y, k, grad=True):
    C = z.shape[-1]
    zy = N.take_along_axis(z, y[..., None], axis=-1)
    m = N.maximum(0, k["margin"] - zy + z)
    N.put_along_axis(m, y[..., None], 0, axis=-1)
    v = N.mean((m ** k["power"]).sum(axis=-1)) / C
    if not grad:
        return v
    g = (m > 0).astype(z.dtype) if k["power"] == 1 else 2 * m
    N.put_along_axis(g, y[..., None], -g.sum(axis=-1, keepdims=True), axis=-1)
    return v, g / (C * y.size)


def _classes(name, kernel, summary, formula, params=(), **kw):
    common = (Param("class_axis", -1, REAL, integer=True,
                    doc="the axis of y_pred holding the classes"),)
    return LossSpec(name=name, family="class", kernel=kernel, summary=summary,
                    formula=formula, params=common + tuple(params),
                    array_params=(ArrayParam("class_weight", REAL,
                                             "per-class weights of shape (C,)"),), **kw)


_IGNORE = Param("ignore_index", None, REAL, integer=True, allow_none=True, none_value=None,
                doc="label whose samples are left out (None: no such label)")

DECLARATIONS = [
    _classes(
        "cross_entropy", "ce", "Cross-entropy on logits (softmax + NLL, fused)",
        "logsumexp(z) - z[y]   (probability targets: -sum(t * log_softmax(z)))",
        [Param("label_smoothing", 0.0, UNIT, doc="mass spread uniformly over the classes"),
         _IGNORE],
        reference=R._cross_entropy, sampler=dict(y_pred=normal(3.0), y_true="labels"),
        peers=dict(
            numpy=_np_cross_entropy,
            torch=lambda F, z, y, k, r="mean": F.cross_entropy(
                z, y, weight=k.get("class_weight"), ignore_index=_torch_ignore(k),
                label_smoothing=k["label_smoothing"], reduction=r),
            jax=_jax_cross_entropy,
            sklearn=lambda S, k: (S.HalfMultinomialLoss(n_classes=k["n_classes"]), 1.0))),
    _classes(
        "nll", "nll", "Negative log-likelihood on log-probabilities",
        "-logp[y]   (probability targets: -sum(t * logp))", [_IGNORE],
        reference=R._nll,
        sampler=dict(y_pred=lambda rng, shape: log_softmax(rng.standard_normal(shape) * 3.0),
                     y_true="labels"),
        peers=dict(numpy=_np_nll,
                   torch=lambda F, z, y, k, r="mean": F.nll_loss(
                       z, y, weight=k.get("class_weight"), ignore_index=_torch_ignore(k),
                       reduction=r),
                   jax=lambda J, z, y, k: -J.np.mean(_jax_take(J, z, y)))),
    _classes(
        "multi_margin", "margin", "Multi-class margin (hinge) loss",
        "sum_{j != y} max(0, margin - z[y] + z[j])**power / C",
        [Param("margin", 1.0, REAL, doc="the margin"),
         Param("power", 1, Domain(values=(1.0, 2.0)), doc="1 or 2")],
        accepts_probabilities=False,
        reference=R._multi_margin, sampler=dict(y_pred=normal(), y_true="labels"),
        peers=dict(
            numpy=_np_multi_margin,
            torch=lambda F, z, y, k, r="mean": F.multi_margin_loss(
                z, y, p=k["power"], margin=k["margin"], weight=k.get("class_weight"),
                reduction=r),
            jax=_jax_multi_margin)),
]
