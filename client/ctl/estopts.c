/* The estimator options table. Each row: the option name, its type and place in struct
 * qt_opts, its bounds, and one line of help; the default is whatever qt_opts_init sets. */
#include "estopts.h"

#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>

#include "qctl.h"

enum eo_type { EO_DOUBLE, EO_UINT, EO_FLAG };

struct estopt {
    const char *name;
    enum eo_type type;
    size_t off;
    double lo, hi; /* inclusive bounds; lo_open: lo itself is not allowed */
    bool lo_open;
    const char *help;
};

#define OFF(f) offsetof(struct qt_opts, f)

static const struct estopt rows[] = {
    {"tolerance", EO_DOUBLE, OFF(tolerance), 0, 1, true, "zero-group test and eigenvalue clip"},
    {"mle-gap-tol", EO_DOUBLE, OFF(mle.gap_tol), 0, 1, true,
     "mle: stop when the optimality gap bound is below this"},
    {"mle-max-iterations", EO_UINT, OFF(mle.max_iterations), 0, 1e6, false,
     "mle: Newton iterations at most"},
    {"wls-max-iterations", EO_UINT, OFF(wls.max_iterations), 0, 1e7, false,
     "wls: iterations at most (origin: --mle-max-iterations)"},
    {"wls-ftol", EO_DOUBLE, OFF(wls.ftol), 0, 1, true,
     "wls: relative objective reduction that counts as converged"},
    {"wls-gtol", EO_DOUBLE, OFF(wls.gtol), 0, 1, true,
     "wls: gradient norm that counts as converged"},
    {"wls-min-expected-clip", EO_DOUBLE, OFF(wls.min_expected_clip), 0, 1, true,
     "wls: floor of the model probability in the denominator"},
    {"rhor-max-iterations", EO_UINT, OFF(rhor.max_iterations), 1, 1e7, false,
     "rhor: iterations at most"},
    {"rhor-tol-state", EO_DOUBLE, OFF(rhor.tol_state), 0, 1, true,
     "rhor: Frobenius change of the state that counts as converged"},
    {"rhor-tol-ll", EO_DOUBLE, OFF(rhor.tol_ll), 0, 1, true,
     "rhor: change of the log-likelihood that counts as converged"},
    {"rhor-eps-prob", EO_DOUBLE, OFF(rhor.eps_prob), 0, 1e-3, true,
     "rhor: probability and trace floor"},
    {"rhor-eig-rel-thresh", EO_DOUBLE, OFF(rhor.eig_rel_thresh), 0, 1, true,
     "rhor: support of H, relative eigenvalue threshold"},
    {"rhor-eig-abs-thresh", EO_DOUBLE, OFF(rhor.eig_abs_thresh), 0, 1e6, false,
     "rhor: support of H, absolute eigenvalue threshold (0: none)"},
    {"rhor-diluted", EO_FLAG, OFF(rhor.use_diluted), 0, 0, false,
     "rhor: diluted iteration R <- mu R + (1 - mu) I"},
    {"rhor-diluted-mu", EO_DOUBLE, OFF(rhor.diluted_mu), 0, 1, true,
     "rhor: the dilution mu, in (0, 1]"},
    {"rhor-warm-start", EO_FLAG, OFF(rhor.warm_start), 0, 0, false,
     "rhor: start from the linear estimate instead of I (the origin starts from I)"},
};

size_t qctl_estopt_count(void)
{
    return QT_ARRAY_SIZE(rows);
}

void qctl_estopts_getopt(struct option *opts, size_t *n)
{
    for (size_t i = 0; i < QT_ARRAY_SIZE(rows); i++)
        opts[(*n)++] =
            (struct option){rows[i].name, rows[i].type == EO_FLAG ? no_argument : required_argument,
                            NULL, QCTL_ESTOPT_BASE + (int)i};
    opts[*n] = (struct option){NULL, 0, NULL, 0};
}

int qctl_estopts_parse(int code, const char *arg, struct qt_opts *o)
{
    const struct estopt *e;
    char *end;
    double v;

    if (code < QCTL_ESTOPT_BASE || code >= QCTL_ESTOPT_BASE + (int)QT_ARRAY_SIZE(rows))
        return 0;
    e = &rows[code - QCTL_ESTOPT_BASE];
    if (e->type == EO_FLAG) {
        *(bool *)((char *)o + e->off) = true;
        return 1;
    }
    errno = 0;
    v = strtod(arg, &end);
    if (errno || *end || end == arg || !isfinite(v) || v < e->lo || v > e->hi ||
        (e->lo_open && v <= e->lo) || (e->type == EO_UINT && v != floor(v))) {
        qctl_err("--%s: '%s' is not %s in %s%g, %g]", e->name, arg,
                 e->type == EO_UINT ? "an integer" : "a number", e->lo_open ? "(" : "[", e->lo,
                 e->hi);
        return -1;
    }
    if (e->type == EO_UINT)
        *(unsigned *)((char *)o + e->off) = (unsigned)v;
    else
        *(double *)((char *)o + e->off) = v;
    return 1;
}

void qctl_estopts_usage(FILE *out)
{
    struct qt_opts def;

    qt_opts_init(&def);
    for (size_t i = 0; i < QT_ARRAY_SIZE(rows); i++) {
        const struct estopt *e = &rows[i];
        const char *p = (const char *)&def + e->off;
        char arg[32];

        (void)snprintf(arg, sizeof(arg), "--%s%s", e->name, e->type == EO_FLAG ? "" : " X");
        if (e->type == EO_FLAG)
            fprintf(out, "  %-26s %s\n", arg, e->help);
        else if (e->type == EO_UINT)
            fprintf(out, "  %-26s %s (default %u)\n", arg, e->help, *(const unsigned *)p);
        else
            fprintf(out, "  %-26s %s (default %g)\n", arg, e->help, *(const double *)p);
    }
}
