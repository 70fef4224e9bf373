/* core/backward/backward_registry.c: backward modes by name. Add one line per new mode. */
#include <string.h>

#include "il_layer.h"

static const il_backward_ops *const registry[] = {
    &il_backward_unroll_ops,
    &il_backward_implicit_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const il_backward_ops *il_backward_find(const char *name) {
  for (size_t i = 0; i < NREG; i++)
    if (strcmp(registry[i]->name, name) == 0) return registry[i];
  return NULL;
}

const char *il_backward_names(void) {
  static char buf[256];
  if (buf[0]) return buf;
  for (size_t i = 0; i < NREG; i++) {
    if (i) strcat(buf, ", ");
    strcat(buf, registry[i]->name);
  }
  return buf;
}
