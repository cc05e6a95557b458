/* A thin vector layer for the hand-vectorized loops (ce_simd.c,
 * sign_labels.c): each loop is written once over these types and
 * operations and compiles to the widest ISA the translation unit is
 * compiled for, chosen from the compiler's predefined macros:
 *
 *   FL_V_AVX512  __AVX512F__ + DQ + BW + VL   512 bits, masks in k registers
 *   FL_V_AVX2    __AVX2__ + __FMA__           256 bits, masks are vectors
 *   FL_V_SSE2    __SSE2__ (x86-64 baseline)   128 bits, no FMA (mul + add)
 *   FL_V_NEON    __ARM_NEON / __aarch64__     128 bits, FMA, no NT stores
 *
 * No target attributes and no run-time CPU check: the build compiles the
 * kernel sources once per ISA level and picks one at run time.
 *
 * Types: fl_vf (FL_VLF floats), fl_vd (FL_VLD = FL_VLF / 2 doubles: the same
 * register width), their masks fl_mf / fl_md.  +, -, * are GCC vector
 * extensions (vaddps / addps / fadd ...; -ffp-contract=off keeps them
 * unfused).  The rest, per ISA (f: float, d: double; AVX-512 / AVX2 / SSE2 /
 * NEON):
 *   fma(a,b,c) = a*b+c        vfmadd        vfmadd      mulps+addps  fmla
 *   fnma(a,b,c) = c-a*b       vfnmadd       vfnmadd     mulps+subps  fmls
 *   max(a,b) = a > b ? a : b  vmaxps        vmaxps      maxps        fcmgt+bsl
 *     (x86 semantics: b when either is NaN or they are equal)
 *   eq / gt / lt / nle / isnan  vcmpps->k   vcmpps      cmpps        fcm*
 *     (nle: not a <= b, true for NaN; ordered otherwise)
 *   sel(m,a,b) = m ? a : b    vblendmps     vblendvps   and/andn/or  bsl
 *   zsel(m,a) = m ? a : 0     vmovaps{z}    vandps      andps        and
 *   loadp / storep: the first n < L lanes (others `pad`)
 *                             masked mov    a padded copy through memory
 *   hmax, hsum (into double)  reduce seq.   shuffles / through memory
 *   acc(lo,hi,v): lo,hi += v widened to double  vcvtps2pd / cvtps2pd / fcvtl
 *   scale2k(p,k) = p * 2^k (k integral, -160 <= k <= 0 for float,
 *     -1080 <= k <= 0 for double), rounded once as the exact product:
 *     vscalefps on AVX-512; elsewhere two multiplications by 2^(k/2) and
 *     2^(k-k/2) built in the exponent field (the first is exact, the
 *     second rounds a subnormal result once), so every width gives the
 *     same bits
 *   mask <-> bits (bit i: lane i)  kmov      vmovmskps / vpcmpeqd
 *                                           movmskps / pcmpeqd   and+addv / cmtst
 *   stream (aligned non-temporal store) vmovntps / vmovntps / movntps; none
 *     on NEON (FL_V_STREAM 0: the callers use ordinary stores); fence: sfence
 *   funnel(a,b,h): lanes h.. of a then lanes ..h-1 of b   vpermt2ps /
 *     2 x vpermps + vblendvps / byte shifts (psrldq, pslldq) / ext
 *   gather (FL_V_GATHER: AVX-512, AVX2) vgatherdps; scatter (FL_V_SCATTER:
 *     AVX-512) vscatterdps; elsewhere the callers transpose with plain loops
 */
#ifndef FL_SIMD_H
#define FL_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__AVX512F__) && defined(__AVX512DQ__) && defined(__AVX512BW__) && \
    defined(__AVX512VL__)
#define FL_V_AVX512 1
#elif defined(__AVX2__) && defined(__FMA__)
#define FL_V_AVX2 1
#elif defined(__SSE2__)
#define FL_V_SSE2 1
#elif defined(__ARM_NEON) || defined(__aarch64__)
#define FL_V_NEON 1
#else
#error "simd.h: no supported vector ISA (x86-64 SSE2 or aarch64 NEON)"
#endif

#define FL_VI static inline __attribute__((always_inline))

#if defined(FL_V_NEON)
#include <arm_neon.h>
#else
#include <immintrin.h>
#endif

