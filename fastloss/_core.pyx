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
from libc.math cimport fabs
from libc.float cimport FLT_MIN, FLT_MAX, DBL_MIN, DBL_MAX

import numpy as np

cnp.import_array()

cdef extern from "numpy/arrayobject.h":
    object PyArray_Scalar(void *data, void *descr, object base)
    enum:
        NPY_HALF_ "NPY_HALF"

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
    enum:
        FL_EW_P
        FL_EW_T
        FL_EW_X
        FL_EW_W
        FL_EW_NOPS
        FL_EW_MAXD
    ctypedef struct fl_ew_args:
        int ndim
        fl_idx shape[FL_MAXDIM]
        const void *in_ "in"[4]
        fl_idx s[4][FL_MAXDIM]
        int type[4]
        void *val
        void *grad[2]
        void *hess[2]
        double scale
        int stream
        int chk_op
        int chk_open
        double chk_lo
        double chk_hi
        int *chk_bad
    double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                     const fl_ew_args *a, int nthreads)
    const char *fl_ew_kernel_name(int k)
    int fl_ew_kernel_nd(int k)
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
    int fl_simd_select(const char *level)
    const char *fl_simd_level()
    const char *fl_simd_isa()
    const char *fl_simd_levels()
    void fl_simd_loops_set(int on)
    void fl_set_thread_thresholds(long light, long heavy, long cls)
    void fl_get_thread_thresholds(long *out3)
    int fl_simd_loops_get()
    int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                        fl_idx n, double scale, void *val, void *grad, void *hess,
                        int reused, int nthreads, double *sum)
    enum:
        FL_E_OWN
        FL_E_F32
        FL_E_F64
        FL_E_I8
        FL_E_I16
        FL_E_I32
        FL_E_I64
        FL_E_U8
        FL_E_U16
        FL_E_U32
        FL_E_U64
    int fl_outside_typed(const void *v, int type, fl_idx n, fl_idx s, double lo, double hi,
                         int lo_open, int hi_open, const double *vals, int nvals)
    double fl_sum_typed(const void *v, int type, fl_idx n, fl_idx s)
    fl_idx fl_labels_i64(const void *src, int type, fl_idx n, int64_t *dst)
    ctypedef unsigned short uint16_t
    void fl_f32_to_f16(const float *src, uint16_t *dst, fl_idx n)
    void fl_f16_to_f32(const uint16_t *src, float *dst, fl_idx n)
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

# method codes shared with _call (C constants here: a module global compared
# with a C int costs a dictionary lookup and a Python comparison per use)
cdef enum:
    M_VALUE = 0
    M_GRAD = 1
    M_VALUE_AND_GRAD = 2
    M_HESSIAN = 3
    M_GRAD_AND_HESSIAN = 4
VALUE = M_VALUE
GRAD = M_GRAD
VALUE_AND_GRAD = M_VALUE_AND_GRAD
HESSIAN = M_HESSIAN
GRAD_AND_HESSIAN = M_GRAD_AND_HESSIAN

EW_KERNELS = {fl_ew_kernel_name(k).decode(): k for k in range(FL_EW_NKERNELS)}
EW_KERNEL_ND = {fl_ew_kernel_name(k).decode(): fl_ew_kernel_nd(k) for k in range(FL_EW_NKERNELS)}


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

SIMD_LEVELS = ("native", "avx512", "avx2", "sse2", "neon", "portable")


def simd_level():
    """The ISA level in use (SPEC section 9): "avx512", "avx2", "sse2",
    "neon", "generic" or "portable"."""
    return fl_simd_level().decode()

def simd_isa():
    """The level's instruction set, in words."""
    return fl_simd_isa().decode()

def simd_levels():
    """The levels this build can run on this CPU, best first."""
    return tuple(fl_simd_levels().decode().split(","))

def simd_select(level):
    """Switch every kernel to `level` (a name of SIMD_LEVELS); the import
    does it with FASTLOSS_SIMD.  Returns (the previous level, whether
    `level` was available: False means the CPU or build lacks it and the
    native level was chosen).  For tests and benchmarks: not for use while
    other threads call fastloss."""
    if not isinstance(level, str) or level.strip().lower() not in SIMD_LEVELS:
        raise ValueError(f"fastloss: unknown SIMD level {level!r}; choose one of "
                         f"{', '.join(SIMD_LEVELS)}")
    prev = simd_level()
    rc = fl_simd_select(level.strip().lower().encode())
    return prev, rc == 0

def simd_loops(on=None):
    """Whether the hand-vectorized loops of the level in use run
    (cross_entropy, multi_margin, nll's clearing, hinge / squared_hinge's
    packed labels); ``simd_loops(False)`` switches to the plain C loops of
    the same copy of the kernels (tests compare both bit for bit).  Returns
    the previous setting."""
    prev = bool(fl_simd_loops_get())
    if on is not None:
        fl_simd_loops_set(1 if on else 0)
    return prev


def _select_from_environment():
    import os as _os
    import warnings as _warnings
    want = _os.environ.get("FASTLOSS_SIMD", "").strip().lower() or "native"
    if want not in SIMD_LEVELS:
        raise ValueError(f"FASTLOSS_SIMD={_os.environ.get('FASTLOSS_SIMD')!r} is not a SIMD "
                         f"level; choose one of {', '.join(SIMD_LEVELS)}")
    if fl_simd_select(want.encode()) != 0:
        _warnings.warn(f"FASTLOSS_SIMD={want}: this CPU or build cannot run it (it runs "
                       f"{', '.join(simd_levels())}); using {simd_level()}",
                       RuntimeWarning, stacklevel=2)

_select_from_environment()


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


