/* qtomod's worker channel (SCHEMA.md §4 `w.ready`, `w.result`): the two worker notifications,
 * and submit items whose fixed fields are packed once per request and relayed as bytes. */
#include <errno.h>

#include "qp.h"

int qp_pack_w_ready(struct qp_writer *w)
{
    qp_begin_notification(w, QP_M_W_READY);
    (void)msgpack_pack_map(&w->pk, 0);
    return qp_frame_end(w, UINT32_MAX);
}

int qp_pack_w_result(struct qp_writer *w, const struct qp_w_result *r)
{
    qp_begin_notification(w, QP_M_W_RESULT);
    (void)msgpack_pack_map(&w->pk, 4u + (r->boot != NULL));
    qp_pack_key(&w->pk, "index");
    (void)msgpack_pack_uint64(&w->pk, r->index);
    qp_pack_key(&w->pk, "us");
    (void)msgpack_pack_double(&w->pk, r->us);
    qp_pack_key(&w->pk, "failed");
    (void)msgpack_pack_uint32(&w->pk, r->failed);
    qp_pack_key(&w->pk, "results");
    (void)msgpack_pack_bin_with_body(&w->pk, r->results, r->len);
    if (r->boot)
        qp_pack_boot_rows(&w->pk, r->boot, r->n_boot);
    return qp_frame_end(w, UINT32_MAX);
}

int qp_decode_w_result(const msgpack_object *params, struct qp_w_result *r, struct qt_diag *reterr)
{
    const msgpack_object *res = qp_get(params, "results");
    const uint8_t *p;
    uint64_t failed = 0, n;

    if (qp_read_u64(qp_get(params, "index"), "index", UINT64_MAX, &r->index, reterr) < 0 ||
        qp_read_f64(qp_get(params, "us"), "us", &r->us, reterr) < 0 ||
        qp_read_u64(qp_get(params, "failed"), "failed", UINT32_MAX, &failed, reterr) < 0)
        return QT_EPARSE;
    if (!res || res->type != MSGPACK_OBJECT_BIN || res->via.bin.size == 0)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "results: not a non-empty bin");
    if (qp_prescan((const uint8_t *)res->via.bin.ptr, res->via.bin.size, reterr) < 0)
        return QT_EPARSE;
    p = (const uint8_t *)res->via.bin.ptr; /* the array's length, from its header */
    if (p[0] >= 0x90 && p[0] <= 0x9f)
        n = p[0] & 0x0fu;
    else if (p[0] == 0xdc) /* complete: the pre-scan checked it */
        n = (uint64_t)p[1] << 8 | p[2];
    else
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "results: not an array");
    if (failed > n)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "failed: %llu of %llu results",
                           (unsigned long long)failed, (unsigned long long)n);
    r->failed = (uint32_t)failed;
    r->boot = NULL;
    r->n_boot = 0;
    r->boot_obj = qp_get(params, "boot");
    r->results = res->via.bin.ptr;
    r->len = res->via.bin.size;
    return 0;
}

int qp_pack_chunk(struct qp_writer *w, uint32_t id, const void *values_le, size_t m, size_t n,
                  size_t first_index, const void *fields, size_t len, size_t nf,
                  const struct qp_boot_part *part, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_begin_request(w, id, QP_M_SUBMIT);
    (void)msgpack_pack_map(pk, nf + 2 + (part != NULL));
    if (part)
        qp_pack_boot_part(pk, part);
    qp_pack_key(pk, "values");
    qp_pack_f64m(pk, values_le, m, n);
    if (msgpack_sbuffer_write(&w->sb, fields, len) < 0) {
        qp_writer_reset(w);
        return -ENOMEM;
    }
    qp_pack_key(pk, "first_index");
    (void)msgpack_pack_uint64(pk, first_index);
    return qp_frame_end(w, max_frame);
}