/* ================================================================ types */
#if FL_V_AVX512
#define FL_V_NAME "AVX-512"
#define FL_VBYTES 64
typedef __m512 fl_vf;
typedef __m512d fl_vd;
typedef __mmask16 fl_mf;
typedef __mmask8 fl_md;
#define FL_V_STREAM 1
#define FL_V_GATHER 1
#define FL_V_SCATTER 1
#elif FL_V_AVX2
#define FL_V_NAME "AVX2+FMA"
#define FL_VBYTES 32
typedef __m256 fl_vf;
typedef __m256d fl_vd;
typedef __m256 fl_mf;
typedef __m256d fl_md;
#define FL_V_STREAM 1
#define FL_V_GATHER 1
#define FL_V_SCATTER 0
#elif FL_V_SSE2
#define FL_V_NAME "SSE2"
#define FL_VBYTES 16
typedef __m128 fl_vf;
typedef __m128d fl_vd;
typedef __m128 fl_mf;
typedef __m128d fl_md;
#define FL_V_STREAM 1
#define FL_V_GATHER 0
#define FL_V_SCATTER 0
#else
#define FL_V_NAME "NEON"
#define FL_VBYTES 16
typedef float32x4_t fl_vf;
typedef float64x2_t fl_vd;
typedef uint32x4_t fl_mf;
typedef uint64x2_t fl_md;
#define FL_V_STREAM 0
#define FL_V_GATHER 0
#define FL_V_SCATTER 0
#endif

#define FL_VLF (FL_VBYTES / 4)
#define FL_VLD (FL_VBYTES / 8)
/* integer views of the same registers, for the exponent-field arithmetic */
typedef int32_t fl_vi32 __attribute__((vector_size(FL_VBYTES)));
typedef int64_t fl_vi64 __attribute__((vector_size(FL_VBYTES)));

/* ============================================== common (GCC extensions) */
FL_VI fl_vf vf_set1(float x) { return (fl_vf){0} + x; }
FL_VI fl_vd vd_set1(double x) { return (fl_vd){0} + x; }
FL_VI fl_vf vf_zero(void) { return (fl_vf){0}; }
FL_VI fl_vd vd_zero(void) { return (fl_vd){0}; }
FL_VI fl_vf vf_load(const float *p) { fl_vf v; memcpy(&v, p, sizeof v); return v; }
FL_VI fl_vd vd_load(const double *p) { fl_vd v; memcpy(&v, p, sizeof v); return v; }
FL_VI void vf_store(float *p, fl_vf v) { memcpy(p, &v, sizeof v); }
FL_VI void vd_store(double *p, fl_vd v) { memcpy(p, &v, sizeof v); }
FL_VI float vf_first(fl_vf v) { return v[0]; }
FL_VI double vd_first(fl_vd v) { return v[0]; }
/* 0, 1, ..., L-1 */
FL_VI fl_vf vf_iota(void)
{
    fl_vf v;
    for (int i = 0; i < FL_VLF; i++) v[i] = (float)i;
    return v;
}
FL_VI fl_vd vd_iota(void)
{
    fl_vd v;
    for (int i = 0; i < FL_VLD; i++) v[i] = (double)i;
    return v;
}

/* p * 2^k by the exponent field, in two exact-or-once-rounded steps (see
 * the header comment); k is integral.  kh = round(k / 2) by the 1.5 * 2^23
 * (2^52) shift, whose integer bits then hold kh. */
FL_VI fl_vf vf_scale2k_bits(fl_vf p, fl_vf k)
{
    const fl_vf shift = vf_set1(12582912.0f);            /* 1.5 * 2^23 */
    const fl_vf half = vf_set1(0.5f);
    fl_vf kh = (k * half + shift) - shift;
    fl_vf k2 = k - kh;
    const fl_vi32 bias = (fl_vi32){0} + (127 - 0x4B400000);
    fl_vi32 e1 = ((fl_vi32)(kh + shift) + bias) << 23;
    fl_vi32 e2 = ((fl_vi32)(k2 + shift) + bias) << 23;
    return (p * (fl_vf)e1) * (fl_vf)e2;
}
FL_VI fl_vd vd_scale2k_bits(fl_vd p, fl_vd k)
{
    const fl_vd shift = vd_set1(0x1.8p52);
    const fl_vd half = vd_set1(0.5);
    fl_vd kh = (k * half + shift) - shift;
    fl_vd k2 = k - kh;
    const fl_vi64 bias = (fl_vi64){0} + (1023 - 0x4338000000000000LL);
    fl_vi64 e1 = ((fl_vi64)(kh + shift) + bias) << 52;
    fl_vi64 e2 = ((fl_vi64)(k2 + shift) + bias) << 52;
    return (p * (fl_vd)e1) * (fl_vd)e2;
}

