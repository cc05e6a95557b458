/* Run-time choice of the ISA level (SPEC section 9; isa.h).
 *
 * The kernels exist once per level built (setup.py defines FL_BUILT_<LEVEL>
 * for each); each copy exports one fl_isa_table.  The public kernel-side
 * functions of fastloss.h are defined here as forwarders through the table
 * in use, chosen by fl_simd_select (the binding calls it at import with
 * FASTLOSS_SIMD).  Switching is for import time and tests: a call in flight
 * keeps the table it loaded. */
#include <stdio.h>
#include <string.h>

#include "fl_internal.h"
#include "isa_entry.h"

#if defined(FL_BUILT_AVX512)
extern const fl_isa_table fl_isa_table_avx512;
#endif
#if defined(FL_BUILT_AVX2)
extern const fl_isa_table fl_isa_table_avx2;
#endif
#if defined(FL_BUILT_SSE2)
extern const fl_isa_table fl_isa_table_sse2;
#endif
#if defined(FL_BUILT_NEON)
extern const fl_isa_table fl_isa_table_neon;
#endif
#if defined(FL_BUILT_GENERIC)
extern const fl_isa_table fl_isa_table_generic;
#endif

/* The levels built, best first; the last is the baseline (runs on every CPU
 * of the architecture). */
static const fl_isa_table *const fl_isa_built[] = {
#if defined(FL_BUILT_AVX512)
    &fl_isa_table_avx512,
#endif
#if defined(FL_BUILT_AVX2)
    &fl_isa_table_avx2,
#endif
#if defined(FL_BUILT_SSE2)
    &fl_isa_table_sse2,
#endif
#if defined(FL_BUILT_NEON)
    &fl_isa_table_neon,
#endif
#if defined(FL_BUILT_GENERIC)
    &fl_isa_table_generic,
#endif
};
#define FL_NBUILT ((int)(sizeof fl_isa_built / sizeof fl_isa_built[0]))

/* Whether this CPU runs a level's copy (the OS state included: GCC's
 * __builtin_cpu_supports checks XCR0 for the AVX / AVX-512 registers). */
static int fl_cpu_runs(const char *name)
{
#if defined(__x86_64__) && defined(__GNUC__)
    __builtin_cpu_init();
    if (!strcmp(name, "avx512")) return __builtin_cpu_supports("x86-64-v4") > 0;
    if (!strcmp(name, "avx2")) return __builtin_cpu_supports("x86-64-v3") > 0;
    if (!strcmp(name, "sse2")) return 1;
    return 0;
#elif defined(__aarch64__)
    return !strcmp(name, "neon");       /* Advanced SIMD is part of ARMv8-A */
#else
    return !strcmp(name, "generic");
#endif
}

#if defined(FL_BUILT_GENERIC)
#define FL_ISA_BASE (&fl_isa_table_generic)
#elif defined(FL_BUILT_NEON)
#define FL_ISA_BASE (&fl_isa_table_neon)
#elif defined(FL_BUILT_SSE2)
#define FL_ISA_BASE (&fl_isa_table_sse2)
#else
#error "no ISA level built: setup.py defines FL_BUILT_<LEVEL> for each copy of the kernels"
#endif

static const fl_isa_table *fl_isa_cur = FL_ISA_BASE;
static int fl_simd_loops = 0;
static int fl_simd_loops_want = 0;    /* on unless "portable" or switched off */

static const fl_isa_table *fl_isa_native(void)
{
    for (int k = 0; k < FL_NBUILT; k++)
        if (fl_cpu_runs(fl_isa_built[k]->name)) return fl_isa_built[k];
    return FL_ISA_BASE;
}

int fl_simd_select(const char *level)
{
    static const char *const known[] = { "native", "avx512", "avx2", "sse2", "neon",
                                         "portable", "generic" };
    int ok = 0;
    for (size_t k = 0; k < sizeof known / sizeof known[0]; k++) ok |= !strcmp(level, known[k]);
    if (!ok) return -1;
    const fl_isa_table *t = NULL;
    int loops = 1, rc = 0;
    if (!strcmp(level, "portable")) {
        t = FL_ISA_BASE;
        loops = 0;
    } else if (!strcmp(level, "native")) {
        t = fl_isa_native();
    } else {
        for (int k = 0; k < FL_NBUILT; k++)
            if (!strcmp(level, fl_isa_built[k]->name) && fl_cpu_runs(level)) t = fl_isa_built[k];
        if (!t) {
            t = fl_isa_native();
            rc = 1;
        }
    }
    __atomic_store_n(&fl_isa_cur, t, __ATOMIC_RELEASE);
    fl_simd_loops_set(loops);
    return rc;
}

static inline const fl_isa_table *isa(void)
{
    return __atomic_load_n(&fl_isa_cur, __ATOMIC_ACQUIRE);
}

void fl_simd_loops_set(int on)
{
    fl_simd_loops_want = on != 0;
    __atomic_store_n(&fl_simd_loops, on && isa()->hand_loops ? 1 : 0, __ATOMIC_RELAXED);
}

int fl_simd_loops_get(void) { return __atomic_load_n(&fl_simd_loops, __ATOMIC_RELAXED); }

