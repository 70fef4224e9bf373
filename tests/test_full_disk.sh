#!/bin/bash
# tests/test_full_disk.sh ILBENCH MPIEXEC DATA -- train and sweep onto a full
# disk: a small tmpfs, mounted here (root only; exit 77 otherwise), filled to
# several levels around what a run needs, on 1 and 2 ranks. Every case must
# end within its timeout with exit 0 (it fitted) or 1 and a message naming
# the lack of space, never a crash or a hang, and must leave the run that was
# in the file before bitwise intact and the file readable. A filler that
# takes the rest of the disk while the run is writing (after its space was
# reserved) must not damage the file either. Last, with the space checks off
# (ILBENCH_H5_NO_SPACE_CHECK=1, HDF5 meets ENOSPC itself), exit 1 with the
# message and no crash.
set -uo pipefail
ilbench=${1:?usage: test_full_disk.sh ILBENCH MPIEXEC DATA}
mpiexec=${2:?}
data=${3:?}
py=/usr/bin/python3
[[ $(id -u) -eq 0 ]] || { echo "SKIP: mounting a tmpfs needs root"; exit 77; }
[[ -r $data/train-images-idx3-ubyte ]] || { echo "SKIP: no MNIST in $data"; exit 77; }
$py -c 'import h5py' 2>/dev/null || { echo "SKIP: no h5py for $py"; exit 77; }
T=$(mktemp -d /tmp/ilbench-fulldisk.XXXXXX)
M=$T/mnt
mkdir -p "$M"
mount -t tmpfs -o size=4m tmpfs "$M" 2>"$T/mount.err" || { echo "SKIP: cannot mount a tmpfs: $(cat "$T/mount.err")"; rm -rf "$T"; exit 77; }
trap 'umount "$M" 2>/dev/null; rm -rf "$T"' EXIT
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_mpi_yield_when_idle=1
fails=0 cases=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
O=(--data "$data" --epochs 2 --max-batches 20 --test-batches 1)
O4=(--data "$data" --epochs 4 --max-batches 20 --test-batches 1)

# A digest of every run of a file (attributes and datasets, recursively).
cat > "$T/digest.py" <<'PY'
import hashlib, sys, h5py, numpy as np
def walk(g, h):
    for k in sorted(g.attrs):
        v = g.attrs[k]
        h.update(k.encode()); h.update(np.asarray(v).tobytes() if not isinstance(v, (bytes, str)) else str(v).encode())
    for k in sorted(g):
        h.update(k.encode()); o = g[k]
        if isinstance(o, h5py.Group): walk(o, h)
        else: h.update(o[()].tobytes())
try:
    f = h5py.File(sys.argv[1], "r")
    only = sys.argv[2:]
    for r in sorted(f["runs"]):
        if only and r not in only: continue
        h = hashlib.sha256(); walk(f["runs"][r], h)
        print(r, f["runs"][r].attrs["status"].decode(), h.hexdigest())
except Exception as e:
    print("UNREADABLE", e); sys.exit(3)
PY
"$ilbench" train "${O[@]}" --out "$M/base.h5" >/dev/null 2>&1 || { echo "FAIL: the base run"; exit 1; }
cp "$M/base.h5" "$T/base.h5"
rm -f "$M/base.h5"
base=$($py "$T/digest.py" "$T/base.h5") || { echo "FAIL: base unreadable"; exit 1; }
base_id=$(awk '{print $1}' <<<"$base")

# run CMD... with `free` bytes left on the tmpfs (a filler takes the rest); judge it
trial() {
    local label=$1 free=$2; shift 2
    cases=$((cases + 1))
    rm -f "$M"/*
    cp "$T/base.h5" "$M/w.h5"
    local avail; avail=$(df -B1 --output=avail "$M" | tail -1)
    (( avail > free )) && head -c $((avail - free)) /dev/zero > "$M/fill" 2>/dev/null
    timeout 90 "$@" > "$T/out" 2> "$T/err"
    local rc=$?
    judge "$label free=$free" $rc
}
judge() {
    local label=$1 rc=$2
    if (( rc == 124 )); then fail "$label: hung (killed after 90 s)"; return; fi
    if grep -qiE "segmentation|signal 11|core dumped|SIGABRT|signal 6" "$T/err"; then fail "$label: crashed: $(head -c 300 "$T/err")"; return; fi
    if (( rc != 0 && rc != 1 )); then fail "$label: exit $rc, want 0 or 1: $(head -c 300 "$T/err")"; return; fi
    if (( rc == 1 )) && ! grep -qi "space" "$T/err"; then fail "$label: exit 1 without a message about space: $(head -c 300 "$T/err")"; return; fi
    local now; now=$($py "$T/digest.py" "$M/w.h5" "$base_id")
    if [[ $now != "$base" ]]; then fail "$label: the earlier run changed or the file is unreadable: $now"; return; fi
    $py -c "import h5py; f = h5py.File('$M/w.h5', 'r'); [f['runs'][k].attrs['status'] for k in f['runs']]" 2>"$T/pyerr" ||
        { fail "$label: the file's runs cannot be listed: $(tail -1 "$T/pyerr")"; return; }
    echo "ok   $label: exit $rc $(grep -o 'no space[^(]*' "$T/err" | head -1)"
}

for ranks in 1 2; do
    L=("$mpiexec" -n "$ranks" --oversubscribe "$ilbench")
    for free in 30000 400000 800000 1200000 1500000 2500000; do
        trial "train ranks=$ranks" $free "${L[@]}" train "${O[@]}" --out "$M/w.h5" --append
    done
    for free in 400000 1300000 2500000; do
        trial "sweep ranks=$ranks" $free "${L[@]}" sweep "${O[@]}" --seed 1,2 --out "$M/w.h5" --append
    done
    # the rest of the disk taken while the run writes
    cases=$((cases + 1))
    rm -f "$M"/*
    cp "$T/base.h5" "$M/w.h5"
    ( timeout 90 "${L[@]}" train "${O4[@]}" --checkpoint-every 5 --out "$M/w.h5" --append > "$T/out" 2> "$T/err"; echo $? > "$T/rc" ) &
    for _ in $(seq 100); do grep -q "^# run " "$T/out" 2>/dev/null && break; sleep 0.05; done
    head -c 8000000 /dev/zero > "$M/fill" 2>/dev/null
    wait
    judge "train ranks=$ranks, disk filled while writing" "$(cat "$T/rc")"
    # no space checks: HDF5 meets ENOSPC itself; a message and exit 1, no crash (the file may be damaged)
    cases=$((cases + 1))
    rm -f "$M"/*
    cp "$T/base.h5" "$M/w.h5"
    avail=$(df -B1 --output=avail "$M" | tail -1)
    head -c $((avail - 200000)) /dev/zero > "$M/fill" 2>/dev/null
    ILBENCH_H5_NO_SPACE_CHECK=1 timeout 90 "${L[@]}" train "${O[@]}" --out "$M/w.h5" --append > "$T/out" 2> "$T/err"
    rc=$?
    if (( rc == 124 )); then fail "no space checks, ranks=$ranks: hung"
    elif grep -qiE "segmentation|signal 11|core dumped" "$T/err"; then fail "no space checks, ranks=$ranks: crashed"
    elif (( rc != 1 )) || ! grep -q "No space left on device" "$T/err"; then fail "no space checks, ranks=$ranks: exit $rc: $(head -c 300 "$T/err")"
    else echo "ok   no space checks, ranks=$ranks: exit 1, HDF5's ENOSPC reported"; fi
done
echo "== $cases cases, $fails failed"
(( fails == 0 ))
