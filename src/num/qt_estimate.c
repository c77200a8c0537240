/* The estimators' entry points and the linear estimator (single and batched). The record types
 * and their tables are in qt_result.c. */
#include "qt_estimate.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "qt_est.h"
#include "qt_est_mlebg.h"
#include "qt_heevb.h"
#include "qt_mat.h"
#include "qt_metrics.h"
#include "qt_rho.h"
#include "qt_sample.h"

/* Scratch for one linear estimate. */
struct lin_scratch {
    double *f;
    double complex *V;
    double *lam;
};

static int lin_scratch(struct qt_ws *ws, const struct qt_design *des, struct lin_scratch *s)
{
    s->f = qt_ws_alloc_n(ws, des->m, sizeof(double));
    s->V = qt_ws_alloc_n(ws, des->d * des->d, sizeof(double complex));
    s->lam = qt_ws_alloc_n(ws, des->d, sizeof(double));
    return s->f && s->V && s->lam ? 0 : -ENOMEM;
}

/* For complete MUBs the orthogonal complement of the map's range is spanned by differences of
 * group indicators (every group sums to Tr rho), so the least-squares residual is
 * sum_g (S_g - mean S)^2 / d with S_g the group sums of f: O(m) instead of a forward map, and
 * written as deviations so that consistent data gives ~1e-32, not cancellation noise. */
static int frame_residual(const struct qt_design *des, struct qt_ws *ws, const double *f,
                          double *ret)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *S = qt_ws_alloc_n(ws, des->n_groups, sizeof(double)), mean = 0.0, acc = 0.0;

    if (!S)
        return -ENOMEM;
    memset(S, 0, des->n_groups * sizeof(double));
    for (size_t a = 0; a < des->m; a++)
        S[des->groups[a]] += f[a];
    for (size_t g = 0; g < des->n_groups; g++)
        mean += S[g] / (double)des->n_groups;
    for (size_t g = 0; g < des->n_groups; g++)
        acc += (S[g] - mean) * (S[g] - mean);
    *ret = acc / (double)des->d;
    qt_ws_release(ws, mark);
    return 0;
}

/* Origin's lstsq residual: ||A rho_raw - f||^2, reported only when the system is
 * overdetermined and of full column rank (otherwise numpy returns no residual: 0.0). */
static int residual(const struct qt_design *des, struct qt_ws *ws, const double complex *raw,
                    const double *f, double *ret)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *q, s = 0.0;
    int r;

    *ret = 0.0;
    if (!(des->m > des->d * des->d && des->rank == des->d * des->d))
        return 0;
    if (des->pinv_kind == QT_PINV_FRAME)
        return frame_residual(des, ws, f, ret);
    q = qt_ws_alloc_n(ws, des->m, sizeof(double));
    if (!q)
        return -ENOMEM;
    r = qt_design_forward(des, ws, raw, q);
    if (r >= 0) {
        for (size_t a = 0; a < des->m; a++)
            s += (q[a] - f[a]) * (q[a] - f[a]);
        *ret = s;
    }
    qt_ws_release(ws, mark);
    return r;
}

/* Physicalise a raw linear estimate into res->rho, its spectrum into s->V and s->lam. With
 * have_spectrum, they already hold the spectrum of raw's Hermitian part (computed for a whole
 * batch). */
static int linear_phys(const struct qt_design *des, struct qt_ws *ws, const double *f,
                       const double complex *raw, struct lin_scratch *s, bool have_spectrum,
                       const struct qt_opts *opts, struct qt_result *res, struct qt_phys_info *pi,
                       double *resid)
{
    struct qt_spectrum sp = {des->d, s->V, s->lam};
    int r;

    *resid = 0.0;
    r = opts->metrics & QT_MG_DATA ? residual(des, ws, raw, f, resid) : 0;
    if (r >= 0 && !have_spectrum)
        r = qt_rho_spectrum(ws, des->d, raw, &sp);
    if (r >= 0)
        r = qt_rho_physicalise_spectrum(ws, opts->physical, opts->tolerance, &sp, res->rho, pi);
    return r;
}

