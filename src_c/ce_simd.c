/* Hand-vectorized AVX-512 core of cross_entropy's row path (float32):
 * the segment maximum, exp(z - m) stored and summed, and the scaling of the
 * stored exponentials into the gradient.  This is the hot loop of every
 * cross_entropy call with more than CE_COLS_MAXC classes; the portable C
 * version in class_template.h does the same work, but GCC's code for it
 * carries a scalar remainder loop, horizontal reductions through memory and a
 * two-step 2^k scaling that together cost twice these loops' time.
 *
 * exp here is specialised to arguments d <= 0 (d = z - max): k = round(d/ln2),
 * Cody-Waite reduction r = d - k ln2 (two FMAs), e^r by a degree-7 minimax
 * polynomial in Horner form (Cephes' expf coefficients), and 2^k applied by
 * vscalefps, which rounds subnormal results once and underflows to +0
 * exactly.  Max error 1.4 ulp over [-104, 0] (checked against float64 exp by
 * tests/test_classes.py through the loss and gradient); d = -inf gives +0,
 * NaN stays NaN.
 *
 * Sums: each lane accumulates 16 exponentials in float, then the partial
 * vector is added into two float64 accumulators; the result does not depend
 * on the thread count (a row is always summed by one thread, segment by
 * segment). */
#include "fl_internal.h"
#include "ce_simd.h"

#if FL_HAVE_CE_AVX512
#include <immintrin.h>
#include <math.h>

#include "vmath.h"

int fl_cpu_avx512(void)
{
    static int have = -1;
    if (have < 0) {
        __builtin_cpu_init();
        have = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }
    return have;
}

#define AVX512 __attribute__((target("avx512f,avx512dq,avx2,fma")))

AVX512 static inline __m512 exp_le0_ps(__m512 d)
{
    const __m512 log2e = _mm512_set1_ps(1.44269502f);
    const __m512 shift = _mm512_set1_ps(12582912.0f);     /* 1.5 * 2^23 */
    const __m512 ln2hi = _mm512_set1_ps(0.693145752f);
    const __m512 ln2lo = _mm512_set1_ps(1.42860677e-06f);
    /* below -110, e^d is 0 in float; NaN passes (max returns the 2nd operand) */
    d = _mm512_max_ps(_mm512_set1_ps(-110.0f), d);
    __m512 kd = _mm512_fmadd_ps(d, log2e, shift);
    __m512 k = _mm512_sub_ps(kd, shift);
    __m512 r = _mm512_fnmadd_ps(k, ln2hi, d);
    r = _mm512_fnmadd_ps(k, ln2lo, r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

AVX512 static inline void acc_flush(__m512 *sf, __m512d *lo, __m512d *hi)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(*sf)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(
                                 _mm512_extractf64x4_pd(_mm512_castps_pd(*sf), 1))));
    *sf = _mm512_setzero_ps();
}

/* One pass: e = exp(z - m) (stored in g when g != NULL), S += e and, when
 * SX, Sx += e for every class but y. */
