"""The call semantics, written once for every family.

It resolves the arguments of a call (positional
and keyword inputs, bound parameters, ``reduction``, ``wrt``,
``cotangent``, ``out=``, ``n_threads``: ``parse``); the loss's family
(``fastloss._families``, whose ``run`` is what a ``Loss`` method calls when
its compiled fast path does not apply) lays the operands out for its C
driver.  What every family shares -- reading arrays, dtypes, broadcasting
without enlarging, weights, the reductions over ``axis`` with their
denominators, the folding of ``cotangent`` into the weights, derivative
buffers and ``out=`` -- is here.  Every check happens before any output is
written.
"""
import math
import operator
import warnings
from dataclasses import dataclass
from typing import Optional, Tuple

import numpy as np

from . import _core

VALUE, GRAD, VALUE_AND_GRAD, HESSIAN, GRAD_AND_HESSIAN = (
    _core.VALUE, _core.GRAD, _core.VALUE_AND_GRAD, _core.HESSIAN, _core.GRAD_AND_HESSIAN)
METHOD_NAMES = {VALUE: "", GRAD: ".grad", VALUE_AND_GRAD: ".value_and_grad",
                HESSIAN: ".hessian", GRAD_AND_HESSIAN: ".grad_and_hessian"}
COMMON = ("reduction", "sample_weight", "axis", "out", "n_threads")
DERIVATIVE_KEYWORDS = ("wrt", "cotangent")
_DLPACK_CPU = 1


# ------------------------------------------------------------------ inputs

def _describe(x):
    """A short, user-facing description of a value (no NumPy reprs; a
    float in the shortest form of its own dtype)."""
    if isinstance(x, np.floating):
        return str(x)
    if isinstance(x, np.generic):
        x = x.item()
    return repr(x)


def as_array(where, name, x):
    """Any array_like -> ndarray without copying where possible.

    CPU __dlpack__ objects (torch, JAX) come through np.from_dlpack; objects
    that must not be silently converted are a TypeError."""
    if isinstance(x, np.ndarray):
        if isinstance(x, np.ma.MaskedArray):
            raise TypeError(f"{where}: {name} is a NumPy masked array, whose mask would be "
                            "dropped; pass the data (x.data) and the mask as sample_weight "
                            "(~x.mask)")
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
                            f"{tuple(int(d) for d in dev)}); move it to the CPU first "
                            "(e.g. .cpu())")
        if hasattr(x, "__dlpack__"):
            try:
                return np.from_dlpack(x)
            except (TypeError, BufferError, RuntimeError, ValueError, AttributeError):
                pass
        bf = _torch_bfloat16(x)
        if bf is not None:
            return bf
    if mod.split(".")[0] in ("cupy", "jax") and not hasattr(x, "__array__"):
        raise TypeError(f"{where}: {name} is not a CPU array")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as e:
        raise TypeError(f"{where}: {name} could not be read as an array: {e}") from None
    return a


def _torch_bfloat16(x):
    """A CPU torch bfloat16 tensor (NumPy has no such dtype, so DLPack
    refuses it) as float32: it is computed in float32 anyway (SPEC 2)."""
    if type(x).__module__.split(".")[0] != "torch":
        return None
    try:
        import torch
        if x.dtype == torch.bfloat16:
            return x.detach().float().numpy()
    except Exception:
        return None
    return None


def _is_bfloat16(dt):
    return dt.kind == "V" and dt.name == "bfloat16" and dt.itemsize == 2


def check_kind(where, name, a):
    k = a.dtype.kind
    if k in "fiub" or _is_bfloat16(a.dtype):
        return
    what = {"c": "complex", "O": "object", "U": "string", "S": "bytes",
            "M": "datetime", "m": "timedelta", "V": "structured"}.get(k, str(a.dtype))
    raise TypeError(f"{where}: {name} has {what} dtype {a.dtype}; "
                    "fastloss takes real numbers (float, int or bool)")