/* ================================================================ AVX-512 */
#if FL_V_AVX512
FL_VI fl_vf vf_fma(fl_vf a, fl_vf b, fl_vf c) { return _mm512_fmadd_ps(a, b, c); }
FL_VI fl_vd vd_fma(fl_vd a, fl_vd b, fl_vd c) { return _mm512_fmadd_pd(a, b, c); }
FL_VI fl_vf vf_fnma(fl_vf a, fl_vf b, fl_vf c) { return _mm512_fnmadd_ps(a, b, c); }
FL_VI fl_vd vd_fnma(fl_vd a, fl_vd b, fl_vd c) { return _mm512_fnmadd_pd(a, b, c); }
FL_VI fl_vf vf_max(fl_vf a, fl_vf b) { return _mm512_max_ps(a, b); }
FL_VI fl_vd vd_max(fl_vd a, fl_vd b) { return _mm512_max_pd(a, b); }
FL_VI fl_mf vf_eq(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_EQ_OQ); }
FL_VI fl_md vd_eq(fl_vd a, fl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_EQ_OQ); }
FL_VI fl_mf vf_gt(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_GT_OQ); }
FL_VI fl_md vd_gt(fl_vd a, fl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_GT_OQ); }
FL_VI fl_mf vf_lt(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_LT_OQ); }
FL_VI fl_md vd_lt(fl_vd a, fl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_LT_OQ); }
FL_VI fl_mf vf_nle(fl_vf a, fl_vf b) { return _mm512_cmp_ps_mask(a, b, _CMP_NLE_UQ); }
FL_VI fl_md vd_nle(fl_vd a, fl_vd b) { return _mm512_cmp_pd_mask(a, b, _CMP_NLE_UQ); }
FL_VI fl_mf vf_isnan(fl_vf a) { return _mm512_cmp_ps_mask(a, a, _CMP_UNORD_Q); }
FL_VI fl_md vd_isnan(fl_vd a) { return _mm512_cmp_pd_mask(a, a, _CMP_UNORD_Q); }
FL_VI fl_mf mf_and(fl_mf a, fl_mf b) { return (fl_mf)(a & b); }
FL_VI fl_md md_and(fl_md a, fl_md b) { return (fl_md)(a & b); }
FL_VI fl_mf mf_or(fl_mf a, fl_mf b) { return (fl_mf)(a | b); }
FL_VI fl_md md_or(fl_md a, fl_md b) { return (fl_md)(a | b); }
FL_VI fl_mf mf_andnot(fl_mf a, fl_mf b) { return (fl_mf)(~a & b); }     /* ~a & b */
FL_VI fl_md md_andnot(fl_md a, fl_md b) { return (fl_md)(~a & b); }
FL_VI int mf_any(fl_mf a) { return a != 0; }
FL_VI int md_any(fl_md a) { return a != 0; }
FL_VI unsigned mf_bits(fl_mf a) { return a; }
FL_VI unsigned md_bits(fl_md a) { return a; }
FL_VI fl_mf mf_from_bits(unsigned b) { return (fl_mf)b; }
FL_VI fl_md md_from_bits(unsigned b) { return (fl_md)b; }
FL_VI fl_mf mf_first(int n) { return (fl_mf)((1u << n) - 1u); }
FL_VI fl_md md_first(int n) { return (fl_md)((1u << n) - 1u); }
FL_VI fl_vf vf_sel(fl_mf m, fl_vf a, fl_vf b) { return _mm512_mask_blend_ps(m, b, a); }
FL_VI fl_vd vd_sel(fl_md m, fl_vd a, fl_vd b) { return _mm512_mask_blend_pd(m, b, a); }
FL_VI fl_vf vf_zsel(fl_mf m, fl_vf a) { return _mm512_maskz_mov_ps(m, a); }
FL_VI fl_vd vd_zsel(fl_md m, fl_vd a) { return _mm512_maskz_mov_pd(m, a); }
FL_VI fl_vf vf_loadp(const float *p, int n, float pad)
{
    return _mm512_mask_loadu_ps(_mm512_set1_ps(pad), mf_first(n), p);
}
FL_VI fl_vd vd_loadp(const double *p, int n, double pad)
{
    return _mm512_mask_loadu_pd(_mm512_set1_pd(pad), md_first(n), p);
}
FL_VI void vf_storep(float *p, int n, fl_vf v) { _mm512_mask_storeu_ps(p, mf_first(n), v); }
FL_VI void vd_storep(double *p, int n, fl_vd v) { _mm512_mask_storeu_pd(p, md_first(n), v); }
/* lanes lo..L-1 of v to p[lo..L-1] */
FL_VI void vf_storehi(float *p, int lo, fl_vf v)
{
    _mm512_mask_storeu_ps(p, (fl_mf)~mf_first(lo), v);
}
FL_VI void vd_storehi(double *p, int lo, fl_vd v)
{
    _mm512_mask_storeu_pd(p, (fl_md)~md_first(lo), v);
}
FL_VI float vf_hmax(fl_vf v) { return _mm512_reduce_max_ps(v); }
FL_VI double vd_hmax(fl_vd v) { return _mm512_reduce_max_pd(v); }
FL_VI double vd_hsum(fl_vd v) { return _mm512_reduce_add_pd(v); }
FL_VI void vf_acc(fl_vd *lo, fl_vd *hi, fl_vf v)
{
    *lo += _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi += _mm512_cvtps_pd(_mm512_extractf32x8_ps(v, 1));
}
FL_VI fl_vf vf_scale2k(fl_vf p, fl_vf k) { return _mm512_scalef_ps(p, k); }
FL_VI fl_vd vd_scale2k(fl_vd p, fl_vd k) { return _mm512_scalef_pd(p, k); }
FL_VI void vf_stream(float *p, fl_vf v) { _mm512_stream_ps(p, v); }
FL_VI void vd_stream(double *p, fl_vd v) { _mm512_stream_pd(p, v); }
FL_VI fl_vf vf_funnel(fl_vf a, fl_vf b, int h)
{
    return _mm512_permutex2var_ps(a, _mm512_add_epi32(_mm512_set1_epi32(h),
        _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)), b);
}
FL_VI fl_vd vd_funnel(fl_vd a, fl_vd b, int h)
{
    return _mm512_permutex2var_pd(a, _mm512_add_epi64(_mm512_set1_epi64(h),
        _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7)), b);
}
/* lanes < n: base[idx[i]], others 0 */
FL_VI fl_vf vf_gather(const float *base, const int32_t *idx, int n)
{
    __m512i iv;
    memcpy(&iv, idx, sizeof iv);
    return _mm512_mask_i32gather_ps(_mm512_setzero_ps(), mf_first(n), iv, base, 4);
}
/* base[idx[i]] = v[i] for lanes < n */
FL_VI void vf_scatter(float *base, const int32_t *idx, int n, fl_vf v)
{
    __m512i iv;
    memcpy(&iv, idx, sizeof iv);
    _mm512_mask_i32scatter_ps(base, mf_first(n), iv, v, 4);
}
FL_VI void fl_vfence(void) { _mm_sfence(); }

