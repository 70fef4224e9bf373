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

/* All seven keys: seven nested loops in the documented order. */
static void test_all_keys_match_nested_loops(void **state) {
  (void)state;
  static const int n[7] = {2, 3, 2, 1, 3, 2, 3};
  char lists[7][64];
  il_sweep s;
  il_sweep_init(&s);
  for (int k = il_sweep_nkeys - 1; k >= 0; k--) /* reverse order on purpose */
    assert_ok(il_sweep_add_axis(&s, il_sweep_keys[k], int_list(lists[k], sizeof lists[k], n[k], 10 * k)));
  assert_int_equal(il_sweep_nkeys, 7);
  assert_int_equal(s.npoints, 2 * 3 * 2 * 1 * 3 * 2 * 3);
  long i = 0;
  int d[7];
  char want[16];
  for (d[0] = 0; d[0] < n[0]; d[0]++)
    for (d[1] = 0; d[1] < n[1]; d[1]++)
      for (d[2] = 0; d[2] < n[2]; d[2]++)
        for (d[3] = 0; d[3] < n[3]; d[3]++)
          for (d[4] = 0; d[4] < n[4]; d[4]++)
            for (d[5] = 0; d[5] < n[5]; d[5]++)
              for (d[6] = 0; d[6] < n[6]; d[6]++, i++)
                for (int k = 0; k < 7; k++) {
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
      {"lr", "0.1,0.01", "--lr", "--solver --backward --tol --hidden --max-iter --batch --seed"},
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

  /* The longest possible id fits IL_SWEEP_RUN_ID_MAX. */
  char v[IL_SWEEP_VALUE_LEN];
  memset(v, '9', sizeof v - 1);
  v[sizeof v - 1] = '\0';
  il_sweep u;
  il_sweep_init(&u);
  for (int k = 0; k < il_sweep_nkeys; k++) assert_ok(il_sweep_add_axis(&u, il_sweep_keys[k], v));
  il_sweep_run_id(&u, 0, id, sizeof id);
  assert_int_equal(strlen(id), 5 + 7 + 63 * 7 + 3 + 1 + 2 + 1 + 1); /* p0000, 7 dashes, values, prefixes */
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
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
