#!/bin/bash
# tests/test_slurm.sh REPO_ROOT ILBENCH -- end-to-end Slurm test on this one
# machine: start a private single-node Slurm (munged, slurmctld, slurmd as
# root, every file under a temp dir, SLURM_CONF pointing at it), run a
# 2-task job-array sweep through slurm/submit-sweep --wait, check the merged
# file with analysis/check_schema.py (and the report if analysis/report.py
# exists), then stop the daemons it started (also on failure).
# Exit 77 (skip) when Slurm/munge cannot be installed or started, or when the
# MNIST data is missing (unless ILBENCH_REQUIRE_DATA=1).
# ILBENCH_SLURM_TEST_CONFIG picks another slurm/config (name or path; default
# local); ILBENCH_KEEP_TMP=1 keeps the temp dir.
set -uo pipefail
SKIP=77
repo=$(cd "${1:?usage: test_slurm.sh REPO_ROOT ILBENCH}" && pwd)
ilbench=$(realpath "${2:?usage: test_slurm.sh REPO_ROOT ILBENCH}")
skip() { echo "SKIP: $*"; exit $SKIP; }
fail() { echo "FAIL: $*"; exit 1; }
t_start=$SECONDS

# ---- data --------------------------------------------------------------
data=$repo/data/mnist
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
    if [[ ! -r $data/$f ]]; then
        [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]] && fail "MNIST file $data/$f missing and ILBENCH_REQUIRE_DATA=1"
        skip "MNIST file $data/$f missing (set ILBENCH_REQUIRE_DATA=1 to fail instead)"
    fi
done
[[ -x $ilbench ]] || fail "$ilbench is not executable"

# ---- install -----------------------------------------------------------
need=(/usr/sbin/slurmctld /usr/sbin/slurmd /usr/bin/sbatch /usr/bin/sinfo /usr/sbin/munged)
missing() { local p; for p in "${need[@]}"; do [[ -x $p ]] || return 0; done; return 1; }
if missing; then
    [[ $(id -u) -eq 0 ]] || skip "Slurm/munge not installed and not root, cannot apt-get install them"
    command -v apt-get >/dev/null || skip "Slurm/munge not installed and no apt-get"
    echo "installing slurmctld slurmd slurm-client munge with apt-get ..."
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q slurmctld slurmd slurm-client munge >/tmp/ilbench-slurm-apt.log 2>&1; then
        apt-get update -q >>/tmp/ilbench-slurm-apt.log 2>&1
        apt-get install -y -q slurmctld slurmd slurm-client munge >>/tmp/ilbench-slurm-apt.log 2>&1 ||
            { tail -5 /tmp/ilbench-slurm-apt.log; skip "apt-get could not install slurmctld slurmd slurm-client munge (log /tmp/ilbench-slurm-apt.log)"; }
    fi
    missing && skip "after apt-get, one of ${need[*]} is still missing"
fi
[[ $(id -u) -eq 0 ]] || skip "starting slurmd and a private munged needs root here (running as uid $(id -u))"

