/* core/il_selftest.h: the backend-ops self-test (in the spirit of ggml's
 * test-backend-ops). il_selftest_run creates a backend instance by name and
 * runs EVERY op of il_backend_ops on fresh random inputs over several shapes
 * (odd sizes, B = 1, n = 1), in the precision it was compiled for:
 *   - inputs are drawn on the host and uploaded; outputs are poisoned with NaN
 *     before each call (so an element never written fails); outputs that are
 *     accumulated into get random initial values instead;
 *   - every space buffer carries a trailing canary, and inputs are downloaded
 *     again after the op: writing outside an output or into an input fails;
 *   - results are compared with a float64 reference computed by plain loops
 *     in selftest.c (an independent oracle, not the CPU backend), by
 *     NMSE = sum (out - ref)^2 / sum ref^2 against a bound per op (the table
 *     at the top of selftest.c), or exactly where the result is exact;
 *   - a hand-written list of the ops of il_backend_ops is checked against the
 *     struct's size, and an op of the list that no case exercised is a failure.
 * Library code: it prints failures (op, shape, NMSE) to `log` and returns a status.
 * Compiled once per precision; both are declared here so one program can run both. */
#ifndef IL_SELFTEST_H
#define IL_SELFTEST_H

#include <stdint.h>
#include <stdio.h>

#include "il_prec.h"
#include "il_status.h"

#define IL_SELFTEST_MAX_OPS 64

typedef struct il_selftest_op {
  const char *name;  /* op of il_backend_ops (copy is listed once per direction); static storage */
  int cases, failed; /* cases that exercised it, and those of them that failed on it */
  double worst_nmse; /* largest NMSE seen; -1: only exact checks */
  double worst_ratio; /* largest NMSE / bound seen (< 1 passes) */
} il_selftest_op;

/* Precision-neutral (it holds no il_real), so it has no _f32/_f64 suffix. */
typedef struct il_selftest_summary {
  char backend[32];
  const char *precision; /* "float32" or "float64" */
  int threads;
  uint64_t seed;
  int created;           /* 0: the backend could not be created (the returned status says why) */
  int ops_total;         /* ops in the harness's list */
  int ops_covered;       /* of those, exercised by at least one case */
  int cases, failed;     /* cases run, cases with at least one failed check */
  double seconds;
  int nops;
  il_selftest_op op[IL_SELFTEST_MAX_OPS];
} il_selftest_summary;

/* Run the self-test of backend `backend_name` with `threads` threads.
 * verbose: also print one line per case to `log` (NULL: print nothing).
 * Returns IL_OK when every case passed; IL_ERR_NUMERIC (message: how many
 * failed) when some did; or the status of il_backend_create when the backend
 * cannot be created (sum->created = 0). A backend whose device is missing
 * (e.g. a GPU backend on a CPU machine) is expected to fail create with
 * IL_ERR_UNSUPPORTED; callers skip it then. `sum` may be NULL. */
il_status il_selftest_run_f32(const char *backend_name, int threads, uint64_t seed, int verbose, FILE *log,
                              il_selftest_summary *sum);
il_status il_selftest_run_f64(const char *backend_name, int threads, uint64_t seed, int verbose, FILE *log,
                              il_selftest_summary *sum);
/* The same on an instance created with options bo (threads, the GPU index). */
struct il_backend_options;
il_status il_selftest_run_on_f32(const char *backend_name, const struct il_backend_options *bo, uint64_t seed,
                                 int verbose, FILE *log, il_selftest_summary *sum);
il_status il_selftest_run_on_f64(const char *backend_name, const struct il_backend_options *bo, uint64_t seed,
                                 int verbose, FILE *log, il_selftest_summary *sum);
/* The op list: one line per op with cases, failures, worst NMSE and worst NMSE / bound. */
void il_selftest_print_f32(const il_selftest_summary *sum, FILE *f);
void il_selftest_print_f64(const il_selftest_summary *sum, FILE *f);

#define il_selftest_run IL_P(il_selftest_run)
#define il_selftest_print IL_P(il_selftest_print)
#define il_selftest_run_on IL_P(il_selftest_run_on)

#endif
