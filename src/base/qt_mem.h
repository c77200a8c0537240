/* Memory for large arrays that are touched once, element after element (a parsed table, an
 * output's reorder slots): from QT_HUGE_FROM bytes on, whole 2 MiB pages on a 2 MiB boundary,
 * advised onto transparent huge pages before the first touch, so that filling them takes a
 * page fault per 2 MiB rather than per 4 kB. Below, plain malloc/calloc. Freed with free(). */
#pragma once

#include <stddef.h>

#include "compiler.h"

#define QT_HUGE_PAGE ((size_t)2 << 20) /* a transparent huge page on x86-64 and arm64 */
#define QT_HUGE_FROM ((size_t)1 << 20)

/* n elements of size bytes, uninitialised. NULL: no memory, or n * size overflows. */
QT_NODISCARD void *qt_alloc_huge(size_t n, size_t size);

/* The same, zeroed. */
QT_NODISCARD void *qt_zalloc_huge(size_t n, size_t size);
