/* The supervisor's scheduler (daemon/qd_sched.c) driven through event sequences with fake
 * workers: every sample ends exactly once (a result or one error), interactive items go first,
 * retries charge only the sample that was running, a worker killed for a deadline is never
 * given work again, cancel and drain free what was queued. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/qt_err.h"
#include "qd.h"
#include "qd_sched.h"
#include "qt_test.h"

#define MAXS 512 /* samples a test job may have */

struct tjob {
    struct qd_job sj;
    int results[MAXS]; /* per sample: results delivered (ok or error) */
    int errs[MAXS];    /* the error of a failed sample */
    bool released;
};

struct start {
    struct qd_sw *w;
    struct qd_job *job;
    size_t c0, n;
};

static struct fake {
    struct qd_sched s;
    struct start starts[512];
    size_t nstart;

    struct {
        struct qd_sw *w;
        int sig;
    } kills[64];

    size_t nkill;
    int start_ret;
    bool paused;
    struct tjob *jobs[512]; /* every job a test made, for finish_all */
    size_t njobs;
    struct {
        struct qd_sw *w;
        bool on;
        size_t nstart; /* starts before it */
    } yields[64];

    size_t nyield;
    struct qd_cpu_wait cw; /* what cpu_wait reports */
    int wait_ret;          /* and returns */
    size_t nwait;          /* times it was called */
    struct {
        struct qd_sw *w;
        bool on;
        size_t nstart; /* starts before it */
    } rts[1024];

    size_t nrt;
    int rt_ret;     /* what rt returns when asked to set it */
    int rt_off_ret; /* ... to leave it */
} F;

static struct tjob *tj(struct qd_job *j)
{
    return (struct tjob *)j;
}

static int f_start(void *ud, struct qd_sw *w, struct qd_job *job, size_t c0, size_t n)
{
    (void)ud;
    assert_int_equal(w->state, QD_W_BUSY);
    assert_true(F.nstart < 512);
    F.starts[F.nstart++] = (struct start){w, job, c0, n};
    return F.start_ret;
}

static void f_fail(void *ud, struct qd_job *job, size_t col, int err, const char *msg, int pid)
{
    (void)ud;
    (void)msg;
    (void)pid;
    if (qd_sched_delivered(&F.s, job, col, false)) {
        tj(job)->results[col]++;
        tj(job)->errs[col] = err;
    }
    if (job->done == job->n)
        qd_sched_finish(&F.s, job);
}

static void f_kill(void *ud, struct qd_sw *w, int sig)
{
    (void)ud;
    F.kills[F.nkill].w = w;
    F.kills[F.nkill++].sig = sig;
}

static bool f_paused(void *ud, const struct qd_job *job)
{
    (void)ud;
    (void)job;
    return F.paused;
}

static void f_release(void *ud, struct qd_job *job)
{
    (void)ud;
    assert_false(tj(job)->released);
    tj(job)->released = true;
}

static void setup_grow(uint32_t chunk, uint64_t max_queue, uint32_t share, uint32_t grow_us)
{
    struct qd_sched_ops ops = {NULL,      f_start, f_fail, f_kill, f_paused,
                               f_release, NULL,    NULL,   NULL};
    struct qd_sched_limits lim = {chunk, 1000, 5000, 200, max_queue, share, grow_us, 0, 0, 0};

    memset(&F, 0, sizeof(F));
    qd_sched_init(&F.s, &ops, &lim);
}

static int f_cpu_wait(void *ud, const struct qd_sw *w, struct qd_cpu_wait *cw)
{
    (void)ud;
    (void)w;
    F.nwait++;
    *cw = F.cw;
    return F.wait_ret;
}

static void f_yield(void *ud, struct qd_sw *w, bool on)
{
    (void)ud;
    assert_true(F.nyield < 64);
    F.yields[F.nyield].w = w;
    F.yields[F.nyield].on = on;
    F.yields[F.nyield++].nstart = F.nstart;
}

static int f_rt(void *ud, struct qd_sw *w, bool on)
{
    (void)ud;
    assert_true(F.nrt < 1024);
    F.rts[F.nrt].w = w;
    F.rts[F.nrt].on = on;
    F.rts[F.nrt++].nstart = F.nstart;
    return on ? F.rt_ret : F.rt_off_ret;
}

/* Item deadline timeout_ms, CPU wait credited up to credit_ms, batch workers yielding
 * yield_ms; no real-time policy (setup_rt). */
static void setup_ext(uint32_t chunk, uint32_t timeout_ms, uint32_t credit_ms, uint32_t yield_ms)
{
    struct qd_sched_ops ops = {NULL,      f_start,    f_fail,  f_kill, f_paused,
                               f_release, f_cpu_wait, f_yield, f_rt};
    struct qd_sched_limits lim = {chunk, timeout_ms, 5000, 200,      1000,
                                  20,    0,          credit_ms, yield_ms, 0};

    memset(&F, 0, sizeof(F));
    qd_sched_init(&F.s, &ops, &lim);
}

static void setup_wait(uint32_t credit_ms)
{
    setup_ext(4, 1000, credit_ms, 0);
}

static void assert_yield(size_t i, const struct qd_sw *w, bool on)
{
    assert_true(i < F.nyield);
    assert_ptr_equal(F.yields[i].w, w);
    assert_int_equal(F.yields[i].on, on);
}

static void setup_share(uint32_t chunk, uint64_t max_queue, uint32_t share)
{
    setup_grow(chunk, max_queue, share, 0);
}

static void setup(uint32_t chunk, uint64_t max_queue)
{
    setup_share(chunk, max_queue, 20);
}

static void job_init(struct tjob *j, bool interactive, size_t n, const char *key)
{
    memset(j, 0, sizeof(*j));
    assert_true(n <= MAXS);
    assert_true(F.njobs < 512);
    F.jobs[F.njobs++] = j;
    j->sj.kind = QD_JOB_SAMPLES;
    j->sj.interactive = interactive;
    j->sj.n = n;
    snprintf(j->sj.key, sizeof(j->sj.key), "%s", key);
}

/* The end of a test: workers gone, every job finished, the queues freed (no leaks under ASan
 * and valgrind). The jobs live on the test's stack: call it before the test returns. */
static void finish_all(void)
{
    F.s.stopping = true;
    while (F.s.workers)
        qd_sched_worker_exit(&F.s, F.s.workers, 0, 0);
    for (size_t i = 0; i < F.njobs; i++)
        qd_sched_finish(&F.s, &F.jobs[i]->sj);
    qd_sched_done(&F.s);
    for (size_t i = 0; i < F.njobs; i++)
        assert_true(!F.jobs[i]->sj.admitted || F.jobs[i]->released);
    F.njobs = 0;
}

static void worker_up(struct qd_sw *w, int pid)
{
    qd_sched_worker_add(&F.s, w, pid);
    qd_sched_worker_ready(&F.s, w);
}

/* The item last started on w. */
static const struct start *last_start(const struct qd_sw *w)
{
    for (size_t k = F.nstart; k-- > 0;)
        if (F.starts[k].w == w)
            return &F.starts[k];
    fail_msg("no item was started on this worker");
    return NULL;
}

/* The worker answers n more samples of its item (ok). */
static void answer(struct qd_sw *w, size_t n, uint64_t now)
{
    for (size_t i = 0; i < n; i++) {
        struct qd_job *job = NULL;
        size_t col = 0;
        int r = qd_sched_sample(&F.s, w, last_start(w)->c0 + w->cur_done, now, &job, &col);

        assert_true(r >= 0);
        if (r == 1 && qd_sched_delivered(&F.s, job, col, true)) {
            tj(job)->results[col]++;
            if (job->done == job->n)
                qd_sched_finish(&F.s, job);
        }
    }
}

/* The worker answers its whole item and reports its end. */
static int finish_item(struct qd_sw *w, uint64_t now)
{
    struct qd_job *job = qd_sched_item_job(w);

    assert_non_null(job);
    answer(w, last_start(w)->n - w->cur_done, now);
    return qd_sched_item_end(&F.s, w, now, (now - w->t_dispatch) * 1000);
}

static void assert_exactly_once(const struct tjob *j)
{
    for (size_t i = 0; i < j->sj.n; i++)
        assert_int_equal(j->results[i], 1);
    assert_true(j->released);
}

