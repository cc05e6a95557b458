"""Thread settings (SPEC section 4) and their scope.

The thread count of a call is, first match wins:

1. ``n_threads=`` of the call (always obeyed, see below).
2. The calling thread's ``num_threads`` override: ``with fl.num_threads(n):``
   applies to the Python thread (OS thread) that entered the block, for the
   block's duration, and to nothing else -- not to other threads, not to
   threads started inside the block.  Nested blocks stack; leaving a block,
   also by an exception, restores the enclosing block's count (or none).
   asyncio tasks on one thread share that thread's override.
3. The process-wide count, one value for every thread of the process.  It
   starts at the default below and changes only through
   ``fl.set_num_threads(n)`` or threadpoolctl, from any thread, the last
   change winning (``threadpool_limits`` restores the value it found when
   its block ends).

The default is determined once, when fastloss is imported:
``FASTLOSS_NUM_THREADS`` if set, else the first entry of ``OMP_NUM_THREADS``
if that is a positive integer, else the number of CPUs the process may run
on (``os.sched_getaffinity``); 1 when fastloss was built without OpenMP.
fastloss does NOT read the OpenMP runtime's own thread setting
(``omp_get_max_threads``): in GNU libgomp that is per OS thread, changed for
the calling thread only by ``omp_set_num_threads`` (which
``torch.set_num_threads`` and threadpoolctl's OpenMP controller call), so
using it made the default depend on which thread called.

threadpoolctl (3.5 or newer, when installed; fastloss built with OpenMP)
lists fastloss as a library of
``user_api="openmp"``, ``internal_api="fastloss"``, and
``threadpool_limits(n)`` / ``threadpool_limits(n, user_api="openmp")`` set
the process-wide count (3.) -- for every thread, like
``set_num_threads`` -- not just for the thread that called it.
``num_threads`` blocks and ``n_threads=`` take precedence over it.

A call may use fewer threads than its count: work too small for a team runs
on the calling thread, and for counts from 2. or 3. (not ``n_threads=``)
the contention guard falls back to one thread for a while when another
process keeps the CPUs busy.  In a child created by ``fork()`` every call
runs on its calling thread.  Results are bit-identical for any thread
count.
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
    """Set the process-wide number of threads: every Python thread's calls
    without ``n_threads=`` and outside a ``num_threads`` block use ``n``
    from now on (see the module docstring for the order of precedence)."""
    _core.set_global_threads(_check(n, "set_num_threads"))


def get_num_threads():
    """The number of threads a call without ``n_threads=`` made by THIS
    Python thread would use now: its innermost ``num_threads`` block's count,
    else the process-wide count (before the size threshold under which a
    call runs on the calling thread, and the contention guard)."""
    return _core.resolve_threads(0)


@contextlib.contextmanager
def num_threads(n):
    """Use ``n`` threads for the fastloss calls made by the calling Python
    thread inside the ``with`` block.

    The override belongs to the calling OS thread only: other threads, and
    threads started inside the block, keep the process-wide count.  Blocks
    nest; on exit (also by an exception) the previous override of this
    thread, or none, is restored.  ``set_num_threads`` and threadpoolctl
    limits do not change the count inside the block; ``n_threads=`` does,
    for its call."""
    n = _check(n, "num_threads")
    prev = _core.get_thread_override()
    _core.set_thread_override(n)
    try:
        yield n
    finally:
        _core.set_thread_override(prev)


def _cpus_available():
    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _default_threads():
    """The default process-wide count: ``FASTLOSS_NUM_THREADS``, else the
    first entry of ``OMP_NUM_THREADS`` (ignored unless a positive integer,
    as the OpenMP runtime ignores it), else the CPUs this process may use;
    1 without OpenMP.  ``ValueError`` for a bad ``FASTLOSS_NUM_THREADS``."""
    v = os.environ.get("FASTLOSS_NUM_THREADS", "").strip()
    if v:
        bad = f"FASTLOSS_NUM_THREADS must be a positive integer, got {v!r}"
        try:
            n = int(v)
        except ValueError:
            raise ValueError(bad) from None
        if n < 1:
            raise ValueError(bad)
        return n
    if not _core.have_openmp():
        return 1
    first = os.environ.get("OMP_NUM_THREADS", "").split(",")[0].strip()
    if first:
        try:
            n = int(first)
        except ValueError:
            n = 0
        if n >= 1:
            return n
    return _cpus_available()


# ------------------------------------------------------------- threadpoolctl

_registered_with_threadpoolctl = False


def _threadpoolctl_controller_class():
    """A threadpoolctl LibController for fastloss's compiled module, or None
    when threadpoolctl is not installed or older than 3.5 (before 3.5 it
    did not check a library's symbols, so the generic file name ``_core.``
    could match another package's module)."""
    try:
        import threadpoolctl
    except ImportError:
        return None
    try:
        version = tuple(int(x) for x in threadpoolctl.__version__.split(".")[:2])
    except (AttributeError, ValueError):
        return None
    if version < (3, 5) or not hasattr(threadpoolctl, "register"):
        return None

    class FastlossController(threadpoolctl.LibController):
        """fastloss's process-wide thread count (see fastloss._threads)."""
        user_api = "openmp"
        internal_api = "fastloss"
        filename_prefixes = ("_core.",)
        check_symbols = ("fl_get_global_threads", "fl_set_global_threads")

        def get_num_threads(self):
            get = getattr(self.dynlib, "fl_get_global_threads", None)
            return get() if get is not None else None

        def set_num_threads(self, num_threads):
            set_ = getattr(self.dynlib, "fl_set_global_threads", None)
            if set_ is not None and num_threads is not None and int(num_threads) >= 1:
                set_(int(num_threads))

        def get_version(self):
            from . import __version__
            return __version__

    return threadpoolctl.register, FastlossController


def _register_with_threadpoolctl():
    global _registered_with_threadpoolctl
    if _registered_with_threadpoolctl:
        return True
    found = _threadpoolctl_controller_class()
    if found is None:
        return False
    register, controller = found
    register(controller)
    _registered_with_threadpoolctl = True
    return True


def _init_from_env():
    """Run once at import: the process-wide count to its default, and
    fastloss's controller registered with threadpoolctl."""
    _core.set_global_threads(_default_threads())
    if _core.have_openmp():         # without OpenMP there is no pool to list
        _register_with_threadpoolctl()
