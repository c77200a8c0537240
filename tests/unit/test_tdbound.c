/* Trace-distance confidence bound of the linear estimate (src/num/qt_tdbound.c): the closed
 * form on exact data (mub and pauli at d = 4, where the group constants are known); a custom
 * design whose variance maximum lies on a face of the simplex, against a grid search; coverage
 * of the true state over simulated experiments (d = 4, mub and pauli, a full-rank and a pure
 * state, 1,000 counts per group, clip and smolin estimates; sic and the custom design at
 * d = 2), with the median tightness printed; 1/sqrt(n) shrinkage; refusals. Fixed seeds:
 * deterministic. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "num/qt_estimate.h"
#include "num/qt_rho.h"
#include "num/qt_rng.h"
#include "num/qt_tdbound.h"
#include "qt_test.h"

static struct qt_design *make(enum qt_design_kind kind, size_t d)
{
    struct qt_design *des = NULL;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    return des;
}

/* A d = 2 custom design without the symmetries of the built-in ones: {|0><0|/2, |0><0|/2,
 * |1><1|}, {|+><+|, |-><-|} and a trine in the x-y plane with weights 2/3. Every group sums to
 * I; the traces of the elements differ, so Tr L != 1 and smolin is not rho_PLS. */
static struct qt_design *make_custom(void)
{
    static const int64_t groups[8] = {0, 0, 0, 1, 1, 2, 2, 2};
    static const double weights[8] = {0.5, 0.5, 1.0, 1.0, 1.0, 2.0 / 3, 2.0 / 3, 2.0 / 3};
    double complex kets[16] = {1, 0, 1, 0, 0, 1};
    struct qt_custom_spec spec = {2, 8, kets, NULL, groups, weights, NULL, NULL, NULL};
    struct qt_design *des = NULL;
    struct qt_diag dg = {0};

    for (size_t k = 0; k < 2; k++) { /* |+>, |-> */
        kets[6 + 2 * k] = M_SQRT1_2;
        kets[7 + 2 * k] = k ? -M_SQRT1_2 : M_SQRT1_2;
    }
    for (size_t k = 0; k < 3; k++) { /* (|0> + w^k |1>) / sqrt 2 */
        kets[10 + 2 * k] = M_SQRT1_2;
        kets[11 + 2 * k] = M_SQRT1_2 * cexp(2.0 * M_PI * I * (double)k / 3.0);
    }
    if (qt_design_new_custom(&spec, &des, &dg) < 0)
        print_error("custom: %s\n", dg.msg);
    assert_non_null(des);
    assert_true(des->povm);
    return des;
}

/* tau of the header for equal group totals n: sqrt(G s2 / n) + sqrt(ln(1/delta)/2 G D2 / n). */
static double tau_closed(size_t G, double s2, double D2, double n, double conf)
{
    return sqrt((double)G * s2 / n) + sqrt(0.5 * log(1.0 / (1.0 - conf)) * (double)G * D2 / n);
}

/* Exact data of I/4 (every outcome 250 of 1,000 per group) makes L = rho_PLS = I/4, of full
 * rank, so the bound is tau itself: mub groups have s^2 = 1 - 1/d and D^2 = 2; pauli groups
 * (X = (x) (I/6 +- sigma/2)) have s^2 = (5/9)^2 - (1/18)^2 and D^2 = 10/9. Exact data of |0>
 * on mub gives the rank-1 estimate |0><0| and a bound of sqrt(3/4) tau (or tau, should rounding
 * leave a second eigenvalue positive). */
