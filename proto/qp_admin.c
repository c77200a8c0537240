/* Error maps and the results of the administrative methods: cancel, status, stats, design.put,
 * cache.list, cache.warm, cache.evict, cache.verify, reload (SCHEMA.md §2, §4). */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "num/qt_design_kind.h"
#include "qp.h"

/* Copies a str, truncating to fit (messages and reasons are text for people). */
static void copy_str_trunc(const msgpack_object *o, char *buf, size_t len)
{
    size_t n = 0;

    if (o && o->type == MSGPACK_OBJECT_STR) {
        n = o->via.str.size < len - 1 ? o->via.str.size : len - 1;
        if (n)
            memcpy(buf, o->via.str.ptr, n);
    }
    buf[n] = '\0';
}

static int need_u64(const msgpack_object *map, const char *key, uint64_t max, uint64_t *v,
                    struct qt_diag *reterr)
{
    int r = qp_read_u64(qp_get(map, key), key, max, v, reterr);

    if (r == -ENOENT)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: missing", key);
    return r;
}

static int need_map(const msgpack_object *o, const char *what, struct qt_diag *reterr)
{
    if (!o || o->type != MSGPACK_OBJECT_MAP)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: not a map", what);
    return 0;
}

/* ---- error maps ---- */

int qp_msg_status(const struct qp_msg *msg)
{
    return msg->id_valid ? QT_ST_INVALID_REQUEST : QT_ST_PARSE_ERROR;
}

static void pack_totals(msgpack_packer *pk, const struct qp_totals *t)
{
    (void)msgpack_pack_map(pk, 4);
    qp_pack_key(pk, "n_ok");
    (void)msgpack_pack_uint64(pk, t->n_ok);
    qp_pack_key(pk, "n_err");
    (void)msgpack_pack_uint64(pk, t->n_err);
    qp_pack_key(pk, "n_cancelled");
    (void)msgpack_pack_uint64(pk, t->n_cancelled);
    qp_pack_key(pk, "elapsed_ms");
    (void)msgpack_pack_double(pk, t->elapsed_ms);
}

int qp_write_error_totals(struct qp_writer *w, uint32_t id, int code, const char *message,
                          const struct qp_totals *t, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_frame_begin(w);
    (void)msgpack_pack_array(pk, 4);
    (void)msgpack_pack_uint8(pk, QP_RESPONSE);
    (void)msgpack_pack_uint32(pk, id);
    (void)msgpack_pack_map(pk, 3);
    qp_pack_key(pk, "code");
    (void)msgpack_pack_int32(pk, code);
    qp_pack_key(pk, "message");
    qp_pack_str(pk, message);
    qp_pack_key(pk, "data");
    pack_totals(pk, t);
    (void)msgpack_pack_nil(pk);
    return qp_frame_end(w, max_frame);
}

int qp_decode_error(const msgpack_object *o, struct qp_error *e, struct qt_diag *reterr)
{
    const msgpack_object *code = qp_get(o, "code"), *data = qp_get(o, "data"), *ra;

    memset(e, 0, sizeof(*e));
    e->retry_after_ms = -1;
    if (need_map(o, "error", reterr) < 0)
        return QT_EPARSE;
    if (!code || code->type != MSGPACK_OBJECT_NEGATIVE_INTEGER || code->via.i64 < INT32_MIN)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "error.code: not a negative integer");
    e->code = (int)code->via.i64;
    if (!qp_get(o, "message") || qp_get(o, "message")->type != MSGPACK_OBJECT_STR)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "error.message: not a string");
    copy_str_trunc(qp_get(o, "message"), e->message, sizeof(e->message));
    if (!data || data->type != MSGPACK_OBJECT_MAP)
        return 0;
    ra = qp_get(data, "retry_after_ms");
    if (ra && ra->type == MSGPACK_OBJECT_POSITIVE_INTEGER && ra->via.u64 <= INT64_MAX)
        e->retry_after_ms = (int64_t)ra->via.u64;
    if (qp_get(data, "n_ok")) {
        int r = qp_decode_totals(data, &e->totals, reterr);

        if (r < 0)
            return r;
        e->has_totals = true;
    }
    return 0;
}

