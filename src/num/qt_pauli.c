/* Qubit-by-qubit Pauli measurement maps: permute into an interleaved per-qubit tensor, apply one
 * small transfer matrix per qubit, permute back. */
#include "qt_pauli.h"

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <string.h>

#include "base/compiler.h"

enum pauli_map { MAP_FORWARD, MAP_ADJOINT, MAP_DUAL };

/* Per-qubit transfer matrices, row-major, as separate real and imaginary parts. Local indices:
 * outcome 2s + o with s in {X, Y, Z} and o the eigenvalue bit; matrix entry 2i + j for (i, j).
 * With Pi_so = (I + (-1)^o sigma_s) / 2 and the dual frame D_so = I/6 + (-1)^o sigma_s / 2:
 *   FORWARD (4 -> 6):  row 2s+o, column 2i+j, entry (Pi_so)_ji   (q = Tr(Pi rho))
 *   ADJOINT (6 -> 4):  row 2i+j, column 2s+o, entry (Pi_so)_ij   (sum_a w_a Pi_a)
 *   DUAL    (6 -> 4):  row 2i+j, column 2s+o, entry (D_so)_ij    (sum_a f_a D_a)
 * Written out as constants so the kernels skip the many zero terms at compile time; the design
 * tests check all three maps against explicit Kronecker-product kets. */
#define T6 (1.0 / 6.0)
static const double fwd_r[24] = {0.5, 0.5, 0.5, 0.5, 0.5, -0.5, -0.5, 0.5, 0.5, 0, 0, 0.5,
                                 0.5, 0,   0,   0.5, 1,   0,    0,    0,   0,   0, 0, 1};
static const double fwd_i[24] = {0, 0,    0,   0, 0, 0, 0, 0, 0, 0.5, -0.5, 0,
                                 0, -0.5, 0.5, 0, 0, 0, 0, 0, 0, 0,   0,    0};
static const double adj_r[24] = {0.5, 0.5,  0.5, 0.5, 1, 0, 0.5, -0.5, 0,   0,   0, 0,
                                 0.5, -0.5, 0,   0,   0, 0, 0.5, 0.5,  0.5, 0.5, 0, 1};
static const double adj_i[24] = {0, 0, 0,   0,    0, 0, 0, 0, -0.5, 0.5, 0, 0,
                                 0, 0, 0.5, -0.5, 0, 0, 0, 0, 0,    0,   0, 0};
static const double dual_r[24] = {T6, T6, T6, T6, 2.0 / 3.0, -1.0 / 3.0, 0.5,        -0.5,
                                  0,  0,  0,  0,  0.5,       -0.5,       0,          0,
                                  0,  0,  T6, T6, T6,        T6,         -1.0 / 3.0, 2.0 / 3.0};
static const double dual_i[24] = {0, 0, 0,   0,    0, 0, 0, 0, -0.5, 0.5, 0, 0,
                                  0, 0, 0.5, -0.5, 0, 0, 0, 0, 0,    0,   0, 0};

static size_t upow(size_t b, unsigned e)
{
    size_t r = 1;

    while (e--)
        r *= b;
    return r;
}

/* Interleaved offsets: for the outcome layout, off_s[s] + off_o[o]; for the matrix layout,
 * off_r[r] + off_c[c]. base is 6 or 4; hi/lo are the digit multipliers within one qubit. */
static void offsets(unsigned n, size_t radix, size_t base, size_t mult, size_t *off)
{
    size_t cnt = upow(radix, n);

    for (size_t x = 0; x < cnt; x++) {
        size_t v = x, acc = 0, pw = 1;

        for (unsigned k = 0; k < n; k++) { /* digit k counted from the least significant */
            acc += (v % radix) * mult * pw;
            v /= radix;
            pw *= base;
        }
        off[x] = acc;
    }
}

/* One mode product step: out[y][i] = sum_x M[y][x] in[x][i] for i < len, where in holds bin
 * slices sx numbers apart and out bout slices sy numbers apart, as split real and imaginary
 * arrays. Eight values of i at a time are loaded once into vector registers and all BOUT
 * outputs are formed there (register blocking); the explicit vector type makes gcc vectorise
 * over i rather than over the outputs. Without AVX-512 the compiler splits each vector into
 * narrower ones. */
typedef double qt_v8d __attribute__((vector_size(64)));

/* Unaligned vector load and store; macros, because vectors passed by value change the ABI
 * between the clones (gcc -Wpsabi). */
#define VLOAD(v, p)  memcpy(&(v), (p), sizeof(v))
#define VSTORE(p, v) memcpy((p), &(v), sizeof(v))

