/* qtomoctl's output stage (client/ctl/recon_out.c): records come out once each and in sample
 * order whatever order the samples arrive in - the sample due next goes straight out, those
 * ahead of their turn wait in the reorder slots, and a repeat is dropped whether its sample was
 * written already or is still waiting - for JSON lines and for the table, with the counts of
 * the summary taken once per sample. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qt_test.h"
#include "recon.h"

#define N 6

/* Runs the output stage over the arrival order `order` (n_order samples, repeats allowed),
 * stdout captured; returns what it printed (malloc'd) and the number of records it counted. */
static char *run(bool json, const size_t *order, size_t n_order, size_t *ret_counted)
{
    struct recon rc = {0};
    struct qctl_global g = {.verbosity = -1};
    struct qctl_out *o;
    struct qt_result res;
    const struct qt_result *rp = &res;
    char path[] = "/tmp/qtomo-test-out.XXXXXX";
    int fd = mkstemp(path), saved;
    char *text = calloc(1, 1 << 16);

    assert_true(fd >= 0);
    assert_non_null(text);
    rc.json = json;
    rc.methods[QT_METHOD_LINEAR] = true;
    rc.method_list[0] = QT_METHOD_LINEAR;
    rc.n_methods = 1;
    rc.last = N - 1;
    (void)snprintf(rc.design_name, sizeof(rc.design_name), "nopovm");
    assert_int_equal(qt_result_init(&res, 2), 0);
    fflush(stdout);
    saved = dup(STDOUT_FILENO);
    assert_true(dup2(fd, STDOUT_FILENO) >= 0);
    assert_int_equal(qctl_out_open(&o, &rc, &g, N, 0), 0);
    size_t seen[N] = {0};

    for (size_t i = 0; i < n_order; i++) {
        qt_result_reset(&res, QT_METHOD_LINEAR);
        /* The sample's own value; a repeat's differs: the first arrival must be the one kept. */
        res.rho[0] = 0.5 + (double)order[i] / 100.0 + 0.001 * (double)seen[order[i]]++;
        res.rho[3] = 0.5;
        assert_int_equal(qctl_out_sample(o, order[i], &rp, 1, 1.0), 0);
    }
    assert_int_equal(qctl_out_finish(o, true, 1.0), 0);
    *ret_counted = 0;
    qctl_out_free(o);
    fflush(stdout);
    assert_true(dup2(saved, STDOUT_FILENO) >= 0);
    (void)close(saved);
    assert_true(pread(fd, text, (1 << 16) - 1, 0) > 0);
    (void)close(fd);
    (void)unlink(path);
    qt_result_done(&res);
    /* Records: JSON lines, or table rows (after the header) whose first field is the sample. */
    for (const char *p = text; *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : p + strlen(p))
        *ret_counted += json ? strncmp(p, "{", 1) == 0 : p[0] >= '0' && p[0] <= '9';
    return text;
}

/* The samples of text's records, in the order printed. */
static size_t samples(bool json, const char *text, size_t *out, size_t max)
{
    size_t n = 0;

    for (const char *p = text; *p && n < max;) {
        const char *s = json ? strstr(p, "\"sample\":") : p;

        if (!s)
            break;
        if (json)
            s += strlen("\"sample\":");
        if (*s >= '0' && *s <= '9')
            out[n++] = strtoul(s, NULL, 10);
        p = strchr(s, '\n') ? strchr(s, '\n') + 1 : s + strlen(s);
    }
    return n;
}

static void check(bool json, const size_t *order, size_t n_order)
{
    size_t counted, got[2 * N], n;
    char *text = run(json, order, n_order, &counted);

    n = samples(json, text, got, 2 * N);
    if (n != N || counted != N)
        fail_msg("%zu records (%zu counted) for %d samples:\n%s", n, counted, N, text);
    for (size_t i = 0; i < N; i++)
        if (got[i] != i)
            fail_msg("record %zu is of sample %zu:\n%s", i, got[i], text);
    /* Each record carries its own sample's value (none was swapped with a repeat's). */
    for (size_t i = 0; json && i < N; i++) {
        char want[64];

        (void)snprintf(want, sizeof(want), "\"sample\":%zu,", i);
        const char *rec = strstr(text, want);

        (void)snprintf(want, sizeof(want), "\"re\":[[%g,", 0.5 + (double)i / 100.0);
        if (!rec || !strstr(rec, want) || strstr(rec, want) > strchr(rec, '\n'))
            fail_msg("sample %zu's record has no %s:\n%s", i, want, text);
    }
    free(text);
}

static void in_order(void **state)
{
    const size_t order[] = {0, 1, 2, 3, 4, 5};

    (void)state;
    check(true, order, 6);
    check(false, order, 6);
}

static void out_of_order_with_repeats(void **state)
{
    /* 2 waits; 0 goes out; 0 again (written) is dropped; 2 again (waiting) is dropped; 1 goes
     * out and lets 2 out; 5 waits; 4 waits; 3 goes out and lets 4 and 5 out; 5 again. */
    const size_t order[] = {2, 0, 0, 2, 1, 5, 4, 3, 5};

    (void)state;
    check(true, order, sizeof(order) / sizeof(order[0]));
    check(false, order, sizeof(order) / sizeof(order[0]));
}

static void reversed(void **state)
{
    const size_t order[] = {5, 4, 3, 2, 1, 0};

    (void)state;
    check(true, order, 6);
    check(false, order, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(in_order),
        cmocka_unit_test(out_of_order_with_repeats),
        cmocka_unit_test(reversed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
