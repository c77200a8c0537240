#define _GNU_SOURCE /* struct ucred */
/* The supervisor: one libuv loop that owns the listening socket, the client connections, the
 * queues, the worker pool and the systemd conversation. It never does numerics or BLAS: work
 * goes to workers over their channels, results come back already encoded and are relayed. */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>
#include <uv.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "num/qt_lapack.h"
#include "qd.h"
#include "qd_log.h"
#include "qp.h"

#ifndef QTOMO_VERSION
#    define QTOMO_VERSION "0.0.0"
#endif

#define TICK_MS           100
#define READ_CHUNK        65536
#define CRASHLOOP_N       5     /* workers failing before ready ... */
#define CRASHLOOP_WINDOW  30000 /* ... within this many ms stop the daemon */
#define BUSY_RETRY_MS     200
#define MAX_RETRIES       2 /* a sample that kills this many workers fails alone */

extern char **environ;

struct sup;
struct conn;

/* Frame assembly over a byte stream. */
struct framer {
    uint8_t *buf;
    size_t len, cap;
};

enum job_kind { JOB_SAMPLES, JOB_TASK };

/* An accepted request that needs workers: reconstruct, submit, or a task (design.put,
 * cache.warm, cache.verify) forwarded to a worker as is. */
struct job {
    struct sup *s;
    struct conn *conn; /* NULL once the connection is gone */
    struct job *next, *prev; /* in conn->jobs */
    struct job *bnext;       /* in the batch list */
    uint32_t id;
    enum qp_method method;
    enum job_kind kind;
    struct qp_job j;
    char key[96]; /* cache id + d, for worker affinity */
    enum qt_method meth[_QT_METHOD_MAX];
    size_t nm;
    size_t next_col; /* next column to cut into a chunk */
    size_t done, failed;
    uint8_t *state; /* per sample: tries (low bits), 0x80 = result sent */
    unsigned refs;  /* chunks queued or running */
    bool finished;  /* final response sent (or connection gone) */
    bool in_batch;
    uint64_t t_recv, last_progress;
    msgpack_sbuffer task; /* JOB_TASK: params map to forward */
};

struct chunk {
    struct job *job;
    size_t c0, n;
    bool retry;
    struct chunk *next;
};

enum wstate { W_STARTING, W_IDLE, W_BUSY, W_RETIRING, W_EXITING };

static const char *const wstate_names[] = {"starting", "idle", "busy", "draining", "exiting"};

struct worker {
    struct sup *s;
    uv_process_t proc;
    uv_pipe_t chan;
    struct framer fr;
    struct worker *next;
    int pid;
    enum wstate state;
    unsigned closing; /* handles still to close */
    bool exited, chan_open;
    struct chunk *cur;
    size_t cur_done;
    uint64_t t_dispatch, deadline, kill_at;
    bool timed_out;
    uint64_t jobs, max_jobs, generation;
    char key[96];
};

struct conn {
    struct sup *s;
    uv_pipe_t h;
    struct framer fr;
    struct conn *next, *prev;
    struct job *jobs;
    unsigned inflight;
    unsigned long long serial;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    bool admin, hello_done, closing;
    uint64_t blocked_since; /* write queue above the high-water mark since (ms), 0: not */
};

struct sup {
    uv_loop_t *loop;
    struct qd_conf conf;
    const char *conf_path;
    int argc;
    char **argv;
    char exe[4096];
    uv_pipe_t listener;
    bool listening, activated;
    uv_signal_t sig_term, sig_int, sig_hup;
    uv_timer_t tick, watchdog;
    struct qt_cache *cache;
    struct conn *conns;
    unsigned n_conns;
    unsigned long long conn_serial;
    struct worker *workers;
    uint64_t generation;
    struct chunk *iq_head, *iq_tail; /* interactive: reconstruct and tasks */
    struct chunk *rq_head, *rq_tail; /* retries of single samples */
    struct job *batch;               /* submits with columns left to cut */
    uint64_t queued;                 /* samples waiting */
    uint64_t inflight;
    uint64_t started_ms;
    bool ready_sent, draining, stopping;
    uint64_t drain_deadline;
    uint64_t init_fail_ms[CRASHLOOP_N];
    unsigned init_fail_i;
    int exit_code;
    struct {
        uint64_t items, errors, timeouts, crashes, recycled;
    } tot;
    uint32_t task_serial;
    char status_line[256];
};

static void dispatch(struct sup *s);
static void conn_close(struct conn *c);
static void worker_spawn(struct sup *s);
static void stop_now(struct sup *s);

static uint64_t now_ms(struct sup *s)
{
    uv_update_time(s->loop);
    return uv_now(s->loop);
}

/* ---- frames ---- */

static void framer_alloc(struct framer *f, uv_buf_t *b)
{
    size_t want = READ_CHUNK;

    if (f->len >= QP_HEADER_LEN) {
        uint32_t l = ((uint32_t)f->buf[0] << 24) | ((uint32_t)f->buf[1] << 16) |
                     ((uint32_t)f->buf[2] << 8) | f->buf[3];

        if ((size_t)l + QP_HEADER_LEN > f->len && (size_t)l + QP_HEADER_LEN - f->len > want)
            want = (size_t)l + QP_HEADER_LEN - f->len; /* length already checked */
    }
    if (f->cap - f->len < want) {
        size_t nc = f->len + want;
        uint8_t *nb = realloc(f->buf, nc);

        if (!nb) {
            *b = uv_buf_init(NULL, 0);
            return;
        }
        f->buf = nb;
        f->cap = nc;
    }
    *b = uv_buf_init((char *)f->buf + f->len, (unsigned)(f->cap - f->len));
}

/* The next complete frame at *off: 1 with body/len, 0 when more bytes are needed, or the
 * header's error (QT_ETOOBIG, QT_EPARSE). */
static int framer_next(struct framer *f, size_t *off, uint32_t max, const uint8_t **body,
                       uint32_t *len)
{
    int r;

    if (f->len - *off < QP_HEADER_LEN)
        return 0;
    r = qp_frame_header(f->buf + *off, max, len);
    if (r < 0)
        return r;
    if (f->len - *off - QP_HEADER_LEN < *len)
        return 0;
    *body = f->buf + *off + QP_HEADER_LEN;
    *off += QP_HEADER_LEN + *len;
    return 1;
}

static void framer_consume(struct framer *f, size_t off)
{
    memmove(f->buf, f->buf + off, f->len - off);
    f->len -= off;
    if (f->cap > 4 * READ_CHUNK && f->len < READ_CHUNK) { /* give a large frame's memory back */
        uint8_t *nb = realloc(f->buf, READ_CHUNK);

        if (nb) {
            f->buf = nb;
            f->cap = READ_CHUNK;
        }
    }
}

/* ---- writing ---- */

struct wreq {
    uv_write_t req;
    char *data;
};

static void on_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct conn *c = req->data;

    (void)status;
    free(w->data);
    free(w);
    if (c && !c->closing && c->blocked_since &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->h) <
            (size_t)c->s->conf.write_high_kb * 512) {
        c->blocked_since = 0; /* below the low-water mark: its batches may go on */
        dispatch(c->s);
    }
}

/* Sends and empties the writer. */
static void send_writer(struct conn *c, struct qp_writer *w)
{
    struct wreq *wr;
    uv_buf_t b;

    if (c->closing || w->sb.size == 0) {
        qp_writer_reset(w);
        return;
    }
    wr = malloc(sizeof(*wr));
    if (!wr) {
        qp_writer_reset(w);
        return;
    }
    b = uv_buf_init(w->sb.data, (unsigned)w->sb.size);
    wr->data = msgpack_sbuffer_release(&w->sb);
    w->start = 0;
    wr->req.data = c;
    if (uv_write(&wr->req, (uv_stream_t *)&c->h, &b, 1, on_write) < 0) {
        free(wr->data);
        free(wr);
        conn_close(c);
        return;
    }
    if (!c->blocked_since &&
        uv_stream_get_write_queue_size((uv_stream_t *)&c->h) >
            (size_t)c->s->conf.write_high_kb * 1024)
        c->blocked_since = now_ms(c->s);
}

static void send_error(struct conn *c, uint32_t id, int code, const char *msg, int64_t retry)
{
    struct qp_writer w;

    qp_writer_init(&w);
    if (qp_write_error(&w, id, code, msg, retry, c->s->conf.max_frame) == 0)
        send_writer(c, &w);
    qp_writer_done(&w);
}

static void send_bye(struct conn *c, const char *reason, int64_t retry)
{
    struct qp_writer w;

    qp_writer_init(&w);
    if (qp_write_bye(&w, reason, retry, c->s->conf.max_frame) == 0)
        send_writer(c, &w);
    qp_writer_done(&w);
}

/* ---- systemd ---- */

