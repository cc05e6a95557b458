"""The generic machinery shared by every loss: argument checking, dtype
resolution, broadcasting, weights, reductions, axis, out=, threads.

``run(loss, method, y_pred, y_true, kwargs)`` is what a ``Loss`` method
calls when its compiled fast path does not apply.  Every check happens
before any output is written.
"""
import math
import operator
import warnings

import numpy as np

from . import _core

VALUE, GRAD, VALUE_AND_GRAD, HESSIAN = (_core.VALUE, _core.GRAD,
                                        _core.VALUE_AND_GRAD, _core.HESSIAN)
_METHOD = {VALUE: "", GRAD: ".grad", VALUE_AND_GRAD: ".value_and_grad",
           HESSIAN: ".hessian"}
_COMMON = ("reduction", "sample_weight", "axis", "out", "n_threads")
_REDUCTIONS = ("mean", "sum", "none")
_DLPACK_CPU = 1


# ------------------------------------------------------------------ inputs

def as_array(where, name, x):
    """Any array_like -> ndarray without copying where possible.

    CPU __dlpack__ objects (torch, JAX) come through np.from_dlpack; objects
    that must not be silently converted are a TypeError."""
    if isinstance(x, np.ndarray):
        return x
    mod = type(x).__module__ or ""
    if mod.split(".")[0] == "dask":
        raise TypeError(f"{where}: {name} is a Dask array; fastloss works on "
                        "in-memory arrays: call .compute() (or use map_blocks) first")
    if getattr(x, "requires_grad", False):
        raise TypeError(f"{where}: {name} is a tensor that requires grad; pass "
                        "tensor.detach() (fastloss returns the gradient itself)")
    if hasattr(x, "__dlpack_device__"):
        try:
            dev = x.__dlpack_device__()
        except Exception:
            dev = None
        if dev is not None and int(dev[0]) != _DLPACK_CPU:
            raise TypeError(f"{where}: {name} lives on a device (DLPack device "
                            f"{tuple(dev)}); move it to the CPU first (e.g. .cpu())")
        if hasattr(x, "__dlpack__"):
            try:
                return np.from_dlpack(x)
            except (TypeError, BufferError, RuntimeError, ValueError, AttributeError):
                pass
    if mod.split(".")[0] in ("cupy", "jax") and not hasattr(x, "__array__"):
        raise TypeError(f"{where}: {name} is not a CPU array")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: {name} could not be read as an array: {e}") from None
    return a


def _check_kind(where, name, a):
    k = a.dtype.kind
    if k in "fiub":
        return
    what = {"c": "complex", "O": "object", "U": "string", "S": "bytes",
            "M": "datetime", "m": "timedelta", "V": "structured"}.get(k, str(a.dtype))
    raise TypeError(f"{where}: {name} has {what} dtype {a.dtype}; "
                    "fastloss takes real numbers (float, int or bool)")


def resolve_pred(where, y_pred):
    """y_pred -> (array in the compute dtype, aligned and native; output dtype)."""
    a = as_array(where, "y_pred", y_pred)
    _check_kind(where, "y_pred", a)
    if a.dtype.kind == "f":
        size = a.dtype.itemsize
        if size == 2:
            cdt, odt = np.dtype(np.float32), np.dtype(np.float16)
        elif size in (4, 8):
            cdt = odt = np.dtype(np.float32 if size == 4 else np.float64)
        else:
            raise TypeError(f"{where}: y_pred has dtype {a.dtype}, which fastloss does "
                            "not compute in; cast it to float64")
    else:
        cdt = odt = np.dtype(np.float64)
    p = np.require(a, dtype=cdt, requirements="A")
    return p, cdt, odt


def resolve_operand(where, name, x, cdt, shape):
    """A target/weight operand: cast to cdt, broadcast to `shape` (a view),
    never enlarging it.  Returns (broadcast view, original-shape array)."""
    a = as_array(where, name, x)
    _check_kind(where, name, a)
    try:
        b = np.broadcast_shapes(a.shape, shape)
    except ValueError:
        raise ValueError(f"{where}: {name} of shape {a.shape} does not broadcast "
                         f"to the shape {shape}") from None
    if b != tuple(shape):
        raise ValueError(f"{where}: {name} of shape {a.shape} would enlarge y_pred's "
                         f"shape {shape} to {b}; reshape it (e.g. y.ravel() or "
                         f"y[..., None]) so that it matches")
    a = np.require(a, dtype=cdt, requirements="A")
    return np.broadcast_to(a, shape), a


