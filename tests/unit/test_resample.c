/* Bootstrap resampling (src/num/qt_resample.c): streams keyed by (seed, sample, resample) are
 * reproducible and distinct whatever the order they are made in; the Poisson sampler has the
 * right mean, variance and probabilities on both sides of its recursion; data resamples keep
 * every POVM group's total and average to the data with multinomial or Poisson spread;
 * parametric resamples average to the predicted counts; non-counts are refused. Statistical
 * checks use 5-6 standard errors with fixed seeds (deterministic). */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_resample.h"
#include "num/qt_rng.h"
#include "qt_test.h"

static struct qt_design *make(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    return des;
}

static void test_streams(void **state)
{
    static const uint64_t keys[][3] = {{1, 3, 7}, {1, 7, 3}, {1, 3, 8}, {2, 3, 7},
                                       {1, 0, 0}, {0, 0, 0}, {0, 1, 0}, {0, 0, 1}};
    uint64_t first[QT_ARRAY_SIZE(keys)];
    struct qt_rng a, b;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(keys); i++) {
        qt_rng_stream(&a, keys[i][0], keys[i][1], keys[i][2]);
        qt_rng_stream(&b, keys[i][0], keys[i][1], keys[i][2]);
        for (int k = 0; k < 8; k++)
            assert_true(qt_rng_u64(&a) == qt_rng_u64(&b));
        qt_rng_stream(&a, keys[i][0], keys[i][1], keys[i][2]);
        first[i] = qt_rng_u64(&a);
        for (size_t j = 0; j < i; j++)
            assert_true(first[i] != first[j]);
    }
}

static void test_poisson_moments(void **state)
{
    static const double means[] = {0.3, 4.0, 15.9, 16.1, 37.5, 1000.0, 1e7};
    struct qt_rng r;

    (void)state;
    qt_rng_seed(&r, 2024);
    assert_int_equal(qt_rng_poisson(&r, 0.0), 0);
    assert_int_equal(qt_rng_poisson(&r, -1.0), 0);
    for (size_t i = 0; i < QT_ARRAY_SIZE(means); i++) {
        const int n = 40000;
        double lam = means[i], s = 0.0, s2 = 0.0;

        for (int k = 0; k < n; k++) {
            double x = (double)qt_rng_poisson(&r, lam);

            s += x;
            s2 += x * x;
        }
        double mean = s / n, var = s2 / n - mean * mean;

        if (fabs(mean - lam) > 5.0 * sqrt(lam / n) ||
            fabs(var - lam) > 6.0 * sqrt((lam + 2.0 * lam * lam) / n))
            print_error("poisson(%g): mean %.6g var %.6g\n", lam, mean, var);
        assert_true(fabs(mean - lam) <= 5.0 * sqrt(lam / n));
        assert_true(fabs(var - lam) <= 6.0 * sqrt((lam + 2.0 * lam * lam) / n));
    }
}

/* The probabilities themselves at a mean that goes through the recursion once. */
static void test_poisson_pmf(void **state)
{
    enum { N = 200000, K = 60 };

    const double lam = 20.0;
    static unsigned hist[K];
    struct qt_rng r;

    (void)state;
    qt_rng_seed(&r, 99);
    memset(hist, 0, sizeof(hist));
    for (int i = 0; i < N; i++) {
        uint64_t x = qt_rng_poisson(&r, lam);

        hist[x < K ? x : K - 1]++;
    }
    for (int k = 5; k < 40; k++) {
        double p = exp(-lam + k * log(lam) - lgamma(k + 1.0)), want = N * p;

        assert_true(fabs(hist[k] - want) <= 5.0 * sqrt(want * (1.0 - p)) + 1.0);
    }
}

/* mean and variance of each outcome over n resamples of y */
static void resample_moments(const struct qt_design *des, struct qt_ws *ws,
                             enum qt_resample_kind kind, const double *y, const double complex *rho,
                             int n, double *mean, double *var)
{
    size_t m = des->m;
    double *out = calloc(m, sizeof(double));

    assert_non_null(out);
    memset(mean, 0, m * sizeof(double));
    memset(var, 0, m * sizeof(double));
    for (int i = 0; i < n; i++) {
        struct qt_rng r;
        double gy = 0.0, gout = 0.0;

        qt_rng_stream(&r, 5, 0, (uint64_t)i);
        assert_int_equal(qt_resample(des, ws, kind, y, rho, &r, out), 0);
        for (size_t a = 0; a < m; a++) {
            assert_true(out[a] >= 0.0 && out[a] == floor(out[a]));
            mean[a] += out[a];
            var[a] += out[a] * out[a];
        }
        if (des->povm) /* every group keeps its observed total */
            for (size_t g = 0; g < des->n_groups; g++) {
                gy = gout = 0.0;
                for (size_t a = 0; a < m; a++)
                    if (des->groups[a] == g) {
                        gy += y[a];
                        gout += out[a];
                    }
                assert_true(gy == gout);
            }
    }
    for (size_t a = 0; a < m; a++) {
        mean[a] /= n;
        var[a] = var[a] / n - mean[a] * mean[a];
    }
    free(out);
}

