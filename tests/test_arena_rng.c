/* tests/test_arena_rng.c: byte counting of arenas and reproducibility of the RNG. */
#include <stdlib.h>
#include <string.h>

#include "il_arena.h"
#include "il_backend.h"
#include "il_options.h"
#include "il_rng.h"
#include "test_util.h"

static void test_arena_counts_by_category(void **state) {
  il_memstats st = {0};
  il_arena a, w;
  void *p, *q;
  assert_ok(il_arena_init(&a, IL_MEM_SAVED, &st, 256));
  assert_ok(il_arena_init(&w, IL_MEM_WORKSPACE, &st, 256));
  assert_ok(il_arena_alloc(&a, 100, &p)); /* rounded to 128 */
  assert_int_equal((uintptr_t)p % IL_ARENA_ALIGN, 0);
  assert_ok(il_arena_alloc(&a, 1000, &q)); /* bigger than a block: own block */
  assert_int_equal(st.current[IL_MEM_SAVED], 128 + 1024);
  memset(q, 0xab, 1000); /* writable */
  assert_ok(il_arena_alloc(&w, 64, &p));
  assert_int_equal(st.current_total, 128 + 1024 + 64);
  il_arena_mark m = il_arena_get_mark(&w);
  assert_ok(il_arena_alloc(&w, 512, &p));
  assert_ok(il_arena_alloc(&w, 512, &p));
  assert_int_equal(st.current[IL_MEM_WORKSPACE], 64 + 1024);
  il_arena_rewind(&w, m);
  assert_int_equal(st.current[IL_MEM_WORKSPACE], 64);
  assert_int_equal(st.peak[IL_MEM_WORKSPACE], 64 + 1024);
  assert_int_equal(st.peak_total, 128 + 1024 + 64 + 1024);
  il_arena_reset(&a);
  assert_int_equal(st.current[IL_MEM_SAVED], 0);
  assert_int_equal(st.peak[IL_MEM_SAVED], 128 + 1024);
  /* reuse after reset: memory comes back zeroed */
  unsigned char *z;
  assert_ok(il_arena_calloc(&a, 1000, 1, (void **)&z));
  for (int i = 0; i < 1000; i++) assert_int_equal(z[i], 0);
  il_memstats_reset_peaks(&st);
  assert_int_equal(st.peak[IL_MEM_SAVED], 1024);
  il_arena_destroy(&a);
  il_arena_destroy(&w);
  assert_int_equal(st.current_total, 0);
}

/* A per-rank limit (--mem-limit) refuses the allocation that would cross it, naming the bytes, and
 * leaves the counts as they were; what fits below it is handed out as before. */
static void test_arena_limit(void **state) {
  il_memstats st = {0};
  st.limit = 1024;
  il_arena a, w;
  void *p;
  assert_ok(il_arena_init(&a, IL_MEM_SAVED, &st, 256));
  assert_ok(il_arena_init(&w, IL_MEM_WORKSPACE, &st, 256));
  assert_ok(il_arena_alloc(&a, 512, &p));
  assert_ok(il_arena_alloc(&w, 448, &p)); /* 960 in all */
  il_error_clear();
  assert_int_equal(il_arena_alloc(&w, 65, &p), IL_ERR_NOMEM); /* 128 more: 1088 > 1024 */
  assert_null(p);
  assert_non_null(strstr(il_error_message(), "1088 in all"));
  assert_non_null(strstr(il_error_message(), "limit of 1024 bytes (--mem-limit)"));
  assert_int_equal(st.current_total, 960);
  assert_ok(il_arena_alloc(&w, 64, &p)); /* exactly at the limit */
  assert_int_equal(st.current_total, 1024);
  assert_int_equal(il_arena_alloc(&a, SIZE_MAX / 2, &p), IL_ERR_NOMEM); /* no overflow in the test */
  il_error_clear();
  il_arena_destroy(&a);
  il_arena_destroy(&w);
}

/* An arena over a backend's space counts its bytes as space bytes too, draws its
 * blocks from the backend, and zero-fills through the space (read back by download). */
