/* Requests: a frame is decoded, checked (qd_check.c), and either answered here (hello, status,
 * cancel, cache.list, cache.evict, reload) or admitted to the scheduler as a job whose results
 * stream back through qd_req_deliver. Each request gets exactly one final answer. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "qd_log.h"
#include "qd_sup.h"

#ifndef QTOMO_VERSION
#    define QTOMO_VERSION "0.0.0"
#endif

/* ---- jobs ---- */

static struct djob *find_job(struct conn *c, uint32_t id)
{
    for (struct djob *jb = c->jobs; jb; jb = jb->next)
        if (jb->req.id == id && !jb->sj.finished)
            return jb;
    return NULL;
}

static struct djob *job_new(struct conn *c, struct qd_req *req)
{
    struct djob *jb = calloc(1, sizeof(*jb));

    if (!jb)
        return NULL;
    jb->s = c->s;
    jb->conn = c;
    jb->req = *req; /* takes the decoded job's arrays */
    qp_job_init(&req->job);
    jb->req.params = NULL; /* points into the frame; tasks copy it first (req_task) */
    jb->t_recv = qd_now_ms(c->s);
    jb->last_progress = jb->t_recv;
    msgpack_sbuffer_init(&jb->task);
    msgpack_sbuffer_init(&jb->fields);
    jb->next = c->jobs;
    if (c->jobs)
        c->jobs->prev = jb;
    c->jobs = jb;
    c->inflight++;
    return jb;
}

static void job_unlink_free(struct djob *jb)
{
    if (jb->conn) {
        if (jb->prev)
            jb->prev->next = jb->next;
        else
            jb->conn->jobs = jb->next;
        if (jb->next)
            jb->next->prev = jb->prev;
    }
    qd_req_done(&jb->req);
    qd_boot_free(jb->boot);
    free(jb->values_buf);
    msgpack_sbuffer_destroy(&jb->task);
    msgpack_sbuffer_destroy(&jb->fields);
    free(jb);
}

/* The request got (or will never get) its final answer. May free jb. */
static void job_end(struct djob *jb)
{
    if (jb->sj.finished)
        return;
    if (jb->conn)
        jb->conn->inflight--;
    if (jb->sj.admitted) {
        qd_sched_finish(&jb->s->sched, &jb->sj);
        return;
    }
    jb->sj.finished = true;
    job_unlink_free(jb);
}

static void sched_release(void *ud, struct qd_job *job)
{
    (void)ud;
    job_unlink_free(djob_of(job));
}

static bool sched_paused(void *ud, const struct qd_job *job)
{
    const struct djob *jb =
        (const struct djob *)((const char *)job - __builtin_offsetof(struct djob, sj));

    (void)ud;
    return jb->conn && jb->conn->blocked_since != 0;
}

/* Samples answered, failed and asked for (with error bars the scheduler counts units). */
static void job_counts(const struct djob *jb, uint64_t *done, uint64_t *failed, uint64_t *n)
{
    *done = jb->boot ? jb->s_done : jb->sj.done;
    *failed = jb->boot ? jb->s_failed : jb->sj.failed;
    *n = jb->boot ? jb->req.job.n : jb->sj.n;
}

static void job_totals(const struct djob *jb, struct qp_totals *t, uint64_t now)
{
    uint64_t done, failed, n;

    job_counts(jb, &done, &failed, &n);
    t->n_ok = done - failed;
    t->n_err = failed;
    t->n_cancelled = n - done;
    t->elapsed_ms = (double)(now - jb->t_recv);
}

static void job_log_end(struct djob *jb, const char *how)
{
    struct qp_totals t;
    struct conn *c = jb->conn;

    job_totals(jb, &t, qd_now_ms(jb->s));
    qd_log(jb->req.method == QP_M_SUBMIT ? QD_LOG_INFO : QD_LOG_DEBUG,
           "conn %llu uid %u pid %d: %s #%u %s: %llu ok, %llu failed, %llu cancelled, %.0f ms",
           c ? c->serial : 0ULL, c ? (unsigned)c->uid : 0U, c ? (int)c->pid : 0,
           qp_methods[jb->req.method].name, jb->req.id, how, (unsigned long long)t.n_ok,
           (unsigned long long)t.n_err, (unsigned long long)t.n_cancelled, t.elapsed_ms);
}

