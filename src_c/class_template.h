/* The class-axis family (cross_entropy, nll, multi_margin) for one floating
 * type; included by classwise.c with T, SFX(n), VM(f) defined.
 *
 * Logits are C-contiguous (outer, C, inner); a sample is one (outer, inner)
 * position and its C logits lie at stride `inner`.  When inner == 1 a
 * sample's logits are a contiguous row and are used in place; otherwise they
 * are gathered into a small buffer and the gradient scattered back.
 *
 * cross_entropy works on SEGMENTS of a row: phase A computes a segment's
 * maximum m_s and its sums relative to m_s (storing exp(z - m_s) in the
 * gradient row), phase B merges the segments of a row, phase C turns the
 * stored exponentials into the gradient.  An ordinary row is one segment
 * (A and C back to back while the row is in cache: logits read once,
 * gradient written once); a few very long rows are cut into many segments
 * so that all threads share them.
 */

/* Per-segment sums, all relative to the segment maximum m. */
typedef struct {
    double S;      /* sum_c exp(z_c - m)                              */
    double Sx;     /* the same without the target class               */
    double Q;      /* sum_c w_c (m - z_c), w_c the smoothing/target weights */
    double R;      /* sum_c w_c                                        */
    double Sn;     /* sum over the classes below the maximum              */
    double cnt;    /* how many classes equal the maximum                  */
    T m;
} SFX(seg);

/* Phase A over z[lo..hi): exponentials relative to the segment maximum m
 * and their sums.  w_c is
 *   WMODE 0: none (no smoothing), 1: eC * cw_c (label smoothing),
 *   WMODE 2: cw_c * ((1-e) t_c + e/C) (probability targets).
 * STORE: keep exp(z_c - m) in g.  SN (Hessians only): also the sum below
 * the maximum and the count at it. */
FL_INLINE void SFX(ce_a_range)(const T *FL_RESTRICT z, fl_idx lo, fl_idx hi, T m,
                               const T *FL_RESTRICT cw, const T *FL_RESTRICT tp,
                               T eC, T onem_e, T *FL_RESTRICT g,
                               const int WMODE, const int CW, const int STORE,
                               const int SN, double *acc)
{
    double S = 0.0, Q = 0.0, R = 0.0, Sn = 0.0, cnt = 0.0;
    _Pragma("omp simd reduction(+:S, Q, R, Sn, cnt)")
    for (fl_idx c = lo; c < hi; c++) {
        T zc = z[c];
        /* z == m gives exactly 0 even when m is infinite */
        int top = zc == m;
        T d = top ? (T)0 : zc - m;
        T e = VM(exp)(d);
        S += (double)e;
        if (SN) {
            Sn += top ? 0.0 : (double)e;
            cnt += top ? 1.0 : 0.0;
        }
        if (WMODE) {
            T cwc = CW ? cw[c] : (T)1;
            T w = WMODE == 1 ? eC * cwc : cwc * (onem_e * tp[c] + eC);
            /* a zero weight contributes 0 even against a -inf logit */
            Q += w == 0 ? 0.0 : (double)(w * -d);
            R += (double)w;
        }
        if (STORE) g[c] = e;
    }
    acc[0] += S; acc[1] += Q; acc[2] += R; acc[3] += Sn; acc[4] += cnt;
}

/* Phase A over z[0..n); y: the target class relative to z (or outside
 * [0, n)).  The loop skips the target, so the sum without it (Sx, whose
 * log1p is a tiny loss) needs no subtraction. */
FL_INLINE void SFX(ce_phase_a)(const T *FL_RESTRICT z, fl_idx n, fl_idx y,
                               const T *FL_RESTRICT cw, const T *FL_RESTRICT tp,
                               T eC, T onem_e, T *FL_RESTRICT g,
                               const int WMODE, const int CW, const int STORE,
                               const int SN, SFX(seg) *st)
{
    T m = -(T)INFINITY;
    _Pragma("omp simd reduction(max:m)")
    for (fl_idx c = 0; c < n; c++) m = z[c] > m ? z[c] : m;
    double acc[5] = {0.0, 0.0, 0.0, 0.0, 0.0};
    const fl_idx ys = y >= 0 && y < n ? y : n;
    SFX(ce_a_range)(z, 0, ys, m, cw, tp, eC, onem_e, g, WMODE, CW, STORE, SN, acc);
    SFX(ce_a_range)(z, ys < n ? ys + 1 : n, n, m, cw, tp, eC, onem_e, g, WMODE, CW, STORE,
                    SN, acc);
    st->Sx = acc[0];
    if (ys < n)
        SFX(ce_a_range)(z, ys, ys + 1, m, cw, tp, eC, onem_e, g, WMODE, CW, STORE, SN, acc);
    st->S = acc[0]; st->Q = acc[1]; st->R = acc[2]; st->Sn = acc[3]; st->cnt = acc[4];
    st->m = m;
}

/* Phase C, in place on buf (holding exp(z_c - m_s)), with
 * p_c = buf_c * f and f = exp(m_s - M) / S:
 *   gradient  buf_c = k (A p_c - w_c)
 *   Hessian   buf_c = k A p_c (1 - p_c)
 * 1 - p_c cancels only for a class at the maximum (buf_c == 1 in the top
 * segment, passed as top = 1; other segments pass 2): there it is
 * sm1f = (S - 1) / S, from the sum of the classes below the maximum; the
 * same keeps A p_c - w_c exact for targets at the maximum. */
