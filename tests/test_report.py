#!/usr/bin/python3
"""Tests of analysis/report.py and analysis/ilbench_results.py.

Run with Debian's interpreter: /usr/bin/python3 -m pytest -q tests/test_report.py

The end-to-end tests build real results files with the real program
(ILBENCH, default <repo>/build/release/bench/ilbench) on MNIST at
<repo>/data/mnist, once per session; they are skipped when either (or
mpiexec) is missing. Expected numbers are computed here directly from the
HDF5 files with h5py, independently of the code under test.
"""

import csv
import math
import os
import shutil
import struct
import subprocess
import sys

os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402
import numpy.lib.recfunctions  # noqa: E402,F401  (np.lib.recfunctions.append_fields)
import pytest  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ANALYSIS = os.path.join(REPO, "analysis")
REPORT = os.path.join(ANALYSIS, "report.py")
ILBENCH = os.environ.get("ILBENCH", os.path.join(REPO, "build", "release", "bench", "ilbench"))
MNIST = os.path.join(REPO, "data", "mnist")
PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable

sys.path.insert(0, ANALYSIS)
import ilbench_results as ir  # noqa: E402

FIGURES = ("accuracy", "training_curve", "test_error_vs_epoch", "iterations_cost", "time_per_batch",
           "memory", "memory_vs_hidden", "gradient_error", "stability", "pareto", "scaling")
SWEEP = ["--solver", "fp,newton", "--backward", "implicit,unroll", "--tol", "1e-2,1e-4",
         "--hidden", "32,64"]
COMMON = ["--epochs", "2", "--max-batches", "5", "--test-batches", "2"]
# The main job in small: 4 pairs x 3 seeds, the NaN study (its first NaN is at step 76 of seed 0)
# and the layer table.
PAIRS = ("fp/unroll", "fp/implicit", "newton/implicit", "newton/unroll")
SEEDS = (0, 1, 2)
MAIN_COMMON = ["--epochs", "1", "--max-batches", "8", "--test-batches", "5"]
NAN_BATCHES = 80


def run_env():
    env = dict(os.environ)
    env.update(OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1",
               HDF5_USE_FILE_LOCKING="FALSE", PYTHONDONTWRITEBYTECODE="1")
    return env


def text(v):
    return v.decode() if isinstance(v, (bytes, np.bytes_)) else v


