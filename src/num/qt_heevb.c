/* Batched Hermitian eigensolver: zhetd2-style Householder tridiagonalisation, zsteqr-style
 * implicit QL with Wilkinson shifts and back-transformation, each lane a different matrix. */
#include "qt_heevb.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_lapack.h"

#if defined(__x86_64__)
#    include <immintrin.h>
#endif

/* Matrices per group: one per lane of a 512-bit vector. In the SSE2 clone the compiler splits
 * each vector operation into four, which keeps a single source for every clone. */
#define LANES 8
/* Groups per kernel call. The QL sweep is a chain of dependent operations whose latency
 * dominates; two groups' independent chains side by side keep the vector units busy. */
#define GROUPS 2

typedef double qt_v8d __attribute__((vector_size(LANES * sizeof(double))));
/* Lane masks: all ones or all zeros per lane. They are made from sign bits by an arithmetic
 * shift, never by vector comparisons: gcc 12 lowers the bodies of target_clones functions for
 * the baseline target before cloning, and there a comparison yielding an 8 x 64-bit mask is
 * scalarised, lane by lane, in every clone. Shifts and bitwise logic survive intact. */
typedef int64_t qt_v8m __attribute__((vector_size(LANES * sizeof(int64_t))));

/* The helpers below are inlined into the multi-versioned kernel so that they are compiled for
 * its target; they never take or return vectors by value, because clang rejects that across
 * the target boundary (the vector ABI differs with and without AVX-512). */
#define INLINE static inline __attribute__((always_inline))

#define VSPLAT(x)     ((qt_v8d){(x), (x), (x), (x), (x), (x), (x), (x)})
#define VSEL(m, a, b) ((qt_v8d)(((m) & (qt_v8m)(a)) | (~(m) & (qt_v8m)(b))))
#define VABS(x)       ((qt_v8d)((qt_v8m)(x) & ~(qt_v8m)VSPLAT(-0.0)))
/* x < 0 or x == -0.0; for finite a and b, a - b is zero only when a == b (gradual underflow)
 * and keeps its sign when it overflows, so VLT is an exact a < b. */
#define VNEG(x)    ((qt_v8m)(x) >> 63)
#define VLT(a, b)  VNEG((a) - (b))
#define VMAX(a, b) VSEL(VLT(a, b), (b), (a))
#define VMIN(a, b) VSEL(VLT(a, b), (a), (b))
/* Every lane of v becomes OP(v[0], ..., v[7]), OP being VMIN or VMAX. */
#define VREDUCE(v, OP)                                                     \
    do {                                                                   \
        qt_v8d t_ = __builtin_shufflevector(v, v, 4, 5, 6, 7, 0, 1, 2, 3); \
        v = OP(v, t_);                                                     \
        t_ = __builtin_shufflevector(v, v, 2, 3, 0, 1, 6, 7, 4, 5);        \
        v = OP(v, t_);                                                     \
        t_ = __builtin_shufflevector(v, v, 1, 0, 3, 2, 5, 4, 7, 6);        \
        v = OP(v, t_);                                                     \
    } while (0)
/* res = whether any lane of the mask m is set, by folding halves together. */
#define VANY(m, res)                                                   \
    do {                                                               \
        qt_v8m m_ = (m);                                               \
        m_ |= __builtin_shufflevector(m_, m_, 4, 5, 6, 7, 0, 1, 2, 3); \
        m_ |= __builtin_shufflevector(m_, m_, 2, 3, 0, 1, 6, 7, 4, 5); \
        m_ |= __builtin_shufflevector(m_, m_, 1, 0, 3, 2, 5, 4, 7, 6); \
        (res) = m_[0] != 0;                                            \
    } while (0)

/* Vector square root. A plain per-lane __builtin_sqrt loop would call libm for errno's sake
 * (the project does not build with -fno-math-errno), and an AVX-512 intrinsic cannot be named
 * in a function compiled for several targets. So the AVX-512 instruction is reached through a
 * helper with its own target, picked by CPUID at each use: the test is always predicted, the
 * resolver has chosen the AVX-512 clone exactly when it passes, and there the helper is
 * inlined (elsewhere it is a call that never runs). Other CPUs use SSE2, part of x86-64. */
#if defined(__x86_64__)
typedef double qt_v2d __attribute__((vector_size(16)));
typedef double qt_v4d __attribute__((vector_size(32)));

__attribute__((target("avx512f"))) static inline void sqrt_avx512(qt_v8d *x)
{
    *x = (qt_v8d)_mm512_sqrt_pd((__m512d)*x);
}

static inline void sqrt_sse2(qt_v8d *x)
{
    qt_v2d a = (qt_v2d)_mm_sqrt_pd((__m128d)__builtin_shufflevector(*x, *x, 0, 1));
    qt_v2d b = (qt_v2d)_mm_sqrt_pd((__m128d)__builtin_shufflevector(*x, *x, 2, 3));
    qt_v2d c = (qt_v2d)_mm_sqrt_pd((__m128d)__builtin_shufflevector(*x, *x, 4, 5));
    qt_v2d d = (qt_v2d)_mm_sqrt_pd((__m128d)__builtin_shufflevector(*x, *x, 6, 7));
    qt_v4d lo = __builtin_shufflevector(a, b, 0, 1, 2, 3);
    qt_v4d hi = __builtin_shufflevector(c, d, 0, 1, 2, 3);

    *x = __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
}