FL_INLINE void SFX(ce_phase_c)(T *FL_RESTRICT buf, fl_idx n,
                               const T *FL_RESTRICT cw, const T *FL_RESTRICT tp,
                               T eC, T onem_e, T f, T kA, T k, T top, T sm1f,
                               const int WMODE, const int CW, const int HESS)
{
    _Pragma("omp simd")
    for (fl_idx c = 0; c < n; c++) {
        T p = buf[c] * f;
        if (HESS) {
            T q = buf[c] == top ? sm1f : (T)1 - p;
            buf[c] = kA * p * q;
        } else {
            T w = (T)0;
            if (WMODE) {
                T cwc = CW ? cw[c] : (T)1;
                w = WMODE == 1 ? eC * cwc : cwc * (onem_e * tp[c] + eC);
                /* at the maximum p = 1 - (S-1)/S: A p - w = (A - w) - A (S-1)/S
                 * keeps the tail when the target mass is there (A ~ w) */
                /* (an infinite A, from infinite target weights: the plain
                 * form gives the limit, inf - w) */
                buf[c] = buf[c] == top && kA - kA == 0 ? (kA - k * w) - kA * sm1f
                                                       : kA * p - k * w;
            } else {
                buf[c] = kA * p;
            }
        }
    }
}

/* Everything about a cross_entropy call that is fixed per call. */
typedef struct {
    const fl_cls_args *a;
    fl_idx C;
    T eC, onem_e;          /* e / C and 1 - e                               */
    int wmode, cw, hess, grad;
} SFX(ce_ctx);

static void SFX(ce_a)(const SFX(ce_ctx) *x, const T *z, fl_idx n, fl_idx y,
                      const T *cw, const T *tp, T *g, SFX(seg) *st)
{
    /* constant flags -> one specialised loop per combination */
#define CE_A(W, CWF, ST, SN) SFX(ce_phase_a)(z, n, y, cw, tp, x->eC, x->onem_e, g, W, CWF, ST, SN, st)
#define CE_A2(K, W, CWF, ST) case 2 * (K): CE_A(W, CWF, ST, 0); break; \
                             case 2 * (K) + 1: CE_A(W, CWF, ST, 1); break;
    int store = g != NULL;
    if (x->wmode == 0 && !x->hess && CE_FAST_A(z, n, y, g, &st->S, &st->Sx, &st->m)) {
        st->Q = st->R = st->Sn = st->cnt = 0.0;
        return;
    }
    /* smoothing / probability targets also need S - 1 (the loss is
     * R log1p(S - 1): the tail of S ~ 1 is kept) */
    switch ((x->wmode * 4 + x->cw * 2 + store) * 2 + (x->hess || x->wmode ? 1 : 0)) {
        CE_A2(0, 0, 0, 0) CE_A2(1, 0, 0, 1) CE_A2(2, 0, 1, 0) CE_A2(3, 0, 1, 1)
        CE_A2(4, 1, 0, 0) CE_A2(5, 1, 0, 1) CE_A2(6, 1, 1, 0) CE_A2(7, 1, 1, 1)
        CE_A2(8, 2, 0, 0) CE_A2(9, 2, 0, 1) CE_A2(10, 2, 1, 0) CE_A2(11, 2, 1, 1)
        default: break;
    }
#undef CE_A2
#undef CE_A
}

static void SFX(ce_c)(const SFX(ce_ctx) *x, T *buf, fl_idx n, const T *cw,
                      const T *tp, T f, T kA, T k, T top, T sm1f)
{
    if (x->wmode == 0 && !x->hess && CE_FAST_SCALE(buf, n, (T)((double)f * (double)kA)))
        return;
#define CE_C(W, CWF, H) SFX(ce_phase_c)(buf, n, cw, tp, x->eC, x->onem_e, f, kA, k, top, sm1f, W, CWF, H)
    switch (x->wmode * 4 + x->cw * 2 + x->hess) {
        case 0: CE_C(0, 0, 0); break;  case 1: CE_C(0, 0, 1); break;
        case 2: CE_C(0, 1, 0); break;  case 3: CE_C(0, 1, 1); break;
        case 4: CE_C(1, 0, 0); break;  case 5: CE_C(1, 0, 1); break;
        case 6: CE_C(1, 1, 0); break;  case 7: CE_C(1, 1, 1); break;
        case 8: CE_C(2, 0, 0); break;  case 9: CE_C(2, 0, 1); break;
        case 10: CE_C(2, 1, 0); break; default: CE_C(2, 1, 1); break;
    }
#undef CE_C
}

/* Merge the segments of one row and finish it: returns the sample's loss
 * (before the sample weight) and fills what phase C needs. */
typedef struct { double M, S, Sx, Q, R, logS, Sm1; } SFX(rowsum);

static SFX(rowsum) SFX(ce_merge)(const SFX(seg) *st, fl_idx nseg, int sn)
{
    SFX(rowsum) r;
    T M = st[0].m;
    for (fl_idx s = 1; s < nseg; s++) M = st[s].m > M ? st[s].m : M;
    double S = 0, Sx = 0, Q = 0, R = 0, Sn = 0, cnt = 0;
    for (fl_idx s = 0; s < nseg; s++) {
        double dm = st[s].m == M ? 0.0 : (double)st[s].m - (double)M;
        double f = nseg == 1 ? 1.0 : fl_exp(dm);
        S += st[s].S * f;
        Sx += st[s].Sx * f;
        if (st[s].m == M) { Sn += st[s].Sn; cnt += st[s].cnt; }
        else Sn += st[s].S * f;
        Q += st[s].Q + (st[s].R == 0 ? 0.0 : st[s].R * -dm);
        R += st[s].R;
    }
    /* every logit -inf: no limit exists, the sample is NaN throughout */
    if (M == -(T)INFINITY) S = Sx = Sn = NAN;
    r.M = (double)M; r.S = S; r.Sx = Sx; r.Q = Q; r.R = R;
    r.Sm1 = Sn + (cnt - 1.0);           /* S - 1 without cancellation (sn) */
    r.logS = sn ? fl_log1p(r.Sm1) : fl_log(S);
    return r;
}

/* The loss of one sample from its merged sums.  zy: the target logit. */
/* sum_c w_c (lse - z_c) class by class (w_c = 0 contributes 0): the soft
 * part of the loss when the weights are infinite, where Q + R log S would be
 * inf - inf.  z, tp at strides ldz, ldt. */
