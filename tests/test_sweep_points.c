/* tests/test_sweep_points.c: point enumeration, job-array slicing and run ids of `ilbench sweep`. */
#include <stdlib.h>
#include <string.h>

#include "sweep_points.h"
#include "test_util.h"

/* "0,1,...,n-1" (each number plus `base`) into buf. */
static const char *int_list(char *buf, size_t cap, int n, int base) {
  size_t len = 0;
  buf[0] = '\0';
  for (int i = 0; i < n; i++) len += (size_t)snprintf(buf + len, cap - len, "%s%d", i ? "," : "", base + i);
  assert_true(len < cap);
  return buf;
}

static void assert_msg_has(const char *needle) {
  if (!strstr(il_error_message(), needle)) {
    print_error("error message '%s' does not contain '%s'\n", il_error_message(), needle);
    fail();
  }
}

/* The acceptance example of the sweep subcommand. */
static void test_acceptance_example(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,newton"));
  assert_ok(il_sweep_add_axis(&s, "backward", "implicit"));
  assert_ok(il_sweep_add_axis(&s, "tol", "1e-2,1e-4"));
  assert_int_equal(s.npoints, 4);
  assert_int_equal(s.naxes, 3);
  const char *want[4][3] = {
      {"fp", "implicit", "1e-2"}, {"fp", "implicit", "1e-4"}, {"newton", "implicit", "1e-2"}, {"newton", "implicit", "1e-4"}};
  for (long i = 0; i < 4; i++) {
    assert_string_equal(il_sweep_value(&s, i, "solver"), want[i][0]);
    assert_string_equal(il_sweep_value(&s, i, "backward"), want[i][1]);
    assert_string_equal(il_sweep_value(&s, i, "tol"), want[i][2]);
  }
}

/* Enumeration order is the fixed key order, not the order axes are added (or flags given). */
static void test_add_order_does_not_matter(void **state) {
  (void)state;
  il_sweep a, b;
  il_sweep_init(&a);
  il_sweep_init(&b);
  assert_ok(il_sweep_add_axis(&a, "solver", "fp,newton,anderson"));
  assert_ok(il_sweep_add_axis(&a, "hidden", "50,100"));
  assert_ok(il_sweep_add_axis(&a, "seed", "0,1"));
  assert_ok(il_sweep_add_axis(&b, "seed", "0,1"));
  assert_ok(il_sweep_add_axis(&b, "solver", "fp,newton,anderson"));
  assert_ok(il_sweep_add_axis(&b, "hidden", "50,100"));
  assert_int_equal(b.npoints, 12);
  assert_string_equal(b.axes[0].key, "solver");
  assert_string_equal(b.axes[1].key, "hidden");
  assert_string_equal(b.axes[2].key, "seed");
  char ia[IL_SWEEP_RUN_ID_MAX], ib[IL_SWEEP_RUN_ID_MAX];
  for (long i = 0; i < a.npoints; i++) {
    il_sweep_run_id(&a, i, ia, sizeof ia);
    il_sweep_run_id(&b, i, ib, sizeof ib);
    assert_string_equal(ia, ib);
  }
}

/* A 3-axis product enumerates exactly like nested loops, last axis fastest. */
static void test_three_axis_matches_nested_loops(void **state) {
  (void)state;
  const char *solvers[] = {"fp", "newton", "broyden"};
  const char *hidden[] = {"10", "20"};
  const char *seeds[] = {"0", "1", "2", "3"};
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "seed", "0,1,2,3"));
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,newton,broyden"));
  assert_ok(il_sweep_add_axis(&s, "hidden", "10,20"));
  assert_int_equal(s.npoints, 24);
  long i = 0;
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++)
      for (int c = 0; c < 4; c++, i++) {
        assert_string_equal(il_sweep_value(&s, i, "solver"), solvers[a]);
        assert_string_equal(il_sweep_value(&s, i, "hidden"), hidden[b]);
        assert_string_equal(il_sweep_value(&s, i, "seed"), seeds[c]);
      }
  assert_int_equal(i, s.npoints);
}

