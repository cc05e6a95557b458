"""The elementwise losses through the public API (SPEC sections 1-5).

Every test is parametrised over the rows of ``fastloss._registry.TABLE`` whose
family is "elementwise", so a new elementwise loss is tested by adding its
row (plus its sampler in ``fastloss._registry``).  Parameter values, bad
parameter values, data-check violations and array parameters are all derived
from the row.  Only closed-form limits, the SPEC's own examples and the
cross-library oracles name losses, and they skip when a loss is absent.

Oracles: the pure-NumPy reference (``fl.<loss>.reference``) on float64
inputs, 4th-order central finite differences of fastloss itself, closed
forms, PyTorch and scikit-learn when installed.
"""
import copy
import gc
import math
import os
import subprocess
import sys
import textwrap
import threading
import tracemalloc
import warnings
import zlib

import numpy as np
import pytest

import fastloss as fl
from fastloss._registry import make_inputs
from fastloss._registry import TWO_INPUT as TABLE
from fastloss._registry import TABLE as ALL_LOSSES
from fastloss._spec import UNIT

SPECS = [s for s in TABLE if s.family == "elementwise"]
IDS = [s.name for s in SPECS]
REDUCTIONS = ("mean", "sum", "none")
METHODS = ("value", "grad", "value_and_grad", "hessian")
DERIV_METHODS = ("grad", "value_and_grad", "hessian")

# Tolerances against the float64 reference, relative to the magnitude of the
# terms a result is computed from (see `magnitudes`):
# - float64: the kernels use vectorised exp/log/log1p accurate to a few ulp
#   (eps = 2.2e-16) and sums of ~10^3 terms accumulate in a different order
#   than NumPy's pairwise sum (typically sqrt(n)*eps, at worst n*eps = 2e-13
#   for n = 1e3, never reached by random-signed rounding errors): 1e-13.
# - float32: inputs are exact in float64, the float32 kernel makes a handful
#   of roundings of 6e-8 each (plus the amplification of exp(x) by |x| for
#   |x| <= ~10), and the sums accumulate in float64: 2e-6 (~30 ulp).
# - float16 is computed in float32 and rounded once to float16 (relative
#   error 2**-11 = 4.9e-4), so 1e-3.
RTOL = {np.dtype(np.float64): 1e-13, np.dtype(np.float32): 2e-6, np.dtype(np.float16): 1e-3}


def sum_rtol(odt):
    """Two computations of one full reduction that may only differ in the
    association of the float64 accumulation (different gathering or
    blocking of the same terms): the float64 sums differ by ~sqrt(n)*eps
    (1e-13 covers n up to 1e6 at a few ulp each), and a float32/float16
    result is one rounding of that sum, which may land on the neighbouring
    representable value: 2 ulp of the output dtype."""
    odt = np.dtype(odt)
    return 1e-13 if odt == np.float64 else 2 * float(np.finfo(odt).eps)


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def loss_of(spec):
    return fl.get(spec.name)


def needs(name):
    if name not in fl.losses:
        pytest.skip(f"no loss named {name!r} in this build")
    return fl.get(name)


# --------------------------------------------------------------- parameters

def _inside(param, v):
    d = param.domain
    if v is None or not math.isfinite(v) or v == param.default:
        return False
    if d.values is not None:
        return v in d.values
    lo_ok = v > d.lo if d.lo_open else v >= d.lo
    hi_ok = v < d.hi if d.hi_open else v <= d.hi
    return lo_ok and hi_ok and v not in (d.lo, d.hi)


def interior_value(param):
    """A value strictly inside the parameter's domain, not the default."""
    d = param.domain
    if d.values is not None:
        return next(v for v in d.values if v != param.default)
    cands = []
    if isinstance(param.default, (int, float)) and param.default:
        cands += [param.default * 0.6, param.default * 1.7]
    if math.isfinite(d.lo) and math.isfinite(d.hi):
        cands += [d.lo + 0.2 * (d.hi - d.lo), d.lo + 0.8 * (d.hi - d.lo)]
    if math.isfinite(d.lo):
        cands.append(d.lo + 0.5)
    if math.isfinite(d.hi):
        cands.append(d.hi - 0.5)
    cands.append(0.5)
    return next(v for v in cands if _inside(param, v))


def closed_boundaries(param):
    d = param.domain
    if d.values is not None:
        return []
    out = []
    if math.isfinite(d.lo) and not d.lo_open:
        out.append(d.lo)
    if math.isfinite(d.hi) and not d.hi_open:
        out.append(d.hi)
    return [v for v in out if v != param.default]


def outside_values(param):
    """Values just and far outside the domain, and NaN."""
    d = param.domain
    bad = [math.nan]
    if d.values is not None:
        bad += [min(d.values) - 1, max(d.values) + 1, (d.values[0] + d.values[-1]) / 2 + 0.25]
        return bad
    if math.isfinite(d.lo):
        bad += [d.lo if d.lo_open else math.nextafter(d.lo, -math.inf), d.lo - 0.5]
    if math.isfinite(d.hi):
        bad += [d.hi if d.hi_open else math.nextafter(d.hi, math.inf), d.hi + 0.5]
    return bad


def param_cases(spec):
    """(case id, scalar keyword values, names of array parameters to give):
    the defaults, each scalar parameter inside its domain and on each closed
    boundary, None where allowed, and each array parameter given."""
    cases = [("default", {}, ())]
    for prm in spec.params:
        v = interior_value(prm)
        cases.append((f"{prm.name}={v:g}", {prm.name: v}, ()))
        for b in closed_boundaries(prm):
            cases.append((f"{prm.name}={b:g}", {prm.name: b}, ()))
        if prm.allow_none:
            cases.append((f"{prm.name}=None", {prm.name: None}, ()))
    for ap in spec.array_params:
        cases.append((ap.name, {}, (ap.name,)))
        # combined with a non-default scalar parameter, if any
        if spec.params:
            prm = spec.params[0]
            cases.append((f"{ap.name}+{prm.name}", {prm.name: interior_value(prm)}, (ap.name,)))
    return cases


CASES = [(s, c) for s in SPECS for c in param_cases(s)]
CASE_IDS = [f"{s.name}-{c[0]}" for s, c in CASES]


def array_param_value(ap, shape, rng):
    """An array parameter broadcast over the last axis (PyTorch's pos_weight
    layout), inside its domain, with its lower bound as one of the values."""
    d = ap.domain
    lo = d.lo if math.isfinite(d.lo) else -1.0
    hi = d.hi if math.isfinite(d.hi) else lo + 3.0
    n = shape[-1] if len(shape) else 1
    a = rng.uniform(lo, hi, n)
    if not d.lo_open:
        a[0] = lo
    return a


def data(spec, shape, dtype=np.float64, case=None, seed=0):
    """(y_pred, y_true, kwargs) in `dtype`: the row's typical inputs and the
    keyword arguments of a parameter case."""
    rng = np.random.default_rng(seed_of(spec.name, shape, seed))
    p, t, kw = make_inputs(spec.name, shape, np.float64, rng)
    kw = dict(kw)
    if case is not None:
        _, scalars, arrays = case
        kw.update(scalars)
        for ap in spec.array_params:
            if ap.name in arrays:
                kw[ap.name] = array_param_value(ap, shape, rng).astype(dtype)
    return p.astype(dtype), t.astype(dtype), kw


def as64(kw, cdt):
    """Keyword arguments as the kernels see them (rounded to the compute
    dtype), in float64 for the reference."""
    out = {}
    for k, v in kw.items():
        if isinstance(v, np.ndarray):
            out[k] = v.astype(cdt).astype(np.float64)
        elif isinstance(v, float):
            out[k] = float(cdt.type(v))
        else:
            out[k] = v
    return out


def make_weights(kind, shape, dtype, rng):
    if kind == "none":
        return None
    if kind == "full":
        w = rng.uniform(0.0, 2.0, shape)
        w[rng.random(shape) < 0.1] = 0.0
    elif kind == "last":
        w = rng.uniform(0.5, 2.0, shape[-1:])
    elif kind == "ones":
        w = np.ones(shape)
    else:
        raise ValueError(kind)
    return w.astype(dtype)


def compute_dtypes(dtype):
    dtype = np.dtype(dtype)
    if dtype.kind == "f":
        if dtype.itemsize == 2:
            return np.dtype(np.float32), dtype
        return dtype, dtype
    return np.dtype(np.float64), np.dtype(np.float64)


# -------------------------------------------------------------- comparisons

def term_magnitudes(name, p, t, kw):
    """Per-element magnitudes (value, grad, hessian) of the terms whose
    difference a loss is, where that cancellation is intrinsic: every
    implementation's rounding error is relative to these, not to the
    difference.  None for the terms a loss does not cancel."""
    with np.errstate(all="ignore"):
        if name == "poisson":          # exp(p) - t*p ; exp(p) - t
            e = np.exp(p)
            return e + np.abs(t * p), e + np.abs(t), None
        if name == "tweedie":          # e2/(2-rho) + t*e1/(rho-1) ; e2 - t*e1
            rho = kw.get("power", 1.5)
            e2 = np.exp((2 - rho) * p)
            te1 = np.where(t == 0, 0, t * np.exp((1 - rho) * p))
            return None, e2 + np.abs(te1), None
    return None, None, None


def magnitudes(spec, p64, t64, kw64):
    """(value, grad, hessian) per-element error scales: the reference's own
    magnitude, or the magnitude of the cancelling terms where larger."""
    ref = loss_of(spec).reference
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        base = (np.abs(ref(p64, t64, reduction="none", **kw64)),
                np.abs(ref.grad(p64, t64, reduction="none", **kw64)),
                np.abs(ref.hessian(p64, t64, reduction="none", **kw64)))
    terms = term_magnitudes(spec.name, p64, t64, kw64)
    return tuple(b if m is None else np.maximum(b, np.broadcast_to(m, b.shape))
                 for b, m in zip(base, terms))


def assert_close(got, ref, scale, rtol, what="", atol=0.0):
    """|got - ref| <= rtol*scale + atol elementwise; equal infinities and
    NaN where both are NaN count as equal."""
    g = np.asarray(got, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    assert g.shape == r.shape, f"{what}: shape {g.shape} != {r.shape}"
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape)
    with np.errstate(invalid="ignore"):
        ok = (g == r) | (np.isnan(g) & np.isnan(r)) | (np.abs(g - r) <= rtol * s + atol)
    if not ok.all():
        idx = np.argwhere(~ok)[:5] if g.ndim else [()]
        lines = [f"{what}: {int((~ok).sum())} of {ok.size} differ (rtol {rtol:g} of scale)"]
        for i in idx:
            i = tuple(i)
            lines.append(f"  at {i}: got {g[i]!r}, expected {r[i]!r}, scale {s[i]:.3g}")
        raise AssertionError("\n".join(lines))


def bits(x):
    """A value's type, dtype, shape and exact bytes."""
    a = np.asarray(x)
    return type(x).__name__, a.dtype.str, a.shape, a.tobytes()


def assert_identical(a, b, what=""):
    ba, bb = bits(a), bits(b)
    if ba == bb:
        return
    if ba[:3] != bb[:3]:
        raise AssertionError(f"{what}: type/dtype/shape {ba[:3]} != {bb[:3]}")
    x, y = np.asarray(a).ravel(), np.asarray(b).ravel()
    diff = x.view(f"u{x.itemsize}") != y.view(f"u{y.itemsize}")
    i = int(np.argmax(diff))
    raise AssertionError(f"{what}: {int(diff.sum())} of {diff.size} elements differ in their "
                         f"bits; first at flat index {i}: {x[i]!r} vs {y[i]!r}")


def call(obj, method, p, t, **kw):
    if method == "value":
        return obj(p, t, **kw)
    return getattr(obj, method)(p, t, **kw)


