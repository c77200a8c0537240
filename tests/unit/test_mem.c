/* qt_mem: large arrays on huge-page boundaries, small ones from malloc; zeroed when asked,
 * writable to the last byte, freed with free(), and a size that overflows refused. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_mem.h"
#include "qt_test.h"

/* Byte i of an array: a pattern that a lost or shifted byte would break. */
static unsigned char pat(size_t i)
{
    return (unsigned char)((i * 2654435761u) >> 13);
}

static const size_t sizes[][2] = {
    {1, 8},      {100, 96},     {700, 96}, {10922, 96},       {10923, 96},
    {20001, 96}, {3u << 20, 1}, {0, 8},    {QT_HUGE_FROM, 1}, {QT_HUGE_FROM - 1, 1}};

static void check(unsigned char *p, size_t len, bool zeroed)
{
    assert_non_null(p);
    if (len >= QT_HUGE_FROM)
        assert_int_equal((uintptr_t)p % QT_HUGE_PAGE, 0);
    if (zeroed)
        for (size_t i = 0; i < len; i++)
            if (p[i])
                fail_msg("byte %zu of %zu is not zero", i, len);
    for (size_t i = 0; i < len; i++)
        p[i] = pat(i);
    for (size_t i = 0; i < len; i++)
        if (p[i] != pat(i))
            fail_msg("byte %zu of %zu did not keep its value", i, len);
    free(p);
}

static void test_alloc(void **state)
{
    (void)state;
    for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++)
        check(qt_alloc_huge(sizes[t][0], sizes[t][1]), sizes[t][0] * sizes[t][1], false);
}

/* Zeroed even where the allocator reuses memory that was written: fill, free, ask again. */
static void test_zalloc(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++)
        for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
            size_t len = sizes[t][0] * sizes[t][1];
            unsigned char *dirty = qt_alloc_huge(sizes[t][0], sizes[t][1]);

            assert_non_null(dirty);
            memset(dirty, 0xa5, len);
            free(dirty);
            check(qt_zalloc_huge(sizes[t][0], sizes[t][1]), len, true);
        }
}

static void test_overflow(void **state)
{
    (void)state;
    assert_null(qt_alloc_huge(SIZE_MAX / 8, 16));
    assert_null(qt_zalloc_huge(SIZE_MAX / 8, 16));
    assert_null(qt_alloc_huge(SIZE_MAX - 4096, 1));
    assert_null(qt_zalloc_huge(SIZE_MAX - 4096, 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc),
        cmocka_unit_test(test_zalloc),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
