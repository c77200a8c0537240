/* qtomoctl reconstruct's output stage: records in sample order (a reorder buffer for the
 * daemon's out-of-order results), the table or JSON lines, DIR/records.jsonl, the progress
 * bar, the final summary and DIR/run.json. */
#define _GNU_SOURCE /* open_memstream is POSIX 2008; fileno */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/qt_mem.h"
#include "io/qt_json.h"
#include "io/qt_record.h"
#include "recon.h"
#include "writer.h"

/* A sample that came before the samples ahead of it: kept until they are written. */
struct out_slot {
    char *text; /* its formatted records; NULL: not received, or written */
    size_t len;
    double pur[_QT_METHOD_MAX]; /* purity of each method's record (NaN: none) */
    struct qctl_buf rows;       /* -o: its summary.csv rows */
};

struct qctl_out {
    struct recon *rc;
    const struct qctl_global *g;
    size_t n, start, next; /* selection size, first sample of this run, next to write */
    struct out_slot *slot; /* [n - start], or NULL: samples received ahead of their turn */
    int records_fd;        /* DIR/records.jsonl, or -1 */
    struct qctl_writer *records; /* its writer (writes and fdatasyncs on a thread), or NULL */
    struct qctl_buf sum_rows; /* -o: summary.csv rows of the records in the file, in order */
    struct qctl_buf line;     /* the records of the sample written next (put_next) */
    struct qt_jw jw;
    struct qt_fmt_memo memo; /* jw's */
    /* counts */
    size_t samples_ok, samples_failed;
    size_t rec_ok[_QT_METHOD_MAX], rec_failed[_QT_METHOD_MAX];
    double purity_sum[_QT_METHOD_MAX];
    double slowest_ms;
    size_t slowest;
    /* progress bar */
    bool bar;
    size_t received;
    int64_t t0, last_draw;
    char started[40];
    int write_err;
    bool defer_flush; /* qctl_out_defer_flush: the caller flushes at the end of each burst */
    int64_t last_flush;
};

static int64_t now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* When a table column is shown. */
enum col_when { COL_ALWAYS, COL_TARGET, COL_BELL };

/* The table's value columns; with --bootstrap each shows "value ± std". */
static const struct {
    const char *head;
    enum qt_metric_id id;
    int prec;
    bool g; /* %g rather than %f */
    enum col_when when;
} table_cols[] = {
    {"purity", QT_MT_PURITY, 8, false, COL_ALWAYS},
    {"min_eig", QT_MT_MIN_EIGENVALUE, 6, true, COL_ALWAYS},
    {"max_eig", QT_MT_MAX_EIGENVALUE, 8, false, COL_ALWAYS},
    {"entropy", QT_MT_EIGENVALUE_ENTROPY, 8, false, COL_ALWAYS},
    {"fidelity", QT_MT_FIDELITY, 10, false, COL_TARGET},
    {"bell_max", QT_MT_BELL_MAX_FIDELITY, 8, false, COL_BELL}, /* the dominant Bell fidelity */
};

static bool col_shown(const struct recon *rc, size_t c)
{
    switch (table_cols[c].when) {
    case COL_TARGET:
        return rc->target != NULL;
    case COL_BELL:
        return rc->bell;
    default:
        return true;
    }
}

static int col_width(const struct recon *rc)
{
    return rc->boot.resamples ? 22 : 12;
}

/* A table cell's number: what would print as -0 (negative zero, or a negative too small for
 * the precision, such as the entropy of a pure state) prints as 0. The table only; records
 * keep the exact values. */
static int fmt_cell(char *cell, size_t size, double v, int prec, bool g)
{
    if (v == 0.0 || (!g && v < 0.0 && v > -0.5 * pow(10.0, -prec)))
        v = 0.0;
    return g ? snprintf(cell, size, "%.*g", prec, v) : snprintf(cell, size, "%.*f", prec, v);
}

static void print_table_header(FILE *f, const struct recon *rc)
{
    fprintf(f, "%-6s %-6s %-7s %-6s", "sample", "column", "method", "status");
    for (size_t c = 0; c < QT_ARRAY_SIZE(table_cols); c++)
        if (col_shown(rc, c))
            fprintf(f, " %-*s", col_width(rc), table_cols[c].head);
    fprintf(f, "  %s\n", "note");
}

