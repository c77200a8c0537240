#define _GNU_SOURCE /* memfd_create */
/* The worker pool: workers are spawned by fork+exec (posix_spawn) of our own binary
 * (`qtomod --worker`) with a socketpair on fd 3, and reaped on SIGCHLD; their frames are read here
 * and their exits reported to the scheduler. What a worker may be given and what becomes of its
 * samples is qd_sched.c's decision. */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "num/qt_lapack.h"
#include "qd_log.h"
#include "qd_sup.h"

extern char **environ;

static struct worker *worker_of(struct qd_sw *sw)
{
    return (struct worker *)((char *)sw - __builtin_offsetof(struct worker, sw));
}

/* ---- sending ---- */

struct wreq {
    uv_write_t req;
    char *data;
};

static void on_chan_write(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;

    (void)status;
    free(w->data);
    free(w);
}

static int worker_send(struct worker *w, struct qp_writer *wr)
{
    struct wreq *q;
    uv_buf_t b;
    int r;

    if (!w->chan_open)
        return -EPIPE;
    q = malloc(sizeof(*q));
    if (!q)
        return -ENOMEM;
    b = uv_buf_init(wr->sb.data, (unsigned)wr->sb.size);
    q->data = msgpack_sbuffer_release(&wr->sb);
    wr->start = 0;
    r = uv_write(&q->req, (uv_stream_t *)&w->chan, &b, 1, on_chan_write);
    if (r < 0) {
        free(q->data);
        free(q);
    }
    return r;
}

/* The scheduler's start: samples [c0, c0 + n) of a job, or a task, to worker sw. */
int qd_pool_start(void *ud, struct qd_sw *sw, struct qd_job *job, size_t c0, size_t n)
{
    struct sup *s = ud;
    struct worker *w = worker_of(sw);
    struct djob *jb = djob_of(job);
    struct qp_writer wr;
    int r;

    qp_writer_init(&wr);
    w->t_start_ns = uv_hrtime();
    if (job->kind == QD_JOB_TASK) {
        qp_begin_request(&wr, ++s->task_serial, jb->req.method);
        (void)msgpack_sbuffer_write(&wr.sb, jb->task.data, jb->task.size);
        r = qp_frame_end(&wr, UINT32_MAX);
    } else {
        const struct qp_job *j = &jb->req.job;
        struct qp_boot_part part = {0};
        size_t col = c0;

        if (jb->boot) { /* one unit of resamples: item c0 computes them for sample col */
            qd_boot_unit_range(jb->boot, c0, &col, &part.k0, &part.n);
            part.set = true;
            part.sample = j->first_index + col;
            n = 1;
        }
        r = qp_pack_chunk(&wr, w->item_id = ++s->task_serial,
                          (const uint8_t *)j->values_le + j->m * col * sizeof(double), j->m, n, c0,
                          jb->fields.data, jb->fields.size, jb->nfields, part.set ? &part : NULL,
                          UINT32_MAX);
    }
    if (r == 0)
        r = worker_send(w, &wr);
    qp_writer_done(&wr);
    return r;
}

void qd_pool_kill(void *ud, struct qd_sw *sw, int sig)
{
    struct worker *w = worker_of(sw);
    uint64_t now = qd_now_ms(ud);

    if (sig == SIGABRT)
        qd_err("worker %d: item past its deadline (%llu ms since dispatch, %llu ms of it not "
               "counted: waiting for a CPU); SIGABRT",
               w->pid, (unsigned long long)(now - sw->t_dispatch),
               (unsigned long long)sw->wait_credit);
    else if (sig == SIGKILL && !w->sigkilled)
        qd_warn("worker %d: still alive; SIGKILL", w->pid);
    w->sigkilled |= sig == SIGKILL;
    if (!w->exited)
        (void)kill(w->pid, sig);
}

static ssize_t read_proc(int pid, const char *what, char *buf, size_t size)
{
    char path[48];
    ssize_t n;
    int fd;

    snprintf(path, sizeof(path), "/proc/%d/%s", pid, what);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    n = read(fd, buf, size);
    if (n < 0)
        n = -errno;
    close(fd);
    return n;
}