/* All eight keys: eight nested loops in the documented order. */
static void test_all_keys_match_nested_loops(void **state) {
  (void)state;
  static const int n[8] = {2, 3, 2, 1, 3, 2, 2, 3};
  char lists[8][64];
  il_sweep s;
  il_sweep_init(&s);
  for (int k = il_sweep_nkeys - 1; k >= 0; k--) /* reverse order on purpose */
    assert_ok(il_sweep_add_axis(&s, il_sweep_keys[k], int_list(lists[k], sizeof lists[k], n[k], 10 * k)));
  assert_int_equal(il_sweep_nkeys, 8); /* the fixed keys; declared options come on top (test_option_*) */
  assert_true(il_sweep_nkeys + IL_SWEEP_MAX_OPTION_AXES <= IL_SWEEP_MAX_AXES);
  assert_int_equal(s.npoints, 2 * 3 * 2 * 1 * 3 * 2 * 2 * 3);
  long i = 0;
  int d[8];
  char want[16];
  for (d[0] = 0; d[0] < n[0]; d[0]++)
    for (d[1] = 0; d[1] < n[1]; d[1]++)
      for (d[2] = 0; d[2] < n[2]; d[2]++)
        for (d[3] = 0; d[3] < n[3]; d[3]++)
          for (d[4] = 0; d[4] < n[4]; d[4]++)
            for (d[5] = 0; d[5] < n[5]; d[5]++)
              for (d[6] = 0; d[6] < n[6]; d[6]++)
                for (d[7] = 0; d[7] < n[7]; d[7]++, i++)
                  for (int k = 0; k < 8; k++) {
                    snprintf(want, sizeof want, "%d", 10 * k + d[k]);
                    assert_string_equal(il_sweep_value(&s, i, il_sweep_keys[k]), want);
                  }
  assert_int_equal(i, s.npoints);
}

static void test_value_out_of_range_or_unswept(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  assert_int_equal(s.npoints, 1); /* empty product */
  assert_null(il_sweep_value(&s, 0, "solver"));
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,newton"));
  assert_null(il_sweep_value(&s, -1, "solver"));
  assert_null(il_sweep_value(&s, 2, "solver"));
  assert_null(il_sweep_value(&s, 0, "tol"));
  assert_null(il_sweep_value(&s, 0, "nonsense"));
  assert_null(il_sweep_value(&s, 0, NULL));
  assert_null(il_sweep_value(NULL, 0, "solver"));
}

/* A zeroed struct works as a start too. */
static void test_zeroed_struct(void **state) {
  (void)state;
  il_sweep s = {0};
  assert_ok(il_sweep_add_axis(&s, "batch", "50,100,200"));
  assert_int_equal(s.npoints, 3);
  assert_string_equal(il_sweep_value(&s, 2, "batch"), "200");
}

/* Job-array slicing with N=3 partitions the points: each point in exactly one task. */
static void test_slice_partitions(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,newton"));
  assert_ok(il_sweep_add_axis(&s, "seed", "0,1,2,3,4"));
  assert_int_equal(s.npoints, 10); /* not a multiple of 3 */
  const long N = 3;
  int owners[10] = {0};
  long total = 0;
  for (long task = 0; task < N; task++) {
    assert_ok(il_sweep_check_slice(task, N));
    long mine = 0;
    for (long i = 0; i < s.npoints; i++)
      if (il_sweep_in_slice(i, task, N)) {
        owners[i]++;
        mine++;
      }
    assert_int_equal(mine, il_sweep_slice_size(s.npoints, task, N));
    assert_true(mine == 3 || mine == 4); /* balanced */
    total += mine;
  }
  assert_int_equal(total, s.npoints);
  for (long i = 0; i < s.npoints; i++) assert_int_equal(owners[i], 1);
  /* N=1: one task runs everything */
  for (long i = 0; i < s.npoints; i++) assert_true(il_sweep_in_slice(i, 0, 1));
  assert_int_equal(il_sweep_slice_size(s.npoints, 0, 1), s.npoints);
}

/* More tasks than points: the extra tasks are empty, still every point runs once. */
static void test_slice_more_tasks_than_points(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,newton"));
  assert_ok(il_sweep_add_axis(&s, "tol", "1e-2,1e-4"));
  const long N = 6;
  int owners[4] = {0};
  int empty = 0;
  for (long task = 0; task < N; task++) {
    assert_ok(il_sweep_check_slice(task, N));
    long mine = 0;
    for (long i = 0; i < s.npoints; i++)
      if (il_sweep_in_slice(i, task, N)) {
        owners[i]++;
        mine++;
      }
    assert_int_equal(mine, il_sweep_slice_size(s.npoints, task, N));
    assert_int_equal(mine, task < 4 ? 1 : 0);
    empty += mine == 0;
  }
  assert_int_equal(empty, 2);
  for (int i = 0; i < 4; i++) assert_int_equal(owners[i], 1);
}

static void test_bad_slice_arguments(void **state) {
  (void)state;
  static const long bad[][2] = {{3, 3}, {5, 3}, {0, 0}, {-1, 3}, {0, -2}, {-1, -1}, {1, 1}};
  for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
    il_error_clear();
    assert_int_equal(il_sweep_check_slice(bad[b][0], bad[b][1]), IL_ERR_ARG);
    assert_true(strlen(il_error_message()) > 0);
    for (long i = 0; i < 5; i++) assert_false(il_sweep_in_slice(i, bad[b][0], bad[b][1]));
    assert_int_equal(il_sweep_slice_size(10, bad[b][0], bad[b][1]), 0);
  }
  il_error_clear();
  il_sweep_check_slice(0, 0);
  assert_msg_has(">= 1");
  il_error_clear();
  il_sweep_check_slice(3, 3);
  assert_msg_has("0..2");
  assert_ok(il_sweep_check_slice(0, 1));
  assert_ok(il_sweep_check_slice(2, 3));
  assert_false(il_sweep_in_slice(-3, 0, 3)); /* negative point index */
}

