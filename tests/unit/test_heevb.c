/* qt_heev_batch: eigenvalues agree with qt_zheev (LAPACK), eigenvectors are orthonormal and
 * satisfy A V = V diag(w), for n = 1..33 in batches around its 8/16-matrix steps, and beyond. */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_heevb.h"
#include "num/qt_lapack.h"
#include "num/qt_rng.h"
#include "qt_test.h"

#define TOL   1e-13
#define MAX_N 33                   /* every n up to this one, in every batch size */
#define BIG_N (QT_HEEVB_NMAX + 16) /* past the SIMD path, into the LAPACK one */

static const size_t batch_sizes[] = {1, 7, 8, 9, 16, 17, 64, 257};

/* Fills one n x n Hermitian matrix (full storage, real diagonal); `unit` scales the result. */
typedef void (*gen_fn)(struct qt_rng *r, size_t n, double unit, double complex *a);

/* Largest errors seen by check_full, each divided by its scale, for the summary line. */
struct maxerr {
    double eig, orth, res;
};

static double max_abs(size_t len, const double complex *a)
{
    double m = 0.0;

    for (size_t i = 0; i < len; i++)
        m = fmax(m, fmax(fabs(creal(a[i])), fabs(cimag(a[i]))));
    return m;
}

/* Frobenius norm without overflow or underflow for entries near 1e+-150. */
static double frob(size_t len, const double complex *a)
{
    double m = max_abs(len, a), s = 0.0;

    if (m == 0.0)
        return 0.0;
    for (size_t i = 0; i < len; i++) {
        double x = creal(a[i]) / m, y = cimag(a[i]) / m;

        s += x * x + y * y;
    }
    return m * sqrt(s);
}

/* Random unitary: modified Gram-Schmidt, done twice, on a complex Gaussian matrix. */
static void random_unitary(struct qt_rng *r, size_t n, double complex *u)
{
    for (size_t i = 0; i < n * n; i++)
        u[i] = qt_rng_normal(r) + I * qt_rng_normal(r);
    for (int pass = 0; pass < 2; pass++)
        for (size_t j = 0; j < n; j++) {
            double complex *c = u + j * n;

            for (size_t k = 0; k < j; k++) {
                const double complex *q = u + k * n;
                double complex dot = 0.0;

                for (size_t i = 0; i < n; i++)
                    dot += conj(q[i]) * c[i];
                for (size_t i = 0; i < n; i++)
                    c[i] -= dot * q[i];
            }
            double nrm = frob(n, c);
            for (size_t i = 0; i < n; i++)
                c[i] /= nrm;
        }
}

/* a = u diag(lam) u^H with u a random unitary, the diagonal made exactly real. */
static void with_spectrum(struct qt_rng *r, size_t n, const double *lam, double complex *a)
{
    double complex u[BIG_N * BIG_N];

    random_unitary(r, n, u);
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < n; i++) {
            double complex s = 0.0;

            for (size_t k = 0; k < n; k++)
                s += u[i + k * n] * lam[k] * conj(u[j + k * n]);
            a[i + j * n] = s;
        }
    for (size_t j = 0; j < n; j++) {
        a[j + j * n] = creal(a[j + j * n]);
        for (size_t i = j + 1; i < n; i++)
            a[j + i * n] = conj(a[i + j * n]);
    }
}

static void gen_hermitian(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    for (size_t j = 0; j < n; j++) {
        a[j + j * n] = unit * qt_rng_normal(r);
        for (size_t i = j + 1; i < n; i++) {
            a[i + j * n] = unit * (qt_rng_normal(r) + I * qt_rng_normal(r));
            a[j + i * n] = conj(a[i + j * n]);
        }
    }
}

static void gen_state(struct qt_rng *r, size_t n, size_t rank, double complex *a)
{
    qt_rng_state(r, n, rank < n ? rank : n, a);
    for (size_t j = 0; j < n; j++) {
        a[j + j * n] = creal(a[j + j * n]);
        for (size_t i = j + 1; i < n; i++)
            a[j + i * n] = conj(a[i + j * n]);
    }
}

static void gen_rank1(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)unit;
    gen_state(r, n, 1, a);
}

static void gen_rank2(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)unit;
    gen_state(r, n, 2, a);
}

static void gen_fullrank(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)unit;
    gen_state(r, n, n, a);
}

static void gen_diagonal(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    memset(a, 0, n * n * sizeof(*a));
    for (size_t j = 0; j < n; j++)
        a[j + j * n] = unit * qt_rng_normal(r);
}

static void gen_zero(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)r;
    (void)unit;
    memset(a, 0, n * n * sizeof(*a));
}

