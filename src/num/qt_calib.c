/* Detector calibration by Poisson maximum likelihood (EM), with Fisher-information errors. */
#include "qt_calib.h"

#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_ws.h"
#include "num/qt_lapack.h"

/* Expected counts below this are taken at it in the Fisher information. */
#define FISHER_MU_FLOOR 1.0

/* A parameter's scaled inverse-Fisher variance beyond this means it is not determined. */
#define FISHER_MAX_VAR 1e12

/* Relative column norm below which a column of P_g is taken as dependent on the others. */
#define RANK_TOL 1e-9

struct fit {
    const struct qt_calib_input *in;
    size_t m, J, G, nK, n_lit;
    unsigned nq;          /* qubit mode: the qubits (K = 2 x 2 per qubit at K + 4q), else 0 */
    size_t n_gauge;       /* exact degeneracies: nq in qubit mode, else 1 */
    size_t *grp, *loc;    /* m: group and local index of each outcome */
    double *p;            /* m x J: p_jb (0 for dark runs) */
    size_t n_th;          /* nK + m + J: the parameter vector theta = [K | beta | I] */
    double *th;           /* theta; K, bg and inten point into it */
    double *K;            /* nK: per group k x k column-major */
    double *bg;           /* m */
    double *inten;        /* J */
    double *N;            /* n_th: each parameter's regressor sum (the counts it drives per unit) */
    double *t0, *t1, *t2; /* n_th: SQUAREM's iterates */
    double *s;            /* m x J: (K_g p_j)_a */
    double *mu;           /* m x J */
    double *w;            /* m x J: y / mu */
    double *den;          /* m: sum_j I_j p_jb */
    struct qt_calib *cal;
};

void qt_calib_free(struct qt_calib *cal)
{
    if (!cal)
        return;
    free(cal->gk);
    free(cal->gpos);
    free(cal->gidx);
    free(cal->goff);
    free(cal->eff);
    free(cal->eff_se);
    free(cal->cross);
    free(cal->cross_se);
    free(cal->bg);
    free(cal->bg_se);
    free(cal->intensity);
    free(cal->mu);
    free(cal->resid);
    free(cal->qeff);
    free(cal->qeff_se);
    free(cal->qcross);
    free(cal->qcross_se);
    free(cal);
}

static void fit_done(struct fit *f)
{
    free(f->grp);
    free(f->loc);
    free(f->p);
    free(f->th);
    free(f->N);
    free(f->t0);
    free(f->t1);
    free(f->t2);
    free(f->s);
    free(f->mu);
    free(f->w);
    free(f->den);
    qt_calib_free(f->cal);
}

static bool is_dark(const struct fit *f, size_t j)
{
    return f->in->dark && f->in->dark[j];
}

/* The group layout of struct qt_detector, from the design's group ids. */
static int layout(struct fit *f)
{
    const struct qt_design *des = f->in->des;
    struct qt_calib *c = f->cal;
    size_t m = f->m, G = f->G;

    c->gk = calloc(G, sizeof(size_t));
    c->gpos = calloc(G + 1, sizeof(size_t));
    c->gidx = calloc(m, sizeof(size_t));
    c->goff = calloc(G + 1, sizeof(size_t));
    f->grp = calloc(m, sizeof(size_t));
    f->loc = calloc(m, sizeof(size_t));
    if (!c->gk || !c->gpos || !c->gidx || !c->goff || !f->grp || !f->loc)
        return -ENOMEM;
    for (size_t a = 0; a < m; a++) {
        f->grp[a] = des->groups[a];
        f->loc[a] = c->gk[f->grp[a]]++;
    }
    for (size_t g = 0; g < G; g++) {
        c->gpos[g + 1] = c->gpos[g] + c->gk[g];
        c->goff[g + 1] = c->goff[g] + c->gk[g] * c->gk[g];
    }
    for (size_t a = 0; a < m; a++)
        c->gidx[c->gpos[f->grp[a]] + f->loc[a]] = a;
    f->nK = f->nq ? 4 * (size_t)f->nq : c->goff[G];
    return 0;
}

static int check_counts(const struct fit *f, struct qt_diag *reterr)
{
    size_t n_dark = 0;

    for (size_t j = 0; j < f->J; j++) {
        n_dark += is_dark(f, j);
        for (size_t a = 0; a < f->m; a++) {
            double y = f->in->y[a + f->m * j];

            if (!isfinite(y))
                return qt_diag_set(reterr, QT_ENONFINITE, 0, 0,
                                   "run %zu outcome %zu: the count is not a finite number", j, a);
            if (y < 0.0)
                return qt_diag_set(reterr, QT_ENEGATIVE, 0, 0,
                                   "run %zu outcome %zu: negative count %g", j, a, y);
        }
    }
    if (n_dark == f->J)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "every run is dark: no run shows the "
                           "detectors light");
    if (f->in->background && !n_dark)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "fitting a background needs a dark run (source blocked): without "
                           "one it cannot be told from the crosstalk");
    if (!f->in->background && n_dark)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "dark runs only make sense when the background is fitted");
    return 0;
}

