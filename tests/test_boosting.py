"""fastloss.xgboost and fastloss.lightgbm: custom objectives and metrics.

Oracles: XGBoost's and LightGBM's own built-in objectives (the model a
fastloss objective trains must be the model the built-in trains, where the
two use the same gradient and Hessian), the frameworks' gradient formulas
written out in float64 NumPy (from their sources, cited in the adapters'
BUILTINS), NumPy's weighted mean / median / quantile, and row duplication
(an integer weight must act exactly as repeating the row).  Each framework's
tests skip when it is not installed.
"""
import copy
import importlib
import pickle

import numpy as np
import pytest

import fastloss as fl
from fastloss import _boosting
import fastloss.lightgbm as fll
import fastloss.xgboost as flx

N = 600
ROUNDS = 15
# a model equals the built-in's to this absolute tolerance on the raw
# scores (both frameworks add float32 leaf values; the issue asks 1e-5)
MODEL_TOL = 1e-5


def _data(kind, n=N, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, 4))
    f = 1.5 * X[:, 0] + np.sin(2 * X[:, 1])
    if kind == "regression":
        y = f + 0.5 * rng.standard_normal(n)
    elif kind == "binary":
        y = (f + rng.standard_normal(n) > 0.3).astype(np.float64)
    elif kind == "classes":
        y = np.digitize(f + 0.5 * rng.standard_normal(n), [-1.0, 0.5]).astype(np.float64)
    elif kind == "counts":
        y = rng.poisson(np.exp(0.4 * f)).astype(np.float64)
    else:
        raise ValueError(kind)
    w = rng.uniform(0.2, 3.0, n)
    return X, y, w


KIND = {"mse": "regression", "mae": "regression", "huber": "regression",
        "quantile": "regression", "log_cosh": "regression", "poisson": "counts",
        "tweedie": "counts", "binary_cross_entropy_with_logits": "binary",
        "sigmoid_focal": "binary", "cross_entropy": "classes"}


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _softmax(z):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


# ------------------------------------------------ framework-free parts

def test_scale_comes_from_the_declarations():
    # fastloss's mse is d**2 = 2 x the half squared error the frameworks use
    assert _boosting.half_loss_factor(fl.mse.spec) == 2.0
    for name in ("mae", "huber", "quantile", "poisson", "tweedie",
                 "binary_cross_entropy_with_logits", "cross_entropy", "log_cosh"):
        assert _boosting.half_loss_factor(fl.get(name).spec) == 1.0, name


def test_which_losses_can_be_objectives():
    ok = {s.name for s in fl._registry.TABLE if _boosting.boostable(s) is None}
    assert {"mse", "mae", "huber", "log_cosh", "quantile", "poisson", "tweedie",
            "binary_cross_entropy_with_logits", "sigmoid_focal", "hinge",
            "cross_entropy", "multi_margin"} <= ok
    # constrained predictions (probabilities) and several-input / row losses are not
    assert not ok & {"binary_cross_entropy", "gaussian_nll", "margin_ranking",
                     "cosine_embedding", "triplet_margin"}
    for bad in ("binary_cross_entropy", "gaussian_nll", "triplet_margin"):
        with pytest.raises(ValueError, match="cannot be a boosting objective"):
            flx.objective(bad)
        with pytest.raises(ValueError, match="cannot be a boosting objective"):
            fll.metric(bad)


def test_default_hessian_modes():
    # the built-in's convention where the framework has the loss ...
    assert flx.objective("mae").hessian == "constant"
    assert flx.objective("quantile", q=0.2).hessian == "constant"
    assert fll.objective("huber").hessian == "constant"
    assert flx.objective("cross_entropy").hessian == "exact"
    # ... else exact where the Hessian never vanishes, constant where it does
    assert flx.objective("huber").hessian == "constant"
    assert flx.objective("smooth_l1").hessian == "constant"
    assert flx.objective("hinge").hessian == "constant"
    assert flx.objective("log_cosh").hessian == "exact"
    assert flx.objective("sigmoid_focal").hessian == "exact"      # negative in places: floored
    assert flx.objective("mae", hessian="exact").hessian == "exact"
    with pytest.raises(ValueError, match="hessian must be"):
        flx.objective("mse", hessian="diagonal")
    with pytest.raises(ValueError, match="hess_floor"):
        fll.objective("mse", hess_floor=-1.0)
    with pytest.raises(ValueError):
        flx.objective("huber", delta=-1.0)          # the loss's own parameter check
    with pytest.raises(TypeError, match="class_axis"):
        flx.objective("cross_entropy", class_axis=0)


