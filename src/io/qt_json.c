/* Streaming JSON writer and the Python-compatible float formatter behind it.
 * Output is built in one growable buffer; the first error freezes the writer. */
#include "qt_json.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qt_dtoa.h"

/* ---- float formatting ---- */

/* Lays out n digits with decimal exponent e as Python's repr does into out (QT_FMT_ROOM bytes).
 * digits is what qt_dtoa_shortest wrote: QT_DTOA_COPY bytes, zero after the digits, so the
 * digits go on with fixed-size copies (which compile to a few moves; the length is then set by
 * where the text ends, and the bytes copied past it are overwritten or lie beyond the NUL). At
 * most 17 digits: a fraction after an integer part (e >= 0) or after the first digit has at
 * most 16. */
static size_t layout(bool neg, const char *digits, int n, int e, char *out)
{
    size_t k = 0;

    _Static_assert(QT_DTOA_COPY >= 16 + 16 && QT_FMT_ROOM >= 7 + 24 && QT_FMT_ROOM >= 18 + 16,
                   "the fixed-size copies below stay inside digits and out");
    if (neg)
        out[k++] = '-';
    if (e >= -4 && e < 16) {
        if (e < 0) {
            memcpy(out + k, "0.000", 5); /* "0." and the -e - 1 <= 3 zeros */
            k += 2 + (size_t)(-e - 1);
            memcpy(out + k, digits, 24);
            k += (size_t)n;
        } else {
            for (int i = 0; i <= e; i++)
                out[k++] = i < n ? digits[i] : '0';
            out[k++] = '.';
            if (n > e + 1) {
                memcpy(out + k, digits + e + 1, 16);
                k += (size_t)(n - e - 1);
            } else {
                out[k++] = '0';
            }
        }
        out[k] = '\0';
        return k;
    }
    out[k++] = digits[0];
    if (n > 1) {
        out[k++] = '.';
        memcpy(out + k, digits + 1, 16);
        k += (size_t)n - 1;
    }
    out[k++] = 'e';
    out[k++] = e < 0 ? '-' : '+';
    if (e < 0)
        e = -e;
    if (e >= 100) /* at least two digits, as printf's %02d; at most three (|e| <= 324) */
        out[k++] = (char)('0' + e / 100);
    out[k++] = (char)('0' + e / 10 % 10);
    out[k++] = (char)('0' + e % 10);
    out[k] = '\0';
    return k;
}

static size_t copy_str(char *out, const char *s)
{
    size_t n = strlen(s);

    memcpy(out, s, n + 1);
    return n;
}

/* qt_fmt_double into out of at least QT_FMT_ROOM bytes. */
static size_t fmt_room(double x, char *out)
{
    char digits[QT_DTOA_DIGITS];

    if (isnan(x))
        return copy_str(out, "nan");
    if (isinf(x))
        return copy_str(out, x < 0 ? "-inf" : "inf");
    if (x == 0.0)
        return copy_str(out, signbit(x) ? "-0.0" : "0.0");
    int e = 0, n = qt_dtoa_shortest(fabs(x), digits, &e);

    return layout(signbit(x) != 0, digits, n, e, out);
}

size_t qt_fmt_double(double x, char *out, size_t size)
{
    char tmp[QT_FMT_ROOM];
    size_t len, c;

    if (out && size >= QT_FMT_ROOM)
        return fmt_room(x, out);
    len = fmt_room(x, tmp);
    if (out && size > 0) {
        c = len < size ? len : size - 1;
        memcpy(out, tmp, c);
        out[c] = '\0';
    }
    return len;
}

size_t qt_fmt_double_memo(struct qt_fmt_memo *m, double x, char *out)
{
    uint64_t bits;
    size_t k, len;

    memcpy(&bits, &x, sizeof(bits));
    k = bits >> 63;
    bits &= ~((uint64_t)1 << 63);
    if (!m || bits == 0 || bits >= 0x7ff0000000000000u) /* zero, infinities and NaN: no digits */
        return fmt_room(x, out);

    __typeof__(m->slot[0]) *s = &m->slot[(bits * 0x9e3779b97f4a7c15u) >> 57];

    _Static_assert(QT_FMT_MEMO_SLOTS == 128, "the index above takes 7 bits");
    _Static_assert(QT_FMT_ROOM >= 1 + sizeof(s->text), "a hit copies the whole text");
    out[0] = '-'; /* kept only when x < 0 (k = 1) */
    if (s->bits == bits) {
        memcpy(out + k, s->text, sizeof(s->text));
        len = k + s->len;
        out[len] = '\0';
        return len;
    }
    len = fmt_room(fabs(x), out + k);
    if (len <= sizeof(s->text)) {
        s->bits = bits;
        s->len = (uint8_t)len;
        memcpy(s->text, out + k, sizeof(s->text));
    }
    return k + len;
}

