/* libFuzzer target for the projector cache file reader: the input is a whole file image. Any
 * image the checks accept (the header check, as every open does) must give a design view that the
 * kernels can run on without reading out of bounds. */
#include <complex.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "base/qt_ws.h"
#include "cache/qt_cachefile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qt_design des;
    struct qt_whiten wh;
    struct qt_design mix;
    struct qt_cf_info info;
    /* Mapped files are page-aligned; copy into an aligned buffer of exactly size bytes. */
    void *buf = aligned_alloc(64, (size + 63) / 64 * 64 + 64);

    if (!buf)
        return 0;
    memcpy(buf, data, size);
    /* Give mutated headers a valid checksum and the current version, so that the structure
     * checks and the view are what gets fuzzed: opening a file trusts a header whose checksum
     * matches and does not check the sections (only build and verify do). */
    if (size >= QT_CF_HEADER_SIZE && (data[0] & 1) == 0) {
        uint8_t *h = buf;
        uint64_t sum;

        memset(h + 24, 0, 16);
        memcpy(h + 24, QTOMO_VERSION, strlen(QTOMO_VERSION));
        sum = XXH3_64bits(h, QT_CF_HEADER_SUM_OFF);
        memcpy(h + QT_CF_HEADER_SUM_OFF, &sum, sizeof(sum));
    }
    if (qt_cf_check(buf, size < QT_CF_HEADER_SIZE ? size : QT_CF_HEADER_SIZE, size, false, &info,
                    NULL) == QT_CF_OK &&
        qt_cf_view(buf, size, &des, &wh, &mix, NULL) == 0 && des.d <= 8) {
        struct qt_ws ws = QT_WS_INIT;
        size_t d = des.d;
        double complex *rho = calloc(d * d, sizeof(*rho));
        double *q = calloc(des.m, sizeof(*q));

        if (rho && q) {
            for (size_t i = 0; i < d; i++)
                rho[i + d * i] = 1.0 / (double)d;
            int r = qt_design_forward(&des, &ws, rho, q);

            if (r == 0)
                r = qt_design_pinv_apply(&des, &ws, q, rho);
            if (r == 0)
                r = qt_design_adjoint(&des, &ws, q, rho);
            if (r < 0 && r != -ENOMEM)
                abort(); /* the kernels fail only for memory */
        }
        free(rho);
        free(q);
        qt_ws_done(&ws);
    }
    free(buf);
    return 0;
}