/* p_jb = Tr(rho_j E_b) for every lit run; the trace of each state checked. */
static int probs(struct fit *f, struct qt_diag *reterr)
{
    const struct qt_design *des = f->in->des;
    size_t d = des->d;
    struct qt_ws ws = QT_WS_INIT;
    int r = 0;

    for (size_t j = 0; j < f->J && r >= 0; j++) {
        const double complex *rho = f->in->rho + j * d * d;
        double tr = 0.0;

        if (is_dark(f, j))
            continue;
        f->n_lit++;
        for (size_t i = 0; i < d; i++)
            tr += creal(rho[i + d * i]);
        if (!(fabs(tr - 1.0) <= QT_CALIB_TRACE_TOL)) {
            r = qt_diag_set(reterr, QT_ENOTPHYS, 0, 0, "the state of run %zu has trace %.9g, not 1",
                            j, tr);
            break;
        }
        r = qt_design_forward(des, &ws, rho, f->p + f->m * j);
        for (size_t a = 0; a < f->m && r >= 0; a++)
            f->p[a + f->m * j] = fmax(f->p[a + f->m * j], 0.0); /* rounding below 0 */
    }
    qt_ws_done(&ws);
    return r;
}

/* Rank k_g of P_g (runs x outcomes of group g) by modified Gram-Schmidt on its columns. */
static int check_rank(const struct fit *f, struct qt_diag *reterr)
{
    const struct qt_calib *c = f->cal;
    size_t J = f->J, kmax = 0;
    double *Q;
    int r = 0;

    for (size_t g = 0; g < f->G; g++)
        kmax = QT_MAX(kmax, c->gk[g]);
    Q = malloc(J * kmax * sizeof(double));
    if (!Q)
        return -ENOMEM;
    for (size_t g = 0; g < f->G && r == 0; g++) {
        size_t k = c->gk[g], rank = 0;
        double maxn = 0.0;

        for (size_t b = 0; b < k; b++) {
            double *q = Q + J * rank, nrm = 0.0;

            for (size_t j = 0; j < J; j++)
                q[j] = f->p[c->gidx[c->gpos[g] + b] + f->m * j];
            for (size_t j = 0; j < J; j++)
                nrm += q[j] * q[j];
            maxn = fmax(maxn, sqrt(nrm));
            for (size_t i = 0; i < rank; i++) {
                const double *qi = Q + J * i;
                double dot = 0.0;

                for (size_t j = 0; j < J; j++)
                    dot += qi[j] * q[j];
                for (size_t j = 0; j < J; j++)
                    q[j] -= dot * qi[j];
            }
            nrm = 0.0;
            for (size_t j = 0; j < J; j++)
                nrm += q[j] * q[j];
            nrm = sqrt(nrm);
            if (nrm > RANK_TOL * fmax(maxn, 1.0)) {
                for (size_t j = 0; j < J; j++)
                    q[j] /= nrm;
                rank++;
            }
        }
        if (rank < k)
            r = qt_diag_set(reterr, QT_ENOTIC, 0, 0,
                            "group %zu (outcomes %zu..%zu) is not identifiable: its outcome "
                            "probabilities over the %zu known states have rank %zu, it needs %zu "
                            "(add states that light its outcomes in independent proportions)",
                            g, c->gidx[c->gpos[g]], c->gidx[c->gpos[g + 1] - 1], f->n_lit, rank, k);
    }
    free(Q);
    return r;
}

/* Qubit mode: entry (al, bl) of a setting's K = (x)_q K_q, leaving out qubit skip (>= nq: none);
 * bit q of a local index is (i >> (nq - 1 - q)) & 1 (qubit 0 most significant). */
static double kron_entry(const struct fit *f, size_t al, size_t bl, unsigned skip)
{
    double x = 1.0;

    for (unsigned q = 0; q < f->nq; q++)
        if (q != skip)
            x *= f->K[4 * q + ((al >> (f->nq - 1 - q)) & 1) + 2 * ((bl >> (f->nq - 1 - q)) & 1)];
    return x;
}

static unsigned bit_of(const struct fit *f, size_t i, unsigned q)
{
    return (unsigned)((i >> (f->nq - 1 - q)) & 1);
}

/* s = K p_j per group, mu = I_j s + beta, w = y / mu. */
static void expect(struct fit *f)
{
    const struct qt_calib *c = f->cal;
    size_t m = f->m;

    for (size_t j = 0; j < f->J; j++) {
        const double *p = f->p + m * j;
        double *s = f->s + m * j;

        for (size_t a = 0; a < m; a++) {
            size_t g = f->grp[a], k = c->gk[g], al = f->loc[a];
            const double *Kg = f->K + c->goff[g];
            const size_t *idx = c->gidx + c->gpos[g];
            double acc = 0.0;

            if (f->nq)
                for (size_t b = 0; b < k; b++)
                    acc += kron_entry(f, al, b, f->nq) * p[idx[b]];
            else
                for (size_t b = 0; b < k; b++)
                    acc += Kg[al + k * b] * p[idx[b]];
            s[a] = acc;
        }
        for (size_t a = 0; a < m; a++) {
            double mu = f->inten[j] * s[a] + (f->in->background ? f->bg[a] : 0.0);
            double y = f->in->y[a + m * j];

            f->mu[a + m * j] = mu;
            f->w[a + m * j] = mu > 0.0 ? y / mu : 0.0;
        }
    }
}