static double SFX(ce_soft_direct)(const SFX(ce_ctx) *x, const T *z, fl_idx ldz,
                                  const T *tp, fl_idx ldt, double M, double logS)
{
    const T *cw = (const T *)x->a->cw;
    double loss = 0.0;
    for (fl_idx c = 0; c < x->C; c++) {
        double cwc = cw ? (double)cw[c] : 1.0;
        double w = x->wmode == 1 ? (double)x->eC * cwc
                                 : cwc * ((double)x->onem_e * (double)tp[c * ldt] + (double)x->eC);
        double zc = (double)z[c * ldz];
        loss += w == 0 ? 0.0 : w * ((zc == M ? 0.0 : M - zc) + logS);
    }
    return loss;
}

static inline double SFX(ce_loss)(const SFX(ce_ctx) *x, const SFX(rowsum) *r,
                                  int labelled, double zy, double cwy, const T *z,
                                  const T *tp)
{
    double loss = isinf(r->R) ? SFX(ce_soft_direct)(x, z, 1, tp, 1, r->M, r->logS)
                              : r->Q + (r->R == 0 ? 0.0 : r->R * r->logS);
    if (labelled) {
        /* lse - z_y, as log1p(sum_{c!=y} exp(z_c - z_y)) when y is the
         * maximum: full relative accuracy for tiny losses */
        double main = zy == r->M ? fl_log1p(r->Sx) : (r->M - zy) + r->logS;
        loss += (double)x->onem_e * cwy * main;
    }
    return loss;
}

/* One whole sample whose logits z (contiguous, length C) are in cache.
 * y < 0: probability targets in tp.  k = sample weight * scale.
 * g, h: gradient / Hessian rows (or NULL).  Returns the loss (unweighted). */
static double SFX(ce_sample)(const SFX(ce_ctx) *x, const T *z, fl_idx y,
                             const T *tp, T k, T *g, T *h)
{
    const fl_cls_args *a = x->a;
    const T *cw = (const T *)a->cw;
    const fl_idx C = x->C;
    /* rows longer than FL_CE_SEG are cut into the same segments as the
     * threaded split path, so every thread count rounds alike */
    const fl_idx nseg = C > FL_CE_SEG ? (C + FL_CE_SEG - 1) / FL_CE_SEG : 1;
    SFX(seg) st1[16];
    SFX(seg) *st = nseg <= 16 ? st1 : (SFX(seg) *)malloc(sizeof(SFX(seg)) * (size_t)nseg);
    if (!st) return NAN;            /* (C >= 131073 and no memory for 48 bytes per 8192) */
    T *store = g ? g : h;
    fl_idx q = 0;
    do {                            /* at least one segment, even for C == 0 */
        fl_idx c0 = q * FL_CE_SEG, n = C - c0 < FL_CE_SEG ? C - c0 : FL_CE_SEG;
        SFX(ce_a)(x, z + c0, n, y >= 0 ? y - c0 : -1, cw ? cw + c0 : NULL,
                  tp ? tp + c0 : NULL, store ? store + c0 : NULL, &st[q]);
    } while (++q < nseg);
    SFX(rowsum) r = SFX(ce_merge)(st, nseg, x->hess || x->wmode);
    int labelled = y >= 0;
    double cwy = labelled ? (cw ? (double)cw[y] : 1.0) : 0.0;
    double zy = labelled ? (double)z[y] : 0.0;
    double loss = SFX(ce_loss)(x, &r, labelled, zy, cwy, z, tp);
    if (store) {
        double A = r.R + (labelled ? (double)x->onem_e * cwy : 0.0);
        double f = 1.0 / r.S;
        for (q = 0; q < nseg; q++) {
            fl_idx c0 = q * FL_CE_SEG, n = C - c0 < FL_CE_SEG ? C - c0 : FL_CE_SEG;
            int top = st[q].m == (T)r.M;
            double fq = nseg == 1 ? f : fl_exp(top ? 0.0 : (double)st[q].m - r.M) * f;
            SFX(ce_c)(x, store + c0, n, cw ? cw + c0 : NULL, tp ? tp + c0 : NULL, (T)fq,
                      (T)((double)k * A), k, top ? (T)1 : (T)2, (T)(r.Sm1 * f));
        }
        if (labelled) {
            /* the target entry without cancellation: p_y - 1 = -Sx / S */
            double py = fl_exp(zy == r.M ? 0.0 : zy - r.M) * f;
            double wy = x->wmode == 1 ? (double)x->eC * cwy : 0.0;
            if (g)
                g[y] = (T)((double)k * ((double)x->onem_e * cwy * (-r.Sx * f)
                                        + r.R * py - wy));
            else
                h[y] = (T)((double)k * A * py * (r.Sx * f));
        }
    }
    if (st != st1) free(st);
    return loss;
}

/* nll on log-probabilities z: -cw_y z_y (labels) or -sum_c cw_c t_c z_c. */
static double SFX(nll_sample)(const fl_cls_args *a, const T *z, fl_idx y,
                              const T *tp, T k, T *g, T *h, fl_idx C)
{
    const T *cw = (const T *)a->cw;
    T *out = g ? g : h;
    if (y >= 0) {
        double cwy = cw ? (double)cw[y] : 1.0;
        if (out) {
            const T zero = k - k;          /* k * 0: NaN for a NaN / inf weight */
            for (fl_idx c = 0; c < C; c++) out[c] = zero;
            if (g) g[y] = (T)(-(double)k * cwy);
        }
        return cwy == 0 ? 0.0 : -cwy * (double)z[y];
    }
    double loss = 0.0;
    _Pragma("omp simd reduction(+:loss)")
    for (fl_idx c = 0; c < C; c++) {
        T w = (cw ? cw[c] : (T)1) * tp[c];
        loss += w == 0 ? 0.0 : -(double)(w * z[c]);
        if (g) g[c] = -k * w;
        if (h) h[c] = k - k;
    }
    return loss;
}

/* multi_margin: sum_{c != y} cw_y max(0, margin - z_y + z_c)^power / C.
 * A NaN margin term counts as active, so NaN propagates. */
