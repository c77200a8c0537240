/* The built-in measurement designs as a catalogue: their kinds and names, supported
 * dimensions, outcome counts, and the inference of design and dimension from a row count.
 * Arithmetic only, no numerics: part of qtomo_rec, so the wire codec and libqtomo-client can
 * check and infer designs without linking the estimators. The designs themselves are built by
 * num/qt_design.h, which includes this header. */
#pragma once

#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"

enum qt_design_kind {
    QT_DESIGN_NOPOVM = 0, /* d^2 projectors, one group, sum = H != I (MATLAB legacy) */
    QT_DESIGN_MUB = 1,    /* all d+1 mutually unbiased bases, d a prime power <= 128 */
    QT_DESIGN_SIC = 2,    /* tetrahedral SIC-POVM, d = 2, elements weighted 1/2 */
    QT_DESIGN_PAULI = 3,  /* n-qubit Pauli eigenbases, 3^n settings x 2^n outcomes */
    QT_DESIGN_CUSTOM = 4, /* loaded from a file and validated */
    _QT_DESIGN_KIND_MAX
};

/* Largest supported dimensions. */
#define QT_DESIGN_MAX_DIM      256 /* nopovm and custom */
#define QT_DESIGN_MAX_MUB_DIM  128
#define QT_DESIGN_MAX_QUBITS   9
/* Largest d of any kind (pauli, 2^9). */
#define QT_DESIGN_MAX_D        512
#define QT_DESIGN_MAX_OUTCOMES (1u << 24)

/* Parses a design name ("nopovm", "mub", "sic", "pauli", "custom"; case-insensitive).
 * Returns the kind or QT_EDESIGN. */
QT_NODISCARD int qt_design_kind_from_name(const char *name);
const char *qt_design_kind_name(enum qt_design_kind kind);

/* Outcome count of a built-in design at dimension d, or 0 when d is not supported
 * (for pauli, d must be 2^n). */
size_t qt_design_outcomes(enum qt_design_kind kind, size_t d);

/* Checks whether a built-in design supports dimension d. Returns 0 or QT_EDIM (with a
 * message in *reterr naming the reason). */
QT_NODISCARD int qt_design_check_dim(enum qt_design_kind kind, size_t d, struct qt_diag *reterr);

/* The qubit count n of d = 2^n, or 0 when d is not a power of two (or is 0). */
unsigned qt_design_qubits(size_t d);

/* Dimension from a row count. With kind < 0 the design is inferred: d^2 rows -> nopovm,
 * d(d+1) rows -> mub. On success sets *ret_kind and *ret_d. Returns QT_EDIM or QT_EDESIGN with
 * a message otherwise. Custom designs carry their own dimension and are not inferred here. */
QT_NODISCARD int qt_design_infer(int kind, size_t rows, int *ret_kind, size_t *ret_d,
                                 struct qt_diag *reterr);
