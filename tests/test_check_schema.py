"""Tests of analysis/check_schema.py, the results-file validator.

Run with: /usr/bin/python3 -m pytest -q tests/test_check_schema.py

Each test writes a small file with h5py that follows analysis/SCHEMA.md
(make_valid: version 2 with the step diagnostics populated, or version 1
without them), checks that the validator accepts it, or breaks one rule in a
copy and checks that the validator reports that rule. If ILBENCH_TEST_H5
names a file written by ilbench (for example a 2-rank sweep), the validator
is also run on it as a subprocess.
"""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CHECKER = ROOT / "analysis" / "check_schema.py"
PYTHON = "/usr/bin/python3"

# Import the checker as a module without writing analysis/__pycache__.
sys.dont_write_bytecode = True
_spec = importlib.util.spec_from_file_location("check_schema", CHECKER)
cs = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cs)

WORLD = 2
BATCH = 100
EPOCHS = 2
STEPS_PER_EPOCH = 3
RUN = "r0"  # run id of the single run in most test files


# ---------------------------------------------------------------------------
# A minimal valid file
# ---------------------------------------------------------------------------

def s(v):
    """Fixed-length string attribute value, as ilbench writes them."""
    return np.bytes_(v)


def table(members, n):
    """Zero-filled structured array with the members (name -> dtype) of a table."""
    return np.zeros(n, dtype=np.dtype(list(members.items())))


def write_table(g, name, data, extendible=True):
    """(Re)create a table; epochs and steps are chunked and extendible like the writer's."""
    if name in g:
        del g[name]
    if extendible:
        g.create_dataset(name, data=data, chunks=(64,), maxshape=(None,))
    else:
        g.create_dataset(name, data=data)


def write_run(runs, run_id, status="completed", epochs_done=EPOCHS, version=3):
    """One run with every required attribute and consistent tables (of the
    given major version; version 2 has the step diagnostics, populated)."""
    g = runs.create_group(run_id)
    cfg = {
        "solver": s("newton"), "backward": s("implicit"), "tol": np.float64(1e-4),
        "max_iter": np.int64(40), "hidden": np.int64(100), "batch": np.int64(BATCH),
        "epochs": np.int64(EPOCHS), "lr": np.float64(0.1), "lr_drop": s("5:0.01"),
        "seed": np.int64(0), "stop": s("batch"), "threads": np.int64(1), "device": s("cpu"),
        "precision": s("float32"), "world_size": np.int64(WORLD), "data": s("data/mnist"),
        "run_index": np.int64(0),
        # informational keys of the train driver; readers must not require them
        "max_batches": np.int64(STEPS_PER_EPOCH), "zero_nonconverged": s("yes"),
    }
    for k, v in cfg.items():
        g.attrs[k] = v
    g.attrs["started"] = s("2025-01-31T12:00:00Z")
    g.attrs["software_version"] = s("v1.0-test")
    g.attrs["host"] = s("node0")
    g.attrs["command_line"] = s("ilbench train --out x.h5")
    g.attrs["status"] = s(status.ljust(16, "\0"))  # the writer uses a 16-byte status

    members = cs.TABLES_BY_VERSION[version]
    ep = table(members["epochs"], epochs_done)
    st = table(members["steps"], epochs_done * STEPS_PER_EPOCH)
    for e in range(epochs_done):
        rows = slice(e * STEPS_PER_EPOCH, (e + 1) * STEPS_PER_EPOCH)
        st["epoch"][rows] = e
        st["step"][rows] = np.arange(STEPS_PER_EPOCH)
        st["loss"][rows] = 2.0 - e
        st["err"][rows] = 0.5
        st["fwd_iters"][rows] = 5
        st["bwd_iters"][rows] = 2
        st["grad_norm"][rows] = [1.0, 1.5, 1.25]
        st["forward_s" if version >= 3 else "t_forward"][rows] = 0.01
        if version >= 2:
            # diagnostics measured on the first two steps of each epoch, the
            # gradient check sampled on the first one only; no NaN anywhere
            st["diag_rho_max"][rows] = [0.9, 0.95, np.nan]
            st["diag_rho_mean"][rows] = [0.6, 0.7, np.nan]
            st["diag_cond"][rows] = [12.5, 3.0e4, np.nan]
            st["diag_grad_cos"][rows] = [0.999, np.nan, np.nan]
            st["diag_grad_relerr"][rows] = [2.5e-3, np.nan, np.nan]
            # a Newton solver: the pre-activation maximum on every diagnosed step
            st["diag_preact_max"][rows] = [3.25, 91.5, np.nan]
            st["nan_origin"][rows] = 0
            st["nan_iter"][rows] = -1
        row = dict(epoch=e, lr=0.1, train_err=0.5, train_loss=2.0 - e, train_iters=5.0, train_bwd_iters=2.0,
                   test_err=0.4, test_loss=1.9 - e, test_iters=5.0, max_grad_norm=1.5,
                   train_batches=STEPS_PER_EPOCH, train_s=0.1, test_s=0.02, peak_mem_bytes=4096,
                   saved_peak_bytes=1024, workspace_peak_bytes=2048)  # the *_batches counts stay 0
        if version >= 3:
            row.update(forward_s=0.01 * STEPS_PER_EPOCH, ranks=WORLD)
        for k, v in row.items():
            ep[k][e] = v
    if version >= 3:
        st["global_step"] = np.arange(len(st))
    write_table(g, "epochs", ep)
    write_table(g, "steps", st)

    if status != "running":
        g.attrs["finished"] = s("2025-01-31T12:05:00Z")
        peaks = {"params": 100, "grads": 100, "activations": 50, "saved": 20, "workspace": 30}
        for k, v in peaks.items():
            g.attrs["peak_bytes_" + k] = np.int64(v)
        g.attrs["peak_bytes_total"] = np.int64(sum(peaks.values()))
        rk = table(cs.TABLES_BY_VERSION[version]["ranks"], WORLD)
        rk["rank"] = np.arange(WORLD)
        rk["local_batch"] = BATCH // WORLD
        rk["forward_s" if version >= 3 else "t_forward"] = 0.5
        write_table(g, "ranks", rk, extendible=False)
    return g


def make_valid(path, statuses=("completed",), version=3):
    """A minimal valid results file of major `version`: root attributes and
    one run per status (run ids r0, r1, ...). Returns the path."""
    with h5py.File(path, "w") as f:
        f.attrs["schema"] = s("ilbench-results")
        f.attrs["schema_version"] = np.int64(version)
        f.attrs["software_version"] = s("v1.0-test")
        f.attrs["created"] = s("2025-01-31T12:00:00Z")
        f.attrs["host"] = s("node0")
        f.attrs["command_line"] = s("ilbench train --out x.h5")
        f.attrs["world_size"] = np.int64(WORLD)
        runs = f.create_group("runs")
        for i, status in enumerate(statuses):
            write_run(runs, f"r{i}", status, EPOCHS if status == "completed" else EPOCHS - 1, version)
    return path


@pytest.fixture
def valid(tmp_path):
    return make_valid(tmp_path / "valid.h5")


def mutate(path, fn):
    """Apply fn(file) to the file opened read-write; returns check_file's result."""
    with h5py.File(path, "r+") as f:
        fn(f)
    return cs.check_file(str(path))


