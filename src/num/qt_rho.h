/* Density-matrix operations: physicalisation of raw estimates, spectra, and the state metrics
 * that need a spectral decomposition (fidelity, trace distance, concurrence, negativity).
 * All matrices are d x d column-major double complex. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_result.h"

/* A spectral decomposition rho = V diag(lam) V^H, lam ascending. */
struct qt_spectrum {
    size_t d;
    double complex *V; /* d x d, orthonormal columns */
    double *lam;       /* d, ascending */
};

struct qt_phys_info {
    double tol;         /* tolerance actually used: max(tolerance, 50 d eps max(1, |H|_2)) */
    double min_eig_raw; /* smallest eigenvalue of the Hermitian part of the raw estimate */
    size_t n_clipped;   /* eigenvalues set to zero */
    bool significant;   /* min_eig_raw < -10 tol: the origin's "significant negative" warning */
    bool fallback;      /* the spectrum summed to <= tol and rho became I/d */
};

/* Physicalises raw into rho. QT_PHYS_CLIP is the origin's within_tol: Hermitise, eigen-
 * decompose, set eigenvalues below tol to zero, renormalise (I/d if nothing is left), rebuild,
 * Hermitise, divide by the real trace. QT_PHYS_SMOLIN divides by the trace (when positive) and
 * projects the spectrum onto the probability simplex (Smolin, Gambetta, Smith, PRL 108, 070502),
 * the nearest density matrix in 2-norm. On success sp holds the spectrum of rho. raw and rho may
 * alias. Returns 0, -ENOMEM or QT_ELAPACK. */
QT_NODISCARD int qt_rho_physicalise(struct qt_ws *ws, size_t d, const double complex *raw,
                                    enum qt_physical mode, double tolerance, double complex *rho,
                                    struct qt_spectrum *sp, struct qt_phys_info *info);

/* The second half of qt_rho_physicalise, for a spectrum computed elsewhere (the batched path):
 * sp holds the spectrum of the Hermitian part of the raw estimate and becomes rho's. */
QT_NODISCARD int qt_rho_physicalise_spectrum(struct qt_ws *ws, enum qt_physical mode,
                                             double tolerance, struct qt_spectrum *sp,
                                             double complex *rho, struct qt_phys_info *info);

/* Spectrum of the Hermitian part of rho. Returns 0, -ENOMEM, QT_ELAPACK. */
QT_NODISCARD int qt_rho_spectrum(struct qt_ws *ws, size_t d, const double complex *rho,
                                 struct qt_spectrum *sp);

/* Euclidean projection of x[0..n) onto the probability simplex, in place; scratch holds n
 * doubles. */
void qt_simplex_project(size_t n, double *x, double *scratch);

/* Uhlmann fidelity (Tr sqrt(sqrt(rho) sigma sqrt(rho)))^2, unrounded; sp is rho's spectrum. */
QT_NODISCARD int qt_rho_fidelity(struct qt_ws *ws, const struct qt_spectrum *sp,
                                 const double complex *sigma, double *ret_f);

/* Trace distance (1/2) |rho - sigma|_1. */
QT_NODISCARD int qt_rho_trace_distance(struct qt_ws *ws, size_t d, const double complex *rho,
                                       const double complex *sigma, double *ret_t);

/* Wootters concurrence of a two-qubit state (d = 4); sp is rho's spectrum. */
QT_NODISCARD int qt_rho_concurrence(struct qt_ws *ws, const struct qt_spectrum *sp,
                                    const double complex *rho, double *ret_c);

/* Trace norm of the partial transpose over the second factor of a k x k bipartition
 * (d = k^2). Negativity = (n - 1) / 2, log-negativity = log2 n. */
QT_NODISCARD int qt_rho_pt_norm(struct qt_ws *ws, size_t d, const double complex *rho,
                                double *ret_n);

/* The same two in steps, for callers that batch the eigenvalue problems (qt_heev_batch):
 * qt_rho_concurrence_matrix writes the 4 x 4 Hermitian C whose eigenvalues mu (ascending)
 * give qt_rho_concurrence_from(mu); qt_rho_pt_matrix writes rho's partial transpose P
 * (Hermitised), whose eigenvalues w give the trace norm qt_rho_trace_norm_from(d, w). */
QT_NODISCARD int qt_rho_concurrence_matrix(struct qt_ws *ws, const struct qt_spectrum *sp,
                                           const double complex *rho, double complex *C);
double qt_rho_concurrence_from(const double mu[4]);
void qt_rho_pt_matrix(size_t d, const double complex *rho, double complex *P);
double qt_rho_trace_norm_from(size_t d, const double *w);

/* Fidelities <Phi_i|rho|Phi_i> with the generalised Bell basis of a k x k system (d = k^2), in
 * the origin's order |Phi_{m,n}> = k^-1/2 sum_j w^(mj) |j>|j+n mod k>, index m k + n. */
void qt_rho_bell(size_t d, const double complex *rho, double *fid);

/* k with k * k == d, or 0. */
size_t qt_isqrt_exact(size_t d);
