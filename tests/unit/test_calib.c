/* Unit tests for detector calibration (num/qt_calib): Poisson counts simulated from known
 * efficiencies, crosstalk, backgrounds and intensities on known states are fitted back within
 * the reported standard errors, the errors are calibrated (z-scores over many seeds have unit
 * spread), and bad inputs are refused naming the run, outcome or group. */
#include <complex.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_calib.h"
#include "num/qt_rng.h"
#include "qt_test.h"
#include "qt_test_diag.h"

/* One-qubit states by letter: 0, 1, +, -, r, l. */
static void qubit_ket(char c, double complex v[2])
{
    double h = 1.0 / sqrt(2.0);

    switch (c) {
    case '0':
        v[0] = 1.0;
        v[1] = 0.0;
        break;
    case '1':
        v[0] = 0.0;
        v[1] = 1.0;
        break;
    case '+':
        v[0] = h;
        v[1] = h;
        break;
    case '-':
        v[0] = h;
        v[1] = -h;
        break;
    case 'r':
        v[0] = h;
        v[1] = I * h;
        break;
    default:
        v[0] = h;
        v[1] = -I * h;
        break;
    }
}

/* |psi><psi| of a product of qubit letters, qubit 0 the leftmost factor (most significant). */
static void product_rho(const char *s, size_t n, double complex *rho)
{
    size_t d = (size_t)1 << n;
    double complex psi[16];

    for (size_t i = 0; i < d; i++) {
        psi[i] = 1.0;
        for (size_t q = 0; q < n; q++) {
            double complex v[2];

            qubit_ket(s[q], v);
            psi[i] *= v[(i >> (n - 1 - q)) & 1];
        }
    }
    for (size_t c = 0; c < d; c++)
        for (size_t r = 0; r < d; r++)
            rho[r + d * c] = psi[r] * conj(psi[c]);
}

struct sim {
    struct qt_design *des;
    size_t J, nK;
    double complex *rho;
    bool *dark;
    double *y, *eff, *cross, *bg, *inten;
    size_t *goff, *loc, *gk;
    unsigned nq; /* > 0: the truth is per qubit (pauli) and so is the fit */
    double qeff[8], qcross[16];
};

static void sim_free(struct sim *s)
{
    qt_design_free(s->des);
    free(s->rho);
    free(s->dark);
    free(s->y);
    free(s->eff);
    free(s->cross);
    free(s->bg);
    free(s->inten);
    free(s->goff);
    free(s->loc);
    free(s->gk);
}

/* Poisson(lambda) as a binomial with 2^40 trials (indistinguishable here, and exact sampling). */
static double poisson(struct qt_rng *r, double lambda)
{
    double n = 1099511627776.0;

    return (double)qt_rng_binomial(r, (uint64_t)n, lambda / n);
}

/* A design with J runs: states given by product strings (NULL entry: dark run) or random. */
static void sim_new(struct sim *s, enum qt_design_kind kind, size_t d, size_t J,
                    const char *const *states, size_t n_qubits)
{
    memset(s, 0, sizeof(*s));
    assert_ok(qt_design_new(kind, d, &s->des, &diag));
    size_t m = s->des->m, G = s->des->n_groups;

    s->J = J;
    s->rho = calloc(J * d * d, sizeof(double complex));
    s->dark = calloc(J, sizeof(bool));
    s->y = calloc(m * J, sizeof(double));
    s->eff = calloc(m, sizeof(double));
    s->bg = calloc(m, sizeof(double));
    s->inten = calloc(J, sizeof(double));
    s->gk = calloc(G, sizeof(size_t));
    s->goff = calloc(G + 1, sizeof(size_t));
    s->loc = calloc(m, sizeof(size_t));
    for (size_t a = 0; a < m; a++)
        s->loc[a] = s->gk[s->des->groups[a]]++;
    for (size_t g = 0; g < G; g++)
        s->goff[g + 1] = s->goff[g] + s->gk[g] * s->gk[g];
    s->nK = s->goff[G];
    s->cross = calloc(s->nK, sizeof(double));
    for (size_t j = 0; j < J; j++) {
        if (states && !states[j])
            s->dark[j] = true;
        else if (states)
            product_rho(states[j], n_qubits, s->rho + j * d * d);
    }
}

