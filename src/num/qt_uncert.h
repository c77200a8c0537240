/* The error bars of one (sample, method) result as records and the protocol report them
 * (issue 16): how they were made (resamples, kind, seed, confidence, shots), what they are
 * (per metric std and percentile interval, per-element std of rho), and when not to trust
 * them. Computed by qt_bootstrap.h; this header is what the wire layer and the client library
 * need of it (no numerics). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "num/qt_result.h"

enum qt_resample_kind { QT_RESAMPLE_DATA, QT_RESAMPLE_PARAMETRIC };

/* "data", "parametric"; NULL for anything else. */
const char *qt_resample_kind_name(enum qt_resample_kind k);
/* The kind named s: 0 and *k, or -EINVAL. */
int qt_resample_kind_from_name(const char *s, enum qt_resample_kind *k);

/* What a request asks for: resamples 0 means no error bars. */
struct qt_boot_req {
    uint32_t resamples;
    enum qt_resample_kind kind;
    bool has_seed; /* false: the server chooses one and reports it */
    uint64_t seed;
    double confidence; /* 0 in a request means the default, QT_BOOT_CONFIDENCE */
    uint64_t shots;    /* counts per group for data given as probabilities or powers, or 0 */
};

#define QT_BOOT_CONFIDENCE    0.95
#define QT_BOOT_MAX_RESAMPLES 100000u
/* Seeds and shots are below 2^53, so that every JSON reader keeps them exact. */
#define QT_BOOT_MAX_SEED ((UINT64_C(1) << 53) - 1)

struct qt_boot_stat {
    double std, lo, hi;
};

/* Why an interval may not be trusted (qt_uncertainty.warn); names: qt_boot_warn_name. */
enum {
    QT_BOOT_WARN_BOUNDARY = 1u << 0, /* the point estimate is rank-deficient: percentile
                                        intervals around it are biased (Guta et al. 2020) */
    QT_BOOT_WARN_FAILED = 1u << 1,   /* some resamples could not be estimated */
    _QT_BOOT_WARN_COUNT = 2
};

/* "boundary_estimate", "resamples_failed". */
const char *qt_boot_warn_name(unsigned i);

struct qt_uncertainty {
    /* how */
    uint32_t resamples;
    enum qt_resample_kind kind;
    uint64_t seed;
    double confidence;
    uint64_t shots; /* counts per group the data were taken as (0: the data were counts) */
    /* what */
    int err;           /* 0, or why there are no error bars (the estimate itself stands) */
    char errmsg[160];  /* err != 0 */
    uint32_t failed;   /* resamples whose estimate failed (not in the stats) */
    unsigned warn;     /* QT_BOOT_WARN_* */
    size_t d;
    uint64_t have;     /* bit QT_MT_x: stats[x] (f64) or veig/vbell (f64v) is set */
    struct qt_boot_stat stats[_QT_MT_MAX];
    struct qt_boot_stat *veig, *vbell; /* d each when have has EIGENVALUES / BELL_FIDELITIES */
    double *rho_std_re, *rho_std_im;   /* d x d column-major */
    bool has_td_bound;
    double td_bound; /* linear: trace-distance confidence bound at `confidence` (qt_tdbound.h) */
};

void qt_uncertainty_done(struct qt_uncertainty *u); /* NULL-safe; all pointers malloc'd */

/* Fills u (freeing what it held, keeping its failed count) with what a request asked for
 * (resamples, kind, seed, confidence, shots) and an error: the error bars of a result that gets
 * none. */
void qt_boot_fail(struct qt_uncertainty *u, const struct qt_boot_req *b, uint64_t seed, int err,
                  const char *msg);
