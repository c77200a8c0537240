/* Linear inversion against the origin's golden outputs (cases.json), exact recovery of random
 * states for every design, the batched path, per-sample errors and the Smolin option. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "num/qt_sample.h"
#include "qt_refcases.h"
#include "qt_test.h"

static double *vector_from(json_t *arr)
{
    double *v = malloc((json_array_size(arr) + 1) * sizeof(double));

    assert_non_null(v);
    for (size_t i = 0; i < json_array_size(arr); i++)
        v[i] = json_number_value(json_array_get(arr, i));
    return v;
}

static double num(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    assert_non_null(v);
    return json_number_value(v);
}

static void check_case(json_t *c, struct qt_ws *ws)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    size_t d = (size_t)json_integer_value(json_object_get(c, "dimension"));
    int kind = qt_design_kind_from_name(json_string_value(json_object_get(c, "design")));
    json_t *lin = json_object_get(c, "linear");
    double *y = vector_from(json_object_get(c, "input"));
    double *fref = vector_from(json_object_get(lin, "normalized_probabilities"));
    double complex *want = malloc(d * d * sizeof(*want)), *raw = malloc(d * d * sizeof(*raw));
    double complex *truth = malloc(d * d * sizeof(*truth));
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};
    struct qt_sample_info info;
    struct qt_result res;
    struct qt_opts opts;
    double *f;

    assert_int_equal(qt_design_new((enum qt_design_kind)kind, d, &des, &dg), 0);
    f = malloc(des->m * sizeof(double));
    /* Normalisation and the raw (unphysical) inverse. */
    assert_int_equal(qt_sample_normalise(des, y, des->m, 1e-9, f, &info, &dg), 0);
    for (size_t a = 0; a < des->m; a++)
        qt_assert_close(f[a], fref[a], 1e-13, 1e-15);
    assert_int_equal(qt_design_pinv_apply(des, ws, f, raw), 0);
    qt_matrix_from(json_object_get(lin, "rho_raw"), d, want);
    if (qt_frob_diff(d, raw, want) > 1e-9)
        print_error("%s: raw rho differs by %g\n", name, qt_frob_diff(d, raw, want));
    assert_true(qt_frob_diff(d, raw, want) <= 1e-9);
    /* The full estimate with the origin's metrics. */
    qt_opts_init(&opts);
    opts.bell = d == 4;
    json_t *rt = json_object_get(c, "rho_true");
    if (rt) {
        qt_matrix_from(rt, d, truth);
        opts.target = truth;
    }
    assert_int_equal(qt_result_init(&res, d), 0);
    assert_int_equal(qt_estimate(des, ws, QT_METHOD_LINEAR, y, des->m, &opts, &res), 0);
    qt_matrix_from(json_object_get(lin, "rho"), d, want);
    if (qt_frob_diff(d, res.rho, want) > 1e-9)
        print_error("%s: rho differs by %g\n", name, qt_frob_diff(d, res.rho, want));
    assert_true(qt_frob_diff(d, res.rho, want) <= 1e-9);
    qt_assert_close(res.mt.purity, num(lin, "purity"), 0, 1e-9);
    qt_assert_close(res.mt.trace, num(lin, "trace"), 0, 1e-12);
    qt_assert_close(res.mt.min_eigenvalue, num(lin, "min_eigenvalue"), 0, 1e-9);
    qt_assert_close(res.mt.max_eigenvalue, num(lin, "max_eigenvalue"), 0, 1e-9);
    qt_assert_close(res.mt.eigenvalue_entropy, num(lin, "eigenvalue_entropy_nat"), 0, 1e-9);
    qt_assert_close(res.mt.condition_number, num(lin, "condition_number"), 1e-12, 0);
    qt_assert_close(res.mt.residual_norm, num(lin, "residual_norm"), 0, 1e-20);
    assert_int_equal(res.mt.rank, json_integer_value(json_object_get(lin, "rank")));
    json_t *ev = json_object_get(lin, "eigenvalues_desc");
    for (size_t i = 0; i < d; i++)
        qt_assert_close(res.eigenvalues[i], json_number_value(json_array_get(ev, i)), 0, 1e-9);
    json_t *sv = json_object_get(lin, "singular_values");
    for (size_t i = 0; i < json_array_size(sv); i++)
        qt_assert_close(des->sv[i], json_number_value(json_array_get(sv, i)), 1e-12, 0);
    if (d == 4) {
        json_t *bf = json_object_get(lin, "bell_fidelities");

        assert_true(qt_metrics_has(&res.mt, QT_MT_BELL_FIDELITIES));
        for (size_t i = 0; i < 4; i++)
            qt_assert_close(res.bell[i], json_number_value(json_array_get(bf, i)), 0, 1e-9);
    }
    if (rt) /* the origin rounds fidelities to 8 decimals; we report them unrounded */
        qt_assert_close(res.mt.fidelity, num(lin, "fidelity_vs_true"), 0, 5.1e-9);
    qt_result_done(&res);
    qt_design_free(des);
    free(y);
    free(fref);
    free(f);
    free(want);
    free(raw);
    free(truth);
}

