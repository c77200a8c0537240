/* Trace-distance confidence bound of the linear estimate (qt_tdbound.h): the derivation is in
 * the header; this file forms the dual frame group by group, bounds each group's variance and
 * spread, and projects L onto the density matrices. */
#include "qt_tdbound.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_resample.h"
#include "qt_rho.h"
#include "qt_sample.h"

/* Pairwise Frank-Wolfe steps for a group's variance bound, and how often the certificate is
 * recomputed from scratch. The bound is certified whenever it stops; the cap only limits how
 * close to the true maximum it gets. */
#define FW_MAX_ITER 100000
#define FW_CHECK    64
#define FW_REL_GAP  1e-10

/* Absolute slack added to tau: the computed rho_PLS (whose rank is counted) is within ~d eps |L|
 * of a density matrix of that rank, and the argument is applied to that matrix. */
#define TAU_SLACK 1e-12

/* The bound assumes multinomial counts with E f_a = Tr(E_a rho) per group: a design with known
 * backgrounds (Poisson counts of I q + beta, estimated from y - beta) is outside it. */
static int check_design(const struct qt_design *des)
{
    if (des->background || !des->povm || des->pinv_kind == QT_PINV_NOPOVM || des->d < 2 || des->d > QT_TDB_MAX_DIM ||
        des->rank != des->d * des->d || !des->group_scale)
        return -ENOTSUP;
    for (size_t g = 0; g < des->n_groups; g++)
        if (!(fabs(des->group_scale[g] - 1.0) <= 1e-9))
            return -ENOTSUP;
    return 0;
}

/* Outcomes sorted by group (order kept within a group): group g is idx[start[g]..start[g+1]). */
static void group_index(const struct qt_design *des, size_t *idx, size_t *start)
{
    size_t G = des->n_groups;

    memset(start, 0, (G + 1) * sizeof(size_t));
    for (size_t a = 0; a < des->m; a++)
        start[des->groups[a] + 1]++;
    for (size_t g = 0; g < G; g++)
        start[g + 1] += start[g];
    for (size_t a = 0; a < des->m; a++)
        idx[start[des->groups[a]]++] = a;
    for (size_t g = G; g > 0; g--)
        start[g] = start[g - 1];
    start[0] = 0;
}

/* f(p) = sum_a p_a G_aa - p^T G p and its gradient diag(G) - 2 G p. */
static double var_eval(size_t k, const double *G, const double *p, double *grad)
{
    double f = 0.0;

    for (size_t a = 0; a < k; a++) {
        double gp = 0.0;

        for (size_t b = 0; b < k; b++)
            gp += G[a + k * b] * p[b];
        grad[a] = G[a + k * a] - 2.0 * gp;
        f += p[a] * (G[a + k * a] - gp);
    }
    return f;
}

/* The Frank-Wolfe duality gap max_a grad_a - grad . p: for concave f and any p on the simplex,
 * max f <= f(p) + gap. Sets *best and *worst to the vertex of largest gradient and the vertex
 * of smallest gradient among those p uses. */
static double fw_gap(size_t k, const double *p, const double *grad, size_t *best, size_t *worst)
{
    double gp = 0.0, hi = -INFINITY, lo = INFINITY;

    for (size_t a = 0; a < k; a++) {
        gp += grad[a] * p[a];
        if (grad[a] > hi) {
            hi = grad[a];
            *best = a;
        }
        if (p[a] > 0.0 && grad[a] < lo) {
            lo = grad[a];
            *worst = a;
        }
    }
    return fmax(hi - gp, 0.0);
}

/* Upper bound on max_p f(p) over the probability simplex (G symmetric PSD, so f is concave):
 * pairwise Frank-Wolfe (mass moves from the worst used vertex to the best one, exact line
 * search) from the uniform p, which converges fast also when the maximum is on a face. The
 * smallest certificate f(p) + gap seen on a freshly computed gradient is returned, with slack
 * for rounding. */
