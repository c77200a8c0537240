/* qtomoctl's analysis commands, which need no daemon: fidelity (between two states given as
 * target files or records) and bell (the origin's bell-analyze over a run's records, written
 * to DIR/bell_summary.csv), and the helpers they share with summarize (cmd_summarize.c). */
#define _GNU_SOURCE
#include <complex.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "analysis.h"
#include "io/qt_designfile.h"
#include "io/qt_json.h"
#include "num/qt_theory.h"
#include "num/qt_design.h"
#include "num/qt_rho.h"
#include "qctl.h"
#include "recon.h"

#define RECORD_MAX_DIM  QT_DESIGN_MAX_D
#define RECORD_LINE_MAX ((size_t)256 << 20)

/* ---- shared ---- */

/* Parses --help, --json and (for summarize) --compare-methods; the positional arguments are
 * argv[optind..). Returns 0, -1 after printing help, or an exit code. */
int qctl_anl_args(int argc, char **argv, const struct qctl_global *g, const char *name, int nargs,
                  struct qctl_anl_opts *o)
{
    static const struct option opts[] = {{"help", no_argument, NULL, 'h'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"compare-methods", no_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    const struct qctl_cmd *cmd = qctl_find_cmd(name);
    int opt;

    o->json = g->json;
    o->compare = false;
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (opt == 'h') {
            cmd->usage(stdout);
            return -1;
        }
        if (opt == 'j') {
            o->json = true;
        } else if (opt == 'c' && strcmp(name, "summarize") == 0) {
            o->compare = true;
        } else {
            if (opt == 'c')
                qctl_err("%s: unknown option '--compare-methods'", name);
            cmd->usage(stderr);
            return QCTL_EXIT_USAGE;
        }
    }
    if (argc - optind != nargs) {
        qctl_err("%s: %s", name,
                 argc - optind < nargs ? "missing arguments" : "too many arguments");
        cmd->usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    return 0;
}

bool qctl_is_dir(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* DIR -> DIR/name; anything else as it is. Returns a malloc'ed path or NULL. */
char *qctl_in_dir(const char *path, const char *name)
{
    char *p = NULL;

    if (!qctl_is_dir(path))
        return strdup(path);
    return asprintf(&p, "%s/%s", path, name) < 0 ? NULL : p;
}

/* numpy's pairwise summation (np.sum of a contiguous float64 array), so that means agree with
 * pandas to the last bit in the common cases. */
double qctl_pairwise_sum(const double *a, size_t n)
{
    if (n < 8) {
        double s = 0.0;

        for (size_t i = 0; i < n; i++)
            s += a[i];
        return s;
    }
    if (n <= 128) {
        double r[8], s;
        size_t i;

        for (int j = 0; j < 8; j++)
            r[j] = a[j];
        for (i = 8; i < n - n % 8; i += 8)
            for (int j = 0; j < 8; j++)
                r[j] += a[i + (size_t)j];
        s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++)
            s += a[i];
        return s;
    }
    size_t n2 = n / 2;

    n2 -= n2 % 8;
    return qctl_pairwise_sum(a, n2) + qctl_pairwise_sum(a + n2, n - n2);
}

/* ---- records ---- */

/* Reads a record's "rho" (rows of "re" and "im") into rho, d x d column-major. */
static int record_rho(json_t *rec, size_t d, double complex *rho, struct qt_diag *dg)
{
    json_t *rh = json_object_get(rec, "rho");
    json_t *part[2] = {json_object_get(rh, "re"), json_object_get(rh, "im")};

    for (int p = 0; p < 2; p++) {
        if (!json_is_array(part[p]) || json_array_size(part[p]) != d)
            return qt_diag_set(dg, QT_ESHAPE, 0, 0, "'rho.%s' is not %zu rows", p ? "im" : "re", d);
        for (size_t i = 0; i < d; i++) {
            json_t *row = json_array_get(part[p], i);

            if (!json_is_array(row) || json_array_size(row) != d)
                return qt_diag_set(dg, QT_ESHAPE, 0, 0, "'rho.%s[%zu]' is not %zu numbers",
                                   p ? "im" : "re", i, d);
            for (size_t j = 0; j < d; j++) {
                json_t *v = json_array_get(row, j);
                double *z = (double *)&rho[i + d * j];

                if (!json_is_number(v))
                    return qt_diag_set(dg, QT_EPARSE, 0, 0, "'rho.%s[%zu][%zu]' is not a number",
                                       p ? "im" : "re", i, j);
                z[p] = json_number_value(v);
            }
        }
    }
    return 0;
}

/* A record's dimension ("dim"), or 0 when it has none in 1..RECORD_MAX_DIM. */
static size_t record_dim(json_t *rec)
{
    json_t *v = json_object_get(rec, "dim");

    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > RECORD_MAX_DIM)
        return 0;
    return (size_t)json_integer_value(v);
}

/* Calls fn for each record of a records.jsonl file, with its 1-based line. A line that is not
 * a JSON object is an error, except an unterminated last line (an interrupted run's). fn
 * returns 0 to go on, 1 to stop, or an exit code. Returns 0 or an exit code (printed). */
static int each_record(const char *path, int (*fn)(json_t *rec, unsigned line, void *ctx),
                       void *ctx)
{
    FILE *f = fopen(path, "re");
    char *buf = NULL;
    size_t cap = 0;
    unsigned line = 0;
    ssize_t n;
    int r = 0;

    if (!f) {
        qctl_err("cannot read '%s': %s", path, strerror(errno));
        return QCTL_EXIT_USAGE;
    }
    while (r == 0 && (n = getline(&buf, &cap, f)) > 0) {
        json_error_t je;
        json_t *rec;

        line++;
        if ((size_t)n > RECORD_LINE_MAX) {
            qctl_err("'%s' line %u: longer than %zu bytes", path, line, RECORD_LINE_MAX);
            r = QCTL_EXIT_USAGE;
            break;
        }
        rec = json_loadb(buf, (size_t)n, 0, &je);
        if (!json_is_object(rec)) {
            if (buf[n - 1] != '\n' && feof(f)) {
                json_decref(rec);
                break;
            }
            qctl_err("'%s' line %u: not a record (%s)", path, line,
                     rec ? "not an object" : je.text);
            r = QCTL_EXIT_USAGE;
        } else {
            r = fn(rec, line, ctx);
        }
        json_decref(rec);
    }
    free(buf);
    (void)fclose(f);
    return r < 0 ? QCTL_EXIT_USAGE : r == 1 ? 0 : r;
}

/* ---- fidelity ---- */

struct state {
    const char *arg;
    size_t d;
    double complex *rho;
};

struct find_rec {
    long long sample;
    const char *method, *path;
    struct state *st;
    int found; /* 0, 1 found and read, or an exit code */
};

static int find_rec_fn(json_t *rec, unsigned line, void *ctx)
{
    struct find_rec *fr = ctx;
    json_t *s = json_object_get(rec, "sample");
    const char *m = json_string_value(json_object_get(rec, "method"));
    const char *status = json_string_value(json_object_get(rec, "status"));
    struct qt_diag dg = {0};
    size_t d;

    if (!json_is_integer(s) || json_integer_value(s) != fr->sample || !m ||
        strcmp(m, fr->method) != 0)
        return 0;
    fr->found = QCTL_EXIT_USAGE;
    if (!status || strcmp(status, "ok") != 0) {
        const char *why =
            json_string_value(json_object_get(json_object_get(rec, "error"), "message"));

        qctl_err("'%s' line %u: sample %lld, method %s failed (%s): it has no state", fr->path,
                 line, fr->sample, fr->method, why ? why : "no message");
        return 1;
    }
    d = record_dim(rec);
    if (!d) {
        qctl_err("'%s' line %u: no valid 'dim'", fr->path, line);
        return 1;
    }
    fr->st->rho = malloc(d * d * sizeof(double complex));
    if (!fr->st->rho) {
        qctl_err("out of memory");
        return 1;
    }
    fr->st->d = d;
    if (record_rho(rec, d, fr->st->rho, &dg) < 0 || qt_target_check(d, fr->st->rho, &dg) < 0) {
        qctl_err("'%s' line %u: %s", fr->path, line, dg.msg);
        return 1;
    }
    fr->found = 1;
    return 1;
}

/* FILE.jsonl:SAMPLE:METHOD or DIR:SAMPLE:METHOD. Returns 0, or an exit code (printed). */
static int load_record_state(struct state *st)
{
    const char *arg = st->arg, *c2 = strrchr(arg, ':'), *c1;
    struct find_rec fr = {0, NULL, NULL, st, 0};
    char *file, *dir, *end;
    int r;

    c1 = c2 ? memrchr(arg, ':', (size_t)(c2 - arg)) : NULL;
    if (!c1 || c1 == arg || !c2[1]) {
        qctl_err("'%s' is neither a readable target file nor a record FILE.jsonl:SAMPLE:METHOD",
                 arg);
        return QCTL_EXIT_USAGE;
    }
    errno = 0;
    fr.sample = strtoll(c1 + 1, &end, 10);
    if (end != c2 || end == c1 + 1 || errno || fr.sample < 0) {
        qctl_err("'%s': the sample '%.*s' is not a non-negative integer", arg, (int)(c2 - c1 - 1),
                 c1 + 1);
        return QCTL_EXIT_USAGE;
    }
    fr.method = c2 + 1;
    dir = strndup(arg, (size_t)(c1 - arg));
    file = dir ? qctl_in_dir(dir, "records.jsonl") : NULL;
    free(dir);
    if (!file) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    fr.path = file;
    r = each_record(file, find_rec_fn, &fr);
    if (r == 0 && fr.found == 0) {
        qctl_err("'%s' has no record of sample %lld, method %s", file, fr.sample, fr.method);
        r = QCTL_EXIT_USAGE;
    }
    free(file);
    return r ? r : fr.found == 1 ? 0 : fr.found;
}

/* The dimension a target file states or implies, or 0. */
static size_t target_dim(const char *buf, size_t len)
{
    json_t *root = json_loadb(buf, len, 0, NULL), *v;
    size_t d = 0;

    if (!root)
        return 0;
    if (json_is_integer(v = json_object_get(root, "dim")) && json_integer_value(v) > 0)
        d = (size_t)json_integer_value(v);
    else if ((v = json_object_get(root, "ket")) || (v = json_object_get(root, "rho")))
        d = json_array_size(json_object_get(v, "re"));
    else if ((v = json_object_get(root, "density_matrix")))
        d = json_is_array(v) ? json_array_size(v) : json_array_size(json_object_get(v, "real"));
    else if ((v = json_object_get(root, "amplitudes")))
        d = json_array_size(v);
    else if (json_is_string(v = json_object_get(root, "profile")) &&
             qt_theory_profile_find(json_string_value(v)))
        d = qt_theory_profile_find(json_string_value(v))->d;
    json_decref(root);
    return d;
}

/* A target file; its dimension from the file, else d_hint. Returns 0, 1 when the dimension
 * is unknown (no hint yet), or an exit code (printed). */
static int load_target_state(struct state *st, char *buf, size_t len, size_t d_hint)
{
    struct qt_target_fix fix;
    struct qt_diag dg = {0};
    size_t d = target_dim(buf, len);
    int r;

    if (!d)
        d = d_hint;
    if (!d)
        return 1;
    if (d > RECORD_MAX_DIM) {
        qctl_err("target file '%s': dimension %zu is larger than %d", st->arg, d, RECORD_MAX_DIM);
        return QCTL_EXIT_USAGE;
    }
    st->rho = malloc(d * d * sizeof(double complex));
    if (!st->rho) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    st->d = d;
    r = qt_targetfile_parse(buf, len, d, st->rho, &fix, &dg);
    if (r < 0) {
        qctl_err("target file '%s': %s", st->arg, dg.msg[0] ? dg.msg : qt_strerror(r));
        return QCTL_EXIT_USAGE;
    }
    qctl_warn_target_fix("target file", st->arg, &fix);
    return 0;
}

/* Loads both states; a target file that does not imply its dimension takes the other's. */
static int load_states(struct state st[2])
{
    char *buf[2] = {NULL, NULL};
    size_t len[2] = {0, 0};
    int r = 0, pending[2] = {0, 0};

    for (int k = 0; k < 2 && r == 0; k++) {
        struct stat sb;

        const struct qt_theory_profile *prof = qt_theory_profile_find(st[k].arg);

        if (prof && stat(st[k].arg, &sb) != 0) { /* a named theory state, e.g. 4D_custom */
            len[k] = strlen(prof->name) + 16;
            buf[k] = malloc(len[k]);
            if (!buf[k]) {
                qctl_err("out of memory");
                r = QCTL_EXIT_FAILED;
                break;
            }
            len[k] = (size_t)snprintf(buf[k], len[k], "{\"profile\": \"%s\"}", prof->name);
            pending[k] = 1;
        } else if (stat(st[k].arg, &sb) == 0 && S_ISREG(sb.st_mode)) {
            r = qctl_read_file(st[k].arg, QT_DESIGNFILE_MAX_BYTES, &buf[k], &len[k]);
            if (r < 0) {
                qctl_err("cannot read '%s': %s", st[k].arg, qt_strerror(r));
                r = QCTL_EXIT_USAGE;
                break;
            }
            pending[k] = 1;
        } else {
            r = load_record_state(&st[k]);
        }
    }
    for (int pass = 0; pass < 2 && r == 0; pass++)
        for (int k = 0; k < 2 && r == 0; k++)
            if (pending[k]) {
                r = load_target_state(&st[k], buf[k], len[k], st[1 - k].d);
                pending[k] = r == 1;
                if (r == 1)
                    r = pass == 1 ? 1 : 0;
            }
    if (r == 1) {
        qctl_err("cannot tell the dimension of '%s' or '%s': give \"dim\" in a target file",
                 st[0].arg, st[1].arg);
        r = QCTL_EXIT_USAGE;
    }
    free(buf[0]);
    free(buf[1]);
    return r;
}

static void print_num_line(const char *name, double x)
{
    char b[40];

    (void)qt_fmt_double(x, b, sizeof(b));
    printf("%-15s %s\n", name, b);
}

void qctl_fidelity_usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomoctl fidelity A B [--json]\n\n"
            "Fidelity (Uhlmann, (Tr sqrt(sqrt(rho) sigma sqrt(rho)))^2, unrounded) and trace\n"
            "distance (1/2 |rho - sigma|_1) between two states of the same dimension. Each\n"
            "is a target file (any form --target takes: ket, rho, density_matrix,\n"
            "amplitudes/phases_pi, profile), a profile name (4D_custom, 16D_custom), or a\n"
            "record of a run: DIR:SAMPLE:METHOD or\n"
            "FILE.jsonl:SAMPLE:METHOD (SAMPLE is the record's 0-based \"sample\").\n\n"
            "  --json   one JSON object: a, b, dim, fidelity, trace_distance (exact digits)\n");
}

