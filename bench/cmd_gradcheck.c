/* bench/cmd_gradcheck.c: `ilbench gradcheck`, compiled with IL_PREC=64.
 * Loss L = sum(C * layer(x; W)) for a random C. The analytic dL/dx and dL/dW
 * from the chosen backward mode are compared with central differences of the
 * same forward; the normwise relative error ||g - g_fd|| / ||g_fd|| must be
 * below --threshold. Like torch.autograd.gradcheck, in float64. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "il_layer.h"
#include "il_rng.h"

static const il_cli_spec gc_spec[] = {
    {"solver", 1, "forward solver", "newton"},
    {"backward", 1, "backward mode, or 'all'", "all"},
    {"tol", 1, "solver tolerance", "1e-10"},
    {"max-iter", 1, "solver iteration limit", "solver default"},
    {"hidden", 1, "state size n", "5"},
    {"batch", 1, "batch size", "3"},
    {"scale", 1, "W = scale * U(-1,1)/sqrt(n) (PyTorch Linear init at 1)", "1"},
    {"eps", 1, "finite-difference step", "1e-6"},
    {"threshold", 1, "maximum relative error", "1e-6"},
    {"seed", 1, "random seed", "0"},
    {"help", 0, "show this help", NULL},
};
#define NSPEC ((int)(sizeof gc_spec / sizeof gc_spec[0]))

/* L = sum(C * out) with the layer run at (x, W). */
static il_status loss_at(il_layer *L, int B, const il_real *x, const il_real *C, il_real *out, double *loss) {
  IL_CHECK(il_layer_forward(L, B, x, out, 0));
  double s = 0;
  for (size_t i = 0; i < (size_t)B * L->cell.n; i++) s += C[i] * out[i];
  *loss = s;
  return IL_OK;
}

static double rel_err(const il_real *a, const il_real *b, size_t n, double *maxabs) {
  double num = 0, den = 0;
  *maxabs = 0;
  for (size_t i = 0; i < n; i++) {
    double d = a[i] - b[i];
    num += d * d;
    den += b[i] * b[i];
    if (fabs(d) > *maxabs) *maxabs = fabs(d);
  }
  return den > 0 ? sqrt(num / den) : sqrt(num);
}

static il_status check_one(const char *solver, const char *backward, double tol, long max_iter, int n, int B,
                           double scale, double eps, uint64_t seed, double *err_x, double *err_w, int *iters,
                           const char **reason) {
  const il_backend *be;
  IL_CHECK(il_backend_cpu(1, &be));
  size_t nn = (size_t)n * n, len = (size_t)B * n;
  il_real *W = calloc(nn, sizeof *W), *x = calloc(len, sizeof *x), *C = calloc(len, sizeof *C);
  il_real *out = calloc(len, sizeof *out), *dx = calloc(len, sizeof *dx), *dW = calloc(nn, sizeof *dW);
  il_real *fx = calloc(len, sizeof *fx), *fW = calloc(nn, sizeof *fW);
  il_layer L;
  int have_layer = 0;
  il_status s = IL_OK;
  if (!W || !x || !C || !out || !dx || !dW || !fx || !fW) {
    s = IL_ERR(IL_ERR_NOMEM, "gradcheck: out of memory");
    goto out;
  }
  il_rng r;
  il_rng_seed(&r, seed);
  for (size_t i = 0; i < nn; i++) W[i] = scale * (2 * il_rng_uniform(&r) - 1) / sqrt((double)n);
  for (size_t i = 0; i < len; i++) x[i] = il_rng_normal(&r);
  for (size_t i = 0; i < len; i++) C[i] = il_rng_normal(&r);
  il_layer_config cfg = {.solver = solver, .backward = backward, .tol = tol, .max_iter = (int)max_iter,
                         .zero_nonconverged = -1, .opts = NULL};
  IL_CHECK_GOTO(s, il_layer_create(&L, &cfg, be, n, W, NULL), out);
  have_layer = 1;
  IL_CHECK_GOTO(s, il_layer_forward(&L, B, x, out, 1), out);
  *iters = L.fres.iters;
  *reason = il_reason_name(L.fres.reason);
  IL_CHECK_GOTO(s, il_layer_backward(&L, C, dx, dW), out);
  /* central differences on every input and weight entry */
  for (int which = 0; which < 2; which++) {
    il_real *v = which ? W : x, *fd = which ? fW : fx;
    size_t cnt = which ? nn : len;
    for (size_t i = 0; i < cnt; i++) {
      double keep = v[i], lp = 0, lm = 0;
      v[i] = keep + eps;
      IL_CHECK_GOTO(s, loss_at(&L, B, x, C, out, &lp), out);
      v[i] = keep - eps;
      IL_CHECK_GOTO(s, loss_at(&L, B, x, C, out, &lm), out);
      v[i] = keep;
      fd[i] = (lp - lm) / (2 * eps);
    }
  }
  double m1, m2;
  *err_x = rel_err(dx, fx, len, &m1);
  *err_w = rel_err(dW, fW, nn, &m2);
out:
  if (have_layer) il_layer_destroy(&L);
  free(W); free(x); free(C); free(out); free(dx); free(dW); free(fx); free(fW);
  return s;
}