/* Bad lists are refused with a message naming --key and the bad item, and leave the sweep unchanged. */
static void test_bad_lists_rejected(void **state) {
  (void)state;
  char many[IL_SWEEP_MAX_VALUES * 4 + 16], max[IL_SWEEP_MAX_VALUES * 4 + 16], longitem[128];
  int_list(many, sizeof many, IL_SWEEP_MAX_VALUES + 1, 100); /* 100..164: item 65 is "164" */
  int_list(max, sizeof max, IL_SWEEP_MAX_VALUES, 100);
  memset(longitem, 'x', 64);
  strcpy(longitem + 64, ",fp");
  const struct {
    const char *key, *list, *want1, *want2;
  } cases[] = {
      {"solver", "fp,,newton", "--solver", "empty item (item 2)"},
      {"solver", "fp,newton,", "--solver", "empty item (item 3)"},
      {"solver", ",fp", "--solver", "empty item (item 1)"},
      {"backward", "", "--backward", "empty list"},
      {"solver", "fp,newton,fp", "--solver", "duplicate value 'fp' (item 3)"},
      {"tol", "1e-4,1e-2,0.0001", "--tol", "duplicate value '0.0001'"},
      {"hidden", "100,1e2", "--hidden", "'1e2'"},
      {"seed", many, "--seed", "'164'"},
      {"seed", many, "--seed", "limit of 64"},
      {"solver", longitem, "--solver", "longer than 63"},
      {"solver", "fp, newton", "--solver", "' newton'"},
      {"lr", "0.1,0.01", "--lr", "--solver --backward --tol --hidden --max-iter --batch --grid --seed"},
      {NULL, "1", "(null)", "sweepable"},
      {"max-iter", NULL, "--max-iter", "no value list"},
      {"batch", "200", "--batch", "given twice"},
  };
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "batch", "50,100"));
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    il_error_clear();
    assert_int_equal(il_sweep_add_axis(&s, cases[c].key, cases[c].list), IL_ERR_ARG);
    assert_msg_has(cases[c].want1);
    assert_msg_has(cases[c].want2);
    assert_int_equal(s.naxes, 1); /* unchanged */
    assert_int_equal(s.npoints, 2);
  }
  /* The limits themselves are accepted: 64 items; a 63-character item; same text in different axes. */
  assert_ok(il_sweep_add_axis(&s, "seed", max));
  assert_int_equal(s.npoints, 2 * IL_SWEEP_MAX_VALUES);
  longitem[63] = '\0';
  assert_ok(il_sweep_add_axis(&s, "backward", longitem));
  assert_string_equal(il_sweep_value(&s, 0, "backward"), longitem);
  assert_ok(il_sweep_add_axis(&s, "hidden", "100"));
  assert_ok(il_sweep_add_axis(&s, "solver", "fp"));
  /* Non-numeric values of numeric keys are the caller's to validate; only exact duplicates are caught here. */
  assert_ok(il_sweep_add_axis(&s, "tol", "auto,1e-4"));
}