/* ================================================================ AVX2 */
#elif FL_V_AVX2
FL_VI fl_vf vf_fma(fl_vf a, fl_vf b, fl_vf c) { return _mm256_fmadd_ps(a, b, c); }
FL_VI fl_vd vd_fma(fl_vd a, fl_vd b, fl_vd c) { return _mm256_fmadd_pd(a, b, c); }
FL_VI fl_vf vf_fnma(fl_vf a, fl_vf b, fl_vf c) { return _mm256_fnmadd_ps(a, b, c); }
FL_VI fl_vd vd_fnma(fl_vd a, fl_vd b, fl_vd c) { return _mm256_fnmadd_pd(a, b, c); }
FL_VI fl_vf vf_max(fl_vf a, fl_vf b) { return _mm256_max_ps(a, b); }
FL_VI fl_vd vd_max(fl_vd a, fl_vd b) { return _mm256_max_pd(a, b); }
FL_VI fl_mf vf_eq(fl_vf a, fl_vf b) { return _mm256_cmp_ps(a, b, _CMP_EQ_OQ); }
FL_VI fl_md vd_eq(fl_vd a, fl_vd b) { return _mm256_cmp_pd(a, b, _CMP_EQ_OQ); }
FL_VI fl_mf vf_gt(fl_vf a, fl_vf b) { return _mm256_cmp_ps(a, b, _CMP_GT_OQ); }
FL_VI fl_md vd_gt(fl_vd a, fl_vd b) { return _mm256_cmp_pd(a, b, _CMP_GT_OQ); }
FL_VI fl_mf vf_lt(fl_vf a, fl_vf b) { return _mm256_cmp_ps(a, b, _CMP_LT_OQ); }
FL_VI fl_md vd_lt(fl_vd a, fl_vd b) { return _mm256_cmp_pd(a, b, _CMP_LT_OQ); }
FL_VI fl_mf vf_nle(fl_vf a, fl_vf b) { return _mm256_cmp_ps(a, b, _CMP_NLE_UQ); }
FL_VI fl_md vd_nle(fl_vd a, fl_vd b) { return _mm256_cmp_pd(a, b, _CMP_NLE_UQ); }
FL_VI fl_mf vf_isnan(fl_vf a) { return _mm256_cmp_ps(a, a, _CMP_UNORD_Q); }
FL_VI fl_md vd_isnan(fl_vd a) { return _mm256_cmp_pd(a, a, _CMP_UNORD_Q); }
FL_VI fl_mf mf_and(fl_mf a, fl_mf b) { return _mm256_and_ps(a, b); }
FL_VI fl_md md_and(fl_md a, fl_md b) { return _mm256_and_pd(a, b); }
FL_VI fl_mf mf_or(fl_mf a, fl_mf b) { return _mm256_or_ps(a, b); }
FL_VI fl_md md_or(fl_md a, fl_md b) { return _mm256_or_pd(a, b); }
FL_VI fl_mf mf_andnot(fl_mf a, fl_mf b) { return _mm256_andnot_ps(a, b); }
FL_VI fl_md md_andnot(fl_md a, fl_md b) { return _mm256_andnot_pd(a, b); }
FL_VI unsigned mf_bits(fl_mf a) { return (unsigned)_mm256_movemask_ps(a); }
FL_VI unsigned md_bits(fl_md a) { return (unsigned)_mm256_movemask_pd(a); }
FL_VI int mf_any(fl_mf a) { return _mm256_movemask_ps(a) != 0; }
FL_VI int md_any(fl_md a) { return _mm256_movemask_pd(a) != 0; }
FL_VI fl_mf mf_from_bits(unsigned b)
{
    const __m256i bit = _mm256_setr_epi32(1, 2, 4, 8, 16, 32, 64, 128);
    return _mm256_castsi256_ps(
        _mm256_cmpeq_epi32(_mm256_and_si256(_mm256_set1_epi32((int)b), bit), bit));
}
FL_VI fl_md md_from_bits(unsigned b)
{
    const __m256i bit = _mm256_setr_epi64x(1, 2, 4, 8);
    return _mm256_castsi256_pd(
        _mm256_cmpeq_epi64(_mm256_and_si256(_mm256_set1_epi64x((long long)b), bit), bit));
}
FL_VI fl_vf vf_sel(fl_mf m, fl_vf a, fl_vf b) { return _mm256_blendv_ps(b, a, m); }
FL_VI fl_vd vd_sel(fl_md m, fl_vd a, fl_vd b) { return _mm256_blendv_pd(b, a, m); }
FL_VI fl_vf vf_zsel(fl_mf m, fl_vf a) { return _mm256_and_ps(m, a); }
FL_VI fl_vd vd_zsel(fl_md m, fl_vd a) { return _mm256_and_pd(m, a); }
FL_VI double vd_hsum(fl_vd v)
{
    __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
    return _mm_cvtsd_f64(_mm_add_sd(s, _mm_unpackhi_pd(s, s)));
}
FL_VI void vf_acc(fl_vd *lo, fl_vd *hi, fl_vf v)
{
    *lo += _mm256_cvtps_pd(_mm256_castps256_ps128(v));
    *hi += _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
}
FL_VI fl_vf vf_scale2k(fl_vf p, fl_vf k) { return vf_scale2k_bits(p, k); }
FL_VI fl_vd vd_scale2k(fl_vd p, fl_vd k) { return vd_scale2k_bits(p, k); }
FL_VI void vf_stream(float *p, fl_vf v) { _mm256_stream_ps(p, v); }
FL_VI void vd_stream(double *p, fl_vd v) { _mm256_stream_pd(p, v); }
FL_VI fl_vf vf_funnel(fl_vf a, fl_vf b, int h)
{
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    __m256i s = _mm256_add_epi32(lane, _mm256_set1_epi32(h));
    __m256i idx = _mm256_and_si256(s, _mm256_set1_epi32(7));
    __m256 fromb = _mm256_castsi256_ps(_mm256_cmpgt_epi32(s, _mm256_set1_epi32(7)));
    return _mm256_blendv_ps(_mm256_permutevar8x32_ps(a, idx), _mm256_permutevar8x32_ps(b, idx),
                            fromb);
}
FL_VI fl_vd vd_funnel(fl_vd a, fl_vd b, int h)
{
    /* the double lanes as pairs of float lanes */
    const __m256i lane = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    const __m256i odd = _mm256_setr_epi32(0, 1, 0, 1, 0, 1, 0, 1);
    __m256i s = _mm256_add_epi32(lane, _mm256_set1_epi32(h));
    __m256i idx = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(s, _mm256_set1_epi32(3)), 1),
                                   odd);
    __m256 fromb = _mm256_castsi256_ps(_mm256_cmpgt_epi32(s, _mm256_set1_epi32(3)));
    return _mm256_castps_pd(_mm256_blendv_ps(
        _mm256_permutevar8x32_ps(_mm256_castpd_ps(a), idx),
        _mm256_permutevar8x32_ps(_mm256_castpd_ps(b), idx), fromb));
}
FL_VI fl_vf vf_gather(const float *base, const int32_t *idx, int n)
{
    __m256i iv;
    memcpy(&iv, idx, sizeof iv);
    const __m256 m = _mm256_cmp_ps(_mm256_setr_ps(0, 1, 2, 3, 4, 5, 6, 7),
                                   _mm256_set1_ps((float)n), _CMP_LT_OQ);
    return _mm256_mask_i32gather_ps(_mm256_setzero_ps(), base, iv, m, 4);
}
FL_VI void fl_vfence(void) { _mm_sfence(); }