/* The metrics and warnings of a physicalised linear estimate (r: linear_phys's return). */
static int linear_done(const struct qt_design *des, struct qt_ws *ws, const double *y,
                       const struct qt_sample_info *info, struct lin_scratch *s,
                       const struct qt_opts *opts, const struct qt_metrics_pre *pre,
                       const struct qt_phys_info *pi, double resid, int r, struct qt_result *res)
{
    struct qt_spectrum sp = {des->d, s->V, s->lam};

    if (r >= 0)
        r = qt_metrics_fill_pre(des, ws, y, info, &sp, opts, pre, res);
    if (r < 0)
        return qt_result_fail(res, r, "linear inversion failed: %s", qt_strerror(r));
    if (info->negative)
        res->warnings |= QT_WARN_NEGATIVE_INPUT;
    if (pi->significant)
        res->warnings |= QT_WARN_CLIPPED;
    if (opts->metrics & QT_MG_DATA)
        QT_MT_SET(&res->mt, RESIDUAL_NORM, residual_norm, resid);
    QT_MT_SET(&res->mt, RANK, rank, (int64_t)des->rank);
    QT_MT_SET(&res->mt, CONDITION_NUMBER, condition_number, des->cond);
    return 0;
}

/* Physicalise a raw linear estimate and fill the result. */
static int linear_finish(const struct qt_design *des, struct qt_ws *ws, const double *y,
                         const double *f, const struct qt_sample_info *info,
                         const double complex *raw, struct lin_scratch *s,
                         const struct qt_opts *opts, struct qt_result *res)
{
    struct qt_phys_info pi = {0};
    double resid;
    int r = linear_phys(des, ws, f, raw, s, false, opts, res, &pi, &resid);

    return linear_done(des, ws, y, info, s, opts, NULL, &pi, resid, r, res);
}

static int sample_check(const struct qt_design *des, const double *y, size_t n,
                        const struct qt_opts *opts, double *f, struct qt_sample_info *info,
                        struct qt_result *res)
{
    struct qt_diag dg = {0};
    int r = qt_sample_normalise(des, y, n, opts->tolerance, f, info, &dg);

    if (r < 0)
        return qt_result_fail(res, r, "%s", dg.msg[0] ? dg.msg : qt_strerror(r));
    return 0;
}

static int estimate_linear(const struct qt_design *des, struct qt_ws *ws, const double *y, size_t n,
                           const struct qt_opts *opts, struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    struct lin_scratch s;
    struct qt_sample_info info;
    double complex *raw = qt_ws_alloc_n(ws, des->d * des->d, sizeof(double complex));
    int r;

    r = lin_scratch(ws, des, &s);
    if (r < 0 || !raw) {
        r = qt_result_fail(res, -ENOMEM, "out of memory");
        goto out;
    }
    r = sample_check(des, y, n, opts, s.f, &info, res);
    if (r < 0)
        goto out;
    r = qt_design_pinv_apply(des, ws, s.f, raw);
    if (r < 0) {
        r = qt_result_fail(res, r, "linear inversion failed: %s", qt_strerror(r));
        goto out;
    }
    r = linear_finish(des, ws, y, s.f, &info, raw, &s, opts, res);
out:
    qt_ws_release(ws, mark);
    return r;
}

/* The physical linear estimate of f (the warm start of the iterative methods). */
static int linear_start(const struct qt_design *des, struct qt_ws *ws, const double *f,
                        const struct qt_opts *opts, double complex *rho)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d;
    double complex *raw = qt_ws_alloc_n(ws, d * d, sizeof(*raw));
    double complex *V = qt_ws_alloc_n(ws, d * d, sizeof(*V));
    double *w = qt_ws_alloc_n(ws, d, sizeof(double));
    struct qt_spectrum sp = {d, V, w};
    struct qt_phys_info pi;
    int r = -ENOMEM;

    if (raw && V && w) {
        r = qt_design_pinv_apply(des, ws, f, raw);
        if (r >= 0)
            r = qt_rho_physicalise(ws, d, raw, opts->physical, opts->tolerance, rho, &sp, &pi);
    }
    qt_ws_release(ws, mark);
    return r;
}

