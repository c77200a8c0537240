/* qtomod configuration: one declarative table of options that drives the config file parser
 * (key = value), the command line (--key VALUE), --help and --dump-config. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/compiler.h"

#define QD_CONF_DEFAULT_PATH "/etc/qtomo/qtomod.conf"

/* X(key, type, field, default, min, max, help); type S = string, U = unsigned, O = octal mode.
 * Sizes are in the unit the key names. */
#define QD_CONF_OPTIONS(X)                                                                         \
    X("socket", S, socket, "", 0, 0,                                                               \
      "socket path (default: $XDG_RUNTIME_DIR/qtomo/qtomod.sock, root: /run/qtomo/qtomod.sock)")   \
    X("socket-mode", O, socket_mode, "0660", 0, 0777, "mode of a socket qtomod binds itself")      \
    X("socket-group", S, socket_group, "", 0, 0, "group of a socket qtomod binds itself")          \
    X("admin-group", S, admin_group, "qtomo-admin", 0, 0,                                          \
      "members (and root and the daemon's user) may call cache.evict and reload")                  \
    X("cache-dir", S, cache_dir, "", 0, 0,                                                         \
      "projector cache (default: $XDG_CACHE_HOME/qtomo, root: /var/cache/qtomo)")                  \
    X("cache-budget-mb", U, cache_budget_mb, "0", 0, 1u << 30,                                     \
      "cache size limit in MiB; 0: a quarter of physical memory")                                  \
    X("workers", U, workers, "0", 0, 256, "worker processes; 0: one per online CPU")               \
    X("interactive-workers", U, interactive_workers, "1", 0, 16,                                   \
      "extra workers for interactive work only (reconstruct, tasks): a live sample never waits "    \
      "for a batch item")                                                                          \
    X("batch-nice", U, batch_nice, "10", 0, 19,                                                    \
      "with interactive workers: the nice value of the other workers, so the kernel runs a live "   \
      "sample first")                                                                              \
    X("batch-idle", U, batch_idle, "0", 0, 2,                                                      \
      "with interactive workers: when batch workers run under SCHED_IDLE, so that any other "      \
      "task, a live sample's included, preempts them at once: 0 never, 1 always, 2 from an "       \
      "interactive item until 5 s after the last one. They then get CPU time only when nothing "  \
      "else wants it, so interactive load or other processes that fill the cores can starve "     \
      "batches (batch-share-pct cannot hold); their items' deadlines do not count the wait")      \
    X("latency-slice-us", U, latency_slice_us, "100", 0, 100000,                                   \
      "with interactive workers: the CPU time slice the supervisor and interactive workers ask "   \
      "of the kernel (EEVDF, Linux 6.12 and later; older kernels ignore it), so that they preempt " \
      "a batch worker as soon as a live sample wakes them; 0: the kernel's default")               \
    X("rt-priority", U, rt_priority, "1", 0, 98,                                                   \
      "with interactive workers: the SCHED_FIFO priority of an interactive worker running an "     \
      "item, and one above it, of the supervisor, so that neither batch workers nor other "         \
      "ordinary processes delay a live sample; each within a budget of a share of a core (a long " \
      "item, a stream of items or a flood of requests goes on under the ordinary policy); 0: "     \
      "never. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO (systemd's LimitRTPRIO=) of one above it; "   \
      "without, ordinary scheduling")                                                              \
    X("max-frame", U, max_frame, "67108864", 4096, 1u << 30, "largest frame body in bytes")        \
    X("max-dim", U, max_dim, "64", 2, 512, "largest dimension d accepted")                         \
    X("max-batch", U, max_batch, "1000000", 1, 1u << 30, "samples per submit")                     \
    X("max-inflight", U, max_inflight, "64", 1, 65536, "requests in flight per connection")        \
    X("max-connections", U, max_connections, "256", 1, 65536, "client connections at once")        \
    X("max-queue", U, max_queue, "100000", 1, 1u << 30,                                            \
      "samples waiting in all queues before requests get BUSY")                                    \
    X("chunk", U, chunk, "8", 1, 64, "samples per work item sent to a worker")                     \
    X("chunk-grow-us", U, chunk_grow_us, "500", 0, 100000,                                         \
      "batch items of fast samples grow past chunk samples (up to 64) while one takes at most "    \
      "this many microseconds of a worker's time (measured per submit); 0: never")                 \
    X("batch-share-pct", U, batch_share_pct, "20", 0, 100,                                         \
      "worker time batches get while interactive work also waits (0: interactive first)")          \
    X("item-timeout-ms", U, item_timeout_ms, "60000", 10, 86400000,                                \
      "default deadline of one work item, times (d/128)^3 above d = 128 (a request may ask "       \
      "less); time its worker waits for a CPU behind other processes does not count")             \
    X("max-item-ms", U, max_item_ms, "600000", 10, 86400000,                                       \
      "longest deadline a request may ask, and the most CPU wait that may lengthen one")           \
    X("kill-grace-ms", U, kill_grace_ms, "2000", 10, 60000,                                        \
      "between SIGABRT and SIGKILL of a worker past its deadline")                                 \
    X("drain-timeout-ms", U, drain_timeout_ms, "30000", 0, 3600000,                                \
      "on SIGTERM: how long running work may finish")                                              \
    X("worker-max-jobs", U, worker_max_jobs, "10000", 0, 1u << 30,                                 \
      "recycle a worker after this many samples (+ up to 10% jitter); 0: never")                   \
    X("worker-max-rss-mb", U, worker_max_rss_mb, "2048", 0, 1u << 20,                              \
      "recycle a worker whose resident memory exceeds this; 0: never")                             \
    X("max-sample-mb", U, max_sample_mb, "0", 0, 1u << 24,                                         \
      "refuse a sample predicted to need more memory than this in a worker; 0: the machine's "     \
      "memory divided by the number of workers, interactive ones included")                        \
    X("write-high-water-kb", U, write_high_kb, "8192", 64, 1u << 20,                               \
      "stop reading a connection and pause its batches while this much output is queued")          \
    X("max-input-mb", U, max_input_mb, "1024", 0, 1u << 20,                                        \
      "large request frames being received at once, all connections; others wait (0: no limit)")   \
    X("max-output-mb", U, max_output_mb, "512", 0, 1u << 20,                                       \
      "output queued on all connections before those holding most of it stop too; 0: no limit")    \
    X("idle-write-timeout-ms", U, idle_write_ms, "60000", 100, 86400000,                           \
      "close a connection that has not read its output for this long")                             \
    X("idle-read-timeout-ms", U, idle_read_ms, "60000", 100, 86400000,                             \
      "close a connection that sends nothing for this long in the middle of a large frame")        \
    X("log-level", U, log_level, "6", 3, 7, "3 errors ... 6 info, 7 debug")

