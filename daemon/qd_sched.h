/* The supervisor's scheduling as a data structure: queues, chunks, cache affinity,
 * interactive-before-batch, cancel, retries and the poison rule, deadlines and drain. Driven by
 * events (job admitted, worker ready, sample result, item end, worker exit, tick); no I/O, no
 * clock of its own (times are passed in, in ms), no libuv. What it decides that needs I/O (send
 * an item to a worker, fail a sample, signal a worker, free a job) goes out through the ops
 * callbacks. The libuv glue in qd_pool.c and qd_req.c is a thin caller; tests/unit/test_sched.c
 * drives it through event sequences. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"

/* A sample that was running when QD_SCHED_MAX_CRASHES workers died of their own fault (a fault
 * signal, an exit) fails; signals sent from elsewhere (qd_signal_from_outside: an operator, the
 * OOM killer) and a cache file changed under the worker's mapping (QD_EXIT_CACHE_CHANGED) say
 * little about the sample, so it takes QD_SCHED_MAX_KILLS of those (a bound, so that a file
 * damaged again and again still ends). A sample
 * that truly needs more memory than the machine gives still fails, after that many workers. */
#define QD_SCHED_MAX_CRASHES 2
#define QD_SCHED_MAX_KILLS   8
#define QD_SCHED_KEY_LEN     96

enum qd_job_kind { QD_JOB_SAMPLES, QD_JOB_TASK };

/* A worker's life as the scheduler sees it. Only QD_W_IDLE workers get work. KILLING: we sent
 * it a signal for a deadline; it finishes nothing more and is never given work again. */
enum qd_wstate { QD_W_STARTING, QD_W_IDLE, QD_W_BUSY, QD_W_RETIRING, QD_W_KILLING, QD_W_EXITING };

extern const char *const qd_wstate_names[];

struct qd_chunk;

/* A request that needs workers. The caller embeds it in its own request struct, fills the
 * "caller" fields, and calls qd_sched_admit; the rest is the scheduler's (read-only outside). */
struct qd_job {
    /* caller */
    enum qd_job_kind kind;
    bool interactive;    /* reconstruct and tasks: whole, ahead of batches; submits: cut lazily */
    size_t n;            /* samples (tasks: 1) */
    uint32_t timeout_ms; /* per item, 0: the scheduler's default */
    size_t dim;          /* d of the samples (0: unknown): large ones are cut and timed apart */
    uint32_t unit;       /* samples per item, 0: whole (interactive) or the batch chunk; error
                            bars send each unit of resamples alone (1) */
    char key[QD_SCHED_KEY_LEN]; /* cache file ("<design>-d<d>"): workers keep it mapped */
    /* scheduler */
    size_t next_col; /* submits: next column to cut */
    size_t done, failed;
    uint64_t batch_us, batch_n; /* its finished batch items: worker time (us) and samples */
    uint8_t *state; /* per sample: QD_SAMPLE_CRASHES, QD_SAMPLE_KILLS, QD_SAMPLE_DELIVERED */
    unsigned refs;  /* items queued or running, and the scheduler's own loops */
    bool admitted, finished, in_batch;
    struct qd_job *bnext; /* the batch round robin */
};

#define QD_SAMPLE_CRASHES   0x03u /* workers that died of their own fault running it */
#define QD_SAMPLE_KILLS     0x7cu /* workers killed from elsewhere running it, << 2 */
#define QD_SAMPLE_DELIVERED 0x80u

/* rt-priority: a real-time budget, a token bucket in µs. A process may start running under the
 * real-time policy while it has some: it starts with QD_RT_BURST_MS, spends the time it runs
 * under the policy (going into debt when it ran past what it had) and earns QD_RT_SHARE_PCT of
 * the time that passes, up to the burst. Live samples take well under the burst (d = 16 mle
 * ~10 ms); a longer item (a large d, a task) is taken out of the policy at the tick after its
 * budget ran out, and a stream of items or a flood of requests runs under it for at most that
 * share of a core in the long run, so that qtomod cannot keep a core from every ordinary
 * process. */
#define QD_RT_BURST_MS 100
#define QD_RT_SHARE_PCT 25
/* The supervisor relays everything: its budget is spent by its CPU time, and earns more (a
 * 150,000 samples/s relay takes about a third of a core). */
#define QD_RT_SUP_SHARE_PCT 50

struct qd_rt_budget {
    int64_t us;  /* left; negative: owed */
    uint64_t t;  /* ms: last earned */
    bool started;
};

/* What is left at now (ms), in µs, after what was earned since the last call at share_pct. */
int64_t qd_rt_budget_left(struct qd_rt_budget *b, uint64_t now, unsigned share_pct);
/* Spends us µs. */
void qd_rt_budget_spend(struct qd_rt_budget *b, uint64_t us);