def _oracle(name, fw, p, y, w, k):
    """The built-in objective's (grad, hess) in float64 NumPy, per sample,
    from the framework's source."""
    w = np.ones(len(y)) if w is None else w
    if name == "mse":
        return (p - y) * w, w + 0 * p
    if name == "binary_cross_entropy_with_logits":
        s = _sigmoid(p)
        h = s * (1 - s)
        return (s - y) * w, (np.maximum(h, 1e-16) if fw == "xgboost" else h) * w
    if name == "cross_entropy":
        P = _softmax(p)
        Y = np.eye(p.shape[1])[y.astype(int)]
        f = 2.0 if fw == "xgboost" else k / (k - 1.0)
        return (P - Y) * w[:, None], f * P * (1 - P) * w[:, None]
    if name == "poisson":
        return (np.exp(p) - y) * w, np.exp(p + 0.7) * w
    if name == "tweedie":
        r = 1.5
        return ((-y * np.exp((1 - r) * p) + np.exp((2 - r) * p)) * w,
                (-y * (1 - r) * np.exp((1 - r) * p) + (2 - r) * np.exp((2 - r) * p)) * w)
    if name == "huber":                      # LightGBM: delta = alpha, Hessian constant
        d = p - y
        return np.clip(d, -1.0, 1.0) * w, w + 0 * p
    if name == "mae":
        return np.sign(p - y) * w, w + 0 * p
    if name == "quantile":
        q = 0.5
        return np.where(p - y > 0, 1 - q, -q) * w, w + 0 * p
    raise KeyError(name)


@pytest.mark.parametrize("fw", ["xgboost", "lightgbm"])
@pytest.mark.parametrize("weighted", [False, True])
def test_gradients_match_the_builtin_formulas(fw, weighted):
    mod = flx if fw == "xgboost" else fll
    rng = np.random.default_rng(3)
    n, k = 257, 4
    w = rng.uniform(0.1, 2.0, n) if weighted else None
    for name in mod.BUILTINS:
        core = mod.objective(name)._core
        if name == "cross_entropy":
            p = rng.standard_normal((n, k)) * 2
            y = rng.integers(0, k, n).astype(np.float64)
        else:
            p = rng.standard_normal(n)
            y = {"poisson": rng.poisson(1.0, n), "tweedie": rng.gamma(1.0, 1.0, n),
                 "binary_cross_entropy_with_logits": rng.random(n) < 0.4}.get(
                     name, rng.standard_normal(n)).astype(np.float64)
        for dt, rtol in ((np.float64, 1e-12), (np.float32, 2e-6)):
            g, h = core(p.astype(dt), y, w)
            assert g.dtype == dt and h.dtype == dt and g.shape == p.shape == h.shape
            # the oracle on the operands rounded to the compute dtype (fastloss
            # casts targets and weights to it)
            r = lambda a: None if a is None else a.astype(dt).astype(np.float64)  # noqa: E731
            go, ho = _oracle(name, fw, r(p), r(y), r(w), k)
            # plus the cancellation in exp(p) - y (poisson, tweedie): a few
            # ulp of the larger term
            eps = np.finfo(dt).eps
            big = np.abs(r(y)) if go.ndim == 1 else 0.0
            ww = 1.0 if w is None else (r(w) if go.ndim == 1 else r(w)[:, None])
            for got, want in ((g, go), (h, ho)):
                err = np.abs(got - want)
                bound = rtol * np.abs(want) + 8 * eps * (1 + big + np.abs(want)) * ww
                assert np.all(err <= bound), (name, dt, float((err / bound).max()))


