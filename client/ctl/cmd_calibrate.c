/* qtomoctl calibrate: fits a detector model (efficiencies, crosstalk, optionally backgrounds)
 * to counts measured on known states (num/qt_calib.h) and writes it as a detector file that
 * reconstruct --detector reads, with the fit's report (errors, residuals, chi^2) in a file of
 * its own beside it (detector files refuse unknown keys). No daemon. */
#define _GNU_SOURCE
#include <complex.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_csv.h"
#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "io/qt_json.h"
#include "io/qt_jsonfile.h"
#include "num/qt_calib.h"
#include "num/qt_design.h"
#include "qctl.h"
#include "recon.h"

/* Kets must have squared norm 1 within this (then they are renormalised exactly): five
 * printed digits of 1/sqrt(2) pass, a forgotten normalisation does not. Density matrices: the
 * same on the trace. */
#define STATE_NORM_TOL 1e-4

#define COUNTS_MAX ((size_t)1 << 30)

struct cal_opts {
    const char *counts, *states, *design, *design_file, *out;
    size_t dim;
    bool background, qubit;
};

void qctl_calibrate_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: qtomoctl calibrate COUNTS --states STATES [--design D] [--dim d]\n"
        "       [--design-file F] [--background] [--qubit] [-o DETECTOR.json]\n\n"
        "Fits detector efficiencies eta and crosstalk C (and with --background the dark\n"
        "counts beta) to counts measured on known states, by Poisson maximum likelihood\n"
        "with a free intensity per run, and writes them as a detector file for\n"
        "'reconstruct --detector'. No daemon.\n\n"
        "  COUNTS               CSV/TXT as for reconstruct: rows = outcomes in design order,\n"
        "                       one column per calibration run\n"
        "  --states F           JSON list with one known state per column: a ket (array of\n"
        "                       d reals, or {\"re\": [...], \"im\": [...]}), a density matrix\n"
        "                       ({\"re\": [[rows]], \"im\": [[rows]]}), for d = 2^n a string of\n"
        "                       n qubit letters 0 1 + - r l (qubit 0 leftmost, as in pauli),\n"
        "                       or \"dark\" (source blocked; needs --background)\n"
        "  --design NAME        nopovm | mub | sic | pauli (default: inferred from the rows)\n"
        "  --design-file F      a custom design instead\n"
        "  --dim d              the dimension (default: from the rows)\n"
        "  --background         also fit a background per outcome (needs a dark run)\n"
        "  --qubit              pauli: one 2 x 2 efficiency/crosstalk model per qubit, the\n"
        "                       same in every setting (written as qubit_crosstalk)\n"
        "  -o, --output F       write the detector file F and the fit report F.fit.json\n"
        "                       (errors, Pearson residuals, chi^2, log-likelihood)\n\n"
        "Every group's outcome probabilities over the known states must have full rank (a\n"
        "group lit in only one proportion cannot tell crosstalk from efficiency); such a\n"
        "group is refused by name. Standard errors come from the Fisher information.\n");
}