def with_member(path, table_name, member, dtype=None, drop=False, run=RUN):
    """Rewrite /runs/<run>/<table> without `member` (drop) or with it retyped."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][run]
        old = g[table_name][()]
        fields = [(n, old.dtype.fields[n][0]) for n in old.dtype.names]
        if drop:
            fields = [(n, t) for n, t in fields if n != member]
        else:
            fields = [(n, np.dtype(dtype) if n == member else t) for n, t in fields]
        new = np.zeros(len(old), dtype=np.dtype(fields))
        for n in new.dtype.names:
            new[n] = old[n]
        write_table(g, table_name, new, extendible=table_name != "ranks")
    return cs.check_file(str(path))


def set_column(path, table_name, member, values, run=RUN):
    """Overwrite one member of a table with `values`."""
    def fn(f):
        ds = f["runs"][run][table_name]
        data = ds[()]
        data[member] = values
        ds[...] = data
    return mutate(path, fn)


def has(msgs, *words):
    """True when one message contains all the words."""
    return any(all(w in m for w in words) for m in msgs)


# ---------------------------------------------------------------------------
# Valid files
# ---------------------------------------------------------------------------

def test_minimal_valid_file_is_clean(valid):
    notes = []
    errors, warnings = cs.check_file(str(valid), notes)
    assert errors == []
    assert warnings == []
    assert notes == []
    # it is a version-2 file whose diagnostics hold real (non-NaN) values
    with h5py.File(valid, "r") as f:
        assert int(f.attrs["schema_version"]) == 3
        st = f["runs"][RUN]["steps"][()]
        for c in ("diag_rho_max", "diag_rho_mean", "diag_cond", "diag_grad_cos", "diag_grad_relerr",
                  "diag_preact_max"):
            assert np.isfinite(st[c]).any(), c
        assert "diverged_batches" in f["runs"][RUN]["epochs"].dtype.names


def test_failed_run_without_peak_bytes_is_valid(tmp_path):
    path = make_valid(tmp_path / "f.h5", statuses=("completed", "failed"))

    def fn(f):
        for k in [k for k in f["runs/r1"].attrs if k.startswith("peak_bytes_")]:
            del f["runs/r1"].attrs[k]
    errors, _ = mutate(path, fn)
    assert errors == []


def test_variable_length_strings_are_accepted(valid):
    # Readers MUST accept variable-length strings (h5py writes str as such).
    def fn(f):
        f.attrs["host"] = "node0"
        f["runs"][RUN].attrs["solver"] = "newton"
        f["runs"][RUN].attrs["status"] = "completed"
    errors, warnings = mutate(valid, fn)
    assert errors == [] and warnings == []


def test_unknown_attributes_members_and_groups_are_ignored(valid):
    def fn(f):
        f.attrs["new_root_attr"] = 3
        f["runs"][RUN].attrs["new_key"] = s("x")
        f["runs"][RUN].attrs["peak_bytes_gpu"] = np.int64(7)  # a later category
        f.create_group("extras")
        f["runs"][RUN].create_dataset("extra_table", data=np.arange(3))
    errors, warnings = mutate(valid, fn)
    assert errors == [] and warnings == []


def test_extra_table_member_is_fine(valid):
    with h5py.File(valid, "r+") as f:
        g = f["runs"][RUN]
        old = g["steps"][()]
        new = np.zeros(len(old), dtype=np.dtype([(n, old.dtype.fields[n][0]) for n in old.dtype.names] + [("new_member", "<f8")]))
        for n in old.dtype.names:
            new[n] = old[n]
        write_table(g, "steps", new)
    errors, warnings = cs.check_file(str(valid))
    assert errors == [] and warnings == []


def test_merged_from_array_is_valid(valid):
    errors, _ = mutate(valid, lambda f: f.attrs.create("merged_from", [s("a.h5"), s("b.h5")]))
    assert errors == []


def test_running_run_is_a_warning_not_an_error(tmp_path):
    path = make_valid(tmp_path / "killed.h5", statuses=("completed", "running"))
    errors, warnings = cs.check_file(str(path))
    assert errors == []
    assert has(warnings, "/runs/r1", "incomplete", "running")


# ---------------------------------------------------------------------------
# Root attributes and schema identity
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["software_version", "created", "host", "command_line", "world_size",
                                  "schema", "schema_version"])
def test_missing_root_attribute(valid, name):
    errors, _ = mutate(valid, lambda f: f.attrs.__delitem__(name))
    assert has(errors, "/:", "missing", f"'{name}'")


def test_root_attribute_of_wrong_type(valid):
    errors, _ = mutate(valid, lambda f: f.attrs.__setitem__("world_size", s("2")))
    assert has(errors, "world_size", "expected")


@pytest.mark.parametrize("version", [0, 4])
def test_wrong_schema_version(valid, version):
    errors, _ = mutate(valid, lambda f: f.attrs.__setitem__("schema_version", np.int64(version)))
    # names the file, its version and the versions this checker reads
    assert has(errors, str(valid), f"schema_version {version}", "versions 1, 2 and 3")


def test_wrong_schema_name(valid):
    errors, _ = mutate(valid, lambda f: f.attrs.__setitem__("schema", s("other-results")))
    assert has(errors, "schema", "'other-results'", "ilbench-results")


def test_missing_runs_group(valid):
    errors, _ = mutate(valid, lambda f: f.__delitem__("runs"))
    assert has(errors, "missing group /runs")


# ---------------------------------------------------------------------------
# Run attributes and status
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("name", sorted(set(["status", "started", "software_version", "host", "command_line",
                                             "finished", "peak_bytes_total", "peak_bytes_saved"])
                                        | set(cs.RUN_CONFIG_ATTRS)))
def test_missing_run_attribute(valid, name):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__delitem__(name))
    assert has(errors, f"/runs/{RUN}", "missing", f"'{name}'")


def test_informational_keys_are_not_required(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__delitem__("max_batches"))
    assert errors == []


@pytest.mark.parametrize("name,value", [("tol", np.int64(1)), ("batch", np.float64(100.0)),
                                        ("solver", np.int64(1)), ("epochs", np.array([2, 2]))])
def test_run_attribute_of_wrong_type(valid, name, value):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__(name, value))
    assert has(errors, f"/runs/{RUN}", f"'{name}'", "expected")


def test_bad_status_value(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__("status", s("done")))
    assert has(errors, "status 'done'", "running, completed, failed")


def test_completed_run_without_ranks_table(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].__delitem__("ranks"))
    assert has(errors, f"/runs/{RUN}", "completed", "no 'ranks' table")


def test_running_run_with_ranks_table_is_an_error(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__("status", s("running")))
    assert has(errors, "status 'running' but has", "finished", "ranks", "peak_bytes_total")


def test_completed_run_with_missing_epochs(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__("epochs", np.int64(3)))
    assert has(errors, "/epochs", "completed", "2 rows", "epochs = 3")


def test_more_epochs_than_requested(tmp_path):
    path = make_valid(tmp_path / "r.h5", statuses=("running",))
    errors, _ = mutate(path, lambda f: f["runs/r0"].attrs.__setitem__("epochs", np.int64(0)))
    assert has(errors, "/runs/r0/epochs", "1 rows", "epochs = 0")


def test_negative_peak_bytes(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__("peak_bytes_saved", np.int64(-1)))
    assert has(errors, "peak_bytes_saved", ">= 0")


# ---------------------------------------------------------------------------
# Tables: layout and member types
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("table_name,member", [("epochs", "test_err"), ("epochs", "train_batches"),
                                               ("epochs", "diverged_batches"),
                                               ("steps", "fwd_reason"), ("steps", "wait_s"),
                                               ("ranks", "test_s"), ("ranks", "rank")]
                         + [("steps", m) for m in cs.STEP_DIAG_MEMBERS])
def test_missing_table_member(valid, table_name, member):
    errors, _ = with_member(valid, table_name, member, drop=True)
    assert has(errors, f"/runs/{RUN}/{table_name}:", f"missing member '{member}'")


@pytest.mark.parametrize("table_name,member,dtype,expect", [
    ("epochs", "epoch", "<f8", "float64"),
    ("epochs", "peak_mem_bytes", "<i4", "int32"),
    ("steps", "fwd_iters", "<i8", "int64"),
    ("steps", "loss", "<f4", "float32"),
    ("ranks", "peak_mem_bytes", "<f8", "float64"),
    ("steps", "nan_origin", "<i8", "int64"),
    ("steps", "nan_iter", "<f8", "float64"),
    ("steps", "diag_cond", "<f4", "float32"),
    ("steps", "diag_grad_cos", "<f2", "float16"),
    ("steps", "diag_preact_max", "<f4", "float32"),
    ("steps", "diag_preact_max", "<i8", "int64"),
    ("epochs", "diverged_batches", "<i4", "int32"),
])
def test_wrong_member_dtype(valid, table_name, member, dtype, expect):
    errors, _ = with_member(valid, table_name, member, dtype=dtype)
    assert has(errors, f"/runs/{RUN}/{table_name}:", f"member '{member}'", expect, "expected")


@pytest.mark.parametrize("name", ["epochs", "steps"])
def test_missing_table(valid, name):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].__delitem__(name))
    assert has(errors, f"/runs/{RUN}", f"missing table '{name}'")


# ---------------------------------------------------------------------------
# Tables: values and consistency
# ---------------------------------------------------------------------------

def test_epochs_out_of_order(valid):
    errors, _ = set_column(valid, "epochs", "epoch", [1, 0])
    assert has(errors, "/epochs", "not numbered 0..1")


def test_steps_epoch_out_of_range(valid):
    errors, _ = set_column(valid, "steps", "epoch", [0, 0, 0, 1, 1, 5])
    assert has(errors, "/steps", "epoch outside", "value 5")


def test_steps_count_differs_from_train_batches(valid):
    errors, _ = set_column(valid, "epochs", "train_batches", [3, 4])
    assert has(errors, "/steps (epoch 1)", "3 rows", "train_batches = 4")


def test_steps_misnumbered_within_epoch(valid):
    errors, _ = set_column(valid, "steps", "step", [0, 1, 2, 0, 2, 1])
    assert has(errors, "/steps (epoch 1)", "not numbered 0..2")


def test_reason_outside_enum_is_reported_as_unknown(valid):
    # SCHEMA.md, Reasons: "Readers MUST treat any other value as unknown, not
    # as an error." So this is a warning that names the value, not an error.
    errors, warnings = set_column(valid, "steps", "fwd_reason", [0, 0, 7, 0, 0, 0])
    assert errors == []
    assert has(warnings, "/steps", "fwd_reason outside the il_reason enum", "[7]")


def test_fraction_outside_unit_interval(valid):
    errors, _ = set_column(valid, "epochs", "test_err", [0.5, 1.5])
    assert has(errors, "/epochs", "test_err outside [0, 1]", "row 1")


def test_nan_fraction_is_allowed(valid):
    errors, _ = set_column(valid, "epochs", "test_err", [np.nan, 0.5])
    assert errors == []


def test_negative_time(valid):
    errors, _ = set_column(valid, "ranks", "allreduce_s", [0.1, -0.2])
    assert has(errors, "/ranks", "negative time allreduce_s")


def test_negative_count(valid):
    errors, _ = set_column(valid, "steps", "fwd_iters", [5, 5, -1, 5, 5, 5])
    assert has(errors, "/steps", "negative count fwd_iters")


def test_ranks_rows_differ_from_world_size(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].attrs.__setitem__("world_size", np.int64(4)))
    assert has(errors, "/ranks", "2 rows", "world_size = 4")


def test_rank_column_differs_from_row_index(valid):
    errors, _ = set_column(valid, "ranks", "rank", [1, 0])
    assert has(errors, "/ranks", "row index")


def test_epoch_aggregate_mismatch_is_a_warning(valid):
    errors, warnings = set_column(valid, "epochs", "nan_batches", [0, 1])
    assert errors == []
    assert has(warnings, "(epoch 1)", "nan_batches = 1", "steps give 0")


def test_diverged_batches_aggregate_mismatch_is_a_warning(valid):
    errors, warnings = set_column(valid, "steps", "fwd_reason", [0, 2, 0, 2, 2, 0])
    assert errors == []
    assert has(warnings, "(epoch 0)", "diverged_batches = 0", "steps give 1")
    assert has(warnings, "(epoch 1)", "diverged_batches = 0", "steps give 2")
    errors, warnings = set_column(valid, "epochs", "diverged_batches", [1, 2])
    assert errors == [] and warnings == []


def test_negative_diverged_batches(valid):
    errors, _ = set_column(valid, "epochs", "diverged_batches", [0, -3])
    assert has(errors, "/epochs", "negative count diverged_batches", "row 1")


# ---------------------------------------------------------------------------
# Version 2: step diagnostics
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("bad", [5, -1, 99])
def test_invalid_nan_origin_is_an_error(valid, bad):
    errors, _ = set_column(valid, "steps", "nan_origin", [0, 0, bad, 0, 0, 0])
    assert has(errors, f"/runs/{RUN}/steps", "nan_origin outside 0..4", f"[{bad}]", "row 2")


def test_every_nan_origin_code_is_valid(valid):
    # a step per code, each with a consistent nan_iter and NaN-skip flag
    def fn(f):
        g = f["runs"][RUN]
        st = g["steps"][()]
        st["nan_origin"] = [0, 1, 2, 3, 4, 0]
        st["nan_iter"] = [-1, 17, -1, 0, -1, -1]
        st["nan_skipped"] = [0, 1, 1, 1, 1, 0]
        st["grad_norm"] = [1.0, np.nan, np.nan, np.nan, np.nan, 1.5]
        g["steps"][...] = st
        ep = g["epochs"][()]
        ep["nan_batches"] = [2, 2]
        ep["max_grad_norm"] = [1.0, 1.5]
        g["epochs"][...] = ep
    errors, warnings = mutate(valid, fn)
    assert errors == [] and warnings == []


def test_nan_iter_below_minus_one_is_an_error(valid):
    errors, _ = set_column(valid, "steps", "nan_iter", [-1, -1, -1, -2, -1, -1])
    assert has(errors, "/steps", "nan_iter < -1", "row 3")


def test_nan_iter_without_an_iterative_origin_is_a_warning(valid):
    # nan_origin 0 (none) with an iteration: the writer forgot the -1
    errors, warnings = set_column(valid, "steps", "nan_iter", [-1, 0, -1, -1, -1, -1])
    assert errors == []
    assert has(warnings, "/steps", "nan_iter != -1", "nan_origin is 0, 2 or 4", "row 1")


def test_skipped_step_without_origin_is_a_warning(valid):
    def fn(f):
        g = f["runs"][RUN]
        st = g["steps"][()]
        st["nan_skipped"][0], st["grad_norm"][0] = 1, np.nan
        g["steps"][...] = st
        ep = g["epochs"][()]
        ep["nan_batches"][0], ep["max_grad_norm"][0] = 1, 1.5
        g["epochs"][...] = ep
    errors, warnings = mutate(valid, fn)
    assert errors == []
    assert has(warnings, "nan_skipped = 1 but nan_origin = 0")


@pytest.mark.parametrize("member", ["diag_rho_max", "diag_rho_mean", "diag_cond", "diag_grad_relerr",
                                    "diag_preact_max"])
def test_negative_diagnostic_is_an_error(valid, member):
    errors, _ = set_column(valid, "steps", member, [0.1, 0.1, np.nan, 20.0, -0.5, np.nan]
                           if member != "diag_rho_mean" else [0.05, 0.05, np.nan, 0.1, -0.5, np.nan])
    assert has(errors, "/steps", f"negative {member}", "row 4", "-0.5")


@pytest.mark.parametrize("value", [1.5, -1.0000001, np.inf])
def test_cosine_outside_unit_interval_is_an_error(valid, value):
    errors, _ = set_column(valid, "steps", "diag_grad_cos", [0.9, np.nan, np.nan, value, np.nan, np.nan])
    assert has(errors, "/steps", "diag_grad_cos outside [-1, 1]", "row 3")


def test_cosine_bounds_and_nan_are_valid(valid):
    errors, warnings = set_column(valid, "steps", "diag_grad_cos", [1.0, np.nan, np.nan, -1.0, np.nan, np.nan])
    assert errors == [] and warnings == []


def test_negative_preact_max_is_an_error_and_zero_is_valid(valid):
    errors, _ = set_column(valid, "steps", "diag_preact_max", [3.25, -1e-300, np.nan, 91.5, -np.inf, np.nan])
    # one line for the rule: both negative rows counted, the first named (even -inf is negative)
    assert has(errors, "/steps", "2 row(s)", "negative diag_preact_max", "must be >= 0 or NaN", "row 1", "-1e-300")
    # 0 (z = 0, x = 0), large values past float32's cosh overflow (89.4) and NaN (not a Newton solver) are valid
    errors, warnings = set_column(valid, "steps", "diag_preact_max", [0.0, 1.0e4, np.nan, 89.5, np.nan, np.nan])
    assert errors == [] and warnings == []


def test_infinite_condition_number_is_valid(valid):
    # gecon's reciprocal condition number is 0 for a singular LU
    errors, warnings = set_column(valid, "steps", "diag_cond", [np.inf, 2.0, np.nan, 1.0, 7.0, np.nan])
    assert errors == [] and warnings == []


def test_implausible_diagnostics_are_warnings(valid):
    errors, warnings = set_column(valid, "steps", "diag_rho_mean", [0.95, 0.7, np.nan, 0.6, np.nan, 0.1])
    assert errors == []
    assert has(warnings, "diag_rho_mean > diag_rho_max", "row 0")
    assert has(warnings, "diag_rho_max and diag_rho_mean not both NaN", "row 4")
    errors, warnings = set_column(valid, "steps", "diag_cond", [0.5, 2.0, np.nan, 1.0, 7.0, np.nan])
    assert errors == []
    assert has(warnings, "diag_cond < 1", "row 0")


# ---------------------------------------------------------------------------
# Version 1 files
# ---------------------------------------------------------------------------

def test_v1_file_is_accepted_with_a_note(tmp_path):
    path = make_valid(tmp_path / "v1.h5", statuses=("completed", "running"), version=1)
    with h5py.File(path, "r") as f:
        assert "nan_origin" not in f["runs/r0/steps"].dtype.names
        assert "diverged_batches" not in f["runs/r0/epochs"].dtype.names
    notes = []
    errors, warnings = cs.check_file(str(path), notes)
    assert errors == []
    assert warnings == [w for w in warnings if "incomplete" in w]  # only the running run's warning
    assert has(notes, "/:", "schema version 1", "no step diagnostics")
    p = run_cli(path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{path}: NOTE: /: schema version 1 file" in p.stdout
    assert p.stdout.endswith(f"{path}: 0 errors, 1 warnings\n")


def test_v1_file_still_checks_its_own_members(tmp_path):
    path = make_valid(tmp_path / "v1.h5", version=1)
    errors, _ = with_member(path, "steps", "fwd_reason", drop=True)
    assert has(errors, "/steps:", "missing member 'fwd_reason'")


def test_v1_tables_labelled_v2_are_an_error(tmp_path):
    # the version attribute decides what is required: v1 tables in a v2 file lack the diagnostics
    path = make_valid(tmp_path / "v1.h5", version=1)
    errors, _ = mutate(path, lambda f: f.attrs.__setitem__("schema_version", np.int64(2)))
    for m in list(cs.STEP_DIAG_MEMBERS):
        assert has(errors, f"/runs/{RUN}/steps:", f"missing member '{m}'")
    assert has(errors, f"/runs/{RUN}/epochs:", "missing member 'diverged_batches'")


def test_v2_members_in_a_v1_file_are_ignored(tmp_path):
    # readers ignore unknown members: a v1 file with a bad nan_origin column is not judged by v2 rules
    path = make_valid(tmp_path / "v1.h5", version=1)
    with h5py.File(path, "r+") as f:
        g = f["runs"][RUN]
        old = g["steps"][()]
        new = np.zeros(len(old), dtype=np.dtype(old.dtype.descr + [("nan_origin", "<i4")]))
        for n in old.dtype.names:
            new[n] = old[n]
        new["nan_origin"] = 9
        write_table(g, "steps", new)
    errors, warnings = cs.check_file(str(path))
    assert errors == [] and warnings == []


# ---------------------------------------------------------------------------
# The optional events table
# ---------------------------------------------------------------------------

# As the writer stores it: a 16-byte NUL-terminated name, int64 calls, float64 times and FLOPs.
EVENT_DTYPE = np.dtype([("name", "S16"), ("calls", "<i8"), ("time_max", "<f8"), ("time_sum", "<f8"),
                        ("flops", "<f8")])


def event_rows():
    """One row per event name of core/il_events.c, as the train driver writes
    them: some events never ran (0 calls, 0 time, 0 FLOPs)."""
    ev = np.zeros(len(cs.EVENT_NAMES), dtype=EVENT_DTYPE)
    ev["name"] = [n.encode() for n in cs.EVENT_NAMES]
    ev["calls"] = [6, 6, 30, 0, 0, 0, 0, 12, 0, 12, 6, 6, 0]
    ev["time_max"] = [0.5, 0.25, 0.3, 0, 0, 0, 0, 0.1, 0, 0.05, 0.02, 0.01, 0]
    ev["time_sum"] = ev["time_max"] * WORLD
    ev["time_sum"][0] -= 0.125  # ranks differ: the sum lies between time_max and world_size * time_max
    ev["flops"] = [1.0e9, 4.0e8, 9.0e8, 0, 0, 0, 0, 3.0e8, 0, 1.0e8, 0, 2.0e6, 0]
    return ev


def add_events(path, rows=None, run=RUN, dataset_kwargs=None):
    """Give a run an events table (a fixed-size dataset, as the writer makes it)."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][run]
        if "events" in g:
            del g["events"]
        g.create_dataset("events", data=event_rows() if rows is None else rows, **(dataset_kwargs or {}))
    return path


