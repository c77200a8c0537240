/* qt_estimate_ws_bound: the workspace qt_estimate really takes (the arena's peak) is below the
 * bound for every built-in kind, custom designs, pure and mixed states and every method, and
 * the bound is not vacuous: within 3x of the peak wherever the peak passes 1 MiB. The daemon
 * refuses samples by this bound before they are queued (daemon/qd_check.c). */
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_rng.h"
#include "qt_test.h"

struct mem_case {
    enum qt_design_kind kind;
    size_t d;
    bool slow_methods; /* wls and rhor too */
};

/* Runs every method on a pure and a mixed sample of des and checks each peak. */
static void check_design(const struct qt_design *des, bool slow_methods, double *ratio_min,
                         double *ratio_max)
{
    size_t d = des->d, m = des->m;
    double *y = malloc(m * sizeof(double));
    double complex *rho = malloc(d * d * sizeof(*rho));
    struct qt_ws sim = QT_WS_INIT;
    struct qt_rng rng;

    assert_non_null(y);
    assert_non_null(rho);
    qt_rng_seed(&rng, 17 + d);
    for (size_t rank = 1; rank <= d; rank += d - 1) {
        qt_rng_state(&rng, d, rank, rho);
        assert_int_equal(qt_rng_simulate(&rng, des, &sim, rho, 1000, y), 0);
        for (int k = 0; k < _QT_METHOD_MAX; k++) {
            bool only[_QT_METHOD_MAX] = {false};
            struct qt_ws ws = QT_WS_INIT;
            struct qt_result res;
            struct qt_opts opts;

            if (!slow_methods && (k == QT_METHOD_WLS || k == QT_METHOD_RHOR))
                continue;
            only[k] = true;
            qt_opts_init(&opts);
            assert_int_equal(qt_result_init(&res, d), 0);
            assert_int_equal(qt_estimate(des, &ws, (enum qt_method)k, y, m, &opts, &res), 0);
            uint64_t bound = qt_estimate_ws_bound(d, m, only);
            if ((uint64_t)ws.peak > bound)
                fail_msg("%s d = %zu rank %zu method %d: peak %zu above the bound %llu", des->name,
                         d, rank, k, ws.peak, (unsigned long long)bound);
            if (ws.peak > ((size_t)1 << 20)) {
                double ratio = (double)bound / (double)ws.peak;

                *ratio_min = fmin(*ratio_min, ratio);
                *ratio_max = fmax(*ratio_max, ratio);
                if (ratio > 3.0)
                    fail_msg("%s d = %zu rank %zu method %d: bound %llu is %.1fx the peak %zu",
                             des->name, d, rank, k, (unsigned long long)bound, ratio, ws.peak);
            }
            qt_result_done(&res);
            qt_ws_done(&ws);
        }
    }
    qt_ws_done(&sim);
    free(rho);
    free(y);
}

static void test_bound_holds(void **state)
{
    static const struct mem_case cases[] = {
        {QT_DESIGN_NOPOVM, 2, true},   {QT_DESIGN_NOPOVM, 3, true}, {QT_DESIGN_NOPOVM, 16, true},
        {QT_DESIGN_NOPOVM, 48, false}, {QT_DESIGN_MUB, 2, true},    {QT_DESIGN_MUB, 8, true},
        {QT_DESIGN_MUB, 31, true},     {QT_DESIGN_SIC, 2, true},    {QT_DESIGN_PAULI, 2, true},
        {QT_DESIGN_PAULI, 8, true},    {QT_DESIGN_PAULI, 32, true}, {QT_DESIGN_PAULI, 64, false},
    };
    double rmin = INFINITY, rmax = 0.0;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qt_design *des = NULL;

        if (qt_test_quick() && cases[i].d > 8) /* valgrind: larger cases take many minutes */
            continue;
        assert_int_equal(qt_design_new(cases[i].kind, cases[i].d, &des, NULL), 0);
        check_design(des, cases[i].slow_methods, &rmin, &rmax);
        qt_design_free(des);
    }
    print_message("bound / peak where the peak passes 1 MiB: %.2f .. %.2f\n", rmin, rmax);
    assert_true(rmin >= 1.0);
}

/* A custom design (the mub kets of d = 8, as a design file would give them). */
static void test_bound_holds_custom(void **state)
{
    struct qt_design *mub = NULL, *des = NULL;
    struct qt_diag dg = {0};
    double rmin = INFINITY, rmax = 0.0;

    (void)state;
    assert_int_equal(qt_design_new(QT_DESIGN_MUB, 8, &mub, NULL), 0);
    double complex *kets = malloc(mub->d * mub->m * sizeof(*kets));
    assert_non_null(kets);
    for (size_t a = 0; a < mub->m; a++)
        for (size_t i = 0; i < mub->d; i++)
            kets[a * mub->d + i] = mub->kets[i + mub->d * a];
    struct qt_custom_spec spec = {mub->d, mub->m, kets, NULL, NULL, NULL, NULL, NULL, NULL};
    assert_int_equal(qt_design_new_custom(&spec, &des, &dg), 0);
    check_design(des, true, &rmin, &rmax);
    qt_design_free(des);
    qt_design_free(mub);
    free(kets);
}

/* Several methods: the largest of theirs (they run one after another); saturation. */
static void test_bound_of_several_methods(void **state)
{
    bool lin[_QT_METHOD_MAX] = {[QT_METHOD_LINEAR] = true};
    bool both[_QT_METHOD_MAX] = {[QT_METHOD_LINEAR] = true, [QT_METHOD_MLE] = true};
    bool mle[_QT_METHOD_MAX] = {[QT_METHOD_MLE] = true};

    (void)state;
    assert_true(qt_estimate_ws_bound(512, 10077696, both) ==
                qt_estimate_ws_bound(512, 10077696, mle));
    assert_true(qt_estimate_ws_bound(512, 10077696, lin) <
                qt_estimate_ws_bound(512, 10077696, mle));
    /* pauli 9 qubits, mle: 20 * 8 * 6^9 + 50 * 16 * 512^2 + 1 MiB */
    assert_true(qt_estimate_ws_bound(512, 10077696, mle) == 1823195136ull);
    assert_true(qt_estimate_ws_bound(SIZE_MAX, SIZE_MAX, mle) == UINT64_MAX);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bound_holds),
    cmocka_unit_test(test_bound_holds_custom),
    cmocka_unit_test(test_bound_of_several_methods),
};

QT_TEST_MAIN(tests)
