#!/usr/bin/python3
"""Load ilbench results files (analysis/SCHEMA.md, schema `ilbench-results`,
major versions 1, 2 and 3) into small Python objects. The tables, columns and
enum names come from analysis/schema.json (`ilbench schema --json`).

    from ilbench_results import load_runs, load_many
    runs = load_runs("results.h5")          # list[Run], in file order
    runs = load_many(["a.h5", "b.h5"])      # concatenated, in argument order

Each `Run` holds the run's id, the file it came from, its attributes decoded
to Python values (`attrs`: str, int, float, list), its `status`, the
`epochs`, `steps` and `ranks` tables as numpy structured arrays (`ranks` is
None while a run is incomplete), the optional `events` table (named events
with calls, inclusive times and FLOPs, as PETSc's -log_view; None when the
run has none, `name` decoded to str; see `event_totals`), the optional
`trace` table (--trace N: the residual of every iteration of every N-th
step's forward and backward solves; None when the run has none, `solve` and
`solver` decoded to str; see `trace_curves`) and the file's root
attributes (`software_version`, `host`, `root_attrs`) and its major
`schema_version`.

Stop-rule attributes an older run lacks (stop_mode, stop_norm, best_rule) are
filled in as that run meant them (`stop_rule_defaults`: abs, frob, and batch
or off from `best`); values present are kept as they are.

Version 1 and 2 files are migrated to version 3 names as they load
(`migrate`): t_forward ... t_test become forward_s ... test_s, steps get
global_step, epochs get their phase times (sums over their steps) and ranks.
Reasons and NaN origins are integer codes in every version (an HDF5 enum in
version 3); `names(table, member)`, `reason_name` and `nan_origin_name` give
their names. Every string (attributes, string members) is a str, never bytes.
Version 1 tables still lack the version-2 members
(epochs.diverged_batches, steps.diag_*, steps.nan_origin, steps.nan_iter).
Use `column(table, name)`, which gives NaN for a member the table does not
have, or `has_column`, rather than indexing a member that may be absent;
`metrics()` reports NaN for numbers a file cannot give.

Following SCHEMA.md, readers access table members by name and ignore
attributes, members, datasets and groups they do not know; the file's schema
name and major version are checked before anything else is read
(`SchemaError` otherwise); a file that cannot be opened as HDF5 raises
`Unreadable`. Use Debian's /usr/bin/python3 (numpy, h5py).
"""

import os
from dataclasses import dataclass, field
from typing import Any, Optional

# SCHEMA.md: readers SHOULD set HDF5_USE_FILE_LOCKING=FALSE (read before h5py
# loads the HDF5 library), unless the caller chose otherwise.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402
import numpy as np  # noqa: E402

import json  # noqa: E402

# The schema as data: analysis/schema.json (`ilbench schema --json`, made from
# bench/results_columns.h): tables, columns, types, units, enum names.
SCHEMA_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.json")
with open(SCHEMA_JSON, encoding="utf-8") as _f:
    SCHEMA = json.load(_f)

SCHEMA_NAME = SCHEMA["schema"]
SCHEMA_VERSION = SCHEMA["schema_version"]  # the major version ilbench writes (3)
SUPPORTED_VERSIONS = tuple(range(1, SCHEMA_VERSION + 1))  # major versions this reader loads

# Enum columns (fwd_reason, bwd_reason: REASON; nan_origin: NANORIGIN): value -> name.
ENUMS = {k: {e["value"]: e["name"] for e in v} for k, v in SCHEMA["enums"].items()}
REASONS = ENUMS["REASON"]          # 0 converged, 1 max-iter, 2 diverged, 3 non-finite
NAN_ORIGINS = ENUMS["NANORIGIN"]   # 0 none, 1 fwd_solve, 2 fwd_other, 3 bwd_layer, 4 bwd_other
COLUMNS = {t: {c["name"]: c for c in v["columns"]} for t, v in SCHEMA["tables"].items()}

# Columns renamed in version 3 ({table: {old: new}}), applied to older files when loaded.
RENAMED_V3 = {}
for _r in SCHEMA["renamed_in_v3"]:
    RENAMED_V3.setdefault(_r["table"], {})[_r["from"]] = _r["to"]

# The members version 1 lacks (added in version 2), and those version 3 added.
V2_EPOCH_MEMBERS = tuple(n for n, c in COLUMNS["epochs"].items() if c["since"] == 2)
V2_STEP_MEMBERS = tuple(n for n, c in COLUMNS["steps"].items() if c["since"] == 2)

