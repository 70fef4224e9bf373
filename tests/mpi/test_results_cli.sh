#!/usr/bin/env bash
# Results files through the real program, on 2 MPI ranks:
#   - the issue's sweep example writes 4 completed runs with epochs/steps/ranks tables;
#   - an existing file is refused (byte-identical afterwards), --append adds, --force replaces;
#   - an unwritable path and bad sweep lists are refused with clear messages;
#   - an impossible combination is skipped with its reason, the rest run;
#   - job-array slices merged back give every point exactly once;
#   - the stop rules (stop_mode, stop_norm, best_rule) are recorded and read back;
#   - a run killed with SIGKILL after its second epoch leaves a file that h5dump and
#     h5py read, with status "running" and both completed epochs in it.
#   test_results_cli.sh <ilbench> <source dir> <mpiexec>
set -uo pipefail
ilbench=$1 src=$2 mpiexec=$3
data="$src/data/mnist"
if [[ ! -f "$data/train-images-idx3-ubyte" ]]; then
  if [[ "${ILBENCH_REQUIRE_DATA:-0}" == 1 ]]; then echo "FAIL: $data missing; run scripts/fetch-mnist" >&2; exit 1; fi
  echo "SKIP: $data missing (run scripts/fetch-mnist)"; exit 77
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
export HDF5_USE_FILE_LOCKING=FALSE
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
fail=0
pass() { echo "PASS: $*"; }
bad() { echo "FAIL: $*"; fail=1; }
mpi2() { "$mpiexec" --oversubscribe -np 2 "$ilbench" "$@"; }
quick=(--data "$data" --epochs 1 --max-batches 10 --test-batches 2)

# 1. The acceptance sweep.
if mpi2 sweep --solver fp,newton --backward implicit --tol 1e-2,1e-4 "${quick[@]}" --out "$tmp/s.h5" >"$tmp/s.log" 2>&1 &&
   "$py" - "$tmp/s.h5" <<'PY'
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r")
assert f.attrs["schema"] == b"ilbench-results" and f.attrs["schema_version"] == 3, dict(f.attrs)
runs = f["runs"]
assert len(runs) == 4, list(runs)
want = {("fp", 1e-2), ("fp", 1e-4), ("newton", 1e-2), ("newton", 1e-4)}
got = set()
for rid, g in runs.items():
    a = g.attrs
    assert a["status"] == b"completed", (rid, a["status"])
    got.add((a["solver"].decode(), float(a["tol"])))
    assert a["backward"] == b"implicit" and a["world_size"] == 2
    e, s, r = g["epochs"][:], g["steps"][:], g["ranks"][:]
    assert e.shape == (1,) and s.shape == (10,) and r.shape == (2,), (e.shape, s.shape, r.shape)
    assert sorted(r["rank"]) == [0, 1] and r["local_batch"].sum() == 100
    assert np.all(np.isfinite(s["loss"])) and np.all(s["fwd_iters"] > 0) and np.all(s["forward_s"] > 0)
    assert abs(s["err"].mean() - e["train_err"][0]) < 1e-9, "epoch train_err is the mean over its steps"
assert got == want, got
PY
then pass "sweep fp,newton x 1e-2,1e-4 wrote 4 completed runs with epochs, steps and ranks"
else bad "acceptance sweep"; cat "$tmp/s.log"; fi
if "$py" "$src/analysis/check_schema.py" "$tmp/s.h5" >"$tmp/cs.log" 2>&1 && grep -q " 0 errors, 0 warnings" "$tmp/cs.log"; then
  pass "the sweep file passes analysis/check_schema.py with no errors or warnings"
else bad "schema check of the sweep file"; cat "$tmp/cs.log"; fi

# 2. Refuse an existing file; --append adds; --force replaces.
sum_before=$(sha256sum "$tmp/s.h5")
if mpi2 train "${quick[@]}" --out "$tmp/s.h5" >"$tmp/o.log" 2>&1; then bad "existing --out accepted"
elif grep -q "exists; use --append" "$tmp/o.log" && [[ "$(sha256sum "$tmp/s.h5")" == "$sum_before" ]]; then
  pass "existing results file refused, left byte-identical"
else bad "refusal message or file changed"; cat "$tmp/o.log"; fi
if mpi2 train "${quick[@]}" --out "$tmp/s.h5" --append >"$tmp/a.log" 2>&1 &&
   [[ $("$py" -c "import h5py,sys; print(len(h5py.File(sys.argv[1],'r')['runs']))" "$tmp/s.h5") == 5 ]]; then
  pass "--append added a fifth run"