cdef int _elem_type(int tn) noexcept:
    """The fl_elem code of a NumPy type number, -1 for a type the drivers
    do not convert (float16, object, ...)."""
    if tn == cnp.NPY_FLOAT:
        return FL_E_F32
    if tn == cnp.NPY_DOUBLE:
        return FL_E_F64
    if tn == cnp.NPY_BOOL or tn == cnp.NPY_UINT8:
        return FL_E_U8
    if tn == cnp.NPY_INT8:
        return FL_E_I8
    if tn == cnp.NPY_INT16:
        return FL_E_I16
    if tn == cnp.NPY_INT32:
        return FL_E_I32
    if tn == cnp.NPY_INT64 or tn == cnp.NPY_LONGLONG:
        return FL_E_I64
    if tn == cnp.NPY_UINT16:
        return FL_E_U16
    if tn == cnp.NPY_UINT32:
        return FL_E_U32
    if tn == cnp.NPY_UINT64 or tn == cnp.NPY_ULONGLONG:
        return FL_E_U64
    return -1


def half_cast(a):
    """float32 <-> float16 in C (NumPy casts float16 element by element,
    and float32 -> float16 subnormals slowly): a new C-contiguous array."""
    # aligned too: np.ascontiguousarray keeps an unaligned contiguous array
    cdef cnp.ndarray x = np.require(a, requirements=["C", "A"])
    cdef cnp.ndarray y
    cdef fl_idx n = cnp.PyArray_SIZE(x)
    if cnp.PyArray_TYPE(x) == cnp.NPY_FLOAT:
        y = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), NPY_HALF_, 0)
        with nogil:
            fl_f32_to_f16(<const float *>cnp.PyArray_DATA(x), <uint16_t *>cnp.PyArray_DATA(y), n)
    elif cnp.PyArray_TYPE(x) == NPY_HALF_:
        y = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(x), cnp.PyArray_DIMS(x), cnp.NPY_FLOAT, 0)
        with nogil:
            fl_f16_to_f32(<const uint16_t *>cnp.PyArray_DATA(x), <float *>cnp.PyArray_DATA(y), n)
    else:
        raise TypeError("internal: half_cast takes float32 or float16")
    return y


def weight_sum(a):
    """The sum of a's values in C order, in double, by the same C routine as
    the fast path (a blocked pairwise sum): every call path divides a mean
    by the same bits."""
    cdef cnp.ndarray x = np.require(a, requirements=["C", "A"])
    cdef int e = _elem_type(cnp.PyArray_TYPE(x))
    if e < 0 or not cnp.PyArray_ISNOTSWAPPED(x):
        x = np.ascontiguousarray(a, dtype=np.float64)
        e = FL_E_F64
    cdef fl_idx n = cnp.PyArray_SIZE(x)
    cdef double r
    with nogil:
        r = fl_sum_typed(cnp.PyArray_DATA(x), e, n, 1)
    return r


def any_outside(a, double lo, double hi, bint lo_open, bint hi_open, object values):
    """Whether any value of the C-contiguous array a lies outside [lo, hi]
    (or, with values, outside that finite set); NaN passes.  None when a is
    not of a type the C check reads (the caller then checks in NumPy)."""
    cdef cnp.ndarray x = a
    cdef int e = _elem_type(cnp.PyArray_TYPE(x))
    if e < 0 or not cnp.PyArray_ISCARRAY_RO(x) or not cnp.PyArray_ISNOTSWAPPED(x):
        return None
    cdef cnp.ndarray vals
    cdef const double *vp = NULL
    cdef int nv = 0
    if values is not None:
        vals = np.ascontiguousarray(values, dtype=np.float64)
        vp = <const double *>cnp.PyArray_DATA(vals)
        nv = <int>cnp.PyArray_SIZE(vals)
        if nv < 1 or nv > 4:
            return None
    cdef int bad
    cdef fl_idx n = cnp.PyArray_SIZE(x)
    cdef const void *d = cnp.PyArray_DATA(x)
    with nogil:
        bad = fl_outside_typed(d, e, n, 1, lo, hi, lo_open, hi_open, vp, nv)
    return None if bad < 0 else bool(bad)


def converts(a):
    """Whether the elementwise driver reads an array of a's dtype as it is
    (converting as it loads): real dtypes, aligned, native byte order."""
    cdef cnp.ndarray x = a
    return (_elem_type(cnp.PyArray_TYPE(x)) >= 0 and cnp.PyArray_ISALIGNED(x)
            and cnp.PyArray_ISNOTSWAPPED(x))


cdef int _operand_type(cnp.ndarray a) except -1:
    cdef int e = _elem_type(cnp.PyArray_TYPE(a))
    if e < 0 or not cnp.PyArray_ISALIGNED(a) or not cnp.PyArray_ISNOTSWAPPED(a):
        raise TypeError("internal: an operand the driver cannot read")
    return e


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
    cdef int q
    for q in range(4):
        strides[q] = a.s[q]
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


cdef void *_data_or_null(object a) except? NULL:
    if a is None:
        return NULL
    # checked cast: anything but an ndarray (a NumPy scalar from a 0-d
    # ufunc result, say) is a TypeError, never a wild pointer
    return cnp.PyArray_DATA(<cnp.ndarray?>a)


