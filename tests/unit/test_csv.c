/* Sample-table reader (qt_csv): every accepted layout, the origin's real files, rejected text
 * with exact positions and messages, every limit, and column ranges. */
#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_csv.h"
#include "qt_test.h"

/* Parses a string literal (its exact bytes, NULs included) with limits lim (NULL: defaults). */
#define PARSE(lit, lim, t, err) qt_csv_parse(lit, sizeof(lit) - 1, lim, t, err)

#define V(t, r, c) ((t)->v[(r) + (t)->rows * (c)])
#define E(t, r, c) ((t)->empty[(r) + (t)->rows * (c)])

static const struct qt_table sentinel = {.rows = 99, .cols = 98};

static void assert_cell(const struct qt_table *t, size_t r, size_t c, double v)
{
    assert_int_equal(E(t, r, c), 0);
    qt_assert_close(V(t, r, c), v, 0.0, 0.0);
}

static void assert_empty_cell(const struct qt_table *t, size_t r, size_t c)
{
    assert_int_equal(E(t, r, c), 1);
    assert_true(isnan(V(t, r, c)));
}

static void assert_shape(const struct qt_table *t, size_t rows, size_t cols)
{
    assert_int_equal(t->rows, rows);
    assert_int_equal(t->cols, cols);
}

/* Parses a malloc'd copy of exactly n bytes (no terminator past it, so ASan sees overreads). */
static int parse_exact(const char *s, size_t n, const struct qt_csv_limits *lim, struct qt_table *t,
                       struct qt_diag *err)
{
    char *copy = malloc(n ? n : 1);
    int r;

    assert_non_null(copy);
    memcpy(copy, s, n);
    r = qt_csv_parse(copy, n, lim, t, err);
    free(copy);
    return r;
}

/* Expects a failure with code, position and message exactly, and *ret untouched. */
static void expect_error(const char *s, size_t n, const struct qt_csv_limits *lim, int code,
                         unsigned line, unsigned col, const char *msg)
{
    struct qt_table t = sentinel;
    struct qt_diag err = {0};

    assert_int_equal(parse_exact(s, n, lim, &t, &err), code);
    assert_int_equal(err.line, line);
    assert_int_equal(err.column, col);
    if (msg)
        assert_string_equal(err.msg, msg);
    assert_memory_equal(&t, &sentinel, sizeof(t));
}

#define EXPECT_ERROR(lit, lim, code, line, col, msg) \
    expect_error(lit, sizeof(lit) - 1, lim, code, line, col, msg)

static void test_comma(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1,2,3\n4,5.5,-6e2\n", NULL, &t, &err), 0);
    assert_shape(&t, 2, 3);
    assert_cell(&t, 0, 0, 1.0);
    assert_cell(&t, 0, 1, 2.0);
    assert_cell(&t, 0, 2, 3.0);
    assert_cell(&t, 1, 0, 4.0);
    assert_cell(&t, 1, 1, 5.5);
    assert_cell(&t, 1, 2, -600.0);
    qt_table_done(&t);
}

static void test_semicolon(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1.25;2\n 3 ; 4 \n", NULL, &t, &err), 0);
    assert_shape(&t, 2, 2);
    assert_cell(&t, 0, 0, 1.25);
    assert_cell(&t, 0, 1, 2.0);
    assert_cell(&t, 1, 0, 3.0);
    assert_cell(&t, 1, 1, 4.0);
    qt_table_done(&t);
}

/* ';' wins over ',' on the first data line, and the choice holds for the whole file. */
static void test_separator_choice(void **state)
{
    (void)state;
    EXPECT_ERROR("1;2,5\n", NULL, QT_EPARSE, 1, 2,
                 "line 1, field 2: '2,5' is not a number (decimal comma? numbers must use '.')");
    EXPECT_ERROR("1,2\n3;4\n", NULL, QT_EPARSE, 2, 1, "line 2, field 1: '3;4' is not a number");
    EXPECT_ERROR("1 2\n3,4 5\n", NULL, QT_EPARSE, 2, 1,
                 "line 2, field 1: '3,4' is not a number (decimal comma? numbers must use '.')");
    EXPECT_ERROR("1,2\n3 4,5\n", NULL, QT_EPARSE, 2, 1, "line 2, field 1: '3 4' is not a number");
}

