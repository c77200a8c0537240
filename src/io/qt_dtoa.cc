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

/* Writes the two digits of q < 100 ending at p. */
static inline char *put2(char *p, unsigned q)
{
    p -= 2;
    std::memcpy(p, two_digits + 2 * q, 2);
    return p;
}

/* Writes the 8 digits of v < 10^8, leading zeros included, ending at p; 32-bit arithmetic. */
static inline char *put8(char *p, std::uint32_t v)
{
    std::uint32_t hi = v / 10000, lo = v % 10000;

    p = put2(p, lo % 100);
    p = put2(p, lo / 100);
    p = put2(p, hi % 100);
    return put2(p, hi / 100);
}

extern "C" int qt_dtoa_shortest(double x, char *digits, int *ret_exp)
{
    /* Default policies: trailing zeros removed, round to nearest even both ways, as strtod
     * reads. x > 0 and finite (the contract), so no sign or special-value handling. */
    auto r = jkj::dragonbox::to_decimal(x);
    std::uint64_t v = r.significand; /* < 10^17 */
    /* Written from the end at tmp + 24 (no digit count first), then copied out with one
     * fixed-size copy: the digits start at tmp + 7 or later, and tmp is zero after them. */
    char tmp[24 + QT_DTOA_COPY] = {0}, *end = tmp + 24, *p = end;

    static_assert(QT_DTOA_DIGITS >= 18, "17 digits and the NUL");
    /* At most two 8-digit groups in 64-bit arithmetic, the rest (< 10^8) in 32-bit. */
    for (int g = 0; g < 2 && v >= 100000000u; g++) {
        p = put8(p, (std::uint32_t)(v % 100000000u));
        v /= 100000000u;
    }
    std::uint32_t w = (std::uint32_t)v;

    while (w >= 100) {
        p = put2(p, w % 100);
        w /= 100;
    }
    if (w >= 10)
        p = put2(p, w);
    else
        *--p = (char)('0' + w);
    int n = (int)(end - p);

    std::memcpy(digits, p, QT_DTOA_COPY); /* the NUL and zeros from tmp + 24 on */
    /* x = significand * 10^exponent = d.ddd * 10^(exponent + n - 1) */
    *ret_exp = r.exponent + n - 1;
    return n;
}