else bad "--append"; cat "$tmp/a.log"; fi
cp "$tmp/s.h5" "$tmp/f.h5"
if mpi2 train "${quick[@]}" --out "$tmp/f.h5" --force >"$tmp/f.log" 2>&1 &&
   [[ $("$py" -c "import h5py,sys; print(len(h5py.File(sys.argv[1],'r')['runs']))" "$tmp/f.h5") == 1 ]]; then
  pass "--force replaced the file"
else bad "--force"; cat "$tmp/f.log"; fi

# 3. Unwritable path, bad lists.
if mpi2 train "${quick[@]}" --out "$tmp/no/such/dir/x.h5" >"$tmp/u.log" 2>&1; then bad "unwritable path accepted"
elif grep -q "no/such/dir/x.h5" "$tmp/u.log"; then pass "unwritable path refused, naming it"
else bad "unwritable path message"; cat "$tmp/u.log"; fi
for args in "--tol 1e-2,abc" "--solver fp,bogus" "--hidden 100,,50" "--tol 1e-2,1e-2"; do
  # shellcheck disable=SC2086
  if mpi2 sweep "${quick[@]}" $args --out "$tmp/bad.h5" >"$tmp/b.log" 2>&1; then bad "sweep $args accepted"
  elif [[ -e "$tmp/bad.h5" ]]; then bad "sweep $args created a file"
  else pass "sweep $args refused: $(grep -m1 error "$tmp/b.log")"; fi
done

# 4. An impossible combination is skipped with a reason, the others run.
if mpi2 sweep "${quick[@]}" --batch 1,100 --out "$tmp/k.h5" >"$tmp/k.log" 2>&1 &&
   grep -q "skip p0000.*smaller than the 2 ranks" "$tmp/k.log" && grep -q "1 runs completed, 1 skipped" "$tmp/k.log"; then
  pass "batch 1 on 2 ranks skipped with its reason, batch 100 ran"
else bad "skip of an invalid combination"; cat "$tmp/k.log"; fi

# 5. Job-array slices, merged, give every point once.
ok=1
for i in 0 1 2; do
  mpi2 sweep "${quick[@]}" --solver fp,newton --tol 1e-2,1e-3,1e-4 --array-index $i --array-count 3 \
    --out "$tmp/arr$i.h5" >"$tmp/arr$i.log" 2>&1 || ok=0
done
if ((ok)) && "$ilbench" merge "$tmp/arr0.h5" "$tmp/arr1.h5" "$tmp/arr2.h5" -o "$tmp/all.h5" >"$tmp/m.log" 2>&1 &&
   "$py" - "$tmp/all.h5" <<'PY'
import sys, h5py
runs = sorted(h5py.File(sys.argv[1], "r")["runs"])
assert len(runs) == 6 and [r[:5] for r in runs] == [f"p{i:04d}" for i in range(6)], runs
PY
then pass "3 array slices of a 6-point sweep merged into 6 distinct runs"
else bad "array slices + merge"; cat "$tmp/m.log" "$tmp"/arr*.log; fi
if "$ilbench" merge "$tmp/arr0.h5" "$tmp/arr0.h5" -o "$tmp/dup.h5" >"$tmp/d.log" 2>&1; then bad "duplicate runs merged"
else pass "merge refuses duplicate run ids: $(grep -m1 error "$tmp/d.log")"; fi

# 5b. Re-running a sweep into the same file skips the points it already holds (job-array resume).
if mpi2 sweep --solver fp,newton --backward implicit --tol 1e-2,1e-4 "${quick[@]}" --out "$tmp/s.h5" --append \
     >"$tmp/re.log" 2>&1 && [[ $(grep -c "p000.*: completed earlier, in the file" "$tmp/re.log") == 4 ]] &&
   "$py" "$src/analysis/check_schema.py" "$tmp/s.h5" | grep -q " 0 errors"; then
  pass "repeating a sweep with --append skips its 4 existing points, file still valid"
else bad "sweep --append over existing points"; cat "$tmp/re.log"; fi

# 5c. A run that fails after training (unwritable --save-params) exits 1 and is marked failed.
if mpi2 train "${quick[@]}" --out "$tmp/fail.h5" --save-params "$tmp/no/such/dir/p.bin" >"$tmp/fl.log" 2>&1; then
  bad "failed run exited 0"
elif "$py" -c "import h5py,sys; (g,)=h5py.File(sys.argv[1],'r')['runs'].values(); assert g.attrs['status']==b'failed'" \
     "$tmp/fail.h5" && grep -q "cannot write parameters" "$tmp/fl.log"; then
  pass "a run failing at the end exits 1 with status 'failed' in the file"
