#!/usr/bin/env bash
# End-to-end: short MNIST training runs for fp/unroll, newton/implicit and
# newton/unroll; checks the logfmt epoch line and that a fixed --seed makes
# the run reproducible. Then one short newton/implicit run with --out on
# --device cpu-guard must match --device cpu bit for bit.
#
# usage: test_train_mnist.sh <ilbench> <source dir>
# Needs <source dir>/data/mnist (scripts/fetch-mnist). Without it the test exits
# 77 (skipped), unless ILBENCH_REQUIRE_DATA=1, which makes it fail instead.
set -u

ILB=${1:?usage: test_train_mnist.sh <ilbench> <source dir>}
SRC=${2:?usage: test_train_mnist.sh <ilbench> <source dir>}
MNIST=$SRC/data/mnist

# Bounds. Measured on the reference CPU build (OpenBLAS, 1 thread, seed 0,
# 1 epoch, 100 batches of 100, test on 20 batches of 100):
#   fp/unroll        test_err=0.1495 test_loss=0.5118 train_iters=45.70 test_iters=67.80
#   newton/implicit  test_err=0.1495 test_loss=0.5118 train_iters=4.99  test_iters=6.90
#   newton/unroll    test_err=0.1495 test_loss=0.5118 train_iters=4.99  test_iters=6.90
# (train_err 0.245 in all three). Chance is 0.9, so these still catch a model
# that does not learn, with room for BLAS and platform differences.
MAX_TEST_ERR=0.25
MAX_TRAIN_ERR=0.40
MAX_NEWTON_ITERS=15 # mean Newton iterations per batch, train and test

KEYS=(epoch lr train_err train_loss train_iters train_bwd_iters test_err test_loss test_iters
  nan_batches nonconverged maxiter_batches nonfinite_batches train_batches train_s test_s
  peak_mem_bytes saved_peak_bytes workspace_peak_bytes)

if [[ ! -x $ILB ]]; then
  echo "FAIL: ilbench not found or not executable: $ILB"
  exit 1
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [[ ! -f $MNIST/$f ]]; then
    if [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]]; then
      echo "FAIL: $MNIST/$f is missing; run scripts/fetch-mnist (ILBENCH_REQUIRE_DATA=1 is set)"
      exit 1
    fi
    echo "SKIP: $MNIST/$f is missing; run scripts/fetch-mnist to enable this test"
    exit 77
  fi
done

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-train-mnist.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

nfail=0
check() { # check NAME CONDITION-DESCRIPTION OK(0/1)
  if [[ $3 -eq 1 ]]; then
    echo "PASS  $1: $2"
  else
    echo "FAIL  $1: $2"
    nfail=$((nfail + 1))
  fi
}
# fcmp 'a < b' -> 1 if true (floating point, via awk)
fcmp() { awk "BEGIN { exit !($1) }" && echo 1 || echo 0; }
isfinite() { [[ $1 =~ ^[-+]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][-+]?[0-9]+)?$ ]] && echo 1 || echo 0; }

# train NAME ARGS...: runs one training; sets LINE to its single epoch= line.
train() {
  local name=$1
  shift
  LINE=""
  local cmd=("$ILB" train --epochs 1 --max-batches 100 --test-batches 20 --data "$MNIST" "$@")
  echo "      ${cmd[*]}"
  (cd "$T" && "${cmd[@]}") >"$T/out" 2>"$T/err"
  local rc=$?
  local n
  n=$(grep -c '^epoch=' "$T/out")
  if [[ $rc -ne 0 || $n -ne 1 ]]; then
    check "$name" "exit 0 with one epoch= line (got exit $rc, $n lines)" 0
    sed 's/^/      stderr: /' "$T/err" | head -5
    return 1
  fi
  LINE=$(grep '^epoch=' "$T/out")
  echo "      $LINE"
  return 0
}

