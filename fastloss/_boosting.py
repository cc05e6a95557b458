"""What the gradient-boosting adapters (fastloss.xgboost, fastloss.lightgbm)
share: custom objectives and metrics derived from the loss declarations.

Nothing here imports a boosting library; each adapter passes a `Framework`
(its name and the facts about its built-in objectives) and unpacks its own
call conventions (DMatrix / Dataset, the scikit-learn signatures).

Per boosting round an objective returns, per sample (reduction="none": a
1/N-scaled mean gradient would make the trees learn almost nothing),

    grad = s * w * dl/dy_pred,     hess = f * s * w * d2l/dy_pred2

from one `grad_and_hessian` call, the weights w folded into the kernel's
pass (applied exactly once).  s is the framework's scale convention: its
built-in objectives use scikit-learn's half losses (0.5*d**2 for squared
error), and each declaration records fastloss's loss as a multiple of that
half loss (`peers["sklearn"]`'s factor), so s = 1/factor (1/2 for mse, 1
elsewhere).  f and the Hessian mode come from the framework's built-in
objective for the same loss, if it has one (XGBoost's softmax uses
2p(1-p): f = 2); otherwise from the declaration: a loss whose Hessian is 0
on part of its typical inputs (the declaration's sampler: mae, quantile,
hinge, huber / smooth_l1 outside their thresholds, ...) gets the constant
surrogate hess = s * w, every other loss its exact Hessian, floored at
`hess_floor` (sigmoid_focal's can be negative).
"""
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Optional, Tuple, Union

import numpy as np

from . import _registry

HESSIANS = ("exact", "constant")
_EW, _CLS = "elementwise", "class"


@dataclass(frozen=True)
class Builtin:
    """A framework's built-in objective that computes the same loss.

    objective: its name; params: (fastloss parameter, framework parameter)
    pairs, e.g. (("q", "quantile_alpha"),); booster: training parameters
    the built-in sets besides its gradients, which a custom objective's
    training must set to train the same model; hessian: the mode it uses;
    hess_factor: its Hessian over the exact one (a number, or a function of
    the number of classes); note: where the two still differ."""
    objective: str
    hessian: str = "exact"
    hess_factor: Union[float, Callable[[int], float]] = 1.0
    params: Tuple[Tuple[str, str], ...] = ()
    extra: Tuple[Tuple[str, Any], ...] = ()
    booster: Tuple[Tuple[str, Any], ...] = ()
    note: str = ""

    def factor(self, n_classes: int) -> float:
        f = self.hess_factor
        return float(f(n_classes)) if callable(f) else float(f)


@dataclass(frozen=True)
class Framework:
    name: str
    builtins: Dict[str, Builtin] = field(default_factory=dict)


