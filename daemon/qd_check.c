/* Request checking (see qd_check.h): every refusal of a well-formed message is decided here. */
#include "qd_check.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_status.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_resample.h"
#include "qd_boot.h"

static int reject(struct qd_reject *rej, int code, int64_t retry_ms, const char *fmt, ...)
    QT_PRINTF(4, 5);

static int reject(struct qd_reject *rej, int code, int64_t retry_ms, const char *fmt, ...)
{
    va_list ap;

    rej->code = code;
    rej->retry_ms = retry_ms;
    rej->close = false;
    va_start(ap, fmt);
    vsnprintf(rej->msg, sizeof(rej->msg), fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A refusal from a decoder or a lookup: its error's public code and its message. */
static int reject_err(struct qd_reject *rej, int err, const struct qt_diag *dg)
{
    return reject(rej, qt_status_from_err(err), -1, "%s", dg->msg[0] ? dg->msg : qt_strerror(err));
}

/* design, design_id, d and the values' row count must describe one design: resolves d. */
static int resolve_design(const struct qd_check_env *env, struct qd_req *req, int kind,
                          struct qt_diag *dg)
{
    struct qp_job *j = &req->job;
    size_t d = 0;
    int k2, r;

    if (kind == QT_DESIGN_CUSTOM) {
        if (!j->design_id[0])
            return qt_diag_set(dg, QT_EPARSE, 0, 0, "design_id: required with design custom");
        r = env->find_custom(env->ud, j->design_id, j->d, j->m, &d);
        if (r == -ENOENT)
            return qt_diag_set(dg, -ENOENT, 0, 0,
                               "design_id: no custom design %s with %zu outcomes%s (upload it "
                               "with design.put)",
                               j->design_id, j->m, j->d ? " and that d" : "");
        if (r < 0)
            return qt_diag_set(dg, r, 0, 0, "design_id: the cache cannot be read: %s",
                               qt_strerror(r));
    } else {
        if (j->design_id[0])
            return qt_diag_set(dg, QT_EPARSE, 0, 0,
                               "design_id: only with design custom, not with %s", j->design);
        r = qt_design_infer(kind, j->m, &k2, &d, dg);
        if (r < 0)
            return r;
        if (j->d && j->d != d)
            return qt_diag_set(dg, QT_EDIM, 0, 0, "d: %zu values mean d = %zu for %s, not %zu",
                               j->m, d, j->design, j->d);
    }
    if (d > env->max_dim)
        return qt_diag_set(dg, QT_ETOOBIG, 0, 0, "d: %zu is above max-dim %u", d, env->max_dim);
    j->d = d;
    return 0;
}

/* Error bars: one sample's rows must fit (qd_boot_plan), and without shots every value must be
 * a count (whole, non-negative, below 2^53), or there is nothing to resample. */
static int check_boot(const struct qp_job *j, size_t nm, struct qd_reject *rej)
{
    uint32_t per, parts;

    if (qd_boot_plan(j->boot.resamples, nm, j->d, 1, &per, &parts) < 0)
        return reject(rej, QT_ST_INVALID_PARAMS, -1,
                      "bootstrap: %u resamples of %zu methods at d = %zu need more than %zu MB "
                      "of rows per sample; ask for fewer resamples",
                      j->boot.resamples, nm, j->d, QD_BOOT_SAMPLE_BYTES >> 20);
    /* the most units any worker count cuts (units of 8), each a scheduler column */
    if (qd_boot_plan(j->boot.resamples, nm, j->d, UINT32_MAX / 2, &per, &parts) == 0 &&
        (uint64_t)j->n * parts > QD_BOOT_MAX_UNITS)
        return reject(rej, QT_ST_INVALID_PARAMS, -1,
                      "bootstrap: %zu samples of %u resamples make up to %llu work items, above "
                      "%u; split the batch",
                      j->n, j->boot.resamples, (unsigned long long)j->n * parts, QD_BOOT_MAX_UNITS);
    for (size_t c = 0; c < j->n; c++) {
        const char *col = (const char *)j->values_le + c * j->m * sizeof(double);
        bool empty = true; /* an empty column (all NaN) fails as a sample, not the request */

        for (size_t a = 0; a < j->m && empty; a++) {
            double v;

            memcpy(&v, col + a * sizeof(double), sizeof(v));
            empty = isnan(v);
        }
        for (size_t a = 0; a < j->m && !empty; a++) {
            double v;

            memcpy(&v, col + a * sizeof(double), sizeof(v));
            if (j->boot.shots ? !(v >= 0.0 && isfinite(v)) : !qt_resample_is_counts(&v, 1))
                return reject(rej, QT_ST_INVALID_PARAMS, -1,
                              j->boot.shots
                                  ? "bootstrap: values[%zu, %zu] = %.17g: shots turn finite, "
                                    "non-negative values into counts"
                                  : "bootstrap: values[%zu, %zu] = %.17g is not a count; data "
                                    "given as probabilities or powers need bootstrap.shots "
                                    "(counts per group)",
                              a, c, v);
        }
    }
    return 0;
}

uint64_t qd_check_sample_bytes(size_t d, size_t m, const bool methods[_QT_METHOD_MAX])
{
    double need = (double)QD_WORKER_BASE_BYTES + 3.0 * 8.0 * (double)m +
                  1.5 * (double)qt_estimate_ws_bound(d, m, methods);

    for (int k = 0; k < _QT_METHOD_MAX; k++)
        if (methods[k])
            need += 4.0 * 16.0 * (double)d * (double)d;
    return need >= 0x1p64 ? UINT64_MAX : (uint64_t)need;
}

static int check_job(const struct qd_check_env *env, const struct qp_msg *msg, struct qd_req *req,
                     struct qd_reject *rej)
{
    struct qp_job *j = &req->job;
    struct qt_diag dg = {0};
    int kind, r;

    r = qp_decode_job_ref(msg->params, (enum qp_method)msg->method, env->max_dim, env->max_batch, j,
                          &dg);
    if (r < 0)
        return reject_err(rej, r, &dg);
    if (j->n == 0)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "values: no samples (0 columns)");
    /* Results carry first_index + column as their index (an integer up to 2^63 - 1), and with
     * error bars it keys the resample streams: every index of the batch must fit. */
    if (j->first_index > SIZE_MAX / 2 - (j->n - 1))
        return reject(rej, QT_ST_INVALID_PARAMS, -1,
                      "first_index: %zu + %zu samples passes 2^63 - 1", j->first_index, j->n);
    kind = qt_design_kind_from_name(j->design);
    if (kind < 0)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "design: unknown design '%s'", j->design);
    r = resolve_design(env, req, kind, &dg);
    if (r < 0)
        return reject_err(rej, r, &dg);
    if (j->target && j->target_d != j->d)
        return reject(rej, QT_ST_INVALID_PARAMS, -1,
                      "target: a %zu x %zu matrix for a d = %zu state (it must be d x d)",
                      j->target_d, j->target_d, j->d);
    if (msg->method == QP_M_RECONSTRUCT &&
        (j->progress_ms || (j->first_index && !j->boot.resamples)))
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "%s: only for submit%s",
                      j->progress_ms ? "progress_ms" : "first_index",
                      j->progress_ms ? ""
                                     : " (or a reconstruct with bootstrap: its resample streams)");
    snprintf(req->key, sizeof(req->key), "%s-d%zu",
             kind == QT_DESIGN_CUSTOM ? j->design_id
                                      : qt_design_kind_name((enum qt_design_kind)kind),
             j->d);
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (j->methods[m])
            req->meth[req->nm++] = (enum qt_method)m;
    if (env->max_sample_bytes) {
        uint64_t need = qd_check_sample_bytes(j->d, j->m, j->methods);

        if (need > env->max_sample_bytes)
            return reject(rej, QT_ST_TOO_LARGE, -1,
                          "values: one sample of %zu values at d = %zu is predicted to need "
                          "%llu MB in a worker, above max-sample-mb (%llu MB)",
                          j->m, j->d, (unsigned long long)((need + (1u << 20) - 1) >> 20),
                          (unsigned long long)(env->max_sample_bytes >> 20));
    }
    if (j->part.set)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "boot_part: internal to qtomod's workers");
    return j->boot.resamples ? check_boot(j, req->nm, rej) : 0;
}

