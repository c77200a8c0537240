/* qtomoctl reconstruct --hdf5: DIR/results.h5 for analysis programs (h5py, pandas, MATLAB's
 * h5read), built from DIR/records.jsonl and DIR/run.json as summary.csv is, so that a resumed
 * run ends with the same datasets as an uninterrupted one. The layout is in README.md. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <hdf5.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "num/qt_design.h"
#include "recon.h"

#define BLOCK    256 /* at most this many records converted and written per hyperslab */
#define MAX_COLS (16 + 4 * _QT_MT_MAX)

/* How a dataset's values come out of a record's JSON. */
enum ckind {
    CK_I64,     /* int64, fill INT64_MIN */
    CK_F64,     /* float64, fill NaN (JSON null: a non-finite value) */
    CK_BOOL,    /* int8: 1 true, 0 false, fill -1 */
    CK_STR,     /* variable-length UTF-8 string, fill "" */
    CK_STRLIST, /* an array of strings, joined by spaces */
    CK_VEC,     /* float64 [d] */
    CK_MAT,     /* float64 [d][d] from [[row]...] */
    CK_CMAT,    /* complex [d][d] from {"re": [[...]], "im": [[...]]} */
};

struct col {
    char name[160]; /* dataset path */
    enum ckind kind;
    const char *key[4]; /* JSON path in the record (static strings) */
    int64_t ifill;      /* CK_I64: the value where the record has none */
    hid_t dset;
    unsigned char *buf; /* w->block records' values */
    char **str;         /* string columns: w->block owned strings */
};

struct h5w {
    const char *dir;
    size_t d, n, mismatched;
    size_t block; /* records per block: BLOCK, fewer for large d (about 16 MB per matrix) */
    hid_t file, complex_t, str_t, dcpl_plain, gcpl;
    struct col cols[MAX_COLS];
    size_t ncols;
    int err; /* the first failure; every step after it is skipped */
    char what[200];
};

static void fail(struct h5w *w, const char *what)
{
    if (!w->err) {
        w->err = -EIO;
        (void)snprintf(w->what, sizeof(w->what), "%s", what);
    }
}

static size_t per_record(const struct h5w *w, enum ckind k)
{
    return k == CK_VEC ? w->d : k == CK_MAT || k == CK_CMAT ? w->d * w->d : 1;
}

static int rank_of(enum ckind k)
{
    return k == CK_VEC ? 2 : k == CK_MAT || k == CK_CMAT ? 3 : 1;
}

static size_t elem_size(enum ckind k)
{
    return k == CK_BOOL                     ? 1
           : k == CK_CMAT                   ? 16
           : k == CK_STR || k == CK_STRLIST ? sizeof(char *)
                                            : 8;
}

static hid_t mem_type(const struct h5w *w, enum ckind k)
{
    switch (k) {
    case CK_I64:
        return H5T_NATIVE_INT64;
    case CK_BOOL:
        return H5T_NATIVE_INT8;
    case CK_STR:
    case CK_STRLIST:
        return w->str_t;
    case CK_CMAT:
        return w->complex_t;
    default:
        return H5T_NATIVE_DOUBLE;
    }
}

/* ---- attributes ---- */

