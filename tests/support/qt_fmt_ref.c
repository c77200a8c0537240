/* Reference copy of qt_json.c's float formatter as it was before issue 19 (commit 1cb47f5),
 * unchanged but for the function's name. Test and benchmark code only. */
#define _GNU_SOURCE /* strtod_l */
#include "qt_fmt_ref.h"

#include <locale.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Shortest round-trip digits never exceed 17 for IEEE-754 doubles. */
#define MAX_DIGITS 17

static pthread_once_t c_locale_once = PTHREAD_ONCE_INIT;
static locale_t c_locale;

static void c_locale_init(void)
{
    /* glibc returns its static C locale object here, so nothing is allocated. */
    c_locale = newlocale(LC_ALL_MASK, "C", (locale_t)0);
}

/* Parses text written with '.' as the decimal point, whatever the process locale is. */
static double parse_c(const char *s)
{
    (void)pthread_once(&c_locale_once, c_locale_init);
    if (c_locale)
        return strtod_l(s, NULL, c_locale);
    return strtod(s, NULL); /* no C locale object: only reached when newlocale failed */
}

/* Writes the p-digit correctly rounded decimal form of x > 0 as digits (no trailing NUL, no
 * decimal point) and its decimal exponent (x ~ d.ddd * 10^exp). Returns the digit count.
 * The digits come from printf's "%.*e", which is exact in glibc; only the digits and the
 * exponent are taken from it, so a locale's decimal point never reaches the output. */
static int round_digits(double x, int p, char *digits, int *ret_exp)
{
    char tmp[64];
    int n = 0, len = snprintf(tmp, sizeof(tmp), "%.*e", p - 1, x);
    const char *e = len > 0 ? strchr(tmp, 'e') : NULL;

    if (!e)
        return 0;
    for (const char *c = tmp; c < e && n < MAX_DIGITS; c++)
        if (*c >= '0' && *c <= '9')
            digits[n++] = *c;
    *ret_exp = atoi(e + 1);
    return n;
}

/* Checks whether the p-digit rounding of x parses back to x; fills digits and the exponent. */
static bool round_trips(double x, int p, char *digits, int *ret_n, int *ret_exp)
{
    char sci[MAX_DIGITS + 16];
    int n = round_digits(x, p, digits, ret_exp);
    size_t k = 0;

    *ret_n = n;
    if (n <= 0)
        return false;
    sci[k++] = digits[0];
    sci[k++] = '.';
    memcpy(sci + k, digits + 1, (size_t)n - 1);
    k += (size_t)n - 1;
    (void)snprintf(sci + k, sizeof(sci) - k, "e%d", *ret_exp);
    return parse_c(sci) == x;
}

/* Finds the shortest digit string of x > 0 (finite) that parses back to x. A longer correctly
 * rounded string is never farther from x than a shorter one, so round-tripping is monotone in
 * the precision and a binary search finds the smallest one; 17 digits always round-trip. */
static int shortest_digits(double x, char *digits, int *ret_exp)
{
    int lo = 1, hi = MAX_DIGITS, n = 0;

    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;

        if (round_trips(x, mid, digits, &n, ret_exp))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (!round_trips(x, lo, digits, &n, ret_exp) && n <= 0) {
        digits[0] = '0'; /* printf failed: cannot happen with a 64-byte buffer */
        *ret_exp = 0;
        return 1;
    }
    while (n > 1 && digits[n - 1] == '0')
        n--;
    return n;
}

/* Lays out n digits with decimal exponent e as Python's repr does into out (>= 32 bytes). */
static size_t layout(bool neg, const char *digits, int n, int e, char *out)
{
    size_t k = 0;

    if (neg)
        out[k++] = '-';
    if (e >= -4 && e < 16) {
        if (e < 0) {
            out[k++] = '0';
            out[k++] = '.';
            for (int i = 0; i < -e - 1; i++)
                out[k++] = '0';
            memcpy(out + k, digits, (size_t)n);
            k += (size_t)n;
        } else {
            for (int i = 0; i <= e; i++)
                out[k++] = i < n ? digits[i] : '0';
            out[k++] = '.';
            if (n > e + 1) {
                memcpy(out + k, digits + e + 1, (size_t)(n - e - 1));
                k += (size_t)(n - e - 1);
            } else {
                out[k++] = '0';
            }
        }
        out[k] = '\0';
        return k;
    }
    out[k++] = digits[0];
    if (n > 1) {
        out[k++] = '.';
        memcpy(out + k, digits + 1, (size_t)n - 1);
        k += (size_t)n - 1;
    }
    int w = snprintf(out + k, 8, "e%c%02d", e < 0 ? '-' : '+', e < 0 ? -e : e);
    return k + (size_t)(w > 0 ? w : 0);
}

size_t qt_fmt_double_ref(double x, char *out, size_t size)
{
    char tmp[48], digits[MAX_DIGITS];
    size_t len;

    if (isnan(x)) {
        len = (size_t)snprintf(tmp, sizeof(tmp), "nan");
    } else if (isinf(x)) {
        len = (size_t)snprintf(tmp, sizeof(tmp), "%s", x < 0 ? "-inf" : "inf");
    } else if (x == 0.0) {
        len = (size_t)snprintf(tmp, sizeof(tmp), "%s", signbit(x) ? "-0.0" : "0.0");
    } else {
        int e = 0, n = shortest_digits(fabs(x), digits, &e);

        len = layout(signbit(x) != 0, digits, n, e, tmp);
    }
    if (out && size > 0) {
        size_t c = len < size ? len : size - 1;

        memcpy(out, tmp, c);
        out[c] = '\0';
    }
    return len;
}