int qd_pool_cpu_wait(void *ud, const struct qd_sw *sw, struct qd_cpu_wait *ret)
{
    char buf[4096]; /* status: about 1.5 KB */
    ssize_t n;
    int r;

    (void)ud;
    if ((n = read_proc(sw->pid, "schedstat", buf, sizeof(buf))) < 0)
        return (int)n;
    if ((r = qd_schedstat_parse(buf, (size_t)n, ret)) < 0)
        return r;
    if (!ret->run_ns)
        return -ENODATA; /* a kernel that keeps no account (it says "0 0 0") */
    if ((n = read_proc(sw->pid, "status", buf, sizeof(buf))) < 0)
        return (int)n;
    if ((size_t)n == sizeof(buf))
        return -EOVERFLOW; /* it might end in a cut number */
    return qd_status_parse(buf, (size_t)n, ret);
}

/* ---- closing ---- */

static void worker_free(struct worker *w)
{
    qp_framer_done(&w->fr);
    if (w->progress)
        (void)munmap(w->progress, sizeof(uint64_t));
    free(w);
}

static void worker_closed(uv_handle_t *h)
{
    struct worker *w = h->data;

    w->closing = false;
    if (w->exited)
        worker_free(w);
}

/* Its process was reaped: off the list, and freed once its channel handle is closed. */
static void worker_remove(struct worker *w)
{
    struct sup *s = w->s;

    for (struct worker **p = &s->workers; *p; p = &(*p)->next)
        if (*p == w) {
            *p = w->next;
            break;
        }
    if (w->chan_open) {
        w->chan_open = false;
        w->closing = true;
        uv_close((uv_handle_t *)&w->chan, worker_closed);
    }
    if (!w->closing)
        worker_free(w);
}

static void close_channel(struct worker *w)
{
    if (!w->chan_open)
        return;
    w->chan_open = false;
    w->closing = true;
    uv_close((uv_handle_t *)&w->chan, worker_closed); /* EOF: the worker exits */
}

void qd_pool_retire(struct worker *w)
{
    if (qd_sched_worker_retire(&w->s->sched, &w->sw))
        close_channel(w);
}

void qd_pool_close_channels(struct sup *s)
{
    for (struct worker *w = s->workers; w; w = w->next)
        close_channel(w);
}

uint64_t qd_pool_rss_kb(int pid)
{
    char path[64];
    unsigned long long pages = 0, rss = 0;
    FILE *f;

    snprintf(path, sizeof(path), "/proc/%d/statm", pid);
    f = fopen(path, "re");
    if (!f)
        return 0;
    if (fscanf(f, "%llu %llu", &pages, &rss) != 2)
        rss = 0;
    fclose(f);
    return rss * (unsigned long long)sysconf(_SC_PAGESIZE) / 1024;
}

/* ---- exits ---- */

/* A worker that ends before it was ready counts toward the crash-loop breaker only when it
 * could not start by itself (an exit status, a fault of its own, or garbage on its channel
 * that made us kill it); a signal sent from elsewhere (an operator's kill, the OOM killer, a
 * stop) says nothing about the binary. */
static bool start_failure(const struct worker *w, int64_t status, int term_signal)
{
    if (w->faulty)
        return true;
    if (!term_signal)
        return status != 0;
    return !qd_signal_from_outside(term_signal);
}

static void note_start_failure(struct sup *s, uint64_t now)
{
    s->init_fail_ms[s->init_fail_i++ % QD_CRASHLOOP_N] = now;
    if (s->init_fail_i >= QD_CRASHLOOP_N &&
        now - s->init_fail_ms[s->init_fail_i % QD_CRASHLOOP_N] < QD_CRASHLOOP_WINDOW)
        qd_sup_crashloop(s);
}

