/* Density-matrix operations and metric filling against analytic answers: physicalisation (clip
 * and Smolin), simplex projection, fidelity, trace distance, entanglement and Bell metrics. */
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_metrics.h"
#include "num/qt_rho.h"
#include "num/qt_rng.h"
#include "qt_test.h"

typedef double complex cplx;

#define MAXD  16
#define TAU   6.283185307179586476925286766559
#define SQRT2 1.4142135623730950488016887242097

/* ---- helpers ---- */

/* rho = psi psi^H. */
static void outer(size_t d, const cplx *psi, cplx *rho)
{
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++)
            rho[i + d * j] = psi[i] * conj(psi[j]);
}

/* rho = U diag(lam) U^H. */
static void from_spectrum(size_t d, const cplx *U, const double *lam, cplx *rho)
{
    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++) {
            cplx s = 0.0;

            for (size_t k = 0; k < d; k++)
                s += U[i + d * k] * lam[k] * conj(U[j + d * k]);
            rho[i + d * j] = s;
        }
}

static void diag_matrix(size_t d, const double *p, cplx *rho)
{
    memset(rho, 0, d * d * sizeof(*rho));
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] = p[i];
}

static void identity_over_d(size_t d, cplx *rho)
{
    memset(rho, 0, d * d * sizeof(*rho));
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] = 1.0 / (double)d;
}

/* A fixed 2 x 2 unitary: rotation by t with relative phase f. */
static void unitary2(cplx *U)
{
    double t = 0.37, f = 1.1;

    U[0] = cos(t);
    U[1] = sin(t) * cexp(I * f);
    U[2] = -sin(t) * cexp(-I * f);
    U[3] = cos(t);
}

/* A fixed 3 x 3 unitary: the Fourier matrix with row phases, U[j,k] = e^{i th_j} w^{jk}/sqrt 3. */
static void unitary3(cplx *U)
{
    static const double th[3] = {0.3, -1.2, 2.5};

    for (size_t j = 0; j < 3; j++)
        for (size_t k = 0; k < 3; k++)
            U[j + 3 * k] = cexp(I * (th[j] + TAU * (double)(j * k) / 3.0)) / sqrt(3.0);
}

/* A random unitary: Gram-Schmidt on complex Gaussian columns. */
static void random_unitary(struct qt_rng *r, size_t d, cplx *U)
{
    for (size_t k = 0; k < d; k++) {
        cplx *u = U + d * k;
        double n = 0.0;

        for (size_t i = 0; i < d; i++)
            u[i] = qt_rng_normal(r) + I * qt_rng_normal(r);
        for (size_t pass = 0; pass < 2; pass++)
            for (size_t l = 0; l < k; l++) {
                cplx c = 0.0;

                for (size_t i = 0; i < d; i++)
                    c += conj(U[i + d * l]) * u[i];
                for (size_t i = 0; i < d; i++)
                    u[i] -= c * U[i + d * l];
            }
        for (size_t i = 0; i < d; i++)
            n += creal(u[i] * conj(u[i]));
        for (size_t i = 0; i < d; i++)
            u[i] /= sqrt(n);
    }
}

static void random_ket(struct qt_rng *r, size_t d, cplx *psi)
{
    double n = 0.0;

    for (size_t i = 0; i < d; i++) {
        psi[i] = qt_rng_normal(r) + I * qt_rng_normal(r);
        n += creal(psi[i] * conj(psi[i]));
    }
    for (size_t i = 0; i < d; i++)
        psi[i] /= sqrt(n);
}

/* |<a|b>|^2. */
static double overlap2(size_t d, const cplx *a, const cplx *b)
{
    cplx s = 0.0;

    for (size_t i = 0; i < d; i++)
        s += conj(a[i]) * b[i];
    return creal(s * conj(s));
}

/* <psi|A|psi>, real part. */
static double expect(size_t d, const cplx *psi, const cplx *A)
{
    cplx s = 0.0;

    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++)
            s += conj(psi[i]) * A[i + d * j] * psi[j];
    return creal(s);
}

/* Kronecker product of an a x a and a b x b matrix / of two kets. */
static void kron(size_t a, const cplx *A, size_t b, const cplx *B, cplx *C)
{
    size_t d = a * b;

    for (size_t i1 = 0; i1 < a; i1++)
        for (size_t j1 = 0; j1 < a; j1++)
            for (size_t i2 = 0; i2 < b; i2++)
                for (size_t j2 = 0; j2 < b; j2++)
                    C[(i1 * b + i2) + d * (j1 * b + j2)] = A[i1 + a * j1] * B[i2 + b * j2];
}

static void kron_ket(size_t a, const cplx *x, size_t b, const cplx *y, cplx *z)
{
    for (size_t i = 0; i < a; i++)
        for (size_t j = 0; j < b; j++)
            z[i * b + j] = x[i] * y[j];
}

/* max |A - A^H|. */
static double herm_err(size_t d, const cplx *A)
{
    double e = 0.0;

    for (size_t j = 0; j < d; j++)
        for (size_t i = 0; i < d; i++)
            e = fmax(e, cabs(A[i + d * j] - conj(A[j + d * i])));
    return e;
}

static double re_trace(size_t d, const cplx *A)
{
    double t = 0.0;

    for (size_t i = 0; i < d; i++)
        t += creal(A[i + d * i]);
    return t;
}

/* Ascending eigenvalues of a Hermitian matrix. */
static void eigs(struct qt_ws *ws, size_t d, const cplx *A, double *lam)
{
    cplx V[MAXD * MAXD];
    struct qt_spectrum sp = {.V = V, .lam = lam};

    assert_int_equal(qt_rho_spectrum(ws, d, A, &sp), 0);
}

/* Checks that rho is a density matrix: Hermitian, trace 1, eigenvalues >= -atol. */
static void assert_density(struct qt_ws *ws, size_t d, const cplx *rho, double atol)
{
    double lam[MAXD];

    assert_true(herm_err(d, rho) <= 1e-14);
    qt_assert_close(re_trace(d, rho), 1.0, 0.0, 1e-13);
    eigs(ws, d, rho, lam);
    assert_true(lam[0] >= -atol);
}

/* Column k of V is, up to a phase, the ket u: |<u|v>| = 1. */
static void assert_same_ray(size_t d, const cplx *u, const cplx *v)
{
    qt_assert_close(overlap2(d, u, v), 1.0, 0.0, 1e-12);
}

/* Generalised Bell ket |Phi_{m,n}> = k^-1/2 sum_j w^{mj} |j>|j+n mod k>, built from the
 * definition. */
static void bell_ket(size_t k, size_t m, size_t n, cplx *phi)
{
    size_t d = k * k;

    memset(phi, 0, d * sizeof(*phi));
    for (size_t j = 0; j < k; j++)
        phi[j * k + (j + n) % k] = cexp(I * TAU * (double)(m * j) / (double)k) / sqrt((double)k);
}

/* Werner (isotropic) state p |Phi+><Phi+| + (1 - p) I / k^2. */
static void isotropic(size_t k, double p, cplx *rho)
{
    size_t d = k * k;
    cplx phi[MAXD];

    bell_ket(k, 0, 0, phi);
    outer(d, phi, rho);
    for (size_t i = 0; i < d * d; i++)
        rho[i] *= p;
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] += (1.0 - p) / (double)d;
}

/* A random Hermitian matrix with Gaussian entries, shifted by s I. */
static void random_hermitian(struct qt_rng *r, size_t d, double s, cplx *H)
{
    for (size_t j = 0; j < d; j++) {
        H[j + d * j] = qt_rng_normal(r) + s;
        for (size_t i = j + 1; i < d; i++) {
            H[i + d * j] = qt_rng_normal(r) + I * qt_rng_normal(r);
            H[j + d * i] = conj(H[i + d * j]);
        }
    }
}

static struct qt_spectrum spectrum_of(struct qt_ws *ws, size_t d, const cplx *rho, cplx *V,
                                      double *lam)
{
    struct qt_spectrum sp = {.V = V, .lam = lam};

    assert_int_equal(qt_rho_spectrum(ws, d, rho, &sp), 0);
    assert_int_equal(sp.d, d);
    return sp;
}

static double fidelity(struct qt_ws *ws, size_t d, const cplx *rho, const cplx *sigma)
{
    cplx V[MAXD * MAXD];
    double lam[MAXD], f = -1.0;
    struct qt_spectrum sp = spectrum_of(ws, d, rho, V, lam);

    assert_int_equal(qt_rho_fidelity(ws, &sp, sigma, &f), 0);
    return f;
}

static double trace_distance(struct qt_ws *ws, size_t d, const cplx *rho, const cplx *sigma)
{
    double t = -1.0;

    assert_int_equal(qt_rho_trace_distance(ws, d, rho, sigma, &t), 0);
    return t;
}

static double concurrence(struct qt_ws *ws, const cplx *rho)
{
    cplx V[16];
    double lam[4], c = -1.0;
    struct qt_spectrum sp = spectrum_of(ws, 4, rho, V, lam);

    assert_int_equal(qt_rho_concurrence(ws, &sp, rho, &c), 0);
    return c;
}

static double pt_norm(struct qt_ws *ws, size_t d, const cplx *rho)
{
    double n = -1.0;

    assert_int_equal(qt_rho_pt_norm(ws, d, rho, &n), 0);
    return n;
}

struct phys_out {
    cplx rho[MAXD * MAXD];
    cplx V[MAXD * MAXD];
    double lam[MAXD];
    struct qt_spectrum sp;
    struct qt_phys_info info;
};

static void physicalise(struct qt_ws *ws, size_t d, const cplx *raw, enum qt_physical mode,
                        double tolerance, struct phys_out *o)
{
    o->sp = (struct qt_spectrum){.V = o->V, .lam = o->lam};
    assert_int_equal(qt_rho_physicalise(ws, d, raw, mode, tolerance, o->rho, &o->sp, &o->info), 0);
    assert_int_equal(o->sp.d, d);
}

/* Fills res for rho (copied) with the given options and optional data. */
static void fill_metrics(struct qt_ws *ws, const struct qt_design *des, size_t d, const cplx *rho,
                         const struct qt_opts *opts, const double *y,
                         const struct qt_sample_info *info, struct qt_result *res)
{
    cplx V[MAXD * MAXD];
    double lam[MAXD];

    assert_int_equal(qt_result_init(res, d), 0);
    memcpy(res->rho, rho, d * d * sizeof(*rho));
    struct qt_spectrum sp = spectrum_of(ws, d, res->rho, V, lam);
    assert_int_equal(qt_metrics_fill(des, ws, y, info, &sp, opts, res), 0);
}

