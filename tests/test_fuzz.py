"""Property-based fuzzing of every loss in the table (``fastloss._registry.TABLE``).

One hypothesis test per table row, so a new loss is fuzzed by adding its row.
Each example draws a whole call: method, y_pred dtype (float16/32/64, ints,
bool) / shape (0-d, empty, odd sizes around the SIMD widths, rarely around
the 32768-element chunk and the thread thresholds) / layout (C, Fortran,
strided, negative strides, read-only, byte-swapped, unaligned, a list, a
zero-stride broadcast view) / values (NaN, +-inf, subnormals, huge and tiny
magnitudes, -0.0, exact ties at the kinks, domain edges), targets
(broadcast, other dtypes, labels at and beyond [0, C), ignore_index,
probability targets), sample weights (zeros, all zeros, NaN, inf,
negative), loss parameters at and beyond the edges of their domains (and of
the wrong type), array parameters (pos_weight, class_weight), reduction,
axis, out= (fresh, y_pred itself), n_threads, and sometimes deliberate
argument errors (bad shapes, dtypes, reduction, axis, n_threads, out=,
class_axis, keywords).  Then:

* **errors** -- "fastloss raises exactly when its reference does": if the
  pure-NumPy reference (``fl.<loss>.reference``, same signature) raises, or a
  documented argument error was injected, fastloss must raise an exception
  of the same kind (ValueError -- numpy's AxisError included -- or
  TypeError) whose message names the loss, and write neither ``out=`` nor
  any input.  Several errors in one call may be reported in either order:
  the kinds accepted are those of the injected errors, of each scalar
  parameter on its own, and of the reference with and without the injected
  errors.  A NaN loss parameter is a ValueError (outside every domain) even
  where the reference propagates it.  Otherwise fastloss must not raise.
* **results** -- the value (type: a NumPy scalar of the output dtype for a
  full reduction, else an ndarray), the gradient and the Hessian (y_pred's
  shape, output dtype, the ``out`` buffer itself when given) must match the
  reference within the tolerance below; a mean over zero total weight must
  warn (RuntimeWarning).
* **threads** -- calls big enough for the thread team are repeated with
  ``n_threads=1`` and ``n_threads=2``: bit-identical results.
* never a crash: a segfault or abort fails the whole run.

Oracle and tolerances.  Inputs are first rounded to the compute dtype ``cd``
(float32 for float16/float32 y_pred, float64 otherwise) as fastloss does, and
so are real scalar parameters (the float32 kernels take them, or
quantities derived from them in double, in float32) unless rounding moves
them out of their domain.  ``hi`` is the reference
evaluated on those values in higher precision (float64 for cd = float32; x87
long double for cd = float64), ``lo`` the reference on the call as given
(computed in ``cd``: for cd = float64 that is the float64 reference).  A
result ``g`` passes where::

    |g - hi| <= RTOL[out dtype] * (|hi| + S) + 2 * |lo - hi| + ATOL

* ``RTOL``: 5e-13 (float64), 4e-6 (float32: ~30 ulp: a handful of float32
  roundings, exp/log amplification of argument rounding), 2e-3 (float16:
  ~2 ulp, computed in float32 and rounded once more);
* ``S``: the magnitude of the terms a result is a difference of, where a
  loss has such intrinsic cancellation (``magnitudes`` below: poisson,
  tweedie, quantile, the logistic losses with soft labels, label smoothing
  and probability targets in cross_entropy, ...), 0 elsewhere; for a
  reduction, the sum over the reduced slice of the (magnitudes of the)
  absolute weighted terms, over |sum of weights| for "mean" -- a sum of
  terms each accurate to a few ulp is accurate relative to that, whatever
  the summation order;
* ``2 |lo - hi|``: the error that plain NumPy makes evaluating the same
  formula in the compute dtype -- the conditioning of the loss at this input
  (at a kink such as huber's ``|d| == delta`` the float32 and float64
  roundings of ``d`` may legitimately fall on different sides);
* ``ATOL``: results in the subnormal range have absolute, not relative,
  precision: the smallest normal number of the compute dtype (vectorized
  exp may flush subnormal results to zero), 8 subnormals for float16.

Non-finite results: NaN must match NaN, an infinity the same infinity of
``hi`` rounded to the output dtype (or ``|hi|`` within RTOL of the largest
finite value).  Also accepted, as documented far-tail differences:

* a result bit-for-bit equal to ``lo``: the reference computed in the
  compute dtype overflows (``inf``, or ``inf - inf = NaN``: poisson
  ``exp(p) - t*p`` at p = t = 1e30 in float32) or underflows (``pos_weight *
  t`` to 0) an intermediate exactly as fastloss does;
* NaN where the element's (class losses: the sample's) inputs hold a NaN,
  y_pred and y_true are the same infinity (``d = inf - inf``), or a weight is
  NaN or infinite ("NaN propagates"), and a finite result where the
  reference's formula breaks down itself (sigmoid_focal with gamma**2
  overflowing);
* a 0 gradient / Hessian in a slice whose "mean" has a zero denominator
  (the SPEC's "0 wherever the weight is 0"; the reference gives +-inf where
  the weight is not 0 but the denominator is);
* targets outside [0, 1] for binary_cross_entropy_with_logits and
  sigmoid_focal (SPEC section 5: "y_true in [0, 1]", no error documented):
  no crash, nothing written on error, values not compared.

Profiles (tests/conftest.py): "ci" (default: a bounded, derandomized number
of examples per loss, no shrinking) and "long" (``--hypothesis-profile=long``:
>= 10^5 examples over the module).

The ``test_found_*`` tests at the end are minimal reproducers of what the
fuzzer found.
"""
import copy
import math
import os
import pickle
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

import fastloss as fl
from fastloss import _registry
from fastloss._registry import make_inputs
from fastloss._registry import TWO_INPUT as TABLE
from fastloss._spec import UNIT

SPECS = list(TABLE)
IDS = [s.name for s in SPECS]

HI = np.longdouble if np.finfo(np.longdouble).nmant > np.finfo(np.float64).nmant else np.float64
RTOL = {np.dtype(np.float64): 5e-13, np.dtype(np.float32): 4e-6, np.dtype(np.float16): 2e-3}
METHODS = ("value", "grad", "value_and_grad", "hessian")
THREADED_SIZE = 32768          # FL_CHUNK: calls at least this big are split into chunks

# --------------------------------------------------------------- special values

_F32_MAX = float(np.finfo(np.float32).max)
GENERIC_SPECIALS = [
    math.nan, math.inf, -math.inf, 0.0, -0.0,
    5e-324, -5e-324, 1e-310, 2.2250738585072014e-308,             # float64 subnormal / tiny
    1.401298464324817e-45, 1e-40, -1e-40, 1.1754943508222875e-38,  # float32 subnormal / tiny
    6e-8, 6.1e-5,                                                  # float16 subnormal / tiny
    1e-30, -1e-30, 1e-20, 1e-8, -1e-8, 1e-4, 0.5, -0.5, 1.0, -1.0, 2.0, -2.0, 3.0,
    10.0, 17.0, -17.0, 20.0, -20.0, 30.0, 36.7, -36.7, 50.0, -50.0, 88.7, -88.7, 89.0,
    -103.0, -104.0, 104.0, 200.0, -200.0, 709.0, 710.0, -745.0, 746.0, 1e19,
    65504.0, 65520.0, -65520.0, 1e30, -1e30, _F32_MAX, -_F32_MAX, 3.5e38, 1e300, -1e300,
    1.7976931348623157e308, -1.7976931348623157e308,
]


def _edge_specials(domain):
    """Values at, just inside and just outside a data domain, and NaN."""
    vals = [math.nan, 0.5, -0.0, 0.0, 5e-324, 1e-40, 1e-30, 1e-8]
    for e in (domain.lo, domain.hi):
        if math.isfinite(e):
            vals += [e, math.nextafter(e, math.inf), math.nextafter(e, -math.inf),
                     float(np.nextafter(np.float32(e), np.float32(np.inf))),
                     float(np.nextafter(np.float32(e), np.float32(-np.inf))),
                     e + 1.0, e - 1.0]
    if math.isfinite(domain.hi):
        vals += [domain.hi - 1e-8, domain.hi - 1e-16]
    return vals + [math.inf, -math.inf, 1e30]


def special_values(spec, role):
    """A strategy for the special values injected into `role` of `spec`."""
    checks = [c for c in spec.checks if c.arg == role]
    if checks:
        edge = _edge_specials(checks[0].domain)
        return st.one_of(st.sampled_from(edge), st.sampled_from(edge),
                         st.floats(checks[0].domain.lo if math.isfinite(checks[0].domain.lo) else -10,
                                   checks[0].domain.hi if math.isfinite(checks[0].domain.hi) else 10),
                         st.sampled_from(GENERIC_SPECIALS))
    if spec.name in UNCHECKED_TARGETS and role == "y_true":
        edge = _edge_specials(UNCHECKED_TARGETS[spec.name])
        return st.one_of(st.sampled_from(edge), st.sampled_from(edge), st.floats(0, 1),
                         st.sampled_from(GENERIC_SPECIALS))
    if spec.name in ("hinge", "squared_hinge") and role == "y_true":
        return st.sampled_from([-1.0, 1.0, 0.0, -0.0, math.nan, -1.0, 1.0, 0.5, 2.0, math.inf])
    return st.one_of(st.sampled_from(GENERIC_SPECIALS), st.floats(), st.floats(-40, 40))


# SPEC section 5 documents targets in [0, 1] for these losses but no error
# for others (the reference extends the formula there): targets outside
# [0, 1] must not crash and must not write on error, but their values are
# not compared (see check_case).
UNCHECKED_TARGETS = {"binary_cross_entropy_with_logits": UNIT, "sigmoid_focal": UNIT}

WEIGHT_SPECIALS = [0.0, 0.0, -0.0, 1.0, 1e-30, 5e-324, 1e30, 2.0, 1e-8, math.nan, math.inf, -1.0]

# --------------------------------------------------------------- shapes

SMALL_DIMS = [1, 2, 3, 5, 7, 8, 9, 4, 15, 16, 17, 31, 33, 63, 65, 0]
BIG_SIZES = [32767, 32768, 32769, 40000, 65537, 100003]


