/* Unit tests for qtomoctl's results.h5 writer (client/ctl/recon_h5.c) on records.jsonl files
 * qtomoctl never writes itself: lines that are not records, a record of another dimension, no
 * records at all, a temporary file that cannot be created. The files a real run writes are
 * checked end to end by tests/integration/test_qtomoctl.py (test_hdf5_*). */
#define _GNU_SOURCE
#include <errno.h>
#include <hdf5.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qt_rmrf.h"
#include "qt_test.h"
#include "recon.h"

/* The two qtomoctl helpers the writer uses (the rest of qtomoctl is not linked). */
void qctl_err(const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

int qctl_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
    FILE *f = fopen(path, "re");
    char *b;
    size_t n;

    if (!f)
        return -errno;
    b = malloc(max + 1);
    assert_non_null(b);
    n = fread(b, 1, max, f);
    (void)fclose(f);
    b[n] = '\0';
    *ret_buf = b;
    *ret_len = n;
    return 0;
}

static char *make_dir(void)
{
    char tmpl[] = "/tmp/qtomo-h5-XXXXXX";
    char *d = mkdtemp(tmpl);

    assert_non_null(d);
    return strdup(d);
}

static void put(const char *dir, const char *name, const char *text)
{
    char path[4096];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    f = fopen(path, "we");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static bool exists(const char *dir, const char *name)
{
    char path[4096];

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    return access(path, F_OK) == 0;
}

static hid_t open_h5(const char *dir)
{
    char path[4096];
    hid_t f;

    (void)snprintf(path, sizeof(path), "%s/results.h5", dir);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    return f;
}

/* Reads a whole dataset of doubles (or of two-double compounds, as doubles). */
static size_t read_doubles(hid_t f, const char *name, double *out, size_t max, hsize_t *dims)
{
    hid_t ds = H5Dopen2(f, name, H5P_DEFAULT), sp, t;
    size_t n;

    assert_true(ds >= 0);
    sp = H5Dget_space(ds);
    n = (size_t)H5Sget_simple_extent_npoints(sp);
    (void)H5Sget_simple_extent_dims(sp, dims, NULL);
    t = H5Dget_type(ds);
    if (H5Tget_class(t) == H5T_COMPOUND) {
        hid_t ct = H5Tcreate(H5T_COMPOUND, 2 * sizeof(double));

        n *= 2;
        assert_true(n <= max);
        (void)H5Tinsert(ct, "r", 0, H5T_NATIVE_DOUBLE);
        (void)H5Tinsert(ct, "i", sizeof(double), H5T_NATIVE_DOUBLE);
        assert_true(H5Dread(ds, ct, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
        (void)H5Tclose(ct);
    } else {
        assert_true(n <= max);
        assert_true(n == 0 ||
                    H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, out) >= 0);
    }
    (void)H5Tclose(t);
    (void)H5Sclose(sp);
    (void)H5Dclose(ds);
    return n;
}

static const char *const good =
    "{\"sample\":0,\"column\":1,\"method\":\"linear\",\"design\":\"x\",\"dim\":2,\"status\":\"ok\","
    "\"rho\":{\"re\":[[0.75,0.125],[0.125,0.25]],\"im\":[[0.0,-0.5],[0.5,0.0]]},"
    "\"metrics\":{\"purity\":0.5,\"rank\":2,\"converged\":true,\"message\":\"m\"}}\n";

static void test_bad_lines_skipped(void **state)
{
    char *dir = make_dir(), *text;
    double v[64];
    hsize_t dims[3];
    hid_t f;

    (void)state;
    put(dir, "run.json", "{\"options\":{\"dim\":2,\"methods\":[\"linear\"]}}\n");
    /* a record, three lines that are not records, one of d = 3, a line cut short */
    assert_int_not_equal(
        asprintf(&text,
                 "%sgarbage\n[1,2]\n\n"
                 "{\"sample\":1,\"status\":\"ok\",\"rho\":{\"re\":[[1,0,0],[0,0,0],"
                 "[0,0,0]],\"im\":[[0,0,0],[0,0,0],[0,0,0]]},"
                 "\"metrics\":{\"purity\":\"x\",\"rank\":1.5}}\n{\"cut",
                 good),
        -1);
    put(dir, "records.jsonl", text);
    free(text);
    assert_int_equal(qctl_write_h5(dir), 0);
    assert_false(exists(dir, ".results.h5.tmp"));
    f = open_h5(dir);
    assert_int_equal(read_doubles(f, "sample", v, 64, dims), 2);
    assert_true(v[0] == 0.0 && v[1] == 1.0);
    /* rho row-major, exact; the record of another dimension is all NaN */
    assert_int_equal(read_doubles(f, "rho", v, 64, dims), 16);
    assert_int_equal(dims[1], 2);
    static const double want[8] = {0.75, 0.0, 0.125, -0.5, 0.125, 0.5, 0.25, 0.0};
    for (int i = 0; i < 8; i++)
        assert_true(v[i] == want[i]);
    for (int i = 8; i < 16; i++)
        assert_true(isnan(v[i]));
    assert_int_equal(read_doubles(f, "metrics/purity", v, 64, dims), 2);
    assert_true(v[0] == 0.5 && isnan(v[1]));
    (void)H5Fclose(f);
    qt_rm_rf(dir);
    free(dir);
}

static void test_no_records(void **state)
{
    char *dir = make_dir();
    double v[4];
    hsize_t dims[3];
    hid_t f;

    (void)state;
    put(dir, "records.jsonl", ""); /* and no run.json */
    assert_int_equal(qctl_write_h5(dir), 0);
    f = open_h5(dir);
    assert_int_equal(read_doubles(f, "sample", v, 4, dims), 0);
    assert_int_equal(dims[0], 0);
    (void)H5Fclose(f);
    qt_rm_rf(dir);
    free(dir);
}

static void test_failure_keeps_old_file(void **state)
{
    char *dir = make_dir(), path[4096];
    struct stat st;

    (void)state;
    put(dir, "records.jsonl", good);
    put(dir, "results.h5", "old");
    (void)snprintf(path, sizeof(path), "%s/.results.h5.tmp", dir);
    assert_int_equal(mkdir(path, 0755), 0); /* the temporary file cannot be created */
    assert_true(qctl_write_h5(dir) < 0);
    (void)snprintf(path, sizeof(path), "%s/results.h5", dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_size, 3);
    (void)snprintf(path, sizeof(path), "%s/nope", dir);
    assert_true(qctl_write_h5(path) < 0); /* no records.jsonl */
    qt_rm_rf(dir);
    free(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_bad_lines_skipped),
    cmocka_unit_test(test_no_records),
    cmocka_unit_test(test_failure_keeps_old_file),
};

QT_TEST_MAIN(tests)
