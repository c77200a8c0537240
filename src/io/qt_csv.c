/* Reader for the origin's header-less sample tables (',' / ';' / whitespace separated text).
 * Two passes over the bytes: the first validates and sizes the table, the second converts. */
#define _GNU_SOURCE /* strtod_l */
#include "io/qt_csv.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_mem.h"

/* Bytes of offending text quoted in a message, and the room the escaped quote may take. */
#define QUOTE_MAX 20
#define QUOTE_CAP (QUOTE_MAX * 4 + sizeof("..."))

/* Short lines are padded with empty cells, so a table can hold far more cells than the input
 * has bytes. A dense table never has more than one cell per byte plus one; anything beyond this
 * many cells per input byte is padding we refuse to allocate for. */
#define CELLS_PER_BYTE 4

struct csv {
    const char *buf, *end; /* input after the byte-order mark */
    size_t len;            /* end - buf */
    const struct qt_csv_limits *lim;
    char sep;                  /* ',' or ';', or 0 for runs of spaces and tabs */
    size_t rows, cols, maxtok; /* found by the first pass */
    struct qt_table *t;        /* filled by the second pass; NULL during the first */
    locale_t loc;              /* "C" numeric locale for strtod_l */
    char *tok;                 /* maxtok + 1 bytes: one field, NUL-terminated */
    struct qt_diag *reterr;
};

/* One line's fields, in order. */
struct fields {
    const char *p, *eol;
    char sep;
    bool done;
};

static bool is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static unsigned clamp_uint(size_t v)
{
    return v > UINT_MAX ? UINT_MAX : (unsigned)v;
}

/* Writes s[0..n) into dst (QUOTE_CAP bytes) as printable ASCII: at most QUOTE_MAX bytes, each
 * byte outside ' '..'~' (and the quote and backslash) as \xNN, then "..." if cut short. */
static void quote(char *dst, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;

    for (size_t i = 0; i < n && i < QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= ' ' && c <= '~' && c != '\'' && c != '\\') {
            dst[o++] = (char)c;
        } else {
            dst[o++] = '\\';
            dst[o++] = 'x';
            dst[o++] = hex[c >> 4];
            dst[o++] = hex[c & 15];
        }
    }
    if (n > QUOTE_MAX) {
        memcpy(dst + o, "...", 3);
        o += 3;
    }
    dst[o] = '\0';
}

/* Case-insensitive ASCII comparison of s[0..n) with the lower-case word w; no locale involved. */
static bool is_word(const char *s, size_t n, const char *w)
{
    size_t i;

    for (i = 0; i < n && w[i]; i++) {
        char c = s[i];

        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != w[i])
            return false;
    }
    return i == n && !w[i];
}

static size_t skip_digits(const char *s, size_t i, size_t n)
{
    while (i < n && is_digit(s[i]))
        i++;
    return i;
}

/* True when s[0..n) is [+-]digits[<point>digits][(e|E)[+-]digits] with at least one mantissa
 * digit (so "1." and ".5" pass, as in strtod), or [+-]nan, inf or infinity in any case. */
static bool is_number(const char *s, size_t n, char point)
{
    size_t i = 0, j, digits;

    if (i < n && (s[i] == '+' || s[i] == '-'))
        i++;
    /* The words start with a letter: a field of digits skips them (three calls per field). */
    if (i < n && !is_digit(s[i]) && s[i] != point &&
        (is_word(s + i, n - i, "nan") || is_word(s + i, n - i, "inf") ||
         is_word(s + i, n - i, "infinity")))
        return true;
    j = skip_digits(s, i, n);
    digits = j - i;
    if (j < n && s[j] == point) {
        i = j + 1;
        j = skip_digits(s, i, n);
        digits += j - i;
    }
    if (digits == 0)
        return false;
    if (j < n && (s[j] == 'e' || s[j] == 'E')) {
        i = j + 1;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        j = skip_digits(s, i, n);
        if (j == i)
            return false;
    }
    return j == n;
}