def draw_dims(data, ndim, cap=3000, label="dims"):
    dims = []
    for _ in range(ndim):
        dims.append(data.draw(st.sampled_from(SMALL_DIMS), label=label))
    while math.prod(dims) > cap:
        k = int(np.argmax(dims))
        dims[k] = max(1, dims[k] // 4)
    return tuple(dims)


def draw_big(data, label="big"):
    return data.draw(st.sampled_from(BIG_SIZES), label=label)


# --------------------------------------------------------------- layouts

LAYOUTS = ["C", "C", "C", "F", "strided", "neg", "readonly", "swapped", "unaligned", "list"]


def apply_layout(a, kind):
    """The same values as `a` in another memory layout (or as a list)."""
    a = np.asarray(a)
    if kind == "C":
        return np.array(a, order="C")
    if kind == "F":
        return np.array(a, order="F")
    if kind == "strided":
        if a.ndim == 0:
            return a.copy()
        big = np.zeros(tuple(2 * n + 1 for n in a.shape), a.dtype)
        v = big[(slice(1, None, 2),) * a.ndim]
        v[...] = a
        return v
    if kind == "neg":
        if a.ndim == 0:
            return a.copy()
        rev = (slice(None, None, -1),) * a.ndim
        return np.ascontiguousarray(a[rev])[rev]
    if kind == "readonly":
        b = a.copy()
        b.flags.writeable = False
        return b
    if kind == "swapped":
        return a.astype(a.dtype.newbyteorder())
    if kind == "unaligned":
        if a.dtype.itemsize == 1:
            return a.copy()
        buf = np.zeros(a.nbytes + 1, np.uint8)
        v = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
        v[...] = a
        return v
    if kind == "list":
        return a.tolist()
    raise ValueError(kind)


def draw_layout(data, a, label):
    kinds = list(LAYOUTS)
    a0 = np.asarray(a)
    if not 0 < a0.size <= 200 or a0.dtype not in (np.float64, np.int64, np.bool_):
        kinds.remove("list")
    kind = data.draw(st.sampled_from(kinds), label=label)
    return apply_layout(a, kind), kind


# --------------------------------------------------------------- values

Y_PRED_DTYPES = [np.float64, np.float32, np.float64, np.float32, np.float16,
                 np.int64, np.int32, np.uint8, np.bool_]


def inject(data, base, values, label, big=False):
    """Write a few special values at drawn positions of the float64 array
    `base` (in place)."""
    n = base.size
    if n == 0:
        return
    k = data.draw(st.integers(0, min(6, n)), label=f"n_{label}")
    for _ in range(k):
        if big and data.draw(st.booleans(), label=f"{label}_at_chunk_edge"):
            i = data.draw(st.sampled_from([0, THREADED_SIZE - 1, THREADED_SIZE, n - 1]),
                          label=f"{label}_pos") % n
        else:
            i = data.draw(st.integers(0, n - 1), label=f"{label}_pos")
        base.flat[i] = data.draw(values, label=f"{label}_value")


def to_dtype(base, dtype):
    """float64 values -> dtype (integers: rounded and clipped; bool: != 0)."""
    dtype = np.dtype(dtype)
    with np.errstate(all="ignore"):
        if dtype.kind == "b":
            return np.nan_to_num(base) != 0
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            return np.clip(np.rint(np.nan_to_num(base)), info.min, info.max).astype(dtype)
        return base.astype(dtype)


# --------------------------------------------------------------- parameters

def draw_param_value(data, prm):
    """A value for a scalar parameter: inside, at and beyond its domain."""
    d = prm.domain
    if prm.integer:           # power of multi_margin
        if d.values is not None:
            cands = [int(v) for v in d.values] + [int(min(d.values)) - 1, int(max(d.values)) + 1, 0, -1]
        else:
            cands = [0, 1, -1, 2]
        return data.draw(st.sampled_from(cands), label=prm.name)
    cands = [prm.default]
    for e, inward in ((d.lo, math.inf), (d.hi, -math.inf)):
        if math.isfinite(e):
            cands += [e, math.nextafter(e, inward), math.nextafter(e, -inward),
                      e - math.copysign(1.0, inward), e + math.copysign(0.25, inward)]
    if math.isfinite(d.lo) and math.isfinite(d.hi):
        cands += [d.lo + 0.3 * (d.hi - d.lo), d.lo + 0.9 * (d.hi - d.lo)]
    elif math.isfinite(d.lo):
        cands += [d.lo + 0.1, d.lo + 3.0, d.lo + 1e30]
    else:
        cands += [-3.0, 0.0, 2.5, 1e30]
    cands += [math.nan, math.inf, -math.inf, 1e300, -1e300]
    kind = data.draw(st.sampled_from(["value"] * 6 + ["float32", "none", "bad_type"]),
                     label=f"{prm.name}_kind")
    if kind == "none":
        return None
    if kind == "bad_type":
        return data.draw(st.sampled_from(["1.0", True, [0.5]]), label=prm.name)
    v = data.draw(st.sampled_from(cands), label=prm.name)
    if kind == "float32":
        return np.float32(v)
    return v


# --------------------------------------------------------------- a call

class Case:
    """Everything one example calls fastloss with.  Deliberate argument
    errors ("faults") are recorded with the change they make, and applied by
    `faulted()`, so that the errors of the call without them are known too."""

    def __init__(self, spec):
        self.spec = spec
        self.method = "value"
        self.y_pred = None
        self.y_true = None
        self.kw = {}
        self.shape = ()
        self.faults = []            # (name, exception kind, changes)
        self.class_info = None      # class losses: (class axis, C, per-sample shape, soft)
        self.big = False

    def fault(self, name, kind, **changes):
        """Record an injected error: changes are y_pred=, y_true= or kw=
        (a dict; a value of DROP removes the keyword)."""
        self.faults.append((name, kind, changes))

    def faulted(self):
        if not self.faults:
            return self
        f = copy.copy(self)
        f.kw = dict(self.kw)
        for _, _, ch in self.faults:
            if "y_pred" in ch:
                f.y_pred = ch["y_pred"]
                f.kw.pop("out", None)
            if "y_true" in ch:
                f.y_true = ch["y_true"]
            for k, v in ch.get("kw", {}).items():
                if v is DROP:
                    f.kw.pop(k, None)
                else:
                    f.kw[k] = v
        return f

    def spec_loss(self):
        return fl.get(self.spec.name)

    def fault_names(self):
        return [(n, k.__name__) for n, k, _ in self.faults]


DROP = object()


def draw_case(data, spec):
    c = Case(spec)
    c.method = data.draw(st.sampled_from(METHODS), label="method")
    dtype = np.dtype(data.draw(st.sampled_from(Y_PRED_DTYPES), label="y_pred dtype"))
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    rng = np.random.default_rng(seed)
    if spec.family == "elementwise":
        _draw_elementwise(data, c, dtype, rng)
    else:
        _draw_class(data, c, dtype, rng)
    _draw_common(data, c, rng)
    return c


def _draw_pred_shape_elementwise(data):
    r = data.draw(st.integers(0, 99), label="shape kind")
    if r < 3:
        n = draw_big(data)
        if data.draw(st.booleans(), label="big 2-d"):
            return (2, n // 2 + 1)
        return (n,)
    if r < 13:
        return ()
    ndim = 1 if r < 55 else (2 if r < 85 else data.draw(st.integers(3, 4), label="ndim"))
    return draw_dims(data, ndim)


def _broadcast_base_shape(data, shape, label):
    """A shape that broadcasts to `shape`: some dims 1, maybe fewer dims."""
    if not shape:
        return shape
    kind = data.draw(st.sampled_from(["same"] * 4 + ["ones", "suffix", "scalar"]), label=label)
    if kind == "same":
        return shape
    if kind == "scalar":
        return ()
    if kind == "suffix":
        k = data.draw(st.integers(0, len(shape)), label=f"{label} suffix")
        return shape[k:]
    mask = data.draw(st.lists(st.booleans(), min_size=len(shape), max_size=len(shape)),
                     label=f"{label} ones")
    return tuple(1 if m else n for m, n in zip(mask, shape))


def _draw_elementwise(data, c, dtype, rng):
    spec = c.spec
    shape = _draw_pred_shape_elementwise(data)
    size = math.prod(shape)
    c.big = size >= THREADED_SIZE
    # y_pred: maybe itself a broadcast (zero-stride) view of a smaller array
    pbase = shape if data.draw(st.integers(0, 9), label="y_pred broadcast") else \
        _broadcast_base_shape(data, shape, "y_pred base shape")
    tshape = _broadcast_base_shape(data, shape, "y_true shape")
    p, _, _ = make_inputs(spec.name, pbase, np.float64, rng)
    _, t, _ = make_inputs(spec.name, tshape, np.float64, rng)
    p = np.array(p, dtype=np.float64)
    t = np.array(t, dtype=np.float64)
    # exact ties with the target (kinks: mae/quantile at d == 0, hinge at s*x == 1)
    if p.shape == t.shape and p.size and data.draw(st.integers(0, 4), label="ties") == 0:
        m = rng.random(p.shape) < 0.3
        if spec.name in ("hinge", "squared_hinge"):
            p[m] = np.where(t[m] > 0, 1.0, -1.0)
        else:
            p[m] = t[m]
    inject(data, p, special_values(spec, "y_pred"), "y_pred special", big=c.big)
    inject(data, t, special_values(spec, "y_true"), "y_true special", big=c.big)
    p = to_dtype(p, dtype)
    if pbase != shape:
        p = np.broadcast_to(p, shape)
    else:
        p, _ = draw_layout(data, p, "y_pred layout")
    tdt = data.draw(st.sampled_from([None, None, None, np.float32, np.float64, np.float16,
                                     np.int64, np.bool_]), label="y_true dtype")
    t = to_dtype(t, tdt if tdt is not None else (dtype if dtype.kind == "f" else np.float64))
    t, _ = draw_layout(data, t, "y_true layout")
    if data.draw(st.integers(0, 9), label="y_true broadcast view") == 0:
        t = np.broadcast_to(np.asarray(t), shape)
    c.y_pred, c.y_true, c.shape = p, t, shape
    # documented shape errors
    f = data.draw(st.integers(0, 39), label="shape fault")
    if f == 0 and shape:
        c.fault("y_true enlarges y_pred", ValueError,
                y_true=np.zeros(shape + (1,)) if data.draw(st.booleans(), label="(N,1)")
                else np.zeros((2,) + shape))
    elif f == 1 and shape and shape[-1] > 1:
        c.fault("y_true does not broadcast", ValueError,
                y_true=np.zeros(shape[:-1] + (shape[-1] + 1,)))
    # scalar parameters
    for prm in spec.params:
        if data.draw(st.integers(0, 2), label=f"give {prm.name}"):
            c.kw[prm.name] = draw_param_value(data, prm)
    # array parameters (pos_weight): per element, along the last axis, or a scalar
    for ap in spec.array_params:
        if data.draw(st.integers(0, 2), label=f"give {ap.name}") == 0:
            continue
        ashape = _broadcast_base_shape(data, shape, f"{ap.name} shape")
        a = rng.uniform(0.0, 3.0, ashape)
        inject(data, a, st.sampled_from([0.0, -0.0, 1e-30, 1e30, math.inf, math.nan, -1.0,
                                         1.0, 5e-324]), ap.name)
        a = to_dtype(a, data.draw(st.sampled_from([np.float64, np.float32, np.int64]),
                                  label=f"{ap.name} dtype"))
        c.kw[ap.name] = draw_layout(data, a, f"{ap.name} layout")[0]
        if shape and data.draw(st.integers(0, 19), label=f"{ap.name} fault") == 0:
            c.fault(f"{ap.name} enlarges y_pred", ValueError, kw={ap.name: np.ones(shape + (3,))})


def _draw_class(data, c, dtype, rng):
    spec = c.spec
    r = data.draw(st.integers(0, 99), label="shape kind")
    if r < 3:
        # around the chunk size (32768 elements) and the thread threshold
        N, C = data.draw(st.sampled_from([(16383, 2), (16384, 2), (16385, 2), (4681, 7),
                                          (4682, 7), (993, 33), (20001, 2), (3, 11000)]),
                         label="big shape")
        S, k = (N,), 1
        if data.draw(st.booleans(), label="big class axis first"):
            k = 0
    else:
        sdim = data.draw(st.sampled_from([1, 1, 1, 0, 2, 3]), label="per-sample ndim")
        S = draw_dims(data, sdim, cap=600, label="per-sample dims")
        C = data.draw(st.sampled_from([1, 2, 3, 4, 5, 7, 8, 9, 10, 16, 17, 33, 0]), label="C")
        k = data.draw(st.integers(0, sdim), label="class axis position") if \
            data.draw(st.integers(0, 2), label="move class axis") == 0 else sdim
    c.big = math.prod(S) * C >= THREADED_SIZE
    if C:
        z, _, _ = make_inputs(spec.name, S + (C,), np.float64, rng)
        # sometimes large gaps between the logits (probabilities in the tails)
        z = np.array(z, dtype=np.float64) * data.draw(st.sampled_from([1, 1, 1, 1, 10, 30]),
                                                      label="logit scale")
        # ties: equal logits (and margins exactly met)
        if z.size and data.draw(st.integers(0, 5), label="class ties") == 0:
            z[...] = np.round(z[..., :1])
    else:
        z = np.zeros(S + (0,))
    inject(data, z, special_values(spec, "y_pred"), "y_pred special", big=c.big)
    soft = spec.accepts_probabilities and data.draw(st.integers(0, 3), label="soft") == 0
    if soft:
        kind = data.draw(st.sampled_from(["dirichlet", "dirichlet", "one-hot", "smoothed",
                                          "one-hot at the argmax"]), label="probabilities")
        if not C:
            t = np.zeros(S + (0,))
        elif kind == "dirichlet":
            t = rng.dirichlet(np.ones(C), S)
        elif kind == "one-hot at the argmax":       # the loss is in the tail
            with np.errstate(all="ignore"):
                t = np.eye(C)[np.argmax(np.nan_to_num(z), axis=-1)]
        else:
            t = np.eye(C)[rng.integers(0, C, S)]
            if kind == "smoothed":
                t = 0.9 * t + 0.1 / C
        if data.draw(st.integers(0, 4), label="unnormalised") == 0:
            t = t * rng.uniform(0, 2, S + (C,))
        inject(data, t, st.sampled_from([0.0, 1.0, -0.0, 1e-30, 0.5, math.nan, 2.0, -0.5,
                                         5e-324, math.inf]), "target special")
        t = np.moveaxis(t, -1, k)
        t = to_dtype(t, data.draw(st.sampled_from([np.float64, np.float32, np.float16]),
                                  label="target dtype"))
    else:
        lshape = _broadcast_base_shape(data, S, "label shape")
        y = rng.integers(0, max(C, 1), lshape).astype(np.float64)
        label_specials = [0, C - 1, -1, C, C + 1, -100, 2**31, -2**31 - 1, 2**40, 0.5, math.nan,
                          math.inf, -0.0, 1e20]
        inject(data, y, st.sampled_from(label_specials), "label special")
        ldt = data.draw(st.sampled_from([np.int64, np.int64, np.int64, np.int32, np.uint8,
                                         np.int8, np.float64, np.float32, np.uint64, np.bool_]),
                        label="label dtype")
        with np.errstate(all="ignore"):
            if np.dtype(ldt).kind == "f":
                t = y.astype(ldt)
            elif np.dtype(ldt).kind == "b":
                t = np.nan_to_num(y) != 0
            else:
                info = np.iinfo(ldt)
                t = np.clip(np.nan_to_num(y), info.min, info.max).astype(ldt)
    z = np.moveaxis(z, -1, k)
    z = to_dtype(z, dtype)
    z, _ = draw_layout(data, z, "y_pred layout")
    t, _ = draw_layout(data, t, "y_true layout")
    ndim = len(S) + 1
    c.y_pred, c.y_true = z, t
    c.shape = S[:k] + (C,) + S[k:]
    c.class_info = (k, C, S, soft)
    # class_axis: default (-1) when the classes are last, else k or k - ndim
    if k != ndim - 1 or data.draw(st.booleans(), label="pass class_axis"):
        c.kw["class_axis"] = k if data.draw(st.booleans(), label="positive axis") else k - ndim
    if data.draw(st.integers(0, 39), label="class axis fault") == 0:
        c.fault("class_axis out of range", ValueError,
                kw={"class_axis": data.draw(st.sampled_from([ndim, -ndim - 1, 7, ndim, 2**70]),
                                            label="bad class axis")})
    # scalar parameters (class_axis done above)
    for prm in spec.params:
        if prm.name == "class_axis":
            continue
        if prm.name == "ignore_index":
            ii = data.draw(st.sampled_from([None] * 12 + [-100, -100, -1, -1, 0, C - 1, C, C,
                                                          2**40, 2**63]),
                           label="ignore_index")
            if ii is None:
                continue
            c.kw["ignore_index"] = ii
            lab = np.asarray(c.y_true)
            if not soft and lab.ndim and lab.size and lab.dtype.kind in "iuf" and \
                    np.can_cast(np.min_scalar_type(ii), lab.dtype) and \
                    data.draw(st.booleans(), label="use ignore_index"):
                lab = np.array(lab)
                lab.flat[data.draw(st.integers(0, lab.size - 1), label="ignored")] = ii
                c.y_true = lab
            continue
        if data.draw(st.integers(0, 2), label=f"give {prm.name}"):
            c.kw[prm.name] = draw_param_value(data, prm)
    # class_weight
    for ap in spec.array_params:
        if data.draw(st.integers(0, 2), label=f"give {ap.name}"):
            continue
        cw = rng.uniform(0.0, 2.0, C)
        inject(data, cw, st.sampled_from([0.0, 1e-30, 1e30, math.inf, math.nan, -1.0, 5e-324]),
               ap.name)
        cw = to_dtype(cw, data.draw(st.sampled_from([np.float64, np.float32, np.int64]),
                                    label=f"{ap.name} dtype"))
        c.kw[ap.name] = draw_layout(data, cw, f"{ap.name} layout")[0]
        if data.draw(st.integers(0, 9), label=f"{ap.name} fault") == 0:
            bad = data.draw(st.sampled_from([(C + 1,), (C, 1), (1, C), ()]),
                            label="bad class_weight shape")
            c.fault(f"{ap.name} of shape {bad}", ValueError, kw={ap.name: np.ones(bad)})


def _sample_shape(c):
    """The shape of the per-element (elementwise) or per-sample (class,
    rows) loss array."""
    if c.class_info is not None:
        return c.class_info[2]
    if c.spec.family == "rows":
        return c.shape[:-1]
    return c.shape


def _draw_common(data, c, rng):
    S = _sample_shape(c)
    nd = len(S)
    # reduction
    red = data.draw(st.sampled_from(["mean", "mean", "sum", "none", None]
                                    + list(c.spec.extra_reductions)), label="reduction")
    if red is not None:
        c.kw["reduction"] = red
    reduction = red or "mean"
    if data.draw(st.integers(0, 39), label="reduction fault") == 0:
        c.fault("bad reduction", ValueError,
                kw={"reduction": data.draw(st.sampled_from(["avg", "MEAN", None, ""]),
                                           label="bad reduction")})
    # sample weights
    if data.draw(st.integers(0, 2), label="give sample_weight") == 0:
        ws = _broadcast_base_shape(data, S, "sample_weight shape")
        w = rng.uniform(0.0, 2.0, ws)
        if w.size and data.draw(st.integers(0, 3), label="zero weights") == 0:
            w[rng.random(ws) < 0.5] = 0.0
        if data.draw(st.integers(0, 19), label="all-zero weights") == 0:
            w[...] = 0.0
        inject(data, w, st.sampled_from(WEIGHT_SPECIALS), "weight special")
        w = to_dtype(w, data.draw(st.sampled_from([np.float64, np.float32, np.float16, np.int64,
                                                   np.bool_]), label="weight dtype"))
        c.kw["sample_weight"], _ = draw_layout(data, w, "weight layout")
        if S and data.draw(st.integers(0, 29), label="weight fault") == 0:
            c.fault("sample_weight enlarges", ValueError, kw={"sample_weight": np.ones(S + (2,))})
    # axis
    if nd and reduction != "none" and data.draw(st.integers(0, 2), label="give axis") == 0:
        axes = data.draw(st.lists(st.integers(0, nd - 1), min_size=1, max_size=nd, unique=True),
                         label="axes")
        axes = [a - nd if data.draw(st.booleans(), label="negative axis") else a for a in axes]
        c.kw["axis"] = axes[0] if len(axes) == 1 and data.draw(st.booleans(), label="int") \
            else tuple(axes)
    af = data.draw(st.integers(0, 39), label="axis fault")
    if af == 0:
        c.fault("axis out of range", ValueError,
                kw={"axis": data.draw(st.sampled_from([nd, -nd - 1, (0, nd)]), label="bad axis"),
                    "reduction": reduction if reduction != "none" else "sum"})
    elif af == 1 and nd:
        c.fault("repeated axis", ValueError,
                kw={"axis": (0, -nd), "reduction": reduction if reduction != "none" else "sum"})
    elif af == 2 and nd:
        c.fault("axis with reduction='none'", ValueError, kw={"axis": 0, "reduction": "none"})
    # n_threads
    nt = data.draw(st.sampled_from([None] * 8 + [1, 2, 3, "bad"]), label="n_threads")
    if nt == "bad":
        bad = data.draw(st.sampled_from([0, -1, 1.5, "2", True]), label="bad n_threads")
        c.fault("bad n_threads", ValueError if type(bad) is int else TypeError,
                kw={"n_threads": bad})
    elif nt is not None:
        c.kw["n_threads"] = nt
    # out=
    pred = np.asarray(c.y_pred)
    cd, od = compute_dtypes(pred.dtype)
    if c.method != "value":
        kind = data.draw(st.sampled_from(["none"] * 5 + ["good"] * 4 +
                                         ["alias", "wrong dtype", "wrong shape", "non-contiguous",
                                          "read-only", "list"]), label="out")
        if kind == "good":
            c.kw["out"] = np.full(pred.shape, 12345, od)
        elif kind == "alias":
            # out= is y_pred itself (an in-place buffer)
            p = c.y_pred
            if isinstance(p, np.ndarray) and p.dtype == od and p.flags.c_contiguous and \
                    p.flags.writeable and p.flags.aligned and p.dtype.isnative:
                c.kw["out"] = p
        elif kind == "wrong dtype":
            c.fault("out of the wrong dtype", TypeError,
                    kw={"out": np.full(pred.shape, 7, np.float64 if od != np.float64
                                       else np.float32)})
        elif kind == "wrong shape":
            c.fault("out of the wrong shape", ValueError,
                    kw={"out": np.full(pred.shape + (2,), 7, od)})
        elif kind == "non-contiguous":
            if pred.size and any(n > 1 for n in pred.shape):
                o = np.full(tuple(2 * n for n in pred.shape), 7, od)
                c.fault("non-contiguous out", ValueError,
                        kw={"out": o[(slice(None, None, 2),) * pred.ndim]})
        elif kind == "read-only":
            o = np.full(pred.shape, 7, od)
            o.flags.writeable = False
            c.fault("read-only out", ValueError, kw={"out": o})
        elif kind == "list":
            c.fault("out not an ndarray", TypeError,
                    kw={"out": np.full(pred.shape, 7, od).tolist()})
    elif data.draw(st.integers(0, 39), label="out on value") == 0:
        c.fault("out= given to the value", TypeError, kw={"out": np.zeros(pred.shape, od)})
    # other argument errors
    g = data.draw(st.integers(0, 59), label="type fault")
    if g == 0:
        c.fault("unknown keyword", TypeError, kw={"bogus": 1.0})
    elif g == 1:
        c.fault("complex y_pred", TypeError, y_pred=pred.astype(np.complex128))
    elif g == 2:
        c.fault("string y_true", TypeError, y_true=np.asarray(c.y_true).astype(str))
    elif g == 3:
        c.fault("datetime y_pred", TypeError, y_pred=np.zeros(pred.shape, "datetime64[s]"))


# --------------------------------------------------------------- the oracle

def compute_dtypes(dtype):
    """(compute dtype, output dtype) of a y_pred dtype (SPEC section 2)."""
    dtype = np.dtype(dtype).newbyteorder("=")
    if dtype.kind == "f":
        if dtype.itemsize == 2:
            return np.dtype(np.float32), dtype
        return dtype, dtype
    return np.dtype(np.float64), np.dtype(np.float64)


_DUMP = os.environ.get("FASTLOSS_FUZZ_DUMP")


def call(obj, method, p, t, kw):
    if _DUMP:
        # crash hunting: the inputs of the call about to be made, on disk
        # before it runs (FASTLOSS_FUZZ_DUMP=/tmp/last.pkl; see robustness.md)
        with open(_DUMP, "wb") as f:
            pickle.dump((getattr(obj, "name", None), method, p, t, dict(kw)), f)
            f.flush()
            os.fsync(f.fileno())
    if method == "value":
        return obj(p, t, **kw)
    return getattr(obj, method)(p, t, **kw)


def split(method, r):
    """-> (value, derivative) of a method's result."""
    if method == "value":
        return r, None
    if method == "value_and_grad":
        return r
    return None, r


def run_quiet(fn):
    """(result, exception, warnings) of fn()."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        try:
            return fn(), None, w
        except Exception as e:      # noqa: BLE001 -- the exception is the result
            return None, e, w


def kind_of(exc):
    if isinstance(exc, ValueError):
        return ValueError
    if isinstance(exc, TypeError):
        return TypeError
    return type(exc)

def check_same_error(spec, kinds, fast_exc, ref_exc, outs=(), out_snaps=()):
    """Errors agree: when the reference (or a variant) raised, fastloss raised
    an error of one of those kinds, naming the loss, and left out= untouched;
    when none did, fastloss did not raise.  Returns True when they raised."""
    if kinds:
        nm = sorted(k.__name__ for k in kinds)
        assert fast_exc is not None, (
            f"fastloss returned instead of raising {nm} (reference: {ref_exc!r})")
        assert kind_of(fast_exc) in kinds, (
            f"fastloss raised {type(fast_exc).__name__}: {fast_exc}; expected one of {nm} "
            f"(reference: {ref_exc!r})")
        assert spec.name in str(fast_exc), f"the message does not name the loss: {fast_exc}"
        for o, snap in zip(outs, out_snaps):
            assert unchanged(o, snap), "fastloss raised but wrote into out="
        return True
    if fast_exc is not None:
        raise AssertionError(f"fastloss raised {type(fast_exc).__name__}: {fast_exc} where the "
                             f"reference returned") from fast_exc
    return False



def upcast(x, cd, hi):
    """An operand as the kernels see it (rounded to the compute dtype), in
    the higher precision `hi`."""
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        return x
    return a.astype(cd).astype(hi)


def hi_arguments(c, cd, hi):
    """(y_pred, y_true, kwargs) for the higher-precision reference: no out=,
    the float operands rounded to cd then widened (class labels as given);
    real scalar parameters rounded to cd too (the float32 kernels take them
    in float32), unless that would move them out of their domain."""
    p = upcast(c.y_pred, cd, hi)
    soft = c.class_info is not None and c.class_info[3]
    t = upcast(c.y_true, cd, hi) if (c.class_info is None or soft) else c.y_true
    params = {prm.name: prm for prm in c.spec.params}
    kw = {}
    for k, v in c.kw.items():
        if k == "out":
            continue
        if k in ("sample_weight", "pos_weight", "class_weight"):
            kw[k] = upcast(v, cd, hi)
        elif k in params and not params[k].integer and isinstance(v, (float, np.floating)):
            with np.errstate(all="ignore"):
                r = float(cd.type(v))
            keep = bool(params[k].domain.contains(r)) and math.isfinite(r) == math.isfinite(v)
            kw[k] = r if keep else v
        else:
            kw[k] = v
    return p, t, kw


def reduced_scale(c, terms, cd, mag=None):
    """S of the tolerance for a reduced value: sum over the reduced slice of
    |weighted per-element terms| (or their magnitude M where larger), over
    |sum of weights| for "mean"."""
    reduction = c.kw.get("reduction") or "mean"
    a = np.abs(np.asarray(terms, dtype=np.float64))
    if mag is not None:
        a = np.maximum(a, mag)
    tot = np.sum(a, axis=_axis(c))
    if reduction == "sum":
        return tot
    if reduction == "batchmean":
        n0 = c.shape[0] if c.shape else 1
        return tot / n0 if n0 else np.inf
    W = np.abs(np.sum(denominator_weights(c, cd), axis=_axis(c)))
    with np.errstate(all="ignore"):
        return np.where(W > 0, tot / np.where(W > 0, W, 1.0), np.inf)


def _axis(c):
    axis = c.kw.get("axis")
    return tuple(axis) if isinstance(axis, list) else axis


def _not_ignored(y, ii):
    """y != ignore_index, also for bool labels and an ignore_index beyond
    int64 (which NumPy cannot compare with a bool array)."""
    return (y.astype(np.uint8) if y.dtype.kind == "b" else y) != ii


def denominator_weights(c, cd):
    """Per-sample weight in the denominator of "mean" (SPEC section 5):
    s, times cw[y] [y != ignore_index] for cross_entropy / nll with labels."""
    S = _sample_shape(c)
    sw = c.kw.get("sample_weight")
    s = np.ones(S) if sw is None else np.broadcast_to(upcast(sw, cd, np.float64), S)
    if c.class_info is not None and not c.class_info[3] and c.spec.kernel in ("ce", "nll"):
        C = c.class_info[1]
        y = np.broadcast_to(np.asarray(c.y_true), S)
        ii = c.kw.get("ignore_index")
        valid = np.ones(S, bool) if ii is None else _not_ignored(y, ii)
        yi = np.where(valid, y, 0).astype(np.int64)
        cw = c.kw.get("class_weight")
        cw = np.ones(max(C, 1)) if cw is None else upcast(cw, cd, np.float64)
        s = s * np.where(valid, cw[np.clip(yi, 0, max(C - 1, 0))] if C else 0.0, 0.0)
    return s


# --------------------------------------------------------------- magnitudes
#
# Where a loss is a difference of terms (poisson exp(p) - t*p, the gradient
# u*sigmoid(x) - t*sigmoid(-x) of soft-label logistic losses, label smoothing
# in cross_entropy, ...), every implementation's rounding error is relative
# to the magnitude of the terms, not to their difference: M below is that
# magnitude, per element, and enters the tolerance as RTOL * M.  Losses (or
# outputs) not listed have no such cancellation (M = 0: relative to the
# result itself).

def _times(a, b):
    """a * b with 0 where a == 0 (a vanishing coefficient of an infinite term)."""
    with np.errstate(all="ignore"):
        return np.where(a == 0, 0, a * b)


def _sig(x):
    with np.errstate(all="ignore"):
        e = np.exp(-np.abs(x))
        return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _mag_poisson(p, t, prm):
    e = np.exp(p)
    return {"value": e + np.abs(_times(t, p)), "grad": e + np.abs(t)}


def _mag_tweedie(p, t, prm):
    rho = float(prm.get("power", 1.5))
    a, b = 2 - rho, rho - 1
    # exp() amplifies the rounding of its argument, and of rho itself (the
    # float32 kernels take rho in float32): relative errors ~eps*(|a p| + rho |p|)
    # in exp(a p), ~eps*rho/a in 1/a (rho near 2), ~eps*rho/b in 1/b (rho near 1)
    fa = 1 + np.abs(a * p) + rho * np.abs(p)
    fb = 1 + np.abs(b * p) + rho * np.abs(p)
    e2 = np.exp(a * p)
    e1 = _times(np.abs(t), np.exp(-b * p))
    ia, ib = rho / a, rho / b
    return {"value": e2 / a * (fa + ia) + e1 / b * (fb + ib), "grad": e2 * fa + e1 * fb,
            "hess": a * e2 * (fa + ia) + b * e1 * (fb + ib)}


def _mag_quantile(p, t, prm):
    # q near 1 (or 0) rounded to the compute dtype: an absolute error ~eps in
    # q and 1 - q
    return {"value": np.abs(t - p), "grad": np.ones_like(p)}


def _mag_bce_logits(x, t, prm):
    pw = prm.get("pos_weight")
    pt = np.abs(t) if pw is None else np.abs(_times(t, np.asarray(pw, dtype=x.dtype)))
    return {"grad": np.abs(1 - t) * _sig(x) + pt * _sig(-x)}


def _mag_bce(p, t, prm):
    with np.errstate(all="ignore"):
        return {"grad": np.abs(t) / np.abs(p) + np.abs(1 - t) / np.abs(1 - p)}


def _mag_focal(x, t, prm):
    g = float(prm.get("gamma", 2.0))
    alpha = prm.get("alpha", 0.25)
    u = 1 - t
    sx, snx = _sig(x), _sig(-x)
    with np.errstate(all="ignore"):
        m = u * sx + t * snx
        mg = np.abs(m) ** g
        ce = np.abs(_times(t, np.logaddexp(0, -x))) + np.abs(_times(u, np.logaddexp(0, x)))
        # alpha near 0 or 1 rounded to the compute dtype: alpha_t's absolute
        # error is ~eps, so the magnitude is that of the loss without alpha
        at = 1 if alpha is None else np.maximum(np.abs(alpha * t) + np.abs((1 - alpha) * u), 1)
        r = np.where(m != 0, sx * snx / np.abs(m), 0)
        grad = at * mg * (np.abs(u) * sx + np.abs(t) * snx + g * np.abs(1 - 2 * t) * ce * r)
        hess = at * mg * (sx * snx + (2 * g + g * abs(g - 1)) * (np.abs(u) * sx + np.abs(t) * snx
                                                                 + ce * r) * (1 + r))
    return {"value": at * ce * mg, "grad": grad, "hess": hess}


EW_MAGNITUDES = {"poisson": _mag_poisson, "tweedie": _mag_tweedie, "quantile": _mag_quantile,
                 "binary_cross_entropy_with_logits": _mag_bce_logits,
                 "binary_cross_entropy": _mag_bce, "sigmoid_focal": _mag_focal}


def _class_arrays(f, hp, ht, hkw):
    """Logits with the classes last, labels (or probabilities, classes last),
    the mask of samples not ignored, class weights, C."""
    k, C, S, soft = f.class_info
    z = np.moveaxis(np.asarray(hp), k, -1)
    cw = hkw.get("class_weight")
    cw = np.ones(C, z.dtype) if cw is None else np.asarray(cw, dtype=z.dtype)
    if soft:
        return z, np.moveaxis(np.asarray(ht), k, -1), None, cw, C
    y = np.broadcast_to(np.asarray(ht), S)
    ii = hkw.get("ignore_index")
    valid = np.ones(S, bool) if ii is None else _not_ignored(y, ii)
    with np.errstate(all="ignore"):
        yi = np.where(valid, y, 0).astype(np.int64)
    return z, yi, valid, cw, C


def _mag_cross_entropy(f, hp, ht, hkw):
    z, y, valid, cw, C = _class_arrays(f, hp, ht, hkw)
    if C == 0 or z.size == 0:
        return {}
    e = float(hkw.get("label_smoothing", 0.0))
    with np.errstate(all="ignore"):
        m = np.max(z, axis=-1, keepdims=True)
        sh = z - m
        lse = np.log(np.sum(np.exp(sh), axis=-1, keepdims=True))
        nlogp = lse - sh
        p = np.exp(-nlogp)
        acw = np.abs(cw)
        if valid is None:                       # probabilities
            w = np.abs(_times(cw, (1 - e) * y + e / C))
            value = np.sum(_times(w, nlogp), axis=-1)
            grad = np.sum(w, axis=-1, keepdims=True) * p + w
            return {"value": value, "grad": grad}
        onehot = np.arange(C) == y[..., None]
        acwy = acw[np.clip(y, 0, C - 1)][..., None]
        value = (1 - e) * acwy[..., 0] * np.take_along_axis(nlogp, y[..., None], -1)[..., 0]
        grad = (1 - e) * acwy * np.where(onehot, 0, p)
        if e:
            # (1 - e) has an absolute rounding error ~eps (e near 1, float32)
            value = value + acwy[..., 0] * np.take_along_axis(nlogp, y[..., None], -1)[..., 0] \
                + e / C * np.sum(_times(acw, nlogp), axis=-1)
            grad = grad + acwy * (p + onehot) + e / C * (np.sum(acw) * p + acw)
        return {"value": np.where(valid, value, 0), "grad": np.where(valid[..., None], grad, 0)}


def _mag_nll(f, hp, ht, hkw):
    z, y, valid, cw, C = _class_arrays(f, hp, ht, hkw)
    if valid is not None or z.size == 0:
        return {}
    return {"value": np.sum(np.abs(_times(_times(cw, y), z)), axis=-1)}


CLASS_MAGNITUDES = {"cross_entropy": _mag_cross_entropy, "nll": _mag_nll}


def _coef(f, cd, reduction, deriv=False):
    """|s| / |W| per sample (elementwise: per element): what multiplies a
    per-element derivative (|s| for "sum" and "none")."""
    S = _sample_shape(f)
    sw = f.kw.get("sample_weight")
    s = np.ones(S) if sw is None else np.abs(np.broadcast_to(upcast(sw, cd, np.float64), S))
    cot = getattr(f, "cot_factor", None)
    if deriv and cot is not None:       # |cotangent| over the per-sample shape
        s = s * cot
    if reduction == "batchmean":
        n0 = f.shape[0] if f.shape else 1
        return s / n0 if n0 else s * np.inf
    if reduction == "mean":
        W = np.abs(np.sum(denominator_weights(f, cd), axis=_axis(f), keepdims=True))
        with np.errstate(all="ignore"):
            s = np.where(W > 0, s / np.where(W > 0, W, 1.0), np.where(s == 0, 0.0, np.inf))
    return s


def magnitudes(f, hp, ht, hkw, cd):
    """{output: M} (only the outputs with intrinsic cancellation), M
    including the weights: per element of the value array for "none" (and
    for the terms of a reduction: key "terms"), per element of y_pred for
    "grad" and "hess"."""
    name = f.spec.name
    reduction = f.kw.get("reduction") or "mean"
    if f.class_info is None:
        fn = EW_MAGNITUDES.get(name)
        if fn is None:
            return {}
        P = np.broadcast_to(np.asarray(hp), f.shape)
        T = np.broadcast_to(np.asarray(ht, dtype=P.dtype), f.shape)
        prm = {p.name: p.default for p in f.spec.params}
        prm.update({k: v for k, v in hkw.items() if k in f.spec.param_names})
        if prm.get("pos_weight") is not None:
            prm["pos_weight"] = np.broadcast_to(np.asarray(prm["pos_weight"]), f.shape)
        with np.errstate(all="ignore"):
            raw = fn(P, T, prm)
        expand = (lambda a: a)
    else:
        fn = CLASS_MAGNITUDES.get(name)
        if fn is None:
            return {}
        raw = fn(f, hp, ht, hkw)
        k = f.class_info[0]
        expand = (lambda a: np.expand_dims(a, k))
        if "grad" in raw:
            raw["grad"] = np.moveaxis(raw["grad"], -1, k)
    out = {}
    with np.errstate(all="ignore"):
        for key, m in raw.items():
            m = np.nan_to_num(np.asarray(m, dtype=np.float64), nan=0.0)
            if key == "value":
                out["terms"] = _times(_coef(f, cd, "none"), m)
                if reduction == "none":
                    out["value"] = out["terms"]
            else:
                out[key] = _times(expand(_coef(f, cd, reduction, deriv=True)), m)
    return out


def nan_allowed(f, hp, ht, hkw):
    """Where fastloss may return NaN whatever the reference says ("NaN
    propagates as in NumPy"): (mask over y_pred's shape, mask over the loss
    array).  An element (elementwise) or a sample's whole row (class losses)
    with a NaN input, y_pred and y_true the same infinity (d = inf - inf),
    or a NaN / infinite weight (s * 0 is NaN; anywhere, as it enters the
    mean's denominator); NaN class weights: anywhere."""
    S = _sample_shape(f)
    with np.errstate(all="ignore"):
        anywhere = False
        for k in ("sample_weight", "class_weight"):
            v = hkw.get(k)
            if v is not None and not np.all(np.isfinite(np.asarray(v, dtype=np.float64))):
                anywhere = True
        P = np.asarray(hp, dtype=np.float64)
        if f.class_info is None:
            P = np.broadcast_to(P, f.shape)
            T = np.broadcast_to(np.asarray(ht, dtype=np.float64), f.shape)
            m = np.isnan(P) | np.isnan(T) | (np.isinf(P) & (P == T))
            pw = hkw.get("pos_weight")
            if pw is not None:
                m = m | np.isnan(np.broadcast_to(np.asarray(pw, dtype=np.float64), f.shape))
            m = m | anywhere
            return m, m
        k, C, S, soft = f.class_info
        row = np.isnan(P)
        if soft:
            row = row | np.isnan(np.asarray(ht, dtype=np.float64))
        per_sample = np.any(row, axis=k) | anywhere
        return np.broadcast_to(np.expand_dims(per_sample, k), P.shape), per_sample


def _focal_huge_gamma(f, hp, ht, hkw):
    """sigmoid_focal with gamma**2 beyond the float range: the reference's
    Hessian (and gradient) terms gamma*(gamma-1)*m**gamma are 0*inf = NaN
    or inf where the exact value is 0 or finite (m**gamma underflows first):
    a finite fastloss result is not checked there (documented far tail)."""
    g = hkw.get("gamma")
    return g is not None and math.isfinite(float(g)) and float(g) > 1e150


# loss -> predicate(case, hi y_pred, hi y_true, hi kwargs): where a finite
# result is accepted although the reference (in both precisions) is not
REFERENCE_NAN_FAR_TAIL = {"sigmoid_focal": _focal_huge_gamma}


def assert_match(got, hi_val, lo_val, od, cd, scale, what, nan_ok=False, finite_ok=False,
                 zero_ok=False, any_ok=False):
    """The tolerance of the module docstring, elementwise."""
    g = np.asarray(got)
    assert g.dtype == od, f"{what}: dtype {g.dtype}, expected {od}"
    h = np.asarray(hi_val)
    assert g.shape == h.shape, f"{what}: shape {g.shape}, expected {h.shape}"
    rtol = RTOL[od]
    # subnormal results: absolute precision (the compute dtype's smallest
    # normal when fastloss computes in the output dtype: vectorized exp may
    # flush subnormal results to zero)
    atol = float(np.finfo(cd).tiny) if od == cd else 8 * float(np.finfo(od).smallest_subnormal)
    fmax = float(np.finfo(od).max)
    wide = np.longdouble if HI is np.longdouble else np.float64
    gw = g.astype(wide)
    hw = h.astype(wide)
    lw = np.asarray(lo_val).astype(wide)
    with np.errstate(all="ignore"):
        h_od = h.astype(od)                 # the exact result rounded to the output dtype
        cond = np.abs(lw - hw)
        cond = np.where(np.isfinite(cond), cond, 0)
        sc = np.broadcast_to(np.asarray(scale, dtype=wide), h.shape)
        tol = rtol * (np.abs(hw) + np.where(np.isfinite(sc), sc, np.inf)) + 2 * cond + atol
        finite = np.isfinite(gw) & np.isfinite(hw)
        ok = finite & (np.abs(gw - hw) <= tol)
        ok |= np.isnan(gw) & np.isnan(hw)
        ok |= np.isinf(gw) & (gw == h_od.astype(wide))
        # rounding at the overflow threshold
        near_max = np.abs(hw) >= fmax * (1 - 2 * rtol)
        ok |= np.isinf(gw) & np.isfinite(hw) & near_max & (np.sign(gw) == np.sign(hw))
        ok |= np.isfinite(gw) & np.isinf(h_od) & (np.abs(gw) >= fmax * (1 - 2 * rtol)) & \
            (np.sign(gw) == np.sign(hw))
        # documented far tail: an intermediate overflowing the compute dtype
        # gives the same inf or NaN as the reference evaluated in that dtype
        ok |= (np.isnan(gw) & np.isnan(lw)) | (np.isinf(gw) & (gw == lw))
        ok |= np.isnan(gw) & nan_ok
        ok |= np.isfinite(gw) & ~np.isfinite(hw) & ~np.isfinite(lw) & finite_ok
        # bit-for-bit the reference computed in the compute dtype (e.g. a
        # product that underflows in float32 in both)
        ok |= gw == lw
        ok |= (gw == 0) & zero_ok
        ok |= any_ok
    if not np.all(ok):
        bad = np.argwhere(~ok)[:6] if g.ndim else [()]
        lines = [f"{what}: {int(np.size(ok) - np.count_nonzero(ok))} of {np.size(ok)} "
                 f"elements differ"]
        for i in bad:
            i = tuple(int(j) for j in i)
            lines.append(f"  at {i}: got {g[i]!r}, reference {float(h[i])!r} (compute-dtype "
                         f"reference {float(np.asarray(lo_val)[i])!r}), tolerance "
                         f"{float(np.broadcast_to(tol, h.shape)[i]):.3g}")
        raise AssertionError("\n".join(lines))


def describe(c):
    def arr(x):
        if isinstance(x, list):
            return f"list{np.shape(x)}"
        a = np.asarray(x)
        f = a.flags
        return (f"{a.dtype}{a.shape} strides={a.strides} "
                f"{'C' if f.c_contiguous else ''}{'F' if f.f_contiguous else ''}"
                f"{'' if f.writeable else ' ro'}{'' if f.aligned else ' unaligned'}")
    kw = {k: (arr(v) if isinstance(v, (np.ndarray, list)) else v) for k, v in c.kw.items()}
    return (f"{c.spec.name}.{c.method}: y_pred {arr(c.y_pred)}, y_true {arr(c.y_true)}, "
            f"kw {kw}")


def reproducer(c):
    """Python source of the call, when its arrays are small enough to print
    (layouts are not reproduced: contiguous copies)."""
    def src(x):
        if isinstance(x, (np.ndarray, list)):
            a = np.asarray(x)
            if a.size > 40:
                return None
            with np.printoptions(floatmode="unique", threshold=100):
                return f"np.array({a.tolist()!r}, dtype='{a.dtype.newbyteorder('=').str}')"
        return repr(x)
    parts = [src(c.y_pred), src(c.y_true)] + [f"{k}={src(v)}" for k, v in c.kw.items()]
    if any(p is None or p.endswith("=None") and not p.startswith(("ignore", "alpha", "reduc"))
           for p in parts):
        return ""
    meth = "" if c.method == "value" else f".{c.method}"
    return f"\nreproducer: fl.{c.spec.name}{meth}({', '.join(parts)})".replace("nan", "np.nan") \
        .replace("inf", "np.inf")


def snapshot(x):
    if isinstance(x, np.ndarray):
        return x.copy()
    if isinstance(x, list):
        return np.array(x)
    return x


def unchanged(x, snap):
    a = np.asarray(x) if isinstance(x, (np.ndarray, list)) else None
    if a is None:
        return True
    return a.shape == snap.shape and np.array_equal(a, snap, equal_nan=a.dtype.kind in "fc")


def native(x):
    """The reference takes a byte-swapped y_pred's dtype as its output
    dtype; fastloss returns native arrays (as NumPy does): give the
    reference the same values in native order."""
    if isinstance(x, np.ndarray) and not x.dtype.isnative:
        return x.astype(x.dtype.newbyteorder("="))
    if isinstance(x, np.ndarray) and x.flags.writeable:
        return x.copy()            # out= may alias y_pred
    return x


def reference_kwargs(kw):
    """The reference's own copy of out= (it checks out= as fastloss does)."""
    out = kw.get("out")
    if not isinstance(out, np.ndarray):
        return kw
    if out.flags.c_contiguous:
        o = out.copy()
    else:
        o = np.zeros(tuple(2 * n for n in out.shape), out.dtype)[
            (slice(None, None, 2),) * out.ndim]
    if not out.flags.writeable:
        o.flags.writeable = False
    return {**kw, "out": o}


_PARAM_KIND = {}


def param_error_kind(spec, name, value):
    """The error (kind) a scalar parameter value gives on its own: the
    reference's on a typical call, and ValueError for NaN (outside every
    domain; fastloss rejects it even where the reference would propagate it)."""
    key = (spec.name, name, type(value).__name__, repr(value))
    if key not in _PARAM_KIND:
        shape = (3,) if spec.family == "elementwise" else (3, 4)
        *arrs, _ = make_inputs(spec.name, shape, np.float64, np.random.default_rng(0))
        _, e, _ = run_quiet(lambda: fl.get(spec.name).reference(*arrs, **{name: value}))
        kind = kind_of(e) if e is not None else None
        if kind is None and isinstance(value, (float, np.floating)) and math.isnan(value):
            kind = ValueError
        _PARAM_KIND[key] = kind
    return _PARAM_KIND[key]


def expected_errors(c, ref_exc_faulted):
    """The kinds of exception the faulted call may raise: those of the
    injected faults, of each scalar parameter on its own, of the reference
    on the call without the faults and on the faulted call."""
    kinds = {k for _, k, _ in c.faults}
    names = {p.name for p in c.spec.params}
    for k, v in c.kw.items():
        if k in names and k not in ("class_axis", "ignore_index"):
            pk = param_error_kind(c.spec, k, v)
            if pk is not None:
                kinds.add(pk)
    if c.faults:
        _, e, _ = run_quiet(lambda: call(c.spec_loss().reference, c.method, native(c.y_pred),
                                         c.y_true, reference_kwargs(c.kw)))
        if e is not None:
            kinds.add(kind_of(e))
    if ref_exc_faulted is not None:
        kinds.add(kind_of(ref_exc_faulted))
    return kinds


def check_case(c):
    spec = c.spec
    loss = fl.get(spec.name)
    ref = loss.reference
    f = c.faulted()
    note(describe(f) + f"; injected errors: {c.fault_names()}" + reproducer(f))
    out = f.kw.get("out")
    # copies of everything fastloss must not write
    snaps = {"y_pred": snapshot(f.y_pred), "y_true": snapshot(f.y_true)}
    snaps.update({k: snapshot(v) for k, v in f.kw.items()
                  if isinstance(v, (np.ndarray, list)) and k != "out"})
    out_snap = snapshot(out)

    ref_res, ref_exc, _ = run_quiet(lambda: call(ref, f.method, native(f.y_pred), f.y_true,
                                                 reference_kwargs(f.kw)))
    fast_res, fast_exc, fast_warn = run_quiet(lambda: call(loss, f.method, f.y_pred, f.y_true,
                                                           f.kw))

    # nothing but out= (which may be y_pred itself) may change
    for k, snap in snaps.items():
        if k == "y_pred" and out is f.y_pred:
            continue
        x = f.y_pred if k == "y_pred" else f.y_true if k == "y_true" else f.kw[k]
        assert unchanged(x, snap), f"fastloss wrote into its input {k}"

    kinds = expected_errors(c, ref_exc)
    if check_same_error(spec, kinds, fast_exc, ref_exc,
                        () if out is None else (out,), () if out is None else (out_snap,)):
        return

    # --- both returned: compare with the reference in higher precision
    if spec.name in UNCHECKED_TARGETS:
        with np.errstate(all="ignore"):
            t = np.asarray(snaps["y_true"], dtype=np.float64)
        if not np.all(UNCHECKED_TARGETS[spec.name].contains(t)):
            return
    pred = np.asarray(snaps["y_pred"])
    cd, od = compute_dtypes(pred.dtype)
    hi = np.float64 if cd == np.float32 else HI
    orig = copy.copy(f)
    orig.y_pred = snaps["y_pred"]           # (out= may have been y_pred)
    hp, ht, hkw = hi_arguments(orig, cd, hi)
    hi_res, hi_exc, _ = run_quiet(lambda: call(ref, f.method, hp, ht, hkw))
    assert hi_exc is None, f"the reference failed in higher precision: {hi_exc!r}"
    mags = magnitudes(orig, hp, ht, hkw, cd)
    nan_d, nan_v = nan_allowed(orig, hp, ht, hkw)
    far = REFERENCE_NAN_FAR_TAIL.get(spec.name)
    finite_ok = bool(far and far(orig, hp, ht, hkw))
    hv, hd = split(f.method, hi_res)
    lv, ld = split(f.method, ref_res)
    fv, fd = split(f.method, fast_res)
    reduction = f.kw.get("reduction") or "mean"
    axis = _axis(f)
    S = _sample_shape(f)
    if fv is not None:
        if reduction == "none" or axis is not None:
            assert isinstance(fv, np.ndarray) or (axis is not None and len(np.atleast_1d(axis))
                                                  == len(S)), \
                f"value: {type(fv).__name__}, expected an ndarray"
        else:
            assert isinstance(fv, np.generic), \
                f"value: {type(fv).__name__}, expected a NumPy scalar"
        if reduction != "none":
            terms, e, _ = run_quiet(lambda: ref(hp, ht, **{**hkw, "reduction": "none",
                                                           "axis": None}))
            assert e is None, e
            scale = reduced_scale(f, terms, cd, mags.get("terms"))
            nan_v = np.any(nan_v, axis=axis)
        else:
            scale = mags.get("value", 0.0)
        assert_match(fv, hv, lv, od, cd, scale, "value", nan_v, finite_ok)
        # a mean over zero total weight: nan with a RuntimeWarning
        if reduction == "mean" and _zero_weight(f, cd):
            assert any(issubclass(w.category, RuntimeWarning) for w in fast_warn), \
                "mean over zero total weight without a RuntimeWarning"
    if fd is not None:
        what = "gradient" if f.method != "hessian" else "hessian"
        assert isinstance(fd, np.ndarray), f"{what}: {type(fd).__name__}"
        assert fd.shape == pred.shape, f"{what}: shape {fd.shape}, expected {pred.shape}"
        if out is not None:
            assert fd is out, f"{what}: not the out= buffer"
        assert_match(fd, hd, ld, od, cd, mags.get("grad" if what == "gradient" else "hess", 0.0),
                     what, nan_d, finite_ok, zero_denominator(orig, cd))

    # --- thread-count invariance on calls big enough for the team
    if f.big and out is not f.y_pred:
        kw1 = {k: v for k, v in f.kw.items() if k != "out"}
        r1 = call(loss, f.method, f.y_pred, f.y_true, {**kw1, "n_threads": 1})
        r2 = call(loss, f.method, f.y_pred, f.y_true, {**kw1, "n_threads": 2})
        for a, b in zip(split(f.method, r1), split(f.method, r2)):
            if a is not None:
                assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), \
                    "n_threads=1 and n_threads=2 differ in their bits"


def zero_denominator(c, cd):
    """Over y_pred's shape: the elements of the slices whose "mean" has a
    zero denominator.  SPEC: the mean is then nan and "the gradient and
    Hessian are 0 wherever the weight is 0"; where the weight is not 0 but
    the denominator is (negative weights, or a class weight 0 of the label
    with label smoothing), 0 is accepted as well as the reference's +-inf."""
    if (c.kw.get("reduction") or "mean") != "mean":
        return False
    if c.spec.family == "rows":
        with np.errstate(all="ignore"):
            W = np.sum(denominator_weights(c, cd), axis=_axis(c), keepdims=True)
        return np.broadcast_to(np.expand_dims(np.broadcast_to(W == 0, _sample_shape(c)), -1),
                               c.shape)
    with np.errstate(all="ignore"):
        W = np.sum(denominator_weights(c, cd), axis=_axis(c), keepdims=True)
    z = np.broadcast_to(W == 0, _sample_shape(c))
    if c.class_info is not None:
        z = np.expand_dims(z, c.class_info[0])
    return np.broadcast_to(z, c.shape)


def _zero_weight(c, cd):
    """Whether some reduced slice has zero total weight (so "mean" is nan)."""
    return bool(np.any(np.sum(denominator_weights(c, cd), axis=_axis(c)) == 0))


# --------------------------------------------------------------- the tests

@pytest.mark.parametrize("spec", SPECS, ids=IDS)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example, HealthCheck.filter_too_much])
@given(data=st.data())
def test_fuzz(spec, data):
    check_case(draw_case(data, spec))


