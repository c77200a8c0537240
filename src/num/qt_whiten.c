/* Whitening of a design by H = sum_a E_a, computed once per design: a scale for POVMs, the
 * support eigenbasis of H otherwise, as the origin's RrhoStrictReconstructor builds it. */
#include "qt_whiten.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_pauli.h"

void qt_whiten_done(struct qt_whiten *wh)
{
    if (!wh)
        return;
    free(wh->B);
    free(wh->hw);
    free(wh->kets);
    free(wh->elems);
    wh->B = wh->kets = wh->elems = NULL;
    wh->hw = NULL;
}

/* Deviation of S = sum_a E~_a from the identity, and numpy's allclose(S, I, atol = 1e-8 ds)
 * with its default rtol 1e-5. */
static void sum_diagnostics(struct qt_whiten *wh, const double complex *S)
{
    size_t n = wh->ds;
    double mx = 0.0, fro = 0.0;
    bool ok = true;

    for (size_t j = 0; j < n; j++)
        for (size_t i = 0; i < n; i++) {
            double id = i == j ? 1.0 : 0.0, e = cabs(S[i + n * j] - id);

            mx = fmax(mx, e);
            fro += e * e;
            ok &= e <= 1e-8 * (double)n + 1e-5 * id;
        }
    wh->sum_dev_abs = mx;
    wh->sum_dev_fro = sqrt(fro);
    wh->sum_valid = ok;
}

/* Smallest eigenvalue of the first two whitened elements, recorded by the origin for ds <= 10. */
static int sample_min_eig(struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t n = wh->ds, cnt = QT_MIN(wh->m, (size_t)2);
    double complex *E = qt_ws_alloc_n(ws, n * n, sizeof(*E));
    double *w = qt_ws_alloc_n(ws, n, sizeof(double)), *c = qt_ws_alloc_n(ws, wh->m, sizeof(double));
    int r = 0;

    wh->min_eig_sample = NAN;
    if (n > 10)
        goto out;
    if (!E || !w || !c) {
        r = -ENOMEM;
        goto out;
    }
    memset(c, 0, wh->m * sizeof(double));
    for (size_t a = 0; a < cnt; a++) {
        c[a] = 1.0;
        r = qt_whiten_adjoint(wh, des, ws, c, E);
        c[a] = 0.0;
        if (r >= 0)
            r = qt_zheev(ws, false, n, E, n, w);
        if (r < 0)
            goto out;
        wh->min_eig_sample = a == 0 ? w[0] : fmin(wh->min_eig_sample, w[0]);
    }
out:
    qt_ws_release(ws, mark);
    return r;
}

/* B, h and the whitened kets or elements of a design that is not a POVM. */
static int build_basis(struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                       const double complex *U, const double *w, size_t first, double eps)
{
    size_t d = wh->d, n = wh->ds, m = wh->m;

    wh->B = malloc(d * n * sizeof(double complex));
    wh->hw = malloc(n * sizeof(double));
    if (!wh->B || !wh->hw)
        return -ENOMEM;
    for (size_t k = 0; k < n; k++) {
        double s = 1.0 / sqrt(fmax(w[first + k], eps));

        wh->hw[k] = w[first + k];
        for (size_t i = 0; i < d; i++)
            wh->B[i + d * k] = U[i + d * (first + k)] * s;
    }
    if (des->kets) {
        wh->kets = malloc(n * m * sizeof(double complex));
        if (!wh->kets)
            return -ENOMEM;
        qt_zgemm('C', 'N', n, m, d, 1.0, wh->B, d, des->kets, d, 0.0, wh->kets, n);
        return 0;
    }
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *T = qt_ws_alloc_n(ws, d * n, sizeof(*T));
    wh->elems = malloc(n * n * m * sizeof(double complex));
    if (!T || !wh->elems) {
        qt_ws_release(ws, mark);
        return -ENOMEM;
    }
    for (size_t a = 0; a < m; a++) {
        double complex *Ew = wh->elems + n * n * a;

        qt_zgemm('N', 'N', d, n, d, 1.0, des->elems + d * d * a, d, wh->B, d, 0.0, T, d);
        qt_zgemm('C', 'N', n, n, d, 1.0, wh->B, d, T, d, 0.0, Ew, n);
        qt_mat_hermitise(n, Ew, Ew);
    }
    qt_ws_release(ws, mark);
    return 0;
}