static void test_interactive_before_batch(void **state)
{
    struct tjob sub, rec;
    struct qd_sw w;

    (void)state;
    setup(8, 1000);
    job_init(&sub, false, 20, "nopovm-d4");
    job_init(&rec, true, 1, "mub-d3");
    assert_int_equal(qd_sched_admit(&F.s, &sub.sj), 0);
    assert_int_equal(qd_sched_admit(&F.s, &rec.sj), 0);
    assert_int_equal(F.s.queued, 21);
    assert_int_equal(F.s.inflight, 2);
    worker_up(&w, 10);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 1);
    assert_ptr_equal(F.starts[0].job, &rec.sj);
    assert_int_equal(finish_item(&w, 1), QD_AFTER_IDLE);
    for (int k = 0; k < 3; k++) {
        qd_sched_dispatch(&F.s, 2);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &sub.sj);
        assert_int_equal(F.starts[F.nstart - 1].n, k < 2 ? 8 : 4);
        assert_int_equal(finish_item(&w, 3), QD_AFTER_IDLE);
    }
    assert_exactly_once(&rec);
    assert_exactly_once(&sub);
    assert_int_equal(F.s.queued, 0);
    assert_int_equal(F.s.inflight, 0);
    assert_int_equal(F.s.tot.items, 21);
    assert_int_equal(F.s.tot.errors, 0);
    finish_all();
}

/* chunk-grow-us: a submit's first items are chunks; once a chunk's worth of samples was
 * measured, items of fast samples grow to what takes at most chunk_grow_us (up to
 * QD_MAX_CHUNK), never below the chunk; slow samples keep the chunk. */
static void test_items_of_fast_samples_grow(void **state)
{
    struct tjob a, b;
    struct qd_sw w;

    (void)state;
    setup_grow(4, 100000, 20, 1000);
    job_init(&a, false, 200, "fast");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.starts[F.nstart - 1].n, 4);
    /* 4 samples in 40 us of worker time: 10 us each, 1000 us hold 100, at most 64 */
    answer(&w, 4, 0);
    assert_int_equal(qd_sched_item_end(&F.s, &w, 0, 40), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.starts[F.nstart - 1].n, QD_MAX_CHUNK);
    answer(&w, QD_MAX_CHUNK, 0);
    assert_int_equal(qd_sched_item_end(&F.s, &w, 0, 68 * 25 - 40), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 0); /* 68 samples in 1700 us: 25 us each, 40 per item */
    assert_int_equal(F.starts[F.nstart - 1].n, 40);
    while (qd_sched_item_job(&w)) {
        assert_int_equal(finish_item(&w, 1), QD_AFTER_IDLE);
        qd_sched_dispatch(&F.s, 1);
    }
    assert_exactly_once(&a);
    job_init(&b, false, 20, "slow"); /* 1 ms per sample: chunks */
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    qd_sched_dispatch(&F.s, 2);
    answer(&w, 4, 2);
    assert_int_equal(qd_sched_item_end(&F.s, &w, 2, 4000), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 2);
    assert_int_equal(F.starts[F.nstart - 1].n, 4);
    while (qd_sched_item_job(&w)) {
        assert_int_equal(finish_item(&w, 3), QD_AFTER_IDLE);
        qd_sched_dispatch(&F.s, 3);
    }
    assert_exactly_once(&b);
    finish_all();
}

/* Large samples (d >= QD_SCHED_BIG_DIM): one per item until the rate is known, so every worker
 * gets one; slow ones stay single, and fast ones (linear at d = 256) grow as any others. Their
 * items' default deadline grows as (d / 128)^3. */
static void test_large_samples_single_items_and_longer_deadlines(void **state)
{
    struct tjob big, fast;
    struct qd_sw w1, w2;

    (void)state;
    setup_grow(8, 100000, 20, 1000);
    job_init(&big, false, 3, "pauli-d256");
    big.sj.dim = 256;
    assert_int_equal(qd_sched_admit(&F.s, &big.sj), 0);
    worker_up(&w1, 1);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 100);
    assert_int_equal(F.nstart, 2);
    assert_int_equal(F.starts[0].n, 1);
    assert_int_equal(F.starts[1].n, 1);
    assert_int_equal(w1.deadline, 100 + 8 * 1000); /* item_timeout_ms 1000, times (256/128)^3 */
    /* 20 s per sample: the next item is one sample too */
    answer(&w1, 1, 20100);
    assert_int_equal(qd_sched_item_end(&F.s, &w1, 20100, 20000000), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 20100);
    assert_int_equal(last_start(&w1)->n, 1);
    assert_int_equal(finish_item(&w1, 40000), QD_AFTER_IDLE);
    assert_int_equal(finish_item(&w2, 40000), QD_AFTER_IDLE);
    assert_exactly_once(&big);
    job_init(&fast, false, 100, "pauli-d256");
    fast.sj.dim = 256;
    assert_int_equal(qd_sched_admit(&F.s, &fast.sj), 0);
    qd_sched_dispatch(&F.s, 50000);
    assert_int_equal(last_start(&w1)->n, 1);
    answer(&w1, 1, 50000); /* 10 us: 1000 us hold 100, at most QD_MAX_CHUNK */
    assert_int_equal(qd_sched_item_end(&F.s, &w1, 50000, 10), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 50000);
    assert_int_equal(last_start(&w1)->n, QD_MAX_CHUNK);
    while (qd_sched_item_job(&w1) || qd_sched_item_job(&w2)) {
        if (qd_sched_item_job(&w1))
            assert_int_equal(finish_item(&w1, 50001), QD_AFTER_IDLE);
        if (qd_sched_item_job(&w2))
            assert_int_equal(finish_item(&w2, 50001), QD_AFTER_IDLE);
        qd_sched_dispatch(&F.s, 50001);
    }
    assert_exactly_once(&fast);
    finish_all();
}

static void test_item_timeout_scales_with_d(void **state)
{
    struct qd_sched_limits lim = {8, 60000, 5000, 200, 1000, 20, 0, 0, 0, 0};
    struct qd_job job = {.kind = QD_JOB_SAMPLES};

    (void)state;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 60000); /* d unknown */
    job.dim = 64;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 60000);
    job.dim = 128;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 60000);
    job.dim = 256;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 8 * 60000);
    job.dim = 512;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 64 * 60000);
    job.timeout_ms = 100000; /* asked for less than the scaled default */
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 100000);
    job.dim = 64; /* ... and more than the default of small samples */
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 60000);
    job.kind = QD_JOB_TASK;
    assert_int_equal(qd_sched_item_timeout(&lim, &job), 5000);
}

/* A reserved (interactive) worker takes interactive items, ahead of idle batch workers, and
 * nothing else: batch items and retries wait for batch workers even while it is idle. */
static void test_reserved_worker_is_interactive_only(void **state)
{
    struct tjob sub, rec1, rec2;
    struct qd_sw b, r;

    (void)state;
    setup(8, 1000);
    job_init(&sub, false, 16, "pauli-d16");
    job_init(&rec1, true, 1, "nopovm-d4");
    job_init(&rec2, true, 1, "nopovm-d4");
    worker_up(&r, 20);
    r.reserved = true;
    assert_int_equal(qd_sched_live_reserved(&F.s), 1);
    assert_int_equal(qd_sched_admit(&F.s, &sub.sj), 0);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 0); /* the batch does not go to the reserved worker */
    assert_int_equal(r.state, QD_W_IDLE);
    worker_up(&b, 10);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 1);
    assert_ptr_equal(F.starts[0].w, &b);
    assert_ptr_equal(F.starts[0].job, &sub.sj);
    /* A live sample while the batch worker is busy: the reserved worker, at once. */
    assert_int_equal(qd_sched_admit(&F.s, &rec1.sj), 0);
    qd_sched_dispatch(&F.s, 1);
    assert_int_equal(F.nstart, 2);
    assert_ptr_equal(F.starts[1].w, &r);
    assert_ptr_equal(F.starts[1].job, &rec1.sj);
    assert_int_equal(finish_item(&r, 2), QD_AFTER_IDLE);
    /* With both idle, a live sample still goes to the reserved worker, the batch to b. */
    assert_int_equal(finish_item(&b, 3), QD_AFTER_IDLE);
    assert_int_equal(qd_sched_admit(&F.s, &rec2.sj), 0);
    qd_sched_dispatch(&F.s, 4);
    assert_ptr_equal(last_start(&r)->job, &rec2.sj);
    assert_ptr_equal(last_start(&b)->job, &sub.sj);
    assert_int_equal(finish_item(&r, 5), QD_AFTER_IDLE);
    assert_int_equal(finish_item(&b, 5), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 6);
    assert_int_equal(r.state, QD_W_IDLE); /* nothing interactive left: it waits */
    assert_int_equal(b.state, QD_W_IDLE);
    assert_exactly_once(&rec1);
    assert_exactly_once(&rec2);
    assert_exactly_once(&sub);
    finish_all();
}

