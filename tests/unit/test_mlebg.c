/* Maximum likelihood with backgrounds (qt_est_mlebg): agreement with qt_estimate's MLE without
 * background, certified convergence with background at 10^4-10^7 counts, fidelity against the
 * bias of ignoring the background, an honest certificate, a pure (boundary) state, and
 * impossible data refused. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design.h"
#include "num/qt_est_mlebg.h"
#include "num/qt_estimate.h"
#include "num/qt_rho.h"
#include "num/qt_rng.h"
#include "qt_test.h"

/* An experiment: effective elements F_a = t_g eta_a E_a of a built-in design, a true state,
 * intensity, backgrounds and Poisson counts. */
struct exp {
    size_t d, m;
    double complex *F, *rho;
    double *beta, *y, *signal;
    double inten; /* the true intensity of the last draw */
};

static void exp_free(struct exp *e)
{
    free(e->F), free(e->rho), free(e->beta), free(e->y), free(e->signal);
}

/* Exact Poisson draw (Knuth, TAOCP 3.4.1 F: gamma-binomial reduction, then products). */
static double poisson(struct qt_rng *r, double mu)
{
    double k = 0.0, L, p = 1.0, j = 0.0;

    while (mu > 16.0) {
        uint64_t n = (uint64_t)floor(0.875 * mu);
        double X = qt_rng_gamma(r, (double)n);

        if (X >= mu)
            return k + (double)qt_rng_binomial(r, n - 1, mu / X);
        mu -= X;
        k += (double)n;
    }
    L = exp(-mu);
    do {
        p *= qt_rng_uniform(r);
        j += 1.0;
    } while (p > L);
    return k + j - 1.0;
}

/* Builds the elements of design (kind, d) scaled by efficiencies in [0.7, 1] and setting
 * intensities in [0.9, 1.1], and a true state of the given rank (0: 90 % of a pure state plus
 * white noise). */
static void exp_init(struct exp *e, struct qt_rng *r, struct qt_ws *ws, enum qt_design_kind kind,
                     size_t d, size_t rank)
{
    struct qt_design *des = NULL;
    size_t dd = d * d;

    assert_int_equal(qt_design_new(kind, d, &des, NULL), 0);
    e->d = d, e->m = des->m;
    e->F = calloc(dd * e->m, sizeof(*e->F));
    e->rho = malloc(dd * sizeof(*e->rho));
    e->beta = calloc(e->m, sizeof(double));
    e->y = calloc(e->m, sizeof(double));
    e->signal = calloc(e->m, sizeof(double));
    double *t = malloc(des->n_groups * sizeof(double)), *u = calloc(e->m, sizeof(double));
    assert_true(e->F && e->rho && e->beta && e->y && e->signal && t && u);
    for (size_t g = 0; g < des->n_groups; g++)
        t[g] = 0.9 + 0.2 * qt_rng_uniform(r);
    for (size_t a = 0; a < e->m; a++) {
        double s = t[des->groups[a]] * (0.7 + 0.3 * qt_rng_uniform(r));

        u[a] = 1.0;
        assert_int_equal(qt_design_adjoint(des, ws, u, e->F + dd * a), 0);
        u[a] = 0.0;
        for (size_t i = 0; i < dd; i++)
            e->F[i + dd * a] *= s;
    }
    qt_rng_state(r, d, rank ? rank : 1, e->rho);
    if (rank == 0) /* a typical prepared state: 90 % pure, 10 % white noise */
        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++)
                e->rho[i + d * j] = 0.9 * e->rho[i + d * j] + (i == j ? 0.1 / (double)d : 0.0);
    free(t), free(u);
    qt_design_free(des);
}

/* signal_a = I Tr(F_a rho) with I such that the total signal is N; beta_a uniform in
 * [0, bg * N / m]; y Poisson. */
static void exp_draw(struct exp *e, struct qt_rng *r, double N, double bg)
{
    size_t dd = e->d * e->d;
    double tot = 0.0;

    for (size_t a = 0; a < e->m; a++) {
        double complex acc = 0.0;

        for (size_t i = 0; i < dd; i++)
            acc += conj(e->F[i + dd * a]) * e->rho[i];
        e->signal[a] = creal(acc);
        tot += e->signal[a];
    }
    e->inten = N / tot;
    for (size_t a = 0; a < e->m; a++) {
        e->signal[a] *= N / tot;
        e->beta[a] = bg * qt_rng_uniform(r) * N / (double)e->m;
        e->y[a] = poisson(r, e->signal[a] + e->beta[a]);
    }
}