static void test_space_arena_counts_space_bytes(void **state) {
  const char *names[] = {"cpu", "cpu-guard"};
  for (int k = 0; k < 2; k++) {
    il_backend *be;
    il_memstats st = {0};
    il_arena a, h;
    il_real *p, back[300];
    void *q;
    size_t live, peak;
    assert_ok(il_backend_create(names[k], NULL, &be));
    assert_ok(il_arena_init_for(&a, be, IL_MEM_ACTIVATIONS, &st, 4096));
    assert_ok(il_arena_init_for(&h, NULL, IL_MEM_WORKSPACE, &st, 0)); /* NULL backend: a host arena */
    assert_null(h.space);
    assert_ok(il_arena_calloc(&a, 300, sizeof *p, (void **)&p));
    assert_int_equal((uintptr_t)p % IL_ARENA_ALIGN, 0);
    assert_ok(il_arena_alloc(&h, 100, &q));
    memset(q, 1, 100); /* host memory */
    const size_t sp = (300 * sizeof *p + IL_ARENA_ALIGN - 1) / IL_ARENA_ALIGN * IL_ARENA_ALIGN;
    assert_int_equal(st.space_current, sp);
    assert_int_equal(st.current_total, sp + 128);
    assert_ok(il_download(be, back, p, 300));
    for (int i = 0; i < 300; i++) assert_true(back[i] == 0);
    be->ops->mem_stats(be->ctx, &live, &peak);
    assert_int_equal(live, 4096); /* one block */
    il_arena_reset(&a);
    assert_int_equal(st.space_current, 0);
    assert_int_equal(st.space_peak, sp);
    il_arena_destroy(&a);
    il_arena_destroy(&h);
    be->ops->mem_stats(be->ctx, &live, &peak);
    assert_int_equal(live, 0);
    il_backend_destroy(be);
  }
}

static void test_size_overflow_refused(void **state) {
  il_arena a;
  void *p;
  size_t out;
  assert_ok(il_arena_init(&a, IL_MEM_PARAMS, NULL, 0));
  il_error_clear();
  assert_int_equal(il_arena_calloc(&a, SIZE_MAX / 2, 4, &p), IL_ERR_NOMEM);
  assert_non_null(strstr(il_error_message(), "overflows"));
  assert_int_equal(il_size_mul(SIZE_MAX, 2, &out, "x"), IL_ERR_NOMEM);
  il_arena_destroy(&a);
}

static void test_rng_reproducible_and_permutation_valid(void **state) {
  il_rng a, b;
  il_rng_seed(&a, 123);
  il_rng_seed(&b, 123);
  for (int i = 0; i < 1000; i++) assert_int_equal(il_rng_next(&a), il_rng_next(&b));
  il_rng_seed(&b, 124);
  assert_true(il_rng_next(&a) != il_rng_next(&b));
  enum { N = 1000 };
  uint32_t perm[N];
  int seen[N] = {0};
  il_rng_permutation(&a, N, perm);
  int fixed = 0;
  for (int i = 0; i < N; i++) {
    assert_true(perm[i] < N);
    seen[perm[i]]++;
    fixed += perm[i] == (uint32_t)i;
  }
  for (int i = 0; i < N; i++) assert_int_equal(seen[i], 1);
  assert_true(fixed < 10); /* a shuffle, not the identity */
  double mean = 0, var = 0;
  for (int i = 0; i < 100000; i++) {
    double x = il_rng_normal(&a);
    mean += x;
    var += x * x;
  }
  mean /= 100000;
  var = var / 100000 - mean * mean;
  assert_true(fabs(mean) < 0.02 && fabs(var - 1) < 0.03);
}

static void test_option_parsing_strict(void **state) {
  double d;
  long l;
  il_options o;
  int iv;
  assert_ok(il_parse_double("1e-4", "tol", &d));
  assert_true(d == 1e-4);
  assert_int_equal(il_parse_double("1e-4x", "tol", &d), IL_ERR_ARG);
  assert_int_equal(il_parse_double("", "tol", &d), IL_ERR_ARG);
  assert_int_equal(il_parse_double("nan", "tol", &d), IL_ERR_ARG);
  assert_int_equal(il_parse_double("1e999", "tol", &d), IL_ERR_ARG);
  assert_int_equal(il_parse_int("12", "n", 0, 10, &l), IL_ERR_ARG);
  assert_int_equal(il_parse_int("3.5", "n", 0, 10, &l), IL_ERR_ARG);
  il_options_init(&o);
  assert_ok(il_options_set(&o, "m", "6"));
  assert_ok(il_options_set(&o, "beta", "0.5"));
  assert_ok(il_options_get_int(&o, "m", 5, 1, 100, &iv));
  assert_int_equal(iv, 6);
  il_error_clear();
  assert_int_equal(il_options_check_all_used(&o, "solver anderson"), IL_ERR_ARG);
  assert_non_null(strstr(il_error_message(), "beta"));
  assert_ok(il_options_get_double(&o, "beta", 1, 0, 1, &d));
  assert_ok(il_options_check_all_used(&o, "solver anderson"));
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_arena_counts_by_category),
      cmocka_unit_test(test_arena_limit),
      cmocka_unit_test(test_space_arena_counts_space_bytes),
      cmocka_unit_test(test_size_overflow_refused),
      cmocka_unit_test(test_rng_reproducible_and_permutation_valid),
      cmocka_unit_test(test_option_parsing_strict),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
