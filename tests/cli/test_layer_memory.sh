#!/usr/bin/env bash
# Acceptance: `ilbench layer` shows that implicit's saved-for-backward bytes do
# not depend on the iteration count, while unroll's grow linearly with it.
#
# usage: test_layer_memory.sh <ilbench> <source dir>
#
# For each solver, runs `ilbench layer --backward implicit,unroll` over
# tolerances chosen to give different iteration counts, reads the columns
# `iters` and `saved_bytes` by their header names, and checks:
#   - the tolerances give pairwise different iteration counts;
#   - implicit and unroll run the same forward (same iters at each tol);
#   - implicit's saved_bytes are identical at every tol;
#   - unroll's saved_bytes = a + b * iters with the same b > 0 for every pair.
# Measured (CPU, hidden 64, batch 32):
#   fp     tol 1e-2,1e-4,1e-6: iters 10, 15, 200 (1e-6 is below the float32
#          residual floor, so it stops at max-iter); implicit 16704 B;
#          unroll 100288, 141248, 1656768 B = 18368 + 8192 * iters
#          (8192 = 32 * 64 * 4 bytes: one stored float32 iterate)
#   newton tol 1e-1,1e-4,1e-8: iters 2, 3, 40 (max-iter); implicit 549184 B;
#          unroll 1140608, 1697664, 22308736 B = 26496 + 557056 * iters
set -u

ILB=${1:?usage: test_layer_memory.sh <ilbench> <source dir>}
if [[ ! -x $ILB ]]; then
  echo "FAIL: ilbench not found or not executable: $ILB"
  exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-layer-memory.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

nfail=0
ok() { echo "PASS  $1"; }
bad() {
  echo "FAIL  $1"
  nfail=$((nfail + 1))
}

# check_solver SOLVER TOLS
check_solver() {
  local solver=$1 tols=$2
  # shellcheck disable=SC2054 # commas are inside option values
  local cmd=("$ILB" layer --solver "$solver" --backward implicit,unroll --hidden 64 --batch 32
    --tol "$tols" --repeat 1 --warmup 0)
  echo "== $solver: ${cmd[*]}"
  (cd "$T" && "${cmd[@]}") >"$T/out" 2>"$T/err"
  local rc=$?
  sed 's/^/      /' "$T/out"
  if [[ $rc -ne 0 ]]; then
    bad "$solver: ilbench layer exited $rc"
    sed 's/^/      stderr: /' "$T/err" | head -5
    return
  fi
  # Rows "backward tol iters saved_bytes", columns found by header name.
  awk '
    /^#/ { next }
    !hdr && $1 == "solver" {
      hdr = 1
      for (i = 1; i <= NF; i++) col[$i] = i
      if (!("backward" in col) || !("tol" in col) || !("iters" in col) || !("saved_bytes" in col)) {
        print "header lacks one of backward, tol, iters, saved_bytes: " $0 > "/dev/stderr"
        exit 3
      }
      next
    }
    hdr && NF > 0 { print $col["backward"], $col["tol"], $col["iters"], $col["saved_bytes"] }
  ' "$T/out" >"$T/rows"
  if [[ $? -ne 0 ]]; then
    bad "$solver: cannot find the columns in the table header"
    return
  fi
  local ntol
  ntol=$(tr ',' '\n' <<<"$tols" | wc -l)

  local mode
  declare -A IT SB
  for mode in implicit unroll; do
    local n
    n=$(awk -v m=$mode '$1 == m' "$T/rows" | wc -l)
    if [[ $n -ne $ntol ]]; then
      bad "$solver/$mode: $n rows, expected $ntol (one per tol)"
      return
    fi
    IT[$mode]=$(awk -v m=$mode '$1 == m { printf "%s ", $3 }' "$T/rows")
    SB[$mode]=$(awk -v m=$mode '$1 == m { printf "%s ", $4 }' "$T/rows")
  done

  # Iteration counts differ across tolerances, and both modes ran the same forward.
  local distinct
  distinct=$(tr ' ' '\n' <<<"${IT[implicit]}" | grep . | sort -u | wc -l)
  if [[ $distinct -eq $ntol ]]; then
    ok "$solver: tolerances give different iteration counts (${IT[implicit]% })"
  else
    bad "$solver: tolerances $tols give only $distinct distinct iteration counts (${IT[implicit]% })"
  fi
  if [[ ${IT[implicit]} == "${IT[unroll]}" ]]; then
    ok "$solver: implicit and unroll take the same forward iterations"
  else
    bad "$solver: forward iterations differ: implicit ${IT[implicit]% }, unroll ${IT[unroll]% }"
  fi

  # implicit: saved bytes independent of iterations.
  local nsb
  nsb=$(tr ' ' '\n' <<<"${SB[implicit]}" | grep . | sort -u | wc -l)
  if [[ $nsb -eq 1 ]] && awk -v s="${SB[implicit]% }" 'BEGIN { exit !(s + 0 > 0) }'; then
    ok "$solver/implicit: saved_bytes ${SB[implicit]%% *} at every iteration count"
  else
    bad "$solver/implicit: saved_bytes vary with iterations (${SB[implicit]% } at iters ${IT[implicit]% })"
  fi

  # unroll: saved bytes linear in iterations, equal positive bytes per iteration.
  local msg
  if msg=$(awk -v it="${IT[unroll]}" -v sb="${SB[unroll]}" '
    BEGIN {
      n = split(it, I, " "); split(sb, S, " ")
      for (a = 1; a <= n; a++)
        for (b = a + 1; b <= n; b++) {
          if (I[a] == I[b]) continue
          d = (S[b] - S[a]) / (I[b] - I[a])
          if (!set) { per = d; set = 1; base = S[a] - d * I[a] }
          else if (d != per) { printf "bytes per iteration %g between iters %d and %d, but %g elsewhere", d, I[a], I[b], per; exit 1 }
        }
      if (!set) { printf "no two different iteration counts"; exit 1 }
      if (per <= 0) { printf "bytes per iteration %g is not positive", per; exit 1 }
      if (per != int(per)) { printf "bytes per iteration %g is not a whole number", per; exit 1 }
      printf "%d + %d * iters", base, per
    }'); then
    ok "$solver/unroll: saved_bytes = $msg (${SB[unroll]% } at iters ${IT[unroll]% })"
  else
    bad "$solver/unroll: saved_bytes not linear in iterations: $msg (${SB[unroll]% } at iters ${IT[unroll]% })"
  fi
}

check_solver fp 1e-2,1e-4,1e-6
check_solver newton 1e-1,1e-4,1e-8

if [[ $nfail -gt 0 ]]; then
  echo "== $nfail check(s) failed"
  exit 1
fi
echo "== all checks passed"
exit 0
