/* The elementwise family: regression and binary losses.
 * The driver (ew_template.h) is instantiated for float and double; the
 * per-loss code is the scalar kernels of ew_kernels.h and the rows of
 * FL_EW_LOSSES in fastloss.h. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"
#include "vmath.h"

#if defined(__x86_64__) && defined(__SSE2__)
#include <emmintrin.h>
#define EW_HAVE_STREAM 1
#else
#define EW_HAVE_STREAM 0
#endif

/* dst[0..n) = src[0..n) by streaming stores (SSE2: every x86-64); the
 * caller fences (fl_stream_fence) before its results are read. */
#if EW_HAVE_STREAM
#define EW_STREAM_COPY(NAME, T, W, STREAM, LOAD)                                \
    static void NAME(T *dst, const T *src, fl_idx n)                          \
    {                                                                         \
        fl_idx i = 0;                                                         \
        for (; i < n && ((uintptr_t)(dst + i) & 15); i++) dst[i] = src[i];    \
        for (; i + (W) <= n; i += (W)) STREAM(dst + i, LOAD(src + i));        \
        for (; i < n; i++) dst[i] = src[i];                                   \
    }
EW_STREAM_COPY(fl_stream_copy_f32, float, 4, _mm_stream_ps, _mm_loadu_ps)
EW_STREAM_COPY(fl_stream_copy_f64, double, 2, _mm_stream_pd, _mm_loadu_pd)
#undef EW_STREAM_COPY
#else
static void fl_stream_copy_f32(float *dst, const float *src, fl_idx n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
static void fl_stream_copy_f64(double *dst, const double *src, fl_idx n)
{
    memcpy(dst, src, (size_t)n * sizeof *dst);
}
#endif

static inline void fl_stream_fence(void)
{
#if EW_HAVE_STREAM
    _mm_sfence();
#endif
}

/* each instantiation's own element type (SFX(FL_E_SELF)) */
#define FL_E_SELF_f64 FL_E_F64
#define FL_E_SELF_f32 FL_E_F32

#define T double
#define SFX(n) n##_f64
#define VM(fn) fl_##fn
#define PRM prm_f64
#include "ew_template.h"
#undef T
#undef SFX
#undef VM
#undef PRM

#define T float
#define SFX(n) n##_f32
#define VM(fn) fl_##fn##f
#define PRM prm_f32
/* kernels that need more precision call the double ones */
#define FL_EW_WIDER(name) k_##name##_f64
#define FL_EW_WIDER_PRM prm_f64
#include "ew_template.h"
#undef T
#undef SFX
#undef VM
#undef PRM
#undef FL_EW_WIDER
#undef FL_EW_WIDER_PRM

double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                 const fl_ew_args *a, int nthreads)
{
    /* parameter values with a cheaper exact form */
    if (kernel == FL_EW_sigmoid_focal && prm->b == 2.0) kernel = FL_EW_sigmoid_focal_g2;
    return dtype == FL_F32 ? ew_run_f32(kernel, mode, prm, a, nthreads)
                           : ew_run_f64(kernel, mode, prm, a, nthreads);
}

const char *fl_ew_kernel_name(int k)
{
#define EW_NAME_ROW(NAME, AUX, HEAVY, ND) #NAME,
    static const char *const names[FL_EW_NKERNELS] = { FL_EW_LOSSES(EW_NAME_ROW) };
#undef EW_NAME_ROW
    return (k >= 0 && k < FL_EW_NKERNELS) ? names[k] : "";
}

int fl_ew_kernel_nd(int k)
{
    return (k >= 0 && k < FL_EW_NKERNELS) ? ew_nd_f64[k] : 0;
}