static double fidelity(struct qt_ws *ws, size_t d, const double complex *truth,
                       const double complex *rho)
{
    double complex *V = malloc(d * d * sizeof(*V));
    double *lam = malloc(d * sizeof(double)), f = NAN;
    struct qt_spectrum sp = {d, V, lam};

    assert_true(V && lam);
    assert_int_equal(qt_rho_spectrum(ws, d, truth, &sp), 0);
    assert_int_equal(qt_rho_fidelity(ws, &sp, rho, &f), 0);
    free(V), free(lam);
    return f;
}

static double sum(size_t m, const double *y)
{
    double s = 0.0;

    for (size_t a = 0; a < m; a++)
        s += y[a];
    return s;
}

/* (a) beta = 0: the estimate is qt_estimate's MLE on the custom design of the F_a. */
static void test_agrees_with_mle(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
    } cases[] = {
        {QT_DESIGN_MUB, 2}, {QT_DESIGN_MUB, 4}, {QT_DESIGN_PAULI, 2}, {QT_DESIGN_PAULI, 4}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng r;
    struct qt_mlebg_opts o;

    (void)state;
    qt_rng_seed(&r, 1801);
    qt_mlebg_opts_init(&o);
    o.gap_tol = 1e-14;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        struct exp e;
        size_t d = cases[k].d, dd = d * d;

        exp_init(&e, &r, &ws, cases[k].kind, d, d);
        exp_draw(&e, &r, 1e5, 0.0);
        memset(e.beta, 0, e.m * sizeof(double));

        double complex *rho = malloc(dd * sizeof(*rho)), *el = malloc(dd * e.m * sizeof(*el));
        double inten, gap, ll;
        unsigned it;
        assert_true(rho && el);
        int rc = qt_mlebg(d, e.m, e.F, e.beta, e.y, &o, &ws, rho, &inten, &gap, &ll, &it);
        assert_true(rc == 0 || rc == QT_ENOCONV);
        assert_true(gap <= 1e-8);

        for (size_t a = 0; a < e.m; a++) /* row-major elements, as in a design file */
            for (size_t i = 0; i < d; i++)
                for (size_t j = 0; j < d; j++)
                    el[dd * a + d * i + j] = e.F[i + d * j + dd * a];
        struct qt_custom_spec spec = {d, e.m, NULL, el, NULL, NULL, NULL, NULL, NULL};
        struct qt_design *des = NULL;
        struct qt_result res;
        struct qt_opts opts;
        assert_int_equal(qt_design_new_custom(&spec, &des, NULL), 0);
        qt_opts_init(&opts);
        opts.mle.gap_tol = 1e-14;
        assert_int_equal(qt_result_init(&res, d), 0);
        assert_int_equal(qt_estimate(des, &ws, QT_METHOD_MLE, e.y, e.m, &opts, &res), 0);
        double diff = qt_frob_diff(d, rho, res.rho);
        print_message("mub/pauli #%zu d=%zu: |rho - rho_mle|_F = %.3g, gap %.3g, %u iterations, "
                      "I = %.6g\n",
                      k, d, diff, gap, it, inten);
        assert_true(diff <= 1e-7);
        qt_result_done(&res);
        qt_design_free(des);
        free(rho), free(el);
        exp_free(&e);
    }
    qt_ws_done(&ws);
}

/* (b) Backgrounds up to 2 % of the signal, 10^4..10^7 counts: certified to 1e-8 everywhere;
 * fidelity >= 0.9999 at 10^7, while the fit that ignores the background stays biased. */
