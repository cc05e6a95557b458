"""fastloss.torch (SPEC section 10): every loss of the table as a
differentiable PyTorch function and an nn.Module.

Cases are generated from the declarations (fastloss._registry.TABLE): each
parameter at its default and at a non-default value taken from its domain,
the array parameters, every reduction.  Oracles, independent of the
adapter: the declaration's torch spelling run by torch's own float64
autograd (values, gradients, double backward), the pure-NumPy float64
reference (fl.<loss>.reference: sample weights, which torch's losses lack),
and torch.autograd.gradcheck / gradgradcheck (finite differences, float64).
Tolerances: float64 1e-12 of the result's scale (the kernels are a few ulp;
torch's float64 a few more); float32 2e-5 of the scale (rounding of inputs
and outputs, sums in float64); float16 / bfloat16 the rounding of the
result to that dtype (2^-10 / 2^-7 relative, twice for margin).
"""
import math
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import fastloss as fl                                   # noqa: E402
import fastloss.torch as flt                            # noqa: E402
from fastloss._registry import TABLE, make_inputs       # noqa: E402

F = torch.nn.functional
IDS = [s.name for s in TABLE]
ELEMENTWISE = [s for s in TABLE if s.family == "elementwise" and s.has_hessian]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def close(got, want, rtol, what):
    got = np.asarray(got.detach().double().numpy(force=True)
                     if isinstance(got, torch.Tensor) else got, dtype=np.float64)
    want = np.asarray(want.detach().double().numpy(force=True)
                      if isinstance(want, torch.Tensor) else want, dtype=np.float64)
    assert got.shape == want.shape, f"{what}: shape {got.shape} != {want.shape}"
    scale = max(float(np.max(np.abs(want))) if want.size else 0.0, 1e-300)
    err = float(np.max(np.abs(got - want))) if want.size else 0.0
    assert err <= rtol * scale, f"{what}: max error {err:.3g} > {rtol:g} * {scale:.3g}"


# ---------------------------------------------------------------- cases

def shape_of(spec, small=False):
    if small:
        return {"elementwise": (3, 2), "class": (4, 3), "rows": (3, 4)}[spec.family]
    return {"elementwise": (6, 4), "class": (6, 5), "rows": (7, 5)}[spec.family]


def _other_value(p):
    """A non-default value of parameter p from its declared domain."""
    d = p.domain
    if p.boolean:
        return not p.default
    if p.name == "class_axis":
        return 1                       # logits (N, C, d): torch's own layout
    if p.allow_none and p.default is not None:
        return None
    if p.name == "ignore_index":
        return 0                       # a label that occurs
    if d.values is not None:
        return next(v for v in d.values if v != p.default)
    if p.default is None:
        return None
    lo, hi = d.lo, d.hi
    if math.isfinite(lo) and math.isfinite(hi):
        v = lo + 0.3 * (hi - lo)
    else:
        v = p.default * 0.5 if p.default else 0.5
    if v == p.default:
        v = v * 0.5 if v else 0.25
    assert bool(d.contains(v)), (p, v)
    return int(v) if p.integer else v


def options(spec):
    """Parameter sets of a loss: the defaults, each parameter moved in its
    domain, and each array parameter given."""
    out = [{}]
    for p in spec.params:
        out.append({p.name: _other_value(p)})
    for a in spec.array_params:
        out.append({a.name: "array"})
    return out


def opt_id(opt):
    return ",".join(f"{k}={v}" for k, v in opt.items()) or "default"


CASES = [(s, o) for s in TABLE for o in options(s)]
CASE_IDS = [f"{s.name}[{opt_id(o)}]" for s, o in CASES]


