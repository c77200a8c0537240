/* Frames, the pre-scan, the envelope, and the method table. */
#include <errno.h>
#include <string.h>

#include "base/qt_status.h"
#include "qp.h"

#define QP_METHOD_DESC_(E, n, d, a, s) [QP_M_##E] = {n, d, a, s},
const struct qp_method_desc qp_methods[_QP_M_MAX] = {QP_METHODS(QP_METHOD_DESC_)};
#undef QP_METHOD_DESC_

int qp_method_find(const char *name, size_t len)
{
    for (int i = 0; i < _QP_M_MAX; i++)
        if (strlen(qp_methods[i].name) == len && memcmp(qp_methods[i].name, name, len) == 0)
            return i;
    return -1;
}

int qp_frame_header(const uint8_t hdr[QP_HEADER_LEN], uint32_t max_frame, uint32_t *ret_len)
{
    uint32_t len = (uint32_t)hdr[0] << 24 | (uint32_t)hdr[1] << 16 | (uint32_t)hdr[2] << 8 | hdr[3];

    if (len == 0)
        return QT_EPARSE;
    if (len > max_frame)
        return QT_ETOOBIG;
    *ret_len = len;
    return 0;
}

/* ---- pre-scan ---- */

struct scan {
    const uint8_t *p, *end;
    struct qt_diag *err;
};

static int need(struct scan *s, size_t n, const char *what)
{
    if ((size_t)(s->end - s->p) < n)
        return qt_diag_set(s->err, QT_EPARSE, 0, 0, "a %s runs past the end of the frame", what);
    return 0;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;

    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Skips one value. A container's declared count is checked against the bytes left before any
 * element is read (each takes at least one byte), so no count can exceed what is really there. */
static int scan_value(struct scan *s, unsigned depth)
{
    uint8_t b;
    uint64_t n = 0, skip = 0;
    int kind = 0; /* 0 scalar, 1 array, 2 map */

    if (depth > QP_MAX_DEPTH)
        return qt_diag_set(s->err, QT_EPARSE, 0, 0, "nesting deeper than %u", QP_MAX_DEPTH);
    if (need(s, 1, "value") < 0)
        return QT_EPARSE;
    b = *s->p++;
    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, bool */
    } else if (b >= 0x80 && b <= 0x8f) {
        kind = 2, n = b & 0x0f;
    } else if (b >= 0x90 && b <= 0x9f) {
        kind = 1, n = b & 0x0f;
    } else if (b >= 0xa0 && b <= 0xbf) {
        skip = b & 0x1f;
    } else {
        switch (b) {
        case 0xc4:
        case 0xd9: /* bin8, str8 */
            if (need(s, 1, "length") < 0)
                return QT_EPARSE;
            skip = s->p[0], s->p += 1;
            break;
        case 0xc5:
        case 0xda:
            if (need(s, 2, "length") < 0)
                return QT_EPARSE;
            skip = be(s->p, 2), s->p += 2;
            break;
        case 0xc6:
        case 0xdb:
            if (need(s, 4, "length") < 0)
                return QT_EPARSE;
            skip = be(s->p, 4), s->p += 4;
            break;
        case 0xc7: /* ext8 */
            if (need(s, 2, "ext") < 0)
                return QT_EPARSE;
            skip = (uint64_t)s->p[0] + 1, s->p += 1;
            break;
        case 0xc8:
            if (need(s, 3, "ext") < 0)
                return QT_EPARSE;
            skip = be(s->p, 2) + 1, s->p += 2;
            break;
        case 0xc9:
            if (need(s, 5, "ext") < 0)
                return QT_EPARSE;
            skip = be(s->p, 4) + 1, s->p += 4;
            break;
        case 0xca:
            skip = 4;
            break;
        case 0xcb:
            skip = 8;
            break;
        case 0xcc:
        case 0xd0:
            skip = 1;
            break;
        case 0xcd:
        case 0xd1:
            skip = 2;
            break;
        case 0xce:
        case 0xd2:
            skip = 4;
            break;
        case 0xcf:
        case 0xd3:
            skip = 8;
            break;
        case 0xd4:
            skip = 2;
            break; /* fixext 1: type + 1 */
        case 0xd5:
            skip = 3;
            break;
        case 0xd6:
            skip = 5;
            break;
        case 0xd7:
            skip = 9;
            break;
        case 0xd8:
            skip = 17;
            break;
        case 0xdc:
        case 0xde:
            if (need(s, 2, "count") < 0)
                return QT_EPARSE;
            n = be(s->p, 2), s->p += 2, kind = b == 0xdc ? 1 : 2;
            break;
        case 0xdd:
        case 0xdf:
            if (need(s, 4, "count") < 0)
                return QT_EPARSE;
            n = be(s->p, 4), s->p += 4, kind = b == 0xdd ? 1 : 2;
            break;
        default: /* 0xc1: never used */
            return qt_diag_set(s->err, QT_EPARSE, 0, 0, "invalid msgpack byte 0x%02x", b);
        }
    }
    if (kind == 0) {
        if ((uint64_t)(s->end - s->p) < skip)
            return qt_diag_set(s->err, QT_EPARSE, 0, 0,
                               "a length of %llu bytes runs past the frame",
                               (unsigned long long)skip);
        s->p += skip;
        return 0;
    }
    if (kind == 2) {
        if (n > UINT64_MAX / 2)
            return QT_EPARSE;
        n *= 2;
    }
    /* Every element takes at least one byte. */
    if (n > (uint64_t)(s->end - s->p))
        return qt_diag_set(s->err, QT_EPARSE, 0, 0,
                           "a container declares %llu elements with %zu bytes left",
                           (unsigned long long)n, (size_t)(s->end - s->p));
    for (uint64_t i = 0; i < n; i++)
        if (scan_value(s, depth + 1) < 0)
            return QT_EPARSE;
    return 0;
}

