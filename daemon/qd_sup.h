/* The supervisor's shared state, private to its rooms:
 *   qd_sup.c   the supervisor proper: main, listening, systemd, signals, tick, reload, drain;
 *   qd_conn.c  connections: accept, peer credentials, frames in, writes and backpressure;
 *   qd_req.c   requests: checked (qd_check.c), admitted (qd_sched.c), answered and streamed;
 *   qd_pool.c  the worker pool: spawn (fork+exec), channel, results, exit, recycle, signals;
 *   qd_sched.c scheduling as data; qd_check.c request checking (both without I/O).
 * The event loop only carries events to the decisions in qd_check.c and qd_sched.c. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "qd.h"
#include "qd_check.h"
#include "qd_flow.h"
#include "qd_reload.h"
#include "qd_boot.h"
#include "qd_sched.h"
#include "qp.h"

#define QD_CRASHLOOP_N      5           /* workers failing before ready ... */
#define QD_CRASHLOOP_WINDOW 30000       /* ... within this many ms stop the daemon */
#define QD_RSS_CHECK_MS     250         /* a worker's RSS is read at most this often */
#define QD_READ_MAX         (64u << 10) /* bytes one read of a connection or channel copies */
#define QD_TAKE_FRAME_BYTES (1u << 20)  /* a request frame this large is kept, not copied */
#define QD_TRIM_BYTES       (16u << 20) /* freed output that is worth a malloc_trim */
#define QD_TRIM_CLOSED      (1u << 20)  /* so is the output a closing connection leaves, from */
#define QD_COALESCE_MAX     (64u << 10) /* output bytes coalesced into one write, about */
#define QD_COALESCE_FRAMES  64u         /* frames coalesced into one write, at most */

struct sup;
struct conn;

/* A request that needs workers (reconstruct, submit, design.put, cache.warm, cache.verify). */
struct djob {
    struct qd_job sj; /* the scheduler's part */
    struct sup *s;
    struct conn *conn;        /* NULL once the connection is gone */
    struct djob *next, *prev; /* in conn->jobs */
    struct qd_req req;        /* the checked request: the job, its methods, its cache key */
    uint64_t t_recv, last_progress;
    msgpack_sbuffer task;   /* tasks: the params map forwarded to a worker */
    msgpack_sbuffer fields; /* samples: the job's fixed fields, packed once for every item */
    size_t nfields;
    void *values_buf; /* samples: holds req.job.values_le (a large frame's buffer, or a copy) */
    /* error bars: the scheduler's columns are units of resamples (qd_boot.h); samples are
     * counted here */
    struct qd_boot *boot;
    size_t s_done, s_failed;
};

static inline struct djob *djob_of(struct qd_job *j)
{
    return (struct djob *)((char *)j - __builtin_offsetof(struct djob, sj));
}

struct worker {
    struct qd_sw sw; /* the scheduler's part */
    struct sup *s;
    uv_pipe_t chan;
    struct qp_framer fr;
    struct worker *next;
    int pid;
    bool closing; /* its channel handle is being closed; freed when it is */
    bool exited, chan_open;
    bool faulty;    /* we killed it for a bad channel message */
    bool sigkilled; /* SIGKILL sent (logged once) */
    int idle_from;  /* the policy we moved it from to SCHED_IDLE, -1: none */
    bool stuck_idle; /* could not leave SCHED_IDLE (no CAP_SYS_NICE): to be replaced */
    int rt_from;     /* the policy we moved it from to SCHED_FIFO, -1: none */
    uint64_t max_jobs, generation;
    uint64_t rss_checked_ms; /* maybe_recycle last read its RSS */
    uint64_t t_start_ns;     /* its item was sent (uv_hrtime) */
    uint32_t item_id;        /* the id its item was sent with */
    uint64_t *progress;      /* its progress word (QD_PROGRESS), NULL: none */
};

