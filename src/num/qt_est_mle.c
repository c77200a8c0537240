/* Maximum likelihood: minimise -sum_a w_a ln Tr(sigma E~_a) over whitened density matrices with
 * the trust-region Newton solver, and certify the result with the concavity bound
 * max L - L(sigma) <= lambda_max(R(sigma)) - 1, R = sum_a w_a E~_a / Tr(sigma E~_a). */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "qt_est.h"
#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_newton.h"
#include "qt_sum.h"
#include "qt_whiten.h"

struct mle {
    const struct qt_design *des;
    const struct qt_whiten *wh;
    const double *w; /* data weights normalised to sum 1, in the design's native order */
    double gap_tol;
    double gap;      /* certificate at the last check */
    struct qt_polish polish;
    double complex *best; /* the certified point with the least gap (see qt_polish_done) */
    double best_gap;
};

static int mle_forward(void *ctx, struct qt_ws *ws, const double complex *X, double *q)
{
    struct mle *c = ctx;

    return qt_whiten_forward_native(c->wh, c->des, ws, X, q);
}

static int mle_adjoint(void *ctx, struct qt_ws *ws, const double *v, double complex *out)
{
    struct mle *c = ctx;

    return qt_whiten_adjoint_native(c->wh, c->des, ws, v, out);
}

/* phi_a = -w_a ln q_a: the negative log-likelihood per count. Outcomes never observed do not
 * contribute; an observed outcome with q <= 0 is outside the domain. The sum is compensated:
 * over the 6^8 outcomes of 8 Pauli qubits a plain sum is off by ~300 ulp of F, which hid every
 * step of the solver's last iterations (their true change of F is below 1 ulp) behind noise. */
static double mle_phi(void *ctx, const double *q, double *d1, double *d2)
{
    struct mle *c = ctx;
    struct qt_sum F = {0.0, 0.0};

    for (size_t a = 0; a < c->wh->m; a++) {
        double w = c->w[a], qa = q[a];

        if (w > 0.0 && !(qa > 0.0))
            return INFINITY;
        if (w > 0.0)
            qt_sum_add(&F, -w * log(qa));
        if (d1)
            d1[a] = w > 0.0 ? -w / qa : 0.0;
        if (d2)
            d2[a] = w > 0.0 ? w / (qa * qa) : 0.0;
    }
    return qt_sum_value(&F);
}

/* gap = lambda_max(R) - 1 with R = -G = sum_a (w_a / q_a) E~_a. */
static int certificate(struct qt_ws *ws, size_t n, const double complex *G, double *ret_gap)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *R = qt_ws_alloc_n(ws, n * n, sizeof(*R));
    double *lam = qt_ws_alloc_n(ws, n, sizeof(double));
    int r = -ENOMEM;

    if (R && lam) {
        for (size_t i = 0; i < n * n; i++)
            R[i] = -G[i];
        r = qt_zheev(ws, false, n, R, n, lam);
        if (r >= 0)
            *ret_gap = lam[n - 1] - 1.0;
    }
    qt_ws_release(ws, mark);
    return r;
}

static bool mle_converged(void *ctx, struct qt_ws *ws, const double complex *rho, const double *q,
                          double F, const double complex *G, double gnorm, unsigned work)
{
    struct mle *c = ctx;

    (void)q, (void)F, (void)gnorm;
    if (certificate(ws, c->wh->ds, G, &c->gap) < 0)
        c->gap = INFINITY;
    if (c->gap <= c->gap_tol && c->gap < c->best_gap) {
        memcpy(c->best, rho, c->wh->ds * c->wh->ds * sizeof(*rho));
        c->best_gap = c->gap;
    }
    /* Polished past gap_tol while that makes progress (e.g. never less likely than the
     * origin's long RrhoR runs). */
    return qt_polish_done(&c->polish, c->gap, c->gap_tol, work);
}

