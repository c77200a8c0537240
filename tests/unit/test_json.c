/* Unit tests for the JSON writer: Python repr() float formatting, round-trips, string escaping,
 * structure, comma placement and misuse detection. */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <jansson.h>
#include <locale.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_json.h"
#include "qt_fmt_ref.h"
#include "qt_test.h"

/* Expected strings were produced with /usr/bin/python3 -c 'print(repr(x))' (Python 3.11); the
 * inputs are C99 hexadecimal literals (float.hex()), so they are exact. */
static const struct {
    double x;
    const char *repr;
} repr_table[] = {
    {0x1.999999999999ap-4, "0.1"},
    {0x1.5555555555555p-2, "0.3333333333333333"},
    {0x1.5555555555555p-1, "0.6666666666666666"},
    {0x1.0f0cf064dd592p+73, "1e+22"},
    {0x1.1c37937e08000p+53, "1e+16"},
    {0x1.1c37937e07fffp+53, "9999999999999998.0"},
    {0x1.a36e2eb1c432dp-14, "0.0001"},
    {0x1.4f8b588e368f1p-17, "1e-05"},
    {0x1.02e4b6ce5dc68p-13, "0.00012345"},
    {0x1.b69b4ba630f35p+56, "1.2345678901234568e+17"},
    {0x0.0000000000001p-1022, "5e-324"},
    {0x0.0000000000002p-1022, "1e-323"},
    {0x0.fffffffffffffp-1022, "2.225073858507201e-308"},
    {0x1.0000000000000p-1022, "2.2250738585072014e-308"},
    {0x0.012688b70e62bp-1022, "1e-310"},
    {0x1.fffffffffffffp+1023, "1.7976931348623157e+308"},
    {-0x0p+0, "-0.0"},
    {0x0.0p+0, "0.0"},
    {0x1.9000000000000p+6, "100.0"},
    {0x1.d7878bb4bc346p-1, "0.9209560068248741"},
    {0x1.0000000000000p+0, "1.0"},
    {-0x1.0000000000000p+0, "-1.0"},
    {0x1.8000000000000p+0, "1.5"},
    {0x1.0000000000000p-1, "0.5"},
    {0x1.c6bf526340000p+49, "1000000000000000.0"},
    {0x1.18b54f22aeb00p+50, "1234567890123456.0"},
    {0x1.5ee2a2eb5a5c4p+53, "1.2345678901234568e+16"},
    {0x1.52d02c7e14af6p+76, "1e+23"},
    {0x1.0000000000000p+53, "9007199254740992.0"},
    {0x1.0000000000001p+53, "9007199254740994.0"},
    {0x1.ad7f29abcaf48p-24, "1e-07"},
    {0x1.421f5f40d8376p-23, "1.5e-07"},
    {0x1.0624dd2f1a9fcp-10, "0.001"},
    {0x1.02c9dedbc309dp-13, "0.0001234"},
    {-0x1.edd2f1a9fbe77p+6, "-123.456"},
    {0x1.921fb54442d18p+1, "3.141592653589793"},
    {0x1.5bf0a8b145769p+1, "2.718281828459045"},
    {0x1.249ad2594c37dp+332, "1e+100"},
    {0x1.bff2ee48e0530p-333, "1e-100"},
    {0x1.e240c9fbe76c9p+16, "123456.789"},
    {0x1.3333333333334p-2, "0.30000000000000004"},
    {0x1.b1ae4d6e2ef50p+69, "1e+21"},
    {0x1.a36e2eb1c432dp-15, "5e-05"},
    {0x1.a36e2eb1c432cp-14, "9.999999999999999e-05"},
    {0x1.ac4da03bc47e4p+66, "1.2345e+20"},
    {0x1.1666666666666p+2, "4.35"},
    {0x1.9999999999999p-1, "0.7999999999999999"},
    {0x1.ad7f29abcaf48p-26, "2.5e-08"},
    {0x1.2492492492492p-3, "0.14285714285714285"},
    {0x1.86a0000000000p+16, "100000.0"},
    {-0x1.4f8b588e368f1p-17, "-1e-05"},
    {0x1.3a92a30553262p-12, "0.00030000000000000003"},
    {0x0.0000000000003p-1022, "1.5e-323"},
    {0x1.fffffffffffffp-1, "0.9999999999999999"},
    {-0x1.6345785d8a000p+54, "-2.5e+16"},
    {0x1.0000000000000p+32, "4294967296.0"},
    {0x1.6f0068db8bac7p-11, "0.0007"},
    {0x0.012688b70e62bp-1022, "1e-310"},
    {0x1.8000000000000p+3, "12.0"},
    {0x1.7e43c8800759cp+996, "1e+300"},
    /* Powers of two whose lower neighbour is half as far as the upper one: a 16-digit string
     * on the far side reads back as x, so 17 digits are not the shortest (the old formatter
     * tried only the correctly rounded 16 digits and wrote 17). */
    {0x1.0000000000000p-24, "5.960464477539063e-08"},
    {0x1.0000000000000p+89, "6.189700196426902e+26"},
    {0x1.0000000000000p-1017, "7.120236347223045e-307"},
    {0x1.0000000000000p+122, "5.316911983139664e+36"},
};