AVX512 static inline void exp_pass(const float *z, fl_idx n, float m, float *g, fl_idx y,
                                   const int SX, double *S, double *Sx)
{
    const __m512 mv = _mm512_set1_ps(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d x0 = _mm512_setzero_pd(), x1 = _mm512_setzero_pd();
    __m512 sf = _mm512_setzero_ps(), xf = _mm512_setzero_ps();
    const __m512i yv = _mm512_set1_epi32((int)(SX ? y : 0));
    __m512i iv = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i sixteen = _mm512_set1_epi32(16);
    fl_idx c = 0;
    while (c < n) {
        /* blocks of at most 16 vectors summed in float, then in double */
        fl_idx end = n - c > 256 ? c + 256 : n;
        for (; c + 16 <= end; c += 16) {
            __m512 e = exp_le0_ps(_mm512_sub_ps(_mm512_loadu_ps(z + c), mv));
            if (g) _mm512_storeu_ps(g + c, e);
            sf = _mm512_add_ps(sf, e);
            if (SX) {
                __mmask16 ne = _mm512_cmpneq_epi32_mask(iv, yv);
                xf = _mm512_mask_add_ps(xf, ne, xf, e);
                iv = _mm512_add_epi32(iv, sixteen);
            }
        }
        if (c < end) {                       /* the row's last, partial vector */
            __mmask16 k = (__mmask16)((1u << (end - c)) - 1u);
            __m512 e = exp_le0_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, z + c), mv));
            if (g) _mm512_mask_storeu_ps(g + c, k, e);
            sf = _mm512_mask_add_ps(sf, k, sf, e);
            if (SX) {
                __mmask16 ne = _mm512_mask_cmpneq_epi32_mask(k, iv, yv);
                xf = _mm512_mask_add_ps(xf, ne, xf, e);
            }
            c = end;
        }
        acc_flush(&sf, &s0, &s1);
        if (SX) acc_flush(&xf, &x0, &x1);
    }
    *S = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    if (SX) *Sx = _mm512_reduce_add_pd(_mm512_add_pd(x0, x1));
}

AVX512 int fl_ce_seg_a_f32_avx512(const float *z, fl_idx n, fl_idx y, float *g,
                                  double *S, double *Sx, float *mout)
{
    /* the maximum, ignoring NaN as the portable loop does (vmaxps returns
     * its second operand when either is NaN) */
    __m512 m0 = _mm512_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    fl_idx c = 0;
    for (; c + 64 <= n; c += 64) {
        m0 = _mm512_max_ps(_mm512_loadu_ps(z + c), m0);
        m1 = _mm512_max_ps(_mm512_loadu_ps(z + c + 16), m1);
        m2 = _mm512_max_ps(_mm512_loadu_ps(z + c + 32), m2);
        m3 = _mm512_max_ps(_mm512_loadu_ps(z + c + 48), m3);
    }
    for (; c + 16 <= n; c += 16) m0 = _mm512_max_ps(_mm512_loadu_ps(z + c), m0);
    if (c < n) {
        __mmask16 k = (__mmask16)((1u << (n - c)) - 1u);
        m1 = _mm512_mask_max_ps(m1, k, _mm512_maskz_loadu_ps(k, z + c), m1);
    }
    float m = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_max_ps(m0, m1),
                                                 _mm512_max_ps(m2, m3)));
    if (!(m > -INFINITY && m < INFINITY)) return 0;   /* the portable path's limits */
    *mout = m;
    int has_y = y >= 0 && y < n;
    if (has_y && z[y] == m) {
        /* the target is the maximum: its loss is log1p(Sx), so Sx is summed
         * apart (S - 1 would lose the small terms) */
        exp_pass(z, n, m, g, y, 1, S, Sx);
    } else {
        exp_pass(z, n, m, g, y, 0, S, Sx);
        /* the target is not the maximum: Sx >= 1, S - e_y does not cancel */
        *Sx = has_y ? *S - (double)_mm512_cvtss_f32(exp_le0_ps(_mm512_set1_ps(z[y] - m))) : *S;
    }
    return 1;
}

AVX512 void fl_ce_scale_f32_avx512(float *g, fl_idx n, float f)
{
    const __m512 fv = _mm512_set1_ps(f);
    fl_idx c = 0;
    for (; c + 32 <= n; c += 32) {
        _mm512_storeu_ps(g + c, _mm512_mul_ps(_mm512_loadu_ps(g + c), fv));
        _mm512_storeu_ps(g + c + 16, _mm512_mul_ps(_mm512_loadu_ps(g + c + 16), fv));
    }
    for (; c + 16 <= n; c += 16)
        _mm512_storeu_ps(g + c, _mm512_mul_ps(_mm512_loadu_ps(g + c), fv));
    if (c < n) {
        __mmask16 k = (__mmask16)((1u << (n - c)) - 1u);
        _mm512_mask_storeu_ps(g + c, k, _mm512_mul_ps(_mm512_maskz_loadu_ps(k, g + c), fv));
    }
}

