/* Detector calibration: the efficiencies eta and crosstalk C (and optionally the background
 * beta) of num/qt_detector.h, fitted to counts measured on known input states.
 *
 * Model. Run j (one column of counts, all m outcomes) has a known state rho_j, known
 * probabilities p_jb = Tr(rho_j E_b) and an unknown intensity I_j. For outcome a in group g
 *   mu_ja = I_j sum_{b in g} K_ab p_jb  (+ beta_a)
 * with K_g = C_g diag(eta) a non-negative k_g x k_g matrix per group (its column sums are the
 * efficiencies; C_g is column-stochastic). A "dark" run (source blocked) has p_j = 0: mu_ja =
 * beta_a. The counts are independent Poisson.
 *
 * Fit. Poisson maximum likelihood by EM (Richardson-Lucy multiplicative updates of K and beta
 * with the intensities fixed, alternating with the intensities' update: in closed form without
 * a background, one EM step with it). Every step raises the likelihood and keeps K, beta and I
 * non-negative. It stops when no parameter moved by more than tol standard deviations of the
 * counts it drives (|delta theta| N / sqrt(theta N + 1), N the parameter's total regressor) in
 * one iteration. Then s_b = sum_a K_ab, eta = s / max s (the scale goes into I), C = K diag(1/s).
 *
 * Errors. Standard errors of eta, C and beta from the inverse Fisher information of the
 * Poisson likelihood at the fit (expected counts below 1 taken as 1, so entries estimated at
 * 0 keep a finite error), with the one exact degeneracy (K -> c K, I -> I / c) projected out.
 *
 * Identifiability. Row a of K_g is seen through the regressors p_j restricted to g, so the
 * J x k_g matrix P_g = [p_jb] must have rank k_g (checked per group, the group named); the
 * background needs at least one dark run (beta is otherwise confounded with the sums of K's
 * rows, because sum_{b in g} p_jb is the same for every state when the group is a POVM); and
 * the whole Fisher information must be non-singular apart from the scale (e.g. k runs that
 * each light one outcome of a single group leave each column's scale confounded with the run's
 * intensity): QT_ENOTIC otherwise, with the reason.
 *
 * Qubit mode (pauli designs, in.qubit): one detector pair per qubit, the same for every
 * setting, K_g = K_0 (x) K_1 (x) ... (x) K_{n-1} (qubit 0 leftmost, the pauli outcome order) with
 * K_q = C_q diag(eta_q) a non-negative 2 x 2 matrix: 4n numbers instead of 3^n 4^n. Fitted by
 * ECM (one E-step, then each K_q in closed form given the others), under the same SQUAREM; its
 * degeneracies are the n scales (K_q -> c_q K_q, I -> I / prod c_q), all projected out. The
 * per-group rank check does not apply (far fewer parameters); the Fisher check does. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"

/* Default stopping tolerance (standard deviations per iteration) and iteration cap. */
#define QT_CALIB_TOL      1e-7
#define QT_CALIB_MAX_ITER 1000000u

/* Largest number of fitted parameters (sum k_g^2 + m + J): the Fisher matrix is dense
 * (2048^2 doubles = 32 MiB). */
#define QT_CALIB_MAX_PARAMS 2048

/* A state's trace must be 1 within this. */
#define QT_CALIB_TRACE_TOL 1e-6

struct qt_calib_input {
    const struct qt_design *des;
    size_t n_runs;             /* J >= 1 */
    const double complex *rho; /* J states, d x d column-major each, at rho[j d^2] (Hermitian) */
    const bool *dark;          /* J flags (NULL: none): run j had no light; its rho is ignored */
    const double *y;           /* m x J counts, column-major: y[a + m j], finite, >= 0 */
    bool background;           /* fit beta (needs a dark run) */
    double tol;                /* 0: QT_CALIB_TOL */
    unsigned max_iter;         /* 0: QT_CALIB_MAX_ITER */
    bool qubit;                /* qubit mode (pauli only) */
};

/* The fit. Group layout as in struct qt_detector: group g's outcomes are gidx[gpos[g] ..
 * gpos[g+1]), k_g = gk[g] of them, its matrices at cross + goff[g] (k_g x k_g column-major,
 * a and b local to the group). Immutable after construction. */
struct qt_calib {
    size_t m, n_groups, n_runs;
    size_t *gk, *gpos, *gidx, *goff;
    double *eff, *eff_se;     /* m: eta (max 1) and its standard error (0 for the reference) */
    double *cross, *cross_se; /* sum k_g^2: C and standard errors */
    double *bg, *bg_se;       /* m: beta and its standard error (zeros when not fitted) */
    double *intensity;        /* J: I_j in the units of eta (0 for dark runs) */
    double *mu;               /* m x J: fitted expected counts */
    double *resid;            /* m x J: Pearson residuals (y - mu) / sqrt(mu) (0 where mu = 0) */
    size_t ref;               /* the outcome with eta = 1 */
    double chi2;              /* sum of squared Pearson residuals */
    double loglik;            /* Poisson log-likelihood, sum y log mu - mu - log y! */
    long dof;                 /* m J - (sum k_g^2 + J_lit + m if background - 1) */
    size_t n_params;          /* free parameters (the - 1 included) */
    unsigned n_iter;
    bool background;
    /* qubit mode: n qubits (0 otherwise), per qubit eta_q (2 values, max 1), C_q (2 x 2
     * column-major) and their errors. eff and cross above are then the products (the outcome
     * efficiencies prod_q eta_q[bit q], with errors; the Kronecker products of the C_q, whose
     * cross_se are 0: not computed). */
    unsigned n_qubits;
    double *qeff, *qeff_se;     /* 2n */
    double *qcross, *qcross_se; /* 4n */
};

/* Fits the model to in. Returns 0 and sets *ret (free with qt_calib_free), or: QT_EDESIGN (qubit
 * mode for a design other than pauli), QT_ESHAPE (no runs, too many parameters for
 * QT_CALIB_MAX_PARAMS: QT_ETOOBIG), QT_ENONFINITE / QT_ENEGATIVE (a count, naming run and outcome),
 * QT_ENOTPHYS (a state's trace is not 1, naming the run), QT_EOPTION (background without a dark
 * run, a dark run without background, only dark runs), QT_ENOTIC (a group or the whole model not
 * identifiable, named), QT_ENOCONV (max_iter reached), -ENOMEM. Messages in reterr name the run
 * (0-based), outcome and group. */
QT_NODISCARD int qt_calib_fit(const struct qt_calib_input *in, struct qt_calib **ret,
                              struct qt_diag *reterr);

/* NULL-safe. */
void qt_calib_free(struct qt_calib *cal);
