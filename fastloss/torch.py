"""fastloss in PyTorch: every loss of the table as a differentiable function
and as an ``nn.Module`` (SPEC section 10).

    import fastloss.torch as flt
    loss = flt.cross_entropy(logits, labels, label_smoothing=0.1)   # a tensor
    loss.backward()                                                  # no second kernel pass
    crit = flt.CrossEntropyLoss(label_smoothing=0.1)                 # torch.nn's spelling

Everything here is derived from the loss declarations (``fastloss.losses``):
the inputs, which of them are differentiable, the parameters, the torch
peer's spelling (which names the module: ``F.mse_loss`` -> ``MSELoss``; a
loss torch lacks gets a CamelCase name of ours, ``LogCoshLoss``).

How a call runs.  The forward pass is ONE fused ``value_and_grad`` call of
the C kernels with ``wrt`` = the inputs that require grad (a plain value
call when none does); it saves the gradients.  Backward multiplies them by
the incoming gradient: a scalar for "mean" / "sum" / "batchmean"; for
"none" (and ``axis=``) the incoming gradient broadcast over each sample
when every differentiated input has y_pred's shape (exact: the saved
gradient is that of the sum of the values), else a second kernel pass with
``cotangent=``.  Double backward is exact for the elementwise losses (the
Hessian is diagonal: ``fl.<loss>.hessian``); the other families, and mixed
second derivatives between two inputs, raise ``NotImplementedError``.

The kernels run as the custom op ``torch.ops.fastloss.run`` (with a fake
implementation), wrapped in an ``autograd.Function`` with ``setup_context``,
so ``torch.compile(fullgraph=True)`` and ``torch.func.grad`` work; forward
mode AD and ``vmap`` raise ``NotImplementedError`` (never silent zeros).
Tensors go in and out without copies (CPU, any strides); float16 is
computed in float32 and bfloat16 through float32, each returned in its own
dtype; CUDA tensors are a ``TypeError``.
"""
import functools
import inspect
import json
import math

import numpy as np
import torch

import fastloss as _fl
from . import _registry

__all__ = []          # filled below: every loss and every module

_METHODS = ("value", "value_and_grad", "grad", "hessian")


# ----------------------------------------------------------------- config

class _Cfg:
    """A parsed call configuration (the custom op's string argument)."""
    __slots__ = ("loss", "spec", "names", "nin", "kw", "wrt", "method", "cot", "wrt_kw",
                 "single")

    def __init__(self, d):
        self.loss = _fl.losses[d["loss"]]
        self.spec = self.loss.spec
        self.names = tuple(d["names"])     # names of the tensors, in order
        self.nin = len(self.spec.inputs)
        self.kw = d["kw"]                  # reduction, axis, n_threads, scalar params
        self.wrt = tuple(d["wrt"])
        self.method = d["method"]
        self.cot = d["cot"]                # the last tensor is the cotangent
        # wrt as the Loss method takes it: none when it is the default (the
        # compiled fast path applies only then); single: one array comes back
        full = self.wrt == self.spec.differentiable
        self.wrt_kw = {} if full else {"wrt": self.wrt}
        self.single = full and len(self.wrt) == 1


_CFGS = {}       # config text -> _Cfg (a plain lookup: torch.compile traces it)


def _cfg(text):
    c = _CFGS.get(text)
    if c is None:
        c = _CFGS[text] = _Cfg(json.loads(text))
    return c


@torch.compiler.assume_constant_result
def _config(name, names, kw, wrt, method, cot=False):
    """The configuration string of a call (kw: a dict, or a tuple of its items)."""
    items = tuple(sorted(kw.items())) if isinstance(kw, dict) else kw
    return _config_text(name, tuple(names), items, tuple(wrt), method, cot)


@functools.lru_cache(maxsize=4096)
def _config_text(name, names, items, wrt, method, cot):
    text = json.dumps({"loss": name, "names": list(names), "kw": dict(items),
                       "wrt": list(wrt), "method": method, "cot": cot}, sort_keys=True)
    _cfg(text)
    return text


