/* The files of `qtomoctl reconstruct -o DIR`: crash-safe whole-file writes, the input's
 * SHA-256 (nettle), --resume's scan of records.jsonl, and summary.csv rebuilt from the records
 * (jansson), so that a resumed run ends with exactly the files of an uninterrupted one. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <nettle/sha2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "io/qt_json.h"
#include "num/qt_optdesc.h"
#include "recon.h"

void qctl_iso_now(char buf[40])
{
    struct timespec ts;
    struct tm tm;

    (void)clock_gettime(CLOCK_REALTIME, &ts);
    (void)gmtime_r(&ts.tv_sec, &tm);
    (void)strftime(buf, 40, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

int qctl_sha256_file(const char *path, char hex[65])
{
    struct sha256_ctx ctx;
    uint8_t dig[SHA256_DIGEST_SIZE], buf[65536];
    ssize_t n;
    int fd;

    hex[0] = '\0';
    if (strcmp(path, "-") == 0)
        return 0;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    sha256_init(&ctx);
    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            int r = -errno;
            (void)close(fd);
            return r;
        }
        sha256_update(&ctx, (size_t)n, buf);
    }
    (void)close(fd);
    sha256_digest(&ctx, sizeof(dig), dig);
    for (size_t i = 0; i < sizeof(dig); i++)
        (void)snprintf(hex + 2 * i, 3, "%02x", dig[i]);
    return 0;
}

int qctl_write_atomic(const char *dir, const char *name, const char *data, size_t len)
{
    char tmp[4096], dst[4096];
    int fd, dfd, r = 0;

    (void)snprintf(tmp, sizeof(tmp), "%s/.%s.tmp", dir, name);
    (void)snprintf(dst, sizeof(dst), "%s/%s", dir, name);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        qctl_err("cannot write '%s': %s", tmp, strerror(errno));
        return -errno;
    }
    for (size_t off = 0; off < len;) {
        ssize_t n = write(fd, data + off, len - off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            break;
        }
        off += (size_t)n;
    }
    if (r == 0 && fsync(fd) != 0)
        r = -errno;
    if (close(fd) != 0 && r == 0)
        r = -errno;
    if (r == 0 && rename(tmp, dst) != 0)
        r = -errno;
    if (r < 0) {
        qctl_err("cannot write '%s': %s", dst, strerror(-r));
        (void)unlink(tmp);
        return r;
    }
    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        (void)fsync(dfd);
        (void)close(dfd);
    }
    return 0;
}

char *qctl_options_json(const struct recon *rc)
{
    struct qt_jw w;
    char *out = NULL;

    qt_jw_init(&w);
    qt_jw_obj_begin(&w);
    qt_jw_key(&w, "design");
    qt_jw_str(&w, rc->design_name);
    if (rc->design_id[0]) {
        qt_jw_key(&w, "design_id");
        qt_jw_str(&w, rc->design_id);
    }
    if (rc->detector_file) { /* only with --detector, so that older runs still --resume */
        qt_jw_key(&w, "detector");
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "path");
        qt_jw_str(&w, rc->detector_file);
        qt_jw_key(&w, "sha256");
        qt_jw_str(&w, rc->detector_sha256);
        qt_jw_key(&w, "id");
        if (rc->detector_id[0])
            qt_jw_str(&w, rc->detector_id);
        else
            qt_jw_null(&w); /* the identity model: no detector */
        qt_jw_obj_end(&w);
    }
    qt_jw_key(&w, "dim");
    qt_jw_int(&w, (int64_t)rc->d);
    qt_jw_key(&w, "columns");
    qt_jw_arr_begin(&w);
    qt_jw_int(&w, (int64_t)rc->first + 1);
    qt_jw_int(&w, (int64_t)rc->last + 1);
    qt_jw_arr_end(&w);
    qt_jw_key(&w, "methods");
    qt_jw_arr_begin(&w);
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (rc->methods[m])
            qt_jw_str(&w, qt_method_name((enum qt_method)m));
    qt_jw_arr_end(&w);
    for (size_t i = 0; i < qt_optdesc_count; i++) {
        const struct qt_optdesc *e = &qt_optdescs[i];
        double v = qt_optdesc_get(e, &rc->opts);

        qt_jw_key(&w, e->name);
        if (e->type == QT_OPT_FLAG)
            qt_jw_bool(&w, v != 0.0);
        else
            qt_jw_num(&w, v);
    }
    qt_jw_key(&w, "physical");
    qt_jw_str(&w, rc->opts.physical == QT_PHYS_SMOLIN ? "smolin" : "clip");
    qt_jw_key(&w, "bell");
    qt_jw_bool(&w, rc->bell);
    if (rc->spectral) { /* only when on, so that older runs still --resume */
        qt_jw_key(&w, "spectral");
        qt_jw_bool(&w, true);
    }
    if (rc->boot.resamples) {
        qt_jw_key(&w, "bootstrap");
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "resamples");
        qt_jw_int(&w, rc->boot.resamples);
        qt_jw_key(&w, "kind");
        qt_jw_str(&w, qt_resample_kind_name(rc->boot.kind));
        qt_jw_key(&w, "seed");
        qt_jw_int(&w, (int64_t)rc->boot.seed);
        qt_jw_key(&w, "confidence");
        qt_jw_num(&w, rc->boot.confidence);
        qt_jw_key(&w, "shots");
        qt_jw_int(&w, (int64_t)rc->boot.shots);
        qt_jw_obj_end(&w);
    }
    qt_jw_key(&w, "target");
    if (rc->target_profile) {
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "profile");
        qt_jw_str(&w, rc->target_profile);
        qt_jw_obj_end(&w);
    } else if (rc->target_file) {
        char hex[65];

        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "path");
        qt_jw_str(&w, rc->target_file);
        qt_jw_key(&w, "sha256");
        qt_jw_str(&w, qctl_sha256_file(rc->target_file, hex) == 0 ? hex : "");
        qt_jw_obj_end(&w);
    } else {
        qt_jw_null(&w);
    }
    qt_jw_obj_end(&w);
    if (w.err == 0)
        out = strdup(w.buf);
    qt_jw_done(&w);
    return out;
}

