/* Scheduling as data (see qd_sched.h). Invariants, each owned by one function:
 * - queued counts samples in the two item queues plus uncut batch columns: q_add/q_sub only;
 * - inflight counts admitted, unfinished jobs: qd_sched_admit and qd_sched_finish only;
 * - a job is released once it is finished and unreferenced: job_unref only;
 * - only an idle worker is given work, and a worker we are killing is never idle. */
#include "qd_sched.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/compiler.h"
#include "base/qt_err.h"
#include "qd.h"

const char *const qd_wstate_names[] = {"starting", "idle",    "busy",
                                       "draining", "killing", "exiting"};

struct qd_chunk {
    struct qd_job *job;
    size_t c0, n;
    bool batch; /* cut from a submit (for the batch share) */
    struct qd_chunk *next;
};

static void q_add(struct qd_sched *s, size_t n)
{
    s->queued += n;
}

static void q_sub(struct qd_sched *s, size_t n)
{
    s->queued -= n;
}

static void job_unref(struct qd_sched *s, struct qd_job *job)
{
    job->refs--;
    if (job->finished && job->refs == 0) {
        free(job->state);
        job->state = NULL;
        s->ops.release(s->ops.ud, job);
    }
}

static void push(struct qd_chunk **head, struct qd_chunk **tail, struct qd_chunk *ch)
{
    ch->next = NULL;
    if (*tail)
        (*tail)->next = ch;
    else
        *head = ch;
    *tail = ch;
}

static struct qd_chunk *pop(struct qd_chunk **head, struct qd_chunk **tail)
{
    struct qd_chunk *ch = *head;

    if (ch) {
        *head = ch->next;
        if (!*head)
            *tail = NULL;
    }
    return ch;
}

static struct qd_chunk *chunk_new(struct qd_job *job, size_t c0, size_t n)
{
    struct qd_chunk *ch = calloc(1, sizeof(*ch));

    if (!ch)
        return NULL;
    ch->job = job;
    ch->c0 = c0;
    ch->n = n;
    job->refs++;
    return ch;
}

static void chunk_free(struct qd_sched *s, struct qd_chunk *ch)
{
    struct qd_job *job = ch->job;

    free(ch);
    job_unref(s, job);
}

/* Queues samples [c0, c0 + n) of job as one item. */
static int enqueue(struct qd_sched *s, struct qd_job *job, size_t c0, size_t n, bool retry)
{
    struct qd_chunk *ch = chunk_new(job, c0, n);

    if (!ch)
        return -ENOMEM;
    q_add(s, n);
    if (retry)
        push(&s->rq_head, &s->rq_tail, ch);
    else
        push(&s->iq_head, &s->iq_tail, ch);
    return 0;
}

/* Drops job's items from one queue. */
static void drop_queued(struct qd_sched *s, struct qd_chunk **head, struct qd_chunk **tail,
                        struct qd_job *job)
{
    struct qd_chunk *keep_h = NULL, *keep_t = NULL, *ch;

    while ((ch = pop(head, tail))) {
        if (ch->job == job) {
            q_sub(s, ch->n);
            chunk_free(s, ch);
        } else {
            push(&keep_h, &keep_t, ch);
        }
    }
    *head = keep_h;
    *tail = keep_t;
}

static void batch_unlink(struct qd_sched *s, struct qd_job *job)
{
    if (!job->in_batch)
        return;
    for (struct qd_job **p = &s->batch; *p; p = &(*p)->bnext)
        if (*p == job) {
            *p = job->bnext;
            break;
        }
    job->in_batch = false;
    job->bnext = NULL;
    q_sub(s, job->n - job->next_col);
    job->next_col = job->n;
}

void qd_sched_init(struct qd_sched *s, const struct qd_sched_ops *ops,
                   const struct qd_sched_limits *lim)
{
    memset(s, 0, sizeof(*s));
    s->ops = *ops;
    s->lim = *lim;
}

void qd_sched_set_limits(struct qd_sched *s, const struct qd_sched_limits *lim)
{
    s->lim = *lim;
    s->rt_refused = false;
}

