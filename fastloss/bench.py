"""Benchmark every loss against its NumPy reference, its peers and the
memory-bandwidth roofline (SPEC section 6).

    python -m fastloss.bench --quick                  # what `make bench` runs
    fastloss-bench --loss huber,cross_entropy --dtype float32,float64 --json r.json

For each (loss, size, dtype) the contenders below run in this one process on
the same data, interleaved round by round (the order rotates every round).
Each contender is timed as a batch of calls long enough to read the clock
well; the table shows the MEDIAN over the batches (``--json`` keeps them all):

=========  ================================================================
fastloss   ``loss.value_and_grad(p, t, out=g, n_threads=k)``, ``g`` a reused
           gradient buffer (a trainer's steady state)
alloc      the same call without ``out=`` (it pays for a fresh gradient)
reference  ``loss.reference.value_and_grad(p, t)``: fastloss's pure-NumPy
           reference, written for accuracy (stable forms, every argument
           checked), not speed
numpy      the idiomatic NumPy a user writes in a few lines (``np.mean((p -
           t) ** 2)`` and ``2 * (p - t) / n`` for mse): the declaration's
           ``peers["numpy"]`` spelling; "x times NumPy" means this column
torch      forward + ``torch.autograd.grad``; ``torch.set_num_threads(k)``
torch-fwd  torch's forward pass alone under ``torch.no_grad()`` (what a
           fused value + gradient must beat to be "faster than the forward")
jax        ``jax.jit(jax.value_and_grad(f))`` + ``block_until_ready``
sklearn    ``sklearn._loss.loss`` ``loss_gradient(..., n_threads=k)`` into
           preallocated buffers
roofline   ``fastloss._core.probe``: the C loop ``out = a - b`` on arrays of
           y_pred's size and dtype, same compiler flags and threads
=========  ================================================================

Bytes moved: y_pred and y_true read, the gradient written (class losses: the
logits and the labels read, the gradient written).  The roofline moves three
arrays of y_pred's size; "%roof" is fastloss's GB/s over the roofline's.

The reference and numpy (NumPy, one thread) and jax (XLA sizes its own pool at start-up)
cannot be given a thread count: each is timed once per case and shown in
every thread row.  Every contender's loss value is compared with fastloss's
once per case, so a column that times some other function is flagged ("!").
Peers are table-driven: ``ADAPTERS`` holds one row per loss with the numpy,
torch, jax and sklearn spelling of that loss (its declaration's ``peers``); a
loss without a spelling for a peer has no value in that peer's column.  The
numpy column's ``grad`` method calls the same function (the value included).  The loss timed as "fastloss" is looked up in ``fastloss.losses`` at
run time, which is how the tests substitute an instrumented one.
"""
import argparse
import gc
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable, Optional

import numpy as np

import fastloss as fl
from . import _core
from ._registry import make_inputs
from ._registry import TABLE

# ---------------------------------------------------------------- settings

SIZES = (10**3, 10**5, 10**7)
CLASS_SHAPES = ((256, 10), (4096, 10), (1024, 1000), (8192, 1000), (64, 32000), (8, 50000))
ROW_SHAPES = ((256, 64), (4096, 256), (65536, 32))
METHODS = ("value_and_grad", "grad", "value", "hessian")
DTYPES = ("float32", "float64")
PEERS = ("numpy", "torch", "torch-fwd", "jax", "sklearn")
LARGE = 4_000_000        # --quick also runs 2 threads from this many elements on

# Timing plans.  sample_time: target length of one timed batch of calls;
# budget: seconds one contender may spend on one case (it caps the repeats of
# slow contenders, never below min_repeat).
# reference_limit: the NumPy reference is timed below this many elements
# (it takes 0.3-2 s per call at 1e7, which alone would double --quick).
FULL = dict(dtypes=DTYPES, repeat=7, min_repeat=3, sample_time=0.01, budget=3.0,
            reference_limit=None)
QUICK = dict(dtypes=("float32",), repeat=5, min_repeat=1, sample_time=0.002, budget=0.15,
             reference_limit=LARGE)


@dataclass
class Settings:
    losses: list
    sizes: list
    shapes: list
    dtypes: list
    threads: Optional[tuple]    # None: the --quick plan (1, and 2 for large work)
    method: str
    peers: list
    repeat: int
    min_repeat: int
    sample_time: float
    budget: float
    reference_limit: Optional[int] = None
    quick: bool = False
    progress: bool = True


@dataclass
class Case:
    """One (loss, shape, dtype): the unit whose contenders are interleaved."""
    loss: str
    family: str
    shape: tuple
    dtype: str
    method: str
    threads: tuple

    @property
    def elements(self):
        return math.prod(self.shape)

    @property
    def label(self):
        if self.family == "elementwise":
            return size_label(self.shape[0])
        return "x".join(str(d) for d in self.shape)


def size_label(n):
    e = round(math.log10(n)) if n > 0 else 0
    return f"1e{e}" if n == 10**e and e >= 3 else str(n)


def plan(settings):
    """The cases to run, in order: per loss, per size, per dtype."""
    cases = []
    for name in settings.losses:
        family = _family(name)
        shapes = ([(n,) for n in settings.sizes] if family == "elementwise"
                  else list(ROW_SHAPES) if family == "rows" else list(settings.shapes))
        for shape in shapes:
            for dtype in settings.dtypes:
                threads = settings.threads
                if threads is None:
                    threads = (1, 2) if math.prod(shape) >= LARGE else (1,)
                cases.append(Case(name, family, tuple(shape), dtype, settings.method,
                                  tuple(threads)))
    return cases