def make_case(spec, opt, dtype=np.float64, seed=0, small=False):
    """(numpy arrays of the inputs, params with array params as numpy) for a
    case; class_axis=1 uses (N, C, d) logits."""
    rng = np.random.default_rng(seed)
    shape = shape_of(spec, small)
    if opt.get("class_axis") == 1:
        N, C = shape
        *arrays, _ = make_inputs(spec.name, (N, 3, C), np.float64, rng)
        arrays[0] = np.ascontiguousarray(np.moveaxis(arrays[0], -1, 1))   # (N, C, 3)
    else:
        *arrays, _ = make_inputs(spec.name, shape, np.float64, rng)
    arrays = [a.astype(dtype) if a.dtype.kind == "f" else a for a in arrays]
    params = {}
    for k, v in opt.items():
        if v == "array":
            if k == "class_weight":
                C = arrays[0].shape[opt.get("class_axis", -1)]
                v = rng.uniform(0.5, 2.0, C)
            else:                           # per-element (pos_weight)
                v = rng.uniform(0.5, 2.0, arrays[0].shape)
        params[k] = v
    return arrays, params


def tensors(spec, arrays, grad=True, dtype=None):
    out = []
    for op, a in zip(spec.operands, arrays):
        t = torch.from_numpy(np.array(a))
        if dtype is not None and t.dtype.is_floating_point:
            t = t.to(dtype)
        if grad and op.differentiable:
            t.requires_grad_(True)
        out.append(t)
    return out


def torch_params(spec, params):
    """Parameters for the torch peer (defaults filled, arrays as tensors)."""
    k = {p.name: p.default for p in spec.params}
    for k2, v in params.items():
        k[k2] = torch.from_numpy(np.asarray(v)) if isinstance(v, np.ndarray) else v
    return k


def fl_params(params):
    return {k: (torch.from_numpy(v) if isinstance(v, np.ndarray) else v)
            for k, v in params.items()}


def peer(spec, ts, params, red):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return spec.peers["torch"](F, *ts, torch_params(spec, params), red)


# ------------------------------------------------ values and gradients

@pytest.mark.parametrize("spec,opt", CASES, ids=CASE_IDS)
def test_values_and_gradients_match_torch(spec, opt):
    """float64, every reduction: value and the gradient of every
    differentiable input against the torch spelling's autograd; "none" with
    a non-uniform upstream gradient."""
    if opt.get("class_axis") == 1 and spec.name == "multi_margin":
        pytest.skip("torch's multi_margin_loss takes (N, C) only")
    arrays, params = make_case(spec, opt)
    fn = getattr(flt, spec.name)
    for red in spec.reductions:
        ours = tensors(spec, arrays)
        theirs = tensors(spec, arrays)
        v = fn(*ours, reduction=red, **fl_params(params))
        w = peer(spec, theirs, params, red)
        what = f"{spec.name} {opt_id(opt)} {red}"
        assert v.dtype == torch.float64 and v.shape == w.shape, what
        close(v, w, 1e-12, what + " value")
        up = torch.from_numpy(np.random.default_rng(1).uniform(-2, 2, tuple(v.shape)))
        v.backward(up)
        w.backward(up)
        for op, a, b in zip(spec.operands, ours, theirs):
            if op.differentiable:
                assert a.grad is not None and a.grad.shape == a.shape, what
                close(a.grad, b.grad if b.grad is not None else torch.zeros_like(b), 1e-12,
                      f"{what} d/d{op.name}")


@pytest.mark.parametrize("spec", TABLE, ids=IDS)
@pytest.mark.parametrize("red", ["mean", "none"])
def test_sample_weight_matches_the_reference(spec, red):
    """Sample weights (torch's losses have none): the float64 reference."""
    arrays, _ = make_case(spec, {})
    ref = fl.losses[spec.name].reference
    sshape = np.shape(fl.losses[spec.name](*arrays, reduction="none"))
    sw = np.random.default_rng(2).uniform(0.1, 2.0, sshape)
    ts = tensors(spec, arrays)
    v = getattr(flt, spec.name)(*ts, reduction=red, sample_weight=torch.from_numpy(sw))
    close(v, ref(*arrays, reduction=red, sample_weight=sw), 1e-12, f"{spec.name} value")
    up = np.random.default_rng(3).uniform(-2, 2, np.shape(v))
    v.backward(torch.from_numpy(up))
    gs = ref.grad(*arrays, reduction=red, sample_weight=sw, wrt=spec.differentiable,
                  cotangent=up)
    for n, g in zip(spec.differentiable, gs):
        close(ts[spec.inputs.index(n)].grad, g, 1e-12, f"{spec.name} d/d{n}")


