/* When a SIGHUP reloads the configuration, as plain code. Each reload starts a new generation
 * of workers and retires the old ones; a burst of signals (a loop in a deployment script) used
 * to start a pool per signal: at one SIGHUP every 20 ms, 117 worker processes, 15 results in
 * 8 s instead of ~18,000, and `stats` took 4 s to answer. Signals are coalesced: a reload at
 * most every QD_RELOAD_MIN_MS; a signal inside that window schedules one reload at its end,
 * and further signals join it. The admin `reload` request is not limited (it answers with the
 * outcome), but it counts as a reload and takes the place of a scheduled one. No I/O; qd_sup.c
 * calls it from the signal handler, the tick and qd_sup_reload. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#define QD_RELOAD_MIN_MS 1000

struct qd_reload {
    bool any;       /* a reload has happened */
    uint64_t last;  /* when (ms) */
    uint64_t due;   /* a scheduled reload's time (ms); 0: none */
};

enum qd_reload_action {
    QD_RELOAD_NOW,       /* reload now */
    QD_RELOAD_DEFERRED,  /* a reload is now scheduled at r->due */
    QD_RELOAD_COALESCED, /* joined the reload already scheduled */
};

/* A SIGHUP at now (ms). */
static inline enum qd_reload_action qd_reload_signal(struct qd_reload *r, uint64_t now)
{
    if (r->due)
        return QD_RELOAD_COALESCED;
    if (!r->any || now >= r->last + QD_RELOAD_MIN_MS)
        return QD_RELOAD_NOW;
    r->due = r->last + QD_RELOAD_MIN_MS;
    if (!r->due) /* time 0 is "none" */
        r->due = 1;
    return QD_RELOAD_DEFERRED;
}

/* At a tick: whether the scheduled reload is due. */
static inline bool qd_reload_due(const struct qd_reload *r, uint64_t now)
{
    return r->due && now >= r->due;
}

/* A reload ran (or was refused) at now: from any source. */
static inline void qd_reload_done(struct qd_reload *r, uint64_t now)
{
    r->any = true;
    r->last = now;
    r->due = 0;
}
