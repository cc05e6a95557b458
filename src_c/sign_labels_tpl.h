/* The packed-label loops of sign_labels.c for one element type, over
 * simd.h; included with E (float / double), V, M (vector, mask), L (lanes),
 * SB (an unsigned type of L bits: one vector's labels), SFXS(name), VX(op)
 * (vf_op / vd_op), MX(op) (mf_op / md_op) and VACC (vf_acc / vd_acc: add
 * into the float64 sums) defined; undefines them at its end. */

/* lanes < n of a mask as bits */
#define SBITS(n) ((unsigned)(((n) >= 32 ? 0u : 1u << (n)) - 1u))

/* Checks the n <= L labels at t and stores their bits (1: +1) in *bits;
 * returns bad with the lanes holding a label that is not -1, 0 or 1 (NaN
 * included) added. */
FL_INLINE unsigned SFXS(signs_pack1)(const E *t, int n, SB *bits, unsigned bad)
{
    const V one = VX(set1)((E)1), mone = VX(set1)((E)-1), zero = VX(zero)();
    V x = n == L ? VX(load)(t) : VX(loadp)(t, n, (E)0);
    M pos = VX(eq)(x, one);
    M ok = MX(or)(pos, MX(or)(VX(eq)(x, mone), VX(eq)(x, zero)));
    const unsigned k = n == L ? SBITS(L) : SBITS(n);
    *bits = (SB)(MX(bits)(pos) & k);
    return bad | (k & ~MX(bits)(ok));
}

/* Interleaving several sequential streams lets this VM's single core keep
 * more cache misses in flight: the check pass reads t as 4 streams, the
 * kernel pass p (and writes its outputs) as 2 (measured in a C
 * microbenchmark at 1e7 with AVX-512: single streams reach 70-72 % of the
 * probe, this way 84-86 %; streaming stores then add 17 %). */
#ifndef SIGNS_PACK_STREAMS
#define SIGNS_PACK_STREAMS 4
#endif
#ifndef SIGNS_KERN_STREAMS
#define SIGNS_KERN_STREAMS 2
#endif

/* Checks and packs the labels t[s, e) (s a multiple of L) into
 * bits[s / L ...]; returns 1 when one is not -1, 0 or 1 (NaN included). */
static int SFXS(signs_pack)(const E *t, fl_idx s, fl_idx e, SB *bits)
{
    unsigned bad = 0;
    const fl_idx q = (e - s) / (SIGNS_PACK_STREAMS * L) * L;   /* per stream */
    for (fl_idx i = s; i < s + q; i += L)
        for (int r = 0; r < SIGNS_PACK_STREAMS; r++)
            bad = SFXS(signs_pack1)(t + i + r * q, L, bits + (i + r * q) / L, bad);
    fl_idx i = s + SIGNS_PACK_STREAMS * q;
    for (; i + L <= e; i += L)
        bad = SFXS(signs_pack1)(t + i, L, bits + i / L, bad);
    if (i < e)
        bad = SFXS(signs_pack1)(t + i, (int)(e - i), bits + i / L, bad);
    return bad != 0;
}

/* The kernel over the n <= L elements of y_pred from p[i] (i a multiple of
 * L) with their packed labels b; MODE, SQ (squared_hinge) and DEFER are
 * constants at every call (the outputs MODE does not name may be NULL).
 * Returns the gradient (FL_GRAD) or Hessian (FL_HESS) vector, which DEFER
 * leaves unstored for the caller to stream. */
FL_INLINE V SFXS(signs_vec)(const int SQ, const int MODE, const int DEFER,
                           const E *p, fl_idx i, unsigned b, int n, E sc, E *v, E *g,
                           E *h, fl_vd *a0, fl_vd *a1)
{
    const V one = VX(set1)((E)1), mone = VX(set1)((E)-1), zero = VX(zero)();
    V x = n == L ? VX(load)(p + i) : VX(loadp)(p + i, n, (E)0);
    V sg = VX(sel)(MX(from_bits)(b), one, mone);        /* the label s */
    V z = one - sg * x;                                 /* 1 - s x */
    M act = VX(gt)(z, zero);
    M nan = VX(isnan)(x);                               /* NaN y_pred: z is it */
    V ret = zero;
    if (MODE & (FL_SUM | FL_VAL)) {
        V l = SQ ? VX(zsel)(act, z * z) : VX(zsel)(act, z);
        l = VX(sel)(nan, z, l);
        if (MODE & FL_SUM) {
            V lk = n == L ? l : VX(zsel)(MX(first)(n), l);
            VACC(a0, a1, lk);
        }
        if (MODE & FL_VAL) {
            if (n == L) VX(store)(v + i, l);
            else VX(storep)(v + i, n, l);
        }
    }
    if (MODE & FL_GRAD) {
        V d = SQ ? VX(zsel)(act, (VX(set1)((E)-2) * sg) * z)        /* -2 s z */
                 : VX(zsel)(act, zero - sg);                         /* -s */
        d = VX(sel)(nan, z, d);
        ret = VX(set1)(sc) * d;
        if (!DEFER) {
            if (n == L) VX(store)(g + i, ret);
            else VX(storep)(g + i, n, ret);
        }
    }
    if (MODE & FL_HESS) {
        V d = SQ ? VX(zsel)(act, VX(set1)((E)2)) : zero;               /* 2 s^2, 0 */
        d = VX(sel)(nan, z, d);
        ret = VX(set1)(sc) * d;
        if (!DEFER) {
            if (n == L) VX(store)(h + i, ret);
            else VX(storep)(h + i, n, ret);
        }
    }
    return ret;
}