else bad "failed status"; cat "$tmp/fl.log"; fi

# 5d. Solver-zoo diagnostics on 2 ranks: a sweep over newton-ls x (unroll, implicit/gmres) with --diag 2
#     fills the diagnostic columns on every second step and leaves NaN on the others; an injected NaN is
#     attributed to the backward outside the layer; reasons and backward residuals are recorded.
if mpi2 sweep --solver newton-ls,anderson --backward unroll,implicit --adjoint-solver gmres --diag 2 "${quick[@]}" \
     --out "$tmp/diag.h5" >"$tmp/dg.log" 2>&1 &&
   mpi2 train --solver newton --backward implicit --diag 1 --inject-nan 1:3 "${quick[@]}" --out "$tmp/diag.h5" --append \
     >>"$tmp/dg.log" 2>&1 &&
   "$py" - "$tmp/diag.h5" <<'PY'
import sys, h5py, numpy as np
runs = h5py.File(sys.argv[1], "r")["runs"]
seen = set()
for rid, g in runs.items():
    a, s = g.attrs, g["steps"][:]
    key = (a["solver"].decode(), a["backward"].decode())
    seen.add(key)
    assert a["status"] == b"completed", rid
    on = (np.arange(len(s)) % 2 == 0) if a["diag"] == 2 else np.ones(len(s), bool)
    for c in ("diag_rho_max", "diag_rho_mean", "diag_grad_cos", "diag_grad_relerr"):
        assert np.all(np.isfinite(s[c][on])), (key, c, s[c])
        assert np.all(np.isnan(s[c][~on])), (key, c, s[c])
    assert np.all((s["diag_rho_max"][on] > 0) & (s["diag_rho_max"][on] < 2)), s["diag_rho_max"]
    assert np.all(s["diag_rho_mean"][on] <= s["diag_rho_max"][on] + 1e-12)
    newton = key[0].startswith("newton")
    assert np.all(np.isfinite(s["diag_cond"][on]) == newton), (key, s["diag_cond"])  # an LU only in Newton
    assert np.all(np.isfinite(s["diag_preact_max"][on]) == newton), (key, s["diag_preact_max"])
    assert np.all(s["fwd_reason"] >= 0) and np.all(s["bwd_iters"] > 0), key
    if key[1] == "implicit" and a["options"] == b"adjoint-solver=gmres":
        assert np.all(s["bwd_residual"] < 1e-5), s["bwd_residual"]  # relative adjoint residual
        # matrix-free GMRES agrees with the exact IFT gradient (float32)
        assert np.all(s["diag_grad_relerr"][on] < 1e-3), s["diag_grad_relerr"]
    if key == ("newton", "implicit"):
        bad = s["nan_skipped"] == 1
        assert bad.sum() == 1 and s["nan_origin"][3] == 4 and s["nan_iter"][3] == -1, s[["nan_skipped", "nan_origin"]]
        assert np.all(s["nan_origin"][~bad] == 0)
    else:
        assert np.all(s["nan_origin"] == 0) and np.all(s["nan_iter"] == -1), key
assert seen == {("newton-ls", "unroll"), ("newton-ls", "implicit"), ("anderson", "implicit"), ("newton", "implicit")}, seen
PY
then pass "diagnostics: populated on sampled steps, NaN elsewhere; injected NaN attributed; 3 zoo runs + 1"
else bad "solver-zoo diagnostics"; cat "$tmp/dg.log"; fi
if "$py" "$src/analysis/check_schema.py" "$tmp/diag.h5" >"$tmp/dcs.log" 2>&1 && grep -q " 0 errors, 0 warnings" "$tmp/dcs.log"; then
  pass "the diagnostics file passes analysis/check_schema.py with no errors or warnings"
else bad "schema check of the diagnostics file"; cat "$tmp/dcs.log"; fi

# 5e. The seed's sech^2 on 2 ranks: NaN steps are attributed to the layer's backward, its reason is
#     non-finite, and a NaN on one rank is not hidden behind the other rank's diagnostics.
if mpi2 train --solver newton --backward unroll --sech2 seed --diag 1 --data "$data" --epochs 1 --max-batches 150 \
     --test-batches 0 --out "$tmp/seed.h5" >"$tmp/sd.log" 2>&1 &&
   "$py" - "$tmp/seed.h5" <<'PY'