def with_events(path, fn):
    """Rewrite the run's events table with fn(rows) applied; returns check_file's result."""
    rows = event_rows()
    out = fn(rows)
    add_events(path, rows if out is None else out)
    return cs.check_file(str(path))


@pytest.fixture
def with_ev(valid):
    return add_events(valid)


def test_events_table_is_valid(with_ev):
    notes = []
    errors, warnings = cs.check_file(str(with_ev), notes)
    assert errors == [] and warnings == [] and notes == []
    p = run_cli(with_ev)
    assert p.returncode == 0 and p.stdout == f"{with_ev}: 0 errors, 0 warnings\n", p.stdout + p.stderr


def test_events_table_is_optional(tmp_path):
    # a run without it is as valid as one with it, whatever its status, in the same file
    path = make_valid(tmp_path / "mixed.h5", statuses=("completed", "failed", "running", "completed"))
    add_events(path, run="r0")
    add_events(path, run="r2")  # a killed run may have it (written just before the run's end)
    with h5py.File(path, "r") as f:
        assert "events" not in f["runs/r1"] and "events" not in f["runs/r3"]
    errors, warnings = cs.check_file(str(path))
    assert errors == []
    assert warnings == [w for w in warnings if "incomplete" in w]


def test_empty_events_table_is_valid(valid):
    add_events(valid, np.zeros(0, dtype=EVENT_DTYPE))
    errors, warnings = cs.check_file(str(valid))
    assert errors == [] and warnings == []


