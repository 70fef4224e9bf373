#!/usr/bin/env bash
# scripts/speed-report --quick (no --readme): the generated DIR/speed.md has the machine line, the
# layer tables with the GEMM ceiling of every row and its fraction, the training pass against that
# ceiling, and the commands; the numbers in it are the raw files' numbers; bad options exit 2; a
# failing sub-run fails the script naming the step and leaves the README alone; a layer whose
# --threads takes a comma list is run once with --threads 1,2 and its extra columns (threads,
# par_eff, found by name) reach the table; --render --readme-file replaces only the marked section.
#
# usage: test_speed_report.sh <ilbench> <source dir> [layer|torch]
#   layer (default)  everything above; needs no torch. The training part needs <source dir>/data/mnist:
#                    without it the test fails, unless ILBENCH_ALLOW_NO_DATA=1, which checks instead
#                    that the script skips that part with a note.
#   torch            the bench-vs-torch part (--parts torch): the torch table at threads 1 and 2, and
#                    a failure of ilbench inside bench-vs-torch failing the step.
#                    Exits 77 (skipped) when torch is not importable by ${PYTHON:-/usr/bin/python3}; needs MNIST
#                    as above (without it and with ILBENCH_ALLOW_NO_DATA=1: 77).
set -u
ILB=${1:?usage: test_speed_report.sh <ilbench> <source dir> [layer|torch]}
SRC=${2:?usage: test_speed_report.sh <ilbench> <source dir> [layer|torch]}
MODE=${3:-layer}
SR=$SRC/scripts/speed-report
PY=/usr/bin/python3
export PYTHONDONTWRITEBYTECODE=1
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }
[[ -x $ILB ]] || { echo "FAIL: ilbench not found or not executable: $ILB"; exit 1; }
have_data=1
[[ -f $SRC/data/mnist/train-images-idx3-ubyte && -f $SRC/data/mnist/train-labels-idx1-ubyte ]] || have_data=0
if ((have_data == 0)) && [[ ${ILBENCH_ALLOW_NO_DATA:-0} != 1 ]]; then
  echo "FAIL: $SRC/data/mnist is missing (scripts/fetch-mnist; ILBENCH_ALLOW_NO_DATA=1 checks the skip note instead)"
  exit 1
fi

# check_md FILE PATTERN WHAT: FILE has a line matching the extended regex PATTERN
check_md() { if grep -Eq -- "$2" "$1"; then ok "$3"; else fail "$3: no line matching /$2/ in $1"; fi; }

if [[ $MODE == torch ]]; then
  tpy=${PYTHON:-/usr/bin/python3}   # the interpreter bench-vs-torch and speed-report use for torch
  if ! "$tpy" -c 'import torch' >/dev/null 2>&1; then
    echo "SKIP: torch is not importable by $tpy (scripts/install-deps --torch); the torch part is not checked"
    exit 77
  fi
  if ((have_data == 0)); then echo "SKIP: no MNIST in $SRC/data/mnist; the torch part needs it"; exit 77; fi
  ILBENCH=$ILB "$SR" --quick --parts torch --out "$tmp/t" >"$tmp/t.log" 2>&1
  rc=$?
  [[ $rc == 0 ]] || { cat "$tmp/t.log"; echo "FAIL: speed-report --quick --parts torch exited $rc"; exit 1; }
  md=$tmp/t/speed.md
  check_md "$md" '^\*\*Machine:\*\* .+ CPUs.*OpenBLAS.*load average' "machine line"
  check_md "$md" '^\| layer \| threads \| torch ms/batch \| ilbench ms/batch \| speed-up \| median-based \|$' "torch table header"
  for t in 1 2; do
    for l in fp/unroll newton/implicit; do
      check_md "$md" "^\| $l \| $t \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \|$" "torch row $l, $t threads"
    done
    [[ -s $tmp/t/torch-t$t.csv ]] && ok "torch-t$t.csv written" || fail "no $tmp/t/torch-t$t.csv"
  done
  check_md "$md" '^scripts/bench-vs-torch --batches 5 --layers fp/unroll,newton/implicit --repeats 1 --threads 2 ' "torch command listed"
  # ilbench failing inside bench-vs-torch (which prints torch's numbers alone and exits 1): the step fails
  printf '#!/usr/bin/env bash\nif [[ $1 == train ]]; then echo "ilbench train: error: injected" >&2; exit 1; fi\nexec "%s" "$@"\n' \
    "$ILB" >"$tmp/ilbench-train-fails"
  chmod +x "$tmp/ilbench-train-fails"
  out=$(ILBENCH=$tmp/ilbench-train-fails "$SR" --quick --parts torch --threads 1 --out "$tmp/tf" 2>&1); rc=$?
  if [[ $rc == 1 && $out == *"step 'torch (bench-vs-torch, threads 1)' failed"*"injected"* ]]; then
    ok "ilbench failing inside bench-vs-torch fails the torch step"
  else
    fail "ilbench failing inside bench-vs-torch: exit $rc: $out"
  fi
  [[ ! -e $tmp/tf/speed.md ]] || fail "speed.md written after the torch step failed"
  ((fails == 0)) || { echo "--- speed-report output:"; cat "$tmp/t.log"; echo "$fails check(s) failed"; exit 1; }
  echo "all torch checks passed"
  exit 0
