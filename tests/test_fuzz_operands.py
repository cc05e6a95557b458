"""Property-based fuzzing of the operand model over every declaration
(``fastloss._registry.TABLE``; tests/test_fuzz.py fuzzes the two-input call
shape of SPEC section 5 in depth).

Each example draws a whole call from the declaration: dtype (float16/32/64,
int), the first operand's shape (0-d for elementwise losses, empty, odd
sizes), the other operands broadcast (dimensions dropped or set to 1),
layouts (Fortran, strided, negative strides), values from the loss's sampler
with injected NaN / +-inf / zeros / huge and tiny magnitudes, values outside
the data checks' domains, reduction (every one the loss declares), axis, a
wrt subset (or a bad name), a cotangent (scalar, per value element, wrong
shape), sample weights, out= tuples (right and wrong), n_threads.  Then:

* errors: fastloss raises exactly when its reference does, an exception of
  the same kind, and writes nothing into out=;
* results: the value and every derivative match the reference computed in
  float64 on the same (compute-dtype-rounded) inputs, within
  ``RTOL * scale`` with scale the largest magnitude of the reference result
  (float64 1e-10, float32 1e-4, float16 4e-3: results of moderate
  inputs; special values are checked for NaN agreement only where the
  element's inputs are all finite);
* shapes and dtypes: each derivative has its input's own shape and the
  output dtype; out= arrays are returned themselves.

Profiles: tests/conftest.py ("ci": bounded and derandomized; "long").
"""
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import fastloss as fl
from fastloss._registry import TABLE, make_inputs

RTOL = {np.dtype(np.float64): 1e-10, np.dtype(np.float32): 1e-4, np.dtype(np.float16): 4e-3}


def _first_shape(draw, spec):
    if spec.family == "elementwise":
        return draw(st.sampled_from([(), (1,), (7,), (3, 5), (2, 3, 4), (0,), (17, 1)]))
    if spec.family == "class":
        return draw(st.sampled_from([(1, 3), (6, 5), (4, 2, 3), (0, 4)]))
    return draw(st.sampled_from([(1, 1), (6, 5), (2, 3, 4), (5, 1), (0, 3)]))


def _broadcast_of(draw, shape):
    """A shape that broadcasts to `shape` without enlarging it."""
    out = list(shape)
    for i in range(len(out)):
        if draw(st.booleans()) and draw(st.booleans()):
            out[i] = 1
    drop = draw(st.integers(0, len(out))) if draw(st.booleans()) else 0
    return tuple(out[drop:])


def _layout(draw, a):
    kind = draw(st.sampled_from(["c", "c", "f", "strided", "neg"]))
    if a.ndim == 0 or a.size == 0:
        return a
    if kind == "f":
        return np.asfortranarray(a)
    if kind == "strided":
        return np.repeat(a, 2, axis=-1)[..., ::2]
    if kind == "neg":
        return np.flip(np.flip(a, axis=-1).copy(), axis=-1)
    return a


@st.composite
def calls(draw, spec):
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    shape = _first_shape(draw, spec)
    full = shape if shape else (1,)
    *arrays, _ = make_inputs(spec.name, full, np.float64, rng)
    arrays = [a.reshape(shape) if (a.shape == full and not shape) else a for a in arrays]
    dtype = draw(st.sampled_from([np.float64, np.float32, np.float32, np.float16, np.int64]))
    special = draw(st.booleans()) and draw(st.booleans())
    out = []
    for k, (op, a) in enumerate(zip(spec.operands, arrays)):
        if k and op.shape == "broadcast" and a.ndim and a.size and draw(st.booleans()):
            bs = _broadcast_of(draw, a.shape)
            drop = a.ndim - len(bs)
            idx = (0,) * drop + tuple(slice(0, 1) if n == 1 else slice(None) for n in bs)
            a = np.ascontiguousarray(a[idx])
        if a.dtype.kind == "f":
            a = a.copy()
            if special and a.size:
                i = draw(st.integers(0, a.size - 1))
                a.flat[i] = draw(st.sampled_from([np.nan, np.inf, -np.inf, 0.0, 1e30, -1e-30]))
            if draw(st.integers(0, 20)) == 0 and a.size:      # outside a data check
                a.flat[0] = -7.5
            if k == 0 or op.differentiable:
                a = a.astype(dtype) if dtype != np.int64 else np.round(a * 3).astype(np.int64)
        out.append(_layout(draw, a))
    kw = {}
    red = draw(st.sampled_from(spec.reductions))
    kw["reduction"] = red
    method = draw(st.sampled_from(["value", "grad", "value_and_grad"]
                                  + (["hessian", "grad_and_hessian"] if spec.has_hessian else [])))
    if method != "value":
        diff = spec.differentiable
        pick = draw(st.lists(st.sampled_from(diff), min_size=1, max_size=len(diff), unique=True))
        kw["wrt"] = pick[0] if len(pick) == 1 and draw(st.booleans()) else tuple(pick)
        if draw(st.integers(0, 15)) == 0:
            kw["wrt"] = "nope"
    if red not in ("none", "batchmean") and draw(st.booleans()):
        nd = len(shape) if spec.family == "elementwise" else len(shape) - 1
        if nd:
            kw["axis"] = draw(st.integers(-nd, nd - 1))
    if draw(st.booleans()):
        ps = shape if spec.family == "elementwise" else shape[:-1]
        kw["sample_weight"] = np.asarray(rng.uniform(0, 2, ps))
    if method in ("grad", "value_and_grad") and draw(st.booleans()):
        kw["cotangent"] = draw(st.sampled_from(["scalar", "full", "bad"]))
    kw["n_threads"] = draw(st.sampled_from([None, 1, 2]))
    return method, out, kw


