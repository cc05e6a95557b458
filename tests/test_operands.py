"""The operand model (SPEC section 7) over every declaration, and the losses
of several inputs and the row family (SPEC section 8).

Parametrised over fastloss._registry.TABLE: a new declaration is tested here
by existing.  The oracles are PyTorch float64 autograd through the
declaration's torch spelling (values, every gradient, Hessian diagonals by
double backward, cotangents as autograd's grad_outputs), the float64
reference, and identities of the operand model itself (linearity in the
cotangent, sums over broadcast axes, grad_and_hessian == (grad, hessian)).
Tolerances: float64 1e-12 of the result's scale (the issue's bound; the
kernels are a few ulp, torch's float64 a few ulp more), float32 2e-5 of the
scale (float32 rounding of inputs and outputs, sums in float64).
"""
import inspect
import itertools
import warnings
from dataclasses import replace

import numpy as np
import pytest

import fastloss as fl
from fastloss import _registry
from fastloss._registry import TABLE, make_inputs

IDS = [s.name for s in TABLE]
RTOL = {np.float64: 1e-12, np.float32: 2e-5}


def shape_of(spec):
    return {"elementwise": (6, 4), "class": (6, 5), "rows": (7, 5)}[spec.family]


def defaults(spec):
    return {p.name: p.default for p in spec.params}


def close(got, want, rtol, what):
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:g} * {scale:.3g}"


def subsets(names):
    for k in range(1, len(names) + 1):
        yield from itertools.combinations(names, k)


@pytest.fixture(scope="module")
def torch():
    t = pytest.importorskip("torch")
    n = t.get_num_threads()
    t.set_num_threads(1)
    yield t
    t.set_num_threads(n)


# ------------------------------------------------------------- declarations

def test_declarations_are_complete():
    assert _registry.problems() == []
    assert len(fl.losses) == len(TABLE)
    for spec in TABLE:
        loss = fl.losses[spec.name]
        assert loss.inputs == spec.inputs and loss.differentiable == spec.differentiable
        assert loss.has_hessian == spec.has_hessian


def test_an_incomplete_declaration_is_reported():
    spec = _registry.BY_NAME["gaussian_nll"]
    broken = [replace(spec, sampler={"y_pred": spec.sampler["y_pred"]})]
    msgs = " ".join(_registry.problems(broken))
    assert "no sampler for the input 'var'" in msgs
    assert "no reference" in " ".join(_registry.problems([replace(spec, reference=None)]))
    assert "missing" in " ".join(_registry.problems([replace(spec, kernel="no_such")]))
    # every other C kernel is then used by no declaration
    assert "'mse' (elementwise) is used by no declaration" in msgs


def test_readme_loss_table_is_derived_from_the_declarations():
    import pathlib
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    a = readme.index("<!-- losses:begin -->") + len("<!-- losses:begin -->")
    b = readme.index("<!-- losses:end -->")
    assert readme[a:b].strip() == _registry.loss_table_markdown().strip(), \
        "README's loss table is stale: run python tools/gen_loss_table.py"


# ------------------------------------------------------- against PyTorch

def _torch_case(torch, spec, dtype, seed=0):
    rng = np.random.default_rng(seed)
    *arrays, _ = make_inputs(spec.name, shape_of(spec), np.float64, rng)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    return arrays


def _torch_eval(torch, spec, arrays, k, red, cot=None, wrt=None, hessian=False):
    F = torch.nn.functional
    ts = []
    for op, a in zip(spec.operands, arrays):
        t = torch.tensor(np.asarray(a, dtype=np.float64) if a.dtype.kind == "f" else a)
        if op.differentiable:
            t.requires_grad_(True)
        ts.append(t)
    v = spec.peers["torch"](F, *ts, k, red)
    wrt = wrt or spec.differentiable
    targets = [ts[spec.inputs.index(w)] for w in wrt]
    go = torch.ones_like(v) if cot is None else torch.tensor(np.broadcast_to(cot, v.shape).copy())
    gs = torch.autograd.grad(v, targets, grad_outputs=go, create_graph=hessian,
                             allow_unused=True)
    gs = [torch.zeros_like(t) if g is None else g for t, g in zip(targets, gs)]
    hs = None
    if hessian:     # elementwise: the diagonal is d(sum g)/dx
        hs = []
        for t, g in zip(targets, gs):
            if not g.requires_grad:
                hs.append(np.zeros(t.shape))
                continue
            h, = torch.autograd.grad(g.sum(), t, retain_graph=True, allow_unused=True)
            hs.append(np.zeros(t.shape) if h is None else h.detach().numpy())
    return v.detach().numpy(), [g.detach().numpy() for g in gs], hs


