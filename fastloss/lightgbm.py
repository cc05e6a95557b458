"""fastloss losses as LightGBM (>= 4) custom objectives and metrics.

    import lightgbm as lgb
    import fastloss.lightgbm as fll

    c = fll.init_score("log_cosh", y)            # LightGBM starts a custom objective at 0
    ds = lgb.Dataset(X, y, init_score=np.full(len(y), c))
    bst = lgb.train({"objective": fll.objective("log_cosh")}, ds, 100,
                    valid_sets=[ds], feval=fll.metric("log_cosh"))
    pred = bst.predict(X) + c                    # the raw score does not include init_score
    lgb.LGBMRegressor(objective=fll.objective("huber", delta=2.0)).fit(X, y, sample_weight=w)

Both calling conventions are served by the same object: the native
``f(preds, train_data)`` and the scikit-learn ``f(y_true, y_pred,
weight)``.  Gradients and Hessians are per sample (one
``grad_and_hessian`` pass), multiplied by the Dataset's weights exactly once
(LightGBM leaves the weights of a custom objective to it), with LightGBM's
conventions (its half squared error; softmax Hessian K/(K-1) p(1-p);
Poisson Hessian exp(score + 0.7); a constant Hessian for huber; see
``objective``).  Multiclass scores are ``(n_samples, n_classes)``
(LightGBM's column-major layout is read and written without a copy; set
``num_class``).  lightgbm is imported only when an objective or metric is
called.
"""
import math
from typing import Any, Optional, Tuple

import numpy as np

from ._boosting import Builtin, Framework, PublicMetric, PublicObjective
from ._boosting import base_margin, init_score

__all__ = ["objective", "metric", "init_score", "base_margin", "BUILTINS"]

# LightGBM's built-in objectives that compute a fastloss loss (source:
# src/objective/{regression,binary,multiclass}_objective.hpp, 4.x):
# gradients in the half-loss scale, each times the sample weight.
BUILTINS = {
    "mse": Builtin("regression"),
    "binary_cross_entropy_with_logits": Builtin("binary", note="Hessian p(1-p) * w, no floor"),
    "cross_entropy": Builtin(
        "multiclass", hess_factor=lambda k: k / (k - 1.0),
        note="Hessian K/(K-1) p(1-p) * w"),
    "poisson": Builtin(
        "poisson", hess_factor=math.exp(0.7),
        note="Hessian exp(score + poisson_max_delta_step), poisson_max_delta_step = 0.7"),
    "tweedie": Builtin("tweedie", params=(("power", "tweedie_variance_power"),)),
    "huber": Builtin("huber", hessian="constant", params=(("delta", "alpha"),),
                     note="Hessian w everywhere, inside delta too"),
    "mae": Builtin("regression_l1", hessian="constant",
                   note="LightGBM then refits each leaf to the weighted median of its residuals"),
    "quantile": Builtin("quantile", hessian="constant", params=(("q", "alpha"),),
                        note="LightGBM then refits each leaf to the q-quantile of its residuals; "
                             "at score == label its gradient is 1 - q, fastloss's -q"),
}

FRAMEWORK = Framework("lightgbm", BUILTINS)


def _dataset_type():
    import lightgbm
    return lightgbm.Dataset


def _label_weight(ds) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    y = ds.get_label()
    w = ds.get_weight()
    return y, (None if w is None or np.size(w) == 0 else w)


def _arguments(a, b, weight):
    """(scores, labels, weights) of either calling convention: the native
    ``(preds, dataset)`` or the estimators' ``(y_true, y_pred, weight)``."""
    if isinstance(b, _dataset_type()):
        y, w = _label_weight(b)
        return a, y, w
    return b, a, weight


def _columns(preds):
    """LightGBM's multiclass scores are an (n, K) view of column-major
    memory: their transpose is a C-contiguous (K, n) array with the classes
    on axis 0."""
    p = np.asarray(preds)
    if p.ndim == 2 and not p.flags.c_contiguous and p.T.flags.c_contiguous:
        return p.T, 0
    return p, -1


class Objective(PublicObjective):
    """A custom objective: ``f(preds, train_data)`` (lightgbm.train's
    params["objective"]) or ``f(y_true, y_pred, weight)`` (LGBMRegressor /
    LGBMClassifier) -> (grad, hess), per sample, of preds' shape."""

    FRAMEWORK = FRAMEWORK

    def __call__(self, a, b, weight=None) -> Tuple[np.ndarray, np.ndarray]:
        preds, y, w = _arguments(a, b, weight)
        if self._core.family == "class":
            p, axis = _columns(preds)
            g, h = self._core(p, y, w, class_axis=axis)
            return (g.T, h.T) if axis == 0 else (g, h)
        return self._core(preds, y, w)


class Metric(PublicMetric):
    """A custom metric: ``f(preds, eval_data)`` (lightgbm.train's feval) or
    ``f(y_true, y_pred, weight)`` (the estimators' eval_metric) -> (name,
    value, False).  The value is the weighted mean loss (fastloss's own
    scale) on the raw scores, which LightGBM passes to a metric when the
    objective is custom."""

    FRAMEWORK = FRAMEWORK

    def __call__(self, a, b, weight=None) -> Tuple[str, float, bool]:
        preds, y, w = _arguments(a, b, weight)
        if self._core.family == "class":
            p, axis = _columns(preds)
            return self.__name__, self._core(p, y, w, class_axis=axis), False
        return self.__name__, self._core(preds, y, w), False


def objective(name: str, *, hessian: Optional[str] = None, hess_floor: float = 1e-16,
              n_threads: Optional[int] = None, **params: Any) -> Objective:
    """The custom objective of fastloss's loss `name` (parameters as the
    loss's: ``objective("quantile", q=0.9)``).

    grad = s * w * dl/dscore and hess = s * w * d2l/dscore2 per sample, w the
    Dataset's weights (applied here, once), s LightGBM's scale (1/2 for mse,
    whose built-in is the half squared error; 1 elsewhere).

    hessian: None (default): the Hessian LightGBM's built-in objective for
    the same loss uses (``BUILTINS``: K/(K-1) p(1-p) for the softmax,
    exp(score + 0.7) for Poisson, a constant for huber / mae / quantile), so
    that a fastloss objective trains the model the built-in trains; for other
    losses the exact Hessian, or the constant surrogate when it vanishes on
    part of the inputs (smooth_l1, hinge, ...).  "exact": fastloss's own
    Hessian, floored at hess_floor.  "constant": s * w (a gradient step per
    leaf)."""
    return Objective(name, hessian, hess_floor, n_threads, **params)


def metric(name: str, *, n_threads: Optional[int] = None, **params: Any) -> Metric:
    """The custom metric of fastloss's loss `name`: the weighted mean loss
    on the raw scores (named `name` in the evaluation log; lower is better)."""
    return Metric(name, n_threads, **params)
