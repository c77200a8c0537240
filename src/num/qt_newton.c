/* Trust-region Newton-CG on the factorisation rho = A A^H / Tr(A A^H).
 *
 * With t = |A|_F^2 (kept at 1 between iterations), G = sum_a phi'_a E_a and s = Re Tr(G rho):
 *   dF/dconj(A) = (G - s I) A / t,
 * and along a direction V, with dt = 2 Re <A, V> and dq = forward((V A^H + A V^H)/t) - q dt/t:
 *   D[dF/dconj(A)][V] = (adjoint(phi'' dq) - ds I) A / t + (G - s I)(V / t - A dt / t^2),
 *   ds = sum_a dq_a (phi''_a q_a + phi'_a).
 * Real gradient and Hessian are twice these, for the real inner product Re Tr(X^H Y). */
#include "qt_newton.h"

#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "base/qt_err.h"
#include "qt_lapack.h"
#include "qt_mat.h"

/* Weight of I/n mixed into the start so that every probability is positive. */
#define START_MIX 1e-9
/* Conjugate-gradient steps per Newton step at most. */
#define MAX_CG 250
/* CG steps per Newton step at most once a step's change of F was at rounding level (see
 * steihaug). Measured on qtomo-bench mle pauli 128 mixed: successful steps there take 20-50 CG
 * steps; runs that needed more had drifted into the flat gauge directions. */
#define NOISY_CG 60
/* Floor of the CG forcing term: solve the Newton system to this relative residual at least
 * (the usual sqrt|g| forcing asks for more than CG delivers in floating point on the
 * ill-conditioned systems near rank-deficient optima, and then runs to MAX_CG for nothing;
 * with the floor the outer iteration still converges linearly at rate ~1e-2 near the end). */
#define CG_FORCING_FLOOR 1e-2
/* Regularisation of the column preconditioner, relative to the largest column (see
 * canonicalise). Measured on qtomo-bench mle (mub 16, nopovm 16, pauli 32): 1 is close to no
 * preconditioning, 1e-2 is 2-3x faster than that, 1e-1 and 1e-3 leave stalls, 1e-6 is 10x
 * slower (the scaled system is then as ill-conditioned as the unscaled one, the other way). */
#define PRECOND_TAU 1e-2
/* Accepted steps at rounding level without a new least gap in rho before only a lower gap is
 * accepted (see tr_step). */
#define STALE_STEPS 3
/* A step at rounding level whose model reduction is below this fraction of an ulp of F is
 * followed by an escape (see tr_step), and escapes follow each other at most ESCAPE_CHAIN times
 * while each lowers the gap in rho (see qt_newton_solve). */
#define SUBULP       1e-2
#define ESCAPE_CHAIN 8
/* Objective evaluations along a rejected step at most, before a new CG solve (see backtrack). */
#define BACKTRACKS 3
/* Columns in weight coordinates (see select_radial): a column whose weight a Newton step
 * multiplied by RADIAL_LO..RADIAL_HI (4/9 where F is quartic in it) and that is below
 * RADIAL_SMALL of the largest is a candidate for the next step; at most RADIAL_CANDIDATES of
 * them (the heaviest) are tested, each with one Hessian-vector product. The quartic column of
 * the slow pauli 8-qubit samples was always the heaviest candidate; testing three cost up to
 * 25 % on small problems (nopovm 8, mub 16) for no fewer iterations. */
#define RADIAL_LO         0.3
#define RADIAL_HI         0.7
#define RADIAL_SMALL      1e-2
#define RADIAL_CANDIDATES 1

struct nt {
    const struct qt_newton_problem *pb;
    struct qt_ws *ws;
    size_t n, nn, m;
    double complex *A, *rho, *G, *GA; /* current iterate; GA = (G - s I) A */
    double *q, *d1, *d2;
    double s, F;
    /* trial point */
    double complex *A2, *rho2;
    double *q2, *e1, *e2;
    double F2;
    /* CG and Hessian-vector scratch */
    double complex *g, *z, *r, *dir, *Hd, *M, *DG, *T;
    double *dq, *c;
    double complex *gs, *sv; /* scaled gradient; scaled CG direction */
    double *sc;              /* column scaling of the CG variables (preconditioner) */
    unsigned evals, hessvecs;
    bool noisy;  /* the last step's change of F was at rounding level */
    bool subulp; /* the last step was at rounding level and its model below SUBULP (tr_step) */
    /* Steps at rounding level (see tr_step): the least gap in rho seen, and how many accepted
     * steps in a row did not take it 10 % lower. */
    double vbest;
    unsigned stale;
    /* Columns in weight coordinates (see select_radial): their weights before the step, c_k
     * (0 for the others) and how many there are; candidates for the next step, heaviest last. */
    double *wb, *rc, *wa; /* wa: the trial's weights (radial_candidates) */
    size_t nradial, *cand, ncand;
};

static double rdot(size_t len, const double complex *x, const double complex *y)
{
    double acc = 0.0;

    for (size_t i = 0; i < len; i++)
        acc += creal(x[i]) * creal(y[i]) + cimag(x[i]) * cimag(y[i]);
    return acc;
}

