/* The qtomo wire protocol (SCHEMA.md is normative): length-prefixed msgpack-rpc frames, a
 * bounded pre-scan before msgpack-c sees a byte, typed encoders and decoders. Bytes in,
 * messages out; no I/O, no logging. Shared by qtomod and the client library. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "num/qt_result.h"
#include "num/qt_uncert.h"
#include "qp_framer.h"

#define QP_VERSION_MAJOR     1
#define QP_VERSION_MINOR     0
#define QP_DEFAULT_MAX_FRAME (64u << 20) /* bytes of body; configurable, advertised in hello */
#define QP_MIN_MAX_FRAME     4096u
#define QP_MAX_DEPTH         16u /* nesting depth of values (the outermost is 1) */
#define QP_HEADER_LEN        4u

enum qp_type { QP_REQUEST = 0, QP_RESPONSE = 1, QP_NOTIFICATION = 2 };

/* Who sends a method: C2S requests, S2C notifications, and on qtomod's worker channel W2S
 * notifications (the supervisor sends workers C2S requests: submit items and tasks). */
enum qp_dir { QP_C2S_REQUEST, QP_S2C_NOTIFY, QP_W2S_NOTIFY };

/* X(ENUM, "name", direction, admin, "summary"): the one table of methods. Dispatch in qtomod,
 * the client stubs and `qtomoctl help` iterate it; a test checks SCHEMA.md against it. */
#define QP_METHODS(X)                                                                          \
    X(HELLO, "hello", QP_C2S_REQUEST, false, "handshake: versions, limits, features, workers") \
    X(RECONSTRUCT, "reconstruct", QP_C2S_REQUEST, false,                                       \
      "reconstruct one sample on the interactive queue")                                       \
    X(SUBMIT, "submit", QP_C2S_REQUEST, false,                                                 \
      "reconstruct a batch; results stream as notifications")                                  \
    X(CANCEL, "cancel", QP_C2S_REQUEST, false, "cancel a request of this connection")          \
    X(STATUS, "status", QP_C2S_REQUEST, false, "uptime, queues, in-flight, workers, cache")    \
    X(STATS, "stats", QP_C2S_REQUEST, false, "status plus totals and per-worker detail")       \
    X(DESIGN_PUT, "design.put", QP_C2S_REQUEST, false,                                         \
      "upload a custom design; returns its content id")                                        \
    X(DETECTOR_PUT, "detector.put", QP_C2S_REQUEST, false,                                     \
      "upload a detector model for a design; returns its effective design's id")               \
    X(CACHE_LIST, "cache.list", QP_C2S_REQUEST, false, "list projector cache files")           \
    X(CACHE_WARM, "cache.warm", QP_C2S_REQUEST, false, "build cache files ahead of use")       \
    X(CACHE_EVICT, "cache.evict", QP_C2S_REQUEST, true, "remove an unmapped cache file")       \
    X(CACHE_VERIFY, "cache.verify", QP_C2S_REQUEST, false, "verify every checksum of files")   \
    X(RELOAD, "reload", QP_C2S_REQUEST, true, "re-read the configuration, roll the workers")   \
    X(RESULT, "result", QP_S2C_NOTIFY, false, "one sample's results of a submit")              \
    X(PROGRESS, "progress", QP_S2C_NOTIFY, false, "rate-limited progress of a submit")         \
    X(BYE, "bye", QP_S2C_NOTIFY, false, "the server is about to close the connection")         \
    X(PROTOCOL_ERROR, "protocol_error", QP_S2C_NOTIFY, false,                                  \
      "an unreadable frame; the server closes the connection")                                 \
    X(W_READY, "w.ready", QP_W2S_NOTIFY, false, "worker channel: the worker takes work")       \
    X(W_RESULT, "w.result", QP_W2S_NOTIFY, false, "worker channel: one sample's results")

#define QP_METHOD_ENUM_(E, n, d, a, s) QP_M_##E,

enum qp_method { QP_METHODS(QP_METHOD_ENUM_) _QP_M_MAX };

#undef QP_METHOD_ENUM_

struct qp_method_desc {
    const char *name;
    enum qp_dir dir;
    bool admin;
    const char *summary;
};