/* A parameter's move in standard deviations of the counts it drives (N: its regressor sum). */
static double moved(double old, double new, double N)
{
    return fabs(new - old) * N / sqrt(fmax(new, old) * N + 1.0);
}

static void init(struct fit *f)
{
    const struct qt_calib *c = f->cal;
    size_t m = f->m, J = f->J;
    double eps = 0.05;

    for (unsigned q = 0; q < f->nq; q++)
        for (size_t i = 0; i < 4; i++)
            f->K[4 * q + i] = (i == 0 || i == 3 ? 1.0 - eps : 0.0) + eps / 2.0;
    for (size_t g = 0; g < f->G && !f->nq; g++) {
        size_t k = c->gk[g];
        double *Kg = f->K + c->goff[g];

        for (size_t b = 0; b < k; b++)
            for (size_t a = 0; a < k; a++)
                Kg[a + k * b] = (a == b ? 1.0 - eps : 0.0) + eps / (double)k;
    }
    for (size_t a = 0; a < m; a++) {
        double sum = 0.0;
        size_t n = 0;

        for (size_t j = 0; j < J; j++)
            if (is_dark(f, j)) {
                sum += f->in->y[a + m * j];
                n++;
            }
        f->bg[a] = f->in->background ? (sum + 0.5) / (double)(n ? n : 1) : 0.0;
    }
    for (size_t j = 0; j < J; j++) {
        double ys = 0.0, ps = 0.0;

        if (is_dark(f, j))
            continue;
        for (size_t a = 0; a < m; a++) {
            ys += f->in->y[a + m * j];
            ps += f->p[a + m * j];
        }
        f->inten[j] = ps > 0.0 ? fmax(ys, 1.0) / ps : 1.0;
    }
}

/* Qubit mode, after expect(): the E-step's expected counts of true bit beta registered as alpha
 * per qubit, Z_q[alpha, beta] = sum w_ja T_jab over a_q = alpha, b_q = beta (T_jab = I_j p_jb
 * K_ab), then each K_q in closed form given the others (ECM): Z_q / D_q[beta], D_q[beta] =
 * sum_j sum_{b_q = beta} I_j p_jb prod_{q' != q} s_q'[b_q'] with the latest column sums s. */
static double em_qubits(struct fit *f, double *Z)
{
    const struct qt_calib *c = f->cal;
    size_t m = f->m, J = f->J, nq = f->nq;
    double step = 0.0;

    memset(Z, 0, 4 * nq * sizeof(double));
    for (size_t j = 0; j < J; j++)
        for (size_t a = 0; a < m; a++) {
            size_t g = f->grp[a], k = c->gk[g], al = f->loc[a];
            const size_t *idx = c->gidx + c->gpos[g];
            double w = f->w[a + m * j];

            if (w == 0.0 || is_dark(f, j))
                continue;
            for (size_t b = 0; b < k; b++) {
                double t = w * f->inten[j] * f->p[idx[b] + m * j] * kron_entry(f, al, b, f->nq);

                for (unsigned q = 0; q < nq; q++)
                    Z[4 * q + bit_of(f, al, q) + 2 * bit_of(f, b, q)] += t;
            }
        }
    for (unsigned q = 0; q < nq; q++) {
        double D[2] = {0.0, 0.0};

        for (size_t j = 0; j < J; j++)
            for (size_t b = 0; b < m; b++) {
                size_t bl = f->loc[b];
                double x = f->inten[j] * f->p[b + m * j];

                if (x == 0.0)
                    continue;
                for (unsigned q2 = 0; q2 < nq; q2++)
                    if (q2 != q) {
                        const double *K2 = f->K + 4 * q2;
                        unsigned bb = bit_of(f, bl, q2);

                        x *= K2[2 * bb] + K2[1 + 2 * bb];
                    }
                D[bit_of(f, bl, q)] += x;
            }
        for (size_t i = 0; i < 4; i++) {
            double old = f->K[4 * q + i], den = D[i / 2];

            f->K[4 * q + i] = Z[4 * q + i] / den;
            f->N[4 * q + i] = den;
            step = fmax(step, moved(old, f->K[4 * q + i], den));
        }
    }
    return step;
}