static void axpy(size_t len, double a, const double complex *x, double complex *y)
{
    for (size_t i = 0; i < len; i++)
        y[i] += a * x[i];
}

/* rho = A A^H / |A|^2 for the given A; returns |A|^2. */
static double make_rho(size_t n, const double complex *A, double complex *rho)
{
    double t = rdot(n * n, A, A);

    qt_zgemm('N', 'C', n, n, n, 1.0 / t, A, n, A, n, 0.0, rho, n);
    qt_mat_hermitise(n, rho, rho);
    return t;
}

/* Objective at A (written to rho, q, F, e1, e2). */
static int evaluate(struct nt *st, const double complex *A, double complex *rho, double *q,
                    double *e1, double *e2, double *F)
{
    int r;

    (void)make_rho(st->n, A, rho);
    r = st->pb->forward(st->pb->ctx, st->ws, rho, q);
    if (r < 0)
        return r;
    st->evals++;
    *F = st->pb->phi(st->pb->ctx, q, e1, e2);
    return 0;
}

/* G, s, GA and the real gradient g = 2 (G - s I) A at the current (normalised) A. */
static int gradient(struct nt *st)
{
    size_t n = st->n;
    int r = st->pb->adjoint(st->pb->ctx, st->ws, st->d1, st->G);

    if (r < 0)
        return r;
    st->s = 0.0;
    for (size_t a = 0; a < st->m; a++)
        st->s += st->d1[a] * st->q[a];
    memcpy(st->T, st->G, st->nn * sizeof(*st->T));
    for (size_t i = 0; i < n; i++)
        st->T[i + n * i] -= st->s;
    qt_zgemm('N', 'N', n, n, n, 1.0, st->T, n, st->A, n, 0.0, st->GA, n);
    for (size_t i = 0; i < st->nn; i++)
        st->g[i] = 2.0 * st->GA[i];
    return 0;
}

/* out = H V (real Hessian applied to V), at the current A with |A| = 1. */
static int hessvec(struct nt *st, const double complex *V, double complex *out)
{
    size_t n = st->n, nn = st->nn;
    double dt = 2.0 * rdot(nn, st->A, V), ds = 0.0;
    int r;

    qt_zgemm('N', 'C', n, n, n, 1.0, V, n, st->A, n, 0.0, st->M, n);
    for (size_t j = 0; j < n; j++) /* M = V A^H + A V^H */
        for (size_t i = j; i < n; i++) {
            double complex z = st->M[i + n * j] + conj(st->M[j + n * i]);

            st->M[i + n * j] = z;
            st->M[j + n * i] = conj(z);
        }
    r = st->pb->forward(st->pb->ctx, st->ws, st->M, st->dq);
    if (r < 0)
        return r;
    for (size_t a = 0; a < st->m; a++) { /* dq is not stored back: one pass less over m */
        double x = st->dq[a] - st->q[a] * dt;

        st->c[a] = st->d2[a] * x;
        ds += x * (st->d2[a] * st->q[a] + st->d1[a]);
    }
    r = st->pb->adjoint(st->pb->ctx, st->ws, st->c, st->DG);
    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        st->DG[i + n * i] -= ds;
    /* out = 2 [DG A + (G - s I) V - GA dt] */
    qt_zgemm('N', 'N', n, n, n, 2.0, st->DG, n, st->A, n, 0.0, out, n);
    memcpy(st->T, st->G, nn * sizeof(*st->T));
    for (size_t i = 0; i < n; i++)
        st->T[i + n * i] -= st->s;
    qt_zgemm('N', 'N', n, n, n, 2.0, st->T, n, V, n, 1.0, out, n);
    axpy(nn, -2.0 * dt, st->GA, out);
    st->hessvecs++;
    return 0;
}

/* tau >= 0 with |z + tau d| = delta. */
static double to_boundary(size_t len, const double complex *z, const double complex *d,
                          double delta)
{
    double zd = rdot(len, z, d), dd = rdot(len, d, d), zz = rdot(len, z, z);
    double disc = zd * zd + dd * (delta * delta - zz);

    return (-zd + sqrt(fmax(disc, 0.0))) / dd;
}

/* out[:, k] = sc[k] x[:, k] (out may be x). */
static void scale_cols(size_t n, const double *sc, const double complex *x, double complex *out)
{
    for (size_t k = 0; k < n; k++)
        for (size_t i = 0; i < n; i++)
            out[i + n * k] = sc[k] * x[i + n * k];
}

/* Rotates A to orthogonal columns (A <- A W with W the eigenvectors of A^H A; rho is
 * unchanged) and sets the CG preconditioner from the column norms c_k: the Hessian's data term
 * scales like c_k along column k, so the CG variables are the columns scaled by
 * sqrt((c_max + tau) / (c_k + tau)); small eigenvalues of rho no longer stall CG. */
