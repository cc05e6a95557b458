"""Memory leaks: 10^5 calls that do not grow the process.

The calls: every loss of the table, float32 and float64, every method
(value, grad, value_and_grad, hessian), every reduction, ``out=``, the
compiled fast path and the generic path (strided and transposed inputs,
lists, scalars, other dtypes, weights, partial axes, loss parameters, class
weights, probability targets, ignore_index, label smoothing, pos_weight; a
few calls big enough for the chunked, threaded drivers, including the
long-row split of cross_entropy) and the error paths (calls that raise,
with the reason found in Python or in C: shapes, labels, data checks,
parameters, out=, n_threads, dtypes).  About 1300 kinds of call.

The measurements, each against a stated bound (BOUNDS):

* per kind of call: CPython's allocated memory blocks
  (``sys.getallocatedblocks``) over K consecutive calls, with the cyclic GC
  paused; K = 83 for small arrays (so that the kinds add up to 10^5 calls),
  10 for the big ones.  A kind that gains K/2 blocks or more is re-measured
  with the GC on over 4K calls and fails if it still gains >= 1 block per 2
  calls.  Every leaked Python object is a block -- an ndarray's header, a
  tuple, an exception, a reference kept to a temporary -- so a leak in a
  single path of a single loss is caught and named.  (Under
  PYTHONMALLOC=malloc the block count is 0 and this check is skipped; the
  two below still run.)
* the resident set size (psutil, else /proc/self/statm) over all these
  calls: catches leaked C allocations (kernel scratch buffers) and NumPy
  data buffers of ~40 bytes per call on average or more (the C heap is
  trimmed with malloc_trim before each reading, so that a leak cannot hide
  in memory freed earlier);
* tracemalloc (Python objects and NumPy data buffers) over two more passes
  over every kind of call; on failure the report names the source lines
  that grew.

Small arrays keep it to ~10 s.  C allocations too small for the RSS to
resolve are valgrind's job (tools/valgrind_check.sh).  docs/robustness.md
has the measured figures.
"""
import ctypes
import gc
import inspect
import math
import os
import sys
import tracemalloc
import warnings

import numpy as np
import pytest

import fastloss as fl
from fastloss._registry import make_inputs
from fastloss._registry import TWO_INPUT as TABLE

TOTAL_CALLS = 100_000        # at least this many calls in the per-kind phase
K_BIG = 10                   # calls per big kind (70000 elements)
BOUNDS = {
    "blocks_per_call": 0.5,  # per kind, confirmed over 4K calls with the GC on
    "rss": 4 * 2 ** 20,      # bytes over the whole per-kind phase (~10^5 calls)
    "blocks_total": 2000,    # pymalloc blocks over the whole per-kind phase
    "traced": 64 * 1024,     # bytes over two passes over every kind (~2600 calls)
}
ERRORS = (ValueError, TypeError)


def _trim():
    """Collect garbage and hand the C heap's free pages back to the system
    (glibc malloc_trim), so that the RSS then counts live memory and a leak
    cannot hide in memory freed earlier."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _rss():
    try:
        import psutil
        return psutil.Process().memory_info().rss
    except ImportError:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _bad_param_value(param):
    """A value outside the parameter's domain, or None if every real is in."""
    d = param.domain
    if d.values is not None:
        return 3
    if d.lo > -np.inf:
        return d.lo - 1.0
    if d.hi < np.inf:
        return d.hi + 1.0
    return None


