/* Scratch arena for numerical kernels: bump allocation with mark/release, so that hot loops
 * allocate nothing once the arena has grown to its working size. Not thread-safe; use one
 * arena per thread. */
#pragma once

#include <stddef.h>

#include "compiler.h"

struct qt_ws_block;

struct qt_ws {
    struct qt_ws_block *head;  /* private: newest block first */
    size_t peak;               /* read-only: largest total size ever in use, in bytes */
    struct qt_ws_block *spare; /* private: the largest block released, kept for reuse */
};

struct qt_ws_mark {
    struct qt_ws_block *block;
    size_t used;
    size_t total;
};

#define QT_WS_INIT    \
    {                 \
        NULL, 0, NULL \
    }

/* Returns 64-byte aligned, uninitialised memory valid until the arena is released past it or
 * finished; NULL when memory runs out. bytes == 0 returns a valid non-NULL pointer. */
QT_NODISCARD void *qt_ws_alloc(struct qt_ws *ws, size_t bytes);

/* Like qt_ws_alloc for n elements of size sz, with overflow checking. */
QT_NODISCARD void *qt_ws_alloc_n(struct qt_ws *ws, size_t n, size_t sz);

/* Current position; everything allocated after it is freed by qt_ws_release. */
struct qt_ws_mark qt_ws_mark(const struct qt_ws *ws);
void qt_ws_release(struct qt_ws *ws, struct qt_ws_mark mark);

/* Frees every block. The arena may be reused afterwards. NULL-safe. */
void qt_ws_done(struct qt_ws *ws);
