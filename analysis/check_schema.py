#!/usr/bin/python3
"""Validate ilbench results files against analysis/SCHEMA.md (schema
`ilbench-results`, major version 3; version-1 and version-2 files are still
accepted, with a note). The tables, columns, types, units, enum names and
required attributes come from analysis/schema.json (`ilbench schema --json`,
generated from bench/results_columns.h), not from lists kept here.

usage: /usr/bin/python3 analysis/check_schema.py FILE [FILE...]

For every problem it prints one line

    FILE: ERROR: /runs/x/epochs: missing member 'test_err'
    FILE: WARNING: /runs/y: run is incomplete (status 'running') ...
    FILE: NOTE: /: schema version 1 file ...

then one summary line per file, `FILE: N errors, M warnings`. NOTE lines are
information only (for example, that a version-1 file has no diagnostics
columns); they are not counted and do not change the exit status.
Exit status: 0 when no file has an error, 1 when some file has an error,
2 for a usage error or a file that cannot be opened as HDF5 (2 wins over 1).

Severity:
  ERROR    a MUST of SCHEMA.md is violated, or a fact the contract states
           outright is false: a required attribute, table or member is
           missing or has the wrong type, the schema name or major version
           is wrong, a status is not one of the three values, what the Status
           table says a run has (or lacks) does not hold, or a value lies
           outside the domain of its unit (negative time, count or byte
           number; an error rate outside [0, 1]; a misnumbered row; a
           nan_origin outside 0..4, a nan_iter below -1, a negative
           spectral radius, condition number, relative error or
           pre-activation maximum, a cosine outside [-1, 1]; in the optional
           events table a negative or NaN calls, time or FLOP count, an empty
           name, or a time_sum below time_max).
  WARNING  a SHOULD is violated, a run is incomplete, or a derived
           plausibility check fails (epoch aggregates that disagree with the
           epoch's steps, timestamps out of order, a negative loss ...).
           Reason codes outside the il_reason enum are warnings too: SCHEMA.md
           says readers MUST treat them as unknown, not as an error. So are
           event names that core/il_events.c does not know, or a name twice.

Optional datasets: `events` (a run's PETSc -log_view style event totals) is
checked when a run has it; a run without it is just as valid. So is `trace`
(--trace N: the residual of every iteration of every N-th step's solves):
when present, errors for what SCHEMA.md states outright (solve "forward" or
"backward", rows grouped by step in order with the forward rows first and
consecutive iterations from 0 or 1 (backward from 1), residuals >= 0 or
NaN/Inf, rel_residual = residual / the solve's first residual, the run's
`trace` attribute N >= 1 present exactly when the table is, traced steps the
multiples of N, and in a completed run every multiple of N traced and no
traced step missing from `steps`); warnings where it disagrees with the
steps table (the last forward row against fwd_iters and fwd_residual, the
backward rows against bwd_iters, the solver names against the run's).

Everything SCHEMA.md lets readers ignore (unknown attributes, members,
configuration keys, datasets, groups) is ignored.

Versions: a file of major version 3 (what ilbench writes now), 2 (phase
times named t_*, reasons as plain int32) or 1 (before the diagnostics
columns) is checked against the tables of its own version, then its values
under the version-3 names. A version-1 or version-2 file gets a note saying
so. In version 3, fwd_reason, bwd_reason and nan_origin MUST be HDF5 enums
with the names of schema.json. Any other version is an error.

Damaged files: every structural problem (a missing or unopenable object, a
dangling or external link, a run that is not a group, a table of the wrong
type or shape, an attribute that cannot be read) is a counted ERROR at its
location, never a traceback. Each run, and within a run each table, is
checked on its own, so one damaged object does not hide the others' problems.

Importable: `check_file(path, notes=None) -> (errors, warnings)` returns two
lists of messages of the form "LOCATION: text" (LOCATION is an HDF5 path, "/"
for the root) and appends the notes to `notes` when given a list;
`main(argv)` is the command line. `check_file` raises `Unreadable` when the
file cannot be opened as HDF5, and nothing else.
"""

import argparse
import datetime
import json
import os
import re
import sys

# SCHEMA.md: readers SHOULD set HDF5_USE_FILE_LOCKING=FALSE to read a file
# that a running job is writing. HDF5 reads it when a file is opened; set it
# before h5py loads the library, unless the caller chose otherwise.
os.environ.setdefault("HDF5_USE_FILE_LOCKING", "FALSE")

import h5py  # noqa: E402  (after the environment variable on purpose)
import numpy as np  # noqa: E402

# ---------------------------------------------------------------------------
# The contract, as data: analysis/schema.json (`ilbench schema --json`, made
# from bench/results_columns.h) gives the tables, columns, types, units, enum
# names and attributes. Attribute types: "str" (fixed- or variable-length
# string), "int" (64-bit signed integer), "real" (64-bit float).
# ---------------------------------------------------------------------------

SCHEMA_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema.json")
with open(SCHEMA_JSON, encoding="utf-8") as _f:
    SCHEMA = json.load(_f)

SCHEMA_NAME = SCHEMA["schema"]
SCHEMA_VERSION = SCHEMA["schema_version"]  # the major version ilbench writes, and this checker's own
SUPPORTED_VERSIONS = tuple(range(1, SCHEMA_VERSION + 1))  # each checked against its own tables

# "Root attributes": writers MUST write all of these (merged_from only in
# merged files, checked separately).
ROOT_ATTRS = {a["name"]: a["kind"] for a in SCHEMA["root_attrs"] if a["required"]}
# "Run attributes / Written by the results writer", present in every run.
# (`finished` and `peak_bytes_*` depend on the status; see STATUS rules.)
RUN_WRITER_ATTRS = {a["name"]: a["kind"] for a in SCHEMA["run_writer_attrs"] if a["required"]}
# "Run attributes / Configuration": writers MUST write at least these keys.
RUN_CONFIG_ATTRS = {a["name"]: a["kind"] for a in SCHEMA["run_config_attrs"] if a["required"]}

# peak_bytes_* categories of version 1 (il_mem_category_name) plus the total.
# Later versions MAY add categories; extra ones are accepted.
PEAK_CATEGORIES = ("params", "grads", "activations", "saved", "workspace")
PEAK_TOTAL = "peak_bytes_total"

STATUSES = ("running", "completed", "failed", "interrupted")
DEVICES = ("cpu", "cuda", "scalapack", "cpu-guard", "cuda-host")  # the last two: test backends
PRECISIONS = ("float32", "float64")
ENUMS = {k: {e["value"]: e["name"] for e in v} for k, v in SCHEMA["enums"].items()}
REASONS = ENUMS["REASON"]          # il_reason: value -> name
NAN_ORIGINS = ENUMS["NANORIGIN"]   # steps.nan_origin (version 2): where a non-finite value first appeared
NAN_ITER_NA = (0, 2, 4)  # origins for which nan_iter MUST be -1 (no iteration applies)

I32, I64, U64, F64 = (np.dtype(t) for t in ("<i4", "<i8", "<u8", "<f8"))
ENUM_DTYPES = {k: h5py.enum_dtype({n: v for v, n in m.items()}, basetype="i4") for k, m in ENUMS.items()}
_PLAIN = {"I32": I32, "I64": I64, "U64": U64, "F64": F64, "STR16": "str", "REASON": I32, "NANORIGIN": I32}

# Columns renamed in version 3: {table: {old name: new name}}.
RENAMED_V3 = {}
for _r in SCHEMA["renamed_in_v3"]:
    RENAMED_V3.setdefault(_r["table"], {})[_r["from"]] = _r["to"]


