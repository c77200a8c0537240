/* qtomoctl reconstruct: read a sample file in the origin's layout, resolve the design, and
 * reconstruct every selected column through the daemon (or in process with --local), writing
 * one record per (sample, method) in sample order; --live reads samples from stdin. */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "estopts.h"
#include "io/qt_csv.h"
#include "io/qt_designfile.h"
#include "io/qt_json.h"
#include "io/qt_record.h"
#include "num/qt_chunk.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_lapack.h"
#include "num/qt_tdbound.h"
#include "num/qt_theory.h"
#include "qctl.h"
#include "qtc_internal.h"
#include "recon.h"

#define INPUT_MAX ((size_t)1 << 30)
#define LIVE_MAX  (1u << 20) /* values per --live line */

void qctl_reconstruct_usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomoctl reconstruct FILE [options]\n"
            "       qtomoctl reconstruct --live [options] < samples\n\n"
            "Reconstruct every sample of FILE (CSV/TXT, no header, rows = outcomes in design\n"
            "order, columns = samples; '-' reads standard input) through the daemon.\n\n"
            "  --local              run in this process instead (same records)\n"
            "  --live               read samples from stdin, one line of m comma-separated\n"
            "                       values each, and print each result as soon as it is ready\n"
            "  -o, --output-dir DIR write DIR/records.jsonl, DIR/summary.csv, DIR/run.json\n"
            "  --resume             with -o: finish an interrupted run in DIR\n"
            "  --hdf5               with -o: also write DIR/results.h5 (rho, metrics, error\n"
            "                       bars as datasets; for h5py, pandas, MATLAB)\n"
            "  --plots [SEL]        with -o: figures in DIR/plots and DIR/report.html; per-sample\n"
            "                       figures for SEL = all, first:N or columns like 1,3-5\n"
            "                       (default first:20), run-level figures always\n"
            "  --design NAME        nopovm | mub | sic | pauli | custom (default: inferred from\n"
            "                       the row count: d^2 rows = nopovm, d(d+1) rows = mub)\n"
            "  --design-file F      custom design (JSON, see the README)\n"
            "  --detector F         detector model (JSON: efficiencies, crosstalk,\n"
            "                       qubit_crosstalk, background, setting_intensity; see the\n"
            "                       README): estimates use the effective design it defines\n"
            "  --dim D              dimension (checked against the row count)\n"
            "  --columns A:B        1-based inclusive column range (default: all)\n"
            "  --method LIST        comma-separated methods: linear, mle, wls, rhor\n"
            "                       (default linear,mle); mle and wls start from the linear\n"
            "                       estimate\n"
            "  --physical MODE      clip (origin, default) | smolin\n"
            "  --target F|NAME      target state for fidelity and trace distance: a JSON file\n"
            "                       (ket, rho, density_matrix, amplitudes + phases_pi, profile)\n"
            "                       or a theory profile: 4D_custom, 16D_custom\n"
            "  --bell               Bell-basis fidelities (d a perfect square)\n"
            "  --spectral           dominant eigenvector's amplitudes and phases (units of pi),\n"
            "                       all eigenvalues (the record's \"spectral\")\n"
            "  --json               one JSON record per line instead of a table\n"
            "  --bootstrap N        error bars from N resamples of each sample (2..100000):\n"
            "                       std and percentile interval of every metric, std of rho\n"
            "  --resample KIND      data (default: draw from the observed frequencies) |\n"
            "                       parametric (from the estimate's predicted probabilities)\n"
            "  --seed S             random seed (0..2^53-1; default: chosen and reported);\n"
            "                       the same seed gives the same error bars everywhere\n"
            "  --confidence C       of the percentile interval, in (0, 1) (default 0.95)\n"
            "  --shots N            counts per group, for data given as probabilities or\n"
            "                       powers (needed to resample them)\n\n"
            "Estimator options:\n");
    qctl_estopts_usage(out);
}

static int parse_methods(const char *list, bool *methods)
{
    char *copy = strdup(list), *save = NULL;
    int n = 0;

    if (!copy)
        return -ENOMEM;
    memset(methods, 0, _QT_METHOD_MAX * sizeof(bool));
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int m = qt_method_from_name(tok);

        if (m < 0) {
            qctl_err("unknown method '%s' (methods: linear, mle, wls, rhor)", tok);
            free(copy);
            return QT_EMETHOD;
        }
        methods[m] = true;
        n++;
    }
    free(copy);
    if (!n) {
        qctl_err("--method needs at least one method");
        return QT_EMETHOD;
    }
    return 0;
}

/* --bootstrap (which 0), --resample 1, --seed 2, --confidence 3, --shots 4. */
static int parse_boot(int which, const char *arg, struct qt_boot_req *b, int *others)
{
    unsigned long long v = 0;
    double c = 0.0;
    char *end = NULL;

    errno = 0;
    if (which == 1) {
        if (qt_resample_kind_from_name(arg, &b->kind) < 0) {
            qctl_err("--resample must be 'data' or 'parametric', got '%s'", arg);
            return -1;
        }
    } else if (which == 3) {
        c = strtod(arg, &end);
        if (errno || *end || !(c > 0.0 && c < 1.0)) {
            qctl_err("--confidence needs a number in (0, 1), got '%s'", arg);
            return -1;
        }
        b->confidence = c;
    } else {
        static const char *const names[] = {"--bootstrap", "", "--seed", "", "--shots"};
        static const unsigned long long lo[] = {2, 0, 0, 0, 1};
        static const unsigned long long hi[] = {QT_BOOT_MAX_RESAMPLES, 0, QT_BOOT_MAX_SEED, 0,
                                                QT_BOOT_MAX_SEED};

        if (arg[0] != '-')
            v = strtoull(arg, &end, 10);
        if (arg[0] == '-' || errno || !end || *end || end == arg || v < lo[which] ||
            v > hi[which]) {
            qctl_err("%s needs a whole number in [%llu, %llu], got '%s'", names[which], lo[which],
                     hi[which], arg);
            return -1;
        }
        if (which == 0)
            b->resamples = (uint32_t)v;
        else if (which == 2)
            b->seed = v, b->has_seed = true;
        else
            b->shots = v;
    }
    *others += which != 0;
    return 0;
}

static bool looks_like_plot_sel(const char *s)
{
    if (strcmp(s, "all") == 0 || strncmp(s, "first:", 6) == 0)
        return true;
    if (!*s)
        return false;
    for (; *s; s++)
        if (!strchr("0123456789,-", *s))
            return false;
    return true;
}

