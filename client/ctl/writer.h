/* A thread that writes a file while its producer goes on computing: the producer copies its
 * bytes into a ring buffer and hands them over at a flush; the thread writes what was handed
 * over, at most once per QCTL_WRITER_GATHER_MS while the producer keeps flushing (an isolated
 * flush is written at once), and makes the file durable every few MB with fdatasync, so that
 * the final fsync waits for the tail only (on a virtual disk the flush costs ~0.8 ms per MB
 * written since the last one). qtomoctl's records.jsonl: the copy of a 26 MB run into the page
 * cache and the disk's flushes no longer take the producer's time.
 *
 * The first error of a write or an fdatasync stops the writing: what follows is dropped, and
 * every later call returns the error (negative errno), so that the producer stops soon. */
#ifndef QCTL_WRITER_H
#define QCTL_WRITER_H

#include <stddef.h>

#define QCTL_WRITER_RING      ((size_t)4 << 20) /* bytes; the producer waits when it is full */
#define QCTL_WRITER_GATHER_MS 5

struct qctl_writer;

/* Starts the thread writing to fd (which stays the caller's: close it after qctl_writer_stop),
 * with an fdatasync after every sync_every bytes and an fsync after the last (sync_every 0:
 * none at all, for a pipe). 0, or a negative error (no memory, no thread): then *w is NULL. */
int qctl_writer_start(struct qctl_writer **w, int fd, size_t sync_every);
/* Appends n bytes. 0, or the first error so far. Waits only when the ring is full. */
int qctl_writer_put(struct qctl_writer *w, const void *p, size_t n);
/* Hands over what was put, to be written soon. 0, or the first error so far. */
int qctl_writer_flush(struct qctl_writer *w);
/* The first error so far, or 0. */
int qctl_writer_error(struct qctl_writer *w);
/* Hands over the rest, to be written at once and followed by the last fdatasync, without
 * waiting: the caller does other work meanwhile. Nothing may be put afterwards. */
void qctl_writer_end(struct qctl_writer *w);
/* Ends (if not yet), waits for the thread, frees w (NULL: nothing). 0: every byte put was
 * written and, with sync_every, is on disk with the file's metadata (the final fsync, also
 * when nothing was written). Else the first error of the writes and syncs: the kernel reports a
 * writeback error once per open file, so a later fsync of the caller's may no longer see it. */
int qctl_writer_stop(struct qctl_writer *w);

#endif
