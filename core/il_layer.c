/* core/il_layer.c: glue of cell, solver and backward mode for one batch, plus
 * the per-step diagnostics (--diag) that need all three. */
#include "il_layer.h"
#include "il_layer_correction.h"
#include "il_layer_team.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

il_status il_layer_create(il_layer *L, const il_layer_config *cfg, const il_backend *be, int n, const il_real *W,
                          il_memstats *stats) {
  memset(L, 0, sizeof *L);
  if (!cfg->solver || !(L->sops = il_solver_find(cfg->solver)))
    return IL_ERR(IL_ERR_ARG, "unknown solver '%s' (valid: %s)", cfg->solver ? cfg->solver : "", il_solver_names());
  if (!cfg->backward || !(L->bops = il_backward_find(cfg->backward)))
    return IL_ERR(IL_ERR_ARG, "unknown backward mode '%s' (valid: %s)", cfg->backward ? cfg->backward : "",
                  il_backward_names());
  if (L->bops->needs_tape && !L->sops->unroll_backward)
    return IL_ERR(IL_ERR_UNSUPPORTED,
                  "backward '%s' is not supported with solver '%s': it keeps no tape to unroll (use implicit, "
                  "phantom:K or jfb)", L->bops->name, L->sops->name);
  if (!(cfg->tol > 0)) return IL_ERR(IL_ERR_ARG, "tolerance must be positive, got %g", cfg->tol);
  if (cfg->stop_per_sample && !L->sops->per_sample_ok)
    return IL_ERR(IL_ERR_UNSUPPORTED, "solver '%s' does not support per-sample stopping (use --stop batch)",
                  L->sops->name);
  if (cfg->stop_per_sample && cfg->stop_rel)
    return IL_ERR(IL_ERR_UNSUPPORTED, "per-sample stopping judges each row on its own: it cannot be combined with a "
                                      "threshold relative to the batch's first residual (rel; relf, relative to each "
                                      "row's ||f(z)||, can)");
  if (cfg->stop_norm < IL_STOP_FROB || cfg->stop_norm > IL_STOP_MEAN)
    return IL_ERR(IL_ERR_ARG, "stop norm must be frob, max or mean (%d)", cfg->stop_norm);
  if (cfg->stop_per_sample && cfg->stop_norm != IL_STOP_FROB)
    return IL_ERR(IL_ERR_UNSUPPORTED, "the %s norm reduces the batch's rows for batch stopping: per-sample "
                  "stopping judges each row on its own (use --stop batch)", il_stop_norm_name(cfg->stop_norm));
  if (cfg->stop_rel && cfg->stop_relf)
    return IL_ERR(IL_ERR_ARG, "relative to the first residual (rel) and to ||f(z)|| (relf) are two stop modes: "
                              "choose one");
  if (cfg->keep_best < IL_BEST_OFF || cfg->keep_best > IL_BEST_SAMPLE)
    return IL_ERR(IL_ERR_ARG, "best-iterate rule must be off, batch or sample (%d)", cfg->keep_best);
  if (cfg->keep_best && L->bops->needs_tape)
    return IL_ERR(IL_ERR_UNSUPPORTED, "returning the lowest-residual iterate is not supported with backward '%s': "
                                      "the tape ends at the last iterate", L->bops->name);
  if (cfg->keep_best && cfg->stop_per_sample)
    return IL_ERR(IL_ERR_UNSUPPORTED, "returning the lowest-residual iterate needs batch stopping: per-sample "
                                      "residuals are taken over different rows at each iteration");
  if (cfg->sech2_seed && !L->sops->last_lu)
    return IL_ERR(IL_ERR_UNSUPPORTED, "the seed's sech^2 changes only the Jacobian a Newton solver builds; solver "
                                      "'%s' builds none", L->sops->name);
  if (!(cfg->divtol >= 0)) return IL_ERR(IL_ERR_ARG, "divtol must be >= 0 (0: off), got %g", cfg->divtol);
  if (cfg->eval_tol != cfg->eval_tol) return IL_ERR(IL_ERR_ARG, "evaluation tolerance is NaN");
  L->cfg = *cfg;
  if (L->cfg.max_iter <= 0) L->cfg.max_iter = L->sops->default_max_iter;
  if (L->cfg.eval_tol <= 0) L->cfg.eval_tol = L->cfg.tol;
  if (L->cfg.eval_max_iter <= 0) L->cfg.eval_max_iter = L->cfg.max_iter;
  if (L->cfg.adjoint_refine == 0) L->cfg.adjoint_refine = 3;
  if (L->cfg.adjoint_refine < 0) L->cfg.adjoint_refine = 0;
  if (cfg->zero_nonconverged < IL_ZERO_AUTO || cfg->zero_nonconverged > IL_ZERO_NO)
    return IL_ERR(IL_ERR_ARG, "zero_nonconverged must be auto, yes or no");
  L->zero_rows = cfg->zero_nonconverged == IL_ZERO_AUTO ? L->sops->zero_default /* the seed's Newton rule */
                                                        : cfg->zero_nonconverged == IL_ZERO_YES;
  L->be = be;
  const il_cell_config cc = {.sech2_seed = cfg->sech2_seed};
  IL_CHECK(il_cell_init(&L->cell, cfg->cell, be, n, W, &cc));
  /* a private copy: "phantom:5" adds its argument as the mode's option "phantom-k" */
  if (cfg->opts) L->opts = *cfg->opts;
  else il_options_init(&L->opts);
  const char *colon = strchr(cfg->backward, ':');
  if (colon) {
    char key[48];
    snprintf(key, sizeof key, "%.*s-k", (int)(colon - cfg->backward), cfg->backward);
    if (!il_option_decl_find(L->bops->options, key))
      return IL_ERR(IL_ERR_ARG, "backward '%s' takes no ':' argument (got '%s')", L->bops->name, cfg->backward);
    IL_CHECK(il_options_set(&L->opts, key, colon + 1));
  }
  /* big blocks keep consecutive tape entries contiguous (fp unroll batches its theta GEMMs) */
  IL_CHECK(il_arena_init_for(&L->saved, be, IL_MEM_SAVED, stats, (size_t)8 << 20));
  IL_CHECK(il_arena_init_for(&L->ws, be, IL_MEM_WORKSPACE, stats, (size_t)1 << 20));
  IL_CHECK(il_arena_init(&L->hsaved, IL_MEM_SAVED, stats, (size_t)64 << 10));
  IL_CHECK(il_arena_init(&L->hws, IL_MEM_WORKSPACE, stats, (size_t)64 << 10));
  il_status s = L->sops->create(&L->opts, &L->sstate);
  if (s == IL_OK && L->bops->create) s = L->bops->create(&L->opts, &L->bstate, &L->keep_lu);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "solver %s / backward %s", L->sops->name, L->bops->name);
  if (s == IL_OK) s = il_options_check_all_used(&L->opts, ctx);
  if (s == IL_OK) s = il_corr_setup(L, cfg);
  if (s == IL_OK && il_layer_team_wanted(be)) s = il_layer_team_create(L, cfg, n, W, stats);
  if (s != IL_OK) {
    il_layer_destroy(L);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  return IL_OK;
}

