/* core/backward/backward_registry.c: backward modes by name. Add one line per new mode. */
#include "il_layer.h"
#include "il_registry.h"

#include <stdio.h>
#include <string.h>

static const void *const registry[] = {
    &il_backward_unroll_ops,
    &il_backward_implicit_ops,
    &il_backward_phantom_ops,
    &il_backward_jfb_ops,
};
#define NREG (sizeof registry / sizeof registry[0])

const il_backward_ops *il_backward_find(const char *name) {
  if (!name) return NULL;
  char base[48];
  const char *colon = strchr(name, ':'); /* "phantom:5" */
  if (colon) {
    if ((size_t)(colon - name) >= sizeof base) return NULL;
    snprintf(base, sizeof base, "%.*s", (int)(colon - name), name);
    name = base;
  }
  return il_registry_find(registry, NREG, name);
}

const il_backward_ops *il_backward_at(int i) { return i >= 0 && (size_t)i < NREG ? registry[i] : NULL; }

const char *il_backward_names(void) {
  static char buf[256];
  return il_registry_names(registry, NREG, buf, sizeof buf);
}
