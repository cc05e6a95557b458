/* The row driver and kernels for one floating type; included by rows.c
 * once with T = double and once with T = float.
 *
 * Layers, from the inside out:
 *   leaf loops       one pass over a sample's rows: the sums (dot products,
 *                    squared norms) or the gradient rows; vectorized
 *                    (omp simd) and compiled per ISA level (isa.h)
 *   SFX(<loss>_range) one loss over samples [s, e): per sample the sums,
 *                    the loss, then the gradient rows asked for; returns the
 *                    range's sum of w * l (double, in sample order)
 *   SFX(row_run)     the generic driver: chunks, threads, partial sums.
 * A later row loss is a range function (using or adding leaf loops) and a
 * row of FL_ROW_LOSSES. */

/* ------------------------------------------------------------ leaf loops */

static void SFX(row_fill)(T *FL_RESTRICT g, fl_idx D, T v)
{
    for (fl_idx j = 0; j < D; j++) g[j] = v;
}

/* <x1, x2>, |x1|^2, |x2|^2 in one pass */
static void SFX(cos_sums)(const T *FL_RESTRICT x1, const T *FL_RESTRICT x2,
                                    fl_idx D, double *FL_RESTRICT out)
{
    double d12 = 0.0, s11 = 0.0, s22 = 0.0;
#pragma omp simd reduction(+:d12, s11, s22)
    for (fl_idx j = 0; j < D; j++) {
        double a = (double)x1[j], b = (double)x2[j];
        d12 += a * b;
        s11 += a * a;
        s22 += b * b;
    }
    out[0] = d12; out[1] = s11; out[2] = s22;
}

/* g1 = A x2 + B1 x1, g2 = A x1 + B2 x2 */
static void SFX(cos_grad2)(const T *FL_RESTRICT x1, const T *FL_RESTRICT x2,
                                     T *FL_RESTRICT g1, T *FL_RESTRICT g2, fl_idx D,
                                     double A, double B1, double B2)
{
#pragma omp simd
    for (fl_idx j = 0; j < D; j++) {
        double a = (double)x1[j], b = (double)x2[j];
        g1[j] = (T)(A * b + B1 * a);
        g2[j] = (T)(A * a + B2 * b);
    }
}

/* g = A xo + B xs (one of the two gradient rows) */
static void SFX(cos_grad1)(const T *FL_RESTRICT xs, const T *FL_RESTRICT xo,
                                     T *FL_RESTRICT g, fl_idx D, double A, double B)
{
#pragma omp simd
    for (fl_idx j = 0; j < D; j++)
        g[j] = (T)(A * (double)xo[j] + B * (double)xs[j]);
}

/* triplet, p = 2.  The differences u = a - p + eps (v = a - n + eps,
 * w = p - n + eps) and the gradient rows are computed in T (float32 as
 * torch does: half the conversions, twice the lanes), the squared norms
 * are accumulated in double. */

/* ||a - p + eps||^2 and ||a - n + eps||^2 in one pass */
static void SFX(tri_sq2)(const T *FL_RESTRICT xa, const T *FL_RESTRICT xp,
                                   const T *FL_RESTRICT xn, fl_idx D, double eps,
                                   double *FL_RESTRICT out)
{
    const T e = (T)eps;
    double suu = 0.0, svv = 0.0;
#pragma omp simd reduction(+:suu, svv)
    for (fl_idx j = 0; j < D; j++) {
        T a = xa[j];
        double u = (double)((a - xp[j]) + e), v = (double)((a - xn[j]) + e);
        suu += u * u;
        svv += v * v;
    }
    out[0] = suu; out[1] = svv;
}

/* the same and ||p - n + eps||^2 (swap), still one pass */
static void SFX(tri_sq3)(const T *FL_RESTRICT xa, const T *FL_RESTRICT xp,
                                   const T *FL_RESTRICT xn, fl_idx D, double eps,
                                   double *FL_RESTRICT out)
{
    const T e = (T)eps;
    double suu = 0.0, svv = 0.0, sww = 0.0;
#pragma omp simd reduction(+:suu, svv, sww)
    for (fl_idx j = 0; j < D; j++) {
        T a = xa[j], p = xp[j], n = xn[j];
        double u = (double)((a - p) + e), v = (double)((a - n) + e), w = (double)((p - n) + e);
        suu += u * u;
        svv += v * v;
        sww += w * w;
    }
    out[0] = suu; out[1] = svv; out[2] = sww;
}

