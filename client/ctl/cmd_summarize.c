/* qtomoctl summarize: statistics of a run's summary.csv per method, and of the paired
 * per-sample differences between methods, with convergence and iteration counts. The
 * statistics are pandas' describe(): sample std (ddof 1), quartiles by numpy's linear
 * interpolation, sums pairwise as numpy's. */
#include <getopt.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "analysis.h"
#include "csvtab.h"
#include "io/qt_json.h"

/* ---- summarize ---- */

struct stats {
    size_t count;
    double mean, std, min, q25, q50, q75, max;
};

/* Columns that identify a row rather than measure anything. */
static const char *const id_cols[] = {"sample", "method", "column", "dim", "error_code"};

/* numpy's linear interpolation between sorted neighbours (np.percentile, method "linear"). */
static double quantile(const double *x, size_t n, double q)
{
    double h = q * (double)(n - 1), t;
    size_t lo = (size_t)floor(h), hi = lo + 1 < n ? lo + 1 : n - 1;
    double diff;

    t = h - (double)lo;
    diff = x[hi] - x[lo];
    return t >= 0.5 ? x[hi] - diff * (1.0 - t) : x[lo] + diff * t;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

/* pandas' describe() of x[0..n) (no NaN); x is sorted in place. */
static void describe(double *x, size_t n, struct stats *s)
{
    double sq = 0.0, *dev;

    memset(s, 0, sizeof(*s));
    s->count = n;
    s->mean = s->std = s->min = s->q25 = s->q50 = s->q75 = s->max = NAN;
    if (n == 0)
        return;
    s->mean = qctl_pairwise_sum(x, n) / (double)n;
    dev = malloc(n * sizeof(double));
    if (dev) {
        for (size_t i = 0; i < n; i++)
            dev[i] = (s->mean - x[i]) * (s->mean - x[i]);
        sq = qctl_pairwise_sum(dev, n);
        free(dev);
        if (n > 1)
            s->std = sqrt(sq / (double)(n - 1));
    }
    qsort(x, n, sizeof(double), cmp_double);
    s->min = x[0];
    s->max = x[n - 1];
    s->q25 = quantile(x, n, 0.25);
    s->q50 = quantile(x, n, 0.5);
    s->q75 = quantile(x, n, 0.75);
}

struct summ {
    struct qctl_csvtab t;
    char *path;
    int method_col, sample_col, status_col;
    size_t nnum;
    size_t *num; /* nnum numeric metric columns */
    double *val; /* nnum columns of nrows, NaN where empty */
    size_t nmeth;
    const char **meth; /* methods in order of first appearance */
    size_t *mrow;      /* nrows: each row's method index */
    double *scratch;   /* nrows */
};

#define SUMM_MAX_COMPARE 64 /* methods --compare-methods takes */

/* Fully a number (as pandas reads one: "nan" is missing, "inf" infinite). */
static bool parse_num(const char *s, double *x)
{
    char *end;

    if (!*s || strpbrk(s, "xX")) /* strtod's hexadecimal forms are text to pandas */
        return false;
    *x = strtod(s, &end);
    return *end == '\0';
}

static bool is_id_col(const char *name)
{
    for (size_t i = 0; i < QT_ARRAY_SIZE(id_cols); i++)
        if (strcmp(id_cols[i], name) == 0)
            return true;
    return false;
}

/* Finds the numeric metric columns (every non-empty cell a number, at least one) and the
 * methods. Returns 0 or an exit code (printed). */
static int summ_index(struct summ *s)
{
    const struct qctl_csvtab *t = &s->t;

    s->method_col = qctl_csvtab_col(t, "method");
    s->sample_col = qctl_csvtab_col(t, "sample");
    s->status_col = qctl_csvtab_col(t, "record_status");
    if (s->method_col < 0) {
        qctl_err("'%s' has no 'method' column", s->path);
        return QCTL_EXIT_USAGE;
    }
    s->num = calloc(t->ncols, sizeof(size_t));
    s->meth = calloc(t->nrows + 1, sizeof(char *));
    s->mrow = calloc(t->nrows + 1, sizeof(size_t));
    s->scratch = calloc(t->nrows + 1, sizeof(double));
    if (!s->num || !s->meth || !s->mrow || !s->scratch) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    for (size_t c = 0; c < t->ncols; c++) {
        size_t seen = 0, i;
        double x, *nv;

        if (is_id_col(t->head[c]))
            continue;
        for (i = 0; i < t->nrows; i++) {
            const char *cell = qctl_csvtab_cell(t, i, c);

            if (!*cell)
                continue;
            if (!parse_num(cell, &x))
                break;
            seen += isnan(x) ? 0u : 1u;
        }
        if (i < t->nrows || !seen)
            continue;
        /* Column-major, one column at a time: memory grows with the numeric cells only. */
        nv = realloc(s->val, (s->nnum + 1) * t->nrows * sizeof(double) + 1);
        if (!nv) {
            qctl_err("out of memory");
            return QCTL_EXIT_FAILED;
        }
        s->val = nv;
        for (i = 0; i < t->nrows; i++) {
            const char *cell = qctl_csvtab_cell(t, i, c);

            s->val[s->nnum * t->nrows + i] = parse_num(cell, &x) ? x : NAN;
        }
        s->num[s->nnum++] = c;
    }
    for (size_t i = 0; i < t->nrows; i++) {
        const char *m = qctl_csvtab_cell(t, i, (size_t)s->method_col);
        size_t k;

        if (!*m) {
            qctl_err("'%s' line %u: no method", s->path, t->line[i]);
            return QCTL_EXIT_USAGE;
        }
        for (k = 0; k < s->nmeth && strcmp(s->meth[k], m) != 0; k++)
            ;
        if (k == s->nmeth)
            s->meth[s->nmeth++] = m;
        s->mrow[i] = k;
    }
    return 0;
}

static double summ_val(const struct summ *s, size_t row, size_t k)
{
    return s->val[k * s->t.nrows + row];
}

/* Statistics of metric k over the rows of method m. */
static void summ_method_stats(struct summ *s, size_t m, size_t k, struct stats *st)
{
    size_t n = 0;

    for (size_t i = 0; i < s->t.nrows; i++)
        if (s->mrow[i] == m && !isnan(summ_val(s, i, k)))
            s->scratch[n++] = summ_val(s, i, k);
    describe(s->scratch, n, st);
}

static bool row_ok(const struct summ *s, size_t row)
{
    return s->status_col < 0 ||
           strcmp(qctl_csvtab_cell(&s->t, row, (size_t)s->status_col), "ok") == 0;
}

struct keyed {
    const char *sample;
    size_t row;
};

static int cmp_keyed(const void *a, const void *b)
{
    return strcmp(((const struct keyed *)a)->sample, ((const struct keyed *)b)->sample);
}

/* Rows of each method sorted by sample (for pairing): idx[m] with cnt[m] entries. Returns 0
 * or an exit code (a duplicate sample of a method). */
static int summ_pairing(struct summ *s, struct keyed **idx, size_t *cnt)
{
    const struct qctl_csvtab *t = &s->t;

    if (s->sample_col < 0) {
        qctl_err("'%s' has no 'sample' column to pair methods on", s->path);
        return QCTL_EXIT_USAGE;
    }
    for (size_t m = 0; m < s->nmeth; m++) {
        idx[m] = malloc((t->nrows + 1) * sizeof(struct keyed));
        if (!idx[m]) {
            qctl_err("out of memory");
            return QCTL_EXIT_FAILED;
        }
        cnt[m] = 0;
    }
    for (size_t i = 0; i < t->nrows; i++)
        idx[s->mrow[i]][cnt[s->mrow[i]]++] =
            (struct keyed){qctl_csvtab_cell(t, i, (size_t)s->sample_col), i};
    for (size_t m = 0; m < s->nmeth; m++) {
        qsort(idx[m], cnt[m], sizeof(struct keyed), cmp_keyed);
        for (size_t j = 1; j < cnt[m]; j++)
            if (strcmp(idx[m][j].sample, idx[m][j - 1].sample) == 0) {
                qctl_err("'%s' lines %u and %u: two rows of sample %s, method %s", s->path,
                         t->line[idx[m][j - 1].row], t->line[idx[m][j].row], idx[m][j].sample,
                         s->meth[m]);
                return QCTL_EXIT_USAGE;
            }
    }
    return 0;
}

/* Statistics of b - a for metric k over the samples where both rows are ok and have it;
 * rows of a in file order. */
static void summ_diff_stats(struct summ *s, size_t a, size_t b, struct keyed *const *idx,
                            const size_t *cnt, size_t k, struct stats *st)
{
    size_t n = 0;

    for (size_t i = 0; i < s->t.nrows; i++) {
        struct keyed key = {NULL, i}, *hit;

        if (s->mrow[i] != a || !row_ok(s, i) || isnan(summ_val(s, i, k)))
            continue;
        key.sample = qctl_csvtab_cell(&s->t, i, (size_t)s->sample_col);
        hit = bsearch(&key, idx[b], cnt[b], sizeof(struct keyed), cmp_keyed);
        if (hit && row_ok(s, hit->row) && !isnan(summ_val(s, hit->row, k))) {
            s->scratch[n] = summ_val(s, hit->row, k) - summ_val(s, i, k);
            n += isnan(s->scratch[n]) ? 0u : 1u; /* inf - inf: missing, as pandas has it */
        }
    }
    describe(s->scratch, n, st);
}

static void stats_json(struct qt_jw *w, const struct stats *st)
{
    const char *const keys[] = {"mean", "std", "min", "25%", "50%", "75%", "max"};
    const double v[] = {st->mean, st->std, st->min, st->q25, st->q50, st->q75, st->max};

    qt_jw_obj_begin(w);
    qt_jw_key(w, "count");
    qt_jw_int(w, (int64_t)st->count);
    for (size_t i = 0; i < QT_ARRAY_SIZE(keys); i++) {
        qt_jw_key(w, keys[i]);
        qt_jw_num(w, v[i]);
    }
    qt_jw_obj_end(w);
}

/* The table rounds to 8 significant digits; --json carries every digit. */
static void stats_row(const char *name, const struct stats *st)
{
    const double v[] = {st->mean, st->std, st->min, st->q25, st->q50, st->q75, st->max};

    printf("  %-26s %7zu", name, st->count);
    for (size_t i = 0; i < QT_ARRAY_SIZE(v); i++)
        printf(" %15.8g", v[i]);
    putchar('\n');
}

static void stats_head(const char *first)
{
    printf("  %-26s %7s %15s %15s %15s %15s %15s %15s %15s\n", first, "count", "mean", "std", "min",
           "25%", "50%", "75%", "max");
}

/* Convergence and iteration statistics of method m: the fraction of ok rows with a
 * true "converged" or "success", and iterations/n_iterations/n_evaluations. */
static void summ_convergence(struct summ *s, size_t m, struct qt_jw *w)
{
    static const char *const flags[] = {"converged", "success"};
    static const char *const iters[] = {"iterations", "n_iterations", "n_evaluations"};
    bool any = false;

    for (size_t f = 0; f < QT_ARRAY_SIZE(flags); f++) {
        int c = qctl_csvtab_col(&s->t, flags[f]);
        size_t n = 0, yes = 0;

        for (size_t i = 0; c >= 0 && i < s->t.nrows; i++) {
            const char *v = qctl_csvtab_cell(&s->t, i, (size_t)c);
            double x;

            if (s->mrow[i] != m || !*v)
                continue;
            n++;
            yes += strcmp(v, "True") == 0 || strcmp(v, "true") == 0 ||
                   (parse_num(v, &x) && x != 0.0 && !isnan(x));
        }
        if (!n)
            continue;
        if (w) {
            if (!any) {
                qt_jw_key(w, s->meth[m]);
                qt_jw_obj_begin(w);
            }
            qt_jw_key(w, flags[f]);
            qt_jw_obj_begin(w);
            qt_jw_key(w, "count");
            qt_jw_int(w, (int64_t)n);
            qt_jw_key(w, "true");
            qt_jw_int(w, (int64_t)yes);
            qt_jw_key(w, "fraction");
            qt_jw_num(w, (double)yes / (double)n);
            qt_jw_obj_end(w);
        } else {
            printf("  %-8s %-14s %zu of %zu (%.1f %%)\n", s->meth[m], flags[f], yes, n,
                   100.0 * (double)yes / (double)n);
        }
        any = true;
    }
    for (size_t f = 0; f < QT_ARRAY_SIZE(iters); f++) {
        int c = qctl_csvtab_col(&s->t, iters[f]);
        size_t k;
        struct stats st;

        for (k = 0; c >= 0 && k < s->nnum && s->num[k] != (size_t)c; k++)
            ;
        if (c < 0 || k == s->nnum)
            continue;
        summ_method_stats(s, m, k, &st);
        if (!st.count)
            continue;
        if (w) {
            if (!any) {
                qt_jw_key(w, s->meth[m]);
                qt_jw_obj_begin(w);
            }
            qt_jw_key(w, iters[f]);
            qt_jw_obj_begin(w);
            qt_jw_key(w, "count");
            qt_jw_int(w, (int64_t)st.count);
            qt_jw_key(w, "mean");
            qt_jw_num(w, st.mean);
            qt_jw_key(w, "median");
            qt_jw_num(w, st.q50);
            qt_jw_key(w, "max");
            qt_jw_num(w, st.max);
            qt_jw_obj_end(w);
        } else {
            printf("  %-8s %-14s mean %.8g, median %.8g, max %.8g (%zu rows)\n", s->meth[m],
                   iters[f], st.mean, st.q50, st.max, st.count);
        }
        any = true;
    }
    if (w && any)
        qt_jw_obj_end(w);
}

static void summ_free(struct summ *s)
{
    qctl_csvtab_done(&s->t);
    free(s->num);
    free(s->val);
    free(s->meth);
    free(s->mrow);
    free(s->scratch);
}

static int summ_load(struct summ *s)
{
    struct qt_diag dg = {0};
    char *buf = NULL;
    size_t len = 0;
    int r = qctl_read_file(s->path, QCTL_CSVTAB_MAX_BYTES, &buf, &len);

    if (r < 0) {
        qctl_err("cannot read '%s': %s", s->path, qt_strerror(r));
        return QCTL_EXIT_USAGE;
    }
    r = qctl_csvtab_parse(buf, len, &s->t, &dg);
    if (r < 0) {
        if (dg.line && dg.column)
            qctl_err("'%s' line %u, field %u: %s", s->path, dg.line, dg.column, dg.msg);
        else if (dg.line)
            qctl_err("'%s' line %u: %s", s->path, dg.line, dg.msg);
        else
            qctl_err("'%s': %s", s->path, dg.msg);
        return QCTL_EXIT_USAGE;
    }
    return summ_index(s);
}

/* Per method, each numeric metric it has. */
static void summ_methods_out(struct summ *s, struct qt_jw *w)
{
    struct stats st;

    if (w) {
        qt_jw_key(w, "methods");
        qt_jw_obj_begin(w);
    }
    for (size_t m = 0; m < s->nmeth; m++) {
        size_t rows = 0;

        for (size_t i = 0; i < s->t.nrows; i++)
            rows += s->mrow[i] == m;
        if (w) {
            qt_jw_key(w, s->meth[m]);
            qt_jw_obj_begin(w);
            qt_jw_key(w, "rows");
            qt_jw_int(w, (int64_t)rows);
            qt_jw_key(w, "metrics");
            qt_jw_obj_begin(w);
        } else {
            printf("%s%s: %zu rows\n", m ? "\n" : "", s->meth[m], rows);
            stats_head("metric");
        }
        for (size_t k = 0; k < s->nnum; k++) {
            summ_method_stats(s, m, k, &st);
            if (!st.count)
                continue;
            if (w) {
                qt_jw_key(w, s->t.head[s->num[k]]);
                stats_json(w, &st);
            } else {
                stats_row(s->t.head[s->num[k]], &st);
            }
        }
        if (w) {
            qt_jw_obj_end(w);
            qt_jw_obj_end(w);
        }
    }
    if (w)
        qt_jw_obj_end(w);
}

/* Every pair of methods (in order of appearance): statistics of the paired differences. */
static int summ_compare_out(struct summ *s, struct qt_jw *w)
{
    struct keyed **idx = calloc(s->nmeth + 1, sizeof(*idx));
    size_t *cnt = calloc(s->nmeth + 1, sizeof(size_t));
    struct stats st;
    int r = idx && cnt ? summ_pairing(s, idx, cnt) : QCTL_EXIT_FAILED;

    if (r)
        goto out;
    if (w) {
        qt_jw_key(w, "comparisons");
        qt_jw_arr_begin(w);
    }
    for (size_t a = 0; a < s->nmeth; a++)
        for (size_t b = a + 1; b < s->nmeth; b++) {
            if (w) {
                qt_jw_obj_begin(w);
                qt_jw_key(w, "a");
                qt_jw_str(w, s->meth[a]);
                qt_jw_key(w, "b");
                qt_jw_str(w, s->meth[b]);
                qt_jw_key(w, "difference");
                qt_jw_str(w, "b - a");
                qt_jw_key(w, "metrics");
                qt_jw_obj_begin(w);
            } else {
                printf("\n%s - %s, paired by sample (rows where both are ok):\n", s->meth[b],
                       s->meth[a]);
                stats_head("metric");
            }
            for (size_t k = 0; k < s->nnum; k++) {
                struct stats sa, sb;

                summ_method_stats(s, a, k, &sa);
                summ_method_stats(s, b, k, &sb);
                if (!sa.count || !sb.count)
                    continue;
                summ_diff_stats(s, a, b, idx, cnt, k, &st);
                if (w) {
                    qt_jw_key(w, s->t.head[s->num[k]]);
                    stats_json(w, &st);
                } else {
                    stats_row(s->t.head[s->num[k]], &st);
                }
            }
            if (w) {
                qt_jw_obj_end(w);
                qt_jw_obj_end(w);
            }
        }
    if (w) {
        qt_jw_arr_end(w);
        qt_jw_key(w, "convergence");
        qt_jw_obj_begin(w);
    } else {
        printf("\nconvergence and iterations:\n");
    }
    for (size_t m = 0; m < s->nmeth; m++)
        summ_convergence(s, m, w);
    if (w)
        qt_jw_obj_end(w);
out:
    for (size_t m = 0; idx && m < s->nmeth; m++)
        free(idx[m]);
    free(idx);
    free(cnt);
    return r;
}

void qctl_summarize_usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomoctl summarize DIR|summary.csv [--compare-methods] [--json]\n\n"
            "Statistics of each numeric metric column of a run's summary.csv, per method:\n"
            "count, mean, std (sample, ddof 1), min, 25 %%, 50 %%, 75 %% (linear interpolation)\n"
            "and max, as pandas' groupby('method').describe() computes them.\n\n"
            "  --compare-methods  also, for each pair of methods a, b: the same statistics of\n"
            "                     the per-sample differences b - a (samples where both records\n"
            "                     are ok), and per method the fraction converged (converged,\n"
            "                     success) and iteration counts (mean, median, max)\n"
            "  --json             one JSON object with every digit (the table shows 8)\n");
}