@pytest.mark.parametrize("spec", TABLE, ids=IDS)
def test_only_the_inputs_that_require_grad_are_computed(spec):
    """wrt = the inputs that require grad: the others get no .grad; none
    requiring grad gives a plain value (no graph)."""
    arrays, _ = make_case(spec, {})
    fn = getattr(flt, spec.name)
    for n in spec.differentiable:
        ts = tensors(spec, arrays, grad=False)
        t = ts[spec.inputs.index(n)].requires_grad_(True)
        v = fn(*ts)
        v.backward()
        want = fl.losses[spec.name].grad(*arrays, wrt=(n,))[0]
        close(t.grad, want, 1e-12, f"{spec.name} d/d{n}")
        assert all(u.grad is None for u in ts if u is not t)
    v = fn(*tensors(spec, arrays, grad=False))
    assert not v.requires_grad and v.grad_fn is None
    close(v, fl.losses[spec.name](*arrays), 0, "value")


# ---------------------------------------------------------- gradcheck

@pytest.mark.parametrize("spec,opt", CASES, ids=CASE_IDS)
def test_gradcheck(spec, opt):
    arrays, params = make_case(spec, opt, small=True, seed=4)
    fn = getattr(flt, spec.name)
    diff = [i for i, op in enumerate(spec.operands) if op.differentiable]
    ts = tensors(spec, arrays)
    kp = fl_params(params)
    for red in spec.reductions:
        def f(*xs):
            full = list(ts)
            for i, x in zip(diff, xs):
                full[i] = x
            return fn(*full, reduction=red, **kp)
        assert torch.autograd.gradcheck(f, tuple(ts[i] for i in diff), eps=1e-6, atol=1e-8,
                                        rtol=1e-6), f"{spec.name} {red}"


@pytest.mark.parametrize("spec", ELEMENTWISE, ids=[s.name for s in ELEMENTWISE])
@pytest.mark.parametrize("red", ["mean", "sum", "none"])
def test_gradgradcheck_elementwise(spec, red):
    """Double backward (diagonal Hessian), one differentiable input at a
    time, against finite differences and against torch's own double backward."""
    arrays, _ = make_case(spec, {}, small=True, seed=5)
    fn = getattr(flt, spec.name)
    for n in spec.differentiable:
        i = spec.inputs.index(n)
        base = tensors(spec, arrays, grad=False)

        def f(x):
            full = list(base)
            full[i] = x
            return fn(*full, reduction=red)
        x = base[i].clone().requires_grad_(True)
        assert torch.autograd.gradgradcheck(f, (x,), eps=1e-6, atol=1e-8, rtol=1e-6)
        # Hessian-vector product against the torch spelling's
        u = torch.from_numpy(np.random.default_rng(6).uniform(-1, 1, tuple(x.shape)))
        res = []
        for g in (lambda z: f(z), lambda z: peer(spec, [*base[:i], z, *base[i + 1:]], {}, red)):
            z = base[i].clone().requires_grad_(True)
            v = g(z)
            gz, = torch.autograd.grad(v.sum(), z, create_graph=True)
            if not gz.requires_grad:        # torch: a piecewise-constant gradient
                res.append(torch.zeros_like(z))
                continue
            hz, = torch.autograd.grad((gz * u).sum(), z, allow_unused=True)
            res.append(torch.zeros_like(z) if hz is None else hz)
        close(res[0], res[1], 1e-10, f"{spec.name} {red} d/d{n} HVP")


