/* Maximum likelihood with backgrounds and an unknown intensity: the trust-region Newton solver
 * on a slack-augmented, whitened density matrix, certified by the concavity bound of
 * qt_est_mlebg.h. */
#include "qt_est_mlebg.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "base/qt_err.h"
#include "qt_design.h"
#include "qt_lapack.h"
#include "qt_mat.h"
#include "qt_newton.h"
#include "qt_sum.h"

/* Support of H: eigenvalues above this times the largest (as qt_whiten's default). */
#define SUPPORT_REL 1e-10
/* The slack bound: Tr s <= TRACE_CAP Y over the solver's domain; the optimum has Tr s <= Y. */
#define TRACE_CAP 2.0

/* The whitening of the elements by H = sum_a F_a on its support. */
struct bgw {
    size_t d, ds, m;
    double complex *B;  /* d x ds, U_S diag(h_S)^(-1/2) */
    double complex *Fw; /* ds^2 x m, column a = vec(B^H F_a B); NULL with map */
    const struct qt_design *map; /* qt_mlebg_opts.map: the solver's maps through it */
};

/* The solver's context: per-count data and scratch for the maps. */
struct bgctx {
    const struct bgw *W;
    size_t n;         /* ds + 1 */
    const double *w;  /* y / Y */
    const double *bp; /* beta / Y */
    double complex *x, *z, *tmp;
    double complex *T; /* ds x ds */
    double complex *Xd, *Td; /* d x d and d x ds (with map) */
    double *lam;       /* ds */
    double gap_tol;
    double gap; /* per count, at the last check */
    struct qt_polish polish;
};

void qt_mlebg_opts_init(struct qt_mlebg_opts *o)
{
    o->gap_tol = 1e-10;
    o->max_iter = 500;
    o->map = NULL;
}

/* -EDOM for non-finite or negative data, QT_EZEROGROUP for impossible data; *Y = sum y. */
static int validate(size_t d, size_t m, const double complex *F, const double *beta,
                    const double *y, double *Y)
{
    size_t dd = d * d;
    bool zero = false;

    *Y = 0.0;
    if (d == 0 || m == 0)
        return -EDOM;
    for (size_t a = 0; a < m; a++) {
        double tr = 0.0;

        if (!isfinite(y[a]) || y[a] < 0.0 || !isfinite(beta[a]) || beta[a] < 0.0)
            return -EDOM;
        for (size_t i = 0; i < dd; i++)
            if (!isfinite(creal(F[i + dd * a])) || !isfinite(cimag(F[i + dd * a])))
                return -EDOM;
        for (size_t i = 0; i < d; i++)
            tr += creal(F[i + d * i + dd * a]);
        if (y[a] > 0.0 && beta[a] == 0.0 && !(tr > 0.0))
            zero = true;
        *Y += y[a];
    }
    return zero ? QT_EZEROGROUP : 0;
}

/* Builds W in ws (released by the caller's mark). -EDOM when H = 0. */
static int whiten(struct qt_ws *ws, size_t d, size_t m, const double complex *F, struct bgw *W)
{
    size_t dd = d * d, ds = 0;
    double complex *H = qt_ws_alloc_n(ws, dd, sizeof(*H)), *T;
    double *h = qt_ws_alloc_n(ws, d, sizeof(double)), hmax;
    int r;

    if (!H || !h)
        return -ENOMEM;
    memset(H, 0, dd * sizeof(*H));
    for (size_t a = 0; a < m; a++)
        for (size_t i = 0; i < dd; i++)
            H[i] += F[i + dd * a];
    qt_mat_hermitise(d, H, H);
    r = qt_zheev(ws, true, d, H, d, h);
    if (r < 0)
        return r;
    hmax = h[d - 1];
    if (!(hmax > 0.0))
        return -EDOM;
    for (size_t k = 0; k < d; k++)
        if (h[k] > SUPPORT_REL * hmax)
            ds++;
    W->d = d, W->ds = ds, W->m = m;
    W->B = qt_ws_alloc_n(ws, d * ds, sizeof(*W->B));
    W->Fw = W->map ? NULL : qt_ws_alloc_n(ws, ds * ds * m, sizeof(*W->Fw));
    T = qt_ws_alloc_n(ws, d * ds, sizeof(*T));
    if (!W->B || (!W->map && !W->Fw) || !T)
        return -ENOMEM;
    for (size_t k = 0; k < ds; k++) { /* the ds largest eigenvalues are the last columns */
        size_t col = d - ds + k;
        double s = 1.0 / sqrt(h[col]);

        for (size_t i = 0; i < d; i++)
            W->B[i + d * k] = s * H[i + d * col];
    }
    for (size_t a = 0; !W->map && a < m; a++) {
        double complex *Fa = W->Fw + ds * ds * a;

        qt_zgemm('N', 'N', d, ds, d, 1.0, F + dd * a, d, W->B, d, 0.0, T, d);
        qt_zgemm('C', 'N', ds, ds, d, 1.0, W->B, d, T, d, 0.0, Fa, ds);
        qt_mat_hermitise(ds, Fa, Fa);
    }
    return 0;
}

