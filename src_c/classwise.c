/* The class-axis family: cross_entropy, nll, multi_margin.
 * The driver (class_template.h) is instantiated for float and double. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"
#include "vmath.h"
#include "ce_simd.h"

/* The hand-vectorized loops (ce_simd.c, compiled for this file's ISA),
 * used when they are switched on (fl_simd_loops_set: the default; tests
 * switch them off to check the portable loops on the same machine). */
static inline int ce_simd_on(void) { return fl_simd_loops_get(); }

/* Clearing derivative rows (nll): streaming stores for large ranges. */
static inline void zero_fill(void *p, size_t bytes, int stream)
{
#if FL_HAVE_SIMD_LOOPS
    if (stream && ce_simd_on()) {
        fl_zero_stream_simd(p, bytes);
        return;
    }
#else
    (void)stream;
#endif
    memset(p, 0, bytes);
}
#define ZERO_FILL zero_fill

#if FL_HAVE_SIMD_LOOPS
#define CE_FAST_A(z, n, y, g, S, Sx, m) \
    (ce_simd_on() && fl_ce_seg_a_f32_simd(z, n, y, g, S, Sx, m))
#define CE_FAST_SCALE(g, n, f) (ce_simd_on() ? (fl_ce_scale_f32_simd(g, n, f), 1) : 0)
#define CE_FAST_COLS(a, i0, J, buf, acc) (ce_simd_on() && fl_ce_cols_f32_simd(a, i0, J, buf, acc))
#define MARGIN_FAST(a, i0, i1, acc) (ce_simd_on() && fl_margin_rows_f32_simd(a, i0, i1, acc))
#else
#define MARGIN_FAST(a, i0, i1, acc) 0
#define CE_FAST_COLS(a, i0, J, buf, acc) 0
#define CE_FAST_A(z, n, y, g, S, Sx, m) 0
#define CE_FAST_SCALE(g, n, f) 0
#endif

#define T float
#define SFX(n) n##_f32
#define VM(fn) fl_##fn##f
#include "class_template.h"
#undef T
#undef SFX
#undef VM
#undef CE_FAST_A
#undef CE_FAST_SCALE
#undef CE_FAST_COLS
#undef MARGIN_FAST
#define CE_FAST_COLS(a, i0, J, buf, acc) 0
#define MARGIN_FAST(a, i0, i1, acc) 0
#if FL_HAVE_SIMD_LOOPS
#define CE_FAST_A(z, n, y, g, S, Sx, m) \
    (ce_simd_on() && fl_ce_seg_a_f64_simd(z, n, y, g, S, Sx, m))
#define CE_FAST_SCALE(g, n, f) (ce_simd_on() ? (fl_ce_scale_f64_simd(g, n, f), 1) : 0)
#else
#define CE_FAST_A(z, n, y, g, S, Sx, m) 0
#define CE_FAST_SCALE(g, n, f) 0
#endif

#define T double
#define SFX(n) n##_f64
#define VM(fn) fl_##fn
#include "class_template.h"
#undef T
#undef SFX
#undef VM

fl_idx fl_cls_prepass(int dtype, const fl_cls_args *a, double *wsum)
{
    *wsum = 0.0;
    if (!a->y) return -1;
    return dtype == FL_F32 ? cls_prepass_f32(a, wsum) : cls_prepass_f64(a, wsum);
}

double fl_cls_run(int dtype, int kernel, const fl_cls_args *a, int nthreads, int *status)
{
    return dtype == FL_F32 ? cls_run_f32(kernel, a, nthreads, status)
                           : cls_run_f64(kernel, a, nthreads, status);
}