static double var_bound(size_t k, const double *G, double *p, double *grad)
{
    double best = INFINITY, scale = 0.0, f = 0.0;
    size_t i = 0, j = 0;

    for (size_t a = 0; a < k; a++) {
        p[a] = 1.0 / (double)k;
        scale = fmax(scale, fabs(G[a + k * a]));
    }
    for (int it = 0; it < FW_MAX_ITER; it++) {
        double gap;

        if (it % FW_CHECK == 0) {
            f = var_eval(k, G, p, grad);
            gap = fw_gap(k, p, grad, &i, &j);
            best = fmin(best, f + gap);
            if (gap <= FW_REL_GAP * fmax(f, DBL_MIN))
                break;
        } else {
            (void)fw_gap(k, p, grad, &i, &j);
        }
        /* Along s = e_i - e_j: f(p + t s) = f + t (grad_i - grad_j) - t^2 s^T G s. */
        double slope = grad[i] - grad[j], sGs = G[i + k * i] + G[j + k * j] - 2.0 * G[i + k * j];
        double t = sGs > 0.0 ? fmin(p[j], slope / (2.0 * sGs)) : p[j];
        if (i == j || !(slope > 0.0) || !(t > 0.0))
            t = 0.0;
        p[i] += t;
        p[j] = t == p[j] ? 0.0 : p[j] - t;
        for (size_t a = 0; a < k; a++)
            grad[a] -= 2.0 * t * (G[a + k * i] - G[a + k * j]);
    }
    f = var_eval(k, G, p, grad);
    best = fmin(best, f + fw_gap(k, p, grad, &i, &j));
    return fmax(best, 0.0) + 64.0 * DBL_EPSILON * (double)k * scale;
}

/* Real Gram matrix G_ab = Re Tr(X_a^H X_b) of k d x d matrices stored one after another. */
static void gram(size_t dd, size_t k, const double complex *X, double *G)
{
    for (size_t b = 0; b < k; b++)
        for (size_t a = 0; a <= b; a++) {
            double s = 0.0;

            for (size_t t = 0; t < dd; t++)
                s += creal(conj(X[dd * a + t]) * X[dd * b + t]);
            G[a + k * b] = G[b + k * a] = s;
        }
}

/* For the k outcomes idx[0..k) of one group: s2 (the variance bound s_g^2) and D2 (the
 * largest squared distance between two of its dual operators). */
static int group_constants(const struct qt_design *des, struct qt_ws *ws, const size_t *idx,
                           size_t k, double *s2, double *D2)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t m = des->m, dd = des->d * des->d;
    double *F = qt_ws_alloc_n(ws, m * k, sizeof(double));
    double complex *X = qt_ws_alloc_n(ws, dd * k, sizeof(double complex));
    double *G = qt_ws_alloc_n(ws, k * k, sizeof(double));
    double *p = qt_ws_alloc_n(ws, k, sizeof(double)), *grad = qt_ws_alloc_n(ws, k, sizeof(double));
    int r = -ENOMEM;

    if (!F || !X || !G || !p || !grad)
        goto out;
    memset(F, 0, m * k * sizeof(double));
    for (size_t j = 0; j < k; j++)
        F[idx[j] + m * j] = 1.0;
    r = qt_design_pinv_apply_batch(des, ws, k, F, m, X); /* X_a = A^+ e_a */
    if (r < 0)
        goto out;
    gram(dd, k, X, G);
    *D2 = 0.0;
    for (size_t b = 0; b < k; b++)
        for (size_t a = 0; a < b; a++)
            *D2 = fmax(*D2, G[a + k * a] + G[b + k * b] - 2.0 * G[a + k * b]);
    *D2 *= 1.0 + 64.0 * DBL_EPSILON; /* rounding of the Gram entries */
    *s2 = var_bound(k, G, p, grad);
out:
    qt_ws_release(ws, mark);
    return r;
}