static void test_cases_json(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    json_t *root = qt_load_cases(), *c;
    size_t i;

    (void)state;
    json_array_foreach(root, i, c) check_case(c, &ws);
    json_decref(root);
    qt_ws_done(&ws);
}

/* The MATLAB reference file 01.csv: purity 0.9209560068 (origin-digest §5.3). */
static void test_01csv_purity(void **state)
{
    static const double y[16] = {209.1402167, 9.131407795, 9.91541718,  225.9720695,
                                 66.59997824, 121.538473,  85.82605664, 126.4946671,
                                 432.5598914, 213.5769051, 18.0899408,  11.23637972,
                                 81.65145569, 103.9555651, 77.69969316, 107.2190631};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_result res;
    struct qt_opts opts;

    (void)state;
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 4, &des, NULL), 0);
    assert_int_equal(qt_result_init(&res, 4), 0);
    qt_opts_init(&opts);
    opts.bell = true;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 16, &opts, &res), 0);
    qt_assert_close(res.mt.purity, 0.9209560068, 0, 5e-11);
    qt_assert_close(res.mt.condition_number, 6.2027, 0, 5e-5);
    qt_assert_close(res.bell[0], 0.929329, 0, 5e-7);
    qt_assert_close(res.bell[1], 0.039705, 0, 5e-7);
    qt_assert_close(res.bell[2], 0.016746, 0, 5e-7);
    qt_assert_close(res.bell[3], 0.014220, 0, 5e-7);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Exact probabilities of random pure, rank-2 and full-rank states are inverted to within 1e-10
 * for every design at d in {2, 3, 4, 5, 7, 8, 9, 16}. */
static void test_exact_recovery(void **state)
{
    static const size_t dims[] = {2, 3, 4, 5, 7, 8, 9, 16};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;

    (void)state;
    qt_rng_seed(&rng, 2024);
    qt_opts_init(&opts);
    for (int kind = 0; kind < QT_DESIGN_CUSTOM; kind++)
        for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
            size_t d = dims[t];
            struct qt_design *des = NULL;

            if (qt_design_check_dim((enum qt_design_kind)kind, d, NULL) < 0)
                continue;
            assert_int_equal(qt_design_new((enum qt_design_kind)kind, d, &des, NULL), 0);
            double complex *rho = malloc(d * d * sizeof(*rho));
            double *y = malloc(des->m * sizeof(double));
            struct qt_result res;

            assert_int_equal(qt_result_init(&res, d), 0);
            size_t ranks[3] = {1, 2, d};
            for (size_t k = 0; k < 3; k++) {
                qt_rng_state(&rng, d, ranks[k], rho);
                assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 0, y), 0);
                assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, des->m, &opts, &res),
                                 0);
                double err = qt_frob_diff(d, res.rho, rho);
                if (err > 1e-10)
                    print_error("%s d=%zu rank %zu: error %g\n", des->name, d, ranks[k], err);
                assert_true(err <= 1e-10);
            }
            qt_result_done(&res);
            free(rho);
            free(y);
            qt_design_free(des);
        }
    qt_ws_done(&ws);
}

/* The batched estimator gives the single-sample results, including per-sample errors that do
 * not disturb the other samples. */
