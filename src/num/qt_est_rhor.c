/* The origin's R rho R iteration (RrhoStrictReconstructor, origin-digest §2.4), ported step for
 * step in the space whitened by H = sum_a E_a so that iterates, counts and diagnostics match. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "qt_est.h"
#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_whiten.h"

/* The origin counts an iteration as a likelihood decrease when ll - ll_prev < -1e-10. */
#define LL_DECREASE_TOL 1e-10

/* One run: the buffers, allocated once from the workspace before the loop, and the origin's
 * running diagnostics.
 *
 * min_q is the running minimum, over all iterations and outcomes, of q_a = Re Tr(E~_a sigma)
 * after the floor at eps_prob, for the sigma at the start of each iteration: it never sees the
 * final sigma. min_trace is the running minimum of t = Re Tr(R sigma R) after hermitisation and
 * before the reset or the division by t; t falls to (sum_a f_a)^2, which is 1 for nopovm and
 * sic and (d+1)^2 for complete MUBs. Checked against cases.json: this min_q matches the origin
 * to 1e-13 relative (4e-17 absolute for the ~2e-10 values of the exact pure states), while the
 * minimum over the last iteration's q is off by up to 5e-2 relative and over the final sigma's
 * q by up to 0.56; the origin's min_trace of 9, 16 and 25 for MUB d = 2, 3, 4 rules out a
 * trace taken after normalisation. No case has a q below 1e-12, so the order of floor and
 * minimum is taken from the origin's source (rhor_strict.py), which floors first. */
struct rhor {
    const struct qt_design *des;
    const struct qt_whiten *wh;
    const struct qt_rhor_opts *o;
    struct qt_ws *ws;
    const double *f;
    size_t n;              /* whitened (support) dimension */
    size_t m;              /* outcomes */
    double complex *sigma; /* current iterate, n x n */
    double complex *prev;  /* the iterate before the last update (swapped with sigma) */
    double complex *R;     /* sum_a (f_a / q_a) E~_a */
    double complex *T;     /* R sigma */
    double *q;             /* floored probabilities of the current iterate */
    double *c;             /* f_a / q_a */
    double ll, ll_prev;    /* log-likelihood of this iteration and the previous one */
    double min_q, min_trace, dn, dll;
    int64_t decreases, resets, first_reset;
};

static int rhor_alloc(struct rhor *s)
{
    size_t nn = s->n * s->n;

    s->sigma = qt_ws_alloc_n(s->ws, nn, sizeof(double complex));
    s->prev = qt_ws_alloc_n(s->ws, nn, sizeof(double complex));
    s->R = qt_ws_alloc_n(s->ws, nn, sizeof(double complex));
    s->T = qt_ws_alloc_n(s->ws, nn, sizeof(double complex));
    s->q = qt_ws_alloc_n(s->ws, s->m, sizeof(double));
    s->c = qt_ws_alloc_n(s->ws, s->m, sizeof(double));
    return s->sigma && s->prev && s->R && s->T && s->q && s->c ? 0 : -ENOMEM;
}

/* sigma = I / n, the origin's start and its reset value. */
static void set_mixed(size_t n, double complex *sigma)
{
    memset(sigma, 0, n * n * sizeof(*sigma));
    for (size_t i = 0; i < n; i++)
        sigma[i + n * i] = 1.0 / (double)n;
}

/* Steps 1 to 3: hermitise sigma, q = max(Re Tr(E~ sigma), eps), ll = sum_a f_a ln q_a, and the
 * monotonicity check against the previous iteration. */
static int likelihood(struct rhor *s, unsigned it)
{
    double eps = s->o->eps_prob, ll = 0.0;
    int r;

    qt_mat_hermitise(s->n, s->sigma, s->sigma);
    r = qt_whiten_forward(s->wh, s->des, s->ws, s->sigma, s->q);
    if (r < 0)
        return r;
    for (size_t a = 0; a < s->m; a++) {
        s->q[a] = fmax(s->q[a], eps);
        s->min_q = fmin(s->min_q, s->q[a]);
        ll += s->f[a] * log(s->q[a]);
    }
    s->ll = ll;
    if (it > 1 && ll - s->ll_prev < -LL_DECREASE_TOL)
        s->decreases++;
    return 0;
}