static int parse_args(int argc, char **argv, struct recon *rc)
{
    enum {
        O_LOCAL = 256,
        O_LIVE,
        O_RESUME,
        O_HDF5,
        O_DESIGN,
        O_DFILE,
        O_DIM,
        O_COLS,
        O_METHOD,
        O_PHYS,
        O_TARGET,
        O_BELL,
        O_SPECTRAL,
        O_JSON,
        O_BOOT,
        O_RESAMPLE,
        O_SEED,
        O_CONF,
        O_SHOTS,
        O_PLOTS,
        O_DETECTOR,
        O_HELP
    };
    static const struct option fixed[] = {
        {"local", no_argument, NULL, O_LOCAL},
        {"live", no_argument, NULL, O_LIVE},
        {"output-dir", required_argument, NULL, 'o'},
        {"resume", no_argument, NULL, O_RESUME},
        {"hdf5", no_argument, NULL, O_HDF5},
        {"design", required_argument, NULL, O_DESIGN},
        {"design-file", required_argument, NULL, O_DFILE},
        {"dim", required_argument, NULL, O_DIM},
        {"columns", required_argument, NULL, O_COLS},
        {"method", required_argument, NULL, O_METHOD},
        {"physical", required_argument, NULL, O_PHYS},
        {"target", required_argument, NULL, O_TARGET},
        {"bell", no_argument, NULL, O_BELL},
        {"spectral", no_argument, NULL, O_SPECTRAL},
        {"json", no_argument, NULL, O_JSON},
        {"bootstrap", required_argument, NULL, O_BOOT},
        {"resample", required_argument, NULL, O_RESAMPLE},
        {"seed", required_argument, NULL, O_SEED},
        {"confidence", required_argument, NULL, O_CONF},
        {"shots", required_argument, NULL, O_SHOTS},
        {"plots", optional_argument, NULL, O_PLOTS},
        {"detector", required_argument, NULL, O_DETECTOR},
        {"help", no_argument, NULL, O_HELP},
    };
    struct option opts[QT_ARRAY_SIZE(fixed) + 32];
    size_t nopts = QT_ARRAY_SIZE(fixed);
    int opt, r, boot_opts = 0;
    char *end;

    memcpy(opts, fixed, sizeof(fixed));
    qctl_estopts_getopt(opts, &nopts);
    while ((opt = getopt_long(argc, argv, "ho:", opts, NULL)) != -1) {
        r = qctl_estopts_parse(opt, optarg, &rc->opts);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        switch (opt) {
        case O_LOCAL:
            rc->local = true;
            break;
        case O_LIVE:
            rc->live = true;
            break;
        case 'o':
            rc->outdir = optarg;
            break;
        case O_RESUME:
            rc->resume = true;
            break;
        case O_HDF5:
            rc->hdf5 = true;
            break;
        case O_DESIGN:
            rc->design = optarg;
            break;
        case O_DFILE:
            rc->design_file = optarg;
            break;
        case O_DETECTOR:
            rc->detector_file = optarg;
            break;
        case O_DIM:
            errno = 0;
            rc->dim = (size_t)strtoul(optarg, &end, 10);
            if (errno || *end || rc->dim < 2) {
                qctl_err("--dim needs an integer >= 2, got '%s'", optarg);
                return -1;
            }
            break;
        case O_COLS:
            rc->columns = optarg;
            break;
        case O_METHOD:
            if (parse_methods(optarg, rc->methods) < 0)
                return -1;
            break;
        case O_PHYS:
            if (strcmp(optarg, "clip") == 0) {
                rc->opts.physical = QT_PHYS_CLIP;
            } else if (strcmp(optarg, "smolin") == 0) {
                rc->opts.physical = QT_PHYS_SMOLIN;
            } else {
                qctl_err("--physical must be 'clip' or 'smolin', got '%s'", optarg);
                return -1;
            }
            break;
        case O_TARGET:
            rc->target_file = optarg;
            break;
        case O_BELL:
            rc->bell = true;
            break;
        case O_SPECTRAL:
            rc->spectral = true;
            break;
        case O_JSON:
            rc->json = true;
            break;
        case O_BOOT:
        case O_RESAMPLE:
        case O_SEED:
        case O_CONF:
        case O_SHOTS:
            if (parse_boot(opt - O_BOOT, optarg, &rc->boot, &boot_opts) < 0)
                return -1;
            break;
        case O_PLOTS:
            /* "--plots SEL" as well as "--plots=SEL": take the next word when it is a
             * selection (all, first:N, or columns), not the input file. */
            if (!optarg && optind < argc && looks_like_plot_sel(argv[optind]))
                optarg = argv[optind++];
            if (plot_sel_parse(optarg, &rc->plot_sel) < 0)
                return -1;
            rc->plots = true;
            break;
        case 'h':
        case O_HELP:
            qctl_reconstruct_usage(stdout);
            return 1;
        default:
            qctl_reconstruct_usage(stderr);
            return -1;
        }
    }
    if (rc->live) {
        if (optind != argc) {
            qctl_err("--live reads samples from standard input; drop '%s'", argv[optind]);
            return -1;
        }
        if (rc->outdir || rc->resume || rc->columns || rc->hdf5) {
            qctl_err("--live writes to standard output; -o, --resume, --hdf5 and --columns do "
                     "not apply");
            return -1;
        }
        rc->file = "-";
    } else {
        if (optind + 1 != argc) {
            qctl_err(optind >= argc ? "reconstruct needs an input FILE (or --live)"
                                    : "reconstruct takes one input FILE");
            return -1;
        }
        rc->file = argv[optind];
    }
    if (rc->resume && !rc->outdir) {
        qctl_err("--resume needs -o DIR (the directory of the interrupted run)");
        return -1;
    }
    if (rc->hdf5 && !rc->outdir) {
        qctl_err("--hdf5 needs -o DIR (results.h5 is written next to records.jsonl)");
        return -1;
    }
    if (rc->plots && !rc->outdir) {
        qctl_err(rc->live ? "--plots draws into -o DIR, which --live does not write"
                          : "--plots draws into -o DIR (DIR/plots, DIR/report.html); add -o DIR");
        return -1;
    }
    if (boot_opts && !rc->boot.resamples) {
        qctl_err("--resample, --seed, --confidence and --shots go with --bootstrap N");
        return -1;
    }
    if (rc->boot.resamples && rc->boot.confidence == 0.0)
        rc->boot.confidence = QT_BOOT_CONFIDENCE;
    return 0;
}

static int load_json_file(const char *what, const char *path, char **buf, size_t *len)
{
    int r = qctl_read_file(path, QT_DESIGNFILE_MAX_BYTES, buf, len);

    if (r < 0)
        qctl_err("cannot read %s '%s': %s", what, path, qt_strerror(r));
    return r;
}