/* Likelihood-based methods need non-negative data. */
static int check_nonnegative(const double *y, size_t m, enum qt_method method,
                             struct qt_result *res)
{
    for (size_t a = 0; a < m; a++)
        if (y[a] < 0.0)
            return qt_result_fail(res, QT_ENEGATIVE,
                                  "value in row %zu is negative (%g); %s needs non-negative "
                                  "counts or powers",
                                  a + 1, y[a], qt_method_name(method));
    return 0;
}

typedef int (*est_fn)(const struct qt_design *, struct qt_ws *, const double *, const double *,
                      const double complex *, const struct qt_opts *, double complex *,
                      struct qt_result *);

/* Final physicalisation and metrics of an iterative estimate. The origin passes the WLS and
 * RrhoR results through within_tol; the ML estimate is a density matrix by construction. */
static int iterative_finish(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                            const double *y, const struct qt_sample_info *info,
                            const double complex *est, const struct qt_opts *opts,
                            struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d;
    double complex *V = qt_ws_alloc_n(ws, d * d, sizeof(*V));
    double *w = qt_ws_alloc_n(ws, d, sizeof(double));
    struct qt_spectrum sp = {d, V, w};
    struct qt_phys_info pi;
    int r = -ENOMEM;

    if (V && w) {
        if (method == QT_METHOD_MLE) {
            qt_mat_hermitise(d, est, res->rho);
            r = qt_rho_spectrum(ws, d, res->rho, &sp);
        } else {
            r = qt_rho_physicalise(ws, d, est, QT_PHYS_CLIP, opts->tolerance, res->rho, &sp, &pi);
            if (r >= 0 && pi.significant)
                res->warnings |= QT_WARN_CLIPPED;
        }
    }
    if (r >= 0)
        r = qt_metrics_fill(des, ws, y, info, &sp, opts, res);
    qt_ws_release(ws, mark);
    if (r < 0)
        return qt_result_fail(res, r, "%s failed: %s", qt_method_name(method), qt_strerror(r));
    return 0;
}

static int estimate_iterative(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                              const double *y, size_t n, const struct qt_opts *opts,
                              const double complex *start, struct qt_result *res)
{
    static const est_fn fns[_QT_METHOD_MAX] = {NULL, qt_est_mle, qt_est_wls, qt_est_rhor};
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d;
    double *f = qt_ws_alloc_n(ws, des->m, sizeof(double));
    double complex *st = qt_ws_alloc_n(ws, d * d, sizeof(*st));
    double complex *est = qt_ws_alloc_n(ws, d * d, sizeof(*est));
    struct qt_sample_info info;
    bool need_start = method != QT_METHOD_RHOR || opts->rhor.warm_start;
    int r;

    if (!f || !st || !est) {
        r = qt_result_fail(res, -ENOMEM, "out of memory");
        goto out;
    }
    r = sample_check(des, y, n, opts, f, &info, res);
    if (r >= 0 && method != QT_METHOD_WLS && info.negative)
        r = check_nonnegative(y, des->m, method, res);
    if (r < 0)
        goto out;
    if (need_start && !start) {
        r = linear_start(des, ws, f, opts, st);
        if (r < 0) {
            r = qt_result_fail(res, r, "linear start failed: %s", qt_strerror(r));
            goto out;
        }
        start = st;
    }
    r = fns[method](des, ws, y, f, need_start ? start : NULL, opts, est, res);
    if (r >= 0)
        r = iterative_finish(des, ws, method, y, &info, est, opts, res);
    if (r >= 0 && info.negative)
        res->warnings |= QT_WARN_NEGATIVE_INPUT;
out:
    qt_ws_release(ws, mark);
    return r;
}

/* ---- designs with known backgrounds (des->background) ---- */

/* The elements as the d^2 x m matrix qt_mlebg takes (the design's own when it stores them). */
static const double complex *bg_elements(const struct qt_design *des, struct qt_ws *ws)
{
    size_t d = des->d, dd = d * d;
    double complex *F;

    if (des->elems)
        return des->elems;
    F = qt_ws_alloc_n(ws, dd * des->m, sizeof(*F));
    if (!F || !des->kets)
        return NULL;
    for (size_t a = 0; a < des->m; a++) {
        const double complex *k = des->kets + d * a;

        for (size_t j = 0; j < d; j++)
            for (size_t i = 0; i < d; i++)
                F[dd * a + i + d * j] = k[i] * conj(k[j]);
    }
    return F;
}