static json_t *load_json(const char *dir, const char *name)
{
    char path[4096];

    (void)snprintf(path, sizeof(path), "%s/%s", dir, name);
    return json_load_file(path, 0, NULL);
}

int qctl_resume_seed(const char *dir, uint64_t *seed)
{
    char path[4096];
    json_t *run, *v;
    int r = -ENOENT;

    (void)snprintf(path, sizeof(path), "%s/run.json", dir);
    run = json_load_file(path, 0, NULL);
    v = json_object_get(json_object_get(json_object_get(run, "options"), "bootstrap"), "seed");
    if (json_is_integer(v) && json_integer_value(v) >= 0) {
        *seed = (uint64_t)json_integer_value(v);
        r = 0;
    }
    json_decref(run);
    return r;
}

int qctl_resume_scan(const struct recon *rc, const char *options_json, size_t *ret_done)
{
    char path[4096], *line = NULL;
    size_t cap = 0, done = 0, count = 0, cur = SIZE_MAX;
    off_t keep = 0, pos = 0;
    json_t *run = load_json(rc->outdir, "run.json"), *opts = NULL;
    ssize_t n;
    FILE *f;
    int ret = 0;

    *ret_done = 0;
    (void)snprintf(path, sizeof(path), "%s/records.jsonl", rc->outdir);
    f = fopen(path, "r+e");
    if (!f) {
        json_decref(run);
        if (errno == ENOENT)
            return 0; /* nothing to resume: a fresh run */
        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return QCTL_EXIT_USAGE;
    }
    /* The same input and options, or the records would mix two different runs. A run writes
     * run.json before its first record, so records without it cannot be checked. */
    if (!run) {
        int c = fgetc(f);

        if (c != EOF) {
            qctl_err("'%s' has records but no readable run.json: cannot check that they belong "
                     "to this input and these options",
                     rc->outdir);
            ret = QCTL_EXIT_USAGE;
            goto out;
        }
        rewind(f);
    } else {
        const char *sha = json_string_value(json_object_get(run, "input_sha256"));

        opts = json_loads(options_json, 0, NULL);
        if ((sha && *sha && rc->input_sha256[0] && strcmp(sha, rc->input_sha256) != 0) ||
            (opts && !json_equal(opts, json_object_get(run, "options")))) {
            qctl_err("'%s' holds a run of %s; --resume needs the same input and options "
                     "(see %s/run.json)",
                     rc->outdir, sha && strcmp(sha, rc->input_sha256) != 0
                                     ? "another input file" : "other options",
                     rc->outdir);
            ret = QCTL_EXIT_USAGE;
            goto out;
        }
    }
    /* Records are written in sample order, whole samples at a time; trust the longest prefix
     * of complete lines that holds every method of each sample. */
    while ((n = getline(&line, &cap, f)) > 0) {
        json_t *rec;
        json_int_t s;

        if (line[n - 1] != '\n')
            break; /* cut short by the interruption */
        rec = json_loadb(line, (size_t)n, 0, NULL);
        if (!rec || !json_is_integer(json_object_get(rec, "sample"))) {
            json_decref(rec);
            break;
        }
        s = json_integer_value(json_object_get(rec, "sample"));
        json_decref(rec);
        if (cur != SIZE_MAX && s >= 0 && (size_t)s == cur && count < rc->n_methods) {
            count++;
        } else if ((cur == SIZE_MAX && s == 0) ||
                   (cur != SIZE_MAX && s >= 0 && (size_t)s == cur + 1 &&
                    count == rc->n_methods)) {
            cur = (size_t)s;
            count = 1;
        } else {
            break;
        }
        pos += n;
        if (count == rc->n_methods) {
            done = cur + 1;
            keep = pos;
        }
    }
    if (fflush(f) != 0 || ftruncate(fileno(f), keep) != 0) {
        qctl_err("cannot truncate '%s': %s", path, strerror(errno));
        ret = QCTL_EXIT_FAILED;
        goto out;
    }
    *ret_done = done;
out:
    free(line);
    (void)fclose(f);
    json_decref(opts);
    json_decref(run);
    return ret;
}

