/* Incremental frame assembly over a byte stream (qp_framer.h). */
#include "qp_framer.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qp.h"

void qp_framer_init(struct qp_framer *f)
{
    memset(f, 0, sizeof(*f));
}

void qp_framer_done(struct qp_framer *f)
{
    free(f->buf);
    qp_framer_init(f);
}

size_t qp_framer_pending(const struct qp_framer *f)
{
    return f->len - f->off;
}

void qp_framer_consume(struct qp_framer *f)
{
    size_t left = f->len - f->off;

    if (f->off) {
        memmove(f->buf, f->buf + f->off, left);
        f->len = left;
        f->off = 0;
    }
    /* Give a large frame's memory back once little is left and nothing large is coming. */
    if (f->cap > 4 * (size_t)QP_FRAMER_CHUNK && left <= QP_FRAMER_CHUNK &&
        f->need <= QP_FRAMER_CHUNK) {
        uint8_t *nb = realloc(f->buf, QP_FRAMER_CHUNK);

        if (nb) {
            f->buf = nb;
            f->cap = QP_FRAMER_CHUNK;
        }
    }
}

size_t qp_framer_capacity(const struct qp_framer *f)
{
    return f->cap;
}

void *qp_framer_take(struct qp_framer *f)
{
    size_t left = f->len - f->off, cap = QT_MAX(left, (size_t)QP_FRAMER_CHUNK);
    uint8_t *nb, *old = f->buf;

    if (!f->off || f->err)
        return NULL;
    nb = malloc(cap);
    if (!nb)
        return NULL;
    memcpy(nb, f->buf + f->off, left);
    f->buf = nb;
    f->cap = cap;
    f->len = left;
    f->off = 0;
    return old;
}

int qp_framer_space(struct qp_framer *f, size_t hint, uint8_t **ret_ptr, size_t *ret_len)
{
    size_t pending, want;

    if (f->err)
        return f->err;
    qp_framer_consume(f);
    pending = f->len;
    /* Only a checked header may make the buffer grow beyond one read. */
    if (f->need ? pending >= f->need : pending >= QP_HEADER_LEN)
        return -EBUSY;
    if (hint == 0 || hint > QP_FRAMER_CHUNK)
        hint = QP_FRAMER_CHUNK;
    want = f->need ? f->need - pending : 0; /* the rest of the pending frame */
    /* Grow when the rest of the frame does not fit, or less than half a read does; then by a
     * whole read, so that a stream of short reads does not reallocate on every one. */
    if (f->cap - f->len < want || f->cap - f->len < QT_MAX(hint / 2, (size_t)1)) {
        size_t nc = f->len + QT_MAX(want, hint);
        uint8_t *nb = realloc(f->buf, nc);

        if (!nb)
            return -ENOMEM;
        f->buf = nb;
        f->cap = nc;
    }
    *ret_ptr = f->buf + f->len;
    *ret_len = f->cap - f->len;
    return 0;
}

void qp_framer_commit(struct qp_framer *f, size_t n)
{
    assert(n <= f->cap - f->len);
    f->len += n;
}

int qp_framer_next(struct qp_framer *f, uint32_t max_frame, const uint8_t **ret_body,
                   uint32_t *ret_len)
{
    size_t pending = f->len - f->off;
    uint32_t len;

    if (f->err)
        return f->err;
    if (!f->need) {
        int r;

        if (pending < QP_HEADER_LEN)
            return 0;
        r = qp_frame_header(f->buf + f->off, max_frame, &len);
#if SIZE_MAX <= UINT32_MAX
        /* A frame and one read must be addressable where size_t has 32 bits. */
        if (r == 0 && len > SIZE_MAX - QP_HEADER_LEN - QP_FRAMER_CHUNK)
            r = QT_ETOOBIG;
#endif
        if (r < 0) {
            f->err = r;
            return r;
        }
        f->need = QP_HEADER_LEN + (size_t)len;
    }
    if (pending < f->need)
        return 0;
    *ret_body = f->buf + f->off + QP_HEADER_LEN;
    *ret_len = (uint32_t)(f->need - QP_HEADER_LEN);
    f->off += f->need;
    f->need = 0;
    return 1;
}