/* Per-qubit truth: eta_q in [0.7, 1], C_q with up to 5 % crosstalk; outcome efficiencies and
 * setting crosstalk are their products (qubit 0 the most significant bit). */
static void qubit_truth(struct sim *s, struct qt_rng *r)
{
    unsigned n = s->nq;
    size_t k = (size_t)1 << n;

    for (unsigned q = 0; q < n; q++) {
        for (size_t b = 0; b < 2; b++) {
            double x = 0.05 * (0.2 + 0.8 * qt_rng_uniform(r));

            s->qeff[2 * q + b] = 0.7 + 0.3 * qt_rng_uniform(r);
            s->qcross[4 * q + (1 - b) + 2 * b] = x;
            s->qcross[4 * q + b + 2 * b] = 1.0 - x;
        }
    }
    for (size_t a = 0; a < s->des->m; a++) {
        size_t al = s->loc[a];

        s->eff[a] = 1.0;
        for (unsigned q = 0; q < n; q++)
            s->eff[a] *= s->qeff[2 * q + ((al >> (n - 1 - q)) & 1)];
    }
    for (size_t g = 0; g < s->des->n_groups; g++)
        for (size_t bl = 0; bl < k; bl++)
            for (size_t al = 0; al < k; al++) {
                double x = 1.0;

                for (unsigned q = 0; q < n; q++)
                    x *= s->qcross[4 * q + ((al >> (n - 1 - q)) & 1) +
                                   2 * ((bl >> (n - 1 - q)) & 1)];
                s->cross[s->goff[g] + al + k * bl] = x;
            }
}

/* Truth: eta in [0.7, 1], up to 5 % crosstalk per column, background in [5, 50] (bg), run
 * intensities around n_light; then Poisson counts. */
static void sim_draw(struct sim *s, uint64_t seed, double n_light, bool bg, bool random_states)
{
    struct qt_rng r;
    struct qt_ws ws = QT_WS_INIT;
    size_t m = s->des->m, d = s->des->d, G = s->des->n_groups;
    double *p = calloc(m, sizeof(double));

    qt_rng_seed(&r, seed);
    for (size_t a = 0; a < m; a++) {
        s->eff[a] = 0.7 + 0.3 * qt_rng_uniform(&r);
        s->bg[a] = bg ? 5.0 + 45.0 * qt_rng_uniform(&r) : 0.0;
    }
    for (size_t g = 0; g < G; g++) {
        size_t k = s->gk[g];
        double *C = s->cross + s->goff[g];

        for (size_t b = 0; b < k; b++) {
            double off = 0.0;

            for (size_t a = 0; a < k; a++)
                if (a != b) {
                    C[a + k * b] = 0.05 / (double)(k - 1) * (0.2 + 0.8 * qt_rng_uniform(&r));
                    off += C[a + k * b];
                }
            C[b + k * b] = 1.0 - off;
        }
    }
    if (s->nq)
        qubit_truth(s, &r);
    for (size_t j = 0; j < s->J; j++) {
        s->inten[j] = s->dark[j] ? 0.0 : n_light * (0.8 + 0.4 * qt_rng_uniform(&r));
        if (random_states)
            qt_rng_state(&r, d, 1, s->rho + j * d * d);
        if (s->dark[j])
            memset(p, 0, m * sizeof(double));
        else
            assert_ok(qt_design_forward(s->des, &ws, s->rho + j * d * d, p));
        for (size_t a = 0; a < m; a++) {
            size_t g = s->des->groups[a], k = s->gk[g];
            double mu = s->bg[a];

            for (size_t b2 = 0; b2 < m; b2++)
                if (s->des->groups[b2] == g)
                    mu += s->inten[j] * s->cross[s->goff[g] + s->loc[a] + k * s->loc[b2]] *
                          s->eff[b2] * fmax(p[b2], 0.0);
            s->y[a + m * j] = poisson(&r, mu);
        }
    }
    (void)G;
    qt_ws_done(&ws);
    free(p);
}

