#!/usr/bin/env bash
# ilbench merge: any number of inputs (40 on the command line, 40 from --from-list, 20
# long paths whose merged_from needs HDF5's dense attribute storage); atomic output (a
# failed merge leaves no temporary file and an old output bitwise identical, --force
# included; a killed merge's temporary is removed by the next merge into that output);
# refusals (existing output, duplicate run ids, input = output); the writer
# lock of the output (refused while held, --wait-lock waits, no lock file left); string
# attributes of every kind (variable- and fixed-length, UTF-8) accepted by merge, the
# python loader and check_schema.py. Inputs are built with h5py (merge_fixture.py), so
# no MNIST is needed; with data/mnist it also tries `train --append` onto such a file
# and reports the result (a NOTE, not a failure: that is the writer's append path).
#   test_merge.sh <ilbench> <source dir>
set -u
ILB=$(realpath "${1:?usage: test_merge.sh <ilbench> <source dir>}")
SRC=${2:?usage: test_merge.sh <ilbench> <source dir>}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE PYTHONDONTWRITEBYTECODE=1
unset ILBENCH_NO_LOCK
T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-merge.XXXXXX") || exit 1
holder=""
trap '[[ -n $holder ]] && kill "$holder" 2>/dev/null; rm -rf "$T"' EXIT
nfail=0
pass() { echo "PASS  $1"; }
fail() { echo "FAIL  $1: $2"; nfail=$((nfail + 1)); }
fixture() { "$PY" "$SRC/tests/cli/merge_fixture.py" "$SRC" "$@"; }
# merge ARGS...: sets rc and err (stderr); stdout to $T/out
merge() { (cd "$T" && timeout 60 "$ILB" merge "$@") >"$T/out" 2>"$T/err"; rc=$?; err=$(cat "$T/err"); }
nruns() { fixture runs "$1" | wc -l; }
# no temporary or lock file left in directory $1
clean_dir() { [[ -z $(find "$1" -maxdepth 1 \( -name '*.tmp-*' -o -name '*.lock' \)) ]]; }
checks() { "$PY" "$SRC/analysis/check_schema.py" "$1" >"$T/cs.log" 2>&1 && grep -q " 0 errors," "$T/cs.log"; }

fixture parts "$T/p" 40 p || { echo "FAIL  fixture"; exit 1; }
fixture parts "$T/q" 40 q || { echo "FAIL  fixture"; exit 1; }
fixture parts "$T/x" 3 x || { echo "FAIL  fixture"; exit 1; }

# 1. 40 inputs on the command line (16 was the old limit).
merge "$T"/p/p*.h5 -o "$T/m40.h5"
if [[ $rc -eq 0 && $(nruns "$T/m40.h5") -eq 40 ]] && checks "$T/m40.h5" && clean_dir "$T"; then
  pass "40 inputs on the command line: 40 runs, check_schema clean, no temporary or lock file left"
else fail "40 positional inputs" "rc=$rc $err $(tail -2 "$T/cs.log" 2>/dev/null)"; fi

# 2. --from-list with 40 lines (plus comments and blank lines), after positional inputs.
{ echo "# parts of job q"; echo; for f in "$T"/q/q*.h5; do echo "$f"; done; echo "   "; echo "  # indented comment"; } >"$T/list"
merge "$T/x/x000.h5" --from-list "$T/list" "$T/x/x001.h5" -o "$T/mlist.h5"
mf=$(fixture merged-from "$T/mlist.h5" 2>/dev/null)
if [[ $rc -eq 0 && $(nruns "$T/mlist.h5") -eq 42 && $(head -2 <<<"$mf" | tr '\n' ' ') == "$T/x/x000.h5 $T/x/x001.h5 " &&
      $(sed -n 3p <<<"$mf") == "$T/q/q000.h5" && $(wc -l <<<"$mf") -eq 42 ]] && checks "$T/mlist.h5"; then
  pass "--from-list with 40 lines plus 2 positional inputs: 42 runs, merged_from in order (positional first)"
else fail "--from-list" "rc=$rc $err; merged_from: $(head -3 <<<"$mf" | tr '\n' ' ')"; fi
merge --from-list "$T/nolist" -o "$T/none.h5"
if [[ $rc -eq 1 && $err == *"$T/nolist"* && ! -e $T/none.h5 ]]; then pass "a missing --from-list file is refused: ${err#*error: }"
else fail "missing --from-list" "rc=$rc $err"; fi
printf '# nothing\n\n' >"$T/empty.list"
merge --from-list "$T/empty.list" -o "$T/none.h5"
if [[ $rc -eq 2 && $err == *"lists none"* && ! -e $T/none.h5 ]]; then pass "a --from-list of comments only is a usage error"
else fail "empty --from-list" "rc=$rc $err"; fi