static void test_whitespace(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1 2\t3\n  4\t\t5   6  \n7\n", NULL, &t, &err), 0);
    assert_shape(&t, 3, 3);
    assert_cell(&t, 0, 0, 1.0);
    assert_cell(&t, 0, 2, 3.0);
    assert_cell(&t, 1, 0, 4.0);
    assert_cell(&t, 1, 1, 5.0);
    assert_cell(&t, 1, 2, 6.0);
    assert_cell(&t, 2, 0, 7.0);
    assert_empty_cell(&t, 2, 1);
    assert_empty_cell(&t, 2, 2);
    qt_table_done(&t);
}

static void test_tabs(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("\t10\t20\t\n30\t40", NULL, &t, &err), 0);
    assert_shape(&t, 2, 2);
    assert_cell(&t, 0, 0, 10.0);
    assert_cell(&t, 0, 1, 20.0);
    assert_cell(&t, 1, 0, 30.0);
    assert_cell(&t, 1, 1, 40.0);
    qt_table_done(&t);
}

static void test_bom(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("\xef\xbb\xbf"
                           "1,2\n",
                           NULL, &t, &err),
                     0);
    assert_shape(&t, 1, 2);
    assert_cell(&t, 0, 0, 1.0);
    assert_cell(&t, 0, 1, 2.0);
    qt_table_done(&t);
    /* Only at the very start. */
    EXPECT_ERROR("1\n\xef\xbb\xbf"
                 "2\n",
                 NULL, QT_EPARSE, 2, 1, "line 2, field 1: '\\xef\\xbb\\xbf2' is not a number");
}

static void test_line_ends(void **state)
{
    static const char *const inputs[] = {"1,2\r\n3,4\r\n", "1,2\r3,4\r", "1,2\n3,4", "1,2\r\n3,4",
                                         "1,2\r3,4\n"};
    struct qt_diag err;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(inputs); i++) {
        struct qt_table t = sentinel;

        assert_int_equal(parse_exact(inputs[i], strlen(inputs[i]), NULL, &t, &err), 0);
        assert_shape(&t, 2, 2);
        assert_cell(&t, 0, 0, 1.0);
        assert_cell(&t, 0, 1, 2.0);
        assert_cell(&t, 1, 0, 3.0);
        assert_cell(&t, 1, 1, 4.0);
        qt_table_done(&t);
    }
    /* CRLF is one line end; a lone CR and "\n\r" are not merged, so x is on line 5. */
    EXPECT_ERROR("1\r\n2\n\r3\rx\n", NULL, QT_EPARSE, 5, 1, "line 5, field 1: 'x' is not a number");
    EXPECT_ERROR("1\r\n2\r\nx", NULL, QT_EPARSE, 3, 1, "line 3, field 1: 'x' is not a number");
}

static void test_blank_lines(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("\n  \n1,2\n\t\n\n3,4\n \t \n\n", NULL, &t, &err), 0);
    assert_shape(&t, 2, 2);
    assert_cell(&t, 0, 1, 2.0);
    assert_cell(&t, 1, 0, 3.0);
    qt_table_done(&t);
    /* Blank lines still count for positions. */
    EXPECT_ERROR("\n\n1\n \nx1\n", NULL, QT_EPARSE, 5, 1, "line 5, field 1: 'x1' is not a number");
}

static void test_trailing_separator(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1,2,\n3,4,\n", NULL, &t, &err), 0);
    assert_shape(&t, 2, 3);
    assert_cell(&t, 1, 1, 4.0);
    assert_empty_cell(&t, 0, 2);
    assert_empty_cell(&t, 1, 2);
    assert_false(qt_table_col_empty(&t, 1));
    assert_true(qt_table_col_empty(&t, 2));
    qt_table_done(&t);
}

static void test_ragged(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1;2;3\n4\n5;6\n", NULL, &t, &err), 0);
    assert_shape(&t, 3, 3);
    assert_cell(&t, 0, 2, 3.0);
    assert_cell(&t, 1, 0, 4.0);
    assert_empty_cell(&t, 1, 1);
    assert_empty_cell(&t, 1, 2);
    assert_cell(&t, 2, 1, 6.0);
    assert_empty_cell(&t, 2, 2);
    assert_false(qt_table_col_empty(&t, 2));
    qt_table_done(&t);
    /* A later line may be the widest, but the first line sets the separator: with no ',' in
     * it the file is whitespace separated. */
    assert_int_equal(PARSE("1,\n2,3,4\n", NULL, &t, &err), 0);
    assert_shape(&t, 2, 3);
    assert_empty_cell(&t, 0, 2);
    assert_cell(&t, 1, 2, 4.0);
    qt_table_done(&t);
    EXPECT_ERROR("1\n2,3,4\n", NULL, QT_EPARSE, 2, 1, "line 2, field 1: '2,3,4' is not a number");
}

