#define _GNU_SOURCE /* struct ucred */
/* Client connections: accept with the peer's credentials, frames in (handed to qd_req.c),
 * writes out with a high-water mark that pauses the connection's batches, and close. */
#include <grp.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/qt_status.h"
#include "qd_log.h"
#include "qd_sup.h"

/* ---- frames ---- */

void qd_framer_alloc(struct qp_framer *f, uv_buf_t *b)
{
    uint8_t *p;
    size_t n;

    if (qp_framer_space(f, 0, &p, &n) < 0) {
        *b = uv_buf_init(NULL, 0);
        return;
    }
    /* One read copies at most QD_READ_MAX: a large frame arrives over many loop iterations
     * (libuv reads a stream up to 32 times in one), not in one long copy that holds up
     * everybody else. */
    *b = uv_buf_init((char *)p, (unsigned)QT_MIN(n, (size_t)QD_READ_MAX));
}

/* ---- writing ---- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b);
static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b);

struct wreq {
    uv_write_t req;
    struct sup *s;
    size_t len;
    unsigned n;
    uv_buf_t bufs[]; /* the frames, each its own allocation */
};

static void flow_update(struct conn *c, uint64_t now);
static void on_resume(uv_idle_t *h);

/* Reads the socket exactly when nothing holds it: a frame held back by output flow, a wait for
 * an input reservation, a failed write, closing. A connection stopped for output is still read
 * up to its next whole frame, so that a client blocked in sending a large request while its
 * results pile up (libqtomo-client sends the next part of a split submit before reading) can
 * finish sending it and go on to read. */
static void conn_update_reading(struct conn *c)
{
    bool want = !c->closing && !c->write_failed && !c->held && !c->in_waiting;

    if (want == c->reading)
        return;
    c->reading = want;
    if (want)
        uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_read);
    else
        uv_read_stop((uv_stream_t *)&c->h);
}

/* ---- input reservations (qd_flow_input_fits) ---- */

static uint64_t input_limit(const struct sup *s)
{
    return (uint64_t)s->conf.max_input_mb << 20;
}

/* Grants waiting connections their reservations, in order, while they fit. */
static void input_grant(struct sup *s)
{
    while (s->in_wait && qd_flow_input_fits(input_limit(s), s->in_reserved, s->in_wait->fr.need)) {
        struct conn *c = s->in_wait;

        s->in_wait = c->in_next;
        if (!s->in_wait)
            s->in_wait_tail = &s->in_wait;
        c->in_next = NULL;
        c->in_waiting = false;
        s->n_in_waiting--;
        c->in_reserved = c->fr.need;
        s->in_reserved += c->in_reserved;
        conn_update_reading(c);
    }
}

/* Its large frame is in (or it is closing): gives its reservation, or its place, up. */
static void input_release(struct conn *c)
{
    struct sup *s = c->s;

    if (c->in_waiting) {
        for (struct conn **p = &s->in_wait; *p; p = &(*p)->in_next)
            if (*p == c) {
                *p = c->in_next;
                if (!*p)
                    s->in_wait_tail = p;
                break;
            }
        c->in_next = NULL;
        c->in_waiting = false;
        s->n_in_waiting--;
    }
    s->in_reserved -= c->in_reserved;
    c->in_reserved = 0;
    input_grant(s);
}

/* After a read's frames were handled: a frame larger than one read, whose header has come,
 * needs its bytes reserved before the buffer grows for it; if they do not fit, the connection
 * is not read until they do. */
static void input_check(struct conn *c)
{
    struct sup *s = c->s;
    size_t need = c->fr.need;

    if (c->closing || c->in_reserved || c->in_waiting || need <= QP_FRAMER_CHUNK)
        return;
    if (!s->in_wait && qd_flow_input_fits(input_limit(s), s->in_reserved, need)) {
        c->in_reserved = need;
        s->in_reserved += need;
        return;
    }
    qd_debug("conn %llu: a %zu-byte frame waits for input room (%llu bytes being received)",
             c->serial, need, (unsigned long long)s->in_reserved);
    c->in_waiting = true;
    *s->in_wait_tail = c;
    s->in_wait_tail = &c->in_next;
    s->n_in_waiting++;
    conn_update_reading(c);
}

/* Connections stopped for the total may go on when another's output is written. */
static void flow_update_all(struct sup *s, uint64_t now)
{
    for (struct conn *c = s->conns; c && s->n_blocked; c = c->next)
        if (c->blocked_since)
            flow_update(c, now);
}

/* Stops or restarts a connection as qd_flow decides: a stopped one is not read (no new
 * requests) and gets no new batch items; items already running still send their results. */