static void test_round_robin_and_affinity(void **state)
{
    struct tjob a, b;
    struct qd_sw w1, w2;

    (void)state;
    setup(4, 1000);
    job_init(&a, false, 8, "nopovm-d4");
    job_init(&b, false, 8, "mub-d3");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    worker_up(&w1, 1);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 2); /* one submit each: they take turns */
    assert_ptr_not_equal(F.starts[0].job, F.starts[1].job);
    /* A worker that finishes gets more of the submit whose cache file it has mapped. */
    assert_int_equal(finish_item(&w2, 1), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 1);
    assert_ptr_equal(F.starts[2].w, &w2);
    assert_string_equal(F.starts[2].job->key, w2.key);
    assert_int_equal(qd_sched_item_end(&F.s, &w1, 2, 1000), -EPROTO); /* its samples are missing */
    answer(&w1, 4, 2);
    assert_int_equal(qd_sched_item_end(&F.s, &w1, 2, 1000), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 2);
    assert_int_equal(finish_item(&w1, 3), QD_AFTER_IDLE);
    assert_int_equal(finish_item(&w2, 3), QD_AFTER_IDLE);
    assert_exactly_once(&a);
    assert_exactly_once(&b);
    assert_int_equal(F.s.inflight, 0);
    finish_all();
}

