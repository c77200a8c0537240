/* Maximum likelihood: certified optimality on the origin's cases and on simulated counts for
 * every design, never below the origin's RrhoR likelihood, a certificate that really bounds the
 * remaining gap, and the error and limit paths. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_metrics.h"
#include "num/qt_newton.h"
#include "num/qt_rng.h"
#include "num/qt_sum.h"
#include "qt_refcases.h"
#include "qt_test.h"

static struct qt_design *make(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    return des;
}

static void matrix_from(json_t *obj, size_t d, double complex *out)
{
    json_t *re = json_object_get(obj, "re"), *im = json_object_get(obj, "im");

    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++)
            out[i + d * j] = json_real_value(json_array_get(json_array_get(re, i), j)) +
                             I * json_real_value(json_array_get(json_array_get(im, i), j));
}

/* Data log-likelihood sum_a y_a ln p_a(rho) under the design's model (the metric's definition). */
static double loglik(const struct qt_design *des, struct qt_ws *ws, const double *y,
                     const double complex *rho)
{
    double *p = malloc(des->m * sizeof(double)), ll = 0.0;

    assert_non_null(p);
    assert_int_equal(qt_metrics_model_probs(des, ws, rho, p), 0);
    for (size_t a = 0; a < des->m; a++)
        if (y[a] > 0.0)
            ll += y[a] * log(fmax(p[a], 1e-300));
    free(p);
    return ll;
}

/* Every case of cases.json: certified to 1e-9, and a log-likelihood at least the origin's RrhoR
 * estimate's (evaluated with the same function). */
static void test_cases_json(void **state)
{
    json_t *root = qt_load_cases(), *c;
    struct qt_ws ws = QT_WS_INIT;
    size_t i;

    (void)state;
    assert_non_null(root);
    json_array_foreach(root, i, c)
    {
        size_t d = (size_t)json_integer_value(json_object_get(c, "dimension"));
        int kind = qt_design_kind_from_name(json_string_value(json_object_get(c, "design")));
        struct qt_design *des = make((enum qt_design_kind)kind, d);
        json_t *in = json_object_get(c, "input");
        double *y = malloc(des->m * sizeof(double));
        double complex *rr = malloc(d * d * sizeof(*rr));
        struct qt_result res;
        struct qt_opts opts;

        for (size_t a = 0; a < des->m; a++)
            y[a] = json_number_value(json_array_get(in, a));
        qt_opts_init(&opts);
        assert_int_equal(qt_result_init(&res, d), 0);
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, des->m, &opts, &res), 0);
        assert_true(res.mt.converged);
        assert_true(res.mt.gap_per_count <= 1e-9);
        matrix_from(json_object_get(json_object_get(c, "rhor"), "rho"), d, rr);
        double ours = res.mt.log_likelihood, theirs = loglik(des, &ws, y, rr);
        if (ours < theirs - 1e-12 * fabs(theirs))
            print_error("%s: ll %.15g below the origin's RrhoR %.15g\n",
                        json_string_value(json_object_get(c, "name")), ours, theirs);
        assert_true(ours >= theirs - 1e-12 * fabs(theirs));
        qt_assert_close(res.mt.trace, 1.0, 0, 1e-12);
        assert_true(res.mt.min_eigenvalue >= 0.0);
        qt_result_done(&res);
        qt_design_free(des);
        free(y);
        free(rr);
    }
    json_decref(root);
    qt_ws_done(&ws);
}

/* Simulated counts (10^2, 10^4, 10^6 per group) of random pure, rank-2 and full-rank states for
 * nopovm, mub and pauli at d in {2, 3, 4, 5, 8, 16}: every run certified to 1e-9. */
static void run_random(enum qt_design_kind kind, uint64_t seed)
{
    static const size_t dims[] = {2, 3, 4, 5, 8, 16};
    static const uint64_t counts[] = {100, 10000, 1000000};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;

    qt_rng_seed(&rng, seed);
    qt_opts_init(&opts);
    for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
        size_t d = dims[t];

        if (qt_design_check_dim(kind, d, NULL) < 0 || (qt_test_quick() && d > 8))
            continue;
        struct qt_design *des = make(kind, d);
        double *y = malloc(des->m * sizeof(double));
        double complex *rho = malloc(d * d * sizeof(*rho));
        struct qt_result res;

        assert_int_equal(qt_result_init(&res, d), 0);
        for (size_t k = 0; k < 3; k++)
            for (size_t c = 0; c < QT_ARRAY_SIZE(counts); c++) {
                size_t rank = k == 0 ? 1 : k == 1 ? 2 : d;

                qt_rng_state(&rng, d, rank, rho);
                assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, counts[c], y), 0);
                assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, des->m, &opts, &res), 0);
                if (!(res.mt.gap_per_count <= 1e-9))
                    print_error("%s d=%zu rank %zu counts %llu: gap %g after %lld iterations "
                                "(%s)\n",
                                des->name, d, rank, (unsigned long long)counts[c],
                                res.mt.gap_per_count, (long long)res.mt.iterations, res.mt.message);
                assert_true(res.mt.gap_per_count <= 1e-9);
            }
        qt_result_done(&res);
        free(y);
        free(rho);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