struct conn {
    struct sup *s;
    uv_pipe_t h;
    struct qp_framer fr;
    struct conn *next, *prev;
    struct djob *jobs;
    unsigned inflight; /* requests in flight: qd_req.c's job_new and job_end only */
    unsigned long long serial;
    uid_t uid;
    gid_t gid;
    pid_t pid;
    bool admin, hello_done, closing;
    bool write_failed;      /* a write could not be queued: closed at the next tick, never inside a
                               send (its callers may still hold its jobs) */
    uint64_t blocked_since; /* stopped by qd_flow (no reads, no batch items) since (ms), 0: not */
    uint64_t out_bytes;     /* output queued on it, not yet taken by the socket */
    uint64_t wrote_ms;      /* when the socket last took some of it */
    uint64_t in_reserved;   /* bytes reserved for the large frame it is receiving */
    bool reading;           /* its socket is being read */
    bool in_waiting;        /* waiting for an input reservation (in sup's in_wait list) */
    struct conn *in_next;   /* in sup's in_wait list */
    uint64_t read_ms;       /* when its socket last gave bytes */
    /* A whole frame read while it was stopped for output: not handled (no new work while its
     * results wait) and nothing more read, until it goes on (qd_conn.c, resume). */
    bool held, resume_queued;
    const uint8_t *held_body;
    uint32_t held_len;
    struct conn *resume_next; /* in sup's resume list */
    /* Frames of this loop iteration not yet handed to the socket (counted in out_bytes): many
     * results leave in one write (writev), flushed before the loop polls again. */
    uv_buf_t pend[QD_COALESCE_FRAMES];
    unsigned n_pend;
    size_t pend_len;
    bool pend_queued;
    struct conn *pend_next; /* in sup's pend list */
};

struct sup {
    uv_loop_t *loop;
    struct qd_conf conf;
    const char *conf_path;
    int argc;
    char **argv;
    char exe[4096];
    uv_pipe_t listener;
    bool listening, activated;
    uv_signal_t sig_term, sig_int, sig_hup, sig_chld;
    uv_timer_t tick, watchdog;
    struct qd_reload reload; /* SIGHUP coalescing (qd_reload.h) */
    struct qt_cache *cache;
    struct conn *conns;
    unsigned n_conns;
    unsigned long long conn_serial;
    struct worker *workers;
    struct qd_sched sched;
    uint64_t generation, recycled;
    uint64_t started_ms;
    bool ready_sent, draining, stopping;
    uint64_t drain_deadline;
    uint64_t init_fail_ms[QD_CRASHLOOP_N];
    unsigned init_fail_i;
    int exit_code;
    uint32_t task_serial;
    char status_line[256];
    uint64_t write_bytes; /* output queued on all connections */
    unsigned n_blocked;   /* connections stopped by qd_flow */
    uint64_t in_reserved; /* input reserved by all connections (qd_flow_input_fits) */
    struct conn *in_wait, **in_wait_tail; /* connections waiting for a reservation, in order */
    struct conn *resume;                  /* connections with a held frame that may go on */
    uv_idle_t resume_idle;                /* handles them outside the write callbacks */
    struct conn *pend;                    /* connections with output to flush */
    uv_prepare_t flush_prep;              /* flushes it, once per loop iteration */
    unsigned n_in_waiting;
    uint64_t freed_bytes; /* output freed since the last malloc_trim */
    bool trim_due;        /* a connection closed with a backlog of output: trim once it is gone */
    /* Its own scheduling (qd_sup.c sup_policy): */
    unsigned slice_now;   /* the time slice asked for (0: never asked, the kernel's) */
    unsigned rt_prio;     /* the SCHED_FIFO priority it set itself (0: none) */
    int rt_from;          /* the policy it had before */
    bool rt_over;         /* left SCHED_FIFO, its budget spent: back once the budget is full */
    struct qd_rt_budget rt_budget; /* spent by its CPU time under SCHED_FIFO */
    uint64_t rt_cpu_us;   /* its CPU time at the last tick */
    unsigned rt_told;     /* the priority whose refusal was logged */
};

/* qd_sup.c */
uint64_t qd_now_ms(struct sup *s);
void qd_sup_notify_status(struct sup *s);
void qd_sup_ready_check(struct sup *s);
void qd_sup_stop_now(struct sup *s);
void qd_sup_crashloop(struct sup *s);
int qd_sup_reload(struct sup *s, char *err, size_t errlen);
struct qd_sched_limits qd_sup_limits(const struct qd_conf *c);

/* qd_conn.c */
/* libuv's alloc callback over a framer: the framer's space for the next read (none on error,
 * which libuv reports to the read callback as UV_ENOBUFS). */
void qd_framer_alloc(struct qp_framer *f, uv_buf_t *b);
void qd_conn_init(struct sup *s);
void qd_conn_on_connection(uv_stream_t *l, int status);
void qd_conn_close(struct conn *c);
/* Sends and empties the writer (nothing when the connection is closing). */
void qd_conn_send(struct conn *c, struct qp_writer *w);
void qd_conn_send_error(struct conn *c, uint32_t id, int code, const char *msg, int64_t retry);
void qd_conn_send_bye(struct conn *c, const char *reason, int64_t retry);
/* Connections not reading their output: closed after idle-write-timeout-ms. */
void qd_conn_tick(struct sup *s, uint64_t now);