# ===================================================== every declaration
#
# test_fuzz_every_loss: the deep fuzz of every row of fastloss._registry.TABLE
# -- the multi-input elementwise losses (gaussian_nll, margin_ranking), the
# extra reductions (kl_div's batchmean), the row family and its three-input
# loss -- through the operand model (SPEC sections 7-8): each input drawn
# from its declaration (sampler, shape rule "broadcast" / "samples", data
# checks' domain edges as special values, dtype, layout), each parameter from
# its domain, a wrt subset (str or tuple; a bad or repeated name), a
# cotangent (scalar, of the value's shape, broadcast, wrong), every reduction
# the loss declares, sample weights, axis, out= (one array per wrt input,
# a pair for grad_and_hessian), n_threads.  The two-input losses draw their
# (y_pred, y_true) as test_fuzz does (class labels and probabilities, class
# weights, pos_weight) and get the same wrt / cotangent / out= draws.  The
# oracle is check_case's: the same errors as the reference; results within
# RTOL * (|hi| + S) + 2 |lo - hi| + ATOL of the reference in higher
# precision, S the magnitude of the cancelling terms (MULTI_MAGNITUDES for
# the losses test_fuzz does not cover), times |cotangent|.  Where an input
# or weight is NaN or infinite, the elements of the results it reaches (the
# reference's NaN when every such value is replaced by NaN) are not compared.