static void test_random_nopovm(void **state)
{
    (void)state;
    run_random(QT_DESIGN_NOPOVM, 1);
}

static void test_random_mub(void **state)
{
    (void)state;
    run_random(QT_DESIGN_MUB, 2);
}

static void test_random_pauli(void **state)
{
    (void)state;
    run_random(QT_DESIGN_PAULI, 3);
}

/* The certificate bounds the remaining likelihood: a run stopped early at gap g (in
 * log-likelihood units; gap_per_count = g / total count) is within g of a tightly converged
 * optimum. */
static void test_certificate_bounds_gap(void **state)
{
    static const enum qt_design_kind kinds[] = {QT_DESIGN_NOPOVM, QT_DESIGN_MUB};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;

    (void)state;
    qt_rng_seed(&rng, 77);
    for (size_t k = 0; k < QT_ARRAY_SIZE(kinds); k++) {
        struct qt_design *des = make(kinds[k], 4);
        double y[20], tot = 0.0;
        double complex rho[16];
        struct qt_result tight, loose;
        struct qt_opts opts;

        qt_rng_state(&rng, 4, 1, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 500, y), 0);
        for (size_t a = 0; a < des->m; a++)
            tot += y[a];
        assert_int_equal(qt_result_init(&tight, 4), 0);
        assert_int_equal(qt_result_init(&loose, 4), 0);
        qt_opts_init(&opts);
        opts.mle.gap_tol = 1e-13;
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, des->m, &opts, &tight), 0);
        for (unsigned it = 0; it < 4; it++) {
            opts.mle.gap_tol = 1e-10;
            opts.mle.max_iterations = it;
            assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, des->m, &opts, &loose), 0);
            double lost = tight.mt.log_likelihood - loose.mt.log_likelihood;
            assert_true(lost >= -1e-12 * tot);
            /* gap bounds it in log-likelihood units, gap_per_count per count */
            assert_true(lost <= loose.mt.gap + 1e-12 * tot);
            assert_true(lost / tot <= loose.mt.gap_per_count + 1e-12);
            qt_assert_close(loose.mt.gap, loose.mt.gap_per_count * tot, 1e-12, 0);
        }
        qt_result_done(&tight);
        qt_result_done(&loose);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

/* Data given as per-group probabilities (equal group weights) and as counts with equal group
 * totals describe the same likelihood: same estimate. */
/* The likelihood's sum over outcomes is compensated: small terms that a plain sum rounds away
 * one by one are kept, and so is a term between two that cancel (Neumaier's case, where
 * Kahan's loses it). Both results are exact in binary; the tolerances are one ulp, far below
 * the effects checked. */
static void test_compensated_sum(void **state)
{
    struct qt_sum a = {0.0, 0.0}, b = {0.0, 0.0};
    double plain = 1.0;

    (void)state;
    qt_sum_add(&a, 1.0);
    for (int i = 0; i < 1 << 20; i++) {
        qt_sum_add(&a, 0x1p-60);
        plain += 0x1p-60;
    }
    assert_true(fabs(plain - 1.0) < 0x1p-52); /* all 2^-40 lost: what the solver saw before */
    assert_true(fabs(qt_sum_value(&a) - (1.0 + 0x1p-40)) < 0x1p-52);
    qt_sum_add(&b, 1e16);
    qt_sum_add(&b, 1.0);
    qt_sum_add(&b, -1e16);
    assert_true(fabs(qt_sum_value(&b) - 1.0) < 0x1p-52);
}

/* When polishing past the certificate stops. With the budget (qt_est_mle), a check whose gap is
 * above tol again ends it (the estimator then returns its best certified point); without it
 * (qt_mlebg) the solver goes on until the gap is below tol again. Neither stops before the
 * first certificate. Work is in units of Hessian-vector products plus evaluations. */
static void test_polish_rules(void **state)
{
    struct qt_polish with = QT_POLISH_INIT(true), without = QT_POLISH_INIT(false);

    (void)state;
    assert_false(qt_polish_done(&with, 2e-10, 1e-10, 100));    /* not certified yet */
    assert_false(qt_polish_done(&with, 5e-11, 1e-10, 200));    /* certified: polish */
    assert_true(qt_polish_done(&with, 3e-10, 1e-10, 260));     /* left tol: stop */
    assert_false(qt_polish_done(&without, 2e-10, 1e-10, 100));
    assert_false(qt_polish_done(&without, 5e-11, 1e-10, 200));
    assert_false(qt_polish_done(&without, 3e-10, 1e-10, 260)); /* back to certifying */
    assert_false(qt_polish_done(&without, 2e-11, 1e-10, 320)); /* halved: polish on */
    assert_true(qt_polish_done(&without, 1e-14, 1e-10, 380));  /* 1e-3 tol */

    /* the budget: a quarter of the work that reached the certificate, at least 64 units */
    struct qt_polish b = QT_POLISH_INIT(true);
    assert_false(qt_polish_done(&b, 8e-11, 1e-10, 400));
    assert_false(qt_polish_done(&b, 3e-11, 1e-10, 500));
    assert_true(qt_polish_done(&b, 1e-11, 1e-10, 501));
}

