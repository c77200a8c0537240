/* qtomoctl's pictures of a run: reading DIR/records.jsonl and run.json, the per-sample and
 * run-level figures (plot_draw.c). Linked by the helper qtomo-plot (plot_main.c) and qtomo-mpi;
 * qtomoctl runs the helper (helpers.c), so that it does not load cairo. */
#include "num/qt_design.h"
#include "plot_run.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "plot_draw.h"
#include "plot_geom.h"
#include "qctl.h"

static bool selected(const struct plot_sel *sel, size_t sample, int64_t column)
{
    if (sel->kind == PLOT_SEL_ALL)
        return true;
    if (sel->kind == PLOT_SEL_FIRST)
        return sample < sel->first;
    for (size_t k = 0; k < sel->n_ranges; k++)
        if (column >= sel->lo[k] && column <= sel->hi[k])
            return true;
    return false;
}

void plot_safe_name(const char *s, char *buf, size_t size)
{
    size_t k = 0;

    for (; s[k] && k + 1 < size; k++) {
        char c = s[k];

        buf[k] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                         c == '-' || c == '_'
                     ? c
                     : '_';
    }
    buf[k] = '\0';
}

static double num(json_t *v)
{
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static int cmp_desc(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x < y) - (x > y);
}

/* A method name as figure titles show it: at most 40 bytes, cut on a UTF-8 character boundary,
 * bytes that are not UTF-8 replaced by '?' (cairo refuses invalid text and the figure would
 * come out blank). */
static char *title_name(const char *name)
{
    char *out = malloc(41);
    size_t o = 0;

    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)name; *p;) {
        size_t n = *p < 0x80 ? 1 : (*p & 0xe0) == 0xc0 ? 2 : (*p & 0xf0) == 0xe0 ? 3
                 : (*p & 0xf8) == 0xf0 ? 4 : 0;
        size_t k = 1;

        while (n && k < n && (p[k] & 0xc0) == 0x80)
            k++;
        if (!n || k < n)
            n = 0;
        if (o + (n ? n : 1) > 40)
            break;
        if (n) {
            memcpy(out + o, p, n);
            o += n;
            p += n;
        } else {
            out[o++] = '?';
            p++;
        }
    }
    out[o] = '\0';
    return out;
}

static unsigned method_index(struct plot_run *pr, const char *name)
{
    char *t = title_name(name);

    if (!t)
        return UINT32_MAX;
    for (unsigned k = 0; k < pr->n_methods; k++)
        if (strcmp(pr->methods[k], t) == 0) {
            free(t);
            return k;
        }
    if (pr->n_methods == PLOT_MAX_METHODS) {
        free(t);
        return UINT32_MAX;
    }
    pr->methods[pr->n_methods] = t;
    return (unsigned)pr->n_methods++;
}

/* A record's numbers for the figures: purity and fidelity with their intervals, the
 * eigenvalues (sorted descending). 0, or -ENOMEM. */
static int take_metrics(struct plot_run *pr, struct plot_rec *r, json_t *j)
{
    json_t *m = json_object_get(j, "metrics"), *u, *eig = json_object_get(m, "eigenvalues");
    json_t *um = json_object_get(json_object_get(j, "uncertainty"), "metrics");
    size_t d = (size_t)json_integer_value(json_object_get(j, "dim"));

    r->purity = num(json_object_get(m, "purity"));
    r->fidelity = num(json_object_get(m, "fidelity"));
    u = json_object_get(um, "purity");
    r->purity_lo = num(json_object_get(u, "lo"));
    r->purity_hi = num(json_object_get(u, "hi"));
    u = json_object_get(um, "fidelity");
    r->fidelity_lo = num(json_object_get(u, "lo"));
    r->fidelity_hi = num(json_object_get(u, "hi"));
    pr->have_fidelity |= isfinite(r->fidelity);
    pr->have_unc |= isfinite(r->purity_lo);
    if (!pr->d && r->ok && d >= 1 && d <= QT_DESIGN_MAX_D) /* failed records say little */
        pr->d = d;
    if (json_is_array(eig) && d == pr->d && json_array_size(eig) == d) {
        r->eig = malloc(d * sizeof(*r->eig));
        if (!r->eig)
            return -ENOMEM;
        for (size_t k = 0; k < d; k++)
            r->eig[k] = num(json_array_get(eig, k));
        qsort(r->eig, d, sizeof(*r->eig), cmp_desc);
    }
    return 0;
}