# ------------------------------------------------------------ the kernels

def _np(t):
    """A CPU tensor as a NumPy array without copying (bfloat16 via float32)."""
    if t.dtype == torch.bfloat16:
        t = t.float()
    try:
        return t.detach().numpy() if t.requires_grad else t.numpy()
    except RuntimeError:         # a ZeroTensor (autograd's zero gradient), conj / neg views
        return t.numpy(force=True)


def _tt(a, dtype):
    """A NumPy result as a tensor of `dtype` (no copy when the dtypes agree)."""
    a = np.asarray(a)
    if not a.flags.writeable:
        a = a.copy()
    t = torch.from_numpy(a)
    return t if t.dtype == dtype else t.to(dtype)


def _out_dtype(t):
    if t.dtype in (torch.float16, torch.bfloat16, torch.float32, torch.float64):
        return t.dtype
    return torch.float64


def _run_numpy(cfg, arrays):
    """Runs the call described by cfg on the tensors; returns a list of
    tensors: [value] + gradients (value_and_grad), gradients (grad: the VJP
    with the cotangent), Hessian diagonals (hessian), [value] (value)."""
    nps = [_np(a) for a in arrays]
    kw = dict(cfg.kw)
    if cfg.cot:
        kw["cotangent"] = nps.pop()
    kw.update(zip(cfg.names[cfg.nin:], nps[cfg.nin:]))
    ins = nps[:cfg.nin]
    odt = _out_dtype(arrays[0])
    loss = cfg.loss
    if cfg.method == "value":
        return [_tt(loss(*ins, **kw), odt)]
    kw.update(cfg.wrt_kw)
    if cfg.method == "value_and_grad":
        v, g = loss.value_and_grad(*ins, **kw)
        return [_tt(v, odt)] + ([_tt(g, odt)] if cfg.single else [_tt(x, odt) for x in g])
    if cfg.method == "grad":
        g = loss.grad(*ins, **kw)
    elif cfg.method == "hessian":
        g = loss.hessian(*ins, **kw)
    else:
        raise ValueError(f"fastloss.torch: unknown method {cfg.method!r}")
    return [_tt(g, odt)] if cfg.single else [_tt(x, odt) for x in g]


def _sample_shape(spec, shape, kw):
    """The per-sample shape of a call whose first input has `shape`."""
    if spec.family == "class":
        if len(shape) <= 1:
            return ()
        ax = kw.get("class_axis", -1) % len(shape)
        return shape[:ax] + shape[ax + 1:]
    if spec.family == "rows":
        return shape[:-1]
    return shape


def _value_shape(spec, shape, kw):
    ss = tuple(_sample_shape(spec, tuple(shape), kw))
    red, axis = kw.get("reduction", "mean"), kw.get("axis")
    if red == "none":
        return ss
    if axis is None:
        return ()
    axes = {a % len(ss) for a in ((axis,) if isinstance(axis, int) else axis)}
    return tuple(n for i, n in enumerate(ss) if i not in axes)


def _fake_run(cfg, arrays):
    x = arrays[0]
    odt = _out_dtype(x)
    byname = dict(zip(cfg.names, arrays))
    if cfg.method in ("value", "value_and_grad"):
        out = [x.new_empty(_value_shape(cfg.spec, x.shape, cfg.kw), dtype=odt)]
        if cfg.method == "value":
            return out
    else:
        out = []
    return out + [byname[n].new_empty(byname[n].shape, dtype=odt) for n in cfg.wrt]


@torch.library.custom_op("fastloss::run", mutates_args=())
def _run_op(arrays: list[torch.Tensor], config: str) -> list[torch.Tensor]:
    """fastloss's kernels on CPU tensors (one call of a Loss method)."""
    return _run_numpy(_cfg(config), arrays)


@_run_op.register_fake
def _(arrays, config):
    return _fake_run(_cfg(config), arrays)


