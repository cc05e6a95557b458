"""Gradient boosting with losses neither XGBoost nor LightGBM has built in.

What this shows
---------------
* ``fastloss.xgboost.objective("log_cosh")`` and
  ``fastloss.lightgbm.objective("log_cosh")``: a robust regression loss (quadratic
  near 0, linear in the tails) as a custom objective, through each library's
  native API, with ``metric("log_cosh")`` in the evaluation log and
  ``init_score`` as the starting score (XGBoost starts a custom objective at
  0.5, LightGBM at 0).  The data have 5 % gross outliers; the squared-error
  models chase them, the log-cosh ones much less (error against the noiseless
  target on held-out data).
* ``objective("sigmoid_focal", alpha=0.25, gamma=2.0)`` through the
  scikit-learn estimators (``XGBClassifier``, ``LGBMClassifier``) on an
  imbalanced problem (about 5 % positives), with sample weights, against the
  built-in logistic loss (ROC AUC on held-out data, in NumPy).
* Each round's gradient and Hessian come from one fastloss call
  (``grad_and_hessian``, per sample, the weights folded into its pass).

Run from the repository root (with the extension built in place; about 10 s)::

    PYTHONPATH=. python3 examples/boosting_custom_loss.py

Tests call ``run(n=..., rounds=..., verbose=False)``, which returns the figures.
"""
import argparse
import time

import numpy as np

import fastloss as fl
import fastloss.lightgbm as fll
import fastloss.xgboost as flx


def regression_data(n, rng, outliers=0.05):
    X = rng.standard_normal((n, 6))
    f = 2 * np.sin(X[:, 0]) + X[:, 1] ** 2 - X[:, 2] + 0.5 * X[:, 3] * X[:, 4]
    y = f + 0.3 * rng.standard_normal(n)
    bad = rng.random(n) < outliers
    y[bad] += rng.choice([-1, 1], bad.sum()) * rng.uniform(10, 30, bad.sum())
    return X, y, f


def imbalanced_data(n, rng):
    X = rng.standard_normal((n, 6))
    score = 1.5 * X[:, 0] - X[:, 1] + np.sin(3 * X[:, 2]) - 3.6
    y = (score + 0.5 * rng.standard_normal(n) > 0).astype(np.float64)
    return X, y


def roc_auc(y, s):
    """Area under the ROC curve from the ranks (ties averaged)."""
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s))
    ranks[order] = np.arange(1, len(s) + 1)
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    pos = y == 1
    n1, n0 = pos.sum(), (~pos).sum()
    return (ranks[pos].sum() - n1 * (n1 + 1) / 2) / (n1 * n0)


def run(n=20000, rounds=200, seed=0, verbose=True):
    import lightgbm as lgb
    import xgboost as xgb

    rng = np.random.default_rng(seed)
    out = {}
    say = print if verbose else (lambda *a, **k: None)

    # ---------------------------------------------------------------- regression
    X, y, f = regression_data(2 * n, rng)
    Xtr, ytr, Xte, fte = X[:n], y[:n], X[n:], f[n:]
    say(f"regression, {n} training rows, 5 % outliers: mean |prediction - noiseless target| "
        "on held-out rows")
    c = flx.init_score("log_cosh", ytr)                  # the best constant under log_cosh
    dtr = xgb.DMatrix(Xtr, ytr)
    xp = dict(max_depth=4, eta=0.1, tree_method="hist", nthread=1)
    log = {}
    models = {
        "xgboost squared error": xgb.train({**xp, "objective": "reg:squarederror"}, dtr, rounds),
        "xgboost log_cosh (fastloss)": xgb.train(
            {**xp, "base_score": c, "disable_default_eval_metric": 1}, dtr, rounds,
            obj=flx.objective("log_cosh"), custom_metric=flx.metric("log_cosh"),
            evals=[(dtr, "train")], evals_result=log, verbose_eval=False),
    }
    dte = xgb.DMatrix(Xte)
    preds = {k: m.predict(dte) for k, m in models.items()}
    lp = dict(num_leaves=15, learning_rate=0.1, verbose=-1, num_threads=1)
    lgb_sq = lgb.train({**lp, "objective": "regression"}, lgb.Dataset(Xtr, ytr), rounds)
    ds = lgb.Dataset(Xtr, ytr, init_score=np.full(n, c))  # LightGBM starts a custom objective at 0
    # log_cosh's Hessian 1 - tanh(d)**2 is ~0 at the outliers: with LightGBM's
    # default lambda_l2 = 0 a leaf of outliers takes a step -G/H ~ -G/0
    lgb_lc = lgb.train({**lp, "objective": fll.objective("log_cosh"), "metric": "None",
                        "lambda_l2": 1.0}, ds, rounds,
                       valid_sets=[ds], feval=fll.metric("log_cosh"))
    preds["lightgbm squared error"] = lgb_sq.predict(Xte)
    preds["lightgbm log_cosh (fastloss)"] = lgb_lc.predict(Xte) + c   # the raw score excludes init_score
    for k, p in preds.items():
        out[k] = float(np.mean(np.abs(p - fte)))
        say(f"  {k:32s} {out[k]:.3f}")
    out["xgboost log_cosh metric, first and last round"] = (log["train"]["log_cosh"][0],
                                                            log["train"]["log_cosh"][-1])
    say("  training log_cosh (fastloss metric): round 1 %.3f -> round %d %.3f"
        % (log["train"]["log_cosh"][0], rounds, log["train"]["log_cosh"][-1]))

    # ---------------------------------------------------- imbalanced classification
    X, y = imbalanced_data(2 * n, rng)
    Xtr, ytr, Xte, yte = X[:n], y[:n].astype(int), X[n:], y[n:]
    w = np.where(ytr == 1, 2.0, 1.0)                      # sample weights: applied once
    say(f"imbalanced binary ({ytr.mean():.1%} positives): held-out ROC AUC")
    kw = dict(n_estimators=rounds // 2, learning_rate=0.1, n_jobs=1)
    focal = dict(alpha=0.25, gamma=2.0)
    clfs = {
        "xgboost logistic": xgb.XGBClassifier(max_depth=4, **kw),
        "xgboost sigmoid_focal (fastloss)": xgb.XGBClassifier(
            max_depth=4, objective=flx.objective("sigmoid_focal", **focal), **kw),
        "lightgbm logistic": lgb.LGBMClassifier(num_leaves=15, verbose=-1, **kw),
        "lightgbm sigmoid_focal (fastloss)": lgb.LGBMClassifier(
            num_leaves=15, verbose=-1, objective=fll.objective("sigmoid_focal", **focal), **kw),
    }
    for k, m in clfs.items():
        m.fit(Xtr, ytr, sample_weight=w)
        if k.startswith("lightgbm") and "fastloss" in k:
            s = m.predict(Xte, raw_score=True)           # a custom objective's raw score
        else:
            s = m.predict_proba(Xte)[:, 1]
        out[k] = float(roc_auc(yte, s))
        say(f"  {k:34s} {out[k]:.4f}")
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=20000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    t0 = time.perf_counter()
    run(a.n, a.rounds, a.seed)
    print(f"({time.perf_counter() - t0:.1f} s; fastloss {fl.__version__})")


if __name__ == "__main__":
    main()
