/* core/cells/cell_registry.c: cells by name. Add one line per new cell. */
#include "il_cell.h"
#include "il_registry.h"

static const void *const registry[] = {
    &il_cell_tanh_ops,
    &il_cell_relu_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const il_cell_ops *il_cell_find(const char *name) { return il_registry_find(registry, NREG, name); }

const il_cell_ops *il_cell_at(int i) { return i >= 0 && (size_t)i < NREG ? registry[i] : NULL; }

const char *il_cell_names(void) {
  static char buf[256];
  return il_registry_names(registry, NREG, buf, sizeof buf);
}

il_status il_cell_init(il_cell *c, const char *name, const il_backend *be, int n, const il_real *theta,
                       const il_cell_config *cc) {
  const il_cell_ops *ops = il_cell_find(name ? name : "tanh");
  if (!ops) return IL_ERR(IL_ERR_ARG, "unknown cell '%s' (valid: %s)", name, il_cell_names());
  if (n <= 0) return IL_ERR(IL_ERR_ARG, "%s cell: n must be positive, got %d", ops->name, n);
  *c = (il_cell){.ops = ops, .be = be, .n = n, .theta = theta, .ntheta = ops->ntheta(n)};
  return ops->setup(c, cc);
}