/* The zero tests below compare constants from the tables above, so after unrolling the
 * compiler drops every zero term (it may not drop 0.0 * x on its own: that is NaN for x = inf). */
#define MODE_ACCUMULATE(MR, MI, BIN, p, q, ar, ai, xr, xi) \
    do {                                                   \
        if ((MR)[(p) * (BIN) + (q)] != 0.0) {              \
            ar += (MR)[(p) * (BIN) + (q)] * (xr);          \
            ai += (MR)[(p) * (BIN) + (q)] * (xi);          \
        }                                                  \
        if ((MI)[(p) * (BIN) + (q)] != 0.0) {              \
            ar -= (MI)[(p) * (BIN) + (q)] * (xi);          \
            ai += (MI)[(p) * (BIN) + (q)] * (xr);          \
        }                                                  \
    } while (0)

/* IMAG_IN = 0 declares the input real (the first step of the maps from outcome data), so its
 * imaginary slices are never read and need not be cleared. */
#define MODE_KERNEL(NAME, MR, MI, BIN, BOUT, IMAG_IN)                                             \
    QT_CLONES static void NAME(size_t len, size_t sx, size_t sy, const double *xr,                \
                               const double *xi, double *yr, double *yi)                          \
    {                                                                                             \
        size_t i = 0;                                                                             \
                                                                                                  \
        for (; i + 8 <= len; i += 8) {                                                            \
            qt_v8d vr[BIN], vi[BIN];                                                              \
                                                                                                  \
            _Pragma("GCC unroll 8") for (size_t q = 0; q < (BIN); q++)                            \
            {                                                                                     \
                VLOAD(vr[q], xr + q * sx + i);                                                    \
                if (IMAG_IN)                                                                      \
                    VLOAD(vi[q], xi + q * sx + i);                                                \
                else                                                                              \
                    vi[q] = (qt_v8d){0};                                                          \
            }                                                                                     \
            _Pragma("GCC unroll 8") for (size_t p = 0; p < (BOUT); p++)                           \
            {                                                                                     \
                qt_v8d ar = {0}, ai = {0};                                                        \
                                                                                                  \
                _Pragma("GCC unroll 8") for (size_t q = 0; q < (BIN); q++)                        \
                    MODE_ACCUMULATE(MR, MI, BIN, p, q, ar, ai, vr[q], vi[q]);                     \
                VSTORE(yr + p * sy + i, ar);                                                      \
                VSTORE(yi + p * sy + i, ai);                                                      \
            }                                                                                     \
        }                                                                                         \
        for (; i < len; i++)                                                                      \
            _Pragma("GCC unroll 8") for (size_t p = 0; p < (BOUT); p++)                           \
            {                                                                                     \
                double ar = 0.0, ai = 0.0;                                                        \
                                                                                                  \
                _Pragma("GCC unroll 8") for (size_t q = 0; q < (BIN); q++) MODE_ACCUMULATE(       \
                    MR, MI, BIN, p, q, ar, ai, xr[q * sx + i], (IMAG_IN) ? xi[q * sx + i] : 0.0); \
                yr[p * sy + i] = ar;                                                              \
                yi[p * sy + i] = ai;                                                              \
            }                                                                                     \
    }

MODE_KERNEL(kernel_dual, dual_r, dual_i, 6, 4, 1)
MODE_KERNEL(kernel_dual_real, dual_r, dual_i, 6, 4, 0)
MODE_KERNEL(kernel_adjoint, adj_r, adj_i, 6, 4, 1)
MODE_KERNEL(kernel_adjoint_real, adj_r, adj_i, 6, 4, 0)
MODE_KERNEL(kernel_forward, fwd_r, fwd_i, 4, 6, 1)

typedef void (*mode_kernel_fn)(size_t, size_t, size_t, const double *, const double *, double *,
                               double *);

/* A work tensor of `size` complex numbers as split real and imaginary parts. */
struct split {
    double *re, *im;
};

/* Digits transformed first by a forward map of single samples (see mode_products). */
#define LOW_FIRST 3