def column_dtype(col, version=SCHEMA_VERSION):
    """The numpy dtype a column has in a file of major `version` ("str" for
    a string column): enums are HDF5 enums over int32 from version 3, plain
    int32 before."""
    if col["type"] in ENUM_DTYPES and version >= 3:
        return ENUM_DTYPES[col["type"]]
    return _PLAIN[col["type"]]


def members_of(table, version=SCHEMA_VERSION):
    """{member: dtype} of a table in a file of major `version`, in stored
    order: the columns added by then, under the names they had then."""
    back = {new: old for old, new in RENAMED_V3.get(table, {}).items()}
    out = {}
    for c in SCHEMA["tables"][table]["columns"]:
        if c.get("optional"):  # OPTIONAL_MEMBERS: checked where present, never required
            continue
        if c["since"] > version and not (version < 3 and c["name"] in back):
            continue
        name = back.get(c["name"], c["name"]) if version < 3 else c["name"]
        out[name] = column_dtype(c, version)
    return out


COLUMNS = {t: {c["name"]: c for c in v["columns"]} for t, v in SCHEMA["tables"].items()}
# Columns added within a version after its first release ("optional": true in schema.json):
# {version: {table: {member: dtype}}}. A file MAY lack them; one it has must have the right type.
OPTIONAL_MEMBERS = {v: {t: {c["name"]: column_dtype(c, v) for c in d["columns"] if c.get("optional") and c["since"] <= v}
                        for t, d in SCHEMA["tables"].items()} for v in SUPPORTED_VERSIONS}
REQUIRED_TABLES = tuple(t for t, v in SCHEMA["tables"].items() if not v["optional"])
TABLES_BY_VERSION = {v: {t: members_of(t, v) for t in REQUIRED_TABLES} for v in SUPPORTED_VERSIONS}
TABLES = TABLES_BY_VERSION[SCHEMA_VERSION]
EPOCH_MEMBERS_V1, STEP_MEMBERS_V1 = TABLES_BY_VERSION[1]["epochs"], TABLES_BY_VERSION[1]["steps"]
EPOCH_MEMBERS, STEP_MEMBERS, RANK_MEMBERS = TABLES["epochs"], TABLES["steps"], TABLES["ranks"]
STEP_DIAG_MEMBERS = {c["name"]: column_dtype(c) for c in SCHEMA["tables"]["steps"]["columns"] if c["since"] == 2}
# Optional tables ("Tables / events"): checked when present, never required.
# "str" is a string member (fixed-length, as the writer stores it, or
# variable-length); its width is not judged.
EVENT_MEMBERS = members_of("events")
OPTIONAL_TABLES_BY_VERSION = {
    v: {t: members_of(t, v) for t, d in SCHEMA["tables"].items()
        if d["optional"] and all(c["since"] <= v for c in d["columns"])}
    for v in SUPPORTED_VERSIONS}  # a version-1 file has no events table; one there is ignored
# Tables written once at their final size (not chunked or extendible).
FIXED_SIZE_TABLES = ("ranks", "events")
# trace (optional): the solves, and the backward `solver` names per backward mode (SCHEMA.md, trace)
TRACE_SOLVES = ("forward", "backward")
TRACE_BACKWARD = {"unroll": ("unroll",), "implicit": ("lu", "fp", "anderson", "gmres")}  # phantom, jfb: none
# il_event_name in core/il_events.c, in il_event_id order.
EVENT_NAMES = ("fwd_solve", "bwd_solve", "map", "jacobian", "lu_factor", "lu_solve",
               "jvp", "vjp", "vjp2", "head", "allreduce", "update",
               "jac_reg")


def _by_unit(pred):
    """{table: (member, ...)} of the current columns whose column satisfies pred."""
    out = {}
    for t, cols in COLUMNS.items():
        names = tuple(n for n, c in cols.items() if pred(c))
        if names:
            out[t] = names
    return out


# Value domains by unit ("Types and units"), from the columns' units. The
# value checks run on tables migrated to the current names (migrate_table).
FRACTIONS = _by_unit(lambda c: c["unit"] == "fraction")
TIMES = _by_unit(lambda c: c["unit"] == "s")
COUNTS = _by_unit(lambda c: c["type"] in ("I32", "I64") and c["unit"] in ("batches", "rows", "iterations", "calls")
                  and c["name"] != "nan_iter")  # nan_iter is -1 where no iteration applies
MEAN_COUNTS = _by_unit(lambda c: c["type"] == "F64" and c["unit"] == "iterations")  # NaN allowed
LOSSES = _by_unit(lambda c: c["unit"] == "nats")
NORMS = {"epochs": ("max_grad_norm",), "steps": ("fwd_residual", "bwd_residual", "grad_norm")}


def migrate_table(name, data, usable, version):
    """A table of an older major version under the current member names
    (RENAMED_V3), with its usable set renamed alike."""
    ren = RENAMED_V3.get(name, {}) if version < 3 else {}
    if not ren or data is None:
        return data, usable
    data = data.copy()
    data.dtype.names = tuple(ren.get(n, n) for n in data.dtype.names)
    return data, {ren.get(n, n) for n in usable}


# ISO 8601 UTC as the writer formats it (fractional seconds tolerated).
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$")
LR_DROP = re.compile(r"^(none|\d+:[^,:\s]+(,\d+:[^,:\s]+)*)$")


class Unreadable(Exception):
    """The file cannot be opened as HDF5 (missing, permissions, not HDF5)."""


class Report:
    """Collects problems; `loc` is an HDF5 path such as "/runs/x/epochs".
    Notes are information that is neither an error nor a warning."""

    def __init__(self):
        self.errors = []
        self.warnings = []
        self.notes = []

    def note(self, loc, msg):
        self.notes.append(f"{loc}: {msg}")

    def error(self, loc, msg):
        self.errors.append(f"{loc}: {msg}")

    def warn(self, loc, msg):
        self.warnings.append(f"{loc}: {msg}")


def guarded(rep, loc, what, fn, *args, default=None):
    """fn(*args), with any exception from it reported as an error at `loc`
    ("<what>: <exception>") and `default` returned: h5py and numpy raise all
    sorts of exceptions on damaged objects, and one of them must not stop the
    check of the rest of the file."""
    try:
        return fn(*args)
    except Exception as e:  # noqa: BLE001  (on purpose: anything a damaged file makes h5py raise)
        rep.error(loc, f"{what} ({type(e).__name__}: {e})")
        return default


def open_child(rep, g, name, loc):
    """g[name], or None with an error at loc when the link is there but does
    not open (a dangling soft link, an external link to a missing file, a
    damaged object header)."""
    try:
        return g[name]
    except Exception as e:  # noqa: BLE001
        rep.error(loc, f"cannot open: {type(e).__name__}: {e}")
        return None


def has_link(g, name):
    """True when g has a link called name, whether or not it resolves."""
    try:
        return g.get(name, getlink=True) is not None
    except Exception:  # noqa: BLE001
        return False


# ---------------------------------------------------------------------------
# Attribute helpers
# ---------------------------------------------------------------------------

def attr_kind(obj, name):
    """Type class of attribute `name` of `obj`: "str", "int", "real",
    "other", "array" (not a scalar), "empty" (null dataspace), or None when
    absent. Returns (kind, numpy dtype or None)."""
    if name not in obj.attrs:
        return None, None
    try:
        aid = obj.attrs.get_id(name)
        dt, shape = aid.dtype, aid.shape
    except Exception:  # noqa: BLE001  (a type h5py cannot map, a damaged message)
        return "unreadable", None
    if shape is None:
        return "empty", dt
    if h5py.check_string_dtype(dt) is not None:
        kind = "str"
    elif dt.kind in "iu":
        kind = "int"
    elif dt.kind == "f":
        kind = "real"
    else:
        kind = "other"
    if shape != () and kind != "other":
        # A 1-element array where a scalar is expected is still not a scalar.
        return "array", dt
    return kind, dt


