/* summary.csv of `qtomoctl reconstruct -o DIR`: one row per record, the columns that some record
 * fills. A run keeps each record's row as it writes the record (qctl_summary_row, from the
 * result itself) and lays out the table at the end; the rows of records already in the file (a
 * resumed run's earlier samples, or `qctl_write_summary` alone) come from parsing
 * records.jsonl with jansson. Both give the same cells, so a resumed run ends with exactly the
 * files of an uninterrupted one. */
#define _GNU_SOURCE
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "base/qt_mem.h"
#include "base/qt_status.h"
#include "io/qt_json.h"
#include "recon.h"

/* The origin's summary.csv columns (origin-digest §4.5), then what it dropped. */
static const char *const origin_cols[] = {
    "purity",         "trace",          "residual_norm",  "rank",
    "objective",      "n_iterations",   "n_evaluations",  "success",
    "status",         "min_eigenvalue", "max_eigenvalue", "condition_number",
    "eigenvalue_entropy"};

static bool is_origin_col(const char *name)
{
    for (size_t i = 0; i < QT_ARRAY_SIZE(origin_cols); i++)
        if (strcmp(origin_cols[i], name) == 0)
            return true;
    return strncmp(name, "bell_", 5) == 0;
}

/* ---- byte buffer ---- */

#define SB_MAP_FROM ((size_t)64 << 10) /* a large buffer past this goes to QT_HUGE_PAGE, mapped */

/* Grows a large buffer's mapping to cap bytes (the first time, moves it out of malloc). NULL
 * when the kernel refuses; the buffer is unchanged then. */
static char *sb_map(struct qctl_buf *b, size_t cap)
{
    void *np;

    if (b->mapped) {
        np = mremap(b->p, b->cap, cap, MREMAP_MAYMOVE);
        if (np == MAP_FAILED)
            return NULL;
        (void)madvise(np, cap, MADV_HUGEPAGE); /* the part added */
    } else {
        np = mmap(NULL, cap, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (np == MAP_FAILED)
            return NULL;
        /* Advice, before the first touch (without it, 4 kB pages). */
        (void)madvise(np, cap, MADV_HUGEPAGE);
        if (b->len)
            memcpy(np, b->p, b->len);
        free(b->p);
        b->mapped = true;
    }
    return np;
}

static char *sb_room(struct qctl_buf *b, size_t n)
{
    if (b->err)
        return NULL;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        char *np = NULL;

        while (cap - b->len < n) {
            if (cap > SIZE_MAX / 2) {
                b->err = true;
                return NULL;
            }
            cap *= 2;
        }
        if (b->large && cap > SB_MAP_FROM) {
            cap = cap > QT_HUGE_PAGE ? cap : QT_HUGE_PAGE;
            np = sb_map(b, cap);
        }
        if (!np && !b->mapped)
            np = realloc(b->p, cap);
        if (!np) {
            b->err = true;
            return NULL;
        }
        b->p = np;
        b->cap = cap;
    }
    return b->p + b->len;
}

void qctl_buf_put(struct qctl_buf *b, const void *s, size_t n)
{
    char *o = sb_room(b, n);

    if (o && n) {
        memcpy(o, s, n);
        b->len += n;
    }
}

static void sb_str(struct qctl_buf *b, const char *s)
{
    qctl_buf_put(b, s, strlen(s));
}

void qctl_buf_free(struct qctl_buf *b)
{
    if (b->mapped)
        (void)munmap(b->p, b->cap);
    else
        free(b->p);
    memset(b, 0, sizeof(*b));
}

/* ---- cells ---- */

/* A CSV field as pandas writes it: quoted when it holds a comma, a quote or a line end. */
static void csv_str(struct qctl_buf *b, const char *s)
{
    if (strpbrk(s, ",\"\n\r")) {
        qctl_buf_put(b, "\"", 1);
        for (; *s; s++) {
            if (*s == '"')
                qctl_buf_put(b, "\"", 1);
            qctl_buf_put(b, s, 1);
        }
        qctl_buf_put(b, "\"", 1);
    } else {
        sb_str(b, s);
    }
}