static void test_out_of_order_sample_is_a_protocol_error(void **state)
{
    struct tjob a;
    struct qd_sw w;
    struct qd_job *job;
    size_t col;

    (void)state;
    setup(4, 1000);
    job_init(&a, false, 4, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(qd_sched_sample(&F.s, &w, 1, 0, &job, &col), -EPROTO);
    assert_int_equal(qd_sched_sample(&F.s, &w, 0, 0, &job, &col), 1);
    assert_int_equal(col, 0);
    finish_all();
}

static void test_death_charges_only_the_running_sample(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup(4, 1000);
    job_init(&a, false, 4, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    answer(&w, 2, 1);
    qd_sched_worker_exit(&F.s, &w, 0, SIGSEGV);
    assert_int_equal(F.s.tot.crashes, 1);
    assert_int_equal(a.sj.state[2] & QD_SAMPLE_CRASHES, 1); /* running: charged */
    assert_int_equal(a.sj.state[3] & QD_SAMPLE_CRASHES, 0); /* never started: not charged */
    assert_int_equal(F.s.queued, 2);
    worker_up(&w2, 2);
    for (int k = 0; k < 2; k++) {
        qd_sched_dispatch(&F.s, 2);
        assert_int_equal(F.starts[F.nstart - 1].n, 1);
        assert_int_equal(finish_item(&w2, 3), QD_AFTER_IDLE);
    }
    assert_exactly_once(&a);
    assert_int_equal(F.s.tot.errors, 0);
    finish_all();
}

/* Results written together: the worker computed samples 0-2 of 5 and answered only 0 when it
 * died; its progress word (cur_computed = 3) says 3 was running: 3 is charged, 1 and 2 (lost
 * with the worker's buffer) and 4 are queued again, uncharged. */
static void test_death_charges_the_sample_the_progress_word_names(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup(5, 1000);
    job_init(&a, false, 5, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    answer(&w, 1, 1);
    w.cur_computed = 3;
    qd_sched_worker_exit(&F.s, &w, 0, SIGSEGV);
    assert_int_equal(F.s.tot.crashes, 1);
    for (size_t i = 1; i < 5; i++)
        assert_int_equal(a.sj.state[i] & QD_SAMPLE_CRASHES, i == 3);
    assert_int_equal(F.s.queued, 4);
    worker_up(&w2, 2);
    for (int k = 0; k < 4; k++) {
        qd_sched_dispatch(&F.s, 2);
        assert_int_equal(F.starts[F.nstart - 1].n, 1);
        assert_int_equal(finish_item(&w2, 3), QD_AFTER_IDLE);
    }
    assert_exactly_once(&a);
    assert_int_equal(F.s.tot.errors, 0);
    finish_all();
}

/* The same at a deadline: the sample the progress word names fails with the timeout, the
 * computed but unanswered one before it is retried; a progress word past the item (all
 * computed, died writing) charges nobody. */
static void test_deadline_and_progress_word(void **state)
{
    struct tjob a, b;
    struct qd_sw w, w2, w3;

    (void)state;
    setup(3, 1000);
    job_init(&a, false, 3, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    qd_sched_tick(&F.s, 1005);
    assert_int_equal(F.kills[0].sig, SIGABRT);
    w.cur_computed = 1;
    qd_sched_worker_exit(&F.s, &w, 0, SIGABRT);
    assert_int_equal(a.errs[1], QT_EDEADLINE);
    assert_int_equal(a.sj.state[0] & 0x7f, 0);
    assert_int_equal(a.sj.state[2] & 0x7f, 0);
    worker_up(&w2, 2);
    for (int k = 0; k < 2; k++) {
        qd_sched_dispatch(&F.s, 1100);
        assert_int_equal(finish_item(&w2, 1101), QD_AFTER_IDLE);
    }
    assert_exactly_once(&a);
    assert_int_equal(F.s.tot.timeouts, 1);
    job_init(&b, false, 3, "k");
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    qd_sched_dispatch(&F.s, 1200);
    w2.cur_computed = 3;
    qd_sched_worker_exit(&F.s, &w2, 0, SIGSEGV);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(b.sj.state[i] & (QD_SAMPLE_CRASHES | QD_SAMPLE_KILLS), 0);
    assert_int_equal(F.s.queued, 3);
    worker_up(&w3, 3);
    for (int k = 0; k < 3; k++) {
        qd_sched_dispatch(&F.s, 1300);
        assert_int_equal(finish_item(&w3, 1301), QD_AFTER_IDLE);
    }
    assert_exactly_once(&b);
    finish_all();
}

static void test_death_before_any_answer_charges_nobody(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup(3, 1000);
    job_init(&a, false, 3, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    qd_sched_worker_exit(&F.s, &w, 0, SIGKILL);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(a.sj.state[i] & (QD_SAMPLE_CRASHES | QD_SAMPLE_KILLS), 0);
    assert_int_equal(F.s.queued, 3);
    qd_sched_finish(&F.s, &a.sj); /* cancelled: the queued retries go */
    assert_int_equal(F.s.queued, 0);
    assert_true(a.released);
    finish_all();
}

static void test_poison_fails_alone_after_two_crashes(void **state)
{
    struct tjob a, b;
    struct qd_sw w[3];

    (void)state;
    setup(8, 1000);
    job_init(&a, true, 1, "k");
    job_init(&b, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    for (int k = 0; k < 2; k++) {
        worker_up(&w[k], k + 1);
        qd_sched_dispatch(&F.s, 0);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &a.sj);
        qd_sched_worker_exit(&F.s, &w[k], 0, SIGABRT);
    }
    assert_int_equal(a.results[0], 1);
    assert_int_equal(a.errs[0], QT_ECRASHED);
    assert_true(a.released);
    assert_int_equal(F.s.tot.crashes, 2);
    assert_int_equal(F.s.tot.errors, 1);
    /* The next request is not affected. */
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    worker_up(&w[2], 3);
    qd_sched_dispatch(&F.s, 1);
    assert_int_equal(finish_item(&w[2], 1), QD_AFTER_IDLE);
    assert_exactly_once(&b);
    assert_int_equal(b.errs[0], 0);
    finish_all();
}

/* Workers killed from elsewhere (an operator, the OOM killer) while a sample runs say little
 * about the sample: it is retried up to QD_SCHED_MAX_KILLS workers, and a crash of its own still
 * counts toward QD_SCHED_MAX_CRASHES apart from them. */
static void test_kills_from_outside_are_not_crashes(void **state)
{
    struct tjob a, b;
    struct qd_sw w[2 * QD_SCHED_MAX_KILLS + 2];
    int k = 0;

    (void)state;
    setup(8, 1000);
    job_init(&a, true, 1, "k");
    job_init(&b, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    for (; k < QD_SCHED_MAX_KILLS - 1; k++) {
        worker_up(&w[k], k + 1);
        qd_sched_dispatch(&F.s, 0);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &a.sj);
        qd_sched_worker_exit(&F.s, &w[k], 0, k % 2 ? SIGTERM : SIGKILL);
    }
    worker_up(&w[k], k + 1); /* one crash of its own: still below both limits */
    qd_sched_dispatch(&F.s, 0);
    qd_sched_worker_exit(&F.s, &w[k++], 0, SIGSEGV);
    assert_int_equal(a.results[0], 0);
    worker_up(&w[k], k + 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(finish_item(&w[k++], 1), QD_AFTER_IDLE);
    assert_exactly_once(&a);
    assert_int_equal(a.errs[0], 0);
    assert_int_equal(F.s.tot.errors, 0);
    /* A sample whose workers are all killed fails at the limit, alone. */
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    for (int j = 0; j < QD_SCHED_MAX_KILLS; j++, k++) {
        assert_int_equal(b.results[0], 0);
        worker_up(&w[k], k + 1);
        qd_sched_dispatch(&F.s, 2);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &b.sj);
        qd_sched_worker_exit(&F.s, &w[k], 0, SIGKILL);
    }
    assert_int_equal(b.results[0], 1);
    assert_int_equal(b.errs[0], QT_ECRASHED);
    assert_int_equal(F.s.tot.errors, 1);
    finish_all();
}

/* A worker that ends with QD_EXIT_CACHE_CHANGED (its cache file changed under its mapping
 * during the item, issue 15 defect 5): the answered samples stay answered, the running one is
 * retried uncharged as a crash (totals.crashes unchanged), the rest are queued again; a file
 * that changes under every worker still ends, after QD_SCHED_MAX_KILLS, with QT_ECRASHED. An
 * exit status 4 that is not ours (a signal ended it) and other exits stay crashes. */
static void test_cache_changed_is_not_a_crash(void **state)
{
    struct tjob a, b;
    struct qd_sw w[QD_SCHED_MAX_KILLS + 4];
    int k = 0;

    (void)state;
    assert_true(qd_sched_not_the_sample(QD_EXIT_CACHE_CHANGED, 0));
    assert_true(qd_sched_not_the_sample(0, SIGKILL));
    assert_false(qd_sched_not_the_sample(QD_EXIT_FAILURE, 0));
    assert_false(qd_sched_not_the_sample(0, SIGBUS));
    assert_false(qd_sched_not_the_sample(QD_EXIT_CACHE_CHANGED, SIGSEGV));
    setup(4, 1000);
    job_init(&a, false, 4, "nopovm-d4");
    job_init(&b, true, 1, "nopovm-d4");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    /* More exits than QD_SCHED_MAX_CRASHES with the same sample running: all retried. */
    for (; k < QD_SCHED_MAX_CRASHES + 1; k++) {
        worker_up(&w[k], k + 1);
        qd_sched_dispatch(&F.s, 0);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &a.sj);
        if (k == 0)
            answer(&w[k], 1, 0); /* sample 0 answered, sample 1 running */
        qd_sched_worker_exit(&F.s, &w[k], QD_EXIT_CACHE_CHANGED, 0);
    }
    assert_int_equal(F.s.tot.crashes, 0);
    assert_int_equal(F.s.tot.errors, 0);
    while (a.sj.done < a.sj.n) {
        worker_up(&w[k], k + 1);
        qd_sched_dispatch(&F.s, 1);
        assert_int_equal(finish_item(&w[k], 1), QD_AFTER_IDLE);
        qd_sched_worker_exit(&F.s, &w[k++], 0, 0); /* gone idle: nothing charged */
    }
    assert_exactly_once(&a);
    for (int i = 0; i < 4; i++)
        assert_int_equal(a.errs[i], 0);
    assert_int_equal(F.s.tot.crashes, 0);
    /* A file that changes under every worker: bounded. */
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    for (int j = 0; j < QD_SCHED_MAX_KILLS; j++) {
        struct qd_sw *x = j % 2 ? &w[k] : &w[k + 1];

        assert_int_equal(b.results[0], 0);
        worker_up(x, 100 + j);
        qd_sched_dispatch(&F.s, 2);
        assert_ptr_equal(F.starts[F.nstart - 1].job, &b.sj);
        qd_sched_worker_exit(&F.s, x, QD_EXIT_CACHE_CHANGED, 0);
    }
    assert_int_equal(b.results[0], 1);
    assert_int_equal(b.errs[0], QT_ECRASHED);
    assert_int_equal(F.s.tot.crashes, 0);
    finish_all();
}

/* The deadline fires while the worker's last answer is already on its way: the item ends
 * normally, the killed worker gets no new item, and the next item (another client's) runs on
 * another worker without error. */
static void test_deadline_with_result_in_channel(void **state)
{
    struct tjob a, b;
    struct qd_sw w, w2;

    (void)state;
    setup(2, 1000);
    job_init(&a, false, 2, "k");
    job_init(&b, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    answer(&w, 1, 10);
    qd_sched_tick(&F.s, 1010); /* past the deadline of the second sample */
    assert_int_equal(F.nkill, 1);
    assert_int_equal(F.kills[0].sig, SIGABRT);
    assert_int_equal(w.state, QD_W_KILLING);
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    answer(&w, 1, 1011); /* was in the channel */
    assert_int_equal(qd_sched_item_end(&F.s, &w, 1011, 1000), QD_AFTER_WAIT);
    qd_sched_dispatch(&F.s, 1011);
    assert_int_equal(F.nstart, 1); /* nothing for the dying worker */
    qd_sched_worker_exit(&F.s, &w, 0, SIGABRT);
    assert_int_equal(F.s.tot.timeouts, 1);
    assert_int_equal(F.s.tot.crashes, 0);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 1012);
    assert_ptr_equal(F.starts[1].job, &b.sj);
    assert_int_equal(finish_item(&w2, 1013), QD_AFTER_IDLE);
    assert_exactly_once(&a);
    assert_exactly_once(&b);
    assert_int_equal(F.s.tot.errors, 0);
    finish_all();
}

/* batch-idle 2: an interactive item makes every batch worker yield before it is sent; they
 * stop yield_ms after the last one ended; a batch worker that takes interactive work itself
 * does not yield while it runs it. Told only on a change. */
static void test_yield_while_interactive(void **state)
{
    struct tjob b, i1, i2, i3;
    struct qd_sw r, w1, w2;

    (void)state;
    setup_ext(2, 60000, 0, 5000);
    job_init(&b, false, 40, "k");
    job_init(&i1, true, 1, "k");
    job_init(&i2, true, 1, "k");
    job_init(&i3, true, 1, "k");
    worker_up(&r, 1);
    r.reserved = true;
    worker_up(&w1, 2);
    worker_up(&w2, 3);
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 2);
    assert_int_equal(F.nyield, 0); /* no interactive work yet */
    assert_int_equal(qd_sched_admit(&F.s, &i1.sj), 0);
    qd_sched_dispatch(&F.s, 10);
    assert_ptr_equal(F.starts[2].w, &r);
    assert_int_equal(F.nyield, 2);
    assert_int_equal(F.yields[0].on + F.yields[1].on, 2);
    assert_true(F.yields[0].w != &r && F.yields[1].w != &r);
    assert_int_equal(F.yields[1].nstart, 2); /* before the interactive item was sent */
    assert_int_equal(finish_item(&w1, 20), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 20); /* a batch item: still yielding, nothing to tell */
    assert_int_equal(F.nyield, 2);
    assert_int_equal(finish_item(&r, 30), QD_AFTER_IDLE);
    qd_sched_tick(&F.s, 5029);
    assert_int_equal(F.nyield, 2);
    /* the reserved worker is busy: the next interactive item spills onto a batch worker,
     * which stops yielding for it, and yields again with its next batch item */
    assert_int_equal(qd_sched_admit(&F.s, &i2.sj), 0);
    qd_sched_dispatch(&F.s, 5029);
    assert_ptr_equal(last_start(&r)->job, &i2.sj);
    assert_int_equal(qd_sched_admit(&F.s, &i3.sj), 0);
    assert_int_equal(finish_item(&w2, 5030), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 5030);
    assert_ptr_equal(last_start(&w2)->job, &i3.sj);
    assert_int_equal(F.nyield, 3);
    assert_yield(2, &w2, false);
    assert_int_equal(finish_item(&w2, 5040), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 5040);
    assert_ptr_equal(last_start(&w2)->job, &b.sj);
    assert_int_equal(F.nyield, 4);
    assert_yield(3, &w2, true);
    assert_int_equal(finish_item(&r, 5100), QD_AFTER_IDLE);
    /* an interactive item still running keeps the batch workers yielding */
    qd_sched_tick(&F.s, 10039);
    assert_int_equal(F.nyield, 4);
    qd_sched_tick(&F.s, 10100); /* 5 s after the last interactive item ended */
    assert_int_equal(F.nyield, 6);
    assert_false(F.yields[4].on || F.yields[5].on);
    assert_false(w1.yielded || w2.yielded || r.yielded);
    qd_sched_tick(&F.s, 20000);
    assert_int_equal(F.nyield, 6);
    while (b.sj.done < b.sj.n) {
        struct qd_sw *w = w1.state == QD_W_BUSY ? &w1 : &w2;

        assert_int_equal(finish_item(w, 20001), QD_AFTER_IDLE);
        qd_sched_dispatch(&F.s, 20001);
    }
    assert_int_equal(F.nyield, 6);
    assert_exactly_once(&b);
    assert_exactly_once(&i1);
    assert_exactly_once(&i2);
    assert_exactly_once(&i3);
    finish_all();
}

/* The real-time budget: starts full (100 ms), spends into debt, earns 25 % of the time that
 * passes up to the burst; time going back earns nothing. */
static void test_rt_budget(void **state)
{
    struct qd_rt_budget b = {0};

    (void)state;
    assert_int_equal(qd_rt_budget_left(&b, 1000, 25), 100000);
    qd_rt_budget_spend(&b, 30000);
    assert_int_equal(qd_rt_budget_left(&b, 1000, 25), 70000);
    assert_int_equal(qd_rt_budget_left(&b, 1040, 25), 80000);
    assert_int_equal(qd_rt_budget_left(&b, 1030, 25), 80000); /* back: nothing */
    assert_int_equal(qd_rt_budget_left(&b, 2000, 25), 100000); /* capped */
    qd_rt_budget_spend(&b, 150000);
    assert_int_equal(qd_rt_budget_left(&b, 2000, 25), -50000); /* owed */
    assert_int_equal(qd_rt_budget_left(&b, 2200, 25), 0);
    assert_int_equal(qd_rt_budget_left(&b, 2200 + 86400000ull * 1000, 50), 100000);
}

static void setup_rt(void)
{
    struct qd_sched_limits lim;

    setup_ext(2, 60000, 0, 0);
    lim = F.s.lim;
    lim.rt = true;
    qd_sched_set_limits(&F.s, &lim);
}

/* rt-priority: a reserved worker is put under the real-time policy before its first interactive
 * item is sent and stays there between items; an item still running when its budget ran out
 * goes on under the ordinary policy (at a tick), and a later item with budget puts it back.
 * Batch workers, even running interactive work, never. */
static void test_rt_for_live_items(void **state)
{
    struct tjob b, i1, i2, i3, i4;
    struct qd_sw r, w1;

    (void)state;
    setup_rt();
    job_init(&b, false, 40, "k");
    job_init(&i1, true, 1, "k");
    job_init(&i2, true, 1, "k");
    job_init(&i3, true, 1, "k");
    job_init(&i4, true, 1, "k");
    worker_up(&r, 1);
    r.reserved = true;
    worker_up(&w1, 2);
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 1);
    assert_int_equal(F.nrt, 0); /* a batch worker */
    assert_int_equal(qd_sched_admit(&F.s, &i1.sj), 0);
    qd_sched_dispatch(&F.s, 10);
    assert_ptr_equal(last_start(&r)->job, &i1.sj);
    assert_int_equal(F.nrt, 1);
    assert_true(F.rts[0].w == &r && F.rts[0].on);
    assert_int_equal(F.rts[0].nstart, 1); /* before the item was sent */
    assert_int_equal(finish_item(&r, 15), QD_AFTER_IDLE);
    qd_sched_tick(&F.s, 1000); /* idle: it stays */
    assert_int_equal(F.nrt, 1);
    assert_true(r.rt);
    /* a long item: under the real-time policy for its budget (100 ms) only */
    assert_int_equal(qd_sched_admit(&F.s, &i2.sj), 0);
    qd_sched_dispatch(&F.s, 1000);
    assert_ptr_equal(last_start(&r)->job, &i2.sj);
    assert_int_equal(F.nrt, 1); /* already under it: not asked again */
    qd_sched_tick(&F.s, 1099);
    assert_int_equal(F.nrt, 1);
    qd_sched_tick(&F.s, 1100);
    assert_int_equal(F.nrt, 2);
    assert_true(F.rts[1].w == &r && !F.rts[1].on);
    assert_false(r.rt);
    qd_sched_tick(&F.s, 1200);
    assert_int_equal(F.nrt, 2);
    /* the reserved worker is busy: the next interactive item spills onto the batch worker,
     * which stays under its policy */
    assert_int_equal(qd_sched_admit(&F.s, &i3.sj), 0);
    assert_int_equal(finish_item(&w1, 1300), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 1300);
    assert_ptr_equal(last_start(&w1)->job, &i3.sj);
    assert_int_equal(F.nrt, 2);
    assert_int_equal(finish_item(&w1, 1301), QD_AFTER_IDLE);
    assert_int_equal(finish_item(&r, 1400), QD_AFTER_IDLE);
    /* 300 ms later it has 75 ms again: the next item puts it back */
    assert_int_equal(qd_sched_admit(&F.s, &i4.sj), 0);
    qd_sched_dispatch(&F.s, 1400);
    assert_ptr_equal(last_start(&r)->job, &i4.sj);
    assert_int_equal(F.nrt, 3);
    assert_true(F.rts[2].w == &r && F.rts[2].on && r.rt);
    assert_int_equal(finish_item(&r, 1401), QD_AFTER_IDLE);
    while (b.sj.done < b.sj.n) {
        if (w1.state != QD_W_BUSY)
            qd_sched_dispatch(&F.s, 2000);
        assert_int_equal(finish_item(&w1, 2000), QD_AFTER_IDLE);
    }
    assert_int_equal(F.nrt, 3);
    assert_exactly_once(&b);
    assert_exactly_once(&i1);
    assert_exactly_once(&i2);
    assert_exactly_once(&i3);
    assert_exactly_once(&i4);
    finish_all();
}

/* A stream of items shorter than a tick, back to back: each ends before a tick could take the
 * worker out, but what they ran is owed, so in the long run they run under the real-time
 * policy for about 25 % of the time (plus the burst), the rest under the ordinary one. */
static void test_rt_stream_of_items(void **state)
{
    static struct tjob jobs[400];
    struct qd_sw r;
    uint64_t t = 0, rt_ms = 0;

    (void)state;
    setup_rt();
    worker_up(&r, 1);
    r.reserved = true;
    for (int k = 0; k < 400; k++) { /* 30 ms each, 12 s */
        job_init(&jobs[k], true, 1, "k");
        assert_int_equal(qd_sched_admit(&F.s, &jobs[k].sj), 0);
        qd_sched_dispatch(&F.s, t);
        assert_ptr_equal(last_start(&r)->job, &jobs[k].sj);
        rt_ms += r.rt ? 30 : 0;
        t += 30;
        assert_int_equal(finish_item(&r, t), QD_AFTER_IDLE);
        assert_exactly_once(&jobs[k]);
    }
    assert_true(rt_ms <= t * QD_RT_SHARE_PCT / 100 + QD_RT_BURST_MS + 30);
    assert_true(rt_ms >= t * QD_RT_SHARE_PCT / 100 - 60);
    assert_true(F.nrt > 2); /* in and out */
    finish_all();
}

/* The supervisor left its own real-time policy (qd_sched_rt_allow): every worker under it is
 * taken out at once and none is put back until it is allowed again. */
static void test_rt_allow(void **state)
{
    struct tjob i1, i2, i3;
    struct qd_sw r;

    (void)state;
    setup_rt();
    worker_up(&r, 1);
    r.reserved = true;
    job_init(&i1, true, 1, "k");
    job_init(&i2, true, 1, "k");
    job_init(&i3, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &i1.sj), 0);
    qd_sched_dispatch(&F.s, 0);
    assert_true(r.rt);
    qd_sched_rt_allow(&F.s, false, 5);
    assert_int_equal(F.nrt, 2);
    assert_false(F.rts[1].on || r.rt);
    assert_int_equal(finish_item(&r, 6), QD_AFTER_IDLE);
    assert_int_equal(qd_sched_admit(&F.s, &i2.sj), 0);
    qd_sched_dispatch(&F.s, 10);
    assert_int_equal(F.nrt, 2);
    assert_int_equal(finish_item(&r, 11), QD_AFTER_IDLE);
    qd_sched_rt_allow(&F.s, true, 20);
    assert_int_equal(qd_sched_admit(&F.s, &i3.sj), 0);
    qd_sched_dispatch(&F.s, 20);
    assert_int_equal(F.nrt, 3);
    assert_true(F.rts[2].on && r.rt);
    assert_int_equal(finish_item(&r, 21), QD_AFTER_IDLE);
    finish_all();
}

/* Refused (no CAP_SYS_NICE, no RLIMIT_RTPRIO): asked once, not again until the limits are set
 * again (a reload); the items run all the same. A worker that cannot leave the policy stays
 * marked under it and is asked again at the next tick. */
static void test_rt_refused(void **state)
{
    struct tjob i[3];
    struct qd_sw r;

    (void)state;
    setup_rt();
    F.rt_ret = -EPERM;
    worker_up(&r, 1);
    r.reserved = true;
    for (int k = 0; k < 3; k++) {
        job_init(&i[k], true, 1, "k");
        assert_int_equal(qd_sched_admit(&F.s, &i[k].sj), 0);
        if (k == 2)
            qd_sched_set_limits(&F.s, &F.s.lim);
        qd_sched_dispatch(&F.s, (uint64_t)k * 10);
        assert_ptr_equal(last_start(&r)->job, &i[k].sj);
        assert_false(r.rt);
        assert_int_equal(F.nrt, k < 2 ? 1 : 2);
        qd_sched_tick(&F.s, (uint64_t)k * 10 + 500);
        assert_int_equal(F.nrt, k < 2 ? 1 : 2); /* nothing to take back */
        assert_int_equal(finish_item(&r, (uint64_t)k * 10 + 501), QD_AFTER_IDLE);
        assert_exactly_once(&i[k]);
    }
    finish_all();
}

/* Leaving the policy fails: still under it, asked again at each tick until it works. */
static void test_rt_leave_fails(void **state)
{
    struct tjob i1;
    struct qd_sw r;

    (void)state;
    setup_rt();
    worker_up(&r, 1);
    r.reserved = true;
    job_init(&i1, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &i1.sj), 0);
    qd_sched_dispatch(&F.s, 0);
    assert_true(r.rt);
    F.rt_off_ret = -EPERM;
    qd_sched_tick(&F.s, 100);
    assert_int_equal(F.nrt, 2);
    assert_true(r.rt);
    F.rt_off_ret = 0;
    qd_sched_tick(&F.s, 200);
    assert_int_equal(F.nrt, 3);
    assert_false(r.rt);
    qd_sched_tick(&F.s, 300);
    assert_int_equal(F.nrt, 3);
    assert_int_equal(finish_item(&r, 301), QD_AFTER_IDLE);
    finish_all();
}

