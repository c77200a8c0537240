/* Error descriptions for -errno and QT_E* codes, and the diagnostics helper. */
#include "qt_err.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct err_desc {
    int code;
    const char *name;
    const char *text;
};

static const struct err_desc descs[] = {
    {QT_EPROTOVERS, "protocol_version", "unsupported protocol version"},
    {QT_ECHECKSUM, "checksum", "data failed checksum verification"},
    {QT_ENOCONV, "not_converged", "iterative method did not converge"},
    {QT_ENOTPHYS, "not_physical", "result is not a density matrix"},
    {QT_EDESIGN, "unknown_design", "unknown measurement design"},
    {QT_EDIM, "unsupported_dimension", "dimension not supported by the design"},
    {QT_ESAMPLELEN, "sample_length", "sample has the wrong number of values"},
    {QT_ENONFINITE, "nonfinite", "value is NaN or infinite"},
    {QT_EZEROGROUP, "zero_group", "a normalisation group sums to zero"},
    {QT_ENEGATIVE, "negative", "negative value not allowed by this method"},
    {QT_EPARSE, "parse", "malformed input"},
    {QT_ENOTIC, "not_complete", "design is not informationally complete"},
    {QT_ENOTPSD, "not_psd", "measurement element is not positive semidefinite"},
    {QT_ESHAPE, "shape", "array shapes do not agree"},
    {QT_ELAPACK, "lapack", "linear algebra routine failed"},
    {QT_ETOOBIG, "too_large", "size limit exceeded"},
    {QT_EEMPTY, "empty", "no data"},
    {QT_EMETHOD, "unknown_method", "unknown estimation method"},
    {QT_EOPTION, "invalid_option", "invalid option value"},
    {QT_ECRASHED, "worker_crashed", "the item crashed two workers"},
    {QT_EDEADLINE, "deadline", "the item passed its deadline"},
    {QT_ENOTCOUNTS, "not_counts", "values are not counts: resampling needs counts or shots"},
    {-ETIMEDOUT, "timeout", "timed out"},
    {-ECANCELED, "cancelled", "cancelled"},
    {-EBUSY, "busy", "busy; retry later"},
    {-ESHUTDOWN, "shutting_down", "the server is shutting down"},
    {-EACCES, "permission_denied", "permission denied"},
    {-EPERM, "not_permitted", "operation not permitted"},
    {-ENOMEM, "no_memory", "out of memory"},
    {-EINVAL, "invalid_argument", "invalid argument"},
    {-ERANGE, "out_of_range", "value out of range"},
    {-ENOENT, "not_found", "no such file or directory"},
};

static const struct err_desc *find(int err)
{
    for (size_t i = 0; i < QT_ARRAY_SIZE(descs); i++)
        if (descs[i].code == err)
            return &descs[i];
    return NULL;
}

const char *qt_strerror(int err)
{
    const struct err_desc *e = find(err);

    if (e)
        return e->text;
    if (err < 0 && err > -4096)
        return strerror(-err); /* glibc: thread-safe for known codes, static strings */
    return "unknown error";
}

const char *qt_errname(int err)
{
    const struct err_desc *e = find(err);

    if (e)
        return e->name;
    return err < 0 && err > -4096 ? "system" : "unknown";
}

int qt_diag_set(struct qt_diag *reterr, int err, unsigned line, unsigned column, const char *fmt,
                ...)
{
    va_list ap;

    if (!reterr)
        return err;
    reterr->line = line;
    reterr->column = column;
    va_start(ap, fmt);
    (void)vsnprintf(reterr->msg, sizeof(reterr->msg), fmt, ap);
    va_end(ap);
    return err;
}