/* A worker as the scheduler sees it; embedded in the pool's worker. */
struct qd_sw {
    enum qd_wstate state;
    int pid;
    struct qd_chunk *cur; /* the running item */
    size_t cur_done;      /* its samples answered so far */
    size_t cur_computed;  /* of its samples, computed (answered or not) when it died, if known */
    uint64_t t_dispatch, deadline, kill_at;
    bool timed_out; /* killed (or being killed) for a deadline */
    /* The time its worker waited for a CPU does not count against an item's deadline: */
    uint64_t deadline0;   /* the deadline as set */
    uint64_t t_read;      /* when the next reading of that wait is due */
    uint64_t t_half;      /* half the deadline: readings at each tick from then on */
    uint64_t t_last;      /* the last reading: when, and what it said */
    uint64_t last_run_ns, last_wait_ns, last_sleeps;
    uint64_t credit_ns;   /* wait counted since the deadline was set */
    uint64_t pending_ns;  /* of it, counted while the wait went on, not yet in run_delay */
    uint64_t wait_credit; /* ms the deadline was moved on for it (credit_ns within the cap) */
    uint64_t credit_cap;  /* ms: wait_credit_ms, at most QD_SCHED_WAIT_CAP deadlines */
    bool wait_marked;
    uint64_t items; /* samples answered, for recycling */
    bool reserved;  /* an interactive worker: never given batch items or retries */
    bool yielded;   /* told to yield (ops.yield) */
    bool rt;        /* under the real-time policy (ops.rt) */
    uint64_t rt_since, rt_until; /* ... since its item started, until its budget is spent */
    struct qd_rt_budget rtb;
    char key[QD_SCHED_KEY_LEN];
    struct qd_sw *next;
};

/* Linux's account of a process: ns on a CPU and ns waited for one since it started (the first
 * two fields of /proc/PID/schedstat; a wait enters run_delay only when it ends, as the process
 * gets a CPU), whether it is runnable now and how often it blocked (State and
 * voluntary_ctxt_switches of /proc/PID/status). */
struct qd_cpu_wait {
    uint64_t run_ns, wait_ns, sleeps;
    bool runnable;
};

struct qd_sched_ops {
    void *ud;
    /* Sends samples [c0, c0 + n) of job (or the task) to worker w, which the scheduler has
     * marked busy. A negative return fails those samples with that error through fail(). */
    int (*start)(void *ud, struct qd_sw *w, struct qd_job *job, size_t c0, size_t n);
    /* Sample col of job ends without results (err: QT_EDEADLINE, QT_ECRASHED, -ENOMEM...): the
     * caller sends an error result (a task: an error response) and calls qd_sched_delivered. */
    void (*fail)(void *ud, struct qd_job *job, size_t col, int err, const char *msg, int pid);
    /* Sends signal sig to worker w. */
    void (*kill)(void *ud, struct qd_sw *w, int sig);
    /* Whether a submit's batches wait (its client is not reading): may be NULL. */
    bool (*paused)(void *ud, const struct qd_job *job);
    /* The job is finished and nothing refers to it any more: the caller may free it. */
    void (*release)(void *ud, struct qd_job *job);
    /* What the kernel says of w's process (struct qd_cpu_wait). May be NULL; negative: not
     * known. */
    int (*cpu_wait)(void *ud, const struct qd_sw *w, struct qd_cpu_wait *ret);
    /* Batch worker w is to yield the CPU to any other task (on: SCHED_IDLE) or no longer (off:
     * its policy before). May be NULL. */
    void (*yield)(void *ud, struct qd_sw *w, bool on);
    /* Reserved worker w is to run under the real-time policy (on) or back under its own (off).
     * Negative when refused: the scheduler asks no more until its limits are set again. May
     * be NULL. */
    int (*rt)(void *ud, struct qd_sw *w, bool on);
};

/* Samples of d >= QD_SCHED_BIG_DIM are cut one per batch item until the submit's rate is known
 * (a chunk of 8 such samples could take minutes on one worker while the others idle), and the
 * default deadline of their items grows as (d / QD_SCHED_BIG_DIM)^3, as the estimators' cost
 * does: 8x at d = 256, 64x at d = 512. */
#define QD_SCHED_BIG_DIM 128

struct qd_sched_limits;

/* The deadline of one item of the job, in ms: the job's timeout_ms when it asks for less than
 * the default, else the default (item_timeout_ms, scaled for large d; tasks: task_timeout_ms). */
uint64_t qd_sched_item_timeout(const struct qd_sched_limits *lim, const struct qd_job *job);

