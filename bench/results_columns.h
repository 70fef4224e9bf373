/* bench/results_columns.h: the one table of what a run records (schema
 * "ilbench-results", version IL_RESULTS_SCHEMA_VERSION). Each results table
 * is an X-macro list of its columns, in the order they are stored:
 *
 *   X(name, TYPE, logfmt format, unit, since, meaning)
 *
 *   name     the C struct field (bench/results.h), the HDF5 compound member
 *            (bench/results_h5.c), the logfmt key (train's epoch line and
 *            --log-steps, bench/train_driver.c) and the name in
 *            analysis/schema.json (`ilbench schema --json`)
 *   TYPE     I32, I64, U64, F64, STR16 (16-byte NUL-terminated ASCII), or an
 *            enum stored as an HDF5 enum over int32: REASON (il_reason,
 *            core/il_solver.h), NANORIGIN (il_nan_origin, core/il_diag.h)
 *   format   printf format of the logfmt value (F64 a double, I32 an int,
 *            I64 a long long, U64 an unsigned long long; enums print names)
 *   unit     "s", "bytes", "nats", "fraction", "iterations", "batches",
 *            "rows", "flag", "FLOPs", "calls", "" (none)
 *   since    the schema version that added the column under this name
 *   meaning  one sentence or more; analysis/SCHEMA.md's column tables are
 *            generated from it (analysis/schema_doc.py)
 *
 * Adding a column: one line here, then `ilbench schema --json >
 * analysis/schema.json` and `analysis/schema_doc.py --write` (SCHEMA.md,
 * "Adding a column"). A new column within version 3 is optional: readers
 * MUST accept files without it. No HDF5 or MPI here. */
#ifndef IL_RESULTS_COLUMNS_H
#define IL_RESULTS_COLUMNS_H

#include <stddef.h>
#include <stdint.h>

#define IL_RESULTS_SCHEMA_NAME "ilbench-results"
#define IL_RESULTS_SCHEMA_VERSION 3

/* ---- epochs: one row per epoch (rank 0's aggregate over the global batch) ---- */
#define IL_EPOCH_COLUMNS(X)                                                                                          \
  X(epoch, I32, "%d", "", 1, "epoch index, 0-based")                                                                 \
  X(lr, F64, "%g", "", 1, "learning rate used in this epoch")                                                        \
  X(train_err, F64, "%.4f", "fraction", 1, "training error rate over the epoch's samples, measured in each batch's forward pass") \
  X(train_loss, F64, "%.4f", "nats", 1, "mean training loss per sample")                                             \
  X(train_iters, F64, "%.2f", "iterations", 1, "mean forward solver iterations per training batch")                  \
  X(train_bwd_iters, F64, "%.2f", "iterations", 1, "mean backward iterations per training batch")                    \
  X(test_err, F64, "%.4f", "fraction", 1, "test error rate")                                                         \
  X(test_loss, F64, "%.4f", "nats", 1, "mean test loss per sample")                                                  \
  X(test_iters, F64, "%.2f", "iterations", 1, "mean forward iterations per test batch")                              \
  X(max_grad_norm, F64, "%.4g", "", 1, "largest 2-norm of the global gradient over the epoch's finite steps")        \
  X(nan_batches, I64, "%lld", "batches", 1, "steps skipped because the gradient was not finite")                     \
  X(nonconverged, I64, "%lld", "rows", 1, "non-converged rows summed over the epoch's training steps")                \
  X(maxiter_batches, I64, "%lld", "batches", 1, "training batches whose forward solve stopped at max_iter (reason max-iter)") \
  X(diverged_batches, I64, "%lld", "batches", 2, "training batches whose forward solve stopped because it diverged (reason diverged)") \
  X(nonfinite_batches, I64, "%lld", "batches", 1, "training batches whose forward solve went non-finite (reason non-finite)") \
  X(train_batches, I64, "%lld", "batches", 1, "training steps in the epoch")                                         \
  X(train_s, F64, "%.3f", "s", 1, "wall time of the training pass, max over ranks")                                  \
  X(test_s, F64, "%.3f", "s", 1, "wall time of the test pass, max over ranks")                                       \
  X(forward_s, F64, "%.3f", "s", 3, "forward time: the sum over the epoch's steps of steps.forward_s (each step's max over ranks)") \
  X(backward_s, F64, "%.3f", "s", 3, "backward time: the sum over the epoch's steps of steps.backward_s")            \
  X(wait_s, F64, "%.3f", "s", 3, "barrier wait for the slowest rank before the allreduce: the sum over the epoch's steps of steps.wait_s") \
  X(allreduce_s, F64, "%.3f", "s", 3, "gradient allreduce time: the sum over the epoch's steps of steps.allreduce_s") \
  X(update_s, F64, "%.3f", "s", 3, "parameter update time: the sum over the epoch's steps of steps.update_s")        \
  X(ranks, I32, "%d", "", 3, "MPI ranks that ran the epoch (the run's world_size)")                                  \
  X(peak_mem_bytes, U64, "%llu", "bytes", 1, "high-water mark of total arena memory during the epoch, max over ranks") \
  X(saved_peak_bytes, U64, "%llu", "bytes", 1, "the same for saved-for-backward memory")                            \
  X(workspace_peak_bytes, U64, "%llu", "bytes", 1, "the same for solver workspace")                                \
  X(jac_reg, F64, "%.6g", "", 3, "--jac-reg: mean over the samples of the epoch's regularised steps of the Jacobian regulariser's estimate of ‖∂f/∂z‖²_F at z* (steps.jac_reg, weighted by their rows); unweighted, not in train_loss. NaN when no step computed it")

