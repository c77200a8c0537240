/* Finite fields GF(q), q = p^k <= 128, for the mutually-unbiased-basis construction.
 *
 * Element encoding (as the origin): the integer a = sum_i a_i p^i stands for the polynomial
 * sum_i a_i x^i over GF(p); addition is digit-wise mod p and multiplication is the polynomial
 * product reduced modulo a fixed monic irreducible polynomial f(x) of degree k:
 *
 *   q     f(x)                      q     f(x)
 *   4     x^2 + x + 1               25    x^2 + 4x + 2
 *   8     x^3 + x + 1               27    x^3 + 2x + 1
 *   16    x^4 + x + 1               49    x^2 + 6x + 3
 *   32    x^5 + x^2 + 1             81    x^4 + 2x^3 + 2
 *   64    x^6 + x^4 + x^3 + x + 1   121   x^2 + 7x + 2
 *   128   x^7 + x + 1               125   x^3 + 3x + 3
 *   9     x^2 + 1   (the origin's fallback backend; not primitive, and galois would use
 *                    x^2 + 2x + 2, which orders the d = 9 bases differently)
 *
 * GF(4) and GF(16) use the origin's polynomials, which are also the Conway polynomials. Every
 * other entry is the Conway polynomial (primitive); the unit tests prove irreducibility and
 * primitivity. Prime fields (k = 1) use plain arithmetic mod p. */
#pragma once

#include <stdint.h>

#include "base/compiler.h"

#define QT_GF_MAX 128

struct qt_gf {
    unsigned p, k, q; /* q = p^k */
    uint8_t poly[8];  /* f(x) coefficients, poly[k] = 1 */
    uint8_t add[QT_GF_MAX][QT_GF_MAX];
    uint8_t mul[QT_GF_MAX][QT_GF_MAX];
    uint8_t tr[QT_GF_MAX]; /* absolute trace Tr(a) = sum_{i<k} a^(p^i), in 0..p-1 */
};

/* Factors q as p^k. Returns 0 and sets *ret_p, *ret_k for a prime power q >= 2, else -EINVAL. */
QT_NODISCARD int qt_gf_prime_power(unsigned q, unsigned *ret_p, unsigned *ret_k);

/* Initialises the field of order q. Returns 0, or QT_EDIM when q is not a prime power in
 * [2, 128]. */
QT_NODISCARD int qt_gf_init(struct qt_gf *f, unsigned q);