static void log_exit(struct worker *w, enum qd_wstate was, int64_t status, int term_signal)
{
    if (was == QD_W_STARTING) {
        qd_err("worker %d %s during start-up (status %lld, signal %d)", w->pid,
               start_failure(w, status, term_signal) ? "failed" : "was killed", (long long)status,
               term_signal);
    } else if (w->sw.cur && !term_signal && status == QD_EXIT_CACHE_CHANGED) {
        const char *key = qd_sched_item_job(&w->sw)->key;

        qd_warn("worker %d: %s%s%s changed under it during an item (truncated or rewritten); "
                "%s",
                w->pid, key[0] ? "cache file " : "a cache file", key, key[0] ? ".qtpc" : "",
                key[0] ? "its unfinished samples are retried on a verified or rebuilt file"
                       : "the task fails (worker_crashed); it may be sent again");
    } else if (w->sw.cur) {
        qd_err("worker %d died during an item (%s%s%d): %s", w->pid,
               term_signal ? "signal " : "exit status ",
               term_signal == SIGKILL && !w->sw.timed_out ? "possible OOM kill, " : "",
               term_signal ? term_signal : (int)status,
               w->sw.timed_out ? "item passed its deadline" : "its unfinished samples are retried");
    } else if (was != QD_W_RETIRING && was != QD_W_EXITING && was != QD_W_KILLING) {
        qd_warn("worker %d exited unexpectedly (status %lld, signal %d)", w->pid, (long long)status,
                term_signal);
    } else {
        qd_debug("worker %d exited", w->pid);
    }
}

static void on_worker_exit(struct worker *w, int64_t status, int term_signal)
{
    struct sup *s = w->s;
    enum qd_wstate was = w->sw.state;

    w->exited = true;
    log_exit(w, was, status, term_signal);
    if (was == QD_W_STARTING && start_failure(w, status, term_signal))
        note_start_failure(s, qd_now_ms(s));
    if (w->progress) { /* how far its item got, written by the worker before it died */
        uint64_t p = __atomic_load_n(w->progress, __ATOMIC_ACQUIRE);

        if (p >> 32 == w->item_id)
            w->sw.cur_computed = (uint32_t)p;
    }
    qd_sched_worker_exit(&s->sched, &w->sw, (int)status, term_signal);
    worker_remove(w);
    if (s->exit_code) /* crash loop: end the requests, stop the other workers, then the loop */
        qd_sup_stop_now(s);
    if (!s->stopping && !s->exit_code)
        qd_pool_fill(s);
    if (s->stopping && !s->workers)
        uv_stop(s->loop);
    qd_sched_dispatch(&s->sched, qd_now_ms(s));
}

/* ---- frames from workers ---- */

static int on_result(struct worker *w, const struct qp_msg *msg, struct qt_diag *dg)
{
    struct sup *s = w->s;
    struct qp_w_result res;
    struct qd_job *job;
    size_t col;
    int r = qp_decode_w_result(msg->params, &res, dg);

    if (r < 0)
        return -EPROTO;
    r = qd_sched_sample(&s->sched, &w->sw, res.index, qd_now_ms(s), &job, &col);
    if (r <= 0)
        return r;
    qd_req_deliver(djob_of(job), col, res.results, res.len, res.failed == 0,
                   (double)(w->sw.t_dispatch - djob_of(job)->t_recv), res.us / 1000.0, w->pid,
                   res.boot_obj);
    return 0;
}

/* Recycles a worker past its item count or its memory limit. Its memory is read from /proc at
 * most every QD_RSS_CHECK_MS (reading it after every item cost 5 % of the loop's time). */
static void maybe_recycle(struct worker *w)
{
    struct sup *s = w->s;
    uint64_t now = qd_now_ms(s);
    bool check_rss = s->conf.worker_max_rss_mb && now - w->rss_checked_ms >= QD_RSS_CHECK_MS;

    if (check_rss)
        w->rss_checked_ms = now;
    if ((s->conf.worker_max_jobs && w->sw.items >= w->max_jobs) ||
        (check_rss && qd_pool_rss_kb(w->pid) > (uint64_t)s->conf.worker_max_rss_mb * 1024)) {
        qd_info("worker %d recycled after %llu samples", w->pid, (unsigned long long)w->sw.items);
        s->recycled++;
        qd_pool_retire(w);
        qd_pool_spawn(s, w->sw.reserved);
    }
}

