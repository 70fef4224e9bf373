/* bench/cmd_layer.c: `ilbench layer`, one implicit layer forward+backward on
 * random data (no dataset), for each solver, backward mode, hidden size and
 * tolerance in the lists. grad_relerr is the relative error of the layer's
 * gradient (dx, dW) against the exact IFT gradient at the solver's z*, from one
 * extra diagnosed step (float32, so about 1e-6 is exact).
 * Times are the min, median and max of --repeat runs after --warmup runs, taken in
 * --rounds interleaved rounds over all cases. GFLOP/s come from
 * an analytic count of the work done (see flops_* below), not from a profiler;
 * sgemm_GF/s is the measured rate of the (B, n) x (n, n) GEMM itself, the
 * machine's limit for these shapes.
 * --grid PRxPC runs every case on the scalapack backend over a BLACS grid of the
 * world's ranks (collectively; rank 0 prints): asm_ms, factor_ms and solve_ms are
 * the Jacobian build, LU factor and LU solve events per forward + backward, comm_ms
 * the backend's own gathers (ScaLAPACK's internal messages are inside factor and
 * solve), lu_calls the batched LU factorisations per forward + backward (each of B matrices). saved_bytes and workspace_B are this rank's: the factors are its blocks. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "commands.h"
#include "il_backend_scalapack.h"
#include "il_bind.h"
#include "il_grid.h"
#include "il_layer.h"
#include "il_rng.h"
#include "train_driver.h"

static const il_cli_spec layer_spec_fixed[] = {
    {"solver", 1, "forward solver(s), comma list", "fp"},
    {"backward", 1, "backward mode(s), comma list", "unroll"},
    {"hidden", 1, "hidden sizes, comma list", "50,100,200,400"},
    {"batch", 1, "batch size", "100"},
    {"tol", 1, "tolerances, comma list", "1e-4"},
    {"max-iter", 1, "solver iteration limit", "solver default"},
    {"scale", 1, "W = scale * U(-1,1)/sqrt(n) (PyTorch Linear init at 1)", "1"},
    {"warmup", 1, "untimed runs", "2"},
    {"repeat", 1, "timed runs per case (min, median and max reported)", "10"},
    {"rounds", 1, "interleave the cases: every case runs --repeat/ROUNDS timed runs in each of ROUNDS rounds", "5"},
    {"csv", 1, "also write the table as CSV to FILE (same columns)", NULL},
    {"threads", 1, "thread counts, comma list, interleaved in the same rounds (par_eff: against T = 1); T > 1 runs the layer on T row shards that meet once per iteration, threads bound to CPUs", "1"},
    {"seed", 1, "random seed", "0"},
    {"device", 1, "compute backend (ilbench info lists them)", "cpu"},
    {"grid", 1, "PRxPC: run on a PR x PC BLACS grid of the world's ranks (the scalapack backend; PR*PC must divide "
                "the world size; the groups beyond the first repeat the cases); 1x1: one rank each", "1x1"},
    {"grid-nb", 1, "with --grid: the block size of the block-cyclic layout", "64"},
    {"mem-limit", 1, "BYTES[k|M|G] (powers of 1024): refuse a case whose layer would hold more on one rank, as the "
                     "arenas count it (saved, workspace, gradients: a cluster node's per-rank memory, simulated)",
     "none"},
    {"cell", 1, "implicit function: tanh or relu", "tanh"},
    {"log-view", 0, "print each case's events table (time, calls, FLOPs; counted FLOPs against the analytic model)", NULL},
    {"help", 0, "show this help", NULL},
};
/* the per-solver / per-backward option flags are train's: the registries' declarations */
#define option_flags (il_train_layer_option_flags())
#define NFIXED ((int)(sizeof layer_spec_fixed / sizeof layer_spec_fixed[0]))
#define NSPEC_MAX (NFIXED + 64)

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Analytic FLOP counts. A (B,n)x(n,n) GEMM is 2Bn^2; LU of n x n is 2n^3/3; a triangular solve pair 2n^2. */
/* Newton-type solvers (those with an LU) count Newton steps, the others map evaluations. Line-search
 * maps, Anderson's mixing and Broyden's rank-one updates are O(B n m) and not counted. */