static int canonicalise(struct nt *st)
{
    struct qt_ws_mark mark = qt_ws_mark(st->ws);
    size_t n = st->n;
    double *w = qt_ws_alloc_n(st->ws, n, sizeof(double)), cmax = 0.0, tau;
    int r = -ENOMEM;

    if (!w)
        goto out;
    qt_zgemm('C', 'N', n, n, n, 1.0, st->A, n, st->A, n, 0.0, st->M, n);
    r = qt_zheev(st->ws, true, n, st->M, n, w);
    if (r < 0)
        goto out;
    qt_zgemm('N', 'N', n, n, n, 1.0, st->A, n, st->M, n, 0.0, st->T, n);
    memcpy(st->A, st->T, st->nn * sizeof(*st->A));
    for (size_t k = 0; k < n; k++) {
        w[k] = rdot(n, st->A + n * k, st->A + n * k);
        cmax = fmax(cmax, w[k]);
    }
    tau = PRECOND_TAU * cmax;
    for (size_t k = 0; k < n; k++)
        st->sc[k] = sqrt((cmax + tau) / (w[k] + tau));
out:
    qt_ws_release(st->ws, mark);
    return r;
}

/* Newton in weight coordinates for the columns with c_k = rc[k] > 0 (see select_radial): in
 * the scaled CG variables, Hd -= c_k sc_k^2 <e_k, y> e_k with e_k = a_k / |a_k|. */
static void radial_hessian(struct nt *st, const double complex *y, double complex *Hd)
{
    size_t n = st->n;

    for (size_t k = 0; st->nradial && k < n; k++) {
        if (st->rc[k] == 0.0)
            continue;
        const double complex *a = st->A + n * k;
        double f = st->rc[k] * st->sc[k] * st->sc[k] * rdot(n, a, y + n * k) / st->wb[k];

        axpy(n, -f, a, Hd + n * k);
    }
}

/* Steihaug-Toint CG for H p = -g within radius delta. Leaves p in st->z and returns the
 * predicted reduction -(g.p + p.H.p / 2) in *pred.
 *
 * Once F changes only at rounding level (st->noisy) the gradient is as small as the rounding
 * in the Hessian-vector products. Traced on pauli 7-qubit mixed states, CG then finds tiny
 * positive curvature (most likely rounding drift into the flat directions of the
 * factorisation, A -> A U and A -> c A) and walks to the trust-region boundary in 100+ steps
 * along a direction that makes F worse. The step is
 * then rejected, escape() moves a little weight and the cycle repeats (one pauli 7-qubit
 * sample spent 40 such cycles of 134 CG steps). There CG is cut at NOISY_CG steps and keeps
 * its last interior point instead of going to the boundary. */
static int steihaug(struct nt *st, double delta, double *pred)
{
    size_t nn = st->nn;
    double gnorm, rr, tol;
    int r = 0;

    scale_cols(st->n, st->sc, st->g, st->gs);
    gnorm = sqrt(rdot(nn, st->gs, st->gs));
    memset(st->z, 0, nn * sizeof(*st->z));
    memcpy(st->r, st->gs, nn * sizeof(*st->r));
    for (size_t i = 0; i < nn; i++)
        st->dir[i] = -st->gs[i];
    rr = gnorm * gnorm;
    tol = fmax(fmin(0.5, sqrt(gnorm)), CG_FORCING_FLOOR) * gnorm;
    unsigned max_cg = st->noisy ? NOISY_CG : MAX_CG;

    for (unsigned j = 0; j < max_cg && sqrt(rr) > tol; j++) {
        scale_cols(st->n, st->sc, st->dir, st->sv);
        r = hessvec(st, st->sv, st->Hd);
        if (r < 0)
            return r;
        scale_cols(st->n, st->sc, st->Hd, st->Hd);
        radial_hessian(st, st->dir, st->Hd);
        double kappa = rdot(nn, st->dir, st->Hd), alpha = rr / kappa;

        if (!(kappa > 0.0) || rdot(nn, st->z, st->z) + 2 * alpha * rdot(nn, st->z, st->dir) +
                                      alpha * alpha * rdot(nn, st->dir, st->dir) >=
                                  delta * delta) {
            if (st->noisy && j > 0)
                break;
            double tau = to_boundary(nn, st->z, st->dir, delta);

            axpy(nn, tau, st->dir, st->z);
            axpy(nn, tau, st->Hd, st->r);
            break;
        }
        axpy(nn, alpha, st->dir, st->z);
        axpy(nn, alpha, st->Hd, st->r);
        double rr2 = rdot(nn, st->r, st->r);
        for (size_t i = 0; i < nn; i++)
            st->dir[i] = -st->r[i] + (rr2 / rr) * st->dir[i];
        rr = rr2;
    }
    /* With r = g + H p: g.p + p.H.p / 2 = (g.p + p.r) / 2. */
    *pred = -0.5 * (rdot(nn, st->gs, st->z) + rdot(nn, st->z, st->r));
    return r;
}