extern const struct qp_method_desc qp_methods[_QP_M_MAX];

/* Method by name; -1 when unknown. */
int qp_method_find(const char *name, size_t len);

/* ---- frames ---- */

/* Frames are assembled from a byte stream by the framer of qp_framer.h (included above). */

/* Reads a frame header. Returns 0 with *ret_len, QT_ETOOBIG when the body is longer than
 * max_frame, QT_EPARSE for an empty body. */
QT_NODISCARD int qp_frame_header(const uint8_t hdr[QP_HEADER_LEN], uint32_t max_frame,
                                 uint32_t *ret_len);

/* Walks one msgpack value over exactly len bytes without allocating: every container count and
 * str/bin/ext length is bounded by the bytes left, nesting by QP_MAX_DEPTH, and no byte may
 * trail. Returns 0 or QT_EPARSE (message in *reterr). */
QT_NODISCARD int qp_prescan(const uint8_t *buf, size_t len, struct qt_diag *reterr);

/* ---- envelope ---- */

struct qp_msg {
    enum qp_type type;
    bool id_valid; /* requests and responses: the id could be read */
    uint32_t id;   /* request id */
    int method;    /* enum qp_method, -1 when unknown */
    char method_name[48];
    const msgpack_object *params; /* requests, notifications: the single map, or NULL */
    const msgpack_object *error;  /* responses: nil or the error map */
    const msgpack_object *result; /* responses */
    msgpack_unpacked up;          /* owns what the pointers above point to */
};

/* Decodes one frame body (pre-scanned here). On success the msg holds the parsed message until
 * qp_msg_done. On failure returns QT_EPARSE: with msg->id_valid the sender gets an error
 * response and the connection goes on, otherwise the frame was unreadable. Always call
 * qp_msg_done. */
QT_NODISCARD int qp_msg_decode(const uint8_t *body, size_t len, struct qp_msg *msg,
                               struct qt_diag *reterr);
void qp_msg_done(struct qp_msg *msg);

/* ---- building frames ---- */

/* A frame being written: an sbuffer whose first 4 bytes are the length, patched by
 * qp_frame_end. One writer can hold many frames back to back. */
struct qp_writer {
    msgpack_sbuffer sb;
    msgpack_packer pk;
    size_t start; /* offset of the frame being written */
};

void qp_writer_init(struct qp_writer *w);
void qp_writer_done(struct qp_writer *w);
void qp_writer_reset(struct qp_writer *w); /* drop everything written */
/* Starts a frame (reserves the header). */
void qp_frame_begin(struct qp_writer *w);
/* Patches the header. Returns 0 or QT_ETOOBIG when the body exceeds max_frame (the frame is
 * then dropped from the writer). */
QT_NODISCARD int qp_frame_end(struct qp_writer *w, uint32_t max_frame);

/* Envelope helpers: they start the array, write type, id and method, and leave the packer at
 * the start of params (a 1-element array is opened; write one map) or of result. */
void qp_begin_request(struct qp_writer *w, uint32_t id, enum qp_method m);
void qp_begin_notification(struct qp_writer *w, enum qp_method m);
void qp_begin_response(struct qp_writer *w, uint32_t id); /* error nil; then write the result */

/* Writes a whole error response frame [1, id, {code, message[, data: {retry_after_ms}]}, nil].
 * code is a public status code (qt_status.h). */
QT_NODISCARD int qp_write_error(struct qp_writer *w, uint32_t id, int code, const char *message,
                                int64_t retry_after_ms, uint32_t max_frame);
/* A whole protocol_error notification frame [2, "protocol_error", [{code, message}]]. */
QT_NODISCARD int qp_write_protocol_error(struct qp_writer *w, int code, const char *message,
                                         uint32_t max_frame);
/* A whole bye notification frame [2, "bye", [{reason, retry_after_ms}]]. */
QT_NODISCARD int qp_write_bye(struct qp_writer *w, const char *reason, int64_t retry_after_ms,
                              uint32_t max_frame);