/* Where the next '\n' and the next '\r' are (end: none), found at or after the positions asked
 * for, which only grow: each memchr starts past the previous find, so the input is scanned once
 * for each character however its lines end. (memchr's vector loops: a sample table's lines are
 * long, a 20,000-sample file has 4 of 350 kB, and a byte loop took half of the parse; an
 * unbounded search for '\n' alone would rescan a file of lone CRs to its end at every line.) */
struct eol {
    const char *nl, *cr; /* NULL: not searched yet */
};

/* The first line end ('\n' or '\r') at or after p, or end. */
static const char *line_end(struct eol *e, const char *p, const char *end)
{
    if (!e->nl || e->nl < p) {
        e->nl = memchr(p, '\n', (size_t)(end - p));
        e->nl = e->nl ? e->nl : end;
    }
    if (!e->cr || e->cr < p) {
        e->cr = memchr(p, '\r', (size_t)(end - p));
        e->cr = e->cr ? e->cr : end;
    }
    return e->nl < e->cr ? e->nl : e->cr;
}

/* The start of the next line after the line end at eol: LF, CRLF and a lone CR are each one. */
static const char *next_line(const char *eol, const char *end)
{
    if (eol == end)
        return eol;
    if (*eol++ == '\r' && eol < end && *eol == '\n')
        eol++;
    return eol;
}

static bool line_is_blank(const char *p, const char *eol)
{
    while (p < eol && is_blank(*p))
        p++;
    return p == eol;
}

/* ';' if the first non-blank line has one, else ',' if it has one, else 0 (whitespace). */
static char detect_sep(const char *p, const char *end)
{
    struct eol e = {NULL, NULL};

    while (p < end) {
        const char *eol = line_end(&e, p, end);
        size_t n = (size_t)(eol - p);

        if (!line_is_blank(p, eol)) {
            if (memchr(p, ';', n))
                return ';';
            return memchr(p, ',', n) ? ',' : 0;
        }
        p = next_line(eol, end);
    }
    return 0;
}

/* Yields the next field of the line, without surrounding spaces and tabs. With a separator a
 * line of k separators has k + 1 fields (possibly empty); without one, fields are the runs of
 * other bytes, so none is empty. */
static bool next_field(struct fields *it, const char **ret_s, size_t *ret_n)
{
    const char *s = it->p, *e;

    if (it->done)
        return false;
    if (it->sep) {
        e = memchr(s, it->sep, (size_t)(it->eol - s));
        if (!e) {
            e = it->eol;
            it->done = true;
        }
        it->p = it->done ? e : e + 1;
        while (s < e && is_blank(*s))
            s++;
        while (e > s && is_blank(e[-1]))
            e--;
    } else {
        while (s < it->eol && is_blank(*s))
            s++;
        if (s == it->eol) {
            it->done = true;
            return false;
        }
        for (e = s; e < it->eol && !is_blank(*e);)
            e++;
        it->p = e;
    }
    *ret_s = s;
    *ret_n = (size_t)(e - s);
    return true;
}

/* First pass: one field must be empty or a number. */
static int check_field(struct csv *c, size_t line, size_t field, const char *s, size_t n)
{
    unsigned l = clamp_uint(line), f = clamp_uint(field);
    char q[QUOTE_CAP];

    if (n == 0 || is_number(s, n, '.'))
        return 0;
    quote(q, s, n);
    if (memchr(s, '\0', n))
        return qt_diag_set(c->reterr, QT_EPARSE, l, f, "line %u, field %u: NUL byte in '%s'", l, f,
                           q);
    if (c->sep != ',' && is_number(s, n, ','))
        return qt_diag_set(c->reterr, QT_EPARSE, l, f,
                           "line %u, field %u: '%s' is not a number (decimal comma? numbers "
                           "must use '.')",
                           l, f, q);
    return qt_diag_set(c->reterr, QT_EPARSE, l, f, "line %u, field %u: '%s' is not a number", l, f,
                       q);
}

