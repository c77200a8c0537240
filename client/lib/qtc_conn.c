/* libqtomo-client: connection, request/response plumbing, and the reads that feed the framer
 * (proto/qp_framer.h). Blocking I/O with poll() deadlines on one socket; no signals
 * (MSG_NOSIGNAL), no logging, no global state. */
#define _GNU_SOURCE /* strerrordesc_np */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "qtc_internal.h"

int64_t qtc_now_ms(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int qtc_fail(struct qtomo_error *err, int code, const char *fmt, ...)
{
    if (err) {
        va_list ap;

        err->code = code;
        err->retry_after_ms = -1;
        va_start(ap, fmt);
        (void)vsnprintf(err->message, sizeof(err->message), fmt, ap);
        va_end(ap);
    }
    return code;
}

/* A transport or protocol failure: the connection cannot be used any more. */
static int conn_dead(qtomo_conn *c, struct qtomo_error *err, int code, const char *what)
{
    c->dead = true;
    if (c->bye_reason[0] && (code == -ECONNRESET || code == -EPIPE))
        return qtc_fail(err, code, "%s: the server closed the connection (%s)", what,
                        c->bye_reason);
    return qtc_fail(err, code, "%s: %s", what, qtomo_strerror(code));
}

int qtomo_default_socket(char *buf, size_t len)
{
    const char *env = getenv("QTOMO_SOCKET"), *xdg = getenv("XDG_RUNTIME_DIR");
    int n;

    if (env && *env) {
        n = snprintf(buf, len, "%s", env);
    } else {
        struct stat st;

        n = -1;
        if (xdg && *xdg) {
            n = snprintf(buf, len, "%s/qtomo/qtomod.sock", xdg);
            if (n >= 0 && (size_t)n < len && stat(buf, &st) != 0)
                n = -1; /* no user daemon: the system one */
        }
        if (n < 0)
            n = snprintf(buf, len, "/run/qtomo/qtomod.sock");
    }
    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* Waits until fd is ready for events or the deadline (absolute ms, 0 = none) passes. cancel is
 * polled every 100 ms. Returns 0, -ETIMEDOUT, -ECANCELED or -errno. */
static int wait_fd(qtomo_conn *c, short events, int64_t deadline, const volatile int *cancel)
{
    for (;;) {
        struct pollfd p = {.fd = c->fd, .events = events};
        int t = -1, r;

        if (cancel && *cancel && !c->cancelling)
            return -ECANCELED;
        if (deadline) {
            int64_t left = deadline - qtc_now_ms();

            if (left <= 0)
                return -ETIMEDOUT;
            t = left > 100 ? 100 : (int)left;
        }
        if (cancel && (t < 0 || t > 100))
            t = 100;
        r = poll(&p, 1, t);
        if (r < 0 && errno != EINTR)
            return -errno;
        if (r > 0)
            return 0;
    }
}

static int64_t deadline_of(const qtomo_conn *c)
{
    return c->timeout_ms > 0 ? qtc_now_ms() + c->timeout_ms : 0;
}

int qtc_send(qtomo_conn *c, const struct qp_writer *w, struct qtomo_error *err)
{
    const char *p = w->sb.data;
    size_t left = w->sb.size;
    int64_t deadline = deadline_of(c);

    if (c->dead)
        return qtc_fail(err, -ENOTCONN, "the connection was lost earlier; connect again");
    while (left) {
        ssize_t n = send(c->fd, p, left, MSG_NOSIGNAL | MSG_DONTWAIT);

        if (n < 0) {
            int r;

            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                return conn_dead(c, err, -errno, "send");
            r = wait_fd(c, POLLOUT, deadline, NULL);
            if (r < 0)
                return conn_dead(c, err, r, "send");
            continue;
        }
        p += n;
        left -= (size_t)n;
    }
    return 0;
}

void qtc_msg_release(qtomo_conn *c)
{
    if (!c->have_msg)
        return;
    qp_msg_done(&c->msg);
    c->have_msg = false;
    qp_framer_consume(&c->fr);
}

/* The handler of notifications every wait understands: bye and protocol_error. */
static int common_notification(qtomo_conn *c, struct qtomo_error *err)
{
    const msgpack_object *p = c->msg.params;

    if (c->msg.method == QP_M_BYE) {
        if (qp_read_str(qp_get(p, "reason"), "reason", c->bye_reason, sizeof(c->bye_reason),
                        NULL) < 0)
            (void)snprintf(c->bye_reason, sizeof(c->bye_reason), "bye");
        return 0;
    }
    if (c->msg.method == QP_M_PROTOCOL_ERROR) {
        char m[200] = "";

        if (qp_read_str(qp_get(p, "message"), "message", m, sizeof(m), NULL) < 0)
            m[0] = '\0';
        c->dead = true;
        return qtc_fail(err, QTOMO_EPROTO, "the server refused our message: %s", m);
    }
    return 0;
}

int qtc_recv(qtomo_conn *c, int64_t deadline, const volatile int *cancel, struct qtomo_error *err)
{
    struct qt_diag dg = {0};
    const uint8_t *body;
    uint32_t blen;
    int r;

    qtc_msg_release(c);
    if (c->dead)
        return qtc_fail(err, -ENOTCONN, "the connection was lost earlier; connect again");
    for (;;) {
        uint8_t *p;
        size_t room;
        ssize_t n;

        r = qp_framer_next(&c->fr, c->max_frame, &body, &blen);
        if (r == 1)
            break;
        if (r < 0) {
            c->dead = true;
            return qtc_fail(err, QTOMO_EPROTO, "the server sent a frame of %s bytes",
                            r == QT_ETOOBIG ? "too many" : "zero");
        }
        r = qp_framer_space(&c->fr, 0, &p, &room);
        if (r < 0)
            return conn_dead(c, err, r, "receive");
        n = recv(c->fd, p, room, MSG_DONTWAIT);
        if (n > 0) {
            qp_framer_commit(&c->fr, (size_t)n);
            continue;
        }
        if (n == 0)
            return conn_dead(c, err, -ECONNRESET, "receive");
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            return conn_dead(c, err, -errno, "receive");
        r = wait_fd(c, POLLIN, deadline, cancel);
        if (r == -ECANCELED)
            return r;
        if (r < 0)
            return r == -ETIMEDOUT ? qtc_fail(err, r, "no answer from the server within %d ms",
                                              c->timeout_ms)
                                   : conn_dead(c, err, r, "receive");
    }
    r = qp_msg_decode(body, blen, &c->msg, &dg);
    c->have_msg = true;
    if (r < 0) {
        c->dead = true;
        return qtc_fail(err, QTOMO_EPROTO, "unreadable message from the server: %s", dg.msg);
    }
    if (c->msg.type == QP_NOTIFICATION)
        return common_notification(c, err);
    return 0;
}

int qtc_server_error(qtomo_conn *c, struct qtomo_error *err, struct qp_totals *totals)
{
    struct qp_error e;
    struct qt_diag dg = {0};

    if (qp_decode_error(c->msg.error, &e, &dg) < 0) {
        c->dead = true;
        return qtc_fail(err, QTOMO_EPROTO, "unreadable error from the server: %s", dg.msg);
    }
    if (totals && e.has_totals)
        *totals = e.totals;
    (void)qtc_fail(err, e.code < 0 ? e.code : QTOMO_EPROTO, "%s", e.message);
    if (err)
        err->retry_after_ms = e.retry_after_ms;
    return e.code < 0 ? e.code : QTOMO_EPROTO;
}

int qtc_call(qtomo_conn *c, struct qp_writer *w, uint32_t id, struct qtomo_error *err)
{
    int64_t deadline;
    int r = qtc_send(c, w, err);

    qp_writer_reset(w);
    if (r < 0)
        return r;
    deadline = deadline_of(c);
    for (;;) {
        r = qtc_recv(c, deadline, NULL, err);
        if (r < 0)
            return r;
        if (c->msg.type != QP_RESPONSE || c->msg.id != id)
            continue; /* stale responses and notifications of nothing we wait for */
        if (c->msg.error && c->msg.error->type != MSGPACK_OBJECT_NIL)
            return qtc_server_error(c, err, NULL);
        if (!c->msg.result || c->msg.result->type != MSGPACK_OBJECT_MAP) {
            c->dead = true;
            return qtc_fail(err, QTOMO_EPROTO, "response without a result map");
        }
        return 0;
    }
}

int qtc_bad_result(qtomo_conn *c, struct qtomo_error *err, const char *method, int r,
                   const struct qt_diag *dg)
{
    (void)r;
    c->dead = true;
    return qtc_fail(err, QTOMO_EPROTO, "unreadable %s result: %s", method, dg->msg);
}

uint32_t qtc_next_id(qtomo_conn *c)
{
    if (++c->next_id == 0)
        c->next_id = 1;
    return c->next_id;
}

int qtomo_connect(qtomo_conn **ret, const char *path, const char *client_name, int timeout_ms,
                  struct qtomo_error *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char def[sizeof(sa.sun_path)];
    struct qp_server_info si;
    struct qt_diag dg = {0};
    qtomo_conn *c;
    uint32_t id;
    int r;

    *ret = NULL;
    if (!path) {
        if (qtomo_default_socket(def, sizeof(def)) < 0)
            return qtc_fail(err, -ENAMETOOLONG, "the default socket path is too long");
        path = def;
    }
    if (strlen(path) >= sizeof(sa.sun_path))
        return qtc_fail(err, -ENAMETOOLONG, "socket path too long (at most %zu bytes): %s",
                        sizeof(sa.sun_path) - 1, path);
    memcpy(sa.sun_path, path, strlen(path) + 1);
    c = calloc(1, sizeof(*c));
    if (!c)
        return qtc_fail(err, -ENOMEM, "out of memory");
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
    c->max_frame = QP_DEFAULT_MAX_FRAME;
    qp_writer_init(&c->w);
    qp_framer_init(&c->fr);
    c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (c->fd < 0) {
        r = qtc_fail(err, -errno, "socket: %s", qtomo_strerror(-errno));
        goto fail;
    }
    if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        if (errno != EINPROGRESS && errno != EAGAIN) {
            r = qtc_fail(err, -errno, "cannot connect to %s: %s", path, qtomo_strerror(-errno));
            goto fail;
        }
        /* A full listen backlog: wait for the server to accept. */
        int so = 0;
        socklen_t sl = sizeof(so);

        r = wait_fd(c, POLLOUT, deadline_of(c), NULL);
        if (r == 0 && getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &so, &sl) == 0 && so)
            r = -so;
        if (r < 0) {
            r = qtc_fail(err, r, "cannot connect to %s: %s", path, qtomo_strerror(r));
            goto fail;
        }
    }
    id = qtc_next_id(c);
    r = qp_pack_hello(&c->w, id, client_name ? client_name : "libqtomo-client", c->max_frame);
    if (r < 0) {
        r = qtc_fail(err, -EINVAL, "client name too long");
        goto fail;
    }
    r = qtc_call(c, &c->w, id, err);
    if (r < 0)
        goto fail;
    r = qp_decode_hello_result(c->msg.result, &si, &dg);
    if (r < 0) {
        r = qtc_bad_result(c, err, "hello", r, &dg);
        goto fail;
    }
    const msgpack_object *feat = qp_get(c->msg.result, "features");

    for (uint32_t i = 0; feat && feat->type == MSGPACK_OBJECT_ARRAY && i < feat->via.array.size;
         i++) {
        const msgpack_object *f = &feat->via.array.ptr[i];

        if (f->type == MSGPACK_OBJECT_STR && f->via.str.size == 9 &&
            memcmp(f->via.str.ptr, "bootstrap", 9) == 0)
            c->feat_bootstrap = true;
        if (f->type == MSGPACK_OBJECT_STR && f->via.str.size == 8 &&
            memcmp(f->via.str.ptr, "detector", 8) == 0)
            c->feat_detector = true;
    }
    if (si.major != QP_VERSION_MAJOR) {
        r = qtc_fail(err, QTOMO_E_UNSUPPORTED_PROTOCOL,
                     "the server speaks protocol %u.%u, this library %u.%u", si.major, si.minor,
                     QP_VERSION_MAJOR, QP_VERSION_MINOR);
        goto fail;
    }
    c->max_frame = si.max_frame >= QP_MIN_MAX_FRAME ? si.max_frame : QP_MIN_MAX_FRAME;
    c->si = (struct qtomo_server_info){si.major, si.minor, "", si.max_frame, si.max_dim,
                                       si.max_batch, si.max_inflight, si.max_item_ms, si.workers};
    memcpy(c->si.server, si.server, sizeof(c->si.server));
    qtc_msg_release(c);
    *ret = c;
    return 0;
fail:
    qtomo_close(c);
    return r;
}