static void print_row(FILE *f, const struct recon *rc, const struct qt_record_meta *meta,
                      const struct qt_result *res)
{
    const struct qt_uncertainty *u = meta->unc;

    fprintf(f, "%-6zu %-6zu %-7s %-6s", meta->sample, meta->column, qt_method_name(res->method),
            res->err ? "error" : "ok");
    for (size_t c = 0; c < QT_ARRAY_SIZE(table_cols); c++) {
        enum qt_metric_id id = table_cols[c].id;
        char cell[64] = "-";

        if (!col_shown(rc, c))
            continue;
        if (!res->err && qt_metrics_has(&res->mt, id)) { /* bell_max: "-" when d is no square */
            double v = *(const double *)((const char *)&res->mt + qt_metric_descs[id].offset);
            int k = fmt_cell(cell, sizeof(cell), v, table_cols[c].prec, table_cols[c].g);

            if (u && !u->err && ((u->have >> id) & 1u) && k > 0)
                (void)snprintf(cell + k, sizeof(cell) - (size_t)k, " ± %.2g", u->stats[id].std);
        }
        fprintf(f, " %-*s", col_width(rc), cell);
    }
    fprintf(f, " ");
    if (res->err)
        fprintf(f, " %s", res->errmsg);
    for (unsigned i = 0; !res->err && i < _QT_WARN_COUNT; i++)
        if (res->warnings & (1u << i))
            fprintf(f, " %s", qt_warning_name(i));
    if (u && !res->err && u->err)
        fprintf(f, " error bars: %s", u->errmsg);
    for (unsigned i = 0; u && !res->err && i < _QT_BOOT_WARN_COUNT; i++)
        if (u->warn & (1u << i))
            fprintf(f, " %s", qt_boot_warn_name(i));
    fprintf(f, "\n");
}

static void write_run_json(struct qctl_out *o, bool complete, double elapsed_ms);

static bool to_stdout_table(const struct qctl_out *o)
{
    return !o->rc->outdir && !o->rc->json;
}

int qctl_out_open(struct qctl_out **ret, struct recon *rc, const struct qctl_global *g, size_t n,
                  size_t start)
{
    struct qctl_out *o = calloc(1, sizeof(*o));

    *ret = NULL;
    if (!o) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    o->records_fd = -1;
    o->rc = rc;
    o->g = g;
    o->n = n;
    o->start = o->next = start;
    o->slowest = SIZE_MAX;
    o->sum_rows.large = true;
    qt_jw_init(&o->jw);
    o->jw.memo = &o->memo;
    o->t0 = o->last_draw = o->last_flush = now_ms();
    qctl_iso_now(o->started);
    if (rc->outdir && start == 0)
        write_run_json(o, false, 0.0); /* first: --resume checks the records against it */
    if (rc->outdir) {
        char path[4096];
        int fd;

        (void)snprintf(path, sizeof(path), "%s/records.jsonl", rc->outdir);
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (start ? 0 : O_TRUNC), 0644);
        if (fd < 0) {
            qctl_err("cannot write '%s': %s", path, strerror(errno));
            qctl_out_free(o);
            return QCTL_EXIT_FAILED;
        }
        o->records_fd = fd;
        /* The writes, and an fdatasync every few MB, on a thread of their own (writer.h): the
         * final fsync then waits for the last few MB instead of the whole file (on this VM's
         * disk ~0.8 ms per MB, 14-18 ms of a 20,000-sample run), and the copy of 26 MB into
         * the page cache overlaps the computing. */
        int r = qctl_writer_start(&o->records, fd, QCTL_OUT_WRITEBACK);

        if (r < 0) {
            qctl_err("cannot start writing '%s': %s", path, strerror(-r));
            qctl_out_free(o);
            return QCTL_EXIT_FAILED;
        }
        /* summary.csv's rows: those of the records --resume kept, then this run's as written */
        if (start > 0 && qctl_summary_load(&o->sum_rows, rc->outdir) < 0) {
            qctl_out_free(o);
            return QCTL_EXIT_FAILED;
        }
    }
    o->bar = g->verbosity >= 0 && isatty(STDERR_FILENO) && (rc->outdir || !isatty(STDOUT_FILENO));
    if (to_stdout_table(o))
        print_table_header(stdout, rc);
    *ret = o;
    return 0;
}

