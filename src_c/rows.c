/* The row family: cosine_embedding, triplet_margin (rows.h).
 * The driver and kernels (rows_template.h) are instantiated for float and
 * double.  Every per-sample scalar (dot products, norms, distances, the loss,
 * gradient coefficients) and every sum is computed in double for both
 * dtypes; a float32 result is rounded once, when it is stored. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"

/* Samples per chunk: about this many elements of one row input.  Fixed by
 * D alone, so the chunks -- and the order of the partial sums -- do not
 * depend on the thread count. */
#define FL_ROW_CHUNK ((fl_idx)16384)

/* A distance d(u, v) = ||u - v + eps||_p, and what its gradient is:
 *   DK_NORMAL  0 < d < inf: the usual derivative
 *   DK_ZERO    d == 0 (u - v + eps == 0): gradient 0, as torch
 *   DK_INF1    exactly one infinite entry: d = inf, and the gradient is the
 *              limit, the entry's sign there and 0 elsewhere
 *   DK_INFN    several infinite entries: d = inf (the limit), but the
 *              gradient has no limit (it depends on their relative rates):
 *              NaN
 *   DK_NAN     a NaN entry (a NaN input, or inf - inf): d = NaN */
enum { DK_NORMAL = 0, DK_ZERO, DK_INF1, DK_INFN, DK_NAN };
typedef struct { double d, cnt; int kind; } fl_dist;

/* A cosine row's scaled view (the slow path of cosine_embedding):
 * m = max(max_j |x_j|, 1) and U_j = x_j / m; a row with exactly one infinite
 * entry is replaced by its direction (inf = 1: U = the entry's sign there, 0
 * elsewhere), the limit of x / |x|; bad = 1 for a NaN entry or several
 * infinite ones (no limit). */
typedef struct { double m; int inf, bad; } fl_rowscale;

/* squared norms within these bounds take the fast p = 2 loops; others
 * (0, underflow, overflow, inf, NaN) the scaled scalar path */
#define FL_ROW_SQ_LO 1e-280
#define FL_ROW_SQ_HI 1e280

#define T double
#define SFX(n) n##_f64
#include "rows_template.h"
#undef T
#undef SFX

#define T float
#define SFX(n) n##_f32
#include "rows_template.h"
#undef T
#undef SFX

double fl_row_run(int dtype, int kernel, int mode, const fl_row_args *a, int nthreads)
{
    if (kernel < 0 || kernel >= FL_ROW_NKERNELS || !a) return 0.0;
    return dtype == FL_F32 ? row_run_f32(kernel, mode, a, nthreads)
                           : row_run_f64(kernel, mode, a, nthreads);
}

const char *fl_row_kernel_name(int k)
{
#define ROW_NAME(NAME, IN, LAB) #NAME,
    static const char *const names[FL_ROW_NKERNELS] = { FL_ROW_LOSSES(ROW_NAME) };
#undef ROW_NAME
    return (k >= 0 && k < FL_ROW_NKERNELS) ? names[k] : "";
}

int fl_row_kernel_inputs(int k)
{
#define ROW_IN(NAME, IN, LAB) IN,
    static const int v[FL_ROW_NKERNELS] = { FL_ROW_LOSSES(ROW_IN) };
#undef ROW_IN
    return (k >= 0 && k < FL_ROW_NKERNELS) ? v[k] : 0;
}

int fl_row_kernel_labels(int k)
{
#define ROW_LAB(NAME, IN, LAB) LAB,
    static const int v[FL_ROW_NKERNELS] = { FL_ROW_LOSSES(ROW_LAB) };
#undef ROW_LAB
    return (k >= 0 && k < FL_ROW_NKERNELS) ? v[k] : 0;
}
