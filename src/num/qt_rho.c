/* Physicalisation and spectral state metrics. Each routine does at most one Hermitian
 * eigendecomposition and reuses the caller's spectrum where it can. */
#include "qt_rho.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qt_lapack.h"
#include "qt_mat.h"

size_t qt_isqrt_exact(size_t d)
{
    size_t k = (size_t)llround(sqrt((double)d));

    return k * k == d ? k : 0;
}

int qt_rho_spectrum(struct qt_ws *ws, size_t d, const double complex *rho, struct qt_spectrum *sp)
{
    qt_mat_hermitise(d, rho, sp->V);
    sp->d = d;
    return qt_zheev(ws, true, d, sp->V, d, sp->lam);
}

/* rho = V diag(lam) V^H, exactly Hermitian. */
static int rebuild(struct qt_ws *ws, size_t d, const double complex *V, const double *lam,
                   double complex *rho)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *S = qt_ws_alloc_n(ws, d * d, sizeof(*S));

    if (!S)
        return -ENOMEM;
    for (size_t k = 0; k < d; k++)
        for (size_t i = 0; i < d; i++)
            S[i + d * k] = V[i + d * k] * lam[k];
    qt_zgemm('N', 'C', d, d, d, 1.0, S, d, V, d, 0.0, rho, d);
    qt_mat_hermitise(d, rho, rho);
    qt_ws_release(ws, mark);
    return 0;
}

void qt_simplex_project(size_t n, double *x, double *scratch)
{
    double *u = scratch, cum = 0.0, theta = 0.0;

    /* Duchi et al. 2008: sort descending, then theta from the last index j with
     * u_j > (sum_{i<=j} u_i - 1) / j. Insertion sort: n = d is small. */
    memcpy(u, x, n * sizeof(double));
    for (size_t i = 1; i < n; i++)
        for (size_t j = i; j > 0 && u[j - 1] < u[j]; j--) {
            double t = u[j];
            u[j] = u[j - 1];
            u[j - 1] = t;
        }
    for (size_t j = 0; j < n; j++) {
        cum += u[j];
        double t = (cum - 1.0) / (double)(j + 1);
        if (u[j] > t)
            theta = t;
    }
    for (size_t i = 0; i < n; i++)
        x[i] = x[i] > theta ? x[i] - theta : 0.0;
}

static void clip(size_t d, const double *w, double tol, double *lam, struct qt_phys_info *info)
{
    double s = 0.0;

    for (size_t i = 0; i < d; i++) {
        lam[i] = w[i] < tol ? 0.0 : w[i];
        info->n_clipped += w[i] < tol;
        s += lam[i];
    }
    if (s <= tol) {
        info->fallback = true;
        for (size_t i = 0; i < d; i++)
            lam[i] = 1.0 / (double)d;
    } else {
        for (size_t i = 0; i < d; i++)
            lam[i] /= s;
    }
}

static int smolin(struct qt_ws *ws, size_t d, const double *w, double *lam)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *scratch = qt_ws_alloc_n(ws, d, sizeof(double)), t = 0.0;

    if (!scratch)
        return -ENOMEM;
    for (size_t i = 0; i < d; i++)
        t += w[i];
    for (size_t i = 0; i < d; i++)
        lam[i] = t > 0.0 ? w[i] / t : w[i];
    qt_simplex_project(d, lam, scratch);
    qt_ws_release(ws, mark);
    return 0;
}

int qt_rho_physicalise_spectrum(struct qt_ws *ws, enum qt_physical mode, double tolerance,
                                struct qt_spectrum *sp, double complex *rho,
                                struct qt_phys_info *info)
{
    size_t d = sp->d;
    double *w = sp->lam;
    double nrm, tr = 0.0;
    int r;

