#!/usr/bin/env bash
# End-to-end: train's --warm-start, --w-norm and --broyden-ls.
#  - refusals (exit 2): --w-norm with an unknown value (naming the choices), --broyden-ls with
#    another solver (naming it), --broyden-ls given a value;
#  - --warm-start: two epochs over the same 20 batches (--batch-order) at a tiny learning rate:
#    epoch 0 (no sample seen yet) equals the run without it to the last digit, and in epoch 1,
#    where every sample starts from its own fixed point of epoch 0, fp's mean forward iterations
#    fall below a fifth of epoch 0's, while without --warm-start they stay; newton/implicit over
#    batches of half seen, half never-seen samples (those start from Newton's own f(0)) trains
#    and takes no more iterations than without; a NaN-skipped step (--inject-nan) stores nothing,
#    so that batch starts cold again in epoch 1 while the others start warm;
#  - the results file: run attributes warm_start, w_norm and options (broyden-ls=1), the state
#    category's peak memory at least the table's bytes, analysis/check_schema.py passes;
#  - --w-norm weight: --save-params holds g after the other parameters; spectral and weight
#    train to finite losses; gradcheck --w-norm passes for both (float64, dL/dV and dL/dg).
# usage: test_train_warm_wnorm.sh <ilbench> <source dir>; skipped (77) without data/mnist
# unless ILBENCH_REQUIRE_DATA=1.
set -u
ILB=${1:?usage: test_train_warm_wnorm.sh <ilbench> <source dir>}
SRC=${2:?}
MNIST=$SRC/data/mnist
py=/usr/bin/python3
if [[ ! -f $MNIST/train-images-idx3-ubyte ]]; then
  [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]] && { echo "FAIL: no MNIST in $MNIST"; exit 1; }
  echo "SKIP: no MNIST in $MNIST"; exit 77
fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-warm-wnorm.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
nfail=0
ok() { echo "PASS  $*"; }
bad() { echo "FAIL  $*"; nfail=$((nfail + 1)); }
fcmp() { awk "BEGIN { exit !($1) }"; }
# key K of epoch E in log L
val() { grep "^epoch=$2 " "$1" | tr ' ' '\n' | sed -n "s/^$3=//p"; }

refuse() { # LABEL NEEDLE ARGS...
  local label=$1 needle=$2
  shift 2
  "$ILB" train --data "$MNIST" "$@" >"$T/r.out" 2>&1
  local rc=$?
  if ((rc == 2)) && grep -qF -- "$needle" "$T/r.out"; then ok "$label: exit 2 ($(head -c 150 "$T/r.out"))"
  else bad "$label: exit $rc, want 2 and '$needle': $(head -c 300 "$T/r.out")"; fi
}
refuse "--w-norm bogus" "none|weight|spectral" --w-norm bogus --epochs 1 --max-batches 1
refuse "--broyden-ls with --solver fp" "broyden-ls" --solver fp --broyden-ls --epochs 1 --max-batches 1
refuse "--broyden-ls 1 (a flag takes no value)" "1" --solver broyden --backward implicit --broyden-ls 1 --epochs 1

# the same 2000 samples in both epochs; and epoch 1 mixing 1000 of them with 1000 new ones per batch
$py - "$T" <<'PY'
import sys
t = sys.argv[1]
same = list(range(2000))
mixed = [i for k in range(1000) for i in (1000 + k, 2000 + k)]
open(f"{t}/same.txt", "w").write("\n".join(map(str, same + same)) + "\n")
open(f"{t}/mixed.txt", "w").write("\n".join(map(str, same + mixed)) + "\n")
PY
C=(--data "$MNIST" --epochs 2 --max-batches 20 --test-batches 2 --lr 1e-6 --lr-drop none)
run() { # LOG ARGS...
  local log=$1
  shift
  "$ILB" train "${C[@]}" "$@" >"$log" 2>&1 || { bad "train $*: exit $?: $(tail -2 "$log")"; return 1; }
}
run "$T/cold.log" --solver fp --backward implicit --batch-order "$T/same.txt" &&
  run "$T/warm.log" --solver fp --backward implicit --batch-order "$T/same.txt" --warm-start --out "$T/w.h5" &&
  {
    a=$(grep '^epoch=0 ' "$T/cold.log" | sed -E 's/ [a-z_]+_s=[^ ]*//g; s/ peak_mem_bytes=[^ ]*//')
    b=$(grep '^epoch=0 ' "$T/warm.log" | sed -E 's/ [a-z_]+_s=[^ ]*//g; s/ peak_mem_bytes=[^ ]*//')
    [[ -n $a && $a == "$b" ]] && ok "fp: epoch 0 with --warm-start (nothing seen yet) equals the cold run" ||
      bad "fp: epoch 0 differs: cold '$a' warm '$b'"
    c0=$(val "$T/cold.log" 0 train_iters) c1=$(val "$T/cold.log" 1 train_iters)
    w0=$(val "$T/warm.log" 0 train_iters) w1=$(val "$T/warm.log" 1 train_iters)
    fcmp "$w1 < 0.2 * $w0 && $c1 > 0.8 * $c0" &&
      ok "fp: epoch 1 iterations $w1 warm (epoch 0: $w0), $c1 cold (epoch 0: $c0)" ||
      bad "fp: epoch 1 iterations $w1 warm (epoch 0: $w0), $c1 cold (epoch 0: $c0)"
    grep -q "^# warm_start " "$T/warm.log" && ok "the configuration table names warm_start" ||
      bad "no warm_start line in the configuration table"
  }
