/* Data checks, conversions and the bandwidth probe: the loops of the fast
 * path that are not a loss.  Compiled once per ISA level with the kernels
 * (isa.h), so FASTLOSS_SIMD chooses their instructions too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fl_internal.h"

/* The roofline: the simplest loop that reads two arrays and writes one,
 * with the kernels' flags, ISA dispatch, chunking and threads. */
#define PROBE(T, NAME)                                                        \
    static void NAME##_range(const T *FL_RESTRICT a,                \
                                       const T *FL_RESTRICT b,                \
                                       T *FL_RESTRICT o, fl_idx n)            \
    {                                                                         \
        _Pragma("omp simd")                                                   \
        for (fl_idx i = 0; i < n; i++) o[i] = a[i] - b[i];                    \
    }                                                                         \
    void NAME(const T *a, const T *b, T *o, fl_idx n, int nthreads)           \
    {                                                                         \
        fl_idx nchunks = (n + FL_CHUNK - 1) / FL_CHUNK;                       \
        int adaptive_;                                                        \
        int nt = fl_threads_for(fl_unpack_threads(nthreads, &adaptive_), n,   \
                                FL_MIN_PER_THREAD_LIGHT);                     \
        (void)nt; (void)adaptive_;                                            \
        _Pragma("omp parallel for schedule(dynamic, 1) num_threads(nt) if (nt > 1)") \
        for (fl_idx c = 0; c < nchunks; c++) {                                \
            fl_idx s = c * FL_CHUNK, e = s + FL_CHUNK < n ? s + FL_CHUNK : n; \
            NAME##_range(a + s, b + s, o + s, e - s);                         \
        }                                                                     \
    }

PROBE(float, fl_probe_f32)
PROBE(double, fl_probe_f64)

/* Data checks on an interval (fl_outside_any_*, fl_internal.h), with the
 * bounds of the declaration in double */
int fl_outside_f32(const float *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
{
    return fl_outside_any_f32(v, n, (float)lo, (float)hi, lo_open, hi_open);
}

int fl_outside_f64(const double *v, fl_idx n, double lo, double hi, int lo_open, int hi_open)
{
    return fl_outside_any_f64(v, n, lo, hi, lo_open, hi_open);
}

/* Data checks on a finite set of allowed values (e.g. hinge labels in
 * {-1, 0, 1}): whether any of n contiguous values is neither NaN nor one of
 * the nvals (1 to 4) values in vals.  A vectorized any-pass, as above. */
#define SET_CHECK(T, NAME)                                                    \
    static int NAME##_any(const T *FL_RESTRICT v, fl_idx n, T a,    \
                                    T b, T c, T d)                            \
    {                                                                         \
        int bad = 0;                                                          \
        _Pragma("omp simd reduction(|:bad)")                                  \
        for (fl_idx i = 0; i < n; i++) {                                      \
            T x = v[i];                                                       \
            bad |= (x == x) & (x != a) & (x != b) & (x != c) & (x != d);      \
        }                                                                     \
        return bad;                                                           \
    }                                                                         \
    int NAME(const T *v, fl_idx n, const double *vals, int nvals)             \
    {                                                                         \
        if (nvals < 1 || nvals > 4) return -1;                                \
        T s[4];                                                               \
        for (int k = 0; k < 4; k++) s[k] = (T)vals[k < nvals ? k : 0];        \
        return NAME##_any(v, n, s[0], s[1], s[2], s[3]);                      \
    }

SET_CHECK(float, fl_notin_f32)
SET_CHECK(double, fl_notin_f64)


/* Data checks on operands of any element type (fl_outside_typed in
 * fastloss.h): the fast path's checks of targets that are not of the
 * compute type (integer labels, float64 targets of a float32 call). */
#define TYPED_CHECK(CT)                                                       \
    {                                                                         \
        const CT *q = (const CT *)v;                                          \
        for (fl_idx i = 0; i < n; i++) {                                      \
            double x = (double)q[i * s];                                      \
            if (x != x) continue;                                             \
            if (nvals > 0) {                                                  \
                int in = 0;                                                   \
                for (int k = 0; k < nvals; k++) in |= x == vals[k];           \
                if (!in) return 1;                                            \
            } else if ((lo_open ? x <= lo : x < lo) || (hi_open ? x >= hi : x > hi)) { \
                return 1;                                                     \
            }                                                                 \
        }                                                                     \
        return 0;                                                             \
    }

int fl_outside_typed(const void *v, int type, fl_idx n, fl_idx s, double lo, double hi,
                     int lo_open, int hi_open, const double *vals, int nvals)
{
    if (nvals < 0 || nvals > 4) return -1;
    switch (type) {
    case FL_E_F32: TYPED_CHECK(float)
    case FL_E_F64: TYPED_CHECK(double)
    case FL_E_I8:  TYPED_CHECK(int8_t)
    case FL_E_I16: TYPED_CHECK(int16_t)
    case FL_E_I32: TYPED_CHECK(int32_t)
    case FL_E_I64: TYPED_CHECK(int64_t)
    case FL_E_U8:  TYPED_CHECK(uint8_t)
    case FL_E_U16: TYPED_CHECK(uint16_t)
    case FL_E_U32: TYPED_CHECK(uint32_t)
    case FL_E_U64: TYPED_CHECK(uint64_t)
    default: return -1;
    }
}
#undef TYPED_CHECK

