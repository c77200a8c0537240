/* The float formatter qt_json.c had before double-conversion (issue 19): shortest digits by
 * trying precisions with snprintf and reading them back with strtod_l. Slow (~3 us a number)
 * but simple enough to trust; test_json compares against it and bench-fmt times it. */
#pragma once

#include <stddef.h>

/* Same contract as qt_fmt_double (io/qt_json.h). */
size_t qt_fmt_double_ref(double x, char *out, size_t size);