run "$T/nan.log" --solver fp --backward implicit --batch-order "$T/same.txt" --warm-start --inject-nan 0:3 \
  --log-steps && {
  it() { grep "^global_step=$1 " "$T/nan.log" | tr ' ' '\n' | sed -n 's/^fwd_iters=//p'; }
  s3=$(it 3) e3=$(it 23) e4=$(it 24) e2=$(it 22)
  skipped=$(grep "^global_step=3 " "$T/nan.log" | grep -c "nan_skipped=1")
  ((skipped == 1 && e3 >= s3 && 3 * e4 < s3 && 3 * e2 < s3)) &&
    ok "NaN-skipped step 3 stored nothing: epoch 1 batch 3 took $e3 maps (epoch 0: $s3), batches 2 and 4 $e2 and $e4" ||
    bad "NaN-skipped step 3 (skipped=$skipped): epoch 1 batch 3 $e3 maps (epoch 0: $s3), batches 2 and 4 $e2 and $e4"
}
run "$T/ncold.log" --solver newton --backward implicit --batch-order "$T/mixed.txt" &&
  run "$T/nwarm.log" --solver newton --backward implicit --batch-order "$T/mixed.txt" --warm-start &&
  {
    c1=$(val "$T/ncold.log" 1 train_iters) w1=$(val "$T/nwarm.log" 1 train_iters) l1=$(val "$T/nwarm.log" 1 train_loss)
    fcmp "$w1 <= $c1 && $l1 > 0 && $l1 < 3" && ok "newton, half-seen batches: epoch 1 iterations $w1 warm, $c1 cold; loss $l1" ||
      bad "newton, half-seen batches: epoch 1 iterations $w1 warm, $c1 cold; loss $l1"
  }

# --w-norm and --broyden-ls in the results file; g in --save-params
W=(--data "$MNIST" --epochs 1 --max-batches 30 --test-batches 2)
for wn in weight spectral; do
  if "$ILB" train "${W[@]}" --solver broyden --backward implicit --broyden-ls --w-norm $wn --warm-start \
      --out "$T/n.h5" --append --save-params "$T/$wn.bin" >"$T/$wn.log" 2>&1; then
    l=$(val "$T/$wn.log" 0 train_loss)
    fcmp "$l > 0 && $l < 3" && ok "--w-norm $wn: trains (loss $l)" || bad "--w-norm $wn: loss $l"
  else
    bad "--w-norm $wn: exit $?: $(tail -2 "$T/$wn.log")"
  fi
done
np=$((784 * 100 + 100 + 100 * 100 + 10 * 100 + 10))
sz=$(stat -c %s "$T/weight.bin" 2>/dev/null || echo 0) ss=$(stat -c %s "$T/spectral.bin" 2>/dev/null || echo 0)
((sz == 4 * (np + 100) && ss == 4 * np)) && ok "--save-params: $sz bytes with g (weight), $ss without (spectral)" ||
  bad "--save-params: $sz bytes (weight, want $((4 * (np + 100)))), $ss (spectral, want $((4 * np)))"
if $py -c 'import h5py' 2>/dev/null; then
  if out=$($py - "$T/n.h5" "$T/w.h5" <<'PY'
import sys, h5py
runs = [g for p in sys.argv[1:] for g in (lambda r: [r[k] for k in sorted(r)])(h5py.File(p, "r")["runs"])]
s = lambda v: v.decode() if isinstance(v, bytes) else v
got = [(s(g.attrs["w_norm"]), int(g.attrs["warm_start"]), s(g.attrs["options"]), int(g.attrs["peak_bytes_state"]))
       for g in runs]
# two runs may start in the same second, and run ids then sort by their hash: compare as sets
assert sorted(x[:3] for x in got) == sorted([("weight", 1, "broyden-ls=1"), ("spectral", 1, "broyden-ls=1"),
                                             ("none", 1, "")]), got
table = 60000 * 100 * 4
assert all(x[3] >= table for x in got), got
print(got)
PY
  ); then ok "run attributes and the state category: $out"; else bad "run attributes: $out"; fi
  for f in "$T/n.h5" "$T/w.h5"; do
    $py "$SRC/analysis/check_schema.py" "$f" >"$T/cs.log" 2>&1 && ok "check_schema $(basename "$f")" ||
      bad "check_schema $(basename "$f"): $(tail -3 "$T/cs.log")"
  done
else
  echo "SKIP  the results-file checks: no h5py for $py"
fi
for wn in weight spectral; do
  "$ILB" gradcheck --solver newton --w-norm $wn >"$T/gc.log" 2>&1 && (($(grep -c PASS "$T/gc.log") == 5)) &&
    ok "gradcheck --w-norm $wn: 5 backward modes pass" || bad "gradcheck --w-norm $wn: $(cat "$T/gc.log")"
done
refuse_gc=$("$ILB" gradcheck --w-norm bogus 2>&1); rc=$?
((rc == 2)) && [[ $refuse_gc == *"none|weight|spectral"* ]] && ok "gradcheck --w-norm bogus: exit 2" ||
  bad "gradcheck --w-norm bogus: exit $rc: $refuse_gc"
echo "== $nfail failed"
((nfail == 0))