/* The certificate at the final sigma, recomputed so that it belongs to the state reported. */
static int final_gap(struct mle *c, struct qt_ws *ws, const double complex *sigma, double *gap)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t n = c->wh->ds, m = c->wh->m;
    double *q = qt_ws_alloc_n(ws, m, sizeof(double)), *d1 = qt_ws_alloc_n(ws, m, sizeof(double));
    double complex *G = qt_ws_alloc_n(ws, n * n, sizeof(*G));
    int r = -ENOMEM;

    if (q && d1 && G) {
        r = mle_forward(c, ws, sigma, q);
        if (r >= 0 && !isfinite(mle_phi(c, q, d1, NULL)))
            r = QT_ENOCONV;
        if (r >= 0)
            r = mle_adjoint(c, ws, d1, G);
        if (r >= 0)
            r = certificate(ws, n, G, gap);
    }
    qt_ws_release(ws, mark);
    return r;
}

static const char *mle_message(enum qt_newton_status st, bool converged)
{
    if (converged)
        return "converged: optimality gap per count <= gap_tol";
    if (st == QT_NEWTON_MAX_ITER)
        return "stopped at max_iterations before the optimality gap per count reached gap_tol";
    return "stopped: no step improves the likelihood at machine precision, but the optimality "
           "gap per count is above gap_tol";
}

int qt_est_mle(const struct qt_design *des, struct qt_ws *ws, const double *y, const double *f,
               const double complex *start, const struct qt_opts *opts, double complex *rho,
               struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    const struct qt_whiten *wh = des->whiten;
    size_t n = wh->ds, m = des->m;
    double *w0 = qt_ws_alloc_n(ws, m, sizeof(double)), tot = 0.0, gap = INFINITY;
    double *w = qt_ws_alloc_n(ws, m, sizeof(double));
    double complex *s0 = qt_ws_alloc_n(ws, n * n, sizeof(*s0));
    double complex *sig = qt_ws_alloc_n(ws, n * n, sizeof(*sig));
    double complex *best = qt_ws_alloc_n(ws, n * n, sizeof(*best));
    struct mle ctx = {des, wh, w, opts->mle.gap_tol, INFINITY, QT_POLISH_INIT(true), best,
                      INFINITY};
    struct qt_newton_problem pb = {n,           m,       &ctx,          mle_forward,
                                   mle_adjoint, mle_phi, mle_converged, .backtrack = true,
                                   .radial = true};
    struct qt_newton_result nr;
    int r;

    (void)f;
    if (!w0 || !w || !s0 || !sig || !best) {
        r = qt_result_fail(res, -ENOMEM, "out of memory");
        goto out;
    }
    for (size_t a = 0; a < m; a++)
        tot += y[a];
    for (size_t a = 0; a < m; a++)
        w0[a] = y[a] / tot;
    /* The solver only sums over outcomes, so it works in the maps' native order. */
    r = qt_whiten_to_native(wh, des, ws, w0, w);
    if (r >= 0)
        r = qt_whiten_from_rho(wh, ws, start, s0);
    if (r >= 0)
        r = qt_newton_solve(&pb, ws, s0, opts->mle.max_iterations, sig, &nr);
    if (r >= 0)
        r = final_gap(&ctx, ws, sig, &gap);
    if (r >= 0 && ctx.best_gap < gap) { /* polishing left the certificate: its best point */
        memcpy(sig, best, n * n * sizeof(*sig));
        r = final_gap(&ctx, ws, sig, &gap);
    }
    if (r >= 0)
        r = qt_whiten_to_rho(wh, ws, sig, 1e-300, rho);
    if (r < 0) {
        r = qt_result_fail(res, r, "maximum likelihood failed: %s", qt_strerror(r));
        goto out;
    }
    /* The certificate is of the weights normalised to sum 1 (per count); the likelihood the
     * record reports is of the data as given, so its bound is tot times larger. The tolerance
     * is per count: the same data as counts or as frequencies converge alike. */
    bool conv = gap <= opts->mle.gap_tol;
    QT_MT_SET(&res->mt, GAP, gap, gap * tot);
    QT_MT_SET(&res->mt, GAP_PER_COUNT, gap_per_count, gap);
    QT_MT_SET(&res->mt, ITERATIONS, iterations, (int64_t)nr.iterations);
    QT_MT_SET(&res->mt, N_EVALUATIONS, n_evaluations, (int64_t)nr.evaluations);
    QT_MT_SET(&res->mt, CONVERGED, converged, conv);
    QT_MT_SET(&res->mt, MESSAGE, message, mle_message(nr.status, conv));
    if (!conv)
        res->warnings |= QT_WARN_NOT_CONVERGED;
out:
    qt_ws_release(ws, mark);
    return r;
}