static void csv_int(struct qctl_buf *b, long long v)
{
    char buf[24], *p = buf + sizeof(buf);
    unsigned long long u = v < 0 ? 0 - (unsigned long long)v : (unsigned long long)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    qctl_buf_put(b, p, (size_t)(buf + sizeof(buf) - p));
}

/* A number as the record holds it: Python's repr, or nothing for null (not finite). */
static void csv_num(struct qctl_buf *b, double x, struct qt_fmt_memo *memo)
{
    char *o;

    if (isfinite(x) && (o = sb_room(b, QT_FMT_ROOM))) /* formatted in place */
        b->len += qt_fmt_double_memo(memo, x, o);
}

static void csv_value(struct qctl_buf *b, json_t *v)
{
    if (json_is_integer(v))
        csv_int(b, (long long)json_integer_value(v));
    else if (json_is_real(v))
        csv_num(b, json_real_value(v), NULL);
    else if (json_is_boolean(v))
        sb_str(b, json_is_true(v) ? "True" : "False"); /* pandas writes Python bools so */
    else if (json_is_string(v))
        csv_str(b, json_string_value(v));
}

/* ---- records without what summary.csv never reads ---- */

/* Most of a record is the density matrix and a few vectors; summary.csv reads none of them, and
 * parsing them dominated `reconstruct -o` (issue 19). So each line goes to jansson without the
 * members named here, at any depth: none of these names is a key summary.csv reads, so the
 * table comes out the same. The scan below only finds where values end; jansson still parses
 * (and validates) what is left, and a line the scan does not understand goes whole. */
static bool unread_key(const char *k, size_t n)
{
    static const char *const extra[] = {"rho", "rho_std", "amplitudes", "phases_pi"};

    for (size_t i = 0; i < QT_ARRAY_SIZE(extra); i++)
        if (strlen(extra[i]) == n && memcmp(extra[i], k, n) == 0)
            return true;
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (qt_metric_descs[i].type == QT_MTYPE_F64V && strlen(qt_metric_descs[i].name) == n &&
            memcmp(qt_metric_descs[i].name, k, n) == 0)
            return true;
    return false;
}