/* Same without data; des is a nopovm design of dimension d. */
static void fill_state_metrics(struct qt_ws *ws, size_t d, const cplx *rho,
                               const struct qt_opts *opts, struct qt_result *res)
{
    struct qt_design *des = NULL;
    struct qt_sample_info info = {0};

    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, d, &des, NULL), 0);
    fill_metrics(ws, des, d, rho, opts, NULL, &info, res);
    qt_design_free(des);
}

/* ---- physicalisation: clip ---- */

/* A 2 x 2 raw estimate with spectrum (0.9, -0.1): the negative eigenvalue is clipped, leaving the
 * pure state of the first eigenvector. */
static void test_clip_2x2(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx U[4], raw[4], expect_rho[4];
    const double lam[2] = {0.9, -0.1};

    (void)state;
    unitary2(U);
    from_spectrum(2, U, lam, raw);
    outer(2, U, expect_rho);
    physicalise(&ws, 2, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(2, o.rho, expect_rho) <= 1e-14);
    qt_assert_close(o.sp.lam[0], 0.0, 0.0, 1e-15);
    qt_assert_close(o.sp.lam[1], 1.0, 0.0, 1e-14);
    assert_same_ray(2, U, o.V + 2);
    qt_assert_close(o.info.tol, 1e-9, 0.0, 0.0);
    qt_assert_close(o.info.min_eig_raw, -0.1, 0.0, 1e-14);
    assert_int_equal(o.info.n_clipped, 1);
    assert_true(o.info.significant);
    assert_false(o.info.fallback);
    assert_density(&ws, 2, o.rho, 1e-15);
    qt_ws_done(&ws);
}

/* diag(0.7, 0.4, -0.1) rotated by a known unitary, plus an anti-Hermitian part that the
 * Hermitisation must remove: eigenvalues (0.7, 0.4, 0) / 1.1 in the same eigenbasis. */
static void test_clip_3x3_rotated(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx U[9], raw[9], K[9], expect_rho[9];
    const double lam[3] = {0.7, 0.4, -0.1}, lam_out[3] = {0.7 / 1.1, 0.4 / 1.1, 0.0};
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 11);
    unitary3(U);
    from_spectrum(3, U, lam, raw);
    random_hermitian(&rng, 3, 0.0, K);
    for (size_t i = 0; i < 9; i++)
        raw[i] += 0.3 * I * K[i]; /* anti-Hermitian */
    from_spectrum(3, U, lam_out, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    /* sp: ascending, (0, 0.4/1.1, 0.7/1.1), eigenvectors the columns of U in reverse order. */
    qt_assert_close(o.sp.lam[0], 0.0, 0.0, 1e-15);
    qt_assert_close(o.sp.lam[1], 0.4 / 1.1, 1e-13, 0.0);
    qt_assert_close(o.sp.lam[2], 0.7 / 1.1, 1e-13, 0.0);
    for (size_t k = 0; k < 3; k++)
        assert_same_ray(3, U + 3 * (2 - k), o.V + 3 * k);
    qt_assert_close(o.info.min_eig_raw, -0.1, 0.0, 1e-14);
    assert_int_equal(o.info.n_clipped, 1);
    assert_true(o.info.significant);
    assert_false(o.info.fallback);
    assert_density(&ws, 3, o.rho, 1e-15);
    /* raw and rho may alias. */
    memcpy(o.rho, raw, sizeof(raw));
    o.sp = (struct qt_spectrum){.V = o.V, .lam = o.lam};
    assert_int_equal(qt_rho_physicalise(&ws, 3, o.rho, QT_PHYS_CLIP, 1e-9, o.rho, &o.sp, &o.info),
                     0);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    qt_ws_done(&ws);
}

/* Small positive eigenvalues below the tolerance are clipped too; the "significant" flag needs
 * min_eig_raw < -10 tol. */