def text(v):
    """A string attribute's value as str (fixed-length strings are bytes)."""
    if isinstance(v, (bytes, np.bytes_)):
        return v.decode("ascii", errors="replace")
    return str(v)


def check_typed_attr(rep, obj, loc, name, want, what="attribute"):
    """Presence and type of one attribute (missing or mistyped is an error;
    an integer or real of another width is a warning). Returns the value
    (str for strings) when the type class is right, else None."""
    kind, dt = attr_kind(obj, name)
    if kind is None:
        rep.error(loc, f"missing required {what} '{name}'")
        return None
    if kind == "unreadable":
        rep.error(loc, f"cannot read {what} '{name}' (its type or dataspace does not open)")
        return None
    if kind != want:
        shown = {"array": "a non-scalar", "empty": "an empty", "str": "a string"}.get(kind, f"of type {dt}")
        rep.error(loc, f"{what} '{name}' is {shown}, expected a scalar {want_text(want)}")
        return None
    try:
        v = obj.attrs[name]
    except Exception as e:  # noqa: BLE001
        rep.error(loc, f"cannot read {what} '{name}': {e}")
        return None
    if want == "int" and (dt.kind != "i" or dt.itemsize != 8):
        rep.warn(loc, f"{what} '{name}' is stored as {dt}, SCHEMA.md says 64-bit signed integer")
    if want == "real" and dt.itemsize != 8:
        rep.warn(loc, f"{what} '{name}' is stored as {dt}, SCHEMA.md says 64-bit float")
    if want == "str":
        if isinstance(v, (bytes, np.bytes_)) and not bytes(v).isascii():
            rep.warn(loc, f"{what} '{name}' holds non-ASCII bytes")
        return text(v)
    return v.item() if hasattr(v, "item") else v


def want_text(want):
    return {"str": "string", "int": "integer (int64)", "real": "real (float64)"}[want]


def check_timestamp(rep, loc, name, value):
    """ISO 8601 UTC timestamp; returns a datetime or None. Format is a warning:
    the schema describes it but attaches no MUST to it."""
    if value is None:
        return None
    if ISO_UTC.match(value):
        try:
            return datetime.datetime.fromisoformat(value[:-1])
        except ValueError:
            pass
    rep.warn(loc, f"attribute '{name}' = {value!r} is not an ISO 8601 UTC time like 2025-01-31T12:00:00Z")
    return None


# ---------------------------------------------------------------------------
# Root
# ---------------------------------------------------------------------------

def check_root(rep, f, path):
    """Root attributes. Returns the file's major version (one of
    SUPPORTED_VERSIONS), or None when the file must not be read further (not
    this schema, or a major version this checker does not know)."""
    # Schema identity first: a reader MUST refuse another schema name or major
    # version, so nothing else is checked in that case.
    name = check_typed_attr(rep, f, "/", "schema", "str", "root attribute")
    version = check_typed_attr(rep, f, "/", "schema_version", "int", "root attribute")
    if "schema" not in f.attrs and "schema_version" not in f.attrs:
        rep.error("/", "no 'schema' or 'schema_version' attribute: not an ilbench results file, "
                       "not checked further")
        return None
    if name is not None and name != SCHEMA_NAME:
        rep.error("/", f"root attribute 'schema' is {name!r}, expected {SCHEMA_NAME!r}; "
                       "not an ilbench results file, not checked further")
        return None
    if version is not None and version not in SUPPORTED_VERSIONS:
        known = ", ".join(str(v) for v in SUPPORTED_VERSIONS[:-1]) + f" and {SUPPORTED_VERSIONS[-1]}"
        rep.error("/", f"file '{path}' has schema_version {version}; this checker reads versions {known} "
                       f"(ilbench writes version {SCHEMA_VERSION}; a different major version is "
                       "incompatible); not checked further")
        return None
    if version is None:
        version = SCHEMA_VERSION  # already an error; check the rest against the current tables
    if version == 1:
        rep.note("/", f"schema version {version} file (ilbench now writes version {SCHEMA_VERSION}): checked "
                      f"against version {version}, which has no step diagnostics (diag_*, nan_origin, "
                      "nan_iter) and no epochs.diverged_batches, and names its phase times t_*")
    elif version < SCHEMA_VERSION:
        rep.note("/", f"schema version {version} file (ilbench now writes version {SCHEMA_VERSION}): checked "
                      f"against version {version}, which names its phase times t_* (t_forward ... for "
                      "forward_s ...), stores reasons and NaN origins as plain int32, and has no "
                      "steps.global_step or epoch phase times")
    for key, want in ROOT_ATTRS.items():
        if key in ("schema", "schema_version"):
            continue
        v = check_typed_attr(rep, f, "/", key, want, "root attribute")
        if key == "created":
            check_timestamp(rep, "/", key, v)
        if key == "world_size" and v is not None and v < 1:
            rep.error("/", f"root attribute 'world_size' is {v}, expected >= 1")
    check_merged_from(rep, f)
    return version


def check_merged_from(rep, f):
    """`merged_from` (only in merged files): a 1-D array of strings."""
    if "merged_from" not in f.attrs:
        return
    kind, _ = attr_kind(f, "merged_from")
    if kind == "unreadable":
        rep.error("/", "cannot read root attribute 'merged_from'")
        return
    aid = f.attrs.get_id("merged_from")
    if h5py.check_string_dtype(aid.dtype) is None or aid.shape is None or len(aid.shape) != 1:
        rep.error("/", f"root attribute 'merged_from' must be a 1-D array of strings, "
                       f"is {aid.dtype} with shape {aid.shape}")
    elif aid.shape[0] == 0:
        rep.warn("/", "root attribute 'merged_from' is empty")


# ---------------------------------------------------------------------------
# Runs: attributes
# ---------------------------------------------------------------------------

def check_runs_group(rep, f):
    """/runs exists and is a group; returns its (run_id, group) pairs."""
    if not has_link(f, "runs"):
        rep.error("/", "missing group /runs")
        return []
    runs = open_child(rep, f, "runs", "/runs")
    if runs is None:
        return []
    if not isinstance(runs, h5py.Group):
        rep.error("/runs", "is not a group")
        return []
    names = guarded(rep, "/runs", "cannot list the runs", lambda: list(runs), default=[])
    out = []
    for run_id in names:
        loc = f"/runs/{run_id}"
        g = open_child(rep, runs, run_id, loc)  # e.g. a dangling link
        if g is None:
            continue
        if not isinstance(g, h5py.Group):
            rep.error(loc, "is not a group (every member of /runs is a run group)")
            continue
        out.append((run_id, g))
    return out


def check_run_writer_attrs(rep, g, loc):
    """Attributes the results writer puts on every run, and the status value.
    Returns (status or None, started as a datetime or None)."""
    vals = {k: check_typed_attr(rep, g, loc, k, want) for k, want in RUN_WRITER_ATTRS.items()}
    started = check_timestamp(rep, loc, "started", vals["started"])
    status = vals["status"]
    if status is not None and status not in STATUSES:
        rep.error(loc, f"status {status!r} is not one of {', '.join(STATUSES)}")
        status = None
    return status, started


