/* Hand-vectorized AVX-512 loops of cross_entropy (labels, no smoothing):
 *  - the row path (C > CE_COLS_MAXC), float32 and float64, per segment: the
 *    maximum, exp(z - m) stored and summed, and the scaling of the stored
 *    exponentials into the gradient (ce_simd_row.h, instantiated twice);
 *  - the path across samples for few classes (C <= CE_COLS_MAXC), float32.
 * The portable C loops in class_template.h do the same work (and everything
 * else: smoothing, probability targets, Hessians, other ISAs); GCC's code
 * for them carries scalar remainder loops, horizontal reductions through
 * memory and a two-step 2^k scaling that together cost 2-5x these loops.
 *
 * exp is specialised to arguments d <= 0 (d = z - max): k = round(d/ln2),
 * Cody-Waite reduction r = d - k ln2 (FMAs), e^r by a polynomial, 2^k
 * applied by vscalefp[sd], which rounds subnormal results once and
 * underflows to +0 exactly.  float: degree-7 minimax (Cephes' expf
 * coefficients), max error 1.4 ulp over [-110, 0]; double: vmath's degree-12
 * polynomial and exact 1 + r split (< 1 ulp).  Checked element by element
 * against float64 oracles by tests/test_classes.py (test_ce_simd_rows_*).
 * d = -inf gives +0, NaN stays NaN.
 *
 * Sums: float lanes accumulate 16 exponentials, then the partial vector is
 * added into float64 accumulators; a row is always summed by one thread,
 * segment by segment, so results do not depend on the thread count. */
#include "fl_internal.h"
#include "ce_simd.h"

#if FL_HAVE_CE_AVX512
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

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

/* blocks of E sums into two float64 accumulators */
/* exp(d) for d <= 0 in double: the same reduction, vmath's degree-12
 * polynomial for e^r and its exact 1 + rhi split (0.78 ulp in vmath), the
 * scaling by vscalefpd.  NaN passes; below -746 the result is +0. */
AVX512 static inline __m512d exp_le0_pd(__m512d d)
{
    const __m512d shift = _mm512_set1_pd(0x1.8p52);
    d = _mm512_max_pd(_mm512_set1_pd(-746.0), d);
    __m512d kd = _mm512_fmadd_pd(d, _mm512_set1_pd(0x1.71547652b82fep+0), shift);
    __m512d k = _mm512_sub_pd(kd, shift);
    __m512d rhi = _mm512_fnmadd_pd(k, _mm512_set1_pd(0x1.62e42feep-1), d);
    __m512d rlo = _mm512_mul_pd(k, _mm512_set1_pd(-0x1.a39ef35793c76p-33));
    __m512d r = _mm512_add_pd(rhi, rlo);
    __m512d p = _mm512_set1_pd(0x1.2050d4d528b22p-29);
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.af744b1ff55a4p-26));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.27e44a6ef71e1p-22));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.71ddeaaba8ebcp-19));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.a01a01e8a9304p-16));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.a01a01b5f4d83p-13));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.6c16c16c0a41fp-10));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.111111110e549p-7));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.555555555556cp-5));
    p = _mm512_fmadd_pd(p, r, _mm512_set1_pd(0x1.555555555555dp-3));
    __m512d q = _mm512_mul_pd(_mm512_mul_pd(r, r), _mm512_fmadd_pd(r, p, _mm512_set1_pd(0.5)));
    /* e^r = (1 + rhi) + (rlo + q), 1 + rhi = S + c exactly */
    const __m512d one = _mm512_set1_pd(1.0);
    __m512d S = _mm512_add_pd(one, rhi);
    __m512d c = _mm512_add_pd(_mm512_sub_pd(one, S), rhi);
    __m512d er = _mm512_add_pd(S, _mm512_add_pd(c, _mm512_add_pd(rlo, q)));
    return _mm512_scalef_pd(er, k);
}

/* blocks of E sums into two float64 accumulators */
AVX512 static inline void acc_flush_f32_avx512(__m512 *sf, __m512d *lo, __m512d *hi)
{
    *lo = _mm512_add_pd(*lo, _mm512_cvtps_pd(_mm512_castps512_ps256(*sf)));
    *hi = _mm512_add_pd(*hi, _mm512_cvtps_pd(_mm256_castpd_ps(
                                 _mm512_extractf64x4_pd(_mm512_castps_pd(*sf), 1))));
    *sf = _mm512_setzero_ps();
}

AVX512 static inline void acc_flush_f64_avx512(__m512d *sf, __m512d *lo, __m512d *hi)
{
    (void)hi;
    *lo = _mm512_add_pd(*lo, *sf);
    *sf = _mm512_setzero_pd();
}

#define E float
#define V __m512
#define K __mmask16
#define L 16
#define SFXR(n) n##_f32_avx512
#define VSET1 _mm512_set1_ps
#define VLOAD _mm512_loadu_ps
#define VLOADZ _mm512_maskz_loadu_ps
#define VSTORE _mm512_storeu_ps
#define VSTOREM _mm512_mask_storeu_ps
#define VSUB _mm512_sub_ps
#define VADD _mm512_add_ps
#define VMUL _mm512_mul_ps
#define VMAX _mm512_max_ps
#define VMMAX _mm512_mask_max_ps
#define VMADD _mm512_mask_add_ps
#define VREDMAX _mm512_reduce_max_ps
#define VFIRST _mm512_cvtss_f32
#define VEXP exp_le0_ps
#define ISET1(x) _mm512_set1_epi32((int)(x))
#define IINIT _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)
#define IADD _mm512_add_epi32
#define INE _mm512_cmpneq_epi32_mask
#include "ce_simd_row.h"     /* (undefines its parameters) */