size_t il_layer_ws_bytes(const il_layer *L, int B) {
  if (L->team) return il_layer_team_ws_bytes(L, B);
  const size_t len = il_ws_round((size_t)B * L->cell.n * sizeof(il_real));
  size_t fwd = L->sops->ws_bytes(L->sstate, &L->cell, B, L->cfg.max_iter, L->bops->needs_tape);
  const size_t fwd_eval = L->sops->ws_bytes(L->sstate, &L->cell, B, L->cfg.eval_max_iter, 0);
  if (fwd_eval > fwd) fwd = fwd_eval;
  size_t bwd = L->bops->ws_bytes ? L->bops->ws_bytes(L->bstate, &L->cell, B) : 0;
  const size_t diag = 3 * len + L->cell.ops->ws_bytes(&L->cell, B); /* diag_rho, f(z*) */
  const size_t corr = il_corr_ws_bytes(L, B, fwd, bwd);
  if (bwd < diag) bwd = diag;
  if (bwd < corr) bwd = corr;
  if (L->cfg.jac_reg) { /* il_layer_jac_reg: f(z*), the masked probe, the cell's op */
    const size_t reg = 2 * len + L->cell.ops->ws_bytes(&L->cell, B);
    if (bwd < reg) bwd = reg;
  }
  return (fwd > bwd ? fwd : bwd) + 2 * len; /* + the diagnostics' f(z*) and margin */
}