/* lambda_max of the Hermitian ds x ds matrix A (destroyed). */
static int lambda_max(struct qt_ws *ws, size_t n, double complex *A, double *lam, double *ret)
{
    int r;

    qt_mat_hermitise(n, A, A);
    r = qt_zheev(ws, false, n, A, n, lam);
    if (r >= 0)
        *ret = lam[n - 1];
    return r;
}

/* t_a = Tr(F_a sigma) = Re vec(F_a)^H vec(sigma), in extended precision. */
static long double trace_ld(size_t dd, const double complex *Fa, const double complex *sigma)
{
    long double t = 0.0L;

    for (size_t i = 0; i < dd; i++)
        t += (long double)creal(Fa[i]) * creal(sigma[i]) +
             (long double)cimag(Fa[i]) * cimag(sigma[i]);
    return t;
}

/* gap(sigma) and L(sigma) for a d x d sigma, in log-likelihood units (qt_est_mlebg.h). */
static int gap_at(const struct bgw *W, struct qt_ws *ws, const double complex *F,
                  const double *beta, const double *y, double Y, const double complex *sigma,
                  double *gap, double *loglik)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = W->d, ds = W->ds, m = W->m, dd = d * d;
    double complex *c = qt_ws_alloc_n(ws, m, sizeof(*c));
    double complex *G = qt_ws_alloc_n(ws, dd, sizeof(*G)),
                   *T = qt_ws_alloc_n(ws, d * ds, sizeof(*T));
    double complex *Gw = qt_ws_alloc_n(ws, ds * ds, sizeof(*Gw));
    double *lam = qt_ws_alloc_n(ws, ds, sizeof(double));
    long double inner = 0.0L, ll = 0.0L;
    double lmax = 0.0;
    bool bad = false;
    int r = -ENOMEM;

    if (!c || !G || !T || !Gw || !lam)
        goto out;
    /* The data side in extended precision: <G, sigma> sums terms of size y_a that cancel to
     * zero at the optimum, and an error of one ulp in Tr(F_a sigma) moves it by as much, so in
     * double the certificate could not go below ~10 eps Y (1e-8 at 10^7 counts). */
    for (size_t a = 0; a < m; a++) {
        long double t = trace_ld(dd, F + dd * a, sigma), ya = y[a], mu = t + beta[a];

        if (ya > 0.0L && !(mu > 0.0L)) {
            bad = true;
            c[a] = 0.0;
            continue;
        }
        if (ya > 0.0L) {
            ll += ya * logl(mu) - mu;
            inner += (ya - mu) * (t / mu);
            c[a] = (double)((ya - mu) / mu);
        } else {
            ll -= mu;
            inner -= t;
            c[a] = -1.0;
        }
    }
    qt_zgemv('N', dd, m, 1.0, F, dd, c, 0.0, G); /* G = sum_a c_a F_a */
    qt_zgemm('N', 'N', d, ds, d, 1.0, G, d, W->B, d, 0.0, T, d);
    qt_zgemm('C', 'N', ds, ds, d, 1.0, W->B, d, T, d, 0.0, Gw, ds);
    r = lambda_max(ws, ds, Gw, lam, &lmax);
    if (r < 0)
        goto out;
    *gap = bad ? INFINITY : (double)(Y * fmax(lmax, 0.0) - inner);
    if (loglik)
        *loglik = bad ? -INFINITY : (double)ll;
