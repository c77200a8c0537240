/* Request checking: from a decoded client message to an accepted request, or a refusal with
 * its public code and a message naming the field. It owns every check of a request: method
 * and direction, the connection's state (hello first, admin, in-flight limit, draining), each
 * field's type, shape and range, and the relations between fields (values vs d vs design vs
 * target vs design_id). Nothing after it re-checks or trusts an unchecked size. No I/O: what it
 * needs to know of the world (custom designs, ids in flight) comes through the env and peer
 * callbacks; tests/unit/test_check.c and tests/fuzz/fuzz_check.c drive it directly. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qd_sched.h"
#include "qp.h"

#define QD_BUSY_RETRY_MS 200 /* the retry hint of a BUSY refusal */

struct qd_check_env {
    uint32_t max_dim, max_batch, max_inflight;
    bool draining;
    /* The dimension of an uploaded custom design with this id and m outcomes (d: 0 for any):
     * 0 with *ret_d, -ENOENT when there is none, another negative error on failure. */
    int (*find_custom)(void *ud, const char *id, size_t d, size_t m, size_t *ret_d);
    void *ud;
    /* The most memory one sample may be predicted to need in a worker (qd_check_sample_bytes;
     * qtomod: max-sample-mb), 0: no limit. */
    uint64_t max_sample_bytes;
};

/* What a worker is predicted to hold while it estimates one sample of m values in dimension d
 * with these methods (bytes): the process itself (QD_WORKER_BASE_BYTES), three copies of the
 * values (the frame, the decoded sample, a resample), 1.5x the estimators' workspace bound
 * (qt_estimate_ws_bound; the arena can hold a spare block while it grows on a first sample)
 * and four d x d complex matrices per method for the results. Saturates at UINT64_MAX. */
#define QD_WORKER_BASE_BYTES ((uint64_t)64 << 20)
uint64_t qd_check_sample_bytes(size_t d, size_t m, const bool methods[_QT_METHOD_MAX]);

/* What the checks need to know of the connection. */
struct qd_peer {
    bool hello_done, admin;
    unsigned inflight; /* its requests in flight */
    /* Whether a request with this id is in flight on the connection. */
    bool (*id_busy)(void *ud, uint32_t id);
    void *ud;
};

/* An accepted request. */
struct qd_req {
    enum qp_method method;
    uint32_t id;
    /* reconstruct, submit: the decoded job with d resolved; its methods in order */
    struct qp_job job;
    enum qt_method meth[_QT_METHOD_MAX];
    size_t nm;
    char key[QD_SCHED_KEY_LEN]; /* "<design or design_id>-d<d>" */
    struct qp_hello hello;
    uint32_t target; /* cancel */
    char design[64]; /* cache.evict, cache.verify (empty: every file) */
    size_t d;
    const msgpack_object *params; /* design.put, cache.warm, cache.verify: forwarded as is */
};

/* A refusal: an error response with code (qt_status.h) and message; with close the
 * connection ends after it (a protocol version it cannot speak). */
struct qd_reject {
    int code;
    char msg[256];
    int64_t retry_ms; /* -1: none */
    bool close;
};

/* Checks msg (a decoded request). Returns 0 with *req filled (qd_req_done frees it; params
 * point into msg), or a negative value with *rej filled. */
QT_NODISCARD int qd_check(const struct qd_check_env *env, const struct qd_peer *peer,
                          const struct qp_msg *msg, struct qd_req *req, struct qd_reject *rej);
void qd_req_done(struct qd_req *req);
