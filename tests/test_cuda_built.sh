#!/usr/bin/env bash
# cuda_built: where nvcc is installed the cuda backend must have been built and linked,
# so a CUDA build break cannot pass CI silently (CMake skips the backend without nvcc).
# Also: the binary never links the driver (libcuda), and without a usable GPU
# `--device cuda` exits 2 naming the reason. Skips (77) only when nvcc is absent.
#   test_cuda_built.sh ILBENCH
set -uo pipefail
ilbench=$1
nvcc=$(command -v nvcc || true)
[[ -z $nvcc && -x /usr/local/cuda/bin/nvcc ]] && nvcc=/usr/local/cuda/bin/nvcc
if [[ -z $nvcc ]]; then
  echo "cuda_built: no nvcc on PATH or in /usr/local/cuda/bin: nothing to check (skipped)"
  exit 77
fi
fail=0
info=$("$ilbench" info 2>&1)
if ! grep -q "^CUDA  *backend built" <<<"$info" || ! grep -q "^  cuda  .*GPU-unverified" <<<"$info"; then
  echo "FAIL nvcc is at $nvcc but ilbench has no cuda backend (configure with ILBENCH_CUDA=ON, see the CMake log):"
  grep -E '^CUDA|^  cuda' <<<"$info"
  fail=1
else
  echo "PASS the cuda backend is built ($nvcc)"
fi
if ldd "$ilbench" | grep -q 'libcuda\.so'; then
  echo "FAIL ilbench links the driver library directly:"; ldd "$ilbench" | grep libcuda; fail=1
else
  echo "PASS the driver library is not linked (it is loaded at run time)"
fi
if grep -A1 '^  cuda  ' <<<"$info" | grep -q 'unavailable: cuda: no usable GPU'; then
  for cmd in "layer --hidden 4 --repeat 1" "gradcheck" "sweep --out /dev/null --epochs 1"; do
    out=$("$ilbench" $cmd --device cuda 2>&1); rc=$?
    if [[ $rc -eq 2 ]] && grep -q 'no usable GPU' <<<"$out"; then
      echo "PASS no GPU here: ${cmd%% *} --device cuda exits 2: $out"
    else
      echo "FAIL ${cmd%% *} --device cuda without a GPU: exit $rc, expected 2 and the reason; got: $out"; fail=1
    fi
  done
  out=$("$ilbench" selftest --device cuda 2>&1); rc=$?
  [[ $rc -eq 2 ]] && echo "PASS selftest --device cuda exits 2" || { echo "FAIL selftest --device cuda: exit $rc ($out)"; fail=1; }
else
  echo "(a GPU is usable here: the no-GPU exit is not checked)"
fi
exit $fail
