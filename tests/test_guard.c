/* tests/test_guard.c: the cpu-guard test backend itself (IL_PREC=64). Its memory
 * must really be out of the host's reach (a host read of a tensor dies with
 * SIGSEGV, a read through a backend op works), and every tensor byte the arenas
 * count must be memory it guards. Each test gets a fresh cpu-guard instance,
 * whatever ILBENCH_TEST_DEVICE says. */
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "il_layer.h"
#include "test_problem.h"
#include "test_util.h"

static int guard_setup(void **state) {
  (void)state;
  return setup_device("cpu-guard");
}

/* A forked child allocates a tensor through its own cpu-guard instance and reads
 * element 0 on the host: the kernel must kill it with SIGSEGV. */
static void test_host_read_of_guarded_tensor_faults(void **state) {
  fflush(NULL);
  const pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    signal(SIGSEGV, SIG_DFL); /* cmocka's handler would turn the fault into a test failure in the child */
    il_backend *g;
    il_arena a;
    double *p;
    if (il_backend_create("cpu-guard", NULL, &g) != IL_OK) _exit(2);
    if (il_arena_init_for(&a, g, IL_MEM_WORKSPACE, NULL, 0) != IL_OK) _exit(3);
    if (il_arena_calloc(&a, 16, sizeof *p, (void **)&p) != IL_OK) _exit(4);
    volatile double v = p[0]; /* the deliberate host read */
    (void)v;
    _exit(0); /* not reached when the guard works */
  }
  int status = 0;
  assert_int_equal(waitpid(pid, &status, 0), pid);
  if (!WIFSIGNALED(status))
    fail_msg("the child was not killed by a signal: it exited with %d", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  assert_int_equal(WTERMSIG(status), SIGSEGV);
  /* host writes fault the same way (also in a child) */
  fflush(NULL);
  const pid_t pid2 = fork();
  assert_true(pid2 >= 0);
  if (pid2 == 0) {
    signal(SIGSEGV, SIG_DFL);
    il_backend *g;
    void *q;
    if (il_backend_create("cpu-guard", NULL, &g) != IL_OK) _exit(2);
    if (g->ops->alloc(g->ctx, 64, &q) != IL_OK) _exit(3);
    ((volatile double *)q)[3] = 1.0;
    _exit(0);
  }
  assert_int_equal(waitpid(pid2, &status, 0), pid2);
  assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
}

/* Through the backend's ops the same memory is readable and writable. */
static void test_backend_ops_reach_guarded_memory(void **state) {
  enum { n = 1000 };
  double h[n], back[n], sq;
  for (int i = 0; i < n; i++) h[i] = 0.5 * i - 7;
  double *d = dev(h, n), *z = dev(NULL, n);
  host(back, d, n);
  assert_memory_equal(back, h, sizeof h);
  host(back, z, n); /* zero-filled by the space's zero op */
  for (int i = 0; i < n; i++) assert_true(back[i] == 0);
  assert_ok(IL_BE(be, axpby, (size_t)n, 2.0, d, 1.0, z)); /* z = 2 d */
  assert_ok(il_copy(be, d, z, n));
  host(back, d, n);
  for (int i = 0; i < n; i++) assert_true(back[i] == 2 * h[i]);
  assert_ok(IL_BE(be, sqdist, (size_t)n, d, z, &sq)); /* a sync point: host out */
  assert_true(sq == 0);
}

/* A training forward + backward of Newton/implicit (and of fp/unroll, which tapes
 * every iterate) on cpu-guard: the guard saw at least as many bytes at its peak as
 * the arenas counted in the space, and all of them are released afterwards. */
static void test_every_counted_byte_is_guarded(void **state) {
  enum { n = 24, B = 6 };
  double W[n * n], x[B * n], C[B * n], dx[B * n], dW[n * n], out[B * n];
  make_problem(n, B, 1.0, 1.0, 71, W, x);
  for (int i = 0; i < B * n; i++) C[i] = sin(0.3 * i);
  const char *cases[][2] = {{"newton", "implicit"}, {"fp", "unroll"}, {"newton", "unroll"}};
  for (int k = 0; k < 3; k++) {
    il_backend *keep = be; /* a fresh instance, so its peak is this step's */
    il_arena keep_space = tspace;
    assert_int_equal(setup_device("cpu-guard"), 0);
    il_memstats mem = {0};
    il_layer L;
    il_layer_config cfg = {.solver = cases[k][0], .backward = cases[k][1], .tol = 1e-10, .max_iter = 300};
    assert_ok(layer_create_h(&L, &cfg, n, W, &mem));
    memset(dx, 0, sizeof dx);
    memset(dW, 0, sizeof dW);
    L.diag_now = 1; /* the diagnostics' buffers too */
    layer_forward_h(&L, B, x, out, 1);
    assert_int_equal(L.fres.reason, IL_REASON_CONVERGED);
    layer_backward_h(&L, C, dx, dW);
    size_t live, peak;
    be->ops->mem_stats(be->ctx, &live, &peak);
    print_message("%s/%s: guard peak %zu bytes (%zu of them the test's tensors), arenas' space peak %zu, "
                  "saved peak %zu\n", cases[k][0], cases[k][1], peak, tspace.reserved, mem.space_peak,
                  mem.peak[IL_MEM_SAVED]);
    assert_true(mem.space_peak > 0);
    assert_true(mem.space_peak <= mem.peak_total);
    assert_true(peak >= mem.space_peak);
    assert_true(peak - tspace.reserved >= mem.space_peak); /* the layer's own blocks alone */
    /* and what the guard holds is exactly the blocks of the space arenas: nothing is
     * allocated in the space behind the arenas' (and so the memory report's) back */
    assert_int_equal(live, tspace.reserved + L.saved.reserved + L.ws.reserved);
    assert_null(L.hsaved.space);
    assert_null(L.hws.space);
    il_layer_destroy(&L);
    assert_int_equal(mem.space_current, 0);
    il_arena_destroy(&tspace);
    be->ops->mem_stats(be->ctx, &live, &peak);
    assert_int_equal(live, 0); /* every block went back */
    il_backend_destroy(be);
    be = keep;
    tspace = keep_space;
  }
}

int main(void) {
  const struct CMUnitTest tests[] = {
      cmocka_unit_test_setup_teardown(test_host_read_of_guarded_tensor_faults, guard_setup, teardown),
      cmocka_unit_test_setup_teardown(test_backend_ops_reach_guarded_memory, guard_setup, teardown),
      cmocka_unit_test_setup_teardown(test_every_counted_byte_is_guarded, guard_setup, teardown),
  };
  return cmocka_run_group_tests(tests, NULL, NULL);
}
