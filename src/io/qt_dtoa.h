/* Shortest round-trip decimal digits of a double (internal to src/io). */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* Room qt_dtoa_shortest needs in digits: 17 digits and the NUL it writes. */
#define QT_DTOA_DIGITS 18

/* Writes the shortest digit string of x > 0 (finite) that reads back as x, the one nearest x
 * when several are that short, into digits (QT_DTOA_DIGITS bytes, NUL-terminated, no trailing
 * zeros) and its decimal exponent into *ret_exp (x ~ d.ddd * 10^exp). Returns the digit count.
 * No allocation, no locale, thread-safe. */
int qt_dtoa_shortest(double x, char *digits, int *ret_exp);

#ifdef __cplusplus
}
#endif