ALL_SPECS = list(_registry.TABLE)
ALL_IDS = [s.name for s in ALL_SPECS]
ALL_METHODS = ("value", "grad", "value_and_grad", "hessian", "grad_and_hessian")
_TWO = {s.name for s in TABLE}


class MultiCase(Case):
    """A Case over all of a declaration's inputs (``inputs``; y_pred and
    y_true stay the first two, for the shared helpers)."""

    def __init__(self, spec):
        super().__init__(spec)
        self.inputs = []
        self.cot_factor = None

    def sync(self):
        self.y_pred = self.inputs[0]
        self.y_true = self.inputs[1]

    def faulted(self):
        if not self.faults:
            return self
        f = copy.copy(self)
        f.kw = dict(self.kw)
        f.inputs = list(self.inputs)
        for _, _, ch in self.faults:
            if "y_pred" in ch:
                f.inputs[0] = ch["y_pred"]
                f.kw.pop("out", None)
            if "y_true" in ch:
                f.inputs[1] = ch["y_true"]
            for k, v in ch.get("inputs", {}).items():
                f.inputs[k] = v
            for k, v in ch.get("kw", {}).items():
                if v is DROP:
                    f.kw.pop(k, None)
                else:
                    f.kw[k] = v
        f.sync()
        return f


