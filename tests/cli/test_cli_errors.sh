#!/usr/bin/env bash
# End-to-end CLI error handling: bad input must give a clear error on stderr that
# names the problem, and a non-zero exit (2: usage error, 1: run-time/data error).
#
# usage: test_cli_errors.sh <ilbench> <source dir>
# The data cases use <source dir>/data/mnist (scripts/fetch-mnist). If it is
# missing they fail, unless ILBENCH_ALLOW_NO_DATA=1, which skips just those cases.
set -u

ILB=${1:?usage: test_cli_errors.sh <ilbench> <source dir>}
SRC=${2:?usage: test_cli_errors.sh <ilbench> <source dir>}
MNIST=$SRC/data/mnist
FILES=(train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte t10k-labels-idx1-ubyte)

if [[ ! -x $ILB ]]; then
  echo "FAIL: ilbench not found or not executable: $ILB"
  exit 1
fi

T=$(mktemp -d "${TMPDIR:-/tmp}/ilbench-cli-errors.XXXXXX") || exit 1
trap 'rm -rf "$T"' EXIT

npass=0
nfail=0
nskip=0
failed=()

pass() { echo "PASS  $1"; npass=$((npass + 1)); }
fail() {
  echo "FAIL  $1: $2"
  nfail=$((nfail + 1))
  failed+=("$1")
}
skip() { echo "SKIP  $1: $2"; nskip=$((nskip + 1)); }

# run ARGS...: runs ilbench (10 s limit) from $T; sets rc, out, err, secs.
run() {
  local t0 t1
  t0=$(date +%s%N)
  (cd "$T" && timeout 10 "$ILB" "$@") >"$T/stdout" 2>"$T/stderr"
  rc=$?
  t1=$(date +%s%N)
  secs=$(((t1 - t0) / 1000000))  # milliseconds, despite the name
  out=$(cat "$T/stdout")
  err=$(cat "$T/stderr")
}

show() {
  echo "      command: ilbench $*"
  echo "      exit:    $rc"
  sed 's/^/      stderr:  /' "$T/stderr" | head -5
  sed 's/^/      stdout:  /' "$T/stdout" | head -3
}