static void test_run_id_format_and_sanitising(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp"));
  assert_ok(il_sweep_add_axis(&s, "backward", "implicit"));
  assert_ok(il_sweep_add_axis(&s, "tol", "1e-04"));
  assert_ok(il_sweep_add_axis(&s, "hidden", "100"));
  assert_ok(il_sweep_add_axis(&s, "max-iter", "200"));
  assert_ok(il_sweep_add_axis(&s, "batch", "100"));
  assert_ok(il_sweep_add_axis(&s, "seed", "9,8,7,0"));
  char id[IL_SWEEP_RUN_ID_MAX];
  il_sweep_run_id(&s, 3, id, sizeof id);
  assert_string_equal(id, "p0003-fp-implicit-tol1e-04-h100-it200-b100-s0");
  il_sweep_run_id(&s, 0, id, sizeof id);
  assert_string_equal(id, "p0000-fp-implicit-tol1e-04-h100-it200-b100-s9");
  /* truncation stays terminated */
  il_sweep_run_id(&s, 3, id, 8);
  assert_string_equal(id, "p0003-f");
  id[0] = 'x';
  il_sweep_run_id(&s, 3, id, 1);
  assert_string_equal(id, "");
  /* out of range gives "" */
  strcpy(id, "junk");
  il_sweep_run_id(&s, 4, id, sizeof id);
  assert_string_equal(id, "");
  il_sweep_run_id(&s, -1, id, sizeof id);
  assert_string_equal(id, "");

  il_sweep t;
  il_sweep_init(&t);
  assert_ok(il_sweep_add_axis(&t, "backward", "phantom:5,jfb"));
  assert_ok(il_sweep_add_axis(&t, "solver", "my/solver_x"));
  assert_ok(il_sweep_add_axis(&t, "tol", "+1.5E-3"));
  il_sweep_run_id(&t, 0, id, sizeof id);
  assert_string_equal(id, "p0000-my-solver-x-phantom-5-tol+1.5E-3");
  for (const char *c = id; *c; c++)
    assert_true((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '.' ||
                *c == '+' || *c == '-');

  /* The longest possible id fits IL_SWEEP_RUN_ID_MAX: every fixed key and the most option axes, with
   * the longest keys and values. */
  char v[IL_SWEEP_VALUE_LEN];
  memset(v, '9', sizeof v - 1);
  v[sizeof v - 1] = '\0';
  il_sweep u;
  il_sweep_init(&u);
  for (int k = 0; k < il_sweep_nkeys; k++) assert_ok(il_sweep_add_axis(&u, il_sweep_keys[k], v));
  il_sweep_run_id(&u, 0, id, sizeof id);
  assert_int_equal(strlen(id), 5 + 8 + 63 * 8 + 3 + 1 + 2 + 1 + 1 + 1); /* p0000, 8 dashes, values, prefixes */
  char key[IL_SWEEP_KEY_LEN];
  for (int k = 0; k < IL_SWEEP_MAX_OPTION_AXES; k++) {
    memset(key, 'k', sizeof key - 1);
    key[sizeof key - 1] = '\0';
    snprintf(key + sizeof key - 4, 4, "%03d", k);
    assert_ok(il_sweep_add_option_axis(&u, key, v));
  }
  assert_int_equal(u.naxes, il_sweep_nkeys + IL_SWEEP_MAX_OPTION_AXES);
  assert_int_equal(u.npoints, 1);
  il_sweep_run_id(&u, 0, id, sizeof id);
  assert_int_equal(strlen(id), 5 + 8 + 63 * 8 + 3 + 1 + 2 + 1 + 1 + 1 + IL_SWEEP_MAX_OPTION_AXES * (1 + 47 + 1 + 63));
  assert_true(strlen(id) < IL_SWEEP_RUN_ID_MAX);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* Run ids are unique, and sorting them gives index order, including when the index needs more than 4 digits. */
static void test_run_ids_unique_and_sorted(void **state) {
  (void)state;
  char l1[512], l2[512];
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "solver", "newton,fp,anderson")); /* not alphabetical on purpose */
  assert_ok(il_sweep_add_axis(&s, "hidden", int_list(l1, sizeof l1, 64, 1)));  /* 1..64: "10" < "9" as text */
  assert_ok(il_sweep_add_axis(&s, "seed", int_list(l2, sizeof l2, 60, 0)));
  assert_int_equal(s.npoints, 3 * 64 * 60); /* 11520: five digits */
  long n = s.npoints;
  char *ids = malloc((size_t)n * IL_SWEEP_RUN_ID_MAX);
  char **sorted = malloc((size_t)n * sizeof *sorted);
  assert_non_null(ids);
  assert_non_null(sorted);
  for (long i = 0; i < n; i++) {
    il_sweep_run_id(&s, i, ids + i * IL_SWEEP_RUN_ID_MAX, IL_SWEEP_RUN_ID_MAX);
    sorted[i] = ids + i * IL_SWEEP_RUN_ID_MAX;
  }
  assert_string_equal(sorted[0], "p00000-newton-h1-s0");
  assert_string_equal(sorted[n - 1], "p11519-anderson-h64-s59");
  qsort(sorted, (size_t)n, sizeof *sorted, cmp_str);
  for (long i = 0; i < n; i++) {
    assert_ptr_equal(sorted[i], ids + i * IL_SWEEP_RUN_ID_MAX); /* sorted order == index order */
    if (i > 0) assert_true(strcmp(sorted[i - 1], sorted[i]) < 0); /* strictly: all unique */
  }
  free(sorted);
  free(ids);

  /* Small sweeps keep the 4-digit minimum. */
  il_sweep t;
  il_sweep_init(&t);
  assert_ok(il_sweep_add_axis(&t, "seed", "0,1"));
  char id[IL_SWEEP_RUN_ID_MAX];
  il_sweep_run_id(&t, 1, id, sizeof id);
  assert_string_equal(id, "p0001-s1");
}

