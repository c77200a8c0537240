/* qtomoctl's estimator options: getopt entries, parsing and help from the shared table
 * (src/num/qt_optdesc.h). */
#include "estopts.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "num/qt_optdesc.h"
#include "qctl_util.h"

size_t qctl_estopt_count(void)
{
    return qt_optdesc_count;
}

void qctl_estopts_getopt(struct option *opts, size_t *n)
{
    for (size_t i = 0; i < qt_optdesc_count; i++)
        opts[(*n)++] = (struct option){qt_optdescs[i].name,
                                       qt_optdescs[i].type == QT_OPT_FLAG ? no_argument
                                                                          : required_argument,
                                       NULL, QCTL_ESTOPT_BASE + (int)i};
    opts[*n] = (struct option){NULL, 0, NULL, 0};
}

int qctl_estopts_parse(int code, const char *arg, struct qt_opts *o)
{
    const struct qt_optdesc *e;
    char *end;
    double v;

    if (code < QCTL_ESTOPT_BASE || code >= QCTL_ESTOPT_BASE + (int)qt_optdesc_count)
        return 0;
    e = &qt_optdescs[code - QCTL_ESTOPT_BASE];
    if (e->type == QT_OPT_FLAG)
        return qt_optdesc_set(e, 1.0, o) == 0 ? 1 : -1;
    errno = 0;
    v = strtod(arg, &end);
    if (errno || *end || end == arg || qt_optdesc_set(e, v, o) < 0) {
        qctl_err("--%s: '%s' is not %s in %s%g, %g]", e->name, arg,
                 e->type == QT_OPT_UINT ? "an integer" : "a number", e->lo_open ? "(" : "[", e->lo,
                 e->hi);
        return -1;
    }
    return 1;
}

void qctl_estopts_usage(FILE *out)
{
    struct qt_opts def;

    qt_opts_init(&def);
    for (size_t i = 0; i < qt_optdesc_count; i++) {
        const struct qt_optdesc *e = &qt_optdescs[i];
        char arg[32];

        (void)snprintf(arg, sizeof(arg), "--%s%s", e->name, e->type == QT_OPT_FLAG ? "" : " X");
        if (e->type == QT_OPT_FLAG)
            fprintf(out, "  %-26s %s\n", arg, e->help);
        else
            fprintf(out, "  %-26s %s (default %g)\n", arg, e->help, qt_optdesc_get(e, &def));
    }
}