def _run(arrays, config):
    """The custom op under torch.compile / tracing; in eager mode its
    implementation directly (the op dispatch costs ~10 us a call)."""
    if torch.compiler.is_compiling():
        return torch.ops.fastloss.run(list(arrays), config)
    return _run_numpy(_cfg(config), arrays)


# --------------------------------------------------------------- autograd

def _expand_cot(cfg, c, shape):
    """The incoming gradient (the value's shape) broadcastable against an
    input of y_pred's shape: size-1 axes where the value has none."""
    spec, kw = cfg.spec, cfg.kw
    ss = _sample_shape(spec, tuple(shape), kw)
    if kw.get("reduction") != "none" and kw.get("axis") is not None:
        axis = kw["axis"]
        axes = sorted({a % len(ss) for a in ((axis,) if isinstance(axis, int) else axis)})
        for a in axes:
            c = c.unsqueeze(a)
    if spec.family == "class" and len(shape) >= 1:
        c = c.unsqueeze(kw.get("class_axis", -1) % len(shape)) if len(shape) > 1 else c
    elif spec.family == "rows":
        c = c.unsqueeze(-1)
    return c


def _sum_to(t, shape):
    """t summed over the axes that broadcasting added or stretched."""
    if tuple(t.shape) == tuple(shape):
        return t
    lead = t.dim() - len(shape)
    dims = list(range(lead)) + [lead + i for i, n in enumerate(shape)
                                if n == 1 and t.shape[lead + i] != 1]
    return t.sum(dim=dims, keepdim=True).reshape(shape) if dims else t.reshape(shape)


class _LossTraced(torch.autograd.Function):
    """value = loss(*arrays); saves the gradients of the inputs in wrt.
    (Dynamo traces Functions without jvp / vmap rules: this one is what
    torch.compile sees; eager calls use _Loss, which says loudly that
    forward mode and vmap are not implemented.)"""

    @staticmethod
    def forward(config, saved_mode, *arrays):
        return tuple(_run(arrays, config))

    @staticmethod
    def setup_context(ctx, inputs, output):
        config, saved_mode = inputs[0], inputs[1]
        arrays = inputs[2:]
        ctx.config = config
        ctx.saved_mode = saved_mode     # "scalar", "expand" or "cotangent"
        grads = output[1:]
        ctx.mark_non_differentiable(*grads)
        ctx.save_for_backward(*arrays, *grads)
        ctx.n_arrays = len(arrays)
        ctx.value_shape = output[0].shape

    @staticmethod
    def backward(ctx, gv, *unused):
        cfg = _cfg(ctx.config)
        saved = ctx.saved_tensors
        arrays, grads = saved[:ctx.n_arrays], saved[ctx.n_arrays:]
        if gv is None:
            return (None, None) + (None,) * ctx.n_arrays
        if ctx.saved_mode == "cotangent":
            if torch.is_grad_enabled():
                res = _VJP.apply(ctx.config, gv, *arrays)
            else:
                res = _vjp(ctx.config, gv, arrays)
        elif torch.is_grad_enabled():
            res = _Scaled.apply(ctx.config, ctx.saved_mode, gv, *arrays, *grads)
        elif (ctx.saved_mode == "scalar" and not torch.compiler.is_compiling()
              and gv.numel() == 1 and float(gv) == 1.0):
            res = list(grads)           # loss.backward(): exact, no pass over memory
        else:
            res = _scaled(cfg, ctx.saved_mode, gv, grads, arrays[0].shape)
        res = dict(zip(cfg.wrt, res))
        out = [res.get(n) for n in cfg.names]
        return (None, None) + tuple(out)

class _Loss(_LossTraced):
    @staticmethod
    def jvp(ctx, *tangents):
        raise NotImplementedError(
            "fastloss.torch: forward-mode AD (torch.func.jvp / torch.autograd.forward_ad) is "
            "not implemented; use reverse mode (backward, torch.func.grad / vjp)")

    @staticmethod
    def vmap(info, in_dims, *args):
        raise NotImplementedError(
            "fastloss.torch: vmap is not implemented for fastloss losses; call the loss on "
            "the whole batch (reduction='none' gives per-sample values)")