static double flops_forward(const il_solver_ops *so, int B, int n, int iters) {
  double gemm = 2.0 * B * n * n;
  if (so->last_lu) /* maps: start + one per check; per step: Jacobian build, LU, solve */
    return (iters + 2) * gemm + iters * B * (2.0 * n * n * n / 3 + 2.0 * n * n + 1.0 * n * n);
  return iters * gemm;
}
static double flops_backward(const il_layer *L, int B, int n) {
  double gemm = 2.0 * B * n * n;
  const int iters = L->fres.iters, biters = L->bres.iters;
  if (strcmp(L->bops->name, "implicit") == 0) {
    /* the final vjp forms dW only (one GEMM; dx is the cotangent itself) */
    if (!L->keep_lu) return (biters + 1) * gemm + gemm; /* matrix-free: one vjp per iteration, residual, final */
    /* (maybe LU at z*), transposed solves, residual vjps, final vjp */
    double lu = L->sops->last_lu ? 0 : B * (2.0 * n * n * n / 3 + 1.0 * n * n);
    return lu + biters * (B * 2.0 * n * n + gemm) + gemm;
  }
  /* phantom / jfb: dz and dW per step, but no dz at the first step (z* is a constant) */
  if (strcmp(L->bops->name, "unroll") != 0) return (2.0 * biters - 1) * gemm;
  if (L->sops->last_lu) /* per step: solve^T, vjp (2 GEMM), jvp_vjp (4 GEMM) */
    return iters * (B * 2.0 * n * n + 6 * gemm) + gemm;
  return (iters - 1) * 2 * gemm; /* per iterate: dz and dW GEMMs, neither at z_0 = 0 */
}

/* The machine's limit for this shape: GFLOP/s of the backend GEMM (B, n) x (n, n)^T,
 * the operation every fixed-point iteration performs, at the same thread count. */
static double gemm_limit(const il_backend *be, int B, int n) {
  float *hA = calloc((size_t)B * n, sizeof *hA), *hW = calloc((size_t)n * n, sizeof *hW);
  float *A = NULL, *W = NULL, *C = NULL;
  double best = 1e30;
  il_arena sp;
  il_arena_init_for(&sp, be, IL_MEM_WORKSPACE, NULL, 0);
  if (!hA || !hW || il_arena_alloc_n(&sp, (size_t)B * n, sizeof *A, (void **)&A) != IL_OK ||
      il_arena_alloc_n(&sp, (size_t)n * n, sizeof *W, (void **)&W) != IL_OK ||
      il_arena_alloc_n(&sp, (size_t)B * n, sizeof *C, (void **)&C) != IL_OK)
    goto out;
  for (size_t i = 0; i < (size_t)B * n; i++) hA[i] = (float)(i % 7) * 0.01f;
  for (size_t i = 0; i < (size_t)n * n; i++) hW[i] = (float)(i % 5) * 0.01f;
  if (il_upload(be, A, hA, (size_t)B * n) != IL_OK || il_upload(be, W, hW, (size_t)n * n) != IL_OK) goto out;
  for (int r = 0; r < 5; r++) {
    int reps = 1 + (int)(2e8 / (2.0 * B * n * n)); /* about 0.2 GFLOP per sample */
    double t0 = il_now();
    for (int k = 0; k < reps; k++) (void)IL_BE(be, gemm, 0, 1, B, n, n, 1, A, n, W, n, 0, C, n);
    (void)il_sync(be);
    double t = (il_now() - t0) / reps;
    if (t < best) best = t;
  }
out:
  il_error_clear();
  il_arena_destroy(&sp);
  free(hA); free(hW);
  return best < 1e30 ? 2.0 * B * n * n / best * 1e-9 : NAN;
}

/* Upload a host array into a fresh space tensor of arena a. */
static il_status to_space(const il_backend *be, il_arena *a, const float *host, size_t count, float **out) {
  IL_CHECK(il_arena_alloc_n(a, count, sizeof **out, (void **)out));
  return il_upload(be, *out, host, count);
}

/* --log-view: the case's events per call, and the counted FLOPs of one forward and one
 * backward against the analytic model above (counted includes the elementwise work the
 * model leaves out, so a ratio a little above 1 is expected). */
static void print_case_events(FILE *out, const il_events *ev, long repeat, double model_fwd, double model_bwd) {
  const il_event_stat *f = &ev->ev[IL_EV_FWD_SOLVE], *b = &ev->ev[IL_EV_BWD_SOLVE];
  const double cf = f->calls ? f->flops / f->calls : 0, cb = b->calls ? b->flops / b->calls : 0;
  fprintf(out, "#   flops per call: forward counted %.4g, model %.4g (ratio %.3f); backward counted %.4g, model %.4g "
         "(ratio %.3f)\n", cf, model_fwd, model_fwd > 0 ? cf / model_fwd : NAN, cb, model_bwd,
         model_bwd > 0 ? cb / model_bwd : NAN);
  fprintf(out, "#   %-10s %9s %12s %12s %9s\n", "event", "calls/run", "ms/run", "MFLOP/run", "GFLOP/s");
  for (int i = 0; i < IL_EV_N; i++) {
    const il_event_stat *e = &ev->ev[i];
    if (!e->calls) continue;
    fprintf(out, "#   %-10s %9.2f %12.4f %12.4f %9.2f\n", il_event_name((il_event_id)i), (double)e->calls / repeat,
           1e3 * e->time / repeat, 1e-6 * e->flops / repeat, e->time > 0 ? 1e-9 * e->flops / e->time : 0);
  }
}