static void test_background(void **state)
{
    static const struct {
        enum qt_design_kind kind;
        size_t d;
    } cases[] = {
        {QT_DESIGN_MUB, 2}, {QT_DESIGN_MUB, 4}, {QT_DESIGN_PAULI, 2}, {QT_DESIGN_PAULI, 4}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng r;
    struct qt_mlebg_opts o;

    (void)state;
    for (size_t k = 0; k < 3 * sizeof(cases) / sizeof(cases[0]); k++) {
        struct exp e;
        size_t kc = k % (sizeof(cases) / sizeof(cases[0])), d = cases[kc].d;

        qt_rng_seed(&r, 1802 + k);
        exp_init(&e, &r, &ws, cases[kc].kind, d, 0);
        for (double N = 1e4; N <= 1.5e7; N *= 10.0) {
            double complex *rho = malloc(d * d * sizeof(*rho)),
                           *rho0 = malloc(d * d * sizeof(*rho));
            double *zero = calloc(e.m, sizeof(double)), inten, inten0, gap, gap0, ll, ll0;
            unsigned it, it0;

            assert_true(rho && rho0 && zero);
            exp_draw(&e, &r, N, 0.02);
            double Y = sum(e.m, e.y);
            qt_mlebg_opts_init(&o);
            o.gap_tol = 1e-9 / Y; /* 1e-8 log-likelihood units, with polishing below it */
            int rc = qt_mlebg(d, e.m, e.F, e.beta, e.y, &o, &ws, rho, &inten, &gap, &ll, &it);
            int rc0 = qt_mlebg(d, e.m, e.F, zero, e.y, &o, &ws, rho0, &inten0, &gap0, &ll0, &it0);
            double f = fidelity(&ws, d, e.rho, rho), f0 = fidelity(&ws, d, e.rho, rho0);
            print_message("%s d=%zu N=%.0e: with beta F=%.8f gap %.2e (%u it, rc %d, I^/I %.6f); "
                          "beta ignored F=%.8f gap %.2e (%u it)\n",
                          kc < 2 ? "mub" : "pauli", d, N, f, gap, it, rc, inten / e.inten, f0, gap0,
                          it0);
            assert_true(rc == 0 || rc == QT_ENOCONV);
            assert_true(rc0 == 0 || rc0 == QT_ENOCONV);
            assert_true(gap <= 1e-8);
            assert_true(gap0 <= 1e-8);
            assert_true(fabs(inten / e.inten - 1.0) < 10.0 / sqrt(N));
            if (N > 5e6) {
                assert_true(f >= 0.9999);
                assert_true(1.0 - f0 > 3.0 * (1.0 - f)); /* the biased fit is visibly worse */
            }
            free(rho), free(rho0), free(zero);
        }
        exp_free(&e);
    }
    qt_ws_done(&ws);
}

/* (c) The certificate of perturbed points bounds their real loss. */
static void test_certificate_honest(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng r;
    struct exp e;
    size_t d = 4, dd = 16;

    (void)state;
    qt_rng_seed(&r, 1803);
    exp_init(&e, &r, &ws, QT_DESIGN_MUB, d, 2);
    exp_draw(&e, &r, 1e5, 0.02);

    double complex *rho = malloc(dd * sizeof(*rho)), *sig = malloc(dd * sizeof(*sig));
    double complex *sp = malloc(dd * sizeof(*sp));
    double inten, gap, ll, g_hat, ll_hat;
    unsigned it;
    assert_true(rho && sig && sp);
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it), 0);
    for (size_t i = 0; i < dd; i++)
        sig[i] = inten * rho[i];
    assert_int_equal(qt_mlebg_gap(d, e.m, e.F, e.beta, e.y, sig, &ws, &g_hat, &ll_hat), 0);
    qt_assert_close(ll_hat, ll, 1e-13, 0.0);
    qt_assert_close(g_hat, gap, 0.0, 0.0); /* the gap is that of intensity * rho */
    for (int kind = 0; kind < 3; kind++) {
        for (double eps = 1e-4; eps <= 1.1e-2; eps *= 10.0) {
            double gp, llp;

            /* 0: mix with I/d at the same trace; 1: scale the intensity by 1 + eps; 2: both,
             * scaled by 1 - eps. */
            double scale = kind == 1 ? 1.0 + eps : kind == 2 ? 1.0 - eps : 1.0;
            double mix = kind == 1 ? 0.0 : eps;

            for (size_t i = 0; i < dd; i++)
                sp[i] = scale * (1.0 - mix) * sig[i];
            for (size_t i = 0; i < d; i++)
                sp[i + d * i] += scale * mix * inten / (double)d;
            assert_int_equal(qt_mlebg_gap(d, e.m, e.F, e.beta, e.y, sp, &ws, &gp, &llp), 0);
            print_message("perturbation %d eps %.0e: loss %.6g <= gap %.6g\n", kind, eps,
                          ll_hat - llp, gp);
            assert_true(ll_hat - llp > 0.0);
            assert_true(gp >= ll_hat - llp);
            assert_true(gp >= gap);
        }
    }
    free(rho), free(sig), free(sp);
    exp_free(&e);
    qt_ws_done(&ws);
}