static int on_item_end(struct worker *w, const struct qp_msg *msg)
{
    struct sup *s = w->s;
    struct qd_job *job = qd_sched_item_job(&w->sw);
    int r;

    if (job && job->kind == QD_JOB_TASK)
        qd_req_task_answer(djob_of(job), msg);
    r = qd_sched_item_end(&s->sched, &w->sw, qd_now_ms(s), (uv_hrtime() - w->t_start_ns) / 1000u);
    if (r < 0)
        return r;
    if (r == QD_AFTER_RETIRE)
        close_channel(w);
    else if (r == QD_AFTER_IDLE)
        maybe_recycle(w);
    qd_sched_dispatch(&s->sched, qd_now_ms(s));
    return 0;
}

static void on_ready(struct worker *w)
{
    struct sup *s = w->s;

    qd_sched_worker_ready(&s->sched, &w->sw);
    qd_debug("worker %d ready", w->pid);
    qd_sup_ready_check(s);
    qd_sched_dispatch(&s->sched, qd_now_ms(s));
}

/* One frame from a worker. Workers are ours but may be broken: anything unexpected kills it. */
static int worker_frame(struct worker *w, const uint8_t *body, uint32_t len)
{
    struct qp_msg msg;
    struct qt_diag dg = {0};
    int r = qp_msg_decode(body, len, &msg, &dg);

    if (r < 0)
        goto out;
    if (msg.type == QP_NOTIFICATION && msg.method == QP_M_W_READY && w->sw.state == QD_W_STARTING)
        on_ready(w);
    else if (msg.type == QP_NOTIFICATION && msg.method == QP_M_W_RESULT)
        r = on_result(w, &msg, &dg);
    else if (msg.type == QP_RESPONSE)
        r = on_item_end(w, &msg);
    else
        r = -EPROTO;
out:
    qp_msg_done(&msg);
    if (r < 0)
        qd_err("worker %d: bad channel message (%s); killing it", w->pid,
               dg.msg[0] ? dg.msg : qt_strerror(r));
    return r;
}

static void worker_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *b)
{
    struct worker *w = h->data;

    (void)suggested;
    qd_framer_alloc(&w->fr, b);
}

static void worker_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
    struct worker *w = st->data;
    const uint8_t *body;
    uint32_t len;
    int r;

    (void)b;
    if (nread < 0) {
        /* EOF or error: the process exit callback does the accounting. */
        uv_read_stop(st);
        return;
    }
    qp_framer_commit(&w->fr, (size_t)nread);
    while ((r = qp_framer_next(&w->fr, UINT32_MAX, &body, &len)) == 1)
        if (worker_frame(w, body, len) < 0)
            break;
    if (r != 0) {
        uv_read_stop(st);
        w->faulty = true;
        (void)kill(w->pid, SIGKILL);
        return;
    }
    qp_framer_consume(&w->fr);
}

/* ---- spawning ---- */

/* The environment of a worker: ours without systemd's variables, with one BLAS thread, the
 * kernel choice and the supervisor's pid. */
static char **worker_env(void)
{
    static const char *const drop[] = {
        "NOTIFY_SOCKET=", "WATCHDOG_USEC=",  "WATCHDOG_PID=",         "LISTEN_FDS=",
        "LISTEN_PID=",    "LISTEN_FDNAMES=", "OPENBLAS_NUM_THREADS=", "QTOMO_SUPERVISOR_PID="};
    static char pidvar[64], ctvar[64], one_thread[] = "OPENBLAS_NUM_THREADS=1";
    const char *ct = getenv("OPENBLAS_CORETYPE") ? NULL : qt_blas_coretype_advice();
    size_t n = 0, k = 0;
    char **env;

    while (environ[n])
        n++;
    env = calloc(n + 4, sizeof(*env));
    if (!env)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool keep = true;

        for (size_t j = 0; j < sizeof(drop) / sizeof(drop[0]); j++)
            keep &= strncmp(environ[i], drop[j], strlen(drop[j])) != 0;
        if (keep)
            env[k++] = environ[i];
    }
    snprintf(pidvar, sizeof(pidvar), "QTOMO_SUPERVISOR_PID=%d", (int)getpid());
    env[k++] = pidvar;
    env[k++] = one_thread;
    if (ct) {
        snprintf(ctvar, sizeof(ctvar), "OPENBLAS_CORETYPE=%s", ct);
        env[k++] = ctvar;
    }
    return env;
}