def _softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _cases(spec, dtype, rng):
    """Kinds of call for one loss and dtype: (ok, big, bad) lists of
    closures; `bad` ones must raise ValueError or TypeError."""
    L = fl.losses[spec.name]
    cls = spec.family == "class"
    shape = (16, 5) if cls else (64,)
    p, t, kw = make_inputs(spec.name, shape, dtype, rng)
    other = np.float64 if dtype == np.float32 else np.float32
    buf = np.empty_like(p)
    ok, big, bad = [], [], []

    # -- the fast path: contiguous, one dtype, every method and reduction
    for red in ("mean", "sum", "none"):
        for m in (L, L.grad, L.value_and_grad, L.hessian):
            ok.append(lambda m=m, red=red: m(p, t, reduction=red, **kw))
    for m in (L.grad, L.value_and_grad, L.hessian):
        ok.append(lambda m=m: m(p, t, out=buf, **kw))
    ok.append(lambda: L.value_and_grad(p, t, n_threads=1, **kw))

    # -- several chunks and threads (FL_CHUNK = 32768 elements)
    bp, bt, _ = make_inputs(spec.name, (35_000, 2) if cls else (70_000,), dtype, rng)
    big.append(lambda: L.value_and_grad(bp, bt, n_threads=2, **kw))
    big.append(lambda: L.hessian(bp, bt, **kw))

    # -- the generic path
    ok.append(lambda: L.value_and_grad(p.astype(np.float16), t, **kw))
    ok.append(lambda: L.grad(p.astype(other), t, **kw))
    if cls:
        N, C = shape
        pt = np.ascontiguousarray(p.T)            # classes first: class_axis=0
        w = np.linspace(0.5, 1.5, N)
        ok.append(lambda: L.value_and_grad(pt, t, class_axis=0, **kw))
        ok.append(lambda: L.hessian(pt.T, t, **kw))      # a transposed view
        ok.append(lambda: L.value_and_grad(p, t, sample_weight=w, **kw))
        ok.append(lambda: L.value_and_grad(p, t, class_weight=np.linspace(1, 2, C), **kw))
        ok.append(lambda: L(p.reshape(4, 4, C), t.reshape(4, 4), axis=1, **kw))
        ok.append(lambda: L.grad(p[:4].tolist(), t[:4].tolist(), **kw))
        ok.append(lambda: L.value_and_grad(p, t.astype(np.int32), reduction="none", **kw))
        if spec.accepts_probabilities:
            probs = _softmax(p.astype(np.float64)).astype(dtype)
            ok.append(lambda: L.value_and_grad(p, probs, **kw))
            ok.append(lambda: L.hessian(p, t, ignore_index=0, **kw))
            bad.append(lambda: L(p, probs, ignore_index=0, **kw))
        if "label_smoothing" in spec.param_names:
            ok.append(lambda: L.value_and_grad(p, t, label_smoothing=0.1, **kw))
        # long rows: cut into segments, shared by 2 threads
        lp, lt, _ = make_inputs(spec.name, (2, 20_000), dtype, rng)
        big.append(lambda: L.value_and_grad(lp, lt, n_threads=2, **kw))
        # labels out of range (found in C on the fast path), negative, not whole
        y_big = t.copy()
        y_big[-1] = C
        y_neg = t.copy()
        y_neg[3] = -7
        bad.append(lambda: L.value_and_grad(p, y_big, **kw))
        bad.append(lambda: L.grad(p, y_neg, **kw))
        bad.append(lambda: L(p, t.astype(np.float64) + 0.5, **kw))
        bad.append(lambda: L(p, t, class_weight=np.ones(C + 1), **kw))
        bad.append(lambda: L(p, t[:3], **kw))
        bad.append(lambda: L(p, t, class_axis=3, **kw))
    else:
        ps = np.repeat(p, 2)[::2]                 # strided views
        ts = np.repeat(t, 2)[::2]
        ok.append(lambda: L.value_and_grad(ps, ts, **kw))
        ok.append(lambda: L.hessian(ps, t, reduction="none", **kw))
        ok.append(lambda: L.value_and_grad(p, t, sample_weight=np.linspace(0, 1, 64), **kw))
        ok.append(lambda: L(p.reshape(8, 8), t.reshape(8, 8), axis=1, **kw))
        ok.append(lambda: L.value_and_grad(p.reshape(8, 8), t[:8], axis=0, **kw))
        ok.append(lambda: L.grad(p[:8].tolist(), t[:8].tolist(), **kw))
        ok.append(lambda: L(float(p[0]), float(t[0]), **kw))
        for a in spec.array_params:
            ok.append(lambda a=a: L.value_and_grad(p, t, **{a.name: np.full(64, 2.0)}, **kw))
            bad.append(lambda a=a: L(p, t, **{a.name: -np.ones(64)}, **kw))
        for c in spec.checks:                     # data checks (found in C)
            off = c.domain.lo - 1.0 if c.domain.lo > -np.inf else c.domain.hi + 1.0
            if c.arg == "y_pred":
                pb = p.copy()
                pb[-1] = off
                bad.append(lambda pb=pb: L.value_and_grad(pb, t, **kw))
            else:
                tb = t.copy()
                tb[-1] = off
                bad.append(lambda tb=tb: L.grad(p, tb, **kw))
        bad.append(lambda: L(p, t[:3], **kw))
        bad.append(lambda: L(p[:1], t, **kw))      # a target that would enlarge y_pred
    for prm in spec.params:
        v = _bad_param_value(prm)
        if v is not None:
            bad.append(lambda prm=prm, v=v: L.grad(p, t, **{prm.name: v}, **kw))
        if prm.default is not None and prm.domain.contains(prm.default):
            ok.append(lambda prm=prm: L.value_and_grad(p, t, **{prm.name: prm.default}, **kw))

    # -- errors every loss shares
    bad.append(lambda: L(p, t, reduction="avg", **kw))
    bad.append(lambda: L(p, t, no_such_argument=1, **kw))
    bad.append(lambda: L.grad(p, t, out=np.empty(p.shape, other), **kw))
    bad.append(lambda: L.grad(p, t, out=np.empty(p.shape[:-1] + (2 * p.shape[-1],),
                                                 dtype)[..., ::2], **kw))
    bad.append(lambda: L.value_and_grad(p, t, out=np.empty((3,), dtype), **kw))
    bad.append(lambda: L(p, t, n_threads=0, **kw))
    bad.append(lambda: L(p.astype(np.complex128), t, **kw))
    bad.append(lambda: L(p, t, reduction="none", axis=0, **kw))
    return ok, big, bad