static void test_clip_small_eigenvalues(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx U[9], raw[9], expect_rho[9];
    const double keep[3] = {0.6, 0.4, 0.0};

    (void)state;
    unitary3(U);
    from_spectrum(3, U, keep, expect_rho);

    const double small_pos[3] = {0.6, 0.4, 5e-10};
    from_spectrum(3, U, small_pos, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    assert_int_equal(o.info.n_clipped, 1);
    qt_assert_close(o.info.min_eig_raw, 5e-10, 0.0, 1e-15);
    assert_false(o.info.significant);
    assert_false(o.info.fallback);
    qt_assert_close(o.sp.lam[0], 0.0, 0.0, 0.0); /* clipped to exactly zero */

    /* Slightly negative, within 10 tol: clipped, not significant. */
    const double small_neg[3] = {0.6, 0.4, -5e-9};
    from_spectrum(3, U, small_neg, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    assert_int_equal(o.info.n_clipped, 1);
    assert_false(o.info.significant);

    /* Beyond 10 tol: significant. */
    const double neg[3] = {0.6, 0.4, -2e-8};
    from_spectrum(3, U, neg, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    assert_int_equal(o.info.n_clipped, 1);
    qt_assert_close(o.info.min_eig_raw, -2e-8, 0.0, 1e-15);
    assert_true(o.info.significant);

    /* A larger tolerance clips more: 0.05 < 0.1 goes, the rest renormalises. */
    const double three[3] = {0.55, 0.4, 0.05}, two[3] = {0.55 / 0.95, 0.4 / 0.95, 0.0};
    from_spectrum(3, U, three, raw);
    from_spectrum(3, U, two, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 0.1, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    qt_assert_close(o.info.tol, 0.1, 0.0, 0.0);
    assert_int_equal(o.info.n_clipped, 1);
    assert_false(o.info.significant);
    qt_ws_done(&ws);
}

/* tol = max(tolerance, 50 d eps max(1, |H|_2)), where |H|_2 is the largest |eigenvalue|, which
 * may be a negative one. */
static void test_clip_tolerance_scaling(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx raw[9], expect_rho[9];

    (void)state;
    /* |H|_2 = 1e8: tol = 150 eps 1e8 = 3.3e-6 clips 2e-6 but not 1e-5. */
    const double big[3] = {1e8, 2e-6, 1e-5};
    const double big_out[3] = {1e8 / (1e8 + 1e-5), 0.0, 1e-5 / (1e8 + 1e-5)};
    diag_matrix(3, big, raw);
    diag_matrix(3, big_out, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    qt_assert_close(o.info.tol, 50.0 * 3.0 * DBL_EPSILON * 1e8, 1e-12, 0.0);
    assert_int_equal(o.info.n_clipped, 1);
    qt_assert_close(o.info.min_eig_raw, 2e-6, 1e-6, 0.0);
    assert_false(o.info.significant);
    for (size_t i = 0; i < 3; i++)
        qt_assert_close(creal(o.rho[i + 3 * i]), big_out[i], 1e-9, 1e-20);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);

    /* The norm comes from a large negative eigenvalue: tol = 150 eps 1e7 = 3.3e-7 clips 2e-7. */
    const double neg[4] = {1.0, 0.5, -1e7, 2e-7};
    const double neg_out[4] = {1.0 / 1.5, 0.5 / 1.5, 0.0, 0.0};
    cplx raw4[16], expect4[16];
    diag_matrix(4, neg, raw4);
    diag_matrix(4, neg_out, expect4);
    physicalise(&ws, 4, raw4, QT_PHYS_CLIP, 1e-9, &o);
    qt_assert_close(o.info.tol, 50.0 * 4.0 * DBL_EPSILON * 1e7, 1e-12, 0.0);
    qt_assert_close(o.info.min_eig_raw, -1e7, 1e-15, 0.0);
    assert_int_equal(o.info.n_clipped, 2);
    assert_true(o.info.significant);
    assert_false(o.info.fallback);
    assert_true(qt_frob_diff(4, o.rho, expect4) <= 1e-14);

    /* Small norms do not shrink the floor below 50 d eps: with tolerance 0, 1e-15 < 50*2*eps. */
    const double tiny[2] = {1.0, 1e-15};
    const double tiny_out[2] = {1.0, 0.0};
    cplx raw2[4], expect2[4];
    diag_matrix(2, tiny, raw2);
    diag_matrix(2, tiny_out, expect2);
    physicalise(&ws, 2, raw2, QT_PHYS_CLIP, 0.0, &o);
    qt_assert_close(o.info.tol, 100.0 * DBL_EPSILON, 1e-15, 0.0);
    assert_int_equal(o.info.n_clipped, 1);
    assert_true(qt_frob_diff(2, o.rho, expect2) <= 1e-16);
    qt_ws_done(&ws);
}

/* Nothing left after clipping: I/d and the fallback flag. */
static void test_clip_fallback(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx U[9], raw[9], expect_rho[9];

    (void)state;
    unitary3(U);
    identity_over_d(3, expect_rho);

    const double allneg[3] = {-0.1, -0.2, -0.3};
    from_spectrum(3, U, allneg, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);
    assert_true(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 3);
    assert_true(o.info.significant);
    qt_assert_close(o.info.min_eig_raw, -0.3, 0.0, 1e-14);
    for (size_t i = 0; i < 3; i++)
        qt_assert_close(o.sp.lam[i], 1.0 / 3.0, 0.0, 1e-15);

    /* The zero matrix. */
    memset(raw, 0, sizeof(raw));
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);
    assert_true(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 3);
    assert_false(o.info.significant);

    /* Everything below a large tolerance. */
    const double small[3] = {0.2, 0.15, -0.01};
    from_spectrum(3, U, small, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 0.25, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);
    assert_true(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 3);

    /* The kept sum equals tol exactly (0.25 is not < 0.25, but the sum 0.25 <= tol). */
    const double edge[3] = {0.25, -1.0, -1.0};
    diag_matrix(3, edge, raw);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 0.25, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);
    assert_true(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 2);

    /* d = 1: a negative number becomes the 1 x 1 state 1. */
    cplx one = -0.3;
    physicalise(&ws, 1, &one, QT_PHYS_CLIP, 1e-9, &o);
    qt_assert_close(creal(o.rho[0]), 1.0, 0.0, 1e-15);
    qt_assert_close(cimag(o.rho[0]), 0.0, 0.0, 0.0);
    assert_true(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 1);

    /* One eigenvalue just above tol survives: no fallback, pure state. */
    const double above[3] = {0.5, -1.0, -1.0};
    const double pure[3] = {1.0, 0.0, 0.0};
    diag_matrix(3, above, raw);
    diag_matrix(3, pure, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_CLIP, 0.25, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-15);
    assert_false(o.info.fallback);
    assert_int_equal(o.info.n_clipped, 2);
    qt_ws_done(&ws);
}

/* Random raw estimates: the result is always a density matrix and commutes with the Hermitian
 * part of the input (same eigenbasis). */
static void test_clip_random(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct phys_out o;
    cplx H[MAXD * MAXD];

    (void)state;
    qt_rng_seed(&rng, 2024);
    for (size_t t = 0; t < 100; t++) {
        size_t d = 2 + t % 7;

        random_hermitian(&rng, d, 0.5, H);
        physicalise(&ws, d, H, QT_PHYS_CLIP, 1e-9, &o);
        assert_density(&ws, d, o.rho, 1e-14);
        /* [rho, H] = 0 */
        double c = 0.0;
        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++) {
                cplx s = 0.0;

                for (size_t k = 0; k < d; k++)
                    s += o.rho[i + d * k] * H[k + d * j] - H[i + d * k] * o.rho[k + d * j];
                c = fmax(c, cabs(s));
            }
        assert_true(c <= 1e-12);
        /* The reported spectrum rebuilds rho. */
        cplx R[MAXD * MAXD];
        from_spectrum(d, o.V, o.lam, R);
        assert_true(qt_frob_diff(d, R, o.rho) <= 1e-13);
        for (size_t k = 1; k < d; k++)
            assert_true(o.lam[k] >= o.lam[k - 1]);
    }
    qt_ws_done(&ws);
}

/* ---- physicalisation: Smolin ---- */

static void test_smolin_known(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct phys_out o;
    cplx U[9], raw[9], expect_rho[9];
    const double want[3] = {0.6, 0.4, 0.0};

    (void)state;
    unitary3(U);
    from_spectrum(3, U, want, expect_rho);

    /* Trace 1: (0.62, 0.42, -0.04) -> (0.6, 0.4, 0). */
    const double a[3] = {0.62, 0.42, -0.04};
    from_spectrum(3, U, a, raw);
    physicalise(&ws, 3, raw, QT_PHYS_SMOLIN, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    qt_assert_close(o.sp.lam[0], 0.0, 0.0, 1e-15);
    qt_assert_close(o.sp.lam[1], 0.4, 1e-13, 0.0);
    qt_assert_close(o.sp.lam[2], 0.6, 1e-13, 0.0);
    qt_assert_close(o.info.min_eig_raw, -0.04, 0.0, 1e-14);
    assert_true(o.info.significant);
    assert_false(o.info.fallback);
    assert_density(&ws, 3, o.rho, 1e-15);

    /* Trace 2: divided by the trace first, same answer. */
    const double b[3] = {1.24, 0.84, -0.08};
    from_spectrum(3, U, b, raw);
    physicalise(&ws, 3, raw, QT_PHYS_SMOLIN, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);

    /* Negative trace: no division; (0.1, -0.5, -0.6) projects with theta = -2/3. */
    const double c[3] = {0.1, -0.5, -0.6};
    const double c_out[3] = {0.1 + 2.0 / 3.0, -0.5 + 2.0 / 3.0, -0.6 + 2.0 / 3.0};
    from_spectrum(3, U, c, raw);
    from_spectrum(3, U, c_out, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_SMOLIN, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);
    assert_false(o.info.fallback);

    /* Zero trace: no division; (0.5, -0.5, 0) -> (0.75, 0, 0.25). */
    const double z[3] = {0.5, -0.5, 0.0};
    const double z_out[3] = {0.75, 0.0, 0.25};
    from_spectrum(3, U, z, raw);
    from_spectrum(3, U, z_out, expect_rho);
    physicalise(&ws, 3, raw, QT_PHYS_SMOLIN, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, expect_rho) <= 1e-14);

    /* A valid density matrix is unchanged, small eigenvalues included (no tolerance clip). */
    const double valid[3] = {0.7, 0.3 - 1e-10, 1e-10};
    from_spectrum(3, U, valid, raw);
    physicalise(&ws, 3, raw, QT_PHYS_SMOLIN, 1e-9, &o);
    assert_true(qt_frob_diff(3, o.rho, raw) <= 1e-15);
    qt_assert_close(o.sp.lam[0], 1e-10, 1e-5, 0.0);
    qt_ws_done(&ws);
}

/* Smolin is the nearest density matrix in Frobenius norm to the trace-normalised input, so it is
 * never farther than the clip result. */
static void test_smolin_vs_clip_random(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct phys_out s, c;
    cplx H[MAXD * MAXD], X[MAXD * MAXD];
    size_t n = 0, strict = 0;

    (void)state;
    qt_rng_seed(&rng, 7);
    while (n < 200) {
        size_t d = 2 + n % 6;

        random_hermitian(&rng, d, 0.8, H);
        double tr = re_trace(d, H);
        if (!(tr > 0.1))
            continue;
        n++;
        for (size_t i = 0; i < d * d; i++)
            X[i] = H[i] / tr;
        physicalise(&ws, d, H, QT_PHYS_SMOLIN, 1e-9, &s);
        physicalise(&ws, d, H, QT_PHYS_CLIP, 1e-9, &c);
        assert_density(&ws, d, s.rho, 1e-14);
        double ds = qt_frob_diff(d, s.rho, X), dc = qt_frob_diff(d, c.rho, X);
        assert_true(ds <= dc + 1e-12);
        strict += ds < dc - 1e-6;
        /* Optimality: projecting the result again changes nothing. */
        physicalise(&ws, d, s.rho, QT_PHYS_SMOLIN, 1e-9, &c);
        assert_true(qt_frob_diff(d, s.rho, c.rho) <= 1e-13);
    }
    assert_true(strict > 20); /* the comparison is not vacuous */
    qt_ws_done(&ws);
}

/* ---- simplex projection ---- */

static void assert_vec(size_t n, const double *got, const double *want, double atol)
{
    for (size_t i = 0; i < n; i++)
        qt_assert_close(got[i], want[i], 0.0, atol);
}

static void test_simplex_known(void **state)
{
    double scratch[8];

    (void)state;
    {
        double x[3] = {0.62, 0.42, -0.04}, w[3] = {0.6, 0.4, 0.0};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 1e-15);
    }
    { /* order is kept */
        double x[3] = {-0.04, 0.62, 0.42}, w[3] = {0.0, 0.6, 0.4};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 1e-15);
    }
    { /* already on the simplex */
        double x[4] = {0.1, 0.2, 0.3, 0.4}, w[4] = {0.1, 0.2, 0.3, 0.4};
        qt_simplex_project(4, x, scratch);
        assert_vec(4, x, w, 1e-16);
    }
    { /* a vertex */
        double x[3] = {0.0, 1.0, 0.0}, w[3] = {0.0, 1.0, 0.0};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 0.0);
    }
    { /* all equal, any value */
        double x[4] = {7.0, 7.0, 7.0, 7.0}, w[4] = {0.25, 0.25, 0.25, 0.25};
        qt_simplex_project(4, x, scratch);
        assert_vec(4, x, w, 1e-15);
        double y[5] = {-3.0, -3.0, -3.0, -3.0, -3.0}, v[5] = {0.2, 0.2, 0.2, 0.2, 0.2};
        qt_simplex_project(5, y, scratch);
        assert_vec(5, y, v, 1e-15);
    }
    { /* one huge entry */
        double x[4] = {2.0, 1e6, 3.0, -5.0}, w[4] = {0.0, 1.0, 0.0, 0.0};
        qt_simplex_project(4, x, scratch);
        assert_vec(4, x, w, 1e-10);
    }
    { /* ties at the top */
        double x[3] = {0.7, 0.0, 0.7}, w[3] = {0.5, 0.0, 0.5};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 1e-15);
    }
    { /* uniform shift inside the simplex: (0.3, 0.3, 0.3) + 1/30 */
        double x[3] = {0.3, 0.3, 0.3}, w[3] = {1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 1e-15);
    }
    { /* n = 1 */
        double x[1] = {-4.0};
        qt_simplex_project(1, x, scratch);
        qt_assert_close(x[0], 1.0, 0.0, 1e-15);
    }
    { /* k = 1, theta = 1: the second entry ties with (2 + 1 - 1)/2 = 1 and is dropped */
        double x[3] = {2.0, 1.0, 0.5}, w[3] = {1.0, 0.0, 0.0};
        qt_simplex_project(3, x, scratch);
        assert_vec(3, x, w, 1e-15);
    }
    { /* (0.5, 0.4, 0.3, -1): k = 3, theta = 0.2/3 */
        double x[4] = {0.5, 0.4, 0.3, -1.0};
        double w[4] = {0.5 - 0.2 / 3.0, 0.4 - 0.2 / 3.0, 0.3 - 0.2 / 3.0, 0.0};
        qt_simplex_project(4, x, scratch);
        assert_vec(4, x, w, 1e-15);
    }
}

/* Random vectors: the KKT conditions of the projection, x_i - y_i = theta where y_i > 0 and
 * x_i <= theta where y_i = 0, with sum y = 1. */
static void test_simplex_kkt_random(void **state)
{
    struct qt_rng rng;
    double scratch[12];

    (void)state;
    qt_rng_seed(&rng, 99);
    for (size_t t = 0; t < 500; t++) {
        size_t n = 1 + t % 12;
        double x[12], y[12], sum = 0.0, theta = 0.0;
        bool have_theta = false;

        for (size_t i = 0; i < n; i++)
            x[i] = y[i] = (t % 3 == 0 ? 5.0 : 0.5) * qt_rng_normal(&rng);
        qt_simplex_project(n, y, scratch);
        for (size_t i = 0; i < n; i++) {
            assert_true(y[i] >= 0.0);
            sum += y[i];
            if (y[i] > 0.0) {
                if (!have_theta)
                    theta = x[i] - y[i];
                have_theta = true;
                qt_assert_close(x[i] - y[i], theta, 0.0, 1e-12);
            }
        }
        qt_assert_close(sum, 1.0, 0.0, 1e-12);
        assert_true(have_theta);
        for (size_t i = 0; i < n; i++)
            if (!(y[i] > 0.0))
                assert_true(x[i] <= theta + 1e-12);
    }
}

/* ---- fidelity ---- */

