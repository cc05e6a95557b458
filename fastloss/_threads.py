"""Thread settings (SPEC section 4).

* ``set_num_threads(n)`` / ``get_num_threads()``: the process-wide default.
* ``num_threads(n)``: a context manager that overrides the default for the
  calling Python thread only (other threads are not affected), restoring
  the previous override on exit; nested uses stack.
* Per call, ``n_threads=`` overrides both.

Without any of these, the default is ``FASTLOSS_NUM_THREADS`` if set, else
the OpenMP runtime's own default (``OMP_NUM_THREADS``, else the CPUs this
process may use), which threadpoolctl can limit.
"""
import contextlib
import operator
import os

from . import _core


def _check(n, where):
    if isinstance(n, bool):
        raise TypeError(f"{where}: n must be an integer, got a bool")
    try:
        n = operator.index(n)
    except TypeError:
        raise TypeError(f"{where}: n must be an integer, got {type(n).__name__}") from None
    if n < 1:
        raise ValueError(f"{where}: n must be >= 1, got {n}")
    return n


def set_num_threads(n):
    """Set the process-wide default number of OpenMP threads."""
    _core.set_global_threads(_check(n, "set_num_threads"))


def get_num_threads():
    """The number of threads a call without n_threads= would use (before
    the size threshold under which a call runs on the calling thread)."""
    return _core.resolve_threads(0)


@contextlib.contextmanager
def num_threads(n):
    """Use n threads for fastloss calls made by this Python thread inside
    the ``with`` block."""
    n = _check(n, "num_threads")
    prev = _core.get_thread_override()
    _core.set_thread_override(n)
    try:
        yield n
    finally:
        _core.set_thread_override(prev)


def _init_from_env():
    v = os.environ.get("FASTLOSS_NUM_THREADS", "").strip()
    if not v:
        return
    try:
        n = int(v)
    except ValueError:
        raise ValueError(f"FASTLOSS_NUM_THREADS must be a positive integer, got {v!r}") from None
    if n < 1:
        raise ValueError(f"FASTLOSS_NUM_THREADS must be a positive integer, got {v!r}")
    _core.set_global_threads(n)
