"""fastloss losses as XGBoost (>= 2.1) custom objectives and metrics.

    import xgboost as xgb
    import fastloss.xgboost as flx

    bst = xgb.train({"base_score": flx.init_score("log_cosh", y)}, xgb.DMatrix(X, y),
                    100, obj=flx.objective("log_cosh"),
                    custom_metric=flx.metric("log_cosh"))
    xgb.XGBRegressor(objective=flx.objective("huber", delta=2.0)).fit(X, y, sample_weight=w)

Both calling conventions are served by the same object: the native
``obj(predt, dtrain)`` and the scikit-learn ``obj(y_true, y_pred, *,
sample_weight=None)``.  Gradients and Hessians are per sample (one
``grad_and_hessian`` pass), multiplied by the DMatrix's weights exactly
once (XGBoost leaves the weights of a custom objective to it), with
XGBoost's conventions (its half squared error; softmax Hessian 2p(1-p);
Poisson Hessian exp(score + 0.7); see ``objective``).  Multiclass scores are
``(n_samples, n_classes)`` (set ``num_class`` in the native API).  xgboost
is imported only when an objective or metric is called.
"""
import math
from typing import Any, Optional, Tuple, Union

import numpy as np

from ._boosting import Builtin, Framework, PublicMetric, PublicObjective
from ._boosting import base_margin, init_score

__all__ = ["objective", "metric", "init_score", "base_margin", "BUILTINS"]

# XGBoost's built-in objectives that compute a fastloss loss (source:
# src/objective/{regression_loss.h,regression_obj.cu,multiclass_obj.cu},
# the same from 2.1 to 3.4): gradients in the half-loss scale, each times
# the sample weight.
BUILTINS = {
    "mse": Builtin("reg:squarederror"),
    "binary_cross_entropy_with_logits": Builtin(
        "binary:logistic", note="Hessian max(p(1-p), 1e-16) * w: the floor before the weight"),
    "cross_entropy": Builtin(
        "multi:softprob", hess_factor=2.0,
        note="Hessian max(2p(1-p) * w, 1e-16); the model's base_score is log-priors (3.x)"),
    "poisson": Builtin(
        "count:poisson", hess_factor=math.exp(0.7), booster=(("max_delta_step", 0.7),),
        note="Hessian exp(score + 0.7); it also caps each leaf at max_delta_step = 0.7"),
    "tweedie": Builtin("reg:tweedie", params=(("power", "tweedie_variance_power"),)),
    "mae": Builtin(
        "reg:absoluteerror", hessian="constant",
        note="XGBoost then refits each leaf to the weighted median of its residuals"),
    "quantile": Builtin(
        "reg:quantileerror", hessian="constant", params=(("q", "quantile_alpha"),),
        note="XGBoost then refits each leaf to the q-quantile of its residuals"),
}

FRAMEWORK = Framework("xgboost", BUILTINS)


def _dmatrix_type():
    import xgboost
    return xgboost.DMatrix


def _label_weight(dmat) -> Tuple[np.ndarray, Optional[np.ndarray]]:
    y = dmat.get_label()
    w = dmat.get_weight()
    return y, (w if w.size else None)


class Objective(PublicObjective):
    """A custom objective: ``obj(predt, dtrain)`` (xgboost.train) or
    ``obj(y_true, y_pred, *, sample_weight=None)`` (XGBRegressor /
    XGBClassifier) -> (grad, hess), per sample, of predt's shape."""

    FRAMEWORK = FRAMEWORK

    def __call__(self, a, b, *, sample_weight=None) -> Tuple[np.ndarray, np.ndarray]:
        if isinstance(b, _dmatrix_type()):
            y, w = _label_weight(b)
            return self._core(a, y, w)
        return self._core(b, a, sample_weight)


class Metric(PublicMetric):
    """A custom metric: ``f(predt, dmat) -> (name, value)`` (xgboost.train's
    custom_metric) or ``f(y_true, y_score, *, sample_weight=None) -> value``
    (the estimators' eval_metric).  The value is the weighted mean loss
    (fastloss's own scale) on the raw scores, which XGBoost passes to a custom
    metric when the objective is custom."""

    FRAMEWORK = FRAMEWORK

    def __call__(self, a, b, *, sample_weight=None) -> Union[float, Tuple[str, float]]:
        if isinstance(b, _dmatrix_type()):
            y, w = _label_weight(b)
            return self.__name__, self._core(a, y, w)
        return self._core(b, a, sample_weight)


def objective(name: str, *, hessian: Optional[str] = None, hess_floor: float = 1e-16,
              n_threads: Optional[int] = None, **params: Any) -> Objective:
    """The custom objective of fastloss's loss `name` (parameters as the
    loss's: ``objective("quantile", q=0.9)``).

    grad = s * w * dl/dscore and hess = s * w * d2l/dscore2 per sample, w the
    DMatrix's weights (applied here, once), s XGBoost's scale (1/2 for mse,
    whose built-in is the half squared error; 1 elsewhere).

    hessian: None (default): the Hessian XGBoost's built-in objective for the
    same loss uses (``BUILTINS``: 2p(1-p) for the softmax, exp(score + 0.7)
    for Poisson, a constant for mae / quantile), so that a fastloss objective
    trains the model the built-in trains; for other losses the exact Hessian,
    or the constant surrogate when it vanishes on part of the inputs (huber,
    smooth_l1, hinge, ...).  "exact": fastloss's own Hessian, floored at
    hess_floor.  "constant": s * w (a gradient step per leaf)."""
    return Objective(name, hessian, hess_floor, n_threads, **params)


def metric(name: str, *, n_threads: Optional[int] = None, **params: Any) -> Metric:
    """The custom metric of fastloss's loss `name`: the weighted mean loss
    on the raw scores (named `name` in the evaluation log; lower is better)."""
    return Metric(name, n_threads, **params)
