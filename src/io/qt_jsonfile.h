/* The bounded reading of a JSON input file that design, target and detector files share. */
#pragma once

#include <jansson.h>
#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_err.h"

/* Parses buf[0..len) (at most max bytes, duplicate keys refused) into *ret_root, which must be
 * a JSON object (the caller json_decref()s it). Returns 0, QT_ETOOBIG, QT_EPARSE (with the
 * line and column), or -ENOMEM; the reason in reterr. */
QT_NODISCARD int qt_jsonfile_load_object(const char *buf, size_t len, size_t max,
                                         json_t **ret_root, struct qt_diag *reterr);