out:
    qt_ws_release(ws, mark);
    return r;
}

int qt_mlebg_gap(size_t d, size_t m, const double complex *F, const double *beta, const double *y,
                 const double complex *sigma, struct qt_ws *ws, double *gap, double *loglik)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    struct bgw W;
    double Y;
    int r = validate(d, m, F, beta, y, &Y);

    if (r == QT_EZEROGROUP) /* every sigma has mu_a = 0 < y_a: L = -infinity everywhere */
        r = 0;
    W.map = NULL;
    if (r >= 0)
        r = whiten(ws, d, m, F, &W);
    if (r >= 0)
        r = gap_at(&W, ws, F, beta, y, Y, sigma, gap, loglik);
    qt_ws_release(ws, mark);
    return r;
}

/* Multiplies sigma by the s > 0 that maximises L(s sigma) (Newton in extended precision).
 * The certificate is first order in the distance to the optimum, and the solver's point
 * carries a relative error of a few eps from the rounded whitened elements, mostly along the
 * ray (the direction of the intensity, where L is curved by ~Y): this removes that part. */
static int refine_scale(struct qt_ws *ws, size_t d, size_t m, const double complex *F,
                        const double *beta, const double *y, double complex *sigma)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t dd = d * d;
    long double *t = qt_ws_alloc_n(ws, m, sizeof(long double)), s = 1.0L;

    if (!t)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++)
        t[a] = trace_ld(dd, F + dd * a, sigma);
    for (int k = 0; k < 50; k++) {
        long double g = 0.0L, h = 0.0L, step;

        for (size_t a = 0; a < m; a++) {
            long double mu = s * t[a] + beta[a];

            g -= t[a];
            if (y[a] > 0.0) {
                if (!(mu > 0.0L))
                    goto out; /* not on the domain: leave sigma as it is */
                g += y[a] * t[a] / mu;
                h += y[a] * t[a] * t[a] / (mu * mu);
            }
        }
        if (!(h > 0.0L))
            goto out;
        step = g / h;
        if (s + step <= 0.0L)
            step = -0.5L * s;
        s += step;
        if (fabsl(step) <= 1e-18L * s)
            break;
    }
    for (size_t i = 0; i < dd; i++)
        sigma[i] *= (double)s;
out:
    qt_ws_release(ws, mark);
    return 0;
}

/* --- The solver's maps over omega (n x n, n = ds + 1): q_a = TRACE_CAP Tr(F~_a omega_top). */

/* Through the design's own maps (qt_mlebg_opts.map): Tr(B^H F_a B x) = Tr(F_a B x B^H), and
 * sum_a v_a B^H F_a B = B^H (sum_a v_a F_a) B. */
static int map_forward(struct bgctx *c, struct qt_ws *ws, double *q)
{
    const struct bgw *W = c->W;
    size_t d = W->d, ds = W->ds;
    int r;

    qt_zgemm('N', 'N', d, ds, ds, 1.0, W->B, d, c->x, ds, 0.0, c->Td, d);
    qt_zgemm('N', 'C', d, d, ds, 1.0, c->Td, d, W->B, d, 0.0, c->Xd, d);
    r = qt_design_forward(W->map, ws, c->Xd, q);
    for (size_t a = 0; r >= 0 && a < W->m; a++)
        q[a] *= TRACE_CAP;
    return r;
}

static int map_adjoint(struct bgctx *c, struct qt_ws *ws, const double *v)
{
    const struct bgw *W = c->W;
    size_t d = W->d, ds = W->ds;
    double *u = (double *)c->z; /* m doubles fit in m complex */
    int r;

    for (size_t a = 0; a < W->m; a++)
        u[a] = TRACE_CAP * v[a];
    r = qt_design_adjoint(W->map, ws, u, c->Xd);
    if (r < 0)
        return r;
    qt_zgemm('N', 'N', d, ds, d, 1.0, c->Xd, d, W->B, d, 0.0, c->Td, d);
    qt_zgemm('C', 'N', ds, ds, d, 1.0, W->B, d, c->Td, d, 0.0, c->tmp, ds);
    return 0;
}