/* Products above 1e6 points are refused with a clear message; exactly 1e6 is allowed. */
static void test_overflow_refused(void **state) {
  (void)state;
  char l[4][512];
  il_sweep s;
  il_sweep_init(&s);
  assert_ok(il_sweep_add_axis(&s, "hidden", int_list(l[0], sizeof l[0], 40, 1)));
  assert_ok(il_sweep_add_axis(&s, "max-iter", int_list(l[1], sizeof l[1], 50, 1)));
  assert_ok(il_sweep_add_axis(&s, "batch", int_list(l[2], sizeof l[2], 20, 1)));
  assert_ok(il_sweep_add_axis(&s, "seed", int_list(l[3], sizeof l[3], 25, 0)));
  assert_int_equal(s.npoints, IL_SWEEP_MAX_POINTS); /* exactly 1e6: accepted */
  assert_string_equal(il_sweep_value(&s, IL_SWEEP_MAX_POINTS - 1, "hidden"), "40");
  il_error_clear();
  assert_int_equal(il_sweep_add_axis(&s, "solver", "fp,newton"), IL_ERR_ARG);
  assert_msg_has("--solver");
  assert_msg_has("2000000 points");
  assert_msg_has("limit of 1000000");
  assert_int_equal(s.naxes, 4);
  assert_int_equal(s.npoints, IL_SWEEP_MAX_POINTS);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp")); /* a single value keeps the size */

  /* 64^7 would overflow a 32-bit long: refused as soon as the product passes 1e6. */
  char full[512];
  int_list(full, sizeof full, IL_SWEEP_MAX_VALUES, 1);
  il_sweep t;
  il_sweep_init(&t);
  assert_ok(il_sweep_add_axis(&t, "seed", full));
  assert_ok(il_sweep_add_axis(&t, "batch", full));
  assert_ok(il_sweep_add_axis(&t, "hidden", full));
  il_error_clear();
  assert_int_equal(il_sweep_add_axis(&t, "tol", full), IL_ERR_ARG);
  assert_msg_has("--tol");
  assert_msg_has("16777216 points");
  assert_int_equal(t.npoints, 64 * 64 * 64);
}

/* A stand-in for the registries: anderson takes anderson-m / anderson-beta, fp takes fp-tau, implicit
 * takes adjoint-solver; NULL solver / backward mean the defaults fp / unroll. */
static int fake_calls;
static int fake_applies(void *ctx, const char *key, const char *solver, const char *backward) {
  (void)ctx;
  fake_calls++;
  if (!solver) solver = "fp";
  if (!backward) backward = "unroll";
  if (strncmp(key, "anderson-", 9) == 0) return strcmp(solver, "anderson") == 0;
  if (strcmp(key, "fp-tau") == 0) return strcmp(solver, "fp") == 0;
  if (strcmp(key, "adjoint-solver") == 0) return strcmp(backward, "implicit") == 0;
  return 0;
}

/* Option axes come right after backward, ordered by key name, whatever the add order; without a
 * predicate they form a plain product. */
static void test_option_axes_order_and_product(void **state) {
  (void)state;
  il_sweep a, b;
  il_sweep_init(&a);
  il_sweep_init(&b);
  assert_ok(il_sweep_add_axis(&a, "seed", "0,1"));
  assert_ok(il_sweep_add_option_axis(&a, "fp-tau", "0.5,1"));
  assert_ok(il_sweep_add_axis(&a, "solver", "fp,anderson"));
  assert_ok(il_sweep_add_option_axis(&a, "anderson-m", "4,6,8"));
  assert_ok(il_sweep_add_axis(&a, "tol", "1e-4"));
  assert_ok(il_sweep_add_option_axis(&b, "anderson-m", "4,6,8"));
  assert_ok(il_sweep_add_axis(&b, "tol", "1e-4"));
  assert_ok(il_sweep_add_axis(&b, "solver", "fp,anderson"));
  assert_ok(il_sweep_add_option_axis(&b, "fp-tau", "0.5,1"));
  assert_ok(il_sweep_add_axis(&b, "seed", "0,1"));
  const char *order[] = {"solver", "anderson-m", "fp-tau", "tol", "seed"};
  assert_int_equal(a.naxes, 5);
  for (int k = 0; k < 5; k++) {
    assert_string_equal(a.axes[k].key, order[k]);
    assert_string_equal(b.axes[k].key, order[k]);
  }
  assert_int_equal(a.npoints, 2 * 3 * 2 * 1 * 2);
  char ia[IL_SWEEP_RUN_ID_MAX], ib[IL_SWEEP_RUN_ID_MAX];
  for (long i = 0; i < a.npoints; i++) {
    il_sweep_run_id(&a, i, ia, sizeof ia);
    il_sweep_run_id(&b, i, ib, sizeof ib);
    assert_string_equal(ia, ib);
  }
  il_sweep_run_id(&a, 0, ia, sizeof ia);
  assert_string_equal(ia, "p0000-fp-anderson-m_4-fp-tau_0.5-tol1e-4-s0");
  il_sweep_run_id(&a, a.npoints - 1, ia, sizeof ia);
  assert_string_equal(ia, "p0023-anderson-anderson-m_8-fp-tau_1-tol1e-4-s1");
  assert_string_equal(il_sweep_value(&a, 5, "anderson-m"), "6"); /* fp, m 6 (index 1), tau 0.5, seed 1 */
  assert_string_equal(il_sweep_value(&a, 5, "fp-tau"), "0.5");
  assert_string_equal(il_sweep_value(&a, 5, "seed"), "1");
}