def png_size(path):
    """(width, height) of a PNG, after checking its signature and IHDR."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG signature"
    assert head[12:16] == b"IHDR", f"{path}: first chunk is not IHDR"
    return struct.unpack(">II", head[16:24])


def report(args, check=None):
    p = subprocess.run([PYTHON, REPORT] + list(args), capture_output=True, text=True,
                       env=run_env(), timeout=120)
    if check is not None:
        assert p.returncode == check, f"rc {p.returncode}\nstdout:\n{p.stdout}\nstderr:\n{p.stderr}"
    return p


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ---------------------------------------------------------------------------
# Real results files (once per session)
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def results(tmp_path_factory):
    if not os.access(ILBENCH, os.X_OK):
        pytest.skip(f"ilbench not built: {ILBENCH} (set ILBENCH)")
    if not os.path.exists(os.path.join(MNIST, "train-images-idx3-ubyte")):
        pytest.skip(f"MNIST not found at {MNIST}")
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        pytest.skip("mpiexec not found")
    d = tmp_path_factory.mktemp("results")
    sweep, train = str(d / "s.h5"), str(d / "t.h5")
    cmds = [
        [mpiexec, "-np", "2", ILBENCH, "sweep"] + SWEEP + COMMON + ["--data", MNIST, "--out", sweep],
        # one point of the sweep again on one rank, so scaling.png has two world sizes
        [ILBENCH, "train", "--solver", "fp", "--backward", "implicit", "--tol", "1e-2",
         "--hidden", "32"] + COMMON + ["--data", MNIST, "--out", train],
    ]
    for c in cmds:
        p = subprocess.run(c, capture_output=True, text=True, env=run_env(), timeout=120, cwd=REPO)
        assert p.returncode == 0, f"{' '.join(c)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return {"sweep": sweep, "train": train, "dir": d}


@pytest.fixture(scope="session")
def full_report(results):
    out = results["dir"] / "report"
    p = report([results["sweep"], results["train"], "-o", str(out)], check=0)
    return out, p


def expected(path):
    """{run_id: numbers} computed directly with h5py."""
    exp = {}
    with h5py.File(path, "r") as f:
        for rid, g in f["runs"].items():
            ep = g["epochs"][()]
            tb = ep["train_batches"].sum()
            peak = (int(g.attrs["peak_bytes_total"]) if "peak_bytes_total" in g.attrs
                    else int(ep["peak_mem_bytes"].max()))
            exp[rid] = {
                "final_test_err": float(ep["test_err"][-1]),
                "final_train_err": float(ep["train_err"][-1]),
                "mean_fwd_iters": float(np.mean(ep["train_iters"])),
                "mean_bwd_iters": float(np.mean(ep["train_bwd_iters"])),
                "nan_rate": float(ep["nan_batches"].sum() / tb),
                "nonconv_rate": float(ep["nonconverged"].sum() / (tb * int(g.attrs["batch"]))),
                "peak_mem_bytes": peak,
                "status": text(g.attrs["status"]),
                "solver": text(g.attrs["solver"]),
                "hidden": int(g.attrs["hidden"]),
            }
    return exp


# ---------------------------------------------------------------------------
# ilbench_results
# ---------------------------------------------------------------------------

def assert_table_equal(got, want):
    """Same members and values, member by member: assert_array_equal on a
    whole structured array counts NaN != NaN, and unmeasured diagnostics are NaN."""
    assert got.dtype.names == want.dtype.names
    for c in want.dtype.names:
        np.testing.assert_array_equal(got[c], want[c], err_msg=c)


def test_load_runs(results):
    runs = ir.load_runs(results["sweep"])
    with h5py.File(results["sweep"], "r") as f:
        ids = list(f["runs"])
        assert [r.run_id for r in runs] == ids
        assert len(runs) == 16
        for r in runs:
            g = f["runs"][r.run_id]
            assert r.file == results["sweep"]
            assert r.status == "completed" and r.completed and not r.incomplete
            assert isinstance(r.attrs["solver"], str) and r.attrs["solver"] == text(g.attrs["solver"])
            assert isinstance(r.attrs["hidden"], int) and r.attrs["hidden"] == int(g.attrs["hidden"])
            assert isinstance(r.attrs["tol"], float) and r.attrs["tol"] == float(g.attrs["tol"])
            assert r.software_version == text(f.attrs["software_version"])
            assert r.schema_version == 3 and "nan_origin" in r.steps.dtype.names and "forward_s" in r.steps.dtype.names
            assert r.host == text(f.attrs["host"])
            assert isinstance(r.root_attrs["command_line"], str)
            assert_table_equal(r.epochs, g["epochs"][()])
            assert_table_equal(r.steps, g["steps"][()])  # diag_* are NaN where not measured
            assert r.ranks is not None and len(r.ranks) == 2
            assert r.peak_bytes["total"] == int(g.attrs["peak_bytes_total"])
    assert {r.attrs["solver"] for r in runs} == {"fp", "newton"}
    both = ir.load_many([results["sweep"], results["train"]])
    assert len(both) == 17 and both[-1].attrs["world_size"] == 1


def test_metrics_phase_times(results):
    """Per-phase time per epoch = mean over epochs of the steps' sums."""
    run = ir.load_runs(results["train"])[0]
    m = ir.metrics(run)
    with h5py.File(results["train"], "r") as f:
        st = f["runs"][run.run_id]["steps"][()]
        ep = f["runs"][run.run_id]["epochs"][()]
    for ph in ("forward", "backward", "wait", "allreduce", "update"):
        want = np.mean([st[ph + "_s"][st["epoch"] == e].sum() for e in ep["epoch"]])
        assert m[f"{ph}_s_per_epoch"] == pytest.approx(want, rel=1e-12, abs=0)
        # the epochs table holds the same sums (schema version 3), as the epoch logfmt line prints them
        np.testing.assert_allclose(ep[ph + "_s"], [st[ph + "_s"][st["epoch"] == e].sum() for e in ep["epoch"]],
                                   rtol=1e-12)
    assert m["wait_s_per_epoch"] == 0.0  # one rank


# ---------------------------------------------------------------------------
# report.py end to end
# ---------------------------------------------------------------------------

def test_all_figures_written(full_report):
    """The sweep (2 tolerances x 2 hidden sizes, 2 epochs, 2 ranks) and one
    1-rank run give every figure but the layer-table one."""
    out, p = full_report
    assert [ln for ln in p.stdout.splitlines() if ln.startswith("skip")] == \
        ["skip gradient_error.png: needs the layer table (--layer) with >= 2 pairs",
         "skip convergence.png: no completed run has a trace table (train or sweep --trace N)"], p.stdout
    for name in FIGURES:
        if name == "gradient_error":
            continue
        path = out / f"{name}.png"
        assert path.exists(), f"{name} missing; stdout:\n{p.stdout}"
        w, h = png_size(path)
        assert w >= 1200 and h >= 800, f"{name} is {w}x{h}"
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-", name


def test_summary_rows_and_numbers(results, full_report):
    out, _ = full_report
    rows = read_csv(out / "summary.csv")
    exp = {}
    for key in ("sweep", "train"):
        exp.update({(results[key], rid): v for rid, v in expected(results[key]).items()})
    assert len(rows) == len(exp) == 17
    keys = [(r["file"], r["run_id"]) for r in rows]
    assert len(set(keys)) == len(keys) and set(keys) == set(exp)
    for row in rows:
        e = exp[(row["file"], row["run_id"])]
        assert row["status"] == e["status"] and row["flag"] == ""
        assert row["solver"] == e["solver"] and int(row["hidden"]) == e["hidden"]
        for k in ("final_test_err", "final_train_err", "mean_fwd_iters", "mean_bwd_iters",
                  "nan_rate", "nonconv_rate"):
            assert float(row[k]) == pytest.approx(e[k], rel=1e-12, abs=1e-15), (row["run_id"], k)
        assert int(row["peak_mem_bytes"]) == e["peak_mem_bytes"]
    md = (out / "summary.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| `p0") or line.startswith("| `train")]
    assert len(table) == 17
    with h5py.File(results["sweep"], "r") as f:
        assert text(f.attrs["software_version"]) in md
        assert text(f.attrs["host"]) in md
    for name in FIGURES:
        if name != "gradient_error":
            assert f"written: [{name}.png]" in md