FL_INLINE double SFX(margin_core)(const T *FL_RESTRICT z, fl_idx y, T mg, T kk,
                                  T *FL_RESTRICT g, T *FL_RESTRICT h, fl_idx C,
                                  const int P2, const int G, const int H)
{
    const T zy = z[y];
    double loss = 0.0;
    /* the target entry is minus the sum of the others: summed as
     * kk * sum(dv) in float64 (float32 too), one rounding for kk */
    double ds = 0.0;
    _Pragma("omp simd reduction(+:loss, ds)")
    for (fl_idx c = 0; c < C; c++) {
        T v = mg - zy + z[c];
        int act = (c != y) & !(v <= (T)0);
        T lv = P2 ? v * v : v;
        loss += act ? (double)lv : 0.0;
        /* v NaN: the derivatives are NaN too */
        if (G) {
            T dv = act ? (v != v ? v : (P2 ? (T)2 * v : (T)1)) : (T)0;
            g[c] = kk * dv;
            ds += (double)dv;
        }
        if (H) {
            T dv = (act && P2) ? (v != v ? v : (T)2) : (T)0;
            h[c] = kk * dv;
            ds += (double)dv;
        }
    }
    if (G) g[y] = (T)(-(double)kk * ds);
    if (H) h[y] = (T)((double)kk * ds);
    return loss;
}

static double SFX(margin_sample)(const fl_cls_args *a, const T *z, fl_idx y,
                                 T k, T *g, T *h, fl_idx C)
{
    const T *cw = (const T *)a->cw;
    double cwy = cw ? (double)cw[y] : 1.0;
    T mg = (T)a->margin, kk = (T)((double)k * cwy / (double)C);
    double loss;
    int p2 = a->power == 2;
    if (g)      loss = p2 ? SFX(margin_core)(z, y, mg, kk, g, h, C, 1, 1, 0)
                          : SFX(margin_core)(z, y, mg, kk, g, h, C, 0, 1, 0);
    else if (h) loss = p2 ? SFX(margin_core)(z, y, mg, kk, g, h, C, 1, 0, 1)
                          : SFX(margin_core)(z, y, mg, kk, g, h, C, 0, 0, 1);
    else        loss = p2 ? SFX(margin_core)(z, y, mg, kk, g, h, C, 1, 0, 0)
                          : SFX(margin_core)(z, y, mg, kk, g, h, C, 0, 0, 0);
    return cwy == 0 ? 0.0 : loss * cwy / (double)C;
}

/* Check every label before anything is written; sum the mean's
 * denominator sum_i s_i cw[y_i] [y_i != ignore_index] on the way.
 * Returns the index of the first bad label, or -1. */
static fl_idx SFX(cls_prepass)(const fl_cls_args *a, double *wsum)
{
    const fl_idx n = a->outer * a->inner, C = a->C;
    const T *cw = (const T *)a->cw, *sw = (const T *)a->sw;
    double W = 0.0;
    for (fl_idx i = 0; i < n; i++) {
        int64_t y = a->y[i];
        if (a->has_ignore && y == a->ignore_index) continue;
        if (y < 0 || y >= (int64_t)C) return i;
        W += (sw ? (double)sw[i] : 1.0) * (cw ? (double)cw[y] : 1.0);
    }
    *wsum = W;
    return -1;
}

/* ------------------------------------------------------------------
 * cross_entropy across samples: a block of J <= CE_CB samples whose
 * logits are columns (class c of sample j at z[c * ldz + j]).  Loops run
 * over the samples, so they vectorize however few classes there are.  Used
 * for the (N, C, d1, ...) layout in place and, through a transpose in a
 * small buffer, for rows with few classes. */
#ifndef CE_CB
#define CE_CB 64
#define CE_COLS_MAXC 160
#endif

/* Phase A of ce_cols for one class row c over J samples. */
FL_INLINE void SFX(ce_cols_a)(const T *FL_RESTRICT zc, const T *FL_RESTRICT m,
                              T *FL_RESTRICT dc, double *FL_RESTRICT S,
                              double *FL_RESTRICT Sx, double *FL_RESTRICT Q,
                              double *FL_RESTRICT R, double *FL_RESTRICT Sn,
                              double *FL_RESTRICT cnt, const fl_idx *FL_RESTRICT yj,
                              fl_idx c, fl_idx J, const T *FL_RESTRICT tc, T cwc,
                              T eC, T onem_e, const int WMODE, const int SN)
{
    _Pragma("omp simd")
    for (fl_idx j = 0; j < J; j++) {
        int top = zc[j] == m[j];
        T dd = top ? (T)0 : zc[j] - m[j];
        T e = VM(exp)(dd);
        S[j] += (double)e;
        Sx[j] += yj[j] == c ? 0.0 : (double)e;
        if (SN) {
            Sn[j] += top ? 0.0 : (double)e;
            cnt[j] += top ? 1.0 : 0.0;
        }
        if (WMODE) {
            T w = WMODE == 1 ? eC * cwc : cwc * (onem_e * tc[j] + eC);
            Q[j] += w == 0 ? 0.0 : (double)(w * -dd);
            R[j] += (double)w;
        }
        dc[j] = e;
    }
}