/* The data metrics of the Poisson model mu_a = I Tr(E_a rho) + beta_a, replacing the
 * multinomial ones qt_metrics_fill computed: chi2 = sum (y - mu)^2 / mu and the log-likelihood
 * sum [y ln mu - mu] that the certificate bounds. */
static int bg_data_metrics(const struct qt_design *des, struct qt_ws *ws, const double *y,
                           double intensity, double loglik, struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *q = qt_ws_alloc_n(ws, des->m, sizeof(double)), chi2 = 0.0;
    int r = q ? qt_design_forward(des, ws, res->rho, q) : -ENOMEM;

    for (size_t a = 0; r >= 0 && a < des->m; a++) {
        double mu = fmax(intensity * q[a] + des->background[a], 1e-300);

        chi2 += (y[a] - mu) * (y[a] - mu) / mu;
    }
    if (r >= 0) {
        QT_MT_SET(&res->mt, CHI2, chi2, chi2);
        QT_MT_SET(&res->mt, LOG_LIKELIHOOD, log_likelihood, loglik);
    }
    qt_ws_release(ws, mark);
    return r;
}

/* Maximum likelihood with the backgrounds (num/qt_est_mlebg.h): its certificate in
 * log-likelihood units, reported like qt_est_mle's. */
static int estimate_mlebg(const struct qt_design *des, struct qt_ws *ws, const double *y,
                          size_t n, const struct qt_opts *opts, struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d;
    double *f = qt_ws_alloc_n(ws, des->m, sizeof(double));
    double complex *est = qt_ws_alloc_n(ws, d * d, sizeof(*est));
    const double complex *F = bg_elements(des, ws);
    struct qt_mlebg_opts o = {opts->mle.gap_tol, opts->mle.max_iterations,
                              des->mix_base ? des : NULL};
    struct qt_sample_info info;
    double inten = 0.0, gap = INFINITY, ll = 0.0, tot = 0.0;
    unsigned iters = 0;
    int r;

    if (!f || !est || !F) {
        r = qt_result_fail(res, -ENOMEM, "out of memory");
        goto out;
    }
    r = sample_check(des, y, n, opts, f, &info, res);
    if (r >= 0 && info.negative)
        r = check_nonnegative(y, des->m, QT_METHOD_MLE, res);
    if (r < 0)
        goto out;
    r = qt_mlebg(d, des->m, F, des->background, y, &o, ws, est, &inten, &gap, &ll, &iters);
    if (r == QT_EZEROGROUP) {
        r = qt_result_fail(res, r, "the data are impossible under the detector model: an outcome "
                                   "with counts has a zero effective element and no background");
        goto out;
    }
    if (r < 0 && r != QT_ENOCONV) {
        r = qt_result_fail(res, r, "maximum likelihood with background failed: %s",
                           qt_strerror(r));
        goto out;
    }
    bool conv = r == 0;
    r = iterative_finish(des, ws, QT_METHOD_MLE, y, &info, est, opts, res);
    if (r >= 0 && (opts->metrics & QT_MG_DATA))
        r = bg_data_metrics(des, ws, y, inten, ll, res);
    if (r < 0) {
        r = qt_result_fail(res, r, "mle failed: %s", qt_strerror(r));
        goto out;
    }
    for (size_t a = 0; a < des->m; a++)
        tot += y[a];
    QT_MT_SET(&res->mt, GAP, gap, gap);
    QT_MT_SET(&res->mt, GAP_PER_COUNT, gap_per_count, tot > 0.0 ? gap / tot : 0.0);
    QT_MT_SET(&res->mt, ITERATIONS, iterations, (int64_t)iters);
    QT_MT_SET(&res->mt, CONVERGED, converged, conv);
    QT_MT_SET(&res->mt, MESSAGE, message,
              conv ? "converged: gap per count <= gap_tol (Poisson model with background)"
                   : "stopped: gap per count is above gap_tol (Poisson model with background)");
    if (!conv)
        res->warnings |= QT_WARN_NOT_CONVERGED;
out:
    qt_ws_release(ws, mark);
    return r;
}