static struct qt_calib *sim_fit(const struct sim *s, bool bg)
{
    struct qt_calib_input in = {s->des, s->J, s->rho, s->dark, s->y, bg, 0.0, 0, s->nq > 0};
    struct qt_calib *cal = NULL;

    assert_ok(qt_calib_fit(&in, &cal, &diag));
    return cal;
}

/* z-scores of every free eta, off-diagonal C entry and beta, appended to z (n in/out); the
 * largest |z| returned. */
static double zscores(const struct sim *s, const struct qt_calib *cal, double *z, size_t *n)
{
    size_t m = s->des->m, ref = cal->ref;
    double zmax = 0.0;

    if (s->nq) {
        assert_int_equal(cal->n_qubits, s->nq);
        for (unsigned q = 0; q < s->nq; q++) {
            size_t rq = cal->qeff[2 * q] == 1.0 ? 0 : 1;

            assert_true(cal->qeff[2 * q + rq] == 1.0);
            z[(*n)++] =
                (cal->qeff[2 * q + 1 - rq] - s->qeff[2 * q + 1 - rq] / s->qeff[2 * q + rq]) /
                cal->qeff_se[2 * q + 1 - rq];
            z[(*n)++] = (cal->qcross[4 * q + 1] - s->qcross[4 * q + 1]) / cal->qcross_se[4 * q + 1];
            z[(*n)++] = (cal->qcross[4 * q + 2] - s->qcross[4 * q + 2]) / cal->qcross_se[4 * q + 2];
        }
        for (size_t a = 0; a < m; a++) {
            if (a != ref && cal->eff_se[a] > 0.0)
                z[(*n)++] = (cal->eff[a] - s->eff[a] / s->eff[ref]) / cal->eff_se[a];
            if (cal->background)
                z[(*n)++] = (cal->bg[a] - s->bg[a]) / cal->bg_se[a];
        }
        for (size_t i = 0; i < *n; i++)
            zmax = fmax(zmax, fabs(z[i]));
        return zmax;
    }

    for (size_t a = 0; a < m; a++) {
        if (a != ref) {
            double t = s->eff[a] / s->eff[ref];

            assert_true(cal->eff_se[a] > 0.0);
            z[(*n)++] = (cal->eff[a] - t) / cal->eff_se[a];
            zmax = fmax(zmax, fabs(z[*n - 1]));
        }
        if (cal->background) {
            z[(*n)++] = (cal->bg[a] - s->bg[a]) / cal->bg_se[a];
            zmax = fmax(zmax, fabs(z[*n - 1]));
        }
    }
    for (size_t g = 0; g < s->des->n_groups; g++) {
        size_t k = s->gk[g];

        for (size_t b = 0; b < k; b++)
            for (size_t a = 0; a < k; a++) {
                size_t e = s->goff[g] + a + k * b;

                if (a == b && k == 2)
                    continue; /* the same number as the off-diagonal entry */
                assert_true(cal->cross_se[e] > 0.0);
                z[(*n)++] = (cal->cross[e] - s->cross[e]) / cal->cross_se[e];
                zmax = fmax(zmax, fabs(z[*n - 1]));
            }
    }
    return zmax;
}

static double spread(const double *z, size_t n)
{
    double mean = 0.0, var = 0.0;

    for (size_t i = 0; i < n; i++)
        mean += z[i] / (double)n;
    for (size_t i = 0; i < n; i++)
        var += (z[i] - mean) * (z[i] - mean) / (double)(n - 1);
    return sqrt(var);
}

static const char *const one_qubit[] = {"0", "1", "+", "-", "r", "l"};

/* ---- recovery ---- */