def test_double_backward_refused_where_not_exact():
    z = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 4, (5,))
    g, = torch.autograd.grad(flt.cross_entropy(z, y), z, create_graph=True)
    with pytest.raises(NotImplementedError, match="cross_entropy.*double backward"):
        g.sum().backward()
    # mixed second derivatives (two inputs at once)
    mu = torch.randn(6, dtype=torch.float64, requires_grad=True)
    var = torch.rand(6, dtype=torch.float64).add(0.5).requires_grad_(True)
    gm, gv = torch.autograd.grad(flt.gaussian_nll(mu, torch.zeros(6, dtype=torch.float64), var),
                                 (mu, var), create_graph=True)
    with pytest.raises(NotImplementedError, match="mixed second derivatives"):
        (gm.sum() + gv.sum()).backward()
    # the derivative with respect to the upstream gradient (elementwise, "none")
    x = torch.randn(5, dtype=torch.float64, requires_grad=True)
    t = torch.randn(5, dtype=torch.float64)
    up = torch.randn(5, dtype=torch.float64, requires_grad=True)
    g, = torch.autograd.grad(flt.mse(x, t, reduction="none"), x, up, create_graph=True)
    d_up, d_x = torch.autograd.grad((g * t).sum(), (up, x))
    close(d_up, 2 * (x - t) * t, 1e-15, "d/d upstream")
    close(d_x, 2 * up * t, 1e-15, "d/dx")


# ------------------------------------------------------ dtypes, shapes

@pytest.mark.parametrize("spec", TABLE, ids=IDS)
@pytest.mark.parametrize("dtype,rtol", [(torch.float32, 2e-5), (torch.float16, 2 ** -9),
                                        (torch.bfloat16, 2 ** -6)],
                         ids=["f32", "f16", "bf16"])
def test_dtypes(spec, dtype, rtol):
    """Value and gradients come back in the input's dtype; float16 and
    bfloat16 are computed in float32 (so they match the float64 result to
    the rounding of the inputs and of the result)."""
    arrays, _ = make_case(spec, {})
    ts = tensors(spec, arrays, dtype=dtype)
    # the oracle sees the same (rounded) inputs, in float64
    rounded = [t.detach().double().numpy() if t.dtype.is_floating_point else t.numpy()
               for t in ts]
    v = getattr(flt, spec.name)(*ts, reduction="sum")
    assert v.dtype == dtype
    v.backward()
    ref = fl.losses[spec.name]
    close(v, ref(*rounded, reduction="sum"), rtol, f"{spec.name} value")
    gs = ref.grad(*rounded, reduction="sum", wrt=spec.differentiable)
    for n, g in zip(spec.differentiable, gs):
        t = ts[spec.inputs.index(n)]
        assert t.grad.dtype == dtype
        close(t.grad, g, rtol, f"{spec.name} d/d{n}")


def test_shapes_broadcast_noncontiguous_and_zero_copy():
    x = torch.randn(8, 6, dtype=torch.float64)[:, ::2].requires_grad_(True)   # strided
    y = torch.randn(8, 1, dtype=torch.float64)                                  # broadcast
    v = flt.huber(x, y, reduction="none")
    assert v.shape == (8, 3)
    up = torch.randn(8, 3, dtype=torch.float64)
    v.backward(up)
    x2 = x.detach().clone().requires_grad_(True)
    F.huber_loss(x2, y.expand(8, 3), reduction="none").backward(up)
    close(x.grad, x2.grad, 1e-12, "strided")
    # a broadcast differentiable input under "none": the cotangent pass
    mu = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    var = torch.rand(5, 1, dtype=torch.float64).add(0.3).requires_grad_(True)
    t = torch.randn(5, 3, dtype=torch.float64)
    up = torch.randn(5, 3, dtype=torch.float64)
    flt.gaussian_nll(mu, t, var, reduction="none").backward(up)
    mu2, var2 = mu.detach().clone().requires_grad_(), var.detach().clone().requires_grad_()
    F.gaussian_nll_loss(mu2, t, var2, reduction="none").backward(up)
    close(mu.grad, mu2.grad, 1e-12, "mu")
    close(var.grad, var2.grad, 1e-12, "var (broadcast)")
    # axis= reductions (expanded upstream gradient)
    z = torch.randn(4, 5, 6, dtype=torch.float64, requires_grad=True)
    s = torch.randn(4, 5, 6, dtype=torch.float64)
    v = flt.mse(z, s, axis=(0, 2))
    assert v.shape == (5,)
    up = torch.randn(5, dtype=torch.float64)
    v.backward(up)
    z2 = z.detach().clone().requires_grad_()
    ((z2 - s) ** 2).mean(dim=(0, 2)).backward(up)
    close(z.grad, z2.grad, 1e-12, "axis")
    # 0-d and empty inputs
    a = torch.tensor(1.5, dtype=torch.float64, requires_grad=True)
    flt.mse(a, torch.tensor(0.5, dtype=torch.float64)).backward()
    assert a.grad.item() == pytest.approx(2.0)
    e = torch.zeros(0, 3, requires_grad=True)
    assert flt.mse(e, torch.zeros(0, 3), reduction="sum").item() == 0.0
    # zero copy: an input is read in place (the array fastloss reads has the
    # tensor's data pointer), a result tensor is over fastloss's own buffer
    x = torch.randn(1000)[::2]
    assert flt._np(x).ctypes.data == x.data_ptr()
    r = np.arange(4.0)
    assert flt._tt(r, torch.float64).data_ptr() == r.ctypes.data