/* all three gradient rows, no swap term:
 * ga = cu u + cv v, gp = -cu u, gn = -cv v */
static void SFX(tri_grad3)(const T *FL_RESTRICT xa, const T *FL_RESTRICT xp,
                                     const T *FL_RESTRICT xn, T *FL_RESTRICT ga,
                                     T *FL_RESTRICT gp, T *FL_RESTRICT gn, fl_idx D,
                                     double eps, double cu, double cv)
{
    const T e = (T)eps, ku = (T)cu, kv = (T)cv;
#pragma omp simd
    for (fl_idx j = 0; j < D; j++) {
        T a = xa[j];
        T u = ku * ((a - xp[j]) + e), v = kv * ((a - xn[j]) + e);
        ga[j] = u + v;
        gp[j] = -u;
        gn[j] = -v;
    }
}

/* the same with the swap term w = p - n + eps:
 * ga = cu u + cv v, gp = -cu u + cw w, gn = -cv v - cw w */
static void SFX(tri_grad3s)(const T *FL_RESTRICT xa, const T *FL_RESTRICT xp,
                                      const T *FL_RESTRICT xn, T *FL_RESTRICT ga,
                                      T *FL_RESTRICT gp, T *FL_RESTRICT gn, fl_idx D,
                                      double eps, double cu, double cv, double cw)
{
    const T e = (T)eps, ku = (T)cu, kv = (T)cv, kw = (T)cw;
#pragma omp simd
    for (fl_idx j = 0; j < D; j++) {
        T a = xa[j], p = xp[j], n = xn[j];
        T u = ku * ((a - p) + e), v = kv * ((a - n) + e), w = kw * ((p - n) + e);
        ga[j] = u + v;
        gp[j] = w - u;
        gn[j] = -v - w;
    }
}

/* one gradient row (a subset was asked for): g = ku u + kv v + kw w */
static void SFX(tri_grad1)(const T *FL_RESTRICT xa, const T *FL_RESTRICT xp,
                                     const T *FL_RESTRICT xn, T *FL_RESTRICT g, fl_idx D,
                                     double eps, double cu, double cv, double cw)
{
    const T e = (T)eps, ku = (T)cu, kv = (T)cv, kw = (T)cw;
#pragma omp simd
    for (fl_idx j = 0; j < D; j++) {
        T a = xa[j], p = xp[j], n = xn[j];
        g[j] = (ku * ((a - p) + e) + kv * ((a - n) + e)) + kw * ((p - n) + e);
    }
}

/* ------------------------------------------------------ scalar slow paths */

/* d = ||x - y + eps||_p for any p > 0 or inf, scaled by m = max |u_j| so
 * that no power overflows or underflows; want_cnt (p = inf): how many
 * entries attain the max (the gradient is shared among them, as torch). */
static void SFX(dist_gen)(const T *x, const T *y, fl_idx D, double eps, double p,
                          int want_cnt, fl_dist *r)
{
    double m = 0.0;
    fl_idx ninf = 0;
    int nan = 0;
    for (fl_idx j = 0; j < D; j++) {
        double au = fabs(((double)x[j] - (double)y[j]) + eps);
        if (au != au) nan = 1;
        else if (au == INFINITY) ninf++;
        else if (au > m) m = au;
    }
    r->cnt = 1.0;
    if (nan) { r->d = NAN; r->kind = DK_NAN; return; }
    if (ninf) { r->d = INFINITY; r->kind = ninf == 1 ? DK_INF1 : DK_INFN; return; }
    if (m == 0.0) { r->d = 0.0; r->kind = DK_ZERO; return; }
    r->kind = DK_NORMAL;
    if (isinf(p)) {
        r->d = m;
        if (want_cnt) {
            fl_idx c = 0;
            for (fl_idx j = 0; j < D; j++)
                c += fabs(((double)x[j] - (double)y[j]) + eps) == m;
            r->cnt = (double)c;
        }
        return;
    }
    double s = 0.0;
    if (p == 1.0) {
        for (fl_idx j = 0; j < D; j++) s += fabs(((double)x[j] - (double)y[j]) + eps) / m;
        r->d = m * s;
    } else if (p == 2.0) {
        for (fl_idx j = 0; j < D; j++) {
            double t = fabs(((double)x[j] - (double)y[j]) + eps) / m;
            s += t * t;
        }
        r->d = m * sqrt(s);
    } else {
        for (fl_idx j = 0; j < D; j++)
            s += pow(fabs(((double)x[j] - (double)y[j]) + eps) / m, p);
        r->d = m * pow(s, 1.0 / p);
    }
}

