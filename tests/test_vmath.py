"""Accuracy, special-value and vectorization tests for src_c/vmath.h.

tests/c/vmath_shim.c (which includes the header and applies every function to
an array inside ``#pragma omp simd`` loops) is compiled with the flags used for
the fastloss kernels, once for the default x86-64 (SSE2) target and, when the
CPU supports them, once with -mavx2 -mfma and once with AVX-512.  Each build is
loaded with ctypes and checked against independent oracles:

* float functions: numpy float64 results (error < 2^-52 relative, i.e. far
  below a float ulp); the float32 error is measured in float32 ulps of the
  exact value (subnormal spacing below 2^-126).
* double functions: np.longdouble (x87 80-bit, 64-bit mantissa: the glibc
  long double functions are accurate to a few 2^-64, i.e. < 0.01 double ulp)
  on ~10^6 points, and mpmath at 60 digits on a 20,000-point subsample that
  includes all edge points.

The asserted bounds are the ones promised at the top of src_c/vmath.h.
"""
import ctypes
import math
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "c", "vmath_shim.c")

CFLAGS = ["-O3", "-fopenmp-simd", "-fno-math-errno", "-fno-trapping-math",
          "-shared", "-fPIC", "-Wall", "-Wextra", "-Werror"]

ISAS = {
    "sse2": ([], []),
    "avx2": (["-mavx2", "-mfma"], ["avx2", "fma"]),
    "avx512": (["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw"],
               ["avx512f", "avx512dq", "avx512vl", "avx512bw"]),
}

FUNCS = ["exp", "log", "log1p", "expm1", "tanh"]

# max ulp error promised in the header comment of src_c/vmath.h
BOUND = {
    ("exp", "f"): 1.0, ("exp", "d"): 1.0,
    ("log", "f"): 1.0, ("log", "d"): 1.0,
    ("log1p", "f"): 1.0, ("log1p", "d"): 1.0,
    ("expm1", "f"): 1.5, ("expm1", "d"): 1.5,
    ("tanh", "f"): 1.5, ("tanh", "d"): 1.5,
}

N_RANDOM = 1_000_000
N_MPMATH = 20_000


# --------------------------------------------------------------------------
# building / loading the shim


def _cpu_flags():
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def _vec_loop_spans():
    """(first, last) line of every function whose loop is tagged VEC-LOOP."""
    lines = open(SHIM).read().split("\n")
    spans = []
    for i, line in enumerate(lines, 1):
        if "VEC-LOOP" in line and line.lstrip().startswith("for"):
            end = i
            while not lines[end - 1].startswith("}"):
                end += 1
            spans.append((i, end))
    return spans


class Lib:
    def __init__(self, path, report, isa):
        self.isa = isa
        self.report = report
        self.cdll = ctypes.CDLL(path)
        for name in FUNCS:
            for suffix, ctype in (("f", ctypes.c_float), ("", ctypes.c_double)):
                fn = getattr(self.cdll, "vm_" + name + suffix)
                fn.restype = None
                fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]

    def __call__(self, name, kind, x):
        dt = np.float32 if kind == "f" else np.float64
        x = np.ascontiguousarray(x, dtype=dt)
        y = np.empty_like(x)
        fn = getattr(self.cdll, "vm_" + name + ("f" if kind == "f" else ""))
        fn(x.ctypes.data, y.ctypes.data, x.size)
        return y


@pytest.fixture(scope="module", params=list(ISAS))
def lib(request, tmp_path_factory):
    isa = request.param
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc not found: cannot build the vmath test shim")
    flags, needed = ISAS[isa]
    missing = [f for f in needed if f not in _cpu_flags()]
    if missing:
        pytest.skip("CPU lacks %s for the %s build" % (",".join(missing), isa))
    d = tmp_path_factory.mktemp("vmath_" + isa)
    so = str(d / "vmath_shim.so")
    rep = str(d / "vec.txt")
    cmd = [gcc] + CFLAGS + flags + ["-fopt-info-vec-optimized=" + rep, "-o", so, SHIM]
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, "shim build failed:\n%s\n%s" % (" ".join(cmd), res.stderr)
    with open(rep) as fh:
        report = fh.read()
    return Lib(so, report, isa)


# --------------------------------------------------------------------------
# ulp measurement


