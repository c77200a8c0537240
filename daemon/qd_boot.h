/* Error bars through the daemon (issue 16) as plain code: one sample's N resamples are cut into
 * P units of consecutive resamples, each a work item of its own (so one sample spreads over
 * every worker, and the scheduler's exactly-once, retry, cancel and deadline rules hold per
 * unit); this collects the units' rows per sample and, when the last unit of a sample is in,
 * reduces them in resample order (qt_boot_reduce: the numbers qtomoctl --local gives) into the
 * sample's "uncertainty" array. No I/O; qd_req.c carries the events here. */
#pragma once

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/compiler.h"
#include "num/qt_uncert.h"

/* Resamples per unit at most: a unit is one work item with one item deadline, so it must stay
 * short (64 resamples: 64 estimates per method, about 1 % of them spent recomputing the point
 * estimate each unit starts from). */
#define QD_BOOT_UNIT_RESAMPLES 64u
/* Rows of one unit sent back at most this large (bytes), so frames stay small. */
#define QD_BOOT_UNIT_BYTES ((size_t)4 << 20)
/* Units of one request at most (each is a scheduler column with a state byte): larger requests
 * are refused. */
#define QD_BOOT_MAX_UNITS (1u << 22)
/* Rows of one sample kept at most this large: larger requests are refused. */
#define QD_BOOT_SAMPLE_BYTES ((size_t)64 << 20)

struct qd_boot;

/* The cut: resamples per unit (per) and units per sample (parts) for N resamples of nm methods
 * at dimension d over `workers` workers: at most QD_BOOT_UNIT_BYTES of rows per unit, and at
 * least two units per worker when N allows, so that one sample keeps every worker busy.
 * Returns 0, or -E2BIG when one sample's rows would exceed QD_BOOT_SAMPLE_BYTES. */
QT_NODISCARD int qd_boot_plan(uint32_t N, size_t nm, size_t d, unsigned workers, uint32_t *per,
                              uint32_t *parts);

/* State for a job of n samples. req: what was asked (seed resolved). */
QT_NODISCARD int qd_boot_new(struct qd_boot **ret, size_t n, const struct qt_boot_req *req,
                             size_t nm, size_t d, uint32_t per, uint32_t parts);
void qd_boot_free(struct qd_boot *b); /* NULL-safe */

/* The unit item that computes resamples [*k0, *k0 + *cnt) of sample unit / parts. */
void qd_boot_unit_range(const struct qd_boot *b, size_t unit, size_t *sample, uint32_t *k0,
                        uint32_t *cnt);

/* Unit `unit` answered (once: the scheduler guarantees it): results (the msgpack results array
 * of the sample's point estimate, kept from unit 0 of the sample), ok (no error maps), and
 * rows (the w.result "boot" value, NULL when the unit failed without rows: a crash, a
 * deadline). Rows that do not fit (wrong range or metrics) count as failed resamples and are
 * reported through *why (a message for the log). Returns 1 when this was the sample's last
 * unit (qd_boot_finish then gives its answer), 0 when more are due, -ENOMEM. */
QT_NODISCARD int qd_boot_unit(struct qd_boot *b, size_t unit, const void *results, size_t len,
                              bool ok, const msgpack_object *rows, double us, char *why,
                              size_t whylen);

/* The answer of a complete sample: its point results (borrowed until qd_boot_release), whether
 * they are all ok, the packed uncertainty array (one map per method; nil where the point
 * estimate failed) appended to unc, and the compute time of all its units (µs). */
QT_NODISCARD int qd_boot_finish(struct qd_boot *b, size_t sample, const void **results,
                                size_t *len, bool *ok, msgpack_sbuffer *unc, double *us);
/* Frees a finished sample's state. */
void qd_boot_release(struct qd_boot *b, size_t sample);
