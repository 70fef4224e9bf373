/* bench/cmd_gradcheck.c: `ilbench gradcheck`, compiled with IL_PREC=64.
 * Runs il_gradcheck (core/il_gradcheck.h) for each backward mode ('all': unroll
 * where the solver keeps a tape, and implicit with every adjoint solver; the
 * inexact phantom/jfb gradients can be named but are expected to fail); the normwise
 * relative errors ||g - g_fd|| / ||g_fd|| of dL/dx and dL/dW (relerr_*) must be
 * below --threshold; maxabs_* is the largest entrywise |g - g_fd|. With --jac-reg W the loss
 * adds W times the Jacobian regulariser (il_gradcheck.h), whose gradient at fixed z* is added to
 * the mode's; reg_relerr_* is that part alone against its own differences, and must pass too
 * (with --w-norm both in V and g through W(V, g)).
 * With --fp-correction K[:GAMMA] it runs il_gradcheck_corr instead: the model's
 * whole corrected loss (4 -> hidden -> 3 on a random batch) against differences
 * that hold the correction's points (and phantom's z*) fixed, for implicit, phantom
 * and jfb ('all'; unroll takes no correction); relerr of dL/dX, dL/dW, the head
 * (W2, b2) and the input layer (W1, b1).
 * --grid PRxPC checks on the scalapack backend over a BLACS grid of the world's
 * ranks (every rank computes, rank 0 prints). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "il_layer.h"
#include "il_grid.h"
#include "il_gradcheck.h"
#include "il_wnorm.h"

/* adjoint-solver / adjoint-tol are gradcheck's own (with --backward all it checks every adjoint solver,
 * and its default tolerance is tighter); the solvers' options follow from their declarations. */
static const il_cli_spec gc_spec_fixed[] = {
    {"solver", 1, "forward solver", "newton"},
    {"backward", 1, "backward mode, or 'all'", "all"},
    {"tol", 1, "solver tolerance", "1e-10"},
    {"max-iter", 1, "solver iteration limit", "solver default"},
    {"stop", 1, "batch (whole batch's residual norm) or sample (each row on its own)", "batch"},
    {"hidden", 1, "state size n", "5"},
    {"batch", 1, "batch size", "3"},
    {"scale", 1, "W = scale * U(-1,1)/sqrt(n) (PyTorch Linear init at 1)", "1"},
    {"eps", 1, "finite-difference step", "1e-6"},
    {"threshold", 1, "maximum relative error", "1e-6"},
    {"seed", 1, "random seed", "0"},
    {"device", 1, "compute backend (ilbench info lists them)", "cpu"},
    {"grid", 1, "PRxPC: check on the scalapack backend over a PR x PC BLACS grid of the world's ranks", "1x1"},
    {"grid-nb", 1, "with --grid: the block size", "64"},
    {"cell", 1, "implicit function: tanh or relu", "tanh"},
    {"adjoint-solver", 1, "implicit: lu|fp|anderson|gmres (with --backward all: every one)", "lu"},
    {"adjoint-tol", 1, "implicit, matrix-free adjoint: relative tolerance", "1e-12"},
    {"jac-reg", 1, "also check the Jacobian regulariser with this weight: its gradient, at fixed z*, is added to the "
                   "mode's and checked on its own (0: off)", "0"},
    {"jac-reg-samples", 1, "with --jac-reg: Rademacher probes per sample", "1"},
    {"w-norm", 1, "none|weight|spectral: W's parameterisation; relerr_W then checks dL/dV (and dL/dg) through "
                  "W(V, g), spectral's u, v held fixed", "none"},
    {"fp-correction", 1, "check the fixed-point correction loss of K points, weights GAMMA^(K-k) (GAMMA default 0.8), "
                         "on the model 4 -> hidden -> 3 instead of the layer alone; 'all' is implicit, phantom and jfb",
     NULL},
    {"help", 0, "show this help", NULL},
};
#define NFIXED ((int)(sizeof gc_spec_fixed / sizeof gc_spec_fixed[0]))
static il_grid grid; /* --grid: built once, freed (gridexit) on every way out */
static int grid_made;
#define NSPEC_MAX (NFIXED + 64)