static void test_empty_cells(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("1,,3\n , 5 ,\n,,\n", NULL, &t, &err), 0);
    assert_shape(&t, 3, 3);
    assert_cell(&t, 0, 0, 1.0);
    assert_empty_cell(&t, 0, 1);
    assert_cell(&t, 0, 2, 3.0);
    assert_empty_cell(&t, 1, 0);
    assert_cell(&t, 1, 1, 5.0);
    assert_empty_cell(&t, 1, 2);
    for (size_t c = 0; c < 3; c++)
        assert_empty_cell(&t, 2, c);
    qt_table_done(&t);
}

static void test_nan_inf(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(PARSE("nan,-inf,+Infinity,INF,NaN,-nan,iNfInItY\n", NULL, &t, &err), 0);
    assert_shape(&t, 1, 7);
    for (size_t c = 0; c < 7; c++)
        assert_int_equal(E(&t, 0, c), 0);
    assert_true(isnan(V(&t, 0, 0)));
    assert_true(isinf(V(&t, 0, 1)) && V(&t, 0, 1) < 0);
    assert_true(isinf(V(&t, 0, 2)) && V(&t, 0, 2) > 0);
    assert_true(isinf(V(&t, 0, 3)) && V(&t, 0, 3) > 0);
    assert_true(isnan(V(&t, 0, 4)));
    assert_true(isnan(V(&t, 0, 5)));
    assert_true(isinf(V(&t, 0, 6)) && V(&t, 0, 6) > 0);
    assert_false(qt_table_col_empty(&t, 0));
    qt_table_done(&t);
    EXPECT_ERROR("nan(1)\n", NULL, QT_EPARSE, 1, 1, "line 1, field 1: 'nan(1)' is not a number");
    EXPECT_ERROR("1,infinit\n", NULL, QT_EPARSE, 1, 2,
                 "line 1, field 2: 'infinit' is not a number");
    EXPECT_ERROR("1,infs\n", NULL, QT_EPARSE, 1, 2, "line 1, field 2: 'infs' is not a number");
    EXPECT_ERROR("+-inf\n", NULL, QT_EPARSE, 1, 1, "line 1, field 1: '+-inf' is not a number");
}

static void test_number_forms(void **state)
{
    static const struct {
        const char *text;
        double value;
    } ok[] = {
        {"1.", 1.0},
        {".5", 0.5},
        {"+1", 1.0},
        {"-0.25", -0.25},
        {"1e5", 1e5},
        {"1E-5", 1e-5},
        {"1e+05", 1e5},
        {"-.5e1", -5.0},
        {"007", 7.0},
        {"1e400", INFINITY},
        {"-1e400", -INFINITY},
        {"1e-400", 0.0},
        {"2091.402167", 2091.402167},
    };
    struct qt_diag err;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(ok); i++) {
        struct qt_table t = sentinel;

        assert_int_equal(parse_exact(ok[i].text, strlen(ok[i].text), NULL, &t, &err), 0);
        assert_shape(&t, 1, 1);
        assert_int_equal(E(&t, 0, 0), 0);
        if (isinf(ok[i].value))
            assert_true(isinf(V(&t, 0, 0)) && (V(&t, 0, 0) > 0) == (ok[i].value > 0));
        else
            qt_assert_close(V(&t, 0, 0), ok[i].value, 1e-15, 0.0);
        qt_table_done(&t);
    }
}

/* Plain digit strings (counts) take a path without strtod up to 15 digits: every length from 1
 * to 20, leading zeros, and the 15/16-digit edge give exactly strtod's double. */