/* Step 4: R = sum_a (f_a / q_a) E~_a, hermitised, and diluted to mu R + (1 - mu) I on request. */
static int build_r(struct rhor *s)
{
    double mu = s->o->diluted_mu;
    int r;

    for (size_t a = 0; a < s->m; a++)
        s->c[a] = s->f[a] / s->q[a];
    r = qt_whiten_adjoint(s->wh, s->des, s->ws, s->c, s->R);
    if (r < 0)
        return r;
    qt_mat_hermitise(s->n, s->R, s->R);
    if (s->o->use_diluted) {
        for (size_t t = 0; t < s->n * s->n; t++)
            s->R[t] *= mu;
        for (size_t i = 0; i < s->n; i++)
            s->R[i + s->n * i] += 1.0 - mu;
    }
    return 0;
}

/* Steps 5 to 7: sigma <- R sigma R (hermitised) normalised by its trace t, or reset to I / n when
 * t <= eps; then dn = |sigma - sigma_prev|_F and dll = |ll - ll_prev|. */
static void update(struct rhor *s, unsigned it)
{
    size_t n = s->n;
    double complex *old = s->sigma;
    double t = 0.0, dn = 0.0;

    qt_zgemm('N', 'N', n, n, n, 1.0, s->R, n, old, n, 0.0, s->T, n);
    qt_zgemm('N', 'N', n, n, n, 1.0, s->T, n, s->R, n, 0.0, s->prev, n);
    s->sigma = s->prev;
    s->prev = old;
    qt_mat_hermitise(n, s->sigma, s->sigma);
    for (size_t i = 0; i < n; i++)
        t += creal(s->sigma[i + n * i]);
    s->min_trace = fmin(s->min_trace, t);
    if (t <= s->o->eps_prob) {
        if (s->resets++ == 0)
            s->first_reset = it;
        set_mixed(n, s->sigma);
    } else {
        for (size_t k = 0; k < n * n; k++)
            s->sigma[k] /= t;
    }
    for (size_t k = 0; k < n * n; k++) {
        double complex e = s->sigma[k] - s->prev[k];

        dn += creal(e) * creal(e) + cimag(e) * cimag(e);
    }
    s->dn = sqrt(dn);
    s->dll = fabs(s->ll - s->ll_prev);
}

/* The loop of step 4 of origin-digest §2.4. Stops when dn < tol_state and dll < tol_ll;
 * *ret_it is the last iteration run. As in the origin, the reported likelihood is that of the
 * sigma before the last update: ll_prev ends equal to the last ll either way. */
static int iterate(struct rhor *s, bool *ret_conv, unsigned *ret_it)
{
    unsigned it;
    int r;

    *ret_conv = false;
    for (it = 1; it <= s->o->max_iterations; it++) {
        r = likelihood(s, it);
        if (r >= 0)
            r = build_r(s);
        if (r < 0)
            return r;
        update(s, it);
        *ret_it = it;
        s->ll_prev = s->ll;
        if (s->dn < s->o->tol_state && s->dll < s->o->tol_ll) {
            *ret_conv = true;
            break;
        }
    }
    return 0;
}

static void record(const struct rhor *s, bool conv, unsigned it, struct qt_result *res)
{
    const struct qt_whiten *wh = s->wh;
    struct qt_metrics *mt = &res->mt;

    QT_MT_SET(mt, ITERATIONS, iterations, (int64_t)(conv ? it : s->o->max_iterations));
    QT_MT_SET(mt, CONVERGED, converged, conv);
    QT_MT_SET(mt, SUPPORT_DIM, support_dim, (int64_t)wh->ds);
    QT_MT_SET(mt, RHOR_LOG_LIKELIHOOD, rhor_log_likelihood, s->ll_prev);
    QT_MT_SET(mt, EIG_MIN_H, eig_min_H, wh->eig_min_H);
    QT_MT_SET(mt, EIG_MAX_H, eig_max_H, wh->eig_max_H);
    QT_MT_SET(mt, ETILDE_SUM_MAX_DEV_ABS, etilde_sum_max_dev_abs, wh->sum_dev_abs);
    QT_MT_SET(mt, ETILDE_SUM_MAX_DEV_FRO, etilde_sum_max_dev_fro, wh->sum_dev_fro);
    QT_MT_SET(mt, ETILDE_SUM_VALID, etilde_sum_valid, wh->sum_valid);
    if (!isnan(wh->min_eig_sample))
        QT_MT_SET(mt, ETILDE_MIN_EIG_SAMPLE, etilde_min_eig_sample, wh->min_eig_sample);
    QT_MT_SET(mt, DECREASE_LL_COUNT, decrease_ll_count, s->decreases);
    QT_MT_SET(mt, RESET_COUNT, reset_count, s->resets);
    if (s->resets > 0)
        QT_MT_SET(mt, RESET_FIRST_ITER, reset_first_iter, s->first_reset);
    QT_MT_SET(mt, MIN_Q, min_q, s->min_q);
    QT_MT_SET(mt, MIN_TRACE, min_trace, s->min_trace);
    QT_MT_SET(mt, FINAL_DN, final_dn, s->dn);
    QT_MT_SET(mt, FINAL_DLL, final_dll, s->dll);
    QT_MT_SET(mt, MESSAGE, message,
              conv ? "converged" : "reached max_iterations without converging");
    if (!conv)
        res->warnings |= QT_WARN_NOT_CONVERGED;
}

