/* bench/sweep_points.c: see sweep_points.h. */
#include "sweep_points.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enumeration order (solver outermost, seed fastest) and the run-id prefix of each key. */
const char *const il_sweep_keys[] = {"solver", "backward", "tol", "hidden", "max-iter", "batch", "seed"};
const int il_sweep_nkeys = (int)(sizeof il_sweep_keys / sizeof il_sweep_keys[0]);
static const char *const key_prefix[] = {"", "", "tol", "h", "it", "b", "s"};
static const int key_numeric[] = {0, 0, 1, 1, 1, 1, 1};

_Static_assert(sizeof il_sweep_keys / sizeof il_sweep_keys[0] <= IL_SWEEP_MAX_AXES, "axes[] too small");
_Static_assert(sizeof key_prefix / sizeof key_prefix[0] == sizeof il_sweep_keys / sizeof il_sweep_keys[0],
               "one prefix per key");
_Static_assert(IL_SWEEP_MAX_POINTS * IL_SWEEP_MAX_VALUES <= 2147483647L, "npoints check must not overflow long");

static int key_rank(const char *key) {
  if (!key) return -1;
  for (int k = 0; k < il_sweep_nkeys; k++)
    if (strcmp(il_sweep_keys[k], key) == 0) return k;
  return -1;
}

void il_sweep_init(il_sweep *s) {
  memset(s, 0, sizeof *s);
  s->npoints = 1;
}