/* y - beta into out (the linear estimator's background correction; negative corrected values
 * give the negative_input warning). */
static void bg_subtract(const struct qt_design *des, const double *y, size_t n, double *out)
{
    for (size_t a = 0; a < n; a++)
        out[a] = a < des->m ? y[a] - des->background[a] : y[a];
}

static int estimate_with_background(const struct qt_design *des, struct qt_ws *ws,
                                    enum qt_method method, const double *y, size_t n,
                                    const struct qt_opts *opts, struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *yc;
    int r;

    switch (method) {
    case QT_METHOD_LINEAR:
        yc = qt_ws_alloc_n(ws, n ? n : 1, sizeof(double));
        if (!yc)
            return qt_result_fail(res, -ENOMEM, "out of memory");
        bg_subtract(des, y, n, yc);
        r = estimate_linear(des, ws, yc, n, opts, res);
        qt_ws_release(ws, mark);
        return r;
    case QT_METHOD_MLE:
        return estimate_mlebg(des, ws, y, n, opts, res);
    default:
        return qt_result_fail(res, QT_EMETHOD,
                              "%s cannot take the design's background counts (it fits the "
                              "multinomial without them); use mle or linear",
                              qt_method_name(method));
    }
}

int qt_estimate_from(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                     const double *y, size_t n, const struct qt_opts *opts,
                     const double complex *start, struct qt_result *res)
{
    qt_result_reset(res, method);
    if (res->cap < des->d)
        return qt_result_fail(res, -EINVAL, "result storage is too small for d = %zu", des->d);
    res->d = des->d;
    if (des->background && method < _QT_METHOD_MAX)
        return estimate_with_background(des, ws, method, y, n, opts, res);
    switch (method) {
    case QT_METHOD_LINEAR:
        return estimate_linear(des, ws, y, n, opts, res);
    case QT_METHOD_MLE:
    case QT_METHOD_WLS:
    case QT_METHOD_RHOR:
        return estimate_iterative(des, ws, method, y, n, opts, start, res);
    default:
        return qt_result_fail(res, QT_EMETHOD, "unknown method %d", (int)method);
    }
}

int qt_estimate(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                const double *y, size_t n, const struct qt_opts *opts, struct qt_result *res)
{
    return qt_estimate_from(des, ws, method, y, n, opts, NULL, res);
}

/* Spectra of the Hermitian parts of nv raw estimates at once (SIMD across samples); raw is
 * Hermitised in place. A sample whose batched decomposition failed gets NaN eigenvalues and is
 * recomputed alone by linear_phys. */
static int batch_spectra(struct qt_ws *ws, size_t d, size_t nv, double complex *raw,
                         double complex *V, double *w, bool *ok)
{
    int r;

    for (size_t k = 0; k < nv; k++)
        qt_mat_hermitise(d, raw + d * d * k, raw + d * d * k);
    r = qt_heev_batch(ws, d, nv, raw, V, w);
    if (r < 0 && r != QT_ELAPACK)
        return r;
    for (size_t k = 0; k < nv; k++)
        ok[k] = !isnan(w[d * k]);
    return 0;
}

/* States whose metrics' eigenvalue problems are solved together: the batched solver's width. */
#define LINEAR_GROUP 16