static void test_repr_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(repr_table); i++) {
        char out[32];
        size_t n = qt_fmt_double(repr_table[i].x, out, sizeof(out));

        if (strcmp(out, repr_table[i].repr) != 0)
            print_error("entry %zu: got '%s', expected '%s'\n", i, out, repr_table[i].repr);
        assert_string_equal(out, repr_table[i].repr);
        assert_int_equal(n, strlen(repr_table[i].repr));
    }
}

static void test_repr_special(void **state)
{
    char out[32], small[4];

    (void)state;
    assert_int_equal(qt_fmt_double(NAN, out, sizeof(out)), 3);
    assert_string_equal(out, "nan");
    assert_int_equal(qt_fmt_double(-NAN, out, sizeof(out)), 3);
    assert_string_equal(out, "nan");
    assert_int_equal(qt_fmt_double(INFINITY, out, sizeof(out)), 3);
    assert_string_equal(out, "inf");
    assert_int_equal(qt_fmt_double(-INFINITY, out, sizeof(out)), 4);
    assert_string_equal(out, "-inf");
    /* A short buffer is truncated and terminated; the return value is the full length. */
    assert_int_equal(qt_fmt_double(0.1 + 0.2, small, sizeof(small)), 19);
    assert_string_equal(small, "0.3");
    assert_int_equal(qt_fmt_double(1.5, NULL, 0), 3);
}

/* Bit patterns from a fixed 64-bit LCG (Knuth's MMIX constants) cover every exponent. */
static uint64_t lcg_next(uint64_t *s)
{
    *s = *s * 6364136223846793005u + 1442695040888963407u;
    return *s;
}

static void test_roundtrip_random(void **state)
{
    uint64_t s = 0x5eed;
    size_t tested = 0;

    (void)state;
    for (size_t i = 0; i < 100000; i++) {
        uint64_t bits = lcg_next(&s) ^ (lcg_next(&s) >> 32);
        double x, y;
        char out[32];

        memcpy(&x, &bits, sizeof(x));
        if (isnan(x))
            continue;
        (void)qt_fmt_double(x, out, sizeof(out));
        y = strtod(out, NULL);
        if (memcmp(&x, &y, sizeof(x)) != 0)
            print_error("%a formatted as '%s' parses back as %a\n", x, out, y);
        assert_memory_equal(&x, &y, sizeof(x));
        tested++;
    }
    assert_true(tested > 99000);
}

/* Doubles near 1 with few significant digits must come out short (shortest, not just
 * round-trip-safe), e.g. k / 1000. */
static void test_shortest_small_decimals(void **state)
{
    (void)state;
    for (int k = 1; k < 1000; k++) {
        char out[32], want[32];
        double x = (double)k / 1000.0;

        (void)qt_fmt_double(x, out, sizeof(out));
        (void)snprintf(want, sizeof(want), "%.3f", x);
        while (want[strlen(want) - 1] == '0')
            want[strlen(want) - 1] = '\0';
        assert_string_equal(out, want);
    }
}