int qctl_cmd_fidelity(int argc, char **argv, struct qctl_global *g)
{
    struct state st[2] = {{NULL, 0, NULL}, {NULL, 0, NULL}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_spectrum sp;
    struct qctl_anl_opts o;
    double f = 0.0, t = 0.0;
    int r = qctl_anl_args(argc, argv, g, "fidelity", 2, &o);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    st[0].arg = argv[optind];
    st[1].arg = argv[optind + 1];
    r = load_states(st);
    if (r)
        goto out;
    if (st[0].d != st[1].d) {
        qctl_err("'%s' has dimension %zu but '%s' has %zu", st[0].arg, st[0].d, st[1].arg, st[1].d);
        r = QCTL_EXIT_USAGE;
        goto out;
    }
    sp.V = qt_ws_alloc_n(&ws, st[0].d * st[0].d, sizeof(double complex));
    sp.lam = qt_ws_alloc_n(&ws, st[0].d, sizeof(double));
    r = sp.V && sp.lam ? qt_rho_spectrum(&ws, st[0].d, st[0].rho, &sp) : -ENOMEM;
    if (r >= 0)
        r = qt_rho_fidelity(&ws, &sp, st[1].rho, &f);
    if (r >= 0)
        r = qt_rho_trace_distance(&ws, st[0].d, st[0].rho, st[1].rho, &t);
    if (r < 0) {
        qctl_err("fidelity: %s", qt_strerror(r));
        r = QCTL_EXIT_FAILED;
        goto out;
    }
    if (o.json) {
        struct qt_jw w;

        qt_jw_init(&w);
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "a");
        qt_jw_str(&w, st[0].arg);
        qt_jw_key(&w, "b");
        qt_jw_str(&w, st[1].arg);
        qt_jw_key(&w, "dim");
        qt_jw_int(&w, (int64_t)st[0].d);
        qt_jw_key(&w, "fidelity");
        qt_jw_num(&w, f);
        qt_jw_key(&w, "trace_distance");
        qt_jw_num(&w, t);
        qt_jw_obj_end(&w);
        if (w.err == 0)
            printf("%s\n", w.buf);
        qt_jw_done(&w);
    } else {
        printf("%-15s %zu\n", "dim", st[0].d);
        print_num_line("fidelity", f);
        print_num_line("trace_distance", t);
    }
out:
    qt_ws_done(&ws);
    free(st[0].rho);
    free(st[1].rho);
    return r;
}