static void test_counts_and_probabilities(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = make(QT_DESIGN_MUB, 3);
    struct qt_rng rng;
    double y[12], p[12];
    double complex rho[9];
    struct qt_result a, b;
    struct qt_opts opts;

    (void)state;
    qt_rng_seed(&rng, 5);
    qt_rng_state(&rng, 3, 2, rho);
    assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 1000, y), 0);
    for (size_t k = 0; k < 12; k++)
        p[k] = y[k] / 1000.0;
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&a, 3), 0);
    assert_int_equal(qt_result_init(&b, 3), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 12, &opts, &a), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, p, 12, &opts, &b), 0);
    assert_true(qt_frob_diff(3, a.rho, b.rho) < 1e-7);
    qt_result_done(&a);
    qt_result_done(&b);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* The same data scaled by 10 or 1e-3 (counts or frequencies): the same estimate, iterations
 * and gap per count (the tolerance compares against it); log_likelihood and gap, in
 * log-likelihood units, scale with the data. */
static void test_gap_units_under_scaling(void **state)
{
    static const double scale[] = {10.0, 1e-3};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = make(QT_DESIGN_NOPOVM, 4);
    struct qt_rng rng;
    double y[16], z[16];
    double complex rho[16];
    struct qt_result a, b;
    struct qt_opts opts;

    (void)state;
    qt_rng_seed(&rng, 11);
    qt_rng_state(&rng, 4, 2, rho);
    assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 2000, y), 0);
    qt_opts_init(&opts);
    opts.mle.max_iterations = 3; /* stopped early: the gap is well above rounding */
    assert_int_equal(qt_result_init(&a, 4), 0);
    assert_int_equal(qt_result_init(&b, 4), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 16, &opts, &a), 0);
    assert_true(a.mt.gap_per_count > 1e-8);
    for (size_t k = 0; k < QT_ARRAY_SIZE(scale); k++) {
        for (size_t i = 0; i < 16; i++)
            z[i] = y[i] * scale[k];
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, z, 16, &opts, &b), 0);
        assert_true(qt_frob_diff(4, a.rho, b.rho) < 1e-9);
        assert_int_equal(a.mt.iterations, b.mt.iterations);
        qt_assert_close(b.mt.gap_per_count, a.mt.gap_per_count, 1e-6, 0);
        qt_assert_close(b.mt.gap, a.mt.gap * scale[k], 1e-6, 0);
        qt_assert_close(b.mt.log_likelihood, a.mt.log_likelihood * scale[k], 1e-9, 0);
    }
    qt_result_done(&a);
    qt_result_done(&b);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* The limit path reports itself, and negative data are refused with the row named. */
static void test_limits_and_errors(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = make(QT_DESIGN_NOPOVM, 4);
    double y[16] = {209.1402167, 9.131407795, 9.91541718,  225.9720695, 66.59997824, 121.538473,
                    85.82605664, 126.4946671, 432.5598914, 213.5769051, 18.0899408,  11.23637972,
                    81.65145569, 103.9555651, 77.69969316, 107.2190631};
    struct qt_result res;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    opts.mle.max_iterations = 1;
    assert_int_equal(qt_result_init(&res, 4), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 16, &opts, &res), 0);
    assert_false(res.mt.converged);
    assert_true(res.mt.gap > 1e-10);
    assert_true(res.warnings & QT_WARN_NOT_CONVERGED);
    assert_non_null(strstr(res.mt.message, "max_iterations"));
    y[6] = -2.0;
    qt_opts_init(&opts);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, y, 16, &opts, &res), QT_ENEGATIVE);
    assert_non_null(strstr(res.errmsg, "row 7"));
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases_json),
    cmocka_unit_test(test_random_nopovm),
    cmocka_unit_test(test_random_mub),
    cmocka_unit_test(test_random_pauli),
    cmocka_unit_test(test_certificate_bounds_gap),
    cmocka_unit_test(test_gap_units_under_scaling),
    cmocka_unit_test(test_counts_and_probabilities),
    cmocka_unit_test(test_compensated_sum),
    cmocka_unit_test(test_polish_rules),
    cmocka_unit_test(test_limits_and_errors),
};

QT_TEST_MAIN(tests)
