/* State and data metrics of an estimate (origin-digest §3 plus what the origin lacked). */
#pragma once

#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_result.h"
#include "num/qt_rho.h"
#include "num/qt_sample.h"

/* Fills res->mt and res->eigenvalues from res->rho, whose spectrum is sp:
 *  - purity Re Tr rho^2, trace, eigenvalues (descending, those below
 *    max(tolerance, 50 d eps max(1, |rho|_2)) reported as 0, as the origin does), their min and
 *    max, eigenvalue_entropy (natural log, origin rule) and entropy_bits, linear_entropy
 *    1 - Tr rho^2;
 *  - with opts->target: fidelity (Uhlmann, unrounded) and trace_distance;
 *  - with QT_MG_ENTANGLEMENT: d = 4: concurrence; d = k^2: negativity and log_negativity
 *    (partial transpose over the second k-level factor);
 *  - with opts->bell and d = k^2: Bell fidelities and the origin's bell_* summary;
 *  - with QT_MG_DATA and data y (non-negative): chi2 (Pearson, expected counts N_g p_a) and
 * log_likelihood sum_a y_a ln p_a, where p_a is Tr(rho E_a) normalised within its group for POVM
 * designs and within the whole design otherwise (the conditional Poisson model). y may be NULL;
 *  - with opts->spectral: res->has_spectral and the spectral fields (qt_spectral_decompose of
 *    rho, not of sp, so the result does not depend on the eigensolver that produced sp).
 * Returns 0, -ENOMEM or QT_ELAPACK. */
QT_NODISCARD int qt_metrics_fill(const struct qt_design *des, struct qt_ws *ws, const double *y,
                                 const struct qt_sample_info *info, const struct qt_spectrum *sp,
                                 const struct qt_opts *opts, struct qt_result *res);

/* Eigenvalues computed ahead for one result's entanglement metrics (NULL: compute them). */
struct qt_metrics_pre {
    const double *conc_mu; /* 4, ascending: qt_rho_concurrence_matrix's spectrum */
    const double *pt_w;    /* d: the partial transpose's spectrum */
};

/* qt_metrics_fill with the eigenvalue problems of pre (may be NULL) already solved. */
QT_NODISCARD int qt_metrics_fill_pre(const struct qt_design *des, struct qt_ws *ws,
                                     const double *y, const struct qt_sample_info *info,
                                     const struct qt_spectrum *sp, const struct qt_opts *opts,
                                     const struct qt_metrics_pre *pre, struct qt_result *res);

/* For a batch of `count` physical states rho[k] with spectra sp[k] (dimension d): solves the
 * eigenvalue problems of their entanglement metrics together (qt_heev_batch, one SIMD lane per
 * state, ~10x faster than LAPACK one at a time at d = 4), into eig
 * (qt_metrics_batch_doubles(d, count) doubles), and points pre[k] at them. A state whose
 * problem the batch could not solve, or a d the batch does not take, keeps NULL there and
 * qt_metrics_fill_pre solves it alone. The eigenvalues agree with LAPACK's to ~1e-15 of the
 * matrix's norm, and do not depend on the rest of the batch. Returns 0 or -ENOMEM. */
size_t qt_metrics_batch_doubles(size_t d, size_t count);
QT_NODISCARD int qt_metrics_batch_pre(struct qt_ws *ws, size_t d, size_t count,
                                      const struct qt_spectrum *sp,
                                      const double complex *const *rho,
                                      const struct qt_opts *opts, double *eig,
                                      struct qt_metrics_pre *pre);

/* Model probabilities p (des->m) of rho under the design's likelihood model (see above). */
QT_NODISCARD int qt_metrics_model_probs(const struct qt_design *des, struct qt_ws *ws,
                                        const double complex *rho, double *p);
