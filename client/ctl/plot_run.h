/* qtomoctl's pictures of a run: the --plots selection, reading a run directory (records.jsonl,
 * run.json), drawing its figures into DIR/plots and writing DIR/report.html. Used by
 * `reconstruct -o DIR --plots` and `qtomoctl plot DIR`. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qctl_util.h"

#define PLOT_MAX_METHODS 8
#define PLOT_MAX_RANGES  64
#define PLOT_SEL_DEFAULT "first:20"
#define PLOT_MAX_BARS_D  64 /* no cityscape above this d (bars thinner than a pixel) */

/* The per-sample figures, in file-name form: sample<k>_<method>_<kind>.svg|pdf|png. */
#define PLOT_FIG_KINDS 5 /* the last, "spectral", only for --spectral records */
extern const char *const plot_fig_kind[PLOT_FIG_KINDS];

/* Which samples get per-sample figures: all, the first N samples, or a list of input columns
 * ("1,3,5-9", the records' "column"). Run-level figures are drawn for every run. */
struct plot_sel {
    enum { PLOT_SEL_ALL, PLOT_SEL_FIRST, PLOT_SEL_COLUMNS } kind;

    size_t first;
    size_t n_ranges;
    int64_t lo[PLOT_MAX_RANGES], hi[PLOT_MAX_RANGES];
};

/* Parses a --plots value (NULL: the default first:20); 0, or -EINVAL after printing why. */
int plot_sel_parse(const char *s, struct plot_sel *ret_sel);
/* Writes sel as a --plots value that plot_sel_parse reads back to the same selection (for the
 * helper qtomo-plot). 0, or -ENOSPC when buf is too small (PLOT_SEL_TEXT always suffices). */
int plot_sel_format(const struct plot_sel *sel, char *buf, size_t size);
#define PLOT_SEL_TEXT (PLOT_MAX_RANGES * 42 + 8)

/* One record of records.jsonl, as the figures and the report need it. */
struct plot_rec {
    size_t sample;
    int64_t column;
    unsigned method; /* index into plot_run.methods */
    bool ok, selected;
    unsigned figures; /* bit k: figure k of plot_fig_kind written */
    double purity, purity_lo, purity_hi, fidelity, fidelity_lo, fidelity_hi; /* NAN: absent */
    double *eig;  /* plot_run.d eigenvalues, descending, or NULL */
    json_t *json; /* the whole record, kept for selected records only */
    char *error;  /* a failed record's message, or NULL */
};

struct plot_run {
    const char *dir;
    json_t *run; /* run.json, or NULL when missing */
    char *methods[PLOT_MAX_METHODS];
    size_t n_methods, d;
    struct plot_rec *recs;
    size_t n_recs, cap, n_samples, n_selected;
    bool have_fidelity, have_unc;
};

/* Draws the figures of the run in dir (creating dir/plots) and writes dir/report.html.
 * Returns an exit code (0 ok; the error was printed). plot_run.c's in qtomo-plot and qtomo-mpi;
 * in qtomoctl, helpers.c's, which runs qtomo-plot. */
int qctl_plot_dir(const char *dir, const struct plot_sel *sel, const struct qctl_global *g);

/* report.c: writes dir/report.html for a loaded run whose figures exist. 0 or -errno. */
int plot_report_write(const struct plot_run *pr);
/* The file-name form of a method name (letters, digits, '-' and '_' kept, others '_'). */
void plot_safe_name(const char *s, char *buf, size_t size);

int qctl_cmd_plot(int argc, char **argv, struct qctl_global *g);
void qctl_plot_usage(FILE *out);