/* ---- buffer ---- */

static void fail(struct qt_jw *w, int err)
{
    if (!w->err)
        w->err = err;
}

/* Makes room for n more bytes plus the terminating NUL. */
static bool reserve(struct qt_jw *w, size_t n)
{
    size_t need, cap;
    char *p;

    if (w->err)
        return false;
    if (n > SIZE_MAX - w->len - 1) {
        fail(w, -ENOMEM);
        return false;
    }
    need = w->len + n + 1;
    if (need <= w->cap)
        return true;
    cap = w->cap ? w->cap : 256;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    p = realloc(w->buf, cap);
    if (!p) {
        fail(w, -ENOMEM);
        return false;
    }
    w->buf = p;
    w->cap = cap;
    return true;
}

static void put(struct qt_jw *w, const char *s, size_t n)
{
    if (!reserve(w, n))
        return;
    memcpy(w->buf + w->len, s, n);
    w->len += n;
    w->buf[w->len] = '\0';
}

static void putc_(struct qt_jw *w, char c)
{
    put(w, &c, 1);
}

/* ---- strings ---- */

/* Length of the well-formed UTF-8 sequence at s (n bytes left, s[0] >= 0x80), or 0 when it is
 * ill-formed; *ret_bad is then the length of its maximal subpart (Unicode 15, §3.9, U+FFFD
 * substitution of maximal subparts). */
static size_t utf8_seq(const unsigned char *s, size_t n, size_t *ret_bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xBF;
    size_t need, i;

    if (c >= 0xC2 && c <= 0xDF)
        need = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        need = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        need = 4;
    else
        need = 1; /* stray continuation byte, C0, C1 or F5..FF */
    if (c == 0xE0)
        lo = 0xA0; /* no overlong forms */
    else if (c == 0xED)
        hi = 0x9F; /* no surrogates */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing above U+10FFFF */
    for (i = 1; i < need && i < n; i++) {
        unsigned char b = s[i];

        if (b < (i == 1 ? lo : 0x80) || b > (i == 1 ? hi : 0xBF))
            break;
    }
    if (need > 1 && i == need)
        return need;
    *ret_bad = i;
    return 0;
}

/* The escape for the ASCII byte c into esc (>= 8 bytes), or 0 when c goes out as it is. */
static size_t escape_ascii(unsigned char c, char *esc)
{
    static const char hex[] = "0123456789abcdef";
    static const char short_esc[] = "btn\0fr"; /* \b \t \n (\v has none) \f \r */

    esc[0] = '\\';
    if (c == '"' || c == '\\') {
        esc[1] = (char)c;
        return 2;
    }
    if (c >= 0x20)
        return 0;
    if (c >= '\b' && c <= '\r' && short_esc[c - '\b']) {
        esc[1] = short_esc[c - '\b'];
        return 2;
    }
    memcpy(esc + 1, "u00", 3);
    esc[4] = hex[c >> 4];
    esc[5] = hex[c & 15];
    return 6;
}

/* Whether s[0, n) goes into a JSON string as it is: printable ASCII without '"' or '\\'. */
static bool plain(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    bool ok = true;

    for (size_t i = 0; i < n; i++)
        ok &= s[i] >= 0x20 && s[i] < 0x80 && s[i] != '"' && s[i] != '\\';
    return ok;
}

/* Writes pre (0 or 1 bytes), then s[0, n) quoted, then post (0 or 1 bytes); s is plain. */
static void put_plain(struct qt_jw *w, char pre, const char *s, size_t n, char post)
{
    char *p;

    if (!reserve(w, n + 4))
        return;
    p = w->buf + w->len;
    if (pre)
        *p++ = pre;
    *p++ = '"';
    memcpy(p, s, n);
    p += n;
    *p++ = '"';
    if (post)
        *p++ = post;
    *p = '\0';
    w->len = (size_t)(p - w->buf);
}

/* Writes str as a JSON string. Runs of bytes that need no escaping are copied in one piece. */
static void put_escaped(struct qt_jw *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str), i = 0, run = 0;

    if (plain(str, n)) { /* keys, method names, numbers' labels: the common case */
        put_plain(w, 0, str, n, 0);
        return;
    }
    putc_(w, '"');
    while (i < n && !w->err) {
        char esc[8];
        size_t adv = 1, rlen, bad = 0;
        const char *rep = esc;

        if (s[i] >= 0x80) {
            size_t ok = utf8_seq(s + i, n - i, &bad);

            rlen = ok ? 0 : 3;
            adv = ok ? ok : bad;
            rep = "\xEF\xBF\xBD"; /* U+FFFD for each maximal ill-formed subpart */
        } else {
            rlen = escape_ascii(s[i], esc);
        }
        if (rlen == 0) {
            i += adv;
            run += adv;
            continue;
        }
        put(w, str + i - run, run);
        put(w, rep, rlen);
        run = 0;
        i += adv;
    }
    put(w, str + i - run, run);
    putc_(w, '"');
}

