#!/usr/bin/env bash
# Data-parallel training gives the single-process science at any rank count.
#   test_mpi_train.sh <ilbench> <source dir> <mpiexec>
# Over 100 steps of fp/unroll on real MNIST, for P = 2, 3 (uneven shards: 34/33/33)
# and 4 (oversubscribed):
#   - parameters are bitwise identical across ranks after every step
#     (--check-sync 1 makes the run fail otherwise);
#   - per-step losses match P = 1 within 1e-5 relative, and the final
#     parameters within 1e-5 relative L2 (float32 rounding of differently
#     shaped GEMMs and of the allreduce sum order; measured ~2e-7).
# A NaN injected into one rank's gradient is skipped by every rank, whichever
# rank it is on, and training goes on in sync.
# The stop rules (--stop-norm max|mean, --stop-mode relf, --best sample) take P = 1's
# forward iterations at every step on P = 2 and 3.
# On --device cpu-guard, short fp/unroll and newton/implicit runs (P = 1, 2, with
# a NaN skip) are bit-identical to --device cpu: losses, logged steps, parameters.
set -euo pipefail
ilbench=$1 src=$2 mpiexec=$3
data="$src/data/mnist"
if [[ ! -f "$data/train-images-idx3-ubyte" ]]; then
  if [[ "${ILBENCH_REQUIRE_DATA:-0}" == 1 ]]; then echo "FAIL: $data missing; run scripts/fetch-mnist" >&2; exit 1; fi
  echo "SKIP: $data missing (run scripts/fetch-mnist)"; exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
fail=0

mpi_map=(--oversubscribe)
run() { # P, tag, extra args...
  local P=$1 tag=$2; shift 2
  "$mpiexec" "${mpi_map[@]}" -np "$P" "$ilbench" train --data "$data" --epochs 1 --test-batches 0 \
    --check-sync 1 --log-steps --save-params "$tmp/$tag.params" "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" || {
    echo "FAIL: P=$P $tag exited non-zero"; cat "$tmp/$tag.err"; return 1; }
  grep '^global_step=' "$tmp/$tag.out" | sed 's/.* loss=\([^ ]*\).*/\1/' >"$tmp/$tag.loss"
}

run 1 p1 --max-batches 100
for P in 2 3 4; do
  run "$P" "p$P" --max-batches 100 || { fail=1; continue; }
  if "$py" - "$tmp/p1" "$tmp/p$P" <<'PY'
import sys, numpy as np
a, b = sys.argv[1], sys.argv[2]
la, lb = np.loadtxt(a + ".loss"), np.loadtxt(b + ".loss")
assert la.shape == lb.shape == (100,), (la.shape, lb.shape)
dl = np.max(np.abs(lb - la) / np.abs(la))
pa = np.fromfile(a + ".params", dtype=np.float32).astype(np.float64)
pb = np.fromfile(b + ".params", dtype=np.float32).astype(np.float64)
dp = np.linalg.norm(pb - pa) / np.linalg.norm(pa)
print(f"  max rel loss diff {dl:.2e}, final params rel L2 diff {dp:.2e}")
sys.exit(0 if dl <= 1e-5 and dp <= 1e-5 and not np.array_equal(pa, 0 * pa) else 1)
PY
  then echo "PASS: P=$P matches P=1 over 100 steps, parameters identical across ranks at every step"
  else echo "FAIL: P=$P differs from P=1"; fail=1; fi
done

# Global NaN agreement: the same NaN on rank 1 or on rank 0 gives the same run.
for r in 0 1; do run 2 "nan$r" --max-batches 20 --inject-nan "$r:5" || fail=1; done
if grep -q '^global_step=5 .*nan_skipped=1' "$tmp/nan1.out" && grep -q 'nan_batches=1 ' "$tmp/nan1.out" &&
   [[ $(grep -c 'nan_skipped=1' "$tmp/nan1.out") == 1 ]] && cmp -s "$tmp/nan0.loss" "$tmp/nan1.loss" &&
   cmp -s "$tmp/nan0.params" "$tmp/nan1.params"; then
  echo "PASS: a NaN on one rank skips step 5 on every rank, and the run stays in sync"
else
  echo "FAIL: NaN agreement"; grep -E '^global_step=(4|5|6) |^epoch=' "$tmp/nan1.out" || true; fail=1