static void draw_bar(struct qctl_out *o, bool final)
{
    int64_t t = now_ms();
    size_t total = o->n - o->start, done = o->received;
    double el = (double)(t - o->t0) / 1e3, rate = el > 0 ? (double)done / el : 0.0;
    int width = 30, fill = total ? (int)((double)width * (double)done / (double)total) : width;
    char eta[32] = "--:--";

    if (!o->bar || (!final && t - o->last_draw < 200))
        return;
    o->last_draw = t;
    if (rate > 0 && done < total) {
        long s = (long)((double)(total - done) / rate);

        (void)snprintf(eta, sizeof(eta), "%ld:%02ld", s / 60, s % 60);
    }
    fprintf(stderr, "\r[%.*s%*s] %zu/%zu  %.1f samples/s  ETA %s ", fill,
            "##############################", width - fill, "", done, total, rate, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

void qctl_out_progress(struct qctl_out *o, uint64_t done, uint64_t total)
{
    (void)total;
    if (done > o->received)
        o->received = (size_t)done;
    draw_bar(o, false);
    if (o->defer_flush) /* the daemon's progress comes every interval, results or not */
        (void)qctl_out_flush(o);
}

/* Writing stdout failed with err (negative): the records are cut. Sets and returns write_err,
 * printed once. */
static int stdout_failed(struct qctl_out *o, int err)
{
    if (!o->write_err) {
        o->write_err = err;
        qctl_err("cannot write records: %s", strerror(-o->write_err));
    }
    return o->write_err;
}

static int write_out(struct qctl_out *o, const char *s, size_t len)
{
    int r = 0;

    if (o->records)
        r = qctl_writer_put(o->records, s, len);
    else if (fwrite(s, 1, len, stdout) != len)
        r = errno ? -errno : -EIO;
    if (r < 0 && !o->write_err) {
        o->write_err = r;
        qctl_err("cannot write records: %s", strerror(-r));
    }
    return r < 0 ? o->write_err : 0;
}

/* Writes the samples waiting in order; any: one was just written without them. */
static int flush_ready(struct qctl_out *o, bool any)
{
    while (o->slot && o->next < o->n && o->slot[o->next - o->start].text) {
        struct out_slot *sl = &o->slot[o->next - o->start];
        int r = write_out(o, sl->text, sl->len);

        free(sl->text);
        sl->text = NULL;
        if (o->rc->outdir && r == 0) {
            qctl_buf_put(&o->sum_rows, sl->rows.p, sl->rows.len);
            o->sum_rows.err |= sl->rows.err;
        }
        qctl_buf_free(&sl->rows);
        /* Sums in sample order: the same means whatever order results arrived in. */
        for (int m = 0; m < _QT_METHOD_MAX; m++)
            if (!isnan(sl->pur[m]))
                o->purity_sum[m] += sl->pur[m];
        o->next++;
        any = true;
        if (r < 0)
            return r;
    }
    /* One flush per run of samples (or per burst, see qctl_out_defer_flush). A line cut by a
     * crash is dropped by --resume. */
    if (any && (!o->defer_flush || now_ms() - o->last_flush >= QCTL_OUT_FLUSH_MS))
        return qctl_out_flush(o);
    return o->write_err;
}

void qctl_out_defer_flush(struct qctl_out *o, bool defer)
{
    o->defer_flush = defer;
}

int qctl_out_flush(struct qctl_out *o)
{
    o->last_flush = now_ms();
    int r;

    if (!o->records) {
        if (fflush(stdout) != 0)
            return stdout_failed(o, errno ? -errno : -EIO);
        return ferror(stdout) ? stdout_failed(o, -EIO) : o->write_err;
    }
    r = qctl_writer_flush(o->records);
    if (r < 0 && !o->write_err) {
        o->write_err = r;
        qctl_err("cannot write records: %s", strerror(-r));
    }
    return o->write_err;
}

int qctl_out_sample(struct qctl_out *o, size_t sample, const struct qt_result *const *res,
                    size_t n_res, double ms)
{
    return qctl_out_sample_unc(o, sample, res, NULL, n_res, ms);
}

/* Formats a sample's records: table rows to f, or JSON lines appended to text and, with -o,
 * summary.csv rows appended to rows; fm gets the purities and the ok/failed bits. */
static void format_parts(const struct recon *rc, struct qt_jw *jw, size_t sample,
                         const struct qt_result *const *res,
                         const struct qt_uncertainty *const *unc, size_t n_res, FILE *f,
                         struct qctl_buf *text, struct qctl_buf *rows, struct qctl_fmt *fm)
{
    struct qt_record_meta meta = {sample,
                                  rc->first + sample + 1,
                                  rc->design_name,
                                  rc->design_id[0] ? rc->design_id : NULL,
                                  rc->detector_id[0] ? rc->detector_id : NULL,
                                  NULL};

    if (rc->live)
        meta.column = sample + 1; /* the input line */
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        fm->pur[m] = NAN;
    for (size_t i = 0; i < n_res; i++) {
        const struct qt_result *r = res[i];
        int m = (int)r->method;

        meta.unc = unc && !r->err ? unc[i] : NULL;
        if (r->err) {
            fm->failed |= 1u << m;
        } else {
            fm->ok |= 1u << m;
            fm->pur[m] = r->mt.purity;
        }
        if (f) {
            print_row(f, rc, &meta, r);
        } else {
            qt_jw_reset(jw);
            qt_record_json(jw, &meta, r);
            if (jw->err == 0) {
                qctl_buf_put(text, jw->buf, jw->len);
                qctl_buf_put(text, "\n", 1);
                if (rc->outdir)
                    qctl_summary_row(rows, &meta, r, jw->buf, jw->len, jw->memo);
            }
        }
    }
}

int qctl_out_format(const struct recon *rc, struct qt_jw *jw, size_t sample,
                    const struct qt_result *const *res, const struct qt_uncertainty *const *unc,
                    size_t n_res, struct qctl_fmt *fm)
{
    bool table = !rc->outdir && !rc->json;
    struct qctl_buf text = {0}; /* JSON lines are copied here; table rows go through f */
    FILE *f = NULL;

    *fm = (struct qctl_fmt){0};
    if (table && !(f = open_memstream(&fm->text, &fm->len))) {
        qctl_err("out of memory");
        return -ENOMEM;
    }
    format_parts(rc, jw, sample, res, unc, n_res, f, &text, &fm->rows, fm);
    if (table ? fclose(f) != 0 || !fm->text : text.err || !(text.p || (text.p = malloc(1)))) {
        qctl_buf_free(&text);
        qctl_fmt_free(fm);
        qctl_err("out of memory");
        return -ENOMEM;
    }
    if (!table) {
        /* The caller's now, at its size: samples waiting in the reorder slots keep it. */
        char *p = realloc(text.p, text.len + 1);

        fm->text = p ? p : text.p;
        fm->len = text.len;
    }
    return 0;
}

void qctl_fmt_free(struct qctl_fmt *f)
{
    free(f->text);
    qctl_buf_free(&f->rows);
    *f = (struct qctl_fmt){0};
}

/* Whether a sample's records are still to come: in this run's range, not written yet and not
 * waiting in its slot (a duplicate is never written twice). */
static bool out_wanted(const struct qctl_out *o, size_t sample)
{
    return sample >= o->next && sample < o->n && !(o->slot && o->slot[sample - o->start].text);
}

/* Counts a sample's records. */
static void account(struct qctl_out *o, size_t sample, const struct qctl_fmt *f, double ms)
{
    for (int m = 0; m < _QT_METHOD_MAX; m++) {
        o->rec_ok[m] += (f->ok >> m) & 1u;
        o->rec_failed[m] += (f->failed >> m) & 1u;
    }
    if (f->failed)
        o->samples_failed++;
    else
        o->samples_ok++;
    if (ms > o->slowest_ms) {
        o->slowest_ms = ms;
        o->slowest = sample;
    }
    o->received++;
}

/* The sample to write next (a local run's every sample, most of the daemon's): formatted
 * straight into the stream (the table) or into a buffer kept for the run, its summary.csv rows
 * straight into the run's, and written, without the reorder slot's allocations (a malloc, a
 * realloc and two frees per sample, each behind the arena's lock once the writer's thread
 * runs). Then the samples that waited for it. */
static int put_next(struct qctl_out *o, size_t sample, const struct qt_result *const *res,
                    const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    bool table = to_stdout_table(o);
    struct qctl_fmt f = {0};
    int r = 0;

    o->line.len = 0;
    format_parts(o->rc, &o->jw, sample, res, unc, n_res, table ? stdout : NULL, &o->line,
                 &o->sum_rows, &f);
    account(o, sample, &f, ms);
    if (o->line.err) { /* the run stops; summary.csv is then read back from the file */
        if (!o->write_err)
            qctl_err("out of memory");
        o->write_err = o->write_err ? o->write_err : -ENOMEM;
        return o->write_err;
    }
    if (!table)
        r = write_out(o, o->line.p, o->line.len);
    else if (ferror(stdout)) /* glibc drops a buffer it could not write: say so now */
        r = stdout_failed(o, errno ? -errno : -EIO);
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (!isnan(f.pur[m]))
            o->purity_sum[m] += f.pur[m];
    o->next++;
    draw_bar(o, false);
    return r < 0 ? r : flush_ready(o, true);
}

int qctl_out_sample_unc(struct qctl_out *o, size_t sample, const struct qt_result *const *res,
                        const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    struct qctl_fmt f;
    int r;

    if (!o->rc->live && !out_wanted(o, sample))
        return 0; /* not ours, or a duplicate: never written twice */
    if (!o->rc->live && sample == o->next)
        return put_next(o, sample, res, unc, n_res, ms);
    r = qctl_out_format(o->rc, &o->jw, sample, res, unc, n_res, &f);
    return r < 0 ? r : qctl_out_put(o, sample, &f, ms);
}

int qctl_out_put(struct qctl_out *o, size_t sample, struct qctl_fmt *f, double ms)
{
    if (!o->rc->live && !out_wanted(o, sample)) {
        qctl_fmt_free(f);
        return 0; /* not ours, or a duplicate: never written twice */
    }
    account(o, sample, f, ms);
    if (o->rc->live) {
        int r = write_out(o, f->text, f->len);

        for (int m = 0; m < _QT_METHOD_MAX; m++)
            if (!isnan(f->pur[m]))
                o->purity_sum[m] += f->pur[m];
        qctl_fmt_free(f);
        if (r == 0 && fflush(stdout) != 0)
            r = -errno;
        return r;
    }
    /* The reorder slots, at the first sample that comes ahead of its turn (a local run, in
     * order, never needs them): one allocation, in huge pages when large, as a slot is touched
     * once per sample. --live writes each sample as it comes: no slots. */
    if (!o->slot && !(o->slot = qt_zalloc_huge(o->n - o->start, sizeof(*o->slot)))) {
        qctl_fmt_free(f);
        if (!o->write_err)
            qctl_err("out of memory");
        o->write_err = o->write_err ? o->write_err : -ENOMEM;
        return o->write_err;
    }
    struct out_slot *sl = &o->slot[sample - o->start];

    sl->text = f->text;
    sl->len = f->len;
    memcpy(sl->pur, f->pur, sizeof(f->pur));
    sl->rows = f->rows; /* empty without -o */
    *f = (struct qctl_fmt){0};
    draw_bar(o, false);
    return flush_ready(o, false);
}

static void write_run_json(struct qctl_out *o, bool complete, double elapsed_ms)
{
    struct recon *rc = o->rc;
    struct qt_jw *w = &o->jw;
    char ended[40], *opts = qctl_options_json(rc);

    qctl_iso_now(ended);
    qt_jw_reset(w);
    qt_jw_obj_begin(w);
    qt_jw_key(w, "input");
    qt_jw_str(w, rc->file);
    qt_jw_key(w, "input_sha256");
    qt_jw_str(w, rc->input_sha256);
    qt_jw_key(w, "mode");
    qt_jw_str(w, rc->mode ? rc->mode : rc->local ? "local" : "daemon");
    qt_jw_key(w, "versions");
    qt_jw_obj_begin(w);
    qt_jw_key(w, "qtomoctl");
    qt_jw_str(w, QTOMO_VERSION);
    if (!rc->local) {
        qt_jw_key(w, "server");
        qt_jw_str(w, rc->server);
    }
    qt_jw_obj_end(w);
    qt_jw_key(w, "started");
    qt_jw_str(w, o->started);
    qt_jw_key(w, "finished");
    qt_jw_str(w, ended);
    qt_jw_key(w, "complete");
    qt_jw_bool(w, complete);
    qt_jw_key(w, "resumed_at_sample");
    qt_jw_int(w, (int64_t)o->start);
    qt_jw_key(w, "counts");
    qt_jw_obj_begin(w);
    qt_jw_key(w, "samples");
    qt_jw_int(w, (int64_t)o->n);
    qt_jw_key(w, "samples_this_run");
    qt_jw_int(w, (int64_t)(o->samples_ok + o->samples_failed));
    qt_jw_key(w, "samples_ok");
    qt_jw_int(w, (int64_t)o->samples_ok);
    qt_jw_key(w, "samples_failed");
    qt_jw_int(w, (int64_t)o->samples_failed);
    qt_jw_obj_end(w);
    qt_jw_key(w, "elapsed_ms");
    qt_jw_num(w, elapsed_ms);
    qt_jw_key(w, "methods");
    qt_jw_obj_begin(w);
    for (int m = 0; m < _QT_METHOD_MAX; m++) {
        if (!rc->methods[m])
            continue;
        qt_jw_key(w, qt_method_name((enum qt_method)m));
        qt_jw_obj_begin(w);
        qt_jw_key(w, "ok");
        qt_jw_int(w, (int64_t)o->rec_ok[m]);
        qt_jw_key(w, "failed");
        qt_jw_int(w, (int64_t)o->rec_failed[m]);
        qt_jw_key(w, "mean_purity");
        if (o->rec_ok[m])
            qt_jw_num(w, o->purity_sum[m] / (double)o->rec_ok[m]);
        else
            qt_jw_null(w);
        qt_jw_obj_end(w);
    }
    qt_jw_obj_end(w);
    qt_jw_obj_end(w);
    if (w->err == 0 && opts) {
        /* Splice the options object in before the closing brace. */
        size_t l = w->len - 1, ol = strlen(opts);
        char *doc = malloc(l + ol + 16);

        if (doc) {
            int n = snprintf(doc, l + ol + 16, "%.*s,\"options\":%s}\n", (int)l, w->buf, opts);

            if (qctl_write_atomic(rc->outdir, "run.json", doc, (size_t)n) < 0)
                o->write_err = -EIO;
            free(doc);
        }
    }
    free(opts);
}

static bool h5_exists(const char *dir)
{
    char path[4096];

    (void)snprintf(path, sizeof(path), "%s/results.h5", dir);
    return access(path, F_OK) == 0;
}

int qctl_out_finish(struct qctl_out *o, bool complete, double elapsed_ms)
{
    struct recon *rc = o->rc;
    size_t fails = 0, oks = 0, done = o->samples_ok + o->samples_failed;
    bool summary;

    if (o->bar && done)
        draw_bar(o, true);
    /* Records still in the stream's buffer (deferred flushes) go out, and are checked, before
     * the summary on stderr. */
    (void)qctl_out_flush(o);
    /* summary.csv from the rows kept as records were written, laid out into its temporary file
     * while the writer writes the last of records.jsonl and fsyncs it; it takes its name after
     * records.jsonl is on disk. When writing failed, the file may hold other records than those
     * rows: it is read back instead. */
    struct qctl_atomic sum = {.fd = -1};
    bool staged = o->records && o->write_err == 0 && !o->sum_rows.err;
    int rec_fd = o->records_fd;
    int sum_r = 0;

    if (staged) {
        qctl_writer_end(o->records);
        sum_r = qctl_summary_stage(rc->outdir, &o->sum_rows, &sum);
    }
    if (o->records) {
        int r = qctl_writer_stop(o->records); /* 0: written, and on disk (its final fsync) */

        o->records = NULL;
        if (r < 0 && !o->write_err) {
            qctl_err("cannot write records: %s", strerror(-r));
            o->write_err = r;
        }
    }
    if (rec_fd >= 0) {
        int r;

        if (staged && o->write_err == 0) {
            r = sum.fd >= 0 ? qctl_atomic_commit(&sum, sum_r) : sum_r;
        } else {
            if (sum.fd >= 0)
                (void)qctl_atomic_commit(&sum, o->write_err); /* drops the temporary file */
            r = qctl_write_summary(rc->outdir);
        }
        if (r < 0)
            o->write_err = -EIO;
        write_run_json(o, complete, elapsed_ms);
        /* After run.json, whose content it carries. A results.h5 of an earlier --hdf5 run is
         * rebuilt too, so that it never describes fewer records than records.jsonl. */
        if ((rc->hdf5 || h5_exists(rc->outdir)) && qctl_write_h5(rc->outdir) < 0)
            o->write_err = -EIO;
    }
    for (int m = 0; m < _QT_METHOD_MAX; m++) {
        fails += o->rec_failed[m];
        oks += o->rec_ok[m];
    }
    summary = o->g->verbosity >= 0 && (rc->outdir || isatty(STDERR_FILENO) || o->g->verbosity > 0);
    if (summary) {
        /* After a write error the counts are of samples computed: the output holds records
         * for fewer of them (a full disk left 46 of 51 and a cut line). */
        fprintf(stderr, "%zu sample(s)%s%s: %zu ok, %zu failed, in %.2f s\n", done,
                o->start ? " (resumed)" : "", o->write_err ? " computed" : "", o->samples_ok,
                o->samples_failed, elapsed_ms / 1e3);
        for (int m = 0; m < _QT_METHOD_MAX; m++) {
            if (!rc->methods[m])
                continue;
            fprintf(stderr, "  %-7s mean purity ", qt_method_name((enum qt_method)m));
            if (o->rec_ok[m])
                fprintf(stderr, "%.6f", o->purity_sum[m] / (double)o->rec_ok[m]);
            else
                fprintf(stderr, "-");
            fprintf(stderr, "  (%zu ok, %zu failed)\n", o->rec_ok[m], o->rec_failed[m]);
        }
        if (o->slowest != SIZE_MAX)
            fprintf(stderr, "  slowest sample: %zu (column %zu), %.1f ms\n", o->slowest,
                    rc->first + o->slowest + 1, o->slowest_ms);
        if (rc->outdir && o->write_err)
            fprintf(stderr, "  output: %s is incomplete: writing to it failed (above)\n",
                    rc->outdir);
        else if (rc->outdir)
            fprintf(stderr, "  output: %s/records.jsonl, %s/summary.csv, %s/run.json%s%s%s\n",
                    rc->outdir, rc->outdir, rc->outdir, rc->hdf5 ? ", " : "",
                    rc->hdf5 ? rc->outdir : "", rc->hdf5 ? "/results.h5" : "");
    }
    if (rc->outdir && o->write_err)
        qctl_err("writing to '%s' failed; once it can be written, run again with --resume to "
                 "finish",
                 rc->outdir);
    else if (!complete && rc->outdir)
        qctl_err("interrupted after %zu of %zu samples; run again with --resume to finish", o->next,
                 o->n);
    if (o->write_err)
        return QCTL_EXIT_FAILED;
    if (fails) {
        qctl_err("%zu of %zu records failed", fails, fails + oks);
        return QCTL_EXIT_FAILED;
    }
    return complete ? QCTL_EXIT_OK : QCTL_EXIT_FAILED;
}

void qctl_out_free(struct qctl_out *o)
{
    if (!o)
        return;
    (void)qctl_writer_stop(o->records); /* before its file is closed */
    if (o->records_fd >= 0)
        (void)close(o->records_fd);
    if (o->slot)
        for (size_t i = 0; i < o->n - o->start; i++) {
            free(o->slot[i].text);
            qctl_buf_free(&o->slot[i].rows);
        }
    qctl_buf_free(&o->sum_rows);
    qctl_buf_free(&o->line);
    free(o->slot);
    qt_jw_done(&o->jw);
    free(o);
}