_NP = {"I32": "<i4", "I64": "<i8", "U64": "<u8", "F64": "<f8", "STR16": "S16", "REASON": "<i4", "NANORIGIN": "<i4"}


def _dtype(table):
    return np.dtype([(n, _NP[c["type"]]) for n, c in COLUMNS[table].items()])


# Used only to build an empty table when a table is missing, so that code
# working on `run.epochs[...]` sees zero rows.
_EPOCH_DTYPE = _dtype("epochs")
_STEP_DTYPE = _dtype("steps")


def enum_name(kind, value) -> str:
    """The name of value `value` of enum `kind` ("REASON" or "NANORIGIN"), or
    "unknown(<value>)" for a value the schema does not define."""
    return ENUMS[kind].get(int(value), f"unknown({int(value)})")


def reason_name(code) -> str:
    """il_reason name of a fwd_reason/bwd_reason value ("converged", "max-iter", ...)."""
    return enum_name("REASON", code)


def nan_origin_name(code) -> str:
    """Name of a nan_origin value ("none", "fwd_solve", ...)."""
    return enum_name("NANORIGIN", code)


def names(table, member) -> np.ndarray:
    """An enum column (fwd_reason, bwd_reason, nan_origin) of a loaded table as
    an array of str names, the same for every schema version (files store the
    integer codes; version 3 as an HDF5 enum carrying the names)."""
    tname = next((t for t, cols in COLUMNS.items() if member in cols and cols[member]["type"] in ENUMS), None)
    if tname is None:
        raise KeyError(f"{member!r} is not an enum column")
    kind = COLUMNS[tname][member]["type"]
    if table is None or table.dtype.names is None or member not in table.dtype.names:
        return np.zeros(0, dtype=str)
    return np.array([enum_name(kind, v) for v in np.asarray(table[member]).tolist()], dtype=str)


# events (optional): its members, as this reader returns them ("name" decoded
# from the file's fixed-length bytes to str).
EVENT_NAMES = ("fwd_solve", "bwd_solve", "map", "jacobian", "lu_factor", "lu_solve",
               "jvp", "vjp", "vjp2", "head", "allreduce", "update", "jac_reg")  # core/il_events.c
EVENT_NUMERIC = ("calls", "time_max", "time_sum", "flops")


class Unreadable(Exception):
    """The file cannot be opened or read as HDF5."""


class SchemaError(Exception):
    """The file is not an ilbench-results file of a supported major version,
    or lacks what a reader needs (the /runs group)."""