int qp_prescan(const uint8_t *buf, size_t len, struct qt_diag *reterr)
{
    struct scan s = {buf, buf + len, reterr};

    if (scan_value(&s, 1) < 0)
        return QT_EPARSE;
    if (s.p != s.end)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "%zu bytes trail the message",
                           (size_t)(s.end - s.p));
    return 0;
}

/* ---- envelope ---- */

static bool is_uint(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_POSITIVE_INTEGER;
}

int qp_msg_decode(const uint8_t *body, size_t len, struct qp_msg *msg, struct qt_diag *reterr)
{
    const msgpack_object *a;
    size_t off = 0, n;

    memset(msg, 0, sizeof(*msg));
    msg->method = -1;
    msgpack_unpacked_init(&msg->up);
    if (qp_prescan(body, len, reterr) < 0)
        return QT_EPARSE;
    if (msgpack_unpack_next(&msg->up, (const char *)body, len, &off) != MSGPACK_UNPACK_SUCCESS ||
        off != len)
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "not one msgpack value");
    a = &msg->up.data;
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size < 3 || !is_uint(&a->via.array.ptr[0]))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "not a msgpack-rpc message array");
    n = a->via.array.size;
    switch (a->via.array.ptr[0].via.u64) {
    case QP_REQUEST:
    case QP_RESPONSE:
        if (n != 4)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "a %s has 4 elements",
                               a->via.array.ptr[0].via.u64 == 0 ? "request" : "response");
        if (!is_uint(&a->via.array.ptr[1]) || a->via.array.ptr[1].via.u64 > UINT32_MAX)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "the id is not a u32");
        msg->type = (enum qp_type)a->via.array.ptr[0].via.u64;
        msg->id = (uint32_t)a->via.array.ptr[1].via.u64;
        msg->id_valid = true;
        if (msg->type == QP_RESPONSE) {
            msg->error = &a->via.array.ptr[2];
            msg->result = &a->via.array.ptr[3];
            if (msg->error->type != MSGPACK_OBJECT_NIL && msg->error->type != MSGPACK_OBJECT_MAP)
                return qt_diag_set(reterr, QT_EPARSE, 0, 0, "the error is neither nil nor a map");
            return 0;
        }
        a = &a->via.array.ptr[2]; /* method, then params at [3] */
        break;
    case QP_NOTIFICATION:
        if (n != 3)
            return qt_diag_set(reterr, QT_EPARSE, 0, 0, "a notification has 3 elements");
        msg->type = QP_NOTIFICATION;
        a = &a->via.array.ptr[1];
        break;
    default:
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "unknown message type");
    }
    if (a->type != MSGPACK_OBJECT_STR || a->via.str.size >= sizeof(msg->method_name))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "the method is not a short string");
    /* "status\0x" was answered as the unknown method 'status' */
    if (a->via.str.size && memchr(a->via.str.ptr, '\0', a->via.str.size))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "the method name holds a NUL byte");
    if (a->via.str.size) /* msgpack-c gives empty strings a NULL pointer */
        memcpy(msg->method_name, a->via.str.ptr, a->via.str.size);
    msg->method_name[a->via.str.size] = '\0';
    msg->method = qp_method_find(a->via.str.ptr, a->via.str.size);
    a++; /* params */
    if (a->type != MSGPACK_OBJECT_ARRAY || a->via.array.size > 1 ||
        (a->via.array.size == 1 && a->via.array.ptr[0].type != MSGPACK_OBJECT_MAP))
        return qt_diag_set(reterr, QT_EPARSE, 0, 0, "params must be [] or [map]");
    msg->params = a->via.array.size ? &a->via.array.ptr[0] : NULL;
    return 0;
}