/* dd/du_j for one entry u_j of u = x - y + eps (see DK_* in rows.c):
 * sign(u) (|u| / d)^(p - 1), 0 where u_j == 0 (torch: sgn(0) = 0, and for
 * p < 1 its masked 0); p = inf: sign(u) / cnt on the entries attaining d. */
static inline double SFX(dist_dgrad)(double u, const fl_dist *r, double p)
{
    switch (r->kind) {
    case DK_NORMAL:
        if (p == 2.0) return u / r->d;
        if (u == 0.0) return 0.0;
        if (isinf(p)) return fabs(u) == r->d ? copysign(1.0 / r->cnt, u) : 0.0;
        if (p == 1.0) return copysign(1.0, u);
        return copysign(pow(fabs(u) / r->d, p - 1.0), u);
    case DK_ZERO: return 0.0;
    case DK_INF1: return isinf(u) ? copysign(1.0, u) : 0.0;
    default: return NAN;
    }
}

static void SFX(row_scale)(const T *x, fl_idx D, fl_rowscale *r)
{
    double m = 0.0;
    fl_idx ninf = 0;
    int nan = 0;
    for (fl_idx j = 0; j < D; j++) {
        double v = fabs((double)x[j]);
        if (v != v) nan = 1;
        else if (v == INFINITY) ninf++;
        else if (v > m) m = v;
    }
    r->bad = nan || ninf > 1;
    r->inf = ninf == 1;
    r->m = m > 1.0 ? m : 1.0;
}

static inline double SFX(row_u)(T x, const fl_rowscale *r)
{
    if (r->inf) return isinf(x) ? copysign(1.0, (double)x) : 0.0;
    return (double)x / r->m;
}

/* ------------------------------------------------------- cosine_embedding */

/* Per sample: cos = <x1,x2> / sqrt((|x1|^2 + 1e-12)(|x2|^2 + 1e-12));
 * y == 1: l = 1 - cos; y == -1: l = max(0, cos - margin) (gradient 0 at the
 * kink); any other label (NaN) gives NaN value and gradients.
 * Squared norms above 1e150 (float64 rows beyond ~1e75 in norm, which
 * would overflow the product) and infinite or NaN entries take the scaled
 * slow path: finite rows exactly; a row with one infinite entry is the
 * limit (its direction; its own gradient 0); a NaN entry or several
 * infinite entries in a row (no limit) give NaN. */