/* Packing small values. */
void qp_pack_str(msgpack_packer *pk, const char *s);
void qp_pack_key(msgpack_packer *pk, const char *key); /* same as qp_pack_str */
/* {dtype: "f64le", shape: [n], data: bin} and the complex d x d column-major variant. */
void qp_pack_f64v(msgpack_packer *pk, const double *v, size_t n);
void qp_pack_f64m(msgpack_packer *pk, const void *v_le, size_t rows, size_t cols); /* doubles */
void qp_pack_c128m(msgpack_packer *pk, const double complex *v, size_t rows, size_t cols);

/* ---- reading values ---- */

/* Map lookup by key; NULL when absent or when o is not a map. */
const msgpack_object *qp_get(const msgpack_object *map, const char *key);
/* Typed reads with range checks. Return 0, -ENOENT when absent (only from the _key variants)
 * or QT_EPARSE with a message naming the field. */
QT_NODISCARD int qp_read_u64(const msgpack_object *o, const char *field, uint64_t max,
                             uint64_t *ret, struct qt_diag *reterr);
QT_NODISCARD int qp_read_f64(const msgpack_object *o, const char *field, double *ret,
                             struct qt_diag *reterr);
QT_NODISCARD int qp_read_bool(const msgpack_object *o, const char *field, bool *ret,
                              struct qt_diag *reterr);
/* Copies a str into buf (NUL-terminated); QT_EPARSE when not a str or too long. */
QT_NODISCARD int qp_read_str(const msgpack_object *o, const char *field, char *buf, size_t len,
                             struct qt_diag *reterr);
/* A bulk array {dtype, shape, data}: checks dtype ("f64le" or "c128le" as asked), shape rank
 * and sizes against data, and returns a malloc'd aligned copy (native doubles) and the shape. */
QT_NODISCARD int qp_read_array(const msgpack_object *o, const char *field, bool complex_,
                               size_t rank, size_t *shape, size_t max_elems, void **ret,
                               struct qt_diag *reterr);

/* ---- typed messages ---- */

struct qp_hello {
    uint32_t major, minor;
    char client[64];
};

QT_NODISCARD int qp_pack_hello(struct qp_writer *w, uint32_t id, const char *client,
                               uint32_t max_frame);
QT_NODISCARD int qp_decode_hello(const msgpack_object *params, struct qp_hello *h,
                                 struct qt_diag *reterr);

/* Server identity and limits, the hello result. */
struct qp_server_info {
    uint32_t major, minor;
    char server[64];
    uint32_t max_frame;
    uint32_t max_dim;
    uint32_t max_batch;    /* samples per submit */
    uint32_t max_inflight; /* requests per connection */
    uint32_t max_item_ms;  /* per-item deadline */
    uint32_t workers;
    const char *const *features; /* NULL-terminated */
};

QT_NODISCARD int qp_pack_hello_result(struct qp_writer *w, uint32_t id,
                                      const struct qp_server_info *si, uint32_t max_frame);
QT_NODISCARD int qp_decode_hello_result(const msgpack_object *result, struct qp_server_info *si,
                                        struct qt_diag *reterr);

/* A reconstruction request: one sample (reconstruct, n = 1) or a batch (submit). */
/* The rows of one bootstrap unit (qtomod's workers only): resamples [k0, k0 + n) of the item's
 * one sample, whose absolute index is sample. */
struct qp_boot_part {
    bool set;
    uint64_t sample;
    uint32_t k0, n;
};

struct qp_job {
    double *values;        /* m x n column-major (owned); NULL after qp_decode_job_ref */
    const void *values_le; /* qp_decode_job_ref: the same values as m x n little-endian doubles
                              in the message, borrowed (unaligned; read them with memcpy) */
    size_t m, n;
    char design[16];    /* built-in design name or "custom" */
    char design_id[64]; /* custom: the id from design.put */
    size_t d;           /* 0: infer from m */
    bool methods[_QT_METHOD_MAX];
    struct qt_opts opts;    /* opts.target points at target below */
    double complex *target; /* d x d (owned) or NULL */
    size_t target_d;        /* the target's dimension as decoded (its shape is [target_d]^2) */
    uint32_t timeout_ms;    /* 0: server default */
    uint32_t progress_ms;   /* submit: minimum interval of progress notifications */
    size_t first_index;     /* submit: index of the first column (for resumed batches) */
    struct qt_boot_req boot; /* error bars asked for (boot.resamples 0: none) */
    struct qp_boot_part part; /* a worker's item: the unit of resamples it computes */
};