class _LossEager(torch.autograd.Function):
    """_Loss in the classic form (forward takes ctx): Function.apply then
    skips binding the arguments to forward's signature, ~10 us a call.
    torch.func needs the setup_context form: wrapped tensors go to _Loss."""

    @staticmethod
    def forward(ctx, config, saved_mode, *arrays):
        out = tuple(_run(arrays, config))
        _LossTraced.setup_context(ctx, (config, saved_mode) + arrays, out)
        return out

    backward = _LossTraced.backward
    jvp = _Loss.jvp


def _loss_apply(config, mode, tensors):
    if torch.compiler.is_compiling():
        return _LossTraced.apply(config, mode, *tensors)
    if _fwad._current_level >= 0 or any(map(_wrapped, tensors)):
        return _Loss.apply(config, mode, *tensors)
    return _LossEager.apply(config, mode, *tensors)


def _scaled(cfg, mode, gv, grads, shape):
    if mode == "scalar":
        return [g * gv for g in grads]
    c = _expand_cot(cfg, gv, shape)
    return [g * c for g in grads]


def _vjp(config, gv, arrays):
    cfg = _cfg(config)
    vcfg = _config(cfg.loss.name, cfg.names, cfg.kw, cfg.wrt, "grad", cot=True)
    return _run(list(arrays) + [gv], vcfg)


def _double_backward_error(cfg, why):
    return NotImplementedError(
        f"fastloss.torch.{cfg.loss.name}: double backward (a gradient of the gradient) {why}")


class _Scaled(torch.autograd.Function):
    """grads = saved gradients x incoming gradient (differentiable once more
    for the elementwise losses: their Hessian is diagonal and exact)."""

    @staticmethod
    def forward(config, mode, gv, *rest):
        cfg = _cfg(config)
        k = len(rest) - len(cfg.wrt)
        arrays, grads = rest[:k], rest[k:]
        return tuple(_scaled(cfg, mode, gv, grads, arrays[0].shape))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.config, ctx.mode = inputs[0], inputs[1]
        ctx.save_for_backward(*inputs[2:])
        ctx.set_materialize_grads(False)

    @staticmethod
    def backward(ctx, *ggs):
        cfg = _cfg(ctx.config)
        saved = ctx.saved_tensors
        gv, rest = saved[0], saved[1:]
        k = len(rest) - len(cfg.wrt)
        arrays, grads = rest[:k], rest[k:]
        shape = arrays[0].shape
        # d/d(incoming gradient): sum(gg * G), reduced to the value's shape
        d_gv = None
        if ctx.needs_input_grad[2]:
            for gg, g in zip(ggs, grads):
                if gg is None:
                    continue
                t = gg * g
                if ctx.mode == "scalar":
                    t = t.sum()
                else:
                    t = _sum_to(t, _expand_cot(cfg, gv, shape).shape).reshape(gv.shape)
                d_gv = t if d_gv is None else d_gv + t
        # d/d(inputs): gg_i * gv * H_i (diagonal Hessian, no mixed terms)
        need = [n for j, n in enumerate(cfg.names) if ctx.needs_input_grad[3 + j]
                and n in cfg.wrt]
        other = [n for j, n in enumerate(cfg.names) if ctx.needs_input_grad[3 + j]
                 and n not in cfg.wrt]
        if other:
            raise _double_backward_error(cfg, f"with respect to {other} is not implemented")
        d_in = {}
        live = [n for n, gg in zip(cfg.wrt, ggs) if gg is not None]
        if need and live:
            if cfg.spec.family != "elementwise" or not cfg.spec.has_hessian:
                raise _double_backward_error(
                    cfg, "is not implemented: its Hessian is not diagonal (only the "
                    "elementwise losses have an exact one)")
            if len(live) > 1 or any(n not in live for n in need):
                raise _double_backward_error(
                    cfg, f"would need the mixed second derivatives between {cfg.wrt}, "
                    "which fastloss does not compute; differentiate one input at a time")
            n = live[0]
            hcfg = _config(cfg.loss.name, cfg.names, cfg.kw, (n,), "hessian")
            h = _Hessian.apply(hcfg, *arrays)
            gg = ggs[cfg.wrt.index(n)]
            c = gv if ctx.mode == "scalar" else _expand_cot(cfg, gv, shape)
            d_in[n] = gg * c * h
        return (None, None, d_gv) + tuple(d_in.get(n) for n in cfg.names) \
            + (None,) * len(grads)


