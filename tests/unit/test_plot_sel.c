/* The --plots selection as qtomoctl hands it to its helper qtomo-plot (client/ctl/plot_sel.c):
 * plot_sel_format writes what plot_sel_parse reads back to the same selection, for every kind
 * and at the limits (64 ranges of the largest columns fit PLOT_SEL_TEXT); a short buffer is
 * refused, not cut. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "plot_run.h"
#include "qt_test.h"

static void round_trip(const char *text)
{
    struct plot_sel a, b;
    char buf[PLOT_SEL_TEXT];

    assert_int_equal(plot_sel_parse(text, &a), 0);
    assert_int_equal(plot_sel_format(&a, buf, sizeof(buf)), 0);
    assert_int_equal(plot_sel_parse(buf, &b), 0);
    assert_int_equal(a.kind, b.kind);
    assert_int_equal(a.first, b.first);
    assert_int_equal(a.n_ranges, b.n_ranges);
    for (size_t k = 0; k < a.n_ranges; k++) {
        assert_int_equal(a.lo[k], b.lo[k]);
        assert_int_equal(a.hi[k], b.hi[k]);
    }
}

static void kinds(void **state)
{
    char buf[PLOT_SEL_TEXT];
    struct plot_sel sel;

    (void)state;
    round_trip(NULL); /* the default */
    round_trip("all");
    round_trip("first:0");
    round_trip("first:18446744073709551615");
    round_trip("3");
    round_trip("1,3,5-9,0-0");
    assert_int_equal(plot_sel_parse("1,3,5-9", &sel), 0);
    assert_int_equal(plot_sel_format(&sel, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "1-1,3-3,5-9");
}

static void limits(void **state)
{
    char text[PLOT_MAX_RANGES * 48], buf[PLOT_SEL_TEXT];
    struct plot_sel sel;
    size_t at = 0;

    (void)state;
    for (int k = 0; k < PLOT_MAX_RANGES; k++)
        at += (size_t)snprintf(text + at, sizeof(text) - at, "%s%lld-%lld", k ? "," : "",
                               (long long)INT64_MAX - 1, (long long)INT64_MAX);
    round_trip(text);
    assert_int_equal(plot_sel_parse(text, &sel), 0);
    assert_int_equal(plot_sel_format(&sel, buf, strlen(text) + 1), 0); /* exactly enough */
    assert_string_equal(buf, text);
    assert_int_equal(plot_sel_format(&sel, buf, strlen(text)), -ENOSPC);
    assert_int_equal(plot_sel_format(&sel, buf, 10), -ENOSPC);
    assert_int_equal(plot_sel_parse("all", &sel), 0);
    assert_int_equal(plot_sel_format(&sel, buf, 3), -ENOSPC);
    assert_int_equal(plot_sel_format(&sel, buf, 0), -ENOSPC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(kinds),
        cmocka_unit_test(limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