/* The options every case shares. */
typedef struct layer_case {
  const il_cli *cli;
  il_backend *const *be; /* one per thread count */
  const char *cell;
  long B, max_iter, warmup, repeat, seed;
  double scale;
  int log_view;
  size_t mem_limit; /* --mem-limit, 0: none */
  int on_grid;      /* an error inside a case aborts the job: the other ranks wait in ScaLAPACK */
} layer_case;

/* One row of the table: one pair, hidden size and tolerance, measured over the rounds. */
typedef struct case_row {
  const char *solver, *backward;
  int n, hidden_index, threads_index, threads;
  const struct case_row *t1; /* the same case at one thread, for par_eff; NULL if not measured */
  double tol;
  double *tf, *tb; /* (repeat) timed forward and backward runs, filled round by round */
  long done;       /* timed runs so far */
  il_events ev;    /* the timed runs' events (--log-view, and the time split) */
  double comm;     /* the timed runs' seconds in the backend's own messages (scalapack) */
  /* from the last round */
  int iters, bits;
  double residual, grad_relerr, model_fwd, model_bwd;
  il_reason reason;
  size_t saved, work;
  size_t wbytes; /* W and dW as this rank holds them (a grid keeps its blocks) */
} case_row;

/* One round of a case: build the layer on the case's seeded data, `warmup` untimed runs, `nk`
 * timed runs into row->tf/tb, and (last round) one more, diagnosed step for the gradient error.
 * Returns 0, or the command's exit code. */
static int run_round(const layer_case *lc, case_row *row, long warmup, long nk, int last) {
  const il_cli *cli = lc->cli;
  il_backend *be = lc->be[row->threads_index];
  const long B = lc->B;
  const int n = row->n;
  const il_solver_ops *so = il_solver_find(row->solver);
  const il_backward_ops *bo = il_backward_find(row->backward);
  const size_t len = (size_t)B * n, nn = (size_t)n * n;
  float *hW = malloc(nn * sizeof *hW), *hx = malloc(len * sizeof *hx), *hC = malloc(len * sizeof *hC);
  float *W, *x, *C, *out, *dx, *dW; /* in the backend's space, not counted as the layer's memory */
  il_arena data;
  il_arena_init_for(&data, be, IL_MEM_PARAMS, NULL, 0);
  if (!hW || !hx || !hC) {
    fprintf(stderr, "ilbench layer: error: out of memory at hidden %d\n", n);
    return 1;
  }
  il_rng r;
  il_rng_seed(&r, (uint64_t)lc->seed);
  for (size_t i = 0; i < nn; i++) hW[i] = (float)(lc->scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n));
  for (size_t i = 0; i < len; i++) hx[i] = (float)il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) hC[i] = (float)il_rng_normal(&r);
  if (to_space(be, &data, hW, nn, &W) != IL_OK || to_space(be, &data, hx, len, &x) != IL_OK ||
      to_space(be, &data, hC, len, &C) != IL_OK ||
      il_arena_alloc_n(&data, len, sizeof *out, (void **)&out) != IL_OK ||
      il_arena_alloc_n(&data, len, sizeof *dx, (void **)&dx) != IL_OK ||
      il_arena_alloc_n(&data, nn, sizeof *dW, (void **)&dW) != IL_OK || IL_BE(be, zero, dW, nn * sizeof *dW) != IL_OK) {
    il_report_error("layer");
    return 1;
  }
  size_t kw = 0, kd = 0; /* a grid's backend keeps only its blocks of W and dW */
  if (il_dist_matrix(be, &data, W, n, n, &kw) != IL_OK || il_dist_matrix(be, &data, dW, n, n, &kd) != IL_OK) {
    il_report_error("layer");
    return 1;
  }
  row->wbytes = kw + kd;
  il_memstats mem = {.limit = lc->mem_limit};
  il_layer L;
  il_options opts;
  il_options_init(&opts);
  for (int f = 0; option_flags[f]; f++) {
    const char *v = il_cli_get(cli, option_flags[f], NULL);
    if (v && (il_option_decl_find(so->options, option_flags[f]) || il_option_decl_find(bo->options, option_flags[f])))
      (void)il_options_set(&opts, option_flags[f], v);
  }
  il_layer_config cfg = {.cell = lc->cell, .solver = row->solver, .backward = row->backward, .tol = row->tol,
                         .max_iter = (int)lc->max_iter, .zero_nonconverged = IL_ZERO_AUTO, .opts = &opts};
  if (il_layer_create(&L, &cfg, be, n, W, &mem) != IL_OK || il_layer_reserve(&L, (int)B) != IL_OK) {
    il_report_error("layer");
    return 2;
  }
  for (long k = 0; k < warmup + nk; k++) {
    if (IL_BE(be, zero, dx, len * sizeof *dx) != IL_OK || IL_BE(be, zero, dW, nn * sizeof *dW) != IL_OK) {
      il_report_error("layer");
      return 1;
    }
    if (k == warmup) be->events = &row->ev; /* the timed runs only: two clock reads per event */
    const double c0 = il_scalapack_comm_seconds(be);
    double t0 = il_now();
    if (il_layer_forward(&L, (int)B, x, out, 1) != IL_OK || il_sync(be) != IL_OK) {
      il_report_error("layer");
      return 1;
    }
    double t1 = il_now();
    if (il_layer_backward(&L, C, dx, dW) != IL_OK || il_sync(be) != IL_OK) {
      il_report_error("layer");
      return 1;
    }
    double t2 = il_now();
    if (k >= warmup) {
      row->comm += il_scalapack_comm_seconds(be) - c0;
      row->tf[row->done] = t1 - t0;
      row->tb[row->done] = t2 - t1;
      row->done++;
    }
  }
  be->events = NULL;
  if (last) {
    row->iters = L.fres.iters;
    row->bits = L.bres.iters;
    row->residual = L.fres.residual;
    row->reason = L.fres.reason;
    row->model_fwd = flops_forward(so, (int)B, n, row->iters);
    row->model_bwd = flops_backward(&L, (int)B, n);
    row->saved = mem.peak[IL_MEM_SAVED];
    row->work = mem.peak[IL_MEM_WORKSPACE];
    /* one more step, diagnosed, for the gradient error (not timed; its exact-IFT LU would be) */
    L.diag_now = 1;
    if (IL_BE(be, zero, dx, len * sizeof *dx) != IL_OK || IL_BE(be, zero, dW, nn * sizeof *dW) != IL_OK ||
        il_layer_forward(&L, (int)B, x, out, 1) != IL_OK || il_layer_backward(&L, C, dx, dW) != IL_OK) {
      il_report_error("layer");
      return 1;
    }
    row->grad_relerr = L.diag.grad_relerr;
  }
  il_layer_destroy(&L);
  il_arena_destroy(&data);
  free(hW); free(hx); free(hC);
  return 0;
}