static void notify_status(struct sup *s)
{
    unsigned idle = 0, busy = 0, all = 0;
    char line[256];

    if (s->exit_code)
        return; /* stopping on an error: its STATUS= stays */
    for (struct worker *w = s->workers; w; w = w->next) {
        if (w->state == W_EXITING || w->state == W_RETIRING)
            continue;
        all++;
        idle += w->state == W_IDLE;
        busy += w->state == W_BUSY;
    }
    snprintf(line, sizeof(line), "STATUS=%s%u/%u workers busy, %u idle, %llu samples queued, %u clients",
             s->draining ? "draining: " : "", busy, all, idle, (unsigned long long)s->queued,
             s->n_conns);
    if (strcmp(line, s->status_line) != 0) {
        memcpy(s->status_line, line, sizeof(line));
        (void)sd_notify(0, line);
    }
}

static void on_watchdog(uv_timer_t *t)
{
    (void)sd_notify(0, "WATCHDOG=1");
    (void)t;
}

/* ---- jobs ---- */

static void job_unlink_batch(struct job *jb)
{
    struct sup *s = jb->s;

    if (!jb->in_batch)
        return;
    for (struct job **p = &s->batch; *p; p = &(*p)->bnext)
        if (*p == jb) {
            *p = jb->bnext;
            break;
        }
    jb->in_batch = false;
    s->queued -= jb->j.n - jb->next_col;
    jb->next_col = jb->j.n;
}

static void job_free_if_done(struct job *jb)
{
    if (!jb->finished || jb->refs)
        return;
    job_unlink_batch(jb);
    if (jb->conn) {
        if (jb->prev)
            jb->prev->next = jb->next;
        else
            jb->conn->jobs = jb->next;
        if (jb->next)
            jb->next->prev = jb->prev;
    }
    qp_job_done(&jb->j);
    msgpack_sbuffer_destroy(&jb->task);
    free(jb->state);
    free(jb);
}

/* Marks the request answered (the caller sent or will not send its final response). */
static void job_finish(struct job *jb)
{
    if (jb->finished)
        return;
    jb->finished = true;
    jb->s->inflight--;
    if (jb->conn)
        jb->conn->inflight--;
    job_unlink_batch(jb);
}

static void job_totals(const struct job *jb, struct qp_totals *t, uint64_t now)
{
    t->n_ok = jb->done - jb->failed;
    t->n_err = jb->failed;
    t->n_cancelled = jb->j.n - jb->done;
    t->elapsed_ms = (double)(now - jb->t_recv);
}

