/* Validation and per-group normalisation of one raw sample, exactly as the origin normalises
 * (origin-digest §1.7): f_a = y_a / sum_{b in g(a)} y_b, a group whose sum is within tolerance of
 * zero is an error. Bad values never pass silently: each error names the outcome or group. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"

struct qt_sample_info {
    bool negative; /* some value is < 0 */
    double total;  /* sum of all values */
};

/* Validates y[0..n) for des and writes the normalised frequencies to f (des->m values; f may be
 * NULL to validate only). Errors: QT_ESAMPLELEN, QT_ENONFINITE, QT_EZEROGROUP, with a message
 * naming the outcome (1-based row, as in the input file) or the group. *info is filled on
 * success. */
QT_NODISCARD int qt_sample_normalise(const struct qt_design *des, const double *y, size_t n,
                                     double tolerance, double *f, struct qt_sample_info *info,
                                     struct qt_diag *reterr);