/* ---- steps: one row per training step; phase times are the max over ranks ---- */
#define IL_STEP_COLUMNS(X)                                                                                           \
  X(global_step, I32, "%d", "", 3, "step index over the run, 0-based (the --log-steps line starts with it)")         \
  X(epoch, I32, "%d", "", 1, "epoch index")                                                                          \
  X(step, I32, "%d", "", 1, "step index within the epoch, 0-based")                                                  \
  X(loss, F64, "%.9g", "nats", 1, "mean loss over the global batch")                                                 \
  X(err, F64, "%.4f", "fraction", 1, "fraction of the global batch misclassified")                                   \
  X(fwd_iters, I32, "%d", "iterations", 1, "forward solver iterations: map evaluations for fp, anderson and broyden; Newton steps for newton and newton-ls (line-search maps not counted)") \
  X(fwd_residual, F64, "%.6g", "", 1, "final value of the forward stopping test's norm (the run's stop_norm, stop_mode)") \
  X(fwd_reason, REASON, "%s", "enum", 1, "why the forward solve stopped (an il_reason name; see Reasons)")            \
  X(bwd_iters, I32, "%d", "iterations", 1, "backward iterations, max over ranks: unroll the forward's count; implicit with lu 1 + refinement steps, with fp/anderson/gmres the vjps (GEMMs) of the adjoint solve; phantom:K K; jfb 1") \
  X(bwd_residual, F64, "%.3g", "", 1, "relative residual ‖∂L/∂z* − (I − ∂f/∂z)ᵀu‖ / ‖∂L/∂z*‖ of the implicit adjoint solve, max over ranks; 0 for unroll, NaN for phantom/jfb (no system is solved)") \
  X(bwd_reason, REASON, "%s", "enum", 1, "why the backward solve stopped, worst over ranks. implicit with lu: converged when the adjoint residual reached 100·eps·‖∂L/∂z*‖, else max-iter (the refinement limit was reached, or a correction stopped helping and was undone); matrix-free adjoints: as the forward reasons; unroll, phantom, jfb: converged, or non-finite when the cotangent went NaN/Inf") \
  X(nonconverged, I32, "%d", "rows", 1, "rows of the global batch whose own residual norm exceeds tol")              \
  X(nan_skipped, I32, "%d", "flag", 1, "1 if the update was skipped because the gradient was not finite, else 0")     \
  X(grad_norm, F64, "%.6g", "", 1, "2-norm of the global (allreduced) gradient. NaN when skipped")                   \
  X(forward_s, F64, "%.6f", "s", 3, "forward pass, max over ranks; on steps with diagnostics (--diag) it includes the power iteration (t_forward before version 3)") \
  X(backward_s, F64, "%.6f", "s", 3, "backward pass, max over ranks; on steps with diagnostics it includes the exact-IFT reference (one LU at z*) (t_backward before version 3)") \
  X(wait_s, F64, "%.6f", "s", 3, "waiting at a barrier for the slowest rank before the allreduce (load imbalance), max over ranks; 0 on one rank (t_wait before version 3)") \
  X(allreduce_s, F64, "%.6f", "s", 3, "gradient allreduce after that barrier, max over ranks (t_allreduce before version 3)") \
  X(update_s, F64, "%.6f", "s", 3, "parameter update, max over ranks (t_update before version 3)")                  \
  X(diag_rho_max, F64, "%.4g", "", 2, "largest spectral radius of ∂f/∂z at z* over the samples of the global batch, estimated per sample by power iteration. Fixed-point iteration converges near z* only when ρ < 1. NaN when diagnostics did not run on this step") \
  X(diag_rho_mean, F64, "%.4g", "", 2, "mean over the samples of the global batch of the same per-sample estimate. NaN exactly when diag_rho_max is NaN") \
  X(diag_cond, F64, "%.4g", "", 2, "largest condition-number estimate, in the infinity norm (LAPACK gecon, reported as 1/rcond), of the residual Jacobian I − ∂f/∂z over every LU factorization the step made: the forward Newton steps and a backward LU. ≥ 1; +Inf for a singular factor. NaN when the step made no LU or diagnostics did not run") \
  X(diag_grad_cos, F64, "%.6f", "", 2, "cosine similarity, in [−1, 1], between the layer's gradient as the backward mode computed it and the exact implicit-function-theorem gradient (dx and dW concatenated into one vector). NaN on steps not sampled for this check") \
  X(diag_grad_relerr, F64, "%.3g", "", 2, "relative error ‖g − g_ift‖₂ / ‖g_ift‖₂ of the same gradient, ≥ 0 (+Inf when g_ift = 0 ≠ g). NaN exactly when diag_grad_cos is NaN") \
  X(diag_preact_max, F64, "%.4g", "", 2, "largest |a| of the pre-activation a = W z + x over the points where a Newton solver (newton, newton-ls) built its Jacobian on this step, max over ranks. ≥ 0. In float32, cosh(a) overflows for |a| > 89.4, which is what makes --sech2 seed produce NaN. NaN for other solvers or when diagnostics did not run") \
  X(nan_origin, NANORIGIN, "%s", "enum", 2, "where a non-finite value (NaN or ±Inf) first appeared during the step (an il_nan_origin name; see NaN origins); none when none did") \
  X(nan_iter, I32, "%d", "iterations", 2, "for nan_origin fwd_solve, the forward solver iteration at which it appeared; for bwd_layer, the unrolled step or adjoint iteration. −1 for none, fwd_other and bwd_other, and where the solve that failed has no iterations (a direct LU)") \
  X(jac_reg, F64, "%.6g", "", 3, "--jac-reg: the Jacobian regulariser's Hutchinson estimate of ‖∂f/∂z‖²_F at z*, (1/K) Σ_k ‖ε_kᵀ ∂f/∂z‖² with K Rademacher probes ε_k, averaged over the samples of the global batch (zeroed rows count 0); unweighted: the step minimised loss + jac_reg weight × this. ≥ 0; NaN on steps that did not compute it (no --jac-reg, or not a --jac-reg-every step)")