static void check_one_q(enum qt_design_kind kind, size_t d, size_t J, const char *const *states,
                        size_t nq, bool bg, bool random_states, size_t seeds, double n_light,
                        const char *label, bool qubit)
{
    size_t cap = 4096, n = 0;
    double *z = calloc(cap * seeds, sizeof(double)), zmax = 0.0, chi2 = 0.0;
    long dof = 0;
    unsigned iters = 0;

    for (size_t sd = 0; sd < seeds; sd++) {
        struct sim s;
        struct qt_calib *cal;

        sim_new(&s, kind, d, J, states, nq);
        s.nq = qubit ? (unsigned)nq : 0;
        sim_draw(&s, 1000 + sd, n_light, bg, random_states);
        cal = sim_fit(&s, bg);
        zmax = fmax(zmax, zscores(&s, cal, z, &n));
        chi2 += cal->chi2;
        dof += cal->dof;
        iters = QT_MAX(iters, cal->n_iter);
        assert_true(fabs(cal->eff[cal->ref] - 1.0) < 1e-15);
        qt_calib_free(cal);
        sim_free(&s);
    }
    double sp = spread(z, n);

    print_message("%s: %zu seeds, %zu z-scores, std %.3f, max |z| %.2f, chi2/dof %.3f, "
                  "iterations <= %u\n",
                  label, seeds, n, sp, zmax, chi2 / (double)dof, iters);
    /* Every estimate within 4 reported standard errors of the truth, except for the rare tail
     * of many z-scores: at most one in a thousand beyond 4. */
    size_t beyond = 0;

    for (size_t i = 0; i < n; i++)
        beyond += fabs(z[i]) > 4.0;
    assert_true(beyond * 1000 <= n);
    if (seeds > 1)
        assert_true(sp > 0.7 && sp < 1.4);
    assert_true(fabs(chi2 / (double)dof - 1.0) < 0.5);
    free(z);
}

static void check_one(enum qt_design_kind kind, size_t d, size_t J, const char *const *states,
                      size_t nq, bool bg, bool random_states, size_t seeds, double n_light,
                      const char *label)
{
    check_one_q(kind, d, J, states, nq, bg, random_states, seeds, n_light, label, false);
}

static void test_pauli1_errors_calibrated(void **state)
{
    (void)state;
    check_one(QT_DESIGN_PAULI, 2, 6, one_qubit, 1, false, false, 50, 1e5, "pauli 1 qubit");
}

static void test_pauli1_background(void **state)
{
    static const char *const st[] = {"0", "1", "+", "-", "r", "l", NULL, NULL};

    (void)state;
    check_one(QT_DESIGN_PAULI, 2, 8, st, 1, true, false, 50, 2e4, "pauli 1 qubit + background");
}

static void test_pauli2(void **state)
{
    static const char L[] = "01+-rl";
    char buf[36][3];
    const char *st[36];

    (void)state;
    for (size_t i = 0; i < 36; i++) {
        buf[i][0] = L[i / 6];
        buf[i][1] = L[i % 6];
        buf[i][2] = 0;
        st[i] = buf[i];
    }
    check_one(QT_DESIGN_PAULI, 4, 36, st, 2, false, false, 3, 1e5, "pauli 2 qubits");
}

/* Qubit mode: one 2 x 2 model per qubit, fitted from the 36 product states, and from only 8
 * (0 1 + r on each qubit, paired), far fewer than the per-setting model could use. */
static void test_pauli2_qubit_mode(void **state)
{
    static const char L[] = "01+-rl";
    static const char *const few[] = {"00", "11", "++", "rr", "0+", "1r", "+1", "r0"};
    char buf[36][3];
    const char *st[36];

    (void)state;
    for (size_t i = 0; i < 36; i++) {
        buf[i][0] = L[i / 6];
        buf[i][1] = L[i % 6];
        buf[i][2] = 0;
        st[i] = buf[i];
    }
    check_one_q(QT_DESIGN_PAULI, 4, 36, st, 2, false, false, 10, 1e5, "pauli 2 qubits, qubit mode",
                true);
    check_one_q(QT_DESIGN_PAULI, 4, 8, few, 2, false, false, 30, 1e5,
                "pauli 2 qubits, qubit mode, 8 states", true);
}

