"""The objective's own time per boosting round: fastloss.xgboost /
fastloss.lightgbm objectives against the same objective written in NumPy.

    python bench/boosting_objective.py [--n 1000000] [--repeat 15]

Each objective computes (grad, hess) per sample for 10^6 samples with
weights, in the framework's dtype (XGBoost passes float32 scores, LightGBM
float64) and conventions; both are called as the framework calls them,
``f(preds, DMatrix / Dataset)``, so fetching the labels and weights is in
both timings; the pure-compute time (``core``: labels and weights already in
hand) is printed too.  Interleaved, medians of --repeat rounds.  fastloss
runs with its default thread count (the CPUs this process may use) and with
one thread; NumPy runs on one thread.
"""
import argparse
import platform
import time

import numpy as np

import fastloss as fl
import fastloss.lightgbm as fll
import fastloss.xgboost as flx


def _sig(x):
    return 1.0 / (1.0 + np.exp(-x))


# the same objectives as users write them in NumPy (XGBoost's conventions;
# LightGBM's differ only in the softmax Hessian factor)
def np_mse(p, y, w):
    return (p - y) * w, w.astype(p.dtype)


def np_logistic(p, y, w):
    s = _sig(p)
    return (s - y) * w, np.maximum(s * (1 - s), 1e-16) * w


def np_log_cosh(p, y, w):
    t = np.tanh(p - y)
    return t * w, np.maximum(1 - t * t, 1e-16) * w


def np_huber(p, y, w):                   # the constant surrogate
    return np.clip(p - y, -1.0, 1.0) * w, w.astype(p.dtype)


def np_softmax(z, y, w, factor=2.0):
    e = np.exp(z - z.max(axis=1, keepdims=True))
    P = e / e.sum(axis=1, keepdims=True)
    g = P.copy()
    g[np.arange(len(y)), y.astype(np.int64)] -= 1
    g *= w[:, None]
    return g, np.maximum(factor * P * (1 - P) * w[:, None], 1e-16)


CASES = [("mse", np_mse, "regression"), ("binary_cross_entropy_with_logits", np_logistic, "binary"),
         ("log_cosh", np_log_cosh, "regression"), ("huber", np_huber, "regression"),
         ("cross_entropy", np_softmax, "classes")]


def _inputs(kind, n, k, rng):
    if kind == "classes":
        return rng.standard_normal((n, k)), rng.integers(0, k, n).astype(np.float64)
    p = rng.standard_normal(n)
    y = (rng.random(n) < 0.4).astype(np.float64) if kind == "binary" else rng.standard_normal(n)
    return p, y


def _median_times(fns, repeat):
    ts = [[] for _ in fns]
    for _ in range(repeat):
        for i, f in enumerate(fns):
            t0 = time.perf_counter()
            f()
            ts[i].append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in ts]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--classes", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args(argv)
    import lightgbm as lgb
    import xgboost as xgb
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo")
                if ln.startswith("model name")), platform.processor())
    print(f"n = {args.n}, {args.classes} classes for cross_entropy; {cpu}; "
          f"fastloss threads {fl.get_num_threads()}; xgboost {xgb.__version__}, "
          f"lightgbm {lgb.__version__}, numpy {np.__version__}")
    print(f"{'framework':9s} {'loss':34s} {'numpy ms':>9s} {'fl ms':>7s} {'fl 1t ms':>8s} "
          f"{'speedup':>7s} {'1t':>5s} | {'core: numpy':>11s} {'fl':>6s} {'fl 1t':>6s}")
    rng = np.random.default_rng(0)
    for fw in ("xgboost", "lightgbm"):
        mod = flx if fw == "xgboost" else fll
        dt = np.float32 if fw == "xgboost" else np.float64
        for name, np_obj, kind in CASES:
            p, y = _inputs(kind, args.n, args.classes, rng)
            w = rng.uniform(0.5, 2.0, args.n)
            X = np.zeros((args.n, 1), dtype=np.float32)
            obj = mod.objective(name)
            obj1 = mod.objective(name, n_threads=1)
            factor = 2.0 if fw == "xgboost" else args.classes / (args.classes - 1.0)
            if fw == "xgboost":
                data = xgb.DMatrix(X, y, weight=w)
                preds = p.astype(dt)
                lab, wt = data.get_label(), data.get_weight()

                def numpy_call(preds=preds, data=data):
                    yy, ww = data.get_label(), data.get_weight()
                    return (np_obj(preds, yy, ww, factor) if kind == "classes"
                            else np_obj(preds, yy, ww))
            else:
                data = lgb.Dataset(X, y, weight=w, params={"verbose": -1}).construct()
                # LightGBM's multiclass scores: an (n, K) view of column-major memory
                preds = np.asfortranarray(p) if kind == "classes" else p.astype(dt)
                lab, wt = data.get_label(), data.get_weight()

                def numpy_call(preds=preds, data=data):
                    yy, ww = data.get_label(), data.get_weight()
                    return (np_obj(preds, yy, ww, factor) if kind == "classes"
                            else np_obj(preds, yy, ww))

            def np_core(preds=preds, lab=lab, wt=wt):
                return np_obj(preds, lab, wt, factor) if kind == "classes" else np_obj(preds, lab, wt)

            def fl_core(obj=obj, preds=preds, lab=lab, wt=wt):
                return obj(lab, preds, wt) if fw == "lightgbm" else obj(lab, preds, sample_weight=wt)

            def fl_core1(obj=obj1, preds=preds, lab=lab, wt=wt):
                return obj(lab, preds, wt) if fw == "lightgbm" else obj(lab, preds, sample_weight=wt)

            # same results first
            g0, h0 = np_core()
            g1, h1 = fl_core()
            tol = 1e-5 if dt == np.float32 else 1e-12
            assert np.allclose(g0, g1, rtol=tol, atol=tol) and np.allclose(h0, h1, rtol=tol, atol=tol), name
            t = _median_times([numpy_call, lambda: obj(preds, data), lambda: obj1(preds, data),
                               np_core, fl_core, fl_core1], args.repeat)
            print(f"{fw:9s} {name:34s} {t[0]*1e3:9.2f} {t[1]*1e3:7.2f} {t[2]*1e3:8.2f} "
                  f"{t[0]/t[1]:6.1f}x {t[0]/t[2]:4.1f}x | {t[3]*1e3:11.2f} {t[4]*1e3:6.2f} "
                  f"{t[5]*1e3:6.2f}  core {t[3]/t[4]:.1f}x / 1t {t[3]/t[5]:.1f}x")


if __name__ == "__main__":
    main()