def test_per_sample_not_mean_and_weights_once():
    rng = np.random.default_rng(4)
    p, y, w = rng.standard_normal(1000), rng.standard_normal(1000), rng.uniform(0, 3, 1000)
    core = flx.objective("log_cosh")._core
    g, h = core(p, y)
    gw, hw = core(p, y, w)
    # per sample: tanh(d), not tanh(d)/N; the reference is the float64 oracle
    ref_g, ref_h = fl.log_cosh.reference.grad_and_hessian(p, y, reduction="none")
    np.testing.assert_allclose(g, ref_g, rtol=1e-13)
    np.testing.assert_allclose(h, ref_h, rtol=1e-13)
    np.testing.assert_allclose(gw, w * g, rtol=1e-13)
    np.testing.assert_allclose(hw, w * h, rtol=1e-13)
    # the constant surrogate is the weight (times the scale)
    g, h = flx.objective("mae")._core(p, y, w)
    np.testing.assert_array_equal(h, w)
    np.testing.assert_array_equal(g, np.sign(p - y) * w)
    g, h = flx.objective("mse", hessian="constant")._core(p, y)
    np.testing.assert_array_equal(h, np.full_like(p, 0.5))


def test_hess_floor():
    x = np.array([-60.0, 0.0, 60.0])
    y = np.array([0.0, 1.0, 1.0])
    _, h = flx.objective("binary_cross_entropy_with_logits")._core(x, y)
    assert h[0] == 1e-16 and h[2] == 1e-16 and h[1] == 0.25
    _, h = flx.objective("binary_cross_entropy_with_logits", hess_floor=0.0)._core(x, y)
    assert 0 < h[0] < 1e-25
    # sigmoid_focal's Hessian is negative in places: floored, never negative
    rng = np.random.default_rng(5)
    x = rng.standard_normal(2000) * 3
    y = (rng.random(2000) < 0.5).astype(float)
    exact = fl.sigmoid_focal.hessian(x, y, reduction="none")
    assert (exact < 0).any()
    _, h = flx.objective("sigmoid_focal")._core(x, y)
    np.testing.assert_array_equal(h, np.maximum(exact, 1e-16))


def test_init_score_is_the_best_constant():
    rng = np.random.default_rng(6)
    y = rng.gamma(2.0, 1.0, 1001)
    w = rng.uniform(0.1, 2.0, 1001)
    assert flx.init_score("mse", y, w) == pytest.approx(np.average(y, weights=w), rel=1e-13)
    assert flx.init_score("poisson", y, w) == pytest.approx(
        np.log(np.average(y, weights=w)), rel=1e-12)
    assert fll.init_score("tweedie", y, w, power=1.3) == pytest.approx(
        np.log(np.average(y, weights=w)), rel=1e-12)
    assert flx.init_score("mae", y) == pytest.approx(np.median(y), rel=1e-12)
    # weighted q-quantile: the smallest y whose cumulative weight reaches q
    q = 0.8
    o = np.argsort(y)
    cw = np.cumsum(w[o]) / w.sum()
    wq = y[o][np.searchsorted(cw, q)]
    assert flx.init_score("quantile", y, w, q=q) == pytest.approx(wq, rel=1e-12)
    yb = (rng.random(1001) < 0.3).astype(float)
    m = np.average(yb, weights=w)
    assert flx.init_score("binary_cross_entropy_with_logits", yb, w) == pytest.approx(
        np.log(m / (1 - m)), rel=1e-12)
    # a loss without a closed form: the summed gradient vanishes there
    c = flx.init_score("log_cosh", y, w)
    assert abs(np.sum(w * np.tanh(c - y))) < 1e-9 * w.sum()
    yc = rng.integers(0, 4, 1001).astype(float)
    c = fll.init_score("cross_entropy", yc, w)
    prior = np.bincount(yc.astype(int), weights=w) / w.sum()
    np.testing.assert_allclose(_softmax(c[None, :])[0], prior, rtol=1e-9)
    assert fll.init_score("cross_entropy", yc, n_classes=6).shape == (6,)
    bm = flx.base_margin("cross_entropy", yc, w)
    assert bm.shape == (1001, 4) and np.all(bm == c)
    assert flx.base_margin("mse", y).shape == (1001,)
    with pytest.raises(ValueError, match="n_classes"):
        flx.init_score("cross_entropy", yc, n_classes=2)