struct wargs {
    char cache[300], budget[32], frame[32], dim[32], log[8];
    char *argv[16];
};

static void worker_args(struct sup *s, struct wargs *a)
{
    static char o_worker[] = "--worker", o_cache_dir[] = "--cache-dir",
                o_cache_budget_mb[] = "--cache-budget-mb", o_max_frame[] = "--max-frame",
                o_max_dim[] = "--max-dim", o_log_level[] = "--log-level";
    int k = 0;

    snprintf(a->cache, sizeof(a->cache), "%s", s->conf.cache_dir);
    snprintf(a->budget, sizeof(a->budget), "%u", s->conf.cache_budget_mb);
    snprintf(a->frame, sizeof(a->frame), "%u", s->conf.max_frame);
    snprintf(a->dim, sizeof(a->dim), "%u", s->conf.max_dim);
    snprintf(a->log, sizeof(a->log), "%u", s->conf.log_level);
    a->argv[k++] = s->exe;
    a->argv[k++] = o_worker;
    a->argv[k++] = o_cache_dir;
    a->argv[k++] = a->cache;
    a->argv[k++] = o_cache_budget_mb;
    a->argv[k++] = a->budget;
    a->argv[k++] = o_max_frame;
    a->argv[k++] = a->frame;
    a->argv[k++] = o_max_dim;
    a->argv[k++] = a->dim;
    a->argv[k++] = o_log_level;
    a->argv[k++] = a->log;
    a->argv[k] = NULL;
}

/* SIGCHLD: reaps every exited worker (the supervisor has no other children). */
static void on_sigchld(uv_signal_t *h, int sig)
{
    struct sup *s = h->data;
    int st;
    pid_t pid;

    (void)sig;
    while ((pid = waitpid(-1, &st, WNOHANG)) > 0) {
        struct worker *w = s->workers;

        while (w && w->pid != pid)
            w = w->next;
        if (w)
            on_worker_exit(w, WIFEXITED(st) ? WEXITSTATUS(st) : 0,
                           WIFSIGNALED(st) ? WTERMSIG(st) : 0);
    }
}

void qd_pool_init(struct sup *s)
{
    uv_signal_init(s->loop, &s->sig_chld);
    s->sig_chld.data = s;
    uv_signal_start(&s->sig_chld, on_sigchld, SIGCHLD);
}

/* A worker's progress word: a shared page (memfd, given to the worker as QD_PROGRESS_FD),
 * mapped here; *fd: the memfd (> QD_PROGRESS_FD), or -1 with NULL when there is none (the
 * worker then answers every sample on its own). */
static uint64_t *progress_map(int *fd)
{
    void *p;
    int f = memfd_create("qtomod-progress", MFD_CLOEXEC);

    *fd = -1;
    if (f >= 0 && f <= QD_PROGRESS_FD) { /* not where a dup2 would replace it, nor onto itself */
        int g = fcntl(f, F_DUPFD_CLOEXEC, QD_PROGRESS_FD + 1);

        close(f);
        f = g;
    }
    if (f < 0)
        return NULL;
    if (ftruncate(f, (off_t)sizeof(uint64_t)) < 0 ||
        (p = mmap(NULL, sizeof(uint64_t), PROT_READ | PROT_WRITE, MAP_SHARED, f, 0)) ==
            MAP_FAILED) {
        close(f);
        return NULL;
    }
    *fd = f;
    return p;
}

/* fork+exec without fork's cost: posix_spawn (vfork-like in glibc) does not copy the
 * supervisor's page tables, which took 10-15 ms of the loop per worker once the supervisor
 * held hundreds of MB of requests (uv_spawn forks). The worker gets /dev/null on stdin, our
 * stdout and stderr, its end of a socketpair on fd 3, default signal handlers and no blocked
 * signals; everything else we hold is close-on-exec. */
