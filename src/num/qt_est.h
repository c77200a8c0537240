/* Entry points of the iterative estimators, called by qt_estimate (private to src/num).
 *
 * Each gets a validated sample: y the raw values and f the origin's per-group normalisation of
 * them, and start, the physical linear estimate (d x d) or NULL when the method does not use
 * one. It writes its estimate to rho (d x d, Hermitian, unit trace, before the origin's final
 * physicalisation), records its own metrics (iterations, convergence, diagnostics) and
 * warnings in res, and returns 0, or a negative error after qt_result_fail. The caller computes
 * the common metrics afterwards. */
#pragma once

#include <complex.h>

#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"

QT_NODISCARD int qt_est_mle(const struct qt_design *des, struct qt_ws *ws, const double *y,
                            const double *f, const double complex *start,
                            const struct qt_opts *opts, double complex *rho, struct qt_result *res);

QT_NODISCARD int qt_est_wls(const struct qt_design *des, struct qt_ws *ws, const double *y,
                            const double *f, const double complex *start,
                            const struct qt_opts *opts, double complex *rho, struct qt_result *res);

QT_NODISCARD int qt_est_rhor(const struct qt_design *des, struct qt_ws *ws, const double *y,
                             const double *f, const double complex *start,
                             const struct qt_opts *opts, double complex *rho,
                             struct qt_result *res);