fi

# 1. bad options: exit 2, a message naming the problem, nothing run
bad() {  # EXPECTED-MESSAGE ARGS...
  local want=$1 out rc
  shift
  out=$(ILBENCH=$ILB "$SR" "$@" --out "$tmp/never" 2>&1); rc=$?
  if [[ $rc == 2 && $out == *"$want"* ]]; then ok "speed-report $* -> exit 2"; else fail "speed-report $*: exit $rc, output: $out"; fi
}
bad "unknown option '--bogus'" --bogus
bad "unknown option 'extra'" extra
bad "--repeat: '0' is not a positive integer" --repeat 0
bad "--threads: '1,,2'" --threads 1,,2
bad "--parts: unknown part 'gpu'" --parts layer,gpu
out=$(ILBENCH=$ILB "$SR" --quick --out 2>&1); rc=$?
[[ $rc == 2 && $out == *"--out needs a value"* ]] && ok "speed-report --quick --out -> exit 2" || fail "speed-report --quick --out: exit $rc: $out"
bad "never go into README.md" --quick --readme
[[ ! -e $tmp/never ]] && ok "bad options create no output dir" || fail "a refused run created $tmp/never"
"$SR" --help | grep -q -- '--quick' && ok "--help prints the usage" || fail "--help does not mention --quick"

# 2. the quick run: layer and training parts (torch: forced missing, must be a note, not a failure)
ILBENCH=$ILB PYTHON=$tmp/no-python "$SR" --quick --out "$tmp/q" >"$tmp/q.log" 2>&1
rc=$?
if [[ $rc != 0 ]]; then cat "$tmp/q.log"; echo "FAIL: speed-report --quick exited $rc"; exit 1; fi
md=$tmp/q/speed.md
[[ -s $md ]] || { cat "$tmp/q.log"; echo "FAIL: no $md"; exit 1; }
cpu=$(sed -n '/^model name/{s/^model name[[:space:]]*:[[:space:]]*//;p;q;}' /proc/cpuinfo)
if [[ -n $cpu ]] && ! grep -qF -- "**Machine:** $cpu" "$md"; then fail "the machine line does not start with the CPU model '$cpu'"; fi
check_md "$md" "^\*\*Machine:\*\* .+, $(nproc) CPUs.*; (AVX-512 \(avx512f\)|AVX2, no AVX-512|neither AVX2 nor AVX-512); OpenBLAS [0-9.]+.*; load average \(1 min\) [0-9.]+ at the start, [0-9.]+ at the end; " "machine line (CPU, CPUs, SIMD, OpenBLAS, load)"
simd=$(grep -m1 '^flags' /proc/cpuinfo | grep -qw avx512f && echo 'AVX-512 (avx512f)' || true)
[[ -z $simd ]] || grep -qF "$simd" "$md" && ok "SIMD level as in /proc/cpuinfo" || fail "the machine line lacks $simd"
check_md "$md" '^\*A `--quick` run\*|^\*\*A `--quick` run\*\*' "quick runs are marked as such"
check_md "$md" '^\*n = 100, batch 100\* \(ceiling: the \(100, 100\) × \(100, 100\) sgemm, [0-9.]+ .*GFLOP/s at 1 thread; [0-9.]+ .*GFLOP/s at 2 threads\):$' "ceiling line of n = 100 at 1 and 2 threads"
check_md "$md" '^\| pair \| threads \| forward ms \| GFLOP/s \| of the ceiling \| backward ms \| GFLOP/s \| of the ceiling \| ceiling GFLOP/s \| iterations fwd / bwd \| par\. eff\. \|$' "layer table header"
num='[0-9.]+( \([0-9.]+–[0-9.]+\))?'
for pair in fp/unroll fp/implicit newton/unroll newton/implicit anderson/implicit broyden/implicit; do
  for t in 1 2; do
    check_md "$md" "^\| $pair \| $t \| $num \| [0-9.]+ \| [0-9.]+ \| $num \| [0-9.]+ \| [0-9.]+ \| $num \| [0-9]+ / [0-9]+" "layer row $pair, $t threads"
  done
