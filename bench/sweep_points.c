/* bench/sweep_points.c: see sweep_points.h. */
#include "sweep_points.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Enumeration order of the fixed keys (solver outermost, seed fastest) and the run-id prefix of each.
 * Option axes sit between backward (rank 1) and tol (rank 2). */
const char *const il_sweep_keys[] = {"solver", "backward", "tol", "hidden", "max-iter", "batch", "grid", "seed"};
const int il_sweep_nkeys = (int)(sizeof il_sweep_keys / sizeof il_sweep_keys[0]);
static const char *const key_prefix[] = {"", "", "tol", "h", "it", "b", "g", "s"};
static const int key_numeric[] = {0, 0, 1, 1, 1, 1, 0, 1}; /* grid: "PRxPC" */
#define NFIXED ((int)(sizeof il_sweep_keys / sizeof il_sweep_keys[0]))

_Static_assert(sizeof il_sweep_keys / sizeof il_sweep_keys[0] + IL_SWEEP_MAX_OPTION_AXES <= IL_SWEEP_MAX_AXES,
               "axes[] too small");
_Static_assert(IL_SWEEP_MAX_AXES <= 32, "pair_mask has one bit per axis");
_Static_assert(sizeof key_prefix / sizeof key_prefix[0] == sizeof il_sweep_keys / sizeof il_sweep_keys[0],
               "one prefix per key");
_Static_assert(IL_SWEEP_MAX_POINTS * IL_SWEEP_MAX_VALUES <= 2147483647L, "npoints check must not overflow long");
_Static_assert(8 + IL_SWEEP_MAX_AXES * (1 + IL_SWEEP_KEY_LEN + IL_SWEEP_VALUE_LEN) <= IL_SWEEP_RUN_ID_MAX,
               "IL_SWEEP_RUN_ID_MAX holds the longest run id");

static int key_rank(const char *key) {
  if (!key) return -1;
  for (int k = 0; k < il_sweep_nkeys; k++)
    if (strcmp(il_sweep_keys[k], key) == 0) return k;
  return -1;
}

/* Total order of axes: solver, backward, options by name, then the other fixed keys. */
static int axis_before(const il_sweep_axis *a, const il_sweep_axis *b) {
  if (a->option && b->option) return strcmp(a->key, b->key) < 0;
  double ra = a->option ? 1.5 : key_rank(a->key), rb = b->option ? 1.5 : key_rank(b->key);
  return ra < rb;
}

static int find_axis(const il_sweep *s, const char *key) {
  for (int k = 0; k < s->naxes; k++)
    if (strcmp(s->axes[k].key, key) == 0) return k;
  return -1;
}

/* Group the points by (solver, backward) pair and count each pair's points. */
static void layout(il_sweep *s) {
  const int ks = find_axis(s, "solver"), kb = find_axis(s, "backward");
  const int ns = ks >= 0 ? s->axes[ks].n : 1, nb = kb >= 0 ? s->axes[kb].n : 1;
  long base = 1;
  for (int k = 0; k < s->naxes; k++)
    if (k != ks && k != kb && !s->axes[k].option) base *= s->axes[k].n;
  s->npairs = ns * nb;
  s->pair_start[0] = 0;
  for (int p = 0; p < s->npairs; p++) {
    const char *sv = ks >= 0 ? s->axes[ks].values[p / nb] : NULL;
    const char *bv = kb >= 0 ? s->axes[kb].values[p % nb] : NULL;
    uint32_t mask = 0;
    long cnt = base;
    for (int k = 0; k < s->naxes; k++) {
      if (!s->axes[k].option) continue;
      if (s->applies && !s->applies(s->applies_ctx, s->axes[k].key, sv, bv)) continue;
      mask |= (uint32_t)1 << k;
      cnt *= s->axes[k].n;
    }
    s->pair_mask[p] = mask;
    s->pair_start[p + 1] = s->pair_start[p] + cnt;
  }
  s->npoints = s->pair_start[s->npairs];
}

void il_sweep_init(il_sweep *s) {
  memset(s, 0, sizeof *s);
  layout(s);
}

