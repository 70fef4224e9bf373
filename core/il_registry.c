/* core/il_registry.c: see il_registry.h. */
#include "il_registry.h"

#include <stdio.h>
#include <string.h>

static const char *entry_name(const void *e) { return *(const char *const *)e; }

const void *il_registry_find(const void *const *entries, size_t n, const char *name) {
  if (!name) return NULL;
  for (size_t i = 0; i < n; i++)
    if (strcmp(entry_name(entries[i]), name) == 0) return entries[i];
  return NULL;
}

const char *il_registry_names(const void *const *entries, size_t n, char *buf, size_t cap) {
  size_t used = 0;
  if (cap) buf[0] = '\0';
  for (size_t i = 0; i < n && used < cap; i++) {
    int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", entry_name(entries[i]));
    if (w < 0) break;
    used += (size_t)w;
  }
  return buf;
}
