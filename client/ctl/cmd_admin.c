/* qtomoctl's daemon administration commands: status, stats, workers, cache, design, ping,
 * reload. Each prints a short human form, or one JSON object with --json. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/compiler.h"
#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "io/qt_json.h"
#include "qctl.h"
#include "qtomo/client.h"

/* Common shape: parse only --help (commands take positional arguments), connect. */
static int begin(int argc, char **argv, struct qctl_global *g, const struct qctl_cmd *cmd,
                 int min_args, int max_args, qtomo_conn **c)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'}, {NULL, 0, NULL, 0}};
    int opt, nargs;

    while ((opt = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
        if (opt == 'h') {
            cmd->usage(stdout);
            return -1;
        }
        cmd->usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    nargs = argc - optind;
    if (nargs < min_args || nargs > max_args) {
        qctl_err("%s: %s", cmd->name,
                 nargs < min_args ? "missing arguments" : "too many arguments");
        cmd->usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    return qctl_connect(g, c);
}

static int fail(const struct qtomo_error *e, int r)
{
    qctl_err("%s", e->message);
    return qctl_exit_for(r);
}

static void emit_json(struct qt_jw *w)
{
    if (w->err == 0)
        printf("%s\n", w->buf);
    qt_jw_done(w);
}

/* ---- status, stats, workers ---- */

static void kv_int(struct qt_jw *w, const char *key, uint64_t v)
{
    qt_jw_key(w, key);
    qt_jw_int(w, (int64_t)v);
}

static void status_json(struct qt_jw *w, const struct qtomo_status *st, bool stats)
{
    const struct {
        const char *key;
        uint64_t v;
    } common[] = {{"queue_interactive", st->queue_interactive},
                  {"queue_batch", st->queue_batch},
                  {"inflight", st->inflight},
                  {"workers", st->n_workers},
                  {"cache_files", st->cache_files},
                  {"cache_bytes", st->cache_bytes},
                  {"cache_budget", st->cache_budget}},
      totals[] = {{"items", st->items},
                  {"errors", st->errors},
                  {"timeouts", st->timeouts},
                  {"crashes", st->crashes},
                  {"recycled", st->recycled}};

    qt_jw_obj_begin(w);
    qt_jw_key(w, "uptime_s");
    qt_jw_num(w, st->uptime_s);
    for (size_t i = 0; i < QT_ARRAY_SIZE(common); i++)
        kv_int(w, common[i].key, common[i].v);
    if (stats) {
        for (size_t i = 0; i < QT_ARRAY_SIZE(totals); i++)
            kv_int(w, totals[i].key, totals[i].v);
        qt_jw_key(w, "worker_detail");
        qt_jw_arr_begin(w);
        for (size_t i = 0; i < st->n_workers_info; i++) {
            qt_jw_obj_begin(w);
            kv_int(w, "pid", st->workers[i].pid);
            qt_jw_key(w, "state");
            qt_jw_str(w, st->workers[i].state);
            kv_int(w, "jobs", st->workers[i].jobs);
            kv_int(w, "rss_kb", st->workers[i].rss_kb);
            qt_jw_obj_end(w);
        }
        qt_jw_arr_end(w);
    }
    qt_jw_obj_end(w);
}

static void print_workers(const struct qtomo_status *st)
{
    printf("%-8s %-9s %10s %10s\n", "pid", "state", "items", "rss_mb");
    for (size_t i = 0; i < st->n_workers_info; i++)
        printf("%-8u %-9s %10llu %10.1f\n", st->workers[i].pid, st->workers[i].state,
               (unsigned long long)st->workers[i].jobs, (double)st->workers[i].rss_kb / 1024.0);
}

static int status_like(int argc, char **argv, struct qctl_global *g, const char *which)
{
    const struct qctl_cmd *cmd = qctl_find_cmd(which);
    bool stats = strcmp(which, "status") != 0;
    struct qtomo_status st;
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    int r = begin(argc, argv, g, cmd, 0, 0, &c);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    r = qtomo_status(c, stats, &st, &e);
    if (r < 0) {
        qtomo_close(c);
        return fail(&e, r);
    }
    if (g->json) {
        struct qt_jw w;

        qt_jw_init(&w);
        status_json(&w, &st, stats);
        emit_json(&w);
    } else if (strcmp(which, "workers") == 0) {
        print_workers(&st);
    } else {
        struct qtomo_server_info si;

        qtomo_server_info(c, &si);
        printf("server:   %s (protocol %u.%u), up %.0f s\n", si.server, si.proto_major,
               si.proto_minor, st.uptime_s);
        printf("workers:  %llu\n", (unsigned long long)st.n_workers);
        printf("queues:   %llu interactive, %llu batch; %llu in flight\n",
               (unsigned long long)st.queue_interactive, (unsigned long long)st.queue_batch,
               (unsigned long long)st.inflight);
        printf("cache:    %llu files, %.1f of %.1f MiB\n", (unsigned long long)st.cache_files,
               (double)st.cache_bytes / 1048576.0, (double)st.cache_budget / 1048576.0);
        if (stats) {
            printf("items:    %llu (%llu errors, %llu timeouts, %llu crashes), %llu workers "
                   "recycled\n",
                   (unsigned long long)st.items, (unsigned long long)st.errors,
                   (unsigned long long)st.timeouts, (unsigned long long)st.crashes,
                   (unsigned long long)st.recycled);
            print_workers(&st);
        }
    }
    qtomo_status_free(&st);
    qtomo_close(c);
    return QCTL_EXIT_OK;
}

int qctl_cmd_status(int argc, char **argv, struct qctl_global *g)
{
    return status_like(argc, argv, g, "status");
}

int qctl_cmd_stats(int argc, char **argv, struct qctl_global *g)
{
    return status_like(argc, argv, g, "stats");
}

int qctl_cmd_workers(int argc, char **argv, struct qctl_global *g)
{
    return status_like(argc, argv, g, "workers");
}

/* ---- ping, reload ---- */

int qctl_cmd_ping(int argc, char **argv, struct qctl_global *g)
{
    struct qtomo_server_info si;
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    double rtt = 0;
    int r = begin(argc, argv, g, qctl_find_cmd("ping"), 0, 0, &c);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    r = qtomo_ping(c, &rtt, &e);
    qtomo_server_info(c, &si);
    qtomo_close(c);
    if (r < 0)
        return fail(&e, r);
    if (g->json)
        printf("{\"server\":\"%s\",\"rtt_ms\":%.3f}\n", si.server, rtt);
    else
        printf("%s: alive, %.3f ms\n", si.server, rtt);
    return QCTL_EXIT_OK;
}

int qctl_cmd_reload(int argc, char **argv, struct qctl_global *g)
{
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    uint64_t gen = 0;
    int r = begin(argc, argv, g, qctl_find_cmd("reload"), 0, 0, &c);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    r = qtomo_reload(c, &gen, &e);
    qtomo_close(c);
    if (r < 0)
        return fail(&e, r);
    if (g->json)
        printf("{\"generation\":%llu}\n", (unsigned long long)gen);
    else if (g->verbosity >= 0)
        printf("reloaded: configuration generation %llu\n", (unsigned long long)gen);
    return QCTL_EXIT_OK;
}

/* ---- design put ---- */

int qctl_cmd_design(int argc, char **argv, struct qctl_global *g)
{
    const struct qctl_cmd *cmd = qctl_find_cmd("design");
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    char id[64], *buf = NULL;
    size_t len = 0;
    int r = begin(argc, argv, g, cmd, 2, 2, &c);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    if (strcmp(argv[optind], "put") != 0) {
        qtomo_close(c);
        qctl_err("design: unknown action '%s' (put)", argv[optind]);
        return QCTL_EXIT_USAGE;
    }
    r = qctl_read_file(argv[optind + 1], QT_DESIGNFILE_MAX_BYTES, &buf, &len);
    if (r < 0) {
        qtomo_close(c);
        qctl_err("cannot read '%s': %s", argv[optind + 1], qt_strerror(r));
        return QCTL_EXIT_USAGE;
    }
    r = qtomo_design_put(c, buf, len, id, sizeof(id), &e);
    free(buf);
    qtomo_close(c);
    if (r < 0)
        return fail(&e, r);
    printf(g->json ? "{\"id\":\"%s\"}\n" : "%s\n", id);
    return QCTL_EXIT_OK;
}

/* ---- detector put ---- */

int qctl_cmd_detector(int argc, char **argv, struct qctl_global *g)
{
    const struct qctl_cmd *cmd = qctl_find_cmd("detector");
    struct qtomo_detector_ref ref;
    struct qtomo_error e;
    qtomo_conn *c = NULL;
    char *buf = NULL, *end;
    const char *design_id;
    size_t len = 0, d;
    int r = begin(argc, argv, g, cmd, 4, 5, &c);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    if (strcmp(argv[optind], "put") != 0) {
        qtomo_close(c);
        qctl_err("detector: unknown action '%s' (put)", argv[optind]);
        return QCTL_EXIT_USAGE;
    }
    errno = 0;
    d = (size_t)strtoul(argv[optind + 3], &end, 10);
    design_id = argc - optind == 5 ? argv[optind + 4] : NULL;
    if (errno || *end || d < 2 || argv[optind + 3][0] == '-' ||
        (strcmp(argv[optind + 2], "custom") == 0) != !!design_id) {
        qtomo_close(c);
        qctl_err("detector put: give FILE DESIGN D, an integer D >= 2, and the design id after D "
                 "exactly when DESIGN is custom");
        return QCTL_EXIT_USAGE;
    }
    r = qctl_read_file(argv[optind + 1], QT_DETECTORFILE_MAX_BYTES, &buf, &len);
    if (r < 0) {
        qtomo_close(c);
        qctl_err("cannot read '%s': %s", argv[optind + 1], qt_strerror(r));
        return QCTL_EXIT_USAGE;
    }
    r = qtomo_detector_put(c, buf, len, argv[optind + 2], d, design_id, &ref, &e);
    free(buf);
    qtomo_close(c);
    if (r < 0)
        return fail(&e, r);
    if (g->json) {
        struct qt_jw w;

        qt_jw_init(&w);
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "design");
        qt_jw_str(&w, ref.design);
        if (ref.design_id[0]) {
            qt_jw_key(&w, "design_id");
            qt_jw_str(&w, ref.design_id);
        }
        kv_int(&w, "d", ref.d);
        kv_int(&w, "m", ref.m);
        if (ref.detector[0]) {
            qt_jw_key(&w, "detector");
            qt_jw_str(&w, ref.detector);
        }
        qt_jw_obj_end(&w);
        emit_json(&w);
    } else {
        printf("design %s%s%s d %zu m %zu detector %s\n", ref.design, ref.design_id[0] ? " " : "",
               ref.design_id, ref.d, ref.m, ref.detector[0] ? ref.detector : "(identity)");
    }
    return QCTL_EXIT_OK;
}

/* ---- cache ---- */

static int parse_design_d(const char *design, const char *dim, size_t *d)
{
    char *end;

    (void)design;
    errno = 0;
    *d = (size_t)strtoul(dim, &end, 10);
    if (errno || *end || *d < 2) {
        qctl_err("the dimension must be an integer >= 2, got '%s'", dim);
        return -1;
    }
    return 0;
}

static int cache_list(qtomo_conn *c, struct qctl_global *g)
{
    struct qtomo_cache_entry *e = NULL;
    struct qtomo_error err;
    size_t n = 0;
    int r = qtomo_cache_list(c, &e, &n, &err);

    if (r < 0)
        return fail(&err, r);
    if (g->json) {
        struct qt_jw w;

        qt_jw_init(&w);
        qt_jw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) {
            qt_jw_obj_begin(&w);
            qt_jw_key(&w, "name");
            qt_jw_str(&w, e[i].name);
            qt_jw_key(&w, "id");
            qt_jw_str(&w, e[i].id);
            qt_jw_key(&w, "design");
            qt_jw_str(&w, e[i].design);
            kv_int(&w, "d", e[i].d);
            kv_int(&w, "m", e[i].m);
            kv_int(&w, "bytes", e[i].bytes);
            qt_jw_key(&w, "last_use_ns");
            qt_jw_int(&w, e[i].last_use_ns);
            kv_int(&w, "mapped_by", e[i].mapped_by);
            qt_jw_obj_end(&w);
        }
        qt_jw_arr_end(&w);
        emit_json(&w);
    } else {
        printf("%-8s %5s %7s %10s %6s  %s\n", "design", "d", "m", "MiB", "maps", "file");
        for (size_t i = 0; i < n; i++)
            printf("%-8s %5llu %7llu %10.2f %6u  %s\n", e[i].design, (unsigned long long)e[i].d,
                   (unsigned long long)e[i].m, (double)e[i].bytes / 1048576.0, e[i].mapped_by,
                   e[i].name);
    }
    free(e);
    return QCTL_EXIT_OK;
}