def test_pickle_and_copy():
    for mod in (flx, fll):
        for obj in (mod.objective("huber", delta=2.0, hessian="exact"),
                    mod.metric("quantile", q=0.3),
                    mod.objective("cross_entropy", label_smoothing=0.1)):
            for o2 in (pickle.loads(pickle.dumps(obj)), copy.deepcopy(obj)):
                assert type(o2) is type(obj) and o2._core.params == obj._core.params
                assert o2.__name__ == obj.__name__
        o = pickle.loads(pickle.dumps(mod.objective("huber", delta=2.0, hessian="exact")))
        assert o.hessian == "exact"
        assert "huber" in repr(o)


# ------------------------------------------------------------- XGBoost

def _framework(name, minversion):
    """The framework, or a skip (ModuleNotFoundError when absent; OSError
    when LightGBM's libgomp is missing)."""
    try:
        mod = importlib.import_module(name)
    except (ImportError, OSError) as e:
        pytest.skip(f"{name} is not importable: {e}")
    have = tuple(int(x) for x in mod.__version__.split(".")[:2] if x.isdigit())
    if have < minversion:
        pytest.skip(f"{name} {mod.__version__} is older than {minversion}")
    return mod


def _xgb():
    return _framework("xgboost", (2, 1))


def _xgb_params(**kw):
    return {**dict(max_depth=3, eta=0.3, tree_method="hist", nthread=1), **kw}


@pytest.mark.parametrize("name", ["mse", "binary_cross_entropy_with_logits", "cross_entropy",
                                  "poisson", "tweedie"])
@pytest.mark.parametrize("weighted", [False, True])
def test_xgboost_same_model_as_builtin(name, weighted):
    xgb = _xgb()
    X, y, w = _data(KIND[name])
    w = w if weighted else None
    obj = flx.objective(name)
    extra = {"num_class": 3} if name == "cross_entropy" else {}
    # the same starting scores for both (XGBoost estimates base_score for
    # its built-ins, uses 0.5 for a custom objective)
    m = flx.base_margin(name, y, w)
    d = xgb.DMatrix(X, y, weight=w, base_margin=m)
    b1 = xgb.train(_xgb_params(**obj.builtin, **extra), d, ROUNDS)
    b2 = xgb.train(_xgb_params(**obj.booster_params, **extra), d, ROUNDS, obj=obj)
    p1 = b1.predict(d, output_margin=True)
    p2 = b2.predict(d, output_margin=True)
    assert p1.shape == p2.shape == m.shape
    np.testing.assert_allclose(p2, p1, rtol=0, atol=MODEL_TOL)
    assert np.abs(p2 - m).max() > 0.1                       # it learned something


def test_xgboost_sklearn_estimators():
    xgb = _xgb()
    X, y, w = _data("regression")
    for sw in (None, w):
        c = flx.init_score("mse", y, sw)
        r1 = xgb.XGBRegressor(n_estimators=ROUNDS, **_xgb_params()).fit(X, y, sample_weight=sw)
        r2 = xgb.XGBRegressor(n_estimators=ROUNDS, objective=flx.objective("mse"), base_score=c,
                              **_xgb_params()).fit(X, y, sample_weight=sw)
        np.testing.assert_allclose(r2.predict(X), r1.predict(X), rtol=0, atol=MODEL_TOL)
    for kind, name in (("binary", "binary_cross_entropy_with_logits"),
                       ("classes", "cross_entropy")):
        X, y, w = _data(kind)
        y = y.astype(int)
        for sw in (None, w):
            # a custom objective starts at base_score 0.5 of the objective the
            # classifier configures (binary:logistic, multi:softprob): give
            # both the same margins
            m = flx.base_margin(name, y, sw)
            c1 = xgb.XGBClassifier(n_estimators=ROUNDS, **_xgb_params()).fit(
                X, y, sample_weight=sw, base_margin=m)
            c2 = xgb.XGBClassifier(n_estimators=ROUNDS, objective=flx.objective(name),
                                   **_xgb_params()).fit(X, y, sample_weight=sw, base_margin=m)
            np.testing.assert_allclose(c2.predict_proba(X, base_margin=m),
                                       c1.predict_proba(X, base_margin=m), rtol=0, atol=MODEL_TOL)