def check_out(where, out, shape, odt):
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{where}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != odt:
        raise TypeError(f"{where}: out has dtype {out.dtype}; this call returns {odt}")
    if out.shape != tuple(shape):
        raise ValueError(f"{where}: out has shape {out.shape}; expected y_pred's shape "
                         f"{tuple(shape)}")
    if not out.flags.c_contiguous:
        raise ValueError(f"{where}: out must be C-contiguous")
    if not out.flags.writeable:
        raise ValueError(f"{where}: out is read-only")
    if not (out.flags.aligned and out.dtype.isnative):
        raise ValueError(f"{where}: out must be aligned and in native byte order")
    return out


def check_threads(where, n_threads):
    if n_threads is None:
        return 0
    if isinstance(n_threads, (bool, np.bool_)):
        raise TypeError(f"{where}: n_threads must be an integer, got a bool")
    try:
        n = operator.index(n_threads)
    except TypeError:
        raise TypeError(f"{where}: n_threads must be an integer, got "
                        f"{type(n_threads).__name__}") from None
    if n < 1:
        raise ValueError(f"{where}: n_threads must be >= 1, got {n}")
    return n


def normalize_axis(where, axis, ndim, reduction):
    """-> None (all axes) or a sorted tuple of distinct non-negative axes."""
    if axis is None:
        return None
    if reduction == "none":
        raise ValueError(f"{where}: axis={axis!r} makes no sense with reduction='none'")
    axes = (axis,) if not isinstance(axis, (tuple, list)) else tuple(axis)
    out = []
    for ax in axes:
        try:
            ax = operator.index(ax)
        except TypeError:
            raise TypeError(f"{where}: axis must be an int or a tuple of ints") from None
        if not -ndim <= ax < ndim:
            raise np.exceptions.AxisError(ax, ndim, f"{where}: axis")
        out.append(ax % ndim)
    if len(set(out)) != len(out):
        raise ValueError(f"{where}: repeated axis in {axis!r}")
    out = tuple(sorted(out))
    return None if len(out) == ndim else out


def check_values(where, arg, arr, domain, what):
    """Data check: every value of arr in domain (NaN passes)."""
    if arr.size == 0:
        return
    if domain.values is None:
        # an interval holds everything if it holds the extremes
        lo, hi = np.fmin.reduce(arr, axis=None), np.fmax.reduce(arr, axis=None)
        if np.isnan(lo) or (bool(domain.contains(lo)) and bool(domain.contains(hi))):
            return
    bad = ~domain.contains(arr)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.ravel())[0])
    idx = np.unravel_index(i, arr.shape) if arr.ndim else ()
    raise ValueError(f"{where}: {arg} must hold {what} (in {domain}); found "
                     f"{arr.ravel()[i]!r} at index {tuple(int(j) for j in idx)}")


def parse_kwargs(loss, where, kwargs):
    spec = loss.spec
    allowed = set(_COMMON) | set(spec.param_names)
    for k in kwargs:
        if k not in allowed:
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}; "
                            f"it takes {', '.join(sorted(allowed))}")
    reduction = kwargs.get("reduction", "mean")
    if not isinstance(reduction, str) or reduction not in _REDUCTIONS:
        raise ValueError(f"{where}: reduction must be 'mean', 'sum' or 'none', "
                         f"got {reduction!r}")
    return reduction


def _empty_mean_warning(where):
    warnings.warn(f"{where}: mean over zero total weight", RuntimeWarning, stacklevel=4)