def test_single_run_skips(results, tmp_path):
    out = tmp_path / "one"
    p = report([results["train"], "-o", str(out)], check=0)
    assert "skip memory_vs_hidden.png: only one hidden size" in p.stdout
    assert "skip pareto.png:" in p.stdout
    assert "skip scaling.png: only one world size" in p.stdout
    for name in ("memory_vs_hidden.png", "pareto.png", "scaling.png", "gradient_error.png"):
        assert not (out / name).exists()
    for name in ("accuracy.png", "training_curve.png", "test_error_vs_epoch.png", "iterations_cost.png",
                 "time_per_batch.png", "memory.png", "stability.png"):
        w, h = png_size(out / name)
        assert w >= 1200 and h >= 800
    md = (out / "summary.md").read_text()
    assert "skipped: memory_vs_hidden.png: only one hidden size" in md
    assert len(read_csv(out / "summary.csv")) == 1


def test_refuses_to_overwrite(results, tmp_path):
    out = tmp_path / "o"
    report([results["train"], "-o", str(out)], check=0)
    before = (out / "summary.csv").read_bytes()
    p = report([results["train"], "-o", str(out)], check=1)
    assert "--force" in p.stderr
    assert (out / "summary.csv").read_bytes() == before
    report([results["train"], "-o", str(out), "--force"], check=0)


def test_incomplete_run_flagged_and_unknowns_ignored(results, tmp_path):
    """A killed run (status running, no ranks/finished/peak_bytes_*) stays in
    the summary, flagged; unknown attributes, members and datasets are
    ignored."""
    path = tmp_path / "mixed.h5"
    shutil.copy(results["train"], path)
    with h5py.File(path, "r+") as f:
        src = list(f["runs"])[0]
        f.copy(f["runs"][src], "runs/killed")
        g = f["runs/killed"]
        g.attrs["status"] = np.bytes_("running")
        for k in list(g.attrs):
            if k.startswith("peak_bytes_") or k == "finished":
                del g.attrs[k]
        del g["ranks"]
        ep = g["epochs"][()][:1]
        del g["epochs"]
        g.create_dataset("epochs", data=ep, maxshape=(None,), chunks=True)
        st = g["steps"][()]
        del g["steps"]
        g.create_dataset("steps", data=st[st["epoch"] == 0], maxshape=(None,), chunks=True)
        # unknowns: a root attribute, a run attribute, a dataset, a table member
        f.attrs["future_attr"] = 7
        f["runs"][src].attrs["future_key"] = "x"
        f["runs"][src].create_dataset("future_table", data=np.arange(3))
        ext = np.lib.recfunctions.append_fields(f["runs"][src]["epochs"][()], "future_member",
                                                np.ones(2), usemask=False)
        del f["runs"][src]["epochs"]
        f["runs"][src].create_dataset("epochs", data=ext, maxshape=(None,), chunks=True)
    runs = {r.run_id: r for r in ir.load_runs(path)}
    assert runs["killed"].incomplete and runs["killed"].ranks is None
    assert runs[src].attrs["future_key"] == "x"
    out = tmp_path / "rep"
    p = report([str(path), "-o", str(out)], check=0)
    assert "killed" in p.stdout
    rows = {r["run_id"]: r for r in read_csv(out / "summary.csv")}
    assert rows["killed"]["status"] == "running" and rows["killed"]["flag"].startswith("INCOMPLETE")
    assert rows["killed"]["epochs_done"] == "1"
    with h5py.File(path, "r") as f:
        ep = f["runs/killed/epochs"][()]
        assert float(rows["killed"]["final_test_err"]) == pytest.approx(float(ep["test_err"][-1]))
        assert int(rows["killed"]["peak_mem_bytes"]) == int(ep["peak_mem_bytes"].max())
    assert rows[src]["flag"] == ""
    md = (out / "summary.md").read_text()
    assert "Flagged runs" in md and "`killed`" in md


# ---------------------------------------------------------------------------
# Bad inputs (no ilbench needed)
# ---------------------------------------------------------------------------