void qd_sched_done(struct qd_sched *s)
{
    struct qd_chunk *ch;

    while ((ch = pop(&s->iq_head, &s->iq_tail)) || (ch = pop(&s->rq_head, &s->rq_tail))) {
        q_sub(s, ch->n);
        chunk_free(s, ch);
    }
}

int qd_sched_admit(struct qd_sched *s, struct qd_job *job)
{
    /* Tasks (design.put, cache.*) are not samples: a full sample queue does not refuse them. */
    if (job->kind == QD_JOB_SAMPLES && s->queued > 0 && s->queued + job->n > s->lim.max_queue)
        return -EBUSY;
    job->state = calloc(job->n ? job->n : 1, 1);
    if (!job->state)
        return -ENOMEM;
    job->next_col = job->done = job->failed = 0;
    job->batch_us = job->batch_n = 0;
    job->refs = 0; /* queued items and running ones refer to it; the batch list does not */
    job->finished = job->in_batch = false;
    if (job->interactive) {
        size_t step = job->unit ? job->unit : job->n;

        for (size_t c0 = 0; c0 < job->n; c0 += step)
            if (enqueue(s, job, c0, job->n - c0 < step ? job->n - c0 : step, false) < 0) {
                drop_queued(s, &s->iq_head, &s->iq_tail, job);
                free(job->state);
                job->state = NULL;
                return -ENOMEM;
            }
    } else {
        struct qd_job **p = &s->batch;

        while (*p)
            p = &(*p)->bnext;
        *p = job;
        job->bnext = NULL;
        job->in_batch = true;
        q_add(s, job->n);
    }
    job->admitted = true;
    s->inflight++;
    return 0;
}

void qd_sched_finish(struct qd_sched *s, struct qd_job *job)
{
    if (!job->admitted || job->finished)
        return;
    job->refs++;
    job->finished = true;
    s->inflight--;
    batch_unlink(s, job);
    drop_queued(s, &s->iq_head, &s->iq_tail, job);
    drop_queued(s, &s->rq_head, &s->rq_tail, job);
    job_unref(s, job);
}

bool qd_sched_pending(const struct qd_job *job, size_t col)
{
    return !job->finished && col < job->n && !(job->state[col] & QD_SAMPLE_DELIVERED);
}

bool qd_sched_delivered(struct qd_sched *s, struct qd_job *job, size_t col, bool ok)
{
    if (!qd_sched_pending(job, col))
        return false;
    job->state[col] |= QD_SAMPLE_DELIVERED;
    job->done++;
    job->failed += !ok;
    s->tot.items++;
    s->tot.errors += !ok;
    return true;
}

uint64_t qd_sched_item_timeout(const struct qd_sched_limits *lim, const struct qd_job *job)
{
    uint64_t t = lim->item_timeout_ms;

    if (job->kind == QD_JOB_TASK)
        return lim->task_timeout_ms;
    if (job->dim > QD_SCHED_BIG_DIM) {
        uint64_t k = QT_MIN((uint64_t)job->dim, (uint64_t)4096) / QD_SCHED_BIG_DIM; /* no overflow */

        t *= k * k * k;
    }
    if (job->timeout_ms && job->timeout_ms < t)
        return job->timeout_ms;
    return t;
}

static uint64_t item_timeout(const struct qd_sched *s, const struct qd_job *job)
{
    return qd_sched_item_timeout(&s->lim, job);
}

/* Samples per batch item: the chunk, or more while an item of them takes at most chunk_grow_us
 * of a worker's time at the submit's measured rate (its first items are chunks): the relay's
 * cost per item (a frame each way, a wake-up of the worker) then matters less for fast samples,
 * and a live sample still waits at most about max(a chunk, chunk_grow_us). */