def _draw_rows_shape(data):
    r = data.draw(st.integers(0, 99), label="rows shape kind")
    if r < 3:
        return data.draw(st.sampled_from([(2049, 16), (1024, 33), (64, 513), (3, 11000)]),
                         label="big rows shape")
    sdim = data.draw(st.sampled_from([1, 1, 1, 0, 2]), label="per-sample ndim")
    S = draw_dims(data, sdim, cap=300, label="per-sample dims")
    D = data.draw(st.sampled_from([1, 2, 3, 4, 7, 8, 15, 16, 17, 33, 0]), label="D")
    return S + (D,)


def _draw_param(data, prm):
    if prm.boolean:
        return data.draw(st.sampled_from([False, True, False, True, np.bool_(True), 1, None]),
                         label=prm.name)
    return draw_param_value(data, prm)


def _draw_operands(data, c, dtype, rng):
    """Inputs from the declaration: the first operand's shape, each other
    operand broadcast to it ("broadcast") or to its per-sample shape
    ("samples"), values from the sampler, ties between differentiable
    operands, special values at the data checks' edges."""
    spec = c.spec
    shape = (_draw_rows_shape(data) if spec.family == "rows"
             else _draw_pred_shape_elementwise(data))
    c.shape = shape
    c.big = math.prod(shape) >= THREADED_SIZE
    arrays = []
    for k, op in enumerate(spec.operands):
        if op.shape == "first":
            oshape = shape
        elif op.shape == "samples":
            oshape = _broadcast_base_shape(data, shape[:-1], f"{op.name} shape")
        else:
            oshape = _broadcast_base_shape(data, shape, f"{op.name} shape")
        a = np.array(spec.sampler[op.name](rng, oshape), dtype=np.float64)
        # ties with an earlier differentiable operand of the same shape
        # (margin_ranking's kink at x1 == x2, triplet's zero distances)
        if op.differentiable and k and a.size and \
                data.draw(st.integers(0, 5), label=f"{op.name} ties") == 0:
            prev = arrays[0]
            if prev.shape == a.shape:
                m = rng.random(a.shape) < 0.5
                a[m] = prev[m]
        inject(data, a, special_values(spec, op.name), f"{op.name} special", big=c.big)
        arrays.append(a)
    inputs = []
    for k, (op, a) in enumerate(zip(spec.operands, arrays)):
        if k == 0:
            odt = dtype
        elif op.differentiable:
            odt = data.draw(st.sampled_from([None, None, None, np.float64, np.float32,
                                             np.float16, np.int64]), label=f"{op.name} dtype")
            odt = odt if odt is not None else (dtype if dtype.kind == "f" else np.float64)
        else:
            odt = data.draw(st.sampled_from([None, np.float32, np.float64, np.int64, np.int8,
                                             np.bool_]), label=f"{op.name} dtype")
            odt = odt if odt is not None else (dtype if dtype.kind == "f" else np.float64)
        x, _ = draw_layout(data, to_dtype(a, odt), f"{op.name} layout")
        inputs.append(x)
    c.inputs = inputs
    f = data.draw(st.integers(0, 29), label="shape fault")
    if f == 0 and shape and len(spec.operands) > 1:
        k = data.draw(st.integers(1, len(spec.operands) - 1), label="faulted operand")
        c.fault(f"{spec.operands[k].name} enlarges", ValueError,
                inputs={k: np.zeros((2,) + shape)})
    for prm in spec.params:
        if data.draw(st.integers(0, 2), label=f"give {prm.name}"):
            c.kw[prm.name] = _draw_param(data, prm)


def _wrt(spec, kw):
    """(wrt names, single) as the call resolves them."""
    w = kw.get("wrt")
    if w is None:
        return spec.differentiable, len(spec.differentiable) == 1
    if isinstance(w, str):
        return (w,), True
    return tuple(w), False


def _operand_shape(c, name):
    if c.spec.family == "class":
        return np.shape(c.inputs[0])
    return np.shape(c.inputs[c.spec.inputs.index(name)])


def _value_shape(c):
    S = _sample_shape(c)
    red = c.kw.get("reduction") or "mean"
    axis = _axis(c)
    if red == "none":
        return S
    if axis is None or red == "batchmean":
        return ()
    axes = {a % len(S) for a in np.atleast_1d(axis)}
    return tuple(n for i, n in enumerate(S) if i not in axes)