static double SFX(ce_cols)(const SFX(ce_ctx) *x, fl_idx J,
                                     const T *z, fl_idx ldz, const T *tp, fl_idx ldt,
                                     const int64_t *yv, const T *sw, T *d, fl_idx ldd,
                                     T *val)
{
    const fl_cls_args *a = x->a;
    const fl_idx C = x->C;
    const T *cw = (const T *)a->cw;
    const int wmode = x->wmode, hess = x->hess;
    const T eC = x->eC, onem_e = x->onem_e, scale = (T)a->scale;
    T m[CE_CB], fj[CE_CB], kAj[CE_CB], kj[CE_CB];
    double S[CE_CB], Sx[CE_CB], Q[CE_CB], R[CE_CB], Sn[CE_CB], cnt[CE_CB];
    T sm1f[CE_CB];
    fl_idx yj[CE_CB];
    int ign[CE_CB];
    for (fl_idx j = 0; j < J; j++) {
        m[j] = -(T)INFINITY;
        S[j] = Sx[j] = Q[j] = R[j] = Sn[j] = cnt[j] = 0.0;
        ign[j] = yv && a->has_ignore && yv[j] == a->ignore_index;
        yj[j] = yv && !ign[j] ? (fl_idx)yv[j] : -1;
    }
    for (fl_idx c = 0; c < C; c++) {
        const T *zc = z + c * ldz;
        _Pragma("omp simd")
        for (fl_idx j = 0; j < J; j++) m[j] = zc[j] > m[j] ? zc[j] : m[j];
    }
    T scratch[CE_CB];          /* exponentials nobody keeps (value only) */
    for (fl_idx c = 0; c < C; c++) {
        const T *FL_RESTRICT zc = z + c * ldz;
        const T *FL_RESTRICT tc = tp ? tp + c * ldt : NULL;
        T *FL_RESTRICT dc = d ? d + c * ldd : scratch;
        const T cwc = cw ? cw[c] : (T)1;
#define CE_COLS_A(W, SN) SFX(ce_cols_a)(zc, m, dc, S, Sx, Q, R, Sn, cnt, yj, c, J, tc, cwc, eC, onem_e, W, SN)
        /* smoothing / probability targets: S - 1 too (see ce_a) */
        if (wmode == 0) { if (hess) CE_COLS_A(0, 1); else CE_COLS_A(0, 0); }
        else if (wmode == 1) CE_COLS_A(1, 1);
        else CE_COLS_A(2, 1);
#undef CE_COLS_A
    }
    /* the transcendental per-sample terms, vectorized across samples */
    double py[CE_CB], zyv[CE_CB], Md[CE_CB], cwyv[CE_CB];
    double lossv[CE_CB];
    T sv[CE_CB];
    /* gathers and per-sample choices (sample weight 0 for ignored samples) */
    for (fl_idx j = 0; j < J; j++) {
        Md[j] = (double)m[j];
        fl_idx y = yj[j];
        zyv[j] = y >= 0 ? (double)z[y * ldz + j] : Md[j];
        cwyv[j] = y >= 0 ? (cw ? (double)cw[y] : 1.0) : 0.0;
        sv[j] = ign[j] ? (T)0 : (sw ? sw[j] : (T)1);
        if (m[j] == -(T)INFINITY) S[j] = Sx[j] = Sn[j] = NAN;   /* all -inf: NaN */
    }
    double lSv[CE_CB];
    if (hess || wmode) {
        _Pragma("omp simd")
        for (fl_idx j = 0; j < J; j++) lSv[j] = fl_log1p(Sn[j] + (cnt[j] - 1.0));
    } else {
        _Pragma("omp simd")
        for (fl_idx j = 0; j < J; j++) lSv[j] = fl_log(S[j]);
    }
    /* everything per sample, vectorized across samples */
    const double omE = (double)onem_e, dscale = (double)scale;
    double acc = 0.0;
    _Pragma("omp simd")
    for (fl_idx j = 0; j < J; j++) {
        double lS = lSv[j];
        py[j] = fl_exp(zyv[j] == Md[j] ? 0.0 : zyv[j] - Md[j]) / S[j];
        int lab = yj[j] >= 0;
        double loss = Q[j] + (R[j] == 0 ? 0.0 : R[j] * lS);
        /* lse - z_y; log1p form when y is the maximum */
        double main = zyv[j] == Md[j] ? fl_log1p(Sx[j]) : (Md[j] - zyv[j]) + lS;
        loss += lab ? omE * cwyv[j] * main : 0.0;
        double sj = (double)sv[j];
        /* weight 0 times a NaN loss is NaN, as everywhere; ignored: 0 */
        loss = ign[j] ? 0.0 : sj * loss;
        lossv[j] = loss;
        double k = sj * dscale;
        double A = R[j] + (lab ? omE * cwyv[j] : 0.0);
        fj[j] = (T)(1.0 / S[j]);
        sm1f[j] = (T)((Sn[j] + (cnt[j] - 1.0)) / S[j]);   /* (S - 1) / S, Hessians */
        kAj[j] = (T)(k * A);
        kj[j] = (T)k;
    }
    for (fl_idx j = 0; j < J; j++) {
        if (ign[j] || !isinf(R[j])) continue;
        /* infinite target weights: the soft part class by class */
        double main = zyv[j] == Md[j] ? fl_log1p(Sx[j]) : (Md[j] - zyv[j]) + lSv[j];
        double loss = SFX(ce_soft_direct)(x, z + j, ldz, tp ? tp + j : NULL, ldt,
                                              Md[j], lSv[j])
                      + (yj[j] >= 0 ? omE * cwyv[j] * main : 0.0);
        loss *= (double)sv[j];
        lossv[j] = loss;
    }
    for (fl_idx j = 0; j < J; j++) acc += lossv[j];
    if (val)
        for (fl_idx j = 0; j < J; j++) val[j] = (T)lossv[j];
    if (!d) return acc;
    for (fl_idx c = 0; c < C; c++) {
        T *FL_RESTRICT dc = d + c * ldd;
        const T *FL_RESTRICT tc = tp ? tp + c * ldt : NULL;
        const T cwc = cw ? cw[c] : (T)1;
        if (hess) {
            _Pragma("omp simd")
            for (fl_idx j = 0; j < J; j++) {
                T p = dc[j] * fj[j];
                T q = dc[j] == (T)1 ? sm1f[j] : (T)1 - p;   /* see ce_phase_c */
                dc[j] = kAj[j] * p * q;
            }
        } else if (wmode == 0) {
            _Pragma("omp simd")
            for (fl_idx j = 0; j < J; j++) dc[j] = kAj[j] * (dc[j] * fj[j]);
        } else {
            _Pragma("omp simd")
            for (fl_idx j = 0; j < J; j++) {
                T w = wmode == 1 ? eC * cwc : cwc * (onem_e * tc[j] + eC);
                /* at the maximum: see ce_phase_c */
                dc[j] = dc[j] == (T)1 && kAj[j] - kAj[j] == 0
                            ? (kAj[j] - kj[j] * w) - kAj[j] * sm1f[j]
                            : kAj[j] * (dc[j] * fj[j]) - kj[j] * w;
            }
        }
    }
    for (fl_idx j = 0; j < J; j++) {
        if (ign[j]) {
            for (fl_idx c = 0; c < C; c++) d[c * ldd + j] = (T)0;
            continue;
        }
        fl_idx y = yj[j];
        if (y < 0) continue;
        /* the target entry without cancellation: p_y - 1 = -Sx / S */
        double cwy = cw ? (double)cw[y] : 1.0, f = 1.0 / S[j];
        double k = (double)kj[j];
        if (hess)
            d[y * ldd + j] = (T)((double)kAj[j] * py[j] * (Sx[j] * f));
        else
            d[y * ldd + j] = (T)(k * ((double)onem_e * cwy * (-Sx[j] * f) + R[j] * py[j]
                                      - (wmode == 1 ? (double)eC * cwy : 0.0)));
    }
    return acc;
}