static void test_fidelity_self(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx rho[MAXD * MAXD];
    const double e0[3] = {1.0, 0.0, 0.0};

    (void)state;
    qt_rng_seed(&rng, 5);
    for (size_t t = 0; t < 60; t++) {
        size_t d = 2 + t % 8;

        qt_rng_state(&rng, d, d, rho); /* full rank */
        qt_assert_close(fidelity(&ws, d, rho, rho), 1.0, 0.0, 1e-12);
    }
    identity_over_d(5, rho);
    qt_assert_close(fidelity(&ws, 5, rho, rho), 1.0, 0.0, 1e-12);
    diag_matrix(3, e0, rho); /* exactly diagonal pure state: exact spectrum */
    qt_assert_close(fidelity(&ws, 3, rho, rho), 1.0, 0.0, 1e-12);
    qt_ws_done(&ws);
}

/* Rank-deficient states are valid density matrices (pure targets, clipped estimates), so the
 * same identities must hold to the same accuracy, and F must never exceed 1. */
static void test_fidelity_rank_deficient(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx a[MAXD * MAXD], b[MAXD * MAXD], U[16];
    const double p[4] = {0.5, 0.3, 0.2, 0.0}, q[4] = {0.1, 0.1, 0.4, 0.4};
    double worst_self = 0.0, worst_sym = 0.0;

    (void)state;
    qt_rng_seed(&rng, 21);
    for (size_t t = 0; t < 60; t++) {
        size_t d = 3 + t % 6, rank = 1 + t % (d - 1);

        qt_rng_state(&rng, d, rank, a);
        qt_rng_state(&rng, d, d, b);
        double f = fidelity(&ws, d, a, a);
        worst_self = fmax(worst_self, fabs(f - 1.0));
        worst_sym = fmax(worst_sym, fabs(fidelity(&ws, d, a, b) - fidelity(&ws, d, b, a)));
    }
    print_message("max |F(rho, rho) - 1| = %.3g, max |F(a, b) - F(b, a)| = %.3g\n", worst_self,
                  worst_sym);
    qt_assert_close(worst_self, 0.0, 0.0, 1e-12);
    qt_assert_close(worst_sym, 0.0, 0.0, 1e-10);
    /* Commuting, rotated, with a zero eigenvalue: (sum sqrt(p_i q_i))^2. */
    double bc = 0.0;
    for (size_t i = 0; i < 4; i++)
        bc += sqrt(p[i] * q[i]);
    random_unitary(&rng, 4, U);
    from_spectrum(4, U, p, a);
    from_spectrum(4, U, q, b);
    qt_assert_close(fidelity(&ws, 4, a, b), bc * bc, 1e-10, 0.0);
    qt_assert_close(fidelity(&ws, 4, b, a), bc * bc, 1e-10, 0.0);
    qt_ws_done(&ws);
}

static void test_fidelity_orthogonal_pure(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx U[MAXD * MAXD], a[MAXD * MAXD], b[MAXD * MAXD];

    (void)state;
    qt_rng_seed(&rng, 6);
    for (size_t d = 2; d <= 8; d++) {
        random_unitary(&rng, d, U);
        outer(d, U, a);
        outer(d, U + d, b);
        qt_assert_close(fidelity(&ws, d, a, b), 0.0, 0.0, 1e-12);
        qt_assert_close(fidelity(&ws, d, b, a), 0.0, 0.0, 1e-12);
    }
    const double e0[2] = {1.0, 0.0}, e1[2] = {0.0, 1.0};
    diag_matrix(2, e0, a);
    diag_matrix(2, e1, b);
    qt_assert_close(fidelity(&ws, 2, a, b), 0.0, 0.0, 0.0);
    qt_ws_done(&ws);
}

/* F(|psi><psi|, sigma) = <psi|sigma|psi>, from either side; two pure states give |<a|b>|^2. */
static void test_fidelity_pure_mixed(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx psi[MAXD], phi[MAXD], P[MAXD * MAXD], Q[MAXD * MAXD], sigma[MAXD * MAXD];

    (void)state;
    qt_rng_seed(&rng, 8);
    for (size_t t = 0; t < 60; t++) {
        size_t d = 2 + t % 7;

        random_ket(&rng, d, psi);
        random_ket(&rng, d, phi);
        outer(d, psi, P);
        outer(d, phi, Q);
        qt_rng_state(&rng, d, d, sigma);
        double want = expect(d, psi, sigma);
        qt_assert_close(fidelity(&ws, d, sigma, P), want, 1e-10, 1e-12);
        qt_assert_close(fidelity(&ws, d, P, sigma), want, 1e-10, 1e-12);
        qt_assert_close(fidelity(&ws, d, P, Q), overlap2(d, psi, phi), 1e-10, 1e-12);
    }
    qt_ws_done(&ws);
}

static void test_fidelity_symmetric(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx a[MAXD * MAXD], b[MAXD * MAXD];

    (void)state;
    qt_rng_seed(&rng, 9);
    for (size_t t = 0; t < 100; t++) {
        size_t d = 2 + t % 8;

        qt_rng_state(&rng, d, d, a);
        qt_rng_state(&rng, d, d, b);
        double fab = fidelity(&ws, d, a, b), fba = fidelity(&ws, d, b, a);
        qt_assert_close(fab, fba, 0.0, 1e-10);
        assert_true(fab > 0.0 && fab <= 1.0 + 1e-12);
    }
    qt_ws_done(&ws);
}

/* Commuting states: F = (sum_i sqrt(p_i q_i))^2, in any common eigenbasis. */
static void test_fidelity_commuting(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    cplx U[16], a[16], b[16];
    struct qt_rng rng;
    const double p[4] = {0.5, 0.3, 0.2, 0.0}, q[4] = {0.1, 0.1, 0.4, 0.4};
    double bc = 0.0;

    (void)state;
    for (size_t i = 0; i < 4; i++)
        bc += sqrt(p[i] * q[i]);
    diag_matrix(4, p, a);
    diag_matrix(4, q, b);
    qt_assert_close(fidelity(&ws, 4, a, b), bc * bc, 1e-12, 0.0);
    qt_assert_close(fidelity(&ws, 4, b, a), bc * bc, 1e-12, 0.0);
    /* Rotated into a common random eigenbasis, full rank. */
    const double pf[4] = {0.5, 0.3, 0.15, 0.05};
    double bcf = 0.0;
    for (size_t i = 0; i < 4; i++)
        bcf += sqrt(pf[i] * q[i]);
    qt_rng_seed(&rng, 10);
    random_unitary(&rng, 4, U);
    from_spectrum(4, U, pf, a);
    from_spectrum(4, U, q, b);
    qt_assert_close(fidelity(&ws, 4, a, b), bcf * bcf, 1e-12, 0.0);
    qt_assert_close(fidelity(&ws, 4, b, a), bcf * bcf, 1e-12, 0.0);
    /* Disjoint supports: 0. */
    const double r[3] = {0.5, 0.5, 0.0}, s[3] = {0.0, 0.0, 1.0};
    diag_matrix(3, r, a);
    diag_matrix(3, s, b);
    qt_assert_close(fidelity(&ws, 3, a, b), 0.0, 0.0, 1e-15);
    /* With I/d: (sum sqrt(p_i / d))^2. */
    const double m[3] = {0.7, 0.2, 0.1};
    diag_matrix(3, m, a);
    identity_over_d(3, b);
    double want = pow(sqrt(0.7 / 3.0) + sqrt(0.2 / 3.0) + sqrt(0.1 / 3.0), 2.0);
    qt_assert_close(fidelity(&ws, 3, a, b), want, 1e-12, 0.0);
    qt_ws_done(&ws);
}

/* ---- trace distance ---- */

static void test_trace_distance_known(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx U[MAXD * MAXD], a[MAXD * MAXD], b[MAXD * MAXD], psi[MAXD], phi[MAXD];

    (void)state;
    qt_rng_seed(&rng, 12);
    for (size_t d = 2; d <= 8; d++) {
        random_unitary(&rng, d, U);
        outer(d, U, a);
        outer(d, U + d, b);
        qt_assert_close(trace_distance(&ws, d, a, b), 1.0, 0.0, 1e-13);
        qt_rng_state(&rng, d, d, a);
        qt_assert_close(trace_distance(&ws, d, a, a), 0.0, 0.0, 0.0);
        /* Pure states: T = sqrt(1 - |<psi|phi>|^2). */
        random_ket(&rng, d, psi);
        random_ket(&rng, d, phi);
        outer(d, psi, a);
        outer(d, phi, b);
        qt_assert_close(trace_distance(&ws, d, a, b), sqrt(1.0 - overlap2(d, psi, phi)), 1e-12,
                        0.0);
    }
    /* Commuting: half the L1 distance of the spectra, 0.5 (0.4 + 0.2 + 0.2 + 0.4) = 0.6. */
    const double p[4] = {0.5, 0.3, 0.2, 0.0}, q[4] = {0.1, 0.1, 0.4, 0.4};
    diag_matrix(4, p, a);
    diag_matrix(4, q, b);
    qt_assert_close(trace_distance(&ws, 4, a, b), 0.6, 1e-14, 0.0);
    random_unitary(&rng, 4, U);
    from_spectrum(4, U, p, a);
    from_spectrum(4, U, q, b);
    qt_assert_close(trace_distance(&ws, 4, a, b), 0.6, 1e-13, 0.0);
    qt_assert_close(trace_distance(&ws, 4, b, a), 0.6, 1e-13, 0.0);
    qt_ws_done(&ws);
}

/* Fuchs-van de Graaf: 1 - sqrt(F) <= T <= sqrt(1 - F). */
static void test_fuchs_van_de_graaf(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx a[MAXD * MAXD], b[MAXD * MAXD];

    (void)state;
    qt_rng_seed(&rng, 13);
    for (size_t t = 0; t < 200; t++) {
        size_t d = 2 + t % 7;

        qt_rng_state(&rng, d, 1 + t % d, a);
        qt_rng_state(&rng, d, 1 + (t / 7) % d, b);
        double f = fidelity(&ws, d, a, b), tdist = trace_distance(&ws, d, a, b);
        assert_true(tdist >= 0.0 && tdist <= 1.0 + 1e-12);
        assert_true(1.0 - sqrt(f) <= tdist + 1e-9);
        assert_true(tdist <= sqrt(fmax(0.0, 1.0 - f)) + 1e-9);
        qt_assert_close(tdist, trace_distance(&ws, d, b, a), 0.0, 1e-13);
    }
    qt_ws_done(&ws);
}

