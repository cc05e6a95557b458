/*
 * vmath.h -- branch-free, vectorizable elementary functions for fastloss.
 *
 *   float  fl_expf(float x);    double fl_exp(double x);
 *   float  fl_logf(float x);    double fl_log(double x);
 *   float  fl_log1pf(float x);  double fl_log1p(double x);
 *   float  fl_expm1f(float x);  double fl_expm1(double x);
 *   float  fl_tanhf(float x);   double fl_tanh(double x);
 *
 * All functions are `static inline` (always_inline), use no libm calls, no
 * tables, no branches and no errno: specials are handled by selects (ternaries
 * that GCC if-converts), integer work is done on the bit patterns (memcpy
 * punning), scaling by 2^k is done by building exponent fields.  They are meant
 * to be inlined into loops such as
 *
 *     #pragma omp simd reduction(+:acc)
 *     for (i = 0; i < n; i++) { float e = fl_expf(p[i]); acc += e; }
 *
 * compiled with  gcc -O3 -fopenmp-simd -fno-math-errno -fno-trapping-math
 * (no -ffast-math needed or assumed; correct with and without FMA
 * contraction, i.e. also in -mfma builds and target("avx2,fma") clones).
 * Only 32-bit integer ops (float versions) and 64-bit add/sub/and/or/logical
 * shifts (double versions) are used, so the loops vectorize with plain SSE2,
 * AVX2 and AVX-512.
 *
 * Accuracy: max error in ulps of the exact result.  Float: exhaustive over
 * all 2^32 inputs (float64 libm reference).  Double: ~1.1e7 random inputs
 * (log-uniform over the whole format + dense ranges around the worst spots)
 * against long double, plus 2e4 points against mpmath at 60 digits.
 * "sse2" = default x86-64 build, "fma" = -mavx2 -mfma and AVX-512 builds
 * (identical maxima for those two):
 *
 *   function     measured max ulp (sse2 / fma)   promised, asserted by tests
 *   fl_expf      0.79 / 0.79                     1.0
 *   fl_exp       0.78 / 0.78  (0.61 if normal)   1.0
 *   fl_logf      0.84 / 0.76                     1.0
 *   fl_log       0.82 / 0.76                     1.0
 *   fl_log1pf    0.87 / 0.76                     1.0
 *   fl_log1p     0.84 / 0.75                     1.0
 *   fl_expm1f    1.03 / 1.03                     1.5
 *   fl_expm1     1.05 / 1.02                     1.5
 *   fl_tanhf     1.09 / 1.09                     1.5
 *   fl_tanh      1.08 / 1.08                     1.5
 *
 * The figures cover the whole domain including subnormal inputs/outputs:
 * exp underflows gradually (fl_exp(-740) = 4.2e-322, fl_expf(-100) = 3.7e-44;
 * the largest exp errors are in the subnormal range, where the result is
 * rounded twice), log of subnormal inputs is within the bound, and the
 * tiny-argument regimes of log1p/expm1/tanh keep full relative accuracy
 * (fl_log1p(1e-30) = 1e-30, fl_expm1(1e-10) = 1.00000000005e-10, ...).
 *
 * Special values follow C99 Annex F (results only; FP exception flags are
 * neither raised reliably nor relied upon, errno is never touched):
 *   exp(+inf) = +inf, exp(-inf) = +0, overflow -> +inf, exp(nan) = nan
 *   log(+-0) = -inf, log(x<0) = nan, log(+inf) = +inf, log(nan) = nan
 *   log1p(-1) = -inf, log1p(x<-1) = nan, log1p(+inf) = +inf, log1p(+-0) = +-0
 *   expm1(-inf) = -1, expm1(+inf) = +inf, expm1(+-0) = +-0, overflow -> +inf
 *   tanh(+-inf) = +-1, tanh(+-0) = +-0
 *   NaN in -> NaN out for every function.
 *
 * Methods (polynomial coefficients are weighted minimax fits computed with a
 * Remez exchange in mpmath, rounded coefficient by coefficient with refits):
 *   exp:   k = round(x/ln2) with the 1.5*2^p "shifter" trick, Cody-Waite
 *          r = x - k*ln2hi - k*ln2lo (k*ln2hi exact), e^r = 1 + r + r^2*Q(r)
 *          (degree 6 / 12 overall), result scaled by two exponent-field
 *          powers of two 2^k1 * 2^k2 (k1 + k2 = k) so that subnormal results
 *          round only once and 2^k never has to be representable.
 *   log:   x = m*2^e with m in [sqrt(1/2), sqrt(2)) by integer arithmetic on
 *          the bits (subnormals pre-scaled), f = m-1 (exact), s = f/(2+f),
 *          log(1+f) = f - f^2/2 + s*(f^2/2 + R(s^2)) (fdlibm-style split),
 *          R of degree 3 (float) / 7 (double) in s^2.
 *   log1p: u = 1+x, log(u) as above plus the rounding correction
 *          c/u, c = (1+x) - u computed exactly.
 *   expm1: same reduction as exp; 2^k*(1+p) - 1 is assembled as an exact
 *          (2^k - 1) + 2^k*r_hi two-term sum plus small corrections, which
 *          avoids the cancellation near k = 1 and keeps tiny x exact.
 *   tanh:  |x| < 0.5494 (tanh < 1/2): x + x^3*P(x^2), odd polynomial of
 *          degree 11 (float) / 23 (double); otherwise 1 - 2/(exp(2|x|)+1)
 *          with the rounding error of exp(2|x|)+1 compensated (errors of
 *          exp are damped there); sign restored by bit ops.
 *
 * Compiler requirements: GCC (or a compiler with the same builtins), C99.
 * Vectorization needs -fno-trapping-math (GCC 12 will not if-convert the
 * floating-point compares behind the selects under the default
 * -ftrapping-math; the kernels' own selects need it too).  Do NOT compile
 * with -ffast-math, -fassociative-math or -ffinite-math-only: the exact
 * error-term arithmetic (Fast2Sum/2Sum) and the Inf/NaN selects rely on
 * IEEE semantics.  FMA contraction (-ffp-contract=fast, GCC's default) is
 * fine: every contracted product is either exact or only gains accuracy.
 */
