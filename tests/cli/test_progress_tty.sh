#!/usr/bin/env bash
# Progress and end-of-run output of `ilbench train` and `ilbench sweep`:
#   - a TTY run of train (under `script` from util-linux, which gives the program a
#     pseudo-terminal) draws the in-epoch progress bar on stderr: step n/N, steps/s,
#     ETA, running loss and iterations;
#   - a piped run writes nothing of it: stderr stays empty, no carriage return or
#     escape sequence reaches stdout;
#   - both end with the one-line summary (final test error, time, results file);
#   - sweep prints [k/N] with the elapsed time and an ETA per point, and its results file.
#
# usage: test_progress_tty.sh <ilbench> <source dir>
# Needs <source dir>/data/mnist (scripts/fetch-mnist) and `script`. Without either it
# exits 77 (skipped), unless ILBENCH_REQUIRE_DATA=1, which makes missing data a failure.
set -u

ILB=${1:?usage: test_progress_tty.sh <ilbench> <source dir>}
SRC=${2:?usage: test_progress_tty.sh <ilbench> <source dir>}
MNIST=$SRC/data/mnist

if [[ ! -x $ILB ]]; then
  echo "FAIL: ilbench not found or not executable: $ILB"
  exit 1
fi
for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte; do
  if [[ ! -f $MNIST/$f ]]; then
    if [[ ${ILBENCH_REQUIRE_DATA:-0} == 1 ]]; then
      echo "FAIL: $MNIST/$f is missing; run scripts/fetch-mnist (ILBENCH_REQUIRE_DATA=1 is set)"
      exit 1
    fi
    echo "SKIP: $MNIST/$f is missing; run scripts/fetch-mnist to enable this test"
    exit 77
  fi
done
if ! command -v script >/dev/null 2>&1; then
  echo "SKIP: no 'script' (util-linux / bsdutils) to run ilbench on a pseudo-terminal"
  exit 77
fi
if ! script -q -e -c true /dev/null </dev/null >/dev/null 2>&1; then
  echo "SKIP: 'script' cannot open a pseudo-terminal here"
  exit 77
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-progress.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

nfail=0
check() { # check NAME OK(0/1) [detail]
  if [[ $2 -eq 1 ]]; then
    echo "PASS  $1"
  else
    echo "FAIL  $1${3:+: $3}"
    nfail=$((nfail + 1))
  fi
}
yes_if() { "$@" && echo 1 || echo 0; }

SHORT=(--max-batches 5 --test-batches 1 --epochs 1 --data "$MNIST")
printf -v CMD '%q ' "$ILB" train "${SHORT[@]}" --out "$T/tty.h5"

echo "== train on a TTY"
# script runs the command on a pseudo-terminal (stdout and stderr both are the TTY) and
# copies what it wrote to our stdout; -e returns the command's exit status.
(cd "$T" && script -q -e -c "$CMD" /dev/null </dev/null) >"$T/tty.out" 2>"$T/tty.err"
rc=$?
check "TTY run exits 0" "$(yes_if test $rc -eq 0)" "exit $rc"
tty=$(tr -d '\r' <"$T/tty.out")
# the first step always draws (1/5); the bar carries the rate, the ETA, loss and iterations
bar=$(grep -aoE 'train 0 \[[#-]+\] [0-9]+/5 [0-9.]+ steps/s ETA [0-9]+:[0-9]{2} loss [0-9.]+ iters [0-9.]+' <<<"$tty" | head -1)
check "TTY run shows the progress bar (step n/N, steps/s, ETA, loss, iters)" "$(yes_if test -n "$bar")"
[[ -n $bar ]] && echo "      $bar"
check "TTY run: the bar is cleared before the epoch line" "$(yes_if grep -aq $'\e\\[Kepoch=0 ' "$T/tty.out")"
check "TTY run: epoch line" "$(yes_if grep -aq 'epoch=0 lr=' <<<"$tty")"
summary=$(grep -a '^# done: ' <<<"$tty")
check "TTY run: one-line summary with test_err, time and the results file" \
  "$(yes_if grep -qE "^# done: solver=fp backward=unroll epochs=1 test_err=[0-9.]+ .*time_s=[0-9.]+ results=$T/tty.h5\$" <<<"$summary")" "$summary"
[[ -n $summary ]] && echo "      $summary"

echo "== train piped"
(cd "$T" && "$ILB" train "${SHORT[@]}") >"$T/pipe.out" 2>"$T/pipe.err" | cat
rc=${PIPESTATUS[0]}
check "piped run exits 0" "$(yes_if test $rc -eq 0)" "exit $rc"
check "piped run: nothing on stderr (no progress bar)" "$(yes_if test ! -s "$T/pipe.err")" "$(head -c 200 "$T/pipe.err" | cat -v)"
check "piped run: no carriage return or escape sequence on stdout" "$(yes_if bash -c "! grep -q $'[\r\e]' '$T/pipe.out'")"
check "piped run: no progress text on stdout" "$(yes_if bash -c "! grep -q 'steps/s' '$T/pipe.out'")"
check "piped run: epoch line" "$(yes_if grep -q '^epoch=0 lr=' "$T/pipe.out")"
summary=$(grep '^# done: ' "$T/pipe.out")
check "piped run: one-line summary without a results file" \
  "$(yes_if grep -qE '^# done: solver=fp backward=unroll epochs=1 test_err=[0-9.]+ train_err=[0-9.]+ nan_batches=0 time_s=[0-9.]+$' <<<"$summary")" "$summary"
check "piped run: the summary is the last line" "$(yes_if test "$(tail -1 "$T/pipe.out")" == "$summary")"

echo "== sweep"
(cd "$T" && "$ILB" sweep --solver fp,newton --max-batches 2 --test-batches 1 --epochs 1 --data "$MNIST" \
  --out "$T/sweep.h5") >"$T/sweep.out" 2>"$T/sweep.err"
rc=$?
check "sweep exits 0" "$(yes_if test $rc -eq 0)" "exit $rc"
for k in 1 2; do
  line=$(grep -E "^# sweep \[$k/2\] done " "$T/sweep.out")
  check "sweep [$k/2] with elapsed time and ETA" \
    "$(yes_if grep -qE "^# sweep \[$k/2\] done p000$((k - 1))-[a-z]+ in [0-9.]+ s, test_err=[0-9.]+ \(elapsed [0-9]+:[0-9]{2}, ETA [0-9]+:[0-9]{2}\)$" <<<"$line")" "$line"
  [[ -n $line ]] && echo "      $line"
done
check "sweep keeps the per-run logfmt lines" "$(yes_if test "$(grep -c '^run=p000[01]-[a-z]* epoch=0 ' "$T/sweep.out")" -eq 2)"
last=$(tail -1 "$T/sweep.out")
check "sweep ends with its summary and results file" \
  "$(yes_if grep -qE "^# sweep: 2 runs completed, 0 skipped, 0 in the file earlier, in [0-9]+:[0-9]{2}; results in $T/sweep.h5\$" <<<"$last")" "$last"
check "piped sweep: nothing on stderr" "$(yes_if test ! -s "$T/sweep.err")" "$(head -c 200 "$T/sweep.err" | cat -v)"

if [[ $nfail -gt 0 ]]; then
  echo "== $nfail check(s) failed"
  exit 1
fi
echo "== all checks passed"
exit 0
