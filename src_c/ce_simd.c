/* Hand-vectorized loops of cross_entropy (labels, no smoothing),
 * multi_margin and nll's clearing, written once over simd.h and compiled for
 * the ISA of the translation unit (AVX-512, AVX2+FMA, SSE2, NEON):
 *  - the row path (C > CE_COLS_MAXC), float32 and float64, per segment: the
 *    maximum, exp(z - m) stored and summed, and the scaling of the stored
 *    exponentials into the gradient (ce_simd_row.h, instantiated twice);
 *  - the path across samples for few classes (C <= CE_COLS_MAXC), float32.
 * The portable C loops in class_template.h do the same work (and everything
 * else: smoothing, probability targets, Hessians); GCC's code for them
 * carries scalar remainder loops, horizontal reductions through memory and
 * a two-step 2^k scaling that together cost 2-5x these loops.
 *
 * exp is specialised to arguments d <= 0 (d = z - max): k = round(d/ln2),
 * Cody-Waite reduction r = d - k ln2 (FMAs; mul + add on SSE2), e^r by a
 * polynomial, 2^k applied by scale2k (vscalef on AVX-512, exponent-field
 * steps elsewhere: the same bits), which rounds subnormal results once and
 * underflows to +0 exactly.  float: degree-7 minimax (Cephes' expf
 * coefficients), max error 1.4 ulp over [-110, 0] with FMA; double: vmath's
 * degree-12 polynomial and exact 1 + r split (< 1 ulp).  Checked element by
 * element against float64 oracles by tests/test_classes.py
 * (test_ce_simd_rows_*).  d = -inf gives +0, NaN stays NaN.  With FMA (every
 * width but SSE2) a lane's result does not depend on the width.
 *
 * Sums: float lanes accumulate 16 vectors of exponentials, then the partial
 * vector is added into float64 accumulators; a row is always summed by one
 * thread, segment by segment, so results do not depend on the thread count
 * (they do, by reassociation, on the width). */
#include "fl_internal.h"
#include "ce_simd.h"

#if FL_HAVE_SIMD_LOOPS
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "simd.h"
#include "vmath.h"

const char *fl_simd_loops_isa(void) { return FL_V_NAME; }

FL_INLINE fl_vf exp_le0_f(fl_vf d)
{
    const fl_vf log2e = vf_set1(1.44269502f);
    const fl_vf shift = vf_set1(12582912.0f);     /* 1.5 * 2^23 */
    const fl_vf ln2hi = vf_set1(0.693145752f);
    const fl_vf ln2lo = vf_set1(1.42860677e-06f);
    /* below -110, e^d is 0 in float; NaN passes (max returns the 2nd operand) */
    d = vf_max(vf_set1(-110.0f), d);
    fl_vf kd = vf_fma(d, log2e, shift);
    fl_vf k = kd - shift;
    fl_vf r = vf_fnma(k, ln2hi, d);
    r = vf_fnma(k, ln2lo, r);
    fl_vf p = vf_set1(1.9875691500e-4f);
    p = vf_fma(p, r, vf_set1(1.3981999507e-3f));
    p = vf_fma(p, r, vf_set1(8.3334519073e-3f));
    p = vf_fma(p, r, vf_set1(4.1665795894e-2f));
    p = vf_fma(p, r, vf_set1(1.6666665459e-1f));
    p = vf_fma(p, r, vf_set1(5.0000001201e-1f));
    p = vf_fma(p, r, vf_set1(1.0f));
    p = vf_fma(p, r, vf_set1(1.0f));
    return vf_scale2k(p, k);
}

/* exp(d) for d <= 0 in double: the same reduction, vmath's degree-12
 * polynomial for e^r and its exact 1 + rhi split (0.78 ulp in vmath), the
 * scaling by 2^k.  NaN passes; below -746 the result is +0. */