def _exact_parts(exact, p, emin, fmax):
    """Split exact values (float64 or longdouble array) into the correctly
    rounded target value hi (inf on overflow), the ulp u of the exact value
    in the target format and frac = (exact - hi)/u, all as float64."""
    exact = np.asarray(exact)
    with np.errstate(all="ignore"):
        _, e = np.frexp(exact)
        E = np.where(exact == 0, emin, np.maximum(e.astype(np.int64) - 1, emin))
        one = np.ones_like(exact)
        u = np.ldexp(one, (E - (p - 1)).astype(np.int32))
        scaled = exact / u
        n = np.rint(scaled)
        frac = (scaled - n).astype(np.float64)
        hi = (n * u)
        hi = np.where(np.abs(hi) > fmax, np.copysign(np.inf, exact), hi)
        hi = np.where(np.isinf(exact), exact, hi).astype(np.float64)
    return hi, u.astype(np.float64), frac


def _ulp_err(y, parts):
    hi, u, frac = parts
    y = np.asarray(y, dtype=np.float64)
    with np.errstate(all="ignore"):
        err = np.abs((y - hi) / u - frac)
    err = np.where(np.isinf(hi) | np.isinf(y), np.where(y == hi, 0.0, np.inf), err)
    nan_y, nan_e = np.isnan(y), np.isnan(hi)
    err = np.where(nan_y | nan_e, np.where(nan_y & nan_e, 0.0, np.inf), err)
    return err


def parts_f32(exact64):
    return _exact_parts(np.asarray(exact64, np.float64), 24, -126,
                        float(np.finfo(np.float32).max))


def parts_f64(exact_ld):
    return _exact_parts(np.asarray(exact_ld, np.longdouble), 53, -1022,
                        float(np.finfo(np.float64).max))


def parts_mp(xs, fn):
    import mpmath as mp
    hi = np.empty(len(xs))
    u = np.empty(len(xs))
    frac = np.empty(len(xs))
    with mp.workdps(60):
        for i, x in enumerate(xs):
            v = fn(mp.mpf(float(x)))
            if v == 0:
                hi[i], u[i], frac[i] = 0.0, 2.0 ** -1074, 0.0
                continue
            if mp.isinf(v) or mp.isnan(v):
                hi[i], u[i], frac[i] = float(v), 1.0, 0.0
                continue
            _, e = mp.frexp(v)
            E = max(int(e) - 1, -1022)
            uu = mp.ldexp(1, E - 52)
            s = v / uu
            n = mp.nint(s)
            h = float(n * uu)           # exact (or inf on overflow)
            hi[i], u[i], frac[i] = h, float(uu), float(s - n)
    return hi, u, frac


# --------------------------------------------------------------------------
# inputs and oracles

_NP = {"exp": np.exp, "log": np.log, "log1p": np.log1p, "expm1": np.expm1,
       "tanh": np.tanh}

# (lo, hi) of the interesting domain; outside it results are 0/inf/-1/+-1/nan
DOMAIN = {
    ("exp", "f"): (-110.0, 90.0), ("exp", "d"): (-750.0, 710.0),
    ("log", "f"): (0.0, np.inf), ("log", "d"): (0.0, np.inf),
    ("log1p", "f"): (-1.0, np.inf), ("log1p", "d"): (-1.0, np.inf),
    ("expm1", "f"): (-20.0, 90.0), ("expm1", "d"): (-45.0, 710.0),
    ("tanh", "f"): (-np.inf, np.inf), ("tanh", "d"): (-np.inf, np.inf),
}


