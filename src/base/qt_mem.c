#include "qt_mem.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* *bytes = n * size rounded up to whole huge pages; false when that overflows. */
static bool huge_bytes(size_t n, size_t size, size_t *bytes)
{
    if (size && n > SIZE_MAX / size)
        return false;
    *bytes = n * size;
    if (*bytes < QT_HUGE_FROM)
        return true;
    if (*bytes > SIZE_MAX - QT_HUGE_PAGE)
        return false;
    /* Whole huge pages: no 4 kB pages at the end. */
    *bytes = (*bytes + QT_HUGE_PAGE - 1) / QT_HUGE_PAGE * QT_HUGE_PAGE;
    return true;
}

void *qt_alloc_huge(size_t n, size_t size)
{
    size_t bytes;
    void *p;

    if (!huge_bytes(n, size, &bytes))
        return NULL;
    if (bytes < QT_HUGE_FROM)
        return malloc(bytes ? bytes : 1);
    if (posix_memalign(&p, QT_HUGE_PAGE, bytes) != 0)
        return NULL;
    (void)madvise(p, bytes, MADV_HUGEPAGE); /* advice: without it, 4 kB pages */
    return p;
}

void *qt_zalloc_huge(size_t n, size_t size)
{
    void *p;

    if (size && n > SIZE_MAX / size)
        return NULL;
    if (n * size < QT_HUGE_FROM)
        return calloc(n ? n : 1, size ? size : 1);
    /* After the advice: the zeroing is the first touch. */
    if ((p = qt_alloc_huge(n, size)))
        memset(p, 0, n * size);
    return p;
}
