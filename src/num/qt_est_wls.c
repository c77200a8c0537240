/* The origin's weighted least squares (origin-digest §2.3): minimise the Pearson chi^2
 * sum_a (f_a - q_a)^2 / max(q_a, clip) over density matrices, here with exact derivatives and
 * rho = A A^H / Tr(A A^H) (so rank-deficient states are reachable and the trace is always 1),
 * by the trust-region Newton solver. */
#include <errno.h>
#include <math.h>

#include "qt_est.h"
#include "qt_newton.h"

struct wls {
    const struct qt_design *des;
    const double *f;
    double clip, ftol, gtol;
    double F_prev; /* objective at the previous check (NAN at first) */
    int reason;    /* 1: gradient, 2: relative reduction */
};

static int wls_forward(void *ctx, struct qt_ws *ws, const double complex *X, double *q)
{
    struct wls *c = ctx;

    return qt_design_forward(c->des, ws, X, q);
}

static int wls_adjoint(void *ctx, struct qt_ws *ws, const double *v, double complex *out)
{
    struct wls *c = ctx;

    return qt_design_adjoint(c->des, ws, v, out);
}

/* phi = (f - q)^2 / q' with q' = max(q, clip); convex in q. */
static double wls_phi(void *ctx, const double *q, double *d1, double *d2)
{
    struct wls *c = ctx;
    double F = 0.0;

    for (size_t a = 0; a < c->des->m; a++) {
        double fa = c->f[a], qa = q[a], diff = fa - qa;

        if (qa > c->clip) {
            F += diff * diff / qa;
            if (d1)
                d1[a] = -diff * (fa + qa) / (qa * qa);
            if (d2)
                d2[a] = 2.0 * fa * fa / (qa * qa * qa);
        } else {
            F += diff * diff / c->clip;
            if (d1)
                d1[a] = -2.0 * diff / c->clip;
            if (d2)
                d2[a] = 2.0 / c->clip;
        }
    }
    return F;
}

/* scipy's L-BFGS-B rules, which the origin used: gradient small, or relative reduction of the
 * objective below ftol. */
static bool wls_converged(void *ctx, struct qt_ws *ws, const double complex *rho, const double *q,
                          double F, const double complex *G, double gnorm, unsigned work)
{
    struct wls *c = ctx;
    double prev = c->F_prev;

    (void)ws, (void)rho, (void)q, (void)G, (void)work;
    c->F_prev = F;
    if (gnorm <= c->gtol) {
        c->reason = 1;
        return true;
    }
    if (isfinite(prev) && prev > F && prev - F <= c->ftol * fmax(fmax(fabs(prev), fabs(F)), 1.0)) {
        c->reason = 2;
        return true;
    }
    return false;
}

/* The origin normalises nopovm data for WLS by the sum of the first d values (the
 * computational basis), as MATLAB did, and every other design per group (origin-digest §1.7). */
static int wls_data(const struct qt_design *des, const double *y, const double *f, double *fw,
                    double tolerance, struct qt_result *res)
{
    double s = 0.0;

    if (des->kind != QT_DESIGN_NOPOVM) {
        for (size_t a = 0; a < des->m; a++)
            fw[a] = f[a];
        return 0;
    }
    for (size_t a = 0; a < des->d; a++)
        s += y[a];
    if (fabs(s) <= tolerance)
        return qt_result_fail(res, QT_EZEROGROUP,
                              "rows 1-%zu sum to zero; WLS normalises nopovm data by the "
                              "computational-basis values, as the origin and MATLAB did",
                              des->d);
    for (size_t a = 0; a < des->m; a++)
        fw[a] = y[a] / s;
    return 0;
}

static const char *wls_message(enum qt_newton_status st, int reason)
{
    if (st == QT_NEWTON_CONVERGED)
        return reason == 1 ? "converged: gradient norm <= gtol"
                           : "converged: relative reduction of the objective <= ftol";
    if (st == QT_NEWTON_MAX_ITER)
        return "stopped: max_iterations reached";
    return "stopped: no step reduces the objective at machine precision";
}

int qt_est_wls(const struct qt_design *des, struct qt_ws *ws, const double *y, const double *f,
               const double complex *start, const struct qt_opts *opts, double complex *rho,
               struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *fw = qt_ws_alloc_n(ws, des->m, sizeof(double));
    struct wls ctx = {des, fw, opts->wls.min_expected_clip, opts->wls.ftol, opts->wls.gtol, NAN, 0};
    struct qt_newton_problem pb = {des->d,      des->m,  &ctx,          wls_forward,
                                   wls_adjoint, wls_phi, wls_converged, .backtrack = false};
    struct qt_newton_result nr;
    int r;

    if (!fw) {
        r = qt_result_fail(res, -ENOMEM, "out of memory");
        goto out;
    }
    r = wls_data(des, y, f, fw, opts->tolerance, res);
    if (r < 0)
        goto out;
    r = qt_newton_solve(&pb, ws, start, opts->wls.max_iterations, rho, &nr);
    if (r < 0) {
        r = qt_result_fail(res, r, "weighted least squares failed: %s", qt_strerror(r));
        goto out;
    }
    QT_MT_SET(&res->mt, OBJECTIVE, objective, nr.F);
    QT_MT_SET(&res->mt, N_ITERATIONS, n_iterations, (int64_t)nr.iterations);
    QT_MT_SET(&res->mt, N_EVALUATIONS, n_evaluations, (int64_t)nr.evaluations);
    QT_MT_SET(&res->mt, SUCCESS, success, nr.status == QT_NEWTON_CONVERGED);
    QT_MT_SET(&res->mt, STATUS, status, (int64_t)nr.status);
    QT_MT_SET(&res->mt, MESSAGE, message, wls_message(nr.status, ctx.reason));
    if (nr.status != QT_NEWTON_CONVERGED)
        res->warnings |= QT_WARN_NOT_CONVERGED;
out:
    qt_ws_release(ws, mark);
    return r;
}