#    define VSQRT(dst, x)                          \
        do {                                       \
            qt_v8d x_ = (x);                       \
            if (__builtin_cpu_supports("avx512f")) \
                sqrt_avx512(&x_);                  \
            else                                   \
                sqrt_sse2(&x_);                    \
            (dst) = x_;                            \
        } while (0)
/* AVX-512 for the lanes, SSE2 (baseline x86-64) otherwise. There is no AVX2 clone: gcc 12
 * emulates the 64-bit arithmetic shifts of the lane masks so badly without AVX-512 (spilling
 * through the stack lane by lane) that such a clone ran slower than the SSE2 one. */
#    define KERNEL_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#    define VSQRT(dst, x)                      \
        do {                                   \
            qt_v8d x_ = (x);                   \
            for (int k_ = 0; k_ < LANES; k_++) \
                (dst)[k_] = sqrt(x_[k_]);      \
        } while (0)
#    define KERNEL_CLONES
#endif

/* Power-of-two thresholds that keep sums of squares clear of underflow: a vector whose largest
 * entry is below SMALL1 (SMALL2) is scaled up by BIG1 (BIG2) first, exactly. */
#define SMALL1 0x1p-300
#define BIG1   0x1p+400
#define SMALL2 0x1p-700
#define BIG2   0x1p+800

/* One group of LANES matrices in structure-of-arrays form: element (r, c) of every lane is the
 * vector at index r + c*n. */
struct grp {
    size_t n;
    qt_v8d *ar, *ai; /* lower triangle of the input, then the Householder vectors below the
                        subdiagonal (column i holds v_i in rows i+1.., with v_i[i+1] = 1) */
    qt_v8d *zr, *zi; /* eigenvectors, and a spare column (see reflect_pair) */
    qt_v8d *d, *e;   /* tridiagonal matrix (e[i] couples i and i+1); eigenvalues end in d */
    qt_v8d *tr, *ti; /* Householder scalars */
    qt_v8d *yr, *yi; /* scratch vector for the rank-2 update */
    qt_v8d *scale;   /* two factors whose product scales each lane (see load_group) */
};

/* Vectors one group needs: A and Z (with a spare column), and eight short ones. */
#define GRP_VECTORS(n) (4 * (n) * (n) + 8 * (n) + 2)

/* Points the arrays of g into mem, which holds GRP_VECTORS(n) vectors. */
static void grp_init(struct grp *g, size_t n, qt_v8d *mem)
{
    g->n = n;
    g->ar = mem;
    g->ai = g->ar + n * n;
    g->zr = g->ai + n * n;
    g->zi = g->zr + n * (n + 1);
    g->d = g->zi + n * (n + 1);
    g->e = g->d + n;
    g->tr = g->e + n;
    g->ti = g->tr + n;
    g->yr = g->ti + n;
    g->yi = g->yr + n;
    g->scale = g->yi + n;
}

/* Scale factors for a vector whose largest |entry| is mx (see SMALL1). */
#define UNDERFLOW_SCALE(mx, sc, isc)                                                       \
    do {                                                                                   \
        qt_v8m s1_ = VLT(mx, SMALL1), s2_ = VLT(mx, SMALL2);                               \
        (sc) = VSEL(s2_, VSPLAT(BIG2), VSEL(s1_, VSPLAT(BIG1), VSPLAT(1.0)));              \
        (isc) = VSEL(s2_, VSPLAT(1.0 / BIG2), VSEL(s1_, VSPLAT(1.0 / BIG1), VSPLAT(1.0))); \
    } while (0)

/* Householder reflector for column i (zlarfg): H^H x = (beta, 0, ..., 0) with beta real,
 * H = I - tau v v^H. The column is scaled by a power of two first so that its sum of squares
 * can neither underflow nor lose accuracy; tau and v do not depend on that scale. */
INLINE void reflector(const struct grp *g, size_t i)
{
    const size_t n = g->n, m0 = i + 1;
    qt_v8d *restrict xr = g->ar + i * n, *restrict xi = g->ai + i * n;
    qt_v8d mx = VSPLAT(0.0), sc, isc, xn2 = VSPLAT(0.0);

    for (size_t k = m0; k < n; k++) {
        qt_v8d a = VABS(xr[k]), b = VABS(xi[k]);

        mx = VMAX(mx, a);
        mx = VMAX(mx, b);
    }
    UNDERFLOW_SCALE(mx, sc, isc);
    qt_v8d alr = xr[m0] * sc, ali = xi[m0] * sc;
    for (size_t k = m0 + 1; k < n; k++) {
        xr[k] *= sc;
        xi[k] *= sc;
        xn2 += xr[k] * xr[k] + xi[k] * xi[k];
    }
    /* Lanes with nothing to annihilate get H = I (tau = 0), as in zlarfg; they compute with
     * harmless stand-in values so that no lane ever divides by zero. */
    qt_v8m none = VLT(xn2 + VABS(ali), 0x1p-1074);
    qt_v8d nrm;
    VSQRT(nrm, alr * alr + ali * ali + xn2);
    qt_v8d beta = VSEL(none, VSPLAT(1.0), VSEL(VNEG(alr), nrm, -nrm));
    qt_v8d binv = 1.0 / beta, dr = alr - beta;
    qt_v8d dinv = 1.0 / VSEL(none, VSPLAT(1.0), dr * dr + ali * ali);
    qt_v8d sr = VSEL(none, VSPLAT(1.0), dr * dinv), si = VSEL(none, VSPLAT(0.0), -ali * dinv);
    for (size_t k = m0 + 1; k < n; k++) {
        qt_v8d a = xr[k], b = xi[k];

        xr[k] = a * sr - b * si;
        xi[k] = a * si + b * sr;
    }
    xr[m0] = VSPLAT(1.0);
    xi[m0] = VSPLAT(0.0);
    g->tr[i] = VSEL(none, VSPLAT(0.0), (beta - alr) * binv);
    g->ti[i] = VSEL(none, VSPLAT(0.0), -ali * binv);
    g->e[i] = VSEL(none, alr, beta) * isc;
}

