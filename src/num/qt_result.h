/* The record types of estimation, without the numerics: methods and their names, the
 * estimator options, the metric table, warnings, and the per-(sample, method) result record.
 * The metric list below is the single source of the metric names, types and output order: JSON
 * records, summary tables and the wire encoding all iterate qt_metric_descs.
 *
 * Built as the static library qtomo_rec, which needs no BLAS, LAPACK or xxhash: the wire codec
 * (proto/) and libqtomo-client use these types without linking the estimators. The estimators
 * themselves are in num/qt_estimate.h, which includes this header. */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"

enum qt_method {
    QT_METHOD_LINEAR = 0, /* origin-identical linear inversion + physicalisation */
    QT_METHOD_MLE = 1,    /* true maximum likelihood with an optimality certificate */
    QT_METHOD_WLS = 2,    /* the origin's Pearson chi^2 fit, done with analytic gradients */
    QT_METHOD_RHOR = 3,   /* the origin's R rho R iteration */
    _QT_METHOD_MAX
};

/* Returns the method for a name ("linear", "mle", "wls", "rhor") or QT_EMETHOD. */
QT_NODISCARD int qt_method_from_name(const char *name);
const char *qt_method_name(enum qt_method m);

enum qt_physical {
    QT_PHYS_CLIP = 0,   /* the origin's "within_tol" eigenvalue truncation (origin-digest §2.1) */
    QT_PHYS_SMOLIN = 1, /* nearest density matrix in 2-norm to the trace-normalised estimate */
};

/* Metric groups (qt_opts.metrics). The spectrum, purity and trace are always computed. */
enum qt_metric_group {
    QT_MG_ENTANGLEMENT = 1u << 0, /* concurrence (d = 4), negativity (d = k^2) */
    QT_MG_DATA = 1u << 1,         /* chi2, log_likelihood, and the linear residual_norm */
    QT_MG_ALL = QT_MG_ENTANGLEMENT | QT_MG_DATA,
};

/* Maximum likelihood (qt_est_mle.c). */
struct qt_mle_opts {
    double gap_tol;          /* stop when the optimality gap bound is <= this (1e-10) */
    unsigned max_iterations; /* Newton iterations (500) */
};

/* The origin's weighted least squares, origin-digest §2.3 (qt_est_wls.c). */
struct qt_wls_opts {
    unsigned max_iterations;  /* 2000, as the origin */
    double ftol;              /* relative objective change (1e-9, as the origin) */
    double gtol;              /* gradient norm (1e-9, as the origin's L-BFGS-B gtol) */
    double min_expected_clip; /* floor of the model probability in the denominator (1e-12) */
};

/* The origin's R rho R, origin-digest §2.4 (qt_est_rhor.c); the defaults are its own. */
struct qt_rhor_opts {
    unsigned max_iterations; /* 5000 */
    double tol_state;        /* Frobenius change of sigma (1e-8) */
    double tol_ll;           /* change of the log-likelihood (1e-9) */
    double eps_prob;         /* probability and trace floors (1e-12) */
    double eig_rel_thresh;   /* support of H: relative threshold (1e-10) */
    double eig_abs_thresh;   /* support of H: absolute threshold (0 = none) */
    bool use_diluted;        /* diluted iteration R <- mu R + (1 - mu) I (off) */
    double diluted_mu;       /* 0.9 */
    bool warm_start;         /* start from the linear estimate instead of I (off: origin) */
};

struct qt_opts {
    double tolerance;          /* zero-group test and eigenvalue clip (origin CLI default 1e-9) */
    unsigned metrics;          /* QT_MG_* groups to compute (default QT_MG_ALL) */
    enum qt_physical physical; /* physicalisation of the linear estimate */
    bool bell;                 /* Bell-basis fidelities when d is a perfect square */
    bool spectral;             /* the origin's spectral decomposition (num/qt_spectral.h) */
    const double complex *target; /* optional d x d target density matrix (borrowed) */
    struct qt_mle_opts mle;
    struct qt_wls_opts wls;
    struct qt_rhor_opts rhor;
};

