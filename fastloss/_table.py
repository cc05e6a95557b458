"""The table of losses: one row per loss.

A row names the loss, its family (which C driver runs it), the C kernel,
its parameters with defaults and domains, and checks on the values of the
data.  Everything else -- dtype, broadcasting, weights, reductions, axis,
out=, threads, errors -- is generic (fastloss._api) and serves every row.
"""
import math
import numbers
import operator
from dataclasses import dataclass, field
from typing import Callable, Optional, Tuple

import numpy as np


@dataclass(frozen=True)
class Domain:
    """A set of allowed real values: an interval or a finite set."""
    lo: float = -math.inf
    hi: float = math.inf
    lo_open: bool = False
    hi_open: bool = False
    values: Optional[Tuple[float, ...]] = None

    def contains(self, v):
        """Elementwise membership; NaN counts as inside (it propagates)."""
        v = np.asarray(v)
        if self.values is not None:
            ok = np.isin(v, self.values)
        else:
            ok = (v > self.lo) if self.lo_open else (v >= self.lo)
            ok &= (v < self.hi) if self.hi_open else (v <= self.hi)
        return ok | np.isnan(v)

    def contains_int(self, v):
        """Membership of a Python int of any size (exact comparisons)."""
        if self.values is not None:
            return v in self.values
        ok = (v > self.lo) if self.lo_open else (v >= self.lo)
        return ok and ((v < self.hi) if self.hi_open else (v <= self.hi))

    def __str__(self):
        if self.values is not None:
            return "{" + ", ".join(f"{x:g}" for x in self.values) + "}"
        lo = "-inf" if self.lo == -math.inf else f"{self.lo:g}"
        hi = "inf" if self.hi == math.inf else f"{self.hi:g}"
        return (("(" if self.lo_open or self.lo == -math.inf else "[") + lo + ", " + hi
                + (")" if self.hi_open or self.hi == math.inf else "]"))


POSITIVE = Domain(0.0, lo_open=True)
NONNEGATIVE = Domain(0.0)
FINITE_NONNEGATIVE = Domain(0.0, math.inf, hi_open=True)
HINGE_LABELS = Domain(values=(-1.0, 0.0, 1.0))
UNIT_OPEN = Domain(0.0, 1.0, True, True)
UNIT = Domain(0.0, 1.0)
REAL = Domain()


@dataclass(frozen=True)
class Param:
    """A scalar loss parameter.  `slot` is where the C kernel reads it
    (a, b, c or d of fl_params); `none_value` is what None packs to when
    None is allowed."""
    name: str
    default: object
    domain: Domain
    slot: Optional[str] = None
    allow_none: bool = False
    none_value: float = 0.0
    doc: str = ""
    integer: bool = False

    def check(self, loss, value):
        """Validate `value`; return the float (or int) the kernel gets."""
        if value is None:
            if self.allow_none:
                return self.none_value
            raise TypeError(f"{loss}: {self.name} must be a number, not None")
        if self.integer:
            if isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{loss}: {self.name} must be an integer, got a bool")
            try:
                v = operator.index(value)
            except TypeError:
                raise TypeError(f"{loss}: {self.name} must be an integer, got "
                                f"{type(value).__name__}") from None
            if not self.domain.contains_int(v):
                raise ValueError(f"{loss}: {self.name} must be in {self.domain}, got {value!r}")
            return v
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{loss}: {self.name} must be a real number, "
                            f"got {type(value).__name__}")
        v = float(value)
        if math.isnan(v) or not bool(self.domain.contains(v)):
            raise ValueError(f"{loss}: {self.name} must be in {self.domain}, got {value!r}")
        return v


@dataclass(frozen=True)
class ArrayParam:
    """A per-element parameter operand (pos_weight): broadcast to y_pred
    without enlarging it, values in `domain`."""
    name: str
    domain: Domain
    doc: str = ""


@dataclass(frozen=True)
class DataCheck:
    """Values of an input ('y_pred' or 'y_true') must lie in `domain`."""
    arg: str
    domain: Domain
    what: str