/* One EM iteration: K and beta with I fixed, then I. Returns the largest move. */
static double em_step(struct fit *f)
{
    const struct qt_calib *c = f->cal;
    size_t m = f->m, J = f->J;
    double step = 0.0;

    expect(f);
    if (f->nq)
        step = em_qubits(f, f->den); /* den: m >= 4 nq scratch values in qubit mode */
    for (size_t g = 0; g < f->G && !f->nq; g++) {
        size_t k = c->gk[g];
        const size_t *idx = c->gidx + c->gpos[g];
        double *Kg = f->K + c->goff[g];

        for (size_t b = 0; b < k; b++) {
            double den = 0.0;

            for (size_t j = 0; j < J; j++)
                den += f->inten[j] * f->p[idx[b] + m * j];
            f->den[idx[b]] = den;
            for (size_t a = 0; a < k; a++) {
                double num = 0.0, old = Kg[a + k * b];

                for (size_t j = 0; j < J; j++)
                    num += f->inten[j] * f->p[idx[b] + m * j] * f->w[idx[a] + m * j];
                Kg[a + k * b] = old * num / den;
                f->N[c->goff[g] + a + k * b] = den;
                step = fmax(step, moved(old, Kg[a + k * b], den));
            }
        }
    }
    if (f->in->background)
        for (size_t a = 0; a < m; a++) {
            double num = 0.0, old = f->bg[a];

            for (size_t j = 0; j < J; j++)
                num += f->w[a + m * j];
            f->bg[a] = old * num / (double)J;
            f->N[f->nK + a] = (double)J;
            step = fmax(step, moved(old, f->bg[a], (double)J));
        }
    expect(f);
    for (size_t j = 0; j < J; j++) {
        double ss = 0.0, num = 0.0, old = f->inten[j];

        if (is_dark(f, j))
            continue;
        for (size_t a = 0; a < m; a++) {
            ss += f->s[a + m * j];
            num += f->in->background ? f->s[a + m * j] * f->w[a + m * j] : f->in->y[a + m * j];
        }
        f->inten[j] = f->in->background ? old * num / ss : num / ss;
        f->N[f->nK + f->m + j] = ss;
        step = fmax(step, moved(old, f->inten[j], ss));
    }
    return step;
}

/* The log-likelihood without its constant (sum y log mu - mu) at the current theta. */
static double loglik(struct fit *f)
{
    size_t mJ = f->m * f->J;
    double ll = 0.0;

    expect(f);
    for (size_t i = 0; i < mJ; i++) {
        double y = f->in->y[i], mu = f->mu[i];

        if (mu > 0.0)
            ll += (y > 0.0 ? y * log(mu) : 0.0) - mu;
        else if (y > 0.0)
            return -INFINITY;
    }
    return ll;
}

/* EM accelerated by SQUAREM (Varadhan and Roland 2008, scheme S3): two EM steps from theta0,
 * an extrapolation along them with the step length alpha <= -1 measured in the counts' standard
 * deviations, one EM step from there to stabilise, and a fall-back to the plain second step
 * when that lowered the likelihood. Every returned theta comes out of an EM step, so it is
 * non-negative and the stopping rule is the plain step's. Returns the iterations used, or 0 when
 * max_iter was reached. */
/* One counted EM step: 1 converged, -1 out of iterations, 0 go on. */
static int counted_step(struct fit *f, double tol, unsigned max_iter, unsigned *it)
{
    double step = em_step(f);

    ++*it;
    if (step < tol)
        return 1;
    return *it >= max_iter ? -1 : 0;
}

static unsigned squarem(struct fit *f, double tol, unsigned max_iter)
{
    size_t n = f->n_th, bytes = n * sizeof(double);
    unsigned it = 0;
    int st;

    for (;;) {
        double rr = 0.0, vv = 0.0, alpha, ll2;

        memcpy(f->t0, f->th, bytes);
        if ((st = counted_step(f, tol, max_iter, &it)))
            break;
        memcpy(f->t1, f->th, bytes);
        if ((st = counted_step(f, tol, max_iter, &it)))
            break;
        memcpy(f->t2, f->th, bytes);
        for (size_t i = 0; i < n; i++) {
            double wt = f->N[i] * f->N[i] / (f->t2[i] * f->N[i] + 1.0);
            double r = f->t1[i] - f->t0[i], v = f->t2[i] - 2.0 * f->t1[i] + f->t0[i];

            rr += wt * r * r;
            vv += wt * v * v;
        }
        if (!(vv > 0.0))
            continue;
        alpha = fmin(-1.0, -sqrt(rr / vv));
        for (size_t i = 0; i < n; i++) {
            double r = f->t1[i] - f->t0[i], v = f->t2[i] - 2.0 * f->t1[i] + f->t0[i];
            double x = f->t0[i] - 2.0 * alpha * r + alpha * alpha * v;

            /* Multiplicative updates never leave 0: at most a tenfold drop per extrapolation. */
            f->th[i] = fmax(x, 0.1 * f->t2[i]);
        }
        if ((st = counted_step(f, tol, max_iter, &it)))
            break;
        memcpy(f->t1, f->th, bytes); /* the stabilised extrapolation */
        ll2 = loglik(f);
        memcpy(f->th, f->t2, bytes);
        if (loglik(f) <= ll2)
            memcpy(f->th, f->t1, bytes);
    }
    return st > 0 ? it : 0;
}

/* ---- Fisher information and standard errors ---- */

