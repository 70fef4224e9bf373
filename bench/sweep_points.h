/* bench/sweep_points.h: point enumeration for `ilbench sweep`.
 *
 * Every training flag of a sweep takes a comma list; the sweep runs the
 * Cartesian product of the lists. The swept keys, in enumeration order, are
 *     solver, backward, tol, hidden, max-iter, batch, seed
 * The LAST key varies fastest, as in nested loops with solver outermost. The
 * order is fixed by this list, not by the order of il_sweep_add_axis calls
 * (nor of the flags on the command line), so a point index always names the
 * same run. Keys never added are simply not swept (no axis, no run-id part).
 *
 * Values are kept as the strings the user gave; checking that "newton" is a
 * solver or "1e-4" a number is the caller's job (cli_args.h). This module only
 * rejects malformed lists. Library style: errors return il_status with a
 * message recorded by IL_ERR; nothing exits or prints. */
#ifndef IL_SWEEP_POINTS_H
#define IL_SWEEP_POINTS_H

#include <stddef.h>

#include "il_status.h"

#define IL_SWEEP_MAX_VALUES 64     /* items per comma list */
#define IL_SWEEP_VALUE_LEN 64      /* bytes per item, NUL included: items are at most 63 characters */
#define IL_SWEEP_MAX_AXES 8        /* room for the 7 swept keys */
#define IL_SWEEP_MAX_POINTS 1000000L /* products above this are refused */
/* A buffer of this size always holds a whole run id (7 axes of 63-character values). */
#define IL_SWEEP_RUN_ID_MAX 512

typedef struct il_sweep_axis {
  const char *key; /* points to the module's own static key name, e.g. "max-iter" */
  int n;
  char values[IL_SWEEP_MAX_VALUES][IL_SWEEP_VALUE_LEN];
} il_sweep_axis;

typedef struct il_sweep {
  il_sweep_axis axes[IL_SWEEP_MAX_AXES]; /* kept in enumeration order */
  int naxes;
  long npoints; /* product of axes[k].n; 1 for a sweep with no axes */
} il_sweep;

/* An empty sweep: no axes, one point (the empty product). A zeroed struct
 * (il_sweep s = {0}) is also a valid start: npoints is set by the first add. */
void il_sweep_init(il_sweep *s);

/* Names of the swept keys in enumeration order, and how many there are. */
extern const char *const il_sweep_keys[];
extern const int il_sweep_nkeys;

/* Add an axis from a comma list ("fp,newton"). Errors (IL_ERR_ARG), each
 * naming --key and the bad item, leave *s unchanged:
 *   a key that is not one of il_sweep_keys (the message lists them), a key
 *   added twice, an empty list or empty item ("a,,b", a trailing or leading
 *   comma), an item with whitespace or longer than 63 characters, a duplicate
 *   value (for the numeric keys tol, hidden, max-iter, batch, seed also
 *   numerically equal spellings such as "1e-4,0.0001"), more than
 *   IL_SWEEP_MAX_VALUES items, and a product above IL_SWEEP_MAX_POINTS. */
il_status il_sweep_add_axis(il_sweep *s, const char *key, const char *list);

/* Value of `key` at point index i (0 <= i < npoints): mixed-radix decoding,
 * last axis fastest. NULL when the key is not swept or i is out of range. */
const char *il_sweep_value(const il_sweep *s, long i, const char *key);

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
 * "p" and the index zero-padded to max(4, digits of npoints-1) so that ids of
 * one sweep sort in index order; then one part per axis in enumeration order:
 * solver and backward bare, then tol, h (hidden), it (max-iter), b (batch),
 * s (seed) followed by the value. Characters outside [A-Za-z0-9.+-] become
 * '-' (so "phantom:5" gives "phantom-5"); the index keeps ids unique anyway.
 * Always NUL-terminated when cap > 0 (truncated if cap < IL_SWEEP_RUN_ID_MAX
 * and the id is longer); "" for i out of range. */
void il_sweep_run_id(const il_sweep *s, long i, char *buf, size_t cap);

#endif
