/* Bump arena used as LAPACK workspace and per-sample scratch. When it is released back to
 * empty while spread over several blocks, it coalesces into one block of the peak size, so a
 * steady state does no allocation at all. A block released while older blocks stay in use (a
 * kernel's scratch above a solver's state) is kept as the spare and reused by the next block
 * that fits in it: glibc maps such large blocks afresh on every allocation, and at 8 qubits the
 * page faults of one Pauli map's 54 MB scratch per call cost a quarter of an MLE's time. */
#include "qt_ws.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define WS_ALIGN     64
#define WS_MIN_BLOCK (64 * 1024)
/* Zeroed guard bytes before and after every block. OpenBLAS 0.3.21's Haswell zgemv_n kernel
 * reads up to a few dozen bytes outside the arrays it is given (OpenBLAS issue #4013, which
 * segfaults when the read crosses into an unmapped page); LAPACK calls that can reach it run on
 * arena memory, so such reads stay inside memory we own. */
#define WS_GUARD 256

struct qt_ws_block {
    struct qt_ws_block *next;
    size_t cap;
    size_t used;
    size_t base_total;   /* bytes in use in older blocks when this block was created */
    unsigned char *base; /* the allocation: guard, data, guard */
    unsigned char *data;
};

static struct qt_ws_block *block_new(size_t cap, struct qt_ws_block *next, size_t base_total)
{
    struct qt_ws_block *b = malloc(sizeof(*b));

    if (!b)
        return NULL;
    if (cap > SIZE_MAX - 2 * WS_GUARD)
        b->base = NULL;
    else
        b->base = aligned_alloc(WS_ALIGN, cap + 2 * WS_GUARD);
    if (!b->base) {
        free(b);
        return NULL;
    }
    memset(b->base, 0, WS_GUARD);
    memset(b->base + WS_GUARD + cap, 0, WS_GUARD);
    b->data = b->base + WS_GUARD;
    b->cap = cap;
    b->used = 0;
    b->next = next;
    b->base_total = base_total;
    return b;
}

static void block_free(struct qt_ws_block *b)
{
    free(b->base);
    free(b);
}

void *qt_ws_alloc(struct qt_ws *ws, size_t bytes)
{
    struct qt_ws_block *b = ws->head;
    size_t need;

    if (bytes > SIZE_MAX - WS_ALIGN)
        return NULL;
    need = (bytes + WS_ALIGN - 1) & ~(size_t)(WS_ALIGN - 1);
    if (need == 0)
        need = WS_ALIGN;
    if (!b || b->cap - b->used < need) {
        size_t cap = b ? b->cap * 2 : WS_MIN_BLOCK;
        size_t total = b ? b->base_total + b->used : 0;

        if (ws->spare && ws->spare->cap >= need) {
            b = ws->spare;
            ws->spare = NULL;
            b->used = 0;
            b->next = ws->head;
            b->base_total = total;
        } else {
            if (cap < need)
                cap = need;
            if (ws->peak > total && cap < ws->peak - total)
                cap = ws->peak - total; /* grow straight to the known working size */
            b = block_new(cap, ws->head, total);
            if (!b)
                return NULL;
        }
        ws->head = b;
    }
    void *p = b->data + b->used;
    b->used += need;
    if (b->base_total + b->used > ws->peak)
        ws->peak = b->base_total + b->used;
    return p;
}

void *qt_ws_alloc_n(struct qt_ws *ws, size_t n, size_t sz)
{
    if (sz && n > SIZE_MAX / sz)
        return NULL;
    return qt_ws_alloc(ws, n * sz);
}

struct qt_ws_mark qt_ws_mark(const struct qt_ws *ws)
{
    struct qt_ws_mark m = {ws->head, ws->head ? ws->head->used : 0,
                           ws->head ? ws->head->base_total + ws->head->used : 0};
    return m;
}

void qt_ws_release(struct qt_ws *ws, struct qt_ws_mark mark)
{
    bool coalesce = false;

    while (ws->head && ws->head != mark.block) {
        struct qt_ws_block *b = ws->head;

        ws->head = b->next;
        if (!ws->spare || ws->spare->cap < b->cap) {
            if (ws->spare)
                block_free(ws->spare);
            ws->spare = b;
        } else {
            block_free(b);
        }
        coalesce = true;
    }
    if (ws->head)
        ws->head->used = mark.used;
    /* Back to empty after spilling into several blocks: replace the chain with one block big
     * enough for the peak so the next round allocates nothing. */
    if (mark.total == 0 && (coalesce || (ws->head && ws->head->next))) {
        qt_ws_done(ws);
        struct qt_ws_block *b =
            block_new(ws->peak > WS_MIN_BLOCK ? ws->peak : WS_MIN_BLOCK, NULL, 0);
        ws->head = b; /* on failure the arena simply starts empty */
    }
}

void qt_ws_done(struct qt_ws *ws)
{
    if (!ws)
        return;
    if (ws->spare) {
        block_free(ws->spare);
        ws->spare = NULL;
    }
    while (ws->head) {
        struct qt_ws_block *b = ws->head;

        ws->head = b->next;
        block_free(b);
    }
}
