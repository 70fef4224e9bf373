#!/usr/bin/python3
"""End-to-end tests of --trace N (the results file's optional trace table).

Run with Debian's interpreter: /usr/bin/python3 -m pytest -q tests/test_trace_table.py

Short MNIST runs of the real program (ILBENCH, default
<repo>/build/release/bench/ilbench; data at <repo>/data/mnist; skipped when
either is missing) with `train --trace 5 --out X.h5` for several solvers and
backward modes, on one rank, two ranks and two threads. The files must pass
analysis/check_schema.py, the report must draw convergence.png from them,
and the table's content must be what SCHEMA.md says, checked here with h5py
against the steps table: iterations 1..fwd_iters (0..fwd_iters for Newton) of
every traced step, the last forward residual equal to steps.fwd_residual,
rel_residual = residual / the first. Also: bad --trace values exit 2, a run
without --trace has no table, no attribute and the same step rows, and a
killed run resumed with --resume ends with the uninterrupted run's table.
"""

import os
import shutil
import signal
import struct
import subprocess
import sys
import time

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANALYSIS = os.path.join(REPO, "analysis")
ILBENCH = os.environ.get("ILBENCH", os.path.join(REPO, "build", "release", "bench", "ilbench"))
MNIST = os.path.join(REPO, "data", "mnist")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
EVERY = 5
COMMON = ["--epochs", "1", "--max-batches", "12", "--test-batches", "2", "--trace", str(EVERY)]
# (solver, backward, extra options): both solver families, every kind of backward trace
RUNS = [("fp", "unroll", []), ("newton", "implicit", []), ("anderson", "implicit", ["--adjoint-solver", "gmres"]),
        ("fp", "phantom:3", [])]


def run_env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1", OMPI_MCA_mpi_yield_when_idle="1",
               HDF5_USE_FILE_LOCKING="FALSE", PYTHONDONTWRITEBYTECODE="1")
    return env


def ilbench(args, rc=0, timeout=240):
    p = subprocess.run(args, capture_output=True, text=True, env=run_env(), timeout=timeout, cwd=REPO)
    if rc is not None:
        assert p.returncode == rc, f"{' '.join(args)}: rc {p.returncode}\n{p.stdout[-2000:]}\n{p.stderr[-2000:]}"
    return p


def text(v):
    return bytes(v).split(b"\0", 1)[0].decode() if isinstance(v, (bytes, np.bytes_)) else str(v)


def runs_of(path):
    """[(attrs, steps, trace or None)] in name order."""
    out = []
    with h5py.File(path, "r") as f:
        for rid in sorted(f["runs"]):
            g = f["runs"][rid]
            attrs = {k: (text(v) if isinstance(v, (bytes, np.bytes_)) else v) for k, v in g.attrs.items()}
            out.append((attrs, g["steps"][()], g["trace"][()] if "trace" in g else None))
    return out


@pytest.fixture(scope="session")
def files(tmp_path_factory):
    if not os.access(ILBENCH, os.X_OK):
        pytest.skip(f"ilbench not built: {ILBENCH} (set ILBENCH)")
    if not os.path.exists(os.path.join(MNIST, "train-images-idx3-ubyte")):
        pytest.skip(f"MNIST not found at {MNIST}")
    d = tmp_path_factory.mktemp("trace")
    one, par, plain = str(d / "one.h5"), str(d / "par.h5"), str(d / "plain.h5")
    for i, (sv, bw, extra) in enumerate(RUNS):
        ilbench([ILBENCH, "train", "--solver", sv, "--backward", bw] + extra + COMMON
                + ["--data", MNIST, "--out", one] + (["--append"] if i else []))
    # the same fp/unroll run without --trace: no table, no attribute, the same step rows
    ilbench([ILBENCH, "train", "--solver", "fp", "--backward", "unroll"] + COMMON[:-2] + ["--data", MNIST,
                                                                                          "--out", plain])
    # a thread team (shard 0's trace) and two ranks (rank 0's; the residual is global)
    ilbench([ILBENCH, "train", "--solver", "newton", "--backward", "unroll", "--threads", "2"] + COMMON
            + ["--data", MNIST, "--out", par])
    mpiexec = shutil.which("mpiexec")
    if mpiexec:
        ilbench([mpiexec, "-n", "2", "--oversubscribe", ILBENCH, "train", "--solver", "fp", "--backward", "implicit",
                 "--adjoint-solver", "fp"] + COMMON + ["--data", MNIST, "--out", par, "--append"])
    return {"one": one, "par": par, "plain": plain, "dir": d, "mpi": mpiexec is not None}


