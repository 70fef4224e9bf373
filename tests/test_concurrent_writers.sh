#!/bin/bash
# tests/test_concurrent_writers.sh ILBENCH MPIEXEC DATA -- one writer per results file.
#  - two `train --append` (and two `sweep --append`) into one file at once: one
#    succeeds, the other is refused at once naming the holder's pid and host,
#    and the file is schema-clean with the one new run;
#  - with --wait-lock both succeed, one after the other;
#  - a reader (h5py) opens the file while a writer holds it;
#  - a lock file left by a SIGKILLed writer does not block the next one;
#  - --out paths of 300 and ~4000 characters work on 1 and 2 ranks (the
#    MPI-IO shared-file-pointer path overflowed at 245).
set -uo pipefail
ilbench=${1:?usage: test_concurrent_writers.sh ILBENCH MPIEXEC DATA}
mpiexec=${2:?}
data=${3:?}
py=/usr/bin/python3
repo=$(cd "$(dirname "$0")/.." && pwd)
[[ -r $data/train-images-idx3-ubyte ]] || { echo "SKIP: no MNIST in $data"; exit 77; }
$py -c 'import h5py' 2>/dev/null || { echo "SKIP: no h5py for $py"; exit 77; }
T=$(mktemp -d /tmp/ilbench-lock.XXXXXX)
trap 'rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
unset ILBENCH_NO_LOCK
fails=0
ok() { echo "ok   $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
O0=(--data "$data" --epochs 1 --test-batches 1)
O=("${O0[@]}" --max-batches 150)
nruns() { $py -c "import h5py,sys; print(len(h5py.File(sys.argv[1],'r')['runs']))" "$1" 2>/dev/null || echo unreadable; }
clean() { $py "$repo/analysis/check_schema.py" "$1" > "$T/cs.log" 2>&1; }

for cmd in train sweep; do
    extra=(); [[ $cmd == sweep ]] && extra=(--seed 7)
    "$ilbench" $cmd "${O[@]}" "${extra[@]}" --out "$T/$cmd.h5" > /dev/null 2>&1 || { fail "$cmd: first run"; continue; }
    [[ $cmd == sweep ]] && extra=(--seed 8)
    "$ilbench" $cmd "${O[@]}" "${extra[@]}" --out "$T/$cmd.h5" --append > "$T/a.log" 2>&1 & pa=$!
    "$ilbench" $cmd "${O[@]}" "${extra[@]}" --out "$T/$cmd.h5" --append > "$T/b.log" 2>&1 & pb=$!
    wait $pa; ra=$?; wait $pb; rb=$?
    if (( ra == 0 && rb != 0 )); then loser=b; winner=$pa; elif (( rb == 0 && ra != 0 )); then loser=a; winner=$pb; else loser=; fi
    if [[ -n $loser ]] && grep -q "is being written by pid $winner on host $(hostname)" "$T/$loser.log"; then
        ok "$cmd: two appenders at once: one succeeded, the other was refused naming pid $winner"
    else
        fail "$cmd: two appenders: exits $ra and $rb: $(grep -h error "$T/a.log" "$T/b.log" | head -2)"
    fi
    if [[ $(nruns "$T/$cmd.h5") == 2 ]] && clean "$T/$cmd.h5"; then ok "$cmd: the file is schema-clean with 2 runs"
    else fail "$cmd: file has $(nruns "$T/$cmd.h5") runs; check_schema: $(tail -2 "$T/cs.log")"; fi
    [[ $cmd == sweep ]] && extra=(--seed 9,10)
    "$ilbench" $cmd "${O[@]}" "${extra[@]}" --out "$T/$cmd.h5" --append --wait-lock 120 > "$T/a.log" 2>&1 & pa=$!
    [[ $cmd == sweep ]] && extra=(--seed 11)
    sleep 0.3
    "$ilbench" $cmd "${O[@]}" "${extra[@]}" --out "$T/$cmd.h5" --append --wait-lock 120 > "$T/b.log" 2>&1 & pb=$!
    wait $pa; ra=$?; wait $pb; rb=$?
    want=$([[ $cmd == sweep ]] && echo 5 || echo 4)
    if (( ra == 0 && rb == 0 )) && [[ $(nruns "$T/$cmd.h5") == "$want" ]] && clean "$T/$cmd.h5"; then
        ok "$cmd: with --wait-lock both appenders succeeded ($want runs, schema-clean)"
    else
        fail "$cmd: --wait-lock: exits $ra $rb, $(nruns "$T/$cmd.h5") runs (want $want): $(grep -h error "$T/a.log" "$T/b.log" | head -2)"
    fi
done

# a reader while a writer holds the file
"$ilbench" train "${O0[@]}" --max-batches 400 --out "$T/r.h5" > "$T/w.log" 2>&1 & pw=$!
for _ in $(seq 100); do [[ -e $T/r.h5.lock ]] && grep -q "^# run" "$T/w.log" && break; sleep 0.05; done
if $py -c "import h5py,sys; f=h5py.File(sys.argv[1],'r'); print(list(f['runs']))" "$T/r.h5" > "$T/rd.log" 2>&1 && kill -0 $pw 2>/dev/null; then
    ok "a reader opens the file while the writer holds it"
else
    fail "reader during a write: $(tail -1 "$T/rd.log")"
fi
wait $pw
# a SIGKILLed writer's lock file
"$ilbench" train "${O0[@]}" --max-batches 400 --out "$T/k.h5" > "$T/k.log" 2>&1 & pk=$!
for _ in $(seq 100); do [[ -e $T/k.h5.lock ]] && break; sleep 0.05; done
sleep 0.3; kill -KILL $pk; wait $pk 2>/dev/null
if [[ -e $T/k.h5.lock ]] && "$ilbench" train "${O[@]}" --out "$T/k.h5" --append > "$T/k2.log" 2>&1; then
    ok "a lock file left by a SIGKILLed writer does not block the next writer"
else
    fail "after a SIGKILLed writer: $(tail -2 "$T/k2.log")"
fi

# long paths
for len in 300 4000; do
    d=$T
    while (( ${#d} < len - 60 )); do d=$d/$(printf 'd%.0s' $(seq 200)); done
    mkdir -p "$d"
    p=$d/$(printf 'r%.0s' $(seq $((len - ${#d} - 4)) ))
    p=${p:0:$((len - 3))}.h5
    for ranks in 1 2; do
        rm -f "$p"
        if "$mpiexec" -n $ranks --oversubscribe "$ilbench" train "${O0[@]}" --max-batches 10 --out "$p" > "$T/l.log" 2>&1 &&
           [[ $(nruns "$p") == 1 ]]; then
            ok "--out of ${#p} characters on $ranks rank(s)"
        else
            fail "--out of ${#p} characters on $ranks rank(s): $(grep -m2 -i "error\|overflow" "$T/l.log")"
        fi
    done
done
echo "== $fails failed"
(( fails == 0 ))