void qp_job_init(struct qp_job *j);
void qp_job_done(struct qp_job *j);
/* Encodes a job as a reconstruct (n must be 1) or submit request. */
QT_NODISCARD int qp_pack_job(struct qp_writer *w, uint32_t id, enum qp_method m,
                             const struct qp_job *j, uint32_t max_frame);
/* Decodes reconstruct/submit params (bounded by max_dim and max_batch). Errors name the field. */
QT_NODISCARD int qp_decode_job(const msgpack_object *params, enum qp_method m, size_t max_dim,
                               size_t max_batch, struct qp_job *j, struct qt_diag *reterr);
/* The same checks without copying the values: j->values_le points into the message's buffer,
 * which must outlive its use (a server keeps a large frame's buffer instead of copying it). */
QT_NODISCARD int qp_decode_job_ref(const msgpack_object *params, enum qp_method m, size_t max_dim,
                                   size_t max_batch, struct qp_job *j, struct qt_diag *reterr);

/* One sample's results: the fields of the `qtomoctl --json` record (method, dim, status, rho,
 * metrics, warnings, error), one map per method. */
void qp_pack_result_map(msgpack_packer *pk, const struct qt_result *res);
/* Decodes one result map into res (initialised for at least dim d by the caller, or resized
 * here). Returns 0 or QT_EPARSE. */
QT_NODISCARD int qp_decode_result_map(const msgpack_object *o, size_t max_dim,
                                      struct qt_result *res, struct qt_diag *reterr);

/* The array of result maps of one sample (the value of "results"). */
void qp_pack_results(msgpack_packer *pk, const struct qt_result *const *res, size_t n_res);

/* The same two messages with the results array given as already-encoded msgpack bytes (a
 * worker's output relayed by the supervisor without decoding it). */
/* compute_ms < 0: not sent. */
/* unc: the packed "uncertainty" array (one map or nil per result), or NULL for none. */
QT_NODISCARD int qp_pack_result_notify_raw(struct qp_writer *w, uint32_t request, uint64_t index,
                                           const void *results, size_t len, const void *unc,
                                           size_t unc_len, double compute_ms, uint32_t max_frame);
QT_NODISCARD int qp_pack_reconstruct_result_raw(struct qp_writer *w, uint32_t id,
                                                const void *results, size_t len, const void *unc,
                                                size_t unc_len, double queue_ms,
                                                double compute_ms, int32_t worker,
                                                uint32_t max_frame);
/* A results array of n_methods error maps, all with err (for items that never ran: timeout,
 * crash, too large). methods[] lists the methods in order. */
void qp_pack_error_results(msgpack_packer *pk, const enum qt_method *methods, size_t n_methods,
                           size_t d, int err, const char *message);

/* result notification: [2, "result", [{request, index, results: [...]}]]. */
QT_NODISCARD int qp_pack_result_notify(struct qp_writer *w, uint32_t request, size_t index,
                                       const struct qt_result *const *res, size_t n_res,
                                       uint32_t max_frame);
/* reconstruct response: [1, id, nil, {index: 0, results: [...], timing: {queue_ms, compute_ms},
 * worker}]. */
QT_NODISCARD int qp_pack_reconstruct_result(struct qp_writer *w, uint32_t id,
                                            const struct qt_result *const *res, size_t n_res,
                                            double queue_ms, double compute_ms, int32_t worker,
                                            uint32_t max_frame);

struct qp_progress {
    uint32_t request;
    uint64_t done, failed, total;
    int64_t eta_ms; /* -1: unknown */
};

QT_NODISCARD int qp_pack_progress(struct qp_writer *w, const struct qp_progress *p,
                                  uint32_t max_frame);
QT_NODISCARD int qp_decode_progress(const msgpack_object *params, struct qp_progress *p,
                                    struct qt_diag *reterr);