static void test_pauli3_qubit_mode_background(void **state)
{
    static const char *const st[] = {"000", "111", "+++", "rrr", "0+r", "1-l", "+r0", "l01", NULL};

    (void)state;
    check_one_q(QT_DESIGN_PAULI, 8, 9, st, 3, true, false, 5, 1e5,
                "pauli 3 qubits, qubit mode + background", true);
}

static void test_nopovm_random_states(void **state)
{
    (void)state;
    check_one(QT_DESIGN_NOPOVM, 2, 12, NULL, 0, false, true, 20, 1e5, "nopovm d=2");
}

static void test_mub3_random_states(void **state)
{
    (void)state;
    check_one(QT_DESIGN_MUB, 3, 12, NULL, 0, false, true, 5, 1e5, "mub d=3");
}

/* ---- errors ---- */

static int fit_err(struct sim *s, bool bg)
{
    struct qt_calib_input in = {s->des, s->J, s->rho, s->dark, s->y, bg, 0.0, 0, s->nq > 0};
    struct qt_calib *cal = NULL;
    int r = qt_calib_fit(&in, &cal, &diag);

    assert_null(cal);
    return r;
}

static void test_unidentifiable_group(void **state)
{
    static const char *const st[] = {"0", "1", "0", "1"};
    struct sim s;

    (void)state;
    sim_new(&s, QT_DESIGN_PAULI, 2, 4, st, 1);
    sim_draw(&s, 7, 1e4, false, false);
    assert_err(fit_err(&s, false), QT_ENOTIC);
    assert_non_null(strstr(diag.msg, "group 0 (outcomes 0..1) is not identifiable"));
    assert_non_null(strstr(diag.msg, "rank 1, it needs 2"));
    sim_free(&s);
}

/* k runs in a single group: each run's intensity trades against the fit of K (more parameters
 * than counts), which the Fisher check catches after the rank check passed. */
static void test_confounded_intensities(void **state)
{
    struct sim s;

    (void)state;
    sim_new(&s, QT_DESIGN_NOPOVM, 2, 4, NULL, 0);
    sim_draw(&s, 5, 1e5, false, true);
    assert_err(fit_err(&s, false), QT_ENOTIC);
    assert_non_null(strstr(diag.msg, "the known states do not determine the model"));
    sim_free(&s);
}

static void test_bad_inputs(void **state)
{
    struct sim s;

    (void)state;
    sim_new(&s, QT_DESIGN_PAULI, 2, 6, one_qubit, 1);
    sim_draw(&s, 7, 1e4, false, false);

    s.y[3 + 6 * 2] = -1.0;
    assert_err(fit_err(&s, false), QT_ENEGATIVE);
    assert_non_null(strstr(diag.msg, "run 2 outcome 3: negative count"));
    s.y[3 + 6 * 2] = NAN;
    assert_err(fit_err(&s, false), QT_ENONFINITE);
    assert_non_null(strstr(diag.msg, "run 2 outcome 3"));
    s.y[3 + 6 * 2] = 10.0;

    s.rho[4 * 4] *= 1.01; /* run 4's state, trace 1.005 */
    assert_err(fit_err(&s, false), QT_ENOTPHYS);
    assert_non_null(strstr(diag.msg, "the state of run 4 has trace 1.005"));
    s.rho[4 * 4] /= 1.01;

    assert_err(fit_err(&s, true), QT_EOPTION);
    assert_non_null(strstr(diag.msg, "needs a dark run"));
    s.dark[5] = true;
    assert_err(fit_err(&s, false), QT_EOPTION);
    assert_non_null(strstr(diag.msg, "dark runs only make sense"));
    for (size_t j = 0; j < 6; j++)
        s.dark[j] = true;
    assert_err(fit_err(&s, true), QT_EOPTION);
    assert_non_null(strstr(diag.msg, "every run is dark"));
    sim_free(&s);

    struct qt_calib_input none = {NULL, 0, NULL, NULL, NULL, false, 0.0, 0, false};
    struct qt_calib *cal = NULL;

    assert_err(qt_calib_fit(&none, &cal, &diag), QT_ESHAPE);

    sim_new(&s, QT_DESIGN_MUB, 2, 6, one_qubit, 1);
    sim_draw(&s, 7, 1e4, false, false);
    s.nq = 1;
    assert_err(fit_err(&s, false), QT_EDESIGN);
    assert_non_null(strstr(diag.msg, "the per-qubit model needs the pauli design, not mub"));
    sim_free(&s);
}

