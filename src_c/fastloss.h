/* fastloss: the C interface between the kernels and the Cython binding.
 *
 * Everything here is plain C99 + OpenMP.  All shapes, strides and indices are
 * ptrdiff_t (64-bit on every platform fastloss builds on).  Strides are in
 * ELEMENTS, not bytes: the binding checks alignment before calling.
 *
 * The elementwise family (regression and binary losses) is driven by one
 * generic driver (elementwise.c); each loss contributes one scalar kernel in
 * ew_kernels.h and one row in FL_EW_LOSSES below.
 */
#ifndef FASTLOSS_H
#define FASTLOSS_H

/* in a per-ISA copy of the kernels: their names get the level's suffix */
#include "isa.h"

#include <stddef.h>
#include <stdint.h>

typedef ptrdiff_t fl_idx;

#define FL_MAXDIM 64

enum fl_dtype { FL_F32 = 0, FL_F64 = 1 };

/* X-macro: one row per elementwise kernel.
 *   X(name, aux, heavy, nd)
 *   aux   1 if the kernel reads the third input operand (in[FL_EW_X]:
 *         pos_weight, gaussian_nll's var, margin_ranking's y)
 *   heavy 1 if the kernel evaluates transcendental functions (used only to
 *         pick the chunk size and the size under which no team is started)
 *   nd    how many inputs the kernel differentiates: 1 (the first) or 2
 *         (derivative outputs grad[0], grad[1] and hess[0], hess[1]; which
 *         inputs they belong to is the Python declaration's business)
 * The enum value FL_EW_<name> is the kernel id used by the declarations. */
#define FL_EW_LOSSES(X)                          \
    X(mse,                    0, 0, 1)           \
    X(mae,                    0, 0, 1)           \
    X(huber,                  0, 0, 1)           \
    X(smooth_l1,              0, 0, 1)           \
    X(log_cosh,               0, 1, 1)           \
    X(quantile,               0, 0, 1)           \
    X(poisson,                0, 1, 1)           \
    X(tweedie,                0, 1, 1)           \
    X(bce,                    0, 1, 1)           \
    X(bce_logits,             0, 1, 1)           \
    X(bce_logits_pw,          1, 1, 1)           \
    X(sigmoid_focal,          0, 1, 1)           \
    X(hinge,                  0, 0, 1)           \
    X(squared_hinge,          0, 0, 1)           \
    X(sigmoid_focal_g2,       0, 1, 1)           \
    X(gaussian_nll,           1, 1, 2)           \
    X(kl_div,                 0, 1, 1)           \
    X(kl_div_log,             0, 1, 1)           \
    X(margin_ranking,         1, 0, 2)
/* sigmoid_focal_g2 is not a loss of its own: fl_ew_run runs sigmoid_focal
 * with gamma == 2 (the default) through it, (1 - p_t)^2 as a product
 * instead of exp(2 log(1 - p_t)). */

#define FL_EW_ENUM(name, aux, heavy, nd) FL_EW_##name,
enum fl_ew_kernel { FL_EW_LOSSES(FL_EW_ENUM) FL_EW_NKERNELS };
#undef FL_EW_ENUM

/* Loss parameters: the Python declaration maps each named parameter to a slot. */
typedef struct { double a, b, c, d; } fl_params;

/* What a call computes.  The driver instantiates the combinations the API
 * uses (see ew_template.h); FL_GRAD / FL_HESS write every derivative output
 * of the kernel (nd of them; the driver lends a scratch buffer to one that
 * the call does not want). */
enum fl_mode {
    FL_SUM  = 1,   /* accumulate sum(w * l) in double          */
    FL_VAL  = 2,   /* write w * l per element                  */
    FL_GRAD = 4,   /* write scale * w * dl/din_k per element    */
    FL_HESS = 8    /* write scale * w * d2l/din_k2 per element  */
};

/* The operands of an elementwise call: up to three inputs and the weight. */
enum { FL_EW_P = 0, FL_EW_T = 1, FL_EW_X = 2, FL_EW_W = 3, FL_EW_NOPS = 4 };

/* Element types of operands that the driver converts to the compute type
 * as it reads them (in blocks that stay in L1: a float64 target of a
 * float32 call, integer labels, bool masks cost no pass of their own).
 * FL_E_OWN (0): the compute type itself. */