static int spawn_worker(struct sup *s, struct worker *w, char **env)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    sigset_t none, all;
    struct wargs a;
    int sv[2], r, mfd = -1;
    pid_t pid;

    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return -errno;
    if (sv[1] == QD_CHANNEL_FD) { /* dup2 onto itself would keep it close-on-exec */
        int fd = fcntl(sv[1], F_DUPFD_CLOEXEC, QD_CHANNEL_FD + 1);

        if (fd < 0) {
            r = -errno;
            close(sv[0]);
            close(sv[1]);
            return r;
        }
        close(sv[1]);
        sv[1] = fd;
    }
    w->progress = progress_map(&mfd);
    worker_args(s, &a);
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawn_file_actions_init(&fa);
    posix_spawnattr_init(&at);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, sv[1], QD_CHANNEL_FD);
    if (mfd >= 0)
        posix_spawn_file_actions_adddup2(&fa, mfd, QD_PROGRESS_FD);
    posix_spawnattr_setsigmask(&at, &none);
    posix_spawnattr_setsigdefault(&at, &all);
    posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    r = -posix_spawn(&pid, s->exe, &fa, &at, a.argv, env);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(sv[1]);
    if (mfd >= 0)
        close(mfd);
    if (r < 0) {
        close(sv[0]);
        return r;
    }
    w->pid = pid;
    r = uv_pipe_open(&w->chan, sv[0]);
    if (r < 0) { /* reaped by on_sigchld as a pid it does not know */
        close(sv[0]);
        (void)kill(pid, SIGKILL);
    }
    return r;
}

int qd_set_slice(pid_t pid, unsigned us)
{
    struct { /* struct sched_attr, SCHED_ATTR_SIZE_VER0; glibc 2.36 has no wrapper */
        uint32_t size, policy;
        uint64_t flags;
        int32_t nice;
        uint32_t priority;
        uint64_t runtime, deadline, period;
    } a = {.size = 48};
    int policy = sched_getscheduler(pid), nice;

    _Static_assert(sizeof(a) == 48, "sched_attr, version 0");
    if (policy < 0)
        return -errno;
    if (policy & SCHED_RESET_ON_FORK) { /* systemd's CPUSchedulingResetOnFork=: kept */
        policy &= ~SCHED_RESET_ON_FORK;
        a.flags = 0x01; /* SCHED_FLAG_RESET_ON_FORK */
    }
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return 0; /* an administrator's real-time or idle policy stays */
    errno = 0;
    nice = getpriority(PRIO_PROCESS, (id_t)pid);
    if (errno)
        return -errno;
    a.policy = (uint32_t)policy;
    a.nice = nice; /* unchanged: sched_setattr sets it too */
    a.runtime = (uint64_t)us * 1000;
    if (syscall(SYS_sched_setattr, pid, &a, 0) < 0)
        return -errno;
    return 0;
}

int qd_set_idle(pid_t pid, int *ret_from)
{
    struct sched_param sp = {0};
    int policy = sched_getscheduler(pid);

    *ret_from = -1;
    if (policy < 0)
        return -errno;
    if (policy != SCHED_OTHER && policy != SCHED_BATCH)
        return 0; /* an administrator's real-time or idle policy stays */
    if (sched_setscheduler(pid, SCHED_IDLE, &sp) < 0)
        return -errno;
    *ret_from = policy;
    return 0;
}

static bool ordinary(int policy)
{
    policy &= ~SCHED_RESET_ON_FORK;
    return policy == SCHED_OTHER || policy == SCHED_BATCH;
}

int qd_set_rt(pid_t pid, unsigned prio, int *ret_from)
{
    struct sched_param sp = {.sched_priority = (int)prio};
    int policy = sched_getscheduler(pid);

    *ret_from = -1;
    if (policy < 0)
        return -errno;
    if (!ordinary(policy))
        return 0; /* an administrator's real-time or idle policy stays */
    if (sched_setscheduler(pid, SCHED_FIFO | SCHED_RESET_ON_FORK, &sp) < 0)
        return -errno;
    *ret_from = policy;
    return 0;
}