/* schedstat: three decimal fields and a newline, anything else refused; status: the State and
 * voluntary_ctxt_switches lines (not nonvoluntary_ctxt_switches). */
static void test_proc_parse(void **state)
{
    static const char *bad[] = {"", "1 2 3", "1 2 3\n4", "1  2 3\n", "1 2\n", "1 -2 3\n",
                                "1 2 3 4\n", "a 2 3\n", " 1 2 3\n", "1 99999999999999999999 3\n"};
    static const char *bad_status[] = {
        "", "State:\tR (running)\n", "voluntary_ctxt_switches:\t4\n",
        "State:\tR (running)\nnonvoluntary_ctxt_switches:\t4\n",
        "State:\tR (running)\nvoluntary_ctxt_switches:\t\n",
        "State:\tR (running)\nvoluntary_ctxt_switches:\t4x\n",
        "State:\t\nvoluntary_ctxt_switches:\t4\n", "State:\tRx\nvoluntary_ctxt_switches:\t4\n",
        "State:\tR\nvoluntary_ctxt_switches:\t123456789012345678901234\n"};
    const char *st = "Name:\tqtomod-worker\nState:\tS (sleeping)\nTgid:\t8\n"
                     "voluntary_ctxt_switches:\t17\nnonvoluntary_ctxt_switches:\t3\n";
    struct qd_cpu_wait cw = {7, 7, 7, true};

    (void)state;
    assert_int_equal(qd_schedstat_parse("196866104 27308692 725\n", 23, &cw), 0);
    assert_int_equal(cw.run_ns, 196866104);
    assert_int_equal(cw.wait_ns, 27308692);
    assert_true(cw.runnable); /* left alone */
    assert_int_equal(qd_schedstat_parse("0 18446744073709551615 1\n", 25, &cw), 0);
    assert_true(cw.wait_ns == UINT64_MAX);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        cw = (struct qd_cpu_wait){7, 7, 7, false};
        assert_int_equal(qd_schedstat_parse(bad[i], strlen(bad[i]), &cw), -EINVAL);
        assert_int_equal(cw.run_ns, 7);
        assert_int_equal(cw.wait_ns, 7);
    }
    /* bounded by n, not by a terminator */
    assert_int_equal(qd_schedstat_parse("1 2 3\nxyz", 6, &cw), 0);
    assert_int_equal(cw.wait_ns, 2);
    assert_int_equal(qd_status_parse(st, strlen(st), &cw), 0);
    assert_false(cw.runnable);
    assert_int_equal(cw.sleeps, 17);
    assert_int_equal(qd_status_parse("State:\tR (running)\nvoluntary_ctxt_switches:\t0", 45, &cw),
                     0);
    assert_true(cw.runnable);
    assert_int_equal(cw.sleeps, 0);
    for (size_t i = 0; i < sizeof(bad_status) / sizeof(bad_status[0]); i++)
        assert_int_equal(qd_status_parse(bad_status[i], strlen(bad_status[i]), &cw), -EINVAL);
}