struct fisher {
    size_t n;
    double *F;   /* n x n, then the gauge-fixed inverse (covariance) */
    double *D;   /* n: diagonal of F (scaling) */
    size_t i_bg; /* first beta index */
    size_t *i_I; /* J: intensity index (lit runs) */
};

static void fisher_add(struct fisher *fi, const size_t *idx, const double *v, size_t n, double wt)
{
    for (size_t q = 0; q < n; q++)
        for (size_t p = 0; p < n; p++)
            fi->F[idx[p] + fi->n * idx[q]] += wt * v[p] * v[q];
}

static void fisher_build(const struct fit *f, struct fisher *fi, size_t *idx, double *v)
{
    const struct qt_calib *c = f->cal;
    size_t m = f->m;

    for (size_t j = 0; j < f->J; j++)
        for (size_t a = 0; a < m; a++) {
            size_t g = f->grp[a], k = c->gk[g], al = f->loc[a], n = 0;
            const size_t *gi = c->gidx + c->gpos[g];
            double mu = f->mu[a + m * j];

            if (!is_dark(f, j) && f->nq) {
                /* d mu / d K_q[a_q, beta] = sum_{b_q = beta} I_j p_jb prod_{q' != q} K_q' */
                for (unsigned q = 0; q < f->nq; q++) {
                    idx[n] = 4 * q + bit_of(f, al, q);
                    idx[n + 1] = idx[n] + 2;
                    v[n] = v[n + 1] = 0.0;
                    for (size_t b = 0; b < k; b++)
                        v[n + bit_of(f, b, q)] +=
                            f->inten[j] * f->p[gi[b] + m * j] * kron_entry(f, al, b, q);
                    n += 2;
                }
            } else if (!is_dark(f, j)) {
                for (size_t b = 0; b < k; b++) {
                    idx[n] = c->goff[g] + al + k * b;
                    v[n++] = f->inten[j] * f->p[gi[b] + m * j];
                }
            }
            if (!is_dark(f, j)) {
                idx[n] = fi->i_I[j];
                v[n++] = f->s[a + m * j];
            }
            if (f->in->background) {
                idx[n] = fi->i_bg + a;
                v[n++] = 1.0;
            }
            fisher_add(fi, idx, v, n, 1.0 / fmax(mu, FISHER_MU_FLOOR));
        }
}

/* The parameter named, for messages. */
static void param_name(const struct fit *f, const struct fisher *fi, size_t p, char *buf,
                       size_t len)
{
    const struct qt_calib *c = f->cal;

    if (p < f->nK && f->nq) {
        (void)snprintf(buf, len, "qubit %zu's response to bit %zu at bit %zu", p / 4, p % 4 / 2,
                       p % 2);
    } else if (p < f->nK) {
        size_t g = 0;

        while (c->goff[g + 1] <= p)
            g++;
        size_t k = c->gk[g], off = p - c->goff[g];

        (void)snprintf(buf, len, "the response of outcome %zu to outcome %zu (group %zu)",
                       c->gidx[c->gpos[g] + off % k], c->gidx[c->gpos[g] + off / k], g);
    } else if (f->in->background && p < fi->i_bg + f->m) {
        (void)snprintf(buf, len, "the background of outcome %zu", p - fi->i_bg);
    } else {
        for (size_t j = 0; j < f->J; j++)
            if (!is_dark(f, j) && fi->i_I[j] == p)
                (void)snprintf(buf, len, "the intensity of run %zu", j);
    }
}

/* Inverts the Fisher information with the scale degeneracy (K, 0, -I) fixed, in place:
 * fi->F becomes the covariance. */
static int fisher_invert(const struct fit *f, struct fisher *fi, struct qt_diag *reterr)
{
    size_t n = fi->n;
    double *X = calloc(n * n, sizeof(double)), *u = calloc(n, sizeof(double)), un = 0.0;
    char name[160] = "";
    int r = 0;

    if (!X || !u) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t p = 0; p < n; p++) {
        fi->D[p] = fi->F[p + n * p];
        if (!(fi->D[p] > 0.0)) {
            param_name(f, fi, p, name, sizeof(name));
            r = qt_diag_set(reterr, QT_ENOTIC, 0, 0, "%s is not seen by any count", name);
            goto out;
        }
    }
    for (size_t q = 0; q < n; q++) {
        for (size_t p = 0; p < n; p++)
            fi->F[p + n * q] /= sqrt(fi->D[p] * fi->D[q]);
        X[q + n * q] = 1.0;
    }
    /* Each degeneracy (all of K, or qubit e's K_e, against the intensities), scaled to unit
     * length, added as u u^T: the covariance of every invariant quantity is unchanged. */
    for (size_t e = 0; e < f->n_gauge; e++) {
        memset(u, 0, n * sizeof(double));
        un = 0.0;
        for (size_t p = f->nq ? 4 * e : 0; p < (f->nq ? 4 * e + 4 : f->nK); p++)
            u[p] = f->K[p];
        for (size_t j = 0; j < f->J; j++)
            if (!is_dark(f, j))
                u[fi->i_I[j]] = -f->inten[j];
        for (size_t p = 0; p < n; p++) {
            u[p] *= sqrt(fi->D[p]);
            un += u[p] * u[p];
        }
        for (size_t q = 0; q < n; q++)
            for (size_t p = 0; p < n; p++)
                fi->F[p + n * q] += u[p] * u[q] / un;
    }
    r = qt_dposv(n, n, fi->F, n, X, n);
    if (r == QT_ETOOBIG)
        goto out;
    for (size_t p = 0; p < n && r == 0; p++)
        if (!(X[p + n * p] <= FISHER_MAX_VAR)) {
            param_name(f, fi, p, name, sizeof(name));
            r = 1;
        }
    if (r) {
        r = qt_diag_set(reterr, QT_ENOTIC, 0, 0,
                        "the known states do not determine the model%s%s: the run intensities "
                        "and the detector responses are confounded (add states, e.g. ones that "
                        "light several outcomes at once)",
                        name[0] ? ", e.g. " : "", name);
        goto out;
    }
    for (size_t q = 0; q < n; q++)
        for (size_t p = 0; p < n; p++)
            fi->F[p + n * q] = X[p + n * q] / sqrt(fi->D[p] * fi->D[q]);