/* tau of the header's step (1): sum over groups of s_g^2 / n_g and D_g^2 / n_g. */
static int frobenius_radius(const struct qt_design *des, struct qt_ws *ws, const double *y,
                            double delta, double *tau)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t G = des->n_groups;
    size_t *idx = qt_ws_alloc_n(ws, des->m, sizeof(size_t));
    size_t *start = qt_ws_alloc_n(ws, G + 1, sizeof(size_t));
    double V = 0.0, C = 0.0;
    int r = -ENOMEM;

    if (!idx || !start)
        goto out;
    group_index(des, idx, start);
    for (size_t g = 0; g < G; g++) {
        size_t k = start[g + 1] - start[g];
        double n = 0.0, s2, D2;

        for (size_t j = start[g]; j < start[g + 1]; j++)
            n += y[idx[j]];
        r = group_constants(des, ws, idx + start[g], k, &s2, &D2);
        if (r < 0)
            goto out;
        V += s2 / n; /* n >= 1: qt_sample_normalise refused empty groups */
        C += D2 / n;
    }
    *tau = sqrt(V) + sqrt(0.5 * log(1.0 / delta) * C) + TAU_SLACK;
    r = 0;
out:
    qt_ws_release(ws, mark);
    return r;
}

/* rho_PLS: the Frobenius projection of the Hermitian part of L onto the density matrices, and
 * its rank: the number of eigenvalues the simplex projection left positive (it writes exact
 * zeros for the others). */
static int pls_project(struct qt_ws *ws, size_t d, const double complex *L, double complex *rho,
                       size_t *ret_rank)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *V = qt_ws_alloc_n(ws, d * d, sizeof(*V)), *S;
    double *w = qt_ws_alloc_n(ws, d, sizeof(double)), *lam = qt_ws_alloc_n(ws, d, sizeof(double));
    double *scratch = qt_ws_alloc_n(ws, d, sizeof(double));
    struct qt_spectrum sp = {d, V, w};
    size_t rank = 0;
    int r = -ENOMEM;

    S = qt_ws_alloc_n(ws, d * d, sizeof(*S));
    if (!V || !w || !lam || !scratch || !S)
        goto out;
    r = qt_rho_spectrum(ws, d, L, &sp);
    if (r < 0)
        goto out;
    memcpy(lam, w, d * sizeof(double));
    qt_simplex_project(d, lam, scratch);
    for (size_t i = 0; i < d; i++) {
        rank += lam[i] > 0.0;
        for (size_t t = 0; t < d; t++)
            S[t + d * i] = V[t + d * i] * lam[i];
    }
    qt_zgemm('N', 'C', d, d, d, 1.0, S, d, V, d, 0.0, rho, d);
    qt_mat_hermitise(d, rho, rho);
    *ret_rank = rank;
out:
    qt_ws_release(ws, mark);
    return r;
}

int qt_td_bound(const struct qt_design *des, struct qt_ws *ws, const double *y,
                const struct qt_opts *opts, const double complex *rho_rep, double confidence,
                double *bound)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d, rank = 0, k;
    struct qt_sample_info info;
    double *f, tau, extra = 0.0;
    double complex *L, *pls;
    int r;

    if (!(confidence > 0.0 && confidence < 1.0))
        return QT_EOPTION;
    r = check_design(des);
    if (r < 0)
        return r;
    if (!qt_resample_is_counts(y, des->m))
        return QT_ENOTCOUNTS;
    f = qt_ws_alloc_n(ws, des->m, sizeof(double));
    L = qt_ws_alloc_n(ws, d * d, sizeof(*L));
    pls = qt_ws_alloc_n(ws, d * d, sizeof(*pls));
    if (!f || !L || !pls) {
        r = -ENOMEM;
        goto out;
    }
    r = qt_sample_normalise(des, y, des->m, opts->tolerance, f, &info, NULL);
    if (r >= 0)
        r = frobenius_radius(des, ws, y, 1.0 - confidence, &tau);
    if (r >= 0)
        r = qt_design_pinv_apply(des, ws, f, L);
    if (r >= 0)
        r = pls_project(ws, d, L, pls, &rank);
    if (r >= 0 && rho_rep)
        r = qt_rho_trace_distance(ws, d, rho_rep, pls, &extra);
    if (r < 0)
        goto out;
    k = QT_MAX((size_t)1, QT_MIN(rank, d / 2));
    *bound = fmin(1.0, sqrt((double)(k * (d - k)) / (double)d) * tau + extra);
out:
    qt_ws_release(ws, mark);
    return r;
}