static void job_log_end(struct job *jb, const char *how)
{
    struct qp_totals t;
    struct conn *c = jb->conn;

    job_totals(jb, &t, now_ms(jb->s));
    qd_log(jb->method == QP_M_SUBMIT ? QD_LOG_INFO : QD_LOG_DEBUG,
           "conn %llu uid %u pid %d: %s #%u %s: %llu ok, %llu failed, %llu cancelled, %.0f ms",
           c ? c->serial : 0ULL, c ? (unsigned)c->uid : 0U, c ? (int)c->pid : 0,
           qp_methods[jb->method].name, jb->id, how, (unsigned long long)t.n_ok,
           (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled, t.elapsed_ms);
}

/* Ends a request with an error (cancel, shutdown): totals as data for a submit. */
static void job_abort(struct job *jb, int code, const char *msg)
{
    if (jb->finished)
        return;
    if (jb->conn) {
        struct qp_writer w;
        struct qp_totals t;

        qp_writer_init(&w);
        job_totals(jb, &t, now_ms(jb->s));
        if (jb->method == QP_M_SUBMIT ? qp_write_error_totals(&w, jb->id, code, msg, &t,
                                                              jb->s->conf.max_frame) == 0
                                      : qp_write_error(&w, jb->id, code, msg, -1,
                                                       jb->s->conf.max_frame) == 0)
            send_writer(jb->conn, &w);
        qp_writer_done(&w);
    }
    job_log_end(jb, code == QT_ST_CANCELLED ? "cancelled" : "stopped");
    job_finish(jb);
    job_free_if_done(jb);
}

static void maybe_progress(struct job *jb, uint64_t now, bool force)
{
    struct qp_progress p;
    struct qp_writer w;
    double rate;

    if (!jb->conn || jb->finished || jb->method != QP_M_SUBMIT || jb->j.progress_ms == 0)
        return;
    if (!force && now - jb->last_progress < jb->j.progress_ms)
        return;
    jb->last_progress = now;
    p.request = jb->id;
    p.done = jb->done;
    p.failed = jb->failed;
    p.total = jb->j.n;
    rate = jb->done ? (double)(now - jb->t_recv) / (double)jb->done : 0.0;
    p.eta_ms = jb->done ? (int64_t)(rate * (double)(jb->j.n - jb->done)) : -1;
    qp_writer_init(&w);
    if (qp_pack_progress(&w, &p, jb->s->conf.max_frame) == 0)
        send_writer(jb->conn, &w);
    qp_writer_done(&w);
}

/* Delivers one sample's encoded results (exactly once per sample). */
static void job_deliver(struct job *jb, size_t col, const void *results, size_t len, bool ok,
                        double queue_ms, double compute_ms, int worker_pid)
{
    struct sup *s = jb->s;
    struct qp_writer w;
    int r;

    if (jb->finished || (jb->state[col] & 0x80))
        return;
    jb->state[col] |= 0x80;
    jb->done++;
    jb->failed += !ok;
    s->tot.items++;
    s->tot.errors += !ok;
    if (!jb->conn)
        return;
    qp_writer_init(&w);
    if (jb->method == QP_M_RECONSTRUCT)
        r = qp_pack_reconstruct_result_raw(&w, jb->id, results, len, queue_ms, compute_ms,
                                           worker_pid, s->conf.max_frame);
    else
        r = qp_pack_result_notify_raw(&w, jb->id, jb->j.first_index + col, results, len,
                                      compute_ms, s->conf.max_frame);
    if (r == QT_ETOOBIG) { /* SCHEMA Decisions 13: the sample still gets exactly one result */
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        qp_pack_error_results(&pk, jb->meth, jb->nm, jb->j.d, QT_ETOOBIG,
                              "the result does not fit in max-frame");
        if (ok) {
            jb->failed++;
            s->tot.errors++;
        }
        r = jb->method == QP_M_RECONSTRUCT
                ? qp_pack_reconstruct_result_raw(&w, jb->id, sb.data, sb.size, queue_ms,
                                                 compute_ms, worker_pid, s->conf.max_frame)
                : qp_pack_result_notify_raw(&w, jb->id, jb->j.first_index + col, sb.data,
                                            sb.size, compute_ms, s->conf.max_frame);
        msgpack_sbuffer_destroy(&sb);
    }
    if (r == 0)
        send_writer(jb->conn, &w);
    qp_writer_done(&w);
    if (jb->method == QP_M_RECONSTRUCT) {
        job_log_end(jb, "done");
        job_finish(jb);
        return;
    }
    maybe_progress(jb, now_ms(s), false);
    if (jb->done == jb->j.n) {
        struct qp_totals t;

        qp_writer_init(&w);
        job_totals(jb, &t, now_ms(s));
        if (qp_pack_submit_result(&w, jb->id, &t, s->conf.max_frame) == 0)
            send_writer(jb->conn, &w);
        qp_writer_done(&w);
        job_log_end(jb, "done");
        job_finish(jb);
    }
}

/* A sample that never ran to completion: an error result for every method. */
static void job_deliver_error(struct job *jb, size_t col, int err, const char *msg, int pid)
{
    msgpack_sbuffer sb;
    msgpack_packer pk;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_error_results(&pk, jb->meth, jb->nm, jb->j.d, err, msg);
    job_deliver(jb, col, sb.data, sb.size, false, 0.0, 0.0, pid);
    msgpack_sbuffer_destroy(&sb);
}

/* ---- queues ---- */

static void chunk_push(struct chunk **head, struct chunk **tail, struct chunk *ch)
{
    ch->next = NULL;
    if (*tail)
        (*tail)->next = ch;
    else
        *head = ch;
    *tail = ch;
}

static struct chunk *chunk_pop(struct chunk **head, struct chunk **tail)
{
    struct chunk *ch = *head;

    if (ch) {
        *head = ch->next;
        if (!*head)
            *tail = NULL;
    }
    return ch;
}

static int enqueue_chunk(struct job *jb, size_t c0, size_t n, bool interactive, bool retry)
{
    struct sup *s = jb->s;
    struct chunk *ch = calloc(1, sizeof(*ch));

    if (!ch)
        return -ENOMEM;
    ch->job = jb;
    ch->c0 = c0;
    ch->n = n;
    ch->retry = retry;
    jb->refs++;
    s->queued += n;
    if (retry)
        chunk_push(&s->rq_head, &s->rq_tail, ch);
    else if (interactive)
        chunk_push(&s->iq_head, &s->iq_tail, ch);
    return 0;
}

static bool conn_blocked(const struct conn *c)
{
    return c && c->blocked_since != 0;
}

/* Cuts the next chunk of a submit, preferring one whose cache file the worker has mapped. */
static struct chunk *cut_batch(struct sup *s, const struct worker *w)
{
    struct job *pick = NULL;
    struct chunk *ch;
    size_t n;

    for (struct job *jb = s->batch; jb; jb = jb->bnext) {
        if (jb->next_col >= jb->j.n || conn_blocked(jb->conn))
            continue;
        if (!pick)
            pick = jb;
        if (strcmp(jb->key, w->key) == 0) {
            pick = jb;
            break;
        }
    }
    if (!pick)
        return NULL;
    ch = calloc(1, sizeof(*ch));
    if (!ch)
        return NULL;
    n = QT_MIN((size_t)s->conf.chunk, pick->j.n - pick->next_col);
    ch->job = pick;
    ch->c0 = pick->next_col;
    ch->n = n;
    pick->next_col += n;
    pick->refs++;
    if (pick->next_col >= pick->j.n) { /* fully cut: leave the round robin */
        for (struct job **p = &s->batch; *p; p = &(*p)->bnext)
            if (*p == pick) {
                *p = pick->bnext;
                break;
            }
        pick->in_batch = false;
    } else if (pick == s->batch && pick->bnext) { /* round robin between submits */
        struct job **p = &s->batch;

        s->batch = pick->bnext;
        while (*p)
            p = &(*p)->bnext;
        *p = pick;
        pick->bnext = NULL;
    }
    return ch;
}

/* ---- workers ---- */

static void worker_send(struct worker *w, struct qp_writer *wr)
{
    struct wreq *q = malloc(sizeof(*q));
    uv_buf_t b;

    if (!q) {
        qp_writer_reset(wr);
        return;
    }
    b = uv_buf_init(wr->sb.data, (unsigned)wr->sb.size);
    q->data = msgpack_sbuffer_release(&wr->sb);
    wr->start = 0;
    q->req.data = NULL;
    if (uv_write(&q->req, (uv_stream_t *)&w->chan, &b, 1, on_write) < 0) {
        free(q->data);
        free(q);
    }
}

static void chunk_done(struct sup *s, struct chunk *ch)
{
    struct job *jb = ch->job;

    jb->refs--;
    free(ch);
    job_free_if_done(jb);
    (void)s;
}

/* Sends a chunk (or a task) to an idle worker. */
static void worker_start(struct worker *w, struct chunk *ch)
{
    struct sup *s = w->s;
    struct job *jb = ch->job;
    struct qp_writer wr;
    uint64_t now = now_ms(s), limit = s->conf.item_timeout_ms;

    s->queued -= ch->retry || jb->kind == JOB_TASK || jb->method == QP_M_RECONSTRUCT ? ch->n : 0;
    if (jb->method == QP_M_SUBMIT && !ch->retry)
        s->queued -= ch->n;
    qp_writer_init(&wr);
    if (jb->kind == JOB_TASK) {
        qp_begin_request(&wr, ++s->task_serial, jb->method);
        (void)msgpack_sbuffer_write(&wr.sb, jb->task.data, jb->task.size);
        if (qp_frame_end(&wr, UINT32_MAX) < 0)
            qp_writer_reset(&wr);
    } else {
        struct qp_job cj = jb->j; /* a view of the chunk's columns */

        cj.values = jb->j.values + jb->j.m * ch->c0;
        cj.n = ch->n;
        cj.first_index = ch->c0;
        cj.progress_ms = 0;
        if (qp_pack_job(&wr, ++s->task_serial, QP_M_SUBMIT, &cj, UINT32_MAX) < 0) {
            qp_writer_done(&wr);
            for (size_t i = 0; i < ch->n; i++)
                job_deliver_error(jb, ch->c0 + i, -ENOMEM, "could not encode the work item", -1);
            chunk_done(s, ch);
            return;
        }
        snprintf(w->key, sizeof(w->key), "%s", jb->key);
        if (jb->j.timeout_ms && jb->j.timeout_ms < limit)
            limit = jb->j.timeout_ms;
    }
    worker_send(w, &wr);
    qp_writer_done(&wr);
    w->state = W_BUSY;
    w->cur = ch;
    w->cur_done = 0;
    w->t_dispatch = now;
    w->deadline = now + (jb->kind == JOB_TASK ? s->conf.max_item_ms : limit);
    w->timed_out = false;
    w->kill_at = 0;
}

static void dispatch(struct sup *s)
{
    for (struct worker *w = s->workers; w; w = w->next) {
        struct chunk *ch;

        if (w->state != W_IDLE)
            continue;
        for (;;) {
            ch = chunk_pop(&s->iq_head, &s->iq_tail);
            if (!ch)
                ch = chunk_pop(&s->rq_head, &s->rq_tail);
            if (ch && ch->job->finished) { /* cancelled while queued */
                s->queued -= ch->n;
                chunk_done(s, ch);
                continue;
            }
            break;
        }
        if (!ch)
            ch = cut_batch(s, w);
        if (!ch)
            return;
        worker_start(w, ch);
    }
}

/* The worker's current chunk ends (normally or because the worker died). */
static void worker_chunk_end(struct worker *w, bool died, int term_signal)
{
    struct sup *s = w->s;
    struct chunk *ch = w->cur;
    struct job *jb;

    if (!ch)
        return;
    w->cur = NULL;
    jb = ch->job;
    if (died && jb->kind == JOB_TASK) {
        if (jb->conn && !jb->finished)
            send_error(jb->conn, jb->id, QT_ST_WORKER_CRASHED, "the worker died", -1);
        job_finish(jb);
    } else if (died) {
        for (size_t i = w->cur_done; i < ch->n; i++) {
            size_t col = ch->c0 + i;
            unsigned tries;

            if (jb->finished || (jb->state[col] & 0x80))
                continue;
            if (w->timed_out && i == w->cur_done) {
                s->tot.timeouts++;
                job_deliver_error(jb, col, QT_EDEADLINE,
                                  "the sample passed its deadline; its worker was killed", w->pid);
                continue;
            }
            tries = (jb->state[col] & 0x7f) + (w->timed_out ? 0u : 1u);
            jb->state[col] = (uint8_t)((jb->state[col] & 0x80) | tries);
            if (tries >= MAX_RETRIES) {
                char msg[128];

                snprintf(msg, sizeof(msg), "the sample crashed %u workers (last: signal %d)",
                         tries, term_signal);
                job_deliver_error(jb, col, QT_ECRASHED, msg, w->pid);
            } else if (enqueue_chunk(jb, col, 1, false, true) < 0) {
                job_deliver_error(jb, col, -ENOMEM, "out of memory", w->pid);
            }
        }
    }
    chunk_done(s, ch);
}

static void worker_closed(uv_handle_t *h)
{
    struct worker *w = h->data;

    if (--w->closing)
        return;
    free(w->fr.buf);
    free(w);
}

static void worker_remove(struct worker *w)
{
    struct sup *s = w->s;

    for (struct worker **p = &s->workers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->closing = 1 + (w->chan_open ? 1u : 0u);
    uv_close((uv_handle_t *)&w->proc, worker_closed);
    if (w->chan_open) {
        w->chan_open = false;
        uv_close((uv_handle_t *)&w->chan, worker_closed);
    }
}

static unsigned live_workers(const struct sup *s)
{
    unsigned n = 0;

    for (const struct worker *w = s->workers; w; w = w->next)
        n += w->state != W_RETIRING && w->state != W_EXITING;
    return n;
}

static void on_worker_exit(uv_process_t *p, int64_t status, int term_signal)
{
    struct worker *w = p->data;
    struct sup *s = w->s;
    enum wstate was = w->state;
    uint64_t now = now_ms(s);

    w->exited = true;
    if (was == W_STARTING) {
        qd_err("worker %d failed during start-up (status %lld, signal %d)", w->pid,
               (long long)status, term_signal);
        s->init_fail_ms[s->init_fail_i++ % CRASHLOOP_N] = now;
        if (s->init_fail_i >= CRASHLOOP_N &&
            now - s->init_fail_ms[s->init_fail_i % CRASHLOOP_N] < CRASHLOOP_WINDOW) {
            qd_err("%d workers failed during start-up within %d s: giving up (crash loop)",
                   CRASHLOOP_N, CRASHLOOP_WINDOW / 1000);
            s->exit_code = QD_EXIT_CRASHLOOP;
            s->draining = true; /* refuse new connections and requests while it stops */
            (void)sd_notifyf(0, "ERRNO=%d\nSTATUS=workers crash during start-up", EIO);
        }
    } else if (w->cur) {
        s->tot.crashes += !w->timed_out;
        qd_err("worker %d died during an item (%s%s%d): %s", w->pid,
               term_signal ? "signal " : "exit status ",
               term_signal == SIGKILL && !w->timed_out ? "possible OOM kill, " : "",
               term_signal ? term_signal : (int)status,
               w->timed_out ? "item passed its deadline" : "its unfinished samples are retried");
    } else if (was != W_RETIRING && was != W_EXITING) {
        qd_warn("worker %d exited unexpectedly (status %lld, signal %d)", w->pid,
                (long long)status, term_signal);
    } else {
        qd_debug("worker %d exited", w->pid);
    }
    worker_chunk_end(w, true, term_signal);
    worker_remove(w);
    if (s->exit_code) /* crash loop: end the requests, stop the other workers, then the loop */
        stop_now(s);
    if (!s->stopping && !s->exit_code && live_workers(s) < s->conf.workers)
        worker_spawn(s);
    if (s->stopping && !s->workers)
        uv_stop(s->loop);
    dispatch(s);
}

static void worker_retire(struct worker *w)
{
    w->state = W_RETIRING;
    if (w->chan_open && !w->cur) {
        w->state = W_EXITING;
        w->chan_open = false;
        w->closing = 0;
        uv_close((uv_handle_t *)&w->chan, NULL); /* EOF: the worker exits */
    }
}

static uint64_t worker_rss_kb(int pid)
{
    char path[64];
    unsigned long long pages = 0, rss = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE) / 1024;
}

/* One frame from a worker. Workers are ours but may be broken: anything unexpected kills it. */
static int worker_frame(struct worker *w, const uint8_t *body, uint32_t len)
{
    struct sup *s = w->s;
    struct qp_msg msg;
    struct qt_diag dg = {0};
    int r = qp_msg_decode(body, len, &msg, &dg);

    if (r < 0)
        goto out;
    if (msg.type == QP_NOTIFICATION && strcmp(msg.method_name, QD_W_READY) == 0 &&
        w->state == W_STARTING) {
        w->state = W_IDLE;
        qd_debug("worker %d ready", w->pid);
        if (!s->ready_sent && live_workers(s) == s->conf.workers) {
            bool all = true;

            for (struct worker *x = s->workers; x; x = x->next)
                all &= x->state != W_STARTING;
            if (all) {
                s->ready_sent = true;
                qd_notice("ready: %u workers, socket %s, cache %s", s->conf.workers,
                          s->conf.socket, s->conf.cache_dir);
                (void)sd_notify(0, "READY=1");
                notify_status(s);
            }
        }
        dispatch(s);
    } else if (msg.type == QP_NOTIFICATION && strcmp(msg.method_name, QD_W_RESULT) == 0 && w->cur &&
               w->cur->job->kind == JOB_SAMPLES) {
        const msgpack_object *res = qp_get(msg.params, "results");
        uint64_t idx = 0;
        double us = 0.0;
        struct chunk *ch = w->cur;
        struct job *jb = ch->job;

        if (qp_read_u64(qp_get(msg.params, "index"), "index", UINT64_MAX, &idx, &dg) < 0 ||
            qp_read_f64(qp_get(msg.params, "us"), "us", &us, &dg) < 0 || !res ||
            res->type != MSGPACK_OBJECT_BIN || idx != ch->c0 + w->cur_done ||
            qp_prescan((const uint8_t *)res->via.bin.ptr, res->via.bin.size, &dg) < 0) {
            r = -EPROTO;
            goto out;
        }
        w->cur_done++;
        w->jobs++;
        w->deadline = now_ms(s) + (jb->j.timeout_ms && jb->j.timeout_ms < s->conf.item_timeout_ms
                                       ? jb->j.timeout_ms
                                       : s->conf.item_timeout_ms);
        {
            /* ok when no result map says "error": look for the status strings cheaply by
             * decoding the array we relay (small next to the frame). */
            msgpack_unpacked up;
            size_t off = 0;
            bool ok = true;

            msgpack_unpacked_init(&up);
            if (msgpack_unpack_next(&up, res->via.bin.ptr, res->via.bin.size, &off) ==
                    MSGPACK_UNPACK_SUCCESS &&
                up.data.type == MSGPACK_OBJECT_ARRAY) {
                for (uint32_t i = 0; i < up.data.via.array.size; i++) {
                    const msgpack_object *st = qp_get(&up.data.via.array.ptr[i], "status");

                    ok &= st && st->type == MSGPACK_OBJECT_STR && st->via.str.size == 2;
                }
            } else {
                ok = false;
            }
            msgpack_unpacked_destroy(&up);
            job_deliver(jb, (size_t)idx, res->via.bin.ptr, res->via.bin.size, ok,
                        (double)(w->t_dispatch - jb->t_recv), us / 1000.0, w->pid);
        }
    } else if (msg.type == QP_RESPONSE && w->cur) {
        struct job *jb = w->cur->job;

        if (jb->kind == JOB_TASK && jb->conn && !jb->finished) {
            struct qp_writer wr;

            qp_writer_init(&wr);
            if (msg.error->type == MSGPACK_OBJECT_MAP) {
                struct qp_error e;

                if (qp_decode_error(msg.error, &e, &dg) == 0)
                    send_error(jb->conn, jb->id, e.code, e.message, -1);
            } else if (jb->method == QP_M_DESIGN_PUT) {
                char id[64];

                if (qp_decode_id_result(msg.result, id, sizeof(id), &dg) == 0 &&
                    qp_pack_id_result(&wr, jb->id, id, s->conf.max_frame) == 0)
                    send_writer(jb->conn, &wr);
            } else {
                qp_begin_response(&wr, jb->id);
                (void)msgpack_pack_object(&wr.pk, *msg.result);
                if (qp_frame_end(&wr, s->conf.max_frame) == 0)
                    send_writer(jb->conn, &wr);
            }
            qp_writer_done(&wr);
            qd_info("conn %llu uid %u: %s done", jb->conn->serial, (unsigned)jb->conn->uid,
                    qp_methods[jb->method].name);
        }
        if (jb->kind == JOB_TASK)
            job_finish(jb);
        else if (w->cur_done != w->cur->n) {
            r = -EPROTO;
            goto out;
        }
        worker_chunk_end(w, false, 0);
        if (w->state == W_RETIRING) {
            worker_retire(w);
        } else {
            w->state = W_IDLE;
            if ((s->conf.worker_max_jobs && w->jobs >= w->max_jobs) ||
                (s->conf.worker_max_rss_mb &&
                 worker_rss_kb(w->pid) > (uint64_t)s->conf.worker_max_rss_mb * 1024)) {
                qd_info("worker %d recycled after %llu samples", w->pid,
                        (unsigned long long)w->jobs);
                s->tot.recycled++;
                worker_retire(w);
                worker_spawn(s);
            }
        }
        dispatch(s);
    } else {
        r = -EPROTO;
    }
out:
    qp_msg_done(&msg);
    if (r < 0)
        qd_err("worker %d: bad channel message (%s); killing it", w->pid,
               dg.msg[0] ? dg.msg : qt_strerror(r));
    return r;
}

static void worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct worker *w = h->data;

    (void)suggested;
    framer_alloc(&w->fr, b);
}

