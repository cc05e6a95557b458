/* hinge and squared_hinge on contiguous operands, with packed labels
 * (AVX-512, chosen at run time).
 *
 * Their labels must be -1, 0 or 1 (0 means -1), checked before anything is
 * written (SPEC "Errors": every check before any output).  A check pass and
 * then the kernel read y_true twice: 20 bytes per float32 element where a loss
 * without a check moves 16 (read two arrays, write one with its
 * read-for-ownership), which caps such a loss at 80 % of the bandwidth
 * roofline whatever its kernel.  Here the check pass also packs each label
 * into one bit (1: +1; 0: -1 or 0), and the kernel reads the bits -- n/8
 * bytes, which stay in cache -- instead of y_true: 4 + 4 + 8 bytes per
 * element (+ n/8), what the probe moves.
 *
 * The kernel computes exactly what ew_kernels.h's hinge / squared_hinge and
 * the driver's NaN rule do (s * x is exact for s = +-1, so every product and
 * difference rounds as there; a NaN in y_pred gives NaN in every output);
 * only the order of the float64 partial sums differs.  Labels that are NaN
 * or outside the set stop the check: status 1, nothing written, and the
 * caller's generic path reports the label or, for NaN, propagates it with
 * the portable kernels. */
#include <stdint.h>
#include <stdlib.h>

#include "fl_internal.h"
#include "ce_simd.h"

#if FL_HAVE_CE_AVX512
#include <immintrin.h>

#define AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

/* float32: 16 lanes, a 16-bit mask per vector */
#define E float
#define V __m512
#define K __mmask16
#define L 16
#define SFXS(n) n##_f32
#define VOP(n) _mm512_##n##_ps
#define VCMP(a, b, op) _mm512_cmp_ps_mask(a, b, op)
#define VIDX(h) _mm512_add_epi32(_mm512_set1_epi32((int)(h)), \
    _mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0))
#define VPERM2(a, idx, b) _mm512_permutex2var_ps(a, idx, b)
/* adds the 16 values of v into the float64 accumulators a0, a1 */
#define VACC(a0, a1, v)                                                           \
    do {                                                                          \
        a0 = _mm512_add_pd(a0, _mm512_cvtps_pd(_mm512_castps512_ps256(v)));       \
        a1 = _mm512_add_pd(a1, _mm512_cvtps_pd(_mm256_castpd_ps(                  \
                                   _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)))); \
    } while (0)
#include "sign_labels_tpl.h"

/* float64: 8 lanes, an 8-bit mask per vector */
#define E double
#define V __m512d
#define K __mmask8
#define L 8
#define SFXS(n) n##_f64
#define VOP(n) _mm512_##n##_pd
#define VCMP(a, b, op) _mm512_cmp_pd_mask(a, b, op)
#define VIDX(h) _mm512_add_epi64(_mm512_set1_epi64((long long)(h)), \
    _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0))
#define VPERM2(a, idx, b) _mm512_permutex2var_pd(a, idx, b)
#define VACC(a0, a1, v) do { a0 = _mm512_add_pd(a0, v); (void)(a1); } while (0)
#include "sign_labels_tpl.h"

#endif /* FL_HAVE_CE_AVX512 */

int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                    fl_idx n, double scale, void *val, void *grad, void *hess,
                    int reused, int nthreads, double *sum)
{
#if FL_HAVE_CE_AVX512
    if (!fl_simd_loops_get() || n <= 0 || (dtype != FL_F32 && dtype != FL_F64) ||
        (kernel != FL_EW_hinge && kernel != FL_EW_squared_hinge))
        return -1;
    const int sq = kernel == FL_EW_squared_hinge;
    return dtype == FL_F32
        ? signs_run_f32(sq, mode, (const float *)p, (const float *)t, n, (float)scale,
                        (float *)val, (float *)grad, (float *)hess, reused, nthreads, sum)
        : signs_run_f64(sq, mode, (const double *)p, (const double *)t, n, scale,
                        (double *)val, (double *)grad, (double *)hess, reused, nthreads, sum);
#else
    (void)dtype; (void)kernel; (void)mode; (void)p; (void)t; (void)n; (void)scale;
    (void)val; (void)grad; (void)hess; (void)reused; (void)nthreads; (void)sum;
    return -1;
#endif
}