out:
    free(X);
    free(u);
    return r;
}

/* sqrt(g^T Cov g) for a sparse gradient. */
static double se_of(const struct fisher *fi, const size_t *idx, const double *v, size_t n)
{
    double var = 0.0;

    for (size_t q = 0; q < n; q++)
        for (size_t p = 0; p < n; p++)
            var += v[p] * v[q] * fi->F[idx[p] + fi->n * idx[q]];
    return sqrt(fmax(var, 0.0));
}

/* eta, C, beta and their errors from K; intensities in the units of eta. */
static void report(const struct fit *f, const struct fisher *fi, size_t *idx, double *v)
{
    struct qt_calib *c = f->cal;
    size_t m = f->m, ref = 0;
    double *sb = f->den; /* reused: column sums */

    for (size_t g = 0; g < f->G; g++) {
        size_t k = c->gk[g];
        const double *Kg = f->K + c->goff[g];

        for (size_t b = 0; b < k; b++) {
            double s = 0.0;

            for (size_t a = 0; a < k; a++)
                s += Kg[a + k * b];
            sb[c->gidx[c->gpos[g] + b]] = s;
        }
    }
    for (size_t a = 1; a < m; a++)
        if (sb[a] > sb[ref])
            ref = a;
    c->ref = ref;
    for (size_t g = 0; g < f->G; g++) {
        size_t k = c->gk[g], gr = f->grp[ref], kr = c->gk[gr];

        for (size_t b = 0; b < k; b++) {
            size_t ob = c->gidx[c->gpos[g] + b], n = 0;

            c->eff[ob] = sb[ob] / sb[ref];
            for (size_t a = 0; a < k; a++) {
                size_t e = c->goff[g] + a + k * b;

                c->cross[e] = f->K[e] / sb[ob];
                for (size_t a2 = 0; a2 < k; a2++) {
                    idx[a2] = c->goff[g] + a2 + k * b;
                    v[a2] = ((a2 == a) - c->cross[e]) / sb[ob];
                }
                c->cross_se[e] = se_of(fi, idx, v, k);
            }
            if (ob == ref) {
                c->eff_se[ob] = 0.0;
                continue;
            }
            for (size_t a = 0; a < k; a++) {
                idx[n] = c->goff[g] + a + k * b;
                v[n++] = 1.0 / sb[ref];
            }
            for (size_t a = 0; a < kr; a++) {
                idx[n] = c->goff[gr] + a + kr * f->loc[ref];
                v[n++] = -sb[ob] / (sb[ref] * sb[ref]);
            }
            c->eff_se[ob] = se_of(fi, idx, v, n);
        }
    }
    for (size_t a = 0; a < m; a++) {
        c->bg[a] = f->in->background ? f->bg[a] : 0.0;
        c->bg_se[a] =
            f->in->background ? sqrt(fmax(fi->F[(fi->i_bg + a) * (fi->n + 1)], 0.0)) : 0.0;
    }
    for (size_t j = 0; j < f->J; j++)
        c->intensity[j] = is_dark(f, j) ? 0.0 : f->inten[j] * sb[ref];
}

/* Residuals, chi^2, log-likelihood, degrees of freedom. */
static void goodness(const struct fit *f)
{
    struct qt_calib *c = f->cal;
    size_t mJ = f->m * f->J;

    c->chi2 = 0.0;
    c->loglik = 0.0;
    for (size_t i = 0; i < mJ; i++) {
        double mu = f->mu[i], y = f->in->y[i];

        c->mu[i] = mu;
        c->resid[i] = mu > 0.0 ? (y - mu) / sqrt(mu) : 0.0;
        c->chi2 += c->resid[i] * c->resid[i];
        c->loglik += (y > 0.0 ? y * log(mu) : 0.0) - mu - lgamma(y + 1.0);
    }
    c->dof = (long)mJ - (long)c->n_params;
}

