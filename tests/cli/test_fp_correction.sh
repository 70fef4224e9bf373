#!/usr/bin/env bash
# --fp-correction K[:GAMMA] end to end: bad values and unroll refused with exit 2
# and a message naming the problem; `ilbench gradcheck --fp-correction` passes for
# implicit, phantom and jfb; K = 1 trains exactly as without the option (the seed's
# numbers); a corrected fp/implicit run trains, prints its configuration line, and
# records fp_correction and fp_correction_gamma as run attributes (read with h5py
# where /usr/bin/python3 has it).
#
# usage: test_fp_correction.sh <ilbench> <source dir>
# The training cases need <source dir>/data/mnist: skipped (77) without it unless
# ILBENCH_REQUIRE_DATA=1.
set -u

ILB=${1:?usage: test_fp_correction.sh <ilbench> <source dir>}
SRC=${2:?usage: test_fp_correction.sh <ilbench> <source dir>}
MNIST=$SRC/data/mnist

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-fpc.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

npass=0
nfail=0
failed=()
pass() { echo "PASS  $1"; npass=$((npass + 1)); }
fail() {
  echo "FAIL  $1: $2"
  nfail=$((nfail + 1))
  failed+=("$1")
}

# run ARGS...: ilbench from $T (60 s limit); sets rc, out, err.
run() {
  (cd "$T" && timeout 60 "$ILB" "$@") >"$T/stdout" 2>"$T/stderr"
  rc=$?
  out=$(cat "$T/stdout")
  err=$(cat "$T/stderr")
}

# expect_refused NAME PHRASE -- ARGS...: exit 2, PHRASE on stderr, nothing on stdout said "error:".
expect_refused() {
  local name=$1 phrase=$2
  shift 3
  run "$@"
  if [[ $rc -ne 2 ]]; then
    fail "$name" "exit $rc, expected 2 (stderr: $(head -c 300 <<<"$err"))"
  elif ! grep -qF -- "$phrase" <<<"$err"; then
    fail "$name" "stderr does not mention '$phrase': $(head -c 300 <<<"$err")"
  else
    pass "$name"
  fi
}

QD=(--max-batches 2 --test-batches 1 --epochs 1 --solver fp --backward implicit --data "$MNIST")
# refused before any data is read, so these run without MNIST too
expect_refused "K = 0" "--fp-correction K" -- train "${QD[@]}" --fp-correction 0
expect_refused "K = 101" "out of range" -- train "${QD[@]}" --fp-correction 101
expect_refused "K not a number" "not an integer" -- train "${QD[@]}" --fp-correction three
expect_refused "GAMMA = 0" "GAMMA must be in (0, 1]" -- train "${QD[@]}" --fp-correction 3:0
expect_refused "GAMMA = 1.5" "GAMMA must be in (0, 1]" -- train "${QD[@]}" --fp-correction 3:1.5
expect_refused "GAMMA empty" "--fp-correction GAMMA" -- train "${QD[@]}" --fp-correction 3:
expect_refused "GAMMA NaN" "--fp-correction GAMMA" -- train "${QD[@]}" --fp-correction 3:nan
expect_refused "with unroll" "not defined with backward 'unroll'" -- \
  train --max-batches 2 --epochs 1 --solver fp --backward unroll --fp-correction 3 --data "$MNIST"
expect_refused "gradcheck K = 1" "--fp-correction K" -- gradcheck --fp-correction 1
expect_refused "gradcheck with unroll" "deep supervision" -- gradcheck --solver fp --backward unroll --fp-correction 2
expect_refused "gradcheck with --w-norm" "--w-norm weight and --fp-correction cannot be checked together" -- \
  gradcheck --solver fp --backward implicit --fp-correction 3 --w-norm weight

run gradcheck --solver fp --fp-correction 3:0.8
if [[ $rc -eq 0 ]] && [[ $(grep -c ' PASS$' <<<"$out") -eq 6 ]] && grep -q '^fp  *phantom ' <<<"$out" &&
   grep -q '^fp  *jfb ' <<<"$out" && ! grep -q ' unroll ' <<<"$out"; then
  pass "gradcheck --fp-correction: implicit (4 adjoints), phantom, jfb pass; unroll left out"