/* Second pass: converts one non-empty field, already checked, into cell (row, col). */
static int store_field(struct csv *c, size_t line, size_t field, const char *s, size_t n)
{
    size_t k = c->rows + c->t->rows * (field - 1); /* c->rows: the row being stored */
    char *endp;

    if (n == 0)
        return 0; /* the table starts out all empty */
    if (n <= 15) { /* counts: up to 15 plain digits are exact in a double, no strtod needed */
        uint64_t u = 0;
        size_t i = 0;

        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            u = u * 10 + (uint64_t)(s[i] - '0');
        if (i == n) {
            c->t->v[k] = (double)u;
            c->t->empty[k] = 0;
            return 0;
        }
    }
    memcpy(c->tok, s, n);
    c->tok[n] = '\0';
    c->t->v[k] = strtod_l(c->tok, &endp, c->loc);
    c->t->empty[k] = 0;
    if (endp != c->tok + n) /* cannot happen after check_field; never trust it blindly */
        return qt_diag_set(c->reterr, QT_EPARSE, clamp_uint(line), clamp_uint(field),
                           "line %u, field %u: number not understood", clamp_uint(line),
                           clamp_uint(field));
    return 0;
}

/* Checks (first pass) or stores (second pass) the fields of one non-blank line. In the second
 * pass c->rows is the index of the row being stored. */
static int do_line(struct csv *c, const char *p, const char *eol, size_t line)
{
    struct fields it = {p, eol, c->sep, false};
    const char *s;
    size_t n, field = 0;
    int r;

    while (next_field(&it, &s, &n)) {
        field++;
        if (field > c->lim->max_cols)
            return qt_diag_set(c->reterr, QT_ETOOBIG, clamp_uint(line), clamp_uint(field),
                               "line %u: more than %zu fields", clamp_uint(line), c->lim->max_cols);
        r = c->t ? store_field(c, line, field, s, n) : check_field(c, line, field, s, n);
        if (r < 0)
            return r;
        c->maxtok = QT_MAX(c->maxtok, n);
    }
    c->cols = QT_MAX(c->cols, field);
    return 0;
}

/* One pass over the input: counts rows into c->rows. */
static int walk(struct csv *c)
{
    const char *p = c->buf;
    struct eol e = {NULL, NULL};
    size_t line = 0;
    int r;

    c->rows = 0;
    while (p < c->end) {
        const char *eol = line_end(&e, p, c->end);

        line++;
        if (!line_is_blank(p, eol)) {
            if (c->rows >= c->lim->max_rows)
                return qt_diag_set(c->reterr, QT_ETOOBIG, clamp_uint(line), 0,
                                   "line %u: more than %zu rows", clamp_uint(line),
                                   c->lim->max_rows);
            r = do_line(c, p, eol, line);
            if (r < 0)
                return r;
            c->rows++;
        }
        p = next_line(eol, c->end);
    }
    return 0;
}

/* Allocates t as c->rows x c->cols, every cell empty, after checking the size limits. */
static int alloc_table(struct csv *c, struct qt_table *t)
{
    size_t rows = c->rows, cols = c->cols, cells;

    if (rows > c->lim->max_cells / cols)
        return qt_diag_set(c->reterr, QT_ETOOBIG, 0, 0,
                           "%zu rows x %zu columns is more than %zu cells", rows, cols,
                           c->lim->max_cells);
    cells = rows * cols;
    if (cells / CELLS_PER_BYTE > c->len || cells > SIZE_MAX / sizeof(double))
        return qt_diag_set(c->reterr, QT_ETOOBIG, 0, 0,
                           "%zu rows x %zu columns from %zu bytes: too many missing fields at "
                           "line ends",
                           rows, cols, c->len);
    /* Written at once: huge pages (a 20,000-sample file's 2.5 MB took 625 page faults of 4 kB, a
     * third of a fast run's). */
    t->v = qt_alloc_huge(cells, sizeof(double));
    t->empty = malloc(cells);
    if (!t->v || !t->empty)
        return qt_diag_set(c->reterr, -ENOMEM, 0, 0, "out of memory for %zu x %zu cells", rows,
                           cols);
    t->rows = rows;
    t->cols = cols;
    for (size_t i = 0; i < cells; i++)
        t->v[i] = NAN;
    memset(t->empty, 1, cells);
    return 0;
}

