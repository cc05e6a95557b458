/* hinge and squared_hinge on contiguous operands, with packed labels
 * (hand-vectorized over simd.h for the ISA the file is compiled for).
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

#if FL_HAVE_SIMD_LOOPS
#include "simd.h"

/* float32: FL_VLF lanes (16 / 8 / 4), their label bits in SB */
#define E float
#define V fl_vf
#define M fl_mf
#define L FL_VLF
#if FL_VLF > 8
#define SB uint16_t
#else
#define SB uint8_t
#endif
#define SFXS(n) n##_f32
#define VX(op) vf_##op
#define MX(op) mf_##op
#define VACC vf_acc
#include "sign_labels_tpl.h"

/* float64: FL_VLD lanes (8 / 4 / 2) */
#define E double
#define V fl_vd
#define M fl_md
#define L FL_VLD
#define SB uint8_t
#define SFXS(n) n##_f64
#define VX(op) vd_##op
#define MX(op) md_##op
#define VACC vd_acc
#include "sign_labels_tpl.h"

#endif /* FL_HAVE_SIMD_LOOPS */

int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                    fl_idx n, double scale, void *val, void *grad, void *hess,
                    int reused, int nthreads, double *sum)
{
#if FL_HAVE_SIMD_LOOPS
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