/* The order of a map's mode products. Digit p (counted from the least significant; qubit
 * n - 1 - p) is transformed with S times the product of the radices below it as the kernel's
 * vector length, so with S = 1 the least significant digits run the kernels' scalar tail. The
 * products are taken from the most significant digit down, except that a forward map of fewer than
 * 8 samples first transforms its LOW_FIRST least significant digits, least significant first, while
 * the tensor is still small (4^n numbers, where the last stages have 6^n).
 *
 * With fewer than 8 samples, the two products on the largest tensors (a forward map's last
 * two, the other maps' first two) are fused: each block of the tensor goes through both while
 * it is in the cache, so the largest intermediate tensor is never written out. For the forward
 * map a block shares the digits above the two; for the others (whose first two digits are the
 * top ones) it is FUSE_COLS positions of the digits below them.
 *
 * `qtomo-bench maps`, Haswell kernels, 8 qubits: forward 3.6 -> 2.3-2.6 ms (2.7 with the low
 * digits first alone), adjoint 2.3 -> 2.2 ms; 7 qubits: forward 0.51 -> 0.22 ms. Every output
 * is the same expression of the inputs as without fusing. */
#define FUSE_COLS 512

struct mode_plan {
    unsigned low;    /* digits transformed first, least significant first */
    bool fuse_first; /* the first two products fused (adjoint and dual maps) */
    bool fuse_last;  /* the last two products fused (forward map) */
};

static struct mode_plan plan_modes(unsigned n, size_t S, size_t bin, size_t bout)
{
    bool one = S < 8;
    bool fwd = bout > bin;
    unsigned low = one && fwd ? QT_MIN(LOW_FIRST, n) : 0;

    return (struct mode_plan){low, one && !fwd && n >= 2, one && fwd && n >= low + 2};
}

/* Passes over the whole tensor, each from one work buffer to the other. */
static unsigned plan_passes(unsigned n, struct mode_plan pl)
{
    return n - pl.fuse_first - pl.fuse_last;
}

/* Numbers in the scratch block of a fused pair (see mode_products). */
static size_t plan_mid(unsigned n, size_t S, struct mode_plan pl)
{
    if (pl.fuse_last)
        return 6 * 4 * upow(6, pl.low) * S;
    if (pl.fuse_first)
        return 6 * 4 * QT_MIN(FUSE_COLS, upow(6, n - 2) * S);
    return 1;
}

/* n mode products on S samples at once (sample index innermost): in has modes of size bin, out
 * of size bout (6 -> 4 or 4 -> 6), one kernel call per block of transformed modes, in the
 * order of plan_modes. The first product reads its real parts from in0 instead of a->re when
 * in0 is not NULL. The result ends in *a: the original *a's buffers when plan_passes is even,
 * *b's when it is odd. mid holds plan_mid numbers. */
static void mode_products(unsigned n, size_t S, size_t bin, size_t bout, mode_kernel_fn first,
                          mode_kernel_fn kernel, const double *in0, struct split *a,
                          struct split *b, struct split mid)
{
    struct mode_plan pl = plan_modes(n, S, bin, bout);
    unsigned low = pl.low;

    for (unsigned k = 0; k < n; k++) {
        /* the digit of step k; digits below low are done at steps 0..low-1, the others from
         * the top at steps low..n-1 */
        unsigned p = k < low ? k : n - 1 - (k - low);
        size_t outer = 1, inner = S;
        bool fuse_next = (pl.fuse_last && k == n - 2) || (pl.fuse_first && k == 0);

        for (unsigned j = 0; j < n; j++) {
            bool done = j < low ? j < k : k >= low && n - 1 - j < k - low;
            size_t radix = done ? bout : bin;

            if (j > p)
                outer *= radix;
            else if (j < p && !(fuse_next && j == p - 1))
                inner *= radix;
        }
        const double *src = k == 0 && in0 ? in0 : a->re;
        mode_kernel_fn kfirst = k == 0 ? first : kernel;

        if (fuse_next && pl.fuse_first) {
            /* [bin][bin][inner] -> [bout][bout][inner], w columns at a time through mid,
             * laid out [bout][bin][w] */
            for (size_t c0 = 0; c0 < inner; c0 += FUSE_COLS) {
                size_t w = QT_MIN(FUSE_COLS, inner - c0);

                for (size_t j = 0; j < bin; j++)
                    kfirst(w, bin * inner, bin * w, src + j * inner + c0, a->im + j * inner + c0,
                           mid.re + j * w, mid.im + j * w);
                for (size_t j = 0; j < bout; j++)
                    kernel(w, w, inner, mid.re + j * bin * w, mid.im + j * bin * w,
                           b->re + j * bout * inner + c0, b->im + j * bout * inner + c0);
            }
        } else if (fuse_next) {
            /* each block [bin][bin][inner] -> mid [bout][bin][inner] -> [bout][bout][inner] */
            for (size_t o = 0; o < outer; o++) {
                size_t ii = o * bin * bin * inner, oo = o * bout * bout * inner;

                kfirst(bin * inner, bin * inner, bin * inner, src + ii, a->im + ii, mid.re, mid.im);
                for (size_t j = 0; j < bout; j++)
                    kernel(inner, inner, inner, mid.re + j * bin * inner, mid.im + j * bin * inner,
                           b->re + oo + j * bout * inner, b->im + oo + j * bout * inner);
            }
        } else {
            for (size_t o = 0; o < outer; o++) {
                size_t ii = o * bin * inner, oo = o * bout * inner;

                kfirst(inner, inner, inner, src + ii, a->im + ii, b->re + oo, b->im + oo);
            }
        }
        struct split t = *a;
        *a = *b;
        *b = t;
        if (fuse_next)
            k++; /* the next digit is done */
    }
}