/* A22 := H^H A22 H for the trailing matrix of step i (zhetd2): y = tau A22 v,
 * w = y - (tau/2)(y^H v) v, A22 -= v w^H + w v^H, on the lower triangle. */
INLINE void rank2_update(const struct grp *g, size_t i)
{
    const size_t n = g->n, m0 = i + 1;
    const qt_v8d *restrict vr = g->ar + i * n, *restrict vi = g->ai + i * n;
    qt_v8d *restrict yr = g->yr, *restrict yi = g->yi;
    const qt_v8d taur = g->tr[i], taui = g->ti[i];

    for (size_t k = m0; k < n; k++)
        yr[k] = yi[k] = VSPLAT(0.0);
    for (size_t j = m0; j < n; j++) {
        const qt_v8d *restrict cr = g->ar + j * n, *restrict ci = g->ai + j * n;
        qt_v8d tr = vr[j], ti = vi[j];
        qt_v8d sr = cr[j] * tr, si = cr[j] * ti, sr2 = VSPLAT(0.0), si2 = VSPLAT(0.0);

        for (size_t k = j + 1; k < n; k++) {
            yr[k] += cr[k] * tr - ci[k] * ti;
            yi[k] += cr[k] * ti + ci[k] * tr;
            sr += cr[k] * vr[k];
            sr2 += ci[k] * vi[k];
            si += cr[k] * vi[k];
            si2 -= ci[k] * vr[k];
        }
        yr[j] += sr + sr2;
        yi[j] += si + si2;
    }
    qt_v8d dr = VSPLAT(0.0), di = VSPLAT(0.0);
    for (size_t k = m0; k < n; k++) {
        qt_v8d a = yr[k], b = yi[k];

        yr[k] = taur * a - taui * b;
        yi[k] = taur * b + taui * a;
        dr += yr[k] * vr[k] + yi[k] * vi[k];
        di += yr[k] * vi[k] - yi[k] * vr[k];
    }
    /* alpha = -tau (y^H v) / 2; w = y + alpha v overwrites y. */
    qt_v8d alr = -0.5 * (taur * dr - taui * di), ali = -0.5 * (taur * di + taui * dr);
    for (size_t k = m0; k < n; k++) {
        yr[k] += alr * vr[k] - ali * vi[k];
        yi[k] += alr * vi[k] + ali * vr[k];
    }
    for (size_t j = m0; j < n; j++) {
        qt_v8d *restrict cr = g->ar + j * n, *restrict ci = g->ai + j * n;
        qt_v8d vrj = vr[j], vij = vi[j], wrj = yr[j], wij = yi[j];

        cr[j] -= 2.0 * (vrj * wrj + vij * wij);
        for (size_t k = j + 1; k < n; k++) {
            cr[k] -= (vr[k] * wrj + vi[k] * wij) + (yr[k] * vrj + yi[k] * vij);
            ci[k] -= (vi[k] * wrj - vr[k] * wij) + (yi[k] * vrj - yr[k] * vij);
        }
    }
}

/* Q^H A Q = T with Q = H(0) H(1) ... H(n-2); T's diagonal goes to d, its subdiagonal to e. */
INLINE void tridiagonalise(const struct grp *g)
{
    const size_t n = g->n;
    const qt_v8d s1 = g->scale[0], s2 = g->scale[1];

    for (size_t c = 0; c < n; c++)
        for (size_t r = c; r < n; r++) {
            g->ar[r + c * n] = g->ar[r + c * n] * s1 * s2;
            g->ai[r + c * n] = g->ai[r + c * n] * s1 * s2;
        }

    for (size_t i = 0; i + 1 < n; i++) {
        g->d[i] = g->ar[i + i * n];
        reflector(g, i);
        rank2_update(g, i);
    }
    g->d[n - 1] = g->ar[(n - 1) + (n - 1) * n];
    g->e[n - 1] = VSPLAT(0.0);
}

/* Per-lane state of the QL iteration: the unreduced block [lo, hi] each lane works on, its
 * sweep count, and the shift inputs gathered from the block. Indices are small integers held
 * exactly in doubles, so that they live in vectors. */
struct ql_state {
    qt_v8d lo, hi, it;
    qt_v8d dl, dl1, el, dm; /* d[lo], d[lo+1], e[lo], d[hi] */
};

