/* fastloss: the row family (included at the end of fastloss.h).
 *
 * Row losses work on vectors along the LAST axis (length D); the leading
 * axes are samples (n of them, the caller flattens them).  The per-sample
 * loss has one value per sample.  The generic driver (rows.c, rows_template.h)
 * does the chunking, threads, weights, the modes and the deterministic
 * sums; each loss contributes a per-range kernel and one row of
 * FL_ROW_LOSSES.
 */
#ifndef FASTLOSS_ROWS_H
#define FASTLOSS_ROWS_H

#include "fastloss.h"

/* X-macro: one row per row kernel.
 *   X(name, inputs, labels)
 *   inputs  number of row operands x[0..inputs) (all differentiable)
 *   labels  1 if the kernel reads per-sample labels y
 * The enum value FL_ROW_<name> is the kernel id used by the Python table.
 *
 * Parameter slots (prm[]):
 *   cosine_embedding  prm[0] = margin
 *   triplet_margin    prm[0] = margin, prm[1] = p (INFINITY for inf),
 *                     prm[2] = eps, prm[3] = swap (0 or 1)
 * The caller checks the parameter domains (SPEC section 8). */
#define FL_ROW_LOSSES(X)                 \
    X(cosine_embedding, 2, 1)            \
    X(triplet_margin,   3, 0)

#define FL_ROW_MAXIN 3

#define FL_ROW_ENUM(name, inputs, labels) FL_ROW_##name,
enum fl_row_kernel { FL_ROW_LOSSES(FL_ROW_ENUM) FL_ROW_NKERNELS };
#undef FL_ROW_ENUM

/* A row call.  Sample i's row of input k starts at x[k] + i * sx[k] and is
 * contiguous (stride 1 inside a row). */
typedef struct {
    fl_idx n, D;                    /* samples, row length (both >= 0)     */
    const void *x[FL_ROW_MAXIN];    /* row inputs; unused slots NULL       */
    fl_idx sx[FL_ROW_MAXIN];        /* elements between consecutive        
                                     * samples' rows: D, or 0 (one row     
                                     * broadcast to every sample)          */
    const void *y;                  /* per-sample labels or NULL           */
    fl_idx sy;                      /* 1, or 0 (one label for all)         */
    const void *sw;                 /* per-sample weights or NULL (ones)   */
    fl_idx ssw;                     /* 1, or 0 (one weight for all)        */
    double prm[4];                  /* loss parameters (slots above)       */
    void *val;                      /* per-sample weighted values (n)      
                                     * or NULL                             */
    void *grad[FL_ROW_MAXIN];       /* (n, D) C-contiguous per input, or   
                                     * NULL: not wanted                    */
    double scale;                   /* multiplies every gradient           */
} fl_row_args;

/* Runs a row call.  mode is a set of FL_SUM / FL_VAL / FL_GRAD bits:
 *   FL_VAL   val[i] = sw[i] * l_i                  (when val != NULL)
 *   FL_GRAD  grad[k] row i = scale * sw[i] * dl_i/dx_k  (each non-NULL grad[k])
 *   FL_SUM   the return value is sum_i sw[i] * l_i (double), else 0.
 * A sample whose loss is NaN gets NaN in every gradient row it writes.
 * Outputs must not overlap the inputs.  Never fails: the caller checks
 * everything (dtypes, sizes, labels, parameters) before calling.  Results do
 * not depend on the thread count (chunks are fixed by n and D; partial sums
 * are added in chunk order). */
double fl_row_run(int dtype, int kernel, int mode, const fl_row_args *a, int nthreads);
const char *fl_row_kernel_name(int kernel);   /* "" when out of range     */
int fl_row_kernel_inputs(int kernel);         /* 0 when out of range      */
int fl_row_kernel_labels(int kernel);         /* 0 when out of range      */

#endif