int qd_unset_rt(pid_t pid, int from)
{
    struct sched_param sp = {0};
    int policy = sched_getscheduler(pid);

    if (policy < 0)
        return -errno;
    if ((policy & ~SCHED_RESET_ON_FORK) != SCHED_FIFO)
        return 0; /* an administrator's policy since */
    if (sched_setscheduler(pid, from, &sp) == 0)
        return 0;
    /* Without CAP_SYS_NICE a process may not clear its reset-on-fork flag: kept. */
    if (errno == EPERM && sched_setscheduler(pid, from | SCHED_RESET_ON_FORK, &sp) == 0)
        return 0;
    return -errno;
}

int qd_pool_rt(void *ud, struct qd_sw *sw, bool on)
{
    static bool warned[2]; /* once each way: what refuses it (rlimit, filter) always does */
    struct worker *w = worker_of(sw);
    struct sup *s = ud;
    int r = 0;

    if (w->exited)
        return 0;
    if (on && w->rt_from < 0) {
        r = qd_set_rt(w->pid, s->conf.rt_priority, &w->rt_from);
    } else if (!on && w->rt_from >= 0) {
        r = qd_unset_rt(w->pid, w->rt_from);
        if (r == 0) {
            w->rt_from = -1;
            /* the ordinary policy comes back with the kernel's slice */
            if (s->conf.latency_slice_us)
                (void)qd_set_slice(w->pid, s->conf.latency_slice_us);
        }
    }
    if (r == -ESRCH)
        return 0; /* exited: its exit is on its way */
    if (r < 0 && !warned[on]) {
        warned[on] = true;
        qd_warn("worker %d: cannot %s SCHED_FIFO: %s (not logged again)", w->pid,
                on ? "set" : "leave", strerror(-r));
    }
    return r;
}

/* With interactive workers, a batch worker runs at batch-nice and an interactive one asks for a
 * short time slice (latency-slice-us), so that the kernel runs an interactive item first on a
 * machine whose cores batches keep busy. A worker inherits the supervisor's slice (sup_slice):
 * a batch worker goes back to the kernel's default. With batch-idle, a batch worker also runs
 * under SCHED_IDLE: on an EEVDF kernel a woken task that ran more than its share lately is not
 * eligible and waits for the next tick (4 ms at HZ = 250) behind a nice-10 batch worker, but
 * preempts an idle-policy one at once. Best effort. */
static void worker_priority(struct sup *s, const struct worker *w, bool reserved)
{
    static bool warned, idle_warned; /* once: a kernel or filter that refuses, always does */
    unsigned us = reserved ? s->conf.latency_slice_us : 0;
    int r, from, nice;

    if (!s->conf.interactive_workers)
        return;
    /* A child of a SCHED_FIFO supervisor starts at nice 0 (reset on fork): an interactive worker
     * gets the supervisor's nice value back (an administrator's Nice=). */
    errno = 0;
    nice = getpriority(PRIO_PROCESS, 0);
    if (reserved && !errno && nice > 0 && setpriority(PRIO_PROCESS, (id_t)w->pid, nice) < 0)
        qd_warn("worker %d: cannot set nice %d: %s", w->pid, nice, strerror(errno));
    if (s->conf.latency_slice_us && (r = qd_set_slice(w->pid, us)) < 0 && !warned) {
        warned = true;
        qd_warn("worker %d: cannot set a %u µs time slice: %s (not logged again)", w->pid, us,
                strerror(-r));
    }
    if (!reserved && s->conf.batch_nice &&
        setpriority(PRIO_PROCESS, (id_t)w->pid, (int)s->conf.batch_nice) < 0)
        qd_warn("worker %d: cannot set nice %u: %s", w->pid, s->conf.batch_nice, strerror(errno));
    if (!reserved && s->conf.batch_idle == 1 && (r = qd_set_idle(w->pid, &from)) < 0 &&
        !idle_warned) {
        idle_warned = true;
        qd_warn("worker %d: cannot set SCHED_IDLE: %s (not logged again)", w->pid, strerror(-r));
    }
}

