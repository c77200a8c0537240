/* Reader for the origin's sample layout: a header-less text table, rows = measurement outcomes
 * in design order, columns = samples (origin-digest §4.1). Bytes in, numbers out: no file I/O.
 *
 * Accepted: ',' or ';' or whitespace (spaces/tabs) as separators, chosen once per file from the
 * first non-blank line (';' if present, else ',', else whitespace); spaces and tabs around
 * fields are ignored; a UTF-8 byte-order mark; LF or CRLF line ends (a lone CR too); blank or
 * whitespace-only lines (skipped); empty fields (stored as NaN and flagged empty); "nan",
 * "inf", "infinity" with optional sign, case-insensitive (stored as such; estimators reject
 * them per sample). Numbers are decimal (strtod syntax without hex forms), parsed independently
 * of the process locale.
 * Rejected with a diagnostic naming line and column (1-based, column = field number): any other
 * text (a header row, a unit, a decimal comma), a NUL byte, limits exceeded. Lines may have
 * different numbers of fields; missing trailing fields are empty. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"

struct qt_table {
    size_t rows, cols;
    double *v;      /* rows x cols, column-major: v[r + rows * c]; empty cells hold NaN */
    uint8_t *empty; /* rows x cols flags, same layout: 1 where the cell was empty */
};

struct qt_csv_limits {
    size_t max_bytes; /* input length */
    size_t max_rows;
    size_t max_cols;
    size_t max_cells; /* rows * cols */
};

/* 1 GiB, 2^24 rows, 2^20 columns, 2^27 cells. */
#define QT_CSV_LIMITS_DEFAULT                                              \
    {                                                                      \
        (size_t)1 << 30, (size_t)1 << 24, (size_t)1 << 20, (size_t)1 << 27 \
    }

/* Parses buf[0..len) (need not be NUL-terminated). On success fills *ret (which the caller
 * releases with qt_table_done) and returns 0. Errors: QT_EPARSE (bad text, with line/column and
 * the offending text quoted in reterr->msg), QT_EEMPTY (no data rows), QT_ETOOBIG (a limit),
 * -ENOMEM. *ret is untouched on failure. lim may be NULL for the defaults. */
QT_NODISCARD int qt_csv_parse(const char *buf, size_t len, const struct qt_csv_limits *lim,
                              struct qt_table *ret, struct qt_diag *reterr);

/* NULL-safe; leaves the table empty. */
void qt_table_done(struct qt_table *t);

/* True when every cell of column c (0-based) is empty. */
bool qt_table_col_empty(const struct qt_table *t, size_t c);

/* Parses a 1-based inclusive column range "A:B" (also "A-B", "A,B", or a single "N"; spaces
 * allowed around numbers). Sets *ret_first <= *ret_last, both >= 1. Returns 0 or QT_EPARSE with
 * a message. Checking against a table's width is the caller's job (qt_csv_check_range). */
QT_NODISCARD int qt_csv_parse_range(const char *s, size_t *ret_first, size_t *ret_last,
                                    struct qt_diag *reterr);

/* Checks 1 <= first <= last <= t->cols; QT_EOPTION with a message otherwise. */
QT_NODISCARD int qt_csv_check_range(const struct qt_table *t, size_t first, size_t last,
                                    struct qt_diag *reterr);