/* ================================================================ SSE2 */
#elif FL_V_SSE2
FL_VI fl_vf vf_fma(fl_vf a, fl_vf b, fl_vf c) { return a * b + c; }
FL_VI fl_vd vd_fma(fl_vd a, fl_vd b, fl_vd c) { return a * b + c; }
FL_VI fl_vf vf_fnma(fl_vf a, fl_vf b, fl_vf c) { return c - a * b; }
FL_VI fl_vd vd_fnma(fl_vd a, fl_vd b, fl_vd c) { return c - a * b; }
FL_VI fl_vf vf_max(fl_vf a, fl_vf b) { return _mm_max_ps(a, b); }
FL_VI fl_vd vd_max(fl_vd a, fl_vd b) { return _mm_max_pd(a, b); }
FL_VI fl_mf vf_eq(fl_vf a, fl_vf b) { return _mm_cmpeq_ps(a, b); }
FL_VI fl_md vd_eq(fl_vd a, fl_vd b) { return _mm_cmpeq_pd(a, b); }
FL_VI fl_mf vf_gt(fl_vf a, fl_vf b) { return _mm_cmpgt_ps(a, b); }
FL_VI fl_md vd_gt(fl_vd a, fl_vd b) { return _mm_cmpgt_pd(a, b); }
FL_VI fl_mf vf_lt(fl_vf a, fl_vf b) { return _mm_cmplt_ps(a, b); }
FL_VI fl_md vd_lt(fl_vd a, fl_vd b) { return _mm_cmplt_pd(a, b); }
FL_VI fl_mf vf_nle(fl_vf a, fl_vf b) { return _mm_cmpnle_ps(a, b); }
FL_VI fl_md vd_nle(fl_vd a, fl_vd b) { return _mm_cmpnle_pd(a, b); }
FL_VI fl_mf vf_isnan(fl_vf a) { return _mm_cmpunord_ps(a, a); }
FL_VI fl_md vd_isnan(fl_vd a) { return _mm_cmpunord_pd(a, a); }
FL_VI fl_mf mf_and(fl_mf a, fl_mf b) { return _mm_and_ps(a, b); }
FL_VI fl_md md_and(fl_md a, fl_md b) { return _mm_and_pd(a, b); }
FL_VI fl_mf mf_or(fl_mf a, fl_mf b) { return _mm_or_ps(a, b); }
FL_VI fl_md md_or(fl_md a, fl_md b) { return _mm_or_pd(a, b); }
FL_VI fl_mf mf_andnot(fl_mf a, fl_mf b) { return _mm_andnot_ps(a, b); }
FL_VI fl_md md_andnot(fl_md a, fl_md b) { return _mm_andnot_pd(a, b); }
FL_VI unsigned mf_bits(fl_mf a) { return (unsigned)_mm_movemask_ps(a); }
FL_VI unsigned md_bits(fl_md a) { return (unsigned)_mm_movemask_pd(a); }
FL_VI int mf_any(fl_mf a) { return _mm_movemask_ps(a) != 0; }
FL_VI int md_any(fl_md a) { return _mm_movemask_pd(a) != 0; }
FL_VI fl_mf mf_from_bits(unsigned b)
{
    const __m128i bit = _mm_setr_epi32(1, 2, 4, 8);
    return _mm_castsi128_ps(_mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32((int)b), bit), bit));
}
FL_VI fl_md md_from_bits(unsigned b)
{
    /* both 32-bit halves of a 64-bit lane test the lane's bit */
    const __m128i bit = _mm_setr_epi32(1, 1, 2, 2);
    return _mm_castsi128_pd(_mm_cmpeq_epi32(_mm_and_si128(_mm_set1_epi32((int)b), bit), bit));
}
FL_VI fl_vf vf_sel(fl_mf m, fl_vf a, fl_vf b)
{
    return _mm_or_ps(_mm_and_ps(m, a), _mm_andnot_ps(m, b));
}
FL_VI fl_vd vd_sel(fl_md m, fl_vd a, fl_vd b)
{
    return _mm_or_pd(_mm_and_pd(m, a), _mm_andnot_pd(m, b));
}
FL_VI fl_vf vf_zsel(fl_mf m, fl_vf a) { return _mm_and_ps(m, a); }
FL_VI fl_vd vd_zsel(fl_md m, fl_vd a) { return _mm_and_pd(m, a); }
FL_VI double vd_hsum(fl_vd v) { return _mm_cvtsd_f64(_mm_add_sd(v, _mm_unpackhi_pd(v, v))); }
FL_VI void vf_acc(fl_vd *lo, fl_vd *hi, fl_vf v)
{
    *lo += _mm_cvtps_pd(v);
    *hi += _mm_cvtps_pd(_mm_movehl_ps(v, v));
}
FL_VI fl_vf vf_scale2k(fl_vf p, fl_vf k) { return vf_scale2k_bits(p, k); }
FL_VI fl_vd vd_scale2k(fl_vd p, fl_vd k) { return vd_scale2k_bits(p, k); }
FL_VI void vf_stream(float *p, fl_vf v) { _mm_stream_ps(p, v); }
FL_VI void vd_stream(double *p, fl_vd v) { _mm_stream_pd(p, v); }
/* byte shifts take immediates: a switch on h (constant within a loop, so
 * the branch predicts) */
