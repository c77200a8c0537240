/* Messages the supervisor assembles from a worker's already-encoded results, and result arrays
 * for items that never produced any (SCHEMA.md §4 `result`, `reconstruct`, Decisions 13). */
#include <string.h>

#include "base/qt_status.h"
#include "qp.h"

int qp_pack_result_notify_raw(struct qp_writer *w, uint32_t request, uint64_t index,
                              const void *results, size_t len, const void *unc, size_t unc_len,
                              double compute_ms, uint32_t max_frame)
{
    qp_begin_notification(w, QP_M_RESULT);
    (void)msgpack_pack_map(&w->pk, 3u + (compute_ms >= 0) + (unc != NULL));
    if (compute_ms >= 0) {
        qp_pack_key(&w->pk, "compute_ms");
        (void)msgpack_pack_double(&w->pk, compute_ms);
    }
    qp_pack_key(&w->pk, "request");
    (void)msgpack_pack_uint32(&w->pk, request);
    qp_pack_key(&w->pk, "index");
    (void)msgpack_pack_uint64(&w->pk, index);
    qp_pack_key(&w->pk, "results");
    (void)msgpack_sbuffer_write(&w->sb, results, len);
    if (unc) {
        qp_pack_key(&w->pk, "uncertainty");
        (void)msgpack_sbuffer_write(&w->sb, unc, unc_len);
    }
    return qp_frame_end(w, max_frame);
}

int qp_pack_reconstruct_result_raw(struct qp_writer *w, uint32_t id, const void *results,
                                   size_t len, const void *unc, size_t unc_len, double queue_ms,
                                   double compute_ms, int32_t worker, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_response(w, id);
    (void)msgpack_pack_map(pk, 4u + (unc != NULL));
    qp_pack_key(pk, "index");
    (void)msgpack_pack_uint8(pk, 0);
    qp_pack_key(pk, "results");
    (void)msgpack_sbuffer_write(&w->sb, results, len);
    qp_pack_key(pk, "timing");
    (void)msgpack_pack_map(pk, 2);
    qp_pack_key(pk, "queue_ms");
    (void)msgpack_pack_double(pk, queue_ms);
    qp_pack_key(pk, "compute_ms");
    (void)msgpack_pack_double(pk, compute_ms);
    qp_pack_key(pk, "worker");
    (void)msgpack_pack_int32(pk, worker);
    if (unc) {
        qp_pack_key(pk, "uncertainty");
        (void)msgpack_sbuffer_write(&w->sb, unc, unc_len);
    }
    return qp_frame_end(w, max_frame);
}

void qp_pack_error_results(msgpack_packer *pk, const enum qt_method *methods, size_t n_methods,
                           size_t d, int err, const char *message)
{
    (void)msgpack_pack_array(pk, n_methods);
    for (size_t i = 0; i < n_methods; i++) {
        (void)msgpack_pack_map(pk, 4);
        qp_pack_key(pk, "method");
        qp_pack_str(pk, qt_method_name(methods[i]));
        qp_pack_key(pk, "dim");
        (void)msgpack_pack_uint64(pk, d);
        qp_pack_key(pk, "status");
        qp_pack_str(pk, "error");
        qp_pack_key(pk, "error");
        (void)msgpack_pack_map(pk, 3);
        qp_pack_key(pk, "code");
        (void)msgpack_pack_int32(pk, qt_status_from_err(err));
        qp_pack_key(pk, "name");
        qp_pack_str(pk, qt_errname(err));
        qp_pack_key(pk, "message");
        qp_pack_str(pk, message);
    }
}
