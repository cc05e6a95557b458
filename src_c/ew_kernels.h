/* The elementwise loss kernels: one scalar function per loss giving the
 * value l, the derivative g = dl/dp and the second derivative h = d2l/dp2
 * at one element.  Included once per floating type by elementwise.c with
 *   T       the type (float or double)
 *   SFX(n)  n with a type suffix
 *   VM(f)   the vectorizable elementary function f of vmath.h for T
 *   PRM     the parameter struct {T a, b, c, d}
 * Every kernel is branch-free (selects only), so the driver's loops
 * vectorize, and the compiler drops whatever outputs a loop does not store.
 * NaN inputs -- and p and t the same infinity, where d = inf - inf -- are
 * handled once by the driver, not here.  Infinite inputs must
 * give the mathematical limit: avoid 0*inf wherever a coefficient can be 0.
 *
 * Signature: K(p, t, x, prm, &l, &g, &h); x is the third input (pos_weight,
 * var, y) for kernels that declare one in FL_EW_LOSSES, else 1.  Kernels of
 * two differentiated inputs add &g1, &h1 (KERNEL2). */

#define C(v) ((T)(v))
#define KERNEL(name) \
    FL_INLINE void SFX(k_##name)(T p, T t, T x, const PRM *prm, T *l, T *g, T *h)
/* kernels of two differentiated inputs (nd 2 in FL_EW_LOSSES): g1, h1 are
 * the derivatives with respect to the second one */
#define KERNEL2(name) \
    FL_INLINE void SFX(k_##name)(T p, T t, T x, const PRM *prm, T *l, T *g, T *h, \
                                 T *g1, T *h1)

/* sign(d) with 0 at 0 (NaN d -- NaN inputs or inf - inf -- is handled by
 * the driver) */
#define SIGN0(d) ((d) > 0 ? C(1) : ((d) < 0 ? C(-1) : C(0)))

KERNEL(mse)
{
    (void)x; (void)prm;
    T d = p - t;
    *l = d * d; *g = C(2) * d; *h = C(2);
}

KERNEL(mae)
{
    (void)x; (void)prm;
    T d = p - t;
    *l = d < 0 ? -d : d; *g = SIGN0(d); *h = C(0);
}

/* delta = prm->a > 0; quadratic side at |d| == delta */
KERNEL(huber)
{
    (void)x;
    T delta = prm->a, d = p - t, ad = d < 0 ? -d : d;
    int quad = ad <= delta;
    *l = quad ? C(0.5) * d * d : delta * (ad - C(0.5) * delta);
    *g = quad ? d : delta * SIGN0(d);
    *h = quad ? C(1) : C(0);
}

/* beta = prm->a >= 0; linear side at |d| == beta (so beta == 0 is mae).
 * d/beta is formed as (d*sc) * (1/(beta*sc)) with sc = 2**64 for beta < 1:
 * sc is exact, and 1/(beta*sc) stays finite for a subnormal beta, whose
 * 1/beta overflows (d*sc cannot: |d| < beta there). */
KERNEL(smooth_l1)
{
    (void)x;
    T beta = prm->a, d = p - t, ad = d < 0 ? -d : d;
    int quad = ad < beta;
    const T sc = beta < C(1) ? C(18446744073709551616.0) : C(1);
    const T inv = C(1) / (beta * sc);
    T q = (d * sc) * inv;                 /* d / beta on the quadratic side */
    *l = quad ? C(0.5) * d * q : ad - C(0.5) * beta;
    *g = quad ? q : SIGN0(d);
    *h = quad ? inv * sc : C(0);
}

/* log(cosh d) with m = expm1(-|d|) (relatively accurate for every |d|):
 *   |d| <  1: log1p(cosh d - 1), cosh d - 1 = m^2 / (2 (1 + m))  (no cancellation)
 *   |d| >= 1: |d| - log 2 + log1p(exp(-2|d|)),  exp(-|d|) = 1 + m
 *   tanh|d| = -m (2 + m) / (1 + (1 + m)^2)
 *   sech^2 d = (2 e / (1 + e^2))^2 with e = exp(-|d|) taken directly, so the
 *   Hessian keeps its relative accuracy far in the tails. */
KERNEL(log_cosh)
{
    (void)x; (void)prm;
    T d = p - t, ad = d < 0 ? -d : d;
    T m = VM(expm1)(-ad), e1 = C(1) + m;
    int small = ad < C(1);
    T arg = small ? m * m / (C(2) * e1) : e1 * e1;
    T lp = VM(log1p)(arg);
    *l = small ? lp : (ad - C(0.693147180559945309417232121458176568)) + lp;
    T th = -m * (C(2) + m) / (C(1) + e1 * e1);
    *g = d < 0 ? -th : th;
    T e = VM(exp)(-ad), s = C(2) * e / (C(1) + e * e);
    *h = s * s;
}

/* pinball loss, q = prm->a in (0, 1) and prm->b = q - 1 (formed in double:
 * see _table.py); r = t - p; gradient -q at r == 0 */
KERNEL(quantile)
{
    (void)x;
    T q = prm->a, qm1 = prm->b, r = t - p;
    int pos = r >= 0;
    *l = pos ? q * r : qm1 * r;
    *g = pos ? -q : -qm1;
    *h = C(0);
}

/* exp(p) - t p, p a log-rate.  t == 0 contributes 0 even at p = -inf; the
 * limit at p = +inf is +inf for every finite t (and for t = -inf).  At
 * p = t = +inf, an indeterminate form, the driver gives NaN. */
KERNEL(poisson)
{
    (void)x; (void)prm;
    T e = VM(exp)(p);
    T tp = t == 0 ? C(0) : t * p;
    T v = e - tp;
    *l = p == (T)INFINITY ? p : v;
    *g = e - t; *h = e;
}

/* HalfTweedieLoss with log link, power rho in (1, 2):
 *   exp((2-rho) p) / (2-rho) - t exp((1-rho) p) / (1-rho)
 * prm->a = 2 - rho and prm->b = 1 - rho, formed in double (see _table.py):
 * in float32 rho itself rounds to 1 or 2 near the edges of its domain. */
KERNEL(tweedie)
{
    (void)x;
    T a2 = prm->a, a1 = prm->b;
    T e2 = VM(exp)(a2 * p), e1 = VM(exp)(a1 * p);
    T te1 = t == 0 ? C(0) : t * e1;
    *l = e2 / a2 - te1 / a1;
    *g = e2 - te1;
    *h = a2 * e2 - a1 * te1;
}

/* binary cross-entropy on probabilities, each log clamped at -100 (PyTorch);
 * the derivatives are those of the clamped expression (0 where clamped).
 * t/p, not t * (1/p): in float32 1/p overflows for a subnormal p (>= e^-100
 * is not clamped), and 0 * inf would be NaN where the derivative is 1. */
KERNEL(bce)
{
    (void)x; (void)prm;
    T lp = VM(log)(p), lq = VM(log1p)(-p), q = C(1) - p, u = C(1) - t;
    int okp = lp > C(-100), okq = lq > C(-100);
    lp = okp ? lp : C(-100);
    lq = okq ? lq : C(-100);
    *l = -(t * lp + u * lq);
    T tp = okp ? t / p : C(0), uq = okq ? u / q : C(0);
    *g = uq - tp;
    *h = (okp ? tp / p : C(0)) + (okq ? uq / q : C(0));
}

/* binary cross-entropy on a logit p with positive-class weight x:
 *   x t softplus(-p) + (1 - t) softplus(p)
 * with e = exp(-|p|): softplus(+-p) = max(+-p, 0) + log1p(e),
 * sigmoid(p) = 1/(1+e) or e/(1+e), s (1 - s) = e / (1 + e)^2.
 * A zero coefficient contributes exactly 0 (the limit at p = +-inf). */
FL_INLINE void SFX(bce_logits_core)(T p, T t, T pw, T *l, T *g, T *h)
{
    T ap = p < 0 ? -p : p;
    T e = VM(exp)(-ap), L = VM(log1p)(e), r = C(1) / (C(1) + e);
    T spp = (p > 0 ? p : C(0)) + L;          /* softplus(p)  */
    T spm = (p < 0 ? -p : C(0)) + L;         /* softplus(-p) */
    T s = p >= 0 ? r : e * r;                /* sigmoid(p)     */
    T sc = p >= 0 ? e * r : r;               /* 1 - sigmoid(p) */
    T a = pw * t, b = C(1) - t;
    *l = (a == 0 ? C(0) : a * spm) + (b == 0 ? C(0) : b * spp);
    *g = b * s - a * sc;
    *h = (a + b) * (e * r * r);
}

KERNEL(bce_logits)
{
    (void)x; (void)prm;
    SFX(bce_logits_core)(p, t, C(1), l, g, h);
}

KERNEL(bce_logits_pw)
{
    (void)prm;
    SFX(bce_logits_core)(p, t, x, l, g, h);
}

/* Focal loss of Lin et al. on logits (torchvision's sigmoid_focal_loss):
 *   alpha_t * ce * m^gamma,  ce = bce_logits(p, t),  m = 1 - p_t
 *   m = s (1 - t) + (1 - s) t,  dm/dp = s'(1 - 2t),  s' = s (1 - s)
 * alpha = prm->a (< 0 means no alpha weighting), gamma = prm->b >= 0.
 * m^gamma = exp(gamma log m); its derivatives are written through the
 * ratios dm/m and d2m/m, which stay bounded as m -> 0, so no power of m
 * below 1 is ever formed.  Where m underflows to 0, m^gamma and every
 * derivative term are 0 (their limit) for gamma > 0. */
FL_INLINE void SFX(focal_core)(T p, T t, const PRM *prm, T *l, T *g, T *h, const int G2)
{
    T alpha = prm->a, gam = prm->b;
    T ap = p < 0 ? -p : p;
    T e = VM(exp)(-ap), L = VM(log1p)(e), r = C(1) / (C(1) + e);
    T s = p >= 0 ? r : e * r, sc = p >= 0 ? e * r : r;
    T sp1 = e * r * r;                       /* s (1 - s) */
    T u = C(1) - t;
    T spp = (p > 0 ? p : C(0)) + L, spm = (p < 0 ? -p : C(0)) + L;
    T ce = (t == 0 ? C(0) : t * spm) + (u == 0 ? C(0) : u * spp);
    T dce = u * s - t * sc, d2ce = sp1;      /* s - t without cancellation */
    T m = s * u + sc * t, k = C(1) - C(2) * t;
    int mz = m == 0;
    /* loop-invariant choices as values, not selects: a select on an
     * invariant condition gets the loop unswitched, and GCC then leaves the
     * omp simd loop scalar */
    const T B0 = gam == 0 ? C(1) : C(0);              /* m^gamma at m == 0 */
    /* G2: gamma == 2, m^2 as a product (exact limits, no exp/log) */
    T B = G2 ? m * m : (mz ? B0 : VM(exp)(gam * VM(log)(mz ? C(1) : m)));
    T q = mz ? C(0) : sp1 / m;             /* s'/m <= 1: no overflow */
    T r1 = q * k, r2 = q * (sc - s) * k;
    T dB = gam * B * r1;
    T d2B = gam * B * ((gam - C(1)) * r1 * r1 + r2);
    /* where s (1 - s) underflows (|p| huge) the m-derivative terms are 0
     * even though ce grows like |p|: their product tends to 0 */
    T cef = sp1 == 0 ? C(0) : ce;
    const T a0 = alpha < 0 ? C(1) : C(1) - alpha;     /* alpha_t = a0 + a1 t */
    const T a1 = alpha < 0 ? C(0) : C(2) * alpha - C(1);
    T at = a0 + a1 * t;
    *l = at * ce * B;
    *g = at * (dce * B + cef * dB);
    *h = at * (d2ce * B + C(2) * dce * dB + cef * d2B);
}

#ifdef FL_EW_WIDER
/* float: value and gradient in float; the Hessian in double -- it is a sum
 * of terms of opposite signs that cancel where it changes sign, and float
 * arithmetic would leave only a few correct digits there.  (The compiler
 * keeps only the half each loop stores.) */
#define FOCAL_KERNEL(name, G2)                                               \
    KERNEL(name)                                                             \
    {                                                                        \
        T hf;                                                                \
        (void)x;                                                             \
        SFX(focal_core)(p, t, prm, l, g, &hf, G2);                           \
        (void)hf;                                                            \
        FL_EW_WIDER_PRM q = { prm->a, prm->b, prm->c, prm->d };              \
        double l2, g2, h2;                                                   \
        FL_EW_WIDER(name)((double)p, (double)t, (double)x, &q, &l2, &g2, &h2); \
        *h = (T)h2;                                                          \
    }
#else
#define FOCAL_KERNEL(name, G2)                                               \
    KERNEL(name)                                                             \
    {                                                                        \
        (void)x;                                                             \
        SFX(focal_core)(p, t, prm, l, g, h, G2);                             \
    }
#endif
FOCAL_KERNEL(sigmoid_focal, 0)
FOCAL_KERNEL(sigmoid_focal_g2, 1)
#undef FOCAL_KERNEL

/* hinge: labels s in {-1, +1}; 0 means -1.  Gradient 0 at margin exactly 1. */
KERNEL(hinge)
{
    (void)x; (void)prm;
    T s = t == 0 ? C(-1) : t, z = C(1) - s * p;
    int act = z > 0;
    *l = act ? z : C(0);
    *g = act ? -s : C(0);
    *h = C(0);
}

KERNEL(squared_hinge)
{
    (void)x; (void)prm;
    T s = t == 0 ? C(-1) : t, z = C(1) - s * p;
    int act = z > 0;
    *l = act ? z * z : C(0);
    *g = act ? C(-2) * s * z : C(0);
    *h = act ? C(2) * s * s : C(0);
}

/* Gaussian negative log-likelihood, p = y_pred, t = y_true, x = var:
 *   0.5 (log v + d^2 / v) + c,  v = max(var, eps),  d = p - t
 * eps = prm->a > 0, c = prm->b (0.5 log(2 pi) with full=True, else 0).
 * The clamp is straight-through (torch): the derivatives with respect to
 * var are those of the formula at v.  A NaN var propagates (the select
 * keeps it).  g: d/dp, g1: d/dvar. */
KERNEL2(gaussian_nll)
{
    T eps = prm->a, c = prm->b;
    T v = x < eps ? eps : x;
    T d = p - t, iv = C(1) / v, r = d * iv, q = r * d;
    *l = C(0.5) * (VM(log)(v) + q) + c;
    *g = r;
    *h = iv;
    *g1 = C(0.5) * iv * (C(1) - q);
    *h1 = C(0.5) * iv * iv * (C(2) * q - C(1));
}

/* Kullback-Leibler divergence with log-probability predictions p and
 * probability targets t: t (log t - p), 0 where t == 0 (also for an
 * infinite p: the limit).  Negative targets give NaN (log). */
KERNEL(kl_div)
{
    /* in float32 as torch and JAX: where p is close to log t (near the
     * optimum) log t - p cancels, and the value is accurate relative to
     * the terms t log t and t p, not to itself */
    (void)x; (void)prm;
    T lt = VM(log)(t == 0 ? C(1) : t);
    *l = t == 0 ? C(0) : t * (lt - p);
    *g = -t;
    *h = C(0);
}

/* ... with log-probability targets t: exp(t) (t - p), 0 where t == -inf
 * (the limit, where torch gives NaN) */
KERNEL(kl_div_log)
{
    (void)x; (void)prm;
    T et = VM(exp)(t);
    *l = et == 0 ? C(0) : et * (t - p);
    *g = -et;
    *h = C(0);
}

/* margin ranking, p = x1, t = x2, x = y in {-1, 1}: max(0, -y (x1 - x2) +
 * margin), margin = prm->a; gradient 0 at the kink; a NaN y propagates
 * (m <= 0 is false for NaN).  g: d/dx1, g1: d/dx2. */
KERNEL2(margin_ranking)
{
    T m = prm->a - x * (p - t);
    int off = m <= 0;
    *l = off ? C(0) : m;
    *g = off ? C(0) : -x;
    *g1 = off ? C(0) : x;
    *h = C(0);
    *h1 = C(0);
}

#undef SIGN0
#undef KERNEL
#undef KERNEL2
#undef C