fi
# ... and the skipped step really changed nothing: steps 0-4 match a clean run.
run 2 clean --max-batches 20 || fail=1
if [[ "$(head -5 "$tmp/clean.loss")" == "$(head -5 "$tmp/nan1.loss")" ]] &&
   ! cmp -s "$tmp/clean.params" "$tmp/nan1.params"; then
  echo "PASS: steps before the NaN match a clean run; the skip changes the end state"
else echo "FAIL: NaN skip changed earlier steps or nothing"; fail=1; fi

# Device neutrality: the same runs on --device cpu-guard (tensor memory PROT_NONE
# outside backend ops; the driver stages parameters and gradients through host
# memory for MPI) give bit-identical results to --device cpu. 30 steps of
# fp/unroll and newton/implicit on P = 1 and 2, each with a NaN injected on the
# last rank at step 7 and --check-sync 1: every --log-steps line and the epoch
# line (time fields aside) and the --save-params file must be identical.
notime() { # global_step= and epoch= lines of a run's output, without the *_s= time fields
  grep -E '^(global_step|epoch)=' "$1" | awk '{ s = ""; for (i = 1; i <= NF; i++) if ($i !~ /^[a-z_]+_s=/) s = s (s == "" ? "" : " ") $i; print s }' || true
}
for sb in "fp unroll" "newton implicit"; do
  set -- $sb
  for P in 1 2; do
    tag="guard-$1-$2-p$P" ok=1
    for dev in cpu cpu-guard; do
      run "$P" "$tag-$dev" --max-batches 30 --solver "$1" --backward "$2" --inject-nan "$((P - 1)):7" \
        --device "$dev" || { ok=0; continue; }
      notime "$tmp/$tag-$dev.out" >"$tmp/$tag-$dev.lines"
    done
    if ((ok == 0)); then fail=1; echo "FAIL: $1/$2 P=$P cpu-guard vs cpu: a run failed"; continue; fi
    if ! grep -q '^# device  *cpu-guard ' "$tmp/$tag-cpu-guard.out"; then
      echo "FAIL: $1/$2 P=$P --device cpu-guard did not run on cpu-guard"; grep '^# device' "$tmp/$tag-cpu-guard.out" || true; fail=1
    elif [[ $(grep -c '^global_step=' "$tmp/$tag-cpu.lines") != 30 || $(grep -c 'nan_skipped=1' "$tmp/$tag-cpu.lines") != 1 ]]; then
      echo "FAIL: $1/$2 P=$P cpu: expected 30 steps with one NaN skip"; fail=1
    elif ! cmp -s "$tmp/$tag-cpu.lines" "$tmp/$tag-cpu-guard.lines"; then
      echo "FAIL: $1/$2 P=$P cpu-guard and cpu log different steps; first difference (cpu <, cpu-guard >):"
      diff "$tmp/$tag-cpu.lines" "$tmp/$tag-cpu-guard.lines" | grep '^[<>]' | head -2 || true; fail=1
    elif ! cmp "$tmp/$tag-cpu.params" "$tmp/$tag-cpu-guard.params" | head -1; then
      echo "FAIL: $1/$2 P=$P cpu-guard and cpu end with different parameters"; fail=1
    else
      echo "PASS: $1/$2 P=$P cpu-guard is bit-identical to cpu (30 steps with a NaN skip, final parameters)"
    fi
  done
done

