"""The vocabulary of a loss declaration: domains, parameters, operands and
the declaration itself (LossSpec).

Every fact about a loss is one LossSpec in ``fastloss/losses/``: its name,
family (which C driver runs it), operands (names, roles, which are
differentiable, how they broadcast), parameters with defaults and domains,
the C kernel, checks on the values of the data, the reference math, the
input sampler of tests and benchmarks, the peer spellings (numpy / torch /
jax / sklearn) and the formula for the docs.  Everything else -- dtype,
broadcasting, weights, reductions, axis, out=, wrt, cotangent, threads,
errors -- is generic (fastloss._call) and serves every declaration.
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
    boolean: bool = False

    def check(self, loss, value):
        """Validate `value`; return the float (or int, or bool) the kernel gets."""
        if value is None:
            if self.allow_none:
                return self.none_value
            raise TypeError(f"{loss}: {self.name} must be a number, not None")
        if self.boolean:
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{loss}: {self.name} must be True or False, got "
                                f"{type(value).__name__}")
            return bool(value)
        if self.integer:
            if isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{loss}: {self.name} must be an integer, got a bool")
            try:
                v = operator.index(value)
            except TypeError:
                raise TypeError(f"{loss}: {self.name} must be an integer, got "
                                f"{type(value).__name__}") from None
            if not self.domain.contains_int(v):
                raise ValueError(f"{loss}: {self.name} must be in {self.domain}, got {v}")
            return v
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"{loss}: {self.name} must be a real number, "
                            f"got {type(value).__name__}")
        v = float(value)
        if math.isnan(v) or not bool(self.domain.contains(v)):
            raise ValueError(f"{loss}: {self.name} must be in {self.domain}, got {v!r}")
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
    """Values of an input (named as in the declaration's operands) must lie
    in `domain`."""
    arg: str
    domain: Domain
    what: str


@dataclass(frozen=True)
class Operand:
    """A positional array argument of a loss.

    role: "prediction" (the first operand: it fixes the shape, dtype and
    namespace of the call), "target", or "input" (a further operand of the
    math, e.g. gaussian_nll's var, margin_ranking's y).
    differentiable: grad/hessian can be taken with respect to it.
    shape: how it relates to the first operand --
      "first"     it is the first operand;
      "broadcast" broadcasts to the first operand's shape without enlarging it;
      "labels"    class labels of the per-sample shape, or probabilities of the
                  first operand's shape (class family);
      "samples"   broadcasts to the per-sample shape (row family: the leading
                  axes).
    """
    name: str
    role: str = "input"
    differentiable: bool = False
    shape: str = "broadcast"
    doc: str = ""


def pred(name="y_pred", doc="predictions", differentiable=True):
    return Operand(name, "prediction", differentiable, "first", doc)


def target(name="y_true", doc="targets", shape="broadcast"):
    return Operand(name, "target", False, shape, doc)


FAMILIES = ("elementwise", "class", "rows")
REDUCTIONS = ("mean", "sum", "none")


@dataclass
class LossSpec:
    """One loss: every fact about it (see the module docstring).

    reference: the pure-NumPy math (fastloss.reference); its form depends on
    the family (see there).  sampler: {operand name: rng, shape -> array}
    giving typical valid inputs (class labels: the string "labels").
    peers: {"numpy": f(N, *inputs, k, grad=True) -> (the mean, its gradient
    per differentiable operand: one array, or a tuple) or, grad=False, the
    mean -- the idiomatic NumPy a user writes, N = numpy; "torch": f(F,
    *inputs, k, reduction="mean"), "jax":
    f(J, *inputs, k) -> the mean, "sklearn": f(S, k) -> (loss, factor)}, the
    same loss in those libraries, k the parameter values (r the reduction:
    "mean", "sum" or "none"; class losses take the logits in the peer's
    layout: (N, C, ...) or (C,) for torch).  Array parameters (pos_weight, class_weight) are absent,
    None, or an array of the peer's library (a torch tensor for "torch").
    The C kernel's derivative outputs belong to the differentiable operands,
    in order; its input slots take the operands in order.
    variants: further C kernels that run this loss (chosen inside the C
    driver, e.g. sigmoid_focal's gamma == 2 form)."""
    name: str
    family: str                      # 'elementwise', 'class' or 'rows'
    kernel: str                      # C kernel name (FL_EW_LOSSES / FL_ROW_LOSSES row)
    summary: str
    formula: str
    operands: Tuple[Operand, ...] = ()
    params: Tuple[Param, ...] = ()
    array_params: Tuple[ArrayParam, ...] = ()
    checks: Tuple[DataCheck, ...] = ()
    # kernel chosen from the given array params (e.g. pos_weight -> *_pw)
    kernel_with_array: Optional[str] = None
    # kernel chosen by a boolean parameter: (parameter name, kernel when True)
    kernel_with_flag: Optional[Tuple[str, str]] = None
    # class losses: whether y_true may be class probabilities
    accepts_probabilities: bool = True
    # (checked parameter values, compute dtype) -> the (a, b, c, d) slots, for
    # kernels that take quantities derived from the parameters (see pack)
    derive: Optional[Callable] = None
    variants: Tuple[str, ...] = ()
    has_hessian: bool = True
    extra_reductions: Tuple[str, ...] = ()   # e.g. ("batchmean",) for kl_div
    reference: Optional[Callable] = None
    sampler: Optional[dict] = None
    peers: dict = field(default_factory=dict)
    fast_kernel: int = field(default=-1, init=False)

    def __post_init__(self):
        if not self.operands:
            self.operands = ((pred(), target("y_true", shape="labels"))
                             if self.family == "class" else (pred(), target()))
        self.operands = tuple(self.operands)

    @property
    def inputs(self):
        return tuple(o.name for o in self.operands)

    @property
    def differentiable(self):
        return tuple(o.name for o in self.operands if o.differentiable)

    @property
    def reductions(self):
        return REDUCTIONS + tuple(self.extra_reductions)

    @property
    def param_names(self):
        return tuple(p.name for p in self.params) + tuple(a.name for a in self.array_params)

    def param(self, name):
        return next(p for p in self.params if p.name == name)

    def signature_text(self):
        """The call's signature as the docs show it."""
        kw = ["reduction='mean'", "sample_weight=None", "axis=None", "n_threads=None"]
        kw += [f"{p.name}={p.default!r}" for p in self.params]
        kw += [f"{a.name}=None" for a in self.array_params]
        return f"{self.name}({', '.join(self.inputs)}, *, {', '.join(kw)})"

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
        if self.kernel_with_flag is not None and kwargs.get(self.kernel_with_flag[0]):
            return None
        return self.pack(kwargs, cdt)