int il_cmd_gradcheck(int argc, char **argv) {
  il_cli cli;
  const char *solver, *backward;
  double tol, scale, eps, thr;
  long max_iter, n, B, seed;
  if (il_cli_parse(&cli, "gradcheck", gc_spec, NSPEC, argc, argv, 0) != IL_OK) goto usage_err;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("gradcheck", "[options]", gc_spec, NSPEC);
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
  if (il_cli_positive_double(&cli, "tol", 1e-10, &tol) != IL_OK ||
      il_cli_int(&cli, "max-iter", so->default_max_iter, 1, 1000000, &max_iter) != IL_OK ||
      il_cli_int(&cli, "hidden", 5, 1, 512, &n) != IL_OK || il_cli_int(&cli, "batch", 3, 1, 1024, &B) != IL_OK ||
      il_cli_positive_double(&cli, "scale", 1, &scale) != IL_OK ||
      il_cli_positive_double(&cli, "eps", 1e-6, &eps) != IL_OK ||
      il_cli_positive_double(&cli, "threshold", 1e-6, &thr) != IL_OK ||
      il_cli_int(&cli, "seed", 0, 0, 0x7fffffffffffffffL, &seed) != IL_OK)
    goto usage_err;

  const char *modes[8];
  int nm = 0;
  if (strcmp(backward, "all") == 0) {
    const char *all[] = {"unroll", "implicit"};
    for (int i = 0; i < 2; i++) {
      const il_backward_ops *bo = il_backward_find(all[i]);
      if (bo && !(bo->needs_tape && !so->unroll_backward)) modes[nm++] = all[i];
    }
  } else {
    modes[nm++] = backward;
  }
  printf("%-8s %-9s %5s %5s %9s %6s %-10s %12s %12s %s\n", "solver", "backward", "n", "batch", "tol", "iters",
         "reason", "relerr_x", "relerr_W", "result");
  int failed = 0;
  for (int i = 0; i < nm; i++) {
    double ex = NAN, ew = NAN;
    int iters = 0;
    const char *reason = "";
    if (check_one(solver, modes[i], tol, max_iter, (int)n, (int)B, scale, eps, (uint64_t)seed, &ex, &ew, &iters,
                  &reason) != IL_OK) {
      il_report_error("gradcheck");
      return 1;
    }
    int ok = ex <= thr && ew <= thr; /* NaN fails */
    failed |= !ok;
    printf("%-8s %-9s %5ld %5ld %9.1e %6d %-10s %12.3e %12.3e %s\n", solver, modes[i], n, B, tol, iters, reason, ex,
           ew, ok ? "PASS" : "FAIL");
  }
  if (failed) fprintf(stderr, "ilbench gradcheck: relative error above threshold %g\n", thr);
  return failed ? 1 : 0;
usage_err:
  il_report_error("gradcheck");
  return 2;
}
