/* bench/cmd_selftest.c: `ilbench selftest`, the backend-ops self-test
 * (core/il_selftest.h) at run time: every op of one backend (or of all) in
 * float32 and float64 against a float64 reference. Exit 1 when a case fails.
 * Runs on rank 0 only. */
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "il_backend.h"
#include "il_selftest.h"

/* 0 passed, 1 failed, 2 skipped (device missing), 3 the named device is missing */
static int run_one(const char *name, int prec, int threads, unsigned long long seed, int verbose, int named) {
  il_selftest_summary sum;
  il_error_clear();
  il_status s = prec == 32 ? il_selftest_run_f32(name, threads, seed, verbose, stdout, &sum)
                           : il_selftest_run_f64(name, threads, seed, verbose, stdout, &sum);
  fflush(stdout);
  if (!sum.created) {
    if (s == IL_ERR_UNSUPPORTED && !named) {
      printf("selftest %s (float%d): skipped, device missing: %s\n", name, prec, il_error_message());
      il_error_clear();
      return 2;
    }
    il_report_error("selftest");
    return s == IL_ERR_UNSUPPORTED ? 3 : 1;
  }
  (prec == 32 ? il_selftest_print_f32 : il_selftest_print_f64)(&sum, stdout);
  fflush(stdout);
  if (s != IL_OK) il_report_error("selftest");
  il_error_clear();
  return s != IL_OK;
}

int il_cmd_selftest(int argc, char **argv) {
  static const il_cli_spec spec[] = {
      {"device", 1, "backend to test (default: every registered backend)", NULL},
      {"threads", 1, "threads of the backend instance", "1"},
      {"seed", 1, "seed of the random inputs", "0"},
      {"precision", 1, "32, 64 or all", "all"},
      {"verbose", 0, "print one line per case", NULL},
      {"help", 0, "show this help", NULL},
  };
  const int nspec = (int)(sizeof spec / sizeof *spec);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return 0;
  il_cli cli;
  long threads, seed;
  const char *prec;
  if (il_cli_parse(&cli, "selftest", spec, nspec, argc, argv, 0) != IL_OK) goto usage;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("selftest", "[--device NAME] [--threads T] [--seed S] [--precision 32|64|all] [--verbose]", spec,
                 nspec);
    return 0;
  }
  if (il_cli_int(&cli, "threads", 1, 1, 1024, &threads) != IL_OK || il_cli_int(&cli, "seed", 0, 0, 0x7fffffffL, &seed) != IL_OK ||
      il_cli_choice(&cli, "precision", "all", "32|64|all", &prec) != IL_OK)
    goto usage;
  const char *device = il_cli_get(&cli, "device", NULL);
  if (device && !il_backend_find(device)) {
    IL_ERR(IL_ERR_ARG, "unknown --device '%s' (valid: %s)", device, il_backend_names());
    goto usage;
  }
  int failed = 0, run = 0, missing = 0;
  for (int i = 0; i < il_backend_count(); i++) {
    const char *name = il_backend_at(i)->name;
    if (device && strcmp(device, name) != 0) continue;
    for (int p = 32; p <= 64; p += 32) {
      if (strcmp(prec, "all") != 0 && (p == 32) != (strcmp(prec, "32") == 0)) continue;
      const int r = run_one(name, p, (int)threads, (unsigned long long)seed, il_cli_has(&cli, "verbose"), device != NULL);
      if (r == 3) { /* --device NAME without its device: exit 2, as every command does */
        missing = 1;
        break;
      }
      failed += r == 1;
      run += r != 2;
    }
  }
  if (missing) return 2;
  printf("selftest: %d backend run(s), %d failed\n", run, failed);
  return failed ? 1 : 0;
usage:
  il_report_error("selftest");
  return 2;
}
