/* Metrics of a reconstructed state, computed from its spectrum where possible so that no
 * metric repeats an eigendecomposition. */
#include "qt_metrics.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "qt_heevb.h"
#include "qt_spectral.h"

int qt_metrics_model_probs(const struct qt_design *des, struct qt_ws *ws, const double complex *rho,
                           double *p)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t G = des->povm ? des->n_groups : 1;
    double *sum = qt_ws_alloc_n(ws, G, sizeof(double));
    int r;

    if (!sum)
        return -ENOMEM;
    r = qt_design_forward(des, ws, rho, p);
    if (r < 0)
        goto out;
    memset(sum, 0, G * sizeof(double));
    for (size_t a = 0; a < des->m; a++)
        sum[des->povm ? des->groups[a] : 0] += p[a];
    for (size_t a = 0; a < des->m; a++) {
        double s = sum[des->povm ? des->groups[a] : 0];

        p[a] = s > 0.0 ? p[a] / s : 0.0;
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

static void spectrum_metrics(const struct qt_spectrum *sp, const struct qt_opts *opts,
                             struct qt_result *res)
{
    struct qt_metrics *mt = &res->mt;
    size_t d = sp->d;
    double top = sp->lam[d - 1], tol, sum = 0.0, ent = 0.0;

    tol = fmax(opts->tolerance, 50.0 * (double)d * DBL_EPSILON * fmax(1.0, fabs(top)));
    for (size_t i = 0; i < d; i++) {
        double l = sp->lam[d - 1 - i];

        res->eigenvalues[i] = l < tol ? 0.0 : l;
        sum += res->eigenvalues[i];
    }
    /* The origin's eigenvalue_entropy: renormalise when the sum is off by more than 1e-6, keep
     * eigenvalues above 1e-15. */
    double scale = fabs(sum - 1.0) > 1e-6 && sum > 0.0 ? 1.0 / sum : 1.0;
    for (size_t i = 0; i < d; i++) {
        double l = res->eigenvalues[i] * scale;

        if (l > 1e-15)
            ent -= l * log(l);
    }
    mt->eigenvalues = res->eigenvalues;
    mt->eigenvalues_n = d;
    mt->have |= (uint64_t)1 << QT_MT_EIGENVALUES;
    QT_MT_SET(mt, MIN_EIGENVALUE, min_eigenvalue, res->eigenvalues[d - 1]);
    QT_MT_SET(mt, MAX_EIGENVALUE, max_eigenvalue, res->eigenvalues[0]);
    QT_MT_SET(mt, EIGENVALUE_ENTROPY, eigenvalue_entropy, ent);
    QT_MT_SET(mt, ENTROPY_BITS, entropy_bits, ent / M_LN2);
}

static void bell_metrics(size_t d, struct qt_result *res)
{
    struct qt_metrics *mt = &res->mt;
    size_t k = qt_isqrt_exact(d), best = 0;
    double mx = -INFINITY, mn = INFINITY, avg = 0.0;

    qt_rho_bell(d, res->rho, res->bell);
    for (size_t i = 0; i < d; i++) {
        if (res->bell[i] > mx) {
            mx = res->bell[i];
            best = i;
        }
        mn = fmin(mn, res->bell[i]);
        avg += res->bell[i];
    }
    QT_MT_SET(mt, BELL_MAX_FIDELITY, bell_max_fidelity, mx);
    QT_MT_SET(mt, BELL_MIN_FIDELITY, bell_min_fidelity, mn);
    QT_MT_SET(mt, BELL_AVG_FIDELITY, bell_avg_fidelity, avg / (double)d);
    QT_MT_SET(mt, BELL_DOMINANT_INDEX, bell_dominant_index, (int64_t)best);
    QT_MT_SET(mt, BELL_DIMENSION, bell_dimension, (int64_t)d);
    QT_MT_SET(mt, BELL_LOCAL_DIMENSION, bell_local_dimension, (int64_t)k);
    mt->bell_fidelities = res->bell;
    mt->bell_fidelities_n = d;
    mt->have |= (uint64_t)1 << QT_MT_BELL_FIDELITIES;
}

static int data_metrics(const struct qt_design *des, struct qt_ws *ws, const double *y,
                        struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t G = des->povm ? des->n_groups : 1;
    double *p = qt_ws_alloc_n(ws, des->m, sizeof(double));
    double *N = qt_ws_alloc_n(ws, G, sizeof(double));
    double chi2 = 0.0, ll = 0.0;
    int r;

    if (!p || !N) {
        r = -ENOMEM;
        goto out;
    }
    r = qt_metrics_model_probs(des, ws, res->rho, p);
    if (r < 0)
        goto out;
    memset(N, 0, G * sizeof(double));
    for (size_t a = 0; a < des->m; a++)
        N[des->povm ? des->groups[a] : 0] += y[a];
    for (size_t a = 0; a < des->m; a++) {
        double e = N[des->povm ? des->groups[a] : 0] * fmax(p[a], 1e-12);

        chi2 += (y[a] - e) * (y[a] - e) / e;
        if (y[a] > 0.0)
            ll += y[a] * log(fmax(p[a], 1e-300));
    }
    QT_MT_SET(&res->mt, CHI2, chi2, chi2);
    QT_MT_SET(&res->mt, LOG_LIKELIHOOD, log_likelihood, ll);
out:
    qt_ws_release(ws, mark);
    return r;
}

static int target_metrics(struct qt_ws *ws, const struct qt_spectrum *sp,
                          const struct qt_opts *opts, struct qt_result *res)
{
    double f, t;
    int r;

    r = qt_rho_fidelity(ws, sp, opts->target, &f);
    if (r < 0)
        return r;
    r = qt_rho_trace_distance(ws, sp->d, res->rho, opts->target, &t);
    if (r < 0)
        return r;
    QT_MT_SET(&res->mt, FIDELITY, fidelity, f);
    QT_MT_SET(&res->mt, TRACE_DISTANCE, trace_distance, t);
    return 0;
}

static bool want_concurrence(size_t d, const struct qt_opts *opts)
{
    return d == 4 && (opts->metrics & QT_MG_ENTANGLEMENT);
}

static bool want_pt(size_t d, const struct qt_opts *opts)
{
    return qt_isqrt_exact(d) >= 2 && (opts->metrics & QT_MG_ENTANGLEMENT);
}

size_t qt_metrics_batch_doubles(size_t d, size_t count)
{
    return (4 + d) * count;
}

int qt_metrics_batch_pre(struct qt_ws *ws, size_t d, size_t count, const struct qt_spectrum *sp,
                         const double complex *const *rho, const struct qt_opts *opts, double *eig,
                         struct qt_metrics_pre *pre)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    bool conc = want_concurrence(d, opts), pt = want_pt(d, opts);
    size_t nc = conc ? count : 0, np = pt ? count : 0, dd = d * d;
    double complex *C, *P, *V;
    double *mu = eig, *w = eig + 4 * count;
    int r = 0;

    for (size_t k = 0; k < count; k++)
        pre[k] = (struct qt_metrics_pre){NULL, NULL};
    if (d > QT_HEEVB_NMAX || count == 0 || (!conc && !pt))
        return 0; /* nothing to batch: qt_metrics_fill_pre computes them one by one */
    C = qt_ws_alloc_n(ws, 16 * nc + 1, sizeof(double complex));
    P = qt_ws_alloc_n(ws, dd * np + 1, sizeof(double complex));
    V = qt_ws_alloc_n(ws, QT_MAX(dd, 16) * count, sizeof(double complex));
    if (!C || !P || !V) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t k = 0; k < nc && r >= 0; k++)
        r = qt_rho_concurrence_matrix(ws, &sp[k], rho[k], C + 16 * k);
    for (size_t k = 0; k < np; k++)
        qt_rho_pt_matrix(d, rho[k], P + dd * k);
    if (r >= 0 && nc)
        r = qt_heev_batch(ws, 4, nc, C, V, mu);
    if ((r >= 0 || r == QT_ELAPACK) && np) {
        int r2 = qt_heev_batch(ws, d, np, P, V, w);

        r = r < 0 ? r : r2;
    }
    if (r < 0 && r != QT_ELAPACK)
        goto out;
    r = 0;
    /* A matrix the batch could not decompose has NaN eigenvalues: computed alone later. */
    for (size_t k = 0; k < count; k++) {
        if (conc && !isnan(mu[4 * k]))
            pre[k].conc_mu = mu + 4 * k;
        if (pt && !isnan(w[d * k]))
            pre[k].pt_w = w + d * k;
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

int qt_metrics_fill(const struct qt_design *des, struct qt_ws *ws, const double *y,
                    const struct qt_sample_info *info, const struct qt_spectrum *sp,
                    const struct qt_opts *opts, struct qt_result *res)
{
    return qt_metrics_fill_pre(des, ws, y, info, sp, opts, NULL, res);
}

int qt_metrics_fill_pre(const struct qt_design *des, struct qt_ws *ws, const double *y,
                        const struct qt_sample_info *info, const struct qt_spectrum *sp,
                        const struct qt_opts *opts, const struct qt_metrics_pre *pre,
                        struct qt_result *res)
{
    struct qt_metrics *mt = &res->mt;
    size_t d = sp->d;
    double pur = 0.0, tr = 0.0;
    int r;

    for (size_t i = 0; i < d * d; i++)
        pur += creal(res->rho[i] * conj(res->rho[i]));
    for (size_t i = 0; i < d; i++)
        tr += creal(res->rho[i + d * i]);
    QT_MT_SET(mt, PURITY, purity, pur);
    QT_MT_SET(mt, TRACE, trace, tr);
    QT_MT_SET(mt, LINEAR_ENTROPY, linear_entropy, 1.0 - pur);
    spectrum_metrics(sp, opts, res);
    if (opts->target) {
        r = target_metrics(ws, sp, opts, res);
        if (r < 0)
            return r;
    }
    if (want_concurrence(d, opts)) {
        double c;

        if (pre && pre->conc_mu) {
            c = qt_rho_concurrence_from(pre->conc_mu);
        } else {
            r = qt_rho_concurrence(ws, sp, res->rho, &c);
            if (r < 0)
                return r;
        }
        QT_MT_SET(mt, CONCURRENCE, concurrence, c);
    }
    if (want_pt(d, opts)) {
        double n1;

        if (pre && pre->pt_w) {
            n1 = qt_rho_trace_norm_from(d, pre->pt_w);
        } else {
            r = qt_rho_pt_norm(ws, d, res->rho, &n1);
            if (r < 0)
                return r;
        }
        QT_MT_SET(mt, NEGATIVITY, negativity, fmax(0.0, (n1 - 1.0) / 2.0));
        QT_MT_SET(mt, LOG_NEGATIVITY, log_negativity, log2(fmax(n1, 1.0)));
    }
    if (qt_isqrt_exact(d) >= 2 && opts->bell)
        bell_metrics(d, res);
    if (y && info && !info->negative && (opts->metrics & QT_MG_DATA)) {
        r = data_metrics(des, ws, y, res);
        if (r < 0)
            return r;
    }
    if (opts->spectral) {
        /* From rho itself, not sp: the record must not depend on which eigensolver (batched
         * or not) produced the spectrum, so daemon and --local agree bit for bit. */
        r = qt_spectral_decompose(ws, d, res->rho, &res->spectral_dominant, res->spectral,
                                  res->spectral + d, res->spectral + 2 * d);
        if (r < 0)
            return r;
        res->has_spectral = true;
    }
    return 0;
}