enum fl_elem {
    FL_E_OWN = 0, FL_E_F32, FL_E_F64, FL_E_I8, FL_E_I16, FL_E_I32, FL_E_I64,
    FL_E_U8, FL_E_U16, FL_E_U32, FL_E_U64, FL_E_NTYPES
};
size_t fl_elem_size(int type);    /* bytes; 0 for FL_E_OWN or an unknown type */
#define FL_EW_MAXD 2               /* derivative outputs of one kind */

/* An elementwise call.  All operands share one shape (already broadcast by
 * the caller: a stride of 0 repeats an element).  Outputs are C-contiguous in
 * that shape.  in[FL_EW_X] and in[FL_EW_W] may be NULL (no third input /
 * unweighted). */
typedef struct {
    int ndim;                       /* >= 1, <= FL_MAXDIM                  */
    fl_idx shape[FL_MAXDIM];
    const void *in[FL_EW_NOPS];     /* y_pred, y_true, third input, weight */
    fl_idx s[FL_EW_NOPS][FL_MAXDIM];/* their strides, in elements          */
    int type[FL_EW_NOPS];           /* their element types (fl_elem); y_pred
                                     * is always of the compute type      */
    void *val;                      /* C-contiguous or NULL                */
    void *grad[FL_EW_MAXD];         /* derivative k, C-contiguous or NULL  */
    void *hess[FL_EW_MAXD];
    double scale;                   /* multiplies grad and hess            */
    int stream;                     /* grad / hess are caller buffers
                                     * (out=): large ones may be written
                                     * by streaming stores; else 0         */
} fl_ew_args;

/* Runs an elementwise call.  mode is a set of fl_mode bits and must agree
 * with the non-NULL outputs.  Returns the sum (FL_SUM) or 0.  Never fails:
 * every check is done by the caller before anything is written. */
double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                 const fl_ew_args *a, int nthreads);
const char *fl_ew_kernel_name(int kernel);   /* "" when out of range */
int fl_ew_kernel_nd(int kernel);              /* derivative outputs (0: out of range) */

/* ------------------------------------------------------------------ *
 * The class-axis family.  Logits (or log-probabilities) z are
 * C-contiguous with shape (outer, C, inner): a sample is an (outer, inner)
 * position.  Per-sample arrays (labels, weights, values) are C-contiguous
 * of shape (outer, inner).  Labels are checked by fl_cls_prepass before
 * any call that writes. */
enum fl_cls_kernel { FL_CLS_CE = 0, FL_CLS_NLL = 1, FL_CLS_MARGIN = 2 };

typedef struct {
    fl_idx outer, C, inner;
    const void *z;              /* logits                                  */
    const int64_t *y;           /* labels, or NULL for probability targets */
    const void *tp;             /* probability targets (layout of z) or NULL */
    const void *sw;             /* per-sample weights or NULL               */
    const void *cw;             /* class weights (C) or NULL                */
    double smoothing;           /* label_smoothing (cross_entropy)          */
    int has_ignore;
    int64_t ignore_index;
    double margin;              /* multi_margin                             */
    int power;                  /* multi_margin: 1 or 2                     */
    void *val;                  /* per-sample weighted values, or NULL      */
    void *grad, *hess;          /* layout of z, or NULL (at most one)       */
    double scale;               /* multiplies grad / hess                   */
} fl_cls_args;

/* Returns the index of the first label outside [0, C) that is not the
 * ignore_index, or -1; then *wsum = sum_i s_i cw[y_i] [y_i != ignore]. */
fl_idx fl_cls_prepass(int dtype, const fl_cls_args *a, double *wsum);

/* Runs a class-axis call; returns sum_i s_i loss_i.  *status is 0, or -1
 * when memory for work buffers could not be had (nothing was written). */
double fl_cls_run(int dtype, int kernel, const fl_cls_args *a, int nthreads,
                  int *status);

/* Threads: 0 means "not set".  The effective default is the OpenMP
 * runtime's omp_get_max_threads() (so OMP_NUM_THREADS and threadpoolctl
 * limits apply) unless set_num_threads or a per-thread override is set. */
