/* Bootstrap error bars (issue 16): N resamples of a sample's counts (qt_resample.h, streams
 * keyed by seed, sample index and resample index), each re-estimated with the same method and
 * options (iterative methods start from the point estimate), give for every numeric metric of
 * the point estimate that describes the state its standard deviation over the resamples and the
 * percentile interval at the confidence asked, and the per-element standard deviation of rho.
 *
 * The work is split so that any process can compute any range of resamples and one place
 * reduces them: qt_boot_run fills rows of raw values (one row per resample, layout below) for
 * resamples [k0, k0 + n), and qt_boot_reduce turns all N rows, in resample order, into the
 * statistics. The same seed therefore gives bit-identical numbers whichever processes computed
 * which ranges (the daemon's workers, qtomoctl --local).
 *
 * A row (qt_boot_stride doubles): [0] 1 when the resample was estimated, 0 when it failed;
 * then the scalar f64 metrics of `have` in QT_METRICS order; then the d eigenvalues and the d
 * Bell fidelities when `have` has them; then Re rho and Im rho (d x d column-major each). */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_resample.h"
#include "num/qt_result.h"
#include "num/qt_uncert.h"

struct qt_boot_opts {
    uint32_t resamples;         /* N >= 2 */
    enum qt_resample_kind kind; /* data or parametric */
    uint64_t seed;
    uint64_t sample;   /* the sample's index in its batch: part of each resample's stream */
    double confidence; /* of the percentile interval, in (0, 1) */
};

/* The metrics of point that get error bars: the numeric ones that are functions of the state
 * (purity, eigenvalues, entropies, fidelities, entanglement measures), not the solver's own
 * (gap, objective, likelihoods, residuals, iteration diagnostics). */
uint64_t qt_boot_have(const struct qt_result *point);
/* Doubles per row. */
size_t qt_boot_stride(uint64_t have, size_t d);
/* Whether the point estimate is on the boundary of state space (smallest eigenvalue at most
 * tol, or a rank below d). */
bool qt_boot_boundary(const struct qt_result *point, size_t d, double tol);

/* Checks bo: QT_EOPTION unless 2 <= resamples <= QT_BOOT_MAX_RESAMPLES and confidence is in
 * (0, 1). */
QT_NODISCARD int qt_boot_check(const struct qt_boot_opts *bo);

/* Resamples [k0, k0 + n) of `point` (a successful result of `method` on y, des->m counts, with
 * opts) into raw (n rows of qt_boot_stride(have, d)). have must be qt_boot_have(point). A
 * resample that cannot be estimated, or whose iterative estimate did not converge, gets a row
 * of zeros (a failed resample). Returns 0; QT_ENOTCOUNTS for non-counts,
 * -ENOMEM. */
QT_NODISCARD int qt_boot_run(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                             const double *y, const struct qt_opts *opts,
                             const struct qt_result *point, const struct qt_boot_opts *bo,
                             uint64_t have, uint32_t k0, uint32_t n, double *raw);

/* The statistics of the N rows of raw (in resample order), into out (which the caller frees
 * with qt_uncertainty_done; out->resamples = N, out->warn gets QT_BOOT_WARN_FAILED when rows
 * failed). Returns 0, QT_ENOCONV when fewer than two rows succeeded, -ENOMEM. */
QT_NODISCARD int qt_boot_reduce(const double *raw, uint32_t N, uint64_t have, size_t d,
                                double confidence, struct qt_uncertainty *out);

/* All of it for one method in one call: run over [0, N), reduce, and the boundary warning.
 * Returns 0; QT_EOPTION for bad boot options, QT_ENOTCOUNTS for non-counts, QT_ENOCONV, -ENOMEM. */
QT_NODISCARD int qt_bootstrap(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                              const double *y, const struct qt_opts *opts,
                              const struct qt_result *point, const struct qt_boot_opts *bo,
                              struct qt_uncertainty *out);

/* The counts a sample's resamples are drawn from (des->m into out): y itself when shots is 0
 * (y must then be whole counts), else y as `shots` counts per group. Returns 0, or QT_ENOTCOUNTS
 * with the reason in msg (which outcome is not a count, and that --shots is needed). */
QT_NODISCARD int qt_boot_counts(const struct qt_design *des, struct qt_ws *ws, const double *y,
                                uint64_t shots, double *out, char *msg, size_t msglen);
