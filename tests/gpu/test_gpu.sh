#!/usr/bin/env bash
# The device tests of the cuda backend, one CHECK per ctest case:
#   selftest    the backend-ops harness on DEVICE against the float64 reference, float32 and float64
#   gradcheck   finite differences in float64 against every backward mode, on DEVICE
#   trajectory  50 training steps of fp/unroll and newton/implicit on DEVICE against --device cpu:
#               per-step losses within RTOL (below)
#   ranks       2 ranks sharing DEVICE (the staged-MPI path: one NCCL communicator cannot hold two
#               ranks on one GPU) against 1 rank: per-step losses within RTOL_RANKS; and a NaN
#               injected on one rank skips that step on both, parameters checked in sync
#   nccl        1 rank with --allreduce nccl: the NCCL calls run (path "nccl"), losses equal to the
#               1-rank run without it (multi-GPU NCCL needs a machine with several GPUs)
# DEVICE cuda needs a usable GPU: without one every CHECK exits 77 (skipped) and says why.
# DEVICE cuda-host (the same kernels on the host) runs them in every CI run, except nccl.
#   test_gpu.sh ILBENCH SRCDIR MPIEXEC DEVICE CHECK
set -uo pipefail
ILB=$1 SRC=$2 MPIEXEC=$3 DEV=$4 CHECK=$5
MNIST=${ILBENCH_DATA:-$SRC/data/mnist}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
# Per-step relative loss difference to the cpu backend (float32). On the host the cuda kernels use
# libm's tanh where the cpu backend has its own polynomial
# (measured on cuda-host: fp/unroll 9.8e-8, newton/implicit 1.1e-7). A GPU sums its GEMMs in another order (cuBLAS vs OpenBLAS), about 1 ulp per
# GEMM; the differences grow through 50 SGD steps but stay far below 1e-4 unless a solve stops
# at a different iteration, which moves a loss by ~1e-5 (tests/reference/test_train_vs_torch.sh).
RTOL=1e-4
# 2 ranks vs 1: the gradient is summed in another order (two partial sums); measured on the host
# (cuda-host, 50 steps): fp/unroll 2.7e-8, newton/implicit 1.4e-6.
RTOL_RANKS=1e-5
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT

if [[ $DEV == cuda ]]; then
  line=$("$ILB" info 2>&1 | grep -A1 '^  cuda  ' | tail -1)
  if [[ -z $line ]]; then echo "FAIL: this ilbench has no cuda backend"; exit 1; fi
  if grep -q 'unavailable' <<<"$line"; then
    echo "SKIP ($CHECK): no usable GPU here:${line#*unavailable:}"
    exit 77
  fi
fi
need_data() {
  if [[ ! -f $MNIST/train-images-idx3-ubyte && ! -f $MNIST/train-images-idx3-ubyte.gz ]]; then
    [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]] && { echo "FAIL: no MNIST in $MNIST (scripts/fetch-mnist)"; exit 1; }
    echo "SKIP ($CHECK): no MNIST in $MNIST"; exit 77
  fi
}
train() { # out device pair extra...: 50 logged steps
  local out=$1 dev=$2 pair=$3; shift 3
  "$ILB" train --device "$dev" --solver "${pair%/*}" --backward "${pair#*/}" --epochs 1 --max-batches 50 \
    --test-batches 0 --threads 1 --data "$MNIST" --log-steps "$@" >"$out" 2>&1
}
# compare A B RTOL LABEL: per-step losses of two logs
compare() {
  awk -v rtol="$3" -v label="$4" '
    /^global_step=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "global_step") s = kv[2]; if (kv[1] == "loss") l = kv[2] }
                      if (FNR == NR) ref[s] = l; else { n++; d = l - ref[s]; d = d < 0 ? -d : d; r = d / (ref[s] < 0 ? -ref[s] : ref[s])
                        if (!(s in ref) || !(r <= rtol)) { bad++; printf "  step %s: %s vs %s (relative %.3g)\n", s, l, ref[s], r }
                        if (r > w) w = r } }
    END { printf "%s: %d steps, max relative loss difference %.3g (tolerance %g)\n", label, n, w, rtol
          exit (bad || n != 50) ? 1 : 0 }' "$1" "$2"
}

