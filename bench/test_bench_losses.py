"""pytest-benchmark suite: fastloss against its NumPy reference, every loss
of the table, ``value_and_grad`` with ``out=`` (a reused gradient buffer).

    pytest bench/ --benchmark-only
    pytest bench/ --benchmark-only -m "not slow"      # without the 1e7-sized cases

Benchmarks are grouped by loss and size, so pytest-benchmark prints fastloss
and the reference of one (loss, size) next to each other.  Elementwise losses
run at n = 1e3, 1e5, 1e7; class losses at the (N, C) shapes of
``fastloss.bench.CLASS_SHAPES``.  Both implementations get the same call,
``impl.value_and_grad(y_pred, y_true, out=g)``, on the same float32 data.
"""
import functools
import math
import time

import numpy as np
import pytest

pytest.importorskip("pytest_benchmark")

import fastloss as fl  # noqa: E402
from fastloss._registry import make_inputs  # noqa: E402
from fastloss._registry import TABLE  # noqa: E402
from fastloss.bench import CLASS_SHAPES, LARGE, SIZES, size_label  # noqa: E402

IMPLS = ("fastloss", "reference")
TARGET_ROUND = 2e-3     # seconds of calls per round (small cases)
BUDGET = 0.25           # seconds per benchmark (small cases)


def _shapes(spec):
    return [(n,) for n in SIZES] if spec.family == "elementwise" else list(CLASS_SHAPES)


def _label(shape):
    return size_label(shape[0]) if len(shape) == 1 else "x".join(map(str, shape))


def _cases():
    """(loss, shape, impl), both implementations of a case one after the
    other, so that one cached input serves both."""
    for spec in TABLE:
        for shape in _shapes(spec):
            marks = [pytest.mark.slow] if math.prod(shape) >= LARGE else []
            for impl in IMPLS:
                yield pytest.param(spec.name, shape, impl, marks=marks,
                                   id=f"{spec.name}-{_label(shape)}-{impl}")


@functools.lru_cache(maxsize=1)       # one case at a time: 1e7-sized inputs are big
def _inputs(name, shape):
    return make_inputs(name, shape, np.float32, np.random.default_rng(0))


def _run(benchmark, fn, elements, impl):
    """Few rounds for the big cases (the reference takes ~1 s per call there);
    otherwise rounds of ~2 ms of calls within a small budget."""
    if elements >= LARGE:
        rounds, warmup = (3, 1) if impl == "fastloss" else (1, 0)
        return benchmark.pedantic(fn, rounds=rounds, iterations=1, warmup_rounds=warmup)
    fn()
    t0 = time.perf_counter()
    fn()
    per_call = max(time.perf_counter() - t0, 1e-7)
    iterations = max(1, int(TARGET_ROUND / per_call))
    rounds = max(3, min(50, int(BUDGET / (per_call * iterations))))
    return benchmark.pedantic(fn, rounds=rounds, iterations=iterations, warmup_rounds=1)


@pytest.mark.parametrize("name, shape, impl", list(_cases()))
def test_value_and_grad(benchmark, name, shape, impl):
    y_pred, y_true, kwargs = _inputs(name, shape)
    loss = fl.losses[name]
    obj = loss if impl == "fastloss" else loss.reference
    out = np.empty_like(y_pred)
    benchmark.group = f"{name} {_label(shape)} float32 value_and_grad(out=)"
    benchmark.extra_info.update(impl=impl, elements=math.prod(shape),
                                threads=fl.get_num_threads(),
                                bytes=y_pred.nbytes * 2 + y_true.nbytes)

    def call():
        return obj.value_and_grad(y_pred, y_true, out=out, **kwargs)

    value, grad = _run(benchmark, call, math.prod(shape), impl)
    assert grad is out                          # it wrote into the reused buffer
    assert np.isfinite(value)