void il_sweep_set_applies(il_sweep *s, il_sweep_applies_fn applies, void *ctx) {
  if (!s) return;
  s->applies = applies;
  s->applies_ctx = ctx;
  layout(s);
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

/* Common part of both adds: key already checked and copied into the scratch axis *ax. */
static il_status add(il_sweep *s, il_sweep_axis *ax, int numeric, const char *list) {
  const char *key = ax->key;
  if (!list) return IL_ERR(IL_ERR_ARG, "--%s: no value list", key);
  if (s->naxes < 0 || s->naxes >= IL_SWEEP_MAX_AXES)
    return IL_ERR(IL_ERR_ARG, "--%s: sweep is full or not initialised (%d axes)", key, s->naxes);
  if (find_axis(s, key) >= 0) return IL_ERR(IL_ERR_ARG, "--%s given twice in the sweep", key);
  if (ax->option) {
    int nopt = 0;
    for (int k = 0; k < s->naxes; k++) nopt += s->axes[k].option;
    if (nopt >= IL_SWEEP_MAX_OPTION_AXES)
      return IL_ERR(IL_ERR_ARG, "--%s: more than %d options swept at once", key, IL_SWEEP_MAX_OPTION_AXES);
  }
  int at = s->naxes; /* insertion point that keeps enumeration order */
  for (int k = 0; k < s->naxes && at == s->naxes; k++)
    if (axis_before(ax, &s->axes[k])) at = k;

  /* Parse into the scratch axis so that *s is untouched on error. */
  IL_CHECK(split_list(key, numeric, list, ax));

  long np = 1; /* the full product, every option axis applying */
  for (int k = 0; k < s->naxes; k++) np *= s->axes[k].n; /* <= IL_SWEEP_MAX_POINTS, checked on each add */
  if (np > IL_SWEEP_MAX_POINTS / ax->n)
    return IL_ERR(IL_ERR_ARG,
                  "--%s: %d values make the sweep %ld x %d = %lld points, above the limit of %ld; "
                  "split it into several sweeps",
                  key, ax->n, np, ax->n, (long long)np * ax->n, IL_SWEEP_MAX_POINTS);

  memmove(&s->axes[at + 1], &s->axes[at], (size_t)(s->naxes - at) * sizeof s->axes[0]);
  s->axes[at] = *ax;
  s->naxes++;
  layout(s);
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
    return IL_ERR(IL_ERR_ARG, "--%s cannot be swept (sweepable: %s, and the solvers' and backward modes' options)",
                  key ? key : "(null)", valid);
  }
  il_sweep_axis ax = {.n = 0};
  snprintf(ax.key, sizeof ax.key, "%s", il_sweep_keys[rank]);
  return add(s, &ax, key_numeric[rank], list);
}

il_status il_sweep_add_option_axis(il_sweep *s, const char *key, const char *list) {
  if (!s) return IL_ERR(IL_ERR_ARG, "il_sweep_add_option_axis: NULL sweep");
  if (!key || !key[0]) return IL_ERR(IL_ERR_ARG, "sweep option: empty or NULL key");
  if (strlen(key) >= IL_SWEEP_KEY_LEN)
    return IL_ERR(IL_ERR_ARG, "--%.40s...: option key longer than %d characters", key, IL_SWEEP_KEY_LEN - 1);
  for (const char *c = key; *c; c++)
    if (!isalnum((unsigned char)*c) && *c != '-')
      return IL_ERR(IL_ERR_ARG, "--%s: option key has a character outside [A-Za-z0-9-]", key);
  if (key_rank(key) >= 0) return IL_ERR(IL_ERR_ARG, "--%s is a fixed sweep key, not an option", key);
  il_sweep_axis ax = {.option = 1};
  snprintf(ax.key, sizeof ax.key, "%s", key);
  return add(s, &ax, 1, list);
}

static int point_ok(const il_sweep *s, long i) {
  return s && s->naxes >= 0 && s->naxes <= IL_SWEEP_MAX_AXES && s->npairs >= 1 &&
         s->npairs <= IL_SWEEP_MAX_VALUES * IL_SWEEP_MAX_VALUES && i >= 0 && i < s->npoints;
}

/* Every axis' value index at point i (caller checked the range); -1 where an option does not apply. */
static void decode(const il_sweep *s, long i, int idx[IL_SWEEP_MAX_AXES]) {
  const int ks = find_axis(s, "solver"), kb = find_axis(s, "backward");
  const int nb = kb >= 0 ? s->axes[kb].n : 1;
  int lo = 0, hi = s->npairs - 1; /* the pair p with pair_start[p] <= i < pair_start[p+1] */
  while (lo < hi) {
    int mid = (lo + hi + 1) / 2;
    if (s->pair_start[mid] <= i) lo = mid;
    else hi = mid - 1;
  }
  const int p = lo;
  long j = i - s->pair_start[p];
  for (int k = s->naxes - 1; k >= 0; k--) {
    if (k == ks) idx[k] = p / nb;
    else if (k == kb) idx[k] = p % nb;
    else if (s->axes[k].option && !(s->pair_mask[p] >> k & 1)) idx[k] = -1;
    else {
      idx[k] = (int)(j % s->axes[k].n);
      j /= s->axes[k].n;
    }
  }
}

int il_sweep_value_index(const il_sweep *s, long i, int axis) {
  if (!point_ok(s, i) || axis < 0 || axis >= s->naxes) return -1;
  int idx[IL_SWEEP_MAX_AXES];
  decode(s, i, idx);
  return idx[axis];
}

const char *il_sweep_value(const il_sweep *s, long i, const char *key) {
  if (!point_ok(s, i) || !key) return NULL;
  int k = find_axis(s, key);
  if (k < 0) return NULL;
  int v = il_sweep_value_index(s, i, k);
  return v >= 0 ? s->axes[k].values[v] : NULL;
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
  int idx[IL_SWEEP_MAX_AXES];
  decode(s, i, idx);
  for (int k = 0; k < s->naxes; k++) {
    if (idx[k] < 0) continue; /* an option this point's solver and backward do not take */
    put(buf, cap, &len, "-", 0);
    if (s->axes[k].option) {
      put(buf, cap, &len, s->axes[k].key, 0);
      put(buf, cap, &len, "_", 0);
    } else {
      int r = key_rank(s->axes[k].key);
      put(buf, cap, &len, r >= 0 ? key_prefix[r] : "", 0);
    }
    put(buf, cap, &len, s->axes[k].values[idx[k]], 1);
  }
}