/* ---- concurrence ---- */

static void test_concurrence_bell(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    cplx phi[4], rho[16];

    (void)state;
    for (size_t m = 0; m < 2; m++)
        for (size_t n = 0; n < 2; n++) {
            bell_ket(2, m, n, phi);
            outer(4, phi, rho);
            qt_assert_close(concurrence(&ws, rho), 1.0, 0.0, 1e-10);
        }
    qt_ws_done(&ws);
}

static void test_concurrence_product(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx x[2], y[2], psi[4], rho[16], A[4], B[4];

    (void)state;
    const double e00[4] = {1.0, 0.0, 0.0, 0.0};
    diag_matrix(4, e00, rho);
    qt_assert_close(concurrence(&ws, rho), 0.0, 0.0, 1e-7);
    identity_over_d(4, rho);
    qt_assert_close(concurrence(&ws, rho), 0.0, 0.0, 1e-12);
    qt_rng_seed(&rng, 14);
    for (size_t t = 0; t < 20; t++) {
        random_ket(&rng, 2, x);
        random_ket(&rng, 2, y);
        kron_ket(2, x, 2, y, psi);
        outer(4, psi, rho);
        qt_assert_close(concurrence(&ws, rho), 0.0, 0.0, 1e-6);
        /* Mixed product states too. */
        qt_rng_state(&rng, 2, 2, A);
        qt_rng_state(&rng, 2, 2, B);
        kron(2, A, 2, B, rho);
        qt_assert_close(concurrence(&ws, rho), 0.0, 0.0, 1e-10);
    }
    qt_ws_done(&ws);
}

/* Werner p |Phi+><Phi+| + (1 - p) I/4: C = max(0, (3p - 1)/2); a|00> + b|11>: C = 2|ab|. */
static void test_concurrence_werner_and_pure(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    cplx rho[16], psi[4];
    static const double ps[] = {0.0, 0.1, 0.25, 1.0 / 3.0, 0.4, 0.5, 0.75, 0.9, 1.0};

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(ps); i++) {
        isotropic(2, ps[i], rho);
        qt_assert_close(concurrence(&ws, rho), fmax(0.0, (3.0 * ps[i] - 1.0) / 2.0), 0.0, 1e-10);
    }
    for (size_t i = 0; i <= 8; i++) {
        double t = 0.2 * (double)i, f = 0.7 * (double)i - 1.0;
        cplx a = cos(t), b = sin(t) * cexp(I * f);

        memset(psi, 0, sizeof(psi));
        psi[0] = a;
        psi[3] = b;
        outer(4, psi, rho);
        qt_assert_close(concurrence(&ws, rho), 2.0 * cabs(a * b), 0.0, 1e-7);
        /* a|01> + b|10> is the same up to a local unitary. */
        memset(psi, 0, sizeof(psi));
        psi[1] = a;
        psi[2] = b;
        outer(4, psi, rho);
        qt_assert_close(concurrence(&ws, rho), 2.0 * cabs(a * b), 0.0, 1e-7);
    }
    qt_ws_done(&ws);
}

/* ---- partial transpose ---- */

static void test_pt_norm(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    cplx phi[MAXD], rho[MAXD * MAXD], x[4], y[4], psi[MAXD], A[16], B[16];

    (void)state;
    /* All four Bell states: 2. */
    for (size_t i = 0; i < 4; i++) {
        bell_ket(2, i / 2, i % 2, phi);
        outer(4, phi, rho);
        qt_assert_close(pt_norm(&ws, 4, rho), 2.0, 0.0, 1e-12);
    }
    /* Maximally entangled k x k: k (negativity (k - 1)/2). */
    for (size_t k = 2; k <= 4; k++) {
        bell_ket(k, 1, k - 1, phi);
        outer(k * k, phi, rho);
        qt_assert_close(pt_norm(&ws, k * k, rho), (double)k, 0.0, 1e-12);
    }
    /* a|00> + b|11>: (|a| + |b|)^2 = 1 + 2|ab|. */
    memset(psi, 0, 4 * sizeof(*psi));
    psi[0] = 0.6;
    psi[3] = 0.8 * I;
    outer(4, psi, rho);
    qt_assert_close(pt_norm(&ws, 4, rho), 1.96, 0.0, 1e-12);
    /* Product states: 1. */
    qt_rng_seed(&rng, 15);
    for (size_t k = 2; k <= 4; k++)
        for (size_t t = 0; t < 5; t++) {
            random_ket(&rng, k, x);
            random_ket(&rng, k, y);
            kron_ket(k, x, k, y, psi);
            outer(k * k, psi, rho);
            qt_assert_close(pt_norm(&ws, k * k, rho), 1.0, 0.0, 1e-12);
            qt_rng_state(&rng, k, k, A);
            qt_rng_state(&rng, k, 1 + t % k, B);
            kron(k, A, k, B, rho);
            qt_assert_close(pt_norm(&ws, k * k, rho), 1.0, 0.0, 1e-12);
        }
    /* Isotropic 2 x 2: 1 + max(0, (3p - 1)/2); 3 x 3 at p = 1/2: 1 + 3 (1/6 - 1/18) 2 = 5/3. */
    for (size_t i = 0; i <= 10; i++) {
        double p = 0.1 * (double)i;

        isotropic(2, p, rho);
        qt_assert_close(pt_norm(&ws, 4, rho), 1.0 + fmax(0.0, (3.0 * p - 1.0) / 2.0), 0.0, 1e-12);
    }
    isotropic(3, 0.5, rho);
    qt_assert_close(pt_norm(&ws, 9, rho), 5.0 / 3.0, 0.0, 1e-12);
    assert_int_equal(qt_isqrt_exact(0), 0);
    assert_int_equal(qt_isqrt_exact(1), 1);
    assert_int_equal(qt_isqrt_exact(4), 2);
    assert_int_equal(qt_isqrt_exact(8), 0);
    assert_int_equal(qt_isqrt_exact(15), 0);
    assert_int_equal(qt_isqrt_exact(65536), 256);
    assert_int_equal(qt_isqrt_exact(65535), 0);
    qt_ws_done(&ws);
}

/* ---- Bell fidelities ---- */

/* k = 2 in the origin's order: Phi+, Psi+, Phi-, Psi-, from explicit kets. */
static void test_bell_order_qubits(void **state)
{
    const double s = 1.0 / SQRT2;
    const cplx kets[4][4] = {
        {s, 0.0, 0.0, s},  /* Phi+ = (|00> + |11>)/sqrt2 */
        {0.0, s, s, 0.0},  /* Psi+ = (|01> + |10>)/sqrt2 */
        {s, 0.0, 0.0, -s}, /* Phi- */
        {0.0, s, -s, 0.0}, /* Psi- */
    };
    cplx rho[16];
    double fid[4];

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        outer(4, kets[i], rho);
        qt_rho_bell(4, rho, fid);
        for (size_t j = 0; j < 4; j++)
            qt_assert_close(fid[j], i == j ? 1.0 : 0.0, 0.0, 1e-15);
    }
    /* |00>: half Phi+, half Phi-. */
    const double e00[4] = {1.0, 0.0, 0.0, 0.0}, want[4] = {0.5, 0.0, 0.5, 0.0};
    diag_matrix(4, e00, rho);
    qt_rho_bell(4, rho, fid);
    assert_vec(4, fid, want, 1e-15);
}

/* k = 3, 4: each Bell state built from the definition (phase w^{+mj}) gives a one-hot vector at
 * index m k + n; a random pure state gives |<Phi_i|psi>|^2; the fidelities sum to 1. */
static void test_bell_onehot_and_complete(void **state)
{
    struct qt_rng rng;
    cplx phi[MAXD], psi[MAXD], rho[MAXD * MAXD];
    double fid[MAXD];

    (void)state;
    qt_rng_seed(&rng, 16);
    for (size_t k = 2; k <= 4; k++) {
        size_t d = k * k;

        for (size_t m = 0; m < k; m++)
            for (size_t n = 0; n < k; n++) {
                bell_ket(k, m, n, phi);
                outer(d, phi, rho);
                qt_rho_bell(d, rho, fid);
                for (size_t j = 0; j < d; j++)
                    qt_assert_close(fid[j], j == m * k + n ? 1.0 : 0.0, 0.0, 1e-14);
            }
        for (size_t t = 0; t < 10; t++) {
            double sum = 0.0;

            random_ket(&rng, d, psi);
            outer(d, psi, rho);
            qt_rho_bell(d, rho, fid);
            for (size_t m = 0; m < k; m++)
                for (size_t n = 0; n < k; n++) {
                    bell_ket(k, m, n, phi);
                    qt_assert_close(fid[m * k + n], overlap2(d, phi, psi), 0.0, 1e-14);
                }
            for (size_t j = 0; j < d; j++)
                sum += fid[j];
            qt_assert_close(sum, 1.0, 0.0, 1e-13);
            qt_rng_state(&rng, d, 1 + t % d, rho);
            qt_rho_bell(d, rho, fid);
            sum = 0.0;
            for (size_t j = 0; j < d; j++) {
                assert_true(fid[j] >= -1e-15);
                sum += fid[j];
            }
            qt_assert_close(sum, 1.0, 0.0, 1e-13);
        }
    }
    /* k = 3 explicitly: index 3 = (|00> + w|11> + w^2|22>)/sqrt3, index 1 = |0,1>+|1,2>+|2,0>. */
    const cplx w = cexp(I * TAU / 3.0);
    memset(phi, 0, 9 * sizeof(*phi));
    phi[0] = 1.0 / sqrt(3.0);
    phi[4] = w / sqrt(3.0);
    phi[8] = w * w / sqrt(3.0);
    outer(9, phi, rho);
    qt_rho_bell(9, rho, fid);
    for (size_t j = 0; j < 9; j++)
        qt_assert_close(fid[j], j == 3 ? 1.0 : 0.0, 0.0, 1e-14);
    memset(phi, 0, 9 * sizeof(*phi));
    phi[1] = phi[5] = phi[6] = 1.0 / sqrt(3.0);
    outer(9, phi, rho);
    qt_rho_bell(9, rho, fid);
    for (size_t j = 0; j < 9; j++)
        qt_assert_close(fid[j], j == 1 ? 1.0 : 0.0, 0.0, 1e-14);
}

/* ---- metrics ---- */