FL_VI fl_vf vf_funnel(fl_vf a, fl_vf b, int h)
{
    __m128i x = _mm_castps_si128(a), y = _mm_castps_si128(b);
    switch (h) {
        case 1: return _mm_castsi128_ps(_mm_or_si128(_mm_srli_si128(x, 4), _mm_slli_si128(y, 12)));
        case 2: return _mm_castsi128_ps(_mm_or_si128(_mm_srli_si128(x, 8), _mm_slli_si128(y, 8)));
        case 3: return _mm_castsi128_ps(_mm_or_si128(_mm_srli_si128(x, 12), _mm_slli_si128(y, 4)));
        default: return a;
    }
}
FL_VI fl_vd vd_funnel(fl_vd a, fl_vd b, int h) { return h ? _mm_shuffle_pd(a, b, 1) : a; }
FL_VI void fl_vfence(void) { _mm_sfence(); }

/* ================================================================ NEON */
#else
FL_VI fl_vf vf_fma(fl_vf a, fl_vf b, fl_vf c) { return vfmaq_f32(c, a, b); }
FL_VI fl_vd vd_fma(fl_vd a, fl_vd b, fl_vd c) { return vfmaq_f64(c, a, b); }
FL_VI fl_vf vf_fnma(fl_vf a, fl_vf b, fl_vf c) { return vfmsq_f32(c, a, b); }
FL_VI fl_vd vd_fnma(fl_vd a, fl_vd b, fl_vd c) { return vfmsq_f64(c, a, b); }
/* x86 semantics (fmax would return the number of a NaN pair) */
FL_VI fl_vf vf_max(fl_vf a, fl_vf b) { return vbslq_f32(vcgtq_f32(a, b), a, b); }
FL_VI fl_vd vd_max(fl_vd a, fl_vd b) { return vbslq_f64(vcgtq_f64(a, b), a, b); }
FL_VI fl_mf vf_eq(fl_vf a, fl_vf b) { return vceqq_f32(a, b); }
FL_VI fl_md vd_eq(fl_vd a, fl_vd b) { return vceqq_f64(a, b); }
FL_VI fl_mf vf_gt(fl_vf a, fl_vf b) { return vcgtq_f32(a, b); }
FL_VI fl_md vd_gt(fl_vd a, fl_vd b) { return vcgtq_f64(a, b); }
FL_VI fl_mf vf_lt(fl_vf a, fl_vf b) { return vcltq_f32(a, b); }
FL_VI fl_md vd_lt(fl_vd a, fl_vd b) { return vcltq_f64(a, b); }
FL_VI fl_mf vf_nle(fl_vf a, fl_vf b) { return vmvnq_u32(vcleq_f32(a, b)); }
FL_VI fl_md vd_nle(fl_vd a, fl_vd b)
{
    return vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vcleq_f64(a, b))));
}
FL_VI fl_mf vf_isnan(fl_vf a) { return vmvnq_u32(vceqq_f32(a, a)); }
FL_VI fl_md vd_isnan(fl_vd a)
{
    return vreinterpretq_u64_u32(vmvnq_u32(vreinterpretq_u32_u64(vceqq_f64(a, a))));
}
FL_VI fl_mf mf_and(fl_mf a, fl_mf b) { return vandq_u32(a, b); }
FL_VI fl_md md_and(fl_md a, fl_md b) { return vandq_u64(a, b); }
FL_VI fl_mf mf_or(fl_mf a, fl_mf b) { return vorrq_u32(a, b); }
FL_VI fl_md md_or(fl_md a, fl_md b) { return vorrq_u64(a, b); }
FL_VI fl_mf mf_andnot(fl_mf a, fl_mf b) { return vbicq_u32(b, a); }
FL_VI fl_md md_andnot(fl_md a, fl_md b) { return vbicq_u64(b, a); }
FL_VI unsigned mf_bits(fl_mf a)
{
    const uint32x4_t bit = {1, 2, 4, 8};
    return vaddvq_u32(vandq_u32(a, bit));
}
FL_VI unsigned md_bits(fl_md a)
{
    const uint64x2_t bit = {1, 2};
    return (unsigned)vaddvq_u64(vandq_u64(a, bit));
}
FL_VI int mf_any(fl_mf a) { return vmaxvq_u32(a) != 0; }
FL_VI int md_any(fl_md a) { return vmaxvq_u32(vreinterpretq_u32_u64(a)) != 0; }
FL_VI fl_mf mf_from_bits(unsigned b)
{
    const uint32x4_t bit = {1, 2, 4, 8};
    return vtstq_u32(vdupq_n_u32(b), bit);
}
FL_VI fl_md md_from_bits(unsigned b)
{
    const uint64x2_t bit = {1, 2};
    return vtstq_u64(vdupq_n_u64(b), bit);
}
FL_VI fl_vf vf_sel(fl_mf m, fl_vf a, fl_vf b) { return vbslq_f32(m, a, b); }
FL_VI fl_vd vd_sel(fl_md m, fl_vd a, fl_vd b) { return vbslq_f64(m, a, b); }
FL_VI fl_vf vf_zsel(fl_mf m, fl_vf a)
{
    return vreinterpretq_f32_u32(vandq_u32(m, vreinterpretq_u32_f32(a)));
}
FL_VI fl_vd vd_zsel(fl_md m, fl_vd a)
{
    return vreinterpretq_f64_u64(vandq_u64(m, vreinterpretq_u64_f64(a)));
}
FL_VI double vd_hsum(fl_vd v) { return vaddvq_f64(v); }
FL_VI void vf_acc(fl_vd *lo, fl_vd *hi, fl_vf v)
{
    *lo += vcvt_f64_f32(vget_low_f32(v));
    *hi += vcvt_high_f64_f32(v);
}
FL_VI fl_vf vf_scale2k(fl_vf p, fl_vf k) { return vf_scale2k_bits(p, k); }
FL_VI fl_vd vd_scale2k(fl_vd p, fl_vd k) { return vd_scale2k_bits(p, k); }
/* no non-temporal store intrinsic (FL_V_STREAM 0): ordinary stores */
FL_VI void vf_stream(float *p, fl_vf v) { vf_store(p, v); }
FL_VI void vd_stream(double *p, fl_vd v) { vd_store(p, v); }
FL_VI fl_vf vf_funnel(fl_vf a, fl_vf b, int h)
{
    switch (h) {
        case 1: return vextq_f32(a, b, 1);
        case 2: return vextq_f32(a, b, 2);
        case 3: return vextq_f32(a, b, 3);
        default: return a;
    }
}
FL_VI fl_vd vd_funnel(fl_vd a, fl_vd b, int h) { return h ? vextq_f64(a, b, 1) : a; }
FL_VI void fl_vfence(void) {}
#endif