def compute_dtypes(where, name, dt):
    """(compute dtype, output dtype) for a first operand of dtype dt."""
    if dt.kind == "f":
        size = dt.itemsize
        if size == 2:
            return np.dtype(np.float32), np.dtype(np.float16)
        if size in (4, 8):
            d = np.dtype(np.float32 if size == 4 else np.float64)
            return d, d
        raise TypeError(f"{where}: {name} has dtype {dt}, which fastloss does "
                        "not compute in; cast it to float64")
    if _is_bfloat16(dt):
        return np.dtype(np.float32), dt
    return np.dtype(np.float64), np.dtype(np.float64)


def _cast(a, cdt):
    """a in cdt, aligned and native (a view where it already is)."""
    if _is_bfloat16(a.dtype):
        a = a.astype(np.float32)
    if a.dtype == np.float16 and cdt == np.float32 and a.size:
        return _core.half_cast(a).reshape(a.shape)
    return np.require(a, dtype=cdt, requirements="A")


def to_output(a, odt):
    """A float32 / float64 result in the output dtype (float16 by the C cast:
    NumPy's takes ~90 ns per subnormal half, and mean gradients of large
    calls are subnormal in float16)."""
    if a.dtype == odt:
        return a
    if odt == np.float16 and a.dtype == np.float32 and a.size:
        return _core.half_cast(a).reshape(a.shape)
    return a.astype(odt)


def resolve_pred(where, y_pred, name="y_pred"):
    """The first operand -> (array in the compute dtype, aligned and native;
    compute dtype; output dtype)."""
    a = as_array(where, name, y_pred)
    check_kind(where, name, a)
    cdt, odt = compute_dtypes(where, name, a.dtype)
    return _cast(a, cdt), cdt, odt


def broadcast_shape(where, name, shape, target, what):
    """Checks that `shape` broadcasts to `target` without enlarging it."""
    try:
        b = np.broadcast_shapes(tuple(shape), tuple(target))
    except ValueError:
        raise ValueError(f"{where}: {name} of shape {tuple(shape)} does not broadcast "
                         f"to {what} {tuple(target)}") from None
    if b != tuple(target):
        raise ValueError(f"{where}: {name} of shape {tuple(shape)} would enlarge {what} "
                         f"{tuple(target)} to {b}; reshape it (e.g. y.ravel() or "
                         f"y[..., None]) so that it matches")


def resolve_operand(where, name, x, cdt, shape, what="y_pred's shape", keep=False):
    """An operand: cast to cdt, broadcast to `shape` (a view), never
    enlarging it.  Returns (broadcast view, original-shape array).  keep:
    an array the elementwise driver converts as it reads (real dtypes,
    aligned, native) keeps its dtype."""
    a = as_array(where, name, x)
    check_kind(where, name, a)
    broadcast_shape(where, name, a.shape, shape, what)
    if not (keep and _core.converts(a)):
        a = _cast(a, cdt)
    return np.broadcast_to(a, shape), a