fail=0
case $CHECK in
  selftest)
    "$ILB" selftest --device "$DEV" || fail=1 ;;
  gradcheck)
    "$ILB" gradcheck --device "$DEV" || fail=1 ;;
  trajectory)
    need_data
    for pair in fp/unroll newton/implicit; do
      train "$T/cpu.log" cpu "$pair" || { cat "$T/cpu.log"; fail=1; continue; }
      train "$T/dev.log" "$DEV" "$pair" || { cat "$T/dev.log"; fail=1; continue; }
      grep -q "^# selftest  *$DEV passed" "$T/dev.log" || { echo "FAIL: train --device $DEV did not run its self-test first"; fail=1; }
      compare "$T/cpu.log" "$T/dev.log" $RTOL "$pair on $DEV vs cpu" || fail=1
    done ;;
  ranks)
    need_data
    for pair in fp/unroll newton/implicit; do
      train "$T/r1.log" "$DEV" "$pair" || { cat "$T/r1.log"; fail=1; continue; }
      "$MPIEXEC" -n 2 --oversubscribe "$ILB" train --device "$DEV" --solver "${pair%/*}" --backward "${pair#*/}" \
        --epochs 1 --max-batches 50 --test-batches 0 --threads 1 --data "$MNIST" --log-steps >"$T/r2.log" 2>&1 ||
        { cat "$T/r2.log"; fail=1; continue; }
      grep -q '^# allreduce  *mpi-staged' "$T/r2.log" ||
        { echo "FAIL: 2 ranks on one $DEV did not take the staged path:"; grep '^# allreduce' "$T/r2.log"; fail=1; }
      compare "$T/r1.log" "$T/r2.log" $RTOL_RANKS "$pair, 2 ranks sharing $DEV (staged) vs 1" || fail=1
    done
    # the NaN agreement and the parameter check on the device: a NaN in rank 1's gradient at step 3
    # reaches rank 0 through the allreduce, both skip that step, and the parameters stay identical
    # (--check-sync compares their checksums every 2 steps; a mismatch fails the run)
    "$MPIEXEC" -n 2 --oversubscribe "$ILB" train --device "$DEV" --epochs 1 --max-batches 8 --test-batches 0 \
      --threads 1 --data "$MNIST" --log-steps --inject-nan 1:3 --check-sync 2 >"$T/nan.log" 2>&1 ||
      { cat "$T/nan.log"; fail=1; }
    skipped=$(awk '/^global_step=/ { for (i = 1; i <= NF; i++) { split($i, kv, "="); if (kv[1] == "global_step") s = kv[2]; if (kv[1] == "nan_skipped") n = kv[2] }
                   if (n == 1) printf "%s ", s }' "$T/nan.log")
    if [[ $skipped == "3 " ]]; then echo "PASS: 2 ranks on $DEV: the NaN of rank 1 at step 3 skipped that step on both, parameters in sync"
    else echo "FAIL: 2 ranks on $DEV with --inject-nan 1:3: steps skipped: '${skipped}', expected '3 '"; fail=1; fi ;;
  nccl)
    need_data
    train "$T/a.log" "$DEV" fp/unroll --allreduce mpi || { cat "$T/a.log"; exit 1; }
    train "$T/n.log" "$DEV" fp/unroll --allreduce nccl || { cat "$T/n.log"; exit 1; }
    grep -q '^# allreduce  *nccl' "$T/n.log" || { echo "FAIL: --allreduce nccl did not use NCCL"; grep '^# allreduce' "$T/n.log"; fail=1; }
    compare "$T/a.log" "$T/n.log" 0 "fp/unroll, 1 rank, NCCL vs staged" || fail=1 ;;
  *) echo "test_gpu.sh: unknown check '$CHECK'"; exit 2 ;;
esac
exit $fail