il_status il_layer_trace_init(il_layer *L) {
  if (L->team) return il_layer_team_trace_init(L);
  if (L->trace_mem) return IL_OK;
  const int fcap = L->cfg.max_iter + 1; /* Newton checks its start as well */
  int bcap = 0;
  L->btrace_solver = NULL;
  if (L->bops->trace_info) bcap = L->bops->trace_info(L->bstate, L->cfg.max_iter, L->cfg.adjoint_refine,
                                                      &L->btrace_solver);
  const size_t total = (size_t)fcap + (size_t)bcap;
  char *mem = malloc(total * (sizeof(double) + sizeof(int)));
  if (!mem) return IL_ERR(IL_ERR_NOMEM, "layer: cannot allocate the residual traces (%zu entries)", total);
  L->trace_mem = mem;
  double *res = (double *)(void *)mem;
  int *it = (int *)(void *)(res + total);
  L->ftrace = (il_trace){.res = res, .iter = it, .cap = fcap};
  L->btrace = (il_trace){.res = res + fcap, .iter = it + fcap, .cap = bcap};
  return IL_OK;
}

il_status il_layer_reserve(il_layer *L, int max_B) {
  if (max_B <= 0) return IL_ERR(IL_ERR_ARG, "layer reserve: batch must be positive, got %d", max_B);
  if (L->team) return il_layer_team_reserve(L, max_B);
  const size_t need = il_layer_ws_bytes(L, max_B);
  L->ws_reserve = need;
  if (need > L->ws.block_bytes) L->ws.block_bytes = need; /* one block: the arena is not grown in a solve */
  if (L->ws.reserved < need) { /* allocate it now, not inside the first solve; reserving is not use: uncounted */
    il_memstats *st = L->ws.stats;
    il_arena_mark m = il_arena_get_mark(&L->ws);
    void *p;
    L->ws.stats = NULL;
    il_status s = il_arena_alloc(&L->ws, need, &p);
    il_arena_rewind(&L->ws, m);
    L->ws.stats = st;
    IL_CHECK(s);
  }
  return IL_OK;
}

/* Power iteration for the spectral radius of A_b = df/dz at (z*, f*), per sample,
 * from a fixed start so that runs are reproducible. */
#define IL_RHO_ITERS 30
static il_status diag_rho(il_layer *L, const il_real *zs, const il_real *fs) {
  il_cell *c = &L->cell;
  const il_backend *be = L->be;
  const int B = L->B, n = c->n;
  const size_t len = (size_t)B * n;
  il_marks m = il_marks_get(&L->ws, &L->hws);
  il_real *v, *av, *hv, *inv;
  double *nrm;
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *v, (void **)&v));
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *av, (void **)&av));
  IL_CHECK(il_arena_alloc_n(&L->ws, (size_t)B, sizeof *inv, (void **)&inv));
  IL_CHECK(il_arena_alloc_n(&L->hws, len, sizeof *hv, (void **)&hv));
  IL_CHECK(il_arena_alloc_n(&L->hws, (size_t)B, sizeof *nrm, (void **)&nrm));
  /* the start vector is made on the host, normalised there, and uploaded */
  for (size_t i = 0; i < len; i++) hv[i] = (il_real)(1.0 + 0.5 * sin(1.0 + (double)(i % (size_t)n)));
  IL_CHECK(il_upload(be, v, hv, len));
  IL_CHECK(IL_BE(be, row_sqdist, B, n, v, NULL, nrm));
  for (int b = 0; b < B; b++)
    for (int j = 0; j < n; j++) hv[(size_t)b * n + j] /= (il_real)sqrt(nrm[b]);
  IL_CHECK(il_upload(be, v, hv, len));
  il_real *hinv = hv; /* (B) scratch from here on */
  for (int it = 0; it < IL_RHO_ITERS; it++) {
    IL_CHECK(il_cell_jvp_z(c, B, zs, fs, NULL, v, av, &L->ws));
    IL_CHECK(IL_BE(be, row_sqdist, B, n, av, NULL, nrm)); /* sync point: ||A v|| with ||v|| = 1 */
    for (int b = 0; b < B; b++) {
      const double r = sqrt(nrm[b]);
      hinv[b] = (il_real)(r > 0 ? 1 / r : 0);
    }
    IL_CHECK(il_upload(be, inv, hinv, (size_t)B));
    IL_CHECK(IL_BE(be, row_lincomb, B, n, 1, inv, av, 0, NULL, v));
  }
  double mx = 0, sum = 0;
  int cnt = 0;
  for (int b = 0; b < B; b++) {
    if (L->zeroed[b]) continue; /* a zeroed row has no z* */
    const double r = sqrt(nrm[b]);
    if (isnan(r) || isnan(mx)) mx = NAN; /* a NaN row makes the batch's estimate NaN */
    else if (r > mx) mx = r;
    sum += r;
    cnt++;
  }
  L->diag.rho_max = cnt ? mx : NAN;
  L->diag.rho_mean = cnt ? sum / cnt : NAN;
  L->diag.rho_samples = cnt;
  il_marks_rewind(&L->ws, &L->hws, m);
  return IL_OK;
}

