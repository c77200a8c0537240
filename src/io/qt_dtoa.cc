/* C entry to Google's double-conversion (Debian's libdouble-conversion-dev): Grisu3 with an
 * exact bignum fallback, so the digits are the shortest that round-trip, nearest x when there
 * is a choice (as David Gay's dtoa mode 0 behind Python's repr). Only the digits and the
 * exponent come from here; qt_json.c lays them out. */
#include "qt_dtoa.h"

#include <double-conversion/double-to-string.h>

using double_conversion::DoubleToStringConverter;

static_assert(QT_DTOA_DIGITS >= DoubleToStringConverter::kBase10MaximalLength + 1,
              "digit buffer too small for DoubleToAscii(SHORTEST)");

extern "C" int qt_dtoa_shortest(double x, char *digits, int *ret_exp)
{
    bool sign = false;
    int length = 0, point = 0;

    DoubleToStringConverter::DoubleToAscii(x, DoubleToStringConverter::SHORTEST, 0, digits,
                                           QT_DTOA_DIGITS, &sign, &length, &point);
    /* x = 0.d1d2...dn * 10^point */
    *ret_exp = point - 1;
    return length;
}