static void test_closed_form(void **state)
{
    struct qt_design *mub = make(QT_DESIGN_MUB, 4), *pauli = make(QT_DESIGN_PAULI, 4);
    struct qt_ws ws = QT_WS_INIT;
    double complex mixed[16] = {0}, zero[16] = {0};
    double y[36], b = -1.0;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    for (size_t i = 0; i < 4; i++)
        mixed[i + 4 * i] = 0.25;
    zero[0] = 1.0;
    for (size_t a = 0; a < 36; a++)
        y[a] = 250.0;
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, mixed, 0.95, &b), 0);
    qt_assert_close(b, tau_closed(5, 0.75, 2.0, 1000.0, 0.95), 1e-9, 0.0);
    assert_int_equal(qt_td_bound(pauli, &ws, y, &opts, NULL, 0.95, &b), 0);
    qt_assert_close(b, tau_closed(9, 25.0 / 81.0 - 1.0 / 324.0, 10.0 / 9.0, 1000.0, 0.95), 1e-9,
                    0.0);
    assert_int_equal(qt_td_bound(pauli, &ws, y, &opts, NULL, 0.99, &b), 0);
    qt_assert_close(b, tau_closed(9, 25.0 / 81.0 - 1.0 / 324.0, 10.0 / 9.0, 1000.0, 0.99), 1e-9,
                    0.0);
    /* |0> on mub: 1000 Tr(E_a |0><0|) are whole numbers (0, 250 or 1000). */
    assert_int_equal(qt_design_forward(mub, &ws, zero, y), 0);
    for (size_t a = 0; a < 20; a++) {
        double c = round(1000.0 * y[a]);

        qt_assert_close(1000.0 * y[a], c, 0.0, 1e-9);
        y[a] = c;
    }
    double tau = tau_closed(5, 0.75, 2.0, 1000.0, 0.95);
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, zero, 0.95, &b), 0);
    print_message("pure exact data: bound %.6f, tau %.6f\n", b, tau);
    assert_true(b >= sqrt(0.75) * tau * (1.0 - 1e-9) && b <= tau * (1.0 + 1e-9));
    qt_design_free(mub);
    qt_design_free(pauli);
    qt_ws_done(&ws);
}

/* Largest sum_a p_a |X_a|^2 - |sum_a p_a X_a|^2 over p on a fine grid of the simplex (k = 2 or
 * 3): a lower bound on the true maximum, which the library bounds from above. */
static double grid_var(size_t dd, size_t k, const double complex *X)
{
    enum { N = 600 };

    double best = 0.0;

    for (int i = 0; i <= N; i++)
        for (int j = 0; j <= (k == 3 ? N - i : 0); j++) {
            double p[3] = {(double)i / N, k == 3 ? (double)j / N : 1.0 - (double)i / N, 0.0};
            double v = 0.0;

            p[2] = k == 3 ? 1.0 - p[0] - p[1] : 0.0;
            for (size_t t = 0; t < dd; t++) {
                double complex mean = 0.0;
                double sq = 0.0;

                for (size_t a = 0; a < k; a++) {
                    mean += p[a] * X[dd * a + t];
                    sq += p[a] * creal(X[dd * a + t] * conj(X[dd * a + t]));
                }
                v += sq - creal(mean * conj(mean));
            }
            best = fmax(best, v);
        }
    return best;
}

/* The custom design: at d = 2 every rho_PLS gives k = 1, so the bound for rho_PLS is
 * tau / sqrt 2; tau recomputed here from dual operators made through the public inverse, a
 * grid search for each group's variance and the largest pairwise distance agrees with the
 * library's (which must not be below it). */
