/* tests/test_results_lock.c: the results file's writer lock (bench/results_lock.h).
 * Another process is a forked child; children report by exit status only
 * (a cmocka assert in a child would jump into the parent's test runner). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "results_lock.h"
#include "test_util.h"

static char g_dir[256];

static void path_in(char *buf, size_t n, const char *name) { snprintf(buf, n, "%s/%s", g_dir, name); }

static double now_s(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int exists(const char *p) {
  struct stat sb;
  return stat(p, &sb) == 0;
}

static void read_text(const char *p, char *buf, size_t n) {
  buf[0] = '\0';
  FILE *f = fopen(p, "r");
  if (!f) return;
  size_t k = fread(buf, 1, n - 1, f);
  buf[k] = '\0';
  fclose(f);
}

/* In a child: try the lock with wait_s; exit 0 when refused with a message
 * holding `want` (and `want2` when not NULL), 10 when taken, 11 on another
 * status, 12 when the message lacks a word. */
static void child_expect_refused(const char *path, double wait_s, const char *want, const char *want2) {
  il_results_lock *l = NULL;
  il_error_clear();
  il_status st = il_results_lock_acquire(path, wait_s, &l);
  if (st == IL_OK) {
    il_results_lock_release(l);
    _exit(10);
  }
  const char *m = il_error_message();
  if (st != IL_ERR_IO) {
    fprintf(stderr, "child: status %d: %s\n", (int)st, m);
    _exit(11);
  }
  if (!strstr(m, want) || (want2 && !strstr(m, want2))) {
    fprintf(stderr, "child: message lacks '%s'/'%s': %s\n", want, want2 ? want2 : "", m);
    _exit(12);
  }
  _exit(0);
}

static int wait_child(pid_t pid) {
  int ws = 0;
  while (waitpid(pid, &ws, 0) < 0 && errno == EINTR) {
  }
  return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + (WIFSIGNALED(ws) ? WTERMSIG(ws) : 0);
}

static void test_lock_path(void **state) {
  (void)state;
  char buf[PATH_MAX];
  il_error_clear();
  assert_ok(il_results_lock_path("dir/r.h5", buf, sizeof buf));
  assert_string_equal(buf, "dir/r.h5.lock");
  assert_ok(il_results_lock_path("r.h5", buf, sizeof buf));
  assert_string_equal(buf, "r.h5.lock");
  assert_int_equal(il_results_lock_path("dir/", buf, sizeof buf), IL_ERR_ARG);
  assert_int_equal(il_results_lock_path("dir/r.h5", buf, 8), IL_ERR_ARG);
}

/* Held by us, refused to a child: the message names the file, the lock file, our pid and host. */
static void test_second_writer_refused(void **state) {
  (void)state;
  char path[PATH_MAX], lp[PATH_MAX], want[64], text[512], host[256];
  path_in(path, sizeof path, "a.h5");
  assert_ok(il_results_lock_path(path, lp, sizeof lp));
  il_results_lock *l = NULL;
  assert_ok(il_results_lock_acquire(path, 0, &l));
  assert_true(exists(lp));
  read_text(lp, text, sizeof text);
  snprintf(want, sizeof want, "pid=%ld host=", (long)getpid());
  assert_non_null(strstr(text, want));
  assert_non_null(strstr(text, " since="));
  gethostname(host, sizeof host);
  host[sizeof host - 1] = '\0';

  snprintf(want, sizeof want, "by pid %ld on host ", (long)getpid());
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_expect_refused(path, 0, want, "--wait-lock SECONDS");
  assert_int_equal(wait_child(pid), 0);
  pid = fork();
  if (pid == 0) child_expect_refused(path, 0, lp, host);
  assert_int_equal(wait_child(pid), 0);

  /* a second open file in this process conflicts too (flock is per open file) */
  il_results_lock *l2 = NULL;
  il_error_clear();
  assert_int_equal(il_results_lock_acquire(path, 0, &l2), IL_ERR_IO);
  assert_null(l2);
  assert_non_null(strstr(il_error_message(), path));
  assert_non_null(strstr(il_error_message(), "is being written by"));
  assert_null(strstr(il_error_message(), "after waiting"));

  il_results_lock_release(l);
  assert_false(exists(lp)); /* removed on release */
  assert_ok(il_results_lock_acquire(path, 0, &l));
  il_results_lock_release(l);
  il_results_lock_release(NULL);
}