il_status il_layer_forward(il_layer *L, int B, const il_real *x, il_real *out, int train) {
  return il_layer_forward_from(L, B, x, NULL, out, train);
}

il_status il_layer_forward_from(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out, int train) {
  return il_layer_forward_corr(L, B, x, z0, out, NULL, train);
}

il_status il_layer_forward_corr(il_layer *L, int B, const il_real *x, const il_real *z0, il_real *out,
                                il_real *const *corr, int train) {
  const il_backend *be = L->be;
  const int n = L->cell.n;
  const size_t len = (size_t)B * n;
  const int corrected = train && L->corr_K > 1;
  if (B <= 0) return IL_ERR(IL_ERR_ARG, "layer forward: batch must be positive, got %d", B);
  if (corrected && !corr)
    return IL_ERR(IL_ERR_ARG, "layer forward: fixed-point correction needs %d output arrays", L->corr_K - 1);
  if (L->team) return il_layer_team_forward(L, B, x, z0, out, corrected ? corr : NULL, train);
  il_arena_reset(&L->saved);
  il_arena_reset(&L->hsaved);
  L->corr_j = NULL;
  L->corr_pt = NULL;
  L->corr_tape = NULL;
  L->B = B;
  L->train = train;
  L->diag = (il_layer_diag){.rho_max = NAN, .rho_mean = NAN, .cond_max = NAN, .grad_cos = NAN, .grad_relerr = NAN,
                            .preact_max = NAN};
  L->bwd_nan_iter = -1;
  const int taped = train && L->bops->needs_tape;
  const int traced = train && L->trace_now && L->trace_mem; /* --trace: this step's residuals */
  L->ftrace.n = L->ftrace.lost = L->btrace.n = L->btrace.lost = 0;
  L->prob = (il_problem){.cell = &L->cell, .be = be, .B = B, .x = x, .z0 = z0,
                         .tol = train ? L->cfg.tol : L->cfg.eval_tol,
                         .max_iter = train ? L->cfg.max_iter : L->cfg.eval_max_iter, .ws = &L->ws, .hws = &L->hws,
                         .saved = taped ? &L->saved : NULL, .hsaved = taped ? &L->hsaved : NULL,
                         .keep = (train && L->keep_lu) ? &L->saved : NULL, .reduce = L->prob.reduce,
                         .per_sample = L->cfg.stop_per_sample, .stop_rel = L->cfg.stop_rel,
                         .divtol = L->cfg.divtol, .keep_best = L->cfg.keep_best, .diag = L->diag_now,
                         .stop_norm = L->cfg.stop_norm, .stop_relf = L->cfg.stop_relf,
                         .trace = traced ? &L->ftrace : NULL, .corr = corrected ? &L->corr_points : NULL};
  if (corrected) IL_CHECK(il_corr_begin(L));
  IL_CHECK(il_arena_calloc(&L->saved, len, sizeof *L->zstar, (void **)&L->zstar));
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)B, sizeof *L->row_res, (void **)&L->row_res));
  IL_CHECK(il_arena_calloc(&L->hsaved, (size_t)B, sizeof *L->zeroed, (void **)&L->zeroed));
  IL_CHECK(il_arena_calloc(&L->saved, (size_t)B, sizeof *L->zeroed_d, (void **)&L->zeroed_d));
  const il_ev_scope ev = il_ev_open(be);
  IL_CHECK(L->sops->solve(L->sstate, &L->prob, L->zstar, L->row_res, &L->fres));
  il_ev_close(be, ev, IL_EV_FWD_SOLVE);
  L->diag.cond_max = L->fres.cond_max;
  L->diag.preact_max = L->fres.preact_max;
  int nzero = 0;
  if (L->zero_rows)
    for (int b = 0; b < B; b++)
      if (!(L->row_res[b] <= L->fres.tol_abs)) L->zeroed[b] = 1, nzero++;
  if (nzero) {
    IL_CHECK(IL_BE(be, copy, IL_COPY_TO_SPACE, L->zeroed_d, L->zeroed, (size_t)B));
    IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, L->zstar));
  }
  const il_lu *lu = NULL;
  if (train && L->keep_lu && L->sops->last_lu && L->sops->last_lu(L->sstate, &lu) != IL_OK) lu = NULL;
  L->adj = (il_adjoint){.cell = &L->cell, .be = be, .B = B, .x = x, .zstar = L->zstar, .zeroed = L->zeroed_d,
                        .hzeroed = L->zeroed, .ws = &L->ws, .hws = &L->hws, .saved = train ? &L->saved : NULL,
                        .hsaved = train ? &L->hsaved : NULL, .reduce = L->prob.reduce, .lu = lu,
                        .diag = L->diag_now, .adjoint_refine = L->cfg.adjoint_refine, .fwd_iters = L->fres.iters,
                        .sops = L->sops, .sstate = L->sstate, .fprob = &L->prob,
                        .trace = traced && L->btrace.cap ? &L->btrace : NULL};
  IL_CHECK(L->bops->finish_forward(L->bstate, &L->adj, out));
  if (nzero) /* a zeroed row is a constant 0 output, whatever the mode re-engages */
    IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, out));
  if (corrected) IL_CHECK(il_corr_forward(L, corr));
  if (L->diag_now) {
    il_arena_mark m = il_arena_get_mark(&L->ws);
    il_real *fs;
    IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *fs, (void **)&fs));
    IL_CHECK(il_cell_map(&L->cell, B, x, L->zstar, fs, NULL, &L->ws, NULL));
    IL_CHECK(diag_rho(L, L->zstar, fs));
    il_arena_rewind(&L->ws, m);
  }
  return IL_OK;
}