static int bg_forward(void *ctx, struct qt_ws *ws, const double complex *X, double *q)
{
    struct bgctx *c = ctx;
    size_t ds = c->W->ds, n = c->n;

    for (size_t j = 0; j < ds; j++)
        memcpy(c->x + ds * j, X + n * j, ds * sizeof(*X));
    if (c->W->map)
        return map_forward(c, ws, q);
    qt_zgemv('C', ds * ds, c->W->m, 1.0, c->W->Fw, ds * ds, c->x, 0.0, c->z);
    for (size_t a = 0; a < c->W->m; a++)
        q[a] = TRACE_CAP * creal(c->z[a]);
    return 0;
}

static int bg_adjoint(void *ctx, struct qt_ws *ws, const double *v, double complex *out)
{
    struct bgctx *c = ctx;
    size_t ds = c->W->ds, n = c->n;

    if (c->W->map) {
        int r = map_adjoint(c, ws, v);

        if (r < 0)
            return r;
    } else {
        for (size_t a = 0; a < c->W->m; a++)
            c->z[a] = TRACE_CAP * v[a];
        qt_zgemv('N', ds * ds, c->W->m, 1.0, c->W->Fw, ds * ds, c->z, 0.0, c->tmp);
    }
    memset(out, 0, n * n * sizeof(*out));
    for (size_t j = 0; j < ds; j++)
        for (size_t i = 0; i < ds; i++)
            out[i + n * j] = 0.5 * (c->tmp[i + ds * j] + conj(c->tmp[j + ds * i]));
    return 0;
}

/* Half the Poisson deviance per count: sum_a p_a - w_a - w_a ln(p_a / w_a), p = q + beta / Y.
 * Zero at a perfect fit, so that its rounding is relative to the misfit left. */
static double bg_phi(void *ctx, const double *q, double *d1, double *d2)
{
    struct bgctx *c = ctx;
    struct qt_sum F = {0.0, 0.0}; /* compensated, as in qt_est_mle */

    for (size_t a = 0; a < c->W->m; a++) {
        double w = c->w[a], p = q[a] + c->bp[a];

        if (w > 0.0) {
            double u = (p - w) / w;

            if (!(p > 0.0))
                return INFINITY;
            qt_sum_add(&F, (p - w) - w * (fabs(u) < 0.5 ? log1p(u) : log(p / w)));
        } else {
            qt_sum_add(&F, p);
        }
        if (d1)
            d1[a] = w > 0.0 ? 1.0 - w / p : 1.0;
        if (d2)
            d2[a] = w > 0.0 ? w / (p * p) : 0.0;
    }
    return qt_sum_value(&F);
}

/* The certificate per count from the solver's G = TRACE_CAP blockdiag(-G~, 0) and q:
 * lambda_max(G~)_+ - sum_a (w_a - p_a) q_a / p_a. */
static int gap_newton(struct bgctx *c, struct qt_ws *ws, const double *q, const double complex *G,
                      double *ret)
{
    size_t ds = c->W->ds, n = c->n;
    double inner = 0.0, lmax;
    int r;

    for (size_t a = 0; a < c->W->m; a++) {
        double w = c->w[a], p = q[a] + c->bp[a];

        if (w > 0.0 && !(p > 0.0)) {
            *ret = INFINITY;
            return 0;
        }
        inner += w > 0.0 ? (w - p) * (q[a] / p) : -q[a];
    }
    for (size_t j = 0; j < ds; j++)
        for (size_t i = 0; i < ds; i++)
            c->T[i + ds * j] = -G[i + n * j] / TRACE_CAP;
    r = lambda_max(ws, ds, c->T, c->lam, &lmax);
    if (r >= 0)
        *ret = fmax(lmax, 0.0) - inner;
    return r;
}

static bool bg_converged(void *ctx, struct qt_ws *ws, const double complex *rho, const double *q,
                         double F, const double complex *G, double gnorm, unsigned work)
{
    struct bgctx *c = ctx;

    (void)rho, (void)F, (void)gnorm;
    if (gap_newton(c, ws, q, G, &c->gap) < 0)
        c->gap = INFINITY;
    return qt_polish_done(&c->polish, c->gap, c->gap_tol, work); /* as qt_est_mle */
}