/* Takes one parsed record into pr (ownership of j passes). 0, or -ENOMEM. */
static int add_record(struct plot_run *pr, const struct plot_sel *sel, json_t *j)
{
    json_t *err;
    const char *method = json_string_value(json_object_get(j, "method"));
    struct plot_rec *r;

    if (!method || !json_is_integer(json_object_get(j, "sample")) ||
        json_integer_value(json_object_get(j, "sample")) < 0) {
        json_decref(j);
        return 0; /* not a record */
    }
    if (pr->n_recs == pr->cap) {
        size_t cap = pr->cap ? 2 * pr->cap : 256;
        struct plot_rec *n = realloc(pr->recs, cap * sizeof(*n));

        if (!n) {
            json_decref(j);
            return -ENOMEM;
        }
        pr->recs = n;
        pr->cap = cap;
    }
    r = &pr->recs[pr->n_recs];
    memset(r, 0, sizeof(*r));
    r->method = method_index(pr, method);
    if (r->method == UINT32_MAX) {
        json_decref(j);
        return 0; /* more methods than a figure shows */
    }
    pr->n_recs++;
    r->sample = (size_t)json_integer_value(json_object_get(j, "sample"));
    r->column = json_integer_value(json_object_get(j, "column"));
    r->ok = json_is_string(json_object_get(j, "status")) &&
            strcmp(json_string_value(json_object_get(j, "status")), "ok") == 0;
    if (take_metrics(pr, r, j) < 0) {
        json_decref(j);
        return -ENOMEM;
    }
    if (r->sample + 1 > pr->n_samples)
        pr->n_samples = r->sample + 1;
    err = json_object_get(json_object_get(j, "error"), "message");
    if (json_is_string(err))
        r->error = strdup(json_string_value(err));
    r->selected = selected(sel, r->sample, r->column);
    if (r->selected) {
        r->json = j;
        pr->n_selected++;
    } else {
        json_decref(j);
    }
    return 0;
}

static int load_run(struct plot_run *pr, const struct plot_sel *sel)
{
    char path[4096], *line = NULL;
    size_t cap = 0, lineno = 0;
    ssize_t len;
    FILE *f;
    int r = 0;

    (void)snprintf(path, sizeof(path), "%s/run.json", pr->dir);
    pr->run = json_load_file(path, 0, NULL);
    (void)snprintf(path, sizeof(path), "%s/records.jsonl", pr->dir);
    f = fopen(path, "re");
    if (!f) {
        r = -errno;
        qctl_err("cannot read '%s': %s", path, strerror(-r));
        return r;
    }
    while (r == 0 && (len = getline(&line, &cap, f)) > 0) {
        json_error_t je;
        json_t *j;

        lineno++;
        j = json_loadb(line, (size_t)len, 0, &je);
        if (!j) {
            /* An interrupted run's last line; --resume truncates it. */
            qctl_err("'%s' line %zu: %s, ignoring", path, lineno, je.text);
            continue;
        }
        r = add_record(pr, sel, j);
    }
    free(line);
    fclose(f);
    if (r < 0)
        qctl_err("reading '%s': %s", path, strerror(-r));
    return r;
}

static void run_free(struct plot_run *pr)
{
    for (size_t k = 0; k < pr->n_recs; k++) {
        free(pr->recs[k].eig);
        free(pr->recs[k].error);
        json_decref(pr->recs[k].json);
    }
    free(pr->recs);
    for (size_t k = 0; k < pr->n_methods; k++)
        free(pr->methods[k]);
    json_decref(pr->run);
}

/* Reads a record's rho part ("re" or "im") into m (row-major d x d); false when malformed. */
static bool rho_part(json_t *rec, const char *part, size_t d, double *m)
{
    json_t *rows = json_object_get(json_object_get(rec, "rho"), part);

    if (json_array_size(rows) != d)
        return false;
    for (size_t i = 0; i < d; i++) {
        json_t *row = json_array_get(rows, i);

        if (json_array_size(row) != d)
            return false;
        for (size_t j = 0; j < d; j++)
            m[i * d + j] = num(json_array_get(row, j));
    }
    return true;
}