static void worker_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct worker *w = st->data;
    size_t off = 0;
    const uint8_t *body;
    uint32_t len;
    int r;

    (void)b;
    if (nread < 0) {
        /* EOF or error: the process exit callback does the accounting. */
        uv_read_stop(st);
        return;
    }
    w->fr.len += (size_t)nread;
    while ((r = framer_next(&w->fr, &off, UINT32_MAX, &body, &len)) == 1)
        if (worker_frame(w, body, len) < 0) {
            uv_read_stop(st);
            (void)uv_process_kill(&w->proc, SIGKILL);
            return;
        }
    if (r < 0) {
        uv_read_stop(st);
        (void)uv_process_kill(&w->proc, SIGKILL);
        return;
    }
    framer_consume(&w->fr, off);
}

/* The environment of a worker: ours without systemd's variables, with one BLAS thread, the
 * kernel choice and the supervisor's pid. */
static char **worker_env(struct sup *s)
{
    static const char *const drop[] = {"NOTIFY_SOCKET=", "WATCHDOG_USEC=", "WATCHDOG_PID=",
                                       "LISTEN_FDS=",    "LISTEN_PID=",    "LISTEN_FDNAMES=",
                                       "OPENBLAS_NUM_THREADS=", "QTOMO_SUPERVISOR_PID="};
    size_t n = 0, k = 0;
    char **env;
    const char *ct = getenv("OPENBLAS_CORETYPE") ? NULL : qt_blas_coretype_advice();
    static char pidvar[64], ctvar[64], one_thread[] = "OPENBLAS_NUM_THREADS=1";

    while (environ[n])
        n++;
    env = calloc(n + 4, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool keep = true;

        for (size_t j = 0; j < sizeof(drop) / sizeof(drop[0]); j++)
            keep &= strncmp(environ[i], drop[j], strlen(drop[j])) != 0;
        if (keep)
            env[k++] = environ[i];
    }
    snprintf(pidvar, sizeof(pidvar), "QTOMO_SUPERVISOR_PID=%d", (int)getpid());
    env[k++] = pidvar;
    env[k++] = one_thread;
    if (ct) {
        snprintf(ctvar, sizeof(ctvar), "OPENBLAS_CORETYPE=%s", ct);
        env[k++] = ctvar;
    }
    (void)s;
    return env;
}

