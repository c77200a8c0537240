/* qtomoctl's output stage (client/ctl/recon_out.c): records come out once each and in sample
 * order whatever order the samples arrive in - the sample due next goes straight out, those
 * ahead of their turn wait in the reorder slots, and a repeat is dropped whether its sample was
 * written already or is still waiting - for JSON lines and for the table, with the counts of
 * the summary taken once per sample; with -o DIR, records.jsonl and summary.csv agree row for
 * row. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qt_test.h"
#include "recon.h"

#define N 6

enum mode { TABLE, JSON, DIR };

/* Reads a whole small file into a malloc'd string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *text = calloc(1, 1 << 16);

    assert_non_null(f);
    assert_non_null(text);
    assert_true(fread(text, 1, (1 << 16) - 1, f) > 0);
    fclose(f);
    return text;
}

/* Checks DIR/summary.csv (a header, then one row per sample in order: its first field) and
 * run.json's counts (each sample once), and removes the run directory. */
static void check_dir(const char *dir)
{
    static const char *const files[] = {"records.jsonl", "summary.csv", "run.json"};
    char path[256];
    size_t row = 0;

    (void)snprintf(path, sizeof(path), "%s/summary.csv", dir);
    char *sum = slurp(path);

    assert_true(strncmp(sum, "sample,", 7) == 0);
    for (const char *p = strchr(sum, '\n') + 1; *p; p = strchr(p, '\n') + 1, row++)
        if (strtoul(p, NULL, 10) != row)
            fail_msg("summary.csv row %zu is of sample %lu:\n%s", row, strtoul(p, NULL, 10), sum);
    if (row != N)
        fail_msg("summary.csv has %zu rows for %d samples:\n%s", row, N, sum);
    free(sum);
    /* The counts: every sample once, repeats not counted. */
    (void)snprintf(path, sizeof(path), "%s/run.json", dir);
    char *run_json = slurp(path), want[160];

    (void)snprintf(want, sizeof(want),
                   "\"counts\":{\"samples\":%d,\"samples_this_run\":%d,\"samples_ok\":%d,"
                   "\"samples_failed\":0}",
                   N, N, N);
    if (!strstr(run_json, want))
        fail_msg("run.json has no %s:\n%s", want, run_json);
    (void)snprintf(want, sizeof(want), "\"linear\":{\"ok\":%d,\"failed\":0,", N);
    if (!strstr(run_json, want))
        fail_msg("run.json has no %s:\n%s", want, run_json);
    free(run_json);
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        (void)snprintf(path, sizeof(path), "%s/%s", dir, files[i]);
        assert_int_equal(unlink(path), 0);
    }
    assert_int_equal(rmdir(dir), 0);
}

/* Runs the output stage over the arrival order `order` (n_order samples, repeats allowed),
 * stdout captured (or into a run directory); returns the records (malloc'd) and how many
 * there are. */
static char *run(enum mode mode, const size_t *order, size_t n_order, size_t *ret_counted)
{
    bool json = mode != TABLE;
    char dir[] = "/tmp/qtomo-test-outdir.XXXXXX";
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
    rc.json = mode == JSON;
    if (mode == DIR) {
        assert_non_null(mkdtemp(dir));
        rc.outdir = dir;
        rc.file = "samples.csv";
        rc.local = true;
    }
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
    if (mode == DIR) {
        char rec[256];

        free(text);
        (void)snprintf(rec, sizeof(rec), "%s/records.jsonl", dir);
        text = slurp(rec);
        check_dir(dir);
    } else {
        assert_true(pread(fd, text, (1 << 16) - 1, 0) > 0);
    }
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

static void check(enum mode mode, const size_t *order, size_t n_order)
{
    bool json = mode != TABLE;
    size_t counted, got[2 * N], n;
    char *text = run(mode, order, n_order, &counted);

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
    check(JSON, order, 6);
    check(TABLE, order, 6);
    check(DIR, order, 6);
}

static void out_of_order_with_repeats(void **state)
{
    /* 2 waits; 0 goes out; 0 again (written) is dropped; 2 again (waiting) is dropped; 1 goes
     * out and lets 2 out; 5 waits; 4 waits; 3 goes out and lets 4 and 5 out; 5 again. */
    const size_t order[] = {2, 0, 0, 2, 1, 5, 4, 3, 5};

    (void)state;
    check(JSON, order, sizeof(order) / sizeof(order[0]));
    check(TABLE, order, sizeof(order) / sizeof(order[0]));
    check(DIR, order, sizeof(order) / sizeof(order[0]));
}

static void reversed(void **state)
{
    const size_t order[] = {5, 4, 3, 2, 1, 0};

    (void)state;
    check(JSON, order, 6);
    check(TABLE, order, 6);
    check(DIR, order, 6);
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