/* ---- summary.csv ---- */

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

/* A growable byte buffer; the first allocation failure sticks (err). */
struct sbuf {
    char *p;
    size_t len, cap;
    bool err;
};

static char *sb_room(struct sbuf *b, size_t n)
{
    if (b->err)
        return NULL;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 4096;
        char *np;

        while (cap - b->len < n)
            cap *= 2;
        if (!(np = realloc(b->p, cap))) {
            b->err = true;
            return NULL;
        }
        b->p = np;
        b->cap = cap;
    }
    return b->p + b->len;
}

static void sb_put(struct sbuf *b, const void *s, size_t n)
{
    char *o = sb_room(b, n);

    if (o) {
        memcpy(o, s, n);
        b->len += n;
    }
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void csv_value(struct sbuf *b, json_t *v)
{
    char buf[40];

    if (json_is_integer(v)) {
        int n = snprintf(buf, sizeof(buf), "%lld", (long long)json_integer_value(v));

        sb_put(b, buf, (size_t)n);
    } else if (json_is_real(v)) {
        sb_put(b, buf, qt_fmt_double(json_real_value(v), buf, sizeof(buf)));
    } else if (json_is_boolean(v)) {
        sb_str(b, json_is_true(v) ? "True" : "False"); /* pandas writes Python bools so */
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);

        if (strpbrk(s, ",\"\n\r")) {
            sb_put(b, "\"", 1);
            for (; *s; s++) {
                if (*s == '"')
                    sb_put(b, "\"", 1);
                sb_put(b, s, 1);
            }
            sb_put(b, "\"", 1);
        } else {
            sb_str(b, s);
        }
    }
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
    COL_METRIC,                      /* + metric id */
    COL_UNC = COL_METRIC + _QT_MT_MAX, /* + 3 * metric id + (std, lo, hi) */
    N_COLS = COL_UNC + 3 * _QT_MT_MAX
};