def check_value_type(v, reduction, odt, partial=False, what=""):
    """Full reductions give a NumPy scalar of the output dtype (as np.mean);
    'none' and partial reductions an ndarray."""
    if reduction == "none" or partial:
        assert isinstance(v, np.ndarray), f"{what}: {type(v)} is not an ndarray"
    else:
        assert isinstance(v, np.generic) and not isinstance(v, np.ndarray), \
            f"{what}: {type(v)} is not a NumPy scalar"
    assert v.dtype == odt, f"{what}: dtype {v.dtype} != {odt}"


class Failures:
    """Collects assertion failures so that one test reports all of them."""

    def __init__(self):
        self.msgs = []

    def check(self, fn, *args, **kw):
        try:
            fn(*args, **kw)
        except AssertionError as e:
            self.msgs.append(str(e))

    def done(self):
        assert not self.msgs, f"{len(self.msgs)} failure(s):\n" + "\n".join(self.msgs[:12])


# ============================================================ 1. reference

@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("spec,case", CASES, ids=CASE_IDS)
def test_matches_reference(spec, case, dtype):
    """value, grad, hessian and value_and_grad for every reduction, with and
    without sample weights, against the reference on float64 inputs."""
    L = loss_of(spec)
    cdt = np.dtype(dtype)
    rtol = RTOL[cdt]
    # subnormal results carry an absolute error of ~tiny*eps: a floor of a
    # few tiny so that underflowing tails do not count as relative errors
    atol = 4 * np.finfo(cdt).tiny
    shape = (37, 29)                  # odd sizes: SIMD remainders everywhere
    p, t, kw = data(spec, shape, dtype, case)
    p64, t64, kw64 = p.astype(np.float64), t.astype(np.float64), as64(kw, cdt)
    mv, mg, mh = magnitudes(spec, p64, t64, kw64)
    rng = np.random.default_rng(seed_of(spec.name, case[0]))
    fails = Failures()
    for wkind in ("none", "full", "last"):
        w = make_weights(wkind, shape, dtype, rng)
        w64 = None if w is None else w.astype(np.float64)
        wb = np.ones(shape) if w is None else np.broadcast_to(w64, shape)
        for red in REDUCTIONS:
            what = f"{spec.name}({case[0]}) {cdt.name} weights={wkind} reduction={red}"
            common = dict(reduction=red, sample_weight=w, **kw)
            common64 = dict(reduction=red, sample_weight=w64, **kw64)
            den = wb.sum() if red == "mean" else 1.0
            v = L(p, t, **common)
            g = L.grad(p, t, **common)
            h = L.hessian(p, t, **common)
            vg = L.value_and_grad(p, t, **common)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                rv = L.reference(p64, t64, **common64)
            rg = L.reference.grad(p64, t64, **common64)
            rh = L.reference.hessian(p64, t64, **common64)
            fails.check(check_value_type, v, red, cdt, what=what)
            if red == "none":
                vscale = wb * mv
            else:
                vscale = np.sum(wb * mv) / den
            fails.check(assert_close, v, rv, vscale, rtol, what + " value", atol)
            for name, got, ref, m in (("grad", g, rg, mg), ("hessian", h, rh, mh)):
                fails.check(assert_close, got, ref, wb * m / den, rtol, f"{what} {name}", atol)
                assert isinstance(got, np.ndarray) and got.dtype == cdt and got.shape == shape
            # 3. the fused pass gives exactly the separate results
            assert isinstance(vg, tuple) and len(vg) == 2
            fails.check(assert_identical, vg[0], v, what + " value_and_grad[0] vs value")
            fails.check(assert_identical, vg[1], g, what + " value_and_grad[1] vs grad")
    fails.done()


# ====================================================== 2. finite differences

def interior(spec, p):
    """Move y_pred into the central 90% of a bounded y_pred domain (the
    probabilities of binary_cross_entropy), where a finite-difference step
    cannot leave it and the derivatives stay moderate."""
    for chk in spec.checks:
        d = chk.domain
        if chk.arg == "y_pred" and math.isfinite(d.lo) and math.isfinite(d.hi):
            u = (np.clip(p, d.lo, d.hi) - d.lo) / (d.hi - d.lo)
            p = d.lo + (d.hi - d.lo) * (0.05 + 0.9 * u)
    return p


def smooth_mask(spec, p, t, kw, h):
    """Elements whose derivative is smooth on [p - 3h, p + 3h], judged from
    the reference gradient sampled every h/2: a jump of the gradient (mae,
    quantile, hinge) or of its slope (huber, smooth_l1, squared_hinge) gives
    second differences of at least ~jump*h/4, while a smooth gradient gives
    (h/2)**2 * |g''|, ~1e-8 |g''|."""
    ref = loss_of(spec).reference
    ks = np.arange(-6, 7) * (h / 2)
    G = np.stack([ref.grad(p + k, t, reduction="none", **kw) for k in ks])
    d2 = np.abs(G[2:] - 2 * G[1:-1] + G[:-2]).max(axis=0)
    return d2 <= 1e-6 * (1 + np.abs(G).max(axis=0))


