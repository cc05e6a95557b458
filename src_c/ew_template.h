/* The elementwise driver for one floating type; included by elementwise.c
 * once with T = float and once with T = double (see there for the macros).
 *
 * Layers, from the inside out:
 *   SFX(k_<loss>)      scalar kernel (ew_kernels.h)
 *   EW_LOOP            one vectorized loop over contiguous operands, for one
 *                      kernel and one compile-time (mode, weighted) pair
 *   SFX(<loss>_block)  the 12 (mode, weighted) loops of one kernel, compiled
 *                      per ISA level (isa.h) -- the only per-loss machine code
 *   SFX(ew_run)        the generic driver: chunks, threads, N-d strided
 *                      iteration, gathering non-contiguous operands into
 *                      small buffers, deterministic partial sums.
 */

typedef struct { T a, b, c, d; } PRM;

#include "ew_kernels.h"

/* Contiguous operands of one block.  w, x may be NULL when unused. */
typedef struct {
    fl_idx n;
    const T *p, *t, *w, *x;
    T *v, *g, *h, *g1, *h1;        /* g1, h1: second derivative output (nd 2) */
    T scale;
    const PRM *prm;
} SFX(blk);

typedef double (*SFX(block_fn))(const SFX(blk) *b, int mode, int weighted);

/* One element: the kernel, NaN propagation, weights, and the stores MODE
 * asks for.  The value's contribution goes to SUMTO.
 * NaN propagation: a NaN in p or t, or p and t the same infinity (so that
 * d = p - t is inf - inf), gives NaN in every output -- dn = p - t is then
 * NaN, and is what is stored (one subtraction and one comparison: no more
 * than testing p and t separately). */