static int alloc_state(struct nt *st, struct qt_ws *ws)
{
    size_t nn = st->nn, m = st->m;
    double complex **mats[] = {&st->A,  &st->rho, &st->G,  &st->GA,  &st->A2, &st->rho2,
                               &st->g,  &st->z,   &st->r,  &st->dir, &st->Hd, &st->M,
                               &st->DG, &st->T,   &st->gs, &st->sv};
    double **vecs[] = {&st->q, &st->d1, &st->d2, &st->q2, &st->e1, &st->e2, &st->dq, &st->c};

    for (size_t i = 0; i < QT_ARRAY_SIZE(mats); i++)
        if (!(*mats[i] = qt_ws_alloc_n(ws, nn, sizeof(double complex))))
            return -ENOMEM;
    for (size_t i = 0; i < QT_ARRAY_SIZE(vecs); i++)
        if (!(*vecs[i] = qt_ws_alloc_n(ws, m, sizeof(double))))
            return -ENOMEM;
    if (!(st->sc = qt_ws_alloc_n(ws, st->n, sizeof(double))) ||
        !(st->wb = qt_ws_alloc_n(ws, st->n, sizeof(double))) ||
        !(st->rc = qt_ws_alloc_n(ws, st->n, sizeof(double))) ||
        !(st->wa = qt_ws_alloc_n(ws, st->n, sizeof(double))) ||
        !(st->cand = qt_ws_alloc_n(ws, st->n, sizeof(size_t))))
        return -ENOMEM;
    return 0;
}

/* A = V diag(sqrt(lambda)) of (1 - mix) rho0 + mix I/n, so that |A|_F = 1. */
static int start_factor(struct nt *st, const double complex *rho0, double mix)
{
    struct qt_ws_mark mark = qt_ws_mark(st->ws);
    size_t n = st->n;
    double *w = qt_ws_alloc_n(st->ws, n, sizeof(double));
    int r;

    if (!w)
        return -ENOMEM;
    qt_mat_hermitise(n, rho0, st->A);
    r = qt_zheev(st->ws, true, n, st->A, n, w);
    if (r < 0) {
        qt_ws_release(st->ws, mark);
        return r;
    }
    for (size_t k = 0; k < n; k++) {
        double l = (1.0 - mix) * fmax(w[k], 0.0) + mix / (double)n;

        for (size_t i = 0; i < n; i++)
            st->A[i + n * k] *= sqrt(l);
    }
    double t = rdot(st->nn, st->A, st->A);
    for (size_t i = 0; i < st->nn; i++)
        st->A[i] /= sqrt(t);
    qt_ws_release(st->ws, mark);
    return 0;
}

/* Accepts the trial point: A <- A2 / |A2|, with its rho, q and derivatives. */
static void accept(struct nt *st)
{
    double t = rdot(st->nn, st->A2, st->A2);
    double complex *tm;
    double *tv;

    for (size_t i = 0; i < st->nn; i++)
        st->A[i] = st->A2[i] / sqrt(t);
    tm = st->rho, st->rho = st->rho2, st->rho2 = tm;
    tv = st->q, st->q = st->q2, st->q2 = tv;
    tv = st->d1, st->d1 = st->e1, st->e1 = tv;
    tv = st->d2, st->d2 = st->e2, st->e2 = tv;
    st->F = st->F2;
}

/* Max entry of the real gradient 2 (G - s I) A / t at the trial point A2 (its q2 and e1 are
 * current), to judge steps whose change of F is at rounding level. Leaves the trial's G - s I
 * in st->DG. */
static int trial_gnorm(struct nt *st, double *ret)
{
    size_t n = st->n;
    double s = 0.0, t = rdot(st->nn, st->A2, st->A2), mx = 0.0;
    int r = st->pb->adjoint(st->pb->ctx, st->ws, st->e1, st->DG);

    if (r < 0)
        return r;
    for (size_t a = 0; a < st->m; a++)
        s += st->e1[a] * st->q2[a];
    for (size_t i = 0; i < n; i++)
        st->DG[i + n * i] -= s;
    qt_zgemm('N', 'N', n, n, n, 2.0 / t, st->DG, n, st->A2, n, 0.0, st->M, n);
    for (size_t i = 0; i < st->nn; i++)
        mx = fmax(mx, fmax(fabs(creal(st->M[i])), fabs(cimag(st->M[i]))));
    *ret = mx;
    return 0;
}

/* -lambda_min(X - shift I): with X = G and shift = s = Tr(G rho), the gap of the convex
 * problem in rho (F - min F <= Tr(G rho) - lambda_min(G), as in Frank-Wolfe), which unlike the
 * gradient in A also sees the directions that A does not span. Both points of a comparison
 * go through the same formula (a trial's G - s I comes with shift 0). */
static int rho_gap(struct nt *st, const double complex *X, double shift, double *ret)
{
    struct qt_ws_mark mark = qt_ws_mark(st->ws);
    double *w = qt_ws_alloc_n(st->ws, st->n, sizeof(double));
    double complex *Y = qt_ws_alloc_n(st->ws, st->nn, sizeof(*Y));
    int r = -ENOMEM;

    if (w && Y) {
        memcpy(Y, X, st->nn * sizeof(*Y));
        for (size_t i = 0; i < st->n; i++)
            Y[i + st->n * i] -= shift;
        r = qt_zheev(st->ws, false, st->n, Y, st->n, w);
        if (r >= 0)
            *ret = -w[0];
    }
    qt_ws_release(st->ws, mark);
    return r;
}