/* min, median, max of v[0..n) (sorted in place). */
static void mmm(double *v, long n, double *lo, double *med, double *hi) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  *lo = v[0];
  *med = n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  *hi = v[n - 1];
}

/* The table's columns, in order: the text table and --csv share them. */
static const char *const layer_cols[] = {
    "solver", "backward", "hidden", "batch", "tol", "fwd_ms", "bwd_ms", "iters", "residual", "reason", "b_its",
    "fwd_GF/s", "bwd_GF/s", "sgemm_GF/s", "saved_bytes", "workspace_B", "grad_relerr", "fwd_ms_min", "fwd_ms_max",
    "bwd_ms_min", "bwd_ms_max", "sgemm_min", "sgemm_max", "fwd_frac", "bwd_frac", "threads", "par_eff", "grid",
    "asm_ms", "factor_ms", "solve_ms", "comm_ms", "lu_calls"};
#define NCOLS ((int)(sizeof layer_cols / sizeof layer_cols[0]))

/* One row as text (sep ' ', aligned) or CSV (sep ','). Times in ms are medians over the timed
 * runs, GFLOP/s from the medians; fwd_frac, bwd_frac: those rates over the median ceiling. */
static void print_row(FILE *f, const case_row *row, long B, const double ceil3[3], int csv, const char *grid) {
  const double per = row->done ? 1e3 / row->done : NAN; /* ms per forward + backward */
  const double asm_ms = row->ev.ev[IL_EV_JAC].time * per, fac_ms = row->ev.ev[IL_EV_LU_FACTOR].time * per,
               sol_ms = row->ev.ev[IL_EV_LU_SOLVE].time * per, com_ms = row->comm * per;
  const double lu_calls = row->done ? (double)row->ev.ev[IL_EV_LU_FACTOR].calls / row->done : NAN; /* per run */
  double f0, f1, f2, b0, b1, b2;
  mmm(row->tf, row->done, &f0, &f1, &f2);
  mmm(row->tb, row->done, &b0, &b1, &b2);
  const double gf = row->model_fwd / f1 * 1e-9, gb = row->model_bwd / b1 * 1e-9;
  double eff = NAN; /* T = 1 time over T times this time, forward + backward medians */
  if (row->t1 && row->t1 != row) {
    double *v = malloc(2 * (size_t)row->t1->done * sizeof *v);
    if (v) {
      double a0, a1, a2, c1;
      memcpy(v, row->t1->tf, (size_t)row->t1->done * sizeof *v);
      memcpy(v + row->t1->done, row->t1->tb, (size_t)row->t1->done * sizeof *v);
      mmm(v, row->t1->done, &a0, &a1, &a2);
      mmm(v + row->t1->done, row->t1->done, &a0, &c1, &a2);
      eff = (a1 + c1) / (row->threads * (f1 + b1));
      free(v);
    }
  } else if (row->threads == 1) {
    eff = 1;
  }
  if (csv)
    fprintf(f, "%s,%s,%d,%ld,%.3g,%.6g,%.6g,%d,%.6e,%s,%d,%.4g,%.4g,%.4g,%zu,%zu,%.3e,%.6g,%.6g,%.6g,%.6g,%.4g,%.4g,%.4f,"
            "%.4f,%d,%.4f,%s,%.6g,%.6g,%.6g,%.6g,%.4g\n", row->solver, row->backward, row->n, B, row->tol, 1e3 * f1, 1e3 * b1, row->iters, row->residual,
            il_reason_name(row->reason), row->bits, gf, gb, ceil3[1], row->saved, row->work, row->grad_relerr,
            1e3 * f0, 1e3 * f2, 1e3 * b0, 1e3 * b2, ceil3[0], ceil3[2], gf / ceil3[1], gb / ceil3[1], row->threads, eff,
            grid, asm_ms, fac_ms, sol_ms, com_ms, lu_calls);
  else
    fprintf(f, "%-9s %-11s %6d %5ld %8.1e %10.3f %10.3f %6d %10.3e %-10s %6d %9.2f %9.2f %10.2f %12zu %12zu "
            "%11.2e %10.3f %10.3f %10.3f %10.3f %9.2f %9.2f %8.3f %8.3f %7d %7.3f %5s %9.3f %9.3f %9.3f %9.3f %8.2f\n", row->solver, row->backward, row->n, B,
            row->tol, 1e3 * f1, 1e3 * b1, row->iters, row->residual, il_reason_name(row->reason), row->bits, gf, gb,
            ceil3[1], row->saved, row->work, row->grad_relerr, 1e3 * f0, 1e3 * f2, 1e3 * b0, 1e3 * b2, ceil3[0],
            ceil3[2], gf / ceil3[1], gb / ceil3[1], row->threads, eff, grid, asm_ms, fac_ms, sol_ms, com_ms, lu_calls);
}