/* Columns added within version 3 after its first release: (table, name). They are optional:
 * readers and check_schema.py accept files without them (`ilbench schema --json` marks them). */
#define IL_OPTIONAL_COLUMNS(X) X("epochs", "jac_reg") X("steps", "jac_reg")

/* ---- ranks: one row per MPI rank, written when the run ends ---- */
#define IL_RANK_COLUMNS(X)                                                                                           \
  X(rank, I32, "%d", "", 1, "MPI rank (equal to the row index)")                                                     \
  X(local_batch, I32, "%d", "rows", 1, "rows of the global batch this rank holds")                                   \
  X(forward_s, F64, "%.6f", "s", 3, "this rank's forward time, summed over the run (t_forward before version 3)")    \
  X(backward_s, F64, "%.6f", "s", 3, "backward time, summed over the run (t_backward before version 3)")             \
  X(wait_s, F64, "%.6f", "s", 3, "time waiting for slower ranks before the allreduce, summed over the run (t_wait before version 3)") \
  X(allreduce_s, F64, "%.6f", "s", 3, "gradient allreduce time after the barrier, summed over the run (t_allreduce before version 3)") \
  X(update_s, F64, "%.6f", "s", 3, "update time, summed over the run (t_update before version 3)")                  \
  X(test_s, F64, "%.6f", "s", 3, "test-pass time, summed over the run (t_test before version 3)")                    \
  X(peak_mem_bytes, U64, "%llu", "bytes", 1, "this rank's high-water mark of total arena memory over the run")     \
  X(nan_steps, I64, "%lld", "steps", 3, "steps in which a non-finite value appeared on this rank before the gradient allreduce (its forward, backward or gradient; --inject-nan counts)") \
  X(first_nan_step, I64, "%lld", "", 3, "global_step of the first of those steps, −1 when none")

