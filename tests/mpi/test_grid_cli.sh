#!/usr/bin/env bash
# --grid from the command line.
#   test_grid_cli.sh <ilbench> <source dir> <mpiexec>
# 1. Refusals, before anything runs, with exit 2 and a message naming --grid: a zero
#    dimension, a malformed value, a grid larger than the world, one not dividing it,
#    another --device, --threads > 1, --grid-nb without a grid; in train, layer,
#    sweep and gradcheck alike.
# 2. 50 MNIST steps of fp/implicit and newton/implicit at --grid 1x2 on 2 ranks, and
#    at --grid 1x2 on 4 ranks (D = 2: data and model parallel together), have the
#    loss trajectory of 1 rank within 1e-5 relative, and final parameters within
#    1e-5 relative L2 (--check-sync 1: identical on every rank of the world).
# 3. The results file records the grid (grid, grid_nb, grid_groups, blacs_context); the grid is a
#    sweep dimension (sweep --grid 1x1,1x2: one run per grid, the same losses).
# 4. layer --grid 2x2 on 4 ranks prints one table (rank 0) with the time split.
# 5. info --grid describes the grid (shape, nb, groups, BLACS context) once.
# 6. layer --mem-limit 4M refuses n = 300 (B = 8, newton) on one rank, naming the bytes, and the
#    same size under the same cap runs on a 2x2 grid (per-rank Jacobian blocks).
set -euo pipefail
ilbench=$1 src=$2 mpiexec=$3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1 OPENBLAS_NUM_THREADS=1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
fail=0
mpi() { local P=$1; shift; "$mpiexec" --oversubscribe -np "$P" "$ilbench" "$@"; }

# ---- 1. refusals ----
refuse() { # name, ranks, phrase, args...
  local name=$1 P=$2 phrase=$3; shift 3
  local rc=0
  mpi "$P" "$@" >"$tmp/r.out" 2>"$tmp/r.err" || rc=$?
  if [[ $rc -eq 2 ]] && grep -qF -- "$phrase" "$tmp/r.err" && ! grep -q '^global_step=\|^epoch=' "$tmp/r.out"; then
    echo "PASS: refused: $name"
  else
    echo "FAIL: $name: exit $rc, stderr:"; cat "$tmp/r.err"; fail=1
  fi
}
L=(layer --hidden 20 --batch 4 --repeat 1 --rounds 1 --warmup 0)
refuse "train --grid 0x2" 2 "zero dimension" train --grid 0x2 --epochs 1
refuse "train --grid 2" 2 "is not PRxPC" train --grid 2 --epochs 1
refuse "train --grid 1x-2" 2 "is not PRxPC" train --grid 1x-2 --epochs 1
refuse "train --grid 1x2 on 1 rank" 1 "more than the 1 rank(s)" train --grid 1x2 --epochs 1
refuse "train --grid 3x1 on 2 ranks" 2 "more than the 2 rank(s)" train --grid 3x1 --epochs 1
refuse "train --grid 1x3 on 4 ranks" 4 "not a multiple of PR*PC = 3" train --grid 1x3 --epochs 1
refuse "train --grid with cpu-guard" 2 "--device cpu-guard cannot" train --grid 1x2 --device cpu-guard --epochs 1
refuse "train --grid with --threads 2" 2 "--threads 2" train --grid 1x2 --threads 2 --epochs 1
refuse "train --grid-nb without a grid" 1 "--grid-nb applies only" train --grid-nb 32 --epochs 1
refuse "train --grid-nb 0" 2 "--grid-nb" train --grid 1x2 --grid-nb 0 --epochs 1
refuse "layer --grid 2x2 on 2 ranks" 2 "more than the 2 rank(s)" "${L[@]}" --grid 2x2
refuse "layer --grid 1x3 on 4 ranks" 4 "not a multiple" "${L[@]}" --grid 1x3
refuse "layer --grid with --threads 1,2" 2 "--threads 2" "${L[@]}" --grid 1x2 --threads 1,2
refuse "sweep --grid 2x1 on 1 rank" 1 "more than the 1 rank(s)" sweep --grid 2x1 --epochs 1
refuse "gradcheck --grid 1x2 on 1 rank" 1 "more than the 1 rank(s)" gradcheck --grid 1x2
refuse "gradcheck --grid 0x1" 1 "zero dimension" gradcheck --grid 0x1

# ---- 2. MNIST: the grid trains as one rank does ----
data="$src/data/mnist"
if [[ ! -f "$data/train-images-idx3-ubyte" ]]; then
  if [[ "${ILBENCH_REQUIRE_DATA:-0}" == 1 ]]; then echo "FAIL: $data missing; run scripts/fetch-mnist" >&2; exit 1; fi
  echo "SKIP (part 2, 3): $data missing (run scripts/fetch-mnist)"