/* ---- bell ---- */

struct bell_row {
    size_t d, k, dominant;
    double max, min, avg;
    double *fid; /* d */
    long long sample;
    char *method;
};

struct bell_run {
    const char *path;
    struct bell_row *rows;
    size_t n, cap, failed, nonsquare, maxd;
    int err;
};

static int bell_fn(json_t *rec, unsigned line, void *ctx)
{
    struct bell_run *b = ctx;
    const char *status = json_string_value(json_object_get(rec, "status"));
    const char *method = json_string_value(json_object_get(rec, "method"));
    json_t *sample = json_object_get(rec, "sample");
    struct bell_row *row;
    struct qt_diag dg = {0};
    double complex *rho;
    size_t d = record_dim(rec), k;

    if (!status || strcmp(status, "ok") != 0) {
        b->failed++;
        return 0;
    }
    if (!d || !method || !json_is_integer(sample) || json_integer_value(sample) < 0) {
        qctl_err("'%s' line %u: a record needs 'dim', 'method' and a sample >= 0", b->path, line);
        return QCTL_EXIT_USAGE;
    }
    k = qt_isqrt_exact(d);
    if (k < 2) {
        b->nonsquare++;
        return 0;
    }
    if (b->n == b->cap) {
        size_t ncap = b->cap ? 2 * b->cap : 64;
        struct bell_row *nr = realloc(b->rows, ncap * sizeof(*nr));

        if (!nr)
            goto nomem;
        b->rows = nr;
        b->cap = ncap;
    }
    row = &b->rows[b->n];
    memset(row, 0, sizeof(*row));
    rho = malloc(d * d * sizeof(*rho));
    row->fid = malloc(d * sizeof(double));
    row->method = strdup(method);
    if (!rho || !row->fid || !row->method) {
        free(rho);
        free(row->fid);
        free(row->method);
        goto nomem;
    }
    b->n++;
    if (record_rho(rec, d, rho, &dg) < 0) {
        free(rho);
        qctl_err("'%s' line %u: %s", b->path, line, dg.msg);
        return QCTL_EXIT_USAGE;
    }
    /* The origin's analyze_records: F_i = Re <Phi_i|rho|Phi_i>, max, min, mean (numpy's), the
     * first index of the largest. */
    qt_rho_bell(d, rho, row->fid);
    free(rho);
    row->d = d;
    row->k = k;
    row->sample = json_integer_value(sample);
    row->max = row->min = row->fid[0];
    for (size_t i = 1; i < d; i++) {
        if (row->fid[i] > row->max) {
            row->max = row->fid[i];
            row->dominant = i;
        }
        row->min = fmin(row->min, row->fid[i]);
    }
    row->avg = qctl_pairwise_sum(row->fid, d) / (double)d;
    if (d > b->maxd)
        b->maxd = d;
    return 0;
nomem:
    qctl_err("out of memory");
    return QCTL_EXIT_FAILED;
}

