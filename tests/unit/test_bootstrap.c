/* Bootstrap error bars (src/num/qt_bootstrap.c): deterministic for a seed, whatever else ran
 * before; calibrated on simulated experiments (the bootstrap std of purity and of a rho element
 * against the spread of the point estimates over independent experiments, and the coverage of
 * the 95 % interval, for a full-rank qubit state); options and non-counts refused. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_bootstrap.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qt_test.h"

static struct qt_design *make(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    return des;
}

static void test_deterministic_mle(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 2);
    struct qt_ws ws = QT_WS_INIT;
    double y[6] = {700, 300, 420, 580, 150, 850};
    struct qt_boot_opts bo = {
        .resamples = 40, .kind = QT_RESAMPLE_DATA, .seed = 7, .sample = 3, .confidence = 0.95};
    struct qt_uncertainty a, b, c;
    struct qt_result point;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&point, 2), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 6, &opts, &point), 0);
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &a), 0);
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &b), 0);
    assert_int_equal(a.resamples, 40);
    assert_int_equal(a.failed, 0);
    assert_true((a.have >> QT_MT_PURITY) & 1u);
    assert_false((a.have >> QT_MT_GAP) & 1u); /* the solver's own numbers have no error bar */
    assert_memory_equal(a.stats, b.stats, sizeof(a.stats));
    assert_memory_equal(a.rho_std_re, b.rho_std_re, 4 * sizeof(double));
    struct qt_boot_stat p = a.stats[QT_MT_PURITY];
    assert_true(p.std > 0.0 && p.lo < point.mt.purity && point.mt.purity < p.hi);
    bo.seed = 8;
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &c), 0);
    assert_true(c.stats[QT_MT_PURITY].std != p.std);
    qt_uncertainty_done(&a);
    qt_uncertainty_done(&b);
    qt_uncertainty_done(&c);
    /* refusals */
    bo.resamples = 1;
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &a), QT_EOPTION);
    bo.resamples = 10;
    bo.confidence = 1.0;
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &a), QT_EOPTION);
    bo.confidence = 0.9;
    y[0] = 0.25;
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &a),
                     QT_ENOTCOUNTS);
    qt_uncertainty_done(&a);
    qt_result_done(&point);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* 100 simulated experiments of a full-rank qubit state, 2,000 counts per MUB group: the mean
 * bootstrap std (200 resamples each) of purity and of Re rho_01 is within 25 % of the std of
 * the point estimates across the experiments, and the 95 % percentile interval covers the true
 * purity in at least 85 of the 100 (expected 95; binomial spread about 2). */
