#!/usr/bin/env bash
# ilbench merge onto a full disk: a 2 MiB tmpfs filled by a filler file to leave from
# nothing to just under what the output needs, with and without an old output there.
# Every level must give exit 1 (no crash), a message naming the output and the lack of
# space, no temporary or lock file left, and the old output bitwise identical; with
# room to spare the merge then succeeds. Needs root and a working `mount -t tmpfs`:
# skipped (77) otherwise.
#   test_merge_full_disk.sh <ilbench> <source dir>
set -u
ILB=$(realpath "${1:?usage: test_merge_full_disk.sh <ilbench> <source dir>}")
SRC=${2:?usage: test_merge_full_disk.sh <ilbench> <source dir>}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 HDF5_USE_FILE_LOCKING=FALSE PYTHONDONTWRITEBYTECODE=1
unset ILBENCH_NO_LOCK
if [[ $(id -u) -ne 0 ]]; then echo "SKIP: not root (mounting a small tmpfs needs root)"; exit 77; fi
T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-merge-full.XXXXXX") || exit 1
FS=$T/fs
mkdir "$FS"
if ! mount -t tmpfs -o size=2m,mode=0755 ilbench-merge-test "$FS" 2>"$T/mount.err"; then
  echo "SKIP: cannot mount a tmpfs: $(cat "$T/mount.err")"
  rm -rf "$T"
  exit 77
fi
trap 'umount "$FS" 2>/dev/null || umount -l "$FS"; rm -rf "$T"' EXIT
nfail=0
pass() { echo "PASS  $1"; }
leftovers() { find "$FS" -maxdepth 1 \( -name '*.tmp-*' -o -name '*.lock' \) -printf '%f '; }
fail() { echo "FAIL  $1: $2"; nfail=$((nfail + 1)); }

"$PY" "$SRC/tests/cli/merge_fixture.py" "$SRC" parts "$T/in" 12 r || { echo "FAIL  fixture"; exit 1; }
"$PY" "$SRC/tests/cli/merge_fixture.py" "$SRC" parts "$T/old" 2 o || { echo "FAIL  fixture"; exit 1; }
inputs=("$T"/in/r*.h5)
"$ILB" merge "${inputs[@]}" -o "$T/ref.h5" >/dev/null 2>&1 || { echo "FAIL  reference merge"; exit 1; }
"$ILB" merge "$T"/old/o*.h5 -o "$T/old.h5" >/dev/null 2>&1 || { echo "FAIL  old output"; exit 1; }
need=$(stat -c %s "$T/ref.h5")
old=$(stat -c %s "$T/old.h5")
echo "the output needs $need bytes; the old output is $old bytes"

avail() { df -B1 --output=avail "$FS" | tail -1 | tr -d ' '; }
# fill FREE: leave about FREE bytes free in $FS (tmpfs counts 4 KiB pages)
fill() {
  rm -f "$FS/filler"
  local n=$(($(avail) - $1))
  if ((n > 0)); then head -c "$n" /dev/zero >"$FS/filler" 2>/dev/null; fi
}

for with_old in 0 1; do
  for free in 0 4096 16384 $((need / 4)) $((need / 2)) $((need - 8192)); do
    rm -rf "${FS:?}"/* "$FS"/.[!.]* 2>/dev/null
    ((with_old)) && cp "$T/old.h5" "$FS/out.h5"
    fill "$free"
    left=$(avail)
    what="free $left bytes, $( ((with_old)) && echo "old output there" || echo "no old output")"
    (cd "$T" && timeout 60 "$ILB" merge "${inputs[@]}" -o "$FS/out.h5" --force) >"$T/out" 2>"$T/err"
    rc=$?
    err=$(cat "$T/err")
    left_over=$(leftovers)
    why=""
    if ((rc >= 124)); then why="exit $rc: crashed or hung"
    elif ((rc != 1)); then why="exit $rc, expected 1"
    elif [[ $err != *"$FS/out.h5"* ]]; then why="message does not name the output"
    elif [[ $err != *"space"* && $err != *"No space"* ]]; then why="message does not say the disk is full"
    elif [[ -n $left_over ]]; then why="left behind: $left_over"
    elif ((with_old)) && ! cmp -s "$T/old.h5" "$FS/out.h5"; then why="the old output changed"
    elif ((!with_old)) && [[ -e $FS/out.h5 ]]; then why="a partial output exists"
    fi
    if [[ -z $why ]]; then pass "$what: exit 1, $(sed -n 's/.*error: //p' <<<"$err" | cut -c1-160)"
    else fail "$what" "$why; stderr: $err"; fi
  done
done

rm -rf "${FS:?}"/* "$FS"/.[!.]* 2>/dev/null
cp "$T/old.h5" "$FS/out.h5"
fill $((need + 262144))
(cd "$T" && "$ILB" merge "${inputs[@]}" -o "$FS/out.h5" --force) >"$T/out" 2>"$T/err"
rc=$?
nruns=$("$PY" "$SRC/tests/cli/merge_fixture.py" "$SRC" runs "$FS/out.h5" 2>/dev/null | wc -l)
if ((rc == 0 && nruns == ${#inputs[@]})) && [[ -z $(leftovers) ]]; then
  pass "with $(avail) bytes to spare after it, --force replaced the old output ($nruns runs)"
else fail "merge with room" "exit $rc: $(cat "$T/err")"; fi

if ((nfail)); then echo "$nfail check(s) failed"; exit 1; fi
echo "all full-disk merge checks passed"