/* rho = I/d, the answer for Y = 0 (sigma = 0). */
static void maximally_mixed(size_t d, double complex *rho)
{
    memset(rho, 0, d * d * sizeof(*rho));
    for (size_t i = 0; i < d; i++)
        rho[i + d * i] = 1.0 / (double)d;
}

/* sigma = B (TRACE_CAP Y omega_top) B^H, d x d. */
static void sigma_from_omega(const struct bgw *W, size_t n, double Y, const double complex *om,
                             double complex *S, double complex *T, double complex *sigma)
{
    size_t d = W->d, ds = W->ds;

    for (size_t j = 0; j < ds; j++)
        for (size_t i = 0; i < ds; i++)
            S[i + ds * j] = TRACE_CAP * Y * om[i + n * j];
    qt_zgemm('N', 'N', d, ds, ds, 1.0, W->B, d, S, ds, 0.0, T, d);
    qt_zgemm('N', 'C', d, d, ds, 1.0, T, d, W->B, d, 0.0, sigma, d);
    qt_mat_hermitise(d, sigma, sigma);
}

static int solve(const struct bgw *W, struct qt_ws *ws, const double *beta, const double *y,
                 double Y, const struct qt_mlebg_opts *o, double complex *sigma, unsigned *iters)
{
    size_t ds = W->ds, n = ds + 1, m = W->m, d = W->d;
    double *w = qt_ws_alloc_n(ws, m, sizeof(double)), *bp = qt_ws_alloc_n(ws, m, sizeof(double));
    double complex *om0 = qt_ws_alloc_n(ws, n * n, sizeof(*om0));
    double complex *om = qt_ws_alloc_n(ws, n * n, sizeof(*om));
    double complex *T = qt_ws_alloc_n(ws, d * ds, sizeof(*T));
    struct bgctx c = {.W = W,
                      .n = n,
                      .w = w,
                      .bp = bp,
                      .gap_tol = o->gap_tol,
                      .gap = INFINITY,
                      .polish = QT_POLISH_INIT(false)};
    struct qt_newton_problem pb = {n,          m,      &c,           bg_forward,
                                   bg_adjoint, bg_phi, bg_converged, .backtrack = false};
    struct qt_newton_result nr;
    int r;

    c.x = qt_ws_alloc_n(ws, ds * ds, sizeof(*c.x));
    c.tmp = qt_ws_alloc_n(ws, ds * ds, sizeof(*c.tmp));
    c.T = qt_ws_alloc_n(ws, ds * ds, sizeof(*c.T));
    c.z = qt_ws_alloc_n(ws, m, sizeof(*c.z));
    c.lam = qt_ws_alloc_n(ws, ds, sizeof(double));
    c.Xd = qt_ws_alloc_n(ws, d * d, sizeof(*c.Xd));
    c.Td = qt_ws_alloc_n(ws, d * ds, sizeof(*c.Td));
    if (!w || !bp || !om0 || !om || !T || !c.x || !c.tmp || !c.T || !c.z || !c.lam || !c.Xd ||
        !c.Td)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++) {
        w[a] = y[a] / Y;
        bp[a] = beta[a] / Y;
    }
    /* Start at s = (Y / ds) I, Tr s = Y (the optimum's trace when beta = 0). */
    memset(om0, 0, n * n * sizeof(*om0));
    for (size_t i = 0; i < ds; i++)
        om0[i + n * i] = 1.0 / (TRACE_CAP * (double)ds);
    om0[ds + n * ds] = 1.0 - 1.0 / TRACE_CAP;
    r = qt_newton_solve(&pb, ws, om0, o->max_iter, om, &nr);
    if (r < 0)
        return r;
    *iters = nr.iterations;
    sigma_from_omega(W, n, Y, om, c.x, T, sigma);
    return 0;
}

/* Polishing in the original coordinates (d <= POLISH_MAX_D). The solver works on the whitened
 * elements, rounded once, so its optimum is that of a model a few eps away, and the first-order
 * certificate sees that as a gap of ~10 eps Y (1e-8 at 10^7 counts). Newton steps of L on the
 * exact model, with the gradient in extended precision, remove it: over all Hermitian
 * matrices for an interior optimum, and over the face {V S V^H : S >= 0} of the cone for a
 * rank-deficient one (V = the eigenvectors of sigma above a relative threshold; a few
 * thresholds are tried). A step is kept only when it stays PSD and lowers the certificate, so
 * polishing never makes the result worse. */