/* ---- events (optional): the run's named events, reduced over ranks ---- */
#define IL_EVENT_COLUMNS(X)                                                                                          \
  X(name, STR16, "%s", "", 2, "event name, il_event_name in core/il_events.c")                                       \
  X(calls, I64, "%lld", "calls", 2, "times the event ran on rank 0 (every rank runs the same steps, so rank 0 stands for all)") \
  X(time_max, F64, "%.6g", "s", 2, "the event's total time on one rank, inclusive; the largest over ranks")          \
  X(time_sum, F64, "%.6g", "s", 2, "the same, summed over ranks; ≥ time_max, and equal to it on one rank")           \
  X(flops, F64, "%.6g", "FLOPs", 2, "floating-point operations done inside the event, inclusive, as counted by the backend's kernels (il_backend_ops.flops), summed over ranks")

/* ---- trace (optional, --trace N): the residual of every iteration of the traced steps' solves ---- */
#define IL_TRACE_COLUMNS(X)                                                                                          \
  X(global_step, I32, "%d", "", 3, "the traced training step (steps.global_step): every step whose global_step is a multiple of the run's trace attribute") \
  X(solve, STR16, "%s", "", 3, "\"forward\" (the forward solve) or \"backward\" (the backward mode's iterations)") \
  X(solver, STR16, "%s", "", 3, "forward: the forward solver (fp, newton, newton-ls, anderson, broyden); backward: unroll, or implicit's adjoint solver (lu, fp, anderson, gmres)") \
  X(iteration, I32, "%d", "iterations", 3, "the solve's iteration count when the residual was checked: 1 .. steps.fwd_iters (Newton solvers also check their start, iteration 0); backward 1 .. steps.bwd_iters (rank 0's)") \
  X(residual, F64, "%.6g", "", 3, "the norm checked at that iteration: forward, the stopping test's batch residual ‖z − f(z)‖ over the global batch (its last row is steps.fwd_residual); unroll, ‖∂L/∂z_k‖ of the cotangent entering the replayed iteration; implicit, the adjoint system's residual ‖∂L/∂z* − (I − ∂f/∂z)ᵀu‖ (lu: after the direct solve and each kept refinement, rank 0's; matrix-free: the solver's running norm)") \
  X(rel_residual, F64, "%.6g", "", 3, "residual divided by the first residual of the same solve (NaN when that is 0 or not finite)")

/* ---- enum types: (name, value) ---- */
#define IL_REASON_ENUM(X) X("converged", 0) X("max-iter", 1) X("diverged", 2) X("non-finite", 3)
#define IL_NANORIGIN_ENUM(X) X("none", 0) X("fwd_solve", 1) X("fwd_other", 2) X("bwd_layer", 3) X("bwd_other", 4)

/* Columns renamed in version 3: (table, old name, new name). Readers migrate older files with it. */
#define IL_RENAMED_V3(X)                                                                                             \
  X("steps", "t_forward", "forward_s") X("steps", "t_backward", "backward_s") X("steps", "t_wait", "wait_s")          \
  X("steps", "t_allreduce", "allreduce_s") X("steps", "t_update", "update_s")                                         \
  X("ranks", "t_forward", "forward_s") X("ranks", "t_backward", "backward_s") X("ranks", "t_wait", "wait_s")          \
  X("ranks", "t_allreduce", "allreduce_s") X("ranks", "t_update", "update_s") X("ranks", "t_test", "test_s")

/* ---- run and root attributes: (name, kind "str"|"int"|"real", required, meaning) ---- */
#define IL_ROOT_ATTRS(X)                                                                                             \
  X(schema, "str", 1, "always \"ilbench-results\"")                                                                  \
  X(schema_version, "int", 1, "major version of this schema (3)")                                                    \
  X(software_version, "str", 1, "git describe of the ilbench that created the file, or \"unknown\"")                 \
  X(created, "str", 1, "creation time, ISO 8601 UTC")                                                                \
  X(host, "str", 1, "hostname of MPI rank 0")                                                                        \
  X(command_line, "str", 1, "rank 0's command line, arguments joined by spaces")                                     \
  X(world_size, "int", 1, "number of MPI ranks of the job that created the file")

