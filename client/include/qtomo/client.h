/* libqtomo-client: talk to the qtomo reconstruction daemon (qtomod) over its Unix socket.
 *
 * One connection per thread (thread-compatible, no global state, no logging, no signals).
 * Every fallible function returns 0 (or a count) on success and a negative value on failure:
 *   -errno           a system error (-ENOENT: no socket at that path, -ECONNREFUSED: nobody
 *                    listening, -ETIMEDOUT: the call's timeout passed, -EPIPE/-ECONNRESET: the
 *                    connection was lost, -ENOMEM, -EINVAL: a bad argument);
 *   QTOMO_E_*        an error the server returned (the wire codes of proto/SCHEMA.md);
 *   QTOMO_EPROTO     the server sent something this library cannot read.
 * When a struct qtomo_error is passed it receives the code and a message (what was wrong,
 * naming the field or option); it may be NULL.
 *
 * A connection that failed with a transport or protocol error (-errno other than -EINVAL,
 * QTOMO_EPROTO) is dead: close it and connect again. Server errors leave it usable.
 *
 * Arrays are column-major; complex matrices are `double complex` (C99 <complex.h>). */
#pragma once

#include <complex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define QTOMO_CLIENT_VERSION_MAJOR 0
#define QTOMO_CLIENT_VERSION_MINOR 1

/* Server error codes (stable; the wire protocol's codes). */
enum {
    QTOMO_E_PARSE = -32700,          /* the server could not read our frame */
    QTOMO_E_INVALID_REQUEST = -32600,
    QTOMO_E_METHOD_NOT_FOUND = -32601,
    QTOMO_E_INVALID_PARAMS = -32602, /* bad design, dimension, option or method */
    QTOMO_E_INTERNAL = -32603,
    QTOMO_E_BUSY = -32001,           /* queue full: retry after error.retry_after_ms */
    QTOMO_E_TIMEOUT = -32002,        /* an item passed its deadline */
    QTOMO_E_WORKER_CRASHED = -32003, /* an item crashed two workers */
    QTOMO_E_NOT_FOUND = -32004,      /* unknown design id or cache entry */
    QTOMO_E_PERMISSION = -32005,     /* admin method from a non-admin user */
    QTOMO_E_SHUTTING_DOWN = -32006,
    QTOMO_E_TOO_LARGE = -32007,      /* a server limit (frame, batch, dimension) */
    QTOMO_E_INVALID_SAMPLE = -32008, /* the sample's values cannot be used */
    QTOMO_E_UNSUPPORTED_PROTOCOL = -32010,
    QTOMO_E_CANCELLED = -32800,
    QTOMO_EPROTO = -2000, /* unreadable or unexpected message from the server */
};

struct qtomo_error {
    int code;
    char message[256];
    int64_t retry_after_ms; /* QTOMO_E_BUSY and QTOMO_E_SHUTTING_DOWN: the server's hint; else -1 */
};

/* A static description of any value these functions return. Never NULL. */
const char *qtomo_strerror(int code);

/* ---- connections ---- */

typedef struct qtomo_conn qtomo_conn;

/* The socket path used when none is given: $QTOMO_SOCKET, else $XDG_RUNTIME_DIR/qtomo/qtomod.sock
 * when XDG_RUNTIME_DIR is set and that socket exists, else /run/qtomo/qtomod.sock. Writes it to
 * buf; returns -ENAMETOOLONG when it does not fit. */
int qtomo_default_socket(char *buf, size_t len);

/* Connects to path (NULL: qtomo_default_socket) and performs the handshake. timeout_ms bounds
 * the connect and every later call on this connection (0: no limit; change it with
 * qtomo_set_timeout). client_name goes to the server's logs (NULL: "libqtomo-client"). */
int qtomo_connect(qtomo_conn **ret, const char *path, const char *client_name, int timeout_ms,
                  struct qtomo_error *err);
/* Closes the connection; the server cancels its unfinished requests. NULL-safe. */
void qtomo_close(qtomo_conn *c);
void qtomo_set_timeout(qtomo_conn *c, int timeout_ms);
/* The connected socket's descriptor (for poll; do not read or write it). */
int qtomo_fd(const qtomo_conn *c);

