/* core/solvers/solver_registry.c: forward solvers by name. Add one line per new solver. */
#include "il_registry.h"
#include "il_solver.h"

static const void *const registry[] = {
    &il_solver_fp_ops,
    &il_solver_newton_ops,
    &il_solver_newton_ls_ops,
    &il_solver_anderson_ops,
    &il_solver_broyden_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const il_solver_ops *il_solver_find(const char *name) { return il_registry_find(registry, NREG, name); }

const il_solver_ops *il_solver_at(int i) { return i >= 0 && (size_t)i < NREG ? registry[i] : NULL; }

const char *il_solver_names(void) {
  static char buf[256];
  return il_registry_names(registry, NREG, buf, sizeof buf);
}