/* Position in the interleaved tensor of outcome o of setting st, os[st] + oo[o], and of density
 * matrix entry (r, c), orr[r] + oc[c]. Kept as four short tables (3^n + 3d entries) rather than
 * one entry per outcome, which was 8 bytes per outcome to build and stream on every call. */
struct pauli_index {
    size_t *os, *oo, *orr, *oc;
};

static int make_index(unsigned n, struct qt_ws *ws, struct pauli_index *ix)
{
    size_t d = (size_t)1 << n, NS = upow(3, n);

    ix->os = qt_ws_alloc_n(ws, NS, sizeof(size_t));
    ix->oo = qt_ws_alloc_n(ws, d, sizeof(size_t));
    ix->orr = qt_ws_alloc_n(ws, d, sizeof(size_t));
    ix->oc = qt_ws_alloc_n(ws, d, sizeof(size_t));
    if (!ix->os || !ix->oo || !ix->orr || !ix->oc)
        return -ENOMEM;
    offsets(n, 3, 6, 2, ix->os); /* local index 2s + o in radix 6 */
    offsets(n, 2, 6, 1, ix->oo);
    offsets(n, 2, 4, 2, ix->orr); /* local index 2i + j in radix 4 */
    offsets(n, 2, 4, 1, ix->oc);
    return 0;
}

/* The permutations into and out of the tensor are transposes (sample index innermost in the
 * tensor, outermost outside); they run in blocks of rows so both sides stay cache friendly. */
#define PERM_BLOCK 8

