/* The estimator options table (qt_optdesc.h). */
#include "qt_optdesc.h"

#include <math.h>
#include <string.h>

#include "base/qt_err.h"

#define OFF(f) offsetof(struct qt_opts, f)

const struct qt_optdesc qt_optdescs[] = {
    {"tolerance", QT_OPT_DOUBLE, OFF(tolerance), 0, 1, true, "zero-group test and eigenvalue clip"},
    {"mle-gap-tol", QT_OPT_DOUBLE, OFF(mle.gap_tol), 0, 1, true,
     "mle: stop when the optimality gap per count (gap_per_count) is below this"},
    {"mle-max-iterations", QT_OPT_UINT, OFF(mle.max_iterations), 0, 1e6, false,
     "mle: Newton iterations at most"},
    {"wls-max-iterations", QT_OPT_UINT, OFF(wls.max_iterations), 0, 1e7, false,
     "wls: iterations at most (origin: --mle-max-iterations)"},
    {"wls-ftol", QT_OPT_DOUBLE, OFF(wls.ftol), 0, 1, true,
     "wls: relative objective reduction that counts as converged"},
    {"wls-gtol", QT_OPT_DOUBLE, OFF(wls.gtol), 0, 1, true,
     "wls: gradient norm that counts as converged"},
    {"wls-min-expected-clip", QT_OPT_DOUBLE, OFF(wls.min_expected_clip), 0, 1, true,
     "wls: floor of the model probability in the denominator"},
    {"rhor-max-iterations", QT_OPT_UINT, OFF(rhor.max_iterations), 1, 1e7, false,
     "rhor: iterations at most"},
    {"rhor-tol-state", QT_OPT_DOUBLE, OFF(rhor.tol_state), 0, 1, true,
     "rhor: Frobenius change of the state that counts as converged"},
    {"rhor-tol-ll", QT_OPT_DOUBLE, OFF(rhor.tol_ll), 0, 1, true,
     "rhor: change of the log-likelihood that counts as converged"},
    {"rhor-eps-prob", QT_OPT_DOUBLE, OFF(rhor.eps_prob), 0, 1e-3, true,
     "rhor: probability and trace floor"},
    {"rhor-eig-rel-thresh", QT_OPT_DOUBLE, OFF(rhor.eig_rel_thresh), 0, 1, true,
     "rhor: support of H, relative eigenvalue threshold"},
    {"rhor-eig-abs-thresh", QT_OPT_DOUBLE, OFF(rhor.eig_abs_thresh), 0, 1e6, false,
     "rhor: support of H, absolute eigenvalue threshold (0: none)"},
    {"rhor-diluted", QT_OPT_FLAG, OFF(rhor.use_diluted), 0, 0, false,
     "rhor: diluted iteration R <- mu R + (1 - mu) I"},
    {"rhor-diluted-mu", QT_OPT_DOUBLE, OFF(rhor.diluted_mu), 0, 1, true,
     "rhor: the dilution mu, in (0, 1]"},
    {"rhor-warm-start", QT_OPT_FLAG, OFF(rhor.warm_start), 0, 0, false,
     "rhor: start from the linear estimate instead of I (the origin starts from I)"},
};

const size_t qt_optdesc_count = QT_ARRAY_SIZE(qt_optdescs);

const struct qt_optdesc *qt_optdesc_find(const char *name, size_t len)
{
    for (size_t i = 0; i < qt_optdesc_count; i++)
        if (strlen(qt_optdescs[i].name) == len && memcmp(qt_optdescs[i].name, name, len) == 0)
            return &qt_optdescs[i];
    return NULL;
}

int qt_optdesc_set(const struct qt_optdesc *e, double v, struct qt_opts *o)
{
    char *p = (char *)o + e->off;

    if (e->type == QT_OPT_FLAG) {
        *(bool *)p = v != 0.0;
        return 0;
    }
    if (!isfinite(v) || v < e->lo || v > e->hi || (e->lo_open && v <= e->lo) ||
        (e->type == QT_OPT_UINT && v != floor(v)))
        return QT_EOPTION;
    if (e->type == QT_OPT_UINT)
        *(unsigned *)p = (unsigned)v;
    else
        *(double *)p = v;
    return 0;
}

double qt_optdesc_get(const struct qt_optdesc *e, const struct qt_opts *o)
{
    const char *p = (const char *)o + e->off;

    switch (e->type) {
    case QT_OPT_FLAG:
        return *(const bool *)p ? 1.0 : 0.0;
    case QT_OPT_UINT:
        return (double)*(const unsigned *)p;
    default:
        return *(const double *)p;
    }
}