def _describe(f):
    """The loss, dtype and source line of a call closure (failure messages)."""
    try:
        src = inspect.getsource(f).strip()
    except OSError:
        src = repr(f)
    cells = dict(zip(f.__code__.co_freevars, (c.cell_contents for c in f.__closure__ or ())))
    loss = cells.get("L")
    for d in f.__defaults__ or ():              # lambda m=L.grad, ...: m(...)
        if isinstance(getattr(d, "__self__", None), fl.Loss):
            loss = f"{d.__self__}.{d.__name__}"
    dt = next((v.dtype for k, v in cells.items() if k in ("p", "bp", "lp")), "")
    return f"{loss} {dt}: {src}"


def _kinds():
    """[(closure, raises, calls per measurement)] over the whole table."""
    rng = np.random.default_rng(2024)
    ok, big, bad = [], [], []
    for spec in TABLE:
        for dtype in (np.float32, np.float64):
            o, g, b = _cases(spec, dtype, rng)
            ok += o
            big += g
            bad += b
    k = math.ceil((TOTAL_CALLS - K_BIG * len(big)) / (len(ok) + len(bad)))
    return ([(f, False, k) for f in ok] + [(f, False, K_BIG) for f in big]
            + [(f, True, k) for f in bad])


def _call(f, raises):
    if raises:
        try:
            f()
        except ERRORS:
            return
        raise AssertionError(f"did not raise: {_describe(f)}")
    f()


def _repeat(f, raises, n):
    for _ in range(n):
        _call(f, raises)


def _leaking_kinds(kinds):
    """Per-kind block growth: (kinds that leak, number of suspects, calls).

    Some kinds gain about one block per call for a while with the GC off
    and give them back later (interpreter caches; nothing the GC finds):
    hence the confirmation of every suspect over 4K calls with the GC on."""
    calls = 0
    suspects = []
    gc.collect()
    gc.disable()
    try:
        for f, raises, k in kinds:
            _repeat(f, raises, 2)                 # first-call caches
            b0 = sys.getallocatedblocks()
            _repeat(f, raises, k)
            grew = sys.getallocatedblocks() - b0
            calls += k + 2
            if grew >= BOUNDS["blocks_per_call"] * k:
                suspects.append((f, raises, k))
    finally:
        gc.enable()
    leaking = []
    for f, raises, k in suspects:                 # confirm, with the GC on
        gc.collect()
        b0 = sys.getallocatedblocks()
        _repeat(f, raises, 4 * k)
        gc.collect()
        grew = sys.getallocatedblocks() - b0
        calls += 4 * k
        if grew >= BOUNDS["blocks_per_call"] * 4 * k:
            leaking.append(f"{grew} blocks over {4 * k} calls: {_describe(f)}")
    return leaking, len(suspects), calls