/* The kernel over y_pred p[s, e) (s a multiple of L): full vectors in
 * SIGNS_KERN_STREAMS interleaved streams, then the rest one vector at a
 * time, the last one partial.
 * NT (one output, g or h, in a large caller buffer): the streams' vectors
 * are written by streaming stores, which need vector-aligned addresses;
 * the output's first aligned element is `head` (< L) past each vector
 * start, so each store takes the upper L - head lanes of one vector and the
 * lower head lanes of the next (funnel), and each stream's first head and
 * last L - head elements are partial ordinary stores.  The vectors and the
 * order of the sum stay those of the ordinary stores: the results do not
 * depend on the output's address. */
FL_INLINE double SFXS(signs_block)(const int SQ, const int MODE, const int NT,
                                  const E *p, const SB *bits, fl_idx s,
                                  fl_idx e, int head, E sc, E *v, E *g, E *h)
{
    fl_vd a0 = vd_zero(), a1 = vd_zero();
    const int S = SIGNS_KERN_STREAMS;
    const fl_idx q = (e - s) / (S * L) * L;                 /* per stream */
    if (FL_V_STREAM && NT && q > 0) {
        E *o = (MODE & FL_HESS) ? h : g;
        V prev[SIGNS_KERN_STREAMS];
        for (int r = 0; r < S; r++) {
            const fl_idx i = s + r * q;
            prev[r] = SFXS(signs_vec)(SQ, MODE, 1, p, i, bits[i / L], L, sc, v, g, h, &a0, &a1);
            if (head) VX(storep)(o + i, head, prev[r]);
        }
        for (fl_idx k = L; k < q; k += L)
            for (int r = 0; r < S; r++) {
                const fl_idx i = s + r * q + k;
                V cur = SFXS(signs_vec)(SQ, MODE, 1, p, i, bits[i / L], L, sc, v, g, h,
                                        &a0, &a1);
                VX(stream)(o + i - L + head, VX(funnel)(prev[r], cur, head));
                prev[r] = cur;
            }
        for (int r = 0; r < S; r++)
            VX(storehi)(o + s + r * q + q - L, head, prev[r]);
        fl_vfence();
    } else {
        for (fl_idx i = s; i < s + q; i += L)
            for (int r = 0; r < S; r++)
                SFXS(signs_vec)(SQ, MODE, 0, p, i + r * q, bits[(i + r * q) / L], L, sc, v,
                                g, h, &a0, &a1);
    }
    fl_idx i = s + S * q;
    for (; i + L <= e; i += L)
        SFXS(signs_vec)(SQ, MODE, 0, p, i, bits[i / L], L, sc, v, g, h, &a0, &a1);
    if (i < e)
        SFXS(signs_vec)(SQ, MODE, 0, p, i, bits[i / L], (int)(e - i), sc, v, g, h, &a0, &a1);
    return vd_hsum(a0 + a1);
}

/* One chunk, the (SQ, MODE, NT) loop chosen (stream: NT); 0 for an unknown
 * mode. */
static double SFXS(signs_chunk)(int sq, int mode, int stream, const E *p, const SB *bits,
                                fl_idx s, fl_idx e, int head, E sc, E *v, E *g, E *h)
{
#define SIGNS_CASE(M)                                                                 \
    case (M):                                                                         \
        if (stream)                                                                   \
            return sq ? SFXS(signs_block)(1, (M), 1, p, bits, s, e, head, sc, v, g, h) \
                      : SFXS(signs_block)(0, (M), 1, p, bits, s, e, head, sc, v, g, h); \
        return sq ? SFXS(signs_block)(1, (M), 0, p, bits, s, e, 0, sc, v, g, h)       \
                  : SFXS(signs_block)(0, (M), 0, p, bits, s, e, 0, sc, v, g, h);
    switch (mode) {
        SIGNS_CASE(FL_SUM | FL_GRAD)
        SIGNS_CASE(FL_GRAD)
        SIGNS_CASE(FL_VAL | FL_GRAD)
        SIGNS_CASE(FL_VAL)
        SIGNS_CASE(FL_HESS)
        case FL_SUM:   /* writes nothing */
            return sq ? SFXS(signs_block)(1, FL_SUM, 0, p, bits, s, e, 0, sc, v, g, h)
                      : SFXS(signs_block)(0, FL_SUM, 0, p, bits, s, e, 0, sc, v, g, h);
        default: return 0.0;
    }
#undef SIGNS_CASE
}

/* A call's chunks of FL_CHUNK elements (fl_run_chunks): the check-and-pack
 * pass (bad: set by the first chunk that finds a bad label; later chunks
 * are skipped), then the kernel pass. */
