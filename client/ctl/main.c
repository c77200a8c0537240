/* qtomoctl: command-line client of the qtomo reconstruction service. Global options, the
 * command table, help, and process-level setup. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "num/qt_lapack.h"
#include "qctl.h"

static int cmd_version(int argc, char **argv, struct qctl_global *g);
static int cmd_help(int argc, char **argv, struct qctl_global *g);

const struct qctl_cmd qctl_cmds[] = {
    {"reconstruct", "FILE --local [options]", "reconstruct every sample (column) of a CSV/TXT file",
     qctl_cmd_reconstruct},
    {"version", "", "print the version", cmd_version},
    {"help", "[COMMAND]", "show help for qtomoctl or a command", cmd_help},
    {NULL, NULL, NULL, NULL},
};

void qctl_err(const char *fmt, ...)
{
    va_list ap;

    fputs("qtomoctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qctl_info(const struct qctl_global *g, const char *fmt, ...)
{
    va_list ap;

    if (g->verbosity < 1)
        return;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

void qctl_blas_env(const struct qctl_global *g)
{
    const char *ct;

    if (getenv("OPENBLAS_CORETYPE"))
        return; /* the user's choice, or we already re-executed */
    ct = qt_blas_coretype_advice();
    if (!ct)
        return;
    if (setenv("OPENBLAS_CORETYPE", ct, 1) != 0)
        return;
    if (!getenv("OPENBLAS_NUM_THREADS"))
        (void)setenv("OPENBLAS_NUM_THREADS", "1", 1);
    fflush(NULL);
    execv("/proc/self/exe", g->argv0);
    /* exec failed: carry on with the kernels we have. */
}

static void usage(FILE *out)
{
    fprintf(out, "Usage: qtomoctl [-s PATH] [--json] [--timeout SECS] [-q|-v] COMMAND [ARGS]\n\n"
                 "Commands:\n");
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++)
        fprintf(out, "  %-12s %s\n", c->name, c->summary);
    fprintf(out, "\nGlobal options:\n"
                 "  -s, --socket PATH   daemon socket\n"
                 "      --json          machine-readable output (JSON lines)\n"
                 "      --timeout SECS  give up after SECS seconds\n"
                 "  -q, --quiet         only errors on stderr\n"
                 "  -v, --verbose       more diagnostics on stderr\n"
                 "  -h, --help          this help\n\n"
                 "Run 'qtomoctl help COMMAND' for a command's options.\n");
}

static const struct qctl_cmd *find_cmd(const char *name)
{
    for (const struct qctl_cmd *c = qctl_cmds; c->name; c++)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

static int cmd_version(int argc, char **argv, struct qctl_global *g)
{
    (void)argc;
    (void)argv;
    (void)g;
    printf("qtomoctl %s\n", QTOMO_VERSION);
    return QCTL_EXIT_OK;
}

static int cmd_help(int argc, char **argv, struct qctl_global *g)
{
    const struct qctl_cmd *c;
    char name[32], help[] = "--help";
    char *args[] = {name, help, NULL};

    if (argc < 2) {
        usage(stdout);
        return QCTL_EXIT_OK;
    }
    c = find_cmd(argv[1]);
    if (!c) {
        qctl_err("unknown command '%s'", argv[1]);
        return QCTL_EXIT_USAGE;
    }
    (void)snprintf(name, sizeof(name), "%s", c->name);
    optind = 0;
    return c->run(2, args, g);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"socket", required_argument, NULL, 's'},  {"json", no_argument, NULL, 'j'},
        {"timeout", required_argument, NULL, 't'}, {"quiet", no_argument, NULL, 'q'},
        {"verbose", no_argument, NULL, 'v'},       {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},       {NULL, 0, NULL, 0},
    };
    struct qctl_global g = {NULL, false, 0.0, 0, argv};
    const struct qctl_cmd *c;
    int opt;

    /* '+': stop at the first non-option, the command name. */
    while ((opt = getopt_long(argc, argv, "+s:qvh", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            g.socket = optarg;
            break;
        case 'j':
            g.json = true;
            break;
        case 't': {
            char *end;

            g.timeout = strtod(optarg, &end);
            if (*end || !(g.timeout >= 0)) {
                qctl_err("--timeout needs a non-negative number of seconds, got '%s'", optarg);
                return QCTL_EXIT_USAGE;
            }
            break;
        }
        case 'q':
            g.verbosity = -1;
            break;
        case 'v':
            g.verbosity = 1;
            break;
        case 'h':
            usage(stdout);
            return QCTL_EXIT_OK;
        case 'V':
            return cmd_version(0, NULL, &g);
        default:
            usage(stderr);
            return QCTL_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    c = find_cmd(argv[optind]);
    if (!c) {
        qctl_err("unknown command '%s' (see 'qtomoctl --help')", argv[optind]);
        return QCTL_EXIT_USAGE;
    }
    argv += optind;
    argc -= optind;
    optind = 0; /* reset getopt for the subcommand */
    return c->run(argc, argv, &g);
}
