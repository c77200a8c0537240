/* qtomoctl reconstruct --detector F: the detector model of the run (io/qt_detectorfile.h).
 * A model that is the identity ({} or only default values) leaves the run exactly as without
 * it. Any other model replaces the design by its effective design, a custom design that
 * --local builds here and the daemon builds from the same file (detector.put), with the same
 * id, structure and arithmetic, so their records are the same bits. Backgrounds are part of
 * the effective design (and of its id): the estimators take them there (linear subtracts them,
 * mle fits the Poisson likelihood with them), in the daemon's workers as in --local. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "io/qt_designfile.h"
#include "io/qt_detectorfile.h"
#include "num/qt_detector.h"
#include "qctl.h"
#include "qctl_util.h"
#include "recon.h"

/* Every chosen method must be able to honour the model. */
static int check_methods(const struct recon *rc, const struct qt_detector *det,
                         const struct qt_design *eff)
{
    for (size_t k = 0; k < rc->n_methods; k++) {
        struct qt_diag dg = {0};

        if (qt_detector_check_method(det, eff, rc->method_list[k], &dg) < 0) {
            qctl_err("detector file '%s': %s", rc->detector_file, dg.msg);
            return -1;
        }
    }
    return 0;
}

static int base_design(struct recon *rc)
{
    if (rc->d > QT_DETECTOR_MAX_DIM) { /* before building a large design for nothing */
        qctl_err("detector file '%s': detector models make a custom design, which needs d <= %d "
                 "(this run has d = %zu)",
                 rc->detector_file, QT_DETECTOR_MAX_DIM, rc->d);
        return -1;
    }
    if (rc->des)
        return 0;
    if (rc->kind < 0 || !rc->d) {
        qctl_err("--detector needs the design and its dimension before the data (with --live: "
                 "give --design and --dim)");
        return -1;
    }
    return qctl_recon_build_design(rc, (enum qt_design_kind)rc->kind, rc->d);
}

/* The effective design, which becomes the run's design; the base design's name, id and file
 * stay for detector.put. */
static int effective(struct recon *rc, const struct qt_detector *det, char *text, size_t len)
{
    struct qt_design *eff = NULL;
    struct qt_diag dg = {0};
    int r = qt_detector_design(rc->des, det, &eff, &dg);

    if (r < 0) {
        qctl_err("detector file '%s': the effective design: %s", rc->detector_file,
                 dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    (void)snprintf(rc->base_name, sizeof(rc->base_name), "%s", rc->des->name);
    (void)snprintf(rc->base_id, sizeof(rc->base_id), "%s",
                   rc->des->kind == QT_DESIGN_CUSTOM ? rc->des->id : "");
    qctl_recon_drop_design(rc);
    rc->des = rc->des_own = eff;
    rc->detector_text = text;
    rc->detector_len = len;
    rc->kind = QT_DESIGN_CUSTOM;
    (void)snprintf(rc->design_name, sizeof(rc->design_name), "custom");
    (void)snprintf(rc->design_id, sizeof(rc->design_id), "%s", eff->id);
    return 0;
}

int qctl_recon_detector(struct recon *rc)
{
    struct qt_detector *det = NULL;
    struct qt_diag dg = {0};
    char *buf = NULL;
    size_t len = 0;
    int r;

    if (!rc->detector_file)
        return 0;
    if (base_design(rc) < 0)
        return -1;
    r = qctl_read_file(rc->detector_file, QT_DETECTORFILE_MAX_BYTES, &buf, &len);
    if (r < 0) {
        qctl_err("cannot read detector file '%s': %s", rc->detector_file, qt_strerror(r));
        return -1;
    }
    r = qt_detectorfile_parse(buf, len, rc->des, &det, &dg);
    if (r < 0) {
        free(buf);
        qctl_err("detector file '%s': %s", rc->detector_file, dg.msg[0] ? dg.msg : qt_strerror(r));
        return -1;
    }
    r = qctl_sha256_file(rc->detector_file, rc->detector_sha256);
    if (r < 0) {
        qctl_err("cannot read detector file '%s': %s", rc->detector_file, strerror(-r));
        goto out;
    }
    if (det->identity) /* no detector: the base design, bit for bit */
        goto out;
    r = effective(rc, det, buf, len);
    if (r >= 0)
        buf = NULL; /* rc->detector_text */
    if (r >= 0)
        r = check_methods(rc, det, rc->des);
    if (r < 0)
        goto out;
    (void)snprintf(rc->detector_id, sizeof(rc->detector_id), "%s", det->id);
out:
    free(buf);
    qt_detector_free(det);
    return r < 0 ? -1 : 0;
}