static void csv_num(FILE *f, double x)
{
    char buf[40];

    (void)qt_fmt_double(x, buf, sizeof(buf));
    fprintf(f, ",%s", buf);
}

/* bell_summary.csv: the origin's columns in its order, then one column per Bell state. */
static int bell_write(const struct bell_run *b, const char *dir)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r;

    if (!f)
        return -ENOMEM;
    fputs("bell_dimension,bell_local_dimension,bell_max_fidelity,bell_min_fidelity,"
          "bell_avg_fidelity,bell_dominant_index,sample,method",
          f);
    for (size_t i = 0; i < b->maxd; i++)
        fprintf(f, ",bell_fidelity_%zu", i);
    fputc('\n', f);
    for (size_t j = 0; j < b->n; j++) {
        const struct bell_row *row = &b->rows[j];
        bool quote = strpbrk(row->method, ",\"\n\r") != NULL;

        fprintf(f, "%zu,%zu", row->d, row->k);
        csv_num(f, row->max);
        csv_num(f, row->min);
        csv_num(f, row->avg);
        fprintf(f, ",%zu,%lld,%s", row->dominant, row->sample, quote ? "\"" : "");
        for (const char *p = row->method; *p; p++)
            fprintf(f, *p == '"' ? "\"\"" : "%c", *p);
        fputs(quote ? "\"" : "", f);
        for (size_t i = 0; i < b->maxd; i++)
            if (i < row->d)
                csv_num(f, row->fid[i]);
            else
                fputc(',', f);
        fputc('\n', f);
    }
    if (fclose(f) != 0 || !buf) {
        free(buf);
        return -ENOMEM;
    }
    r = qctl_write_atomic(dir, "bell_summary.csv", buf, len);
    free(buf);
    return r;
}