static double SFX(cosine_embedding_range)(const fl_row_args *a, int mode, fl_idx s, fl_idx e)
{
    const fl_idx D = a->D;
    const T *X1 = (const T *)a->x[0], *X2 = (const T *)a->x[1];
    const T *Y = (const T *)a->y, *W = (const T *)a->sw;
    T *V = (mode & FL_VAL) ? (T *)a->val : NULL;
    T *G1 = (mode & FL_GRAD) ? (T *)a->grad[0] : NULL;
    T *G2 = (mode & FL_GRAD) ? (T *)a->grad[1] : NULL;
    const double margin = a->prm[0], scale = a->scale;
    double acc = 0.0;
    for (fl_idx i = s; i < e; i++) {
        const T *x1 = X1 + i * a->sx[0], *x2 = X2 + i * a->sx[1];
        T *g1 = G1 ? G1 + i * D : NULL, *g2 = G2 ? G2 + i * D : NULL;
        double sm[3], cosv, s1 = 0.0, s2 = 0.0, denom = 0.0;
        fl_rowscale r1 = { 1.0, 0, 0 }, r2 = { 1.0, 0, 0 };
        int slow;
        SFX(cos_sums)(x1, x2, D, sm);
        slow = !(sm[1] <= 1e150 && sm[2] <= 1e150 && fabs(sm[0]) <= 1e150);
        if (!slow) {
            s1 = sm[1] + 1e-12;
            s2 = sm[2] + 1e-12;
            denom = sqrt(s1 * s2);
            cosv = sm[0] / denom;
        } else {
            SFX(row_scale)(x1, D, &r1);
            SFX(row_scale)(x2, D, &r2);
            if (r1.bad || r2.bad) {
                cosv = NAN;
            } else {
                double q1 = 0.0, q2 = 0.0, dd = 0.0;
                for (fl_idx j = 0; j < D; j++) {
                    double u1 = SFX(row_u)(x1[j], &r1), u2 = SFX(row_u)(x2[j], &r2);
                    q1 += u1 * u1; q2 += u2 * u2; dd += u1 * u2;
                }
                /* scaled s1 / m1^2, s2 / m2^2 */
                s1 = q1 + (r1.inf ? 0.0 : 1e-12 / (r1.m * r1.m));
                s2 = q2 + (r2.inf ? 0.0 : 1e-12 / (r2.m * r2.m));
                denom = sqrt(s1 * s2);
                cosv = dd / denom;
            }
        }
        const double yi = Y ? (double)Y[i * a->sy] : 1.0;
        double l, dl;
        if (yi == 1.0) {
            l = 1.0 - cosv; dl = -1.0;
        } else if (yi == -1.0) {
            double z = cosv - margin;
            if (z > 0.0) { l = z; dl = 1.0; }
            else if (z == z) { l = 0.0; dl = 0.0; }
            else { l = NAN; dl = NAN; }
        } else {
            l = NAN; dl = NAN;
        }
        if (l != l) dl = NAN;
        const double wi = W ? (double)W[i * a->ssw] : 1.0;
        const double wl = wi * l;
        acc += wl;
        if (V) V[i] = (T)wl;
        if (!(G1 || G2)) continue;
        if (dl != dl) {
            if (g1) SFX(row_fill)(g1, D, (T)NAN);
            if (g2) SFX(row_fill)(g2, D, (T)NAN);
            continue;
        }
        const double c = scale * wi * dl;
        if (dl == 0.0 || c == 0.0) {
            if (g1) SFX(row_fill)(g1, D, (T)0);
            if (g2) SFX(row_fill)(g2, D, (T)0);
            continue;
        }
        /* dcos/dx1 = x2 / denom - cos x1 / s1 (and symmetrically) */
        if (!slow) {
            const double A = c / denom, B1 = -c * cosv / s1, B2 = -c * cosv / s2;
            if (g1 && g2) SFX(cos_grad2)(x1, x2, g1, g2, D, A, B1, B2);
            else if (g1) SFX(cos_grad1)(x1, x2, g1, D, A, B1);
            else SFX(cos_grad1)(x2, x1, g2, D, A, B2);
        } else {
            /* in the scaled view: dcos/dx1 = (U2 / denom - cos U1 / s1) / m1;
             * an infinite row's own gradient is the limit 0 */
            const double k1 = r1.inf ? 0.0 : c / r1.m, k2 = r2.inf ? 0.0 : c / r2.m;
            for (fl_idx j = 0; j < D; j++) {
                double u1 = SFX(row_u)(x1[j], &r1), u2 = SFX(row_u)(x2[j], &r2);
                if (g1) g1[j] = (T)(k1 * (u2 / denom - cosv * u1 / s1));
                if (g2) g2[j] = (T)(k2 * (u1 / denom - cosv * u2 / s2));
            }
        }
    }
    return acc;
}

/* --------------------------------------------------------- triplet_margin */

/* Per sample: l = max(d(a,p) - dn + margin, 0), d(u,v) = ||u - v + eps||_p,
 * dn = d(a,n), or with swap min(d(a,n), d(p,n)) (a tie shares the gradient
 * equally, as torch's minimum).  Gradient 0 at the kink (z == 0) and where
 * z < 0.  Infinite inputs: a distance with one infinite entry of u - v + eps
 * is inf with the limit gradient (the entry's sign); several: inf with NaN
 * gradient (no limit); inf - inf inside a row is NaN.  So d(a,p) = inf
 * against a finite dn is l = inf, a finite d(a,p) against dn = inf is
 * l = 0 with gradient 0, and inf against inf is NaN.  A NaN loss gives NaN
 * gradient rows. */