static int cache_verify(qtomo_conn *c, struct qctl_global *g, const char *design, size_t d)
{
    struct qtomo_damaged *dm = NULL;
    struct qtomo_error err;
    uint64_t checked = 0;
    size_t n = 0;
    int r = qtomo_cache_verify(c, design, d, &checked, &dm, &n, &err);

    if (r < 0)
        return fail(&err, r);
    if (g->json) {
        struct qt_jw w;

        qt_jw_init(&w);
        qt_jw_obj_begin(&w);
        kv_int(&w, "checked", checked);
        qt_jw_key(&w, "damaged");
        qt_jw_arr_begin(&w);
        for (size_t i = 0; i < n; i++) {
            qt_jw_obj_begin(&w);
            qt_jw_key(&w, "name");
            qt_jw_str(&w, dm[i].name);
            qt_jw_key(&w, "reason");
            qt_jw_str(&w, dm[i].reason);
            qt_jw_obj_end(&w);
        }
        qt_jw_arr_end(&w);
        qt_jw_obj_end(&w);
        emit_json(&w);
    } else {
        printf("%llu file(s) checked, %zu damaged\n", (unsigned long long)checked, n);
        for (size_t i = 0; i < n; i++)
            printf("  %s: %s\n", dm[i].name, dm[i].reason);
    }
    free(dm);
    return n ? QCTL_EXIT_FAILED : QCTL_EXIT_OK;
}

