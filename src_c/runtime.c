/* Thread settings, build configuration and the bandwidth probe. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"

/* After fork() the child has only the forking thread: GNU libgomp's pool of
 * worker threads does not exist there, and a parallel region can hang.  A
 * forked child therefore runs every fastloss call on its calling thread. */
static volatile int fl_forked = 0;
static void fl_atfork_child(void) { fl_forked = 1; }
__attribute__((constructor)) static void fl_register_atfork(void)
{
    pthread_atfork(NULL, NULL, fl_atfork_child);
}

/* Thread counts (README "Threads"; fastloss/_threads.py documents the
 * scope).  Precedence: an explicit request (n_threads=), then this OS
 * thread's override (the num_threads context manager), then the
 * process-wide count.
 *
 * The process-wide count is fastloss's own: fastloss/_threads.py sets it at
 * import to its default (FASTLOSS_NUM_THREADS, else OMP_NUM_THREADS, else
 * the CPUs the process may use); set_num_threads and threadpoolctl (through
 * the controller fastloss registers with it) change it.  It is deliberately
 * NOT the OpenMP runtime's omp_get_max_threads(): in libgomp that is a
 * per-OS-thread setting (omp_set_num_threads, which threadpoolctl's OpenMP
 * controller and torch.set_num_threads call, changes it for the calling
 * thread only), so the default would depend on which Python thread calls.
 * Every parallel region passes its count in a num_threads clause. */
static int fl_global_threads = 0;
/* Per-OS-thread override (the num_threads context manager); 0 = none. */
static __thread int fl_thread_override = 0;

void fl_set_global_threads(int n) { __atomic_store_n(&fl_global_threads, n > 0 ? n : 0, __ATOMIC_RELAXED); }
int fl_get_global_threads(void) { return __atomic_load_n(&fl_global_threads, __ATOMIC_RELAXED); }
void fl_set_thread_override(int n) { fl_thread_override = n > 0 ? n : 0; }
int fl_get_thread_override(void) { return fl_thread_override; }

/* measured by bench/sweep_threads.py on the 2-core development VM (quiet):
 * a second thread first pays 1.35-1.9x at 2 chunks of work */
fl_idx fl_min_per_thread[3] = {32768, 8192, 8192};

void fl_set_thread_thresholds(long light, long heavy, long cls)
{
    if (light > 0) fl_min_per_thread[0] = (fl_idx)light;
    if (heavy > 0) fl_min_per_thread[1] = (fl_idx)heavy;
    if (cls > 0) fl_min_per_thread[2] = (fl_idx)cls;
}

void fl_get_thread_thresholds(long *out)
{
    for (int i = 0; i < 3; i++) out[i] = (long)fl_min_per_thread[i];
}

int fl_resolve_threads(int requested)
{
    if (fl_forked) return 1;
    if (requested > 0) return requested;
    if (fl_thread_override > 0) return fl_thread_override;
    int g = fl_get_global_threads();
    if (g > 0) return g;
#ifdef _OPENMP
    /* Not set yet (only before fastloss/_threads.py has run): the CPUs the
     * runtime found at start-up, the same for every thread. */
    int m = omp_get_num_procs();
    return m > 0 ? m : 1;
#else
    return 1;
#endif
}

double fl_now(void)
{
#ifdef _OPENMP
    return omp_get_wtime();
#else
    return 0.0;
#endif
}

/* Until when (fl_now() seconds, as integer nanoseconds) default-thread
 * calls run on one thread. */
static long long fl_solo_until_ns = 0;

int fl_guard_solo(void)
{
    long long until = __atomic_load_n(&fl_solo_until_ns, __ATOMIC_RELAXED);
    return until != 0 && (long long)(fl_now() * 1e9) < until;
}

void fl_guard_report(double total, double master_busy, int team_worked)
{
    /* A worker that took no chunk only delays the end of the region by its
     * wake-up (slow on some virtual machines); that is no reason to give up
     * the team, which pays off once the worker is awake. */
    double wait = total - master_busy;
    if (team_worked && wait > 0.5 * master_busy + 50e-6) {
        long long until = (long long)((fl_now() + FL_SOLO_SECONDS) * 1e9);
        __atomic_store_n(&fl_solo_until_ns, until, __ATOMIC_RELAXED);
    }
}

void fl_run_chunks(fl_chunk_fn fn, void *ctx, fl_idx nchunks, int nt, int adaptive,
                   double *part)
{
    const int timed = adaptive && nt > 1;
    double t0 = timed ? fl_now() : 0.0, master_busy = 0.0;
    fl_idx master_chunks = 0;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt) if (nt > 1)
#endif
    {
        const int tid = FL_TID();
        double busy = 0.0;
        fl_idx mine = 0;
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1) nowait
#endif
        for (fl_idx c = 0; c < nchunks; c++) {
            double s0 = timed && tid == 0 ? fl_now() : 0.0;
            part[c] = fn(ctx, c, tid);
            if (timed && tid == 0) { busy += fl_now() - s0; mine++; }
        }
        if (tid == 0) { master_busy = busy; master_chunks = mine; }
    }
    if (timed) fl_guard_report(fl_now() - t0, master_busy, master_chunks < nchunks);
}

int fl_have_openmp(void)
{
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}

int fl_openmp_version(void)
{
#ifdef _OPENMP
    return _OPENMP;
#else
    return 0;
#endif
}

size_t fl_elem_size(int type)
{
    static const size_t size[FL_E_NTYPES] = { 0, 4, 8, 1, 2, 4, 8, 1, 2, 4, 8 };
    return type > 0 && type < FL_E_NTYPES ? size[type] : 0;
}
