/* The header-aware CSV reader of qtomoctl's analysis commands (see csvtab.h). Fields are
 * unescaped in place: a field never grows when unescaped, and each takes the byte of the
 * delimiter after it for its NUL, so the write position never passes the read position. */
#include "csvtab.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct cursor {
    char *p, *end; /* read position */
    char *w;       /* write position (<= p) */
    unsigned line; /* line of p, 1-based */
};

/* A CR that ends a line (CRLF, or the last byte) is dropped. */
static bool is_eol_cr(const struct cursor *c)
{
    return *c->p == '\r' && (c->p + 1 == c->end || c->p[1] == '\n');
}

/* Reads one field into c->w; *quoted tells whether it was quoted. */
static int read_field(struct cursor *c, size_t col, bool *quoted, struct qt_diag *reterr)
{
    *quoted = c->p < c->end && *c->p == '"';
    if (*quoted) {
        unsigned first = c->line;

        c->p++;
        for (;;) {
            if (c->p == c->end)
                return qt_diag_set(reterr, QT_EPARSE, first, (unsigned)col,
                                   "a quoted field is not closed");
            if (*c->p == '"') {
                if (c->p + 1 < c->end && c->p[1] == '"') {
                    *c->w++ = '"';
                    c->p += 2;
                    continue;
                }
                c->p++;
                break;
            }
            if (*c->p == '\0')
                return qt_diag_set(reterr, QT_EPARSE, c->line, (unsigned)col, "a NUL byte");
            if (*c->p == '\n')
                c->line++;
            *c->w++ = *c->p++;
        }
        if (c->p < c->end && is_eol_cr(c))
            c->p++;
        if (c->p < c->end && *c->p != ',' && *c->p != '\n')
            return qt_diag_set(reterr, QT_EPARSE, c->line, (unsigned)col,
                               "text after the closing quote of a field");
        return 0;
    }
    while (c->p < c->end && *c->p != ',' && *c->p != '\n') {
        if (*c->p == '"' || *c->p == '\0')
            return qt_diag_set(reterr, QT_EPARSE, c->line, (unsigned)col, "%s",
                               *c->p ? "a quote inside an unquoted field" : "a NUL byte");
        if (is_eol_cr(c)) {
            c->p++;
            continue;
        }
        *c->w++ = *c->p++;
    }
    return 0;
}

/* Reads one record (line) into f[0..*nf); *blank: an empty line. */
static int read_record(struct cursor *c, char **f, size_t *nf, bool *blank, struct qt_diag *reterr)
{
    size_t n = 0;
    bool quoted, any_quoted = false;

    for (;;) {
        char d;
        int r;

        if (n == QCTL_CSVTAB_MAX_COLS)
            return qt_diag_set(reterr, QT_ETOOBIG, c->line, (unsigned)n + 1, "more than %d fields",
                               QCTL_CSVTAB_MAX_COLS);
        f[n++] = c->w;
        r = read_field(c, n, &quoted, reterr);
        if (r < 0)
            return r;
        any_quoted |= quoted;
        d = c->p < c->end ? *c->p : '\n';
        *c->w++ = '\0';
        if (c->p < c->end)
            c->p++;
        if (d == '\n') {
            c->line++;
            break;
        }
    }
    *nf = n;
    *blank = n == 1 && !any_quoted && f[0][0] == '\0';
    return 0;
}

static int add_row(struct qctl_csvtab *t, size_t *cap, char **f, unsigned line)
{
    if (t->nrows == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        char **nc;
        unsigned *nl;

        if (ncap > SIZE_MAX / sizeof(char *) / t->ncols)
            return -ENOMEM;
        nc = realloc(t->cells, ncap * t->ncols * sizeof(char *));
        if (!nc)
            return -ENOMEM;
        t->cells = nc;
        nl = realloc(t->line, ncap * sizeof(unsigned));
        if (!nl)
            return -ENOMEM;
        t->line = nl;
        *cap = ncap;
    }
    memcpy(t->cells + t->nrows * t->ncols, f, t->ncols * sizeof(char *));
    t->line[t->nrows++] = line;
    return 0;
}

int qctl_csvtab_parse(char *buf, size_t len, struct qctl_csvtab *ret, struct qt_diag *reterr)
{
    struct qctl_csvtab t = {0, 0, NULL, NULL, NULL, buf};
    struct cursor c = {buf, buf + len, buf, 1};
    char **f = malloc(QCTL_CSVTAB_MAX_COLS * sizeof(char *));
    size_t cap = 0, nf = 0;
    bool blank = false;
    int r = f ? 0 : -ENOMEM;

    if (r == 0 && len > QCTL_CSVTAB_MAX_BYTES)
        r = qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "more than %zu bytes", QCTL_CSVTAB_MAX_BYTES);
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) /* a UTF-8 BOM (Excel writes one) */
        c.p += 3;
    while (r == 0 && c.p < c.end) {
        unsigned line = c.line;

        r = read_record(&c, f, &nf, &blank, reterr);
        if (r < 0 || blank)
            continue;
        if (!t.head) {
            t.ncols = nf;
            t.head = malloc(nf * sizeof(char *));
            if (!t.head)
                r = -ENOMEM;
            else
                memcpy(t.head, f, nf * sizeof(char *));
            continue;
        }
        if (nf != t.ncols)
            r = qt_diag_set(reterr, QT_EPARSE, line, (unsigned)(nf < t.ncols ? nf : t.ncols + 1),
                            "%zu fields, the header has %zu", nf, t.ncols);
        else
            r = add_row(&t, &cap, f, line);
    }
    if (r == 0 && !t.head)
        r = qt_diag_set(reterr, QT_EEMPTY, 1, 0, "no header line");
    if (r == -ENOMEM)
        (void)qt_diag_set(reterr, r, c.line, 0, "out of memory");
    free(f);
    if (r < 0) {
        qctl_csvtab_done(&t);
        return r;
    }
    *ret = t;
    return 0;
}

void qctl_csvtab_done(struct qctl_csvtab *t)
{
    free(t->head);
    free(t->cells);
    free(t->line);
    free(t->buf);
    memset(t, 0, sizeof(*t));
}

int qctl_csvtab_col(const struct qctl_csvtab *t, const char *name)
{
    for (size_t i = 0; i < t->ncols; i++)
        if (strcmp(t->head[i], name) == 0)
            return (int)i;
    return -1;
}