def test_variable_length_event_names_are_accepted(valid):
    rows = event_rows()
    dt = np.dtype([("name", h5py.string_dtype())] + [(n, rows.dtype[n]) for n in rows.dtype.names[1:]])
    vl = np.zeros(len(rows), dtype=dt)
    vl["name"] = [n.decode() for n in rows["name"]]
    for n in rows.dtype.names[1:]:
        vl[n] = rows[n]
    add_events(valid, vl)
    errors, warnings = cs.check_file(str(valid))
    assert errors == [] and warnings == []


def test_extra_event_member_is_fine(valid):
    rows = event_rows()
    ext = np.zeros(len(rows), dtype=np.dtype(rows.dtype.descr + [("time_min", "<f8")]))
    for n in rows.dtype.names:
        ext[n] = rows[n]
    add_events(valid, ext)
    errors, warnings = cs.check_file(str(valid))
    assert errors == [] and warnings == []


@pytest.mark.parametrize("member", list(cs.EVENT_MEMBERS))
def test_missing_event_member(with_ev, member):
    errors, _ = with_member(with_ev, "events", member, drop=True)
    assert has(errors, f"/runs/{RUN}/events:", f"missing member '{member}'")


@pytest.mark.parametrize("member,dtype,expect", [
    ("calls", "<f8", "float64"), ("calls", "<i4", "int32"), ("time_max", "<f4", "float32"),
    ("time_sum", "<i8", "int64"), ("flops", "<u8", "uint64"), ("name", "<i4", "int32"),
])
def test_wrong_event_member_dtype(with_ev, member, dtype, expect):
    def fn(rows):
        fields = [(n, np.dtype(dtype) if n == member else rows.dtype[n]) for n in rows.dtype.names]
        out = np.zeros(len(rows), dtype=np.dtype(fields))
        for n in rows.dtype.names:
            if n != member or member != "name":
                out[n] = rows[n]
        return out
    errors, _ = with_events(with_ev, fn)
    assert has(errors, f"/runs/{RUN}/events:", f"member '{member}'", expect, "expected")