def test_unreadable_input(tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not hdf5\n")
    p = report([str(bad), "-o", str(tmp_path / "o")], check=2)
    assert "bad.h5" in p.stderr and "cannot open" in p.stderr
    p = report([str(tmp_path / "missing.h5"), "-o", str(tmp_path / "o")], check=2)
    assert "missing.h5" in p.stderr
    assert not (tmp_path / "o").exists()


def test_wrong_major_version(tmp_path):
    path = tmp_path / "v4.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = np.bytes_("ilbench-results")
        f.attrs["schema_version"] = np.int64(4)
        f.create_group("runs")
    p = report([str(path), "-o", str(tmp_path / "o")], check=2)
    assert "schema_version is 4" in p.stderr and "v4.h5" in p.stderr and "1, 2, 3" in p.stderr
    with pytest.raises(ir.SchemaError):
        ir.load_runs(path)
    with h5py.File(path, "r+") as f:
        f.attrs["schema"] = np.bytes_("something-else")
        f.attrs["schema_version"] = np.int64(1)
    p = report([str(path), "-o", str(tmp_path / "o")], check=2)
    assert "something-else" in p.stderr


# ---------------------------------------------------------------------------
# Schema versions 1 and 2 (hand-built files, no ilbench needed)
# ---------------------------------------------------------------------------

V1_EPOCH = [("epoch", "<i4"), ("lr", "<f8"), ("train_err", "<f8"), ("train_loss", "<f8"),
            ("train_iters", "<f8"), ("train_bwd_iters", "<f8"), ("test_err", "<f8"),
            ("test_loss", "<f8"), ("test_iters", "<f8"), ("max_grad_norm", "<f8"),
            ("nan_batches", "<i8"), ("nonconverged", "<i8"), ("maxiter_batches", "<i8"),
            ("nonfinite_batches", "<i8"), ("train_batches", "<i8"), ("train_s", "<f8"),
            ("test_s", "<f8"), ("peak_mem_bytes", "<u8"), ("saved_peak_bytes", "<u8"),
            ("workspace_peak_bytes", "<u8")]
V1_STEP = [("epoch", "<i4"), ("step", "<i4"), ("loss", "<f8"), ("err", "<f8"), ("fwd_iters", "<i4"),
           ("fwd_residual", "<f8"), ("fwd_reason", "<i4"), ("bwd_iters", "<i4"), ("bwd_residual", "<f8"),
           ("bwd_reason", "<i4"), ("nonconverged", "<i4"), ("nan_skipped", "<i4"), ("grad_norm", "<f8"),
           ("t_forward", "<f8"), ("t_backward", "<f8"), ("t_wait", "<f8"), ("t_allreduce", "<f8"),
           ("t_update", "<f8")]
V2_EPOCH = V1_EPOCH[:13] + [("diverged_batches", "<i8")] + V1_EPOCH[13:]
V2_STEP = V1_STEP + [("diag_rho_max", "<f8"), ("diag_rho_mean", "<f8"), ("diag_cond", "<f8"),
                     ("diag_grad_cos", "<f8"), ("diag_grad_relerr", "<f8"), ("diag_preact_max", "<f8"),
                     ("nan_origin", "<i4"), ("nan_iter", "<i4")]


def write_small(path, version):
    """One completed run, 2 epochs of 2 steps, in the tables of `version`
    (version 2 with the diagnostics filled in)."""
    with h5py.File(path, "w") as f:
        for k, v in {"schema": np.bytes_("ilbench-results"), "schema_version": np.int64(version),
                     "software_version": np.bytes_("v-test"), "created": np.bytes_("2025-01-31T12:00:00Z"),
                     "host": np.bytes_("node0"), "command_line": np.bytes_("ilbench train"),
                     "world_size": np.int64(1)}.items():
            f.attrs[k] = v
        g = f.create_group("runs").create_group(f"v{version}")
        for k, v in {"solver": "newton", "backward": "implicit", "tol": 1e-4, "max_iter": 40, "hidden": 16,
                     "batch": 10, "epochs": 2, "world_size": 1, "status": "completed", "seed": 0,
                     "stop": "batch", "peak_bytes_total": 1000}.items():
            g.attrs[k] = np.bytes_(v) if isinstance(v, str) else v
        ep = np.zeros(2, dtype=V2_EPOCH if version >= 2 else V1_EPOCH)
        st = np.zeros(4, dtype=V2_STEP if version >= 2 else V1_STEP)
        ep["epoch"] = [0, 1]
        ep["train_batches"] = 2
        ep["test_err"] = [0.5, 0.25]
        ep["train_s"] = 1.0
        st["epoch"] = [0, 0, 1, 1]
        st["step"] = [0, 1, 0, 1]
        st["t_forward"] = [0.5, 0.25, 0.125, 0.0625]
        if version >= 2:
            ep["diverged_batches"] = [1, 0]
            st["fwd_reason"] = [2, 0, 0, 0]
            st["diag_rho_max"] = [0.9, 1.2, np.nan, 0.7]
            st["diag_rho_mean"] = [0.5, 0.8, np.nan, 0.6]
            st["diag_cond"] = [10.0, 250.0, np.nan, 3.0]
            st["diag_grad_cos"] = [0.99, np.nan, 0.95, np.nan]
            st["diag_grad_relerr"] = [0.01, np.nan, 0.2, np.nan]
            st["diag_preact_max"] = [12.5, 93.75, np.nan, 40.0]
            st["nan_origin"] = [1, 0, 0, 0]
            st["nan_iter"] = [12, -1, -1, -1]
        g.create_dataset("epochs", data=ep, maxshape=(None,), chunks=True)
        g.create_dataset("steps", data=st, maxshape=(None,), chunks=True)
        g.create_dataset("ranks", data=np.zeros(1, dtype=[("rank", "<i4"), ("t_forward", "<f8")]))
    return path


def test_v2_diagnostics_metrics(tmp_path):
    run = ir.load_runs(write_small(tmp_path / "v2.h5", 2))[0]
    assert run.schema_version == 2
    m = ir.metrics(run)
    assert m["diverge_rate"] == pytest.approx(0.25)  # 1 of 4 training steps
    assert m["diag_rho_max"] == pytest.approx(1.2)
    assert m["diag_rho_mean"] == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    assert m["diag_cond_max"] == pytest.approx(250.0)
    assert m["diag_grad_cos_min"] == pytest.approx(0.95)
    assert m["diag_grad_relerr_max"] == pytest.approx(0.2)
    assert m["diag_preact_max"] == pytest.approx(93.75)
    np.testing.assert_array_equal(ir.column(run.steps, "diag_preact_max"), [12.5, 93.75, np.nan, 40.0])
    assert ir.nan_origin_counts(run) == {1: 1}
    np.testing.assert_array_equal(ir.column(run.steps, "nan_iter"), [12, -1, -1, -1])
    # migrated to the version-3 names: t_* -> *_s, reasons and origins by name, global_step, epoch phase sums
    assert "t_forward" not in run.steps.dtype.names
    np.testing.assert_array_equal(run.steps["forward_s"], [0.5, 0.25, 0.125, 0.0625])
    np.testing.assert_array_equal(run.epochs["forward_s"], [0.75, 0.1875])
    np.testing.assert_array_equal(run.epochs["ranks"], [1, 1])
    np.testing.assert_array_equal(run.steps["global_step"], [0, 1, 2, 3])
    assert list(ir.names(run.steps, "fwd_reason")) == ["diverged", "converged", "converged", "converged"]
    assert list(ir.names(run.steps, "nan_origin")) == ["fwd_solve", "none", "none", "none"]
    assert ir.reason_name(1) == "max-iter" and ir.nan_origin_name(3) == "bwd_layer"
    assert "forward_s" in run.ranks.dtype.names
    assert all(isinstance(v, str) for k, v in run.attrs.items() if k in ("solver", "status"))


def test_v1_file_loads_with_missing_columns_as_nan(tmp_path):
    path = write_small(tmp_path / "v1.h5", 1)
    run = ir.load_runs(path)[0]
    assert run.schema_version == 1 and run.completed
    assert "diag_cond" not in run.steps.dtype.names and not ir.has_column(run.steps, "nan_origin")
    assert np.isnan(ir.column(run.steps, "diag_cond")).all() and len(ir.column(run.steps, "diag_cond")) == 4
    m = ir.metrics(run)
    assert np.isnan(ir.column(run.steps, "diag_preact_max")).all()
    for k in ("diverge_rate", "diag_rho_max", "diag_rho_mean", "diag_cond_max", "diag_grad_cos_min",
              "diag_grad_relerr_max", "diag_preact_max"):
        assert math.isnan(m[k]), k
    assert m["final_test_err"] == 0.25  # the version-1 numbers are unaffected
    assert ir.nan_origin_counts(run) == {}
    # the report takes both versions side by side
    out = tmp_path / "rep"
    p = report([str(path), str(write_small(tmp_path / "v2.h5", 2)), "-o", str(out)], check=0)
    rows = {r["run_id"]: r for r in read_csv(out / "summary.csv")}
    assert rows["v1"]["schema_version"] == "1" and rows["v2"]["schema_version"] == "2"
    assert rows["v1"]["diag_cond_max"] == "nan" and float(rows["v2"]["diag_cond_max"]) == 250.0
    assert rows["v1"]["diag_preact_max"] == "nan" and float(rows["v2"]["diag_preact_max"]) == 93.75
    assert float(rows["v2"]["diverge_rate"]) == 0.25
    md = (out / "summary.md").read_text()
    assert "schema version 1 files have no diagnostics" in md, p.stdout


def test_pareto_front():
    sys.path.insert(0, ANALYSIS)
    import report as rp
    pts = [(1.0, 0.5), (2.0, 0.3), (3.0, 0.4), (0.5, 0.9), (2.0, 0.35)]
    assert rp.pareto_front(pts) == [3, 0, 1]


# ---------------------------------------------------------------------------
# The main job in small: seeds, the NaN study, the layer table
# ---------------------------------------------------------------------------

@pytest.fixture(scope="session")
def main_results(tmp_path_factory):
    if not os.access(ILBENCH, os.X_OK):
        pytest.skip(f"ilbench not built: {ILBENCH} (set ILBENCH)")
    if not os.path.exists(os.path.join(MNIST, "train-images-idx3-ubyte")):
        pytest.skip(f"MNIST not found at {MNIST}")
    d = tmp_path_factory.mktemp("main")
    train, nan, layer = str(d / "train.h5"), str(d / "nan.h5"), str(d / "layer.txt")
    cmds = []
    for s in SEEDS:
        for pair in PAIRS:
            sv, bw = pair.split("/")
            cmds.append([ILBENCH, "train", "--solver", sv, "--backward", bw, "--seed", str(s)] + MAIN_COMMON
                        + ["--data", MNIST, "--out", train] + (["--append"] if cmds else []))
    cmds.append([ILBENCH, "train", "--solver", "newton", "--backward", "unroll", "--sech2", "seed", "--diag", "1",
                 "--epochs", "1", "--max-batches", str(NAN_BATCHES), "--test-batches", "1", "--data", MNIST,
                 "--out", nan])
    for c in cmds:
        p = subprocess.run(c, capture_output=True, text=True, env=run_env(), timeout=240, cwd=REPO)
        assert p.returncode == 0, f"{' '.join(c)} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    p = subprocess.run([ILBENCH, "layer", "--solver", "fp,newton,anderson", "--backward", "unroll,implicit,jfb",
                        "--hidden", "100", "--warmup", "1", "--repeat", "2"],
                       capture_output=True, text=True, env=run_env(), timeout=120, cwd=REPO)
    assert p.returncode == 0, p.stderr
    with open(layer, "w") as f:
        f.write(p.stdout)
    return {"train": train, "nan": nan, "layer": layer, "dir": d}