import sys, h5py, numpy as np
(g,) = h5py.File(sys.argv[1], "r")["runs"].values()
s = g["steps"][:]
bad = s["nan_skipped"] == 1
assert bad.sum() >= 1, "the seed's sech^2 produced no NaN step in 150 batches"
assert np.all(s["nan_origin"][bad] == 3) and np.all(s["nan_iter"][bad] >= 0), s[bad][["nan_origin", "nan_iter"]]
assert np.all(s["bwd_reason"][bad] == 3), s["bwd_reason"][bad]
assert np.all(np.isnan(s["diag_grad_cos"][bad])) and np.all(np.isnan(s["diag_grad_relerr"][bad]))
assert np.all(s["diag_preact_max"][bad] > 89.4), s["diag_preact_max"][bad]
assert np.all(s["nan_origin"][~bad] == 0) and np.all(np.isfinite(s["diag_grad_cos"][~bad]))
print(f"{bad.sum()} NaN steps of {len(s)}")
PY
then pass "--sech2 seed on 2 ranks: NaN steps attributed to the layer backward, diagnostics NaN there"
else bad "--sech2 seed attribution on 2 ranks"; cat "$tmp/sd.log"; fi

# 5b. Stop rules recorded: a default run and a TorchDEQ-style one (max of the rows' relative
#     residuals, each row's lowest-residual iterate) on 2 ranks carry stop_mode, stop_norm and
#     best_rule; the checker finds nothing wrong; the loader reads them back.
if mpi2 train "${quick[@]}" --solver anderson --backward implicit --out "$tmp/sr.h5" >"$tmp/sr.log" 2>&1 &&
   mpi2 train "${quick[@]}" --solver anderson --backward implicit --stop-norm max --stop-mode relf --best sample \
     --out "$tmp/sr.h5" --append >>"$tmp/sr.log" 2>&1 &&
   "$py" "$src/analysis/check_schema.py" "$tmp/sr.h5" | grep -q "0 errors, 0 warnings" &&
   "$py" - "$tmp/sr.h5" "$src/analysis" <<'PY'
import sys
sys.path.insert(0, sys.argv[2])
import ilbench_results as ir
runs = sorted(ir.load_runs(sys.argv[1]), key=lambda r: r.attrs["stop_norm"])
got = [(r.attrs["stop_mode"], r.attrs["stop_norm"], r.attrs["best_rule"], r.attrs["best"]) for r in runs]
assert got == [("abs", "frob", "off", 0), ("relf", "max", "sample", 1)], got
for r in runs:  # a converged step's residual is below tol in the run's own norm
    st = r.steps
    ok = st["fwd_reason"] == 0
    assert ok.any() and (st["fwd_residual"][ok] < r.attrs["tol"]).all(), r.run_id
print("  stop rules:", got)
PY
then pass "stop rules recorded as run attributes and read back"
else bad "stop-rule attributes"; cat "$tmp/sr.log"; fi

# 6. SIGKILL after the second epoch.
( "$mpiexec" --oversubscribe -np 2 "$ilbench" train --data "$data" --epochs 50 --max-batches 5 --test-batches 1 \
    --out "$tmp/kill.h5" >"$tmp/kill.log" 2>&1 ) &
runner=$!
for _ in $(seq 300); do
  n=$(grep -c '^epoch=' "$tmp/kill.log" 2>/dev/null || true)
  [[ "${n:-0}" -ge 2 ]] && break
  sleep 0.1
done
sleep 0.3 # let the writer flush epoch 2's rows (written right after the line is printed)
pkill -KILL -f "ilbench train --data $data --epochs 50" ; pkill -KILL -P "$runner" 2>/dev/null
wait "$runner" 2>/dev/null
if h5dump -H "$tmp/kill.h5" >/dev/null 2>&1 && "$py" - "$tmp/kill.h5" <<'PY'
import sys, h5py
(g,) = h5py.File(sys.argv[1], "r")["runs"].values()
e = g["epochs"][:]
assert g.attrs["status"] == b"running", g.attrs["status"]
assert len(e) >= 2 and list(e["epoch"][:2]) == [0, 1] and (e["train_batches"] == 5).all(), e
s = g["steps"][:]
# every finished epoch has its 5 steps; an unfinished epoch may follow (its steps flushed first)
assert len(s) in (5 * len(e), 5 * len(e) + 5), (len(s), len(e))
assert (s["epoch"][: 5 * len(e)] == [k for k in range(len(e)) for _ in range(5)]).all()
print(f"  killed after {len(e)} epochs ({len(s)} step rows): status running, finished epochs complete")
PY
   "$py" "$src/analysis/check_schema.py" "$tmp/kill.h5" | grep -q " 0 errors"
then pass "SIGKILLed run left a readable file with its completed epochs"
else bad "kill-safety"; cat "$tmp/kill.log"; fi
exit $fail
