/* Estimator options of qtomoctl, from one declarative table: getopt entries, parsing with
 * bounds, and help text (defaults read from qt_opts_init). */
#pragma once

#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>

#include "num/qt_result.h"

/* getopt_long codes of the table's options are QCTL_ESTOPT_BASE + row. */
#define QCTL_ESTOPT_BASE 1024

/* Appends the table's entries to opts (which has room for qctl_estopt_count() more entries
 * plus the terminator) starting at index *n. */
void qctl_estopts_getopt(struct option *opts, size_t *n);
size_t qctl_estopt_count(void);

/* Handles getopt code `code` with argument arg. Returns 1 when handled, 0 when the code is
 * not an estimator option, -1 (after printing an error) for a bad value. */
int qctl_estopts_parse(int code, const char *arg, struct qt_opts *o);

/* Prints "  --name VALUE   help (default X)" lines. */
void qctl_estopts_usage(FILE *out);