void qtomo_close(qtomo_conn *c)
{
    if (!c)
        return;
    qtc_msg_release(c);
    if (c->fd >= 0)
        (void)close(c->fd);
    qp_writer_done(&c->w);
    qp_framer_done(&c->fr);
    free(c);
}

void qtomo_set_timeout(qtomo_conn *c, int timeout_ms)
{
    c->timeout_ms = timeout_ms > 0 ? timeout_ms : 0;
}

int qtomo_fd(const qtomo_conn *c)
{
    return c->fd;
}

void qtomo_server_info(const qtomo_conn *c, struct qtomo_server_info *si)
{
    *si = c->si;
}

const char *qtomo_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
    case QTOMO_E_PARSE:
        return "the server could not read the message";
    case QTOMO_E_INVALID_REQUEST:
        return "invalid request";
    case QTOMO_E_METHOD_NOT_FOUND:
        return "the server does not know this method";
    case QTOMO_E_INVALID_PARAMS:
        return "invalid parameters";
    case QTOMO_E_INTERNAL:
        return "internal server error";
    case QTOMO_E_BUSY:
        return "the server is busy; retry later";
    case QTOMO_E_TIMEOUT:
        return "the item passed its deadline";
    case QTOMO_E_WORKER_CRASHED:
        return "the item crashed the workers that ran it";
    case QTOMO_E_NOT_FOUND:
        return "not found";
    case QTOMO_E_PERMISSION:
        return "permission denied (administrative method)";
    case QTOMO_E_SHUTTING_DOWN:
        return "the server is shutting down";
    case QTOMO_E_TOO_LARGE:
        return "a size limit was exceeded";
    case QTOMO_E_INVALID_SAMPLE:
        return "the sample's values cannot be used";
    case QTOMO_E_UNSUPPORTED_PROTOCOL:
        return "unsupported protocol version";
    case QTOMO_E_CANCELLED:
        return "cancelled";
    case QTOMO_EPROTO:
        return "unreadable or unexpected message from the server";
    default:
        if (code < 0 && code > -4096 && strerrordesc_np(-code))
            return strerrordesc_np(-code); /* thread-safe, unlike strerror */
        return "unknown error";
    }
}