def test_events_not_a_compound_table(valid):
    errors, _ = mutate(valid, lambda f: f["runs"][RUN].create_dataset("events", data=np.arange(3.0)))
    assert has(errors, f"/runs/{RUN}/events", "not a compound table")


@pytest.mark.parametrize("member,value,what", [
    ("calls", -1, "negative count calls"),
    ("time_max", -0.5, "negative time time_max"),
    ("time_sum", -0.5, "negative time time_sum"),
    ("flops", -1.0, "negative FLOP count flops"),
    ("time_max", np.nan, "NaN time_max"),
    ("flops", np.nan, "NaN flops"),
])
def test_bad_event_values_are_errors(with_ev, member, value, what):
    def fn(rows):
        rows[member][2] = value
        if member == "time_max" and value == value:
            rows["time_sum"][2] = 0.0  # keep time_sum >= time_max out of the way
    errors, _ = with_events(with_ev, fn)
    assert has(errors, f"/runs/{RUN}/events", what, "row 2")


def test_time_sum_below_time_max_is_an_error(with_ev):
    def fn(rows):
        rows["time_sum"][7] = rows["time_max"][7] * 0.5
    errors, _ = with_events(with_ev, fn)
    assert has(errors, f"/runs/{RUN}/events", "time_sum < time_max", "row 7")
    # equal (one rank, or ranks that did nothing else) is fine
    errors, warnings = with_events(with_ev, lambda rows: rows.__setitem__("time_sum", rows["time_max"]))
    assert errors == [] and warnings == []


def test_unknown_event_name_is_a_warning(with_ev):
    def fn(rows):
        rows["name"][3] = b"gpu_sync"
    errors, warnings = with_events(with_ev, fn)
    assert errors == []
    assert has(warnings, f"/runs/{RUN}/events", "not in core/il_events.c", "gpu_sync", "row 3")


def test_duplicate_and_empty_event_names(with_ev):
    errors, warnings = with_events(with_ev, lambda rows: rows["name"].__setitem__(4, b"map"))
    assert errors == []
    assert has(warnings, "/events", "name that an earlier row has", "row 4")
    errors, _ = with_events(with_ev, lambda rows: rows["name"].__setitem__(5, b""))
    assert has(errors, "/events", "empty event name", "row 5")


def test_events_in_a_v1_file_are_ignored(tmp_path):
    # a version-1 file has no events table: one there is an unknown dataset
    path = make_valid(tmp_path / "v1.h5", version=1)
    rows = event_rows()
    rows["calls"][0] = -5
    add_events(path, rows)
    errors, warnings = cs.check_file(str(path))
    assert errors == [] and warnings == []


def test_loader_reads_events(tmp_path):
    spec = importlib.util.spec_from_file_location("ilbench_results", ROOT / "analysis" / "ilbench_results.py")
    ir = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ir)
    path = make_valid(tmp_path / "l.h5", statuses=("completed", "completed"))
    add_events(path, run="r0")
    runs = {r.run_id: r for r in ir.load_runs(path)}
    assert runs["r1"].events is None and ir.event_totals(runs["r1"]) == {}
    ev = runs["r0"].events
    assert list(ev.dtype.names) == ["name", "calls", "time_max", "time_sum", "flops"]
    assert [type(n) for n in ev["name"]] == [np.str_] * len(cs.EVENT_NAMES)
    assert list(ev["name"]) == list(cs.EVENT_NAMES)
    want = event_rows()
    for n in ("calls", "time_max", "time_sum", "flops"):
        assert np.array_equal(ev[n], want[n])
    tot = ir.event_totals(runs["r0"])
    assert tot["map"] == {"calls": 30, "time_max": 0.3, "time_sum": 0.6, "flops": 9.0e8}
    assert isinstance(tot["map"]["calls"], int)


# ---------------------------------------------------------------------------
# Stop rules: stop_mode, stop_norm, best_rule (optional; older files lack some)
# ---------------------------------------------------------------------------

def load_module_ir():
    spec = importlib.util.spec_from_file_location("ilbench_results", ROOT / "analysis" / "ilbench_results.py")
    ir = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ir)
    return ir


def test_stop_rules_of_older_files_read_as_meant(tmp_path):
    # r0: a file from before stop_norm and best_rule, with stop_mode rel (PETSc's rtol) and --best;
    # r1: from before stop_mode existed at all. Both are valid and read as they were meant.
    path = make_valid(tmp_path / "old.h5", statuses=("completed", "completed"))
    with h5py.File(path, "r+") as f:
        f["runs/r0"].attrs["stop_mode"] = s("rel")
        f["runs/r0"].attrs["best"] = np.int64(1)
    errors, warnings = cs.check_file(str(path))
    assert errors == [] and warnings == []
    runs = {r.run_id: r for r in load_module_ir().load_runs(path)}
    a, b = runs["r0"].attrs, runs["r1"].attrs
    assert (a["stop_mode"], a["stop_norm"], a["best_rule"], a["best"]) == ("rel", "frob", "batch", 1)
    assert (b["stop_mode"], b["stop_norm"], b["best_rule"]) == ("abs", "frob", "off")


def test_stop_rules_of_new_files_are_kept(tmp_path):
    path = make_valid(tmp_path / "new.h5")
    with h5py.File(path, "r+") as f:
        g = f["runs"][RUN]
        for k, v in (("stop_mode", "relf"), ("stop_norm", "max"), ("best_rule", "sample")):
            g.attrs[k] = s(v)
        g.attrs["best"] = np.int64(1)
    errors, warnings = cs.check_file(str(path))
    assert errors == [] and warnings == []
    a = load_module_ir().load_runs(path)[0].attrs
    assert (a["stop_mode"], a["stop_norm"], a["best_rule"]) == ("relf", "max", "sample")


@pytest.mark.parametrize("attrs, kind, words", [
    ({"stop_norm": s("l2")}, "warning", ("stop_norm", "'l2'", "frob, max, mean")),
    ({"stop_mode": s("relative")}, "warning", ("stop_mode", "'relative'")),
    ({"best_rule": s("rows")}, "warning", ("best_rule", "'rows'")),
    ({"stop_norm": np.int64(1)}, "error", ("stop_norm", "expected a scalar string")),
    ({"best": np.int64(0), "best_rule": s("sample")}, "warning", ("best is 0", "'sample'")),
    ({"stop": s("sample"), "stop_norm": s("max")}, "warning", ("stop_norm 'max'", "stop 'sample'")),
])
def test_stop_rule_values_are_checked(valid, attrs, kind, words):
    def fn(f):
        for k, v in attrs.items():
            f["runs"][RUN].attrs[k] = v
    errors, warnings = mutate(valid, fn)
    msgs = errors if kind == "error" else warnings
    assert has(msgs, *words), (errors, warnings)
    if kind == "warning":
        assert errors == []


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def run_cli(*args):
    return subprocess.run([PYTHON, str(CHECKER), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})


