/* DIR/report.html: one self-contained page for a run (no network, no scripts or styles from
 * elsewhere; the figures are DIR/plots files referenced relatively). Every string from the data
 * is HTML-escaped. The summary table and the per-sample sections are capped so that the page of
 * a 10,000-sample run stays small and opens quickly; summary.csv has every row. */
#include <errno.h>
#include <math.h>
#include <nettle/base64.h>
#include <nettle/sha2.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "plot_run.h"
#include "recon.h"

#define REPORT_MAX_ROWS     200 /* summary rows shown */
#define REPORT_MAX_SECTIONS 100 /* (sample, method) sections with figures */

static void esc(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

static void numcell(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "<td class=n>%.6g</td>", v);
    else
        fputs("<td></td>", f);
}

/* A JSON value as text (strings bare, others compact JSON), escaped. */
static void json_cell(FILE *f, json_t *v)
{
    char *s;

    if (json_is_string(v)) {
        esc(f, json_string_value(v));
        return;
    }
    s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(8));
    esc(f, s);
    free(s);
}

static const char style[] =
    "body{font-family:sans-serif;margin:0 auto;max-width:1100px;padding:0 16px;color:#222}"
    "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px}"
    "th{background:#eee}td.n{text-align:right;font-family:monospace}"
    "tr.error td{background:#fdd}nav ul{columns:3}"
    "figure{display:inline-block;margin:4px}figure img{max-width:520px;width:100%}"
    ".note{color:#555;font-style:italic}pre{background:#f6f6f6;padding:8px;overflow:auto}"
    "#qt-status{color:#999;font-size:11px}.wide{overflow-x:auto}";

/* A tiny check that the page rendered, written into #qt-status on load (read by the browser
 * test through --dump-dom, and harmless to a reader): images loaded with a natural size, summary
 * rows, and errors seen (script errors, console.error, and resources that failed to load). */
static const char status_js[] =
    "(function(){var errs=0;"
    "window.addEventListener('error',function(){errs++;},true);"
    "var ce=console.error;console.error=function(){errs++;return ce.apply(console,arguments);};"
    "window.addEventListener('load',function(){var im=document.images,ok=0;"
    "for(var i=0;i<im.length;i++){if(im[i].complete&&im[i].naturalWidth>0)ok++;}"
    "var rows=document.querySelectorAll('#summary-table tbody tr').length;"
    "var s=document.getElementById('qt-status');"
    "s.setAttribute('data-images',im.length);s.setAttribute('data-loaded',ok);"
    "s.setAttribute('data-rows',rows);s.setAttribute('data-errors',errs);"
    "s.textContent='render check: '+ok+' of '+im.length+' images loaded, '+rows+"
    "' table rows, '+errs+' errors';});})();";

/* The Content-Security-Policy of the page: nothing from the network, images from the run
 * directory only, and no script but the render check (by its hash), so that markup that got
 * past the escaping still could not run or fetch anything. */
static void csp(FILE *f)
{
    struct sha256_ctx ctx;
    uint8_t dig[SHA256_DIGEST_SIZE];
    char b64[BASE64_ENCODE_RAW_LENGTH(SHA256_DIGEST_SIZE) + 1];

    sha256_init(&ctx);
    sha256_update(&ctx, sizeof(status_js) - 1, (const uint8_t *)status_js);
    sha256_digest(&ctx, sizeof(dig), dig);
    base64_encode_raw(b64, sizeof(dig), dig);
    b64[sizeof(b64) - 1] = '\0';
    fprintf(f,
            "<meta http-equiv=Content-Security-Policy content=\"default-src 'none'; "
            "img-src 'self'; style-src 'unsafe-inline'; script-src 'sha256-%s'\">\n",
            b64);
}

static void anchor(FILE *f, const struct plot_run *pr, const struct plot_rec *r)
{
    char m[64];

    plot_safe_name(pr->methods[r->method], m, sizeof(m));
    fprintf(f, "s%zu-%s", r->sample, m);
}