static int check_warm(const struct qd_check_env *env, const msgpack_object *params,
                      struct qd_reject *rej)
{
    struct qt_diag dg = {0};
    struct qp_design_d *items = NULL;
    size_t n = 0;
    int r = qp_decode_cache_warm(params, env->max_dim, &items, &n, &dg);

    for (size_t i = 0; r == 0 && i < n; i++) {
        int k = qt_design_kind_from_name(items[i].design);

        if (k < 0 || k == QT_DESIGN_CUSTOM)
            r = qt_diag_set(&dg, QT_EDESIGN, 0, 0, "items[%zu]: '%s' is not a built-in design", i,
                            items[i].design);
    }
    free(items);
    return r < 0 ? reject_err(rej, r, &dg) : 0;
}

static int check_design_d(const struct qp_msg *msg, struct qd_req *req, bool required,
                          struct qd_reject *rej)
{
    struct qt_diag dg = {0};
    int r = qp_decode_design_d(msg->params, QT_DESIGN_MAX_D, req->design, sizeof(req->design),
                               &req->d, &dg);

    if (r < 0)
        return reject_err(rej, r, &dg);
    if (required && (!req->design[0] || !req->d))
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "design and d are required");
    if ((req->design[0] != 0) != (req->d != 0))
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "design and d: give both or neither");
    return 0;
}