/* Row block (J rows of C) <-> column block (C rows of CE_CB), vectorized
 * along the rows with gathers / scatters where the ISA has them. */
static void SFX(transpose_in)(const T *FL_RESTRICT src, T *FL_RESTRICT dst,
                                        fl_idx J, fl_idx C)
{
    for (fl_idx c = 0; c < C; c++) {
        _Pragma("omp simd")
        for (fl_idx jj = 0; jj < J; jj++) dst[c * CE_CB + jj] = src[jj * C + c];
    }
}

static void SFX(transpose_out)(const T *FL_RESTRICT src, T *FL_RESTRICT dst,
                                         fl_idx J, fl_idx C)
{
    for (fl_idx c = 0; c < C; c++) {
        _Pragma("omp simd")
        for (fl_idx jj = 0; jj < J; jj++) dst[jj * C + c] = src[c * CE_CB + jj];
    }
}

/* Samples [i0, i1) of cross_entropy through ce_cols.  buf: 3 * C * CE_CB
 * elements for the row layout's transposes (unused for inner > 1). */
static double SFX(ce_cols_range)(const SFX(ce_ctx) *x, fl_idx i0, fl_idx i1, T *buf)
{
    const fl_cls_args *a = x->a;
    const fl_idx C = a->C, inner = a->inner;
    const T *Z = (const T *)a->z, *TP = (const T *)a->tp, *SW = (const T *)a->sw;
    T *D = a->grad ? (T *)a->grad : (T *)a->hess, *V = (T *)a->val;
    double acc = 0.0;
    for (fl_idx i = i0; i < i1;) {
        fl_idx o = i / inner, j = i - o * inner;
        fl_idx J = i1 - i;
        if (J > CE_CB) J = CE_CB;
        if (inner != 1 && J > inner - j) J = inner - j;
        const int64_t *yv = a->y ? a->y + i : NULL;
        const T *sw = SW ? SW + i : NULL;
        T *val = V ? V + i : NULL;
        double part;
        if (inner == 1 && a->y && x->wmode == 0 && !x->hess &&
            CE_FAST_COLS(a, i, J, buf, &part)) {
            acc += part;
            i += J;
            continue;
        }
        if (inner != 1) {
            fl_idx base = o * C * inner + j;
            acc += SFX(ce_cols)(x, J, Z + base, inner, TP ? TP + base : NULL, inner,
                                yv, sw, D ? D + base : NULL, inner, val);
        } else {
            T *zT = buf, *tT = buf + C * CE_CB, *dT = buf + 2 * C * CE_CB;
            const T *zr = Z + i * C, *tr = TP ? TP + i * C : NULL;
            SFX(transpose_in)(zr, zT, J, C);
            if (tr) SFX(transpose_in)(tr, tT, J, C);
            acc += SFX(ce_cols)(x, J, zT, CE_CB, tr ? tT : NULL, CE_CB, yv, sw,
                                D ? dT : NULL, CE_CB, val);
            if (D) SFX(transpose_out)(dT, D + i * C, J, C);
        }
        i += J;
    }
    return acc;
}

/* nll with labels on rows (inner == 1): the derivative rows are zero but
 * for the target entry, so they are cleared in one sweep and the targets
 * set; no per-sample call. */
static double SFX(nll_rows)(const fl_cls_args *a, fl_idx i0, fl_idx i1)
{
    const fl_idx C = a->C;
    const T *Z = (const T *)a->z, *SW = (const T *)a->sw, *cw = (const T *)a->cw;
    T *G = (T *)a->grad, *V = (T *)a->val;
    T *D = G ? G : (T *)a->hess;
    const T scale = (T)a->scale;
    /* streaming stores only when the whole derivative is far larger than
     * a core's cache (else the next reader finds it there) */
    const int stream = (size_t)(a->outer * C) * sizeof(T) >= FL_STREAM_BYTES;
    if (D) ZERO_FILL(D + i0 * C, sizeof(T) * (size_t)((i1 - i0) * C), stream);
    double acc = 0.0;
    for (fl_idx i = i0; i < i1; i++) {
        int64_t y = a->y[i];
        double loss = 0.0;
        if (!(a->has_ignore && y == a->ignore_index)) {
            T s = SW ? SW[i] : (T)1;
            double cwy = cw ? (double)cw[y] : 1.0;
            loss = cwy == 0 ? 0.0 : -cwy * (double)Z[i * C + y];
            loss = (double)s * loss;
            const T k = s * scale;
            if (D && k - k != 0)           /* NaN / inf weight: s * 0 is NaN */
                for (fl_idx c = 0; c < C; c++) D[i * C + c] = k - k;
            if (G) G[i * C + y] = (T)(-(double)k * cwy);
        }
        if (V) V[i] = (T)loss;
        acc += loss;
    }
    return acc;
}