static int parse_args(int argc, char **argv, struct cal_opts *o)
{
    static const struct option opts[] = {
        {"states", required_argument, NULL, 's'},
        {"design", required_argument, NULL, 'D'},
        {"design-file", required_argument, NULL, 'F'},
        {"dim", required_argument, NULL, 'd'},
        {"background", no_argument, NULL, 'b'},
        {"output", required_argument, NULL, 'o'},
        {"qubit", no_argument, NULL, 'Q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;

    while ((opt = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        switch (opt) {
        case 's':
            o->states = optarg;
            break;
        case 'D':
            o->design = optarg;
            break;
        case 'F':
            o->design_file = optarg;
            break;
        case 'd': {
            char *end;
            unsigned long v = strtoul(optarg, &end, 10);

            if (*end || v < 2 || v > QT_DESIGN_MAX_DIM) {
                qctl_err("--dim needs an integer in 2..%d, got '%s'", QT_DESIGN_MAX_DIM, optarg);
                return QCTL_EXIT_USAGE;
            }
            o->dim = v;
            break;
        }
        case 'b':
            o->background = true;
            break;
        case 'Q':
            o->qubit = true;
            break;
        case 'o':
            o->out = optarg;
            break;
        case 'h':
            qctl_calibrate_usage(stdout);
            return -1;
        default:
            qctl_calibrate_usage(stderr);
            return QCTL_EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || !o->states) {
        qctl_err("calibrate: %s", argc - optind < 1   ? "missing the COUNTS file"
                                  : argc - optind > 1 ? "too many arguments"
                                                      : "--states is required");
        qctl_calibrate_usage(stderr);
        return QCTL_EXIT_USAGE;
    }
    o->counts = argv[optind];
    return 0;
}

/* ---- inputs ---- */

static int load_counts(const struct cal_opts *o, struct qt_table *tab)
{
    struct qt_diag dg = {0};
    char *buf = NULL;
    size_t len = 0;
    int r = qctl_read_file(o->counts, COUNTS_MAX, &buf, &len);

    if (r < 0) {
        qctl_err("cannot read '%s': %s", o->counts, qt_strerror(r));
        return -1;
    }
    r = qt_csv_parse(buf, len, NULL, tab, &dg);
    free(buf);
    if (r < 0) {
        qctl_err(dg.line ? "'%s' %s" : "'%s': %s", o->counts, dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    for (size_t c = 0; c < tab->cols; c++)
        for (size_t a = 0; a < tab->rows; a++) {
            double y = tab->v[a + tab->rows * c];

            if (tab->empty[a + tab->rows * c] || !isfinite(y) || y < 0.0) {
                qctl_err("'%s' column %zu, row %zu: %s", o->counts, c + 1, a + 1,
                         tab->empty[a + tab->rows * c] ? "missing count"
                         : !isfinite(y)                ? "the count is not a finite number"
                                                       : "negative count");
                return -1;
            }
        }
    return 0;
}

static int make_design(const struct cal_opts *o, size_t rows, struct qt_design **des)
{
    struct qt_diag dg = {0};
    size_t d = o->dim;
    int kind = -1, r;

    if (o->design_file) {
        char *buf = NULL;
        size_t len = 0;

        r = qctl_read_file(o->design_file, QT_DESIGNFILE_MAX_BYTES, &buf, &len);
        if (r < 0) {
            qctl_err("cannot read design file '%s': %s", o->design_file, qt_strerror(r));
            return -1;
        }
        r = qt_designfile_parse(buf, len, des, &dg);
        free(buf);
        if (r < 0) {
            qctl_err("design file '%s': %s", o->design_file, dg.msg[0] ? dg.msg : qt_strerror(r));
            return -1;
        }
        if ((*des)->m != rows) {
            qctl_err("the custom design has %zu outcomes but '%s' has %zu rows", (*des)->m,
                     o->counts, rows);
            return -1;
        }
        return 0;
    }
    if (o->design) {
        kind = qt_design_kind_from_name(o->design);
        if (kind < 0 || kind == QT_DESIGN_CUSTOM) {
            qctl_err(kind < 0 ? "unknown design '%s' (nopovm, mub, sic, pauli, custom)"
                              : "design '%s' needs --design-file",
                     o->design);
            return -1;
        }
    }
    r = qt_design_infer(kind, rows, &kind, &d, &dg);
    if (r < 0) {
        qctl_err("'%s': %s", o->counts, dg.msg);
        return -1;
    }
    if (o->dim && o->dim != d) {
        qctl_err("--dim %zu does not match '%s': %zu rows mean d = %zu for design '%s'", o->dim,
                 o->counts, rows, d, qt_design_kind_name((enum qt_design_kind)kind));
        return -1;
    }
    r = qt_design_new((enum qt_design_kind)kind, d, des, &dg);
    if (r < 0) {
        qctl_err("%s", dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    return 0;
}

/* A JSON array of d numbers into v (im: the imaginary parts, added). */
static int json_vec(json_t *arr, size_t d, double complex *v, bool im, char *err, size_t errlen)
{
    if (!json_is_array(arr) || json_array_size(arr) != d) {
        (void)snprintf(err, errlen, "needs %zu numbers (d = %zu), got %s", d, d,
                       json_is_array(arr) ? "a different count" : "no array");
        return -1;
    }
    for (size_t i = 0; i < d; i++) {
        json_t *x = json_array_get(arr, i);

        if (!json_is_number(x)) {
            (void)snprintf(err, errlen, "entry %zu is not a number", i);
            return -1;
        }
        v[i] += (im ? I : 1.0) * json_number_value(x);
    }
    return 0;
}

/* One qubit letter's ket. */
static bool qubit_ket(char c, double complex v[2])
{
    const double h = 1.0 / sqrt(2.0);

    switch (c) {
    case '0':
        v[0] = 1.0, v[1] = 0.0;
        return true;
    case '1':
        v[0] = 0.0, v[1] = 1.0;
        return true;
    case '+':
        v[0] = h, v[1] = h;
        return true;
    case '-':
        v[0] = h, v[1] = -h;
        return true;
    case 'r':
        v[0] = h, v[1] = I * h;
        return true;
    case 'l':
        v[0] = h, v[1] = -I * h;
        return true;
    default:
        return false;
    }
}

/* "01+": the product ket, qubit 0 the leftmost factor (its bit most significant). */
static int letters_ket(const char *s, size_t d, double complex *psi, char *err, size_t errlen)
{
    unsigned n = qt_design_qubits(d);

    if (!n) {
        (void)snprintf(err, errlen, "'%s': qubit letters need d = 2^n, the design has d = %zu", s,
                       d);
        return -1;
    }
    if (strlen(s) != n) {
        (void)snprintf(err, errlen, "'%s' needs %u qubit letters (d = %zu)", s, n, d);
        return -1;
    }
    for (size_t i = 0; i < d; i++)
        psi[i] = 1.0;
    for (unsigned q = 0; q < n; q++) {
        double complex v[2];

        if (!qubit_ket(s[q], v)) {
            (void)snprintf(err, errlen, "'%s': letter '%c' is none of 0 1 + - r l", s, s[q]);
            return -1;
        }
        for (size_t i = 0; i < d; i++)
            psi[i] *= v[(i >> (n - 1 - q)) & 1];
    }
    return 0;
}

/* Ket -> |psi><psi| after checking its norm. */
static int ket_rho(double complex *psi, size_t d, double complex *rho, char *err, size_t errlen)
{
    double n2 = 0.0;

    for (size_t i = 0; i < d; i++)
        n2 += creal(psi[i] * conj(psi[i]));
    if (!(fabs(n2 - 1.0) <= STATE_NORM_TOL)) {
        (void)snprintf(err, errlen, "the ket is not normalised (squared norm %.9g)", n2);
        return -1;
    }
    for (size_t c = 0; c < d; c++)
        for (size_t r = 0; r < d; r++)
            rho[r + d * c] = psi[r] * conj(psi[c]) / n2;
    return 0;
}

/* {"re": [[rows]], "im": [[rows]]} -> rho, checked as a density matrix. */
static int matrix_rho(json_t *re, json_t *im, size_t d, double complex *rho, double complex *row,
                      char *err, size_t errlen)
{
    struct qt_diag dg = {0};
    double tr = 0.0;

    if (json_array_size(re) != d || (im && json_array_size(im) != d)) {
        (void)snprintf(err, errlen, "a density matrix needs %zu rows (d = %zu)", d, d);
        return -1;
    }
    for (size_t r = 0; r < d; r++) {
        memset(row, 0, d * sizeof(*row));
        if (json_vec(json_array_get(re, r), d, row, false, err, errlen) < 0 ||
            (im && json_vec(json_array_get(im, r), d, row, true, err, errlen) < 0)) {
            size_t l = strlen(err);

            (void)snprintf(err + l, errlen - l, " (matrix row %zu)", r);
            return -1;
        }
        for (size_t c = 0; c < d; c++)
            rho[r + d * c] = row[c];
        tr += creal(row[r]);
    }
    if (!(fabs(tr - 1.0) <= STATE_NORM_TOL)) {
        (void)snprintf(err, errlen, "the density matrix is not normalised (trace %.9g)", tr);
        return -1;
    }
    for (size_t i = 0; i < d * d; i++)
        rho[i] /= tr;
    if (qt_target_check(d, rho, &dg) < 0) {
        (void)snprintf(err, errlen, "not a density matrix: %.200s", dg.msg);
        return -1;
    }
    return 0;
}

/* One entry of the states file. */
static int parse_state(json_t *st, size_t d, double complex *rho, bool *dark, double complex *tmp,
                       char *err, size_t errlen)
{
    *dark = false;
    if (json_is_string(st)) {
        if (strcmp(json_string_value(st), "dark") == 0) {
            *dark = true;
            return 0;
        }
        if (letters_ket(json_string_value(st), d, tmp, err, errlen) < 0)
            return -1;
        return ket_rho(tmp, d, rho, err, errlen);
    }
    memset(tmp, 0, d * sizeof(*tmp));
    if (json_is_array(st)) {
        if (json_vec(st, d, tmp, false, err, errlen) < 0)
            return -1;
        return ket_rho(tmp, d, rho, err, errlen);
    }
    if (json_is_object(st)) {
        json_t *re = json_object_get(st, "re"), *im = json_object_get(st, "im");
        const char *key;
        json_t *val;

        json_object_foreach(st, key, val) if (strcmp(key, "re") != 0 && strcmp(key, "im") != 0)
        {
            (void)snprintf(err, errlen, "unknown key '%s' (re, im)", key);
            return -1;
        }
        if (!json_is_array(re) || (im && !json_is_array(im))) {
            (void)snprintf(err, errlen, "needs \"re\" (and optionally \"im\") arrays");
            return -1;
        }
        if (json_array_size(re) > 0 && json_is_array(json_array_get(re, 0)))
            return matrix_rho(re, im, d, rho, tmp, err, errlen);
        if (json_vec(re, d, tmp, false, err, errlen) < 0 ||
            (im && json_vec(im, d, tmp, true, err, errlen) < 0))
            return -1;
        return ket_rho(tmp, d, rho, err, errlen);
    }
    (void)snprintf(err, errlen, "must be a ket, a density matrix, qubit letters or \"dark\"");
    return -1;
}

static int load_states(const struct cal_opts *o, size_t d, size_t n_cols, double complex **ret_rho,
                       bool **ret_dark)
{
    json_t *root = NULL, *arr;
    char *buf = NULL, err[256] = "";
    size_t len = 0, n;
    double complex *rho = NULL, *tmp = NULL;
    bool *dark = NULL;
    int r = qctl_read_file(o->states, QT_DESIGNFILE_MAX_BYTES, &buf, &len);

    if (r < 0) {
        qctl_err("cannot read states file '%s': %s", o->states, qt_strerror(r));
        return -1;
    }
    root = json_loadb(buf, len, JSON_REJECT_DUPLICATES, NULL);
    free(buf);
    arr = json_is_object(root) ? json_object_get(root, "states") : root;
    if (!json_is_array(arr)) {
        qctl_err("states file '%s': %s", o->states,
                 root ? "needs a JSON array of states (or {\"states\": [...]})" : "invalid JSON");
        r = -1;
        goto out;
    }
    n = json_array_size(arr);
    if (n != n_cols) {
        qctl_err("states file '%s' gives %zu states but '%s' has %zu columns (one state per "
                 "calibration run)",
                 o->states, n, o->counts, n_cols);
        r = -1;
        goto out;
    }
    rho = calloc(n * d * d, sizeof(*rho));
    tmp = calloc(d, sizeof(*tmp));
    dark = calloc(n, sizeof(*dark));
    if (!rho || !tmp || !dark) {
        qctl_err("out of memory");
        r = -1;
        goto out;
    }
    for (size_t j = 0; j < n; j++)
        if (parse_state(json_array_get(arr, j), d, rho + j * d * d, dark + j, tmp, err,
                        sizeof(err)) < 0) {
            qctl_err("states file '%s': state %zu (column %zu): %s", o->states, j, j + 1, err);
            r = -1;
            goto out;
        }
    *ret_rho = rho;
    *ret_dark = dark;
    rho = NULL;
    dark = NULL;
out:
    json_decref(root);
    free(rho);
    free(tmp);
    free(dark);
    return r;
}

/* ---- outputs ---- */

static void jw_vec(struct qt_jw *w, const char *key, const double *v, size_t n)
{
    qt_jw_key(w, key);
    qt_jw_arr_begin(w);
    for (size_t i = 0; i < n; i++)
        qt_jw_num(w, v[i]);
    qt_jw_arr_end(w);
}

/* Per group k x k matrices (column-major in cal) as arrays of rows. */
static void jw_groups(struct qt_jw *w, const char *key, const struct qt_calib *cal, const double *M)
{
    qt_jw_key(w, key);
    qt_jw_arr_begin(w);
    for (size_t g = 0; g < cal->n_groups; g++) {
        size_t k = cal->gk[g];

        qt_jw_arr_begin(w);
        for (size_t a = 0; a < k; a++) {
            qt_jw_arr_begin(w);
            for (size_t b = 0; b < k; b++)
                qt_jw_num(w, M[cal->goff[g] + a + k * b]);
            qt_jw_arr_end(w);
        }
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
}

/* Qubit mode: the n 2 x 2 matrices (column-major in cal) as arrays of rows. */
static void jw_qubits(struct qt_jw *w, const char *key, const struct qt_calib *cal, const double *M)
{
    qt_jw_key(w, key);
    qt_jw_arr_begin(w);
    for (unsigned q = 0; q < cal->n_qubits; q++) {
        qt_jw_arr_begin(w);
        for (size_t a = 0; a < 2; a++) {
            qt_jw_arr_begin(w);
            for (size_t b = 0; b < 2; b++)
                qt_jw_num(w, M[4 * q + a + 2 * b]);
            qt_jw_arr_end(w);
        }
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
}

static void detector_json(struct qt_jw *w, const struct qt_calib *cal)
{
    qt_jw_obj_begin(w);
    jw_vec(w, "efficiencies", cal->eff, cal->m);
    if (cal->n_qubits)
        jw_qubits(w, "qubit_crosstalk", cal, cal->qcross);
    else
        jw_groups(w, "crosstalk", cal, cal->cross);
    if (cal->background)
        jw_vec(w, "background", cal->bg, cal->m);
    qt_jw_obj_end(w);
}

static void fit_json(struct qt_jw *w, const struct qt_calib *cal, const struct cal_opts *o,
                     const struct qt_design *des)
{
    qt_jw_obj_begin(w);
    qt_jw_key(w, "detector_file");
    qt_jw_str(w, o->out ? o->out : "");
    qt_jw_key(w, "counts");
    qt_jw_str(w, o->counts);
    qt_jw_key(w, "states");
    qt_jw_str(w, o->states);
    qt_jw_key(w, "design");
    qt_jw_str(w, des->name);
    qt_jw_key(w, "dim");
    qt_jw_int(w, (int64_t)des->d);
    qt_jw_key(w, "runs");
    qt_jw_int(w, (int64_t)cal->n_runs);
    qt_jw_key(w, "method");
    qt_jw_str(w, cal->n_qubits ? "poisson maximum likelihood (ECM + SQUAREM), one 2 x 2 model "
                                 "per qubit, free intensity per run"
                               : "poisson maximum likelihood (EM + SQUAREM), free intensity per "
                                 "run");
    qt_jw_key(w, "errors");
    qt_jw_str(w, "inverse Fisher information at the fit");
    qt_jw_key(w, "reference_outcome");
    qt_jw_int(w, (int64_t)cal->ref);
    jw_vec(w, "efficiencies", cal->eff, cal->m);
    jw_vec(w, "efficiencies_se", cal->eff_se, cal->m);
    if (cal->n_qubits) {
        jw_vec(w, "qubit_efficiencies", cal->qeff, 2 * (size_t)cal->n_qubits);
        jw_vec(w, "qubit_efficiencies_se", cal->qeff_se, 2 * (size_t)cal->n_qubits);
        jw_qubits(w, "qubit_crosstalk", cal, cal->qcross);
        jw_qubits(w, "qubit_crosstalk_se", cal, cal->qcross_se);
    } else {
        jw_groups(w, "crosstalk", cal, cal->cross);
        jw_groups(w, "crosstalk_se", cal, cal->cross_se);
    }
    if (cal->background) {
        jw_vec(w, "background", cal->bg, cal->m);
        jw_vec(w, "background_se", cal->bg_se, cal->m);
    }
    jw_vec(w, "intensity", cal->intensity, cal->n_runs);
    qt_jw_key(w, "chi2");
    qt_jw_num(w, cal->chi2);
    qt_jw_key(w, "dof");
    qt_jw_int(w, cal->dof);
    qt_jw_key(w, "loglik");
    qt_jw_num(w, cal->loglik);
    qt_jw_key(w, "iterations");
    qt_jw_int(w, cal->n_iter);
    qt_jw_key(w, "expected_counts");
    qt_jw_arr_begin(w);
    for (size_t j = 0; j < cal->n_runs; j++) {
        qt_jw_arr_begin(w);
        for (size_t a = 0; a < cal->m; a++)
            qt_jw_num(w, cal->mu[a + cal->m * j]);
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
    qt_jw_key(w, "pearson_residuals");
    qt_jw_arr_begin(w);
    for (size_t j = 0; j < cal->n_runs; j++) {
        qt_jw_arr_begin(w);
        for (size_t a = 0; a < cal->m; a++)
            qt_jw_num(w, cal->resid[a + cal->m * j]);
        qt_jw_arr_end(w);
    }
    qt_jw_arr_end(w);
    qt_jw_obj_end(w);
}

/* data and a newline, crash-safely (temporary file, fsync, rename). */
static int write_file(const char *path, const char *data, size_t len)
{
    char *a = strdup(path), *b = strdup(path), *t = malloc(len + 1);
    int r = -ENOMEM;

    if (a && b && t) {
        memcpy(t, data, len);
        t[len] = '\n';
        r = qctl_write_atomic(dirname(a), basename(b), t, len + 1);
    }

    if (r < 0)
        qctl_err("cannot write '%s': %s", path, strerror(-r));
    free(a);
    free(b);
    free(t);
    return r;
}

/* Qubit mode: one line per qubit. */
static void summary_qubits(const struct qt_calib *cal)
{
    printf("%-6s %-22s %-22s %-22s %-22s\n", "qubit", "eta(0)", "eta(1)", "C(1<-0)", "C(0<-1)");
    for (unsigned q = 0; q < cal->n_qubits; q++) {
        char e[2][32], x[2][32];

        for (size_t b = 0; b < 2; b++) {
            if (cal->qeff_se[2 * q + b] > 0.0)
                (void)snprintf(e[b], sizeof(e[b]), "%.6f +- %.6f", cal->qeff[2 * q + b],
                               cal->qeff_se[2 * q + b]);
            else
                (void)snprintf(e[b], sizeof(e[b]), "%.6f (ref)", cal->qeff[2 * q + b]);
            (void)snprintf(x[b], sizeof(x[b]), "%.6f +- %.6f", cal->qcross[4 * q + 1 + b],
                           cal->qcross_se[4 * q + 1 + b]);
        }
        printf("%-6u %-22s %-22s %-22s %-22s\n", q, e[0], e[1], x[0], x[1]);
    }
}

static void summary(const struct qt_calib *cal, const struct qt_design *des)
{
    size_t worst_a = 0, worst_b = 0, worst_g = 0, rj = 0, ra = 0;
    double worst = -1.0, worst_se = 0.0, rmax = 0.0;

    printf("calibrated %zu outcomes in %zu groups from %zu runs (%s, d = %zu): chi2/dof = "
           "%.2f/%ld = %.3f, log-likelihood %.2f, %u iterations\n",
           cal->m, cal->n_groups, cal->n_runs, des->name, des->d, cal->chi2, cal->dof,
           cal->dof > 0 ? cal->chi2 / (double)cal->dof : NAN, cal->loglik, cal->n_iter);
    if (cal->n_qubits) {
        summary_qubits(cal);
        goto residuals;
    }
    printf("%-8s %-10s %-10s", "outcome", "eta", "+-");
    if (cal->background)
        printf(" %-10s %-10s", "background", "+-");
    printf("\n");
    for (size_t a = 0; a < cal->m; a++) {
        printf("%-8zu %-10.6f ", a, cal->eff[a]);
        if (a == cal->ref)
            printf("%-10s", "(ref)");
        else
            printf("%-10.6f", cal->eff_se[a]);
        if (cal->background)
            printf(" %-10.4g %-10.4g", cal->bg[a], cal->bg_se[a]);
        printf("\n");
    }
    for (size_t g = 0; g < cal->n_groups; g++) {
        size_t k = cal->gk[g];

        for (size_t b = 0; b < k; b++)
            for (size_t a = 0; a < k; a++) {
                size_t e = cal->goff[g] + a + k * b;

                if (a != b && cal->cross[e] > worst) {
                    worst = cal->cross[e];
                    worst_se = cal->cross_se[e];
                    worst_a = cal->gidx[cal->gpos[g] + a];
                    worst_b = cal->gidx[cal->gpos[g] + b];
                    worst_g = g;
                }
            }
    }
    if (worst >= 0.0)
        printf("largest crosstalk: %.6f +- %.6f (a count of outcome %zu registered at %zu, "
               "group %zu)\n",
               worst, worst_se, worst_b, worst_a, worst_g);
residuals:
    for (size_t j = 0; j < cal->n_runs; j++)
        for (size_t a = 0; a < cal->m; a++)
            if (fabs(cal->resid[a + cal->m * j]) > rmax) {
                rmax = fabs(cal->resid[a + cal->m * j]);
                rj = j;
                ra = a;
            }
    printf("largest |Pearson residual|: %.2f (column %zu, outcome %zu)\n", rmax, rj + 1, ra);
}

int qctl_cmd_calibrate(int argc, char **argv, struct qctl_global *g)
{
    struct cal_opts o = {0};
    struct qt_table tab = {0};
    struct qt_design *des = NULL;
    struct qt_calib *cal = NULL;
    struct qt_detector *det = NULL;
    struct qt_diag dg = {0};
    struct qt_jw dw, fw;
    double complex *rho = NULL;
    bool *dark = NULL;
    int r = parse_args(argc, argv, &o), ex = QCTL_EXIT_USAGE;

    if (r)
        return r < 0 ? QCTL_EXIT_OK : r;
    qt_jw_init(&dw);
    qt_jw_init(&fw);
    qctl_blas_env(g);
    if (load_counts(&o, &tab) < 0 || make_design(&o, tab.rows, &des) < 0 ||
        load_states(&o, des->d, tab.cols, &rho, &dark) < 0)
        goto out;
    {
        struct qt_calib_input in = {des, tab.cols, rho, dark, tab.v, o.background, 0.0, 0, o.qubit};

        r = qt_calib_fit(&in, &cal, &dg);
    }
    if (r < 0) {
        qctl_err("calibration: %s", dg.msg[0] ? dg.msg : qt_strerror(r));
        ex = r == QT_ENOCONV || r == -ENOMEM ? QCTL_EXIT_FAILED : QCTL_EXIT_USAGE;
        goto out;
    }
    detector_json(&dw, cal);
    fit_json(&fw, cal, &o, des);
    if (dw.err || fw.err) {
        qctl_err("out of memory");
        ex = QCTL_EXIT_FAILED;
        goto out;
    }
    /* What is written must be what reconstruct --detector accepts. */
    r = qt_detectorfile_parse(dw.buf, dw.len, des, &det, &dg);
    if (r < 0) {
        qctl_err("the fitted model is not a valid detector file: %s", dg.msg);
        ex = QCTL_EXIT_FAILED;
        goto out;
    }
    if (g->json) {
        printf("{\"detector\":%s,\"fit\":%s}\n", dw.buf, fw.buf);
    } else {
        summary(cal, des);
    }
    ex = QCTL_EXIT_OK;
    if (o.out) {
        char *fitpath = NULL;

        if (asprintf(&fitpath, "%s.fit.json", o.out) < 0) {
            qctl_err("out of memory");
            ex = QCTL_EXIT_FAILED;
            goto out;
        }
        if (write_file(o.out, dw.buf, dw.len) < 0 || write_file(fitpath, fw.buf, fw.len) < 0)
            ex = QCTL_EXIT_FAILED;
        else if (!g->json && g->verbosity >= 0)
            printf("wrote %s and %s\n", o.out, fitpath);
        free(fitpath);
    }
out:
    qt_detector_free(det);
    qt_calib_free(cal);
    qt_design_free(des);
    qt_table_done(&tab);
    qt_jw_done(&dw);
    qt_jw_done(&fw);
    free(rho);
    free(dark);
    return ex;
}