/* Job a of n samples on a fresh worker w, its first item dispatched at now. */
static void run_on_worker(struct tjob *a, size_t n, struct qd_sw *w, int pid, uint64_t now)
{
    job_init(a, false, n, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a->sj), 0);
    worker_up(w, pid);
    qd_sched_dispatch(&F.s, now);
}

/* w was told SIGABRT (the nkill-th signal) for its deadline, and its running sample col of a
 * fails with QT_EDEADLINE once it is gone. */
static void expect_deadline_kill(struct qd_sw *w, struct tjob *a, size_t col, size_t nkill)
{
    assert_int_equal(F.nkill, nkill);
    assert_int_equal(F.kills[nkill - 1].sig, SIGABRT);
    qd_sched_worker_exit(&F.s, w, 0, SIGABRT);
    assert_int_equal(a->errs[col], QT_EDEADLINE);
}

/* Time the worker waited for a CPU moves its item's deadline on; the rest of the time counts. The
 * wait is first read half a deadline after dispatch. */
static void test_deadline_not_counting_cpu_wait(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup_wait(3000);
    F.cw.wait_ns = 5000000000u; /* waits before this item do not count */
    run_on_worker(&a, 2, &w, 1, 0);
    qd_sched_tick(&F.s, 400);
    assert_int_equal(F.nwait, 0);
    qd_sched_tick(&F.s, 500); /* the first reading */
    assert_int_equal(F.nwait, 1);
    qd_sched_tick(&F.s, 600); /* and at each tick from half the deadline on */
    assert_int_equal(F.nwait, 2);
    F.cw.wait_ns += 700999999; /* 700 ms and a bit */
    qd_sched_tick(&F.s, 1000);
    assert_int_equal(F.nwait, 3);
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 1700);
    F.cw.wait_ns += 1; /* the carried part makes a whole ms */
    qd_sched_tick(&F.s, 1700);
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 1701);
    qd_sched_tick(&F.s, 1701); /* no more waiting: its deadline */
    assert_int_equal(w.wait_credit, 701);
    expect_deadline_kill(&w, &a, 0, 1);
    assert_int_equal(F.s.tot.timeouts, 1);
    finish_all();
}

/* A runnable worker that neither ran nor ended a wait between two readings has waited all that
 * time (run_delay grows only when it gets a CPU); when the wait ends, run_delay's growth by as
 * much is not counted twice. A runnable worker that runs (a loop) gets no credit. */
