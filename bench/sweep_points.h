/* bench/sweep_points.h: point enumeration for `ilbench sweep`.
 *
 * Every training flag of a sweep takes a comma list; the sweep runs the
 * Cartesian product of the lists. There are two kinds of axes:
 *   - the fixed keys (il_sweep_add_axis), in enumeration order
 *         solver, backward, tol, hidden, max-iter, batch, grid, seed
 *   - option axes (il_sweep_add_option_axis): the declared, sweepable options
 *     of the solvers and backward modes (anderson-m, adjoint-solver, fp-tau,
 *     ...). They come right after backward, ordered among themselves by key
 *     name (strcmp), so the order is
 *         solver, backward, <options by name>, tol, hidden, max-iter, batch, grid, seed
 * The LAST axis varies fastest, as in nested loops with solver outermost. The
 * order is fixed by these rules, not by the order of the add calls (nor of the
 * flags on the command line), so a point index always names the same run.
 * Keys never added are simply not swept (no axis, no run-id part).
 *
 * An option belongs to some solvers and backward modes only. With an
 * `applies` predicate (il_sweep_set_applies), an option axis multiplies only
 * the points whose solver and backward mode take it: `--solver fp,anderson
 * --anderson-m 4,6` is 3 points (fp once, anderson twice), and at the fp point
 * il_sweep_value(.., "anderson-m") is NULL and the run id has no anderson-m
 * part. Without a predicate every option axis applies everywhere (a plain
 * product). Applicability is decided per (solver, backward) pair only.
 *
 * Values are kept as the strings the user gave; checking that "newton" is a
 * solver or "1e-4" a number is the caller's job (cli_args.h). This module only
 * rejects malformed lists. Library style: errors return il_status with a
 * message recorded by IL_ERR; nothing exits or prints. */
#ifndef IL_SWEEP_POINTS_H
#define IL_SWEEP_POINTS_H

#include <stddef.h>
#include <stdint.h>

#include "il_status.h"

#define IL_SWEEP_MAX_VALUES 64     /* items per comma list */
#define IL_SWEEP_VALUE_LEN 64      /* bytes per item, NUL included: items are at most 63 characters */
#define IL_SWEEP_KEY_LEN 48        /* bytes per key, NUL included (as il_option's key) */
#define IL_SWEEP_MAX_OPTION_AXES 24 /* declared options swept at once (12 are declared) */
#define IL_SWEEP_MAX_AXES 32       /* the 8 fixed keys and IL_SWEEP_MAX_OPTION_AXES options */
#define IL_SWEEP_MAX_POINTS 1000000L /* full products above this are refused */
/* A buffer of this size always holds a whole run id (32 axes: 47-character keys, 63-character values). */
#define IL_SWEEP_RUN_ID_MAX 4096

typedef struct il_sweep_axis {
  char key[IL_SWEEP_KEY_LEN]; /* e.g. "max-iter" or "anderson-m" */
  int option;                 /* 1: an option axis (il_sweep_add_option_axis) */
  int n;
  char values[IL_SWEEP_MAX_VALUES][IL_SWEEP_VALUE_LEN];
} il_sweep_axis;

/* 1 when option `key` is taken by a point with this solver and backward mode
 * (each NULL when that key is not swept: the caller's default applies). */
typedef int (*il_sweep_applies_fn)(void *ctx, const char *key, const char *solver, const char *backward);

typedef struct il_sweep {
  il_sweep_axis axes[IL_SWEEP_MAX_AXES]; /* kept in enumeration order */
  int naxes;
  long npoints; /* number of points; the product of axes[k].n when every option axis applies (1: no axes) */
  il_sweep_applies_fn applies;
  void *applies_ctx;
  /* Layout, recomputed on every change: points are grouped by (solver, backward) pair p =
   * solver index * nbackward + backward index; pair p holds points pair_start[p] ..
   * pair_start[p+1]-1, and bit k of pair_mask[p] says option axis k applies to it. */
  int npairs;
  long pair_start[IL_SWEEP_MAX_VALUES * IL_SWEEP_MAX_VALUES + 1];
  uint32_t pair_mask[IL_SWEEP_MAX_VALUES * IL_SWEEP_MAX_VALUES];
} il_sweep;

