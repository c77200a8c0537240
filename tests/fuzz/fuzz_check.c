/* libFuzzer target for request checking (daemon/qd_check.c), structure-aware: the first byte
 * picks a client method, the second the connection's state (hello done, admin, draining, in
 * flight at the limit), and the rest are mutations of that method's valid request (qt_reqgen:
 * values replaced by other types, shapes and extremes, keys removed, duplicated or unknown, the
 * envelope's type, id or method changed). Most inputs so reach the field and relation checks;
 * the seeds are each method's valid request. */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "qd_check.h"
#include "qt_reqgen.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static enum qp_method pick_method(uint8_t b)
{
    int n = 0, want;

    for (int m = 0; m < _QP_M_MAX; m++)
        n += qp_methods[m].dir == QP_C2S_REQUEST;
    want = b % n;
    for (int m = 0; m < _QP_M_MAX; m++)
        if (qp_methods[m].dir == QP_C2S_REQUEST && want-- == 0)
            return (enum qp_method)m;
    return QP_M_HELLO;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qd_check_env env = {16, 64, 4, false, qt_reqgen_find_custom, NULL, (uint64_t)2048 << 20};
    struct qd_peer peer = {true, true, 0, qt_reqgen_id_busy, NULL};
    struct qp_writer w, out;
    struct qp_msg msg;
    struct qt_diag dg = {0};
    struct qd_reject rej;
    struct qd_req req;

    if (size < 2 || size > 4096)
        return 0;
    peer.hello_done = data[1] & 1;
    peer.admin = data[1] & 2;
    env.draining = data[1] & 4;
    peer.inflight = data[1] & 8 ? 4 : 0;
    qp_writer_init(&w);
    qp_writer_init(&out);
    if (qt_reqgen_valid(pick_method(data[0]), &w) == 0 &&
        qt_reqgen_mutate((const uint8_t *)w.sb.data + QP_HEADER_LEN, w.sb.size - QP_HEADER_LEN,
                         data + 2, size - 2, &out) == 0) {
        if (qp_msg_decode((const uint8_t *)out.sb.data + QP_HEADER_LEN, out.sb.size - QP_HEADER_LEN,
                          &msg, &dg) == 0) {
            if (qd_check(&env, &peer, &msg, &req, &rej) == 0)
                qd_req_done(&req);
            else if (rej.msg[0] == '\0' || rej.code > -32000)
                __builtin_trap(); /* every refusal has a public code and a message */
        }
        qp_msg_done(&msg);
    }
    qp_writer_done(&w);
    qp_writer_done(&out);
    return 0;
}