struct qp_totals {
    uint64_t n_ok, n_err, n_cancelled;
    double elapsed_ms;
};

QT_NODISCARD int qp_pack_submit_result(struct qp_writer *w, uint32_t id, const struct qp_totals *t,
                                       uint32_t max_frame);
QT_NODISCARD int qp_decode_totals(const msgpack_object *o, struct qp_totals *t,
                                  struct qt_diag *reterr);

/* cancel: {id} -> {found}. */
QT_NODISCARD int qp_pack_cancel(struct qp_writer *w, uint32_t id, uint32_t target,
                                uint32_t max_frame);
QT_NODISCARD int qp_decode_cancel(const msgpack_object *params, uint32_t *target,
                                  struct qt_diag *reterr);

/* Methods whose params are an empty map or {design, d} (cache.evict, cache.verify, cache.warm
 * items): a generic request with optional design and d. */
QT_NODISCARD int qp_pack_simple(struct qp_writer *w, uint32_t id, enum qp_method m,
                                const char *design, size_t d, uint32_t max_frame);
QT_NODISCARD int qp_decode_design_d(const msgpack_object *params, size_t max_dim, char *design,
                                    size_t len, size_t *d, struct qt_diag *reterr);

/* ---- error maps ---- */

/* The server's public code for a frame that qp_msg_decode refused: -32600 when the id could be
 * read (answer with an error response), -32700 when it could not (protocol_error, close). */
int qp_msg_status(const struct qp_msg *msg);

/* A cancelled or shut-down submit: an error response whose data is the totals map. */
QT_NODISCARD int qp_write_error_totals(struct qp_writer *w, uint32_t id, int code,
                                       const char *message, const struct qp_totals *t,
                                       uint32_t max_frame);

struct qp_error {
    int code;
    char message[256];      /* truncated to fit */
    int64_t retry_after_ms; /* -1 when absent */
    bool has_totals;
    struct qp_totals totals;
};

/* Decodes an error map {code, message, data?}. */
QT_NODISCARD int qp_decode_error(const msgpack_object *o, struct qp_error *e,
                                 struct qt_diag *reterr);

/* ---- results of the administrative methods ---- */

/* A result map with one u64: cancel {found} uses a bool instead (qp_pack_cancel_result);
 * cache.warm {warmed}, cache.evict {bytes}, reload {generation}. */
QT_NODISCARD int qp_pack_u64_result(struct qp_writer *w, uint32_t id, const char *key, uint64_t v,
                                    uint32_t max_frame);
QT_NODISCARD int qp_decode_u64_result(const msgpack_object *result, const char *key, uint64_t *v,
                                      struct qt_diag *reterr);
QT_NODISCARD int qp_pack_cancel_result(struct qp_writer *w, uint32_t id, bool found,
                                       uint32_t max_frame);
QT_NODISCARD int qp_decode_cancel_result(const msgpack_object *result, bool *found,
                                         struct qt_diag *reterr);

#define QP_MAX_WORKERS 1024u /* entries of stats.workers a decoder accepts */

struct qp_worker_info {
    uint32_t pid;
    char state[16]; /* starting, idle, busy, draining, exiting */
    uint64_t jobs, rss_kb;
};

/* The status result, and with has_stats the stats result. */
struct qp_status {
    double uptime_s;
    uint64_t queue_interactive, queue_batch, inflight, n_workers;
    uint64_t cache_bytes, cache_files, cache_budget;
    bool has_stats;
    uint64_t items, errors, timeouts, crashes, recycled;
    uint64_t output_queued, conns, conns_stopped; /* stats: output flow (0 from older servers) */
    uint64_t input_reserved, conns_waiting_input; /* stats: input of large frames (idem) */
    struct qp_worker_info *workers; /* n_worker_info entries; malloc'd by the decoder */
    size_t n_worker_info;
};

QT_NODISCARD int qp_pack_status_result(struct qp_writer *w, uint32_t id, const struct qp_status *s,
                                       uint32_t max_frame);
QT_NODISCARD int qp_decode_status_result(const msgpack_object *result, struct qp_status *s,
                                         struct qt_diag *reterr);
void qp_status_done(struct qp_status *s); /* frees what the decoder allocated */

