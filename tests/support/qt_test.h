/* Shared helpers for the cmocka unit tests: one-test-per-process main(), tolerance asserts
 * (never == on doubles), reference-data access. */
#pragma once

#include <complex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

/* Path of ../shared/reference-data/origin, fixed at configure time. */
#ifndef QT_REFDATA
#    define QT_REFDATA ""
#endif

/* main() for a test executable. With one argument it runs only the test of that exact name
 * (CTest registers each test case separately, so each runs in its own process with its own
 * timeout); an unknown name fails instead of silently running nothing. */
int qt_test_main(int argc, char **argv, const char *group, const struct CMUnitTest *tests,
                 size_t n);
#define QT_TEST_MAIN(tests)                                                                 \
    int main(int argc, char **argv)                                                         \
    {                                                                                       \
        return qt_test_main(argc, argv, __FILE__, tests, sizeof(tests) / sizeof(tests[0])); \
    }

/* |a - b| <= atol + rtol * |b|, with a message naming both values on failure. */
#define qt_assert_close(a, b, rtol, atol) qt_assert_close_(a, b, rtol, atol, #a, __FILE__, __LINE__)
void qt_assert_close_(double a, double b, double rtol, double atol, const char *expr,
                      const char *file, int line);

/* Frobenius norm of A - B for n x n column-major complex matrices. */
double qt_frob_diff(size_t n, const double complex *A, const double complex *B);

/* Reads a whole file into a NUL-terminated malloc'd buffer; fails the test when unreadable. */
char *qt_read_file(const char *path, size_t *ret_len);

/* True when the test runs under a slow checker (the valgrind preset sets QTOMO_TEST_QUICK):
 * tests that sweep many sizes then keep a representative subset. The full sweeps run in the
 * ci and asan presets. */
bool qt_test_quick(void);

/* Whether size n belongs to the quick subset: small sizes, the SIMD group boundaries and the
 * largest sizes of a sweep. */
bool qt_test_keep_size(size_t n);

/* Joins QT_REFDATA and a relative path into a static buffer. */
const char *qt_refdata(const char *rel);