typedef struct {
    int sq, mode, stream;
    const E *p, *t;
    SB *bits;
    fl_idx n;
    int head;
    E sc;
    E *v, *g, *h;
    int bad;
} SFXS(signs_job);

static double SFXS(signs_pack_chunk)(void *ctx, fl_idx c, int tid)
{
    SFXS(signs_job) *j = (SFXS(signs_job) *)ctx;
    fl_idx s = c * FL_CHUNK, e = s + FL_CHUNK < j->n ? s + FL_CHUNK : j->n;
    (void)tid;
    if (!__atomic_load_n(&j->bad, __ATOMIC_RELAXED) && SFXS(signs_pack)(j->t, s, e, j->bits))
        __atomic_store_n(&j->bad, 1, __ATOMIC_RELAXED);
    return 0.0;
}

static double SFXS(signs_kern_chunk)(void *ctx, fl_idx c, int tid)
{
    const SFXS(signs_job) *j = (const SFXS(signs_job) *)ctx;
    fl_idx s = c * FL_CHUNK, e = s + FL_CHUNK < j->n ? s + FL_CHUNK : j->n;
    (void)tid;
    return SFXS(signs_chunk)(j->sq, j->mode, j->stream, j->p, j->bits, s, e, j->head, j->sc,
                             j->v, j->g, j->h);
}

/* The whole call: the check-and-pack pass over every chunk, then (if every
 * label passed) the kernel pass.  Chunks and their partial sums as in the
 * elementwise driver: dynamic hand-out, sums added in chunk order (the same
 * bits whatever the thread count), the contention guard for default-thread
 * calls.  Returns 0 (done, *sum set), 1 (a bad or NaN label: nothing
 * written) or -1 (unknown mode, no memory: nothing written). */
static int SFXS(signs_run)(int sq, int mode, const E *p, const E *t, fl_idx n, E sc,
                           E *v, E *g, E *h, int reused, int nthreads, double *sum)
{
    if (mode != FL_SUM && mode != FL_VAL && mode != FL_GRAD && mode != (FL_SUM | FL_GRAD) &&
        mode != (FL_VAL | FL_GRAD) && mode != FL_HESS)
        return -1;
    const fl_idx nchunks = (n + FL_CHUNK - 1) / FL_CHUNK;
    const size_t nbits = (size_t)((n + L - 1) / L);
    SB stack_bits[2 * FL_CHUNK / L];
    double stack_part[256];
    if (nchunks == 1) {
        if (SFXS(signs_pack)(t, 0, n, stack_bits)) return 1;
        *sum = SFXS(signs_chunk)(sq, mode, 0, p, stack_bits, 0, n, 0, sc, v, g, h);
        return 0;
    }
    /* streaming stores for large caller buffers (not fresh arrays, whose
     * pages the kernel zeroes in cache on the first store): `head` elements
     * first, then 64-byte aligned stores */
    const E *o1 = (mode & FL_HESS) ? h : (mode & FL_GRAD) ? g : NULL;
    const uintptr_t a1 = (uintptr_t)o1;
    const int stream = FL_V_STREAM && reused && o1 != NULL && !(mode & FL_VAL) &&
                       (size_t)n * sizeof(E) >= FL_STREAM_BYTES && a1 % sizeof(E) == 0;
    const int head = stream ? (int)(((FL_VBYTES - a1 % FL_VBYTES) % FL_VBYTES) / sizeof(E)) : 0;
    SB *bits = nbits <= sizeof stack_bits / sizeof stack_bits[0]
        ? stack_bits : (SB *)malloc(nbits * sizeof(SB));
    double *part = nchunks <= 256 ? stack_part : (double *)malloc(sizeof(double) * (size_t)nchunks);
    if (!bits || !part) {
        if (bits != stack_bits) free(bits);
        if (part != stack_part) free(part);
        return -1;
    }
    int adaptive;
    nthreads = fl_unpack_threads(nthreads, &adaptive);
    int nt = fl_threads_for(nthreads, n, FL_MIN_PER_THREAD_LIGHT);
    if (adaptive && nt > 1 && fl_guard_solo()) nt = 1;
    /* two parallel loops: every label checked (and packed) before the
     * first output is written */
    SFXS(signs_job) job = { sq, mode, stream, p, t, bits, n, head, sc, v, g, h, 0 };
    fl_run_chunks(SFXS(signs_pack_chunk), &job, nchunks, nt, adaptive, part);
    const int bad = __atomic_load_n(&job.bad, __ATOMIC_RELAXED);
    if (!bad)
        fl_run_chunks(SFXS(signs_kern_chunk), &job, nchunks, nt, adaptive, part);
    double acc = 0.0;
    if (!bad)
        for (fl_idx c = 0; c < nchunks; c++) acc += part[c];
    if (bits != stack_bits) free(bits);
    if (part != stack_part) free(part);
    if (bad) return 1;
    *sum = acc;
    return 0;
}

#undef SBITS
#undef E
#undef V
#undef M
#undef L
#undef SB
#undef SFXS
#undef VX
#undef MX
#undef VACC