def check_run_config(rep, g, loc):
    """Configuration keys writers MUST write, with their types; returns the
    values that have the right type (a dict)."""
    cfg = {}
    for key, want in RUN_CONFIG_ATTRS.items():
        v = check_typed_attr(rep, g, loc, key, want, "configuration attribute")
        if v is not None:
            cfg[key] = v
    if "jac_reg" in g.attrs:  # informational (train --jac-reg, optional): its type where present
        v = check_typed_attr(rep, g, loc, "jac_reg", "real", "configuration attribute")
        if v is not None:
            cfg["jac_reg"] = v
    for key, want in (("grid", "str"), ("grid_nb", "int"), ("grid_groups", "int"), ("blacs_context", "str")):
        if key in g.attrs:  # --grid (optional, version 3): its type where present
            v = check_typed_attr(rep, g, loc, key, want, "configuration attribute")
            if v is not None:
                cfg[key] = v
    if "grid_groups" in cfg and "world_size" in cfg and (cfg["grid_groups"] < 1 or cfg["world_size"] % cfg["grid_groups"]):
        rep.error(loc, f"grid_groups {cfg['grid_groups']} does not divide world_size {cfg['world_size']}")
    # Documented value sets and ranges. The schema gives them as meanings, not
    # as MUSTs, so these are warnings (except world_size, which counts ranks).
    if "device" in cfg and cfg["device"] not in DEVICES:
        rep.warn(loc, f"device {cfg['device']!r} is not one of {', '.join(DEVICES)}")
    if "precision" in cfg and cfg["precision"] not in PRECISIONS:
        rep.warn(loc, f"precision {cfg['precision']!r} is not one of {', '.join(PRECISIONS)}")
    if "lr_drop" in cfg and not LR_DROP.match(cfg["lr_drop"]):
        rep.warn(loc, f"lr_drop {cfg['lr_drop']!r} is neither 'none' nor EPOCH:LR[,EPOCH:LR...]")
    if "world_size" in cfg and cfg["world_size"] < 1:
        rep.error(loc, f"world_size is {cfg['world_size']}, expected >= 1")
    for key in ("batch", "hidden", "threads"):
        if key in cfg and cfg[key] < 1:
            rep.warn(loc, f"{key} is {cfg[key]}, expected >= 1")
    for key in ("epochs", "max_iter", "run_index"):
        if key in cfg and cfg[key] < 0:
            rep.warn(loc, f"{key} is {cfg[key]}, expected >= 0")
    if "tol" in cfg and not (np.isfinite(cfg["tol"]) and cfg["tol"] >= 0):
        rep.warn(loc, f"tol is {cfg['tol']}, expected a finite value >= 0")
    return cfg


# Stop rules (SCHEMA.md, "Stop rules"): optional string attributes and their values. A run without
# them is read as stop_mode "abs", stop_norm "frob", best_rule from `best`; stop_mode "rel" keeps its
# meaning (relative to the first residual) in every file.
STOP_RULES = {"stop_mode": ("abs", "rel", "relf"), "stop_norm": ("frob", "max", "mean"),
              "best_rule": ("off", "batch", "sample")}


def check_stop_rules(rep, g, loc):
    """stop_mode, stop_norm and best_rule where present: strings (else an error), of the documented
    values, consistent with `best` and `stop` (else warnings)."""
    vals = {}
    for key, allowed in STOP_RULES.items():
        if key not in g.attrs:
            continue
        v = check_typed_attr(rep, g, loc, key, "str", "configuration attribute")
        if v is None:
            continue
        v = vals[key] = v.rstrip("\0")
        if v not in allowed:
            rep.warn(loc, f"{key} {v!r} is not one of {', '.join(allowed)}")
    best = g.attrs.get("best")
    if "best_rule" in vals and best is not None and np.ndim(best) == 0:
        if bool(np.asarray(best).item()) != (vals["best_rule"] != "off"):
            rep.warn(loc, f"best is {np.asarray(best).item()} but best_rule is {vals['best_rule']!r}")
    stop = g.attrs.get("stop")
    if vals.get("stop_norm", "frob") != "frob" and stop is not None and text(stop).rstrip("\0") == "sample":
        rep.warn(loc, f"stop_norm {vals['stop_norm']!r} with stop 'sample': the norm applies to batch stopping only")


def check_run_status(rep, g, loc, status, started, has_ranks):
    """What the Status table says each status has: `finished`, `ranks` and
    `peak_bytes_*` are present for completed runs, `finished` and `ranks` for
    failed runs (peak_bytes_* MAY be absent), and none of them while running.
    A running run is incomplete (killed or still being written): a warning."""
    peaks = sorted(k for k in g.attrs if k.startswith("peak_bytes_"))
    if status == "running":
        rep.warn(loc, "run is incomplete (status 'running'): the job was killed or is still writing; "
                      "analyses MUST NOT treat it as complete")
        present = (["finished"] if "finished" in g.attrs else []) + (["ranks"] if has_ranks else []) + peaks
        if present:
            rep.error(loc, f"status 'running' but has {', '.join(present)} (only written when a run ends)")
    elif status in ("completed", "failed", "interrupted"):
        finished = check_timestamp(rep, loc, "finished", check_typed_attr(rep, g, loc, "finished", "str"))
        if finished and started and finished < started:
            rep.warn(loc, f"finished ({finished:%Y-%m-%dT%H:%M:%SZ}) is before started "
                          f"({started:%Y-%m-%dT%H:%M:%SZ})")
        if not has_ranks:
            rep.error(loc, f"status {status!r} but no 'ranks' table")
        if status == "completed" or peaks:
            # peak_bytes_* MAY be absent from a failed run, but once written
            # they are the full set.
            for cat in PEAK_CATEGORIES + ("total",):
                if f"peak_bytes_{cat}" not in g.attrs:
                    rep.error(loc, f"status {status!r} but missing attribute 'peak_bytes_{cat}'")
    check_peak_bytes(rep, g, loc, peaks)


def check_peak_bytes(rep, g, loc, peaks):
    """Every peak_bytes_* attribute is a non-negative integer; the total's
    high-water mark lies between the largest category and their sum."""
    vals = {}
    for k in peaks:
        v = check_typed_attr(rep, g, loc, k, "int")
        if v is None:
            continue
        if v < 0:
            rep.error(loc, f"{k} is {v}, a byte count must be >= 0")
        vals[k] = v
    cats = [v for k, v in vals.items() if k != PEAK_TOTAL]
    if PEAK_TOTAL in vals and cats:
        total = vals[PEAK_TOTAL]
        if total < max(cats) or total > sum(cats):
            rep.warn(loc, f"{PEAK_TOTAL} = {total} is not between the largest category ({max(cats)}) "
                          f"and the sum of categories ({sum(cats)})")


# ---------------------------------------------------------------------------
# Tables: layout and member types
# ---------------------------------------------------------------------------

