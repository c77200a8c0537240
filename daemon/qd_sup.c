#define _GNU_SOURCE
/* The supervisor proper: one libuv loop that owns the listening socket and the systemd
 * conversation (readiness, status, watchdog, reload, stop), and ties the rooms together (see
 * qd_sup.h). It never does numerics or BLAS: work goes to workers, results come back already
 * encoded and are relayed. */
#include "qd_sup.h"

#include <errno.h>
#include <grp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "base/qt_status.h"
#include "cache/qt_cache.h"
#include "num/qt_lapack.h"
#include "qd_log.h"

#ifndef QTOMO_VERSION
#    define QTOMO_VERSION "0.0.0"
#endif

#define TICK_MS 100

uint64_t qd_now_ms(struct sup *s)
{
    uv_update_time(s->loop);
    return uv_now(s->loop);
}

struct qd_sched_limits qd_sup_limits(const struct qd_conf *c)
{
    struct qd_sched_limits l = {c->chunk,     c->item_timeout_ms, c->max_item_ms,  c->kill_grace_ms,
                                c->max_queue, c->batch_share_pct, c->chunk_grow_us,
                                c->max_item_ms,
                                c->batch_idle == 2 && c->interactive_workers ? QD_SCHED_YIELD_MS
                                                                             : 0,
                                c->rt_priority && c->interactive_workers};

    return l;
}

/* ---- systemd ---- */

void qd_sup_notify_status(struct sup *s)
{
    unsigned idle = 0, busy = 0, all = 0;
    char line[256];

    if (s->exit_code)
        return; /* stopping on an error: its STATUS= stays */
    for (const struct qd_sw *w = s->sched.workers; w; w = w->next) {
        if (w->state != QD_W_STARTING && w->state != QD_W_IDLE && w->state != QD_W_BUSY)
            continue;
        all++;
        idle += w->state == QD_W_IDLE;
        busy += w->state == QD_W_BUSY;
    }
    snprintf(line, sizeof(line),
             "STATUS=%s%u/%u workers busy, %u idle, %llu samples queued, %u clients",
             s->draining ? "draining: " : "", busy, all, idle, (unsigned long long)s->sched.queued,
             s->n_conns);
    if (strcmp(line, s->status_line) != 0) {
        memcpy(s->status_line, line, sizeof(line));
        (void)sd_notify(0, line);
    }
}

static void on_watchdog(uv_timer_t *t)
{
    (void)sd_notify(0, "WATCHDOG=1");
    (void)t;
}

/* READY=1 once the first full pool is ready. */
void qd_sup_ready_check(struct sup *s)
{
    if (s->ready_sent ||
        qd_sched_live_workers(&s->sched) != s->conf.workers + s->conf.interactive_workers)
        return;
    for (const struct qd_sw *w = s->sched.workers; w; w = w->next)
        if (w->state == QD_W_STARTING)
            return;
    s->ready_sent = true;
    qd_notice("ready: %u workers, socket %s, cache %s", s->conf.workers, s->conf.socket,
              s->conf.cache_dir);
    (void)sd_notify(0, "READY=1");
    qd_sup_notify_status(s);
}

void qd_sup_crashloop(struct sup *s)
{
    if (s->exit_code)
        return;
    qd_err("%d workers failed during start-up within %d s: giving up (crash loop)", QD_CRASHLOOP_N,
           QD_CRASHLOOP_WINDOW / 1000);
    s->exit_code = QD_EXIT_CRASHLOOP;
    s->draining = true; /* refuse new connections and requests while it stops */
    (void)sd_notifyf(0, "ERRNO=%d\nSTATUS=workers crash during start-up", EIO);
}

/* ---- listening ---- */

/* The socket-activated descriptor among n passed ones: fd, or -1 (the others are closed). */
static int activated_fd(int n, char **names)
{
    int fd = -1;

    for (int i = 0; i < n; i++) {
        if (fd < 0 && sd_is_socket_unix(SD_LISTEN_FDS_START + i, SOCK_STREAM, 1, NULL, 0) > 0)
            fd = SD_LISTEN_FDS_START + i;
        else
            close(SD_LISTEN_FDS_START + i);
        free(names ? names[i] : NULL);
    }
    free(names);
    return fd;
}

