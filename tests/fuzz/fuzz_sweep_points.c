/* tests/fuzz/fuzz_sweep_points.c: libFuzzer target for the sweep-list parser and point
 * enumeration (bench/sweep_points.c).
 *
 * Input: lines. "KEY=LIST" adds an axis with il_sweep_add_axis; "@KEY=LIST" adds an option
 * axis with il_sweep_add_option_axis; a line "!" toggles an `applies` predicate (a fixed hash
 * of key, solver and backward, so that option axes multiply only some (solver, backward)
 * pairs). A first line "Z" starts from a zeroed struct instead of il_sweep_init. E.g.
 *   solver=fp,newton
 *   @anderson-m=4,6
 *   !
 * Properties checked, from the contract in sweep_points.h, besides "no crash, no sanitizer
 * report":
 *   - a failed add leaves the sweep byte-for-byte unchanged and records a message;
 *   - npoints equals the count derived independently from the axes and the predicate, and
 *     never exceeds IL_SWEEP_MAX_POINTS;
 *   - solver and backward come first, option axes next in strcmp order, then the other fixed
 *     keys in il_sweep_keys order;
 *   - enumeration: every index decodes to in-range value indices (-1 only for an option that
 *     does not apply, exactly when the predicate says so), il_sweep_value agrees, and
 *     consecutive points are strictly increasing in lexicographic order (so all distinct);
 *   - run ids start with "p", fit IL_SWEEP_RUN_ID_MAX, and a truncated id is a prefix of the
 *     full one; out-of-range indices give "" and NULL;
 *   - job-array slices partition the points. */
#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "il_status.h"
#include "sweep_points.h"

static uint32_t fnv(const char *s) {
  uint32_t h = 2166136261u;
  if (!s) return 7;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 16777619u;
  return h;
}

static int applies(void *ctx, const char *key, const char *solver, const char *backward) {
  (void)ctx;
  return (fnv(key) ^ (fnv(solver) * 3u) ^ (fnv(backward) * 5u)) % 4u != 0;
}

static int find(const il_sweep *s, const char *key) {
  for (int k = 0; k < s->naxes; k++)
    if (strcmp(s->axes[k].key, key) == 0) return k;
  return -1;
}

static int fixed_rank(const char *key) {
  for (int k = 0; k < il_sweep_nkeys; k++)
    if (strcmp(il_sweep_keys[k], key) == 0) return k;
  return -1;
}

/* Rank for the documented enumeration order: solver 0, backward 1, options 1.5, others 2.. */
static double order_rank(const il_sweep_axis *a) { return a->option ? 1.5 : fixed_rank(a->key); }

static long expected_points(const il_sweep *s, int use_pred) {
  const int ks = find(s, "solver"), kb = find(s, "backward");
  const int ns = ks >= 0 ? s->axes[ks].n : 1, nb = kb >= 0 ? s->axes[kb].n : 1;
  long total = 0;
  for (int si = 0; si < ns; si++)
    for (int bi = 0; bi < nb; bi++) {
      const char *sv = ks >= 0 ? s->axes[ks].values[si] : NULL, *bv = kb >= 0 ? s->axes[kb].values[bi] : NULL;
      long c = 1;
      for (int k = 0; k < s->naxes; k++) {
        if (k == ks || k == kb) continue;
        if (s->axes[k].option && use_pred && !applies(NULL, s->axes[k].key, sv, bv)) continue;
        c *= s->axes[k].n;
      }
      total += c;
    }
  return total;
}

