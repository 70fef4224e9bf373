/* bench/cmd_info.c: what this build contains. */
#include <stdio.h>
#include <string.h>

#include <hdf5.h>
#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "il_layer.h"
#include "il_solver.h"

char *openblas_get_config(void);

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
  printf("devices          (--device NAME)\n");
  for (int i = 0; i < il_backend_count(); i++) {
    const il_backend_ops *bo = il_backend_at(i);
    il_backend *be;
    const il_backend_options opt = {.threads = 1};
    char note[256] = "";
    if (il_backend_create(bo->name, &opt, &be) == IL_OK) {
      if (bo->describe) bo->describe(be->ctx, note, sizeof note);
      il_backend_destroy(be);
    } else {
      snprintf(note, sizeof note, "unavailable: %s", il_error_message());
      il_error_clear();
    }
    printf("  %-14s %s\n  %-14s   %s\n", bo->name, bo->summary, "", note);
  }
#ifndef ILBENCH_HAVE_CUDA
  printf("  (CUDA backend not built)\n");
#endif
#ifdef IL_HAVE_OPENBLAS_INFO
  printf("BLAS             OpenBLAS: %s\n", openblas_get_config());
  printf("threads          BLAS runs single-threaded; --threads T splits GEMM rows and batched LUs over T OpenMP threads\n");
#else
  printf("BLAS             reference CBLAS/LAPACK\n");
#endif
  printf("solvers          %s\n", il_solver_names());
  printf("backward modes   %s\n", il_backward_names());
  printf("cells            %s\n", il_cell_names());
  int i_cell = 0;
  for (const il_cell_ops *co; (co = il_cell_at(i_cell)); i_cell++) printf("  %-14s %s\n", co->name, co->summary);
  char mpiver[MPI_MAX_LIBRARY_VERSION_STRING];
  int len = 0, size = 1;
  MPI_Get_library_version(mpiver, &len);
  MPI_Comm_size(MPI_COMM_WORLD, &size);
  char *nl = strchr(mpiver, '\n');
  if (nl) *nl = '\0';
  unsigned maj = 0, min = 0, rel = 0;
  H5get_libversion(&maj, &min, &rel);
  printf("MPI              %s (this run: %d rank%s)\n", mpiver, size, size == 1 ? "" : "s");
#ifdef H5_HAVE_PARALLEL
  printf("HDF5             %u.%u.%u, parallel (MPI-IO)\n", maj, min, rel);
#else
  printf("HDF5             %u.%u.%u, serial\n", maj, min, rel);
#endif
  printf("compiler         %s, C%ld\n", __VERSION__, (long)__STDC_VERSION__);
  return 0;
}