static size_t batch_item_size(const struct qd_sched *s, const struct qd_job *job)
{
    uint64_t per, grow, base = job->dim >= QD_SCHED_BIG_DIM ? 1 : s->lim.chunk;

    if (job->unit)
        return job->unit;
    if (!s->lim.chunk_grow_us || job->batch_n < base)
        return (size_t)base;
    per = job->batch_us / job->batch_n;
    grow = per ? s->lim.chunk_grow_us / per : QD_MAX_CHUNK;
    return (size_t)QT_MAX(base, QT_MIN(grow, (uint64_t)QD_MAX_CHUNK));
}

/* Cuts the next item of a submit, preferring one whose cache file w has mapped; submits take
 * turns. */
static struct qd_chunk *cut_batch(struct qd_sched *s, const struct qd_sw *w)
{
    struct qd_job *pick = NULL;
    struct qd_chunk *ch;
    size_t n;

    for (struct qd_job *job = s->batch; job; job = job->bnext) {
        if (job->next_col >= job->n || (s->ops.paused && s->ops.paused(s->ops.ud, job)))
            continue;
        if (!pick)
            pick = job;
        if (strcmp(job->key, w->key) == 0) {
            pick = job;
            break;
        }
    }
    if (!pick)
        return NULL;
    n = pick->n - pick->next_col;
    if (n > batch_item_size(s, pick))
        n = batch_item_size(s, pick);
    ch = chunk_new(pick, pick->next_col, n);
    if (!ch)
        return NULL;
    ch->batch = true;
    pick->next_col += n;
    q_sub(s, n);
    if (pick->next_col >= pick->n) { /* fully cut: leave the round robin */
        pick->next_col = pick->n;
        pick->in_batch = false; /* batch_unlink without the count: nothing is left uncut */
        for (struct qd_job **p = &s->batch; *p; p = &(*p)->bnext)
            if (*p == pick) {
                *p = pick->bnext;
                break;
            }
        pick->bnext = NULL;
    } else if (pick == s->batch && pick->bnext) { /* to the back of the round robin */
        struct qd_job **p = &s->batch;

        s->batch = pick->bnext;
        while (*p)
            p = &(*p)->bnext;
        *p = pick;
        pick->bnext = NULL;
    }
    return ch;
}

/* Reads w's CPU account: the first reading marks, a later one counts the wait since the last
 * (see qd_sched_tick) and moves the deadline on by it, within wait_credit_ms. Whether the
 * deadline is still ahead of now. */
static bool credit_wait(struct qd_sched *s, struct qd_sw *w, uint64_t now)
{
    struct qd_cpu_wait cw = {0};
    uint64_t waited, counted, ms;

    if (!s->ops.cpu_wait || !s->lim.wait_credit_ms || s->ops.cpu_wait(s->ops.ud, w, &cw) < 0)
        return now < w->deadline;
    if (w->wait_marked) {
        /* Of the run delay's growth, the part counted earlier while it went on, and the part
         * that fell within this span. */
        waited = cw.wait_ns > w->last_wait_ns ? cw.wait_ns - w->last_wait_ns : 0;
        counted = QT_MIN(waited, w->pending_ns);
        w->credit_ns += waited - counted;
        w->pending_ns -= counted;
        if (cw.runnable && cw.sleeps == w->last_sleeps && now > w->t_last) {
            uint64_t span = (now - w->t_last) * 1000000, ran = cw.run_ns - w->last_run_ns;
            uint64_t within = waited - counted;

            if (cw.run_ns >= w->last_run_ns && span > ran + within) {
                w->credit_ns += span - ran - within;
                w->pending_ns += span - ran - within;
            }
        }
        ms = QT_MIN(w->credit_ns / 1000000, w->credit_cap);
        w->wait_credit = ms;
        w->deadline = w->deadline0 + ms;
    }
    w->wait_marked = true;
    w->t_read = QT_MAX(w->t_half, now + 1);
    w->t_last = now;
    w->last_run_ns = cw.run_ns;
    w->last_wait_ns = cw.wait_ns;
    w->last_sleeps = cw.sleeps;
    return now < w->deadline;
}