il_status il_layer_cold_start(il_layer *L, int B, const il_real *x, const unsigned char *rows, il_real *z) {
  const il_backend *be = L->be;
  const int n = L->cell.n;
  il_marks m = il_marks_get(&L->ws, &L->hws);
  unsigned char *mask;
  il_status s = il_arena_alloc_n(&L->ws, (size_t)B, 1, (void **)&mask);
  if (s == IL_OK) s = IL_BE(be, copy, IL_COPY_TO_SPACE, mask, rows, (size_t)B);
  if (s == IL_OK && L->sops->start) {
    il_real *z0;
    const il_problem p = {.cell = &L->cell, .be = be, .B = B, .x = x, .ws = &L->ws, .hws = &L->hws};
    s = il_arena_alloc_n(&L->ws, (size_t)B * n, sizeof *z0, (void **)&z0);
    if (s == IL_OK) s = L->sops->start(L->sstate, &p, z0);
    if (s == IL_OK) s = IL_BE(be, row_select, B, n, mask, 1, z0, z);
  } else if (s == IL_OK) {
    s = IL_BE(be, row_fill, B, n, mask, 1, 0, z);
  }
  il_marks_rewind(&L->ws, &L->hws, m);
  return s;
}

il_status il_layer_get_zstar(const il_layer *L, il_real *dst) {
  if (L->team) return il_layer_team_get_zstar(L, dst);
  return il_copy(L->be, dst, L->zstar, (size_t)L->B * L->cell.n);
}

