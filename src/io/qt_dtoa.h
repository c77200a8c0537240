/* Shortest round-trip decimal digits of a double (internal to src/io). */
#pragma once

#ifdef __cplusplus
extern "C" {
#endif

/* Room qt_dtoa_shortest needs in digits. It writes at most 17 digits and a NUL, but copies the
 * digits out with one fixed-size copy of QT_DTOA_COPY bytes (the bytes after the NUL are zero),
 * so that callers may copy them on with fixed sizes too. */
#define QT_DTOA_COPY 32
#define QT_DTOA_DIGITS QT_DTOA_COPY

/* Writes the shortest digit string of x > 0 (finite) that reads back as x, the one nearest x
 * when several are that short, into digits (QT_DTOA_DIGITS bytes, NUL-terminated, no trailing
 * zeros, zero bytes after the NUL) and its decimal exponent into *ret_exp (x ~ d.ddd * 10^exp). Returns the digit count.
 * No allocation, no locale, thread-safe. */
int qt_dtoa_shortest(double x, char *digits, int *ret_exp);

#ifdef __cplusplus
}
#endif