    memset(info, 0, sizeof(*info));
    nrm = fmax(fabs(w[0]), fabs(w[d - 1]));
    info->tol = fmax(tolerance, 50.0 * (double)d * DBL_EPSILON * fmax(1.0, nrm));
    info->min_eig_raw = w[0];
    info->significant = w[0] < -10.0 * info->tol;
    if (mode == QT_PHYS_SMOLIN) {
        r = smolin(ws, d, w, w);
        if (r < 0)
            return r;
    } else {
        clip(d, w, info->tol, w, info);
    }
    r = rebuild(ws, d, sp->V, w, rho);
    if (r < 0)
        return r;
    for (size_t i = 0; i < d; i++)
        tr += creal(rho[i + d * i]);
    if (!(tr > 0.0)) { /* cannot happen after clip, kept from the origin's guard */
        memset(rho, 0, d * d * sizeof(*rho));
        for (size_t i = 0; i < d; i++) {
            rho[i + d * i] = 1.0 / (double)d;
            w[i] = 1.0 / (double)d;
        }
        return 0;
    }
    for (size_t i = 0; i < d * d; i++)
        rho[i] /= tr;
    for (size_t i = 0; i < d; i++)
        w[i] /= tr;
    return 0;
}

int qt_rho_physicalise(struct qt_ws *ws, size_t d, const double complex *raw, enum qt_physical mode,
                       double tolerance, double complex *rho, struct qt_spectrum *sp,
                       struct qt_phys_info *info)
{
    int r = qt_rho_spectrum(ws, d, raw, sp);

    if (r < 0)
        return r;
    return qt_rho_physicalise_spectrum(ws, mode, tolerance, sp, rho, info);
}

/* Eigenvalues below this are rounding noise: set to zero before taking square roots, as the
 * origin's matrix_square_root does (otherwise each contributes ~sqrt(eps) to a fidelity). */
static double sqrt_floor(size_t d, const double *lam)
{
    double top = 0.0;

    for (size_t i = 0; i < d; i++)
        top = fmax(top, fabs(lam[i]));
    return 50.0 * (double)d * DBL_EPSILON * fmax(1.0, top);
}

/* C = B^H X B with B = V diag(sqrt(lam)): its nonzero spectrum is that of
 * sqrt(rho) X sqrt(rho). */
static int sandwich(struct qt_ws *ws, const struct qt_spectrum *sp, const double complex *X,
                    double complex *C)
{
    size_t d = sp->d;
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *B = qt_ws_alloc_n(ws, d * d, sizeof(*B));
    double complex *T = qt_ws_alloc_n(ws, d * d, sizeof(*T));

    if (!B || !T) {
        qt_ws_release(ws, mark);
        return -ENOMEM;
    }
    double floor_lam = sqrt_floor(d, sp->lam);
    for (size_t k = 0; k < d; k++) {
        double s = sp->lam[k] > floor_lam ? sqrt(sp->lam[k]) : 0.0;

        for (size_t i = 0; i < d; i++)
            B[i + d * k] = sp->V[i + d * k] * s;
    }
    qt_zgemm('N', 'N', d, d, d, 1.0, X, d, B, d, 0.0, T, d);
    qt_zgemm('C', 'N', d, d, d, 1.0, B, d, T, d, 0.0, C, d);
    qt_ws_release(ws, mark);
    return 0;
}

/* Eigenvalues of the sandwich above. */
static int sandwich_eigs(struct qt_ws *ws, const struct qt_spectrum *sp, const double complex *X,
                         double *mu)
{
    size_t d = sp->d;
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *C = qt_ws_alloc_n(ws, d * d, sizeof(*C));
    int r = C ? sandwich(ws, sp, X, C) : -ENOMEM;

    if (r >= 0)
        r = qt_zheev(ws, false, d, C, d, mu);
    qt_ws_release(ws, mark);
    return r;
}

int qt_rho_fidelity(struct qt_ws *ws, const struct qt_spectrum *sp, const double complex *sigma,
                    double *ret_f)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *mu = qt_ws_alloc_n(ws, sp->d, sizeof(double)), s = 0.0;
    int r;

    if (!mu)
        return -ENOMEM;
    r = sandwich_eigs(ws, sp, sigma, mu);
    if (r >= 0) {
        double floor_mu = sqrt_floor(sp->d, mu);

        for (size_t i = 0; i < sp->d; i++)
            s += mu[i] > floor_mu ? sqrt(mu[i]) : 0.0;
        *ret_f = s * s;
    }
    qt_ws_release(ws, mark);
    return r;
}

double qt_rho_trace_norm_from(size_t d, const double *w)
{
    double s = 0.0;

    for (size_t i = 0; i < d; i++)
        s += fabs(w[i]);
    return s;
}