def test_no_leaks_over_1e5_calls():
    kinds = _kinds()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")       # pytest would keep every warning
        for f, raises, _ in kinds:            # every call works / raises
            _call(f, raises)
        _trim()
        rss0, blocks0 = _rss(), sys.getallocatedblocks()
        leaking, n_suspects, calls = _leaking_kinds(kinds)
        _trim()
        rss1, blocks1 = _rss(), sys.getallocatedblocks()

        tracemalloc.start(8)
        try:
            for f, raises, _ in kinds:
                _call(f, raises)
            gc.collect()
            snap0 = tracemalloc.take_snapshot()
            m0 = tracemalloc.get_traced_memory()[0]
            for _ in range(2):
                for f, raises, _ in kinds:
                    _call(f, raises)
            gc.collect()
            m1 = tracemalloc.get_traced_memory()[0]
            snap1 = tracemalloc.take_snapshot() if m1 - m0 >= BOUNDS["traced"] else None
        finally:
            tracemalloc.stop()
    calls += 4 * len(kinds)

    growth = {"rss": rss1 - rss0, "blocks_total": blocks1 - blocks0, "traced": m1 - m0}
    print(f"\ntest_leaks: {calls} calls of {len(kinds)} kinds; growth: RSS {growth['rss']} B, "
          f"{growth['blocks_total']} blocks in all, {n_suspects} kinds re-measured, "
          f"{len(leaking)} leaking, "
          f"{growth['traced']} B traced over {2 * len(kinds)} calls; bounds {BOUNDS}")
    assert calls >= TOTAL_CALLS
    if blocks0:                               # 0 under PYTHONMALLOC=malloc
        assert not leaking, (f"{len(leaking)} kinds of call leak Python objects:\n"
                             + "\n".join(leaking[:10]))
        assert growth["blocks_total"] < BOUNDS["blocks_total"], (
            f"{growth['blocks_total']} more Python memory blocks after {calls} calls")
    assert growth["traced"] < BOUNDS["traced"], (
        f"tracemalloc: {growth['traced']} bytes more after {2 * len(kinds)} calls; grew most:\n"
        + "\n".join(str(s) for s in snap1.compare_to(snap0, "traceback")[:5]))
    assert growth["rss"] < BOUNDS["rss"], f"RSS grew by {growth['rss']} bytes over {calls} calls"


# ------------------------------------------------------ the detectors work

def test_a_leaked_object_per_call_is_caught():
    """One kind that keeps one small array per call among good ones: the
    per-kind check names it, and only it."""
    if not sys.getallocatedblocks():
        pytest.skip("PYTHONMALLOC=malloc: no block count")
    keep = []
    p, t = np.ones(8), np.zeros(8)
    good = lambda: fl.mse.grad(p, t)                   # noqa: E731
    leaky = lambda: keep.append(fl.mse.grad(p, t))     # noqa: E731
    kinds = [(good, False, 80), (leaky, False, 80), (good, False, 80)]
    leaking, n_suspects, _ = _leaking_kinds(kinds)
    assert len(leaking) == 1 and "keep.append" in leaking[0], leaking


def test_a_leaked_c_buffer_is_caught():
    """A C-level leak (not a Python object: what a kernel that forgets a
    free() does) of 100 bytes per call over 10^5 calls shows in the RSS
    beyond the bound, even after the allocator's free memory is used up."""
    libc = ctypes.CDLL(None)
    libc.malloc.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    _trim()
    r0 = _rss()
    for _ in range(TOTAL_CALLS):
        ctypes.memset(libc.malloc(100), 1, 100)       # leaked on purpose
    _trim()
    assert _rss() - r0 >= BOUNDS["rss"]