/* Whether another process answers on the socket path (a stale file nobody answers is not). */
static bool socket_alive(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool alive;

    if (probe < 0)
        return false;
    memcpy(sa.sun_path, path, strlen(path));
    alive = connect(probe, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(probe);
    return alive;
}

/* Binds the configured socket path ourselves: its directory, the stale-socket probe, mode and
 * group. */
static int bind_own(struct sup *s)
{
    struct sockaddr_un sa;
    char dir[sizeof(s->conf.socket)], *slash;
    int r;

    if (strlen(s->conf.socket) >= sizeof(sa.sun_path)) {
        qd_err("socket path %s is longer than %zu bytes", s->conf.socket, sizeof(sa.sun_path) - 1);
        return -ENAMETOOLONG;
    }
    snprintf(dir, sizeof(dir), "%s", s->conf.socket);
    slash = strrchr(dir, '/');
    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
            qd_err("cannot create %s: %s", dir, strerror(errno));
            return -errno;
        }
    }
    if (socket_alive(s->conf.socket)) {
        qd_err("another qtomod is listening on %s", s->conf.socket);
        return -EADDRINUSE;
    }
    (void)unlink(s->conf.socket);
    r = uv_pipe_bind(&s->listener, s->conf.socket);
    if (r == 0 && chmod(s->conf.socket, s->conf.socket_mode) < 0)
        r = -errno;
    if (r == 0 && s->conf.socket_group[0]) {
        struct group *g = getgrnam(s->conf.socket_group);

        if (!g || chown(s->conf.socket, (uid_t)-1, g->gr_gid) < 0) {
            qd_err("socket group %s: %s", s->conf.socket_group,
                   g ? strerror(errno) : "no such group");
            return -EINVAL;
        }
    }
    if (r < 0) {
        qd_err("cannot bind %s: %s", s->conf.socket, uv_strerror(r));
        return r;
    }
    qd_info("listening on %s (mode %04o)", s->conf.socket, s->conf.socket_mode);
    return 0;
}

static int listen_socket(struct sup *s)
{
    char **names = NULL;
    int n = sd_listen_fds_with_names(1, &names), fd, r;

    if (n < 0) {
        qd_err("sd_listen_fds: %s", strerror(-n));
        return n;
    }
    fd = activated_fd(n, names);
    uv_pipe_init(s->loop, &s->listener, 0);
    s->listener.data = s;
    if (n > 0 && fd < 0) {
        qd_err("socket activation: none of the %d descriptors is a listening Unix stream socket",
               n);
        return -EINVAL;
    }
    if (n > 0) {
        r = uv_pipe_open(&s->listener, fd);
        s->activated = true;
        qd_info("listening on the socket-activated descriptor %d", fd);
    } else {
        r = bind_own(s);
    }
    if (r == 0)
        r = uv_listen((uv_stream_t *)&s->listener, 128, qd_conn_on_connection);
    if (r < 0) {
        qd_err("listen: %s", uv_strerror(r));
        return r;
    }
    s->listening = true;
    return 0;
}

/* ---- reload, shutdown ---- */

/* The supervisor relays every live sample, so with interactive workers it asks for their short
 * time slice too and runs under SCHED_FIFO one above rt-priority (above the interactive workers,
 * so that it always gets a core to run its tick on; reset on fork: workers start under the
 * ordinary policy); without, or with 0, the kernel's defaults. Best effort: returns whether it
 * runs under a real-time policy above the workers', so that they are not asked in vain. */
static uint64_t cpu_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

static void sup_rt_leave(struct sup *s)
{
    int r;

    if ((r = qd_unset_rt(0, s->rt_from)) < 0)
        qd_warn("cannot leave SCHED_FIFO: %s", strerror(-r));
    s->rt_prio = 0;
    s->slice_now = 0; /* the ordinary policy comes back with the kernel's slice */
}