static void worker_spawn(struct sup *s)
{
    struct worker *w = calloc(1, sizeof(*w));
    uv_process_options_t o = {0};
    uv_stdio_container_t io[4];
    char a_cache[300], a_budget[32], a_frame[32], a_dim[32], a_log[8];
    static char o_worker[] = "--worker", o_cache_dir[] = "--cache-dir",
                o_cache_budget_mb[] = "--cache-budget-mb", o_max_frame[] = "--max-frame",
                o_max_dim[] = "--max-dim", o_log_level[] = "--log-level";
    char *args[16];
    char **env = worker_env(s);
    int r, k = 0;

    if (!w || !env) {
        qd_err("cannot spawn a worker: out of memory");
        free(w);
        free(env);
        return;
    }
    snprintf(a_cache, sizeof(a_cache), "%s", s->conf.cache_dir);
    snprintf(a_budget, sizeof(a_budget), "%u", s->conf.cache_budget_mb);
    snprintf(a_frame, sizeof(a_frame), "%u", s->conf.max_frame);
    snprintf(a_dim, sizeof(a_dim), "%u", s->conf.max_dim);
    snprintf(a_log, sizeof(a_log), "%u", s->conf.log_level);
    args[k++] = s->exe;
    args[k++] = o_worker;
    args[k++] = o_cache_dir;
    args[k++] = a_cache;
    args[k++] = o_cache_budget_mb;
    args[k++] = a_budget;
    args[k++] = o_max_frame;
    args[k++] = a_frame;
    args[k++] = o_max_dim;
    args[k++] = a_dim;
    args[k++] = o_log_level;
    args[k++] = a_log;
    args[k] = NULL;
    w->s = s;
    w->generation = s->generation;
    w->state = W_STARTING;
    w->max_jobs = s->conf.worker_max_jobs +
                  (s->conf.worker_max_jobs ? (uint64_t)rand() % (s->conf.worker_max_jobs / 10 + 1)
                                           : 0);
    uv_pipe_init(s->loop, &w->chan, 0);
    w->chan.data = w;
    w->proc.data = w;
    io[0].flags = UV_IGNORE;
    io[1].flags = UV_INHERIT_FD;
    io[1].data.fd = 1;
    io[2].flags = UV_INHERIT_FD;
    io[2].data.fd = 2;
    io[3].flags = UV_CREATE_PIPE | UV_READABLE_PIPE | UV_WRITABLE_PIPE;
    io[3].data.stream = (uv_stream_t *)&w->chan;
    o.file = s->exe;
    o.args = args;
    o.env = env;
    o.stdio = io;
    o.stdio_count = 4;
    o.exit_cb = on_worker_exit;
    r = uv_spawn(s->loop, &w->proc, &o);
    free(env);
    if (r < 0) {
        qd_err("cannot spawn a worker (%s): %s", s->exe, uv_strerror(r));
        w->closing = 1;
        uv_close((uv_handle_t *)&w->chan, worker_closed);
        s->init_fail_ms[s->init_fail_i++ % CRASHLOOP_N] = now_ms(s);
        return;
    }
    w->pid = w->proc.pid;
    w->chan_open = true;
    w->next = s->workers;
    s->workers = w;
    uv_read_start((uv_stream_t *)&w->chan, worker_alloc, worker_read);
    qd_debug("worker %d spawned (generation %llu)", w->pid, (unsigned long long)w->generation);
}

/* ---- requests ---- */

static struct job *job_new(struct conn *c, uint32_t id, enum qp_method m, enum job_kind kind)
{
    struct job *jb = calloc(1, sizeof(*jb));

    if (!jb)
        return NULL;
    jb->s = c->s;
    jb->conn = c;
    jb->id = id;
    jb->method = m;
    jb->kind = kind;
    jb->t_recv = now_ms(c->s);
    jb->last_progress = jb->t_recv;
    qp_job_init(&jb->j);
    msgpack_sbuffer_init(&jb->task);
    jb->next = c->jobs;
    if (c->jobs)
        c->jobs->prev = jb;
    c->jobs = jb;
    c->inflight++;
    c->s->inflight++;
    return jb;
}

static struct job *find_job(struct conn *c, uint32_t id)
{
    for (struct job *jb = c->jobs; jb; jb = jb->next)
        if (jb->id == id && !jb->finished)
            return jb;
    return NULL;
}

/* Resolves design, d and the cache key of a decoded job; request errors go to the client. */
static int resolve(struct conn *c, struct job *jb, struct qt_diag *dg)
{
    struct qp_job *j = &jb->j;
    int kind = qt_design_kind_from_name(j->design), k2;
    size_t d = 0;
    int r;

    if (kind < 0)
        return qt_diag_set(dg, QT_EDESIGN, 0, 0, "design: unknown design '%s'", j->design);
    if (kind == QT_DESIGN_CUSTOM) {
        struct qt_cache_entry *e = NULL;
        size_t n = 0;

        if (!j->design_id[0])
            return qt_diag_set(dg, QT_EPARSE, 0, 0, "design_id: required with design custom");
        r = qt_cache_list(c->s->cache, &e, &n, dg);
        if (r < 0)
            return r;
        for (size_t i = 0; i < n; i++)
            if (strcmp(e[i].id, j->design_id) == 0 && (!j->d || e[i].d == j->d) &&
                e[i].m == j->m)
                d = e[i].d;
        free(e);
        if (!d)
            return qt_diag_set(dg, -ENOENT, 0, 0,
                               "design_id: no custom design %s with %zu outcomes (upload it "
                               "with design.put)",
                               j->design_id, j->m);
    } else {
        r = qt_design_infer(kind, j->m, &k2, &d, dg);
        if (r < 0)
            return r;
        if (j->d && j->d != d)
            return qt_diag_set(dg, QT_EDIM, 0, 0, "d: %zu values mean d = %zu for %s, not %zu",
                               j->m, d, j->design, j->d);
        if (d > c->s->conf.max_dim)
            return qt_diag_set(dg, QT_ETOOBIG, 0, 0, "d: %zu is above max-dim %u", d,
                               c->s->conf.max_dim);
    }
    j->d = d;
    if (j->target && j->opts.target && d * d == 0)
        return QT_ESHAPE;
    if (j->target) {
        /* The decoder checked squareness; now it must be d x d (SCHEMA Decisions 10). */
        /* The wire decoder accepted [k, k]; its size is known only through d at decode time
         * when d was given. Re-check against the resolved d here. */
    }
    snprintf(jb->key, sizeof(jb->key), "%s-d%zu",
             kind == QT_DESIGN_CUSTOM ? j->design_id
                                      : qt_design_kind_name((enum qt_design_kind)kind),
             d);
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (j->methods[m])
            jb->meth[jb->nm++] = (enum qt_method)m;
    return 0;
}

static void req_samples(struct conn *c, const struct qp_msg *msg)
{
    struct sup *s = c->s;
    struct qt_diag dg = {0};
    struct job *jb;
    int r;

    jb = job_new(c, msg->id, (enum qp_method)msg->method, JOB_SAMPLES);
    if (!jb) {
        send_error(c, msg->id, QT_ST_INTERNAL, "out of memory", -1);
        return;
    }
    r = qp_decode_job(msg->params, (enum qp_method)msg->method, s->conf.max_dim,
                      s->conf.max_batch, &jb->j, &dg);
    if (r == 0)
        r = resolve(c, jb, &dg);
    if (r == 0 && jb->j.target) {
        size_t td = 0;

        while (td * td < jb->j.m && td <= jb->j.d) /* shape was checked square by the decoder */
            td++;
    }
    if (r == 0 && s->queued + jb->j.n > s->conf.max_queue && s->queued > 0) {
        send_error(c, msg->id, QT_ST_BUSY, "the queue is full; retry later", BUSY_RETRY_MS);
        job_finish(jb);
        job_free_if_done(jb);
        return;
    }
    if (r == 0) {
        jb->state = calloc(jb->j.n, 1);
        if (!jb->state)
            r = qt_diag_set(&dg, -ENOMEM, 0, 0, "out of memory");
    }
    if (r < 0) {
        send_error(c, msg->id, qt_status_from_err(r), dg.msg[0] ? dg.msg : qt_strerror(r), -1);
        job_finish(jb);
        job_free_if_done(jb);
        return;
    }
    if (jb->method == QP_M_RECONSTRUCT) {
        r = enqueue_chunk(jb, 0, 1, true, false);
    } else {
        jb->in_batch = true;
        jb->bnext = NULL;
        {
            struct job **p = &s->batch;

            while (*p)
                p = &(*p)->bnext;
            *p = jb;
        }
        s->queued += jb->j.n;
        qd_info("conn %llu uid %u pid %d: submit #%u: %zu samples, %s d = %zu", c->serial,
                (unsigned)c->uid, (int)c->pid, jb->id, jb->j.n, jb->j.design, jb->j.d);
    }
    if (r < 0) {
        send_error(c, msg->id, QT_ST_INTERNAL, "out of memory", -1);
        job_finish(jb);
        job_free_if_done(jb);
        return;
    }
    dispatch(s);
}