/* ---- shortest round-trip digits against the old formatter (issue 19) ---- */

/* The random sweeps below are scaled down where each number costs far more: under valgrind
 * (QTOMO_TEST_QUICK) and under AddressSanitizer. */
#if defined(__SANITIZE_ADDRESS__)
#define FMT_SCALE_DIV 8
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define FMT_SCALE_DIV 8
#endif
#endif
#ifndef FMT_SCALE_DIV
#define FMT_SCALE_DIV 1
#endif

static size_t fmt_count(size_t n)
{
    n /= FMT_SCALE_DIV;
    return qt_test_quick() ? n / 100 : n;
}

/* The memo of formatted numbers gives the text the conversion gives: values drawn from a pool
 * (so that most are hits and many slots collide), either sign, next to zeros, infinities and
 * NaN, which it never stores; and a writer with a memo writes what one without writes. */
static void test_fmt_memo(void **state)
{
    static struct qt_fmt_memo memo; /* zero: empty */
    double pool[300];
    uint64_t s = 0x3e3779b9;
    struct qt_jw a, b;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(pool); i++) {
        uint64_t bits = lcg_next(&s) ^ (lcg_next(&s) >> 32);

        memcpy(&pool[i], &bits, sizeof(bits));
        if (!isfinite(pool[i]) || i % 3 == 0) /* and ordinary record-like numbers */
            pool[i] = (double)(lcg_next(&s) >> 11) / 9007199254740992.0 * (i % 2 ? 1 : -1e3);
    }
    pool[0] = 0.0, pool[1] = -0.0, pool[2] = INFINITY, pool[3] = -INFINITY, pool[4] = NAN;
    pool[5] = 1.0, pool[6] = -1.0, pool[7] = 5e-324, pool[8] = DBL_MAX;
    qt_jw_init(&a);
    qt_jw_init(&b);
    b.memo = &memo;
    qt_jw_arr_begin(&a);
    qt_jw_arr_begin(&b);
    for (size_t i = 0; i < fmt_count(200000); i++) {
        double x = pool[lcg_next(&s) % QT_ARRAY_SIZE(pool)] * (lcg_next(&s) % 2 ? 1 : -1);
        char got[QT_FMT_ROOM], want[QT_FMT_ROOM];
        size_t n = qt_fmt_double_memo(&memo, x, got);

        assert_int_equal(n, qt_fmt_double(x, want, sizeof(want)));
        assert_string_equal(got, want);
        if (i < 5000) {
            qt_jw_num(&a, x);
            qt_jw_num(&b, x);
        }
    }
    qt_jw_arr_end(&a);
    qt_jw_arr_end(&b);
    assert_int_equal(a.err, 0);
    assert_int_equal(b.err, 0);
    assert_string_equal(a.buf, b.buf);
    qt_jw_done(&a);
    qt_jw_done(&b);
}

/* The significant digits of a formatted number as an integer and their count, and the decimal
 * exponent of the last one: s = m * 10^e. */
static int sig_digits(const char *s, uint64_t *ret_m, int *ret_e)
{
    uint64_t m = 0;
    int n = 0, e = 0, frac = 0;
    bool dot = false, lead = true;

    for (; *s && *s != 'e'; s++) {
        if (*s == '-')
            continue;
        if (*s == '.') {
            dot = true;
            continue;
        }
        if (dot)
            frac++;
        if (lead && *s == '0')
            continue;
        lead = false;
        m = m * 10 + (uint64_t)(*s - '0');
        n++;
    }
    if (*s == 'e')
        e = atoi(s + 1);
    e -= frac;
    while (n > 1 && m % 10 == 0) { /* "100.0" has one significant digit */
        m /= 10;
        e++;
        n--;
    }
    *ret_m = m;
    *ret_e = e;
    return n;
}