class _AnyNamespace:
    """Stands in for sklearn._loss.loss when a declaration's sklearn peer is
    asked only for its factor (scikit-learn need not be installed)."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None


def half_loss_factor(spec) -> float:
    """fastloss's loss over scikit-learn's half loss of the same name (2 for
    mse), read from the declaration; 1 when it records none."""
    peer = spec.peers.get("sklearn")
    if peer is None:
        return 1.0
    k = {p.name: p.default for p in spec.params}
    k["n_classes"] = 3
    return float(peer(_AnyNamespace(), k)[1])


def boostable(spec) -> Optional[str]:
    """Why the loss cannot be a boosting objective (None: it can).  A model
    predicts one unconstrained score per sample (per class for the class
    losses) and is fitted to one target."""
    if spec.family not in (_EW, _CLS):
        return f"it is a {spec.family} loss (a boosting model predicts a score per sample)"
    if spec.inputs != ("y_pred", "y_true"):
        return (f"it takes the inputs {spec.inputs} (a boosting objective takes the "
                f"prediction and the target only)")
    for c in spec.checks:
        if c.arg == "y_pred":
            return (f"its predictions are constrained ({c.what}); boosting predicts "
                    f"unbounded scores: use the loss on logits / log-rates")
    return None


def _sampled_hessian(loss) -> np.ndarray:
    shape = (256,) if loss.family == _EW else (64, 5)
    *ins, _ = _registry.make_inputs(loss.name, shape, np.float64)
    return np.asarray(loss.hessian(*ins, reduction="none"))


def _loss_for(where: str, name: str, params: dict):
    from . import get
    loss = get(name)
    why = boostable(loss.spec)
    if why is not None:
        raise ValueError(f"{where}: {name} cannot be a boosting objective: {why}")
    if loss.family == _CLS and "class_axis" in params:
        raise TypeError(f"{where}: class_axis is set by the adapter (the framework's layout "
                        "of the scores); do not pass it")
    return loss.bind(**params) if params else loss


def _as_arrays(family, preds, labels):
    """The scores as a float array (float64 unless float32 / float64) and the
    labels, reshaped to the scores' shape for an elementwise loss (the
    libraries pass them flat)."""
    preds = np.asarray(preds)
    if preds.dtype not in (np.float32, np.float64):
        preds = preds.astype(np.float64)
    labels = np.asarray(labels)
    if family == _EW and labels.shape != preds.shape and labels.size == preds.size:
        labels = labels.reshape(preds.shape)
    return preds, labels


class Objective:
    """The framework-independent part of a custom objective: per-sample
    gradient and Hessian of one loss (see the module docstring)."""

    def __init__(self, framework: Framework, name: str, params: dict,
                 hessian: Optional[str] = None, hess_floor: float = 1e-16,
                 n_threads: Optional[int] = None):
        where = f"fastloss.{framework.name}.objective"
        self.framework = framework
        self.name = name
        self.params = dict(params)
        self.loss = _loss_for(where, name, self.params)
        spec = self.loss.spec
        self.family = spec.family
        self.builtin = framework.builtins.get(name)
        self.hessian_arg = hessian
        self.scale = 1.0 / half_loss_factor(spec)
        if hessian is not None and hessian not in HESSIANS:
            raise ValueError(f"{where}: hessian must be None (the framework's convention), "
                             f"'exact' or 'constant', got {hessian!r}")
        if not (isinstance(hess_floor, (int, float)) and 0 <= hess_floor < math.inf):
            raise ValueError(f"{where}: hess_floor must be a finite number >= 0, "
                             f"got {hess_floor!r}")
        if hessian is None:
            if self.builtin is not None:
                hessian = self.builtin.hessian
            elif not spec.has_hessian or bool((_sampled_hessian(self.loss) == 0).any()):
                hessian = "constant"
            else:
                hessian = "exact"
            self._factor_from_builtin = self.builtin is not None
        else:
            self._factor_from_builtin = False
        if hessian == "exact" and not spec.has_hessian:
            raise NotImplementedError(f"{where}: {name} has no Hessian; use "
                                      "hessian='constant'")
        self.hessian = hessian
        self.hess_floor = float(hess_floor)
        self.n_threads = n_threads

    def builtin_params(self) -> Optional[dict]:
        """The framework parameters of its built-in objective for this loss
        (with this objective's parameter values), or None."""
        b = self.builtin
        if b is None:
            return None
        out = {"objective": b.objective}
        for ours, theirs in b.params:
            out[theirs] = self.params.get(ours, self.loss.spec.param(ours).default)
        out.update(dict(b.extra))
        return out

    def booster_params(self) -> dict:
        """Training parameters the built-in sets itself (XGBoost's count:poisson
        caps each leaf at max_delta_step = 0.7): pass them with this objective
        to train the built-in's model.  Empty for most losses."""
        return dict(self.builtin.booster) if self.builtin is not None else {}

    def describe(self) -> str:
        f = ""
        if self._factor_from_builtin and self.builtin.hess_factor != 1.0:
            f = " times the built-in's factor"
        return (f"{self.name}: grad = {self.scale:g} * w * dl/dy_pred; hess = "
                + (f"{self.scale:g} * w (constant surrogate)" if self.hessian == "constant"
                   else f"{self.scale:g} * w * d2l/dy_pred2{f}, floored at {self.hess_floor:g}"))

    def _weights(self, w):
        s = self.scale
        if w is None:
            return None if s == 1.0 else s
        w = np.asarray(w)
        return w if s == 1.0 else w * s

    def __call__(self, preds, labels, weight=None, class_axis: int = -1):
        """(grad, hess) per sample: arrays of preds' shape and dtype."""
        preds, labels = _as_arrays(self.family, preds, labels)
        if weight is not None and np.size(weight) == 0:
            weight = None
        sw = self._weights(weight)
        kw: Dict[str, Any] = {"reduction": "none"}
        if sw is not None:
            kw["sample_weight"] = sw
        if self.n_threads is not None:
            kw["n_threads"] = self.n_threads
        if self.family == _CLS:
            kw["class_axis"] = class_axis
        if self.hessian == "constant":
            g = self.loss.grad(preds, labels, **kw)
            h = np.empty_like(g)
            if sw is None:
                h.fill(1.0)
            elif np.ndim(sw) == 0:
                h.fill(sw)
            else:
                sw = np.asarray(sw)
                h[...] = sw if self.family == _EW else np.expand_dims(sw, class_axis)
            return g, h
        g, h = self.loss.grad_and_hessian(preds, labels, **kw)
        if self._factor_from_builtin:
            k = preds.shape[class_axis] if self.family == _CLS else 1
            f = self.builtin.factor(k)
            if f != 1.0:
                np.multiply(h, f, out=h)
        if self.hess_floor > 0 and h.size and h.min() < self.hess_floor:
            np.maximum(h, self.hess_floor, out=h)     # a read pass when nothing is below
        return g, h


class Metric:
    """The loss's value (reduction="mean": sum(w l) / sum(w)) on the raw
    scores, for evaluation: fastloss's own scale (mse is the mean of d**2)."""

    def __init__(self, framework: Framework, name: str, params: dict,
                 n_threads: Optional[int] = None):
        self.framework = framework
        self.name = name
        self.params = dict(params)
        self.loss = _loss_for(f"fastloss.{framework.name}.metric", name, self.params)
        self.family = self.loss.family
        self.n_threads = n_threads

    def __call__(self, preds, labels, weight=None, class_axis: int = -1) -> float:
        preds, labels = _as_arrays(self.family, preds, labels)
        kw: Dict[str, Any] = {}
        if weight is not None and np.size(weight) > 0:
            kw["sample_weight"] = weight
        if self.n_threads is not None:
            kw["n_threads"] = self.n_threads
        if self.family == _CLS:
            kw["class_axis"] = class_axis
        return float(self.loss(preds, labels, **kw))


# ----------------------------------------------------------- intercepts

class PublicObjective:
    """What fastloss.xgboost.Objective and fastloss.lightgbm.Objective share:
    the construction, the read-only attributes, repr and pickling; each
    subclass sets FRAMEWORK and its library's calling conventions
    (__call__)."""
    FRAMEWORK: Framework

    def __init__(self, name: str, hessian: Optional[str] = None, hess_floor: float = 1e-16,
                 n_threads: Optional[int] = None, **params: Any):
        self._core = Objective(self.FRAMEWORK, name, params, hessian, hess_floor, n_threads)
        self.__name__ = name

    name = property(lambda self: self._core.name)
    params = property(lambda self: dict(self._core.params))
    hessian = property(lambda self: self._core.hessian, doc="'exact' or 'constant'")
    loss = property(lambda self: self._core.loss, doc="the fastloss Loss (parameters bound)")

    @property
    def builtin(self) -> Optional[dict]:
        """The library's parameters of the built-in objective that computes
        the same loss (with this objective's parameter values), or None."""
        return self._core.builtin_params()

    @property
    def booster_params(self) -> dict:
        """Training parameters the built-in objective sets besides its
        gradients; pass them with this objective to train the same model
        (usually empty)."""
        return self._core.booster_params()

    def __repr__(self) -> str:
        return f"<fastloss.{self.FRAMEWORK.name} objective {self._core.describe()}>"

    def __reduce__(self):
        c = self._core
        return (_rebuild_objective,
                (type(self), c.name, c.params, c.hessian_arg, c.hess_floor, c.n_threads))


def _rebuild_objective(cls, name, params, hessian, hess_floor, n_threads):
    return cls(name, hessian, hess_floor, n_threads, **params)


class PublicMetric:
    """What the libraries' Metric classes share (see PublicObjective)."""
    FRAMEWORK: Framework

    def __init__(self, name: str, n_threads: Optional[int] = None, **params: Any):
        self._core = Metric(self.FRAMEWORK, name, params, n_threads)
        self.__name__ = name

    def __repr__(self) -> str:
        return f"<fastloss.{self.FRAMEWORK.name} metric {self.__name__}>"

    def __reduce__(self):
        return (_rebuild_metric, (type(self), self._core.name, self._core.params,
                                  self._core.n_threads))


def _rebuild_metric(cls, name, params, n_threads):
    return cls(name, n_threads, **params)


def init_score(name: str, y, sample_weight=None, *, n_classes: Optional[int] = None,
               **params) -> Union[float, np.ndarray]:
    """The best constant score: argmin_c sum_i w_i l(c, y_i).

    The starting score (XGBoost's base_score / base_margin, LightGBM's
    init_score) for a loss whose framework does not estimate it: XGBoost
    starts a custom objective at the weighted mean of the labels (right for
    mse only), LightGBM at 0.  Elementwise losses: a float (a safeguarded
    Newton iteration on the summed gradient, bisection where the Hessian
    vanishes: the weighted median for mae, the q-quantile for quantile,
    log(mean) for poisson, logit(mean) for the logistic loss).  Class losses
    (integer labels 0..n_classes-1): an array of n_classes scores."""
    where = "fastloss init_score"
    loss = _loss_for(where, name, params)
    y = np.asarray(y, dtype=np.float64)
    w = None if sample_weight is None or np.size(sample_weight) == 0 else \
        np.broadcast_to(np.asarray(sample_weight, dtype=np.float64), y.shape)
    if y.size == 0:
        raise ValueError(f"{where}: no samples")
    if loss.family == _CLS:
        return _init_classes(where, loss, y, w, n_classes)
    return _init_elementwise(loss, y, w)


def _init_elementwise(loss, y, w) -> float:
    kw = {"reduction": "sum"}
    if w is not None:
        kw["sample_weight"] = w
    c_arr = np.empty(y.shape, dtype=np.float64)

    def gh(c, want_h):
        c_arr.fill(c)
        if want_h and loss.has_hessian:
            g, h = loss.grad_and_hessian(c_arr, y, **kw)
            return float(np.sum(g)), float(np.sum(h))
        return float(np.sum(loss.grad(c_arr, y, **kw))), 0.0

    # a bracket [lo, hi] with G(lo) <= 0 <= G(hi) (G, the summed gradient,
    # is non-decreasing for the convex losses)
    c0 = float(np.average(y, weights=w))
    c0 = c0 if math.isfinite(c0) else 0.0
    g0, h0 = gh(c0, True)
    if g0 == 0:
        return c0
    step = max(1.0, abs(c0))
    if g0 > 0:
        hi = c0
        for i in range(64):
            lo = c0 - step * 2.0 ** i
            glo = gh(lo, False)[0]
            if glo <= 0:
                break
            hi = lo
        else:
            return lo                        # no finite minimiser: the last bound
        if glo == 0:
            return lo
    else:
        lo = c0
        for i in range(64):
            hi = c0 + step * 2.0 ** i
            ghi = gh(hi, False)[0]
            if ghi >= 0:
                break
            lo = hi
        else:
            return hi
        if ghi == 0:
            return hi
    c, gc, hc = c0, g0, h0
    if not (lo < c < hi):
        c = 0.5 * (lo + hi)
        gc, hc = gh(c, True)
    for _ in range(200):
        if gc == 0:
            return c
        if gc < 0:
            lo = c
        else:
            hi = c
        if hi - lo <= 1e-13 * max(1.0, abs(c)):
            break
        nc = c - gc / hc if hc > 0 else math.nan
        if not (lo < nc < hi):
            nc = 0.5 * (lo + hi)
        elif abs(nc - c) <= 1e-14 * max(1.0, abs(c)):
            return nc
        c = nc
        gc, hc = gh(c, True)
    return c


def _init_classes(where, loss, y, w, n_classes) -> np.ndarray:
    if y.ndim != 1:
        raise ValueError(f"{where}: class labels of shape (n_samples,) expected, "
                         f"got shape {y.shape}")
    if not np.all((y >= 0) & (y == np.floor(y))):
        raise ValueError(f"{where}: class labels must be whole numbers >= 0")
    k = int(y.max()) + 1 if n_classes is None else int(n_classes)
    if int(y.max()) >= k:
        raise ValueError(f"{where}: label {int(y.max())} is not below n_classes = {k}")
    # a constant score makes each sample's loss depend on its label only: the
    # problem has one row per class, weighted by the class's total weight
    counts = np.bincount(y.astype(np.int64), weights=w, minlength=k).astype(np.float64)
    labels = np.arange(k)
    c = np.zeros(k)
    kw = {"reduction": "sum", "sample_weight": counts}

    def value(c):
        return float(loss(np.tile(c, (k, 1)), labels, **kw))

    v = value(c)
    for _ in range(200):
        z = np.tile(c, (k, 1))
        if loss.has_hessian:
            g, h = loss.grad_and_hessian(z, labels, **kw)
            g, h = g.sum(axis=0), h.sum(axis=0)
        else:
            g = loss.grad(z, labels, **kw).sum(axis=0)
            h = np.zeros(k)
        if np.max(np.abs(g)) <= 1e-12 * counts.sum():
            break
        h = np.where(h > 0, h, counts.sum())
        step = -g / h
        t = 1.0
        while t > 1e-10:
            nv = value(c + t * step)
            if nv <= v + 4e-16 * abs(v):
                break
            t *= 0.5
        else:
            break
        c, v = c + t * step, nv
    return c


def base_margin(name: str, y, sample_weight=None, *, n_classes: Optional[int] = None,
                **params) -> np.ndarray:
    """init_score broadcast to one score per sample: shape (n_samples,) for
    elementwise losses, (n_samples, n_classes) for class losses -- what
    xgboost.DMatrix(base_margin=) and lightgbm.Dataset(init_score=) take."""
    c = init_score(name, y, sample_weight, n_classes=n_classes, **params)
    n = np.shape(y)[0]
    if np.ndim(c) == 0:
        return np.full(np.shape(y), c)
    return np.tile(np.asarray(c), (n, 1))