#define POLISH_MAX_D 16

/* Real coordinates of a Hermitian X: X_ii; X_ij + X_ji; and the antisymmetric imaginary pair
 * (-i at (i, j), +i at (j, i)), for i < j. Tr(F X_k) for Hermitian F: F_ii, 2 Re F_ij,
 * -2 Im F_ij. */
static void coords(size_t d, const double complex *Fa, double *row, size_t ld)
{
    size_t k = 0;

    for (size_t j = 0; j < d; j++) {
        row[ld * k++] = creal(Fa[j + d * j]);
        for (size_t i = 0; i < j; i++) {
            row[ld * k++] = 2.0 * creal(Fa[i + d * j]);
            row[ld * k++] = -2.0 * cimag(Fa[i + d * j]);
        }
    }
}

static void add_step(size_t d, const double *delta, double complex *sigma)
{
    size_t k = 0;

    for (size_t j = 0; j < d; j++) {
        sigma[j + d * j] += delta[k++];
        for (size_t i = 0; i < j; i++) {
            double complex z = delta[k] - I * delta[k + 1];

            sigma[i + d * j] += z;
            sigma[j + d * i] += conj(z);
            k += 2;
        }
    }
}

/* One Newton step of L over the face of V (d x r, orthonormal columns): S = V^H sigma V,
 * S_new = S + argmax of the quadratic model, snew = V S_new V^H. Returns 1 when no PSD step
 * could be made. */
static int newton_step(struct qt_ws *ws, size_t d, size_t m, const double complex *F,
                       const double *beta, const double *y, const double complex *V, size_t r,
                       const double complex *sigma, double complex *snew)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t dd = d * d, rr = r * r;
    double *A = qt_ws_alloc_n(ws, m * rr, sizeof(double));
    double *Hs = qt_ws_alloc_n(ws, rr * rr, sizeof(double));
    double *g = qt_ws_alloc_n(ws, rr, sizeof(double)), *lam = qt_ws_alloc_n(ws, r, sizeof(double));
    double *sw = qt_ws_alloc_n(ws, m, sizeof(double));
    long double *c = qt_ws_alloc_n(ws, m, sizeof(long double));
    double complex *S = qt_ws_alloc_n(ws, rr, sizeof(*S)),
                   *T = qt_ws_alloc_n(ws, d * r, sizeof(*T));
    double complex *Fv = qt_ws_alloc_n(ws, rr, sizeof(*Fv));
    int ret = -ENOMEM;

    if (!A || !Hs || !g || !lam || !sw || !c || !S || !T || !Fv)
        goto out;
    /* S = V^H sigma V and the projected sigma, V S V^H, in snew. */
    qt_zgemm('N', 'N', d, r, d, 1.0, sigma, d, V, d, 0.0, T, d);
    qt_zgemm('C', 'N', r, r, d, 1.0, V, d, T, d, 0.0, S, r);
    qt_mat_hermitise(r, S, S);
    qt_zgemm('N', 'N', d, r, r, 1.0, V, d, S, r, 0.0, T, d);
    qt_zgemm('N', 'C', d, d, r, 1.0, T, d, V, d, 0.0, snew, d);
    qt_mat_hermitise(d, snew, snew);
    ret = 1;
    for (size_t a = 0; a < m; a++) {
        long double mu = trace_ld(dd, F + dd * a, snew) + beta[a];

        qt_zgemm('N', 'N', d, r, d, 1.0, F + dd * a, d, V, d, 0.0, T, d);
        qt_zgemm('C', 'N', r, r, d, 1.0, V, d, T, d, 0.0, Fv, r);
        qt_mat_hermitise(r, Fv, Fv);
        coords(r, Fv, A + a, m);
        if (y[a] > 0.0 && !(mu > 0.0L))
            goto out;
        c[a] = y[a] > 0.0 ? (y[a] - mu) / mu : -1.0L;
        sw[a] = y[a] > 0.0 ? (double)(sqrtl(y[a]) / mu) : 0.0;
    }
    for (size_t k = 0; k < rr; k++) {
        long double acc = 0.0L;

        for (size_t a = 0; a < m; a++)
            acc += c[a] * A[a + m * k];
        g[k] = (double)acc;
    }
    for (size_t k = 0; k < rr; k++) /* Hs = A^T diag(y / mu^2) A, through sqrt weights */
        for (size_t a = 0; a < m; a++)
            A[a + m * k] *= sw[a];
    qt_dgemm('T', 'N', rr, rr, m, 1.0, A, m, A, m, 0.0, Hs, rr);
    if (qt_dposv(rr, 1, Hs, rr, g, rr) != 0)
        goto out; /* the map is not injective on the face: no unique Newton step */
    add_step(r, g, S);
    qt_mat_hermitise(r, S, S);
    qt_zgemm('N', 'N', d, r, r, 1.0, V, d, S, r, 0.0, T, d);
    qt_zgemm('N', 'C', d, d, r, 1.0, T, d, V, d, 0.0, snew, d);
    qt_mat_hermitise(d, snew, snew);
    ret = qt_zheev(ws, false, r, S, r, lam);
    if (ret >= 0)
        ret = lam[0] >= 0.0 ? 0 : 1;