/* Whole string is a finite number (strtod syntax). */
static int parse_number(const char *str, double *out) {
  char *end;
  double v = strtod(str, &end);
  if (end == str || *end != '\0' || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

static il_status split_list(const char *key, int numeric, const char *list, il_sweep_axis *ax) {
  if (list[0] == '\0') return IL_ERR(IL_ERR_ARG, "--%s: empty list (give one or more comma-separated values)", key);
  const char *p = list;
  int pos = 1;
  while (1) {
    const char *c = strchr(p, ',');
    size_t len = c ? (size_t)(c - p) : strlen(p);
    if (len == 0)
      return IL_ERR(IL_ERR_ARG, "--%s: empty item (item %d) in list '%s'", key, pos, list);
    if (ax->n >= IL_SWEEP_MAX_VALUES)
      return IL_ERR(IL_ERR_ARG, "--%s: too many values: item %d '%.*s' is past the limit of %d in list '%s'", key,
                    pos, (int)(len < 63 ? len : 63), p, IL_SWEEP_MAX_VALUES, list);
    if (len >= IL_SWEEP_VALUE_LEN)
      return IL_ERR(IL_ERR_ARG, "--%s: item %d '%.40s...' is longer than %d characters", key, pos, p,
                    IL_SWEEP_VALUE_LEN - 1);
    for (size_t j = 0; j < len; j++)
      if (isspace((unsigned char)p[j]))
        return IL_ERR(IL_ERR_ARG, "--%s: item %d '%.*s' contains whitespace (write the list as 'a,b,c')", key,
                      pos, (int)len, p);
    char *v = ax->values[ax->n];
    memcpy(v, p, len);
    v[len] = '\0';
    double x = 0, y = 0;
    int vnum = numeric && parse_number(v, &x);
    for (int j = 0; j < ax->n; j++) {
      const char *w = ax->values[j];
      if (strcmp(v, w) == 0)
        return IL_ERR(IL_ERR_ARG, "--%s: duplicate value '%s' (item %d) in list '%s'", key, v, pos, list);
      if (vnum && parse_number(w, &y) && x == y)
        return IL_ERR(IL_ERR_ARG, "--%s: duplicate value '%s' (item %d, same number as item %d '%s') in list '%s'",
                      key, v, pos, j + 1, w, list);
    }
    ax->n++;
    if (!c) break;
    p = c + 1;
    pos++;
  }
  return IL_OK;
}

il_status il_sweep_add_axis(il_sweep *s, const char *key, const char *list) {
  if (!s) return IL_ERR(IL_ERR_ARG, "il_sweep_add_axis: NULL sweep");
  int rank = key_rank(key);
  if (rank < 0) {
    char valid[128] = "";
    for (int k = 0; k < il_sweep_nkeys; k++) {
      size_t used = strlen(valid);
      snprintf(valid + used, sizeof valid - used, "%s--%s", k ? " " : "", il_sweep_keys[k]);
    }
    return IL_ERR(IL_ERR_ARG, "--%s cannot be swept (sweepable: %s)", key ? key : "(null)", valid);
  }
  key = il_sweep_keys[rank]; /* static storage from here on */
  if (!list) return IL_ERR(IL_ERR_ARG, "--%s: no value list", key);
  if (s->naxes < 0 || s->naxes >= IL_SWEEP_MAX_AXES)
    return IL_ERR(IL_ERR_ARG, "--%s: sweep is full or not initialised (%d axes)", key, s->naxes);
  int at = s->naxes; /* insertion point that keeps enumeration order */
  for (int k = 0; k < s->naxes; k++) {
    int r = key_rank(s->axes[k].key);
    if (r == rank) return IL_ERR(IL_ERR_ARG, "--%s given twice in the sweep", key);
    if (r > rank && at == s->naxes) at = k;
  }

  /* Parse into a scratch axis so that *s is untouched on error. */
  il_sweep_axis ax = {.key = key, .n = 0};
  IL_CHECK(split_list(key, key_numeric[rank], list, &ax));

  long np = 1;
  for (int k = 0; k < s->naxes; k++) np *= s->axes[k].n; /* <= IL_SWEEP_MAX_POINTS, checked on each add */
  if (np > IL_SWEEP_MAX_POINTS / ax.n)
    return IL_ERR(IL_ERR_ARG,
                  "--%s: %d values make the sweep %ld x %d = %lld points, above the limit of %ld; "
                  "split it into several sweeps",
                  key, ax.n, np, ax.n, (long long)np * ax.n, IL_SWEEP_MAX_POINTS);

  memmove(&s->axes[at + 1], &s->axes[at], (size_t)(s->naxes - at) * sizeof s->axes[0]);
  s->axes[at] = ax;
  s->naxes++;
  s->npoints = np * ax.n;
  return IL_OK;
}

/* Index into axis k of point i (caller checked the range). */
static int axis_index(const il_sweep *s, long i, int k) {
  long stride = 1;
  for (int j = s->naxes - 1; j > k; j--) stride *= s->axes[j].n;
  return (int)((i / stride) % s->axes[k].n);
}

static int point_ok(const il_sweep *s, long i) {
  return s && s->naxes >= 0 && s->naxes <= IL_SWEEP_MAX_AXES && i >= 0 && i < s->npoints;
}

const char *il_sweep_value(const il_sweep *s, long i, const char *key) {
  if (!point_ok(s, i) || !key) return NULL;
  for (int k = 0; k < s->naxes; k++)
    if (strcmp(s->axes[k].key, key) == 0) return s->axes[k].values[axis_index(s, i, k)];
  return NULL;
}

il_status il_sweep_check_slice(long index, long count) {
  if (count < 1) return IL_ERR(IL_ERR_ARG, "array task count must be >= 1, got %ld", count);
  if (index < 0 || index >= count)
    return IL_ERR(IL_ERR_ARG, "array task index must be in 0..%ld (count %ld), got %ld", count - 1, count, index);
  return IL_OK;
}

int il_sweep_in_slice(long i, long index, long count) {
  if (count < 1 || index < 0 || index >= count || i < 0) return 0;
  return i % count == index;
}

long il_sweep_slice_size(long npoints, long index, long count) {
  if (count < 1 || index < 0 || index >= count || npoints <= index) return 0;
  return (npoints - 1 - index) / count + 1;
}

/* Append str to buf (snprintf-like: never overflows, always terminated). */
static void put(char *buf, size_t cap, size_t *len, const char *str, int sanitise) {
  for (; *str; str++) {
    char c = *str;
    if (sanitise && !(isalnum((unsigned char)c) || c == '.' || c == '+' || c == '-')) c = '-';
    if (*len + 1 < cap) buf[(*len)++] = c;
  }
  buf[*len < cap ? *len : cap - 1] = '\0';
}

void il_sweep_run_id(const il_sweep *s, long i, char *buf, size_t cap) {
  if (!buf || cap == 0) return;
  buf[0] = '\0';
  if (!point_ok(s, i)) return;
  int width = 1;
  for (long m = s->npoints - 1; m >= 10; m /= 10) width++;
  if (width < 4) width = 4;
  if (width > 20) width = 20; /* unreachable (npoints <= 1e6); bounds the snprintf below */
  char num[32];
  snprintf(num, sizeof num, "p%0*ld", width, i);
  size_t len = 0;
  put(buf, cap, &len, num, 0);
  for (int k = 0; k < s->naxes; k++) {
    int r = key_rank(s->axes[k].key);
    put(buf, cap, &len, "-", 0);
    put(buf, cap, &len, r >= 0 ? key_prefix[r] : "", 0);
    put(buf, cap, &len, s->axes[k].values[axis_index(s, i, k)], 1);
  }
}