void qd_req_abort(struct djob *jb, int code, const char *msg)
{
    if (jb->sj.finished)
        return;
    if (jb->conn) {
        struct qp_writer w;
        struct qp_totals t;
        uint32_t mf = jb->s->conf.max_frame;
        int r;

        qp_writer_init(&w);
        job_totals(jb, &t, qd_now_ms(jb->s));
        r = jb->req.method == QP_M_SUBMIT ? qp_write_error_totals(&w, jb->req.id, code, msg, &t, mf)
                                          : qp_write_error(&w, jb->req.id, code, msg, -1, mf);
        if (r == 0)
            qd_conn_send(jb->conn, &w);
        qp_writer_done(&w);
    }
    job_log_end(jb, code == QT_ST_CANCELLED ? "cancelled" : "stopped");
    job_end(jb);
}

void qd_req_conn_gone(struct conn *c)
{
    struct djob *jb, *next;

    for (jb = c->jobs; jb; jb = next) {
        next = jb->next;
        if (!jb->sj.finished) {
            job_log_end(jb, "cancelled (connection closed)");
            job_end(jb); /* may free jb */
        }
    }
    for (jb = c->jobs; jb; jb = next) { /* still referenced by running items */
        next = jb->next;
        jb->conn = NULL;
        jb->prev = jb->next = NULL;
    }
    c->jobs = NULL;
}

/* ---- results ---- */

static void maybe_progress(struct djob *jb, uint64_t now, bool force)
{
    struct qp_progress p;
    struct qp_writer w;
    double rate;

    if (!jb->conn || jb->sj.finished || jb->req.method != QP_M_SUBMIT ||
        jb->req.job.progress_ms == 0)
        return;
    if (!force && now - jb->last_progress < jb->req.job.progress_ms)
        return;
    jb->last_progress = now;
    p.request = jb->req.id;
    job_counts(jb, &p.done, &p.failed, &p.total);
    if (jb->boot) { /* units say more than samples when a few samples take long */
        rate = jb->sj.done ? (double)(now - jb->t_recv) / (double)jb->sj.done : 0.0;
        p.eta_ms = jb->sj.done ? (int64_t)(rate * (double)(jb->sj.n - jb->sj.done)) : -1;
    } else {
        rate = p.done ? (double)(now - jb->t_recv) / (double)p.done : 0.0;
        p.eta_ms = p.done ? (int64_t)(rate * (double)(p.total - p.done)) : -1;
    }
    qp_writer_init(&w);
    if (qp_pack_progress(&w, &p, jb->s->conf.max_frame) == 0)
        qd_conn_send(jb->conn, &w);
    qp_writer_done(&w);
}

void qd_req_tick(struct conn *c, uint64_t now)
{
    for (struct djob *jb = c->jobs; jb; jb = jb->next)
        maybe_progress(jb, now, false);
}

static int pack_sample(struct qp_writer *w, const struct djob *jb, size_t col, const void *results,
                       size_t len, const msgpack_sbuffer *unc, double queue_ms, double compute_ms,
                       int pid)
{
    uint32_t mf = jb->s->conf.max_frame;
    const void *u = unc ? unc->data : NULL;
    size_t ulen = unc ? unc->size : 0;

    if (jb->req.method == QP_M_RECONSTRUCT)
        return qp_pack_reconstruct_result_raw(w, jb->req.id, results, len, u, ulen, queue_ms,
                                              compute_ms, pid, mf);
    return qp_pack_result_notify_raw(w, jb->req.id, jb->req.job.first_index + col, results, len,
                                     u, ulen, compute_ms, mf);
}

/* After a sample: the reconstruct's end, or the submit's progress and, at the last, totals. */
static void after_sample(struct djob *jb)
{
    struct sup *s = jb->s;
    struct qp_writer w;
    struct qp_totals t;

    uint64_t done, failed, n;

    job_counts(jb, &done, &failed, &n);
    if (jb->req.method == QP_M_RECONSTRUCT && done == n) {
        job_log_end(jb, "done");
        job_end(jb);
        return;
    }
    maybe_progress(jb, qd_now_ms(s), false);
    if (done != n)
        return;
    qp_writer_init(&w);
    job_totals(jb, &t, qd_now_ms(s));
    if (qp_pack_submit_result(&w, jb->req.id, &t, s->conf.max_frame) == 0 && jb->conn)
        qd_conn_send(jb->conn, &w);
    qp_writer_done(&w);
    job_log_end(jb, "done");
    job_end(jb);
}

