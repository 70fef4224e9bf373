/* bench/ilbench.c: the `ilbench` program: git-style subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "results_h5.h"
#include "il_grid.h"
#include "il_status.h"
#include "backends/cpu_blas_core.h"

int il_main_argc;
char **il_main_argv;

void il_report_error(const char *command) {
  const char *msg = il_error_message();
  /* the registries and option parsers name the valid choices ("unknown solver 'nweton' (valid:
   * fp, newton, ...)"); a near miss among them gets its suggestion here, in one place */
  char hint[600];
  const int hinted = il_cli_hint(msg, hint, sizeof hint);
  fprintf(stderr, "ilbench %s: error: %s%s%s\n", command, msg[0] ? msg : "unknown error", hinted ? "; " : "",
          hinted ? hint : "");
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
    {"schema", il_cmd_schema, "the results schema as JSON (analysis/schema.json)"},
    {"version", il_cmd_version, "version, git describe and build options (also ilbench --version)"},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

static void usage(FILE *f) {
  fprintf(f, "usage: ilbench <command> [options]   (ilbench <command> -h|--help for its options)\n"
             "       ilbench -h|--help | --version\n\ncommands:\n");
  for (size_t i = 0; i < NCOMMANDS; i++) fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
}

/* An unknown command or top-level option: the nearest command or option, and the commands. */
static void unknown_command(const char *arg) {
  char names[256] = "", valid[256] = "", sug[256];
  for (size_t i = 0; i < NCOMMANDS; i++) {
    size_t u = strlen(names), v = strlen(valid);
    snprintf(names + u, sizeof names - u, "%s%s", i ? "|" : "", commands[i].name);
    snprintf(valid + v, sizeof valid - v, "%s%s", i ? ", " : "", commands[i].name);
  }
  const int opt = arg[0] == '-';
  const char *word = arg + strspn(arg, "-");
  int n = opt ? il_cli_suggest(word, "help|version", "--", sug, sizeof sug) : il_cli_suggest(word, names, "", sug, sizeof sug);
  if (!opt && n == 0) n = il_cli_suggest(word, "help|version", "--", sug, sizeof sug);
  if (opt && n == 0) n = il_cli_suggest(word, names, "", sug, sizeof sug);
  fprintf(stderr, "ilbench: error: unknown %s '%s'%s%s%s (commands: %s; options: -h|--help, --version)\n",
          opt ? "option" : "command", arg, n ? "; did you mean " : "", n ? sug : "", n ? "?" : "", valid);
}

/* OpenBLAS picks its kernels when it loads, from OPENBLAS_CORETYPE or its CPU table; an old
 * table maps new CPUs to SSE3 kernels (cpu_blas_core.h). Before MPI starts, re-run ourselves
 * once with OPENBLAS_CORETYPE set, unless the user set it or ILBENCH_BLAS_CORE=keep. `info`
 * reports the kernels and who chose them. */
static void blas_core_reexec(char **argv) {
  const char *keep = getenv("ILBENCH_BLAS_CORE");
  if (getenv("OPENBLAS_CORETYPE") || getenv("ILBENCH_BLAS_REEXEC") || (keep && strcmp(keep, "keep") == 0)) return;
  il_blas_core_info bc;
  il_blas_core_query(&bc);
  if (!bc.suggest[0]) return;
  if (setenv("OPENBLAS_CORETYPE", bc.suggest, 1) != 0 || setenv("ILBENCH_BLAS_REEXEC", "1", 1) != 0) return;
  execv("/proc/self/exe", argv);
  /* no /proc: go on with OpenBLAS's own choice, which `info` reports */
  unsetenv("OPENBLAS_CORETYPE");
}

int main(int argc, char **argv) {
  blas_core_reexec(argv);
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
  if (il_grid_register_backends() != IL_OK) { /* registry full: a build error, not a user's */
    il_report_error("ilbench");
    MPI_Abort(MPI_COMM_WORLD, 1);
  }
  if (argc < 2) {
    if (rank == 0) usage(stderr);
  } else if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
    if (rank == 0) usage(stdout);
    rc = 0;
  } else if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
    rc = il_cmd_version(argc - 2, argv + 2);
  } else {
    size_t i;
    for (i = 0; i < NCOMMANDS; i++)
      if (strcmp(argv[1], commands[i].name) == 0) break;
    if (i < NCOMMANDS) {
      rc = commands[i].fn(argc - 2, argv + 2);
    } else if (rank == 0) {
      unknown_command(argv[1]);
    }
  }
  if (il_h5_unclosed()) { /* see results_h5.h: the error is reported; HDF5 must not see MPI_Finalize */
    fflush(NULL);
    _exit(rc ? rc : 1);
  }
  MPI_Finalize();
  return rc;
}
