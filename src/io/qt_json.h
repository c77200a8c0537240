/* Minimal streaming JSON writer into a growable buffer (no parsing: input JSON goes through
 * jansson in qt_designfile). Commas are inserted automatically; the caller only pairs
 * begin/end calls. Numbers are written exactly as Python's repr() writes floats (shortest
 * round-trip digits, "1.0", "1e-05", "1e+16"), so our JSON output matches the origin's
 * Python json output digit for digit; NaN and infinities, which JSON cannot hold, become null. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"

#define QT_JW_MAX_DEPTH 64

struct qt_jw {
    char *buf;  /* read-only: NUL-terminated output, valid until the next call */
    size_t len; /* read-only: bytes in buf, excluding the NUL */
    int err;    /* read-only: 0, or -ENOMEM / -EINVAL (misuse) after the first failure */
    /* private */
    size_t cap;
    unsigned depth;
    uint64_t has_item; /* bit k: level k already holds an element (needs a comma) */
    uint64_t in_obj;   /* bit k: level k is an object */
    bool after_key;
};

void qt_jw_init(struct qt_jw *w);
void qt_jw_done(struct qt_jw *w);  /* frees the buffer; NULL-safe */
void qt_jw_reset(struct qt_jw *w); /* empties the output, keeps the buffer */

void qt_jw_obj_begin(struct qt_jw *w);
void qt_jw_obj_end(struct qt_jw *w);
void qt_jw_arr_begin(struct qt_jw *w);
void qt_jw_arr_end(struct qt_jw *w);
void qt_jw_key(struct qt_jw *w, const char *key); /* inside an object, before each value */
void qt_jw_str(struct qt_jw *w, const char *s);   /* escaped; invalid UTF-8 becomes U+FFFD */
void qt_jw_num(struct qt_jw *w, double x);
void qt_jw_int(struct qt_jw *w, int64_t v);
void qt_jw_bool(struct qt_jw *w, bool b);
void qt_jw_null(struct qt_jw *w);

/* Formats x as Python's repr(float) does into out (at least 32 bytes); returns the length.
 * NaN -> "nan", infinities -> "inf" / "-inf" (qt_jw_num writes null for those). */
size_t qt_fmt_double(double x, char *out, size_t size);
