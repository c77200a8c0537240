/* qt_ws: alignment, mark/release, the peak, coalescing back to one block, and the spare block
 * that a kernel's scratch reuses while older allocations stay in use. */
#include <stdint.h>
#include <string.h>

#include "base/qt_ws.h"
#include "qt_test.h"

#define MIB ((size_t)1 << 20)

static void test_alignment_and_peak(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    size_t sizes[] = {0, 1, 63, 64, 65, 1000, 100000};

    (void)state;
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        unsigned char *p = qt_ws_alloc(&ws, sizes[i]);

        assert_non_null(p);
        assert_int_equal((uintptr_t)p % 64, 0);
        memset(p, 0xab, sizes[i]);
    }
    assert_true(ws.peak >= 1000 + 100000 + 65);
    assert_null(qt_ws_alloc_n(&ws, SIZE_MAX / 2, 4)); /* overflow */
    assert_null(qt_ws_alloc(&ws, SIZE_MAX));
    qt_ws_done(&ws);
    qt_ws_done(&ws); /* twice is harmless */
    qt_ws_done(NULL);
}

/* Memory allocated after a mark is given back; what was allocated before it keeps its contents. */
static void test_mark_release(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    double *keep;

    (void)state;
    keep = qt_ws_alloc_n(&ws, 1000, sizeof(double));
    assert_non_null(keep);
    for (size_t i = 0; i < 1000; i++)
        keep[i] = (double)i;
    for (int round = 0; round < 3; round++) {
        struct qt_ws_mark mk = qt_ws_mark(&ws);
        double *big = qt_ws_alloc_n(&ws, 4 * MIB, sizeof(double)); /* spills into a new block */

        assert_non_null(big);
        memset(big, 0xff, 4 * MIB * sizeof(double));
        qt_ws_release(&ws, mk);
        for (size_t i = 0; i < 1000; i++)
            assert_true(keep[i] == (double)i);
    }
    qt_ws_done(&ws);
}

/* A block released above live allocations is reused by the next one that fits: the same
 * address, no new mapping. A larger request gets a new block, and the spare becomes it. */
static void test_spare_reuse(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_ws_mark mk;
    void *first, *again, *larger, *after;

    (void)state;
    assert_non_null(qt_ws_alloc(&ws, 1000)); /* the solver's state: never released below */
    mk = qt_ws_mark(&ws);
    first = qt_ws_alloc(&ws, 8 * MIB);
    assert_non_null(first);
    qt_ws_release(&ws, mk);
    again = qt_ws_alloc(&ws, 8 * MIB);
    assert_ptr_equal(first, again);
    qt_ws_release(&ws, mk);
    again = qt_ws_alloc(&ws, 2 * MIB); /* smaller also fits */
    assert_ptr_equal(first, again);
    qt_ws_release(&ws, mk);
    larger = qt_ws_alloc(&ws, 32 * MIB);
    assert_non_null(larger);
    memset(larger, 1, 32 * MIB);
    qt_ws_release(&ws, mk);
    after = qt_ws_alloc(&ws, 24 * MIB); /* the 32 MiB block was kept, the 8 MiB one freed */
    assert_ptr_equal(larger, after);
    qt_ws_release(&ws, mk);
    qt_ws_done(&ws);
}

/* Back to empty after spilling over blocks: one block of the peak, and the next round with the
 * same shape allocates inside it. */
static void test_coalesce(void **state)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_ws_mark zero = qt_ws_mark(&ws);
    unsigned char *a, *b, *a2, *b2;

    (void)state;
    a = qt_ws_alloc(&ws, 100000);
    b = qt_ws_alloc(&ws, 3 * MIB);
    assert_non_null(a);
    assert_non_null(b);
    qt_ws_release(&ws, zero);
    a2 = qt_ws_alloc(&ws, 100000);
    b2 = qt_ws_alloc(&ws, 3 * MIB);
    assert_non_null(a2);
    assert_non_null(b2);
    assert_true(b2 > a2 && b2 - a2 < (ptrdiff_t)(200000)); /* one block: adjacent */
    memset(a2, 0, 100000);
    memset(b2, 0, 3 * MIB);
    qt_ws_release(&ws, zero);
    qt_ws_done(&ws);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_alignment_and_peak),
    cmocka_unit_test(test_mark_release),
    cmocka_unit_test(test_spare_reuse),
    cmocka_unit_test(test_coalesce),
};

QT_TEST_MAIN(tests)
