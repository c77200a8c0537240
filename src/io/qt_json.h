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

/* Texts of recently formatted numbers by bit pattern (direct-mapped, sign folded in): a record
 * writes many numbers twice (a Hermitian matrix's mirrored entries, eigenvalues and their
 * extremes, summary.csv's cells after the record's), and a hit is a copy instead of a
 * conversion. A hit is the text the conversion gives, so output never depends on the memo. */
#define QT_FMT_MEMO_SLOTS 128
struct qt_fmt_memo {
    struct {
        uint64_t bits; /* of |x|; 0 (zero is never stored): empty */
        uint8_t len;
        char text[23]; /* the longest positive repr: 17 digits, '.', "e-308" */
    } slot[QT_FMT_MEMO_SLOTS];
};

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
    struct qt_fmt_memo *memo; /* set by the caller, or NULL; qt_jw_init clears it */
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

/* Room qt_fmt_double writes in place in; with less it formats into its own buffer and copies
 * (the text is at most 24 bytes and its NUL). */
#define QT_FMT_ROOM 48

/* Formats x as Python's repr(float) does into out (size bytes, NUL-terminated, truncated when
 * too small); returns the length of the whole text. With size >= QT_FMT_ROOM the bytes after
 * the NUL may be overwritten too. NaN -> "nan", infinities -> "inf" / "-inf" (qt_jw_num writes
 * null for those). */
size_t qt_fmt_double(double x, char *out, size_t size);

/* qt_fmt_double into out (QT_FMT_ROOM bytes) through memo m (zero-initialised before first use;
 * NULL: none). */
size_t qt_fmt_double_memo(struct qt_fmt_memo *m, double x, char *out);
