/* Whitened measurement maps for the likelihood estimators. With H = sum_a E_a, the whitened
 * elements E~_a = B^H E_a B, B = U_S diag(h_S)^(-1/2) on the support S of H, sum to the identity,
 * so a design that is not a POVM (nopovm) turns its conditional Poisson likelihood
 * sum_a n_a ln[Tr(rho E_a) / Tr(rho H)] into sum_a n_a ln Tr(sigma E~_a) over density matrices
 * sigma = B^-1 rho B^-H / Tr(rho H) (origin-digest §2.4). For POVM designs H = C I and the
 * whitening is the scale 1/C ("trivial"); the design's own fast maps are used then. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"

struct qt_whiten {
    size_t d, ds, m;       /* dimension, whitened (support) dimension, outcomes */
    bool trivial;          /* POVM: E~_a = E_a / C */
    double C;              /* the scale, for trivial */
    double complex *B;     /* d x ds, non-trivial only */
    double *hw;            /* ds eigenvalues of H on the support, non-trivial only */
    double complex *kets;  /* ds x m whitened kets B^H k_a (rank-1 designs) */
    double complex *elems; /* ds^2 x m whitened elements (other designs) */
    /* The origin's diagnostics. */
    double eig_min_H, eig_max_H; /* extreme eigenvalues of (H + H^H)/2 */
    double sum_dev_abs;          /* max |sum_a E~_a - I| */
    double sum_dev_fro;          /* |sum_a E~_a - I|_F */
    bool sum_valid;              /* numpy allclose(sum, I, atol = 1e-8 ds) */
    double min_eig_sample; /* smallest eigenvalue of the first two E~_a (ds <= 10), else NaN */
};

/* The origin's RrhoStrictReconstructor defaults for the support and floors. */
#define QT_WHITEN_EIG_REL 1e-10
#define QT_WHITEN_EPS     1e-12

/* Builds the whitening of des. The support is {h > max(eig_abs, eig_rel max(h_max, 1))}, or the
 * largest eigenvalue alone when that is empty; inverse square roots use max(h, eps) floors.
 * Returns 0 or -ENOMEM / QT_ELAPACK; release with qt_whiten_done. */
QT_NODISCARD int qt_whiten_init(struct qt_whiten *wh, const struct qt_design *des, struct qt_ws *ws,
                                double eig_rel, double eig_abs, double eps);
void qt_whiten_done(struct qt_whiten *wh); /* NULL-safe, idempotent */

/* q_a = Re Tr(E~_a sigma) for a ds x ds Hermitian sigma. */
QT_NODISCARD int qt_whiten_forward(const struct qt_whiten *wh, const struct qt_design *des,
                                   struct qt_ws *ws, const double complex *sigma, double *q);

/* out = sum_a c_a E~_a (ds x ds, Hermitian). */
QT_NODISCARD int qt_whiten_adjoint(const struct qt_whiten *wh, const struct qt_design *des,
                                   struct qt_ws *ws, const double *c, double complex *out);

/* The same two maps with outcome vectors in the design's native order, which a solver that only
 * sums over outcomes may use instead: plain pauli designs (trivial whitening, no mixing
 * structure) then skip a permutation of m entries on each call; for every other design the
 * native order is the design's order. qt_whiten_to_native puts a design-order vector v into
 * native order (out must not alias v). Return 0 or -ENOMEM. */
QT_NODISCARD int qt_whiten_forward_native(const struct qt_whiten *wh, const struct qt_design *des,
                                          struct qt_ws *ws, const double complex *sigma, double *q);
QT_NODISCARD int qt_whiten_adjoint_native(const struct qt_whiten *wh, const struct qt_design *des,
                                          struct qt_ws *ws, const double *c, double complex *out);
QT_NODISCARD int qt_whiten_to_native(const struct qt_whiten *wh, const struct qt_design *des,
                                     struct qt_ws *ws, const double *v, double *out);

/* rho = B sigma B^H / max(Tr(B sigma B^H), eps) (d x d), Hermitised. */
QT_NODISCARD int qt_whiten_to_rho(const struct qt_whiten *wh, struct qt_ws *ws,
                                  const double complex *sigma, double eps, double complex *rho);

/* The inverse map on the support: sigma = B^+ rho B^+H / Tr (ds x ds), for warm starts. */
QT_NODISCARD int qt_whiten_from_rho(const struct qt_whiten *wh, struct qt_ws *ws,
                                    const double complex *rho, double complex *sigma);