/* design.put: params {design: JSON text}; the decoder points into the message (valid until
 * qp_msg_done). Result {id}. */
QT_NODISCARD int qp_pack_design_put(struct qp_writer *w, uint32_t id, const char *text, size_t len,
                                    uint32_t max_frame);
QT_NODISCARD int qp_decode_design_put(const msgpack_object *params, const char **text, size_t *len,
                                      struct qt_diag *reterr);
QT_NODISCARD int qp_pack_id_result(struct qp_writer *w, uint32_t id, const char *design_id,
                                   uint32_t max_frame);
QT_NODISCARD int qp_decode_id_result(const msgpack_object *result, char *buf, size_t len,
                                     struct qt_diag *reterr);

/* detector.put: params {detector: detector-file JSON text, design: base design name, d,
 * design_id: with design "custom"}; the decoder points into the message (valid until
 * qp_msg_done) and checks the design name and the id's form. Result {design, design_id?, d, m,
 * detector?}: the design to reconstruct against ("custom" and the effective design's id, or
 * the base design itself when the model is the identity), and the model's id ("det-" + 32 hex
 * digits; absent for the identity). */
struct qp_detector_put {
    const char *text;
    size_t len;
    char design[16];
    char design_id[64]; /* "" unless design is "custom" */
    size_t d;
};
struct qp_detector_put_result {
    char design[16];
    char design_id[64]; /* "" for a built-in base with the identity model */
    char detector[40];  /* "" for the identity */
    size_t d, m;
};
QT_NODISCARD int qp_pack_detector_put(struct qp_writer *w, uint32_t id,
                                      const struct qp_detector_put *p, uint32_t max_frame);
QT_NODISCARD int qp_decode_detector_put(const msgpack_object *params, size_t max_dim,
                                        struct qp_detector_put *p, struct qt_diag *reterr);
QT_NODISCARD int qp_pack_detector_put_result(struct qp_writer *w, uint32_t id,
                                             const struct qp_detector_put_result *r,
                                             uint32_t max_frame);
QT_NODISCARD int qp_decode_detector_put_result(const msgpack_object *result,
                                               struct qp_detector_put_result *r,
                                               struct qt_diag *reterr);

/* cache.list result {entries: [...]}; the decoder mallocs *ret. */
struct qt_cache_entry;
#define QP_MAX_CACHE_ENTRIES 65536u
QT_NODISCARD int qp_pack_cache_list_result(struct qp_writer *w, uint32_t id,
                                           const struct qt_cache_entry *e, size_t n,
                                           uint32_t max_frame);
QT_NODISCARD int qp_decode_cache_list_result(const msgpack_object *result,
                                             struct qt_cache_entry **ret, size_t *ret_n,
                                             struct qt_diag *reterr);

/* cache.warm params {items: [{design, d}...]}; the decoder mallocs *ret. */
#define QP_MAX_WARM_ITEMS 256u

struct qp_design_d {
    char design[16];
    size_t d;
};

QT_NODISCARD int qp_pack_cache_warm(struct qp_writer *w, uint32_t id,
                                    const struct qp_design_d *items, size_t n, uint32_t max_frame);
QT_NODISCARD int qp_decode_cache_warm(const msgpack_object *params, size_t max_dim,
                                      struct qp_design_d **ret, size_t *ret_n,
                                      struct qt_diag *reterr);

/* cache.verify result {checked, damaged: [{name, reason}...]}. */
struct qp_damaged {
    char name[96];
    char reason[256];
};

QT_NODISCARD int qp_pack_verify_result(struct qp_writer *w, uint32_t id, uint64_t checked,
                                       const struct qp_damaged *dm, size_t n, uint32_t max_frame);
QT_NODISCARD int qp_decode_verify_result(const msgpack_object *result, uint64_t *checked,
                                         struct qp_damaged **ret, size_t *ret_n,
                                         struct qt_diag *reterr);

/* ---- qtomod's worker channel (SCHEMA.md §4 `w.ready`, `w.result`) ---- */

/* [2, "w.ready", [{}]]: the worker is initialised and takes work. */
QT_NODISCARD int qp_pack_w_ready(struct qp_writer *w);