def check_schema(path):
    p = subprocess.run([PYTHON, os.path.join(ANALYSIS, "check_schema.py"), path], capture_output=True, text=True,
                       env=run_env(), timeout=120)
    assert p.returncode == 0 and f"{path}: 0 errors" in p.stdout, p.stdout + p.stderr
    return p.stdout


def test_files_pass_check_schema(files):
    for k in ("one", "par", "plain"):
        out = check_schema(files[k])
        assert "WARNING" not in out, out


def assert_trace_consistent(attrs, st, tr):
    """The table against the steps table, computed here from the raw rows."""
    assert tr is not None and len(tr) > 0
    every = int(attrs["trace"])
    gs = tr["global_step"]
    assert np.all(np.diff(gs) >= 0), "rows grouped by step, in order"
    traced = sorted(set(gs.tolist()))
    assert traced == [g for g in st["global_step"].tolist() if g % every == 0]
    newton = attrs["solver"].startswith("newton")
    bw = attrs["backward"].split(":")[0]
    ranks = int(attrs["world_size"])
    for g in traced:
        row = st[st["global_step"] == g][0]
        rows = tr[gs == g]
        solve = np.array([text(v) for v in rows["solve"]])
        names = {text(v) for v in rows["solver"]}
        fwd, bwd = rows[solve == "forward"], rows[solve == "backward"]
        assert np.all(solve[:len(fwd)] == "forward"), "forward rows first"
        assert {text(v) for v in fwd["solver"]} == {attrs["solver"]}
        # iterations 1..iters of the step (Newton: from 0, its starting point)
        first = 0 if newton else 1
        np.testing.assert_array_equal(fwd["iteration"], np.arange(first, int(row["fwd_iters"]) + 1))
        # the last forward residual is the step's fwd_residual; relative = absolute / first
        assert fwd["residual"][-1] == row["fwd_residual"], (g, fwd["residual"][-1], row["fwd_residual"])
        for part in (fwd, bwd):
            if len(part):
                np.testing.assert_array_equal(part["rel_residual"], part["residual"] / part["residual"][0])
                assert part["rel_residual"][0] == 1.0
                assert np.all(np.isfinite(part["residual"]) & (part["residual"] >= 0))
        if bw in ("phantom", "jfb"):
            assert len(bwd) == 0
            continue
        np.testing.assert_array_equal(bwd["iteration"], np.arange(1, len(bwd) + 1))
        if bw == "unroll":
            assert names == {attrs["solver"], "unroll"}
            assert len(bwd) == row["bwd_iters"] == row["fwd_iters"]
        else:
            adj = attrs.get("options", "").split("adjoint-solver=")[-1].split(",")[0] \
                if "adjoint-solver=" in attrs.get("options", "") else "lu"
            assert {text(v) for v in bwd["solver"]} == {adj}
            if ranks == 1 or adj != "lu":  # the lu refinement test is each rank's own
                assert len(bwd) == row["bwd_iters"]


def test_table_consistent_with_steps(files):
    runs = runs_of(files["one"])
    assert len(runs) == len(RUNS)
    for attrs, st, tr in runs:
        assert int(attrs["trace"]) == EVERY
        assert_trace_consistent(attrs, st, tr)


def test_threads_and_ranks(files):
    runs = runs_of(files["par"])
    assert len(runs) == (2 if files["mpi"] else 1)
    for attrs, st, tr in runs:
        assert_trace_consistent(attrs, st, tr)
    assert {int(a["threads"]) for a, _, _ in runs} >= {2}
    if files["mpi"]:
        assert {int(a["world_size"]) for a, _, _ in runs} == {1, 2}


def test_default_off_no_table_same_steps(files):
    (plain_attrs, plain_st, plain_tr), = runs_of(files["plain"])
    (traced_st,) = [st for a, st, _ in runs_of(files["one"]) if (a["solver"], a["backward"]) == ("fp", "unroll")]
    assert plain_tr is None and "trace" not in plain_attrs
    with h5py.File(files["plain"], "r") as f:
        assert "trace" not in f["runs"][sorted(f["runs"])[0]]
    # the trace measures, it changes nothing: step rows bitwise equal (times aside)
    for c in plain_st.dtype.names:
        if not c.endswith("_s"):
            assert plain_st[c].tobytes() == traced_st[c].tobytes(), c


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", head[16:24])


