/* Parsers for the JSON files users hand to qtomoctl: custom measurement designs and target
 * states. Bytes in (through jansson), validated objects out; no file I/O. Every error names the
 * key, index or element that was wrong.
 *
 * Design file:
 *   {"dim": d, "vectors": {"re": [[...] x m], "im": [[...] x m]}}   rows are kets (m x d), or
 *   {"dim": d, "elements": {"re": [m][d][d], "im": [m][d][d]}}     element a row-major,
 *   optional "groups": [m non-negative integers], "weights": [m positive numbers],
 *   "background": [m numbers >= 0] (known background counts, in data units; all outcomes in one
 *   group: what detector models write, num/qt_detector.h), "name": string (informational). "im" may be omitted (real design). Unknown keys are errors.
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
#include <stdbool.h>
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

/* What qt_targetfile_parse did to a "rho"/"density_matrix" that was near, but not within the
 * strict tolerances of, a density matrix (a published matrix printed to a few decimals). */
struct qt_target_fix {
    bool projected;     /* rho was projected onto the density matrices; the rest says how far */
    double trace;       /* trace of the matrix as given */
    double herm_defect; /* ||A - A^H||_F / ||A||_F as given */
    double min_eig;     /* smallest eigenvalue of its Hermitian part over its trace */
    double distance;    /* trace distance between that (Hermitian part / trace) and the result */
};

/* Parses a target state for dimension d into ret_rho (d x d, column-major, caller-allocated).
 * The file holds exactly one of "ket" ({re, im} or a real array), "rho" ({re, im} rows),
 * "density_matrix" (the origin's record: {real, imag} rows or real rows), "amplitudes" with
 * "phases_pi" (the origin's psi_k = c_k exp(i pi phi_k)), or "profile" (a named theory state,
 * num/qt_theory.h: "4D_custom", "16D_custom", whose d must be the data's); optionally "dim".
 * Kets, amplitude lists and profiles are normalised. A matrix that is a density matrix
 * (Hermitian within 1e-9 relative, eigenvalues >= -1e-9, trace 1 within 1e-6) is made exactly
 * Hermitian and renormalised; one within 1e-3 of being one (relative Hermitian defect, |trace -
 * 1|, smallest eigenvalue of its Hermitian part / trace >= -1e-3) is projected: Hermitised,
 * negative eigenvalues set to 0, renormalised, and *ret_fix (may be NULL) says how far it was
 * (ret_fix->projected; all zero otherwise). Beyond that it is refused.
 * Returns 0, or QT_EPARSE / QT_ESHAPE / QT_EDIM / QT_ENOTPHYS / -ENOMEM with a message. */
QT_NODISCARD int qt_targetfile_parse(const char *buf, size_t len, size_t d, double complex *ret_rho,
                                     struct qt_target_fix *ret_fix, struct qt_diag *reterr);

/* The strict density-matrix checks of qt_targetfile_parse (no projection) on a d x d matrix
 * from elsewhere (the wire: qtomoctl sends a projected target, never the matrix as given):
 * makes it exactly Hermitian with unit trace, and leaves a state that passed once bit for bit
 * as it is. Returns 0, QT_ENOTPHYS or a LAPACK error. */
QT_NODISCARD int qt_target_check(size_t d, double complex *rho, struct qt_diag *reterr);