static void attr_write(struct h5w *w, hid_t loc, const char *name, hid_t type, hid_t space,
                       const void *val)
{
    hid_t a;

    if (w->err)
        return;
    a = H5Acreate2(loc, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    if (a < 0 || H5Awrite(a, type, val) < 0)
        fail(w, name);
    if (a >= 0)
        (void)H5Aclose(a);
}

static void attr_str(struct h5w *w, hid_t loc, const char *name, const char *s)
{
    hid_t sp = H5Screate(H5S_SCALAR);

    if (s)
        attr_write(w, loc, name, w->str_t, sp, &s);
    (void)H5Sclose(sp);
}

static void attr_i64(struct h5w *w, hid_t loc, const char *name, json_t *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    int64_t x = (int64_t)json_integer_value(v);

    if (json_is_integer(v))
        attr_write(w, loc, name, H5T_NATIVE_INT64, sp, &x);
    (void)H5Sclose(sp);
}

static void attr_f64(struct h5w *w, hid_t loc, const char *name, json_t *v)
{
    hid_t sp = H5Screate(H5S_SCALAR);
    double x = json_number_value(v);

    if (json_is_number(v))
        attr_write(w, loc, name, H5T_NATIVE_DOUBLE, sp, &x);
    (void)H5Sclose(sp);
}

/* A JSON array of strings as a 1-D string attribute. */
static void attr_strv(struct h5w *w, hid_t loc, const char *name, json_t *arr)
{
    size_t n = json_array_size(arr);
    const char **v = calloc(n ? n : 1, sizeof(*v));
    hsize_t dim = n;
    hid_t sp = H5Screate_simple(1, &dim, NULL);

    for (size_t i = 0; v && i < n; i++)
        v[i] = json_string_value(json_array_get(arr, i)) ? json_string_value(json_array_get(arr, i))
                                                         : "";
    if (v && json_is_array(arr))
        attr_write(w, loc, name, w->str_t, sp, v);
    else if (!v)
        fail(w, "out of memory");
    (void)H5Sclose(sp);
    free(v);
}

/* The run's identity on the root group: all of run.json as the string run_json, and the keys
 * an analysis selects runs by. */
static void root_attrs(struct h5w *w, json_t *run, const char *run_text)
{
    hid_t root = w->file;
    json_t *opts = json_object_get(run, "options"), *ver = json_object_get(run, "versions");
    hid_t sp = H5Screate(H5S_SCALAR);
    int64_t fmt = 1;

    attr_str(w, root, "format", "qtomo-results");
    attr_write(w, root, "format_version", H5T_NATIVE_INT64, sp, &fmt);
    (void)H5Sclose(sp);
    attr_str(w, root, "run_json", run_text ? run_text : "");
    attr_str(w, root, "input", json_string_value(json_object_get(run, "input")));
    attr_str(w, root, "input_sha256", json_string_value(json_object_get(run, "input_sha256")));
    attr_str(w, root, "mode", json_string_value(json_object_get(run, "mode")));
    attr_str(w, root, "design", json_string_value(json_object_get(opts, "design")));
    attr_str(w, root, "design_id", json_string_value(json_object_get(opts, "design_id")));
    attr_str(w, root, "detector",
             json_string_value(json_object_get(json_object_get(opts, "detector"), "id")));
    attr_i64(w, root, "dim", json_object_get(opts, "dim"));
    attr_strv(w, root, "methods", json_object_get(opts, "methods"));
    attr_str(w, root, "version_qtomoctl", json_string_value(json_object_get(ver, "qtomoctl")));
    attr_str(w, root, "version_server", json_string_value(json_object_get(ver, "server")));
}

/* The error bars' settings on /uncertainty: the run's, else the first record's. */
static void unc_attrs(struct h5w *w, hid_t g, json_t *run, json_t *first_unc)
{
    json_t *b = json_object_get(json_object_get(run, "options"), "bootstrap");

    if (!b)
        b = first_unc;
    attr_i64(w, g, "resamples", json_object_get(b, "resamples"));
    attr_str(w, g, "kind", json_string_value(json_object_get(b, "kind")));
    attr_i64(w, g, "seed", json_object_get(b, "seed"));
    attr_f64(w, g, "confidence", json_object_get(b, "confidence"));
    if (json_object_get(b, "shots"))
        attr_i64(w, g, "shots", json_object_get(b, "shots"));
}

/* ---- columns ---- */

static void add_col(struct h5w *w, enum ckind kind, const char *k0, const char *k1, const char *k2,
                    const char *k3, const char *fmt, ...) QT_PRINTF(7, 8);

static void add_col(struct h5w *w, enum ckind kind, const char *k0, const char *k1, const char *k2,
                    const char *k3, const char *fmt, ...)
{
    struct col *c;
    va_list ap;

    if (w->err || w->ncols == MAX_COLS || (per_record(w, kind) == 0))
        return;
    c = &w->cols[w->ncols++];
    va_start(ap, fmt);
    (void)vsnprintf(c->name, sizeof(c->name), fmt, ap);
    va_end(ap);
    c->kind = kind;
    c->key[0] = k0, c->key[1] = k1, c->key[2] = k2, c->key[3] = k3;
    c->ifill = strcmp(c->name, "error_code") == 0 ? 0 : INT64_MIN; /* 0: no error */
    c->dset = H5I_INVALID_HID;
    c->buf = calloc(w->block, per_record(w, kind) * elem_size(kind));
    if (kind == CK_STR || kind == CK_STRLIST)
        c->str = (char **)(void *)c->buf;
    if (!c->buf)
        fail(w, "out of memory");
}

static hid_t file_type(const struct h5w *w, enum ckind k)
{
    switch (k) {
    case CK_I64:
        return H5T_STD_I64LE;
    case CK_BOOL:
        return H5T_STD_I8LE;
    case CK_STR:
    case CK_STRLIST:
        return w->str_t;
    case CK_CMAT:
        return w->complex_t;
    default:
        return H5T_IEEE_F64LE;
    }
}

static void create_dset(struct h5w *w, struct col *c)
{
    hsize_t dims[3] = {w->n, w->d, w->d};
    int rank = rank_of(c->kind);
    hid_t sp, dcpl;
    int64_t fi = c->ifill;
    int8_t fb = -1;
    double fd[2] = {NAN, NAN};

    if (w->err)
        return;
    dcpl = H5Pcopy(w->dcpl_plain);
    if (dcpl < 0) {
        fail(w, "property list");
        return;
    }
    if (c->kind == CK_I64)
        (void)H5Pset_fill_value(dcpl, H5T_NATIVE_INT64, &fi);
    else if (c->kind == CK_BOOL)
        (void)H5Pset_fill_value(dcpl, H5T_NATIVE_INT8, &fb);
    else if (c->kind == CK_CMAT)
        (void)H5Pset_fill_value(dcpl, w->complex_t, fd);
    else if (c->kind != CK_STR && c->kind != CK_STRLIST)
        (void)H5Pset_fill_value(dcpl, H5T_NATIVE_DOUBLE, fd);
    sp = H5Screate_simple(rank, dims, NULL);
    c->dset = sp < 0 ? H5I_INVALID_HID
                     : H5Dcreate2(w->file, c->name, file_type(w, c->kind), sp, H5P_DEFAULT, dcpl,
                                  H5P_DEFAULT);
    if (c->dset < 0)
        fail(w, c->name);
    if (sp >= 0)
        (void)H5Sclose(sp);
    (void)H5Pclose(dcpl);
}

static json_t *walk(json_t *rec, const struct col *c)
{
    for (int i = 0; i < 4 && c->key[i]; i++)
        rec = json_object_get(rec, c->key[i]);
    return rec;
}

static double num_or_nan(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* A d x d matrix of numbers from rows, or false (then all NaN): another dimension. */
static bool get_mat(const struct h5w *w, json_t *rows, double *out, size_t stride)
{
    size_t d = w->d;

    if (json_array_size(rows) != d)
        goto bad;
    for (size_t i = 0; i < d; i++) {
        json_t *row = json_array_get(rows, i);

        if (json_array_size(row) != d)
            goto bad;
        for (size_t j = 0; j < d; j++)
            out[(i * d + j) * stride] = num_or_nan(json_array_get(row, j));
    }
    return true;
bad:
    for (size_t i = 0; i < d * d; i++)
        out[i * stride] = NAN;
    return false;
}

static char *join_strings(json_t *arr)
{
    size_t len = 1, i;
    json_t *x;
    char *s;

    json_array_foreach(arr, i, x) len +=
        strlen(json_string_value(x) ? json_string_value(x) : "") + 1;
    s = calloc(1, len);
    json_array_foreach(arr, i, x)
    {
        if (!s || !json_string_value(x))
            continue;
        if (*s)
            strcat(s, " ");
        strcat(s, json_string_value(x));
    }
    return s;
}

/* Converts record rec into slot k of column c. */
static void fill(struct h5w *w, struct col *c, size_t k, json_t *rec)
{
    json_t *v = walk(rec, c);
    size_t per = per_record(w, c->kind);
    bool ok = true;

    switch (c->kind) {
    case CK_I64:
        ((int64_t *)(void *)c->buf)[k] =
            json_is_integer(v) ? (int64_t)json_integer_value(v) : c->ifill;
        break;
    case CK_F64:
        ((double *)(void *)c->buf)[k] = num_or_nan(v);
        break;
    case CK_BOOL:
        ((int8_t *)c->buf)[k] = (int8_t)(json_is_boolean(v) ? json_is_true(v) : -1);
        break;
    case CK_STR:
        c->str[k] = strdup(json_string_value(v) ? json_string_value(v) : "");
        ok = c->str[k] != NULL;
        break;
    case CK_STRLIST:
        c->str[k] = join_strings(v);
        ok = c->str[k] != NULL;
        break;
    case CK_VEC: {
        double *o = (double *)(void *)c->buf + k * per;
        bool fits = json_array_size(v) == per;

        for (size_t i = 0; i < per; i++)
            o[i] = fits ? num_or_nan(json_array_get(v, i)) : NAN;
        if (v && !fits)
            w->mismatched++;
        break;
    }
    case CK_MAT:
        if (!get_mat(w, v, (double *)(void *)c->buf + k * per, 1) && v)
            w->mismatched++;
        break;
    case CK_CMAT: {
        double *o = (double *)(void *)c->buf + 2 * k * per;
        bool re = get_mat(w, json_object_get(v, "re"), o, 2);
        bool im = get_mat(w, json_object_get(v, "im"), o + 1, 2);

        if (!re || !im) { /* all NaN, never half a matrix */
            (void)get_mat(w, NULL, o, 2);
            (void)get_mat(w, NULL, o + 1, 2);
            w->mismatched += v != NULL;
        }
        break;
    }
    }
    if (!ok)
        fail(w, "out of memory");
}

/* Writes records [start, start + count) from the columns' buffers. */
static void flush_block(struct h5w *w, size_t start, size_t count)
{
    for (size_t i = 0; i < w->ncols && count; i++) {
        struct col *c = &w->cols[i];
        hsize_t off[3] = {start, 0, 0}, cnt[3] = {count, w->d, w->d};
        int rank = rank_of(c->kind);
        hid_t fs = H5Dget_space(c->dset), ms = H5Screate_simple(rank, cnt, NULL);

        if (!w->err && (fs < 0 || ms < 0 ||
                        H5Sselect_hyperslab(fs, H5S_SELECT_SET, off, NULL, cnt, NULL) < 0 ||
                        H5Dwrite(c->dset, mem_type(w, c->kind), ms, fs, H5P_DEFAULT, c->buf) < 0))
            fail(w, c->name);
        if (fs >= 0)
            (void)H5Sclose(fs);
        if (ms >= 0)
            (void)H5Sclose(ms);
        if (c->str)
            for (size_t k = 0; k < count; k++) {
                free(c->str[k]);
                c->str[k] = NULL;
            }
    }
}

/* ---- the two passes over records.jsonl ---- */

struct scan {
    size_t n, bad;
    bool mt[_QT_MT_MAX], umt[_QT_MT_MAX], any_unc, any_tdb, any_rho_std, any_spectral;
    size_t first_dim;
    json_t *first_unc; /* owned */
};

/* Each line that parses as a JSON object is a record; others (never written by qtomoctl) are
 * counted and skipped in both passes alike. */
static json_t *next_record(FILE *f, char **line, size_t *cap, size_t *bad)
{
    ssize_t k;

    while ((k = getline(line, cap, f)) > 0) {
        json_t *rec = json_loadb(*line, (size_t)k, 0, NULL);

        if (json_is_object(rec))
            return rec;
        json_decref(rec);
        if (bad)
            (*bad)++;
    }
    return NULL;
}

static void scan_records(FILE *f, struct scan *s)
{
    char *line = NULL;
    size_t cap = 0;
    json_t *rec;

    while ((rec = next_record(f, &line, &cap, &s->bad))) {
        json_t *mt = json_object_get(rec, "metrics"), *u = json_object_get(rec, "uncertainty");
        json_t *um = json_object_get(u, "metrics");

        s->n++;
        if (!s->first_dim && json_integer_value(json_object_get(rec, "dim")) > 0)
            s->first_dim = (size_t)json_integer_value(json_object_get(rec, "dim"));
        for (int i = 0; i < _QT_MT_MAX; i++) {
            s->mt[i] |= json_object_get(mt, qt_metric_descs[i].name) != NULL;
            s->umt[i] |= json_object_get(um, qt_metric_descs[i].name) != NULL;
        }
        if (u && !s->first_unc)
            s->first_unc = json_incref(u);
        s->any_unc |= u != NULL;
        s->any_tdb |= json_object_get(u, "trace_distance_bound") != NULL;
        s->any_rho_std |= json_object_get(u, "rho_std") != NULL;
        s->any_spectral |= json_object_get(rec, "spectral") != NULL;
        json_decref(rec);
    }
    free(line);
}

static const enum ckind mtype_kind[] = {[QT_MTYPE_F64] = CK_F64,
                                        [QT_MTYPE_I64] = CK_I64,
                                        [QT_MTYPE_BOOL] = CK_BOOL,
                                        [QT_MTYPE_STR] = CK_STR,
                                        [QT_MTYPE_F64V] = CK_VEC};

static void plan_columns(struct h5w *w, const struct scan *s)
{
    static const char *const q[] = {"std", "lo", "hi"};

    add_col(w, CK_I64, "sample", NULL, NULL, NULL, "sample");
    add_col(w, CK_I64, "column", NULL, NULL, NULL, "column");
    add_col(w, CK_STR, "method", NULL, NULL, NULL, "method");
    add_col(w, CK_STR, "status", NULL, NULL, NULL, "status");
    add_col(w, CK_I64, "error", "code", NULL, NULL, "error_code");
    add_col(w, CK_STR, "error", "name", NULL, NULL, "error_name");
    add_col(w, CK_STR, "error", "message", NULL, NULL, "error_message");
    add_col(w, CK_STRLIST, "warnings", NULL, NULL, NULL, "warnings");
    add_col(w, CK_CMAT, "rho", NULL, NULL, NULL, "rho");
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (s->mt[i])
            add_col(w, mtype_kind[qt_metric_descs[i].type], "metrics", qt_metric_descs[i].name,
                    NULL, NULL, "metrics/%s", qt_metric_descs[i].name);
    if (s->any_spectral) { /* --spectral: the record's "spectral" object */
        static const char *const sv[] = {"amplitudes", "phases_pi", "eigenvalues"};

        add_col(w, CK_F64, "spectral", "dominant_eigenvalue", NULL, NULL,
                "spectral/dominant_eigenvalue");
        for (size_t k = 0; k < 3; k++)
            add_col(w, CK_VEC, "spectral", sv[k], NULL, NULL, "spectral/%s", sv[k]);
    }
    if (!s->any_unc)
        return;
    for (int i = 0; i < _QT_MT_MAX; i++)
        for (int k = 0; k < 3 && s->umt[i]; k++)
            add_col(w, qt_metric_descs[i].type == QT_MTYPE_F64V ? CK_VEC : CK_F64, "uncertainty",
                    "metrics", qt_metric_descs[i].name, q[k], "uncertainty/%s/%s",
                    qt_metric_descs[i].name, q[k]);
    if (s->any_rho_std) {
        add_col(w, CK_MAT, "uncertainty", "rho_std", "re", NULL, "uncertainty/rho_std_re");
        add_col(w, CK_MAT, "uncertainty", "rho_std", "im", NULL, "uncertainty/rho_std_im");
    }
    if (s->any_tdb)
        add_col(w, CK_F64, "uncertainty", "trace_distance_bound", NULL, NULL,
                "uncertainty/trace_distance_bound");
    add_col(w, CK_I64, "uncertainty", "failed_resamples", NULL, NULL,
            "uncertainty/failed_resamples");
    add_col(w, CK_STRLIST, "uncertainty", "warnings", NULL, NULL, "uncertainty/warnings");
    add_col(w, CK_STR, "uncertainty", "error", "message", NULL, "uncertainty/error_message");
}

static void make_group(struct h5w *w, const char *name)
{
    hid_t g;

    if (w->err)
        return;
    g = H5Gcreate2(w->file, name, H5P_DEFAULT, w->gcpl, H5P_DEFAULT);
    if (g < 0)
        fail(w, name);
    else
        (void)H5Gclose(g);
}

static void make_groups(struct h5w *w, const struct scan *s, json_t *run)
{
    hid_t g;

    make_group(w, "metrics");
    if (s->any_spectral)
        make_group(w, "spectral");
    if (!s->any_unc)
        return;
    make_group(w, "uncertainty");
    for (int i = 0; i < _QT_MT_MAX; i++)
        if (s->umt[i]) {
            char name[160];

            (void)snprintf(name, sizeof(name), "uncertainty/%s", qt_metric_descs[i].name);
            make_group(w, name);
        }
    if (w->err)
        return;
    g = H5Gopen2(w->file, "uncertainty", H5P_DEFAULT);
    if (g < 0) {
        fail(w, "uncertainty");
        return;
    }
    unc_attrs(w, g, run, s->first_unc);
    (void)H5Gclose(g);
}

static void fill_all(struct h5w *w, FILE *f)
{
    json_t *block[BLOCK];
    char *line = NULL;
    size_t cap = 0, nb = 0, done = 0;
    json_t *rec;

    while (!w->err && done + nb < w->n && (rec = next_record(f, &line, &cap, NULL))) {
        for (size_t i = 0; i < w->ncols; i++)
            fill(w, &w->cols[i], nb, rec);
        block[nb++] = rec;
        if (nb == w->block || done + nb == w->n) {
            flush_block(w, done, nb);
            for (size_t k = 0; k < nb; k++)
                json_decref(block[k]);
            done += nb;
            nb = 0;
        }
    }
    for (size_t k = 0; k < nb; k++)
        json_decref(block[k]);
    if (!w->err && done != w->n)
        fail(w, "records.jsonl changed while it was read");
    free(line);
}

/* ---- file ---- */

static int open_file(struct h5w *w, const char *tmp)
{
    hid_t fcpl = H5Pcreate(H5P_FILE_CREATE), fapl = H5Pcreate(H5P_FILE_ACCESS);
    hid_t ct = H5Tcreate(H5T_COMPOUND, 2 * sizeof(double));

    /* No modification times in object headers: the same records give the same file. */
    w->gcpl = H5Pcreate(H5P_GROUP_CREATE);
    w->dcpl_plain = H5Pcreate(H5P_DATASET_CREATE);
    w->str_t = H5Tcopy(H5T_C_S1);
    if (fcpl < 0 || fapl < 0 || ct < 0 || w->gcpl < 0 || w->dcpl_plain < 0 || w->str_t < 0 ||
        H5Pset_obj_track_times(fcpl, 0) < 0 || H5Pset_obj_track_times(w->gcpl, 0) < 0 ||
        H5Pset_obj_track_times(w->dcpl_plain, 0) < 0 ||
        H5Pset_fclose_degree(fapl, H5F_CLOSE_STRONG) < 0 ||
        H5Tset_size(w->str_t, H5T_VARIABLE) < 0 || H5Tset_cset(w->str_t, H5T_CSET_UTF8) < 0 ||
        /* h5py's complex128: a compound of float64 fields r and i */
        H5Tinsert(ct, "r", 0, H5T_NATIVE_DOUBLE) < 0 ||
        H5Tinsert(ct, "i", sizeof(double), H5T_NATIVE_DOUBLE) < 0)
        fail(w, "type and property setup");
    w->complex_t = ct;
    if (!w->err) {
        w->file = H5Fcreate(tmp, H5F_ACC_TRUNC, fcpl, fapl);
        if (w->file < 0)
            fail(w, "creating the temporary file .results.h5.tmp");
    }
    if (fcpl >= 0)
        (void)H5Pclose(fcpl);
    if (fapl >= 0)
        (void)H5Pclose(fapl);
    return w->err;
}

static void close_all(struct h5w *w)
{
    for (size_t i = 0; i < w->ncols; i++) {
        if (w->cols[i].dset >= 0)
            (void)H5Dclose(w->cols[i].dset);
        for (size_t k = 0; w->cols[i].str && k < w->block; k++) /* a block cut short */
            free(w->cols[i].str[k]);
        free(w->cols[i].buf);
    }
    if (w->file >= 0 && H5Fclose(w->file) < 0)
        fail(w, "close");
    if (w->complex_t >= 0)
        (void)H5Tclose(w->complex_t);
    if (w->str_t >= 0)
        (void)H5Tclose(w->str_t);
    if (w->gcpl >= 0)
        (void)H5Pclose(w->gcpl);
    if (w->dcpl_plain >= 0)
        (void)H5Pclose(w->dcpl_plain);
}

/* fsync the written file, then rename it over the old one and sync the directory. */
static int commit(const char *dir, const char *tmp, const char *dst)
{
    int fd = open(tmp, O_RDONLY | O_CLOEXEC), r = 0;

    if (fd < 0 || fsync(fd) != 0)
        r = -errno;
    if (fd >= 0)
        (void)close(fd);
    if (r == 0 && rename(tmp, dst) != 0)
        r = -errno;
    if (r == 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

        if (dfd >= 0) {
            (void)fsync(dfd);
            (void)close(dfd);
        }
    }
    return r;
}

int qctl_write_h5(const char *dir)
{
    struct h5w w = {.dir = dir,
                    .file = H5I_INVALID_HID,
                    .complex_t = H5I_INVALID_HID,
                    .str_t = H5I_INVALID_HID,
                    .dcpl_plain = H5I_INVALID_HID,
                    .gcpl = H5I_INVALID_HID};
    struct scan s = {0};
    char path[4096], tmp[4096], dst[4096], *run_text = NULL;
    size_t run_len = 0;
    json_t *run;
    FILE *f;
    int r;

    (void)H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* our message, not HDF5's stack dump */
    (void)snprintf(path, sizeof(path), "%s/records.jsonl", dir);
    (void)snprintf(tmp, sizeof(tmp), "%s/.results.h5.tmp", dir);
    (void)snprintf(dst, sizeof(dst), "%s/results.h5", dir);
    f = fopen(path, "re");
    if (!f) {
        r = -errno;
        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return r;
    }
    (void)snprintf(path, sizeof(path), "%s/run.json", dir);
    if (qctl_read_file(path, (size_t)1 << 24, &run_text, &run_len) == 0)
        while (run_len && run_text[run_len - 1] == '\n')
            run_text[--run_len] = '\0';
    run = run_text ? json_loads(run_text, 0, NULL) : NULL;
    scan_records(f, &s);
    w.n = s.n;
    /* One d per run (-o never mixes dimensions): the run's, else the first record's. */
    w.d = json_integer_value(json_object_get(json_object_get(run, "options"), "dim")) > 0
              ? (size_t)json_integer_value(json_object_get(json_object_get(run, "options"), "dim"))
              : s.first_dim;
    if (w.d > QT_DESIGN_MAX_D) /* not a run qtomoctl wrote */
        w.d = 0;
    w.block = w.d * w.d > ((size_t)1 << 20) / BLOCK ? ((size_t)1 << 20) / (w.d * w.d) : BLOCK;
    if (w.block == 0)
        w.block = 1;
    if (open_file(&w, tmp) == 0) {
        root_attrs(&w, run, run_text);
        make_groups(&w, &s, run);
        plan_columns(&w, &s);
        for (size_t i = 0; i < w.ncols; i++)
            create_dset(&w, &w.cols[i]);
        rewind(f);
        fill_all(&w, f);
    }
    close_all(&w);
    (void)fclose(f);
    r = w.err;
    if (r == 0)
        r = commit(dir, tmp, dst);
    if (r < 0) {
        if (w.err)
            qctl_err("cannot write '%s': HDF5 failed at %s", dst, w.what);
        else
            qctl_err("cannot write '%s': %s", dst, strerror(-r));
        (void)unlink(tmp);
    } else if (s.bad || w.mismatched) {
        qctl_err("'%s': %zu unreadable line(s) of records.jsonl skipped, %zu value(s) of another "
                 "dimension than %zu written as NaN",
                 dst, s.bad, w.mismatched, w.d);
    }
    json_decref(s.first_unc);
    json_decref(run);
    free(run_text);
    return r;
}