/* Per method: records, the largest fidelity's mean, min and max, and how often each Bell
 * state dominates. */
static void bell_report(const struct bell_run *b, const char *out_path, struct qt_jw *w)
{
    const char **meth = calloc(b->n + 1, sizeof(char *));
    size_t *counts = calloc(b->maxd + 1, sizeof(size_t)), nmeth = 0;
    double *x = calloc(b->n + 1, sizeof(double));

    if (!meth || !counts || !x)
        goto out;
    for (size_t j = 0; j < b->n; j++) {
        size_t m;

        for (m = 0; m < nmeth && strcmp(meth[m], b->rows[j].method) != 0; m++)
            ;
        if (m == nmeth)
            meth[nmeth++] = b->rows[j].method;
    }
    if (w) {
        qt_jw_obj_begin(w);
        qt_jw_key(w, "output");
        qt_jw_str(w, out_path);
        qt_jw_key(w, "records");
        qt_jw_int(w, (int64_t)b->n);
        qt_jw_key(w, "failed_skipped");
        qt_jw_int(w, (int64_t)b->failed);
        qt_jw_key(w, "not_square_skipped");
        qt_jw_int(w, (int64_t)b->nonsquare);
        qt_jw_key(w, "methods");
        qt_jw_obj_begin(w);
    } else {
        printf("bell: %zu records analysed", b->n);
        if (b->failed || b->nonsquare)
            printf(" (skipped: %zu failed, %zu of a dimension that is not a square)", b->failed,
                   b->nonsquare);
        printf("\n  %-8s %7s %12s %12s %12s  %s\n", "method", "records", "mean max F", "min max F",
               "max max F", "dominant Bell state: records");
    }
    for (size_t m = 0; m < nmeth; m++) {
        size_t n = 0;
        double lo = INFINITY, hi = -INFINITY, mean;

        memset(counts, 0, b->maxd * sizeof(size_t));
        for (size_t j = 0; j < b->n; j++)
            if (strcmp(b->rows[j].method, meth[m]) == 0) {
                x[n++] = b->rows[j].max;
                lo = fmin(lo, b->rows[j].max);
                hi = fmax(hi, b->rows[j].max);
                counts[b->rows[j].dominant]++;
            }
        mean = qctl_pairwise_sum(x, n) / (double)n;
        if (w) {
            qt_jw_key(w, meth[m]);
            qt_jw_obj_begin(w);
            qt_jw_key(w, "records");
            qt_jw_int(w, (int64_t)n);
            qt_jw_key(w, "max_fidelity");
            qt_jw_obj_begin(w);
            qt_jw_key(w, "mean");
            qt_jw_num(w, mean);
            qt_jw_key(w, "min");
            qt_jw_num(w, lo);
            qt_jw_key(w, "max");
            qt_jw_num(w, hi);
            qt_jw_obj_end(w);
            qt_jw_key(w, "dominant_index_counts");
            qt_jw_arr_begin(w);
            for (size_t i = 0; i < b->maxd; i++)
                qt_jw_int(w, (int64_t)counts[i]);
            qt_jw_arr_end(w);
            qt_jw_obj_end(w);
        } else {
            printf("  %-8s %7zu %12.8f %12.8f %12.8f ", meth[m], n, mean, lo, hi);
            for (size_t i = 0; i < b->maxd; i++)
                if (counts[i])
                    printf(" %zu: %zu", i, counts[i]);
            putchar('\n');
        }
    }
    if (w) {
        qt_jw_obj_end(w);
        qt_jw_obj_end(w);
    } else {
        printf("  output: %s\n", out_path);
    }
out:
    free(meth);
    free(counts);
    free(x);
}

