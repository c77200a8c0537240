/* libqtomo-client internals, shared by its files and by qtomoctl (which links the static
 * library and reads results as the estimator's own records, so that its output is the same
 * code path as `--local`). Not installed. */
#pragma once

#include <stdarg.h>

#include "num/qt_result.h"
#include "qp.h"
#include "qtomo/client.h"

struct qtomo_conn {
    int fd;
    int timeout_ms; /* 0: none */
    bool dead;      /* transport or protocol failure: unusable */
    bool cancelling;
    uint32_t next_id;
    uint32_t max_frame;
    struct qtomo_server_info si;
    struct qp_writer w;
    struct qp_framer fr; /* received bytes; the current message's body points into it */
    struct qp_msg msg;   /* the current message, valid until the next receive */
    bool have_msg;
    char bye_reason[64];
    bool feat_bootstrap; /* the server computes error bars (hello features) */
    bool feat_detector;  /* the server takes detector.put */
};

struct qtomo_job {
    struct qp_job job; /* values unused: the caller's array is packed directly */
    bool design_set;   /* else inferred from the sample length */
    size_t target_d;   /* the target's dimension (0: none) */
};

struct qtomo_sample {
    uint64_t index;
    size_t n;
    struct qt_result res[_QT_METHOD_MAX];
    double queue_ms, compute_ms;
    bool has_unc[_QT_METHOD_MAX]; /* res[i] came with error bars */
    struct qt_uncertainty unc[_QT_METHOD_MAX];
};

int64_t qtc_now_ms(void);
int qtc_fail(struct qtomo_error *err, int code, const char *fmt, ...) QT_PRINTF(3, 4);
uint32_t qtc_next_id(qtomo_conn *c);
/* Sends everything in w. */
int qtc_send(qtomo_conn *c, const struct qp_writer *w, struct qtomo_error *err);
/* Receives the next message into c->msg (bye is recorded, protocol_error fails). deadline:
 * absolute ms (0: none); -ECANCELED when *cancel became non-zero (nothing is marked dead). */
int qtc_recv(qtomo_conn *c, int64_t deadline, const volatile int *cancel,
             struct qtomo_error *err);
void qtc_msg_release(qtomo_conn *c);
/* Sends w (then resets it) and waits for the response to id; on success c->msg.result is a map. */
int qtc_call(qtomo_conn *c, struct qp_writer *w, uint32_t id, struct qtomo_error *err);
/* The current message's error map as a return value (totals filled when it carries them). */
int qtc_server_error(qtomo_conn *c, struct qtomo_error *err, struct qp_totals *totals);
int qtc_bad_result(qtomo_conn *c, struct qtomo_error *err, const char *method, int r,
                   const struct qt_diag *dg);

/* The estimator's record of result i (for qtomoctl's writers). */
static inline const struct qt_result *qtc_sample_result(const qtomo_sample *s, size_t i)
{
    return &s->res[i];
}

/* The error bars of result i, or NULL. */
static inline const struct qt_uncertainty *qtc_sample_uncertainty(const qtomo_sample *s, size_t i)
{
    return i < s->n && s->has_unc[i] ? &s->unc[i] : NULL;
}

/* The job's protocol form, for callers that fill estimator options from qt_opts directly. */
static inline struct qp_job *qtc_job_proto(qtomo_job *j)
{
    return &j->job;
}
