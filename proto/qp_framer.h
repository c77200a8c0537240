/* Incremental frame assembly over a byte stream: the one framer of qtomod's supervisor, its
 * workers and libqtomo-client. It does no I/O. The caller asks for space, reads into it, commits
 * what it read, and takes out every complete frame (4-byte big-endian body length, then the
 * body; SCHEMA.md). Not thread-safe: one framer belongs to one stream.
 *
 * The cycle, for every read:
 *
 *     for (;;) {
 *         while ((r = qp_framer_next(f, max_frame, &body, &len)) == 1)
 *             handle(body, len);           (body valid until the consume below)
 *         if (r < 0)
 *             break;                       (bad header: close the stream)
 *         qp_framer_consume(f);            (optional here: space does it too)
 *         r = qp_framer_space(f, 0, &p, &n);
 *         ... read up to n bytes into p, giving k ...
 *         qp_framer_commit(f, k);
 *     }
 *
 * Memory is bounded: the buffer never grows past max_frame + QP_HEADER_LEN + QP_FRAMER_CHUNK
 * bytes (the largest frame, its header and one read), and it grows to a frame's whole length
 * only after qp_framer_next has checked that frame's header against max_frame. A buffer that
 * grew past 4 * QP_FRAMER_CHUNK for a large frame shrinks back to QP_FRAMER_CHUNK once that
 * frame is consumed and little is left. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"

/* The default read size, and the size a buffer shrinks back to after a large frame. */
#define QP_FRAMER_CHUNK (64u << 10)

struct qp_framer {
    /* read-only */
    size_t cap; /* bytes allocated */
    /* private */
    uint8_t *buf;
    size_t len;  /* bytes committed */
    size_t off;  /* start of the first frame qp_framer_next has not returned */
    size_t need; /* header plus body of the frame at off once its header is checked, else 0 */
    int err;     /* the header error qp_framer_next returned, 0 while the stream is good */
};

/* Prepares an empty framer; allocates nothing. */
void qp_framer_init(struct qp_framer *f);

/* Frees the buffer and leaves f as qp_framer_init does, so it may be reused or done again.
 * Bodies returned by qp_framer_next become invalid. */
void qp_framer_done(struct qp_framer *f);

/* Writable space at the end of the buffered bytes, for the next read. First discards the
 * frames qp_framer_next returned (as qp_framer_consume does), which invalidates their bodies.
 * hint is the caller's read size: 0 means QP_FRAMER_CHUNK, and larger values are capped at
 * QP_FRAMER_CHUNK. The space returned in *ret_ptr, *ret_len (valid until the next call on f)
 * is at least half of hint (at least 1 byte) and, once the pending frame's header has been
 * checked, at least the rest of that frame, so that a large frame arrives in few reads. It may
 * be larger. When the buffer has to grow, it grows to hold hint more bytes (or the rest of the
 * frame), so that short reads do not reallocate every time.
 * Call it only after qp_framer_next returned 0: with a header or a frame waiting to be taken
 * out it returns -EBUSY instead (it would otherwise grow past its bound). Returns 0, -ENOMEM
 * (nothing changed; the caller may retry), -EBUSY, or the header error qp_framer_next returned
 * earlier (the stream is dead). */
QT_NODISCARD int qp_framer_space(struct qp_framer *f, size_t hint, uint8_t **ret_ptr,
                                 size_t *ret_len);

/* Records that the first n bytes of the last space returned by qp_framer_space were filled.
 * n must not exceed that space's length (n = 0 is allowed). */
void qp_framer_commit(struct qp_framer *f, size_t n);

/* Takes the next complete frame out of the buffer. Returns 1 with *ret_body, *ret_len (the body
 * without its header; it stays valid until the next qp_framer_consume, qp_framer_space or
 * qp_framer_done on f), 0 when more bytes are needed, or the error of qp_frame_header for the
 * header at hand: QT_ETOOBIG for a body longer than max_frame, QT_EPARSE for an empty one. A
 * frame's header is checked once, against the max_frame of the call that first sees it whole.
 * Errors are final: the stream cannot be resynchronised, the bytes after the bad header are
 * never looked at, and every later call of qp_framer_next or qp_framer_space returns the same
 * error. */
QT_NODISCARD int qp_framer_next(struct qp_framer *f, uint32_t max_frame, const uint8_t **ret_body,
                                uint32_t *ret_len);

/* Discards the frames qp_framer_next returned (their bodies become invalid) and moves the
 * bytes after them to the front. When the buffer is larger than 4 * QP_FRAMER_CHUNK and what
 * is left, and the pending frame if its header is known, fit in QP_FRAMER_CHUNK, it is
 * reallocated down to QP_FRAMER_CHUNK (kept as is if that fails). */
void qp_framer_consume(struct qp_framer *f);

/* Hands the buffer that holds the frames qp_framer_next returned (their bodies stay valid) to
 * the caller, who frees it; the bytes not yet returned move to a new buffer. Lets a reader keep
 * a large frame's body without copying it. Returns the buffer, or NULL (nothing changed) when
 * no frame was returned since the last consume or no memory is left for the rest. */
void *qp_framer_take(struct qp_framer *f);

/* The buffer's size in bytes (what qp_framer_take would hand over). */
size_t qp_framer_capacity(const struct qp_framer *f);

/* Bytes held that qp_framer_next has not returned: 0 at a clean end of stream, otherwise the
 * start of a frame that an end of stream cut short. */
size_t qp_framer_pending(const struct qp_framer *f);