static bool reads_back(uint64_t m, int e, double x)
{
    char buf[48];
    double y;

    (void)snprintf(buf, sizeof(buf), "%" PRIu64 "e%d", m, e);
    y = strtod(buf, NULL);
    return memcmp(&x, &y, sizeof(x)) == 0;
}

/* True when no decimal with fewer than n significant digits reads back as x > 0. It is enough
 * to try n - 1 digits (a shorter string is one of them with zeros appended), and of those only
 * the two that bracket x: the decimals that read back as x form an interval around x. */
static bool no_shorter(double x, int n)
{
    char buf[48];
    uint64_t m;
    int e, p = n - 1;
    double y;

    if (p < 1)
        return true;
    (void)snprintf(buf, sizeof(buf), "%.*e", p - 1, x);
    y = strtod(buf, NULL);
    if (y == x)
        return false;
    (void)sig_digits(buf, &m, &e);
    while (m < 1000000000000000000u && e > -400 && (int)snprintf(NULL, 0, "%" PRIu64, m) < p) {
        m *= 10; /* back to p digits: sig_digits dropped trailing zeros */
        e--;
    }
    if (y > x)
        return !reads_back(m - 1, e, x);
    return !reads_back(m + 1, e, x);
}

static bool is_pow2(double x)
{
    uint64_t bits;

    memcpy(&bits, &x, sizeof(bits));
    return (bits & ((UINT64_C(1) << 52) - 1)) == 0 && (bits & (UINT64_C(0x7ff) << 52)) != 0;
}

/* Checks one finite x: it reads back bitwise, its digit count is minimal, and the text is the
 * old formatter's byte for byte (when with_ref), except at powers of two, where the new one
 * may be shorter (see repr_table). Returns false after printing what failed. */
static bool check_fmt(double x, bool with_ref)
{
    char out[48], ref[48];
    uint64_t m;
    int e, n;
    double y;

    (void)qt_fmt_double(x, out, sizeof(out));
    y = strtod(out, NULL);
    if (memcmp(&x, &y, sizeof(x)) != 0) {
        print_error("%a formatted as '%s' reads back as %a\n", x, out, y);
        return false;
    }
    if (x == 0.0)
        return strcmp(out, signbit(x) ? "-0.0" : "0.0") == 0;
    n = sig_digits(out, &m, &e);
    if (!no_shorter(fabs(x), n)) {
        print_error("%a formatted as '%s': a shorter string reads back\n", x, out);
        return false;
    }
    if (!with_ref)
        return true;
    (void)qt_fmt_double_ref(x, ref, sizeof(ref));
    if (strcmp(out, ref) == 0)
        return true;
    if (is_pow2(fabs(x)) && strlen(out) < strlen(ref))
        return true;
    print_error("%a formatted as '%s', the old formatter wrote '%s'\n", x, out, ref);
    return false;
}

static void check_fmt_both(double x, size_t *fails)
{
    *fails += !check_fmt(x, true);
    *fails += !check_fmt(-x, true);
}