/* The brief's example: --solver fp,anderson --anderson-m 4,6 gives fp once and anderson twice. */
static void test_option_multiplies_only_its_solver(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,anderson"));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-m", "4,6"));
  assert_int_equal(s.npoints, 3);
  const char *want_solver[] = {"fp", "anderson", "anderson"}, *want_m[] = {NULL, "4", "6"};
  const char *want_id[] = {"p0000-fp", "p0001-anderson-anderson-m_4", "p0002-anderson-anderson-m_6"};
  char id[IL_SWEEP_RUN_ID_MAX];
  for (long i = 0; i < 3; i++) {
    assert_string_equal(il_sweep_value(&s, i, "solver"), want_solver[i]);
    if (want_m[i]) assert_string_equal(il_sweep_value(&s, i, "anderson-m"), want_m[i]);
    else assert_null(il_sweep_value(&s, i, "anderson-m"));
    assert_int_equal(il_sweep_value_index(&s, i, 1), (int)i - 1);
    il_sweep_run_id(&s, i, id, sizeof id);
    assert_string_equal(id, want_id[i]);
  }
  assert_int_equal(il_sweep_value_index(&s, 0, 0), 0);
  assert_int_equal(il_sweep_value_index(&s, 2, 0), 1);
  assert_int_equal(il_sweep_value_index(&s, 3, 0), -1); /* out of range */
  assert_int_equal(il_sweep_value_index(&s, 0, 2), -1); /* no such axis */
  assert_null(il_sweep_value(&s, 3, "solver"));

  /* Clearing the predicate gives the plain product back; setting it again filters again. */
  il_sweep_set_applies(&s, NULL, NULL);
  assert_int_equal(s.npoints, 4);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_int_equal(s.npoints, 3);
}

/* Options of the solver and of the backward mode together, with fixed axes after them; the predicate
 * may be set before or after the adds; enumeration is nested loops that skip options that do not apply. */
