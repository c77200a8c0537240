/* Parsers for the JSON files users hand to qtomoctl: custom measurement designs and target
 * states. Bytes in (through jansson), validated objects out; no file I/O. Every error names the
 * key, index or element that was wrong.
 *
 * Design file:
 *   {"dim": d, "vectors": {"re": [[...] x m], "im": [[...] x m]}}   rows are kets (m x d), or
 *   {"dim": d, "elements": {"re": [m][d][d], "im": [m][d][d]}}     element a row-major,
 *   optional "groups": [m non-negative integers], "weights": [m positive numbers],
 *   "name": string (informational). "im" may be omitted (real design). Unknown keys are errors.
 *
 * Target file (any one of):
 *   {"ket": {"re": [d], "im": [d]}}                     normalised automatically
 *   {"rho": {"re": [[d x d]], "im": [[d x d]]}}         rows; Hermitian, PSD, unit trace
 *   {"density_matrix": {"real": [[...]], "imag": [[...]]}}   the origin's record format
 *   {"amplitudes": [d], "phases_pi": [d]}               psi_k = c_k exp(i pi phi_k), the
 *                                                       origin's theoretical-state convention
 *   optional "dim": d (must match). */
#pragma once

#include <complex.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"

/* Input size limit for both parsers. jansson needs about 40 bytes of memory per input byte, so
 * this bounds a parse to ~1.3 GB; a d = 64 design given by its kets fits in ~10 MB. */
#define QT_DESIGNFILE_MAX_BYTES ((size_t)32 << 20)

/* Parses and validates a custom design (qt_design_new_custom does the physics checks).
 * Returns 0 and sets *ret_des, or QT_EPARSE / QT_ESHAPE / QT_ENOTPSD / QT_ENOTIC / QT_EDIM /
 * QT_ETOOBIG / QT_ELAPACK (values so extreme the decomposition fails) / -ENOMEM with a message
 * in reterr. */
QT_NODISCARD int qt_designfile_parse(const char *buf, size_t len, struct qt_design **ret_des,
                                     struct qt_diag *reterr);

/* Parses a target state for dimension d into ret_rho (d x d, column-major, caller-allocated),
 * a density matrix: Hermitian within 1e-9 relative, eigenvalues >= -1e-9, and trace 1 within
 * 1e-6 (then renormalised exactly); kets and amplitude lists are normalised.
 * Returns 0, or QT_EPARSE / QT_ESHAPE / QT_EDIM / QT_ENOTPHYS / -ENOMEM with a message. */
/* The density-matrix checks of qt_targetfile_parse on a d x d matrix from elsewhere (the wire):
 * makes it exactly Hermitian with unit trace. Returns 0, QT_ENOTPHYS or a LAPACK error. */
QT_NODISCARD int qt_target_check(size_t d, double complex *rho, struct qt_diag *reterr);

QT_NODISCARD int qt_targetfile_parse(const char *buf, size_t len, size_t d, double complex *ret_rho,
                                     struct qt_diag *reterr);
