/* core/solvers/solver_corr_points.c: the checked iterates a training solve keeps for
 * fixed-point correction (il_corr_points in il_solver.h). After the offers of checks
 * 1..J the kept set holds exactly c_s, c_2s, ..., c_{floor(J/s) s}, with s the
 * smallest power of two such that floor(J/s) <= cap: a longer solve only
 * thins the grid, it never takes more memory. */
#include "il_solver.h"

il_status il_corr_points_begin(il_corr_points *t, int cap, il_arena *arena, il_arena *harena) {
  if (cap < 2) return IL_ERR(IL_ERR_ARG, "correction points: %d slots (at least 2)", cap);
  *t = (il_corr_points){.cap = cap, .stride = 1, .arena = arena};
  IL_CHECK(il_arena_calloc(harena, (size_t)cap, sizeof *t->z, (void **)&t->z));
  IL_CHECK(il_arena_calloc(harena, (size_t)cap, sizeof *t->spare, (void **)&t->spare));
  return IL_OK;
}

il_status il_corr_points_offer(il_corr_points *t, const il_problem *p, const il_real *z) {
  const int j = t->checks;
  if (j < 1 || j % t->stride) return IL_OK;
  if (t->count == t->cap) { /* full: keep the even multiples, c_2s, c_4s, ..., and free the rest */
    int kept = 0;
    for (int i = 0; i < t->count; i++) {
      if ((i + 1) % 2 == 0) t->z[kept++] = t->z[i];
      else t->spare[t->nspare++] = t->z[i];
    }
    t->count = kept;
    t->stride *= 2;
    if (j % t->stride) return IL_OK;
  }
  il_real *slot;
  const size_t len = (size_t)p->B * p->cell->n;
  if (t->nspare) slot = t->spare[--t->nspare];
  else IL_CHECK(il_arena_alloc_n(t->arena, len, sizeof *slot, (void **)&slot));
  IL_CHECK(il_copy(p->be, slot, z, len));
  t->z[t->count++] = slot;
  return IL_OK;
}

const il_real *il_corr_points_at(const il_corr_points *t, int j) {
  if (j < 1 || j % t->stride || j / t->stride > t->count) return NULL;
  return t->z[j / t->stride - 1];
}