class _Hessian(torch.autograd.Function):
    """The Hessian diagonal (a Function so that torch.func unwraps its
    inputs); a third derivative is not implemented."""

    @staticmethod
    def forward(config, *arrays):
        h, = _run(arrays, config)
        return h

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.config = inputs[0]

    @staticmethod
    def backward(ctx, gh):
        raise NotImplementedError(f"fastloss.torch.{_cfg(ctx.config).loss.name}: a third "
                                  "derivative is not implemented")


class _VJP(torch.autograd.Function):
    """grads = fastloss's VJP with the incoming gradient (a kernel pass):
    the path of "none" / axis= when an input is broadcast to y_pred."""

    @staticmethod
    def forward(config, gv, *arrays):
        return tuple(_vjp(config, gv, arrays))

    @staticmethod
    def setup_context(ctx, inputs, output):
        ctx.config = inputs[0]

    @staticmethod
    def backward(ctx, *ggs):
        raise _double_backward_error(
            _cfg(ctx.config), "is not implemented with reduction='none' or axis= when a "
            "differentiated input is broadcast to y_pred")


# ------------------------------------------------------- public functions

_fwad = torch.autograd.forward_ad
_wrapped = torch._C._functorch.is_functorch_wrapped_tensor
_COMMON = ("reduction", "sample_weight", "axis", "n_threads")


def _check_tensor(where, name, t):
    if t.is_cpu and t.layout is torch.strided:
        return
    if t.device.type != "cpu":
        raise TypeError(f"{where}: {name} is on the {t.device} device; fastloss runs on the "
                        f"CPU: move it there first ({name}.cpu())")
    if t.is_sparse or t.layout != torch.strided:
        raise TypeError(f"{where}: {name} has layout {t.layout}; pass a dense tensor")


def _as_tensor(where, name, x, like):
    if isinstance(x, torch.Tensor):
        _check_tensor(where, name, x)
        return x
    if x is None:
        return None
    return torch.as_tensor(np.asarray(x))