/* Which lanes a sweep touches at index i, as intervals: lane l rotates at i when
 * |i - ctr[l]| <= rad[l] (lo <= i < hi), stores e[i+1] when |i - ctr2[l]| <= rad2[l]
 * (lo <= i < hi-1) and finishes at i == lo_act[l]. Inactive lanes have negative radii and
 * lo_act = -1. This costs one sign test per mask in the inner loop. */
struct ql_lanes {
    qt_v8d ctr, rad, ctr2, rad2, lo_act;
};

/* One pass over the subdiagonal from index `from` (no lane's lo is below it), the splitting
 * test for all lanes at once: zeroes negligible e[j], moves each lo past converged
 * eigenvalues, finds the end hi of the block starting at lo (hi stays -1 until found) and
 * gathers the values the shift needs.
 *
 * e[j] is negligible by dsteqr's relative test, or when |e[j]| < eps: load_group scaled the
 * largest |a_ij| into [1, 2), so that is below eps ||A||_2 and moves no eigenvalue by more
 * than the reduction to tridiagonal form already may (EISPACK's tql2 uses this absolute test
 * alone). Without it, the near-zero eigenvalues of low-rank density matrices were resolved to
 * full relative accuracy that the dense input never had, at 20% more time. */
INLINE void ql_scan(const struct grp *g, struct ql_state *st, size_t from)
{
    const size_t n = g->n;
    const double eps2 = 0x1p-106, eps = 0x1p-53, safmin = DBL_MIN;
    qt_v8d *restrict d = g->d, *restrict e = g->e;
    qt_v8d lo = st->lo, hi = VSPLAT(-1.0), dm = d[n - 1];
    qt_v8d dl = VSPLAT(0.0), dl1 = VSPLAT(1.0), el = VSPLAT(1.0);

    for (size_t j = from; j + 1 < n; j++) {
        const qt_v8d fj = VSPLAT((double)j), dj = d[j], dj1 = d[j + 1], ej = e[j];
        const qt_v8m sm =
            ~VLT((eps2 * VABS(dj)) * VABS(dj1) + safmin, ej * ej) | VLT(VABS(ej), VSPLAT(eps));
        const qt_v8m at = VLT(VABS(lo - fj), 0.5);

        e[j] = VSEL(sm, VSPLAT(0.0), ej);
        /* At lo: a negligible e[lo] means d[lo] has converged; otherwise the block starts. */
        dl = VSEL(at & ~sm, dj, dl);
        dl1 = VSEL(at & ~sm, dj1, dl1);
        el = VSEL(at & ~sm, ej, el);
        lo = VSEL(at & sm, fj + 1.0, lo);
        /* The first negligible e[j] at or after lo ends the block. */
        const qt_v8m hit = sm & ~VLT(fj, lo) & VNEG(hi);
        dm = VSEL(hit, dj, dm);
        hi = VSEL(hit, fj, hi);
    }
    st->lo = lo;
    st->hi = VSEL(VNEG(hi), VSPLAT((double)(n - 1)), hi);
    st->dl = dl;
    st->dl1 = dl1;
    st->el = el;
    st->dm = dm;
}

/* dlartg(g, f) with both scaled by a power of two first: r = hypot(g, f), c = g / r,
 * s = f / r. The slow path of ql_rotate, for when g^2 + f^2 is so small that it has lost
 * accuracy to underflow. */
INLINE void rotation_scaled(const qt_v8d *g, const qt_v8d *f, qt_v8d *r, qt_v8d *c, qt_v8d *s)
{
    qt_v8d ag = VABS(*g), af = VABS(*f), mx = VMAX(ag, af), sc, isc, rs;

    UNDERFLOW_SCALE(mx, sc, isc);
    qt_v8d gs = *g * sc, fs = *f * sc;
    VSQRT(rs, gs * gs + fs * fs);
    qt_v8m rz = VLT(rs, 0x1p-1074);
    qt_v8d rinv = 1.0 / VSEL(rz, VSPLAT(1.0), rs);
    *c = VSEL(rz, VSPLAT(1.0), gs * rinv);
    *s = fs * rinv;
    *r = rs * isc;
}

/* The running values of one group's QL sweep (dsteqr's c, s, p and g). */
struct ql_chain {
    qt_v8d c, s, p, g;
};

/* Starts a sweep: the Wilkinson shift from the leading 2 x 2 block of each lane's block, with
 * r = hypot(gs, 1) computed without overflow. */
INLINE void ql_shift(const struct ql_state *st, const struct ql_lanes *ln, struct ql_chain *ch)
{
    const qt_v8d one = VSPLAT(1.0), el = VSEL(VNEG(ln->rad), one, st->el);
    qt_v8d gs = (st->dl1 - st->dl) / (2.0 * el), ags = VABS(gs), r;

    VSQRT(r, gs * gs + 1.0);
    r = VSEL(VLT(0x1p500, ags), ags, r);
    ch->g = st->dm - st->dl + el / (gs + VSEL(VNEG(gs), -r, r));
    ch->c = one;
    ch->s = one;
    ch->p = VSPLAT(0.0);
}