/* ------------------------------------------------------------------
 * Few classes (C <= CE_COLS_MAXC): 16 samples per vector.  A block of J <= 64
 * rows is gathered class by class into buf (class c of sample j at
 * buf[c * 64 + j]), the maximum, exponentials and sums run across samples,
 * the per-sample logs in float64 (vmath, vectorized), and the gradient is
 * scattered back into the rows.  Infinite maxima take the same limits as the
 * portable loops (a sample's result never depends on its neighbours). */
#define CB 64

AVX512 int fl_ce_cols_f32_avx512(const fl_cls_args *a, fl_idx i0, fl_idx J, float *buf,
                                 double *acc_out)
{
    const fl_idx C = a->C;
    const float *z = (const float *)a->z + i0 * C;
    const int64_t *yv = a->y + i0;
    const float *cw = (const float *)a->cw;
    const float *sw = a->sw ? (const float *)a->sw + i0 : NULL;
    float *g = a->grad ? (float *)a->grad + i0 * C : NULL;
    float *val = a->val ? (float *)a->val + i0 : NULL;
    const double scale = (double)(float)a->scale;
    float mA[CB], SA[CB], SxA[CB], zyA[CB], fA[CB], gyA[CB];
    double cwA[CB], sjA[CB], lossA[CB];
    int32_t yA[CB];
    unsigned char ign[CB];
    __mmask16 infm[CB / 16];
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512 ninf = _mm512_set1_ps(-INFINITY);

    for (fl_idx j = 0; j < J; j++) {
        int64_t y = yv[j];
        ign[j] = a->has_ignore && y == a->ignore_index;
        yA[j] = ign[j] ? 0 : (int32_t)y;      /* checked in [0, C) by the prepass */
        cwA[j] = cw ? (double)cw[yA[j]] : 1.0;
        sjA[j] = ign[j] ? 0.0 : (sw ? (double)sw[j] : 1.0);
    }
    /* pass 1: gather the classes into buf and take the maximum */
    for (fl_idx jb = 0; jb < J; jb += 16) {
        const fl_idx nb = J - jb < 16 ? J - jb : 16;
        const __mmask16 km = (__mmask16)((1u << nb) - 1u);
        const __m512i base = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)jb)),
                                                _mm512_set1_epi32((int)C));
        __m512 m = ninf;
        for (fl_idx c = 0; c < C; c++) {
            __m512 v = _mm512_mask_i32gather_ps(ninf, km, _mm512_add_epi32(base, _mm512_set1_epi32((int)c)),
                                                z, 4);
            _mm512_storeu_ps(buf + c * CB + jb, v);
            m = _mm512_max_ps(v, m);
        }
        /* a sample with an infinite maximum, or all -inf / NaN (m = -inf) */
        infm[jb / 16] = (__mmask16)(km & ~_mm512_mask_cmp_ps_mask(km, _mm512_abs_ps(m),
                                                                  _mm512_set1_ps(INFINITY),
                                                                  _CMP_LT_OQ));
        _mm512_storeu_ps(mA + jb, m);
    }
    /* pass 2: exponentials (kept in buf) and the sums with / without y */
    for (fl_idx jb = 0; jb < J; jb += 16) {
        const fl_idx nb = J - jb < 16 ? J - jb : 16;
        const __mmask16 km = (__mmask16)((1u << nb) - 1u);
        const __m512 m = _mm512_loadu_ps(mA + jb);
        const __m512i y = _mm512_maskz_loadu_epi32(km, yA + jb);
        __m512 S = _mm512_setzero_ps(), Sx = _mm512_setzero_ps();
        const __mmask16 inf = infm[jb / 16];
        for (fl_idx c = 0; c < C; c++) {
            __m512 zc = _mm512_loadu_ps(buf + c * CB + jb);
            __m512 d = _mm512_sub_ps(zc, m);
            /* the limits, as the portable loops: a class at an infinite
             * maximum counts exp(0) = 1, the others exp(-inf) = 0 */
            if (inf) d = _mm512_mask_mov_ps(d, _mm512_cmpeq_ps_mask(zc, m), _mm512_setzero_ps());
            __m512 e = exp_le0_ps(d);
            _mm512_storeu_ps(buf + c * CB + jb, e);
            S = _mm512_add_ps(S, e);
            __mmask16 ne = _mm512_cmpneq_epi32_mask(y, _mm512_set1_epi32((int)c));
            Sx = _mm512_mask_add_ps(Sx, ne, Sx, e);
        }
        if (inf) {              /* every logit -inf (or NaN): no limit, NaN */
            __mmask16 none = _mm512_mask_cmp_ps_mask(inf, m, ninf, _CMP_EQ_OQ);
            S = _mm512_mask_mov_ps(S, none, _mm512_set1_ps(NAN));
            Sx = _mm512_mask_mov_ps(Sx, none, _mm512_set1_ps(NAN));
        }
        _mm512_storeu_ps(SA + jb, S);
        _mm512_storeu_ps(SxA + jb, Sx);
        const __m512i base = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)jb)),
                                                _mm512_set1_epi32((int)C));
        _mm512_storeu_ps(zyA + jb, _mm512_mask_i32gather_ps(m, km, _mm512_add_epi32(base, y), z, 4));
    }
    /* per sample, in float64: loss, 1/S, the target entry */
    double acc = 0.0;
    #pragma omp simd reduction(+:acc)
    for (fl_idx j = 0; j < J; j++) {
        double S = (double)SA[j], Sx = (double)SxA[j], M = (double)mA[j], zy = (double)zyA[j];
        double cwy = cwA[j], sj = sjA[j];
        /* lse - z_y; log1p(Sx) when y is the maximum (tiny losses exact) */
        double main = zy == M ? fl_log1p(Sx) : (M - zy) + fl_log(S);
        double loss = ign[j] ? 0.0 : sj * (cwy * main);
        lossA[j] = loss;
        acc += loss;
        double k = sj * scale * cwy, f = 1.0 / S;
        fA[j] = (float)(k * f);
        gyA[j] = (float)(k * (-Sx * f));
    }
    if (val)
        for (fl_idx j = 0; j < J; j++) val[j] = (float)lossA[j];
    *acc_out = acc;
    if (!g) return 1;
    /* pass 3: the gradient, scattered into the rows */
    for (fl_idx jb = 0; jb < J; jb += 16) {
        const fl_idx nb = J - jb < 16 ? J - jb : 16;
        const __mmask16 km = (__mmask16)((1u << nb) - 1u);
        const __m512i base = _mm512_mullo_epi32(_mm512_add_epi32(lane, _mm512_set1_epi32((int)jb)),
                                                _mm512_set1_epi32((int)C));
        const __m512 f = _mm512_loadu_ps(fA + jb), gy = _mm512_loadu_ps(gyA + jb);
        const __m512i y = _mm512_maskz_loadu_epi32(km, yA + jb);
        __mmask16 live = km;
        for (fl_idx j = 0; j < nb; j++)
            if (ign[jb + j]) live &= (__mmask16)~(1u << j);
        for (fl_idx c = 0; c < C; c++) {
            __m512 v = _mm512_mul_ps(_mm512_loadu_ps(buf + c * CB + jb), f);
            v = _mm512_mask_mov_ps(v, _mm512_cmpeq_epi32_mask(y, _mm512_set1_epi32((int)c)), gy);
            v = _mm512_maskz_mov_ps(live, v);       /* ignored samples: exact zeros */
            _mm512_mask_i32scatter_ps(g, km, _mm512_add_epi32(base, _mm512_set1_epi32((int)c)), v, 4);
        }
    }
    return 1;
}

#else
int fl_cpu_avx512(void) { return 0; }
#endif
