"""The registry: collects the loss declarations (fastloss.losses), checks
each against the C kernels, the reference and the samplers, and derives
from them what the rest of the package uses: the public Loss objects with
their docstrings and signatures, the reference objects, typical inputs for
tests and benchmarks (make_inputs) and the README's loss table.

A declaration that lacks a kernel, reference or sampler, or a C kernel that
no declaration uses, is an error here (at import), so neither can be
forgotten."""
import inspect

import numpy as np

from . import _core, reference
from ._spec import LossSpec
from .losses import declarations

TABLE = declarations()
BY_NAME = {spec.name: spec for spec in TABLE}


def _kernel_ids(family):
    if family == "elementwise":
        return _core.EW_KERNELS
    if family == "class":
        return _core.CLS_KERNELS
    return getattr(_core, "ROW_KERNELS", {})


def problems(table=None):
    """What is missing or orphaned in the declarations (an empty list when
    everything is in order)."""
    table = TABLE if table is None else table
    out = []
    used = {f: set() for f in ("elementwise", "class", "rows")}
    names = set()
    for spec in table:
        where = f"declaration {spec.name!r}"
        if spec.name in names:
            out.append(f"{where}: the name is declared twice")
        names.add(spec.name)
        if spec.family not in used:
            out.append(f"{where}: unknown family {spec.family!r}")
            continue
        ids = _kernel_ids(spec.family)
        for k in (spec.kernel, spec.kernel_with_array,
                  spec.kernel_with_flag[1] if spec.kernel_with_flag else None) + spec.variants:
            if k is None:
                continue
            if k not in ids:
                out.append(f"{where}: C kernel {k!r} is missing")
            used[spec.family].add(k)
        if not callable(spec.reference):
            out.append(f"{where}: no reference function")
        if not spec.summary or not spec.formula:
            out.append(f"{where}: no summary or formula")
        samp = spec.sampler or {}
        for op in spec.operands:
            if op.name not in samp:
                out.append(f"{where}: no sampler for the input {op.name!r}")
        for op in samp:
            if op not in spec.inputs:
                out.append(f"{where}: a sampler for {op!r}, which is not an input")
        if not spec.differentiable:
            out.append(f"{where}: no differentiable input")
        if spec.operands[0].role != "prediction":
            out.append(f"{where}: the first operand must be the prediction")
        for chk in spec.checks:
            if chk.arg not in spec.inputs:
                out.append(f"{where}: a data check on {chk.arg!r}, which is not an input")
        if "torch" not in spec.peers:
            out.append(f"{where}: no torch spelling (peers)")
        if spec.family == "elementwise":
            nd = _core.EW_KERNEL_ND.get(spec.kernel)
            if nd is not None and nd != len(spec.differentiable):
                out.append(f"{where}: kernel {spec.kernel!r} has {nd} derivative outputs, "
                           f"the declaration {len(spec.differentiable)} differentiable inputs")
    for family in used:
        for k in _kernel_ids(family):
            if k not in used[family]:
                out.append(f"C kernel {k!r} ({family}) is used by no declaration")
    return out


def _check():
    bad = problems()
    if bad:
        raise RuntimeError("fastloss: the loss declarations are incomplete:\n  "
                           + "\n  ".join(bad))
    for spec in TABLE:
        if spec.family == "elementwise":
            spec.fast_kernel = _core.EW_KERNELS[spec.kernel]


# ------------------------------------------------------------ derived

def signature(spec, bound=()):
    """The inspect.Signature of a call of the loss."""
    P = inspect.Parameter
    ps = [P(name, P.POSITIONAL_OR_KEYWORD) for name in spec.inputs]
    ps += [P("reduction", P.KEYWORD_ONLY, default="mean"),
           P("sample_weight", P.KEYWORD_ONLY, default=None),
           P("axis", P.KEYWORD_ONLY, default=None),
           P("n_threads", P.KEYWORD_ONLY, default=None)]
    ps += [P(p.name, P.KEYWORD_ONLY, default=p.default) for p in spec.params
           if p.name not in bound]
    ps += [P(a.name, P.KEYWORD_ONLY, default=None) for a in spec.array_params
           if a.name not in bound]
    return inspect.Signature(ps)


def docstring(spec):
    ins = ", ".join(spec.inputs)
    lines = [f"{spec.summary}.", "", f"Per {'sample' if spec.family != 'elementwise' else 'element'}: "
             f"{spec.formula}", "", spec.signature_text(), "",
             "Inputs:"]
    for op in spec.operands:
        lines.append(f"  {op.name}: {op.doc or op.role}"
                     + (" (differentiable)" if op.differentiable else ""))
    if spec.params or spec.array_params:
        lines += ["", "Parameters:"]
        for p in spec.params:
            dom = "True or False" if p.boolean else f"in {p.domain}"
            lines.append(f"  {p.name} = {p.default!r}, {dom}"
                         + (" or None" if p.allow_none else "") + (f": {p.doc}" if p.doc else ""))
        for a in spec.array_params:
            lines.append(f"  {a.name} = None, array with values in {a.domain}: {a.doc}")
    lines += ["", "Keywords of every method: reduction ("
              + " | ".join(repr(r) for r in spec.reductions)
              + "), sample_weight, axis, n_threads, and the loss parameters.",
              "Derivative methods (.grad, .value_and_grad, .hessian, .grad_and_hessian) also "
              "take out= (an array, or a tuple for several wrt inputs; a pair for "
              "grad_and_hessian), wrt= (an input name or a tuple of names from "
              f"{spec.differentiable}) and cotangent= (the VJP's incoming gradient, "
              "broadcast to the value's shape).",
              "", f"Methods: fl.{spec.name}({ins}, ...) the value; .grad; .value_and_grad "
              "(one fused pass); " + (".hessian (diagonal); .grad_and_hessian (one pass); "
                                     if spec.has_hessian else "")
              + ".bind(**params); .reference (pure NumPy)."]
    return "\n".join(lines)