static void check_point(const il_sweep *s, long i, int use_pred, int idx[IL_SWEEP_MAX_AXES]) {
  const int ks = find(s, "solver"), kb = find(s, "backward");
  for (int k = 0; k < s->naxes; k++) {
    idx[k] = il_sweep_value_index(s, i, k);
    assert(idx[k] >= -1 && idx[k] < s->axes[k].n);
    const char *v = il_sweep_value(s, i, s->axes[k].key);
    if (idx[k] < 0) {
      assert(s->axes[k].option && v == NULL);
    } else {
      assert(v == s->axes[k].values[idx[k]]);
    }
  }
  for (int k = 0; k < s->naxes; k++) {
    if (!s->axes[k].option) continue;
    const char *sv = ks >= 0 ? s->axes[ks].values[idx[ks]] : NULL;
    const char *bv = kb >= 0 ? s->axes[kb].values[idx[kb]] : NULL;
    const int want = !use_pred || applies(NULL, s->axes[k].key, sv, bv);
    assert((idx[k] >= 0) == want);
  }
  static char id[IL_SWEEP_RUN_ID_MAX + 16], small[16];
  memset(id, 'X', sizeof id);
  il_sweep_run_id(s, i, id, IL_SWEEP_RUN_ID_MAX);
  const size_t len = strnlen(id, IL_SWEEP_RUN_ID_MAX);
  assert(len < IL_SWEEP_RUN_ID_MAX);
  assert(id[0] == 'p');
  for (size_t k = IL_SWEEP_RUN_ID_MAX; k < sizeof id; k++) assert(id[k] == 'X');
  memset(small, 'X', sizeof small);
  il_sweep_run_id(s, i, small, 9);
  assert(strnlen(small, 9) < 9 && strncmp(small, id, strlen(small)) == 0);
  for (size_t k = 9; k < sizeof small; k++) assert(small[k] == 'X');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size > 8192) return 0;
  char *text = malloc(size + 1);
  il_sweep *s = malloc(sizeof *s), *copy = malloc(sizeof *s);
  if (!text || !s || !copy) abort();
  memcpy(text, data, size);
  text[size] = '\0';

  char *p = text;
  if (p[0] == 'Z' && (p[1] == '\n' || p[1] == '\0')) {
    memset(s, 0, sizeof *s);
    p += p[1] ? 2 : 1;
  } else {
    il_sweep_init(s);
    assert(s->npoints == 1 && s->naxes == 0);
  }
  int use_pred = 0, lines = 0;
  while (*p && lines++ < 48) {
    char *nl = strchr(p, '\n');
    if (nl) *nl = '\0';
    if (strcmp(p, "!") == 0) {
      use_pred = !use_pred;
      il_sweep_set_applies(s, use_pred ? applies : NULL, NULL);
    } else {
      const int opt = p[0] == '@';
      char *key = p + opt, *eq = strchr(key, '=');
      const char *list = NULL;
      if (eq) {
        *eq = '\0';
        list = eq + 1;
      }
      memcpy(copy, s, sizeof *s);
      il_error_clear();
      il_status st = opt ? il_sweep_add_option_axis(s, key, list) : il_sweep_add_axis(s, key, list);
      if (st != IL_OK) {
        assert(il_error_message()[0]);
        assert(memcmp(copy, s, sizeof *s) == 0); /* "errors leave *s unchanged" */
      } else {
        assert(find(s, key) >= 0);
      }
    }
    if (!nl) break;
    p = nl + 1;
  }

  /* the layout against an independent count */
  assert(s->naxes >= 0 && s->naxes <= IL_SWEEP_MAX_AXES);
  if (s->naxes > 0 || s->npoints != 0) { /* a zeroed struct with no add has npoints 0 */
    assert(s->npoints >= 1 && s->npoints <= IL_SWEEP_MAX_POINTS);
    assert(s->npoints == expected_points(s, use_pred));
    assert(expected_points(s, 0) <= IL_SWEEP_MAX_POINTS);
  }
  int nopt = 0;
  for (int k = 0; k < s->naxes; k++) {
    nopt += s->axes[k].option;
    assert(s->axes[k].n >= 1 && s->axes[k].n <= IL_SWEEP_MAX_VALUES);
    if (k > 0) {
      const double ra = order_rank(&s->axes[k - 1]), rb = order_rank(&s->axes[k]);
      assert(ra < rb || (ra == rb && s->axes[k - 1].option && strcmp(s->axes[k - 1].key, s->axes[k].key) < 0));
    }
    for (int v = 0; v < s->axes[k].n; v++) {
      assert(memchr(s->axes[k].values[v], '\0', IL_SWEEP_VALUE_LEN));
      for (int w = 0; w < v; w++) assert(strcmp(s->axes[k].values[v], s->axes[k].values[w]) != 0);
    }
  }
  assert(nopt <= IL_SWEEP_MAX_OPTION_AXES);

  /* enumeration: all points when few, else the first, the last and a stride in between */
  const long np = s->npoints;
  const long step = np <= 512 ? 1 : np / 256;
  int prev[IL_SWEEP_MAX_AXES], cur[IL_SWEEP_MAX_AXES];
  for (long i = 0; i < np; i += step) {
    check_point(s, i, use_pred, cur);
    if (i > 0 && step == 1) { /* strictly increasing, lexicographically (-1 sorts first) */
      int k = 0;
      while (k < s->naxes && prev[k] == cur[k]) k++;
      assert(k < s->naxes && prev[k] < cur[k]);
    }
    memcpy(prev, cur, sizeof cur);
  }
  if (np > 0) check_point(s, np - 1, use_pred, cur);
  char id[16];
  il_sweep_run_id(s, np, id, sizeof id);
  assert(id[0] == '\0');
  il_sweep_run_id(s, -1, id, sizeof id);
  assert(id[0] == '\0');
  for (int k = 0; k < s->naxes; k++) {
    assert(il_sweep_value(s, np, s->axes[k].key) == NULL);
    assert(il_sweep_value(s, -1, s->axes[k].key) == NULL);
  }

  /* job-array slices partition the points */
  for (long count = 1; count <= 5; count++) {
    long sum = 0;
    for (long index = 0; index < count; index++) {
      assert(il_sweep_check_slice(index, count) == IL_OK);
      sum += il_sweep_slice_size(np, index, count);
    }
    assert(sum == np);
  }
  assert(il_sweep_in_slice(np > 0 ? np - 1 : 0, (np > 0 ? np - 1 : 0) % 3, 3));
  il_error_clear();
  free(copy);
  free(s);
  free(text);
  return 0;
}