static bool sup_policy(struct sup *s)
{
    unsigned us = s->conf.interactive_workers ? s->conf.latency_slice_us : 0;
    unsigned prio = s->conf.interactive_workers && s->conf.rt_priority ? s->conf.rt_priority + 1
                                                                       : 0;
    struct sched_param sp;
    int r, policy;

    if (s->rt_prio && prio != s->rt_prio)
        sup_rt_leave(s);
    if (!prio)
        s->rt_over = false;
    if (us != s->slice_now) {
        if ((r = qd_set_slice(0, us)) < 0)
            qd_warn("cannot set a %u µs time slice: %s", us, strerror(-r));
        else
            s->slice_now = us;
    }
    if (!prio || s->rt_over)
        return false;
    if (s->rt_prio)
        return true;
    if ((r = qd_set_rt(0, prio, &s->rt_from)) < 0) {
        if (s->rt_told != prio)
            qd_info("live samples run under the ordinary policy: SCHED_FIFO (rt-priority %u: "
                    "%u for the supervisor) needs CAP_SYS_NICE or RLIMIT_RTPRIO >= %u (systemd: "
                    "LimitRTPRIO=): %s",
                    prio - 1, prio, prio, strerror(-r));
        s->rt_told = prio;
        return false;
    }
    if (s->rt_from >= 0) {
        s->rt_prio = prio;
        s->rt_cpu_us = cpu_us();
        return true;
    }
    /* an administrator's policy, kept: the workers only go above it never */
    policy = sched_getscheduler(0) & ~SCHED_RESET_ON_FORK;
    return (policy == SCHED_FIFO || policy == SCHED_RR) && sched_getparam(0, &sp) == 0 &&
           sp.sched_priority > (int)s->conf.rt_priority;
}

/* At each tick: the supervisor's CPU time under SCHED_FIFO spends its budget; spent, it goes on
 * under the ordinary policy, and so do the interactive workers (they must not run above it),
 * until the budget is full again. So a flood of requests cannot keep a core from every ordinary
 * process for more than QD_RT_SUP_SHARE_PCT of it. */
static void sup_rt_tick(struct sup *s, uint64_t now)
{
    static bool told;
    uint64_t cpu;
    int64_t left;

    if (!s->rt_prio && !s->rt_over)
        return;
    cpu = cpu_us();
    if (s->rt_prio)
        qd_rt_budget_spend(&s->rt_budget, cpu - QT_MIN(cpu, s->rt_cpu_us));
    s->rt_cpu_us = cpu;
    left = qd_rt_budget_left(&s->rt_budget, now, QD_RT_SUP_SHARE_PCT);
    if (s->rt_prio && left <= 0) {
        sup_rt_leave(s);
        s->rt_over = true;
        (void)sup_policy(s); /* the slice */
        qd_sched_rt_allow(&s->sched, false, now);
        if (!told)
            qd_notice("the supervisor used its real-time budget (%u %% of a core): ordinary "
                      "scheduling until it has it back (not logged again)",
                      QD_RT_SUP_SHARE_PCT);
        told = true;
    } else if (s->rt_over && left >= (int64_t)QD_RT_BURST_MS * 1000) {
        s->rt_over = false;
        qd_sched_rt_allow(&s->sched, sup_policy(s), now);
    }
}

/* The scheduler's limits from the configuration, with the real-time policy only where the
 * supervisor got it. */
static void sup_set_limits(struct sup *s)
{
    struct qd_sched_limits lim = qd_sup_limits(&s->conf);
    bool rt = sup_policy(s);

    if (!rt && !s->rt_over) /* refused, or not asked */
        lim.rt = false;
    qd_sched_set_limits(&s->sched, &lim);
    qd_sched_rt_allow(&s->sched, rt, qd_now_ms(s));
}