def mean_scale(reduction, wsum, cdt):
    """(scale, wfactor, wsum') for the derivatives of a full reduction.

    The kernels write scale * w * dl with scale = 1/sum(w) rounded to the
    compute dtype cdt.  Where 1/sum(w) is not a normal number of cdt (a
    subnormal or tiny total weight: 1/1e-310 overflows float64, 1/1e-39
    float32) the weights are to be multiplied by wfactor, an exact power of
    two, first: then scale = 1/wsum' with wsum' = wsum * wfactor, and
    scale * (w * wfactor) is w/wsum as wanted.  The kernel's weighted sum is
    then wfactor times the unscaled one, which finish_full(..., wsum') divides
    out.  wfactor is 1.0 in every ordinary call."""
    if reduction != "mean":
        return 1.0, 1.0, wsum
    if wsum == 0:
        return 0.0, 1.0, wsum
    if not math.isfinite(wsum):
        return 1.0 / wsum, 1.0, wsum
    fi = np.finfo(cdt)
    # wsum = m 2**e, m in [0.5, 1): 1/wsum in (2**-e, 2**(1-e)] is a normal
    # number of cdt for e in [2 - maxexp, -minexp]
    e = math.frexp(wsum)[1]
    k = min(max(e, 2 - fi.maxexp), -fi.minexp) - e
    if k == 0:
        return 1.0 / wsum, 1.0, wsum
    wsum = math.ldexp(wsum, k)
    return 1.0 / wsum, math.ldexp(1.0, k), wsum


def scaled_weights(w, wfactor, cdt):
    """w * wfactor in cdt (a new array; w itself when wfactor is 1)."""
    if wfactor == 1.0:
        return w
    with np.errstate(over="ignore", under="ignore"):
        # asarray: a 0-d w gives a NumPy scalar from the ufunc
        return np.asarray(np.multiply(w, cdt.type(wfactor), dtype=cdt))


def finish_full(where, reduction, s, wsum, want_val, odt):
    """The value of a full reduction from the kernel's weighted sum s (shared
    by every family); warns for a mean over zero weight, derivatives too.
    wsum is the (possibly rescaled, see mean_scale) total weight of s."""
    if reduction == "mean" and wsum == 0:
        _empty_mean_warning(where)
    if not want_val:
        return None
    if reduction == "mean":
        s = np.nan if wsum == 0 else s / wsum
    return odt.type(s)


# ------------------------------------------------------------ elementwise

def run(loss, method, y_pred, y_true, kwargs):
    """The generic implementation of every Loss method."""
    where = f"{loss.name}{_METHOD[method]}"
    reduction = parse_kwargs(loss, where, kwargs)
    if loss.family == "elementwise":
        return _run_elementwise(loss, where, method, reduction, y_pred, y_true, kwargs)
    from . import _classes
    return _classes.run(loss, where, method, reduction, y_pred, y_true, kwargs)


def _run_elementwise(loss, where, method, reduction, y_pred, y_true, kwargs):
    spec = loss.spec
    p, cdt, odt = resolve_pred(where, y_pred)
    shape = p.shape
    t, _ = resolve_operand(where, "y_true", y_true, cdt, shape)
    w = w0 = None
    if kwargs.get("sample_weight") is not None:
        w, w0 = resolve_operand(where, "sample_weight", kwargs["sample_weight"], cdt, shape)
    axis = normalize_axis(where, kwargs.get("axis"), p.ndim, reduction)
    params = spec.pack(kwargs, cdt)
    kernel = spec.kernel
    x = None
    for ap in spec.array_params:
        if kwargs.get(ap.name) is not None:
            x, x0 = resolve_operand(where, ap.name, kwargs[ap.name], cdt, shape)
            check_values(where, ap.name, x0, ap.domain, ap.doc or ap.name)
            kernel = spec.kernel_with_array
    nthreads = check_threads(where, kwargs.get("n_threads"))
    out = check_out(where, kwargs.get("out"), shape, odt) if method != VALUE else None
    if method == VALUE and kwargs.get("out") is not None:
        raise TypeError(f"{where}() takes no out= (the value is a scalar or a new array)")
    for chk in spec.checks:
        arr = p if chk.arg == "y_pred" else t
        check_values(where, chk.arg, arr, chk.domain, chk.what)
    kid = _core.EW_KERNELS[kernel]
    # --- from here on nothing can fail
    return _elementwise_compute(where, method, reduction, axis, kid, params,
                                p, t, w, w0, x, out, cdt, odt, nthreads)


def _deriv_buffer(out, shape, cdt, odt, inputs):
    """Where the kernel writes the derivative: out itself when it can."""
    if out is not None and out.dtype == cdt and not any(
            np.may_share_memory(out, a) for a in inputs if a is not None):
        return out
    return np.empty(shape, dtype=cdt)


