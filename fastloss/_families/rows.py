"""The row family: vectors along the last axis; one loss value per sample
(the leading axes).  Lays the operands out for the C driver (src_c/rows.c):
row inputs as C-contiguous (n, D) blocks or one broadcast row, per-sample
operands (labels, weights) as contiguous length-n arrays.  Everything else
is ``fastloss._call``."""
import math

import numpy as np

from .. import _core
from .._call import (Plan, check_out, check_threads, check_values, deriv_buffer, finish_deriv,
                     package, reduce, resolve_operand, resolve_pred)


def _rows_of(a, shape):
    """a broadcast to `shape` (n..., D) as the driver reads it: a single row
    (stride 0 between samples) or C-contiguous (n, D)."""
    D = shape[-1]
    if a.ndim <= 1 or all(n == 1 for n in a.shape[:-1]):
        row = np.ascontiguousarray(np.broadcast_to(a.reshape(a.shape[-1:]), (D,)) if a.ndim
                                   else np.full(D, a))
        return row.reshape(1, D), 0
    n = math.prod(shape[:-1])
    return np.ascontiguousarray(np.broadcast_to(a, shape)).reshape(n, D), D


def run(loss, call):
    spec = loss.spec
    where = call.where
    names = spec.inputs
    first, cdt, odt = resolve_pred(where, call.inputs[0], names[0])
    if first.ndim == 0:
        raise ValueError(f"{where}: {names[0]} must have a last axis of vectors (got a 0-d "
                         "array)")
    shape = first.shape
    sample_shape = shape[:-1]
    n = math.prod(sample_shape)
    D = shape[-1]
    rows, own, per = [first], [first], {}
    for op, x in zip(spec.operands[1:], call.inputs[1:]):
        if op.shape == "samples":
            b, a = resolve_operand(where, op.name, x, cdt, sample_shape, "the per-sample shape")
            per[op.name] = (b, a)
        else:
            b, a = resolve_operand(where, op.name, x, cdt, shape, f"{names[0]}'s shape")
            rows.append(a)
            own.append(a)
    w = w0 = None
    if call.get("sample_weight") is not None:
        w, w0 = resolve_operand(where, "sample_weight", call.get("sample_weight"), cdt,
                                sample_shape, "the per-sample shape")
    vals = {p.name: p.check(loss.name, call.get(p.name, p.default)) for p in spec.params}
    prm = tuple(float(vals[p.name]) for p in spec.params) + (0.0,) * (4 - len(spec.params))
    nthreads = check_threads(where, call.get("n_threads"))
    row_names = [o.name for o in spec.operands if o.shape != "samples"]
    outs = None
    if call.out_grad is not None:
        outs = tuple(check_out(where, o, own[row_names.index(nm)].shape, odt, f"{nm}'s shape")
                     for o, nm in zip(call.out_grad, call.wrt))
    for chk in spec.checks:
        arr = per[chk.arg][1] if chk.arg in per else own[row_names.index(chk.arg)]
        check_values(where, chk.arg, arr, chk.domain, chk.what)
    # ---- nothing below can fail on the user's input
    kid = _core.ROW_KERNELS[spec.kernel]
    laid = [_rows_of(a, shape) for a in rows]
    xs = [r for r, _ in laid]
    y = None
    if per:
        (yb, _), = per.values()
        y = np.ascontiguousarray(yb).reshape(n)
    diff = spec.differentiable
    gbufs = [None] * len(row_names)
    if call.want_grad:
        for j, nm in enumerate(call.wrt):
            o = None if outs is None else outs[j]
            if o is not None and o.shape != shape:
                o = None
            gbufs[row_names.index(nm)] = deriv_buffer(o, shape, cdt, xs)

    def kernel_call(mode, weights, val, scale):
        sw = None if weights is None else np.ascontiguousarray(weights, dtype=cdt).reshape(n)
        v = None if val is None else val.reshape(n)
        grads = [None if g is None or not mode & _core.MODE_GRAD else g.reshape(n, D)
                 for g in gbufs]
        return _core.row_call(kid, mode, n, prm, xs, y, sw, v, grads, scale, nthreads)

    plan = Plan(shape=sample_shape, weights=w, weights0=w0, kernel=kernel_call,
                full_wsum=lambda: float(n) if w is None else
                (0.0 if n == 0 else _core.weight_sum(w0) * (n // max(w0.size, 1))),
                batch=sample_shape[0] if sample_shape else 1)
    value = reduce(call, plan, cdt, odt)
    grads = None
    if call.want_grad:
        grads = [finish_deriv(gbufs[row_names.index(nm)], None if outs is None else outs[j],
                              odt, own[row_names.index(nm)].shape)
                 for j, nm in enumerate(call.wrt)]
    return package(call, value, grads, None)