/* A deadline ms from now, and its readings of the worker's CPU wait (see qd_sched_tick). A
 * request that asks a deadline under a second pays two reads of /proc per sample. */
static void set_deadline(struct qd_sched *s, struct qd_sw *w, uint64_t now, uint64_t ms)
{
    w->deadline = w->deadline0 = now + ms;
    w->credit_cap = QT_MIN((uint64_t)s->lim.wait_credit_ms, QD_SCHED_WAIT_CAP * ms);
    w->t_half = now + ms / 2;
    w->t_read = now + QT_MIN(ms / 2, (uint64_t)1000);
    w->wait_marked = false;
    w->credit_ns = w->pending_ns = w->wait_credit = 0;
    if (ms < 1000)
        (void)credit_wait(s, w, now);
}

static bool running_interactive(const struct qd_sw *w)
{
    return w->cur && w->cur->job->interactive;
}

static void yield_apply(struct qd_sched *s, struct qd_sw *w)
{
    bool on = s->yielding && !w->reserved && !running_interactive(w);

    if (!s->ops.yield || on == w->yielded || w->state == QD_W_KILLING ||
        w->state == QD_W_EXITING)
        return;
    w->yielded = on;
    s->ops.yield(s->ops.ud, w, on);
}

void qd_sched_yield_update(struct qd_sched *s, uint64_t now)
{
    bool on = false;

    if (!s->lim.yield_ms)
        on = false;
    else if (now < s->yield_until)
        on = true;
    else
        for (struct qd_sw *w = s->workers; w && !on; w = w->next)
            on = running_interactive(w) && w->state == QD_W_BUSY;
    if (on == s->yielding)
        return;
    s->yielding = on;
    for (struct qd_sw *w = s->workers; w; w = w->next)
        yield_apply(s, w);
}

int64_t qd_rt_budget_left(struct qd_rt_budget *b, uint64_t now, unsigned share_pct)
{
    const int64_t burst = (int64_t)QD_RT_BURST_MS * 1000;

    if (!b->started) {
        b->started = true;
        b->us = burst;
    } else if (now > b->t && b->us < burst) {
        /* 1 ms of time earns share_pct * 10 µs; a day's worth at most (no overflow) */
        int64_t earn = (int64_t)QT_MIN(now - b->t, (uint64_t)86400000) * share_pct * 10;

        b->us = earn >= burst - b->us ? burst : b->us + earn;
    }
    b->t = QT_MAX(b->t, now);
    return b->us;
}

void qd_rt_budget_spend(struct qd_rt_budget *b, uint64_t us)
{
    b->us -= (int64_t)QT_MIN(us, (uint64_t)INT32_MAX);
}

static void rt_set(struct qd_sched *s, struct qd_sw *w, bool on, uint64_t now)
{
    int r;

    if (!on) { /* what its item ran under the policy */
        qd_rt_budget_spend(&w->rtb, (now - QT_MIN(now, w->rt_since)) * 1000);
        w->rt_since = now;
    }
    r = s->ops.rt(s->ops.ud, w, on);
    if (on && r < 0)
        s->rt_refused = true;
    /* a worker that could not leave the policy is still under it: asked again at each tick */
    w->rt = on ? r >= 0 : r < 0;
}

/* A reserved worker starts an item under the real-time policy while it has budget (lim.rt), so
 * that neither batch workers nor other ordinary processes delay a live sample, and stays under
 * it between items (it sleeps, taking nothing); the item goes on under its ordinary policy once
 * the budget is spent (qd_sched_tick, qd_sched_item_end). Less than a millisecond left: the
 * item starts under the ordinary policy. */
static void rt_start(struct qd_sched *s, struct qd_sw *w, uint64_t now)
{
    int64_t left;

    if (!w->reserved || !s->lim.rt || !s->ops.rt || s->rt_refused || s->rt_paused)
        return;
    left = qd_rt_budget_left(&w->rtb, now, QD_RT_SHARE_PCT);
    w->rt_since = now;
    w->rt_until = now + (uint64_t)QT_MAX(left, 0) / 1000;
    if (left < 1000 && w->rt)
        rt_set(s, w, false, now);
    else if (left >= 1000 && !w->rt)
        rt_set(s, w, true, now);
}