static double max_abs(size_t len, const double complex *x)
{
    double mx = 0.0;

    for (size_t i = 0; i < len; i++)
        mx = fmax(mx, fmax(fabs(creal(x[i])), fabs(cimag(x[i]))));
    return mx;
}

/* F at (1 - alpha) q + alpha qv, with the first two derivatives in alpha. */
static double line_eval(struct nt *st, const double *qv, double alpha, double *f1, double *f2)
{
    double F;

    for (size_t a = 0; a < st->m; a++)
        st->q2[a] = (1.0 - alpha) * st->q[a] + alpha * qv[a];
    F = st->pb->phi(st->pb->ctx, st->q2, st->e1, st->e2);
    *f1 = *f2 = 0.0;
    for (size_t a = 0; a < st->m; a++) {
        double dq = qv[a] - st->q[a];

        *f1 += st->e1[a] * dq;
        *f2 += st->e2[a] * dq * dq;
    }
    return F;
}

/* Minimises the convex F((1 - alpha) rho + alpha v v^H) over alpha in [0, 1) by safeguarded
 * Newton steps on a shrinking bracket. F'(0) < 0 on entry. */
static double line_search(struct nt *st, const double *qv)
{
    double lo = 0.0, hi = 1.0 - 1e-12, alpha = 0.5, f1, f2;

    for (int it = 0; it < 60 && hi - lo > 1e-15; it++) {
        double F = line_eval(st, qv, alpha, &f1, &f2);

        if (!isfinite(F) || f1 > 0.0)
            hi = alpha;
        else
            lo = alpha;
        if (isfinite(F) && fabs(f1) <= 1e-15 * (1.0 + fabs(F)))
            break;
        double next = isfinite(F) && f2 > 0.0 ? alpha - f1 / f2 : 0.5 * (lo + hi);
        alpha = next > lo && next < hi ? next : 0.5 * (lo + hi);
    }
    return lo > 0.0 ? lo : alpha;
}

/* When A is stationary but rho is not optimal: the factorisation hides directions that A does
 * not span (their gradient in A is zero), though the optimality condition in rho,
 * G - s I >= 0, fails there. Move weight onto the eigenvectors v_k of G whose eigenvalues
 * lambda_k lie below s, in proportion to the violations s - lambda_k:
 * rho <- (1 - alpha) rho + alpha sum_k c_k v_k v_k^H with the best alpha, and refactor A. Sets
 * *moved. On pauli 8-qubit mixed states ~60 directions violate at once; moving onto the worst
 * one alone (a Frank-Wolfe step) took 5-30 % off the gap per escape, and one sample spent two
 * thirds of its time in such cycles. */
static int escape(struct nt *st, bool *moved, double *v0)
{
    struct qt_ws_mark mark = qt_ws_mark(st->ws);
    size_t n = st->n, nn = st->nn, k;
    double *w = qt_ws_alloc_n(st->ws, n, sizeof(double));
    double *qv = qt_ws_alloc_n(st->ws, st->m, sizeof(double));
    double thr = 1e-14 * (1.0 + fabs(st->s)), tot = 0.0;
    int r = -ENOMEM;

    *moved = false;
    st->ncand = 0; /* A is refactored: the columns change */
    if (!w || !qv)
        goto out;
    memcpy(st->T, st->G, nn * sizeof(*st->T));
    r = qt_zheev(st->ws, true, n, st->T, n, w);
    if (r >= 0)
        *v0 = st->s - w[0];
    if (r < 0 || !(st->s - w[0] > thr))
        goto out;
    for (k = 0; k < n && st->s - w[k] > thr; k++) /* ascending: the violations come first */
        tot += st->s - w[k];
    for (size_t j = 0; j < k; j++) {
        double c = sqrt((st->s - w[j]) / tot);

        for (size_t i = 0; i < n; i++)
            st->T[i + n * j] *= c;
    }
    qt_zgemm('N', 'C', n, n, k, 1.0, st->T, n, st->T, n, 0.0, st->M, n);
    r = st->pb->forward(st->pb->ctx, st->ws, st->M, qv);
    if (r < 0)
        goto out;
    double alpha = line_search(st, qv);
    for (size_t i = 0; i < nn; i++)
        st->rho2[i] = (1.0 - alpha) * st->rho[i] + alpha * st->M[i];
    r = start_factor(st, st->rho2, 0.0);
    if (r >= 0)
        r = evaluate(st, st->A, st->rho, st->q, st->d1, st->d2, &st->F);
    *moved = r >= 0;
out:
    qt_ws_release(st->ws, mark);
    return r;
}