out:
    qt_ws_release(ws, mark);
    return ret;
}

/* Up to three Newton steps on the face of V (the last r columns of U), starting from sigma,
 * while they lower the certificate; the best point goes to best / *gap / *ll. */
static int polish_face(const struct bgw *W, struct qt_ws *ws, const double complex *F,
                       const double *beta, const double *y, double Y, const double complex *V,
                       size_t r, const double complex *sigma, double complex *best, double *gap,
                       double *ll)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t dd = W->d * W->d;
    double complex *cur = qt_ws_alloc_n(ws, dd, sizeof(*cur));
    double complex *sn = qt_ws_alloc_n(ws, dd, sizeof(*sn));
    double cg = INFINITY;
    int ret = 0;

    if (!cur || !sn)
        ret = -ENOMEM;
    else
        memcpy(cur, sigma, dd * sizeof(*cur));
    for (int k = 0; ret >= 0 && k < 3; k++) {
        double g2, ll2;

        ret = newton_step(ws, W->d, W->m, F, beta, y, V, r, cur, sn);
        if (ret != 0)
            break;
        ret = refine_scale(ws, W->d, W->m, F, beta, y, sn);
        if (ret >= 0)
            ret = gap_at(W, ws, F, beta, y, Y, sn, &g2, &ll2);
        if (ret < 0 || !(g2 < cg))
            break;
        cg = g2;
        memcpy(cur, sn, dd * sizeof(*cur));
        if (g2 < *gap) {
            memcpy(best, sn, dd * sizeof(*sn));
            *gap = g2, *ll = ll2;
        }
    }
    qt_ws_release(ws, mark);
    return ret < 0 ? ret : 0;
}

/* The polishing above, over the full space and the faces of sigma's leading eigenvectors. */
static int polish(const struct bgw *W, struct qt_ws *ws, const double complex *F,
                  const double *beta, const double *y, double Y, double complex *sigma, double *gap,
                  double *ll)
{
    static const double tau[] = {0.0, 1e-12, 1e-9, 1e-6, 1e-3};
    struct qt_ws_mark mark = qt_ws_mark(ws);
    size_t d = W->d, last = 0;
    double complex *U = qt_ws_alloc_n(ws, d * d, sizeof(*U));
    double complex *s0 = qt_ws_alloc_n(ws, d * d, sizeof(*s0));
    double *lam = qt_ws_alloc_n(ws, d, sizeof(double));
    int ret = 0;

    if (d > POLISH_MAX_D)
        goto out;
    if (!U || !s0 || !lam) {
        ret = -ENOMEM;
        goto out;
    }
    memcpy(s0, sigma, d * d * sizeof(*s0));
    memcpy(U, sigma, d * d * sizeof(*U));
    ret = qt_zheev(ws, true, d, U, d, lam);
    for (size_t k = 0; ret >= 0 && k < sizeof(tau) / sizeof(tau[0]); k++) {
        size_t r = 0;

        for (size_t i = 0; i < d; i++)
            r += tau[k] == 0.0 || lam[i] > tau[k] * lam[d - 1];
        if (r == 0 || r == last)
            continue;
        last = r;
        ret = polish_face(W, ws, F, beta, y, Y, U + d * (d - r), r, s0, sigma, gap, ll);
    }
out:
    qt_ws_release(ws, mark);
    return ret < 0 ? ret : 0;
}

