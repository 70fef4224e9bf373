/* bench/commands.h: the ilbench subcommands. Each returns a process exit code. */
#ifndef IL_COMMANDS_H
#define IL_COMMANDS_H

#include "cli_args.h"
#include "il_grid.h"

int il_cmd_train(int argc, char **argv);
int il_cmd_layer(int argc, char **argv);
int il_cmd_gradcheck(int argc, char **argv);
int il_cmd_info(int argc, char **argv);
int il_cmd_sweep(int argc, char **argv);
int il_cmd_merge(int argc, char **argv);
int il_cmd_selftest(int argc, char **argv);
int il_cmd_schema(int argc, char **argv); /* `ilbench schema --json` (cmd_schema.c) */
int il_cmd_version(int argc, char **argv); /* `ilbench version`, `ilbench --version` (cmd_info.c) */

/* What the last training run (il_train_run) on this rank ended with, for the one-line end-of-run
 * summaries of train and sweep (filled by train_driver.c). NaN where not measured. */
typedef struct il_run_summary {
  long epochs;                           /* epochs completed */
  double train_err, test_err, test_loss; /* of the last completed epoch */
  long nan_batches;                      /* training steps skipped over the run */
  double epochs_s;                       /* wall time of the epochs (training and test passes) */
} il_run_summary;
const il_run_summary *il_train_last_summary(void);

/* The grid options of train, sweep, layer and gradcheck (train_options.c): --grid PRxPC and
 * --grid-nb NB into *pr, *pc, *nb, checked against this world's size (refusals name --grid;
 * nothing collective, so every rank refuses alike before anything runs). */
il_status il_grid_options(const il_cli *cli, int *pr, int *pc, long *nb);
/* Build the grid of pr x pc (collective over MPI_COMM_WORLD) when it is larger than 1x1; *made = 1 then. */
il_status il_grid_build(int pr, int pc, long nb, il_grid *g, int *made);

/* The whole command line (program, subcommand, options), for results files. */
extern int il_main_argc;
extern char **il_main_argv;

/* Print the recorded error (message + trace when ILBENCH_TRACE is set) as "ilbench <cmd>: error: ..." */
void il_report_error(const char *command);
double il_now(void); /* monotonic seconds */
/* Physical memory in bytes, 0 if unknown. */
unsigned long long il_phys_mem(void);

#endif