int qctl_cmd_summarize(int argc, char **argv, struct qctl_global *g)
{
    struct summ s;
    struct qctl_anl_opts o;
    struct qt_jw w;
    int r = qctl_anl_args(argc, argv, g, "summarize", 1, &o);

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    memset(&s, 0, sizeof(s));
    s.path = qctl_in_dir(argv[optind], "summary.csv");
    if (!s.path) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    r = summ_load(&s);
    if (r)
        goto out;
    if (s.t.nrows == 0)
        fprintf(stderr, "qtomoctl: '%s' has no rows\n", s.path);
    qt_jw_init(&w);
    if (o.json) {
        qt_jw_obj_begin(&w);
        qt_jw_key(&w, "file");
        qt_jw_str(&w, s.path);
        qt_jw_key(&w, "rows");
        qt_jw_int(&w, (int64_t)s.t.nrows);
    }
    summ_methods_out(&s, o.json ? &w : NULL);
    if (o.compare && s.nmeth > SUMM_MAX_COMPARE) { /* pairs grow as the square */
        qctl_err("'%s' has %zu methods; --compare-methods compares at most %d", s.path, s.nmeth,
                 SUMM_MAX_COMPARE);
        r = QCTL_EXIT_USAGE;
    } else if (o.compare) {
        r = summ_compare_out(&s, o.json ? &w : NULL);
    }
    if (o.json && r == 0) {
        qt_jw_obj_end(&w);
        if (w.err)
            r = QCTL_EXIT_FAILED;
        else
            printf("%s\n", w.buf);
    }
    qt_jw_done(&w);
out:
    summ_free(&s);
    free(s.path);
    return r;
}