def _draw_derivative_args(data, c):
    """wrt, cotangent and out= of a derivative call (replacing the single
    out= array of _draw_common by one per wrt input)."""
    spec = c.spec
    diff = spec.differentiable
    if c.method == "value":
        if data.draw(st.integers(0, 39), label="wrt on value") == 0:
            c.fault("wrt= given to the value", TypeError, kw={"wrt": diff[0]})
        return
    if data.draw(st.integers(0, 2), label="give wrt"):
        pick = data.draw(st.lists(st.sampled_from(diff), min_size=1, max_size=len(diff),
                                  unique=True), label="wrt")
        c.kw["wrt"] = pick[0] if len(pick) == 1 and data.draw(st.booleans(), label="wrt str") \
            else tuple(pick)
    wf = data.draw(st.integers(0, 39), label="wrt fault")
    if wf == 0:
        c.fault("wrt names no differentiable input", ValueError,
                kw={"wrt": data.draw(st.sampled_from(["nope", spec.inputs[-1] if
                                                      spec.inputs[-1] not in diff else "x"]),
                                     label="bad wrt")})
    elif wf == 1:
        c.fault("wrt repeats an input", ValueError, kw={"wrt": (diff[0], diff[0])})
    # the cotangent: of the value's shape, broadcast to it, scalar, or wrong
    ck = data.draw(st.sampled_from(["none"] * 4 + ["scalar", "full", "full", "broadcast",
                                                   "bad"]), label="cotangent")
    try:
        vshape = _value_shape(c)
    except Exception:       # noqa: BLE001 -- a bad axis: the call raises anyway
        vshape = None
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16), label="cotangent seed"))
    if ck == "scalar":
        c.kw["cotangent"] = data.draw(st.sampled_from([1.75, -0.5, 0.0, np.float32(3.0), 2]),
                                      label="scalar cotangent")
    elif ck in ("full", "broadcast") and vshape is not None:
        bshape = vshape if ck == "full" else _broadcast_base_shape(data, vshape, "cot shape")
        cot = rng.uniform(-2, 2, bshape)
        if cot.size and data.draw(st.integers(0, 4), label="cot zeros") == 0:
            cot.flat[0] = 0.0
        cot = to_dtype(cot, data.draw(st.sampled_from([np.float64, np.float32, np.int64]),
                                      label="cot dtype"))
        c.kw["cotangent"], _ = draw_layout(data, cot, "cot layout")
    elif ck == "bad" and vshape is not None:
        c.fault("cotangent does not broadcast to the value", ValueError,
                kw={"cotangent": np.ones(tuple(vshape) + (3,))})
    # out=: one array per wrt input (a pair of those for grad_and_hessian)
    wrt, single = _wrt(spec, c.kw)
    if any(w not in diff for w in wrt):
        return
    od = compute_dtypes(np.asarray(c.inputs[0]).dtype)[1]

    def one(alias=False, bad=None):
        arrs = []
        for w in wrt:
            if bad is not None:
                arrs.append(bad)
                bad = None
            elif alias and w == diff[0]:
                arrs.append(c.inputs[0])
            else:
                arrs.append(np.full(_operand_shape(c, w), 12345, od))
        return arrs[0] if single else tuple(arrs)

    def pair(x):
        return (x, one()) if c.method == "grad_and_hessian" else x
    # the out= faults of _draw_common: the bad array in the first place
    for _, _, ch in c.faults:
        if "out" in ch.get("kw", {}):
            ch["kw"]["out"] = pair(one(bad=ch["kw"]["out"]))
    o = c.kw.get("out")
    if o is None:
        return
    alias = o is c.inputs[0]
    if alias and c.method == "grad_and_hessian":
        c.kw.pop("out")         # y_pred cannot hold both
        return
    c.kw["out"] = pair(one(alias=alias))


def draw_multi_case(data, spec):
    c = MultiCase(spec)
    methods = ALL_METHODS if spec.has_hessian else ALL_METHODS[:3]
    c.method = data.draw(st.sampled_from(methods), label="method")
    if not spec.has_hessian and data.draw(st.integers(0, 39), label="hessian fault") == 0:
        c.method = "hessian"
    dtype = np.dtype(data.draw(st.sampled_from(Y_PRED_DTYPES), label="y_pred dtype"))
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    if spec.family == "class":
        _draw_class(data, c, dtype, rng)
        c.inputs = [c.y_pred, c.y_true]
    elif spec.name in _TWO:
        _draw_elementwise(data, c, dtype, rng)
        c.inputs = [c.y_pred, c.y_true]
    else:
        _draw_operands(data, c, dtype, rng)
    c.sync()
    m = c.method
    if m == "grad_and_hessian":      # _draw_common's out= is that of one derivative
        c.method = "grad"
    _draw_common(data, c, rng)
    c.method = m
    _draw_derivative_args(data, c)
    return c


# --- magnitudes of the cancelling terms of the losses test_fuzz does not cover
# (fn(full-shape float64 inputs, parameters) -> {"value": M, "grad": (M per
# differentiable input), "hess": (...)}, all of the first input's shape)

def _mag_gaussian_nll(p, t, var, prm):
    eps = float(prm.get("eps", 1e-6))
    v = np.where(var < eps, eps, var)
    q = (p - t) ** 2 / v
    return {"value": 0.5 * (np.abs(np.log(v)) + q) + 1.0,
            "grad": (np.zeros_like(p), 0.5 * (1 + q) / v),
            "hess": (np.zeros_like(p), 0.5 * (2 * q + 1) / (v * v))}


def _mag_kl_div(p, t, prm):
    if prm.get("log_target"):
        et = np.exp(t)
        amp = 1 + np.abs(t)          # exp amplifies the rounding of its argument
        return {"value": _times(et, (np.abs(t) + np.abs(p)) * amp), "grad": (et * amp,)}
    return {"value": np.abs(_times(t, np.log(np.abs(t)))) + np.abs(_times(t, p)),
            "grad": (np.zeros_like(p),)}


def _mag_margin_ranking(x1, x2, y, prm):
    return {"value": np.abs(x1) + np.abs(x2) + abs(float(prm.get("margin", 0.0))),
            "grad": (np.zeros_like(x1), np.zeros_like(x1))}


def _row_norm(u):
    return np.sqrt(np.sum(u * u, axis=-1, keepdims=True))


def _mag_cosine(x1, x2, y, prm):
    # the gradient is a difference of terms ~ 1 / |x|: x2/(|x1||x2|) - cos x1/|x1|^2
    n1 = np.sqrt(_row_norm(x1) ** 2 + 1e-12)
    n2 = np.sqrt(_row_norm(x2) ** 2 + 1e-12)
    one = np.ones_like(x1)
    return {"value": np.full(x1.shape[:-1], 2.0 + abs(float(prm.get("margin", 0.0)))),
            "grad": (2 * one / n1, 2 * one / n2)}


def _dist_terms(u, v, prm):
    """(distance, |d distance / d u| per element) of ||u - v + eps||_p."""
    pw = float(prm.get("p", 2.0))
    w = u - v + float(prm.get("eps", 1e-6))
    a = np.abs(w)
    if math.isinf(pw):
        d = np.max(a, axis=-1, keepdims=True) if a.shape[-1] else np.zeros(a.shape[:-1] + (1,))
        return d, np.ones_like(a)
    d = np.sum(a ** pw, axis=-1, keepdims=True) ** (1 / pw)
    return d, np.where(a == 0, 0.0, (a / np.where(d == 0, 1.0, d)) ** (pw - 1))


def _mag_triplet(a, p, n, prm):
    dap, gap = _dist_terms(a, p, prm)
    dan, gan = _dist_terms(a, n, prm)
    dpn, gpn = _dist_terms(p, n, prm)
    g = gap + gan + gpn
    m = abs(float(prm.get("margin", 1.0)))
    # the value is a difference of distances; each gradient a sum of the
    # distances' unit-vector terms (swap: any of the three)
    return {"value": (dap + dan + dpn)[..., 0] + m, "grad": (g, g, g)}


def _kink_triplet(a, p, n, prm, eps):
    """Samples at the hinge (d(a, p) - d(a, n) + margin ~ 0) or at the swap's
    tie (d(a, n) ~ d(p, n)) within the rounding of the distances in the
    compute dtype (each ~ a few eps relative): their derivatives may take
    either branch."""
    dap, _ = _dist_terms(a, p, prm)
    dan, _ = _dist_terms(a, n, prm)
    dpn, _ = _dist_terms(p, n, prm)
    m = float(prm.get("margin", 1.0))
    tol = 8 * eps * (dap + dan + dpn + abs(m))[..., 0]
    dneg = np.minimum(dan, dpn) if prm.get("swap") else dan
    k = np.abs((dap - dneg)[..., 0] + m) <= tol
    if prm.get("swap"):
        k |= np.abs((dan - dpn)[..., 0]) <= tol
    return k


def _kink_cosine(x1, x2, y, prm, eps):
    """y == -1 samples with cos ~ margin (within the rounding of cos in the
    compute dtype)."""
    n1 = np.sqrt(_row_norm(x1) ** 2 + 1e-12)[..., 0]
    n2 = np.sqrt(_row_norm(x2) ** 2 + 1e-12)[..., 0]
    cos = np.sum(x1 * x2, axis=-1) / (n1 * n2)
    m = float(prm.get("margin", 0.0))
    return (y != 1) & (np.abs(cos - m) <= 16 * eps * (1 + abs(m)))


# loss -> fn(full-shape inputs, parameters, eps of the compute dtype) -> mask
# of the samples whose derivatives are at a kink of the loss
MULTI_KINKS = {"triplet_margin": _kink_triplet, "cosine_embedding": _kink_cosine}

MULTI_MAGNITUDES = {"gaussian_nll": _mag_gaussian_nll, "kl_div": _mag_kl_div,
                    "margin_ranking": _mag_margin_ranking,
                    "cosine_embedding": _mag_cosine, "triplet_margin": _mag_triplet}


def _sum_to(a, shape):
    """a summed down to `shape` (the reverse of broadcasting)."""
    a = np.asarray(a)
    lead = a.ndim - len(shape)
    if lead:
        a = a.sum(axis=tuple(range(lead)))
    ax = tuple(i for i, n in enumerate(shape) if n == 1 and a.shape[i] != 1)
    return a.sum(axis=ax, keepdims=True) if ax else a


def multi_magnitudes(f, hin, hkw, cd):
    """{"terms", "value", "grad": {wrt name: M}, "hess": {...}} for a
    declaration without an entry in the two-input magnitudes."""
    spec = f.spec
    fn = MULTI_MAGNITUDES.get(spec.name)
    if fn is None:
        return {}
    full = f.shape
    arrs = []
    for op, a in zip(spec.operands, hin):
        a = np.asarray(a, dtype=np.float64)
        if op.shape == "samples":
            arrs.append(np.broadcast_to(a, full[:-1]))
        else:
            arrs.append(np.broadcast_to(a, full))
    prm = {p.name: p.default for p in spec.params}
    prm.update({k: v for k, v in hkw.items() if k in spec.param_names})
    with np.errstate(all="ignore"):
        raw = fn(*arrs, prm)
        kf = MULTI_KINKS.get(spec.name)
        kink = kf(*arrs, prm, float(np.finfo(cd).eps)) if kf is not None else None
        reduction = f.kw.get("reduction") or "mean"
        out = {}
        m = np.nan_to_num(np.asarray(raw["value"], dtype=np.float64), nan=0.0)
        out["terms"] = _times(_coef(f, cd, "none"), m)
        if reduction == "none":
            out["value"] = out["terms"]
        cf = _coef(f, cd, reduction, deriv=True)
        if spec.family == "rows":
            cf = cf[..., None]
        for key in ("grad", "hess"):
            if key not in raw:
                continue
            out[key] = {}
            for w, mm in zip(spec.differentiable, raw[key]):
                mm = np.nan_to_num(np.asarray(mm, dtype=np.float64), nan=0.0)
                out[key][w] = _sum_to(np.abs(_times(cf, mm)),
                                      np.shape(hin[spec.inputs.index(w)]))
        if kink is not None and np.any(kink):
            km = np.broadcast_to(kink[..., None], full) if spec.family == "rows" else kink
            out["kink"] = {w: _sum_to(km.astype(np.float64), np.shape(
                hin[spec.inputs.index(w)])) > 0 for w in spec.differentiable}
    return out


def taint(f, method, ref, hin, hkw):
    """The elements of each result that a NaN or infinite input or weight
    reaches: where the reference, given NaN in place of every such value,
    returns NaN (a list of masks, in the order of the flattened results), or
    None when there is no such value."""
    def bad(a):
        a = np.asarray(a)
        return a.dtype.kind in "fc" and not np.all(np.isfinite(a))
    arrays = dict(enumerate(hin))
    kwv = {k: v for k, v in hkw.items() if k in ("sample_weight", "pos_weight",
                                                  "class_weight", "cotangent")}
    if not any(bad(a) for a in arrays.values()) and not any(bad(v) for v in kwv.values()):
        return None

    def nanify(a):
        a = np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a
        if isinstance(a, np.ndarray) and a.dtype.kind == "f":
            a[~np.isfinite(a)] = np.nan
        return a
    soft = f.class_info is not None and f.class_info[3]
    ins = [nanify(a) if (k == 0 or f.class_info is None or soft) else a
           for k, a in arrays.items()]
    kw = dict(hkw)
    for k, v in kwv.items():
        kw[k] = nanify(v)
    r, e, _ = run_quiet(lambda: call_multi(ref, method, ins, kw))
    if e is not None:
        return None
    return [np.isnan(np.asarray(x, dtype=np.float64)) for x in _flat_results(method, r)]


def call_multi(obj, method, inputs, kw):
    if method == "value":
        return obj(*inputs, **kw)
    return getattr(obj, method)(*inputs, **kw)


def _flat_results(method, r):
    """[value?, derivative arrays...] of a result."""
    out = []

    def add(x):
        if isinstance(x, (tuple, list)):
            for y in x:
                add(y)
        else:
            out.append(x)
    add(r)
    return out


def _copy_out(o):
    if isinstance(o, (tuple, list)):
        return type(o)(_copy_out(x) for x in o)
    if isinstance(o, np.ndarray):
        return reference_kwargs({"out": o})["out"]
    return o


def _outs_flat(o):
    if isinstance(o, (tuple, list)):
        r = []
        for x in o:
            r += _outs_flat(x)
        return r
    return [o] if isinstance(o, np.ndarray) else []


