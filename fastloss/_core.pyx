# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, embedsignature=False
"""The compiled core of fastloss: a thin binding to the C drivers.

Two layers:
  * ``ew_call`` and friends: take arrays that the Python layer (``_api``)
    has already checked, cast and broadcast, coalesce their dimensions and
    call the C driver with the GIL released.
  * ``Loss``: the public loss object.  Its methods handle the common
    trainer's call (contiguous arrays of one float dtype and one shape, full
    or no reduction, optional ``out=``) without touching Python-level
    machinery, and hand every other call to ``_api.run``.
"""
cimport numpy as cnp
from cpython.dict cimport PyDict_Next
from cpython.object cimport PyObject
from libc.string cimport memset

import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, void *descr, object base)

cdef extern from "fastloss.h" nogil:
    ctypedef Py_ssize_t fl_idx
    enum:
        FL_MAXDIM
        FL_F32
        FL_F64
        FL_SUM
        FL_VAL
        FL_GRAD
        FL_HESS
        FL_EW_NKERNELS
    ctypedef struct fl_params:
        double a, b, c, d
    ctypedef struct fl_ew_args:
        int ndim
        fl_idx shape[FL_MAXDIM]
        const void *p
        fl_idx sp[FL_MAXDIM]
        const void *t
        fl_idx st[FL_MAXDIM]
        const void *w
        fl_idx sw[FL_MAXDIM]
        const void *x
        fl_idx sx[FL_MAXDIM]
        void *val
        void *grad
        void *hess
        double scale
        int stream
    double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                     const fl_ew_args *a, int nthreads)
    const char *fl_ew_kernel_name(int k)
    enum:
        FL_CLS_CE
        FL_CLS_NLL
        FL_CLS_MARGIN
    ctypedef long long int64_t
    ctypedef struct fl_cls_args:
        fl_idx outer, C, inner
        const void *z
        const int64_t *y
        const void *tp
        const void *sw
        const void *cw
        double smoothing
        int has_ignore
        int64_t ignore_index
        double margin
        int power
        void *val
        void *grad
        void *hess
        double scale
    fl_idx fl_cls_prepass(int dtype, const fl_cls_args *a, double *wsum)
    double fl_cls_run(int dtype, int kernel, const fl_cls_args *a, int nthreads,
                      int *status)
    void fl_set_global_threads(int n)
    int fl_get_global_threads()
    void fl_set_thread_override(int n)
    int fl_get_thread_override()
    int fl_resolve_threads(int requested)
    int fl_have_openmp()
    int fl_openmp_version()
    const char *fl_simd_level()
    void fl_simd_loops_set(int on)
    void fl_set_thread_thresholds(long light, long heavy, long cls)
    void fl_get_thread_thresholds(long *out3)
    int fl_simd_loops_get()
    int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                        fl_idx n, double scale, void *val, void *grad, void *hess,
                        int reused, int nthreads, double *sum)
    int fl_outside_f32(const float *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
    int fl_outside_f64(const double *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
    int fl_notin_f32(const float *v, fl_idx n, const double *vals, int nvals)
    int fl_notin_f64(const double *v, fl_idx n, const double *vals, int nvals)
    void fl_probe_f32(const float *a, const float *b, float *o, fl_idx n, int nthreads)
    void fl_probe_f64(const double *a, const double *b, double *o, fl_idx n, int nthreads)

MODE_SUM = FL_SUM
MODE_VAL = FL_VAL
MODE_GRAD = FL_GRAD
MODE_HESS = FL_HESS

# method codes shared with _api
VALUE = 0
GRAD = 1
VALUE_AND_GRAD = 2
HESSIAN = 3

EW_KERNELS = {fl_ew_kernel_name(k).decode(): k for k in range(FL_EW_NKERNELS)}


# ---------------------------------------------------------------- threads

def set_global_threads(int n):
    fl_set_global_threads(n)

def get_global_threads():
    return fl_get_global_threads()

def set_thread_override(int n):
    fl_set_thread_override(n)

def get_thread_override():
    return fl_get_thread_override()

def resolve_threads(int requested=0):
    return fl_resolve_threads(requested)

def have_openmp():
    return bool(fl_have_openmp())

def openmp_version():
    return fl_openmp_version()

def simd_level():
    return fl_simd_level().decode()

def simd_loops(on=None):
    """Whether the hand-vectorized AVX-512 loops run (cross_entropy,
    multi_margin, nll's clearing, hinge / squared_hinge's packed labels):
    True where the CPU has them; ``simd_loops(False)`` switches to the
    portable loops (tests compare both).  Returns the previous setting."""
    prev = bool(fl_simd_loops_get())
    if on is not None:
        fl_simd_loops_set(1 if on else 0)
    return prev

fl_simd_loops_set(1)


def thread_thresholds(light=0, heavy=0, cls=0):
    """Elements per thread below which a call uses fewer threads, for the
    memory-bound elementwise kernels, the transcendental ones and the class
    losses; arguments > 0 set them (bench/sweep_threads.py measures them).
    Returns the previous (light, heavy, cls)."""
    cdef long prev[3]
    fl_get_thread_thresholds(prev)
    fl_set_thread_thresholds(light, heavy, cls)
    return (prev[0], prev[1], prev[2])


cdef inline int _thread_arg(int requested) noexcept:
    """What the C drivers take: an explicit count as is (1 in a forked
    child); the default (no n_threads=) as minus the resolved count, which
    the drivers' contention guard may lower while another process keeps the
    CPUs busy."""
    if requested > 0:
        return fl_resolve_threads(requested)
    return -fl_resolve_threads(0)


# ---------------------------------------------------------------- arrays

cdef int _dtype_code(cnp.ndarray a) except -1:
    cdef int tn = cnp.PyArray_TYPE(a)
    if tn == cnp.NPY_FLOAT:
        return FL_F32
    if tn == cnp.NPY_DOUBLE:
        return FL_F64
    raise TypeError("internal: kernels take float32 or float64 arrays")


cdef int _element_strides(cnp.ndarray a, int nd, fl_idx *out) except -1:
    """Strides of a in elements; a must be aligned (the caller ensures it)."""
    cdef int k
    cdef fl_idx isz = cnp.PyArray_ITEMSIZE(a)
    cdef cnp.npy_intp *st = cnp.PyArray_STRIDES(a)
    for k in range(nd):
        if st[k] % isz:
            raise ValueError("internal: misaligned stride")
        out[k] = st[k] // isz
    return 0


cdef void _coalesce(fl_ew_args *a, int nops) noexcept nogil:
    """Drop length-1 dimensions and merge neighbours that every operand (and
    the C-contiguous outputs) walks as one: fewer, longer inner loops."""
    cdef fl_idx *strides[4]
    strides[0] = a.sp
    strides[1] = a.st
    strides[2] = a.sw
    strides[3] = a.sx
    cdef int k, j, m = 0, ok
    # drop length-1 dims (keep at least one)
    for k in range(a.ndim):
        if a.shape[k] != 1:
            a.shape[m] = a.shape[k]
            for j in range(nops):
                strides[j][m] = strides[j][k]
            m += 1
    if m == 0:
        a.shape[0] = 1
        for j in range(nops):
            strides[j][0] = 0
        m = 1
    a.ndim = m
    # merge dim k into k+1 (from the right) when strides chain
    m = 0
    for k in range(1, a.ndim):
        ok = 1
        for j in range(nops):
            if strides[j][m] != strides[j][k] * a.shape[k]:
                ok = 0
                break
        if ok:
            a.shape[m] *= a.shape[k]
            for j in range(nops):
                strides[j][m] = strides[j][k]
        else:
            m += 1
            a.shape[m] = a.shape[k]
            for j in range(nops):
                strides[j][m] = strides[j][k]
    a.ndim = m + 1


def ew_call(int kernel, int mode, tuple params, cnp.ndarray p, cnp.ndarray t,
            object w, object x, object val, object grad, object hess,
            double scale, int nthreads):
    """Run one elementwise kernel.  p, t (and w, x when given) have one shape
    and the compute dtype; val/grad/hess are C-contiguous of that shape and
    dtype or None.  Returns the weighted sum when mode has MODE_SUM."""
    cdef fl_ew_args a
    cdef fl_params prm
    cdef int nd = cnp.PyArray_NDIM(p), k
    cdef int dt = _dtype_code(p)
    cdef cnp.ndarray arr
    cdef double res
    if nd > FL_MAXDIM:
        raise ValueError("too many dimensions")
    prm.a, prm.b, prm.c, prm.d = params
    memset(&a, 0, sizeof(a))
    a.ndim = nd
    for k in range(nd):
        a.shape[k] = cnp.PyArray_DIMS(p)[k]
    _element_strides(p, nd, a.sp)
    a.p = cnp.PyArray_DATA(p)
    _element_strides(t, nd, a.st)
    a.t = cnp.PyArray_DATA(t)
    if w is not None:
        arr = w
        _element_strides(arr, nd, a.sw)
        a.w = cnp.PyArray_DATA(arr)
    if x is not None:
        arr = x
        _element_strides(arr, nd, a.sx)
        a.x = cnp.PyArray_DATA(arr)
    if val is not None:
        a.val = cnp.PyArray_DATA(<cnp.ndarray?>val)
    if grad is not None:
        a.grad = cnp.PyArray_DATA(<cnp.ndarray?>grad)
    if hess is not None:
        a.hess = cnp.PyArray_DATA(<cnp.ndarray?>hess)
    a.scale = scale
    nthreads = _thread_arg(nthreads)
    with nogil:
        _coalesce(&a, 4)
        res = fl_ew_run(dt, kernel, mode, &prm, &a, nthreads)
    return res


CLS_KERNELS = {"ce": FL_CLS_CE, "nll": FL_CLS_NLL, "margin": FL_CLS_MARGIN}


cdef void *_data_or_null(object a) except? NULL:
    if a is None:
        return NULL
    # checked cast: anything but an ndarray (a NumPy scalar from a 0-d
    # ufunc result, say) is a TypeError, never a wild pointer
    return cnp.PyArray_DATA(<cnp.ndarray?>a)


cdef int _fill_cls(fl_cls_args *a, cnp.ndarray z, fl_idx outer, fl_idx C, fl_idx inner,
                   object y, object tp, object sw, object cw, double smoothing,
                   object ignore_index, double margin, int power) except -1:
    memset(a, 0, sizeof(fl_cls_args))
    a.outer = outer
    a.C = C
    a.inner = inner
    a.z = cnp.PyArray_DATA(z)
    a.y = <const int64_t *>_data_or_null(y)
    a.tp = _data_or_null(tp)
    a.sw = _data_or_null(sw)
    a.cw = _data_or_null(cw)
    a.smoothing = smoothing
    a.has_ignore = ignore_index is not None
    a.ignore_index = ignore_index if ignore_index is not None else 0
    a.margin = margin
    a.power = power
    return 0


def cls_prepass(cnp.ndarray z, fl_idx outer, fl_idx C, fl_idx inner, object y,
                object sw, object cw, object ignore_index):
    """Validate the labels y; returns (index of the first bad label or -1,
    sum of s * cw[y] over the samples not ignored)."""
    cdef fl_cls_args a
    cdef double wsum = 0.0
    cdef fl_idx bad
    _fill_cls(&a, z, outer, C, inner, y, None, sw, cw, 0.0, ignore_index, 0.0, 1)
    cdef int dt = _dtype_code(z)
    with nogil:
        bad = fl_cls_prepass(dt, &a, &wsum)
    return bad, wsum


def cls_call(int kernel, cnp.ndarray z, fl_idx outer, fl_idx C, fl_idx inner,
             object y, object tp, object sw, object cw, double smoothing,
             object ignore_index, double margin, int power,
             object val, object grad, object hess, double scale, int nthreads):
    """Run one class-axis kernel on checked, C-contiguous arrays."""
    cdef fl_cls_args a
    cdef int status = 0
    cdef double res
    _fill_cls(&a, z, outer, C, inner, y, tp, sw, cw, smoothing, ignore_index, margin, power)
    a.val = _data_or_null(val)
    a.grad = _data_or_null(grad)
    a.hess = _data_or_null(hess)
    a.scale = scale
    cdef int dt = _dtype_code(z)
    nthreads = _thread_arg(nthreads)
    with nogil:
        res = fl_cls_run(dt, kernel, &a, nthreads, &status)
    if status != 0:
        raise MemoryError("fastloss: no memory for work buffers")
    return res


def probe(cnp.ndarray a, cnp.ndarray b, cnp.ndarray out, int nthreads=0):
    """The bandwidth roofline loop: out = a - b over contiguous arrays."""
    cdef fl_idx n = cnp.PyArray_SIZE(out)
    if not (cnp.PyArray_ISCARRAY_RO(a) and cnp.PyArray_ISCARRAY_RO(b)
            and cnp.PyArray_ISCARRAY(out)):
        raise ValueError("probe needs C-contiguous arrays")
    if cnp.PyArray_SIZE(a) != n or cnp.PyArray_SIZE(b) != n:
        raise ValueError("probe needs arrays of one size")
    if cnp.PyArray_TYPE(a) != cnp.PyArray_TYPE(out) or cnp.PyArray_TYPE(b) != cnp.PyArray_TYPE(out):
        raise TypeError("probe needs arrays of one dtype")
    cdef int dt = _dtype_code(out)
    cdef void *pa = cnp.PyArray_DATA(a)
    cdef void *pb = cnp.PyArray_DATA(b)
    cdef void *po = cnp.PyArray_DATA(out)
    nthreads = _thread_arg(nthreads)
    with nogil:
        if dt == FL_F32:
            fl_probe_f32(<float *>pa, <float *>pb, <float *>po, n, nthreads)
        else:
            fl_probe_f64(<double *>pa, <double *>pb, <double *>po, n, nthreads)


# ---------------------------------------------------------------- Loss

cdef object _slow_path = None

def set_slow_path(func):
    """_api registers its generic implementation here at import."""
    global _slow_path
    _slow_path = func

cdef object _MISS = object()
cdef object _S_OUT = "out"
cdef object _S_RED = "reduction"
cdef object _S_NT = "n_threads"
cdef object _S_SW = "sample_weight"
cdef object _S_AX = "axis"
cdef object _S_MEAN = "mean"
cdef object _S_SUM = "sum"
cdef object _S_NONE = "none"


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Whether two C-contiguous arrays share bytes."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    cdef char *a1 = a0 + cnp.PyArray_NBYTES(a)
    cdef char *b1 = b0 + cnp.PyArray_NBYTES(b)
    return a0 < b1 and b0 < a1


cdef class Loss:
    """A loss function: call it for the value; ``.grad``, ``.value_and_grad``
    and ``.hessian`` for derivatives with respect to ``y_pred``;
    ``.reference`` for the pure-NumPy reference with the same signature.

    Instances are made from the table in ``fastloss._table``; see
    ``fastloss.losses``.
    """
    cdef readonly str name
    cdef readonly object spec
    cdef readonly object reference
    cdef readonly str family
    cdef int kernel          # elementwise kernel id for the fast path, -1: none
    cdef int cls_kernel      # class-axis kernel id for the fast path, -1: none
    cdef double cls_margin   # multi_margin defaults
    cdef int cls_power
    cdef fl_params dparams32 # default parameters, packed for the float32 kernels
    cdef fl_params dparams64 # ... and for the float64 kernels
    cdef object pack_params  # spec.pack_fast(kwargs, dtype) -> params tuple or None
    cdef frozenset param_names
    cdef frozenset none_ok   # parameters for which None is the default (no error)
    cdef tuple checks        # data checks: ((0 y_pred | 1 y_true, lo, hi, lo_open,
                             #   hi_open, allowed values or None), ...)
    cdef bint sign_labels    # one check, a label set on y_true: try fl_ew_run_signs
                             #   (it takes hinge / squared_hinge, -1 for others)

    def __init__(self, spec, reference=None):
        self.name = spec.name
        self.spec = spec
        self.family = spec.family
        self.reference = reference
        self.kernel = spec.fast_kernel
        self.pack_params = spec.pack_fast
        self.param_names = frozenset(spec.param_names)
        self.none_ok = frozenset([p.name for p in spec.params if p.allow_none]
                                 + [a.name for a in spec.array_params])
        if self.kernel >= 0:
            self.dparams32.a, self.dparams32.b, self.dparams32.c, self.dparams32.d = \
                spec.pack_fast({}, np.float32)
            self.dparams64.a, self.dparams64.b, self.dparams64.c, self.dparams64.d = \
                spec.pack_fast({}, np.float64)
        else:
            self.kernel = -1
        self.checks = tuple((0 if c.arg == "y_pred" else 1, c.domain.lo, c.domain.hi,
                             c.domain.lo_open, c.domain.hi_open,
                             None if c.domain.values is None else
                             np.array(c.domain.values, dtype=np.float64))
                            for c in spec.checks)
        # the C path checks the set {-1, 0, 1} itself: only for that set
        self.sign_labels = (len(self.checks) == 1 and self.checks[0][0] == 1
                            and self.checks[0][5] is not None
                            and sorted(self.checks[0][5].tolist()) == [-1.0, 0.0, 1.0])
        self.cls_kernel = CLS_KERNELS[spec.kernel] if spec.family == "class" else -1
        defaults = {p.name: p.default for p in spec.params}
        self.cls_margin = defaults.get("margin", 0.0)
        self.cls_power = defaults.get("power", 1)

    def __repr__(self):
        return f"<fastloss.Loss {self.name}>"

    def __reduce__(self):
        return (_get_loss, (self.name,))

    def __call__(self, y_pred, y_true, **kwargs):
        r = self._fast(VALUE, y_pred, y_true, kwargs)
        if r is _MISS:
            return _slow_path(self, VALUE, y_pred, y_true, kwargs)
        return r

    def grad(self, y_pred, y_true, **kwargs):
        """d(value)/d(y_pred): the vector-Jacobian product of the returned
        value with ones, of y_pred's shape and compute dtype."""
        r = self._fast(GRAD, y_pred, y_true, kwargs)
        if r is _MISS:
            return _slow_path(self, GRAD, y_pred, y_true, kwargs)
        return r

    def value_and_grad(self, y_pred, y_true, **kwargs):
        """``(value, grad)`` computed in one fused pass over memory."""
        r = self._fast(VALUE_AND_GRAD, y_pred, y_true, kwargs)
        if r is _MISS:
            return _slow_path(self, VALUE_AND_GRAD, y_pred, y_true, kwargs)
        return r

    def hessian(self, y_pred, y_true, **kwargs):
        """The diagonal of the Hessian of the value with respect to y_pred,
        scaled as ``grad`` is."""
        r = self._fast(HESSIAN, y_pred, y_true, kwargs)
        if r is _MISS:
            return _slow_path(self, HESSIAN, y_pred, y_true, kwargs)
        return r

    cdef object _fast_kwargs(self, dict kwargs, int *reduction, int *nthreads,
                             bint *has_params):
        """The keyword arguments of both fast paths: sets *reduction (0 mean,
        1 sum, 2 none), *nthreads, *has_params (a loss parameter was given;
        the caller checks it) and returns out= (None if not given), or _MISS
        when the call needs the generic path (which reports any error)."""
        cdef object out = None
        cdef PyObject *pk
        cdef PyObject *pv
        cdef Py_ssize_t pos = 0
        reduction[0] = 0
        nthreads[0] = 0
        has_params[0] = False
        if not kwargs:
            return None
        while PyDict_Next(kwargs, &pos, &pk, &pv):
            key = <object>pk
            v = <object>pv
            if key == _S_OUT:
                out = v
            elif key == _S_RED:
                if v == _S_MEAN:
                    reduction[0] = 0
                elif v == _S_SUM:
                    reduction[0] = 1
                elif v == _S_NONE:
                    reduction[0] = 2
                else:
                    return _MISS
            elif key == _S_NT:
                if v is None:
                    pass
                elif type(v) is int and v >= 1:
                    nthreads[0] = v
                else:
                    return _MISS
            elif key == _S_SW or key == _S_AX:
                if v is not None:
                    return _MISS
            elif key in self.param_names:
                has_params[0] = True
            else:
                return _MISS          # the generic path raises TypeError
        return out

    cdef object _fast(self, int method, object y_pred, object y_true, dict kwargs):
        """The trainer's call without Python-level machinery, or _MISS.

        Taken when y_pred and y_true are C-contiguous aligned native
        float32/float64 ndarrays of one dtype and shape with at least one
        element, no weights or axis, and ``out`` (if any) is a fitting
        buffer that overlaps neither input.  Anything else -- including
        every error -- goes to the generic path, which checks and reports."""
        if type(y_pred) is not cnp.ndarray or type(y_true) is not cnp.ndarray:
            return _MISS
        if self.cls_kernel >= 0:
            return self._fast_cls(method, <cnp.ndarray>y_pred, <cnp.ndarray>y_true, kwargs)
        if self.kernel < 0:
            return _MISS
        cdef cnp.ndarray p = <cnp.ndarray>y_pred
        cdef cnp.ndarray t = <cnp.ndarray>y_true
        cdef int tn = cnp.PyArray_TYPE(p)
        if (tn != cnp.NPY_FLOAT and tn != cnp.NPY_DOUBLE) or cnp.PyArray_TYPE(t) != tn:
            return _MISS
        if not (cnp.PyArray_ISCARRAY_RO(p) and cnp.PyArray_ISCARRAY_RO(t)
                and cnp.PyArray_ISNOTSWAPPED(p) and cnp.PyArray_ISNOTSWAPPED(t)):
            return _MISS
        cdef int nd = cnp.PyArray_NDIM(p), k
        if cnp.PyArray_NDIM(t) != nd:
            return _MISS
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(p)
        cdef cnp.npy_intp *tdims = cnp.PyArray_DIMS(t)
        for k in range(nd):
            if dims[k] != tdims[k]:
                return _MISS
        cdef fl_idx n = cnp.PyArray_SIZE(p)
        if n == 0:
            return _MISS

        cdef int reduction = 0           # 0 mean, 1 sum, 2 none
        cdef int nthreads = 0
        cdef bint has_params = False
        cdef fl_params prm = self.dparams32 if tn == cnp.NPY_FLOAT else self.dparams64
        cdef object out = self._fast_kwargs(kwargs, &reduction, &nthreads, &has_params)
        if out is _MISS:
            return _MISS
        if has_params:
            # raises on a bad value, as the generic path does
            packed = self.pack_params(kwargs, np.float32 if tn == cnp.NPY_FLOAT else np.float64)
            if packed is None:
                return _MISS
            prm.a, prm.b, prm.c, prm.d = packed

        cdef cnp.ndarray o
        if out is not None:
            if method == VALUE or type(out) is not cnp.ndarray:
                return _MISS
            o = <cnp.ndarray>out
            if (cnp.PyArray_TYPE(o) != tn or not cnp.PyArray_ISCARRAY(o)
                    or not cnp.PyArray_ISNOTSWAPPED(o) or cnp.PyArray_NDIM(o) != nd):
                return _MISS
            for k in range(nd):
                if cnp.PyArray_DIMS(o)[k] != dims[k]:
                    return _MISS
            if _overlaps(o, p) or _overlaps(o, t):
                return _MISS

        cdef int dt = FL_F32 if tn == cnp.NPY_FLOAT else FL_F64
        cdef int mode
        cdef double scale = 1.0 / <double>n if reduction == 0 else 1.0
        cdef object val = None
        cdef object deriv = None
        if method == VALUE:
            mode = FL_VAL if reduction == 2 else FL_SUM
        elif method == GRAD:
            mode = FL_GRAD
        elif method == VALUE_AND_GRAD:
            mode = (FL_VAL if reduction == 2 else FL_SUM) | FL_GRAD
        else:
            mode = FL_HESS
        if mode & FL_VAL:
            val = cnp.PyArray_EMPTY(nd, dims, tn, 0)
        if method != VALUE:
            deriv = out if out is not None else cnp.PyArray_EMPTY(nd, dims, tn, 0)

        cdef int kern = self.kernel
        cdef double s = 0.0
        cdef float sf
        cdef void *cp
        cdef void *vp = cnp.PyArray_DATA(<cnp.ndarray>val) if val is not None else NULL
        cdef void *gp = NULL
        cdef void *hp = NULL
        if deriv is not None:
            if method == HESSIAN:
                hp = cnp.PyArray_DATA(<cnp.ndarray>deriv)
            else:
                gp = cnp.PyArray_DATA(<cnp.ndarray>deriv)
        nthreads = _thread_arg(nthreads)
        cdef int bad
        cdef int done = 0
        cdef cnp.ndarray vals
        if self.sign_labels:
            # the label check and the kernel in one: the check packs the
            # labels into bits that the kernel reads (sign_labels.c)
            cp = cnp.PyArray_DATA(t)
            if n >= 16384:
                with nogil:
                    bad = fl_ew_run_signs(dt, kern, mode, cnp.PyArray_DATA(p), cp, n, scale,
                                          vp, gp, hp, out is not None, nthreads, &s)
            else:
                bad = fl_ew_run_signs(dt, kern, mode, cnp.PyArray_DATA(p), cp, n, scale,
                                      vp, gp, hp, out is not None, nthreads, &s)
            if bad == 1:
                return _MISS          # the generic path reports the label (or runs NaN labels)
            done = bad == 0
        if not done:
            for chk in self.checks:   # data checks; a failure is reported by the generic path
                cp = cnp.PyArray_DATA(p) if chk[0] == 0 else cnp.PyArray_DATA(t)
                if chk[5] is not None:    # a finite set of allowed values
                    vals = <cnp.ndarray>chk[5]
                    if dt == FL_F32:
                        bad = fl_notin_f32(<const float *>cp, n, <const double *>cnp.PyArray_DATA(vals),
                                           <int>cnp.PyArray_SIZE(vals))
                    else:
                        bad = fl_notin_f64(<const double *>cp, n, <const double *>cnp.PyArray_DATA(vals),
                                           <int>cnp.PyArray_SIZE(vals))
                elif dt == FL_F32:
                    bad = fl_outside_f32(<const float *>cp, n, chk[1], chk[2], chk[3], chk[4])
                else:
                    bad = fl_outside_f64(<const double *>cp, n, chk[1], chk[2], chk[3], chk[4])
                if bad:
                    return _MISS

        cdef fl_ew_args a
        if not done:
            a.ndim = 1
            a.shape[0] = n
            a.p = cnp.PyArray_DATA(p)
            a.sp[0] = 1
            a.t = cnp.PyArray_DATA(t)
            a.st[0] = 1
            a.w = NULL
            a.x = NULL
            a.sw[0] = 0
            a.sx[0] = 0
            a.val = vp
            a.grad = gp
            a.hess = hp
            a.scale = scale
            a.stream = out is not None
            if n >= 16384:
                with nogil:
                    s = fl_ew_run(dt, kern, mode, &prm, &a, nthreads)
            else:
                s = fl_ew_run(dt, kern, mode, &prm, &a, nthreads)

        if method == GRAD or method == HESSIAN:
            return deriv
        if reduction == 2:
            value = val
        else:
            if reduction == 0:
                s = s / <double>n
            if dt == FL_F32:
                sf = <float>s
                value = PyArray_Scalar(&sf, <void *>cnp.PyArray_DESCR(p), None)
            else:
                value = PyArray_Scalar(&s, <void *>cnp.PyArray_DESCR(p), None)
        if method == VALUE:
            return value
        return (value, deriv)


    cdef object _fast_cls(self, int method, cnp.ndarray z, cnp.ndarray y, dict kwargs):
        """The trainer's class-loss call: 2-D C-contiguous float logits with
        the classes last, 1-D int64 labels, default parameters; or _MISS.
        Labels are validated (in C) before anything is written; a bad label
        goes to the generic path, which reports it."""
        cdef int tn = cnp.PyArray_TYPE(z)
        if tn != cnp.NPY_FLOAT and tn != cnp.NPY_DOUBLE:
            return _MISS
        if not (cnp.PyArray_ISCARRAY_RO(z) and cnp.PyArray_ISNOTSWAPPED(z)
                and cnp.PyArray_NDIM(z) == 2):
            return _MISS
        if (cnp.PyArray_TYPE(y) != cnp.NPY_INT64 or cnp.PyArray_NDIM(y) != 1
                or not cnp.PyArray_ISCARRAY_RO(y) or not cnp.PyArray_ISNOTSWAPPED(y)):
            return _MISS
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(z)
        cdef fl_idx N = dims[0], C = dims[1]
        if cnp.PyArray_DIMS(y)[0] != N or N == 0 or C == 0:
            return _MISS
        cdef int reduction = 0
        cdef int nthreads = 0
        cdef bint has_params = False
        cdef object out = self._fast_kwargs(kwargs, &reduction, &nthreads, &has_params)
        if out is _MISS:
            return _MISS
        if has_params:
            # only the defaults run here: a parameter given as None where None
            # is its default (ignore_index, class_weight); anything else --
            # other values, and None where it is an error -- goes to the
            # generic path, which checks and reports it
            for key in self.param_names:
                if key in kwargs and (kwargs[key] is not None or key not in self.none_ok):
                    return _MISS
        cdef cnp.ndarray o
        if out is not None:
            if method == VALUE or type(out) is not cnp.ndarray:
                return _MISS
            o = <cnp.ndarray>out
            if (cnp.PyArray_TYPE(o) != tn or not cnp.PyArray_ISCARRAY(o)
                    or not cnp.PyArray_ISNOTSWAPPED(o) or cnp.PyArray_NDIM(o) != 2
                    or cnp.PyArray_DIMS(o)[0] != N or cnp.PyArray_DIMS(o)[1] != C):
                return _MISS
            if _overlaps(o, z) or _overlaps(o, y):
                return _MISS
        cdef fl_cls_args a
        memset(&a, 0, sizeof(a))
        a.outer = N
        a.C = C
        a.inner = 1
        a.z = cnp.PyArray_DATA(z)
        a.y = <const int64_t *>cnp.PyArray_DATA(y)
        a.margin = self.cls_margin
        a.power = self.cls_power
        cdef int dt = FL_F32 if tn == cnp.NPY_FLOAT else FL_F64
        cdef double wsum = 0.0
        cdef fl_idx bad = fl_cls_prepass(dt, &a, &wsum)
        if bad >= 0:
            return _MISS
        if self.cls_kernel == FL_CLS_MARGIN:
            wsum = <double>N
        if wsum == 0.0:
            return _MISS
        a.scale = 1.0 / wsum if reduction == 0 else 1.0
        cdef object val = None
        cdef object deriv = None
        if reduction == 2 and method != GRAD and method != HESSIAN:
            val = cnp.PyArray_EMPTY(1, dims, tn, 0)
            a.val = cnp.PyArray_DATA(<cnp.ndarray>val)
        if method != VALUE:
            deriv = out if out is not None else cnp.PyArray_EMPTY(2, dims, tn, 0)
            if method == HESSIAN:
                a.hess = cnp.PyArray_DATA(<cnp.ndarray>deriv)
            else:
                a.grad = cnp.PyArray_DATA(<cnp.ndarray>deriv)
        cdef int kern = self.cls_kernel
        cdef int status = 0
        cdef double s
        cdef float sf
        nthreads = _thread_arg(nthreads)
        if N * C >= 16384:
            with nogil:
                s = fl_cls_run(dt, kern, &a, nthreads, &status)
        else:
            s = fl_cls_run(dt, kern, &a, nthreads, &status)
        if status != 0:
            raise MemoryError("fastloss: no memory for work buffers")
        if method == GRAD or method == HESSIAN:
            return deriv
        if reduction == 2:
            value = val
        else:
            if reduction == 0:
                s = s / wsum
            if dt == FL_F32:
                sf = <float>s
                value = PyArray_Scalar(&sf, <void *>cnp.PyArray_DESCR(z), None)
            else:
                value = PyArray_Scalar(&s, <void *>cnp.PyArray_DESCR(z), None)
        if method == VALUE:
            return value
        return (value, deriv)


cdef object _loss_lookup = None

def set_loss_lookup(func):
    global _loss_lookup
    _loss_lookup = func

def _get_loss(name):
    return _loss_lookup(name)


# ---------------------------------------------------------------- rows

cdef extern from "fastloss.h" nogil:
    enum:
        FL_ROW_NKERNELS
        FL_ROW_MAXIN
    ctypedef struct fl_row_args:
        fl_idx n, D
        const void *x[3]
        fl_idx sx[3]
        const void *y
        fl_idx sy
        const void *sw
        fl_idx ssw
        double prm[4]
        void *val
        void *grad[3]
        double scale
    double fl_row_run(int dtype, int kernel, int mode, const fl_row_args *a, int nthreads)
    const char *fl_row_kernel_name(int k)
    int fl_row_kernel_inputs(int k)
    int fl_row_kernel_labels(int k)

ROW_KERNELS = {fl_row_kernel_name(k).decode(): k for k in range(FL_ROW_NKERNELS)}
# name -> (number of row inputs, whether it reads labels y)
ROW_KERNEL_INFO = {fl_row_kernel_name(k).decode():
                   (fl_row_kernel_inputs(k), bool(fl_row_kernel_labels(k)))
                   for k in range(FL_ROW_NKERNELS)}


cdef cnp.ndarray _row_operand(object a, int tn, int ndim, bint writable, str what):
    """a as a C-contiguous, aligned ndarray of type tn and ndim dimensions
    (no copy: anything else is an error)."""
    if not isinstance(a, cnp.ndarray):
        raise TypeError(f"row_call: {what} must be an ndarray, not {type(a).__name__}")
    cdef cnp.ndarray arr = <cnp.ndarray>a
    if cnp.PyArray_TYPE(arr) != tn:
        raise TypeError(f"row_call: {what} has dtype {(<object>arr).dtype}, expected "
                        f"{'float32' if tn == cnp.NPY_FLOAT else 'float64'} (one dtype for all)")
    if cnp.PyArray_NDIM(arr) != ndim:
        raise ValueError(f"row_call: {what} must have {ndim} dimension(s), has shape {(<object>arr).shape}")
    if not (cnp.PyArray_ISCARRAY_RO(arr) if not writable else cnp.PyArray_ISCARRAY(arr)):
        raise ValueError(f"row_call: {what} must be C-contiguous and aligned"
                         + (" and writable" if writable else ""))
    return arr


def row_call(int kernel, int mode, fl_idx n, tuple prm, list xs, object y, object sw,
             object val, list grads, double scale, int nthreads):
    """Run one row kernel (rows.h).

    kernel: a value of ROW_KERNELS; mode: MODE_SUM | MODE_VAL | MODE_GRAD
    bits; n: the number of samples (>= 0); prm: up to 4 floats (rows.h lists
    the slots); xs: the kernel's row inputs, C-contiguous float32 or float64
    arrays (one dtype for all) of shape (n, D), or (1, D) for one row
    broadcast to every sample; y (labels,
    kernels that read them, else None) and sw (weights or None): 1-d of
    length n, or 1 (broadcast); val: None or a writable C-contiguous (n,)
    array (given exactly when mode has MODE_VAL); grads: one entry per row
    input, None or a writable C-contiguous (n, D) array (at least one given
    exactly when mode has MODE_GRAD).  Outputs must not overlap the inputs
    or each other.  Returns sum_i sw_i * l_i when mode has MODE_SUM, else
    0.0."""
    cdef fl_row_args a
    cdef int k, nin, tn, dt
    cdef fl_idx D = -1, r
    cdef cnp.ndarray arr, x0
    cdef list ins = [], outs = []
    cdef double res
    if kernel < 0 or kernel >= FL_ROW_NKERNELS:
        raise ValueError(f"row_call: unknown row kernel {kernel}")
    name = fl_row_kernel_name(kernel).decode()
    nin = fl_row_kernel_inputs(kernel)
    if mode & ~(FL_SUM | FL_VAL | FL_GRAD) or mode == 0:
        raise ValueError(f"row_call: bad mode {mode}")
    if len(prm) > 4:
        raise ValueError("row_call: at most 4 parameters")
    if len(xs) != nin:
        raise ValueError(f"row_call: {name} takes {nin} row inputs, got {len(xs)}")
    if len(grads) != nin:
        raise ValueError(f"row_call: {name} takes {nin} gradient slots, got {len(grads)}")
    if n < 0:
        raise ValueError(f"row_call: negative sample count {n}")
    memset(&a, 0, sizeof(a))
    for k in range(len(prm)):
        a.prm[k] = float(prm[k])
    if not isinstance(xs[0], cnp.ndarray):
        raise TypeError(f"row_call: xs[0] must be an ndarray, not {type(xs[0]).__name__}")
    tn = cnp.PyArray_TYPE(<cnp.ndarray>xs[0])
    if tn != cnp.NPY_FLOAT and tn != cnp.NPY_DOUBLE:
        raise TypeError(f"row_call: row inputs must be float32 or float64, not {xs[0].dtype}")
    dt = FL_F32 if tn == cnp.NPY_FLOAT else FL_F64
    # the row inputs: (n, D) or (1, D)
    for k in range(nin):
        arr = _row_operand(xs[k], tn, 2, False, f"xs[{k}]")
        ins.append(arr)
        r = cnp.PyArray_DIMS(arr)[0]
        if D < 0:
            D = cnp.PyArray_DIMS(arr)[1]
        elif cnp.PyArray_DIMS(arr)[1] != D:
            raise ValueError(f"row_call: row lengths differ: {[x.shape for x in xs]}")
        if r != 1 and r != n:
            raise ValueError(f"row_call: row inputs {[x.shape for x in xs]} do not "
                             f"have {n} or 1 rows")
    a.n = n
    a.D = D
    for k in range(nin):
        arr = ins[k]
        a.x[k] = cnp.PyArray_DATA(arr)
        a.sx[k] = D if cnp.PyArray_DIMS(arr)[0] != 1 else 0
    # labels, weights: (n,) or (1,)
    if fl_row_kernel_labels(kernel):
        if y is None:
            raise ValueError(f"row_call: {name} needs labels y")
        arr = _row_operand(y, tn, 1, False, "y")
        if cnp.PyArray_DIMS(arr)[0] != n and cnp.PyArray_DIMS(arr)[0] != 1:
            raise ValueError(f"row_call: y has shape {(<object>arr).shape}, expected ({n},) or (1,)")
        ins.append(arr)
        a.y = cnp.PyArray_DATA(arr)
        a.sy = 1 if cnp.PyArray_DIMS(arr)[0] != 1 else 0
    elif y is not None:
        raise ValueError(f"row_call: {name} takes no labels")
    if sw is not None:
        arr = _row_operand(sw, tn, 1, False, "sw")
        if cnp.PyArray_DIMS(arr)[0] != n and cnp.PyArray_DIMS(arr)[0] != 1:
            raise ValueError(f"row_call: sw has shape {(<object>arr).shape}, expected ({n},) or (1,)")
        ins.append(arr)
        a.sw = cnp.PyArray_DATA(arr)
        a.ssw = 1 if cnp.PyArray_DIMS(arr)[0] != 1 else 0
    # outputs
    if (val is not None) != bool(mode & FL_VAL):
        raise ValueError("row_call: val must be given exactly when mode has MODE_VAL")
    if val is not None:
        arr = _row_operand(val, tn, 1, True, "val")
        if cnp.PyArray_DIMS(arr)[0] != n:
            raise ValueError(f"row_call: val has shape {(<object>arr).shape}, expected ({n},)")
        outs.append(arr)
        a.val = cnp.PyArray_DATA(arr)
    for k in range(nin):
        if grads[k] is None:
            continue
        arr = _row_operand(grads[k], tn, 2, True, f"grads[{k}]")
        if cnp.PyArray_DIMS(arr)[0] != n or cnp.PyArray_DIMS(arr)[1] != D:
            raise ValueError(f"row_call: grads[{k}] has shape {(<object>arr).shape}, expected ({n}, {D})")
        outs.append(arr)
        a.grad[k] = cnp.PyArray_DATA(arr)
    if (len(outs) - (val is not None) > 0) != bool(mode & FL_GRAD):
        raise ValueError("row_call: gradient arrays must be given exactly when mode has MODE_GRAD")
    for k in range(len(outs)):
        for arr in ins:
            if _overlaps(<cnp.ndarray>outs[k], arr):
                raise ValueError("row_call: an output overlaps an input")
        for r in range(k):
            if _overlaps(<cnp.ndarray>outs[k], <cnp.ndarray>outs[r]):
                raise ValueError("row_call: two outputs overlap")
    a.scale = scale
    nthreads = _thread_arg(nthreads)
    if n * D >= 16384:
        with nogil:
            res = fl_row_run(dt, kernel, mode, &a, nthreads)
    else:
        res = fl_row_run(dt, kernel, mode, &a, nthreads)
    return res