static int check_opts(const struct qt_rhor_opts *o, struct qt_result *res)
{
    if (o->max_iterations == 0)
        return qt_result_fail(res, QT_EOPTION, "rhor: max_iterations must be positive");
    if (!(o->diluted_mu > 0.0 && o->diluted_mu <= 1.0))
        return qt_result_fail(res, QT_EOPTION, "rhor: diluted_mu must be in (0, 1], got %g",
                              o->diluted_mu);
    if (!(o->eps_prob > 0.0) || !(o->eig_rel_thresh >= 0.0) || !(o->eig_abs_thresh >= 0.0))
        return qt_result_fail(res, QT_EOPTION,
                              "rhor: eps_prob must be positive and the thresholds non-negative");
    return 0;
}

/* The design's default whitening when the options are the origin's defaults, else a private one
 * in *own (released by the caller with qt_whiten_done). */
static int pick_whitening(const struct qt_design *des, struct qt_ws *ws,
                          const struct qt_rhor_opts *o, struct qt_whiten *own,
                          const struct qt_whiten **ret_wh)
{
    int r;

    if (des->whiten && o->eig_rel_thresh == QT_WHITEN_EIG_REL && o->eig_abs_thresh == 0.0 &&
        o->eps_prob == QT_WHITEN_EPS) {
        *ret_wh = des->whiten;
        return 0;
    }
    r = qt_whiten_init(own, des, ws, o->eig_rel_thresh, o->eig_abs_thresh, o->eps_prob);
    if (r < 0)
        return r;
    *ret_wh = own;
    return 0;
}

/* Runs the iteration from I / n (or the whitened start) and maps the result back to rho. */
static int run(struct rhor *s, const double complex *start, double complex *rho,
               struct qt_result *res)
{
    bool conv;
    unsigned it = 0;
    int r;

    s->n = s->wh->ds;
    s->m = s->wh->m;
    s->ll_prev = -INFINITY;
    s->min_q = s->min_trace = INFINITY;
    r = rhor_alloc(s);
    if (r < 0)
        return r;
    if (start)
        r = qt_whiten_from_rho(s->wh, s->ws, start, s->sigma);
    else
        set_mixed(s->n, s->sigma);
    if (r >= 0)
        r = iterate(s, &conv, &it);
    if (r >= 0)
        r = qt_whiten_to_rho(s->wh, s->ws, s->sigma, s->o->eps_prob, rho);
    if (r >= 0)
        record(s, conv, it, res);
    return r;
}

int qt_est_rhor(const struct qt_design *des, struct qt_ws *ws, const double *y, const double *f,
                const double complex *start, const struct qt_opts *opts, double complex *rho,
                struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    struct qt_whiten own = {0};
    struct rhor s = {.des = des, .ws = ws, .o = &opts->rhor, .f = f};
    int r;

    (void)y;
    r = check_opts(&opts->rhor, res);
    if (r < 0)
        goto out;
    r = pick_whitening(des, ws, &opts->rhor, &own, &s.wh);
    if (r >= 0)
        r = run(&s, opts->rhor.warm_start ? start : NULL, rho, res);
    if (r < 0)
        r = qt_result_fail(res, r, "rhor failed: %s", qt_strerror(r));
out:
    qt_whiten_done(&own);
    qt_ws_release(ws, mark);
    return r;
}