/* The item ended: its time under the policy is spent (the worker stays under it). */
static void rt_end(struct qd_sw *w, uint64_t now)
{
    if (!w->rt)
        return;
    qd_rt_budget_spend(&w->rtb, (now - QT_MIN(now, w->rt_since)) * 1000);
    w->rt_since = now;
}

static void start_item(struct qd_sched *s, struct qd_sw *w, struct qd_chunk *ch, uint64_t now)
{
    struct qd_job *job = ch->job;
    int r;

    w->state = QD_W_BUSY;
    w->cur = ch;
    w->cur_done = 0;
    w->cur_computed = 0;
    w->t_dispatch = now;
    set_deadline(s, w, now, item_timeout(s, job));
    w->timed_out = false;
    w->kill_at = 0;
    if (job->kind == QD_JOB_SAMPLES)
        memcpy(w->key, job->key, sizeof(w->key));
    if (job->interactive && s->lim.yield_ms) {
        s->yield_until = now + s->lim.yield_ms;
        qd_sched_yield_update(s, now);
    }
    yield_apply(s, w);
    rt_start(s, w, now);
    r = s->ops.start(s->ops.ud, w, job, ch->c0, ch->n);
    if (r >= 0)
        return;
    w->cur = NULL;
    w->state = QD_W_IDLE;
    for (size_t i = 0; i < ch->n; i++)
        if (qd_sched_pending(job, ch->c0 + i))
            s->ops.fail(s->ops.ud, job, ch->c0 + i, r, "could not send the work item", w->pid);
    chunk_free(s, ch);
}

/* Whether a submit has columns left to cut now (not paused). */
static bool batch_waiting(const struct qd_sched *s)
{
    for (const struct qd_job *job = s->batch; job; job = job->bnext)
        if (job->next_col < job->n && !(s->ops.paused && s->ops.paused(s->ops.ud, job)))
            return true;
    return false;
}

/* While both wait: batches are due when their share of the worker time is below theirs. */
static bool batch_due(struct qd_sched *s)
{
    bool both = (s->iq_head || s->rq_head) && batch_waiting(s);

    if (!both) {
        s->us_interactive = s->us_batch = 0;
        return false;
    }
    return s->lim.batch_share_pct > 0 &&
           s->us_batch * 100 < (s->us_batch + s->us_interactive) * s->lim.batch_share_pct;
}

void qd_sched_dispatch(struct qd_sched *s, uint64_t now)
{
    if (s->stopping)
        return;
    /* Interactive items go to reserved workers first, which take nothing else, so that batch
     * workers stay on batches and a live sample never waits for a batch item. */
    for (struct qd_sw *w = s->workers; w && s->iq_head; w = w->next) {
        struct qd_chunk *ch;

        if (!w->reserved || w->state != QD_W_IDLE)
            continue;
        ch = pop(&s->iq_head, &s->iq_tail);
        q_sub(s, ch->n);
        start_item(s, w, ch, now);
    }
    for (struct qd_sw *w = s->workers; w; w = w->next) {
        struct qd_chunk *ch = NULL;

        if (w->state != QD_W_IDLE || w->reserved)
            continue;
        if (batch_due(s))
            ch = cut_batch(s, w);
        if (!ch && (ch = pop(&s->iq_head, &s->iq_tail)) == NULL)
            ch = pop(&s->rq_head, &s->rq_tail);
        if (ch && !ch->batch)
            q_sub(s, ch->n);
        else if (!ch)
            ch = cut_batch(s, w);
        if (!ch)
            return;
        start_item(s, w, ch, now);
    }
}

void qd_sched_worker_add(struct qd_sched *s, struct qd_sw *w, int pid)
{
    memset(w, 0, sizeof(*w));
    w->state = QD_W_STARTING;
    w->pid = pid;
    w->next = s->workers;
    s->workers = w;
}