else
  fail "gradcheck --fp-correction" "exit $rc; output: $out"
fi
run gradcheck --solver newton --backward phantom:3 --fp-correction 4:0.5
if [[ $rc -eq 0 ]] && [[ $(grep -c ' PASS$' <<<"$out") -eq 1 ]]; then
  pass "gradcheck newton phantom:3 --fp-correction 4:0.5"
else
  fail "gradcheck newton phantom:3 --fp-correction 4:0.5" "exit $rc; output: $out"
fi

if [[ ! -f $MNIST/train-images-idx3-ubyte ]]; then
  if [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]]; then
    fail "training cases" "no MNIST data in $MNIST"
  else
    echo "SKIP  training cases: no MNIST data in $MNIST"
    echo "== $npass passed, $nfail failed"
    [[ $nfail -eq 0 ]] && exit 77
    exit 1
  fi
else
  TR=(--max-batches 20 --test-batches 5 --epochs 1 --solver fp --backward implicit --data "$MNIST")
  # K = 1 is off: the epoch line is the default run's, timings and memory aside
  strip() { grep '^epoch=' | sed -E 's/ (train_s|test_s|forward_s|backward_s|wait_s|allreduce_s|update_s)=[0-9.e+-]*//g'; }
  run train "${TR[@]}"
  base=$(strip <<<"$out")
  run train "${TR[@]}" --fp-correction 1:0.3
  one=$(strip <<<"$out")
  if [[ $rc -eq 0 && -n $base && $base == "$one" ]] && ! grep -q '^# fp_correction' <<<"$out"; then
    pass "--fp-correction 1 trains exactly as the default"
  else
    fail "--fp-correction 1 trains exactly as the default" "exit $rc; default: $base; K=1: $one"
  fi
  run train "${TR[@]}" --fp-correction 3:0.8 --out "$T/fpc.h5"
  corr=$(strip <<<"$out")
  if [[ $rc -eq 0 ]] && grep -q '^# fp_correction  *3 points, weights 0.8' <<<"$out" &&
     grep -q 'nan_batches=0' <<<"$corr" && [[ $corr != "$base" ]]; then
    pass "fp/implicit --fp-correction 3:0.8 trains (and changes training)"
  else
    fail "fp/implicit --fp-correction 3:0.8" "exit $rc; $corr"
  fi
  run train "${TR[@]}" --threads 2 --fp-correction 3:0.8
  if [[ $rc -eq 0 ]] && grep -q 'nan_batches=0' <<<"$out"; then
    pass "--fp-correction with --threads 2 (the layer's thread team)"
  else
    fail "--fp-correction with --threads 2" "exit $rc; $err"
  fi
  if /usr/bin/python3 -c 'import h5py' 2>/dev/null; then
    if /usr/bin/python3 - "$T/fpc.h5" >"$T/attrs.txt" 2>&1 <<'PY'; then
import sys, h5py
f = h5py.File(sys.argv[1], "r")
(run,) = f["runs"].values()
a = run.attrs
assert int(a["fp_correction"]) == 3, a["fp_correction"]
assert abs(float(a["fp_correction_gamma"]) - 0.8) < 1e-12, a["fp_correction_gamma"]
print("fp_correction", int(a["fp_correction"]), "gamma", float(a["fp_correction_gamma"]))
PY
      pass "run attributes fp_correction=3, fp_correction_gamma=0.8 ($(cat "$T/attrs.txt"))"
    else
      fail "run attributes" "$(cat "$T/attrs.txt")"
    fi
  else
    echo "SKIP  run attributes: no h5py for /usr/bin/python3"
  fi
fi

echo "== $npass passed, $nfail failed"
if [[ $nfail -gt 0 ]]; then
  printf '   failed: %s\n' "${failed[@]}"
  exit 1
fi
exit 0