/* ---- one-value results ---- */

int qp_pack_u64_result(struct qp_writer *w, uint32_t id, const char *key, uint64_t v,
                       uint32_t max_frame)
{
    qp_begin_response(w, id);
    (void)msgpack_pack_map(&w->pk, 1);
    qp_pack_key(&w->pk, key);
    (void)msgpack_pack_uint64(&w->pk, v);
    return qp_frame_end(w, max_frame);
}

int qp_decode_u64_result(const msgpack_object *result, const char *key, uint64_t *v,
                         struct qt_diag *reterr)
{
    *v = 0;
    if (need_map(result, "result", reterr) < 0)
        return QT_EPARSE;
    return need_u64(result, key, UINT64_MAX, v, reterr);
}

int qp_pack_cancel_result(struct qp_writer *w, uint32_t id, bool found, uint32_t max_frame)
{
    qp_begin_response(w, id);
    (void)msgpack_pack_map(&w->pk, 1);
    qp_pack_key(&w->pk, "found");
    if (found)
        (void)msgpack_pack_true(&w->pk);
    else
        (void)msgpack_pack_false(&w->pk);
    return qp_frame_end(w, max_frame);
}

int qp_decode_cancel_result(const msgpack_object *result, bool *found, struct qt_diag *reterr)
{
    int r;

    *found = false;
    if (need_map(result, "result", reterr) < 0)
        return QT_EPARSE;
    r = qp_read_bool(qp_get(result, "found"), "found", found, reterr);
    return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "found: missing") : r;
}

/* ---- status, stats ---- */

int qp_pack_status_result(struct qp_writer *w, uint32_t id, const struct qp_status *s,
                          uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_response(w, id);
    (void)msgpack_pack_map(pk, s->has_stats ? 9 : 5);
    qp_pack_key(pk, "uptime_s");
    (void)msgpack_pack_double(pk, s->uptime_s);
    qp_pack_key(pk, "queue");
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "interactive");
    (void)msgpack_pack_uint64(pk, s->queue_interactive);
    qp_pack_key(pk, "batch");
    (void)msgpack_pack_uint64(pk, s->queue_batch);
    qp_pack_key(pk, "inflight");
    (void)msgpack_pack_uint64(pk, s->inflight);
    qp_pack_key(pk, "n_workers");
    (void)msgpack_pack_uint64(pk, s->n_workers);
    qp_pack_key(pk, "cache");
    (void)msgpack_pack_map(pk, 3);
    qp_pack_key(pk, "bytes");
    (void)msgpack_pack_uint64(pk, s->cache_bytes);
    qp_pack_key(pk, "files");
    (void)msgpack_pack_uint64(pk, s->cache_files);
    qp_pack_key(pk, "budget");
    (void)msgpack_pack_uint64(pk, s->cache_budget);
    if (s->has_stats) {
        qp_pack_key(pk, "totals");
        (void)msgpack_pack_map(pk, 5);
        qp_pack_key(pk, "items");
        (void)msgpack_pack_uint64(pk, s->items);
        qp_pack_key(pk, "errors");
        (void)msgpack_pack_uint64(pk, s->errors);
        qp_pack_key(pk, "timeouts");
        (void)msgpack_pack_uint64(pk, s->timeouts);
        qp_pack_key(pk, "crashes");
        (void)msgpack_pack_uint64(pk, s->crashes);
        qp_pack_key(pk, "recycled");
        (void)msgpack_pack_uint64(pk, s->recycled);
        qp_pack_key(pk, "output");
        (void)msgpack_pack_map(pk, 3);
        qp_pack_key(pk, "queued");
        (void)msgpack_pack_uint64(pk, s->output_queued);
        qp_pack_key(pk, "connections");
        (void)msgpack_pack_uint64(pk, s->conns);
        qp_pack_key(pk, "stopped");
        (void)msgpack_pack_uint64(pk, s->conns_stopped);
        qp_pack_key(pk, "input");
        (void)msgpack_pack_map(pk, 2);
        qp_pack_key(pk, "reserved");
        (void)msgpack_pack_uint64(pk, s->input_reserved);
        qp_pack_key(pk, "waiting");
        (void)msgpack_pack_uint64(pk, s->conns_waiting_input);
        qp_pack_key(pk, "workers");
        (void)msgpack_pack_array(pk, s->n_worker_info);
        for (size_t i = 0; i < s->n_worker_info; i++) {
            const struct qp_worker_info *wi = &s->workers[i];

            (void)msgpack_pack_map(pk, 4);
            qp_pack_key(pk, "pid");
            (void)msgpack_pack_uint32(pk, wi->pid);
            qp_pack_key(pk, "state");
            qp_pack_str(pk, wi->state);
            qp_pack_key(pk, "jobs");
            (void)msgpack_pack_uint64(pk, wi->jobs);
            qp_pack_key(pk, "rss_kb");
            (void)msgpack_pack_uint64(pk, wi->rss_kb);
        }
    }
    return qp_frame_end(w, max_frame);
}