/* Sum of |eigenvalues| of a Hermitian matrix given in A (destroyed). */
static int trace_norm(struct qt_ws *ws, size_t d, double complex *A, double *ret)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double *w = qt_ws_alloc_n(ws, d, sizeof(double));
    int r;

    if (!w)
        return -ENOMEM;
    r = qt_zheev(ws, false, d, A, d, w);
    if (r >= 0)
        *ret = qt_rho_trace_norm_from(d, w);
    qt_ws_release(ws, mark);
    return r;
}

int qt_rho_trace_distance(struct qt_ws *ws, size_t d, const double complex *rho,
                          const double complex *sigma, double *ret_t)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *D = qt_ws_alloc_n(ws, d * d, sizeof(*D));
    double n1;
    int r;

    if (!D)
        return -ENOMEM;
    for (size_t i = 0; i < d * d; i++)
        D[i] = rho[i] - sigma[i];
    qt_mat_hermitise(d, D, D);
    r = trace_norm(ws, d, D, &n1);
    if (r >= 0)
        *ret_t = 0.5 * n1;
    qt_ws_release(ws, mark);
    return r;
}

int qt_rho_concurrence_matrix(struct qt_ws *ws, const struct qt_spectrum *sp,
                              const double complex *rho, double complex *C)
{
    /* sigma_y (x) sigma_y maps |i> to s_i |3 - i> with signs (-1, +1, +1, -1). */
    static const double sgn[4] = {-1.0, 1.0, 1.0, -1.0};
    double complex tilde[16];

    for (size_t j = 0; j < 4; j++)
        for (size_t i = 0; i < 4; i++)
            tilde[i + 4 * j] = sgn[i] * sgn[j] * conj(rho[(3 - i) + 4 * (3 - j)]);
    return sandwich(ws, sp, tilde, C);
}

double qt_rho_concurrence_from(const double mu[4])
{
    double l[4];

    for (size_t i = 0; i < 4; i++)
        l[i] = sqrt(fmax(mu[3 - i], 0.0)); /* descending */
    return fmax(0.0, l[0] - l[1] - l[2] - l[3]);
}

int qt_rho_concurrence(struct qt_ws *ws, const struct qt_spectrum *sp, const double complex *rho,
                       double *ret_c)
{
    double complex C[16];
    double mu[4];
    int r = qt_rho_concurrence_matrix(ws, sp, rho, C);

    if (r >= 0)
        r = qt_zheev(ws, false, 4, C, 4, mu);
    if (r < 0)
        return r;
    *ret_c = qt_rho_concurrence_from(mu);
    return 0;
}

void qt_rho_pt_matrix(size_t d, const double complex *rho, double complex *P)
{
    size_t k = qt_isqrt_exact(d);

    /* (rho^T_B)[(a,b),(c,e)] = rho[(a,e),(c,b)], row index (a,b) = a k + b. */
    for (size_t a = 0; a < k; a++)
        for (size_t b = 0; b < k; b++)
            for (size_t c = 0; c < k; c++)
                for (size_t e = 0; e < k; e++)
                    P[(a * k + b) + d * (c * k + e)] = rho[(a * k + e) + d * (c * k + b)];
    qt_mat_hermitise(d, P, P);
}

int qt_rho_pt_norm(struct qt_ws *ws, size_t d, const double complex *rho, double *ret_n)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    double complex *P = qt_ws_alloc_n(ws, d * d, sizeof(*P));
    int r;

    if (!P)
        return -ENOMEM;
    qt_rho_pt_matrix(d, rho, P);
    r = trace_norm(ws, d, P, ret_n);
    qt_ws_release(ws, mark);
    return r;
}

void qt_rho_bell(size_t d, const double complex *rho, double *fid)
{
    size_t k = qt_isqrt_exact(d);

    for (size_t m = 0; m < k; m++)
        for (size_t n = 0; n < k; n++) {
            double complex acc = 0.0;

            for (size_t j = 0; j < k; j++)
                for (size_t jp = 0; jp < k; jp++) {
                    double ph = 2.0 * M_PI * (double)(m * ((jp + k - j) % k)) / (double)k;
                    size_t row = j * k + (j + n) % k, col = jp * k + (jp + n) % k;

                    acc += (cos(ph) + I * sin(ph)) * rho[row + d * col];
                }
            fid[m * k + n] = creal(acc) / (double)k;
        }
}