int qctl_cmd_cache(int argc, char **argv, struct qctl_global *g)
{
    const struct qctl_cmd *cmd = qctl_find_cmd("cache");
    struct qtomo_error err;
    qtomo_conn *c = NULL;
    const char *act;
    size_t d = 0;
    uint64_t v = 0;
    int r = begin(argc, argv, g, cmd, 1, 3, &c), nargs;

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    act = argv[optind];
    nargs = argc - optind - 1;
    if (strcmp(act, "list") == 0 && nargs == 0) {
        r = cache_list(c, g);
    } else if (strcmp(act, "verify") == 0 && (nargs == 0 || nargs == 2)) {
        r = nargs && parse_design_d(argv[optind + 1], argv[optind + 2], &d) < 0
                ? QCTL_EXIT_USAGE
                : cache_verify(c, g, nargs ? argv[optind + 1] : NULL, d);
    } else if ((strcmp(act, "warm") == 0 || strcmp(act, "evict") == 0) && nargs == 2) {
        const char *design = argv[optind + 1];

        if (parse_design_d(design, argv[optind + 2], &d) < 0) {
            r = QCTL_EXIT_USAGE;
        } else {
            bool warm = act[0] == 'w';

            r = warm ? qtomo_cache_warm(c, &design, &d, 1, &v, &err)
                     : qtomo_cache_evict(c, design, d, &v, &err);
            if (r < 0) {
                r = fail(&err, r);
            } else {
                if (g->json)
                    printf(warm ? "{\"warmed\":%llu}\n" : "{\"bytes\":%llu}\n",
                           (unsigned long long)v);
                else
                    printf(warm ? "%llu file(s) built or checked\n" : "%llu bytes freed\n",
                           (unsigned long long)v);
                r = QCTL_EXIT_OK;
            }
        }
    } else {
        qctl_err("cache: expected 'list', 'verify [DESIGN D]', 'warm DESIGN D' or "
                 "'evict DESIGN D'");
        r = QCTL_EXIT_USAGE;
    }
    qtomo_close(c);
    return r;
}