# --threads 2 on one rank (the layer's thread team: row shards meeting once per iteration) gives
# the one-thread run within the same bounds as more ranks, and is reproducible bit for bit. The
# rank gets two cores of its own (mpirun binds a lone rank to one core otherwise, and that is refused).
mpi_map=(--map-by slot:PE=2)
run 1 t2a --max-batches 100 --threads 2 && run 1 t2b --max-batches 100 --threads 2 || fail=1
mpi_map=(--oversubscribe)
if "$py" - "$tmp/p1" "$tmp/t2a" <<'PY'
import sys, numpy as np
a, b = sys.argv[1], sys.argv[2]
la, lb = np.loadtxt(a + ".loss"), np.loadtxt(b + ".loss")
dl = np.max(np.abs(lb - la) / np.abs(la))
pa = np.fromfile(a + ".params", dtype=np.float32).astype(np.float64)
pb = np.fromfile(b + ".params", dtype=np.float32).astype(np.float64)
dp = np.linalg.norm(pb - pa) / np.linalg.norm(pa)
print(f"  --threads 2: max rel loss diff {dl:.2e}, final params rel L2 diff {dp:.2e}")
sys.exit(0 if la.shape == lb.shape == (100,) and dl <= 1e-5 and dp <= 1e-5 else 1)
PY
then
  if cmp -s "$tmp/t2a.params" "$tmp/t2b.params" && cmp -s "$tmp/t2a.loss" "$tmp/t2b.loss"; then
    echo "PASS: --threads 2 matches --threads 1 over 100 steps and repeats bit for bit"
  else echo "FAIL: two --threads 2 runs differ"; fail=1; fi
else echo "FAIL: --threads 2 differs from --threads 1"; fail=1; fi
if ! grep -q '^# threads  *2 (rank 0: threads bound to cpus ' "$tmp/t2a.out"; then
  echo "FAIL: --threads 2 does not report its binding"; grep '^# threads' "$tmp/t2a.out"; fail=1
fi

# Two ranks of T = nproc threads cannot have cores of their own here: refused, naming the fix.
T=$(nproc); ((T >= 2)) || T=2
if "$mpiexec" --oversubscribe -np 2 "$ilbench" train --data "$data" --max-batches 2 --threads "$T" >"$tmp/bind.out" 2>&1; then
  echo "FAIL: 2 ranks x $T threads on $(nproc) CPUs accepted"; fail=1
elif grep -q 'threads would share cores' "$tmp/bind.out" && grep -q 'map-by slot:PE=' "$tmp/bind.out"; then
  echo "PASS: 2 ranks x $T threads on $(nproc) CPUs refused with the mpirun fix"
else echo "FAIL: unclear message for oversubscribed threads"; cat "$tmp/bind.out"; fail=1; fi

# The stopping rules reduce over ranks (TorchDEQ's max of the rows' relative residuals, the mean of
# the rows' norms, each row's lowest-residual iterate): P = 2 and 3 take P = 1's forward iterations
# at every one of 20 anderson/implicit steps, with losses within 1e-5 relative.
for rule in "--stop-norm max --stop-mode relf --best sample" "--stop-norm mean --best sample"; do
  tag=$(tr -d ' -' <<<"$rule")
  for P in 1 2 3; do run "$P" "sr$P-$tag" --max-batches 20 --solver anderson --backward implicit $rule || fail=1; done
  for P in 2 3; do
    if "$py" - "$tmp/sr1-$tag" "$tmp/sr$P-$tag" <<'PY'
import re, sys, numpy as np
def steps(tag):
    lines = [l for l in open(tag + ".out") if l.startswith("global_step=")]
    return [int(re.search(r" fwd_iters=(\d+)", l).group(1)) for l in lines], np.loadtxt(tag + ".loss")
(ia, la), (ib, lb) = steps(sys.argv[1]), steps(sys.argv[2])
dl = np.max(np.abs(lb - la) / np.abs(la))
print(f"  fwd_iters {ia[:6]}..., max rel loss diff {dl:.2e}")
sys.exit(0 if len(ia) == 20 and ia == ib and dl <= 1e-5 else 1)
PY
    then echo "PASS: $rule: P=$P takes P=1's iterations at every step"
    else echo "FAIL: $rule: P=$P differs from P=1"; fail=1; fi
  done
  grep -q "^# stop_mode .*norm ${rule:12:3}" "$tmp/sr1-$tag.out" || { echo "FAIL: $rule not in the run's header"; fail=1; }
done

# More ranks than rows is refused with a clear message.
if "$mpiexec" --oversubscribe -np 3 "$ilbench" train --data "$data" --batch 2 >"$tmp/small.out" 2>&1; then
  echo "FAIL: --batch 2 on 3 ranks accepted"; fail=1
elif grep -q 'smaller than the 3 ranks' "$tmp/small.out"; then
  echo "PASS: --batch 2 on 3 ranks refused"
else echo "FAIL: unclear message for --batch 2 on 3 ranks"; cat "$tmp/small.out"; fail=1; fi
exit $fail