def check_multi(c):
    spec = c.spec
    loss = fl.get(spec.name)
    ref = loss.reference
    f = c.faulted()
    note(f"{spec.name}.{f.method}: inputs "
         f"{[(np.asarray(a).dtype, np.shape(a), np.asarray(a).strides) for a in f.inputs]} "
         f"kw {({k: (np.shape(v) if isinstance(v, np.ndarray) else v) for k, v in f.kw.items()})}"
         f"; injected errors: {c.fault_names()}")
    out = f.kw.get("out")
    outs = _outs_flat(out)
    snaps = [snapshot(a) for a in f.inputs]
    ksnaps = {k: snapshot(v) for k, v in f.kw.items()
              if isinstance(v, (np.ndarray, list)) and k != "out"}
    out_snaps = [snapshot(o) for o in outs]
    rkw = {**f.kw, "out": _copy_out(out)} if out is not None else f.kw
    ref_res, ref_exc, _ = run_quiet(lambda: call_multi(
        ref, f.method, [native(f.inputs[0])] + list(f.inputs[1:]), rkw))
    fast_res, fast_exc, fast_warn = run_quiet(lambda: call_multi(loss, f.method, f.inputs, f.kw))
    for k, (a, snap) in enumerate(zip(f.inputs, snaps)):
        if any(o is a for o in outs):
            continue
        assert unchanged(a, snap), f"fastloss wrote into its input {spec.inputs[k]}"
    for k, snap in ksnaps.items():
        assert unchanged(f.kw[k], snap), f"fastloss wrote into {k}"

    kinds = {k for _, k, _ in c.faults}
    names = {p.name for p in spec.params}
    for k, v in f.kw.items():
        if k in names and k not in ("class_axis", "ignore_index"):
            pk = param_error_kind(spec, k, v)
            if pk is not None:
                kinds.add(pk)
    if c.faults:
        ckw = {**c.kw, "out": _copy_out(c.kw["out"])} if "out" in c.kw else c.kw
        _, e, _ = run_quiet(lambda: call_multi(ref, c.method, [native(c.inputs[0])]
                                               + list(c.inputs[1:]), ckw))
        if e is not None:
            kinds.add(kind_of(e))
    if ref_exc is not None:
        kinds.add(kind_of(ref_exc))
    if check_same_error(spec, kinds, fast_exc, ref_exc, outs, out_snaps):
        return

    if spec.name in UNCHECKED_TARGETS:
        with np.errstate(all="ignore"):
            t = np.asarray(snaps[1], dtype=np.float64)
        if not np.all(UNCHECKED_TARGETS[spec.name].contains(t)):
            return
    pred = np.asarray(snaps[0])
    cd, od = compute_dtypes(pred.dtype)
    hi = np.float64 if cd == np.float32 else HI
    orig = copy.copy(f)
    orig.inputs = snaps
    orig.sync()
    # the reference in higher precision on the inputs as the kernels see them
    hp, ht, hkw = hi_arguments(orig, cd, hi)
    hin = [hp, ht] + [upcast(a, cd, hi) for a in snaps[2:]]
    if "cotangent" in hkw:
        hkw["cotangent"] = upcast(hkw["cotangent"], cd, hi)
    hi_res, hi_exc, _ = run_quiet(lambda: call_multi(ref, f.method, hin, hkw))
    assert hi_exc is None, f"the reference failed in higher precision: {hi_exc!r}"
    # the tolerance: magnitudes times |cotangent| over the per-sample shape
    S = _sample_shape(orig)
    reduction = f.kw.get("reduction") or "mean"
    axis = _axis(f)
    cot = hkw.get("cotangent")
    if cot is not None:
        ca = np.abs(np.asarray(cot, dtype=np.float64))
        vshape = _value_shape(orig)
        ca = np.broadcast_to(ca, vshape)
        if reduction != "none" and axis is not None and reduction != "batchmean":
            ca = np.expand_dims(ca, tuple(sorted(a % len(S) for a in np.atleast_1d(axis))))
        orig.cot_factor = np.broadcast_to(ca, S) if S else ca
    two = spec.name in _TWO
    if two:
        mags = magnitudes(orig, hp, ht, hkw, cd)
        gm = {spec.differentiable[0]: mags.get("grad", 0.0)}
        hm = {spec.differentiable[0]: mags.get("hess", 0.0)}
        nan_d, nan_v = nan_allowed(orig, hp, ht, hkw)
        far = REFERENCE_NAN_FAR_TAIL.get(spec.name)
        finite_ok = bool(far and far(orig, hp, ht, hkw))
    else:
        mags = multi_magnitudes(orig, hin, hkw, cd)
        gm, hm = mags.get("grad", {}), mags.get("hess", {})
        nan_d = nan_v = False
        finite_ok = False
    tainted = taint(orig, f.method, ref, hin, hkw)
    wrt, single = _wrt(spec, f.kw)
    want_v = f.method in ("value", "value_and_grad")
    kinds_d = {"grad": ["grad"], "value_and_grad": ["grad"], "hessian": ["hess"],
               "grad_and_hessian": ["grad", "hess"]}.get(f.method, [])
    labels = (["value"] if want_v else []) + [(k, w) for k in kinds_d for w in wrt]
    hs, ls, fs = (_flat_results(f.method, r) for r in (hi_res, ref_res, fast_res))
    assert len(fs) == len(labels) == len(hs), (len(fs), labels, len(hs))
    if out is not None:
        for o, g in zip(outs, fs[len(fs) - len(outs):]):
            assert g is o, "a derivative is not its out= buffer"
    for i, (lab, g, h, lo) in enumerate(zip(labels, fs, hs, ls)):
        any_ok = tainted[i] if tainted is not None else False
        if lab == "value":
            if reduction == "none" or axis is not None:
                assert isinstance(g, np.ndarray) or (axis is not None and len(
                    np.atleast_1d(axis)) == len(S)), f"value: {type(g).__name__}"
            else:
                assert isinstance(g, np.generic), f"value: {type(g).__name__}, not a NumPy scalar"
            if reduction != "none":
                terms, e, _ = run_quiet(lambda: call_multi(ref, "value", hin, {
                    **{k: v for k, v in hkw.items() if k not in ("wrt", "cotangent")},
                    "reduction": "none", "axis": None}))
                assert e is None, e
                scale = reduced_scale(orig, terms, cd, mags.get("terms"))
                nv = nan_v if np.ndim(nan_v) == 0 else (
                    np.any(nan_v, axis=axis) if reduction != "batchmean" else np.any(nan_v))
            else:
                scale, nv = mags.get("value", 0.0), nan_v
            assert_match(g, h, lo, od, cd, scale, "value", nv, finite_ok, any_ok=any_ok)
            if reduction == "mean" and _zero_weight(orig, cd):
                assert any(issubclass(w.category, RuntimeWarning) for w in fast_warn), \
                    "mean over zero total weight without a RuntimeWarning"
            continue
        key, w = lab
        what = f"{'gradient' if key == 'grad' else 'hessian'} wrt {w}"
        assert isinstance(g, np.ndarray), f"{what}: {type(g).__name__}"
        assert g.shape == _operand_shape(orig, w), f"{what}: shape {g.shape}"
        sc = (gm if key == "grad" else hm).get(w, 0.0)
        kink = mags.get("kink", {}).get(w) if not two else None
        if kink is not None:
            any_ok = any_ok | kink
        nd = nan_d if w == spec.differentiable[0] else False
        zd = zero_denominator(orig, cd) if w == spec.inputs[0] else False
        if zd is not False and np.shape(zd) != g.shape:
            zd = False
        assert_match(g, h, lo, od, cd, sc, what, nd, finite_ok, zd, any_ok=any_ok)

    # thread-count invariance on calls big enough for the team
    if f.big and not outs:
        kw1 = dict(f.kw)
        r1 = call_multi(loss, f.method, f.inputs, {**kw1, "n_threads": 1})
        r2 = call_multi(loss, f.method, f.inputs, {**kw1, "n_threads": 2})
        for a, b in zip(_flat_results(f.method, r1), _flat_results(f.method, r2)):
            assert np.asarray(a).tobytes() == np.asarray(b).tobytes(), \
                "n_threads=1 and n_threads=2 differ in their bits"


@pytest.mark.parametrize("spec", ALL_SPECS, ids=ALL_IDS)
@settings(suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.large_base_example, HealthCheck.filter_too_much])
@given(data=st.data())
def test_fuzz_every_loss(spec, data):
    check_multi(draw_multi_case(data, spec))


# --------------------------------------------------------------- findings
#
# Minimal reproducers of what the fuzzer found, as plain deterministic tests
# (each names the rule it checks).  They fail until the implementation is
# fixed; the fuzz tests above find them again (and more) by themselves.

