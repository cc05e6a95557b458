/* Internal helpers shared by the kernel drivers. */
#ifndef FL_INTERNAL_H
#define FL_INTERNAL_H

#include "fastloss.h"

#ifdef _OPENMP
#include <omp.h>
#endif

#define FL_INLINE static inline __attribute__((always_inline))
#define FL_RESTRICT __restrict__

/* Run-time SIMD dispatch: the kernel sources are compiled once per ISA
 * level and dispatch.c picks a copy at import (isa.h). */

/* Work is split into chunks of FL_CHUNK consecutive elements (in C order of
 * the output).  Chunks are handed out dynamically, so a thread the OS
 * deschedules delays the call by at most one chunk, and each chunk's partial
 * sum is stored and added in chunk order: a reduction gives the same bits
 * whatever the number of threads. */
#define FL_CHUNK ((fl_idx)32768)
/* transcendental kernels and cross_entropy: more work per element, so
 * smaller chunks let a second thread help from smaller calls (measured by
 * bench/sweep_threads.py) */
#define FL_CHUNK_HEAVY ((fl_idx)8192)

/* Outputs of at least this many bytes are written by streaming stores (no
 * read for ownership, not kept in cache) where the drivers stream: caller
 * buffers (out=) of the elementwise and packed-label drivers, nll's
 * clearing of its derivative.  Measured at 1e7 elements (40-80 MB). */
#define FL_STREAM_BYTES ((size_t)16 << 20)

/* Fewest elements per thread before another thread pays for itself, for
 * memory-bound elementwise kernels, transcendental ones, and the class
 * losses (cross_entropy counts its N*C logits).  Defaults measured by
 * bench/sweep_threads.py (see the README); variables so that the sweep can
 * move them (fl_set_thread_thresholds). */
extern fl_idx fl_min_per_thread[3];
#define FL_MIN_PER_THREAD_LIGHT fl_min_per_thread[0]
#define FL_MIN_PER_THREAD_HEAVY fl_min_per_thread[1]
#define FL_MIN_PER_THREAD_CLASS fl_min_per_thread[2]

/* Contention guard (SPEC: on a shared machine a call with the default
 * thread count must not be many times slower than one thread).  When a
 * parallel region's calling thread spent much longer waiting for the team
 * than working although the team took chunks -- a worker was descheduled by
 * another process while it held a chunk -- calls with the default thread count run on one thread for the
 * next FL_SOLO_SECONDS, then try the team again.  Results do not change:
 * chunking and summation order do not depend on the thread count. */
#define FL_SOLO_SECONDS 0.25
double fl_now(void);
int fl_guard_solo(void);
void fl_guard_report(double total, double master_busy, int team_worked);

/* One chunk of a parallel call: its partial sum.  tid is the calling
 * thread's number in the team (for per-thread buffers). */
typedef double (*fl_chunk_fn)(void *ctx, fl_idx c, int tid);

/* The drivers' parallel loop: fn on chunks 0..nchunks-1 by a team of nt
 * threads (nt == 1: the calling thread alone), handed out one at a time
 * (dynamic), part[c] = fn's result; adaptive (a default-thread call): the
 * contention guard watches the call (fl_guard_report).  The caller adds
 * part[] in chunk order: the same bits whatever the thread count. */
void fl_run_chunks(fl_chunk_fn fn, void *ctx, fl_idx nchunks, int nt, int adaptive,
                   double *part);

/* Drivers receive nthreads > 0 for an explicit per-call request
 * (n_threads=) and -n for the resolved default n (the num_threads context,
 * set_num_threads, the environment), which the guard may lower.  Returns the
 * count; sets *adaptive. */
static inline int fl_unpack_threads(int nthreads, int *adaptive)
{
    *adaptive = nthreads < 0;
    return nthreads < 0 ? -nthreads : (nthreads > 0 ? nthreads : 1);
}

#ifdef _OPENMP
#define FL_TID() omp_get_thread_num()
#else
#define FL_TID() 0
#endif

/* cross_entropy cuts rows longer than this into segments of this many
 * classes (the same cut for every thread count: identical rounding). */
#define FL_CE_SEG ((fl_idx)8192)

/* Threads to use for `work` elements given a requested count. */
static inline int fl_threads_for(int nthreads, fl_idx work, fl_idx min_per_thread)
{
    fl_idx most = work / min_per_thread;
    if (most < 1) most = 1;
    if ((fl_idx)nthreads > most) nthreads = (int)most;
    return nthreads < 1 ? 1 : nthreads;
}

/* Data checks (e.g. probabilities in [0, 1]): whether any of v[0..n) lies
 * outside [lo, hi] (open ends when lo_open / hi_open); NaN passes.  A
 * vectorized any-pass, shared by the check pass (convert.c) and the check
 * fused into the elementwise pass (ew_template.h). */
#define FL_OUTSIDE_ANY(T, NAME)                                               \
    static inline int NAME(const T *FL_RESTRICT v, fl_idx n, T lo, T hi,      \
                           int lo_open, int hi_open)                          \
    {                                                                         \
        int bad = 0;                                                          \
        if (lo_open || hi_open) {                                             \
            _Pragma("omp simd reduction(|:bad)")                              \
            for (fl_idx i = 0; i < n; i++)                                    \
                bad |= (lo_open ? v[i] <= lo : v[i] < lo) |                   \
                       (hi_open ? v[i] >= hi : v[i] > hi);                    \
        } else {                                                              \
            _Pragma("omp simd reduction(|:bad)")                              \
            for (fl_idx i = 0; i < n; i++) bad |= (v[i] < lo) | (v[i] > hi);  \
        }                                                                     \
        return bad;                                                           \
    }
FL_OUTSIDE_ANY(float, fl_outside_any_f32)
FL_OUTSIDE_ANY(double, fl_outside_any_f64)
#undef FL_OUTSIDE_ANY

#endif