#define E double
#define V __m512d
#define K __mmask8
#define L 8
#define SFXR(n) n##_f64_avx512
#define VSET1 _mm512_set1_pd
#define VLOAD _mm512_loadu_pd
#define VLOADZ _mm512_maskz_loadu_pd
#define VSTORE _mm512_storeu_pd
#define VSTOREM _mm512_mask_storeu_pd
#define VSUB _mm512_sub_pd
#define VADD _mm512_add_pd
#define VMUL _mm512_mul_pd
#define VMAX _mm512_max_pd
#define VMMAX _mm512_mask_max_pd
#define VMADD _mm512_mask_add_pd
#define VREDMAX _mm512_reduce_max_pd
#define VFIRST _mm512_cvtsd_f64
#define VEXP exp_le0_pd
#define ISET1(x) _mm512_set1_epi64((long long)(x))
#define IINIT _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)
#define IADD _mm512_add_epi64
#define INE _mm512_cmpneq_epi64_mask
#include "ce_simd_row.h"     /* (undefines its parameters) */

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

/* ------------------------------------------------------------------
 * multi_margin on rows of at most 16 classes (float32, value / gradient):
 * one masked vector per row instead of a 16-wide loop that never runs and
 * a scalar remainder.  Same arithmetic as margin_core in class_template.h:
 * v_c = (margin - z_y) + z_c, active where c != y and not v <= 0 (NaN is
 * active), the sums in float64. */
AVX512 static inline double sum16_pd(__m512 v, __mmask16 k)
{
    __m512d lo = _mm512_maskz_cvtps_pd((__mmask8)k, _mm512_castps512_ps256(v));
    __m512d hi = _mm512_maskz_cvtps_pd((__mmask8)(k >> 8), _mm256_castpd_ps(
                                           _mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return _mm512_reduce_add_pd(_mm512_add_pd(lo, hi));
}

AVX512 int fl_margin_rows_f32_avx512(const fl_cls_args *a, fl_idx i0, fl_idx i1,
                                     double *acc_out)
{
    const fl_idx C = a->C;
    if (C > 16 || C < 1 || a->inner != 1 || a->hess) return 0;
    const float *Z = (const float *)a->z, *SW = (const float *)a->sw;
    const float *cw = (const float *)a->cw;
    float *G = (float *)a->grad, *V = (float *)a->val;
    const float mg = (float)a->margin, scale = (float)a->scale;
    const int p2 = a->power == 2;
    const __mmask16 km = (__mmask16)((1u << C) - 1u);
    const __m512 zero = _mm512_setzero_ps(), two = _mm512_set1_ps(2.0f), one = _mm512_set1_ps(1.0f);
    double acc = 0.0;
    for (fl_idx i = i0; i < i1; i++) {
        const float *z = Z + i * C;
        const fl_idx y = (fl_idx)a->y[i];
        __m512 zv = _mm512_maskz_loadu_ps(km, z);
        __m512 v = _mm512_add_ps(_mm512_set1_ps(mg - z[y]), zv);
        __mmask16 act = (__mmask16)(km & ~(1u << y) & _mm512_cmp_ps_mask(v, zero, _CMP_NLE_UQ));
        __m512 lv = p2 ? _mm512_mul_ps(v, v) : v;
        double loss = sum16_pd(lv, act);
        float s = SW ? SW[i] : 1.0f, k = s * scale;
        double cwy = cw ? (double)cw[y] : 1.0;
        if (G) {
            float kk = (float)((double)k * cwy / (double)C);
            /* the derivative of v^p: 2v or 1, NaN where v is NaN */
            __m512 dv = p2 ? _mm512_mul_ps(two, v)
                           : _mm512_mask_mov_ps(one, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), v);
            dv = _mm512_maskz_mov_ps(act, dv);
            _mm512_mask_storeu_ps(G + i * C, km, _mm512_mul_ps(_mm512_set1_ps(kk), dv));
            G[i * C + y] = (float)(-(double)kk * sum16_pd(dv, act));
        }
        loss = cwy == 0 ? 0.0 : loss * cwy / (double)C;
        loss = (double)s * loss;
        if (V) V[i] = (float)loss;
        acc += loss;
    }
    *acc_out = acc;
    return 1;
}

/* Zero a large buffer with non-temporal stores: no read-for-ownership of
 * lines that are only overwritten (nll's gradient rows), and no eviction of
 * the cache's working set.  Head and tail by memset. */
AVX512 void fl_zero_stream_avx512(void *p, size_t bytes)
{
    char *c = (char *)p;
    size_t head = (size_t)(-(uintptr_t)c & 63u);
    if (head > bytes) head = bytes;
    memset(c, 0, head);
    c += head;
    bytes -= head;
    const __m512i z = _mm512_setzero_si512();
    size_t body = bytes & ~(size_t)63u;
    for (size_t i = 0; i < body; i += 64) _mm512_stream_si512((__m512i *)(c + i), z);
    _mm_sfence();
    memset(c + body, 0, bytes - body);
}

#else
int fl_cpu_avx512(void) { return 0; }
#endif