static void test_batch_matches_single(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;
    struct qt_design *des = NULL;
    size_t d = 4, n = 7;

    (void)state;
    qt_rng_seed(&rng, 99);
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, d, &des, NULL), 0);
    size_t m = des->m;
    double *Y = malloc(m * n * sizeof(double));
    double complex rho[16];
    struct qt_result *res = calloc(n, sizeof(*res)), one;

    for (size_t s = 0; s < n; s++) {
        qt_rng_state(&rng, d, 1 + s % d, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 500, Y + m * s), 0);
        assert_int_equal(qt_result_init(&res[s], d), 0);
    }
    Y[m * 2 + 3] = NAN;            /* sample 2: missing value in row 4 */
    for (size_t a = 4; a < 8; a++) /* sample 5: group 1 sums to zero */
        Y[m * 5 + a] = 0.0;
    assert_int_equal(qt_estimate_linear_batch(des, &ws, n, Y, m, &opts, res), 0);
    assert_int_equal(qt_result_init(&one, d), 0);
    for (size_t s = 0; s < n; s++) {
        int r = qt_estimate(des, &ws, QT_METHOD_LINEAR, Y + m * s, m, &opts, &one);

        assert_int_equal(res[s].err, r);
        if (s == 2) {
            assert_int_equal(r, QT_ENONFINITE);
            assert_non_null(strstr(res[s].errmsg, "row 4"));
        } else if (s == 5) {
            assert_int_equal(r, QT_EZEROGROUP);
            assert_non_null(strstr(res[s].errmsg, "group 1 (rows 5-8)"));
        } else {
            assert_int_equal(r, 0);
            assert_true(qt_frob_diff(d, res[s].rho, one.rho) < 1e-12);
            qt_assert_close(res[s].mt.purity, one.mt.purity, 0, 1e-12);
            qt_assert_close(res[s].mt.log_likelihood, one.mt.log_likelihood, 1e-12, 0);
        }
        qt_result_done(&res[s]);
    }
    qt_result_done(&one);
    free(res);
    free(Y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* The batched estimator solves the entanglement metrics' eigenvalue problems in groups of 16
 * (qt_metrics_batch_pre); across group boundaries, with failed samples between, and for
 * d = 4 (concurrence and negativity), 9 and 16 (negativity) it gives the single-sample
 * metrics. */
static void test_batch_entanglement_metrics(void **state)
{
    static const size_t dims[] = {4, 9, 16};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng rng;
    struct qt_opts opts;

    (void)state;
    qt_rng_seed(&rng, 2026);
    qt_opts_init(&opts);
    for (size_t t = 0; t < QT_ARRAY_SIZE(dims); t++) {
        size_t d = dims[t], n = qt_test_quick() ? 19 : 37;
        struct qt_design *des = NULL;

        assert_int_equal(qt_design_new(QT_DESIGN_MUB, d, &des, NULL), 0);
        size_t m = des->m;
        double *Y = malloc(m * n * sizeof(double));
        double complex *rho = malloc(d * d * sizeof(double complex));
        struct qt_result *res = calloc(n, sizeof(*res)), one;

        assert_non_null(Y);
        assert_non_null(rho);
        assert_non_null(res);
        for (size_t s = 0; s < n; s++) {
            qt_rng_state(&rng, d, 1 + s % d, rho);
            assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, s % 3 ? 1000 : 0, Y + m * s),
                             0);
            assert_int_equal(qt_result_init(&res[s], d), 0);
        }
        Y[m * 3] = NAN; /* failed samples inside the first and the second group */
        Y[m * 17 + 1] = INFINITY;
        assert_int_equal(qt_estimate_linear_batch(des, &ws, n, Y, m, &opts, res), 0);
        assert_int_equal(qt_result_init(&one, d), 0);
        for (size_t s = 0; s < n; s++) {
            int r = qt_estimate(des, &ws, QT_METHOD_LINEAR, Y + m * s, m, &opts, &one);

            assert_int_equal(res[s].err, r);
            if (s == 3 || s == 17) {
                assert_int_equal(r, QT_ENONFINITE);
                qt_result_done(&res[s]);
                continue;
            }
            assert_int_equal(r, 0);
            if (d == 4) {
                assert_true(qt_metrics_has(&res[s].mt, QT_MT_CONCURRENCE));
                qt_assert_close(res[s].mt.concurrence, one.mt.concurrence, 0, 1e-12);
            }
            assert_true(qt_metrics_has(&res[s].mt, QT_MT_NEGATIVITY));
            qt_assert_close(res[s].mt.negativity, one.mt.negativity, 0, 1e-12);
            qt_assert_close(res[s].mt.log_negativity, one.mt.log_negativity, 0, 1e-12);
            qt_result_done(&res[s]);
        }
        qt_result_done(&one);
        free(res);
        free(rho);
        free(Y);
        qt_design_free(des);
    }
    qt_ws_done(&ws);
}

/* Input validation: wrong length, infinities, negative values (accepted by linear and flagged,
 * without the likelihood metrics). */
static void test_sample_errors(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_result res;
    struct qt_opts opts;
    double y[6] = {0.5, 0.5, 0.9, 0.1, 0.5, 0.5};

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 2, &des, NULL), 0);
    assert_int_equal(qt_result_init(&res, 2), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 5, &opts, &res), QT_ESAMPLELEN);
    assert_non_null(strstr(res.errmsg, "5 values"));
    y[1] = INFINITY;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 6, &opts, &res), QT_ENONFINITE);
    assert_non_null(strstr(res.errmsg, "row 2 is infinite"));
    y[1] = 0.5;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 6, &opts, &res), 0);
    assert_true(qt_metrics_has(&res.mt, QT_MT_LOG_LIKELIHOOD));
    y[3] = -0.05;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 6, &opts, &res), 0);
    assert_true(res.warnings & QT_WARN_NEGATIVE_INPUT);
    assert_false(qt_metrics_has(&res.mt, QT_MT_LOG_LIKELIHOOD));
    assert_false(qt_metrics_has(&res.mt, QT_MT_CHI2));
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Finite values whose sums overflow: a group summing past DBL_MAX made every frequency 0 and the
 * state the maximally mixed one, reported as a result; a total past it (every group finite)
 * would do the same to the MLE's weights. Both are refused by name, single and batched, for
 * every method; values just below stay scale-invariant. */
