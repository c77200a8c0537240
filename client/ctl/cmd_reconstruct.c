/* qtomoctl reconstruct: read a sample file in the origin's layout, resolve the design, and
 * reconstruct every selected column in process (--local), printing one record per
 * (sample, method) in sample order. */
#include <assert.h>
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "estopts.h"
#include "io/qt_csv.h"
#include "io/qt_designfile.h"
#include "io/qt_json.h"
#include "io/qt_record.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"
#include "num/qt_lapack.h"
#include "qctl.h"

#define INPUT_MAX ((size_t)1 << 30)
#define CHUNK     64 /* samples per batched call */

struct recon {
    const char *file, *design, *design_file, *columns, *target_file;
    size_t dim;
    bool local, json, bell;
    bool methods[_QT_METHOD_MAX];
    struct qt_opts opts;
    /* resolved */
    struct qt_table tab;
    struct qt_design *des;
    double complex *target;
    size_t first, last; /* 0-based inclusive column range */
};

static void recon_usage(FILE *out)
{
    fprintf(out,
            "Usage: qtomoctl reconstruct FILE --local [options]\n\n"
            "Reconstruct every sample of FILE (CSV/TXT, no header, rows = outcomes in design\n"
            "order, columns = samples; '-' reads standard input).\n\n"
            "  --local              run in this process (the daemon path arrives later)\n"
            "  --design NAME        nopovm | mub | sic | pauli | custom (default: inferred from\n"
            "                       the row count: d^2 rows = nopovm, d(d+1) rows = mub)\n"
            "  --design-file F      custom design (JSON, see the README)\n"
            "  --dim D              dimension (checked against the row count)\n"
            "  --columns A:B        1-based inclusive column range (default: all)\n"
            "  --method LIST        comma-separated methods: linear, mle, wls, rhor\n"
            "                       (default linear); mle and wls start from the linear\n"
            "                       estimate\n"
            "  --physical MODE      clip (origin, default) | smolin\n"
            "  --target F           target state (JSON) for fidelity and trace distance\n"
            "  --bell               Bell-basis fidelities (d a perfect square)\n"
            "  --json               one JSON record per line instead of a table\n\n"
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

static int parse_args(int argc, char **argv, struct recon *rc)
{
    enum {
        O_LOCAL = 256,
        O_DESIGN,
        O_DFILE,
        O_DIM,
        O_COLS,
        O_METHOD,
        O_PHYS,
        O_TARGET,
        O_BELL,
        O_JSON,
        O_HELP
    };
    static const struct option fixed[] = {
        {"local", no_argument, NULL, O_LOCAL},
        {"design", required_argument, NULL, O_DESIGN},
        {"design-file", required_argument, NULL, O_DFILE},
        {"dim", required_argument, NULL, O_DIM},
        {"columns", required_argument, NULL, O_COLS},
        {"method", required_argument, NULL, O_METHOD},
        {"physical", required_argument, NULL, O_PHYS},
        {"target", required_argument, NULL, O_TARGET},
        {"bell", no_argument, NULL, O_BELL},
        {"json", no_argument, NULL, O_JSON},
        {"help", no_argument, NULL, O_HELP},
    };
    struct option opts[QT_ARRAY_SIZE(fixed) + 32];
    size_t nopts = QT_ARRAY_SIZE(fixed);
    int opt, r;
    char *end;

    memcpy(opts, fixed, sizeof(fixed));
    qctl_estopts_getopt(opts, &nopts);
    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        r = qctl_estopts_parse(opt, optarg, &rc->opts);
        if (r < 0)
            return -1;
        if (r > 0)
            continue;
        switch (opt) {
        case O_LOCAL:
            rc->local = true;
            break;
        case O_DESIGN:
            rc->design = optarg;
            break;
        case O_DFILE:
            rc->design_file = optarg;
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
        case O_JSON:
            rc->json = true;
            break;
        case 'h':
        case O_HELP:
            recon_usage(stdout);
            return 1;
        default:
            recon_usage(stderr);
            return -1;
        }
    }
    if (optind + 1 != argc) {
        qctl_err(optind >= argc ? "reconstruct needs an input FILE"
                                : "reconstruct takes one input FILE");
        return -1;
    }
    rc->file = argv[optind];
    return 0;
}

/* Reads a whole file ('-' = standard input) up to max bytes. */
static int read_all(const char *path, size_t max, char **ret_buf, size_t *ret_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    size_t len = 0, cap = 0;
    char *buf = NULL;
    int r = 0;

    if (!f)
        return -errno;
    for (;;) {
        if (len == cap) {
            size_t ncap = cap ? cap * 2 : 65536;
            char *nb = ncap > max + 1 ? NULL : realloc(buf, ncap);

            if (!nb) {
                r = ncap > max + 1 ? QT_ETOOBIG : -ENOMEM;
                goto out;
            }
            buf = nb;
            cap = ncap;
        }
        size_t n = fread(buf + len, 1, cap - len, f);
        len += n;
        if (n == 0)
            break;
    }
    if (ferror(f)) {
        r = -EIO;
        goto out;
    }
    *ret_buf = buf;
    *ret_len = len;
    buf = NULL;
out:
    free(buf);
    if (f != stdin)
        fclose(f);
    return r;
}

static int load_json_file(const char *what, const char *path, char **buf, size_t *len)
{
    int r = read_all(path, QT_DESIGNFILE_MAX_BYTES, buf, len);

    if (r < 0)
        qctl_err("cannot read %s '%s': %s", what, path, qt_strerror(r));
    return r;
}

static int resolve_design(struct recon *rc)
{
    struct qt_diag dg = {0};
    size_t rows = rc->tab.rows, d;
    int kind = -1, r;

    if (rc->design_file) {
        char *buf;
        size_t len;

        if (rc->design && qt_design_kind_from_name(rc->design) != QT_DESIGN_CUSTOM) {
            qctl_err("--design-file gives a custom design; drop --design '%s'", rc->design);
            return -1;
        }
        if (load_json_file("design file", rc->design_file, &buf, &len) < 0)
            return -1;
        r = qt_designfile_parse(buf, len, &rc->des, &dg);
        free(buf);
        if (r < 0) {
            qctl_err("design file '%s': %s", rc->design_file, dg.msg[0] ? dg.msg : qt_strerror(r));
            return -1;
        }
        if (rc->des->m != rows) {
            qctl_err("the custom design has %zu outcomes but '%s' has %zu rows", rc->des->m,
                     rc->file, rows);
            return -1;
        }
        d = rc->des->d;
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
        r = qt_design_infer(kind, rows, &kind, &d, &dg);
        if (r < 0) {
            qctl_err("'%s': %s", rc->file, dg.msg);
            return -1;
        }
    }
    if (rc->dim && rc->dim != d) {
        qctl_err("--dim %zu does not match '%s': %zu rows mean d = %zu for design '%s'", rc->dim,
                 rc->file, rows, d,
                 rc->des ? rc->des->name : qt_design_kind_name((enum qt_design_kind)kind));
        return -1;
    }
    if (!rc->des) {
        r = qt_design_new((enum qt_design_kind)kind, d, &rc->des, &dg);
        if (r < 0) {
            qctl_err("%s", dg.msg[0] ? dg.msg : qt_strerror(r));
            return -1;
        }
    }
    return 0;
}

static int load_input(struct recon *rc)
{
    struct qt_diag dg = {0};
    char *buf = NULL;
    size_t len = 0;
    int r;

    r = read_all(rc->file, INPUT_MAX, &buf, &len);
    if (r < 0) {
        qctl_err("cannot read '%s': %s", rc->file, qt_strerror(r));
        return -1;
    }
    r = qt_csv_parse(buf, len, NULL, &rc->tab, &dg);
    free(buf);
    if (r < 0) {
        if (dg.line)
            qctl_err("'%s' line %u, field %u: %s", rc->file, dg.line, dg.column, dg.msg);
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

static int load_target(struct recon *rc)
{
    struct qt_diag dg = {0};
    char *buf;
    size_t len, d = rc->des->d;
    int r;

    if (!rc->target_file)
        return 0;
    rc->target = malloc(d * d * sizeof(double complex));
    if (!rc->target || load_json_file("target file", rc->target_file, &buf, &len) < 0)
        return -1;
    r = qt_targetfile_parse(buf, len, d, rc->target, &dg);
    free(buf);
    if (r < 0) {
        qctl_err("target file '%s': %s", rc->target_file, dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    rc->opts.target = rc->target;
    return 0;
}

static void print_table_header(const struct recon *rc)
{
    printf("%-6s %-6s %-7s %-6s %-12s %-12s %-12s %-12s%s  %s\n", "sample", "column", "method",
           "status", "purity", "min_eig", "max_eig", "entropy", rc->target ? " fidelity    " : "",
           "note");
}

static void print_row(const struct recon *rc, const struct qt_record_meta *meta,
                      const struct qt_result *res)
{
    printf("%-6zu %-6zu %-7s ", meta->sample, meta->column, qt_method_name(res->method));
    if (res->err) {
        printf("%-6s %-12s %-12s %-12s %-12s%s  %s\n", "error", "-", "-", "-", "-",
               rc->target ? " -           " : "", res->errmsg);
        return;
    }
    printf("%-6s %-12.8f %-12.6g %-12.8f %-12.8f", "ok", res->mt.purity, res->mt.min_eigenvalue,
           res->mt.max_eigenvalue, res->mt.eigenvalue_entropy);
    if (rc->target)
        printf(" %-12.10f", res->mt.fidelity);
    printf(" ");
    for (unsigned i = 0; i < _QT_WARN_COUNT; i++)
        if (res->warnings & (1u << i))
            printf(" %s", qt_warning_name(i));
    printf("\n");
}

static void emit(const struct recon *rc, struct qt_jw *w, size_t sample, size_t column,
                 const struct qt_result *res)
{
    struct qt_record_meta meta = {sample, column, rc->des->name,
                                  rc->des->kind == QT_DESIGN_CUSTOM ? rc->des->id : NULL};

    if (rc->json) {
        qt_jw_reset(w);
        qt_record_json(w, &meta, res);
        if (w->err == 0) {
            fwrite(w->buf, 1, w->len, stdout);
            fputc('\n', stdout);
        }
    } else {
        print_row(rc, &meta, res);
    }
}

/* Runs the chunk of columns [c0, c0 + n) and prints its records; returns the failure count.
 * The linear estimates are computed for the whole chunk at once (also when only the iterative
 * methods were asked for: they start from them). */
static size_t run_chunk(struct recon *rc, struct qt_ws *ws, struct qt_jw *w, size_t c0, size_t n,
                        struct qt_result *lin, struct qt_result *it)
{
    const struct qt_table *t = &rc->tab;
    size_t failed = 0;

    if (qt_estimate_linear_batch(rc->des, ws, n, t->v + t->rows * c0, t->rows, &rc->opts, lin) < 0)
        for (size_t i = 0; i < n; i++)
            (void)qt_result_fail(&lin[i], -ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t col = c0 + i;
        bool empty = qt_table_col_empty(t, col);

        for (int m = 0; m < _QT_METHOD_MAX; m++) {
            struct qt_result *res = m == QT_METHOD_LINEAR ? &lin[i] : it;

            if (!rc->methods[m])
                continue;
            /* A failure is recorded in the result and printed like any other record. */
            if (m != QT_METHOD_LINEAR &&
                qt_estimate_from(rc->des, ws, (enum qt_method)m, t->v + t->rows * col, t->rows,
                                 &rc->opts, lin[i].err ? NULL : lin[i].rho, it) < 0)
                assert(it->err != 0);
            if (empty) {
                qt_result_reset(res, (enum qt_method)m);
                (void)qt_result_fail(res, QT_ENONFINITE, "column %zu is empty", col + 1);
            }
            failed += res->err != 0;
            emit(rc, w, col - rc->first, col + 1, res);
        }
    }
    fflush(stdout);
    return failed;
}

static int run(struct recon *rc)
{
    struct qt_ws ws = QT_WS_INIT;
    struct qt_jw w;
    struct qt_result lin[CHUNK], it;
    size_t ninit = 0, failed = 0, total = 0;
    int ret = QCTL_EXIT_OK;

    for (int m = 0; m < _QT_METHOD_MAX; m++)
        total += rc->methods[m] ? rc->last - rc->first + 1 : 0;
    qt_jw_init(&w);
    if (qt_result_init(&it, rc->des->d) < 0) {
        qctl_err("out of memory");
        qt_jw_done(&w);
        return QCTL_EXIT_FAILED;
    }
    for (; ninit < CHUNK; ninit++)
        if (qt_result_init(&lin[ninit], rc->des->d) < 0) {
            qctl_err("out of memory");
            ret = QCTL_EXIT_FAILED;
            goto out;
        }
    if (!rc->json)
        print_table_header(rc);
    for (size_t c0 = rc->first; c0 <= rc->last; c0 += CHUNK)
        failed += run_chunk(rc, &ws, &w, c0, QT_MIN((size_t)CHUNK, rc->last + 1 - c0), lin, &it);
    if (failed) {
        qctl_err("%zu of %zu records failed", failed, total);
        ret = QCTL_EXIT_FAILED;
    }
out:
    for (size_t i = 0; i < ninit; i++)
        qt_result_done(&lin[i]);
    qt_result_done(&it);
    qt_jw_done(&w);
    qt_ws_done(&ws);
    return ret;
}

int qctl_cmd_reconstruct(int argc, char **argv, struct qctl_global *g)
{
    struct recon rc = {0};
    int r, ret = QCTL_EXIT_USAGE;

    qt_opts_init(&rc.opts);
    rc.methods[QT_METHOD_LINEAR] = true;
    rc.json = g->json;
    r = parse_args(argc, argv, &rc);
    if (r != 0)
        return r > 0 ? QCTL_EXIT_OK : QCTL_EXIT_USAGE;
    if (!rc.local) {
        qctl_err("this version has no daemon yet; run with --local to reconstruct in-process");
        return QCTL_EXIT_NODAEMON;
    }
    qctl_blas_env(g);
    rc.opts.bell = rc.bell;
    if (load_input(&rc) < 0 || resolve_design(&rc) < 0 || load_target(&rc) < 0)
        goto out;
    qctl_info(g, "%s: %zu rows, %zu samples, design %s, d = %zu", rc.file, rc.tab.rows,
              rc.last - rc.first + 1, rc.des->name, rc.des->d);
    ret = run(&rc);
out:
    qt_table_done(&rc.tab);
    qt_design_free(rc.des);
    free(rc.target);
    return ret;
}