/* Fills *o with the defaults. */
void qt_opts_init(struct qt_opts *o);

/* X(ENUM, field, type): the metrics, in output order. The first block follows the origin's
 * summary.csv column order (origin-digest §4.5); the rest are the fields the origin dropped and
 * the ones it never had. Types: F64 double, I64 int64_t, BOOL bool, STR const char * (static
 * text), F64V const double * with a count field <name>_n. */
#define QT_METRICS(X)                                      \
    X(PURITY, purity, F64)                                 \
    X(TRACE, trace, F64)                                   \
    X(RESIDUAL_NORM, residual_norm, F64)                   \
    X(RANK, rank, I64)                                     \
    X(OBJECTIVE, objective, F64)                           \
    X(N_ITERATIONS, n_iterations, I64)                     \
    X(N_EVALUATIONS, n_evaluations, I64)                   \
    X(SUCCESS, success, BOOL)                              \
    X(STATUS, status, I64)                                 \
    X(MIN_EIGENVALUE, min_eigenvalue, F64)                 \
    X(MAX_EIGENVALUE, max_eigenvalue, F64)                 \
    X(CONDITION_NUMBER, condition_number, F64)             \
    X(EIGENVALUE_ENTROPY, eigenvalue_entropy, F64)         \
    X(BELL_MAX_FIDELITY, bell_max_fidelity, F64)           \
    X(BELL_MIN_FIDELITY, bell_min_fidelity, F64)           \
    X(BELL_AVG_FIDELITY, bell_avg_fidelity, F64)           \
    X(BELL_DOMINANT_INDEX, bell_dominant_index, I64)       \
    X(BELL_DIMENSION, bell_dimension, I64)                 \
    X(BELL_LOCAL_DIMENSION, bell_local_dimension, I64)     \
    X(LOG_LIKELIHOOD, log_likelihood, F64)                 \
    X(ITERATIONS, iterations, I64)                         \
    X(CONVERGED, converged, BOOL)                          \
    X(SUPPORT_DIM, support_dim, I64)                       \
    X(GAP, gap, F64)                                       \
    X(GAP_PER_COUNT, gap_per_count, F64)                   \
    X(MESSAGE, message, STR)                               \
    X(ENTROPY_BITS, entropy_bits, F64)                     \
    X(LINEAR_ENTROPY, linear_entropy, F64)                 \
    X(FIDELITY, fidelity, F64)                             \
    X(TRACE_DISTANCE, trace_distance, F64)                 \
    X(CONCURRENCE, concurrence, F64)                       \
    X(NEGATIVITY, negativity, F64)                         \
    X(LOG_NEGATIVITY, log_negativity, F64)                 \
    X(CHI2, chi2, F64)                                     \
    X(RHOR_LOG_LIKELIHOOD, rhor_log_likelihood, F64)       \
    X(EIG_MIN_H, eig_min_H, F64)                           \
    X(EIG_MAX_H, eig_max_H, F64)                           \
    X(ETILDE_SUM_MAX_DEV_ABS, etilde_sum_max_dev_abs, F64) \
    X(ETILDE_SUM_MAX_DEV_FRO, etilde_sum_max_dev_fro, F64) \
    X(ETILDE_SUM_VALID, etilde_sum_valid, BOOL)            \
    X(ETILDE_MIN_EIG_SAMPLE, etilde_min_eig_sample, F64)   \
    X(DECREASE_LL_COUNT, decrease_ll_count, I64)           \
    X(RESET_COUNT, reset_count, I64)                       \
    X(RESET_FIRST_ITER, reset_first_iter, I64)             \
    X(MIN_Q, min_q, F64)                                   \
    X(MIN_TRACE, min_trace, F64)                           \
    X(FINAL_DN, final_dn, F64)                             \
    X(FINAL_DLL, final_dll, F64)                           \
    X(EIGENVALUES, eigenvalues, F64V)                      \
    X(BELL_FIDELITIES, bell_fidelities, F64V)