/* One sample's results from a worker: the results array as encoded msgpack bytes (relayed to the
 * client as they are), and how many of its maps are errors, so that the supervisor counts
 * failures without unpacking them. */
struct qp_w_result {
    uint64_t index;      /* absolute column index */
    double us;           /* compute time of the sample */
    uint32_t failed;     /* result maps with status "error" */
    const void *results; /* points into the message (valid until qp_msg_done) */
    size_t len;
    /* a bootstrap unit: packing, rows[n_boot]; decoding, the undecoded "boot" value (NULL when
     * absent; qp_decode_boot_rows reads it) */
    const struct qp_boot_rows *boot;
    size_t n_boot;
    const msgpack_object *boot_obj;
};

QT_NODISCARD int qp_pack_w_result(struct qp_writer *w, const struct qp_w_result *r);
/* Decodes and pre-scans the results bytes; failed must not exceed the array's length. */
QT_NODISCARD int qp_decode_w_result(const msgpack_object *params, struct qp_w_result *r,
                                    struct qt_diag *reterr);

/* ---- error bars (qp_boot.c) ---- */

/* The "bootstrap" key and map of a request. */
void qp_pack_boot_req(msgpack_packer *pk, const struct qt_boot_req *b);
/* Decodes it (absent: b->resamples = 0). Unknown keys, bad values: QT_EOPTION naming them. */
QT_NODISCARD int qp_decode_boot_req(const msgpack_object *o, struct qt_boot_req *b,
                                    struct qt_diag *reterr);
/* The "boot_part" key and value of a worker item: [sample, k0, n]. */
void qp_pack_boot_part(msgpack_packer *pk, const struct qp_boot_part *p);
QT_NODISCARD int qp_decode_boot_part(const msgpack_object *o, struct qp_boot_part *p,
                                     struct qt_diag *reterr);

/* One method's rows of a bootstrap unit, as a worker sends them (qt_bootstrap.h's row layout,
 * little-endian doubles). ok false: the method's point estimate failed (no rows). */
struct qp_boot_rows {
    bool ok;
    uint64_t have;
    uint32_t k0, n;
    const void *rows_le; /* n * qp_boot_stride(have, d) doubles; borrowed */
    size_t len;
    bool boundary;
    bool has_td_bound;
    double td_bound;
};

/* Doubles per row (the same as qt_boot_stride). */
size_t qp_boot_stride(uint64_t have, size_t d);
/* The "boot" key and array of a w.result (one entry per method; nil when !ok). */
void qp_pack_boot_rows(msgpack_packer *pk, const struct qp_boot_rows *rows, size_t n);
/* Decodes it for n_methods methods of dimension d, checking each bin's size. */
QT_NODISCARD int qp_decode_boot_rows(const msgpack_object *o, size_t n_methods, size_t d,
                                     struct qp_boot_rows *rows, struct qt_diag *reterr);
/* One uncertainty map (SCHEMA.md §7). */
void qp_pack_uncertainty(msgpack_packer *pk, const struct qt_uncertainty *u);
/* Decodes one for dimension d into u (initialised or zeroed by the caller; freed with
 * qt_uncertainty_done also on error). */
QT_NODISCARD int qp_decode_uncertainty(const msgpack_object *o, size_t d,
                                       struct qt_uncertainty *u, struct qt_diag *reterr);
/* A public status code and error name back into an internal error. */
int qp_err_from_wire(int64_t code, const char *name);

/* The fields of a job other than values, progress_ms and first_index, in qp_pack_job's order,
 * packed once; returns their count (map entries). */
size_t qp_pack_job_fields(msgpack_packer *pk, const struct qp_job *j);
/* A submit item for a worker: {values: m x n columns, <fields>, first_index}, where fields are
 * qp_pack_job_fields' bytes relayed as they are (nf entries). */
QT_NODISCARD int qp_pack_chunk(struct qp_writer *w, uint32_t id, const void *values_le, size_t m,
                               size_t n, size_t first_index, const void *fields, size_t len,
                               size_t nf, const struct qp_boot_part *part, uint32_t max_frame);
