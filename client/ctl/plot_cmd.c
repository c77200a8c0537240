/* The `qtomoctl plot DIR` command: its options, then qctl_plot_dir (in qtomoctl, the helper
 * qtomo-plot's; see plot_run.h). No cairo here. */
#include <getopt.h>
#include <stdio.h>

#include "plot_run.h"
#include "qctl.h"

void qctl_plot_usage(FILE *out)
{
    fprintf(out, "Usage: qtomoctl plot DIR [--plots all|first:N|COLUMNS]\n\n"
                 "Draw the figures of a finished (or interrupted) run from DIR/records.jsonl and\n"
                 "DIR/run.json: for each selected (sample, method), Re and Im of rho as 3-D bars\n"
                 "and as heatmaps; for the whole run, purity (and fidelity) over samples with\n"
                 "their error bars and the eigenvalue spectra. SVG, PDF and PNG in DIR/plots, and\n"
                 "DIR/report.html, a page to open in a browser.\n\n"
                 "      --plots SEL  per-sample figures for: all, first:N (the first N samples),\n"
                 "                   or input columns like 1,3,5-9 (default first:20); the\n"
                 "                   run-level figures are always drawn\n");
}

int qctl_cmd_plot(int argc, char **argv, struct qctl_global *g)
{
    enum { O_PLOTS = 256, O_HELP };
    static const struct option opts[] = {
        {"plots", required_argument, NULL, O_PLOTS},
        {"help", no_argument, NULL, O_HELP},
        {NULL, 0, NULL, 0},
    };
    const char *sel_text = NULL;
    struct plot_sel sel;
    int opt;

    while ((opt = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (opt) {
        case O_PLOTS:
            sel_text = optarg;
            break;
        case 'h':
        case O_HELP:
            qctl_plot_usage(stdout);
            return 0;
        default:
            qctl_plot_usage(stderr);
            return QCTL_EXIT_USAGE;
        }
    }
    if (optind + 1 != argc) {
        qctl_err("plot needs one run directory DIR");
        return QCTL_EXIT_USAGE;
    }
    if (plot_sel_parse(sel_text, &sel) < 0)
        return QCTL_EXIT_USAGE;
    return qctl_plot_dir(argv[optind], &sel, g);
}