static void test_option_sweep_matches_filtered_loops(void **state) {
  (void)state;
  const char *solvers[] = {"fp", "anderson", "newton"}, *backs[] = {"unroll", "implicit"};
  const char *ms[] = {"4", "6", "8"}, *betas[] = {"0.5", "1"}, *taus[] = {"0.5", "1"}, *adjs[] = {"lu", "gmres"};
  const char *tols[] = {"1e-2", "1e-4"};
  il_sweep s, t;
  il_sweep_init(&s);
  il_sweep_init(&t);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_ok(il_sweep_add_axis(&s, "tol", "1e-2,1e-4"));
  assert_ok(il_sweep_add_option_axis(&s, "adjoint-solver", "lu,gmres"));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-m", "4,6,8"));
  assert_ok(il_sweep_add_axis(&s, "backward", "unroll,implicit"));
  assert_ok(il_sweep_add_option_axis(&s, "fp-tau", "0.5,1"));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-beta", "0.5,1"));
  assert_ok(il_sweep_add_axis(&s, "solver", "fp,anderson,newton"));
  assert_ok(il_sweep_add_axis(&t, "solver", "fp,anderson,newton"));
  assert_ok(il_sweep_add_axis(&t, "backward", "unroll,implicit"));
  assert_ok(il_sweep_add_option_axis(&t, "anderson-beta", "0.5,1"));
  assert_ok(il_sweep_add_option_axis(&t, "fp-tau", "0.5,1"));
  assert_ok(il_sweep_add_option_axis(&t, "anderson-m", "4,6,8"));
  assert_ok(il_sweep_add_option_axis(&t, "adjoint-solver", "lu,gmres"));
  assert_ok(il_sweep_add_axis(&t, "tol", "1e-2,1e-4"));
  il_sweep_set_applies(&t, fake_applies, NULL);
  /* per backward (unroll 1, implicit 2 adjoint solvers): fp 2 taus, anderson 3 m x 2 betas, newton 1; x 2 tols */
  const long want = (1 + 2) * (2 + 6 + 1) * 2;
  assert_int_equal(s.npoints, want);
  assert_int_equal(t.npoints, want);
  long i = 0;
  char ids[2][IL_SWEEP_RUN_ID_MAX];
  for (int a = 0; a < 3; a++)
    for (int b = 0; b < 2; b++) {
      const int is_fp = a == 0, is_and = a == 1, is_imp = b == 1;
      /* order: solver, backward, adjoint-solver, anderson-beta, anderson-m, fp-tau, tol */
      for (int adj = 0; adj < (is_imp ? 2 : 1); adj++)
        for (int be = 0; be < (is_and ? 2 : 1); be++)
          for (int m = 0; m < (is_and ? 3 : 1); m++)
            for (int tau = 0; tau < (is_fp ? 2 : 1); tau++)
              for (int tl = 0; tl < 2; tl++, i++) {
                const il_sweep *sw[2] = {&s, &t};
                for (int w = 0; w < 2; w++) {
                  assert_string_equal(il_sweep_value(sw[w], i, "solver"), solvers[a]);
                  assert_string_equal(il_sweep_value(sw[w], i, "backward"), backs[b]);
                  assert_string_equal(il_sweep_value(sw[w], i, "tol"), tols[tl]);
                  const char *v = il_sweep_value(sw[w], i, "adjoint-solver");
                  if (is_imp) assert_string_equal(v, adjs[adj]);
                  else assert_null(v);
                  v = il_sweep_value(sw[w], i, "anderson-m");
                  if (is_and) assert_string_equal(v, ms[m]);
                  else assert_null(v);
                  v = il_sweep_value(sw[w], i, "anderson-beta");
                  if (is_and) assert_string_equal(v, betas[be]);
                  else assert_null(v);
                  v = il_sweep_value(sw[w], i, "fp-tau");
                  if (is_fp) assert_string_equal(v, taus[tau]);
                  else assert_null(v);
                  il_sweep_run_id(sw[w], i, ids[w], sizeof ids[w]);
                }
                assert_string_equal(ids[0], ids[1]);
              }
    }
  assert_int_equal(i, want);
  char id[IL_SWEEP_RUN_ID_MAX];
  il_sweep_run_id(&s, 0, id, sizeof id);
  assert_string_equal(id, "p0000-fp-unroll-fp-tau_0.5-tol1e-2");
  il_sweep_run_id(&s, want - 1, id, sizeof id);
  assert_string_equal(id, "p0053-newton-implicit-adjoint-solver_gmres-tol1e-4");
  /* fp/unroll has points 0..3, fp/implicit 4..11, anderson/unroll starts at 12 (beta 0.5, m 4, tol 1e-2) */
  il_sweep_run_id(&s, 14, id, sizeof id);
  assert_string_equal(id, "p0014-anderson-unroll-anderson-beta_0.5-anderson-m_6-tol1e-2");

  /* Run ids of a filtered sweep are unique (every point has its full configuration in it) and sorted. */
  for (long p = 1; p < want; p++) {
    char prev[IL_SWEEP_RUN_ID_MAX];
    il_sweep_run_id(&s, p - 1, prev, sizeof prev);
    il_sweep_run_id(&s, p, id, sizeof id);
    assert_true(strcmp(prev, id) < 0);
    assert_true(strcmp(strchr(prev, '-'), strchr(id, '-')) != 0); /* unique without the index, too */
  }

  /* Job-array slices partition the filtered points. */
  long total = 0;
  for (long task = 0; task < 5; task++) {
    long mine = 0;
    for (long p = 0; p < s.npoints; p++) mine += il_sweep_in_slice(p, task, 5);
    assert_int_equal(mine, il_sweep_slice_size(s.npoints, task, 5));
    total += mine;
  }
  assert_int_equal(total, want);
}

/* Without a swept solver or backward the predicate gets NULL (the caller's default). */
static void test_option_with_unswept_solver(void **state) {
  (void)state;
  il_sweep s;
  il_sweep_init(&s);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_ok(il_sweep_add_option_axis(&s, "fp-tau", "0.25,0.5,1"));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-m", "4,6"));
  assert_int_equal(s.npoints, 3); /* default fp: fp-tau applies, anderson-m does not */
  char id[IL_SWEEP_RUN_ID_MAX];
  il_sweep_run_id(&s, 2, id, sizeof id);
  assert_string_equal(id, "p0002-fp-tau_1");
  assert_null(il_sweep_value(&s, 0, "anderson-m"));
  assert_ok(il_sweep_add_axis(&s, "solver", "anderson"));
  assert_int_equal(s.npoints, 2);
  il_sweep_run_id(&s, 1, id, sizeof id);
  assert_string_equal(id, "p0001-anderson-anderson-m_6");
  fake_calls = 0;
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_int_equal(fake_calls, 2); /* once per option axis and (solver, backward) pair */
}