/* One step of the sweep at index i: the rotation (returned as the factors cz, sz to apply to
 * Z, the identity in lanes not rotating at i) and the update of d and e. This is a chain of
 * dependent operations whose latency is what counts, so: 2 c_old e[i] is ready early; lanes
 * not rotating compute garbage (even NaN) that is never selected; and the scaled computation
 * runs only when some lane needs it, and is used only in those lanes, so that no lane's
 * result depends on its neighbours. c = g / r, s = f / r divide by the root as dlartg does:
 * taking 1 / (g^2 + f^2) beside the root instead was 5% faster but doubled the residual at
 * n = 16. Within a lane's block f = s e[i] is never 0, so r > 0. */
INLINE void ql_rotate(const struct grp *g, const struct ql_lanes *ln, size_t i, struct ql_chain *ch,
                      qt_v8d *cz, qt_v8d *sz)
{
    qt_v8d *restrict d = g->d, *restrict e = g->e;
    const qt_v8d fi = VSPLAT((double)i);
    const qt_v8m a = ~VLT(ln->rad, VABS(fi - ln->ctr));
    qt_v8d f = ch->s * e[i], b = ch->c * e[i], gv = ch->g, rs, cn, sn;
    qt_v8d b2 = b + b, x = gv * gv + f * f, rinv;
    const qt_v8m tiny = VLT(x, 0x1p-968) & a;
    bool any;

    VSQRT(rs, x);
    rinv = 1.0 / rs;
    cn = gv * rinv;
    sn = f * rinv;
    VANY(tiny, any);
    if (QT_UNLIKELY(any)) {
        qt_v8d rs2, cn2, sn2;

        rotation_scaled(&gv, &f, &rs2, &cn2, &sn2);
        rs = VSEL(tiny, rs2, rs);
        cn = VSEL(tiny, cn2, cn);
        sn = VSEL(tiny, sn2, sn);
    }
    e[i + 1] = VSEL(~VLT(ln->rad2, VABS(fi - ln->ctr2)), rs, e[i + 1]);
    qt_v8d gn = d[i + 1] - ch->p;
    qt_v8d rn = (d[i] - gn) * sn + cn * b2;
    qt_v8d pn = sn * rn;
    d[i + 1] = VSEL(a, gn + pn, d[i + 1]);
    ch->g = VSEL(a, cn * rn - b, gv);
    ch->p = VSEL(a, pn, ch->p);
    ch->c = VSEL(a, cn, ch->c);
    ch->s = VSEL(a, sn, ch->s);
    *cz = VSEL(a, cn, VSPLAT(1.0));
    *sz = VSEL(a, sn, VSPLAT(0.0));
}

/* Columns i and i+1 of Z times the rotation (dlasr 'R', 'V', 'B' with c, -s). */
INLINE void z_rotate(const struct grp *g, size_t i, const qt_v8d *czp, const qt_v8d *szp)
{
    const size_t n = g->n;
    const qt_v8d cz = *czp, sz = *szp;
    qt_v8d *restrict z0 = g->zr + i * n, *restrict z1 = g->zr + (i + 1) * n;

    for (size_t k = 0; k < n; k++) {
        qt_v8d t = z1[k], u = z0[k];

        z1[k] = cz * t + sz * u;
        z0[k] = cz * u - sz * t;
    }
}

/* Ends a sweep: d[lo] -= p, e[lo] = g with each lane's final p and g. */
INLINE void ql_finish(const struct grp *g, const struct ql_lanes *ln, const struct ql_chain *ch,
                      size_t bot, size_t top)
{
    for (size_t i = bot; i < top; i++) {
        const qt_v8m last = VLT(VABS(VSPLAT((double)i) - ln->lo_act), 0.5);

        g->d[i] = VSEL(last, g->d[i] - ch->p, g->d[i]);
        g->e[i] = VSEL(last, ch->g, g->e[i]);
    }
}

/* One implicit QL sweep (the inner loop of dsteqr) on every active lane's block [lo, hi] in
 * both groups, rotations applied to Z as they are made. Lanes sweep different index ranges,
 * so each group runs over the union [bot, top) of its lanes' ranges, and a lane outside its
 * own range performs identity rotations and keeps its state; whatever it computes is
 * discarded. The two groups' chains are independent and interleaved, which hides part of
 * their latency; a group with no active lane has top = 0. */
INLINE void ql_sweep(const struct grp *g, const struct ql_state *st, const struct ql_lanes *ln,
                     const size_t *bot, const size_t *top)
{
    struct ql_chain ch0, ch1;

    ql_shift(&st[0], &ln[0], &ch0);
    ql_shift(&st[1], &ln[1], &ch1);
    for (size_t i = QT_MAX(top[0], top[1]); i-- > QT_MIN(bot[0], bot[1]);) {
        const bool on0 = i >= bot[0] && i < top[0], on1 = i >= bot[1] && i < top[1];
        qt_v8d cz0 = VSPLAT(1.0), sz0 = VSPLAT(0.0), cz1 = cz0, sz1 = sz0;

        if (on0)
            ql_rotate(&g[0], &ln[0], i, &ch0, &cz0, &sz0);
        if (on1)
            ql_rotate(&g[1], &ln[1], i, &ch1, &cz1, &sz1);
        if (on0)
            z_rotate(&g[0], i, &cz0, &sz0);
        if (on1)
            z_rotate(&g[1], i, &cz1, &sz1);
    }
    ql_finish(&g[0], &ln[0], &ch0, bot[0], top[0]);
    ql_finish(&g[1], &ln[1], &ch1, bot[1], top[1]);
}

