/* Error-bar records (qt_uncert.h). */
#include "qt_uncert.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kind_names[] = {"data", "parametric"};
static const char *const warn_names[_QT_BOOT_WARN_COUNT] = {"boundary_estimate",
                                                           "resamples_failed"};

const char *qt_resample_kind_name(enum qt_resample_kind k)
{
    return (unsigned)k < 2 ? kind_names[k] : NULL;
}

int qt_resample_kind_from_name(const char *s, enum qt_resample_kind *k)
{
    for (unsigned i = 0; i < 2; i++)
        if (strcmp(s, kind_names[i]) == 0) {
            *k = (enum qt_resample_kind)i;
            return 0;
        }
    return -EINVAL;
}

const char *qt_boot_warn_name(unsigned i)
{
    return i < _QT_BOOT_WARN_COUNT ? warn_names[i] : "unknown";
}

void qt_uncertainty_done(struct qt_uncertainty *u)
{
    if (!u)
        return;
    free(u->veig);
    free(u->vbell);
    free(u->rho_std_re);
    free(u->rho_std_im);
    u->veig = u->vbell = NULL;
    u->rho_std_re = u->rho_std_im = NULL;
}

void qt_boot_fail(struct qt_uncertainty *u, const struct qt_boot_req *b, uint64_t seed, int err,
                  const char *msg)
{
    uint32_t failed = u->failed; /* what the attempt counted, if anything */

    qt_uncertainty_done(u);
    memset(u, 0, sizeof(*u));
    u->failed = failed <= b->resamples ? failed : b->resamples;
    u->resamples = b->resamples;
    u->kind = b->kind;
    u->seed = seed;
    u->confidence = b->confidence;
    u->shots = b->shots;
    u->err = err;
    snprintf(u->errmsg, sizeof(u->errmsg), "%s", msg);
}
