/* Bootstrap error bars for one sample and one method (issue 16): N resamples of the sample's
 * counts (qt_resample.h, streams keyed by seed, sample index and resample index), each
 * re-estimated with the same method and options (iterative methods start from the point
 * estimate), give for every scalar numeric metric of the point estimate its standard deviation
 * over the resamples and the percentile interval at the confidence asked, and the per-element
 * standard deviation of rho. Deterministic: the same arguments give the same numbers, whichever
 * process or thread computes them.
 *
 * This is the numerics only; the records, requests and the daemon's spreading of resamples over
 * its workers are not built on it yet. */
#pragma once

#include <complex.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_resample.h"
#include "num/qt_result.h"

struct qt_boot_opts {
    uint32_t resamples;         /* N >= 2 */
    enum qt_resample_kind kind; /* data or parametric */
    uint64_t seed;
    uint64_t sample;   /* the sample's index in its batch: part of each resample's stream */
    double confidence; /* of the percentile interval, in (0, 1) */
};

struct qt_boot_stat {
    double std, lo, hi;
};

struct qt_uncertainty {
    uint32_t resamples, failed; /* failed: resamples whose estimate failed (not in the stats) */
    uint64_t have;              /* bit QT_MT_x: stats[x] is set (a scalar f64 metric) */
    struct qt_boot_stat stats[_QT_MT_MAX];
    double *rho_std_re, *rho_std_im; /* d x d column-major, malloc'd; qt_uncertainty_done */
};

void qt_uncertainty_done(struct qt_uncertainty *u); /* NULL-safe */

/* Error bars of `point` (a successful result of `method` on y, des->m values, with opts). y must
 * be counts (see qt_resample). Returns 0; -EDOM for non-counts, QT_EOPTION for bad boot options,
 * QT_ENOCONV when fewer than two resamples could be estimated, -ENOMEM. */
QT_NODISCARD int qt_bootstrap(const struct qt_design *des, struct qt_ws *ws, enum qt_method method,
                              const double *y, const struct qt_opts *opts,
                              const struct qt_result *point, const struct qt_boot_opts *bo,
                              struct qt_uncertainty *out);