def check_table_layout(rep, g, loc, name, version=SCHEMA_VERSION, members=None):
    """One table: a 1-D compound dataset with every member the file's major
    version requires (or `members`, for an optional table), at the right type.
    Returns (data, usable) where data is
    the table read into a numpy structured array (None when unusable) and
    usable the set of required members present with the right type (value
    rules only look at those, so one wrong type does not cascade). Members of
    a later version in an older file are unknown members, and ignored."""
    if members is None:
        members = TABLES_BY_VERSION[version][name]
    tloc = f"{loc}/{name}"
    ds = open_child(rep, g, name, tloc)
    if ds is None:
        return None, set()
    if not isinstance(ds, h5py.Dataset):
        rep.error(tloc, "is not a dataset")
        return None, set()
    if ds.dtype.names is None:
        rep.error(tloc, f"is not a compound table (dtype {ds.dtype})")
        return None, set()
    if ds.ndim != 1:
        rep.error(tloc, f"has {ds.ndim} dimensions, expected 1")
        return None, set()
    # "Tables are chunked and extendible". The ranks and events tables are
    # written once at their final size, so only epochs and steps (appended per
    # epoch) are held to this, and only as a warning: readers do not depend on it.
    if name not in FIXED_SIZE_TABLES and (ds.chunks is None or ds.maxshape != (None,)):
        rep.warn(tloc, f"is not chunked and extendible (chunks {ds.chunks}, maxshape {ds.maxshape})")
    usable = set()
    optional = OPTIONAL_MEMBERS.get(version, {}).get(name, {})
    for member, want in list(members.items()) + [(m, w) for m, w in optional.items() if m not in members]:
        if member not in ds.dtype.fields:
            if member not in optional:
                rep.error(tloc, f"missing member '{member}'")
            continue
        have = ds.dtype.fields[member][0]
        if want == "str":
            if have.shape != () or h5py.check_string_dtype(have) is None:
                rep.error(tloc, f"member '{member}' has type {describe(have)}, expected a string")
                continue
        elif have.kind != want.kind or have.itemsize != want.itemsize or have.shape != ():
            rep.error(tloc, f"member '{member}' has type {describe(have)}, expected {describe(want)}")
            continue
        elif h5py.check_enum_dtype(want) is not None:
            # version 3: reasons and NaN origins are HDF5 enums carrying their names
            got = h5py.check_enum_dtype(have)
            if got is None:
                rep.error(tloc, f"member '{member}' is a plain {describe(have)}, expected an HDF5 enum over int32 "
                                f"with the names {sorted(h5py.check_enum_dtype(want))}")
                continue
            if got != h5py.check_enum_dtype(want):
                rep.error(tloc, f"member '{member}' is an enum {got}, expected {h5py.check_enum_dtype(want)}")
                continue
        usable.add(member)
    try:
        data = ds[()]
    except Exception as e:  # noqa: BLE001  (a damaged chunk, a filter this HDF5 lacks)
        rep.error(tloc, f"cannot read the table: {e}")
        return None, set()
    if not isinstance(data, np.ndarray) or data.ndim != 1:
        rep.error(tloc, f"cannot read the table as one-dimensional rows (got {type(data).__name__})")
        return None, set()
    return data, usable


def describe(dt):
    """'int32', 'uint64', 'float64' ... (byte order left out on purpose)."""
    if dt.shape != ():
        return f"array {dt.shape} of {describe(dt.base)}"
    if h5py.check_string_dtype(dt) is not None:
        return "string"
    if dt.kind in "iuf":
        return {"i": "int", "u": "uint", "f": "float"}[dt.kind] + str(8 * dt.itemsize)
    return str(dt)


# ---------------------------------------------------------------------------
# Tables: values
# ---------------------------------------------------------------------------

def bad_rows(rep, tloc, mask, values, what, severity="error"):
    """Report the rows of a table where `mask` holds: one line per rule, with
    the count and the first offending row and its value."""
    idx = np.flatnonzero(mask)
    if idx.size:
        first = int(idx[0])
        msg = f"{idx.size} row(s) with {what} (first: row {first}, value {values[first].item()!r})"
        (rep.error if severity == "error" else rep.warn)(tloc, msg)


def check_units(rep, tloc, name, data, usable):
    """Unit domains: times >= 0, counts >= 0, error rates in [0, 1] (NaN, the
    mean over nothing, is allowed; +-Inf is not a fraction), losses and norms
    >= 0 where finite (warnings: derived, not stated)."""
    def cols(group):
        return [c for c in group.get(name, ()) if c in usable]

    for c in cols(TIMES):
        v = data[c]
        bad_rows(rep, tloc, v < 0, v, f"negative time {c}")
    for c in cols(COUNTS):
        v = data[c]
        bad_rows(rep, tloc, v < 0, v, f"negative count {c}")
    for c in cols(MEAN_COUNTS):
        v = data[c]
        bad_rows(rep, tloc, v < 0, v, f"negative mean count {c}")
    for c in cols(FRACTIONS):
        v = data[c]
        bad_rows(rep, tloc, ~np.isnan(v) & ((v < 0) | (v > 1)), v, f"fraction {c} outside [0, 1]")
    for c in cols(LOSSES):
        v = data[c]
        bad_rows(rep, tloc, v < 0, v, f"negative loss {c}", "warning")
    for c in cols(NORMS):
        v = data[c]
        bad_rows(rep, tloc, v < 0, v, f"negative norm {c}", "warning")


def check_epochs_values(rep, tloc, ep, usable, cfg, status):
    """epochs: rows numbered 0..n-1 in order; no more rows than `epochs`
    requested, and exactly that many for a completed run. Returns True when
    the numbering is sound (cross-table checks rely on it)."""
    n = len(ep)
    ok = True
    if "epoch" in usable and not np.array_equal(ep["epoch"], np.arange(n)):
        i = int(np.flatnonzero(ep["epoch"] != np.arange(n))[0])
        rep.error(tloc, f"epochs are not numbered 0..{n - 1} in order (row {i} has epoch {ep['epoch'][i]})")
        ok = False
    want = cfg.get("epochs")
    if want is not None:
        if n > want:
            rep.error(tloc, f"{n} rows but the run requested epochs = {want}")
        elif status == "completed" and n != want:
            rep.error(tloc, f"status 'completed' but {n} rows, expected epochs = {want}")
    if "ranks" in usable and cfg.get("world_size") is not None:
        bad_rows(rep, tloc, ep["ranks"] != cfg["world_size"], ep["ranks"],
                 f"ranks != the run's world_size {cfg['world_size']}", "warning")
    if "train_batches" in usable:
        for c in ("nan_batches", "maxiter_batches", "diverged_batches", "nonfinite_batches"):
            if c in usable:
                bad_rows(rep, tloc, ep[c] > ep["train_batches"], ep[c], f"{c} > train_batches", "warning")
    check_jac_reg(rep, tloc, ep, usable, cfg)
    return ok and "epoch" in usable


def check_jac_reg(rep, tloc, data, usable, cfg):
    """jac_reg (optional, epochs and steps): an estimate of a squared norm, >= 0 or NaN (not
    computed); a number in a run whose jac_reg attribute is 0 (off) is a warning."""
    if "jac_reg" not in usable:
        return
    v = data["jac_reg"]
    bad_rows(rep, tloc, v < 0, v, "negative jac_reg (must be >= 0 or NaN)")
    bad_rows(rep, tloc, np.isinf(v), v, "infinite jac_reg")
    if cfg.get("jac_reg") == 0:
        bad_rows(rep, tloc, ~np.isnan(v), v, "jac_reg computed although the run's jac_reg attribute is 0 (off)",
                 "warning")


def check_steps_values(rep, tloc, st, usable, cfg):
    """steps: fwd/bwd reasons in the il_reason enum (warning: readers MUST
    treat other values as unknown), nan_skipped a 0/1 flag, grad_norm NaN
    exactly when skipped, wait_s 0 on one rank."""
    for c in ("fwd_reason", "bwd_reason"):
        if c in usable:
            v = st[c]
            known = np.isin(v, list(REASONS))
            if not known.all():
                vals = sorted(set(v[~known].tolist()))
                bad_rows(rep, tloc, ~known, v,
                         f"{c} outside the il_reason enum 0..3 (unknown values {vals})", "warning")
    if "nan_skipped" in usable:
        flag = st["nan_skipped"]
        bad_rows(rep, tloc, (flag != 0) & (flag != 1), flag, "nan_skipped not 0 or 1")
        if "grad_norm" in usable:
            gn = st["grad_norm"]
            bad_rows(rep, tloc, (flag == 1) & ~np.isnan(gn), gn,
                     "nan_skipped = 1 but grad_norm is not NaN", "warning")
            bad_rows(rep, tloc, (flag == 0) & ~np.isfinite(gn), gn,
                     "nan_skipped = 0 but grad_norm is not finite", "warning")
    if cfg.get("world_size") == 1 and "wait_s" in usable:
        bad_rows(rep, tloc, st["wait_s"] != 0, st["wait_s"], "wait_s != 0 on one rank", "warning")
    if "nonconverged" in usable and "batch" in cfg:
        nc = st["nonconverged"]
        bad_rows(rep, tloc, nc > cfg["batch"], nc, "nonconverged > batch", "warning")
    check_jac_reg(rep, tloc, st, usable, cfg)
    check_steps_diagnostics(rep, tloc, st, usable)