NEW = [s for s in TABLE if s not in _registry.TWO_INPUT]


@pytest.mark.parametrize("spec", NEW, ids=[s.name for s in NEW])
@pytest.mark.parametrize("dtype", [np.float64, np.float32], ids=["f64", "f32"])
def test_new_losses_match_torch(torch, spec, dtype):
    """Values and every gradient of every reduction, each wrt subset, and a
    cotangent with reduction='none', against torch float64 autograd."""
    loss = fl.losses[spec.name]
    arrays = _torch_case(torch, spec, dtype)
    k = defaults(spec)
    rtol = RTOL[dtype]
    for red in spec.reductions:
        want_v, want_g, want_h = _torch_eval(torch, spec, arrays, k, red,
                                             hessian=spec.has_hessian and red != "none")
        what = f"{spec.name} {np.dtype(dtype).name} {red}"
        v = loss(*arrays, reduction=red)
        close(v, want_v, rtol, what + " value")
        for wrt in subsets(spec.differentiable):
            idx = [spec.differentiable.index(w) for w in wrt]
            v2, gs = loss.value_and_grad(*arrays, reduction=red, wrt=wrt)
            assert isinstance(gs, tuple) and len(gs) == len(wrt)
            close(v2, want_v, rtol, what + " value_and_grad value")
            for w, j, g in zip(wrt, idx, gs):
                assert g.shape == arrays[spec.inputs.index(w)].shape
                assert g.dtype == dtype
                close(g, want_g[j], rtol, f"{what} d/d{w} (wrt={wrt})")
        if want_h is not None:
            hs = loss.hessian(*arrays, reduction=red, wrt=spec.differentiable)
            for w, h, wh in zip(spec.differentiable, hs, want_h):
                close(h, wh, rtol, f"{what} hessian {w}")
    # a cotangent per element / sample with reduction="none"
    rng = np.random.default_rng(5)
    v = loss(*arrays, reduction="none")
    cot = rng.standard_normal(np.shape(v))
    _, want_g, _ = _torch_eval(torch, spec, arrays, k, "none", cot=cot)
    gs = loss.grad(*arrays, reduction="none", cotangent=cot, wrt=spec.differentiable)
    for w, g, wg in zip(spec.differentiable, gs, want_g):
        close(g, wg, rtol, f"{spec.name} none cotangent d/d{w}")
    # and a scalar one with the mean
    _, want_g, _ = _torch_eval(torch, spec, arrays, k, "mean", cot=np.float64(-2.5))
    gs = loss.grad(*arrays, cotangent=-2.5, wrt=spec.differentiable)
    for w, g, wg in zip(spec.differentiable, gs, want_g):
        close(g, wg, rtol, f"{spec.name} mean cotangent d/d{w}")


def _options(spec):
    """Non-default parameter values per new loss, from its declaration's
    domains (booleans flipped; reals moved inside the domain)."""
    out = []
    for p in spec.params:
        if p.boolean:
            out.append({p.name: not p.default})
        elif p.name == "p":
            out += [{"p": 1.0}, {"p": 3.0}, {"p": np.inf}]
        elif p.name in ("margin", "eps"):
            out.append({p.name: 0.5 if p.default != 0.5 else 0.25})
    return out


@pytest.mark.parametrize("spec", NEW, ids=[s.name for s in NEW])
def test_new_losses_options_match_torch(torch, spec):
    loss = fl.losses[spec.name]
    arrays = _torch_case(torch, spec, np.float64, seed=3)
    for opt in _options(spec):
        k = {**defaults(spec), **opt}
        for red in ("mean", "sum", "none"):
            want_v, want_g, _ = _torch_eval(torch, spec, arrays, k, red)
            v, gs = loss.value_and_grad(*arrays, reduction=red, wrt=spec.differentiable, **opt)
            what = f"{spec.name} {opt} {red}"
            close(v, want_v, 1e-12, what + " value")
            for w, g, wg in zip(spec.differentiable, gs, want_g):
                close(g, wg, 1e-12, f"{what} d/d{w}")


