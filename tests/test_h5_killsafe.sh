#!/usr/bin/env bash
# Crash safety of the results file: a 2-rank writer (h5_kill_writer) killed
# with SIGKILL in the middle of a run must leave a file that h5dump and h5py
# open, whose run has status "running" and whose epochs/steps tables hold every
# epoch flushed before the kill, with the values written.
#
# usage: test_h5_killsafe.sh <h5_kill_writer> [mpiexec]
# Needs h5dump (hdf5-tools) and /usr/bin/python3 with h5py; exits 77 (skip)
# without them. Set HDF5_USE_FILE_LOCKING=FALSE (ctest does).
set -u

WRITER=${1:?usage: test_h5_killsafe.sh <h5_kill_writer> [mpiexec]}
MPIEXEC=${2:-mpirun}
PY=/usr/bin/python3
export HDF5_USE_FILE_LOCKING=FALSE
export OMPI_ALLOW_RUN_AS_ROOT=${OMPI_ALLOW_RUN_AS_ROOT:-1} OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=${OMPI_ALLOW_RUN_AS_ROOT_CONFIRM:-1}
export OMPI_MCA_mpi_yield_when_idle=${OMPI_MCA_mpi_yield_when_idle:-1}

command -v h5dump >/dev/null || { echo "SKIP: h5dump not found"; exit 77; }
"$PY" -c 'import h5py' 2>/dev/null || { echo "SKIP: $PY has no h5py"; exit 77; }
[[ -x $WRITER ]] || { echo "FAIL: writer not executable: $WRITER"; exit 1; }

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-killsafe.XXXXXX") || exit 1
F=$T/killed.h5
LOG=$T/writer.log
MPIPID=
# Running and not a zombie (ranks orphaned by the kill may stay zombies when
# PID 1 does not reap).
alive() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }
cleanup() {
  [[ -n $MPIPID ]] && kill -9 -- "-$MPIPID" 2>/dev/null
  for p in "$F".pid*; do [[ -f $p ]] && kill -9 "$(cat "$p")" 2>/dev/null; done
  rm -rf "$T"
}
trap cleanup EXIT

# own session and process group, so that the whole job can be killed at once
# 0.5 s between epochs leaves the kill a wide margin even on a loaded machine.
setsid "$MPIEXEC" -n 2 --oversubscribe "$WRITER" "$F" 0.5 >"$LOG" 2>&1 &
MPIPID=$!

# Wait for the 3rd flushed epoch (0, 1, 2); the writer then sleeps, and the
# kill lands in that sleep, between flushes.
for _ in $(seq 1 1000); do
  grep -q '^flushed epoch 2$' "$LOG" 2>/dev/null && break
  if ! alive "$MPIPID"; then echo "FAIL: writer exited early:"; cat "$LOG"; exit 1; fi
  sleep 0.02
done
grep -q '^flushed epoch 2$' "$LOG" || { echo "FAIL: writer did not flush 3 epochs in 20 s:"; cat "$LOG"; exit 1; }
# Open MPI puts each rank in its own process group: kill mpirun's group and the
# ranks themselves, all at once, as a batch system would.
pids=$(cat "$F".pid0 "$F".pid1 2>/dev/null)
kill -9 -- "-$MPIPID" $pids 2>/dev/null
wait "$MPIPID" 2>/dev/null
MPIPID=
sleep 0.2
for p in $pids; do
  if alive "$p"; then echo "FAIL: rank pid $p survived kill -9"; exit 1; fi
done
flushed=$(grep -c '^flushed epoch' "$LOG")
echo "writer killed after $flushed flushed epochs"

fail=0
if h5dump -H "$F" >"$T/h5dump.out" 2>&1; then
  echo "PASS  h5dump -H opens the killed file"
else
  echo "FAIL  h5dump -H failed:"; cat "$T/h5dump.out"; fail=1
fi
if h5dump -d /runs/killed/epochs "$F" >"$T/h5dump.epochs" 2>&1; then
  echo "PASS  h5dump reads the epochs table"
else
  echo "FAIL  h5dump -d epochs failed:"; cat "$T/h5dump.epochs"; fail=1
fi

if "$PY" - "$F" "$flushed" <<'PYEOF'
import math
import sys
import h5py
path, flushed = sys.argv[1], int(sys.argv[2])
s = lambda v: v.decode() if isinstance(v, bytes) else str(v)
bad = []
with h5py.File(path, "r") as f:
    if s(f.attrs["schema"]) != "ilbench-results" or int(f.attrs["schema_version"]) != 3:
        bad.append("schema attributes")
    run = f["runs/killed"]
    status = s(run.attrs["status"])
    if status != "running":
        bad.append("status is %r, expected 'running'" % status)
    ep, st = run["epochs"][...], run["steps"][...]
    n = len(ep)
    # every epoch flushed before the kill is there (one more may have been
    # flushed between the log line and the kill)
    if n < 3 or n < flushed or n > flushed + 1:
        bad.append("%d epoch rows, %d flushed" % (n, flushed))
    for i, r in enumerate(ep):
        if (r["epoch"], r["lr"], r["train_loss"], r["train_batches"], r["diverged_batches"]) != (
                i, 0.1, 1.0 / (i + 1), 10 * i, i):
            bad.append("epoch row %d: %r" % (i, r))
    if len(st) != 3 * n:
        bad.append("%d step rows for %d epochs" % (len(st), n))
    for j, r in enumerate(st):
        i, k = divmod(j, 3)
        if (r["epoch"], r["step"], r["loss"], r["fwd_iters"]) != (i, k, i + k / 10.0, 10 * i + k):
            bad.append("step row %d: %r" % (j, r))
        # schema v2 diagnostics: the writer's defaults (NaN, origin 0, iteration -1),
        # diag_cond = k + 1 and diag_preact_max = 89.5 + k
        diag = [r[c] for c in ("diag_rho_max", "diag_rho_mean", "diag_grad_cos", "diag_grad_relerr")]
        if not all(math.isnan(v) for v in diag) or (
                r["diag_cond"], r["diag_preact_max"], r["nan_origin"], r["nan_iter"]) != (k + 1, 89.5 + k, 0, -1):
            bad.append("step row %d diagnostics: %r" % (j, r))
    if "ranks" in run:
        bad.append("a killed run has a ranks table")
for b in bad:
    print("  " + b)
if not bad:
    print("h5py: %d epochs, %d steps, status %s" % (n, len(st), status))
sys.exit(1 if bad else 0)
PYEOF
then
  echo "PASS  h5py reads status 'running' and every flushed epoch with its values"
else
  echo "FAIL  h5py check"; fail=1
fi
exit $fail
