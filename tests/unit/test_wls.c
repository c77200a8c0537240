/* The origin's weighted least squares, done with exact derivatives: never worse than the origin's
 * objective on its cases, converged where the origin stopped at its evaluation limit, the
 * origin's nopovm normalisation, and the limit and error paths. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qt_refcases.h"
#include "qt_test.h"

static void test_cases_json(void **state)
{
    json_t *root = qt_load_cases(), *c;
    struct qt_ws ws = QT_WS_INIT;
    size_t i;

    (void)state;
    assert_non_null(root);
    json_array_foreach(root, i, c)
    {
        const char *name = json_string_value(json_object_get(c, "name"));
        size_t d = (size_t)json_integer_value(json_object_get(c, "dimension"));
        int kind = qt_design_kind_from_name(json_string_value(json_object_get(c, "design")));
        json_t *wls = json_object_get(c, "wls"), *in = json_object_get(c, "input");
        struct qt_design *des = NULL;
        struct qt_result res;
        struct qt_opts opts;

        assert_int_equal(qt_design_new((enum qt_design_kind)kind, d, &des, NULL), 0);
        double *y = malloc(des->m * sizeof(double));
        for (size_t a = 0; a < des->m; a++)
            y[a] = json_number_value(json_array_get(in, a));
        qt_opts_init(&opts);
        assert_int_equal(qt_result_init(&res, d), 0);
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, des->m, &opts, &res), 0);
        double theirs = json_number_value(json_object_get(wls, "objective"));
        if (!(res.mt.objective <= theirs + 1e-9))
            print_error("%s: objective %.10g, origin %.10g\n", name, res.mt.objective, theirs);
        assert_true(res.mt.objective <= theirs + 1e-9);
        assert_true(res.mt.success);
        assert_int_equal(res.mt.status, 0);
        qt_assert_close(res.mt.trace, 1.0, 0, 1e-12);
        if (strcmp(name, "nopovm16_real_bell4x4_01") == 0) {
            /* The origin stopped at its evaluation limit here (status 1, success false). */
            assert_int_equal(json_integer_value(json_object_get(wls, "status")), 1);
            assert_true(res.mt.objective < theirs - 1e-3);
        }
        if (strstr(json_string_value(json_object_get(c, "note")), "exact"))
            assert_true(res.mt.objective < 1e-12);
        qt_result_done(&res);
        qt_design_free(des);
        free(y);
    }
    json_decref(root);
    qt_ws_done(&ws);
}

/* nopovm data are normalised by the first d values (the computational basis), as the origin
 * and MATLAB did: scaling the other rows changes the fit, and zero there is an error. */
static void test_nopovm_normalisation(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    double y[4] = {0.6, 0.4, 0.7, 0.55};
    struct qt_result res;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 2, &des, NULL), 0);
    assert_int_equal(qt_result_init(&res, 2), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 4, &opts, &res), 0);
    /* f = y / (y0 + y1) = y: consistent with rho = [[.6, .2-.05i], [.2+.05i, .4]] exactly. */
    assert_true(res.mt.objective < 1e-12);
    qt_assert_close(creal(res.rho[2]), 0.2, 0, 1e-6);
    y[0] = y[1] = 0.0;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 4, &opts, &res), QT_EZEROGROUP);
    assert_non_null(strstr(res.errmsg, "rows 1-2"));
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

/* WLS stops on the origin's relative reduction of the objective (ftol), so the solver must not
 * shorten rejected steps for it (backtracking is for the certified MLE): a step cut to 0.001 of
 * its length lowered the objective by less than ftol and stopped this pure mub d = 4 fit after
 * 3 iterations, 0.6 % above the objective that the full steps reach in 10. */
static void test_stops_on_full_steps(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    double complex rho[16];
    double y[20];
    struct qt_result res, tight;
    struct qt_opts opts;
    struct qt_rng rng;

    (void)state;
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 4, &des, NULL), 0);
    assert_int_equal(des->m, 20);
    assert_int_equal(qt_result_init(&res, 4), 0);
    assert_int_equal(qt_result_init(&tight, 4), 0);
    qt_rng_seed(&rng, 12);
    for (int k = 0; k < 3; k++) { /* the third draw: 10^6 counts per basis */
        qt_rng_state(&rng, 4, 1, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho,
                                         k == 0   ? 100
                                         : k == 1 ? 10000
                                                  : 1000000,
                                         y),
                         0);
    }
    qt_opts_init(&opts);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 20, &opts, &res), 0);
    opts.wls.ftol = opts.wls.gtol = 1e-15;
    opts.wls.max_iterations = 1000;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 20, &opts, &tight), 0);
    assert_true(res.mt.objective <= tight.mt.objective * (1.0 + 1e-3));
    qt_result_done(&tight);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static void test_limits(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    double y[16] = {209.1402167, 9.131407795, 9.91541718,  225.9720695, 66.59997824, 121.538473,
                    85.82605664, 126.4946671, 432.5598914, 213.5769051, 18.0899408,  11.23637972,
                    81.65145569, 103.9555651, 77.69969316, 107.2190631};
    struct qt_result res;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    opts.wls.max_iterations = 1;
    assert_int_equal(qt_design_new(QT_DESIGN_NOPOVM, 4, &des, NULL), 0);
    assert_int_equal(qt_result_init(&res, 4), 0);
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 16, &opts, &res), 0);
    assert_false(res.mt.success);
    assert_int_equal(res.mt.status, 1);
    assert_int_equal(res.mt.n_iterations, 1);
    assert_true(res.warnings & QT_WARN_NOT_CONVERGED);
    /* WLS accepts negative values, as the origin does, and flags them. */
    qt_opts_init(&opts);
    y[5] = -1.0;
    assert_int_equal(qt_estimate(des, &ws, QT_METHOD_WLS, y, 16, &opts, &res), 0);
    assert_true(res.warnings & QT_WARN_NEGATIVE_INPUT);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cases_json),
    cmocka_unit_test(test_nopovm_normalisation),
    cmocka_unit_test(test_limits),
    cmocka_unit_test(test_stops_on_full_steps),
};

QT_TEST_MAIN(tests)
