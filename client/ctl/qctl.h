/* qtomoctl internals: global options and the command table shared by the subcommand files. */
#pragma once

#include <stdbool.h>

#include "base/compiler.h"

/* Exit codes (documented in qtomoctl(1)). */
enum {
    QCTL_EXIT_OK = 0,       /* every sample succeeded */
    QCTL_EXIT_FAILED = 1,   /* some samples failed */
    QCTL_EXIT_USAGE = 2,    /* bad invocation or unreadable input */
    QCTL_EXIT_NODAEMON = 3, /* daemon not reachable */
    QCTL_EXIT_SERVER = 4,   /* protocol or server error */
};

struct qctl_global {
    const char *socket; /* -s/--socket */
    bool json;          /* --json */
    double timeout;     /* --timeout seconds, 0 = none */
    int verbosity;      /* -q = -1, default 0, -v = 1 */
    char **argv0;       /* the original argv, for re-executing with a tuned environment */
};

struct qctl_cmd {
    const char *name;
    const char *args;    /* synopsis after the name */
    const char *summary; /* one line */
    int (*run)(int argc, char **argv, struct qctl_global *g);
};

extern const struct qctl_cmd qctl_cmds[];

void qctl_err(const char *fmt, ...) QT_PRINTF(1, 2); /* "qtomoctl: ..." on stderr */
/* Progress notes on stderr, shown with -v only. */
void qctl_info(const struct qctl_global *g, const char *fmt, ...) QT_PRINTF(2, 3);

/* Re-executes the program with OPENBLAS_CORETYPE set when OpenBLAS picked slower kernels than
 * this CPU supports (qt_blas_coretype_advice). Returns only when no re-exec was needed or it
 * failed. Call before any BLAS work. */
void qctl_blas_env(const struct qctl_global *g);

int qctl_cmd_reconstruct(int argc, char **argv, struct qctl_global *g);