/* Sum of n values at stride s of element type `type`, in double: the
 * total sample weight of a mean, the same bits on every call path (the fast
 * path and the generic one both call it, on the values in C order).  Blocks
 * of FL_SUM_BLOCK values are summed with 8 independent accumulators (a
 * vectorized loop), and the block sums are combined pairwise through a
 * binary counter, so the rounding error grows like log2(n / FL_SUM_BLOCK),
 * not like n. */
#define FL_SUM_BLOCK 1024
#define TYPED_BLOCK(CT)                                                       \
    static double sum_block_##CT(const CT *q, fl_idx n, fl_idx s)             \
    {                                                                         \
        double acc[8] = { 0, 0, 0, 0, 0, 0, 0, 0 };                           \
        fl_idx i = 0;                                                         \
        if (s == 1) {                                                         \
            for (; i + 8 <= n; i += 8)                                        \
                for (int k = 0; k < 8; k++) acc[k] += (double)q[i + k];       \
        } else {                                                              \
            for (; i + 8 <= n; i += 8)                                        \
                for (int k = 0; k < 8; k++) acc[k] += (double)q[(i + k) * s]; \
        }                                                                     \
        for (; i < n; i++) acc[i & 7] += (double)q[i * s];                    \
        return ((acc[0] + acc[1]) + (acc[2] + acc[3])) +                      \
               ((acc[4] + acc[5]) + (acc[6] + acc[7]));                       \
    }
TYPED_BLOCK(float)
TYPED_BLOCK(double)
TYPED_BLOCK(int8_t)
TYPED_BLOCK(int16_t)
TYPED_BLOCK(int32_t)
TYPED_BLOCK(int64_t)
TYPED_BLOCK(uint8_t)
TYPED_BLOCK(uint16_t)
TYPED_BLOCK(uint32_t)
TYPED_BLOCK(uint64_t)
#undef TYPED_BLOCK

static double sum_block(const void *v, int type, fl_idx n, fl_idx s)
{
    switch (type) {
    case FL_E_F32: return sum_block_float((const float *)v, n, s);
    case FL_E_F64: return sum_block_double((const double *)v, n, s);
    case FL_E_I8:  return sum_block_int8_t((const int8_t *)v, n, s);
    case FL_E_I16: return sum_block_int16_t((const int16_t *)v, n, s);
    case FL_E_I32: return sum_block_int32_t((const int32_t *)v, n, s);
    case FL_E_I64: return sum_block_int64_t((const int64_t *)v, n, s);
    case FL_E_U8:  return sum_block_uint8_t((const uint8_t *)v, n, s);
    case FL_E_U16: return sum_block_uint16_t((const uint16_t *)v, n, s);
    case FL_E_U32: return sum_block_uint32_t((const uint32_t *)v, n, s);
    case FL_E_U64: return sum_block_uint64_t((const uint64_t *)v, n, s);
    default: return 0.0;
    }
}

double fl_sum_typed(const void *v, int type, fl_idx n, fl_idx s)
{
    size_t esz = fl_elem_size(type);
    if (esz == 0 || n <= 0) return 0.0;
    /* pairwise combination of the block sums: level k of the stack holds
     * the sum of 2^k blocks */
    double level[64];
    int depth = 0;
    fl_idx nb = 0;
    for (fl_idx o = 0; o < n; o += FL_SUM_BLOCK, nb++) {
        fl_idx m = n - o < FL_SUM_BLOCK ? n - o : FL_SUM_BLOCK;
        double x = sum_block((const char *)v + o * s * (fl_idx)esz, type, m, s);
        /* carry: each trailing 1 bit of the block count merges a level */
        for (fl_idx c = nb; c & 1; c >>= 1) x = level[--depth] + x;
        level[depth++] = x;
    }
    double acc = 0.0;
    while (depth > 0) acc = level[--depth] + acc;
    return acc;
}

/* Class labels of any real element type as int64 (the class drivers read
 * int64): returns the index of the first label that is not a whole number
 * representable in int64 (NaN, inf, fractional, a uint64 beyond INT64_MAX),
 * or -1.  Ranges ([0, C), ignore_index) are the prepass's business. */
#define LABELS_INT(CT)                                                        \
    {                                                                         \
        const CT *q = (const CT *)src;                                        \
        for (fl_idx i = 0; i < n; i++) dst[i] = (int64_t)q[i];                \
        return -1;                                                            \
    }