/* The exact IFT gradient at the solver's z*: u = J(z*)^{-T} dout (fresh LU, stable
 * sech^2), dx += (df/dx)^T u, dW += (df/dW)^T u. Zeroed rows carry none. */
static il_status exact_ift(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  il_cell ref = L->cell;
  ref.sech2_seed = 0;
  ref.lin_dim = 0;
  const il_backend *be = L->be;
  const int B = L->B, n = ref.n;
  const size_t len = (size_t)B * n;
  il_marks m = il_marks_get(&L->ws, &L->hws);
  il_real *fs, *u;
  il_lu J;
  int *info;
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *fs, (void **)&fs));
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *u, (void **)&u));
  IL_CHECK(il_lu_alloc(be, &L->ws, B, n, &J));
  IL_CHECK(il_arena_alloc_n(&L->hws, (size_t)B, sizeof *info, (void **)&info));
  IL_CHECK(il_cell_map(&ref, B, L->prob.x, L->zstar, fs, NULL, &L->ws, NULL));
  IL_CHECK(il_copy(be, u, dout, len));
  IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, u));
  IL_CHECK(il_cell_jac_g(&ref, B, L->zstar, fs, NULL, &J, &L->ws));
  IL_CHECK(il_lu_factor(be, &J, info));
  IL_CHECK(il_lu_solve(be, 1, &J, u));
  IL_CHECK(il_cell_vjp(&ref, B, L->zstar, fs, NULL, u, NULL, dx, dW, &L->ws));
  il_marks_rewind(&L->ws, &L->hws, m);
  return IL_OK;
}

il_status il_layer_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  return il_layer_backward_corr(L, dout, NULL, dx, dW);
}

il_status il_layer_backward_corr(il_layer *L, const il_real *dout, const il_real *const *dcorr, il_real *dx,
                                 il_real *dW) {
  if (!L->train) return IL_ERR(IL_ERR_ARG, "layer backward without a training forward");
  if (L->corr_K <= 1) dcorr = NULL;
  if (L->team) return il_layer_team_backward(L, dout, dcorr, dx, dW);
  const il_backend *be = L->be;
  const size_t len = (size_t)L->B * L->cell.n, nw = L->cell.ntheta;
  L->bwd_nan_iter = -1;
  if (!L->diag_now) {
    const il_ev_scope ev = il_ev_open(be);
    IL_CHECK(L->bops->backward(L->bstate, &L->adj, dout, dx, dW, &L->bres, &L->bwd_nan_iter));
    il_ev_close(be, ev, IL_EV_BWD_SOLVE);
  } else { /* the mode's gradient into fresh buffers, compared with the exact one, then accumulated */
    il_arena_mark m = il_arena_get_mark(&L->ws);
    il_real *g, *ge; /* [dx; dW] of the mode and of the exact IFT */
    double cmp[4];
    IL_CHECK(il_arena_calloc(&L->ws, len + nw, sizeof *g, (void **)&g));
    IL_CHECK(il_arena_calloc(&L->ws, len + nw, sizeof *ge, (void **)&ge));
    const il_ev_scope ev = il_ev_open(be);
    IL_CHECK(L->bops->backward(L->bstate, &L->adj, dout, g, g + len, &L->bres, &L->bwd_nan_iter));
    il_ev_close(be, ev, IL_EV_BWD_SOLVE);
    IL_CHECK(exact_ift(L, dout, ge, ge + len));
    IL_CHECK(IL_BE(be, compare, len + nw, g, ge, cmp)); /* sync point: diagnostics */
    memcpy(L->diag_cmp, cmp, sizeof cmp);
    il_layer_grad_diag(L, cmp);
    IL_CHECK(IL_BE(be, axpby, len, 1, g, 1, dx));
    IL_CHECK(IL_BE(be, axpby, nw, 1, g + len, 1, dW));
    il_arena_rewind(&L->ws, m);
  }
  if (dcorr) { /* the correction terms after z*'s, outside the diagnostics' comparison */
    const il_ev_scope ev = il_ev_open(be);
    IL_CHECK(il_corr_backward(L, dcorr, dx, dW));
    il_ev_close(be, ev, IL_EV_BWD_SOLVE);
  }
  if (!isnan(L->bres.cond_max) && (isnan(L->diag.cond_max) || L->bres.cond_max > L->diag.cond_max))
    L->diag.cond_max = L->bres.cond_max;
  return IL_OK;
}