def test_cli_clean_file(valid):
    p = run_cli(valid)
    assert p.returncode == 0, p.stdout + p.stderr
    assert p.stdout == f"{valid}: 0 errors, 0 warnings\n"


def test_cli_reports_errors_and_exits_1(valid, tmp_path):
    bad = tmp_path / "bad.h5"
    make_valid(bad)
    with_member(bad, "epochs", "test_err", drop=True)
    p = run_cli(valid, bad)
    assert p.returncode == 1
    lines = p.stdout.splitlines()
    assert f"{bad}: ERROR: /runs/{RUN}/epochs: missing member 'test_err'" in lines
    assert f"{bad}: 1 errors, 0 warnings" in lines
    assert f"{valid}: 0 errors, 0 warnings" in lines


def test_cli_warning_only_exits_0(tmp_path):
    path = make_valid(tmp_path / "k.h5", statuses=("running",))
    p = run_cli(path)
    assert p.returncode == 0
    assert f"{path}: WARNING: /runs/r0: run is incomplete" in p.stdout
    assert p.stdout.endswith(f"{path}: 0 errors, 1 warnings\n")


def test_cli_unreadable_file_exits_2(tmp_path):
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    p = run_cli(junk)
    assert p.returncode == 2
    assert str(junk) in p.stderr and "cannot open" in p.stderr
    with pytest.raises(cs.Unreadable):
        cs.check_file(str(tmp_path / "missing.h5"))


def test_cli_usage_error_exits_2():
    p = run_cli()
    assert p.returncode == 2
    assert "usage" in p.stderr


# ---------------------------------------------------------------------------
# Damaged files: every structural problem is a counted error, never a traceback
# ---------------------------------------------------------------------------

def _replace(g, name, make):
    """Replace g[name] (whatever it is) with what make(g, name) creates."""
    if name in g or g.get(name, getlink=True) is not None:
        del g[name]
    make(g, name)


def _corrupt_first_chunk(path, run=RUN, table="steps"):
    """Rewrite a table gzip-compressed, then overwrite its first chunk's bytes:
    reading it fails inside HDF5 (inflate() failed)."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][run]
        data = g[table][()]
        del g[table]
        ds = g.create_dataset(table, data=data, chunks=(64,), maxshape=(None,), compression="gzip")
        info = ds.id.get_chunk_info(0)
        off, size = info.byte_offset, info.size
    with open(path, "r+b") as fh:
        fh.seek(off)
        fh.write(b"\xde\xad" * (size // 2))


def _table_dtype(f, table, run="r1"):
    return f["runs"][run][table].dtype


DAMAGE = {
    # name: (damage(f), words one error holds)
    "runs is a dataset": (lambda f: _replace(f, "runs", lambda g, n: g.create_dataset(n, data=[1, 2])),
                          ("/runs:", "is not a group")),
    "runs is a dangling link": (lambda f: _replace(f, "runs", lambda g, n: g.__setitem__(n, h5py.SoftLink("/gone"))),
                                ("/runs:", "cannot open")),
    "runs is an external link to a missing file": (
        lambda f: _replace(f, "runs", lambda g, n: g.__setitem__(n, h5py.ExternalLink("/nonexistent.h5", "/runs"))),
        ("/runs:", "cannot open", "external")),
    "a run is a dataset": (lambda f: _replace(f["runs"], "r1", lambda g, n: g.create_dataset(n, data=[1])),
                           ("/runs/r1:", "is not a group")),
    "a run is a dangling link": (lambda f: f["runs"].__setitem__("r2", h5py.SoftLink("/nowhere")),
                                 ("/runs/r2:", "cannot open")),
    "a run is an external link": (lambda f: f["runs"].__setitem__("r2", h5py.ExternalLink("/nonexistent.h5", "/x")),
                                  ("/runs/r2:", "cannot open")),
    "a table is a group": (lambda f: _replace(f["runs/r0"], "epochs", lambda g, n: g.create_group(n)),
                           ("/runs/r0/epochs:", "is not a dataset")),
    "a table is 2-D": (lambda f: _replace(f["runs/r0"], "steps", lambda g, n: g.create_dataset(
        n, data=np.zeros((2, 3), dtype=_table_dtype(f, "steps")))), ("/runs/r0/steps:", "2 dimensions")),
    "a table is a scalar": (lambda f: _replace(f["runs/r0"], "epochs", lambda g, n: g.create_dataset(
        n, data=np.zeros((), dtype=_table_dtype(f, "epochs")))), ("/runs/r0/epochs:", "0 dimensions")),
    "a table has a null dataspace": (lambda f: _replace(f["runs/r0"], "ranks", lambda g, n: g.create_dataset(
        n, data=h5py.Empty(_table_dtype(f, "ranks")))), ("/runs/r0/ranks:", "0 dimensions")),
    "a table is not compound": (lambda f: _replace(f["runs/r0"], "steps", lambda g, n: g.create_dataset(
        n, data=np.zeros(6))), ("/runs/r0/steps:", "not a compound table")),
    "a table is a dangling link": (
        lambda f: _replace(f["runs/r0"], "epochs", lambda g, n: g.__setitem__(n, h5py.SoftLink("/gone"))),
        ("/runs/r0/epochs:", "cannot open")),
    "a table is an external link": (
        lambda f: _replace(f["runs/r0"], "steps", lambda g, n: g.__setitem__(n, h5py.ExternalLink("/no.h5", "/x"))),
        ("/runs/r0/steps:", "cannot open")),
    "events is a group": (lambda f: f["runs/r0"].create_group("events"), ("/runs/r0/events:", "is not a dataset")),
    "events is 2-D": (lambda f: f["runs/r0"].create_dataset("events", data=np.zeros((2, 2), dtype=EVENT_DTYPE)),
                      ("/runs/r0/events:", "2 dimensions")),
    "status is an array": (lambda f: f["runs/r0"].attrs.__setitem__("status", [b"completed", b"failed"]),
                           ("/runs/r0:", "'status'", "non-scalar")),
    "status is empty": (lambda f: f["runs/r0"].attrs.__setitem__("status", h5py.Empty("S10")),
                        ("/runs/r0:", "'status'", "empty")),
    "status is compound": (lambda f: f["runs/r0"].attrs.__setitem__("status", np.zeros((), dtype=[("a", "<i4")])),
                           ("/runs/r0:", "'status'", "expected a scalar string")),
    "status is a bool": (lambda f: f["runs/r0"].attrs.__setitem__("status", True),
                         ("/runs/r0:", "'status'", "bool")),
    "schema_version is a string": (lambda f: f.attrs.__setitem__("schema_version", "3"),
                                   ("/:", "'schema_version'", "is a string", "integer")),
    "schema is empty": (lambda f: f.attrs.__setitem__("schema", h5py.Empty("S10")), ("/:", "'schema'", "empty")),
    "world_size is an array": (lambda f: f.attrs.__setitem__("world_size", [1, 2]),
                               ("/:", "'world_size'", "non-scalar")),
    "merged_from is an integer array": (lambda f: f.attrs.__setitem__("merged_from", np.arange(3)),
                                        ("/:", "merged_from", "1-D array of strings")),
    "peak_bytes_total is an array": (lambda f: f["runs/r0"].attrs.__setitem__("peak_bytes_total", [1, 2]),
                                     ("/runs/r0:", "peak_bytes_total", "non-scalar")),
}


def _check_damaged(path, words):
    """check_file and the command line on a damaged file: the problem is a
    counted error with `words`, no exception escapes, exit status 1 and the
    summary counts what check_file returns."""
    errors, warnings = cs.check_file(str(path))
    assert has(errors, *words), errors
    p = run_cli(path)
    assert "Traceback" not in p.stdout + p.stderr, p.stdout + p.stderr
    assert p.returncode == 1, p.stdout + p.stderr
    assert p.stdout.endswith(f"{path}: {len(errors)} errors, {len(warnings)} warnings\n"), p.stdout
    assert sum(1 for line in p.stdout.splitlines() if ": ERROR: " in line) == len(errors)
    return errors, warnings


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_file_is_a_counted_error(tmp_path, case):
    damage, words = DAMAGE[case]
    path = make_valid(tmp_path / "d.h5", statuses=("completed", "completed"))
    with h5py.File(path, "r+") as f:
        damage(f)
    _check_damaged(path, words)


def test_unreadable_table_chunk_is_an_error(tmp_path):
    path = make_valid(tmp_path / "c.h5", statuses=("completed", "completed"))
    _corrupt_first_chunk(path)
    errors, _ = _check_damaged(path, (f"/runs/{RUN}/steps:", "cannot read the table", "inflate"))
    # only that table is lost: the other run and the run's other tables are clean
    assert [e for e in errors if not e.startswith(f"/runs/{RUN}/steps")] == []


def test_one_damaged_run_does_not_hide_the_others(tmp_path):
    path = make_valid(tmp_path / "m.h5", statuses=("completed", "completed", "completed"))
    _corrupt_first_chunk(path, run="r0")
    with h5py.File(path, "r+") as f:
        _replace(f["runs"], "r1", lambda g, n: g.create_dataset(n, data=[1]))
    with_member(path, "epochs", "test_err", drop=True, run="r2")
    errors, _ = _check_damaged(path, ("/runs/r0/steps:", "cannot read the table"))
    assert has(errors, "/runs/r1:", "is not a group")
    assert has(errors, "/runs/r2/epochs:", "missing member 'test_err'")
    assert len(errors) == 3, errors


def test_exception_in_a_check_is_an_error_and_the_rest_goes_on(tmp_path, monkeypatch):
    # a check that raises (a checker bug, or a damage no rule foresaw) costs only its own part
    path = make_valid(tmp_path / "x.h5", statuses=("completed", "completed"))
    with_member(path, "epochs", "test_err", drop=True, run="r1")

    def boom(*args, **kwargs):
        raise RuntimeError("simulated")
    monkeypatch.setattr(cs, "check_steps_values", boom)
    errors, _ = cs.check_file(str(path))
    assert has(errors, "/runs/r0/steps:", "cannot check the values", "RuntimeError", "simulated")
    assert has(errors, "/runs/r1/steps:", "RuntimeError")
    assert has(errors, "/runs/r1/epochs:", "missing member 'test_err'")
    monkeypatch.setattr(cs, "check_run_writer_attrs", boom)
    errors, _ = cs.check_file(str(path))
    assert has(errors, "/runs/r0:", "cannot check the run's attributes")
    assert has(errors, "/runs/r1/epochs:", "missing member 'test_err'")


def test_main_counts_an_unexpected_exception(tmp_path, monkeypatch, capsys):
    path = make_valid(tmp_path / "y.h5")

    def boom(*args, **kwargs):
        raise ValueError("simulated")
    monkeypatch.setattr(cs, "check_file", boom)
    assert cs.main([str(path)]) == 1
    out = capsys.readouterr().out
    assert f"{path}: ERROR: /: the checker stopped (ValueError: simulated)" in out
    assert out.endswith(f"{path}: 1 errors, 0 warnings\n")


@pytest.mark.parametrize("kind", ["vlen", "fixed-utf8", "fixed-nullpad"])
def test_string_attributes_of_every_kind_are_accepted(valid, kind):
    # SCHEMA.md: readers MUST accept fixed- and variable-length strings, here
    # the root `schema` and a run's `status`, as h5py or another writer stores them
    def put(obj, name, value):
        if kind == "vlen":
            obj.attrs[name] = value  # h5py: variable-length UTF-8
        elif kind == "fixed-utf8":
            obj.attrs.create(name, value.encode(), dtype=h5py.string_dtype("utf-8", len(value) + 4))
        else:
            obj.attrs[name] = np.bytes_(value)  # h5py: fixed-length, NULLPAD, no terminator

    def fn(f):
        put(f, "schema", "ilbench-results")
        put(f["runs"][RUN], "status", "completed")
        put(f["runs"][RUN], "solver", "newton")
    errors, warnings = mutate(valid, fn)
    assert errors == [] and warnings == []
    with h5py.File(valid, "r") as f:
        info = h5py.check_string_dtype(f.attrs.get_id("schema").dtype)
        assert (info.length is None) == (kind == "vlen")  # the file really holds that kind
        assert info.encoding == ("ascii" if kind == "fixed-nullpad" else "utf-8")


# ---------------------------------------------------------------------------
# A real file written by ilbench (optional)
# ---------------------------------------------------------------------------

@pytest.mark.skipif(not os.environ.get("ILBENCH_TEST_H5"), reason="ILBENCH_TEST_H5 not set")
def test_real_file_from_ilbench():
    path = os.environ["ILBENCH_TEST_H5"]
    p = run_cli(path)
    print(p.stdout, p.stderr)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"{path}: 0 errors," in p.stdout


def _add_unfinished_epoch(path, run_id):
    """Append one epoch's worth of steps after the last epochs row, as a kill
    between the writer's two per-epoch flushes leaves it."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][run_id]
        st = g["steps"][:]
        extra = st[:STEPS_PER_EPOCH].copy()
        extra["epoch"] = len(g["epochs"])
        del g["steps"]
        write_table(g, "steps", np.concatenate([st, extra]))