/* the setting, whether or not the copy in use has hand-vectorized loops */
static int fl_simd_loops_wanted(void) { return fl_simd_loops_want; }

const char *fl_simd_level(void)
{
    const fl_isa_table *t = isa();
    if (!fl_simd_loops_wanted() && t == FL_ISA_BASE) return "portable";
    return t->name;
}

const char *fl_simd_isa(void)
{
    const char *n = isa()->name;
    const char *hl = isa()->hand_loops;
    static char buf[160];
    const char *w = !strcmp(n, "avx512") ? "AVX-512 (x86-64-v4)"
                  : !strcmp(n, "avx2")   ? "AVX2+FMA (x86-64-v3)"
                  : !strcmp(n, "sse2")   ? "SSE2 (x86-64 baseline)"
                  : !strcmp(n, "neon")   ? "NEON (aarch64)"
                  : "portable C (no SIMD target)";
    if (!hl)
        snprintf(buf, sizeof buf, "%s, no hand-vectorized loops", w);
    else if (!fl_simd_loops_get())
        snprintf(buf, sizeof buf, "%s, hand-vectorized loops (%s) off", w, hl);
    else
        snprintf(buf, sizeof buf, "%s, hand-vectorized loops %s", w, hl);
    return buf;
}

const char *fl_simd_levels(void)
{
    static char buf[128];
    buf[0] = '\0';
    for (int k = 0; k < FL_NBUILT; k++)
        if (fl_cpu_runs(fl_isa_built[k]->name)) {
            strcat(buf, fl_isa_built[k]->name);
            strcat(buf, ",");
        }
    strcat(buf, "portable");
    return buf;
}

/* the forwarders */
double fl_ew_run(int dtype, int kernel, int mode, const fl_params *prm,
                 const fl_ew_args *a, int nthreads)
{
    return isa()->ew_run(dtype, kernel, mode, prm, a, nthreads);
}
const char *fl_ew_kernel_name(int kernel) { return isa()->ew_kernel_name(kernel); }
int fl_ew_kernel_nd(int kernel) { return isa()->ew_kernel_nd(kernel); }
int fl_ew_run_signs(int dtype, int kernel, int mode, const void *p, const void *t,
                    fl_idx n, double scale, void *val, void *grad, void *hess,
                    int reused, int nthreads, double *sum)
{
    return isa()->ew_run_signs(dtype, kernel, mode, p, t, n, scale, val, grad, hess, reused,
                               nthreads, sum);
}
fl_idx fl_cls_prepass(int dtype, const fl_cls_args *a, double *wsum)
{
    return isa()->cls_prepass(dtype, a, wsum);
}
double fl_cls_run(int dtype, int kernel, const fl_cls_args *a, int nthreads, int *status)
{
    return isa()->cls_run(dtype, kernel, a, nthreads, status);
}
double fl_row_run(int dtype, int kernel, int mode, const fl_row_args *a, int nthreads)
{
    return isa()->row_run(dtype, kernel, mode, a, nthreads);
}
const char *fl_row_kernel_name(int kernel) { return isa()->row_kernel_name(kernel); }
int fl_row_kernel_inputs(int kernel) { return isa()->row_kernel_inputs(kernel); }
int fl_row_kernel_labels(int kernel) { return isa()->row_kernel_labels(kernel); }
int fl_outside_typed(const void *v, int type, fl_idx n, fl_idx s, double lo, double hi,
                     int lo_open, int hi_open, const double *vals, int nvals)
{
    return isa()->outside_typed(v, type, n, s, lo, hi, lo_open, hi_open, vals, nvals);
}
fl_idx fl_labels_i64(const void *src, int type, fl_idx n, int64_t *dst)
{
    return isa()->labels_i64(src, type, n, dst);
}
void fl_f32_to_f16(const float *src, uint16_t *dst, fl_idx n) { isa()->f32_to_f16(src, dst, n); }
void fl_f16_to_f32(const uint16_t *src, float *dst, fl_idx n) { isa()->f16_to_f32(src, dst, n); }
double fl_sum_typed(const void *v, int type, fl_idx n, fl_idx s)
{
    return isa()->sum_typed(v, type, n, s);
}
int fl_outside_f32(const float *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
{
    return isa()->outside_f32(v, n, lo, hi, lo_open, hi_open);
}
int fl_outside_f64(const double *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
{
    return isa()->outside_f64(v, n, lo, hi, lo_open, hi_open);
}
int fl_notin_f32(const float *v, fl_idx n, const double *vals, int nvals)
{
    return isa()->notin_f32(v, n, vals, nvals);
}
int fl_notin_f64(const double *v, fl_idx n, const double *vals, int nvals)
{
    return isa()->notin_f64(v, n, vals, nvals);
}
void fl_probe_f32(const float *a, const float *b, float *out, fl_idx n, int nthreads)
{
    isa()->probe_f32(a, b, out, n, nthreads);
}
void fl_probe_f64(const double *a, const double *b, double *out, fl_idx n, int nthreads)
{
    isa()->probe_f64(a, b, out, n, nthreads);
}