def test_class_losses_other_layouts():
    z = torch.randn(3, 4, 5, dtype=torch.float64, requires_grad=True)    # (N, C, d)
    y = torch.randint(0, 4, (3, 5))
    up = torch.randn(3, 5, dtype=torch.float64)
    flt.cross_entropy(z, y, class_axis=1, reduction="none").backward(up)
    z2 = z.detach().clone().requires_grad_()
    F.cross_entropy(z2, y, reduction="none").backward(up)
    close(z.grad, z2.grad, 1e-12, "(N, C, d)")
    p = torch.softmax(torch.randn(6, 4, dtype=torch.float64), -1)      # probability targets
    z = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    flt.cross_entropy(z, p, label_smoothing=0.1).backward()
    z2 = z.detach().clone().requires_grad_()
    F.cross_entropy(z2, p, label_smoothing=0.1).backward()
    close(z.grad, z2.grad, 1e-12, "probabilities")


# ---------------------------------------------------------------- errors

def test_errors():
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.randn(4, 3, requires_grad=True)
    with pytest.raises(TypeError, match="y_true requires grad.*no gradient"):
        flt.mse(x, y)
    with pytest.raises(TypeError, match="sample_weight requires grad"):
        flt.mse(x, y.detach(), sample_weight=torch.ones(4, 3, requires_grad=True))
    meta = torch.empty(4, 3, device="meta")
    with pytest.raises(TypeError, match="meta.*CPU"):
        flt.mse(meta, meta)
    with pytest.raises(TypeError, match="unexpected keyword argument 'out'"):
        flt.mse(x, y.detach(), out=None)
    with pytest.raises(TypeError, match="positional"):
        flt.mse(x, y.detach(), "sum")
    with pytest.raises(ValueError, match="delta"):
        flt.huber(x, y.detach(), delta=-1.0)
    with pytest.raises(ValueError, match="delta"):
        flt.HuberLoss(delta=-1.0)
    with pytest.raises(ValueError):
        flt.cross_entropy(torch.randn(4, 3), torch.tensor([0, 1, 2, 3]))


def test_cuda_is_refused_with_a_message():
    if not torch.cuda.is_available():
        # the check is on the device type; a meta tensor stands in for CUDA
        t = torch.empty(3, device="meta")
        with pytest.raises(TypeError, match="on the meta device.*cpu"):
            flt.mse(t, t)
        return
    t = torch.randn(3, device="cuda")
    with pytest.raises(TypeError, match="cuda"):
        flt.mse(t, t)


# ---------------------------------------------------------------- modules

TORCH_MODULES = {          # torch.nn's names (an independent list)
    "mse": "MSELoss", "mae": "L1Loss", "huber": "HuberLoss", "smooth_l1": "SmoothL1Loss",
    "poisson": "PoissonNLLLoss", "binary_cross_entropy": "BCELoss",
    "binary_cross_entropy_with_logits": "BCEWithLogitsLoss",
    "cross_entropy": "CrossEntropyLoss", "nll": "NLLLoss", "multi_margin": "MultiMarginLoss",
    "gaussian_nll": "GaussianNLLLoss", "kl_div": "KLDivLoss",
    "margin_ranking": "MarginRankingLoss", "cosine_embedding": "CosineEmbeddingLoss",
    "triplet_margin": "TripletMarginLoss",
    # torch lacks these
    "log_cosh": "LogCoshLoss", "quantile": "QuantileLoss", "tweedie": "TweedieLoss",
    "sigmoid_focal": "SigmoidFocalLoss", "hinge": "HingeLoss",
    "squared_hinge": "SquaredHingeLoss",
}


