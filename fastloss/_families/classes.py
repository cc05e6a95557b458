"""Generic machinery of the class-axis family (cross_entropy, nll,
multi_margin): class axis, integer labels or probability targets, class
weights, ignore_index.  Reductions, weights, cotangent and out= come from
``fastloss._call``; the numbers from ``_core.cls_call``.

Semantics (SPEC section 5): per sample a numerator n_i and a denominator
weight dw_i (cw[y_i] [y_i != ignore_index] for cross_entropy/nll with labels,
1 otherwise); "mean" is sum(s n) / sum(s dw) over `axis`.
"""
import math

import numpy as np

from .. import _core
from .._call import (Plan, as_array, broadcast_shape, check_kind, check_out, check_threads,
                     deriv_buffer, finish_deriv, package, reduce, resolve_pred)


def _class_axis(where, value, ndim):
    if ndim == 0:
        raise ValueError(f"{where}: y_pred must have a class axis (got a 0-d array)")
    if not -ndim <= value < ndim:
        raise np.exceptions.AxisError(value, ndim, f"{where}: class_axis")
    return value % ndim


_INT64 = np.iinfo(np.int64)


def _for_kernel(a, dtype):
    """a as the class kernels read it: C-contiguous, aligned and native, of
    dtype (a copy only where needed; np.ascontiguousarray keeps an unaligned
    contiguous array as it is, and the kernels' loads would be misaligned)."""
    return np.require(a, dtype=dtype, requirements=["C", "A"])


def _labels(where, yt, sample_shape, C, ignore_index):
    """Integer labels broadcast to the per-sample shape, as C-contiguous
    int64, the broadcast labels as given, and the ignore_index for the
    kernels (an int64, or None).  Float labels must be whole, finite
    numbers; their range is checked here (before any cast), integer labels'
    range in C.

    An ignore_index outside int64 (any Python int is allowed, as for the
    reference) can only equal labels that are themselves outside int64
    (uint64 or float labels): those samples are ignored, and are passed to
    the kernels as the label -1 with ignore_index -1, after every other
    label has been checked here."""
    if ignore_index is not None and not _INT64.min <= ignore_index <= _INT64.max:
        return _labels_big_ignore(where, yt, sample_shape, C, ignore_index)
    yb = _broadcast_labels(where, yt, sample_shape)
    if yt.dtype.kind == "f":
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(yb) & (yb == np.floor(yb))
            inrange = (yb >= 0) & (yb < C)
            if ignore_index is not None:
                inrange |= yb == ignore_index
        bad = ~(ok & inrange)
        if bad.any():
            _bad_label(where, yb, int(np.flatnonzero(bad.ravel())[0]), C)
        return _for_kernel(yb, np.int64), yb, ignore_index
    if yt.dtype.kind == "u" and yt.dtype.itemsize == 8 and yb.size and yb.max() > _INT64.max:
        bad = yb > _INT64.max
        _bad_label(where, yb, int(np.flatnonzero(bad.ravel())[0]), C)
    return _for_kernel(yb, np.int64), yb, ignore_index


def _broadcast_labels(where, yt, sample_shape):
    try:
        b = np.broadcast_shapes(yt.shape, sample_shape)
    except ValueError:
        raise ValueError(f"{where}: y_true of shape {yt.shape} is neither class "
                         f"probabilities of y_pred's shape nor labels broadcastable to "
                         f"the per-sample shape {sample_shape}") from None
    if b != tuple(sample_shape):
        raise ValueError(f"{where}: labels of shape {yt.shape} would enlarge the per-sample "
                         f"shape {sample_shape} to {b}")
    return np.broadcast_to(yt, sample_shape)


def _labels_big_ignore(where, yt, sample_shape, C, ignore_index):
    """_labels for an ignore_index outside int64 (rare: checked in NumPy)."""
    yb = _broadcast_labels(where, yt, sample_shape)
    with np.errstate(invalid="ignore", over="ignore"):
        # exact for any int size and label dtype (bool: as 0/1, which NumPy
        # cannot compare with an int beyond int64 itself)
        ign = (yb.view(np.uint8) if yb.dtype.kind == "b" else yb) == ignore_index
        if yt.dtype.kind == "f":
            ok = np.isfinite(yb) & (yb == np.floor(yb))
        else:
            ok = np.ones(yb.shape, dtype=bool)
        ok &= (yb >= 0) & (yb < C)
    bad = ~(ok | ign)
    if bad.any():
        _bad_label(where, yb, int(np.flatnonzero(bad.ravel())[0]), C)
    if not ign.any():
        return _for_kernel(yb, np.int64), yb, None
    y = np.full(yb.shape, -1, dtype=np.int64)
    keep = ~ign
    y[keep] = yb[keep]                      # checked: classes in [0, C)
    return y, yb, -1