int qt_csv_parse(const char *buf, size_t len, const struct qt_csv_limits *lim, struct qt_table *ret,
                 struct qt_diag *reterr)
{
    static const struct qt_csv_limits defaults = QT_CSV_LIMITS_DEFAULT;
    struct csv c = {.lim = lim ? lim : &defaults, .reterr = reterr};
    struct qt_table t = {0};
    int r;

    if (!ret || (!buf && len))
        return qt_diag_set(reterr, -EINVAL, 0, 0, "no input buffer or result");
    if (len > c.lim->max_bytes)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "input of %zu bytes is over the limit of %zu",
                           len, c.lim->max_bytes);
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0) {
        buf += 3;
        len -= 3;
    }
    if (len == 0)
        return qt_diag_set(reterr, QT_EEMPTY, 0, 0, "no data rows");
    c.buf = buf;
    c.end = buf + len;
    c.len = len;
    c.sep = detect_sep(c.buf, c.end);
    r = walk(&c);
    if (r < 0)
        return r;
    if (c.rows == 0)
        return qt_diag_set(reterr, QT_EEMPTY, 0, 0, "no data rows");
    r = alloc_table(&c, &t);
    if (r < 0)
        goto out;
    c.loc = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
    c.tok = malloc(c.maxtok + 1);
    if (!c.loc || !c.tok) {
        r = qt_diag_set(reterr, -ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    c.t = &t;
    r = walk(&c);
    if (r < 0)
        goto out;
    *ret = t;
    t = (struct qt_table){0};
out:
    qt_table_done(&t);
    free(c.tok);
    if (c.loc)
        freelocale(c.loc);
    return r;
}

void qt_table_done(struct qt_table *t)
{
    if (!t)
        return;
    free(t->v);
    free(t->empty);
    *t = (struct qt_table){0};
}

bool qt_table_col_empty(const struct qt_table *t, size_t c)
{
    if (!t || c >= t->cols)
        return true; /* a column that does not exist has no values */
    for (size_t r = 0; r < t->rows; r++)
        if (!t->empty[r + t->rows * c])
            return false;
    return true;
}

/* Reads "  digits  " at *pp into *ret; false on no digits or overflow. */
static bool scan_index(const char **pp, size_t *ret)
{
    const char *p = *pp;
    size_t v = 0;

    while (is_blank(*p))
        p++;
    if (!is_digit(*p))
        return false;
    for (; is_digit(*p); p++) {
        size_t d = (size_t)(*p - '0');

        if (v > (SIZE_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    while (is_blank(*p))
        p++;
    *pp = p;
    *ret = v;
    return true;
}

static bool scan_range(const char *s, size_t *ret_first, size_t *ret_last)
{
    size_t a, b;

    if (!scan_index(&s, &a))
        return false;
    b = a;
    if (*s == ':' || *s == '-' || *s == ',') {
        s++;
        if (!scan_index(&s, &b))
            return false;
    }
    if (*s)
        return false;
    *ret_first = a;
    *ret_last = b;
    return true;
}

int qt_csv_parse_range(const char *s, size_t *ret_first, size_t *ret_last, struct qt_diag *reterr)
{
    char q[QUOTE_CAP];
    size_t a, b;

    quote(q, s ? s : "", s ? strlen(s) : 0);
    if (!s || !scan_range(s, &a, &b))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "column range '%s': expected N or A:B (also A-B or A,B)", q);
    if (a == 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "column range '%s': columns are numbered from 1", q);
    if (b < a)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "column range '%s': first column %zu is after last column %zu", q, a, b);
    *ret_first = a;
    *ret_last = b;
    return 0;
}

int qt_csv_check_range(const struct qt_table *t, size_t first, size_t last, struct qt_diag *reterr)
{
    size_t cols = t ? t->cols : 0;

    if (first < 1 || first > last || last > cols)
        return qt_diag_set(reterr, QT_EOPTION, 0, 0,
                           "column range %zu:%zu does not fit the table's %zu columns", first, last,
                           cols);
    return 0;
}