static const char *const fixed_col_names[COL_METRIC] = {
    "sample", "method", "design", "design_id", "column", "dim",
    "spectral_dominant_eigenvalue", "record_status", "error_code", "error",
    "trace_distance_bound", "failed_resamples", "uncertainty_warnings", "uncertainty_error"};

/* One cell in the row store: its column and length, then its text. */
struct cell_hdr {
    uint32_t col, len;
};

/* Appends the cell col = csv text of v to the row store, unless it is empty. */
static void put_cell(struct sbuf *b, uint32_t col, json_t *v)
{
    struct cell_hdr h = {col, 0};
    size_t at = b->len;

    sb_put(b, &h, sizeof(h));
    csv_value(b, v);
    if (b->err)
        return;
    if (b->len == at + sizeof(h)) {
        b->len = at;
        return;
    }
    h.len = (uint32_t)(b->len - at - sizeof(h));
    memcpy(b->p + at, &h, sizeof(h));
}

/* The uncertainty warnings, space-separated, as one cell. */
static void put_warnings_cell(struct sbuf *b, json_t *wa)
{
    struct cell_hdr h = {COL_UNC_WARNINGS, 0};
    size_t at = b->len, wi;
    json_t *x;

    sb_put(b, &h, sizeof(h));
    json_array_foreach(wa, wi, x) {
        if (wi)
            sb_put(b, " ", 1);
        csv_value(b, x);
    }
    if (b->err)
        return;
    if (b->len == at + sizeof(h)) {
        b->len = at;
        return;
    }
    h.len = (uint32_t)(b->len - at - sizeof(h));
    memcpy(b->p + at, &h, sizeof(h));
}