/* Sends one sample's answer (results and, with error bars, unc) and counts it. */
static void send_sample(struct djob *jb, size_t col, const void *results, size_t len,
                        const msgpack_sbuffer *unc, bool ok, double queue_ms, double compute_ms,
                        int worker_pid)
{
    struct qp_writer w;
    int r;

    qp_writer_init(&w);
    r = jb->conn ? pack_sample(&w, jb, col, results, len, unc, queue_ms, compute_ms, worker_pid)
                 : 0;
    if (r == QT_ETOOBIG) { /* SCHEMA Decisions 13: the sample still gets exactly one result */
        msgpack_sbuffer sb;
        msgpack_packer pk;

        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        qp_pack_error_results(&pk, jb->req.meth, jb->req.nm, jb->req.job.d, QT_ETOOBIG,
                              "the result does not fit in max-frame");
        ok = false;
        r = pack_sample(&w, jb, col, sb.data, sb.size, NULL, queue_ms, compute_ms, worker_pid);
        msgpack_sbuffer_destroy(&sb);
    }
    if (jb->boot) {
        jb->s_done++;
        jb->s_failed += !ok;
    } else {
        (void)qd_sched_delivered(&jb->s->sched, &jb->sj, col, ok);
    }
    if (r == 0 && jb->conn)
        qd_conn_send(jb->conn, &w);
    qp_writer_done(&w);
    after_sample(jb);
}

/* A unit of resamples answered: when it was its sample's last, the sample's answer goes out. */
static void deliver_unit(struct djob *jb, size_t unit, const void *results, size_t len, bool ok,
                         double queue_ms, double compute_ms, int worker_pid,
                         const msgpack_object *rows)
{
    char why[200];
    const void *pres;
    size_t plen, sample = 0;
    bool pok;
    double us;
    uint32_t k0, cnt;
    msgpack_sbuffer unc;
    int r = qd_boot_unit(jb->boot, unit, results, len, ok, rows, compute_ms * 1000.0, why,
                         sizeof(why));

    (void)qd_sched_delivered(&jb->s->sched, &jb->sj, unit, true);
    qd_boot_unit_range(jb->boot, unit, &sample, &k0, &cnt);
    if (why[0])
        qd_warn("%s #%u: %s", qp_methods[jb->req.method].name, jb->req.id, why);
    if (r == -ENOMEM) {
        qd_req_abort(jb, QT_ST_INTERNAL, "out of memory collecting error bars");
        return;
    }
    if (r == 0)
        return;
    msgpack_sbuffer_init(&unc);
    r = qd_boot_finish(jb->boot, sample, &pres, &plen, &pok, &unc, &us);
    if (r < 0) {
        msgpack_sbuffer_destroy(&unc);
        qd_req_abort(jb, QT_ST_INTERNAL, "error bars could not be reduced");
        return;
    }
    send_sample(jb, sample, pres, plen, &unc, pok, queue_ms, us / 1000.0, worker_pid);
    msgpack_sbuffer_destroy(&unc);
    if (jb->boot) /* the job may have ended: after_sample frees it only once released */
        qd_boot_release(jb->boot, sample);
}

void qd_req_deliver(struct djob *jb, size_t col, const void *results, size_t len, bool ok,
                    double queue_ms, double compute_ms, int worker_pid,
                    const msgpack_object *boot)
{
    if (!qd_sched_pending(&jb->sj, col))
        return;
    if (jb->boot)
        deliver_unit(jb, col, results, len, ok, queue_ms, compute_ms, worker_pid, boot);
    else
        send_sample(jb, col, results, len, NULL, ok, queue_ms, compute_ms, worker_pid);
}