/* Samples [i0, i1): the ordinary path. */
static double SFX(cls_range)(int kernel, const SFX(ce_ctx) *x, fl_idx i0, fl_idx i1,
                             T *zb, T *tb, T *gb)
{
    const fl_cls_args *a = x->a;
    const fl_idx C = a->C, inner = a->inner;
    const T *Z = (const T *)a->z, *TP = (const T *)a->tp, *SW = (const T *)a->sw;
    T *G = (T *)a->grad, *H = (T *)a->hess, *V = (T *)a->val;
    T *D = G ? G : H;                    /* the derivative being written */
    const T scale = (T)a->scale;
    if (kernel == FL_CLS_CE && (inner != 1 || C <= CE_COLS_MAXC))
        return SFX(ce_cols_range)(x, i0, i1, zb);
    if (kernel == FL_CLS_NLL && a->y && inner == 1)
        return SFX(nll_rows)(a, i0, i1);
    double fast;
    if (kernel == FL_CLS_MARGIN && MARGIN_FAST(a, i0, i1, &fast))
        return fast;
    double acc = 0.0;
    for (fl_idx i = i0; i < i1; i++) {
        fl_idx o = i / inner, j = i - o * inner;
        fl_idx base = o * C * inner + j;
        fl_idx y = -1;
        int ignored = 0;
        if (a->y) {
            int64_t yy = a->y[i];
            ignored = a->has_ignore && yy == a->ignore_index;
            y = (fl_idx)yy;
        }
        T s = SW ? SW[i] : (T)1;
        double loss = 0.0;
        if (ignored) {
            if (D) for (fl_idx c = 0; c < C; c++) D[base + c * inner] = (T)0;
        } else {
            const T *z = Z + base, *tp = TP ? TP + base : NULL;
            T *d = D ? D + base : NULL;
            if (inner != 1) {                 /* gather the strided sample */
                for (fl_idx c = 0; c < C; c++) zb[c] = z[c * inner];
                z = zb;
                if (tp) { for (fl_idx c = 0; c < C; c++) tb[c] = tp[c * inner]; tp = tb; }
                if (d) d = gb;
            }
            T k = s * scale;
            T *g = G ? d : NULL, *h = H ? d : NULL;
            if (kernel == FL_CLS_CE)       loss = SFX(ce_sample)(x, z, y, tp, k, g, h);
            else if (kernel == FL_CLS_NLL) loss = SFX(nll_sample)(a, z, y, tp, k, g, h, C);
            else                           loss = SFX(margin_sample)(a, z, y, k, g, h, C);
            if (d && inner != 1)
                for (fl_idx c = 0; c < C; c++) D[base + c * inner] = gb[c];
            loss = (double)s * loss;     /* 0 * NaN is NaN, as everywhere */
        }
        if (V) V[i] = (T)loss;
        acc += loss;
    }
    return acc;
}

/* A few very long rows (inner == 1): cut every row into segments so that
 * all threads share each row.  Deterministic: segments merge in order.
 * Static schedules: a segment's exponentials are scaled by the thread that
 * stored them, while they are still in its cache. */
static double SFX(ce_split)(const SFX(ce_ctx) *x, int nt)
{
    const fl_cls_args *a = x->a;
    const fl_idx C = a->C, rows = a->outer;
    const fl_idx seg = FL_CE_SEG;     /* as ce_sample: the same rounding */
    const fl_idx nps = (C + seg - 1) / seg, nsegs = rows * nps;
    SFX(seg) *st = (SFX(seg) *)malloc(sizeof(SFX(seg)) * (size_t)nsegs);
    SFX(rowsum) *rs = (SFX(rowsum) *)malloc(sizeof(SFX(rowsum)) * (size_t)rows);
    double *loss = (double *)malloc(sizeof(double) * (size_t)rows);
    if (!st || !rs || !loss) {
        free(st); free(rs); free(loss);
        return SFX(cls_range)(FL_CLS_CE, x, 0, rows, NULL, NULL, NULL);
    }
    const T *Z = (const T *)a->z, *TP = (const T *)a->tp, *SW = (const T *)a->sw;
    const T *CW = (const T *)a->cw;
    T *D = a->grad ? (T *)a->grad : (T *)a->hess;
    const T scale = (T)a->scale;
    (void)nt;
#ifdef _OPENMP
#pragma omp parallel num_threads(nt)
#endif
    {
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (fl_idx q = 0; q < nsegs; q++) {
            fl_idx r = q / nps, c0 = (q - r * nps) * seg;
            fl_idx n = C - c0 < seg ? C - c0 : seg;
            fl_idx y = a->y ? (fl_idx)a->y[r] : -1;
            int ignored = a->y && a->has_ignore && a->y[r] == a->ignore_index;
            if (ignored) {
                if (D) for (fl_idx c = 0; c < n; c++) D[r * C + c0 + c] = (T)0;
                continue;
            }
            SFX(ce_a)(x, Z + r * C + c0, n, y >= 0 ? y - c0 : -1, CW ? CW + c0 : NULL,
                      TP ? TP + r * C + c0 : NULL, D ? D + r * C + c0 : NULL, &st[q]);
        }
#ifdef _OPENMP
#pragma omp single
#endif
        for (fl_idx r = 0; r < rows; r++) {
            int ignored = a->y && a->has_ignore && a->y[r] == a->ignore_index;
            if (ignored) { loss[r] = 0.0; continue; }
            rs[r] = SFX(ce_merge)(st + r * nps, nps, x->hess || x->wmode);
            fl_idx y = a->y ? (fl_idx)a->y[r] : -1;
            double cwy = y >= 0 ? (CW ? (double)CW[y] : 1.0) : 0.0;
            double zy = y >= 0 ? (double)Z[r * C + y] : 0.0;
            loss[r] = SFX(ce_loss)(x, &rs[r], y >= 0, zy, cwy, Z + r * C,
                                   TP ? TP + r * C : NULL);
        }
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
        for (fl_idx q = 0; q < nsegs; q++) {
            fl_idx r = q / nps, c0 = (q - r * nps) * seg;
            fl_idx n = C - c0 < seg ? C - c0 : seg;
            int ignored = a->y && a->has_ignore && a->y[r] == a->ignore_index;
            if (ignored || !D) continue;
            fl_idx y = a->y ? (fl_idx)a->y[r] : -1;
            double cwy = y >= 0 ? (CW ? (double)CW[y] : 1.0) : 0.0;
            T s = SW ? SW[r] : (T)1, k = s * scale;
            double A = rs[r].R + (y >= 0 ? (double)x->onem_e * cwy : 0.0);
            int top = st[q].m == (T)rs[r].M;
            double f = 1.0 / rs[r].S;
            double fq = nps == 1 ? f : fl_exp(top ? 0.0 : (double)st[q].m - rs[r].M) * f;
            SFX(ce_c)(x, D + r * C + c0, n, CW ? CW + c0 : NULL,
                      TP ? TP + r * C + c0 : NULL, (T)fq, (T)((double)k * A), k,
                      top ? (T)1 : (T)2, (T)(rs[r].Sm1 * f));
        }
    }
    /* target entries without cancellation, and the weighted sum */
    double acc = 0.0;
    for (fl_idx r = 0; r < rows; r++) {
        int ignored = a->y && a->has_ignore && a->y[r] == a->ignore_index;
        T s = SW ? SW[r] : (T)1;
        double l = ignored ? 0.0 : (double)s * loss[r];
        if (a->val) ((T *)a->val)[r] = (T)l;
        acc += l;
        fl_idx y = a->y ? (fl_idx)a->y[r] : -1;
        if (ignored || y < 0 || !D) continue;
        double cwy = CW ? (double)CW[y] : 1.0, f = 1.0 / rs[r].S;
        double zy = (double)Z[r * C + y];
        double py = fl_exp(zy == rs[r].M ? 0.0 : zy - rs[r].M) * f;
        double k = (double)(T)(s * scale);      /* as ce_sample: same bits */
        double A = rs[r].R + (double)x->onem_e * cwy;
        if (a->grad)
            D[r * C + y] = (T)(k * ((double)x->onem_e * cwy * (-rs[r].Sx * f)
                                    + rs[r].R * py - (double)x->eC * cwy));
        else
            D[r * C + y] = (T)(k * A * py * (rs[r].Sx * f));
    }
    free(st); free(rs); free(loss);
    return acc;
}

