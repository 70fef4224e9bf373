/* bench/cmd_train.c: `ilbench train`, one run of the seed's MNIST experiment
 * (see train_driver.c), optionally recorded in an HDF5 results file. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sys/stat.h>

#include "commands.h"
#include "stop_signal.h"
#include "train_driver.h"

/* Results-file options shared by train and sweep. A --out whose directory is missing is a usage
 * error here, before any data is read or MPI-IO opens the file. */
il_status il_results_mode(const il_cli *cli, int *mode, const char **out) {
  *out = il_cli_get(cli, "out", NULL);
  int append = il_cli_has(cli, "append"), force = il_cli_has(cli, "force");
  if (append && force) return IL_ERR(IL_ERR_ARG, "--append and --force exclude each other");
  if ((append || force) && !*out) return IL_ERR(IL_ERR_ARG, "--%s needs --out FILE", append ? "append" : "force");
  if (*out) IL_CHECK(il_cli_check_out_path(*out, "--out"));
  *mode = append ? IL_H5_APPEND : force ? IL_H5_FORCE : IL_H5_CREATE;
  return IL_OK;
}

/* --resume FILE[:RUN]: the whole value when it names an existing file, else split at the last ':'. */
static il_status split_resume(const char *v, char *file, size_t fcap, char *run, size_t rcap) {
  struct stat sb;
  run[0] = '\0';
  const char *colon = strrchr(v, ':');
  if (stat(v, &sb) == 0 || !colon) {
    if (strlen(v) >= fcap) return IL_ERR(IL_ERR_ARG, "--resume: the path is too long");
    snprintf(file, fcap, "%s", v);
  } else {
    if ((size_t)(colon - v) >= fcap || strlen(colon + 1) >= rcap) return IL_ERR(IL_ERR_ARG, "--resume: too long");
    snprintf(file, fcap, "%.*s", (int)(colon - v), v);
    snprintf(run, rcap, "%s", colon + 1);
  }
  if (!file[0]) return IL_ERR(IL_ERR_ARG, "--resume: no file given ('%s')", v);
  return IL_OK;
}

/* The run's one-line end-of-run summary on stdout (rank 0), after the results file is closed. */
static void print_summary(const il_train_opts *o, const char *out, double seconds) {
  const il_run_summary *s = il_train_last_summary();
  printf("# done: solver=%s backward=%s epochs=%ld test_err=%.4f train_err=%.4f nan_batches=%ld time_s=%.2f", o->solver,
         o->backward, s->epochs, s->test_err, s->train_err, s->nan_batches, seconds);
  if (out) printf(" results=%s", out);
  printf("\n");
  fflush(stdout);
}