FL_INLINE fl_vd exp_le0_d(fl_vd d)
{
    const fl_vd shift = vd_set1(0x1.8p52);
    d = vd_max(vd_set1(-746.0), d);
    fl_vd kd = vd_fma(d, vd_set1(0x1.71547652b82fep+0), shift);
    fl_vd k = kd - shift;
    fl_vd rhi = vd_fnma(k, vd_set1(0x1.62e42feep-1), d);
    fl_vd rlo = k * vd_set1(-0x1.a39ef35793c76p-33);
    fl_vd r = rhi + rlo;
    fl_vd p = vd_set1(0x1.2050d4d528b22p-29);
    p = vd_fma(p, r, vd_set1(0x1.af744b1ff55a4p-26));
    p = vd_fma(p, r, vd_set1(0x1.27e44a6ef71e1p-22));
    p = vd_fma(p, r, vd_set1(0x1.71ddeaaba8ebcp-19));
    p = vd_fma(p, r, vd_set1(0x1.a01a01e8a9304p-16));
    p = vd_fma(p, r, vd_set1(0x1.a01a01b5f4d83p-13));
    p = vd_fma(p, r, vd_set1(0x1.6c16c16c0a41fp-10));
    p = vd_fma(p, r, vd_set1(0x1.111111110e549p-7));
    p = vd_fma(p, r, vd_set1(0x1.555555555556cp-5));
    p = vd_fma(p, r, vd_set1(0x1.555555555555dp-3));
    fl_vd q = (r * r) * vd_fma(r, p, vd_set1(0.5));
    /* e^r = (1 + rhi) + (rlo + q), 1 + rhi = S + c exactly */
    const fl_vd one = vd_set1(1.0);
    fl_vd S = one + rhi;
    fl_vd c = (one - S) + rhi;
    fl_vd er = S + (c + (rlo + q));
    return vd_scale2k(er, k);
}

#define E float
#define V fl_vf
#define L FL_VLF
#define SFXR(n) n##_f32_simd
#define VX(op) vf_##op
#define VEXP exp_le0_f
#define VACC vf_acc
#include "ce_simd_row.h"     /* (undefines its parameters) */

#define E double
#define V fl_vd
#define L FL_VLD
#define SFXR(n) n##_f64_simd
#define VX(op) vd_##op
#define VEXP exp_le0_d
#define VACC vd_acc
#include "ce_simd_row.h"     /* (undefines its parameters) */

/* ------------------------------------------------------------------
 * Few classes (C <= CE_COLS_MAXC): one sample per lane.  A block of J <= 64
 * rows is brought class by class into buf (class c of sample j at
 * buf[c * 64 + j]; by gathers where the ISA has them, else a plain
 * transpose), the maximum, exponentials and sums run across samples, the
 * per-sample logs in float64 (vmath, vectorized), and the gradient goes
 * back into the rows (scatters on AVX-512, else through buf and a plain
 * transpose).  Lanes past J are padded with 0 and never stored.  Infinite
 * maxima take the same limits as the portable loops (a sample's result
 * never depends on its neighbours). */
#define CB 64
#define LF FL_VLF