@pytest.fixture(scope="session")
def main_report(main_results):
    """report.main run in-process, with every figure captured before it is saved."""
    import report as rp
    figs = {}
    out = main_results["dir"] / "report"

    def hook(name, fig):
        figs[name] = check_figure(name, fig)
    old = rp.FIGURE_HOOK
    rp.FIGURE_HOOK = hook
    try:
        rc = rp.main([main_results["train"], main_results["nan"], "--layer", main_results["layer"], "-o", str(out)])
    finally:
        rp.FIGURE_HOOK = old
    assert rc == 0
    return out, figs


def _points(line):
    x = np.asarray(line.get_xdata(), dtype=float)
    y = np.asarray(line.get_ydata(), dtype=float)
    ok = np.isfinite(x) & np.isfinite(y)
    return x[ok], y[ok]


def check_figure(name, fig):
    """Independent checks of a drawn figure; returns a description of it:
    {axes title: {"lines": [...], "bars": n, "labels": [...], "yticks": [...], "texts": [...]}}."""
    import matplotlib.colors as mc
    desc = {}
    for i, ax in enumerate(fig.axes):
        if not ax.get_visible():
            continue
        title = ax.get_title() or f"axes {i}"
        lines = [ln for ln in ax.get_lines() if ln.get_visible()]
        from matplotlib.patches import Rectangle
        bars = [p for p in ax.patches if isinstance(p, Rectangle) and p.get_visible()
                and p.get_width() != 0 and p.get_height() != 0]
        colls = [c for c in ax.collections if c.get_visible() and len(c.get_offsets())]
        # no empty panel
        assert any(len(_points(ln)[0]) for ln in lines) or bars or colls, f"{name}: {title}: empty panel"
        x0, x1 = sorted(ax.get_xlim())
        y0, y1 = sorted(ax.get_ylim())
        styled = []
        for ln in lines:
            x, y = _points(ln)
            # no line series with one point
            if ln.get_linestyle() not in ("None", "", " ", "none"):
                assert len(x) >= 2, f"{name}: {title}: line {ln.get_label()!r} with {len(x)} point(s)"
            if ln.get_label().startswith("_"):
                continue
            # every series visible: a finite point inside the limits, not transparent
            assert ((x >= x0) & (x <= x1) & (y >= y0) & (y <= y1)).any(), f"{name}: {title}: {ln.get_label()!r} off axes"
            assert ln.get_alpha() is None or ln.get_alpha() > 0
            if len(x) >= 2:
                st = (mc.to_hex(ln.get_color()), ln.get_linestyle(), round(ln.get_linewidth(), 2))
                for lab2, x2, y2, st2 in styled:
                    if len(x2) == len(x) and np.allclose(x, x2) and np.allclose(y, y2, rtol=0.01):
                        assert st != st2, f"{name}: {title}: {ln.get_label()!r} hides {lab2!r}"
                styled.append((ln.get_label(), x, y, st))
        for c in colls:
            off = np.asarray(c.get_offsets(), dtype=float)
            if not c.get_label().startswith("_"):
                assert np.isfinite(off).all(axis=1).any(), f"{name}: {title}: {c.get_label()!r} no finite point"
        desc[title] = {"lines": [(ln.get_label(), _points(ln)) for ln in lines], "bars": bars,
                       "markers": [(ln.get_marker(), _points(ln)) for ln in lines],
                       "labels": [t.get_text() for t in ax.get_yticklabels() + ax.get_xticklabels()],
                       "legend": [t.get_text() for t in (ax.get_legend().get_texts() if ax.get_legend() else [])],
                       "texts": [t.get_text() for t in ax.texts], "colls": colls}
    desc["_fig_texts"] = [t.get_text() for t in fig.texts]
    return desc


