#!/usr/bin/env bash
# The analytic FLOP model of `ilbench layer` (bench/cmd_layer.c) against the FLOPs the
# backend counts (--log-view). The model counts GEMMs, LU factorisations and solves and the
# Jacobian builds; the counted FLOPs add the elementwise work, so counted/model must lie in
# [0.97, 1.08] at n >= 64 for the pairs whose work the model covers. Anderson's and Broyden's mixing and
# the matrix-free adjoints' Gram products are O(B n m) extras the model leaves out: for them
# only counted >= model is required.
set -euo pipefail
ILB=$1
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fail=0
check() { # label lo hi counted model
  local r
  r=$(awk -v c="$4" -v m="$5" 'BEGIN { printf "%.4f", c / m }')
  if awk -v r="$r" -v lo="$2" -v hi="$3" 'BEGIN { exit !(r >= lo && r <= hi) }'; then
    echo "ok   $1: counted/model = $r"
  else
    echo "FAIL $1: counted/model = $r, outside [$2, $3]"
    fail=1
  fi
}
run() { # solvers backwards [extra options] -> checks
  local lo_f=$1 hi_f=$2 lo_b=$3 hi_b=$4; shift 4
  while read -r line; do
    case "$line" in
      "#   flops per call:"*)
        read -r cf mf cb mb < <(sed -E 's/.*forward counted ([^,]+), model ([^ ]+) .*backward counted ([^,]+), model ([^ ]+) .*/\1 \2 \3 \4/' <<<"$line")
        check "$pair forward" "$lo_f" "$hi_f" "$cf" "$mf"
        check "$pair backward" "$lo_b" "$hi_b" "$cb" "$mb" ;;
      "#"*) ;;
      *) pair=$(awk '{print $1 "/" $2 " n=" $3}' <<<"$line") ;;
    esac
  done < <("$ILB" layer --hidden 64,128 --batch 9 --repeat 2 --warmup 1 --log-view "$@" | tail -n +2)
}
run 0.97 1.08 0.97 1.08 --solver fp,newton,newton-ls --backward unroll,implicit,phantom:3,jfb
run 1.00 4.00 0.97 1.08 --solver anderson,broyden --backward implicit,jfb
run 0.97 1.08 1.00 2.00 --solver fp,newton --backward implicit --adjoint-solver gmres
run 0.97 1.08 1.00 2.00 --solver fp --backward implicit --adjoint-solver anderson
exit $fail