int il_cmd_gradcheck(int argc, char **argv) {
  il_cli cli;
  const char *solver, *backward;
  double tol, scale, eps, thr;
  long max_iter, n, B, seed;
  /* the float64 registry's solvers: their declared options, in registry order, before "help" */
  static il_cli_spec gc_spec[NSPEC_MAX];
  static const char *solver_flags[NSPEC_MAX + 1];
  int nspec = 0, nflags = 0;
  for (int i = 0; i < NFIXED - 1; i++) gc_spec[nspec++] = gc_spec_fixed[i];
  const int first_solver_flag = nspec;
  for (int i = 0; nspec >= 0 && il_solver_at(i); i++)
    nspec = il_cli_add_decls(gc_spec, nspec, NSPEC_MAX - 1, il_solver_at(i)->name, il_solver_at(i)->options);
  if (nspec < 0) goto usage_err;
  for (int i = first_solver_flag; i < nspec; i++) solver_flags[nflags++] = gc_spec[i].name;
  solver_flags[nflags] = NULL;
  gc_spec[nspec++] = gc_spec_fixed[NFIXED - 1];
  if (il_cli_parse(&cli, "gradcheck", gc_spec, nspec, argc, argv, 0) != IL_OK) goto usage_err;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("gradcheck", "[options]", gc_spec, nspec);
    return 0;
  }
  solver = il_cli_get(&cli, "solver", "newton");
  backward = il_cli_get(&cli, "backward", "all");
  const il_solver_ops *so = il_solver_find(solver);
  if (!so) {
    IL_ERR(IL_ERR_ARG, "--solver: unknown solver '%s' (valid: %s)", solver, il_solver_names());
    goto usage_err;
  }
  if (strcmp(backward, "all") != 0 && !il_backward_find(backward)) {
    IL_ERR(IL_ERR_ARG, "--backward: unknown backward mode '%s' (valid: all, %s)", backward, il_backward_names());
    goto usage_err;
  }
  const char *stop;
  if (il_cli_choice(&cli, "stop", "batch", "batch|sample", &stop) != IL_OK ||
      il_cli_positive_double(&cli, "tol", 1e-10, &tol) != IL_OK ||
      il_cli_int(&cli, "max-iter", so->default_max_iter, 1, 1000000, &max_iter) != IL_OK ||
      il_cli_int(&cli, "hidden", 5, 1, 512, &n) != IL_OK || il_cli_int(&cli, "batch", 3, 1, 1024, &B) != IL_OK ||
      il_cli_positive_double(&cli, "scale", 1, &scale) != IL_OK ||
      il_cli_positive_double(&cli, "eps", 1e-6, &eps) != IL_OK ||
      il_cli_positive_double(&cli, "threshold", 1e-6, &thr) != IL_OK ||
      il_cli_int(&cli, "seed", 0, 0, 0x7fffffffffffffffL, &seed) != IL_OK)
    goto usage_err;

  const char *adj_given = NULL, *adj_tol = il_cli_get(&cli, "adjoint-tol", "1e-12");
  if (il_cli_has(&cli, "adjoint-solver") &&
      il_cli_choice(&cli, "adjoint-solver", "lu", "lu|fp|anderson|gmres", &adj_given) != IL_OK)
    goto usage_err;
  if ((adj_given || il_cli_has(&cli, "adjoint-tol")) && strcmp(backward, "all") != 0 && strcmp(backward, "implicit") != 0) {
    IL_ERR(IL_ERR_ARG, "--adjoint-solver and --adjoint-tol apply to --backward implicit (or all), not %s", backward);
    goto usage_err;
  }
  if (il_cli_has(&cli, "adjoint-tol") && adj_given && strcmp(adj_given, "lu") == 0) {
    IL_ERR(IL_ERR_ARG, "--adjoint-tol applies to the matrix-free adjoint solvers (fp, anderson, gmres), not lu");
    goto usage_err;
  }
  long fpc_k = 1;
  double fpc_gamma = 0.8;
  const char *fpc = il_cli_get(&cli, "fp-correction", NULL);
  if (fpc) {
    char k[32];
    const char *colon = strchr(fpc, ':');
    snprintf(k, sizeof k, "%.*s", colon ? (int)(colon - fpc) : (int)strlen(fpc), fpc);
    if (il_parse_int(k, "--fp-correction K (points)", 2, 100, &fpc_k) != IL_OK) goto usage_err;
    if (colon && il_parse_double(colon + 1, "--fp-correction GAMMA", &fpc_gamma) != IL_OK) goto usage_err;
    if (!(fpc_gamma > 0 && fpc_gamma <= 1)) {
      IL_ERR(IL_ERR_ARG, "--fp-correction: GAMMA must be in (0, 1], got %s", colon + 1);
      goto usage_err;
    }
  }
  const char *modes[8], *adjs[8];
  int nm = 0;
  if (strcmp(backward, "all") == 0) {
    if (so->unroll_backward && fpc_k == 1) { modes[nm] = "unroll"; adjs[nm++] = NULL; }
    const char *all[] = {"lu", "fp", "anderson", "gmres"};
    for (int i = 0; i < 4; i++)
      if (!adj_given || strcmp(adj_given, all[i]) == 0) { modes[nm] = "implicit"; adjs[nm++] = all[i]; }
    if (fpc_k > 1 && !adj_given) {
      modes[nm] = "phantom";
      adjs[nm++] = NULL;
      modes[nm] = "jfb";
      adjs[nm++] = NULL;
    }
  } else {
    const il_backward_ops *bo = il_backward_find(backward);
    if (bo->needs_tape && !so->unroll_backward) {
      IL_ERR(IL_ERR_UNSUPPORTED, "--backward %s is not supported with --solver %s: it keeps no tape to unroll", backward,
             solver);
      goto usage_err;
    }
    modes[nm] = backward;
    adjs[nm++] = strcmp(backward, "implicit") == 0 ? (adj_given ? adj_given : "lu") : NULL;
  }
  if (nm == 0) {
    IL_ERR(IL_ERR_UNSUPPORTED, "nothing to check for solver %s with --backward %s", solver, backward);
    goto usage_err;
  }
  double jr;
  long jr_k;
  if (il_cli_double(&cli, "jac-reg", 0, &jr) != IL_OK ||
      il_cli_int(&cli, "jac-reg-samples", 1, 1, 1 << 20, &jr_k) != IL_OK)
    goto usage_err;
  if (!(jr >= 0 && jr < INFINITY)) {
    IL_ERR(IL_ERR_ARG, "--jac-reg: the weight must be a finite number >= 0, got %g", jr);
    goto usage_err;
  }
  if (il_cli_has(&cli, "jac-reg-samples") && !(jr > 0)) {
    IL_ERR(IL_ERR_ARG, "--jac-reg-samples applies only with --jac-reg WEIGHT > 0");
    goto usage_err;
  }
  if (jr > 0 && fpc_k > 1) { /* il_gradcheck_corr checks the model's corrected loss, without the regulariser */
    IL_ERR(IL_ERR_ARG, "--jac-reg and --fp-correction cannot be checked together: --fp-correction checks the model's "
                       "corrected loss, which does not include the regulariser; check each on its own");
    goto usage_err;
  }
  const char *wn;
  if (il_cli_choice(&cli, "w-norm", "none", IL_WNORM_CHOICES, &wn) != IL_OK) goto usage_err;
  if (fpc_k > 1 && strcmp(wn, "none") != 0) { /* il_gradcheck_corr's model holds W itself, not W(V, g) */
    IL_ERR(IL_ERR_ARG, "--w-norm %s and --fp-correction cannot be checked together: the corrected loss is checked "
                       "on a model with a plain W; check each on its own", wn);
    goto usage_err;
  }
  const char *cell = il_cli_get(&cli, "cell", "tanh");
  if (!il_cell_find(cell)) {
    IL_ERR(IL_ERR_ARG, "--cell: unknown cell '%s' (valid: %s)", cell, il_cell_names());
    goto usage_err;
  }
  int gpr, gpc;
  long gnb;
  if (il_grid_options(&cli, &gpr, &gpc, &gnb) != IL_OK) goto usage_err;
  const char *device = il_cli_get(&cli, "device", "cpu");
  if (gpr * gpc > 1) {
    if (strcmp(device, "cpu") != 0 && strcmp(device, "scalapack") != 0) {
      IL_ERR(IL_ERR_ARG, "--grid %dx%d runs on the scalapack backend; --device %s cannot take part in it", gpr, gpc,
             device);
      goto usage_err;
    }
    device = "scalapack";
  }
  if (il_grid_build(gpr, gpc, gnb, &grid, &grid_made) != IL_OK) goto usage_err;
  int wrank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  if (grid_made && wrank != 0 && !freopen("/dev/null", "w", stdout)) { /* one table: rank 0's */
    IL_ERR(IL_ERR_IO, "cannot redirect stdout to /dev/null");
    goto usage_err;
  }
  il_backend *be;
  const il_backend_options bopt = {.threads = 1, .grid = grid_made ? &grid : NULL};
  if (il_backend_create(device, &bopt, &be) != IL_OK) goto usage_err;
  if (fpc_k > 1) {
    printf("%-9s %-9s %-8s %5s %5s %9s %6s %4s %-10s %12s %12s %12s %12s %s\n", "solver", "backward", "adjoint", "n",
           "batch", "tol", "iters", "M", "reason", "relerr_x", "relerr_W", "relerr_head", "relerr_in", "result");
  } else {
    printf("%-9s %-9s %-8s %5s %5s %9s %6s %-10s %12s %12s %12s %12s ", "solver", "backward", "adjoint", "n", "batch",
           "tol", "iters", "reason", "relerr_x", "relerr_W", "maxabs_x", "maxabs_W");
    if (jr > 0) printf("%12s %12s %12s ", "reg", "reg_relerr_x", "reg_relerr_W");
    printf("%s\n", "result");
  }
  int failed = 0;
  for (int i = 0; i < nm; i++) {
    il_options opts;
    il_options_init(&opts);
    for (int f = 0; solver_flags[f]; f++) {
      const char *v = il_cli_get(&cli, solver_flags[f], NULL);
      if (v) (void)il_options_set(&opts, solver_flags[f], v);
    }
    if (adjs[i]) {
      (void)il_options_set(&opts, "adjoint-solver", adjs[i]);
      if (strcmp(adjs[i], "lu") != 0) (void)il_options_set(&opts, "adjoint-tol", adj_tol);
    }
    il_gradcheck_config gc = {.layer = {.cell = cell, .solver = solver, .backward = modes[i], .tol = tol, .max_iter = (int)max_iter,
                                        .zero_nonconverged = IL_ZERO_AUTO,
                                        .stop_per_sample = strcmp(stop, "sample") == 0, .opts = &opts},
                              .n = (int)n, .B = (int)B, .scale = scale, .eps = eps, .seed = (uint64_t)seed,
                              .jac_reg = jr, .jac_reg_samples = (int)jr_k,
                              .w_norm = (il_wnorm_kind)il_wnorm_from_name(wn)};
    if (fpc_k > 1) { /* the corrected loss on the model */
      gc.layer.fp_correction = (int)fpc_k;
      const il_gradcheck_corr_config cc = {.layer = gc.layer, .gamma = fpc_gamma, .in_dim = 4, .n = (int)n,
                                           .classes = 3, .B = (int)B, .eps = eps, .seed = (uint64_t)seed};
      il_gradcheck_corr_result cr;
      il_status cs = il_gradcheck_corr(&cc, be, &cr);
      if (cs == IL_ERR_ARG || cs == IL_ERR_UNSUPPORTED) {
        il_backend_destroy(be);
        goto usage_err;
      }
      if (cs != IL_OK) {
        il_report_error("gradcheck");
        il_backend_destroy(be);
        if (grid_made) il_grid_free(&grid);
        return 1;
      }
      const double worst = fmax(fmax(cr.relerr_x, cr.relerr_W), fmax(cr.relerr_head, cr.relerr_in));
      const int ok = worst <= thr; /* NaN fails: fmax skips NaN, so check each */
      const int fin = !isnan(cr.relerr_x) && !isnan(cr.relerr_W) && !isnan(cr.relerr_head) && !isnan(cr.relerr_in);
      failed |= !(ok && fin);
      printf("%-9s %-9s %-8s %5ld %5ld %9.1e %6d %4d %-10s %12.3e %12.3e %12.3e %12.3e %s\n", solver, modes[i],
             adjs[i] ? adjs[i] : "-", n, B, tol, cr.fwd.iters, cr.M, il_reason_name(cr.fwd.reason), cr.relerr_x,
             cr.relerr_W, cr.relerr_head, cr.relerr_in, ok && fin ? "PASS" : "FAIL");
      continue;
    }
    il_gradcheck_result gr;
    il_status gs = il_gradcheck(&gc, be, &gr);
    if (gs == IL_ERR_ARG || gs == IL_ERR_UNSUPPORTED) { /* options the pair does not take */
      il_backend_destroy(be);
      goto usage_err;
    }
    if (gs != IL_OK) {
      il_report_error("gradcheck");
      il_backend_destroy(be);
      if (grid_made) il_grid_free(&grid);
      return 1;
    }
    double ex = gr.relerr_x, ew = gr.relerr_W;
    int iters = gr.fwd.iters;
    const char *reason = il_reason_name(gr.fwd.reason);
    int ok = ex <= thr && ew <= thr; /* NaN fails */
    if (jr > 0) ok = ok && gr.relerr_reg_x <= thr && gr.relerr_reg_W <= thr;
    failed |= !ok;
    printf("%-9s %-9s %-8s %5ld %5ld %9.1e %6d %-10s %12.3e %12.3e %12.3e %12.3e ", solver, modes[i],
           adjs[i] ? adjs[i] : "-", n, B, tol, iters, reason, ex, ew, gr.maxabs_x, gr.maxabs_W);
    if (jr > 0) printf("%12.4e %12.3e %12.3e ", gr.reg, gr.relerr_reg_x, gr.relerr_reg_W);
    printf("%s\n", ok ? "PASS" : "FAIL");
  }
  il_backend_destroy(be);
  if (grid_made) il_grid_free(&grid);
  grid_made = 0;
  if (failed) fprintf(stderr, "ilbench gradcheck: relative error above threshold %g\n", thr);
  return failed ? 1 : 0;
usage_err:
  il_report_error("gradcheck");
  if (grid_made) il_grid_free(&grid);
  grid_made = 0;
  return 2;
}