def test_every_loss_has_a_module_named_as_torch_does():
    assert set(TORCH_MODULES) == {s.name for s in TABLE}
    for spec in TABLE:
        cls = flt.modules[spec.name]
        assert cls.__name__ == TORCH_MODULES[spec.name]
        assert getattr(flt, cls.__name__) is cls
        assert issubclass(cls, torch.nn.Module)
        assert (cls.torch_peer is not None) == hasattr(torch.nn, cls.__name__)


@pytest.mark.parametrize("spec,opt", [c for c in CASES if "class_axis" not in c[1]],
                         ids=[i for c, i in zip(CASES, CASE_IDS) if "class_axis" not in c[1]])
def test_module_matches_the_function(spec, opt):
    arrays, params = make_case(spec, opt)
    kp = fl_params(params)
    m = flt.modules[spec.name](reduction="sum", **kp)
    ts = tensors(spec, arrays)
    close(m(*ts), getattr(flt, spec.name)(*ts, reduction="sum", **kp), 0, spec.name)


def test_module_constructor_state_dict_and_repr():
    m = flt.CrossEntropyLoss(label_smoothing=0.1, reduction="sum")
    assert repr(m) == "CrossEntropyLoss(reduction='sum', label_smoothing=0.1)"
    assert list(m.state_dict()) == []              # torch: no weight, no buffer
    w = torch.tensor([1.0, 2.0, 0.5], dtype=torch.float64)
    m = flt.CrossEntropyLoss(weight=w, ignore_index=-100)
    t = torch.nn.CrossEntropyLoss(weight=w)
    assert list(m.state_dict()) == list(t.state_dict()) == ["weight"]
    z = torch.randn(7, 3, dtype=torch.float64, requires_grad=True)
    y = torch.tensor([0, 1, 2, -100, 1, 0, 2])
    close(m(z, y), t(z, y), 1e-12, "weighted, ignore_index")
    m2 = flt.CrossEntropyLoss(weight=torch.ones(3, dtype=torch.float64), ignore_index=-100)
    m2.load_state_dict(m.state_dict())
    close(m2(z, y), t(z, y), 1e-12, "loaded state")
    assert flt.MultiMarginLoss(p=2).power == 2                # torch's name of power
    assert repr(flt.HuberLoss(delta=2.0)) == "HuberLoss(reduction='mean', delta=2.0)"
    with pytest.raises(TypeError, match="unexpected keyword argument 'size_average'"):
        flt.MSELoss(size_average=True)
    with pytest.raises(ValueError, match="reduction"):
        flt.MSELoss(reduction="batchmean")
    assert flt.KLDivLoss(reduction="batchmean").reduction == "batchmean"
    # modules move with .to() / are picklable in a state dict like torch's
    b = flt.BCEWithLogitsLoss(pos_weight=torch.tensor([2.0]))
    assert list(b.state_dict()) == ["pos_weight"]
    assert b.double().pos_weight.dtype == torch.float64


# ------------------------------------------ torch.compile and torch.func

def test_torch_func_grad():
    x = torch.randn(6, 5, dtype=torch.float64)
    y = torch.randint(0, 5, (6,))
    g = torch.func.grad(lambda z: flt.cross_entropy(z, y, label_smoothing=0.1))(x)
    z = x.clone().requires_grad_()
    F.cross_entropy(z, y, label_smoothing=0.1).backward()
    close(g, z.grad, 1e-12, "func.grad")
    # value_and_grad, several inputs
    mu, var, t = torch.randn(5), torch.rand(5) + 0.5, torch.randn(5)
    (gm, gv), v = torch.func.grad_and_value(
        lambda a, b: flt.gaussian_nll(a, t, b), argnums=(0, 1))(mu, var)
    mu2, var2 = mu.clone().requires_grad_(), var.clone().requires_grad_()
    w = F.gaussian_nll_loss(mu2, t, var2)
    w.backward()
    close(v, w, 2e-6, "value")
    close(gm, mu2.grad, 2e-5, "d mu")
    close(gv, var2.grad, 2e-5, "d var")
    # second order through func (elementwise): the Hessian diagonal
    h = torch.func.grad(lambda a: torch.func.grad(
        lambda b: flt.log_cosh(b, t.double(), reduction="sum"))(a).sum())(mu.double())
    d = mu.double() - t.double()
    close(h, 1 - torch.tanh(d) ** 2, 1e-12, "func.grad of func.grad")


