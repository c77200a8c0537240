/* Geometry of qtomoctl's figures, apart from any drawing library: the oblique projection of a
 * d x d "cityscape" of bars (screen corners of each bar's visible faces, back-to-front order),
 * the diverging colour scale, and axis ticks. Pure functions, tested in
 * tests/unit/test_plot_geom.c. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/* The projection of a cityscape into a box of the canvas. Matrix element (i, j) stands on the
 * floor cell x in [j, j + 1), y in [i, i + 1); the viewer looks from +x, +y and above, so row 0,
 * column 0 is at the back. Screen coordinates grow rightwards and downwards. */
struct pg_city {
    size_t d;
    double vmax;   /* |value| that reaches full height (the symmetric colour limit) */
    double cx, cy; /* screen position of floor point (0, 0, 0) */
    double unit;   /* screen length of one floor cell along each axis */
    double height; /* screen height of a bar of value vmax */
    double width;  /* bar width as a fraction of a cell (the rest is the gap) */
};

/* One bar's visible faces, each a quadrilateral of screen points: the top face (at the larger of
 * 0 and the value), the +x side and the +y side. base_y: screen y of the floor point under the
 * bar's front corner; a positive value puts the top face above it (smaller y), a negative one
 * puts the sides below it. */
struct pg_bar {
    size_t row, col;
    double value;
    double top[4][2], side_x[4][2], side_y[4][2];
    double base_y; /* screen y of the floor under the front corner (x1, y1, 0) */
    double tip_y;  /* screen y of the front corner at the bar's value (x1, y1, value) */
};

/* Lays a d x d cityscape out in the box (x0, y0, w, h), leaving the range [-vmax, vmax] visible,
 * or [0, vmax] when !negative (no room is kept below the floor). vmax <= 0 is treated as a tiny
 * positive number. */
void pg_city_layout(struct pg_city *c, size_t d, double vmax, bool negative, double x0, double y0,
                    double w, double h);
/* Projects the floor-and-height point (x, y, z) (z in value units) to the screen. */
void pg_city_project(const struct pg_city *c, double x, double y, double z, double *ret_u,
                     double *ret_v);
/* The bar of element (row, col) with the given value. */
void pg_city_bar(const struct pg_city *c, size_t row, size_t col, double value,
                 struct pg_bar *ret_bar);
/* Fills order[0 .. d*d) with the row-major indices row * d + col in painter's order, back to
 * front: a bar is listed before every bar that can hide part of it. */
void pg_city_order(size_t d, size_t *order);

/* A colour, components in [0, 1]. */
struct pg_rgb {
    double r, g, b;
};

/* The symmetric limit of a diverging scale: the largest |v| of the n values (at least 1e-12, so
 * an all-zero matrix still has a scale). */
double pg_sym_limit(const double *v, size_t n);
/* The diverging colour of v on the scale [-vmax, vmax]: blue at -vmax, white at 0, red at
 * +vmax, mirror images for opposite values; values outside the range are clamped. */
struct pg_rgb pg_diverging(double v, double vmax);

/* Up to max_ticks "nice" tick values (steps of 1, 2 or 5 times a power of ten) covering [lo, hi];
 * returns how many were written (at least 2 when hi > lo). */
size_t pg_ticks(double lo, double hi, double *ticks, size_t max_ticks);