def check_steps_diagnostics(rep, tloc, st, usable):
    """Version-2 step diagnostics (only the members present with the right
    type, so nothing here applies to a version-1 file). Domains are errors:
    nan_origin in 0..4, nan_iter >= -1, spectral radii, condition numbers,
    relative errors and the pre-activation maximum >= 0, the cosine in
    [-1, 1], NaN allowed everywhere it
    means "not measured". Consistency between columns is a warning."""
    if "nan_origin" in usable:
        o = st["nan_origin"]
        known = np.isin(o, list(NAN_ORIGINS))
        if not known.all():
            vals = sorted(set(o[~known].tolist()))
            bad_rows(rep, tloc, ~known, o, f"nan_origin outside 0..4 (invalid values {vals})")
    if "nan_iter" in usable:
        it = st["nan_iter"]
        bad_rows(rep, tloc, it < -1, it, "nan_iter < -1")
        if "nan_origin" in usable:
            o = st["nan_origin"]
            bad_rows(rep, tloc, np.isin(o, NAN_ITER_NA) & (it != -1), it,
                     "nan_iter != -1 although nan_origin is 0, 2 or 4 (no iteration applies)", "warning")
    if "nan_origin" in usable and "nan_skipped" in usable:
        bad_rows(rep, tloc, (st["nan_skipped"] == 1) & (st["nan_origin"] == 0), st["nan_origin"],
                 "nan_skipped = 1 but nan_origin = 0 (a non-finite gradient has an origin)", "warning")
    for c in ("diag_rho_max", "diag_rho_mean", "diag_cond", "diag_grad_relerr", "diag_preact_max"):
        if c in usable:
            v = st[c]
            bad_rows(rep, tloc, v < 0, v, f"negative {c} (must be >= 0 or NaN)")
    if "diag_cond" in usable:
        v = st["diag_cond"]
        bad_rows(rep, tloc, (v >= 0) & (v < 1 - 1e-9), v,
                 "diag_cond < 1 (a condition number is >= 1)", "warning")
    if "diag_grad_cos" in usable:
        v = st["diag_grad_cos"]
        bad_rows(rep, tloc, ~np.isnan(v) & ((v < -1) | (v > 1)), v, "diag_grad_cos outside [-1, 1]")
    pairs = (("diag_rho_max", "diag_rho_mean"), ("diag_grad_cos", "diag_grad_relerr"))
    for a, b in pairs:
        if a in usable and b in usable:
            na, nb = np.isnan(st[a]), np.isnan(st[b])
            bad_rows(rep, tloc, na != nb, st[a], f"{a} and {b} not both NaN or both measured", "warning")
    if "diag_rho_max" in usable and "diag_rho_mean" in usable:
        hi, mean = st["diag_rho_max"], st["diag_rho_mean"]
        bad_rows(rep, tloc, mean > hi * (1 + 1e-12), mean, "diag_rho_mean > diag_rho_max", "warning")


def check_steps_vs_epochs(rep, tloc, st, s_usable, ep, e_usable, status=None):
    """steps against epochs: every step's epoch is a row of `epochs`, rows
    are grouped by epoch in order, each epoch has train_batches rows numbered
    0..k-1 (errors); the epoch aggregates match their steps (warnings). A
    running run (killed) may end with the steps of an epoch whose row was
    never written: the writer flushes an epoch's steps before its row."""
    if "epoch" not in s_usable:
        return
    n = len(ep)
    se = st["epoch"]
    if status in ("running", "interrupted", "failed") and np.any(se == n):
        # a run that stopped mid-epoch keeps the steps flushed or checkpointed before it stopped
        k = int(np.sum(se == n))
        (rep.warn if status == "running" else rep.note)(
            tloc, f"{k} step rows of unfinished epoch {n} (the run stopped before that epoch ended)")
        keep = se != n
        st, se = st[keep], se[keep]
    if "global_step" in s_usable and not np.array_equal(st["global_step"], np.arange(len(st))):
        i = int(np.flatnonzero(st["global_step"] != np.arange(len(st)))[0])
        rep.error(tloc, f"global_step is not the row index (row {i} has global_step {st['global_step'][i]})")
    out = (se < 0) | (se >= n)
    bad_rows(rep, tloc, out, se, f"epoch outside the epochs table's range 0..{n - 1}")
    if np.any(np.diff(se) < 0):
        i = int(np.flatnonzero(np.diff(se) < 0)[0]) + 1
        rep.error(tloc, f"rows are not grouped by epoch in order (row {i} has epoch {se[i]} after {se[i - 1]})")
    for e in range(n):
        rows = np.flatnonzero(se == e)
        eloc = f"{tloc} (epoch {e})"
        if "train_batches" in e_usable and len(rows) != ep["train_batches"][e]:
            rep.error(eloc, f"{len(rows)} rows but epochs.train_batches = {ep['train_batches'][e]}")
        if "step" in s_usable and not np.array_equal(st["step"][rows], np.arange(len(rows))):
            rep.error(eloc, f"steps are not numbered 0..{len(rows) - 1} in order")
        check_epoch_aggregates(rep, eloc, st[rows], s_usable, ep[e], e_usable)


def check_epoch_aggregates(rep, eloc, s, s_usable, e, e_usable):
    """One epoch row against its steps, by the meanings in SCHEMA.md."""
    def both(a, b):
        return a in e_usable and b in s_usable

    sums = (("nan_batches", "nan_skipped", lambda s: int(np.sum(s == 1))),
            ("nonconverged", "nonconverged", lambda s: int(np.sum(s))),
            ("maxiter_batches", "fwd_reason", lambda s: int(np.sum(s == 1))),
            ("diverged_batches", "fwd_reason", lambda s: int(np.sum(s == 2))),
            ("nonfinite_batches", "fwd_reason", lambda s: int(np.sum(s == 3))))
    for ecol, scol, fn in sums:
        if both(ecol, scol) and int(e[ecol]) != fn(s[scol]):
            rep.warn(eloc, f"epochs.{ecol} = {int(e[ecol])} but the steps give {fn(s[scol])}")
    for ph in ("forward_s", "backward_s", "wait_s", "allreduce_s", "update_s"):
        if both(ph, ph):
            tot = float(np.sum(s[ph]))
            if not np.isclose(e[ph], tot, rtol=1e-6, atol=1e-9):
                rep.warn(eloc, f"epochs.{ph} = {e[ph]} but the steps' {ph} sum to {tot}")
    if both("max_grad_norm", "grad_norm"):
        gn = s["grad_norm"][np.isfinite(s["grad_norm"])]
        if gn.size and not np.isclose(e["max_grad_norm"], gn.max(), rtol=1e-9, atol=0):
            rep.warn(eloc, f"epochs.max_grad_norm = {e['max_grad_norm']} but the steps' largest "
                           f"finite grad_norm is {gn.max()}")


