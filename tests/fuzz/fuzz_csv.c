/* libFuzzer entry point for the sample-table reader (qt_csv): parses arbitrary bytes under small
 * limits and traps when a successful result, an error report or a column range is inconsistent. */
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "io/qt_csv.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

static const struct qt_csv_limits lim = {(size_t)1 << 20, 4096, 256, (size_t)1 << 16};

/* Invariants of a successfully parsed table. */
static void check_table(const struct qt_table *t)
{
    struct qt_diag err;

    CHECK(t->rows >= 1 && t->rows <= lim.max_rows);
    CHECK(t->cols >= 1 && t->cols <= lim.max_cols);
    CHECK(t->rows * t->cols <= lim.max_cells);
    CHECK(t->v && t->empty);
    for (size_t c = 0; c < t->cols; c++) {
        bool all = true;

        for (size_t r = 0; r < t->rows; r++) {
            size_t k = r + t->rows * c;

            CHECK(t->empty[k] <= 1);
            CHECK(!t->empty[k] || isnan(t->v[k]));
            all = all && t->empty[k];
        }
        CHECK(qt_table_col_empty(t, c) == all);
    }
    CHECK(qt_table_col_empty(t, t->cols));
    CHECK(qt_csv_check_range(t, 1, t->cols, &err) == 0);
    CHECK(qt_csv_check_range(t, 1, t->cols + 1, &err) == QT_EOPTION);
}

/* Invariants of a failed parse: a known code, a terminated message, a position for bad text,
 * and the result left alone. */
static void check_error(int r, const struct qt_diag *err, const struct qt_table *t)
{
    CHECK(r == QT_EPARSE || r == QT_EEMPTY || r == QT_ETOOBIG || r == -ENOMEM);
    CHECK(memchr(err->msg, '\0', sizeof(err->msg)) != NULL);
    CHECK(err->msg[0] != '\0');
    if (r == QT_EPARSE)
        CHECK(err->line >= 1 && err->column >= 1);
    CHECK(t->rows == 7 && t->cols == 7 && t->v == NULL && t->empty == NULL);
}

static void check_range(const uint8_t *data, size_t size)
{
    char s[17];
    size_t n = size < 16 ? size : 16, first = 0, last = 0;
    struct qt_diag err;
    int r;

    memcpy(s, data, n);
    s[n] = '\0';
    r = qt_csv_parse_range(s, &first, &last, &err);
    if (r == 0)
        CHECK(first >= 1 && first <= last);
    else
        CHECK(r == QT_EPARSE && first == 0 && last == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qt_table t = {.rows = 7, .cols = 7};
    struct qt_diag err = {0};
    int r;

    r = qt_csv_parse((const char *)data, size, &lim, &t, &err);
    if (r == 0) {
        check_table(&t);
        qt_table_done(&t);
        CHECK(t.rows == 0 && t.cols == 0 && t.v == NULL && t.empty == NULL);
    } else {
        check_error(r, &err, &t);
    }
    qt_table_done(NULL);
    check_range(data, size);
    return 0;
}