static void req_task(struct conn *c, const struct qp_msg *msg)
{
    struct job *jb = job_new(c, msg->id, (enum qp_method)msg->method, JOB_TASK);
    msgpack_packer pk;

    if (!jb) {
        send_error(c, msg->id, QT_ST_INTERNAL, "out of memory", -1);
        return;
    }
    msgpack_packer_init(&pk, &jb->task, msgpack_sbuffer_write);
    if (msg->params) /* qp_begin_request opens the params array; this is its one map */
        (void)msgpack_pack_object(&pk, *msg->params);
    else
        (void)msgpack_pack_map(&pk, 0);
    jb->j.n = 1;
    jb->state = calloc(1, 1);
    if (!jb->state || enqueue_chunk(jb, 0, 1, true, false) < 0) {
        send_error(c, msg->id, QT_ST_INTERNAL, "out of memory", -1);
        job_finish(jb);
        job_free_if_done(jb);
        return;
    }
    qd_info("conn %llu uid %u pid %d: %s", c->serial, (unsigned)c->uid, (int)c->pid,
            qp_methods[msg->method].name);
    dispatch(c->s);
}

static void fill_status(struct sup *s, struct qp_status *st, bool stats)
{
    struct qt_cache_entry *e = NULL;
    size_t n = 0;
    struct qt_diag dg;
    size_t k = 0;

    memset(st, 0, sizeof(*st));
    st->uptime_s = (double)(now_ms(s) - s->started_ms) / 1000.0;
    for (struct chunk *ch = s->iq_head; ch; ch = ch->next)
        st->queue_interactive += ch->n;
    st->queue_batch = s->queued - st->queue_interactive;
    st->inflight = s->inflight;
    st->n_workers = live_workers(s);
    if (qt_cache_list(s->cache, &e, &n, &dg) == 0) {
        st->cache_files = n;
        for (size_t i = 0; i < n; i++)
            st->cache_bytes += e[i].bytes;
        free(e);
    }
    st->cache_budget = s->conf.cache_budget_mb ? (uint64_t)s->conf.cache_budget_mb << 20
                                               : qt_cache_default_budget();
    if (!stats)
        return;
    st->has_stats = true;
    st->items = s->tot.items;
    st->errors = s->tot.errors;
    st->timeouts = s->tot.timeouts;
    st->crashes = s->tot.crashes;
    st->recycled = s->tot.recycled;
    for (struct worker *w = s->workers; w; w = w->next)
        k++;
    st->workers = calloc(k ? k : 1, sizeof(*st->workers));
    if (!st->workers)
        return;
    for (struct worker *w = s->workers; w; w = w->next) {
        struct qp_worker_info *wi = &st->workers[st->n_worker_info++];

        wi->pid = (uint32_t)w->pid;
        snprintf(wi->state, sizeof(wi->state), "%s", wstate_names[w->state]);
        wi->jobs = w->jobs;
        wi->rss_kb = worker_rss_kb(w->pid);
    }
}

static int do_reload(struct sup *s, char *err, size_t errlen);

static void req_admin_local(struct conn *c, const struct qp_msg *msg)
{
    struct sup *s = c->s;
    struct qp_writer w;
    struct qt_diag dg = {0};
    int r = 0;

    qp_writer_init(&w);
    switch (msg->method) {
    case QP_M_STATUS:
    case QP_M_STATS: {
        struct qp_status st;

        fill_status(s, &st, msg->method == QP_M_STATS);
        r = qp_pack_status_result(&w, msg->id, &st, s->conf.max_frame);
        qp_status_done(&st);
        break;
    }
    case QP_M_CANCEL: {
        uint32_t target;
        struct job *jb;

        r = qp_decode_cancel(msg->params, &target, &dg);
        if (r < 0)
            break;
        jb = find_job(c, target);
        jb = jb && jb->kind == JOB_SAMPLES ? jb : NULL;
        r = qp_pack_cancel_result(&w, msg->id, jb != NULL, s->conf.max_frame);
        if (r == 0)
            send_writer(c, &w);
        if (jb)
            job_abort(jb, QT_ST_CANCELLED, "cancelled by the client");
        qp_writer_done(&w);
        return;
    }
    case QP_M_CACHE_LIST: {
        struct qt_cache_entry *e = NULL;
        size_t n = 0;

        r = qt_cache_list(s->cache, &e, &n, &dg);
        if (r == 0)
            r = qp_pack_cache_list_result(&w, msg->id, e, n, s->conf.max_frame);
        free(e);
        break;
    }
    case QP_M_CACHE_EVICT: {
        char id[64];
        size_t d, n = 0;
        struct qt_cache_entry *e = NULL;
        uint64_t bytes = 0;

        r = qp_decode_design_d(msg->params, QT_DESIGN_MAX_DIM, id, sizeof(id), &d, &dg);
        if (r == 0 && (!id[0] || !d))
            r = qt_diag_set(&dg, QT_EPARSE, 0, 0, "design and d are required");
        if (r == 0 && qt_cache_list(s->cache, &e, &n, &dg) == 0)
            for (size_t i = 0; i < n; i++)
                if (strcmp(e[i].id, id) == 0 && e[i].d == d)
                    bytes = e[i].bytes;
        free(e);
        if (r == 0)
            r = qt_cache_evict(s->cache, id, d, &dg);
        if (r == -EBUSY) {
            qp_writer_done(&w);
            send_error(c, msg->id, QT_ST_BUSY, dg.msg, 1000);
            return;
        }
        if (r == 0) {
            qd_info("conn %llu uid %u: evicted %s d = %zu", c->serial, (unsigned)c->uid, id, d);
            r = qp_pack_u64_result(&w, msg->id, "bytes", bytes, s->conf.max_frame);
        }
        break;
    }
    case QP_M_RELOAD: {
        char err[512];

        if (do_reload(s, err, sizeof(err)) < 0) {
            qp_writer_done(&w);
            send_error(c, msg->id, QT_ST_INVALID_PARAMS, err, -1);
            return;
        }
        r = qp_pack_u64_result(&w, msg->id, "generation", s->generation, s->conf.max_frame);
        break;
    }
    default:
        r = -ENOSYS;
    }
    if (r < 0) {
        qp_writer_reset(&w);
        send_error(c, msg->id, qt_status_from_err(r), dg.msg[0] ? dg.msg : qt_strerror(r), -1);
    } else {
        send_writer(c, &w);
    }
    qp_writer_done(&w);
}

static void req_hello(struct conn *c, const struct qp_msg *msg)
{
    static const char *const features[] = {NULL};
    struct sup *s = c->s;
    struct qp_hello h;
    struct qp_server_info si = {0};
    struct qt_diag dg = {0};
    struct qp_writer w;

    if (c->hello_done) {
        send_error(c, msg->id, QT_ST_INVALID_REQUEST, "hello was already done", -1);
        return;
    }
    if (qp_decode_hello(msg->params, &h, &dg) < 0) {
        send_error(c, msg->id, QT_ST_INVALID_PARAMS, dg.msg, -1);
        return;
    }
    if (h.major != QP_VERSION_MAJOR) {
        char m[128];

        snprintf(m, sizeof(m), "protocol %u.%u is not supported; this server speaks %u.%u",
                 h.major, h.minor, QP_VERSION_MAJOR, QP_VERSION_MINOR);
        send_error(c, msg->id, QT_ST_UNSUPPORTED_PROTOCOL, m, -1);
        send_bye(c, "protocol", -1);
        conn_close(c);
        return;
    }
    c->hello_done = true;
    si.major = QP_VERSION_MAJOR;
    si.minor = QP_VERSION_MINOR; /* the lower minor wins; 0 is the lowest there is */
    snprintf(si.server, sizeof(si.server), "qtomod/%s", QTOMO_VERSION);
    si.max_frame = s->conf.max_frame;
    si.max_dim = s->conf.max_dim;
    si.max_batch = s->conf.max_batch;
    si.max_inflight = s->conf.max_inflight;
    si.max_item_ms = s->conf.max_item_ms;
    si.workers = s->conf.workers;
    si.features = features;
    qp_writer_init(&w);
    if (qp_pack_hello_result(&w, msg->id, &si, s->conf.max_frame) == 0)
        send_writer(c, &w);
    qp_writer_done(&w);
    qd_debug("conn %llu: hello from %s", c->serial, h.client[0] ? h.client : "?");
}