static void test_overflowing_sums(void **state)
{
    static const enum qt_method methods[] = {QT_METHOD_LINEAR, QT_METHOD_MLE, QT_METHOD_WLS};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_result res, ref, batch[3];
    struct qt_opts opts;
    double y[6] = {0.9, 0.1, 0.3, 0.7, 0.6, 0.4}, Y[3][6];

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 2, &des, NULL), 0);
    assert_int_equal(qt_result_init(&res, 2), 0);
    assert_int_equal(qt_result_init(&ref, 2), 0);
    for (size_t k = 0; k < 3; k++)
        assert_int_equal(qt_result_init(&batch[k], 2), 0);
    for (size_t a = 0; a < 6; a++) {
        Y[0][a] = 1e307 * y[a];
        Y[1][a] = 1e308 * y[a];
        Y[2][a] = 1e307 * y[a];
    }
    Y[0][0] = Y[0][1] = 1.5e308; /* group 0 sums past DBL_MAX */
    for (size_t i = 0; i < QT_ARRAY_SIZE(methods); i++) {
        assert_int_equal(qt_estimate(des, &ws, methods[i], Y[0], 6, &opts, &res), QT_ENONFINITE);
        assert_non_null(strstr(res.errmsg, "group 0 (rows 1-2) sums past the largest double"));
        /* each group of 1e308 y sums to 1e308, the three to 3e308 */
        assert_int_equal(qt_estimate(des, &ws, methods[i], Y[1], 6, &opts, &res), QT_ENONFINITE);
        assert_non_null(strstr(res.errmsg, "the sample's values sum past the largest double"));
        assert_int_equal(qt_estimate(des, &ws, methods[i], y, 6, &opts, &ref), 0);
        assert_int_equal(qt_estimate(des, &ws, methods[i], Y[2], 6, &opts, &res), 0);
        assert_true(qt_frob_diff(2, res.rho, ref.rho) < 1e-9);
    }
    assert_int_equal(qt_estimate_linear_batch(des, &ws, 3, &Y[0][0], 6, &opts, batch), 0);
    assert_int_equal(batch[0].err, QT_ENONFINITE);
    assert_int_equal(batch[1].err, QT_ENONFINITE);
    assert_int_equal(batch[2].err, 0);
    for (size_t k = 0; k < 3; k++)
        qt_result_done(&batch[k]);
    qt_result_done(&ref);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* Smolin's projection: closer to the trace-normalised raw estimate than the origin's clip, and
 * identical when no eigenvalue is negative. */
static void test_smolin(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    struct qt_result a, b;
    struct qt_opts opts;
    struct qt_rng rng;
    double complex rho[9];

    (void)state;
    qt_rng_seed(&rng, 3);
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 3, &des, NULL), 0);
    double *y = malloc(des->m * sizeof(double));
    assert_int_equal(qt_result_init(&a, 3), 0);
    assert_int_equal(qt_result_init(&b, 3), 0);
    size_t differ = 0;
    for (int s = 0; s < 50; s++) {
        qt_rng_state(&rng, 3, 1, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 200, y), 0);
        opts.physical = QT_PHYS_CLIP;
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, des->m, &opts, &a), 0);
        opts.physical = QT_PHYS_SMOLIN;
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, des->m, &opts, &b), 0);
        qt_assert_close(b.mt.trace, 1.0, 0, 1e-12);
        assert_true(b.mt.min_eigenvalue >= 0.0);
        differ += qt_frob_diff(3, a.rho, b.rho) > 1e-6;
    }
    assert_true(differ > 10); /* pure states with noise: negative eigenvalues are common */
    qt_result_done(&a);
    qt_result_done(&b);
    free(y);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases_json),     cmocka_unit_test(test_01csv_purity),
    cmocka_unit_test(test_exact_recovery), cmocka_unit_test(test_batch_matches_single),
    cmocka_unit_test(test_batch_entanglement_metrics),
    cmocka_unit_test(test_sample_errors),  cmocka_unit_test(test_overflowing_sums),  cmocka_unit_test(test_smolin),
};

QT_TEST_MAIN(tests)