/* A child holds the lock for 0.3 s: we get it within the 5 s we wait; a
 * shorter wait than the hold is refused, saying how long it waited. */
static void test_wait(void **state) {
  (void)state;
  char path[PATH_MAX];
  path_in(path, sizeof path, "w.h5");
  for (int pass = 0; pass < 2; pass++) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    const double hold = pass == 0 ? 0.3 : 1.5;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
      il_results_lock *cl = NULL;
      if (il_results_lock_acquire(path, 0, &cl) != IL_OK) _exit(1);
      if (write(fds[1], "x", 1) != 1) _exit(2);
      struct timespec t = {(time_t)hold, (long)((hold - (double)(time_t)hold) * 1e9)};
      nanosleep(&t, NULL);
      il_results_lock_release(cl);
      _exit(0);
    }
    close(fds[1]);
    char c;
    assert_int_equal(read(fds[0], &c, 1), 1); /* the child holds it now */
    close(fds[0]);
    il_results_lock *l = NULL;
    double t0 = now_s();
    if (pass == 0) {
      assert_ok(il_results_lock_acquire(path, 5.0, &l));
      double dt = now_s() - t0;
      assert_true(dt > 0.15 && dt < 4.0);
      il_results_lock_release(l);
    } else {
      il_error_clear();
      assert_int_equal(il_results_lock_acquire(path, 0.3, &l), IL_ERR_IO);
      double dt = now_s() - t0;
      assert_true(dt >= 0.29 && dt < 1.4);
      assert_non_null(strstr(il_error_message(), "after waiting 0.3 s"));
      assert_non_null(strstr(il_error_message(), "is being written by pid"));
    }
    assert_int_equal(wait_child(pid), 0);
  }
}

/* A holder killed with SIGKILL leaves its lock file; the next writer takes it. */
static void test_stale_lock_file(void **state) {
  (void)state;
  char path[PATH_MAX], lp[PATH_MAX], text[512], want[64];
  path_in(path, sizeof path, "s.h5");
  assert_ok(il_results_lock_path(path, lp, sizeof lp));
  int fds[2];
  assert_int_equal(pipe(fds), 0);
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) {
    il_results_lock *cl = NULL;
    if (il_results_lock_acquire(path, 0, &cl) != IL_OK) _exit(1);
    if (write(fds[1], "x", 1) != 1) _exit(2);
    for (;;) pause();
  }
  close(fds[1]);
  char c;
  assert_int_equal(read(fds[0], &c, 1), 1);
  close(fds[0]);
  kill(pid, SIGKILL);
  assert_int_equal(wait_child(pid), 128 + SIGKILL);
  assert_true(exists(lp)); /* left behind, unlocked */
  read_text(lp, text, sizeof text);
  snprintf(want, sizeof want, "pid=%ld ", (long)pid);
  assert_non_null(strstr(text, want));

  il_results_lock *l = NULL;
  assert_ok(il_results_lock_acquire(path, 0, &l));
  read_text(lp, text, sizeof text);
  snprintf(want, sizeof want, "pid=%ld ", (long)getpid());
  assert_non_null(strstr(text, want)); /* rewritten, not appended */
  assert_int_equal(strncmp(text, want, strlen(want)), 0);
  il_results_lock_release(l);
  assert_false(exists(lp));
}

/* A base name of 252 characters: "<base>.lock" passes NAME_MAX, so the lock
 * file gets the hashed name in the same directory, and it works. */