def decode(v):
    """An attribute value as a plain Python value: bytes -> str, numpy scalars
    -> int/float/bool, arrays -> lists (of decoded values)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("utf-8", errors="replace").rstrip("\0")
    if isinstance(v, np.ndarray):
        if v.shape == ():
            return decode(v[()])
        return [decode(x) for x in v.tolist()] if v.dtype.kind in "SOU" else v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, list):
        return [decode(x) for x in v]
    return v


def decode_attrs(obj):
    """All attributes of an HDF5 object as {name: decoded value}. Attributes
    h5py cannot read (unknown types, empty dataspace) are skipped, since
    readers MUST ignore what they do not know."""
    out = {}
    for k in obj.attrs:
        try:
            out[k] = decode(obj.attrs[k])
        except (OSError, TypeError, ValueError):
            continue
    return out


# Stop-rule attributes newer than the first files (SCHEMA.md, "Stop rules"). A run that lacks one
# was written while it had a single value, and reads as that value; a value present is kept as it
# is (stop_mode "rel" stays relative to the first residual, PETSc's rtol).
STOP_RULE_DEFAULTS = {"stop_mode": "abs", "stop_norm": "frob"}


def stop_rule_defaults(attrs):
    """attrs (a run's decoded attributes) with the stop-rule keys an older file lacks filled in
    as that file meant them: stop_mode "abs", stop_norm "frob" (the batch's Frobenius norm, the
    norm of its fwd_residual), best_rule "batch" where the int `best` is 1, else "off".
    Returns attrs."""
    for k, v in STOP_RULE_DEFAULTS.items():
        attrs.setdefault(k, v)
    if "best_rule" not in attrs:
        attrs["best_rule"] = "batch" if attrs.get("best") else "off"
    return attrs


@dataclass
class Run:
    run_id: str
    file: str
    attrs: dict
    status: str
    epochs: np.ndarray
    steps: np.ndarray
    ranks: Optional[np.ndarray]
    software_version: str = "unknown"   # root attribute of the file
    host: str = "unknown"               # root attribute of the file
    root_attrs: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION  # major version of the file the run came from
    events: Optional[np.ndarray] = None  # the optional events table; None when the run has none
    trace: Optional[np.ndarray] = None   # the optional trace table (--trace N); None when the run has none

    def get(self, key, default=None) -> Any:
        """A configuration or run attribute, or `default`."""
        return self.attrs.get(key, default)

    @property
    def incomplete(self) -> bool:
        """True while the run's status is `running` (SCHEMA.md: if no job is
        writing the file, the run was killed or crashed)."""
        return self.status == "running"

    @property
    def completed(self) -> bool:
        return self.status == "completed"

    @property
    def peak_bytes(self) -> dict:
        """{category: bytes} from the peak_bytes_* attributes (any category,
        `total` included); empty while the run is incomplete."""
        return {k[len("peak_bytes_"):]: v for k, v in self.attrs.items()
                if k.startswith("peak_bytes_") and isinstance(v, (int, np.integer))}


def _read_table(g, name, empty_dtype):
    """A 1-D compound table as a numpy structured array, or None when absent
    (an empty array of `empty_dtype` when that is given)."""
    ds = g.get(name)
    if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None:
        return None if empty_dtype is None else np.zeros(0, dtype=empty_dtype)
    return _str_columns(ds[()])


def _str_columns(raw):
    """Fixed-length (bytes) string members as str (numpy unicode), so that h5py
    users never see bytes; other members keep their stored types."""
    if raw.dtype.names is None or not any(raw.dtype.fields[n][0].kind in "SO" for n in raw.dtype.names):
        return raw
    dec = {}
    for n in raw.dtype.names:
        if raw.dtype.fields[n][0].kind in "SO":
            dec[n] = [_event_name(v) for v in raw[n]]
    fields = [(n, np.dtype(f"<U{max([1] + [len(x) for x in dec[n]])}") if n in dec else raw.dtype.fields[n][0])
              for n in raw.dtype.names]
    out = np.zeros(len(raw), dtype=np.dtype(fields))
    for n in raw.dtype.names:
        out[n] = dec[n] if n in dec else raw[n]
    return out


def _event_name(v) -> str:
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).split(b"\0", 1)[0].decode("ascii", errors="replace")
    return str(v)


def _read_events(g):
    """/runs/<id>/events as a structured array whose `name` member is str
    (numpy unicode) and whose other members keep their stored types; members
    this reader does not know are kept as they are. None when the run has no
    events table (it is optional) or it is not a compound table."""
    ds = g.get("events")
    if not isinstance(ds, h5py.Dataset) or ds.dtype.names is None or ds.ndim != 1:
        return None
    raw = ds[()]
    if "name" not in raw.dtype.names:
        return raw
    names = [_event_name(v) for v in raw["name"]]
    width = max([1] + [len(n) for n in names])
    fields = [(n, np.dtype(f"<U{width}") if n == "name" else raw.dtype.fields[n][0]) for n in raw.dtype.names]
    out = np.zeros(len(raw), dtype=np.dtype(fields))
    for n in raw.dtype.names:
        out[n] = names if n == "name" else raw[n]
    return out


def _rename(table, name):
    """A version-1/2 table under the version-3 member names (t_forward -> forward_s ...)."""
    ren = RENAMED_V3.get(name, {})
    if table is None or table.dtype.names is None or not any(n in ren for n in table.dtype.names):
        return table
    out = table.copy()
    out.dtype.names = tuple(ren.get(n, n) for n in table.dtype.names)
    return out


def _with_fields(table, extra):
    """table with extra members appended: extra is [(name, dtype, values)]."""
    fields = [(n, table.dtype.fields[n][0]) for n in table.dtype.names] + [(n, dt) for n, dt, _ in extra]
    out = np.zeros(len(table), dtype=np.dtype(fields))
    for n in table.dtype.names:
        out[n] = table[n]
    for n, _, v in extra:
        out[n] = v
    return out


def migrate(version, epochs, steps, ranks, attrs):
    """Tables of a version-1/2 file as version 3 has them: t_* renamed to *_s
    (steps, ranks), steps.global_step (the row index: steps are stored in
    order), the epochs' phase times (sums of their steps' times) and
    epochs.ranks (the run's world_size). Reasons and NaN origins were plain
    int32 codes and are the same codes in version 3 (names: `names`,
    `reason_name`). Version-3 tables are returned as they are."""
    if version >= 3:
        return epochs, steps, ranks
    steps, ranks = _rename(steps, "steps"), _rename(ranks, "ranks")
    if steps is not None and steps.dtype.names is not None and "global_step" not in steps.dtype.names:
        steps = _with_fields(steps, [("global_step", "<i4", np.arange(len(steps)))])
    if epochs is not None and epochs.dtype.names is not None and "epoch" in epochs.dtype.names:
        extra = []
        se = steps["epoch"] if steps is not None and "epoch" in (steps.dtype.names or ()) else None
        for ph in PHASES:
            if ph in epochs.dtype.names:
                continue
            if se is not None and ph in steps.dtype.names:
                v = np.array([steps[ph][se == e].sum() for e in epochs["epoch"]], dtype=float)
            else:
                v = np.full(len(epochs), np.nan)
            extra.append((ph, "<f8", v))
        if "ranks" not in epochs.dtype.names:
            ws = attrs.get("world_size")
            extra.append(("ranks", "<i4", ws if isinstance(ws, int) else 0))
        if extra:
            epochs = _with_fields(epochs, extra)
    return epochs, steps, ranks


def load_runs(path) -> list:
    """Every run of one results file, in the order h5py lists them.
    Raises Unreadable (cannot open/read) or SchemaError (wrong schema name or
    major version, no /runs group)."""
    path = os.fspath(path)
    try:
        f = h5py.File(path, "r")
    except (OSError, ValueError) as e:
        raise Unreadable(f"{path}: cannot open as HDF5: {e}") from e
    try:
        with f:
            root = decode_attrs(f)
            name = root.get("schema")
            version = root.get("schema_version")
            if name != SCHEMA_NAME:
                raise SchemaError(f"{path}: schema is {name!r}, expected {SCHEMA_NAME!r}")
            if not isinstance(version, int) or isinstance(version, bool):
                raise SchemaError(f"{path}: schema_version is {version!r}, expected an integer")
            if version not in SUPPORTED_VERSIONS:
                raise SchemaError(f"{path}: schema_version is {version}, this reader supports "
                                  f"major versions {', '.join(map(str, SUPPORTED_VERSIONS))}")
            runs_group = f.get("runs")
            if not isinstance(runs_group, h5py.Group):
                raise SchemaError(f"{path}: no /runs group")
            runs = []
            for run_id in runs_group:
                g = runs_group[run_id]
                if not isinstance(g, h5py.Group):
                    continue  # unknown member of /runs: ignore
                attrs = stop_rule_defaults(decode_attrs(g))
                epochs, steps, ranks = migrate(version, _read_table(g, "epochs", _EPOCH_DTYPE),
                                               _read_table(g, "steps", _STEP_DTYPE),
                                               _read_table(g, "ranks", None), attrs)
                runs.append(Run(
                    run_id=run_id, file=path, attrs=attrs,
                    status=str(attrs.get("status", "unknown")),
                    epochs=epochs, steps=steps, ranks=ranks,
                    software_version=str(root.get("software_version", "unknown")),
                    host=str(root.get("host", "unknown")),
                    root_attrs=root,
                    schema_version=version,
                    events=_read_events(g),
                    trace=_read_table(g, "trace", None) if version >= 3 else None))
            return runs
    except (OSError, KeyError, TypeError) as e:
        raise Unreadable(f"{path}: cannot read: {e}") from e


def load_many(paths) -> list:
    """load_runs over several files, concatenated in argument order."""
    out = []
    for p in paths:
        out.extend(load_runs(p))
    return out


# ---------------------------------------------------------------------------
# Derived quantities (used by report.py)
# ---------------------------------------------------------------------------

PHASES = ("forward_s", "backward_s", "wait_s", "allreduce_s", "update_s")


def _col(table, name, dtype=float):
    if table is None or table.dtype.names is None or name not in table.dtype.names:
        return np.zeros(0, dtype=dtype)
    return np.asarray(table[name], dtype=dtype)


def has_column(table, name) -> bool:
    """True when `table` (a structured array, or None) has member `name`."""
    return table is not None and table.dtype.names is not None and name in table.dtype.names


def column(table, name) -> np.ndarray:
    """Member `name` of `table` as float64, one value per row; all NaN when
    the table lacks the member (a version-1 file's diagnostics, for example).
    None gives an empty array."""
    if table is None or table.dtype.names is None:
        return np.zeros(0)
    if name not in table.dtype.names:
        return np.full(len(table), np.nan)
    return np.asarray(table[name], dtype=float)


def _nanmean(x):
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(x.mean()) if x.size else float("nan")


def _nanreduce(fn, x):
    """fn (np.max, np.min) over the non-NaN values of x; NaN when none."""
    x = np.asarray(x, dtype=float)
    x = x[~np.isnan(x)]
    return float(fn(x)) if x.size else float("nan")


def nan_origin_counts(run) -> dict:
    """{nan_origin code: number of steps} over the run's steps, codes 1..4
    only (0 is "none"); empty for a version-1 file, which has no nan_origin."""
    if not has_column(run.steps, "nan_origin"):
        return {}
    o = np.asarray(run.steps["nan_origin"])
    return {int(c): int(np.sum(o == c)) for c in sorted(set(o.tolist())) if c != 0}


def phase_seconds_per_epoch(run) -> dict:
    """{phase: mean over the epochs table's epochs of the phase time summed
    over that epoch's steps} for the phases of the steps table."""
    ep = _col(run.epochs, "epoch", int)
    se = _col(run.steps, "epoch", int)
    out = {}
    for ph in PHASES:
        t = _col(run.steps, ph)
        if ep.size == 0 or t.size != se.size:
            out[ph] = float("nan")
            continue
        out[ph] = float(np.mean([t[se == e].sum() for e in ep]))
    return out


def event_totals(run) -> dict:
    """{event name: {"calls", "time_max", "time_sum", "flops"}} from the run's
    events table (ints for calls, floats otherwise); empty when the run has
    no events table. A name listed twice keeps its first row."""
    ev = run.events
    if ev is None or ev.dtype.names is None or "name" not in ev.dtype.names:
        return {}
    out = {}
    for row in ev:
        name = str(row["name"])
        if name in out:
            continue
        out[name] = {k: (int(row[k]) if k == "calls" else float(row[k]))
                     for k in EVENT_NUMERIC if k in ev.dtype.names}
    return out


def trace_curves(run, solve) -> dict:
    """The traced steps' residual curves of one solve ("forward" or
    "backward"): {solver name: (iterations, rel) } where iterations is the
    sorted array of iteration numbers seen and rel a (steps, iterations)
    float array of rel_residual, NaN where a step's solve did not reach that
    iteration (it had stopped). Empty when the run has no trace table or no
    rows of that solve."""
    tr = run.trace
    need = ("global_step", "solve", "solver", "iteration", "rel_residual")
    if tr is None or tr.dtype.names is None or any(n not in tr.dtype.names for n in need):
        return {}
    sel = tr[np.asarray(tr["solve"]) == solve]
    out = {}
    for name in sorted(set(np.asarray(sel["solver"]).tolist())):
        rows = sel[np.asarray(sel["solver"]) == name]
        steps = np.unique(rows["global_step"])
        iters = np.unique(rows["iteration"])
        a = np.full((len(steps), len(iters)), np.nan)
        si = np.searchsorted(steps, rows["global_step"])
        ii = np.searchsorted(iters, rows["iteration"])
        a[si, ii] = np.asarray(rows["rel_residual"], dtype=float)
        out[str(name)] = (iters.astype(int), a)
    return out


def metrics(run) -> dict:
    """Summary numbers of one run (NaN where the data has none)."""
    ep = run.epochs
    n = len(ep)
    batch = run.get("batch")
    tb = _col(ep, "train_batches").sum()
    m = {
        "epochs_done": n,
        "final_test_err": float(ep["test_err"][-1]) if n and "test_err" in ep.dtype.names else float("nan"),
        "final_train_err": float(ep["train_err"][-1]) if n and "train_err" in ep.dtype.names else float("nan"),
        "mean_fwd_iters": _nanmean(_col(ep, "train_iters")),
        "mean_bwd_iters": _nanmean(_col(ep, "train_bwd_iters")),
        "nan_rate": float(_col(ep, "nan_batches").sum() / tb) if tb > 0 else float("nan"),
        "nonconv_rate": (float(_col(ep, "nonconverged").sum() / (tb * batch))
                         if tb > 0 and isinstance(batch, int) and batch > 0 else float("nan")),
        "train_s_per_epoch": _nanmean(_col(ep, "train_s")),
        "test_s_per_epoch": _nanmean(_col(ep, "test_s")),
    }
    ph = phase_seconds_per_epoch(run)
    m.update({f"{k}_per_epoch": v for k, v in ph.items()})
    # Version 2 (NaN for a version-1 file, and where nothing was measured).
    m["diverge_rate"] = (float(_col(ep, "diverged_batches").sum() / tb)
                         if tb > 0 and has_column(ep, "diverged_batches") else float("nan"))
    st = run.steps
    # named after the steps column they reduce (+ _max/_min where the column's name lacks it)
    m["diag_rho_max"] = _nanreduce(np.max, column(st, "diag_rho_max"))
    m["diag_rho_mean"] = _nanmean(column(st, "diag_rho_mean"))
    m["diag_cond_max"] = _nanreduce(np.max, column(st, "diag_cond"))
    m["diag_grad_cos_min"] = _nanreduce(np.min, column(st, "diag_grad_cos"))
    m["diag_grad_relerr_max"] = _nanreduce(np.max, column(st, "diag_grad_relerr"))
    m["diag_preact_max"] = _nanreduce(np.max, column(st, "diag_preact_max"))
    total = run.attrs.get("peak_bytes_total")
    pm = _col(ep, "peak_mem_bytes")
    if isinstance(total, int):
        m["peak_mem_bytes"], m["peak_mem_source"] = total, "peak_bytes_total"
    elif pm.size:
        m["peak_mem_bytes"], m["peak_mem_source"] = int(pm.max()), "max epochs.peak_mem_bytes"
    else:
        m["peak_mem_bytes"], m["peak_mem_source"] = None, "none"
    ts = _col(ep, "train_s").sum()
    m["samples_per_s"] = (float(batch * tb / ts)
                          if ts > 0 and isinstance(batch, int) else float("nan"))
    return m


# ---------------------------------------------------------------------------
# The layer benchmark's table (`ilbench layer` stdout), used by report.py
# ---------------------------------------------------------------------------

LAYER_INT = ("hidden", "batch", "iters", "b_its", "saved_bytes", "workspace_B")
LAYER_STR = ("solver", "backward", "reason")


def load_layer_table(path) -> dict:
    """Parse the table `ilbench layer` prints (saved to a file) or a CSV
    written from it (report.py's layer.csv).

    The text form: a header line that starts with `solver` and names the
    columns, one whitespace-separated row per case, and `#` lines, of which
    `# skip S/B: unsupported pair` names the pairs the program does not run.
    Columns are looked up by the header's names, so added columns do not
    break the reader. Returns {"rows": [dict], "unsupported": [(solver,
    backward)]}; numbers as int/float ("nan"/"inf" as floats), the names in
    LAYER_STR as str. Raises Unreadable when there is no header or a row has
    the wrong number of fields."""
    import csv as _csv
    path = os.fspath(path)
    try:
        with open(path, newline="") as f:
            text = f.read()
    except OSError as e:
        raise Unreadable(f"{path}: cannot read: {e}") from e
    rows, unsupported, header = [], [], None

    def typed(name, v):
        if name in LAYER_STR:
            return v
        try:
            return int(v) if name in LAYER_INT else float(v)
        except ValueError:
            return v

    lines = text.splitlines()
    if lines and lines[0].startswith("solver,"):  # CSV
        for rec in _csv.DictReader(lines):
            if rec.get("supported", "1") == "0":
                unsupported.append((rec["solver"], rec["backward"]))
                continue
            rows.append({k: typed(k, v) for k, v in rec.items() if k != "supported"})
        return {"rows": rows, "unsupported": unsupported}
    for ln, line in enumerate(lines, 1):
        s = line.strip()
        if not s:
            continue
        if s.startswith("#"):
            parts = s[1:].split()
            if len(parts) >= 2 and parts[0] == "skip" and "/" in parts[1] and "unsupported" in s:
                sb = parts[1].rstrip(":")
                unsupported.append(tuple(sb.split("/", 1)))
            continue
        fields = s.split()
        if fields[0] == "solver":
            header = fields
            continue
        if header is None:
            continue  # text before the table (configuration lines)
        if len(fields) != len(header):
            raise Unreadable(f"{path}:{ln}: {len(fields)} fields, the header has {len(header)}")
        rows.append({k: typed(k, v) for k, v in zip(header, fields)})
    if header is None:
        raise Unreadable(f"{path}: no `ilbench layer` table (no header line starting with 'solver')")
    return {"rows": rows, "unsupported": unsupported}