static void test_custom_brute(void **state)
{
    static const size_t first[4] = {0, 3, 5, 8};
    struct qt_design *des = make_custom();
    struct qt_ws ws = QT_WS_INIT;
    double complex X[8 * 4], rho[4];
    double y[8], e[8], b, V = 0.0, C = 0.0;
    struct qt_opts opts;
    struct qt_rng rng;

    (void)state;
    qt_opts_init(&opts);
    for (size_t a = 0; a < 8; a++) {
        memset(e, 0, sizeof(e));
        e[a] = 1.0;
        assert_int_equal(qt_design_pinv_apply(des, &ws, e, X + 4 * a), 0);
    }
    qt_rng_seed(&rng, 5);
    qt_rng_state(&rng, 2, 1, rho);
    assert_int_equal(qt_rng_simulate(&rng, des, &ws, rho, 700, y), 0);
    y[0] += 300.0; /* unequal group totals: 1000, 700, 700 */
    for (size_t g = 0; g < 3; g++) {
        size_t k = first[g + 1] - first[g];
        const double complex *Xg = X + 4 * first[g];
        double n = 0.0, D2 = 0.0;

        for (size_t a = first[g]; a < first[g + 1]; a++)
            n += y[a];
        for (size_t a = 0; a < k; a++)
            for (size_t c = 0; c < a; c++) {
                double dist = 0.0;

                for (size_t t = 0; t < 4; t++)
                    dist += creal((Xg[4 * a + t] - Xg[4 * c + t]) *
                                  conj(Xg[4 * a + t] - Xg[4 * c + t]));
                D2 = fmax(D2, dist);
            }
        V += grid_var(4, k, Xg) / n;
        C += D2 / n;
    }
    double want = (sqrt(V) + sqrt(0.5 * log(1.0 / 0.05) * C)) * M_SQRT1_2;
    assert_int_equal(qt_td_bound(des, &ws, y, &opts, NULL, 0.95, &b), 0);
    print_message("custom: bound %.9f, grid %.9f\n", b, want);
    assert_true(b >= want);
    qt_assert_close(b, want, 1e-6, 0.0);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

struct cov_case {
    enum qt_design_kind kind;
    size_t d, rank;
    const char *label;
};

struct cov_stats {
    int covered[2];       /* clip, smolin */
    int boundary;         /* clip estimates with a zero eigenvalue */
    double ratio[2][200]; /* bound / true trace distance */
    double mean_bound[2], mean_td[2];
};

/* One simulated experiment: both physicalisations, their bounds and true distances. */
static void one_experiment(const struct qt_design *des, struct qt_ws *ws, struct qt_rng *rng,
                           const double complex *rho, int e, struct qt_result *res,
                           struct cov_stats *st)
{
    double y[36], b, b_pls, t;
    struct qt_opts opts;

    qt_opts_init(&opts);
    assert_int_equal(qt_rng_simulate(rng, des, ws, rho, 1000, y), 0);
    for (int ph = 0; ph < 2; ph++) {
        opts.physical = ph ? QT_PHYS_SMOLIN : QT_PHYS_CLIP;
        assert_int_equal(qt_estimate(des, ws, QT_METHOD_LINEAR, y, des->m, &opts, res), 0);
        assert_int_equal(qt_td_bound(des, ws, y, &opts, res->rho, 0.95, &b), 0);
        assert_int_equal(qt_rho_trace_distance(ws, des->d, res->rho, rho, &t), 0);
        assert_true(b > 0.0 && b <= 1.0);
        st->covered[ph] += t <= b;
        st->ratio[ph][e] = b / t;
        st->mean_bound[ph] += b;
        st->mean_td[ph] += t;
        if (ph == 0)
            st->boundary += res->eigenvalues[des->d - 1] == 0.0;
        if (ph == 1 && des->kind != QT_DESIGN_CUSTOM) { /* smolin is rho_PLS: nothing added */
            assert_int_equal(qt_td_bound(des, ws, y, &opts, NULL, 0.95, &b_pls), 0);
            qt_assert_close(b, b_pls, 1e-9, 1e-12);
        }
    }
}

/* 200 experiments per case: the true trace distance is within the 95 % bound in at least 190
 * (the bound is conservative: all 200 are expected). */
static void test_coverage(void **state)
{
    static const struct cov_case cases[] = {
        {QT_DESIGN_MUB, 4, 4, "mub d=4 full-rank"},     {QT_DESIGN_MUB, 4, 1, "mub d=4 pure"},
        {QT_DESIGN_PAULI, 4, 4, "pauli d=4 full-rank"}, {QT_DESIGN_PAULI, 4, 1, "pauli d=4 pure"},
        {QT_DESIGN_SIC, 2, 1, "sic d=2 pure"},          {QT_DESIGN_CUSTOM, 2, 1, "custom d=2 pure"},
        {QT_DESIGN_CUSTOM, 2, 2, "custom d=2 mixed"},
    };

    enum { E = 200 };
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;

    (void)state;
    assert_int_equal(qt_result_init(&res, 4), 0);
    for (size_t c = 0; c < QT_ARRAY_SIZE(cases); c++) {
        struct qt_design *des =
            cases[c].kind == QT_DESIGN_CUSTOM ? make_custom() : make(cases[c].kind, cases[c].d);
        struct cov_stats *st = calloc(1, sizeof(*st));
        double complex rho[16];
        struct qt_rng rng;

        assert_non_null(st);
        qt_rng_seed(&rng, 1600 + c);
        qt_rng_state(&rng, cases[c].d, cases[c].rank, rho);
        for (int e = 0; e < E; e++)
            one_experiment(des, &ws, &rng, rho, e, &res, st);
        for (int ph = 0; ph < 2; ph++) {
            qsort(st->ratio[ph], E, sizeof(double), cmp_double);
            print_message("%-20s %-6s covered %3d/%d, mean bound %.4f, mean T %.4f, "
                          "bound/T min %.2f median %.2f; boundary estimates %d\n",
                          cases[c].label, ph ? "smolin" : "clip", st->covered[ph], E,
                          st->mean_bound[ph] / E, st->mean_td[ph] / E, st->ratio[ph][0],
                          0.5 * (st->ratio[ph][E / 2 - 1] + st->ratio[ph][E / 2]), st->boundary);
            assert_true(st->covered[ph] >= (E * 95) / 100);
        }
        if (cases[c].rank == 1 && cases[c].d == 4) /* the point: estimates on the boundary */
            assert_true(st->boundary > 0);
        free(st);
        qt_design_free(des);
    }
    qt_result_done(&res);
    qt_ws_done(&ws);
}

/* Mean bound over 10 experiments at 1,000 and at 100,000 counts per group: the ratio is 10
 * (exactly, for a state well inside state space, where clip, smolin and rho_PLS agree and the
 * estimate keeps full rank; loosely, for a pure state, where the rank and the clip-vs-PLS term
 * move too). */
static void test_scaling(void **state)
{
    struct qt_design *des = make(QT_DESIGN_MUB, 4);
    struct qt_ws ws = QT_WS_INIT;
    struct qt_result res;
    struct qt_opts opts;
    struct qt_rng rng;
    double complex rho[16], pure[16];
    double y[20], mean[2][2] = {{0}};

    (void)state;
    qt_opts_init(&opts);
    assert_int_equal(qt_result_init(&res, 4), 0);
    qt_rng_seed(&rng, 77);
    qt_rng_state(&rng, 4, 4, rho);
    qt_rng_state(&rng, 4, 1, pure);
    for (size_t i = 0; i < 16; i++) /* halfway to I/4: smallest eigenvalue >= 1/8 */
        rho[i] = 0.5 * rho[i] + (i % 5 == 0 ? 0.125 : 0.0);
    for (int s = 0; s < 2; s++)
        for (int k = 0; k < 2; k++)
            for (int e = 0; e < 10; e++) {
                double b;

                assert_int_equal(
                    qt_rng_simulate(&rng, des, &ws, s ? pure : rho, k ? 100000 : 1000, y), 0);
                assert_int_equal(qt_estimate(des, &ws, QT_METHOD_LINEAR, y, 20, &opts, &res), 0);
                assert_int_equal(qt_td_bound(des, &ws, y, &opts, res.rho, 0.95, &b), 0);
                mean[s][k] += b / 10.0;
            }
    print_message("bound at 1e3 / 1e5 counts per group: mixed %.4f / %.5f (ratio %.3f), "
                  "pure %.4f / %.5f (ratio %.3f)\n",
                  mean[0][0], mean[0][1], mean[0][0] / mean[0][1], mean[1][0], mean[1][1],
                  mean[1][0] / mean[1][1]);
    qt_assert_close(mean[0][0] / mean[0][1], 10.0, 0.01, 0.0);
    assert_true(mean[1][0] / mean[1][1] > 6.0 && mean[1][0] / mean[1][1] < 14.0);
    qt_result_done(&res);
    qt_design_free(des);
    qt_ws_done(&ws);
}

static void test_refusals(void **state)
{
    struct qt_design *mub = make(QT_DESIGN_MUB, 4), *nopovm = make(QT_DESIGN_NOPOVM, 4);
    struct qt_design *big = make(QT_DESIGN_MUB, 17);
    struct qt_ws ws = QT_WS_INIT;
    static const double bad_conf[] = {0.0, 1.0, -0.5, 1.5, NAN};
    double y[306], b = -7.0;
    struct qt_opts opts;

    (void)state;
    qt_opts_init(&opts);
    for (size_t a = 0; a < 306; a++)
        y[a] = 100.0;
    for (size_t i = 0; i < QT_ARRAY_SIZE(bad_conf); i++)
        assert_int_equal(qt_td_bound(mub, &ws, y, &opts, NULL, bad_conf[i], &b), QT_EOPTION);
    assert_int_equal(qt_td_bound(nopovm, &ws, y, &opts, NULL, 0.95, &b), -ENOTSUP);
    assert_int_equal(qt_td_bound(big, &ws, y, &opts, NULL, 0.95, &b), -ENOTSUP);
    y[3] = 0.5;
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, NULL, 0.95, &b), QT_ENOTCOUNTS);
    y[3] = -1.0;
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, NULL, 0.95, &b), QT_ENOTCOUNTS);
    for (size_t a = 0; a < 4; a++) /* the first basis was never measured */
        y[a] = 0.0;
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, NULL, 0.95, &b), QT_EZEROGROUP);
    qt_assert_close(b, -7.0, 0.0, 0.0); /* never written on failure */
    y[0] = 100.0;
    assert_int_equal(qt_td_bound(mub, &ws, y, &opts, NULL, 0.95, &b), 0);
    assert_true(b > 0.0 && b <= 1.0);
    /* Known backgrounds (a POVM of one group otherwise supported): refused, not bounded from
     * counts that are not multinomial in rho. */
    {
        double complex kets[12] = {1, 0, 0, 1};
        static const double w[6] = {1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 3};
        static const double bg[6] = {0, 0, 0, 0, 0, 50};
        struct qt_custom_spec spec = {.d = 2, .m = 6, .kets = kets, .weights = w};
        struct qt_design *plain = NULL, *withbg = NULL;

        for (size_t k = 0; k < 2; k++) { /* |+>, |->, |+i>, |-i> */
            kets[4 + 2 * k] = M_SQRT1_2;
            kets[5 + 2 * k] = k ? -M_SQRT1_2 : M_SQRT1_2;
            kets[8 + 2 * k] = M_SQRT1_2;
            kets[9 + 2 * k] = k ? -I * M_SQRT1_2 : I * M_SQRT1_2;
        }
        assert_int_equal(qt_design_new_custom(&spec, &plain, NULL), 0);
        spec.background = bg;
        assert_int_equal(qt_design_new_custom(&spec, &withbg, NULL), 0);
        assert_true(plain->povm && withbg->povm && withbg->background);
        assert_int_equal(qt_td_bound(plain, &ws, y, &opts, NULL, 0.95, &b), 0);
        assert_int_equal(qt_td_bound(withbg, &ws, y, &opts, NULL, 0.95, &b), -ENOTSUP);
        qt_design_free(plain);
        qt_design_free(withbg);
    }
    qt_design_free(mub);
    qt_design_free(nopovm);
    qt_design_free(big);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_closed_form), cmocka_unit_test(test_custom_brute),
    cmocka_unit_test(test_coverage),    cmocka_unit_test(test_scaling),
    cmocka_unit_test(test_refusals),
};

QT_TEST_MAIN(tests)