il_status il_layer_jac_reg(il_layer *L, int K, const il_real *eps, size_t kstride, il_real scale, il_real *dx,
                           il_real *dW, double *sq) {
  if (!L->cfg.jac_reg) return IL_ERR(IL_ERR_INTERNAL, "layer: the Jacobian regulariser was not configured (jac_reg)");
  if (!L->train) return IL_ERR(IL_ERR_ARG, "layer jac_reg without a training forward");
  if (K <= 0) return IL_ERR(IL_ERR_ARG, "layer jac_reg: K must be positive, got %d", K);
  if (L->team) return il_layer_team_jac_reg(L, K, eps, kstride, scale, dx, dW, sq);
  const il_backend *be = L->be;
  const int B = L->B, n = L->cell.n;
  const size_t len = (size_t)B * n;
  const il_ev_scope ev = il_ev_open(be);
  il_marks m = il_marks_get(&L->ws, &L->hws);
  il_real *fs, *e = NULL; /* (B, n) f(z*); a probe with the zeroed rows cleared */
  double *rows;           /* host (B) */
  int nzero = 0;
  for (int b = 0; b < B; b++) nzero += L->zeroed[b] != 0;
  IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *fs, (void **)&fs));
  if (nzero) IL_CHECK(il_arena_alloc_n(&L->ws, len, sizeof *e, (void **)&e));
  IL_CHECK(il_arena_alloc_n(&L->hws, (size_t)B, sizeof *rows, (void **)&rows));
  IL_CHECK(il_cell_map(&L->cell, B, L->prob.x, L->zstar, fs, NULL, &L->ws, NULL));
  double total = 0;
  for (int k = 0; k < K; k++) {
    const il_real *ek = eps + (size_t)k * kstride;
    if (nzero) { /* a zeroed row has no z*: it carries neither value nor gradient */
      IL_CHECK(il_copy(be, e, ek, len));
      IL_CHECK(IL_BE(be, row_fill, B, n, L->zeroed_d, 1, 0, e));
      ek = e;
    }
    IL_CHECK(L->cell.ops->jac_reg(&L->cell, B, L->zstar, fs, ek, scale, rows, dx, dW, &L->ws));
    for (int b = 0; b < B; b++) total += rows[b];
  }
  *sq = total;
  il_marks_rewind(&L->ws, &L->hws, m);
  il_ev_close(be, ev, IL_EV_JAC_REG);
  return IL_OK;
}

void il_layer_grad_diag(il_layer *L, const double cmp[4]) {
  const double dot = cmp[0], nn = cmp[1], ne = cmp[2], nd = cmp[3];
  if (!isfinite(nn) || !isfinite(ne) || (nn == 0 && ne == 0)) { /* a non-finite gradient, or nothing to compare */
    L->diag.grad_cos = L->diag.grad_relerr = NAN;
  } else { /* one of them zero: no alignment (cos 0); an exact zero makes the error infinite */
    L->diag.grad_cos = nn > 0 && ne > 0 ? dot / sqrt(nn * ne) : 0.0;
    L->diag.grad_relerr = ne > 0 ? sqrt(nd / ne) : INFINITY;
  }
}

void il_layer_set_reducer(il_layer *L, il_reducer r) {
  L->prob.reduce = r;
  if (L->team) il_layer_team_set_reducer(L, r);
}

void il_layer_destroy(il_layer *L) {
  il_layer_team_destroy(L);
  if (L->sops && L->sstate) L->sops->destroy(L->sstate);
  L->sstate = NULL;
  if (L->bops && L->bops->destroy && L->bstate) L->bops->destroy(L->bstate);
  L->bstate = NULL;
  il_arena_destroy(&L->saved);
  il_arena_destroy(&L->hsaved);
  il_arena_destroy(&L->ws);
  il_arena_destroy(&L->hws);
  free(L->trace_mem);
  L->trace_mem = NULL;
}