def _anchors(name, kind):
    ln2 = math.log(2.0)
    tiny = [2.0 ** -149, 2.0 ** -140, 2.0 ** -126, 1e-30, 1e-20, 1e-10, 1e-8,
            2.0 ** -24, 2.0 ** -12, 0.5, 1.0, 2.0]
    if kind == "d":
        tiny += [5e-324, 2.0 ** -1060, 2.0 ** -1022, 1e-300, 1e-100, 2.0 ** -53]
    red = [(j + 0.5) * ln2 for j in range(-4, 4)] + [j * ln2 for j in range(-4, 5)]
    if name == "exp":
        big = ([88.72283935546875, 88.7, 89.0, -87.33654, -103.27893, -103.97208,
                -104.0, -100.0] if kind == "f" else
               [709.782712893384, 709.7, 710.0, -708.3964185322641,
                -744.44007192138126, -745.1332191019411, -745.2, -740.0])
        return tiny + [-t for t in tiny] + red + big + [-10.0, 10.0, 50.0, -50.0]
    if name == "expm1":
        big = ([88.72283935546875, 89.0, -17.32868, -16.6, -17.0, -18.0, 16.6,
                17.3, 22.18] if kind == "f" else
               [709.782712893384, 709.7, -37.42994775023705, -38.0, 36.7, 37.5,
                44.4, -44.0])
        return tiny + [-t for t in tiny] + red + big + [-10.0, 10.0]
    if name == "log":
        fmax = float(np.finfo(np.float32 if kind == "f" else np.float64).max)
        return tiny + [math.sqrt(0.5), math.sqrt(2.0), 1.0, 2.0, 3.0, 10.0,
                       0.75, 1.5, 1e10, 1e30, fmax, 1.0 - 1e-7, 1.0 + 1e-7]
    if name == "log1p":
        fmax = float(np.finfo(np.float32 if kind == "f" else np.float64).max)
        return (tiny + [-t for t in tiny if t < 1] +
                [math.sqrt(2) - 1, math.sqrt(0.5) - 1, -0.5, -0.75, -0.9, -0.99,
                 -0.999999, 0.4, 1.0, 1.5, 3.0, 1e10, 1e30, fmax,
                 -1.0 + 2.0 ** -24, -1.0 + 2.0 ** -53])
    if name == "tanh":
        big = [0.5494, 0.549306, 0.55, 0.3, 0.1, 1.0, 2.0, 5.0, 9.01, 9.1, 19.06,
               20.0, 22.0, 100.0]
        return tiny + big + [-t for t in tiny + big]
    raise KeyError(name)


def _in_domain(x, name, kind):
    lo, hi = DOMAIN[(name, kind)]
    ok = np.isfinite(x) & (x >= lo) & (x <= hi)
    if name in ("log",):
        ok &= x > 0
    if name == "log1p":
        ok &= x > -1
    return ok


