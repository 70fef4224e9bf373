/* bench/cmd_info.c: what this build contains. */
#include <stdio.h>
#include <string.h>

#include "cli_args.h"
#include "commands.h"
#include "il_layer.h"
#include "il_solver.h"

char *openblas_get_config(void);
int openblas_get_num_threads(void);

int il_cmd_info(int argc, char **argv) {
  static const il_cli_spec spec[] = {{"help", 0, "show this help", NULL}};
  il_cli cli;
  if (il_cli_parse(&cli, "info", spec, 1, argc, argv, 0) != IL_OK) {
    il_report_error("info");
    return 2;
  }
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("info", "", spec, 1);
    return 0;
  }
  printf("ilbench %s (git %s)\n", ILBENCH_VERSION, ILBENCH_GIT);
  printf("precisions       float32 (train, layer), float64 (gradcheck)\n");
  printf("backends         cpu");
#ifdef ILBENCH_HAVE_CUDA
  printf(", cuda");
#else
  printf(" (CUDA backend not built)");
#endif
  printf("\n");
#ifdef IL_HAVE_OPENBLAS_INFO
  printf("BLAS             OpenBLAS: %s (threads %d)\n", openblas_get_config(), openblas_get_num_threads());
#else
  printf("BLAS             reference CBLAS/LAPACK\n");
#endif
  printf("solvers          %s\n", il_solver_names());
  printf("backward modes   %s\n", il_backward_names());
  printf("cells            tanh: f(z) = tanh(W z + x)\n");
  printf("MPI / HDF5       not part of this build (single process)\n");
  printf("compiler         %s, C%ld\n", __VERSION__, (long)__STDC_VERSION__);
  return 0;
}