static void test_deadline_counts_a_wait_still_going_on(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup_wait(3000);
    F.cw.runnable = true;
    run_on_worker(&a, 2, &w, 1, 0);
    qd_sched_tick(&F.s, 500);
    qd_sched_tick(&F.s, 1000); /* waiting since before 500 */
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 1500);
    qd_sched_tick(&F.s, 1500);
    assert_int_equal(w.deadline, 2000);
    F.cw.wait_ns += 1500000000u; /* it got a CPU: the wait since 500 enters run_delay */
    F.cw.run_ns += 1000000;
    F.cw.runnable = false;
    qd_sched_tick(&F.s, 2000);
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 2500); /* 1000 counted while it lasted, 500 more now */
    qd_sched_tick(&F.s, 2500);
    assert_int_equal(w.wait_credit, 1500);
    expect_deadline_kill(&w, &a, 0, 1);

    worker_up(&w2, 2); /* blocked since the last reading: no wait assumed */
    F.cw.runnable = true;
    qd_sched_dispatch(&F.s, 2600);
    qd_sched_tick(&F.s, 3100);
    F.cw.sleeps++;
    qd_sched_tick(&F.s, 3600);
    assert_int_equal(w2.wait_credit, 0);
    expect_deadline_kill(&w2, &a, 1, 2);
    finish_all();

    setup_wait(3000);
    F.cw.runnable = true;
    run_on_worker(&a, 1, &w2, 2, 3000); /* a loop: runnable, and running */
    qd_sched_tick(&F.s, 3500);
    F.cw.run_ns += 500000000u;
    qd_sched_tick(&F.s, 4000);
    assert_int_equal(w2.wait_credit, 0);
    expect_deadline_kill(&w2, &a, 0, 1);
    finish_all();
}

/* A wait counted while it went on, which ends within the next span, does not hide the new wait
 * that follows it in that span: only the part of the run delay's growth inside the span is
 * taken from it. */
static void test_deadline_wait_ending_and_starting_again(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup_wait(3000);
    F.cw.runnable = true;
    F.cw.run_ns = 1000000;
    run_on_worker(&a, 1, &w, 1, 0);
    qd_sched_tick(&F.s, 500);
    qd_sched_tick(&F.s, 1000); /* waiting since before 500: 500 counted, pending */
    assert_int_equal(w.deadline, 1500);
    F.cw.wait_ns += 600000000u; /* it ran 10 ms at 1100 (a wait of 600 ended), waits again */
    F.cw.run_ns += 10000000u;
    qd_sched_tick(&F.s, 1400);
    /* 100 of the 600 new, and 400 - 10 - 100 = 290 of the new wait still going on */
    assert_int_equal(w.wait_credit, 890);
    assert_int_equal(w.deadline, 1890);
    F.cw.runnable = false;
    F.cw.sleeps++;
    qd_sched_tick(&F.s, 1890);
    expect_deadline_kill(&w, &a, 0, 1);
    finish_all();
}

/* The credit is capped (a worker starved for good still ends), starts again with each answered
 * sample, and without a reading (cpu_wait fails) the deadline is the plain one. */
static void test_deadline_cpu_wait_capped_and_reset(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup_wait(3000);
    run_on_worker(&a, 2, &w, 1, 0);
    qd_sched_tick(&F.s, 500);
    F.cw.wait_ns += 2000000000u;
    qd_sched_tick(&F.s, 1000);
    assert_int_equal(w.deadline, 3000);
    answer(&w, 1, 2500); /* the first sample: a fresh deadline and credit */
    assert_int_equal(w.deadline, 3500);
    assert_int_equal(w.wait_credit, 0);
    qd_sched_tick(&F.s, 3000); /* the first reading of this sample's wait */
    F.cw.wait_ns += 100000000000u;
    qd_sched_tick(&F.s, 3500);
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 6500); /* 3000 ms at most */
    qd_sched_tick(&F.s, 6499);
    assert_int_equal(F.nkill, 0);
    F.cw.wait_ns += 100000000000u;
    qd_sched_tick(&F.s, 6500);
    expect_deadline_kill(&w, &a, 1, 1);
    assert_int_equal(a.results[0], 1);
    assert_int_equal(a.errs[0], 0);
    finish_all();

    setup_wait(3000);
    F.wait_ret = -ENOENT;
    run_on_worker(&a, 1, &w, 1, 0);
    qd_sched_tick(&F.s, 500);
    F.cw.wait_ns += 2000000000u;
    qd_sched_tick(&F.s, 1000);
    expect_deadline_kill(&w, &a, 0, 1);
    finish_all();
}

/* A deadline under a second is read at once when set (a tick 100 ms later may be past it); its
 * credit is at most ten times itself. */
static void test_deadline_short_reads_cpu_wait_at_once(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup_wait(3000);
    job_init(&a, false, 2, "k");
    a.sj.timeout_ms = 100;
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nwait, 1);
    F.cw.wait_ns += 250000000u;
    qd_sched_tick(&F.s, 150);
    assert_int_equal(F.nkill, 0);
    assert_int_equal(w.deadline, 350);
    answer(&w, 1, 200);
    assert_int_equal(F.nwait, 3);
    assert_int_equal(w.deadline, 300);
    F.cw.wait_ns += 5000000000u; /* credit: at most ten times its 100 ms deadline */
    qd_sched_tick(&F.s, 250);
    assert_int_equal(w.deadline, 1300);
    qd_sched_tick(&F.s, 1300);
    expect_deadline_kill(&w, &a, 1, 1);
    finish_all();
}

static void test_deadline_fails_only_the_running_sample(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup(3, 1000);
    job_init(&a, false, 3, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    answer(&w, 1, 5);
    qd_sched_tick(&F.s, 900);
    assert_int_equal(F.nkill, 0);
    qd_sched_tick(&F.s, 1005);
    assert_int_equal(F.kills[0].sig, SIGABRT);
    qd_sched_tick(&F.s, 1100);
    assert_int_equal(F.nkill, 1);
    qd_sched_tick(&F.s, 1205); /* grace over: SIGKILL */
    assert_int_equal(F.nkill, 2);
    assert_int_equal(F.kills[1].sig, SIGKILL);
    qd_sched_worker_exit(&F.s, &w, 0, SIGKILL);
    assert_int_equal(a.results[1], 1);
    assert_int_equal(a.errs[1], QT_EDEADLINE);
    assert_int_equal(a.sj.state[2] & 0x7f, 0);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 1300);
    assert_int_equal(finish_item(&w2, 1301), QD_AFTER_IDLE);
    assert_exactly_once(&a);
    assert_int_equal(a.errs[2], 0);
    assert_int_equal(F.s.tot.timeouts, 1);
    finish_all();
}

static void test_cancel_during_retry(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup(2, 1000);
    job_init(&a, false, 4, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 2);
    answer(&w, 1, 1);
    qd_sched_worker_exit(&F.s, &w, 0, SIGSEGV); /* sample 1 waits for its retry */
    assert_int_equal(F.s.queued, 1);
    qd_sched_finish(&F.s, &a.sj); /* cancel */
    assert_int_equal(F.s.queued, 0);
    assert_int_equal(F.s.inflight, 0);
    assert_false(a.released); /* w2 still runs its item */
    assert_int_equal(finish_item(&w2, 2), QD_AFTER_IDLE);
    assert_true(a.released);
    /* w2 held [0, 2) and w [2, 4): only what w answered before the cancel was delivered. */
    assert_ptr_equal(F.starts[0].w, &w2);
    assert_int_equal(a.results[0] + a.results[1] + a.results[3], 0);
    assert_int_equal(a.results[2], 1);
    finish_all();
}

static void test_drain_with_queued_retries(void **state)
{
    struct tjob a;
    struct qd_sw w, w2;

    (void)state;
    setup(4, 1000);
    job_init(&a, false, 4, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    answer(&w, 2, 1);
    qd_sched_worker_exit(&F.s, &w, 0, SIGSEGV);
    assert_int_equal(F.s.inflight, 1); /* a drain waits for the retries */
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 2);
    assert_int_equal(finish_item(&w2, 3), QD_AFTER_IDLE);
    qd_sched_dispatch(&F.s, 3);
    assert_int_equal(finish_item(&w2, 4), QD_AFTER_IDLE);
    assert_int_equal(F.s.inflight, 0);
    assert_exactly_once(&a);
    qd_sched_stop(&F.s, 10, 2000);
    assert_int_equal(F.kills[F.nkill - 1].sig, SIGTERM);
    qd_sched_tick(&F.s, 2011);
    assert_int_equal(F.kills[F.nkill - 1].sig, SIGKILL);
    finish_all();
}

