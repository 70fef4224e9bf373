/* core/il_layer.c: glue of cell, solver and backward mode for one batch. */
#include "il_layer.h"

#include <stdio.h>
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
    return IL_ERR(IL_ERR_UNSUPPORTED, "backward '%s' is not supported with solver '%s'", L->bops->name,
                  L->sops->name);
  if (!(cfg->tol > 0)) return IL_ERR(IL_ERR_ARG, "tolerance must be positive, got %g", cfg->tol);
  L->cfg = *cfg;
  if (L->cfg.max_iter <= 0) L->cfg.max_iter = L->sops->default_max_iter;
  if (L->cfg.adjoint_refine == 0) L->cfg.adjoint_refine = 3;
  if (L->cfg.adjoint_refine < 0) L->cfg.adjoint_refine = 0;
  if (cfg->zero_nonconverged < IL_ZERO_AUTO || cfg->zero_nonconverged > IL_ZERO_NO)
    return IL_ERR(IL_ERR_ARG, "zero_nonconverged must be auto, yes or no");
  L->zero_rows = cfg->zero_nonconverged == IL_ZERO_AUTO
                     ? (strcmp(L->sops->name, "newton") == 0) /* the seed's Newton rule, see il_layer.h */
                     : cfg->zero_nonconverged == IL_ZERO_YES;
  IL_CHECK(il_cell_tanh_init(&L->cell, be, n, W));
  /* big blocks keep consecutive tape entries contiguous (fp unroll batches its theta GEMMs) */
  IL_CHECK(il_arena_init(&L->saved, IL_MEM_SAVED, stats, (size_t)8 << 20));
  IL_CHECK(il_arena_init(&L->ws, IL_MEM_WORKSPACE, stats, (size_t)1 << 20));
  il_status s = L->sops->create(cfg->opts, &L->sstate);
  if (s != IL_OK) return il_error_trace(s, __FILE__, __LINE__);
  char ctx[96];
  snprintf(ctx, sizeof ctx, "solver %s / backward %s", L->sops->name, L->bops->name);
  s = il_options_check_all_used(cfg->opts, ctx);
  if (s != IL_OK) {
    il_layer_destroy(L);
    return il_error_trace(s, __FILE__, __LINE__);
  }
  return IL_OK;
}

il_status il_layer_forward(il_layer *L, int B, const il_real *x, il_real *out, int train) {
  const int n = L->cell.n;
  const size_t len = (size_t)B * n;
  if (B <= 0) return IL_ERR(IL_ERR_ARG, "layer forward: batch must be positive, got %d", B);
  il_arena_reset(&L->saved);
  L->B = B;
  L->train = train;
  L->prob = (il_problem){.cell = &L->cell, .B = B, .x = x, .tol = L->cfg.tol, .max_iter = L->cfg.max_iter,
                         .ws = &L->ws, .saved = (train && L->bops->needs_tape) ? &L->saved : NULL,
                         .keep = (train && L->bops->keeps_lu) ? &L->saved : NULL, .reduce = L->prob.reduce,
                         .per_sample = L->cfg.stop_per_sample};
  IL_CHECK(il_arena_calloc(&L->saved, len, sizeof *L->zstar, (void **)&L->zstar));
  IL_CHECK(il_arena_calloc(&L->saved, (size_t)B, sizeof *L->row_res, (void **)&L->row_res));
  IL_CHECK(il_arena_calloc(&L->saved, (size_t)B, sizeof *L->zeroed, (void **)&L->zeroed));
  IL_CHECK(L->sops->solve(L->sstate, &L->prob, L->zstar, L->row_res, &L->fres));
  if (L->zero_rows) {
    for (int b = 0; b < B; b++)
      if (!(L->row_res[b] <= L->cfg.tol)) {
        L->zeroed[b] = 1;
        memset(L->zstar + (size_t)b * n, 0, (size_t)n * sizeof *L->zstar);
      }
  }
  IL_CHECK(L->bops->finish_forward(L, L->zstar, out));
  if (L->zero_rows) /* a zeroed row is a constant 0 output, whatever the mode re-engages */
    for (int b = 0; b < B; b++)
      if (L->zeroed[b]) memset(out + (size_t)b * n, 0, (size_t)n * sizeof *out);
  return IL_OK;
}

il_status il_layer_backward(il_layer *L, const il_real *dout, il_real *dx, il_real *dW) {
  if (!L->train) return IL_ERR(IL_ERR_ARG, "layer backward without a training forward");
  IL_CHECK(L->bops->backward(L, dout, dx, dW));
  return IL_OK;
}

void il_layer_set_reducer(il_layer *L, il_reducer r) { L->prob.reduce = r; }

void il_layer_destroy(il_layer *L) {
  if (L->sops && L->sstate) L->sops->destroy(L->sstate);
  L->sstate = NULL;
  il_arena_destroy(&L->saved);
  il_arena_destroy(&L->ws);
}
