/* The row loops of cross_entropy for one element type, over simd.h;
 * included by ce_simd.c with E (float / double), V (vector), L (lanes),
 * SFXR(name), VX(op) (vf_op / vd_op), VEXP and VACC (vf_acc / vd_acc)
 * defined; undefines them at its end. */

/* v with lane j set to +0 */
static inline V SFXR(zero_lane)(V v, int j)
{
    return VX(sel)(VX(eq)(VX(iota)(), VX(set1)((E)j)), VX(zero)(), v);
}

/* One pass: e = exp(z - m) (stored in g when g != NULL), S += e and, when
 * SX, Sx += e for every class but y.  The row's last, partial vector is
 * loaded padded with -inf: its extra lanes give e = +0, which leaves the
 * sums' bits unchanged. */
FL_INLINE void SFXR(exp_pass)(const E *z, fl_idx n, E m, E *g, fl_idx y, const int SX,
                              double *S, double *Sx)
{
    const V mv = VX(set1)(m);
    fl_vd s0 = vd_zero(), s1 = vd_zero(), x0 = vd_zero(), x1 = vd_zero();
    V sf = VX(zero)(), xf = VX(zero)();
    fl_idx c = 0;
    while (c < n) {
        /* blocks of at most 16 vectors summed in E, then in double */
        fl_idx end = n - c > 16 * L ? c + 16 * L : n;
        for (; c + L <= end; c += L) {
            V e = VEXP(VX(load)(z + c) - mv);
            if (g) VX(store)(g + c, e);
            sf = sf + e;
            if (SX) xf = xf + ((size_t)(y - c) < (size_t)L ? SFXR(zero_lane)(e, (int)(y - c)) : e);
        }
        if (c < end) {
            const int r = (int)(end - c);
            V e = VEXP(VX(loadp)(z + c, r, (E)-INFINITY) - mv);
            if (g) VX(storep)(g + c, r, e);
            sf = sf + e;
            if (SX) xf = xf + ((size_t)(y - c) < (size_t)L ? SFXR(zero_lane)(e, (int)(y - c)) : e);
            c = end;
        }
        VACC(&s0, &s1, sf);
        sf = VX(zero)();
        if (SX) {
            VACC(&x0, &x1, xf);
            xf = VX(zero)();
        }
    }
    *S = vd_hsum(s0 + s1);
    if (SX) *Sx = vd_hsum(x0 + x1);
}

int SFXR(fl_ce_seg_a)(const E *z, fl_idx n, fl_idx y, E *g, double *S, double *Sx, E *mout)
{
    /* the maximum, ignoring NaN as the portable loop does (max returns its
     * second operand when either is NaN) */
    const V ninf = VX(set1)((E)-INFINITY);
    V m0 = ninf, m1 = ninf, m2 = ninf, m3 = ninf;
    fl_idx c = 0;
    for (; c + 4 * L <= n; c += 4 * L) {
        m0 = VX(max)(VX(load)(z + c), m0);
        m1 = VX(max)(VX(load)(z + c + L), m1);
        m2 = VX(max)(VX(load)(z + c + 2 * L), m2);
        m3 = VX(max)(VX(load)(z + c + 3 * L), m3);
    }
    for (; c + L <= n; c += L) m0 = VX(max)(VX(load)(z + c), m0);
    if (c < n) m1 = VX(max)(VX(loadp)(z + c, (int)(n - c), (E)-INFINITY), m1);
    E m = VX(hmax)(VX(max)(VX(max)(m0, m1), VX(max)(m2, m3)));
    if (!(m > -INFINITY && m < INFINITY)) return 0;   /* the portable path's limits */
    *mout = m;
    int has_y = y >= 0 && y < n;
    if (has_y && z[y] == m) {
        /* the target is the maximum: its loss is log1p(Sx), so Sx is summed
         * apart (S - 1 would lose the small terms) */
        SFXR(exp_pass)(z, n, m, g, y, 1, S, Sx);
    } else {
        SFXR(exp_pass)(z, n, m, g, y, 0, S, Sx);
        /* the target is not the maximum: Sx >= 1, S - e_y does not cancel */
        *Sx = has_y ? *S - (double)VX(first)(VEXP(VX(set1)(z[y] - m))) : *S;
    }
    return 1;
}

void SFXR(fl_ce_scale)(E *g, fl_idx n, E f)
{
    const V fv = VX(set1)(f);
    fl_idx c = 0;
    for (; c + 2 * L <= n; c += 2 * L) {
        VX(store)(g + c, VX(load)(g + c) * fv);
        VX(store)(g + c + L, VX(load)(g + c + L) * fv);
    }
    for (; c + L <= n; c += L) VX(store)(g + c, VX(load)(g + c) * fv);
    if (c < n) VX(storep)(g + c, (int)(n - c), VX(loadp)(g + c, (int)(n - c), 0) * fv);
}

/* the template's parameters, for the next instantiation */
#undef E
#undef V
#undef L
#undef SFXR
#undef VX
#undef VEXP
#undef VACC