def make_inputs(name, kind, n, seed):
    """Random inputs: 1/3 random bit patterns (log-uniform over the whole
    format, both signs), 1/3 log-uniform magnitudes over the domain, 1/3
    uniform over the domain (or its central part for unbounded domains),
    plus edge points (anchors and their neighbours +-8 ulp)."""
    dt = np.float32 if kind == "f" else np.float64
    it = np.uint32 if kind == "f" else np.uint64
    rng = np.random.default_rng(seed)
    lo, hi = DOMAIN[(name, kind)]
    parts = []
    bits = rng.integers(0, np.iinfo(it).max, size=2 * n, dtype=it, endpoint=True)
    xb = bits.view(dt)
    parts.append(xb[_in_domain(xb, name, kind)][: n // 3])
    amax = min(max(abs(lo), abs(hi)), 1e30 if kind == "f" else 1e300)
    mag = np.exp(rng.uniform(math.log(1e-12), math.log(amax), size=2 * n))
    sgn = np.where(rng.random(2 * n) < 0.5, -1.0, 1.0)
    xl = (mag * sgn).astype(dt)
    parts.append(xl[_in_domain(xl, name, kind)][: n // 3])
    ulo = max(lo, -50.0) if name in ("exp", "expm1") else max(lo, -30.0)
    uhi = min(hi, 50.0 if name in ("exp", "expm1") else 30.0)
    xu = rng.uniform(ulo, uhi, size=n // 3).astype(dt)
    if name == "log1p":
        # dense coverage of (-1, -0.5] too
        xu[: n // 12] = (-1.0 + np.exp(rng.uniform(math.log(2.0 ** -52), 0,
                                                     size=n // 12))).astype(dt)
    parts.append(xu[_in_domain(xu, name, kind)])
    parts.append(edge_inputs(name, kind))
    return np.concatenate(parts).astype(dt)


def edge_inputs(name, kind):
    dt = np.float32 if kind == "f" else np.float64
    a = np.array(_anchors(name, kind), dtype=np.float64).astype(dt)
    a = a[np.isfinite(a)]
    out = [a]
    up, dn = a.copy(), a.copy()
    with np.errstate(all="ignore"):
        for _ in range(8):
            up = np.nextafter(up, dt(np.inf))
            dn = np.nextafter(dn, dt(-np.inf))
            out += [up, dn]
    x = np.concatenate(out)
    x = x[_in_domain(x, name, kind)]
    return np.unique(x)


_CACHE = {}


def float_case(name):
    key = (name, "f")
    if key not in _CACHE:
        x = make_inputs(name, "f", N_RANDOM, seed=1234 + FUNCS.index(name))
        with np.errstate(all="ignore"):
            exact = _NP[name](x.astype(np.float64))
        _CACHE[key] = (x, parts_f32(exact))
    return _CACHE[key]


def double_case_ld(name):
    key = (name, "d-ld")
    if key not in _CACHE:
        x = make_inputs(name, "d", N_RANDOM, seed=4321 + FUNCS.index(name))
        with np.errstate(all="ignore"):
            exact = _NP[name](x.astype(np.longdouble))
        _CACHE[key] = (x, parts_f64(exact))
    return _CACHE[key]


def double_case_mp(name):
    key = (name, "d-mp")
    if key not in _CACHE:
        import mpmath as mp
        fns = {"exp": mp.exp, "log": mp.log, "log1p": mp.log1p,
               "expm1": mp.expm1, "tanh": mp.tanh}
        edges = edge_inputs(name, "d")
        x = make_inputs(name, "d", 3 * N_MPMATH, seed=999 + FUNCS.index(name))
        rng = np.random.default_rng(7)
        x = rng.choice(x, size=N_MPMATH - edges.size, replace=False)
        x = np.concatenate([edges, x])
        _CACHE[key] = (x, parts_mp(x, fns[name]))
    return _CACHE[key]


def _check_bound(err, x, name, kind, lib, what):
    bound = BOUND[(name, kind)]
    i = int(np.argmax(err))
    worst = err[i]
    assert worst <= bound, (
        "%s fl_%s%s [%s build, %s]: max error %.3f ulp > %.1f at x=%r"
        % (name, name, "f" if kind == "f" else "", lib.isa, what, worst, bound,
           float(x[i])))
    return worst


# --------------------------------------------------------------------------
# tests


def test_loops_vectorized(lib):
    """Every VEC-LOOP in the shim must be reported as vectorized."""
    vec_lines = set()
    for m in re.finditer(r"vmath_shim\.c:(\d+):\d+: optimized: loop vectorized",
                         lib.report):
        vec_lines.add(int(m.group(1)))
    spans = _vec_loop_spans()
    assert len(spans) >= 10
    for first, last in spans:
        assert any(first <= ln <= last for ln in vec_lines), (
            "loop at tests/c/vmath_shim.c:%d not vectorized in the %s build"
            % (first, lib.isa))


@pytest.mark.parametrize("name", FUNCS)
def test_float_ulp(lib, name):
    x, parts = float_case(name)
    y = lib(name, "f", x)
    err = _ulp_err(y, parts)
    _check_bound(err, x, name, "f", lib, "%d points, float64 oracle" % x.size)


@pytest.mark.parametrize("name", FUNCS)
def test_double_ulp_longdouble(lib, name):
    x, parts = double_case_ld(name)
    y = lib(name, "d", x)
    err = _ulp_err(y, parts)
    _check_bound(err, x, name, "d", lib, "%d points, long double oracle" % x.size)


@pytest.mark.parametrize("name", FUNCS)
def test_double_ulp_mpmath(lib, name):
    x, parts = double_case_mp(name)
    y = lib(name, "d", x)
    err = _ulp_err(y, parts)
    _check_bound(err, x, name, "d", lib, "%d points, mpmath 60 digits" % x.size)


INF, NAN = float("inf"), float("nan")

SPECIALS = {
    "exp": [(INF, INF), (-INF, 0.0), (NAN, NAN), (-NAN, NAN), (0.0, 1.0),
            (-0.0, 1.0), (1e10, INF), (-1e10, 0.0), ("max", INF), ("-max", 0.0)],
    "log": [(0.0, -INF), (-0.0, -INF), (-1.0, NAN), (-1e-30, NAN), ("-min", NAN),
            (-INF, NAN), (INF, INF), (NAN, NAN), (-NAN, NAN), (1.0, 0.0)],
    "log1p": [(-1.0, -INF), (-1.5, NAN), (-INF, NAN), (INF, INF), (NAN, NAN),
              (-NAN, NAN), (0.0, 0.0), (-0.0, -0.0), ("min", "min"),
              ("-min", "-min")],
    "expm1": [(-INF, -1.0), (INF, INF), (NAN, NAN), (-NAN, NAN), (0.0, 0.0),
              (-0.0, -0.0), (1e10, INF), ("max", INF), (-1e10, -1.0),
              ("-max", -1.0), ("min", "min"), ("-min", "-min")],
    "tanh": [(INF, 1.0), (-INF, -1.0), (NAN, NAN), (-NAN, NAN), (0.0, 0.0),
             (-0.0, -0.0), ("max", 1.0), ("-max", -1.0), (50.0, 1.0),
             (-50.0, -1.0), ("min", "min"), ("-min", "-min")],
}


def _val(v, dt):
    if isinstance(v, str):
        fi = np.finfo(dt)
        base = {"max": fi.max, "min": fi.smallest_subnormal}[v.lstrip("-")]
        return -base if v.startswith("-") else base
    return v


@pytest.mark.parametrize("kind", ["f", "d"])
@pytest.mark.parametrize("name", FUNCS)
def test_special_values(lib, name, kind):
    dt = np.float32 if kind == "f" else np.float64
    cases = SPECIALS[name]
    x = np.array([_val(a, dt) for a, _ in cases], dtype=dt)
    want = np.array([_val(b, dt) for _, b in cases], dtype=dt)
    # pad so that both the vector body and the scalar/masked tail see them
    xx = np.concatenate([x, x[::-1], x[:3]])
    ww = np.concatenate([want, want[::-1], want[:3]])
    y = lib(name, kind, xx)
    for xi, yi, wi in zip(xx, y, ww):
        if np.isnan(wi):
            assert np.isnan(yi), "fl_%s(%r) = %r, want nan" % (name, xi, yi)
        else:
            assert yi == wi and np.signbit(yi) == np.signbit(wi), (
                "fl_%s%s(%r) = %r, want %r [%s build]"
                % (name, kind if kind == "f" else "", xi, yi, wi, lib.isa))


def test_tails(lib):
    """Relative accuracy in the tails (values from the spec)."""
    d = lambda name, v: float(lib(name, "d", np.array([v]))[0])
    f = lambda name, v: float(lib(name, "f", np.array([v], np.float32))[0])
    assert d("expm1", 1e-10) == pytest.approx(1.00000000005e-10, rel=2e-16)
    assert f("expm1", 1e-10) == np.float32(1e-10)
    assert d("log1p", 1e-30) == 1e-30
    assert f("log1p", 1e-30) == np.float32(1e-30)
    assert d("tanh", 1e-20) == 1e-20
    assert f("tanh", 1e-20) == np.float32(1e-20)
    assert d("tanh", -1e-300) == -1e-300
    y = d("exp", -740.0)
    assert 0 < y < 2.2250738585072014e-308 and y == pytest.approx(4.2e-322, rel=0.02)
    assert d("exp", -745.0) == 5e-324                     # min subnormal
    assert d("exp", -746.0) == 0.0
    yf = f("exp", -100.0)
    assert yf == pytest.approx(3.7200760e-44, rel=0.05) and yf > 0
    assert f("exp", -103.5) == np.float32(1.4e-45)        # min subnormal
    assert d("log", 5e-324) == pytest.approx(-744.4400719213812, rel=1e-16)
    assert f("log", 1.4e-45) == np.float32(-103.27893)
    assert d("log1p", -1.0 + 2.0 ** -53) == pytest.approx(math.log(2.0 ** -53), rel=1e-16)
    assert d("expm1", 709.78) == pytest.approx(math.expm1(709.78), rel=1e-16)
    x32 = float(np.float32(88.72))
    assert f("expm1", x32) == pytest.approx(math.expm1(x32), rel=1e-7)


def test_reduction_kernels(lib):
    """Loss-shaped reduction loops built on the functions agree with numpy."""
    rng = np.random.default_rng(3)
    x = rng.normal(scale=5.0, size=10_007)
    g = np.empty_like(x)
    lib.cdll.vm_softplus_sum.restype = ctypes.c_double
    lib.cdll.vm_softplus_sum.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
    s = lib.cdll.vm_softplus_sum(x.ctypes.data, g.ctypes.data, x.size)
    assert s == pytest.approx(np.logaddexp(0.0, x).sum(), rel=1e-13)
    np.testing.assert_allclose(g, 1.0 / (1.0 + np.exp(-x)), rtol=1e-15)
    xf = x.astype(np.float32)
    gf = np.empty_like(xf)
    lib.cdll.vm_softplus_sumf.restype = ctypes.c_float
    lib.cdll.vm_softplus_sumf.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_long]
    sf = lib.cdll.vm_softplus_sumf(xf.ctypes.data, gf.ctypes.data, xf.size)
    assert sf == pytest.approx(np.logaddexp(0.0, xf.astype(np.float64)).sum(), rel=1e-5)
    np.testing.assert_allclose(gf, 1.0 / (1.0 + np.exp(-xf.astype(np.float64))),
                               rtol=3e-7)