static void test_long_name(void **state) {
  (void)state;
  char base[253], path[PATH_MAX], lp[PATH_MAX], want[PATH_MAX];
  memset(base, 'r', 252);
  base[252] = '\0';
  path_in(path, sizeof path, base);
  assert_ok(il_results_lock_path(path, lp, sizeof lp));
  snprintf(want, sizeof want, "%s/.ilbench-", g_dir);
  assert_int_equal(strncmp(lp, want, strlen(want)), 0);
  assert_int_equal(strlen(lp), strlen(want) + 16 + strlen(".lock"));
  assert_non_null(strstr(lp, ".lock"));
  il_results_lock *l = NULL;
  assert_ok(il_results_lock_acquire(path, 0, &l));
  assert_true(exists(lp));
  pid_t pid = fork();
  assert_true(pid >= 0);
  if (pid == 0) child_expect_refused(path, 0, lp, "is being written by pid");
  assert_int_equal(wait_child(pid), 0);
  il_results_lock_release(l);
  assert_false(exists(lp));
  /* 250 characters still fit: "<base>.lock" is 255 */
  base[250] = '\0';
  path_in(path, sizeof path, base);
  assert_ok(il_results_lock_path(path, lp, sizeof lp));
  assert_int_equal(strncmp(lp, path, strlen(path)), 0);
  assert_string_equal(lp + strlen(path), ".lock");
}

/* ILBENCH_NO_LOCK=1: no lock, no lock file, a second "writer" is let in. */
static void test_no_lock_env(void **state) {
  (void)state;
  char path[PATH_MAX], lp[PATH_MAX];
  path_in(path, sizeof path, "n.h5");
  assert_ok(il_results_lock_path(path, lp, sizeof lp));
  assert_int_equal(setenv("ILBENCH_NO_LOCK", "1", 1), 0);
  il_results_lock *a = NULL, *b = NULL;
  assert_ok(il_results_lock_acquire(path, 0, &a));
  assert_non_null(a);
  assert_false(exists(lp));
  assert_ok(il_results_lock_acquire(path, 0, &b));
  il_results_lock_release(b);
  il_results_lock_release(a);
  unsetenv("ILBENCH_NO_LOCK");
  assert_false(exists(lp));
}

static void test_bad_args(void **state) {
  (void)state;
  char path[PATH_MAX];
  il_results_lock *l = NULL;
  path_in(path, sizeof path, "b.h5");
  assert_int_equal(il_results_lock_acquire(path, -1, &l), IL_ERR_ARG);
  assert_null(l);
  path_in(path, sizeof path, "missing-dir/b.h5");
  il_error_clear();
  assert_int_equal(il_results_lock_acquire(path, 0, &l), IL_ERR_IO);
  assert_non_null(strstr(il_error_message(), "missing-dir/b.h5.lock"));
  assert_null(l);
}

static int setup(void **state) {
  (void)state;
  const char *tmp = getenv("TMPDIR");
  snprintf(g_dir, sizeof g_dir, "%s/il-lock-XXXXXX", tmp && tmp[0] ? tmp : "/tmp");
  return mkdtemp(g_dir) ? 0 : -1;
}

static int teardown(void **state) {
  (void)state;
  char cmd[PATH_MAX + 16];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
  return system(cmd) == 0 ? 0 : -1;
}

int main(void) {
  unsetenv("ILBENCH_NO_LOCK");
  const struct CMUnitTest tests[] = {
      cmocka_unit_test(test_lock_path),   cmocka_unit_test(test_second_writer_refused),
      cmocka_unit_test(test_wait),        cmocka_unit_test(test_stale_lock_file),
      cmocka_unit_test(test_long_name),   cmocka_unit_test(test_no_lock_env),
      cmocka_unit_test(test_bad_args),
  };
  return cmocka_run_group_tests(tests, setup, teardown);
}
