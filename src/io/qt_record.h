/* The JSON record of one (sample, method) result: the `qtomoctl reconstruct --json` line and
 * records.jsonl entry. The same function formats in-process results and results received from
 * the daemon, so both paths print identical records. */
#pragma once

#include <stddef.h>

#include "io/qt_json.h"
#include "num/qt_result.h"
#include "num/qt_uncert.h"

struct qt_record_meta {
    size_t sample;         /* 0-based index within the selection */
    size_t column;         /* 1-based column in the input file */
    const char *design;    /* design name */
    const char *design_id; /* cache id for custom designs, else NULL */
    const char *detector;  /* id of the detector model (num/qt_detector.h), else NULL */
    const struct qt_uncertainty *unc; /* error bars of an ok result, or NULL */
};

/* Writes one JSON object (no newline):
 *   {"sample", "column", "method", "design"[, "design_id"][, "detector"], "dim",
 *    "status": "ok"|"error",
 *    ok:    "rho": {"re": [[...]], "im": [[...]]} (row-major), "metrics": {...},
 *           "warnings": [...] (only when there are warnings),
 *           "spectral": {"dominant_eigenvalue", "amplitudes": [d], "phases_pi": [d],
 *           "eigenvalues": [d]} (only with opts.spectral; num/qt_spectral.h)
 *    error: "error": {"code": <public status code>, "name": <stable id>, "message": <text>}}
 * Metrics appear in qt_metric_descs order, only those present. With meta->unc, an ok record
 * ends with "uncertainty": {"resamples", "kind", "seed", "confidence"[, "shots"],
 * "failed_resamples"[, "warnings": [...]], then either "error": {code, name, message} or
 * "metrics": {"<metric>": {"std", "lo", "hi"} (vectors: arrays of d each)}, "rho_std":
 * {"re": [[...]], "im": [[...]]}[, "trace_distance_bound"]}. */
void qt_record_json(struct qt_jw *w, const struct qt_record_meta *meta,
                    const struct qt_result *res);