static void run_info(FILE *f, const struct plot_run *pr)
{
    static const char *const keys[] = {"input",   "input_sha256", "mode",     "server",
                                       "started", "finished",     "complete", "elapsed_ms",
                                       "counts",  "versions"};
    json_t *opts = json_object_get(pr->run, "options");
    char *s;

    fputs("<h2 id=run>Run</h2>\n", f);
    if (!pr->run) {
        fputs("<p class=note>No run.json in this directory.</p>\n", f);
        return;
    }
    fputs("<table>\n", f);
    for (size_t k = 0; k < sizeof(keys) / sizeof(keys[0]); k++) {
        json_t *v = json_object_get(pr->run, keys[k]);

        if (!v)
            continue;
        fprintf(f, "<tr><th>%s</th><td>", keys[k]);
        json_cell(f, v);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n<h3>Per method</h3>\n<table><tr><th>method</th><th>ok</th><th>failed</th>"
          "<th>mean purity</th></tr>\n",
          f);
    {
        const char *name;
        json_t *v;

        json_object_foreach(json_object_get(pr->run, "methods"), name, v)
        {
            fputs("<tr><td>", f);
            esc(f, name);
            fputs("</td>", f);
            numcell(f, json_number_value(json_object_get(v, "ok")));
            numcell(f, json_number_value(json_object_get(v, "failed")));
            numcell(f, json_is_number(json_object_get(v, "mean_purity"))
                           ? json_number_value(json_object_get(v, "mean_purity"))
                           : NAN);
            fputs("</tr>\n", f);
        }
    }
    fputs("</table>\n<details><summary>Options</summary><pre>", f);
    s = json_dumps(opts, JSON_INDENT(1) | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    esc(f, s);
    free(s);
    fputs("</pre></details>\n", f);
}

static void summary_table(FILE *f, const struct plot_run *pr)
{
    size_t shown = pr->n_recs < REPORT_MAX_ROWS ? pr->n_recs : REPORT_MAX_ROWS;

    fputs("<h2 id=summary>Summary</h2>\n", f);
    if (shown < pr->n_recs)
        fprintf(f,
                "<p class=note>The first %zu of %zu records; every record is in "
                "<a href=\"summary.csv\">summary.csv</a> and records.jsonl.</p>\n",
                shown, pr->n_recs);
    fputs("<table id=summary-table><thead><tr><th>sample</th><th>column</th><th>method</th>"
          "<th>status</th><th>purity</th>",
          f);
    if (pr->have_unc)
        fputs("<th>purity lo</th><th>purity hi</th>", f);
    if (pr->have_fidelity)
        fputs("<th>fidelity</th>", f);
    fputs("<th>max eigenvalue</th><th>figures / error</th></tr></thead>\n<tbody>\n", f);
    for (size_t k = 0, sections = 0; k < shown; k++) {
        const struct plot_rec *r = &pr->recs[k];
        bool linked = r->selected && sections++ < REPORT_MAX_SECTIONS; /* has a section */

        fprintf(f, "<tr%s><td class=n>%zu</td><td class=n>%lld</td><td>",
                r->ok ? "" : " class=error", r->sample, (long long)r->column);
        esc(f, pr->methods[r->method]);
        fprintf(f, "</td><td>%s</td>", r->ok ? "ok" : "error");
        numcell(f, r->purity);
        if (pr->have_unc) {
            numcell(f, r->purity_lo);
            numcell(f, r->purity_hi);
        }
        if (pr->have_fidelity)
            numcell(f, r->fidelity);
        numcell(f, r->eig && r->ok ? r->eig[0] : NAN);
        fputs("<td>", f);
        if (!r->ok) {
            esc(f, r->error);
        } else if (linked) {
            fputs("<a href=\"#", f);
            anchor(f, pr, r);
            fputs("\">figures</a>", f);
        }
        fputs("</td></tr>\n", f);
    }
    fputs("</tbody></table>\n", f);
}

static void figure(FILE *f, const char *href, const char *src, const char *alt)
{
    fputs("<figure><a href=\"", f);
    esc(f, href);
    fputs("\"><img src=\"", f);
    esc(f, src);
    fputs("\" alt=\"", f);
    esc(f, alt);
    fputs("\"></a></figure>\n", f);
}

static void run_figures(FILE *f, const struct plot_run *pr)
{
    fputs("<h2 id=figures>Run figures</h2>\n", f);
    /* PNG in the page (a 10,000-point SVG is large), the SVG one click away. */
    figure(f, "plots/run_purity.svg", "plots/run_purity.png", "purity over samples");
    if (pr->have_fidelity)
        figure(f, "plots/run_fidelity.svg", "plots/run_fidelity.png", "fidelity over samples");
    figure(f, "plots/run_eigenvalues.svg", "plots/run_eigenvalues.png", "eigenvalue spectra");
}

static void sample_section(FILE *f, const struct plot_run *pr, const struct plot_rec *r)
{
    char m[64], src[160];
    json_t *metrics = json_object_get(r->json, "metrics"), *v;
    const char *key;

    plot_safe_name(pr->methods[r->method], m, sizeof(m));
    fputs("<section id=\"", f);
    anchor(f, pr, r);
    fprintf(f, "\"><h3>Sample %zu (column %lld), ", r->sample, (long long)r->column);
    esc(f, pr->methods[r->method]);
    fputs("</h3>\n", f);
    if (!r->ok) {
        fputs("<p>Failed: ", f);
        esc(f, r->error);
        fputs("</p></section>\n", f);
        return;
    }
    fputs("<div class=wide><table><tr>", f);
    json_object_foreach(metrics, key, v)
    {
        if (!json_is_number(v))
            continue;
        fputs("<th>", f);
        esc(f, key);
        fputs("</th>", f);
    }
    fputs("</tr><tr>", f);
    json_object_foreach(metrics, key, v)
    {
        if (json_is_number(v))
            numcell(f, json_number_value(v));
    }
    fputs("</tr></table></div>\n", f);
    for (int k = 0; k < PLOT_FIG_KINDS; k++) {
        if (!(r->figures & (1u << k)))
            continue;
        (void)snprintf(src, sizeof(src), "plots/sample%zu_%s_%s.svg", r->sample, m,
                       plot_fig_kind[k]);
        figure(f, src, src, plot_fig_kind[k]);
    }
    if (!r->figures)
        fputs("<p class=note>No figures (a state of another dimension than the run's).</p>\n", f);
    fputs("</section>\n", f);
}

static void write_page(FILE *f, const struct plot_run *pr)
{
    const char *input = json_string_value(json_object_get(pr->run, "input"));
    size_t sections = 0;

    fputs("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>\n", f);
    csp(f);
    fputs("<meta name=viewport content=\"width=device-width\">\n<title>qtomo run: ", f);
    esc(f, input ? input : pr->dir);
    fprintf(f, "</title>\n<style>%s</style>\n<script>%s</script>\n</head><body>\n<h1>qtomo run: ",
            style, status_js);
    esc(f, input ? input : pr->dir);
    fprintf(f,
            "</h1>\n<p>%zu records of %zu samples, %zu methods; figures for %zu selected "
            "records.</p>\n<nav><h2>Contents</h2><ul><li><a href=\"#run\">Run</a></li>"
            "<li><a href=\"#summary\">Summary</a></li><li><a href=\"#figures\">Run "
            "figures</a></li><li><a href=\"#samples\">Samples</a></li>\n",
            pr->n_recs, pr->n_samples, pr->n_methods, pr->n_selected);
    for (size_t k = 0; k < pr->n_recs && sections < REPORT_MAX_SECTIONS; k++) {
        const struct plot_rec *r = &pr->recs[k];

        if (!r->selected)
            continue;
        sections++;
        fputs("<li><a href=\"#", f);
        anchor(f, pr, r);
        fprintf(f, "\">sample %zu, ", r->sample);
        esc(f, pr->methods[r->method]);
        fputs("</a></li>\n", f);
    }
    fputs("</ul></nav>\n", f);
    run_info(f, pr);
    summary_table(f, pr);
    run_figures(f, pr);
    fputs("<h2 id=samples>Samples</h2>\n", f);
    if (pr->n_selected > REPORT_MAX_SECTIONS)
        fprintf(f,
                "<p class=note>The first %d of %zu selected records; the figures of all of "
                "them are in plots/.</p>\n",
                REPORT_MAX_SECTIONS, pr->n_selected);
    if (!pr->n_selected)
        fputs("<p class=note>No sample selected (see --plots).</p>\n", f);
    sections = 0;
    for (size_t k = 0; k < pr->n_recs && sections < REPORT_MAX_SECTIONS; k++)
        if (pr->recs[k].selected) {
            sample_section(f, pr, &pr->recs[k]);
            sections++;
        }
    fputs("<footer><p id=qt-status>render check: not run</p></footer>\n</body></html>\n", f);
}

int plot_report_write(const struct plot_run *pr)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    int r;

    if (!f)
        return -errno;
    write_page(f, pr);
    if (fclose(f) != 0) {
        free(buf);
        return -ENOMEM;
    }
    r = qctl_write_atomic(pr->dir, "report.html", buf, len);
    free(buf);
    return r;
}
