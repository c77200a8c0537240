/* The single mapping from internal error values to public status codes. */
#include "qt_status.h"

#include <errno.h>

#include "qt_err.h"

int qt_status_from_err(int err)
{
    switch (err) {
    case 0:
        return QT_ST_OK;
    case QT_ESAMPLELEN:
    case QT_ENONFINITE:
    case QT_EZEROGROUP:
    case QT_ENEGATIVE:
        return QT_ST_INVALID_SAMPLE;
    case QT_EDESIGN:
    case QT_EDIM:
    case QT_EMETHOD:
    case QT_EOPTION:
    case QT_ENOTIC:
    case QT_ENOTPSD:
    case QT_ESHAPE:
    case QT_EPARSE:
    case QT_ENOTCOUNTS:
    case QT_EEMPTY:
    case QT_ENOTPHYS:
    case -EINVAL:
        return QT_ST_INVALID_PARAMS;
    case QT_ETOOBIG:
    case -E2BIG:
        return QT_ST_TOO_LARGE;
    case QT_EPROTOVERS:
        return QT_ST_UNSUPPORTED_PROTOCOL;
    case -ENOENT:
        return QT_ST_NOT_FOUND;
    case -EACCES:
    case -EPERM:
        return QT_ST_PERMISSION_DENIED;
    case QT_ECRASHED:
        return QT_ST_WORKER_CRASHED;
    case -EBUSY:
        return QT_ST_BUSY;
    case -ESHUTDOWN:
        return QT_ST_SHUTTING_DOWN;
    case QT_EDEADLINE:
    case -ETIMEDOUT:
        return QT_ST_TIMEOUT;
    case -ECANCELED:
        return QT_ST_CANCELLED;
    default:
        return QT_ST_INTERNAL;
    }
}
