/* bench/cmd_info.c: what this build contains. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>
#include <mpi.h>

#include "backends/cpu_blas_core.h"

#include "cli_args.h"
#include "commands.h"
#include "il_layer.h"
#include "il_gpu.h"
#include "il_solver.h"
#ifdef ILBENCH_HAVE_CUDA
#include <stdlib.h>

#include "il_cuda.h"
#endif

char *openblas_get_config(void);

/* Build options (bench/CMakeLists.txt defines them; 0 when built some other way). */
#ifndef ILBENCH_BUILD_TYPE
#define ILBENCH_BUILD_TYPE "unknown"
#endif
#ifndef ILBENCH_BUILD_NATIVE
#define ILBENCH_BUILD_NATIVE 0
#endif
#ifndef ILBENCH_BUILD_SANITIZE
#define ILBENCH_BUILD_SANITIZE 0
#endif
#ifndef ILBENCH_BUILD_OPENMP
#define ILBENCH_BUILD_OPENMP 0
#endif

/* The version, git describe and build options: `ilbench version`, `--version`, and the head of `info`. */
static void print_version(void) {
  printf("ilbench %s (git %s)\n", ILBENCH_VERSION, ILBENCH_GIT);
  printf("build            %s, %s, %s, %s\n", ILBENCH_BUILD_TYPE,
         ILBENCH_BUILD_NATIVE ? "-march=native" : "portable (no -march=native)",
         ILBENCH_BUILD_OPENMP ? "OpenMP" : "no OpenMP",
         ILBENCH_BUILD_SANITIZE ? "sanitizers AddressSanitizer+UBSan" : "no sanitizers");
  printf("precisions       float32 (train, sweep, layer), float64 (gradcheck)\n");
#ifdef ILBENCH_HAVE_CUDA
  int drv = 0, rt = 0;
  il_cuda_versions(&drv, &rt);
  printf("CUDA             backend built (sm_%s), status GPU-unverified; runtime %d.%d, driver ", ILBENCH_CUDA_ARCH,
         rt / 1000, rt % 1000 / 10);
  if (drv) printf("%d.%d\n", drv / 1000, drv % 1000 / 10);
  else printf("none\n");
#else
  printf("CUDA             backend not built\n");
#endif
#ifdef IL_HAVE_OPENBLAS_INFO
  printf("BLAS             OpenBLAS\n");
#else
  printf("BLAS             reference CBLAS/LAPACK\n");
#endif
#if defined(__GNUC__) && !defined(__clang__)
  printf("compiler         gcc %s, C%ld\n", __VERSION__, (long)__STDC_VERSION__);
#else
  printf("compiler         %s, C%ld\n", __VERSION__, (long)__STDC_VERSION__);
#endif
}

int il_cmd_version(int argc, char **argv) {
  static const il_cli_spec spec[] = {{"help", 0, "show this help", NULL}};
  il_cli cli;
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (il_cli_parse(&cli, "version", spec, 1, argc, argv, 0) != IL_OK) {
    if (rank == 0) il_report_error("version");
    return 2;
  }
  if (rank != 0) return 0;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("version", "   (also: ilbench --version)", spec, 1);
    return 0;
  }
  print_version();
  return 0;
}

/* --grid: build the grid (collective: every rank takes part) and describe it on rank 0.
 * Returns -1 to go on with the rest of info (rank 0), or the exit code. */