/* "1.23 0.98 0.50" from /proc/loadavg, or "unknown". */
static void load_average(char *buf, size_t cap) {
  FILE *f = fopen("/proc/loadavg", "r");
  double a = 0, b = 0, c = 0;
  if (f && fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3) snprintf(buf, cap, "%.2f %.2f %.2f", a, b, c);
  else snprintf(buf, cap, "unknown");
  if (f) fclose(f);
}

/* The CPU model from /proc/cpuinfo, or "unknown". */
static void cpu_model(char *buf, size_t cap) {
  FILE *f = fopen("/proc/cpuinfo", "r");
  char line[512];
  snprintf(buf, cap, "unknown");
  while (f && fgets(line, sizeof line, f))
    if (strncmp(line, "model name", 10) == 0) {
      const char *c = strchr(line, ':');
      if (c) snprintf(buf, cap, "%.*s", (int)strcspn(c + 2, "\n"), c + 2);
      break;
    }
  if (f) fclose(f);
}

int il_cmd_layer(int argc, char **argv) {
  il_cli cli;
  char solvers[8][64], backwards[8][64];
  int ns = 0, nbk = 0, nh, nt;
  long hidden[64], B, max_iter, warmup, repeat, rounds, thr[8], seed;
  int nthr;
  char thr_def[24];
  double tols[64], scale;
  static il_cli_spec layer_spec[NSPEC_MAX];
  int nspec = 0;
  for (int i = 0; i < NFIXED - 1; i++) layer_spec[nspec++] = layer_spec_fixed[i]; /* "help" last */
  if ((nspec = il_train_add_layer_options(layer_spec, nspec, NSPEC_MAX - 1)) < 0) goto usage_err;
  layer_spec[nspec++] = layer_spec_fixed[NFIXED - 1];
  if (il_cli_parse(&cli, "layer", layer_spec, nspec, argc, argv, 0) != IL_OK) goto usage_err;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("layer", "[options]", layer_spec, nspec);
    return 0;
  }
  {
    const char *lists[2] = {il_cli_get(&cli, "solver", "fp"), il_cli_get(&cli, "backward", "unroll")};
    for (int w = 0; w < 2; w++) {
      char items[8][64];
      int nit;
      if (il_cli_split_list(lists[w], w ? "backward" : "solver", items, 8, &nit) != IL_OK) goto usage_err;
      for (int it = 0; it < nit; it++) {
        const char *t = items[it];
        if (w == 0 && !il_solver_find(t)) {
          IL_ERR(IL_ERR_ARG, "--solver: unknown solver '%s' (valid: %s)", t, il_solver_names());
          goto usage_err;
        }
        if (w == 1 && !il_backward_find(t)) {
          IL_ERR(IL_ERR_ARG, "--backward: unknown backward mode '%s' (valid: %s)", t, il_backward_names());
          goto usage_err;
        }
        if ((w ? nbk : ns) == 8) {
          IL_ERR(IL_ERR_ARG, "too many items in --%s", w ? "backward" : "solver");
          goto usage_err;
        }
        memcpy(w ? backwards[nbk++] : solvers[ns++], t, 64);
      }
    }
  }
  if (il_cli_int_list(&cli, "hidden", "50,100,200,400", 1, 8192, hidden, 64, &nh) != IL_OK ||
      il_cli_double_list(&cli, "tol", "1e-4", tols, 64, &nt, 1) != IL_OK ||
      il_cli_int(&cli, "batch", 100, 1, 100000, &B) != IL_OK ||
      il_cli_int(&cli, "max-iter", 0, 1, 1000000, &max_iter) != IL_OK ||
      il_cli_positive_double(&cli, "scale", 1, &scale) != IL_OK ||
      il_cli_int(&cli, "warmup", 2, 0, 1000, &warmup) != IL_OK ||
      il_cli_int(&cli, "repeat", 10, 1, 100000, &repeat) != IL_OK ||
      il_cli_int(&cli, "rounds", 5, 1, 1000, &rounds) != IL_OK ||
      (snprintf(thr_def, sizeof thr_def, "%ld", il_default_threads()),
       il_cli_int_list(&cli, "threads", thr_def, 1, IL_BIND_MAX, thr, 8, &nthr)) != IL_OK ||
      il_cli_int(&cli, "seed", 0, 0, 0x7fffffffffffffffL, &seed) != IL_OK)
    goto usage_err;

  int gpr, gpc;
  long gnb;
  if (il_grid_options(&cli, &gpr, &gpc, &gnb) != IL_OK) goto usage_err;
  if (gpr * gpc > 1 && !il_cli_has(&cli, "threads")) thr[0] = 1, nthr = 1; /* a grid's ranks run one thread each */
  size_t mem_limit = 0;
  if (il_cli_has(&cli, "mem-limit")) {
    const char *v = il_cli_get(&cli, "mem-limit", "");
    char *end;
    errno = 0;
    const double x = strtod(v, &end);
    const double mult = *end == 'k' ? 1024.0 : *end == 'M' ? 1048576.0 : *end == 'G' ? 1073741824.0 : 1.0;
    if (end == v || errno || !(x >= 1) || (*end && (end[1] || mult == 1.0)) || x * mult > 1e18) {
      IL_ERR(IL_ERR_ARG, "--mem-limit: '%s' is not a number of bytes >= 1 (BYTES, or with k, M or G)", v);
      goto usage_err;
    }
    mem_limit = (size_t)(x * mult);
    for (int k = 0; k < nthr; k++)
      if (thr[k] != 1) {
        IL_ERR(IL_ERR_ARG, "--mem-limit with --threads %ld: the row shards' arenas are counted only after each call; "
               "use --threads 1", thr[k]);
        goto usage_err;
      }
  }
  const int on_grid = gpr * gpc > 1;
  char grid_text[32];
  snprintf(grid_text, sizeof grid_text, "%dx%d", gpr, gpc);
  const char *device = il_cli_get(&cli, "device", "cpu");
  if (on_grid) {
    if (strcmp(device, "cpu") != 0 && strcmp(device, "scalapack") != 0) {
      IL_ERR(IL_ERR_ARG, "--grid %s runs on the scalapack backend (CPU kernels on every rank of the grid); --device %s "
             "cannot take part in it", grid_text, device);
      goto usage_err;
    }
    for (int k = 0; k < nthr; k++)
      if (thr[k] != 1) {
        IL_ERR(IL_ERR_ARG, "--grid %s with --threads %ld: the layer's thread team builds a backend per row shard "
               "outside the process grid; use --threads 1 with a grid", grid_text, thr[k]);
        goto usage_err;
      }
    device = "scalapack";
  }
  static il_grid grid;
  int grid_made = 0;
  if (il_grid_build(gpr, gpc, gnb, &grid, &grid_made) != IL_OK) goto usage_err;
  int wrank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  /* on a grid every rank runs every case (the LU is collective); rank 0 alone prints */
  FILE *out = stdout;
  if (on_grid && wrank != 0 && !(out = fopen("/dev/null", "w"))) {
    IL_ERR(IL_ERR_IO, "cannot open /dev/null");
    goto usage_err;
  }
  const char *cell = il_cli_get(&cli, "cell", "tanh");
  if (!il_cell_find(cell)) {
    IL_ERR(IL_ERR_ARG, "--cell: unknown cell '%s' (valid: %s)", cell, il_cell_names());
    goto usage_err;
  }
  /* one backend per thread count, its threads bound to CPUs of their own */
  static il_backend *bes[8];
  static char bind_desc[8][256];
  {
    il_dist d;
    if (il_dist_init(&d, MPI_COMM_WORLD) != IL_OK) goto usage_err;
    for (int k = 0; k < nthr; k++) {
      int cpus[IL_BIND_MAX], bound;
      if (il_bind_cpus(&d, (int)thr[k], cpus, &bound, bind_desc[k], sizeof bind_desc[k]) != IL_OK) {
        il_dist_free(&d);
        goto usage_err;
      }
      const il_backend_options bo_opts = {.threads = (int)thr[k], .cpus = bound ? cpus : NULL,
                                          .grid = grid_made ? &grid : NULL};
      if (il_backend_create(device, &bo_opts, &bes[k]) != IL_OK) {
        il_dist_free(&d);
        goto usage_err;
      }
    }
    il_dist_free(&d);
  }
  const int log_view = il_cli_has(&cli, "log-view");
  const char *csv_path = il_cli_get(&cli, "csv", NULL);
  if (csv_path && il_cli_check_out_path(csv_path, "--csv") != IL_OK) goto usage_err;
  /* refuse impossible sizes before printing or allocating anything: unrolled Newton keeps one LU per step */
  for (int si = 0; si < ns; si++)
    for (int hi = 0; hi < nh; hi++) {
      const il_solver_ops *so = il_solver_find(solvers[si]);
      double n = (double)hidden[hi];
      double need = (double)sizeof(float) * ((double)B * n * n * (max_iter ? max_iter : so->default_max_iter) + 8.0 * B * n);
      if (il_phys_mem() && need > (double)il_phys_mem()) {
        IL_ERR(IL_ERR_NOMEM, "--hidden %ld with --batch %ld (solver %s) needs about %.3g GiB, more than this machine's %.3g GiB",
               hidden[hi], B, solvers[si], need / (1 << 30), (double)il_phys_mem() / (1 << 30));
        goto usage_err;
      }
    }
  for (int f = 0; option_flags[f]; f++) { /* an option must apply to some pair */
    int used = 0;
    for (int si = 0; si < ns; si++) used |= il_option_decl_find(il_solver_find(solvers[si])->options, option_flags[f]) != NULL;
    for (int bi = 0; bi < nbk; bi++) used |= il_option_decl_find(il_backward_find(backwards[bi])->options, option_flags[f]) != NULL;
    if (il_cli_has(&cli, option_flags[f]) && !used) {
      IL_ERR(IL_ERR_ARG, "--%s is taken by none of the solvers and backward modes given", option_flags[f]);
      goto usage_err;
    }
  }
  /* the cases, then the rounds: every case (and the GEMM ceiling of every hidden size) is timed in
   * every round, A B C A B C ..., so that a machine that speeds up or slows down during the
   * table spreads over all of its rows instead of favouring some */
  const long nrounds = rounds < repeat ? rounds : repeat;
  static case_row rows[512];
  int nrows = 0;
  for (int si = 0; si < ns; si++)
    for (int bi = 0; bi < nbk; bi++) {
      const il_solver_ops *so = il_solver_find(solvers[si]);
      const il_backward_ops *bo = il_backward_find(backwards[bi]);
      if (bo->needs_tape && !so->unroll_backward) {
        fprintf(out, "# skip %s/%s: unsupported pair\n", solvers[si], backwards[bi]);
        continue;
      }
      for (int hi = 0; hi < nh; hi++)
        for (int ti = 0; ti < nt; ti++)
          for (int k = 0; k < nthr; k++) {
            if (nrows == (int)(sizeof rows / sizeof rows[0])) {
              IL_ERR(IL_ERR_ARG, "more than %d cases in one table", nrows);
              goto usage_err;
            }
            case_row *row = &rows[nrows++];
            *row = (case_row){.solver = solvers[si], .backward = backwards[bi], .n = (int)hidden[hi],
                              .hidden_index = hi, .tol = tols[ti], .threads_index = k, .threads = (int)thr[k]};
            il_events_reset(&row->ev);
            if (!(row->tf = malloc((size_t)repeat * sizeof *row->tf)) ||
                !(row->tb = malloc((size_t)repeat * sizeof *row->tb))) {
              IL_ERR(IL_ERR_NOMEM, "out of memory for the timings");
              goto usage_err;
            }
          }
    }
  for (int i = 0; i < nrows; i++) /* the same case at one thread: rows i - threads_index ... + nthr */
    for (int j = i - rows[i].threads_index; j < i - rows[i].threads_index + nthr; j++)
      if (rows[j].threads == 1) rows[i].t1 = &rows[j];
  char cpu[256], load0[64], load1[64];
  cpu_model(cpu, sizeof cpu);
  load_average(load0, sizeof load0);
  static double limits[8][64][64]; /* [threads][hidden][round] the GEMM ceiling, GFLOP/s */
  const layer_case lc = {.cli = &cli, .be = bes, .cell = cell, .B = B, .max_iter = max_iter, .warmup = warmup,
                         .repeat = repeat, .seed = seed, .scale = scale, .log_view = log_view,
                         .mem_limit = mem_limit, .on_grid = on_grid};
  for (long rd = 0; rd < nrounds; rd++) {
    for (int k = 0; k < nthr; k++)
      for (int hi = 0; hi < nh; hi++) limits[k][hi][rd] = gemm_limit(bes[k], (int)B, (int)hidden[hi]);
    const long nk = repeat / nrounds + (rd < repeat % nrounds); /* timed runs of each case this round */
    for (int i = 0; i < nrows; i++) {
      const int rc = run_round(&lc, &rows[i], rd == 0 ? warmup : 1, nk, rd == nrounds - 1);
      if (rc && on_grid) { /* reported; the grid's other ranks may be waiting inside a collective */
        fflush(NULL);
        MPI_Abort(MPI_COMM_WORLD, rc);
      }
      if (rc) return rc;
    }
    if (isatty(2)) fprintf(stderr, "\rilbench layer: round %ld of %ld done", rd + 1, nrounds);
  }
  if (isatty(2)) fprintf(stderr, "\n");
  load_average(load1, sizeof load1);
  fprintf(out, "# cpu %s; threads", cpu);
  for (int k = 0; k < nthr; k++) fprintf(out, "%s %ld%s%s%s", k ? "," : "", thr[k], bind_desc[k][0] ? " (" : "", bind_desc[k],
                                        bind_desc[k][0] ? ")" : "");
  fprintf(out, "; load average %s at the start, %s at the end\n", load0, load1);
  fprintf(out, "# %ld timed runs per case in %ld interleaved rounds (after %ld warm-up runs); ms: median (min, max); "
         "sgemm: the (B, n) x (n, n) GEMM ceiling measured in each round, median (min, max); fwd_frac, bwd_frac: "
         "GFLOP/s over that median ceiling (the sgemm at the row's thread count); par_eff: the case's forward + backward "
         "median at 1 thread over threads x its own\n", repeat, nrounds, warmup);
  if (grid_made) {
    char gd[160];
    il_grid_describe(&grid, gd, sizeof gd);
    fprintf(out, "# grid %s; asm_ms, factor_ms, solve_ms: Jacobian build, LU factor and LU solve per forward + "
            "backward, comm_ms: the backend's own messages; bytes are rank 0's\n", gd);

  }
  if (lc.be[0]->ops->dist_matrix) { /* a distributed backend: what it keeps of W and dW */
    fprintf(out, "# W and dW on rank 0 (2-D block-cyclic):");
    for (int i = 0, last = -1; i < nrows; i++)
      if (rows[i].n != last) {
        last = rows[i].n;
        fprintf(out, " hidden %d %zu of %zu bytes;", rows[i].n, rows[i].wbytes, 2 * (size_t)rows[i].n * rows[i].n * sizeof(float));
      }
    fprintf(out, "\n");
  }
  for (int c = 0; c < NCOLS; c++) fprintf(out, "%s%s", c ? " " : "", layer_cols[c]);
  fprintf(out, "\n");
  FILE *csvf = NULL;
  if (csv_path && out == stdout && !(csvf = fopen(csv_path, "w"))) {
    IL_ERR(IL_ERR_IO, "--csv: cannot write '%s': %s", csv_path, strerror(errno));
    il_report_error("layer");
    return 1;
  }
  if (csvf)
    for (int c = 0; c < NCOLS; c++) fprintf(csvf, "%s%s", layer_cols[c], c + 1 < NCOLS ? "," : "\n");
  for (int i = 0; i < nrows; i++) {
    double c3[3];
    mmm(limits[rows[i].threads_index][rows[i].hidden_index], nrounds, &c3[0], &c3[1], &c3[2]);
    print_row(out, &rows[i], B, c3, 0, grid_text);
    if (csvf) print_row(csvf, &rows[i], B, c3, 1, grid_text);
    if (log_view) print_case_events(out, &rows[i].ev, repeat, rows[i].model_fwd, rows[i].model_bwd);
  }
  for (int i = 0; i < nrows; i++) { /* after every row: par_eff reads the 1-thread row's timings */
    free(rows[i].tf);
    free(rows[i].tb);
  }
  if (csvf && fclose(csvf) != 0) {
    IL_ERR(IL_ERR_IO, "--csv: cannot write '%s': %s", csv_path, strerror(errno));
    il_report_error("layer");
    return 1;
  }
  fflush(stdout);
  for (int k = 0; k < nthr; k++) il_backend_destroy(bes[k]);
  if (out != stdout) fclose(out);
  if (grid_made) il_grid_free(&grid);
  return 0;
usage_err:
  il_report_error("layer");
  return 2;
}
