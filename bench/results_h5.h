/* bench/results_h5.h: the HDF5 results file (schema "ilbench-results",
 * documented in analysis/SCHEMA.md), written for the ranks of an MPI
 * communicator.
 *
 * Every il_h5_* call except il_h5_merge is collective over the communicator
 * given to il_h5_open: all ranks call it, in the same order, and all ranks
 * get the same status and the same error message (the first failing rank's).
 * Rank 0 alone touches the file (HDF5's serial driver; results_h5.c says
 * why), holding the writer lock of results_lock.h from open to close. Row
 * data (epochs, steps, checkpoints) is taken from rank 0 only; each rank
 * gives its own row of the `ranks` table. Library style: nothing here prints,
 * exits or aborts; failures return an il_status whose message names the file.
 *
 * Typical use:
 *   il_h5_open(comm, path, IL_H5_CREATE, argc, argv, &f);
 *   il_h5_run_begin(f, &run_info);
 *   for each epoch: il_h5_run_epoch(f, &epoch_row, step_rows, nsteps);  // flushed
 *   il_h5_run_events(f, event_rows, IL_EV_N);                            // optional
 *   il_h5_run_end(f, "completed", &peak_stats, &my_rank_row);
 *   il_h5_close(f);
 * Checkpoints and resume: il_h5_run_checkpoint after an epoch or step;
 * il_h5_run_resume instead of il_h5_run_begin to continue a run.
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

typedef struct il_h5_open_opts {
  double wait_lock_s; /* another writer holds the file: wait up to this long for it (0: refuse at once) */
} il_h5_open_opts;
/* il_h5_open with options (opts may be NULL; rank 0's are used). */
il_status il_h5_open_ex(MPI_Comm comm, const char *path, int mode, int argc, char **argv, const il_h5_open_opts *opts,
                        il_h5_file **out);

/* The file's path (rank 0's, on every rank). */
const char *il_h5_path(const il_h5_file *f);
/* 1 when a write into the file failed for storage reasons (a full disk, an
 * I/O error): the file takes no more runs. The same on every rank. */
int il_h5_storage_failed(const il_h5_file *f);

/* 1 when this process failed to close a results file (an I/O error in its
 * last flush). HDF5 1.10 would then crash inside MPI_Finalize, so the program
 * ends with _exit after flushing its output instead (bench/ilbench.c). */
int il_h5_unclosed(void);

/* Start run /runs/<ri->run_id>: its attributes, status "running", and empty
 * `epochs` and `steps` tables; flushed. Refuses a run id already in the file.
 * ri is read on rank 0 only (other ranks may pass NULL). */
il_status il_h5_run_begin(il_h5_file *f, const il_run_info *ri);

/* Append one epoch row and nsteps step rows to the current run, then flush,
 * so that a job killed afterwards leaves a readable file with every completed
 * epoch. e, steps and nsteps are read on rank 0 only (others may pass NULL, 0). */
il_status il_h5_run_epoch(il_h5_file *f, const il_epoch_row *e, const il_step_row *steps, int nsteps);

/* Append rank 0's n rows to the current run's optional trace table (/runs/<id>/trace, --trace),
 * creating it (empty, with n = 0) when the run has none, then flush. rows and n are read on rank 0
 * only. Call it before il_h5_run_epoch and il_h5_run_checkpoint with the rows of the steps they
 * write, so that a trace row's step is in the file no later than its epoch row or checkpoint;
 * il_h5_run_resume cuts the table back to the checkpoint's global step. Collective. */
il_status il_h5_run_trace(il_h5_file *f, const il_trace_row *rows, int n);

/* The run's events table (/runs/<id>/events), n rows identical on every rank; call before
 * il_h5_run_end. Collective. */
il_status il_h5_run_events(il_h5_file *f, const il_event_row *rows, int n);
/* Finish the current run: writes the `ranks` table (each rank its own row, one
 * collective write; my_row NULL gives a zero row), the peak_bytes_* attributes
 * from rank 0's `peak` (NULL: none written), sets status to `status`
 * ("completed" or "failed", taken from rank 0), and flushes. */
il_status il_h5_run_end(il_h5_file *f, const char *status, const il_memstats *peak, const il_rank_row *my_row);
/* il_h5_run_end with status "completed", "failed" or "interrupted" and, when
 * reason is not NULL or "", a `reason` attribute saying why (rank 0's). On a
 * full disk the status is still written where a little room is left. */
il_status il_h5_run_finish(il_h5_file *f, const char *status, const char *reason, const il_memstats *peak,
                           const il_rank_row *my_row);

/* ---- checkpoints and resume (results_resume.c) ---- */

typedef enum il_ck_type { IL_CK_U8, IL_CK_I64, IL_CK_U64, IL_CK_F32, IL_CK_F64 } il_ck_type;
typedef struct il_ck_item {
  char name[32];   /* the dataset's name in the checkpoint group */
  il_ck_type type;
  size_t count;    /* elements */
  void *data;      /* count elements of type */
} il_ck_item;
#define IL_CK_MAX_ITEMS 16
/* Everything a run needs to continue: its position and named arrays of state
 * (parameters, RNG state, accumulators, whatever a feature adds). */
typedef struct il_h5_ckpt {
  int64_t epoch;       /* the epoch in progress */
  int64_t step;        /* batches of that epoch done */
  int64_t global_step; /* batches done in the run */
  uint64_t config_hash; /* the run's configuration; a resume with another one is refused */
  int nitems;
  il_ck_item items[IL_CK_MAX_ITEMS];
} il_h5_ckpt;

/* Append rank 0's nsteps pending step rows to the current run, then write ck
 * (rank 0's) into the run's spare checkpoint slot and make it the current one.
 * Atomic: the slot is complete and flushed before the run's `checkpoint`
 * attribute names it, so a crash leaves the previous checkpoint or this one. */
il_status il_h5_run_checkpoint(il_h5_file *f, const il_step_row *steps, int nsteps, const il_h5_ckpt *ck);

/* The status of run run_id into buf ("" when the file has no such run). */
il_status il_h5_run_status(il_h5_file *f, const char *run_id, char *buf, size_t n);

/* The last run, in name order, whose status is "running" or "interrupted"
 * into buf (n bytes); "" when there is none. */
il_status il_h5_find_resumable(il_h5_file *f, char *buf, size_t n);

/* Continue run ri->run_id (status "running" or "interrupted") instead of
 * il_h5_run_begin. Refuses a run whose recorded configuration attributes
 * differ from ri's (the message names them) or whose checkpoint has another
 * config_hash or other items than ck asks for. ck names the items (name,
 * type, count, data buffer on every rank); their data, epoch, step and
 * global_step are filled in on every rank from the last complete checkpoint,
 * and *have = 1. With no checkpoint, *have = 0 and the run starts over. The
 * epochs and steps tables are cut back to the rows the checkpoint had, the
 * ranks/events tables and end attributes are dropped, `resumes` counts up and
 * the status is "running" again. */
il_status il_h5_run_resume(il_h5_file *f, const il_run_info *ri, il_h5_ckpt *ck, int *have);

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
 * `merged_from` listing the inputs. Atomic (results_merge.c): the output is
 * built in memory, written to a temporary beside out_path, synced and renamed
 * over it, so a failure or kill leaves the old output (or none) intact; the
 * writer lock of out_path is held throughout. */
il_status il_h5_merge(const char *out_path, int force, const char *const *inputs, int ninputs);

#endif