static int info_grid(const il_cli *cli) {
  int gpr = 1, gpc = 1, grid_made = 0, wrank = 0;
  long gnb = IL_GRID_NB_DEFAULT;
  static il_grid grid;
  MPI_Comm_rank(MPI_COMM_WORLD, &wrank);
  if (il_grid_options(cli, &gpr, &gpc, &gnb) != IL_OK || il_grid_build(gpr, gpc, gnb, &grid, &grid_made) != IL_OK) {
    if (wrank == 0) il_report_error("info");
    return 2;
  }
  if (!grid_made) return -1;
  char gd[160], note[512] = "";
  il_grid_describe(&grid, gd, sizeof gd);
  il_backend *be;
  const il_backend_options opt = {.threads = 1, .grid = &grid};
  const il_status st = il_backend_create("scalapack", &opt, &be);
  if (st == IL_OK) {
    be->ops->describe(be->ctx, note, sizeof note);
    il_backend_destroy(be);
  }
  if (wrank == 0) {
    printf("grid             %s\n", gd);
    printf("  groups         %d of %d ranks (world ranks %d g .. %d g + %d); one BLACS context each, %d x %d, row-major "
           "(group rank r at row r / %d, column r %% %d)\n", grid.D, gpr * gpc, gpr * gpc, gpr * gpc, gpr * gpc - 1,
           gpr, gpc, gpc, gpc);
    printf("  backend        %s\n", st == IL_OK ? note : il_error_message());
  }
  il_grid_free(&grid);
  if (st != IL_OK) return 1;
  return wrank == 0 ? -1 : 0;
}

int il_cmd_info(int argc, char **argv) {
  static const il_cli_spec spec[] = {
      {"grid", 1, "PRxPC: also build this process grid over the world's ranks and describe it (rank 0 prints)", NULL},
      {"grid-nb", 1, "with --grid: the block size", "64"},
      {"help", 0, "show this help", NULL}};
  const int nspec = (int)(sizeof spec / sizeof *spec);
  il_cli cli;
  if (il_cli_parse(&cli, "info", spec, nspec, argc, argv, 0) != IL_OK) {
    il_report_error("info");
    return 2;
  }
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("info", "[--grid PRxPC [--grid-nb NB]]", spec, nspec);
    return 0;
  }
  if (il_cli_has(&cli, "grid")) {
    const int rc = info_grid(&cli);
    if (rc >= 0) return rc;
  }
  print_version();
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
#else
  {
    const int n = il_cuda_device_count();
    const char *vis = getenv("CUDA_VISIBLE_DEVICES");
    printf("GPUs             %d visible%s%s%s\n", n, vis ? " (CUDA_VISIBLE_DEVICES=" : "", vis ? vis : "", vis ? ")" : "");
    for (int i = 0; i < n; i++) {
      char name[256];
      il_cuda_device_name(i, name, sizeof name);
      printf("  GPU %-10d %s\n", i, name);
    }
  }
#endif
  {
    int nv = 0;
    if (il_nccl_available(&nv))
      printf("NCCL             %d.%d.%d (loaded at run time; --allreduce auto uses it when no two ranks share a GPU)\n",
             nv / 10000, nv / 100 % 100, nv % 100);
    else
      printf("NCCL             not found (device gradients go through MPI, staged in pinned host memory)\n");
  }
#ifdef IL_HAVE_OPENBLAS_INFO
  printf("BLAS config      OpenBLAS: %s\n", openblas_get_config());
  il_blas_core_info bc;
  il_blas_core_query(&bc);
  const char *forced = getenv("OPENBLAS_CORETYPE"), *by_us = getenv("ILBENCH_BLAS_REEXEC");
  printf("BLAS kernels     %s on this %s CPU%s%s%s%s\n", bc.core, bc.cpu_level[0] ? bc.cpu_level : "pre-AVX2",
         forced ? " (OPENBLAS_CORETYPE=" : "", forced ? forced : "",
         forced ? (by_us ? ", set by ilbench: OpenBLAS's own table fell short of this CPU)" : ", set by the user)") : "",
         bc.suggest[0] ? "; below this CPU's SIMD level: sgemm runs at a fraction of its speed" : "");
  printf("threads          BLAS runs single-threaded; --threads T runs the implicit layer on T row shards (one sync per\n"
         "                 solver iteration) and splits the linear layers' GEMM rows; threads are bound to CPUs of their own\n");
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
  return 0;
}