def _reference_loss(spec):
    """The reference object of a declaration: its math with the shared
    argument checks."""
    defaults = {p.name: p.default for p in spec.params}
    defaults.update({a.name: None for a in spec.array_params})
    return reference.ReferenceLoss(spec.name, spec.reference, defaults, spec.family,
                                   param_check=_param_check(spec),
                                   checks=tuple((c.arg, c.domain, c.what) for c in spec.checks),
                                   array_params=tuple((a.name, a.domain) for a in spec.array_params),
                                   accepts_probabilities=spec.accepts_probabilities,
                                   inputs=spec.inputs, differentiable=spec.differentiable,
                                   sample_operands=tuple(o.name for o in spec.operands
                                                         if o.shape == "samples"),
                                   reductions=spec.reductions, has_hessian=spec.has_hessian)


def _param_check(spec):
    def check(name, params):
        out = dict(params)
        for p in spec.params:
            v = params.get(p.name, p.default)
            if v is None and p.allow_none:
                out[p.name] = None
                continue
            checked = p.check(name, v)
            out[p.name] = checked if (p.integer or p.boolean) else float(checked)
        return out
    return check


def make_losses(loss_type):
    """The public Loss objects, one subclass per loss (for its docstring and
    signature), and the reference objects."""
    out = {}
    for spec in TABLE:
        ref = _reference_loss(spec)
        reference.LOSSES[spec.name] = ref
        setattr(reference, spec.name, ref)
        cls = type(spec.name, (loss_type,), {"__doc__": docstring(spec),
                                             "__module__": "fastloss",
                                             "__signature__": signature(spec)})
        out[spec.name] = cls(spec, reference=ref)
    return out


def make_inputs(name, shape, dtype=np.float32, rng=None):
    """Typical valid inputs of loss `name`: (input_1, ..., input_k, kwargs).

    shape is the first input's shape; class losses: the logits' shape with
    the classes LAST, labels int64; row losses: (samples..., D)."""
    spec = BY_NAME[name]
    rng = np.random.default_rng(0) if rng is None else rng
    shape = tuple(shape) if np.ndim(shape) else (int(shape),)
    arrays = []
    for op in spec.operands:
        f = spec.sampler[op.name]
        if isinstance(f, str):           # class labels over the last axis
            arrays.append(rng.integers(0, shape[-1], size=shape[:-1], dtype=np.int64))
        elif op.shape == "samples":
            arrays.append(np.asarray(f(rng, shape[:-1]), dtype=dtype))
        else:
            arrays.append(np.asarray(f(rng, shape), dtype=dtype))
    return (*arrays, {})


def loss_table_markdown():
    """The README's loss table, from the declarations."""
    rows = ["| name | inputs | per element / sample | parameters (domain) |",
            "|---|---|---|---|"]
    for spec in TABLE:
        ins = ", ".join(f"**{o.name}**" if o.differentiable else o.name for o in spec.operands)
        def dom(p):
            if p.boolean:
                return "bool"
            d = "int" if p.integer else ("" if str(p.domain) == "(-inf, inf)" else str(p.domain))
            return d + (" or None" if p.allow_none and d else "")
        ps = ", ".join(f"`{p.name}={p.default!r}`" + (f" ({dom(p)})" if dom(p) else "")
                       for p in spec.params)
        ps = ", ".join(x for x in (ps, ", ".join(f"`{a.name}=None`" for a in spec.array_params))
                       if x)
        rows.append(f"| `{spec.name}` | {ins} | `{spec.formula}` | {ps} |")
    return "\n".join(rows)


__all__ = ["TABLE", "BY_NAME", "LossSpec", "problems", "make_losses", "make_inputs",
           "signature", "docstring", "loss_table_markdown"]


def _two_input(spec):
    return (spec.inputs == ("y_pred", "y_true") and spec.family in ("elementwise", "class")
            and not spec.extra_reductions and not any(p.boolean for p in spec.params))


# The losses of the call shape (y_pred, y_true, scalar or pos_weight
# parameters): what the suites written before the operand model exercise
# (tests/test_elementwise.py, test_classes.py, test_fuzz.py, test_leaks.py);
# tests/test_operands.py covers every declaration.
TWO_INPUT = [spec for spec in TABLE if _two_input(spec)]
