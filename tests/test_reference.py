"""Tests of the pure-NumPy reference (fastloss/reference.py) against independent
oracles: hand-computed values, central finite differences, mpmath at high
precision, PyTorch (values, autograd gradients and Hessians), scikit-learn's
private loss module and a torch transcription of torchvision's focal loss.

The reference objects are made from the loss declarations (fastloss/losses)
by the registry; the module's math itself imports nothing from fastloss
(test_standalone_import_uses_numpy_only).  The lists of losses come from the
declarations: the losses of the (y_pred, y_true) call shape of SPEC section
5; tests/test_operands.py covers the rest.
"""

import importlib.util
import math
import subprocess
import sys
import textwrap
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest

REF_PATH = Path(__file__).resolve().parents[1] / "fastloss" / "reference.py"


import fastloss  # noqa: E402  (builds the reference objects from the declarations)
from fastloss import _registry  # noqa: E402

R = fastloss.reference

ELEMENTWISE = [s.name for s in _registry.TWO_INPUT if s.family == "elementwise"]
CLASS = [s.name for s in _registry.TWO_INPUT if s.family == "class"]
ALL = ELEMENTWISE + CLASS


def assert_close(actual, expected, rtol=1e-13, atol=0.0, err_msg=""):
    np.testing.assert_allclose(np.asarray(actual, dtype=np.float64),
                               np.asarray(expected, dtype=np.float64),
                               rtol=rtol, atol=atol, err_msg=err_msg)


# ---------------------------------------------------------------------------
# module structure
# ---------------------------------------------------------------------------