def test_xgboost_weights_act_once():
    """An integer weight is a repeated row; applied twice (or not at all)
    the models would differ."""
    xgb = _xgb()
    X, y, _ = _data("regression", n=200)
    k = np.random.default_rng(7).integers(1, 4, len(y))
    params = dict(max_depth=3, eta=0.5, tree_method="exact", nthread=1, base_score=0.0)
    for name in ("log_cosh", "huber", "binary_cross_entropy_with_logits"):
        yy = (y > 0).astype(float) if name.startswith("binary") else y
        obj = flx.objective(name)
        b1 = xgb.train(params, xgb.DMatrix(X, yy, weight=k.astype(float)), 8, obj=obj)
        b2 = xgb.train(params, xgb.DMatrix(np.repeat(X, k, 0), np.repeat(yy, k)), 8, obj=obj)
        d = xgb.DMatrix(X)
        np.testing.assert_allclose(b1.predict(d), b2.predict(d), rtol=0, atol=1e-5, err_msg=name)
        b3 = xgb.train(params, xgb.DMatrix(X, yy), 8, obj=obj)
        assert np.abs(b3.predict(d) - b1.predict(d)).max() > 1e-3


@pytest.mark.parametrize("name,q", [("quantile", 0.9), ("quantile", 0.2), ("mae", 0.5)])
def test_xgboost_surrogate_hessian_moves(name, q):
    """With the exact Hessian (0) a quantile objective never moves; the
    constant surrogate makes it fit the quantile."""
    xgb = _xgb()
    X, y, _ = _data("regression", n=2000)
    kw = {"q": q} if name == "quantile" else {}
    d = xgb.DMatrix(X, y)
    bst = xgb.train(_xgb_params(base_score=0.0, eta=0.5), d, 60, obj=flx.objective(name, **kw))
    p = bst.predict(d)
    coverage = np.mean(y <= p)
    assert abs(coverage - q) < 0.06, coverage
    start = fl.get(name)(np.zeros_like(y), y, **kw)
    assert fl.get(name)(p, y, **kw) < 0.7 * start


def test_xgboost_metric():
    xgb = _xgb()
    for name, kw in (("mse", {}), ("log_cosh", {}), ("binary_cross_entropy_with_logits", {}),
                     ("cross_entropy", {"label_smoothing": 0.1}), ("quantile", {"q": 0.7})):
        X, y, w = _data(KIND.get(name, "regression"))
        extra = {"num_class": 3} if name == "cross_entropy" else {}
        d = xgb.DMatrix(X, y, weight=w)
        log = {}
        met = flx.metric(name, **kw)
        bst = xgb.train(_xgb_params(disable_default_eval_metric=1, **extra), d, 5,
                        obj=flx.objective(name, **kw), custom_metric=met,
                        evals=[(d, "train")], evals_result=log, verbose_eval=False)
        p = bst.predict(d, output_margin=True).astype(np.float64)
        if name == "mse":
            per = (p - y) ** 2
        elif name == "log_cosh":
            per = np.log(np.cosh(p - y))
        elif name == "quantile":
            per = np.maximum(0.7 * (y - p), -0.3 * (y - p))
        elif name == "cross_entropy":
            lp = np.log(_softmax(p))
            per = -(0.9 * lp[np.arange(len(y)), y.astype(int)] + 0.1 * lp.mean(axis=1))
        else:
            per = np.logaddexp(0, p) - y * p
        oracle = np.average(per, weights=w)
        assert log["train"][name][-1] == pytest.approx(oracle, rel=1e-5)
        assert met(p.astype(np.float32), d) == (name, pytest.approx(oracle, rel=1e-5))
        assert met(y, p, sample_weight=w) == pytest.approx(oracle, rel=1e-12)
        assert met(y, p) == pytest.approx(np.mean(per), rel=1e-12)


def test_xgboost_sklearn_metric_and_weights():
    xgb = _xgb()
    X, y, w = _data("regression")
    r = xgb.XGBRegressor(n_estimators=5, objective=flx.objective("huber"),
                         eval_metric=flx.metric("huber"), **_xgb_params())
    r.fit(X, y, sample_weight=w, eval_set=[(X, y)], sample_weight_eval_set=[w], verbose=False)
    v = r.evals_result()["validation_0"]["huber"][-1]
    assert v == pytest.approx(float(fl.huber(r.predict(X), y, sample_weight=w)), rel=1e-5)