def test_gaussian_nll_broadcast_var_and_clamp(torch):
    """var of shape (N, 1) against (N, D): its gradient has var's shape (the
    sum over D, as autograd); var below eps: straight-through."""
    rng = np.random.default_rng(1)
    p, t = rng.standard_normal((2, 6, 4))
    var = rng.uniform(0.1, 2, (6, 1))
    var[2, 0] = 1e-9                                  # clamped to eps
    spec = _registry.BY_NAME["gaussian_nll"]
    for red in ("mean", "sum", "none"):
        want_v, want_g, _ = _torch_eval(torch, spec, [p, t, var], defaults(spec), red)
        v, (gp, gv) = fl.gaussian_nll.value_and_grad(p, t, var, reduction=red)
        assert gv.shape == (6, 1)
        close(v, want_v, 1e-12, f"value {red}")
        close(gp, want_g[0], 1e-12, f"d/dy_pred {red}")
        close(gv, want_g[1], 1e-12, f"d/dvar {red}")
    with pytest.raises(ValueError, match="var"):
        fl.gaussian_nll(p, t, -var)
    with pytest.raises(ValueError, match="enlarge"):
        fl.gaussian_nll(p[:, :1], t[:, :1], np.ones((6, 4)))


def test_margin_ranking_and_cosine_labels_are_checked():
    x = np.zeros(4)
    with pytest.raises(ValueError, match=r"margin_ranking.*y.*0\.5"):
        fl.margin_ranking(x, x, np.array([1, -1, 0.5, 1]))
    v = fl.margin_ranking(x, x + 1, np.array([1, -1, np.nan, 1]), reduction="none")
    assert np.isnan(v[2]) and not np.isnan(v[[0, 1, 3]]).any()


def test_kl_div_limits_and_batchmean():
    p = np.log(np.array([[0.5, 0.5, 1e-300], [0.2, 0.3, 0.5]]))
    t = np.array([[1.0, 0.0, 0.0], [0.2, 0.3, 0.5]])
    v = fl.kl_div(p, t, reduction="none")
    assert v[0, 1] == 0 and v[0, 2] == 0 and np.allclose(v[1], 0, atol=1e-16)
    lt = np.log(t)                               # -inf where t == 0: the limit 0
    vl = fl.kl_div(p, lt, log_target=True, reduction="none")
    np.testing.assert_allclose(vl, v, rtol=1e-14, atol=1e-300)
    assert fl.kl_div(p, t, reduction="batchmean") == pytest.approx(v.sum() / 2, rel=1e-14)
    with pytest.raises(ValueError, match="batchmean"):
        fl.kl_div(p, t, reduction="batchmean", axis=0)
    with pytest.raises(ValueError, match="reduction"):
        fl.mse(p, t, reduction="batchmean")


# --------------------------------------------------- the operand model

ALL = [s for s in TABLE]


def _inputs(spec, dtype=np.float64, seed=0):
    *arrays, kw = make_inputs(spec.name, shape_of(spec), dtype, np.random.default_rng(seed))
    return arrays


@pytest.mark.parametrize("spec", ALL, ids=IDS)
def test_wrt_and_tuple_out(spec):
    loss = fl.losses[spec.name]
    arrays = _inputs(spec)
    diff = spec.differentiable
    # the default: one array for one differentiable input, else a tuple
    g = loss.grad(*arrays)
    if len(diff) == 1:
        assert isinstance(g, np.ndarray)
        g1 = loss.grad(*arrays, wrt=(diff[0],))
        assert isinstance(g1, tuple) and len(g1) == 1
        np.testing.assert_array_equal(g1[0], g)
        np.testing.assert_array_equal(loss.grad(*arrays, wrt=diff[0]), g)
    else:
        assert isinstance(g, tuple) and len(g) == len(diff)
    full = loss.grad(*arrays, wrt=diff)
    for wrt in subsets(diff):
        sub = loss.grad(*arrays, wrt=wrt)
        for w, s in zip(wrt, sub):
            np.testing.assert_array_equal(s, full[diff.index(w)])
        outs = tuple(np.full(arrays[spec.inputs.index(w)].shape, np.nan) for w in wrt)
        got = loss.grad(*arrays, wrt=wrt, out=outs)
        assert all(a is b for a, b in zip(got, outs))
        for w, o in zip(wrt, outs):
            np.testing.assert_array_equal(o, full[diff.index(w)])
    for bad in [n for n in spec.inputs if n not in diff] + ["nope"]:
        with pytest.raises(ValueError, match="wrt"):
            loss.grad(*arrays, wrt=bad)
    with pytest.raises(TypeError):
        loss.grad(*arrays, wrt=diff, out=np.empty(1)) if len(diff) > 1 else \
            loss.grad(*arrays, wrt=(diff[0],), out=np.empty_like(arrays[0]))
    with pytest.raises(TypeError, match="wrt"):
        loss(*arrays, wrt=diff[0])