int il_cmd_train(int argc, char **argv) {
  il_dist d;
  il_cli cli;
  il_train_opts o;
  il_mnist_split train = {0}, test = {0};
  il_h5_file *h5 = NULL;
  const char *out = NULL;
  int mode, rc = 2, ran = 0, grid_made = 0;
  double t_start = 0;
  static il_grid grid;
  if (il_dist_init(&d, MPI_COMM_WORLD) != IL_OK) {
    il_report_error("train");
    return 1;
  }
  const int root = d.rank == 0;
  int ntrain;
  const il_cli_spec *train_spec = il_train_spec(&ntrain);
  static il_cli_spec spec[128];
  int nspec = 0;
  for (int i = 0; i < ntrain && nspec < 127; i++) spec[nspec++] = train_spec[i];
  spec[nspec++] = (il_cli_spec){"resume", 1,
                                "continue a running or interrupted run of FILE (the last one, or RUN) from "
                                "its last checkpoint, with the options it was started with; implies --out FILE --append",
                                NULL};
  if (il_cli_parse(&cli, "train", spec, nspec, argc, argv, 0) != IL_OK) goto fail;
  if (il_cli_has(&cli, "help")) {
    if (root) il_cli_usage("train", "[options]", spec, nspec);
    rc = 0;
    goto end;
  }
  const char *resume = il_cli_get(&cli, "resume", NULL);
  if (resume && il_cli_has(&cli, "force")) {
    IL_ERR(IL_ERR_ARG, "--resume and --force exclude each other (--force would replace the file being resumed)");
    goto fail;
  }
  if (il_train_parse(&cli, &o) != IL_OK || il_results_mode(&cli, &mode, &out) != IL_OK) goto fail;
  static char resume_file[4096], resume_run[96];
  if (resume) {
    if (split_resume(resume, resume_file, sizeof resume_file, resume_run, sizeof resume_run) != IL_OK) goto fail;
    if (out && strcmp(out, resume_file) != 0) {
      IL_ERR(IL_ERR_ARG, "--resume %s continues a run in '%s', but --out names '%s'", resume, resume_file, out);
      goto fail;
    }
    struct stat sb;
    if (stat(resume_file, &sb) != 0) {
      IL_ERR(IL_ERR_IO, "--resume: results file '%s': %s", resume_file, strerror(errno));
      goto fail;
    }
    out = resume_file;
    mode = IL_H5_APPEND;
    o.resume = 1;
  }
  /* the grid (collective; its refusals came with the options, on every rank alike) */
  if (il_grid_build(o.grid_pr, o.grid_pc, o.grid_nb, &grid, &grid_made) != IL_OK) goto fail;
  if (grid_made) o.grid = &grid;
  il_stop_install();
  rc = 1;
  /* data first: a run that cannot start must not leave a new, empty results file behind */
  if (il_train_load_data(o.data, &train, &test) != IL_OK) {
    if (root) {
      il_report_error("train");
      fprintf(stderr, "ilbench train: hint: scripts/fetch-mnist downloads MNIST into data/mnist\n");
    }
    goto end;
  }
  /* an existing results file is refused before any training is done */
  const il_h5_open_opts hopts = {.wait_lock_s = o.wait_lock_s};
  if (out && il_h5_open_ex(d.comm, out, mode, il_main_argc, il_main_argv, &hopts, &h5) != IL_OK) goto fail;
  /* a run id that sorts by time; rank 0 chooses it for everyone */
  char run_id[96] = {0};
  if (o.resume) {
    if (resume_run[0]) {
      snprintf(run_id, sizeof run_id, "%s", resume_run);
    } else {
      if (il_h5_find_resumable(h5, run_id, sizeof run_id) != IL_OK) goto fail;
      if (!run_id[0]) {
        IL_ERR(IL_ERR_ARG, "--resume: results file '%s' has no running or interrupted run to continue", out);
        goto fail;
      }
    }
  } else if (root) {
    char stamp[32];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", gmtime(&ts.tv_sec));
    /* a suffix from the clock's nanoseconds and the pid keeps ids unique within a second */
    unsigned long tag = ((unsigned long)ts.tv_nsec ^ ((unsigned long)getpid() << 20)) & 0xffffffUL;
    snprintf(run_id, sizeof run_id, "train-%s-%s-%s-%06lx", o.solver, o.backward, stamp, tag);
  }
  MPI_Bcast(run_id, sizeof run_id, MPI_CHAR, 0, d.comm);
  t_start = il_now();
  rc = il_train_run(&d, &o, &train, &test, h5, run_id, 0, NULL);
  if (rc == 2) goto fail; /* invalid for this world: same verdict on every rank */
  if (rc > 128 && root && h5)
    fprintf(stderr, "ilbench train: continue with the same options and --resume %s:%s\n", out, run_id);
  ran = rc == 0;
  goto end;
fail:
  if (root) il_report_error("train");
end:
  if (h5 && il_h5_close(h5) != IL_OK && root) {
    il_report_error("train");
    if (rc == 0) rc = 1;
  }
  if (ran && rc == 0 && root) print_summary(&o, out, il_now() - t_start);
  il_mnist_split_free(&train);
  il_mnist_split_free(&test);
  if (grid_made) il_grid_free(&grid);
  il_dist_free(&d);
  return rc;
}