int qd_sup_reload(struct sup *s, char *err, size_t errlen)
{
    struct qd_conf nc;
    char advice[256];
    int r;

    qd_reload_done(&s->reload, qd_now_ms(s));
    if (s->draining || s->stopping) {
        snprintf(err, errlen, "the server is stopping");
        qd_notice("reload: ignored, the server is stopping");
        return -ESHUTDOWN;
    }
    (void)sd_notify(0, "RELOADING=1\nSTATUS=reloading");
    r = qd_conf_build(&nc, s->conf_path, s->argc, s->argv, err, errlen);
    if (r < 0) {
        qd_err("reload: %s; keeping the running configuration", err);
        (void)sd_notify(0, "READY=1");
        s->status_line[0] = '\0';
        qd_sup_notify_status(s);
        return r;
    }
    if (strcmp(nc.socket, s->conf.socket) != 0)
        qd_warn("reload: socket changes need a restart; still on %s", s->conf.socket);
    snprintf(nc.socket, sizeof(nc.socket), "%s", s->conf.socket);
    if (strcmp(nc.cache_dir, s->conf.cache_dir) != 0)
        qd_warn("reload: cache-dir changes need a restart; still %s", s->conf.cache_dir);
    snprintf(nc.cache_dir, sizeof(nc.cache_dir), "%s", s->conf.cache_dir);
    s->conf = nc;
    sup_set_limits(s);
    qd_log_set_level((int)nc.log_level);
    s->generation++;
    /* Roll the pool: new workers first, then the old ones finish their item and exit. */
    for (struct worker *w = s->workers; w; w = w->next)
        if (w->generation < s->generation)
            qd_pool_retire(w);
    for (unsigned i = 0; i < s->conf.workers; i++)
        qd_pool_spawn(s, false);
    for (unsigned i = 0; i < s->conf.interactive_workers; i++)
        qd_pool_spawn(s, true);
    qd_notice("reloaded: generation %llu, %u workers (+%u interactive)",
              (unsigned long long)s->generation, s->conf.workers, s->conf.interactive_workers);
    if (qd_conf_frame_advice(&s->conf, advice, sizeof(advice)))
        qd_warn("%s", advice);
    (void)sd_notify(0, "READY=1");
    s->status_line[0] = '\0';
    qd_sup_notify_status(s);
    return 0;
}

void qd_sup_stop_now(struct sup *s)
{
    if (s->stopping)
        return;
    s->stopping = true;
    for (struct conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        for (struct djob *jb = c->jobs, *jn; jb; jb = jn) {
            jn = jb->next;
            qd_req_abort(jb, QT_ST_SHUTTING_DOWN, "the server stopped before this finished");
        }
        qd_conn_send_bye(c, "shutdown", -1);
        qd_conn_close(c);
    }
    qd_pool_close_channels(s);
    qd_sched_stop(&s->sched, qd_now_ms(s), 2000);
    if (!s->workers)
        uv_stop(s->loop);
}

static void begin_drain(struct sup *s)
{
    if (s->draining)
        return;
    s->draining = true;
    s->drain_deadline = qd_now_ms(s) + s->conf.drain_timeout_ms;
    qd_notice("stopping: draining for up to %u ms", s->conf.drain_timeout_ms);
    (void)sd_notify(0, "STOPPING=1\nSTATUS=draining");
    if (s->listening) {
        s->listening = false;
        uv_close((uv_handle_t *)&s->listener, NULL);
        if (!s->activated)
            (void)unlink(s->conf.socket);
    }
}

static void on_signal(uv_signal_t *h, int sig)
{
    struct sup *s = h->data;

    if (sig == SIGHUP) {
        char err[512];
        uint64_t now = qd_now_ms(s);

        switch (qd_reload_signal(&s->reload, now)) {
        case QD_RELOAD_DEFERRED:
            qd_notice("SIGHUP: reloading in %llu ms (at most one reload every %u ms)",
                      (unsigned long long)(s->reload.due - now), QD_RELOAD_MIN_MS);
            return;
        case QD_RELOAD_COALESCED:
            qd_debug("SIGHUP: joins the reload already scheduled");
            return;
        case QD_RELOAD_NOW:
            break;
        }
        qd_notice("SIGHUP: reloading the configuration");
        (void)qd_sup_reload(s, err, sizeof(err));
        qd_sched_dispatch(&s->sched, qd_now_ms(s));
        return;
    }
    if (s->draining) {
        qd_notice("second stop signal: stopping now");
        qd_sup_stop_now(s);
        return;
    }
    begin_drain(s);
}

static void on_tick(uv_timer_t *t)
{
    struct sup *s = t->data;
    uint64_t now = qd_now_ms(s);

    if (qd_reload_due(&s->reload, now)) {
        char err[512];

        qd_notice("SIGHUP: reloading the configuration");
        (void)qd_sup_reload(s, err, sizeof(err));
        qd_sched_dispatch(&s->sched, now);
    }
    sup_rt_tick(s, now);
    qd_sched_tick(&s->sched, now);
    qd_pool_replace_stuck(s);
    qd_conn_tick(s, now);
    if (s->draining && !s->stopping && (s->sched.inflight == 0 || now >= s->drain_deadline))
        qd_sup_stop_now(s);
    qd_sup_notify_status(s);
}