/* Stores the cells of one record (every column it fills) and marks the columns it fills. */
static void store_row(struct sbuf *rows, json_t *rec, bool *filled)
{
    static const struct {
        uint32_t col;
        const char *key;
    } top[] = {{COL_SAMPLE, "sample"}, {COL_METHOD, "method"},       {COL_DESIGN, "design"},
               {COL_DESIGN_ID, "design_id"}, {COL_COLUMN, "column"}, {COL_DIM, "dim"},
               {COL_STATUS, "status"}};
    json_t *mt = json_object_get(rec, "metrics"), *e = json_object_get(rec, "error");
    json_t *u = json_object_get(rec, "uncertainty"), *um = json_object_get(u, "metrics");
    json_t *spec = json_object_get(rec, "spectral");
    struct cell_hdr end = {N_COLS, 0};

    for (size_t c = 0; c < QT_ARRAY_SIZE(top); c++)
        put_cell(rows, top[c].col, json_object_get(rec, top[c].key));
    for (int i = 0; i < _QT_MT_MAX; i++) {
        json_t *v;

        if (qt_metric_descs[i].type == QT_MTYPE_F64V)
            continue;
        v = json_object_get(mt, qt_metric_descs[i].name);
        filled[COL_METRIC + i] |= v != NULL;
        put_cell(rows, (uint32_t)(COL_METRIC + i), v);
    }
    if (spec) {
        filled[COL_SPECTRAL] = true;
        put_cell(rows, COL_SPECTRAL, json_object_get(spec, "dominant_eigenvalue"));
    }
    put_cell(rows, COL_ERROR_CODE, json_object_get(e, "code"));
    put_cell(rows, COL_ERROR, json_object_get(e, "message"));
    if (!u)
        goto done;
    filled[COL_FAILED_RESAMPLES] = true;
    for (int i = 0; i < _QT_MT_MAX; i++) {
        json_t *st;

        if (qt_metric_descs[i].type != QT_MTYPE_F64 ||
            !(st = json_object_get(um, qt_metric_descs[i].name)))
            continue;
        filled[COL_UNC + 3 * i] = true;
        put_cell(rows, (uint32_t)(COL_UNC + 3 * i), json_object_get(st, "std"));
        put_cell(rows, (uint32_t)(COL_UNC + 3 * i + 1), json_object_get(st, "lo"));
        put_cell(rows, (uint32_t)(COL_UNC + 3 * i + 2), json_object_get(st, "hi"));
    }
    if (json_object_get(u, "trace_distance_bound")) {
        filled[COL_TDB] = true;
        put_cell(rows, COL_TDB, json_object_get(u, "trace_distance_bound"));
    }
    put_cell(rows, COL_FAILED_RESAMPLES, json_object_get(u, "failed_resamples"));
    put_warnings_cell(rows, json_object_get(u, "warnings"));
    put_cell(rows, COL_UNC_ERROR, json_object_get(json_object_get(u, "error"), "message"));
done:
    sb_put(rows, &end, sizeof(end));
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

static void put_col_name(struct sbuf *b, uint32_t col)
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

int qctl_write_summary(const char *dir)
{
    /* One pass over the records stores each row's cells and which columns some record fills;
     * the table is laid out from the stored rows once the columns are known. */
    bool filled[N_COLS] = {false};
    uint32_t cols[N_COLS];
    const char *cell[N_COLS] = {NULL};
    uint32_t cell_len[N_COLS] = {0};
    char path[4096], *line = NULL, *pruned = NULL;
    size_t cap = 0, pcap = 0, ncols;
    struct sbuf rows = {0}, out = {0};
    ssize_t k;
    FILE *in;
    int r = 0;

    (void)snprintf(path, sizeof(path), "%s/records.jsonl", dir);
    in = fopen(path, "re");
    if (!in) {
        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return -errno;
    }
    while ((k = getline(&line, &cap, in)) > 0 && !rows.err) {
        json_t *rec;

        if ((size_t)k > pcap) {
            char *np = realloc(pruned, (size_t)k);

            if (!np) {
                rows.err = true;
                break;
            }
            pruned = np;
            pcap = (size_t)k;
        }
        rec = load_record(line, (size_t)k, pruned);
        if (!rec)
            continue;
        store_row(&rows, rec, filled);
        json_decref(rec);
    }
    ncols = table_cols(filled, cols);
    for (size_t c = 0; c < ncols; c++) {
        if (c)
            sb_put(&out, ",", 1);
        put_col_name(&out, cols[c]);
    }
    sb_put(&out, "\n", 1);
    for (size_t at = 0; at < rows.len && !rows.err && !out.err;) {
        struct cell_hdr h;
        uint32_t set[N_COLS];
        size_t nset = 0;

        for (;;) {
            memcpy(&h, rows.p + at, sizeof(h));
            at += sizeof(h);
            if (h.col == N_COLS)
                break;
            cell[h.col] = rows.p + at;
            cell_len[h.col] = h.len;
            set[nset++] = h.col;
            at += h.len;
        }
        for (size_t c = 0; c < ncols; c++) {
            if (c)
                sb_put(&out, ",", 1);
            if (cell[cols[c]])
                sb_put(&out, cell[cols[c]], cell_len[cols[c]]);
        }
        sb_put(&out, "\n", 1);
        for (size_t i = 0; i < nset; i++)
            cell[set[i]] = NULL;
    }
    if (rows.err || out.err)
        r = -ENOMEM;
    else
        r = qctl_write_atomic(dir, "summary.csv", out.p, out.len);
    if (r == -ENOMEM)
        qctl_err("out of memory writing summary.csv");
    free(rows.p);
    free(out.p);
    free(line);
    free(pruned);
    (void)fclose(in);
    return r;
}