static int load_input(struct recon *rc)
{
    struct qt_diag dg = {0};
    char *buf = NULL;
    size_t len = 0;
    int r;

    r = qctl_read_file(rc->file, INPUT_MAX, &buf, &len);
    if (r < 0) {
        qctl_err("cannot read '%s': %s", rc->file, qt_strerror(r));
        return -1;
    }
    r = qt_csv_parse(buf, len, NULL, &rc->tab, &dg);
    free(buf);
    if (r < 0) {
        if (dg.line)
            qctl_err("'%s' %s", rc->file, dg.msg); /* msg begins with the location */
        else
            qctl_err("'%s': %s", rc->file, dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    rc->first = 0;
    rc->last = rc->tab.cols - 1;
    if (rc->columns) {
        size_t a, b;

        r = qt_csv_parse_range(rc->columns, &a, &b, &dg);
        if (r >= 0)
            r = qt_csv_check_range(&rc->tab, a, b, &dg);
        if (r < 0) {
            qctl_err("--columns '%s': %s", rc->columns, dg.msg);
            return -1;
        }
        rc->first = a - 1;
        rc->last = b - 1;
    }
    return 0;
}

/* Resolves the design from the options and the row count (rows = 0 in --live: the dimension
 * may then be left to each sample's length). Built-in designs are built here only for local
 * runs; custom designs are always parsed (for their checks and content id). */
static int resolve_design(struct recon *rc, size_t rows)
{
    struct qt_diag dg = {0};
    size_t d = rc->dim;
    int kind = -1, r;

    if (rc->design_file) {
        if (rc->design && qt_design_kind_from_name(rc->design) != QT_DESIGN_CUSTOM) {
            qctl_err("--design-file gives a custom design; drop --design '%s'", rc->design);
            return -1;
        }
        if (load_json_file("design file", rc->design_file, &rc->design_text, &rc->design_len) < 0)
            return -1;
        r = qt_designfile_parse(rc->design_text, rc->design_len, &rc->des_own, &dg);
        rc->des = rc->des_own;
        if (r < 0) {
            qctl_err("design file '%s': %s", rc->design_file, dg.msg[0] ? dg.msg : qt_strerror(r));
            return -1;
        }
        if (rows && rc->des->m != rows) {
            qctl_err("the custom design has %zu outcomes but '%s' has %zu rows", rc->des->m,
                     rc->file, rows);
            return -1;
        }
        kind = QT_DESIGN_CUSTOM;
        d = rc->des->d;
        (void)snprintf(rc->design_id, sizeof(rc->design_id), "%s", rc->des->id);
    } else {
        if (rc->design) {
            kind = qt_design_kind_from_name(rc->design);
            if (kind < 0 || kind == QT_DESIGN_CUSTOM) {
                qctl_err(kind < 0 ? "unknown design '%s' (nopovm, mub, sic, pauli, custom)"
                                  : "design '%s' needs --design-file",
                         rc->design);
                return -1;
            }
        }
        if (rows) {
            r = qt_design_infer(kind, rows, &kind, &d, &dg);
            if (r < 0) {
                qctl_err("'%s': %s", rc->file, dg.msg);
                return -1;
            }
        }
    }
    if (rc->dim && d && rc->dim != d) {
        qctl_err("--dim %zu does not match '%s': %zu rows mean d = %zu for design '%s'", rc->dim,
                 rc->file, rows, d,
                 kind == QT_DESIGN_CUSTOM ? "custom"
                                          : qt_design_kind_name((enum qt_design_kind)kind));
        return -1;
    }
    rc->kind = kind;
    rc->d = d;
    (void)snprintf(rc->design_name, sizeof(rc->design_name), "%s",
                   kind < 0 ? "" : qt_design_kind_name((enum qt_design_kind)kind));
    if (rc->local && !rc->des && kind >= 0 && d)
        return qctl_recon_build_design(rc, (enum qt_design_kind)kind, d);
    return 0;
}

int qctl_recon_build_design(struct recon *rc, enum qt_design_kind kind, size_t d)
{
    struct qt_diag dg = {0};
    int r;

    if (rc->cache) {
        r = qt_cache_get(rc->cache, kind, d, &rc->des_map, &dg);
        if (r < 0) {
            qctl_err("projector cache: %s", dg.msg[0] ? dg.msg : qt_strerror(r));
            return -1;
        }
        rc->des = qt_cache_map_design(rc->des_map);
        return 0;
    }
    r = qt_design_new(kind, d, &rc->des_own, &dg);
    rc->des = rc->des_own;
    if (r < 0) {
        qctl_err("%s", dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    return 0;
}

void qctl_recon_drop_design(struct recon *rc)
{
    qt_cache_unmap(rc->des_map);
    qt_design_free(rc->des_own);
    rc->des_map = NULL;
    rc->des_own = NULL;
    rc->des = NULL;
}

/* --target NAME where NAME is no file but a theory profile: the file {"profile": NAME}. */
static int profile_target(struct recon *rc, char **buf, size_t *len)
{
    const struct qt_theory_profile *p = qt_theory_profile_find(rc->target_file);
    struct stat st;

    if (!p || stat(rc->target_file, &st) == 0 || errno != ENOENT)
        return 0;
    *len = strlen(p->name) + 16;
    *buf = malloc(*len);
    if (!*buf) {
        qctl_err("out of memory");
        return -1;
    }
    *len = (size_t)snprintf(*buf, *len, "{\"profile\": \"%s\"}", p->name);
    rc->target_profile = p->name;
    return 1;
}

static int load_target(struct recon *rc)
{
    struct qt_target_fix fix;
    struct qt_diag dg = {0};
    const char *what;
    char *buf;
    size_t len, d = rc->d;
    int r;

    if (!rc->target_file)
        return 0;
    if (!d) {
        qctl_err("--target needs the dimension: give --dim (or --design with a fixed size)");
        return -1;
    }
    rc->target = malloc(d * d * sizeof(double complex));
    r = rc->target ? profile_target(rc, &buf, &len) : -1;
    if (r < 0 || (r == 0 && load_json_file("target file", rc->target_file, &buf, &len) < 0))
        return -1;
    what = rc->target_profile ? "target" : "target file";
    r = qt_targetfile_parse(buf, len, d, rc->target, &fix, &dg);
    free(buf);
    if (r < 0) {
        qctl_err("%s '%s': %s", what, rc->target_file, dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    qctl_warn_target_fix(what, rc->target_file, &fix);
    rc->opts.target = rc->target;
    return 0;
}

static volatile int interrupted;

static void on_signal(int sig)
{
    (void)sig;
    interrupted = 1;
}

static void catch_signals(void)
{
    struct sigaction sa = {.sa_handler = on_signal};

    /* No SA_RESTART: a blocked poll returns, the batch is cancelled, the outputs are closed. */
    sigemptyset(&sa.sa_mask);
    (void)sigaction(SIGINT, &sa, NULL);
    (void)sigaction(SIGTERM, &sa, NULL);
}

static double since_ms(const struct timespec *t0)
{
    struct timespec t;

    (void)clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* The records of an empty column, exactly as every path reports it. */
static void empty_column(struct qt_result *res, enum qt_method m, size_t col)
{
    qt_result_reset(res, m);
    (void)qt_result_fail(res, QT_ENONFINITE, "column %zu is empty", col + 1);
}

/* --bootstrap without --shots resamples counts: v[0..m) must be whole numbers. Returns 0 or
 * QT_ENOTCOUNTS with the reason in why. */
static int counts_check(const double *v, size_t m, char *why, size_t len)
{
    for (size_t a = 0; a < m; a++)
        if (!qt_resample_is_counts(v + a, 1)) {
            (void)snprintf(why, len,
                           "--bootstrap resamples counts, and value %zu is %.17g: data given as "
                           "probabilities or powers need --shots N (counts per group)",
                           a + 1, v[a]);
            return QT_ENOTCOUNTS;
        }
    return 0;
}

/* The same for every selected column of the input, before anything runs. */
static int table_counts_check(const struct recon *rc)
{
    char why[300];

    if (!rc->boot.resamples || rc->boot.shots)
        return 0;
    for (size_t col = rc->first; col <= rc->last; col++)
        if (!qt_table_col_empty(&rc->tab, col) &&
            counts_check(rc->tab.v + rc->tab.rows * col, rc->tab.rows, why, sizeof(why)) < 0) {
            qctl_err("%s: column %zu: %s", rc->file, col + 1, why);
            return -1;
        }
    return 0;
}

/* ---- in process ---- */

/* Error bars of one sample's ok results, computed here: unc[k] for res[k] (NULL where the
 * estimate failed). The stream of resample k is keyed by (seed, sample, k), as the daemon's. */
static int boot_sample(const struct recon *rc, const struct qt_design *des, struct qt_ws *ws,
                       const double *y, size_t sample, const struct qt_result *const *res,
                       size_t n_res, struct qt_uncertainty *unc, const struct qt_uncertainty **uptr)
{
    double *z = malloc(des->m * sizeof(double));
    char msg[160] = "";
    int cr = z ? qt_boot_counts(des, ws, y, rc->boot.shots, z, msg, sizeof(msg)) : -ENOMEM;

    for (size_t k = 0; k < n_res && cr != -ENOMEM; k++) {
        struct qt_boot_opts bo = {rc->boot.resamples, rc->boot.kind, rc->boot.seed, sample,
                                  rc->boot.confidence};
        int r = cr;

        qt_uncertainty_done(&unc[k]);
        uptr[k] = NULL;
        if (res[k]->err)
            continue;
        uptr[k] = &unc[k];
        if (r == 0)
            r = qt_bootstrap(des, ws, res[k]->method, z, &rc->opts, res[k], &bo, &unc[k]);
        if (r == -ENOMEM) {
            cr = r;
            break;
        }
        if (r == 0 && res[k]->method == QT_METHOD_LINEAR) /* -ENOTSUP: a design it has none for */
            unc[k].has_td_bound = qt_td_bound(des, ws, z, &rc->opts, res[k]->rho,
                                              rc->boot.confidence, &unc[k].td_bound) == 0;
        if (r < 0) {
            qt_boot_fail(&unc[k], &rc->boot, rc->boot.seed, r,
                         msg[0]            ? msg
                         : r == QT_ENOCONV ? "fewer than two resamples could be "
                                             "estimated"
                                           : qt_strerror(r));
            continue;
        }
        unc[k].shots = rc->boot.shots;
    }
    free(z);
    if (cr == -ENOMEM)
        qctl_err("out of memory computing error bars");
    return cr == -ENOMEM ? cr : 0;
}

struct local_ctx {
    const struct recon *rc;
    struct qctl_chunk_run *cr;
    const double *Y;    /* the chunk's values, rows x n */
    const bool *empty;  /* [n]: the column is empty (NULL: none is) */
    size_t s0, n;       /* the chunk's samples */
    size_t lo;          /* the first of them reported (qctl_recon_chunk_part) */
    struct timespec t0; /* when the estimate call started */
    double lin_ms;      /* the call's batched linear inversion, per sample */
    int werr;           /* the sink's error */
    qctl_sample_sink sink;
    void *sink_ud;
};

/* Hands one sample's records to the sink. Its time is its own iterative estimates plus its
 * share of the call's linear batch: everything before the first sample's own estimates. */
static int local_sample(size_t i, const struct qt_result *const *res, size_t n_res, double us,
                        void *userdata)
{
    struct local_ctx *lc = userdata;
    const struct qt_result *rec[_QT_METHOD_MAX];
    const struct qt_uncertainty *up[_QT_METHOD_MAX] = {NULL};
    const struct recon *rc = lc->rc;
    size_t sample = lc->s0 + i;
    bool empty = lc->empty && lc->empty[i];

    if (i == lc->lo)
        lc->lin_ms = (since_ms(&lc->t0) - us / 1e3) / (double)lc->n;
    for (size_t k = 0; k < n_res; k++) {
        rec[k] = res[k];
        if (empty) {
            empty_column(&lc->cr->empty[k], res[k]->method, rc->first + sample);
            rec[k] = &lc->cr->empty[k];
        }
    }
    if (rc->boot.resamples && !empty &&
        boot_sample(rc, rc->des, &lc->cr->ws, lc->Y + rc->des->m * i, sample, res, n_res,
                    lc->cr->unc, up) < 0)
        return -ENOMEM;
    lc->werr = lc->sink(lc->sink_ud, sample, rec, up, n_res, lc->lin_ms + us / 1e3);
    return lc->werr;
}

int qctl_chunk_run_init(struct qctl_chunk_run *cr, size_t d)
{
    *cr = (struct qctl_chunk_run){.ws = QT_WS_INIT};
    for (size_t k = 0; k < _QT_METHOD_MAX; k++)
        if (qt_result_init(&cr->empty[k], d) < 0) {
            qctl_err("out of memory");
            qctl_chunk_run_done(cr);
            return -1;
        }
    return 0;
}

void qctl_chunk_run_done(struct qctl_chunk_run *cr)
{
    for (size_t k = 0; k < _QT_METHOD_MAX; k++) {
        qt_result_done(&cr->empty[k]); /* accepts unused ones */
        qt_uncertainty_done(&cr->unc[k]);
    }
    qt_ws_done(&cr->ws);
}

/* The linear estimates are computed QCTL_LOCAL_CHUNK samples at a time (also when only the
 * iterative methods were asked for: they start from them); the batch's size can change the
 * last bits of a GEMM's columns, so the batches start where --local's do. With error bars each
 * sample is estimated alone, as the daemon's workers do, so that the point estimates the
 * resamples start from are the same bits. */
int qctl_recon_chunk(const struct recon *rc, struct qctl_chunk_run *cr, const double *Y, size_t s0,
                     size_t n, const bool *empty, qctl_sample_sink sink, void *ud)
{
    return qctl_recon_chunk_part(rc, cr, Y, s0, n, 0, n, empty, sink, ud);
}

int qctl_recon_chunk_part(const struct recon *rc, struct qctl_chunk_run *cr, const double *Y,
                          size_t s0, size_t n, size_t lo, size_t hi, const bool *empty,
                          qctl_sample_sink sink, void *ud)
{
    size_t step = rc->boot.resamples ? 1 : QCTL_LOCAL_CHUNK, m = rc->des->m;

    for (size_t i = 0; i < n && !interrupted; i += step) {
        size_t k = QT_MIN(step, n - i), a = QT_MAX(lo, i) - i, b = QT_MIN(hi, i + k);
        struct local_ctx lc = {
            rc, cr, Y + m * i, empty ? empty + i : NULL, s0 + i, k, a, {0, 0}, 0.0, 0, sink, ud};
        int r;

        if (b <= i + a)
            continue; /* none of this batch's samples is asked for */
        (void)clock_gettime(CLOCK_MONOTONIC, &lc.t0);
        r = qt_chunk_estimate_part(rc->des, &cr->ws, lc.Y, m, k, a, b - i, &rc->opts,
                                   rc->method_list, rc->n_methods, local_sample, &lc);
        if (r < 0 && lc.werr == 0)
            qctl_err("%s", qt_strerror(r)); /* the sink reported its own errors */
        if (r < 0)
            return -1;
    }
    return 0;
}

bool qctl_recon_interrupted(void)
{
    return interrupted;
}

static int out_sink(void *ud, size_t sample, const struct qt_result *const *res,
                    const struct qt_uncertainty *const *unc, size_t n_res, double ms)
{
    return qctl_out_sample_unc(ud, sample, res, unc, n_res, ms);
}

/* Runs the columns of samples [s0, s0 + n) in this process into the output. */
int qctl_recon_local_chunk(const struct recon *rc, struct qctl_chunk_run *cr, struct qctl_out *out,
                           size_t s0, size_t n)
{
    const struct qt_table *t = &rc->tab;
    bool empty[QCTL_LOCAL_CHUNK];
    int r = 0;

    for (size_t i = 0; i < n && r == 0; i += QCTL_LOCAL_CHUNK) {
        size_t k = QT_MIN(QCTL_LOCAL_CHUNK, n - i), c0 = rc->first + s0 + i;

        for (size_t j = 0; j < k; j++)
            empty[j] = qt_table_col_empty(t, c0 + j);
        r = qctl_recon_chunk(rc, cr, t->v + t->rows * c0, s0 + i, k, empty, out_sink, out);
        if (r == 0)
            r = qctl_out_flush(out) < 0 ? -1 : 0;
    }
    return r;
}

static int run_local(struct recon *rc, struct qctl_out *out, size_t start)
{
    struct qctl_chunk_run cr;
    size_t n = rc->last - rc->first + 1;
    int ret;

    if (qctl_chunk_run_init(&cr, rc->des->d) < 0)
        return -1;
    /* Linear alone comes a chunk at a time, milliseconds apart: qctl_recon_local_chunk flushes
     * each chunk. Any other method can take long per sample, and a record must not wait for
     * the next sample: those are flushed as they are written. */
    qctl_out_defer_flush(out, rc->n_methods == 1 && rc->method_list[0] == QT_METHOD_LINEAR &&
                                  !rc->boot.resamples);
    ret = qctl_recon_local_chunk(rc, &cr, out, start, n - start);
    qctl_chunk_run_done(&cr);
    return ret;
}

/* ---- through the daemon ---- */

/* What the uploaded custom design is, for messages. */
/* A detector run through the daemon: the base design (a custom one by design.put) and the model
 * by detector.put; the server's effective design must be ours (the same id). Returns 0 or an
 * exit code (printed). */
static int put_detector(qtomo_conn *c, const struct recon *rc, qtomo_job *j)
{
    struct qtomo_detector_ref ref;
    struct qtomo_error err;
    char id[64];
    int r;

    if (rc->base_id[0]) {
        r = qtomo_design_put(c, rc->design_text, rc->design_len, id, sizeof(id), &err);
        if (r < 0) {
            qctl_err("design.put of '%s': %s", rc->design_file, err.message);
            return qctl_exit_for(r);
        }
        if (strcmp(id, rc->base_id) != 0) {
            qctl_err("the server's id of '%s' is %s, ours %s: client and server disagree",
                     rc->design_file, id, rc->base_id);
            return QCTL_EXIT_SERVER;
        }
    }
    r = qtomo_detector_put(c, rc->detector_text, rc->detector_len, rc->base_name, rc->d,
                           rc->base_id[0] ? rc->base_id : NULL, &ref, &err);
    if (r < 0) {
        qctl_err("detector.put of '%s': %s", rc->detector_file, err.message);
        return qctl_exit_for(r);
    }
    if (strcmp(ref.design_id, rc->design_id) != 0) {
        qctl_err("the server's effective design of '%s' is %s, ours %s: client and server "
                 "disagree",
                 rc->detector_file, ref.design_id, rc->design_id);
        return QCTL_EXIT_SERVER;
    }
    r = qtomo_job_set_detector(j, &ref);
    if (r < 0) {
        qctl_err("cannot set up the job: %s", qtomo_strerror(r));
        return QCTL_EXIT_USAGE;
    }
    return 0;
}

static const char *design_label(const struct recon *rc)
{
    if (rc->detector_id[0])
        return "the effective design of the detector file";
    return rc->design_file;
}

/* The job of this run; uploads a custom design first. Returns 0 or an exit code. */
static int make_job(struct recon *rc, qtomo_conn *c, qtomo_job **ret)
{
    struct qtomo_error err;
    qtomo_job *j = qtomo_job_new();
    struct qp_job *pj;
    int r = 0;

    *ret = NULL;
    if (!j) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    pj = qtc_job_proto(j);
    memcpy(pj->methods, rc->methods, sizeof(pj->methods));
    pj->opts = rc->opts;
    pj->opts.target = NULL;
    pj->opts.bell = rc->bell;
    pj->opts.spectral = rc->spectral;
    pj->boot = rc->boot;
    if (rc->detector_text) {
        r = put_detector(c, rc, j);
        if (r != 0) {
            qtomo_job_free(j);
            return r;
        }
    } else if (rc->kind == QT_DESIGN_CUSTOM) {
        char id[64];

        r = qtomo_design_put(c, rc->design_text, rc->design_len, id, sizeof(id), &err);
        if (r < 0) {
            qctl_err("design.put of '%s': %s", design_label(rc), err.message);
            qtomo_job_free(j);
            return qctl_exit_for(r);
        }
        if (strcmp(id, rc->design_id) != 0) {
            qctl_err("the server's id of '%s' is %s, ours %s: client and server disagree",
                     design_label(rc), id, rc->design_id);
            qtomo_job_free(j);
            return QCTL_EXIT_SERVER;
        }
        r = qtomo_job_set_custom(j, id, rc->d);
    } else if (rc->kind >= 0) {
        r = qtomo_job_set_design(j, rc->design_name, rc->d);
    } else if (rc->d) {
        r = qtomo_job_set_design(j, NULL, rc->d);
    }
    if (r >= 0 && rc->target)
        r = qtomo_job_set_target(j, rc->target, rc->d);
    if (r < 0) {
        qctl_err("cannot set up the job: %s", qtomo_strerror(r));
        qtomo_job_free(j);
        return QCTL_EXIT_USAGE;
    }
    *ret = j;
    return 0;
}

struct batch_ctx {
    struct recon *rc;
    struct qctl_out *out;
    struct qt_result empty[_QT_METHOD_MAX];
    int err;       /* -1: cannot write; -2: the server broke the stream (said why) */
    size_t start;  /* first sample index of this run */
    uint8_t *seen; /* per sample from start: its result arrived */
    size_t received;
};

static int on_result(void *userdata, const qtomo_sample *s)
{
    struct batch_ctx *bc = userdata;
    const struct qt_result *res[_QT_METHOD_MAX];
    const struct qt_uncertainty *up[_QT_METHOD_MAX] = {NULL};
    size_t n = qtomo_sample_count(s), sample = (size_t)qtomo_sample_index(s);
    size_t col = bc->rc->first + sample;

    if (sample > bc->rc->last - bc->rc->first)
        return 0; /* not one of ours */
    /* Exactly one result per sample: a server (or anything between) that repeats one would be
     * counted twice, and one that skips one would hold every later record back unwritten while
     * the run still said it was complete. */
    if (sample < bc->start || bc->seen[sample - bc->start]) {
        qctl_err("the server sent sample %zu %s; stopping (the records so far are kept, "
                 "--resume finishes the run)",
                 sample, sample < bc->start ? "which was not asked for" : "twice");
        bc->err = -2;
        return 1;
    }
    bc->seen[sample - bc->start] = 1;
    bc->received++;
    for (size_t i = 0; i < n; i++) {
        res[i] = qtc_sample_result(s, i);
        up[i] = qtc_sample_uncertainty(s, i);
        if (qt_table_col_empty(&bc->rc->tab, col)) {
            empty_column(&bc->empty[i], res[i]->method, col);
            res[i] = &bc->empty[i];
            up[i] = NULL;
        }
    }
    double ms = -1.0;

    qtomo_sample_timing(s, NULL, &ms);
    if (qctl_out_sample_unc(bc->out, sample, res, up, n, ms) < 0) {
        bc->err = -1;
        return 1; /* cannot write: stop */
    }
    return 0;
}

static void on_progress(void *userdata, const struct qtomo_progress *p)
{
    struct batch_ctx *bc = userdata;

    qctl_out_progress(bc->out, p->done, p->total);
}

static int run_daemon(struct recon *rc, qtomo_conn *c, qtomo_job *j, struct qctl_out *out,
                      size_t start, bool *complete)
{
    size_t n = rc->last - rc->first + 1 - start;
    struct batch_ctx bc = {rc, out, {{0}}, 0, start, calloc(n ? n : 1, 1), 0};
    struct qtomo_callbacks cb = {on_result, on_progress, &bc, &interrupted};
    struct qtomo_totals tot;
    struct qtomo_error err;
    int r, ret = 0;

    *complete = false;
    if (!bc.seen) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    for (size_t i = 0; i < _QT_METHOD_MAX; i++)
        if (qt_result_init(&bc.empty[i], rc->d) < 0) {
            qctl_err("out of memory");
            ret = QCTL_EXIT_FAILED;
            goto out;
        }
    /* Records are flushed at the progress the daemon sends every 250 ms and when 100 ms have
     * passed at a result (qctl_out_defer_flush), not after every result. */
    qtomo_job_set_progress(j, 250);
    qctl_out_defer_flush(out, true);
    r = qtomo_submit(c, j, rc->tab.v + rc->tab.rows * (rc->first + start), rc->tab.rows, n, start,
                     &cb, &tot, &err);
    if (r == QTOMO_E_CANCELLED && (interrupted || bc.err)) {
        ret = bc.err == -2 ? QCTL_EXIT_SERVER : bc.err ? QCTL_EXIT_FAILED : 0;
    } else if (r < 0) {
        qctl_err("%s", err.message);
        ret = qctl_exit_for(r);
    } else if (bc.received != n) {
        qctl_err("the server ended the batch with %zu of its %zu samples answered; the run is "
                 "incomplete (--resume finishes it)",
                 bc.received, n);
        ret = QCTL_EXIT_SERVER;
    } else {
        *complete = true;
    }
out:
    for (size_t i = 0; i < _QT_METHOD_MAX; i++)
        qt_result_done(&bc.empty[i]);
    free(bc.seen);
    return ret;
}

/* ---- --live ---- */

/* Parses a line of comma-separated values. Returns the count, or -1 with the bad field. */
static long parse_line(char *line, double *v, size_t max, size_t *bad)
{
    size_t m = 0;
    char *p = line, *end;

    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '\n' || *p == '\r')
        return 0;
    for (;;) {
        if (m == max) {
            *bad = m + 1;
            return -1;
        }
        errno = 0;
        v[m] = strtod(p, &end);
        while (end != p && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
            end++;
        if (end == p || (*end != ',' && *end != '\0')) {
            *bad = m + 1;
            return -1;
        }
        m++;
        if (*end == '\0')
            return (long)m;
        p = end + 1;
    }
}

/* Error records for every requested method of a sample that could not run. */
static int live_fail(struct recon *rc, struct qctl_out *out, struct qt_result *tmp, size_t sample,
                     int err, const char *msg)
{
    const struct qt_result *res[_QT_METHOD_MAX];
    size_t k = 0;

    for (int m = 0; m < _QT_METHOD_MAX; m++) {
        if (!rc->methods[m])
            continue;
        qt_result_reset(&tmp[k], (enum qt_method)m);
        (void)qt_result_fail(&tmp[k], err, "%s", msg);
        tmp[k].d = rc->d; /* 0 when the line did not tell */
        res[k] = &tmp[k];
        k++;
    }
    return qctl_out_sample(out, sample, res, k, -1.0);
}

/* The design of a --live sample of m values: the run's, or inferred from m. Sets the record's
 * design name. Returns 0 or QT_ESAMPLELEN with a message. */
static int live_design(struct recon *rc, size_t m, int *kind, size_t *d, char *msg, size_t msglen)
{
    struct qt_diag dg = {0};

    if (rc->kind == QT_DESIGN_CUSTOM) {
        if (m != rc->des->m) {
            (void)snprintf(msg, msglen, "the sample has %zu values, the custom design %zu", m,
                           rc->des->m);
            return QT_ESAMPLELEN;
        }
        *kind = QT_DESIGN_CUSTOM;
        *d = rc->des->d;
        return 0;
    }
    if (qt_design_infer(rc->kind, m, kind, d, &dg) < 0) {
        (void)snprintf(msg, msglen, "%s", dg.msg);
        return QT_ESAMPLELEN;
    }
    if (rc->d && *d != rc->d) {
        (void)snprintf(msg, msglen, "%zu values mean d = %zu, but the dimension is %zu", m, *d,
                       rc->d);
        return QT_ESAMPLELEN;
    }
    (void)snprintf(rc->design_name, sizeof(rc->design_name), "%s",
                   qt_design_kind_name((enum qt_design_kind) * kind));
    return 0;
}

struct live_ctx {
    struct qctl_out *out;
    size_t sample;
    bool wrote; /* the sample's records reached the output (or failed to) */
    const struct recon *rc;
    const struct qt_design *des;
    struct qt_ws *ws;
    const double *v;
    struct qt_uncertainty *unc;
};

static int live_write(size_t i, const struct qt_result *const *res, size_t n_res, double us,
                      void *userdata)
{
    struct live_ctx *lc = userdata;
    const struct qt_uncertainty *up[_QT_METHOD_MAX] = {NULL};

    (void)i;
    (void)us;
    lc->wrote = true;
    if (lc->rc->boot.resamples &&
        boot_sample(lc->rc, lc->des, lc->ws, lc->v, lc->sample, res, n_res, lc->unc, up) < 0)
        return -ENOMEM;
    return qctl_out_sample_unc(lc->out, lc->sample, res, up, n_res, -1.0);
}

/* One sample in process, through the same calls as a batch (a chunk of one), so the records
 * equal the daemon's; they go to the output from here. The design is built once per (kind, d).
 * Returns 0, or a negative error: the output's when lc->wrote, else why the sample could not
 * run, with a message. */
static int live_local(struct recon *rc, struct live_ctx *lc, struct qt_ws *ws,
                      struct qt_design **des, int kind, size_t d, const double *v, size_t m,
                      char *msg, size_t msglen)
{
    struct qt_diag dg = {0};
    int r;

    if (kind == QT_DESIGN_CUSTOM) {
        *des = rc->des_own; /* custom designs are parsed, never mapped */
    } else if (!*des || (int)(*des)->kind != kind || (*des)->d != d) {
        if (*des != rc->des)
            qt_design_free(*des);
        *des = NULL;
        r = qt_design_new((enum qt_design_kind)kind, d, des, &dg);
        if (r < 0) {
            (void)snprintf(msg, msglen, "%s", dg.msg[0] ? dg.msg : qt_strerror(r));
            return r;
        }
    }
    lc->des = *des;
    lc->ws = ws;
    lc->v = v;
    r = qt_chunk_estimate(*des, ws, v, m, 1, &rc->opts, rc->method_list, rc->n_methods, live_write,
                          lc);
    if (r < 0 && !lc->wrote)
        (void)snprintf(msg, msglen, "%s", qt_strerror(r));
    return r;
}

static int run_live(struct recon *rc, qtomo_conn *c, qtomo_job *j, struct qctl_out *out)
{
    struct qt_result tmp[_QT_METHOD_MAX] = {{0}};
    struct qt_uncertainty unc[_QT_METHOD_MAX] = {{0}};
    struct qt_ws ws = QT_WS_INIT;
    struct qt_design *des = NULL;
    double *v = malloc(LIVE_MAX * sizeof(double));
    char *line = NULL;
    size_t cap = 0, sample = 0, lineno = 0;
    ssize_t len;
    int ret = 0;

    if (!v) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    for (size_t i = 0; i < _QT_METHOD_MAX; i++)
        if (qt_result_init(&tmp[i], rc->d ? rc->d : 2) < 0) {
            qctl_err("out of memory");
            ret = QCTL_EXIT_FAILED;
            goto out;
        }
    while (!interrupted && (len = getline(&line, &cap, stdin)) > 0) {
        const struct qt_result *res[_QT_METHOD_MAX];
        char why[400], msg[512];
        size_t bad = 0, k = 0, d = 0;
        /* A NUL byte would end the string early: such a line read as blank and was skipped. */
        bool nul = memchr(line, '\0', (size_t)len) != NULL;
        long m = nul ? -1 : parse_line(line, v, LIVE_MAX, &bad);
        int kind = -1, r;

        lineno++; /* messages name the input's line, blank ones counted */
        if (m == 0)
            continue; /* blank line */
        if (rc->kind < 0)
            rc->design_name[0] = '\0'; /* until the line's length names it */
        if (m < 0) {
            if (nul)
                (void)snprintf(why, sizeof(why), "the line holds a NUL byte");
            else
                (void)snprintf(why, sizeof(why), "field %zu is not a number", bad);
            r = QT_EPARSE;
        } else {
            r = live_design(rc, (size_t)m, &kind, &d, why, sizeof(why));
        }
        if (r >= 0 && rc->boot.resamples && !rc->boot.shots)
            r = counts_check(v, (size_t)m, why, sizeof(why));
        if (r >= 0 && rc->local) {
            struct live_ctx lc = {out, sample, false, rc, NULL, NULL, NULL, unc};

            r = live_local(rc, &lc, &ws, &des, kind, d, v, (size_t)m, why, sizeof(why));
            if (lc.wrote) {
                sample++;
                if (r < 0) {
                    ret = QCTL_EXIT_FAILED;
                    break;
                }
                continue;
            }
        } else if (r >= 0) {
            struct qtomo_error err;
            qtomo_sample *s = NULL;

            /* A full queue is not the sample's fault: wait as told and send it again. */
            qtc_job_proto(j)->first_index = sample; /* the resample streams' sample index */
            for (int tries = 0;; tries++) {
                r = qtomo_reconstruct(c, j, v, (size_t)m, &s, &err);
                if (r != QTOMO_E_BUSY || tries == 50 || interrupted)
                    break;
                (void)nanosleep(
                    &(struct timespec){0, (err.retry_after_ms > 0 ? err.retry_after_ms : 100) *
                                              1000000L},
                    NULL);
            }
            if (r == -EINVAL || r == QTOMO_E_INVALID_PARAMS || r == QTOMO_E_INVALID_SAMPLE ||
                r == QTOMO_E_TOO_LARGE) {
                (void)snprintf(why, sizeof(why), "%s", err.message);
                r = r == QTOMO_E_TOO_LARGE ? QT_ETOOBIG : QT_ESAMPLELEN;
            } else if (r < 0) {
                qctl_err("%s", err.message);
                ret = qctl_exit_for(r);
                break;
            } else {
                const struct qt_uncertainty *up[_QT_METHOD_MAX] = {NULL};

                for (k = 0; k < qtomo_sample_count(s); k++) {
                    res[k] = qtc_sample_result(s, k);
                    up[k] = qtc_sample_uncertainty(s, k);
                }
                r = qctl_out_sample_unc(out, sample++, res, up, k, -1.0);
                qtomo_sample_free(s);
                if (r < 0) {
                    ret = QCTL_EXIT_FAILED;
                    break;
                }
                continue;
            }
        }
        /* Every sample that ran has been written above. */
        assert(r < 0);
        (void)snprintf(msg, sizeof(msg), "line %zu: %s", lineno, why);
        r = live_fail(rc, out, tmp, sample, r, msg);
        sample++;
        if (r < 0) {
            ret = QCTL_EXIT_FAILED;
            break;
        }
    }
out:
    if (des != rc->des)
        qt_design_free(des);
    for (size_t i = 0; i < _QT_METHOD_MAX; i++) {
        qt_result_done(&tmp[i]);
        qt_uncertainty_done(&unc[i]);
    }
    qt_ws_done(&ws);
    free(line);
    free(v);
    return ret;
}

/* ---- the command ---- */

/* --bootstrap without --seed: a resumed run keeps its seed, a new one gets a random one (it is
 * in every record and in run.json). */
static int choose_seed(struct recon *rc)
{
    uint64_t s = 0;

    if (!rc->boot.resamples || rc->boot.has_seed)
        return 0;
    if (rc->resume && qctl_resume_seed(rc->outdir, &s) == 0) {
        rc->boot.seed = s;
    } else {
        if (getrandom(&s, sizeof(s), 0) != (ssize_t)sizeof(s)) {
            qctl_err("cannot choose a seed: %s", strerror(errno));
            return -1;
        }
        rc->boot.seed = s & QT_BOOT_MAX_SEED;
    }
    rc->boot.has_seed = true;
    return 0;
}

static int prepare_outdir(struct recon *rc, size_t *start)
{
    char *opts;
    int r;

    *start = 0;
    if (!rc->outdir)
        return 0;
    if (mkdir(rc->outdir, 0755) != 0 && errno != EEXIST) {
        qctl_err("cannot create '%s': %s", rc->outdir, strerror(errno));
        return QCTL_EXIT_USAGE;
    }
    /* One run per directory: two runs started together on a new DIR both passed the check
     * below and wrote interleaved, duplicated and missing records, each ending "complete".
     * The lock is on the directory itself and lasts as long as this process. */
    int dfd = open(rc->outdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

    if (dfd < 0) {
        qctl_err("cannot open '%s': %s", rc->outdir, strerror(errno));
        return QCTL_EXIT_USAGE;
    }
    if (flock(dfd, LOCK_EX | LOCK_NB) != 0) {
        int e = errno;

        close(dfd);
        if (e == EWOULDBLOCK)
            qctl_err("'%s' is in use by another qtomoctl run; wait for it, or use another "
                     "directory",
                     rc->outdir);
        else
            qctl_err("cannot lock '%s': %s", rc->outdir, strerror(e));
        return QCTL_EXIT_USAGE;
    }
    /* dfd stays open (and locked) until the process ends. */
    if (!rc->resume) {
        char path[4096];
        struct stat st;

        (void)snprintf(path, sizeof(path), "%s/records.jsonl", rc->outdir);
        if (stat(path, &st) == 0 && st.st_size > 0) {
            qctl_err("'%s' already holds records; use --resume to finish that run, or "
                     "another directory",
                     rc->outdir);
            return QCTL_EXIT_USAGE;
        }
        return 0;
    }
    opts = qctl_options_json(rc);
    if (!opts) {
        qctl_err("out of memory");
        return QCTL_EXIT_FAILED;
    }
    r = qctl_resume_scan(rc, opts, start);
    free(opts);
    return r;
}

int qctl_recon_parse(int argc, char **argv, struct recon *rc, bool json)
{
    int r;

    qt_opts_init(&rc->opts);
    rc->methods[QT_METHOD_LINEAR] = rc->methods[QT_METHOD_MLE] = true;
    rc->json = json;
    r = parse_args(argc, argv, rc);
    if (r != 0)
        return r;
    for (int m = 0; m < _QT_METHOD_MAX; m++)
        if (rc->methods[m])
            rc->method_list[rc->n_methods++] = (enum qt_method)m;
    rc->opts.bell = rc->bell;
    rc->opts.spectral = rc->spectral;
    return 0;
}

int qctl_recon_prepare_design(struct recon *rc, size_t rows)
{
    if (resolve_design(rc, rows) < 0 || load_target(rc) < 0)
        return -1;
    return qctl_recon_detector(rc) < 0 ? -1 : 0;
}

void qctl_recon_done(struct recon *rc)
{
    qt_table_done(&rc->tab);
    qctl_recon_drop_design(rc);
    free(rc->design_text);
    free(rc->detector_text);
    free(rc->target);
}

int qctl_reconstruct_run(int argc, char **argv, struct qctl_global *g,
                         const struct qctl_recon_runner *runner)
{
    struct recon rc = {0};
    struct qctl_out *out = NULL;
    qtomo_conn *conn = NULL;
    qtomo_job *job = NULL;
    struct timespec t0;
    size_t start = 0, n;
    bool complete = false;
    int r, ret = QCTL_EXIT_USAGE;

    r = qctl_recon_parse(argc, argv, &rc, g->json);
    if (r != 0)
        return r > 0 ? QCTL_EXIT_OK : QCTL_EXIT_USAGE;
    if (runner) {
        if (rc.live || rc.local) {
            qctl_err(rc.live ? "--live is interactive (qtomoctl reconstruct --live); %s runs "
                               "batches from a FILE"
                             : "%s always computes in its own processes; drop --local",
                     qctl_progname);
            return QCTL_EXIT_USAGE;
        }
        rc.local = true; /* the design is built here; records as --local's */
        rc.mode = runner->mode;
        rc.cache = runner->cache;
    }
    if (rc.local && !runner)
        qctl_blas_env(g);
    if (!rc.live && load_input(&rc) < 0)
        goto out;
    if (qctl_recon_prepare_design(&rc, rc.live ? 0 : rc.tab.rows) < 0)
        goto out;
    if (choose_seed(&rc) < 0 || (!rc.live && table_counts_check(&rc) < 0))
        goto out;
    if (!rc.live) {
        r = qctl_sha256_file(rc.file, rc.input_sha256);
        if (r < 0) {
            qctl_err("cannot read '%s': %s", rc.file, strerror(-r));
            goto out;
        }
    }
    if (!rc.local) {
        struct qtomo_server_info si;

        ret = qctl_connect(g, &conn);
        if (ret)
            goto out;
        qtomo_server_info(conn, &si);
        (void)snprintf(rc.server, sizeof(rc.server), "%s", si.server);
        ret = make_job(&rc, conn, &job);
        if (ret)
            goto out;
    }
    ret = prepare_outdir(&rc, &start);
    if (ret)
        goto out;
    n = rc.live ? SIZE_MAX : rc.last - rc.first + 1;
    if (start >= n && !rc.live) {
        qctl_info(g, "%s: all %zu samples already have records", rc.outdir, n);
    } else if (!rc.live) {
        qctl_info(g, "%s: %zu rows, %zu samples, design %s, d = %zu%s", rc.file, rc.tab.rows, n,
                  rc.design_name, rc.d, rc.local ? " (in process)" : "");
    }
    if (start > n)
        start = n;
    ret = qctl_out_open(&out, &rc, g, n, start);
    if (ret)
        goto out;
    catch_signals();
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    if (rc.live) {
        ret = run_live(&rc, conn, job, out);
        complete = ret == 0 && !interrupted;
    } else if (runner) {
        /* also with nothing left to do: the runner's other processes wait for word */
        ret = runner->run(&rc, out, start, runner->ud) < 0 ? QCTL_EXIT_FAILED : 0;
        complete = ret == 0 && !interrupted;
    } else if (start >= n) {
        complete = true;
    } else if (rc.local) {
        ret = run_local(&rc, out, start) < 0 ? QCTL_EXIT_FAILED : 0;
        complete = ret == 0 && !interrupted;
    } else {
        ret = run_daemon(&rc, conn, job, out, start, &complete);
    }
    r = qctl_out_finish(out, complete, since_ms(&t0));
    if (!ret)
        ret = r;
    if (rc.plots && rc.outdir && interrupted) {
        qctl_err("interrupted: no figures drawn (qtomoctl plot %s draws them later)", rc.outdir);
    } else if (rc.plots && rc.outdir) {
        (void)signal(SIGINT, SIG_DFL); /* drawing is not a batch to cancel: stop at once */
        (void)signal(SIGTERM, SIG_DFL);
        r = qctl_plot_dir(rc.outdir, &rc.plot_sel, g);
        if (!ret)
            ret = r;
    }
out:
    qctl_out_free(out);
    qtomo_job_free(job);
    qtomo_close(conn);
    qctl_recon_done(&rc);
    return ret;
}

int qctl_cmd_reconstruct(int argc, char **argv, struct qctl_global *g)
{
    return qctl_reconstruct_run(argc, argv, g, NULL);
}