static void gen_identity_multiple(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    double c = unit * qt_rng_normal(r);

    memset(a, 0, n * n * sizeof(*a));
    for (size_t j = 0; j < n; j++)
        a[j + j * n] = c;
}

/* Random complex Hermitian tridiagonal; every third one is Wilkinson's W+ (close pairs). */
static void gen_tridiagonal(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    bool wilkinson = qt_rng_uniform(r) < 1.0 / 3.0;

    memset(a, 0, n * n * sizeof(*a));
    for (size_t j = 0; j < n; j++) {
        a[j + j * n] = wilkinson ? fabs((double)j - (double)(n - 1) / 2.0) : qt_rng_normal(r);
        if (j + 1 < n) {
            a[j + 1 + j * n] = wilkinson ? 1.0 : qt_rng_normal(r) + I * qt_rng_normal(r);
            a[j + (j + 1) * n] = conj(a[j + 1 + j * n]);
        }
    }
    for (size_t i = 0; i < n * n; i++)
        a[i] *= unit;
}

/* Degenerate clusters (1, 1, 1, 2, 2, 3, ...) or near-degenerate ones (gaps 1e-12, 1e-8). */
static void gen_clustered(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    double lam[BIG_N];
    int kind = (int)(qt_rng_uniform(r) * 3.0);

    for (size_t k = 0, v = 1, left = 3; k < n; k++) {
        if (kind == 0) {
            lam[k] = unit * (double)v; /* 1, 1, 1, 2, 2, 3, 3, 3, 4, 4, ... */
            if (--left == 0) {
                v++;
                left = v % 2 ? 3 : 2;
            }
        } else {
            lam[k] = unit * ((double)(k / 3) + (double)(k % 3) * (kind == 1 ? 1e-12 : 1e-8));
        }
    }
    with_spectrum(r, n, lam, a);
}

/* A diagonal matrix plus a Hermitian perturbation 1e-14 times smaller. */
static void gen_tiny_offdiag(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    gen_hermitian(r, n, 1e-14 * unit, a);
    for (size_t j = 0; j < n; j++)
        a[j + j * n] = unit * ((double)j + qt_rng_normal(r));
}

/* Strongly graded: D H D with D = diag(1, 10^-1/2, 10^-1, ...), or the same reversed, so
 * that QL runs against the grading half of the time. */
static void gen_graded(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    bool reverse = qt_rng_uniform(r) < 0.5;

    gen_hermitian(r, n, unit, a);
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < n; i++) {
            double di = reverse ? (double)(n - 1 - i) : (double)i;
            double dj = reverse ? (double)(n - 1 - j) : (double)j;

            a[i + j * n] *= pow(10.0, -(di + dj) / 4.0);
        }
}

static void gen_huge(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)unit;
    gen_hermitian(r, n, 1e150, a);
}

static void gen_tiny(struct qt_rng *r, size_t n, double unit, double complex *a)
{
    (void)unit;
    gen_hermitian(r, n, 1e-150, a);
}

/* One summary line per test, for the record. */
static void report(const char *name, const struct maxerr *me)
{
    printf("%-16s max |w - w_lapack| / max(|A|_2, unit) %.2e, |V^H V - I|_max %.2e, "
           "|AV - VW|_F / |A|_F %.2e\n",
           name, me->eig, me->orth, me->res);
}

/* Checks one decomposition against LAPACK and the defining identities. With `subnormal`, only
 * orthonormality and ordering: results that small carry absolute errors of 2^-1074. */
static void check_full(struct qt_ws *ws, size_t n, double unit, bool subnormal,
                       const double complex *a, const double complex *v, const double *w,
                       struct maxerr *me)
{
    double complex *c = malloc(n * n * sizeof(*c)), *rsd = malloc(n * n * sizeof(*rsd));
    double wref[BIG_N], nrm2 = 0.0;

    assert_true(c && rsd && n <= BIG_N);
    memcpy(c, a, n * n * sizeof(*c));
    assert_int_equal(qt_zheev(ws, false, n, c, n, wref), 0);
    for (size_t i = 0; i < n; i++)
        nrm2 = fmax(nrm2, fabs(wref[i]));
    double scale = fmax(unit, nrm2);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            assert_true(w[i - 1] <= w[i]);
        if (subnormal)
            continue;
        qt_assert_close(w[i], wref[i], 0.0, TOL * scale);
        me->eig = fmax(me->eig, fabs(w[i] - wref[i]) / scale);
    }
    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < n; i++) {
            double complex g = 0.0, av = 0.0;

            for (size_t k = 0; k < n; k++) {
                g += conj(v[k + i * n]) * v[k + j * n];
                av += a[i + k * n] * v[k + j * n];
            }
            double dev = cabs(g - (i == j ? 1.0 : 0.0));
            qt_assert_close(dev, 0.0, 0.0, TOL);
            me->orth = fmax(me->orth, dev);
            rsd[i + j * n] = av - v[i + j * n] * w[j];
        }
    double fa = fmax(frob(n * n, a), DBL_MIN), res = frob(n * n, rsd);
    if (!subnormal) {
        qt_assert_close(res / fa, 0.0, 0.0, TOL);
        me->res = fmax(me->res, res / fa);
    }
    free(c);
    free(rsd);
}