static void test_integer_counts_exact(void **state)
{
    static const char *const fixed[] = {"0", "00", "0000000000000000001", "999999999999999",
                                        "9999999999999999", "123456789012345", "1234567890123456",
                                        "9007199254740993", "18446744073709551617"};
    char text[2 * 40 * 24], want_text[32];
    uint64_t x = 0x9e3779b97f4a7c15u;
    struct qt_diag err;
    size_t len = 0, cols = 0;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(fixed); i++, cols++)
        len += (size_t)sprintf(text + len, "%s%s", cols ? "," : "", fixed[i]);
    for (int digits = 1; digits <= 20; digits++)
        for (int rep = 0; rep < 2; rep++, cols++) {
            text[len++] = ',';
            for (int k = 0; k < digits; k++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                text[len++] = (char)('0' + (k == 0 && rep == 0 ? 0 : x % 10));
            }
        }
    text[len] = '\0';

    struct qt_table t = sentinel;
    const char *p = text;

    assert_int_equal(parse_exact(text, len, NULL, &t, &err), 0);
    assert_shape(&t, 1, cols);
    for (size_t c = 0; c < cols; c++) {
        size_t n = strcspn(p, ",");
        double want;

        memcpy(want_text, p, n);
        want_text[n] = '\0';
        want = strtod(want_text, NULL);
        assert_int_equal(E(&t, 0, c), 0);
        assert_memory_equal(&V(&t, 0, c), &want, sizeof(want)); /* bit for bit */
        p += n + (p[n] == ',');
    }
    qt_table_done(&t);
}

static void test_number_rejects(void **state)
{
    static const char *const bad[] = {
        "0x10", "0x1p3", "1e",    "1e+",   "1E-", ".",   "+",    "-",    "1.2.3", "1..2",    "--1",
        "1d5",  "1_000", "12abc", "abc12", "e5",  ".e5", "1 e5", "1e5.", "1,5",   "\xd9\xa1"};
    struct qt_diag err;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(bad); i++) {
        struct qt_table t = sentinel;
        char buf[64];

        /* On the third line, second field, in a ';' file. */
        (void)snprintf(buf, sizeof(buf), "1;2\n3;4\n5;%s;6\n", bad[i]);
        assert_int_equal(parse_exact(buf, strlen(buf), NULL, &t, &err), QT_EPARSE);
        assert_int_equal(err.line, 3);
        assert_int_equal(err.column, 2);
        assert_memory_equal(&t, &sentinel, sizeof(t));
    }
}

/* A comma-decimal LC_NUMERIC must not change anything. Skipped when no such locale exists. */
/* Sets a locale whose decimal point is ','. When none is installed, one is compiled into a
 * private directory with localedef (Debian's "locales" package, which install-deps installs),
 * so this test runs everywhere instead of being skipped. */
static char locale_dir[] = "/tmp/qtomo-locale-XXXXXX";

static const char *decimal_comma_locale(void)
{
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "de_DE"};
    char *dir = locale_dir, cmd[256];
    const char *set = NULL;

    for (size_t i = 0; i < QT_ARRAY_SIZE(names) && !set; i++)
        set = setlocale(LC_NUMERIC, names[i]);
    if (set)
        return set;
    assert_non_null(mkdtemp(dir));
    (void)snprintf(cmd, sizeof(cmd), "localedef -i de_DE -f UTF-8 %s/de_DE.UTF-8 2>/dev/null", dir);
    (void)system(cmd); /* localedef exits 1 on harmless warnings; the setlocale below decides */
    assert_int_equal(setenv("LOCPATH", dir, 1), 0);
    set = setlocale(LC_NUMERIC, "de_DE.UTF-8");
    if (!set)
        print_error("cannot set a decimal-comma locale (is the 'locales' package installed?)\n");
    assert_non_null(set);
    return set;
}

