/* core/il_options.c: key=value options with strict parsing. */
#include "il_options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void il_options_init(il_options *o) { memset(o, 0, sizeof *o); }

const il_option_decl *il_option_decl_find(const il_option_decl *decls, const char *key) {
  if (!decls || !key) return NULL;
  for (; decls->key; decls++)
    if (strcmp(decls->key, key) == 0) return decls;
  return NULL;
}

il_status il_options_set(il_options *o, const char *key, const char *value) {
  if (strlen(key) >= sizeof o->items[0].key || strlen(value) >= sizeof o->items[0].value)
    return IL_ERR(IL_ERR_ARG, "option '%s': key or value too long", key);
  for (int i = 0; i < o->count; i++)
    if (strcmp(o->items[i].key, key) == 0) {
      snprintf(o->items[i].value, sizeof o->items[i].value, "%s", value);
      return IL_OK;
    }
  if (o->count == IL_OPTIONS_MAX) return IL_ERR(IL_ERR_ARG, "too many options (max %d)", IL_OPTIONS_MAX);
  il_option *it = &o->items[o->count++];
  snprintf(it->key, sizeof it->key, "%s", key);
  snprintf(it->value, sizeof it->value, "%s", value);
  it->used = 0;
  return IL_OK;
}

static il_option *find(il_options *o, const char *key) {
  if (!o) return NULL;
  for (int i = 0; i < o->count; i++)
    if (strcmp(o->items[i].key, key) == 0) return &o->items[i];
  return NULL;
}

il_status il_parse_double(const char *s, const char *what, double *out) {
  char *end;
  errno = 0;
  double v = strtod(s, &end);
  if (s[0] == '\0' || *end != '\0' || errno == ERANGE || !isfinite(v))
    return IL_ERR(IL_ERR_ARG, "%s: '%s' is not a finite number", what, s);
  *out = v;
  return IL_OK;
}

il_status il_parse_int(const char *s, const char *what, long lo, long hi, long *out) {
  char *end;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (s[0] == '\0' || *end != '\0' || errno == ERANGE)
    return IL_ERR(IL_ERR_ARG, "%s: '%s' is not an integer", what, s);
  if (v < lo || v > hi) return IL_ERR(IL_ERR_ARG, "%s: %ld is out of range [%ld, %ld]", what, v, lo, hi);
  *out = v;
  return IL_OK;
}

il_status il_options_get_int(il_options *o, const char *key, int def, int lo, int hi, int *out) {
  il_option *it = find(o, key);
  if (!it) { *out = def; return IL_OK; }
  it->used = 1;
  long v;
  char what[64];
  snprintf(what, sizeof what, "option %s", key);
  IL_CHECK(il_parse_int(it->value, what, lo, hi, &v));
  *out = (int)v;
  return IL_OK;
}

il_status il_options_get_double(il_options *o, const char *key, double def, double lo, double hi, double *out) {
  il_option *it = find(o, key);
  if (!it) { *out = def; return IL_OK; }
  it->used = 1;
  char what[64];
  snprintf(what, sizeof what, "option %s", key);
  IL_CHECK(il_parse_double(it->value, what, out));
  if (*out < lo || *out > hi) return IL_ERR(IL_ERR_ARG, "option %s: %g is out of range [%g, %g]", key, *out, lo, hi);
  return IL_OK;
}

il_status il_options_check_all_used(const il_options *o, const char *context) {
  if (!o) return IL_OK;
  for (int i = 0; i < o->count; i++)
    if (!o->items[i].used)
      return IL_ERR(IL_ERR_ARG, "option '%s' is not used by %s (misspelled, or meant for another solver or backward mode)",
                    o->items[i].key, context);
  return IL_OK;
}

il_status il_options_get_choice(il_options *o, const char *key, const char *def, const char *choices,
                                const char **out) {
  il_option *it = find(o, key);
  if (!it) { *out = def; return IL_OK; }
  it->used = 1;
  const size_t len = strlen(it->value);
  for (const char *c = choices; *c;) {
    const char *bar = strchr(c, '|');
    const size_t clen = bar ? (size_t)(bar - c) : strlen(c);
    if (clen == len && strncmp(c, it->value, len) == 0) { *out = it->value; return IL_OK; }
    if (!bar) break;
    c = bar + 1;
  }
  return IL_ERR(IL_ERR_ARG, "option %s: '%s' is not one of %s", key, it->value, choices);
}
