"""The class-axis losses (cross_entropy, nll, multi_margin) through the
public API (SPEC sections 1-5).

Tests are parametrised over the rows of ``fastloss._registry.TABLE`` whose
family is "class"; which options a loss gets (class weights, label
smoothing, ignore_index, probability targets, margin/power) is derived from
the row's parameters, so a new class loss is tested by adding its row.  Only
the cross-library oracles and closed forms name losses.

Oracles: the pure-NumPy reference (``fl.<loss>.reference``) in float64,
4th-order central finite differences, closed forms, mpmath, PyTorch and
scikit-learn when installed.

Every C code path is reached: cross_entropy's column path (C <= 48 rows and
the class_axis=1 / class_axis=0 layouts), its row path (C > 48), its split
path (C >= 16384, fewer rows than threads or an uneven share of fewer than 2*threads rows, >= 2 threads), the row path of
nll / multi_margin (gathered when the class axis is not last), one and two
threads, the compiled fast path (2-D C-contiguous float logits + 1-D int64
labels, default parameters) and the generic path.
"""
import contextlib
import math
import warnings
import zlib

import numpy as np
import pytest

import fastloss as fl
from fastloss import _families as _api, _core
from fastloss._registry import make_inputs
from fastloss._registry import TWO_INPUT as TABLE

SPECS = [s for s in TABLE if s.family == "class"]
IDS = [s.name for s in SPECS]
REDUCTIONS = ("mean", "sum", "none")
METHODS = ("value", "grad", "value_and_grad", "hessian")
DERIV_METHODS = ("grad", "value_and_grad", "hessian")
F64, F32 = np.dtype(np.float64), np.dtype(np.float32)

# Tolerances against float64 oracles, relative to the magnitude of the terms
# a result is computed from (see `magnitudes`):
# - float64 1e-13: vectorised exp/log/log1p are a few ulp; the class sums
#   (<= 20000 positive terms, 16 lanes) and the sample sums (<= 2000 terms)
#   are accumulated in another order than NumPy's: ~sqrt(n) ulp in practice
#   (n*eps = 4e-12 is the never-reached worst case); an exp of z - max with
#   |z - max| <= ~30 amplifies the rounding of the difference by 30.
# - float32 3e-5: SPEC section 2 ("float32 results within 3e-5 relative of
#   float64"); the float32 kernels round exp(z - m) (|z - m| * 6e-8 <= 2e-6)
#   and a handful of products, and accumulate in float64.
RTOL = {F64: 1e-13, F32: 3e-5}
# subnormal float32 results carry an absolute error of ~tiny*eps
ATOL = {F64: 4 * np.finfo(np.float64).tiny, F32: 4 * float(np.finfo(np.float32).tiny)}


def seed_of(*parts):
    return zlib.crc32(repr(parts).encode())


def loss_of(spec):
    return fl.get(spec.name)


def has(spec, pname):
    return pname in spec.param_names


def needs(name):
    if name not in fl.losses:
        pytest.skip(f"no loss named {name!r} in this build")
    return fl.get(name)


def call(obj, method, z, y, **kw):
    if method == "value":
        return obj(z, y, **kw)
    return getattr(obj, method)(z, y, **kw)


# -------------------------------------------------------------- comparisons

def assert_close(got, ref, scale, rtol, what="", atol=0.0):
    """|got - ref| <= rtol*scale + atol elementwise; equal values (also equal
    infinities) and NaN against NaN count as equal."""
    g = np.asarray(got, dtype=np.float64)
    r = np.asarray(ref, dtype=np.float64)
    assert g.shape == r.shape, f"{what}: shape {g.shape} != {r.shape}"
    s = np.broadcast_to(np.asarray(scale, dtype=np.float64), r.shape)
    with np.errstate(invalid="ignore"):
        ok = (g == r) | (np.isnan(g) & np.isnan(r)) | (np.abs(g - r) <= rtol * s + atol)
    if not ok.all():
        idx = np.argwhere(~ok)[:4] if g.ndim else [()]
        lines = [f"{what}: {int((~ok).sum())} of {ok.size} differ (rtol {rtol:g} of scale, "
                 f"atol {atol:g})"]
        for i in idx:
            i = tuple(int(k) for k in i)
            rel = abs(g[i] - r[i]) / s[i] if s[i] else math.inf
            lines.append(f"  at {i}: got {g[i]!r}, expected {r[i]!r}, scale {s[i]:.3g} "
                         f"(error {rel:.2g} of scale)")
        raise AssertionError("\n".join(lines))


def bits(x):
    a = np.asarray(x)
    return type(x).__name__, a.dtype.str, a.shape, a.tobytes()


def assert_identical(a, b, what=""):
    """Same type, dtype, shape and bytes."""
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


def check_value_type(v, ref, odt, what=""):
    """A full reduction is a NumPy scalar of the output dtype (as np.mean);
    'none' and partial reductions an ndarray of the reference's shape."""
    if isinstance(ref, np.ndarray):
        assert isinstance(v, np.ndarray), f"{what}: {type(v).__name__} is not an ndarray"
        assert v.shape == ref.shape, f"{what}: shape {v.shape} != {ref.shape}"
    else:
        assert isinstance(v, np.generic), f"{what}: {type(v).__name__} is not a NumPy scalar"
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
        __tracebackhide__ = True        # the messages say it all
        assert not self.msgs, f"{len(self.msgs)} failure(s):\n" + "\n".join(self.msgs[:10])


@contextlib.contextmanager
def quiet():
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        yield


# --------------------------------------------------------------------- data
#
# A case is built in the canonical layout (per-sample shape S, classes last)
# in float64 and then moved to the layout under test.  Layouts:
#   rows      (N, C), C > 48 (row path of cross_entropy)
#   rows_few  (N, C), C <= 48 (column path through a transpose)
#   axis1     (N, C, d1, d2) with class_axis=1 (PyTorch's layout)
#   axis0     (C, N) with class_axis=0
#   1d        (C,) with a 0-d label

LAYOUTS = {
    "rows": ((29,), 53),
    "rows_few": ((37,), 7),
    "axis1": ((3, 4, 5), 6),
    "axis0": ((23,), 6),
    "1d": ((), 9),
}


def class_axis_of(layout, ndim):
    return {"axis1": 1, "axis0": 0}.get(layout, ndim - 1)


def to_layout(a, layout):
    """A logits-shaped canonical array (classes last) in the layout."""
    if layout == "axis1":
        return np.ascontiguousarray(np.moveaxis(a, -1, 1))
    if layout == "axis0":
        return np.ascontiguousarray(np.moveaxis(a, -1, 0))
    return np.ascontiguousarray(a)


def layout_kw(layout):
    return {"class_axis": class_axis_of(layout, 0)} if layout in ("axis1", "axis0") else {}


def option_sets(spec, full=True):
    """Option combinations the row supports.  full: every combination of
    class_weight / label_smoothing / ignore_index / sample_weight / targets /
    margin+power; otherwise a few that together touch each option."""
    cws = (False, True) if has(spec, "class_weight") else (False,)
    es = (0.0, 0.25, 1.0) if has(spec, "label_smoothing") else (0.0,)
    igs = (None, "valid", -100) if has(spec, "ignore_index") else (None,)
    softs = (False, True) if spec.accepts_probabilities else (False,)
    mps = ((1.0, 1), (1.0, 2), (0.5, 1), (2.0, 2)) if has(spec, "power") else ((None, None),)
    if not full:
        out = [dict()]
        out.append(dict(cw=True, e=0.2 if has(spec, "label_smoothing") else 0.0,
                        ignore=-100 if has(spec, "ignore_index") else None, sw=True,
                        margin=0.5 if has(spec, "margin") else None,
                        power=2 if has(spec, "power") else None))
        if spec.accepts_probabilities:
            out.append(dict(soft=True, cw=True, e=0.1 if has(spec, "label_smoothing") else 0.0))
        if has(spec, "ignore_index"):
            out.append(dict(ignore="valid"))
        return out
    out = []
    for soft in softs:
        for cw in cws:
            for e in es:
                for ig in igs:
                    if soft and ig is not None:
                        continue
                    for sw in (False, True):
                        for margin, power in mps:
                            out.append(dict(soft=soft, cw=cw, e=e, ignore=ig, sw=sw,
                                            margin=margin, power=power))
    return out


def opt_id(opt):
    parts = []
    for k in ("soft", "cw", "e", "ignore", "sw", "margin", "power"):
        v = opt.get(k)
        if v not in (None, False, 0.0):
            parts.append(k if v is True else f"{k}={v}")
    return ",".join(parts) or "default"


def log_softmax(z):
    m = z.max(axis=-1, keepdims=True)
    s = z - m
    return s - np.log(np.exp(s).sum(axis=-1, keepdims=True))


def canonical_logits(name, S, C, rng):
    """The row's typical logits (fastloss._registry: N(0, 3) logits for
    cross_entropy, their log_softmax for nll, N(0, 1) for multi_margin),
    shape S + (C,)."""
    z, _, _ = make_inputs(name, tuple(S) + (C,), np.float64, rng)
    return z


def away_from_kinks(z, y, margin, gap=0.05):
    """multi_margin: move z_c (c != y) so that |margin - z_y + z_c| >= gap
    (the loss is not differentiable at 0, and float32 rounding of a tiny
    margin term could flip its activity)."""
    z = z.copy()
    C = z.shape[-1]
    zy = np.take_along_axis(z, y[..., None], axis=-1)
    v = margin - zy + z
    near = (np.abs(v) < gap) & (np.arange(C) != y[..., None])
    z[near] += 2 * gap
    return z