@pytest.mark.parametrize("spec", ALL, ids=IDS)
def test_cotangent_is_the_vjp(spec):
    """grad(cotangent=c) is linear in c: a scalar c scales the gradient of
    a full reduction; per sample with "none" it is c times the unweighted
    per-sample gradient, i.e. the gradient with sample_weight=c; with axis,
    the kept-shape c weights each slice's mean."""
    loss = fl.losses[spec.name]
    arrays = _inputs(spec)
    diff = spec.differentiable
    rtol = 1e-13
    base = loss.grad(*arrays, wrt=diff)
    for c in (2.5, -1.0, 0.0):
        got = loss.grad(*arrays, wrt=diff, cotangent=c)
        for a, b in zip(got, base):
            np.testing.assert_allclose(a, c * b, rtol=rtol, atol=0)
    v = loss(*arrays, reduction="none")
    c = np.random.default_rng(2).standard_normal(np.shape(v))
    got = loss.grad(*arrays, wrt=diff, reduction="none", cotangent=c)
    want = loss.grad(*arrays, wrt=diff, reduction="none", sample_weight=c)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300)
    # value_and_grad keeps the value's own weights
    v2, g2 = loss.value_and_grad(*arrays, wrt=diff, reduction="none", cotangent=c)
    np.testing.assert_array_equal(v2, v)
    for a, b in zip(g2, want):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-300)
    # axis: c over the kept axes, each slice a mean of its own
    nd = np.ndim(v)
    if nd >= 2:
        ck = np.array([1.5, -0.5] * (np.shape(v)[1] // 2) + [2.0] * (np.shape(v)[1] % 2))
        got = loss.grad(*arrays, wrt=diff, axis=0, cotangent=ck)
        ref = loss.reference.grad(*arrays, wrt=diff, axis=0, cotangent=ck)
        for a, b in zip(got, ref):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-300)
    with pytest.raises(ValueError, match="cotangent"):
        loss.grad(*arrays, cotangent=np.ones(3))


@pytest.mark.parametrize("spec", ALL, ids=IDS)
def test_fastloss_matches_its_reference(spec):
    """Every method, reduction and wrt against the float64 reference, both
    compute dtypes."""
    loss = fl.losses[spec.name]
    for dtype, rtol in ((np.float64, 1e-13), (np.float32, 3e-6)):
        arrays = [a.astype(dtype) if a.dtype.kind == "f" else a
                  for a in _inputs(spec, np.float64, seed=4)]
        for red in spec.reductions:
            v = loss(*arrays, reduction=red)
            rv = loss.reference(*arrays, reduction=red)
            close(v, rv, rtol, f"{spec.name} {red} value")
            g = loss.grad(*arrays, reduction=red, wrt=spec.differentiable)
            rg = loss.reference.grad(*arrays, reduction=red, wrt=spec.differentiable)
            for w, a, b in zip(spec.differentiable, g, rg):
                close(a, b, rtol, f"{spec.name} {red} d/d{w}")
            if spec.has_hessian:
                h = loss.hessian(*arrays, reduction=red, wrt=spec.differentiable)
                rh = loss.reference.hessian(*arrays, reduction=red, wrt=spec.differentiable)
                for w, a, b in zip(spec.differentiable, h, rh):
                    close(a, b, rtol, f"{spec.name} {red} hessian {w}")


@pytest.mark.parametrize("spec", ALL, ids=IDS)
def test_grad_and_hessian(spec):
    loss = fl.losses[spec.name]
    arrays = _inputs(spec)
    if not spec.has_hessian:
        with pytest.raises(NotImplementedError, match=spec.name):
            loss.hessian(*arrays)
        with pytest.raises(NotImplementedError, match=spec.name):
            loss.grad_and_hessian(*arrays)
        return
    for red in ("mean", "sum", "none"):
        g, h = loss.grad_and_hessian(*arrays, reduction=red)
        g0 = loss.grad(*arrays, reduction=red)
        h0 = loss.hessian(*arrays, reduction=red)
        for a, b in ((g, g0), (h, h0)):
            for x, y in zip(a if isinstance(a, tuple) else (a,), b if isinstance(b, tuple) else (b,)):
                np.testing.assert_array_equal(x, y)
    og = tuple(np.empty_like(arrays[spec.inputs.index(w)]) for w in spec.differentiable)
    oh = tuple(np.empty_like(arrays[spec.inputs.index(w)]) for w in spec.differentiable)
    single = len(spec.differentiable) == 1
    out = (og[0], oh[0]) if single else (og, oh)
    g, h = loss.grad_and_hessian(*arrays, out=out)
    if single:
        assert g is og[0] and h is oh[0]
    with pytest.raises(TypeError, match="pair"):
        loss.grad_and_hessian(*arrays, out=og[0])


# ----------------------------------------------------- the call surface

@pytest.mark.parametrize("spec", ALL, ids=IDS)
def test_signature_and_docstring(spec):
    loss = fl.losses[spec.name]
    sig = inspect.signature(loss)
    names = list(sig.parameters)
    assert names[:len(spec.inputs)] == list(spec.inputs)
    for p in spec.params:
        assert sig.parameters[p.name].default == p.default
        assert p.name in loss.__doc__
    for k in ("reduction", "sample_weight", "axis", "n_threads", "out=", "wrt=", "cotangent="):
        assert k in loss.__doc__


def test_bind():
    p, t, _ = make_inputs("huber", (50,), np.float64)
    h2 = fl.huber.bind(delta=2.0)
    assert isinstance(h2, fl.Loss) and h2.bound == {"delta": 2.0}
    assert "delta" not in inspect.signature(h2).parameters
    for m in ("__call__", "grad", "value_and_grad", "hessian"):
        a = getattr(h2, m)(p, t)
        b = getattr(fl.huber, m)(p, t, delta=2.0)
        for x, y in zip(np.atleast_1d(a) if m != "value_and_grad" else a,
                        np.atleast_1d(b) if m != "value_and_grad" else b):
            np.testing.assert_array_equal(x, y)
    with pytest.raises(TypeError, match="bound"):
        h2(p, t, delta=3.0)
    with pytest.raises(ValueError, match="delta"):
        fl.huber.bind(delta=-1.0)
    with pytest.raises(TypeError, match="unexpected"):
        fl.huber.bind(beta=1.0)
    ce = fl.cross_entropy.bind(label_smoothing=0.1)
    z, y, _ = make_inputs("cross_entropy", (8, 5), np.float64)
    np.testing.assert_array_equal(ce.grad(z, y), fl.cross_entropy.grad(z, y, label_smoothing=0.1))
    import pickle
    assert pickle.loads(pickle.dumps(h2))(p, t) == h2(p, t)


def test_messages_name_the_loss():
    a = np.zeros(3)
    with pytest.raises(TypeError, match=r"mse\(\) takes 2 positional arguments"):
        fl.mse(a, a, "sum")
    with pytest.raises(TypeError, match="fastloss.get"):
        fl.Loss("huber")
    with pytest.raises(ValueError) as e:
        fl.huber(a, a, delta=np.float64(-2.0))
    assert "np.float64" not in str(e.value) and "huber" in str(e.value)
    assert str(e.value).count("(0, inf)") <= 1


def test_masked_arrays_are_refused():
    m = np.ma.masked_array([1.0, 2.0, 10000.0], mask=[False, False, True])
    with pytest.raises(TypeError, match="mask"):
        fl.mse(m, np.zeros(3))
    with pytest.raises(TypeError, match="mask"):
        fl.mse(np.zeros(3), m)


@pytest.mark.parametrize("name", ["binary_cross_entropy_with_logits", "sigmoid_focal"])
def test_binary_targets_outside_unit_interval_are_refused(name):
    L = fl.losses[name]
    x = np.array([0.5, 8.44, -1.0])
    for bad in (629.4, -0.5, 1.5):
        with pytest.raises(ValueError, match=f"{name}.*y_true"):
            L(x, np.array([0.0, bad, 1.0]), **({"gamma": 0.0} if name == "sigmoid_focal" else {}))
        with pytest.raises(ValueError, match="y_true"):
            L.reference(x, np.array([0.0, bad, 1.0]))
    assert np.isfinite(L(x, np.array([0.0, 0.3, 1.0])))


def test_poisson_negative_targets_are_refused():
    with pytest.raises(ValueError, match="poisson.*y_true"):
        fl.poisson(np.zeros(3), np.array([1.0, -1.0, 2.0]))


def test_bfloat16_is_computed_in_float32():
    ml = pytest.importorskip("ml_dtypes")
    p, t, _ = make_inputs("huber", (100,), np.float32)
    pb = p.astype(ml.bfloat16)
    v, g = fl.huber.value_and_grad(pb, t)
    assert g.dtype == pb.dtype
    want_v, want_g = fl.huber.value_and_grad(pb.astype(np.float32), t)
    assert float(v) == pytest.approx(float(want_v), rel=1e-2)
    np.testing.assert_array_equal(g, want_g.astype(ml.bfloat16))


EW = [s for s in TABLE if s.family == "elementwise"]


@pytest.mark.parametrize("spec", EW, ids=[s.name for s in EW])
def test_fast_path_of_every_elementwise_loss(spec):
    """The compiled fast path takes the plain call of every elementwise loss
    (two or three inputs, out= a tuple for two derivative outputs, the
    declared reductions) and gives the generic path's bits."""
    from fastloss import _core, _families as _call
    loss = fl.losses[spec.name]
    arrays = _inputs(spec, np.float32, seed=8)
    calls = []

    def spy(*a, **k):
        calls.append(a[1])
        return _call.run(*a, **k)
    for red in spec.reductions:
        for m in ("__call__", "grad", "value_and_grad") + (
                ("hessian", "grad_and_hessian") if spec.has_hessian else ()):
            _core.set_slow_path(spy)
            try:
                fast = getattr(loss, m)(*arrays, reduction=red)
                assert not calls, f"{spec.name}.{m} {red}: the fast path was not taken"
                # inputs by keyword: the generic path
                gen = getattr(loss, m)(**dict(zip(spec.inputs, arrays)), reduction=red)
                assert calls, "keyword inputs should take the generic path"
            finally:
                _core.set_slow_path(_call.run)
                calls.clear()
            for a, b in zip(_flat_all(fast), _flat_all(gen)):
                np.testing.assert_array_equal(a, b, err_msg=f"{spec.name}.{m} {red}")
    if len(spec.differentiable) == 2:
        outs = tuple(np.empty_like(arrays[0]) for _ in range(2))
        _, got = loss.value_and_grad(*arrays, out=outs)
        assert got[0] is outs[0] and got[1] is outs[1]


def _flat_all(r):
    if isinstance(r, tuple):
        return [y for x in r for y in _flat_all(x)]
    return [np.asarray(r)]


def test_no_import_cycles():
    """The package's modules import each other without a cycle (module-level
    and function-level imports alike)."""
    import ast
    import pathlib
    root = pathlib.Path(fl.__file__).parent
    graph = {}
    for path in root.rglob("*.py"):
        mod = ".".join(("fastloss",) + path.relative_to(root).with_suffix("").parts)
        mod = mod[:-len(".__init__")] if mod.endswith(".__init__") else mod
        pkg = mod if path.name == "__init__.py" else mod.rsplit(".", 1)[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = pkg.split(".")
                base = base[:len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
                names = [target + "." + a.name for a in node.names] if not node.module else []
                deps.add(target)
                deps.update(names)
        graph[mod] = deps
    graph = {m: {d for d in ds if d in graph and d != m} for m, ds in graph.items()}

    def visit(m, stack):
        assert m not in stack, "import cycle: " + " -> ".join(stack + [m])
        for d in graph[m]:
            if not d.startswith(m + "."):        # a package importing its own modules
                visit(d, stack + [m])
    for m in graph:
        visit(m, [])