def check_out(where, out, shape, odt, what="y_pred's shape"):
    if out is None:
        return None
    if not isinstance(out, np.ndarray):
        raise TypeError(f"{where}: out must be a numpy.ndarray, got {type(out).__name__}")
    if out.dtype != odt:
        raise TypeError(f"{where}: out has dtype {out.dtype}; this call returns {odt}")
    if out.shape != tuple(shape):
        raise ValueError(f"{where}: out has shape {out.shape}; expected {what} "
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
    if reduction == "batchmean":
        raise ValueError(f"{where}: axis={axis!r} cannot be combined with "
                         "reduction='batchmean' (it divides by y_pred.shape[0])")
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
    fast = _core.any_outside(arr, domain.lo, domain.hi, domain.lo_open, domain.hi_open,
                             domain.values) if isinstance(arr, np.ndarray) else None
    if fast is False:
        return
    if fast is None and domain.values is None:
        # an interval holds everything if it holds the extremes
        lo, hi = np.fmin.reduce(arr, axis=None), np.fmax.reduce(arr, axis=None)
        if np.isnan(lo) or (bool(domain.contains(lo)) and bool(domain.contains(hi))):
            return
    bad = ~domain.contains(arr)
    if not bad.any():
        return
    i = int(np.flatnonzero(bad.ravel())[0])
    idx = np.unravel_index(i, arr.shape) if arr.ndim else ()
    raise ValueError(f"{where}: {arg} must hold {what}; found "
                     f"{_describe(arr.ravel()[i])} at index {tuple(int(j) for j in idx)}")


# ------------------------------------------------------------ the call

@dataclass
class Call:
    """One call's resolved arguments (before the arrays are read)."""
    where: str
    method: int
    inputs: tuple              # the raw operands, in declaration order
    reduction: str
    kwargs: dict               # loss parameters (bound ones merged in) and the common keywords
    wrt: Tuple[str, ...]       # the inputs to differentiate (empty for VALUE)
    single: bool               # one array per derivative kind, not a tuple
    cotangent: object = None
    want_value: bool = False
    want_grad: bool = False
    want_hess: bool = False
    out_grad: Optional[tuple] = None   # per wrt name, or None
    out_hess: Optional[tuple] = None

    def get(self, key, default=None):
        return self.kwargs.get(key, default)


def _check_wrt(loss, where, wrt):
    diff = loss.differentiable
    if wrt is None:
        return diff, len(diff) == 1
    if isinstance(wrt, str):
        names, single = (wrt,), True
    elif isinstance(wrt, (tuple, list)) and all(isinstance(w, str) for w in wrt):
        names, single = tuple(wrt), False
    else:
        raise TypeError(f"{where}: wrt must be an input name or a tuple of names from "
                        f"{diff}, got {_describe(wrt)}")
    for w in names:
        if w not in diff:
            what = "an input" if w in loss.inputs else "not an input"
            raise ValueError(f"{where}: wrt={w!r} is {what} that {loss.name} can "
                             f"differentiate; its differentiable inputs are {diff}")
    if not names:
        raise ValueError(f"{where}: wrt=() names no input")
    if len(set(names)) != len(names):
        raise ValueError(f"{where}: wrt names an input twice: {names}")
    return names, single


def _split_out(where, out, names, single, what):
    """out= as a tuple aligned with names (or None)."""
    if out is None:
        return None
    if single:
        return (out,)
    if not isinstance(out, (tuple, list)) or len(out) != len(names):
        raise TypeError(f"{where}: {what} must be a tuple of {len(names)} arrays, one per "
                        f"wrt input {names}")
    return tuple(out)


def parse(loss, method, args, kwargs):
    """Resolve a call's arguments (no array is read yet)."""
    where = f"{loss.name}{METHOD_NAMES[method]}"
    spec = loss.spec
    names = loss.inputs
    if len(args) > len(names):
        raise TypeError(f"{where}() takes {len(names)} positional arguments "
                        f"({', '.join(names)}) but {len(args)} were given; the other "
                        f"arguments (reduction=, sample_weight=, ...) are keywords")
    kwargs = dict(kwargs)
    inputs = list(args)
    for name in names[len(args):]:
        if name not in kwargs:
            raise TypeError(f"{where}() missing the input {name!r} (inputs: "
                            f"{', '.join(names)})")
        inputs.append(kwargs.pop(name))
    for name in names[:len(args)]:
        if name in kwargs:
            raise TypeError(f"{where}() got {name!r} both by position and by keyword")
    bound = loss.bound
    allowed = set(COMMON) | {n for n in spec.param_names if n not in bound}
    if method != VALUE:
        allowed |= set(DERIVATIVE_KEYWORDS)
    for k in kwargs:
        if k not in allowed:
            if k in bound:
                raise TypeError(f"{where}() got {k}={_describe(kwargs[k])}, but this loss "
                                f"has {k} bound to {_describe(bound[k])} (loss.bind)")
            hint = (" (the value has no wrt= or cotangent=: they belong to the derivative "
                    "methods)" if k in DERIVATIVE_KEYWORDS else "")
            raise TypeError(f"{where}() got an unexpected keyword argument {k!r}{hint}; "
                            f"it takes {', '.join(sorted(allowed))}")
    reduction = kwargs.get("reduction", "mean")
    if not isinstance(reduction, str) or reduction not in spec.reductions:
        raise ValueError(f"{where}: reduction must be one of "
                         f"{', '.join(repr(r) for r in spec.reductions)}, got "
                         f"{_describe(reduction)}")
    if method in (HESSIAN, GRAD_AND_HESSIAN) and not loss.has_hessian:
        raise NotImplementedError(f"{where}: {loss.name} has no Hessian (has_hessian is False)")
    if method == VALUE:
        if kwargs.get("out") is not None:
            raise TypeError(f"{where}() takes no out= (the value is a scalar or a new array)")
        wrt, single = (), True
    else:
        wrt, single = _check_wrt(loss, where, kwargs.get("wrt"))
    params = dict(bound)
    params.update(kwargs)
    c = Call(where, method, tuple(inputs), reduction, params, wrt, single,
             cotangent=kwargs.get("cotangent"),
             want_value=method in (VALUE, VALUE_AND_GRAD),
             want_grad=method in (GRAD, VALUE_AND_GRAD, GRAD_AND_HESSIAN),
             want_hess=method in (HESSIAN, GRAD_AND_HESSIAN))
    out = kwargs.get("out")
    if method == GRAD_AND_HESSIAN:
        if out is not None:
            if not isinstance(out, (tuple, list)) or len(out) != 2:
                raise TypeError(f"{where}: out must be a pair (grad out, hessian out)")
            c.out_grad = _split_out(where, out[0], wrt, single, "out[0]")
            c.out_hess = _split_out(where, out[1], wrt, single, "out[1]")
    elif c.want_grad:
        c.out_grad = _split_out(where, out, wrt, single, "out")
    elif c.want_hess:
        c.out_hess = _split_out(where, out, wrt, single, "out")
    return c


def bind_loss(loss, params):
    """Loss.bind: a Loss of the same declaration with `params` fixed, checked
    here once (for both compute dtypes)."""
    spec = loss.spec
    allowed = set(spec.param_names) - set(loss.bound)
    for k in params:
        if k not in allowed:
            if k in loss.bound:
                raise TypeError(f"{loss.name}.bind(): {k} is bound already")
            raise TypeError(f"{loss.name}.bind() got an unexpected keyword argument {k!r}; "
                            f"the loss parameters are {', '.join(sorted(allowed)) or 'none'}")
    merged = dict(loss.bound)
    merged.update(params)
    scalar = {k: v for k, v in merged.items() if k not in {a.name for a in spec.array_params}}
    for dt in (np.float32, np.float64):
        spec.pack(scalar, dt)              # raises on a value outside its domain
    from ._registry import signature
    base = type(loss).__mro__[1] if loss.bound else type(loss)
    cls = type(loss.name, (base,), {"__doc__": base.__doc__, "__module__": "fastloss",
                                    "__signature__": signature(spec, merged)})
    return cls(spec, reference=loss.reference, bound=merged)


# -------------------------------------------------------------- reductions

def _empty_mean_warning(where):
    warnings.warn(f"{where}: mean over zero total weight", RuntimeWarning, stacklevel=5)


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
    if reduction not in ("mean", "batchmean"):
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
    if reduction in ("mean", "batchmean") and wsum == 0:
        _empty_mean_warning(where)
    if not want_val:
        return None
    if reduction in ("mean", "batchmean"):
        s = np.nan if wsum == 0 else s / wsum
    return odt.type(s)


def _as_odt(v, odt):
    return to_output(v, odt)


@dataclass
class Plan:
    """What a family hands to `reduce`: the per-sample (per-element) shape,
    the weights, how the mean's denominators are formed, and its kernel.

    kernel(mode, weights, val, scale) runs the family's C driver over every
    sample: mode has MODE_SUM / MODE_VAL for the value and MODE_GRAD /
    MODE_HESS for the derivatives (written into the family's own buffers),
    weights (per sample, broadcast to `shape`, compute dtype, or None)
    multiply value and derivatives, scale the derivatives; returns the
    weighted sum for MODE_SUM.
    full_wsum(): the denominator of a full "mean".  denom_weights(): the
    per-sample weight in the mean's denominator (None: 1 everywhere)."""
    shape: tuple
    weights: object            # broadcast to shape, or None
    weights0: object           # as given (for cheap sums), or None
    kernel: object
    full_wsum: object
    denom_weights: object = None
    batch: int = 1             # "batchmean": y_pred.shape[0]


def reduce(call, plan, cdt, odt):
    """The value of the call and the derivatives (written by the kernel into
    the family's buffers): full and partial reductions, "none", cotangent.
    Returns the value (None when not wanted)."""
    where, reduction = call.where, call.reduction
    shape = plan.shape
    axis = normalize_axis(where, call.get("axis"), len(shape), reduction)
    dmode = ((_core.MODE_GRAD if call.want_grad else 0)
             | (_core.MODE_HESS if call.want_hess else 0))
    want_val = call.want_value
    # the cotangent: broadcastable to the shape of the returned value
    cot = None
    if call.cotangent is not None and dmode:
        if reduction == "none":
            vshape = shape
        elif axis is None:
            vshape = ()
        else:
            vshape = tuple(n for i, n in enumerate(shape) if i not in axis)
        cot, _ = resolve_operand(where, "cotangent", call.cotangent, cdt, vshape,
                                 "the value's shape")
    # ---- from here on nothing can fail on the user's input
    w = plan.weights
    if axis is None and reduction != "none":
        if reduction == "mean":
            wsum = plan.full_wsum()
            w0 = plan.weights0
            fi = np.finfo(cdt)
            if (w0 is not None and w0.dtype.itemsize > cdt.itemsize
                    and not fi.tiny <= abs(wsum) <= fi.max):
                # weights wider than the compute dtype (float64 weights of a
                # float32 call) whose total is beyond its normal range: the
                # total of the weights as the kernels read them (rounded to
                # cdt: 5e-324 is 0, 1e300 inf), not of the unrounded ones
                count = math.prod(shape) // max(w0.size, 1)
                with np.errstate(over="ignore", under="ignore"):
                    w0 = _cast(w0, cdt)
                wsum = _core.weight_sum(w0) * count if count else 0.0
        elif reduction == "batchmean":
            wsum = float(plan.batch)
        else:
            wsum = None
        scale, wfactor, wsum = mean_scale(reduction, wsum, cdt)
        if wfactor != 1.0:
            w = np.broadcast_to(scaled_weights(np.ones(shape, cdt) if w is None
                                               else plan.weights0, wfactor, cdt), shape)
        c = 1.0 if cot is None else float(cot[()])
        mode = (_core.MODE_SUM if want_val else 0) | dmode
        s = plan.kernel(mode, w, None, scale * c if dmode else scale)
        return finish_full(where, reduction, s, wsum, want_val, odt)

    if reduction == "none":
        coef, scale, empty = w, 1.0, None
    else:
        coef, scale, empty = _slice_coefficients(plan, reduction, axis, cdt)
    v = np.empty(shape, dtype=cdt) if want_val else None
    if cot is None or not dmode:
        plan.kernel((_core.MODE_VAL if want_val else 0) | dmode, coef, v, scale)
    else:
        # the cotangent folds into the derivatives' weights; the value keeps
        # its own (a second pass only when both are asked for)
        c = cot if reduction == "none" else np.expand_dims(cot, axis)
        dcoef = np.broadcast_to(c, shape) if coef is None else np.multiply(coef, c, dtype=cdt)
        if want_val:
            plan.kernel(_core.MODE_VAL, coef, v, scale)
        plan.kernel(dmode, np.broadcast_to(dcoef, shape), None, scale)
    if not want_val:
        return None
    if reduction == "none":
        return _as_odt(v, odt)
    value = np.sum(v, axis=axis, dtype=np.float64)
    if reduction == "mean" and coef is None:
        value = value * scale if scale else np.full(value.shape, np.nan)
    if empty is not None and np.any(empty):
        _empty_mean_warning(where)
        value = np.where(empty, np.nan, value)
    return np.asarray(value).astype(odt)


def _slice_coefficients(plan, reduction, axis, cdt):
    """Reduction over some axes: each sample's weight is w / W(slice) for
    "mean", so that one pass gives both the value terms and the correctly
    scaled derivatives.  Returns (coefficients or None, scale, mask of empty
    slices or None)."""
    shape = plan.shape
    w = plan.weights
    if reduction != "mean":
        return w, 1.0, None
    dw = plan.denom_weights() if plan.denom_weights is not None else None
    if w is None and dw is None:
        count = 1
        for ax in axis:
            count *= shape[ax]
        return None, (1.0 / count if count else 0.0), (True if count == 0 else None)
    # the weights as the kernels read them: rounded to the compute dtype
    s = np.ones(shape) if w is None else w.astype(cdt).astype(np.float64)
    wk = np.sum(s if dw is None else s * dw, axis=axis, keepdims=True, dtype=np.float64)
    zero = wk == 0
    with np.errstate(divide="ignore", invalid="ignore"):
        c = np.where(zero, 0.0, s / np.where(zero, 1.0, wk))
    empty = np.squeeze(zero, axis=axis) if zero.any() else None
    return np.broadcast_to(c.astype(cdt, copy=False), shape), 1.0, empty


# ----------------------------------------------------- derivative buffers

def deriv_buffer(out, shape, cdt, inputs):
    """Where the kernel writes a derivative: out itself when it can."""
    if out is not None and out.dtype == cdt and tuple(out.shape) == tuple(shape) and not any(
            np.may_share_memory(out, a) for a in inputs if a is not None):
        return out
    return np.empty(shape, dtype=cdt)


def finish_deriv(buf, out, odt, own_shape=None):
    """A derivative buffer (of the call's full shape) as the user gets it:
    summed over the axes its input was broadcast along (own_shape), in
    out= or in the output dtype."""
    if own_shape is not None and tuple(own_shape) != buf.shape:
        buf = sum_to_shape(buf, own_shape)
    if out is not None:
        if buf is not out:
            out[...] = to_output(buf, out.dtype) if buf.dtype != out.dtype else buf
        return out
    return to_output(buf, odt)


def sum_to_shape(a, shape):
    """a summed over the axes that broadcasting added or stretched, so that
    it has `shape` (the gradient of a broadcast input, as autograd gives)."""
    shape = tuple(shape)
    lead = a.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                      if n == 1 and a.shape[lead + i] != 1)
    r = np.sum(a, axis=axes, dtype=np.float64 if a.dtype == np.float32 else a.dtype,
               keepdims=True) if axes else a
    # (np.require, not np.ascontiguousarray: that makes a 0-d result 1-d)
    return np.require(r.reshape(shape), dtype=a.dtype, requirements="C")


def package(call, value, grads, hesses):
    """The method's return value from the value and the per-wrt derivatives."""
    def pick(ds):
        return ds[0] if call.single else tuple(ds)
    m = call.method
    if m == VALUE:
        return value
    if m == GRAD:
        return pick(grads)
    if m == VALUE_AND_GRAD:
        return value, pick(grads)
    if m == HESSIAN:
        return pick(hesses)
    return pick(grads), pick(hesses)