static void test_locale_independent(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    (void)decimal_comma_locale();
    assert_int_equal(localeconv()->decimal_point[0], ',');
    assert_int_equal(PARSE("1.5;2.25\n", NULL, &t, &err), 0);
    assert_cell(&t, 0, 0, 1.5);
    assert_cell(&t, 0, 1, 2.25);
    qt_table_done(&t);
    assert_int_equal(PARSE("1,5;2\n", NULL, &t, &err), QT_EPARSE);
    (void)setlocale(LC_NUMERIC, "C");
    if (strcmp(locale_dir + 18, "XXXXXX") != 0) { /* mkdtemp ran: remove the private locale */
        char cmd[128];

        (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", locale_dir);
        (void)system(cmd);
    }
}

static void test_ref_01(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;
    size_t len;
    char *buf = qt_read_file(qt_refdata("matlab-repo/01.csv"), &len);

    (void)state;
    assert_int_equal(qt_csv_parse(buf, len, NULL, &t, &err), 0);
    assert_shape(&t, 16, 1);
    assert_cell(&t, 0, 0, 209.1402167);
    assert_cell(&t, 1, 0, 9.131407795);
    assert_cell(&t, 15, 0, 107.2190631);
    assert_false(qt_table_col_empty(&t, 0));
    qt_table_done(&t);
    free(buf);
}

static void test_ref_02_empty_cols(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;
    size_t len;
    char *buf = qt_read_file(qt_refdata("matlab-repo/02_multicol_empty_cols.csv"), &len);

    (void)state;
    assert_int_equal(qt_csv_parse(buf, len, NULL, &t, &err), 0);
    assert_shape(&t, 16, 5);
    for (size_t c = 0; c < 5; c++)
        assert_int_equal(qt_table_col_empty(&t, c), c == 2 || c == 3);
    assert_cell(&t, 0, 0, 2091.402167);
    assert_cell(&t, 0, 1, 20914.02167);
    assert_cell(&t, 0, 4, 2091.402167);
    assert_empty_cell(&t, 0, 2);
    assert_empty_cell(&t, 15, 3);
    qt_table_done(&t);
    free(buf);
}

static void test_ref_mub4_counts(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err;
    size_t len;
    char *buf = qt_read_file(qt_refdata("generated/cli/mub4_3samples_counts.csv"), &len);

    (void)state;
    assert_int_equal(qt_csv_parse(buf, len, NULL, &t, &err), 0);
    assert_shape(&t, 20, 3);
    assert_cell(&t, 0, 0, 258.0);
    assert_cell(&t, 0, 1, 309.0);
    assert_cell(&t, 0, 2, 308.0);
    assert_cell(&t, 19, 0, 739.0);
    assert_cell(&t, 19, 2, 1206.0);
    qt_table_done(&t);
    free(buf);
}

/* The origin's raw files start with a GBK header row; its first field is rejected, escaped. */
static void test_ref_gbk_header(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err = {0};
    size_t len;
    char *buf = qt_read_file(qt_refdata("matlab-repo/bell2x2_raw_1.gbk.csv"), &len);

    (void)state;
    assert_int_equal(qt_csv_parse(buf, len, NULL, &t, &err), QT_EPARSE);
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 1);
    assert_string_equal(err.msg, "line 1, field 1: '\\xb9\\xe9\\xd2\\xbb\\xbb\\xaf\\xb9\\xa6"
                                 "\\xc2\\xca(\\xa6\\xccW)' is not a number");
    assert_memory_equal(&t, &sentinel, sizeof(t));
    free(buf);
    /* The same data without its header reads, with its empty columns. */
    buf = qt_read_file(qt_refdata("matlab-repo/bell2x2_raw_orig_noheader.csv"), &len);
    assert_int_equal(qt_csv_parse(buf, len, NULL, &t, &err), 0);
    assert_true(t.rows >= 4);
    assert_cell(&t, 0, 0, 2027.348);
    assert_true(qt_table_col_empty(&t, 1));
    assert_cell(&t, 0, 2, 4240.0);
    qt_table_done(&t);
    free(buf);
}