const char *const plot_fig_kind[PLOT_FIG_KINDS] = {"re_bars", "im_bars", "re_heat", "im_heat",
                                                   "spectral"};

/* The dominant eigenvector of a --spectral record (amplitudes, phases in units of pi, d each)
 * into amp and phase (2 d doubles of scratch): false when the record has none. */
static bool spectral_part(json_t *rec, size_t d, double *amp, double *phase)
{
    json_t *sp = json_object_get(rec, "spectral"), *a = json_object_get(sp, "amplitudes"),
           *p = json_object_get(sp, "phases_pi");

    if (json_array_size(a) != d || json_array_size(p) != d)
        return false;
    for (size_t i = 0; i < d; i++) {
        amp[i] = num(json_array_get(a, i));
        phase[i] = num(json_array_get(p, i));
    }
    return true;
}

/* Draws one record's figures (none for a failed record or one of another dimension, no bars
 * above PLOT_MAX_BARS_D) and notes which exist in r->figures for the report. */
static int sample_figures(const struct plot_run *pr, struct plot_rec *r, double *re, double *im)
{
    size_t d = (size_t)json_integer_value(json_object_get(r->json, "dim"));
    char base[4096], method[64], ttl[4][160];
    double vmax;
    int ret = 0;

    if (!r->ok || d != pr->d || !rho_part(r->json, "re", d, re) || !rho_part(r->json, "im", d, im))
        return 0; /* a failed record has no rho: the report shows its error */
    plot_safe_name(pr->methods[r->method], method, sizeof(method));
    /* One scale for Re and Im of one state, so their heights and colours compare. */
    vmax = fmax(pg_sym_limit(re, d * d), pg_sym_limit(im, d * d));
    for (int k = 0; k < 4 && ret == 0; k++) {
        struct pd_matrix mx = {d, k % 2 ? im : re, vmax, ttl[k]};

        if (k < 2 && d > PLOT_MAX_BARS_D)
            continue;
        (void)snprintf(ttl[k], sizeof(ttl[k]), "sample %zu (column %lld), %.40s: %s \xcf\x81",
                       r->sample, (long long)r->column, pr->methods[r->method],
                       k % 2 ? "Im" : "Re");
        (void)snprintf(base, sizeof(base), "%s/plots/sample%zu_%s_%s", pr->dir, r->sample, method,
                       plot_fig_kind[k]);
        ret = k < 2 ? pd_city(base, &mx) : pd_heat(base, &mx);
        if (ret < 0)
            qctl_err("cannot write '%s.svg/pdf/png': %s", base, strerror(-ret));
        else
            r->figures |= 1u << k;
    }
    /* re and im are d x d scratch: their first 2 d doubles hold the eigenvector's parts */
    if (ret == 0 && spectral_part(r->json, d, re, re + d)) {
        (void)snprintf(ttl[0], sizeof(ttl[0]),
                       "sample %zu (column %lld), %.40s: dominant eigenvector", r->sample,
                       (long long)r->column, pr->methods[r->method]);
        (void)snprintf(base, sizeof(base), "%s/plots/sample%zu_%s_%s", pr->dir, r->sample, method,
                       plot_fig_kind[4]);
        ret = pd_spectral(base, ttl[0], d, re, re + d);
        if (ret < 0)
            qctl_err("cannot write '%s.svg/pdf/png': %s", base, strerror(-ret));
        else
            r->figures |= 1u << 4;
    }
    return ret;
}