/* (d) A pure true state: the estimate is on the boundary of the cone; it converges and
 * certifies. */
static void test_pure_state(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng r;

    (void)state;
    qt_rng_seed(&r, 1804);
    for (int k = 0; k < 4; k++) {
        struct exp e;
        size_t d = k % 2 ? 4 : 2;
        double N = k < 2 ? 1e6 : 1e7;
        double complex *rho = malloc(d * d * sizeof(*rho));
        double inten, gap, ll;
        unsigned it, it0;

        assert_non_null(rho);
        exp_init(&e, &r, &ws, k % 2 ? QT_DESIGN_PAULI : QT_DESIGN_MUB, d, 1);
        exp_draw(&e, &r, N, 0.01);
        int rc = qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it);
        double f = fidelity(&ws, d, e.rho, rho), *zero = calloc(e.m, sizeof(double)), g0;
        assert_non_null(zero);
        assert_int_equal(qt_mlebg(d, e.m, e.F, zero, e.y, NULL, &ws, rho, &inten, &g0, &ll, &it0),
                         0);
        double f0 = fidelity(&ws, d, e.rho, rho);
        print_message(
            "pure d=%zu N=%.0e: rc %d gap %.3g, %u iterations, F = %.8f (ignoring beta: F = "
            "%.8f, gap %.3g, %u iterations)\n",
            d, N, rc, gap, it, f, f0, g0, it0);
        assert_true(g0 <= 1e-8);
        free(zero);
        assert_int_equal(rc, 0);
        assert_true(gap <= 1e-8);
        assert_true(f > 0.999);
        free(rho);
        exp_free(&e);
    }
    qt_ws_done(&ws);
}

/* (e) Impossible and invalid data. */
static void test_refused(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_rng r;
    struct exp e;
    size_t d = 2, dd = 4;
    double complex rho[4];
    double inten, gap, ll;
    unsigned it;

    (void)state;
    qt_rng_seed(&r, 1805);
    exp_init(&e, &r, &ws, QT_DESIGN_MUB, d, d);
    exp_draw(&e, &r, 1e3, 0.0);
    memset(e.beta, 0, e.m * sizeof(double));
    memset(e.F + dd * 2, 0, dd * sizeof(*e.F)); /* outcome 2 can never click */
    e.y[2] = 1.0;
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it),
                     QT_EZEROGROUP);
    e.beta[2] = 0.5; /* a background makes it possible again */
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it), 0);
    assert_true(gap <= 1e-10 * sum(e.m, e.y));
    struct qt_mlebg_opts o;
    qt_mlebg_opts_init(&o);
    o.max_iter = 1; /* not certified: reported, outputs still set */
    gap = NAN;
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, &o, &ws, rho, &inten, &gap, &ll, &it),
                     QT_ENOCONV);
    assert_true(gap > 1e-10 * sum(e.m, e.y) && isfinite(gap));
    qt_assert_close(creal(rho[0] + rho[3]), 1.0, 0.0, 1e-12);
    e.y[0] = -1.0;
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it),
                     -EDOM);
    e.y[0] = 1.0, e.beta[1] = NAN;
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it),
                     -EDOM);
    e.beta[1] = 0.0;
    for (size_t a = 0; a < e.m; a++) { /* fewer counts than background everywhere: sigma = 0 */
        e.beta[a] = 100.0;
        e.y[a] = 50.0;
    }
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it), 0);
    print_message("background only: I = %.3g, gap %.3g, %u iterations\n", inten, gap, it);
    assert_true(inten <= 1e-6 && gap <= 1e-10 * sum(e.m, e.y));
    qt_assert_close(creal(rho[0] + rho[3]), 1.0, 0.0, 1e-12);
    memset(e.beta, 0, e.m * sizeof(double));
    memset(e.y, 0, e.m * sizeof(double)); /* no counts: sigma = 0 */
    assert_int_equal(qt_mlebg(d, e.m, e.F, e.beta, e.y, NULL, &ws, rho, &inten, &gap, &ll, &it), 0);
    qt_assert_close(inten, 0.0, 0.0, 0.0);
    qt_assert_close(creal(rho[0]), 0.5, 0.0, 1e-15);
    exp_free(&e);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_agrees_with_mle),
    cmocka_unit_test(test_background),
    cmocka_unit_test(test_certificate_honest),
    cmocka_unit_test(test_pure_state),
    cmocka_unit_test(test_refused),
};

QT_TEST_MAIN(tests)