/* The iteration cap is honoured. */
static void test_no_convergence(void **state)
{
    struct sim s;
    struct qt_calib_input in;
    struct qt_calib *cal = NULL;

    (void)state;
    sim_new(&s, QT_DESIGN_PAULI, 2, 6, one_qubit, 1);
    sim_draw(&s, 7, 1e5, false, false);
    in = (struct qt_calib_input){s.des, s.J, s.rho, s.dark, s.y, false, 1e-12, 3, false};
    assert_err(qt_calib_fit(&in, &cal, &diag), QT_ENOCONV);
    assert_non_null(strstr(diag.msg, "did not converge in 3 iterations"));
    sim_free(&s);
}

/* Exact expected counts (no noise) are fitted to the truth. */
static void test_exact_counts(void **state)
{
    struct sim s;
    struct qt_calib *cal;
    struct qt_ws ws = QT_WS_INIT;
    double p[6];

    (void)state;
    sim_new(&s, QT_DESIGN_PAULI, 2, 6, one_qubit, 1);
    sim_draw(&s, 11, 1e6, false, false);
    for (size_t j = 0; j < 6; j++) {
        assert_ok(qt_design_forward(s.des, &ws, s.rho + 4 * j, p));
        for (size_t a = 0; a < 6; a++) {
            size_t g = s.des->groups[a];
            double mu = 0.0;

            for (size_t b = 0; b < 6; b++)
                if (s.des->groups[b] == g)
                    mu += s.inten[j] * s.cross[s.goff[g] + s.loc[a] + 2 * s.loc[b]] * s.eff[b] *
                          fmax(p[b], 0.0);
            s.y[a + 6 * j] = mu;
        }
    }
    cal = sim_fit(&s, false);
    for (size_t a = 0; a < 6; a++)
        qt_assert_close(cal->eff[a], s.eff[a] / s.eff[cal->ref], 1e-6, 0.0);
    for (size_t e = 0; e < s.nK; e++)
        qt_assert_close(cal->cross[e], s.cross[e], 0.0, 1e-7);
    for (size_t j = 0; j < 6; j++)
        qt_assert_close(cal->intensity[j], s.inten[j] * s.eff[cal->ref], 1e-6, 0.0);
    assert_true(cal->chi2 < 1e-6);
    assert_int_equal(cal->dof, 36 - (12 + 6 - 1));
    qt_calib_free(cal);
    qt_ws_done(&ws);
    sim_free(&s);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_exact_counts),
    cmocka_unit_test(test_pauli1_errors_calibrated),
    cmocka_unit_test(test_pauli1_background),
    cmocka_unit_test(test_pauli2),
    cmocka_unit_test(test_pauli2_qubit_mode),
    cmocka_unit_test(test_pauli3_qubit_mode_background),
    cmocka_unit_test(test_nopovm_random_states),
    cmocka_unit_test(test_mub3_random_states),
    cmocka_unit_test(test_unidentifiable_group),
    cmocka_unit_test(test_confounded_intensities),
    cmocka_unit_test(test_bad_inputs),
    cmocka_unit_test(test_no_convergence),
};

QT_TEST_MAIN(tests)