def test_report_draws_convergence(files):
    sys.path.insert(0, ANALYSIS)
    import report as rp
    seen = {}

    def hook(name, fig):
        seen[name] = [(ax.get_title(), ax.get_yscale(), [ln.get_label() for ln in ax.get_lines()])
                      for ax in fig.axes]
    out = files["dir"] / "report"
    old = rp.FIGURE_HOOK
    rp.FIGURE_HOOK = hook
    try:
        rc = rp.main([files["one"], files["par"], "-o", str(out), "--force"])
    finally:
        rp.FIGURE_HOOK = old
    assert rc == 0
    w, h = png_size(out / "convergence.png")
    assert w >= 1200 and h >= 800
    assert (out / "convergence.pdf").read_bytes()[:5] == b"%PDF-"
    axes = seen["convergence"]
    assert [t.split(":")[0] for t, _, _ in axes] == ["Forward solve", "Backward"]
    assert all(scale == "log" for _, scale, _ in axes)
    fwd_labels, bwd_labels = axes[0][2], axes[1][2]
    for solver in ("fp", "newton", "anderson"):
        assert any(lab.startswith(solver + " (") for lab in fwd_labels), fwd_labels
    for name in ("unroll", "lu", "gmres"):
        assert any(lab.startswith(name + " (") for lab in bwd_labels), bwd_labels
    assert not any("phantom" in lab for lab in bwd_labels)  # it solves no system: no backward curve
    assert "written: [convergence.png]" in (out / "summary.md").read_text()


@pytest.mark.parametrize("value", ["0", "-3", "abc", "1.5", ""])
def test_bad_trace_values_exit_2(files, value):
    p = ilbench([ILBENCH, "train", "--trace", value, "--epochs", "1", "--max-batches", "1", "--data", MNIST,
                 "--out", str(files["dir"] / "never.h5")], rc=2)
    assert "--trace" in p.stderr and ("positive integer" if value else "empty value") in p.stderr, p.stderr
    assert not os.path.exists(files["dir"] / "never.h5")


def test_trace_refusals(files):
    p = ilbench([ILBENCH, "train", "--trace", "5", "--epochs", "1", "--max-batches", "1", "--data", MNIST], rc=2)
    assert "--trace needs --out" in p.stderr, p.stderr
    p = ilbench([ILBENCH, "train", "--trace", "5", "--stop", "sample", "--threads", "2", "--epochs", "1",
                 "--max-batches", "1", "--data", MNIST, "--out", str(files["dir"] / "sample.h5")], rc=2)
    assert "--trace with --stop sample" in p.stderr, p.stderr
    # one rank, one thread: per-sample stopping is traced (over the rows still iterating)
    path = str(files["dir"] / "sample1.h5")
    ilbench([ILBENCH, "train", "--trace", "2", "--stop", "sample", "--epochs", "1", "--max-batches", "4",
             "--test-batches", "1", "--data", MNIST, "--out", path])
    check_schema(path)


def steps_rows(path):
    try:
        with h5py.File(path, "r") as f:
            r = f["runs"]
            return len(r[sorted(r)[-1]]["steps"])
    except Exception:  # noqa: BLE001  (the writer may be mid-flush)
        return 0


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_resume_continues_the_table(files, sig):
    opts = ["--epochs", "2", "--max-batches", "200", "--test-batches", "1", "--checkpoint-every", "7",
            "--trace", "3", "--data", MNIST]
    d = files["dir"]
    ref, cut = str(d / f"ref{int(sig)}.h5"), str(d / f"cut{int(sig)}.h5")
    ilbench([ILBENCH, "train"] + opts + ["--out", ref])
    proc = subprocess.Popen([ILBENCH, "train"] + opts + ["--out", cut], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, env=run_env(), cwd=REPO)
    deadline = time.time() + 60
    while steps_rows(cut) < 40 and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    proc.send_signal(sig)
    proc.wait(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal (a very fast machine)")
    out = check_schema(cut)  # a killed or interrupted run is still a valid file
    assert "ERROR" not in out
    ilbench([ILBENCH, "train"] + opts + ["--resume", cut])
    check_schema(cut)
    (_, st_ref, tr_ref), = runs_of(ref)
    (attrs, st_cut, tr_cut), = runs_of(cut)
    assert int(attrs["resumes"]) == 1
    assert tr_ref.dtype == tr_cut.dtype and len(tr_ref) == len(tr_cut)
    for c in tr_ref.dtype.names:
        assert tr_ref[c].tobytes() == tr_cut[c].tobytes(), c
    assert_trace_consistent(attrs, st_cut, tr_cut)