static void walk_close(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void log_start(const struct sup *s)
{
    const char *ct = getenv("OPENBLAS_CORETYPE");
    const char *adv = ct ? NULL : qt_blas_coretype_advice();

    char advice[256];

    qd_notice("qtomod %s starting: %u workers, OpenBLAS kernels %s%s", QTOMO_VERSION,
              s->conf.workers, ct ? ct : adv ? adv : "as detected",
              ct ? " (OPENBLAS_CORETYPE)" : adv ? " (chosen for this CPU)" : "");
    if (qd_conf_frame_advice(&s->conf, advice, sizeof(advice)))
        qd_warn("%s", advice);
}

/* Signals, the tick and the watchdog. */
static void start_events(struct sup *s)
{
    uint64_t wd_usec = 0;

    uv_signal_init(s->loop, &s->sig_term);
    uv_signal_init(s->loop, &s->sig_int);
    uv_signal_init(s->loop, &s->sig_hup);
    s->sig_term.data = s->sig_int.data = s->sig_hup.data = s;
    uv_signal_start(&s->sig_term, on_signal, SIGTERM);
    uv_signal_start(&s->sig_int, on_signal, SIGINT);
    uv_signal_start(&s->sig_hup, on_signal, SIGHUP);
    uv_timer_init(s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, TICK_MS, TICK_MS);
    if (sd_watchdog_enabled(1, &wd_usec) > 0 && wd_usec >= 2000) {
        uv_timer_init(s->loop, &s->watchdog);
        uv_timer_start(&s->watchdog, on_watchdog, wd_usec / 2000, wd_usec / 2000);
    }
}

int qd_sup_main(const struct qd_conf *conf, const char *conf_path, int argc, char **argv)
{
    struct sup s = {0};
    struct qt_cache_config cc = {.budget = (uint64_t)conf->cache_budget_mb << 20};
    struct qt_diag dg = {0};
    ssize_t n;
    int r;

    s.conf = *conf;
    s.conf_path = conf_path;
    s.argc = argc;
    s.argv = argv;
    s.loop = uv_default_loop();
    {
        struct qd_sched_ops ops = qd_req_sched_ops;
        struct qd_sched_limits lim = qd_sup_limits(conf);

        ops.ud = &s;
        qd_sched_init(&s.sched, &ops, &lim);
    }
    s.in_wait_tail = &s.in_wait;
    s.started_ms = qd_now_ms(&s);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)getpid());
    n = readlink("/proc/self/exe", s.exe, sizeof(s.exe) - 1);
    if (n <= 0) {
        qd_err("cannot find my own executable: %s", strerror(errno));
        return QD_EXIT_INIT;
    }
    s.exe[n] = '\0';
    if (mkdir(s.conf.cache_dir, 0750) < 0 && errno != EEXIST && errno != ENOENT)
        qd_warn("cache directory %s: %s", s.conf.cache_dir, strerror(errno));
    r = qt_cache_open(s.conf.cache_dir, &cc, &s.cache, &dg);
    if (r < 0) {
        qd_err("cache %s: %s", s.conf.cache_dir, dg.msg);
        (void)sd_notifyf(0, "ERRNO=%d\nSTATUS=cannot open the cache", -r);
        return QD_EXIT_INIT;
    }
    if (listen_socket(&s) < 0) {
        qt_cache_close(s.cache);
        (void)sd_notify(0, "STATUS=cannot listen");
        return QD_EXIT_INIT;
    }
    log_start(&s);
    start_events(&s);
    qd_pool_init(&s);
    qd_conn_init(&s);
    sup_set_limits(&s);
    qd_pool_fill(&s);
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* Stopped: close what is left and let the close callbacks run. */
    if (s.listening && !s.activated)
        (void)unlink(s.conf.socket);
    uv_walk(s.loop, walk_close, NULL);
    uv_run(s.loop, UV_RUN_DEFAULT);
    /* Work still queued (stop_now ended its requests): free it with its jobs. */
    qd_sched_done(&s.sched);
    (void)uv_loop_close(s.loop);
    qt_cache_close(s.cache);
    qd_notice("stopped");
    return s.exit_code;
}