@pytest.mark.parametrize("spec,case", CASES, ids=CASE_IDS)
def test_derivatives_match_finite_differences(spec, case):
    """grad vs 4th-order central differences of the fastloss value (float64,
    one element perturbed at a time, reductions sum and mean, with and
    without weights); hessian vs central differences of grad."""
    L = loss_of(spec)
    shape = (4, 6)
    p, t, kw = data(spec, shape, np.float64, case, seed=1)
    p = interior(spec, p)
    h = 2.0 ** -12      # exact in binary; see the error budget below
    mask = smooth_mask(spec, p, t, kw, h)
    assert mask.mean() >= 0.5, "too few elements away from kinks to test"
    rng = np.random.default_rng(seed_of("fd", spec.name, case[0]))
    fails = Failures()
    for wkind in ("none", "full"):
        w = make_weights(wkind, shape, np.float64, rng)
        wb = np.ones(shape) if w is None else w
        for red in ("sum", "mean"):
            what = f"{spec.name}({case[0]}) weights={wkind} reduction={red}"
            kwr = dict(reduction=red, sample_weight=w, **kw)
            den = wb.sum() if red == "mean" else 1.0
            # Error budget.  Truncation of the 4th-order stencil:
            # h**4/30 * |f^(5)| ~ 1.2e-16 |f^(5)|, below 1e-8 relative for
            # the sampled inputs.  Rounding: each value of the whole sum F
            # carries ~n*eps*S (S = sum |w*l| / den, n = 24), amplified by
            # 18/(12h) ~ 6e3: ~3e-11 * S.  Hence rtol 1e-7 (gradients are
            # O(1) relative) and atol 5e-11 * (1 + S).
            S = float(np.sum(np.abs(wb * L(p, t, reduction="none", **kw)))) / den
            atol = 5e-11 * (1 + S)
            fd = np.zeros(shape)
            for i in zip(*np.nonzero(mask)):
                vals = []
                for k in (-2, -1, 1, 2):
                    q = p.copy()
                    q[i] += k * h
                    vals.append(float(L(q, t, **kwr)))
                fd[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
            g = L.grad(p, t, **kwr)
            fails.check(assert_close, np.where(mask, g, 0), fd, np.abs(g), 1e-7,
                        what + " grad vs FD of value", atol)
            # the elementwise Hessian is diagonal: shifting all elements at
            # once differentiates each gradient element by its own input.
            # Gradients are O(1) (their rounding ~eps), so the rounding part
            # is ~eps*|g|/h ~ 1e-12 |g|: atol 1e-10 * (1 + max|g|).
            G = [L.grad(p + k * h, t, **kwr) for k in (-2, -1, 1, 2)]
            fdh = (G[0] - 8 * G[1] + 8 * G[2] - G[3]) / (12 * h)
            H = L.hessian(p, t, **kwr)
            fails.check(assert_close, np.where(mask, H, 0), np.where(mask, fdh, 0),
                        np.abs(H), 1e-7, what + " hessian vs FD of grad",
                        1e-10 * (1 + np.abs(g).max()))
    fails.done()


# ============================================== 3. fused pass, fast vs generic

@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.float16, np.int64],
                         ids=["f64", "f32", "f16", "i64"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_value_and_grad_is_value_and_grad_bitwise(spec, dtype):
    """value_and_grad == (value, grad) bit for bit: fast path, weights,
    partial axis, Fortran input, every reduction."""
    L = loss_of(spec)
    p, t, kw = data(spec, (6, 5, 7), np.float64, seed=2)
    if np.dtype(dtype).kind == "i":
        p = np.round(interior(spec, p))
    p = p.astype(dtype)
    w = make_weights("full", p.shape, np.float64, np.random.default_rng(3))
    fails = Failures()
    for red in REDUCTIONS:
        for extra in ({}, {"sample_weight": w}, {"axis": 1}, {"axis": (0, 2), "sample_weight": w},
                      {"_fortran": True}):
            extra = dict(extra)
            pp = np.asfortranarray(p) if extra.pop("_fortran", False) else p
            if red == "none" and "axis" in extra:
                continue
            kwr = dict(reduction=red, **extra, **kw)
            what = f"{spec.name} {np.dtype(dtype).name} {kwr}"
            vg = L.value_and_grad(pp, t, **kwr)
            fails.check(assert_identical, vg[0], L(pp, t, **kwr), what + " value")
            fails.check(assert_identical, vg[1], L.grad(pp, t, **kwr), what + " grad")
            out = np.full(p.shape, -7.0, dtype=vg[1].dtype)
            vo = L.value_and_grad(pp, t, out=out, **kwr)
            assert vo[1] is out
            fails.check(assert_identical, vo[0], vg[0], what + " value with out=")
            fails.check(assert_identical, out, vg[1], what + " grad with out=")
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_fast_path_equals_generic_path(spec):
    """Contiguous same-shape float arrays (the compiled fast path) give the
    results of the generic path fed the same numbers another way."""
    L = loss_of(spec)
    fails = Failures()
    for dtype in (np.float64, np.float32):
        cdt = np.dtype(dtype)
        p, t, kw = data(spec, (40, 33), dtype, seed=4)
        ones = np.ones(p.shape, dtype)
        variants = {
            "fortran": (np.asfortranarray(p), np.asfortranarray(t), {}),
            "strided": (np.repeat(p, 2, axis=1)[:, ::2], t, {}),
            "list-target": (p, t.tolist(), {}),
            "weights-of-ones": (p, t, {"sample_weight": ones}),
            "axis-all": (p, t, {"axis": (0, 1)}),
        }
        for red in REDUCTIONS:
            for m in METHODS:
                base = call(L, m, p, t, reduction=red, **kw)
                for vname, (pp, tt, extra) in variants.items():
                    if red == "none" and "axis" in extra:
                        continue
                    got = call(L, m, pp, tt, reduction=red, **extra, **kw)
                    what = f"{spec.name} {cdt.name} {m} {red} {vname}"
                    pairs = zip(got, base) if m == "value_and_grad" else [(got, base)]
                    for a, b in pairs:
                        if np.ndim(b):      # elementwise results: same kernel, same bits
                            fails.check(assert_identical, a, b, what)
                        else:               # sums: only the association may differ
                            fails.check(assert_close, a, b, abs(float(b)), sum_rtol(cdt), what)
                            assert type(a) is type(b)
    fails.done()


# ============================================================ 4. layouts

class ArrayLike:
    """An object that only offers __array__ (SPEC section 2)."""

    def __init__(self, a):
        self._a = a

    def __array__(self, dtype=None, copy=None):
        return self._a if dtype is None else self._a.astype(dtype)


def to_layout(a, layout):
    """The same values as the C-contiguous 2-D array `a`, in another layout."""
    if layout == "C":
        return a
    if layout == "F":
        return np.asfortranarray(a)
    if layout == "strided":
        big = np.zeros((a.shape[0] * 2, a.shape[1] * 3), a.dtype)
        big[::2, ::3] = a
        return big[::2, ::3]
    if layout == "negative":
        return np.ascontiguousarray(a[::-1, ::-1])[::-1, ::-1]
    if layout == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if layout == "byteswapped":
        return a.astype(a.dtype.newbyteorder())
    if layout == "unaligned":
        if a.dtype.itemsize == 1:
            return a.copy()
        buf = np.zeros(a.nbytes + 1, np.uint8)
        b = buf[1:].view(a.dtype).reshape(a.shape)
        b[...] = a
        assert not b.flags.aligned
        return b
    if layout == "list":
        return a.tolist()
    if layout == "array_like":
        return ArrayLike(a)
    torch = pytest.importorskip("torch")
    if layout == "torch":
        return torch.from_numpy(a.copy())
    if layout == "torch_transposed":
        return torch.from_numpy(np.ascontiguousarray(a.T)).t()
    raise ValueError(layout)


LAYOUTS = ["C", "F", "strided", "negative", "readonly", "byteswapped", "unaligned",
           "list", "array_like", "torch", "torch_transposed"]
DTYPES = [np.float16, np.float32, np.float64, np.int64, np.bool_]


def typed_inputs(spec, shape, dtype, seed=0):
    """Inputs with y_pred of `dtype` (int and bool y_pred rounded inside the
    y_pred domain) and y_true in y_pred's dtype for floats, float64 else."""
    p, t, kw = data(spec, shape, np.float64, seed=seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        p = p > np.median(p)
    elif dt.kind in "iu":
        p = np.round(interior(spec, p)).astype(dt)
    else:
        p = p.astype(dt)
        t = t.astype(dt)
    return p, t, kw


def snapshot(x):
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.numpy().copy()
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, ArrayLike):
        return x._a.copy()
    return copy.deepcopy(x)


def unchanged(before, x):
    return np.array_equal(snapshot(x), before, equal_nan=True) and \
        np.asarray(snapshot(x)).dtype == np.asarray(before).dtype


@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_layouts_and_dtypes(spec, layout):
    """Every layout x dtype gives the results of contiguous copies, in the
    documented output dtype, and leaves its inputs untouched."""
    L = loss_of(spec)
    shape = (13, 11)
    fails = Failures()
    for dtype in DTYPES:
        p, t, kw = typed_inputs(spec, shape, dtype, seed=5)
        cdt, odt = compute_dtypes(p.dtype)
        w = make_weights("full", shape, np.float64, np.random.default_rng(6))
        # a Python list of float16/float32 numbers would be read as float64:
        # keep y_pred an array there, lists for the other operands
        lp = layout != "list" or p.dtype in (np.float64, np.int64, np.bool_)
        P = to_layout(p, layout) if lp else p
        T = to_layout(t, layout)
        W = to_layout(w, layout)
        before = [snapshot(x) for x in (P, T, W)]
        for weighted in (False, True):
            for red in REDUCTIONS:
                kwr = dict(reduction=red, sample_weight=W if weighted else None, **kw)
                kwc = dict(reduction=red, sample_weight=w if weighted else None, **kw)
                what = f"{spec.name} {layout} {np.dtype(dtype).name} weighted={weighted} {red}"
                for m in METHODS:
                    got = call(L, m, P, T, **kwr)
                    base = call(L, m, p, t, **kwc)
                    pairs = zip(got, base) if m == "value_and_grad" else [(got, base)]
                    for k, (a, b) in enumerate(pairs):
                        if m == "value" or (m == "value_and_grad" and k == 0):
                            fails.check(check_value_type, a, red, odt, what=what + " " + m)
                        else:
                            ok = isinstance(a, np.ndarray) and a.dtype == odt and a.shape == shape
                            if not ok:
                                fails.msgs.append(f"{what} {m}: got {type(a)} "
                                                  f"{getattr(a, 'dtype', '')} {np.shape(a)}")
                        if np.ndim(b):
                            fails.check(assert_identical, a, b, f"{what} {m}")
                        else:
                            fails.check(assert_close, a, b, abs(float(b)), sum_rtol(odt),
                                        f"{what} {m}")
        for x, b, nm in zip((P, T, W), before, ("y_pred", "y_true", "sample_weight")):
            if not unchanged(b, x):
                fails.msgs.append(f"{spec.name} {layout} {np.dtype(dtype).name}: {nm} was modified")
    fails.done()


@pytest.mark.parametrize("dtype", [np.float16, np.int64, np.int32, np.uint8, np.bool_])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_other_dtypes_are_computed_in_float(spec, dtype):
    """float16 is computed in float32 and returned as float16; integer and
    bool y_pred are computed and returned as float64."""
    L = loss_of(spec)
    shape = (9, 8)
    p, t, kw = typed_inputs(spec, shape, dtype, seed=7)
    if np.dtype(dtype) == np.uint8:
        p = np.abs(p.astype(np.int64)).astype(np.uint8)
    cdt, odt = compute_dtypes(p.dtype)
    pc = p.astype(cdt)
    tc = np.asarray(t).astype(cdt)
    p64, t64 = p.astype(np.float64), tc.astype(np.float64)
    mv, mg, mh = magnitudes(spec, p64, t64, kw)
    fails = Failures()
    for red in REDUCTIONS:
        what = f"{spec.name} {np.dtype(dtype).name} {red}"
        for m, mag in (("value", mv), ("grad", mg), ("hessian", mh)):
            got = call(L, m, p, t, reduction=red, **kw)
            same = call(L, m, pc, tc, reduction=red, **kw)
            ref = call(L.reference, m, p64, t64, reduction=red, **kw)
            assert np.asarray(got).dtype == odt, f"{what} {m}: dtype {np.asarray(got).dtype}"
            if np.ndim(same):
                # the same kernel on the same numbers, then one cast
                fails.check(assert_identical, got, same.astype(odt), f"{what} {m}")
            else:
                # float16: the float64 sum is rounded to float16 directly,
                # not through float32: may differ by 1 ulp of float16
                fails.check(assert_close, got, same, abs(float(same)), np.finfo(odt).eps,
                            f"{what} {m}")
            den = p.size if red == "mean" else 1.0
            scale = mag / den if np.ndim(ref) or m != "value" else np.sum(mag) / den
            fails.check(assert_close, got, ref, scale, RTOL[odt], f"{what} {m} vs reference",
                        8 * np.finfo(odt).tiny)
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_broadcast_targets_and_weights(spec):
    """Scalar targets, (C,) and (N,1) against (N,C), and broadcast weights
    give the results of explicitly broadcast copies."""
    L = loss_of(spec)
    N, C = 7, 5
    p, t, kw = data(spec, (N, C), np.float64, seed=8)
    w = np.random.default_rng(9).uniform(0.5, 2.0, (N, C))     # no zero total weight
    targets = {
        "python-scalar": float(t[0, 0]),
        "0-d": np.asarray(t[0, 0]),
        "np-scalar": t[0, 0],
        "(C,)": t[0].copy(),
        "(1,C)": t[:1].copy(),
        "(N,1)": t[:, :1].copy(),
        "int-scalar": int(round(float(t[0, 0]))),
    }
    weights = {"scalar": 2.5, "(C,)": w[0].copy(), "(N,1)": w[:, :1].copy(), "(1,1)": w[:1, :1].copy()}
    fails = Failures()
    cases = [(tn, tv, None, None) for tn, tv in targets.items()]
    cases += [("full", t, wn, wv) for wn, wv in weights.items()]
    for tn, tv, wn, wv in cases:
        tb = np.ascontiguousarray(np.broadcast_to(np.asarray(tv, dtype=np.float64), (N, C)))
        wb = None if wv is None else np.ascontiguousarray(np.broadcast_to(np.asarray(wv, float), (N, C)))
        for red in REDUCTIONS:
            for m in METHODS:
                got = call(L, m, p, tv, reduction=red, sample_weight=wv, **kw)
                base = call(L, m, p, tb, reduction=red, sample_weight=wb, **kw)
                what = f"{spec.name} target {tn} weights {wn} {m} {red}"
                pairs = zip(got, base) if m == "value_and_grad" else [(got, base)]
                for a, b in pairs:
                    if wv is None and np.ndim(b):
                        # a broadcast target enters the same arithmetic
                        fails.check(assert_identical, a, b, what)
                    elif np.ndim(b):
                        # a broadcast weight may change how the mean's
                        # denominator sum(w) is associated (e.g. k*sum(w0)):
                        # each element is then scaled by a W a few ulp off
                        fails.check(assert_close, a, b, np.abs(b), 8 * np.finfo(b.dtype).eps, what)
                    else:
                        fails.check(assert_close, a, b, abs(float(b)), sum_rtol(b.dtype), what)
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_zero_dim_inputs(spec):
    """0-d y_pred (Python number, NumPy scalar, 0-d array): a NumPy scalar
    value, 0-d ndarray for 'none', grad and hessian; equal to 1-element."""
    L = loss_of(spec)
    p, t, kw = data(spec, (3,), np.float64, seed=10)
    kw = {k: (v[0] if isinstance(v, np.ndarray) else v) for k, v in kw.items()}
    fails = Failures()
    for pv in (float(p[0]), p[0], np.asarray(p[0])):
        for tv in (float(t[0]), np.asarray(t[0])):
            for red in REDUCTIONS:
                what = f"{spec.name} {type(pv).__name__}/{type(tv).__name__} {red}"
                v = L(pv, tv, reduction=red, **kw)
                fails.check(check_value_type, v, red, np.dtype(np.float64), what=what)
                one = L(p[:1], t[:1], reduction=red, **kw)
                fails.check(assert_identical, np.asarray(v).ravel(), np.asarray(one).ravel(),
                            what)
                for m in ("grad", "hessian"):
                    d = call(L, m, pv, tv, reduction=red, **kw)
                    if not (isinstance(d, np.ndarray) and d.shape == () and d.dtype == np.float64):
                        fails.msgs.append(f"{what} {m}: got {d!r}")
                    fails.check(assert_identical, d.reshape(1),
                                call(L, m, p[:1], t[:1], reduction=red, **kw), what + " " + m)
                vg = L.value_and_grad(pv, tv, reduction=red, **kw)
                fails.check(assert_identical, vg[0], v, what + " value_and_grad")
    fails.done()


# ================================================================ 5. axis

AXES = [0, 1, 2, -1, -2, (0, 2), (2, 0), (-1, -3), (1, 2), (0, 1, 2), ()]


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_axis_reductions(spec, dtype):
    """axis= int, negative, tuple (any order, all axes, none) with and
    without weights (full and broadcast), mean and sum, against the
    reference."""
    L = loss_of(spec)
    cdt = np.dtype(dtype)
    rtol = RTOL[cdt]
    shape = (3, 4, 5)
    case = param_cases(spec)[-1]        # the last case exercises a parameter
    p, t, kw = data(spec, shape, dtype, case, seed=11)
    p64, t64, kw64 = p.astype(np.float64), t.astype(np.float64), as64(kw, cdt)
    mv, mg, mh = magnitudes(spec, p64, t64, kw64)
    rng = np.random.default_rng(12)
    weights = {"none": None,
               "full": rng.uniform(0.1, 2.0, shape),
               "(5,)": rng.uniform(0.1, 2.0, 5),
               "(3,1,1)": rng.uniform(0.1, 2.0, (3, 1, 1)),
               "(4,1)": rng.uniform(0.1, 2.0, (4, 1))}
    fails = Failures()
    for wn, w in weights.items():
        w = None if w is None else w.astype(dtype)
        w64 = None if w is None else w.astype(np.float64)
        wb = np.ones(shape) if w is None else np.broadcast_to(w64, shape)
        for axis in AXES:
            for red in ("mean", "sum"):
                what = f"{spec.name} {cdt.name} weights={wn} axis={axis} {red}"
                kwr = dict(reduction=red, sample_weight=w, axis=axis, **kw)
                kwr64 = dict(reduction=red, sample_weight=w64, axis=axis, **kw64)
                v = L(p, t, **kwr)
                rv = L.reference(p64, t64, **kwr64)
                ax = tuple(range(3)) if axis is None else axis
                full = np.ndim(rv) == 0
                fails.check(check_value_type, v, red, cdt, partial=not full, what=what)
                num = np.sum(wb * mv, axis=ax)
                den = np.sum(wb, axis=ax, keepdims=True) if red == "mean" else 1.0
                vden = np.reshape(den, np.shape(num)) if red == "mean" else 1.0
                fails.check(assert_close, v, rv, num / vden, rtol, what + " value")
                for m, mag in (("grad", mg), ("hessian", mh)):
                    got = call(L, m, p, t, **kwr)
                    ref = call(L.reference, m, p64, t64, **kwr64)
                    fails.check(assert_close, got, ref, wb * mag / den, rtol, f"{what} {m}",
                                4 * np.finfo(cdt).tiny)
                vg = L.value_and_grad(p, t, **kwr)
                fails.check(assert_identical, vg[0], v, what + " value_and_grad[0]")
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_axis_errors(spec):
    L = loss_of(spec)
    p, t, kw = data(spec, (3, 4), np.float64)
    for m in METHODS:
        for axis in (0, -1, (0, 1)):
            with pytest.raises(ValueError) as ei:
                call(L, m, p, t, reduction="none", axis=axis, **kw)
            assert spec.name in str(ei.value) and "axis" in str(ei.value)
        with pytest.raises(ValueError):         # numpy's AxisError is a ValueError
            call(L, m, p, t, axis=2, **kw)
        with pytest.raises(ValueError):
            call(L, m, p, t, axis=(0, 0), **kw)


# ================================================================ 6. errors

def _sentinel_out(p):
    _, odt = compute_dtypes(np.asarray(p).dtype)
    return np.full(np.shape(p), 12345, dtype=odt)


def error_cases(spec):
    """(id, builder) for every applicable row of SPEC section 3.  A builder
    returns dict(p, t, kw, exc, words, methods, out_ok): the call, the
    exception type, strings its message must contain (besides the loss's
    name), the methods to try, and whether a valid out= may be added."""
    cases = []

    def base(shape=(4, 3)):
        return data(spec, shape, np.float64, seed=13)

    def add(cid, fn):
        cases.append((cid, fn))

    def shape_case(pshape, tshape, arg):
        def fn():
            p, t, kw = base(pshape)
            x = np.asarray(data(spec, tshape, np.float64, seed=14)[1 if arg == "y_true" else 0])
            if arg == "y_true":
                t = x
            else:
                kw[arg] = np.abs(x) + 0.5 if arg != "sample_weight" else np.ones(tshape)
            return dict(p=p, t=t, kw=kw, exc=ValueError, words=[arg, str(tuple(tshape))])
        return fn

    operand_args = ["y_true", "sample_weight"] + [a.name for a in spec.array_params]
    for arg in operand_args:
        add(f"{arg}-shape-mismatch", shape_case((4, 3), (4, 2), arg))
        add(f"{arg}-enlarges-(N,)", shape_case((4,), (4, 1), arg))
        add(f"{arg}-enlarges-(N,C)", shape_case((4, 3), (2, 4, 3), arg))
    add("y_true-enlarges-0d", shape_case((), (3,), "y_true"))

    bad_arrays = {
        "complex": lambda a: a.astype(np.complex128),
        "object": lambda a: a.astype(object),
        "string": lambda a: a.astype(str),
        "bytes": lambda a: a.astype("S8"),
        "datetime": lambda a: np.zeros(a.shape, "datetime64[s]"),
        "timedelta": lambda a: np.zeros(a.shape, "timedelta64[s]"),
    }
    for arg in ["y_pred"] + operand_args:
        for kind, conv in bad_arrays.items():
            def fn(arg=arg, conv=conv):
                p, t, kw = base()
                if arg == "y_pred":
                    p = conv(p)
                elif arg == "y_true":
                    t = conv(t)
                else:
                    kw[arg] = conv(np.ones(p.shape[-1:]))
                return dict(p=p, t=t, kw=kw, exc=TypeError, words=[arg], out_ok=arg != "y_pred")
            add(f"{arg}-{kind}", fn)

    for red in ("avg", "Mean", "", None, 1):
        def fn(red=red):
            p, t, kw = base()
            return dict(p=p, t=t, kw=dict(kw, reduction=red), exc=ValueError,
                        words=["reduction", repr(red)])
        add(f"reduction={red!r}", fn)

    others = sorted(({prm.name for s in TABLE for prm in s.params}
                     | {a.name for s in TABLE for a in s.array_params})
                    - set(spec.param_names))
    for kwname in ["weights", "reductions"] + others[:1]:
        def fn(kwname=kwname):
            p, t, kw = base()
            return dict(p=p, t=t, kw=dict(kw, **{kwname: 1.0}), exc=TypeError, words=[kwname])
        add(f"unknown-keyword-{kwname}", fn)

    for prm in spec.params:
        for v in outside_values(prm):
            def fn(prm=prm, v=v):
                p, t, kw = base()
                return dict(p=p, t=t, kw=dict(kw, **{prm.name: v}), exc=ValueError,
                            words=[prm.name, repr(v)])
            add(f"{prm.name}={v!r}", fn)
    for ap in spec.array_params:
        for v in outside_values(ap):
            if math.isnan(v):
                continue        # NaN in an array operand propagates
            def fn(ap=ap, v=v):
                p, t, kw = base()
                a = np.full(p.shape[-1:], 1.0)
                a[1] = v
                return dict(p=p, t=t, kw=dict(kw, **{ap.name: a}), exc=ValueError,
                            words=[ap.name])
            add(f"{ap.name}-value-{v!r}", fn)

    for chk in spec.checks:
        d = chk.domain
        bad = []
        if d.values is not None:        # a finite set: beyond it, between two values
            bad += [min(d.values) - 1.0, max(d.values) + 1.0,
                    (d.values[0] + d.values[1]) / 2 if len(d.values) > 1 else d.values[0] + 0.5,
                    math.inf]
        if math.isfinite(d.lo):
            bad += [d.lo - 0.5, -math.inf]
        if math.isfinite(d.hi):
            bad += [d.hi + 0.5, math.inf]
        for v in bad:
            for dt in (np.float64, np.float32):
                def fn(chk=chk, v=v, dt=dt):
                    p, t, kw = base()
                    p, t = p.astype(dt), t.astype(dt)
                    (p if chk.arg == "y_pred" else t)[1, 2] = v
                    return dict(p=p, t=t, kw=kw, exc=ValueError, words=[chk.arg, str(v)])
                add(f"{chk.arg}-outside-{v!r}-{np.dtype(dt).name}", fn)
            if chk.arg == "y_true":
                def fn(v=v):
                    p, t, kw = base()
                    return dict(p=p, t=v, kw=kw, exc=ValueError, words=["y_true"])
                add(f"y_true-scalar-outside-{v!r}", fn)

    def out_case(make, exc, dtype=np.float64, words=("out",)):
        def fn():
            p, t, kw = base()
            p = p.astype(dtype) if np.dtype(dtype).kind == "f" else \
                np.round(interior(spec, p)).astype(dtype)
            return dict(p=p, t=t, kw=dict(kw, out=make(p)), exc=exc, words=list(words),
                        methods=DERIV_METHODS)
        return fn

    add("out-shape", out_case(lambda p: np.zeros((3, 4)), ValueError, words=("out", "(3, 4)")))
    add("out-flat", out_case(lambda p: np.zeros(12), ValueError, words=("out", "(12,)")))
    add("out-broadcastable", out_case(lambda p: np.zeros((1, 3)), ValueError))
    add("out-strided", out_case(lambda p: np.zeros((4, 6))[:, ::2], ValueError))
    add("out-fortran", out_case(lambda p: np.zeros((4, 3), order="F"), ValueError))

    def readonly(p):
        o = np.zeros(p.shape)
        o.flags.writeable = False
        return o
    add("out-readonly", out_case(readonly, ValueError))
    add("out-list", out_case(lambda p: np.zeros(p.shape).tolist(), TypeError))
    add("out-float32-for-float64", out_case(lambda p: np.zeros(p.shape, np.float32), TypeError))
    add("out-float64-for-float32",
        out_case(lambda p: np.zeros(p.shape, np.float64), TypeError, np.float32))
    add("out-float32-for-float16",
        out_case(lambda p: np.zeros(p.shape, np.float32), TypeError, np.float16))
    add("out-float32-for-int",
        out_case(lambda p: np.zeros(p.shape, np.float32), TypeError, np.int64))
    add("out-int-for-int", out_case(lambda p: np.zeros(p.shape, np.int64), TypeError, np.int64))

    for nt, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError),
                    (True, TypeError), (np.float64(2.0), TypeError)):
        def fn(nt=nt, exc=exc):
            p, t, kw = base()
            return dict(p=p, t=t, kw=dict(kw, n_threads=nt), exc=exc, words=["n_threads"])
        add(f"n_threads={nt!r}", fn)

    for arg in ("y_pred", "y_true"):
        def fn(arg=arg):
            torch = pytest.importorskip("torch")
            p, t, kw = base()
            if arg == "y_pred":
                p = torch.tensor(p, requires_grad=True)
            else:
                t = torch.tensor(t, requires_grad=True)
            return dict(p=p, t=t, kw=kw, exc=TypeError, words=[arg, "detach"],
                        out_ok=arg == "y_true")
        add(f"torch-requires-grad-{arg}", fn)
    return cases