/* Which lanes sweep next (those not finished and under the cap), and the union [bot, top) of
 * their index ranges; top = 0 when none does. */
INLINE void ql_plan(const struct grp *g, struct ql_state *st, struct ql_lanes *ln, size_t *bot,
                    size_t *top)
{
    const size_t n = g->n;
    const qt_v8d lo = st->lo, hi = st->hi, none = VSPLAT(-1.0);
    const qt_v8m act = VLT(lo, VSPLAT((double)(n - 1))) & VLT(st->it, VSPLAT(30.0 * (double)n));
    qt_v8d b = VSEL(act, lo, VSPLAT((double)n)), t = VSEL(act, hi, VSPLAT(0.0));

    st->it += VSEL(act, VSPLAT(1.0), VSPLAT(0.0));
    ln->ctr = 0.5 * (lo + hi - 1.0);
    ln->rad = VSEL(act, 0.5 * (hi - 1.0 - lo), none);
    ln->ctr2 = 0.5 * (lo + hi - 2.0);
    ln->rad2 = VSEL(act, 0.5 * (hi - 2.0 - lo), none);
    ln->lo_act = VSEL(act, lo, none);
    VREDUCE(b, VMIN);
    VREDUCE(t, VMAX);
    *bot = (size_t)b[0];
    *top = (size_t)t[0];
}

/* Implicit QL on the tridiagonal matrices of both groups (dsteqr's QL branch), accumulating
 * the rotations into Z = I. Each lane deflates on its own; a lane stops when its lo reaches
 * n-1, or after 30n sweeps as LAPACK does. Returns the bit mask of lanes (group 1 in bits
 * LANES..) that did not converge. */
INLINE unsigned ql(const struct grp *g)
{
    const size_t n = g->n;
    struct ql_state st[GROUPS];
    struct ql_lanes ln[GROUPS];
    size_t bot[GROUPS] = {0, 0}, top[GROUPS];
    unsigned fail = 0;

    for (size_t h = 0; h < GROUPS; h++) {
        st[h].lo = st[h].it = VSPLAT(0.0);
        for (size_t k = 0; k < n * n; k++)
            g[h].zr[k] = VSPLAT(0.0);
        for (size_t k = 0; k < n; k++)
            g[h].zr[k + k * n] = VSPLAT(1.0);
    }
    for (;;) {
        for (size_t h = 0; h < GROUPS; h++) {
            ql_scan(&g[h], &st[h], bot[h]);
            ql_plan(&g[h], &st[h], &ln[h], &bot[h], &top[h]);
        }
        if (top[0] == 0 && top[1] == 0)
            break;
        ql_sweep(g, st, ln, bot, top);
    }
    /* No lane is active any more: those not finished ran into the cap. */
    for (size_t h = 0; h < GROUPS; h++) {
        qt_v8m live = VLT(st[h].lo, VSPLAT((double)(n - 1)));

        for (int k = 0; k < LANES; k++)
            fail |= (unsigned)(live[k] != 0) << (k + LANES * (int)h);
    }
    return fail;
}

/* x -= tau v (v^H x) on rows i+1..n-1 of columns c and c+1 of Z; two at a time give the dot
 * products independent chains to overlap. Z has a spare column n for odd n. */
INLINE void reflect_pair(const struct grp *g, size_t i, size_t c)
{
    const size_t n = g->n;
    const qt_v8d *restrict vr = g->ar + i * n, *restrict vi = g->ai + i * n;
    const qt_v8d taur = g->tr[i], taui = g->ti[i];
    qt_v8d *restrict ar = g->zr + c * n, *restrict ai = g->zi + c * n;
    qt_v8d *restrict br = ar + n, *restrict bi = ai + n;
    qt_v8d adr = VSPLAT(0.0), adi = VSPLAT(0.0), bdr = VSPLAT(0.0), bdi = VSPLAT(0.0);

    for (size_t k = i + 1; k < n; k++) {
        adr += vr[k] * ar[k] + vi[k] * ai[k];
        adi += vr[k] * ai[k] - vi[k] * ar[k];
        bdr += vr[k] * br[k] + vi[k] * bi[k];
        bdi += vr[k] * bi[k] - vi[k] * br[k];
    }
    qt_v8d atr = taur * adr - taui * adi, ati = taur * adi + taui * adr;
    qt_v8d btr = taur * bdr - taui * bdi, bti = taur * bdi + taui * bdr;
    for (size_t k = i + 1; k < n; k++) {
        ar[k] -= vr[k] * atr - vi[k] * ati;
        ai[k] -= vr[k] * ati + vi[k] * atr;
        br[k] -= vr[k] * btr - vi[k] * bti;
        bi[k] -= vr[k] * bti + vi[k] * btr;
    }
}

/* V = Q Z: applies H(n-2), ..., H(0) to the real Z, which becomes complex. */
INLINE void back_transform(const struct grp *g)
{
    const size_t n = g->n;

    for (size_t k = 0; k < n * (n + 1); k++)
        g->zi[k] = VSPLAT(0.0);
    for (size_t k = n * n; k < n * (n + 1); k++)
        g->zr[k] = VSPLAT(0.0);
    for (size_t i = n - 1; i-- > 0;)
        for (size_t c = 0; c < n; c += 2)
            reflect_pair(g, i, c);
}