void qd_sched_worker_ready(struct qd_sched *s, struct qd_sw *w)
{
    (void)s;
    if (w->state == QD_W_STARTING)
        w->state = QD_W_IDLE;
}

bool qd_sched_worker_retire(struct qd_sched *s, struct qd_sw *w)
{
    (void)s;
    switch (w->state) {
    case QD_W_STARTING:
    case QD_W_IDLE:
        w->state = QD_W_EXITING;
        return true;
    case QD_W_BUSY:
        w->state = QD_W_RETIRING;
        return false;
    default:
        return false;
    }
}

int qd_sched_sample(struct qd_sched *s, struct qd_sw *w, uint64_t idx, uint64_t now,
                    struct qd_job **ret_job, size_t *ret_col)
{
    struct qd_chunk *ch = w->cur;

    if (!ch || ch->job->kind != QD_JOB_SAMPLES || w->cur_done >= ch->n ||
        idx != ch->c0 + w->cur_done)
        return -EPROTO;
    w->cur_done++;
    w->items++;
    set_deadline(s, w, now, item_timeout(s, ch->job));
    if (!qd_sched_pending(ch->job, (size_t)idx))
        return 0;
    *ret_job = ch->job;
    *ret_col = (size_t)idx;
    return 1;
}

struct qd_job *qd_sched_item_job(const struct qd_sw *w)
{
    return w->cur ? w->cur->job : NULL;
}

int qd_sched_item_end(struct qd_sched *s, struct qd_sw *w, uint64_t now, uint64_t busy_us)
{
    struct qd_chunk *ch = w->cur;

    if (!ch || (ch->job->kind == QD_JOB_SAMPLES && w->cur_done != ch->n))
        return -EPROTO;
    w->cur = NULL;
    rt_end(w, now);
    if (ch->job->interactive && s->lim.yield_ms)
        s->yield_until = now + s->lim.yield_ms;
    busy_us = busy_us ? busy_us : 1; /* an item takes time, even under the clock's step */
    if (ch->batch && !ch->job->unit) {
        ch->job->batch_us += busy_us;
        ch->job->batch_n += ch->n;
    }
    if (ch->batch)
        s->us_batch += busy_us;
    else
        s->us_interactive += busy_us;
    chunk_free(s, ch);
    switch (w->state) {
    case QD_W_BUSY:
        w->state = QD_W_IDLE;
        return QD_AFTER_IDLE;
    case QD_W_RETIRING:
        w->state = QD_W_EXITING;
        return QD_AFTER_RETIRE;
    default: /* killing or exiting: it gets nothing more */
        return QD_AFTER_WAIT;
    }
}

bool qd_signal_from_outside(int term_signal)
{
    return term_signal == SIGKILL || term_signal == SIGTERM || term_signal == SIGINT ||
           term_signal == SIGHUP;
}

bool qd_sched_not_the_sample(int status, int term_signal)
{
    return term_signal ? qd_signal_from_outside(term_signal) : status == QD_EXIT_CACHE_CHANGED;
}

/* The running sample of a dead worker: charged a crash or a kill, failed at the limit. */
static void charge(struct qd_sched *s, struct qd_sw *w, struct qd_job *job, size_t col, int status,
                   int term_signal)
{
    uint8_t st = job->state[col];
    unsigned crashes = st & QD_SAMPLE_CRASHES, kills = (st & QD_SAMPLE_KILLS) >> 2;
    char msg[128];

    if (qd_sched_not_the_sample(status, term_signal))
        kills++;
    else
        crashes++;
    job->state[col] = (uint8_t)((st & QD_SAMPLE_DELIVERED) | crashes | kills << 2);
    if (crashes < QD_SCHED_MAX_CRASHES && kills < QD_SCHED_MAX_KILLS) {
        if (enqueue(s, job, col, 1, true) < 0)
            s->ops.fail(s->ops.ud, job, col, -ENOMEM, "out of memory", w->pid);
        return;
    }
    if (kills >= QD_SCHED_MAX_KILLS && !term_signal)
        snprintf(msg, sizeof(msg),
                 "%u workers were killed or found their cache file changed running the sample "
                 "(last: the cache file changed)",
                 kills);
    else if (kills >= QD_SCHED_MAX_KILLS)
        snprintf(msg, sizeof(msg),
                 "%u workers were killed running the sample (last: signal %d; out of memory?)",
                 kills, term_signal);
    else if (term_signal)
        snprintf(msg, sizeof(msg), "the sample crashed %u workers (last: signal %d)", crashes,
                 term_signal);
    else
        snprintf(msg, sizeof(msg), "the sample crashed %u workers (last: exited)", crashes);
    s->ops.fail(s->ops.ud, job, col, QT_ECRASHED, msg, w->pid);
}

