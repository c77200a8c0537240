/* Trust-region Newton-CG over density matrices, for objectives that are sums of functions of
 * the outcome probabilities: minimise F(rho) = sum_a phi_a(q_a), q_a = Re Tr(E_a rho), over
 * rho = A A^H / Tr(A A^H) with A in C^(n x n).
 *
 * The factorisation makes the problem unconstrained and reaches rank-deficient and pure states
 * (A loses rank) without a barrier. Each inner step needs one Hessian-vector product: one
 * forward map, one adjoint map and three n x n GEMMs, so the method works wherever the design's
 * maps are cheap (structured designs at large d, Pauli designs qubit by qubit). Near a
 * non-degenerate optimum it converges quadratically, which is what certifies 1e-10 gaps.
 *
 * Steihaug-Toint conjugate gradients solve the Newton system inside the trust region; negative
 * curvature and the flat gauge directions (A -> A U, A -> c A) are handled by it. */
#pragma once

#include <complex.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

/* The objective, in terms of the measurement maps (callbacks with a context). */
struct qt_newton_problem {
    size_t n; /* matrix dimension */
    size_t m; /* outcomes */
    void *ctx;
    /* q_a = Re Tr(E_a X) for a Hermitian n x n X. */
    int (*forward)(void *ctx, struct qt_ws *ws, const double complex *X, double *q);
    /* out = sum_a c_a E_a (n x n Hermitian). */
    int (*adjoint)(void *ctx, struct qt_ws *ws, const double *c, double complex *out);
    /* Returns F = sum_a phi_a(q_a) (+infinity outside the domain) and writes phi'_a and
     * phi''_a to d1 and d2 (either may be NULL). */
    double (*phi)(void *ctx, const double *q, double *d1, double *d2);
    /* Called once per outer iteration with the current rho, q, F, G = sum_a phi'_a E_a, the
     * gradient norm |dF/dA| (max entry, with |A|_F = 1) and the work so far (Hessian-vector
     * products plus objective evaluations). Returns true to stop (converged); may be NULL. */
    bool (*converged)(void *ctx, struct qt_ws *ws, const double complex *rho, const double *q,
                      double F, const double complex *G, double gnorm, unsigned work);
    /* Retry a rejected step shortened along its direction before a new model (see backtrack
     * in qt_newton.c). Only for problems that stop on a certificate: a shortened step's small
     * reduction of F would meet a stopping rule on the reduction of F (WLS's ftol) early, at a
     * worse point. Set by qt_est_mle only: the background model's polish at 10^7 counts ended
     * 6x further from the optimum with it (test_detector's 1e-8 bound failed under valgrind). */
    bool backtrack;
    /* Newton in the weight |a_k|^2 instead of in the column a_k, for columns that steps shrink
     * geometrically where F is quartic in them (see select_radial in qt_newton.c). Set by
     * qt_est_mle only, the one estimator it was measured on. */
    bool radial;
};

enum qt_newton_status {
    QT_NEWTON_CONVERGED = 0, /* the problem's converged() said so */
    QT_NEWTON_MAX_ITER = 1,  /* iteration limit */
    QT_NEWTON_STALLED = 2,   /* the trust region collapsed: no model step improves F */
};

struct qt_newton_result {
    enum qt_newton_status status;
    unsigned iterations;  /* outer (Newton) iterations */
    unsigned evaluations; /* objective evaluations */
    unsigned hessvecs;    /* Hessian-vector products */
    double F;             /* final objective */
    double gnorm;         /* final gradient norm (max entry) */
};

/* Minimises from the starting density matrix rho0 (n x n, Hermitian PSD, unit trace; mixed with
 * a little of I/n so that no probability starts at zero). On return rho (n x n) holds the
 * estimate, whatever the status. Returns 0, -ENOMEM, QT_ELAPACK, or an error from the
 * callbacks; QT_EOPTION when F is not finite at the start. */
QT_NODISCARD int qt_newton_solve(const struct qt_newton_problem *pb, struct qt_ws *ws,
                                 const double complex *rho0, unsigned max_iterations,
                                 double complex *rho, struct qt_newton_result *ret);

/* When to stop once the certificate is met (qt_est_mle, qt_mlebg): more Newton steps take the
 * gap further while they make progress, so the estimate is as good as the data allow (usually
 * one step, or a few dozen when weights at rounding level put the optimum at q ~ 1e-17, where
 * the trust region converges only linearly). Polishing stops at 1e-3 tol, after 3 checks
 * without halving the gap (rounding level reached), after 30 checks, or once it has cost more
 * than a quarter of the work that reached the certificate and more than 64 units (Hessian-
 * vector products plus evaluations). On pauli 8-qubit pure states steps at rounding level
 * cost 60 units each and polishing took 40 % of the time, for a gap already below tol; small
 * problems polish on as before (3 of 148 runs of test_mle's random cases, d <= 16, polished
 * longer than this). With the budget, a check whose gap is above tol again ends polishing too,
 * and the caller keeps its best certified point (qt_est_mle): steps at rounding level are also
 * accepted for lowering the gradient in A, and on pauli 8-qubit pure states such a step took
 * the gap from 4e-12 to 2e-10, after which re-certifying cost 1.4-2.5 s. */
struct qt_polish {
    unsigned checks; /* since the certificate was first met */
    unsigned idle;   /* consecutive checks without halving the best gap */
    unsigned work0;  /* the solver's work when the certificate was first met */
    double best;     /* best gap while polishing */
    bool budget;     /* stop at the work budget (below) or on leaving tol; qt_mlebg polishes on
                        without either */
};

#define QT_POLISH_INIT(budget) {0, 0, 0, INFINITY, budget}

/* At a check with certificate gap, goal tol and the solver's work so far: true when the solver
 * should stop. */
static inline bool qt_polish_done(struct qt_polish *p, double gap, double tol, unsigned work)
{
    if (gap > tol)
        return p->budget && p->checks > 0;
    if (p->checks == 0)
        p->work0 = work;
    if (gap <= 1e-3 * tol || ++p->checks > 30 ||
        (p->budget && work - p->work0 > fmax(p->work0 / 4, 64)))
        return true;
    if (p->checks == 1 || gap <= 0.5 * p->best) {
        p->best = gap;
        p->idle = 0;
        return false;
    }
    return ++p->idle >= 3;
}
