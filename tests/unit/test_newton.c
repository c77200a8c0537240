/* The trust-region Newton solver on a problem small enough to know its answer: least squares
 * F(rho) = sum_a (Tr(E_a rho) - t_a)^2 / 2 over rank-one projectors E_a = v_a v_a^H that
 * determine rho, with targets t_a of a known state, so that min F = 0 at that state.
 *
 * For a pure target the optimum is degenerate: G = sum_a (q_a - t_a) E_a vanishes there, so
 * along each column of A that must vanish F is quartic, and Newton in A shrinks its weight by
 * 4/9 per step. Newton in the weight (the problem's `radial` flag) takes such columns to zero
 * in a few steps. These are iteration counts of a deterministic solve, not timings. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_newton.h"
#include "qt_test.h"

#define N 4
#define M (3 * N * N)

struct ls {
    double complex v[M][N];
    double t[M];
    double stop; /* converged when F < stop */
};

static int ls_forward(void *ctx, struct qt_ws *ws, const double complex *X, double *q)
{
    struct ls *p = ctx;

    (void)ws;
    for (size_t a = 0; a < M; a++) {
        double complex acc = 0.0;

        for (size_t j = 0; j < N; j++)
            for (size_t i = 0; i < N; i++)
                acc += conj(p->v[a][i]) * X[i + N * j] * p->v[a][j];
        q[a] = creal(acc);
    }
    return 0;
}

static int ls_adjoint(void *ctx, struct qt_ws *ws, const double *c, double complex *out)
{
    struct ls *p = ctx;

    (void)ws;
    memset(out, 0, N * N * sizeof(*out));
    for (size_t a = 0; a < M; a++)
        for (size_t j = 0; j < N; j++)
            for (size_t i = 0; i < N; i++)
                out[i + N * j] += c[a] * p->v[a][i] * conj(p->v[a][j]);
    return 0;
}

static double ls_phi(void *ctx, const double *q, double *d1, double *d2)
{
    struct ls *p = ctx;
    double F = 0.0;

    for (size_t a = 0; a < M; a++) {
        double e = q[a] - p->t[a];

        F += 0.5 * e * e;
        if (d1)
            d1[a] = e;
        if (d2)
            d2[a] = 1.0;
    }
    return F;
}

static bool ls_converged(void *ctx, struct qt_ws *ws, const double complex *rho, const double *q,
                         double F, const double complex *G, double gnorm, unsigned work)
{
    struct ls *p = ctx;

    (void)ws, (void)rho, (void)q, (void)G, (void)gnorm, (void)work;
    return F < p->stop;
}

/* Unit vectors from a fixed linear congruential sequence (the same on every machine). */
static void make_problem(struct ls *p, const double complex *target)
{
    uint64_t s = 0x9e3779b97f4a7c15u;

    for (size_t a = 0; a < M; a++) {
        double nrm = 0.0;

        for (size_t i = 0; i < N; i++) {
            double x[2];

            for (int k = 0; k < 2; k++) {
                s = s * 6364136223846793005u + 1442695040888963407u;
                x[k] = (double)(s >> 11) * 0x1p-53 - 0.5;
            }
            p->v[a][i] = x[0] + I * x[1];
            nrm += x[0] * x[0] + x[1] * x[1];
        }
        for (size_t i = 0; i < N; i++)
            p->v[a][i] /= sqrt(nrm);
    }
    assert_int_equal(ls_forward(p, NULL, target, p->t), 0);
    p->stop = 1e-20;
}

static unsigned solve(struct ls *p, bool radial, const double complex *start,
                      double complex *rho)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_newton_problem pb = {N,      M,         p, ls_forward, ls_adjoint, ls_phi,
                                   ls_converged, .radial = radial};
    struct qt_newton_result res;

    assert_int_equal(qt_newton_solve(&pb, &ws, start, 200, rho, &res), 0);
    assert_int_equal(res.status, QT_NEWTON_CONVERGED);
    qt_ws_done(&ws);
    return res.iterations;
}

/* Solves without and with weight coordinates; both must end within tol of the target. */
static void solve_both(struct ls *p, const double complex *start, const double complex *target,
                       double tol, unsigned *plain, unsigned *radial)
{
    double complex rho[N * N];

    *plain = solve(p, false, start, rho);
    assert_true(qt_frob_diff(N, rho, target) < tol);
    *radial = solve(p, true, start, rho);
    assert_true(qt_frob_diff(N, rho, target) < tol);
}

/* A rank-3 target, started from 0.9 of it plus 0.1 I/4: one column must vanish, and F is
 * quartic in it. */
static void test_vanishing_column_in_weight_coordinates(void **state)
{
    static struct ls p;
    double complex target[N * N] = {0}, start[N * N] = {0};
    const double lam[N] = {0.5, 0.3, 0.2, 0.0};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        target[i + N * i] = lam[i];
        start[i + N * i] = 0.9 * lam[i] + 0.1 / N;
    }
    make_problem(&p, target);
    unsigned plain, radial;

    solve_both(&p, start, target, 1e-6, &plain, &radial);
    /* weight 0.025 to F < 1e-20 (weight ~1e-10) at 4/9 per step: ~25 steps in A */
    assert_true(plain >= 15);
    assert_true(2 * radial <= plain);
}

/* A full-rank target: nothing is quartic, and both solves find it. */
static void test_full_rank_target_unchanged(void **state)
{
    static struct ls p;
    double complex target[N * N] = {0}, start[N * N] = {0};
    const double lam[N] = {0.4, 0.3, 0.2, 0.1};

    (void)state;
    for (size_t i = 0; i < N; i++) {
        target[i + N * i] = lam[i];
        start[i + N * i] = 1.0 / N;
    }
    target[1 + N * 0] = 0.05 + 0.02 * I; /* off-diagonal: not the start's eigenbasis */
    target[0 + N * 1] = 0.05 - 0.02 * I;
    make_problem(&p, target);
    p.stop = 1e-28;
    unsigned plain, radial;

    solve_both(&p, start, target, 1e-10, &plain, &radial);
    assert_true(radial <= plain + 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_vanishing_column_in_weight_coordinates),
    cmocka_unit_test(test_full_rank_target_unchanged),
};

QT_TEST_MAIN(tests)