int qt_whiten_init(struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                   double eig_rel, double eig_abs, double eps)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = des->d, dd = d * d;
    double complex *U = qt_ws_alloc_n(ws, dd, sizeof(*U)), *S = qt_ws_alloc_n(ws, dd, sizeof(*S));
    double *w = qt_ws_alloc_n(ws, d, sizeof(double));
    int r;

    memset(wh, 0, sizeof(*wh));
    wh->d = d;
    wh->m = des->m;
    if (!U || !S || !w) {
        r = -ENOMEM;
        goto out;
    }
    qt_mat_hermitise(d, des->H, U);
    r = qt_zheev(ws, true, d, U, d, w);
    if (r < 0)
        goto out;
    wh->eig_min_H = w[0];
    wh->eig_max_H = w[d - 1];
    if (des->povm) {
        wh->trivial = true;
        wh->ds = d;
        wh->C = 0.0;
        for (size_t g = 0; g < des->n_groups; g++)
            wh->C += des->group_scale[g];
        for (size_t t = 0; t < dd; t++)
            S[t] = des->H[t] / wh->C;
    } else {
        double tau = fmax(eig_abs, eig_rel * fmax(w[d - 1], 1.0));
        size_t first = d;

        while (first > 0 && w[first - 1] > tau)
            first--;
        if (first == d)
            first = d - 1; /* empty support: the largest eigenvalue alone */
        wh->ds = d - first;
        r = build_basis(wh, des, ws, U, w, first, eps);
        if (r < 0)
            goto out;
        /* sum_a E~_a = B^H H B */
        double complex *T = qt_ws_alloc_n(ws, d * wh->ds, sizeof(*T));
        if (!T) {
            r = -ENOMEM;
            goto out;
        }
        qt_zgemm('N', 'N', d, wh->ds, d, 1.0, des->H, d, wh->B, d, 0.0, T, d);
        qt_zgemm('C', 'N', wh->ds, wh->ds, d, 1.0, wh->B, d, T, d, 0.0, S, wh->ds);
    }
    sum_diagnostics(wh, S);
    r = sample_min_eig(wh, des, ws);
out:
    qt_ws_release(ws, mark);
    if (r < 0)
        qt_whiten_done(wh);
    return r;
}

/* Designs with a mixing structure (qt_design.mix_base) keep their fast maps when whitened:
 * Tr(E~_a sigma) = Tr(E_a B sigma B^H) and sum_a c_a E~_a = B^H (sum_a c_a E_a) B, two GEMMs
 * each way instead of the whitened elements' ds^2 m. */
static int mixed_whiten_forward(const struct qt_whiten *wh, const struct qt_design *des,
                                struct qt_ws *ws, const double complex *sigma, double *q)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = wh->d, ds = wh->ds;
    double complex *T = qt_ws_alloc_n(ws, d * ds, sizeof(*T));
    double complex *X = qt_ws_alloc_n(ws, d * d, sizeof(*X));
    int r = -ENOMEM;

    if (T && X) {
        qt_zgemm('N', 'N', d, ds, ds, 1.0, wh->B, d, sigma, ds, 0.0, T, d);
        qt_zgemm('N', 'C', d, d, ds, 1.0, T, d, wh->B, d, 0.0, X, d);
        r = qt_design_forward(des, ws, X, q);
    }
    qt_ws_release(ws, mark);
    return r;
}

static int mixed_whiten_adjoint(const struct qt_whiten *wh, const struct qt_design *des,
                                struct qt_ws *ws, const double *c, double complex *out)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = wh->d, ds = wh->ds;
    double complex *Y = qt_ws_alloc_n(ws, d * d, sizeof(*Y));
    double complex *T = qt_ws_alloc_n(ws, d * ds, sizeof(*T));
    int r = Y && T ? qt_design_adjoint(des, ws, c, Y) : -ENOMEM;

    if (r >= 0) {
        qt_zgemm('N', 'N', d, ds, d, 1.0, Y, d, wh->B, d, 0.0, T, d);
        qt_zgemm('C', 'N', ds, ds, d, 1.0, wh->B, d, T, d, 0.0, out, ds);
        qt_mat_hermitise(ds, out, out);
    }
    qt_ws_release(ws, mark);
    return r;
}

int qt_whiten_forward(const struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                      const double complex *sigma, double *q)
{
    int r;

    if (!wh->trivial && des->mix_base)
        return mixed_whiten_forward(wh, des, ws, sigma, q);
    if (!wh->trivial)
        return wh->kets ? qt_kets_forward(wh->ds, wh->m, wh->kets, ws, sigma, q)
                        : qt_elems_forward(wh->ds, wh->m, wh->elems, ws, sigma, q);
    r = qt_design_forward(des, ws, sigma, q);
    for (size_t a = 0; r >= 0 && a < wh->m; a++)
        q[a] /= wh->C;
    return r;
}