def test_main_figures_checked(main_report):
    out, figs = main_report
    written = {"accuracy", "training_curve", "iterations_cost", "time_per_batch", "memory", "gradient_error",
               "stability", "pareto"}
    assert set(figs) == written, sorted(figs)
    for name in written:
        w, h = png_size(out / f"{name}.png")
        assert w >= 1200 and h >= 800, f"{name} is {w}x{h}"
        assert (out / f"{name}.pdf").read_bytes()[:5] == b"%PDF-"
    for name in ("test_error_vs_epoch", "memory_vs_hidden", "scaling"):
        assert not (out / f"{name}.png").exists()


def test_mismatched_configurations_left_out(main_report):
    """The NaN study (sech2=seed, diag=1) is not compared with the trainings:
    not in the accuracy, time or Pareto figures, and named in their footnotes."""
    _, figs = main_report
    for name in ("accuracy", "time_per_batch", "pareto", "iterations_cost"):
        d = figs[name]
        labels = [lab for k, v in d.items() if k != "_fig_texts" for lab in v["labels"] + v["legend"]]
        assert not any("sech2" in lab for lab in labels), (name, labels)
        assert any(t.startswith("left out: 1 run(s)") and "sech2" in t for t in d["_fig_texts"]), name


def test_accuracy_aggregates_seeds(main_results, main_report):
    _, figs = main_report
    (title, d), = [(k, v) for k, v in figs["accuracy"].items() if k != "_fig_texts"]
    means = {}
    with h5py.File(main_results["train"], "r") as f:
        for g in f["runs"].values():
            pair = f"{text(g.attrs['solver'])}/{text(g.attrs['backward'])}"
            means.setdefault(pair, []).append(100 * float(g["epochs"][-1]["test_err"]))
    # one marker per pair (a point, not a line) at the mean over its 3 seeds, in the order of PAIRS
    ys = [xy[1][0] for mk, xy in d["markers"] if mk == "o" and len(xy[0]) == 1]  # the means (caps are "_")
    assert len(ys) == len(PAIRS)
    for pair, y in zip(PAIRS, ys):
        assert len(means[pair]) == len(SEEDS)
        assert y == pytest.approx(np.mean(means[pair]), rel=1e-9)
    assert [lab.split("\n")[0] for lab in d["labels"] if "/" in lab] == list(PAIRS)