static void check_one(struct qt_ws *ws, size_t n, double unit, const double complex *a,
                      const double complex *v, const double *w, struct maxerr *me)
{
    check_full(ws, n, unit, false, a, v, w, me);
}

/* Runs every n in 1..MAX_N and every batch size on matrices from gen, checking each one. */
static void run_kind(const char *name, gen_fn gen, double unit, uint64_t seed)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct maxerr me = {0, 0, 0};
    size_t most = batch_sizes[QT_ARRAY_SIZE(batch_sizes) - 1];
    double complex *a = malloc(most * MAX_N * MAX_N * sizeof(*a));
    double complex *v = malloc(most * MAX_N * MAX_N * sizeof(*v));
    double *w = malloc(most * MAX_N * sizeof(*w));

    assert_true(a && v && w);
    qt_rng_seed(&rng, seed);
    for (size_t n = 1; n <= MAX_N; n++)
        for (size_t b = 0; b < QT_ARRAY_SIZE(batch_sizes); b++) {
            size_t count = batch_sizes[b];

            if (!qt_test_keep_size(n) || (qt_test_quick() && count > 17))
                continue;
            for (size_t k = 0; k < count; k++)
                gen(&rng, n, unit, a + k * n * n);
            assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), 0);
            for (size_t k = 0; k < count; k++)
                check_one(&ws, n, unit, a + k * n * n, v + k * n * n, w + k * n, &me);
        }
    report(name, &me);
    free(a);
    free(v);
    free(w);
    qt_ws_done(&ws);
}

static void test_random_hermitian(void **state)
{
    (void)state;
    run_kind("hermitian", gen_hermitian, 1.0, 1);
}

static void test_density_rank1(void **state)
{
    (void)state;
    run_kind("state rank 1", gen_rank1, 1.0, 2);
}

static void test_density_rank2(void **state)
{
    (void)state;
    run_kind("state rank 2", gen_rank2, 1.0, 3);
}

static void test_density_full(void **state)
{
    (void)state;
    run_kind("state rank n", gen_fullrank, 1.0, 4);
}

static void test_diagonal(void **state)
{
    (void)state;
    run_kind("diagonal", gen_diagonal, 1.0, 5);
}

static void test_zero(void **state)
{
    (void)state;
    run_kind("zero", gen_zero, 1.0, 6);
}

static void test_identity_multiple(void **state)
{
    (void)state;
    run_kind("c * identity", gen_identity_multiple, 1.0, 7);
}

static void test_tridiagonal(void **state)
{
    (void)state;
    run_kind("tridiagonal", gen_tridiagonal, 1.0, 8);
}

static void test_clustered(void **state)
{
    (void)state;
    run_kind("clustered", gen_clustered, 1.0, 9);
}

static void test_tiny_offdiag(void **state)
{
    (void)state;
    run_kind("tiny off-diag", gen_tiny_offdiag, 1.0, 10);
}

static void test_graded(void **state)
{
    (void)state;
    run_kind("graded", gen_graded, 1.0, 19);
}

static void test_huge_scale(void **state)
{
    (void)state;
    run_kind("scale 1e+150", gen_huge, 1e150, 11);
}

static void test_tiny_scale(void **state)
{
    (void)state;
    run_kind("scale 1e-150", gen_tiny, 1e-150, 12);
}

/* The extremes of the double range: largest entry near DBL_MAX / 64 and subnormal. */
static void test_extreme_scale(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct maxerr me = {0, 0, 0};
    double complex a[16 * 16 * 2], v[16 * 16 * 2];
    double w[16 * 2];
    const double units[] = {0x1p+1015, 0x1p-1000, 0x1p-1060};

    (void)state;
    qt_rng_seed(&rng, 13);
    for (size_t t = 0; t < QT_ARRAY_SIZE(units); t++) {
        gen_hermitian(&rng, 16, 1.0, a);
        gen_hermitian(&rng, 16, 1.0, a + 256);
        double m = max_abs(512, a);
        for (size_t i = 0; i < 512; i++)
            a[i] = (creal(a[i]) / m) * units[t] + I * ((cimag(a[i]) / m) * units[t]);
        assert_int_equal(qt_heev_batch(&ws, 16, 2, a, v, w), 0);
        for (size_t k = 0; k < 2; k++)
            check_full(&ws, 16, units[t], units[t] < 0x1p-1022, a + 256 * k, v + 256 * k,
                       w + 16 * k, &me);
    }
    report("2^+1015..2^-1060", &me);
    qt_ws_done(&ws);
}

