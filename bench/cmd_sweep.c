/* bench/cmd_sweep.c: `ilbench sweep`, the Cartesian product of comma lists
 * over solver, backward, tol, hidden, max-iter, batch and seed, run one point
 * after another by the whole process group, each recorded as a run. Bad
 * values are refused before anything runs; a combination that cannot run
 * (e.g. more ranks than batch rows) is skipped with its reason logged.
 * --array-index I --array-count N keeps the points with index % N == I. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "sweep_points.h"
#include "train_driver.h"

il_status il_results_mode(const il_cli *cli, int *mode, const char **out);

#define MAX_SPEC 96

/* A copy of the parsed options with the swept keys set to point i's values. */
static il_status point_cli(const il_cli *cli, const il_sweep *sw, long i, il_cli *pc) {
  *pc = *cli;
  for (int a = 0; a < sw->naxes; a++) {
    const char *key = sw->axes[a].key, *v = il_sweep_value(sw, i, key);
    int k;
    for (k = 0; k < pc->nspec; k++)
      if (strcmp(pc->spec[k].name, key) == 0) break;
    if (k == pc->nspec) return IL_ERR(IL_ERR_INTERNAL, "sweep key %s is not a train option", key);
    pc->value[k] = v;
  }
  return IL_OK;
}

int il_cmd_sweep(int argc, char **argv) {
  static il_cli_spec spec[MAX_SPEC];
  int nspec = 0;
  int ntrain;
  const il_cli_spec *train_spec = il_train_spec(&ntrain);
  for (int i = 0; i < ntrain && nspec < MAX_SPEC - 2; i++) spec[nspec++] = train_spec[i];
  spec[nspec++] = (il_cli_spec){"array-index", 1, "run only points with index % array-count == array-index", "0"};
  spec[nspec++] = (il_cli_spec){"array-count", 1, "number of job-array tasks sharing the sweep", "1"};

  il_dist d;
  il_cli cli;
  il_sweep sw;
  il_mnist_split train = {0}, test = {0};
  il_h5_file *h5 = NULL;
  const char *out = NULL;
  long aidx, acnt;
  int mode, rc = 2;
  if (il_dist_init(&d, MPI_COMM_WORLD) != IL_OK) {
    il_report_error("sweep");
    return 1;
  }
  const int root = d.rank == 0;
  if (il_cli_parse(&cli, "sweep", spec, nspec, argc, argv, 0) != IL_OK) goto fail;
  if (il_cli_has(&cli, "help")) {
    if (root) {
      il_cli_usage("sweep", "[options]   (solver, backward, tol, hidden, max-iter, batch, seed take comma lists)",
                   spec, nspec);
    }
    rc = 0;
    goto end;
  }
  il_sweep_init(&sw);
  for (int k = 0; k < il_sweep_nkeys; k++) {
    const char *v = il_cli_get(&cli, il_sweep_keys[k], NULL);
    if (v && il_sweep_add_axis(&sw, il_sweep_keys[k], v) != IL_OK) goto fail;
  }
  if (il_cli_int(&cli, "array-index", 0, 0, 1L << 40, &aidx) != IL_OK ||
      il_cli_int(&cli, "array-count", 1, 1, 1L << 40, &acnt) != IL_OK || il_sweep_check_slice(aidx, acnt) != IL_OK ||
      il_results_mode(&cli, &mode, &out) != IL_OK)
    goto fail;
  /* every value must parse before anything runs; combinations are judged per point. A solver or
   * backward option (--anderson-m ...) applies to the points whose solver or backward takes it, and
   * must apply to at least one. */
  {
    int used[64] = {0}, refine_used = 0;
    for (long i = 0; i < sw.npoints; i++) {
      il_cli pc;
      static il_train_opts o;
      if (point_cli(&cli, &sw, i, &pc) != IL_OK) goto fail;
      il_status s = il_train_parse_ex(&pc, &o, 1);
      if (s != IL_OK && s != IL_ERR_UNSUPPORTED) goto fail;
      il_error_clear();
      for (int f = 0; il_train_layer_option_flags()[f] && f < 64; f++)
        for (int k = 0; k < o.lopts.count; k++) used[f] |= strcmp(o.lopts.items[k].key, il_train_layer_option_flags()[f]) == 0;
      refine_used |= o.refine_applies;
    }
    if (il_cli_has(&cli, "adjoint-refine") && !refine_used) {
      IL_ERR(IL_ERR_ARG, "--adjoint-refine applies only to --backward implicit with --adjoint-solver lu, which no "
             "point of this sweep uses");
      goto fail;
    }
    for (int f = 0; il_train_layer_option_flags()[f] && f < 64; f++)
      if (il_cli_has(&cli, il_train_layer_option_flags()[f]) && !used[f]) {
        IL_ERR(IL_ERR_ARG, "--%s is taken by none of this sweep's solvers and backward modes",
               il_train_layer_option_flags()[f]);
        goto fail;
      }
  }
  const long mine = il_sweep_slice_size(sw.npoints, aidx, acnt);
  rc = 1;
  /* data first: a sweep that cannot start must not leave a new, empty results file behind */
  if (il_train_load_data(il_cli_get(&cli, "data", "data/mnist"), &train, &test) != IL_OK) {
    if (root) {
      il_report_error("sweep");
      fprintf(stderr, "ilbench sweep: hint: scripts/fetch-mnist downloads MNIST into data/mnist\n");
    }
    goto end;
  }
  if (out && il_h5_open(d.comm, out, mode, il_main_argc, il_main_argv, &h5) != IL_OK) goto fail;
  if (root) {
    printf("# sweep: %ld points, this task (%ld of %ld) runs %ld\n", sw.npoints, aidx, acnt, mine);
    fflush(stdout);
  }
  long done = 0, skipped = 0;
  for (long i = 0; i < sw.npoints; i++) {
    if (!il_sweep_in_slice(i, aidx, acnt)) continue;
    char run_id[IL_SWEEP_RUN_ID_MAX], prefix[IL_SWEEP_RUN_ID_MAX + 8];
    il_sweep_run_id(&sw, i, run_id, sizeof run_id);
    snprintf(prefix, sizeof prefix, "run=%s ", run_id);
    il_cli pc;
    static il_train_opts o;
    if (point_cli(&cli, &sw, i, &pc) != IL_OK) goto fail;
    double t0 = il_now();
    int r = il_train_parse_ex(&pc, &o, 1) == IL_OK ? il_train_run(&d, &o, &train, &test, h5, run_id, i, prefix) : 2;
    if (r == 2) { /* invalid combination: same verdict on every rank */
      skipped++;
      if (root) printf("# sweep [%ld/%ld] skip %s: %s\n", done + skipped, mine, run_id, il_error_message());
      il_error_clear();
    } else {
      done++;
      if (root) printf("# sweep [%ld/%ld] done %s in %.1f s\n", done + skipped, mine, run_id, il_now() - t0);
    }
    fflush(stdout);
  }
  if (root) printf("# sweep: %ld runs completed, %ld skipped\n", done, skipped);
  rc = 0;
  goto end;
fail:
  if (root) il_report_error("sweep");
end:
  if (h5 && il_h5_close(h5) != IL_OK && root) {
    il_report_error("sweep");
    if (rc == 0) rc = 1;
  }
  il_mnist_split_free(&train);
  il_mnist_split_free(&test);
  il_dist_free(&d);
  return rc;
}