# ------------------------------------------------------------ LightGBM

def _lgb():
    return _framework("lightgbm", (4, 0))


def _lgb_params(**kw):
    return {**dict(num_leaves=8, learning_rate=0.3, verbose=-1, deterministic=True,
                   force_row_wise=True, num_threads=1), **kw}


@pytest.mark.parametrize("name", ["mse", "binary_cross_entropy_with_logits", "cross_entropy",
                                  "poisson", "tweedie", "huber"])
@pytest.mark.parametrize("weighted", [False, True])
def test_lightgbm_same_model_as_builtin(name, weighted):
    lgb = _lgb()
    X, y, w = _data(KIND[name])
    w = w if weighted else None
    obj = fll.objective(name)
    extra = {"num_class": 3} if name == "cross_entropy" else {}
    # LightGBM's built-in starts from its own average (boost_from_average),
    # a custom objective from Dataset(init_score=); huber's built-in starts
    # at the mean, not at huber's best constant
    if name == "huber":
        m = np.full(len(y), np.average(y, weights=w))
    else:
        m = fll.base_margin(name, y, w)
    b1 = lgb.train(_lgb_params(**obj.builtin, **extra), lgb.Dataset(X, y, weight=w), ROUNDS)
    b2 = lgb.train(_lgb_params(objective=obj, **extra),
                   lgb.Dataset(X, y, weight=w, init_score=m), ROUNDS)
    p1 = b1.predict(X, raw_score=True)
    p2 = b2.predict(X, raw_score=True) + m
    assert p1.shape == p2.shape == m.shape
    if name == "cross_entropy":          # LightGBM's log-priors are not centred: a shift
        p1 = p1 - p1.mean(axis=1, keepdims=True)
        p2 = p2 - p2.mean(axis=1, keepdims=True)
    np.testing.assert_allclose(p2, p1, rtol=0, atol=MODEL_TOL)
    assert np.abs(p2 - m).max() > 0.1