static const enum qt_metric_id spectral_ids[] = {
    QT_MT_PURITY,         QT_MT_TRACE,          QT_MT_LINEAR_ENTROPY,     QT_MT_EIGENVALUES,
    QT_MT_MIN_EIGENVALUE, QT_MT_MAX_EIGENVALUE, QT_MT_EIGENVALUE_ENTROPY, QT_MT_ENTROPY_BITS,
};

static const enum qt_metric_id bell_ids[] = {
    QT_MT_BELL_MAX_FIDELITY,   QT_MT_BELL_MIN_FIDELITY, QT_MT_BELL_AVG_FIDELITY,
    QT_MT_BELL_DOMINANT_INDEX, QT_MT_BELL_DIMENSION,    QT_MT_BELL_LOCAL_DIMENSION,
    QT_MT_BELL_FIDELITIES,
};

/* The metrics that qt_metrics_fill never sets (they belong to the estimators). */
static const enum qt_metric_id estimator_ids[] = {
    QT_MT_RESIDUAL_NORM, QT_MT_RANK,      QT_MT_OBJECTIVE,   QT_MT_N_ITERATIONS,
    QT_MT_N_EVALUATIONS, QT_MT_SUCCESS,   QT_MT_STATUS,      QT_MT_CONDITION_NUMBER,
    QT_MT_ITERATIONS,    QT_MT_CONVERGED, QT_MT_SUPPORT_DIM, QT_MT_GAP,
    QT_MT_GAP_PER_COUNT, QT_MT_MESSAGE,
};

static void assert_have(const struct qt_metrics *mt, const enum qt_metric_id *ids, size_t n,
                        bool want)
{
    for (size_t i = 0; i < n; i++) {
        if (qt_metrics_has(mt, ids[i]) != want)
            print_error("metric %s: have = %d, expected %d\n", qt_metric_descs[ids[i]].name, !want,
                        want);
        assert_true(qt_metrics_has(mt, ids[i]) == want);
    }
}