# expect_err NAME RC PHRASE... -- ARGS...
# ilbench ARGS must exit with exactly RC, print every PHRASE (fixed strings) on
# stderr together with "error", and not put the error on stdout.
expect_err() {
  local name=$1 want=$2
  shift 2
  local phrases=()
  while [[ $# -gt 0 && $1 != -- ]]; do
    phrases+=("$1")
    shift
  done
  shift # --
  run "$@"
  local why=""
  if [[ $rc -eq 124 || $rc -eq 137 ]]; then
    why="timed out after 10 s"
  elif [[ $rc -ge 128 ]]; then
    why="killed by signal $((rc - 128)) (crash)"
  elif [[ $rc -ne $want ]]; then
    why="exit code $rc, expected $want"
  elif ! grep -q "error" <<<"$err"; then
    why="stderr has no 'error'"
  elif grep -q "error:" <<<"$out"; then
    why="error message on stdout instead of stderr"
  else
    local p
    for p in "${phrases[@]}"; do
      if ! grep -qF -- "$p" <<<"$err"; then
        why="stderr does not mention '$p'"
        break
      fi
    done
  fi
  if [[ -n $why ]]; then
    fail "$name" "$why"
    show "$@"
  else
    pass "$name"
  fi
}

have_data=1
for f in "${FILES[@]}"; do
  [[ -f $MNIST/$f ]] || have_data=0
done

# Options that would make a valid run quick, so a wrongly accepted bad input
# cannot hide behind a long training run. The usage cases also point --data at
# the real data (when there is any), so that an accepted bad option shows up as
# a run that succeeds rather than as an unrelated data error.
QD=(--max-batches 1 --test-batches 1 --epochs 1)
DATA=()
[[ $have_data -eq 1 ]] && DATA=(--data "$MNIST")
Q=("${QD[@]}" "${DATA[@]}")

echo "== usage errors"
expect_err "unknown subcommand" 2 "unknown command 'bogus'" "train, sweep, merge, layer, gradcheck, info" -- bogus
expect_err "unknown top-level option" 2 "'--bogus'" "train, sweep, merge, layer, gradcheck, info" -- --bogus
run
if [[ $rc -eq 2 ]] && grep -q '^usage: ilbench <command>' <<<"$err" && [[ -z $out ]]; then
  pass "no subcommand: usage on stderr, exit 2"
else
  fail "no subcommand: usage on stderr, exit 2" "exit $rc"
  show
fi
expect_err "unknown option --sovler: did you mean" 2 "'--sovler'" "did you mean '--solver'?" "train --help" -- train --sovler fp "${Q[@]}"
if grep -qF -- "--log-steps" <<<"$err"; then
  fail "unknown option: no dump of every option" "stderr lists unrelated options"
  show train --sovler fp "${Q[@]}"
else
  pass "unknown option: no dump of every option"
fi
expect_err "unknown option --bogus: no suggestion, points to --help" 2 "'--bogus'" "ilbench train --help" -- train --bogus "${Q[@]}"
if grep -q "did you mean" <<<"$err"; then fail "--bogus gets no suggestion" "$err"; else pass "--bogus gets no suggestion"; fi
expect_err "unknown option by prefix --max" 2 "'--max'" "did you mean" "'--max-iter'" "'--max-batches'" -- train --max 3 "${Q[@]}"
expect_err "unknown option --epoch (near miss)" 2 "did you mean '--epochs'?" -- train --epoch 1 "${Q[@]}"
expect_err "single-dash long option -solver" 2 "'-solver'" "did you mean '--solver'?" -- train -solver fp "${Q[@]}"
expect_err "short option -x" 2 "'-x'" "options are long" -- train -x
expect_err "sweep unknown option --sed" 2 "did you mean '--seed'?" -- sweep --sed 1,2 "${Q[@]}"
expect_err "layer unknown option --hiden" 2 "did you mean '--hidden'?" -- layer --hiden 8
expect_err "unknown command trian" 2 "unknown command 'trian'" "did you mean 'train'?" -- trian
expect_err "unknown top-level option --verison" 2 "'--verison'" "did you mean '--version'?" -- --verison
expect_err "did you mean: --solver nweton" 2 "'nweton'" "did you mean 'newton'?" -- train --solver nweton "${Q[@]}"
expect_err "did you mean: --backward implcit" 2 "'implcit'" "did you mean 'implicit'?" -- train --backward implcit "${Q[@]}"
expect_err "did you mean: --backward phantm:3" 2 "did you mean 'phantom:3'?" -- train --backward phantm:3 "${Q[@]}"
expect_err "did you mean: --device gpu" 2 "'gpu'" "did you mean 'cpu'?" -- train --device gpu "${Q[@]}"
expect_err "did you mean: layer --cell tnah" 2 "'tnah'" "did you mean 'tanh'?" -- layer --cell tnah --hidden 4 --repeat 1
expect_err "did you mean: layer --solver andersen" 2 "did you mean 'anderson'?" -- layer --solver fp,andersen --hidden 4 --repeat 1
expect_err "did you mean: gradcheck --solver broydn" 2 "did you mean 'broyden'?" -- gradcheck --solver broydn
expect_err "did you mean: sweep --solver fp,nwton" 2 "did you mean 'newton'?" -- sweep --solver fp,nwton "${Q[@]}"
expect_err "did you mean: choice --sech2 sede" 2 "'sede'" "did you mean 'seed'?" "stable|seed" -- train --sech2 sede "${Q[@]}"
expect_err "did you mean: choice --stop-mode relative (prefix)" 2 "did you mean 'rel'?" -- train --stop-mode relative "${Q[@]}"
expect_err "did you mean: option choice --adjoint-solver gmrse" 2 "did you mean 'gmres'?" -- train --backward implicit --adjoint-solver gmrse "${Q[@]}"
expect_err "far-off value gets no suggestion" 2 "'bogus'" "fp, newton" -- train --solver bogus "${Q[@]}"
if grep -q "did you mean" <<<"$err"; then fail "--solver bogus gets no suggestion" "$err"; else pass "--solver bogus gets no suggestion"; fi

echo "== -h, --help, --version"
# expect_ok NAME PHRASE... -- ARGS...: exit 0, every PHRASE on stdout, stderr empty.
expect_ok() {
  local name=$1
  shift
  local phrases=()
  while [[ $# -gt 0 && $1 != -- ]]; do
    phrases+=("$1")
    shift
  done
  shift # --
  run "$@"
  local why="" p
  if [[ $rc -ne 0 ]]; then
    why="exit code $rc, expected 0"
  elif [[ -n $err ]]; then
    why="stderr is not empty"
  else
    for p in "${phrases[@]}"; do
      if ! grep -qF -- "$p" <<<"$out"; then
        why="stdout does not mention '$p'"
        break
      fi
    done
  fi
  if [[ -n $why ]]; then
    fail "$name" "$why"
    show "$@"
  else
    pass "$name"
  fi
}
expect_ok "ilbench -h" "usage: ilbench <command>" "train" "version" -- -h
for c in train sweep merge layer gradcheck info selftest version; do
  expect_ok "$c -h" "usage: ilbench $c" -- $c -h
  help_out=$out
  run "$c" --help
  if [[ $rc -eq 0 && $out == "$help_out" ]]; then pass "$c -h is $c --help"; else fail "$c -h is $c --help" "outputs differ (exit $rc)"; fi
done
expect_ok "train --help: metavars" "--tol TOL" "--solver NAME" "--backward MODE" "--out FILE" -- train --help
expect_ok "train --help: valid solvers, backward modes, devices" "fp|newton|newton-ls|anderson|broyden" \
  "unroll|implicit|phantom:K|jfb" "cpu|cpu-guard" "solvers (--solver):" "backward modes (--backward):" "devices (--device):" -- train --help
expect_ok "layer --help: valid cells" "cells (--cell):" "tanh" "relu" -- layer --help
expect_ok "sweep --help: valid solvers" "solvers (--solver):" "anderson" -- sweep --help
version_phrases=("ilbench " "(git " "build " "precisions" "float32" "float64" "CUDA" "OpenMP" "sanitizers")
expect_ok "--version" "${version_phrases[@]}" -- --version
version_out=$out
expect_ok "ilbench version" "${version_phrases[@]}" -- version
if [[ $out == "$version_out" ]]; then pass "version is --version"; else fail "version is --version" "outputs differ"; fi
if grep -qE -- "-march=native|portable" <<<"$out"; then pass "version names -march=native or portable"; else fail "version names -march=native or portable" "$out"; fi
expect_ok "info starts with the version" "ilbench " "build " "solvers" -- info
expect_err "version extra" 2 "'extra'" -- version extra

echo "== --out directory"
expect_err "train --out in a missing directory" 2 "directory '$T/nodir/' of --out does not exist" -- train --out "$T/nodir/run.h5" "${Q[@]}"
if grep -qiE "mpi|hdf5|H5F" <<<"$err"; then fail "missing --out directory: no MPI-IO/HDF5 message" "$err"; else pass "missing --out directory: no MPI-IO/HDF5 message"; fi
if [[ -e $T/nodir ]]; then fail "missing --out directory is not created" "$T/nodir exists"; else pass "missing --out directory is not created"; fi
expect_err "train --out missing directory, without data" 2 "directory 'nodir/sub/' of --out does not exist" -- train --out nodir/sub/run.h5 "${QD[@]}" --data /nonexistent/dir
expect_err "sweep --out in a missing directory" 2 "directory '$T/nodir/' of --out does not exist" -- sweep --solver fp,newton --out "$T/nodir/s.h5" "${Q[@]}"
expect_err "merge -o in a missing directory" 2 "directory '$T/nodir/' of the output (-o) does not exist" -- merge a.h5 b.h5 -o "$T/nodir/m.h5"
mkdir -p "$T/isdir"
expect_err "train --out is a directory" 2 "--out '$T/isdir' is a directory" -- train --out "$T/isdir" "${Q[@]}"
: >"$T/afile"
expect_err "train --out under a plain file" 2 "'$T/afile' of --out is not a directory" -- train --out "$T/afile/run.h5" "${Q[@]}"
expect_err "option missing its value" 2 "--solver" "needs a value" -- train "${Q[@]}" --solver
expect_err "option with empty value" 2 "--tol" "empty" -- train --tol "" "${Q[@]}"
expect_err "option given twice" 2 "--epochs" "twice" -- train --epochs 1 "${Q[@]}"
expect_err "stray positional argument" 2 "'extra'" -- train extra "${Q[@]}"
expect_err "--help with a value" 2 "--help" -- train --help=1
expect_err "unknown solver" 2 "'bogus'" "fp, newton" -- train --solver bogus "${Q[@]}"
expect_err "unknown backward mode" 2 "'bogus'" "unroll, implicit" -- train --backward bogus "${Q[@]}"
expect_err "--tol -1" 2 "--tol" "positive" "-1" -- train --tol -1 "${Q[@]}"
expect_err "--tol 0" 2 "--tol" "positive" -- train --tol 0 "${Q[@]}"
expect_err "--tol abc" 2 "--tol" "'abc'" "not a finite number" -- train --tol abc "${Q[@]}"
expect_err "--tol 1e-4x" 2 "--tol" "'1e-4x'" -- train --tol 1e-4x "${Q[@]}"
expect_err "--tol nan" 2 "--tol" "'nan'" -- train --tol nan "${Q[@]}"
expect_err "--tol inf" 2 "--tol" "'inf'" -- train --tol inf "${Q[@]}"
expect_err "--lr 0" 2 "--lr" "positive" -- train --lr 0 "${Q[@]}"
expect_err "--hidden 0" 2 "--hidden" "0 is out of range" -- train --hidden 0 "${Q[@]}"
expect_err "--hidden 1.5" 2 "--hidden" "'1.5'" "not an integer" -- train --hidden 1.5 "${Q[@]}"
expect_err "--hidden 12abc" 2 "--hidden" "'12abc'" -- train --hidden 12abc "${Q[@]}"
expect_err "--hidden 2^75 (strtol overflow)" 2 "--hidden" "99999999999999999999999" -- train --hidden 99999999999999999999999 "${Q[@]}"

# Too large to allocate: refused up front, quickly, without trying to allocate.
# 2000000000 is above the parser's range; 20000 is in range but needs ~300 GiB;
# 1000000000 is in range and its Jacobian size overflows size_t arithmetic.
for h in 2000000000 1000000000 20000; do
  case $h in
    20000) ph=("--hidden 20000" "GiB") ;;
    *) ph=("--hidden" "$h") ;;
  esac
  expect_err "--hidden $h (too large)" 2 "${ph[@]}" -- train --hidden $h "${Q[@]}"
  if [[ $rc -lt 128 && $secs -gt 2000 ]]; then
    fail "--hidden $h refused quickly" "took ${secs} ms (limit 2000 ms)"
  else
    pass "--hidden $h refused quickly (${secs} ms)"
  fi
done

expect_err "--batch 0" 2 "--batch" "0 is out of range" -- train --batch 0 "${Q[@]}"
expect_err "--epochs -1" 2 "--epochs" "-1 is out of range" -- train --epochs -1 --max-batches 1 --test-batches 1 "${DATA[@]}"
expect_err "--max-batches 0" 2 "--max-batches" -- train --max-batches 0 --test-batches 1 --epochs 1 "${DATA[@]}"
expect_err "--threads 0" 2 "--threads" -- train --threads 0 "${Q[@]}"
expect_err "--lr-drop 5 (malformed)" 2 "--lr-drop" "'5'" "EPOCH:LR" -- train --lr-drop 5 "${Q[@]}"
expect_err "--lr-drop 5:abc" 2 "--lr-drop" "'abc'" -- train --lr-drop 5:abc "${Q[@]}"
expect_err "--lr-drop trailing comma" 2 "--lr-drop" -- train --lr-drop 5:0.01, "${Q[@]}"
expect_err "--zero-nonconverged maybe" 2 "'maybe'" "auto|yes|no" -- train --zero-nonconverged maybe "${Q[@]}"
expect_err "--device gpu" 2 "'gpu'" "valid: cpu, cpu-guard" -- train --device gpu "${Q[@]}"
expect_err "layer --device gpu" 2 "'gpu'" "cpu-guard" -- layer --device gpu --hidden 4 --repeat 1
expect_err "layer --cell sigmoid" 2 "'sigmoid'" "tanh, relu" -- layer --cell sigmoid --hidden 4 --repeat 1
backends=$("$ILB" info 2>/dev/null | sed -n '/^devices/,/^BLAS/p')
if grep -qi cuda <<<"$backends" && ! grep -qi 'not built' <<<"$backends"; then
  skip "--device cuda on a CPU-only build" "this build seems to have CUDA (ilbench info)"
else
  expect_err "--device cuda on a CPU-only build" 2 "--device cuda" "no CUDA" -- train --device cuda "${Q[@]}"
fi

echo "== solver zoo: pairs and per-solver options"
expect_err "anderson cannot unroll" 2 "--backward unroll" "--solver anderson" "implicit, phantom:K or jfb" -- train --solver anderson --backward unroll "${Q[@]}"
expect_err "option for another solver" 2 "'anderson-m'" "solver fp" -- train --anderson-m 3 "${Q[@]}"
expect_err "--anderson-m 0" 2 "anderson-m" "out of range" -- train --solver anderson --backward implicit --anderson-m 0 "${Q[@]}"
expect_err "--fp-tau 1.5" 2 "fp-tau" "out of range" -- train --fp-tau 1.5 "${Q[@]}"
expect_err "--ls-c1 abc" 2 "ls-c1" "'abc'" -- train --solver newton-ls --ls-c1 abc "${Q[@]}"
expect_err "--adjoint-solver cg" 2 "adjoint-solver" "'cg'" "lu|fp|anderson|gmres" -- train --backward implicit --adjoint-solver cg "${Q[@]}"
expect_err "--adjoint-tol with the lu adjoint" 2 "'adjoint-tol'" -- train --backward implicit --adjoint-tol 1e-8 "${Q[@]}"
expect_err "--adjoint-solver with unroll" 2 "'adjoint-solver'" "backward unroll" -- train --adjoint-solver gmres "${Q[@]}"
expect_err "--backward phantom:0" 2 "phantom-k" "out of range" -- train --backward phantom:0 "${Q[@]}"
expect_err "--backward jfb:2" 2 "jfb" "takes no ':' argument" -- train --backward jfb:2 "${Q[@]}"
expect_err "--stop-mode relative" 2 "'relative'" "abs|rel" -- train --stop-mode relative "${Q[@]}"
expect_err "--divtol 0.5" 2 "--divtol" "0.5" -- train --divtol 0.5 "${Q[@]}"
expect_err "--best with unroll" 2 "lowest-residual" "unroll" -- train --best "${Q[@]}"
expect_err "--best rows" 2 "--best" "'rows'" "batch|sample" -- train --best rows --backward implicit "${Q[@]}"
expect_err "--stop-norm l2" 2 "--stop-norm" "'l2'" "frob|max|mean" -- train --stop-norm l2 "${Q[@]}"
expect_err "--stop-norm max with --stop sample" 2 "--stop-norm max" "--stop sample" -- train --stop-norm max --stop sample "${Q[@]}"
expect_err "--best sample with --stop sample" 2 "batch stopping" -- train --best sample --backward implicit --stop sample "${Q[@]}"
expect_err "--sech2 cosh" 2 "'cosh'" "stable|seed" -- train --sech2 cosh "${Q[@]}"
expect_err "per-sample stop with broyden" 2 "broyden" "per-sample" -- train --stop sample --solver broyden --backward implicit "${Q[@]}"
expect_err "--diag -1" 2 "--diag" -- train --diag -1 "${Q[@]}"
expect_err "--adjoint-refine with gmres" 2 "--adjoint-refine" "--adjoint-solver lu" -- train --backward implicit --adjoint-solver gmres --adjoint-refine 5 "${Q[@]}"
expect_err "--adjoint-refine with phantom" 2 "--adjoint-refine" "phantom:3" -- train --backward phantom:3 --adjoint-refine 7 "${Q[@]}"
expect_err "--sech2 seed with anderson" 2 "sech^2" "'anderson'" -- train --solver anderson --backward implicit --sech2 seed "${Q[@]}"
expect_err "gradcheck --adjoint-solver foo" 2 "--adjoint-solver" "'foo'" -- gradcheck --solver anderson --adjoint-solver foo
expect_err "gradcheck --adjoint-tol with unroll" 2 "--adjoint-tol" "unroll" -- gradcheck --backward unroll --adjoint-tol 1e-9
expect_err "gradcheck unroll through anderson" 2 "not supported" -- gradcheck --solver anderson --backward unroll
expect_err "layer option no pair takes" 2 "--anderson-m" "none of" -- layer --solver fp --anderson-m 3
expect_err "sweep option no point takes" 2 "--anderson-m" "none of" -- sweep --solver fp,newton --anderson-m 3 "${Q[@]}"
expect_err "gradcheck option for another solver" 2 "'ls-c1'" -- gradcheck --solver fp --ls-c1 0.1

echo "== layer, gradcheck, info"
expect_err "layer --hidden 0" 2 "--hidden" "0 is out of range" -- layer --hidden 0
expect_err "layer --hidden 64,0" 2 "--hidden" "0 is out of range" -- layer --hidden 64,0
expect_err "layer --solver nope" 2 "'nope'" "fp, newton" -- layer --solver nope
expect_err "layer --backward implicit,bogus" 2 "'bogus'" "unroll, implicit" -- layer --backward implicit,bogus
expect_err "layer --tol 1e-2,,1e-4" 2 "--tol" "empty item" -- layer --tol 1e-2,,1e-4
expect_err "layer --solver trailing comma" 2 "--solver" -- layer --solver fp, --hidden 8 --repeat 1 --warmup 0
expect_err "layer --tol -1" 2 "--tol" "positive" -- layer --tol -1
expect_err "layer --batch 0" 2 "--batch" -- layer --batch 0
expect_err "layer --threads 1,0" 2 "--threads" "0 is out of range" -- layer --threads 1,0
# shellcheck disable=SC2054 # commas are inside option values
expect_ok "layer --threads 1,2: par_eff against T = 1" "threads 1, 2 (threads bound to cpus" "par_eff" \
  -- layer --hidden 16 --batch 32 --repeat 2 --rounds 2 --warmup 0 --threads 1,2
expect_err "gradcheck --backward nope" 2 "'nope'" "all, unroll, implicit" -- gradcheck --backward nope
expect_err "gradcheck --solver nope" 2 "'nope'" "fp, newton" -- gradcheck --solver nope
expect_err "gradcheck --tol abc" 2 "--tol" "'abc'" -- gradcheck --tol abc
expect_err "gradcheck --eps 0" 2 "--eps" "positive" -- gradcheck --eps 0
expect_err "info --bogus" 2 "'--bogus'" "--help" -- info --bogus
expect_err "info extra" 2 "'extra'" -- info extra

echo "== data errors"
expect_err "--data /nonexistent/dir" 1 "'/nonexistent/dir'" "No such file or directory" -- train "${QD[@]}" --data /nonexistent/dir
# The default --data is the relative data/mnist; $T has none.
expect_err "default data/mnist missing" 1 "'data/mnist'" "fetch-mnist" -- train "${QD[@]}"
: >"$T/plainfile"
expect_err "--data is a plain file" 1 "$T/plainfile" "Not a directory" -- train "${QD[@]}" --data "$T/plainfile"

# mkdata NAME [FILE...]: a data dir $T/NAME whose FILEs are private copies (safe to
# corrupt) and whose other files are symlinks to the real data.
mkdata() {
  local d=$T/$1 f
  shift
  mkdir -p "$d"
  for f in "${FILES[@]}"; do ln -s "$MNIST/$f" "$d/$f"; done
  for f in "$@"; do
    rm "$d/$f"
    cp "$MNIST/$f" "$d/$f"
  done
  D=$d
}
# poke FILE OFFSET HEXBYTES: overwrite bytes in place, e.g. poke f 0 'de ad be ef'
poke() {
  local b esc=""
  for b in $3; do esc+="\\x$b"; done
  printf "$esc" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none
}

if [[ $have_data -eq 0 ]]; then
  if [[ ${ILBENCH_ALLOW_NO_DATA:-0} == 1 ]]; then
    skip "data cases" "no MNIST in $MNIST and ILBENCH_ALLOW_NO_DATA=1"
  else
    fail "data cases" "no MNIST in $MNIST: run scripts/fetch-mnist (or set ILBENCH_ALLOW_NO_DATA=1 to skip)"
  fi
else
  mkdata trunc train-images-idx3-ubyte
  f=$D/train-images-idx3-ubyte
  truncate -s $(($(stat -c %s "$f") - 1000)) "$f"
  expect_err "truncated train images" 1 "$f" "truncated" "47040016" "47039016" -- train "${QD[@]}" --data "$D"

  mkdata magic t10k-labels-idx1-ubyte
  poke "$D/t10k-labels-idx1-ubyte" 0 "de ad be ef"
  expect_err "corrupt magic in t10k labels" 1 "$D/t10k-labels-idx1-ubyte" "magic" "0xdeadbeef" -- train "${QD[@]}" --data "$D"

  mkdata wrongfile train-images-idx3-ubyte
  cp "$MNIST/train-labels-idx1-ubyte" "$D/train-images-idx3-ubyte"
  expect_err "labels file in place of images" 1 "$D/train-images-idx3-ubyte" "wrong file" -- train "${QD[@]}" --data "$D"

  mkdata mismatch train-labels-idx1-ubyte
  cp "$MNIST/t10k-labels-idx1-ubyte" "$D/train-labels-idx1-ubyte"
  expect_err "train labels replaced by t10k labels (count mismatch)" 1 \
    "$D/train-images-idx3-ubyte" "$D/train-labels-idx1-ubyte" "60000 images" "10000 labels" -- train "${QD[@]}" --data "$D"

  mkdata empty train-images-idx3-ubyte
  : >"$D/train-images-idx3-ubyte"
  expect_err "empty train images file" 1 "$D/train-images-idx3-ubyte" "truncated header" "0 bytes" -- train "${QD[@]}" --data "$D"

  mkdata missingfile
  rm "$D/t10k-images-idx3-ubyte"
  expect_err "missing t10k images file" 1 "$D/t10k-images-idx3-ubyte" "No such file" -- train "${QD[@]}" --data "$D"

  mkdata trailing train-labels-idx1-ubyte
  echo junk >>"$D/train-labels-idx1-ubyte"
  expect_err "trailing bytes after train labels" 1 "$D/train-labels-idx1-ubyte" "trailing" -- train "${QD[@]}" --data "$D"

  mkdata badlabel train-labels-idx1-ubyte
  poke "$D/train-labels-idx1-ubyte" 8 "0c"
  expect_err "label value 12" 1 "$D/train-labels-idx1-ubyte" "label 12" "0..9" -- train "${QD[@]}" --data "$D"

  # Header says 29x29 images and the file size agrees: consistent idx, wrong shape.
  mkdata shape29
  rm "$D/t10k-images-idx3-ubyte"
  {
    printf '\x00\x00\x08\x03\x00\x00\x27\x10\x00\x00\x00\x1d\x00\x00\x00\x1d'
    head -c $((10000 * 29 * 29)) /dev/zero
  } >"$D/t10k-images-idx3-ubyte"
  expect_err "t10k images are 29x29" 1 "29x29" "28x28" -- train "${QD[@]}" --data "$D"

  # 14x56 has 784 pixels like 28x28, but it is not MNIST's shape.
  mkdata shape14 t10k-images-idx3-ubyte
  poke "$D/t10k-images-idx3-ubyte" 8 "00 00 00 0e 00 00 00 38"
  expect_err "t10k images are 14x56" 1 "14x56" "28x28" -- train "${QD[@]}" --data "$D"
fi

echo "== positive controls"
if [[ $have_data -eq 1 ]]; then
  mkdir -p "$T/good"
  cp "${FILES[@]/#/$MNIST/}" "$T/good/"
  run train --max-batches 2 --test-batches 1 --epochs 1 --data "$T/good"
  if [[ $rc -eq 0 ]] && grep -q '^epoch=0 ' <<<"$out" && [[ -z $(grep -i error <<<"$err") ]]; then
    pass "train on a copy of good data"
  else
    fail "train on a copy of good data" "exit $rc, or no 'epoch=0' line, or an error on stderr"
    show train --max-batches 2 --test-batches 1 --epochs 1 --data "$T/good"
  fi
else
  skip "train on a copy of good data" "no MNIST data"
fi

if [[ $have_data -eq 1 ]]; then # issue 13: --inject-nan for a rank or step that does not exist ran silently
  expect_err "--inject-nan for a rank that does not exist" 2 "--inject-nan 3:1" "no rank 3 in this world of 1" -- \
    train --max-batches 2 --test-batches 1 --epochs 1 --data "$MNIST" --inject-nan 3:1
  expect_err "--inject-nan for a step that does not exist" 2 "--inject-nan 0:4" "no step 4 (the run has 4 steps, 0..3)" -- \
    train --max-batches 2 --test-batches 1 --epochs 2 --data "$MNIST" --inject-nan 0:4
  expect_err "--wait-lock that is not a number of seconds" 2 "--wait-lock" -- \
    train --max-batches 2 --epochs 1 --data "$MNIST" --wait-lock -3
  expect_err "--checkpoint-every negative" 2 "--checkpoint-every" -- \
    train --max-batches 2 --epochs 1 --data "$MNIST" --checkpoint-every -1
  expect_err "--eval-tol zero" 2 "--eval-tol" -- train --max-batches 2 --epochs 1 --data "$MNIST" --eval-tol 0
  expect_err "--eval-max-iter zero" 2 "--eval-max-iter" -- train --max-batches 2 --epochs 1 --data "$MNIST" --eval-max-iter 0
  # the test pass takes its own limit; training does not change
  run train --max-batches 5 --test-batches 2 --epochs 1 --data "$MNIST"
  base_train=$(grep -o 'train_iters=[0-9.]*' <<<"$out")
  run train --max-batches 5 --test-batches 2 --epochs 1 --data "$MNIST" --eval-max-iter 3
  if [[ $rc -eq 0 ]] && grep -q 'test_iters=3.00 ' <<<"$out" && [[ -n $base_train ]] &&
     [[ $(grep -o 'train_iters=[0-9.]*' <<<"$out") == "$base_train" ]] && grep -q '^# eval .*max_iter 3' <<<"$out"; then
    pass "--eval-max-iter 3: the test pass stops at 3 iterations, training is unchanged ($base_train)"
  else
    fail "--eval-max-iter 3" "exit $rc, or test_iters is not 3.00, or train_iters changed from '$base_train'"
    show train --max-batches 5 --test-batches 2 --epochs 1 --data "$MNIST" --eval-max-iter 3
  fi
else
  skip "--inject-nan for a rank or step that does not exist" "no MNIST data"
fi

run gradcheck --solver newton
if [[ $rc -eq 0 ]] && grep -q 'PASS' <<<"$out" && ! grep -q 'FAIL' <<<"$out"; then
  pass "gradcheck --solver newton"
else
  fail "gradcheck --solver newton" "exit $rc, or no PASS / a FAIL in its table"
  show gradcheck --solver newton
fi

# The harness itself must notice a failing gradcheck (exit 1, FAIL in the table).
run gradcheck --solver newton --backward implicit --threshold 1e-30
if [[ $rc -eq 1 ]] && grep -q 'FAIL' <<<"$out"; then
  pass "gradcheck with an impossible threshold fails"
else
  fail "gradcheck with an impossible threshold fails" "exit $rc"
  show gradcheck --solver newton --backward implicit --threshold 1e-30
fi

echo "== special files in place of data files (issue 13: a FIFO hung train in open())"
# Each must be refused before a blocking open: exit non-zero within a few seconds (run's
# `timeout 10` turns a hang into 124, reported as "timed out"), with a message naming the file.
if [[ $have_data -eq 1 ]] && command -v mkfifo >/dev/null 2>&1; then
  mkdata fifo
  rm "$D/train-images-idx3-ubyte"
  mkfifo "$D/train-images-idx3-ubyte"
  expect_err "FIFO as train images" 1 "$D/train-images-idx3-ubyte" "FIFO" "regular file" -- train "${QD[@]}" --data "$D"
  if [[ $secs -ge 5000 ]]; then fail "FIFO as train images is refused within 5 s" "took $secs ms"; fi
  mkfifo "$T/fifo-order"
  expect_err "FIFO as --batch-order" 2 "--batch-order" "$T/fifo-order" "FIFO" -- \
    train "${QD[@]}" --data "$MNIST" --batch-order "$T/fifo-order"
  if [[ $secs -ge 5000 ]]; then fail "FIFO as --batch-order is refused within 5 s" "took $secs ms"; fi
  expect_err "character device as --init-from" 2 "--init-from" "/dev/null" "character device" -- \
    train "${QD[@]}" --data "$MNIST" --init-from /dev/null
  mkfifo "$T/fifo.h5"
  expect_err "FIFO as a merge input" 1 "$T/fifo.h5" "FIFO" -- merge "$T/fifo.h5" -o "$T/merged-fifo.h5"
  if [[ $secs -ge 5000 ]]; then fail "FIFO as a merge input is refused within 5 s" "took $secs ms"; fi
else
  skip "FIFO as train images" "no MNIST data or no mkfifo"
fi

echo "== $npass passed, $nfail failed, $nskip skipped"
if [[ $nfail -gt 0 ]]; then
  printf '   failed: %s\n' "${failed[@]}"
  exit 1
fi
exit 0