/* Outcome vectors (S of them, leading dimension ldv) to and from density matrices. */
static int run(enum pauli_map map, bool native, double scale, unsigned n, struct qt_ws *ws,
               size_t S, const double complex *rho_in, const double *vec_in, size_t ldv,
               double complex *rho_out, double *vec_out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = (size_t)1 << n, dd = d * d, m = upow(6, n), big = m * S;
    /* A native forward map works in vec_out itself: its real parts are the buffer the result
     * ends in (see mode_products). */
    bool direct = native && map == MAP_FORWARD;
    bool fwd = map == MAP_FORWARD;
    struct mode_plan pl = fwd ? plan_modes(n, S, 4, 6) : plan_modes(n, S, 6, 4);
    bool even = plan_passes(n, pl) % 2 == 0;
    struct split a = {direct && even ? vec_out : qt_ws_alloc_n(ws, big, sizeof(double)),
                      qt_ws_alloc_n(ws, big, sizeof(double))};
    struct split b = {direct && !even ? vec_out : qt_ws_alloc_n(ws, big, sizeof(double)),
                      qt_ws_alloc_n(ws, big, sizeof(double))};
    size_t nmid = plan_mid(n, S, pl);
    struct split mid = {qt_ws_alloc_n(ws, nmid, sizeof(double)),
                        qt_ws_alloc_n(ws, nmid, sizeof(double))};
    struct pauli_index ix;
    size_t NS = m / d;
    int r = 0;

    if (!a.re || !a.im || !b.re || !b.im || !mid.re || !mid.im || make_index(n, ws, &ix) < 0) {
        r = -ENOMEM;
        goto out;
    }
    /* Entry (r, c) is e = r + d c; outcome k = st d + o. Blocks of PERM_BLOCK rows (outcomes)
     * within one column (setting). */
    if (map == MAP_FORWARD) {
        for (size_t c = 0; c < d; c++)
            for (size_t r0 = 0; r0 < d; r0 += PERM_BLOCK)
                for (size_t t = 0; t < S; t++)
                    for (size_t i = r0; i < QT_MIN(r0 + PERM_BLOCK, d); i++) {
                        double complex z = rho_in[i + d * c + dd * t];
                        size_t x = (ix.orr[i] + ix.oc[c]) * S + t;

                        a.re[x] = scale * creal(z);
                        a.im[x] = scale * cimag(z);
                    }
        mode_products(n, S, 4, 6, kernel_forward, kernel_forward, NULL, &a, &b, mid);
        if (!native) /* else S == 1, and the tensor is vec_out in native order */
            for (size_t st = 0; st < NS; st++)
                for (size_t o0 = 0; o0 < d; o0 += PERM_BLOCK)
                    for (size_t t = 0; t < S; t++)
                        for (size_t o = o0; o < QT_MIN(o0 + PERM_BLOCK, d); o++)
                            vec_out[st * d + o + ldv * t] = a.re[(ix.os[st] + ix.oo[o]) * S + t];
    } else {
        if (!native) /* else S == 1, and the first product reads vec_in itself */
            for (size_t st = 0; st < NS; st++)
                for (size_t o0 = 0; o0 < d; o0 += PERM_BLOCK)
                    for (size_t t = 0; t < S; t++)
                        for (size_t o = o0; o < QT_MIN(o0 + PERM_BLOCK, d); o++)
                            a.re[(ix.os[st] + ix.oo[o]) * S + t] = vec_in[st * d + o + ldv * t];
        if (map == MAP_DUAL)
            mode_products(n, S, 6, 4, kernel_dual_real, kernel_dual, native ? vec_in : NULL, &a, &b,
                          mid);
        else
            mode_products(n, S, 6, 4, kernel_adjoint_real, kernel_adjoint, native ? vec_in : NULL,
                          &a, &b, mid);
        for (size_t c = 0; c < d; c++)
            for (size_t r0 = 0; r0 < d; r0 += PERM_BLOCK)
                for (size_t t = 0; t < S; t++)
                    for (size_t i = r0; i < QT_MIN(r0 + PERM_BLOCK, d); i++) {
                        size_t x = (ix.orr[i] + ix.oc[c]) * S + t;

                        rho_out[i + d * c + dd * t] = scale * (a.re[x] + I * a.im[x]);
                    }
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

int qt_pauli_forward(unsigned n, struct qt_ws *ws, const double complex *rho, double *q)
{
    return run(MAP_FORWARD, false, 1.0, n, ws, 1, rho, NULL, 0, NULL, q);
}

int qt_pauli_adjoint(unsigned n, struct qt_ws *ws, const double *w, double complex *out)
{
    return run(MAP_ADJOINT, false, 1.0, n, ws, 1, NULL, w, 0, out, NULL);
}

int qt_pauli_dual(unsigned n, struct qt_ws *ws, const double *f, double complex *rho)
{
    return run(MAP_DUAL, false, 1.0, n, ws, 1, NULL, f, 0, rho, NULL);
}

int qt_pauli_forward_native(unsigned n, struct qt_ws *ws, const double complex *rho, double scale,
                            double *q)
{
    return run(MAP_FORWARD, true, scale, n, ws, 1, rho, NULL, 0, NULL, q);
}

int qt_pauli_adjoint_native(unsigned n, struct qt_ws *ws, const double *w, double scale,
                            double complex *out)
{
    return run(MAP_ADJOINT, true, scale, n, ws, 1, NULL, w, 0, out, NULL);
}

int qt_pauli_to_native(unsigned n, struct qt_ws *ws, const double *v, double *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = (size_t)1 << n, NS = upow(3, n);
    struct pauli_index ix;
    int r = make_index(n, ws, &ix);

    if (r == 0)
        for (size_t st = 0; st < NS; st++)
            for (size_t o = 0; o < d; o++)
                out[ix.os[st] + ix.oo[o]] = v[st * d + o];
    qt_ws_release(ws, mark);
    return r;
}

int qt_pauli_dual_batch(unsigned n, struct qt_ws *ws, size_t S, const double *F, size_t ldf,
                        double complex *rho)
{
    /* Samples per pass: the two work tensors stay within ~512 KiB (the L2 cache), where the
     * mode products run at arithmetic speed instead of memory speed. */
    size_t per = upow(6, n) * 2 * sizeof(double complex), chunk = ((size_t)512 << 10) / per;
    size_t dd = ((size_t)1 << n) << n;

    if (chunk < 32) /* at least 32 samples, so every slice is long enough to vectorise */
        chunk = 32;
    for (size_t t0 = 0; t0 < S; t0 += chunk) {
        size_t k = QT_MIN(chunk, S - t0);
        int r = run(MAP_DUAL, false, 1.0, n, ws, k, NULL, F + ldf * t0, ldf, rho + dd * t0, NULL);

        if (r < 0)
            return r;
    }
    return 0;
}