/* A batch of every kind at once, so that lanes converge at different speeds. */
static void test_mixed_batch(void **state)
{
    static const gen_fn gens[] = {gen_hermitian,
                                  gen_rank1,
                                  gen_rank2,
                                  gen_fullrank,
                                  gen_diagonal,
                                  gen_zero,
                                  gen_tridiagonal,
                                  gen_clustered,
                                  gen_tiny_offdiag,
                                  gen_huge,
                                  gen_identity_multiple};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct maxerr me = {0, 0, 0};
    const size_t count = 50;
    double complex *a = malloc(count * MAX_N * MAX_N * sizeof(*a));
    double complex *v = malloc(count * MAX_N * MAX_N * sizeof(*v));
    double *w = malloc(count * MAX_N * sizeof(*w));

    (void)state;
    assert_true(a && v && w);
    qt_rng_seed(&rng, 14);
    for (size_t n = 1; n <= MAX_N; n++) {
        if (!qt_test_keep_size(n))
            continue;
        for (size_t k = 0; k < count; k++)
            gens[k % QT_ARRAY_SIZE(gens)](&rng, n, 1.0, a + k * n * n);
        assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), 0);
        for (size_t k = 0; k < count; k++)
            check_one(&ws, n, gens[k % QT_ARRAY_SIZE(gens)] == gen_huge ? 1e150 : 1.0,
                      a + k * n * n, v + k * n * n, w + k * n, &me);
    }
    report("mixed batch", &me);
    free(a);
    free(v);
    free(w);
    qt_ws_done(&ws);
}

static bool all_nan(size_t len, const double *x)
{
    for (size_t i = 0; i < len; i++)
        if (!isnan(x[i]))
            return false;
    return true;
}

/* Non-finite matrices fail alone: QT_ELAPACK, NaN results for them, and every other matrix
 * bit-for-bit the result it gets in a batch of its own. */
static void test_nonfinite_in_batch(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    const size_t count = 19, sizes[] = {4, 16, 33, QT_HEEVB_NMAX, BIG_N};
    double complex *a = malloc(count * BIG_N * BIG_N * sizeof(*a));
    double complex *v = malloc(count * BIG_N * BIG_N * sizeof(*v));
    double complex *v1 = malloc(BIG_N * BIG_N * sizeof(*v1));
    double *w = malloc(count * BIG_N * sizeof(*w)), w1[BIG_N];

    (void)state;
    assert_true(a && v && v1 && w);
    qt_rng_seed(&rng, 15);
    for (size_t t = 0; t < QT_ARRAY_SIZE(sizes); t++) {
        size_t n = sizes[t], nn = n * n;

        for (size_t k = 0; k < count; k++)
            gen_hermitian(&rng, n, 1.0, a + k * nn);
        a[5 * nn + (n - 1)] = NAN;                        /* lower triangle, column 0 */
        a[9 * nn + nn - 1] = INFINITY;                    /* last diagonal entry */
        ((double *)a)[2 * (17 * nn + 1) + 1] = -INFINITY; /* imaginary part, column 0 */
        assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), QT_ELAPACK);
        for (size_t k = 0; k < count; k++) {
            if (k == 5 || k == 9 || k == 17) {
                assert_true(all_nan(2 * nn, (const double *)(v + k * nn)));
                assert_true(all_nan(n, w + k * n));
                continue;
            }
            assert_int_equal(qt_heev_batch(&ws, n, 1, a + k * nn, v1, w1), 0);
            assert_memory_equal(v + k * nn, v1, nn * sizeof(*v1));
            assert_memory_equal(w + k * n, w1, n * sizeof(*w1));
        }
    }
    free(a);
    free(v);
    free(v1);
    free(w);
    qt_ws_done(&ws);
}