def test_lightgbm_multiclass_layout_without_copies():
    _lgb()
    rng = np.random.default_rng(8)
    n, k = 100, 3
    storage = rng.standard_normal(n * k)
    preds = storage.reshape(n, k, order="F")        # what LightGBM passes
    y = rng.integers(0, k, n).astype(np.float64)
    # the scikit-learn call path: (y_true, y_pred, weight)
    g, h = fll.objective("cross_entropy")(y, preds, None)
    assert g.shape == h.shape == (n, k)
    assert g.flags.f_contiguous and h.flags.f_contiguous        # ravel(order="F") is free
    go, ho = _oracle("cross_entropy", "lightgbm", np.ascontiguousarray(preds), y, None, k)
    np.testing.assert_allclose(g, go, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(h, ho, rtol=1e-12, atol=1e-15)


def test_lightgbm_sklearn_estimators():
    lgb = _lgb()
    X, y, w = _data("regression")
    for sw in (None, w):
        m = np.full(len(y), np.average(y, weights=sw))
        r1 = lgb.LGBMRegressor(n_estimators=ROUNDS, **_lgb_params()).fit(X, y, sample_weight=sw)
        r2 = lgb.LGBMRegressor(n_estimators=ROUNDS, objective=fll.objective("mse"),
                               **_lgb_params()).fit(X, y, sample_weight=sw, init_score=m)
        np.testing.assert_allclose(r2.predict(X) + m, r1.predict(X), rtol=0, atol=MODEL_TOL)
    X, y, w = _data("classes")
    y = y.astype(int)
    for sw in (None, w):
        m = fll.base_margin("cross_entropy", y, sw)
        c1 = lgb.LGBMClassifier(n_estimators=ROUNDS, **_lgb_params()).fit(X, y, sample_weight=sw)
        c2 = lgb.LGBMClassifier(n_estimators=ROUNDS, objective=fll.objective("cross_entropy"),
                                **_lgb_params()).fit(X, y, sample_weight=sw, init_score=m)
        p2 = _softmax(c2.predict(X, raw_score=True) + m)
        np.testing.assert_allclose(p2, c1.predict_proba(X), rtol=0, atol=MODEL_TOL)


def test_lightgbm_weights_act_once():
    """Weighted models equal those of the same objective written in NumPy
    with the weights applied once (LightGBM's trees are not invariant under
    row duplication, so the XGBoost test's oracle does not apply here; the
    built-in comparisons above cover the losses LightGBM has)."""
    lgb = _lgb()
    X, y, w = _data("regression", n=300)

    def numpy_log_cosh(preds, ds):
        t = np.tanh(preds - ds.get_label())
        return t * ds.get_weight(), (1 - t * t) * ds.get_weight()

    def numpy_smooth_l1(preds, ds):        # beta = 1: constant surrogate
        return np.clip(preds - ds.get_label(), -1, 1) * ds.get_weight(), ds.get_weight() + 0.0

    params = _lgb_params(lambda_l2=1.0)
    for name, oracle in (("log_cosh", numpy_log_cosh), ("smooth_l1", numpy_smooth_l1)):
        b1 = lgb.train({**params, "objective": fll.objective(name)}, lgb.Dataset(X, y, weight=w), 8)
        b2 = lgb.train({**params, "objective": oracle}, lgb.Dataset(X, y, weight=w), 8)
        np.testing.assert_allclose(b1.predict(X), b2.predict(X), rtol=0, atol=1e-6, err_msg=name)
        b3 = lgb.train({**params, "objective": fll.objective(name)}, lgb.Dataset(X, y), 8)
        assert np.abs(b3.predict(X) - b1.predict(X)).max() > 1e-3


@pytest.mark.parametrize("name,q", [("quantile", 0.9), ("quantile", 0.2), ("mae", 0.5)])
def test_lightgbm_surrogate_hessian_moves(name, q):
    lgb = _lgb()
    X, y, _ = _data("regression", n=2000)
    kw = {"q": q} if name == "quantile" else {}
    bst = lgb.train(_lgb_params(objective=fll.objective(name, **kw), learning_rate=0.5),
                    lgb.Dataset(X, y), 60)
    p = bst.predict(X)
    assert abs(np.mean(y <= p) - q) < 0.06
    assert fl.get(name)(p, y, **kw) < 0.7 * fl.get(name)(np.zeros_like(y), y, **kw)


def test_lightgbm_metric():
    lgb = _lgb()
    for name in ("mse", "binary_cross_entropy_with_logits", "cross_entropy"):
        X, y, w = _data(KIND[name])
        extra = {"num_class": 3} if name == "cross_entropy" else {}
        ds = lgb.Dataset(X, y, weight=w)
        log = {}
        met = fll.metric(name)
        bst = lgb.train(_lgb_params(objective=fll.objective(name), metric="None", **extra), ds, 5,
                        valid_sets=[ds], valid_names=["train"], feval=met,
                        callbacks=[lgb.record_evaluation(log)])
        p = bst.predict(X, raw_score=True)
        if name == "mse":
            per = (p - y) ** 2
        elif name == "cross_entropy":
            per = -np.log(_softmax(p)[np.arange(len(y)), y.astype(int)])
        else:
            per = np.logaddexp(0, p) - y * p
        oracle = np.average(per, weights=w)
        # the log is of the training scores, accumulated in another order
        # than predict()'s
        assert log["train"][name][-1] == pytest.approx(oracle, rel=1e-7)
        assert met(y, p, w) == (name, pytest.approx(oracle, rel=1e-12), False)
        # LightGBM's column-major multiclass layout gives the same value
        if name == "cross_entropy":
            pf = np.asfortranarray(p)
            assert met(y, pf, w)[1] == pytest.approx(oracle, rel=1e-12)


def test_example_trains():
    _xgb()
    _lgb()
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parents[1] / "examples" / "boosting_custom_loss.py"
    spec = importlib.util.spec_from_file_location("boosting_example", path)
    ex = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ex)
    out = ex.run(n=4000, rounds=60, verbose=False)
    for fw in ("xgboost", "lightgbm"):
        # robust to the outliers: below the squared-error model's error
        assert out[f"{fw} log_cosh (fastloss)"] < out[f"{fw} squared error"]
        assert out[f"{fw} sigmoid_focal (fastloss)"] > 0.9
    first, last = out["xgboost log_cosh metric, first and last round"]
    assert last < first