/* An empty sweep: no axes, one point (the empty product). A zeroed struct
 * (il_sweep s = {0}) is also a valid start: npoints is set by the first add. */
void il_sweep_init(il_sweep *s);

/* Names of the fixed swept keys in enumeration order, and how many there are. */
extern const char *const il_sweep_keys[];
extern const int il_sweep_nkeys;

/* Add an axis from a comma list ("fp,newton"). Errors (IL_ERR_ARG), each
 * naming --key and the bad item, leave *s unchanged:
 *   a key that is not one of il_sweep_keys (the message lists them), a key
 *   added twice, an empty list or empty item ("a,,b", a trailing or leading
 *   comma), an item with whitespace or longer than 63 characters, a duplicate
 *   value (for the numeric keys tol, hidden, max-iter, batch, seed also
 *   numerically equal spellings such as "1e-4,0.0001"), more than
 *   IL_SWEEP_MAX_VALUES items, and a full product (every axis applying)
 *   above IL_SWEEP_MAX_POINTS. */
il_status il_sweep_add_axis(il_sweep *s, const char *key, const char *list);

/* Add an option axis: `key` is a declared option that the caller allows to be
 * swept (not checked here). The same list rules and errors as il_sweep_add_axis
 * (values that both read as numbers are duplicates when numerically equal:
 * "4,4.0"), and also: a key that is empty, longer than 47 characters, has a
 * character outside [A-Za-z0-9-], or is one of il_sweep_keys; more than
 * IL_SWEEP_MAX_OPTION_AXES option axes. */
il_status il_sweep_add_option_axis(il_sweep *s, const char *key, const char *list);

/* Set (or clear, with NULL) the predicate deciding which option axes multiply
 * which (solver, backward) pairs; the points are renumbered at once (and after
 * every later add). */
void il_sweep_set_applies(il_sweep *s, il_sweep_applies_fn applies, void *ctx);

/* Value of `key` at point index i (0 <= i < npoints), last axis fastest. NULL
 * when the key is not swept, is an option that does not apply at point i, or
 * i is out of range. */
const char *il_sweep_value(const il_sweep *s, long i, const char *key);
/* Index into axes[axis].values of point i's value; -1 when that option axis
 * does not apply at point i, or for bad arguments. */
int il_sweep_value_index(const il_sweep *s, long i, int axis);

/* Job-array slicing: point i belongs to task `index` of `count` when
 * i % count == index. il_sweep_check_slice validates count >= 1 and
 * 0 <= index < count (IL_ERR_ARG otherwise). il_sweep_in_slice answers 0 for
 * invalid arguments or a negative i. With count > npoints some tasks get no
 * point; that is allowed (il_sweep_slice_size says how many each gets). */
il_status il_sweep_check_slice(long index, long count);
int il_sweep_in_slice(long i, long index, long count);
/* Number of points of a sweep of `npoints` that task `index` of `count` runs; 0 for invalid arguments. */
long il_sweep_slice_size(long npoints, long index, long count);

/* A stable, human-readable run id for point i, e.g.
 *   "p0003-fp-implicit-tol1e-04-h100-it200-b100-s0"
 *   "p0002-anderson-implicit-adjoint-solver_gmres-anderson-m_6"  (option axes)
 * "p" and the index zero-padded to max(4, digits of npoints-1) so that ids of
 * one sweep sort in index order; then one part per axis that applies at the
 * point, in enumeration order: solver and backward bare; an option as its key,
 * '_' and the value; then tol, h (hidden), it (max-iter), b (batch), s (seed)
 * followed by the value. In values, characters outside [A-Za-z0-9.+-] become
 * '-' (so "phantom:5" gives "phantom-5"); the index keeps ids unique anyway.
 * Always NUL-terminated when cap > 0 (truncated if cap < IL_SWEEP_RUN_ID_MAX
 * and the id is longer); "" for i out of range. */
void il_sweep_run_id(const il_sweep *s, long i, char *buf, size_t cap);

#endif