/* The run-level figures: purity (and fidelity) over samples, eigenvalue spectra. */
static int run_figures(const struct plot_run *pr)
{
    size_t n = pr->n_recs, nm = pr->n_methods, d = pr->d ? pr->d : 1, cnt[PLOT_MAX_METHODS] = {0};
    double *buf = calloc(n * (4 + d) + 1, sizeof(double));
    double *x[PLOT_MAX_METHODS], *y[PLOT_MAX_METHODS], *lo[PLOT_MAX_METHODS], *hi[PLOT_MAX_METHODS],
        *ev[PLOT_MAX_METHODS];
    struct pd_series s[PLOT_MAX_METHODS];
    struct pd_spectra sp[PLOT_MAX_METHODS];
    char base[4096];
    int ret = 0;

    if (!buf)
        return -ENOMEM;
    for (size_t k = 0; k < n; k++)
        cnt[pr->recs[k].method]++;
    for (size_t m = 0, off = 0; m < nm; off += (4 + d) * cnt[m], m++) {
        x[m] = buf + off;
        y[m] = x[m] + cnt[m];
        lo[m] = y[m] + cnt[m];
        hi[m] = lo[m] + cnt[m];
        ev[m] = hi[m] + cnt[m];
    }
    for (int pass = 0; pass < 2 && ret == 0; pass++) {
        if (pass == 1 && !pr->have_fidelity)
            break;
        for (size_t m = 0; m < nm; m++) {
            s[m] = (struct pd_series){pr->methods[m], 0, x[m], y[m], lo[m], hi[m]};
            sp[m] = (struct pd_spectra){pr->methods[m], 0, d, ev[m]};
        }
        for (size_t k = 0; k < n; k++) {
            const struct plot_rec *r = &pr->recs[k];
            size_t m = r->method, i = s[m].n++;

            sp[m].n++;
            /* Methods side by side around each sample number, so their bars do not hide. */
            x[m][i] = (double)r->sample +
                      0.25 * ((double)m - 0.5 * (double)(nm - 1)) / (double)(nm > 1 ? nm - 1 : 1);
            y[m][i] = pass ? r->fidelity : r->purity;
            lo[m][i] = pass ? r->fidelity_lo : r->purity_lo;
            hi[m][i] = pass ? r->fidelity_hi : r->purity_hi;
            for (size_t j = 0; j < d; j++)
                ev[m][i * d + j] = r->eig && r->ok ? r->eig[j] : NAN;
        }
        (void)snprintf(base, sizeof(base), "%s/plots/run_%s", pr->dir,
                       pass ? "fidelity" : "purity");
        ret = pd_metric(base, pass ? "Fidelity to the target over samples" : "Purity over samples",
                        pass ? "fidelity" : "purity Tr \xcf\x81\xc2\xb2", s, nm);
    }
    if (ret == 0) {
        (void)snprintf(base, sizeof(base), "%s/plots/run_eigenvalues", pr->dir);
        ret = pd_spectra(base, "Eigenvalue spectra of all samples", sp, nm);
    }
    if (ret < 0)
        qctl_err("cannot write '%s.svg/pdf/png': %s", base, strerror(-ret));
    free(buf);
    return ret;
}

int qctl_plot_dir(const char *dir, const struct plot_sel *sel, const struct qctl_global *g)
{
    struct plot_run pr = {.dir = dir};
    char path[4096];
    double *re = NULL, *im = NULL;
    int r, ret = QCTL_EXIT_FAILED;

    r = load_run(&pr, sel);
    if (r < 0) {
        if (r == -ENOENT || r == -ENOTDIR)
            ret = QCTL_EXIT_USAGE; /* not a run directory */
        goto out;
    }
    (void)snprintf(path, sizeof(path), "%s/plots", dir);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        qctl_err("cannot create '%s': %s", path, strerror(errno));
        goto out;
    }
    re = malloc((pr.d * pr.d + 1) * sizeof(*re));
    im = malloc((pr.d * pr.d + 1) * sizeof(*im));
    if (!re || !im) {
        qctl_err("out of memory");
        goto out;
    }
    for (size_t k = 0; k < pr.n_recs; k++)
        if (pr.recs[k].selected && sample_figures(&pr, &pr.recs[k], re, im) < 0)
            goto out;
    if (run_figures(&pr) < 0)
        goto out;
    r = plot_report_write(&pr);
    if (r < 0) {
        qctl_err("cannot write '%s/report.html': %s", dir, strerror(-r));
        goto out;
    }
    if (g->verbosity >= 0 && !g->json)
        fprintf(stderr,
                "  figures: %s/plots (%zu of %zu records, and the run), report: "
                "%s/report.html\n",
                dir, pr.n_selected, pr.n_recs, dir);
    ret = 0;
out:
    free(re);
    free(im);
    run_free(&pr);
    pd_done();
    return ret;
}