void qp_msg_done(struct qp_msg *msg)
{
    msgpack_unpacked_destroy(&msg->up);
}

/* ---- writer ---- */

void qp_writer_init(struct qp_writer *w)
{
    msgpack_sbuffer_init(&w->sb);
    msgpack_packer_init(&w->pk, &w->sb, msgpack_sbuffer_write);
    w->start = 0;
}

void qp_writer_done(struct qp_writer *w)
{
    msgpack_sbuffer_destroy(&w->sb);
}

void qp_writer_reset(struct qp_writer *w)
{
    w->sb.size = 0;
    w->start = 0;
}

void qp_frame_begin(struct qp_writer *w)
{
    static const char zero[QP_HEADER_LEN] = {0};

    w->start = w->sb.size;
    (void)msgpack_sbuffer_write(&w->sb, zero, sizeof(zero));
}

int qp_frame_end(struct qp_writer *w, uint32_t max_frame)
{
    size_t len = w->sb.size - w->start - QP_HEADER_LEN;
    uint8_t *h = (uint8_t *)w->sb.data + w->start;

    if (!w->sb.data || len == 0 || len > max_frame) {
        w->sb.size = w->start;
        return QT_ETOOBIG;
    }
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
    return 0;
}

void qp_pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);

    (void)msgpack_pack_str(pk, n);
    (void)msgpack_pack_str_body(pk, s, n);
}

void qp_pack_key(msgpack_packer *pk, const char *key)
{
    qp_pack_str(pk, key);
}

void qp_begin_request(struct qp_writer *w, uint32_t id, enum qp_method m)
{
    qp_frame_begin(w);
    (void)msgpack_pack_array(&w->pk, 4);
    (void)msgpack_pack_uint8(&w->pk, QP_REQUEST);
    (void)msgpack_pack_uint32(&w->pk, id);
    qp_pack_str(&w->pk, qp_methods[m].name);
    (void)msgpack_pack_array(&w->pk, 1);
}

void qp_begin_notification(struct qp_writer *w, enum qp_method m)
{
    qp_frame_begin(w);
    (void)msgpack_pack_array(&w->pk, 3);
    (void)msgpack_pack_uint8(&w->pk, QP_NOTIFICATION);
    qp_pack_str(&w->pk, qp_methods[m].name);
    (void)msgpack_pack_array(&w->pk, 1);
}

void qp_begin_response(struct qp_writer *w, uint32_t id)
{
    qp_frame_begin(w);
    (void)msgpack_pack_array(&w->pk, 4);
    (void)msgpack_pack_uint8(&w->pk, QP_RESPONSE);
    (void)msgpack_pack_uint32(&w->pk, id);
    (void)msgpack_pack_nil(&w->pk);
}

int qp_write_error(struct qp_writer *w, uint32_t id, int code, const char *message,
                   int64_t retry_after_ms, uint32_t max_frame)
{
    msgpack_packer *pk = &w->pk;

    qp_frame_begin(w);
    (void)msgpack_pack_array(pk, 4);
    (void)msgpack_pack_uint8(pk, QP_RESPONSE);
    (void)msgpack_pack_uint32(pk, id);
    (void)msgpack_pack_map(pk, retry_after_ms >= 0 ? 3 : 2);
    qp_pack_key(pk, "code");
    (void)msgpack_pack_int32(pk, code);
    qp_pack_key(pk, "message");
    qp_pack_str(pk, message);
    if (retry_after_ms >= 0) {
        qp_pack_key(pk, "data");
        (void)msgpack_pack_map(pk, 1);
        qp_pack_key(pk, "retry_after_ms");
        (void)msgpack_pack_int64(pk, retry_after_ms);
    }
    (void)msgpack_pack_nil(pk);
    return qp_frame_end(w, max_frame);
}

int qp_write_protocol_error(struct qp_writer *w, int code, const char *message, uint32_t max_frame)
{
    qp_begin_notification(w, QP_M_PROTOCOL_ERROR);
    (void)msgpack_pack_map(&w->pk, 2);
    qp_pack_key(&w->pk, "code");
    (void)msgpack_pack_int32(&w->pk, code);
    qp_pack_key(&w->pk, "message");
    qp_pack_str(&w->pk, message);
    return qp_frame_end(w, max_frame);
}

int qp_write_bye(struct qp_writer *w, const char *reason, int64_t retry_after_ms,
                 uint32_t max_frame)
{
    qp_begin_notification(w, QP_M_BYE);
    (void)msgpack_pack_map(&w->pk, 2);
    qp_pack_key(&w->pk, "reason");
    qp_pack_str(&w->pk, reason);
    qp_pack_key(&w->pk, "retry_after_ms");
    (void)msgpack_pack_int64(&w->pk, retry_after_ms);
    return qp_frame_end(w, max_frame);
}