static double SFX(triplet_margin_range)(const fl_row_args *a, int mode, fl_idx s, fl_idx e)
{
    const fl_idx D = a->D;
    const T *XA = (const T *)a->x[0], *XP = (const T *)a->x[1], *XN = (const T *)a->x[2];
    const T *W = (const T *)a->sw;
    T *V = (mode & FL_VAL) ? (T *)a->val : NULL;
    T *GA = (mode & FL_GRAD) ? (T *)a->grad[0] : NULL;
    T *GP = (mode & FL_GRAD) ? (T *)a->grad[1] : NULL;
    T *GN = (mode & FL_GRAD) ? (T *)a->grad[2] : NULL;
    const int wantg = GA || GP || GN;
    const double margin = a->prm[0], p = a->prm[1], eps = a->prm[2], scale = a->scale;
    const int swap = a->prm[3] != 0.0, p2 = p == 2.0;
    double acc = 0.0;
    for (fl_idx i = s; i < e; i++) {
        const T *xa = XA + i * a->sx[0], *xp = XP + i * a->sx[1], *xn = XN + i * a->sx[2];
        T *ga = GA ? GA + i * D : NULL, *gp = GP ? GP + i * D : NULL;
        T *gn = GN ? GN + i * D : NULL;
        fl_dist dap, dan, dpn;
        dpn.d = 0.0; dpn.cnt = 1.0; dpn.kind = DK_ZERO;
        if (p2) {
            double sq[3];
            if (swap) SFX(tri_sq3)(xa, xp, xn, D, eps, sq);
            else SFX(tri_sq2)(xa, xp, xn, D, eps, sq);
            fl_dist *ds[3] = { &dap, &dan, &dpn };
            const T *dx[3] = { xa, xa, xp }, *dy[3] = { xp, xn, xn };
            for (int k = 0; k < 2 + swap; k++) {
                if (sq[k] > FL_ROW_SQ_LO && sq[k] < FL_ROW_SQ_HI) {
                    ds[k]->d = sqrt(sq[k]); ds[k]->cnt = 1.0; ds[k]->kind = DK_NORMAL;
                } else {
                    SFX(dist_gen)(dx[k], dy[k], D, eps, 2.0, 0, ds[k]);
                }
            }
        } else {
            SFX(dist_gen)(xa, xp, D, eps, p, wantg, &dap);
            SFX(dist_gen)(xa, xn, D, eps, p, wantg, &dan);
            if (swap) SFX(dist_gen)(xp, xn, D, eps, p, wantg, &dpn);
        }
        /* the negative distance and the shares of its gradient */
        double dneg, sh_an = 1.0, sh_pn = 0.0;
        if (!swap) dneg = dan.d;
        else if (dan.d < dpn.d) dneg = dan.d;
        else if (dpn.d < dan.d) { dneg = dpn.d; sh_an = 0.0; sh_pn = 1.0; }
        else if (dan.d == dpn.d) { dneg = dan.d; sh_an = 0.5; sh_pn = 0.5; }
        else dneg = NAN;
        const double z = (dap.d - dneg) + margin;
        const double l = z > 0.0 ? z : (z == z ? 0.0 : NAN);
        const double wi = W ? (double)W[i * a->ssw] : 1.0;
        const double wl = wi * l;
        acc += wl;
        if (V) V[i] = (T)wl;
        if (!wantg) continue;
        if (l != l) {
            if (ga) SFX(row_fill)(ga, D, (T)NAN);
            if (gp) SFX(row_fill)(gp, D, (T)NAN);
            if (gn) SFX(row_fill)(gn, D, (T)NAN);
            continue;
        }
        const double c = scale * wi;
        if (!(z > 0.0) || c == 0.0) {
            /* c * 0: 0, or NaN for a NaN coefficient (an infinite weight
             * over an infinite total), as the other kernels and the
             * reference give */
            const T zero = (T)(c * 0.0);
            if (ga) SFX(row_fill)(ga, D, zero);
            if (gp) SFX(row_fill)(gp, D, zero);
            if (gn) SFX(row_fill)(gn, D, zero);
            continue;
        }
        /* dl/da = f(u) - sh_an f(v); dl/dp = -f(u) - sh_pn f(w);
         * dl/dn = sh_an f(v) + sh_pn f(w), f = the distance's gradient */
        const double cu = c, cv = -c * sh_an, cw = -c * sh_pn;
        const int fast = p2 && dap.kind <= DK_ZERO && (cv == 0.0 || dan.kind <= DK_ZERO) &&
                         (cw == 0.0 || dpn.kind <= DK_ZERO);
        if (fast) {
            const double ku = dap.kind == DK_NORMAL ? cu / dap.d : 0.0;
            const double kv = dan.kind == DK_NORMAL ? cv / dan.d : 0.0;
            const double kw = cw != 0.0 && dpn.kind == DK_NORMAL ? cw / dpn.d : 0.0;
            if (ga && gp && gn) {
                if (kw != 0.0) SFX(tri_grad3s)(xa, xp, xn, ga, gp, gn, D, eps, ku, kv, kw);
                else SFX(tri_grad3)(xa, xp, xn, ga, gp, gn, D, eps, ku, kv);
            } else {
                if (ga) SFX(tri_grad1)(xa, xp, xn, ga, D, eps, ku, kv, 0.0);
                if (gp) SFX(tri_grad1)(xa, xp, xn, gp, D, eps, -ku, 0.0, kw);
                if (gn) SFX(tri_grad1)(xa, xp, xn, gn, D, eps, 0.0, -kv, -kw);
            }
        } else {
            for (fl_idx j = 0; j < D; j++) {
                double xaj = (double)xa[j], xpj = (double)xp[j], xnj = (double)xn[j];
                double fu = SFX(dist_dgrad)((xaj - xpj) + eps, &dap, p);
                double fv = cv != 0.0 ? SFX(dist_dgrad)((xaj - xnj) + eps, &dan, p) : 0.0;
                double fw = cw != 0.0 ? SFX(dist_dgrad)((xpj - xnj) + eps, &dpn, p) : 0.0;
                if (ga) ga[j] = (T)(cu * fu + cv * fv);
                if (gp) gp[j] = (T)(cw * fw - cu * fu);
                if (gn) gn[j] = (T)(-cv * fv - cw * fw);
            }
        }
    }
    return acc;
}