/* Bad option axes are refused with a message naming the key, leaving the sweep unchanged. */
static void test_option_bad_rejected(void **state) {
  (void)state;
  char longkey[64];
  memset(longkey, 'k', 48);
  longkey[48] = '\0';
  const struct {
    const char *key, *list, *want1, *want2;
  } cases[] = {
      {"anderson-m", "4,4.0", "--anderson-m", "same number as item 1"},
      {"anderson-m", "4,,6", "--anderson-m", "empty item (item 2)"},
      {"adjoint-solver", "lu,gmres,lu", "--adjoint-solver", "duplicate value 'lu'"},
      {"fp-tau", "", "--fp-tau", "empty list"},
      {"fp-tau", NULL, "--fp-tau", "no value list"},
      {"solver", "fp", "--solver", "fixed sweep key"},
      {"anderson m", "4", "--anderson m", "outside [A-Za-z0-9-]"},
      {"x=y", "4", "--x=y", "outside"},
      {longkey, "4", "--kkkk", "longer than 47"},
      {"", "4", "sweep option", "empty"},
      {NULL, "4", "sweep option", "NULL key"},
      {"broyden-m", "5", "--broyden-m", "given twice"},
  };
  il_sweep s;
  il_sweep_init(&s);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_ok(il_sweep_add_axis(&s, "seed", "0,1"));
  assert_ok(il_sweep_add_option_axis(&s, "broyden-m", "5,10"));
  assert_int_equal(s.npoints, 2); /* broyden-m applies to no solver of the fake: does not multiply */
  for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
    il_error_clear();
    assert_int_equal(il_sweep_add_option_axis(&s, cases[c].key, cases[c].list), IL_ERR_ARG);
    assert_msg_has(cases[c].want1);
    assert_msg_has(cases[c].want2);
    assert_int_equal(s.naxes, 2);
    assert_int_equal(s.npoints, 2);
  }
  /* Non-numbers are compared as text only; distinct numbers are fine. */
  assert_ok(il_sweep_add_option_axis(&s, "adjoint-solver", "lu,gmres"));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-m", "4,6,1e1"));
  /* The option-axis limit. */
  il_sweep t;
  il_sweep_init(&t);
  char key[16];
  for (int k = 0; k < IL_SWEEP_MAX_OPTION_AXES; k++) {
    snprintf(key, sizeof key, "opt-%02d", k);
    assert_ok(il_sweep_add_option_axis(&t, key, "1"));
  }
  il_error_clear();
  assert_int_equal(il_sweep_add_option_axis(&t, "opt-99", "1"), IL_ERR_ARG);
  assert_msg_has("more than 24 options");
  for (int k = 0; k < il_sweep_nkeys; k++) assert_ok(il_sweep_add_axis(&t, il_sweep_keys[k], "1"));
  assert_int_equal(t.naxes, IL_SWEEP_MAX_OPTION_AXES + il_sweep_nkeys);
  assert_int_equal(t.npoints, 1);
}

/* The point limit is on the full product (before the predicate filters), so a sweep's size is known
 * to be bounded whatever the predicate says. */
static void test_option_overflow_refused(void **state) {
  (void)state;
  char l[4][512];
  il_sweep s;
  il_sweep_init(&s);
  il_sweep_set_applies(&s, fake_applies, NULL);
  assert_ok(il_sweep_add_axis(&s, "seed", int_list(l[0], sizeof l[0], 64, 0)));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-m", int_list(l[1], sizeof l[1], 40, 1)));
  assert_ok(il_sweep_add_option_axis(&s, "anderson-beta", int_list(l[2], sizeof l[2], 64, 1)));
  assert_int_equal(s.npoints, 64); /* fp: the anderson options do not apply (full product 163840) */
  il_error_clear();
  assert_int_equal(il_sweep_add_axis(&s, "hidden", int_list(l[3], sizeof l[3], 10, 1)), IL_ERR_ARG);
  assert_msg_has("--hidden");
  assert_msg_has("1638400 points");
  assert_msg_has("limit of 1000000");
  assert_int_equal(s.naxes, 3);
  assert_int_equal(s.npoints, 64);
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_acceptance_example),
      cmocka_unit_test(test_add_order_does_not_matter),
      cmocka_unit_test(test_three_axis_matches_nested_loops),
      cmocka_unit_test(test_all_keys_match_nested_loops),
      cmocka_unit_test(test_value_out_of_range_or_unswept),
      cmocka_unit_test(test_zeroed_struct),
      cmocka_unit_test(test_slice_partitions),
      cmocka_unit_test(test_slice_more_tasks_than_points),
      cmocka_unit_test(test_bad_slice_arguments),
      cmocka_unit_test(test_bad_lists_rejected),
      cmocka_unit_test(test_run_id_format_and_sanitising),
      cmocka_unit_test(test_run_ids_unique_and_sorted),
      cmocka_unit_test(test_overflow_refused),
      cmocka_unit_test(test_option_axes_order_and_product),
      cmocka_unit_test(test_option_multiplies_only_its_solver),
      cmocka_unit_test(test_option_sweep_matches_filtered_loops),
      cmocka_unit_test(test_option_with_unswept_solver),
      cmocka_unit_test(test_option_bad_rejected),
      cmocka_unit_test(test_option_overflow_refused),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