/* What the server said in the handshake. */
struct qtomo_server_info {
    unsigned proto_major, proto_minor;
    char server[64];       /* "qtomod/0.1.0" */
    uint32_t max_frame;    /* bytes per message */
    uint32_t max_dim;      /* largest d */
    uint32_t max_batch;    /* samples per submit */
    uint32_t max_inflight; /* requests per connection */
    uint32_t max_item_ms;  /* longest per-item deadline */
    uint32_t workers;
};
void qtomo_server_info(const qtomo_conn *c, struct qtomo_server_info *si);

/* ---- what to reconstruct and how ---- */

typedef struct qtomo_job qtomo_job;

/* A job starts as: design inferred from the sample length, methods "linear,mle", every
 * estimator option at its default, no target, the server's deadline. */
qtomo_job *qtomo_job_new(void);
void qtomo_job_free(qtomo_job *j); /* NULL-safe */
/* design: "nopovm", "mub", "sic", "pauli" (NULL: infer from the sample length); d: 0 = infer. */
int qtomo_job_set_design(qtomo_job *j, const char *design, size_t d);
/* A custom design uploaded with qtomo_design_put. */
int qtomo_job_set_custom(qtomo_job *j, const char *design_id, size_t d);
struct qtomo_detector_ref;
/* The design a detector model was uploaded for (qtomo_detector_put): its effective design, or
 * the base design itself when the model is the identity. */
int qtomo_job_set_detector(qtomo_job *j, const struct qtomo_detector_ref *ref);
/* Comma-separated list of linear, mle, wls, rhor. */
int qtomo_job_set_methods(qtomo_job *j, const char *list);
/* An estimator option by its name in proto/SCHEMA.md §8 ("tolerance", "mle-gap-tol", ...; flags
 * take 0 or 1), "physical" (0 clip, 1 smolin), "bell" or "spectral" (0 or 1; the results'
 * "spectral.*" values, see qtomo_sample_vector). -EINVAL names the bounds. */
int qtomo_job_set_option(qtomo_job *j, const char *name, double value, struct qtomo_error *err);
/* A d x d target density matrix (copied): results gain fidelity and trace distance. */
int qtomo_job_set_target(qtomo_job *j, const double complex *rho, size_t d);
/* Error bars (SCHEMA.md, bootstrap): resamples N in [2, 100000] (0: none), kind "data" (NULL,
 * the default) or "parametric", seed in [0, 2^53) or -1 for one the server chooses (every
 * result reports it), confidence of the percentile interval in (0, 1) or 0 for 0.95, shots:
 * counts per group for data given as probabilities or powers (0: the values are counts).
 * -EINVAL for a value out of range. A server without the "bootstrap" feature refuses the job
 * in this library (-ENOTSUP) rather than ignoring it. */
int qtomo_job_set_bootstrap(qtomo_job *j, uint32_t resamples, const char *kind, int64_t seed,
                            double confidence, uint64_t shots);
/* Per-item deadline in ms (0: the server's default; never above its max_item_ms). */
void qtomo_job_set_timeout(qtomo_job *j, uint32_t timeout_ms);
/* submit: the least interval between progress callbacks (0: none). */
void qtomo_job_set_progress(qtomo_job *j, uint32_t interval_ms);

/* ---- results ---- */

/* One sample's results: one entry per requested method, in the order linear, mle, wls, rhor. */
typedef struct qtomo_sample qtomo_sample;

uint64_t qtomo_sample_index(const qtomo_sample *s); /* column index in the batch (+ first) */
size_t qtomo_sample_count(const qtomo_sample *s);   /* number of method results */
const char *qtomo_sample_method(const qtomo_sample *s, size_t i); /* "linear", ... */
size_t qtomo_sample_dim(const qtomo_sample *s, size_t i);
/* 0 when result i is valid, else its error code (QTOMO_E_INVALID_SAMPLE, QTOMO_E_TIMEOUT, ...)
 * with the server's message in *message (may be NULL). */