int qt_whiten_adjoint(const struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                      const double *c, double complex *out)
{
    int r = 0;

    if (!wh->trivial && des->mix_base)
        return mixed_whiten_adjoint(wh, des, ws, c, out);
    if (!wh->trivial) {
        if (wh->kets)
            return qt_kets_adjoint(wh->ds, wh->m, wh->kets, ws, c, out);
        qt_elems_adjoint(wh->ds, wh->m, wh->elems, c, out);
        return 0;
    }
    r = qt_design_adjoint(des, ws, c, out);
    for (size_t t = 0; r >= 0 && t < wh->d * wh->d; t++)
        out[t] /= wh->C;
    return r;
}

static bool pauli_native(const struct qt_whiten *wh, const struct qt_design *des)
{
    return wh->trivial && des->kind == QT_DESIGN_PAULI && !des->mix_base;
}

int qt_whiten_forward_native(const struct qt_whiten *wh, const struct qt_design *des,
                             struct qt_ws *ws, const double complex *sigma, double *q)
{
    if (!pauli_native(wh, des))
        return qt_whiten_forward(wh, des, ws, sigma, q);
    return qt_pauli_forward_native(des->n_qubits, ws, sigma, 1.0 / wh->C, q);
}

int qt_whiten_adjoint_native(const struct qt_whiten *wh, const struct qt_design *des,
                             struct qt_ws *ws, const double *c, double complex *out)
{
    if (!pauli_native(wh, des))
        return qt_whiten_adjoint(wh, des, ws, c, out);
    return qt_pauli_adjoint_native(des->n_qubits, ws, c, 1.0 / wh->C, out);
}

int qt_whiten_to_native(const struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                        const double *v, double *out)
{
    if (!pauli_native(wh, des)) {
        memcpy(out, v, wh->m * sizeof(double));
        return 0;
    }
    return qt_pauli_to_native(des->n_qubits, ws, v, out);
}

static void normalise_trace(size_t n, double complex *X, double eps)
{
    double tr = 0.0;

    qt_mat_hermitise(n, X, X);
    for (size_t i = 0; i < n; i++)
        tr += creal(X[i + n * i]);
    tr = fmax(tr, eps);
    for (size_t t = 0; t < n * n; t++)
        X[t] /= tr;
}

int qt_whiten_to_rho(const struct qt_whiten *wh, struct qt_ws *ws, const double complex *sigma,
                     double eps, double complex *rho)
{
    size_t d = wh->d, n = wh->ds;

    if (wh->trivial) {
        memcpy(rho, sigma, d * d * sizeof(*rho));
    } else {
        struct qt_ws_mark mark = qt_ws_mark(ws);
        double complex *T = qt_ws_alloc_n(ws, d * n, sizeof(*T));

        if (!T)
            return -ENOMEM;
        qt_zgemm('N', 'N', d, n, n, 1.0, wh->B, d, sigma, n, 0.0, T, d);
        qt_zgemm('N', 'C', d, d, n, 1.0, T, d, wh->B, d, 0.0, rho, d);
        qt_ws_release(ws, mark);
    }
    normalise_trace(d, rho, eps);
    return 0;
}

int qt_whiten_from_rho(const struct qt_whiten *wh, struct qt_ws *ws, const double complex *rho,
                       double complex *sigma)
{
    size_t d = wh->d, n = wh->ds;

    if (wh->trivial) {
        memcpy(sigma, rho, d * d * sizeof(*sigma));
    } else {
        /* B = U_S h^(-1/2) has pseudo-inverse B^+ = h^(1/2) U_S^H = h B^H. */
        struct qt_ws_mark mark = qt_ws_mark(ws);
        double complex *T = qt_ws_alloc_n(ws, d * n, sizeof(*T));

        if (!T)
            return -ENOMEM;
        qt_zgemm('N', 'N', d, n, d, 1.0, rho, d, wh->B, d, 0.0, T, d);
        qt_zgemm('C', 'N', n, n, d, 1.0, wh->B, d, T, d, 0.0, sigma, n);
        for (size_t j = 0; j < n; j++)
            for (size_t i = 0; i < n; i++)
                sigma[i + n * j] *= wh->hw[i] * wh->hw[j];
        qt_ws_release(ws, mark);
    }
    normalise_trace(n, sigma, 1e-300);
    return 0;
}