def _make_function(spec):
    name = spec.name
    loss = _fl.losses[name]
    inputs, diff = spec.inputs, set(spec.differentiable)
    nin = len(inputs)
    scalar_params = tuple(p.name for p in spec.params)
    array_params = tuple(a.name for a in spec.array_params)
    where = f"fastloss.torch.{name}"
    known = set(_COMMON) | set(scalar_params) | set(array_params) | set(inputs)
    elementwise = spec.family == "elementwise"

    def f(*args, **kwargs):
        if len(args) > nin:
            raise TypeError(f"{where}() takes {nin} positional inputs ({', '.join(inputs)}); "
                            f"got {len(args)} (the keywords must be passed by name)")
        bad = [k for k in kwargs if k not in known]
        if bad:
            msg = f"{where}() got an unexpected keyword argument {bad[0]!r}"
            if bad[0] in ("out", "wrt", "cotangent"):
                msg += " (autograd decides what is differentiated: requires_grad)"
            raise TypeError(msg)
        ins = list(args)
        for n in inputs[len(args):]:
            if n not in kwargs:
                raise TypeError(f"{where}() missing the input {n!r}")
            ins.append(kwargs.pop(n))
        for n in inputs[:len(args)]:
            if n in kwargs:
                raise TypeError(f"{where}() got multiple values for the input {n!r}")
        x = ins[0]
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"{where}: {inputs[0]} must be a torch.Tensor, got "
                            f"{type(x).__name__}")
        _check_tensor(where, inputs[0], x)
        tensors = [x] + [_as_tensor(where, n, t, x) for n, t in zip(inputs[1:], ins[1:])]
        names = list(inputs)
        kw = {"reduction": kwargs.get("reduction", "mean")}
        for k in ("axis", "n_threads"):
            if kwargs.get(k) is not None:
                v = kwargs[k]
                kw[k] = tuple(v) if isinstance(v, list) else v
        for p in scalar_params:
            if p in kwargs:
                v = kwargs[p]
                kw[p] = v.item() if isinstance(v, (torch.Tensor, np.generic)) else v
        for k in ("sample_weight",) + array_params:
            v = kwargs.get(k)
            if v is not None:
                tensors.append(_as_tensor(where, k, v, x))
                names.append(k)
        wrt = []
        for n, t in zip(names, tensors):
            if t.requires_grad:
                if n not in diff:
                    raise TypeError(
                        f"{where}: {n} requires grad, but the loss has no gradient with "
                        f"respect to it (differentiable inputs: {spec.differentiable}); "
                        f"pass {n}.detach()")
                wrt.append(n)
        grad_on = torch.is_grad_enabled() and bool(wrt)
        if not grad_on:
            cfg = _config(name, names, kw, (), "value")
            if _fwad._current_level >= 0 or any(map(_wrapped, tensors)):
                # forward-mode AD or a torch.func transform (vmap): through the
                # Function, whose jvp / vmap rules say what is not implemented
                return _loss_apply(cfg, "scalar", tensors)[0]
            return _run(tensors, cfg)[0]
        red = kw["reduction"]
        if red != "none" and "axis" not in kw:
            mode = "scalar"
        elif all(tuple(tensors[names.index(n)].shape) == tuple(x.shape) for n in wrt):
            mode = "expand"
        else:
            mode = "cotangent"
        method = "value" if mode == "cotangent" else "value_and_grad"
        cfg = _config(name, names, kw, wrt, method)
        return _loss_apply(cfg, mode, tensors)[0]

    sig = _registry.signature(spec)
    f.__signature__ = sig
    f.__name__ = f.__qualname__ = name
    f.__module__ = __name__
    f.__doc__ = (f"{spec.summary} (differentiable PyTorch function).\n\n"
                 f"Per {'element' if elementwise else 'sample'}: {spec.formula}\n\n"
                 f"fastloss.torch.{name}{sig}\n\n"
                 f"Same inputs and keywords as fastloss.{name} (no out=, wrt=, cotangent=: "
                 f"autograd differentiates the inputs that require grad, of "
                 f"{spec.differentiable}). Forward runs one fused value_and_grad kernel call; "
                 f"backward scales the saved gradient."
                 + (" Double backward is exact (diagonal Hessian)." if elementwise
                    and spec.has_hessian else " Double backward raises NotImplementedError."))
    return f


# ---------------------------------------------------------------- modules

def _torch_functional_name(spec):
    """The torch.nn.functional loss the declaration's torch peer spells the
    loss with, or None when the peer composes several functions (or none)."""
    fn = spec.peers.get("torch")
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    F = torch.nn.functional
    used = [n for n in code.co_names
            if callable(getattr(F, n, None)) and not inspect.ismodule(getattr(F, n))
            and not inspect.isclass(getattr(F, n))]
    return used[0] if len(used) == 1 else None


@functools.lru_cache(maxsize=1)
def _torch_loss_modules():
    """{functional name: torch.nn loss class} for the losses torch has."""
    base = torch.nn.modules.loss._Loss
    out = {}
    for cname in sorted(dir(torch.nn)):
        cls = getattr(torch.nn, cname)
        if not (inspect.isclass(cls) and issubclass(cls, base) and cls is not base):
            continue
        if cname.endswith("2d"):          # deprecated aliases (NLLLoss2d)
            continue
        fwd = getattr(cls, "forward", None)
        for n in getattr(getattr(fwd, "__code__", None), "co_names", ()):
            if hasattr(torch.nn.functional, n):
                out.setdefault(n, cls)
    return out