static void flow_update(struct conn *c, uint64_t now)
{
    struct sup *s = c->s;
    const struct qd_flow_limits lim = {(uint64_t)s->conf.write_high_kb << 10,
                                       (uint64_t)s->conf.max_output_mb << 20};
    bool was = c->blocked_since != 0;
    bool stop = qd_flow_stopped(&lim, c->out_bytes, s->write_bytes, s->n_conns, was);

    if (stop == was || c->closing)
        return;
    if (stop) {
        c->blocked_since = now ? now : 1;
        s->n_blocked++;
        conn_update_reading(c);
        qd_debug("conn %llu: %llu bytes of output queued (%llu in all): stopped", c->serial,
                 (unsigned long long)c->out_bytes, (unsigned long long)s->write_bytes);
        return;
    }
    c->blocked_since = 0;
    s->n_blocked--;
    if (c->held && !c->resume_queued) { /* its held frame is handled from the loop, not here */
        c->resume_queued = true;
        c->resume_next = s->resume;
        s->resume = c;
        uv_idle_start(&s->resume_idle, on_resume);
    }
    qd_sched_dispatch(&s->sched, now); /* its batches may go on */
}

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = req->data;
    struct sup *s = w->s;
    bool total_was_over = s->write_bytes > (uint64_t)s->conf.max_output_mb << 20;

    s->write_bytes -= w->len;
    s->freed_bytes += w->len;
    if (c) {
        c->out_bytes -= w->len;
        if (status < 0 && status != UV_ECANCELED && !c->closing) {
            c->write_failed = true; /* the peer is gone: closed at the next tick */
            conn_update_reading(c);
        }
    }
    for (unsigned i = 0; i < w->n; i++)
        free(w->bufs[i].base);
    free(w);
    if (!c || c->closing)
        return;
    c->wrote_ms = qd_now_ms(s);
    flow_update(c, c->wrote_ms);
    if (total_was_over && s->n_blocked)
        flow_update_all(s, c->wrote_ms);
}

/* Hands a connection's coalesced frames to the socket in one write (libuv writes them at once
 * when the socket takes them); output that cannot go any more (a failed write) is dropped. */
static void conn_flush(struct conn *c)
{
    struct sup *s = c->s;
    struct wreq *wr = NULL;
    unsigned n = c->n_pend;

    if (n == 0)
        return;
    if (!c->closing && !c->write_failed)
        wr = malloc(sizeof(*wr) + n * sizeof(uv_buf_t));
    if (wr) {
        wr->s = s;
        wr->len = c->pend_len;
        wr->n = n;
        memcpy(wr->bufs, c->pend, n * sizeof(uv_buf_t));
        wr->req.data = c;
        if (uv_write(&wr->req, (uv_stream_t *)&c->h, wr->bufs, n, on_write) == 0) {
            c->n_pend = 0;
            c->pend_len = 0;
            return;
        }
        free(wr);
        c->write_failed = true;
        conn_update_reading(c);
    }
    s->write_bytes -= c->pend_len;
    c->out_bytes -= c->pend_len;
    s->freed_bytes += c->pend_len;
    for (unsigned i = 0; i < n; i++)
        free(c->pend[i].base);
    c->n_pend = 0;
    c->pend_len = 0;
}

/* Before the loop polls: every connection's output of this iteration, one write each. */
static void on_flush(uv_prepare_t *h)
{
    struct sup *s = h->data;

    while (s->pend) {
        struct conn *c = s->pend;

        s->pend = c->pend_next;
        c->pend_next = NULL;
        c->pend_queued = false;
        conn_flush(c);
    }
    uv_prepare_stop(h);
}

static void pend_unlink(struct conn *c)
{
    if (!c->pend_queued)
        return;
    for (struct conn **p = &c->s->pend; *p; p = &(*p)->pend_next)
        if (*p == c) {
            *p = c->pend_next;
            break;
        }
    c->pend_next = NULL;
    c->pend_queued = false;
}

/* Queues a frame on a connection. Frames sent during one loop iteration leave together, in
 * order, before the loop polls again (or as soon as QD_COALESCE_FRAMES or QD_COALESCE_MAX bytes
 * wait): one write and one wake-up of the reader for many results. The bytes count as queued
 * output (flow control) from here on. */