/* ---- structure ---- */

static bool level_bit(uint64_t set, unsigned depth)
{
    return depth > 0 && (set >> (depth - 1)) & 1u;
}

/* Checks that a value may start here and writes the comma before it. */
static bool begin_value(struct qt_jw *w)
{
    if (w->err)
        return false;
    if (w->depth == 0) {
        if (w->len > 0) {
            fail(w, -EINVAL); /* one top-level value per document; qt_jw_reset starts anew */
            return false;
        }
        return true;
    }
    if (level_bit(w->in_obj, w->depth)) {
        if (!w->after_key) {
            fail(w, -EINVAL); /* object member without a key */
            return false;
        }
        w->after_key = false;
        return true;
    }
    if (level_bit(w->has_item, w->depth))
        putc_(w, ',');
    w->has_item |= (uint64_t)1 << (w->depth - 1);
    return !w->err;
}

static void open_level(struct qt_jw *w, bool obj)
{
    uint64_t bit;

    if (w->err)
        return;
    if (w->depth >= QT_JW_MAX_DEPTH) {
        fail(w, -EINVAL);
        return;
    }
    if (!begin_value(w))
        return;
    putc_(w, obj ? '{' : '[');
    w->depth++;
    bit = (uint64_t)1 << (w->depth - 1);
    w->has_item &= ~bit;
    if (obj)
        w->in_obj |= bit;
    else
        w->in_obj &= ~bit;
}

static void close_level(struct qt_jw *w, bool obj)
{
    if (w->err)
        return;
    if (w->depth == 0 || level_bit(w->in_obj, w->depth) != obj || w->after_key) {
        fail(w, -EINVAL);
        return;
    }
    putc_(w, obj ? '}' : ']');
    w->depth--;
}

void qt_jw_init(struct qt_jw *w)
{
    memset(w, 0, sizeof(*w));
}

void qt_jw_done(struct qt_jw *w)
{
    if (!w)
        return;
    free(w->buf);
    memset(w, 0, sizeof(*w));
}

void qt_jw_reset(struct qt_jw *w)
{
    w->len = 0;
    w->err = 0;
    w->depth = 0;
    w->has_item = 0;
    w->in_obj = 0;
    w->after_key = false;
    if (w->buf)
        w->buf[0] = '\0';
}

void qt_jw_obj_begin(struct qt_jw *w)
{
    open_level(w, true);
}

void qt_jw_obj_end(struct qt_jw *w)
{
    close_level(w, true);
}

void qt_jw_arr_begin(struct qt_jw *w)
{
    open_level(w, false);
}

void qt_jw_arr_end(struct qt_jw *w)
{
    close_level(w, false);
}

void qt_jw_key(struct qt_jw *w, const char *key)
{
    if (w->err)
        return;
    if (!key || !level_bit(w->in_obj, w->depth) || w->after_key) {
        fail(w, -EINVAL);
        return;
    }
    char comma = level_bit(w->has_item, w->depth) ? ',' : 0;
    size_t n = strlen(key);

    w->has_item |= (uint64_t)1 << (w->depth - 1);
    if (plain(key, n)) {
        put_plain(w, comma, key, n, ':');
    } else {
        if (comma)
            putc_(w, comma);
        put_escaped(w, key);
        putc_(w, ':');
    }
    w->after_key = !w->err;
}

void qt_jw_str(struct qt_jw *w, const char *s)
{
    if (!s) {
        qt_jw_null(w);
        return;
    }
    if (begin_value(w))
        put_escaped(w, s);
}

void qt_jw_num(struct qt_jw *w, double x)
{
    if (!isfinite(x)) {
        qt_jw_null(w);
        return;
    }
    /* Formatted in place: room for QT_FMT_ROOM bytes, of which the text and its NUL stay. */
    if (begin_value(w) && reserve(w, QT_FMT_ROOM))
        w->len += qt_fmt_double_memo(w->memo, x, w->buf + w->len);
}

void qt_jw_int(struct qt_jw *w, int64_t v)
{
    char tmp[24], *p = tmp + sizeof(tmp);
    uint64_t u = v < 0 ? 0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        *--p = '-';
    size_t n = (size_t)(tmp + sizeof(tmp) - p);

    if (begin_value(w))
        put(w, p, n);
}

void qt_jw_bool(struct qt_jw *w, bool b)
{
    if (begin_value(w))
        put(w, b ? "true" : "false", b ? 4 : 5);
}

void qt_jw_null(struct qt_jw *w)
{
    if (begin_value(w))
        put(w, "null", 4);
}
