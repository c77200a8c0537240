/* qtomoctl's --plots selection: parsed from the command line, and written back for the helper
 * qtomo-plot, which parses it again. No cairo here. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "plot_run.h"
#include "qctl.h"

int plot_sel_parse(const char *s, struct plot_sel *sel)
{
    char *end;

    memset(sel, 0, sizeof(*sel));
    if (!s)
        s = PLOT_SEL_DEFAULT;
    if (strcmp(s, "all") == 0) {
        sel->kind = PLOT_SEL_ALL;
        return 0;
    }
    if (strncmp(s, "first:", 6) == 0) {
        errno = 0;
        sel->kind = PLOT_SEL_FIRST;
        sel->first = (size_t)strtoull(s + 6, &end, 10);
        if (errno || end == s + 6 || *end || s[6] == '-') {
            qctl_err("--plots: 'first:N' needs a number N >= 0, got '%s'", s);
            return -EINVAL;
        }
        return 0;
    }
    sel->kind = PLOT_SEL_COLUMNS;
    for (const char *p = s; *p;) {
        long long lo, hi;

        if (sel->n_ranges == PLOT_MAX_RANGES) {
            qctl_err("--plots: at most %d column ranges", PLOT_MAX_RANGES);
            return -EINVAL;
        }
        errno = 0;
        lo = strtoll(p, &end, 10);
        hi = lo;
        if (end != p && *end == '-' && !errno) {
            p = end + 1;
            hi = strtoll(p, &end, 10);
        }
        if (errno || end == p || lo < 0 || hi < lo || (*end && *end != ',')) {
            qctl_err("--plots takes 'all', 'first:N' or input columns like '1,3,5-9', got '%s'", s);
            return -EINVAL;
        }
        sel->lo[sel->n_ranges] = lo;
        sel->hi[sel->n_ranges++] = hi;
        p = *end ? end + 1 : end;
    }
    if (!sel->n_ranges) {
        qctl_err("--plots: no columns given");
        return -EINVAL;
    }
    return 0;
}

int plot_sel_format(const struct plot_sel *sel, char *buf, size_t size)
{
    size_t at = 0;
    int n = 0;

    if (!size)
        return -ENOSPC;
    buf[0] = '\0';
    if (sel->kind == PLOT_SEL_ALL)
        n = snprintf(buf, size, "all");
    else if (sel->kind == PLOT_SEL_FIRST)
        n = snprintf(buf, size, "first:%zu", sel->first);
    for (size_t k = 0; sel->kind == PLOT_SEL_COLUMNS && k < sel->n_ranges && n >= 0; k++) {
        at += (size_t)n;
        if (at >= size)
            return -ENOSPC;
        n = snprintf(buf + at, size - at, "%s%" PRId64 "-%" PRId64, k ? "," : "", sel->lo[k],
                     sel->hi[k]);
    }
    if (n < 0)
        return -EINVAL;
    at += (size_t)n;
    return at < size ? 0 : -ENOSPC;
}