void qd_conn_send(struct conn *c, struct qp_writer *w)
{
    struct sup *s = c->s;
    size_t len = w->sb.size, spare;
    char *data;

    if (c->closing || c->write_failed || len == 0) {
        qp_writer_reset(w);
        return;
    }
    spare = w->sb.alloc - len;
    data = msgpack_sbuffer_release(&w->sb);
    w->start = 0;
    if (!data)
        return;
    if (spare > 1024) { /* an sbuffer grows in 8 KB steps: keep only what is used */
        char *fit = realloc(data, len);

        data = fit ? fit : data;
    }
    c->pend[c->n_pend++] = uv_buf_init(data, (unsigned)len);
    c->pend_len += len;
    s->write_bytes += len;
    c->out_bytes += len;
    if (c->n_pend == QD_COALESCE_FRAMES || c->pend_len >= QD_COALESCE_MAX) {
        conn_flush(c);
    } else if (!c->pend_queued) {
        c->pend_queued = true;
        c->pend_next = s->pend;
        s->pend = c;
        uv_prepare_start(&s->flush_prep, on_flush);
    }
    flow_update(c, qd_now_ms(s));
}

void qd_conn_send_error(struct conn *c, uint32_t id, int code, const char *msg, int64_t retry)
{
    struct qp_writer w;

    qp_writer_init(&w);
    if (qp_write_error(&w, id, code, msg, retry, c->s->conf.max_frame) == 0)
        qd_conn_send(c, &w);
    qp_writer_done(&w);
}

void qd_conn_send_bye(struct conn *c, const char *reason, int64_t retry)
{
    struct qp_writer w;

    qp_writer_init(&w);
    if (qp_write_bye(&w, reason, retry, c->s->conf.max_frame) == 0)
        qd_conn_send(c, &w);
    qp_writer_done(&w);
}

static void send_protocol_error(struct conn *c, int code, const char *msg)
{
    struct qp_writer w;

    qp_writer_init(&w);
    if (qp_write_protocol_error(&w, code, msg, c->s->conf.max_frame) == 0)
        qd_conn_send(c, &w);
    qp_writer_done(&w);
}

/* ---- closing ---- */

static void conn_freed(uv_handle_t *h)
{
    struct conn *c = h->data;

    qp_framer_done(&c->fr);
    free(c);
}

void qd_conn_close(struct conn *c)
{
    struct sup *s = c->s;

    if (c->closing)
        return;
    if (c->blocked_since)
        s->n_blocked--;
    pend_unlink(c);
    conn_flush(c); /* a bye goes out before the close (uv_close cancels queued writes) */
    c->closing = true;
    /* Its queued output is dropped: the allocator would keep the memory (with frames coalesced
     * into one write, the heap's top is rarely free by itself). */
    s->trim_due |= c->out_bytes >= QD_TRIM_CLOSED;
    if (c->resume_queued)
        for (struct conn **p = &s->resume; *p; p = &(*p)->resume_next)
            if (*p == c) {
                *p = c->resume_next;
                break;
            }
    input_release(c);
    qd_req_conn_gone(c); /* closing the connection cancels everything on it */
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->h, conn_freed);
}

void qd_conn_tick(struct sup *s, uint64_t now)
{
    /* Give the memory of a burst of output back to the system once it is written (or dropped
     * with its connection): the allocator keeps freed memory otherwise. */
    if ((s->freed_bytes > QD_TRIM_BYTES || s->trim_due) && s->write_bytes < QD_TRIM_BYTES / 8) {
        (void)malloc_trim(0);
        s->freed_bytes = 0;
        s->trim_due = false;
    }
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->write_failed) {
            qd_notice("conn %llu uid %u: cannot write to it; closing", c->serial, (unsigned)c->uid);
            qd_conn_close(c);
            continue;
        }
        if (c->in_reserved && !c->held && now - c->read_ms > s->conf.idle_read_ms) {
            qd_notice("conn %llu uid %u: sent nothing for %u ms in the middle of a %zu-byte "
                      "frame; closing",
                      c->serial, (unsigned)c->uid, s->conf.idle_read_ms, c->fr.need);
            qd_conn_send_bye(c, "idle", 0);
            qd_conn_close(c);
            continue;
        }
        if (c->blocked_since &&
            now - QT_MAX(c->blocked_since, c->wrote_ms) > s->conf.idle_write_ms) {
            qd_notice("conn %llu uid %u: not reading its results for %u ms (%llu bytes queued); "
                      "closing",
                      c->serial, (unsigned)c->uid, s->conf.idle_write_ms,
                      (unsigned long long)c->out_bytes);
            qd_conn_send_bye(c, "idle", 0);
            qd_conn_close(c);
            continue;
        }
        qd_req_tick(c, now);
    }
}

/* ---- reading ---- */

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;

    (void)suggested;
    qd_framer_alloc(&c->fr, b);
}

/* One whole request frame. */
static void handle_frame(struct conn *c, const uint8_t *body, uint32_t len)
{
    qd_req_frame(c, body, len);
    if (c->in_reserved && !c->closing) /* the large frame it reserved for is in */
        input_release(c);
}

