"""ISA levels (SPEC section 9): every level this machine runs, against the
portable loops and against the float64 reference; FASTLOSS_SIMD at import.

The kernels are compiled once per level (src_c/isa.h) and ``_core.simd_select``
switches every call to one copy; the tests below switch level by level and
compare.  Levels the CPU or the build cannot run are reported as skipped
(``pytest -rs`` lists them), so a run on an AVX2 machine says that avx512 was
not exercised.

Bounds between levels (justified by how the copies differ):

* Per-element results (reduction="none" values, every gradient and Hessian)
  of the elementwise family are bit-identical at every level: the plain C
  loops are compiled with -ffp-contract=off (no FMA contraction at any
  width) and vmath's functions use the same operations in every lane.
* Sums differ only in the order of their float64 partial sums (the
  vectorised reduction has the level's width): |s - s_p| <= 2 ulp of the
  dtype of |s_p| plus n * 2^-52 * sum|terms| (the worst case of reordering
  n float64 additions).
* The row family's per-sample dot products and norms are float64 sums of D
  products in the level's order: within 64 * 2^-52 * D relative to the
  magnitude of the row's terms (the gradients of nearly collinear rows
  cancel, so the bound is on the magnitude, not on each element), plus one
  ulp of float32 (a result rounded once from slightly different doubles).
* Hand-vectorized loops (cross_entropy, multi_margin, hinge with packed
  labels) use their own exp polynomial, FMAs and lane order: float32 within
  16 ulp of the magnitude of their terms, float64 within 1e-13 relative.
"""
import os
import subprocess
import sys

import numpy as np
import pytest

import fastloss as fl
from fastloss import _core
from fastloss._registry import TABLE, make_inputs

LEVELS = ("avx512", "avx2", "sse2", "neon")
AVAILABLE = _core.simd_levels()
SHAPES = {"elementwise": (70001,), "class": (3001, 37), "rows": (513, 67)}
IDS = [s.name for s in TABLE]
REF_RTOL = {np.float64: 1e-12, np.float32: 3e-6}


@pytest.fixture
def at_level():
    """Switches to a level for one test, back to the import's afterwards."""
    start = _core.simd_level()
    loops = _core.simd_loops()

    def switch(level):
        if level != "portable" and level not in AVAILABLE:
            pytest.skip(f"this CPU or build cannot run {level} (it runs {', '.join(AVAILABLE)})")
        _prev, ok = _core.simd_select(level)
        assert ok and _core.simd_level() == level
    yield switch
    _core.simd_select(start if start in AVAILABLE else "native")
    _core.simd_loops(loops)


def evaluate(spec, dtype, nthreads=None, seed=1):
    """Every output of one loss: reduction="none" values, the derivatives of
    every differentiable input (and Hessians), and the sum."""
    *arrays, kw = make_inputs(spec.name, SHAPES[spec.family], dtype, np.random.default_rng(seed))
    loss = fl.losses[spec.name]
    kw = dict(kw, n_threads=nthreads) if nthreads else kw
    wrt = spec.differentiable
    v, g = loss.value_and_grad(*arrays, reduction="none", wrt=wrt, **kw)
    out = {"value": v, "sum": loss(*arrays, reduction="sum", **kw)}
    for name, a in zip(wrt, g):
        out["d/d" + name] = a
    if spec.has_hessian:
        for name, a in zip(wrt, loss.hessian(*arrays, reduction="none", wrt=wrt, **kw)):
            out["hessian " + name] = a
    return out, arrays


def hand_loops(spec):
    return spec.family == "class" or spec.name in ("hinge", "squared_hinge")


def check_vs_portable(spec, dtype, got, base, level):
    eps = float(np.finfo(dtype).eps)
    what = f"{spec.name} {np.dtype(dtype).name} at {level}"
    terms = np.abs(np.asarray(base["value"], np.float64))
    n = terms.size
    for key, b in base.items():
        a = np.asarray(got[key], np.float64)
        b = np.asarray(b, np.float64)
        if key == "sum":
            bound = 2 * eps * abs(float(b)) + n * 2.0 ** -52 * float(terms.sum())
            assert abs(float(a) - float(b)) <= bound, f"{what} sum: {a} vs {b}, bound {bound:.3g}"
        elif spec.family == "elementwise" and not hand_loops(spec):
            np.testing.assert_array_equal(a, b, err_msg=f"{what} {key}: not bit-identical")
        elif spec.family == "rows":
            D = SHAPES["rows"][-1]
            mag = max(float(np.max(np.abs(b))), 1e-300)
            np.testing.assert_allclose(a, b, rtol=2 * eps if dtype == np.float32 else 0,
                                       atol=64 * 2.0 ** -52 * D * mag + (eps * mag if dtype == np.float32 else 0),
                                       err_msg=f"{what} {key}")
        else:
            mag = max(float(np.max(np.abs(b))), 1e-300)
            if dtype == np.float32:
                np.testing.assert_allclose(a, b, rtol=16 * eps, atol=16 * eps * mag,
                                           err_msg=f"{what} {key}")
            else:
                np.testing.assert_allclose(a, b, rtol=1e-13, atol=1e-13 * mag,
                                           err_msg=f"{what} {key}")