@dataclass
class LossSpec:
    name: str
    family: str                      # 'elementwise' or 'class'
    kernel: str                      # C kernel name (FL_EW_LOSSES row)
    summary: str
    formula: str
    params: Tuple[Param, ...] = ()
    array_params: Tuple[ArrayParam, ...] = ()
    checks: Tuple[DataCheck, ...] = ()
    # kernel chosen from the given array params (e.g. pos_weight -> *_pw)
    kernel_with_array: Optional[str] = None
    # class losses: whether y_true may be class probabilities
    accepts_probabilities: bool = True
    # (checked parameter values, compute dtype) -> the (a, b, c, d) slots, for
    # kernels that take quantities derived from the parameters (see pack)
    derive: Optional[Callable] = None
    fast_kernel: int = field(default=-1, init=False)

    @property
    def param_names(self):
        return tuple(p.name for p in self.params) + tuple(a.name for a in self.array_params)

    def pack(self, values, cdt=np.float64):
        """Scalar parameters (checked) -> (a, b, c, d) for the kernel of the
        compute dtype cdt.

        The slots are doubles; the float32 kernels round them to float32.
        Kernels that need a quantity derived from a parameter get it from
        `derive`, formed here in double precision and rounded once, so that
        rounding the parameter itself cannot move it onto the edge of its
        domain (tweedie's 2 - power and 1 - power, quantile's q - 1)."""
        checked = {p.name: p.check(self.name, values.get(p.name, p.default))
                   for p in self.params}
        if self.derive is not None:
            a, b, c, d = self.derive(checked, np.dtype(cdt))
            return (float(a), float(b), float(c), float(d))
        slots = {"a": 0.0, "b": 0.0, "c": 0.0, "d": 0.0}
        for p in self.params:
            if p.slot is not None:
                slots[p.slot] = checked[p.name]
        return (slots["a"], slots["b"], slots["c"], slots["d"])

    def pack_fast(self, kwargs, cdt):
        """For the compiled fast path: the packed scalar parameters taken
        from kwargs (other keys ignored), or None when the call needs the
        generic path (array parameters given)."""
        for a in self.array_params:
            if kwargs.get(a.name) is not None:
                return None
        return self.pack(kwargs, cdt)


_F32_TRUE_MIN = float(np.finfo(np.float32).smallest_subnormal)
_F32_MAX = float(np.finfo(np.float32).max)


def _derive_quantile(v, cdt):
    """q and q - 1 (exact in double; q - 1 stays below 0 in float32 when q
    rounds to 1).  q > 0 stays > 0 in float32 (q * inf is inf, not NaN): a
    q below the smallest float32 subnormal is taken as that subnormal (an
    absolute change below 1.5e-45)."""
    q = v["q"]
    if cdt == np.float32:
        q = max(q, _F32_TRUE_MIN)
    return q, v["q"] - 1.0, 0.0, 0.0


def _derive_tweedie(v, cdt):
    """2 - power and 1 - power, exact in double for power in (1, 2); in
    float32 power itself would round to 1 or 2 near the edges."""
    rho = v["power"]
    return 2.0 - rho, 1.0 - rho, 0.0, 0.0


def _derive_focal(v, cdt):
    """alpha (-1: none) and gamma, capped at the largest float32: for any
    gamma beyond it m**gamma is 0 for every m < 1 representable in float32 or
    float64 and 1 at m = 1, so the cap changes no result, while gamma rounded
    to inf in float32 would make inf * log(1) = NaN."""
    return v["alpha"], min(v["gamma"], _F32_MAX), 0.0, 0.0


def _row(name, kernel, summary, formula, params=(), **kw):
    return LossSpec(name=name, family="elementwise", kernel=kernel, summary=summary,
                    formula=formula, params=tuple(params), **kw)