/* Handles the frames buffered, the held one first; a frame that comes while the connection is
 * stopped for output is held (its body stays valid: the framer is neither consumed nor given
 * space until it is handled). */
static void conn_process(struct conn *c)
{
    const uint8_t *body;
    uint32_t len;
    int r = 0;

    if (c->held) {
        if (c->blocked_since)
            return;
        c->held = false;
        handle_frame(c, c->held_body, c->held_len);
    }
    while (!c->closing && (r = qp_framer_next(&c->fr, c->s->conf.max_frame, &body, &len)) == 1) {
        if (c->blocked_since) {
            c->held = true;
            c->held_body = body;
            c->held_len = len;
            break;
        }
        handle_frame(c, body, len);
    }
    if (c->closing)
        return;
    if (r < 0) {
        qd_notice("conn %llu uid %u: %s frame header; closing", c->serial, (unsigned)c->uid,
                  r == QT_ETOOBIG ? "oversize" : "empty");
        send_protocol_error(c, r == QT_ETOOBIG ? QT_ST_TOO_LARGE : QT_ST_PARSE_ERROR,
                            r == QT_ETOOBIG ? "frame longer than max_frame" : "empty frame");
        qd_conn_close(c);
        return;
    }
    if (!c->held)
        qp_framer_consume(&c->fr);
    input_check(c);
    conn_update_reading(c);
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = st->data;

    (void)b;
    if (nread == UV_ENOBUFS)
        qd_err("conn %llu: out of memory for its input", c->serial);
    if (nread < 0) {
        qd_conn_close(c);
        return;
    }
    qp_framer_commit(&c->fr, (size_t)nread);
    if (nread > 0)
        c->read_ms = qd_now_ms(c->s);
    conn_process(c);
}

/* Connections that went on with a frame held: handled here, from the loop. */
static void on_resume(uv_idle_t *h)
{
    struct sup *s = h->data;

    while (s->resume) {
        struct conn *c = s->resume;

        s->resume = c->resume_next;
        c->resume_next = NULL;
        c->resume_queued = false;
        if (!c->closing)
            conn_process(c);
    }
    uv_idle_stop(h);
}

void qd_conn_init(struct sup *s)
{
    uv_idle_init(s->loop, &s->resume_idle);
    s->resume_idle.data = s;
    uv_prepare_init(s->loop, &s->flush_prep);
    s->flush_prep.data = s;
}

/* ---- accepting ---- */

/* Group membership of a peer from /proc (no NSS lookups in the loop). */
static bool peer_in_group(pid_t pid, gid_t gid, gid_t want)
{
    char path[64], line[4096];
    FILE *f;
    bool in = gid == want;

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    f = fopen(path, "re");
    if (!f)
        return in;
    while (!in && fgets(line, sizeof(line), f))
        if (strncmp(line, "Groups:", 7) == 0) {
            char *p = line + 7, *end;

            for (;;) {
                unsigned long g = strtoul(p, &end, 10);

                if (end == p)
                    break;
                in |= (gid_t)g == want;
                p = end;
            }
        }
    fclose(f);
    return in;
}

static void peer_credentials(struct sup *s, struct conn *c)
{
    struct ucred cr;
    socklen_t crl = sizeof(cr);
    struct group *g;
    uv_os_fd_t fd;

    if (uv_fileno((uv_handle_t *)&c->h, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0) {
        c->uid = cr.uid;
        c->gid = cr.gid;
        c->pid = cr.pid;
    }
    g = s->conf.admin_group[0] ? getgrnam(s->conf.admin_group) : NULL;
    c->admin =
        c->uid == 0 || c->uid == geteuid() || (g && peer_in_group(c->pid, c->gid, g->gr_gid));
}

void qd_conn_on_connection(uv_stream_t *l, int status)
{
    struct sup *s = l->data;
    struct conn *c;

    if (status < 0) {
        qd_warn("accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->s = s;
    qp_framer_init(&c->fr);
    uv_pipe_init(s->loop, &c->h, 0);
    c->h.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->h) < 0) {
        uv_close((uv_handle_t *)&c->h, conn_freed);
        return;
    }
    c->serial = ++s->conn_serial;
    c->read_ms = qd_now_ms(s);
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    peer_credentials(s, c);
    qd_info("conn %llu: uid %u gid %u pid %d%s", c->serial, (unsigned)c->uid, (unsigned)c->gid,
            (int)c->pid, c->admin ? " (admin)" : "");
    if (s->n_conns > s->conf.max_connections || s->draining) {
        qd_conn_send_bye(c, s->draining ? "shutdown" : "busy", s->draining ? -1 : 1000);
        qd_conn_close(c);
        return;
    }
    conn_update_reading(c);
}