else
  run() { # P, tag, args...
    local P=$1 tag=$2; shift 2
    mpi "$P" train --data "$data" --epochs 1 --max-batches 50 --test-batches 0 --check-sync 1 --log-steps \
      --save-params "$tmp/$tag.params" "$@" >"$tmp/$tag.out" 2>"$tmp/$tag.err" || {
      echo "FAIL: P=$P $tag exited non-zero"; cat "$tmp/$tag.err"; fail=1; return 1; }
    grep '^global_step=' "$tmp/$tag.out" | sed 's/.* loss=\([^ ]*\).*/\1/' >"$tmp/$tag.loss"
  }
  compare() { # reference tag, tag, what
    if "$py" - "$tmp/$1" "$tmp/$2" <<'PY'
import sys, numpy as np
a, b = sys.argv[1], sys.argv[2]
la, lb = np.loadtxt(a + ".loss"), np.loadtxt(b + ".loss")
assert la.shape == lb.shape == (50,), (la.shape, lb.shape)
dl = np.max(np.abs(lb - la) / np.abs(la))
pa = np.fromfile(a + ".params", dtype=np.float32).astype(np.float64)
pb = np.fromfile(b + ".params", dtype=np.float32).astype(np.float64)
dp = np.linalg.norm(pb - pa) / np.linalg.norm(pa)
print(f"  max rel loss diff {dl:.2e}, final params rel L2 diff {dp:.2e}")
sys.exit(0 if dl <= 1e-5 and dp <= 1e-5 and np.linalg.norm(pa) > 0 and la[-1] < la[0] else 1)
PY
    then echo "PASS: $3"; else echo "FAIL: $3"; fail=1; fi
  }
  for pair in "fp implicit" "newton implicit"; do
    set -- $pair
    s=$1 b=$2 t="$1-$2"
    run 1 "$t-p1" --solver "$s" --backward "$b" || continue
    run 2 "$t-g12" --solver "$s" --backward "$b" --grid 1x2 --out "$tmp/$t-g12.h5" &&
      compare "$t-p1" "$t-g12" "$s/$b: --grid 1x2 on 2 ranks has 1 rank's 50-step losses"
    run 4 "$t-g12d2" --solver "$s" --backward "$b" --grid 1x2 --grid-nb 32 &&
      compare "$t-p1" "$t-g12d2" "$s/$b: --grid 1x2 on 4 ranks (D = 2, nb 32) has 1 rank's 50-step losses"
  done
  # ---- 3. the grid in the results ----
  if "$py" - "$tmp/newton-implicit-g12.h5" <<'PY'
import sys, h5py
with h5py.File(sys.argv[1], "r") as f:
    (run,) = f["runs"].values()
    a = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in run.attrs.items()}
    ok = a["grid"] == "1x2" and int(a["grid_nb"]) == 64 and int(a["grid_groups"]) == 1 and \
         a["blacs_context"] == "1x2 row-major" and a["device"] == "scalapack" and int(a["world_size"]) == 2
    print("  ", {k: a[k] for k in ("grid", "grid_nb", "grid_groups", "blacs_context", "device", "world_size")})
    sys.exit(0 if ok else 1)
PY
  then echo "PASS: the results file records the grid"; else echo "FAIL: grid attributes"; fail=1; fi
  if "$py" "$src/analysis/check_schema.py" "$tmp/newton-implicit-g12.h5" >"$tmp/schema.out" 2>&1 &&
     grep -q ': 0 errors, 0 warnings' "$tmp/schema.out"; then echo "PASS: check_schema accepts the grid run"
  else echo "FAIL: check_schema on the grid run"; cat "$tmp/schema.out"; fail=1; fi

  # ---- 3b. the grid as a sweep dimension: 1x1 (D = 2) and 1x2 (D = 1) on 2 ranks, the same losses ----
  if mpi 2 sweep --grid 1x1,1x2 --solver newton --backward implicit --max-batches 20 --epochs 1 --test-batches 1 \
       --data "$data" --out "$tmp/sweep.h5" >"$tmp/sweep.out" 2>"$tmp/sweep.err" &&
     "$py" - "$tmp/sweep.h5" <<'PY'
import sys, h5py, numpy as np
with h5py.File(sys.argv[1], "r") as f:
    runs = dict(f["runs"].items())
    assert sorted(runs) == ["p0000-newton-implicit-g1x1", "p0001-newton-implicit-g1x2"], sorted(runs)
    a, b = runs["p0000-newton-implicit-g1x1"], runs["p0001-newton-implicit-g1x2"]
    assert "grid" not in a.attrs and a.attrs["device"] in (b"cpu", "cpu"), dict(a.attrs)
    assert b.attrs["grid"] in (b"1x2", "1x2") and int(b.attrs["grid_groups"]) == 1, dict(b.attrs)
    la, lb = a["steps"]["loss"], b["steps"]["loss"]
    d = np.max(np.abs(lb - la) / np.abs(la))
    print(f"  sweep --grid 1x1,1x2: 2 runs, max rel loss diff {d:.2e}")
    sys.exit(0 if len(la) == len(lb) == 20 and d <= 1e-5 else 1)
