/* bench/cmd_merge.c: `ilbench merge a.h5 b.h5 ... -o all.h5`, combine the
 * runs of several results files (e.g. from a job array) into one. Refuses
 * incompatible schema versions, duplicate run ids and an existing output
 * (unless --force). Runs on rank 0 only. */
#include <stdio.h>
#include <string.h>

#include <mpi.h>

#include "cli_args.h"
#include "commands.h"
#include "results_h5.h"

int il_cmd_merge(int argc, char **argv) {
  static const il_cli_spec spec[] = {
      {"out", 1, "output file (also -o FILE)", NULL},
      {"force", 0, "replace an existing output file", NULL},
      {"help", 0, "show this help", NULL},
  };
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) return 0;
  il_cli cli;
  if (il_cli_parse(&cli, "merge", spec, 3, argc, argv, 16) != IL_OK) goto usage;
  if (il_cli_has(&cli, "help")) {
    il_cli_usage("merge", "IN.h5 [IN.h5 ...] -o OUT.h5", spec, 3);
    return 0;
  }
  const char *out = il_cli_get(&cli, "out", NULL), *inputs[16];
  int n = 0;
  for (int i = 0; i < cli.npositional; i++) {
    if (strcmp(cli.positional[i], "-o") == 0) {
      if (out || i + 1 >= cli.npositional) {
        IL_ERR(IL_ERR_ARG, out ? "output given twice" : "-o needs a file name");
        goto usage;
      }
      out = cli.positional[++i];
    } else {
      inputs[n++] = cli.positional[i];
    }
  }
  if (!out) {
    IL_ERR(IL_ERR_ARG, "no output file: use -o OUT.h5");
    goto usage;
  }
  if (n == 0) {
    IL_ERR(IL_ERR_ARG, "no input files");
    goto usage;
  }
  if (il_cli_check_out_path(out, "the output (-o)") != IL_OK) goto usage;
  for (int i = 0; i < n; i++) { /* HDF5 would block in open() on a FIFO: refuse special files first */
    FILE *f;
    if (il_cli_open_input(inputs[i], "input", &f) != IL_OK) {
      il_report_error("merge");
      return 1;
    }
    fclose(f);
  }
  if (il_h5_merge(out, il_cli_has(&cli, "force"), inputs, n) != IL_OK) {
    il_report_error("merge");
    return 1;
  }
  printf("merged %d file(s) into %s\n", n, out);
  return 0;
usage:
  il_report_error("merge");
  return 2;
}