void qctl_bell_usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomoctl bell DIR [--json]\n\n"
            "The origin's Bell analysis (bell-analyze) of every ok record in DIR/records.jsonl\n"
            "whose dimension d is a square k*k: the fidelities F_i = <Phi_i|rho|Phi_i> with the\n"
            "generalised Bell states |Phi_mn> = k^-1/2 sum_j w^(mj) |j>|j+n mod k> (i = m k + n),\n"
            "their max, min, mean and the index of the largest. Written to DIR/bell_summary.csv\n"
            "(the origin's columns, then bell_fidelity_0.. for every state); a summary per\n"
            "method is printed. Records made without --bell are analysed too.\n\n"
            "  --json   the summary as one JSON object\n");
}

int qctl_cmd_bell(int argc, char **argv, struct qctl_global *g)
{
    struct bell_run b = {0};
    struct qctl_anl_opts o;
    char *file = NULL, *dir = NULL, *out_path = NULL;
    int r = qctl_anl_args(argc, argv, g, "bell", 1, &o);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    if (qctl_is_dir(argv[optind])) {
        dir = strdup(argv[optind]);
        file = qctl_in_dir(argv[optind], "records.jsonl");
    } else {
        const char *slash = strrchr(argv[optind], '/');

        file = strdup(argv[optind]);
        dir = !slash                  ? strdup(".")
              : slash == argv[optind] ? strdup("/")
                                      : strndup(argv[optind], (size_t)(slash - argv[optind]));
    }
    if (!file || !dir || asprintf(&out_path, "%s/bell_summary.csv", dir) < 0) {
        qctl_err("out of memory");
        r = QCTL_EXIT_FAILED;
        goto out;
    }
    b.path = file;
    r = each_record(file, bell_fn, &b);
    if (r)
        goto out;
    if (b.n == 0) {
        if (b.nonsquare)
            qctl_err("'%s': no record has a square dimension d = k*k, which Bell analysis needs",
                     file);
        else
            qctl_err("'%s': no ok records to analyse", file);
        r = b.nonsquare ? QCTL_EXIT_USAGE : b.failed ? QCTL_EXIT_FAILED : QCTL_EXIT_OK;
        goto out;
    }
    if (bell_write(&b, dir) < 0) {
        r = QCTL_EXIT_FAILED;
        goto out;
    }
    if (o.json) {
        struct qt_jw w;

        qt_jw_init(&w);
        bell_report(&b, out_path, &w);
        if (w.err == 0)
            printf("%s\n", w.buf);
        qt_jw_done(&w);
    } else {
        bell_report(&b, out_path, NULL);
    }
out:
    for (size_t j = 0; j < b.n; j++) {
        free(b.rows[j].fid);
        free(b.rows[j].method);
    }
    free(b.rows);
    free(file);
    free(dir);
    free(out_path);
    return r;
}