/* Qubit mode: eta_q, C_q and their errors, and the per-outcome and per-group products. */
static void report_qubits(const struct fit *f, const struct fisher *fi, size_t *idx, double *v)
{
    struct qt_calib *c = f->cal;
    unsigned nq = f->nq;
    double sq[2 * QT_DESIGN_MAX_QUBITS], scale = 1.0;
    size_t rq[QT_DESIGN_MAX_QUBITS], refl = 0;

    for (unsigned q = 0; q < nq; q++) {
        const double *K = f->K + 4 * q;

        for (size_t b = 0; b < 2; b++)
            sq[2 * q + b] = K[2 * b] + K[1 + 2 * b];
        rq[q] = sq[2 * q + 1] > sq[2 * q] ? 1 : 0;
        scale *= sq[2 * q + rq[q]];
        refl = 2 * refl + rq[q];
        for (size_t b = 0; b < 2; b++) {
            size_t n = 0;

            c->qeff[2 * q + b] = sq[2 * q + b] / sq[2 * q + rq[q]];
            for (size_t a = 0; a < 2; a++) {
                c->qcross[4 * q + a + 2 * b] = K[a + 2 * b] / sq[2 * q + b];
                for (size_t a2 = 0; a2 < 2; a2++) {
                    idx[a2] = 4 * q + a2 + 2 * b;
                    v[a2] = ((a2 == a) - c->qcross[4 * q + a + 2 * b]) / sq[2 * q + b];
                }
                c->qcross_se[4 * q + a + 2 * b] = se_of(fi, idx, v, 2);
            }
            if (b == rq[q])
                continue;
            for (size_t a = 0; a < 2; a++) {
                idx[n] = 4 * q + a + 2 * b;
                v[n++] = 1.0 / sq[2 * q + rq[q]];
                idx[n] = 4 * q + a + 2 * rq[q];
                v[n++] = -sq[2 * q + b] / (sq[2 * q + rq[q]] * sq[2 * q + rq[q]]);
            }
            c->qeff_se[2 * q + b] = se_of(fi, idx, v, n);
        }
    }
    for (size_t a = 0; a < f->m; a++) {
        size_t al = f->loc[a], n = 0;
        double eta = 1.0;

        for (unsigned q = 0; q < nq; q++)
            eta *= c->qeff[2 * q + bit_of(f, al, q)];
        c->eff[a] = eta;
        for (unsigned q = 0; q < nq; q++)
            for (size_t b = 0; b < 2; b++)
                for (size_t a2 = 0; a2 < 2; a2++) {
                    idx[n] = 4 * q + a2 + 2 * b;
                    v[n++] = eta * ((b == bit_of(f, al, q)) / sq[2 * q + b] -
                                    (b == rq[q]) / sq[2 * q + rq[q]]);
                }
        c->eff_se[a] = se_of(fi, idx, v, n);
    }
    for (size_t g = 0; g < f->G; g++) {
        size_t k = c->gk[g];

        for (size_t bl = 0; bl < k; bl++)
            for (size_t al = 0; al < k; al++) {
                double x = 1.0;

                for (unsigned q = 0; q < nq; q++)
                    x *= c->qcross[4 * q + bit_of(f, al, q) + 2 * bit_of(f, bl, q)];
                c->cross[c->goff[g] + al + k * bl] = x;
            }
    }
    c->ref = c->gidx[c->gpos[0] + refl];
    for (size_t a = 0; a < f->m; a++) {
        c->bg[a] = f->in->background ? f->bg[a] : 0.0;
        c->bg_se[a] =
            f->in->background ? sqrt(fmax(fi->F[(fi->i_bg + a) * (fi->n + 1)], 0.0)) : 0.0;
    }
    for (size_t j = 0; j < f->J; j++)
        c->intensity[j] = is_dark(f, j) ? 0.0 : f->inten[j] * scale;
}

static int alloc_all(struct fit *f)
{
    struct qt_calib *c = f->cal;
    size_t m = f->m, J = f->J, nK = f->nK;

    f->p = calloc(m * J, sizeof(double));
    f->n_th = nK + m + J;
    f->th = calloc(f->n_th, sizeof(double));
    f->N = calloc(f->n_th, sizeof(double));
    f->t0 = calloc(f->n_th, sizeof(double));
    f->t1 = calloc(f->n_th, sizeof(double));
    f->t2 = calloc(f->n_th, sizeof(double));
    if (!f->th || !f->N || !f->t0 || !f->t1 || !f->t2)
        return -ENOMEM;
    f->K = f->th;
    f->bg = f->th + nK;
    f->inten = f->th + nK + m;
    f->s = calloc(m * J, sizeof(double));
    f->mu = calloc(m * J, sizeof(double));
    f->w = calloc(m * J, sizeof(double));
    f->den = calloc(m, sizeof(double));
    c->eff = calloc(m, sizeof(double));
    c->eff_se = calloc(m, sizeof(double));
    c->cross = calloc(c->goff[f->G], sizeof(double));
    c->cross_se = calloc(c->goff[f->G], sizeof(double));
    if (f->nq) {
        c->n_qubits = f->nq;
        c->qeff = calloc(2 * f->nq, sizeof(double));
        c->qeff_se = calloc(2 * f->nq, sizeof(double));
        c->qcross = calloc(4 * f->nq, sizeof(double));
        c->qcross_se = calloc(4 * f->nq, sizeof(double));
        if (!c->qeff || !c->qeff_se || !c->qcross || !c->qcross_se)
            return -ENOMEM;
    }
    c->bg = calloc(m, sizeof(double));
    c->bg_se = calloc(m, sizeof(double));
    c->intensity = calloc(J, sizeof(double));
    c->mu = calloc(m * J, sizeof(double));
    c->resid = calloc(m * J, sizeof(double));
    if (!f->p || !f->s || !f->mu || !f->w || !f->den || !c->eff || !c->eff_se || !c->cross ||
        !c->cross_se || !c->bg || !c->bg_se || !c->intensity || !c->mu || !c->resid)
        return -ENOMEM;
    return 0;
}