done
check_md "$md" 'same interleaved rounds' "says the thread counts were interleaved (this ilbench's --threads takes a list)"
check_md "$md" '^build/release/bench/ilbench layer --solver fp,newton,anderson,broyden --backward unroll,implicit --hidden 100 .*--threads 1,2 --csv ' "one layer command with --threads 1,2"
check_md "$md" '^\| fp/unroll \| 1 \| .* \| 1\.00 \|$' "par. eff. of a 1-thread row is 1.00"
check_md "$md" '^\| newton/implicit \| 2 \| .* \| [0-9]\.[0-9]{2} \|$' "par. eff. of a 2-thread row"
check_md "$md" "^- torch: skipped, torch is not importable by $tmp/no-python" "missing torch: a note, not a failure"

# the numbers in the layer table are the CSV's (columns by name) and the fractions are rate/ceiling
$PY - "$SRC" "$tmp/q" <<'PY' || fail "layer numbers in speed.md differ from the CSV"
import csv, sys
sys.path.insert(0, sys.argv[1] + "/analysis")
from speed_report import sig
d = sys.argv[2]
md = open(d + "/speed.md").read().splitlines()
bad = 0
def rows_at(t):  # one interleaved run (layer.csv, a threads column) or one run per count (layer-tT.csv)
    import os
    if os.path.exists(f"{d}/layer.csv"):
        return [r for r in csv.DictReader(open(f"{d}/layer.csv")) if int(r["threads"]) == t]
    return list(csv.DictReader(open(f"{d}/layer-t{t}.csv")))
for t in (1, 2):
    for r in rows_at(t):
        row = next((l for l in md if l.startswith(f"| {r['solver']}/{r['backward']} | {t} |")), None)
        cells = [c.strip() for c in row.strip("|").split("|")] if row else []
        want = {2: sig(float(r["fwd_ms"])), 3: sig(float(r["fwd_GF/s"])), 5: sig(float(r["bwd_ms"])),
                8: sig(float(r["sgemm_GF/s"]))}
        for i, v in want.items():
            if len(cells) <= i or not cells[i].startswith(v):
                print(f"row {r['solver']}/{r['backward']} T={t}: cell {i} is {cells[i] if len(cells) > i else None}, want {v}")
                bad += 1
        frac = float(r["fwd_GF/s"]) / float(r["sgemm_GF/s"])
        if len(cells) > 4 and abs(float(cells[4]) - frac) > 0.011:
            print(f"row {r['solver']}/{r['backward']} T={t}: forward fraction {cells[4]}, want {frac:.2f}"); bad += 1
sys.exit(1 if bad else 0)
PY
ok "layer numbers checked against the layer CSV"