/* A parallel call's chunks (fl_run_chunks): samples [c per, (c+1) per),
 * with the calling thread's gather buffers. */
typedef struct {
    int kernel;
    const SFX(ce_ctx) *x;
    fl_idx per, nsamp, C;
    T *bufs;
    fl_idx bsz;
} SFX(cls_job);

static double SFX(cls_chunk)(void *ctx, fl_idx c, int tid)
{
    const SFX(cls_job) *j = (const SFX(cls_job) *)ctx;
    T *zb = j->bufs ? j->bufs + (fl_idx)tid * j->bsz : NULL;
    T *tb = zb ? zb + j->C : NULL, *gb = zb ? zb + 2 * j->C : NULL;
    fl_idx i0 = c * j->per, i1 = i0 + j->per < j->nsamp ? i0 + j->per : j->nsamp;
    return SFX(cls_range)(j->kernel, j->x, i0, i1, zb, tb, gb);
}

static double SFX(cls_run)(int kernel, const fl_cls_args *a, int nthreads, int *status)
{
    const fl_idx nsamp = a->outer * a->inner, C = a->C;
    *status = 0;
    if (nsamp <= 0) return 0.0;
    SFX(ce_ctx) x;
    x.a = a;
    x.C = C;
    double e = kernel == FL_CLS_CE ? a->smoothing : 0.0;
    x.eC = (T)(C > 0 ? e / (double)C : 0.0);
    x.onem_e = (T)(1.0 - e);
    x.wmode = a->tp ? 2 : (e > 0 ? 1 : 0);
    x.cw = a->cw != NULL;
    x.hess = a->hess != NULL;
    x.grad = a->grad != NULL;
    fl_idx work = nsamp * (C > 0 ? C : 1);
    int adaptive;
    nthreads = fl_unpack_threads(nthreads, &adaptive);
    int nt = fl_threads_for(nthreads, work, kernel == FL_CLS_CE ? FL_MIN_PER_THREAD_CLASS
                                                                 : FL_MIN_PER_THREAD_LIGHT);
    if (adaptive && nt > 1 && fl_guard_solo()) nt = 1;
    /* rows too few to share out evenly: cut them into segments instead
     * (measured: the split path's merges and barriers cost more than an
     * even share of whole rows) */
    if (kernel == FL_CLS_CE && a->inner == 1 && nt > 1 && C >= 16384 &&
        (nsamp < (fl_idx)nt || (nsamp < 2 * (fl_idx)nt && nsamp % nt != 0)))
        return SFX(ce_split)(&x, nt);

    /* samples per chunk: about FL_CHUNK(_HEAVY) elements of work */
    fl_idx per = (kernel == FL_CLS_CE ? FL_CHUNK_HEAVY : FL_CHUNK) / (C > 0 ? C : 1);
    if (per < 1) per = 1;
    fl_idx nchunks = (nsamp + per - 1) / per;
    if (nchunks < (fl_idx)nt) nt = (int)nchunks;
    double stack_part[256];
    double *part = nchunks <= 256 ? stack_part : (double *)malloc(sizeof(double) * (size_t)nchunks);
    /* gather buffers (logits, targets, derivative) per thread */
    fl_idx bsz = kernel == FL_CLS_CE
        ? (a->inner == 1 && C <= CE_COLS_MAXC ? 3 * (C > 0 ? C : 1) * CE_CB : 0)
        : (a->inner != 1 ? 3 * (C > 0 ? C : 1) : 0);
    T *bufs = bsz ? (T *)malloc(sizeof(T) * (size_t)(bsz * nt)) : NULL;
    if (!part || (bsz && !bufs)) {
        if (part != stack_part) free(part);
        free(bufs);
        *status = -1;                  /* out of memory; nothing computed */
        return 0.0;
    }
    SFX(cls_job) job = { kernel, &x, per, nsamp, C, bufs, bsz };
    fl_run_chunks(SFX(cls_chunk), &job, nchunks, nt, adaptive, part);
    double acc = 0.0;
    for (fl_idx c = 0; c < nchunks; c++) acc += part[c];
    if (part != stack_part) free(part);
    free(bufs);
    return acc;
}