def _family(name):
    return next(s.family for s in TABLE if s.name == name)


def _defaults(name):
    spec = next(s for s in TABLE if s.name == name)
    return {p.name: p.default for p in spec.params}


# ------------------------------------------------------------------ timing

@dataclass
class Timer:
    """One contender at one thread count (None: not thread-controlled)."""
    contender: str
    threads: Optional[int]
    fn: Callable[[], object]
    value_of: Optional[Callable[[object], float]] = None   # result -> loss value
    before: Optional[Callable[[], None]] = None             # untimed, before each batch
    stateless: bool = False   # allocates everything per call: its first call is typical
    number: int = 1
    repeats: int = 1
    times: list = field(default_factory=list)
    value: Optional[float] = None
    agrees: Optional[bool] = None


def _batch(timer, number):
    """Seconds per call of `number` back-to-back calls."""
    if timer.before is not None:
        timer.before()
    fn = timer.fn
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        return (time.perf_counter() - t0) / number
    finally:
        if gc_was_on:
            gc.enable()


SLOW = 10      # a call this many sample_times long is timed one call per batch


def calibrate(timer, settings):
    """Warm the contender up (JIT compilation, page faults of its buffers,
    thread pools), read its loss value, and choose the calls per batch and
    the number of batches."""
    if timer.before is not None:
        timer.before()
    t0 = time.perf_counter()
    result = timer.fn()
    per_call = time.perf_counter() - t0
    if timer.value_of is not None:
        timer.value = _scalar(timer.value_of(result))
    del result
    slow = SLOW * settings.sample_time
    if per_call >= slow and not timer.stateless:
        per_call = _batch(timer, 1)        # warm now (stateless: nothing to warm up)
    if per_call >= slow:
        timer.times.append(per_call)       # one call per batch, and this one counts
        timer.number = 1
    else:
        number, measured = _autorange(timer, settings.sample_time)
        per_call = min(measured)
        timer.number = max(1, min(10**6, round(settings.sample_time / per_call)))
        if timer.number == number:
            timer.times += measured        # batches of the final size: keep them
    batch = per_call * timer.number
    timer.repeats = min(settings.repeat, max(settings.min_repeat, int(settings.budget // batch)))


def _autorange(timer, target):
    """(calls per batch, seconds per call of the last batches): batches grow
    tenfold until one lasts target/10.  That size is measured twice and the
    shorter kept: one stall (the OS descheduling a worker thread) must not
    decide the batch size."""
    number = 1
    while True:
        measured = [_batch(timer, number)]
        if measured[0] * number >= target / 10:
            measured.append(_batch(timer, number))
        if min(measured) * number >= target / 10 or number >= 10**6:
            return number, measured
        number *= 10


def _scalar(x):
    x = x.detach() if hasattr(x, "detach") else x      # a torch tensor with grad
    return float(x)


OWN = ("fastloss", "alloc", "reference", "roofline")    # their failures are bugs: raise


def measure(timers, settings):
    """Calibrate, then run the batches round-robin, rotating the order.
    A peer that fails is dropped from `timers` (in place) and reported:
    -> {contender: error message}."""
    failed, ok = {}, []
    for t in timers:
        try:
            calibrate(t, settings)
        except Exception as e:
            if t.contender in OWN:
                raise
            failed[t.contender] = f"{type(e).__name__}: {e}".splitlines()[0]
        else:
            ok.append(t)
    timers[:] = ok
    rounds = max((t.repeats for t in timers), default=0)
    for r in range(rounds):
        k = r % len(timers)
        for t in timers[k:] + timers[:k]:
            if len(t.times) < t.repeats:
                t.times.append(_batch(t, t.number))
    return failed


# -------------------------------------------------------------- contenders

def get_loss(name):
    """The Loss object timed as "fastloss" (looked up at run time, so tests
    can substitute an instrumented one in ``fastloss.losses``)."""
    return fl.losses[name]


def _method(obj, method):
    return obj if method == "value" else getattr(obj, method)


def _value_of(method):
    return {"value_and_grad": lambda r: r[0], "value": lambda r: r}.get(method)


def _wants_out(method):
    return method != "value"


def bind(f, inputs, kw, out=None, n_threads=None):
    """A no-argument closure for f(*inputs, out=, n_threads=, **kw).  With no
    loss parameters and two inputs it passes literal arguments: merging a
    dict on every call would add ~0.1 us to calls that take ~0.5 us."""
    extra = {k: v for k, v in (("out", out), ("n_threads", n_threads)) if v is not None}
    if kw or len(inputs) != 2:
        merged = {**kw, **extra}
        return lambda: f(*inputs, **merged)
    p, t = inputs
    if out is not None:
        return lambda: f(p, t, out=out, n_threads=n_threads)
    if n_threads is not None:
        return lambda: f(p, t, n_threads=n_threads)
    return lambda: f(p, t)


def _out_for(ctx):
    """out= of the default wrt: one array, or a tuple of them."""
    spec = ctx.spec
    outs = tuple(np.empty_like(ctx.inputs[spec.inputs.index(w)]) for w in spec.differentiable)
    return outs[0] if len(outs) == 1 else outs


def fastloss_timers(ctx, threads):
    m, kw = ctx.case.method, ctx.kwargs
    call = _method(ctx.loss, m)
    timers = []
    for n in threads:
        if _wants_out(m) and not (m == "hessian" and not ctx.spec.has_hessian):
            out = _out_for(ctx)
            timers.append(Timer("fastloss", n, bind(call, ctx.inputs, kw, out, n), _value_of(m)))
            timers.append(Timer("alloc", n, bind(call, ctx.inputs, kw, None, n), _value_of(m)))
        elif not _wants_out(m):
            timers.append(Timer("fastloss", n, bind(call, ctx.inputs, kw, None, n), _value_of(m)))
    return timers


def reference_timers(ctx, threads):
    if ctx.case.method == "hessian" and not ctx.spec.has_hessian:
        return []
    call = _method(ctx.loss.reference, ctx.case.method)
    return [Timer("reference", None, bind(call, ctx.inputs, ctx.kwargs),
                  _value_of(ctx.case.method), stateless=True)]


def roofline_timers(ctx, threads):
    a = ctx.y_pred
    b = ctx.y_true if (ctx.y_true.dtype == a.dtype and ctx.y_true.shape == a.shape) \
        else a.copy()
    out = np.empty_like(a)
    return [Timer("roofline", n, lambda n=n: _core.probe(a, b, out, n)) for n in threads]


# ------------------------------------------------------------------- peers
# How each peer computes the SAME loss value, written as its users write it
# (defaults of the loss parameters in `k`): the declarations' peer spellings
# (fastloss/losses).  A loss without a spelling for a peer has no column
# value for it.
ADAPTERS = {spec.name: spec.peers for spec in TABLE}


def has_adapter(peer, loss):
    return peer.split("-")[0] in ADAPTERS.get(loss, {})


def load_numpy():
    return SimpleNamespace(N=np, version=np.__version__)


def load_torch():
    import torch
    import torch.nn.functional as F
    return SimpleNamespace(torch=torch, F=F, version=torch.__version__)


def load_jax():
    import jax
    jax.config.update("jax_enable_x64", True)   # float64 cases and int64 labels
    import jax.numpy as jnp
    return SimpleNamespace(jax=jax, J=SimpleNamespace(np=jnp, nn=jax.nn),
                           version=jax.__version__)


def load_sklearn():
    import sklearn
    from sklearn._loss import loss as S
    return SimpleNamespace(S=S, version=sklearn.__version__)


def numpy_timers(mod, ctx, threads):
    """The idiomatic NumPy baseline (the declaration's peers["numpy"]): one
    thread, not thread-controlled, one timing shown at every thread count."""
    f = ADAPTERS[ctx.loss_name]["numpy"]
    k, m, N, xs = ctx.params, ctx.case.method, mod.N, ctx.inputs
    if m == "hessian":
        return []
    fn = {"value_and_grad": lambda: f(N, *xs, k),
          "grad": lambda: f(N, *xs, k)[1],
          "value": lambda: f(N, *xs, k, grad=False)}[m]
    return [Timer("numpy", None, fn, _value_of(m), stateless=True)]


def torch_timers(mod, ctx, threads):
    torch, F = mod.torch, mod.F
    f = ADAPTERS[ctx.loss_name]["torch"]
    k, m = ctx.params, ctx.case.method
    spec = ctx.spec
    ts = [torch.from_numpy(a).requires_grad_(m != "value" and op.differentiable)
          for a, op in zip(ctx.inputs, spec.operands)]
    diff = [ts[spec.inputs.index(w)] for w in spec.differentiable]
    p = ts[0]
    if m == "value":
        def fn():
            with torch.no_grad():
                return f(F, *ts, k)
    elif m == "hessian":
        if ctx.case.family != "elementwise" or len(diff) != 1:
            return []        # the diagonal by double backward needs separable losses

        def fn():
            g, = torch.autograd.grad(f(F, *ts, k), p, create_graph=True)
            if not g.requires_grad:         # piecewise-linear loss: the Hessian is 0
                return torch.zeros_like(p)
            return torch.autograd.grad(g.sum(), p)[0]
    else:
        def fn():
            v = f(F, *ts, k)
            return v, torch.autograd.grad(v, diff)
        if m == "grad":
            fn = (lambda vag=fn: vag()[1])
    # stateless: every call allocates its outputs and its autograd graph afresh
    return [Timer("torch", n, fn, _value_of(m), before=lambda n=n: torch.set_num_threads(n),
                  stateless=True) for n in threads]


def torch_fwd_timers(mod, ctx, threads):
    """PyTorch's forward pass alone (no autograd graph): the lower bound of
    any torch training step, which fastloss's fused value + gradient is
    measured against."""
    torch, F = mod.torch, mod.F
    f = ADAPTERS[ctx.loss_name]["torch"]
    k = ctx.params
    if ctx.case.method == "hessian":
        return []
    ts = [torch.from_numpy(a) for a in ctx.inputs]

    def fn():
        with torch.no_grad():
            return f(F, *ts, k)
    return [Timer("torch-fwd", n, fn, _value_of("value"),
                  before=lambda n=n: torch.set_num_threads(n), stateless=True)
            for n in threads]


def jax_timers(mod, ctx, threads):
    jax, J = mod.jax, mod.J
    f = ADAPTERS[ctx.loss_name]["jax"]
    k, m = ctx.params, ctx.case.method

    spec = ctx.spec
    argnums = tuple(spec.inputs.index(w) for w in spec.differentiable)

    def loss(*xs):
        return f(J, *xs, k)
    if m == "hessian":
        if ctx.case.family != "elementwise" or len(argnums) != 1:
            return []
        g = jax.grad(loss)
        compiled = jax.jit(jax.grad(lambda *xs: J.np.sum(g(*xs))))
    else:
        compiled = jax.jit({"value_and_grad": jax.value_and_grad(loss, argnums=argnums),
                            "grad": jax.grad(loss, argnums=argnums), "value": loss}[m])
    xs = [jax.device_put(a) for a in ctx.inputs]
    # XLA sizes its own thread pool at start-up: one timer, shown at every thread count
    return [Timer("jax", None, lambda: jax.block_until_ready(compiled(*xs)), _value_of(m))]


def sklearn_timers(mod, ctx, threads):
    k = dict(ctx.params, n_classes=ctx.case.shape[-1])
    obj, factor = ADAPTERS[ctx.loss_name]["sklearn"](mod.S, k)
    p = ctx.y_pred
    y = np.ascontiguousarray(ctx.y_true, dtype=p.dtype)      # sklearn: floats of p's dtype
    lo = np.empty(p.shape[:-1] if ctx.case.family == "class" else p.shape, p.dtype)
    g, h = np.empty_like(p), np.empty_like(p)
    m = ctx.case.method
    makers = {         # n -> the call at n threads
        "value_and_grad": lambda n: lambda: obj.loss_gradient(
            y, p, loss_out=lo, gradient_out=g, n_threads=n),
        "grad": lambda n: lambda: obj.gradient(y, p, gradient_out=g, n_threads=n),
        "value": lambda n: lambda: obj.loss(y, p, loss_out=lo, n_threads=n),
        "hessian": lambda n: lambda: obj.gradient_hessian(
            y, p, gradient_out=g, hessian_out=h, n_threads=n),
    }
    value_of = (lambda r: factor * float(np.mean(lo, dtype=np.float64))) \
        if m in ("value", "value_and_grad") else None
    return [Timer("sklearn", n, makers[m](n), value_of) for n in threads]


PEER_SETUP = {
    "numpy": (load_numpy, numpy_timers),
    "torch": (load_torch, torch_timers),
    "torch-fwd": (load_torch, torch_fwd_timers),
    "jax": (load_jax, jax_timers),
    "sklearn": (load_sklearn, sklearn_timers),
}
PEER_NOTES = {
    "numpy": "idiomatic NumPy (fastloss/losses: peers['numpy']), one thread, one timing "
             "shown at every thread count",
    "torch": "forward + torch.autograd.grad, torch.set_num_threads(thr)",
    "torch-fwd": "torch's forward pass alone (no_grad), torch.set_num_threads(thr)",
    "jax": "jit(value_and_grad), XLA's own thread pool: one timing shown at every thread count",
    "sklearn": "loss_gradient(n_threads=thr) into preallocated per-element loss and gradient",
}


def load_peers(names):
    """-> ({name: module namespace}, {name: reason skipped})."""
    loaded, skipped = {}, {}
    for name in names:
        try:
            loaded[name] = PEER_SETUP[name][0]()
        except Exception as e:          # not installed, or broken: skip, say why
            skipped[name] = f"{type(e).__name__}: {e}".splitlines()[0]
    return loaded, skipped


# --------------------------------------------------------------- one case

def case_context(case):
    *inputs, kwargs = make_inputs(case.loss, case.shape, np.dtype(case.dtype),
                                  np.random.default_rng(0))
    return SimpleNamespace(case=case, loss_name=case.loss, loss=get_loss(case.loss),
                           spec=next(s for s in TABLE if s.name == case.loss),
                           inputs=tuple(inputs), y_pred=inputs[0], y_true=inputs[1],
                           kwargs=kwargs, params={**_defaults(case.loss), **kwargs})


def build_timers(ctx, peers, reference_limit=None):
    threads = ctx.case.threads
    timers = fastloss_timers(ctx, threads) + roofline_timers(ctx, threads)
    if reference_limit is None or ctx.case.elements < reference_limit:
        timers += reference_timers(ctx, threads)
    for name, mod in peers.items():
        if has_adapter(name, ctx.loss_name):
            timers += PEER_SETUP[name][1](mod, ctx, threads)
    return timers


def check_agreement(timers, dtype):
    """Every contender's loss value against fastloss's: a column that times
    some other function shows up here."""
    ref = next((t.value for t in timers if t.contender == "fastloss"), None)
    rtol = 1e-3 if dtype == "float32" else 1e-6
    for t in timers:
        if t.value is not None and ref is not None:
            t.agrees = bool(np.isclose(t.value, ref, rtol=rtol, atol=1e-30, equal_nan=True))


def run_case(case, peers, settings):
    t0 = time.perf_counter()
    ctx = case_context(case)
    timers = build_timers(ctx, peers, settings.reference_limit)
    errors = measure(timers, settings)
    check_agreement(timers, case.dtype)
    written = (sum(ctx.inputs[ctx.spec.inputs.index(w)].nbytes
                   for w in ctx.spec.differentiable) if _wants_out(case.method) else 0)
    nbytes = sum(a.nbytes for a in ctx.inputs) + written
    return SimpleNamespace(case=case, timers=timers, errors=errors, bytes=nbytes,
                           roof_bytes=3 * ctx.y_pred.nbytes, seconds=time.perf_counter() - t0)


# ------------------------------------------------------------------- rows

def _stats(timer):
    return {"median": statistics.median(timer.times), "min": min(timer.times),
            "repeats": len(timer.times), "number": timer.number}


def rows_of(result):
    """One row per thread count of the case: what the table prints."""
    case, rows = result.case, []
    for n in case.threads:
        pick = {t.contender: t for t in result.timers if t.threads in (n, None)}
        fast = pick["fastloss"]
        t_fast = statistics.median(fast.times)
        row = {"loss": case.loss, "family": case.family, "size": case.label,
               "shape": list(case.shape), "elements": case.elements, "dtype": case.dtype,
               "method": case.method, "threads": n, "bytes": result.bytes,
               "case_seconds": result.seconds,
               "times": {c: _stats(t) for c, t in pick.items()},
               "speedup": {}, "agrees": {}, "errors": dict(result.errors)}
        for c, t in pick.items():
            if c not in ("fastloss", "alloc", "roofline"):
                row["speedup"][c] = statistics.median(t.times) / t_fast
            if t.agrees is not None:
                row["agrees"][c] = t.agrees
        row["gbps"] = result.bytes / t_fast / 1e9
        roof = pick.get("roofline")
        row["roof_gbps"] = result.roof_bytes / statistics.median(roof.times) / 1e9
        row["roof_frac"] = row["gbps"] / row["roof_gbps"]
        rows.append(row)
    return rows


def raw_of(result):
    case = result.case
    return [{"loss": case.loss, "shape": list(case.shape), "dtype": case.dtype,
             "method": case.method, "contender": t.contender, "threads": t.threads,
             "number": t.number, "times": list(t.times), "value": t.value,
             "agrees": t.agrees} for t in result.timers]


# ------------------------------------------------------------------ output

def _micro():
    try:
        "\u00b5".encode(sys.stdout.encoding or "ascii")
        return "\u00b5"
    except (UnicodeEncodeError, LookupError):
        return "u"


def fmt_time(s, micro="u"):
    """Seconds -> '1.52 us', '15.2 ms', '152 ms', '1.52 s'."""
    if s is None or not math.isfinite(s):
        return "-"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), (micro + "s", 1e-6), ("ns", 1e-9)):
        if s >= scale:
            break
    v = s / scale
    return f"{v:.2f} {unit}" if v < 10 else f"{v:.1f} {unit}" if v < 100 else f"{v:.0f} {unit}"


def fmt_speedup(x):
    if x is None or not math.isfinite(x):
        return "-"
    return f"{x:.2f}x" if x < 10 else f"{x:.1f}x" if x < 100 else f"{x:.0f}x"


FEW = 3        # medians of fewer batches are marked "~"


def _cell_time(row, c, micro):
    t = row["times"].get(c)
    if not t:
        return "-"
    return ("~" if t["repeats"] < FEW else "") + fmt_time(t["median"], micro)


def _cell_vs(row, c, micro):
    if c in row["errors"]:
        return "error"
    if c not in row["times"]:
        return "-"
    bad = "!" if row["agrees"].get(c) is False else ""
    return f"{_cell_time(row, c, micro)} {fmt_speedup(row['speedup'][c])}{bad}"


def columns(peers):
    """(header, width, cell(row, micro)) of the table, left to right."""
    cols = [
        ("size", 10, lambda r, u: r["size"]),
        ("dtype", 7, lambda r, u: r["dtype"]),
        ("thr", 3, lambda r, u: str(r["threads"])),
        ("fastloss", 9, lambda r, u: _cell_time(r, "fastloss", u)),
        ("alloc", 9, lambda r, u: _cell_time(r, "alloc", u)),
        ("GB/s", 6, lambda r, u: f"{r['gbps']:.1f}"),
        ("roof", 6, lambda r, u: f"{r['roof_gbps']:.1f}"),
        ("%roof", 5, lambda r, u: f"{100 * r['roof_frac']:.0f}%"),
        ("reference", 16, lambda r, u: _cell_vs(r, "reference", u)),
    ]
    for p in peers:
        cols.append((p, 16, lambda r, u, p=p: _cell_vs(r, p, u)))
    return cols


def format_table(rows, peers, micro="u"):
    """The per-loss tables as text lines."""
    cols = columns(peers)
    head = "  ".join(h.rjust(w) if i > 1 else h.ljust(w) for i, (h, w, _) in enumerate(cols))
    lines, current = [], None
    for r in rows:
        if r["loss"] != current:
            current = r["loss"]
            lines += ["", f"{current} ({r['family']}, {r['method']})", head]
        cells = [f(r, micro) for _, _, f in cols]
        lines.append("  ".join(c.rjust(w) if i > 1 else c.ljust(w)
                               for i, (c, (_, w, _)) in enumerate(zip(cells, cols))))
    return lines


def format_summary(rows, peers):
    lines = ["", "summary (geometric mean of fastloss's speedup over each contender):"]
    for c in ["reference"] + list(peers):
        xs = [r["speedup"][c] for r in rows if c in r["speedup"]]
        if xs:
            big = [r["speedup"][c] for r in rows if c in r["speedup"] and r["elements"] >= 10**6]
            tail = f", at >= 1e6 elements {fmt_speedup(_gmean(big))} ({len(big)})" if big else ""
            lines.append(f"  vs {c:<10} {fmt_speedup(_gmean(xs)):>7} over {len(xs)} rows{tail}")
    big = [r for r in rows if r["elements"] >= 10**6]
    if big:
        fr = sorted(r["roof_frac"] for r in big)
        worst = min(big, key=lambda r: r["roof_frac"])
        lines.append(f"  roofline fraction at >= 1e6 elements: median "
                     f"{100 * statistics.median(fr):.0f}%, lowest {100 * worst['roof_frac']:.0f}% "
                     f"({worst['loss']} {worst['size']} "
                     f"{worst['dtype']} thr={worst['threads']})")
    bad = sorted({(r["loss"], c) for r in rows for c, ok in r["agrees"].items() if not ok})
    for loss, c in bad:
        lines.append(f"  ! {c} disagrees with fastloss on the value of {loss}: "
                     "its column may not time the same loss")
    errors = {(r["loss"], c): msg for r in rows for c, msg in r["errors"].items()}
    for (loss, c), msg in sorted(errors.items()):
        lines.append(f"  {c} failed on {loss}: {msg}")
    return lines


def _sci(n):
    return f"{n:.0e}".replace("e+0", "e").replace("e+", "e")


def _gmean(xs):
    return math.exp(sum(math.log(x) for x in xs) / len(xs)) if xs else float("nan")


def cpu_model():
    """The CPU's model name: /proc/cpuinfo's "model name" (x86), else lscpu's
    "Model name" (aarch64 kernels have no such cpuinfo line), else what
    platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.split(":", 1)[0].strip() in ("model name", "Model", "Hardware"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        import subprocess
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    return platform.processor() or platform.machine()


def machine_info(peers):
    cfg = fl.show_config(print_=False)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    info = {"cpu": cpu_model(), "cpus": os.cpu_count(), "usable_cpus": usable,
            "platform": platform.platform(), "python": platform.python_version(),
            "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            **{k: cfg.get(k) for k in ("fastloss", "numpy", "compiler", "cflags", "openmp",
                                       "openmp_version", "simd", "simd_isa", "simd_levels",
                                       "threads")}}
    info["peers"] = {name: mod.version for name, mod in peers.items()}
    return info


def format_header(info, settings, skipped):
    omp = f"OpenMP {info['openmp_version']}" if info["openmp"] else "no OpenMP (1 thread)"
    load = " ".join(f"{x:.2f}" for x in info["loadavg"]) if info["loadavg"] else "?"
    lines = [
        f"fastloss {info['fastloss']} benchmark: {settings.method}, reduction='mean'",
        f"machine : {info['cpu']} ({platform.machine()}), {info['cpus']} logical CPUs "
        f"({info['usable_cpus']} usable), load average {load}",
        f"build   : {info['compiler']}, {omp}, default threads {info['threads']}",
        f"SIMD    : level {info['simd']} = {info['simd_isa']} (FASTLOSS_SIMD; this CPU runs "
        f"{info['simd_levels']})",
        f"python  : {info['python']}, numpy {info['numpy']}, {info['platform']}",
        "peers   : " + (", ".join(f"{k} {v}" for k, v in info["peers"].items()) or "none"),
    ]
    for name, why in skipped.items():
        lines.append(f"          skipped {name}: {why}")
    lines += [
        f"timing  : median of up to {settings.repeat} interleaved batches "
        f"(>= {settings.sample_time * 1e3:g} ms of calls each; fewer for slow contenders, "
        f"at least {settings.min_repeat}); min and every batch in --json",
        "columns : fastloss = out= reused (steady state); alloc = without out=; "
        "GB/s of fastloss; roof = roofline GB/s at this size/threads;",
        "          other columns: median time and fastloss's speedup over it "
        "(! = its loss value differs from fastloss's)",
        f"          ~ = median of fewer than {FEW} batches (slow calls in --quick)",
        "          reference (fastloss's accuracy-first pure-NumPy reference): not "
        "thread-controlled, one timing shown at every thread count",
    ]
    if settings.reference_limit is not None:
        lines.append(f"          --quick: reference timed below {_sci(settings.reference_limit)} "
                     "elements only (it takes seconds per call beyond)")
    for name in info["peers"]:
        lines.append(f"          {name}: {PEER_NOTES[name]}")
    return lines


class Progress:
    """'[k/n] label' on stderr, rewritten in place; silent when disabled."""

    def __init__(self, total, enabled):
        self.total, self.enabled, self.k, self.width = total, enabled, 0, 0

    def step(self, label):
        self.k += 1
        if self.enabled:
            text = f"[{self.k}/{self.total}] {label}"
            sys.stderr.write("\r" + text.ljust(self.width))
            sys.stderr.flush()
            self.width = len(text)

    def done(self):
        if self.enabled and self.width:
            sys.stderr.write("\r" + " " * self.width + "\r")
            sys.stderr.flush()
            self.width = 0


def write_json(path, info, settings, skipped, rows, raw, elapsed):
    doc = {"fastloss_bench": 1, "machine": info, "settings": vars(settings).copy(),
           "skipped_peers": skipped, "elapsed_s": elapsed, "rows": rows, "raw": raw}
    with open(path, "w") as f:
        json.dump(_finite(doc), f, indent=1)


def _finite(x):
    """NaN and infinities -> None, so the file is strict JSON."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


# One colour and one marker per contender of the plot (every peer its own):
# the lines and the legend both read this table.
PLOT_STYLE = {
    "reference": ("tab:gray", "s"),
    "numpy": ("tab:brown", "v"),
    "torch": ("tab:red", "o"),
    "torch-fwd": ("tab:pink", "^"),
    "jax": ("tab:blue", "D"),
    "sklearn": ("tab:orange", "P"),
}


def plot_series(rows, contenders):
    """The lines of the plot: {loss: [(contender, (dtype, threads), group,
    [(elements, speedup), ...])]}.  A line joins rows of one shape family
    only: elementwise sizes (group None); class losses one line per class
    count and row losses one per vector length (group = the last axis), so
    that unlike shapes are never joined."""
    out = {}
    for r in rows:
        group = None if r["family"] == "elementwise" else r["shape"][-1]
        for c in contenders:
            if c in r["speedup"]:
                key = (c, (r["dtype"], r["threads"]), group)
                out.setdefault(r["loss"], {}).setdefault(key, []).append(
                    (r["elements"], r["speedup"][c]))
    return {loss: [(c, combo, g, sorted(pts)) for (c, combo, g), pts in lines.items()]
            for loss, lines in out.items()}


def write_plot(path, rows, peers):
    """Speedup of fastloss (out=) over each contender against the size, one
    panel per loss: colour and marker = contender (PLOT_STYLE), line style =
    (dtype, threads); class and row losses: one line per class count / vector
    length, its end labelled "C=..." / "D=..."."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    losses = list(dict.fromkeys(r["loss"] for r in rows))
    families = {r["loss"]: r["family"] for r in rows}
    combos = list(dict.fromkeys((r["dtype"], r["threads"]) for r in rows))
    styles = {c: ["-", "--", ":", "-."][i % 4] for i, c in enumerate(combos)}
    contenders = [c for c in ["reference"] + list(peers) if c in PLOT_STYLE]
    series = plot_series(rows, contenders)
    ncols = min(4, len(losses))
    nrows = math.ceil(len(losses) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(4.2 * ncols, 3.2 * nrows), squeeze=False)
    for ax, name in zip(axes.flat, losses):
        tag = "C" if families[name] == "class" else "D"
        for c, combo, group, pts in series.get(name, []):
            color, marker = PLOT_STYLE[c]
            ax.plot(*zip(*pts), styles[combo], marker=marker, ms=4, color=color)
            if group is not None:
                ax.annotate(f"{tag}={group}", pts[-1], textcoords="offset points",
                            xytext=(3, 2), fontsize=6, color=color)
        xlabel = "elements" if families[name] == "elementwise" else \
            f"elements (one line per {'class count C' if tag == 'C' else 'vector length D'})"
        ax.set(xscale="log", yscale="log", title=name, xlabel=xlabel, ylabel="speedup")
        ax.axhline(1.0, color="black", lw=0.6)
    for ax in list(axes.flat)[len(losses):]:
        ax.set_visible(False)
    handles = ([Line2D([], [], color=PLOT_STYLE[c][0], marker=PLOT_STYLE[c][1], label=f"vs {c}")
                for c in contenders]
               + [Line2D([], [], color="black", ls=styles[k], label=f"{k[0]}, {k[1]} thr")
                  for k in combos])
    fig.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.0),
               ncol=min(6, len(handles)), fontsize="small")
    fig.suptitle("fastloss speedup: contender time / fastloss (out=) time")
    fig.tight_layout()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


# --------------------------------------------------------------------- CLI

def _csv(conv):
    def parse(text):
        try:
            return [conv(x.strip()) for x in text.split(",") if x.strip()]
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return parse


def _size(text):
    n = float(text)
    if not (n >= 1 and n == int(n)):
        raise ValueError(f"bad size {text!r}: a positive integer such as 1e5")
    return int(n)


def _shape(text):
    dims = tuple(int(d) for d in text.lower().split("x"))
    if len(dims) < 2 or min(dims) < 1:
        raise ValueError(f"bad shape {text!r}: N x C such as 4096x10")
    return dims


def _threads(text):
    n = int(text)
    if n < 1:
        raise ValueError(f"bad thread count {text!r}")
    return n


def make_parser():
    ap = argparse.ArgumentParser(
        prog="fastloss-bench",
        description="Time fastloss against idiomatic NumPy, its accuracy-first NumPy "
                    "reference, PyTorch, JAX, scikit-learn and the memory-bandwidth roofline "
                    "(medians of interleaved repeats).")
    names = [s.name for s in TABLE]
    ap.add_argument("--loss", type=_csv(str), default=None, metavar="NAME[,NAME...]",
                    help=f"losses to time (default: all {len(names)} in the table)")
    ap.add_argument("--sizes", type=_csv(_size), default=None, metavar="N,...",
                    help="elementwise sizes (default 1e3,1e5,1e7)")
    ap.add_argument("--shapes", type=_csv(_shape), default=None, metavar="NxC,...",
                    help="class-loss logits shapes (default "
                         + ",".join("x".join(map(str, s)) for s in CLASS_SHAPES) + ")")
    ap.add_argument("--dtype", type=_csv(str), default=None, metavar="DTYPE,...",
                    help="float32 and/or float64 (default both; --quick: float32)")
    ap.add_argument("--threads", type=_csv(_threads), default=None, metavar="N,...",
                    help="thread counts (default 1 and fastloss's default; --quick: 1, "
                         "and 2 for work of >= 4e6 elements)")
    ap.add_argument("--method", choices=METHODS, default="value_and_grad")
    ap.add_argument("--compare", type=_csv(str), default=list(PEERS), metavar="PEER,...",
                    help="peers to time when importable: " + ",".join(PEERS)
                         + " (default all; 'none' for none)")
    ap.add_argument("--repeat", type=int, default=None,
                    help="timed batches per contender (default 7; --quick 5)")
    ap.add_argument("--min-time", type=float, default=None, metavar="SECONDS",
                    help="target length of one timed batch (default 0.01; --quick 0.002)")
    ap.add_argument("--json", metavar="FILE", help="write every measurement and the machine here")
    ap.add_argument("--plot", metavar="FILE.png", help="speedup-vs-size chart (needs matplotlib)")
    ap.add_argument("--quick", action="store_true",
                    help="float32, sizes 1e3,1e5,1e7 and the class shapes, every loss, few "
                         "repeats: well under a minute (what `make bench` runs)")
    ap.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    return ap


def output_path_problem(path):
    """Why `path` cannot be written (None: it can): checked before any timing,
    so a typo does not cost a whole run."""
    path = os.path.abspath(os.path.expanduser(path))
    parent = os.path.dirname(path)
    if os.path.isdir(path):
        return "is a directory"
    if not os.path.isdir(parent):
        return f"directory {parent} does not exist"
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"directory {parent} is not writable"
    if os.path.exists(path) and not os.access(path, os.W_OK):
        return "is not writable"
    return None


def settings_from(args, ap):
    plan_ = QUICK if args.quick else FULL
    names = [s.name for s in TABLE]
    losses = args.loss or names
    unknown = [x for x in losses if x not in names]
    if unknown:
        ap.error(f"unknown loss {', '.join(unknown)}; known: {', '.join(names)}")
    dtypes = args.dtype or list(plan_["dtypes"])
    if any(d not in DTYPES for d in dtypes):
        ap.error(f"--dtype takes {' and/or '.join(DTYPES)}, got {','.join(dtypes)}")
    peers = [] if args.compare in ([], ["none"]) else args.compare
    if any(p not in PEERS for p in peers):
        ap.error(f"--compare takes {','.join(PEERS)} (or none), got {','.join(peers)}")
    threads = args.threads
    if threads is None and not args.quick:
        threads = sorted({1, fl.get_num_threads()})
    repeat = args.repeat if args.repeat is not None else plan_["repeat"]
    if repeat < 1:
        ap.error("--repeat must be >= 1")
    for flag, path in (("--json", args.json), ("--plot", args.plot)):
        why = path is not None and output_path_problem(path)
        if why:             # one line, exit status 2 (as argparse's usage errors)
            ap.exit(2, f"{ap.prog}: error: {flag} {path}: {why}\n")
    if args.plot:
        try:
            importlib.import_module("matplotlib")
        except ImportError:
            ap.error("--plot needs matplotlib, which is not installed "
                     "(pip install matplotlib)")
    return Settings(
        losses=losses, sizes=args.sizes or list(SIZES),
        shapes=args.shapes or list(CLASS_SHAPES), dtypes=dtypes,
        threads=tuple(dict.fromkeys(threads)) if threads else None,
        method=args.method, peers=list(dict.fromkeys(peers)), repeat=repeat,
        min_repeat=min(repeat, plan_["min_repeat"]),
        sample_time=args.min_time if args.min_time is not None else plan_["sample_time"],
        budget=plan_["budget"], reference_limit=plan_["reference_limit"], quick=args.quick,
        progress=not args.no_progress and sys.stderr.isatty())


def run(settings, out=None):
    """Run the benchmark; print the table to `out`; return the JSON document."""
    out = sys.stdout if out is None else out
    t_start = time.perf_counter()
    peers, skipped = load_peers(settings.peers)
    info = machine_info(peers)
    micro = _micro()
    print("\n".join(format_header(info, settings, skipped)), file=out, flush=True)
    cases = plan(settings)
    progress = Progress(len(cases), settings.progress)
    rows, raw, printed = [], [], 0
    for i, case in enumerate(cases):
        thr = ",".join(map(str, case.threads))
        progress.step(f"{case.loss} {case.label} {case.dtype} thr={thr}")
        result = run_case(case, peers, settings)
        rows += rows_of(result)
        raw += raw_of(result)
        if i + 1 == len(cases) or cases[i + 1].loss != case.loss:
            progress.done()         # a loss is complete: print its table
            print("\n".join(format_table(rows[printed:], list(peers), micro)), file=out, flush=True)
            printed = len(rows)
    progress.done()
    elapsed = time.perf_counter() - t_start
    print("\n".join(format_summary(rows, list(peers))), file=out)
    print(f"\ntotal time {elapsed:.1f} s", file=out, flush=True)
    return {"machine": info, "skipped": skipped, "rows": rows, "raw": raw, "elapsed": elapsed}


def main(argv=None):
    ap = make_parser()
    args = ap.parse_args(argv)
    settings = settings_from(args, ap)
    doc = run(settings)
    if args.json:
        write_json(args.json, doc["machine"], settings, doc["skipped"], doc["rows"], doc["raw"],
                   doc["elapsed"])
        print(f"wrote {args.json}")
    if args.plot:
        write_plot(args.plot, doc["rows"], list(doc["machine"]["peers"]))
        print(f"wrote {args.plot}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