void qp_status_done(struct qp_status *s)
{
    free(s->workers);
    s->workers = NULL;
    s->n_worker_info = 0;
}

static int decode_workers(const msgpack_object *a, struct qp_status *s, struct qt_diag *reterr)
{
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > QP_MAX_WORKERS)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "workers: not an array of at most %u",
                           QP_MAX_WORKERS);
    if (a->via.array.size == 0)
        return 0;
    s->workers = calloc(a->via.array.size, sizeof(*s->workers));
    if (!s->workers)
        return -ENOMEM;
    for (uint32_t i = 0; i < a->via.array.size; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        struct qp_worker_info *wi = &s->workers[i];
        uint64_t pid = 0;
        int r;

        s->n_worker_info = i + 1;
        if (need_map(o, "workers[]", reterr) < 0)
            return QT_EPARSE;
        r = need_u64(o, "pid", UINT32_MAX, &pid, reterr);
        if (r == 0)
            r = qp_read_str(qp_get(o, "state"), "state", wi->state, sizeof(wi->state), reterr);
        if (r == 0)
            r = need_u64(o, "jobs", UINT64_MAX, &wi->jobs, reterr);
        if (r == 0)
            r = need_u64(o, "rss_kb", UINT64_MAX, &wi->rss_kb, reterr);
        if (r < 0)
            return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "state: missing") : r;
        wi->pid = (uint32_t)pid;
    }
    return 0;
}

int qp_decode_status_result(const msgpack_object *result, struct qp_status *s,
                            struct qt_diag *reterr)
{
    const msgpack_object *q = qp_get(result, "queue"), *c = qp_get(result, "cache"),
                         *t = qp_get(result, "totals"), *o;
    int r;

    memset(s, 0, sizeof(*s));
    if (need_map(result, "result", reterr) < 0 || need_map(q, "queue", reterr) < 0 ||
        need_map(c, "cache", reterr) < 0)
        return QT_EPARSE;
    r = qp_read_f64(qp_get(result, "uptime_s"), "uptime_s", &s->uptime_s, reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "uptime_s: missing") : r;
    if (need_u64(q, "interactive", UINT64_MAX, &s->queue_interactive, reterr) < 0 ||
        need_u64(q, "batch", UINT64_MAX, &s->queue_batch, reterr) < 0 ||
        need_u64(result, "inflight", UINT64_MAX, &s->inflight, reterr) < 0 ||
        need_u64(result, "n_workers", UINT64_MAX, &s->n_workers, reterr) < 0 ||
        need_u64(c, "bytes", UINT64_MAX, &s->cache_bytes, reterr) < 0 ||
        need_u64(c, "files", UINT64_MAX, &s->cache_files, reterr) < 0 ||
        need_u64(c, "budget", UINT64_MAX, &s->cache_budget, reterr) < 0)
        return QT_EPARSE;
    if (!t)
        return 0;
    s->has_stats = true;
    if (need_map(t, "totals", reterr) < 0 ||
        need_u64(t, "items", UINT64_MAX, &s->items, reterr) < 0 ||
        need_u64(t, "errors", UINT64_MAX, &s->errors, reterr) < 0 ||
        need_u64(t, "timeouts", UINT64_MAX, &s->timeouts, reterr) < 0 ||
        need_u64(t, "crashes", UINT64_MAX, &s->crashes, reterr) < 0 ||
        need_u64(t, "recycled", UINT64_MAX, &s->recycled, reterr) < 0)
        return QT_EPARSE;
    o = qp_get(result, "output");
    if (o && (need_map(o, "output", reterr) < 0 ||
              need_u64(o, "queued", UINT64_MAX, &s->output_queued, reterr) < 0 ||
              need_u64(o, "connections", UINT64_MAX, &s->conns, reterr) < 0 ||
              need_u64(o, "stopped", UINT64_MAX, &s->conns_stopped, reterr) < 0))
        return QT_EPARSE;
    o = qp_get(result, "input");
    if (o && (need_map(o, "input", reterr) < 0 ||
              need_u64(o, "reserved", UINT64_MAX, &s->input_reserved, reterr) < 0 ||
              need_u64(o, "waiting", UINT64_MAX, &s->conns_waiting_input, reterr) < 0))
        return QT_EPARSE;
    r = decode_workers(qp_get(result, "workers"), s, reterr);
    if (r < 0)
        qp_status_done(s);
    return r;
}