def ew_call(int kernel, int mode, tuple params, cnp.ndarray p, cnp.ndarray t,
            object w, object x, object val, object grad, object hess,
            double scale, int nthreads, object grad1=None, object hess1=None):
    """Run one elementwise kernel.  p, t (and w, x when given) have one shape
    and the compute dtype; val and the derivative outputs (grad, hess: of
    the kernel's first differentiated input; grad1, hess1: of its second)
    are C-contiguous of that shape and dtype or None.  Returns the weighted
    sum when mode has MODE_SUM."""
    cdef fl_ew_args a
    cdef fl_params prm
    cdef int nd = cnp.PyArray_NDIM(p), k
    cdef int dt = _dtype_code(p)
    cdef cnp.ndarray arr
    cdef double res
    if nd > FL_MAXDIM:
        raise ValueError("too many dimensions")
    if kernel < 0 or kernel >= FL_EW_NKERNELS:
        raise ValueError("internal: no such kernel")
    cdef int q
    if (grad1 is not None or hess1 is not None) and fl_ew_kernel_nd(kernel) < 2:
        raise ValueError("internal: the kernel has one derivative output")
    prm.a, prm.b, prm.c, prm.d = params
    memset(&a, 0, sizeof(a))
    a.ndim = nd
    for k in range(nd):
        a.shape[k] = cnp.PyArray_DIMS(p)[k]
    _element_strides(p, nd, a.s[FL_EW_P])
    a.in_[FL_EW_P] = cnp.PyArray_DATA(p)
    for k, arr_ in ((FL_EW_T, t), (FL_EW_W, w), (FL_EW_X, x)):
        if arr_ is None:
            continue
        arr = arr_
        if cnp.PyArray_NDIM(arr) != nd:
            raise ValueError("internal: operands of different ranks")
        for q in range(nd):
            if cnp.PyArray_DIMS(arr)[q] != cnp.PyArray_DIMS(p)[q]:
                raise ValueError("internal: operands of different shapes")
        a.type[k] = _operand_type(arr)
        _element_strides(arr, nd, a.s[k])
        a.in_[k] = cnp.PyArray_DATA(arr)
    a.val = _data_or_null(val)
    a.grad[0] = _data_or_null(grad)
    a.hess[0] = _data_or_null(hess)
    a.grad[1] = _data_or_null(grad1)
    a.hess[1] = _data_or_null(hess1)
    a.scale = scale
    nthreads = _thread_arg(nthreads)
    with nogil:
        _coalesce(&a, 4)
        res = fl_ew_run(dt, kernel, mode, &prm, &a, nthreads)
    return res


CLS_KERNELS = {"ce": FL_CLS_CE, "nll": FL_CLS_NLL, "margin": FL_CLS_MARGIN}


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
cdef object _S_WRT = "wrt"
cdef object _S_BATCHMEAN = "batchmean"
cdef object _S_COT = "cotangent"
cdef object _S_MEAN = "mean"
cdef object _S_SUM = "sum"
cdef object _S_NONE = "none"


cdef inline bint _overlaps(cnp.ndarray a, cnp.ndarray b) noexcept:
    """Whether the byte ranges that a (C-contiguous) and b (any strides)
    span intersect."""
    cdef char *a0 = <char *>cnp.PyArray_DATA(a)
    cdef char *a1 = a0 + cnp.PyArray_NBYTES(a)
    cdef char *b0 = <char *>cnp.PyArray_DATA(b)
    cdef char *b1 = b0 + cnp.PyArray_ITEMSIZE(b)
    cdef int k
    cdef cnp.npy_intp st, ext
    for k in range(cnp.PyArray_NDIM(b)):
        if cnp.PyArray_DIMS(b)[k] == 0:
            return False
        st = cnp.PyArray_STRIDES(b)[k]
        ext = st * (cnp.PyArray_DIMS(b)[k] - 1)
        if ext < 0:
            b0 += ext
        else:
            b1 += ext
    return a0 < b1 and b0 < a1


cdef inline bint _strides_ok(cnp.ndarray a) noexcept:
    """Every stride a whole number of elements (aligned arrays almost always
    are; the drivers count strides in elements)."""
    cdef int k
    cdef cnp.npy_intp isz = cnp.PyArray_ITEMSIZE(a)
    for k in range(cnp.PyArray_NDIM(a)):
        if cnp.PyArray_STRIDES(a)[k] % isz:
            return False
    return True


cdef object _dlpack_array(object x):
    """A CPU tensor (torch, JAX) as an ndarray without a copy, or None (the
    generic path then reads it, or says why it cannot)."""
    if isinstance(x, np.ndarray) or not hasattr(x, "__dlpack__") or \
            getattr(x, "requires_grad", False):
        return None         # ndarray subclasses (masked arrays): the generic path
    if type(x).__module__ == "torch":
        # Tensor.numpy(): the same zero-copy view as DLPack at a tenth of its
        # cost (it refuses GPU tensors and dtypes NumPy lacks: generic path)
        try:
            return x.numpy()
        except Exception:
            return None
    try:
        dev = x.__dlpack_device__()
        if int(dev[0]) != 1:
            return None
        return np.from_dlpack(x)
    except Exception:
        return None


cdef object _fast_operand(object x, cnp.ndarray p, fl_ew_args *a, int k, double *scalar):
    """An operand of the fast path in slot k of a: an array of p's shape or
    0-d (any real dtype the driver converts, any strides) or a Python
    number (stored in *scalar); returns the array (None for a number) or
    _MISS."""
    cdef cnp.ndarray t
    cdef int nd = cnp.PyArray_NDIM(p), q, e
    if type(x) is float or (type(x) is int and -9007199254740992 <= x <= 9007199254740992):
        scalar[0] = <double>x
        a.in_[k] = scalar
        a.type[k] = FL_E_F64
        for q in range(nd):
            a.s[k][q] = 0
        return None
    if type(x) is cnp.ndarray:
        t = <cnp.ndarray>x
    else:
        t = _dlpack_array(x)
        if t is None:
            return _MISS
    e = _elem_type(cnp.PyArray_TYPE(t))
    if e < 0 or not cnp.PyArray_ISALIGNED(t) or not cnp.PyArray_ISNOTSWAPPED(t) \
            or not _strides_ok(t):
        return _MISS
    if cnp.PyArray_NDIM(t) == 0:
        for q in range(nd):
            a.s[k][q] = 0
    else:
        if cnp.PyArray_NDIM(t) != nd:
            return _MISS
        for q in range(nd):
            if cnp.PyArray_DIMS(t)[q] != cnp.PyArray_DIMS(p)[q]:
                return _MISS
        _element_strides(t, nd, a.s[k])
    a.in_[k] = cnp.PyArray_DATA(t)
    a.type[k] = e
    return t


