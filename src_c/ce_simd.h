/* Hand-vectorized loops of cross_entropy, multi_margin and nll's clearing
 * (ce_simd.c, ce_simd_row.h), written once over simd.h and compiled for the
 * ISA the translation unit is built for (AVX-512, AVX2+FMA, SSE2, NEON). */
#ifndef FL_CE_SIMD_H
#define FL_CE_SIMD_H

#include "fastloss.h"

#if (defined(__x86_64__) || defined(__aarch64__)) && defined(__GNUC__) && \
    !defined(FL_NO_CE_SIMD)
#define FL_HAVE_SIMD_LOOPS 1
#else
#define FL_HAVE_SIMD_LOOPS 0
#endif

#if FL_HAVE_SIMD_LOOPS
/* The vector ISA the loops were compiled for ("AVX-512", "AVX2+FMA",
 * "SSE2", "NEON"). */
const char *fl_simd_loops_isa(void);
/* Phase A of one segment z[0..n), labels without smoothing: the segment
 * maximum *m, S = sum exp(z - m) and Sx, the same without class y (y outside
 * [0, n): Sx = S); stores exp(z - m) in g unless g is NULL.  Returns 0, with
 * nothing written, when the maximum is not finite (the caller's portable
 * path handles the infinite limits and all-NaN rows). */
int fl_ce_seg_a_f32_simd(const float *z, fl_idx n, fl_idx y, float *g,
                         double *S, double *Sx, float *m);
/* cross_entropy of rows [i0, i0 + J) (J <= 64, C <= 160, inner == 1,
 * float32, labels, no smoothing, gradient or value only): adds the weighted
 * losses to *acc, writes a->val / a->grad rows.  buf: 2 * C * 64 floats.
 * Returns 1 (0 would leave the block to the portable loops). */
int fl_ce_cols_f32_simd(const fl_cls_args *a, fl_idx i0, fl_idx J, float *buf,
                        double *acc);
/* multi_margin of rows [i0, i1) with C <= 16 classes (float32, inner == 1,
 * value / gradient): adds the weighted losses to *acc.  Returns 0 (nothing
 * done) for other shapes. */
int fl_margin_rows_f32_simd(const fl_cls_args *a, fl_idx i0, fl_idx i1, double *acc);
/* memset(p, 0, bytes) by non-temporal stores where the ISA has them */
void fl_zero_stream_simd(void *p, size_t bytes);
/* g[0..n) *= f */
void fl_ce_scale_f32_simd(float *g, fl_idx n, float f);
/* the same two for float64 */
int fl_ce_seg_a_f64_simd(const double *z, fl_idx n, fl_idx y, double *g,
                         double *S, double *Sx, double *m);
void fl_ce_scale_f64_simd(double *g, fl_idx n, double f);
#endif

#endif
