/* qtomoctl's shared helpers, used by main.c and every command file: the global options, exit
 * codes, messages on stderr, BLAS setup, and connecting to the daemon. They need nothing of the
 * command table (qctl.h). */
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

/* The program's name in messages: "qtomoctl", or "qtomo-mpi" (set by its main). */
extern const char *qctl_progname;
void qctl_err(const char *fmt, ...) QT_PRINTF(1, 2); /* "qtomoctl: ..." on stderr */
/* Progress notes on stderr, shown with -v only. */
void qctl_info(const struct qctl_global *g, const char *fmt, ...) QT_PRINTF(2, 3);

/* Runs BLAS on one thread (as qtomod's workers do, so --local records are identical) and
 * re-executes the program with OPENBLAS_CORETYPE set when OpenBLAS picked slower kernels than
 * this CPU supports (qt_blas_coretype_advice). Returns only when no re-exec was needed or it
 * failed. Call before any BLAS work. */
void qctl_blas_env(const struct qctl_global *g);

/* Connects to the daemon (-s, $QTOMO_SOCKET, or the default path) with the --timeout. Returns
 * 0, or an exit code after printing why (3 with a hint when nobody listens). */
struct qtomo_conn;
int qctl_connect(const struct qctl_global *g, struct qtomo_conn **ret);
/* The exit code for a failed library call: 3 when the daemon cannot be reached, 4 for protocol
 * and server errors, 2 for a refused request (bad parameters), 1 otherwise. */
int qctl_exit_for(int err);

struct qt_target_fix;
/* The warning for a target that was projected onto the density matrices (nothing when it was
 * not): what it was given as, its name, and how far it was. */
void qctl_warn_target_fix(const char *what, const char *name, const struct qt_target_fix *fix);