/* qd_req.c */
void qd_req_frame(struct conn *c, const uint8_t *body, uint32_t len);
extern const struct qd_sched_ops qd_req_sched_ops; /* ud: struct sup */
/* A sample's results as the worker encoded them (ok: no result map says error); with error
 * bars col is a unit of resamples and boot its rows (the w.result "boot" value, or NULL). */
void qd_req_deliver(struct djob *jb, size_t col, const void *results, size_t len, bool ok,
                    double queue_ms, double compute_ms, int worker_pid,
                    const msgpack_object *boot);
/* A task's answer from its worker (a response message). */
void qd_req_task_answer(struct djob *jb, const struct qp_msg *msg);
/* Ends a request with an error (cancel, shutdown); submits get their totals. */
void qd_req_abort(struct djob *jb, int code, const char *msg);
/* Ends every request of a closing connection. */
void qd_req_conn_gone(struct conn *c);
/* Progress notifications due by now. */
void qd_req_tick(struct conn *c, uint64_t now);

/* qd_pool.c */
/* Starts reaping workers (SIGCHLD): workers are spawned with posix_spawn, not uv_spawn. */
void qd_pool_init(struct sup *s);
void qd_pool_spawn(struct sup *s, bool reserved);
/* Gives process pid (0: this one) a CPU time slice of us µs from the kernel's fair scheduler
 * (EEVDF custom slices, Linux >= 6.12, which clamps it to 0.1..100 ms; a task with a shorter
 * slice preempts the running one when it wakes; older kernels ignore it). Keeps the process's
 * policy and nice; leaves a policy other than SCHED_OTHER or SCHED_BATCH alone. Returns 0 or a
 * negative errno. */
int qd_set_slice(pid_t pid, unsigned us);
/* Puts process pid under SCHED_IDLE, unless an administrator gave it a policy other than
 * SCHED_OTHER or SCHED_BATCH (a spawned worker never has SCHED_RESET_ON_FORK: the kernel clears
 * it in the child). The nice value is kept. Returns 0 or a negative errno; *ret_from: the policy
 * it had when it moved it, else -1. */
int qd_set_idle(pid_t pid, int *ret_from);
/* Puts process pid under SCHED_FIFO at prio with SCHED_RESET_ON_FORK (what it spawns starts
 * under the ordinary policy), unless an administrator gave it a policy other than SCHED_OTHER
 * or SCHED_BATCH. Needs CAP_SYS_NICE or an RLIMIT_RTPRIO of prio. Returns 0 or a negative
 * errno; *ret_from: the policy it had when it moved it, else -1. */
int qd_set_rt(pid_t pid, unsigned prio, int *ret_from);
/* Back to policy from (nice kept; the kernel's time slice), if still under SCHED_FIFO. */
int qd_unset_rt(pid_t pid, int from);
/* Spawns workers until there are conf.workers batch and conf.interactive_workers interactive
 * ones alive. */
void qd_pool_fill(struct sup *s);
void qd_pool_retire(struct worker *w);
void qd_pool_close_channels(struct sup *s);
int qd_pool_start(void *ud, struct qd_sw *sw, struct qd_job *job, size_t c0, size_t n);
void qd_pool_kill(void *ud, struct qd_sw *sw, int sig);
/* ops.yield: SCHED_IDLE on, the policy before it off (batch-idle 2). Leaving SCHED_IDLE needs
 * CAP_SYS_NICE or an RLIMIT_NICE that allows the worker's nice value (sched(7)); without them
 * the worker is marked and qd_pool_replace_stuck retires it and spawns a fresh one. */
void qd_pool_yield(void *ud, struct qd_sw *sw, bool on);
/* ops.rt: SCHED_FIFO at rt-priority on, the policy before it off. */
int qd_pool_rt(void *ud, struct qd_sw *sw, bool on);
/* Replaces the workers that could not leave SCHED_IDLE (called by the tick). */
void qd_pool_replace_stuck(struct sup *s);
/* ops.cpu_wait: the worker's /proc/PID/schedstat and status. */
int qd_pool_cpu_wait(void *ud, const struct qd_sw *sw, struct qd_cpu_wait *ret);
uint64_t qd_pool_rss_kb(int pid);