/* The SIMD kernel for GROUPS groups, of which the first ng hold matrices, compiled once per
 * target and picked at load time by CPUID. Returns the bit mask of lanes that did not
 * converge (group h in bits h*LANES..). */
KERNEL_CLONES static unsigned heevb_solve(const struct grp *g, size_t ng)
{
    const size_t n = g->n;
    unsigned fail;

    for (size_t h = 0; h < GROUPS; h++) {
        if (h < ng) {
            tridiagonalise(&g[h]);
            continue;
        }
        /* An empty group: a diagonal matrix, which QL finishes at once. */
        for (size_t k = 0; k < n; k++) {
            g[h].d[k] = VSPLAT(1.0);
            g[h].e[k] = VSPLAT(0.0);
        }
    }
    fail = ql(g);
    for (size_t h = 0; h < ng; h++)
        back_transform(&g[h]);
    return fail;
}

/* Whether the lower triangle of one n x n matrix (diagonal: real part only) is all finite. */
static bool lower_finite(size_t n, const double complex *a)
{
    const double *x = (const double *)a;
    bool ok = true;

    for (size_t c = 0; c < n; c++) {
        ok &= fabs(x[2 * (c + c * n)]) <= DBL_MAX;
        for (size_t r = c + 1; r < n; r++)
            ok &= (fabs(x[2 * (r + c * n)]) <= DBL_MAX) & (fabs(x[2 * (r + c * n) + 1]) <= DBL_MAX);
    }
    return ok;
}

/* A vector assembled lane by lane by scalar code. */
union lanes {
    qt_v8d v;
    double x[LANES];
};

/* Puts the identity into lane l (a padding lane, or one whose input is not finite). */
static void identity_lane(const struct grp *g, size_t l)
{
    const size_t n = g->n;
    double *ar = (double *)g->ar + l, *ai = (double *)g->ai + l;

    for (size_t c = 0; c < n; c++)
        for (size_t r = c; r < n; r++) {
            ar[(r + c * n) * LANES] = r == c;
            ai[(r + c * n) * LANES] = 0.0;
        }
}

/* Copies lanes 0..cnt-1 of the group from A (lower triangle, imaginary parts of the diagonal
 * dropped) and pads the rest with identities. The copy runs element by element across the
 * lanes, so that each store fills a cache line and the eight sources stream side by side.
 *
 * Each lane gets the exact power-of-two scale 2^-e that brings its largest entry into [1, 2),
 * as two factors s1 s2 because 2^-e alone may not be representable; the kernel applies it.
 * That keeps every intermediate far from overflow and underflow whatever the input's
 * magnitude. A lane with non-finite input becomes an identity too and is returned in the bit
 * mask. */
static unsigned load_group(const struct grp *g, const double complex *A, size_t cnt, int *expo)
{
    const size_t n = g->n;
    double *ar = (double *)g->ar, *ai = (double *)g->ai;
    const double *x[LANES];
    double mx[LANES] = {0}, nf[LANES] = {0};
    union lanes s1, s2;
    unsigned bad = 0;

    for (size_t l = 0; l < LANES; l++)
        x[l] = (const double *)(A + QT_MIN(l, cnt - 1) * n * n);
    for (size_t c = 0; c < n; c++) {
        for (size_t r = c; r < n; r++) {
            const size_t idx = r + c * n;

            for (size_t l = 0; l < LANES; l++) {
                double re = x[l][2 * idx], im = r == c ? 0.0 : x[l][2 * idx + 1];

                ar[idx * LANES + l] = re;
                ai[idx * LANES + l] = im;
                /* x * 0 is 0 for finite x and NaN otherwise. */
                nf[l] += re * 0.0 + im * 0.0;
                mx[l] = QT_MAX(mx[l], QT_MAX(fabs(re), fabs(im)));
            }
        }
    }
    for (size_t l = 0; l < LANES; l++) {
        bool ok = l < cnt && nf[l] == 0.0;

        if (!ok)
            identity_lane(g, l);
        bad |= (unsigned)(l < cnt && !ok) << l;
        expo[l] = ok && mx[l] > 0.0 ? ilogb(mx[l]) : 0;
        s1.x[l] = ldexp(1.0, -expo[l] / 2);
        s2.x[l] = ldexp(1.0, -expo[l] - (-expo[l] / 2));
    }
    g->scale[0] = s1.v;
    g->scale[1] = s2.v;
    return bad;
}

/* The result for a matrix that failed: NaN in every real and imaginary part. */
static void fill_nan(size_t len, double *x)
{
    for (size_t k = 0; k < len; k++)
        x[k] = NAN;
}

/* Writes lanes 0..cnt-1 back: eigenvalues sorted ascending and scaled back, eigenvectors
 * permuted to match, element by element across the lanes as in load_group; failed lanes are
 * then filled with NaN. */
