/* Spectral decomposition of an estimate as the origin reports it (origin-digest §3.5,
 * perform_spectral_decomposition): the dominant eigenvector's amplitudes and relative phases,
 * and the whole spectrum. */
#pragma once

#include <complex.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"

/* Components with |c| at most this are skipped when choosing the phase reference (the
 * origin's phase_tolerance). */
#define QT_SPECTRAL_PHASE_TOL 1e-9

/* Decomposes the d x d column-major matrix rho (d >= 1): Hermitise, eigendecompose (qt_zheev),
 * take the eigenvector c of the largest eigenvalue and renormalise it. Writes
 *   *ret_dominant  the largest eigenvalue;
 *   amp[i]         |c_i|;
 *   phase_pi[i]    arg(c_i conj(c_r)) / pi in (-1, 1], where r is the first index with
 *                  |c_r| > QT_SPECTRAL_PHASE_TOL (phase_pi[r] = 0). The origin reports
 *                  arg c_i - arg c_r unwrapped; since an eigenvector's global phase is
 *                  arbitrary (LAPACK's choice), only the value modulo 2 is meaningful, and this
 *                  is its canonical representative (a sign flip is +1, never -1);
 *   eig[i]         all eigenvalues, descending, not clipped.
 * amp, phase_pi and eig hold d doubles each. rho is not modified. Scratch comes from ws and is
 * released. Returns 0, -EINVAL (d == 0), QT_ENONFINITE, -ENOMEM, QT_ETOOBIG or QT_ELAPACK;
 * the outputs are written only on success. */
QT_NODISCARD int qt_spectral_decompose(struct qt_ws *ws, size_t d, const double complex *rho,
                                       double *ret_dominant, double *amp, double *phase_pi,
                                       double *eig);