def test_forward_mode_and_vmap_fail_loudly():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    with pytest.raises(NotImplementedError, match="forward-mode"):
        torch.func.jvp(lambda a: flt.mse(a, y), (x,), (torch.ones_like(x),))
    import torch.autograd.forward_ad as fwAD
    with fwAD.dual_level():
        d = fwAD.make_dual(x, torch.ones_like(x))
        with pytest.raises(NotImplementedError, match="forward-mode"):
            flt.mse(d, y)
    with pytest.raises(NotImplementedError, match="vmap"):
        torch.func.vmap(lambda a, b: flt.mse(a, b))(x, y)
    with pytest.raises(NotImplementedError, match="vmap"):
        torch.func.vmap(torch.func.grad(lambda a, b: flt.mse(a, b)))(x, y)


@pytest.mark.parametrize("name", ["mse", "cross_entropy", "gaussian_nll", "triplet_margin"])
def test_torch_compile_fullgraph(name):
    spec = fl.losses[name].spec
    arrays, _ = make_case(spec, {}, dtype=np.float32)
    fn = getattr(flt, name)
    diff = [i for i, op in enumerate(spec.operands) if op.differentiable]

    def step(*ts):
        return fn(*ts, reduction="mean") * 2.0

    def step_none(*ts):
        v = fn(*ts, reduction="none")
        return (v * torch.linspace(-1.0, 2.0, v.numel()).reshape(v.shape)).sum()

    for f in (step, step_none):
        torch._dynamo.reset()
        compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
        for seed in (0, 1):                 # a second call reuses the graph
            arrays, _ = make_case(spec, {}, dtype=np.float32, seed=seed)
            a = tensors(spec, arrays)
            b = tensors(spec, arrays)
            v1 = compiled(*a)
            v1.backward()
            v2 = f(*b)
            v2.backward()
            close(v1, v2, 1e-6, f"{name} {f.__name__} compiled value")
            for i in diff:
                close(a[i].grad, b[i].grad, 1e-6, f"{name} {f.__name__} compiled grad")


def test_torch_compile_inductor_training_step():
    """A small model + fastloss loss, compiled whole with the default
    backend: no graph break, same result as eager."""
    torch.manual_seed(0)
    model = torch.nn.Linear(8, 4)
    crit = flt.CrossEntropyLoss(label_smoothing=0.05)
    x, y = torch.randn(16, 8), torch.randint(0, 4, (16,))

    def loss_fn(xb, yb):
        return crit(model(xb), yb)
    compiled = torch.compile(loss_fn, fullgraph=True)
    v = compiled(x, y)
    v.backward()
    g1 = model.weight.grad.clone()
    model.weight.grad = None
    w = loss_fn(x, y)
    w.backward()
    close(v, w, 1e-6, "value")
    close(g1, model.weight.grad, 1e-5, "weight grad")


def test_custom_op_is_registered_with_a_fake():
    x, y = torch.randn(4, 3), torch.randn(4, 3)
    cfg = flt._config("mse", ("y_pred", "y_true"), {"reduction": "none"}, ("y_pred",),
                      "value_and_grad")
    torch.library.opcheck(torch.ops.fastloss.run.default, ([x, y], cfg))
    v, g = torch.ops.fastloss.run([x, y], cfg)
    close(v, (x - y) ** 2, 1e-6, "op value")
    close(g, 2 * (x - y), 1e-6, "op grad")