/* Below this certificate (log-likelihood units) the estimate is not polished. */
#define POLISH_SKIP 1e-10

/* The point as reported: rho = sigma / Tr sigma (I/d when sigma = 0: the backgrounds explain
 * the data), intensity Tr sigma, and the certificate of intensity * rho (rounding apart from
 * sigma), which sigma becomes. */
static int report(const struct bgw *W, struct qt_ws *ws, const double complex *F,
                  const double *beta, const double *y, double Y, double complex *sigma,
                  double complex *rho, double *ret_tr, double *g, double *ll)
{
    size_t d = W->d;
    double tr = 0.0;

    for (size_t i = 0; i < d; i++)
        tr += creal(sigma[i + d * i]);
    if (!(tr > 0.0)) {
        tr = 0.0;
        maximally_mixed(d, rho);
    } else {
        for (size_t i = 0; i < d * d; i++)
            rho[i] = sigma[i] / tr;
    }
    for (size_t i = 0; i < d * d; i++)
        sigma[i] = tr * rho[i];
    *ret_tr = tr;
    return gap_at(W, ws, F, beta, y, Y, sigma, g, ll);
}

int qt_mlebg(size_t d, size_t m, const double complex *F, const double *beta, const double *y,
             const struct qt_mlebg_opts *o, struct qt_ws *ws, double complex *rho,
             double *intensity, double *gap, double *loglik, unsigned *iters)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    struct qt_mlebg_opts def;
    struct bgw W;
    double Y, g = 0.0, ll = 0.0, tr = 0.0;
    unsigned it = 0;
    double complex *sigma;
    bool skipped;
    int r = validate(d, m, F, beta, y, &Y);

    if (!o) {
        qt_mlebg_opts_init(&def);
        o = &def;
    }
    if (r < 0)
        goto out;
    W.map = o->map && o->map->d == d && o->map->m == m ? o->map : NULL;
    r = whiten(ws, d, m, F, &W);
    if (r < 0)
        goto out;
    sigma = qt_ws_alloc_n(ws, d * d, sizeof(*sigma));
    if (!sigma) {
        r = -ENOMEM;
        goto out;
    }
    if (Y == 0.0) { /* L = -sum_a mu_a: sigma = 0 is optimal */
        maximally_mixed(d, rho);
        for (size_t a = 0; a < m; a++)
            ll -= beta[a];
        goto done;
    }
    r = solve(&W, ws, beta, y, Y, o, sigma, &it);
    if (r >= 0)
        r = refine_scale(ws, d, m, F, beta, y, sigma);
    if (r >= 0)
        r = gap_at(&W, ws, F, beta, y, Y, sigma, &g, &ll);
    /* Polishing removes a rounding-level gap; a certificate already below POLISH_SKIP
     * (log-likelihood units) is left alone, which saves its O(m d^4) Hessians, unless the point
     * as reported (rounded once more) has lost that. */
    skipped = g <= POLISH_SKIP;
    if (r >= 0 && !skipped)
        r = polish(&W, ws, F, beta, y, Y, sigma, &g, &ll);
    if (r >= 0)
        r = report(&W, ws, F, beta, y, Y, sigma, rho, &tr, &g, &ll);
    if (r >= 0 && skipped && !(g <= 10 * POLISH_SKIP)) {
        r = polish(&W, ws, F, beta, y, Y, sigma, &g, &ll);
        if (r >= 0)
            r = report(&W, ws, F, beta, y, Y, sigma, rho, &tr, &g, &ll);
    }
    if (r < 0)
        goto out;
    r = g <= o->gap_tol * Y ? 0 : QT_ENOCONV;
done:
    if (intensity)
        *intensity = tr;
    if (gap)
        *gap = g;
    if (loglik)
        *loglik = ll;
    if (iters)
        *iters = it;
out:
    qt_ws_release(ws, mark);
    return r;
}