def _bad_label(where, yb, flat, C):
    idx = tuple(int(i) for i in np.unravel_index(flat, yb.shape)) if yb.ndim else ()
    val = yb.ravel()[flat] if yb.ndim else yb[()]
    raise ValueError(f"{where}: label {val!r} at index {idx} of the per-sample array is not "
                     f"a class in [0, {C}) nor the ignore_index")


def run(loss, call):
    spec = loss.spec
    where = call.where
    kwargs = call.kwargs
    params = {p.name: p.check(loss.name, kwargs.get(p.name, p.default)) for p in spec.params}
    p, cdt, odt = resolve_pred(where, call.inputs[0])
    ax = _class_axis(where, params["class_axis"], p.ndim)
    shape = p.shape
    C = shape[ax]
    sample_shape = shape[:ax] + shape[ax + 1:]
    outer = math.prod(shape[:ax])
    inner = math.prod(shape[ax + 1:])
    ignore_index = params.get("ignore_index")

    yt = as_array(where, "y_true", call.inputs[1])
    check_kind(where, "y_true", yt)
    soft = yt.shape == shape
    y = tp = ylab = None
    if soft:
        if not spec.accepts_probabilities:
            raise ValueError(f"{where}: y_true has y_pred's shape {shape}, i.e. class "
                             f"probabilities, but {loss.name} needs integer labels")
        if ignore_index is not None:
            raise ValueError(f"{where}: ignore_index cannot be used with probability targets")
        tp = _for_kernel(yt, cdt)
    else:
        y, ylab, ignore_index = _labels(where, yt, sample_shape, C, ignore_index)

    sw = sw0 = None
    if kwargs.get("sample_weight") is not None:
        sw0 = as_array(where, "sample_weight", kwargs["sample_weight"])
        check_kind(where, "sample_weight", sw0)
        broadcast_shape(where, "sample_weight", sw0.shape, sample_shape, "the per-sample shape")
        sw = _for_kernel(np.broadcast_to(sw0.astype(cdt, copy=False), sample_shape), cdt)
    cw = None
    if kwargs.get("class_weight") is not None:
        cw0 = as_array(where, "class_weight", kwargs["class_weight"])
        check_kind(where, "class_weight", cw0)
        if cw0.shape != (C,):
            raise ValueError(f"{where}: class_weight must have shape ({C},) (one weight per "
                             f"class), got {cw0.shape}")
        cw = _for_kernel(cw0, cdt)
    nthreads = check_threads(where, kwargs.get("n_threads"))
    out_g = None if call.out_grad is None else check_out(where, call.out_grad[0], shape, odt)
    out_h = None if call.out_hess is None else check_out(where, call.out_hess[0], shape, odt)

    z = np.ascontiguousarray(p)
    kernel = _core.CLS_KERNELS[spec.kernel]
    wsum = None
    if y is not None:
        bad, wsum = _core.cls_prepass(z, outer, C, inner, y, sw, cw, ignore_index)
        if bad >= 0:
            _bad_label(where, ylab, bad, C)
        if spec.kernel == "margin":
            wsum = None                 # multi_margin's mean divides by sum(s)
    smoothing = params.get("label_smoothing", 0.0)
    margin = params.get("margin", 0.0)
    power = int(params.get("power", 1))
    # ---- nothing below can fail on the user's input
    nsamp = outer * inner
    if wsum is None:
        wsum = float(nsamp) if sw is None else float(np.sum(sw, dtype=np.float64))

    g = deriv_buffer(out_g, shape, cdt, (p, tp)) if call.want_grad else None
    h = deriv_buffer(out_h, shape, cdt, (p, tp)) if call.want_hess else None

    def kernel_call(mode, weights, val, scale):
        sweights = None if weights is None else _for_kernel(weights, cdt)
        s = 0.0
        # the class drivers write one derivative per pass
        if mode & _core.MODE_HESS:
            _core.cls_call(kernel, z, outer, C, inner, y, tp, sweights, cw, smoothing,
                           ignore_index, margin, power, None, None, h, scale, nthreads)
            mode &= ~_core.MODE_HESS
            if not mode:
                return 0.0
        s = _core.cls_call(kernel, z, outer, C, inner, y, tp, sweights, cw, smoothing,
                           ignore_index, margin, power, val,
                           g if mode & _core.MODE_GRAD else None, None, scale, nthreads)
        return s

    def denom_weights():
        if y is None or spec.kernel not in ("ce", "nll"):
            return None
        valid = np.ones(sample_shape, dtype=bool) if ignore_index is None else y != ignore_index
        cwy = np.ones(sample_shape) if cw is None else \
            cw.astype(np.float64)[np.where(valid, y, 0)]
        return np.where(valid, cwy, 0.0)

    plan = Plan(shape=sample_shape, weights=sw, weights0=sw, kernel=kernel_call,
                full_wsum=lambda: wsum, denom_weights=denom_weights)
    value = reduce(call, plan, cdt, odt)
    grads = [finish_deriv(g, out_g, odt)] if call.want_grad else None
    hesses = [finish_deriv(h, out_h, odt)] if call.want_hess else None
    return package(call, value, grads, hesses)