class Case:
    """One call's inputs: layout arrays in `dtype` (z, y, kw for fastloss),
    float64 versions of the same values (z64, y64, kw64 for the reference),
    and the canonical float64 arrays for the error scales."""

    def __init__(self, spec, layout, S, C, dtype, opt, seed):
        self.spec, self.layout, self.opt = spec, layout, opt
        dtype = np.dtype(dtype)
        name = spec.name
        rng = np.random.default_rng(seed_of(name, layout, S, C, opt_id(opt), seed))
        S = tuple(S)
        self.S, self.C = S, C
        zc = canonical_logits(name, S, C, rng)
        soft = bool(opt.get("soft"))
        ignore = opt.get("ignore")
        if ignore == "valid":
            ignore = min(1, C - 1)
        if soft:
            t = rng.random(S + (C,)) ** 3
            t[rng.random(t.shape) < 0.15] = 0.0
            t[..., 0] += 1e-3           # no all-zero row
            yc = t / t.sum(axis=-1, keepdims=True)
        else:
            yc = np.asarray(rng.integers(0, C, S), dtype=np.int64)
            if ignore is not None:
                yc = np.where(rng.random(S) < 0.25, ignore, yc)
        if has(spec, "margin"):
            margin = opt.get("margin") or 1.0
            zc = away_from_kinks(zc, yc, margin)
        # the values the kernels see (rounded to dtype), in float64
        zc = zc.astype(dtype).astype(np.float64)
        if soft:
            yc = yc.astype(dtype).astype(np.float64)
        kw = dict(layout_kw(layout))
        if opt.get("cw"):
            cw = rng.uniform(0.25, 2.0, C)
            if C >= 3:
                cw[C // 2] = 0.0        # a zero class weight
            kw["class_weight"] = cw.astype(dtype)
        if opt.get("e"):
            kw["label_smoothing"] = opt["e"]
        if ignore is not None:
            kw["ignore_index"] = ignore
        if opt.get("margin") is not None:
            kw["margin"] = opt["margin"]
        if opt.get("power") is not None:
            kw["power"] = opt["power"]
        sw = None
        if opt.get("sw"):
            sw = rng.uniform(0.0, 2.0, S)
            sw = np.where(rng.random(S) < 0.1, 0.0, sw).astype(dtype)
            kw["sample_weight"] = sw
        self.soft, self.ignore = soft, ignore
        self.zc, self.yc = zc, yc
        self.z = to_layout(zc, layout).astype(dtype)
        self.y = to_layout(yc, layout).astype(dtype) if soft else yc
        self.z64 = self.z.astype(np.float64)
        self.y64 = self.y.astype(np.float64) if soft else self.y
        self.kw = kw
        self.kw64 = {k: (v.astype(np.float64) if isinstance(v, np.ndarray) else v)
                     for k, v in kw.items()}
        self.sw64 = np.ones(S) if sw is None else sw.astype(np.float64)
        self.dtype = dtype

    def magnitudes(self):
        """(vmag, gmag, hmag, dw) canonical: per-sample value magnitude,
        per-element gradient / Hessian magnitudes for reduction='none' and
        unit sample weights, and the per-sample weight in the mean's
        denominator.

        Each magnitude is that of the terms the result is computed from,
        where they cancel: cross_entropy's gradient k (A p_c - w_c) with
        smoothing or probability targets (w_c the smoothing / target
        weights, A their sum) has rounding errors relative to k (A p_c +
        |w_c|); multi_margin's terms v = margin - z_y + z_c are rounded
        relative to u = |margin| + |z_y| + |z_c|.  Everything else (p_c,
        the target entry computed as -Sx/S, values that are sums of
        non-negative terms) is relative to itself."""
        if hasattr(self, "_mag"):
            return self._mag
        name = self.spec.name
        kw = {k: v for k, v in self.kw64.items() if k not in ("class_axis", "sample_weight")}
        ref = fl.get(name).reference
        zc, yc, C = self.zc, self.yc, self.C
        with quiet():
            v = np.abs(ref(zc, yc, reduction="none", **kw))
            g = np.abs(ref.grad(zc, yc, reduction="none", **kw))
            # the Hessian's magnitude is itself; computed when first needed
            h = lambda: np.abs(ref.hessian(zc, yc, reduction="none", **kw))  # noqa: E731
        cw = kw.get("class_weight")
        cw = np.ones(C) if cw is None else cw
        ignore = kw.get("ignore_index")
        if self.soft:
            valid = np.ones(self.S, bool)
            dw = np.ones(self.S)
        else:
            valid = np.ones(self.S, bool) if ignore is None else yc != ignore
            yy = np.where(valid, yc, 0)
            dw = np.where(valid, cw[yy], 0.0) if name != "multi_margin" else np.ones(self.S)
        if has(self.spec, "label_smoothing") or (self.soft and name != "nll"):
            e = kw.get("label_smoothing", 0.0)
            with quiet():
                p = np.exp(log_softmax(zc))
            if self.soft:
                w = cw * ((1 - e) * yc + e / C)
                g = w.sum(axis=-1, keepdims=True) * p + np.abs(w)
            elif e:
                g = g + valid[..., None] * (e / C) * (cw.sum() * p + np.abs(cw))
        if has(self.spec, "power"):
            margin, power = kw.get("margin", 1.0), kw.get("power", 1)
            onehot = np.arange(C) == yc[..., None]
            zy = np.take_along_axis(zc, yc[..., None], axis=-1)
            act = ((margin - zy + zc) > 0) & ~onehot
            u = abs(margin) + np.abs(zy) + np.abs(zc)
            kk = (cw[yc] / C)[..., None]
            if power == 2:
                v = kk[..., 0] * np.sum(act * u * u, axis=-1)
                gc = 2 * kk * u * act
                g = np.where(onehot, gc.sum(axis=-1, keepdims=True), gc)
            else:
                v = kk[..., 0] * np.sum(act * u, axis=-1)
        self._mag = (v, g, h, dw)
        return self._mag

    def scales(self, reduction, axis=None, hessian=False):
        """Error scales (value, grad, hessian in the layout) for a
        reduction, and the mask (in the layout) of the elements of samples
        whose slice has a zero denominator for "mean" (nan)."""
        vmag, gmag, hmag, dw = self.magnitudes()
        if hessian:
            if "_hmag" not in self.__dict__:
                with quiet():
                    self._hmag = hmag()
            hmag = self._hmag
        s = self.sw64
        sv = s * vmag
        if reduction == "none":
            vs, den = sv, np.ones(self.S)
        else:
            num = np.sum(sv, axis=axis)
            if reduction == "sum":
                den_k = np.ones((1,) * len(self.S))
                vs = num
            else:
                den_k = np.sum(s * dw, axis=axis, keepdims=True)
                d = den_k.reshape(np.shape(num))
                vs = np.where(d == 0, 0.0, num / np.where(d == 0, 1.0, d))
            den = den_k
        with np.errstate(divide="ignore", invalid="ignore"):
            k = np.where(den == 0, 0.0, s / np.where(den == 0, 1.0, den))[..., None]
        gs = to_layout(k * gmag, self.layout)
        hs = to_layout(k * hmag, self.layout) if hessian else None
        zero = np.broadcast_to(den == 0, self.S)[..., None] & np.ones(self.C, bool)
        return vs, gs, hs, to_layout(zero, self.layout)


def reference_results(case, reduction, axis=None, methods=("value", "grad", "hessian")):
    """The reference's results on the case (cached on the case)."""
    ref = loss_of(case.spec).reference
    memo = case.__dict__.setdefault("_ref", {})
    out = {}
    with quiet():
        for m in methods:
            key = (reduction, axis, m)
            if key not in memo:
                memo[key] = call(ref, m, case.z64, case.y64, reduction=reduction, axis=axis,
                                 **case.kw64)
            out[m] = memo[key]
    return out


_GROUP = {"key": None, "cases": {}}


def group_case(group, spec, layout, S, C, dtype, opt, seed):
    """Case(...), shared by consecutive test items of one `group` (the
    n_threads / part parameters vary fastest): the reference is computed once
    per group.  Only the last group is kept (memory)."""
    if _GROUP["key"] != group:
        _GROUP["key"], _GROUP["cases"] = group, {}
    key = (spec.name, layout, tuple(S), C, np.dtype(dtype).str, opt_id(opt), seed)
    if key not in _GROUP["cases"]:
        _GROUP["cases"][key] = Case(spec, layout, S, C, dtype, opt, seed)
    return _GROUP["cases"][key]


def compare(fails, case, reduction, part, axis=None, n_threads=None, what=""):
    """fastloss on the case against the reference: part 'value_grad' checks
    value, grad and value_and_grad (== (value, grad) bit for bit);
    'hessian' checks hessian."""
    L = loss_of(case.spec)
    cdt = case.dtype
    rtol, atol = RTOL[cdt], ATOL[cdt]
    kw = dict(case.kw, reduction=reduction)
    if axis is not None:
        kw["axis"] = axis
    if n_threads is not None:
        kw["n_threads"] = n_threads
    vs, gs, hs, zero = case.scales(reduction, axis, hessian=part == "hessian")
    what = f"{case.spec.name} {case.layout} S={case.S} C={case.C} {cdt.name} " \
           f"[{opt_id(case.opt)}] reduction={reduction}" + (f" axis={axis}" if axis is not None
                                                          else "") + what
    with quiet():
        if part == "value_grad":
            r = reference_results(case, reduction, axis, ("value", "grad"))
            v = L(case.z, case.y, **kw)
            g = L.grad(case.z, case.y, **kw)
            vg = L.value_and_grad(case.z, case.y, **kw)
            fails.check(check_value_type, v, r["value"], cdt, what + " value type")
            fails.check(assert_close, v, r["value"], vs, rtol, what + " value", atol)
            assert isinstance(g, np.ndarray) and g.dtype == cdt and g.shape == case.z.shape, \
                f"{what}: grad {type(g)} {getattr(g, 'dtype', None)} {getattr(g, 'shape', None)}"
            # Slices of a mean whose denominator is 0 but whose numerator is
            # not (label smoothing of samples whose labels weigh 0) have no
            # defined derivative (SPEC section 1 fixes it only where the
            # weight is 0): left out here; the value is nan, compared above.
            fails.check(assert_close, np.where(zero, 0, g), np.where(zero, 0, r["grad"]), gs,
                        rtol, what + " grad", atol)
            assert isinstance(vg, tuple) and len(vg) == 2, what
            fails.check(assert_identical, vg[0], v, what + " value_and_grad[0] vs value")
            fails.check(assert_identical, vg[1], g, what + " value_and_grad[1] vs grad")
        else:
            r = reference_results(case, reduction, axis, ("hessian",))
            h = L.hessian(case.z, case.y, **kw)
            assert isinstance(h, np.ndarray) and h.dtype == cdt and h.shape == case.z.shape, what
            fails.check(assert_close, np.where(zero, 0, h), np.where(zero, 0, r["hessian"]), hs,
                        rtol, what + " hessian", atol)


# ============================================================ 1. reference

@pytest.mark.parametrize("part", ["value_grad", "hessian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_matches_reference(spec, layout, dtype, part):
    """Every combination of the row's options (class_weight x
    label_smoothing in {0, 0.25, 1} x ignore_index in {None, a valid class,
    -100} x sample_weight x labels / probabilities x margin/power) and every
    reduction, in five layouts, against the float64 reference.  value_grad:
    value, grad, value_and_grad; hessian: the Hessian diagonal."""
    S, C = LAYOUTS[layout]
    fails = Failures()
    for opt in option_sets(spec, full=True):
        case = group_case(("matrix", spec.name, layout, dtype), spec, layout, S, C, dtype, opt,
                          seed=1)
        for red in REDUCTIONS:
            compare(fails, case, red, part)
    fails.done()


# Sizes that reach each C code path (see the module docstring):
#   C in {1, 2, 10, 47, 48} -> column path of cross_entropy through a
#   transpose, C in {49, 1000} -> row path, C = 20000 with N = 3 and two
#   threads -> split path (N = 1 has too little work for a second thread);
#   N * C >= 2 * 20000 gives cross_entropy two threads, >= 2 * 200000 gives
#   nll / multi_margin two threads (C = 20000, N = 21), and many samples
#   with few classes (N = 2000, C = 47; the (8, 10, 40, 40) layout) gives
#   the column path two threads.
PATH_CASES = ([("rows", (N,), C) for C in (1, 2, 10, 47, 48, 49, 1000) for N in (1, 3, 64, 200)]
              + [("rows", (1,), 20000), ("rows", (3,), 20000), ("rows", (21,), 20000),
                 ("rows", (2000,), 47), ("axis1", (8, 40, 40), 10), ("axis1", (3, 5, 7), 49),
                 ("axis1", (2, 3, 4), 1), ("axis0", (300,), 12)])
PATH_IDS = [f"{lay}-S{'x'.join(map(str, S))}-C{C}" for lay, S, C in PATH_CASES]


# cross_entropy needs no more than (3, 20000) for its long rows and threads
LIGHT_ONLY = {("rows", (21,), 20000)}


@pytest.mark.parametrize("n_threads", [1, 2], ids=["t1", "t2"])
@pytest.mark.parametrize("part", ["value_grad", "hessian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("layout,S,C", PATH_CASES, ids=PATH_IDS)
def test_code_paths_match_reference(layout, S, C, dtype, n_threads, part):
    """Each row of the table, a few option sets (defaults -- the fast path
    for rows --, weights + smoothing + ignore_index, probabilities, a valid
    ignore_index; power 2 and margin 0.5 for multi_margin), reductions none,
    mean and sum, at sizes that reach every C code path, on 1 and 2
    threads, against the float64 reference."""
    fails = Failures()
    for spec in SPECS:
        if (layout, S, C) in LIGHT_ONLY and spec.kernel == "ce":
            continue
        for opt in option_sets(spec, full=False):
            if opt.get("ignore") == "valid" and C == 1:
                continue        # would ignore every sample; tested elsewhere
            case = group_case(("paths", layout, S, C, dtype), spec, layout, S, C, dtype, opt,
                              seed=2)
            for red in ("none", "mean", "sum"):
                compare(fails, case, red, part, n_threads=n_threads,
                        what=f" n_threads={n_threads}")
    fails.done()


# ====================================================== 2. PyTorch, sklearn

@pytest.fixture
def torch():
    """PyTorch on one intra-op thread for these tiny tensors (its thread
    pool only waits on a busy two-core machine); restored afterwards."""
    torch = pytest.importorskip("torch")
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield torch
    torch.set_num_threads(n)


# torch's layouts: (N, C), (N, C, d1, d2) and a single sample (C,) with a
# 0-d label; fastloss takes them with class_axis=1 (0 for (C,): the default)
_T_LAYOUTS = {"NC": ("rows", (12,), 5), "NCd1d2": ("axis1", (3, 4, 2), 5),
              "C": ("rows", (), 6)}
# Case's option keys of the scalar parameters it sets
_CASE_KEY = {"label_smoothing": "e", "margin": "margin", "power": "power"}


def _torch_values(prm):
    """The values of a scalar parameter compared with torch: every value of a
    finite domain, else the default and one other (0.2 for a zero default,
    half the default otherwise)."""
    if prm.domain.values is not None:
        return tuple(type(prm.default)(v) for v in prm.domain.values)
    return (prm.default, 0.2 if prm.default == 0 else prm.default / 2)


def torch_option_sets(spec):
    """Every combination of the declaration's options: labels / probability
    targets, class weights, ignore_index (none, a valid class, -100; labels
    only) and each scalar parameter's values (_torch_values)."""
    import itertools
    scalars = [spec.param(n) for n in _CASE_KEY if n in spec.param_names]
    out = []
    for soft in ((False, True) if spec.accepts_probabilities else (False,)):
        for cw in ((False, True) if has(spec, "class_weight") else (False,)):
            igs = (None, 1, -100) if has(spec, "ignore_index") and not soft else (None,)
            for ig in igs:
                for vals in itertools.product(*[_torch_values(p) for p in scalars]):
                    opt = dict(soft=soft, cw=cw, ignore=ig)
                    opt.update({_CASE_KEY[p.name]: v for p, v in zip(scalars, vals)})
                    out.append(opt)
    return out


def _torch_k(torch, spec, case):
    """The peer's parameters of a case: every scalar parameter (defaults
    where the case sets none), the class weights as a float64 tensor."""
    k = {p.name: case.kw64.get(p.name, p.default) for p in spec.params}
    if "class_weight" in case.kw64:
        k["class_weight"] = torch.from_numpy(case.kw64["class_weight"])
    return k


@pytest.mark.parametrize("part", ["value_grad", "hessian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("tlayout", list(_T_LAYOUTS))
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_pytorch(torch, spec, tlayout, dtype, part):
    """The declaration's torch spelling (spec.peers["torch"]) with every
    combination of torch_option_sets x reduction, in torch's layouts:
    values, autograd gradients and Hessian diagonals (double backward, one
    class at a time) against fastloss.  torch computes in float64 on the
    same (float32-representable) inputs.

    Where torch has no such call -- multi_margin_loss takes no (N, C, d1, d2)
    logits, nll_loss no probability targets, multi_margin_loss no double
    backward -- the combination is left out (torch raises); the plain (N, C)
    case with labels always runs, and at least one combination must."""
    F = torch.nn.functional
    L = loss_of(spec)
    peer = spec.peers["torch"]
    clayout, S, C = _T_LAYOUTS[tlayout]
    cdt = np.dtype(dtype)
    fails = Failures()
    ran = skipped = 0
    for opt in torch_option_sets(spec):
        case = Case(spec, clayout, S, C, dtype, opt, seed=3)
        x = torch.tensor(case.z64, requires_grad=True)
        tgt = torch.from_numpy(case.y64 if case.soft else case.y)
        k = _torch_k(torch, spec, case)
        limited = tlayout == "NCd1d2" or case.soft or part == "hessian"
        for red in REDUCTIONS:
            what = f"torch {spec.name} {tlayout} {cdt.name} [{opt_id(opt)}] {red}"
            try:
                loss = peer(F, x, tgt, k, red)
                (g,) = torch.autograd.grad(loss.sum(), x, create_graph=part == "hessian")
                hd = None
                if part == "hessian":
                    hd = np.zeros(case.z.shape)
                    if g.requires_grad:         # else piecewise linear: 0
                        ca = 0 if x.ndim == 1 else 1
                        for c in range(C):      # the diagonal, class by class
                            (hc,) = torch.autograd.grad(g.select(ca, c).sum(), x,
                                                        retain_graph=True, allow_unused=True)
                            if hc is not None:
                                hd[(slice(None),) * ca + (c,)] = \
                                    hc.select(ca, c).detach().numpy()
            except (RuntimeError, ValueError, NotImplementedError):
                if not limited:
                    raise
                skipped += 1
                continue
            ran += 1
            vs, gs, hs, zero = case.scales(red, hessian=part == "hessian")
            # a "mean" over zero total weight (a single sample whose label's
            # class weight is 0): torch's derivatives are 0/0 = NaN there,
            # SPEC section 5's are 0 wherever the weight is 0
            fix = (lambda a: np.where(zero, 0.0, a)) if red == "mean" else (lambda a: a)
            # float64: torch's log_softmax is x - max - log(sum), whose
            # rounding is absolute, ~eps * (|x - max| + log C) <= 1e-14 for
            # these logits: atol 1e-13 besides the relative tolerance
            # (relative to the magnitudes of the terms, Case.scales).
            # float32: SPEC's 3e-5.
            rt = 1e-12 if cdt == F64 else RTOL[F32]
            if part == "value_grad":
                v, fg = L.value_and_grad(case.z, case.y, reduction=red, **case.kw)
                fails.check(assert_close, v, loss.detach().numpy(), vs, rt,
                            what + " value", 1e-13)
                fails.check(assert_close, fg, fix(g.detach().numpy()), gs, rt, what + " grad",
                            1e-13)
            else:
                fh = L.hessian(case.z, case.y, reduction=red, **case.kw)
                fails.check(assert_close, fh, fix(hd), hs, rt, what + " hessian", 1e-13)
    fails.done()
    if not ran:
        pytest.skip(f"torch has no {spec.name} call for this layout / part "
                    f"({skipped} combinations)")


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_sklearn_half_multinomial(weighted):
    """sklearn's HalfMultinomialLoss: per-sample loss = cross_entropy with
    reduction='none'; its __call__ (np.average with sample weights) = the
    mean; its gradient and Hessian diagonal are per sample, multiplied by
    the sample weight and NOT divided by the number or weight of samples:
    = fastloss grad / hessian with reduction='sum'."""
    pytest.importorskip("sklearn")
    from sklearn._loss.loss import HalfMultinomialLoss
    L = needs("cross_entropy")
    fails = Failures()
    for C in (3, 60):                       # column and row paths
        opt = dict(sw=weighted)
        case = Case(L.spec, "rows", (300,), C, np.float64, opt, seed=6)
        sk = HalfMultinomialLoss(n_classes=C)
        w = case.kw.get("sample_weight")
        y = case.y.astype(np.float64)
        skl = sk.loss(y_true=y, raw_prediction=case.z, sample_weight=w)
        skg, skh = sk.gradient_hessian(y_true=y, raw_prediction=case.z, sample_weight=w)
        vs, _, _, _ = case.scales("none")
        _, gsum, hsum, _ = case.scales("sum", hessian=True)
        vmean, _, _, _ = case.scales("mean")
        # sklearn computes logsumexp and p*(1-p) directly: absolute errors of
        # a few eps on O(1) quantities (its p*(1-p) cancels for a dominant
        # class), hence atol 1e-15 besides the relative 1e-13.
        fails.check(assert_close, L(case.z, case.y, reduction="none", sample_weight=w), skl,
                    vs, 1e-13, f"C={C} loss", 1e-15)
        fails.check(assert_close, L(case.z, case.y, sample_weight=w),
                    sk(y_true=y, raw_prediction=case.z, sample_weight=w), vmean, 1e-13,
                    f"C={C} mean", 1e-15)
        fails.check(assert_close, L.grad(case.z, case.y, reduction="sum", sample_weight=w), skg,
                    gsum, 1e-13, f"C={C} gradient", 1e-15)
        fails.check(assert_close, L.hessian(case.z, case.y, reduction="sum", sample_weight=w),
                    skh, hsum, 1e-13, f"C={C} hessian", 1e-15)
    fails.done()


@pytest.mark.parametrize("part", ["value_grad", "hessian"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_sklearn_half_binomial_is_two_class_cross_entropy(dtype, part):
    """HalfBinomialLoss on a raw logit r is cross_entropy on the logits
    (0, r): log(1 + exp(r)) - y r = logsumexp(0, r) - z_y.  Its gradient is
    the derivative w.r.t. z_1 (and minus the one w.r.t. z_0); its Hessian
    p(1 - p) is the Hessian diagonal at both classes.  scikit-learn computes
    these from exp(-|r|) to a few ulp (relative), so every element is
    compared relatively -- including the classes whose probability is close
    to 1."""
    pytest.importorskip("sklearn")
    from sklearn._loss.loss import HalfBinomialLoss
    L = needs("cross_entropy")
    cdt = np.dtype(dtype)
    rng = np.random.default_rng(seed_of("binomial"))
    r = (rng.standard_normal(400) * 6).astype(dtype)
    y = rng.integers(0, 2, 400)
    w = rng.uniform(0, 2, 400)
    z = np.stack([np.zeros_like(r), r], axis=1)
    r64 = r.astype(np.float64)
    sk = HalfBinomialLoss()
    skl = sk.loss(y_true=y.astype(float), raw_prediction=r64, sample_weight=w)
    skg, skh = sk.gradient_hessian(y_true=y.astype(float), raw_prediction=r64, sample_weight=w)
    # float64: scikit-learn writes log1p(exp(r)) - y*r, whose rounding is
    # relative to |y r| (cancellation), then a few ulp: 1e-13.  float32: SPEC.
    rt = 1e-13 if cdt == F64 else RTOL[F32]
    fails = Failures()
    if part == "value_grad":
        fails.check(assert_close, L(z, y, reduction="none", sample_weight=w.astype(dtype)), skl,
                    np.abs(skl) + w * np.abs(y * r64), rt, f"{cdt.name} loss")
        g = L.grad(z, y, reduction="sum", sample_weight=w.astype(dtype))
        fails.check(assert_close, g[:, 1], skg, np.abs(skg), rt, f"{cdt.name} gradient (z_1)")
        fails.check(assert_close, g[:, 0], -skg, np.abs(skg), rt, f"{cdt.name} gradient (z_0)")
    else:
        h = L.hessian(z, y, reduction="sum", sample_weight=w.astype(dtype))
        fails.check(assert_close, h[:, 1], skh, np.abs(skh), rt, f"{cdt.name} hessian (z_1)")
        fails.check(assert_close, h[:, 0], skh, np.abs(skh), rt, f"{cdt.name} hessian (z_0)")
    fails.done()


# ====================================================== 3. finite differences

def fd_options(spec):
    return [o for o in option_sets(spec, full=False)] + (
        [dict(power=1, margin=1.0, cw=True), dict(power=2, margin=1.5)]
        if has(spec, "power") else [])


@pytest.mark.parametrize("layout", ["rows", "axis1"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_derivatives_match_finite_differences(spec, layout):
    """grad vs 4th-order central differences of the value, and the Hessian
    diagonal vs central differences of grad, one logit perturbed at a time
    (float64; reductions sum and mean; multi_margin away from its kinks)."""
    L = loss_of(spec)
    S, C = ((3,), 5) if layout == "rows" else ((2, 3), 4)
    h = 2.0 ** -12          # exact in binary
    fails = Failures()
    for opt in fd_options(spec):
        case = Case(spec, layout, S, C, np.float64, opt, seed=7)
        z, y = case.z, case.y
        for red in ("sum", "mean"):
            kw = dict(case.kw, reduction=red)
            what = f"{spec.name} {layout} [{opt_id(opt)}] {red}"
            # Error budget: truncation h**4/30 * |f^(5)| ~ 1e-16 for O(1)
            # derivatives of softmax / the quadratic margin terms; rounding
            # of the summed value F: ~eps*|F|*18/(12h) ~ 7e-13 * |F|.  Hence
            # rtol 1e-8 and atol 1e-11 * (1 + |F|).
            F0 = float(abs(L(z, y, **kw)))
            fd = np.zeros(z.shape)
            fdh = np.zeros(z.shape)
            for i in np.ndindex(z.shape):
                vals, grads = [], []
                for k in (-2, -1, 1, 2):
                    q = z.copy()
                    q[i] += k * h
                    vals.append(float(L(q, y, **kw)))
                    grads.append(L.grad(q, y, **kw)[i])
                fd[i] = (vals[0] - 8 * vals[1] + 8 * vals[2] - vals[3]) / (12 * h)
                fdh[i] = (grads[0] - 8 * grads[1] + 8 * grads[2] - grads[3]) / (12 * h)
            g = L.grad(z, y, **kw)
            H = L.hessian(z, y, **kw)
            fails.check(assert_close, g, fd, np.abs(g), 1e-8, what + " grad vs FD",
                        1e-11 * (1 + F0))
            # gradients are O(1): their rounding ~eps, amplified by 1.5/h
            fails.check(assert_close, H, fdh, np.abs(H), 1e-8, what + " hessian vs FD of grad",
                        1e-11 * (1 + np.abs(g).max()))
    fails.done()


# ======================================= 4. infinite, huge and tiny logits

# (id, layout, S, C, n_threads): column path, row path, split path,
# class_axis=1 and the fast path (float64 rows, int64 labels, defaults).
INF_PATHS = [("cols", "rows", (4,), 5, 1), ("rows", "rows", (4,), 60, 1),
             ("split", "rows", (3,), 20000, 2), ("axis1", "axis1", (2, 3), 5, 1)]


def stable_ce(z, y):
    """logsumexp(z) - z_y in float64 with full relative accuracy: with
    d = z - z_y and m = max(d) >= 0, it is m + log(exp(-m) + sum_{c!=y}
    exp(d_c - m)), i.e. log1p(sum_{c!=y} exp(d_c)) when y is the maximum."""
    zy = np.take_along_axis(z, y[..., None], axis=-1)
    d = z - zy
    m = np.max(d, axis=-1, keepdims=True)
    rest = np.sum(np.where(np.arange(z.shape[-1]) == y[..., None], 0.0, np.exp(d - m)),
                  axis=-1, keepdims=True)
    with np.errstate(divide="ignore"):
        out = np.where(m == 0, np.log1p(rest), m + np.log(np.exp(-m) + rest))
    return out[..., 0]


def _inf_case(layout, S, C, dtype, seed):
    rng = np.random.default_rng(seed_of("inf", layout, S, C, seed))
    zc = rng.standard_normal(tuple(S) + (C,)) * 2
    y = rng.integers(0, C, S)
    return rng, zc, y


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("pid,layout,S,C,nt", INF_PATHS, ids=[p[0] for p in INF_PATHS])
def test_minus_inf_masks_a_class(pid, layout, S, C, nt, dtype):
    """-inf in non-target classes (the usual class mask): finite value equal
    to the cross-entropy over the remaining classes, gradient and Hessian 0
    there (SPEC section 2); with class weights, and with probability
    targets that are 0 on the masked classes.  With label smoothing > 0 the
    masked classes get target mass: +inf; unless their class weight is 0.
    nll ignores non-target log-probabilities; multi_margin's terms there are
    0.  A sample whose logits are all -inf is NaN (no limit exists)."""
    L = fl.cross_entropy
    rng, z0, y = _inf_case(layout, S, C, dtype, 0)
    z0 = z0.astype(dtype)
    onehot = np.arange(C) == y[..., None]
    mask = (rng.random(z0.shape) < 0.3) & ~onehot
    zc = np.where(mask, -np.inf, z0).astype(dtype)
    z = to_layout(zc, layout)
    mz = to_layout(mask, layout)
    kw = dict(layout_kw(layout), n_threads=nt)
    cdt = np.dtype(dtype)
    rt = RTOL[cdt]
    fails = Failures()
    expect = stable_ce(zc.astype(np.float64), y)      # over the unmasked classes
    v = L(z, y, reduction="none", **kw)
    g = L.grad(z, y, reduction="none", **kw)
    H = L.hessian(z, y, reduction="none", **kw)
    assert np.all(np.isfinite(v)), f"{pid}: {v}"
    fails.check(assert_close, v, expect, np.abs(expect), rt, f"{pid} value vs closed form")
    fails.check(assert_close, g[mz], np.zeros(mz.sum()), 0, 0, f"{pid} grad at -inf")
    fails.check(assert_close, H[mz], np.zeros(mz.sum()), 0, 0, f"{pid} hessian at -inf")
    for extra in ({}, {"class_weight": rng.uniform(0.5, 2, C).astype(dtype)}):
        r = fl.cross_entropy.reference
        z64 = z.astype(np.float64)
        kw64 = {k: (a.astype(np.float64) if isinstance(a, np.ndarray) else a)
                for k, a in extra.items()}
        for m_ in ("value", "grad", "hessian"):
            got = call(L, m_, z, y, reduction="none", **kw, **extra)
            with quiet():
                exp_ = call(r, m_, z64, y, reduction="none", **layout_kw(layout), **kw64)
            assert np.all(np.isfinite(got)), f"{pid} {m_} {extra.keys()}: not finite"
            fails.check(assert_close, got, exp_, np.abs(exp_), rt, f"{pid} {m_} {list(extra)}",
                        ATOL[cdt])
    # probability targets that are 0 on the masked classes: finite
    t = np.where(mask, 0.0, rng.random(zc.shape))
    t = (t / t.sum(axis=-1, keepdims=True)).astype(dtype)
    vt = L(z, to_layout(t, layout), reduction="none", **kw)
    gt = L.grad(z, to_layout(t, layout), reduction="none", **kw)
    assert np.all(np.isfinite(vt)) and np.all(np.isfinite(gt)), f"{pid}: {vt}"
    fails.check(assert_close, gt[mz], np.zeros(mz.sum()), 0, 0, f"{pid} soft grad at -inf")
    # label smoothing spreads mass onto the masked classes: +inf
    rows_masked = mask.any(axis=-1)
    vs = L(z, y, reduction="none", label_smoothing=0.1, **kw)
    assert np.all(np.isposinf(vs[rows_masked])), f"{pid} smoothing: {vs}"
    assert np.all(np.isfinite(vs[~rows_masked])), f"{pid} smoothing: {vs}"
    assert np.isposinf(L(z, y, label_smoothing=0.1, **kw))
    # ... unless the masked classes weigh 0 (0 * inf is 0: the limit)
    if C > 2:
        cw = np.ones(C, dtype)
        cmask = np.zeros_like(mask)
        cmask[..., C - 1] = True
        zc2 = np.where(cmask & ~onehot, -np.inf, z0).astype(dtype)
        cw[C - 1] = 0
        vz = L(to_layout(zc2, layout), y, reduction="none", label_smoothing=0.1,
               class_weight=cw, **kw)
        assert np.all(np.isfinite(vz)), f"{pid} zero-weighted masked class: {vz}"
        with quiet():
            rz = L.reference(to_layout(zc2, layout).astype(np.float64), y, reduction="none",
                             label_smoothing=0.1, class_weight=cw.astype(np.float64),
                             **layout_kw(layout))
        fails.check(assert_close, vz, rz, np.abs(rz), rt, f"{pid} zero-weighted masked class")
    # nll and multi_margin: a -inf non-target logit contributes nothing
    lp = np.where(mask, -np.inf, log_softmax(z0.astype(np.float64))).astype(dtype)
    vn = fl.nll(to_layout(lp, layout), y, reduction="none", **kw)
    fails.check(assert_close, vn, -np.take_along_axis(lp, y[..., None], -1)[..., 0].astype(
        np.float64), 0, 0, f"{pid} nll")
    vm = fl.multi_margin(z, y, reduction="none", **kw)
    gm = fl.multi_margin.grad(z, y, reduction="none", **kw)
    assert np.all(np.isfinite(vm)) and np.all(np.isfinite(gm)), f"{pid} multi_margin"
    fails.check(assert_close, gm[mz], np.zeros(mz.sum()), 0, 0, f"{pid} multi_margin grad")
    # a sample whose logits are all -inf: NaN (value and its gradient row);
    # the other samples are untouched
    za = zc.copy()
    first = (0,) * len(S)
    za[first] = -np.inf
    za_l = to_layout(za, layout)
    va = L(za_l, y, reduction="none", **kw)
    ga = np.moveaxis(L.grad(za_l, y, reduction="none", **kw), class_axis_of(layout, za_l.ndim),
                     -1)
    assert np.isnan(va[first]) and np.all(np.isnan(ga[first])), f"{pid} all -inf: {va[first]}"
    others = np.ones(S, bool)
    others[first] = False
    fails.check(assert_close, va[others], v[others], 0, 0, f"{pid} all -inf row leaks")
    assert np.isnan(L(za_l, y, **kw))
    fails.done()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("pid,layout,S,C,nt", INF_PATHS, ids=[p[0] for p in INF_PATHS])
def test_plus_inf_and_huge_logits(pid, layout, S, C, nt, dtype):
    """+inf in the target class: loss 0, gradient 0 (the limit); +inf in a
    non-target class: loss +inf, gradient +1 there and -1 at the target.
    Logits of 1e30 (float32 too) and +-1e4 give finite results equal to the
    float64 reference (no exp overflow)."""
    L = fl.cross_entropy
    cdt = np.dtype(dtype)
    rng, zc, y = _inf_case(layout, S, C, dtype, 1)
    kw = dict(layout_kw(layout), n_threads=nt)
    first = (0,) * len(S)
    yf = int(y[first])
    other = (yf + 1) % C
    fails = Failures()
    # +inf at the target of the first sample, +inf at a non-target of the last
    zi = zc.copy()
    zi[first + (yf,)] = np.inf
    last = tuple(s - 1 for s in S)
    if last != first:
        zi[last + ((int(y[last]) + 1) % C,)] = np.inf
    zi = zi.astype(dtype)
    zl = to_layout(zi, layout)
    v = L(zl, y, reduction="none", **kw)
    g = np.moveaxis(L.grad(zl, y, reduction="none", **kw), class_axis_of(layout, zl.ndim), -1)
    assert v[first] == 0 and np.all(g[first] == 0), f"{pid} +inf target: {v[first]}, {g[first]}"
    if last != first:
        yl = int(y[last])
        assert np.isposinf(v[last]), f"{pid} +inf non-target: {v[last]}"
        expect = np.zeros(C)
        expect[yl], expect[(yl + 1) % C] = -1, 1
        fails.check(assert_close, g[last], expect, 0, 0, f"{pid} +inf non-target grad")
    # huge finite logits
    for big in (1e30, 1e4):
        zh = zc.copy()
        zh[first + (yf,)] = big             # target dominates: loss 0
        zh[first + (other,)] = -big
        if last != first:
            zh[last + ((int(y[last]) + 1) % C,)] = big     # non-target: loss ~ big
            zh[last + (int(y[last]),)] = -big
        zh = zh.astype(dtype)
        zl = to_layout(zh, layout)
        z64 = zl.astype(np.float64)
        for m in ("value", "grad", "hessian"):
            got = call(L, m, zl, y, reduction="none", **kw)
            with quiet():
                exp_ = call(L.reference, m, z64, y, reduction="none", **layout_kw(layout))
            assert np.all(np.isfinite(got)), f"{pid} {big:g} {m}: {got}"
            fails.check(assert_close, got, exp_, np.abs(exp_), RTOL[cdt], f"{pid} {big:g} {m}",
                        ATOL[cdt])
        assert np.isfinite(L(zl, y, **kw)) and np.isfinite(L(zl, y, label_smoothing=0.3, **kw))
    fails.done()


def _exact_ce(z, y):
    """mpmath: loss, gradient (p - onehot) and Hessian diagonal p(1-p) of
    one sample, to 50 digits."""
    mpmath = pytest.importorskip("mpmath")
    with mpmath.workdps(50):
        zs = [mpmath.mpf(float(v)) for v in z]
        lse = mpmath.log(mpmath.fsum(mpmath.exp(v) for v in zs))
        p = [mpmath.exp(v - lse) for v in zs]
        # 1 - p_c as the sum of the other probabilities: no cancellation
        q = [mpmath.fsum(p[:c] + p[c + 1:]) for c in range(len(zs))]
        loss = lse - zs[y]
        g = [(-q[c] if c == y else p[c]) for c in range(len(zs))]
        h = [p[c] * q[c] for c in range(len(zs))]
        return float(loss), np.array([float(v) for v in g]), np.array([float(v) for v in h])


# rows whose loss (or a gradient entry) is tiny: z_y exceeds the others by a lot
TINY_ROWS = [([40.0, 0.0], 0), ([0.0, 40.0], 1), ([30.0, -3.0, 1.0, 2.5, 0.0], 0),
             ([-1.0, 2.0, 25.0, 0.5], 2), ([-20.0, -60.0], 0)]


def _tiny_layouts(row, y, C):
    """The same sample as a (1, C) row (the fast path, column path), as
    (C, 1) with class_axis=0 and as 1-D logits with a 0-d label."""
    z = np.array([row])
    yield "rows", z, np.array([y]), {}
    yield "axis0", np.ascontiguousarray(z.T), np.array([y]), {"class_axis": 0}
    yield "1d", z[0], np.array(y), {}


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("row,y", TINY_ROWS, ids=[f"{r}-y{y}" for r, y in TINY_ROWS])
def test_tiny_losses_keep_relative_accuracy(row, y, dtype):
    """z = [40, 0] (label 0) has loss log1p(exp(-40)) = 4.25e-18 and
    gradient -+4.25e-18: fastloss must give them to a few ulp (relative),
    not 0 (SPEC section 2); checked against mpmath (and the closed form
    log1p(exp(-d)) for two classes) in several layouts, also for a row of 60
    classes (row path) whose 55 extra logits are -inf."""
    cdt = np.dtype(dtype)
    loss, g, _ = _exact_ce(row, y)
    # float64: vectorised exp/log1p (<= 2 ulp each), sums of <= 5 positive
    # terms, one division: 16 ulp.  float32: SPEC's 3e-5 (the float32 kernel
    # rounds exp(z - m) to float32 then accumulates in double).
    rt = 16 * float(np.finfo(np.float64).eps) if cdt == F64 else RTOL[F32]
    if len(row) == 2:
        d = abs(row[0] - row[1])
        closed = math.log1p(math.exp(-d)) if row[y] == max(row) else d + math.log1p(math.exp(-d))
        assert abs(closed - loss) <= 4e-16 * abs(loss)
    fails = Failures()
    L = fl.cross_entropy
    for lay, z, yy, kw in _tiny_layouts(row, y, len(row)):
        z = z.astype(dtype)
        v = L(z, yy, reduction="none", **kw)
        gr = L.grad(z, yy, reduction="none", **kw)
        fails.check(assert_close, v, np.full(np.shape(v), loss), abs(loss), rt, f"{lay} value")
        gexp = g if lay != "axis0" else g[:, None]
        fails.check(assert_close, gr, gexp.reshape(gr.shape), np.abs(gexp).reshape(gr.shape),
                    rt, f"{lay} grad")
    # the same sample padded to 60 classes with -inf (row path)
    zr = np.full((1, 60), -np.inf)
    zr[0, :len(row)] = row
    v = L(zr.astype(dtype), np.array([y]), reduction="none")
    gr = L.grad(zr.astype(dtype), np.array([y]), reduction="none")
    fails.check(assert_close, v, [loss], abs(loss), rt, "60 classes value")
    fails.check(assert_close, gr[0, :len(row)], g, np.abs(g), rt, "60 classes grad")
    fails.done()


@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
@pytest.mark.parametrize("C", [2, 5, 60])
def test_hessian_of_a_dominant_class_keeps_relative_accuracy(C, dtype):
    """The Hessian diagonal p_c (1 - p_c) of a class with p_c close to 1 is
    tiny; SPEC section 2 asks a few ulp (relative) of the exact value, as the
    reference gets by taking 1 - p_c of the argmax as the sum of the other
    probabilities.  The dominant class is the target in the first sample
    and a NON-target class in the second (z = [40, 0, ...] with label 1):
    its exact Hessian is 4.25e-18, not 0."""
    cdt = np.dtype(dtype)
    rt = 16 * float(np.finfo(np.float64).eps) if cdt == F64 else RTOL[F32]
    z = np.full((2, C), -np.inf if C == 60 else 0.0)
    z[:, :2] = [[40.0, 0.0], [40.0, 0.0]]
    if C == 5:
        z[:, 2:] = [-1.0, 3.0, -30.0]
    y = np.array([0, 1])
    fails = Failures()
    for i in range(2):
        _, _, hexp = _exact_ce(z[i], int(y[i]))
        fin = np.isfinite(z[i])
        h = fl.cross_entropy.hessian(z.astype(dtype), y, reduction="none")
        fails.check(assert_close, h[i][fin], hexp[fin], hexp[fin], rt,
                    f"{cdt.name} C={C} sample {i} (label {y[i]}) hessian")
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_nan_propagates_to_its_sample(spec):
    """NaN in a logit gives NaN for that sample's value and NaN in the
    derivatives where the reference has them (cross_entropy: the whole row;
    multi_margin: the NaN class and the target), never for other samples
    (the column path handles 64 samples at once); a NaN at a non-target
    log-probability does not enter nll.  Reductions over the sample are
    NaN.  Column, row and class_axis=1 layouts, float32 and float64."""
    L = loss_of(spec)
    fails = Failures()
    for layout, S, C in (("rows_few", (70,), 5), ("rows", (5,), 60), ("axis1", (2, 7), 4)):
        for dtype in (np.float64, np.float32):
            for opt in ({}, {"power": 2} if has(spec, "power") else {"cw": True}):
                case = Case(spec, layout, S, C, dtype, opt, seed=8)
                zc = case.zc.copy()
                idx = [(0,) * len(S), tuple(s - 1 for s in S)]
                yc = case.yc
                zc[idx[0] + (int(yc[idx[0]]),)] = np.nan          # at the target
                zc[idx[1] + ((int(yc[idx[1]]) + 1) % C,)] = np.nan  # elsewhere
                z = to_layout(zc, layout).astype(dtype)
                what = f"{spec.name} {layout} {np.dtype(dtype).name} {opt}"
                for m in ("value", "grad", "hessian"):
                    got = call(L, m, z, case.y, reduction="none", **case.kw)
                    with quiet():
                        exp_ = call(L.reference, m, z.astype(np.float64), case.y,
                                    reduction="none", **case.kw64)
                    fails.check(assert_close, np.isnan(got), np.isnan(exp_), 0, 0,
                                f"{what} {m}: NaN pattern")
                v = L(z, case.y, reduction="none", **case.kw)
                assert np.isnan(v[idx[0]]), what
                if spec.name != "nll":
                    assert np.isnan(v[idx[1]]), what
                nanmask = np.zeros(S, bool)
                nanmask[idx[0]] = True
                nanmask[idx[1]] = spec.name != "nll"
                assert not np.isnan(v[~nanmask]).any(), what
                assert np.isnan(L(z, case.y, **case.kw)), what
    fails.done()


# ================================================== 5. hostile labels, errors

def _sentinel(shape, dtype):
    return np.full(shape, 12345, dtype=dtype)


def _value_mentioned(msg, v):
    cands = {str(v), repr(v)}
    if isinstance(v, float):
        if math.isnan(v):
            cands.add("nan")
        elif math.isinf(v):
            cands.add("inf")
        elif v.is_integer():
            cands.add(str(int(v)))
    return any(c in msg for c in cands)


def _index_mentioned(msg, idx):
    idx = tuple(idx)
    cands = {str(idx), str(list(idx))}
    if len(idx) == 1:
        cands |= {f"index {idx[0]}", f"[{idx[0]}]"}
    return any(c in msg for c in cands)


def hostile_label_cases(spec):
    """(id, builder): builder() -> (z, y, kw, bad value, index of the first
    bad label in the per-sample array).  'fast' cases have float32 (N, C)
    C-contiguous logits and 1-D int64 labels with default parameters (the
    compiled fast path); the others go through the generic path."""
    C, N = 4, 6
    cases = []

    def labels_with(bad, dtype=np.int64, at=(2, 4)):
        y = np.array([0, 1, 2, 3, 1, 0], dtype=np.float64)
        y = y.astype(dtype) if np.dtype(dtype).kind != "u" else np.array([0, 1, 2, 3, 1, 0],
                                                                          dtype=dtype)
        for i in at:
            y[i] = bad
        return y

    def z32(rng_seed=0):
        return np.random.default_rng(rng_seed).standard_normal((N, C)).astype(np.float32)

    def add(cid, fn):
        cases.append((cid, fn))

    for bad in (C, -1, 2 ** 62, -(2 ** 63), -100, 2 ** 31):
        add(f"fast-int64-{bad}", lambda bad=bad: (z32(), labels_with(bad), {}, bad, (2,)))
    for bad in (C, -1, -100):
        add(f"int32-{bad}", lambda bad=bad: (z32(), labels_with(bad, np.int32), {}, bad, (2,)))
    add("int8--1", lambda: (z32(), labels_with(-1, np.int8), {}, -1, (2,)))
    for bad in (2 ** 64 - 1, 2 ** 63):
        add(f"uint64-{bad}", lambda bad=bad: (z32(), labels_with(bad, np.uint64), {}, bad, (2,)))
    for bad in (1.5, math.nan, math.inf, -math.inf, float(C), -1.0, 1e300):
        add(f"float-{bad}", lambda bad=bad: (z32(), labels_with(bad, np.float64), {}, bad, (2,)))
    add("float32-label-0.5",
        lambda: (z32(), labels_with(0.5, np.float32), {}, 0.5, (2,)))
    add("list-labels", lambda: (z32(), labels_with(C).tolist(), {}, C, (2,)))
    add("float64-logits", lambda: (z32().astype(np.float64), labels_with(C), {}, C, (2,)))
    if has(spec, "ignore_index"):
        add("ignore=-100,label=-1",
            lambda: (z32(), labels_with(-1), {"ignore_index": -100}, -1, (2,)))
        add("ignore=1,label=C",
            lambda: (z32(), labels_with(C), {"ignore_index": 1}, C, (2,)))
    if has(spec, "class_weight"):
        add("class_weight", lambda: (z32(), labels_with(C), {"class_weight": np.ones(C)}, C,
                                     (2,)))

    def axis1():
        z = np.random.default_rng(1).standard_normal((2, C, 3, 4)).astype(np.float32)
        y = np.zeros((2, 3, 4), np.int64)
        y[1, 2, 3] = C + 3
        y[1, 2, 1] = 0
        return z, y, {"class_axis": 1}, C + 3, (1, 2, 3)
    add("axis1-(1,2,3)", axis1)

    def axis1_first():
        z, y, kw, _, _ = axis1()
        y[0, 1, 2] = -7
        return z, y, kw, -7, (0, 1, 2)
    add("axis1-first-of-two", axis1_first)

    def axis0():
        z = np.ascontiguousarray(z32().T)
        return z, labels_with(-2, at=(3,)), {"class_axis": 0}, -2, (3,)
    add("axis0", axis0)

    def one_d():
        z = np.random.default_rng(2).standard_normal(C)
        return z, np.array(C + 1), {}, C + 1, ()
    add("1d-0d-label", one_d)
    return cases


HOSTILE = [(s, cid, fn) for s in SPECS for cid, fn in hostile_label_cases(s)]


@pytest.mark.parametrize("spec,cid,build", HOSTILE, ids=[f"{s.name}-{c}" for s, c, _ in HOSTILE])
def test_hostile_labels(spec, cid, build):
    """SPEC section 3: a label outside [0, C) that is not ignore_index, or a
    float label that is not a whole number (1.5, NaN, inf), is a ValueError
    naming the loss, the first bad label's value and its index in the
    per-sample array; a provided out= (pre-filled with a sentinel) is left
    untouched; the inputs are not modified."""
    L = loss_of(spec)
    z, y, kw, bad, idx = build()
    zb, yb = np.array(z, copy=True), np.array(y, copy=True)
    odt = np.asarray(z).dtype
    for m in METHODS:
        kwm = dict(kw)
        out = None
        if m != "value":
            out = kwm["out"] = _sentinel(np.shape(z), odt)
        with pytest.raises(ValueError) as ei:
            call(L, m, z, y, **kwm)
        msg = str(ei.value)
        assert spec.name in msg, f"{m}: the message does not name the loss: {msg!r}"
        assert _value_mentioned(msg, bad), f"{m}: the message does not name {bad!r}: {msg!r}"
        if idx:
            assert _index_mentioned(msg, idx), f"{m}: the message does not give index {idx}: " \
                                               f"{msg!r}"
        if out is not None:
            assert np.all(out == 12345), f"{m}: out was written before the error"
    assert np.array_equal(np.asarray(z), zb, equal_nan=True)
    assert np.array_equal(np.asarray(y), yb, equal_nan=True)


def error_cases(spec):
    """(id, builder) for the other rows of SPEC section 3 that concern the
    class losses; builder() -> (z, y, kw, exception, words the message must
    contain besides the loss's name)."""
    C, N = 4, 5
    cases = []

    def base():
        rng = np.random.default_rng(seed_of("err", spec.name))
        z = rng.standard_normal((N, C)).astype(np.float32)
        y = rng.integers(0, C, N)
        return z, y

    def add(cid, fn):
        cases.append((cid, fn))

    probs = np.full((N, C), 1.0 / C, dtype=np.float32)
    if spec.accepts_probabilities and has(spec, "ignore_index"):
        for ii in (0, -100):
            add(f"ignore_index={ii}-with-probabilities",
                lambda ii=ii: (base()[0], probs, {"ignore_index": ii}, ValueError,
                               ["ignore_index"]))
    if not spec.accepts_probabilities:
        add("probabilities", lambda: (base()[0], probs, {}, ValueError, ["y_true"]))
    if has(spec, "class_weight"):
        for shape in ((C + 1,), (C - 1,), (1,), (), (C, 1), (1, C), (0,)):
            add(f"class_weight-shape-{shape}",
                lambda shape=shape: (*base(), {"class_weight": np.ones(shape)}, ValueError,
                                     ["class_weight"]))
    if has(spec, "label_smoothing"):
        for e in (-0.1, math.nextafter(1.0, 2.0), 1.5, math.nan, -math.inf):
            add(f"label_smoothing={e!r}",
                lambda e=e: (*base(), {"label_smoothing": e}, ValueError, ["label_smoothing"]))
    if has(spec, "power"):
        for pw in (0, 3, -1, 1.5):
            add(f"power={pw!r}", lambda pw=pw: (*base(), {"power": pw}, ValueError, ["power"]))
    # labels that would enlarge the per-sample shape (N,) -> (N, N)
    add("labels-(N,1)", lambda: (base()[0], base()[1][:, None], {}, ValueError, ["(5, 1)"]))
    add("labels-(1,N)-rows", lambda: (base()[0], base()[1][None, :], {}, ValueError,
                                      ["(1, 5)"]))
    add("labels-(N,C+1)", lambda: (base()[0], np.zeros((N, C + 1), np.int64), {}, ValueError,
                                   [f"({N}, {C + 1})"]))
    add("sample_weight-(N,1)", lambda: (*base(), {"sample_weight": np.ones((N, 1))}, ValueError,
                                        ["sample_weight"]))
    for nt, exc in ((0, ValueError), (-1, ValueError), (1.5, TypeError), ("2", TypeError),
                    (True, TypeError)):
        add(f"n_threads={nt!r}", lambda nt=nt, exc=exc: (*base(), {"n_threads": nt}, exc,
                                                          ["n_threads"]))
    add("class_axis=2", lambda: (*base(), {"class_axis": 2}, ValueError, ["class_axis"]))
    add("none-with-axis", lambda: (*base(), {"reduction": "none", "axis": 0}, ValueError,
                                   ["axis"]))
    add("reduction=avg", lambda: (*base(), {"reduction": "avg"}, ValueError, ["reduction"]))
    add("unknown-keyword", lambda: (*base(), {"weights": 1.0}, TypeError, ["weights"]))
    return cases


ERRORS = [(s, cid, fn) for s in SPECS for cid, fn in error_cases(s)]


@pytest.mark.parametrize("spec,cid,build", ERRORS, ids=[f"{s.name}-{c}" for s, c, _ in ERRORS])
def test_errors(spec, cid, build):
    """The exception type, a message naming the loss and the argument or
    shape, and a provided out= left untouched."""
    L = loss_of(spec)
    z, y, kw, exc, words = build()
    for m in METHODS:
        kwm = dict(kw)
        out = None
        if m != "value":
            out = kwm["out"] = _sentinel(z.shape, z.dtype)
        with pytest.raises(exc) as ei:
            call(L, m, z, y, **kwm)
        msg = str(ei.value)
        assert spec.name in msg, f"{m}: message does not name the loss: {msg!r}"
        for w in words:
            assert w in msg, f"{m}: message does not mention {w!r}: {msg!r}"
        if out is not None:
            assert np.all(out == 12345), f"{m}: out was written before the error"


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_valid_edge_parameters_are_accepted(spec):
    """label_smoothing 0 and 1, ignore_index a valid class, -100 or any
    integer, power 1 and 2 (also as NumPy integers), margin 0 and negative,
    class weights of zeros for absent classes."""
    L = loss_of(spec)
    z = np.random.default_rng(0).standard_normal((5, 4))
    y = np.array([0, 1, 2, 3, 1])
    kws = [{}]
    if has(spec, "label_smoothing"):
        kws += [{"label_smoothing": 0.0}, {"label_smoothing": 1.0}, {"label_smoothing": 1}]
    if has(spec, "ignore_index"):
        kws += [{"ignore_index": 3}, {"ignore_index": -100}, {"ignore_index": np.int64(2)},
                {"ignore_index": 2 ** 40}]
    if has(spec, "power"):
        kws += [{"power": 1}, {"power": 2}, {"power": np.int64(2)}, {"margin": 0.0},
                {"margin": -0.5}]
    for kw in kws:
        r = L(z, y, **kw)
        rr = L.reference(z, y, **kw)
        assert_close(r, rr, abs(rr), 1e-13, f"{kw}")


# ====================================== 6. consistency, threads, out=, axis

def test_value_and_grad_is_value_and_grad_bitwise():
    """value_and_grad == (value, grad) bit for bit on every path: fast path,
    row / column / split paths, weights, smoothing, probabilities, float16,
    class_axis=1, partial axis, every reduction."""
    fails = Failures()
    for spec in SPECS:
        L = loss_of(spec)
        for layout, S, C, nt in (("rows", (40,), 7, 2), ("rows", (40,), 300, 2),
                                 ("rows", (3,), 20000, 2), ("axis1", (3, 4, 5), 6, 1)):
            for opt in option_sets(spec, full=False):
                for dtype in (np.float64, np.float32, np.float16):
                    case = Case(spec, layout, S, C, dtype if dtype != np.float16 else np.float32,
                                opt, seed=9)
                    z = case.z.astype(dtype)
                    kw = {k: (v.astype(dtype) if isinstance(v, np.ndarray) else v)
                          for k, v in case.kw.items()}
                    axes = [None] + ([0, -1] if len(S) > 1 else [])
                    for red in REDUCTIONS:
                        for ax in axes:
                            if red == "none" and ax is not None:
                                continue
                            what = f"{spec.name} {layout} C={C} {np.dtype(dtype).name} " \
                                   f"[{opt_id(opt)}] {red} axis={ax}"
                            with quiet():
                                v = L(z, case.y, reduction=red, axis=ax, n_threads=nt, **kw)
                                g = L.grad(z, case.y, reduction=red, axis=ax, n_threads=nt, **kw)
                                vg = L.value_and_grad(z, case.y, reduction=red, axis=ax,
                                                      n_threads=nt, **kw)
                            fails.check(assert_identical, vg[0], v, what + " value")
                            fails.check(assert_identical, vg[1], g, what + " grad")
    fails.done()


@contextlib.contextmanager
def slow_path_calls():
    """Counts the calls that the compiled Loss hands to the generic path."""
    calls = []

    def spy(*args, **kw):
        calls.append(args[1])
        return _api.run(*args, **kw)
    _core.set_slow_path(spy)
    try:
        yield calls
    finally:
        _core.set_slow_path(_api.run)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_fast_path_equals_generic_path(spec):
    """The compiled fast path (2-D C-contiguous float logits, 1-D int64
    labels, defaults; checked to be taken) equals the fast path on int32 and
    float labels (converted in C) and the generic path on the same data
    given as Fortran-ordered logits, a read-only strided view, or explicit
    default parameters + unit sample weights
    (column, row and split paths).  Same kernels on the same values: within
    2 ulp of the output dtype of the result's magnitude (the generic path
    may divide by the mean's denominator in another order)."""
    L = loss_of(spec)
    fails = Failures()
    for S, C, nt in (((50,), 7, 1), ((50,), 300, 2), ((3,), 20000, 2)):
        for dtype in (np.float64, np.float32):
            case = Case(spec, "rows", S, C, dtype, {}, seed=10)
            z, y = case.z, case.y
            eps = float(np.finfo(dtype).eps)
            defaults = {p.name: p.default for p in spec.params if p.name != "class_axis"}
            variants = {
                "int32 labels": (z, y.astype(np.int32), {}),
                "float labels": (z, y.astype(np.float64), {}),
                "fortran logits": (np.asfortranarray(z), y, {}),
                "strided view": (np.repeat(z, 2, axis=1)[:, ::2], y, {}),
                "explicit defaults": (z, y, dict(defaults, sample_weight=np.ones(S, dtype))),
            }
            for red in REDUCTIONS:
                for m in METHODS:
                    with slow_path_calls() as calls:
                        fast = call(L, m, z, y, reduction=red, n_threads=nt)
                    assert not calls, f"{spec.name} {m} {red}: the fast path was not taken"
                    for vid, (zz, yy, extra) in variants.items():
                        with slow_path_calls() as calls:
                            gen = call(L, m, zz, yy, reduction=red, n_threads=nt, **extra)
                        # labels of other dtypes run on the fast path too
                        # (converted in C); the other variants need the
                        # generic one
                        if vid.endswith("labels"):
                            assert not calls, f"{vid}: expected the fast path"
                        else:
                            assert calls, f"{vid}: expected the generic path"
                        what = f"{spec.name} {np.dtype(dtype).name} C={C} {m} {red} {vid}"
                        pairs = zip(fast, gen) if m == "value_and_grad" else [(fast, gen)]
                        for a, b in pairs:
                            assert type(a) is type(b) and a.dtype == b.dtype, what
                            fails.check(assert_close, b, a, 2 * eps * np.abs(a), 1.0, what)
    fails.done()


# (id, layout, S, C): sizes that get two or three threads on each path
THREAD_CASES = [("cols", "rows", (8000,), 12), ("rows", "rows", (200,), 1000),
                ("rows-light", "rows", (30,), 20000), ("axis1-cols", "axis1", (8, 40, 40), 10),
                ("axis1-gather", "axis1", (40, 10, 20), 60)]


@pytest.mark.parametrize("tid,layout,S,C", THREAD_CASES, ids=[c[0] for c in THREAD_CASES])
def test_thread_count_does_not_change_results(tid, layout, S, C):
    """n_threads 1, 2, 3 give identical bits (fixed chunks whose partial
    sums are added in chunk order), through n_threads= and fl.num_threads,
    for every row, with weights/smoothing/probabilities."""
    fails = Failures()
    for spec in SPECS:
        L = loss_of(spec)
        for i, opt in enumerate(option_sets(spec, full=False)[:3]):
            dtype = (np.float64, np.float32)[i % 2]
            case = Case(spec, layout, S, C, dtype, opt, seed=11)

            def run(**nt):
                with quiet():
                    return [L(case.z, case.y, reduction="sum", **case.kw, **nt),
                            L(case.z, case.y, reduction="none", **case.kw, **nt),
                            *L.value_and_grad(case.z, case.y, **case.kw, **nt),
                            L.hessian(case.z, case.y, **case.kw, **nt)]
            base = run(n_threads=1)
            for n in (2, 3):
                for r, b in zip(run(n_threads=n), base):
                    fails.check(assert_identical, r, b, f"{tid} {spec.name} [{opt_id(opt)}] "
                                                        f"n_threads={n}")
            with fl.num_threads(2):
                for r, b in zip(run(), base):
                    fails.check(assert_identical, r, b, f"{tid} {spec.name} num_threads(2)")
    fails.done()


def test_split_path_thread_counts():
    """The split path (C >= 16384, few rows, >= 2 threads) cuts each row
    into segments merged in order: 2 and 3 threads give identical bits; one
    thread takes the ordinary row path, so SPEC section 4's reassociation
    bound applies (<= 1e-12 relative in float64, <= 1e-6 in float32)."""
    L = fl.cross_entropy
    fails = Failures()
    for opt in option_sets(L.spec, full=False):
        for dtype, rt in ((np.float64, 1e-12), (np.float32, 1e-6)):
            case = Case(L.spec, "rows", (3,), 20000, dtype, opt, seed=12)

            def run(nt):
                with quiet():
                    return [L(case.z, case.y, reduction="none", n_threads=nt, **case.kw),
                            *L.value_and_grad(case.z, case.y, n_threads=nt, **case.kw),
                            L.hessian(case.z, case.y, n_threads=nt, **case.kw)]
            one, two, three = run(1), run(2), run(3)
            vnone = case.scales("none")[0]
            vmean, gmean, hmean, _ = case.scales("mean", hessian=True)
            what = f"split [{opt_id(opt)}] {np.dtype(dtype).name}"
            for a, b in zip(two, three):
                fails.check(assert_identical, a, b, what + " 2 vs 3 threads")
            # relative to the magnitudes of the terms each result is made of
            # (see Case.magnitudes), as for the comparisons with the reference
            for a, b, sc, nm in zip(two, one, (vnone, vmean, gmean, hmean),
                                    ("value none", "value mean", "grad", "hessian")):
                fails.check(assert_close, a, b, sc, rt, f"{what} {nm}: 2 vs 1 thread")
    fails.done()


def snapshot(x):
    return None if x is None else (np.asarray(x).copy(), np.asarray(x).flags.writeable)


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_inputs_are_not_modified_and_read_only_inputs_work(spec):
    """No method writes into y_pred, y_true, sample_weight or class_weight
    (fast and generic paths, all layouts), and read-only inputs (as from
    __dlpack__) give the same results."""
    L = loss_of(spec)
    fails = Failures()
    for layout in LAYOUTS:
        S, C = LAYOUTS[layout]
        for opt in option_sets(spec, full=False):
            case = Case(spec, layout, S, C, np.float32, opt, seed=13)
            arrays = [case.z, case.y] + [v for v in case.kw.values() if isinstance(v, np.ndarray)]
            before = [a.copy() for a in arrays]
            results = {}
            with quiet():
                for m in METHODS:
                    results[m] = call(L, m, case.z, case.y, **case.kw)
            for a, b in zip(arrays, before):
                assert np.array_equal(a, b), f"{spec.name} {layout} [{opt_id(opt)}]: modified"
            for a in arrays:
                a.flags.writeable = False
            with quiet():
                for m in METHODS:
                    r = call(L, m, case.z, case.y, **case.kw)
                    fails.check(assert_identical, r if m != "value_and_grad" else r[1],
                                results[m] if m != "value_and_grad" else results[m][1],
                                f"{spec.name} {layout} [{opt_id(opt)}] {m} read-only")
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_out_argument(spec):
    """out= is filled and returned (value_and_grad returns (value, out)),
    with the bits of the allocating call, on the fast and generic paths;
    also when out is y_pred itself (in place) or the probability targets."""
    L = loss_of(spec)
    fails = Failures()
    for layout, S, C in (("rows", (20,), 7), ("rows", (20,), 60), ("rows", (3,), 20000),
                         ("axis1", (2, 3, 4), 5)):
        for dtype in (np.float64, np.float32, np.float16):
            for opt in option_sets(spec, full=False)[:3]:
                case = Case(spec, layout, S, C, np.float32, opt, seed=14)
                z = case.z.astype(dtype)
                yy = case.y.astype(dtype) if case.soft else case.y
                kw = case.kw
                odt = np.dtype(dtype)
                what = f"{spec.name} {layout} C={C} {odt.name} [{opt_id(opt)}]"
                for m in DERIV_METHODS:
                    with quiet():
                        expect = call(L, m, z, yy, **kw)
                        out = np.full(z.shape, 99, dtype=odt)
                        r = call(L, m, z, yy, out=out, **kw)
                    if m == "value_and_grad":
                        fails.check(assert_identical, r[0], expect[0], f"{what} {m} value")
                        r, e = r[1], expect[1]
                    else:
                        e = expect
                    assert r is out, f"{what} {m}: out not returned"
                    fails.check(assert_identical, out, e, f"{what} {m} out")
                    if odt == np.float16:
                        continue
                    for alias in ("y_pred",) + (("y_true",) if case.soft else ()):
                        zz, tt = z.copy(), yy.copy()
                        o = zz if alias == "y_pred" else tt
                        with quiet():
                            r = call(L, m, zz, tt, out=o, **kw)
                        r = r[1] if m == "value_and_grad" else r
                        assert r is o, what
                        fails.check(assert_identical, r, e, f"{what} {m} out aliasing {alias}")
    fails.done()


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_float16_and_integer_logits(spec):
    """float16 logits are computed in float32 and returned as float16 (the
    value a NumPy float16 scalar); integer logits are computed as float64."""
    L = loss_of(spec)
    fails = Failures()
    for layout in ("rows", "rows_few", "axis1"):
        S, C = LAYOUTS[layout]
        for opt in option_sets(spec, full=False):
            case = Case(spec, layout, S, C, np.float32, opt, seed=15)
            z16 = case.z.astype(np.float16)
            z32 = z16.astype(np.float32)
            y16 = case.y.astype(np.float16) if case.soft else case.y
            y32 = y16.astype(np.float32) if case.soft else case.y
            kw16 = {k: (v.astype(np.float16) if isinstance(v, np.ndarray) else v)
                    for k, v in case.kw.items()}
            kw32 = {k: (v.astype(np.float32) if isinstance(v, np.ndarray) else v)
                    for k, v in kw16.items()}
            for red in REDUCTIONS:
                for m in METHODS:
                    what = f"{spec.name} {layout} [{opt_id(opt)}] {red} {m}"
                    with quiet():
                        r16 = call(L, m, z16, y16, reduction=red, **kw16)
                        r32 = call(L, m, z32, y32, reduction=red, **kw32)
                    pairs = zip(r16, r32) if m == "value_and_grad" else [(r16, r32)]
                    for a, b in pairs:
                        assert a.dtype == np.float16, f"{what}: {a.dtype}"
                        assert isinstance(a, np.ndarray) == isinstance(b, np.ndarray), what
                        # one rounding of the float32 computation to float16:
                        # half an ulp, 2**-11 relative (2**-25 absolute for
                        # subnormals); a full reduction may round the float64
                        # accumulator directly, so not necessarily the bits of
                        # the float32 result rounded again
                        fails.check(assert_close, a, b, np.abs(np.asarray(b, np.float64)),
                                    2.0 ** -11, what, 2.0 ** -25)
    # integer logits
    z = np.random.default_rng(0).integers(-3, 4, (6, 5))
    y = np.array([0, 1, 2, 3, 4, 0])
    for m in METHODS:
        r = call(L, m, z, y)
        e = call(L, m, z.astype(np.float64), y)
        for a, b in (zip(r, e) if m == "value_and_grad" else [(r, e)]):
            assert_identical(a, b, f"int64 logits {m}")
    fails.done()


def _all_ignored_cases(spec):
    """(id, z, y, kw) whose mean has zero total weight."""
    rng = np.random.default_rng(16)
    z = rng.standard_normal((6, 4))
    y = np.array([1, 1, 1, 1, 1, 1])
    out = [("zero sample weights", z, y, {"sample_weight": np.zeros(6)})]
    if has(spec, "ignore_index"):
        out += [("ignore valid class", z, y, {"ignore_index": 1}),
                ("ignore -100", z, np.full(6, -100), {"ignore_index": -100}),
                ("ignore, class_axis=1", rng.standard_normal((2, 4, 3)), np.full((2, 3), 2),
                 {"ignore_index": 2, "class_axis": 1}),
                ("1d ignored", z[0], np.array(1), {"ignore_index": 1})]
    if has(spec, "class_weight") and spec.name != "multi_margin":
        cw = np.array([1.0, 0.0, 2.0, 3.0])
        out.append(("zero class weight of every label", z, y, {"class_weight": cw}))
    if spec.accepts_probabilities:
        out.append(("probabilities, zero weights", z, np.full((6, 4), 0.25),
                    {"sample_weight": np.zeros(6)}))
    return out


@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_mean_over_nothing_is_nan_with_warning(spec):
    """SPEC section 1: a mean over zero total weight is nan with a
    RuntimeWarning (as np.mean([])), the gradient and Hessian are 0 (the
    weights are 0); "sum" is 0 without a warning."""
    L = loss_of(spec)
    for cid, z, y, kw in _all_ignored_cases(spec):
        for dtype in (np.float64, np.float32):
            zz = np.asarray(z, dtype)
            with pytest.warns(RuntimeWarning):
                v = L(zz, y, **kw)
            assert np.isnan(v) and v.dtype == dtype, f"{cid}: {v!r}"
            with pytest.warns(RuntimeWarning):
                v2, g = L.value_and_grad(zz, y, **kw)
            assert np.isnan(v2) and np.all(g == 0), f"{cid}: {v2!r} {g}"
            with quiet():
                g = L.grad(zz, y, **kw)
                h = L.hessian(zz, y, **kw)
            with warnings.catch_warnings():
                warnings.simplefilter("error")          # np.sum([]) is 0, silently
                s = L(zz, y, reduction="sum", **kw)
            assert np.all(g == 0) and np.all(h == 0), f"{cid}: grad {g} hessian {h}"
            assert s == 0, f"{cid}: sum {s!r}"


AXES = [0, 1, 2, -1, (0, 1), (1, 2), (0, 2), (0, 1, 2), (2, 0)]


@pytest.mark.parametrize("part", ["value_grad", "hessian"])
@pytest.mark.parametrize("spec", SPECS, ids=IDS)
def test_partial_axis_reductions(spec, part):
    """axis= over the per-sample axes of (N, C, d1, d2) logits with
    class_axis=1 (and of (N, C) with class_axis=-1), for mean and sum, with
    the row's options, against the reference (per-slice denominators of the
    mean, including an all-ignored slice: nan there with a warning, 0
    gradient)."""
    fails = Failures()
    for opt in option_sets(spec, full=False):
        case = Case(spec, "axis1", (4, 3, 5), 6, np.float64, opt, seed=17)
        for dtype in (np.float64, np.float32):
            c = case if dtype == np.float64 else Case(spec, "axis1", (4, 3, 5), 6, dtype, opt,
                                                      seed=17)
            for ax in AXES:
                for red in ("mean", "sum"):
                    compare(fails, c, red, part, axis=ax)
        rows = Case(spec, "rows", (30,), 8, np.float64, opt, seed=17)
        for ax in (0, -1, (0,)):
            compare(fails, rows, "mean", part, axis=ax)
    if has(spec, "ignore_index"):
        # slice 1 along axis 0 entirely ignored
        case = Case(spec, "axis1", (3, 2, 2), 4, np.float64, {"ignore": -100}, seed=18)
        case.y = case.y.copy()
        case.y[1] = -100
        case.yc = case.y
        case.y64 = case.y
        with pytest.warns(RuntimeWarning):
            v = loss_of(spec)(case.z, case.y, axis=(1, 2), **case.kw)
        assert np.isnan(v[1]) and not np.isnan(v[[0, 2]]).any(), v
        with quiet():
            g = loss_of(spec).grad(case.z, case.y, axis=(1, 2), **case.kw)
        assert np.all(g[1] == 0), g[1]
        compare(fails, case, "mean", part, axis=(1, 2))
    fails.done()


# ============================ 7. the AVX-512 row loops against the portable ones

@contextlib.contextmanager
def ce_simd(on):
    prev = _core.simd_loops(on)
    try:
        yield
    finally:
        _core.simd_loops(prev)


def _ce_rows_f64(z, y):
    """Exact-input float64 oracle of cross_entropy per row: the float32
    logits are exact in float64, so this is the true value to ~1e-16."""
    z = z.astype(np.float64)
    m = z.max(axis=1, keepdims=True)
    e = np.exp(z - m)
    S = e.sum(axis=1, keepdims=True)
    p = e / S
    g = p.copy()
    rows = np.arange(len(y))
    ex = e.copy()
    ex[rows, y] = 0
    Sx = ex.sum(axis=1)
    zy = z[rows, y]
    top = zy == m[:, 0]
    loss = np.where(top, np.log1p(Sx), (m[:, 0] - zy) + np.log(S[:, 0]))
    g[rows, y] = -Sx / S[:, 0]
    return loss, g, np.abs(z - m)


@pytest.mark.skipif(not _core.simd_loops(), reason="level in use has no hand-vectorized loops (FASTLOSS_SIMD=portable?)")
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("C", [7, 10, 17, 160, 161, 1000, 1023, 8192, 8193, 20000])
def test_ce_simd_rows_accuracy(C, dtype):
    """cross_entropy's AVX-512 loops (float32, labels, no smoothing: the
    across-samples loops for C <= 160, the row loops above) and the portable
    loops, each against an exact-input float64 oracle, element
    by element.  Bound for a gradient entry p_c = exp(z_c - m) / S:
    (8 + |z_c - m|) ulp relative -- exp within 1.4 ulp, the float32
    difference z_c - m rounded (relative error |z_c - m| ulp in the result),
    the scale and the product a few more -- plus 2 float32 subnormal ulps;
    the target entry and the loss (log1p(Sx) when the target is the maximum,
    huge margins included) are sums over the row: (8 + the row's largest
    |z_c - m|) ulp, the loss plus 1e-7 of the largest loss."""
    rng = np.random.default_rng(C)
    N = 6 if C > 8192 else 40
    z = (rng.standard_normal((N, C)) * 6).astype(dtype)
    y = rng.integers(0, C, N)
    z[0, y[0]] = 60.0                                  # target max, loss ~ e^-40
    z[1, :] = rng.uniform(-200, 0, C).astype(dtype)
    z[1, y[1]] = 1.0                                   # subnormal probabilities
    z[2, 5] = -np.inf                                  # -inf entry, finite max
    z[3, :] = 0.5                                      # all ties
    z[4, y[4]] = z[4].max()                            # target ties the max
    z[5, (y[5] + 1) % C] = z[5].max() + 1e-3           # max barely above target
    loss64, g64, dist = _ce_rows_f64(z, y)
    # the target entry and the loss are sums over the row: the largest
    # finite distance to the maximum among the terms that matter bounds them
    dist[~np.isfinite(dist)] = 0
    rows = np.arange(N)
    dmax = np.where(g64 != 0, dist, 0).max(axis=1)
    dist[rows, y] = dmax
    eps = float(np.finfo(dtype).eps)
    tiny = float(np.finfo(dtype).smallest_subnormal)
    # float64: the row sum's own rounding (each lane adds ~C/16 terms in
    # sequence, the oracle pairwise) is no longer hidden by the output's
    # precision: 2 sqrt(C) ulp for it
    base = 8 if dtype == np.float32 else 16 + 2 * np.sqrt(C)
    out = {}
    for on in (True, False):
        with ce_simd(on):
            for nt in (1, 2):
                v, g = fl.cross_entropy.value_and_grad(z, y, reduction="none", n_threads=nt)
                v2 = fl.cross_entropy(z, y, reduction="none", n_threads=nt)
                assert np.array_equal(v, v2), "value vs value_and_grad"
                out[on, nt] = (v, g)
                what = f"C={C} simd={on} threads={nt}"
                bound = (base + dist) * eps * np.abs(g64) + 2 * tiny
                bad = np.abs(g.astype(np.float64) - g64) > bound
                assert not bad.any(), (what, np.argwhere(bad)[:5], g[bad][:5], g64[bad][:5])
                lb = (base + dmax) * eps * np.abs(loss64) + 2 * eps * np.abs(loss64).max()
                bad = np.abs(v.astype(np.float64) - loss64) > lb
                assert not bad.any(), (what, np.argwhere(bad), v[bad], loss64[bad])
    # a row is summed by one thread whatever the thread count
    for on in (True, False):
        for a, b in zip(out[on, 1], out[on, 2]):
            assert np.array_equal(a, b)


@pytest.mark.skipif(not _core.simd_loops(), reason="level in use has no hand-vectorized loops (FASTLOSS_SIMD=portable?)")
@pytest.mark.parametrize("C", [1, 2, 7, 16, 17])
def test_margin_simd_rows_match_portable(C):
    """multi_margin's AVX-512 rows (float32, C <= 16) against the portable
    loops on the same data: powers 1 and 2, class and sample weights,
    margins, NaN and infinite logits, targets at every position.  Both sum
    the <= 16 float terms in float64, in another order: within 1 float32
    ulp of the result (NaN where NaN)."""
    rng = np.random.default_rng(C)
    N = 300
    z = (rng.standard_normal((N, C)) * 2).astype(np.float32)
    y = np.arange(N) % C
    z[3, 0] = np.nan
    z[4, -1] = np.inf
    z[5, :] = -np.inf
    sw = rng.random(N).astype(np.float32)
    cw = rng.random(C).astype(np.float32)
    eps = float(np.finfo(np.float32).eps)
    for kw in ({}, {"power": 2}, {"margin": 0.3, "class_weight": cw}, {"power": 2, "margin": 3.0}):
        for red in ("none", "mean"):
            res = {}
            for on in (True, False):
                with ce_simd(on), quiet():
                    v, g = fl.multi_margin.value_and_grad(z, y, reduction=red, sample_weight=sw,
                                                          **kw)
                    v2 = fl.multi_margin(z, y, reduction=red, sample_weight=sw, **kw)
                assert np.array_equal(v, v2, equal_nan=True)
                res[on] = (np.asarray(v, np.float64), g.astype(np.float64))
            for a, b in zip(res[True], res[False]):
                same = (a == b) | (np.isnan(a) & np.isnan(b)) | (np.abs(a - b) <= eps * np.abs(b))
                assert same.all(), (kw, red, np.argwhere(~same)[:5])


@pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])
def test_torch_label_tensor_beside_numpy_logits(spec):
    """Integer labels as a torch CPU tensor beside NumPy logits (what a
    PyTorch data loader hands over): the same bits as NumPy labels, and a
    label out of range is the same ValueError, nothing written to out=."""
    torch = pytest.importorskip("torch")
    L = loss_of(spec)
    rng = np.random.default_rng(5)
    z = rng.standard_normal((300, 7)).astype(np.float32)
    y = rng.integers(0, 7, 300)
    for yt in (torch.from_numpy(y), torch.from_numpy(y.astype(np.int32))):
        v0, g0 = L.value_and_grad(z, y)
        v1, g1 = L.value_and_grad(z, yt)
        assert np.array_equal(np.asarray(v0), np.asarray(v1)) and np.array_equal(g0, g1)
        bad = yt.clone()
        bad[299] = 7
        out = np.full_like(z, 3.0)
        with pytest.raises(ValueError):
            L.value_and_grad(z, bad, out=out)
        assert (out == 3.0).all()