static void sched_fail(void *ud, struct qd_job *job, size_t col, int err, const char *msg, int pid)
{
    struct djob *jb = djob_of(job);
    msgpack_sbuffer sb;
    msgpack_packer pk;

    (void)ud;
    if (jb->sj.kind == QD_JOB_TASK) {
        if (jb->conn && qd_sched_pending(&jb->sj, 0))
            qd_conn_send_error(jb->conn, jb->req.id, qt_status_from_err(err), msg, -1);
        (void)qd_sched_delivered(&jb->s->sched, &jb->sj, 0, false);
        job_end(jb);
        return;
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    qp_pack_error_results(&pk, jb->req.meth, jb->req.nm, jb->req.job.d, err, msg);
    qd_req_deliver(jb, col, sb.data, sb.size, false, 0.0, 0.0, pid, NULL);
    msgpack_sbuffer_destroy(&sb);
}

const struct qd_sched_ops qd_req_sched_ops = {
    .start = qd_pool_start,
    .fail = sched_fail,
    .kill = qd_pool_kill,
    .paused = sched_paused,
    .release = sched_release,
    .cpu_wait = qd_pool_cpu_wait,
    .yield = qd_pool_yield,
    .rt = qd_pool_rt,
};

void qd_req_task_answer(struct djob *jb, const struct qp_msg *msg)
{
    struct sup *s = jb->s;
    struct qt_diag dg = {0};
    struct qp_writer wr;
    bool ok = msg->error->type != MSGPACK_OBJECT_MAP;

    if (!qd_sched_pending(&jb->sj, 0))
        return;
    qp_writer_init(&wr);
    if (!ok) {
        struct qp_error e;

        if (qp_decode_error(msg->error, &e, &dg) < 0) {
            e.code = QT_ST_INTERNAL;
            snprintf(e.message, sizeof(e.message), "the worker's error was unreadable: %.180s",
                     dg.msg);
        }
        if (jb->conn)
            qd_conn_send_error(jb->conn, jb->req.id, e.code, e.message, -1);
    } else {
        qp_begin_response(&wr, jb->req.id);
        (void)msgpack_pack_object(&wr.pk, *msg->result);
        if (qp_frame_end(&wr, s->conf.max_frame) < 0) {
            ok = false;
            if (jb->conn)
                qd_conn_send_error(jb->conn, jb->req.id, QT_ST_TOO_LARGE,
                                   "the answer does not fit in max-frame", -1);
        } else if (jb->conn) {
            qd_conn_send(jb->conn, &wr);
        }
    }
    qp_writer_done(&wr);
    if (jb->conn)
        qd_info("conn %llu uid %u: %s %s", jb->conn->serial, (unsigned)jb->conn->uid,
                qp_methods[jb->req.method].name, ok ? "done" : "failed");
    (void)qd_sched_delivered(&s->sched, &jb->sj, 0, ok);
    job_end(jb);
}

/* ---- requests that need workers ---- */

static void admit(struct conn *c, struct djob *jb)
{
    int r = qd_sched_admit(&c->s->sched, &jb->sj);

    if (r == -EBUSY)
        qd_conn_send_error(c, jb->req.id, QT_ST_BUSY, "the queue is full; retry later",
                           QD_BUSY_RETRY_MS);
    else if (r < 0)
        qd_conn_send_error(c, jb->req.id, QT_ST_INTERNAL, "out of memory", -1);
    if (r < 0) {
        job_end(jb);
        return;
    }
    qd_sched_dispatch(&c->s->sched, qd_now_ms(c->s));
}

/* The checked job's values still point into the frame being read (qp_decode_job_ref): keep
 * that frame's buffer when it is large and not much larger than the frame (qd_flow), so that a
 * 50 MB submit is not copied on the loop, and copy the values otherwise. */
static int own_values(struct djob *jb, struct conn *c, uint32_t len)
{
    struct qp_job *j = &jb->req.job;
    size_t bytes = j->m * j->n * sizeof(double);

    if (!j->values_le)
        return 0;
    if (qd_flow_keep_frame_buffer(qp_framer_capacity(&c->fr), (size_t)len + QP_HEADER_LEN) &&
        (jb->values_buf = qp_framer_take(&c->fr)) != NULL)
        return 0;
    jb->values_buf = malloc(bytes ? bytes : 1);
    if (!jb->values_buf)
        return -ENOMEM;
    memcpy(jb->values_buf, j->values_le, bytes);
    j->values_le = jb->values_buf;
    return 0;
}

/* Error bars: the seed (when the client left it to us), the cut into units of resamples, and
 * the scheduler's columns as units, one per item. Answers the request itself on error. */
static int boot_setup(struct conn *c, struct djob *jb)
{
    struct qt_boot_req *b = &jb->req.job.boot;
    uint32_t per = 0, parts = 0;
    int r;

    if (!b->has_seed) {
        uint64_t seed = 0;

        if (getrandom(&seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
            qd_conn_send_error(c, jb->req.id, QT_ST_INTERNAL, "cannot choose a seed", -1);
            return -EIO;
        }
        b->seed = seed & QT_BOOT_MAX_SEED;
        b->has_seed = true;
    }
    r = qd_boot_plan(b->resamples, jb->req.nm, jb->req.job.d, c->s->conf.workers, &per, &parts);
    if (r == 0)
        r = qd_boot_new(&jb->boot, jb->req.job.n, b, jb->req.nm, jb->req.job.d, per, parts);
    if (r < 0) { /* the check refused what does not fit: only memory is left */
        qd_conn_send_error(c, jb->req.id, QT_ST_INTERNAL, "out of memory", -1);
        return r;
    }
    jb->sj.n = jb->req.job.n * parts;
    jb->sj.unit = 1;
    return 0;
}

static void req_samples(struct conn *c, struct qd_req *req, uint32_t len)
{
    struct djob *jb = job_new(c, req);
    msgpack_packer pk;

    if (!jb || own_values(jb, c, len) < 0) {
        if (jb)
            job_end(jb);
        qd_conn_send_error(c, req->id, QT_ST_INTERNAL, "out of memory", -1);
        return;
    }
    jb->sj.kind = QD_JOB_SAMPLES;
    jb->sj.interactive = jb->req.method == QP_M_RECONSTRUCT;
    jb->sj.n = jb->req.job.n;
    jb->sj.dim = jb->req.job.d;
    jb->sj.timeout_ms = jb->req.job.timeout_ms;
    if (jb->req.job.boot.resamples && boot_setup(c, jb) < 0) {
        job_end(jb);
        return;
    }
    memcpy(jb->sj.key, jb->req.key, sizeof(jb->sj.key));
    msgpack_packer_init(&pk, &jb->fields, msgpack_sbuffer_write);
    jb->nfields = qp_pack_job_fields(&pk, &jb->req.job);
    if (jb->req.method == QP_M_SUBMIT)
        qd_info("conn %llu uid %u pid %d: submit #%u: %zu samples, %s d = %zu", c->serial,
                (unsigned)c->uid, (int)c->pid, jb->req.id, jb->req.job.n, jb->req.job.design,
                jb->req.job.d);
    admit(c, jb);
}

static void req_task(struct conn *c, struct qd_req *req)
{
    struct djob *jb = job_new(c, req);
    msgpack_packer pk;

    if (!jb) {
        qd_conn_send_error(c, req->id, QT_ST_INTERNAL, "out of memory", -1);
        return;
    }
    msgpack_packer_init(&pk, &jb->task, msgpack_sbuffer_write);
    if (req->params) /* qp_begin_request opens the params array; this is its one map */
        (void)msgpack_pack_object(&pk, *req->params);
    else
        (void)msgpack_pack_map(&pk, 0);
    jb->sj.kind = QD_JOB_TASK;
    jb->sj.interactive = true;
    jb->sj.n = 1;
    qd_info("conn %llu uid %u pid %d: %s", c->serial, (unsigned)c->uid, (int)c->pid,
            qp_methods[jb->req.method].name);
    admit(c, jb);
}

/* ---- requests answered here ---- */

static void fill_status(struct sup *s, struct qp_status *st, bool stats)
{
    struct qt_cache_entry *e = NULL;
    struct qt_diag dg;
    size_t n = 0, k = 0;

    memset(st, 0, sizeof(*st));
    st->uptime_s = (double)(qd_now_ms(s) - s->started_ms) / 1000.0;
    st->queue_interactive = qd_sched_queued_interactive(&s->sched);
    st->queue_batch = s->sched.queued - st->queue_interactive;
    st->inflight = s->sched.inflight;
    st->n_workers = qd_sched_live_workers(&s->sched);
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
    st->items = s->sched.tot.items;
    st->errors = s->sched.tot.errors;
    st->timeouts = s->sched.tot.timeouts;
    st->crashes = s->sched.tot.crashes;
    st->recycled = s->recycled;
    st->output_queued = s->write_bytes;
    st->conns = s->n_conns;
    st->conns_stopped = s->n_blocked;
    st->input_reserved = s->in_reserved;
    st->conns_waiting_input = s->n_in_waiting;
    for (struct worker *w = s->workers; w; w = w->next)
        k++;
    st->workers = calloc(k ? k : 1, sizeof(*st->workers));
    if (!st->workers)
        return;
    for (struct worker *w = s->workers; w; w = w->next) {
        struct qp_worker_info *wi = &st->workers[st->n_worker_info++];

        wi->pid = (uint32_t)w->pid;
        snprintf(wi->state, sizeof(wi->state), "%s", qd_wstate_names[w->sw.state]);
        wi->jobs = w->sw.items;
        wi->rss_kb = qd_pool_rss_kb(w->pid);
    }
}

static int req_cancel(struct conn *c, const struct qd_req *req, struct qp_writer *w)
{
    struct djob *jb = find_job(c, req->target);
    int r;

    jb = jb && jb->sj.kind == QD_JOB_SAMPLES ? jb : NULL;
    r = qp_pack_cancel_result(w, req->id, jb != NULL, c->s->conf.max_frame);
    if (r == 0)
        qd_conn_send(c, w);
    if (jb)
        qd_req_abort(jb, QT_ST_CANCELLED, "cancelled by the client");
    return r;
}

static int req_evict(struct conn *c, const struct qd_req *req, struct qp_writer *w,
                     struct qt_diag *dg)
{
    struct qt_cache_entry *e = NULL;
    uint64_t bytes = 0;
    size_t n = 0;
    int r;

    if (qt_cache_list(c->s->cache, &e, &n, dg) == 0)
        for (size_t i = 0; i < n; i++)
            if (strcmp(e[i].id, req->design) == 0 && e[i].d == req->d)
                bytes = e[i].bytes;
    free(e);
    r = qt_cache_evict(c->s->cache, req->design, req->d, dg);
    if (r < 0)
        return r;
    qd_info("conn %llu uid %u: evicted %s d = %zu", c->serial, (unsigned)c->uid, req->design,
            req->d);
    return qp_pack_u64_result(w, req->id, "bytes", bytes, c->s->conf.max_frame);
}

static void req_local(struct conn *c, const struct qd_req *req)
{
    struct sup *s = c->s;
    struct qp_writer w;
    struct qt_diag dg = {0};
    struct qt_cache_entry *e = NULL;
    struct qp_status st;
    size_t n = 0;
    char err[512];
    int r = 0;

    qp_writer_init(&w);
    switch (req->method) {
    case QP_M_STATUS:
    case QP_M_STATS:
        fill_status(s, &st, req->method == QP_M_STATS);
        r = qp_pack_status_result(&w, req->id, &st, s->conf.max_frame);
        qp_status_done(&st);
        break;
    case QP_M_CANCEL:
        r = req_cancel(c, req, &w);
        break;
    case QP_M_CACHE_LIST:
        r = qt_cache_list(s->cache, &e, &n, &dg);
        if (r == 0)
            r = qp_pack_cache_list_result(&w, req->id, e, n, s->conf.max_frame);
        free(e);
        break;
    case QP_M_CACHE_EVICT:
        r = req_evict(c, req, &w, &dg);
        if (r == -EBUSY) {
            qd_conn_send_error(c, req->id, QT_ST_BUSY, dg.msg, 1000);
            r = 0;
        }
        break;
    case QP_M_RELOAD:
        if (qd_sup_reload(s, err, sizeof(err)) < 0) {
            qd_conn_send_error(c, req->id, QT_ST_INVALID_PARAMS, err, -1);
            break;
        }
        r = qp_pack_u64_result(&w, req->id, "generation", s->generation, s->conf.max_frame);
        break;
    default:
        r = -ENOSYS;
    }
    if (r < 0) {
        qp_writer_reset(&w);
        qd_conn_send_error(c, req->id, qt_status_from_err(r), dg.msg[0] ? dg.msg : qt_strerror(r),
                           -1);
    } else if (req->method != QP_M_CANCEL) {
        qd_conn_send(c, &w);
    }
    qp_writer_done(&w);
}

static void req_hello(struct conn *c, const struct qd_req *req)
{
    static const char *const features[] = {"bootstrap", "spectral", "detector", NULL};
    struct sup *s = c->s;
    struct qp_server_info si = {0};
    struct qp_writer w;

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
    if (qp_pack_hello_result(&w, req->id, &si, s->conf.max_frame) == 0)
        qd_conn_send(c, &w);
    qp_writer_done(&w);
    qd_debug("conn %llu: hello from %s", c->serial, req->hello.client[0] ? req->hello.client : "?");
}

/* ---- checking ---- */

static bool id_busy(void *ud, uint32_t id)
{
    return find_job(ud, id) != NULL;
}

static int find_custom(void *ud, const char *id, size_t d, size_t m, size_t *ret_d)
{
    struct sup *s = ud;
    struct qt_cache_entry *e = NULL;
    struct qt_diag dg = {0};
    size_t n = 0, found = 0;
    int r = qt_cache_list(s->cache, &e, &n, &dg);

    if (r < 0)
        return r;
    for (size_t i = 0; i < n; i++)
        if (strcmp(e[i].id, id) == 0 && (!d || e[i].d == d) && e[i].m == m)
            found = e[i].d;
    free(e);
    if (!found)
        return -ENOENT;
    *ret_d = found;
    return 0;
}

static void dispatch_request(struct conn *c, struct qd_req *req, uint32_t len)
{
    switch (req->method) {
    case QP_M_HELLO:
        req_hello(c, req);
        break;
    case QP_M_RECONSTRUCT:
    case QP_M_SUBMIT:
        req_samples(c, req, len);
        break;
    case QP_M_DESIGN_PUT:
    case QP_M_DETECTOR_PUT:
    case QP_M_CACHE_WARM:
    case QP_M_CACHE_VERIFY:
        req_task(c, req);
        break;
    default:
        req_local(c, req);
    }
}

void qd_req_frame(struct conn *c, const uint8_t *body, uint32_t len)
{
    struct sup *s = c->s;
    struct qd_check_env env = {s->conf.max_dim, s->conf.max_batch, s->conf.max_inflight,
                               s->draining,     find_custom,       s,
                               (uint64_t)s->conf.max_sample_mb << 20};
    struct qd_peer peer = {c->hello_done, c->admin, c->inflight, id_busy, c};
    struct qt_diag dg = {0};
    struct qd_reject rej;
    struct qd_req req;
    struct qp_msg msg;
    struct qp_writer w;
    int r = qp_msg_decode(body, len, &msg, &dg);

    if (r < 0 && msg.id_valid && msg.type == QP_REQUEST) {
        qd_conn_send_error(c, msg.id, qp_msg_status(&msg), dg.msg, -1);
    } else if (r < 0 || msg.type != QP_REQUEST) {
        qd_notice("conn %llu uid %u: %s: %s", c->serial, (unsigned)c->uid,
                  r < 0 ? "unreadable frame" : "not a request",
                  r < 0 ? dg.msg : "clients send only requests");
        qp_writer_init(&w);
        if (qp_write_protocol_error(&w, r < 0 ? qp_msg_status(&msg) : QT_ST_INVALID_REQUEST,
                                    r < 0 ? dg.msg : "clients send only requests",
                                    s->conf.max_frame) == 0)
            qd_conn_send(c, &w);
        qp_writer_done(&w);
        qd_conn_close(c);
    } else if (qd_check(&env, &peer, &msg, &req, &rej) < 0) {
        if (rej.code == QT_ST_PERMISSION_DENIED)
            qd_notice("conn %llu uid %u pid %d: %s refused (not admin)", c->serial,
                      (unsigned)c->uid, (int)c->pid, msg.method_name);
        qd_conn_send_error(c, msg.id, rej.code, rej.msg, rej.retry_ms);
        if (rej.close) {
            qd_conn_send_bye(c, "protocol", -1);
            qd_conn_close(c);
        }
    } else {
        dispatch_request(c, &req, len);
        qd_req_done(&req);
    }
    qp_msg_done(&msg);
}
