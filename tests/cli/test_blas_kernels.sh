#!/usr/bin/env bash
# ilbench runs on BLAS kernels that match the CPU's SIMD level (core/backends/cpu_blas_core.h):
#   - without OPENBLAS_CORETYPE, `info`'s "BLAS kernels" line never says the kernels fall short
#     (ilbench re-ran itself with OPENBLAS_CORETYPE when OpenBLAS's table fell short; on the
#     2026-12-02 Xeon, family 6 model 207, OpenBLAS 0.3.21 chose Prescott and sgemm 100^3 ran
#     at 25-28 GFLOP/s instead of 75-100);
#   - a user's OPENBLAS_CORETYPE is kept and named, and on an AVX2 or AVX-512 CPU a forced
#     Prescott is reported as below its level (so the check itself can say so);
#   - ILBENCH_BLAS_CORE=keep keeps OpenBLAS's own choice;
#   - under mpirun each rank ends on the same kernels;
#   - train records them in the run's blas_kernels attribute.
# usage: test_blas_kernels.sh <ilbench> <source dir>
set -u
ILB=${1:?usage: test_blas_kernels.sh <ilbench> <source dir>}
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
unset OPENBLAS_CORETYPE ILBENCH_BLAS_CORE ILBENCH_BLAS_REEXEC
fail=0
check() { if eval "$2"; then echo "ok: $1"; else echo "FAIL: $1"; fail=1; fi; }
line() { sed -n 's/^BLAS kernels[[:space:]]*//p'; }

info=$("$ILB" info) || { echo "FAIL: ilbench info exited $?"; exit 1; }
if ! grep -q '^BLAS config *OpenBLAS' <<<"$info"; then
  echo "SKIP: the BLAS is not OpenBLAS"; exit 77
fi
k=$(line <<<"$info")
echo "default: $k"
check "a BLAS kernels line" '[[ -n $k ]]'
check "default kernels are not below the CPU's level" '[[ $k != *"below this CPU"* ]]'

level=$(sed -n 's/^.* on this \([A-Z0-9-]*\) CPU.*/\1/p' <<<"$k")
ku=$(OPENBLAS_CORETYPE=Prescott "$ILB" info | line)
echo "forced Prescott: $ku"
check "a user's OPENBLAS_CORETYPE is kept" '[[ $ku == "Prescott "* && $ku == *"set by the user"* ]]'
if [[ $level == AVX2 || $level == AVX-512 ]]; then
  check "forced Prescott on an $level CPU is reported below its level" '[[ $ku == *"below this CPU"* ]]'
fi

kk=$(ILBENCH_BLAS_CORE=keep "$ILB" info | line)
echo "keep: $kk"
check "ILBENCH_BLAS_CORE=keep sets no OPENBLAS_CORETYPE" '[[ $kk != *"OPENBLAS_CORETYPE"* ]]'

if command -v mpirun >/dev/null; then
  km=$(mpirun --oversubscribe -np 2 "$ILB" info | line | sort -u)
  check "both ranks report the default's kernels" '[[ $km == "$k" ]]'
fi

data=${2:-.}/data/mnist
if [[ -f $data/train-images-idx3-ubyte || -f $data/train-images-idx3-ubyte.gz ]] && command -v h5dump >/dev/null; then
  T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-blas.XXXXXX") || exit 1
  trap 'rm -rf "$T"' EXIT
  "$ILB" train --epochs 1 --max-batches 2 --test-batches 0 --data "$data" --out "$T/r.h5" >/dev/null 2>&1 ||
    { echo "FAIL: train exited $?"; fail=1; }
  core=${k%% *}
  check "train records blas_kernels 'OpenBLAS $core...'" "h5dump -A '$T/r.h5' | grep -q '\"OpenBLAS $core'"
fi
exit $fail