static int check_params(const struct qd_check_env *env, const struct qp_msg *msg,
                        struct qd_req *req, struct qd_reject *rej)
{
    struct qt_diag dg = {0};
    const char *text;
    size_t len;
    int r;

    switch (msg->method) {
    case QP_M_RECONSTRUCT:
    case QP_M_SUBMIT:
        return check_job(env, msg, req, rej);
    case QP_M_CANCEL:
        r = qp_decode_cancel(msg->params, &req->target, &dg);
        return r < 0 ? reject_err(rej, r, &dg) : 0;
    case QP_M_DESIGN_PUT:
        r = qp_decode_design_put(msg->params, &text, &len, &dg);
        return r < 0 ? reject_err(rej, r, &dg) : 0;
    case QP_M_DETECTOR_PUT: {
        struct qp_detector_put dp;

        r = qp_decode_detector_put(msg->params, env->max_dim, &dp, &dg);
        return r < 0 ? reject_err(rej, r, &dg) : 0;
    }
    case QP_M_CACHE_WARM:
        return check_warm(env, msg->params, rej);
    case QP_M_CACHE_EVICT:
        return check_design_d(msg, req, true, rej);
    case QP_M_CACHE_VERIFY:
        return check_design_d(msg, req, false, rej);
    default: /* status, stats, cache.list, reload: no parameters to read */
        return 0;
    }
}

#define MAX_PARAM_KEYS 32

/* The params map itself: a map (or absent) of string keys, each given once. */
static int check_keys(const msgpack_object *params, struct qd_reject *rej)
{
    const msgpack_object_kv *kv;
    uint32_t n;

    if (!params)
        return 0;
    if (params->type != MSGPACK_OBJECT_MAP)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "params: not a map");
    kv = params->via.map.ptr;
    n = params->via.map.size;
    if (n > MAX_PARAM_KEYS)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "params: %u keys, at most %u", n,
                      MAX_PARAM_KEYS);
    for (uint32_t i = 0; i < n; i++) {
        if (kv[i].key.type != MSGPACK_OBJECT_STR)
            return reject(rej, QT_ST_INVALID_PARAMS, -1, "params: a key is not a string");
        for (uint32_t j = 0; j < i; j++)
            if (kv[j].key.via.str.size == kv[i].key.via.str.size &&
                memcmp(kv[j].key.via.str.ptr, kv[i].key.via.str.ptr, kv[i].key.via.str.size) == 0)
                return reject(rej, QT_ST_INVALID_PARAMS, -1, "params: \"%.*s\" given twice",
                              (int)(kv[i].key.via.str.size > 48 ? 48 : kv[i].key.via.str.size),
                              kv[i].key.via.str.ptr);
    }
    return 0;
}