def check_ranks_values(rep, tloc, rk, usable, cfg, root_world):
    """ranks: world_size rows (the run's world_size, else the file's), row i
    has rank i; local batches add up to the global batch unless all zero."""
    world = cfg.get("world_size", root_world)
    if world is not None and len(rk) != world:
        rep.error(tloc, f"{len(rk)} rows, expected world_size = {world}")
    if "rank" in usable and not np.array_equal(rk["rank"], np.arange(len(rk))):
        rep.error(tloc, "rank column differs from the row index (row i belongs to rank i)")
    if "local_batch" in usable and "batch" in cfg:
        lb = rk["local_batch"]
        # with --grid every rank of a group holds its group's rows: world / groups copies of the batch
        copies = 1
        if world and cfg.get("grid_groups"):
            copies = max(1, int(world) // int(cfg["grid_groups"]))
        if lb.any() and int(lb.sum()) != cfg["batch"] * copies:
            rep.warn(tloc, f"local_batch sums to {int(lb.sum())}, expected batch = {cfg['batch']}"
                     + (f" x {copies} ranks per grid" if copies > 1 else ""))


def event_name(v):
    """An events.name value as str (fixed-length strings come back as bytes)."""
    if isinstance(v, (bytes, np.bytes_)):
        return bytes(v).rstrip(b"\0").decode("ascii", errors="replace")
    return str(v)


def check_events_values(rep, tloc, ev, usable):
    """events (optional): calls, times and FLOPs are >= 0 and not NaN (calls
    and times by check_units), time_sum (over ranks) >= time_max (the largest
    rank's), names non-empty (errors); names that core/il_events.c does not
    define, or that appear twice, are warnings (a later ilbench MAY add
    events; readers ignore what they do not know)."""
    for c in ("time_max", "time_sum", "flops"):
        if c in usable:
            v = ev[c]
            bad_rows(rep, tloc, np.isnan(v), v, f"NaN {c}")
    if "flops" in usable:
        bad_rows(rep, tloc, ev["flops"] < 0, ev["flops"], "negative FLOP count flops")
    if "time_max" in usable and "time_sum" in usable:
        hi, tot = ev["time_max"], ev["time_sum"]
        # a sum of non-negative terms is never below its largest term, even rounded
        bad_rows(rep, tloc, tot < hi, tot, "time_sum < time_max (a sum over ranks is at least the largest rank's)")
    if "name" in usable:
        names = [event_name(v) for v in ev["name"]]
        empty = np.array([n == "" for n in names], dtype=bool)
        bad_rows(rep, tloc, empty, np.array(names, dtype=str), "an empty event name")
        unknown = np.array([n != "" and n not in EVENT_NAMES for n in names], dtype=bool)
        if unknown.any():
            vals = sorted(set(n for n, u in zip(names, unknown) if u))
            bad_rows(rep, tloc, unknown, np.array(names, dtype=str),
                     f"event name not in core/il_events.c (unknown names {vals})", "warning")
        seen, dup = set(), np.zeros(len(names), dtype=bool)
        for i, n in enumerate(names):
            dup[i] = n in seen and n != ""
            seen.add(n)
        bad_rows(rep, tloc, dup, np.array(names, dtype=str), "an event name that an earlier row has", "warning")


def _segments(keys):
    """[(start, end)] of the runs of equal consecutive values of keys (a list)."""
    out, start = [], 0
    for i in range(1, len(keys) + 1):
        if i == len(keys) or keys[i] != keys[start]:
            out.append((start, i))
            start = i
    return out


def check_trace(rep, loc, g, tables, cfg, status):
    """The optional trace table and the run's `trace` attribute (module
    docstring; SCHEMA.md, trace). `tables` holds the checked tables."""
    tloc = f"{loc}/trace"
    has_table = has_link(g, "trace")
    n_every = None
    if "trace" in g.attrs:
        n_every = check_typed_attr(rep, g, loc, "trace", "int", "configuration attribute")
        if n_every is not None and n_every < 1:
            rep.error(loc, f"configuration attribute 'trace' is {n_every}, expected >= 1 (absent when off)")
            n_every = None
        if not has_table:
            rep.error(loc, "has the 'trace' attribute but no 'trace' table (written with the run's start)")
    elif has_table:
        rep.error(tloc, "the run has a trace table but no 'trace' attribute (N of --trace N)")
    if "trace" not in tables:
        return
    tr, usable = tables["trace"]
    need = ("global_step", "solve", "solver", "iteration", "residual", "rel_residual")
    if any(c not in usable for c in need) or len(tr) == 0:
        return
    gs = np.asarray(tr["global_step"], dtype=np.int64)
    solve = [event_name(v) for v in tr["solve"]]
    solver = [event_name(v) for v in tr["solver"]]
    it = np.asarray(tr["iteration"], dtype=np.int64)
    res = np.asarray(tr["residual"], dtype=float)
    rel = np.asarray(tr["rel_residual"], dtype=float)
    bad = np.array([x not in TRACE_SOLVES for x in solve], dtype=bool)
    bad_rows(rep, tloc, bad, np.array(solve, dtype=str), "solve not 'forward' or 'backward'")
    bad_rows(rep, tloc, gs < 0, gs, "negative global_step")
    bad_rows(rep, tloc, res < 0, res, "negative residual (a norm: >= 0, or NaN/Inf)")
    if np.any(np.diff(gs) < 0):
        i = int(np.flatnonzero(np.diff(gs) < 0)[0]) + 1
        rep.error(tloc, f"rows are not grouped by global_step in order (row {i} has {gs[i]} after {gs[i - 1]})")
        return
    if n_every is not None:
        bad_rows(rep, tloc, gs % n_every != 0, gs, f"global_step not a multiple of the run's trace = {n_every}")
    # one segment per (step, solve): consecutive iterations, forward before backward, each solve once
    seg_bad = {"order": [], "first": [], "consecutive": [], "rel": [], "solver": []}
    last = {}  # (step, solve) -> (last iteration, last residual, solver)
    for a, b in _segments(list(zip(gs.tolist(), solve))):
        step, sv = int(gs[a]), solve[a]
        if (step, sv) in last or (sv == "forward" and (step, "backward") in last):
            seg_bad["order"].append(a)
            continue
        first_ok = (0, 1) if sv == "forward" else (1,)
        if int(it[a]) not in first_ok:
            seg_bad["first"].append(a)
        if not np.array_equal(it[a:b], np.arange(it[a], it[a] + (b - a))):
            seg_bad["consecutive"].append(a)
        with np.errstate(all="ignore"):
            want = res[a:b] / res[a]
        ok = np.isclose(rel[a:b], want, rtol=1e-12, atol=0, equal_nan=True)
        if not ok.all():
            seg_bad["rel"].append(a + int(np.flatnonzero(~ok)[0]))
        if len(set(solver[a:b])) != 1:
            seg_bad["solver"].append(a)
        last[(step, sv)] = (int(it[b - 1]), float(res[b - 1]), solver[a])
    msgs = {"order": "a step's rows of one solve are not together, or its backward rows come before its forward rows",
            "first": "a solve whose first iteration is not 1 (0 or 1 for the forward solve)",
            "consecutive": "a solve whose iterations are not consecutive",
            "rel": "rel_residual != residual / the solve's first residual",
            "solver": "a solve whose rows name different solvers"}
    for k, rows in seg_bad.items():
        if rows:
            rep.error(tloc, f"{len(rows)} solve(s) with {msgs[k]} (first: row {rows[0]})")
    # against the steps table and the run's configuration
    steps = tables.get("steps")
    if steps is None or "global_step" not in steps[1]:
        return
    st, s_usable = steps
    row_of = {int(v): i for i, v in enumerate(np.asarray(st["global_step"]).tolist())}
    missing = sorted({step for step, _ in last if step not in row_of})
    if missing:
        msg = f"{len(missing)} traced step(s) not in the steps table (first: global_step {missing[0]})"
        if status == "completed":
            rep.error(tloc, msg)
        else:  # trace rows are flushed just before their steps rows: a run that stopped may hold them
            rep.note(tloc, msg + f" (status {status!r}: the run stopped between writing them)")
    if n_every is not None and status == "completed":
        want = [v for v in row_of if v % n_every == 0 and (v, "forward") not in last]
        if want:
            rep.error(tloc, f"{len(want)} step(s) with global_step a multiple of trace = {n_every} but no forward "
                            f"rows (first: global_step {min(want)})")
    run_solver, run_backward = cfg.get("solver"), str(cfg.get("backward", "")).split(":")[0]
    best = g.attrs.get("best", 0)
    warn = {"iters": [], "res": [], "bwd": [], "name": []}
    for (step, sv), (lit, lres, name) in last.items():
        i = row_of.get(step)
        if i is None:
            continue
        if sv == "forward":
            if "fwd_iters" in s_usable and lit != int(st["fwd_iters"][i]):
                warn["iters"].append(step)
            if "fwd_residual" in s_usable and not best:
                fr = float(st["fwd_residual"][i])
                if not (lres == fr or (np.isnan(lres) and np.isnan(fr))):
                    warn["res"].append(step)
            if run_solver is not None and name != run_solver:
                warn["name"].append(step)
        else:
            if "bwd_iters" in s_usable and lit > int(st["bwd_iters"][i]):
                warn["bwd"].append(step)
            if run_backward and name not in TRACE_BACKWARD.get(run_backward, ()):
                warn["name"].append(step)
    msgs = {"iters": "its last forward iteration differs from steps.fwd_iters",
            "res": "its last forward residual differs from steps.fwd_residual",
            "bwd": "its last backward iteration exceeds steps.bwd_iters",
            "name": f"a solver name that is not the run's ({run_solver}/{run_backward})"}
    for k, v in warn.items():
        if v:
            rep.warn(tloc, f"{len(v)} traced step(s) where {msgs[k]} (first: global_step {min(v)})")


# ---------------------------------------------------------------------------
# One run, one file
# ---------------------------------------------------------------------------

def check_run(rep, run_id, g, root_world, version=SCHEMA_VERSION):
    """All rules for /runs/<run_id>, against the tables of major `version`.
    Each part (attributes, each table, each cross-table rule) is guarded: an
    exception a damaged object raises is an error there, and the rest goes on."""
    loc = f"/runs/{run_id}"
    status, started = guarded(rep, loc, "cannot check the run's attributes",
                              check_run_writer_attrs, rep, g, loc, default=(None, None))
    cfg = guarded(rep, loc, "cannot check the run's configuration", check_run_config, rep, g, loc, default={})
    guarded(rep, loc, "cannot check the run's stop rules", check_stop_rules, rep, g, loc)
    has_ranks = has_link(g, "ranks")
    guarded(rep, loc, "cannot check the run's status", check_run_status, rep, g, loc, status, started, has_ranks)

    tables = {}
    for name in ("epochs", "steps"):
        if not has_link(g, name):
            rep.error(loc, f"missing table '{name}'")

    def layout(name, members=None):
        tloc = f"{loc}/{name}"
        data, usable = check_table_layout(rep, g, loc, name, version, members)
        if data is not None:
            if members is None:
                data, usable = migrate_table(name, data, usable, version)
            tables[name] = (data, usable)
            check_units(rep, tloc, name, data, usable)

    for name in TABLES:
        if has_link(g, name):
            guarded(rep, f"{loc}/{name}", "cannot check the table", layout, name)
    for name, members in OPTIONAL_TABLES_BY_VERSION.get(version, {}).items():
        if has_link(g, name):  # optional: absence is fine
            guarded(rep, f"{loc}/{name}", "cannot check the table", layout, name, members)

    epochs_ok = False
    if "epochs" in tables:
        epochs_ok = guarded(rep, f"{loc}/epochs", "cannot check the values", check_epochs_values, rep,
                            f"{loc}/epochs", *tables["epochs"], cfg, status, default=False)
    if "steps" in tables:
        guarded(rep, f"{loc}/steps", "cannot check the values", check_steps_values, rep, f"{loc}/steps",
                *tables["steps"], cfg)
        if epochs_ok:
            guarded(rep, f"{loc}/steps", "cannot check the steps against the epochs",
                    lambda: check_steps_vs_epochs(rep, f"{loc}/steps", *tables["steps"], *tables["epochs"],
                                                  status=status))
    if "ranks" in tables:
        guarded(rep, f"{loc}/ranks", "cannot check the values", check_ranks_values, rep, f"{loc}/ranks",
                *tables["ranks"], cfg, root_world)
    if "events" in tables:
        guarded(rep, f"{loc}/events", "cannot check the values", check_events_values, rep, f"{loc}/events",
                *tables["events"])
    if version >= 3:
        guarded(rep, f"{loc}/trace", "cannot check the trace", check_trace, rep, loc, g, tables, cfg, status)


def check_file(path, notes=None):
    """Check one file. Returns (errors, warnings), lists of "LOCATION: text";
    appends the notes (same form) to `notes` when it is a list. Raises
    Unreadable when the file cannot be opened as HDF5."""
    try:
        f = h5py.File(path, "r")
    except Exception as e:  # noqa: BLE001  (OSError mostly; anything else is unreadable too)
        raise Unreadable(f"cannot open as HDF5: {e}") from e
    rep = Report()
    try:
        version = guarded(rep, "/", "cannot check the root attributes", check_root, rep, f, path)
        if version is not None:
            root_world = guarded(rep, "/", "cannot read root attribute 'world_size'",
                                 lambda: f.attrs["world_size"] if attr_kind(f, "world_size")[0] == "int" else None)
            for run_id, g in guarded(rep, "/runs", "cannot check the runs", check_runs_group, rep, f, default=[]):
                guarded(rep, f"/runs/{run_id}", "cannot check the run", check_run, rep, run_id, g, root_world,
                        version)
    finally:
        guarded(rep, "/", "cannot close the file", f.close)
    if notes is not None:
        notes.extend(rep.notes)
    return rep.errors, rep.warnings


# ---------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="check_schema.py",
        description="Validate ilbench results files against analysis/SCHEMA.md "
                    f"({SCHEMA_NAME} version {SCHEMA_VERSION}; versions 1 and 2 are still accepted).",
        epilog="Exit status: 0 no errors, 1 errors found, 2 usage error or unreadable file.")
    ap.add_argument("files", nargs="+", metavar="FILE", help="results file (.h5)")
    args = ap.parse_args(argv)  # exits 2 on a usage error

    rc = 0
    for path in args.files:
        notes = []
        try:
            errors, warnings = check_file(path, notes)
        except Unreadable as e:
            print(f"{path}: {e}", file=sys.stderr)
            rc = 2
            continue
        except Exception as e:  # noqa: BLE001  (a checker bug: still a counted error, not a traceback)
            errors, warnings = [f"/: the checker stopped ({type(e).__name__}: {e})"], []
        for msg in errors:
            print(f"{path}: ERROR: {msg}")
        for msg in warnings:
            print(f"{path}: WARNING: {msg}")
        for msg in notes:
            print(f"{path}: NOTE: {msg}")
        print(f"{path}: {len(errors)} errors, {len(warnings)} warnings")
        if errors and rc == 0:
            rc = 1
    return rc


if __name__ == "__main__":
    sys.exit(main())