# 3. Long input paths: merged_from passes 64 KiB, so the output uses dense attributes.
long=$T/l
for _ in $(seq 14); do long=$long/$(printf 'd%.0s' $(seq 240)); done
mkdir -p "$long" && fixture parts "$long" 20 l
merge "$long"/l*.h5 -o "$T/mlong.h5"
if [[ $rc -eq 0 && $(nruns "$T/mlong.h5") -eq 20 && $(fixture merged-from "$T/mlong.h5" | wc -l) -eq 20 ]] &&
   checks "$T/mlong.h5" && h5dump -H "$T/mlong.h5" >/dev/null 2>&1; then
  pass "20 inputs of $((${#long} + 9))-character paths (merged_from of $(( (${#long} + 10) * 20 )) bytes): h5dump, h5py and check_schema read it"
else fail "long paths" "rc=$rc $err $(tail -2 "$T/cs.log")"; fi

# 4. Refusals write nothing: an existing output without --force (before the lock file, too),
#    duplicate run ids, the output as an input.
cp "$T/m40.h5" "$T/old.h5"
merge "$T/x/x000.h5" -o "$T/old.h5"
if [[ $rc -eq 1 && $err == *"exists; use --force"* ]] && cmp -s "$T/m40.h5" "$T/old.h5" && clean_dir "$T"; then
  pass "an existing output is refused without --force, untouched, no lock or temporary file"
else fail "existing output" "rc=$rc $err"; fi
merge "$T/x/x000.h5" "$T/x/x001.h5" "$T/x/x000.h5" -o "$T/dup.h5"
if [[ $rc -eq 1 && $err == *"run ids must be unique"* && ! -e $T/dup.h5 ]] && clean_dir "$T"; then
  pass "duplicate run ids refused: no output, no temporary file"
else fail "duplicate run ids" "rc=$rc $err"; fi
ln "$T/old.h5" "$T/old-link.h5"
merge "$T/x/x000.h5" "$T/old-link.h5" -o "$T/old.h5" --force
if [[ $rc -eq 1 && $err == *"is also input"* ]] && cmp -s "$T/m40.h5" "$T/old.h5" && clean_dir "$T"; then
  pass "an input that is the output (a hard link to it) is refused, even with --force"
else fail "input = output" "rc=$rc $err"; fi
rm -f "$T/old-link.h5"

# 5. --force with a bad input leaves the old output bitwise identical.
head -c 3000 "$T/x/x002.h5" >"$T/trunc.h5"
printf 'not hdf5\n' >"$T/junk.h5"
cp "$T/x/x002.h5" "$T/v2.h5" && "$PY" -c "import h5py,sys; f=h5py.File(sys.argv[1],'r+'); f.attrs['schema_version']=2" "$T/v2.h5"
for bad in trunc junk v2; do
  merge "$T/x/x000.h5" "$T/$bad.h5" "$T/x/x001.h5" -o "$T/old.h5" --force
  if [[ $rc -eq 1 && $err == *"$bad.h5"* ]] && cmp -s "$T/m40.h5" "$T/old.h5" && clean_dir "$T"; then
    pass "--force with a bad input ($bad): exit 1, old output bitwise identical, no temporary: ${err#*error: }"
  else fail "--force with bad input $bad" "rc=$rc $err"; fi
done
merge "$T"/x/x*.h5 -o "$T/old.h5" --force
if [[ $rc -eq 0 && $(nruns "$T/old.h5") -eq 3 ]] && clean_dir "$T"; then pass "--force with good inputs replaces the output"
else fail "--force replace" "rc=$rc $err"; fi
# an output directory we cannot write to: nothing happens to the old output (root can write anywhere)
if [[ $(id -u) -ne 0 ]]; then
  mkdir "$T/ro" && cp "$T/m40.h5" "$T/ro/o.h5" && chmod 555 "$T/ro"
  merge "$T"/x/x*.h5 -o "$T/ro/o.h5" --force
  if [[ $rc -ne 0 ]] && cmp -s "$T/m40.h5" "$T/ro/o.h5"; then pass "read-only output directory: refused, old output intact"
  else fail "read-only directory" "rc=$rc $err"; fi
  chmod 755 "$T/ro"
fi

# 5b. Temporaries of killed merges into the same output are removed by the next merge (under the
#     lock); other files are left alone. Also for a 240-character output name (hashed temporaries).
touch "$T/st.h5" "$T/.st.h5.tmp-99999-0123456789abcdef" "$T/.st.h5.tmp-notours" "$T/.other.h5.tmp-1-0123456789abcdef"
merge "$T/x/x000.h5" -o "$T/st.h5" --force
if [[ $rc -eq 0 && $err == *"removed 1 temporary file"* && ! -e $T/.st.h5.tmp-99999-0123456789abcdef &&
      -e $T/.st.h5.tmp-notours && -e $T/.other.h5.tmp-1-0123456789abcdef ]]; then
  pass "a stale temporary of a killed merge is removed by the next merge, other files kept"
