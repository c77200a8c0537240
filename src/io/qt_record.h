/* The JSON record of one (sample, method) result: the `qtomoctl reconstruct --json` line and
 * records.jsonl entry. The same function formats in-process results and results received from
 * the daemon, so both paths print identical records. */
#pragma once

#include <stddef.h>

#include "io/qt_json.h"
#include "num/qt_result.h"

struct qt_record_meta {
    size_t sample;         /* 0-based index within the selection */
    size_t column;         /* 1-based column in the input file */
    const char *design;    /* design name */
    const char *design_id; /* cache id for custom designs, else NULL */
};

/* Writes one JSON object (no newline):
 *   {"sample", "column", "method", "design"[, "design_id"], "dim", "status": "ok"|"error",
 *    ok:    "rho": {"re": [[...]], "im": [[...]]} (row-major), "metrics": {...},
 *           "warnings": [...] (only when there are warnings)
 *    error: "error": {"code": <public status code>, "name": <stable id>, "message": <text>}}
 * Metrics appear in qt_metric_descs order, only those present. */
void qt_record_json(struct qt_jw *w, const struct qt_record_meta *meta,
                    const struct qt_result *res);