struct qd_sched_limits {
    uint32_t chunk;           /* samples per batch item */
    uint32_t item_timeout_ms; /* default deadline of a samples item */
    uint32_t task_timeout_ms; /* deadline of a task (design.put, cache.*) */
    uint32_t kill_grace_ms;   /* SIGABRT to SIGKILL */
    uint64_t max_queue;       /* samples waiting before admit says -EBUSY */
    uint32_t batch_share_pct; /* worker time batches get while interactive work also waits */
    uint32_t chunk_grow_us;   /* batch items grow past chunk while they take at most this; 0: no */
    uint32_t wait_credit_ms;  /* an item's deadline moves on by its worker's CPU wait, up to this */
    uint32_t yield_ms;        /* batch workers yield from an interactive item to this long after
                               * the last one ends (0: never) */
    bool rt;                  /* reserved workers run items under the real-time policy while
                               * they have budget (struct qd_rt_budget) */
};

/* batch-idle 2: how long batch workers keep yielding after the last interactive item. Live
 * samples come every few ms to seconds; a gap longer than this gives batches their share of
 * a busy machine back. */
#define QD_SCHED_YIELD_MS 5000
/* CPU wait lengthens a deadline by at most this many times itself (and wait_credit_ms). */
#define QD_SCHED_WAIT_CAP 10

struct qd_sched_totals {
    uint64_t items, errors; /* samples delivered, of which errors */
    uint64_t timeouts;      /* workers killed for a deadline */
    uint64_t crashes;       /* workers that died by themselves during an item */
};

struct qd_sched {
    struct qd_sched_ops ops;
    struct qd_sched_limits lim;
    struct qd_chunk *iq_head, *iq_tail; /* interactive items */
    struct qd_chunk *rq_head, *rq_tail; /* samples to retry after a worker died */
    struct qd_job *batch;               /* submits with columns left to cut */
    struct qd_sw *workers;
    uint64_t queued;   /* samples waiting: queued items plus uncut columns */
    uint64_t inflight; /* admitted jobs not finished */
    /* Worker time (µs) of finished items since interactive and batch work both started
     * waiting: the batch share is kept from these. */
    uint64_t us_interactive, us_batch;
    bool stopping;
    bool yielding;        /* batch workers yield (yield_ms) ... */
    uint64_t yield_until; /* ... until then, unless an interactive item runs */
    bool rt_refused;      /* ops.rt refused: not asked again until the limits are set */
    bool rt_paused;       /* qd_sched_rt_allow(false): none is asked */
    struct qd_sched_totals tot;
};

void qd_sched_init(struct qd_sched *s, const struct qd_sched_ops *ops,
                   const struct qd_sched_limits *lim);
/* Frees what is still queued (the jobs are released through ops). */
void qd_sched_done(struct qd_sched *s);
void qd_sched_set_limits(struct qd_sched *s, const struct qd_sched_limits *lim);

/* Admits a job: -EBUSY when the queues are full (nothing else waits: a job larger than
 * max_queue is still admitted alone), -ENOMEM. On error the job was not taken. */
QT_NODISCARD int qd_sched_admit(struct qd_sched *s, struct qd_job *job);
/* The job's final answer was sent, or never will be (cancel, connection gone, shutdown): no
 * more of it runs or is delivered. Queued items are dropped; running ones end normally. */
void qd_sched_finish(struct qd_sched *s, struct qd_job *job);
/* Samples answered (or failed) by the caller: marks col delivered and counts it. Returns false
 * when col was already delivered or the job finished (nothing may be sent then). */
bool qd_sched_delivered(struct qd_sched *s, struct qd_job *job, size_t col, bool ok);
/* Whether col may still be delivered. */
bool qd_sched_pending(const struct qd_job *job, size_t col);

/* Gives idle workers work: interactive items and retries first, except that while both they
 * and batches wait, batches get batch_share_pct of the worker time (measured over the items
 * that finished since both started waiting), so that no batch starves. */
void qd_sched_dispatch(struct qd_sched *s, uint64_t now);

void qd_sched_worker_add(struct qd_sched *s, struct qd_sw *w, int pid);
void qd_sched_worker_ready(struct qd_sched *s, struct qd_sw *w);
/* Stop giving w work. True when it holds no item (the caller may close its channel now);
 * otherwise qd_sched_item_end says so when the item ends. */
bool qd_sched_worker_retire(struct qd_sched *s, struct qd_sw *w);
/* A sample result from w for absolute column index idx of its item: 1 with *ret_job and
 * *ret_col when the caller should deliver it (then qd_sched_delivered), 0 when it is to be
 * dropped (job finished), -EPROTO when w has no such sample running (kill the worker). */