static void test_calibration_linear(void **state)
{
    enum { E = 100, NB = 200 };
    struct qt_design *des = make(QT_DESIGN_MUB, 2);
    struct qt_ws ws = QT_WS_INIT;
    double complex rho[4] = {0.7, 0.15 - 0.1 * I, 0.15 + 0.1 * I, 0.3};
    double true_pur = 0.0, pur[E], re01[E], bstd = 0.0, bstd01 = 0.0, y[6];
    int covered = 0;
    struct qt_rng rng;
    struct qt_opts opts;
    struct qt_result point;

    (void)state;
    for (size_t i = 0; i < 4; i++)
        true_pur += creal(rho[i] * conj(rho[i]));
    qt_rng_seed(&rng, 31);
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&point, 2), 0);
    for (int e = 0; e < E; e++) {
        struct qt_boot_opts bo = {.resamples = NB,
                                  .kind = QT_RESAMPLE_DATA,
                                  .seed = 1000u + (uint64_t)e,
                                  .sample = 0,
                                  .confidence = 0.95};
        struct qt_uncertainty u;

        assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 2000, y), 0);
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 6, &opts, &point), 0);
        pur[e] = point.mt.purity;
        re01[e] = creal(point.rho[2]);
        assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_LINEAR, y, &opts, &point, &bo, &u), 0);
        bstd += u.stats[QT_MT_PURITY].std / E;
        bstd01 += u.rho_std_re[2] / E;
        covered += u.stats[QT_MT_PURITY].lo <= true_pur && true_pur <= u.stats[QT_MT_PURITY].hi;
        qt_uncertainty_done(&u);
    }
    double mp = 0.0, m01 = 0.0, sp = 0.0, s01 = 0.0;

    for (int e = 0; e < E; e++) {
        mp += pur[e] / E;
        m01 += re01[e] / E;
    }
    for (int e = 0; e < E; e++) {
        sp += (pur[e] - mp) * (pur[e] - mp) / (E - 1);
        s01 += (re01[e] - m01) * (re01[e] - m01) / (E - 1);
    }
    sp = sqrt(sp);
    s01 = sqrt(s01);
    print_message("purity: bootstrap std %.5f, empirical %.5f; Re rho01: %.5f vs %.5f; "
                  "covered %d of %d\n",
                  bstd, sp, bstd01, s01, covered, E);
    assert_true(fabs(bstd / sp - 1.0) <= 0.25);
    assert_true(fabs(bstd01 / s01 - 1.0) <= 0.25);
    assert_true(covered >= 85);
    qt_result_done(&point);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Ranges computed apart and reduced together give the numbers of one call, bit for bit (what
 * lets the daemon spread one sample's resamples over its workers); eigenvalues get bars. */
static void test_ranges_reduce(void **state)
{
    struct qt_design *des = make(QT_DESIGN_PAULI, 4);
    struct qt_ws ws = QT_WS_INIT;
    struct qt_boot_opts bo = {.resamples = 30,
                              .kind = QT_RESAMPLE_PARAMETRIC,
                              .seed = 99,
                              .sample = 12,
                              .confidence = 0.9};
    struct qt_uncertainty a, b;
    struct qt_result point;
    struct qt_opts opts;
    struct qt_rng rng;
    double complex rho[16] = {0};
    double y[36];
    uint64_t have;
    size_t stride;
    double *raw;

    (void)state;
    for (size_t i = 0; i < 4; i++)
        rho[i * 5] = 0.25;
    rho[1] = rho[4] = 0.1;
    qt_rng_seed(&rng, 5);
    assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 500, y), 0);
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&point, 4), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 36, &opts, &point), 0);
    have = qt_boot_have(&point);
    assert_true((have >> QT_MT_EIGENVALUES) & 1u);
    stride = qt_boot_stride(have, 4);
    raw = malloc(30 * stride * sizeof(double));
    assert_non_null(raw);
    assert_int_equal(qt_boot_run(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, have, 17, 13,
                                 raw + 17 * stride),
                     0);
    assert_int_equal(qt_boot_run(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, have, 0, 17, raw),
                     0);
    assert_int_equal(qt_boot_reduce(raw, 30, have, 4, 0.9, &a), 0);
    assert_int_equal(qt_bootstrap(des, &ws, QT_METHOD_MLE, y, &opts, &point, &bo, &b), 0);
    assert_memory_equal(a.stats, b.stats, sizeof(a.stats));
    assert_memory_equal(a.veig, b.veig, 4 * sizeof(*a.veig));
    assert_memory_equal(a.rho_std_re, b.rho_std_re, 16 * sizeof(double));
    assert_memory_equal(a.rho_std_im, b.rho_std_im, 16 * sizeof(double));
    for (size_t e = 0; e < 4; e++)
        assert_true(a.veig[e].std > 0.0 && a.veig[e].lo <= a.veig[e].hi);
    /* a failed row is left out and counted */
    raw[3 * stride] = 0.0;
    qt_uncertainty_done(&a);
    assert_int_equal(qt_boot_reduce(raw, 30, have, 4, 0.9, &a), 0);
    assert_int_equal(a.failed, 1);
    assert_true(a.warn & QT_BOOT_WARN_FAILED);
    for (size_t i = 0; i < 30; i++)
        raw[i * stride] = 0.0;
    qt_uncertainty_done(&a);
    assert_int_equal(qt_boot_reduce(raw, 30, have, 4, 0.9, &a), QT_ENOCONV);
    qt_uncertainty_done(&a);
    qt_uncertainty_done(&b);
    free(raw);
    qt_result_done(&point);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Probabilities become counts per group with --shots; bad input is refused. */
static void test_shots(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 2);
    struct qt_ws ws = QT_WS_INIT;
    double p[6] = {0.7, 0.3, 0.25, 0.25, 0.0, 0.0}, c[6];

    (void)state;
    assert_int_equal(qt_resample_counts_from_shots(des, &ws, p, 1000, c), 0);
    assert_true(fabs(c[0] - 700.0) < 1e-12);
    assert_true(fabs(c[1] - 300.0) < 1e-12);
    assert_true(fabs(c[2] - 500.0) < 1e-12);
    assert_true(fabs(c[3] - 500.0) < 1e-12);
    assert_true(fabs(c[4] - 0.0) < 1e-12);
    assert_true(qt_resample_is_counts(c, 6));
    assert_int_equal(qt_resample_counts_from_shots(des, &ws, p, 0, c), QT_ENOTCOUNTS);
    p[1] = -0.1;
    assert_int_equal(qt_resample_counts_from_shots(des, &ws, p, 10, c), QT_ENOTCOUNTS);
    p[1] = NAN;
    assert_int_equal(qt_resample_counts_from_shots(des, &ws, p, 10, c), QT_ENOTCOUNTS);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_ranges_reduce),
    cmocka_unit_test(test_shots),
    cmocka_unit_test(test_deterministic_mle),
    cmocka_unit_test(test_calibration_linear),
};

QT_TEST_MAIN(tests)
