/* qtomo-plot DIR SEL [--quiet]: draws the figures of the run in DIR and DIR/report.html
 * (plot_run.c), per-sample figures for the --plots selection SEL. qtomoctl runs it for
 * `reconstruct -o DIR --plots` and `qtomoctl plot` (helpers.c), so that qtomoctl does not load
 * cairo; installed in libexec, not meant to be run by hand. Exits with qtomoctl's codes: 0, 1
 * after printing why, 2 when DIR is not a run directory or SEL is not a selection. */
#include <stdio.h>
#include <string.h>

#include "plot_run.h"
#include "qctl.h"

int main(int argc, char **argv)
{
    struct qctl_global g = {.verbosity = 0};
    struct plot_sel sel;

    qctl_progname = "qtomoctl"; /* its messages are qtomoctl's */
    /* No options before DIR: DIR may be any name. */
    if ((argc != 3 && argc != 4) || argv[1][0] == '\0' ||
        (argc == 4 && strcmp(argv[3], "--quiet") != 0)) {
        fprintf(stderr, "usage: qtomo-plot DIR SEL [--quiet]\n"
                        "draws DIR/plots and DIR/report.html; qtomoctl plot and qtomoctl "
                        "reconstruct -o DIR --plots run it\n");
        return QCTL_EXIT_USAGE;
    }
    if (argc == 4)
        g.verbosity = -1;
    if (plot_sel_parse(argv[2], &sel) < 0)
        return QCTL_EXIT_USAGE;
    return qctl_plot_dir(argv[1], &sel, &g);
}