# parse LINE into the associative array KV
declare -A KV
parse() {
  KV=()
  local kv
  for kv in $1; do KV[${kv%%=*}]=${kv#*=}; done
}

check_run() { # check_run NAME (uses KV)
  local name=$1 k missing=()
  for k in "${KEYS[@]}"; do [[ -n ${KV[$k]+x} ]] || missing+=("$k"); done
  check "$name" "all ${#KEYS[@]} keys present${missing:+ (missing: ${missing[*]})}" $((${#missing[@]} == 0))
  [[ ${#missing[@]} -eq 0 ]] || return
  check "$name" "epoch=0 (got ${KV[epoch]})" "$([[ ${KV[epoch]} == 0 ]] && echo 1 || echo 0)"
  check "$name" "train_batches=100 (got ${KV[train_batches]})" "$([[ ${KV[train_batches]} == 100 ]] && echo 1 || echo 0)"
  for k in train_err train_loss train_iters test_err test_loss test_iters; do
    if [[ $(isfinite "${KV[$k]}") -ne 1 ]]; then
      check "$name" "$k is a finite number (got ${KV[$k]})" 0
      return
    fi
  done
  check "$name" "test_loss finite and > 0 (got ${KV[test_loss]})" "$(fcmp "${KV[test_loss]} > 0")"
  check "$name" "test_err < $MAX_TEST_ERR (got ${KV[test_err]})" "$(fcmp "${KV[test_err]} < $MAX_TEST_ERR")"
  check "$name" "train_err < $MAX_TRAIN_ERR (got ${KV[train_err]})" "$(fcmp "${KV[train_err]} < $MAX_TRAIN_ERR")"
  check "$name" "train_iters > 0 (got ${KV[train_iters]})" "$(fcmp "${KV[train_iters]} > 0")"
  check "$name" "nan_batches=0 and nonfinite_batches=0 (got ${KV[nan_batches]}, ${KV[nonfinite_batches]})" \
    "$([[ ${KV[nan_batches]} == 0 && ${KV[nonfinite_batches]} == 0 ]] && echo 1 || echo 0)"
  check "$name" "peak_mem_bytes > 0 (got ${KV[peak_mem_bytes]})" "$(fcmp "${KV[peak_mem_bytes]} > 0")"
}

RUNS=("fp unroll" "newton implicit" "newton unroll")
declare -A FIRST
for r in "${RUNS[@]}"; do
  set -- $r
  name="$1/$2"
  echo "== $name"
  train "$name" --solver "$1" --backward "$2" --seed 0 || continue
  FIRST[$name]=$LINE
  parse "$LINE"
  check_run "$name"
  if [[ $1 == newton && $2 == implicit && -n ${KV[test_iters]+x} ]]; then
    check "$name" "mean train_iters <= $MAX_NEWTON_ITERS (got ${KV[train_iters]})" \
      "$(fcmp "${KV[train_iters]} <= $MAX_NEWTON_ITERS")"
    check "$name" "mean test_iters <= $MAX_NEWTON_ITERS (got ${KV[test_iters]})" \
      "$(fcmp "${KV[test_iters]} <= $MAX_NEWTON_ITERS")"
  fi
done

# Same command, same seed: identical line apart from the *_s timing keys.
strip_timing() { tr ' ' '\n' <<<"$1" | grep -v '^[a-z_]*_s=' | tr '\n' ' '; }
for r in "${RUNS[@]}"; do
  set -- $r
  name="$1/$2"
  [[ -n ${FIRST[$name]:-} ]] || continue
  echo "== $name, again with --seed 0"
  train "$name rerun" --solver "$1" --backward "$2" --seed 0 || continue
  a=$(strip_timing "${FIRST[$name]}")
  b=$(strip_timing "$LINE")
  if [[ $a == "$b" ]]; then
    check "$name" "same seed gives the same line (timing keys aside)" 1
  else
    check "$name" "same seed gives the same line (timing keys aside)" 0
    diff <(tr ' ' '\n' <<<"$a") <(tr ' ' '\n' <<<"$b") | sed 's/^/      /'
  fi
done

# --seed is not ignored: another seed gives another run.
if [[ -n ${FIRST["fp/unroll"]:-} ]]; then
  echo "== fp/unroll with --seed 1"
  if train "fp/unroll seed 1" --solver fp --backward unroll --seed 1; then
    a=$(strip_timing "${FIRST["fp/unroll"]}")
    b=$(strip_timing "$LINE")
    check "fp/unroll" "--seed 1 gives a different line from --seed 0" "$([[ $a != "$b" ]] && echo 1 || echo 0)"
  fi
fi

# Device neutrality: one short newton/implicit run with an --out HDF5 file on
# --device cpu-guard (tensor memory PROT_NONE outside backend ops: a host access
# to tensor data crashes it) is bit-identical to --device cpu: the epoch line
# (timing keys aside) and, where h5py is present, every non-time member of the
# file's epochs and steps tables and the run's configuration attributes.
declare -A GLINE
for dev in cpu cpu-guard; do
  echo "== newton/implicit --device $dev, 20 batches, --out"
  cmd=("$ILB" train --epochs 1 --max-batches 20 --test-batches 3 --data "$MNIST" --solver newton
    --backward implicit --seed 0 --device "$dev" --out "$T/guard-$dev.h5")
  echo "      ${cmd[*]}"
  (cd "$T" && "${cmd[@]}") >"$T/guard-$dev.out" 2>"$T/guard-$dev.err"
  rc=$?
  n=$(grep -c '^epoch=' "$T/guard-$dev.out")
  if [[ $rc -ne 0 || $n -ne 1 || ! -f $T/guard-$dev.h5 ]]; then
    check "$dev" "exit 0 with one epoch= line and an --out file (got exit $rc, $n lines)" 0
    sed 's/^/      stderr: /' "$T/guard-$dev.err" | head -5
    continue
  fi
  GLINE[$dev]=$(grep '^epoch=' "$T/guard-$dev.out")
  echo "      ${GLINE[$dev]}"
done
if [[ -n ${GLINE[cpu]:-} && -n ${GLINE[cpu-guard]:-} ]]; then
  check "cpu-guard" "the run says it ran on cpu-guard" \
    "$(grep -q '^# device  *cpu-guard ' "$T/guard-cpu-guard.out" && echo 1 || echo 0)"
  a=$(strip_timing "${GLINE[cpu]}")
  b=$(strip_timing "${GLINE[cpu-guard]}")
  if [[ $a == "$b" ]]; then
    check "cpu-guard" "same epoch line as --device cpu (timing keys aside)" 1
  else
    check "cpu-guard" "same epoch line as --device cpu (timing keys aside)" 0
    diff <(tr ' ' '\n' <<<"$a") <(tr ' ' '\n' <<<"$b") | sed 's/^/      /'
  fi
  if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
    /usr/bin/python3 - "$T/guard-cpu.h5" "$T/guard-cpu-guard.h5" >"$T/guard-h5.txt" 2>&1 <<'PY'
import sys, h5py, numpy as np
# Differ by design: the device (and the configuration hash over it), wall-clock times and the command line.
SKIP_ATTRS = {"device", "config_hash", "started", "finished", "command_line",
              "allreduce", "allreduce_detail"}  # the path: in place on cpu, staged on cpu-guard
def is_time(name): return name.startswith("t_") or name.endswith("_s")
def load(path):
    f = h5py.File(path, "r")
    runs = list(f["runs"])
    assert len(runs) == 1, f"{path}: {len(runs)} runs"
    return f["runs"][runs[0]]
a, b = load(sys.argv[1]), load(sys.argv[2])
bad = []
assert a.attrs["device"] == b"cpu" and b.attrs["device"] == b"cpu-guard", (a.attrs["device"], b.attrs["device"])
for k in sorted((set(a.attrs) | set(b.attrs)) - SKIP_ATTRS):
    va, vb = a.attrs.get(k), b.attrs.get(k)
    if va is None or vb is None or np.asarray(va).tobytes() != np.asarray(vb).tobytes():
        bad.append(f"attribute {k}: {va!r} (cpu) vs {vb!r} (cpu-guard)")
nrows = {}
for t in ("epochs", "steps"):
    da, db = a[t][()], b[t][()]
    nrows[t] = len(da)
    if da.dtype.names != db.dtype.names or da.shape != db.shape:
        bad.append(f"{t}: layout {da.dtype.names}{da.shape} vs {db.dtype.names}{db.shape}"); continue
    for m in da.dtype.names:
        if is_time(m): continue
        if da[m].tobytes() != db[m].tobytes():
            i = next(i for i in range(len(da)) if da[m][i].tobytes() != db[m][i].tobytes())
            bad.append(f"{t}[{i}].{m}: {da[m][i]!r} (cpu) vs {db[m][i]!r} (cpu-guard)")
if nrows != {"epochs": 1, "steps": 20}: bad.append(f"expected 1 epoch and 20 steps, got {nrows}")
print("\n".join(bad) if bad else f"{nrows['steps']} steps, {nrows['epochs']} epoch identical")
sys.exit(1 if bad else 0)
PY
    ok=$([[ $? -eq 0 ]] && echo 1 || echo 0)
    check "cpu-guard" "--out file: epochs, steps and run attributes identical to --device cpu (times aside)" "$ok"
    sed 's/^/      /' "$T/guard-h5.txt" | head -5
  else
    echo "      (no h5py for /usr/bin/python3: --out files not compared)"
  fi
fi

if [[ $nfail -gt 0 ]]; then
  echo "== $nfail check(s) failed"
  exit 1
fi
echo "== all checks passed"
exit 0