/* ---- design.put ---- */

int qp_pack_design_put(struct qp_writer *w, uint32_t id, const char *text, size_t len,
                       uint32_t max_frame)
{
    qp_begin_request(w, id, QP_M_DESIGN_PUT);
    (void)msgpack_pack_map(&w->pk, 1);
    qp_pack_key(&w->pk, "design");
    (void)msgpack_pack_str_with_body(&w->pk, text, len);
    return qp_frame_end(w, max_frame);
}

int qp_decode_design_put(const msgpack_object *params, const char **text, size_t *len,
                         struct qt_diag *reterr)
{
    const msgpack_object *o = qp_get(params, "design");

    *text = NULL;
    *len = 0;
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "design: missing or not a non-empty string");
    if (o->via.str.size > QT_DESIGNFILE_MAX_BYTES)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "design: longer than %zu bytes",
                           QT_DESIGNFILE_MAX_BYTES);
    *text = o->via.str.ptr;
    *len = o->via.str.size;
    return 0;
}

/* ---- detector.put ---- */

int qp_pack_detector_put(struct qp_writer *w, uint32_t id, const struct qp_detector_put *p,
                         uint32_t max_frame)
{
    bool custom = p->design_id[0] != 0;

    qp_begin_request(w, id, QP_M_DETECTOR_PUT);
    (void)msgpack_pack_map(&w->pk, 3u + custom);
    qp_pack_key(&w->pk, "detector");
    (void)msgpack_pack_str_with_body(&w->pk, p->text, p->len);
    qp_pack_key(&w->pk, "design");
    qp_pack_str(&w->pk, p->design);
    qp_pack_key(&w->pk, "d");
    (void)msgpack_pack_uint64(&w->pk, p->d);
    if (custom) {
        qp_pack_key(&w->pk, "design_id");
        qp_pack_str(&w->pk, p->design_id);
    }
    return qp_frame_end(w, max_frame);
}

/* "custom-" followed by 32 lower-case hex digits (the content id of custom designs). */
static bool custom_id_form(const char *id)
{
    if (strncmp(id, "custom-", 7) != 0 || strlen(id) != 7 + 32)
        return false;
    for (const char *c = id + 7; *c; c++)
        if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
            return false;
    return true;
}

int qp_decode_detector_put(const msgpack_object *params, size_t max_dim,
                           struct qp_detector_put *p, struct qt_diag *reterr)
{
    const msgpack_object *o = qp_get(params, "detector");
    uint64_t d = 0;
    int kind, r;