def test_running_run_may_end_with_an_unfinished_epoch(tmp_path):
    path = make_valid(tmp_path / "k.h5", statuses=("running",))
    _add_unfinished_epoch(path, "r0")
    errors, warnings = cs.check_file(str(path))
    assert errors == []
    assert has(warnings, "unfinished epoch")


def test_completed_run_with_steps_beyond_its_epochs_is_an_error(tmp_path):
    path = make_valid(tmp_path / "c.h5", statuses=("completed",))
    _add_unfinished_epoch(path, "r0")
    errors, _ = cs.check_file(str(path))
    assert has(errors, "outside the epochs table")


# ---------------------------------------------------------------------------
# Version 3: one vocabulary (schema.json), enums, migration of version 2
# ---------------------------------------------------------------------------

def test_v2_file_is_accepted_with_a_note(tmp_path):
    path = make_valid(tmp_path / "v2.h5", version=2)
    notes = []
    errors, warnings = cs.check_file(str(path), notes)
    assert errors == [] and warnings == []
    assert has(notes, "/:", "schema version 2", "t_*")
    with h5py.File(path, "r") as f:
        names = f["runs"][RUN]["steps"].dtype.names
        assert "t_forward" in names and "forward_s" not in names


def test_v3_reason_must_be_an_hdf5_enum(valid):
    errors, _ = with_member(valid, "steps", "fwd_reason", dtype="<i4")
    assert has(errors, "/steps:", "fwd_reason", "HDF5 enum")


def test_v3_tables_come_from_schema_json():
    import json
    with open(cs.SCHEMA_JSON) as f:
        sj = json.load(f)
    assert cs.SCHEMA_VERSION == sj["schema_version"] == 3
    assert list(cs.TABLES["steps"]) == [c["name"] for c in sj["tables"]["steps"]["columns"] if not c.get("optional")]
    assert list(cs.OPTIONAL_MEMBERS[3]["steps"]) == [c["name"] for c in sj["tables"]["steps"]["columns"]
                                                     if c.get("optional")]
    assert "forward_s" in cs.TABLES["epochs"] and "ranks" in cs.TABLES["epochs"]
    assert "t_forward" in cs.TABLES_BY_VERSION[2]["steps"] and "global_step" not in cs.TABLES_BY_VERSION[2]["steps"]
    assert cs.REASONS == {0: "converged", 1: "max-iter", 2: "diverged", 3: "non-finite"}


