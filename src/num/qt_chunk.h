/* One chunk of samples through every requested method, the way the daemon's workers and
 * qtomoctl --local run them: the linear inversion of the whole chunk in one batch
 * (qt_estimate_linear_batch), then, sample by sample, the iterative methods in the order asked,
 * each started from that sample's linear estimate (or from scratch when it failed). Each
 * sample's results go to a callback, in sample order.
 *
 * Thread-compatible, like qt_estimate: every call takes its own workspace. */
#pragma once

#include <stddef.h>

#include "base/compiler.h"
#include "base/qt_ws.h"
#include "num/qt_design.h"
#include "num/qt_estimate.h"

/* Receives sample `index` (0-based within the chunk) once, in order: res[k] is the result of
 * methods[k], n_res = n_methods. A failed estimate is a record with err != 0 like any other.
 * The records are borrowed for the length of the call. us: wall-clock microseconds
 * (CLOCK_MONOTONIC) of this sample's iterative estimates; the batched linear inversion is not
 * in it, so a linear-only chunk reports about 0. Returns 0 (or any value >= 0) to go on, or a
 * negative error to stop the chunk. */
typedef int (*qt_chunk_cb)(size_t index, const struct qt_result *const *res, size_t n_res,
                           double us, void *userdata);

/* Estimates the n samples of Y (m x n column-major, m = des->m values per sample) with the
 * n_methods methods of `methods`, in that order (the linear estimate is computed for every
 * sample even when linear is not among them: the others start from it), and calls cb for
 * each sample. The result records (for des->d) are allocated and freed here. An iterative
 * estimate that fails without saying why is recorded as -EIO.
 * Returns 0 when cb has seen every sample, or cb's negative return when it stopped the chunk.
 * The function's own errors come before the first callback, so no sample has been reported:
 * QT_ESAMPLELEN when m != des->m, and -ENOMEM when the result records cannot be allocated or
 * the linear batch cannot run; the caller then reports every sample as failed, if it wishes
 * (the daemon's worker sends an error result for each). A caller whose callback may return
 * the same codes tells the two apart by noting in userdata whether cb was called. */
QT_NODISCARD int qt_chunk_estimate(const struct qt_design *des, struct qt_ws *ws, const double *Y,
                                   size_t m, size_t n, const struct qt_opts *opts,
                                   const enum qt_method *methods, size_t n_methods, qt_chunk_cb cb,
                                   void *userdata);
/* The same for the samples [lo, hi) of the chunk only: the linear batch still runs over all n
 * columns, so each of these samples gets the bits it gets in the whole chunk (a GEMM's column
 * can depend on the batch's size), and the iterative estimates run for these alone. cb sees
 * indices lo..hi-1. -EINVAL when lo > hi or hi > n; nothing happens when lo == hi. For whoever
 * splits an expensive chunk between processes (qtomo-mpi). */
QT_NODISCARD int qt_chunk_estimate_part(const struct qt_design *des, struct qt_ws *ws,
                                        const double *Y, size_t m, size_t n, size_t lo, size_t hi,
                                        const struct qt_opts *opts, const enum qt_method *methods,
                                        size_t n_methods, qt_chunk_cb cb, void *userdata);
