/* Implementation of the unit-test helpers. */
#include "qt_test.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qt_test_main(int argc, char **argv, const char *group, const struct CMUnitTest *tests, size_t n)
{
    if (argc > 1) {
        size_t found = 0;

        for (size_t i = 0; i < n; i++)
            found += strcmp(tests[i].name, argv[1]) == 0;
        if (found != 1) {
            fprintf(stderr, "%s: no test named '%s'\n", group, argv[1]);
            return 1;
        }
        cmocka_set_test_filter(argv[1]);
    }
    return _cmocka_run_group_tests(group, tests, n, NULL, NULL);
}

void qt_assert_close_(double a, double b, double rtol, double atol, const char *expr,
                      const char *file, int line)
{
    if (!(fabs(a - b) <= atol + rtol * fabs(b))) {
        print_error("%s:%d: %s = %.17g, expected %.17g (rtol %g, atol %g, diff %.3g)\n", file, line,
                    expr, a, b, rtol, atol, fabs(a - b));
        _fail(file, line);
    }
}

double qt_frob_diff(size_t n, const double complex *A, const double complex *B)
{
    double s = 0.0;

    for (size_t i = 0; i < n * n; i++) {
        double complex z = A[i] - B[i];

        s += creal(z * conj(z));
    }
    return sqrt(s);
}

char *qt_read_file(const char *path, size_t *ret_len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    long len;

    if (!f) {
        print_error("cannot open '%s'\n", path);
        fail();
    }
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    len = ftell(f);
    assert_true(len >= 0);
    rewind(f);
    buf = malloc((size_t)len + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)len, f), (size_t)len);
    buf[len] = '\0';
    fclose(f);
    if (ret_len)
        *ret_len = (size_t)len;
    return buf;
}

const char *qt_refdata(const char *rel)
{
    static char path[4096];

    (void)snprintf(path, sizeof(path), "%s/%s", QT_REFDATA, rel);
    return path;
}

bool qt_test_quick(void)
{
    return getenv("QTOMO_TEST_QUICK") != NULL;
}

bool qt_test_keep_size(size_t n)
{
    static const size_t keep[] = {1, 2, 3, 4, 7, 8, 9, 16, 17, 32, 33};

    if (!qt_test_quick())
        return true;
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        if (keep[i] == n)
            return true;
    return false;
}