void qd_pool_yield(void *ud, struct qd_sw *sw, bool on)
{
    static bool warned; /* once: a kernel or filter that refuses, always does */
    struct worker *w = worker_of(sw);
    struct sched_param sp = {0};
    int r = 0;

    (void)ud;
    if (w->exited)
        return;
    if (on && w->idle_from < 0) {
        r = qd_set_idle(w->pid, &w->idle_from);
    } else if (!on && w->idle_from >= 0) {
        /* unless an administrator gave it another policy meanwhile */
        if (sched_getscheduler(w->pid) == SCHED_IDLE)
            r = sched_setscheduler(w->pid, w->idle_from, &sp) < 0 ? -errno : 0;
        w->idle_from = -1;
        if (r == -EPERM) {
            static bool told;

            w->stuck_idle = true;
            if (!told)
                qd_info("batch workers cannot leave SCHED_IDLE without CAP_SYS_NICE or "
                        "RLIMIT_NICE >= %u: each is replaced by a fresh one instead (not "
                        "logged again)",
                        20 - w->s->conf.batch_nice);
            told = true;
            return;
        }
    }
    if (r < 0 && r != -ESRCH && !warned) {
        warned = true;
        qd_warn("worker %d: cannot %s SCHED_IDLE: %s (not logged again)", w->pid,
                on ? "set" : "leave", strerror(-r));
    }
}

void qd_pool_replace_stuck(struct sup *s)
{
    for (struct worker *w = s->workers; w; w = w->next) {
        if (!w->stuck_idle)
            continue;
        w->stuck_idle = false;
        if (w->exited || s->stopping || w->generation != s->generation ||
            (w->sw.state != QD_W_STARTING && w->sw.state != QD_W_IDLE &&
             w->sw.state != QD_W_BUSY))
            continue; /* going anyway */
        qd_debug("worker %d replaced: it cannot leave SCHED_IDLE", w->pid);
        qd_pool_retire(w);
        qd_pool_spawn(s, w->sw.reserved);
    }
}

void qd_pool_fill(struct sup *s)
{
    unsigned live = qd_sched_live_workers(&s->sched), res = qd_sched_live_reserved(&s->sched);

    for (unsigned i = live - res; i < s->conf.workers; i++)
        qd_pool_spawn(s, false);
    for (unsigned i = res; i < s->conf.interactive_workers; i++)
        qd_pool_spawn(s, true);
}

void qd_pool_spawn(struct sup *s, bool reserved)
{
    struct worker *w = calloc(1, sizeof(*w));
    char **env = worker_env();
    int r;

    if (!w || !env) {
        qd_err("cannot spawn a worker: out of memory");
        free(w);
        free(env);
        return;
    }
    qp_framer_init(&w->fr);
    w->s = s;
    w->idle_from = -1;
    w->rt_from = -1;
    w->generation = s->generation;
    w->max_jobs =
        s->conf.worker_max_jobs +
        (s->conf.worker_max_jobs ? (uint64_t)rand() % (s->conf.worker_max_jobs / 10 + 1) : 0);
    uv_pipe_init(s->loop, &w->chan, 0);
    w->chan.data = w;
    r = spawn_worker(s, w, env);
    free(env);
    if (r < 0) {
        qd_err("cannot spawn a worker (%s): %s", s->exe, strerror(-r));
        w->exited = true;
        w->closing = true;
        uv_close((uv_handle_t *)&w->chan, worker_closed);
        note_start_failure(s, qd_now_ms(s));
        if (s->exit_code)
            qd_sup_stop_now(s);
        return;
    }
    w->chan_open = true;
    w->next = s->workers;
    s->workers = w;
    qd_sched_worker_add(&s->sched, &w->sw, w->pid);
    w->sw.reserved = reserved;
    worker_priority(s, w, reserved);
    uv_read_start((uv_stream_t *)&w->chan, worker_alloc, worker_read);
    qd_debug("worker %d spawned (generation %llu%s)", w->pid, (unsigned long long)w->generation,
             reserved ? ", interactive" : "");
}