static void unlink_worker(struct qd_sched *s, struct qd_sw *w)
{
    for (struct qd_sw **p = &s->workers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    w->next = NULL;
}

void qd_sched_worker_exit(struct qd_sched *s, struct qd_sw *w, int status, int term_signal)
{
    struct qd_chunk *ch = w->cur;
    struct qd_job *job;
    size_t head, done;
    bool known;

    unlink_worker(s, w);
    w->cur = NULL;
    if (w->timed_out)
        s->tot.timeouts++;
    else if (ch && !s->stopping && !(status == QD_EXIT_CACHE_CHANGED && !term_signal))
        s->tot.crashes++;
    if (!ch)
        return;
    job = ch->job;
    job->refs++;
    if (job->kind == QD_JOB_TASK) {
        if (qd_sched_pending(job, 0))
            s->ops.fail(s->ops.ud, job, 0, w->timed_out ? QT_EDEADLINE : QT_ECRASHED,
                        w->timed_out ? "the task passed its deadline; its worker was killed"
                                     : "the worker died",
                        w->pid);
        goto out;
    }
    /* The worker answers an item's samples in order, after their own estimates (several in one
     * write), but first runs the linear estimate of all of them: before the first sample of a
     * several-sample item was computed nobody knows which sample was running, so none is
     * charged. Its progress word (cur_computed) says how many it computed: the first of the
     * others was running; those computed but not answered are queued again, uncharged. */
    done = QT_MAX(w->cur_done, QT_MIN(w->cur_computed, ch->n));
    head = ch->c0 + done;
    known = ch->n == 1 || done > 0;
    for (size_t col = ch->c0 + w->cur_done; col < ch->c0 + ch->n; col++) {
        if (!qd_sched_pending(job, col))
            continue;
        if (col != head || (!known && !w->timed_out)) { /* queued again, uncharged */
            if (enqueue(s, job, col, 1, true) < 0)
                s->ops.fail(s->ops.ud, job, col, -ENOMEM, "out of memory", w->pid);
        } else if (w->timed_out) {
            s->ops.fail(s->ops.ud, job, col, QT_EDEADLINE,
                        "the sample passed its deadline; its worker was killed", w->pid);
        } else {
            charge(s, w, job, col, status, term_signal);
        }
    }
out:
    chunk_free(s, ch);
    job_unref(s, job);
}

static int parse_u64(const char *buf, size_t n, size_t *i, char end, uint64_t *ret)
{
    size_t start = *i;
    uint64_t v = 0;

    while (*i < n && buf[*i] >= '0' && buf[*i] <= '9') {
        uint64_t digit = (uint64_t)(buf[(*i)++] - '0');

        if (v > (UINT64_MAX - digit) / 10)
            return -EINVAL;
        v = v * 10 + digit;
    }
    if (*i == start || *i == n || buf[*i] != end)
        return -EINVAL;
    (*i)++;
    *ret = v;
    return 0;
}

int qd_schedstat_parse(const char *buf, size_t n, struct qd_cpu_wait *ret)
{
    uint64_t run, wait, slices;
    size_t i = 0;

    if (parse_u64(buf, n, &i, ' ', &run) < 0 || parse_u64(buf, n, &i, ' ', &wait) < 0 ||
        parse_u64(buf, n, &i, '\n', &slices) < 0 || i != n)
        return -EINVAL;
    ret->run_ns = run;
    ret->wait_ns = wait;
    return 0;
}

/* The value of the line of buf[0, n) that starts with key, up to its newline; NULL if none. */
static const char *status_line(const char *buf, size_t n, const char *key, size_t *ret_len)
{
    size_t k = strlen(key);

    for (size_t i = 0; i < n;) {
        const char *nl = memchr(buf + i, '\n', n - i);
        size_t end = nl ? (size_t)(nl - buf) : n;

        if (end - i >= k && !memcmp(buf + i, key, k)) {
            *ret_len = end - i - k;
            return buf + i + k;
        }
        i = end + 1;
    }
    return NULL;
}

int qd_status_parse(const char *buf, size_t n, struct qd_cpu_wait *ret)
{
    const char *st, *vs;
    size_t st_len, vs_len, i = 0;
    uint64_t sleeps;
    char line[24];

    st = status_line(buf, n, "State:\t", &st_len);
    vs = status_line(buf, n, "voluntary_ctxt_switches:\t", &vs_len);
    if (!st || !st_len || !vs || vs_len + 1 > sizeof(line) ||
        (st_len > 1 && st[1] != ' '))
        return -EINVAL;
    memcpy(line, vs, vs_len);
    line[vs_len] = '\n';
    if (parse_u64(line, vs_len + 1, &i, '\n', &sleeps) < 0)
        return -EINVAL;
    ret->runnable = st[0] == 'R';
    ret->sleeps = sleeps;
    return 0;
}

void qd_sched_tick(struct qd_sched *s, uint64_t now)
{
    qd_sched_yield_update(s, now);
    for (struct qd_sw *w = s->workers; w; w = w->next) {
        bool running = w->cur && !w->timed_out &&
                       (w->state == QD_W_BUSY || w->state == QD_W_RETIRING);

        if (w->rt && running && now >= w->rt_until)
            rt_set(s, w, false, now);
        if (w->kill_at && now >= w->kill_at) {
            w->kill_at = now + 1000; /* again each second until its exit is seen */
            s->ops.kill(s->ops.ud, w, SIGKILL);
        } else if (running && now >= w->t_read && !credit_wait(s, w, now)) {
            w->timed_out = true;
            w->state = QD_W_KILLING;
            w->kill_at = now + s->lim.kill_grace_ms;
            s->ops.kill(s->ops.ud, w, SIGABRT);
        }
    }
}

void qd_sched_rt_allow(struct qd_sched *s, bool on, uint64_t now)
{
    s->rt_paused = !on;
    if (on)
        return;
    for (struct qd_sw *w = s->workers; w; w = w->next)
        if (w->rt)
            rt_set(s, w, false, now);
}

void qd_sched_stop(struct qd_sched *s, uint64_t now, uint32_t grace_ms)
{
    s->stopping = true;
    for (struct qd_sw *w = s->workers; w; w = w->next) {
        w->state = QD_W_EXITING;
        w->kill_at = now + grace_ms;
        s->ops.kill(s->ops.ud, w, SIGTERM);
    }
}

unsigned qd_sched_live_workers(const struct qd_sched *s)
{
    unsigned n = 0;

    for (const struct qd_sw *w = s->workers; w; w = w->next)
        n += w->state == QD_W_STARTING || w->state == QD_W_IDLE || w->state == QD_W_BUSY;
    return n;
}

uint64_t qd_sched_queued_interactive(const struct qd_sched *s)
{
    uint64_t n = 0;

    for (const struct qd_chunk *ch = s->iq_head; ch; ch = ch->next)
        n += ch->n;
    return n;
}

unsigned qd_sched_live_reserved(const struct qd_sched *s)
{
    unsigned n = 0;

    for (const struct qd_sw *w = s->workers; w; w = w->next)
        n += w->reserved &&
             (w->state == QD_W_STARTING || w->state == QD_W_IDLE || w->state == QD_W_BUSY);
    return n;
}
