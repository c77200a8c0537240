/* C entry to Dragonbox (Junekey Jeon's shortest round-trip algorithm; Debian's
 * libdragonbox-dev, header-only here): the digits are the shortest that read back as x and,
 * among those, the nearest to x, ties to even — what David Gay's dtoa mode 0 gives behind
 * Python's repr. Only the digits and the exponent come from here; qt_json.c lays them out.
 * Dragonbox replaced double-conversion's Grisu3 (issue 19): about twice as fast, same digits
 * (test_json compares both against the snprintf/strtod reference on millions of doubles). */
#include "qt_dtoa.h"

#include <cstdint>
#include <cstring>

#include <dragonbox/dragonbox.h>

/* "00" "01" ... "99": two digits per division. */
static const char two_digits[201] =
    "0001020304050607080910111213141516171819"
    "2021222324252627282930313233343536373839"
    "4041424344454647484950515253545556575859"
    "6061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";

extern "C" int qt_dtoa_shortest(double x, char *digits, int *ret_exp)
{
    /* Default policies: trailing zeros removed, round to nearest even both ways, as strtod
     * reads. x > 0 and finite (the contract), so no sign or special-value handling. */
    auto r = jkj::dragonbox::to_decimal(x);
    std::uint64_t v = r.significand;
    char tmp[20], *p = tmp + sizeof(tmp); /* written from the end: no digit count first */

    static_assert(QT_DTOA_DIGITS >= 18, "17 digits and the NUL");
    while (v >= 100) {
        unsigned q = (unsigned)(v % 100);

        v /= 100;
        p -= 2;
        std::memcpy(p, two_digits + 2 * q, 2);
    }
    if (v >= 10) {
        p -= 2;
        std::memcpy(p, two_digits + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    int n = (int)(tmp + sizeof(tmp) - p);

    std::memcpy(digits, p, (size_t)n);
    digits[n] = '\0';
    /* x = significand * 10^exponent = d.ddd * 10^(exponent + n - 1) */
    *ret_exp = r.exponent + n - 1;
    return n;
}