ERROR_CASES = [(s, cid, fn) for s in SPECS for cid, fn in error_cases(s)]


@pytest.mark.parametrize("spec,cid,build", ERROR_CASES,
                         ids=[f"{s.name}-{c}" for s, c, _ in ERROR_CASES])
def test_errors(spec, cid, build):
    """SPEC section 3: the exception type, a message naming the loss and the
    argument, and nothing written into a provided out= array."""
    L = loss_of(spec)
    c = build()
    p, t, kw = c["p"], c["t"], c["kw"]
    methods = c.get("methods", METHODS)
    for m in methods:
        kwm = dict(kw)
        sentinel = None
        if "out" in kwm:
            sentinel = kwm["out"]
        elif m != "value" and c.get("out_ok", True):
            sentinel = kwm["out"] = _sentinel_out(p)
        before = snapshot(sentinel) if isinstance(sentinel, np.ndarray) else None
        with pytest.raises(c["exc"]) as ei:
            call(L, m, p, t, **kwm)
        msg = str(ei.value)
        assert spec.name in msg, f"{m}: message does not name the loss: {msg!r}"
        for word in c["words"]:
            assert word in msg, f"{m}: message does not mention {word!r}: {msg!r}"
        if before is not None:
            assert np.array_equal(sentinel, before), f"{m}: out was written before the error"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_parameter_boundaries_are_accepted(spec):
    """Closed ends of a parameter's domain are valid (beta=0, alpha=0 and 1,
    gamma=0, ...), and so is None where the row allows it."""
    L = loss_of(spec)
    p, t, kw = data(spec, (5,), np.float64)
    for prm in spec.params:
        vals = closed_boundaries(prm) + [interior_value(prm)] + ([None] if prm.allow_none else [])
        for v in vals:
            out = L(p, t, **{prm.name: v})
            assert np.isfinite(out), (prm.name, v, out)


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
def test_hinge_labels_are_validated(name):
    """hinge/squared_hinge take labels -1 and +1, 0 meaning -1 (SPEC section
    5; NaN propagates).  Any other target is a ValueError naming the loss,
    y_true, the first bad value and its index, raised before anything is
    written -- on the compiled fast path and the generic path alike, as the
    reference does."""
    L = needs(name)
    x = np.array([0.3, -0.2, 0.1, 2.0, 1.5])
    ok = np.array([1.0, 0.0, -1.0, np.nan, 1.0])
    se = np.where(ok == 0, -1.0, ok)
    z = np.maximum(1 - se * x, 0)
    want = z if name == "hinge" else z * z
    np.testing.assert_array_equal(L(x, ok, reduction="none"), want)
    np.testing.assert_array_equal(L.reference(x, ok, reduction="none"), want)
    for bad in (2.0, 0.5, -3.0, np.inf, -np.inf, -0.5, 1e-30):
        for dtype in (np.float64, np.float32):
            s = ok.astype(dtype)
            s[3] = bad
            for kw in ({}, {"reduction": "none"}, {"sample_weight": np.ones(5)}):
                out = np.full(5, 7.0, dtype)
                with pytest.raises(ValueError) as e:
                    L.value_and_grad(x.astype(dtype), s, out=out, **kw)
                msg = str(e.value)
                assert name in msg and "y_true" in msg and "(3,)" in msg, msg
                assert str(dtype(bad)) in msg, msg
                assert np.all(out == 7.0), "written before the error"
                with pytest.raises(ValueError):
                    L.reference.value_and_grad(x.astype(dtype), s, **kw)
    # labels of other dtypes: bool ({0, 1}) and integers
    np.testing.assert_array_equal(L(x[:3], np.array([True, False, True]), reduction="none"),
                                  L(x[:3], np.array([1.0, -1.0, 1.0]), reduction="none"))
    with pytest.raises(ValueError, match="y_true"):
        L(x[:3], np.array([1, 2, -1]))


