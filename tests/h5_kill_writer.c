/* tests/h5_kill_writer.c: helper for test_h5_killsafe.sh. Under mpirun, writes
 * one run to a results file, appending an epoch (and 3 steps) every
 * <sleep_s> seconds forever, until killed. After each flushed epoch rank 0
 * prints "flushed epoch <n>"; every rank first writes its pid to
 * <path>.pid<rank> so the script can kill the ranks themselves.
 *
 * usage: h5_kill_writer <results.h5> [sleep_s (default 0.2)]
 * Row values (checked by the script): epoch row n has epoch = n,
 * lr = 0.1, train_loss = 1/(n+1), train_batches = 10n, diverged_batches = n;
 * step row (n, s) has epoch = n, step = s, loss = n + s/10, fwd_iters = 10n + s,
 * and the defaults of il_step_row_init (diagnostics NaN, nan_origin 0,
 * nan_iter -1) except diag_cond = s + 1 and diag_preact_max = 89.5 + s. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <mpi.h>

#include "results_h5.h"

static void die(int rank, const char *what) {
  fprintf(stderr, "h5_kill_writer rank %d: %s: %s\n", rank, what, il_error_message());
  MPI_Abort(MPI_COMM_WORLD, 1);
}

int main(int argc, char **argv) {
  MPI_Init(&argc, &argv);
  int rank;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (argc < 2) {
    if (rank == 0) fprintf(stderr, "usage: h5_kill_writer <results.h5> [sleep_s]\n");
    MPI_Finalize();
    return 2;
  }
  double sleep_s = argc > 2 ? atof(argv[2]) : 0.2;
  char pidfile[4096];
  snprintf(pidfile, sizeof pidfile, "%s.pid%d", argv[1], rank);
  FILE *fp = fopen(pidfile, "w");
  if (!fp) die(rank, "cannot write pid file");
  fprintf(fp, "%ld\n", (long)getpid());
  fclose(fp);

  il_h5_file *f = NULL;
  if (il_h5_open(MPI_COMM_WORLD, argv[1], IL_H5_FORCE, argc, argv, &f) != IL_OK) die(rank, "open");
  il_run_info ri;
  il_run_info_init(&ri, "killed");
  if (il_run_attr_s(&ri, "solver", "fp") != IL_OK || il_run_attr_i(&ri, "epochs", 1000000) != IL_OK)
    die(rank, "run info");
  if (il_h5_run_begin(f, &ri) != IL_OK) die(rank, "run_begin");
  for (int n = 0;; n++) {
    il_epoch_row e;
    il_step_row s[3];
    memset(&e, 0, sizeof e);
    e.epoch = n;
    e.lr = 0.1;
    e.train_loss = 1.0 / (n + 1);
    e.train_batches = 10 * (int64_t)n;
    e.diverged_batches = n;
    for (int k = 0; k < 3; k++) {
      il_step_row_init(&s[k]);
      s[k].diag_cond = k + 1;
      s[k].diag_preact_max = 89.5 + k;
      s[k].epoch = n;
      s[k].step = k;
      s[k].loss = n + k / 10.0;
      s[k].fwd_iters = 10 * n + k;
    }
    if (il_h5_run_epoch(f, &e, s, 3) != IL_OK) die(rank, "run_epoch");
    if (rank == 0) {
      printf("flushed epoch %d\n", n);
      fflush(stdout);
    }
    struct timespec ts = {(time_t)sleep_s, (long)((sleep_s - (double)(time_t)sleep_s) * 1e9)};
    nanosleep(&ts, NULL);
  }
}