@pytest.mark.parametrize("level", LEVELS)
@pytest.mark.parametrize("spec", TABLE, ids=IDS)
def test_level_matches_portable(at_level, spec, level):
    """Each level against the portable loops, within the bounds above."""
    for dtype in (np.float32, np.float64):
        at_level("portable")
        base, _ = evaluate(spec, dtype)
        at_level(level)
        got, _ = evaluate(spec, dtype)
        check_vs_portable(spec, dtype, got, base, level)


@pytest.mark.parametrize("level", LEVELS + ("portable",))
@pytest.mark.parametrize("spec", TABLE, ids=IDS)
def test_level_matches_reference(at_level, spec, level):
    """Each level against the float64 reference (the suite's accuracy bounds,
    relative to the largest magnitude of each output), and the same bits at 1
    and 2 threads."""
    at_level(level)
    for dtype in (np.float32, np.float64):
        got, arrays = evaluate(spec, dtype, nthreads=1)
        again, _ = evaluate(spec, dtype, nthreads=2)
        for key in got:
            np.testing.assert_array_equal(np.asarray(got[key]), np.asarray(again[key]),
                                          err_msg=f"{spec.name} {key} at {level}: 1 vs 2 threads")
        ref = fl.losses[spec.name].reference
        a64 = [a.astype(np.float64) if a.dtype.kind == "f" else a for a in arrays]
        wrt = spec.differentiable
        want = {"value": ref(*a64, reduction="none"), "sum": ref(*a64, reduction="sum")}
        for name, g in zip(wrt, ref.grad(*a64, reduction="none", wrt=wrt)):
            want["d/d" + name] = g
        if spec.has_hessian:
            for name, h in zip(wrt, ref.hessian(*a64, reduction="none", wrt=wrt)):
                want["hessian " + name] = h
        rtol = REF_RTOL[dtype]
        for key, w in want.items():
            a = np.asarray(got[key], np.float64)
            w = np.asarray(w, np.float64)
            scale = max(float(np.max(np.abs(w))), 1e-300)
            err = float(np.max(np.abs(a - w)))
            assert err <= rtol * scale, (f"{spec.name} {np.dtype(dtype).name} {key} at {level}: "
                                         f"max error {err:.3g} > {rtol:g} * {scale:.3g}")


def run_import(env_value, code="import fastloss; print(fastloss.show_config(False)['simd'])"):
    env = dict(os.environ, FASTLOSS_SIMD=env_value)
    return subprocess.run([sys.executable, "-W", "always", "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("level", LEVELS + ("portable", "native"))
def test_environment_selects_the_level(level):
    r = run_import(level)
    if level in AVAILABLE or level == "portable":
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-1] == level
        assert "RuntimeWarning" not in r.stderr
    elif level == "native":
        assert r.returncode == 0, r.stderr
        assert r.stdout.split()[-1] == AVAILABLE[0]
    else:
        # a level this CPU lacks: a RuntimeWarning naming it, and the best level
        assert r.returncode == 0, r.stderr
        assert "RuntimeWarning" in r.stderr and f"FASTLOSS_SIMD={level}" in r.stderr
        assert r.stdout.split()[-1] == AVAILABLE[0]


def test_environment_rejects_an_unknown_level():
    r = run_import("avx1024")
    assert r.returncode != 0
    assert "ValueError" in r.stderr and "FASTLOSS_SIMD='avx1024'" in r.stderr
    assert "native, avx512, avx2, sse2, neon, portable" in r.stderr


def test_environment_is_case_and_space_tolerant():
    r = run_import(" Portable ")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[-1] == "portable"


def test_show_config_reports_the_level(at_level):
    at_level("portable")
    cfg = fl.show_config(False)
    assert cfg["simd"] == "portable"
    assert cfg["simd_levels"].split(",")[-1] == "portable"
    at_level(AVAILABLE[0])
    assert fl.show_config(False)["simd"] == AVAILABLE[0]


def test_simd_select_rejects_unknown_names():
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _core.simd_select("mmx")
    with pytest.raises(ValueError, match="unknown SIMD level"):
        _core.simd_select(3)
