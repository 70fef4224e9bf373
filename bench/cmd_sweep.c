/* bench/cmd_sweep.c: `ilbench sweep`, the Cartesian product of comma lists
 * over solver, backward, tol, hidden, max-iter, batch, grid, seed and every sweepable
 * option the solvers and backward modes declare (--anderson-m, --adjoint-solver,
 * --fp-tau, ...), run one point after another by the whole process group, each
 * recorded as a run. An option multiplies only the points whose solver or
 * backward mode takes it (--solver fp,anderson --anderson-m 4,6 is 3 points).
 * Bad values are refused before anything runs: a value that no point accepts
 * stops the sweep with that point's error; a combination that cannot run (e.g.
 * more ranks than batch rows, or --adjoint-m with --adjoint-solver lu) is
 * skipped with its reason logged.
 * --array-index I --array-count N keeps the points with index % N == I.
 * With --append, points already in the file are not run again; points left
 * running or interrupted (a kill, SIGTERM, a Slurm time limit) are continued
 * from their checkpoints with --resume, and refused without it. */
#include <stdio.h>
#include <string.h>

#include "commands.h"
#include "stop_signal.h"
#include "il_backend.h"
#include "sweep_points.h"
#include "train_driver.h"

il_status il_results_mode(const il_cli *cli, int *mode, const char **out);

#define MAX_SPEC 96