TABLE = [
    # ------------------------------------------------------- regression
    _row("mse", "mse", "Mean squared error", "d**2,  d = y_pred - y_true"),
    _row("mae", "mae", "Mean absolute error", "abs(d)  (gradient 0 at d == 0)"),
    _row("huber", "huber", "Huber loss",
         "0.5*d**2 if abs(d) <= delta else delta*(abs(d) - 0.5*delta)",
         [Param("delta", 1.0, POSITIVE, "a", doc="threshold between the quadratic and linear parts")]),
    _row("smooth_l1", "smooth_l1", "Smooth L1 loss",
         "0.5*d**2/beta if abs(d) < beta else abs(d) - 0.5*beta  (beta == 0: mae)",
         [Param("beta", 1.0, NONNEGATIVE, "a", doc="threshold; 0 gives mae")]),
    _row("log_cosh", "log_cosh", "Log-cosh loss", "log(cosh(d)), without overflow"),
    _row("quantile", "quantile", "Quantile (pinball) loss",
         "max(q*(y_true - y_pred), (q - 1)*(y_true - y_pred))",
         [Param("q", 0.5, UNIT_OPEN, "a", doc="the quantile, in (0, 1)")],
         derive=_derive_quantile),
    _row("poisson", "poisson", "Poisson deviance on a log-rate",
         "exp(y_pred) - y_true*y_pred  (y_pred is a log-rate)"),
    _row("tweedie", "tweedie", "Tweedie deviance with log link (HalfTweedieLoss)",
         "exp((2-power)*y_pred)/(2-power) - y_true*exp((1-power)*y_pred)/(1-power)",
         [Param("power", 1.5, Domain(1.0, 2.0, True, True), "a", doc="Tweedie power, in (1, 2)")],
         checks=(DataCheck("y_true", NONNEGATIVE, "non-negative targets"),),
         derive=_derive_tweedie),
    # ------------------------------------------------------- binary
    _row("binary_cross_entropy", "bce", "Binary cross-entropy on probabilities",
         "-(t*log(p) + (1-t)*log(1-p)), each log clamped at -100",
         checks=(DataCheck("y_pred", UNIT, "probabilities in [0, 1]"),
                 DataCheck("y_true", UNIT, "targets in [0, 1]"))),
    _row("binary_cross_entropy_with_logits", "bce_logits",
         "Binary cross-entropy on logits",
         "-(pos_weight*t*log(sigmoid(x)) + (1-t)*log(1-sigmoid(x))), stable for any x",
         array_params=(ArrayParam("pos_weight", NONNEGATIVE,
                                  "weight of the positive term, broadcast to y_pred"),),
         kernel_with_array="bce_logits_pw"),
    _row("sigmoid_focal", "sigmoid_focal", "Sigmoid focal loss (Lin et al.)",
         "alpha_t * bce_with_logits(x, t) * (1 - p_t)**gamma",
         [Param("alpha", 0.25, UNIT, "a", allow_none=True, none_value=-1.0,
                doc="positive-class weight in [0, 1]; None: no weighting"),
          Param("gamma", 2.0, FINITE_NONNEGATIVE, "b", doc="focusing exponent, finite, >= 0")],
         derive=_derive_focal),
    _row("hinge", "hinge", "Hinge loss",
         "max(0, 1 - s*x), labels s in {-1, +1} (0 means -1)",
         checks=(DataCheck("y_true", HINGE_LABELS, "labels -1 or +1 (0 means -1)"),)),
    _row("squared_hinge", "squared_hinge", "Squared hinge loss",
         "max(0, 1 - s*x)**2, labels s in {-1, +1} (0 means -1)",
         checks=(DataCheck("y_true", HINGE_LABELS, "labels -1 or +1 (0 means -1)"),)),
]


def _class_row(name, kernel, summary, formula, params=(), **kw):
    common = (Param("class_axis", -1, REAL, integer=True,
                    doc="the axis of y_pred holding the classes"),)
    return LossSpec(name=name, family="class", kernel=kernel, summary=summary,
                    formula=formula, params=common + tuple(params),
                    array_params=(ArrayParam("class_weight", REAL,
                                             "per-class weights of shape (C,)"),), **kw)


_IGNORE = Param("ignore_index", None, REAL, integer=True, allow_none=True, none_value=None,
                doc="label whose samples are left out (None: no such label)")

TABLE += [
    # ------------------------------------------------------- multiclass
    _class_row("cross_entropy", "ce", "Cross-entropy on logits (softmax + NLL, fused)",
               "logsumexp(z) - z[y]   (probability targets: -sum(t * log_softmax(z)))",
               [Param("label_smoothing", 0.0, UNIT, doc="mass spread uniformly over the classes"),
                _IGNORE]),
    _class_row("nll", "nll", "Negative log-likelihood on log-probabilities",
               "-logp[y]   (probability targets: -sum(t * logp))", [_IGNORE]),
    _class_row("multi_margin", "margin", "Multi-class margin (hinge) loss",
               "sum_{j != y} max(0, margin - z[y] + z[j])**power / C",
               [Param("margin", 1.0, REAL, doc="the margin"),
                Param("power", 1, Domain(values=(1.0, 2.0)), doc="1 or 2")],
               accepts_probabilities=False),
]


def resolve_kernels(kernel_ids):
    """Attach the C kernel ids to the elementwise rows."""
    for spec in TABLE:
        if spec.family != "elementwise":
            continue
        for k in (spec.kernel, spec.kernel_with_array):
            if k is not None and k not in kernel_ids:
                raise RuntimeError(f"fastloss: C kernel {k!r} of {spec.name} is missing")
        spec.fast_kernel = kernel_ids[spec.kernel]
    return TABLE
