/* libFuzzer target for the wire codec: the input is a byte stream as a peer would send it.
 * Frames are cut by their length headers (max frame 1 MiB here), pre-scanned and decoded, and
 * every typed decoder that applies to the message is run on it: hello, reconstruct/submit
 * params, cancel, design.put, cache.warm, design/d, progress, results; on responses every result
 * decoder (hello, totals, result maps, u64, cancel, status/stats, id, cache.list, cache.verify)
 * and, for an error map, qp_decode_error. A single body without a header is also decoded
 * directly (first byte odd), so seeds can be plain message bodies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "num/qt_design_kind.h"
#include "qp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX_FRAME (1u << 20)

/* Results of the decoders: kept so that they are not optimised away or ignored (xor: a sum
 * over millions of runs would overflow). */
static volatile int sink;

/* Each entry of an "uncertainty" array, at two dimensions. */
static void decode_unc(const msgpack_object *o)
{
    struct qt_uncertainty u = {0};
    struct qt_diag err;

    for (uint32_t i = 0; o && o->type == MSGPACK_OBJECT_ARRAY && i < o->via.array.size; i++)
        for (size_t d = 2; d <= 4; d += 2) {
            sink ^= qp_decode_uncertainty(&o->via.array.ptr[i], d, &u, &err);
            qt_uncertainty_done(&u);
        }
}

/* Every result decoder on the result, and the error decoder on an error map. */
static void decode_response(const struct qp_msg *msg)
{
    static const char *const u64_keys[] = {"warmed", "bytes", "generation"};
    const msgpack_object *results = qp_get(msg->result, "results");
    struct qt_diag err;
    struct qp_server_info si;
    struct qp_totals t;
    struct qp_status st;
    struct qt_cache_entry *entries;
    struct qp_damaged *dm;
    char id[64];
    uint64_t v;
    size_t n;
    bool found;

    sink ^= qp_decode_hello_result(msg->result, &si, &err);
    sink ^= qp_decode_totals(msg->result, &t, &err);
    if (results && results->type == MSGPACK_OBJECT_ARRAY) {
        struct qt_result res = {0};

        for (uint32_t i = 0; i < results->via.array.size; i++)
            sink ^= qp_decode_result_map(&results->via.array.ptr[i], 64, &res, &err);
        qt_result_done(&res);
    }
    decode_unc(qp_get(msg->result, "uncertainty"));
    for (size_t i = 0; i < sizeof(u64_keys) / sizeof(u64_keys[0]); i++)
        sink ^= qp_decode_u64_result(msg->result, u64_keys[i], &v, &err);
    sink ^= qp_decode_cancel_result(msg->result, &found, &err);
    sink ^= qp_decode_status_result(msg->result, &st, &err);
    qp_status_done(&st);
    sink ^= qp_decode_id_result(msg->result, id, sizeof(id), &err);
    {
        struct qp_detector_put_result dr;

        sink ^= qp_decode_detector_put_result(msg->result, &dr, &err);
    }
    sink ^= qp_decode_cache_list_result(msg->result, &entries, &n, &err);
    free(entries);
    sink ^= qp_decode_verify_result(msg->result, &v, &dm, &n, &err);
    free(dm);
    if (msg->error && msg->error->type == MSGPACK_OBJECT_MAP) {
        struct qp_error e;

        sink ^= qp_decode_error(msg->error, &e, &err);
    }
}

static void decode_typed(const struct qp_msg *msg)
{
    struct qt_diag err;

    if (msg->type == QP_RESPONSE) {
        decode_response(msg);
        return;
    }
    switch (msg->method) {
    case QP_M_HELLO: {
        struct qp_hello h;

        sink ^= qp_decode_hello(msg->params, &h, &err);
        break;
    }
    case QP_M_RECONSTRUCT:
    case QP_M_SUBMIT: {
        struct qp_job j;

        if (qp_decode_job(msg->params, (enum qp_method)msg->method, 64, 1024, &j, &err) == 0)
            qp_job_done(&j);
        break;
    }
    case QP_M_CANCEL: {
        uint32_t id;

        sink ^= qp_decode_cancel(msg->params, &id, &err);
        break;
    }
    case QP_M_DESIGN_PUT: {
        const char *text;
        size_t len;

        if (qp_decode_design_put(msg->params, &text, &len, &err) == 0 && len)
            sink ^= text[0] + text[len - 1]; /* the text points into the message */
        break;
    }
    case QP_M_DETECTOR_PUT: {
        struct qp_detector_put dp;

        if (qp_decode_detector_put(msg->params, 64, &dp, &err) == 0)
            sink ^= dp.text[0] + dp.text[dp.len - 1] + dp.design[0]; /* into the message */
        break;
    }
    case QP_M_CACHE_WARM: {
        struct qp_design_d *items;
        size_t n;

        sink ^= qp_decode_cache_warm(msg->params, 64, &items, &n, &err);
        free(items);
        break;
    }
    case QP_M_W_RESULT: {
        struct qp_w_result wr;

        if (qp_decode_w_result(msg->params, &wr, &err) == 0 && wr.boot_obj) {
            struct qp_boot_rows rows[_QT_METHOD_MAX];

            for (size_t n = 1; n <= _QT_METHOD_MAX; n++)
                sink ^= qp_decode_boot_rows(wr.boot_obj, n, 2, rows, &err);
        }
        break;
    }
    case QP_M_PROGRESS: {
        struct qp_progress p;

        sink ^= qp_decode_progress(msg->params, &p, &err);
        break;
    }
    case QP_M_RESULT: {
        const msgpack_object *results = qp_get(msg->params, "results");
        struct qt_result res = {0};

        for (uint32_t i = 0;
             results && results->type == MSGPACK_OBJECT_ARRAY && i < results->via.array.size; i++)
            sink ^= qp_decode_result_map(&results->via.array.ptr[i], 64, &res, &err);
        qt_result_done(&res);
        decode_unc(qp_get(msg->params, "uncertainty"));
        break;
    }
    default: {
        char design[64];
        size_t d;

        sink ^=
            qp_decode_design_d(msg->params, QT_DESIGN_MAX_DIM, design, sizeof(design), &d, &err);
        break;
    }
    }
}

static void decode_body(const uint8_t *body, size_t len)
{
    struct qp_msg msg;
    struct qt_diag err;

    /* Copy so that ASan sees reads past the body as overflows. */
    uint8_t *copy = malloc(len ? len : 1);

    if (!copy)
        return;
    memcpy(copy, body, len);
    if (qp_msg_decode(copy, len, &msg, &err) == 0)
        decode_typed(&msg);
    qp_msg_done(&msg);
    free(copy);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] & 1) {
        decode_body(data + 1, size - 1);
        return 0;
    }
    data++, size--;
    while (size >= QP_HEADER_LEN) {
        uint32_t len;

        if (qp_frame_header(data, FUZZ_MAX_FRAME, &len) < 0)
            return 0; /* the connection would be closed */
        data += QP_HEADER_LEN, size -= QP_HEADER_LEN;
        if (len > size)
            return 0; /* waits for more bytes */
        decode_body(data, len);
        data += len, size -= len;
    }
    return 0;
}