    memset(p, 0, sizeof(*p));
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size == 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "detector: missing or not a non-empty string");
    if (o->via.str.size > QT_DETECTORFILE_MAX_BYTES)
        return qt_diag_set(reterr, QT_ETOOBIG, 0, 0, "detector: longer than %zu bytes",
                           QT_DETECTORFILE_MAX_BYTES);
    p->text = o->via.str.ptr;
    p->len = o->via.str.size;
    r = qp_read_str(qp_get(params, "design"), "design", p->design, sizeof(p->design), reterr);
    if (r == -ENOENT)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "design: missing");
    if (r < 0)
        return r;
    kind = qt_design_kind_from_name(p->design);
    if (kind < 0)
        return qt_diag_set(reterr, QT_EDESIGN, 0, 0, "design: unknown design \"%s\"", p->design);
    r = qp_read_u64(qp_get(params, "d"), "d", max_dim, &d, reterr);
    if (r == -ENOENT || (r == 0 && d < 2))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "d: missing or below 2 (at most %zu)",
                           max_dim);
    if (r < 0)
        return r;
    p->d = (size_t)d;
    r = qp_read_str(qp_get(params, "design_id"), "design_id", p->design_id,
                    sizeof(p->design_id), reterr);
    if (r < 0 && r != -ENOENT)
        return r;
    if ((kind == QT_DESIGN_CUSTOM) != (r == 0))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "design_id: required with design \"custom\" and only with it");
    if (r == 0 && !custom_id_form(p->design_id))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "design_id: not \"custom-\" and 32 lower-case hex digits");
    return 0;
}

int qp_pack_detector_put_result(struct qp_writer *w, uint32_t id,
                                const struct qp_detector_put_result *res, uint32_t max_frame)
{
    bool has_id = res->design_id[0] != 0, has_det = res->detector[0] != 0;

    qp_begin_response(w, id);
    (void)msgpack_pack_map(&w->pk, 3u + has_id + has_det);
    qp_pack_key(&w->pk, "design");
    qp_pack_str(&w->pk, res->design);
    if (has_id) {
        qp_pack_key(&w->pk, "design_id");
        qp_pack_str(&w->pk, res->design_id);
    }
    qp_pack_key(&w->pk, "d");
    (void)msgpack_pack_uint64(&w->pk, res->d);
    qp_pack_key(&w->pk, "m");
    (void)msgpack_pack_uint64(&w->pk, res->m);
    if (has_det) {
        qp_pack_key(&w->pk, "detector");
        qp_pack_str(&w->pk, res->detector);
    }
    return qp_frame_end(w, max_frame);
}

int qp_decode_detector_put_result(const msgpack_object *result,
                                  struct qp_detector_put_result *res, struct qt_diag *reterr)
{
    uint64_t v;
    int r;

    memset(res, 0, sizeof(*res));
    r = qp_read_str(qp_get(result, "design"), "design", res->design, sizeof(res->design),
                    reterr);
    if (r < 0)
        return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "design: missing") : r;
    r = qp_read_str(qp_get(result, "design_id"), "design_id", res->design_id,
                    sizeof(res->design_id), reterr);
    if (r == -ENOENT)
        r = 0;
    if (r == 0)
        r = qp_read_str(qp_get(result, "detector"), "detector", res->detector,
                        sizeof(res->detector), reterr);
    if (r == -ENOENT)
        r = 0;
    if (r == 0)
        r = qp_read_u64(qp_get(result, "d"), "d", UINT32_MAX, &v, reterr);
    if (r == 0)
        res->d = (size_t)v;
    if (r == 0)
        r = qp_read_u64(qp_get(result, "m"), "m", UINT32_MAX, &v, reterr);
    if (r == 0)
        res->m = (size_t)v;
    if (r == -ENOENT)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "detector.put result: missing design, d or m");
    if (r == 0 && !res->design[0])
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "detector.put result: empty design");
    if (r == 0 && (strcmp(res->design, "custom") == 0) != (res->design_id[0] != 0))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "detector.put result: design_id goes with design \"custom\" only");
    if (r == 0 && res->design_id[0] && !custom_id_form(res->design_id))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0,
                           "detector.put result: design_id is not \"custom-\" and 32 hex digits");
    return r;
}

int qp_pack_id_result(struct qp_writer *w, uint32_t id, const char *design_id, uint32_t max_frame)
{
    qp_begin_response(w, id);
    (void)msgpack_pack_map(&w->pk, 1);
    qp_pack_key(&w->pk, "id");
    qp_pack_str(&w->pk, design_id);
    return qp_frame_end(w, max_frame);
}

