/* qtomod internals shared by the supervisor, the workers and main. */
#pragma once

#include <stdint.h>

#include "qd_conf.h"

/* fd 3: a worker's end of its socketpair with the supervisor; fd 4: its progress word, a memfd
 * shared with the supervisor (qd_worker.c checks /proc/self/fd/4). */
#define QD_CHANNEL_FD  3
#define QD_PROGRESS_FD 4
/* A worker writes its w.result frames of one item together, at most QD_FLUSH_US apart (and at
 * the item's end); the progress word tells the supervisor which sample was running when it
 * died: QD_PROGRESS(item id, samples of the item computed so far). */
#define QD_FLUSH_US           2000.0
#define QD_PROGRESS(id, done) ((uint64_t)(id) << 32 | (uint32_t)(done))
#define QD_MAX_CHUNK  64 /* samples per work item, at most */

/* The channel's messages are in proto's method table (SCHEMA.md §4 `w.ready`, `w.result`). */

/* Exit codes. QD_EXIT_INIT from a worker means it failed before it was ready (crash-loop
 * breaker); from the supervisor that it could not start. QD_EXIT_CACHE_CHANGED (workers only):
 * a cache file it was computing from changed under its mapping during an item (SIGBUS inside
 * the mapping, or the file's size or time stamps differ after a sample): what it had not yet
 * answered is retried on a fresh worker, which verifies the file again or rebuilds it; the
 * sample is not charged a crash (qd_sched.c). */
enum {
    QD_EXIT_OK = 0,
    QD_EXIT_FAILURE = 1,
    QD_EXIT_INIT = 2,
    QD_EXIT_CRASHLOOP = 3,
    QD_EXIT_CACHE_CHANGED = 4,
};

#ifdef QTOMO_TEST_HOOKS
/* Test builds only: a sample whose first value is one of these crashes or hangs its worker, or
 * (QD_HOOK_WAIT) makes it wait, between mapping the cache file and computing, until the test
 * says go: it creates $QTOMO_TEST_HOOK_DIR/waiting.<pid>, then waits (60 s at most) for
 * $QTOMO_TEST_HOOK_DIR/go. QD_HOOK_ALLOC makes it allocate and touch memory, 4 MiB at a
 * time, up to $QTOMO_TEST_HOOK_ALLOC_MB (default 1024) MiB, then free it (a memory-limited
 * cgroup's OOM killer ends it first). QD_HOOK_SPIN is QD_HOOK_WAIT computing: it never gives
 * up the CPU while it waits for go. */
#    define QD_HOOK_CRASH (-7.25e300)
#    define QD_HOOK_HANG  (-8.5e300)
#    define QD_HOOK_WAIT  (-9.75e300)
#    define QD_HOOK_ALLOC (-6.5e300)
#    define QD_HOOK_SPIN  (-5.25e300)
#endif

int qd_worker_main(const struct qd_conf *conf);
/* Prints qtomod(8) ("8") or qtomod.conf(5) ("5") as roff; -1 for another section. */
int qd_gen_man(const char *section);
int qd_sup_main(const struct qd_conf *conf, const char *conf_path, int argc, char **argv);