static void store_group(const struct grp *g, size_t cnt, const int *expo, unsigned fail,
                        double complex *V, double *w)
{
    const size_t n = g->n;
    const double *zr = (const double *)g->zr, *zi = (const double *)g->zi;
    const double *d = (const double *)g->d;
    size_t perm[LANES][QT_HEEVB_NMAX];

    for (size_t l = 0; l < cnt; l++) {
        size_t *p = perm[l];

        /* Insertion sort of the indices: n is small and QL leaves d nearly ordered. */
        for (size_t j = 0; j < n; j++) {
            size_t k = j;

            for (; k > 0 && d[p[k - 1] * LANES + l] > d[j * LANES + l]; k--)
                p[k] = p[k - 1];
            p[k] = j;
        }
        double u1 = ldexp(1.0, expo[l] / 2), u2 = ldexp(1.0, expo[l] - expo[l] / 2);
        for (size_t j = 0; j < n; j++)
            w[l * n + j] = d[p[j] * LANES + l] * u1 * u2;
    }
    for (size_t j = 0; j < n; j++) {
        const double *sr[LANES], *si[LANES];
        double *dst[LANES];

        for (size_t l = 0; l < cnt; l++) {
            sr[l] = zr + perm[l][j] * n * LANES + l;
            si[l] = zi + perm[l][j] * n * LANES + l;
            dst[l] = (double *)(V + l * n * n + j * n);
        }
        for (size_t r = 0; r < n; r++)
            for (size_t l = 0; l < cnt; l++) {
                dst[l][2 * r] = sr[l][r * LANES];
                dst[l][2 * r + 1] = si[l][r * LANES];
            }
    }
    for (size_t l = 0; l < cnt; l++) {
        if (!(fail & (1u << l)))
            continue;
        fill_nan(2 * n * n, (double *)(V + l * n * n));
        fill_nan(n, w + l * n);
    }
}

/* Asks for the next kernel call's input and this call's output to be brought into the cache
 * (L2) while the kernel computes: a large batch streams megabytes, and without this the
 * memory traffic costs up to a quarter of the time at n = 16. left counts the matrices from
 * this call on. */
static void prefetch_next(size_t n, size_t left, const double complex *A, double complex *V)
{
    const size_t bytes = n * n * sizeof(*A), line = 64, step = GROUPS * LANES;
    const char *a = (const char *)(A + step * n * n), *v = (const char *)V;

    for (size_t k = 0; k < QT_MIN(left, step) * bytes; k += line)
        __builtin_prefetch(v + k, 1, 2);
    for (size_t k = 0; left > step && k < QT_MIN(left - step, step) * bytes; k += line)
        __builtin_prefetch(a + k, 0, 2);
}

/* Matrices above QT_HEEVB_NMAX: LAPACK one at a time, with the same failure contract. */
static int batch_lapack(struct qt_ws *ws, size_t n, size_t count, const double complex *A,
                        double complex *V, double *w)
{
    int ret = 0;

    for (size_t k = 0; k < count; k++) {
        const double complex *a = A + k * n * n;
        double complex *v = V + k * n * n;
        int r = lower_finite(n, a) ? 0 : QT_ELAPACK;

        if (r == 0) {
            memcpy(v, a, n * n * sizeof(*v));
            r = qt_zheev(ws, true, n, v, n, w + k * n);
        }
        if (r == -ENOMEM || r == QT_ETOOBIG)
            return r;
        if (r < 0) {
            fill_nan(2 * n * n, (double *)v);
            fill_nan(n, w + k * n);
            ret = QT_ELAPACK;
        }
    }
    return ret;
}

int qt_heev_batch(struct qt_ws *ws, size_t n, size_t count, const double complex *A,
                  double complex *V, double *w)
{
    const size_t step = GROUPS * LANES;
    struct qt_ws_mark mark;
    struct grp g[GROUPS];
    int expo[GROUPS][LANES], r = 0;

    if (n == 0 || count == 0)
        return 0;
    if (n > QT_HEEVB_NMAX)
        return batch_lapack(ws, n, count, A, V, w);
    mark = qt_ws_mark(ws);
    for (size_t h = 0; h < GROUPS; h++) {
        qt_v8d *mem = qt_ws_alloc_n(ws, GRP_VECTORS(n), sizeof(qt_v8d));

        if (!mem) {
            r = -ENOMEM;
            goto out;
        }
        grp_init(&g[h], n, mem);
    }
    for (size_t base = 0; base < count; base += step) {
        const size_t left = count - base, ng = left > LANES ? 2 : 1;
        size_t cnt[GROUPS] = {QT_MIN(left, (size_t)LANES),
                              left > LANES ? QT_MIN(left - LANES, (size_t)LANES) : 0};
        unsigned fail = 0, valid = 0;

        for (size_t h = 0; h < ng; h++) {
            fail |= load_group(&g[h], A + (base + h * LANES) * n * n, cnt[h], expo[h])
                    << (h * LANES);
            valid |= ((1u << cnt[h]) - 1) << (h * LANES);
        }
        prefetch_next(n, left, A + base * n * n, V + base * n * n);
        fail = (fail | heevb_solve(g, ng)) & valid;
        for (size_t h = 0; h < ng; h++)
            store_group(&g[h], cnt[h], expo[h], fail >> (h * LANES), V + (base + h * LANES) * n * n,
                        w + (base + h * LANES) * n);
        if (fail)
            r = QT_ELAPACK;
    }
out:
    qt_ws_release(ws, mark);
    return r;
}