if ((have_data)); then
  check_md "$md" '^\| pair \| threads \| batches \| GFLOP counted \| s in the steps \| GFLOP/s \| ceiling GFLOP/s \| of the ceiling \|$' "training table header"
  for pair in fp/unroll newton/implicit; do
    check_md "$md" "^\| $pair \| 1 \| 20 \| [0-9.]+ \| [0-9.]+ \| [0-9.]+ \| $num \| [0-9]\.[0-9]{2} \|$" "training row $pair"
  done
  # the counted GFLOP and the time: an independent parse of the events table (awk), and fraction = rate / ceiling
  for sb in fp-unroll newton-implicit; do
    read -r gf ts < <(awk '/# events \(/ { on = 1; next } on && $2 ~ /^(fwd_solve|bwd_solve|head|allreduce|update)$/ { g += $6; t += $4 }
                          END { printf "%.1f %.3f\n", g, t }' "$tmp/q/train-$sb.txt")
    row=$(grep "^| ${sb/-//} | 1 | 20 |" "$md")
    $PY - "$row" "$gf" "$ts" "$tmp/q" <<'PY' && ok "training row ${sb/-//}: GFLOP $gf in $ts s, fraction of the ceiling" || fail "training row ${sb/-//} ($row) does not match its events table (GFLOP $gf, $ts s) and the ceiling"
import csv, sys
c = [x.strip() for x in sys.argv[1].strip("|").split("|")]
gf, ts = float(sys.argv[2]), float(sys.argv[3])
import os
d = sys.argv[4]
src = f"{d}/layer.csv" if os.path.exists(f"{d}/layer.csv") else f"{d}/layer-t1.csv"
ceil = float(next(r for r in csv.DictReader(open(src)) if r["hidden"] == "100" and r.get("threads", "1") == "1")["sgemm_GF/s"])
rate = float(c[5])
assert c[3] == f"{gf:.1f}" and c[4] == f"{ts:.3f}", (c, gf, ts)
assert abs(rate - gf / ts) <= 0.02 * rate + 0.1, (rate, gf / ts)
assert abs(float(c[7]) - rate / ceil) <= 0.011, (c[7], rate / ceil)
PY
  done
  check_md "$md" '^build/release/bench/ilbench train --solver fp --backward unroll --hidden 100 --epochs 1 --max-batches 20 --test-batches 0 --log-view --threads 1 ' "training command listed"
else
  check_md "$md" '^- train: skipped, no MNIST' "no MNIST: the training part is skipped with a note"
fi

# 3. a failing sub-run: exit 1 naming the step; the README (a copy) untouched; no speed.md
cp "$SRC/README.md" "$tmp/README.copy"
cp "$tmp/README.copy" "$tmp/README.orig"
cat >"$tmp/ilbench-fails" <<EOF
#!/usr/bin/env bash
if [[ \$1 == layer && " \$* " != *" --help "* ]]; then echo "ilbench layer: error: injected failure" >&2; exit 1; fi
exec "$ILB" "\$@"
EOF
chmod +x "$tmp/ilbench-fails"
out=$(ILBENCH=$tmp/ilbench-fails "$SR" --quick --parts layer --readme-file "$tmp/README.copy" --out "$tmp/f" 2>&1); rc=$?
if [[ $rc == 1 && $out == *"step 'layer (threads 1"*"' failed"* && $out == *"injected failure"* ]]; then
  ok "a failing layer run: exit 1, the message names the step and shows its error"
else
  fail "a failing layer run: exit $rc, output: $out"
fi
cmp -s "$tmp/README.copy" "$tmp/README.orig" && ok "README untouched after the failure" || fail "the README copy changed after a failed run"
[[ ! -e $tmp/f/speed.md ]] && ok "no speed.md after the failure" || fail "a failed run wrote speed.md"
ls "$tmp"/*.tmp >/dev/null 2>&1 && fail "a temporary file was left next to the README" || true

# 4. an ilbench whose layer --threads takes one number (an older build): one run per thread count
cat >"$tmp/ilbench-single" <<EOF
#!/usr/bin/env bash
real="$ILB"
if [[ \$1 == layer && " \$* " == *" --help "* ]]; then
  "\$real" "\$@" | sed 's/^\(  --threads N *\).*/\1threads [default: 1]/'
  exit \${PIPESTATUS[0]}
fi
exec "\$real" "\$@"
EOF
chmod +x "$tmp/ilbench-single"
ILBENCH=$tmp/ilbench-single "$SR" --quick --parts layer --out "$tmp/l" >"$tmp/l.log" 2>&1
rc=$?
if [[ $rc == 0 ]]; then
  ok "speed-report with a one-number --threads"
  md=$tmp/l/speed.md
  [[ $(grep -c '^[^ ]*ilbench-single layer ' "$md") == 2 ]] && ok "one layer command per thread count" || fail "not two layer commands in $md"
  check_md "$md" "as its own \`ilbench layer\`" "says the thread counts were separate runs"
else
  cat "$tmp/l.log"; fail "speed-report with a one-number --threads exited $rc"
fi

# 5. --render --readme-file: only the text between the markers changes, and a second render is a no-op
[[ $(grep -cx '<!-- speed-report:begin -->' "$SRC/README.md") == 1 && $(grep -cx '<!-- speed-report:end -->' "$SRC/README.md") == 1 ]] &&
  ok "README.md has one pair of speed-report markers" || fail "README.md lacks exactly one pair of speed-report markers"
if "$SR" --render "$tmp/q" --readme-file "$tmp/README.copy" >"$tmp/r.log" 2>&1; then
  strip() { awk '/^<!-- speed-report:begin -->$/ { print; skip = 1 } /^<!-- speed-report:end -->$/ { skip = 0 } !skip' "$1"; }
  cmp -s <(strip "$tmp/README.copy") <(strip "$tmp/README.orig") && ok "--render --readme-file: the text outside the markers is unchanged" ||
    fail "--render --readme-file changed text outside the markers"
  grep -qF '**Machine:**' "$tmp/README.copy" && ok "the section is in the README copy" || fail "no machine line in the README copy"
  cp "$tmp/README.copy" "$tmp/README.once"
  "$SR" --render "$tmp/q" --readme-file "$tmp/README.copy" >/dev/null 2>&1 && cmp -s "$tmp/README.copy" "$tmp/README.once" &&
    ok "a second render gives the same README" || fail "a second render changed the README again"
else
  cat "$tmp/r.log"; fail "speed-report --render --readme-file failed"
fi
out=$("$SR" --render "$tmp/q" --readme 2>&1); rc=$?
[[ $rc == 2 && $out == *"--quick run"* ]] && ok "a --quick run is never rendered into README.md" || fail "--render QUICK --readme: exit $rc: $out"

if ((fails)); then echo "--- speed-report --quick output:"; cat "$tmp/q.log"; echo "$fails check(s) failed"; exit 1; fi
echo "all checks passed"