def _both(name, method, p, t, **kw):
    loss = fl.get(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return (np.asarray(call(loss, method, p, t, kw)),
                np.asarray(call(loss.reference, method, p, t, kw)))


def _same(got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    return got.shape == want.shape and bool(np.all(
        (got == want) | (np.isnan(got) & np.isnan(want))
        | (np.abs(got - want) <= 1e-6 * np.abs(want))))


@pytest.mark.parametrize("name, method, kw, pred, target", [
    # NaN (or inf) sample weight: s * 0 is NaN, as in NumPy and as the
    # elementwise losses and cross_entropy do; the reference gives NaN
    ("multi_margin", "grad", {"sample_weight": [np.nan]}, [[5.0, 0.0]], [0]),
    ("multi_margin", "hessian", {"sample_weight": [np.nan]}, [[1.0, 0.0]], [0]),
    ("nll", "grad", {"sample_weight": [np.nan]}, [[-1.0, -2.0]], [0]),
], ids=["multi_margin-grad", "multi_margin-hessian", "nll-grad"])
def test_found_nan_weight_propagates(name, method, kw, pred, target):
    got, want = _both(name, method, np.array(pred), np.array(target),
                      reduction="none", **{k: np.array(v) for k, v in kw.items()})
    assert _same(got, want), f"got {got}, expected {want}"


@pytest.mark.parametrize("dtype, w", [(np.float64, 1e-310), (np.float32, 1e-39)])
@pytest.mark.parametrize("name", ["mse", "cross_entropy"])
def test_found_mean_over_tiny_total_weight(name, dtype, w):
    """"mean" divides by sum(w): with a subnormal total weight, 1/sum(w)
    overflows, but w/sum(w) does not (the gradient here is w*g/sum(w))."""
    if name == "mse":
        p, t, sw = np.array([1.0, 3.0], dtype), np.zeros(2, dtype), np.full(2, w, dtype)
    else:
        p, t, sw = np.array([[0.0, 1.0]], dtype), np.array([0]), np.array([w], dtype)
    got, want = _both(name, "grad", p, t, sample_weight=sw)
    assert np.all(np.isfinite(got)) and _same(got, want), f"got {got}, expected {want}"


@pytest.mark.parametrize("beta", [5e-324, 1e-310])
def test_found_smooth_l1_subnormal_beta(beta):
    """beta is valid for any beta >= 0; at d == 0 the loss and its gradient
    are 0 (0.5*d**2/beta), not NaN (0 * (1/beta = inf))."""
    p = t = np.array([1.0, -2.0])
    for method in ("value", "grad"):
        got, want = _both("smooth_l1", method, p, t, beta=beta, reduction="none")
        assert _same(got, want) and not np.any(np.isnan(got)), f"{method}: got {got}, expected {want}"


@pytest.mark.parametrize("name", ["mae", "huber", "quantile"])
def test_found_derivative_where_d_is_nan(name):
    """y_pred and y_true the same infinity: d = inf - inf is NaN, the value
    is NaN, and so must the gradient be ("NaN propagates"), not 0 (mae,
    huber) or 1 - q (quantile).  The reference gave NaN for mae and huber but
    -q for quantile (its np.where sent the NaN residual to the r >= 0
    side).  Both now treat such an element as one with a NaN input (NaN
    value, gradient and Hessian, for every elementwise loss)."""
    p = t = np.array([np.inf, -np.inf])
    value = fl.get(name)(p, t, reduction="none")
    assert np.all(np.isnan(value))
    got = fl.get(name).grad(p, t, reduction="none")
    assert np.all(np.isnan(got)), f"value {value}, gradient {got}"
    want = fl.get(name).reference.grad(p, t, reduction="none")
    assert np.all(np.isnan(want)), f"reference gradient {want}"
    for L in (fl.get(name), fl.get(name).reference):
        h = L.hessian(p, t, reduction="none")
        assert np.all(np.isnan(h)), f"hessian {h}"


def test_found_poisson_inf_minus_inf():
    """poisson(+inf, +inf) = exp(inf) - inf*inf is an indeterminate form:
    the reference gives NaN (a limit exists only for a finite target)."""
    got, want = _both("poisson", "value", np.array([np.inf]), np.array([np.inf]),
                      reduction="none")
    assert _same(got, want), f"got {got}, expected {want}"


@pytest.mark.parametrize("name", ["hinge", "squared_hinge"])
@pytest.mark.parametrize("label", [0.5, 2.0, np.inf, -3.0])
def test_found_hinge_labels_outside_minus1_0_1(name, label):
    """Labels are -1 or +1 (0 means -1); the reference raises ValueError for
    any other target, fastloss computed with it.  Now both raise (SPEC
    section 5: labels in {-1, +1}, {0, 1} mapped to them)."""
    p, t = np.array([0.3, -0.2]), np.array([1.0, label])
    with pytest.raises(ValueError):
        fl.get(name).reference(p, t)
    with pytest.raises(ValueError):
        fl.get(name)(p, t)


def test_found_sigmoid_focal_infinite_gamma():
    """gamma must be finite (the reference: ValueError); fastloss accepted
    gamma=inf."""
    p, t = np.array([0.3, -0.2]), np.array([0.0, 1.0])
    with pytest.raises(ValueError):
        fl.sigmoid_focal.reference(p, t, gamma=np.inf)
    with pytest.raises(ValueError):
        fl.sigmoid_focal(p, t, gamma=np.inf)


def test_found_bce_float32_subnormal_probability():
    """binary_cross_entropy in float32 at a subnormal probability with
    target 0: the gradient (1-t)/(1-p) - t/p is 1, not NaN (0 * (1/p = inf))."""
    p, t = np.array([1e-40], np.float32), np.array([0.0], np.float32)
    for method in ("grad", "hessian"):
        got = getattr(fl.binary_cross_entropy, method)(p, t, reduction="none")
        assert got[0] == np.float32(1.0), f"{method}: got {got}, expected [1.]"


@pytest.mark.parametrize("power", [1.0000000000000002, 1.00000001, 1.9999999999999998])
def test_found_tweedie_float32_power_near_the_edges(power):
    """power is valid in (1, 2); for float32 inputs fastloss rounds it to
    float32 (1.0 or 2.0) before forming 1/(power-1) or 1/(2-power), giving
    NaN or +-inf where the loss is finite."""
    p, t = np.array([2.0], np.float32), np.array([1.0], np.float32)
    got = fl.tweedie(p, t, power=power, reduction="none")
    want = fl.tweedie.reference(p.astype(np.float64), t.astype(np.float64), power=power,
                                reduction="none")
    assert np.all(np.isfinite(got)) and np.allclose(got, want, rtol=1e-3), \
        f"got {got}, expected {want}"


@pytest.mark.parametrize("q", [0.9999999999999999, 1e-300])
def test_found_quantile_float32_q_near_the_edges(q):
    """q is valid in (0, 1); rounded to float32 it becomes 1.0 (or 0.0), and
    an infinite residual then gives 0 * inf = NaN instead of +inf."""
    p = np.array([-np.inf, np.inf], np.float32)
    got = fl.quantile(p, np.zeros(2, np.float32), q=q, reduction="none")
    assert np.all(got == np.inf), f"got {got}, expected [inf inf]"


@pytest.mark.parametrize("kw", [{"margin": None}, {"power": None}, {"class_axis": None}],
                         ids=lambda kw: next(iter(kw)))
def test_found_class_fast_path_takes_none_for_a_parameter(kw):
    """A parameter given as None is a TypeError (the reference and the
    generic path: int32 labels); the compiled fast path (2-D float logits,
    int64 labels) takes it as the default."""
    z = np.random.default_rng(0).standard_normal((8, 7))
    y = np.zeros(8, np.int64)
    with pytest.raises(TypeError):
        fl.multi_margin(z, y.astype(np.int32), **kw)
    with pytest.raises(TypeError):
        fl.multi_margin(z, y, **kw)


def test_found_cross_entropy_fast_path_takes_none_label_smoothing():
    z = np.random.default_rng(0).standard_normal((8, 7))
    with pytest.raises(TypeError):
        fl.cross_entropy(z, np.zeros(8, np.int32), label_smoothing=None)
    with pytest.raises(TypeError):
        fl.cross_entropy(z, np.zeros(8, np.int64), label_smoothing=None)


@pytest.mark.parametrize("bad", [2**63, 2**70], ids=["2**63", "2**70"])
def test_found_huge_integer_parameters(bad):
    """ignore_index beyond int64: the reference ignores nothing; fastloss
    raises OverflowError / a TypeError from np.isnan whose message names
    neither the loss nor the argument.  class_axis 2**70: ValueError
    (AxisError) expected, TypeError raised.  Labels that do equal such an
    ignore_index (uint64 or float labels) are ignored, as by the reference.
    Bool labels: the reference raised OverflowError itself (NumPy cannot
    compare a bool array with an int beyond int64); it now compares them as
    0/1 and ignores nothing."""
    z, y = np.zeros((2, 3)), np.array([0, 1])
    want = fl.cross_entropy.reference(z, y, ignore_index=bad)
    assert fl.cross_entropy(z, y, ignore_index=bad) == pytest.approx(want)
    with pytest.raises(ValueError, match="cross_entropy"):
        fl.cross_entropy(z, y, class_axis=bad)
    z = np.random.default_rng(0).standard_normal((3, 3))
    for y in (np.array([True, False, True]), np.array([0, 2, bad], np.uint64)
              if bad < 2**64 else np.array([0.0, 2.0, float(bad)])):
        for method in ("value", "grad"):
            got, want = _both("cross_entropy", method, z, y, ignore_index=bad)
            assert _same(got, want), f"{y.dtype} {method}: got {got}, expected {want}"


def test_found_empty_mean_with_nan_weight_warns():
    """A mean over an empty array is NaN with a RuntimeWarning -- also when
    the (broadcast) weights hold a NaN: their total over no element is 0."""
    p = np.zeros((0, 5))
    w = np.array([np.nan, 1, 1, 1, 1])
    with pytest.warns(RuntimeWarning):
        v = fl.mse(p, p, sample_weight=w)
    assert np.isnan(v)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_found_cross_entropy_probability_targets_tail(dtype):
    """Probability targets lose the tail that integer labels keep (SPEC: a
    few ulp, "including the tails"): logits [0, -50] with t = [1, 0] is
    log1p(exp(-50)) = 1.93e-22 with gradient [-1.93e-22, 1.93e-22]."""
    z = np.array([[0.0, -50.0]], dtype)
    t = np.array([[1.0, 0.0]], dtype)
    tail = np.log1p(np.exp(-50.0))
    assert fl.cross_entropy(z, np.array([0]), reduction="none")[0] == pytest.approx(tail)
    v = fl.cross_entropy(z, t, reduction="none")
    g = fl.cross_entropy.grad(z, t, reduction="none")
    assert v[0] == pytest.approx(tail, rel=1e-6), f"value {v}, expected [{tail}]"
    np.testing.assert_allclose(g, [[-tail, tail]], rtol=1e-6)


def test_found_cross_entropy_infinite_probability_target():
    """An infinite probability target on a class with -log p > 0: the loss is
    +inf (the reference), not NaN."""
    z = np.array([[0.0, -50.0], [3.0, 1.0]])
    t = np.array([[np.inf, 0.0], [np.inf, 0.0]])
    got, want = _both("cross_entropy", "value", z, t, reduction="none")
    assert _same(got, want), f"got {got}, expected {want}"


@pytest.mark.parametrize("name, z, kw", [
    ("cross_entropy", [[np.nan, 1.0], [0.0, 1.0]], {}),
    ("cross_entropy", [[0.5, 3.0], [0.0, 1.0]], {"class_weight": [1.0, np.inf]}),
    ("multi_margin", [[np.nan, 1.0], [0.0, 1.0]], {}),
], ids=["ce-nan-logit", "ce-inf-class-weight", "multi_margin-nan-logit"])
def test_found_zero_weight_sample_with_nan(name, z, kw):
    """A sample of weight 0 whose loss is NaN: 0 * NaN is NaN (NumPy, the
    reference, the elementwise losses, the class gradients); the class
    losses' values drop the sample instead."""
    y = np.array([1, 0]) if "class_weight" in kw else np.array([0, 0])
    kw = {k: np.array(v) for k, v in kw.items()}
    for reduction in ("none", "sum"):
        got, want = _both(name, "value", np.array(z), y, sample_weight=np.array([0.0, 1.0]),
                          reduction=reduction, **kw)
        assert _same(got, want), f"{reduction}: got {got}, expected {want}"


def test_found_sigmoid_focal_float32_huge_gamma():
    """gamma = 1e300 is valid (>= 0, finite); rounded to float32 it is inf,
    and the float32 kernel then returns NaN where the loss is +inf (the
    float64 kernel: +inf, as the reference)."""
    x = np.array([-np.inf, np.inf], np.float32)
    t = np.array([1.0, 0.0], np.float32)
    want = fl.sigmoid_focal.reference(x.astype(np.float64), t.astype(np.float64), gamma=1e300,
                                      reduction="none")
    assert np.all(want == np.inf)
    got = fl.sigmoid_focal(x, t, gamma=1e300, reduction="none")
    assert np.all(got == np.inf), f"got {got}, expected [inf inf]"


def _unaligned(a):
    a = np.asarray(a)
    buf = np.zeros(a.nbytes + 1, np.uint8)
    v = np.ndarray(a.shape, a.dtype, buffer=buf, offset=1)
    v[...] = a
    return v


@pytest.mark.parametrize("operand", ["class_weight", "sample_weight", "probabilities", "labels"])
@pytest.mark.parametrize("name", ["cross_entropy", "nll", "multi_margin"])
def test_found_class_operands_unaligned(name, operand):
    """Unaligned (but contiguous, native) class weights, sample weights,
    probability targets or labels reached the class kernels as they were:
    np.ascontiguousarray does not copy an unaligned contiguous array, and
    the kernels' loads were misaligned (undefined behaviour: UBSan's
    "load of misaligned address" in the sanitizer build, found by the
    fuzzer's "unaligned" layout there).  Results must equal those of
    aligned copies (the sanitizer build checks the loads)."""
    if name == "multi_margin" and operand == "probabilities":
        pytest.skip("multi_margin takes labels only")
    rng = np.random.default_rng(3)
    z = rng.standard_normal((40, 5)).astype(np.float32)
    kw = {}
    y = rng.integers(0, 5, 40)
    if operand == "probabilities":
        y = rng.dirichlet(np.ones(5), 40).astype(np.float32)
    if operand in ("class_weight", "sample_weight"):
        kw[operand] = np.linspace(0.5, 2, 5 if operand == "class_weight" else 40).astype(np.float32)
    L = fl.get(name)
    for method in ("value", "grad"):
        want = call(L, method, z, y, kw)
        if operand in kw:
            got = call(L, method, z, y, {operand: _unaligned(kw[operand])})
        else:
            got = call(L, method, z, _unaligned(y), kw)
        assert np.array_equal(got, want), f"{method}: got {got}, expected {want}"


def test_found_weighted_mean_coefficient_underflows_float32():
    """(fixed) A float32 "mean" whose weights span more than the float32
    range: the coefficient w_i / sum(w) of element 0 (1e-30 / 1e30) is 0 in
    float32, and an infinite derivative there gives 0 * inf = NaN; the
    reference (w_i * g_i first) gives inf.  Found by the "long" profile
    (tweedie); present on main before the issue-5 fixes, in the shared
    weighted-derivative scaling of every elementwise loss."""
    p = np.array([np.inf, 0.5], np.float32)
    t = np.array([4.0, 1.0], np.float32)
    w = np.array([1e-30, 1e30])
    got, want = _both("tweedie", "grad", p, t, sample_weight=w)
    assert want[0] == np.inf
    assert got[0] == np.inf, f"got {got}, expected {want}"


@pytest.mark.parametrize("name", ["cross_entropy", "nll"])
def test_found_ignored_samples_under_a_nan_denominator(name):
    """(fixed) A mean whose denominator is NaN (a NaN class weight on a
    counted sample): the ignored samples' derivative rows are exactly 0, as
    in PyTorch, where they never reach the scaling; the reference divided
    their zeros by the NaN denominator.  Found by the "long" profile."""
    nan = np.nan
    z = np.array([[[[nan, 0, 0], [0, 0, 0], [4, 4, 4]]]])
    if name == "nll":
        z = -np.abs(np.nan_to_num(z, nan=1.0))
    y = np.array([[[2, 2, 0]]])
    kw = dict(ignore_index=2, class_weight=np.array([nan, 0.067, 1.46]), axis=(0, 1, 2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        got, want = _both(name, "grad", z, y, **kw)
    assert np.array_equal(got[0, 0, :2], np.zeros((2, 3)))
    assert _same(got, want), f"got {got}, expected {want}"


@pytest.mark.parametrize("name", ["cross_entropy", "nll", "multi_margin", "mse"])
def test_found_zero_dim_subnormal_weight_crash(name):
    """(fixed) A segmentation fault found by the "long" profile: a 0-d
    sample weight whose total is subnormal made the mean rescale the weights
    (mean_scale), and NumPy returns a scalar, not an array, for a 0-d ufunc
    result; the binding then read a scalar object as an array.  The scaled
    weights are an array now, and the binding's casts are checked."""
    p = np.zeros(5) if name != "mse" else np.zeros(())
    t = np.array(1) if name != "mse" else np.ones(())
    # one sample: its mean is its loss whatever its positive weight (the
    # reference, forming w * l in subnormal arithmetic first, loses digits)
    loss = fl.get(name)
    for method in ("value", "grad"):
        got, _ = _both(name, method, p, t, sample_weight=np.array(5e-324))
        want = np.asarray(call(loss.reference, method, p, t, {}))
        assert _same(got, want), (method, got, want)


def test_found_cross_entropy_infinite_target_gradient():
    """(fixed) An infinite probability target makes the gradient's A
    infinite; the exact form used at the maximum ((A - w) - A (S-1)/S) gave
    inf - inf = NaN where the plain form's limit is inf (column path C <= 160
    and row path alike).  Found by the "long" profile."""
    t = np.array([[np.inf, 0.620965577336678, 0.44140039286947413]])
    for z in (np.array([[-np.inf, 0.0, 0.0]]), np.array([[-1.0, 0.0, 0.0]])):
        for C in (3, 303):
            zz = np.concatenate([z, np.full((1, C - 3), -5.0)], axis=1)
            tt = np.concatenate([t, np.zeros((1, C - 3))], axis=1)
            got, want = _both("cross_entropy", "grad", zz, tt)
            assert _same(got, want), (C, got[0, :3], want[0, :3])


@pytest.mark.parametrize("form", ["0-d", "number"])
@pytest.mark.parametrize("dtype", [np.float64, np.float32, np.int64], ids=["f64", "f32", "i64"])
@pytest.mark.parametrize("spec", [s for s in ALL_SPECS if len(s.differentiable) > 1],
                         ids=[s.name for s in ALL_SPECS if len(s.differentiable) > 1])
def test_found_gradient_of_a_scalar_input_has_its_shape(spec, dtype, form):
    """A differentiable input other than the first given as a 0-d array or a
    Python number (broadcast to the first input): its derivatives are sums,
    of shape ().  The compiled fast path returned them in the first input's
    shape (unsummed), the generic path as (1,) arrays (np.ascontiguousarray
    makes a 0-d array 1-d)."""
    loss = fl.get(spec.name)
    *arrs, _ = make_inputs(spec.name, (4, 3), np.float64, np.random.default_rng(1))
    arrs[0] = to_dtype(arrs[0] * (3 if dtype == np.int64 else 1), dtype)
    for k, op in enumerate(spec.operands):
        if k and op.differentiable:
            v = float(np.asarray(arrs[k]).flat[0])
            arrs[k] = np.array(v) if form == "0-d" else v
    methods = ["grad", "value_and_grad"] + (["hessian", "grad_and_hessian"]
                                            if spec.has_hessian else [])
    for m in methods:
        got = _flat_results(m, call_multi(loss, m, arrs, {}))
        want = _flat_results(m, call_multi(loss.reference, m, arrs, {}))
        for g, r in zip(got, want):
            assert np.shape(g) == np.shape(r), (m, np.shape(g), np.shape(r))
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(r, np.float64),
                                       rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)


@pytest.mark.parametrize("first", [5e-324, 1e-300, 1e300], ids=["5e-324", "1e-300", "1e300"])
@pytest.mark.parametrize("spec", ALL_SPECS, ids=ALL_IDS)
def test_found_float64_weights_beyond_float32_range(spec, first):
    """float64 sample weights of a float32 call are read rounded to float32
    (5e-324 and 1e-300 are 0, 1e300 is inf).  The mean's total weight was
    summed unrounded: for weights (5e-324, 0, ...) a total of 5e-324, whose
    rescaling factor 2**947 is inf in float32 -- NaN derivatives where they
    are 0 (zero total weight of the rounded weights), as the reference has."""
    loss = fl.get(spec.name)
    *arrs, _ = make_inputs(spec.name, (4, 3), np.float32, np.random.default_rng(2))
    S = (4, 3) if spec.family == "elementwise" else (4,)
    w = np.zeros(S)
    w.flat[0] = first
    for m in ("value", "grad") + (("hessian",) if spec.has_hessian else ()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = _flat_results(m, call_multi(loss, m, arrs, {"sample_weight": w}))
            want = _flat_results(m, call_multi(loss.reference, m, arrs, {"sample_weight": w}))
        for g, r in zip(got, want):
            np.testing.assert_allclose(np.asarray(g, np.float64), np.asarray(r, np.float64),
                                       rtol=1e-5, atol=1e-30, err_msg=m)
