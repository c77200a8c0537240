/* Output flow control as plain code: when a connection's queued output (results it has not read
 * yet) must stop it, and when it may go on. A stopped connection gets no new batch items and its
 * socket is not read (no new requests), so what it can still make the daemon queue is bounded
 * by the items already running and the requests already read. Two limits with hysteresis:
 *  - its own output above `high` (write-high-water-kb) stops it; at or below high / 2 it goes on;
 *  - all connections' output above `total` (max-output-mb) also stops every connection holding
 *    more than its fair share (total / connections, at least QD_FLOW_MIN_SHARE), until the total
 *    is back to 7/8 of the limit or its own output to half its share; clients that read their
 *    results hold almost nothing and are not stopped for those that do not.
 * So all output stays below `total` plus what stopped connections can still be sent.
 * No I/O; the glue in qd_conn.c calls it when output is queued or written. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QD_FLOW_MIN_SHARE   (64u << 10)
#define QD_TAKE_FRAME_BYTES (1u << 20) /* a request frame this large may be kept, not copied */

struct qd_flow_limits {
    uint64_t high;  /* bytes queued on one connection */
    uint64_t total; /* bytes queued on all connections; 0: no total limit */
};

/* Whether a connection with `out` bytes queued, `total` on all `conns` connections, should be
 * stopped, given whether it is stopped now. */
bool qd_flow_stopped(const struct qd_flow_limits *l, uint64_t out, uint64_t total, unsigned conns,
                     bool now);

/* Input: a connection whose next frame is larger than one read reserves the frame's bytes
 * before its buffer grows. Reservations over all connections stay within `limit`
 * (max-input-mb; 0: no limit), except that one is always granted when none is held, so that
 * any frame up to max-frame gets in; a connection that does not fit is not read until it does,
 * in the order they asked. Whether `need` more bytes fit with `reserved` held: */
bool qd_flow_input_fits(uint64_t limit, uint64_t reserved, uint64_t need);

/* Whether a request frame of frame_len bytes (header included) is worth keeping in the buffer
 * it was read into (cap bytes) instead of copying its values out: when it is at least
 * QD_TAKE_FRAME_BYTES and the buffer is not much larger than the frame (a buffer that grew for
 * an earlier, larger frame would keep all that memory for the job's life). */
bool qd_flow_keep_frame_buffer(size_t cap, size_t frame_len);