/* Steps back along a rejected trust-region step (its scaled CG solution in st->z, applied to A
 * as st->sv) instead of solving a new model at a smaller radius: tau from the quadratic through
 * F, its slope g.z and the last trial, kept within [0.1, 0.5] of the last tau, at most
 * BACKTRACKS times (trust-region backtracking as in Nocedal and Yuan, 1998). A trial costs one
 * objective evaluation; a new CG solve cost 40-130 Hessian-vector products on pauli 8-qubit
 * mixed states, where half the steps before the end were rejected. Leaves the last trial in
 * A2, rho2, q2, e1, e2 and F2, its ratio of actual to predicted reduction in *ratio and its
 * tau in *tau. */
static int backtrack(struct nt *st, double pred, double *ratio, double *tau)
{
    size_t nn = st->nn;
    double gz = rdot(nn, st->gs, st->z), zhz = -2.0 * (pred + gz), t = 1.0;
    int r = 0;

    for (int k = 0; k < BACKTRACKS; k++) {
        double c = isfinite(st->F2) ? (st->F2 - st->F - t * gz) / (t * t) : INFINITY;
        double next = c > 0.0 ? -gz / (2.0 * c) : 0.5 * t;

        t = fmin(fmax(next, 0.1 * t), 0.5 * t);
        memcpy(st->A2, st->A, nn * sizeof(*st->A2));
        axpy(nn, t, st->sv, st->A2);
        r = evaluate(st, st->A2, st->rho2, st->q2, st->e1, st->e2, &st->F2);
        if (r < 0)
            break;
        /* The model's reduction -(t g.z + t^2 z.H.z / 2) is positive on (0, 1]: a quadratic that
         * is 0 at 0 with slope -g.z > 0 there (CG's iterates descend) and pred > 0 at 1. */
        double p = -(t * gz + 0.5 * t * t * zhz);
        *ratio = isfinite(st->F2) && p > 0.0 ? (st->F - st->F2) / p : -1.0;
        if (*ratio > 0.1 || !(p > 1024.0 * DBL_EPSILON * fabs(st->F)))
            break;
    }
    *tau = t;
    return r;
}

/* Chooses the columns whose step is taken in weight coordinates w_k = |a_k|^2 rather than in
 * a_k, and sets st->wb (weights before the step) and st->rc.
 *
 * Along a column, F(a) = f(|a|^2). Where f is quadratic about a weight w* << |a|^2, F is
 * quartic in a and Newton in a shrinks the weight by 4/9 per step (pauli 8-qubit pure seed 2026
 * sample 11: one column from 2e-5 to 2e-10 over ten steps of 60 Hessian-vector products, the
 * gap in rho halving with it and the ratio of actual to predicted reduction 1.2 = 0.80 / 0.67,
 * the quartic's); Newton in w takes it to w* in one step. Newton in w is Newton in a with the
 * Hessian's radial entry lowered by c = g_r / r (g_r the gradient along e = a / r, r = |a|) and
 * the radius updated by w <- w + 2 r p_r. It is the better model where h_rr = e.H.e exceeds
 * 2c: f'' w > f' / 2, i.e. curvature in w dominates (h_rr / c is 3 for a pure quartic and 1
 * for a column that f pushes to zero with positive slope, where Newton in a is exact and
 * Newton in w has no curvature). Candidates come from the last accepted Newton step
 * (st->cand, see radial_candidates) and cost one Hessian-vector product each. */
static int select_radial(struct nt *st)
{
    size_t n = st->n, nn = st->nn;
    int r = 0;

    st->nradial = 0;
    for (size_t k = 0; k < n; k++) {
        st->wb[k] = rdot(n, st->A + n * k, st->A + n * k);
        st->rc[k] = 0.0;
    }
    for (size_t j = 0; j < st->ncand && j < RADIAL_CANDIDATES; j++) {
        size_t k = st->cand[st->ncand - 1 - j];
        const double complex *a = st->A + n * k;
        double rad = sqrt(st->wb[k]), c, h;

        if (!(rad > 0.0))
            continue;
        c = rdot(n, st->g + n * k, a) / st->wb[k]; /* g_r / r */
        if (!(c > 0.0))
            continue; /* only columns that F shrinks */
        memset(st->sv, 0, nn * sizeof(*st->sv));
        for (size_t i = 0; i < n; i++)
            st->sv[i + n * k] = a[i] / rad;
        r = hessvec(st, st->sv, st->Hd);
        if (r < 0)
            break;
        h = rdot(nn, st->sv, st->Hd);
        if (h > 2.0 * c) {
            st->rc[k] = c;
            st->nradial++;
        }
    }
    st->ncand = 0;
    return r;
}

/* The trial A2 = A + sv with the radii of the columns in weight coordinates set from
 * w <- max(w + 2 r p_r, 0), where p_r is the step along e = a / r: a model in w that crosses
 * zero puts the least F on the boundary w = 0 (measured against a floor of w / 10 there:
 * pauli 8-qubit pure seed 2026 and 7, 12 samples each, 437 against 463 iterations in all). */