static void test_fmt_edges(void **state)
{
    static const double named[] = {
        0.0, 0x0.0000000000001p-1022, 0x0.0000000000002p-1022, 0x0.0000000000003p-1022,
        0x0.fffffffffffffp-1022, 0x0.8000000000000p-1022, DBL_MIN, DBL_MAX, DBL_EPSILON, 0.1,
        0.2, 0.3, 0.1 + 0.2, 1.0 / 3.0, 2.0 / 3.0, 1e16, 1e-5, 1e-4, 1e15, 1e22, 1e23, 5e-324,
        9007199254740992.0, 9007199254740993.0, 123456.789, 0.9209560068248741,
    };
    size_t fails = 0;
    char buf[32];

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(named); i++)
        for (int k = -3; k <= 3; k++) { /* the number and its neighbours */
            double x = named[i];

            for (int j = 0; j < (k < 0 ? -k : k); j++)
                x = nextafter(x, k < 0 ? 0.0 : INFINITY);
            if (isfinite(x))
                check_fmt_both(x, &fails);
        }
    for (int k = -1074; k <= 1023; k++) /* every power of two */
        check_fmt_both(ldexp(1.0, k), &fails);
    for (int k = -323; k <= 308; k++) { /* every power of ten and its neighbours */
        double x;

        (void)snprintf(buf, sizeof(buf), "1e%d", k);
        x = strtod(buf, NULL);
        check_fmt_both(x, &fails);
        check_fmt_both(nextafter(x, 0.0), &fails);
        check_fmt_both(nextafter(x, INFINITY), &fails);
    }
    for (int k = -1000; k <= 1000; k++) { /* integers around 2^53, and around 1e16 */
        check_fmt_both(9007199254740992.0 + 2.0 * k, &fails);
        check_fmt_both(1e16 + 2.0 * k, &fails);
    }
    for (size_t k = 1; k <= fmt_count(100000); k++) /* short decimals, both layouts */
        check_fmt_both((double)k / 100000.0, &fails);
    for (size_t k = 1; k <= fmt_count(10000); k++)
        check_fmt_both((double)k * 1e-9, &fails);
    for (uint64_t k = 1; k <= 2000; k++) { /* the smallest subnormals, the largest finite */
        double x, y;
        uint64_t top = UINT64_C(0x7fefffffffffffff) - k;

        memcpy(&x, &k, sizeof(x));
        memcpy(&y, &top, sizeof(y));
        check_fmt_both(x, &fails);
        check_fmt_both(y, &fails);
    }
    assert_int_equal(fails, 0);
}

/* >= 1,000,000 random finite bit patterns (every exponent), reading back and minimal; every
 * fourth also byte for byte against the old formatter, which costs ~3 us a number. */
static void test_fmt_random_bits(void **state)
{
    uint64_t s = 0x19f0;
    size_t tested = 0, fails = 0, want = fmt_count(1000000);

    (void)state;
    while (tested < want && fails < 10) {
        uint64_t bits = lcg_next(&s) ^ (lcg_next(&s) >> 32);
        double x;

        memcpy(&x, &bits, sizeof(x));
        if (!isfinite(x))
            continue;
        fails += !check_fmt(x, tested % 4 == 0);
        tested++;
    }
    assert_int_equal(fails, 0);
    assert_true(tested >= want);
}

/* Record-like numbers: uniform in (-1, 1) with all 53 bits random and scaled by 10^-6..10^3,
 * mostly in the fixed layout; all against the old formatter. */
static void test_fmt_random_records(void **state)
{
    uint64_t s = 0x7ec0;
    size_t fails = 0, want = fmt_count(200000);

    (void)state;
    for (size_t i = 0; i < want && fails < 10; i++) {
        uint64_t r = lcg_next(&s);
        double x = (double)(r >> 11) * 0x1p-53 * (r & 1 ? -1.0 : 1.0);
        static const double scale[] = {1e-6, 1e-3, 0.1, 1.0, 1.0, 1.0, 10.0, 1e3};

        x *= scale[(lcg_next(&s) >> 40) % QT_ARRAY_SIZE(scale)];
        fails += !check_fmt(x, true);
    }
    assert_int_equal(fails, 0);
}

/* The decimal point is '.' whatever LC_NUMERIC says; skipped when no such locale exists. */
static void test_locale_independent(void **state)
{
    static const char *const names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "ru_RU.UTF-8"};
    const char *got = NULL;
    char out[32];
    struct qt_jw w;

    (void)state;
    for (size_t i = 0; i < QT_ARRAY_SIZE(names) && !got; i++)
        got = setlocale(LC_NUMERIC, names[i]);
    if (!got)
        skip();
    (void)qt_fmt_double(0.1, out, sizeof(out));
    assert_string_equal(out, "0.1");
    (void)qt_fmt_double(1.5e-7, out, sizeof(out));
    assert_string_equal(out, "1.5e-07");
    qt_jw_init(&w);
    qt_jw_arr_begin(&w);
    qt_jw_num(&w, 2.5);
    qt_jw_num(&w, 0.9209560068248741);
    qt_jw_arr_end(&w);
    assert_string_equal(w.buf, "[2.5,0.9209560068248741]");
    qt_jw_done(&w);
    (void)setlocale(LC_NUMERIC, "C");
}

