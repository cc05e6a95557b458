"""The elementwise family: one loss value per element of the first input.

Lays the operands out for the C driver (src_c/elementwise.c): the
declaration's operands fill the kernel's input slots in order (y_pred,
y_true, third input), an array parameter (pos_weight) takes the third slot,
and the kernel's derivative outputs belong to the declaration's
differentiable operands in order.  Everything else is ``fastloss._call``.
"""
import numpy as np

from .. import _core
from .._call import (Plan, check_out, check_threads, check_values, deriv_buffer,
                     finish_deriv, package, reduce, resolve_operand, resolve_pred)


def run(loss, call):
    spec = loss.spec
    where = call.where
    names = spec.inputs
    p, cdt, odt = resolve_pred(where, call.inputs[0], names[0])
    shape = p.shape
    views, own = [p], [p]
    for name, x in zip(names[1:], call.inputs[1:]):
        b, a = resolve_operand(where, name, x, cdt, shape, keep=True)
        views.append(b)
        own.append(a)
    w = w0 = None
    if call.get("sample_weight") is not None:
        w, w0 = resolve_operand(where, "sample_weight", call.get("sample_weight"), cdt, shape,
                                keep=True)
    params = spec.pack(call.kwargs, cdt)
    kernel = spec.kernel
    if spec.kernel_with_flag is not None:
        flag, alt = spec.kernel_with_flag
        if spec.param(flag).check(loss.name, call.get(flag, spec.param(flag).default)):
            kernel = alt
    x = views[2] if len(views) > 2 else None
    for ap in spec.array_params:
        if call.get(ap.name) is not None:
            x, x0 = resolve_operand(where, ap.name, call.get(ap.name), cdt, shape, keep=True)
            check_values(where, ap.name, x0, ap.domain, ap.doc or ap.name)
            kernel = spec.kernel_with_array
    nthreads = check_threads(where, call.get("n_threads"))
    outs_g = _check_outs(call, call.out_grad, own, names, odt)
    outs_h = _check_outs(call, call.out_hess, own, names, odt)
    for chk in spec.checks:
        k = names.index(chk.arg)
        check_values(where, chk.arg, own[k], chk.domain, chk.what)
    kid = _core.EW_KERNELS[kernel]
    t = views[1]

    # derivative buffers of the full shape, one per kernel output the call
    # wants (None: not wanted; the driver lends scratch)
    diff = spec.differentiable
    inputs = (p, t, w, x)

    def buffers(outs):
        bufs = [None] * len(diff)
        for j, name in enumerate(call.wrt):
            o = None if outs is None else outs[j]
            if o is not None and o.shape != shape:
                o = None        # a broadcast input: a full buffer, summed after
            bufs[diff.index(name)] = deriv_buffer(o, shape, cdt, inputs)
        return bufs

    gb = buffers(outs_g) if call.want_grad else [None] * len(diff)
    hb = buffers(outs_h) if call.want_hess else [None] * len(diff)
    g0, g1 = (gb + [None])[:2]
    h0, h1 = (hb + [None])[:2]

    def kernel_call(mode, weights, val, scale):
        return _core.ew_call(kid, mode, params, p, t, weights, x, val,
                             g0 if mode & _core.MODE_GRAD else None,
                             h0 if mode & _core.MODE_HESS else None, scale, nthreads,
                             g1 if mode & _core.MODE_GRAD else None,
                             h1 if mode & _core.MODE_HESS else None)

    def full_wsum():
        n = p.size
        if w is None:
            return float(n)
        if n == 0:
            return 0.0          # no element: whatever the (broadcast) weights hold
        return _core.weight_sum(w0) * (n // w0.size)

    plan = Plan(shape=shape, weights=w, weights0=w0, kernel=kernel_call,
                full_wsum=full_wsum, batch=shape[0] if shape else 1)
    value = reduce(call, plan, cdt, odt)

    def finish(bufs, outs):
        res = []
        for j, name in enumerate(call.wrt):
            k = diff.index(name)
            i = names.index(name)
            res.append(finish_deriv(bufs[k], None if outs is None else outs[j], odt,
                                    own[i].shape))
        return res

    grads = finish(gb, outs_g) if call.want_grad else None
    hesses = finish(hb, outs_h) if call.want_hess else None
    return package(call, value, grads, hesses)


def _check_outs(call, outs, own, names, odt):
    """out= arrays, each of its own input's shape."""
    if outs is None:
        return None
    return tuple(check_out(call.where, o, own[names.index(name)].shape, odt,
                           f"{name}'s shape") for o, name in zip(outs, call.wrt))