static void test_data_povm_multinomial(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 3);
    struct qt_ws ws = QT_WS_INIT;
    double y[12] = {500, 300, 200, 10, 980, 10, 333, 333, 334, 0, 1000, 0}, mean[12], var[12];
    const int n = 20000;

    (void)state;
    assert_true(des->povm);
    resample_moments(des, &ws, QT_RESAMPLE_DATA, y, NULL, n, mean, var);
    for (size_t a = 0; a < 12; a++) {
        double p = y[a] / 1000.0, v = 1000.0 * p * (1.0 - p);

        assert_true(fabs(mean[a] - y[a]) <= 5.0 * sqrt(v / n) + 1e-12);
        assert_true(fabs(var[a] - v) <= 6.0 * sqrt(2.0 * v * v / n + v / n) + 1e-12);
    }
    qt_design_free(des);
    qt_ws_done(&ws);
}

static void test_data_nopovm_poisson(void **state)
{
    struct qt_design *des = make(QT_DESIGN_NOPOVM, 2);
    struct qt_ws ws = QT_WS_INIT;
    double y[4] = {0, 7, 150, 4000}, mean[4], var[4];
    const int n = 20000;

    (void)state;
    assert_false(des->povm);
    resample_moments(des, &ws, QT_RESAMPLE_DATA, y, NULL, n, mean, var);
    for (size_t a = 0; a < 4; a++) {
        assert_true(fabs(mean[a] - y[a]) <= 5.0 * sqrt(y[a] / n) + 1e-12);
        assert_true(fabs(var[a] - y[a]) <= 6.0 * sqrt((y[a] + 2.0 * y[a] * y[a]) / n) + 1e-12);
    }
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Parametric: the counts come from the state's probabilities, not from the data. */
static void test_parametric(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 2), *np = make(QT_DESIGN_NOPOVM, 2);
    struct qt_ws ws = QT_WS_INIT;
    double complex rho[4] = {0.8, 0.1 + 0.2 * I, 0.1 - 0.2 * I, 0.2};
    double q[6], y[6] = {700, 300, 400, 600, 100, 900}, mean[6], var[6];
    const int n = 20000;

    (void)state;
    assert_int_equal(qt_design_forward(des, &ws, rho, q), 0);
    resample_moments(des, &ws, QT_RESAMPLE_PARAMETRIC, y, rho, n, mean, var);
    for (size_t a = 0; a < 6; a++) {
        double qg = 0.0;

        for (size_t b = 0; b < 6; b++)
            qg += des->groups[b] == des->groups[a] ? q[b] : 0.0;
        double p = q[a] / qg, v = 1000.0 * p * (1.0 - p);

        assert_true(fabs(mean[a] - 1000.0 * p) <= 5.0 * sqrt(v / n) + 1e-9);
    }
    /* nopovm: Poisson around the fitted intensity times the probabilities */
    double z[4] = {100, 50, 30, 20}, qn[4], mz[4], vz[4], qs = 0.0;

    assert_int_equal(qt_design_forward(np, &ws, rho, qn), 0);
    for (size_t a = 0; a < 4; a++)
        qs += qn[a];
    resample_moments(np, &ws, QT_RESAMPLE_PARAMETRIC, z, rho, n, mz, vz);
    for (size_t a = 0; a < 4; a++) {
        double mu = qn[a] * 200.0 / qs;

        assert_true(fabs(mz[a] - mu) <= 5.0 * sqrt(mu / n) + 1e-9);
    }
    qt_design_free(des);
    qt_design_free(np);
    qt_ws_done(&ws);
}

/* Resample i of sample s is the same whatever was drawn before it; non-counts are refused. */
static void test_order_free_and_refusals(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 3);
    struct qt_ws ws = QT_WS_INIT;
    double y[12] = {5, 3, 2, 1, 8, 1, 3, 3, 4, 0, 10, 0}, a[5][12], b[12];
    struct qt_rng r;

    (void)state;
    for (int i = 0; i < 5; i++) {
        qt_rng_stream(&r, 42, 9, (uint64_t)i);
        assert_int_equal(qt_resample(des, &ws, QT_RESAMPLE_DATA, y, NULL, &r, a[i]), 0);
    }
    for (int i = 4; i >= 0; i--) {
        qt_rng_stream(&r, 42, 9, (uint64_t)i);
        assert_int_equal(qt_resample(des, &ws, QT_RESAMPLE_DATA, y, NULL, &r, b), 0);
        assert_memory_equal(a[i], b, sizeof(b));
    }
    y[4] = 0.5;
    assert_int_equal(qt_resample(des, &ws, QT_RESAMPLE_DATA, y, NULL, &r, b), QT_ENOTCOUNTS);
    y[4] = -1.0;
    assert_int_equal(qt_resample(des, &ws, QT_RESAMPLE_DATA, y, NULL, &r, b), QT_ENOTCOUNTS);
    y[4] = NAN;
    assert_int_equal(qt_resample(des, &ws, QT_RESAMPLE_DATA, y, NULL, &r, b), QT_ENOTCOUNTS);
    assert_false(qt_resample_is_counts((const double[]){1e17}, 1));
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_streams),
    cmocka_unit_test(test_poisson_moments),
    cmocka_unit_test(test_poisson_pmf),
    cmocka_unit_test(test_data_povm_multinomial),
    cmocka_unit_test(test_data_nopovm_poisson),
    cmocka_unit_test(test_parametric),
    cmocka_unit_test(test_order_free_and_refusals),
};

QT_TEST_MAIN(tests)