static void test_header_row(void **state)
{
    (void)state;
    EXPECT_ERROR("count,power\n1,2\n", NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: 'count' is not a number");
    EXPECT_ERROR("1,AB\xe7\xac\xa6\n", NULL, QT_EPARSE, 1, 2,
                 "line 1, field 2: 'AB\\xe7\\xac\\xa6' is not a number");
    EXPECT_ERROR("12 mW\n", NULL, QT_EPARSE, 1, 2, "line 1, field 2: 'mW' is not a number");
    EXPECT_ERROR("\"1\",\"2\"\n", NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: '\"1\"' is not a number");
}

static void test_stray_text(void **state)
{
    (void)state;
    EXPECT_ERROR("1,2\n3,4\n5,oops\n6,7\n", NULL, QT_EPARSE, 3, 2,
                 "line 3, field 2: 'oops' is not a number");
    EXPECT_ERROR("1 2 3\n4 5 6 # note\n", NULL, QT_EPARSE, 2, 4,
                 "line 2, field 4: '#' is not a number");
    EXPECT_ERROR("1;2\n;;'x\\\n", NULL, QT_EPARSE, 2, 3,
                 "line 2, field 3: '\\x27x\\x5c' is not a number");
}

static void test_decimal_comma(void **state)
{
    (void)state;
    EXPECT_ERROR("1,5;2,25\n", NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: '1,5' is not a number (decimal comma? numbers must use '.')");
    /* No hint for text that would not be a number either way. */
    EXPECT_ERROR("1;a,b\n", NULL, QT_EPARSE, 1, 2, "line 1, field 2: 'a,b' is not a number");
}

static void test_nul_byte(void **state)
{
    (void)state;
    EXPECT_ERROR("1,2\n3,\0\n", NULL, QT_EPARSE, 2, 2, "line 2, field 2: NUL byte in '\\x00'");
    EXPECT_ERROR("1,2\n3,4\0"
                 "5\n",
                 NULL, QT_EPARSE, 2, 2, "line 2, field 2: NUL byte in '4\\x005'");
    EXPECT_ERROR("\0", NULL, QT_EPARSE, 1, 1, "line 1, field 1: NUL byte in '\\x00'");
}

static void test_quote_truncated(void **state)
{
    char buf[200];

    (void)state;
    memset(buf, 'x', 100);
    memcpy(buf + 100, ",1\n", 3);
    expect_error(buf, 103, NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: 'xxxxxxxxxxxxxxxxxxxx...' is not a number");
    EXPECT_ERROR("1\x01\x7f\xff\n", NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: '1\\x01\\x7f\\xff' is not a number");
    /* Exactly QUOTE_MAX bytes: no ellipsis. */
    EXPECT_ERROR("abcdefghijklmnopqrst\n", NULL, QT_EPARSE, 1, 1,
                 "line 1, field 1: 'abcdefghijklmnopqrst' is not a number");
}

static void test_limit_bytes(void **state)
{
    struct qt_csv_limits lim = QT_CSV_LIMITS_DEFAULT;
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    lim.max_bytes = 5;
    EXPECT_ERROR("1,2,3\n", &lim, QT_ETOOBIG, 0, 0, "input of 6 bytes is over the limit of 5");
    lim.max_bytes = 6;
    assert_int_equal(PARSE("1,2,3\n", &lim, &t, &err), 0);
    assert_shape(&t, 1, 3);
    qt_table_done(&t);
}

static void test_limit_rows(void **state)
{
    struct qt_csv_limits lim = QT_CSV_LIMITS_DEFAULT;
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    lim.max_rows = 2;
    EXPECT_ERROR("1\n\n2\n3\n", &lim, QT_ETOOBIG, 4, 0, "line 4: more than 2 rows");
    assert_int_equal(PARSE("1\n\n2\n\n", &lim, &t, &err), 0);
    assert_shape(&t, 2, 1);
    qt_table_done(&t);
}

static void test_limit_cols(void **state)
{
    struct qt_csv_limits lim = QT_CSV_LIMITS_DEFAULT;
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    lim.max_cols = 2;
    EXPECT_ERROR("1,2\n3,4,5\n", &lim, QT_ETOOBIG, 2, 3, "line 2: more than 2 fields");
    EXPECT_ERROR("1,2,\n", &lim, QT_ETOOBIG, 1, 3, "line 1: more than 2 fields");
    EXPECT_ERROR("1 2 3\n", &lim, QT_ETOOBIG, 1, 3, "line 1: more than 2 fields");
    assert_int_equal(PARSE("1,2\n3,\n", &lim, &t, &err), 0);
    assert_shape(&t, 2, 2);
    qt_table_done(&t);
}

static void test_limit_cells(void **state)
{
    struct qt_csv_limits lim = QT_CSV_LIMITS_DEFAULT;
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    lim.max_cells = 5;
    EXPECT_ERROR("1,2,3\n4\n", &lim, QT_ETOOBIG, 0, 0, "2 rows x 3 columns is more than 5 cells");
    lim.max_cells = 6;
    assert_int_equal(PARSE("1,2,3\n4\n", &lim, &t, &err), 0);
    assert_shape(&t, 2, 3);
    qt_table_done(&t);
}

/* Padding short lines may not turn a small input into a huge table. */
static void test_limit_padding(void **state)
{
    size_t wide = 1000, n = 0;
    char *buf = malloc(wide + 2 * 1000 + 2);
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_non_null(buf);
    memset(buf, ',', wide - 1);
    n = wide - 1;
    buf[n++] = '\n';
    for (int i = 0; i < 1000; i++) {
        buf[n++] = '1';
        buf[n++] = '\n';
    }
    expect_error(buf, n, NULL, QT_ETOOBIG, 0, 0,
                 "1001 rows x 1000 columns from 3000 bytes: too many missing fields at line ends");
    /* A dense table of the same shape is fine, and so is moderate padding. */
    assert_int_equal(parse_exact(buf, wide, NULL, &t, &err), 0);
    assert_shape(&t, 1, 1000);
    assert_true(qt_table_col_empty(&t, 999));
    qt_table_done(&t);
    assert_int_equal(PARSE("1,2,3,4,5,6,7,8\n1\n2\n3\n", NULL, &t, &err), 0);
    assert_shape(&t, 4, 8);
    qt_table_done(&t);
    free(buf);
}

static void test_empty_input(void **state)
{
    struct qt_table t = sentinel;
    struct qt_diag err = {0};

    (void)state;
    assert_int_equal(qt_csv_parse(NULL, 0, NULL, &t, &err), QT_EEMPTY);
    assert_string_equal(err.msg, "no data rows");
    assert_memory_equal(&t, &sentinel, sizeof(t));
    EXPECT_ERROR("", NULL, QT_EEMPTY, 0, 0, "no data rows");
    EXPECT_ERROR("\xef\xbb\xbf", NULL, QT_EEMPTY, 0, 0, "no data rows");
    EXPECT_ERROR("\n\n  \t\r\n\r\r", NULL, QT_EEMPTY, 0, 0, "no data rows");
    EXPECT_ERROR("\xef\xbb\xbf \n", NULL, QT_EEMPTY, 0, 0, "no data rows");
    assert_int_equal(qt_csv_parse(NULL, 3, NULL, &t, &err), -EINVAL);
    assert_int_equal(qt_csv_parse("1", 1, NULL, NULL, &err), -EINVAL);
}

/* Errors with no diagnostics wanted still come back as codes. */
static void test_null_diag(void **state)
{
    struct qt_table t = sentinel;

    (void)state;
    assert_int_equal(PARSE("x\n", NULL, &t, NULL), QT_EPARSE);
    assert_int_equal(PARSE("\n", NULL, &t, NULL), QT_EEMPTY);
    assert_memory_equal(&t, &sentinel, sizeof(t));
    assert_int_equal(PARSE("1\n", NULL, &t, NULL), 0);
    assert_shape(&t, 1, 1);
    qt_table_done(&t);
}

/* The last field runs up to the end of an unterminated buffer. */
static void test_unterminated(void **state)
{
    static const char text[] = "1,2\n3,123456789012345678901234567890.5e-20";
    struct qt_table t = sentinel;
    struct qt_diag err;

    (void)state;
    assert_int_equal(parse_exact(text, strlen(text), NULL, &t, &err), 0);
    assert_shape(&t, 2, 2);
    qt_assert_close(V(&t, 1, 1), 1.234567890123456789e9, 1e-15, 0.0);
    qt_table_done(&t);
    expect_error(text, strlen(text) - 2, NULL, QT_EPARSE, 2, 2,
                 "line 2, field 2: '12345678901234567890...' is not a number");
}

static void test_range_ok(void **state)
{
    static const struct {
        const char *text;
        size_t first, last;
    } ok[] = {
        {"2:4", 2, 4}, {"3", 3, 3},     {"1-5", 1, 5},      {" 2 : 3 ", 2, 3},
        {"2,2", 2, 2}, {"\t7\t", 7, 7}, {"010:12", 10, 12}, {"1:1048576", 1, 1048576},
    };

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(ok); i++) {
        size_t first = 0, last = 0;
        struct qt_diag err;

        assert_int_equal(qt_csv_parse_range(ok[i].text, &first, &last, &err), 0);
        assert_int_equal(first, ok[i].first);
        assert_int_equal(last, ok[i].last);
    }
}

static void test_range_bad(void **state)
{
    static const char *const bad[] = {
        "0:3",  "4:2", "a:b", "1:",   "",  ":3",  "1:2:3", "-1",
        "+1",   "1 2", "1;2", "1..2", "0", "1:0", "1e1",   "99999999999999999999999:1",
        "2:3x", " ",   "1.5"};
    struct qt_diag err = {0};
    size_t first = 77, last = 78;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(bad); i++) {
        assert_int_equal(qt_csv_parse_range(bad[i], &first, &last, &err), QT_EPARSE);
        assert_int_equal(first, 77);
        assert_int_equal(last, 78);
    }
    assert_int_equal(qt_csv_parse_range(NULL, &first, &last, &err), QT_EPARSE);
    assert_int_equal(qt_csv_parse_range("4:2", &first, &last, &err), QT_EPARSE);
    assert_string_equal(err.msg, "column range '4:2': first column 4 is after last column 2");
    assert_int_equal(qt_csv_parse_range("0:3", &first, &last, &err), QT_EPARSE);
    assert_string_equal(err.msg, "column range '0:3': columns are numbered from 1");
    assert_int_equal(qt_csv_parse_range("a:b", &first, &last, &err), QT_EPARSE);
    assert_string_equal(err.msg, "column range 'a:b': expected N or A:B (also A-B or A,B)");
    assert_int_equal(qt_csv_parse_range("1:", &first, &last, NULL), QT_EPARSE);
}

static void test_check_range(void **state)
{
    struct qt_table t = sentinel, none = {0};
    struct qt_diag err = {0};

    (void)state;
    assert_int_equal(PARSE("1,2,3,4,5\n", NULL, &t, &err), 0);
    assert_int_equal(qt_csv_check_range(&t, 1, 5, &err), 0);
    assert_int_equal(qt_csv_check_range(&t, 2, 3, &err), 0);
    assert_int_equal(qt_csv_check_range(&t, 5, 5, &err), 0);
    assert_int_equal(qt_csv_check_range(&t, 0, 1, &err), QT_EOPTION);
    assert_int_equal(qt_csv_check_range(&t, 3, 2, &err), QT_EOPTION);
    assert_int_equal(qt_csv_check_range(&t, 1, 6, &err), QT_EOPTION);
    assert_string_equal(err.msg, "column range 1:6 does not fit the table's 5 columns");
    assert_int_equal(qt_csv_check_range(&t, 6, 6, NULL), QT_EOPTION);
    assert_int_equal(qt_csv_check_range(&none, 1, 1, &err), QT_EOPTION);
    assert_int_equal(qt_csv_check_range(NULL, 1, 1, &err), QT_EOPTION);
    qt_table_done(&t);
}

static void test_table_done(void **state)
{
    struct qt_table t = {0};
    struct qt_diag err;

    (void)state;
    qt_table_done(NULL);
    qt_table_done(&t);
    assert_int_equal(PARSE("1,2\n", NULL, &t, &err), 0);
    qt_table_done(&t);
    assert_int_equal(t.rows, 0);
    assert_int_equal(t.cols, 0);
    assert_null(t.v);
    assert_null(t.empty);
    qt_table_done(&t);
}

static void test_col_empty_bounds(void **state)
{
    struct qt_table t = {0};
    struct qt_diag err;

    (void)state;
    assert_true(qt_table_col_empty(NULL, 0));
    assert_true(qt_table_col_empty(&t, 0));
    assert_int_equal(PARSE("1,\n,\n", NULL, &t, &err), 0);
    assert_false(qt_table_col_empty(&t, 0));
    assert_true(qt_table_col_empty(&t, 1));
    assert_true(qt_table_col_empty(&t, 2));
    qt_table_done(&t);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_comma),
    cmocka_unit_test(test_semicolon),
    cmocka_unit_test(test_separator_choice),
    cmocka_unit_test(test_whitespace),
    cmocka_unit_test(test_tabs),
    cmocka_unit_test(test_bom),
    cmocka_unit_test(test_line_ends),
    cmocka_unit_test(test_blank_lines),
    cmocka_unit_test(test_trailing_separator),
    cmocka_unit_test(test_ragged),
    cmocka_unit_test(test_empty_cells),
    cmocka_unit_test(test_nan_inf),
    cmocka_unit_test(test_number_forms),
    cmocka_unit_test(test_integer_counts_exact),
    cmocka_unit_test(test_number_rejects),
    cmocka_unit_test(test_locale_independent),
    cmocka_unit_test(test_ref_01),
    cmocka_unit_test(test_ref_02_empty_cols),
    cmocka_unit_test(test_ref_mub4_counts),
    cmocka_unit_test(test_ref_gbk_header),
    cmocka_unit_test(test_header_row),
    cmocka_unit_test(test_stray_text),
    cmocka_unit_test(test_decimal_comma),
    cmocka_unit_test(test_nul_byte),
    cmocka_unit_test(test_quote_truncated),
    cmocka_unit_test(test_limit_bytes),
    cmocka_unit_test(test_limit_rows),
    cmocka_unit_test(test_limit_cols),
    cmocka_unit_test(test_limit_cells),
    cmocka_unit_test(test_limit_padding),
    cmocka_unit_test(test_empty_input),
    cmocka_unit_test(test_null_diag),
    cmocka_unit_test(test_unterminated),
    cmocka_unit_test(test_range_ok),
    cmocka_unit_test(test_range_bad),
    cmocka_unit_test(test_check_range),
    cmocka_unit_test(test_table_done),
    cmocka_unit_test(test_col_empty_bounds),
};

QT_TEST_MAIN(tests)