int qp_decode_id_result(const msgpack_object *result, char *buf, size_t len, struct qt_diag *reterr)
{
    int r;

    buf[0] = '\0';
    if (need_map(result, "result", reterr) < 0)
        return QT_EPARSE;
    r = qp_read_str(qp_get(result, "id"), "id", buf, len, reterr);
    return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0, "id: missing") : r;
}

/* ---- cache.list ---- */

int qp_pack_cache_list_result(struct qp_writer *w, uint32_t id, const struct qt_cache_entry *e,
                              size_t n, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_response(w, id);
    (void)msgpack_pack_map(pk, 1);
    qp_pack_key(pk, "entries");
    (void)msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        (void)msgpack_pack_map(pk, 8);
        qp_pack_key(pk, "name");
        qp_pack_str(pk, e[i].name);
        qp_pack_key(pk, "id");
        qp_pack_str(pk, e[i].id);
        qp_pack_key(pk, "design");
        qp_pack_str(pk, e[i].design);
        qp_pack_key(pk, "d");
        (void)msgpack_pack_uint64(pk, e[i].d);
        qp_pack_key(pk, "m");
        (void)msgpack_pack_uint64(pk, e[i].m);
        qp_pack_key(pk, "bytes");
        (void)msgpack_pack_uint64(pk, e[i].bytes);
        qp_pack_key(pk, "last_use_ns");
        (void)msgpack_pack_int64(pk, e[i].last_use_ns);
        qp_pack_key(pk, "mapped_by");
        (void)msgpack_pack_uint64(pk, e[i].mapped_by);
    }
    return qp_frame_end(w, max_frame);
}

static int read_i64(const msgpack_object *o, const char *field, int64_t *v, struct qt_diag *reterr)
{
    if (o && o->type == MSGPACK_OBJECT_POSITIVE_INTEGER && o->via.u64 <= INT64_MAX)
        *v = (int64_t)o->via.u64;
    else if (o && o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *v = o->via.i64;
    else
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%s: missing or not an integer", field);
    return 0;
}

int qp_decode_cache_list_result(const msgpack_object *result, struct qt_cache_entry **ret,
                                size_t *ret_n, struct qt_diag *reterr)
{
    const msgpack_object *a = qp_get(result, "entries");
    struct qt_cache_entry *e = NULL;
    size_t n;

    *ret = NULL;
    *ret_n = 0;
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > QP_MAX_CACHE_ENTRIES)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "entries: not an array of at most %u",
                           QP_MAX_CACHE_ENTRIES);
    n = a->via.array.size;
    if (n) {
        e = calloc(n, sizeof(*e));
        if (!e)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        uint64_t d = 0, m = 0, mapped = 0;
        int r = need_map(o, "entries[]", reterr);

        if (r == 0)
            r = qp_read_str(qp_get(o, "name"), "name", e[i].name, sizeof(e[i].name), reterr);
        if (r == 0)
            r = qp_read_str(qp_get(o, "id"), "id", e[i].id, sizeof(e[i].id), reterr);
        if (r == 0)
            r = qp_read_str(qp_get(o, "design"), "design", e[i].design, sizeof(e[i].design),
                            reterr);
        if (r == 0)
            r = need_u64(o, "d", QT_DESIGN_MAX_D, &d, reterr);
        if (r == 0)
            r = need_u64(o, "m", UINT32_MAX, &m, reterr);
        if (r == 0)
            r = need_u64(o, "bytes", UINT64_MAX, &e[i].bytes, reterr);
        if (r == 0)
            r = read_i64(qp_get(o, "last_use_ns"), "last_use_ns", &e[i].last_use_ns, reterr);
        if (r == 0)
            r = need_u64(o, "mapped_by", UINT32_MAX, &mapped, reterr);
        if (r < 0) {
            free(e);
            return r == -ENOENT ? qt_diag_set(reterr, QT_EPARSE, 0, 0,
                                              "entries[%zu]: name, id and design required", i)
                                : r;
        }
        e[i].d = (size_t)d;
        e[i].m = (size_t)m;
        e[i].mapped_by = (unsigned)mapped;
    }
    *ret = e;
    *ret_n = n;
    return 0;
}

