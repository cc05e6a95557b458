"""fastloss: fast, accurate loss functions and their analytic gradients.

Every loss is a :class:`Loss` object::

    import fastloss as fl
    v    = fl.huber(y_pred, y_true, delta=1.0)
    g    = fl.huber.grad(y_pred, y_true)
    v, g = fl.huber.value_and_grad(y_pred, y_true)     # one fused pass
    h    = fl.huber.hessian(y_pred, y_true)
    fl.huber.reference                                 # pure-NumPy reference

See ``fl.losses`` for the table and ``fl.show_config()`` for the build.
"""
from . import _core
from ._core import Loss
from . import _api, _table, reference as _reference
from ._threads import get_num_threads, num_threads, set_num_threads, _init_from_env

__version__ = "0.1.0"

_core.set_slow_path(_api.run)
_init_from_env()


def _make_doc(spec):
    lines = [f"{spec.summary}.", "", f"Per element: {spec.formula}", ""]
    lines.append(f"fl.{spec.name}(y_pred, y_true, *, reduction='mean', sample_weight=None, "
                 "axis=None, n_threads=None"
                 + "".join(f", {p.name}={p.default!r}" for p in spec.params)
                 + "".join(f", {a.name}=None" for a in spec.array_params) + ")")
    if spec.params or spec.array_params:
        lines.append("")
        lines.append("Parameters:")
        for p in spec.params:
            lines.append(f"  {p.name} = {p.default!r}, in {p.domain}"
                         + (" or None" if p.allow_none else "") + (f": {p.doc}" if p.doc else ""))
        for a in spec.array_params:
            lines.append(f"  {a.name} = None, array with values in {a.domain}: {a.doc}")
    lines += ["", "Methods: .grad, .value_and_grad (fused), .hessian (diagonal), "
              ".reference (pure NumPy)."]
    return "\n".join(lines)


def _build():
    table = _table.resolve_kernels(_core.EW_KERNELS)
    out = {}
    for spec in table:
        cls = type(spec.name, (Loss,), {"__doc__": _make_doc(spec), "__module__": __name__})
        out[spec.name] = cls(spec, reference=_reference.LOSSES.get(spec.name))
    return out


losses = _build()
globals().update(losses)


def get(name):
    """The loss called `name` (a key of ``fastloss.losses``)."""
    try:
        return losses[name]
    except KeyError:
        raise ValueError(f"fastloss: no loss named {name!r}; known: "
                         f"{', '.join(sorted(losses))}") from None


_core.set_loss_lookup(get)


def show_config(print_=True):
    """Version, compiler, OpenMP, SIMD level and threads of this build.
    Prints them and returns them as a dict."""
    import numpy as np
    try:
        from ._build_info import BUILD_INFO
    except ImportError:
        BUILD_INFO = {}
    cfg = {
        "fastloss": __version__,
        "numpy": np.__version__,
        "compiler": BUILD_INFO.get("compiler", "unknown"),
        "cflags": BUILD_INFO.get("cflags", "unknown"),
        "openmp": _core.have_openmp(),
        "openmp_version": _core.openmp_version() or None,
        "simd": _core.simd_level(),
        "hand_vectorized": ("AVX-512 intrinsics" if _core.simd_loops() else "portable C only"),
        "threads": get_num_threads(),
        "losses": len(losses),
    }
    if print_:
        for k, v in cfg.items():
            if k == "openmp" and not v:
                v = "False (built without OpenMP: every call runs on one thread)"
            print(f"{k:>15}: {v}")
    return cfg


__all__ = ["Loss", "losses", "get", "show_config", "set_num_threads", "get_num_threads",
           "num_threads"] + sorted(losses)