def test_stability_shows_nan_origins(main_results, main_report):
    _, figs = main_report
    st = figs["stability"]
    assert "Where the NaNs come from" in st
    with h5py.File(main_results["nan"], "r") as f:
        steps = list(f["runs"].values())[0]["steps"][()]
    skipped = int(steps["nan_skipped"].sum())
    assert skipped > 0, "the NaN study produced no NaN: raise NAN_BATCHES"
    origins = {int(o): int(((steps["nan_origin"] == o)).sum()) for o in set(steps["nan_origin"]) if o}
    bars = st["Where the NaNs come from"]["bars"]
    assert sum(b.get_width() for b in bars) == pytest.approx(sum(origins.values()))
    leg = st["Where the NaNs come from"]["legend"]
    for o in origins:
        assert any(ir.NAN_ORIGINS[o] in t for t in leg), (o, leg)
    # the per-step panel: every skipped step drawn, with the overflow threshold
    (k,) = [k for k in st if "NaN-skipped steps" in k]
    assert f"{skipped} NaN-skipped steps" in k
    n_marked = sum(len(c.get_offsets()) for c in st[k]["colls"] if "NaN-skipped" in c.get_label())
    assert n_marked == int((steps["nan_skipped"].astype(bool) & np.isfinite(steps["diag_preact_max"])).sum())
    assert any(lab.startswith("float32 cosh overflow") for lab, _ in st[k]["lines"])


def _layer_rows(path):
    """The layer table parsed here independently: {(solver, backward): {column: str}}."""
    rows, header = {}, None
    for line in open(path):
        f = line.split()
        if not f or f[0].startswith("#"):
            continue
        if f[0] == "solver":
            header = f
        elif header:
            rows[(f[0], f[1])] = dict(zip(header, f))
    return rows


def test_layer_table_loader(main_results, main_report):
    out, _ = main_report
    want = _layer_rows(main_results["layer"])
    got = ir.load_layer_table(main_results["layer"])
    assert {(r["solver"], r["backward"]) for r in got["rows"]} == set(want)
    assert ("anderson", "unroll") in got["unsupported"]
    for r in got["rows"]:
        w = want[(r["solver"], r["backward"])]
        assert r["grad_relerr"] == float(w["grad_relerr"]) and r["saved_bytes"] == int(w["saved_bytes"])
    again = ir.load_layer_table(out / "layer.csv")  # the report's CSV reads back the same
    assert again["rows"] == got["rows"] and again["unsupported"] == got["unsupported"]