int fl_ce_cols_f32_simd(const fl_cls_args *a, fl_idx i0, fl_idx J, float *buf, double *acc_out)
{
    const fl_idx C = a->C;
    const float *z = (const float *)a->z + i0 * C;
    const int64_t *yv = a->y + i0;
    const float *cw = (const float *)a->cw;
    const float *sw = a->sw ? (const float *)a->sw + i0 : NULL;
    float *g = a->grad ? (float *)a->grad + i0 * C : NULL;
    float *val = a->val ? (float *)a->val + i0 : NULL;
    const double scale = (double)(float)a->scale;
    float mA[CB], SA[CB], SxA[CB], zyA[CB], fA[CB], gyA[CB], yF[CB], ignF[CB];
    double cwA[CB], sjA[CB], lossA[CB];
    int32_t yA[CB];
    unsigned char ign[CB], infb[CB / LF];
    const fl_idx Jr = (J + LF - 1) / LF * LF;
    const fl_vf ninf = vf_set1(-INFINITY), pinf = vf_set1(INFINITY), zero = vf_zero();

    for (fl_idx j = 0; j < J; j++) {
        int64_t y = yv[j];
        ign[j] = a->has_ignore && y == a->ignore_index;
        yA[j] = ign[j] ? 0 : (int32_t)y;      /* checked in [0, C) by the prepass */
        yF[j] = (float)yA[j];
        ignF[j] = ign[j] ? 1.0f : 0.0f;
        cwA[j] = cw ? (double)cw[yA[j]] : 1.0;
        sjA[j] = ign[j] ? 0.0 : (sw ? (double)sw[j] : 1.0);
        zyA[j] = z[j * C + yA[j]];
    }
    for (fl_idx j = J; j < Jr; j++) yF[j] = ignF[j] = 1.0f;
    /* pass 1: the classes into buf, and the maximum */
#if FL_V_GATHER
    int32_t idx[CB];
    for (fl_idx j = 0; j < Jr; j++) idx[j] = (int32_t)(j < J ? j * C : 0);
    for (fl_idx jb = 0; jb < Jr; jb += LF) {
        const int nb = (int)(J - jb < LF ? J - jb : LF);
        fl_vf m = ninf;
        for (fl_idx c = 0; c < C; c++) {
            fl_vf v = vf_gather(z + c, idx + jb, nb);
            vf_store(buf + c * CB + jb, v);
            m = vf_max(v, m);
        }
        vf_store(mA + jb, m);
    }
#else
    for (fl_idx j = 0; j < J; j++)
        for (fl_idx c = 0; c < C; c++) buf[c * CB + j] = z[j * C + c];
    for (fl_idx c = 0; c < C; c++)
        for (fl_idx j = J; j < Jr; j++) buf[c * CB + j] = 0.0f;
    for (fl_idx jb = 0; jb < Jr; jb += LF) {
        fl_vf m = ninf;
        for (fl_idx c = 0; c < C; c++) m = vf_max(vf_load(buf + c * CB + jb), m);
        vf_store(mA + jb, m);
    }
#endif
    /* pass 2: exponentials (kept in buf) and the sums with / without y */
    for (fl_idx jb = 0; jb < Jr; jb += LF) {
        const fl_vf m = vf_load(mA + jb);
        const fl_vf y = vf_load(yF + jb);
        /* a sample with an infinite maximum, or all -inf / NaN (m = -inf) */
        const fl_mf fin = mf_and(vf_lt(m, pinf), vf_gt(m, ninf));
        const int inf = infb[jb / LF] = (unsigned char)mf_any(mf_andnot(fin, mf_first(LF)));
        fl_vf S = zero, Sx = zero, cv = zero;
        for (fl_idx c = 0; c < C; c++) {
            fl_vf zc = vf_load(buf + c * CB + jb);
            fl_vf d = zc - m;
            /* the limits, as the portable loops: a class at an infinite
             * maximum counts exp(0) = 1, the others exp(-inf) = 0 */
            if (inf) d = vf_sel(vf_eq(zc, m), zero, d);
            fl_vf e = exp_le0_f(d);
            vf_store(buf + c * CB + jb, e);
            S = S + e;
            Sx = Sx + vf_sel(vf_eq(y, cv), zero, e);
            cv = cv + vf_set1(1.0f);
        }
        if (inf) {              /* every logit -inf (or NaN): no limit, NaN */
            fl_mf none = mf_andnot(fin, vf_eq(m, ninf));
            S = vf_sel(none, vf_set1(NAN), S);
            Sx = vf_sel(none, vf_set1(NAN), Sx);
        }
        vf_store(SA + jb, S);
        vf_store(SxA + jb, Sx);
    }
    (void)infb;
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
    /* pass 3: the gradient, back into the rows */
    for (fl_idx jb = 0; jb < Jr; jb += LF) {
        const fl_vf f = vf_load(fA + jb), gy = vf_load(gyA + jb), y = vf_load(yF + jb);
        const fl_mf live = vf_eq(vf_load(ignF + jb), zero);   /* ignored: exact zeros */
        fl_vf cv = zero;
#if FL_V_SCATTER
        const int nb = (int)(J - jb < LF ? J - jb : LF);
#endif
        for (fl_idx c = 0; c < C; c++) {
            fl_vf v = vf_load(buf + c * CB + jb) * f;
            v = vf_sel(vf_eq(y, cv), gy, v);
            v = vf_zsel(live, v);
#if FL_V_SCATTER
            vf_scatter(g + c, idx + jb, nb, v);
#else
            vf_store(buf + c * CB + jb, v);
#endif
            cv = cv + vf_set1(1.0f);
        }
    }
#if !FL_V_SCATTER
    for (fl_idx j = 0; j < J; j++)
        for (fl_idx c = 0; c < C; c++) g[j * C + c] = buf[c * CB + j];
#endif
    return 1;
}