static void test_metrics_spectrum(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;
    struct qt_opts opts;
    cplx U[9], rho[9];
    const double p[3] = {0.2, 0.5, 0.3};

    (void)state;
    qt_opts_init(&opts);
    unitary3(U);
    from_spectrum(3, U, p, rho);
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    const struct qt_metrics *mt = &res.mt;
    assert_have(mt, spectral_ids, QT_ARRAY_SIZE(spectral_ids), true);
    assert_have(mt, bell_ids, QT_ARRAY_SIZE(bell_ids), false);
    assert_have(mt, estimator_ids, QT_ARRAY_SIZE(estimator_ids), false);
    assert_false(qt_metrics_has(mt, QT_MT_FIDELITY));
    assert_false(qt_metrics_has(mt, QT_MT_TRACE_DISTANCE));
    assert_false(qt_metrics_has(mt, QT_MT_CONCURRENCE));
    assert_false(qt_metrics_has(mt, QT_MT_NEGATIVITY));
    assert_false(qt_metrics_has(mt, QT_MT_LOG_NEGATIVITY));
    assert_false(qt_metrics_has(mt, QT_MT_CHI2));
    assert_false(qt_metrics_has(mt, QT_MT_LOG_LIKELIHOOD));
    qt_assert_close(mt->purity, 0.04 + 0.25 + 0.09, 1e-14, 0.0);
    qt_assert_close(mt->trace, 1.0, 0.0, 1e-15);
    qt_assert_close(mt->linear_entropy, 1.0 - 0.38, 1e-14, 0.0);
    assert_int_equal(mt->eigenvalues_n, 3);
    assert_ptr_equal(mt->eigenvalues, res.eigenvalues);
    qt_assert_close(mt->eigenvalues[0], 0.5, 1e-14, 0.0);
    qt_assert_close(mt->eigenvalues[1], 0.3, 1e-14, 0.0);
    qt_assert_close(mt->eigenvalues[2], 0.2, 1e-14, 0.0);
    qt_assert_close(mt->max_eigenvalue, 0.5, 1e-14, 0.0);
    qt_assert_close(mt->min_eigenvalue, 0.2, 1e-14, 0.0);
    double h = -(0.5 * log(0.5) + 0.3 * log(0.3) + 0.2 * log(0.2));
    qt_assert_close(mt->eigenvalue_entropy, h, 1e-13, 0.0);
    qt_assert_close(mt->entropy_bits, h / log(2.0), 1e-13, 0.0);
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* I/d: entropy ln d (log2 d bits), purity 1/d; pure states: entropy 0 and the other eigenvalues
 * reported as exactly 0.0; eigenvalues below the tolerance are reported as 0.0. */
static void test_metrics_entropy_extremes(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[MAXD * MAXD], psi[MAXD], U[9];

    (void)state;
    qt_opts_init(&opts);
    for (size_t d = 2; d <= 7; d++) {
        identity_over_d(d, rho);
        fill_state_metrics(&ws, d, rho, &opts, &res);
        qt_assert_close(res.mt.eigenvalue_entropy, log((double)d), 1e-13, 0.0);
        qt_assert_close(res.mt.entropy_bits, log2((double)d), 1e-13, 0.0);
        qt_assert_close(res.mt.purity, 1.0 / (double)d, 1e-14, 0.0);
        qt_assert_close(res.mt.linear_entropy, 1.0 - 1.0 / (double)d, 1e-14, 0.0);
        qt_assert_close(res.mt.min_eigenvalue, 1.0 / (double)d, 1e-14, 0.0);
        qt_assert_close(res.mt.max_eigenvalue, 1.0 / (double)d, 1e-14, 0.0);
        qt_result_done(&res);
    }
    qt_rng_seed(&rng, 17);
    for (size_t d = 2; d <= 7; d++) {
        random_ket(&rng, d, psi);
        outer(d, psi, rho);
        fill_state_metrics(&ws, d, rho, &opts, &res);
        qt_assert_close(res.mt.eigenvalue_entropy, 0.0, 0.0, 1e-13);
        qt_assert_close(res.mt.entropy_bits, 0.0, 0.0, 1e-13);
        qt_assert_close(res.mt.purity, 1.0, 0.0, 1e-13);
        qt_assert_close(res.mt.linear_entropy, 0.0, 0.0, 1e-13);
        qt_assert_close(res.mt.max_eigenvalue, 1.0, 0.0, 1e-13);
        qt_assert_close(res.mt.eigenvalues[0], 1.0, 0.0, 1e-13);
        for (size_t i = 1; i < d; i++)
            qt_assert_close(res.mt.eigenvalues[i], 0.0, 0.0, 0.0); /* exactly zero */
        qt_assert_close(res.mt.min_eigenvalue, 0.0, 0.0, 0.0);
        qt_result_done(&res);
    }
    /* Below tolerance (1e-9), positive or negative: exactly 0.0; above: kept. */
    unitary3(U);
    const double lam[3] = {0.6, 0.4 - 5e-10, 5e-10};
    from_spectrum(3, U, lam, rho);
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    qt_assert_close(res.mt.eigenvalues[2], 0.0, 0.0, 0.0);
    qt_assert_close(res.mt.min_eigenvalue, 0.0, 0.0, 0.0);
    qt_assert_close(res.mt.eigenvalues[1], 0.4 - 5e-10, 1e-13, 0.0);
    qt_result_done(&res);
    const double neg[3] = {0.6, 0.4 + 1e-12, -1e-12};
    from_spectrum(3, U, neg, rho);
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    qt_assert_close(res.mt.eigenvalues[2], 0.0, 0.0, 0.0);
    qt_result_done(&res);
    const double kept[3] = {0.6, 0.4 - 5e-9, 5e-9};
    from_spectrum(3, U, kept, rho);
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    qt_assert_close(res.mt.eigenvalues[2], 5e-9, 1e-6, 0.0);
    qt_assert_close(res.mt.min_eigenvalue, 5e-9, 1e-6, 0.0);
    qt_result_done(&res);
    /* A larger tolerance reports more zeros. */
    opts.tolerance = 0.45;
    const double big[3] = {0.6, 0.4, 0.0};
    from_spectrum(3, U, big, rho);
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    qt_assert_close(res.mt.eigenvalues[0], 0.6, 1e-14, 0.0);
    qt_assert_close(res.mt.eigenvalues[1], 0.0, 0.0, 0.0);
    qt_assert_close(res.mt.eigenvalues[2], 0.0, 0.0, 0.0);
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* The origin's entropy rule: eigenvalues are renormalised only when their sum is off by more
 * than 1e-6; the reported eigenvalues, trace and purity are those of rho as given. */
static void test_metrics_entropy_normalisation(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[4];
    const double twice[2] = {1.2, 0.8}, close[2] = {0.6, 0.4 + 1e-7};
    const double h = -(0.6 * log(0.6) + 0.4 * log(0.4));

    (void)state;
    qt_opts_init(&opts);
    diag_matrix(2, twice, rho);
    fill_state_metrics(&ws, 2, rho, &opts, &res);
    qt_assert_close(res.mt.trace, 2.0, 1e-15, 0.0);
    qt_assert_close(res.mt.purity, 1.44 + 0.64, 1e-15, 0.0);
    qt_assert_close(res.mt.linear_entropy, 1.0 - 2.08, 1e-14, 0.0);
    qt_assert_close(res.mt.max_eigenvalue, 1.2, 1e-15, 0.0);
    qt_assert_close(res.mt.min_eigenvalue, 0.8, 1e-15, 0.0);
    qt_assert_close(res.mt.eigenvalue_entropy, h, 1e-14, 0.0);
    qt_assert_close(res.mt.entropy_bits, h / log(2.0), 1e-14, 0.0);
    qt_result_done(&res);
    diag_matrix(2, close, rho);
    fill_state_metrics(&ws, 2, rho, &opts, &res);
    qt_assert_close(res.mt.eigenvalue_entropy, -(0.6 * log(0.6) + close[1] * log(close[1])), 1e-14,
                    0.0);
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* fidelity and trace_distance exactly when a target is given. */
static void test_metrics_target(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[9], target[9];
    const double p[3] = {0.7, 0.2, 0.1}, q[3] = {0.2, 0.2, 0.6};

    (void)state;
    qt_opts_init(&opts);
    diag_matrix(3, p, rho);
    diag_matrix(3, q, target);
    opts.target = target;
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    assert_true(qt_metrics_has(&res.mt, QT_MT_FIDELITY));
    assert_true(qt_metrics_has(&res.mt, QT_MT_TRACE_DISTANCE));
    double bc = sqrt(0.7 * 0.2) + sqrt(0.2 * 0.2) + sqrt(0.1 * 0.6);
    qt_assert_close(res.mt.fidelity, bc * bc, 1e-13, 0.0);
    qt_assert_close(res.mt.trace_distance, 0.5, 1e-14, 0.0);
    qt_result_done(&res);
    opts.target = rho;
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    qt_assert_close(res.mt.fidelity, 1.0, 0.0, 1e-12);
    qt_assert_close(res.mt.trace_distance, 0.0, 0.0, 1e-15);
    qt_result_done(&res);
    opts.target = NULL;
    fill_state_metrics(&ws, 3, rho, &opts, &res);
    assert_false(qt_metrics_has(&res.mt, QT_MT_FIDELITY));
    assert_false(qt_metrics_has(&res.mt, QT_MT_TRACE_DISTANCE));
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* The common use: a pure target state. A Werner state p |Phi+><Phi+| + (1 - p) I/4 against the
 * target |Phi+> has fidelity (1 + 3p)/4 and trace distance 3(1 - p)/4, also after the same
 * random local unitary U (x) V on both. */
static void test_metrics_fidelity_pure_target(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[16], target[16], phi[4], psi[4], w[16], U[4], V[4], W[16];
    double worst = 0.0;

    (void)state;
    qt_opts_init(&opts);
    qt_rng_seed(&rng, 22);
    bell_ket(2, 0, 0, phi);
    for (size_t t = 0; t < 10; t++) {
        random_unitary(&rng, 2, U);
        random_unitary(&rng, 2, V);
        kron(2, U, 2, V, W);
        for (size_t i = 0; i < 4; i++) {
            psi[i] = 0.0;
            for (size_t k = 0; k < 4; k++)
                psi[i] += W[i + 4 * k] * phi[k];
        }
        outer(4, psi, target);
        opts.target = target;
        for (size_t i = 0; i <= 4; i++) {
            double p = 0.2 * (double)i;
            const double lam[4] = {(1.0 + 3.0 * p) / 4.0, (1.0 - p) / 4.0, (1.0 - p) / 4.0,
                                   (1.0 - p) / 4.0};

            /* W diag(lam) W^H in the basis (psi, three vectors orthogonal to it). */
            for (size_t k = 0; k < 4; k++)
                for (size_t j = 0; j < 4; j++) {
                    cplx b[4];

                    bell_ket(2, k / 2, k % 2, b);
                    w[j + 4 * k] = 0.0;
                    for (size_t l = 0; l < 4; l++)
                        w[j + 4 * k] += W[j + 4 * l] * b[l];
                }
            from_spectrum(4, w, lam, rho);
            fill_state_metrics(&ws, 4, rho, &opts, &res);
            qt_assert_close(res.mt.trace_distance, 0.75 * (1.0 - p), 0.0, 1e-13);
            worst = fmax(worst, fabs(res.mt.fidelity - (1.0 + 3.0 * p) / 4.0));
            qt_result_done(&res);
        }
    }
    print_message("max |fidelity - (1 + 3p)/4| = %.3g\n", worst);
    qt_assert_close(worst, 0.0, 0.0, 1e-12);
    qt_ws_done(&ws);
}

/* Which entanglement and Bell metrics appear for which d. */
static void test_metrics_presence_by_dimension(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[MAXD * MAXD];

    (void)state;
    qt_opts_init(&opts);
    qt_rng_seed(&rng, 18);
    for (size_t d = 2; d <= 16; d++) {
        size_t k = qt_isqrt_exact(d);

        for (int bell = 0; bell <= 1; bell++) {
            opts.bell = bell;
            qt_rng_state(&rng, d, d, rho);
            fill_state_metrics(&ws, d, rho, &opts, &res);
            assert_have(&res.mt, spectral_ids, QT_ARRAY_SIZE(spectral_ids), true);
            assert_true(qt_metrics_has(&res.mt, QT_MT_CONCURRENCE) == (d == 4));
            assert_true(qt_metrics_has(&res.mt, QT_MT_NEGATIVITY) == (k != 0));
            assert_true(qt_metrics_has(&res.mt, QT_MT_LOG_NEGATIVITY) == (k != 0));
            assert_have(&res.mt, bell_ids, QT_ARRAY_SIZE(bell_ids), bell && k != 0);
            assert_have(&res.mt, estimator_ids, QT_ARRAY_SIZE(estimator_ids), false);
            assert_false(qt_metrics_has(&res.mt, QT_MT_FIDELITY));
            assert_false(qt_metrics_has(&res.mt, QT_MT_CHI2));
            assert_false(qt_metrics_has(&res.mt, QT_MT_LOG_LIKELIHOOD));
            if (bell && k) {
                double sum = 0.0;

                assert_int_equal(res.mt.bell_fidelities_n, d);
                assert_ptr_equal(res.mt.bell_fidelities, res.bell);
                assert_int_equal(res.mt.bell_dimension, d);
                assert_int_equal(res.mt.bell_local_dimension, k);
                for (size_t i = 0; i < d; i++)
                    sum += res.mt.bell_fidelities[i];
                qt_assert_close(sum, 1.0, 0.0, 1e-13);
                qt_assert_close(res.mt.bell_avg_fidelity, 1.0 / (double)d, 0.0, 1e-14);
            }
            qt_result_done(&res);
        }
    }
    qt_ws_done(&ws);
}

/* Entanglement metric values at d = 4 and d = 9, and the Bell summary. */
/* qt_metrics_batch_pre: the batched eigenvalues give qt_rho_concurrence's and qt_rho_pt_norm's
 * values; a state the batch cannot decompose (NaN) is left to be computed alone, and does not
 * disturb the others; no batching where there is nothing to batch. */
static void test_metrics_batch_pre(void **state)
{
    enum { N = 5 };
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;
    cplx rho[N][16], V[N][16];
    double lam[N][4], eig[(4 + 4) * N];
    struct qt_spectrum sp[N];
    const cplx *rp[N];
    struct qt_metrics_pre pre[N];

    (void)state;
    qt_rng_seed(&rng, 17);
    qt_opts_init(&opts);
    assert_int_equal(qt_metrics_batch_doubles(4, N), (size_t)(4 + 4) * N);
    for (size_t k = 0; k < N; k++) {
        qt_rng_state(&rng, 4, 1 + k % 4, rho[k]);
        sp[k] = spectrum_of(&ws, 4, rho[k], V[k], lam[k]);
        rp[k] = rho[k];
    }
    rho[2][5] = NAN; /* its concurrence and partial-transpose matrices are NaN */
    V[2][0] = NAN;
    assert_int_equal(qt_metrics_batch_pre(&ws, 4, N, sp, rp, &opts, eig, pre), 0);
    for (size_t k = 0; k < N; k++) {
        if (k == 2) {
            assert_null(pre[k].conc_mu);
            assert_null(pre[k].pt_w);
            continue;
        }
        assert_non_null(pre[k].conc_mu);
        assert_non_null(pre[k].pt_w);
        qt_assert_close(qt_rho_concurrence_from(pre[k].conc_mu), concurrence(&ws, rho[k]), 0,
                        1e-12);
        qt_assert_close(qt_rho_trace_norm_from(4, pre[k].pt_w), pt_norm(&ws, 4, rho[k]), 0,
                        1e-12);
    }
    /* Without the entanglement metrics, or above the batched solver's size: nothing batched. */
    opts.metrics &= ~(unsigned)QT_MG_ENTANGLEMENT;
    assert_int_equal(qt_metrics_batch_pre(&ws, 4, N, sp, rp, &opts, eig, pre), 0);
    for (size_t k = 0; k < N; k++)
        assert_true(!pre[k].conc_mu && !pre[k].pt_w);
    qt_ws_done(&ws);
}

static void test_metrics_entanglement_values(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;
    struct qt_opts opts;
    cplx rho[81], phi[9];

    (void)state;
    qt_opts_init(&opts);
    opts.bell = true;
    for (size_t i = 0; i <= 10; i++) {
        double p = 0.1 * (double)i;
        double neg = fmax(0.0, (3.0 * p - 1.0) / 4.0);

        isotropic(2, p, rho);
        fill_state_metrics(&ws, 4, rho, &opts, &res);
        qt_assert_close(res.mt.concurrence, fmax(0.0, (3.0 * p - 1.0) / 2.0), 0.0, 1e-9);
        qt_assert_close(res.mt.negativity, neg, 0.0, 1e-12);
        qt_assert_close(res.mt.log_negativity, log2(1.0 + 2.0 * neg), 0.0, 1e-12);
        /* Bell: Phi+ has (1 + 3p)/4, the others (1 - p)/4. */
        qt_assert_close(res.mt.bell_fidelities[0], (1.0 + 3.0 * p) / 4.0, 0.0, 1e-14);
        for (size_t j = 1; j < 4; j++)
            qt_assert_close(res.mt.bell_fidelities[j], (1.0 - p) / 4.0, 0.0, 1e-14);
        if (p > 0.05) {
            assert_int_equal(res.mt.bell_dominant_index, 0);
            qt_assert_close(res.mt.bell_max_fidelity, (1.0 + 3.0 * p) / 4.0, 0.0, 1e-14);
            qt_assert_close(res.mt.bell_min_fidelity, (1.0 - p) / 4.0, 0.0, 1e-14);
        }
        qt_result_done(&res);
    }
    /* Psi- dominates at index 3; log-negativity 1, negativity 0.5, concurrence 1. */
    bell_ket(2, 1, 1, phi);
    outer(4, phi, rho);
    fill_state_metrics(&ws, 4, rho, &opts, &res);
    assert_int_equal(res.mt.bell_dominant_index, 3);
    qt_assert_close(res.mt.bell_max_fidelity, 1.0, 0.0, 1e-14);
    qt_assert_close(res.mt.bell_min_fidelity, 0.0, 0.0, 1e-14);
    qt_assert_close(res.mt.negativity, 0.5, 0.0, 1e-12);
    qt_assert_close(res.mt.log_negativity, 1.0, 0.0, 1e-12);
    qt_assert_close(res.mt.concurrence, 1.0, 0.0, 1e-9);
    qt_result_done(&res);
    /* Maximally entangled 3 x 3 (index 2*3 + 1 = 7): negativity 1, log-negativity log2 3. */
    bell_ket(3, 2, 1, phi);
    outer(9, phi, rho);
    fill_state_metrics(&ws, 9, rho, &opts, &res);
    qt_assert_close(res.mt.negativity, 1.0, 0.0, 1e-12);
    qt_assert_close(res.mt.log_negativity, log2(3.0), 0.0, 1e-12);
    assert_int_equal(res.mt.bell_dominant_index, 7);
    assert_int_equal(res.mt.bell_local_dimension, 3);
    qt_result_done(&res);
    /* Product state: negativity 0, log-negativity 0, concurrence 0. */
    const double e[4] = {0.0, 1.0, 0.0, 0.0};
    diag_matrix(4, e, rho);
    fill_state_metrics(&ws, 4, rho, &opts, &res);
    qt_assert_close(res.mt.negativity, 0.0, 0.0, 1e-12);
    qt_assert_close(res.mt.log_negativity, 0.0, 0.0, 1e-12);
    qt_assert_close(res.mt.concurrence, 0.0, 0.0, 1e-7);
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* <k|rho|k> for column a of the design's kets. */
static void ket_probs(const struct qt_design *des, const cplx *rho, double *q)
{
    for (size_t a = 0; a < des->m; a++)
        q[a] = expect(des->d, des->kets + des->d * a, rho);
}

/* Exact data from the true state under a complete MUB design: chi2 = 0 and log_likelihood =
 * sum y ln p. */
static void test_metrics_data_mub(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_design *des = NULL;
    struct qt_result res;
    struct qt_opts opts;
    struct qt_sample_info info = {.negative = false, .total = 0.0};
    cplx rho[9];
    double q[12], y[12], sum[4] = {0}, ll = 0.0;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 3, &des, NULL), 0);
    assert_int_equal(des->m, 12);
    assert_int_equal(des->n_groups, 4);
    assert_true(des->povm);
    assert_non_null(des->kets);
    qt_rng_seed(&rng, 19);
    qt_rng_state(&rng, 3, 3, rho);
    ket_probs(des, rho, q);
    for (size_t a = 0; a < 12; a++)
        sum[des->groups[a]] += q[a];
    for (size_t a = 0; a < 12; a++) {
        y[a] = 1000.0 * q[a] / sum[des->groups[a]];
        info.total += y[a];
        ll += y[a] * log(q[a] / sum[des->groups[a]]);
    }
    fill_metrics(&ws, des, 3, rho, &opts, y, &info, &res);
    assert_true(qt_metrics_has(&res.mt, QT_MT_CHI2));
    assert_true(qt_metrics_has(&res.mt, QT_MT_LOG_LIKELIHOOD));
    qt_assert_close(res.mt.chi2, 0.0, 0.0, 1e-9);
    qt_assert_close(res.mt.log_likelihood, ll, 1e-12, 0.0);
    /* qt_rng_simulate with n = 0 writes the same probabilities (per group, summing to 1). */
    double p[12], ll2 = 0.0;
    assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 0, p), 0);
    for (size_t a = 0; a < 12; a++) {
        qt_assert_close(p[a], y[a] / 1000.0, 0.0, 1e-14);
        ll2 += y[a] * log(p[a]);
    }
    qt_assert_close(res.mt.log_likelihood, ll2, 1e-12, 0.0);
    qt_result_done(&res);

    /* A wrong state: chi2 = sum (y - N p)^2 / (N p) with N = 1000 per group. */
    cplx sigma[9];
    double qs[12], ss[4] = {0}, chi2 = 0.0, lls = 0.0;
    qt_rng_state(&rng, 3, 2, sigma);
    ket_probs(des, sigma, qs);
    for (size_t a = 0; a < 12; a++)
        ss[des->groups[a]] += qs[a];
    for (size_t a = 0; a < 12; a++) {
        double pa = qs[a] / ss[des->groups[a]], e = 1000.0 * pa;

        chi2 += (y[a] - e) * (y[a] - e) / e;
        lls += y[a] * log(pa);
    }
    fill_metrics(&ws, des, 3, sigma, &opts, y, &info, &res);
    qt_assert_close(res.mt.chi2, chi2, 1e-9, 0.0);
    qt_assert_close(res.mt.log_likelihood, lls, 1e-12, 0.0);
    assert_true(res.mt.chi2 > 1.0);
    qt_result_done(&res);

    /* Negative data: the data metrics are skipped. */
    info.negative = true;
    fill_metrics(&ws, des, 3, rho, &opts, y, &info, &res);
    assert_false(qt_metrics_has(&res.mt, QT_MT_CHI2));
    assert_false(qt_metrics_has(&res.mt, QT_MT_LOG_LIKELIHOOD));
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* nopovm is not a POVM: p_a = Tr(E_a rho) / sum_b Tr(E_b rho) and N = sum y. */
static void test_metrics_data_nopovm(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_design *des = NULL;
    struct qt_result res;
    struct qt_opts opts;
    struct qt_sample_info info = {0};
    cplx rho[9];
    double q[9], p[9], y[9], tq = 0.0, N = 0.0, chi2 = 0.0, ll = 0.0;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 3, &des, NULL), 0);
    assert_false(des->povm);
    assert_int_equal(des->m, 9);
    qt_rng_seed(&rng, 20);
    qt_rng_state(&rng, 3, 3, rho);
    ket_probs(des, rho, q);
    for (size_t a = 0; a < 9; a++)
        tq += q[a];
    for (size_t a = 0; a < 9; a++) {
        y[a] = (double)(37 + 53 * a % 97); /* arbitrary counts */
        N += y[a];
    }
    info.total = N;
    for (size_t a = 0; a < 9; a++) {
        double pa = q[a] / tq, e = N * pa;

        chi2 += (y[a] - e) * (y[a] - e) / e;
        ll += y[a] * log(pa);
    }
    fill_metrics(&ws, des, 3, rho, &opts, y, &info, &res);
    qt_assert_close(res.mt.chi2, chi2, 1e-10, 0.0);
    qt_assert_close(res.mt.log_likelihood, ll, 1e-12, 0.0);
    assert_int_equal(qt_metrics_model_probs(des, &ws, rho, p), 0);
    for (size_t a = 0; a < 9; a++)
        qt_assert_close(p[a], q[a] / tq, 1e-13, 0.0);
    qt_result_done(&res);

    /* Exact expected counts: chi2 = 0. */
    for (size_t a = 0; a < 9; a++)
        y[a] = 500.0 * q[a] / tq;
    fill_metrics(&ws, des, 3, rho, &opts, y, &info, &res);
    qt_assert_close(res.mt.chi2, 0.0, 0.0, 1e-9);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* A custom design with two groups that are not POVMs: the model normalises over the whole design,
 * not per group. */
static void test_metrics_data_custom_nonpovm(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_result res;
    struct qt_opts opts;
    struct qt_sample_info info = {0};
    const double s = 1.0 / SQRT2;
    /* Rows: |0>, |1>, |+>, |+i>, with groups {0, 1} (a POVM) and {2, 3} (not one). */
    const cplx kets[8] = {1.0, 0.0, 0.0, 1.0, s, s, s, I * s};
    const int64_t groups[4] = {0, 0, 1, 1};
    struct qt_custom_spec spec = {.d = 2, .m = 4, .kets = kets, .groups = groups};
    const double lam[2] = {0.8, 0.2};
    cplx U[4], rho[4];
    double q[4], p[4], y[4] = {30.0, 10.0, 25.0, 15.0}, tq = 0.0, N = 80.0, ll = 0.0, chi2 = 0.0;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new_custom(&spec, &des, NULL), 0);
    assert_false(des->povm);
    assert_int_equal(des->n_groups, 2);
    unitary2(U);
    from_spectrum(2, U, lam, rho);
    ket_probs(des, rho, q);
    for (size_t a = 0; a < 4; a++)
        tq += q[a];
    for (size_t a = 0; a < 4; a++) {
        double pa = q[a] / tq;

        chi2 += (y[a] - N * pa) * (y[a] - N * pa) / (N * pa);
        ll += y[a] * log(pa);
    }
    assert_int_equal(qt_metrics_model_probs(des, &ws, rho, p), 0);
    for (size_t a = 0; a < 4; a++)
        qt_assert_close(p[a], q[a] / tq, 1e-13, 0.0);
    fill_metrics(&ws, des, 2, rho, &opts, y, &info, &res);
    qt_assert_close(res.mt.chi2, chi2, 1e-10, 0.0);
    qt_assert_close(res.mt.log_likelihood, ll, 1e-12, 0.0);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clip_2x2),
    cmocka_unit_test(test_clip_3x3_rotated),
    cmocka_unit_test(test_clip_small_eigenvalues),
    cmocka_unit_test(test_clip_tolerance_scaling),
    cmocka_unit_test(test_clip_fallback),
    cmocka_unit_test(test_clip_random),
    cmocka_unit_test(test_smolin_known),
    cmocka_unit_test(test_smolin_vs_clip_random),
    cmocka_unit_test(test_simplex_known),
    cmocka_unit_test(test_simplex_kkt_random),
    cmocka_unit_test(test_fidelity_self),
    cmocka_unit_test(test_fidelity_rank_deficient),
    cmocka_unit_test(test_fidelity_orthogonal_pure),
    cmocka_unit_test(test_fidelity_pure_mixed),
    cmocka_unit_test(test_fidelity_symmetric),
    cmocka_unit_test(test_fidelity_commuting),
    cmocka_unit_test(test_trace_distance_known),
    cmocka_unit_test(test_fuchs_van_de_graaf),
    cmocka_unit_test(test_concurrence_bell),
    cmocka_unit_test(test_concurrence_product),
    cmocka_unit_test(test_concurrence_werner_and_pure),
    cmocka_unit_test(test_pt_norm),
    cmocka_unit_test(test_bell_order_qubits),
    cmocka_unit_test(test_bell_onehot_and_complete),
    cmocka_unit_test(test_metrics_spectrum),
    cmocka_unit_test(test_metrics_entropy_extremes),
    cmocka_unit_test(test_metrics_entropy_normalisation),
    cmocka_unit_test(test_metrics_target),
    cmocka_unit_test(test_metrics_fidelity_pure_target),
    cmocka_unit_test(test_metrics_presence_by_dimension),
    cmocka_unit_test(test_metrics_entanglement_values),
    cmocka_unit_test(test_metrics_batch_pre),
    cmocka_unit_test(test_metrics_data_mub),
    cmocka_unit_test(test_metrics_data_nopovm),
    cmocka_unit_test(test_metrics_data_custom_nonpovm),
};

QT_TEST_MAIN(tests)
