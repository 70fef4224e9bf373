#!/usr/bin/env bash
# tests/cli/test_jac_reg.sh ILBENCH SRC [MPIEXEC]: train --jac-reg end to end.
#  - refusals (exit 2, naming the option): a negative or NaN weight, --jac-reg-samples or
#    --jac-reg-every without --jac-reg, zero probes or period; the same for gradcheck;
#  - the steps table's jac_reg is a positive number on every --jac-reg-every-th step and NaN
#    between, the epoch's jac_reg their mean, the attributes and the events row are there, the
#    file passes check_schema.py; without --jac-reg every value is NaN and the run's other
#    columns do not change; the first step's loss is the same with and without it (the
#    cross-entropy), the second is not (the update saw the regulariser);
#  - a run is reproducible, --threads 2 and 2 MPI ranks give the first step's estimate of one
#    thread and one rank (the probes are drawn for the global batch), and SIGTERM + --resume
#    gives the uninterrupted run's parameters and rows bitwise (the probes' stream is in the
#    checkpoint); a resume with another weight is refused;
#  - gradcheck --jac-reg passes (also with --w-norm weight and spectral), is refused with
#    --fp-correction, and fails at an impossible threshold.
# Needs data/mnist and /usr/bin/python3 with h5py: skipped (77) otherwise, unless
# ILBENCH_REQUIRE_DATA=1.
set -uo pipefail
ilb=${1:?usage: test_jac_reg.sh ILBENCH SRC [MPIEXEC]}
src=${2:?usage: test_jac_reg.sh ILBENCH SRC [MPIEXEC]}
mpiexec=${3:-}
data=$src/data/mnist
py=/usr/bin/python3
skip() {
  if [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]]; then echo "FAIL: $1"; exit 1; fi
  echo "SKIP: $1"; exit 77
}
[[ -r $data/train-images-idx3-ubyte ]] || skip "no MNIST in $data"
$py -c 'import h5py' 2>/dev/null || skip "no h5py for $py"
T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-jac-reg.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
Q=(--data "$data" --epochs 2 --max-batches 6 --test-batches 1 --threads 1 --solver fp --backward implicit)
R=(--jac-reg 0.5 --jac-reg-samples 2 --jac-reg-every 2)

# refuse LABEL NEEDLE ARGS...: exit 2 with NEEDLE and "error" on stderr
refuse() {
  local label=$1 needle=$2
  shift 2
  "$ilb" "$@" > "$T/out" 2> "$T/err"
  local rc=$?
  if [[ $rc -eq 2 ]] && grep -qF -- "$needle" "$T/err" && grep -q error "$T/err"; then
    ok "refused: $label"
  else
    fail "$label: exit $rc, stderr: $(head -2 "$T/err")"
  fi
}
refuse "negative weight" "--jac-reg" train "${Q[@]}" --jac-reg -1
refuse "NaN weight" "--jac-reg" train "${Q[@]}" --jac-reg nan
refuse "--jac-reg-samples without --jac-reg" "--jac-reg-samples applies only with --jac-reg" train "${Q[@]}" \
  --jac-reg-samples 2
refuse "--jac-reg-every with --jac-reg 0" "--jac-reg-every applies only with --jac-reg" train "${Q[@]}" --jac-reg 0 \
  --jac-reg-every 3
refuse "zero probes" "--jac-reg-samples" train "${Q[@]}" --jac-reg 1 --jac-reg-samples 0
refuse "period 0" "--jac-reg-every" train "${Q[@]}" --jac-reg 1 --jac-reg-every 0
refuse "gradcheck --jac-reg-samples without --jac-reg" "--jac-reg-samples applies only" gradcheck --jac-reg-samples 2
refuse "gradcheck negative weight" "--jac-reg" gradcheck --jac-reg -0.5
refuse "gradcheck --jac-reg with --fp-correction" "--jac-reg and --fp-correction cannot be checked together" \
  gradcheck --jac-reg 0.5 --fp-correction 3
help=$("$ilb" train --help)
if grep -q -- '--jac-reg WEIGHT' <<<"$help" && grep -q -- '--jac-reg-samples K' <<<"$help" &&
   grep -q -- '--jac-reg-every N' <<<"$help"; then
  ok "train --help lists --jac-reg WEIGHT, --jac-reg-samples K, --jac-reg-every N"
else
  fail "train --help does not list the --jac-reg options with their metavars"
fi

run() { # NAME ARGS...: train into $T/NAME.h5 and $T/NAME.bin, log in $T/NAME.log
  local name=$1
  shift
  "$ilb" train "$@" --out "$T/$name.h5" --save-params "$T/$name.bin" > "$T/$name.log" 2>&1 ||
    fail "$name: train exited $?: $(tail -2 "$T/$name.log")"
}
run reg "${Q[@]}" "${R[@]}"
run reg2 "${Q[@]}" "${R[@]}"
run plain "${Q[@]}"