#ifndef FASTLOSS_VMATH_H
#define FASTLOSS_VMATH_H

#include <stdint.h>

#define FL_VM_INLINE static inline __attribute__((always_inline))

/* ------------------------------------------------------------------------ */
/* bit casts (compile to nothing / register moves, vectorize as view casts)  */

FL_VM_INLINE uint32_t fl__f2u(float x)
{
    uint32_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}

FL_VM_INLINE float fl__u2f(uint32_t u)
{
    float x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

FL_VM_INLINE uint64_t fl__d2u(double x)
{
    uint64_t u;
    __builtin_memcpy(&u, &x, sizeof u);
    return u;
}

FL_VM_INLINE double fl__u2d(uint64_t u)
{
    double x;
    __builtin_memcpy(&x, &u, sizeof x);
    return x;
}

/* ------------------------------------------------------------------------ */
/* constants                                                                 */

#define FL__INFF   __builtin_inff()
#define FL__NANF   __builtin_nanf("")
#define FL__INF    __builtin_inf()
#define FL__NAN    __builtin_nan("")

/* float: round-to-int shifter, 1/ln2, ln2 split (ln2hi has 16 significant
   bits, so k*ln2hi is exact for |k| < 2^8) */
#define FL__SHIFTF  0x1.8p23f
#define FL__LOG2EF  0x1.715476p+0f
#define FL__LN2HIF  0x1.62e4p-1f
#define FL__LN2LOF  0x1.7f7d1cp-20f

/* double: same, ln2hi has 32 significant bits (exact k*ln2hi for |k|<2^21) */
#define FL__SHIFT   0x1.8p52
#define FL__LOG2E   0x1.71547652b82fep+0
#define FL__LN2HI   0x1.62e42feep-1
#define FL__LN2LO   0x1.a39ef35793c76p-33

/* exp, float: (e^r - 1 - r - r^2/2)/r^3 on |r| <= 0.3466, rel. err 2^-27.8 */
#define FL__EXPF_C0 0x1.555466p-3f
#define FL__EXPF_C1 0x1.5552fep-5f
#define FL__EXPF_C2 0x1.1257d6p-7f
#define FL__EXPF_C3 0x1.6ff1b6p-10f

/* exp, double: same function, rel. err 2^-63.5 */
#define FL__EXPD_C0 0x1.555555555555dp-3
#define FL__EXPD_C1 0x1.555555555556cp-5
#define FL__EXPD_C2 0x1.111111110e549p-7
#define FL__EXPD_C3 0x1.6c16c16c0a41fp-10
#define FL__EXPD_C4 0x1.a01a01b5f4d83p-13
#define FL__EXPD_C5 0x1.a01a01e8a9304p-16
#define FL__EXPD_C6 0x1.71ddeaaba8ebcp-19
#define FL__EXPD_C7 0x1.27e44a6ef71e1p-22
#define FL__EXPD_C8 0x1.af744b1ff55a4p-26
#define FL__EXPD_C9 0x1.2050d4d528b22p-29

/* expm1, float: same function weighted relative to expm1(r), err 2^-31 */
#define FL__EXPM1F_C0 0x1.555554p-3f
#define FL__EXPM1F_C1 0x1.5554eap-5f
#define FL__EXPM1F_C2 0x1.1113acp-7f
#define FL__EXPM1F_C3 0x1.6d4c6ep-10f
#define FL__EXPM1F_C4 0x1.9c5972p-13f

/* expm1, double: err 2^-59 */
#define FL__EXPM1D_C0 0x1.5555555555559p-3
#define FL__EXPM1D_C1 0x1.555555555554cp-5
#define FL__EXPM1D_C2 0x1.111111110f5b7p-7
#define FL__EXPM1D_C3 0x1.6c16c16c090eap-10
#define FL__EXPM1D_C4 0x1.a01a01b0b45cdp-13
#define FL__EXPM1D_C5 0x1.a01a025b3c46p-16
#define FL__EXPM1D_C6 0x1.71ddf522a2cd1p-19
#define FL__EXPM1D_C7 0x1.27e2662aad095p-22
#define FL__EXPM1D_C8 0x1.af662711b7079p-26
#define FL__EXPM1D_C9 0x1.24924f087a69p-29

/* log: R(z)/z with R(z) = 2 atanh(s)/s - 2, z = s^2 <= 0.0295.
   float: err 2^-30.2 (relative to log), double: err 2^-59.5 */
#define FL__LOGF_C0 0x1.55557ap-1f
#define FL__LOGF_C1 0x1.995ec2p-2f
#define FL__LOGF_C2 0x1.31e404p-2f

#define FL__LOGD_C0 0x1.5555555555593p-1
#define FL__LOGD_C1 0x1.999999997f96fp-2
#define FL__LOGD_C2 0x1.2492494236a71p-2
#define FL__LOGD_C3 0x1.c71c51cadae26p-3
#define FL__LOGD_C4 0x1.74664cd2e06p-3
#define FL__LOGD_C5 0x1.39a039fe8c73dp-3
#define FL__LOGD_C6 0x1.2f1578222fd56p-3

/* tanh: (tanh(x) - x)/x^3 as a polynomial in z = x^2 <= 0.3019.
   float: err 2^-29.7, double: err 2^-60.6 (relative to tanh) */
#define FL__TANHF_C0 -0x1.55554ap-2f
#define FL__TANHF_C1 0x1.110ceep-3f
#define FL__TANHF_C2 -0x1.b91e7ep-5f
#define FL__TANHF_C3 0x1.58e518p-6f
#define FL__TANHF_C4 -0x1.9921a2p-8f

#define FL__TANHD_C0 -0x1.555555555554fp-2
#define FL__TANHD_C1 0x1.111111111079p-3
#define FL__TANHD_C2 -0x1.ba1ba1b97cb43p-5
#define FL__TANHD_C3 0x1.664f485941259p-6
#define FL__TANHD_C4 -0x1.226e2f0e710f1p-7
#define FL__TANHD_C5 0x1.d6d29aa5efefdp-9
#define FL__TANHD_C6 -0x1.7d8fc7c794071p-10
#define FL__TANHD_C7 0x1.34834f1b94b9ep-11
#define FL__TANHD_C8 -0x1.e96c198c41ea3p-13
#define FL__TANHD_C9 0x1.5d6a3e15bb886p-14
#define FL__TANHD_C10 -0x1.46f9493f457d7p-16

/* ======================================================================== */
/* exp                                                                      */

FL_VM_INLINE float fl_expf(float x)
{
    /* Clamp: e^90 overflows, e^-110 underflows to +0; NaN passes through
       (the comparisons are false for NaN). */
    float xc = x > 90.0f ? 90.0f : x;
    xc = xc < -110.0f ? -110.0f : xc;

    /* kd = shifter + round(x/ln2); k in [-159, 130] */
    float kd = xc * FL__LOG2EF + FL__SHIFTF;
    float k = kd - FL__SHIFTF;
    float rhi = xc - k * FL__LN2HIF;        /* exact */
    float rlo = k * -FL__LN2LOF;
    float r = rhi + rlo;                    /* |r| <= 0.3466 */

    float r2 = r * r;
    float p = FL__EXPF_C0 + r * (FL__EXPF_C1 + r * (FL__EXPF_C2 + r * FL__EXPF_C3));
    float q = r2 * (0.5f + r * p);          /* e^r - 1 - r */
    /* e^r = (1 + rhi) + (rlo + q), with 1 + rhi = S + c exactly (Fast2Sum) */
    float S = 1.0f + rhi;
    float c = (1.0f - S) + rhi;
    float er = S + (c + (rlo + q));

    /* 2^k = 2^k1 * 2^k2 with k1 = floor(k/2), k2 = k - k1, built from the low
       bits of kd (which hold k + const with const = 0 mod 2^9). */
    uint32_t ub = fl__f2u(kd);
    uint32_t t = ((ub + 256u) & 0x1ffu) >> 1;        /* k1 + 128 */
    float s1 = fl__u2f((t - 1u) << 23);               /* 2^k1 */
    float s2 = fl__u2f((ub - t + 255u) << 23);        /* 2^k2 */
    return (er * s1) * s2;
}

FL_VM_INLINE double fl_exp(double x)
{
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -750.0 ? -750.0 : xc;

    double kd = xc * FL__LOG2E + FL__SHIFT;        /* k in [-1083, 1025] */
    double k = kd - FL__SHIFT;
    double rhi = xc - k * FL__LN2HI;
    double rlo = k * -FL__LN2LO;
    double r = rhi + rlo;

    double r2 = r * r;
    double r4 = r2 * r2;
    double p = (FL__EXPD_C0 + r * FL__EXPD_C1)
             + r2 * (FL__EXPD_C2 + r * FL__EXPD_C3)
             + r4 * ((FL__EXPD_C4 + r * FL__EXPD_C5)
                     + r2 * (FL__EXPD_C6 + r * FL__EXPD_C7)
                     + r4 * (FL__EXPD_C8 + r * FL__EXPD_C9));
    double q = r2 * (0.5 + r * p);
    double S = 1.0 + rhi;
    double c = (1.0 - S) + rhi;
    double er = S + (c + (rlo + q));

    uint64_t ub = fl__d2u(kd);
    uint64_t t = ((ub + 2048u) & 0x1fffu) >> 1;      /* k1 + 1024 */
    double s1 = fl__u2d((t - 1u) << 52);
    double s2 = fl__u2d((ub - t + 2047u) << 52);
    return (er * s1) * s2;
}

/* ======================================================================== */
/* log / log1p                                                              */

/* e*ln2 + log(1+f) + c, for f in [sqrt(1/2)-1, sqrt(2)-1), small c */
FL_VM_INLINE float fl__log_coref(float f, float e, float c)
{
    float s = f / (2.0f + f);
    float z = s * s;
    float R = z * (FL__LOGF_C0 + z * (FL__LOGF_C1 + z * FL__LOGF_C2));
    float hfsq = 0.5f * f * f;
    return e * FL__LN2HIF + (f - (hfsq - (s * (hfsq + R) + (e * FL__LN2LOF + c))));
}

FL_VM_INLINE double fl__log_core(double f, double e, double c)
{
    double s = f / (2.0 + f);
    double z = s * s;
    double w = z * z;
    double R = z * ((FL__LOGD_C0 + z * FL__LOGD_C1)
                    + w * ((FL__LOGD_C2 + z * FL__LOGD_C3)
                           + w * ((FL__LOGD_C4 + z * FL__LOGD_C5)
                                  + w * FL__LOGD_C6)));
    double hfsq = 0.5 * f * f;
    return e * FL__LN2HI + (f - (hfsq - (s * (hfsq + R) + (e * FL__LN2LO + c))));
}

/* Split positive normal x (as bits u) into m*2^e, m in [sqrt(1/2), sqrt(2)):
   v = u - bits(sqrt(1/2)) + bias<<p keeps everything non-negative, so only
   logical shifts are needed. */
FL_VM_INLINE float fl__log_splitf(uint32_t u, float *e)
{
    uint32_t v = u + 0x004afb0du;                  /* u + (127<<23) - 0x3f3504f3 */
    *e = (float)(int32_t)(v >> 23) - 127.0f;
    return fl__u2f((v & 0x007fffffu) + 0x3f3504f3u);
}

FL_VM_INLINE double fl__log_split(uint64_t u, double *e)
{
    uint64_t v = u + 0x00095f619980c433ull;        /* u + (1023<<52) - bits(sqrt(.5)) */
    /* (v >> 52) < 2^12: convert to double through the 2^52 mantissa trick */
    *e = fl__u2d((v >> 52) | 0x4330000000000000ull) - (0x1p52 + 1023.0);
    return fl__u2d((v & 0x000fffffffffffffull) + 0x3fe6a09e667f3bcdull);
}

FL_VM_INLINE float fl_logf(float x)
{
    /* subnormals (and zero/negatives, fixed below) are scaled by 2^23 */
    int sub = x < 0x1p-126f;
    float xs = sub ? x * 0x1p23f : x;
    float e;
    float m = fl__log_splitf(fl__f2u(xs), &e);
    e = sub ? e - 23.0f : e;
    float r = fl__log_coref(m - 1.0f, e, 0.0f);
    r = x < 0.0f ? FL__NANF : r;
    r = x == 0.0f ? -FL__INFF : r;
    r = x < FL__INFF ? r : x;                     /* +inf -> +inf, NaN -> NaN */
    return r;
}

FL_VM_INLINE double fl_log(double x)
{
    int sub = x < 0x1p-1022;
    double xs = sub ? x * 0x1p54 : x;
    double e;
    double m = fl__log_split(fl__d2u(xs), &e);
    e = sub ? e - 54.0 : e;
    double r = fl__log_core(m - 1.0, e, 0.0);
    r = x < 0.0 ? FL__NAN : r;
    r = x == 0.0 ? -FL__INF : r;
    r = x < FL__INF ? r : x;
    return r;
}

FL_VM_INLINE float fl_log1pf(float x)
{
    float u = 1.0f + x;                 /* >= 2^-24 for x > -1: never subnormal */
    /* c = (1 + x) - u exactly (both forms are exact in their range) */
    float c = u < 2.0f ? x - (u - 1.0f) : 1.0f - (u - x);
    float e;
    float m = fl__log_splitf(fl__f2u(u), &e);
    float r = fl__log_coref(m - 1.0f, e, c / u);
    r = x < -1.0f ? FL__NANF : r;
    r = x == -1.0f ? -FL__INFF : r;
    r = x == 0.0f ? x : r;                        /* keeps the sign of zero */
    r = x < FL__INFF ? r : x;
    return r;
}

FL_VM_INLINE double fl_log1p(double x)
{
    double u = 1.0 + x;
    double c = u < 2.0 ? x - (u - 1.0) : 1.0 - (u - x);
    double e;
    double m = fl__log_split(fl__d2u(u), &e);
    double r = fl__log_core(m - 1.0, e, c / u);
    r = x < -1.0 ? FL__NAN : r;
    r = x == -1.0 ? -FL__INF : r;
    r = x == 0.0 ? x : r;
    r = x < FL__INF ? r : x;
    return r;
}

/* ======================================================================== */
/* expm1                                                                    */

FL_VM_INLINE float fl_expm1f(float x)
{
    /* expm1f(x) rounds to -1 for x < -17.4; e^90 overflows */
    float xc = x > 90.0f ? 90.0f : x;
    xc = xc < -20.0f ? -20.0f : xc;

    float kd = xc * FL__LOG2EF + FL__SHIFTF;       /* k in [-29, 130] */
    float k = kd - FL__SHIFTF;
    float rhi = xc - k * FL__LN2HIF;                /* exact */
    float rlo = k * -FL__LN2LOF;
    float r = rhi + rlo;

    float p = FL__EXPM1F_C0 + r * (FL__EXPM1F_C1 + r * (FL__EXPM1F_C2
              + r * (FL__EXPM1F_C3 + r * FL__EXPM1F_C4)));
    float q = (r * r) * (0.5f + r * p);             /* expm1(r) - r */

    /* 2^k = 2^k1 * 2^k2, k1 = min(k, 40): with k1 <= 40 the "-1" below is
       exact enough; beyond that it is negligible (< 2^-40 relative). */
    float k1 = k < 40.0f ? k : 40.0f;
    float k2 = k - k1;
    float s1 = fl__u2f((fl__f2u(k1 + FL__SHIFTF) + 127u) << 23);
    float s2 = fl__u2f((fl__f2u(k2 + FL__SHIFTF) + 127u) << 23);

    /* 2^k1 - 1 = T + Tlo exactly (2Sum) */
    float T = s1 - 1.0f;
    float bb = T - s1;
    float Tlo = (s1 - (T - bb)) + (-1.0f - bb);
    /* (T + 2^k1*rhi) = S + err exactly (Fast2Sum, |T| >= |2^k1 rhi|) */
    float A = s1 * rhi;
    float S = T + A;
    float err = (T - S) + A;
    float res = (S + (err + (Tlo + s1 * (rlo + q)))) * s2;
    return x == 0.0f ? x : res;                     /* expm1(-0) = -0 */
}

FL_VM_INLINE double fl_expm1(double x)
{
    double xc = x > 710.0 ? 710.0 : x;
    xc = xc < -45.0 ? -45.0 : xc;

    double kd = xc * FL__LOG2E + FL__SHIFT;          /* k in [-65, 1025] */
    double k = kd - FL__SHIFT;
    double rhi = xc - k * FL__LN2HI;
    double rlo = k * -FL__LN2LO;
    double r = rhi + rlo;

    double r2 = r * r;
    double r4 = r2 * r2;
    double p = (FL__EXPM1D_C0 + r * FL__EXPM1D_C1)
             + r2 * (FL__EXPM1D_C2 + r * FL__EXPM1D_C3)
             + r4 * ((FL__EXPM1D_C4 + r * FL__EXPM1D_C5)
                     + r2 * (FL__EXPM1D_C6 + r * FL__EXPM1D_C7)
                     + r4 * (FL__EXPM1D_C8 + r * FL__EXPM1D_C9));
    double q = r2 * (0.5 + r * p);

    double k1 = k < 80.0 ? k : 80.0;
    double k2 = k - k1;
    double s1 = fl__u2d((fl__d2u(k1 + FL__SHIFT) + 1023u) << 52);
    double s2 = fl__u2d((fl__d2u(k2 + FL__SHIFT) + 1023u) << 52);

    double T = s1 - 1.0;
    double bb = T - s1;
    double Tlo = (s1 - (T - bb)) + (-1.0 - bb);
    double A = s1 * rhi;
    double S = T + A;
    double err = (T - S) + A;
    double res = (S + (err + (Tlo + s1 * (rlo + q)))) * s2;
    return x == 0.0 ? x : res;
}

/* ======================================================================== */
/* tanh                                                                     */

FL_VM_INLINE float fl_tanhf(float x)
{
    float ax = __builtin_fabsf(x);
    /* small: odd polynomial */
    float z = ax * ax;
    float p = FL__TANHF_C0 + z * (FL__TANHF_C1 + z * (FL__TANHF_C2
              + z * (FL__TANHF_C3 + z * FL__TANHF_C4)));
    float small = ax + ax * (z * p);
    /* large: 1 - 2/(e^{2|x|} + 1); |x| >= 10 gives exactly 1 */
    float axc = ax > 10.0f ? 10.0f : ax;             /* NaN stays NaN */
    float E = fl_expf(2.0f * axc);                   /* >= 3 where used */
    float D = E + 1.0f;
    float dlo = (E - D) + 1.0f;                      /* E + 1 = D + dlo */
    float w = 2.0f / D;
    w = w - (0.5f * w) * (w * dlo);                  /* 2/(D + dlo) */
    float big = 1.0f - w;
    float r = ax < 0.5494f ? small : big;
    return fl__u2f(fl__f2u(r) | (fl__f2u(x) & 0x80000000u));
}

FL_VM_INLINE double fl_tanh(double x)
{
    double ax = __builtin_fabs(x);
    double z = ax * ax;
    double z2 = z * z;
    double z4 = z2 * z2;
    double p = (FL__TANHD_C0 + z * FL__TANHD_C1)
             + z2 * (FL__TANHD_C2 + z * FL__TANHD_C3)
             + z4 * ((FL__TANHD_C4 + z * FL__TANHD_C5)
                     + z2 * (FL__TANHD_C6 + z * FL__TANHD_C7)
                     + z4 * ((FL__TANHD_C8 + z * FL__TANHD_C9)
                             + z2 * FL__TANHD_C10));
    double small = ax + ax * (z * p);
    double axc = ax > 20.0 ? 20.0 : ax;
    double E = fl_exp(2.0 * axc);
    double D = E + 1.0;
    double dlo = (E - D) + 1.0;
    double w = 2.0 / D;
    w = w - (0.5 * w) * (w * dlo);
    double big = 1.0 - w;
    double r = ax < 0.5494 ? small : big;
    return fl__u2d(fl__d2u(r) | (fl__d2u(x) & 0x8000000000000000ull));
}

#endif /* FASTLOSS_VMATH_H */