static void test_stop_frees_queued_work(void **state)
{
    struct tjob a, b;

    (void)state;
    setup(4, 1000);
    job_init(&a, true, 1, "k");
    job_init(&b, false, 9, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    qd_sched_finish(&F.s, &b.sj);
    assert_true(b.released);
    qd_sched_finish(&F.s, &a.sj);
    assert_true(a.released);
    qd_sched_done(&F.s);
    assert_int_equal(F.s.queued, 0);
    finish_all();
}

static void test_queue_full_and_paused(void **state)
{
    struct tjob a, b, big, t;
    struct qd_sw w;

    (void)state;
    setup(4, 10);
    job_init(&big, false, 50, "k"); /* alone, a job larger than the queue is taken */
    assert_int_equal(qd_sched_admit(&F.s, &big.sj), 0);
    job_init(&a, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), -EBUSY);
    job_init(&t, true, 1, ""); /* a task is not a sample: the full queue takes it */
    t.sj.kind = QD_JOB_TASK;
    assert_int_equal(qd_sched_admit(&F.s, &t.sj), 0);
    qd_sched_finish(&F.s, &t.sj);
    assert_true(t.released);
    qd_sched_finish(&F.s, &big.sj);
    job_init(&b, false, 8, "k");
    assert_int_equal(qd_sched_admit(&F.s, &b.sj), 0);
    F.paused = true;
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 0);
    F.paused = false;
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(F.nstart, 1);
    finish_all();
}

static void test_start_failure_fails_its_samples(void **state)
{
    struct tjob a;
    struct qd_sw w;

    (void)state;
    setup(4, 1000);
    job_init(&a, false, 3, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    F.start_ret = -EPIPE;
    qd_sched_dispatch(&F.s, 0);
    assert_exactly_once(&a);
    assert_int_equal(a.errs[0], -EPIPE);
    assert_int_equal(w.state, QD_W_IDLE);
    assert_null(w.cur);
    finish_all();
}

static void test_task_death_and_deadline(void **state)
{
    struct tjob t1, t2;
    struct qd_sw w, w2;

    (void)state;
    setup(4, 1000);
    job_init(&t1, true, 1, "");
    t1.sj.kind = QD_JOB_TASK;
    job_init(&t2, true, 1, "");
    t2.sj.kind = QD_JOB_TASK;
    assert_int_equal(qd_sched_admit(&F.s, &t1.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    assert_int_equal(w.deadline, 5000); /* the task deadline */
    qd_sched_worker_exit(&F.s, &w, 0, SIGSEGV);
    assert_int_equal(t1.errs[0], QT_ECRASHED);
    assert_true(t1.released);
    assert_int_equal(qd_sched_admit(&F.s, &t2.sj), 0);
    worker_up(&w2, 2);
    qd_sched_dispatch(&F.s, 10);
    qd_sched_tick(&F.s, 5010);
    qd_sched_worker_exit(&F.s, &w2, 0, SIGABRT);
    assert_int_equal(t2.errs[0], QT_EDEADLINE);
    assert_exactly_once(&t2);
    finish_all();
}

static void test_retire_waits_for_the_item(void **state)
{
    struct tjob a;
    struct qd_sw w, idle;

    (void)state;
    setup(4, 1000);
    job_init(&a, true, 1, "k");
    assert_int_equal(qd_sched_admit(&F.s, &a.sj), 0);
    worker_up(&w, 1);
    qd_sched_dispatch(&F.s, 0);
    worker_up(&idle, 2);
    assert_int_equal(qd_sched_live_workers(&F.s), 2);
    assert_false(qd_sched_worker_retire(&F.s, &w));
    assert_true(qd_sched_worker_retire(&F.s, &idle));
    assert_int_equal(qd_sched_live_workers(&F.s), 0);
    assert_int_equal(finish_item(&w, 1), QD_AFTER_RETIRE);
    assert_exactly_once(&a);
    finish_all();
}

/* 60 interactive items always waiting (10 ms each) and a submit (items of 4 samples, 10 ms):
 * the submit gets its share of the worker (20 %: 1 item in 5), not none; with a share of 0,
 * interactive work always goes first. */
/* One worker, a batch and enough single-sample interactive requests; items take inter_us
 * (interactive) and batch_us (batch items) of worker time. Returns the batch items among
 * `items` dispatched. */
static size_t run_contention(uint32_t share, uint64_t inter_us, uint64_t batch_us, int items)
{
    static struct tjob inter[400], sub;
    struct qd_sw w;
    uint64_t now = 0;
    size_t batch_items = 0;

    assert_true(items <= 400);
    setup_share(4, 100000, share);
    job_init(&sub, false, 400, "k");
    assert_int_equal(qd_sched_admit(&F.s, &sub.sj), 0);
    for (int i = 0; i < items; i++) {
        job_init(&inter[i], true, 1, "k");
        assert_int_equal(qd_sched_admit(&F.s, &inter[i].sj), 0);
    }
    worker_up(&w, 1);
    for (int k = 0; k < items; k++) {
        bool batch;

        qd_sched_dispatch(&F.s, now);
        batch = last_start(&w)->job == &sub.sj;
        batch_items += batch;
        answer(&w, last_start(&w)->n, now);
        assert_int_equal(qd_sched_item_end(&F.s, &w, now, batch ? batch_us : inter_us),
                         QD_AFTER_IDLE);
    }
    finish_all();
    return batch_items;
}

static void test_batch_share_under_interactive_load(void **state)
{
    size_t n;

    (void)state;
    n = run_contention(20, 10000, 10000, 50);
    assert_in_range(n, 9, 11); /* 20 % of 50 items */
    n = run_contention(50, 10000, 10000, 50);
    assert_in_range(n, 24, 26);
    n = run_contention(0, 10000, 10000, 50);
    assert_int_equal(n, 0);
    /* The share is of time, not of items: interactive items of 50 µs, batch items of 2.5 ms.
     * 20 % of the time is one batch item per 200 interactive ones (it was one per 10 when
     * items were counted in whole milliseconds). */
    n = run_contention(20, 50, 2500, 400);
    assert_in_range(n, 1, 3);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_interactive_before_batch),
    cmocka_unit_test(test_reserved_worker_is_interactive_only),
    cmocka_unit_test(test_round_robin_and_affinity),
    cmocka_unit_test(test_items_of_fast_samples_grow),
    cmocka_unit_test(test_out_of_order_sample_is_a_protocol_error),
    cmocka_unit_test(test_death_charges_only_the_running_sample),
    cmocka_unit_test(test_death_before_any_answer_charges_nobody),
    cmocka_unit_test(test_death_charges_the_sample_the_progress_word_names),
    cmocka_unit_test(test_large_samples_single_items_and_longer_deadlines),
    cmocka_unit_test(test_item_timeout_scales_with_d),
    cmocka_unit_test(test_deadline_and_progress_word),
    cmocka_unit_test(test_poison_fails_alone_after_two_crashes),
    cmocka_unit_test(test_kills_from_outside_are_not_crashes),
    cmocka_unit_test(test_cache_changed_is_not_a_crash),
    cmocka_unit_test(test_deadline_with_result_in_channel),
    cmocka_unit_test(test_deadline_fails_only_the_running_sample),
    cmocka_unit_test(test_proc_parse),
    cmocka_unit_test(test_yield_while_interactive),
    cmocka_unit_test(test_rt_budget),
    cmocka_unit_test(test_rt_for_live_items),
    cmocka_unit_test(test_rt_stream_of_items),
    cmocka_unit_test(test_rt_allow),
    cmocka_unit_test(test_rt_refused),
    cmocka_unit_test(test_rt_leave_fails),
    cmocka_unit_test(test_deadline_counts_a_wait_still_going_on),
    cmocka_unit_test(test_deadline_not_counting_cpu_wait),
    cmocka_unit_test(test_deadline_wait_ending_and_starting_again),
    cmocka_unit_test(test_deadline_cpu_wait_capped_and_reset),
    cmocka_unit_test(test_deadline_short_reads_cpu_wait_at_once),
    cmocka_unit_test(test_cancel_during_retry),
    cmocka_unit_test(test_drain_with_queued_retries),
    cmocka_unit_test(test_stop_frees_queued_work),
    cmocka_unit_test(test_queue_full_and_paused),
    cmocka_unit_test(test_start_failure_fails_its_samples),
    cmocka_unit_test(test_task_death_and_deadline),
    cmocka_unit_test(test_retire_waits_for_the_item),
    cmocka_unit_test(test_batch_share_under_interactive_load),
};

QT_TEST_MAIN(tests)
