/* bench/ilbench.c: the `ilbench` program: git-style subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "commands.h"
#include "il_status.h"

int il_main_argc;
char **il_main_argv;

void il_report_error(const char *command) {
  const char *msg = il_error_message();
  fprintf(stderr, "ilbench %s: error: %s\n", command, msg[0] ? msg : "unknown error");
  if (getenv("ILBENCH_TRACE")) fprintf(stderr, "%s", il_error_trace_text());
}

double il_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

unsigned long long il_phys_mem(void) {
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGE_SIZE);
  return (pages > 0 && page > 0) ? (unsigned long long)pages * (unsigned long long)page : 0ULL;
}

static const struct {
  const char *name;
  int (*fn)(int, char **);
  const char *summary;
} commands[] = {
    {"train", il_cmd_train, "train the seed's MNIST model with an implicit layer"},
    {"sweep", il_cmd_sweep, "train every point of a Cartesian product of options (job-array aware)"},
    {"merge", il_cmd_merge, "combine HDF5 results files into one"},
    {"layer", il_cmd_layer, "time one implicit layer forward+backward on random data"},
    {"gradcheck", il_cmd_gradcheck, "finite differences in float64 against a backward mode"},
    {"info", il_cmd_info, "versions, backends, BLAS, solvers and backward modes"},
    {"selftest", il_cmd_selftest, "run every op of a backend against a float64 reference"},
};

static void usage(FILE *f) {
  fprintf(f, "usage: ilbench <command> [options]   (ilbench <command> --help for its options)\n\ncommands:\n");
  for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
    fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

int main(int argc, char **argv) {
  /* Every subcommand runs as an MPI program (a lone process is a singleton
   * world of size 1). Only the main thread calls MPI; OpenMP threads do not. */
  int provided, rc = 2;
  if (MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
    fprintf(stderr, "ilbench: error: MPI_Init_thread failed\n");
    return 1;
  }
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  il_main_argc = argc;
  il_main_argv = argv;
  if (argc < 2) {
    if (rank == 0) usage(stderr);
  } else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    if (rank == 0) usage(stdout);
    rc = 0;
  } else {
    size_t i;
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
      if (strcmp(argv[1], commands[i].name) == 0) break;
    if (i < sizeof commands / sizeof commands[0]) {
      rc = commands[i].fn(argc - 2, argv + 2);
    } else if (rank == 0) {
      fprintf(stderr, "ilbench: error: unknown command '%s' (valid: train, sweep, merge, layer, gradcheck, info, selftest)\n", argv[1]);
    }
  }
  MPI_Finalize();
  return rc;
}