def test_standalone_import_uses_numpy_only(tmp_path):
    code = textwrap.dedent(f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("ref", {str(REF_PATH)!r})
        m = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(m)
        bad = [k for k in sys.modules
               if k.split(".")[0] in ("fastloss", "scipy", "torch", "sklearn", "mpmath")]
        assert not bad, bad
        assert not m.LOSSES        # the objects come from the declarations
        print("ok")
    """)
    r = subprocess.run([sys.executable, "-c", code], cwd=tmp_path,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_registry():
    assert sorted(R.LOSSES) == sorted(s.name for s in _registry.TABLE)
    for name in ALL:
        loss = R.LOSSES[name]
        assert isinstance(loss, R.ReferenceLoss)
        assert getattr(R, name) is loss
        assert loss.name == name
        assert loss.family == ("class" if name in CLASS else "elementwise")
        for meth in ("__call__", "grad", "value_and_grad", "hessian"):
            assert callable(getattr(loss, meth))


# ---------------------------------------------------------------------------
# closed-form hand values: (loss, y_pred, y_true, params, value, grad, hessian)
# all with reduction="none"
# ---------------------------------------------------------------------------

L2, L3 = math.log(2), math.log(3)
_fv = 0.25  # focal alpha
HAND = [
    ("mse", [3, -1], [1, 1], {}, [4, 4], [4, -4], [2, 2]),
    ("mae", [3, 1, -1], [1, 1, 1], {}, [2, 0, 2], [1, 0, -1], [0, 0, 0]),
    ("huber", [0.5, 2, 3, -5], 0, {"delta": 2}, [0.125, 2, 4, 8], [0.5, 2, 2, -2], [1, 1, 0, 0]),
    ("huber", [0.5, 1, -1.5], 0, {}, [0.125, 0.5, 1.0], [0.5, 1, -1], [1, 1, 0]),
    ("smooth_l1", [1, 2, 3, -4], 0, {"beta": 2}, [0.25, 1, 2, 3], [0.5, 1, 1, -1], [0.5, 0, 0, 0]),
    ("smooth_l1", [1, 0, -2], 0, {"beta": 0}, [1, 0, 2], [1, 0, -1], [0, 0, 0]),
    ("log_cosh", [0, 1, -2], 0, {},
     [0, math.log(math.cosh(1)), math.log(math.cosh(2))],
     [0, math.tanh(1), -math.tanh(2)], [1, 1 / math.cosh(1) ** 2, 1 / math.cosh(2) ** 2]),
    ("quantile", [0, 2, 1], 1, {"q": 0.25}, [0.25, 0.75, 0], [-0.25, 0.75, -0.25], [0, 0, 0]),
    ("poisson", [0, L2], [1, 3], {}, [1, 2 - 3 * L2], [0, -1], [1, 2]),
    ("tweedie", [0, math.log(4)], [2, 1], {"power": 1.5}, [6, 5], [-1, 1.5], [1.5, 1.25]),
    ("binary_cross_entropy", [0.5, 0.25, 0, 1, 1], [1, 0, 0, 0, 1], {},
     [L2, -math.log(0.75), 0, 100, 0], [-2, 1 / 0.75, 1, 0, -1], [4, 1 / 0.5625, 1, 0, 1]),
    ("binary_cross_entropy_with_logits", [0, L3], [1, 0], {},
     [L2, math.log(4)], [-0.5, 0.75], [0.25, 0.1875]),
    ("binary_cross_entropy_with_logits", [0, 0], [1, 0.5], {"pos_weight": 3},
     [3 * L2, 2 * L2], [-1.5, -0.5], [0.75, 0.5]),
    ("sigmoid_focal", [0.0], [1.0], {},
     [_fv * L2 / 4], [_fv * 0.25 * (-0.5 - L2)], [_fv * (0.0625 + 0.25 + 0.125 * L2)]),
    ("sigmoid_focal", [0.0, L3], [0.0, 0.0], {"alpha": None, "gamma": 0},
     [L2, math.log(4)], [0.5, 0.75], [0.25, 0.1875]),
    ("hinge", [0.5, 1, 2, -3, 0.5], [1, 1, 1, 0, -1], {},
     [0.5, 0, 0, 0, 1.5], [-1, 0, 0, 0, 1], [0, 0, 0, 0, 0]),
    ("squared_hinge", [0.5, 1, 2, -3, 0.5], [1, 1, 1, 0, -1], {},
     [0.25, 0, 0, 0, 2.25], [-1, 0, 0, 0, 3], [2, 0, 0, 0, 2]),
    ("cross_entropy", [[0, L3]], [1], {}, [math.log(4 / 3)], [[0.25, -0.25]], [[0.1875, 0.1875]]),
    ("cross_entropy", [[0, L3]], [[0.5, 0.5]], {},
     [0.5 * (math.log(4) + math.log(4 / 3))], [[0.25 - 0.5, 0.75 - 0.5]], [[0.1875, 0.1875]]),
    ("nll", [[math.log(0.2), math.log(0.8)]], [0], {}, [-math.log(0.2)], [[-1, 0]], [[0, 0]]),
    ("multi_margin", [[0.1, 0.2, 0.4, 0.8]], [3], {}, [0.325], [[0.25, 0.25, 0.25, -0.75]],
     [[0, 0, 0, 0]]),
    ("multi_margin", [[0.1, 0.2, 0.4, 0.8]], [3], {"power": 2},
     [(0.09 + 0.16 + 0.36) / 4], [[0.15, 0.2, 0.3, -0.65]], [[0.5, 0.5, 0.5, 1.5]]),
    ("multi_margin", [[0.1, 0.2, 0.4, 0.8]], [3], {"margin": 0.5, "class_weight": [1, 1, 1, 2]},
     [2 * (0 + 0 + 0.1) / 4], [[0, 0, 0.5, -0.5]], [[0, 0, 0, 0]]),
]


@pytest.mark.parametrize("case", HAND, ids=[f"{c[0]}-{i}" for i, c in enumerate(HAND)])
def test_hand_values(case):
    name, p, t, params, lv, gv, hv = case
    loss = R.LOSSES[name]
    p = np.asarray(p, dtype=np.float64)
    assert_close(loss(p, t, reduction="none", **params), lv, atol=1e-15)
    assert_close(loss.grad(p, t, reduction="none", **params), gv, atol=1e-15)
    assert_close(loss.hessian(p, t, reduction="none", **params), hv, atol=1e-15)
    # the default reduction is the mean over the elements / samples
    assert_close(loss(p, t, **params), np.mean(lv), atol=1e-15)
    assert_close(loss(p, t, reduction="sum", **params), np.sum(lv), atol=1e-15)
    v, g = loss.value_and_grad(p, t, reduction="sum", **params)
    assert_close(v, np.sum(lv), atol=1e-15)
    assert_close(g, gv, atol=1e-15)


def test_cross_entropy_hand_smoothing_weights_ignore():
    # z = [0, log 3] -> -logp = [log 4, log 4/3], p = [1/4, 3/4]
    z = np.array([[0, L3], [0, L3], [0, L3]])
    y = np.array([1, 0, -1])
    cw = np.array([2.0, 3.0])
    e = 0.5
    nl = np.array([math.log(4), math.log(4 / 3)])
    n0 = (1 - e) * cw[1] * nl[1] + e / 2 * (cw @ nl)
    n1 = (1 - e) * cw[0] * nl[0] + e / 2 * (cw @ nl)
    v = R.cross_entropy(z, y, class_weight=cw, label_smoothing=e, ignore_index=-1,
                        reduction="none")
    assert_close(v, [n0, n1, 0])
    assert_close(R.cross_entropy(z, y, class_weight=cw, label_smoothing=e, ignore_index=-1),
                 (n0 + n1) / (cw[1] + cw[0]))
    g = R.cross_entropy.grad(z, y, class_weight=cw, label_smoothing=e, ignore_index=-1,
                             reduction="sum")
    p = np.array([0.25, 0.75])
    g0 = (1 - e) * cw[1] * (p - [0, 1]) + e / 2 * (cw.sum() * p - cw)
    g1 = (1 - e) * cw[0] * (p - [1, 0]) + e / 2 * (cw.sum() * p - cw)
    assert_close(g, [g0, g1, [0, 0]], atol=1e-15)
    h = R.cross_entropy.hessian(z, y, class_weight=cw, label_smoothing=e, ignore_index=-1,
                                reduction="sum")
    c0 = (1 - e) * cw[1] + e / 2 * cw.sum()
    c1 = (1 - e) * cw[0] + e / 2 * cw.sum()
    assert_close(h, [c0 * p * (1 - p), c1 * p * (1 - p), [0, 0]])


# ---------------------------------------------------------------------------
# finite differences (float64)
# ---------------------------------------------------------------------------

def _elementwise_data(name, rng, shape):
    p = rng.uniform(-2, 2, shape)
    t = rng.uniform(-2, 2, shape)
    params = {}
    if name == "huber":
        params = {"delta": 0.7}
    elif name == "smooth_l1":
        params = {"beta": 0.6}
    elif name == "quantile":
        params = {"q": 0.3}
    elif name == "tweedie":
        t, params = rng.uniform(0, 3, shape), {"power": 1.3}
    elif name == "poisson":
        t = rng.uniform(0, 3, shape)
    elif name == "binary_cross_entropy":
        p, t = rng.uniform(0.05, 0.95, shape), rng.uniform(0, 1, shape)
    elif name == "binary_cross_entropy_with_logits":
        t, params = rng.uniform(0, 1, shape), {"pos_weight": rng.uniform(0.5, 2, shape[-1])}
    elif name == "sigmoid_focal":
        t, params = rng.uniform(0, 1, shape), {"alpha": 0.3, "gamma": 1.5}
    elif name in ("hinge", "squared_hinge"):
        t = rng.choice([-1.0, 0.0, 1.0], shape)
    # keep finite differences away from kinks
    d = np.abs(np.abs(p - t) - params.get("delta", params.get("beta", 99)))
    p = np.where((d < 1e-3) | (np.abs(p - t) < 1e-3), p + 0.01, p)
    if name in ("hinge", "squared_hinge"):
        s = np.where(t == 0, -1, t)
        p = np.where(np.abs(1 - s * p) < 1e-3, p + 0.01, p)
    return p, t, params


def _seed(*args):
    return zlib.crc32(repr(args).encode())


def _fd_grad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        xp, xm = x.copy(), x.copy()
        step = h * max(1.0, abs(x[i]))
        xp[i] += step
        xm[i] -= step
        g[i] = (f(xp) - f(xm)) / (2 * step)
    return g


REDUCTION_CASES = [
    ("none", None, None),
    ("sum", None, None),
    ("mean", None, None),
    ("mean", None, "full"),
    ("mean", 0, "col"),
    ("sum", 1, "row"),
    ("mean", (0, 1), "full"),
    ("mean", -1, "full"),
]


def _weights(kind, shape, rng):
    if kind is None:
        return None
    if kind == "full":
        return rng.uniform(0.2, 2, shape)
    if kind == "col":
        return rng.uniform(0.2, 2, shape[-1:])
    return rng.uniform(0.2, 2, shape[:1] + (1,) * (len(shape) - 1))


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("reduction,axis,wkind", REDUCTION_CASES)
def test_elementwise_finite_differences(name, reduction, axis, wkind):
    rng = np.random.default_rng(_seed(name, reduction, axis, wkind))
    shape = (3, 4)
    p, t, params = _elementwise_data(name, rng, shape)
    sw = _weights(wkind, shape, rng)
    loss = R.LOSSES[name]
    kw = dict(reduction=reduction, axis=axis, sample_weight=sw, **params)

    def f(x):
        return float(np.sum(loss(x, t, **kw)))

    g = loss.grad(p, t, **kw)
    assert g.shape == p.shape and g.dtype == np.float64
    assert_close(g, _fd_grad(f, p), rtol=1e-6, atol=1e-8)
    # the Hessian diagonal = derivative of the gradient (elementwise: all at once)
    step = 1e-5
    hfd = (loss.grad(p + step, t, **kw) - loss.grad(p - step, t, **kw)) / (2 * step)
    assert_close(loss.hessian(p, t, **kw), hfd, rtol=1e-5, atol=1e-8)
    v, g2 = loss.value_and_grad(p, t, **kw)
    assert_close(g2, g, rtol=0)
    assert_close(v, loss(p, t, **kw), rtol=0)


def test_elementwise_reductions_match_numpy():
    rng = np.random.default_rng(0)
    p, t = rng.normal(size=(3, 4, 5)), rng.normal(size=(3, 4, 5))
    w = rng.uniform(0.1, 2, (4, 1))
    l = (p - t) ** 2
    assert_close(R.mse(p, t, reduction="none", sample_weight=w), w * l)
    assert_close(R.mse(p, t, sample_weight=w),
                 np.average(l, weights=np.broadcast_to(w, l.shape)))
    assert_close(R.mse(p, t, sample_weight=w, axis=(0, 2)),
                 np.average(l, axis=(0, 2), weights=np.broadcast_to(w, l.shape)))
    assert_close(R.mse(p, t, axis=1), np.mean(l, axis=1))
    assert_close(R.mse(p, t, reduction="sum", axis=-1), np.sum(l, axis=-1))
    assert_close(R.mse.grad(p, t, axis=1), 2 * (p - t) / 4)
    assert_close(R.mse.grad(p, t, sample_weight=w, axis=(0, 2)),
                 2 * (p - t) * w / (15 * w))
    assert_close(R.mse.hessian(p, t, reduction="sum", sample_weight=w),
                 np.broadcast_to(2 * w, p.shape))


def _class_data(rng, name, layout, soft, C=4):
    shape = (3, C) if layout == "2d" else (2, C, 3)
    cax = -1 if layout == "2d" else 1
    z = rng.normal(size=shape) * 2
    sshape = shape[:1] if layout == "2d" else (2, 3)
    if soft:
        y = rng.uniform(0.01, 1, shape)
        y = y / y.sum(axis=cax, keepdims=True)
    else:
        y = rng.integers(0, C, sshape)
    if name == "nll":
        z = z - np.log(np.sum(np.exp(z), axis=cax, keepdims=True))
    if name == "multi_margin":  # keep margins away from the kink
        zy = np.take_along_axis(z, np.expand_dims(y, cax), axis=cax)
        m = 1 - zy + z
        z = np.where(np.abs(m) < 1e-3, z + 0.01, z)
    return z, y, cax, sshape


CLASS_FD_CASES = [
    ("cross_entropy", {}, False),
    ("cross_entropy", {"class_weight": [1.0, 2.0, 0.5, 3.0]}, False),
    ("cross_entropy", {"label_smoothing": 0.2}, False),
    ("cross_entropy", {"class_weight": [1.0, 2.0, 0.5, 3.0], "label_smoothing": 0.3,
                       "ignore_index": 2}, False),
    ("cross_entropy", {}, True),
    ("cross_entropy", {"class_weight": [1.0, 2.0, 0.5, 3.0], "label_smoothing": 0.1}, True),
    ("nll", {"class_weight": [1.0, 2.0, 0.5, 3.0], "ignore_index": 1}, False),
    ("nll", {"class_weight": [1.0, 2.0, 0.5, 3.0]}, True),
    ("multi_margin", {}, False),
    ("multi_margin", {"power": 2, "margin": 1.5, "class_weight": [1.0, 2.0, 0.5, 3.0]}, False),
]


@pytest.mark.parametrize("name,params,soft", CLASS_FD_CASES)
@pytest.mark.parametrize("layout", ["2d", "nc_d"])
@pytest.mark.parametrize("reduction,axis,weighted", [
    ("mean", None, False), ("mean", None, True), ("sum", None, True),
    ("none", None, True), ("mean", 0, True),
])
def test_class_finite_differences(name, params, soft, layout, reduction, axis, weighted):
    rng = np.random.default_rng(_seed(name, params, soft, layout, reduction, axis, weighted))
    z, y, cax, sshape = _class_data(rng, name, layout, soft)
    ii = params.get("ignore_index")
    if ii is not None:  # every slice keeps a sample that is not ignored
        y[0] = np.where(y[0] == ii, (ii + 1) % 4, y[0])
        y.flat[-1] = ii
    sw = rng.uniform(0.2, 2, sshape) if weighted else None
    loss = R.LOSSES[name]
    kw = dict(reduction=reduction, axis=axis, sample_weight=sw, class_axis=cax, **params)

    def f(x):
        return float(np.sum(loss(x, y, **kw)))

    g = loss.grad(z, y, **kw)
    assert g.shape == z.shape
    assert_close(g, _fd_grad(f, z), rtol=1e-6, atol=1e-8)
    # Hessian diagonal: d grad_k / d z_k, one element at a time
    hfd = np.zeros_like(z)
    step = 1e-5
    for i in np.ndindex(z.shape):
        zp, zm = z.copy(), z.copy()
        zp[i] += step
        zm[i] -= step
        hfd[i] = (loss.grad(zp, y, **kw)[i] - loss.grad(zm, y, **kw)[i]) / (2 * step)
    assert_close(loss.hessian(z, y, **kw), hfd, rtol=1e-5, atol=1e-8)


def test_class_reductions_and_layout():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(2, 4, 3))  # (N, C, d1)
    y = rng.integers(0, 4, (2, 3))
    cw = np.array([1.0, 2.0, 3.0, 4.0])
    zl = np.moveaxis(z, 1, -1)
    lse = np.log(np.sum(np.exp(zl), axis=-1))
    n = cw[y] * (lse - np.take_along_axis(zl, y[..., None], -1)[..., 0])
    w = rng.uniform(0.5, 1.5, (2, 1))
    assert_close(R.cross_entropy(z, y, class_axis=1, class_weight=cw, reduction="none",
                                 sample_weight=w), w * n, rtol=1e-12)
    assert_close(R.cross_entropy(z, y, class_axis=1, class_weight=cw, sample_weight=w),
                 np.sum(w * n) / np.sum(w * cw[y]), rtol=1e-12)
    assert_close(R.cross_entropy(z, y, class_axis=1, class_weight=cw, axis=1),
                 np.sum(n, axis=1) / np.sum(cw[y], axis=1), rtol=1e-12)
    # class_axis=1 equals moving the class axis last
    assert_close(R.cross_entropy.grad(z, y, class_axis=1),
                 np.moveaxis(R.cross_entropy.grad(zl, y), -1, 1), rtol=1e-15)
    # multi_margin mean divides by sum(s), nll by sum(s*cw[y])
    zz = rng.normal(size=(5, 3))
    yy = rng.integers(0, 3, 5)
    s = rng.uniform(0.5, 1.5, 5)
    mm = R.multi_margin(zz, yy, reduction="none", class_weight=[1, 2, 3])
    assert_close(R.multi_margin(zz, yy, sample_weight=s, class_weight=[1, 2, 3]),
                 np.sum(s * mm) / np.sum(s))
    cw3 = np.array([1.0, 2, 3])
    assert_close(R.nll(zz, yy, sample_weight=s, class_weight=cw3),
                 np.sum(-s * cw3[yy] * zz[np.arange(5), yy]) / np.sum(s * cw3[yy]))


# ---------------------------------------------------------------------------
# accuracy in the tails (mpmath) and infinite inputs
# ---------------------------------------------------------------------------


def test_documented_tail_values():
    v, g = R.binary_cross_entropy_with_logits.value_and_grad(-50.0, 0.0)
    assert_close(v, 1.9287498479639178e-22, rtol=4e-16)
    assert_close(g, 1.9287498479639178e-22, rtol=4e-16)
    assert_close(R.log_cosh(1e-8, 0.0), 5e-17, rtol=4e-16)
    assert_close(R.log_cosh(0.0, -1e-8), 5e-17, rtol=4e-16)


def test_log_cosh_tails_mpmath():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    d = np.array([1e-300, 1e-12, 1e-8, 1e-4, 0.1, 0.7, 1.0, 3.0, 9.9, 10.0, 10.1, 20.0,
                  37.0, 300.0, 709.0, 710.0, 1e5, 1e300])
    d = np.concatenate([d, -d])
    l = R.log_cosh(d, 0.0, reduction="none")
    g = R.log_cosh.grad(d, 0.0, reduction="none")
    h = R.log_cosh.hessian(d, 0.0, reduction="none")
    for i, x in enumerate(d):
        X = mp.mpf(float(x))
        # log(cosh x) = |x| - log 2 + log1p(exp(-2|x|)), exact in mpmath
        ax = abs(X)
        exact = ax - mp.log(2) + mp.log1p(mp.exp(-2 * ax))
        assert_close(l[i], float(exact), rtol=4e-16, err_msg=f"d={x}")
        assert_close(g[i], float(mp.tanh(X)), rtol=4e-16, err_msg=f"d={x}")
        hh = 4 * mp.exp(-2 * ax) / (1 + mp.exp(-2 * ax)) ** 2
        assert_close(h[i], float(hh), rtol=1e-15, atol=1e-320, err_msg=f"d={x}")
    assert np.all(np.isfinite(l))


def test_bce_with_logits_tails_mpmath():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    x = np.array([-745.0, -700.0, -50.0, -30.0, -5.0, -1e-10, 0.0, 1e-10, 2.0, 30.0, 50.0,
                  700.0])
    for t in (0.0, 1.0, 0.25):
        l = R.binary_cross_entropy_with_logits(x, t, reduction="none")
        g = R.binary_cross_entropy_with_logits.grad(x, t, reduction="none")
        h = R.binary_cross_entropy_with_logits.hessian(x, t, reduction="none")
        for i, xi in enumerate(x):
            X, T = mp.mpf(float(xi)), mp.mpf(t)
            sig = 1 / (1 + mp.exp(-X))  # sig - T below: mpmath keeps 50 digits
            exact = T * mp.log1p(mp.exp(-X)) + (1 - T) * mp.log1p(mp.exp(X))
            assert_close(l[i], float(exact), rtol=1e-15, err_msg=f"x={xi} t={t}")
            gtol = 1e-15 if t in (0.0, 1.0) else 1e-13  # soft labels: sig - t cancels
            assert_close(g[i], float(sig - T), rtol=gtol, atol=1e-300, err_msg=f"x={xi} t={t}")
            assert_close(h[i], float(sig / (1 + mp.exp(X))), rtol=1e-15, atol=1e-320,
                         err_msg=f"x={xi} t={t}")


def test_sigmoid_focal_tails_mpmath():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 60
    xs = [-60.0, -30.0, -5.0, -0.3, 0.0, 0.7, 4.0, 30.0, 60.0]

    def focal(X, T, alpha, gamma):
        p = 1 / (1 + mp.exp(-X))
        ce = T * mp.log1p(mp.exp(-X)) + (1 - T) * mp.log1p(mp.exp(X))
        m = (1 - T) * p + T * (1 - p)
        at = 1 if alpha is None else alpha * T + (1 - alpha) * (1 - T)
        return at * ce * m ** gamma

    for t, alpha, gamma in [(0.0, 0.25, 2.0), (1.0, 0.25, 2.0), (1.0, None, 0.5),
                            (0.0, 0.8, 3.0), (0.3, 0.25, 2.0), (0.0, None, 0.0)]:
        x = np.array(xs)
        kw = dict(reduction="none", alpha=alpha, gamma=gamma)
        l = R.sigmoid_focal(x, t, **kw)
        g = R.sigmoid_focal.grad(x, t, **kw)
        h = R.sigmoid_focal.hessian(x, t, **kw)
        soft = t not in (0.0, 1.0)
        for i, xi in enumerate(xs):
            f = lambda X: focal(X, mp.mpf(t), alpha, gamma)  # noqa: E731
            X = mp.mpf(xi)
            msg = f"x={xi} t={t} alpha={alpha} gamma={gamma}"
            assert_close(l[i], float(f(X)), rtol=1e-14, err_msg=msg)
            assert_close(g[i], float(mp.diff(f, X)), rtol=1e-9 if soft else 1e-13,
                         atol=1e-300, err_msg=msg)
            assert_close(h[i], float(mp.diff(f, X, 2)), rtol=1e-9 if soft else 1e-12,
                         atol=1e-300, err_msg=msg)


def test_cross_entropy_tails_mpmath():
    mp = pytest.importorskip("mpmath")
    mp.mp.dps = 50
    z = np.array([[40.0, 0.0, -3.0], [0.0, 40.0, -1e3], [800.0, 0.0, 799.0],
                  [-1e4, -1e4 + 1e-6, -1e4 - 2], [1e-9, 0.0, 0.0]])
    y = np.array([0, 0, 2, 1, 0])
    l = R.cross_entropy(z, y, reduction="none")
    g = R.cross_entropy.grad(z, y, reduction="none")
    h = R.cross_entropy.hessian(z, y, reduction="none")
    for i in range(len(z)):
        Z = [mp.mpf(float(v)) for v in z[i]]
        lse = mp.log(mp.fsum(mp.exp(v) for v in Z))
        p = [mp.exp(v - lse) for v in Z]
        assert_close(l[i], float(lse - Z[y[i]]), rtol=1e-15, err_msg=str(i))
        gg = [float(p[k] - (k == y[i])) for k in range(3)]
        assert_close(g[i], gg, rtol=1e-14, atol=1e-300, err_msg=str(i))
        assert_close(h[i], [float(pk * (1 - pk)) for pk in p], rtol=1e-14, atol=1e-300,
                     err_msg=str(i))


def test_infinite_inputs_give_limits():
    bce = R.binary_cross_entropy_with_logits
    inf = np.inf
    x = np.array([inf, -inf, inf, -inf])
    t = np.array([1.0, 0.0, 0.0, 1.0])
    assert_close(bce(x, t, reduction="none"), [0, 0, inf, inf])
    assert_close(bce.grad(x, t, reduction="none"), [0, 0, 1, -1])
    assert_close(bce.hessian(x, t, reduction="none"), [0, 0, 0, 0])
    assert_close(bce(np.array([inf]), 1.0, pos_weight=0.0, reduction="none"), [0])
    # cross_entropy: -inf logits mask classes
    z = np.array([[1.0, -inf, 2.0, -inf], [-inf, 0.5, -inf, -inf]])
    y = np.array([2, 1])
    v = R.cross_entropy(z, y, reduction="none")
    assert_close(v, [math.log1p(math.exp(-1)), 0.0], rtol=1e-15)
    g = R.cross_entropy.grad(z, y)
    assert np.all(np.isfinite(g)) and np.all(g[np.isinf(z)] == 0)
    assert np.all(np.isfinite(R.cross_entropy.hessian(z, y)))
    # soft targets with 0 probability on a masked class
    t = np.array([[0.5, 0.0, 0.5, 0.0], [0.0, 1.0, 0.0, 0.0]])
    assert np.all(np.isfinite(R.cross_entropy(z, t, reduction="none")))
    # logsumexp never overflows
    assert_close(R.cross_entropy(np.array([[1000.0, 0.0]]), [1]), 1000.0)
    assert R.cross_entropy(np.array([[1e308, -1e308]]), [1]) == inf  # 2e308 overflows
    # +inf logit takes the mass
    assert_close(R.cross_entropy(np.array([[inf, 0.0]]), [0]), 0.0)
    # poisson / tweedie at -inf with zero targets
    assert_close(R.poisson(np.array([-inf, inf]), [0.0, 2.0], reduction="none"), [0, inf])
    assert_close(R.tweedie(np.array([-inf, inf]), [0.0, 2.0], reduction="none"), [0, inf])
    assert_close(R.log_cosh(np.array([inf, -inf]), 0.0, reduction="none"), [inf, inf])
    assert_close(R.log_cosh.grad(np.array([inf, -inf]), 0.0, reduction="none"), [1, -1])
    assert_close(R.sigmoid_focal(np.array([inf, -inf]), [1.0, 0.0], reduction="none"), [0, 0])
    assert_close(R.sigmoid_focal.grad(np.array([inf, -inf]), [1.0, 0.0], reduction="none"),
                 [0, 0])
    assert_close(R.sigmoid_focal.grad(np.array([inf]), [0.0], reduction="none", alpha=None),
                 [1.0])


def test_nan_propagates():
    nan = np.nan
    for name in ELEMENTWISE:
        loss = R.LOSSES[name]
        p = np.array([nan, 0.5])
        t = np.array([0.0, 1.0])
        for meth in (loss, loss.grad, loss.hessian):
            r = meth(p, t, reduction="none")
            assert np.isnan(r[0]) and np.isfinite(r[1]), (name, meth)
        assert np.isnan(loss(p, t))
        assert np.isnan(loss(np.array([0.5]), np.array([nan]), reduction="sum"))
    z = np.array([[nan, 0.0, 1.0], [0.0, 1.0, 2.0]])
    v = R.cross_entropy(z, [1, 1], reduction="none")
    assert np.isnan(v[0]) and np.isfinite(v[1])
    assert np.all(np.isnan(R.cross_entropy.grad(z, [1, 1], reduction="none")[0]))
    assert np.isnan(R.multi_margin(z, [1, 1], reduction="none")[0])


# ---------------------------------------------------------------------------
# kinks
# ---------------------------------------------------------------------------


def test_kinks():
    assert R.huber.grad(2.0, 0.0, delta=2.0) == 2.0 and R.huber.hessian(2.0, 0.0, delta=2.0) == 1
    assert R.huber.hessian(-2.0, 0.0, delta=2.0) == 1
    assert R.smooth_l1.grad(2.0, 0.0, beta=2.0) == 1.0
    assert R.smooth_l1.hessian(2.0, 0.0, beta=2.0) == 0
    assert R.smooth_l1.hessian(1.999, 0.0, beta=2.0) == 0.5
    assert R.mae.grad(1.5, 1.5) == 0
    assert R.smooth_l1.grad(1.5, 1.5, beta=0.0) == 0
    assert R.quantile.grad(1.5, 1.5, q=0.3) == -0.3
    assert R.hinge.grad(1.0, 1.0) == 0 and R.hinge.grad(-1.0, 0.0) == 0
    assert R.hinge.grad(0.999, 1.0) == -1
    assert R.squared_hinge.grad(1.0, 1.0) == 0
    assert R.multi_margin.grad(np.array([[0.0, 1.0]]), [1]).tolist() == [[0.0, 0.0]]


def test_binary_cross_entropy_clamp():
    p = np.array([0.0, 1.0, 1e-50, 1 - 1e-16, 1e-40])
    t = np.array([1.0, 0.0, 1.0, 0.0, 1.0])
    v = R.binary_cross_entropy(p, t, reduction="none")
    assert_close(v, [100, 100, 100, -math.log1p(-(1 - 1e-16)), -math.log(1e-40)], rtol=1e-15)
    g = R.binary_cross_entropy.grad(p, t, reduction="none")
    assert g[0] == 0 and g[1] == 0 and g[2] == 0  # clamped logs have derivative 0
    assert_close(g[4], -1e40)
    h = R.binary_cross_entropy.hessian(p, t, reduction="none")
    assert h[0] == 0 and h[1] == 0 and h[2] == 0
    assert_close(h[4], 1e80)


# ---------------------------------------------------------------------------
# dtypes and result types
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_dtypes(name):
    loss = R.LOSSES[name]
    if name in CLASS:  # (2, 2) samples of 3 classes
        base = np.array([[[0.2, -0.3, 0.5], [0.1, 0.4, -0.6]], [[0.3, 0.1, 0.0], [0.9, 0.4, 0.6]]])
        t = np.array([[0, 2], [1, 1]])
    else:
        base = np.array([[0.2, 0.3, 0.5], [0.1, 0.4, 0.6]])
        t = np.array([[0.0, 1.0, 1.0], [1.0, 0.0, 1.0]])
    for dt, odt in [(np.float32, np.float32), (np.float64, np.float64),
                    (np.float16, np.float16), (np.int64, np.float64), (np.bool_, np.float64)]:
        p = base.astype(dt) if dt not in (np.int64, np.bool_) else (base > 0.25).astype(dt)
        v = loss(p, t)
        assert type(v) is np.dtype(odt).type, (dt, type(v))
        vs = loss(p, t, reduction="sum")
        assert type(vs) is np.dtype(odt).type
        vn = loss(p, t, reduction="none")
        assert isinstance(vn, np.ndarray) and vn.dtype == odt
        va = loss(p, t, axis=0)
        assert isinstance(va, np.ndarray) and va.dtype == odt
        for meth in (loss.grad, loss.hessian):
            r = meth(p, t)
            assert isinstance(r, np.ndarray) and r.dtype == odt and r.shape == p.shape
        v2, g2 = loss.value_and_grad(p, t)
        assert type(v2) is np.dtype(odt).type and g2.dtype == odt
        # float32 and float16 results agree with float64 to their precision
        ref = loss(p.astype(np.float64), t)
        tol = {np.float32: 1e-6, np.float16: 2e-3}.get(dt, 1e-15)
        assert_close(v, ref, rtol=tol, atol=tol)
        assert_close(loss.grad(p, t), loss.grad(p.astype(np.float64), t), rtol=tol * 4,
                     atol=tol)


def test_float32_is_computed_in_float32():
    # 1 + 1e-8 is 1 in float32: the difference is lost exactly as a float32 kernel loses it
    p = np.array([1 + 1e-8], np.float32)
    assert R.mse(p, np.float32(1.0)) == 0
    assert R.mse(np.array([1 + 1e-8]), 1.0) > 0


def test_array_likes():
    assert_close(R.mse([1, 2], [0, 0]), 2.5)
    assert_close(R.mse(3, 1), 4)
    assert isinstance(R.mse(3.0, 1.0, reduction="none"), np.ndarray)
    x = np.arange(12.0).reshape(3, 4)
    assert_close(R.huber(x.T, x.T * 0.5), R.huber(np.ascontiguousarray(x.T), x.T * 0.5))
    ro = x.copy()
    ro.flags.writeable = False
    assert_close(R.mae.grad(ro, 0.0), R.mae.grad(x, 0.0))


# ---------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ALL)
def test_common_errors(name):
    loss = R.LOSSES[name]
    z = np.zeros((2, 3)) + 0.5
    t = np.array([0, 1]) if name in CLASS else np.zeros((2, 3))
    with pytest.raises(TypeError):
        loss(z, t, bogus=1)
    with pytest.raises(ValueError):
        loss(z, t, reduction="avg")
    with pytest.raises(ValueError):
        loss.grad(z, t, reduction="none", axis=0)
    with pytest.raises(TypeError):
        loss(z.astype(complex), t)
    with pytest.raises(TypeError):
        loss(np.array([["a", "b", "c"]] * 2), t)
    with pytest.raises(ValueError, match="enlarge"):  # sample weight that enlarges
        loss(z, t, sample_weight=np.ones((2, 1, 1)) if name not in CLASS else np.ones((2, 1)))
    with pytest.raises(ValueError, match="enlarge"):  # target that enlarges
        loss(z, np.zeros((2, 2, 3)) if name not in CLASS else np.zeros((2, 1), int))
    with pytest.raises(ValueError):
        loss(z, t, n_threads=0)
    with pytest.raises(TypeError):
        loss(z, t, n_threads=1.5)


PARAM_ERRORS = [
    ("huber", {"delta": 0}), ("huber", {"delta": -1}), ("huber", {"delta": float("nan")}),
    ("smooth_l1", {"beta": -0.1}), ("quantile", {"q": 0}), ("quantile", {"q": 1}),
    ("quantile", {"q": 1.5}), ("tweedie", {"power": 1}), ("tweedie", {"power": 2}),
    ("tweedie", {"power": 0.5}), ("sigmoid_focal", {"gamma": -1}),
    ("sigmoid_focal", {"alpha": 1.5}), ("sigmoid_focal", {"alpha": -0.1}),
    ("cross_entropy", {"label_smoothing": -0.1}), ("cross_entropy", {"label_smoothing": 1.1}),
    ("multi_margin", {"power": 3}), ("multi_margin", {"power": 0}),
    ("binary_cross_entropy_with_logits", {"pos_weight": -1.0}),
    ("binary_cross_entropy_with_logits", {"pos_weight": np.array([1.0, -1.0, 1.0])}),
    ("binary_cross_entropy_with_logits", {"pos_weight": np.ones((2, 2, 3))}),
    ("binary_cross_entropy_with_logits", {"pos_weight": np.ones(2)}),
    ("cross_entropy", {"class_weight": np.ones(2)}),
    ("cross_entropy", {"class_weight": np.ones((1, 3))}),
    ("nll", {"class_weight": np.ones(4)}),
    ("multi_margin", {"class_weight": np.ones(2)}),
]


@pytest.mark.parametrize("name,params", PARAM_ERRORS)
def test_parameter_domain_errors(name, params):
    loss = R.LOSSES[name]
    z = np.zeros((2, 3)) + 0.5
    t = np.array([0, 1]) if name in CLASS else np.zeros((2, 3))
    with pytest.raises(ValueError):
        loss(z, t, **params)
    with pytest.raises(ValueError):
        loss.grad(z, t, **params)


def test_parameter_boundaries_accepted():
    z = np.full((2, 3), 0.5)
    R.smooth_l1(z, 0.0, beta=0)
    R.sigmoid_focal(z, 0.0, gamma=0, alpha=None)
    R.sigmoid_focal(z, 0.0, alpha=0)
    R.sigmoid_focal(z, 0.0, alpha=1)
    R.cross_entropy(z, [0, 1], label_smoothing=1.0)
    R.binary_cross_entropy_with_logits(z, 0.0, pos_weight=0.0)
    R.binary_cross_entropy_with_logits(z, 0.0, pos_weight=np.ones((2, 1)))
    R.multi_margin(z, [0, 1], power=2)


def test_data_errors():
    with pytest.raises(ValueError, match="-0.5"):
        R.tweedie(np.zeros(3), [1.0, -0.5, 0.0])
    R.tweedie(np.zeros(3), [1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="2.0"):
        R.hinge(np.zeros(3), [1.0, 2.0, 0.0])
    with pytest.raises(ValueError):
        R.squared_hinge(np.zeros(3), [0.5, 1.0, 0.0])
    R.hinge(np.zeros(3), [1, -1, 0])
    with pytest.raises(ValueError, match="1.5"):
        R.binary_cross_entropy(np.array([0.5, 1.5]), [0.0, 1.0])
    with pytest.raises(ValueError):
        R.binary_cross_entropy(np.array([0.5, -0.1]), [0.0, 1.0])
    with pytest.raises(ValueError):
        R.binary_cross_entropy(np.array([0.5, 0.5]), [0.0, 1.1])


def test_class_label_errors():
    z = np.zeros((4, 3))
    with pytest.raises(ValueError, match=r"3.*\(2,\)"):
        R.cross_entropy(z, [0, 1, 3, 5])
    with pytest.raises(ValueError, match=r"-1.*\(1,\)"):
        R.nll(z, [0, -1, 2, 2])
    with pytest.raises(ValueError, match=r"1\.5.*\(3,\)"):
        R.cross_entropy(z, [0.0, 1.0, 2.0, 1.5])
    with pytest.raises(ValueError, match="nan"):
        R.cross_entropy(z, [0.0, np.nan, 2.0, 1.0])
    with pytest.raises(ValueError, match="inf"):
        R.multi_margin(z, [0.0, 1.0, np.inf, 1.0])
    # index in the per-sample array of an (N, C, d) layout
    z3 = np.zeros((2, 3, 2))
    y3 = np.array([[0, 1], [7, 2]])
    with pytest.raises(ValueError, match=r"7.*\(1, 0\)"):
        R.cross_entropy(z3, y3, class_axis=1)
    # whole float labels and ignore_index
    assert_close(R.cross_entropy(z, [0.0, 1.0, 2.0, 1.0]), math.log(3))
    assert_close(R.cross_entropy(z, [0, -100, 2, 1], ignore_index=-100), math.log(3))
    with pytest.raises(ValueError):
        R.cross_entropy(z, np.full((4, 3), 1 / 3), ignore_index=-100)
    with pytest.raises(ValueError):
        R.multi_margin(z, np.full((4, 3), 1 / 3))
    with pytest.raises(ValueError):
        R.cross_entropy(np.float64(1.0), 0)
    with pytest.raises(ValueError):
        R.cross_entropy(z, [0, 1, 2, 1], class_axis=2)
    # labels broadcast to the per-sample shape but never enlarge it
    assert_close(R.cross_entropy(z, 1), math.log(3))
    with pytest.raises(ValueError):
        R.cross_entropy(z, np.zeros((4, 1), int))


def test_out_argument():
    p = np.linspace(-1, 1, 6).reshape(2, 3)
    out = np.empty_like(p)
    r = R.huber.grad(p, 0.0, out=out)
    assert r is out
    assert_close(out, R.huber.grad(p, 0.0), rtol=0)
    v, r = R.huber.value_and_grad(p, 0.0, out=out, reduction="sum")
    assert r is out and v == R.huber(p, 0.0, reduction="sum")
    r = R.cross_entropy.hessian(p, [0, 2], out=out)
    assert r is out
    assert_close(out, R.cross_entropy.hessian(p, [0, 2]), rtol=0)
    with pytest.raises(TypeError):
        R.mse.grad(p, 0.0, out=np.empty_like(p, dtype=np.float32))
    with pytest.raises(TypeError):
        R.mse.grad(p, 0.0, out=[0.0] * 6)
    with pytest.raises(ValueError):
        R.mse.grad(p, 0.0, out=np.empty(6))
    with pytest.raises(ValueError):
        R.mse.grad(p, 0.0, out=np.empty((3, 2)).T)
    ro = np.empty_like(p)
    ro.flags.writeable = False
    with pytest.raises(ValueError):
        R.mse.grad(p, 0.0, out=ro)
    # the value accepts and ignores out/n_threads
    assert R.mse(p, 0.0, out=None, n_threads=2) == R.mse(p, 0.0)


def test_zero_total_weight_mean():
    with pytest.warns(RuntimeWarning):
        v = R.mse(np.array([]), np.array([]))
    assert np.isnan(v)
    assert R.mse(np.array([]), np.array([]), reduction="sum") == 0
    with pytest.warns(RuntimeWarning):
        assert R.mse.grad(np.array([]), np.array([])).shape == (0,)
    p = np.array([1.0, 2.0])
    with pytest.warns(RuntimeWarning):
        v = R.mse(p, 0.0, sample_weight=[0.0, 0.0])
    assert np.isnan(v)
    with pytest.warns(RuntimeWarning):
        g = R.mse.grad(p, 0.0, sample_weight=[0.0, 0.0])
    assert g.tolist() == [0.0, 0.0]
    with pytest.warns(RuntimeWarning):
        h = R.mse.hessian(p, 0.0, sample_weight=[0.0, 0.0])
    assert h.tolist() == [0.0, 0.0]
    # weights summing to zero: nan too
    with pytest.warns(RuntimeWarning):
        assert np.isnan(R.mse(p, 0.0, sample_weight=[1.0, -1.0]))
    # per slice: only the empty slice is nan
    with pytest.warns(RuntimeWarning):
        v = R.mse(np.ones((2, 2)), 0.0, sample_weight=[[1.0, 1.0], [0.0, 0.0]], axis=1)
    assert v[0] == 1 and np.isnan(v[1])
    # everything ignored
    z = np.zeros((2, 3))
    with pytest.warns(RuntimeWarning):
        assert np.isnan(R.cross_entropy(z, [-100, -100], ignore_index=-100))
    with pytest.warns(RuntimeWarning):
        g = R.cross_entropy.grad(z, [-100, -100], ignore_index=-100)
    assert np.all(g == 0)
    assert R.cross_entropy(z, [-100, -100], ignore_index=-100, reduction="sum") == 0
    # a class weight of 0 on the only labels
    with pytest.warns(RuntimeWarning):
        assert np.isnan(R.nll(z, [1, 1], class_weight=[1.0, 0.0, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        R.mse(p, 0.0)  # no spurious warnings on ordinary input
        R.cross_entropy(np.array([[0.0, -np.inf]]), [0])


# ---------------------------------------------------------------------------
# PyTorch
# ---------------------------------------------------------------------------


def _torch():
    torch = pytest.importorskip("torch")
    return torch, torch.nn.functional


def _torch_vgh(fn, x, elementwise_hessian=True):
    """value, autograd gradient of value.sum(), Hessian diagonal (elementwise)."""
    torch, _ = _torch()
    xt = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    v = fn(xt)
    (g,) = torch.autograd.grad(v.sum(), xt, create_graph=True)
    h = None
    if elementwise_hessian:
        if g.requires_grad:
            (h,) = torch.autograd.grad(g.sum(), xt, allow_unused=True)
        h = np.zeros(x.shape) if h is None else h.detach().numpy(force=True)
    return v.detach().numpy(), g.detach().numpy(), h


TORCH_ELEMENTWISE = [
    ("mse", {}, lambda F, x, t, r: F.mse_loss(x, t, reduction=r)),
    ("mae", {}, lambda F, x, t, r: F.l1_loss(x, t, reduction=r)),
    ("huber", {"delta": 0.8}, lambda F, x, t, r: F.huber_loss(x, t, reduction=r, delta=0.8)),
    ("smooth_l1", {"beta": 0.6},
     lambda F, x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.6)),
    ("smooth_l1", {"beta": 0.0},
     lambda F, x, t, r: F.smooth_l1_loss(x, t, reduction=r, beta=0.0)),
    ("poisson", {},
     lambda F, x, t, r: F.poisson_nll_loss(x, t, log_input=True, full=False, reduction=r)),
]


@pytest.mark.parametrize("name,params,tfn", TORCH_ELEMENTWISE)
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_elementwise(name, params, tfn, reduction):
    torch, F = _torch()
    rng = np.random.default_rng(3)
    p = rng.uniform(-2, 2, (4, 5))
    t = rng.uniform(0, 2, (4, 5)) if name == "poisson" else rng.uniform(-2, 2, (4, 5))
    tt = torch.tensor(t)
    v, g, h = _torch_vgh(lambda x: tfn(F, x, tt, reduction), p)
    loss = R.LOSSES[name]
    assert_close(loss(p, t, reduction=reduction, **params), v, rtol=1e-13)
    assert_close(loss.grad(p, t, reduction=reduction, **params), g, rtol=1e-13, atol=1e-16)
    assert_close(loss.hessian(p, t, reduction=reduction, **params), h, rtol=1e-13, atol=1e-16)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_binary_cross_entropy(reduction):
    torch, F = _torch()
    rng = np.random.default_rng(4)
    p = rng.uniform(0.01, 0.99, (3, 4))
    t = rng.uniform(0, 1, (3, 4))
    t[0, :2] = [0.0, 1.0]
    v, g, h = _torch_vgh(lambda x: F.binary_cross_entropy(x, torch.tensor(t), reduction=reduction), p)
    L = R.binary_cross_entropy
    assert_close(L(p, t, reduction=reduction), v)
    assert_close(L.grad(p, t, reduction=reduction), g, rtol=1e-12)
    # torch's double backward adds an epsilon of 1e-12 to p*(1-p): 1e-9 relative
    assert_close(L.hessian(p, t, reduction=reduction), h, rtol=1e-9)
    # the -100 clamp of the value
    pe, te = np.array([0.0, 1.0, 0.3]), np.array([1.0, 0.0, 0.0])
    tv = F.binary_cross_entropy(torch.tensor(pe), torch.tensor(te), reduction="none").numpy()
    assert_close(L(pe, te, reduction="none"), tv)


@pytest.mark.parametrize("layout", ["2d", "4d"])
@pytest.mark.parametrize("pw", [None, "vec", "scalar"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_bce_with_logits(layout, pw, reduction):
    torch, F = _torch()
    rng = np.random.default_rng(5)
    shape = (3, 4) if layout == "2d" else (2, 3, 2, 2)
    x = rng.normal(size=shape) * 3
    t = rng.uniform(0, 1, shape)
    t.flat[:3] = [0.0, 1.0, 1.0]
    if pw is None:
        pwv = None
    elif pw == "scalar":
        pwv = np.array(2.5)
    else:
        pwv = rng.uniform(0, 3, (4,) if layout == "2d" else (3, 1, 1))
    tpw = None if pwv is None else torch.tensor(pwv)
    v, g, h = _torch_vgh(lambda z: F.binary_cross_entropy_with_logits(
        z, torch.tensor(t), pos_weight=tpw, reduction=reduction), x)
    L = R.binary_cross_entropy_with_logits
    kw = dict(reduction=reduction, pos_weight=pwv)
    assert_close(L(x, t, **kw), v, rtol=1e-13)
    assert_close(L.grad(x, t, **kw), g, rtol=1e-12, atol=1e-16)
    assert_close(L.hessian(x, t, **kw), h, rtol=1e-12, atol=1e-16)


def _torch_formula_losses(torch):
    """Independent torch transcriptions (autograd gives grad and Hessian)."""
    def focal(x, t, alpha, gamma):  # torchvision.ops.sigmoid_focal_loss, written out
        p = torch.sigmoid(x)
        ce = torch.nn.functional.binary_cross_entropy_with_logits(x, t, reduction="none")
        p_t = p * t + (1 - p) * (1 - t)
        loss = ce * ((1 - p_t) ** gamma)
        if alpha is not None:
            loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
        return loss

    return {
        "log_cosh": ({}, lambda x, t: torch.log(torch.cosh(x - t))),
        "quantile": ({"q": 0.3}, lambda x, t: torch.maximum(0.3 * (t - x), (0.3 - 1) * (t - x))),
        "tweedie": ({"power": 1.4}, lambda x, t: torch.exp(0.6 * x) / 0.6
                    - t * torch.exp(-0.4 * x) / -0.4),
        "hinge": ({}, lambda x, t: torch.clamp(1 - torch.where(t == 0, -1.0, t) * x, min=0)),
        "squared_hinge": ({}, lambda x, t: torch.clamp(
            1 - torch.where(t == 0, -1.0, t) * x, min=0) ** 2),
        "sigmoid_focal": ({}, lambda x, t: focal(x, t, 0.25, 2.0)),
        "sigmoid_focal-a0.7g1.5": ({"alpha": 0.7, "gamma": 1.5}, lambda x, t: focal(x, t, 0.7, 1.5)),
        "sigmoid_focal-noalpha-g3": ({"alpha": None, "gamma": 3.0},
                                     lambda x, t: focal(x, t, None, 3.0)),
    }


@pytest.mark.parametrize("key", ["log_cosh", "quantile", "tweedie", "hinge", "squared_hinge",
                                 "sigmoid_focal", "sigmoid_focal-a0.7g1.5",
                                 "sigmoid_focal-noalpha-g3"])
def test_torch_formulas(key):
    torch, F = _torch()
    params, fn = _torch_formula_losses(torch)[key]
    name = key.split("-")[0]
    rng = np.random.default_rng(6)
    x = rng.uniform(-3, 3, (5, 4))
    if name in ("hinge", "squared_hinge"):
        t = rng.choice([-1.0, 0.0, 1.0], (5, 4))
    elif name == "sigmoid_focal":
        t = rng.uniform(0, 1, (5, 4))
        t[0] = [0, 1, 0, 1]
    elif name == "tweedie":
        t = rng.uniform(0, 3, (5, 4))
    else:
        t = rng.uniform(-3, 3, (5, 4))
    tt = torch.tensor(t)
    v, g, h = _torch_vgh(lambda z: fn(z, tt), x)
    L = R.LOSSES[name]
    assert_close(L(x, t, reduction="none", **params), v, rtol=1e-13, atol=1e-16)
    assert_close(L.grad(x, t, reduction="none", **params), g, rtol=1e-12, atol=1e-15)
    assert_close(L.hessian(x, t, reduction="none", **params), h, rtol=1e-11, atol=1e-15)


def _ce_cases():
    cases = []
    for cw in (None, "w"):
        for e in (0.0, 0.25):
            for ign in (None, 1, -100):
                for soft in (False, True):
                    if soft and ign is not None:
                        continue
                    for layout in ("2d", "4d"):
                        cases.append((cw, e, ign, soft, layout))
    return cases


@pytest.mark.parametrize("cw,e,ign,soft,layout", _ce_cases())
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_cross_entropy(cw, e, ign, soft, layout, reduction):
    torch, F = _torch()
    rng = np.random.default_rng(7)
    C = 4
    shape = (5, C) if layout == "2d" else (2, C, 3, 2)
    sshape = (5,) if layout == "2d" else (2, 3, 2)
    z = rng.normal(size=shape) * 2
    if soft:
        y = rng.uniform(0, 1, shape)
        y /= y.sum(axis=1, keepdims=True)
    else:
        y = rng.integers(0, C, sshape)
        if ign == -100:
            y.flat[[0, 3]] = -100
        if ign == 1:
            y.flat[[0, 3]] = 1
    w = rng.uniform(0.2, 3, C) if cw == "w" else None
    tw = None if w is None else torch.tensor(w)
    ty = torch.tensor(y)
    v, g, _ = _torch_vgh(lambda x: F.cross_entropy(
        x, ty, weight=tw, ignore_index=-100 if ign is None else ign, reduction=reduction,
        label_smoothing=e), z, elementwise_hessian=False)
    kw = dict(class_axis=1, class_weight=w, label_smoothing=e, ignore_index=ign,
              reduction=reduction)
    assert_close(R.cross_entropy(z, y, **kw), v, rtol=1e-13, atol=1e-15)
    assert_close(R.cross_entropy.grad(z, y, **kw), g, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cw,e,ign,soft", [
    (None, 0.0, None, False), ("w", 0.3, 2, False), ("w", 0.2, None, True), (None, 0.0, None, True),
])
@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_torch_cross_entropy_hessian(cw, e, ign, soft, reduction):
    torch, F = _torch()
    rng = np.random.default_rng(8)
    z = rng.normal(size=(3, 4))
    if soft:
        y = rng.uniform(0, 1, (3, 4))
        y /= y.sum(axis=1, keepdims=True)
    else:
        y = np.array([2, 0, 3])
    w = rng.uniform(0.2, 3, 4) if cw else None
    tw = None if w is None else torch.tensor(w)

    def f(x):
        return F.cross_entropy(x, torch.tensor(y), weight=tw, reduction=reduction,
                               label_smoothing=e, ignore_index=-100 if ign is None else ign)

    H = torch.autograd.functional.hessian(f, torch.tensor(z)).reshape(12, 12).numpy()
    h = R.cross_entropy.hessian(z, y, class_weight=w, label_smoothing=e, ignore_index=ign,
                                reduction=reduction)
    assert_close(h.ravel(), np.diag(H), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cw", [None, "w"])
@pytest.mark.parametrize("ign", [None, 0, -100])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("layout", ["2d", "3d"])
def test_torch_nll(cw, ign, reduction, layout):
    torch, F = _torch()
    rng = np.random.default_rng(9)
    shape = (6, 3) if layout == "2d" else (2, 3, 4)
    sshape = (6,) if layout == "2d" else (2, 4)
    z = np.log(rng.dirichlet(np.ones(3), size=int(np.prod(sshape))))
    z = z.reshape(sshape + (3,))
    z = np.moveaxis(z, -1, 1)
    assert z.shape == shape
    y = rng.integers(0, 3, sshape)
    y.flat[1] = 0
    if ign == -100:
        y.flat[2] = -100
    w = rng.uniform(0.2, 3, 3) if cw else None
    tw = None if w is None else torch.tensor(w)
    v, g, _ = _torch_vgh(lambda x: F.nll_loss(x, torch.tensor(y), weight=tw,
                                             ignore_index=-100 if ign is None else ign,
                                             reduction=reduction), z, elementwise_hessian=False)
    kw = dict(class_axis=1, class_weight=w, ignore_index=ign, reduction=reduction)
    assert_close(R.nll(z, y, **kw), v, rtol=1e-13)
    assert_close(R.nll.grad(z, y, **kw), g, rtol=1e-13)
    assert np.all(R.nll.hessian(z, y, **kw) == 0)


@pytest.mark.parametrize("power", [1, 2])
@pytest.mark.parametrize("margin", [1.0, 0.4])
@pytest.mark.parametrize("cw", [None, "w"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_torch_multi_margin(power, margin, cw, reduction):
    torch, F = _torch()
    rng = np.random.default_rng(10)
    z = rng.normal(size=(6, 4))
    y = rng.integers(0, 4, 6)
    w = rng.uniform(0.2, 3, 4) if cw else None
    tw = None if w is None else torch.tensor(w)
    v, g, _ = _torch_vgh(lambda x: F.multi_margin_loss(
        x, torch.tensor(y), p=power, margin=margin, weight=tw, reduction=reduction), z,
        elementwise_hessian=False)
    kw = dict(power=power, margin=margin, class_weight=w, reduction=reduction)
    assert_close(R.multi_margin(z, y, **kw), v, rtol=1e-13, atol=1e-16)
    assert_close(R.multi_margin.grad(z, y, **kw), g, rtol=1e-13, atol=1e-16)
    if power == 2:  # torch has no double backward here: a torch transcription
        ty = torch.tensor(y)
        wy = torch.ones(6, dtype=torch.float64) if w is None else tw[ty]

        def f(x):
            zy = x.gather(1, ty[:, None])
            pos = torch.clamp(margin - zy + x, min=0) ** 2
            pos = pos.masked_fill(torch.nn.functional.one_hot(ty, 4).bool(), 0.0)
            per = wy * pos.sum(1) / 4
            return per.mean() if reduction == "mean" else per.sum()

        assert_close(f(torch.tensor(z)).sum().item(), np.sum(v), rtol=1e-13)
        H = torch.autograd.functional.hessian(f, torch.tensor(z)).reshape(24, 24).numpy()
        assert_close(R.multi_margin.hessian(z, y, **kw).ravel(), np.diag(H), rtol=1e-13,
                     atol=1e-16)


# ---------------------------------------------------------------------------
# scikit-learn's private loss module (half losses)
# ---------------------------------------------------------------------------


def _sk():
    pytest.importorskip("sklearn")
    from sklearn._loss import loss as skl
    return skl


@pytest.mark.parametrize("power", [1.1, 1.5, 1.9])
def test_sklearn_tweedie(power):
    skl = _sk()
    rng = np.random.default_rng(11)
    raw = rng.uniform(-3, 3, 50)
    y = rng.uniform(0, 5, 50)
    y[:5] = 0
    sw = rng.uniform(0.1, 2, 50)
    sk = skl.HalfTweedieLoss(power=power)
    # scikit-learn's loss() leaves out the constant term too (constant_to_optimal_zero)
    assert_close(R.tweedie(raw, y, power=power, reduction="none"), sk.loss(y, raw), rtol=1e-13)
    assert_close(R.tweedie(raw, y, power=power, reduction="none", sample_weight=sw),
                 sk.loss(y, raw, sample_weight=sw), rtol=1e-13)
    g, h = sk.gradient_hessian(y, raw, sample_weight=sw)
    assert_close(R.tweedie.grad(raw, y, power=power, reduction="none", sample_weight=sw), g,
                 rtol=1e-12, atol=1e-14)
    assert_close(R.tweedie.hessian(raw, y, power=power, reduction="none", sample_weight=sw), h,
                 rtol=1e-12)


def test_sklearn_poisson_binomial_pinball():
    skl = _sk()
    rng = np.random.default_rng(12)
    raw = rng.uniform(-4, 4, 60)
    y = rng.uniform(0, 4, 60)
    sk = skl.HalfPoissonLoss()
    assert_close(R.poisson(raw, y, reduction="none"), sk.loss(y, raw), rtol=1e-12, atol=1e-14)
    g, h = sk.gradient_hessian(y, raw)
    assert_close(R.poisson.grad(raw, y, reduction="none"), g, rtol=1e-12, atol=1e-14)
    assert_close(R.poisson.hessian(raw, y, reduction="none"), h, rtol=1e-12)
    yb = rng.uniform(0, 1, 60)
    yb[:10] = np.round(yb[:10])
    sk = skl.HalfBinomialLoss()
    L = R.binary_cross_entropy_with_logits
    assert_close(L(raw, yb, reduction="none"), sk.loss(yb, raw), rtol=1e-12)
    g, h = sk.gradient_hessian(yb, raw)
    assert_close(L.grad(raw, yb, reduction="none"), g, rtol=1e-11, atol=1e-15)
    assert_close(L.hessian(raw, yb, reduction="none"), h, rtol=1e-11)
    # pinball, including ties y == raw (gradient -q on both)
    q = 0.3
    y = np.round(rng.uniform(-3, 3, 60), 1)
    raw = np.round(rng.uniform(-3, 3, 60), 1)
    raw[:10] = y[:10]
    sk = skl.PinballLoss(quantile=q)
    assert_close(R.quantile(raw, y, q=q, reduction="none"), sk.loss(y, raw), rtol=1e-13)
    assert_close(R.quantile.grad(raw, y, q=q, reduction="none"), sk.gradient(y, raw), rtol=0)


def test_sklearn_multinomial():
    skl = _sk()
    rng = np.random.default_rng(13)
    raw = rng.normal(size=(40, 5)) * 3
    y = rng.integers(0, 5, 40).astype(np.float64)
    sw = rng.uniform(0.1, 2, 40)
    sk = skl.HalfMultinomialLoss(n_classes=5)
    assert_close(R.cross_entropy(raw, y, reduction="none", sample_weight=sw),
                 sk.loss(y, raw, sample_weight=sw), rtol=1e-12)
    g, h = sk.gradient_hessian(y, raw, sample_weight=sw)
    assert_close(R.cross_entropy.grad(raw, y, reduction="none", sample_weight=sw), g,
                 rtol=1e-11, atol=1e-15)
    assert_close(R.cross_entropy.hessian(raw, y, reduction="none", sample_weight=sw), h,
                 rtol=1e-11, atol=1e-15)
    # the scalar mean is sklearn's __call__ (average with weights)
    assert_close(R.cross_entropy(raw, y, sample_weight=sw), sk(y, raw, sample_weight=sw),
                 rtol=1e-12)


def test_zero_dim_and_tensor_inputs():
    g = R.mse.grad(3.0, 1.0)
    assert isinstance(g, np.ndarray) and g.shape == () and g == 4
    assert R.cross_entropy.grad([1.0, 2.0], 1).shape == (2,)
    assert R.cross_entropy([1.0, 2.0], 1, reduction="none").shape == ()
    torch = pytest.importorskip("torch")
    t = torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float64)
    assert_close(R.mse(t, torch.zeros(2, 2, dtype=torch.float64)), 7.5)
    assert R.mse(t.float(), 0.0).dtype == np.float32
    assert_close(R.cross_entropy(t, torch.tensor([0, 1])), R.cross_entropy(t.numpy(), [0, 1]))
    with pytest.raises(TypeError, match="requires grad"):
        R.mse(t.clone().requires_grad_(), 0.0)