static void check_str(const char *in, const char *want)
{
    struct qt_jw w;

    qt_jw_init(&w);
    qt_jw_str(&w, in);
    assert_int_equal(w.err, 0);
    assert_string_equal(w.buf, want);
    assert_int_equal(w.len, strlen(want));
    qt_jw_done(&w);
}

static void test_escape(void **state)
{
    (void)state;
    check_str("", "\"\"");
    check_str("plain text", "\"plain text\"");
    check_str("q\"b\\s/", "\"q\\\"b\\\\s/\"");
    check_str("\b\f\n\r\t", "\"\\b\\f\\n\\r\\t\"");
    check_str("\x01\x0b\x1f\x7f", "\"\\u0001\\u000b\\u001f\x7f\"");
    check_str("a\x1b[0m", "\"a\\u001b[0m\"");
    /* Valid UTF-8 passes through: 2-, 3- and 4-byte forms and the extremes of each. */
    check_str("caf\xc3\xa9 \xe2\x88\x9a \xf0\x9f\x98\x80",
              "\"caf\xc3\xa9 \xe2\x88\x9a \xf0\x9f\x98\x80\"");
    check_str("\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf",
              "\"\xc2\x80\xdf\xbf\xe0\xa0\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
    check_str("\xed\x9f\xbf\xee\x80\x80", "\"\xed\x9f\xbf\xee\x80\x80\""); /* around surrogates */
}

#define FFFD "\xef\xbf\xbd"

static void test_escape_invalid_utf8(void **state)
{
    (void)state;
    check_str("\x80", "\"" FFFD "\""); /* lone continuation byte */
    check_str("a\xff"
              "b",
              "\"a" FFFD "b\"");                /* never valid */
    check_str("\xc0\xaf", "\"" FFFD FFFD "\""); /* overlong '/' */
    check_str("\xc3", "\"" FFFD "\"");          /* truncated at the end */
    check_str("\xc3(", "\"" FFFD "(\"");        /* bad continuation */
    check_str("\xe2\x88", "\"" FFFD "\"");      /* one maximal subpart */
    check_str("\xe2\x88x\xe2", "\"" FFFD "x" FFFD "\"");
    check_str("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\"");          /* surrogate U+D800 */
    check_str("\xe0\x80\x80", "\"" FFFD FFFD FFFD "\"");          /* overlong 3-byte */
    check_str("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""); /* above U+10FFFF */
    check_str("\xf0\x9f\x98", "\"" FFFD "\"");
    check_str("\xf5\x80", "\"" FFFD FFFD "\"");
    check_str("\xf0\x9f\x98\"", "\"" FFFD "\\\"\"");
    /* Control characters and quotes inside keys are escaped as well. */
    struct qt_jw w;
    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "k\"\n\xff");
    qt_jw_int(&w, 1);
    qt_jw_obj_end(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(w.buf, "{\"k\\\"\\n" FFFD "\":1}");
    qt_jw_done(&w);
}

/* Valid strings survive a trip through a JSON parser unchanged. */
static void test_escape_parse_back(void **state)
{
    char s[128];
    struct qt_jw w;

    (void)state;
    for (int i = 0; i < 127; i++)
        s[i] = (char)(i + 1);
    s[127] = '\0';
    qt_jw_init(&w);
    qt_jw_arr_begin(&w);
    qt_jw_str(&w, s);
    qt_jw_str(&w, "\xe2\x88\x9a\xf0\x9f\x98\x80");
    qt_jw_arr_end(&w);
    assert_int_equal(w.err, 0);
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, 0, &jerr);
    assert_non_null(root);
    assert_string_equal(json_string_value(json_array_get(root, 0)), s);
    assert_string_equal(json_string_value(json_array_get(root, 1)), "\xe2\x88\x9a\xf0\x9f\x98\x80");
    json_decref(root);
    qt_jw_done(&w);
}

static void test_nested(void **state)
{
    struct qt_jw w;

    (void)state;
    qt_jw_init(&w);
    assert_null(w.buf);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "a");
    qt_jw_int(&w, -42);
    qt_jw_key(&w, "b");
    qt_jw_arr_begin(&w);
    qt_jw_num(&w, 1.0);
    qt_jw_num(&w, 1e-5);
    qt_jw_num(&w, NAN);
    qt_jw_num(&w, -INFINITY);
    qt_jw_arr_begin(&w);
    qt_jw_arr_end(&w);
    qt_jw_obj_begin(&w);
    qt_jw_obj_end(&w);
    qt_jw_bool(&w, true);
    qt_jw_bool(&w, false);
    qt_jw_null(&w);
    qt_jw_str(&w, NULL);
    qt_jw_arr_end(&w);
    qt_jw_key(&w, "c");
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "d");
    qt_jw_arr_begin(&w);
    qt_jw_arr_begin(&w);
    qt_jw_int(&w, INT64_MIN);
    qt_jw_arr_end(&w);
    qt_jw_arr_begin(&w);
    qt_jw_int(&w, INT64_MAX);
    qt_jw_int(&w, 0);
    qt_jw_arr_end(&w);
    qt_jw_arr_end(&w);
    qt_jw_key(&w, "");
    qt_jw_str(&w, "x");
    qt_jw_obj_end(&w);
    qt_jw_obj_end(&w);
    assert_int_equal(w.err, 0);
    assert_string_equal(w.buf, "{\"a\":-42,\"b\":[1.0,1e-05,null,null,[],{},true,false,null,null],"
                               "\"c\":{\"d\":[[-9223372036854775808],[9223372036854775807,0]],"
                               "\"\":\"x\"}}");
    assert_int_equal(w.len, strlen(w.buf));
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, 0, &jerr);
    assert_non_null(root);
    json_decref(root);
    qt_jw_done(&w);
    qt_jw_done(NULL);
}

