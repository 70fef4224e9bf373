#!/bin/bash
# tests/test_resume.sh ILBENCH MPIEXEC DATA -- checkpoints and resume.
#  - SIGTERM mid-run: exit 143, the run `interrupted` with a reason; --resume
#    continues it to final parameters and step rows (timing columns aside)
#    bitwise equal to an uninterrupted run, on 1 and 2 ranks; the same after
#    a SIGKILL (status `running`), twice in one run;
#  - --resume refuses other options (naming them), a completed run, and a file
#    without a resumable run; --force with --resume is refused;
#  - sweep --append refuses an interrupted point without --resume and
#    continues it with --resume; a completed point is not run again;
#  - the same SIGTERM and resume with the training state of --warm-start (the
#    fixed-point table; its second epoch mixes seen and unseen samples) with
#    --w-norm weight (g) on 1 rank and with --w-norm spectral (u, v) on 2.
set -uo pipefail
ilbench=${1:?usage: test_resume.sh ILBENCH MPIEXEC DATA}
mpiexec=${2:?}
data=${3:?}
py=/usr/bin/python3
[[ -r $data/train-images-idx3-ubyte ]] || { echo "SKIP: no MNIST in $data"; exit 77; }
$py -c 'import h5py' 2>/dev/null || { echo "SKIP: no h5py for $py"; exit 77; }
T=$(mktemp -d /tmp/ilbench-resume.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
O=(--data "$data" --epochs 2 --max-batches 400 --test-batches 2 --checkpoint-every 9)

cat > "$T/same.py" <<'PY'
# same.py A B: the last run of A and of B have equal epochs and steps rows (columns ending in _s aside)
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
attr() { $py -c "import h5py,sys; r=h5py.File(sys.argv[1],'r')['runs']; v=r[sorted(r)[-1]].attrs.get(sys.argv[2]); print(v.decode() if isinstance(v, bytes) else v)" "$1" "$2"; }

# wait until the run's log shows `n` checkpointed steps have passed (the log's steps are not printed: poll the file)
wait_steps() { # FILE N
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

for ranks in 1 2; do
    L=("$mpiexec" -n "$ranks" --oversubscribe "$ilbench")
    (( ranks == 1 )) && L=("$ilbench") # a singleton: its own exit code, not mpirun's
    "${L[@]}" train "${O[@]}" --out "$T/ref$ranks.h5" --save-params "$T/ref$ranks.bin" > "$T/ref.log" 2>&1 ||
        { fail "ranks=$ranks: the uninterrupted run: $(tail -3 "$T/ref.log")"; continue; }
    # SIGTERM
    "${L[@]}" train "${O[@]}" --out "$T/t$ranks.h5" --save-params "$T/t$ranks.bin" > "$T/t.log" 2>&1 &
    pid=$!
    wait_steps "$T/t$ranks.h5" 30
    kill -TERM $pid
    wait $pid
    rc=$?
    st=$(attr "$T/t$ranks.h5" status)
    reason=$(attr "$T/t$ranks.h5" reason)
    if [[ $st == interrupted && $reason == SIGTERM* ]] && grep -q -- "--resume $T/t$ranks.h5:" "$T/t.log" &&
       { (( ranks == 1 && rc == 143 )) || (( ranks > 1 && rc != 0 )); }; then
        ok "ranks=$ranks: SIGTERM: exit $rc, status interrupted ($reason), resume hint printed"
    else
        fail "ranks=$ranks: SIGTERM: exit $rc, status '$st', reason '$reason': $(tail -3 "$T/t.log")"
    fi
    "${L[@]}" train "${O[@]}" --resume "$T/t$ranks.h5" --save-params "$T/t$ranks.bin" > "$T/t2.log" 2>&1 ||
        fail "ranks=$ranks: resume after SIGTERM failed: $(tail -3 "$T/t2.log")"
    if cmp -s "$T/ref$ranks.bin" "$T/t$ranks.bin" && same=$($py "$T/same.py" "$T/ref$ranks.h5" "$T/t$ranks.h5") &&
       [[ $(attr "$T/t$ranks.h5" status) == completed && $(attr "$T/t$ranks.h5" resumes) == 1 ]]; then
        ok "ranks=$ranks: resumed after SIGTERM: parameters and rows bitwise equal to the uninterrupted run"
    else
        fail "ranks=$ranks: resumed after SIGTERM differs: params $(cmp "$T/ref$ranks.bin" "$T/t$ranks.bin" 2>&1 | head -1); rows: ${same:-?}"
    fi
    # SIGKILL twice (status stays running), then resume to the end
    "${L[@]}" train "${O[@]}" --out "$T/k$ranks.h5" --save-params "$T/k$ranks.bin" > "$T/k.log" 2>&1 &
    pid=$!
    wait_steps "$T/k$ranks.h5" 20
    kill -KILL $pid; wait $pid 2>/dev/null
    pkill -KILL -f "ilbench train .*k$ranks.h5" 2>/dev/null
    "${L[@]}" train "${O[@]}" --resume "$T/k$ranks.h5" --save-params "$T/k$ranks.bin" > "$T/k2.log" 2>&1 &
    pid=$!
    wait_steps "$T/k$ranks.h5" 450
    kill -KILL $pid; wait $pid 2>/dev/null
    pkill -KILL -f "ilbench train .*k$ranks.h5" 2>/dev/null
    sleep 0.2
    "${L[@]}" train "${O[@]}" --resume "$T/k$ranks.h5" --save-params "$T/k$ranks.bin" > "$T/k3.log" 2>&1 ||
        fail "ranks=$ranks: resume after SIGKILL failed: $(tail -3 "$T/k3.log")"
    if cmp -s "$T/ref$ranks.bin" "$T/k$ranks.bin" && same=$($py "$T/same.py" "$T/ref$ranks.h5" "$T/k$ranks.h5"); then
        ok "ranks=$ranks: two SIGKILLs and resumes ($(attr "$T/k$ranks.h5" resumes) resumes): bitwise equal to the uninterrupted run"
    else
        fail "ranks=$ranks: after SIGKILLs: params $(cmp "$T/ref$ranks.bin" "$T/k$ranks.bin" 2>&1 | head -1); rows: ${same:-?}"
    fi
done

# refusals
expect_refusal() { # LABEL NEEDLE CMD...
    local label=$1 needle=$2; shift 2
    "$@" > "$T/r.log" 2>&1
    local rc=$?
    if (( rc != 0 )) && grep -q -- "$needle" "$T/r.log"; then ok "$label: refused ($(grep -m1 -o "error: .*" "$T/r.log" | head -c 160))"
    else fail "$label: exit $rc, want a refusal naming '$needle': $(tail -2 "$T/r.log")"; fi
}
"$ilbench" train "${O[@]}" --out "$T/x.h5" > "$T/x.log" 2>&1 &
pid=$!; wait_steps "$T/x.h5" 20; kill -TERM $pid; wait $pid
expect_refusal "resume with another --lr" "lr=0.10000000000000001 there, 0.050000000000000003 now" \
    "$ilbench" train "${O[@]}" --lr 0.05 --resume "$T/x.h5"
expect_refusal "resume with other threads" "threads=1 there, 2 now" "$ilbench" train "${O[@]}" --threads 2 --resume "$T/x.h5"
expect_refusal "resume with --force" "exclude each other" "$ilbench" train "${O[@]}" --force --resume "$T/x.h5"
expect_refusal "resume a completed run" "is completed" "$ilbench" train "${O[@]}" --resume "$T/ref1.h5:$($py -c "import h5py; print(sorted(h5py.File('$T/ref1.h5','r')['runs'])[-1])")"
expect_refusal "resume with nothing to resume" "no running or interrupted run" "$ilbench" train "${O[@]}" --resume "$T/ref1.h5"
expect_refusal "resume a missing file" "No such file" "$ilbench" train "${O[@]}" --resume "$T/none.h5"

# sweep: an interrupted point needs --resume; a completed one is not run again
S=(--data "$data" --epochs 1 --max-batches 150 --test-batches 1 --checkpoint-every 10 --seed 3,4)
"$ilbench" sweep "${S[@]}" --out "$T/sref.h5" > /dev/null 2>&1
"$ilbench" sweep "${S[@]}" --out "$T/s.h5" > "$T/s.log" 2>&1 &
pid=$!; wait_steps "$T/s.h5" 30; kill -TERM $pid; wait $pid; rc=$?
(( rc == 143 )) && ok "sweep: SIGTERM exits 143" || fail "sweep: SIGTERM exit $rc"
expect_refusal "sweep --append with an interrupted point" "add --resume" "$ilbench" sweep "${S[@]}" --out "$T/s.h5" --append
expect_refusal "sweep --resume without --append" "needs --append" "$ilbench" sweep "${S[@]}" --out "$T/s2.h5" --resume
if "$ilbench" sweep "${S[@]}" --out "$T/s.h5" --append --resume > "$T/s2.log" 2>&1 &&
   $py - "$T/sref.h5" "$T/s.h5" <<'PY'
import sys, h5py
a, b = (h5py.File(p, "r")["runs"] for p in sys.argv[1:])
assert sorted(a) == sorted(b), (sorted(a), sorted(b))
for k in a:
    assert b[k].attrs["status"] == b"completed", k
    for t in ("epochs", "steps"):
        x, y = a[k][t][()], b[k][t][()]
        assert x.shape == y.shape and all(x[c].tobytes() == y[c].tobytes() for c in x.dtype.names if not c.endswith("_s")), (k, t)
PY
then ok "sweep --append --resume: every point completed, rows equal to the uninterrupted sweep"
else fail "sweep --append --resume: $(tail -3 "$T/s2.log")"; fi
"$ilbench" sweep "${S[@]}" --out "$T/s.h5" --append --resume > "$T/s3.log" 2>&1
grep -q "0 runs completed, 0 skipped, 2 in the file earlier" "$T/s3.log" && ok "sweep --append again: both points already in the file" ||
    fail "sweep --append again: $(tail -1 "$T/s3.log")"
# one rank SIGKILLed mid-run: the job ends within seconds, the file stays readable, and the run resumes
"$mpiexec" -n 2 --oversubscribe "$ilbench" train "${O[@]}" --out "$T/r.h5" > "$T/r1.log" 2>&1 &
pid=$!
wait_steps "$T/r.h5" 20
victim=
for p in $(pgrep -f "ilbench train .*$T/r.h5"); do
    tr '\0' '\n' < /proc/$p/environ 2>/dev/null | grep -qx "OMPI_COMM_WORLD_RANK=1" && victim=$p
done
t0=$SECONDS
[[ -n $victim ]] && kill -KILL "$victim"
wait $pid
rc=$?
took=$((SECONDS - t0))
st=$(attr "$T/r.h5" status)
if [[ -n $victim ]] && (( rc != 0 && took <= 10 )) && [[ $st == running || $st == failed ]]; then
    ok "rank 1 killed: the job ended in ${took} s (exit $rc), the file is readable, run $st"
else
    fail "rank 1 killed (pid ${victim:-not found}): exit $rc after ${took} s, status '$st'"
fi
if "$mpiexec" -n 2 --oversubscribe "$ilbench" train "${O[@]}" --resume "$T/r.h5" > "$T/r2.log" 2>&1 &&
   [[ $(attr "$T/r.h5" status) == completed ]]; then
    ok "the run of the killed rank resumes to completion"
else
    fail "resume after a killed rank: $(tail -2 "$T/r2.log")"
fi

# training state of --warm-start and --w-norm: SIGTERM mid-run, resume, bitwise equal to uninterrupted
# (120 of the 600 batches per epoch: the second epoch mixes seen and unseen samples)
WO=(--data "$data" --epochs 2 --max-batches 120 --test-batches 1 --checkpoint-every 9)
for variant in "1 --warm-start --w-norm weight" "2 --warm-start --w-norm spectral"; do
    read -r ranks extra <<<"$variant"
    read -ra X <<<"$extra"
    L=("$mpiexec" -n "$ranks" --oversubscribe "$ilbench")
    (( ranks == 1 )) && L=("$ilbench")
    tag="ranks=$ranks $extra"
    "${L[@]}" train "${WO[@]}" "${X[@]}" --out "$T/wref.h5" --save-params "$T/wref.bin" --force > "$T/w.log" 2>&1 ||
        { fail "$tag: the uninterrupted run: $(tail -3 "$T/w.log")"; continue; }
    rm -f "$T/w.h5"
    "${L[@]}" train "${WO[@]}" "${X[@]}" --out "$T/w.h5" --save-params "$T/w.bin" > "$T/w1.log" 2>&1 &
    pid=$!
    wait_steps "$T/w.h5" 40
    kill -TERM $pid
    wait $pid
    st=$(attr "$T/w.h5" status)
    "${L[@]}" train "${WO[@]}" "${X[@]}" --resume "$T/w.h5" --save-params "$T/w.bin" > "$T/w2.log" 2>&1 ||
        fail "$tag: resume failed: $(tail -3 "$T/w2.log")"
    if [[ $st == interrupted ]] && cmp -s "$T/wref.bin" "$T/w.bin" && same=$($py "$T/same.py" "$T/wref.h5" "$T/w.h5"); then
        ok "$tag: interrupted and resumed, parameters and rows bitwise equal to the uninterrupted run"
    else
        fail "$tag: status after SIGTERM '$st'; params $(cmp "$T/wref.bin" "$T/w.bin" 2>&1 | head -1); rows: ${same:-?}"
    fi
done
echo "== $fails failed"
(( fails == 0 ))
