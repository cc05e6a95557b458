"""The row family's C driver, through _core.row_call directly.

Checked against the NumPy reference (fastloss._reference_rows) and torch's
float64 autograd; thread-count independence, broadcast rows, weights, scale,
every mode, chunk boundaries, small and odd D, n = 0, NaN, kinks, infinite
inputs, the scaled slow path and the binding's checks.
"""
import itertools

import numpy as np
import pytest

from fastloss import _core as C
from fastloss._reference_rows import (cosine_embedding_parts, pairwise_distance_parts,
                                      triplet_margin_parts)

COS = C.ROW_KERNELS["cosine_embedding"]
TRI = C.ROW_KERNELS["triplet_margin"]
ALL = C.MODE_SUM | C.MODE_VAL | C.MODE_GRAD
U32 = 2.0 ** -24


def run(kernel, xs, y=None, sw=None, prm=(), mode=ALL, want=None, scale=1.0, nt=1, n=None):
    xs = [np.ascontiguousarray(x) for x in xs]
    if n is None:
        n = max(x.shape[0] for x in xs) if all(x.shape[0] for x in xs) else 0
    D = xs[0].shape[1]
    dt = xs[0].dtype
    if want is None:
        want = [True] * len(xs)
    val = np.full(n, -7, dt) if mode & C.MODE_VAL else None
    grads = [np.full((n, D), -7, dt) if (mode & C.MODE_GRAD and w) else None for w in want]
    s = C.row_call(kernel, mode, n, tuple(prm), xs, y, sw, val, grads, scale, nt)
    return s, val, grads


def tri_prm(margin=1.0, p=2.0, eps=1e-6, swap=False):
    return (margin, p, eps, 1.0 if swap else 0.0)


def rand(shape, dt=np.float64, seed=0):
    return np.random.default_rng(seed).standard_normal(shape).astype(dt)


def labels(n, dt=np.float64, seed=1):
    return np.random.default_rng(seed).choice([-1.0, 1.0], size=n).astype(dt)


def close(got, ref, rtol, scale=None):
    ref = np.asarray(ref, dtype=np.float64)
    got = np.asarray(got, dtype=np.float64)
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    m = np.isfinite(ref)
    if scale is None:
        scale = np.max(np.abs(ref[m])) if m.any() else 1.0
    np.testing.assert_allclose(got[m], ref[m], rtol=rtol, atol=rtol * scale)


TRI_OPTS = [dict(margin=m, p=p, eps=e, swap=s)
            for p in (0.5, 1.0, 1.5, 2.0, 3.0, np.inf)
            for e in (0.0, 1e-6)
            for s in (False, True)
            for m in (1.0, 0.25)]


# ---------------------------------------------------------------- reference

@pytest.mark.parametrize("opt", TRI_OPTS, ids=str)
def test_triplet_float64_matches_reference(opt):
    n, D = 300, 19
    a, p, ng = rand((n, D), seed=1), rand((n, D), seed=2), rand((n, D), seed=3)
    s, val, g = run(TRI, [a, p, ng], prm=tri_prm(**opt))
    l, rg = triplet_margin_parts(a, p, ng, **opt)
    assert 0 < np.count_nonzero(l) < n          # both branches exercised
    close(val, l, 1e-12)
    assert s == pytest.approx(np.sum(l), rel=1e-12)
    for k, name in enumerate(("anchor", "positive", "negative")):
        close(g[k], rg[name], 1e-12)


@pytest.mark.parametrize("margin", [0.0, 0.3, -0.4, 1.0, -1.0])
def test_cosine_float64_matches_reference(margin):
    n, D = 400, 23
    x1, x2, y = rand((n, D), seed=4), rand((n, D), seed=5), labels(n)
    x2[:50] = x1[:50] + 0.1 * x2[:50]           # some cosines near 1
    s, val, g = run(COS, [x1, x2], y=y, prm=(margin,))
    l, rg = cosine_embedding_parts(x1, x2, y, margin)
    close(val, l, 1e-12)
    assert s == pytest.approx(np.sum(l), rel=1e-12)
    close(g[0], rg["x1"], 1e-12)
    close(g[1], rg["x2"], 1e-12)


