/* The AVX-512 row loops of cross_entropy for one element type; included
 * by ce_simd.c with E (float / double), V, K (vector, mask), L (lanes),
 * SFXR(name) and the V* / I* operation macros defined; undefines them at
 * its end. */

/* One pass: e = exp(z - m) (stored in g when g != NULL), S += e and, when
 * SX, Sx += e for every class but y. */
AVX512 static inline void SFXR(exp_pass)(const E *z, fl_idx n, E m, E *g, fl_idx y,
                                         const int SX, double *S, double *Sx)
{
    const V mv = VSET1(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    __m512d x0 = _mm512_setzero_pd(), x1 = _mm512_setzero_pd();
    V sf = VSET1(0), xf = VSET1(0);
    const __m512i yv = ISET1(SX ? y : 0);
    __m512i iv = IINIT;
    const __m512i step = ISET1(L);
    fl_idx c = 0;
    while (c < n) {
        /* blocks of at most 16 vectors summed in E, then in double */
        fl_idx end = n - c > 16 * L ? c + 16 * L : n;
        for (; c + L <= end; c += L) {
            V e = VEXP(VSUB(VLOAD(z + c), mv));
            if (g) VSTORE(g + c, e);
            sf = VADD(sf, e);
            if (SX) {
                K ne = INE(iv, yv);
                xf = VMADD(xf, ne, xf, e);
                iv = IADD(iv, step);
            }
        }
        if (c < end) {                       /* the row's last, partial vector */
            K k = (K)((1u << (end - c)) - 1u);
            V e = VEXP(VSUB(VLOADZ(k, z + c), mv));
            if (g) VSTOREM(g + c, k, e);
            sf = VMADD(sf, k, sf, e);
            if (SX) {
                K ne = (K)(k & INE(iv, yv));
                xf = VMADD(xf, ne, xf, e);
            }
            c = end;
        }
        SFXR(acc_flush)(&sf, &s0, &s1);
        if (SX) SFXR(acc_flush)(&xf, &x0, &x1);
    }
    *S = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    if (SX) *Sx = _mm512_reduce_add_pd(_mm512_add_pd(x0, x1));
}

AVX512 int SFXR(fl_ce_seg_a)(const E *z, fl_idx n, fl_idx y, E *g, double *S, double *Sx,
                             E *mout)
{
    /* the maximum, ignoring NaN as the portable loop does (vmaxp[sd]
     * returns its second operand when either is NaN) */
    V m0 = VSET1(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    fl_idx c = 0;
    for (; c + 4 * L <= n; c += 4 * L) {
        m0 = VMAX(VLOAD(z + c), m0);
        m1 = VMAX(VLOAD(z + c + L), m1);
        m2 = VMAX(VLOAD(z + c + 2 * L), m2);
        m3 = VMAX(VLOAD(z + c + 3 * L), m3);
    }
    for (; c + L <= n; c += L) m0 = VMAX(VLOAD(z + c), m0);
    if (c < n) {
        K k = (K)((1u << (n - c)) - 1u);
        m1 = VMMAX(m1, k, VLOADZ(k, z + c), m1);
    }
    E m = VREDMAX(VMAX(VMAX(m0, m1), VMAX(m2, m3)));
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
        *Sx = has_y ? *S - (double)VFIRST(VEXP(VSET1(z[y] - m))) : *S;
    }
    return 1;
}

AVX512 void SFXR(fl_ce_scale)(E *g, fl_idx n, E f)
{
    const V fv = VSET1(f);
    fl_idx c = 0;
    for (; c + 2 * L <= n; c += 2 * L) {
        VSTORE(g + c, VMUL(VLOAD(g + c), fv));
        VSTORE(g + c + L, VMUL(VLOAD(g + c + L), fv));
    }
    for (; c + L <= n; c += L) VSTORE(g + c, VMUL(VLOAD(g + c), fv));
    if (c < n) {
        K k = (K)((1u << (n - c)) - 1u);
        VSTOREM(g + c, k, VMUL(VLOADZ(k, g + c), fv));
    }
}

/* the template's parameters, for the next instantiation */
#undef E
#undef V
#undef K
#undef L
#undef SFXR
#undef VSET1
#undef VLOAD
#undef VLOADZ
#undef VSTORE
#undef VSTOREM
#undef VSUB
#undef VADD
#undef VMUL
#undef VMAX
#undef VMMAX
#undef VMADD
#undef VREDMAX
#undef VFIRST
#undef VEXP
#undef ISET1
#undef IINIT
#undef IADD
#undef INE