def test_recommendation_numbers(main_results, main_report):
    """recommendation.csv against the HDF5 files and the layer table, computed here."""
    out, _ = main_report
    rec = {r["pair"]: r for r in read_csv(out / "recommendation.csv")}
    layer = _layer_rows(main_results["layer"])
    per = {}
    with h5py.File(main_results["train"], "r") as f:
        for g in f["runs"].values():
            pair = f"{text(g.attrs['solver'])}/{text(g.attrs['backward'])}"
            ep = g["epochs"][()]
            per.setdefault(pair, []).append(dict(
                err=float(ep["test_err"][-1]), ms=1000 * ep["train_s"].sum() / ep["train_batches"].sum(),
                nan=ep["nan_batches"].sum() / ep["train_batches"].sum(),
                nc=ep["nonconverged"].sum() / (ep["train_batches"].sum() * int(g.attrs["batch"])),
                peak=int(g.attrs["peak_bytes_total"])))
    assert set(p for p, r in rec.items() if r["trained"] == "1") == set(PAIRS)
    for pair, runs in per.items():
        r = rec[pair]
        errs = [x["err"] for x in runs]
        assert int(r["seeds"]) == len(SEEDS)
        assert float(r["test_err_mean"]) == pytest.approx(np.mean(errs), rel=1e-12)
        assert float(r["test_err_sd"]) == pytest.approx(np.std(errs, ddof=1), rel=1e-9, abs=1e-15)
        assert float(r["test_err_min"]) == min(errs) and float(r["test_err_max"]) == max(errs)
        assert float(r["ms_per_batch_mean"]) == pytest.approx(np.mean([x["ms"] for x in runs]), rel=1e-9)
        assert float(r["nan_rate_mean"]) == pytest.approx(np.mean([x["nan"] for x in runs]), abs=1e-15)
        assert float(r["nonconv_rate_mean"]) == pytest.approx(np.mean([x["nc"] for x in runs]), abs=1e-15)
        assert float(r["peak_mem_bytes_mean"]) == pytest.approx(np.mean([x["peak"] for x in runs]))
        lw = layer[tuple(pair.split("/"))]
        assert float(r["layer_grad_relerr"]) == float(lw["grad_relerr"])
        assert int(r["layer_saved_bytes"]) == int(lw["saved_bytes"])
    # every pair of the layer table has a row; layer-only pairs have a layer-derived verdict
    assert set(rec) == {f"{s}/{b}" for s, b in layer}
    for pair, r in rec.items():
        if r["trained"] == "0":
            assert r["verdict"].startswith("layer only: ")
            if float(r["layer_grad_relerr"]) > 1e-3:
                assert "approximate gradient" in r["verdict"]
    # the verdict rules: the recommended pair is the fastest of the stable pairs within the spread of the best
    trained = {p: r for p, r in rec.items() if r["trained"] == "1"}
    best = min(trained.values(), key=lambda r: float(r["test_err_mean"]))
    ok = [r for r in trained.values() if float(r["nan_rate_mean"]) <= 0.01 and float(r["test_err_max"]) <= 0.5
          and not float(r["test_err_min"]) > float(best["test_err_max"])]
    fastest = min(ok, key=lambda r: float(r["ms_per_batch_mean"]))
    assert [p for p, r in trained.items() if r["verdict"].startswith("recommended")] == [fastest["pair"]]
    # the same numbers in summary.md
    md = (out / "summary.md").read_text()
    assert "## Recommendation" in md
    for pair in PAIRS:
        (line,) = [ln for ln in md.splitlines() if ln.startswith(f"| {pair} |")]
        r = rec[pair]
        assert f"{100 * float(r['test_err_mean']):.2f} ± {100 * float(r['test_err_sd']):.2f}" in line
        assert r["verdict"] in line
    sep = [ln for ln in md.splitlines() if "separate beyond the seed spread" in ln]
    assert len(sep) == 1
    separated = any(float(r["test_err_min"]) > float(best["test_err_max"]) for r in trained.values())
    assert ("do not separate" in sep[0]) == (not separated)
    # the NaN study is reported apart, with its origins
    assert "### Other runs" in md and ir.NAN_ORIGINS[3] in md  # "bwd_layer", the schema's name


def test_lint_catches_bad_figures(tmp_path):
    import report as rp
    import matplotlib.pyplot as plt
    fig, (a, b, c) = plt.subplots(1, 3)
    a.plot([1.0], [2.0], "-", label="one point")
    c.plot([0, 1], [5, 5], "-", label="off axes")
    c.plot([0, 1], [0, 1], "-", color="k", label="x")
    c.plot([0, 1], [0, 1], "-", color="k", label="y")
    c.set_ylim(0, 2)
    probs = " | ".join(rp.lint_figure(fig))
    assert "'one point' has 1 point(s)" in probs
    assert "axes 1: empty panel" in probs
    assert "'off axes' has no point inside the axes" in probs
    assert "'y' hides 'x'" in probs
    with pytest.raises(rp.FigureProblem):
        rp.save(fig, str(tmp_path / "bad"), [])
    assert not (tmp_path / "bad.png").exists()


def test_seed_table(main_results):
    import report as rp
    runs = ir.load_runs(main_results["train"])
    lines = rp.seed_table(runs)
    (row,) = [ln for ln in lines if ln.startswith("| fp/unroll | stable |")]
    errs = [100 * float(r.epochs["test_err"][-1]) for r in runs if r.attrs["solver"] == "fp"
            and r.attrs["backward"] == "unroll"]
    assert f"{np.mean(errs):.2f}% ({min(errs):.2f}–{max(errs):.2f})" in row
    assert f"| {len(SEEDS)} |" in row and "0 of 3" in row
    nan_row = [ln for ln in rp.seed_table(ir.load_runs(main_results["nan"])) if ln.startswith("| newton/unroll | seed |")]
    with h5py.File(main_results["nan"], "r") as f:
        ep = list(f["runs"].values())[0]["epochs"][()]
    assert f"{int(ep['nan_batches'].sum())} of {int(ep['train_batches'].sum())}" in nan_row[0]
