/* core/solvers/solver_registry.c: forward solvers by name. Add one line per new solver. */
#include <string.h>

#include "il_solver.h"

static const il_solver_ops *const registry[] = {
    &il_solver_fp_ops,
    &il_solver_newton_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const il_solver_ops *il_solver_find(const char *name) {
  for (size_t i = 0; i < NREG; i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

const char *il_solver_names(void) {
  static char buf[256];
  if (buf[0]) return buf;
  for (size_t i = 0; i < NREG; i++) {
    if (i) strcat(buf, ", ");
    strcat(buf, registry[i]->name);
  }
  return buf;
}