/* written by the results writer on every run (finished and peak_bytes_* depend on the status) */
#define IL_RUN_WRITER_ATTRS(X)                                                                                       \
  X(status, "str", 1, "\"running\", \"completed\" or \"failed\"")                                                   \
  X(started, "str", 1, "when the run began, ISO 8601 UTC")                                                           \
  X(software_version, "str", 1, "git describe of the ilbench that wrote the run")                                    \
  X(host, "str", 1, "hostname of rank 0")                                                                            \
  X(command_line, "str", 1, "rank 0's command line")                                                                 \
  X(finished, "str", 0, "when the run ended, ISO 8601 UTC; absent while running")                                    \
  X(peak_bytes_total, "int", 0, "bytes: high-water mark of rank 0's arena memory, all categories; with one peak_bytes_<category> per arena category; absent while running")

/* the configuration keys every writer MUST write (the train driver writes more) */
#define IL_RUN_CONFIG_ATTRS(X)                                                                                       \
  X(solver, "str", 1, "forward solver")                                                                              \
  X(backward, "str", 1, "backward mode")                                                                             \
  X(tol, "real", 1, "stopping tolerance of the forward solve")                                                       \
  X(max_iter, "int", 1, "forward iteration limit")                                                                   \
  X(hidden, "int", 1, "hidden size of the implicit layer")                                                           \
  X(batch, "int", 1, "global batch size")                                                                            \
  X(epochs, "int", 1, "epochs requested")                                                                            \
  X(lr, "real", 1, "initial SGD learning rate")                                                                      \
  X(lr_drop, "str", 1, "learning-rate schedule EPOCH:LR[,EPOCH:LR...] or \"none\"")                                  \
  X(seed, "int", 1, "random seed")                                                                                   \
  X(stop, "str", 1, "stopping test")                                                                                 \
  X(threads, "int", 1, "threads per rank")                                                                           \
  X(device, "str", 1, "\"cpu\" or \"cuda\"")                                                                         \
  X(precision, "str", 1, "\"float32\" or \"float64\"")                                                               \
  X(world_size, "int", 1, "MPI ranks of this run")                                                                   \
  X(data, "str", 1, "data directory")                                                                                \
  X(run_index, "int", 1, "index of the run within its sweep (0 for train)")                                          \
  X(init_from, "str", 0, "train --init-from FILE: \"fnv1a64:<16 hex digits> <path>\"")                               \
  X(batch_order, "str", 0, "train --batch-order FILE: as init_from")                                                 \
  X(stop_mode, "str", 0, "abs, rel (tol times the first residual) or relf (rows relative to ||f(z)||); absent: abs")  \
  X(stop_norm, "str", 0, "frob, max or mean: the norm of fwd_residual over the rows; absent: frob")                   \
  X(best_rule, "str", 0, "off, batch or sample: the lowest-residual iterate returned; absent: batch if best, else off") \
  X(trace, "int", 0, "train/sweep --trace N: every N-th training step's residuals are in the trace table; absent: off") \
  X(blas_kernels, "str", 0, "the BLAS's kernel set and who chose it, e.g. \"OpenBLAS SkylakeX, OPENBLAS_CORETYPE set by ilbench\" (OpenBLAS 0.3.21 runs SSE3 kernels on CPUs its table lacks); absent: not recorded")

/* C types of the column types */
#define IL_CT_I32 int32_t
#define IL_CT_I64 int64_t
#define IL_CT_U64 uint64_t
#define IL_CT_F64 double
#define IL_CT_REASON int32_t
#define IL_CT_NANORIGIN int32_t
#define IL_STR16_LEN 16

typedef enum il_col_type {
  IL_COL_I32, IL_COL_I64, IL_COL_U64, IL_COL_F64, IL_COL_STR16, IL_COL_REASON, IL_COL_NANORIGIN,
} il_col_type;

/* One column, for code that walks a table (schema output, logfmt lines). */
typedef struct il_column {
  const char *name;
  il_col_type type;
  const char *fmt, *unit;
  int since;
  const char *meaning;
  size_t offset; /* in the row struct */
} il_column;

#endif
