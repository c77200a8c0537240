/* A header-aware CSV table for qtomoctl's analysis commands (summary.csv as qtomoctl and pandas
 * write it): one header line of column names, then rows of the same width; RFC 4180 quoting
 * ("a,b", "say ""x""", newlines inside quotes); CRLF or LF; blank lines skipped, as pandas
 * does. Bounded: at most QCTL_CSVTAB_MAX_COLS columns and QCTL_CSVTAB_MAX_BYTES of input. Cells
 * are NUL-terminated strings inside the table's own copy of the input; an empty cell is "". */
#pragma once

#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"

#define QCTL_CSVTAB_MAX_COLS  4096
#define QCTL_CSVTAB_MAX_BYTES ((size_t)256 << 20)

struct qctl_csvtab {
    size_t ncols, nrows;
    char **head;    /* ncols names */
    char **cells;   /* nrows x ncols, row-major */
    unsigned *line; /* nrows: the line each row starts on (1-based), for messages */
    /* private */
    char *buf;
};

/* Parses buf[0..len), which must have room for len + 1 bytes (qctl_read_file's buffers do);
 * buf is taken over: freed by qctl_csvtab_done, or here on failure. Returns 0, or
 * QT_EPARSE / QT_ETOOBIG / QT_EEMPTY (no header) / -ENOMEM with the line and column (1-based)
 * and a message in reterr. */
QT_NODISCARD int qctl_csvtab_parse(char *buf, size_t len, struct qctl_csvtab *ret,
                                   struct qt_diag *reterr);
void qctl_csvtab_done(struct qctl_csvtab *t);

/* The index of the column named name, or -1. */
int qctl_csvtab_col(const struct qctl_csvtab *t, const char *name);

static inline const char *qctl_csvtab_cell(const struct qctl_csvtab *t, size_t row, size_t col)
{
    return t->cells[row * t->ncols + col];
}
