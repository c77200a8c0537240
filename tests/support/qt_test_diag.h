/* assert_ok / assert_err for library calls that fill a struct qt_diag: the call passes &diag,
 * and a failure prints the code, its text and the diagnostic message. For tests that include
 * qt_test.h; defines one static diag per test file. */
#pragma once

#include <string.h>

#include "base/qt_err.h"
#include "qt_test.h"

static struct qt_diag diag;

#define assert_ok(expr)                                                              \
    do {                                                                             \
        memset(&diag, 0, sizeof(diag));                                              \
        int r_ = (expr);                                                             \
        if (r_ != 0)                                                                 \
            print_error("%s = %d (%s): %s\n", #expr, r_, qt_strerror(r_), diag.msg); \
        assert_int_equal(r_, 0);                                                     \
    } while (0)

#define assert_err(expr, code)                                                              \
    do {                                                                                    \
        memset(&diag, 0, sizeof(diag));                                                     \
        int r_ = (expr);                                                                    \
        if (r_ != (code))                                                                   \
            print_error("%s = %d (%s), expected %d (%s): %s\n", #expr, r_, qt_strerror(r_), \
                        (int)(code), qt_strerror(code), diag.msg);                          \
        assert_int_equal(r_, (code));                                                       \
    } while (0)