static void test_top_level_scalars(void **state)
{
    struct qt_jw w;

    (void)state;
    qt_jw_init(&w);
    qt_jw_num(&w, 0.1);
    assert_string_equal(w.buf, "0.1");
    qt_jw_reset(&w);
    qt_jw_str(&w, "s");
    assert_string_equal(w.buf, "\"s\"");
    qt_jw_reset(&w);
    qt_jw_null(&w);
    assert_string_equal(w.buf, "null");
    assert_int_equal(w.err, 0);
    qt_jw_done(&w);
}

/* Deep nesting up to the limit works; one more level is misuse. */
static void test_depth(void **state)
{
    struct qt_jw w;

    (void)state;
    qt_jw_init(&w);
    for (int i = 0; i < QT_JW_MAX_DEPTH; i++) {
        if (i % 2) {
            qt_jw_obj_begin(&w);
            qt_jw_key(&w, "k");
        } else {
            qt_jw_arr_begin(&w);
            qt_jw_int(&w, i);
        }
    }
    qt_jw_int(&w, -1);
    for (int i = QT_JW_MAX_DEPTH - 1; i >= 0; i--) {
        if (i % 2)
            qt_jw_obj_end(&w);
        else
            qt_jw_arr_end(&w);
    }
    assert_int_equal(w.err, 0);
    json_error_t jerr;
    json_t *root = json_loadb(w.buf, w.len, 0, &jerr);
    assert_non_null(root);
    json_decref(root);

    qt_jw_reset(&w);
    for (int i = 0; i < QT_JW_MAX_DEPTH; i++)
        qt_jw_arr_begin(&w);
    assert_int_equal(w.err, 0);
    qt_jw_arr_begin(&w);
    assert_int_equal(w.err, -EINVAL);
    qt_jw_done(&w);
}

