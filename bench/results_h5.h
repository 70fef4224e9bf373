/* bench/results_h5.h: the HDF5 results file (schema "ilbench-results",
 * documented in analysis/SCHEMA.md), written with parallel HDF5 over an MPI
 * communicator.
 *
 * Every il_h5_* call except il_h5_merge is collective over the communicator
 * given to il_h5_open: all ranks call it, in the same order, and all ranks
 * get the same status and the same error message (the first failing rank's).
 * Row data (epochs, steps) is taken from rank 0 only; each rank gives its own
 * row of the `ranks` table. Library style: nothing here prints, exits or
 * aborts; failures return an il_status whose message names the file.
 *
 * Typical use:
 *   il_h5_open(comm, path, IL_H5_CREATE, argc, argv, &f);
 *   il_h5_run_begin(f, &run_info);
 *   for each epoch: il_h5_run_epoch(f, &epoch_row, step_rows, nsteps);  // flushed
 *   il_h5_run_events(f, event_rows, IL_EV_N);                            // optional
 *   il_h5_run_end(f, "completed", &peak_stats, &my_rank_row);
 *   il_h5_close(f);
 */
#ifndef IL_RESULTS_H5_H
#define IL_RESULTS_H5_H

#include <mpi.h>

#include "results.h"

#define IL_H5_SCHEMA IL_RESULTS_SCHEMA_NAME
#define IL_H5_SCHEMA_VERSION IL_RESULTS_SCHEMA_VERSION /* major version written (results_columns.h) */
#define IL_H5_SCHEMA_VERSION_OLDEST 1 /* oldest major version `merge` still accepts (all inputs alike) */

enum {
  IL_H5_CREATE = 0, /* new file; refuse an existing one (nothing is written to it) */
  IL_H5_APPEND = 1, /* add runs to an existing compatible file; create it when missing */
  IL_H5_FORCE = 2,  /* replace (truncate) any existing file */
};

typedef struct il_h5_file il_h5_file;

/* Open or create a results file. On create, writes the root attributes
 * (schema, schema_version, software_version, created, host, command_line,
 * world_size) and the /runs group. argv (may be NULL) is rank 0's command line. */
il_status il_h5_open(MPI_Comm comm, const char *path, int mode, int argc, char **argv, il_h5_file **out);

/* Start run /runs/<ri->run_id>: its attributes, status "running", and empty
 * `epochs` and `steps` tables; flushed. Refuses a run id already in the file.
 * ri is read on rank 0 only (other ranks may pass NULL). */
il_status il_h5_run_begin(il_h5_file *f, const il_run_info *ri);

/* Append one epoch row and nsteps step rows to the current run, then flush,
 * so that a job killed afterwards leaves a readable file with every completed
 * epoch. e, steps and nsteps are read on rank 0 only (others may pass NULL, 0). */
il_status il_h5_run_epoch(il_h5_file *f, const il_epoch_row *e, const il_step_row *steps, int nsteps);

/* The run's events table (/runs/<id>/events), n rows identical on every rank; call before
 * il_h5_run_end. Collective. */
il_status il_h5_run_events(il_h5_file *f, const il_event_row *rows, int n);
/* Finish the current run: writes the `ranks` table (each rank its own row, one
 * collective write; my_row NULL gives a zero row), the peak_bytes_* attributes
 * from rank 0's `peak` (NULL: none written), sets status to `status`
 * ("completed" or "failed", taken from rank 0), and flushes. */
il_status il_h5_run_end(il_h5_file *f, const char *status, const il_memstats *peak, const il_rank_row *my_row);

/* Close the file (f may be NULL). A run not ended keeps status "running". */
il_status il_h5_close(il_h5_file *f);

/* Serial (one process, no collective calls): merge results files into
 * out_path. Refuses an existing out_path unless force, an input whose schema
 * name differs or whose major version is not one of
 * IL_H5_SCHEMA_VERSION_OLDEST..IL_H5_SCHEMA_VERSION, inputs of different
 * major versions (the error names both files and both versions), and a run id
 * present in two inputs; nothing is written when refused. Copies every
 * /runs/<id> and the first input's root attributes (so the output keeps the
 * inputs' common major version), with command_line noting the merge and
 * `merged_from` listing the inputs. */
il_status il_h5_merge(const char *out_path, int force, const char *const *inputs, int ninputs);

#endif