else fail "stale temporary" "rc=$rc $err"; fi
rm -f "$T/.st.h5.tmp-notours" "$T/.other.h5.tmp-1-0123456789abcdef"
lname=$(printf 'n%.0s' $(seq 237)).h5
hashed=$("$PY" -c "
import sys
h = 14695981039346656037
for b in sys.argv[1].encode(): h = ((h ^ b) * 1099511628211) % 2**64
print(f'.ilbench-{h:016x}.tmp-4242-00000000deadbeef')" "$lname")
touch "$T/$hashed"
merge "$T/x/x000.h5" -o "$T/$lname"
if [[ $rc -eq 0 && $(nruns "$T/$lname") -eq 1 && ! -e $T/$hashed ]] && clean_dir "$T"; then
  pass "a 240-character output name: merged, its hashed stale temporary removed, nothing left"
else fail "long output name" "rc=$rc $err"; fi

# 6. The writer lock: refused while another process holds it, --wait-lock waits, released after.
"$PY" - "$T/locked.h5.lock" "$T/held" <<'PY' &
import fcntl, os, socket, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"pid={os.getpid()} host={socket.gethostname()} since=2025-01-31T12:00:00Z\n".encode())
open(sys.argv[2], "w").close()
time.sleep(1.5)
os.unlink(sys.argv[1])
os.close(fd)
PY
holder=$!
for _ in $(seq 100); do [[ -e $T/held ]] && break; sleep 0.05; done
merge "$T/x/x000.h5" -o "$T/locked.h5"
if [[ $rc -eq 1 && $err == *"is being written by pid $holder on host"* && $err == *"locked.h5.lock"* &&
      $err == *"--wait-lock"* && ! -e $T/locked.h5 ]]; then
  pass "merge into a locked output is refused, naming the holder: ${err#*error: }"
else fail "locked output" "rc=$rc $err"; fi
t0=$(date +%s%N)
merge "$T/x/x000.h5" -o "$T/locked.h5" --wait-lock 10
ms=$((($(date +%s%N) - t0) / 1000000))
wait "$holder"; holder=""
if [[ $rc -eq 0 && -e $T/locked.h5 && ! -e $T/locked.h5.lock && $ms -lt 9000 ]]; then
  pass "--wait-lock 10 waited for the holder (${ms} ms) and merged; lock file removed"
else fail "--wait-lock" "rc=$rc ${ms} ms $err"; fi
merge "$T/x/x000.h5" -o "$T/w.h5" --wait-lock -1
if [[ $rc -eq 2 && $err == *"--wait-lock"* ]]; then pass "--wait-lock -1 is a usage error"
else fail "--wait-lock -1" "rc=$rc $err"; fi

# 7. Strings of every kind: variable-length (h5py's str) and fixed-length UTF-8.
cp "$T/x/x000.h5" "$T/vl.h5" && fixture strings "$T/vl.h5" x000
merge "$T/vl.h5" "$T/x/x001.h5" -o "$T/mvl.h5"
if [[ $rc -eq 0 && $(nruns "$T/mvl.h5") -eq 2 ]]; then pass "merge accepts variable- and fixed-length UTF-8 string attributes"
else fail "merge of variable-length strings" "rc=$rc $err"; fi
for f in vl mvl; do
  if checks "$T/$f.h5"; then pass "check_schema.py accepts $f.h5"; else fail "check_schema on $f.h5" "$(cat "$T/cs.log")"; fi
  if (cd "$SRC/analysis" && "$PY" -c "
import sys, ilbench_results as ir
runs = {r.run_id: r for r in ir.load_runs(sys.argv[1])}
assert runs['x000'].attrs['status'] == 'completed' and runs['x000'].attrs['solver'] == 'newton', runs['x000'].attrs
assert ir.load_runs(sys.argv[1]) and all(isinstance(r.attrs['status'], str) for r in runs.values())
" "$T/$f.h5") >"$T/py.log" 2>&1; then pass "the python loader reads $f.h5 (status, solver as str)"
  else fail "loader on $f.h5" "$(tail -3 "$T/py.log")"; fi
done
if [[ -f $SRC/data/mnist/train-images-idx3-ubyte ]]; then
  cp "$T/vl.h5" "$T/app.h5"
  (cd "$T" && timeout 120 "$ILB" train --data "$SRC/data/mnist" --epochs 1 --max-batches 2 --test-batches 1 --hidden 10 \
     --out "$T/app.h5" --append) >"$T/app.log" 2>&1
  arc=$?
  echo "NOTE  train --append onto a file with variable-length string attributes: exit $arc$( ((arc)) && echo ": $(grep -m1 error "$T/app.log")")"
fi

if ((nfail)); then echo "$nfail check(s) failed"; exit 1; fi
echo "all merge checks passed"