/* ------------------------------------------------------------------
 * multi_margin on rows of at most 16 classes (float32, value / gradient):
 * ceil(C / L) vectors per row (one on AVX-512), the last one partial,
 * instead of a wide loop that never runs and a scalar remainder.  Same
 * arithmetic as margin_core in class_template.h: v_c = (margin - z_y) + z_c,
 * active where c < C, c != y and not v <= 0 (NaN is active), the sums in
 * float64. */
int fl_margin_rows_f32_simd(const fl_cls_args *a, fl_idx i0, fl_idx i1, double *acc_out)
{
    const fl_idx C = a->C;
    if (C > 16 || C < 1 || a->inner != 1 || a->hess) return 0;
    const float *Z = (const float *)a->z, *SW = (const float *)a->sw;
    const float *cw = (const float *)a->cw;
    float *G = (float *)a->grad, *Vo = (float *)a->val;
    const float mg = (float)a->margin, scale = (float)a->scale;
    const int p2 = a->power == 2;
    const fl_vf zero = vf_zero(), two = vf_set1(2.0f), one = vf_set1(1.0f);
    const fl_vf iota = vf_iota(), Cv = vf_set1((float)C);
    double acc = 0.0;
    for (fl_idx i = i0; i < i1; i++) {
        const float *z = Z + i * C;
        const fl_idx y = (fl_idx)a->y[i];
        const fl_vf yv = vf_set1((float)y), mz = vf_set1(mg - z[y]);
        float s = SW ? SW[i] : 1.0f, k = s * scale;
        double cwy = cw ? (double)cw[y] : 1.0;
        float kk = (float)((double)k * cwy / (double)C);
        fl_vd l0 = vd_zero(), l1 = vd_zero(), d0 = vd_zero(), d1 = vd_zero();
        for (fl_idx cb = 0; cb < C; cb += LF) {
            const int nb = (int)(C - cb < LF ? C - cb : LF);
            const fl_vf ci = iota + vf_set1((float)cb);
            fl_vf zv = nb == LF ? vf_load(z + cb) : vf_loadp(z + cb, nb, 0.0f);
            fl_vf v = mz + zv;
            fl_mf act = mf_and(mf_andnot(vf_eq(ci, yv), vf_lt(ci, Cv)), vf_nle(v, zero));
            fl_vf lv = v;
            if (p2) lv = v * v;
            vf_acc(&l0, &l1, vf_zsel(act, lv));
            if (G) {
                /* the derivative of v^p: 2v or 1, NaN where v is NaN */
                fl_vf dv = vf_sel(vf_isnan(v), v, one);
                if (p2) dv = two * v;
                dv = vf_zsel(act, dv);
                vf_acc(&d0, &d1, dv);
                fl_vf gv = vf_set1(kk) * dv;
                if (nb == LF) vf_store(G + i * C + cb, gv);
                else vf_storep(G + i * C + cb, nb, gv);
            }
        }
        double loss = vd_hsum(l0 + l1);
        if (G) G[i * C + y] = (float)(-(double)kk * vd_hsum(d0 + d1));
        loss = cwy == 0 ? 0.0 : loss * cwy / (double)C;
        loss = (double)s * loss;
        if (Vo) Vo[i] = (float)loss;
        acc += loss;
    }
    *acc_out = acc;
    return 1;
}

/* Zero a large buffer with non-temporal stores: no read-for-ownership of
 * lines that are only overwritten (nll's gradient rows), and no eviction of
 * the cache's working set.  Head and tail by memset; memset only where the
 * ISA has no streaming store (NEON). */
void fl_zero_stream_simd(void *p, size_t bytes)
{
#if FL_V_STREAM
    char *c = (char *)p;
    size_t head = (size_t)(-(uintptr_t)c & 63u);
    if (head > bytes) head = bytes;
    memset(c, 0, head);
    c += head;
    bytes -= head;
    const fl_vf z = vf_zero();
    size_t body = bytes & ~(size_t)63u;
    for (size_t i = 0; i < body; i += 64)
        for (int k = 0; k < 64 / FL_VBYTES; k++) vf_stream((float *)(c + i) + k * FL_VLF, z);
    fl_vfence();
    memset(c + body, 0, bytes - body);
#else
    memset(p, 0, bytes);
#endif
}

#endif
