/* GF(p^k) arithmetic tables built from the documented polynomials in qt_gf.h. */
#include "qt_gf.h"

#include <errno.h>
#include <string.h>

#include "base/qt_err.h"

struct field_poly {
    unsigned q;
    uint8_t coef[8]; /* constant term first, leading 1 last */
};

static const struct field_poly polys[] = {
    {4, {1, 1, 1}},
    {8, {1, 1, 0, 1}},
    {9, {1, 0, 1}},
    {16, {1, 1, 0, 0, 1}},
    {25, {2, 4, 1}},
    {27, {1, 2, 0, 1}},
    {32, {1, 0, 1, 0, 0, 1}},
    {49, {3, 6, 1}},
    {64, {1, 1, 0, 1, 1, 0, 1}},
    {81, {2, 0, 0, 2, 1}},
    {121, {2, 7, 1}},
    {125, {3, 3, 0, 1}},
    {128, {1, 1, 0, 0, 0, 0, 0, 1}},
};

int qt_gf_prime_power(unsigned q, unsigned *ret_p, unsigned *ret_k)
{
    unsigned p = 0, k = 0;

    if (q < 2)
        return -EINVAL;
    for (unsigned c = 2; c <= q; c++)
        if (q % c == 0) {
            p = c;
            break;
        }
    while (q % p == 0) {
        q /= p;
        k++;
    }
    if (q != 1)
        return -EINVAL;
    *ret_p = p;
    *ret_k = k;
    return 0;
}

static void digits(unsigned a, unsigned p, unsigned k, unsigned *out)
{
    for (unsigned i = 0; i < k; i++) {
        out[i] = a % p;
        a /= p;
    }
}

static unsigned undigits(const unsigned *in, unsigned p, unsigned k)
{
    unsigned a = 0;

    for (unsigned i = k; i-- > 0;)
        a = a * p + in[i];
    return a;
}

/* Polynomial product of a and b reduced modulo f, on digit vectors. */
static unsigned poly_mulmod(const struct qt_gf *f, unsigned a, unsigned b)
{
    unsigned da[8], db[8], prod[16] = {0};
    unsigned p = f->p, k = f->k;

    digits(a, p, k, da);
    digits(b, p, k, db);
    for (unsigned i = 0; i < k; i++)
        for (unsigned j = 0; j < k; j++)
            prod[i + j] = (prod[i + j] + da[i] * db[j]) % p;
    /* Reduce from the top: x^t = x^(t-k) * (x^k) and x^k = -(f(x) - x^k). */
    for (unsigned t = 2 * k - 2; t >= k && t < 16; t--) {
        unsigned c = prod[t];

        if (c) {
            prod[t] = 0;
            for (unsigned i = 0; i < k; i++)
                prod[t - k + i] = (prod[t - k + i] + (p - f->poly[i]) * c) % p;
        }
        if (t == k)
            break;
    }
    return undigits(prod, p, k);
}

int qt_gf_init(struct qt_gf *f, unsigned q)
{
    unsigned p, k;

    if (q > QT_GF_MAX || qt_gf_prime_power(q, &p, &k) < 0)
        return QT_EDIM;
    memset(f, 0, sizeof(*f));
    f->p = p;
    f->k = k;
    f->q = q;
    if (k == 1) {
        f->poly[0] = 0;
        f->poly[1] = 1;
    } else {
        const struct field_poly *fp = NULL;

        for (size_t i = 0; i < QT_ARRAY_SIZE(polys); i++)
            if (polys[i].q == q)
                fp = &polys[i];
        if (!fp)
            return QT_EDIM;
        memcpy(f->poly, fp->coef, sizeof(f->poly));
    }
    for (unsigned a = 0; a < q; a++)
        for (unsigned b = 0; b < q; b++) {
            unsigned da[8], db[8], ds[8];

            digits(a, p, k, da);
            digits(b, p, k, db);
            for (unsigned i = 0; i < k; i++)
                ds[i] = (da[i] + db[i]) % p;
            f->add[a][b] = (uint8_t)undigits(ds, p, k);
            f->mul[a][b] = (uint8_t)(k == 1 ? (a * b) % p : poly_mulmod(f, a, b));
        }
    for (unsigned a = 0; a < q; a++) {
        unsigned t = 0, pw = a; /* pw = a^(p^i) */

        for (unsigned i = 0; i < k; i++) {
            t = f->add[t][pw];
            unsigned next = 1;
            for (unsigned j = 0; j < p; j++)
                next = f->mul[next][pw];
            pw = next;
        }
        f->tr[a] = (uint8_t)t; /* lies in the prime field, so its code is < p */
    }
    return 0;
}