static void radial_update(struct nt *st)
{
    size_t n = st->n;

    for (size_t k = 0; st->nradial && k < n; k++) {
        if (st->rc[k] == 0.0)
            continue;
        const double complex *a = st->A + n * k;
        double w = st->wb[k], rad = sqrt(w), pr = rdot(n, a, st->sv + n * k) / rad;
        double rn = sqrt(fmax(w + 2.0 * rad * pr, 0.0));

        axpy(n, (rn - rad - pr) / rad, a, st->A2 + n * k);
    }
}

/* After an accepted Newton step (trial in A2): the columns whose weight it multiplied by
 * RADIAL_LO..RADIAL_HI become candidates for the next step, by their index in the next
 * canonical order (ascending weight; canonicalise keeps nearly orthogonal columns in place). */
static void radial_candidates(struct nt *st)
{
    size_t n = st->n;
    double wmax = 0.0, t = rdot(st->nn, st->A2, st->A2);

    st->ncand = 0;
    for (size_t k = 0; k < n; k++) {
        wmax = fmax(wmax, st->wb[k]);
        st->wa[k] = rdot(n, st->A2 + n * k, st->A2 + n * k) / t;
    }
    for (size_t k = 0; k < n; k++) {
        double wk = st->wb[k], wa = st->wa[k];

        if (!(wk < RADIAL_SMALL * wmax && wk > 1e-14 * wmax && wa > RADIAL_LO * wk &&
              wa < RADIAL_HI * wk))
            continue;
        size_t rank = 0;
        for (size_t j = 0; j < n; j++)
            rank += st->wa[j] < wa || (st->wa[j] == wa && j < k);
        st->cand[st->ncand++] = rank;
    }
    /* heaviest last (select_radial takes them from the end) */
    for (size_t i = 1; i < st->ncand; i++)
        for (size_t j = i; j > 0 && st->cand[j - 1] > st->cand[j]; j--) {
            size_t x = st->cand[j];

            st->cand[j] = st->cand[j - 1];
            st->cand[j - 1] = x;
        }
}

/* One trust-region step. Returns 1 when the region collapsed (stall), 0 otherwise; sets *stuck
 * when a step at rounding level was rejected (neither measure below improved) or its model
 * promised less than SUBULP of an ulp of F. */
static int tr_step(struct nt *st, double gnorm, double *delta, bool *stuck, int *err)
{
    size_t nn = st->nn;
    double pred, ared, ratio, plen;

    *err = st->pb->radial ? select_radial(st) : 0;
    if (*err >= 0)
        *err = steihaug(st, *delta, &pred);
    if (*err < 0)
        return 0;
    plen = sqrt(rdot(nn, st->z, st->z));
    bool interior = plen < 0.99 * *delta;
    memcpy(st->A2, st->A, nn * sizeof(*st->A2));
    scale_cols(st->n, st->sc, st->z, st->sv);
    axpy(nn, 1.0, st->sv, st->A2);
    radial_update(st);
    *err = evaluate(st, st->A2, st->rho2, st->q2, st->e1, st->e2, &st->F2);
    if (*err < 0)
        return 0;
    ared = st->F - st->F2;
    ratio = isfinite(st->F2) && pred > 0.0 ? ared / pred : -1.0;
    /* At rounding level the change of F is noise: judge the step by F not getting worse and by
     * a first-order measure it improves, the gradient in A (Newton steps near the optimum
     * shrink it quadratically) or the gap in rho. With the gradient alone, on pauli 8-qubit
     * mixed states, steps after an escape were rejected though they took the gap down, and
     * escapes and rejected steps alternated for 45 s at a gap of ~1e-9. */
    bool noise = !(pred > 1024.0 * DBL_EPSILON * fabs(st->F));
    if (isfinite(st->F2) && pred > 0.0 && noise) {
        double g2, v, v2;

        *err = trial_gnorm(st, &g2);
        if (*err >= 0)
            *err = rho_gap(st, st->DG, 0.0, &v2);
        if (*err >= 0)
            *err = rho_gap(st, st->G, st->s, &v);
        if (*err < 0)
            return 0;
        /* Either measure alone can cycle: on pauli 8-qubit mixed seed 2026 sample 8, steps took
         * the gap from 2.7e-10 to 1.8e-10 and back, each lowering one measure, for 500
         * iterations. After STALE_STEPS accepted steps without a new least gap, only a lower
         * gap is accepted, which cannot cycle. */
        bool better = st->stale >= STALE_STEPS ? v2 < v : g2 < gnorm || v2 < v;
        /* A reduction that the model predicted (to a factor 2) and that is 64 ulp of F or more
         * is no rounding (F is a compensated sum, good to a few ulp): take the step, which
         * lowers F and so cannot cycle. On pauli 8-qubit mixed seed 2026 sample 11 steps
         * predicting 1.30e-12 (1020 ulp of F) reduced F by 1.36e-12 every time, yet were
         * rejected for moving neither measure; escapes and such steps then alternated at gaps
         * of 4e-9-4e-8 to the iteration limit. */
        if (pred > 64.0 * DBL_EPSILON * fabs(st->F) && ratio > 0.5 && ratio < 2.0)
            better = true;
        ratio = better && ared >= -64.0 * DBL_EPSILON * fabs(st->F) ? 1.0 : -1.0;
        if (ratio > 0.0) {
            st->stale = v2 < 0.9 * st->vbest ? 0 : st->stale + 1;
            st->vbest = fmin(st->vbest, v2);
        }
    }
    bool back = st->pb->backtrack && !noise && !(ratio > 1e-4) && pred > 0.0;
    if (back) {
        double tau;

        *err = backtrack(st, pred, &ratio, &tau);
        if (*err < 0)
            return 0;
        plen *= tau;
    }
    if (back)
        *delta = ratio > 1e-4 ? plen : 0.25 * plen;
    else if (ratio < 0.25)
        *delta = 0.25 * plen;
    else if (ratio > 0.75 && plen >= 0.99 * *delta)
        *delta = fmin(2.0 * *delta, 4.0);
    if (ratio > 1e-4) {
        /* a Newton step: inside the region, or one the model predicted well */
        if (st->pb->radial && !back && (interior || ratio > 0.75))
            radial_candidates(st);
        accept(st);
    }
    *stuck = noise && !(ratio > 1e-4);
    /* A model that promises less than SUBULP of an ulp of F says that A can do no more, whether
     * the step was taken or not: escape next. On pauli 8-qubit mixed seed 2026 sample 8 such
     * steps cost 61 Hessian-vector products each; the last 13 of them moved the gap in rho
     * around between 1.4e-10 and 3.6e-10 while the escapes between them took it down. */
    st->subulp = noise && !(pred > SUBULP * DBL_EPSILON * fabs(st->F));
    *stuck = *stuck || st->subulp;
    st->noisy = noise;
    return *delta < 1e-14;
}