@pytest.mark.parametrize("opt", TRI_OPTS, ids=str)
def test_triplet_float32_within_bound(opt):
    # Bound: every sum and scalar is double; for p = 2 the differences u and
    # the gradient rows are float32 arithmetic (a few roundings, each at most
    # 2^-24 relative of the terms), other p are double throughout.  So
    # |l - ref| <= 4 u32 (d(a,p) + d(a,n) + |l|) and each gradient entry is
    # within 8 u32 of |f_u| + |f_v| + |f_w| (the terms it is made of).
    n, D = 300, 19
    xs = [rand((n, D), np.float32, seed=k) for k in (1, 2, 3)]
    s, val, g = run(TRI, xs, prm=tri_prm(**opt))
    l, rg = triplet_margin_parts(*xs, **opt)
    dap, fu = pairwise_distance_parts(xs[0], xs[1], opt["p"], opt["eps"])
    dan, fv = pairwise_distance_parts(xs[0], xs[2], opt["p"], opt["eps"])
    dpn, fw = pairwise_distance_parts(xs[1], xs[2], opt["p"], opt["eps"])
    assert np.all(np.abs(val - l) <= 4 * U32 * (dap + dan + dpn + np.abs(l)))
    assert abs(s - np.sum(l)) <= 4 * U32 * np.sum(dap + dan + dpn)
    terms = np.abs(fu) + np.abs(fv) + np.abs(fw)
    for k, name in enumerate(("anchor", "positive", "negative")):
        assert np.all(np.abs(g[k] - rg[name]) <= 8 * U32 * terms + 1e-30)


@pytest.mark.parametrize("margin", [0.0, 0.5, -0.5])
def test_cosine_float32_within_bound(margin):
    # everything is double from the float32 inputs; only the stores round
    n, D = 300, 31
    x1, x2 = rand((n, D), np.float32, seed=6), rand((n, D), np.float32, seed=7)
    y = labels(n, np.float32)
    s, val, g = run(COS, [x1, x2], y=y, prm=(margin,))
    l, rg = cosine_embedding_parts(x1, x2, y, margin)
    assert np.all(np.abs(val - l) <= U32 * np.abs(l) + 1e-14)
    assert s == pytest.approx(np.sum(l), rel=1e-13, abs=1e-13)
    for k, name in enumerate(("x1", "x2")):
        r = rg[name]
        assert np.all(np.abs(g[k] - r) <= U32 * np.abs(r) + 1e-14 * np.max(np.abs(r)))


# ---------------------------------------------------------------- torch

# only the tests below need torch (marked): the rest of the file runs without
# it (make test-aarch64's arm64 root has no torch)
try:
    import torch
    F = torch.nn.functional
except ImportError:
    torch = F = None
needs_torch = pytest.mark.skipif(torch is None, reason="torch is not installed")


def torch_triplet(a, p, n, margin, p_, eps, swap):
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in (a, p, n)]
    l = F.triplet_margin_loss(*ts, margin=margin, p=p_, eps=eps, swap=swap, reduction="none")
    l.sum().backward()
    return l.detach().numpy(), [t.grad.numpy() for t in ts]


@needs_torch
@pytest.mark.parametrize("opt", TRI_OPTS, ids=str)
def test_triplet_matches_torch(opt):
    n, D = 200, 13
    a, p, ng = rand((n, D), seed=11), rand((n, D), seed=12), rand((n, D), seed=13)
    # swap ties: positive == anchor makes d(a, n) == d(p, n) exactly
    p[:20] = a[:20]
    ng[:20] = a[:20] + 0.1 * ng[:20]     # (active: d(a, n) < margin)
    # and samples where the swap distance is the smaller one
    p[20:60] = ng[20:60] + 0.05 * p[20:60]
    s, val, g = run(TRI, [a, p, ng], prm=tri_prm(**opt))
    tl, tg = torch_triplet(a, p, ng, opt["margin"], opt["p"], opt["eps"], opt["swap"])
    close(val, tl, 1e-12)
    for k in range(3):
        close(g[k], tg[k], 1e-12)


