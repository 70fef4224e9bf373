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

FIGURES = ("test_error_vs_epoch.png", "iterations_vs_epoch.png", "time_per_epoch.png",
           "memory_vs_hidden.png", "stability.png", "pareto.png", "scaling.png")
SWEEP = ["--solver", "fp,newton", "--backward", "implicit,unroll", "--tol", "1e-2,1e-4",
         "--hidden", "32,64"]
COMMON = ["--epochs", "2", "--max-batches", "5", "--test-batches", "2"]


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
            assert r.schema_version == 2 and "nan_origin" in r.steps.dtype.names
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
        want = np.mean([st["t_" + ph][st["epoch"] == e].sum() for e in ep["epoch"]])
        assert m[f"{ph}_s_per_epoch"] == pytest.approx(want, rel=1e-12, abs=0)
    assert m["wait_s_per_epoch"] == 0.0  # one rank


# ---------------------------------------------------------------------------
# report.py end to end
# ---------------------------------------------------------------------------

def test_all_figures_written(full_report):
    out, p = full_report
    assert "skip" not in p.stdout, p.stdout
    for name in FIGURES:
        path = out / name
        assert path.exists(), f"{name} missing; stdout:\n{p.stdout}"
        w, h = png_size(path)
        assert w >= 1200 and h >= 800, f"{name} is {w}x{h}"


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
        assert f"written: [{name}]" in md


def test_single_run_skips(results, tmp_path):
    out = tmp_path / "one"
    p = report([results["train"], "-o", str(out)], check=0)
    assert "skip memory_vs_hidden.png: only one hidden size" in p.stdout
    assert "skip pareto.png:" in p.stdout
    assert "skip scaling.png: only one world size" in p.stdout
    for name in ("memory_vs_hidden.png", "pareto.png", "scaling.png"):
        assert not (out / name).exists()
    for name in ("test_error_vs_epoch.png", "iterations_vs_epoch.png", "time_per_epoch.png",
                 "stability.png"):
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
    path = tmp_path / "v3.h5"
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = np.bytes_("ilbench-results")
        f.attrs["schema_version"] = np.int64(3)
        f.create_group("runs")
    p = report([str(path), "-o", str(tmp_path / "o")], check=2)
    assert "schema_version is 3" in p.stderr and "v3.h5" in p.stderr and "1, 2" in p.stderr
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
    assert m["rho_max"] == pytest.approx(1.2)
    assert m["rho_mean"] == pytest.approx((0.5 + 0.8 + 0.6) / 3)
    assert m["cond_max"] == pytest.approx(250.0)
    assert m["grad_cos_min"] == pytest.approx(0.95)
    assert m["grad_relerr_max"] == pytest.approx(0.2)
    assert m["preact_max"] == pytest.approx(93.75)
    np.testing.assert_array_equal(ir.column(run.steps, "diag_preact_max"), [12.5, 93.75, np.nan, 40.0])
    assert ir.nan_origin_counts(run) == {1: 1}
    np.testing.assert_array_equal(ir.column(run.steps, "nan_iter"), [12, -1, -1, -1])


def test_v1_file_loads_with_missing_columns_as_nan(tmp_path):
    path = write_small(tmp_path / "v1.h5", 1)
    run = ir.load_runs(path)[0]
    assert run.schema_version == 1 and run.completed
    assert "diag_cond" not in run.steps.dtype.names and not ir.has_column(run.steps, "nan_origin")
    assert np.isnan(ir.column(run.steps, "diag_cond")).all() and len(ir.column(run.steps, "diag_cond")) == 4
    m = ir.metrics(run)
    assert np.isnan(ir.column(run.steps, "diag_preact_max")).all()
    for k in ("diverge_rate", "rho_max", "rho_mean", "cond_max", "grad_cos_min", "grad_relerr_max",
              "preact_max"):
        assert math.isnan(m[k]), k
    assert m["final_test_err"] == 0.25  # the version-1 numbers are unaffected
    assert ir.nan_origin_counts(run) == {}
    # the report takes both versions side by side
    out = tmp_path / "rep"
    p = report([str(path), str(write_small(tmp_path / "v2.h5", 2)), "-o", str(out)], check=0)
    rows = {r["run_id"]: r for r in read_csv(out / "summary.csv")}
    assert rows["v1"]["schema_version"] == "1" and rows["v2"]["schema_version"] == "2"
    assert rows["v1"]["cond_max"] == "nan" and float(rows["v2"]["cond_max"]) == 250.0
    assert rows["v1"]["preact_max"] == "nan" and float(rows["v2"]["preact_max"]) == 93.75
    assert float(rows["v2"]["diverge_rate"]) == 0.25
    md = (out / "summary.md").read_text()
    assert "schema version 1 files have no diagnostics" in md, p.stdout


def test_pareto_front():
    sys.path.insert(0, ANALYSIS)
    import report as rp
    pts = [(1.0, 0.5), (2.0, 0.3), (3.0, 0.4), (0.5, 0.9), (2.0, 0.35)]
    assert rp.pareto_front(pts) == [3, 0, 1]