def module_name(spec):
    """The module's class name: torch.nn's where torch has the loss (from
    the declaration's torch peer), else CamelCase of ours + "Loss"."""
    fname = _torch_functional_name(spec)
    cls = _torch_loss_modules().get(fname) if fname else None
    if cls is not None:
        return cls.__name__, cls
    return "".join(w.capitalize() for w in spec.name.split("_")) + "Loss", None


# torch's constructor names for our parameters where the semantics coincide
# (class weights: torch's weighted-mean denominators are fastloss's).
_ALIASES = {"class_weight": "weight"}
_PER_LOSS_ALIASES = {"multi_margin": {"power": "p"}}


def _make_module(spec, fn):
    cname, peer = module_name(spec)
    scalar = [p for p in spec.params]
    arrays = [a.name for a in spec.array_params]
    aliases = dict(_ALIASES)
    aliases.update(_PER_LOSS_ALIASES.get(spec.name, {}))
    aliases = {k: v for k, v in aliases.items() if k in spec.param_names}
    reductions = spec.reductions

    def __init__(self, *, reduction="mean", **kwargs):
        torch.nn.Module.__init__(self)
        if reduction not in reductions:
            raise ValueError(f"{cname}: reduction must be one of {reductions}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        for ours, theirs in aliases.items():
            if theirs in kwargs:
                if ours in kwargs:
                    raise TypeError(f"{cname}: give {ours} or {theirs}, not both")
                kwargs[ours] = kwargs.pop(theirs)
        allowed = {p.name for p in scalar} | set(arrays)
        bad = [k for k in kwargs if k not in allowed]
        if bad:
            names = sorted(allowed | set(aliases.values()))
            raise TypeError(f"{cname}() got an unexpected keyword argument {bad[0]!r} "
                            f"(takes reduction{', ' if names else ''}{', '.join(names)})")
        params = {}
        for p in scalar:
            v = kwargs.get(p.name, p.default)
            p.check(f"{cname}", v)          # a bad value raises here
            params[p.name] = v
            setattr(self, p.name, v)
        self._scalar = tuple(p.name for p in scalar)
        for a in arrays:
            v = kwargs.get(a)
            buf = aliases.get(a, a)
            self.register_buffer(buf, None if v is None else torch.as_tensor(v))
        self._array_buffers = tuple((a, aliases.get(a, a)) for a in arrays)

    def forward(self, *inputs, sample_weight=None):
        kw = {p: getattr(self, p) for p in self._scalar}
        for a, buf in self._array_buffers:
            v = getattr(self, buf)
            if v is not None:
                kw[a] = v
        if sample_weight is not None:
            kw["sample_weight"] = sample_weight
        return fn(*inputs, reduction=self.reduction, **kw)

    def extra_repr(self):
        parts = [f"reduction={self.reduction!r}"]
        for p in scalar:
            v = getattr(self, p.name)
            if v != p.default:
                parts.append(f"{p.name}={v!r}")
        return ", ".join(parts)

    doc = (f"{spec.summary} as a torch.nn.Module"
           + (f" (torch.nn.{cname}'s name and keywords)" if peer is not None else "")
           + f": forward({', '.join(spec.inputs)}, sample_weight=None) -> "
           f"fastloss.torch.{spec.name}(...).\n\nConstructor: reduction="
           f"{'|'.join(repr(r) for r in reductions)}"
           + "".join(f", {p.name}={p.default!r}" for p in scalar)
           + "".join(f", {aliases.get(a, a)}=None" for a in arrays) + ".")
    return type(cname, (torch.nn.Module,), {
        "__init__": __init__, "forward": forward, "extra_repr": extra_repr,
        "__doc__": doc, "__module__": __name__, "loss_name": spec.name,
        "torch_peer": peer})


functions = {}
modules = {}
for _spec in _registry.TABLE:
    _f = _make_function(_spec)
    functions[_spec.name] = _f
    globals()[_spec.name] = _f
    _m = _make_module(_spec, _f)
    modules[_spec.name] = _m
    globals()[_m.__name__] = _m
    __all__ += [_spec.name, _m.__name__]
del _spec, _f, _m