PY
  then echo "PASS: sweep --grid 1x1,1x2 runs one point per grid with the same losses"
  else echo "FAIL: sweep --grid 1x1,1x2"; cat "$tmp/sweep.err"; fail=1; fi
  refuse "sweep --grid 1x1,3x1 on 2 ranks" 2 "no point with --grid 3x1 is valid" sweep --grid 1x1,3x1 --epochs 1 --data "$data"
fi

# ---- 4. layer on a 2x2 grid ----
if mpi 4 layer --grid 2x2 --grid-nb 16 --hidden 45 --batch 3 --repeat 2 --rounds 1 --warmup 0 --solver newton \
     --backward implicit --csv "$tmp/layer.csv" >"$tmp/layer.out" 2>"$tmp/layer.err" &&
   [[ $(grep -c '^newton ' "$tmp/layer.out") == 1 ]] && grep -q '^# grid 2x2 nb 16' "$tmp/layer.out" &&
   "$py" - "$tmp/layer.csv" <<'PY'
import csv, sys, math
(r,) = list(csv.DictReader(open(sys.argv[1])))
ok = r["grid"] == "2x2" and r["reason"] == "converged" and all(float(r[k]) > 0 for k in ("asm_ms", "factor_ms", "solve_ms")) \
     and float(r["comm_ms"]) >= 0 and float(r["grad_relerr"]) < 1e-4
print("  ", {k: r[k] for k in ("grid", "fwd_ms", "asm_ms", "factor_ms", "solve_ms", "comm_ms", "grad_relerr")})
sys.exit(0 if ok else 1)
PY
then echo "PASS: layer --grid 2x2 on 4 ranks: one table with the time split"
else echo "FAIL: layer --grid 2x2"; cat "$tmp/layer.out" "$tmp/layer.err"; fail=1; fi

# ---- 5. info describes the grid ----
if mpi 4 info --grid 2x1 --grid-nb 8 >"$tmp/info.out" 2>"$tmp/info.err" &&
   grep -q '^grid             2x1 nb 8 (D 2' "$tmp/info.out" && grep -q 'BLACS grid 2x1' "$tmp/info.out" &&
   [[ $(grep -c '^grid ' "$tmp/info.out") == 1 ]]; then
  echo "PASS: info --grid 2x1 on 4 ranks describes the grid once"
else echo "FAIL: info --grid"; cat "$tmp/info.out" "$tmp/info.err"; fail=1; fi
refuse "info --grid 1x3 on 2 ranks" 2 "more than the 2 rank(s)" info --grid 1x3

# under Slurm the default --threads is the task's CPUs, but a grid's ranks run one thread each
rc=0; SLURM_CPUS_PER_TASK=2 mpi 2 train --grid 1x2 --data "$data" --epochs 1 --max-batches 2 --test-batches 0 \
  >"$tmp/sl.out" 2>"$tmp/sl.err" || rc=$?
if [[ $rc -eq 0 ]] && grep -q '^# threads  *1$' "$tmp/sl.out"; then
  echo "PASS: train --grid under SLURM_CPUS_PER_TASK=2 runs one thread per rank"
else echo "FAIL: train --grid under SLURM_CPUS_PER_TASK=2 (rc $rc)"; cat "$tmp/sl.out" "$tmp/sl.err"; fail=1; fi

# ---- 6. a per-rank memory cap: refused on one rank, run on a 2x2 grid under the same cap ----
M=(layer --hidden 300 --batch 8 --solver newton --backward implicit --repeat 1 --rounds 1 --warmup 0 --mem-limit 4M)
rc=0; mpi 1 "${M[@]}" >"$tmp/m1.out" 2>"$tmp/m1.err" || rc=$?
if [[ $rc -ne 0 ]] && grep -q "memory limit: saved needs [0-9]* more bytes .* over this rank's limit of 4194304 bytes" "$tmp/m1.err"; then
  echo "PASS: --mem-limit 4M refuses n = 300 on one rank, naming the bytes"
else echo "FAIL: --mem-limit on one rank (exit $rc)"; cat "$tmp/m1.err"; fail=1; fi
if mpi 4 "${M[@]}" --grid 2x2 >"$tmp/m4.out" 2>"$tmp/m4.err" && grep -q '^newton .* converged' "$tmp/m4.out"; then
  echo "PASS: the same n and cap run on a 2x2 grid"
else echo "FAIL: --mem-limit 4M on 2x2"; cat "$tmp/m4.err"; fail=1; fi
refuse "layer --mem-limit 2X" 1 "--mem-limit: '2X'" layer --hidden 20 --repeat 1 --mem-limit 2X
refuse "layer --mem-limit with --threads 2" 1 "--mem-limit with --threads 2" layer --hidden 20 --repeat 1 --mem-limit 1G --threads 2
exit $fail
