/* libFuzzer entry point for qtomoctl's header-aware CSV reader (client/ctl/csvtab.c, used by
 * `qtomoctl summarize`): parses arbitrary bytes and traps when a table or an error report is
 * inconsistent. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "csvtab.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)           \
    do {                      \
        if (!(cond))          \
            __builtin_trap(); \
    } while (0)

/* Every cell a NUL-terminated string inside the copy of the input; rows in line order. */
static void check_table(const struct qctl_csvtab *t, const char *buf, size_t size)
{
    CHECK(t->ncols >= 1 && t->ncols <= QCTL_CSVTAB_MAX_COLS && t->head);
    for (size_t c = 0; c < t->ncols; c++)
        CHECK(t->head[c] >= buf && t->head[c] + strlen(t->head[c]) <= buf + size);
    for (size_t r = 0; r < t->nrows; r++) {
        CHECK(t->line[r] >= 1 && (r == 0 || t->line[r] > t->line[r - 1]));
        for (size_t c = 0; c < t->ncols; c++) {
            const char *s = qctl_csvtab_cell(t, r, c);

            CHECK(s >= buf && s + strlen(s) <= buf + size);
        }
    }
    CHECK(qctl_csvtab_col(t, t->head[0]) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qctl_csvtab t;
    struct qt_diag err = {0};
    char *buf = malloc(size + 1);
    int r;

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    r = qctl_csvtab_parse(buf, size, &t, &err);
    if (r == 0) {
        check_table(&t, buf, size);
        qctl_csvtab_done(&t);
    } else {
        CHECK(r == QT_EPARSE || r == QT_EEMPTY || r == QT_ETOOBIG || r == -ENOMEM);
        CHECK(memchr(err.msg, '\0', sizeof(err.msg)) != NULL && err.msg[0] != '\0');
        if (r == QT_EPARSE)
            CHECK(err.line >= 1 && err.column >= 1);
    }
    return 0;
}