int qt_newton_solve(const struct qt_newton_problem *pb, struct qt_ws *ws,
                    const double complex *rho0, unsigned max_iterations, double complex *rho,
                    struct qt_newton_result *ret)
{
    struct qt_ws_mark mark = qt_ws_mark(ws);
    struct nt st = {
        .pb = pb, .ws = ws, .n = pb->n, .nn = pb->n * pb->n, .m = pb->m, .vbest = INFINITY};
    struct qt_newton_result res = {QT_NEWTON_MAX_ITER, 0, 0, 0, NAN, NAN};
    double delta = 0.5;
    bool stuck = false;
    bool chain_next = false; /* see ESCAPE_CHAIN */
    unsigned chain = 0;
    double gn_esc = 0.0, v_esc = 0.0; /* gradient in A and gap in rho before the last escape */
    int r;

    r = alloc_state(&st, ws);
    if (r >= 0)
        r = start_factor(&st, rho0, START_MIX);
    if (r >= 0)
        r = evaluate(&st, st.A, st.rho, st.q, st.d1, st.d2, &st.F);
    if (r >= 0 && !isfinite(st.F))
        r = QT_EOPTION;
    for (; r >= 0; res.iterations++) {
        r = canonicalise(&st);
        if (r >= 0)
            r = gradient(&st);
        if (r < 0)
            break;
        res.gnorm = max_abs(st.nn, st.g);
        if (pb->converged && pb->converged(pb->ctx, ws, st.rho, st.q, st.F, st.G, res.gnorm,
                                           st.hessvecs + st.evals)) {
            res.status = QT_NEWTON_CONVERGED;
            break;
        }
        if (res.iterations >= max_iterations)
            break;
        /* After an escape from a step below SUBULP: escape again, without a step in A between,
         * while each escape takes at least 5 % off the gap in rho and leaves the gradient in A
         * below twice what it was (nothing new for a step in A to do), at most ESCAPE_CHAIN
         * times in a row. Unconditional chains zigzagged (gaps between 1e-9 and 7e-9). */
        if (chain_next) {
            double v;

            chain_next = false;
            r = rho_gap(&st, st.G, st.s, &v);
            if (r < 0)
                break;
            if (res.gnorm < 2.0 * gn_esc && v < 0.95 * v_esc && chain < ESCAPE_CHAIN) {
                stuck = true;
                chain++;
            } else
                chain = 0;
        }
        /* Newton can do no more in A: escape along a direction A misses, if rho needs one. */
        if (stuck) {
            bool moved, sub = st.subulp || chain > 0;

            gn_esc = res.gnorm;
            r = escape(&st, &moved, &v_esc);
            if (r < 0)
                break;
            if (moved) {
                stuck = false;
                delta = 0.5;
                chain_next = sub;
                continue;
            }
            chain = 0;
            if (delta < 1e-14) {
                res.status = QT_NEWTON_STALLED;
                break;
            }
        }
        bool collapsed = tr_step(&st, res.gnorm, &delta, &stuck, &r);
        stuck |= collapsed;
    }
    if (st.rho)
        memcpy(rho, st.rho, st.nn * sizeof(*rho));
    res.F = st.F;
    res.evaluations = st.evals;
    res.hessvecs = st.hessvecs;
    *ret = res;
    qt_ws_release(ws, mark);
    return r < 0 ? r : 0;
}