int qt_estimate_linear_batch(const struct qt_design *des, struct qt_ws *ws, size_t n,
                             const double *Y, size_t ldy, const struct qt_opts *opts,
                             struct qt_result *res)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t m = des->m, d = des->d, dd = d * d, nv = 0, n1 = n ? n : 1;
    double *F = qt_ws_alloc_n(ws, m * n1, sizeof(double));
    double complex *raw = qt_ws_alloc_n(ws, dd * n1, sizeof(double complex));
    double complex *V = qt_ws_alloc_n(ws, dd * n1, sizeof(double complex));
    double *w = qt_ws_alloc_n(ws, d * n1, sizeof(double));
    bool *ok = qt_ws_alloc_n(ws, n1, sizeof(bool));
    size_t *col = qt_ws_alloc_n(ws, n1, sizeof(size_t));
    struct qt_sample_info *info = qt_ws_alloc_n(ws, n1, sizeof(*info));
    double *eig = qt_ws_alloc_n(ws, qt_metrics_batch_doubles(d, LINEAR_GROUP), sizeof(double));
    int r = 0;

    if (!F || !raw || !V || !w || !ok || !col || !info || !eig) {
        r = -ENOMEM;
        goto out;
    }
    if (des->background) { /* the corrected values are the samples from here on */
        double *Yc = qt_ws_alloc_n(ws, m * n1, sizeof(double));

        if (!Yc) {
            r = -ENOMEM;
            goto out;
        }
        for (size_t i = 0; i < n; i++)
            bg_subtract(des, Y + ldy * i, m, Yc + m * i);
        Y = Yc;
        ldy = m;
    }
    /* Validate and normalise every sample; the valid ones are packed into F. */
    for (size_t i = 0; i < n; i++) {
        qt_result_reset(&res[i], QT_METHOD_LINEAR);
        res[i].d = d;
        if (res[i].cap < d) {
            (void)qt_result_fail(&res[i], -EINVAL, "result storage too small");
            continue;
        }
        if (sample_check(des, Y + ldy * i, m, opts, F + m * nv, &info[nv], &res[i]) == 0)
            col[nv++] = i;
    }
    r = qt_design_pinv_apply_batch(des, ws, nv, F, m, raw);
    if (r >= 0)
        r = batch_spectra(ws, d, nv, raw, V, w, ok);
    if (r < 0)
        goto out;
    /* Physicalise, then the metrics' own eigenvalue problems, batched in groups of
     * LINEAR_GROUP (bounded scratch), then the metrics. */
    for (size_t g0 = 0; g0 < nv; g0 += LINEAR_GROUP) {
        size_t gn = QT_MIN(LINEAR_GROUP, nv - g0);
        struct qt_phys_info pi[LINEAR_GROUP];
        struct qt_spectrum sp[LINEAR_GROUP];
        const double complex *rho[LINEAR_GROUP];
        struct qt_metrics_pre pre[LINEAR_GROUP], none = {NULL, NULL};
        double resid[LINEAR_GROUP];
        int rk[LINEAR_GROUP];
        size_t np = 0, at[LINEAR_GROUP]; /* the states physicalised, and their batch slots */

        for (size_t j = 0; j < gn; j++) {
            size_t k = g0 + j;
            struct lin_scratch s = {F + m * k, V + dd * k, w + d * k};

            pi[j] = (struct qt_phys_info){0};
            rk[j] = linear_phys(des, ws, F + m * k, raw + dd * k, &s, ok[k], opts, &res[col[k]],
                                &pi[j], &resid[j]);
            if (rk[j] >= 0) {
                sp[np] = (struct qt_spectrum){d, s.V, s.lam};
                rho[np] = res[col[k]].rho;
                at[j] = np++;
            }
        }
        if (qt_metrics_batch_pre(ws, d, np, sp, rho, opts, eig, pre) < 0)
            np = 0; /* out of scratch: each is computed alone */
        for (size_t j = 0; j < gn; j++) {
            size_t k = g0 + j;
            struct lin_scratch s = {F + m * k, V + dd * k, w + d * k};
            const struct qt_metrics_pre *p = rk[j] >= 0 && at[j] < np ? &pre[at[j]] : &none;

            (void)linear_done(des, ws, Y + ldy * col[k], &info[k], &s, opts, p, &pi[j], resid[j],
                              rk[j], &res[col[k]]);
        }
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

uint64_t qt_estimate_ws_bound(size_t d, size_t m, const bool methods[_QT_METHOD_MAX])
{
    static const double coef[_QT_METHOD_MAX][2] = {
        [QT_METHOD_LINEAR] = {8, 20},
        [QT_METHOD_MLE] = {20, 50},
        [QT_METHOD_WLS] = {20, 50},
        [QT_METHOD_RHOR] = {10, 40},
    };
    double worst = 0.0;

    for (int k = 0; k < _QT_METHOD_MAX; k++)
        if (methods[k])
            worst = fmax(worst, coef[k][0] * 8.0 * (double)m +
                                    coef[k][1] * 16.0 * (double)d * (double)d);
    worst += (double)(1u << 20);
    return worst >= 0x1p64 ? UINT64_MAX : (uint64_t)worst;
}
