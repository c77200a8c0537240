/* Error codes and diagnostics shared by every library module.
 * Fallible functions return 0 (or a count) on success, a negative errno or a QT_E* code on failure.
 */
#pragma once

#include <stddef.h>

#include "compiler.h"

/* Domain error codes live in [-1999, -1000] so they never collide with -errno. */
enum {
    QT_EPROTOVERS = -1000, /* peer's protocol version is not supported */
    QT_ECHECKSUM = -1001,  /* on-disk data failed verification */
    QT_ENOCONV = -1002,    /* iterative estimator stopped before converging */
    QT_ENOTPHYS = -1003,   /* result is not a density matrix */
    QT_EDESIGN = -1004,    /* unknown measurement design */
    QT_EDIM = -1005,       /* dimension not supported by the design */
    QT_ESAMPLELEN = -1006, /* sample has the wrong number of values */
    QT_ENONFINITE = -1007, /* NaN or infinite value */
    QT_EZEROGROUP = -1008, /* a normalisation group sums to zero */
    QT_ENEGATIVE = -1009,  /* negative value where the method needs non-negative data */
    QT_EPARSE = -1010,     /* malformed input text */
    QT_ENOTIC = -1011,     /* design is not informationally complete */
    QT_ENOTPSD = -1012,    /* a measurement element is not positive semidefinite */
    QT_ESHAPE = -1013,     /* array shapes do not agree */
    QT_ELAPACK = -1014,    /* a LAPACK routine failed */
    QT_ETOOBIG = -1015,    /* a size limit was exceeded */
    QT_EEMPTY = -1016,     /* no data where data is required */
    QT_EMETHOD = -1017,    /* unknown or unsupported estimation method */
    QT_EOPTION = -1018,    /* invalid option value */
    QT_ECRASHED = -1019,   /* the item crashed the workers that ran it */
    QT_EDEADLINE = -1020,  /* the item passed its deadline and its worker was killed */
    QT_ENOTCOUNTS = -1021, /* values are not counts, and resampling needs counts (or shots) */
};

/* Returns a static, human-readable description of err (a -errno or QT_E* value).
 * Never returns NULL; unknown codes give a generic text. */
QT_NODISCARD const char *qt_strerror(int err);

/* Returns a stable lower-case identifier for err ("zero_group", "nonfinite", ...),
 * suitable for machine-readable output. Never returns NULL. */
QT_NODISCARD const char *qt_errname(int err);

/* Optional diagnostics filled in by parsers and validators on failure
 * (the systemd "reterr_" pattern). line and column are 1-based; 0 means "not applicable". */
struct qt_diag {
    unsigned line;
    unsigned column;
    char msg[256];
};

/* Formats a message into *reterr (which may be NULL) and returns err unchanged, so that
 * callers can write: return qt_diag_set(reterr, QT_EPARSE, line, col, "...", ...); */
int qt_diag_set(struct qt_diag *reterr, int err, unsigned line, unsigned column, const char *fmt,
                ...) QT_PRINTF(5, 6);