# ---- private cluster under a temp dir ----------------------------------
T=$(mktemp -d /tmp/ilbench-slurm.XXXXXX)
chmod 700 "$T"
mkdir -p "$T"/{state,spool,log,results}
started=()   # pid files of daemons we started, in start order
stop_all() {
    local i pf pid n
    for (( i = ${#started[@]} - 1; i >= 0; i-- )); do   # slurmd, slurmctld, munged
        pf=${started[i]}
        pid=$(cat "$pf" 2>/dev/null) || continue
        [[ $pid =~ ^[0-9]+$ ]] || continue
        kill -TERM "$pid" 2>/dev/null || continue
        for (( n = 0; n < 50; n++ )); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        if kill -0 "$pid" 2>/dev/null; then echo "$(basename "$pf" .pid) ($pid) ignored TERM; KILL"; kill -KILL "$pid" 2>/dev/null; fi
    done
    started=()
}
on_exit() {
    local rc=$?
    stop_all
    if (( rc == 0 )) && [[ ${ILBENCH_KEEP_TMP:-0} != 1 ]]; then rm -rf "$T"; else echo "left $T for inspection"; fi
    echo "test_slurm: exit $rc after $((SECONDS - t_start)) s"
    exit $rc
}
trap on_exit EXIT
trap 'exit 130' INT TERM
dump_logs() { local f; for f in "$T"/log/*.log; do echo "---- $f (tail)"; tail -20 "$f"; done; }

# munged: private key, socket, pid, log and seed files (root, since $T is root's 0700 dir)
dd if=/dev/urandom of="$T/munge.key" bs=1 count=1024 status=none && chmod 400 "$T/munge.key"
msock=$T/munge.socket
/usr/sbin/munged --socket="$msock" --key-file="$T/munge.key" --pid-file="$T/munged.pid" \
    --log-file="$T/log/munged.log" --seed-file="$T/munged.seed" --force ||
    { dump_logs; skip "munged did not start"; }
started+=("$T/munged.pid")
for (( n = 0; n < 50; n++ )); do [[ -S $msock ]] && break; sleep 0.1; done
munge -S "$msock" -n </dev/null | unmunge -S "$msock" >/dev/null || { dump_logs; skip "munge round trip through $msock failed"; }

host=$(hostname -s)
cpus=$(nproc)
mem=$(awk '/^MemAvailable:/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
port() {  # a free TCP port in 20000-29999
    local p
    for (( i = 0; i < 50; i++ )); do
        p=$((20000 + RANDOM % 10000))
        ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null && { echo $p; return; }
    done
    echo $((20000 + RANDOM % 10000))
}
ctl_port=$(port); d_port=$(port)
export SLURM_CONF=$T/slurm.conf
cat >"$SLURM_CONF" <<CONF
ClusterName=ilbtest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctl_port
SlurmdPort=$d_port
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$msock
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
SlurmctldLogFile=$T/log/slurmctld.log
SlurmdLogFile=$T/log/slurmd.log
ReturnToService=2
MinJobAge=300
SchedulerType=sched/backfill
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
echo "slurm.conf: $SLURM_CONF (node $host, $cpus CPUs, ${mem} MB, ports $ctl_port/$d_port)"

/usr/sbin/slurmctld -f "$SLURM_CONF" || { dump_logs; skip "slurmctld did not start"; }
for (( n = 0; n < 50; n++ )); do [[ -s $T/slurmctld.pid ]] && break; sleep 0.1; done
started+=("$T/slurmctld.pid")
/usr/sbin/slurmd -f "$SLURM_CONF" || { dump_logs; skip "slurmd did not start"; }
for (( n = 0; n < 50; n++ )); do [[ -s $T/slurmd.pid ]] && break; sleep 0.1; done
started+=("$T/slurmd.pid")

state=
for (( n = 0; n < 60; n++ )); do
    state=$(sinfo -h -N -n "$host" -o %t 2>/dev/null | head -1)
    [[ $state == idle ]] && break
    sleep 0.5
done
[[ $state == idle ]] || { sinfo -N -l; dump_logs; skip "node $host not idle after 30 s (state '${state:-none}')"; }
echo "slurm up after $((SECONDS - t_start)) s: $(sinfo -h -N -o '%N %t %c CPUs')"

# ---- the sweep ------------------------------------------------------------
# Decide now whether a report is expected: report.py may appear mid-run.
have_report=0; [[ -f $repo/analysis/report.py ]] && have_report=1
t_sweep=$SECONDS
export RESULTS_ROOT=$T/results ILBENCH=$ilbench ILBENCH_POLL=1
out=$(cd "$repo" && timeout 480 bash slurm/submit-sweep --config "${ILBENCH_SLURM_TEST_CONFIG:-local}" --tasks 2 --wait -- \
        --solver fp,newton --backward implicit --tol 1e-2 --epochs 1 --max-batches 5 \
        --test-batches 2 --data "$data" 2>&1)
rc=$?
echo "$out"
for f in "$RESULTS_ROOT"/logs/*.out; do echo "---- $f"; cat "$f"; done
(( rc == 0 )) || { dump_logs; fail "submit-sweep --wait exited $rc"; }
echo "sweep + merge took $((SECONDS - t_sweep)) s"
arr=$(sed -n 's/^array job: *\([0-9]*\).*/\1/p' <<<"$out")
[[ -n $arr ]] || fail "no array job id in submit-sweep output"
dir=$RESULTS_ROOT/$arr
for f in part-0.h5 part-1.h5 all.h5; do [[ -s $dir/$f ]] || fail "$dir/$f missing"; done
[[ -s $RESULTS_ROOT/logs/ilbench-sweep_${arr}_0.out && -s $RESULTS_ROOT/logs/ilbench-sweep_${arr}_1.out ]] ||
    fail "array logs ilbench-sweep_${arr}_{0,1}.out missing"
ls "$RESULTS_ROOT"/logs/ilbench-merge_*.out >/dev/null 2>&1 || fail "merge log missing"

/usr/bin/python3 "$repo/analysis/check_schema.py" "$dir/all.h5" || fail "check_schema.py rejected $dir/all.h5"
nruns=$(/usr/bin/python3 -c 'import h5py,sys; print(len(h5py.File(sys.argv[1],"r")["runs"]))' "$dir/all.h5") ||
    fail "could not count runs in all.h5"
[[ $nruns == 2 ]] || fail "all.h5 has $nruns runs, expected 2 (fp and newton)"
echo "all.h5: $nruns runs, schema OK"

if (( have_report )); then
    [[ -d $dir/report ]] || fail "analysis/report.py exists but $dir/report was not written"
    shopt -s nullglob
    figs=("$dir"/report/*.png "$dir"/report/*.pdf "$dir"/report/*.svg)
    sums=("$dir"/report/*summary* "$dir"/report/*.md "$dir"/report/*.csv "$dir"/report/*.txt)
    (( ${#figs[@]} > 0 )) || fail "no figures in $dir/report"
    (( ${#sums[@]} > 0 )) || fail "no summary in $dir/report"
    echo "report: ${#figs[@]} figures, ${#sums[@]} summary files"
else
    echo "analysis/report.py not present yet: report not checked"
fi
# ---- a requeued task continues its part file from the checkpoint ----------
t_rq=$SECONDS
out=$(cd "$repo" && timeout 60 bash slurm/submit-sweep --config "${ILBENCH_SLURM_TEST_CONFIG:-local}" --tasks 1 -- \
        --solver fp --backward unroll --epochs 2 --max-batches 400 --checkpoint-every 25 --test-batches 1 \
        --data "$data" 2>&1)
echo "$out" | sed 's/^/  (requeue) /'
arr=$(sed -n 's/^array job: *\([0-9]*\).*/\1/p' <<<"$out")
[[ -n $arr ]] || fail "requeue: no array job id"
part=$RESULTS_ROOT/$arr/part-0.h5
rows() { /usr/bin/python3 -c 'import h5py,sys
try:
  r=h5py.File(sys.argv[1],"r")["runs"]; print(len(r[sorted(r)[-1]]["steps"]))
except Exception: print(0)' "$1" 2>/dev/null; }
for (( n = 0; n < 600; n++ )); do (( $(rows "$part") >= 100 )) && break; sleep 0.1; done
(( $(rows "$part") >= 100 )) || { dump_logs; fail "requeue: the task wrote no checkpointed steps in 60 s"; }
scontrol requeue "${arr}_0" || fail "requeue: scontrol requeue ${arr}_0 failed"
echo "requeued ${arr}_0 after $(rows "$part") step rows"
# Slurm holds a requeued job back for a while (its BeginTime); this test need not wait for that
for (( n = 0; n < 100; n++ )); do
    [[ $(squeue -h -j "$arr" -o %T 2>/dev/null) == PENDING ]] && scontrol update JobId="${arr}_0" StartTime=now 2>/dev/null && break
    sleep 0.2
done
for (( n = 0; n < 900; n++ )); do
    [[ -z $(squeue -h -j "$arr" 2>/dev/null) ]] && break
    sleep 0.2
done
[[ -z $(squeue -h -j "$arr" 2>/dev/null) ]] || { squeue; fail "requeue: the array job did not finish in 180 s"; }
cat "$RESULTS_ROOT"/logs/ilbench-sweep_${arr}_0.out
/usr/bin/python3 - "$part" <<'PY' || fail "requeue: the part file is not one completed, resumed run of 800 steps"
import sys, h5py
r = h5py.File(sys.argv[1], "r")["runs"]
assert len(r) == 1, list(r)
g = r[list(r)[0]]
print("requeue:", g.attrs["status"], "resumes", g.attrs.get("resumes"), "steps", len(g["steps"]))
assert g.attrs["status"] == b"completed" and g.attrs.get("resumes", 0) >= 1 and len(g["steps"]) == 800
assert list(g["steps"]["global_step"]) == list(range(800))
PY
grep -q "run 2" "$RESULTS_ROOT"/logs/ilbench-sweep_${arr}_0.out || fail "requeue: the task log does not show a second run"
echo "requeue: the requeued task resumed its part file and completed it in $((SECONDS - t_rq)) s"

# ---- a failing sweep: --wait must report it, not hang ---------------------
t_bad=$SECONDS
out=$(cd "$repo" && timeout 120 bash slurm/submit-sweep --tasks 1 --wait -- \
        --solver no-such-solver --epochs 1 --max-batches 1 --test-batches 0 --data "$data" 2>&1)
rc=$?
echo "$out" | sed 's/^/  (failing sweep) /'
(( rc == 124 )) && fail "submit-sweep --wait hung on a failed array job"
(( rc != 0 )) || fail "submit-sweep --wait exited 0 for a sweep with a bad solver"
echo "failing sweep: submit-sweep --wait exited $rc after $((SECONDS - t_bad)) s, as expected"
echo "PASS"