/* ================================== without AVX-512: through memory */
#if !FL_V_AVX512
FL_VI fl_mf mf_first(int n) { return vf_lt(vf_iota(), vf_set1((float)n)); }
FL_VI fl_md md_first(int n) { return vd_lt(vd_iota(), vd_set1((double)n)); }
/* a padded copy: lanes >= n hold pad (n < L) */
FL_VI fl_vf vf_loadp(const float *p, int n, float pad)
{
    float t[FL_VLF];
    for (int i = 0; i < FL_VLF; i++) t[i] = pad;
    memcpy(t, p, sizeof(float) * (size_t)n);
    return vf_load(t);
}
FL_VI fl_vd vd_loadp(const double *p, int n, double pad)
{
    double t[FL_VLD];
    for (int i = 0; i < FL_VLD; i++) t[i] = pad;
    memcpy(t, p, sizeof(double) * (size_t)n);
    return vd_load(t);
}
FL_VI void vf_storep(float *p, int n, fl_vf v)
{
    float t[FL_VLF];
    vf_store(t, v);
    memcpy(p, t, sizeof(float) * (size_t)n);
}
FL_VI void vd_storep(double *p, int n, fl_vd v)
{
    double t[FL_VLD];
    vd_store(t, v);
    memcpy(p, t, sizeof(double) * (size_t)n);
}
FL_VI void vf_storehi(float *p, int lo, fl_vf v)
{
    float t[FL_VLF];
    vf_store(t, v);
    memcpy(p + lo, t + lo, sizeof(float) * (size_t)(FL_VLF - lo));
}
FL_VI void vd_storehi(double *p, int lo, fl_vd v)
{
    double t[FL_VLD];
    vd_store(t, v);
    memcpy(p + lo, t + lo, sizeof(double) * (size_t)(FL_VLD - lo));
}
/* x86 max semantics, lane by lane (once per row) */
FL_VI float vf_hmax(fl_vf v)
{
    float m = v[0];
    for (int i = 1; i < FL_VLF; i++) m = v[i] > m ? v[i] : m;
    return m;
}
FL_VI double vd_hmax(fl_vd v)
{
    double m = v[0];
    for (int i = 1; i < FL_VLD; i++) m = v[i] > m ? v[i] : m;
    return m;
}
#endif

FL_VI void vd_acc(fl_vd *lo, fl_vd *hi, fl_vd v) { (void)hi; *lo += v; }

#endif