/* ------------------------------------------------------------- the driver */

typedef double (*SFX(row_range_fn))(const fl_row_args *a, int mode, fl_idx s, fl_idx e);

#define ROW_TABLE(NAME, IN, LAB) SFX(NAME##_range),
static const SFX(row_range_fn) SFX(row_ranges)[FL_ROW_NKERNELS] = { FL_ROW_LOSSES(ROW_TABLE) };
#undef ROW_TABLE

typedef struct {
    SFX(row_range_fn) fn;
    const fl_row_args *a;
    int mode;
    fl_idx rows, n;
} SFX(row_job);

static double SFX(row_chunk)(void *ctx, fl_idx c, int tid)
{
    const SFX(row_job) *j = (const SFX(row_job) *)ctx;
    fl_idx s = c * j->rows, e = s + j->rows < j->n ? s + j->rows : j->n;
    (void)tid;
    return j->fn(j->a, j->mode, s, e);
}

static double SFX(row_run)(int kernel, int mode, const fl_row_args *a, int nthreads)
{
    const fl_idx n = a->n;
    if (n <= 0 || a->D < 0) return 0.0;
    const fl_idx per = a->D > 0 ? a->D : 1;
    fl_idx rows = FL_ROW_CHUNK / per;
    if (rows < 1) rows = 1;
    const fl_idx nchunks = (n + rows - 1) / rows;
    SFX(row_job) job = { SFX(row_ranges)[kernel], a, mode, rows, n };
    double acc = 0.0;
    if (nchunks == 1) {
        acc = job.fn(a, mode, 0, n);
        return (mode & FL_SUM) ? acc : 0.0;
    }
    int adaptive;
    nthreads = fl_unpack_threads(nthreads, &adaptive);
    int nt = fl_threads_for(nthreads, n * per, FL_MIN_PER_THREAD_HEAVY);
    if (adaptive && nt > 1 && fl_guard_solo()) nt = 1;
    double stack_part[256];
    double *part = nchunks <= 256 ? stack_part
                                  : (double *)malloc(sizeof(double) * (size_t)nchunks);
    if (!part) {
        /* no memory for the partials: the chunks in order on this thread
         * (the same sums, the same bits) */
        for (fl_idx c = 0; c < nchunks; c++) acc += SFX(row_chunk)(&job, c, 0);
        return (mode & FL_SUM) ? acc : 0.0;
    }
    fl_run_chunks(SFX(row_chunk), &job, nchunks, nt, adaptive, part);
    for (fl_idx c = 0; c < nchunks; c++) acc += part[c];
    if (part != stack_part) free(part);
    return (mode & FL_SUM) ? acc : 0.0;
}
