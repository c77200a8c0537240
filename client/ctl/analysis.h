/* What qtomoctl's analysis commands share (cmd_analysis.c: fidelity, bell and these helpers;
 * cmd_summarize.c: summarize). None of them talks to the daemon. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "qctl.h"

struct qctl_anl_opts {
    bool json;    /* --json (or the global --json) */
    bool compare; /* --compare-methods (summarize only) */
};

/* Parses --help, --json and (for summarize) --compare-methods, anywhere on the line; exactly
 * nargs positional arguments remain at argv[optind..). Returns 0, -1 after printing help, or
 * an exit code (printed). */
int qctl_anl_args(int argc, char **argv, const struct qctl_global *g, const char *name, int nargs,
                  struct qctl_anl_opts *o);
bool qctl_is_dir(const char *path);
/* DIR -> "DIR/name", anything else as it is; malloc'ed, NULL when out of memory. */
char *qctl_in_dir(const char *path, const char *name);
/* numpy's pairwise summation (np.sum of a contiguous float64 array), so that means agree with
 * numpy and pandas to the last bit in the common cases. */
double qctl_pairwise_sum(const double *a, size_t n);