QT_NODISCARD int qd_sched_sample(struct qd_sched *s, struct qd_sw *w, uint64_t idx, uint64_t now,
                                 struct qd_job **ret_job, size_t *ret_col);

enum qd_after { QD_AFTER_IDLE, QD_AFTER_RETIRE, QD_AFTER_WAIT };

/* The job of w's running item, or NULL (a task's answer is relayed with it before
 * qd_sched_item_end, which may release the job). */
struct qd_job *qd_sched_item_job(const struct qd_sw *w);
/* w answered its whole item (at time now), which kept it busy for busy_us microseconds (the
 * caller's measure from start to end; batches' share is kept in this unit, since most
 * interactive items take far less than a millisecond). Returns what becomes of w: idle
 * (dispatch), retire (close its channel), or wait (it is being killed or stopped); -EPROTO when
 * samples are missing or it has no item (kill it). */
QT_NODISCARD int qd_sched_item_end(struct qd_sched *s, struct qd_sw *w, uint64_t now,
                                   uint64_t busy_us);
/* w's process is gone (exit status, or the signal that ended it). Its running sample is charged
 * a try (or fails with QT_EDEADLINE when we killed it for its deadline); its samples that never
 * ran are queued again uncharged. Removes w from the scheduler. */
void qd_sched_worker_exit(struct qd_sched *s, struct qd_sw *w, int status, int term_signal);
/* Yielding (lim.yield_ms): from the start of an interactive item until yield_ms after the
 * last one ended, every batch worker not running interactive work itself is told to yield the
 * CPU (ops.yield, before the interactive item is sent), so that the kernel runs the live sample
 * (and the supervisor relaying it) at once; otherwise batches keep their share of a machine
 * that other processes also use. Told only on a change. The tick ends it. */
void qd_sched_yield_update(struct qd_sched *s, uint64_t now);

/* Deadlines: SIGABRT to a worker past its item's deadline, SIGKILL after the grace. A deadline
 * counts the time the worker ran or slept, not the time it was runnable but waited for a CPU
 * behind other tasks (a batch worker at batch-nice or SCHED_IDLE beside a busy process): that
 * wait moves the deadline on, by at most wait_credit_ms and QD_SCHED_WAIT_CAP times the
 * deadline in all (a loop the kernel's account misreads still ends). The kernel adds a wait to
 * run_delay only when it ends, so of a worker found runnable that did not block since the last
 * reading, the time since then that it neither ran nor ended a wait is counted as a wait still
 * going on (and run_delay's later growth by as much is not counted again). The first reading
 * is taken half a deadline (at most a second) after the deadline was set (a deadline under a
 * second: when it is set), the next ones at each tick once half of it has passed: with the
 * default deadlines, only for long items. */
void qd_sched_tick(struct qd_sched *s, uint64_t now);
/* Whether reserved workers may run under the real-time policy (the supervisor is under a
 * higher one): off takes every worker out of it now. */
void qd_sched_rt_allow(struct qd_sched *s, bool on, uint64_t now);
/* /proc/PID/schedstat's line ("%llu %llu %llu\n"): run and wait ns into ret (runnable is left
 * alone); 0, or -EINVAL when buf[0, n) is not such a line. */
int qd_schedstat_parse(const char *buf, size_t n, struct qd_cpu_wait *ret);
/* /proc/PID/status: runnable (State: R) and sleeps (voluntary_ctxt_switches) into ret; 0, or
 * -EINVAL when either line is missing or malformed. */
int qd_status_parse(const char *buf, size_t n, struct qd_cpu_wait *ret);
/* Shutdown: every worker is told SIGTERM (SIGKILL after grace_ms); nothing is dispatched. */
void qd_sched_stop(struct qd_sched *s, uint64_t now, uint32_t grace_ms);

/* Counts for status: workers not retiring, killing or exiting; samples in the interactive
 * queue. */
unsigned qd_sched_live_workers(const struct qd_sched *s);
/* Of those, the reserved (interactive) ones. */
unsigned qd_sched_live_reserved(const struct qd_sched *s);

/* SIGKILL, SIGTERM, SIGINT, SIGHUP: signals a process gets from elsewhere (an operator, the OOM
 * killer, a stop), not from a fault of its own. */
bool qd_signal_from_outside(int term_signal);
/* Whether a worker's end says nothing about the sample it ran: a signal from outside, or
 * QD_EXIT_CACHE_CHANGED. Charged as a kill, not a crash, and not counted in totals.crashes. */
bool qd_sched_not_the_sample(int status, int term_signal);
uint64_t qd_sched_queued_interactive(const struct qd_sched *s);