/* Only the lower triangle and the real part of the diagonal are read, and A is left alone. */
static void test_reads_lower_only(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    double complex a[9 * 12 * 12], p[9 * 12 * 12], keep[9 * 12 * 12], v[9 * 12 * 12];
    double complex vp[9 * 12 * 12];
    double w[9 * 12], wp[9 * 12];
    const size_t n = 12, count = 9;

    (void)state;
    qt_rng_seed(&rng, 16);
    for (size_t k = 0; k < count; k++)
        gen_hermitian(&rng, n, 1.0, a + k * n * n);
    memcpy(p, a, sizeof(a));
    for (size_t k = 0; k < count; k++)
        for (size_t j = 0; j < n; j++) {
            ((double *)p)[2 * (k * n * n + j + j * n) + 1] = NAN;
            for (size_t i = 0; i < j; i++)
                p[k * n * n + i + j * n] = NAN;
        }
    memcpy(keep, p, sizeof(p));
    assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), 0);
    assert_int_equal(qt_heev_batch(&ws, n, count, p, vp, wp), 0);
    assert_memory_equal(v, vp, sizeof(v));
    assert_memory_equal(w, wp, sizeof(w));
    assert_memory_equal(p, keep, sizeof(p));
    qt_ws_done(&ws);
}

/* n = 0 or count = 0 do nothing; n above QT_HEEVB_NMAX goes through LAPACK. */
static void test_edges(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct maxerr me = {0, 0, 0};
    const size_t n = BIG_N, count = 3;
    double complex *a = malloc(count * n * n * sizeof(*a)), *v = malloc(count * n * n * sizeof(*v));
    double w[3 * BIG_N];

    (void)state;
    assert_true(a && v);
    assert_int_equal(qt_heev_batch(&ws, 0, 5, NULL, NULL, NULL), 0);
    assert_int_equal(qt_heev_batch(&ws, 4, 0, NULL, NULL, NULL), 0);
    qt_rng_seed(&rng, 17);
    for (size_t k = 0; k < count; k++)
        gen_hermitian(&rng, n, 1.0, a + k * n * n);
    assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), 0);
    for (size_t k = 0; k < count; k++)
        check_one(&ws, n, 1.0, a + k * n * n, v + k * n * n, w + k * n, &me);
    a[n * n + 3] = NAN;
    assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), QT_ELAPACK);
    assert_true(all_nan(n, w + n));
    check_one(&ws, n, 1.0, a + 2 * n * n, v + 2 * n * n, w + 2 * n, &me);
    free(a);
    free(v);
    qt_ws_done(&ws);
}

/* The SIMD path above MAX_N, up to QT_HEEVB_NMAX, on a few sizes and kinds. */
static void test_large_n(void **state)
{
    static const size_t sizes[] = {34, 40, 47, 48, 57, QT_HEEVB_NMAX};
    static const gen_fn gens[] = {gen_hermitian, gen_rank1, gen_clustered, gen_tridiagonal};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct maxerr me = {0, 0, 0};
    const size_t count = 17, nmax = QT_HEEVB_NMAX;
    double complex *a = malloc(count * nmax * nmax * sizeof(*a));
    double complex *v = malloc(count * nmax * nmax * sizeof(*v));
    double *w = malloc(count * nmax * sizeof(*w));

    (void)state;
    assert_true(a && v && w);
    qt_rng_seed(&rng, 18);
    for (size_t t = 0; t < QT_ARRAY_SIZE(sizes); t++) {
        size_t n = sizes[t];

        for (size_t k = 0; k < count; k++)
            gens[k % QT_ARRAY_SIZE(gens)](&rng, n, 1.0, a + k * n * n);
        assert_int_equal(qt_heev_batch(&ws, n, count, a, v, w), 0);
        for (size_t k = 0; k < count; k++)
            check_one(&ws, n, 1.0, a + k * n * n, v + k * n * n, w + k * n, &me);
    }
    report("n = 34..64", &me);
    free(a);
    free(v);
    free(w);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_hermitian),
    cmocka_unit_test(test_density_rank1),
    cmocka_unit_test(test_density_rank2),
    cmocka_unit_test(test_density_full),
    cmocka_unit_test(test_diagonal),
    cmocka_unit_test(test_zero),
    cmocka_unit_test(test_identity_multiple),
    cmocka_unit_test(test_tridiagonal),
    cmocka_unit_test(test_clustered),
    cmocka_unit_test(test_tiny_offdiag),
    cmocka_unit_test(test_graded),
    cmocka_unit_test(test_huge_scale),
    cmocka_unit_test(test_tiny_scale),
    cmocka_unit_test(test_extreme_scale),
    cmocka_unit_test(test_mixed_batch),
    cmocka_unit_test(test_nonfinite_in_batch),
    cmocka_unit_test(test_reads_lower_only),
    cmocka_unit_test(test_edges),
    cmocka_unit_test(test_large_n),
};

QT_TEST_MAIN(tests)