static const char *skip_ws(const char *p, const char *e)
{
    while (p < e && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* p at '"': past the closing quote, or NULL. */
static const char *skip_string(const char *p, const char *e)
{
    for (p++; p < e; p++) {
        if (*p == '\\')
            p++;
        else if (*p == '"')
            return p + 1;
    }
    return NULL;
}

/* Past the value at p (no leading white space), or NULL. Nesting is only counted; jansson
 * checks the rest. */
static const char *skip_value(const char *p, const char *e)
{
    int depth = 0;

    do {
        if (p >= e)
            return NULL;
        if (*p == '"') {
            if (!(p = skip_string(p, e)))
                return NULL;
            continue;
        }
        if (*p == '{' || *p == '[') {
            depth++;
        } else if (*p == '}' || *p == ']') {
            if (--depth < 0)
                return NULL;
        } else if (depth == 0) {
            while (p < e && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' &&
                   *p != '\n' && *p != '\r')
                p++; /* a number, true, false or null */
            return p;
        }
        p++;
    } while (depth > 0);
    return p;
}

/* Copies the object at *pp to *oo without the unread members. False when the text is not an
 * object as expected. */
static bool copy_pruned(const char **pp, const char *e, char **oo, int depth)
{
    const char *p = *pp;
    char *o = *oo;
    bool first = true;

    if (depth > 16 || p >= e || *p != '{')
        return false;
    *o++ = '{';
    p = skip_ws(p + 1, e);
    if (p < e && *p == '}')
        p++;
    else
        for (;;) {
            const char *k = p, *kend, *v;

            if (p >= e || *p != '"' || !(kend = skip_string(p, e)))
                return false;
            p = skip_ws(kend, e);
            if (p >= e || *p != ':')
                return false;
            v = p = skip_ws(p + 1, e);
            if (unread_key(k + 1, (size_t)(kend - k - 2))) {
                if (!(p = skip_value(p, e)))
                    return false;
            } else {
                if (!first)
                    *o++ = ',';
                first = false;
                memcpy(o, k, (size_t)(kend - k));
                o += kend - k;
                *o++ = ':';
                if (p < e && *p == '{') {
                    if (!copy_pruned(&p, e, &o, depth + 1))
                        return false;
                } else {
                    if (!(p = skip_value(v, e)))
                        return false;
                    memcpy(o, v, (size_t)(p - v));
                    o += p - v;
                }
            }
            p = skip_ws(p, e);
            if (p < e && *p == ',') {
                p = skip_ws(p + 1, e);
                continue;
            }
            if (p < e && *p == '}') {
                p++;
                break;
            }
            return false;
        }
    *o++ = '}';
    *pp = p;
    *oo = o;
    return true;
}

/* Parses one line of records.jsonl, without the unread members when the line is an object
 * the scan understands; out has room for n bytes. */
static json_t *load_record(const char *line, size_t n, char *out)
{
    const char *p = skip_ws(line, line + n), *e = line + n;
    char *o = out;

    if (copy_pruned(&p, e, &o, 0) && skip_ws(p, e) == e)
        return json_loadb(out, (size_t)(o - out), 0, NULL);
    return json_loadb(line, n, 0, NULL);
}

/* Every column summary.csv can have; a run's table has those that some record fills. */
enum {
    COL_SAMPLE,
    COL_METHOD,
    COL_DESIGN,
    COL_DESIGN_ID,
    COL_COLUMN,
    COL_DIM,
    COL_SPECTRAL,
    COL_STATUS,
    COL_ERROR_CODE,
    COL_ERROR,
    COL_TDB,
    COL_FAILED_RESAMPLES,
    COL_UNC_WARNINGS,
    COL_UNC_ERROR,
    COL_METRIC,                        /* + metric id */
    COL_UNC = COL_METRIC + _QT_MT_MAX, /* + 3 * metric id + (std, lo, hi) */
    N_COLS = COL_UNC + 3 * _QT_MT_MAX
};

static const char *const fixed_col_names[COL_METRIC] = {
    "sample", "method", "design", "design_id", "column", "dim",
    "spectral_dominant_eigenvalue", "record_status", "error_code", "error",
    "trace_distance_bound", "failed_resamples", "uncertainty_warnings", "uncertainty_error"};

/* The stored rows: per record, its cells (header, then the text) and an end marker. A cell is
 * stored when it has text, and also when empty for the columns whose presence in some record
 * puts them in the table (a metric's, spectral, a metric's error bars, the trace-distance
 * bound, failed_resamples): those have keep set. */
struct cell_hdr {
    uint32_t col, len;
};

/* Opens a cell: returns where its header is. */
static size_t cell_begin(struct qctl_buf *b, uint32_t col)
{
    struct cell_hdr h = {col, 0};
    size_t at = b->len;

    qctl_buf_put(b, &h, sizeof(h));
    return at;
}

/* Closes the cell opened at `at`: drops it when empty and not kept, else sets its length. */
static void cell_end(struct qctl_buf *b, size_t at, bool keep)
{
    struct cell_hdr h;

    if (b->err)
        return;
    if (b->len == at + sizeof(h) && !keep) {
        b->len = at;
        return;
    }
    memcpy(&h, b->p + at, sizeof(h));
    h.len = (uint32_t)(b->len - at - sizeof(h));
    memcpy(b->p + at, &h, sizeof(h));
}

static void row_end(struct qctl_buf *b)
{
    struct cell_hdr end = {N_COLS, 0};

    qctl_buf_put(b, &end, sizeof(end));
}

static void put_cell(struct qctl_buf *b, uint32_t col, json_t *v, bool keep)
{
    size_t at = cell_begin(b, col);

    csv_value(b, v);
    cell_end(b, at, keep);
}

/* The row of one parsed record. */
static void store_row(struct qctl_buf *rows, json_t *rec)
{
    static const struct {
        uint32_t col;
        const char *key;
    } top[] = {{COL_SAMPLE, "sample"}, {COL_METHOD, "method"},       {COL_DESIGN, "design"},
               {COL_DESIGN_ID, "design_id"}, {COL_COLUMN, "column"}, {COL_DIM, "dim"},
               {COL_STATUS, "status"}};
    json_t *mt = json_object_get(rec, "metrics"), *e = json_object_get(rec, "error");
    json_t *u = json_object_get(rec, "uncertainty"), *um = json_object_get(u, "metrics");
    json_t *spec = json_object_get(rec, "spectral"), *st, *wa, *x;
    size_t at, wi;

    for (size_t c = 0; c < QT_ARRAY_SIZE(top); c++)
        put_cell(rows, top[c].col, json_object_get(rec, top[c].key), false);
    for (int i = 0; i < _QT_MT_MAX; i++) {
        json_t *v;

        if (qt_metric_descs[i].type != QT_MTYPE_F64V &&
            (v = json_object_get(mt, qt_metric_descs[i].name)))
            put_cell(rows, (uint32_t)(COL_METRIC + i), v, true);
    }
    if (spec)
        put_cell(rows, COL_SPECTRAL, json_object_get(spec, "dominant_eigenvalue"), true);
    put_cell(rows, COL_ERROR_CODE, json_object_get(e, "code"), false);
    put_cell(rows, COL_ERROR, json_object_get(e, "message"), false);
    if (u) {
        for (int i = 0; i < _QT_MT_MAX; i++) {
            if (qt_metric_descs[i].type != QT_MTYPE_F64 ||
                !(st = json_object_get(um, qt_metric_descs[i].name)))
                continue;
            put_cell(rows, (uint32_t)(COL_UNC + 3 * i), json_object_get(st, "std"), true);
            put_cell(rows, (uint32_t)(COL_UNC + 3 * i + 1), json_object_get(st, "lo"), false);
            put_cell(rows, (uint32_t)(COL_UNC + 3 * i + 2), json_object_get(st, "hi"), false);
        }
        if ((x = json_object_get(u, "trace_distance_bound")))
            put_cell(rows, COL_TDB, x, true);
        put_cell(rows, COL_FAILED_RESAMPLES, json_object_get(u, "failed_resamples"), true);
        wa = json_object_get(u, "warnings");
        at = cell_begin(rows, COL_UNC_WARNINGS);
        json_array_foreach(wa, wi, x) {
            if (wi)
                qctl_buf_put(rows, " ", 1);
            csv_value(rows, x);
        }
        cell_end(rows, at, false);
        put_cell(rows, COL_UNC_ERROR, json_object_get(json_object_get(u, "error"), "message"),
                 false);
    }
    row_end(rows);
}

/* Plain printable ASCII (or NULL): its JSON string reads back as the same bytes. */
static bool plain(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return false;
    return true;
}

static void put_str_cell(struct qctl_buf *b, uint32_t col, const char *s)
{
    size_t at = cell_begin(b, col);

    if (s)
        csv_str(b, s);
    cell_end(b, at, false);
}

static void put_num_cell(struct qctl_buf *b, uint32_t col, double x, bool keep,
                         struct qt_fmt_memo *memo)
{
    size_t at = cell_begin(b, col);

    csv_num(b, x, memo);
    cell_end(b, at, keep);
}

static void put_int_cell(struct qctl_buf *b, uint32_t col, long long v, bool keep)
{
    size_t at = cell_begin(b, col);

    csv_int(b, v);
    cell_end(b, at, keep);
}

/* Whether every string the row takes from res is plain (then the row needs no JSON). */
static bool row_strings_plain(const struct qt_record_meta *meta, const struct qt_result *res)
{
    const char *base = (const char *)&res->mt;

    if (!plain(qt_method_name(res->method)) || !plain(meta->design) || !plain(meta->design_id))
        return false;
    if (res->err)
        return plain(res->errmsg);
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (qt_metric_descs[i].type == QT_MTYPE_STR &&
            qt_metrics_has(&res->mt, (enum qt_metric_id)i) &&
            !plain(*(const char *const *)(base + qt_metric_descs[i].offset)))
            return false;
    if (meta->unc) {
        for (unsigned i = 0; i < _QT_BOOT_WARN_COUNT; i++)
            if ((meta->unc->warn >> i) & 1u && !plain(qt_boot_warn_name(i)))
                return false;
        if (meta->unc->err && !plain(meta->unc->errmsg))
            return false;
    }
    return true;
}

/* The row of one result straight from it: the cells store_row gets from its record
 * (qt_record_json writes each number with qt_fmt_double, which reads back to the same double,
 * so formatting it again gives the same text). */
static void result_row(struct qctl_buf *rows, const struct qt_record_meta *meta,
                       const struct qt_result *res, struct qt_fmt_memo *memo)
{
    const struct qt_uncertainty *u = meta->unc;
    const char *base = (const char *)&res->mt;
    size_t at;
    bool first = true;

    put_int_cell(rows, COL_SAMPLE, (long long)meta->sample, false);
    put_str_cell(rows, COL_METHOD, qt_method_name(res->method));
    put_str_cell(rows, COL_DESIGN, meta->design);
    put_str_cell(rows, COL_DESIGN_ID, meta->design_id);
    put_int_cell(rows, COL_COLUMN, (long long)meta->column, false);
    put_int_cell(rows, COL_DIM, (long long)res->d, false);
    put_str_cell(rows, COL_STATUS, res->err ? "error" : "ok");
    if (res->err) {
        put_int_cell(rows, COL_ERROR_CODE, qt_status_from_err(res->err), false);
        put_str_cell(rows, COL_ERROR, res->errmsg);
        row_end(rows);
        return;
    }
    for (int i = 0; i < _QT_MT_MAX; i++) {
        const struct qt_metric_desc *md = &qt_metric_descs[i];
        const void *p = base + md->offset;
        uint32_t col = (uint32_t)(COL_METRIC + i);

        if (md->type == QT_MTYPE_F64V || !qt_metrics_has(&res->mt, (enum qt_metric_id)i))
            continue;
        switch (md->type) {
        case QT_MTYPE_F64:
            put_num_cell(rows, col, *(const double *)p, true, memo);
            break;
        case QT_MTYPE_I64:
            put_int_cell(rows, col, (long long)*(const int64_t *)p, true);
            break;
        case QT_MTYPE_BOOL:
            at = cell_begin(rows, col);
            sb_str(rows, *(const bool *)p ? "True" : "False");
            cell_end(rows, at, true);
            break;
        case QT_MTYPE_STR:
            at = cell_begin(rows, col);
            if (*(const char *const *)p)
                csv_str(rows, *(const char *const *)p);
            cell_end(rows, at, true);
            break;
        case QT_MTYPE_F64V:
            break;
        }
    }
    if (res->has_spectral)
        put_num_cell(rows, COL_SPECTRAL, res->spectral_dominant, true, memo);
    if (u) {
        if (!u->err) {
            for (int i = 0; i < _QT_MT_MAX; i++) {
                const struct qt_boot_stat *st = &u->stats[i];
                uint32_t col = (uint32_t)(COL_UNC + 3 * i);

                if (!((u->have >> i) & 1u) || qt_metric_descs[i].type != QT_MTYPE_F64)
                    continue;
                put_num_cell(rows, col, st->std, true, memo);
                put_num_cell(rows, col + 1, st->lo, false, memo);
                put_num_cell(rows, col + 2, st->hi, false, memo);
            }
            if (u->has_td_bound)
                put_num_cell(rows, COL_TDB, u->td_bound, true, memo);
        }
        put_int_cell(rows, COL_FAILED_RESAMPLES, (long long)u->failed, true);
        at = cell_begin(rows, COL_UNC_WARNINGS);
        for (unsigned i = 0; i < _QT_BOOT_WARN_COUNT; i++)
            if ((u->warn >> i) & 1u) {
                const char *name = qt_boot_warn_name(i);

                if (!first)
                    qctl_buf_put(rows, " ", 1);
                first = false;
                if (name)
                    csv_str(rows, name);
            }
        cell_end(rows, at, false);
        if (u->err)
            put_str_cell(rows, COL_UNC_ERROR, u->errmsg);
    }
    row_end(rows);
}

void qctl_summary_row(struct qctl_buf *rows, const struct qt_record_meta *meta,
                      const struct qt_result *res, const char *json, size_t len,
                      struct qt_fmt_memo *memo)
{
    char *pruned;
    json_t *rec;

    if (row_strings_plain(meta, res)) {
        result_row(rows, meta, res, memo);
        return;
    }
    if (!(pruned = malloc(len + 1))) {
        rows->err = true;
        return;
    }
    rec = load_record(json, len, pruned);
    free(pruned);
    if (!rec) {
        rows->err = true; /* cannot happen for qt_record_json's text; the caller re-reads */
        return;
    }
    store_row(rows, rec);
    json_decref(rec);
}

int qctl_summary_load(struct qctl_buf *rows, const char *dir)
{
    char path[4096], *line = NULL, *pruned = NULL;
    size_t cap = 0, pcap = 0;
    ssize_t k;
    FILE *in;

    (void)snprintf(path, sizeof(path), "%s/records.jsonl", dir);
    in = fopen(path, "re");
    if (!in) {
        int r = -errno;

        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return r;
    }
    while ((k = getline(&line, &cap, in)) > 0 && !rows->err) {
        json_t *rec;

        if ((size_t)k > pcap) {
            char *np = realloc(pruned, (size_t)k);

            if (!np) {
                rows->err = true;
                break;
            }
            pruned = np;
            pcap = (size_t)k;
        }
        rec = load_record(line, (size_t)k, pruned);
        if (!rec)
            continue; /* not a record: left out, as it always was */
        store_row(rows, rec);
        json_decref(rec);
    }
    free(line);
    free(pruned);
    (void)fclose(in);
    if (rows->err) {
        qctl_err("out of memory writing summary.csv");
        return -ENOMEM;
    }
    return 0;
}

/* The columns of the table in order: the origin's (filtered to those some record fills, as
 * it does), bell_* in qt_metric_descs order, then design and the rest. Returns the count. */
static size_t table_cols(const bool *filled, uint32_t *cols)
{
    size_t n = 0;

    cols[n++] = COL_SAMPLE;
    cols[n++] = COL_METHOD;
    for (size_t c = 0; c < QT_ARRAY_SIZE(origin_cols); c++)
        for (int i = 0; i < _QT_MT_MAX; i++)
            if (filled[COL_METRIC + i] && strcmp(qt_metric_descs[i].name, origin_cols[c]) == 0)
                cols[n++] = (uint32_t)(COL_METRIC + i);
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (filled[COL_METRIC + i] && strncmp(qt_metric_descs[i].name, "bell_", 5) == 0)
            cols[n++] = (uint32_t)(COL_METRIC + i);
    cols[n++] = COL_DESIGN;
    cols[n++] = COL_DESIGN_ID;
    cols[n++] = COL_COLUMN;
    cols[n++] = COL_DIM;
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (filled[COL_METRIC + i] && !is_origin_col(qt_metric_descs[i].name))
            cols[n++] = (uint32_t)(COL_METRIC + i);
    if (filled[COL_SPECTRAL]) /* --spectral: its scalar part; the vectors stay in the records */
        cols[n++] = COL_SPECTRAL;
    cols[n++] = COL_STATUS;
    cols[n++] = COL_ERROR_CODE;
    cols[n++] = COL_ERROR;
    /* --bootstrap: <metric>_std, _lo, _hi after the existing columns */
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (filled[COL_UNC + 3 * i])
            for (uint32_t q = 0; q < 3; q++)
                cols[n++] = (uint32_t)(COL_UNC + 3 * i) + q;
    if (filled[COL_TDB])
        cols[n++] = COL_TDB;
    if (filled[COL_FAILED_RESAMPLES]) {
        cols[n++] = COL_FAILED_RESAMPLES;
        cols[n++] = COL_UNC_WARNINGS;
        cols[n++] = COL_UNC_ERROR;
    }
    return n;
}

static void put_col_name(struct qctl_buf *b, uint32_t col)
{
    static const char *const q[] = {"_std", "_lo", "_hi"};

    if (col < COL_METRIC) {
        sb_str(b, fixed_col_names[col]);
    } else if (col < COL_UNC) {
        sb_str(b, qt_metric_descs[col - COL_METRIC].name);
    } else {
        sb_str(b, qt_metric_descs[(col - COL_UNC) / 3].name);
        sb_str(b, q[(col - COL_UNC) % 3]);
    }
}

/* The table goes to the file in pieces of this size (the whole table is as large as the rows). */
#define SUMMARY_PIECE (64u << 10)

int qctl_summary_stage(const char *dir, const struct qctl_buf *rows, struct qctl_atomic *ap)
{
    bool filled[N_COLS] = {false};
    uint32_t cols[N_COLS], cell_len[N_COLS] = {0}, set[N_COLS];
    const char *cell[N_COLS] = {NULL};
    struct qctl_buf out = {0};
    struct qctl_atomic a = {.fd = -1};
    struct cell_hdr h;
    size_t ncols;
    int r;

    *ap = a;
    if (rows->err) {
        qctl_err("out of memory writing summary.csv");
        return -ENOMEM;
    }
    for (size_t at = 0; at < rows->len; at += h.len) {
        memcpy(&h, rows->p + at, sizeof(h));
        at += sizeof(h);
        if (h.col < N_COLS)
            filled[h.col] = true;
    }
    if ((r = qctl_atomic_open(&a, dir, "summary.csv")) < 0)
        return r;
    *ap = a;
    ncols = table_cols(filled, cols);
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            qctl_buf_put(&out, ",", 1);
        put_col_name(&out, cols[c]);
    }
    qctl_buf_put(&out, "\n", 1);
    for (size_t at = 0; at < rows->len && !out.err && !a.err;) {
        size_t nset = 0;

        for (;;) {
            memcpy(&h, rows->p + at, sizeof(h));
            at += sizeof(h);
            if (h.col == N_COLS)
                break;
            cell[h.col] = rows->p + at;
            cell_len[h.col] = h.len;
            set[nset++] = h.col;
            at += h.len;
        }
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                qctl_buf_put(&out, ",", 1);
            if (cell[cols[c]])
                qctl_buf_put(&out, cell[cols[c]], cell_len[cols[c]]);
        }
        qctl_buf_put(&out, "\n", 1);
        for (size_t i = 0; i < nset; i++)
            cell[set[i]] = NULL;
        if (out.len >= SUMMARY_PIECE && !out.err) {
            qctl_atomic_write(&a, out.p, out.len);
            out.len = 0;
        }
    }
    if (!out.err)
        qctl_atomic_write(&a, out.p, out.len);
    r = 0;
    if (out.err) {
        qctl_err("out of memory writing summary.csv");
        r = -ENOMEM;
    }
    qctl_buf_free(&out);
    *ap = a;
    return r;
}

int qctl_summary_write(const char *dir, const struct qctl_buf *rows)
{
    struct qctl_atomic a;
    int r = qctl_summary_stage(dir, rows, &a);

    return a.fd < 0 ? r : qctl_atomic_commit(&a, r);
}

int qctl_write_summary(const char *dir)
{
    struct qctl_buf rows = {.large = true};
    int r = qctl_summary_load(&rows, dir);

    if (r == 0)
        r = qctl_summary_write(dir, &rows);
    qctl_buf_free(&rows);
    return r;
}
