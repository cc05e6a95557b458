/*
 * Test shim for src_c/vmath.h: applies each function to an array inside an
 * `omp simd` loop so that the vectorized code path is the one under test.
 * Loops that must vectorize are tagged with a VEC-LOOP comment; the test reads
 * GCC's -fopt-info-vec-optimized report and checks every tagged line.
 */
#include "../../src_c/vmath.h"

void vm_expf(const float *restrict x, float *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_expf(x[i]);
}

void vm_exp(const double *restrict x, double *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_exp(x[i]);
}

void vm_logf(const float *restrict x, float *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_logf(x[i]);
}

void vm_log(const double *restrict x, double *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_log(x[i]);
}

void vm_log1pf(const float *restrict x, float *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_log1pf(x[i]);
}

void vm_log1p(const double *restrict x, double *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_log1p(x[i]);
}

void vm_expm1f(const float *restrict x, float *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_expm1f(x[i]);
}

void vm_expm1(const double *restrict x, double *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_expm1(x[i]);
}

void vm_tanhf(const float *restrict x, float *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_tanhf(x[i]);
}

void vm_tanh(const double *restrict x, double *restrict y, long n)
{
    #pragma omp simd
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        y[i] = fl_tanh(x[i]);
}

/* Loss-kernel shaped loops (reduction + second output), as used by fastloss:
   softplus-style log-sum and its gradient. */
double vm_softplus_sum(const double *restrict x, double *restrict g, long n)
{
    double acc = 0.0;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) { /* VEC-LOOP */
        double e = fl_exp(-__builtin_fabs(x[i]));
        acc += (x[i] > 0.0 ? x[i] : 0.0) + fl_log1p(e);
        g[i] = x[i] > 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
    }
    return acc;
}

float vm_softplus_sumf(const float *restrict x, float *restrict g, long n)
{
    float acc = 0.0f;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) { /* VEC-LOOP */
        float e = fl_expf(-__builtin_fabsf(x[i]));
        acc += (x[i] > 0.0f ? x[i] : 0.0f) + fl_log1pf(e);
        g[i] = x[i] > 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
    return acc;
}

float vm_mixed_sumf(const float *restrict x, long n)
{
    float acc = 0.0f;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        acc += fl_logf(x[i]) + fl_tanhf(x[i]) + fl_expm1f(x[i]);
    return acc;
}

double vm_mixed_sum(const double *restrict x, long n)
{
    double acc = 0.0;
    #pragma omp simd reduction(+:acc)
    for (long i = 0; i < n; i++) /* VEC-LOOP */
        acc += fl_log(x[i]) + fl_tanh(x[i]) + fl_expm1(x[i]);
    return acc;
}