#define QT_MT_ENUM_(E, f, t) QT_MT_##E,

enum qt_metric_id { QT_METRICS(QT_MT_ENUM_) _QT_MT_MAX };

#undef QT_MT_ENUM_

_Static_assert(_QT_MT_MAX <= 64, "qt_metrics.have is a 64-bit mask");

enum qt_mtype { QT_MTYPE_F64, QT_MTYPE_I64, QT_MTYPE_BOOL, QT_MTYPE_STR, QT_MTYPE_F64V };

#define QT_MT_FIELD_F64(f)  double f;
#define QT_MT_FIELD_I64(f)  int64_t f;
#define QT_MT_FIELD_BOOL(f) bool f;
#define QT_MT_FIELD_STR(f)  const char *f;
#define QT_MT_FIELD_F64V(f) \
    const double *f;        \
    size_t f##_n;
#define QT_MT_FIELD_(E, f, t) QT_MT_FIELD_##t(f)

struct qt_metrics {
    uint64_t have; /* bit QT_MT_x set when metric x is present */
    QT_METRICS(QT_MT_FIELD_)
};

struct qt_metric_desc {
    const char *name;
    enum qt_mtype type;
    size_t offset;       /* of the value (or the pointer, for F64V) in struct qt_metrics */
    size_t count_offset; /* F64V only: of the element count */
};

extern const struct qt_metric_desc qt_metric_descs[_QT_MT_MAX];

/* The id of the metric called name, or -1. */
int qt_metric_from_name(const char *name);

static inline bool qt_metrics_has(const struct qt_metrics *mt, enum qt_metric_id id)
{
    return (mt->have >> id) & 1u;
}

/* Sets a scalar metric and marks it present. */
#define QT_MT_SET(mt, ID, field, value)          \
    do {                                         \
        (mt)->field = (value);                   \
        (mt)->have |= (uint64_t)1 << QT_MT_##ID; \
    } while (0)

/* Warnings attached to an otherwise successful result. */
enum qt_warning {
    QT_WARN_NEGATIVE_INPUT = 1u << 0, /* the sample had negative values (linear accepts them) */
    QT_WARN_CLIPPED = 1u << 1,        /* eigenvalues below -10 tol were clipped (origin warns) */
    QT_WARN_NOT_CONVERGED = 1u << 2,  /* an iterative method stopped at its limit */
    _QT_WARN_COUNT = 3
};

/* Stable identifier of warning bit number i ("negative_input", ...). */
const char *qt_warning_name(unsigned i);

struct qt_result {
    enum qt_method method;
    size_t d;
    int err;              /* 0 when the estimate is valid, else a negative error code */
    char errmsg[256];     /* human-readable reason when err != 0 */
    unsigned warnings;    /* QT_WARN_* bits */
    double complex *rho;  /* d x d column-major physical estimate (owned) */
    double *eigenvalues;  /* d, descending, clipped as the origin reports them (owned) */
    double *bell;         /* d Bell-basis fidelities when computed (owned) */
    /* With opts.spectral (qt_spectral_decompose of rho): has_spectral, the dominant eigenvalue,
     * and spectral = 3d doubles: amplitudes, phases in units of pi, eigenvalues descending. */
    bool has_spectral;
    double spectral_dominant;
    double *spectral;     /* (owned) */
    struct qt_metrics mt; /* F64V pointers point into this result's own arrays */
    /* private */
    size_t cap;
};

/* Prepares storage for dimension d. Returns 0 or -ENOMEM. A result may be reused for many
 * samples of the same or smaller dimension; qt_result_reset clears it between uses. */
QT_NODISCARD int qt_result_init(struct qt_result *res, size_t d);
void qt_result_reset(struct qt_result *res, enum qt_method method);
void qt_result_done(struct qt_result *res); /* NULL-safe */

/* Records a per-sample error in res (err and a formatted message); returns err. */
int qt_result_fail(struct qt_result *res, int err, const char *fmt, ...) QT_PRINTF(3, 4);
