/* GF(p^k): the documented polynomials are irreducible (and primitive where claimed), and the
 * tables satisfy the field axioms. */
#include <stdlib.h>

#include "num/qt_gf.h"
#include "qt_test.h"

static const unsigned fields[] = {2,  3,  4,   5,   7,   8,   9,   11,  13,  16,  17,
                                  19, 23, 25,  27,  29,  31,  32,  37,  41,  43,  47,
                                  49, 53, 59,  61,  64,  67,  71,  73,  79,  81,  83,
                                  89, 97, 101, 103, 107, 109, 113, 121, 125, 127, 128};

static void test_prime_powers(void **state)
{
    unsigned p, k, count = 0;

    (void)state;
    for (unsigned q = 2; q <= 128; q++)
        if (qt_gf_prime_power(q, &p, &k) == 0)
            count++;
    assert_int_equal(count, QT_ARRAY_SIZE(fields));
    assert_int_equal(qt_gf_prime_power(6, &p, &k), -22);
    assert_int_equal(qt_gf_prime_power(64, &p, &k), 0);
    assert_int_equal(p, 2);
    assert_int_equal(k, 6);
    struct qt_gf f;
    assert_int_equal(qt_gf_init(&f, 12), -1005);
    assert_int_equal(qt_gf_init(&f, 256), -1005);
}

/* Every nonzero element has a multiplicative inverse and there are no zero divisors, which
 * holds exactly when the polynomial is irreducible. */
static void test_field_axioms(void **state)
{
    struct qt_gf *f = malloc(sizeof(*f));

    (void)state;
    assert_non_null(f);
    for (size_t t = 0; t < QT_ARRAY_SIZE(fields); t++) {
        unsigned q = fields[t];

        assert_int_equal(qt_gf_init(f, q), 0);
        for (unsigned a = 0; a < q; a++) {
            unsigned inv = 0;

            assert_int_equal(f->add[a][0], a);
            assert_int_equal(f->mul[a][1], a);
            for (unsigned b = 0; b < q; b++) {
                assert_int_equal(f->add[a][b], f->add[b][a]);
                assert_int_equal(f->mul[a][b], f->mul[b][a]);
                if (a && b)
                    assert_int_not_equal(f->mul[a][b], 0);
                if (f->mul[a][b] == 1)
                    inv++;
            }
            assert_int_equal(inv, a ? 1 : 0);
        }
        /* Associativity and distributivity on a deterministic sample of triples. */
        for (unsigned s = 0; s < 2000; s++) {
            unsigned a = (s * 7919u) % q, b = (s * 104729u + 3) % q, c = (s * 31u + 11) % q;

            assert_int_equal(f->mul[f->mul[a][b]][c], f->mul[a][f->mul[b][c]]);
            assert_int_equal(f->add[f->add[a][b]][c], f->add[a][f->add[b][c]]);
            assert_int_equal(f->mul[a][f->add[b][c]], f->add[f->mul[a][b]][f->mul[a][c]]);
        }
    }
    free(f);
}

/* The documented polynomials other than q = 9 are primitive: x generates the multiplicative
 * group (for prime fields there is no polynomial to check). */
static void test_primitive(void **state)
{
    struct qt_gf *f = malloc(sizeof(*f));

    (void)state;
    assert_non_null(f);
    for (size_t t = 0; t < QT_ARRAY_SIZE(fields); t++) {
        unsigned q = fields[t], order = 0, x;

        assert_int_equal(qt_gf_init(f, q), 0);
        if (f->k == 1)
            continue;
        x = f->p; /* the polynomial "x" */
        unsigned pw = x;
        do {
            pw = f->mul[pw][x];
            order++;
        } while (pw != x && order < q);
        if (q == 9)
            assert_int_equal(order, 4); /* x^2 + 1: x has order 4, not 8 */
        else
            assert_int_equal(order, q - 1);
    }
    free(f);
}

/* The trace is a nonzero GF(p)-linear map onto the prime field. */
static void test_trace(void **state)
{
    struct qt_gf *f = malloc(sizeof(*f));

    (void)state;
    assert_non_null(f);
    for (size_t t = 0; t < QT_ARRAY_SIZE(fields); t++) {
        unsigned q = fields[t], hits[128] = {0};

        assert_int_equal(qt_gf_init(f, q), 0);
        for (unsigned a = 0; a < q; a++) {
            assert_true(f->tr[a] < f->p);
            hits[f->tr[a]]++;
            for (unsigned b = 0; b < q; b++)
                assert_int_equal(f->tr[f->add[a][b]], (f->tr[a] + f->tr[b]) % f->p);
        }
        for (unsigned v = 0; v < f->p; v++)
            assert_int_equal(hits[v], q / f->p); /* balanced: each value q/p times */
    }
    free(f);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_prime_powers),
    cmocka_unit_test(test_field_axioms),
    cmocka_unit_test(test_primitive),
    cmocka_unit_test(test_trace),
};

QT_TEST_MAIN(tests)