#define QD_CONF_FIELD_S(f)                    char f[256];
#define QD_CONF_FIELD_U(f)                    uint32_t f;
#define QD_CONF_FIELD_O(f)                    uint32_t f;
#define QD_CONF_FIELD_(k, t, f, d, lo, hi, h) QD_CONF_FIELD_##t(f)

struct qd_conf {
    QD_CONF_OPTIONS(QD_CONF_FIELD_)
};

void qd_conf_defaults(struct qd_conf *c);
/* Sets key to value. Returns 0, or -EINVAL/-ERANGE with a message in err. */
QT_NODISCARD int qd_conf_set(struct qd_conf *c, const char *key, const char *value, char *err,
                             size_t errlen);
/* Reads a key = value file ('#' comments, blank lines). A missing file is -ENOENT. */
QT_NODISCARD int qd_conf_load(struct qd_conf *c, const char *path, char *err, size_t errlen);
/* Fills the defaults that depend on the user and the machine (socket, cache-dir, workers). */
QT_NODISCARD int qd_conf_finish(struct qd_conf *c, char *err, size_t errlen);
void qd_conf_dump(const struct qd_conf *c, FILE *out);
void qd_conf_help(FILE *out);
/* The options as roff .TP entries: "--key VALUE" (cmdline) or "key = VALUE" (the file). */
void qd_conf_man(FILE *out, bool cmdline);
/* Option by key, for the command line; false when unknown. */
bool qd_conf_known(const char *key);
/* Applies every --key VALUE of argv (the command line overrides the file); with strict,
 * unknown arguments are reported on stderr. Returns 0 or -EINVAL. */
QT_NODISCARD int qd_conf_apply_args(struct qd_conf *c, int argc, char **argv, bool strict);
/* Whether max-frame holds one sample of the largest built-in design max-dim accepts (its values
 * and 64 KiB for the rest of the request): 0 when it does, else 1 with a message naming the
 * design and the max-frame it needs (qtomod logs it as a warning; such samples are refused by
 * the client or the framer with a clear error). */
int qd_conf_frame_advice(const struct qd_conf *c, char *buf, size_t len);

/* Defaults, then the file (path, or the default path when it exists), then argv's --key VALUE
 * overrides, then the machine-dependent defaults. */
QT_NODISCARD int qd_conf_build(struct qd_conf *c, const char *path, int argc, char **argv,
                               char *err, size_t errlen);
