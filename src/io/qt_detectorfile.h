/* Detector files (JSON, through jansson): the model of num/qt_detector.h, all keys optional,
 * outcome and group order as in the design:
 *   "efficiencies": [m numbers > 0]             eta (default 1)
 *   "crosstalk": [one k_g x k_g matrix per group]  rows of C, C_ab = probability that a count
 *                                               of outcome b is registered at a (columns sum
 *                                               to 1, entries >= 0)
 *   "qubit_crosstalk": [one 2 x 2 matrix per qubit]  pauli designs, instead of "crosstalk"
 *   "background": [m numbers >= 0]              beta, in the units of the data
 *   "accidentals": {"window": tau, "time": T or [one T_g per group],
 *                   "singles": [one array of n >= 2 singles counts per outcome]}
 *                                               accidentals S_1 ... S_n tau^(n-1) / T_g^(n-1)
 *                                               (qt_detector_accidentals; seconds), added to
 *                                               "background" when both are given
 *   "setting_intensity": [one number > 0 per group]  t_g (default 1)
 * Unknown keys are errors; every error names the field and index. No file I/O. */
#pragma once

#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_design.h"
#include "num/qt_detector.h"

/* Input size limit, that of design files (jansson needs ~40 bytes per input byte). A detector
 * file holds O(m + sum k_g^2) numbers: per-group crosstalk of pauli d = 64 (3 million entries)
 * fits; larger pauli models give qubit_crosstalk instead. */
#define QT_DETECTORFILE_MAX_BYTES ((size_t)32 << 20)

/* Parses buf and checks the model against des. Returns 0 and sets *ret_det, or QT_EPARSE /
 * QT_ESHAPE / QT_EOPTION / QT_ENONFINITE / QT_ETOOBIG / -ENOMEM with a message in reterr. */
QT_NODISCARD int qt_detectorfile_parse(const char *buf, size_t len, const struct qt_design *des,
                                       struct qt_detector **ret_det, struct qt_diag *reterr);