/* m:ss, or h:mm:ss from an hour. */
static void fmt_duration(double s, char *buf, size_t cap) {
  const long t = s > 0 && s < 1e9 ? (long)(s + 0.5) : 0;
  if (t >= 3600) snprintf(buf, cap, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
  else snprintf(buf, cap, "%ld:%02ld", t / 60, t % 60);
}

/* An option applies to a point when the point's solver or backward mode declares it (the
 * defaults fp and unroll where solver or backward is not swept). An unknown name applies
 * everything: validation refuses that point anyway. */
static int option_applies(void *ctx, const char *key, const char *solver, const char *backward) {
  (void)ctx;
  const il_solver_ops *so = il_solver_find(solver ? solver : "fp");
  const il_backward_ops *bo = il_backward_find(backward ? backward : "unroll");
  if (!so || !bo) return 1;
  return il_option_decl_find(so->options, key) != NULL || il_option_decl_find(bo->options, key) != NULL;
}

/* A copy of the parsed options with the swept keys set to point i's values (an option that
 * does not apply at point i is left out, as if not given). */
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
  spec[nspec++] = (il_cli_spec){"resume", 0,
                                "with --append: continue points left running or interrupted from their checkpoints",
                                NULL};

  il_dist d;
  il_cli cli;
  il_sweep sw;
  il_mnist_split train = {0}, test = {0};
  il_h5_file *h5 = NULL;
  const char *out = NULL;
  long aidx, acnt;
  int mode, rc = 2, grid_made = 0;
  static il_grid grid; /* the running point's --grid (a sweep dimension: --grid 1x1,1x2,2x2) */
  if (il_dist_init(&d, MPI_COMM_WORLD) != IL_OK) {
    il_report_error("sweep");
    return 1;
  }
  const int root = d.rank == 0;
  if (il_cli_parse(&cli, "sweep", spec, nspec, argc, argv, 0) != IL_OK) goto fail;
  if (il_cli_has(&cli, "help")) {
    if (root) {
      il_cli_usage("sweep",
                   "[options]\n\nComma lists (the Cartesian product runs): --solver, --backward, --tol, --hidden,\n"
                   "--max-iter, --batch, --grid, --seed and every solver and backward option (--fp-tau ... --phantom-tau);\n"
                   "an option multiplies only the points whose solver or backward mode takes it.",
                   spec, nspec);
    }
    rc = 0;
    goto end;
  }
  il_sweep_init(&sw);
  il_sweep_set_applies(&sw, option_applies, NULL);
  for (int k = 0; k < il_sweep_nkeys; k++) {
    const char *v = il_cli_get(&cli, il_sweep_keys[k], NULL);
    if (v && il_sweep_add_axis(&sw, il_sweep_keys[k], v) != IL_OK) goto fail;
  }
  const char *const *flags = il_train_layer_option_flags();
  for (int f = 0; flags[f]; f++) {
    const char *v = il_cli_get(&cli, flags[f], NULL);
    if (!v) continue;
    const il_option_decl *dcl = il_train_layer_option_decl(flags[f]);
    if (dcl && dcl->sweepable) {
      if (il_sweep_add_option_axis(&sw, flags[f], v) != IL_OK) goto fail;
    } else if (strchr(v, ',')) {
      IL_ERR(IL_ERR_ARG, "--%s cannot be swept: give it one value, not the list '%s'", flags[f], v);
      goto fail;
    }
  }
  if (il_cli_int(&cli, "array-index", 0, 0, 1L << 40, &aidx) != IL_OK ||
      il_cli_int(&cli, "array-count", 1, 1, 1L << 40, &acnt) != IL_OK || il_sweep_check_slice(aidx, acnt) != IL_OK ||
      il_results_mode(&cli, &mode, &out) != IL_OK)
    goto fail;
  /* a device whose hardware is missing (--device cuda without a GPU) stops the sweep before
   * anything runs, with the reason and exit 2, as train does */
  {
    char devs[256];
    snprintf(devs, sizeof devs, "%s", il_cli_get(&cli, "device", "cpu"));
    for (char *save = NULL, *dv = strtok_r(devs, ",", &save); dv; dv = strtok_r(NULL, ",", &save)) {
      il_backend *probe = NULL;
      const il_backend_options po = {.threads = 1};
      if (il_backend_find(dv) && il_backend_create(dv, &po, &probe) == IL_ERR_UNSUPPORTED) goto fail;
      il_backend_destroy(probe);
      il_error_clear();
    }
  }
  /* Every value must be usable before anything runs; combinations are judged per point. Each point
   * is parsed; a value (of any axis) that no point accepts stops the sweep with the error of the
   * first point that has it (an unsupported solver/backward pair alone only skips). A solver or
   * backward option (--anderson-m ...) must apply to at least one point. */
  {
    static long first_bad[IL_SWEEP_MAX_AXES][IL_SWEEP_MAX_VALUES];
    static unsigned char ok[IL_SWEEP_MAX_AXES][IL_SWEEP_MAX_VALUES];
    int used[64] = {0}, refine_used = 0;
    long any_bad = -1, nok = 0;
    for (int a = 0; a < IL_SWEEP_MAX_AXES; a++)
      for (int v = 0; v < IL_SWEEP_MAX_VALUES; v++) first_bad[a][v] = -1, ok[a][v] = 0;
    for (long i = 0; i < sw.npoints; i++) {
      il_cli pc;
      static il_train_opts o;
      if (point_cli(&cli, &sw, i, &pc) != IL_OK) goto fail;
      il_status s = il_train_parse_ex(&pc, &o, 1);
      il_error_clear();
      const char *sv = il_sweep_value(&sw, i, "solver"), *bv = il_sweep_value(&sw, i, "backward");
      for (int f = 0; flags[f] && f < 64; f++) used[f] |= option_applies(NULL, flags[f], sv, bv);
      if (s == IL_OK) {
        nok++;
        refine_used |= o.refine_applies;
      } else if (s != IL_ERR_UNSUPPORTED && any_bad < 0) {
        any_bad = i;
      }
      for (int a = 0; a < sw.naxes; a++) {
        const int v = il_sweep_value_index(&sw, i, a);
        if (v < 0) continue;
        if (s == IL_OK) ok[a][v] = 1;
        else if (s != IL_ERR_UNSUPPORTED && first_bad[a][v] < 0) first_bad[a][v] = i;
      }
    }
    long bad = nok == 0 ? any_bad : -1;
    int bad_axis = -1;
    for (int a = 0; a < sw.naxes && bad < 0; a++)
      for (int v = 0; v < sw.axes[a].n && bad < 0; v++)
        if (!ok[a][v] && first_bad[a][v] >= 0) bad = first_bad[a][v], bad_axis = a;
    if (bad >= 0) { /* parse that point again for its message */
      il_cli pc;
      static il_train_opts o;
      char msg[1024], id[IL_SWEEP_RUN_ID_MAX];
      if (point_cli(&cli, &sw, bad, &pc) != IL_OK) goto fail;
      if (il_train_parse_ex(&pc, &o, 1) == IL_OK) {
        IL_ERR(IL_ERR_INTERNAL, "sweep point %ld failed validation once and passed it again", bad);
        goto fail;
      }
      snprintf(msg, sizeof msg, "%s", il_error_message());
      il_sweep_run_id(&sw, bad, id, sizeof id);
      il_error_clear();
      if (bad_axis >= 0)
        IL_ERR(IL_ERR_ARG, "%s (no point with --%s %s is valid; first: %s)", msg, sw.axes[bad_axis].key,
               il_sweep_value(&sw, bad, sw.axes[bad_axis].key), id);
      else
        IL_ERR(IL_ERR_ARG, "%s (no point of this sweep is valid; first: %s)", msg, id);
      goto fail;
    }
    if (il_cli_has(&cli, "adjoint-refine") && !refine_used && nok > 0) {
      IL_ERR(IL_ERR_ARG, "--adjoint-refine applies only to --backward implicit with --adjoint-solver lu, which no "
             "point of this sweep uses");
      goto fail;
    }
    for (int f = 0; flags[f] && f < 64; f++)
      if (il_cli_has(&cli, flags[f]) && !used[f]) {
        IL_ERR(IL_ERR_ARG, "--%s is taken by none of this sweep's solvers and backward modes", flags[f]);
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
  const int resume = il_cli_has(&cli, "resume");
  if (resume && mode != IL_H5_APPEND) {
    IL_ERR(IL_ERR_ARG, "--resume needs --append (it continues runs already in the --out file)");
    goto fail;
  }
  double wait_lock = 0;
  if (il_cli_double(&cli, "wait-lock", 0, &wait_lock) != IL_OK) goto fail;
  il_stop_install();
  const il_h5_open_opts hopts = {.wait_lock_s = wait_lock};
  if (out && il_h5_open_ex(d.comm, out, mode, il_main_argc, il_main_argv, &hopts, &h5) != IL_OK) goto fail;
  /* what the file already holds of this slice: unfinished points need --resume */
  if (h5 && mode == IL_H5_APPEND) {
    long unfinished = 0;
    char first[IL_SWEEP_RUN_ID_MAX] = "";
    for (long i = 0; i < sw.npoints; i++) {
      if (!il_sweep_in_slice(i, aidx, acnt)) continue;
      char id[IL_SWEEP_RUN_ID_MAX], st[32];
      il_sweep_run_id(&sw, i, id, sizeof id);
      if (il_h5_run_status(h5, id, st, sizeof st) != IL_OK) goto fail;
      if (strcmp(st, "running") == 0 || strcmp(st, "interrupted") == 0) {
        if (!unfinished++) snprintf(first, sizeof first, "%s", id);
      }
    }
    if (unfinished && !resume) {
      IL_ERR(IL_ERR_ARG, "results file '%s' has %ld point(s) of this sweep left running or interrupted (first: %s); "
             "add --resume to continue them from their checkpoints", out, unfinished, first);
      goto fail;
    }
  }
  if (root) {
    printf("# sweep: %ld points, this task (%ld of %ld) runs %ld\n", sw.npoints, aidx, acnt, mine);
    fflush(stdout);
  }
  long done = 0, skipped = 0, earlier = 0;
  const double t_sweep = il_now();
  double t_runs = 0; /* seconds in the completed runs, for the ETA */
  for (long i = 0; i < sw.npoints; i++) {
    if (!il_sweep_in_slice(i, aidx, acnt)) continue;
    char run_id[IL_SWEEP_RUN_ID_MAX], prefix[IL_SWEEP_RUN_ID_MAX + 8];
    il_sweep_run_id(&sw, i, run_id, sizeof run_id);
    snprintf(prefix, sizeof prefix, "run=%s ", run_id);
    il_cli pc;
    static il_train_opts o;
    if (point_cli(&cli, &sw, i, &pc) != IL_OK) goto fail;
    char status[32] = "";
    if (h5 && mode == IL_H5_APPEND && il_h5_run_status(h5, run_id, status, sizeof status) != IL_OK) goto fail;
    if (status[0] && strcmp(status, "running") != 0 && strcmp(status, "interrupted") != 0) {
      earlier++;
      if (root) printf("# sweep [%ld/%ld] %s: %s earlier, in the file\n", done + skipped + earlier, mine, run_id, status);
      continue;
    }
    double t0 = il_now();
    int r = 2;
    if (il_train_parse_ex(&pc, &o, 1) == IL_OK) {
      o.resume = status[0] != '\0';
      /* the point's grid, built for its run and freed after it (collective: every rank has the same point) */
      if (il_grid_build(o.grid_pr, o.grid_pc, o.grid_nb, &grid, &grid_made) != IL_OK) goto fail;
      o.grid = grid_made ? &grid : NULL;
      r = il_train_run(&d, &o, &train, &test, h5, run_id, i, prefix);
      if (grid_made) il_grid_free(&grid);
      grid_made = 0;
    }
    const double t1 = il_now();
    if (r == 1 && h5 && il_h5_storage_failed(h5)) { /* a full disk: the next points would fail the same way */
      if (root) fprintf(stderr, "ilbench sweep: stopped at point %s: the results file takes no more runs\n", run_id);
      rc = 1;
      goto end;
    }
    if (r > 128) { /* SIGTERM/SIGINT: the point is checkpointed; the sweep stops here */
      if (root)
        fprintf(stderr, "ilbench sweep: stopped at point %s; continue with the same command and --append --resume\n",
                run_id);
      rc = r;
      goto end;
    }
    if (r == 2) { /* invalid combination: same verdict on every rank */
      skipped++;
    } else {
      done++;
      t_runs += t1 - t0;
    }
    if (root) { /* [k/N], the elapsed time and an ETA from the mean time of the runs so far */
      char el[32], eta[32];
      const long left = mine - done - skipped - earlier;
      fmt_duration(t1 - t_sweep, el, sizeof el);
      if (done > 0) fmt_duration(t_runs / done * left, eta, sizeof eta);
      else snprintf(eta, sizeof eta, "?");
      if (r == 2)
        printf("# sweep [%ld/%ld] skip %s: %s (elapsed %s, ETA %s)\n", done + skipped + earlier, mine, run_id,
               il_error_message(), el, eta);
      else
        printf("# sweep [%ld/%ld] done %s in %.1f s, test_err=%.4f (elapsed %s, ETA %s)\n", done + skipped + earlier, mine,
               run_id, t1 - t0, il_train_last_summary()->test_err, el, eta);
    }
    if (r == 2) il_error_clear();
    fflush(stdout);
  }
  if (root) {
    char el[32];
    fmt_duration(il_now() - t_sweep, el, sizeof el);
    printf("# sweep: %ld runs completed, %ld skipped, %ld in the file earlier, in %s", done, skipped, earlier, el);
    if (out) printf("; results in %s", out);
    printf("\n");
  }
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
  if (grid_made) il_grid_free(&grid);
  il_dist_free(&d);
  return rc;
}