def test_global_step_not_the_row_index_is_an_error(valid):
    errors, _ = set_column(valid, "steps", "global_step", [0, 1, 2, 3, 5, 5])
    assert has(errors, "/steps", "global_step is not the row index")


def test_epoch_phase_time_not_the_sum_of_its_steps_is_a_warning(valid):
    _, warnings = set_column(valid, "epochs", "forward_s", [0.03, 0.5])
    assert has(warnings, "(epoch 1)", "epochs.forward_s")


# ---------------------------------------------------------------------------
# Optional columns within version 3 (schema.json "optional": true): jac_reg
# ---------------------------------------------------------------------------

def add_jac_reg(path, steps_values, epochs_values, dtype="<f8", attr=None):
    """Append the optional jac_reg member to steps and epochs of run r0 (and set its attribute)."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][RUN]
        if attr is not None:
            g.attrs["jac_reg"] = np.float64(attr)
        for name, vals in (("steps", steps_values), ("epochs", epochs_values)):
            old = g[name][()]
            new = np.zeros(len(old), dtype=np.dtype([(n, old.dtype.fields[n][0]) for n in old.dtype.names] +
                                                    [("jac_reg", dtype)]))
            for n in old.dtype.names:
                new[n] = old[n]
            new["jac_reg"] = vals
            write_table(g, name, new)
    return cs.check_file(str(path))


def test_optional_columns_are_known_and_not_required(valid):
    assert "jac_reg" in cs.OPTIONAL_MEMBERS[3]["steps"] and "jac_reg" in cs.OPTIONAL_MEMBERS[3]["epochs"]
    assert "jac_reg" not in cs.TABLES["steps"] and "jac_reg" not in cs.OPTIONAL_MEMBERS[2]["steps"]
    errors, warnings = cs.check_file(str(valid))  # a file without them
    assert errors == [] and warnings == []


def test_jac_reg_column_present_is_checked(valid, tmp_path):
    steps = [0.5, np.nan, 0.25, 0.5, np.nan, 0.125]  # --jac-reg-every 2: NaN where not computed
    errors, warnings = add_jac_reg(valid, steps, [0.375, 0.3125], attr=1.0)
    assert errors == [] and warnings == []
    bad = make_valid(tmp_path / "neg.h5")
    errors, _ = add_jac_reg(bad, [0.5, -1.0, 0.25, 0.5, 0.1, 0.2], [0.3, 0.3], attr=1.0)
    assert has(errors, "/steps:", "negative jac_reg")
    typed = make_valid(tmp_path / "f32.h5")
    errors, _ = add_jac_reg(typed, [0.5] * 6, [0.5, 0.5], dtype="<f4", attr=1.0)
    assert has(errors, "/steps:", "jac_reg", "float64")
    off = make_valid(tmp_path / "off.h5")
    errors, warnings = add_jac_reg(off, [0.5] * 6, [np.nan, np.nan], attr=0.0)
    assert errors == [] and has(warnings, "/steps:", "jac_reg computed although")


# ---------------------------------------------------------------------------
# The optional trace table (--trace N)
# ---------------------------------------------------------------------------

TRACE_EVERY = 2


def trace_rows(st):
    """As the train driver writes them for the fixture's newton/implicit run: every TRACE_EVERY-th
    step, forward iterations 0..fwd_iters (Newton checks its start), the last residual the step's
    fwd_residual, then the lu backward's 1 + refinement rows."""
    rows = []
    for r in st[st["global_step"] % TRACE_EVERY == 0]:
        fwd = 10.0 ** -np.arange(int(r["fwd_iters"]) + 1)
        bwd = 10.0 ** -(8 + np.arange(int(r["bwd_iters"])))
        for solve, name, first, res in (("forward", "newton", 0, fwd), ("backward", "lu", 1, bwd)):
            rows += [(r["global_step"], solve.encode(), name.encode(), first + i, v, v / res[0])
                     for i, v in enumerate(res)]
    return np.array(rows, dtype=[("global_step", "<i4"), ("solve", "S16"), ("solver", "S16"),
                                 ("iteration", "<i4"), ("residual", "<f8"), ("rel_residual", "<f8")])


def add_trace(path, run=RUN, fn=None, attr=True):
    """Give a run a trace table consistent with its steps (fn(rows) may break it) and its
    `trace` attribute; steps.fwd_residual is set to the last forward residual of each step."""
    with h5py.File(path, "r+") as f:
        g = f["runs"][run]
        st = g["steps"][()]
        st["fwd_residual"] = 10.0 ** -st["fwd_iters"].astype(float)
        g["steps"][...] = st
        rows = trace_rows(st)
        if fn is not None:
            rows = fn(rows)
        write_table(g, "trace", rows)
        if attr:
            g.attrs["trace"] = np.int64(TRACE_EVERY)
    return cs.check_file(str(path))


def test_trace_table_is_valid(valid):
    notes = []
    errors, warnings = add_trace(valid)
    assert errors == [] and warnings == []
    errors, warnings = cs.check_file(str(valid), notes)
    assert notes == []


def test_trace_attribute_and_table_go_together(valid, tmp_path):
    errors, _ = add_trace(valid, attr=False)
    assert has(errors, f"/runs/{RUN}/trace", "no 'trace' attribute")
    path = make_valid(tmp_path / "attr.h5")
    errors, _ = mutate(path, lambda f: f["runs"][RUN].attrs.__setitem__("trace", np.int64(3)))
    assert has(errors, f"/runs/{RUN}", "'trace' attribute but no 'trace' table")
    errors, _ = mutate(path, lambda f: f["runs"][RUN].attrs.__setitem__("trace", np.int64(0)))
    assert has(errors, f"/runs/{RUN}", "'trace' is 0")


def _regs(rows, old, new):
    rows["global_step"][rows["global_step"] == old] = new
    return rows


def _set(member, i, v):
    def fn(rows):
        rows[member][i] = v
        return rows
    return fn


@pytest.mark.parametrize("fn, what", [
    (_set("rel_residual", 3, 0.5), "rel_residual != residual / the solve's first residual"),
    (_set("iteration", 2, 7), "iterations are not consecutive"),
    (_set("iteration", 0, 2), "first iteration is not 1"),
    (_set("solve", 1, b"sideways"), "solve not 'forward' or 'backward'"),
    (_set("residual", 4, -1.0), "negative residual"),
    (lambda rows: _regs(rows, 4, 5), "not a multiple of the run's trace"),
    (lambda rows: rows[::-1], "not grouped by global_step in order"),
    (lambda rows: np.concatenate([rows[6:8], rows[:6], rows[8:]]), "backward rows come before its forward rows"),
    (lambda rows: rows[rows["global_step"] != 2], "a multiple of trace = 2 but no forward rows"),
])
def test_trace_rule_errors(valid, fn, what):
    errors, _ = add_trace(valid, fn=fn)
    assert has(errors, f"/runs/{RUN}/trace", what), errors


def test_trace_disagreeing_with_steps_is_a_warning(valid):
    errors, warnings = add_trace(valid, fn=lambda rows: rows[rows["iteration"] != 5])  # the forward ends early
    assert errors == []
    assert has(warnings, "/trace", "last forward iteration differs from steps.fwd_iters")
    assert has(warnings, "/trace", "last forward residual differs from steps.fwd_residual")


def test_trace_of_a_killed_run_may_run_ahead_of_its_steps(tmp_path):
    # trace rows are flushed just before their steps rows: a killed run may hold a few more
    path = make_valid(tmp_path / "k.h5", statuses=("running",))  # one epoch, steps 0..2, traced 0 and 2
    add_trace(path)
    with h5py.File(path, "r+") as f:
        f["runs"][RUN]["epochs"].resize((0,))  # killed in its first epoch, after step 2's trace rows
        f["runs"][RUN]["steps"].resize((2,))
    notes = []
    errors, warnings = cs.check_file(str(path), notes)
    assert errors == [], errors
    assert has(notes, "/trace", "1 traced step(s) not in the steps table", "'running'")
