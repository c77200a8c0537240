/* qtomoctl internals: the command table and the commands, shared by the subcommand files. The
 * global options, exit codes and helpers are in qctl_util.h (included here). */
#pragma once

#include <stdbool.h>
#include <stdio.h>

#include "base/compiler.h"
#include "qctl_util.h"

/* The one command table: dispatch, `qtomoctl --help`, `qtomoctl help CMD`, the man page and
 * the bash completion (`qtomoctl --gen-man`, `--gen-completion`) all come from it. */
struct qctl_cmd {
    const char *name;
    const char *args;    /* synopsis after the name */
    const char *summary; /* one line */
    int (*run)(int argc, char **argv, struct qctl_global *g);
    void (*usage)(FILE *out); /* the command's help text */
    const char *words;        /* completion: actions and options, space-separated */
    bool daemon;              /* talks to the daemon */
};

extern const struct qctl_cmd qctl_cmds[];

const struct qctl_cmd *qctl_find_cmd(const char *name);
/* Reads a whole file ('-' = standard input) up to max bytes; 0 or a negative error. */
int qctl_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);

int qctl_cmd_reconstruct(int argc, char **argv, struct qctl_global *g);
void qctl_reconstruct_usage(FILE *out);
int qctl_cmd_status(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_stats(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_workers(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_cache(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_design(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_detector(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_ping(int argc, char **argv, struct qctl_global *g);
int qctl_cmd_reload(int argc, char **argv, struct qctl_global *g);
/* The analysis commands (cmd_analysis.c): no daemon needed. */
int qctl_cmd_fidelity(int argc, char **argv, struct qctl_global *g);
void qctl_fidelity_usage(FILE *out);
int qctl_cmd_summarize(int argc, char **argv, struct qctl_global *g);
void qctl_summarize_usage(FILE *out);
int qctl_cmd_bell(int argc, char **argv, struct qctl_global *g);
void qctl_bell_usage(FILE *out);
/* qtomoctl calibrate (cmd_calibrate.c): no daemon. */
int qctl_cmd_calibrate(int argc, char **argv, struct qctl_global *g);
void qctl_calibrate_usage(FILE *out);
int qctl_cmd_plot(int argc, char **argv, struct qctl_global *g);
void qctl_plot_usage(FILE *out);
