"""The benchmark's idiomatic NumPy baseline (the ``numpy`` peer spelling of
every declaration, fastloss/losses) computes the same loss as fastloss: its
value and gradient against the pure-NumPy float64 reference
(fl.<loss>.reference), at the defaults and at other parameter values.

The baseline is written the way a user writes it (no log-sum-exp tricks
beyond the max shift, log(cosh(d)) as is, no clamps), so it is compared on
the declarations' sampled inputs, where those short forms are accurate.

Tolerance: both sides compute in float64; they differ only in rounding
(other but equivalent formulas, sums in another order), a few ULP amplified
by the conditioning of the formulas on these inputs (no catastrophic
cancellation: the sampled data keep e.g. 1 - cos and p*(1-p) away from 0).
rtol = 1e-9 of the largest magnitude is far above that (observed ~1e-15)
and far below the O(1) relative error of any wrong formula, factor, sign or
1/n.
"""
import numpy as np
import pytest

import fastloss as fl
from fastloss._registry import TABLE, make_inputs

RTOL = 1e-9
SHAPES = {"elementwise": (1001,), "class": (97, 7), "rows": (53, 16)}

# parameter values other than the defaults that the baseline supports
OTHER = {
    "huber": [dict(delta=0.3)],
    "smooth_l1": [dict(beta=0.4), dict(beta=0.0)],
    "quantile": [dict(q=0.1), dict(q=0.9)],
    "tweedie": [dict(power=1.2), dict(power=1.8)],
    "sigmoid_focal": [dict(alpha=None, gamma=2.0), dict(alpha=0.7, gamma=3.0),
                      dict(alpha=0.25, gamma=1.0)],
    "cross_entropy": [dict(label_smoothing=0.1)],
    "multi_margin": [dict(margin=0.5, power=2), dict(margin=2.0, power=1)],
    "gaussian_nll": [dict(full=True, eps=0.5)],
    "kl_div": [dict(log_target=True)],
    "margin_ranking": [dict(margin=0.3)],
    "cosine_embedding": [dict(margin=0.2), dict(margin=-0.5)],
    "triplet_margin": [dict(swap=True), dict(p=1.0), dict(p=3.0, margin=2.0),
                       dict(p=np.inf), dict(eps=0.0, swap=True, margin=0.5)],
}


def _close(what, got, want):
    got, want = np.asarray(got, np.float64), np.asarray(want, np.float64)
    assert got.shape == want.shape, what
    scale = max(float(np.max(np.abs(want))), 1e-300)
    err = float(np.max(np.abs(got - want)))
    assert err <= RTOL * scale, f"{what}: max error {err:.3g}, scale {scale:.3g}"


def test_every_declaration_has_a_numpy_spelling():
    missing = [s.name for s in TABLE if "numpy" not in s.peers]
    assert not missing


CASES = [(s.name, {}) for s in TABLE] + [(n, kw) for n, kws in OTHER.items() for kw in kws]


@pytest.mark.parametrize("name,params", CASES, ids=[f"{n}-{kw}" for n, kw in CASES])
def test_numpy_baseline_matches_the_reference(name, params):
    spec = next(s for s in TABLE if s.name == name)
    f = spec.peers["numpy"]
    k = {**{p.name: p.default for p in spec.params}, **params}
    for seed in range(3):
        *inputs, kw = make_inputs(name, SHAPES[spec.family], np.float64,
                                  np.random.default_rng(seed))
        rv, rg = fl.losses[name].reference.value_and_grad(*inputs, **params)
        v, g = f(np, *inputs, k)
        _close(f"{name} {params} value", v, rv)
        _close(f"{name} {params} value (grad=False)", f(np, *inputs, k, grad=False), rv)
        g, rg = (g, rg) if isinstance(rg, tuple) else ((g,), (rg,))
        assert len(g) == len(rg) == len(spec.differentiable)
        for i, (a, b) in enumerate(zip(g, rg)):
            _close(f"{name} {params} gradient {spec.differentiable[i]}", a, b)


def test_a_wrong_baseline_would_fail():
    """The comparison can fail: mse's baseline with the 1/n of the gradient
    dropped, or its value off by a factor 1 + 1e-6, is caught."""
    *inputs, _ = make_inputs("mse", (1001,), np.float64)
    rv, rg = fl.losses["mse"].reference.value_and_grad(*inputs)
    v, g = next(s for s in TABLE if s.name == "mse").peers["numpy"](np, *inputs, {})
    with pytest.raises(AssertionError):
        _close("gradient", g * g.size, rg)
    with pytest.raises(AssertionError):
        _close("value", v * (1 + 1e-6), rv)