int qtomo_sample_status(const qtomo_sample *s, size_t i, const char **message);
/* The d x d column-major density matrix of result i; NULL when it failed. */
const double complex *qtomo_sample_rho(const qtomo_sample *s, size_t i);
/* A scalar metric by name ("purity", "fidelity", "converged", "iterations", ...; booleans and
 * integers as doubles; "spectral.dominant_eigenvalue" with the option "spectral"). Returns 0,
 * or -ENOENT when result i does not have it. */
int qtomo_sample_metric(const qtomo_sample *s, size_t i, const char *name, double *value);
/* A vector metric ("eigenvalues", "bell_fidelities"; with the option "spectral" also
 * "spectral.amplitudes", "spectral.phases_pi", "spectral.eigenvalues", d each); NULL when
 * absent. */
const double *qtomo_sample_vector(const qtomo_sample *s, size_t i, const char *name, size_t *n);
/* Time the sample waited for a worker (reconstruct; 0 for submit) and its compute time
 * (-1 when the server did not say). */
/* The error bars of result i (a job with qtomo_job_set_bootstrap): 0 and *u, -ENOENT when it
 * has none (the estimate failed, or none were asked for). u's pointers live as long as s. */
struct qtomo_uncertainty {
    uint32_t resamples, failed; /* failed: resamples whose estimate failed */
    uint64_t seed, shots;
    double confidence;
    const char *kind;  /* "data" or "parametric" */
    bool boundary;     /* the estimate is rank-deficient: percentile intervals are biased */
    const char *error; /* NULL, or why there are no error bars (the estimate stands) */
    bool has_trace_distance_bound;
    double trace_distance_bound; /* linear: trace distance to the true state at confidence */
    const double *rho_std_re, *rho_std_im; /* d x d column-major std of rho's elements */
};
int qtomo_sample_uncertainty(const qtomo_sample *s, size_t i, struct qtomo_uncertainty *u);
/* One metric's error bar: std and the percentile interval [lo, hi]; k: the element of a vector
 * metric (eigenvalues, bell_fidelities), else 0. -ENOENT when there is none. */
int qtomo_sample_error_bar(const qtomo_sample *s, size_t i, const char *metric, size_t k,
                           double *std, double *lo, double *hi);
void qtomo_sample_timing(const qtomo_sample *s, double *queue_ms, double *compute_ms);
void qtomo_sample_free(qtomo_sample *s); /* NULL-safe; only for qtomo_reconstruct's results */

/* ---- reconstruction ---- */

/* Reconstructs one sample of m values on the daemon's interactive queue (ahead of batches) and
 * waits for it. A bad sample is not a call failure: the call returns 0 and the sample's
 * results carry the error (qtomo_sample_status). */
int qtomo_reconstruct(qtomo_conn *c, const qtomo_job *j, const double *values, size_t m,
                      qtomo_sample **ret, struct qtomo_error *err);

struct qtomo_progress {
    uint64_t done, failed, total;
    int64_t eta_ms; /* -1: unknown */
};

struct qtomo_totals {
    uint64_t n_ok, n_err, n_cancelled;
    double elapsed_ms;
};

struct qtomo_callbacks {
    /* Each sample's results as they complete (any order). The sample is valid during the call
     * only. A non-zero return cancels the batch. */
    int (*result)(void *userdata, const qtomo_sample *s);
    /* Progress, at most every job's progress interval. May be NULL. */
    void (*progress)(void *userdata, const struct qtomo_progress *p);
    void *userdata;
    /* Checked whenever the call wakes up (at least every 100 ms): non-zero cancels the batch.
     * Suits a flag set by a signal handler. May be NULL. */
    const volatile int *cancel;
};

/* Reconstructs n samples (values: m x n, column-major, one sample per column) and calls back
 * per result; returns when the batch is over. Sample k's index is first_index + k. Returns 0
 * when the batch completed (failed samples are counted in totals->n_err and reported through
 * the callback), QTOMO_E_CANCELLED when it was cancelled (totals are still filled in), or an
 * error. The per-call timeout bounds the silence between two messages, not the whole batch. */