void fl_set_global_threads(int n);
int  fl_get_global_threads(void);
void fl_set_thread_override(int n);      /* this OS thread only */
int  fl_get_thread_override(void);
int  fl_resolve_threads(int requested);  /* requested <= 0: default */
/* Elements per thread below which fewer threads are used: memory-bound
 * elementwise, transcendental elementwise, class losses (<= 0: unchanged). */
void fl_set_thread_thresholds(long light, long heavy, long cls);
void fl_get_thread_thresholds(long *out3);
int  fl_have_openmp(void);
int  fl_openmp_version(void);
/* ISA levels (SPEC section 9; dispatch.c).  fl_simd_select chooses the
 * copy of the kernels every call dispatches to: "native" (the best this CPU
 * runs), "avx512", "avx2", "sse2", "neon" or "portable" (the baseline copy,
 * hand-vectorized loops off).  Returns 0 (done), 1 (the CPU or build lacks
 * the level: native chosen instead) or -1 (unknown name: nothing changed). */
int fl_simd_select(const char *level);
const char *fl_simd_level(void);         /* the level in use, e.g. "avx2" */
const char *fl_simd_isa(void);           /* its instruction set, in words */
/* the levels this build and CPU can run, best first, comma-separated */
const char *fl_simd_levels(void);
/* The hand-vectorized loops of the level in use (cross_entropy,
 * multi_margin, nll's clearing, hinge / squared_hinge's packed labels): on
 * after fl_simd_select of any level but "portable"; off -> the plain C
 * loops of the same copy (tests compare both, bit for bit). */
void fl_simd_loops_set(int on);
int  fl_simd_loops_get(void);

/* hinge / squared_hinge over contiguous operands of n elements, checking
 * the labels (-1, 0, 1) in a first pass that packs them into bits, then
 * the kernel on the bits (sign_labels.c).  mode, scale and the outputs as
 * for fl_ew_run; reused: the outputs are caller buffers (out=), which
 * large calls may fill by streaming stores (a fresh array's pages are
 * better written through the cache the kernel just zeroed them in).
 * Returns 0 (done; *sum set for FL_SUM), 1 (a label NaN or
 * outside the set: nothing written) or -1 (not this path: another kernel,
 * no AVX-512 or switched off, no memory; nothing written). */
int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                    fl_idx n, double scale, void *val, void *grad, void *hess,
                    int reused, int nthreads, double *sum);

/* 1 if any of n values at stride s (elements) of element type `type`
 * lies outside [lo, hi] (open ends when lo_open / hi_open), or, with
 * nvals > 0, is neither NaN nor one of vals[0..nvals) (1 <= nvals <= 4);
 * NaN passes.  Values are compared in double (exact for every type). */
int fl_outside_typed(const void *v, int type, fl_idx n, fl_idx s, double lo, double hi,
                     int lo_open, int hi_open, const double *vals, int nvals);
/* n contiguous class labels of element type `type` as int64 in dst; the
 * index of the first that is not a whole number within int64, or -1 */
fl_idx fl_labels_i64(const void *src, int type, fl_idx n, int64_t *dst);
/* float32 <-> float16 (IEEE binary16 as uint16), round to nearest even */
void fl_f32_to_f16(const float *src, uint16_t *dst, fl_idx n);
void fl_f16_to_f32(const uint16_t *src, float *dst, fl_idx n);
/* sum of n values at stride s of element type `type`, in double */
double fl_sum_typed(const void *v, int type, fl_idx n, fl_idx s);
/* 1 if any of n contiguous values lies outside [lo, hi] (NaN passes). */
int fl_outside_f32(const float *v, fl_idx n, double lo, double hi, int lo_open, int hi_open);
int fl_outside_f64(const double *v, fl_idx n, double lo, double hi, int lo_open, int hi_open);
/* 1 if any of n contiguous values is neither NaN nor one of vals[0..nvals)
 * (1 <= nvals <= 4; -1 for another nvals). */
int fl_notin_f32(const float *v, fl_idx n, const double *vals, int nvals);
int fl_notin_f64(const double *v, fl_idx n, const double *vals, int nvals);

/* Bandwidth probe: out[i] = a[i] - b[i] over n contiguous elements, with the
 * same compiler flags, dispatch and threading as the kernels. */
void fl_probe_f32(const float *a, const float *b, float *out, fl_idx n, int nthreads);
void fl_probe_f64(const double *a, const double *b, double *out, fl_idx n, int nthreads);

#include "rows.h"

#endif