#define LABELS_FLOAT(CT)                                                      \
    {                                                                         \
        const CT *q = (const CT *)src;                                        \
        for (fl_idx i = 0; i < n; i++) {                                      \
            double x = (double)q[i];                                          \
            /* -2^63 <= x < 2^63 and whole (NaN fails the comparisons) */     \
            if (!(x >= -9223372036854775808.0 && x < 9223372036854775808.0) || \
                x != (double)(int64_t)x)                                      \
                return i;                                                     \
            dst[i] = (int64_t)x;                                              \
        }                                                                     \
        return -1;                                                            \
    }

fl_idx fl_labels_i64(const void *src, int type, fl_idx n, int64_t *dst)
{
    switch (type) {
    case FL_E_F32: LABELS_FLOAT(float)
    case FL_E_F64: LABELS_FLOAT(double)
    case FL_E_I8:  LABELS_INT(int8_t)
    case FL_E_I16: LABELS_INT(int16_t)
    case FL_E_I32: LABELS_INT(int32_t)
    case FL_E_I64: LABELS_INT(int64_t)
    case FL_E_U8:  LABELS_INT(uint8_t)
    case FL_E_U16: LABELS_INT(uint16_t)
    case FL_E_U32: LABELS_INT(uint32_t)
    case FL_E_U64: {
        const uint64_t *q = (const uint64_t *)src;
        for (fl_idx i = 0; i < n; i++) {
            if (q[i] > (uint64_t)INT64_MAX) return i;
            dst[i] = (int64_t)q[i];
        }
        return -1;
    }
    default: return 0;
    }
}
#undef LABELS_INT
#undef LABELS_FLOAT

/* float32 <-> float16, round to nearest even, for float16 calls (computed
 * in float32).  NumPy's casts go element by element, and its float32 ->
 * float16 takes ~90 ns per subnormal result (the mean gradient of 1e6
 * elements is ~1e-6: subnormal in float16).  These are branch-free integer
 * forms that vectorize:
 *  to half: |x| >= 65520 (the first value that rounds to inf) -> inf (NaN
 *  kept quiet); |x| < 2^-14 (half subnormals): adding 2^-1 * 2^-13... i.e.
 *  the magic constant 0.5 * 2^(-14+10)... the float addition x + M with
 *  M = 2^-1 (exponent such that one ulp of M is the half subnormal step
 *  2^-24) rounds x to a multiple of 2^-24 by the FPU's own RNE, and the low
 *  mantissa bits of the sum are the half's bits; otherwise the exponent is
 *  rebiased and the 13 dropped mantissa bits rounded to nearest even by
 *  adding 0xfff plus the lowest kept bit. */
static inline uint16_t fl_half_of(float v)
{
    uint32_t f, sign, o;
    memcpy(&f, &v, 4);
    sign = f & 0x80000000u;
    f ^= sign;
    const uint32_t inf32 = 255u << 23, big = (127u + 16u) << 23;   /* 2^16 */
    const uint32_t magic_u = 126u << 23;                           /* 0.5f */
    float m, s;
    memcpy(&m, &magic_u, 4);
    uint32_t sub, nrm, t;
    {   /* subnormal (and zero) results */
        float fv;
        memcpy(&fv, &f, 4);
        s = fv + m;
        memcpy(&t, &s, 4);
        sub = t - magic_u;
    }
    nrm = (f + ((uint32_t)(15 - 127) << 23) + 0xfffu + ((f >> 13) & 1u)) >> 13;
    o = f < (113u << 23) ? sub : nrm;                              /* 2^-14 */
    o = f >= big || f >= 0x477ff000u ? 0x7c00u : o;                /* overflow -> inf */
    o = f > inf32 ? 0x7e00u : o;                                   /* NaN */
    return (uint16_t)(o | (sign >> 16));
}

/* half -> float: exact (every half is a float) */
static inline float fl_float_of(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
    uint32_t bits;
    float v;
    /* normal: rebias; inf/NaN: all-ones exponent; subnormal: mant * 2^-24 */
    uint32_t normal = ((e + 112u) << 23) | (mant << 13);
    uint32_t special = 0x7f800000u | (mant << 13);
    bits = e == 31 ? special : normal;
    memcpy(&v, &bits, 4);
    float subv = (float)mant * 5.9604644775390625e-8f;             /* 2^-24 */
    v = e == 0 ? subv : v;
    memcpy(&bits, &v, 4);
    bits |= sign;
    memcpy(&v, &bits, 4);
    return v;
}

void fl_f32_to_f16(const float *FL_RESTRICT src, uint16_t *FL_RESTRICT dst, fl_idx n)
{
#pragma omp simd
    for (fl_idx i = 0; i < n; i++) dst[i] = fl_half_of(src[i]);
}

void fl_f16_to_f32(const uint16_t *FL_RESTRICT src, float *FL_RESTRICT dst, fl_idx n)
{
#pragma omp simd
    for (fl_idx i = 0; i < n; i++) dst[i] = fl_float_of(src[i]);
}