if out=$($py - "$T/reg.h5" "$T/plain.h5" <<'PY'
import sys, h5py, numpy as np
def run(p):
    r = h5py.File(p, "r")["runs"]; return r[sorted(r)[-1]]
g, p = run(sys.argv[1]), run(sys.argv[2])
st, ep, ps, pe = g["steps"][()], g["epochs"][()], p["steps"][()], p["epochs"][()]
bad = []
a = dict(g.attrs)
if (a["jac_reg"], a["jac_reg_samples"], a["jac_reg_every"]) != (0.5, 2, 2): bad.append(f"attributes {a['jac_reg']}, {a['jac_reg_samples']}, {a['jac_reg_every']}")
if (p.attrs["jac_reg"], p.attrs["jac_reg_samples"], p.attrs["jac_reg_every"]) != (0, 1, 1): bad.append("plain run's attributes")
on = st["global_step"] % 2 == 0
v = st["jac_reg"]
if not (np.all(np.isfinite(v[on])) and np.all(v[on] > 0)): bad.append(f"jac_reg on steps {st['global_step'][on]}: {v[on]}")
if not np.all(np.isnan(v[~on])): bad.append(f"jac_reg between: {v[~on]}")
for e in range(len(ep)):
    m = v[(st["epoch"] == e) & on].mean()
    if not np.isclose(ep["jac_reg"][e], m, rtol=1e-12, atol=0): bad.append(f"epoch {e}: {ep['jac_reg'][e]} vs steps {m}")
if v[0] < 10 * v[-2]: bad.append(f"the estimate did not fall: {v[0]} then {v[-2]}")
ev = {n.decode().rstrip("\0"): c for n, c in zip(g["events"]["name"], g["events"]["calls"])}
if ev.get("jac_reg") != on.sum(): bad.append(f"events jac_reg calls {ev.get('jac_reg')}, expected {on.sum()}")
evp = {n.decode().rstrip("\0"): c for n, c in zip(p["events"]["name"], p["events"]["calls"])}
if evp.get("jac_reg") != 0: bad.append("plain run has jac_reg events")
if not (np.all(np.isnan(ps["jac_reg"])) and np.all(np.isnan(pe["jac_reg"]))): bad.append("plain run has jac_reg values")
if st["loss"][0] != ps["loss"][0]: bad.append(f"first step's loss {st['loss'][0]} vs {ps['loss'][0]}")
if st["loss"][1] == ps["loss"][1]: bad.append("the second step's loss is the plain run's: the update ignored the regulariser")
print("; ".join(bad) if bad else f"first estimate {v[0]:.4g}, last {v[-2]:.4g}"); sys.exit(1 if bad else 0)
PY
); then
  ok "steps and epochs jac_reg, attributes, events, and the plain run's NaNs ($out)"
else
  fail "the results of --jac-reg: $out"
fi
if grep -q '^# jac_reg  *0.5 (2 Rademacher probes per sample, every 2 steps)' "$T/reg.log" &&
   ! grep -q '^# jac_reg' "$T/plain.log"; then
  ok "the configuration table shows jac_reg only when it is on"
else
  fail "the configuration table's jac_reg line: $(grep '^# jac_reg' "$T/reg.log" "$T/plain.log")"
fi
for f in reg plain; do
  if cs=$($py "$src/analysis/check_schema.py" "$T/$f.h5" 2>&1) && grep -q "0 errors, 0 warnings" <<<"$cs"; then
    ok "check_schema: $f.h5 clean"
  else
    fail "check_schema $f.h5: $cs"
  fi
done

cat > "$T/same.py" <<'PY'
# same.py A B: the last runs of A and B have equal epochs and steps rows (columns ending in _s aside)
import sys, h5py
def last(p):
    r = h5py.File(p, "r")["runs"]; return r[sorted(r)[-1]]
a, b = last(sys.argv[1]), last(sys.argv[2])
bad = []
for t in ("epochs", "steps"):
    x, y = a[t][()], b[t][()]
    if x.shape != y.shape: bad.append(f"{t} has {len(x)} vs {len(y)} rows"); continue
    bad += [f"{t}.{c}" for c in x.dtype.names if not c.endswith("_s") and x[c].tobytes() != y[c].tobytes()]
print("; ".join(bad) if bad else "same"); sys.exit(1 if bad else 0)
PY
if cmp -s "$T/reg.bin" "$T/reg2.bin" && same=$($py "$T/same.py" "$T/reg.h5" "$T/reg2.h5"); then
  ok "a --jac-reg run is reproducible (parameters and rows bitwise)"
else
  fail "two identical --jac-reg runs differ: ${same:-parameters}"
fi