static void conn_request(struct conn *c, const struct qp_msg *msg)
{
    struct sup *s = c->s;
    int m = msg->method;

    if (m < 0 || qp_methods[m].dir != QP_C2S_REQUEST) {
        char t[96];

        snprintf(t, sizeof(t), "unknown method '%s'", msg->method_name);
        send_error(c, msg->id, QT_ST_METHOD_NOT_FOUND, t, -1);
        return;
    }
    if (m == QP_M_HELLO) {
        req_hello(c, msg);
        return;
    }
    if (!c->hello_done) {
        send_error(c, msg->id, QT_ST_INVALID_REQUEST, "hello must come first", -1);
        return;
    }
    if (find_job(c, msg->id)) {
        send_error(c, msg->id, QT_ST_INVALID_REQUEST, "this id is already in flight", -1);
        return;
    }
    if (qp_methods[m].admin && !c->admin) {
        qd_notice("conn %llu uid %u pid %d: %s refused (not admin)", c->serial, (unsigned)c->uid,
                  (int)c->pid, qp_methods[m].name);
        send_error(c, msg->id, QT_ST_PERMISSION_DENIED,
                   "this method needs root, the daemon's user or the admin group", -1);
        return;
    }
    if (s->draining && m != QP_M_STATUS && m != QP_M_STATS && m != QP_M_CANCEL) {
        send_error(c, msg->id, QT_ST_SHUTTING_DOWN, "the server is shutting down", -1);
        return;
    }
    switch (m) {
    case QP_M_RECONSTRUCT:
    case QP_M_SUBMIT:
    case QP_M_DESIGN_PUT:
    case QP_M_CACHE_WARM:
    case QP_M_CACHE_VERIFY:
        if (c->inflight >= s->conf.max_inflight) {
            send_error(c, msg->id, QT_ST_BUSY, "too many requests in flight on this connection",
                       BUSY_RETRY_MS);
            return;
        }
        if (m == QP_M_RECONSTRUCT || m == QP_M_SUBMIT)
            req_samples(c, msg);
        else
            req_task(c, msg);
        return;
    default:
        req_admin_local(c, msg);
    }
}

static void conn_frame(struct conn *c, const uint8_t *body, uint32_t len)
{
    struct qp_msg msg;
    struct qt_diag dg = {0};
    int r = qp_msg_decode(body, len, &msg, &dg);

    if (r < 0) {
        if (msg.id_valid && msg.type == QP_REQUEST) {
            send_error(c, msg.id, qp_msg_status(&msg), dg.msg, -1);
        } else {
            struct qp_writer w;

            qd_notice("conn %llu uid %u: unreadable frame: %s", c->serial, (unsigned)c->uid,
                      dg.msg);
            qp_writer_init(&w);
            if (qp_write_protocol_error(&w, qp_msg_status(&msg), dg.msg, c->s->conf.max_frame) ==
                0)
                send_writer(c, &w);
            qp_writer_done(&w);
            conn_close(c);
        }
    } else if (msg.type != QP_REQUEST) {
        struct qp_writer w;

        qp_writer_init(&w);
        if (qp_write_protocol_error(&w, QT_ST_INVALID_REQUEST, "clients send only requests",
                                    c->s->conf.max_frame) == 0)
            send_writer(c, &w);
        qp_writer_done(&w);
        conn_close(c);
    } else {
        conn_request(c, &msg);
    }
    qp_msg_done(&msg);
}

/* ---- connections ---- */

static void conn_freed(uv_handle_t *h)
{
    struct conn *c = h->data;

    free(c->fr.buf);
    free(c);
}

static void conn_close(struct conn *c)
{
    struct sup *s = c->s;

    if (c->closing)
        return;
    c->closing = true;
    /* Closing the connection cancels everything on it. */
    for (struct job *jb = c->jobs, *next; jb; jb = next) {
        next = jb->next;
        if (!jb->finished) {
            job_log_end(jb, "cancelled (connection closed)");
            job_finish(jb);
        }
        jb->conn = NULL;
        jb->prev = jb->next = NULL;
        job_free_if_done(jb);
    }
    c->jobs = NULL;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    uv_close((uv_handle_t *)&c->h, conn_freed);
}

static void conn_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct conn *c = h->data;

    (void)suggested;
    framer_alloc(&c->fr, b);
}

static void conn_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct conn *c = st->data;
    size_t off = 0;
    const uint8_t *body;
    uint32_t len;
    int r;

    (void)b;
    if (nread == UV_ENOBUFS) {
        qd_err("conn %llu: out of memory for its input", c->serial);
        conn_close(c);
        return;
    }
    if (nread < 0) {
        conn_close(c);
        return;
    }
    c->fr.len += (size_t)nread;
    while (!c->closing &&
           (r = framer_next(&c->fr, &off, c->s->conf.max_frame, &body, &len)) == 1)
        conn_frame(c, body, len);
    if (c->closing)
        return;
    if (r < 0) {
        struct qp_writer w;

        qd_notice("conn %llu uid %u: %s frame header; closing", c->serial, (unsigned)c->uid,
                  r == QT_ETOOBIG ? "oversize" : "empty");
        qp_writer_init(&w);
        if (qp_write_protocol_error(&w, r == QT_ETOOBIG ? QT_ST_TOO_LARGE : QT_ST_PARSE_ERROR,
                                    r == QT_ETOOBIG ? "frame longer than max_frame"
                                                    : "empty frame",
                                    c->s->conf.max_frame) == 0)
            send_writer(c, &w);
        qp_writer_done(&w);
        conn_close(c);
        return;
    }
    framer_consume(&c->fr, off);
}

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

static void on_connection(uv_stream_t *l, int status)
{
    struct sup *s = l->data;
    struct conn *c;
    struct ucred cr;
    socklen_t crl = sizeof(cr);
    uv_os_fd_t fd;

    if (status < 0) {
        qd_warn("accept: %s", uv_strerror(status));
        return;
    }
    c = calloc(1, sizeof(*c));
    if (!c)
        return;
    c->s = s;
    uv_pipe_init(s->loop, &c->h, 0);
    c->h.data = c;
    if (uv_accept(l, (uv_stream_t *)&c->h) < 0) {
        uv_close((uv_handle_t *)&c->h, conn_freed);
        return;
    }
    c->serial = ++s->conn_serial;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_fileno((uv_handle_t *)&c->h, &fd) == 0 &&
        getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &crl) == 0) {
        c->uid = cr.uid;
        c->gid = cr.gid;
        c->pid = cr.pid;
    }
    {
        struct group *g = s->conf.admin_group[0] ? getgrnam(s->conf.admin_group) : NULL;

        c->admin = c->uid == 0 || c->uid == geteuid() ||
                   (g && peer_in_group(c->pid, c->gid, g->gr_gid));
    }
    qd_info("conn %llu: uid %u gid %u pid %d%s", c->serial, (unsigned)c->uid, (unsigned)c->gid,
            (int)c->pid, c->admin ? " (admin)" : "");
    if (s->n_conns > s->conf.max_connections || s->draining) {
        send_bye(c, s->draining ? "shutdown" : "busy", s->draining ? -1 : 1000);
        conn_close(c);
        return;
    }
    uv_read_start((uv_stream_t *)&c->h, conn_alloc, conn_read);
}

/* ---- listening ---- */

static int listen_socket(struct sup *s)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names), fd = -1, r;

    if (n < 0) {
        qd_err("sd_listen_fds: %s", strerror(-n));
        return n;
    }
    for (int i = 0; i < n; i++) {
        if (fd < 0 && sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_STREAM, 1, NULL, 0) > 0)
            fd = SD_LISTEN_FDS_START + i;
        else
            close(SD_LISTEN_FDS_START + i);
        free(names ? names[i] : NULL);
    }
    free(names);
    uv_pipe_init(s->loop, &s->listener, 0);
    s->listener.data = s;
    if (n > 0) {
        if (fd < 0) {
            qd_err("socket activation: none of the %d descriptors is a listening Unix stream socket", n);
            return -EINVAL;
        }
        r = uv_pipe_open(&s->listener, fd);
        s->activated = true;
        qd_info("listening on the socket-activated descriptor %d", fd);
    } else {
        char dir[sizeof(s->conf.socket)], *slash;
        struct sockaddr_un sa;
        int probe;

        if (strlen(s->conf.socket) >= sizeof(sa.sun_path)) {
            qd_err("socket path %s is longer than %zu bytes", s->conf.socket,
                   sizeof(sa.sun_path) - 1);
            return -ENAMETOOLONG;
        }
        snprintf(dir, sizeof(dir), "%s", s->conf.socket);
        slash = strrchr(dir, '/');
        if (slash && slash != dir) {
            *slash = '\0';
            if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
                qd_err("cannot create %s: %s", dir, strerror(errno));
                return -errno;
            }
        }
        /* A socket file that nobody answers on is stale; a live one means another qtomod. */
        memset(&sa, 0, sizeof(sa));
        sa.sun_family = AF_UNIX;
        memcpy(sa.sun_path, s->conf.socket, strlen(s->conf.socket));
        probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (probe >= 0 && connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
            close(probe);
            qd_err("another qtomod is listening on %s", s->conf.socket);
            return -EADDRINUSE;
        }
        if (probe >= 0)
            close(probe);
        (void)unlink(s->conf.socket);
        r = uv_pipe_bind(&s->listener, s->conf.socket);
        if (r == 0 && chmod(s->conf.socket, s->conf.socket_mode) < 0)
            r = -errno;
        if (r == 0 && s->conf.socket_group[0]) {
            struct group *g = getgrnam(s->conf.socket_group);

            if (!g || chown(s->conf.socket, (uid_t)-1, g->gr_gid) < 0) {
                qd_err("socket group %s: %s", s->conf.socket_group,
                       g ? strerror(errno) : "no such group");
                return -EINVAL;
            }
        }
        if (r < 0) {
            qd_err("cannot bind %s: %s", s->conf.socket, uv_strerror(r));
            return r;
        }
        qd_info("listening on %s (mode %04o)", s->conf.socket, s->conf.socket_mode);
    }
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (r < 0) {
        qd_err("listen: %s", uv_strerror(r));
        return r;
    }
    s->listening = true;
    return 0;
}