/* ---- cache.warm ---- */

int qp_pack_cache_warm(struct qp_writer *w, uint32_t id, const struct qp_design_d *items, size_t n,
                       uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_request(w, id, QP_M_CACHE_WARM);
    (void)msgpack_pack_map(pk, 1);
    qp_pack_key(pk, "items");
    (void)msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        (void)msgpack_pack_map(pk, 2);
        qp_pack_key(pk, "design");
        qp_pack_str(pk, items[i].design);
        qp_pack_key(pk, "d");
        (void)msgpack_pack_uint64(pk, items[i].d);
    }
    return qp_frame_end(w, max_frame);
}

int qp_decode_cache_warm(const msgpack_object *params, size_t max_dim, struct qp_design_d **ret,
                         size_t *ret_n, struct qt_diag *reterr)
{
    const msgpack_object *a = qp_get(params, "items");
    struct qp_design_d *items;
    size_t n;

    *ret = NULL;
    *ret_n = 0;
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size == 0 ||
        a->via.array.size > QP_MAX_WARM_ITEMS)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "items: not an array of 1 to %u items",
                           QP_MAX_WARM_ITEMS);
    n = a->via.array.size;
    items = calloc(n, sizeof(*items));
    if (!items)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i];
        int r = need_map(o, "items[]", reterr);

        if (r == 0)
            r = qp_decode_design_d(o, max_dim, items[i].design, sizeof(items[i].design),
                                   &items[i].d, reterr);
        if (r == 0 && (!items[i].design[0] || items[i].d == 0))
            r = qt_diag_set(reterr, QT_EPARSE, 0, 0, "items[%zu]: design and d are required", i);
        if (r < 0) {
            free(items);
            return r;
        }
    }
    *ret = items;
    *ret_n = n;
    return 0;
}

/* ---- cache.verify ---- */

int qp_pack_verify_result(struct qp_writer *w, uint32_t id, uint64_t checked,
                          const struct qp_damaged *dm, size_t n, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_response(w, id);
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "checked");
    (void)msgpack_pack_uint64(pk, checked);
    qp_pack_key(pk, "damaged");
    (void)msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        (void)msgpack_pack_map(pk, 2);
        qp_pack_key(pk, "name");
        qp_pack_str(pk, dm[i].name);
        qp_pack_key(pk, "reason");
        qp_pack_str(pk, dm[i].reason);
    }
    return qp_frame_end(w, max_frame);
}

int qp_decode_verify_result(const msgpack_object *result, uint64_t *checked,
                            struct qp_damaged **ret, size_t *ret_n, struct qt_diag *reterr)
{
    const msgpack_object *a = qp_get(result, "damaged");
    struct qp_damaged *dm = NULL;
    size_t n;

    *checked = 0;
    *ret = NULL;
    *ret_n = 0;
    if (need_map(result, "result", reterr) < 0 ||
        need_u64(result, "checked", UINT64_MAX, checked, reterr) < 0)
        return QT_EPARSE;
    if (!a || a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > QP_MAX_CACHE_ENTRIES)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "damaged: not an array of at most %u",
                           QP_MAX_CACHE_ENTRIES);
    n = a->via.array.size;
    if (n) {
        dm = calloc(n, sizeof(*dm));
        if (!dm)
            return -ENOMEM;
    }
    for (size_t i = 0; i < n; i++) {
        const msgpack_object *o = &a->via.array.ptr[i], *name = qp_get(o, "name");

        if (!name || name->type != MSGPACK_OBJECT_STR) {
            free(dm);
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "damaged[%zu]: needs a name string", i);
        }
        copy_str_trunc(qp_get(o, "name"), dm[i].name, sizeof(dm[i].name));
        copy_str_trunc(qp_get(o, "reason"), dm[i].reason, sizeof(dm[i].reason));
    }
    *ret = dm;
    *ret_n = n;
    return 0;
}