first() { $py -c "import h5py,sys; r=h5py.File(sys.argv[1],'r')['runs']; print(repr(float(r[sorted(r)[-1]]['steps']['jac_reg'][0])))" "$1"; }
close() { $py -c "import sys; a, b, tol = map(float, sys.argv[1:]); sys.exit(0 if abs(a - b) <= tol * abs(b) else 1)" "$@"; }
Q1=(--data "$data" --epochs 1 --max-batches 1 --test-batches 0 --solver fp --backward implicit --jac-reg 1)
"$ilb" train "${Q1[@]}" --threads 1 --out "$T/t1.h5" > "$T/t1.log" 2>&1 || fail "threads 1: $(tail -2 "$T/t1.log")"
"$ilb" train "${Q1[@]}" --threads 2 --out "$T/t2.h5" > "$T/t2.log" 2>&1 || fail "threads 2: $(tail -2 "$T/t2.log")"
a=$(first "$T/t1.h5") b=$(first "$T/t2.h5")
if close "$b" "$a" 1e-5; then ok "--threads 2: first estimate $b, one thread $a"; else fail "--threads 2: $b vs $a"; fi
if [[ -n $mpiexec ]]; then
  "$mpiexec" -n 2 --oversubscribe "$ilb" train "${Q1[@]}" --threads 1 --out "$T/m2.h5" > "$T/m2.log" 2>&1 ||
    fail "2 ranks: $(tail -2 "$T/m2.log")"
  c=$(first "$T/m2.h5")
  if close "$c" "$a" 1e-5; then ok "2 MPI ranks: first estimate $c, one rank $a"; else fail "2 ranks: $c vs $a"; fi
fi

# SIGTERM mid-run, then --resume: the uninterrupted run's parameters and rows
O=(--data "$data" --epochs 2 --max-batches 400 --test-batches 2 --threads 1 --solver fp --backward implicit
   --checkpoint-every 9 --jac-reg 0.2 --jac-reg-every 3)
wait_steps() { # FILE N: until the run in FILE has N step rows
  for _ in $(seq 400); do
    n=$($py -c "import h5py,sys
try:
  r=h5py.File(sys.argv[1],'r')['runs']; print(len(r[sorted(r)[-1]]['steps']))
except Exception: print(0)" "$1" 2>/dev/null)
    (( n >= $2 )) && return 0
    sleep 0.05
  done
  return 1
}
"$ilb" train "${O[@]}" --out "$T/ref.h5" --save-params "$T/ref.bin" > "$T/ref.log" 2>&1 ||
  fail "the uninterrupted run: $(tail -2 "$T/ref.log")"
"$ilb" train "${O[@]}" --out "$T/cut.h5" --save-params "$T/cut.bin" > "$T/cut.log" 2>&1 &
pid=$!
wait_steps "$T/cut.h5" 40
kill -TERM $pid
wait $pid
rc=$?
if [[ $rc -eq 143 ]]; then ok "SIGTERM: exit 143"; else fail "SIGTERM: exit $rc (the run may have ended first)"; fi
"$ilb" train "${O[@]/0.2/0.3}" --resume "$T/cut.h5" > "$T/other.log" 2>&1
rc=$?
if [[ $rc -eq 2 ]] && grep -q "jac_reg" "$T/other.log"; then
  ok "a resume with another --jac-reg is refused, naming jac_reg"
else
  fail "resume with another weight: exit $rc: $(tail -2 "$T/other.log")"
fi
"$ilb" train "${O[@]}" --resume "$T/cut.h5" --save-params "$T/cut.bin" > "$T/res.log" 2>&1 ||
  fail "resume: $(tail -2 "$T/res.log")"
if cmp -s "$T/ref.bin" "$T/cut.bin" && same=$($py "$T/same.py" "$T/ref.h5" "$T/cut.h5"); then
  ok "resumed after SIGTERM: parameters and rows bitwise equal to the uninterrupted run"
else
  fail "resumed run differs: ${same:-parameters}"
fi

if "$ilb" gradcheck --jac-reg 0.5 --jac-reg-samples 2 > "$T/gc.log" 2>&1 && grep -q PASS "$T/gc.log" &&
   ! grep -q FAIL "$T/gc.log" && grep -q reg_relerr_W "$T/gc.log"; then
  ok "gradcheck --jac-reg 0.5 --jac-reg-samples 2 passes"
else
  fail "gradcheck --jac-reg: $(tail -3 "$T/gc.log")"
fi
for wn in weight spectral; do
  if "$ilb" gradcheck --jac-reg 0.5 --w-norm $wn --solver fp --backward implicit > "$T/gcw.log" 2>&1 &&
     grep -q PASS "$T/gcw.log" && ! grep -q FAIL "$T/gcw.log"; then
    ok "gradcheck --jac-reg 0.5 --w-norm $wn passes (both parts in V, g)"
  else
    fail "gradcheck --jac-reg --w-norm $wn: $(tail -3 "$T/gcw.log")"
  fi
done
"$ilb" gradcheck --jac-reg 0.5 --backward implicit --threshold 1e-30 > "$T/gc2.log" 2>&1
rc=$?
if [[ $rc -eq 1 ]] && grep -q FAIL "$T/gc2.log"; then ok "gradcheck --jac-reg fails at threshold 1e-30"; else
  fail "gradcheck --jac-reg --threshold 1e-30: exit $rc"; fi

echo "== $fails failure(s)"
(( fails == 0 ))
