/* The estimator options as one declarative table: name, type, place in struct qt_opts, bounds
 * and one line of help. qtomoctl builds its command-line options and help from it and the wire
 * protocol its "options" map, so both accept exactly the same options with the same bounds;
 * defaults are whatever qt_opts_init sets. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "base/compiler.h"
#include "num/qt_result.h"

enum qt_optdesc_type { QT_OPT_DOUBLE, QT_OPT_UINT, QT_OPT_FLAG };

struct qt_optdesc {
    const char *name;
    enum qt_optdesc_type type;
    size_t off;    /* of the field in struct qt_opts */
    double lo, hi; /* inclusive bounds, except lo when lo_open */
    bool lo_open;
    const char *help;
};

extern const struct qt_optdesc qt_optdescs[];
extern const size_t qt_optdesc_count;

/* Looks an option up by name; NULL when unknown. */
const struct qt_optdesc *qt_optdesc_find(const char *name, size_t len);

/* Sets option e to v after checking type and bounds (flags: v != 0). Returns 0 or QT_EOPTION. */
QT_NODISCARD int qt_optdesc_set(const struct qt_optdesc *e, double v, struct qt_opts *o);

/* The option's value in o (flags as 0 or 1). */
double qt_optdesc_get(const struct qt_optdesc *e, const struct qt_opts *o);
