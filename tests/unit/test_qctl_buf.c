/* Unit tests for qtomoctl's growable byte buffer (client/ctl/recon_summary.c): the bytes put are
 * the bytes read back, in order, whether the buffer stays in malloc or, marked large, moves into
 * its own mapping past 64 kB and grows there by mremap. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qt_test.h"
#include "recon.h"

/* Byte i of the stream: a pattern that a lost, repeated or shifted piece would break. */
static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

/* Puts `total` bytes in pieces of 1 to 9,000 bytes (the sizes of cells and rows) and checks the
 * whole buffer. */
static void fill_and_check(struct qctl_buf *b, size_t total)
{
    unsigned char piece[9000];
    size_t at = 0;
    uint64_t rng = 2026;

    while (at < total) {
        rng = rng * 6364136223846793005u + 1442695040888963407u;
        size_t n = 1 + (size_t)(rng >> 33) % sizeof(piece);

        if (n > total - at)
            n = total - at;
        for (size_t i = 0; i < n; i++)
            piece[i] = pat(at + i);
        qctl_buf_put(b, piece, n);
        at += n;
    }
    assert_false(b->err);
    assert_int_equal(b->len, total);
    assert_true(b->cap >= b->len);
    for (size_t i = 0; i < total; i++)
        if (b->p[i] != (char)pat(i))
            fail_msg("byte %zu of %zu differs", i, total);
}

static void small_buffer_stays_in_malloc(void **state)
{
    struct qctl_buf b = {0};

    (void)state;
    fill_and_check(&b, 5u << 20);
    assert_false(b.mapped);
    qctl_buf_free(&b);
    assert_null(b.p);
    assert_int_equal(b.len, 0);
}

static void large_buffer_moves_to_a_mapping(void **state)
{
    struct qctl_buf b = {.large = true};

    (void)state;
    fill_and_check(&b, 60u << 10); /* below 64 kB: still malloc */
    assert_false(b.mapped);
    qctl_buf_free(&b);

    b = (struct qctl_buf){.large = true};
    fill_and_check(&b, 11u << 20); /* the move at 64 kB, then 2, 4, 8 and 16 MiB */
    assert_true(b.mapped);
    assert_true(b.cap >= (11u << 20));
    qctl_buf_free(&b);
    assert_null(b.p);
    assert_false(b.mapped);
}

/* A buffer emptied by its owner (len = 0, as summary.csv's writer does between pieces) is
 * reused in place, mapped or not. */
static void reuse_after_reset(void **state)
{
    struct qctl_buf b = {.large = true};

    (void)state;
    fill_and_check(&b, 3u << 20);
    assert_true(b.mapped);
    char *p = b.p;
    size_t cap = b.cap;

    b.len = 0;
    fill_and_check(&b, 3u << 20);
    assert_ptr_equal(b.p, p);
    assert_int_equal(b.cap, cap);
    qctl_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(small_buffer_stays_in_malloc),
        cmocka_unit_test(large_buffer_moves_to_a_mapping),
        cmocka_unit_test(reuse_after_reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
