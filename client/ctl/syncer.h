/* A thread that makes a file durable while its writer goes on: each kick asks for one
 * fdatasync (kicks while one runs coalesce into the next). On a virtual disk the flush costs
 * about 0.8 ms per MB written since the last one, so a writer that kicks every few MB waits at
 * its final fsync for the tail only, instead of for the whole file. qtomoctl's records.jsonl. */
#ifndef QCTL_SYNCER_H
#define QCTL_SYNCER_H

struct qctl_syncer;

/* Starts the thread for fd (which stays the caller's: close it after qctl_syncer_stop). 0, or
 * a negative error: then *s is NULL and nothing runs. */
int qctl_syncer_start(struct qctl_syncer **s, int fd);
/* Asks for an fdatasync of everything written so far. Never blocks on the disk. */
void qctl_syncer_kick(struct qctl_syncer *s);
/* The first error of its fdatasyncs so far (negative), or 0. Does not wait for one running. */
int qctl_syncer_error(struct qctl_syncer *s);
/* Runs the fdatasync asked for, if any, ends the thread and frees s (NULL: nothing). Returns 0
 * or the first error of its fdatasyncs, negative: the kernel reports a writeback error once
 * per open file, so the caller's own fsync may no longer see it. */
int qctl_syncer_stop(struct qctl_syncer *s);

#endif