int qtomo_submit(qtomo_conn *c, const qtomo_job *j, const double *values, size_t m, size_t n,
                 uint64_t first_index, const struct qtomo_callbacks *cb,
                 struct qtomo_totals *totals, struct qtomo_error *err);

/* ---- administration ---- */

struct qtomo_worker {
    uint32_t pid;
    char state[16]; /* starting, idle, busy, draining, exiting */
    uint64_t jobs, rss_kb;
};

struct qtomo_status {
    double uptime_s;
    uint64_t queue_interactive, queue_batch, inflight, n_workers;
    uint64_t cache_bytes, cache_files, cache_budget;
    /* qtomo_stats only: */
    uint64_t items, errors, timeouts, crashes, recycled;
    struct qtomo_worker *workers; /* n_workers_info entries */
    size_t n_workers_info;
};

/* status (stats = false) or stats (true: totals and per-worker entries). Free with
 * qtomo_status_free. */
int qtomo_status(qtomo_conn *c, bool stats, struct qtomo_status *st, struct qtomo_error *err);
void qtomo_status_free(struct qtomo_status *st);

/* Round trip of one small request, in ms. */
int qtomo_ping(qtomo_conn *c, double *rtt_ms, struct qtomo_error *err);

/* Uploads a custom design (design-file JSON text) and writes its id ("custom-<32 hex>") to id. */
int qtomo_design_put(qtomo_conn *c, const char *json, size_t len, char *id, size_t id_len,
                     struct qtomo_error *err);

/* What to reconstruct against after qtomo_detector_put (pass it to qtomo_job_set_detector). */
struct qtomo_detector_ref {
    char design[16];    /* "custom" (the effective design), or the base design (identity model) */
    char design_id[64]; /* with "custom": the design's id ("custom-<32 hex>") */
    char detector[40];  /* the model's id "det-<32 hex>" for records; "" for the identity */
    size_t d, m;        /* dimension and outcomes */
};

/* Uploads a detector model (detector-file JSON text, README "Detectors") for the base design
 * (design "nopovm", "mub", "sic", "pauli" or "custom" with the design_id of qtomo_design_put,
 * else design_id NULL; d its dimension). The server checks the model (errors name the field),
 * builds its effective design with the backgrounds and keeps it in its projector cache; ref
 * says what to reconstruct against. -ENOTSUP when the server's hello lists no "detector"
 * feature. */
int qtomo_detector_put(qtomo_conn *c, const char *json, size_t len, const char *design, size_t d,
                       const char *design_id, struct qtomo_detector_ref *ref,
                       struct qtomo_error *err);

struct qtomo_cache_entry {
    char name[96];   /* file name */
    char id[64];     /* design id */
    char design[16]; /* design name */
    uint64_t d, m, bytes;
    int64_t last_use_ns; /* CLOCK_REALTIME */
    unsigned mapped_by;  /* processes that have it mapped */
};

/* Lists the projector cache; *ret is malloc'd (free it). */
int qtomo_cache_list(qtomo_conn *c, struct qtomo_cache_entry **ret, size_t *n,
                     struct qtomo_error *err);
/* Builds the cache files of n (design, d) pairs ahead of use; *warmed counts them. */
int qtomo_cache_warm(qtomo_conn *c, const char *const *designs, const size_t *dims, size_t n,
                     uint64_t *warmed, struct qtomo_error *err);
/* Removes one cache file (admin); *bytes freed. */
int qtomo_cache_evict(qtomo_conn *c, const char *design, size_t d, uint64_t *bytes,
                      struct qtomo_error *err);

struct qtomo_damaged {
    char name[96];
    char reason[256];
};
/* Verifies checksums: one entry (design and d) or all (design NULL). *damaged is malloc'd. */
int qtomo_cache_verify(qtomo_conn *c, const char *design, size_t d, uint64_t *checked,
                       struct qtomo_damaged **damaged, size_t *n_damaged,
                       struct qtomo_error *err);
/* Re-reads the daemon's configuration and rolls its workers (admin); waits until done. */
int qtomo_reload(qtomo_conn *c, uint64_t *generation, struct qtomo_error *err);

#ifdef __cplusplus
}
#endif