@needs_torch
def test_triplet_inf_norm_entry_ties_match_torch():
    a = np.array([[1.0, -1.0, 0.5, 0.0], [2.0, 2.0, -2.0, 1.0]])
    p = np.zeros_like(a)
    ng = np.full_like(a, 0.1)
    s, val, g = run(TRI, [a, p, ng], prm=tri_prm(margin=5.0, p=np.inf, eps=0.0))
    tl, tg = torch_triplet(a, p, ng, 5.0, np.inf, 0.0, False)
    close(val, tl, 1e-15)
    for k in range(3):
        close(g[k], tg[k], 1e-15)
    assert g[1][0, 0] == -0.5 and g[1][1, 0] == pytest.approx(-1 / 3)


@needs_torch
def test_triplet_zero_entries_match_torch():
    # p < 1 and p > 1 with exact zeros in u = a - p + eps (eps = 0)
    a = np.array([[1.0, 0.0, 0.5], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    p = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [3.0, 0.0, 0.0]])
    ng = np.array([[0.2, 0.0, 0.1], [1.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    for p_ in (0.5, 1.0, 1.5, 2.0, 3.0, np.inf):
        s, val, g = run(TRI, [a, p, ng], prm=tri_prm(margin=2.5, p=p_, eps=0.0))
        tl, tg = torch_triplet(a, p, ng, 2.5, p_, 0.0, False)
        close(val, tl, 1e-13)
        for k in range(3):
            close(g[k], tg[k], 1e-13)


@needs_torch
@pytest.mark.parametrize("margin", [0.0, 0.2, -0.5])
def test_cosine_matches_torch(margin):
    n, D = 300, 17
    x1, x2, y = rand((n, D), seed=14), rand((n, D), seed=15), labels(n)
    s, val, g = run(COS, [x1, x2], y=y, prm=(margin,))
    t1, t2 = (torch.tensor(x, requires_grad=True) for x in (x1, x2))
    tl = F.cosine_embedding_loss(t1, t2, torch.tensor(y), margin=margin, reduction="none")
    tl.sum().backward()
    close(val, tl.detach().numpy(), 1e-12)
    close(g[0], t1.grad.numpy(), 1e-12)
    close(g[1], t2.grad.numpy(), 1e-12)


# ---------------------------------------------------------------- driver

@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("kernel", ["cos", "tri", "tri_swap", "tri_p3"])
def test_threads_bitwise(kernel, dt):
    n, D = 5000, 37                      # 12 chunks of 442 samples
    xs = [rand((n, D), dt, seed=k) for k in range(3)]
    sw = np.random.default_rng(9).random(n).astype(dt)
    if kernel == "cos":
        args = dict(kernel=COS, xs=xs[:2], y=labels(n, dt), prm=(0.1,))
    else:
        args = dict(kernel=TRI, xs=xs, prm=tri_prm(swap=kernel == "tri_swap",
                                                   p=3.0 if kernel == "tri_p3" else 2.0))
    r1 = run(**args, sw=sw, scale=0.5, nt=1)
    r2 = run(**args, sw=sw, scale=0.5, nt=2)
    assert r1[0] == r2[0]
    np.testing.assert_array_equal(r1[1], r2[1])
    for a, b in zip(r1[2], r2[2]):
        np.testing.assert_array_equal(a, b)
    # and the sum is the sum of the values
    assert r1[0] == pytest.approx(np.sum(r1[1], dtype=np.float64), rel=1e-6)


@pytest.mark.parametrize("which", list(itertools.product([0, 1], repeat=3))[1:])
def test_broadcast_rows(which):
    n, D = 700, 29                       # crosses a chunk boundary (564 / chunk)
    xs = [rand((1 if b else n, D), seed=k) for k, b in enumerate(which)]
    full = [np.ascontiguousarray(np.broadcast_to(x, (n, D))) for x in xs]
    for opt in (dict(), dict(swap=True), dict(p=1.5)):
        s, val, g = run(TRI, xs, prm=tri_prm(**opt), n=n)
        s2, val2, g2 = run(TRI, full, prm=tri_prm(**opt))
        assert s == s2
        np.testing.assert_array_equal(val, val2)
        for a, b in zip(g, g2):
            np.testing.assert_array_equal(a, b)
    if which[2] == 0:
        y1, yn = np.array([-1.0]), np.full(n, -1.0)
        r = run(COS, xs[:2], y=y1, prm=(0.0,), n=n)
        r2 = run(COS, full[:2], y=yn, prm=(0.0,))
        assert r[0] == r2[0]
        for a, b in zip(r[2], r2[2]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_weights_and_scale(dt):
    n, D = 900, 11
    xs = [rand((n, D), dt, seed=k) for k in range(3)]
    sw = np.random.default_rng(3).random(n).astype(dt)
    sw[:10] = 0
    s0, v0, g0 = run(TRI, xs, prm=tri_prm())
    s, v, g = run(TRI, xs, sw=sw, prm=tri_prm(), scale=0.125)
    tol = 1e-6 if dt == np.float32 else 1e-14
    np.testing.assert_allclose(v, sw * v0, rtol=tol)
    assert s == pytest.approx(np.sum(sw.astype(np.float64) * v0), rel=tol)
    for a, b in zip(g, g0):
        np.testing.assert_allclose(a, 0.125 * sw[:, None] * b, rtol=4 * tol, atol=tol * np.abs(b).max())
    # one weight for all samples
    s1, v1, g1 = run(TRI, xs, sw=np.array([2.0], dt), prm=tri_prm(), scale=0.5)
    np.testing.assert_allclose(v1, 2 * v0, rtol=tol)
    for a, b in zip(g1, g0):
        np.testing.assert_array_equal(a, b)     # 0.5 * 2 == 1 exactly
    y = labels(n, dt)
    c0 = run(COS, xs[:2], y=y, prm=(0.0,))
    c = run(COS, xs[:2], y=y, sw=sw, prm=(0.0,), scale=3.0)
    np.testing.assert_allclose(c[1], sw * c0[1], rtol=tol)
    for a, b in zip(c[2], c0[2]):
        np.testing.assert_allclose(a, 3.0 * sw[:, None] * b, rtol=4 * tol, atol=tol * np.abs(b).max())


MODES = [m for m in range(1, 8)]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("want", list(itertools.product([False, True], repeat=3))[1:])
@pytest.mark.parametrize("opt", [dict(), dict(swap=True), dict(p=np.inf, swap=True)], ids=str)
def test_modes_and_gradient_subsets(mode, want, opt):
    n, D = 600, 21
    xs = [rand((n, D), seed=k) for k in range(3)]
    p = xs[1].copy()
    p[:30] = xs[0][:30]                  # swap ties, active
    xs[1] = p
    xs[2][:30] = xs[0][:30] + 0.1 * xs[2][:30]
    sf, vf, gf = run(TRI, xs, prm=tri_prm(**opt))
    s, v, g = run(TRI, xs, prm=tri_prm(**opt), mode=mode, want=want)
    assert s == (sf if mode & C.MODE_SUM else 0.0)
    if mode & C.MODE_VAL:
        np.testing.assert_array_equal(v, vf)
    for k in range(3):
        if mode & C.MODE_GRAD and want[k]:
            np.testing.assert_allclose(g[k], gf[k], rtol=1e-15, atol=1e-15)
        else:
            assert g[k] is None


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("want", [(True, False), (False, True), (True, True)])
def test_cosine_modes(mode, want):
    n, D = 500, 9
    x1, x2, y = rand((n, D), seed=1), rand((n, D), seed=2), labels(n)
    sf, vf, gf = run(COS, [x1, x2], y=y, prm=(0.1,))
    s, v, g = run(COS, [x1, x2], y=y, prm=(0.1,), mode=mode, want=want)
    assert s == (sf if mode & C.MODE_SUM else 0.0)
    if mode & C.MODE_VAL:
        np.testing.assert_array_equal(v, vf)
    for k in range(2):
        if mode & C.MODE_GRAD and want[k]:
            np.testing.assert_array_equal(g[k], gf[k])


@pytest.mark.parametrize("n,D", [(1, 1), (1, 7), (441, 37), (442, 37), (443, 37), (885, 37),
                                 (3, 16384), (2, 16385), (5, 8193), (20000, 1), (17, 2),
                                 (100, 0), (0, 5), (0, 0)])
@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_sizes(n, D, dt):
    xs = [rand((n, D), dt, seed=k) for k in range(3)]
    y = labels(n, dt)
    tol = 1e-12 if dt == np.float64 else 3e-5
    for opt in (dict(), dict(swap=True, p=1.5)):
        s, v, g = run(TRI, xs, prm=tri_prm(**opt), nt=2)
        l, rg = triplet_margin_parts(*xs, **opt)
        assert v.shape == (n,)
        close(v, l, tol, scale=1.0)
        assert s == pytest.approx(np.sum(l), rel=tol, abs=tol)
        for k, name in enumerate(("anchor", "positive", "negative")):
            close(g[k], rg[name], tol, scale=1.0)
    s, v, g = run(COS, xs[:2], y=y, prm=(0.0,), nt=2)
    l, rg = cosine_embedding_parts(xs[0], xs[1], y, 0.0)
    close(v, l, tol, scale=1.0)
    for k, name in enumerate(("x1", "x2")):
        close(g[k], rg[name], tol, scale=1.0)
    if n == 0:
        assert s == 0.0


def test_empty_rows_values():
    # D = 0: every distance is 0, cos = 0
    xs = [np.zeros((4, 0)) for _ in range(3)]
    s, v, g = run(TRI, xs, prm=tri_prm(margin=0.7))
    np.testing.assert_array_equal(v, 0.7)
    s, v, g = run(COS, xs[:2], y=np.array([1.0, -1.0, 1.0, -1.0]), prm=(-0.5,))
    np.testing.assert_array_equal(v, [1.0, 0.5, 1.0, 0.5])


# ---------------------------------------------------------------- NaN, kinks, inf

@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("p", [2.0, 1.0, np.inf])
def test_nan_propagates(dt, p):
    n, D = 50, 6
    xs = [rand((n, D), dt, seed=k) for k in range(3)]
    for k in range(3):
        xs[k][3 + k, 2] = np.nan
    s, v, g = run(TRI, xs, prm=tri_prm(p=p, swap=True, margin=50.0))
    bad = np.zeros(n, bool)
    bad[[3, 4, 5]] = True
    assert np.isnan(s)
    np.testing.assert_array_equal(np.isnan(v), bad)
    for k in range(3):
        assert np.all(np.isnan(g[k][bad])) and not np.any(np.isnan(g[k][~bad]))
    y = labels(n, dt)
    y[7] = np.nan
    x1, x2 = xs[0].copy(), xs[1].copy()
    x1[3, 2] = x2[4, 2] = 0
    s, v, g = run(COS, [x1, x2], y=y, prm=(0.0,))
    bad = np.zeros(n, bool)             # only the NaN label is left
    bad[7] = True
    np.testing.assert_array_equal(np.isnan(v), bad)
    for k in range(2):
        assert np.all(np.isnan(g[k][7])) and not np.any(np.isnan(g[k][~bad]))
    # NaN in a cosine input with y == -1 below the margin is still NaN
    x1[0, 0] = np.nan
    y[0] = -1
    s, v, g = run(COS, [x1, x2], y=y, prm=(1.0,))
    assert np.isnan(v[0]) and np.all(np.isnan(g[0][0])) and np.all(np.isnan(g[1][0]))


def test_kinks_have_zero_gradient():
    # triplet: z = d(a,p) - d(a,n) + margin == 0 exactly
    a = np.array([[0.0]]); p = np.array([[0.5]]); ng = np.array([[1.5]])
    s, v, g = run(TRI, [a, p, ng], prm=tri_prm(margin=1.0, eps=0.0))
    assert v[0] == 0 and all(np.all(x == 0) for x in g)
    # cosine y = -1 at cos == margin (orthogonal rows, margin 0)
    x1 = np.array([[1.0, 0.0]]); x2 = np.array([[0.0, 1.0]])
    s, v, g = run(COS, [x1, x2], y=np.array([-1.0]), prm=(0.0,))
    assert v[0] == 0 and all(np.all(x == 0) for x in g)
    # and just above the kink the gradient is not 0
    s, v, g = run(COS, [x1, x2 + np.array([[1e-3, 0]])], y=np.array([-1.0]), prm=(0.0,))
    assert v[0] > 0 and np.any(g[0] != 0)


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_triplet_infinite_inputs(dt):
    inf = np.inf
    a = np.array([[0.0, 0.0], [0.0, 0.0], [inf, 0.0], [0.0, 0.0]], dt)
    p = np.array([[inf, 0.0], [0.0, 1.0], [0.0, 0.0], [inf, inf]], dt)
    ng = np.array([[3.0, 4.0], [-inf, 0.0], [1.0, 1.0], [1.0, 1.0]], dt)
    s, v, g = run(TRI, [a, p, ng], prm=tri_prm(eps=0.0))
    # 0: d(a,p) = inf, d(a,n) = 5: l = inf, gradient = the limit
    assert v[0] == inf
    np.testing.assert_allclose(g[0][0], [-1 - (-3 / 5), 0 - (-4 / 5)], rtol=1e-6)
    np.testing.assert_allclose(g[1][0], [1.0, 0.0])
    np.testing.assert_allclose(g[2][0], [-3 / 5, -4 / 5], rtol=1e-6)
    # 1: d(a,n) = inf: inactive, l = 0, gradient 0
    assert v[1] == 0 and all(np.all(x[1] == 0) for x in g)
    # 2: both distances inf: inf - inf, NaN
    assert np.isnan(v[2]) and all(np.all(np.isnan(x[2])) for x in g)
    # 3: two infinite entries in u: d = inf (l = inf), gradient has no limit
    assert v[3] == inf and np.all(np.isnan(g[0][3]))


@pytest.mark.parametrize("dt", [np.float32, np.float64])
def test_cosine_infinite_inputs(dt):
    inf = np.inf
    x1 = np.array([[inf, 0.0, 0.0], [inf, inf, 0.0], [-inf, 0.0, 0.0]], dt)
    x2 = np.array([[1.0, 2.0, 2.0], [1.0, 2.0, 2.0], [0.0, inf, 0.0]], dt)
    s, v, g = run(COS, [x1, x2], y=np.array([1.0, 1.0, -1.0], dt), prm=(-0.5,))
    # 0: x1 -> its direction e0: cos = 1/3; dx1 -> 0; dx2 = -(e0/3 - cos x2/9)
    np.testing.assert_allclose(v[0], 2 / 3, rtol=1e-6)
    np.testing.assert_array_equal(g[0][0], 0)
    np.testing.assert_allclose(g[1][0], -(np.array([1, 0, 0]) / 3 - (1 / 3) * np.array([1, 2, 2]) / 9),
                               rtol=1e-6, atol=1e-7)
    # 1: two infinite entries: no limit
    assert np.isnan(v[1]) and np.all(np.isnan(g[0][1])) and np.all(np.isnan(g[1][1]))
    # 2: both infinite, orthogonal directions: cos = 0, l = 0.5, gradients 0
    np.testing.assert_allclose(v[2], 0.5)
    np.testing.assert_array_equal(g[0][2], 0)
    np.testing.assert_array_equal(g[1][2], 0)


def test_float64_huge_rows_take_the_scaled_path():
    n, D = 40, 8
    xs = [rand((n, D), seed=k) for k in range(3)]
    big = [x * 1e200 for x in xs]
    # triplet with eps = 0 scales exactly: d(s x) = s d(x); margin scaled too
    for p in (2.0, 3.0, np.inf):
        s, v, g = run(TRI, big, prm=tri_prm(margin=1e200, p=p, eps=0.0))
        l, rg = triplet_margin_parts(*xs, margin=1.0, p=p, eps=0.0)
        close(v / 1e200, l, 1e-12)
        for k, name in enumerate(("anchor", "positive", "negative")):
            close(g[k], rg[name], 1e-12)
    # cosine is scale-invariant (the 1e-12 is negligible at both scales)
    y = labels(n)
    s, v, g = run(COS, big[:2], y=y, prm=(0.0,))
    l, rg = cosine_embedding_parts(xs[0], xs[1], y, 0.0)
    close(v, l, 1e-11)
    close(g[0] * 1e200, rg["x1"], 1e-11)
    # and tiny rows (squares underflow): triplet distances still exact
    tiny = [x * 1e-200 for x in xs]
    s, v, g = run(TRI, tiny, prm=tri_prm(margin=1e-200, eps=0.0))
    l, rg = triplet_margin_parts(*xs, margin=1.0, eps=0.0)
    close(v / 1e-200, l, 1e-12)
    close(g[0], rg["anchor"], 1e-12)


# ---------------------------------------------------------------- binding checks

def test_binding_rejects_misuse():
    a = rand((10, 4))
    f = a.astype(np.float32)
    g = [np.empty_like(a) for _ in range(3)]
    prm = tri_prm()
    call = C.row_call
    NN = 10
    with pytest.raises(ValueError):         # negative n
        call(TRI, C.MODE_SUM, -1, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # inputs of another n
        call(TRI, C.MODE_SUM, 9, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(TypeError):          # mixed dtypes
        call(TRI, C.MODE_SUM, NN, prm, [a, f, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(TypeError):          # not float
        call(TRI, C.MODE_SUM, NN, prm, [a.astype(int)] * 3, None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(TypeError):          # not an ndarray
        call(TRI, C.MODE_SUM, NN, prm, [a, a.tolist(), a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # wrong ndim
        call(TRI, C.MODE_SUM, NN, prm, [a, a[0], a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # non-contiguous
        call(TRI, C.MODE_SUM, NN, prm, [a, a[::2], a[::2]], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # sample counts differ
        call(TRI, C.MODE_SUM, NN, prm, [a, a[:5], a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # row lengths differ
        call(TRI, C.MODE_SUM, NN, prm, [a, a[:, :3].copy(), a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # wrong number of inputs
        call(TRI, C.MODE_SUM, NN, prm, [a, a], None, None, None, [None] * 2, 1.0, 1)
    with pytest.raises(ValueError):         # unknown kernel
        call(99, C.MODE_SUM, NN, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # bad mode
        call(TRI, 8, NN, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # GRAD without gradient arrays
        call(TRI, C.MODE_GRAD, NN, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # gradient arrays without GRAD
        call(TRI, C.MODE_SUM, NN, prm, [a, a, a], None, None, None, g, 1.0, 1)
    with pytest.raises(ValueError):         # VAL without val
        call(TRI, C.MODE_VAL, NN, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # wrong gradient shape
        call(TRI, C.MODE_GRAD, NN, prm, [a, a, a], None, None, None, [g[0][:5], None, None], 1.0, 1)
    with pytest.raises(TypeError):          # wrong gradient dtype
        call(TRI, C.MODE_GRAD, NN, prm, [a, a, a], None, None, None, [f, None, None], 1.0, 1)
    ro = np.empty_like(a)
    ro.flags.writeable = False
    with pytest.raises(ValueError):         # read-only output
        call(TRI, C.MODE_GRAD, NN, prm, [a, a, a], None, None, None, [ro, None, None], 1.0, 1)
    with pytest.raises(ValueError):         # output overlapping an input
        call(TRI, C.MODE_GRAD, NN, prm, [a, a.copy(), a.copy()], None, None, None, [a, None, None], 1.0, 1)
    with pytest.raises(ValueError):         # two outputs overlapping
        call(TRI, C.MODE_GRAD, NN, prm, [a, a, a], None, None, None, [g[0], g[0], None], 1.0, 1)
    with pytest.raises(ValueError):         # labels for a kernel without them
        call(TRI, C.MODE_SUM, NN, prm, [a, a, a], np.ones(10), None, None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # cosine without labels
        call(COS, C.MODE_SUM, NN, (0.0,), [a, a], None, None, None, [None] * 2, 1.0, 1)
    with pytest.raises(ValueError):         # labels of the wrong length
        call(COS, C.MODE_SUM, NN, (0.0,), [a, a], np.ones(3), None, None, [None] * 2, 1.0, 1)
    with pytest.raises(ValueError):         # weights of the wrong length
        call(TRI, C.MODE_SUM, NN, prm, [a, a, a], None, np.ones(3), None, [None] * 3, 1.0, 1)
    with pytest.raises(ValueError):         # too many parameters
        call(TRI, C.MODE_SUM, NN, prm + (1.0,), [a, a, a], None, None, None, [None] * 3, 1.0, 1)
    # and a correct call still works
    assert call(TRI, C.MODE_SUM, NN, prm, [a, a, a], None, None, None, [None] * 3, 1.0, 1) == \
        pytest.approx(10 * 1.0)


def test_kernel_table():
    assert C.ROW_KERNELS == {"cosine_embedding": COS, "triplet_margin": TRI}
    assert C.ROW_KERNEL_INFO == {"cosine_embedding": (2, True), "triplet_margin": (3, False)}
