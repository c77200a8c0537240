/* qtomod's option table (daemon/qd_conf.c): the defaults are valid, a file is parsed with
 * comments and blanks, every bad line is refused with its line number and the key, values are
 * range-checked, and the dump reads back to the same configuration. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qd_conf.h"
#include "qt_test.h"

static char *write_tmp(const char *text)
{
    static char path[64];
    int fd;

    snprintf(path, sizeof(path), "/tmp/qd-conf-XXXXXX");
    fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

static void test_defaults(void **state)
{
    struct qd_conf c;
    char err[256] = "";

    (void)state;
    qd_conf_defaults(&c);
    assert_int_equal(c.max_frame, 67108864);
    assert_int_equal(c.socket_mode, 0660);
    assert_int_equal(c.chunk, 8);
    assert_int_equal(qd_conf_finish(&c, err, sizeof(err)), 0);
    assert_true(c.workers >= 1);
    assert_true(c.max_sample_mb >= 1); /* the machine's memory over the workers */
    assert_true((uint64_t)c.max_sample_mb * c.workers <=
                ((uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE) >> 20));
    assert_true(c.socket[0] == '/');
    assert_true(c.cache_dir[0] == '/');
}

/* The defaults (max-dim 64) hold any sample; max-dim 512 with the default max-frame cannot
 * hold a 9-qubit pauli sample, and the advice names the max-frame it needs. */
static void test_frame_advice(void **state)
{
    struct qd_conf c;
    char msg[256] = "";

    (void)state;
    qd_conf_defaults(&c);
    assert_int_equal(qd_conf_frame_advice(&c, msg, sizeof(msg)), 0);
    c.max_dim = 256; /* pauli 8 qubits, 13 MB */
    assert_int_equal(qd_conf_frame_advice(&c, msg, sizeof(msg)), 0);
    c.max_dim = 512;
    assert_int_equal(qd_conf_frame_advice(&c, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "pauli sample at d = 512 (10077696 values)"));
    assert_non_null(strstr(msg, "at least 80687104")); /* 8 * 6^9 + 64 KiB */
    c.max_frame = 80687104;
    assert_int_equal(qd_conf_frame_advice(&c, msg, sizeof(msg)), 0);
    c.max_dim = 64;
    c.max_frame = 4096; /* mub d = 64 needs 8 * 4160 + 64 KiB */
    assert_int_equal(qd_conf_frame_advice(&c, msg, sizeof(msg)), 1);
    assert_non_null(strstr(msg, "pauli sample at d = 64"));
}

static void test_file(void **state)
{
    struct qd_conf c;
    char err[256] = "";
    char *p = write_tmp("# comment\n\n  workers = 3 \nsocket=/tmp/x.sock\nsocket-mode = 0600\n"
                        "max-dim=16\n");

    (void)state;
    qd_conf_defaults(&c);
    assert_int_equal(qd_conf_load(&c, p, err, sizeof(err)), 0);
    unlink(p);
    assert_int_equal(c.workers, 3);
    assert_string_equal(c.socket, "/tmp/x.sock");
    assert_int_equal(c.socket_mode, 0600);
    assert_int_equal(c.max_dim, 16);
}

static void test_bad_lines(void **state)
{
    static const struct {
        const char *text, *expect;
        int err;
    } cases[] = {
        {"workers = 3\nnosuch = 1\n", ":2: unknown key 'nosuch'", -EINVAL},
        {"workers 3\n", ":1: expected 'key = value'", -EINVAL},
        {"workers = -1\n", "workers: '-1' is not", -EINVAL},
        {"workers = 3x\n", "workers: '3x' is not", -EINVAL},
        {"max-frame = 100\n", "max-frame: 100 is outside [4096,", -ERANGE},
        {"max-dim = 513\n", "max-dim: 513 is outside", -ERANGE},
        {"socket-mode = 0999\n", "socket-mode: '0999' is not an octal mode", -EINVAL},
        {"workers = 99999999999999999999\n", "workers:", -EINVAL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct qd_conf c;
        char err[256] = "";
        char *p = write_tmp(cases[i].text);
        int r;

        qd_conf_defaults(&c);
        r = qd_conf_load(&c, p, err, sizeof(err));
        unlink(p);
        assert_int_equal(r, cases[i].err);
        if (!strstr(err, cases[i].expect)) {
            print_error("case %zu: \"%s\" lacks \"%s\"\n", i, err, cases[i].expect);
            fail();
        }
    }
}

static void test_missing_file_and_finish_checks(void **state)
{
    struct qd_conf c;
    char err[256] = "";

    (void)state;
    qd_conf_defaults(&c);
    assert_int_equal(qd_conf_load(&c, "/nonexistent/qtomod.conf", err, sizeof(err)), -ENOENT);
    assert_int_equal(qd_conf_set(&c, "item-timeout-ms", "700000", err, sizeof(err)), 0);
    assert_int_equal(qd_conf_finish(&c, err, sizeof(err)), -EINVAL);
    assert_non_null(strstr(err, "max-item-ms"));
}

static void test_dump_reads_back(void **state)
{
    struct qd_conf a, b;
    char err[256] = "", *buf = NULL, *p;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);

    (void)state;
    assert_non_null(f);
    qd_conf_defaults(&a);
    assert_int_equal(qd_conf_set(&a, "socket", "/run/q.sock", err, sizeof(err)), 0);
    assert_int_equal(qd_conf_set(&a, "socket-mode", "0640", err, sizeof(err)), 0);
    qd_conf_dump(&a, f);
    fclose(f);
    p = write_tmp(buf);
    free(buf);
    qd_conf_defaults(&b);
    assert_int_equal(qd_conf_load(&b, p, err, sizeof(err)), 0);
    unlink(p);
    assert_memory_equal(&a, &b, sizeof(a));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults),
    cmocka_unit_test(test_frame_advice),
    cmocka_unit_test(test_file),
    cmocka_unit_test(test_bad_lines),
    cmocka_unit_test(test_missing_file_and_finish_checks),
    cmocka_unit_test(test_dump_reads_back),
};

QT_TEST_MAIN(tests)
