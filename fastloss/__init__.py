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
from . import _call, _families, _registry
from ._threads import get_num_threads, num_threads, set_num_threads, _init_from_env

__version__ = "0.1.0"

_core.set_slow_path(_families.run)
_init_from_env()
_registry._check()


losses = _registry.make_losses(Loss)
globals().update(losses)


def get(name):
    """The loss called `name` (a key of ``fastloss.losses``)."""
    try:
        return losses[name]
    except KeyError:
        raise ValueError(f"fastloss: no loss named {name!r}; known: "
                         f"{', '.join(sorted(losses))}") from None


_core.set_loss_lookup(get, _call.bind_loss)


def __getattr__(name):
    # fastloss.torch imports torch: only when it is asked for
    if name == "torch":
        import importlib
        return importlib.import_module(".torch", __name__)
    raise AttributeError(f"module 'fastloss' has no attribute {name!r}")


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
        "simd_isa": _core.simd_isa(),
        "simd_levels": ",".join(_core.simd_levels()),
        "isa_levels_built": ",".join(BUILD_INFO.get("isa_levels", [])) or "unknown",
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