static bool needs_workers(int m)
{
    return m == QP_M_RECONSTRUCT || m == QP_M_SUBMIT || m == QP_M_DESIGN_PUT ||
           m == QP_M_DETECTOR_PUT || m == QP_M_CACHE_WARM || m == QP_M_CACHE_VERIFY;
}

static int check_hello(const struct qd_peer *peer, const struct qp_msg *msg, struct qd_req *req,
                       struct qd_reject *rej)
{
    struct qt_diag dg = {0};
    int r;

    if (peer->hello_done)
        return reject(rej, QT_ST_INVALID_REQUEST, -1, "hello was already done");
    r = qp_decode_hello(msg->params, &req->hello, &dg);
    if (r < 0)
        return reject(rej, QT_ST_INVALID_PARAMS, -1, "%s", dg.msg);
    if (req->hello.major != QP_VERSION_MAJOR) {
        reject(rej, QT_ST_UNSUPPORTED_PROTOCOL, -1,
               "protocol %u.%u is not supported; this server speaks %u.%u", req->hello.major,
               req->hello.minor, QP_VERSION_MAJOR, QP_VERSION_MINOR);
        rej->close = true;
        return -EINVAL;
    }
    return 0;
}

/* The connection's state: hello first, one request per id, admin, draining, in flight. */
static int check_peer(const struct qd_check_env *env, const struct qd_peer *peer,
                      const struct qp_msg *msg, struct qd_reject *rej)
{
    int m = msg->method;

    if (!peer->hello_done)
        return reject(rej, QT_ST_INVALID_REQUEST, -1, "hello must come first");
    if (peer->id_busy && peer->id_busy(peer->ud, msg->id))
        return reject(rej, QT_ST_INVALID_REQUEST, -1, "this id is already in flight");
    if (qp_methods[m].admin && !peer->admin)
        return reject(rej, QT_ST_PERMISSION_DENIED, -1,
                      "this method needs root, the daemon's user or the admin group");
    if (env->draining && m != QP_M_STATUS && m != QP_M_STATS && m != QP_M_CANCEL)
        return reject(rej, QT_ST_SHUTTING_DOWN, -1, "the server is shutting down");
    if (needs_workers(m) && peer->inflight >= env->max_inflight)
        return reject(rej, QT_ST_BUSY, QD_BUSY_RETRY_MS,
                      "too many requests in flight on this connection");
    return 0;
}

int qd_check(const struct qd_check_env *env, const struct qd_peer *peer, const struct qp_msg *msg,
             struct qd_req *req, struct qd_reject *rej)
{
    int m = msg->method, r;

    memset(req, 0, sizeof(*req));
    qp_job_init(&req->job);
    rej->msg[0] = '\0';
    if (msg->type != QP_REQUEST)
        return reject(rej, QT_ST_INVALID_REQUEST, -1, "clients send only requests");
    if (m < 0 || m >= _QP_M_MAX || qp_methods[m].dir != QP_C2S_REQUEST)
        return reject(rej, QT_ST_METHOD_NOT_FOUND, -1, "unknown method '%s'", msg->method_name);
    req->method = (enum qp_method)m;
    req->id = msg->id;
    if (m == QP_M_HELLO) {
        r = check_keys(msg->params, rej);
        return r < 0 ? r : check_hello(peer, msg, req, rej);
    }
    r = check_peer(env, peer, msg, rej);
    if (r == 0)
        r = check_keys(msg->params, rej);
    if (r == 0)
        r = check_params(env, msg, req, rej);
    if (r < 0) {
        qd_req_done(req);
        return r;
    }
    req->params = msg->params;
    return 0;
}

void qd_req_done(struct qd_req *req)
{
    qp_job_done(&req->job);
}