/* Runs one misuse scenario and checks the error sticks and later calls change nothing. */
static void check_misuse(int scenario)
{
    struct qt_jw w;
    size_t len;

    qt_jw_init(&w);
    switch (scenario) {
    case 0: /* key at top level */
        qt_jw_key(&w, "k");
        break;
    case 1: /* key inside an array */
        qt_jw_arr_begin(&w);
        qt_jw_key(&w, "k");
        break;
    case 2: /* value without a key inside an object */
        qt_jw_obj_begin(&w);
        qt_jw_int(&w, 1);
        break;
    case 3: /* two keys in a row */
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "a");
        qt_jw_key(&w, "b");
        break;
    case 4: /* end without begin */
        qt_jw_obj_end(&w);
        break;
    case 5:
        qt_jw_arr_end(&w);
        break;
    case 6: /* mismatched end */
        qt_jw_arr_begin(&w);
        qt_jw_obj_end(&w);
        break;
    case 7:
        qt_jw_obj_begin(&w);
        qt_jw_arr_end(&w);
        break;
    case 8: /* object closed after a key without its value */
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "a");
        qt_jw_obj_end(&w);
        break;
    case 9: /* second top-level value */
        qt_jw_int(&w, 1);
        qt_jw_int(&w, 2);
        break;
    case 10: /* NULL key */
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, NULL);
        break;
    default: /* too deep */
        for (int i = 0; i <= QT_JW_MAX_DEPTH; i++)
            qt_jw_obj_begin(&w), qt_jw_key(&w, "k");
        break;
    }
    assert_int_equal(w.err, -EINVAL);
    len = w.len;
    qt_jw_arr_begin(&w);
    qt_jw_str(&w, "more");
    qt_jw_num(&w, 1.0);
    qt_jw_arr_end(&w);
    assert_int_equal(w.err, -EINVAL);
    assert_int_equal(w.len, len);
    if (w.buf)
        assert_int_equal(strlen(w.buf), len);
    /* reset clears the error and keeps the buffer */
    char *buf = w.buf;
    qt_jw_reset(&w);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, 0);
    assert_ptr_equal(w.buf, buf);
    qt_jw_arr_begin(&w);
    qt_jw_arr_end(&w);
    assert_string_equal(w.buf, "[]");
    qt_jw_done(&w);
}

static void test_misuse(void **state)
{
    (void)state;
    for (int s = 0; s <= 11; s++)
        check_misuse(s);
}

static void test_reset_and_growth(void **state)
{
    struct qt_jw w;
    char *buf;

    (void)state;
    qt_jw_init(&w);
    qt_jw_arr_begin(&w);
    for (int i = 0; i < 100000; i++)
        qt_jw_int(&w, i);
    qt_jw_arr_end(&w);
    assert_int_equal(w.err, 0);
    assert_int_equal(w.len, strlen(w.buf));
    assert_true(w.len > 488890);
    assert_memory_equal(w.buf + w.len - 7, ",99999]", 8);
    buf = w.buf;
    qt_jw_reset(&w);
    assert_ptr_equal(w.buf, buf);
    assert_string_equal(w.buf, "");
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "x");
    qt_jw_num(&w, 2.0 / 3.0);
    qt_jw_obj_end(&w);
    assert_string_equal(w.buf, "{\"x\":0.6666666666666666}");
    assert_ptr_equal(w.buf, buf);
    qt_jw_done(&w);
    assert_null(w.buf);
    assert_int_equal(w.len, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_repr_table),
    cmocka_unit_test(test_repr_special),
    cmocka_unit_test(test_roundtrip_random),
    cmocka_unit_test(test_shortest_small_decimals),
    cmocka_unit_test(test_fmt_memo),
    cmocka_unit_test(test_fmt_edges),
    cmocka_unit_test(test_fmt_random_bits),
    cmocka_unit_test(test_fmt_random_records),
    cmocka_unit_test(test_locale_independent),
    cmocka_unit_test(test_escape),
    cmocka_unit_test(test_escape_invalid_utf8),
    cmocka_unit_test(test_escape_parse_back),
    cmocka_unit_test(test_nested),
    cmocka_unit_test(test_top_level_scalars),
    cmocka_unit_test(test_depth),
    cmocka_unit_test(test_misuse),
    cmocka_unit_test(test_reset_and_growth),
};

QT_TEST_MAIN(tests)