/* ---- reload, shutdown ---- */

static int do_reload(struct sup *s, char *err, size_t errlen)
{
    struct qd_conf nc;
    int r;

    (void)sd_notify(0, "RELOADING=1\nSTATUS=reloading");
    r = qd_conf_build(&nc, s->conf_path, s->argc, s->argv, err, errlen);
    if (r < 0) {
        qd_err("reload: %s; keeping the running configuration", err);
        (void)sd_notify(0, "READY=1");
        s->status_line[0] = '\0';
        notify_status(s);
        return r;
    }
    if (strcmp(nc.socket, s->conf.socket) != 0)
        qd_warn("reload: socket changes need a restart; still on %s", s->conf.socket);
    snprintf(nc.socket, sizeof(nc.socket), "%s", s->conf.socket);
    if (strcmp(nc.cache_dir, s->conf.cache_dir) != 0)
        qd_warn("reload: cache-dir changes need a restart; still %s", s->conf.cache_dir);
    snprintf(nc.cache_dir, sizeof(nc.cache_dir), "%s", s->conf.cache_dir);
    s->conf = nc;
    qd_log_set_level((int)nc.log_level);
    s->generation++;
    /* Roll the pool: new workers first, then the old ones finish their item and exit. */
    for (struct worker *w = s->workers; w; w = w->next)
        if (w->state != W_EXITING && w->state != W_RETIRING)
            worker_retire(w);
    for (unsigned i = 0; i < s->conf.workers; i++)
        worker_spawn(s);
    qd_notice("reloaded: generation %llu, %u workers", (unsigned long long)s->generation,
              s->conf.workers);
    (void)sd_notify(0, "READY=1");
    s->status_line[0] = '\0';
    notify_status(s);
    return 0;
}

static void stop_now(struct sup *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        for (struct job *jb = c->jobs; jb; jb = jb->next)
            if (!jb->finished)
                job_abort(jb, QT_ST_SHUTTING_DOWN, "the server stopped before this finished");
        send_bye(c, "shutdown", -1);
        conn_close(c);
    }
    for (struct worker *w = s->workers; w; w = w->next) {
        if (w->chan_open) {
            w->chan_open = false;
            uv_close((uv_handle_t *)&w->chan, NULL);
        }
        w->state = W_EXITING;
        (void)uv_process_kill(&w->proc, SIGTERM);
        w->kill_at = now_ms(s) + 2000;
    }
    if (!s->workers)
        uv_stop(s->loop);
}

static void begin_drain(struct sup *s)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_deadline = now_ms(s) + s->conf.drain_timeout_ms;
    qd_notice("stopping: draining for up to %u ms", s->conf.drain_timeout_ms);
    (void)sd_notify(0, "STOPPING=1\nSTATUS=draining");
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
        if (!s->activated)
            (void)unlink(s->conf.socket);
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    struct sup *s = h->data;

    if (sig == SIGHUP) {
        char err[512];

        qd_notice("SIGHUP: reloading the configuration");
        (void)do_reload(s, err, sizeof(err));
        dispatch(s);
        return;
    }
    if (s->draining) {
        qd_notice("second stop signal: stopping now");
        stop_now(s);
        return;
    }
    begin_drain(s);
}

static void on_tick(uv_timer_t *t)
{
    struct sup *s = t->data;
    uint64_t now = now_ms(s);

    for (struct worker *w = s->workers; w; w = w->next) {
        if (w->kill_at && now >= w->kill_at) {
            (void)uv_process_kill(&w->proc, SIGKILL);
            w->kill_at = now + 1000;
        } else if (w->state == W_BUSY && w->cur && !w->timed_out && now >= w->deadline) {
            qd_err("worker %d: item past its deadline (%llu ms); SIGABRT", w->pid,
                   (unsigned long long)(now - w->t_dispatch));
            w->timed_out = true;
            (void)uv_process_kill(&w->proc, SIGABRT);
            w->kill_at = now + s->conf.kill_grace_ms;
        }
    }
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->blocked_since && now - c->blocked_since > s->conf.idle_write_ms) {
            qd_notice("conn %llu uid %u: not reading its results for %u ms; closing", c->serial,
                      (unsigned)c->uid, s->conf.idle_write_ms);
            send_bye(c, "idle", 0);
            conn_close(c);
            continue;
        }
        for (struct job *jb = c->jobs; jb; jb = jb->next)
            maybe_progress(jb, now, false);
    }
    if (s->draining && !s->stopping && (s->inflight == 0 || now >= s->drain_deadline))
        stop_now(s);
    notify_status(s);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

int qd_sup_main(const struct qd_conf *conf, const char *conf_path, int argc, char **argv)
{
    struct sup s = {0};
    struct qt_cache_config cc = {.budget = (uint64_t)conf->cache_budget_mb << 20};
    struct qt_diag dg = {0};
    uint64_t wd_usec = 0;
    ssize_t n;
    int r;

    s.conf = *conf;
    s.conf_path = conf_path;
    s.argc = argc;
    s.argv = argv;
    s.loop = uv_default_loop();
    s.started_ms = now_ms(&s);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid());
    n = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);
    if (n <= 0) {
        qd_err("cannot find my own executable: %s", strerror(errno));
        return QD_EXIT_INIT;
    }
    s.exe[n] = '\0';
    if (mkdir(s.conf.cache_dir, 0750) < 0 && errno != EEXIST && errno != ENOENT)
        qd_warn("cache directory %s: %s", s.conf.cache_dir, strerror(errno));
    r = qt_cache_open(s.conf.cache_dir, &cc, &s.cache, &dg);
    if (r < 0) {
        qd_err("cache %s: %s", s.conf.cache_dir, dg.msg);
        (void)sd_notifyf(0, "ERRNO=%d\nSTATUS=cannot open the cache", -r);
        return QD_EXIT_INIT;
    }
    if (listen_socket(&s) < 0) {
        qt_cache_close(s.cache);
        (void)sd_notify(0, "STATUS=cannot listen");
        return QD_EXIT_INIT;
    }
    {
        const char *ct = getenv("OPENBLAS_CORETYPE");
        const char *adv = ct ? NULL : qt_blas_coretype_advice();

        qd_notice("qtomod %s starting: %u workers, OpenBLAS kernels %s%s", QTOMO_VERSION,
                  s.conf.workers, ct ? ct : adv ? adv : "as detected",
                  ct ? " (OPENBLAS_CORETYPE)" : adv ? " (chosen for this CPU)" : "");
    }
    uv_signal_init(s.loop, &s.sig_term);
    uv_signal_init(s.loop, &s.sig_int);
    uv_signal_init(s.loop, &s.sig_hup);
    s.sig_term.data = s.sig_int.data = s.sig_hup.data = &s;
    uv_signal_start(&s.sig_term, on_signal, SIGTERM);
    uv_signal_start(&s.sig_int, on_signal, SIGINT);
    uv_signal_start(&s.sig_hup, on_signal, SIGHUP);
    uv_timer_init(s.loop, &s.tick);
    s.tick.data = &s;
    uv_timer_start(&s.tick, on_tick, TICK_MS, TICK_MS);
    if (sd_watchdog_enabled(1, &wd_usec) > 0 && wd_usec >= 2000) {
        uv_timer_init(s.loop, &s.watchdog);
        uv_timer_start(&s.watchdog, on_watchdog, wd_usec / 2000, wd_usec / 2000);
    }
    for (unsigned i = 0; i < s.conf.workers; i++)
        worker_spawn(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* Stopped: close what is left and let the close callbacks run. */
    if (s.listening && !s.activated)
        (void)unlink(s.conf.socket);
    uv_walk(s.loop, walk_close, NULL);
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* Work still queued (stop_now ended its requests): free it with its jobs. */
    for (struct chunk *ch;
         (ch = chunk_pop(&s.iq_head, &s.iq_tail)) || (ch = chunk_pop(&s.rq_head, &s.rq_tail));)
        chunk_done(&s, ch);
    (void)uv_loop_close(s.loop);
    qt_cache_close(s.cache);
    qd_notice("stopped");
    return s.exit_code;
}