def _finish_deriv(buf, out, odt):
    if out is not None:
        if buf is not out:
            out[...] = buf
        return out
    return buf if buf.dtype == odt else buf.astype(odt)


def _elementwise_compute(where, method, reduction, axis, kid, params,
                         p, t, w, w0, x, out, cdt, odt, nthreads):
    shape = p.shape
    n = p.size
    want_val = method in (VALUE, VALUE_AND_GRAD)
    deriv_mode = {VALUE: 0, GRAD: _core.MODE_GRAD, VALUE_AND_GRAD: _core.MODE_GRAD,
                  HESSIAN: _core.MODE_HESS}[method]
    deriv = None
    if deriv_mode:
        deriv = _deriv_buffer(out, shape, cdt, odt, (p, t, w, x))
    g = deriv if deriv_mode == _core.MODE_GRAD else None
    h = deriv if deriv_mode == _core.MODE_HESS else None

    value = None
    if axis is None and reduction != "none":
        # full reduction: the denominator is known before the pass
        if reduction == "mean":
            if w is None:
                wsum = float(n)
            elif n == 0:
                wsum = 0.0          # no element: whatever the (broadcast) weights hold
            else:
                wsum = float(np.sum(w0, dtype=np.float64)) * (n // w0.size)
            scale, wfactor, wsum = mean_scale(reduction, wsum, cdt)
            if wfactor != 1.0:
                w = np.broadcast_to(scaled_weights(w0, wfactor, cdt), shape)
        else:
            wsum, scale = None, 1.0
        mode = (_core.MODE_SUM if want_val else 0) | deriv_mode
        s = _core.ew_call(kid, mode, params, p, t, w, x, None, g, h, scale, nthreads)
        value = finish_full(where, reduction, s, wsum, want_val, odt)
    elif reduction == "none":
        v = np.empty(shape, dtype=cdt) if want_val else None
        mode = (_core.MODE_VAL if want_val else 0) | deriv_mode
        _core.ew_call(kid, mode, params, p, t, w, x, v, g, h, 1.0, nthreads)
        if want_val:
            value = v if v.dtype == odt else v.astype(odt)
    else:
        value = _partial_axis(where, reduction, axis, kid, params, p, t, w, x,
                              g, h, want_val, deriv_mode, cdt, odt, nthreads)

    if deriv_mode:
        deriv = _finish_deriv(deriv, out, odt)
    if method == VALUE:
        return value
    if method == VALUE_AND_GRAD:
        return value, deriv
    return deriv


def _partial_axis(where, reduction, axis, kid, params, p, t, w, x, g, h,
                  want_val, deriv_mode, cdt, odt, nthreads):
    """Reduction over some axes: per-element values, then np.sum over axis.
    For "mean", each element's weight is w / W(slice), so one kernel pass
    gives both the value terms and the correctly scaled derivative."""
    shape = p.shape
    empty_slices = None
    coef = w
    if reduction == "mean":
        if w is None:
            count = 1
            for ax in axis:
                count *= shape[ax]
            coef = None
            scale = 1.0 / count if count else 0.0
            if count == 0:
                empty_slices = True
        else:
            wk = np.sum(w, axis=axis, keepdims=True, dtype=np.float64)
            zero = wk == 0
            with np.errstate(divide="ignore", invalid="ignore"):
                c = np.where(zero, 0.0, w / np.where(zero, 1.0, wk))
            coef = np.broadcast_to(c.astype(cdt, copy=False), shape)
            scale = 1.0
            if zero.any():
                empty_slices = np.squeeze(zero, axis=axis)
    else:
        scale = 1.0
    v = np.empty(shape, dtype=cdt) if want_val else None
    mode = (_core.MODE_VAL if want_val else 0) | deriv_mode
    _core.ew_call(kid, mode, params, p, t, coef, x, v, g, h, scale, nthreads)
    if not want_val:
        return None
    value = np.sum(v, axis=axis, dtype=np.float64)
    if reduction == "mean" and coef is None:
        value = value * scale if scale else np.full(value.shape, np.nan)
    if empty_slices is not None and np.any(empty_slices):
        _empty_mean_warning(where)
        value = np.where(empty_slices, np.nan, value)
    return np.asarray(value).astype(odt)