def _bits(a):
    a = np.asarray(a)
    return a.view(np.uint32 if a.dtype == np.float32 else np.uint64)


def _hinge_inputs(n, dtype, seed):
    rng = np.random.default_rng(seed)
    p = rng.normal(size=n).astype(dtype)
    t = rng.choice([-1.0, 0.0, -0.0, 1.0], size=n).astype(dtype)
    k = max(n // 7, 1)
    idx = rng.choice(n, size=min(4 * k, n), replace=False)
    p[idx[:k]] = np.nan                      # NaN y_pred: NaN everywhere
    p[idx[k:2 * k]] = np.where(t[idx[k:2 * k]] == 1, 1.0, -1.0)   # margin exactly 1
    p[idx[2 * k:3 * k]] = np.inf * rng.choice([-1, 1], size=len(idx[2 * k:3 * k]))
    p[idx[3 * k:]] = rng.normal(size=len(idx[3 * k:])) * 1e20      # squares overflow
    return p, t


def _all_methods(L, p, t, out):
    """Every call the fast path makes, with out= where one exists."""
    res = []
    res += [L(p, t), L(p, t, reduction="sum"), L(p, t, reduction="none")]
    res += [L.grad(p, t, out=out).copy(), L.hessian(p, t, out=out).copy()]
    for red in ("mean", "sum", "none"):
        v, g = L.value_and_grad(p, t, reduction=red, out=out)
        res += [v, g.copy()]
    res += [L.grad(p, t), L.value_and_grad(p, t)[1]]          # fresh outputs
    return res


@pytest.mark.skipif(not fl._core.simd_loops(), reason="level in use has no hand-vectorized loops (FASTLOSS_SIMD=portable?)")
@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_hinge_packed_labels_match_portable(name, dtype):
    """hinge / squared_hinge on contiguous operands check their labels in a
    pass that packs them into bits, then run an AVX-512 kernel on the bits
    (src_c/sign_labels.c): every element of every output must be the
    portable kernel's, bit for bit (the same operations in the same order;
    s * x is exact), and every reduction the same to float64 reassociation.
    Sizes cross vector, stream and chunk boundaries; the largest writes its
    outputs by streaming stores (>= 16 MB into an out= buffer), at every
    alignment of out, and with 1 and 2 threads; the reductions then have
    the same bits whatever out's alignment and the thread count."""
    L = needs(name)
    big = (16 << 20) // np.dtype(dtype).itemsize + 37
    sizes = [1, 7, 8, 15, 16, 17, 63, 64, 65, 1000, 32768, 32769, 3 * 32768 + 129, big]
    for n in sizes:
        p, t = _hinge_inputs(n, dtype, seed=n)
        offsets = (0, 1, 3, 8) if n == big else (0, 1)
        sums = set()
        for off in offsets:
            buf = np.full(n + 16, 7, dtype)
            out = buf[off:off + n]
            for nt in ((1, 2) if n >= 32768 else (1,)):
                with fl.num_threads(nt):
                    fast = _all_methods(L, p, t, out)
                sums.add(tuple(np.asarray(r).tobytes() for r in fast if np.ndim(r) == 0))
                assert np.all(buf[:off] == 7) and np.all(buf[off + n:] == 7), "wrote outside out"
                prev = fl._core.simd_loops(False)
                try:
                    slow = _all_methods(L, p, t, np.empty(n, dtype))
                finally:
                    fl._core.simd_loops(prev)
                for k, (a, b) in enumerate(zip(fast, slow)):
                    a, b = np.asarray(a), np.asarray(b)
                    if a.ndim == 0:
                        # sums: float64 partials in another order; the values
                        # are >= 0, so the relative error is bounded
                        tol = 1e-6 if dtype == np.float32 else 1e-12
                        np.testing.assert_allclose(a, b, rtol=tol, err_msg=f"n={n} result {k}")
                    else:
                        assert np.array_equal(_bits(a), _bits(b)), (n, off, nt, k)
        assert len(sums) == 1, f"n={n}: reductions depend on out's alignment or the threads"


@pytest.mark.skipif(not fl._core.simd_loops(), reason="level in use has no hand-vectorized loops (FASTLOSS_SIMD=portable?)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_hinge_packed_labels_check_before_writing(dtype):
    """The packing pass is the label check: a bad label anywhere (first,
    last, in the second thread's chunk, past a streaming-store size) is a
    ValueError naming it, with out= untouched; a NaN label is no error and
    propagates (the generic kernels then run)."""
    n = (16 << 20) // np.dtype(dtype).itemsize + 5
    p = np.linspace(-2, 2, n).astype(dtype)
    for where in (0, 1, 32768, n // 2 + 3, n - 1):
        t = np.ones(n, dtype)
        t[where] = 0.5
        out = np.full(n, 7, dtype)
        for nt in (1, 2):
            with fl.num_threads(nt), pytest.raises(ValueError, match=rf"\({where},\)"):
                fl.hinge.value_and_grad(p, t, out=out)
            assert np.all(out == 7)
    t = np.ones(n, dtype)
    t[n - 2] = np.nan
    v, g = fl.squared_hinge.value_and_grad(p, t, out=np.empty(n, dtype))
    assert np.isnan(v) and np.isnan(g[n - 2]) and np.isfinite(g[: n - 2]).all()


@pytest.mark.parametrize("name", ["mse", "mae", "huber", "smooth_l1", "quantile"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_streamed_out_matches_fresh_output(name, dtype):
    """A large out= buffer (>= 16 MB) of a memory-bound loss is written by
    streaming stores through a small buffer (src_c/ew_template.h): every
    element and every reduced value must have the bits of the call without
    out= (ordinary stores), at any alignment of out and thread count, and
    nothing outside out may be touched."""
    L = needs(name)
    n = (16 << 20) // np.dtype(dtype).itemsize + 37
    rng = np.random.default_rng(7)
    p = rng.normal(size=n).astype(dtype)
    t = rng.normal(size=n).astype(dtype)
    p[::1009] = np.nan
    t[5::1013] = np.inf
    want_v, want_g = L.value_and_grad(p, t)
    want_h = L.hessian(p, t)
    for off in (0, 1, 3):
        buf = np.full(n + 8, 7, dtype)
        out = buf[off:off + n]
        for nt in (1, 2):
            with fl.num_threads(nt):
                v, g = L.value_and_grad(p, t, out=out)
                assert g is out and v.tobytes() == want_v.tobytes(), (off, nt, v, want_v)
                assert np.array_equal(_bits(out), _bits(want_g)), (off, nt)
                L.hessian(p, t, out=out)
                assert np.array_equal(_bits(out), _bits(want_h)), (off, nt)
                L.grad(p, t, out=out)
                assert np.array_equal(_bits(out), _bits(want_g)), (off, nt)
            assert np.all(buf[:off] == 7) and np.all(buf[off + n:] == 7)


# =============================================================== 7. empty

@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_empty_inputs(spec):
    L = loss_of(spec)
    for shape in ((0,), (0, 3), (3, 0)):
        for dtype in (np.float64, np.float32):
            p = np.empty(shape, dtype)
            t = np.empty(shape, dtype)
            what = f"{spec.name} {shape} {np.dtype(dtype).name}"
            with pytest.warns(RuntimeWarning):
                v = L(p, t)
            assert np.isnan(v) and v.dtype == dtype, what
            with pytest.warns(RuntimeWarning):
                v, g = L.value_and_grad(p, t)
            assert np.isnan(v) and g.shape == shape and g.dtype == dtype, what
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                s = L(p, t, reduction="sum")
                assert s == 0 and isinstance(s, np.generic) and s.dtype == dtype, what
                n = L(p, t, reduction="none")
                assert n.shape == shape and n.dtype == dtype, what
                for red in ("sum", "none"):
                    for m in ("grad", "hessian"):
                        d = call(L, m, p, t, reduction=red)
                        assert d.shape == shape and d.dtype == dtype, what
            for m in ("grad", "hessian"):
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    d = call(L, m, p, t)
                assert d.shape == shape and d.dtype == dtype, what
        # a partial mean over an empty axis: nan per slice, with a warning
        p = np.empty((0, 3))
        with pytest.warns(RuntimeWarning):
            v = L(p, p, axis=0)
        assert v.shape == (3,) and np.isnan(v).all()
        assert np.array_equal(L(p, p, axis=0, reduction="sum"), np.zeros(3))


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_zero_total_weight(spec):
    """mean over zero total weight: nan and a RuntimeWarning; gradient and
    Hessian 0 there (not nan).  sum: 0 without a warning."""
    L = loss_of(spec)
    p, t, kw = data(spec, (6, 4), np.float64, seed=15)
    w0 = np.zeros((6, 4))
    for dtype in (np.float64, np.float32):
        pp, tt = p.astype(dtype), t.astype(dtype)
        with pytest.warns(RuntimeWarning):
            v = L(pp, tt, sample_weight=w0, **kw)
        assert np.isnan(v) and v.dtype == dtype
        with pytest.warns(RuntimeWarning):
            v, g = L.value_and_grad(pp, tt, sample_weight=w0, **kw)
        assert np.isnan(v)
        assert np.array_equal(g, np.zeros_like(pp)), g
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for m in ("grad", "hessian"):
                d = call(L, m, pp, tt, sample_weight=w0, **kw)
                assert np.array_equal(d, np.zeros_like(pp)), (m, d)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert L(pp, tt, sample_weight=w0, reduction="sum", **kw) == 0
    # partial: rows of zero weight are nan (warning), others the reference
    w = np.random.default_rng(16).uniform(0.5, 1.5, (6, 4))
    w[2] = 0.0
    with pytest.warns(RuntimeWarning):
        v = L(p, t, sample_weight=w, axis=1, **kw)
    with pytest.warns(RuntimeWarning):
        rv = L.reference(p, t, sample_weight=w, axis=1, **kw)
    assert np.isnan(v[2]) and np.isfinite(np.delete(v, 2)).all()
    assert_close(v, rv, np.abs(rv), 1e-13, "partial mean with a zero-weight row")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = L.grad(p, t, sample_weight=w, axis=1, **kw)
        h = L.hessian(p, t, sample_weight=w, axis=1, **kw)
    assert np.array_equal(g[2], np.zeros(4)) and np.array_equal(h[2], np.zeros(4))


# ===================================================== 8. NaN, inf, accuracy

@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_nan_propagates(spec):
    """NaN in y_pred or y_true gives NaN for that element only (value, grad,
    hessian), NaN for reductions over it, and is never an error (also for
    losses that validate their data)."""
    L = loss_of(spec)
    p, t, kw = data(spec, (3, 5), np.float64, seed=17)
    for dtype in (np.float64, np.float32):
        for arg in ("y_pred", "y_true"):
            pp, tt = p.astype(dtype), t.astype(dtype)
            (pp if arg == "y_pred" else tt)[1, 3] = np.nan
            nan = np.zeros((3, 5), bool)
            nan[1, 3] = True
            what = f"{spec.name} NaN in {arg} {np.dtype(dtype).name}"
            for m in ("value", "grad", "hessian"):
                r = call(L, m, pp, tt, reduction="none", **kw)
                assert np.array_equal(np.isnan(r), nan), f"{what} {m}: {r}"
            assert np.isnan(L(pp, tt, **kw)) and np.isnan(L(pp, tt, reduction="sum", **kw)), what
            ax = L(pp, tt, axis=1, **kw)
            assert np.array_equal(np.isnan(ax), [False, True, False]), f"{what}: {ax}"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_same_infinity_is_nan(spec):
    """y_pred and y_true the same infinity: d = inf - inf, and no loss has a
    limit there (poisson's exp(p) - t p is inf - inf).  The element is
    treated as one with a NaN input: NaN value, gradient and Hessian there
    only, in fastloss (fast and generic paths) and the reference alike.
    Skipped where the reference rejects the infinite data (probabilities,
    hinge labels, tweedie's targets >= 0)."""
    L = loss_of(spec)
    p, t, kw = data(spec, (3, 5), np.float64, seed=17)
    nan = np.zeros((3, 5), bool)
    nan[1, 3] = True
    tested = 0
    for inf in (np.inf, -np.inf):
        pp, tt = p.copy(), t.copy()
        pp[1, 3] = tt[1, 3] = inf
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                L.reference(pp, tt, **kw)
        except ValueError:
            continue
        tested += 1
        for dtype in (np.float64, np.float32):
            for extra in ({}, {"sample_weight": np.ones(5)}):
                for m in ("value", "grad", "hessian"):
                    what = f"{spec.name} {inf} {np.dtype(dtype).name} {m} {extra}"
                    r = call(L, m, pp.astype(dtype), tt.astype(dtype), reduction="none",
                             **kw, **extra)
                    assert np.array_equal(np.isnan(r), nan), f"{what}: {r}"
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        ref = call(L.reference, m, pp.astype(dtype), tt.astype(dtype),
                                   reduction="none", **kw, **extra)
                    assert np.array_equal(np.isnan(ref), nan), f"reference {what}: {ref}"
    # the declaration says whether an infinite target is valid data
    if not any(c.arg == "y_true" and not bool(c.domain.contains(np.inf)) for c in spec.checks):
        assert tested, "no infinite target accepted"


def _limits():
    inf = math.inf
    return [
        # (loss, params, y_pred, y_true, value, grad)
        ("binary_cross_entropy_with_logits", {}, inf, 1.0, 0.0, 0.0),
        ("binary_cross_entropy_with_logits", {}, -inf, 0.0, 0.0, 0.0),
        ("binary_cross_entropy_with_logits", {}, inf, 0.0, inf, 1.0),
        ("binary_cross_entropy_with_logits", {}, -inf, 1.0, inf, -1.0),
        ("binary_cross_entropy_with_logits", {"pos_weight": 2.0}, inf, 1.0, 0.0, 0.0),
        ("binary_cross_entropy_with_logits", {"pos_weight": 2.0}, -inf, 1.0, inf, -2.0),
        ("binary_cross_entropy_with_logits", {"pos_weight": 0.0}, -inf, 1.0, 0.0, 0.0),
        ("sigmoid_focal", {}, inf, 1.0, 0.0, 0.0),
        ("sigmoid_focal", {}, -inf, 0.0, 0.0, 0.0),
        ("sigmoid_focal", {"alpha": None}, inf, 0.0, inf, 1.0),
        ("sigmoid_focal", {"alpha": None}, -inf, 1.0, inf, -1.0),
        ("poisson", {}, -inf, 0.0, 0.0, 0.0),
        ("poisson", {}, -inf, 2.0, inf, -2.0),
        ("poisson", {}, inf, 1.0, inf, inf),
        ("tweedie", {}, -inf, 0.0, 0.0, 0.0),
        ("tweedie", {}, -inf, 1.0, inf, -inf),
        ("tweedie", {}, inf, 1.0, inf, inf),
        ("log_cosh", {}, inf, 0.0, inf, 1.0),
        ("log_cosh", {}, -inf, 3.0, inf, -1.0),
        ("mse", {}, inf, 0.0, inf, inf),
        ("mae", {}, -inf, 0.0, inf, -1.0),
        ("huber", {"delta": 2.0}, inf, 0.0, inf, 2.0),
        ("smooth_l1", {}, -inf, 0.0, inf, -1.0),
        ("quantile", {"q": 0.25}, inf, 0.0, inf, 0.75),
        ("quantile", {"q": 0.25}, -inf, 0.0, inf, -0.25),
        ("hinge", {}, inf, 1.0, 0.0, 0.0),
        ("hinge", {}, -inf, 1.0, inf, -1.0),
        ("hinge", {}, inf, 0.0, inf, 1.0),
        ("squared_hinge", {}, inf, -1.0, inf, inf),
        ("squared_hinge", {}, -inf, -1.0, 0.0, 0.0),
        # clamped logs: -log(0) is 100, with derivative 0 on the clamp
        ("binary_cross_entropy", {}, 0.0, 1.0, 100.0, 0.0),
        ("binary_cross_entropy", {}, 1.0, 0.0, 100.0, 0.0),
        ("binary_cross_entropy", {}, 0.0, 0.0, 0.0, 1.0),
        ("binary_cross_entropy", {}, 1.0, 1.0, 0.0, -1.0),
        ("binary_cross_entropy", {}, 1e-50, 1.0, 100.0, 0.0),
    ]


@pytest.mark.parametrize("name,params,x,y,value,grad", _limits(),
                         ids=[f"{c[0]}{c[1] or ''}({c[2]},{c[3]})" for c in _limits()])
def test_limits(name, params, x, y, value, grad):
    """Infinite inputs give the mathematical limit where it exists."""
    L = needs(name)
    # a second, ordinary element (2 elements: the vector kernel); hinge
    # targets are labels
    t1 = 1.0 if name in ("hinge", "squared_hinge") else 0.5
    for dtype in (np.float64, np.float32):
        p = np.array([x, 0.5], dtype)
        t = np.array([y, t1], dtype)
        kw = dict(params)
        v = L(p, t, reduction="none", **kw)[0]
        g = L.grad(p, t, reduction="none", **kw)[0]
        assert v == value and g == grad, (dtype, v, g)
        v0 = L(dtype(x), dtype(y), reduction="sum", **kw)
        assert v0 == value, (dtype, v0)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_extreme_inputs_agree_with_reference(spec):
    """+-inf and huge finite y_pred against the reference (which takes the
    limits explicitly): the same value, gradient and Hessian, infinities
    and all.  Where the reference gives NaN the limit does not exist."""
    L = loss_of(spec)
    _, t, kw = data(spec, (64,), np.float64, seed=18)
    tv = np.unique(t)
    tv = np.unique(tv[np.linspace(0, len(tv) - 1, min(4, len(tv))).astype(int)])
    xs = [-np.inf, -1e300, -1e5, -745.0, -60.0, 60.0, 745.0, 1e5, 1e300, np.inf]
    for chk in spec.checks:
        if chk.arg == "y_pred":
            xs = [x for x in xs if chk.domain.contains(x)] + \
                [b for b in (chk.domain.lo, chk.domain.hi) if math.isfinite(b)]
    p = np.repeat(np.asarray(xs, float), len(tv))
    t = np.tile(tv, len(xs))
    fails = Failures()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for m in ("value", "grad", "hessian"):
            got = call(L, m, p, t, reduction="none", **kw)
            ref = call(L.reference, m, p, t, reduction="none", **kw)
            keep = ~np.isnan(ref)
            # atol: results that underflow into the subnormals (exact value
            # ~1e-320 or 0) carry absolute errors of a few tiny*eps
            fails.check(assert_close, got[keep], ref[keep], np.abs(ref[keep]), 1e-13,
                        f"{spec.name} {m} at p={p[keep].tolist()} t={t[keep].tolist()}",
                        4 * np.finfo(np.float64).tiny)
    fails.done()


def test_spec_accuracy_examples():
    """SPEC section 2, exactly."""
    L = needs("binary_cross_entropy_with_logits")
    e = math.exp(-50.0)
    value, grad = math.log1p(e), e / (1 + e)        # both 1.9287498479639178e-22
    for dtype in (np.float64, np.float32):
        rtol = 1e-14 if dtype == np.float64 else 2e-6
        v, g = L.value_and_grad(dtype(-50), dtype(0))
        assert v == pytest.approx(value, rel=rtol) and g == pytest.approx(grad, rel=rtol)
        v = L(np.array([-50.0, -50.0], dtype), np.zeros(2, dtype), reduction="none")
        assert v[0] == pytest.approx(value, rel=rtol)
    assert L(-50, 0) == pytest.approx(1.93e-22, rel=1e-3)
    L = needs("log_cosh")
    d = 1e-8
    exact = d * d / 2 - d ** 4 / 12                 # the series; next term ~d**6
    assert L(1e-8, 0) == pytest.approx(exact, rel=1e-14)
    assert L(np.array([1e-8, 1e-8]), np.zeros(2), reduction="none")[1] == pytest.approx(exact, rel=1e-14)
    assert L.grad(1e-8, 0) == pytest.approx(d, rel=1e-14)      # tanh(d) = d - d**3/3


def test_log_cosh_huge_arguments():
    L = needs("log_cosh")
    for dtype, xs in ((np.float64, [1e5, -1e5, 1e300, -1e300, np.finfo(np.float64).max]),
                      (np.float32, [1e5, -1e5, 1e30, -3e38])):
        x = np.array(xs, dtype)
        t = np.zeros_like(x)
        v = L(x, t, reduction="none")
        g = L.grad(x, t, reduction="none")
        h = L.hessian(x, t, reduction="none")
        assert np.isfinite(v).all() and np.isfinite(g).all() and np.isfinite(h).all(), (v, g, h)
        # log cosh x = |x| - log 2 + log1p(exp(-2|x|)), the last term 0 here
        expected = np.abs(x.astype(np.float64)) - math.log(2)
        assert_close(v, expected, expected, RTOL[np.dtype(dtype)], f"log_cosh {dtype}")
        assert np.array_equal(g, np.sign(x)) and (h >= 0).all() and (h <= 1e-30).all()


def test_kinks():
    """SPEC section 5: the side of a kink the derivatives take."""
    ones = dict(reduction="none")
    if "huber" in fl.losses:            # quadratic side at |d| == delta: hessian 1
        for delta in (1.0, 0.5, 2.0):
            p = np.array([1.5, -1.5, 0.0]) * delta
            t = np.array([0.5, -0.5, 1.0]) * delta       # d = delta, -delta, -delta
            assert np.array_equal(fl.huber.hessian(p, t, delta=delta, **ones), [1.0, 1.0, 1.0])
            assert np.array_equal(fl.huber.grad(p, t, delta=delta, **ones), [delta, -delta, -delta])
            assert np.array_equal(fl.huber(p, t, delta=delta, **ones), [0.5 * delta ** 2] * 3)
    if "smooth_l1" in fl.losses:        # linear side at |d| == beta: hessian 0
        for beta in (1.0, 0.5, 2.0):
            p = np.array([1.5, -1.5]) * beta
            t = np.array([0.5, -0.5]) * beta
            assert np.array_equal(fl.smooth_l1.hessian(p, t, beta=beta, **ones), [0.0, 0.0])
            assert np.array_equal(fl.smooth_l1.grad(p, t, beta=beta, **ones), [1.0, -1.0])
            assert np.array_equal(fl.smooth_l1(p, t, beta=beta, **ones), [0.5 * beta] * 2)
    if "mae" in fl.losses:
        p = np.array([0.3, -2.0, 0.0])
        assert np.array_equal(fl.mae.grad(p, p.copy(), **ones), [0.0, 0.0, 0.0])
        assert np.array_equal(fl.mae.grad(p, p.copy(), reduction="sum"), [0.0, 0.0, 0.0])
    if "quantile" in fl.losses:         # -q at t == p, as scikit-learn
        p = np.array([0.3, -2.0, 0.0, 5.0])
        for q in (0.1, 0.5, 0.9):
            assert np.array_equal(fl.quantile.grad(p, p.copy(), q=q, **ones), [-q] * 4)
    for name in ("hinge", "squared_hinge"):    # margin exactly 1: gradient 0
        if name in fl.losses:
            L = fl.get(name)
            x = np.array([1.0, -1.0, -1.0])
            s = np.array([1.0, 0.0, -1.0])
            assert np.array_equal(L.grad(x, s, **ones), [0.0] * 3)
            assert np.array_equal(L(x, s, **ones), [0.0] * 3)


def test_smooth_l1_with_beta_zero_is_mae():
    needs("smooth_l1")
    needs("mae")
    p, t, _ = make_inputs("mae", (30, 7), np.float64, np.random.default_rng(19))
    t[::3] = p[::3]                     # include d == 0
    w = np.random.default_rng(20).uniform(0, 2, (30, 7))
    for dtype in (np.float64, np.float32):
        pp, tt = p.astype(dtype), t.astype(dtype)
        for red in REDUCTIONS:
            for sw in (None, w):
                for m in METHODS:
                    a = call(fl.smooth_l1, m, pp, tt, beta=0.0, reduction=red, sample_weight=sw)
                    b = call(fl.mae, m, pp, tt, reduction=red, sample_weight=sw)
                    for x, y in (zip(a, b) if m == "value_and_grad" else [(a, b)]):
                        assert_identical(x, y, f"{m} {red} {dtype}")


# ============================================================== 9. threads

@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_thread_count_does_not_change_results(spec):
    """n_threads 1, 2, 3 give identical bits on 10^6 elements (enough for
    several threads: the driver splits work into fixed chunks and adds
    their partial sums in chunk order), through n_threads= and through
    fl.num_threads()."""
    L = loss_of(spec)
    dtype = np.float64 if IDS.index(spec.name) % 2 else np.float32
    p, t, kw = data(spec, (10 ** 6,), dtype, seed=21)
    w = np.random.default_rng(22).uniform(0, 2, 1000).astype(dtype)
    P2 = np.asfortranarray(p.reshape(1000, 1000))         # generic path, gathered
    T2 = t.reshape(1000, 1000)

    def run(**nt):
        return [L(p, t, reduction="sum", **kw, **nt),
                *L.value_and_grad(p, t, **kw, **nt),
                L.hessian(p, t, **kw, **nt),
                L(p, t, reduction="none", **kw, **nt),
                *L.value_and_grad(P2, T2, sample_weight=w, **kw, **nt)]

    base = run(n_threads=1)
    for n in (2, 3):
        for r, b in zip(run(n_threads=n), base):
            assert_identical(r, b, f"n_threads={n}")
    with fl.num_threads(2):
        for r, b in zip(run(), base):
            assert_identical(r, b, "num_threads(2)")
    # and the result is right, not only reproducible (multi-chunk sums)
    p64, t64 = p.astype(np.float64), t.astype(np.float64)
    ref = L.reference(p64, t64, reduction="sum", **kw)
    mv = magnitudes(spec, p64, t64, kw)[0]
    assert_close(base[0], ref, np.sum(mv), RTOL[np.dtype(dtype)], "sum over 1e6")


def test_thread_settings_in_process():
    n0 = fl.get_num_threads()
    assert isinstance(n0, int) and n0 >= 1
    with fl.num_threads(1):
        assert fl.get_num_threads() == 1
        with fl.num_threads(3):
            assert fl.get_num_threads() == 3
        assert fl.get_num_threads() == 1
    assert fl.get_num_threads() == n0
    with pytest.raises(RuntimeError):
        with fl.num_threads(2):
            raise RuntimeError
    assert fl.get_num_threads() == n0
    for bad, exc in ((0, ValueError), (-2, ValueError), (1.5, TypeError), ("2", TypeError),
                     (True, TypeError)):
        with pytest.raises(exc):
            with fl.num_threads(bad):
                pass
        with pytest.raises(exc):
            fl.set_num_threads(bad)
    assert fl.get_num_threads() == n0


def _run_python(code, env_update=(), drop=("FASTLOSS_NUM_THREADS", "OMP_NUM_THREADS")):
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(dict(env_update))
    root = os.path.dirname(os.path.dirname(os.path.abspath(fl.__file__)))
    env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
    r = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def test_thread_defaults_from_environment():
    code = "import fastloss as fl; print(fl.get_num_threads())"
    ncpu = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    if not fl.show_config(print_=False)["openmp"]:
        ncpu = 1
    assert _run_python(code, {"FASTLOSS_NUM_THREADS": "3"}) == "3"
    assert _run_python(code, {"FASTLOSS_NUM_THREADS": "3", "OMP_NUM_THREADS": "1"}) == "3"
    if fl.show_config(print_=False)["openmp"]:
        assert _run_python(code, {"OMP_NUM_THREADS": "2"}) == "2"
    assert _run_python(code) == str(ncpu)
    code = """
        import fastloss as fl
        fl.set_num_threads(2)
        a = fl.get_num_threads()
        with fl.num_threads(1):
            b = fl.get_num_threads()
        fl.set_num_threads(3)
        print(a, b, fl.get_num_threads())
    """
    assert _run_python(code, {"FASTLOSS_NUM_THREADS": "1"}) == "2 1 3"


def test_threadpoolctl_sees_and_limits_openmp():
    pytest.importorskip("threadpoolctl")
    if not fl.show_config(print_=False)["openmp"]:
        pytest.skip("built without OpenMP")
    code = """
        import json, numpy, threadpoolctl
        before = {i["filepath"] for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"}
        import fastloss as fl
        after = [i for i in threadpoolctl.threadpool_info() if i["user_api"] == "openmp"]
        n0 = fl.get_num_threads()
        with threadpoolctl.threadpool_limits(1):
            inside = fl.get_num_threads()
        with threadpoolctl.threadpool_limits(limits=1, user_api="openmp"):
            inside2 = fl.get_num_threads()
        print(json.dumps(dict(new=sorted(i["filepath"] for i in after if i["filepath"] not in before),
                              n0=n0, inside=inside, inside2=inside2, end=fl.get_num_threads())))
    """
    import json
    r = json.loads(_run_python(code))
    assert r["new"], "importing fastloss loaded no OpenMP runtime that threadpoolctl sees"
    assert r["inside"] == 1 and r["inside2"] == 1
    assert r["end"] == r["n0"]


def test_openmp_required_in_ci(capsys):
    cfg = fl.show_config(print_=False)
    assert capsys.readouterr().out == ""
    for key in ("fastloss", "numpy", "compiler", "openmp", "simd", "threads"):
        assert key in cfg
    assert cfg["threads"] == fl.get_num_threads()
    if os.environ.get("FASTLOSS_REQUIRE_OPENMP") == "1":
        assert cfg["openmp"] is True, "FASTLOSS_REQUIRE_OPENMP=1 but fastloss was built without OpenMP"
    elif not cfg["openmp"]:
        pytest.skip("built without OpenMP (set FASTLOSS_REQUIRE_OPENMP=1 to make this fail)")
    fl.show_config()
    assert "openmp" in capsys.readouterr().out


# ======================================================= 10. scale & safety

def test_float32_mse_of_ten_million_elements():
    L = needs("mse")
    rng = np.random.default_rng(23)
    p = rng.standard_normal(10 ** 7, dtype=np.float32)
    t = rng.standard_normal(10 ** 7, dtype=np.float32)
    d = p.astype(np.float64) - t.astype(np.float64)
    exact = float(np.dot(d, d))
    # float32 terms summed in float64: the error is the float32 rounding of
    # each term (random, ~eps32/sqrt(n) relative) plus one final rounding to
    # float32 (6e-8): 2e-7 allows neither a float32 accumulator (~1e-3 off
    # at 1e7 terms) nor a pairwise float32 sum of blocks (~1e-6).
    v = L(p, t, reduction="sum")
    assert v.dtype == np.float32
    assert abs(float(v) - exact) <= 2e-7 * exact
    v, g = L.value_and_grad(p, t)
    assert abs(float(v) - exact / 1e7) <= 2e-7 * exact / 1e7


def test_no_memory_growth():
    """10^4 calls (every method, out=, weights, axis, errors) keep Python
    allocations and the RSS flat."""
    psutil = None
    try:
        import psutil
    except ImportError:
        pass
    losses = [(loss_of(s), *data(s, (2000,), np.float64, seed=24)) for s in SPECS]
    lists = [p[:10].tolist() for _, p, _, _ in losses]
    w = np.ones(2000)
    out = np.empty(2000)

    def burst(rounds):
        calls = 0
        for _ in range(rounds):
            for (L, p, t, kw), plist in zip(losses, lists):
                L(p, t, **kw)
                L.grad(p, t, out=out, **kw)
                L.value_and_grad(p, t, **kw)
                L.hessian(p, t, reduction="none", **kw)
                L(p, t, sample_weight=w, reduction="none", **kw)
                L.value_and_grad(p.reshape(40, 50), t.reshape(40, 50), axis=1, **kw)
                L(plist, t[:10], **kw)
                try:
                    L(p, t[:3], **kw)
                except ValueError:
                    pass
                calls += 8
        return calls

    burst(5)
    gc.collect()
    rss0 = psutil.Process().memory_info().rss if psutil else None
    tracemalloc.start()
    try:
        m0 = tracemalloc.get_traced_memory()[0]
        calls = burst(100)
        gc.collect()
        m1 = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    rss1 = psutil.Process().memory_info().rss if psutil else None
    assert calls >= 10 ** 4
    # one leaked 16 kB array per call would be 160 MB; one leaked small
    # object per call ~0.5 MB.  Allow allocator caches and tracemalloc's
    # own bookkeeping: 256 kB of Python allocations, 16 MB of RSS.
    assert m1 - m0 < 256 * 1024, f"Python allocations grew by {m1 - m0} bytes"
    if psutil is not None:
        assert rss1 - rss0 < 16 * 2 ** 20, f"RSS grew by {rss1 - rss0} bytes"


def test_concurrent_python_threads():
    """Four Python threads calling different losses on large arrays at once
    get exactly the results of serial calls."""
    specs = [SPECS[i % len(SPECS)] for i in (0, 4, 9, 10)]
    inputs = [(loss_of(s), *data(s, (2 * 10 ** 6,), np.float32, seed=25)) for s in specs]

    def work(L, p, t, kw):
        return [L(p, t, reduction="sum", **kw), *L.value_and_grad(p, t, **kw),
                L.hessian(p, t, **kw)]

    serial = [work(*x) for x in inputs]
    results = [None] * len(inputs)
    errors = []
    barrier = threading.Barrier(len(inputs))

    def target(i):
        try:
            barrier.wait()
            results[i] = [work(*inputs[i]) for _ in range(3)]
        except Exception as e:        # reported below
            errors.append(e)

    threads = [threading.Thread(target=target, args=(i,)) for i in range(len(inputs))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for i, rs in enumerate(results):
        for r in rs:
            for a, b in zip(r, serial[i]):
                assert_identical(a, b, specs[i].name)


# ======================================================= out= semantics

@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_out_argument(spec):
    """out= is written and returned; aliasing an input gives the result
    computed as if from a copy (as NumPy ufuncs do)."""
    L = loss_of(spec)
    fails = Failures()
    for dtype in (np.float64, np.float32, np.float16, np.int64):
        p, t, kw = typed_inputs(spec, (6, 7), dtype, seed=26)
        _, odt = compute_dtypes(p.dtype)
        for extra in ({}, {"sample_weight": np.linspace(0, 1, 7)}, {"axis": 0},
                      {"reduction": "none"}):
            for m in DERIV_METHODS:
                what = f"{spec.name} {np.dtype(dtype).name} {m} {extra}"
                expect = call(L, m, p, t, **extra, **kw)
                out = np.full(p.shape, 99, dtype=odt)
                r = call(L, m, p, t, out=out, **extra, **kw)
                if m == "value_and_grad":
                    fails.check(assert_identical, r[0], expect[0], what)
                    r, expect = r[1], expect[1]
                assert r is out, what
                fails.check(assert_identical, out, expect, what)
        if p.dtype in (np.float32, np.float64):
            for m in DERIV_METHODS:
                expect = call(L, m, p, t, **kw)
                expect = expect[1] if m == "value_and_grad" else expect
                for alias in ("y_pred", "y_true"):
                    pp, tt = p.copy(), t.copy()
                    out = pp if alias == "y_pred" else tt
                    r = call(L, m, pp, tt, out=out, **kw)
                    r = r[1] if m == "value_and_grad" else r
                    assert r is out
                    fails.check(assert_identical, r, expect,
                                f"{spec.name} {np.dtype(dtype).name} {m} out aliasing {alias}")
    fails.done()


# ================================================ 11. cross-library oracles

def _torch_value(prm):
    """A value of a scalar parameter other than its default, well inside its
    domain (0.7 of the default, or 0.7 of the way into a bounded one)."""
    d = prm.domain
    v = 0.7 * prm.default if prm.default else 0.3
    if math.isfinite(d.lo) and math.isfinite(d.hi):
        v = d.lo + 0.7 * (prm.default - d.lo) if prm.default > d.lo else d.lo + 0.3 * (d.hi - d.lo)
    assert bool(d.contains(v)), (prm.name, v)
    return v


def _torch_cases():
    """(spec, with its array parameters): every elementwise loss, each
    scalar parameter at a value other than its default (_torch_value), with
    and without its array parameters (pos_weight)."""
    out = []
    for spec in SPECS:
        out.append((spec, False))
        if spec.array_params:
            out.append((spec, True))
    return out


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("spec,arrays", _torch_cases(),
                         ids=[f"{s.name}{'-pw' if a else ''}" for s, a in _torch_cases()])
def test_pytorch(spec, arrays, reduction):
    """Values, autograd gradients and Hessian diagonals (double backward) of
    the declaration's torch spelling (spec.peers["torch"]) in float64.
    Targets in [0, 1] (a data check) are soft labels, a quarter of them
    rounded to 0 or 1."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    L = loss_of(spec)
    name = spec.name
    rng = np.random.default_rng(seed_of("torch", name))
    p, t, _ = make_inputs(name, (20, 6), np.float64, rng)
    if any(c.arg == "y_true" and c.domain == UNIT for c in spec.checks):
        t = rng.uniform(0, 1, t.shape)           # soft labels
        t[:5] = np.round(t[:5])
    kw = {prm.name: _torch_value(prm) for prm in spec.params}
    tkw = dict(kw)
    if arrays:
        for ap in spec.array_params:
            kw[ap.name] = rng.uniform(0, 3, 6)
            tkw[ap.name] = torch.from_numpy(kw[ap.name])
    x = torch.tensor(p, requires_grad=True)
    y = torch.from_numpy(t)
    loss = spec.peers["torch"](F, x, y, tkw, reduction)
    (g,) = torch.autograd.grad(loss.sum(), x, create_graph=True)
    (h,) = torch.autograd.grad(g.sum(), x) if g.requires_grad else (torch.zeros_like(x),)
    h = h.numpy(force=True)           # l1_loss's Hessian is a ZeroTensor
    v, fg = L.value_and_grad(p, t, reduction=reduction, **kw)
    fh = L.hessian(p, t, reduction=reduction, **kw)
    # Both sides are within a few ulp per element for these moderate inputs
    # (no tails); sums over 120 elements add a few ulp more; PyTorch's
    # formulas (e.g. (1-y)x + log1p(exp(-|x|)) + max(-x, 0)) may cancel
    # terms of the size of |x| <= ~10: atol 1e-13 on O(1) quantities.
    np.testing.assert_allclose(v, loss.detach().numpy(), rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(fg, g.detach().numpy(), rtol=1e-12, atol=1e-13)
    # PyTorch's double backward of binary_cross_entropy divides by
    # p*(1-p) + 1e-12 (its EPSILON), a relative error of 1e-12/(p(1-p)), up
    # to 1e-9 for the sampled p in (0.001, 0.999); checked against the exact
    # t/p**2 + (1-t)/(1-p)**2, fastloss is within a few ulp there.
    hrtol = 2e-9 if spec.kernel == "bce" else 1e-12
    np.testing.assert_allclose(fh, h, rtol=hrtol, atol=1e-13)


def _sklearn_cases():
    return [
        ("tweedie", {"power": 1.5}, "HalfTweedieLoss", {"power": 1.5}, True),
        ("tweedie", {"power": 1.2}, "HalfTweedieLoss", {"power": 1.2}, True),
        ("tweedie", {"power": 1.8}, "HalfTweedieLoss", {"power": 1.8}, True),
        ("poisson", {}, "HalfPoissonLoss", {}, True),
        ("binary_cross_entropy_with_logits", {}, "HalfBinomialLoss", {}, True),
        ("quantile", {"q": 0.3}, "PinballLoss", {"quantile": 0.3}, False),
    ]


@pytest.mark.parametrize("name,params,cls,skparams,has_hessian", _sklearn_cases(),
                         ids=[f"{c[2]}{c[3] or ''}" for c in _sklearn_cases()])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sklearn(name, params, cls, skparams, has_hessian, weighted):
    """scikit-learn's private losses: per-sample loss (without the constant
    terms, as SPEC defines tweedie), gradient and Hessian equal fastloss
    with reduction='none'; sklearn's __call__ (a weighted average) equals
    the mean.  PinballLoss's Hessian is a convention (1), not compared."""
    pytest.importorskip("sklearn")
    from sklearn._loss import loss as skloss
    L = needs(name)
    rng = np.random.default_rng(seed_of("sklearn", name, params))
    p, t, _ = make_inputs(name, (500,), np.float64, rng)
    w = rng.uniform(0, 2, 500) if weighted else None
    sk = getattr(skloss, cls)(**skparams)
    mv, mg, mh = magnitudes(L.spec, p, t, params)
    if cls == "HalfBinomialLoss":
        # scikit-learn writes log1p(exp(raw)) - y*raw (fastloss and the
        # reference take softplus(-raw) for y = 1 directly): its rounding
        # error is relative to |y*raw|
        mv = mv + np.abs(t * p)
    wb = np.ones(500) if w is None else w
    # Both compute the same closed forms in float64, each to a few ulp of
    # the cancelling terms' magnitude: 1e-13 of those magnitudes.
    assert_close(L(p, t, reduction="none", sample_weight=w, **params),
                 sk.loss(y_true=t, raw_prediction=p, sample_weight=w), wb * mv, 1e-13, "loss")
    assert_close(L(p, t, sample_weight=w, **params),
                 sk(y_true=t, raw_prediction=p, sample_weight=w), np.sum(wb * mv) / wb.sum(),
                 1e-13, "mean")
    g, h = sk.gradient_hessian(y_true=t, raw_prediction=p, sample_weight=w)
    assert_close(L.grad(p, t, reduction="none", sample_weight=w, **params), g, wb * mg, 1e-13,
                 "gradient")
    if has_hessian:
        assert_close(L.hessian(p, t, reduction="none", sample_weight=w, **params), h,
                     wb * mh, 1e-13, "hessian")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sigmoid_focal_gamma_two_fast_form(dtype):
    """gamma == 2 (the default) runs (1 - p_t)^2 as a product, any other
    gamma as exp(gamma log(1 - p_t)): the two agree across the switch
    (gamma = 2 and its float64 neighbours) and with the float64 reference,
    for hard and soft labels, huge logits and every method."""
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.standard_normal(997) * 4, [-200.0, -30.0, 0.0, 30.0, 200.0]])
    t = np.concatenate([(rng.random(500) > 0.5) * 1.0, rng.random(502)])
    x, t = x.astype(dtype), t.astype(dtype)
    L = fl.sigmoid_focal
    rt = 1e-12 if dtype == np.float64 else 3e-5
    for gamma in (2.0, np.nextafter(2.0, 3.0), np.nextafter(2.0, 1.0)):
        for m in ("value", "grad", "hessian"):
            f = L if m == "value" else getattr(L, m)
            r = L.reference if m == "value" else getattr(L.reference, m)
            got = f(x, t, gamma=gamma, reduction="none")
            want = r(x.astype(np.float64), t.astype(np.float64), gamma=gamma,
                     reduction="none")
            # soft labels: the gradient and Hessian cross 0 where terms of
            # opposite sign cancel, so the float32 error is relative to the
            # array's magnitude there (as in the reference tests)
            scale = np.abs(want) + (np.abs(want).max() if dtype == np.float32 and m != "value"
                                    else 0)
            assert np.all(np.abs(got - want) <= rt * scale + 1e-300), (gamma, m)


def _bad_value(dom):
    """A value outside an interval domain."""
    if math.isfinite(dom.lo):
        return dom.lo if dom.lo_open else dom.lo - 0.5
    return dom.hi if dom.hi_open else dom.hi + 0.5


RANGE_CHECKED = [(s, c) for s in ALL_LOSSES if s.family == "elementwise"
                 for c in s.checks if c.domain.values is None]


@pytest.mark.parametrize("spec,chk", RANGE_CHECKED,
                         ids=[f"{s.name}-{c.arg}" for s, c in RANGE_CHECKED])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_range_check_in_the_pass(spec, chk, dtype):
    """A range check of the data (poisson's y_true >= 0, ...) runs inside
    the kernel's pass when every output is fresh (no pass of its own; the
    fast path: fl_ew_args.chk_*, the same fl_outside_any_* as the check pass) and before anything is
    written when out= is given.  A bad value in the first, a middle or the
    last block, at 1 and 2 threads, by every method: the same ValueError
    as the generic path's, naming the argument; a provided out= untouched;
    the same inputs without the bad value give the reference's result."""
    L = getattr(fl, spec.name)
    n = 3 * 65536 + 17                       # several chunks and blocks
    ins = list(make_inputs(spec.name, (n,), dtype, np.random.default_rng(7))[:-1])
    k = [o.name for o in spec.operands].index(chk.arg)
    wrt = spec.operands[0].name
    good = L.value_and_grad(*ins, wrt=wrt)
    ref = L.reference(*[a.astype(np.float64) for a in ins])
    assert math.isclose(float(good[0]), float(ref), rel_tol=1e-5 if dtype == np.float32 else 1e-12)
    for pos in (0, n // 2, n - 1):
        bad = [a.copy() for a in ins]
        bad[k][pos] = _bad_value(chk.domain)
        for nt in (1, 2):
            for m in ("value", "grad", "value_and_grad"):
                f = L if m == "value" else getattr(L, m)
                kw = dict(n_threads=nt) if m == "value" else dict(n_threads=nt, wrt=wrt)
                with pytest.raises(ValueError) as ei:
                    f(*bad, **kw)
                assert chk.arg in str(ei.value) and spec.name in str(ei.value)
                if m != "value":
                    out = np.full(n, 1234.5, dtype)
                    with pytest.raises(ValueError):
                        f(*bad, out=out, **kw)
                    assert (out == 1234.5).all(), "out= written before the error"