#define EW_CALL1(NAME, P, TT, X, PRM_, L, G, H, G1, H1) \
    SFX(k_##NAME)(P, TT, X, PRM_, L, G, H)
#define EW_CALL2(NAME, P, TT, X, PRM_, L, G, H, G1, H1) \
    SFX(k_##NAME)(P, TT, X, PRM_, L, G, H, G1, H1)
#define EW_BODY(NAME, AUX, ND, MODE, W, I, SUMTO)                              \
    {                                                                          \
        T pi = p_[I], ti = t_[I], li, gi, hi, g1i = 0, h1i = 0;                \
        EW_CALL##ND(NAME, pi, ti, (AUX) ? x_[I] : (T)1, &prm_, &li, &gi, &hi,  \
                    &g1i, &h1i);                                               \
        T dn_ = pi - ti;                                                       \
        int nan_ = dn_ != dn_;                                                 \
        T wi = (W) ? w_[I] : (T)1;                                             \
        if ((MODE) & (FL_SUM | FL_VAL)) {                                      \
            li = nan_ ? dn_ : li;                                              \
            T wl = (W) ? wi * li : li;                                         \
            if ((MODE) & FL_SUM) SUMTO += (double)wl;                          \
            if ((MODE) & FL_VAL) v_[I] = wl;                                   \
        }                                                                      \
        /* the coefficient scale * w; where it underflows to 0 (weights      \
         * spanning more than the dtype) (w * d) * scale, as the reference,  \
         * keeps an infinite derivative infinite */                          \
        T cw_ = (W) ? sc_ * wi : sc_;                                          \
        if ((MODE) & FL_GRAD) {                                                \
            gi = nan_ ? dn_ : gi;                                              \
            g_[I] = ((W) && cw_ == 0) ? (wi * gi) * sc_ : cw_ * gi;            \
            if ((ND) == 2) {                                                   \
                g1i = nan_ ? dn_ : g1i;                                        \
                g1_[I] = ((W) && cw_ == 0) ? (wi * g1i) * sc_ : cw_ * g1i;     \
            }                                                                  \
        }                                                                      \
        if ((MODE) & FL_HESS) {                                                \
            hi = nan_ ? dn_ : hi;                                              \
            h_[I] = ((W) && cw_ == 0) ? (wi * hi) * sc_ : cw_ * hi;            \
            if ((ND) == 2) {                                                   \
                h1i = nan_ ? dn_ : h1i;                                        \
                h1_[I] = ((W) && cw_ == 0) ? (wi * h1i) * sc_ : cw_ * h1i;     \
            }                                                                  \
        }                                                                      \
    }

/* One loop.  MODE and W are constants at every expansion, so the tests on
 * them vanish and only the stores the mode asks for remain.  The sum is a
 * vectorized reduction with a fixed width of EW_LANES partial sums (element
 * i in lane i % EW_LANES), so it rounds the same whatever the mode. */
#define EW_LANES 16
#define EW_LOOP(NAME, AUX, ND, MODE, W)                                        \
    do {                                                                       \
        const fl_idx n_ = b->n;                                                \
        const T *FL_RESTRICT p_ = b->p, *FL_RESTRICT t_ = b->t;                \
        const T *FL_RESTRICT w_ = b->w, *FL_RESTRICT x_ = b->x;                \
        T *FL_RESTRICT v_ = b->v, *FL_RESTRICT g_ = b->g, *FL_RESTRICT h_ = b->h; \
        T *FL_RESTRICT g1_ = b->g1, *FL_RESTRICT h1_ = b->h1;                  \
        (void)g1_; (void)h1_;                                                  \
        const T sc_ = b->scale;                                                \
        const PRM prm_ = *b->prm;                                              \
        double sum_ = 0.0;                                                     \
        _Pragma("omp simd reduction(+:sum_) simdlen(16)")                      \
        for (fl_idx i = 0; i < n_; i++)                                        \
            EW_BODY(NAME, AUX, ND, MODE, W, i, sum_)                               \
        acc += sum_;                                                           \
    } while (0)

/* One function per (kernel, mode, weighted): small functions keep GCC's
 * vectorizer reliable (one function holding all twelve loops of a large
 * kernel like sigmoid_focal left some of them scalar). */
#define EW_FN(NAME, AUX, ND, MODE, TAG, W)                                     \
    static double SFX(NAME##_##TAG##_##W)(const SFX(blk) *b)         \
    {                                                                          \
        double acc = 0.0;                                                      \
        EW_LOOP(NAME, AUX, ND, MODE, W);                                       \
        return acc;                                                            \
    }
#define EW_FNS(NAME, AUX, ND, MODE, TAG) \
    EW_FN(NAME, AUX, ND, MODE, TAG, 0) EW_FN(NAME, AUX, ND, MODE, TAG, 1)
#define EW_CASE(NAME, MODE, TAG)                                               \
    case ((MODE) << 1):     return SFX(NAME##_##TAG##_0)(b);                   \
    case ((MODE) << 1) | 1: return SFX(NAME##_##TAG##_1)(b);

/* The mode combinations the API uses. */
#define EW_DEFINE_BLOCK(NAME, AUX, HEAVY, ND)                                  \
    EW_FNS(NAME, AUX, ND, FL_SUM, s)                                           \
    EW_FNS(NAME, AUX, ND, FL_VAL, v)                                           \
    EW_FNS(NAME, AUX, ND, FL_GRAD, g)                                          \
    EW_FNS(NAME, AUX, ND, FL_SUM | FL_GRAD, sg)                                \
    EW_FNS(NAME, AUX, ND, FL_VAL | FL_GRAD, vg)                                \
    EW_FNS(NAME, AUX, ND, FL_HESS, h)                                          \
    EW_FNS(NAME, AUX, ND, FL_GRAD | FL_HESS, gh)                               \
    static double SFX(NAME##_block)(const SFX(blk) *b, int mode, int weighted) \
    {                                                                          \
        switch ((mode << 1) | (weighted ? 1 : 0)) {                            \
            EW_CASE(NAME, FL_SUM, s)                                           \
            EW_CASE(NAME, FL_VAL, v)                                           \
            EW_CASE(NAME, FL_GRAD, g)                                          \
            EW_CASE(NAME, FL_SUM | FL_GRAD, sg)                                \
            EW_CASE(NAME, FL_VAL | FL_GRAD, vg)                                \
            EW_CASE(NAME, FL_HESS, h)                                          \
            EW_CASE(NAME, FL_GRAD | FL_HESS, gh)                               \
            default: return 0.0;                                               \
        }                                                                      \
    }

FL_EW_LOSSES(EW_DEFINE_BLOCK)

#define EW_TABLE_ROW(NAME, AUX, HEAVY, ND) SFX(NAME##_block),
static const SFX(block_fn) SFX(ew_blocks)[FL_EW_NKERNELS] = { FL_EW_LOSSES(EW_TABLE_ROW) };
#undef EW_TABLE_ROW
#define EW_TABLE_ROW(NAME, AUX, HEAVY, ND) HEAVY,
static const int SFX(ew_heavy)[FL_EW_NKERNELS] = { FL_EW_LOSSES(EW_TABLE_ROW) };
#undef EW_TABLE_ROW
#define EW_TABLE_ROW(NAME, AUX, HEAVY, ND) ND,
static const int SFX(ew_nd)[FL_EW_NKERNELS] = { FL_EW_LOSSES(EW_TABLE_ROW) };
#undef EW_TABLE_ROW

/* Elements gathered per block when an operand is not contiguous. */
#define EW_GATHER 512

static int SFX(is_mode_known)(int mode)
{
    return mode == FL_SUM || mode == FL_VAL || mode == FL_GRAD ||
           mode == (FL_SUM | FL_GRAD) || mode == (FL_VAL | FL_GRAD) ||
           mode == FL_HESS || mode == (FL_GRAD | FL_HESS);
}

/* Gather n elements at stride s (elements) into buf; returns a pointer to
 * contiguous data (src itself when s == 1). */
static inline const T *SFX(gather)(const T *src, fl_idx s, fl_idx n, T *buf)
{
    if (s == 1) return src;
    if (s == 0) {
        T v = *src;
        for (fl_idx i = 0; i < n; i++) buf[i] = v;
    } else {
        for (fl_idx i = 0; i < n; i++) buf[i] = src[i * s];
    }
    return buf;
}

/* n elements of type `type` at stride s, converted to T in buf (as NumPy's
 * astype rounds: to nearest).  A broadcast operand (s == 0) is converted
 * once; contiguous ones by a vectorized loop (cloned per ISA as the
 * kernels are). */
#define EW_CONVERT(CT)                                                          \
    {                                                                           \
        const CT *FL_RESTRICT q = (const CT *)src;                              \
        if (s == 0) {                                                           \
            const T v = (T)q[0];                                                \
            for (fl_idx i = 0; i < n; i++) buf[i] = v;                          \
        } else if (s == 1) {                                                    \
            _Pragma("omp simd")                                                 \
            for (fl_idx i = 0; i < n; i++) buf[i] = (T)q[i];                    \
        } else {                                                                \
            for (fl_idx i = 0; i < n; i++) buf[i] = (T)q[i * s];                \
        }                                                                       \
        return buf;                                                             \
    }
static const T *SFX(load)(const char *src, int type, fl_idx s, fl_idx n,
                                    T *FL_RESTRICT buf)
{
    switch (type) {
    case FL_E_F32: EW_CONVERT(float)
    case FL_E_F64: EW_CONVERT(double)
    case FL_E_I8:  EW_CONVERT(int8_t)
    case FL_E_I16: EW_CONVERT(int16_t)
    case FL_E_I32: EW_CONVERT(int32_t)
    case FL_E_I64: EW_CONVERT(int64_t)
    case FL_E_U8:  EW_CONVERT(uint8_t)
    case FL_E_U16: EW_CONVERT(uint16_t)
    case FL_E_U32: EW_CONVERT(uint32_t)
    case FL_E_U64: EW_CONVERT(uint64_t)
    default: return SFX(gather)((const T *)src, s, n, buf);
    }
}
#undef EW_CONVERT

/* Elements per kernel call when every operand is read in place (and no
 * scratch output is needed): long enough that the call's set-up and the
 * vector loop's remainder and reduction cost little (blocks of EW_GATHER
 * made 1e5-element calls ~30 % slower than whole rows); a streamed call
 * computes its blocks into a stack buffer of this size, then copies them
 * to the output by streaming stores.  A given layout uses the same blocks
 * streamed or not, so the sums round alike on both paths. */
#define EW_BIG 4096

/* Process the flat C-order index range [start, end) of the iteration space.
 * stream: the one output (grad or hess) is written by streaming stores
 * (contiguous rows; see ew_run).  nd: the kernel's derivative outputs; a
 * derivative output the call does not want (NULL while the mode writes
 * that kind) is written to a scratch block instead. */
static double SFX(ew_range)(SFX(block_fn) fn, int mode, int nd, const PRM *prm,
                            const fl_ew_args *a, fl_idx start, fl_idx end, int stream)
{
    const int nd_ = a->ndim, last = nd_ - 1;
    /* operands as bytes with their element sizes; an operand of the
     * compute type is read in place where contiguous, any other is
     * converted block by block (SFX(load)) */
    const char *base[FL_EW_NOPS];
    size_t esz[FL_EW_NOPS];
    int typ[FL_EW_NOPS];
    for (int k = 0; k < FL_EW_NOPS; k++) {
        base[k] = (const char *)a->in[k];
        typ[k] = a->type[k] == SFX(FL_E_SELF) ? FL_E_OWN : a->type[k];
        esz[k] = typ[k] == FL_E_OWN ? sizeof(T) : fl_elem_size(typ[k]);
    }
    const int has_w = base[FL_EW_W] != NULL, has_x = base[FL_EW_X] != NULL;
    T *V = (T *)a->val;
    T *G = (T *)a->grad[0], *H = (T *)a->hess[0];
    T *G1 = (T *)a->grad[1], *H1 = (T *)a->hess[1];
    fl_idx idx[FL_MAXDIM];
    fl_idx rem = start;
    for (int k = last; k >= 0; k--) {           /* unravel start */
        fl_idx s = a->shape[k];
        idx[k] = rem % s;
        rem /= s;
    }
    T bp[EW_GATHER], bt[EW_GATHER], bw[EW_GATHER], bx[EW_GATHER];
    T *bufs[FL_EW_NOPS];
    bufs[FL_EW_P] = bp; bufs[FL_EW_T] = bt; bufs[FL_EW_X] = bx; bufs[FL_EW_W] = bw;
    /* scratch for unwanted derivative outputs (nd == 2 and a wrt subset) */
    T scr_g[EW_GATHER], scr_h[EW_GATHER];
    const int want_g = (mode & FL_GRAD) != 0, want_h = (mode & FL_HESS) != 0;
    int *const chk_bad = a->chk_bad;
    const int chk_op = a->chk_op, chk_open = a->chk_open;
    const T chk_lo = (T)a->chk_lo, chk_hi = (T)a->chk_hi;
    double acc = 0.0;
    fl_idx pos = start;
    while (pos < end) {
        if (chk_bad && __atomic_load_n(chk_bad, __ATOMIC_RELAXED)) break;
        const char *row[FL_EW_NOPS];
        fl_idx inner[FL_EW_NOPS];
        int contiguous = 1;
        fl_idx j = idx[last];
        for (int k = 0; k < FL_EW_NOPS; k++) {
            row[k] = NULL;
            inner[k] = a->s[k][last];
            if (!base[k]) continue;
            fl_idx off = j * inner[k];
            for (int q = 0; q < last; q++) off += idx[q] * a->s[k][q];
            row[k] = base[k] + off * (fl_idx)esz[k];
            contiguous &= inner[k] == 1 && typ[k] == FL_E_OWN;
        }
        fl_idx len = a->shape[last] - j;
        if (len > end - pos) len = end - pos;
        SFX(blk) b;
        b.scale = (T)a->scale;
        b.prm = prm;
        const int scratch = (want_g && (!G || (nd == 2 && !G1))) ||
                            (want_h && (!H || (nd == 2 && !H1)));
        const fl_idx step = contiguous && !scratch ? EW_BIG : EW_GATHER;
        T sbuf[EW_BIG] __attribute__((aligned(64)));
        T *dst = stream ? (G ? G + pos : H + pos) : NULL;
        for (fl_idx o = 0; o < len; o += step) {
            fl_idx m = len - o < step ? len - o : step;
            b.n = m;
            const T *in_[FL_EW_NOPS] = { NULL, NULL, NULL, NULL };
            for (int k = 0; k < FL_EW_NOPS; k++) {
                if (!row[k]) continue;
                const char *src = row[k] + o * inner[k] * (fl_idx)esz[k];
                in_[k] = contiguous ? (const T *)src
                                    : SFX(load)(src, typ[k], inner[k], m, bufs[k]);
            }
            if (chk_bad && SFX(fl_outside_any)(in_[chk_op], m, chk_lo, chk_hi, chk_open & 1, chk_open >> 1)) {
                __atomic_store_n(chk_bad, 1, __ATOMIC_RELAXED);
                break;
            }
            b.p = in_[FL_EW_P]; b.t = in_[FL_EW_T];
            b.w = has_w ? in_[FL_EW_W] : NULL; b.x = has_x ? in_[FL_EW_X] : NULL;
            if (stream) {
                b.v = NULL;
                b.g = G ? sbuf : NULL;
                b.h = H ? sbuf : NULL;
                b.g1 = b.h1 = NULL;
            } else {
                const fl_idx at = pos + o;
                b.v = V ? V + at : NULL;
                b.g = G ? G + at : (want_g ? scr_g : NULL);
                b.h = H ? H + at : (want_h ? scr_h : NULL);
                b.g1 = G1 ? G1 + at : (want_g && nd == 2 ? scr_g : NULL);
                b.h1 = H1 ? H1 + at : (want_h && nd == 2 ? scr_h : NULL);
            }
            acc += fn(&b, mode, has_w);
            if (stream) SFX(fl_stream_copy)(dst + o, sbuf, m);
        }
        pos += len;
        idx[last] = 0;                           /* next row */
        for (int k = last - 1; k >= 0; k--) {
            if (++idx[k] < a->shape[k]) break;
            idx[k] = 0;
        }
    }
    if (stream) fl_stream_fence();
    return acc;
}

/* A parallel call's chunks (fl_run_chunks). */
typedef struct {
    SFX(block_fn) fn;
    int mode, nd;
    const PRM *prm;
    const fl_ew_args *a;
    fl_idx chunk, n;
    int stream;
} SFX(ew_job);

static double SFX(ew_chunk)(void *ctx, fl_idx c, int tid)
{
    const SFX(ew_job) *j = (const SFX(ew_job) *)ctx;
    fl_idx s = c * j->chunk, e = s + j->chunk < j->n ? s + j->chunk : j->n;
    (void)tid;
    return SFX(ew_range)(j->fn, j->mode, j->nd, j->prm, j->a, s, e, j->stream);
}

static double SFX(ew_run)(int kernel, int mode, const fl_params *params,
                          const fl_ew_args *a, int nthreads)
{
    if (kernel < 0 || kernel >= FL_EW_NKERNELS || !SFX(is_mode_known)(mode))
        return 0.0;
    fl_idx n = 1;
    for (int k = 0; k < a->ndim; k++) n *= a->shape[k];
    if (n <= 0) return 0.0;
    PRM prm = { (T)params->a, (T)params->b, (T)params->c, (T)params->d };
    SFX(block_fn) fn = SFX(ew_blocks)[kernel];
    const fl_idx chunk = SFX(ew_heavy)[kernel] ? FL_CHUNK_HEAVY : FL_CHUNK;
    fl_idx nchunks = (n + chunk - 1) / chunk;
    /* streaming stores: one large caller output (grad or hess, no value
     * array), memory-bound kernels only (measured: float64 +15-20 %,
     * float32 0-7 %; a transcendental kernel lost 12 % to the copy) */
    const int nd = SFX(ew_nd)[kernel];
    const int stream = a->stream && !SFX(ew_heavy)[kernel] && !(mode & FL_VAL) && nd == 1 &&
                       (a->grad[0] != NULL) + (a->hess[0] != NULL) == 1 &&
                       (size_t)n * sizeof(T) >= FL_STREAM_BYTES;
    if (nchunks == 1)
        return SFX(ew_range)(fn, mode, nd, &prm, a, 0, n, 0);

    int adaptive;
    nthreads = fl_unpack_threads(nthreads, &adaptive);
    int nt = fl_threads_for(nthreads, n, SFX(ew_heavy)[kernel] ?
                            FL_MIN_PER_THREAD_HEAVY : FL_MIN_PER_THREAD_LIGHT);
    if (adaptive && nt > 1 && fl_guard_solo()) nt = 1;
    double stack_part[256];
    double *part = nchunks <= 256 ? stack_part : (double *)malloc(sizeof(double) * (size_t)nchunks);
    if (!part) {                  /* no memory for partials: one thread, one pass */
        return SFX(ew_range)(fn, mode, nd, &prm, a, 0, n, stream);
    }
    SFX(ew_job) job = { fn, mode, nd, &prm, a, chunk, n, stream };
    fl_run_chunks(SFX(ew_chunk), &job, nchunks, nt, adaptive, part);
    double acc = 0.0;
    for (fl_idx c = 0; c < nchunks; c++) acc += part[c];
    if (part != stack_part) free(part);
    return acc;
}

#undef EW_LOOP
#undef EW_BODY
#undef EW_CALL1
#undef EW_CALL2
#undef EW_LANES
#undef EW_CASE
#undef EW_FN
#undef EW_FNS
#undef EW_DEFINE_BLOCK
#undef EW_GATHER
#undef EW_BIG