cdef class Loss:
    """A loss function: call it for the value; ``.grad``, ``.value_and_grad``,
    ``.hessian`` and ``.grad_and_hessian`` for derivatives (of the inputs
    named by ``wrt``, default ``loss.differentiable``); ``.reference`` for the
    pure-NumPy reference with the same signature; ``.bind(**params)`` for a
    loss with parameters fixed.

    Instances are made from the declarations in ``fastloss.losses``; see
    ``fastloss.losses`` (the mapping of names to losses).
    """
    cdef readonly str name
    cdef readonly object spec
    cdef readonly object reference
    cdef readonly str family
    cdef readonly tuple inputs        # positional array arguments, in order
    cdef readonly tuple differentiable
    cdef readonly bint has_hessian
    cdef readonly dict bound          # parameters fixed by bind()
    cdef Py_ssize_t nin
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
    cdef int nd                  # the elementwise kernel's derivative outputs
    cdef bint batchmean          # reduction="batchmean" is declared

    def __init__(self, spec, reference=None, bound=None):
        if not hasattr(spec, "family"):
            raise TypeError(f"fastloss.Loss objects are made from the loss declarations; "
                            f"use fastloss.get({spec!r}) or fastloss.losses[{spec!r}]")
        self.name = spec.name
        self.spec = spec
        self.family = spec.family
        self.reference = reference
        self.inputs = spec.inputs
        self.differentiable = spec.differentiable
        self.has_hessian = spec.has_hessian
        self.nin = len(spec.inputs)
        self.bound = dict(bound or {})
        self.kernel = spec.fast_kernel if self.nin <= 3 else -1
        self.nd = EW_KERNEL_ND.get(spec.kernel, 1) if spec.family == "elementwise" else 1
        self.batchmean = "batchmean" in spec.reductions
        self.pack_params = spec.pack_fast
        self.param_names = frozenset(n for n in spec.param_names if n not in self.bound)
        self.none_ok = frozenset([p.name for p in spec.params if p.allow_none]
                                 + [a.name for a in spec.array_params])
        if self.kernel >= 0:
            self.dparams32.a, self.dparams32.b, self.dparams32.c, self.dparams32.d = \
                spec.pack_fast(self.bound, np.float32)
            self.dparams64.a, self.dparams64.b, self.dparams64.c, self.dparams64.d = \
                spec.pack_fast(self.bound, np.float64)
        else:
            self.kernel = -1
        self.checks = tuple((spec.inputs.index(c.arg), c.domain.lo, c.domain.hi,
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
        defaults.update(self.bound)
        self.cls_margin = defaults.get("margin", 0.0)
        self.cls_power = defaults.get("power", 1)

    def __repr__(self):
        if self.bound:
            return (f"<fastloss.Loss {self.name} bound "
                    + ", ".join(f"{k}={v!r}" for k, v in self.bound.items()) + ">")
        return f"<fastloss.Loss {self.name}>"

    def __reduce__(self):
        if self.bound:
            return (_bind_loss, (self.name, self.bound))
        return (_get_loss, (self.name,))

    def bind(self, **params):
        """A Loss with these loss parameters fixed (checked once, here); the
        bound loss takes the other keywords as before."""
        return _binder(self, params)

    def __call__(self, *args, **kwargs):
        cdef object r
        if len(args) == self.nin:
            r = self._fast(M_VALUE, args, kwargs)
            if r is not _MISS:
                return r
        return _slow_path(self, M_VALUE, args, kwargs)

    def grad(self, *args, **kwargs):
        """d(sum(cotangent * value))/d(input) for each input named by wrt
        (default: every differentiable input), in its own shape."""
        cdef object r
        if len(args) == self.nin:
            r = self._fast(M_GRAD, args, kwargs)
            if r is not _MISS:
                return r
        return _slow_path(self, M_GRAD, args, kwargs)

    def value_and_grad(self, *args, **kwargs):
        """``(value, grad)`` computed in one fused pass over memory."""
        cdef object r
        if len(args) == self.nin:
            r = self._fast(M_VALUE_AND_GRAD, args, kwargs)
            if r is not _MISS:
                return r
        return _slow_path(self, M_VALUE_AND_GRAD, args, kwargs)

    def hessian(self, *args, **kwargs):
        """The diagonal of the Hessian of the value with respect to each
        input named by wrt, scaled as ``grad`` is."""
        cdef object r
        if len(args) == self.nin:
            r = self._fast(M_HESSIAN, args, kwargs)
            if r is not _MISS:
                return r
        return _slow_path(self, M_HESSIAN, args, kwargs)

    def grad_and_hessian(self, *args, **kwargs):
        """``(grad, hessian)`` in one fused pass (a boosting round's need);
        ``out=`` is a pair."""
        cdef object r
        if len(args) == self.nin:
            r = self._fast(M_GRAD_AND_HESSIAN, args, kwargs)
            if r is not _MISS:
                return r
        return _slow_path(self, M_GRAD_AND_HESSIAN, args, kwargs)

    cdef object _fast_kwargs(self, dict kwargs, int *reduction, int *nthreads,
                             bint *has_params, PyObject **sw):
        """The keyword arguments of both fast paths: sets *reduction (0 mean,
        1 sum, 2 none), *nthreads, *has_params (a loss parameter was given;
        the caller checks it), *sw (sample_weight, borrowed from kwargs, or
        NULL) and returns out= (None if not given), or _MISS when the call
        needs the generic path (which reports any error)."""
        cdef object out = None
        cdef PyObject *pk
        cdef PyObject *pv
        cdef Py_ssize_t pos = 0
        reduction[0] = 0
        nthreads[0] = 0
        has_params[0] = False
        sw[0] = NULL
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
                elif v == _S_BATCHMEAN and self.batchmean:
                    reduction[0] = 3
                else:
                    return _MISS
            elif key == _S_NT:
                if v is None:
                    pass
                elif type(v) is int and v >= 1:
                    nthreads[0] = v
                else:
                    return _MISS
            elif key == _S_SW:
                if v is not None:
                    sw[0] = pv
            elif key == _S_AX or key == _S_WRT or key == _S_COT:
                if v is not None:
                    return _MISS
            elif key in self.param_names:
                has_params[0] = True
            else:
                return _MISS          # the generic path raises TypeError
        return out

    cdef bint _checks_fail(self, fl_ew_args *a, fl_idx n, int dt, int own):
        """The declaration's data checks on the merged operands: True when a
        value fails (or a layout the checks do not walk)."""
        cdef int bad, e, k
        cdef cnp.ndarray vals
        cdef const void *cp
        cdef fl_idx cs
        for chk in self.checks:
            k = FL_EW_P if chk[0] == 0 else FL_EW_T if chk[0] == 1 else FL_EW_X
            if a.ndim != 1 and a.s[k][a.ndim - 1] != 0:
                return True
            cp = a.in_[k]
            cs = a.s[k][0] if a.ndim == 1 else 0
            e = own if k == FL_EW_P else a.type[k]
            if chk[5] is not None:    # a finite set of allowed values
                vals = <cnp.ndarray>chk[5]
                if e == own and cs == 1:
                    bad = (fl_notin_f32(<const float *>cp, n, <const double *>cnp.PyArray_DATA(vals),
                                        <int>cnp.PyArray_SIZE(vals)) if dt == FL_F32 else
                           fl_notin_f64(<const double *>cp, n, <const double *>cnp.PyArray_DATA(vals),
                                        <int>cnp.PyArray_SIZE(vals)))
                else:
                    bad = fl_outside_typed(cp, e, n if cs else 1, cs, 0.0, 0.0, 0, 0,
                                           <const double *>cnp.PyArray_DATA(vals),
                                           <int>cnp.PyArray_SIZE(vals))
            elif e == own and cs == 1:
                bad = (fl_outside_f32(<const float *>cp, n, chk[1], chk[2], chk[3], chk[4])
                       if dt == FL_F32 else
                       fl_outside_f64(<const double *>cp, n, chk[1], chk[2], chk[3], chk[4]))
            else:
                bad = fl_outside_typed(cp, e, n if cs else 1, cs, chk[1], chk[2], chk[3], chk[4],
                                       NULL, 0)
            if bad:
                return True
        return False

    cdef object _fast(self, int method, tuple args, dict kwargs):
        """The trainer's call without Python-level machinery, or _MISS.

        Taken when y_pred is an aligned native float32/float64 array (any
        strides; a CPU tensor through DLPack) with at least one element,
        y_true and sample_weight (if any) arrays of y_pred's shape or 0-d
        (any real dtype, any strides: the driver converts as it reads) or
        Python numbers, no axis / wrt / cotangent / array parameters, and
        ``out`` (if any) a fitting C-contiguous buffer that overlaps no
        input.  Anything else -- including every error -- goes to the
        generic path, which checks and reports."""
        cdef object y_pred = args[0]
        cdef object y_true = args[1]
        if self.cls_kernel >= 0:
            if type(y_pred) is not cnp.ndarray:
                return _MISS
            if type(y_true) is not cnp.ndarray:
                # labels of another library on the CPU (a torch / JAX integer
                # tensor beside NumPy logits): a zero-copy view by DLPack
                y_true = _dlpack_array(y_true)
                if y_true is None:
                    return _MISS
            return self._fast_cls(method, <cnp.ndarray>y_pred, <cnp.ndarray>y_true, kwargs)
        if self.kernel < 0:
            return _MISS
        cdef cnp.ndarray p
        if type(y_pred) is cnp.ndarray:
            p = <cnp.ndarray>y_pred
        else:
            p = _dlpack_array(y_pred)
            if p is None:
                return _MISS
        cdef int tn = cnp.PyArray_TYPE(p)
        if (tn != cnp.NPY_FLOAT and tn != cnp.NPY_DOUBLE) or not (
                cnp.PyArray_ISALIGNED(p) and cnp.PyArray_ISNOTSWAPPED(p)):
            return _MISS
        cdef int nd = cnp.PyArray_NDIM(p), k
        if nd > FL_MAXDIM or not _strides_ok(p):
            return _MISS
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(p)
        cdef fl_idx n = cnp.PyArray_SIZE(p)
        if n == 0:
            return _MISS
        cdef int own = FL_E_F32 if tn == cnp.NPY_FLOAT else FL_E_F64
        cdef double tscalar = 0.0, wscalar = 0.0
        cdef fl_ew_args a
        # only what the driver reads (the struct holds 4 x 64 strides: a
        # memset of it cost ~0.1 us per call): the unused operands' strides
        # over nd dimensions (_coalesce compares them), pointers, types
        a.ndim = nd
        for k in range(nd):
            a.shape[k] = dims[k]
            a.s[FL_EW_X][k] = 0
            a.s[FL_EW_W][k] = 0
        for k in range(4):
            a.in_[k] = NULL
            a.type[k] = 0
        a.val = NULL
        a.grad[0] = a.grad[1] = a.hess[0] = a.hess[1] = NULL
        a.scale = 1.0
        a.stream = 0
        a.chk_bad = NULL
        _element_strides(p, nd, a.s[FL_EW_P])
        a.in_[FL_EW_P] = cnp.PyArray_DATA(p)
        # y_true: an array of y_pred's shape or 0-d, or a Python number
        cdef object t = _fast_operand(y_true, p, &a, FL_EW_T, &tscalar)
        if t is _MISS:
            return _MISS
        cdef double xscalar = 0.0
        cdef object x = None
        if self.nin == 3:
            x = _fast_operand(args[2], p, &a, FL_EW_X, &xscalar)
            if x is _MISS:
                return _MISS
        if self.nd == 2 and method != M_VALUE and nd:
            # the second differentiated input broadcast from a 0-d array or a
            # number: its derivatives are sums of that input's shape (the
            # generic path's); here they would be of y_pred's shape
            d1op = t if self.differentiable[1] == self.inputs[1] else x
            if d1op is None or cnp.PyArray_NDIM(<cnp.ndarray>d1op) == 0:
                return _MISS

        cdef int reduction = 0           # 0 mean, 1 sum, 2 none
        cdef int nthreads = 0
        cdef bint has_params = False
        cdef PyObject *swp = NULL
        cdef fl_params prm = self.dparams32 if tn == cnp.NPY_FLOAT else self.dparams64
        cdef object out = self._fast_kwargs(kwargs, &reduction, &nthreads, &has_params, &swp)
        if out is _MISS:
            return _MISS
        cdef object w = None
        if swp != NULL:
            if type(<object>swp) is not cnp.ndarray:
                return _MISS
            w = _fast_operand(<object>swp, p, &a, FL_EW_W, &wscalar)
            if w is _MISS:
                return _MISS
        if has_params:
            # raises on a bad value, as the generic path does
            packed = self.pack_params({**self.bound, **kwargs} if self.bound else kwargs,
                                      np.float32 if tn == cnp.NPY_FLOAT else np.float64)
            if packed is None:
                return _MISS
            prm.a, prm.b, prm.c, prm.d = packed

        cdef cnp.ndarray o
        cdef tuple outs = None
        if out is not None:
            if method == M_VALUE or method == M_GRAD_AND_HESSIAN:
                return _MISS
            if self.nd == 1:
                outs = (out,)
            elif type(out) is tuple and len(<tuple>out) == self.nd:
                outs = <tuple>out
            else:
                return _MISS
            for ob in outs:
                if type(ob) is not cnp.ndarray:
                    return _MISS
                o = <cnp.ndarray>ob
                if (cnp.PyArray_TYPE(o) != tn or not cnp.PyArray_ISCARRAY(o)
                        or not cnp.PyArray_ISNOTSWAPPED(o) or cnp.PyArray_NDIM(o) != nd):
                    return _MISS
                for k in range(nd):
                    if cnp.PyArray_DIMS(o)[k] != dims[k]:
                        return _MISS
                if _overlaps(o, p) or (t is not None and _overlaps(o, <cnp.ndarray>t)) or (
                        w is not None and _overlaps(o, <cnp.ndarray>w)) or (
                        x is not None and _overlaps(o, <cnp.ndarray>x)):
                    return _MISS
            if self.nd == 2 and (outs[0] is outs[1] or _overlaps(<cnp.ndarray>outs[0],
                                                                   <cnp.ndarray>outs[1])):
                return _MISS

        cdef int dt = FL_F32 if tn == cnp.NPY_FLOAT else FL_F64
        # the merged layout: contiguous same-type operands become one row
        _coalesce(&a, 4)
        cdef bint plain = (a.ndim == 1 and a.s[FL_EW_P][0] == 1 and a.s[FL_EW_T][0] == 1
                           and a.type[FL_EW_T] == own and a.in_[FL_EW_W] == NULL
                           and self.nin == 2)
        # data checks, before anything is written; a failure (or a layout
        # the checks do not walk) goes to the generic path, which reports.
        # hinge's labels: fl_ew_run_signs checks them as it packs them (and
        # when it does not take the call, they are checked below)
        cdef int bad
        cdef const void *cp
        cdef bint signs = self.sign_labels and plain
        # fresh outputs: one range check on an operand of the compute type
        # runs inside the kernel's pass, block by block (no pass of its
        # own); a failure discards the outputs and goes to the generic path
        cdef int chk_bad = 0
        cdef int ck
        if not signs and out is None and len(self.checks) == 1:
            chk = self.checks[0]
            ck = FL_EW_P if chk[0] == 0 else FL_EW_T if chk[0] == 1 else FL_EW_X
            if (chk[5] is None and (ck == FL_EW_P or a.type[ck] == own)
                    and (dt == FL_F64 or (<double><float>chk[1] == chk[1]
                                          and <double><float>chk[2] == chk[2]))):
                a.chk_op = ck
                a.chk_lo = chk[1]
                a.chk_hi = chk[2]
                a.chk_open = (1 if chk[3] else 0) | (2 if chk[4] else 0)
                a.chk_bad = &chk_bad
        if not signs and a.chk_bad == NULL and self._checks_fail(&a, n, dt, own):
            return _MISS

        # the mean's denominator
        cdef double wsum = <double>n, inv
        if reduction == 3:                  # batchmean: sum / y_pred.shape[0]
            wsum = <double>dims[0] if nd else 1.0
        elif w is not None and reduction == 0:
            if a.ndim != 1:
                return _MISS
            if a.s[FL_EW_W][0] == 0:       # one weight for every element
                wsum = fl_sum_typed(a.in_[FL_EW_W], a.type[FL_EW_W], 1, 0) * <double>n
            else:
                wsum = fl_sum_typed(a.in_[FL_EW_W], a.type[FL_EW_W], n, a.s[FL_EW_W][0])
            inv = 1.0 / wsum
            # a zero, tiny or non-finite total weight: the generic path
            # (mean_scale's rescaling, the empty-mean warning)
            if not (wsum == wsum and inv == inv and inv != 0.0
                    and fabs(inv) >= (FLT_MIN if dt == FL_F32 else DBL_MIN)
                    and fabs(inv) <= (FLT_MAX if dt == FL_F32 else DBL_MAX)
                    and fabs(wsum) <= DBL_MAX):
                return _MISS

        cdef int mode
        cdef double scale = 1.0 / wsum if reduction == 0 or reduction == 3 else 1.0
        cdef object val = None
        cdef object deriv = None
        if method == M_VALUE:
            mode = FL_VAL if reduction == 2 else FL_SUM
        elif method == M_GRAD:
            mode = FL_GRAD
        elif method == M_VALUE_AND_GRAD:
            mode = (FL_VAL if reduction == 2 else FL_SUM) | FL_GRAD
        elif method == M_HESSIAN:
            mode = FL_HESS
        else:
            mode = FL_GRAD | FL_HESS
        if mode & FL_VAL:
            val = cnp.PyArray_EMPTY(nd, dims, tn, 0)
        if method != M_VALUE:
            deriv = outs[0] if outs is not None else cnp.PyArray_EMPTY(nd, dims, tn, 0)
        cdef object deriv2 = None
        if method == M_GRAD_AND_HESSIAN:
            deriv2 = cnp.PyArray_EMPTY(nd, dims, tn, 0)
        # the second differentiated input's outputs (nd 2)
        cdef object d1 = None
        cdef object d1h = None
        if self.nd == 2 and method != M_VALUE:
            d1 = outs[1] if outs is not None else cnp.PyArray_EMPTY(nd, dims, tn, 0)
            if method == M_GRAD_AND_HESSIAN:
                d1h = cnp.PyArray_EMPTY(nd, dims, tn, 0)

        cdef int kern = self.kernel
        cdef double sm = 0.0
        cdef float sf
        cdef void *vp = cnp.PyArray_DATA(<cnp.ndarray>val) if val is not None else NULL
        cdef void *gp = NULL
        cdef void *hp = NULL
        if deriv is not None:
            if method == M_HESSIAN:
                hp = cnp.PyArray_DATA(<cnp.ndarray>deriv)
            else:
                gp = cnp.PyArray_DATA(<cnp.ndarray>deriv)
        if deriv2 is not None:
            hp = cnp.PyArray_DATA(<cnp.ndarray>deriv2)
        nthreads = _thread_arg(nthreads)
        cdef int done = 0
        if self.sign_labels and plain:
            # the label check and the kernel in one: the check packs the
            # labels into bits that the kernel reads (sign_labels.c)
            cp = a.in_[FL_EW_T]
            if n >= 16384:
                with nogil:
                    bad = fl_ew_run_signs(dt, kern, mode, a.in_[FL_EW_P], cp, n, scale,
                                          vp, gp, hp, out is not None, nthreads, &sm)
            else:
                bad = fl_ew_run_signs(dt, kern, mode, a.in_[FL_EW_P], cp, n, scale,
                                      vp, gp, hp, out is not None, nthreads, &sm)
            if bad == 1:
                return _MISS          # the generic path reports the label (or runs NaN labels)
            done = bad == 0
            if not done and self._checks_fail(&a, n, dt, own):
                return _MISS

        if not done:
            a.val = vp
            a.grad[0] = gp
            a.hess[0] = hp
            if d1 is not None:
                if method == M_HESSIAN:
                    a.hess[1] = cnp.PyArray_DATA(<cnp.ndarray>d1)
                else:
                    a.grad[1] = cnp.PyArray_DATA(<cnp.ndarray>d1)
            if d1h is not None:
                a.hess[1] = cnp.PyArray_DATA(<cnp.ndarray>d1h)
            a.scale = scale
            a.stream = out is not None
            if n >= 16384:
                with nogil:
                    sm = fl_ew_run(dt, kern, mode, &prm, &a, nthreads)
            else:
                sm = fl_ew_run(dt, kern, mode, &prm, &a, nthreads)
            if chk_bad:
                return _MISS          # the generic path reports the value

        if d1 is not None:
            deriv = (deriv, d1)
            if deriv2 is not None:
                deriv2 = (deriv2, d1h)
        if method == M_GRAD or method == M_HESSIAN:
            return deriv
        if method == M_GRAD_AND_HESSIAN:
            return (deriv, deriv2)
        if reduction == 2:
            value = val
        else:
            if reduction == 0 or reduction == 3:
                sm = sm / wsum
            if dt == FL_F32:
                sf = <float>sm
                value = PyArray_Scalar(&sf, <void *>cnp.PyArray_DESCR(p), None)
            else:
                value = PyArray_Scalar(&sm, <void *>cnp.PyArray_DESCR(p), None)
        if method == M_VALUE:
            return value
        return (value, deriv)


    cdef object _fast_cls(self, int method, cnp.ndarray z, cnp.ndarray y, dict kwargs):
        """The trainer's class-loss call: 2-D C-contiguous float logits with
        the classes last, 1-D labels of any integer or float dtype (as
        PyTorch and XGBoost pass them), the loss parameters (class_weight,
        label_smoothing, ignore_index, margin, power); or _MISS.  Labels are
        validated (in C) before anything is written; a bad label or
        parameter goes to the generic path, which reports it."""
        cdef int tn = cnp.PyArray_TYPE(z)
        if method == M_GRAD_AND_HESSIAN:
            return _MISS
        if tn != cnp.NPY_FLOAT and tn != cnp.NPY_DOUBLE:
            return _MISS
        if not (cnp.PyArray_ISCARRAY_RO(z) and cnp.PyArray_ISNOTSWAPPED(z)
                and cnp.PyArray_NDIM(z) == 2):
            return _MISS
        cdef int ye = _elem_type(cnp.PyArray_TYPE(y))
        if (ye < 0 or cnp.PyArray_NDIM(y) != 1 or not cnp.PyArray_ISCARRAY_RO(y)
                or not cnp.PyArray_ISNOTSWAPPED(y)):
            return _MISS
        cdef cnp.npy_intp *dims = cnp.PyArray_DIMS(z)
        cdef fl_idx N = dims[0], C = dims[1]
        if cnp.PyArray_DIMS(y)[0] != N or N == 0 or C == 0:
            return _MISS
        cdef int reduction = 0
        cdef int nthreads = 0
        cdef bint has_params = False
        cdef PyObject *swp = NULL
        cdef object out = self._fast_kwargs(kwargs, &reduction, &nthreads, &has_params, &swp)
        if out is _MISS or swp != NULL:
            return _MISS
        # the loss parameters: bound ones, then the call's
        cdef double smoothing = 0.0, margin = self.cls_margin
        cdef int power = self.cls_power, has_ignore = 0
        cdef int64_t ignore = 0
        cdef object cw = None
        if has_params or self.bound:
            prm = {**self.bound, **kwargs} if self.bound else kwargs
            for key in self.spec.param_names:
                if key not in prm:
                    continue
                v = prm[key]
                if key == "class_axis":
                    if type(v) is not int or (v != -1 and v != 1):
                        return _MISS
                elif key == "label_smoothing":
                    if type(v) is not float and type(v) is not int:
                        return _MISS
                    smoothing = self.spec.param(key).check(self.name, v)
                elif key == "ignore_index":
                    if v is None:
                        continue
                    if type(v) is not int or not (-9223372036854775807 <= v <= 9223372036854775807):
                        return _MISS
                    has_ignore = 1
                    ignore = v
                elif key == "class_weight":
                    if v is None:
                        continue
                    if (type(v) is not cnp.ndarray or cnp.PyArray_NDIM(<cnp.ndarray>v) != 1
                            or cnp.PyArray_DIMS(<cnp.ndarray>v)[0] != C
                            or _elem_type(cnp.PyArray_TYPE(<cnp.ndarray>v)) < 0):
                        return _MISS
                    cw = np.require(v, dtype=z.dtype, requirements=["C", "A"])
                elif key == "margin":
                    if type(v) is not float and type(v) is not int:
                        return _MISS
                    margin = self.spec.param(key).check(self.name, v)
                elif key == "power":
                    if type(v) is not int:
                        return _MISS
                    power = <int>self.spec.param(key).check(self.name, v)
                else:
                    return _MISS
        # labels as int64 (a copy only for other dtypes)
        cdef cnp.ndarray y64 = y
        cdef fl_idx badl
        if ye != FL_E_I64:
            y64 = cnp.PyArray_EMPTY(1, cnp.PyArray_DIMS(y), cnp.NPY_INT64, 0)
            badl = fl_labels_i64(cnp.PyArray_DATA(y), ye, N, <int64_t *>cnp.PyArray_DATA(y64))
            if badl >= 0:
                return _MISS
        cdef cnp.ndarray o
        if out is not None:
            if method == M_VALUE or type(out) is not cnp.ndarray:
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
        a.y = <const int64_t *>cnp.PyArray_DATA(y64)
        a.cw = cnp.PyArray_DATA(<cnp.ndarray>cw) if cw is not None else NULL
        a.smoothing = smoothing
        a.has_ignore = has_ignore
        a.ignore_index = ignore
        a.margin = margin
        a.power = power
        cdef int dt = FL_F32 if tn == cnp.NPY_FLOAT else FL_F64
        cdef double wsum = 0.0, inv
        cdef fl_idx bad = fl_cls_prepass(dt, &a, &wsum)
        if bad >= 0:
            return _MISS
        if self.cls_kernel == FL_CLS_MARGIN:
            wsum = <double>N
        inv = 1.0 / wsum
        # a zero, tiny or non-finite denominator: the generic path (the
        # empty-mean warning, mean_scale's rescaling)
        if not (wsum == wsum and inv == inv and inv != 0.0 and fabs(wsum) <= DBL_MAX
                and fabs(inv) >= (FLT_MIN if dt == FL_F32 else DBL_MIN)
                and fabs(inv) <= (FLT_MAX if dt == FL_F32 else DBL_MAX)):
            return _MISS
        a.scale = 1.0 / wsum if reduction == 0 else 1.0
        cdef object val = None
        cdef object deriv = None
        if reduction == 2 and method != M_GRAD and method != M_HESSIAN:
            val = cnp.PyArray_EMPTY(1, dims, tn, 0)
            a.val = cnp.PyArray_DATA(<cnp.ndarray>val)
        if method != M_VALUE:
            deriv = out if out is not None else cnp.PyArray_EMPTY(2, dims, tn, 0)
            if method == M_HESSIAN:
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
        if method == M_GRAD or method == M_HESSIAN:
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
        if method == M_VALUE:
            return value
        return (value, deriv)


cdef object _loss_lookup = None
cdef object _binder = None

def set_loss_lookup(func, binder):
    """__init__ registers the name lookup (pickling) and Loss.bind's
    implementation (_call.bind_loss) here."""
    global _loss_lookup, _binder
    _loss_lookup = func
    _binder = binder

def _get_loss(name):
    return _loss_lookup(name)

def _bind_loss(name, params):
    return _loss_lookup(name).bind(**params)


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
