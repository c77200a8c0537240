/* qtomoctl's figures drawn with cairo: density-matrix cityscapes and heatmaps, a metric over
 * samples with error bars, and eigenvalue spectra. Each figure is written as BASE.svg,
 * BASE.pdf and BASE.png (temp + rename) from one drawing code; the geometry comes from plot_geom.h.
 */
#pragma once

#include <stddef.h>

/* A d x d real matrix, row-major, with its title and the symmetric colour/height limit. */
struct pd_matrix {
    size_t d;
    const double *m;
    double vmax;
    const char *title;
};

/* One method's values over samples: x[k] is the sample number; lo/hi (or NULL) the interval;
 * NAN values are skipped. */
struct pd_series {
    const char *name;
    size_t n;
    const double *x, *y, *lo, *hi;
};

/* One method's eigenvalue spectra: n samples of d eigenvalues each (row-major n x d, in
 * descending order; NAN rows are skipped). */
struct pd_spectra {
    const char *name;
    size_t n, d;
    const double *eig;
};

/* Each writes BASE.svg, BASE.pdf and BASE.png (base: the path without extension) and returns 0 or a
 * negative errno. */
int pd_city(const char *base, const struct pd_matrix *mx);
int pd_heat(const char *base, const struct pd_matrix *mx);
int pd_metric(const char *base, const char *title, const char *ylabel, const struct pd_series *s,
              size_t ns);
int pd_spectra(const char *base, const char *title, const struct pd_spectra *s, size_t ns);
/* The dominant eigenvector of a --spectral record: amplitudes |c_i| (upper panel) and phases
 * arg c_i in units of pi (lower panel, [-1, 1]) as bars over the d components. */
int pd_spectral(const char *base, const char *title, size_t d, const double *amp,
                const double *phase_pi);

/* Releases cairo's and fontconfig's caches (fonts looked up for the text), so that leak checkers
 * (ASan's LeakSanitizer in the asan preset, valgrind) see a clean exit. Call once, after the last
 * figure of the process. */
void pd_done(void);