def _cotangent(loss, method, arrays, kw):
    c = kw.pop("cotangent", None)
    if c is None:
        return kw
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            v = loss.reference(*arrays, **{k: v for k, v in kw.items() if k not in ("wrt",)})
        except Exception:
            return kw
    shape = np.shape(v)
    if c == "scalar":
        kw["cotangent"] = 1.75
    elif c == "full":
        kw["cotangent"] = np.linspace(-1, 2, int(np.prod(shape))).reshape(shape)
    else:
        kw["cotangent"] = np.ones(tuple(shape) + (3,))
    return kw


def _flat(r):
    if isinstance(r, tuple):
        out = []
        for x in r:
            out += _flat(x)
        return out
    return [r]


def _check(spec, method, arrays, kw):
    loss = fl.losses[spec.name]
    kw = _cotangent(loss, method, arrays, dict(kw))
    note(f"{spec.name}.{method} {[(a.dtype, a.shape) for a in arrays]} {kw}")
    ref_err = got_err = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ref = getattr(loss.reference, method if method != "value" else "__call__")(
                *[a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays],
                **{k: v for k, v in kw.items() if k != "n_threads"})
        except (ValueError, TypeError, NotImplementedError) as e:
            ref_err = e
        try:
            got = getattr(loss, method if method != "value" else "__call__")(*arrays, **kw)
        except (ValueError, TypeError, NotImplementedError) as e:
            got_err = e
    if ref_err is not None or got_err is not None:
        assert ref_err is not None and got_err is not None, (ref_err, got_err)
        assert isinstance(got_err, type(ref_err)) or isinstance(ref_err, type(got_err)) or (
            isinstance(got_err, ValueError) and isinstance(ref_err, ValueError)), (ref_err, got_err)
        assert spec.name in str(got_err), got_err
        return
    odt = np.dtype(np.float64) if arrays[0].dtype.kind != "f" else (
        np.dtype(np.float32) if arrays[0].dtype == np.float32 else arrays[0].dtype)
    rtol = RTOL[odt]
    for g, r in zip(_flat(got), _flat(ref)):
        g = np.asarray(g)
        r = np.asarray(r, dtype=np.float64)
        assert g.shape == r.shape, (g.shape, r.shape)
        if g.dtype.kind == "f":
            assert g.dtype == odt, (g.dtype, odt)
        g = g.astype(np.float64)
        # a result beyond the output dtype's range is that infinity
        with np.errstate(over="ignore"):
            ovf = np.isfinite(r) & ~np.isfinite(r.astype(odt))
        assert np.array_equal(g[ovf], r.astype(odt)[ovf].astype(np.float64)), "overflow"
        fin = np.isfinite(r) & ~ovf
        if any(a.dtype.kind == "f" and not np.isfinite(a).all() for a in arrays):
            continue          # special values: no crash and the same errors
        scale = float(np.max(np.abs(r[fin]))) if fin.any() else 0.0
        if spec.family == "rows" and r.ndim and arrays[0].ndim:
            # a row loss's gradient is a difference of terms ~ 1 / |row|
            # (cosine: x2/(|x1||x2|) - cos x1/|x1|^2): accurate relative to those
            norms = [np.linalg.norm(np.asarray(a, np.float64), axis=-1)
                     for a, op in zip(arrays, spec.operands) if op.shape != "samples"]
            m = min(float(np.min(nm)) for nm in norms if nm.size) if any(
                nm.size for nm in norms) else 1.0
            scale = max(scale, 4.0 / max(m, 1e-6))
        err = np.abs(g[fin] - r[fin])
        tiny = float(np.finfo(odt).tiny) * 16
        assert (err <= rtol * scale + tiny).all(), (float(err.max()), scale)
        assert np.array_equal(np.isnan(g), np.isnan(r)) or odt != np.float64


@pytest.mark.parametrize("spec", TABLE, ids=[s.name for s in TABLE])
def test_fuzz_operand_model(spec):
    @settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                     HealthCheck.filter_too_much])
    @given(calls(spec))
    def run(case):
        method, arrays, kw = case
        _check(spec, method, arrays, kw)
    run()