static int errors(struct fit *f, struct qt_diag *reterr)
{
    struct qt_calib *c = f->cal;
    size_t kmax = 4 * (size_t)f->nq, n = c->n_params + f->n_gauge;
    struct fisher fi = {n, NULL, NULL, f->nK, NULL};
    size_t *idx = NULL;
    double *v = NULL;
    int r = 0;

    for (size_t g = 0; g < f->G; g++)
        kmax = QT_MAX(kmax, c->gk[g]);
    fi.F = calloc(n * n, sizeof(double));
    fi.D = calloc(n, sizeof(double));
    fi.i_I = calloc(f->J, sizeof(size_t));
    idx = calloc(2 * kmax + 2, sizeof(size_t));
    v = calloc(2 * kmax + 2, sizeof(double));
    if (!fi.F || !fi.D || !fi.i_I || !idx || !v) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t j = 0, next = f->nK + (f->in->background ? f->m : 0); j < f->J; j++)
        if (!is_dark(f, j))
            fi.i_I[j] = next++;
    fisher_build(f, &fi, idx, v);
    r = fisher_invert(f, &fi, reterr);
    if (r == 0 && f->nq)
        report_qubits(f, &fi, idx, v);
    else if (r == 0)
        report(f, &fi, idx, v);
out:
    free(fi.F);
    free(fi.D);
    free(fi.i_I);
    free(idx);
    free(v);
    return r;
}

int qt_calib_fit(const struct qt_calib_input *in, struct qt_calib **ret, struct qt_diag *reterr)
{
    struct fit f = {0};
    double tol = in->tol > 0.0 ? in->tol : QT_CALIB_TOL;
    unsigned max_iter = in->max_iter ? in->max_iter : QT_CALIB_MAX_ITER, it;
    size_t np;
    int r;

    if (!in->des || in->n_runs == 0)
        return qt_diag_set(reterr, QT_ESHAPE, 0, 0, "no calibration runs");
    f.in = in;
    f.m = in->des->m;
    f.J = in->n_runs;
    f.G = in->des->n_groups;
    f.cal = calloc(1, sizeof(*f.cal));
    if (!f.cal)
        return -ENOMEM;
    f.cal->m = f.m;
    f.cal->n_groups = f.G;
    f.cal->n_runs = f.J;
    f.cal->background = in->background;
    f.n_gauge = 1;
    if (in->qubit) {
        if (in->des->kind != QT_DESIGN_PAULI) {
            r = qt_diag_set(reterr, QT_EDESIGN, 0, 0,
                            "the per-qubit model needs the pauli design, not %s", in->des->name);
            goto out;
        }
        f.nq = in->des->n_qubits;
        f.n_gauge = f.nq;
    }
    r = layout(&f);
    if (r < 0)
        goto out;
    r = check_counts(&f, reterr);
    if (r < 0)
        goto out;
    np = f.nK + (in->background ? f.m : 0) + f.J;
    if (np > QT_CALIB_MAX_PARAMS) {
        r = qt_diag_set(reterr, QT_ETOOBIG, 0, 0,
                        "%zu parameters to fit (crosstalk entries, backgrounds, run intensities); "
                        "at most %d are supported",
                        np, QT_CALIB_MAX_PARAMS);
        goto out;
    }
    r = alloc_all(&f);
    if (r < 0)
        goto out;
    r = probs(&f, reterr);
    if (r >= 0 && !f.nq)
        r = check_rank(&f, reterr);
    if (r < 0)
        goto out;
    f.cal->n_params = f.nK + (in->background ? f.m : 0) + f.n_lit - f.n_gauge;
    init(&f);
    it = squarem(&f, tol, max_iter);
    if (!it) {
        r = qt_diag_set(reterr, QT_ENOCONV, 0, 0, "the fit did not converge in %u iterations",
                        max_iter);
        goto out;
    }
    f.cal->n_iter = it;
    expect(&f);
    r = errors(&f, reterr);
    if (r < 0)
        goto out;
    goodness(&f);
    *ret = f.cal;
    f.cal = NULL;
out:
    fit_done(&f);
    return r;
}
